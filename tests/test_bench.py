"""The benchmark harness: a quick run in subprocesses (sepconv + PyTorch), and its pieces."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sepconv._bench_peers import REQUIRES, RUNNERS, Unsupported
from sepconv.bench import (
    CASES_FILE,
    KINDS,
    QUICK,
    TOLERANCE,
    Benchmark,
    Case,
    WorkerProcess,
    framework_environment,
    interference,
    load_cases,
    main,
    make_inputs,
    process_cpu_seconds,
    reference_output,
    relative_error,
    settle,
    slow_rounds,
    steal_seconds,
    steal_summary,
    thread_times,
    worker_environment,
)
from sepconv.bench import _steal_note as steal_note
from sepconv.kernels import _jit

BENCH_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_ops.py"

# Stride 2 on an even input: TensorFlow pads 0 before and 1 after, which PyTorch has to be given explicitly.
TINY_CASES = [
    {"name": "dw_tiny_s2", "kind": "dw", "shape": [1, 10, 10, 8], "k": 3, "s": 2, "padding": "SAME"},
    {"name": "dwbf_tiny_m2", "kind": "dw_bwd_filter", "shape": [2, 7, 7, 4], "k": 3, "s": 1, "m": 2,
     "padding": "SAME"},
]


@pytest.fixture
def tiny_cases_file(tmp_path: Path) -> Path:
    path = tmp_path / "cases.json"
    path.write_text(json.dumps({"cases": TINY_CASES}))
    return path


def test_quick_run_with_torch(tiny_cases_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH_SCRIPT), "--quick", "--rounds", "1", "--cases-file", str(tiny_cases_file),
         "--peers", "torch_cl", "--json", str(out), "--no-unset-openblas-env"],
        capture_output=True, text=True, timeout=300)  # a cold cache compiles in the subprocess
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| dw_tiny_s2 |" in proc.stdout and "Call overhead" in proc.stdout
    report = json.loads(out.read_text())
    assert [c["case"] for c in report["cases"]] == ["dw_tiny_s2", "dwbf_tiny_m2"]
    for case in report["cases"]:
        assert case["sepconv_check"] == "ok"
        assert case["sepconv_us"] > 0 and case["fastest_peer"] == "torch_cl" and case["fastest_peer_us"] > 0
        assert case["ratio"] == pytest.approx(case["sepconv_us"] / case["fastest_peer_us"])
        assert case["gbps"] > 0 and 0 < case["fraction_of_bound"]
        assert case["bytes"] > 0 and case["bound"] == "bandwidth"
        for fw in ("sepconv", "torch_cl"):
            detail = case["detail"][fw]
            assert detail["status"] == "ok", detail
            assert detail["max_rel_error"] <= TOLERANCE
            assert len(detail["rounds_median_s"]) == 1 and detail["first_call_s"] > 0
            assert len(detail["settle_s"]) == 1 and detail["settle_s"][0] >= QUICK.pause_s
            assert len(detail["steal_share"]) == 1 and 0 <= detail["steal_share"][0] <= 1
            (window,) = detail["interference"]  # the worker's threads ran: the calling thread, the whole window
            assert 0.5 <= window["run_share"] and 0 <= window["wait_share"] and 0 <= window["others_share"] <= 1
    assert set(report["summary"]) == {"dw", "dw_bwd_filter"}
    assert set(report["meta"]["settle_ms"]) == {"sepconv", "torch_cl"}
    assert "until the last one's threads are idle" in proc.stdout
    assert report["meta"]["steal"]["windows"] == 4 and 0 <= report["meta"]["steal"]["share"] <= 1
    assert "steal time (CPU time the hypervisor took for other guests)" in proc.stdout
    assert set(report["meta"]["slow_rounds"]) == {"sepconv", "torch_cl"}
    assert "rounds of a case at 3x or more the framework's fastest" in proc.stdout
    assert report["overhead"]["public_call_us"] > 0
    assert report["machine_probes"]["gemm"]["gflops"] > 0
    assert report["machine_probes"]["fma"]["gflops"] >= 0.5 * report["machine_probes"]["gemm"]["gflops"]
    assert "multiply-add peak" in proc.stdout
    assert not any("unset" in note for note in report["meta"]["notes"])
    assert report["meta"]["plans"].rsplit(" (", 1)[0] in ("AVX-512", "AVX-512 on 256-bit units", "AVX-512 on Zen 5",
                                                           "AVX2")
    assert f"{report['meta']['plans']} plans" in proc.stdout


def test_unknown_names_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cases", "dw_1x56x56x144_s1,no_such_case"]) == 2
    assert "unknown case(s) no_such_case" in capsys.readouterr().err
    assert main(["--peers", "torch_cl,pytorch"]) == 2
    assert "unknown peer(s) pytorch" in capsys.readouterr().err
    assert main(["--kinds", "depthwise"]) == 2
    assert "unknown kind(s) depthwise" in capsys.readouterr().err


def test_a_cases_file_of_another_shape_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A cases file that is a bare list (or lacks "cases") is refused with the shape expected, not a traceback."""
    bare = tmp_path / "bare.json"
    bare.write_text('[{"name": "dw_a", "kind": "dw", "shape": [1, 8, 8, 16], "k": 3, "s": 1}]')
    assert main(["--cases-file", str(bare)]) == 2
    assert 'expected a JSON object {"cases": [...]}, got list' in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text('{"layers": []}')
    assert main(["--cases-file", str(other)]) == 2
    assert "with keys ['layers']" in capsys.readouterr().err


