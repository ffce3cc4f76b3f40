"""``sepconv bench``: sepconv's ops against every installed framework, side by side, on this machine.

How it measures:

- **One worker process per framework** (sepconv, PyTorch channels_last and NCHW, TensorFlow,
  ONNX Runtime NCHW and NHWC, JAX), driven over pipes (:mod:`sepconv._bench_peers`).  Every
  worker is limited to 2 threads (``OMP_NUM_THREADS``, ``torch.set_num_threads``, TF's
  intra/inter-op pools, ORT's ``intra_op_num_threads``, ``NUMBA_NUM_THREADS``, XLA flags),
  runs with glibc malloc pinned
  (``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` at 1 GiB, so per-call buffers are
  not fresh pages one call and reused the next); the OpenMP workers (sepconv, PyTorch) with
  their threads bound (``OMP_PROC_BIND=true``), the others not (:func:`framework_environment`).
- **Same inputs, same math, checked first.**  The driver writes each case's inputs once; every
  worker computes the op on them and its output is compared with sepconv's NumPy reference
  (``use_implementation("reference")``).  TensorFlow's SAME padding is asymmetric for even
  inputs with stride 2; the others get the same explicit pads.  A mismatch is printed loudly,
  marked in the JSON, and that framework is left out of the "fastest peer".
- **Interleaved rounds.**  In each round every case is timed in every framework in turn
  (starting with a different framework each time), with a pause between frameworks that lasts
  until the previous one's threads are idle (ONNX Runtime's spin ~40 ms after its last call;
  :func:`settle`, the pauses kept in the JSON).  A framework's figure in a round is the
  median of many calls (after warm-up calls), each call timed on its own and including the
  framework's Python-level call and its output allocation; its final figure is the median
  over rounds (``--stat p25`` or ``min`` use another per-round statistic, which resists
  interruptions by other work better; the JSON keeps all three).  sepconv's first call in its
  worker (compile or cache load) is reported apart.
- **Peers' ops.**  PyTorch: ``F.conv2d(groups=C)`` and ``aten.convolution_backward`` (the op
  autograd calls).  TensorFlow: the raw depthwise ops and their gradients, ``separable_conv2d``,
  ``Conv2D``, eagerly.  ONNX Runtime: a one- or two-node graph (``Conv`` with ``group=C``;
  ``ConvTranspose`` for the input gradient; no filter gradient).  JAX: jitted
  ``conv_general_dilated`` with ``feature_group_count`` and its ``linear_transpose``.  Both
  gradients (``dw_bwd``, a training step's backward): sepconv's ``depthwise_conv2d_gradients``,
  PyTorch's ``convolution_backward`` asked for both, the others' two gradient calls in turn (what
  TensorFlow's own gradient of the op runs).
- **What else ran.**  Over each timing window the bench reads the hypervisor's steal time and every thread's
  scheduler statistics (the timed worker's threads' run and wait, the machine's other threads), keeps them in the JSON
  and counts, in the header, the rounds far slower than a framework's fastest (:data:`SLOW_ROUND_FACTOR`).
- **Roofline.**  Minimal bytes and FLOPs come from :mod:`sepconv.cost`; the bandwidth at each
  case's own footprint, the fp32 multiply-add peak and NumPy's GEMM rate are probed by :mod:`sepconv.roofline` inside the
  sepconv worker (same environment as the timings).  Depthwise kinds are reported against the
  bandwidth bound, separable and dense conv (GEMM-bound) against the FLOP bound.

The machine may be shared: absolute times are noisy; ratios within one run are what count.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ._bench_peers import FRAMEWORKS, NHWC_FRAMEWORKS, REQUIRES

KINDS = ("dw", "dw_bwd_input", "dw_bwd_filter", "dw_bwd", "sep", "conv")
KIND_OPS = {
    "dw": "depthwise_conv2d",
    "dw_bwd_input": "depthwise_conv2d_backprop_input",
    "dw_bwd_filter": "depthwise_conv2d_backprop_filter",
    "dw_bwd": "depthwise_conv2d_gradients",
    "sep": "separable_conv2d",
    "conv": "conv2d",
}
GEMM_BOUND_KINDS = ("sep", "conv")
PEERS = tuple(f for f in FRAMEWORKS if f != "sepconv")
CASES_FILE = Path(__file__).with_name("bench_cases.json")
QUICK_CASES = ("dw_1x56x56x144_s1", "dw_1x112x112x96_s2", "dw_8x56x56x144_s1", "dwbi_8x28x28x192",
               "dwbf_8x28x28x192", "dwbb_8x28x28x192", "sep_1x56x56x144_to144", "conv_1x56x56x64_to64")
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "1073741824"}
STATISTICS = ("median", "p25", "min")  # per round, over the calls timed in it
TOLERANCE = 2e-4  # max |out - reference| / max |reference|, float32


@dataclass(frozen=True)
class Timing:
    """How long each framework is timed per case and round."""

    rounds: int
    target_s: float
    warmup: int
    min_calls: int
    max_calls: int
    pause_s: float
    gemm_size: int
    settle_max_s: float = 1.0


# Seven rounds, not five: a round whose second CPU the hypervisor holds (SLOW_ROUND_FACTOR) can take 20-60x a small
# layer's time, and the median of five gave in to three such rounds of one case (a random draw, fifty-third session:
# dw_1x71x71x4_k5_s2_m4 601 us, 9.5x PyTorch, from rounds of 619, 606, 34, 23 and 601).  Seven need four.
FULL = Timing(rounds=7, target_s=0.03, warmup=2, min_calls=5, max_calls=5000, pause_s=0.03, gemm_size=2048)
QUICK = Timing(rounds=3, target_s=0.01, warmup=2, min_calls=3, max_calls=2000, pause_s=0.03, gemm_size=2048)

# After a framework's calls its thread pool may keep a core busy: ONNX Runtime's workers spin ~40 ms (fifty-second
# session, this VM: 33 ms of CPU in the 30 ms after its timing window, against at most 0.3 ms for the others), and
# the next framework's 2-thread calls then wait for that core (a sepconv round of 20x its time in the fifty-first
# session's run, after ONNX Runtime's).  So the pause lasts until the process is idle: at least ``pause_s``, then
# until SETTLE_SAMPLE_S samples of its threads' CPU time show less than SETTLE_IDLE_SHARE of one core busy.
SETTLE_SAMPLE_S = 0.005
SETTLE_IDLE_SHARE = 0.1
SETTLE_IDLE_SAMPLES = 2  # in a row: a busy thread the scheduler left out of one sample is not taken for idle
SETTLE_GIVE_UP = 3


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds the threads of process ``pid`` have run (Linux's ``/proc/<pid>/task/*/schedstat``, in ns), or
    None where that cannot be read."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total * 1e-9


def settle(pid: int, pause_s: float, max_s: float) -> float:
    """Wait at least ``pause_s``, then until process ``pid`` is idle (:data:`SETTLE_IDLE_SAMPLES` samples in a row of
    less than :data:`SETTLE_IDLE_SHARE` of a core), at most
    ``max_s`` in all; return the seconds waited (``pause_s`` alone where the process's CPU time cannot be read)."""
    start = time.perf_counter()
    time.sleep(pause_s)
    before = process_cpu_seconds(pid)
    if before is None:
        return pause_s
    idle_samples = 0
    while time.perf_counter() - start < max_s:
        time.sleep(SETTLE_SAMPLE_S)
        after = process_cpu_seconds(pid)
        if after is None:
            break
        idle_samples = idle_samples + 1 if after - before < SETTLE_IDLE_SHARE * SETTLE_SAMPLE_S else 0
        if idle_samples == SETTLE_IDLE_SAMPLES:
            break
        before = after
    return time.perf_counter() - start


# A virtual machine's CPUs may be taken by the hypervisor for other guests: Linux counts that time as *steal* in
# ``/proc/stat``.  On this project's shared VMs whole runs of rounds are sometimes slower for every framework together
# (fifty-third session: 1.1-1.4x for three rounds of five), so the bench reads the steal over each timing window, keeps
# it per round in the JSON and summarizes it in the header: a reader can tell whether the hypervisor took the time.
# (In that session it took 0.1-3.7%, and the slow rounds mostly showed none: their cause was elsewhere.)
STEAL_NOTABLE_SHARE = 0.1  # windows that lost more than this share of the CPUs' time are counted in the header


def steal_seconds(stat_text: str) -> float | None:
    """The CPUs' steal time, in seconds, from the text of ``/proc/stat`` (its ``cpu`` line's eighth number, in clock
    ticks), or None where it has none.

    Examples
    --------
    >>> text = "cpu  4660046 0 264451 2624883 5924 0 1310 33022 0 0\\ncpu0 1 2 3 4 5 6 7 8 0 0\\n"
    >>> steal_seconds(text) * os.sysconf("SC_CLK_TCK")
    33022.0
    """
    for line in stat_text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else None
    return None


def machine_steal_seconds() -> float | None:
    """:func:`steal_seconds` of this machine now, or None where ``/proc/stat`` cannot be read."""
    try:
        with open("/proc/stat") as f:
            return steal_seconds(f.read())
    except OSError:
        return None


def steal_summary(results: dict, frameworks: list[str]) -> dict[str, float | int] | None:
    """Over every timing window of the run: the share of the CPUs' time the hypervisor took, the windows, and those
    that lost more than :data:`STEAL_NOTABLE_SHARE`; None where the steal could not be read."""
    shares = [s for r in results.values() for fw in frameworks for s in r.get(fw, {}).get("steal_share", [])]
    if not shares:
        return None
    return {"share": round(float(np.mean(shares)), 4), "windows": len(shares),
            "notable": sum(s > STEAL_NOTABLE_SHARE for s in shares)}


# Steal did not explain the slow rounds at first (fifty-third session: layers of 10-30 us took ~600 us a call for a
# whole round, in sepconv and in TensorFlow).  So the bench also reads every thread's scheduler statistics
# (``/proc/<pid>/task/<tid>/schedstat``: ns run, ns waited runnable) before and after each timing window: how long the
# timed worker's threads ran and waited for a CPU, and how much the machine's other threads ran.  What it showed
# (fifty-fourth session: a full run, 109 slow windows of 2639, and three runs of 24 small layers): in a slow sepconv
# round the worker's threads ran one CPU's worth of the window (0.88-1.05: the calling thread, which waits at the end
# of every call; ~1.25 in its other rounds) and waited runnable for none of it (0-3%), while the machine's other
# threads ran 0-4% of the CPUs: inside the guest nothing held the second CPU, and the OpenMP thread on it did not run.
# The hypervisor did: the slow windows' steal was 5-9x the others' (mean 3-9% of the CPUs' time against 0.4-1.9%;
# over 5% in half of them).  A call on two threads takes the pace of the virtual CPU the host is holding.
# TensorFlow's slow rounds look the same (its threads ran 0.94-1.02 of a CPU); ONNX Runtime's (its threads spin, 2.0)
# do not.  The JSON keeps each window's figures; the header counts, per framework, the rounds that took
# SLOW_ROUND_FACTOR times its fastest round of the case or more.
SLOW_ROUND_FACTOR = 3.0
SLOW_ROUND_MIN_S = 50e-6  # and at least this long (the smallest layers' rounds vary by a few us)


def thread_times() -> dict[int, tuple[int, int, int]]:
    """Every thread of the machine now: thread id -> (process id, ns run, ns waited runnable), from Linux's
    ``/proc/<pid>/task/<tid>/schedstat``; empty where that cannot be read."""
    times = {}
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return times
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue  # a process that ended meanwhile
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                    run_ns, wait_ns = f.read().split()[:2]
                times[int(tid)] = (int(pid), int(run_ns), int(wait_ns))
            except (OSError, ValueError):
                continue
    return times


def _thread_name(pid: int, tid: int) -> str:
    try:
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            return f"{f.read().strip()} ({pid})"
    except OSError:
        return f"? ({pid})"


def interference(before: dict, after: dict, worker_pid: int, window_s: float) -> dict[str, Any] | None:
    """Over one timing window (:func:`thread_times` before and after): the shares of the window the worker's threads
    ran and waited runnable (each summed over its threads: two busy threads run 2.0), the share of the CPUs' time the
    machine's other threads ran (not this process's, which waits for the worker), and the other thread that ran the
    most; None where the statistics cannot be read.

    Examples
    --------
    >>> before = {10: (10, 0, 0), 11: (10, 0, 0), 50: (50, 0, 0)}
    >>> after = {10: (10, 9_000_000, 1_000_000), 11: (10, 5_000_000, 5_000_000), 50: (50, 4_000_000, 0)}
    >>> r = interference(before, after, worker_pid=10, window_s=0.01)
    >>> r["run_share"], r["wait_share"], round(r["others_share"], 6), r["top_other_ms"]
    (1.4, 0.6, 0.2, 4.0)
    """
    if not before or not after or window_s <= 0:
        return None
    wait_ns, worker_ns, others_ns, top = 0, 0, 0, (0, None)
    for tid, (pid, run_ns, waited_ns) in after.items():
        old = before.get(tid, (pid, 0, 0))
        if pid == worker_pid:
            wait_ns += waited_ns - old[2]
            worker_ns += run_ns - old[1]
        elif pid != os.getpid():  # not this process: it was waiting for the worker, and reads the statistics
            ran = run_ns - old[1]
            others_ns += ran
            if ran > top[0]:
                top = (ran, (pid, tid))
    cpus = os.cpu_count() or 1
    return {"wait_share": round(wait_ns * 1e-9 / window_s, 4), "run_share": round(worker_ns * 1e-9 / window_s, 4),
            "others_share": round(min(1.0, others_ns * 1e-9 / (window_s * cpus)), 4),
            "top_other": _thread_name(*top[1]) if top[1] else None, "top_other_ms": round(top[0] * 1e-6, 2)}


def slow_rounds(results: dict, frameworks: list[str]) -> dict[str, int]:
    """By framework, the rounds that took :data:`SLOW_ROUND_FACTOR` times its fastest round of the case or more (and
    at least :data:`SLOW_ROUND_MIN_S`), over the per-round medians.

    Examples
    --------
    >>> results = {"a": {"sepconv": {"rounds_median_s": [10e-6, 11e-6, 600e-6]}, "tf": {"rounds_median_s": [1e-4]}}}
    >>> slow_rounds(results, ["sepconv", "tf"])
    {'sepconv': 1, 'tf': 0}
    """
    counts = {}
    for fw in frameworks:
        counts[fw] = 0
        for by_framework in results.values():
            rounds = by_framework.get(fw, {}).get("rounds_median_s", [])
            if rounds:
                fastest = min(rounds)
                counts[fw] += sum(r >= SLOW_ROUND_FACTOR * fastest and r >= SLOW_ROUND_MIN_S for r in rounds)
    return counts


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One benchmark case: an op kind on NHWC float32 tensors (the fields of ``cases.json``)."""

    name: str
    kind: str
    shape: tuple[int, int, int, int]
    k: int
    s: int
    padding: str
    m: int = 1
    d: int = 1
    out: int | None = None
    ours: bool = False
    source: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> Case:
        """Parse one entry of a cases file; ``where`` names it in error messages.

        Examples
        --------
        >>> Case.from_dict({"name": "a", "kind": "dw", "shape": [1, 8, 8, 4], "k": 3, "s": 1,
        ...                 "padding": "SAME"}, "test").filter_shape
        (3, 3, 4, 1)
        """
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}; known fields are {sorted(known)}")
        try:
            case = cls(**{**data, "shape": tuple(data["shape"])})
        except TypeError as e:
            raise ValueError(f"{where}: {e}") from None
        if case.kind not in KINDS:
            raise ValueError(f"{where}: `kind` must be one of {KINDS}, got kind={case.kind!r}")
        if len(case.shape) != 4:
            raise ValueError(f"{where}: `shape` must be [N, H, W, C], got {list(case.shape)}")
        if (case.out is None) != (case.kind not in ("sep", "conv")):
            raise ValueError(f"{where}: `out` (output channels) is required for sep and conv cases, "
                             f"and only for them")
        case.geometry()  # the op's own validation
        return case

    @property
    def filter_shape(self) -> tuple[int, int, int, int]:
        """The (depthwise) filter: ``[k, k, C, m]``, or ``[k, k, C, out]`` for conv."""
        c = self.shape[3]
        return (self.k, self.k, c, self.out if self.kind == "conv" else self.m)

    @property
    def pointwise_shape(self) -> tuple[int, int, int, int] | None:
        return (1, 1, self.shape[3] * self.m, self.out) if self.kind == "sep" else None

    def geometry(self):
        """The op's :class:`~sepconv.geometry.Conv2DGeometry` (pads, output size)."""
        from .geometry import conv2d_geometry, depthwise_geometry

        make = conv2d_geometry if self.kind == "conv" else depthwise_geometry
        return make(KIND_OPS[self.kind], self.shape, self.filter_shape, self.s, self.padding, "NHWC", self.d)

    def cost(self):
        """The op's :class:`~sepconv.cost.Cost` (minimal bytes, FLOPs)."""
        from .cost import op_cost

        return op_cost(KIND_OPS[self.kind], self.shape, self.filter_shape, self.s, self.padding,
                       dilations=self.d, pointwise_shape=self.pointwise_shape)

    def for_worker(self) -> dict[str, Any]:
        """The case as a worker needs it: its fields plus the resolved pads and output size."""
        g = self.geometry()
        return {**asdict(self), "shape": list(self.shape), "pads": [list(p) for p in g.pads],
                "out_hw": [g.out_h, g.out_w]}


def load_cases(path: Path | str = CASES_FILE) -> list[Case]:
    """Read a cases file (``{"cases": [...]}``, see ``benchmarks/cases.json``).

    Examples
    --------
    >>> cases = load_cases()
    >>> cases[0].name, cases[0].kind
    ('dw_1x112x112x32_s1', 'dw')
    """
    path = Path(path)
    data = json.loads(path.read_text())
    entries = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f'{path}: expected a JSON object {{"cases": [...]}}, got {type(data).__name__}'
                         + (f" with keys {sorted(data)}" if isinstance(data, dict) else ""))
    cases = [Case.from_dict(entry, f"{path.name}: case {i}") for i, entry in enumerate(entries)]
    names = [c.name for c in cases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: duplicate case names {duplicates}")
    return cases


def make_inputs(case: Case) -> dict[str, np.ndarray]:
    """The case's input arrays (NHWC / HWIO float32), the same on every run (seeded by the name).

    Examples
    --------
    >>> sorted(make_inputs(Case("a", "dw_bwd_filter", (1, 8, 8, 4), 3, 1, "SAME")))
    ['dy', 'w_shape', 'x']
    """
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    g = case.geometry()
    n, _, _, c = case.shape

    def normal(shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)).astype(np.float32)

    out_shape = (n, g.out_h, g.out_w, g.out_c)
    taps = case.k * case.k
    if case.kind == "dw":
        return {"x": normal(case.shape), "w": normal(case.filter_shape, taps**-0.5)}
    if case.kind == "dw_bwd_input":
        return {"w": normal(case.filter_shape, taps**-0.5), "dy": normal(out_shape)}
    if case.kind == "dw_bwd_filter":
        return {"x": normal(case.shape), "dy": normal(out_shape), "w_shape": np.array(case.filter_shape)}
    if case.kind == "dw_bwd":
        return {"x": normal(case.shape), "w": normal(case.filter_shape, taps**-0.5), "dy": normal(out_shape),
                "w_shape": np.array(case.filter_shape)}
    if case.kind == "sep":
        return {"x": normal(case.shape), "wd": normal(case.filter_shape, taps**-0.5),
                "wp": normal(case.pointwise_shape, (c * case.m) ** -0.5)}
    return {"x": normal(case.shape), "w": normal(case.filter_shape, (taps * c) ** -0.5)}