def test_shipped_cases_are_valid() -> None:
    cases = load_cases(CASES_FILE)
    shared = [c for c in cases if not c.ours]
    assert len(shared) == 17 and {c.kind for c in cases} == set(KINDS)
    assert any(c.d > 1 for c in cases) and any(c.m == 3 for c in cases)
    assert (Path(__file__).resolve().parents[1] / "benchmarks" / "cases.json").read_text() == CASES_FILE.read_text()


def test_case_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match="`out`"):
        Case.from_dict({"name": "a", "kind": "sep", "shape": [1, 8, 8, 4], "k": 3, "s": 1, "padding": "SAME"}, "t")
    with pytest.raises(ValueError, match="unknown field"):
        Case.from_dict({"name": "a", "kind": "dw", "shape": [1, 8, 8, 4], "k": 3, "s": 1, "padding": "SAME",
                        "stride": 2}, "t")
    with pytest.raises(ValueError, match="kind"):
        Case.from_dict({"name": "a", "kind": "pool", "shape": [1, 8, 8, 4], "k": 3, "s": 1, "padding": "SAME"}, "t")


def test_inputs_are_reproducible_and_reference_has_the_op_shape() -> None:
    case = Case.from_dict(TINY_CASES[1], "t")
    a, b = make_inputs(case), make_inputs(case)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert reference_output(case, a).shape == (3, 3, 4, 2)


def test_a_wrong_output_is_marked_mismatch(tmp_path: Path) -> None:
    case = Case.from_dict(TINY_CASES[0], "t")
    ref = reference_output(case, make_inputs(case))
    bench = Benchmark([case], ["sepconv"], QUICK, {})
    try:
        answer = {"first_call_s": 0.1, "second_call_s": 0.01}
        path = Path(bench.tmp.name) / f"{case.name}.sepconv.npy"
        np.save(path, ref)
        assert bench._check(case, "sepconv", answer, ref)["status"] == "ok"
        wrong = ref.copy()
        wrong[0, -1, -1, 0] += 1.0  # the last row/column: where TF's asymmetric padding matters
        np.save(path, wrong)
        assert bench._check(case, "sepconv", answer, ref)["status"] == "mismatch"
    finally:
        bench.close()
    assert relative_error(np.zeros((2, 2)), np.zeros((3, 2))) == float("inf")


def test_worker_environment_switches() -> None:
    env, notes = worker_environment(unset_openblas=False, pin_malloc=False, bind_threads=False)
    assert "MALLOC_TRIM_THRESHOLD_" not in env or env["MALLOC_TRIM_THRESHOLD_"] != "1073741824"
    assert "OMP_PROC_BIND" not in notes and env["NUMBA_NUM_THREADS"] == "2"
    env, notes = worker_environment(unset_openblas=True, pin_malloc=True, bind_threads=True)
    assert "OPENBLAS_CORETYPE" not in env and "OPENBLAS_L2_SIZE" not in env
    assert env["MALLOC_MMAP_THRESHOLD_"] == "1073741824" and env["OMP_PROC_BIND"] == "true"


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and two CPUs")
def test_workers_start_on_the_cpus_of_the_command(tmp_path: Path) -> None:
    """A worker runs on the CPUs the command was started on, even when this process has since been bound to one (as
    an OpenMP runtime binds it with OMP_PROC_BIND in its environment)."""
    started_on = _jit.CPUS_BEFORE_OPENMP
    assert started_on and len(started_on) >= 2
    now = os.sched_getaffinity(0)
    env, _ = worker_environment(unset_openblas=False, pin_malloc=False, bind_threads=False)
    env.pop("OMP_PROC_BIND", None)  # (bound, the worker's own runtime would put its main thread on one of them)
    os.sched_setaffinity(0, {min(now)})
    try:
        worker = WorkerProcess("sepconv", env, open(tmp_path / "log.txt", "w+"))
    finally:
        os.sched_setaffinity(0, now)
    try:
        assert worker.receive() == {"ready": True}
        pid = worker.request({"cmd": "info"})["pid"]
        assert os.sched_getaffinity(pid) == set(started_on)
    finally:
        worker.close()


def test_only_the_openmp_workers_get_their_threads_bound() -> None:
    env, _ = worker_environment(unset_openblas=False, pin_malloc=False, bind_threads=True)
    for fw in ("sepconv", "torch_cl", "torch_nchw"):
        assert framework_environment(env, fw)["OMP_PROC_BIND"] == "true"
    for fw in ("tf", "ort_nchw", "ort_nhwc", "jax"):
        peer_env = framework_environment(env, fw)
        assert "OMP_PROC_BIND" not in peer_env and peer_env["OMP_NUM_THREADS"] == "2"


def test_the_workers_module_loads_no_openmp_runtime() -> None:
    """A peer's worker must not load an OpenMP runtime through sepconv: bound, it put the peer's main thread, and so
    every thread of its pools, on one CPU (ONNX Runtime ran 1.65-1.8x its own time until the fifty-second session)."""
    code = "import sys, sepconv._bench_peers; print('numba' in sys.modules, 'sepconv.kernels._jit' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs 2 CPUs and sched_getaffinity")