def reference_output(case: Case, a: dict[str, np.ndarray]) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The case's result by sepconv's NumPy reference implementation (the spec): for ``dw_bwd``, the pair
    (input gradient, filter gradient), which the workers return flattened and concatenated.

    Examples
    --------
    >>> case = Case("a", "dw", (1, 8, 8, 4), 3, 1, "SAME")
    >>> reference_output(case, make_inputs(case)).shape
    (1, 8, 8, 4)
    """
    import sepconv

    s, p, d = case.s, case.padding, case.d
    with sepconv.use_implementation("reference"):
        if case.kind == "dw":
            return sepconv.depthwise_conv2d(a["x"], a["w"], s, p, dilations=d)
        if case.kind == "dw_bwd_input":
            return sepconv.depthwise_conv2d_backprop_input(list(case.shape), a["w"], a["dy"], s, p, dilations=d)
        if case.kind == "dw_bwd_filter":
            return sepconv.depthwise_conv2d_backprop_filter(a["x"], list(case.filter_shape), a["dy"], s, p,
                                                            dilations=d)
        if case.kind == "dw_bwd":
            return sepconv.depthwise_conv2d_gradients(a["x"], a["w"], a["dy"], s, p, dilations=d)
        if case.kind == "sep":
            return sepconv.separable_conv2d(a["x"], a["wd"], a["wp"], s, p, dilations=d)
        return sepconv.conv2d(a["x"], a["w"], s, p, dilations=d)


def relative_error(out: np.ndarray, ref: np.ndarray | tuple[np.ndarray, ...]) -> float:
    """``max |out - ref| / max |ref|`` (inf when the shapes differ).  A tuple ``ref`` (several results)
    is compared part by part with ``out``, their concatenation flattened: the largest part's error.

    Examples
    --------
    >>> relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.5]))
    0.2
    >>> relative_error(np.array([1.0, 2.0, 300.0]), (np.array([1.0, 2.5]), np.array([[300.0]])))
    0.2
    """
    if isinstance(ref, tuple):
        sizes = [part.size for part in ref]
        if out.ndim != 1 or out.size != sum(sizes):
            return math.inf
        pieces = np.split(out, np.cumsum(sizes)[:-1])
        return max(relative_error(piece, part.reshape(-1)) for piece, part in zip(pieces, ref, strict=True))
    if out.shape != ref.shape:
        return math.inf
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    error = float(np.max(np.abs(out.astype(np.float64) - ref))) if ref.size else 0.0
    return error / scale if scale else error


# --------------------------------------------------------------------------- workers


def worker_environment(unset_openblas: bool, pin_malloc: bool, bind_threads: bool) -> tuple[dict[str, str], list[str]]:
    """The environment of every worker, and notes on what was changed (printed with the results).

    Examples
    --------
    >>> env, notes = worker_environment(False, True, True)
    >>> env["OMP_NUM_THREADS"], env["MALLOC_TRIM_THRESHOLD_"]
    ('2', '1073741824')
    """
    env = dict(os.environ)
    notes = []
    threads = "2"
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
                 "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        env[name] = threads
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        " --xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=2").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    notes.append("every framework limited to 2 threads")
    if bind_threads:
        env["OMP_PROC_BIND"] = "true"
        notes.append("OMP_PROC_BIND=true for the OpenMP workers (sepconv, PyTorch)")
    if pin_malloc:
        env.update(MALLOC_ENV)
        notes.append("glibc malloc pinned (" + " ".join(f"{k}={v}" for k, v in MALLOC_ENV.items()) + ")")
    else:
        notes.append("glibc malloc NOT pinned")
    if unset_openblas:
        was = {name: env.pop(name) for name in OPENBLAS_ENV if name in env}
        notes.append("unset " + (", ".join(f"{k} (was {v!r})" for k, v in was.items()) if was else
                                 "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (neither was set)"))
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env, notes


# OMP_PROC_BIND binds the thread that loads an OpenMP runtime to one CPU, and every thread it starts later inherits
# that CPU.  It is meant for the OpenMP teams of sepconv and PyTorch, which place their threads themselves; a worker of
# another framework that loaded libgomp (until the fifty-second session, any worker: the workers' module imported
# sepconv's Numba policy, and Numba its OpenMP layer) had ONNX Runtime's, TensorFlow's and JAX's thread pools all on
# one CPU (ONNX Runtime's times 1.65-1.8x their own: sep_1x19x19x728_to728 4959 against 1103 us, conv_1x7x7x512_to512
# 1403 against 659).  So only the OpenMP frameworks get it, and every worker reports its CPUs (``_check_cpus``).
OPENMP_FRAMEWORKS = ("sepconv", "torch_cl", "torch_nchw")


def framework_environment(env: dict[str, str], framework: str) -> dict[str, str]:
    """``env`` (:func:`worker_environment`) for ``framework``'s worker: without ``OMP_PROC_BIND`` unless the framework
    runs on OpenMP threads (:data:`OPENMP_FRAMEWORKS`)."""
    if framework in OPENMP_FRAMEWORKS:
        return env
    return {k: v for k, v in env.items() if k != "OMP_PROC_BIND"}


def _check_cpus(framework: str, info: dict[str, Any]) -> None:
    """Say loudly when a worker's main thread (whose CPUs its new threads inherit) runs on fewer CPUs than the command
    was started on."""
    started_on = _command_cpus()
    cpus = info.get("cpus")
    if started_on and cpus is not None and len(cpus) < len(started_on) and framework not in OPENMP_FRAMEWORKS:
        print(f"\n!!! {framework}'s worker runs on CPUs {cpus} only (the command on {sorted(started_on)}): its threads "
              f"share them, and its times are not its own\n", file=sys.stderr)


# A worker starts on the CPUs this command was started on (SEPCONV_BENCH_CPUS), set before it imports anything that
# loads an OpenMP runtime: with OMP_PROC_BIND=true in the command's own environment, ``import sepconv`` had bound it to
# one CPU, every worker inherited that CPU, and both of sepconv's threads shared it (dw 1x44x44x24 3x3 stride 2:
# 35.8 us against 13.9).  (ONNX Runtime was then thought to set its threads' affinity itself; with
# intra_op_num_threads given it does not: see OPENMP_FRAMEWORKS.)
WORKER_BOOT = (
    "import os, runpy, sys\n"
    "cpus = os.environ.pop('SEPCONV_BENCH_CPUS', '')\n"
    "if cpus and hasattr(os, 'sched_setaffinity'):\n"
    "    os.sched_setaffinity(0, {int(c) for c in cpus.split(',')})\n"
    "runpy.run_module('sepconv._bench_peers', run_name='__main__', alter_sys=True)\n")


def _command_cpus() -> frozenset[int] | None:
    """The CPUs this process was started on, read before an OpenMP runtime could bind it
    (:data:`sepconv.kernels._jit.CPUS_BEFORE_OPENMP`; imported here, not at import: ``sepconv --help`` imports this
    module and needs no Numba)."""
    from .kernels import _jit

    return _jit.CPUS_BEFORE_OPENMP


def worker_cpus_environment() -> dict[str, str]:
    """``SEPCONV_BENCH_CPUS``: the CPUs this process was started on (before an OpenMP runtime could bind it), for
    :data:`WORKER_BOOT`; nothing where the platform does not say."""
    cpus = _command_cpus()
    return {"SEPCONV_BENCH_CPUS": ",".join(map(str, sorted(cpus)))} if cpus else {}


class WorkerError(RuntimeError):
    """A worker died or answered with an error."""


class WorkerProcess:
    """A :mod:`sepconv._bench_peers` worker: send a request, read one JSON answer."""

    def __init__(self, framework: str, env: dict[str, str], log: IO[str]) -> None:
        self.framework = framework
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER_BOOT, framework], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=log, env=env | worker_cpus_environment(), text=True, bufsize=1)

    def send(self, request: dict[str, Any]) -> None:
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise WorkerError(self._died()) from None

    def receive(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            raise WorkerError(self._died())
        return json.loads(line)

    def request(self, request: dict[str, Any]) -> dict[str, Any]:
        self.send(request)
        return self.receive()

    def _died(self) -> str:
        self.log.flush()
        self.log.seek(0)
        tail = "".join(self.log.readlines()[-15:])
        return f"worker {self.framework} died (exit code {self.process.poll()}); its last output:\n{tail}"

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send({"cmd": "quit"})
                self.process.wait(timeout=10)
            except (WorkerError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self.log.close()


def sepconv_import_seconds(env: dict[str, str], repeats: int = 3) -> tuple[float, float]:
    """Seconds ``import sepconv`` takes in a fresh interpreter (NumPy included), and then ``import sepconv.fast``
    (Numba and the kernels' dispatchers, which the first op call imports): the best of ``repeats`` each."""
    code = ("import time; t = time.perf_counter(); import sepconv; t1 = time.perf_counter(); import sepconv.fast; "
            "print(t1 - t, time.perf_counter() - t1)")
    runs = [tuple(map(float, subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                            check=True).stdout.split())) for _ in range(repeats)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def installed_peers() -> list[str]:
    """The peers whose framework can be imported here (checked without importing it).

    Examples
    --------
    >>> set(installed_peers()) <= set(PEERS)
    True
    """
    import importlib.util

    return [p for p in PEERS if all(importlib.util.find_spec(m) is not None for m in REQUIRES[p])]


# --------------------------------------------------------------------------- the run


def _progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _geomean(values: list[float]) -> float | None:
    return float(np.exp(np.mean(np.log(values)))) if values else None


def _footprint_bin(nbytes: int) -> int:
    """Round to two significant binary digits (the bandwidth curve is smooth at that scale)."""
    step = 1 << max(nbytes.bit_length() - 2, 0)
    return max(step, round(nbytes / step) * step)


class Benchmark:
    """One run: start the workers, check every output, time in interleaved rounds, summarize."""

    def __init__(self, cases: list[Case], frameworks: list[str], timing: Timing, env: dict[str, str]) -> None:
        self.cases = cases
        self.frameworks = frameworks
        self.timing = timing
        self.env = env
        self.workers: dict[str, WorkerProcess] = {}
        self.info: dict[str, dict] = {}
        self.tmp = tempfile.TemporaryDirectory(prefix="sepconv-bench-")
        # results[case][framework] = {"status", "first_call_s", "max_rel_error", "rounds_median_s", ...}
        self.results: dict[str, dict[str, dict[str, Any]]] = {c.name: {} for c in cases}
        self.never_idle: dict[str, int] = {}  # pauses that reached Timing.settle_max_s, by framework

    def start_workers(self) -> None:
        _progress(f"starting {len(self.frameworks)} workers: {', '.join(self.frameworks)}")
        for fw in self.frameworks:
            log = tempfile.TemporaryFile("w+", prefix=f"{fw}-", dir=self.tmp.name)
            self.workers[fw] = WorkerProcess(fw, framework_environment(self.env, fw), log)
        for fw, worker in list(self.workers.items()):
            try:
                worker.receive()  # "ready"
                self.info[fw] = worker.request({"cmd": "info"})
                _check_cpus(fw, self.info[fw])
            except WorkerError as e:
                print(f"\n!!! {e}\n!!! {fw} is left out of this run\n", file=sys.stderr)
                worker.close()
                del self.workers[fw]
        if "sepconv" not in self.workers:
            raise WorkerError("the sepconv worker did not start (see above)")
        self.frameworks = [fw for fw in self.frameworks if fw in self.workers]

    def setup_and_check(self) -> None:
        """Build every case in every worker, then compare each output with the reference.

        sepconv goes first and alone (its first call, a compile or cache load, is reported and
        must not compete with the peers' setup); then the peers in parallel.
        """
        for i, case in enumerate(self.cases, 1):
            _progress(f"setup {i}/{len(self.cases)} {case.name}")
            inputs = make_inputs(case)
            path = Path(self.tmp.name) / f"{case.name}.npz"
            np.savez(path, **inputs)
            request = {"cmd": "setup", "case": case.for_worker(), "inputs": str(path)}
            answers = {}
            for group in (["sepconv"], [fw for fw in self.workers if fw != "sepconv"]):
                for fw in group:
                    self.workers[fw].send({**request, "output": str(Path(self.tmp.name) / f"{case.name}.{fw}.npy")})
                for fw in group:
                    answers[fw] = self.workers[fw].receive()
            ref = reference_output(case, inputs)
            for fw, answer in answers.items():
                self.results[case.name][fw] = self._check(case, fw, answer, ref)
            path.unlink()

    def _check(self, case: Case, fw: str, answer: dict[str, Any], ref: np.ndarray) -> dict[str, Any]:
        if "unsupported" in answer:
            return {"status": "n/a", "reason": answer["unsupported"]}
        if "error" in answer:
            print(f"\n!!! {fw} failed on {case.name}: {answer['error']}\n", file=sys.stderr)
            return {"status": "error", "reason": answer["error"]}
        out_path = Path(self.tmp.name) / f"{case.name}.{fw}.npy"
        error = relative_error(np.load(out_path), ref)
        out_path.unlink()
        result = {"first_call_s": answer["first_call_s"], "second_call_s": answer["second_call_s"],
                  "max_rel_error": error if math.isfinite(error) else None, "calls_per_round": [],
                  "settle_s": [], "steal_share": [], "interference": [], **{f"rounds_{stat}_s": [] for stat in STATISTICS}}
        if error <= TOLERANCE:
            return {"status": "ok", **result}
        print(f"\n!!! MISMATCH: {fw} on {case.name}: max |out - reference| / max |reference| = {error:.3g} "
              f"(tolerance {TOLERANCE}); its time is not compared\n", file=sys.stderr)
        return {"status": "mismatch", **result}

    def machine_probes(self) -> dict[str, Any]:
        """fp32 multiply-add peak and GEMM rate, and the bandwidth at each case's footprint (in the sepconv worker)."""
        _progress("probing the fp32 multiply-add peak, the GEMM rate and the bandwidth at each case's footprint")
        worker = self.workers["sepconv"]
        fma = worker.request({"cmd": "fma"})
        gemm = worker.request({"cmd": "gemm", "size": self.timing.gemm_size})
        bandwidths: dict[int, dict] = {}
        for case in self.cases:
            footprint = _footprint_bin(case.cost().bytes_total)
            if footprint not in bandwidths:
                bandwidths[footprint] = worker.request({"cmd": "bandwidth", "footprint_bytes": footprint})
        return {"fma": fma, "gemm": gemm, "bandwidth": bandwidths}

    def recheck_peaks(self, probes: dict[str, Any]) -> dict[str, Any]:
        """Probe the multiply-add peak and the GEMM rate again after the rounds and keep the better figures (a busy
        moment during one probe only lowers it); both figures stay in the result."""
        rechecked = dict(probes)
        for name, request in (("fma", {"cmd": "fma"}), ("gemm", {"cmd": "gemm", "size": self.timing.gemm_size})):
            before, after = probes[name], self.workers["sepconv"].request(request)
            rechecked[name] = {**max(before, after, key=lambda p: p["gflops"]), "before_gflops": before["gflops"],
                               "after_gflops": after["gflops"]}
        return rechecked

    def time_rounds(self) -> None:
        """Interleaved rounds: each case in each framework in turn, a different framework first each time."""
        t = self.timing
        start = time.perf_counter()
        for r in range(t.rounds):
            _progress(f"round {r + 1}/{t.rounds} ({time.perf_counter() - start:.0f} s so far)")
            for ci, case in enumerate(self.cases):
                runnable = [fw for fw in self.frameworks if self.results[case.name][fw]["status"] in ("ok", "mismatch")]
                shift = (r + ci) % max(len(runnable), 1)
                for fw in runnable[shift:] + runnable[:shift]:
                    threads_before = thread_times()
                    steal_before, window_start = machine_steal_seconds(), time.perf_counter()
                    answer = self.workers[fw].request({
                        "cmd": "time", "case": case.name, "warmup": t.warmup, "target_s": t.target_s,
                        "min_calls": t.min_calls, "max_calls": t.max_calls})
                    steal_after, window_s = machine_steal_seconds(), time.perf_counter() - window_start
                    window_interference = interference(threads_before, thread_times(),
                                                       self.workers[fw].process.pid, window_s)
                    result = self.results[case.name][fw]
                    if steal_before is not None and steal_after is not None:
                        cpu_s = window_s * (os.cpu_count() or 1)
                        result["steal_share"].append(round(min(1.0, (steal_after - steal_before) / cpu_s), 4))
                    if window_interference is not None:
                        result["interference"].append(window_interference)
                    if "error" in answer:
                        print(f"\n!!! {fw} failed while timing {case.name}: {answer['error']}\n", file=sys.stderr)
                        result.update(status="error", reason=answer["error"])
                        continue
                    for stat in STATISTICS:
                        result[f"rounds_{stat}_s"].append(answer[f"{stat}_s"])
                    result["calls_per_round"].append(answer["calls"])
                    result["settle_s"].append(round(self._settle(fw), 4))

    def _settle(self, fw: str) -> float:
        """The pause after ``fw``'s timing (:func:`settle`); a framework whose threads were still busy at the end of
        SETTLE_GIVE_UP pauses (they never rest) gets the fixed pause from then on, so that the run does not take
        ``settle_max_s`` longer per case."""
        t = self.timing
        if self.never_idle.get(fw, 0) >= SETTLE_GIVE_UP:
            time.sleep(t.pause_s)
            return t.pause_s
        waited = settle(self.workers[fw].process.pid, t.pause_s, t.settle_max_s)
        if waited >= t.settle_max_s:
            self.never_idle[fw] = self.never_idle.get(fw, 0) + 1
            if self.never_idle[fw] == SETTLE_GIVE_UP:
                _progress(f"{fw}'s threads never went idle within {t.settle_max_s:.1f} s after its timings: "
                          f"a fixed {t.pause_s * 1e3:.0f} ms pause after it from now on")
        return waited

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()
        self.tmp.cleanup()


def summarize(cases: list[Case], results: dict, probes: dict, statistic: str = "median") -> tuple[list[dict], dict]:
    """Per-case figures (ours, fastest peer, ratios, GB/s, bound fractions) and per-kind geometric means.

    A framework's time is the median over rounds of its per-round ``statistic`` (of the calls timed
    in that round: ``"median"``, ``"p25"`` or ``"min"``).
    """
    key = f"rounds_{statistic}_s"
    gflops = probes["fma"]["gflops"]
    rows = []
    for case in cases:
        cost = case.cost()
        bandwidth = probes["bandwidth"][_footprint_bin(cost.bytes_total)]["gbps"]
        per_fw = results[case.name]
        times = {fw: float(np.median(r[key])) for fw, r in per_fw.items()
                 if r["status"] in ("ok", "mismatch") and r[key]}
        ours = times.get("sepconv")
        valid_peers = {fw: t for fw, t in times.items() if fw != "sepconv" and per_fw[fw]["status"] == "ok"}
        nhwc_peers = {fw: t for fw, t in valid_peers.items() if fw in NHWC_FRAMEWORKS}
        fastest = min(valid_peers, key=valid_peers.get) if valid_peers else None
        fastest_nhwc = min(nhwc_peers, key=nhwc_peers.get) if nhwc_peers else None
        bw_bound_s = cost.bytes_total / (bandwidth * 1e9)
        flop_bound_s = cost.flops / (gflops * 1e9)
        bound = "flop" if case.kind in GEMM_BOUND_KINDS else "bandwidth"
        bound_s = flop_bound_s if bound == "flop" else bw_bound_s
        row = {
            "case": case.name, "kind": case.kind, "ours": case.ours, "source": case.source,
            "sepconv_us": ours * 1e6 if ours else None,
            "sepconv_first_call_ms": (per_fw["sepconv"].get("first_call_s") or 0) * 1e3 or None,
            "sepconv_check": per_fw["sepconv"]["status"],
            "sepconv_max_rel_error": per_fw["sepconv"].get("max_rel_error"),
            "fastest_peer": fastest, "fastest_peer_us": valid_peers[fastest] * 1e6 if fastest else None,
            "ratio": ours / valid_peers[fastest] if ours and fastest else None,
            "fastest_nhwc_peer": fastest_nhwc,
            "fastest_nhwc_peer_us": nhwc_peers[fastest_nhwc] * 1e6 if fastest_nhwc else None,
            "ratio_nhwc": ours / nhwc_peers[fastest_nhwc] if ours and fastest_nhwc else None,
            "bytes": cost.bytes_total, "flops": cost.flops, "intensity_flops_per_byte": cost.intensity,
            "bandwidth_gbps_at_footprint": bandwidth, "bw_bound_us": bw_bound_s * 1e6,
            "flop_bound_us": flop_bound_s * 1e6, "bound": bound,
            "gbps": cost.bytes_total / ours / 1e9 if ours else None,
            "gflops": cost.flops / ours / 1e9 if ours else None,
            "fraction_of_bound": bound_s / ours if ours else None,
            "fraction_of_gemm_rate": cost.flops / (probes["gemm"]["gflops"] * 1e9) / ours if ours else None,
            "frameworks_us": {fw: t * 1e6 for fw, t in times.items()},
            "mismatches": [fw for fw, r in per_fw.items() if r["status"] == "mismatch"],
            "errors": [fw for fw, r in per_fw.items() if r["status"] == "error"],
        }
        rows.append(row)
    summary = {}
    for kind in KINDS:
        kind_rows = [r for r in rows if r["kind"] == kind]
        if not kind_rows:
            continue
        summary[kind] = {
            "cases": len(kind_rows),
            "geomean_ratio": _geomean([r["ratio"] for r in kind_rows if r["ratio"]]),
            "geomean_ratio_nhwc": _geomean([r["ratio_nhwc"] for r in kind_rows if r["ratio_nhwc"]]),
            "max_ratio": max((r["ratio"] for r in kind_rows if r["ratio"]), default=None),
        }
    return rows, summary


# --------------------------------------------------------------------------- printing


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _percent(fraction: float | None) -> str:
    if fraction is None:
        return "-"
    return f"{100 * fraction:.0f}%" if fraction >= 0.1 else f"{100 * fraction:.2g}%"


def format_table(rows: list[dict], summary: dict, frameworks: list[str], statistic: str = "median") -> str:
    """The Markdown tables printed at the end of a run (and meant for the README).

    Examples
    --------
    >>> format_table([], {}, ["sepconv"]).startswith("| case | sepconv µs |")
    True
    """
    lines = ["| case | sepconv µs | fastest peer | µs | ours/peer | fastest NHWC peer | µs | ours/NHWC "
             "| GB/s | % of bound | first call ms | check |",
             "| --- | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        bound = f"{_percent(r['fraction_of_bound'])} " + (
            "FLOP" if r["bound"] == "flop" else "BW")
        check = "ok" if r["sepconv_check"] == "ok" else f"**sepconv {r['sepconv_check'].upper()}**"
        if r["mismatches"]:
            check += "; mismatch: " + ", ".join(fw for fw in r["mismatches"] if fw != "sepconv")
        if r["errors"]:
            check += "; error: " + ", ".join(r["errors"])
        lines.append(
            f"| {r['case']}{' *' if r['ours'] else ''} | {_fmt(r['sepconv_us'])} | {r['fastest_peer'] or '-'} "
            f"| {_fmt(r['fastest_peer_us'])} | {_fmt(r['ratio'], '.2f')} | {r['fastest_nhwc_peer'] or '-'} "
            f"| {_fmt(r['fastest_nhwc_peer_us'])} | {_fmt(r['ratio_nhwc'], '.2f')} | {_fmt(r['gbps'], '.3g')} "
            f"| {bound} | {_fmt(r['sepconv_first_call_ms'], '.0f')} | {check} |")
    lines += ["", "`*` = case added in this repo (not in the shared cases). Ratios are sepconv time / peer time "
              "(below 1 = sepconv faster). % of bound: the case's minimal bytes at the bandwidth measured at its "
              "footprint (BW), or its FLOPs at the measured multiply-add peak (FLOP), over sepconv's time (a Winograd "
              "product does fewer multiply-adds than the FLOPs counted here, and may read above 100%). First call: "
              "the case's first call in the sepconv worker, after the cases above it (so it shows the compile or "
              "cache load of any kernel those did not use).", ""]
    lines += ["| kind | cases | geomean ours/fastest peer | geomean ours/fastest NHWC peer | worst ours/peer |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for kind, s in summary.items():
        lines.append(f"| {kind} | {s['cases']} | {_fmt(s['geomean_ratio'], '.2f')} "
                     f"| {_fmt(s['geomean_ratio_nhwc'], '.2f')} | {_fmt(s['max_ratio'], '.2f')} |")
    lines += ["", f"All frameworks, µs (median over rounds of the per-round {statistic}; n/a = no such op):", "",
              "| case | " + " | ".join(frameworks) + " |", "| --- |" + " ---: |" * len(frameworks)]
    for r in rows:
        cells = []
        for fw in frameworks:
            if fw in r["errors"]:
                cells.append("error")
            elif fw in r["frameworks_us"]:
                cells.append(_fmt(r["frameworks_us"][fw]) + (" WRONG" if fw in r["mismatches"] else ""))
            else:
                cells.append("n/a")
        lines.append(f"| {r['case']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_statistics(by_statistic: dict[str, dict]) -> str:
    """Geometric-mean ratios per kind under each per-round statistic: how much the noise moves them.

    Examples
    --------
    >>> print(format_statistics({"median": {"dw": {"geomean_ratio": 0.5}}, "min": {"dw": {"geomean_ratio": 0.4}}}))
    | kind | geomean ours/fastest peer (median) | (min) |
    | --- | ---: | ---: |
    | dw | 0.50 | 0.40 |
    """
    stats = list(by_statistic)
    kinds = list(by_statistic[stats[0]])
    lines = [f"| kind | geomean ours/fastest peer ({stats[0]}) | " + " | ".join(f"({s})" for s in stats[1:]) + " |",
             "| --- |" + " ---: |" * len(stats)]
    for kind in kinds:
        lines.append(f"| {kind} | " + " | ".join(_fmt(by_statistic[s][kind]["geomean_ratio"], ".2f")
                                               for s in stats) + " |")
    return "\n".join(lines)


def format_overhead(overhead: dict[str, float]) -> str:
    """One paragraph on the Python-level cost of a call.

    Examples
    --------
    >>> format_overhead({"public_call_us": 5.0, "implementation_call_us": 3.0, "output_allocation_us": 0.2,
    ...                  "kernel_call_floor_us": 0.3, "api_overhead_us": 2.0}).split(":")[0]
    'Call overhead (depthwise 1x4x4x8, 3x3, SAME)'
    """
    o = overhead
    return (f"Call overhead (depthwise 1x4x4x8, 3x3, SAME): public call {o['public_call_us']:.2f} µs; "
            f"the implementation function alone (geometry precomputed) {o['implementation_call_us']:.2f} µs, "
            f"so argument normalization + layout handling in the public op = {o['api_overhead_us']:.2f} µs; "
            f"the kernel alone ≈ a jitted call with the same arrays {o['kernel_call_floor_us']:.2f} µs, "
            f"np.empty of the output {o['output_allocation_us']:.2f} µs.")


# --------------------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``sepconv bench`` (also ``python benchmarks/bench_ops.py``)."""
    parser.add_argument("--quick", action="store_true",
                        help=f"a one-minute look: {len(QUICK_CASES)} cases, {QUICK.rounds} short rounds")
    parser.add_argument("--cases", help="comma-separated case names (default: all, or the quick set)")
    parser.add_argument("--kinds", help=f"comma-separated kinds among {','.join(KINDS)}")
    parser.add_argument("--peers", help=f"comma-separated peers among {','.join(PEERS)} (default: all installed)")
    parser.add_argument("--rounds", type=int, help=f"interleaved rounds (default {FULL.rounds}, quick {QUICK.rounds})")
    parser.add_argument("--cases-file", type=Path, default=CASES_FILE, help="JSON cases file (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="where to write the results (default benchmarks/results/latest.json "
                        "in a source checkout, else ./sepconv-bench.json)")
    parser.add_argument("--unset-openblas-env", action=argparse.BooleanOptionalAction, default=True,
                        help="unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE in the workers (NumPy's BLAS is slow "
                        "with them; default on)")
    parser.add_argument("--pin-malloc", action=argparse.BooleanOptionalAction, default=True,
                        help="MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ = 1 GiB in every worker (default on)")
    parser.add_argument("--bind-threads", action=argparse.BooleanOptionalAction, default=True,
                        help="OMP_PROC_BIND=true in the OpenMP workers: sepconv, PyTorch (default on)")
    parser.add_argument("--stat", choices=STATISTICS, default="median",
                        help="per-round statistic of the timed calls used in the tables (default median; p25 or "
                        "min resist interference on a busy machine); the JSON keeps all three")
    parser.add_argument("--overhead", action="store_true",
                        help="only measure the Python-level cost of a sepconv call (µs) and exit")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")


def default_json_path() -> Path:
    """``benchmarks/results/latest.json`` of the source checkout, else ``./sepconv-bench.json``."""
    repo_benchmarks = Path(__file__).resolve().parents[2] / "benchmarks"
    if repo_benchmarks.is_dir():
        return repo_benchmarks / "results" / "latest.json"
    return Path("sepconv-bench.json")


def _select(args: argparse.Namespace, cases: list[Case]) -> tuple[list[Case], list[str]]:
    """The cases and frameworks the options ask for; ``ValueError`` naming any unknown one."""
    by_name = {c.name: c for c in cases}
    if args.cases:
        names = [n.strip() for n in args.cases.split(",") if n.strip()]
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"unknown case(s) {', '.join(unknown)}; known cases: {', '.join(by_name)}")
        selected = [by_name[n] for n in names]
    elif args.quick and all(n in by_name for n in QUICK_CASES):
        selected = [by_name[n] for n in QUICK_CASES]
    else:
        selected = list(cases)
    if args.kinds:
        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown kind(s) {', '.join(unknown)}; kinds are {', '.join(KINDS)}")
        selected = [c for c in selected if c.kind in kinds]
    if not selected:
        raise ValueError("no case left to run after --cases/--kinds")
    installed = installed_peers()
    if args.peers:
        peers = [p.strip() for p in args.peers.split(",") if p.strip()]
        unknown = [p for p in peers if p not in PEERS]
        if unknown:
            raise ValueError(f"unknown peer(s) {', '.join(unknown)}; peers are {', '.join(PEERS)}")
        missing = [p for p in peers if p not in installed]
        if missing:
            raise ValueError(f"peer(s) {', '.join(missing)} not installed here (installed: {', '.join(installed)})")
    else:
        peers = installed
    return selected, ["sepconv", *peers]


def _overhead_only(env: dict[str, str]) -> int:
    with tempfile.TemporaryFile("w+") as log:
        worker = WorkerProcess("sepconv", env, log)
        try:
            worker.receive()
            overhead = worker.request({"cmd": "overhead"})
        finally:
            worker.close()
    if "error" in overhead:
        print(f"sepconv bench: overhead measurement failed: {overhead['error']}", file=sys.stderr)
        return 1
    print(format_overhead(overhead))
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the benchmark the options describe; print the tables; write the JSON.  Returns the exit code."""
    try:
        all_cases = load_cases(args.cases_file)
        cases, frameworks = _select(args, all_cases)
    except (OSError, ValueError) as e:
        print(f"sepconv bench: {e}", file=sys.stderr)
        return 2
    if args.list:
        for c in all_cases:
            print(f"{c.name:28} {c.kind:14} {'ours ' if c.ours else 'shared'} {c.source}")
        return 0
    env, notes = worker_environment(args.unset_openblas_env, args.pin_malloc, args.bind_threads)
    if args.overhead:
        return _overhead_only(env)
    base = QUICK if args.quick else FULL
    timing = Timing(**{**asdict(base), "rounds": args.rounds or base.rounds})
    json_path = args.json or default_json_path()
    load_at_start = os.getloadavg()[0]
    _progress(f"load average {load_at_start:.1f}; " + "; ".join(notes))
    started = time.time()
    bench = Benchmark(cases, frameworks, timing, env)
    try:
        import_s, fast_import_s = sepconv_import_seconds(env)
        bench.start_workers()
        bench.setup_and_check()
        probes = bench.machine_probes()
        _progress("measuring the call overhead")
        overhead = bench.workers["sepconv"].request({"cmd": "overhead"})
        bench.time_rounds()
        probes = bench.recheck_peaks(probes)
    except WorkerError as e:
        print(f"sepconv bench: {e}", file=sys.stderr)
        return 1
    finally:
        bench.close()
    frameworks = bench.frameworks
    rows, summary = summarize(cases, bench.results, probes, args.stat)
    by_statistic = {stat: summarize(cases, bench.results, probes, stat)[1] for stat in STATISTICS}
    meta = {
        "command": _command_line(), "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1), "machine": platform.node(), "cpu": _cpu_description(),
        "plans": _plans(),
        "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg()[0], "notes": notes,
        "timing": asdict(timing), "statistic": args.stat, "tolerance_rel": TOLERANCE,
        "python": platform.python_version(), "sepconv_import_s": import_s, "sepconv_fast_import_s": fast_import_s,
        "settle_ms": _settle_summary(bench.results, bench.frameworks),
        "steal": steal_summary(bench.results, bench.frameworks),
        "slow_rounds": slow_rounds(bench.results, bench.frameworks),
        "frameworks": {fw: {"version": bench.info[fw]["version"],
                            "import_s": import_s + fast_import_s if fw == "sepconv" else bench.info[fw]["import_s"]}
                       for fw in frameworks},
    }
    report = {
        "meta": meta,
        "machine_probes": {"fma": probes["fma"], "gemm": probes["gemm"],
                           "bandwidth": list(probes["bandwidth"].values())},
        "overhead": overhead,
        "summary": summary,
        "summary_by_statistic": by_statistic,
        "cases": [{**row, "detail": bench.results[row["case"]]} for row in rows],
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(format_header(meta, probes))
    print()
    print(format_table(rows, summary, frameworks, args.stat))
    print()
    print(format_statistics(by_statistic))
    print()
    print(f"Call overhead: measurement failed: {overhead['error']}" if "error" in overhead else
          format_overhead(overhead))
    bad = [r["case"] for r in rows if r["sepconv_check"] != "ok"]
    if bad:
        print(f"\n!!! sepconv's result does not match the reference on: {', '.join(bad)}")
    print(f"\nJSON: {json_path}")
    return 1 if bad else 0


def format_header(meta: dict[str, Any], probes: dict[str, Any]) -> str:
    """The lines above the tables: the command, machine, load, versions, environment and probes."""
    timing = meta["timing"]
    versions = ", ".join(f"{fw} {info['version']}" for fw, info in meta["frameworks"].items())
    return "\n".join([
        f"# `{meta['command']}` at {meta['started_utc']}, {meta['seconds']:.0f} s",
        f"# {meta['cpu']}, {meta.get('plans', '?')} plans; load average {meta['load_average_at_start']:.1f} at the start, "
        f"{meta['load_average_at_end']:.1f} at the end (other work on the machine makes times noisy)",
        f"# {versions}",
        f"# {'; '.join(meta['notes'])}",
        f"# times: median over {timing['rounds']} interleaved rounds of each round's {meta['statistic']} "
        f"per call (calls timed one by one for ~{timing['target_s'] * 1e3:.0f} ms after {timing['warmup']} "
        f"warm-up calls; between frameworks a pause of {timing['pause_s'] * 1e3:.0f} ms and until the last one's "
        f"threads are idle{_settle_note(meta)})",
        f"# {_steal_note(meta['steal'])}",
        f"# {_slow_rounds_note(meta['slow_rounds'], timing['rounds'])}",
        f"# fp32 multiply-add peak {probes['fma']['gflops']:.0f} GFLOP/s (the FLOP bound); NumPy's GEMM "
        f"{probes['gemm']['gflops']:.0f} GFLOP/s ({probes['gemm']['size']}^3); "
        f"`import sepconv` {meta['sepconv_import_s']:.2f} s (fresh process, best of 3; its kernels, "
        f"`sepconv.fast`, {meta['sepconv_fast_import_s']:.2f} s more at the first op call)",
    ])


def _settle_summary(results: dict, frameworks: list[str]) -> dict[str, dict[str, float]]:
    """The pauses after each framework's timings (:func:`settle`): median and longest, ms."""
    summary = {}
    for fw in frameworks:
        waits = [s for r in results.values() for s in r.get(fw, {}).get("settle_s", [])]
        if waits:
            summary[fw] = {"median": round(1e3 * float(np.median(waits)), 1), "max": round(1e3 * max(waits), 1)}
    return summary


def _settle_note(meta: dict[str, Any]) -> str:
    """The frameworks whose pauses lasted longer than the fixed one (median, longest)."""
    fixed_ms = meta["timing"]["pause_s"] * 1e3
    waited = [f"{fw} {w['median']:.0f} ms (longest {w['max']:.0f})" for fw, w in meta["settle_ms"].items()
              if w["median"] > fixed_ms + 1e3 * SETTLE_SAMPLE_S * SETTLE_IDLE_SAMPLES + 2]
    return f": after {', '.join(waited)}" if waited else ""


def _slow_rounds_note(counts: dict[str, int], rounds: int) -> str:
    """The header's line on the rounds that took :data:`SLOW_ROUND_FACTOR` times a framework's fastest or more."""
    listed = ", ".join(f"{fw} {n}" for fw, n in counts.items())
    return (f"rounds of a case at {SLOW_ROUND_FACTOR:g}x or more the framework's fastest of its {rounds} (mostly a "
            f"virtual CPU held by the hypervisor, see sepconv.bench.SLOW_ROUND_FACTOR; threads' run and wait per window "
            f"in the JSON: interference): {listed}")


def _steal_note(steal: dict[str, float | int] | None) -> str:
    """The header's line on the time the hypervisor took during the timing windows (:func:`steal_summary`)."""
    if steal is None:
        return "steal time (CPU time taken by the hypervisor): not readable here"
    return (f"steal time (CPU time the hypervisor took for other guests) during the timing windows: "
            f"{100 * steal['share']:.1f}% of the CPUs' time; {steal['notable']} of {steal['windows']} windows lost "
            f"more than {100 * STEAL_NOTABLE_SHARE:.0f}% (per window in the JSON: steal_share)")


def _command_line() -> str:
    if Path(sys.argv[0]).name in ("sepconv", "__main__.py"):
        return " ".join(["sepconv", *sys.argv[1:]])
    return " ".join(["python", *sys.argv])


def _cpu_description() -> str:
    from .roofline import machine_description

    return machine_description()


def _plans() -> str:
    """The kernel plans this CPU takes (:mod:`sepconv.fast.registers`; the workers take the same), with the CPU's
    name as LLVM gives it, e.g. ``"AVX-512 on 256-bit units (znver4)"``."""
    import llvmlite.binding as llvm

    from .fast import registers

    return f"{registers.PLANS} ({llvm.get_host_cpu_name()})"


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/bench_ops.py [options]``: the same as ``sepconv bench [options]``."""
    parser = argparse.ArgumentParser(prog="bench_ops.py", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