def test_a_peers_worker_runs_on_every_cpu_of_the_command(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    env, _ = worker_environment(unset_openblas=False, pin_malloc=False, bind_threads=True)
    worker = WorkerProcess("tf", framework_environment(env, "tf"), open(tmp_path / "log.txt", "w+"))
    try:
        assert worker.receive() == {"ready": True}
        info = worker.request({"cmd": "info"})
        assert info["cpus"] == sorted(_jit.CPUS_BEFORE_OPENMP)
        assert os.sched_getaffinity(info["pid"]) == set(_jit.CPUS_BEFORE_OPENMP)
    finally:
        worker.close()


# Small cases where the layouts and TF's padding are easy to get wrong: stride 2 on even sizes
# (pads 0 before, 1 after), multiplier 2, dilation 2.
PEER_CASES = [
    {"name": "dw_s2_m2", "kind": "dw", "shape": [1, 10, 10, 4], "k": 3, "s": 2, "m": 2, "padding": "SAME"},
    {"name": "dw_d2", "kind": "dw", "shape": [1, 9, 9, 4], "k": 3, "s": 1, "d": 2, "padding": "SAME"},
    {"name": "dwbi_s2", "kind": "dw_bwd_input", "shape": [2, 8, 8, 4], "k": 3, "s": 2, "m": 2, "padding": "SAME"},
    {"name": "dwbf_s2", "kind": "dw_bwd_filter", "shape": [2, 8, 8, 4], "k": 3, "s": 2, "m": 2, "padding": "SAME"},
    {"name": "sep_s2", "kind": "sep", "shape": [1, 8, 8, 4], "k": 3, "s": 2, "m": 2, "out": 6, "padding": "SAME"},
    {"name": "conv_s2", "kind": "conv", "shape": [1, 8, 8, 3], "k": 3, "s": 2, "out": 5, "padding": "SAME"},
    {"name": "dwbb_s2", "kind": "dw_bwd", "shape": [2, 8, 9, 4], "k": 3, "s": 2, "m": 2, "padding": "SAME"},
    {"name": "dwbb_d2", "kind": "dw_bwd", "shape": [1, 9, 8, 5], "k": 3, "s": 1, "d": 2, "padding": "VALID"},
]


@pytest.mark.parametrize("peer", [p for p in RUNNERS if p != "sepconv"])
def test_every_peer_computes_the_reference(peer: str) -> None:
    """Each framework's callable, as the benchmark builds it, gives the reference's numbers in NHWC."""
    for module in REQUIRES[peer]:
        pytest.importorskip(module)
    for entry in PEER_CASES:
        case = Case.from_dict(entry, "test")
        inputs = make_inputs(case)
        try:
            fn, to_numpy = RUNNERS[peer](case.for_worker(), inputs)
        except Unsupported:
            assert ((peer.startswith("ort") and case.kind in ("dw_bwd_filter", "dw_bwd"))
                    or (peer == "tf" and case.kind.startswith("dw_bwd") and case.d > 1))  # TF ignores them
            continue
        assert relative_error(to_numpy(fn()), reference_output(case, inputs)) <= TOLERANCE, (peer, case.name)


def test_list_into_a_closed_pipe_exits_quietly(tmp_path):
    """``sepconv bench --list | head -1``: the pipe closes early; no traceback, exit code 0 (a list
    of 4,000 cases, ~250 KB, so that the writes outlast the pipe's buffer)."""
    case = {"kind": "dw", "shape": [1, 8, 8, 16], "k": 3, "s": 1, "m": 1, "padding": "SAME", "source": "x" * 20}
    cases = [dict(case, name=f"dw_case_{i:05d}") for i in range(4000)]
    path = tmp_path / "many.json"
    path.write_text(json.dumps({"cases": cases}))
    proc = subprocess.Popen([sys.executable, "-m", "sepconv", "bench", "--list", "--cases-file", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    _, err = proc.communicate(timeout=120)
    assert first.startswith(b"dw_case_00000")
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err


@pytest.mark.parametrize("file_name", ["cases.json", "sweep_cases.json", "random_cases.json", "random2_cases.json",
                                       "random3_cases.json", "network_cases.json", "tiny_cases.json",
                                       "random23_cases.json", "large_filter_conv_cases.json"])
def test_shipped_case_files_load(file_name: str) -> None:
    """Every case file under benchmarks/ loads (fields checked, names unique) and each case has a valid
    geometry with a non-empty output."""
    cases = load_cases(Path(__file__).resolve().parents[1] / "benchmarks" / file_name)
    assert len(cases) >= 5
    for case in cases:
        g = case.geometry()
        assert g.out_h > 0 and g.out_w > 0, case.name


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _draw(seed: int, out: Path):
    """benchmarks/draw_cases.py run with ``seed`` into ``out``: ``(its module, the cases drawn)``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("draw_cases", BENCHMARKS / "draw_cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--seed", str(seed), "--out", str(out)])
    return module, json.loads(out.read_text())["cases"]


def test_draw_cases_gives_the_shipped_third_draw(tmp_path: Path) -> None:
    """benchmarks/draw_cases.py with the third draw's seed writes random3_cases.json's cases again (a seed is a
    file), 40 of them, in the kinds' proportions, each a valid layer within the size bound."""
    module, drawn = _draw(20261204, tmp_path / "drawn.json")
    assert drawn == json.loads((BENCHMARKS / "random3_cases.json").read_text())["cases"]
    assert [case["kind"] for case in drawn].count("dw_bwd_input") == 12 and len(drawn) == 40
    for case in load_cases(tmp_path / "drawn.json"):
        assert case.geometry().out_h > 0
    assert all(math.prod(case["shape"]) * case["m"] <= module.MAX_VALUES for case in drawn)


def test_draw_cases_draws_a_repeated_case_anew(tmp_path: Path) -> None:
    """The fifteenth draw's seed drew one case twice before (sepconv bench refuses duplicate names): each case is
    drawn once now, and the file is random15_cases.json."""
    _, drawn = _draw(20261217, tmp_path / "drawn.json")
    assert len({case["name"] for case in drawn}) == len(drawn) == 40
    assert drawn == json.loads((BENCHMARKS / "random15_cases.json").read_text())["cases"]
    assert len(load_cases(tmp_path / "drawn.json")) == 40


def _bench_gradients():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gradients.py"
    spec = importlib.util.spec_from_file_location("bench_gradients", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("case", [(2, 9, 10, 20, 3, 1, 1, "NHWC"), (1, 12, 11, 16, 5, 1, 1, "NCHW"),
                                  (1, 13, 14, 24, 3, 1, 2, "NHWC"), (2, 10, 12, 8, 3, 2, 1, "NHWC")])
def test_gradients_benchmark_checks_and_times_a_case(case) -> None:
    """Its cases go through the checks against PyTorch's backward and the two ops (which raise on a
    mismatch), and give three positive times (PyTorch's only where its symmetric padding is SAME)."""
    torch = pytest.importorskip("torch")
    one, two, theirs = _bench_gradients().run_case(case, 2, torch)
    assert one > 0 and two > 0
    assert (theirs is not None and theirs > 0) == (case[5] == 1)


def test_gradients_benchmark_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _bench_gradients().main(["--rounds", "0"])
    assert "--rounds and --threads must be at least 1" in capsys.readouterr().err


def test_both_gradients_are_checked_part_by_part() -> None:
    """A ``dw_bwd`` answer is the two gradients flattened and concatenated; each part is held to the
    tolerance against its own scale, so a wrong input gradient is caught next to a filter gradient
    hundreds of times larger."""
    case = Case.from_dict({"name": "b", "kind": "dw_bwd", "shape": [2, 9, 9, 4], "k": 3, "s": 1,
                           "padding": "SAME"}, "test")
    inputs = make_inputs(case)
    dx, dw = reference_output(case, inputs)
    flat = np.concatenate([dx.ravel(), dw.ravel()])
    assert relative_error(flat, (dx, dw)) == 0
    wrong = flat.copy()
    wrong[0] += 10 * TOLERANCE * np.abs(dx).max()
    assert relative_error(wrong, (dx, dw)) > TOLERANCE
    assert relative_error(flat[:-1], (dx, dw)) == float("inf")


class FakeCpuClock:
    """``process_cpu_seconds`` of a process busy (5 ms of CPU a sample) for its first ``busy_samples`` reads, then
    idle; forever busy with ``busy_samples=None``."""

    def __init__(self, busy_samples: int | None) -> None:
        self.busy_samples, self.reads, self.seconds = busy_samples, 0, 0.0

    def __call__(self, pid: int) -> float:
        self.reads += 1
        if self.busy_samples is None or self.reads <= self.busy_samples:
            self.seconds += 0.005
        return self.seconds


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads Linux's /proc")
def test_process_cpu_seconds_counts_the_threads_of_a_process() -> None:
    before, cpu_before = process_cpu_seconds(os.getpid()), time.process_time()
    while time.process_time() - cpu_before < 0.05:  # CPU time, not wall time: the suite may share the cores
        pass
    after = process_cpu_seconds(os.getpid())
    assert before is not None and after is not None
    assert after - before == pytest.approx(time.process_time() - cpu_before, abs=0.02)
    assert process_cpu_seconds(2**22 + 12345) is None  # no such process


def test_settle_waits_until_the_process_rests(monkeypatch: pytest.MonkeyPatch) -> None:
    import sepconv.bench as bench

    for busy_samples in (0, 6):
        clock = FakeCpuClock(busy_samples)
        monkeypatch.setattr(bench, "process_cpu_seconds", clock)
        waited = settle(1, pause_s=0.01, max_s=5.0)
        # the read after the pause (the first busy read), the other busy ones, then SETTLE_IDLE_SAMPLES idle in a row
        assert clock.reads == 1 + max(busy_samples - 1, 0) + bench.SETTLE_IDLE_SAMPLES
        assert waited >= 0.01 + (clock.reads - 1) * bench.SETTLE_SAMPLE_S
    monkeypatch.setattr(bench, "process_cpu_seconds", FakeCpuClock(None))
    assert 0.1 <= settle(1, pause_s=0.01, max_s=0.1) < 1.0  # never idle: at most max_s
    monkeypatch.setattr(bench, "process_cpu_seconds", lambda pid: None)
    assert settle(1, pause_s=0.01, max_s=1.0) == 0.01  # unreadable: the fixed pause


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads Linux's /proc")
def test_settle_finds_a_sleeping_process_idle() -> None:
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.5)  # started and asleep
        assert 0.02 <= settle(idle.pid, pause_s=0.02, max_s=2.0) < 1.0
    finally:
        idle.kill()
        idle.wait()


def test_a_framework_that_never_rests_gets_the_fixed_pause_after_a_few_tries(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from dataclasses import replace
    from types import SimpleNamespace

    import sepconv.bench as bench

    monkeypatch.setattr(bench, "process_cpu_seconds", FakeCpuClock(None))
    runner = Benchmark([], ["spinner"], replace(QUICK, pause_s=0.01, settle_max_s=0.05), {})
    try:
        runner.workers = {"spinner": SimpleNamespace(process=SimpleNamespace(pid=1))}
        waits = [runner._settle("spinner") for _ in range(bench.SETTLE_GIVE_UP + 2)]
    finally:
        runner.tmp.cleanup()
    assert all(w >= 0.05 for w in waits[:bench.SETTLE_GIVE_UP]), waits
    assert waits[bench.SETTLE_GIVE_UP:] == [0.01, 0.01]
    assert "never went idle" in capsys.readouterr().err


def test_steal_is_read_from_the_cpu_line() -> None:
    """The eighth number of /proc/stat's ``cpu`` line, in clock ticks; None without one."""
    ticks = os.sysconf("SC_CLK_TCK")
    text = f"intr 5 6\ncpu  10 0 20 30 40 0 50 {3 * ticks} 0 0\ncpu0 1 2 3 4 5 6 7 999 0 0\n"
    assert steal_seconds(text) == pytest.approx(3.0)
    assert steal_seconds("cpu0 1 2 3 4 5 6 7 8\n") is None
    assert steal_seconds("cpu  1 2 3 4 5 6 7\n") is None  # a kernel that counts no steal


def test_thread_times_see_this_process_run() -> None:
    before = thread_times()
    start = time.thread_time()
    while time.thread_time() - start < 0.05:  # 50 ms of this thread's CPU time, however busy the machine
        pass
    after = thread_times()
    mine = [tid for tid, (pid, _, _) in after.items() if pid == os.getpid()]
    assert threading.get_native_id() in mine
    ran = sum(after[t][1] - before.get(t, (0, 0, 0))[1] for t in mine)
    assert ran >= 0.04e9  # ns


def test_interference_splits_the_worker_from_the_others() -> None:
    worker, other = 1_000_001, 1_000_002  # no such processes: this process's own threads are left out
    before = {1: (worker, 0, 0), 2: (worker, 0, 0), 3: (other, 0, 0), 4: (other, 0, 0)}
    after = {1: (worker, 20_000_000, 0), 2: (worker, 1_000_000, 9_000_000), 3: (other, 2_000_000, 0),
             4: (other, 6_000_000, 0), 5: (other, 2_000_000, 0)}  # thread 5 started during the window
    r = interference(before, after, worker, window_s=0.02)
    assert r["run_share"] == pytest.approx(1.05) and r["wait_share"] == pytest.approx(0.45)
    assert r["others_share"] == pytest.approx(0.01 / (0.02 * (os.cpu_count() or 1)))
    assert r["top_other_ms"] == pytest.approx(6.0) and r["top_other"].endswith(f"({other})")
    assert interference({}, after, worker, 0.02) is None and interference(before, after, worker, 0.0) is None


def test_slow_rounds_count_rounds_far_above_the_fastest() -> None:
    results = {"a": {"sepconv": {"rounds_median_s": [10e-6, 12e-6, 29e-6, 600e-6, 40e-6]},
                     "tf": {"rounds_median_s": [100e-6, 301e-6, 299e-6]}},
               "b": {"sepconv": {"rounds_median_s": [100e-6, 310e-6]}, "tf": {"status": "n/a"}}}
    # 40 us is 4x the fastest but under SLOW_ROUND_MIN_S; 29 us under 3x
    assert slow_rounds(results, ["sepconv", "tf"]) == {"sepconv": 2, "tf": 1}


def test_steal_summary_counts_the_windows_that_lost_time() -> None:
    results = {"a": {"sepconv": {"steal_share": [0.0, 0.3]}, "tf": {"steal_share": [0.05]}},
               "b": {"sepconv": {"steal_share": [0.11]}, "tf": {}}}
    summary = steal_summary(results, ["sepconv", "tf"])
    assert summary == {"share": pytest.approx((0.3 + 0.05 + 0.11) / 4, abs=1e-4), "windows": 4, "notable": 2}
    assert steal_summary({"a": {"sepconv": {"steal_share": []}}}, ["sepconv"]) is None
    assert "not readable" in steal_note(None)
    assert "2 of 4 windows lost more than 10%" in steal_note(summary)
