"""``sepconv explain`` in a subprocess, as a user runs it: text, JSON, --measure, --plot, --model, bad arguments.

A tiny roofline is written to a temporary cache directory first, so the probe never runs here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sepconv.cost import op_cost
from sepconv.models import model_totals
from sepconv.roofline import Roofline, save_roofline

ROOFLINE = Roofline(peak_gflops=100.0, footprints_bytes=(1_000, 1_000_000), bandwidths_gbs=(50.0, 10.0),
                    threads=2, machine="test machine", measured_at="2026-01-01T00:00:00Z", probe_seconds=0.0)
SEED = ["--input", "1x14x14x32", "--kernel", "3", "--out", "64"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Environment for the subprocess: the tiny roofline cached in a temporary directory."""
    cache = tmp_path_factory.mktemp("cache")
    environment = {**os.environ, "SEPCONV_CACHE_DIR": str(cache)}
    old = os.environ.get("SEPCONV_CACHE_DIR")
    os.environ["SEPCONV_CACHE_DIR"] = str(cache)  # cache_path() for this machine, in that directory
    try:
        save_roofline(ROOFLINE)
    finally:
        if old is None:
            del os.environ["SEPCONV_CACHE_DIR"]
        else:
            os.environ["SEPCONV_CACHE_DIR"] = old
    return environment


def explain(env, *args: str, code: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "sepconv", "explain", *args] if code is None else [
        sys.executable, "-c", code, "explain", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_seed_example_text(env):
    result = explain(env, *SEED)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # the cached roofline was used: no probe
    out = result.stdout
    row = {line.split("  ")[0].strip(): line.split() for line in out.splitlines() if "  " in line}
    assert row["output shape"][-4:] == ["1x14x14x64", "1x14x14x32", "1x14x14x64", "1x14x14x64"]
    assert row["parameters"][-4:] == ["18,432", "288", "2,048", "2,336"]  # 3*3*32*64 for conv2d
    assert row["multiply-adds"][-4:] == ["3,612,672", "56,448", "401,408", "457,856"]
    assert row["FLOPs (2 x MACs)"][-1] == "915,712"
    assert "= 2 x 1 x 32 x 14 x 14 x (3 x 3 + 64) = 915,712 FLOPs: agrees with separable (915,712)" in out
    assert "Why depthwise is memory-bound" in out and "ridge point of 10.0 FLOP/byte" in out
    assert "padding" in out and "TensorFlow's convention" in out


def test_seed_example_json(env):
    result = explain(env, *SEED, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    ops = {op["name"]: op for op in report["ops"]}
    assert ops["conv2d"]["output_shape"] == [1, 14, 14, 64] and ops["conv2d"]["params"] == 3 * 3 * 32 * 64
    assert report["seed_formula"]["agrees"] and report["seed_formula"]["flops"] == 2 * 32 * 14 * 14 * (9 + 64)
    conv = op_cost("conv2d", (1, 14, 14, 32), (3, 3, 32, 64))
    assert ops["conv2d"]["bound_seconds"] == pytest.approx(ROOFLINE.bound_seconds(conv))
    assert ops["conv2d"]["bound_by"] == "compute"
    assert ops["depthwise"]["bound_dram_by"] == "memory"
    assert ops["separable"]["bytes_intermediate_unfused"] == 2 * 14 * 14 * 32 * 4
    assert report["roofline"]["peak_gflops"] == 100.0


def test_depthwise_multiplier_64_gives_2048_channels(env):
    result = explain(env, *SEED, "--multiplier", "64", "--json")
    ops = {op["name"]: op for op in json.loads(result.stdout)["ops"]}
    assert ops["depthwise"]["output_shape"] == [1, 14, 14, 2048]
    assert ops["depthwise"]["params"] == 3 * 3 * 32 * 64
    assert ops["pointwise"]["filter"] == "1x1x2048x64"
    seed = json.loads(result.stdout)["seed_formula"]
    assert not seed["applies"] and seed["general_flops"] == ops["separable"]["flops"]


def test_nchw_stride_and_explicit_padding(env):
    result = explain(env, "--input", "2x32x15x17", "--kernel", "3x5", "--out", "8", "--data-format", "NCHW",
                     "--stride", "2", "--padding", "0,1,2,2", "--json")
    assert result.returncode == 0, result.stderr
    ops = {op["name"]: op for op in json.loads(result.stdout)["ops"]}
    assert ops["conv2d"]["output_shape"] == [2, 8, 7, 9]  # (15+0+1-3)//2+1, (17+2+2-5)//2+1
    assert ops["depthwise"]["pads"] == [[0, 1], [2, 2]]


def test_measure_reports_times_and_fraction_of_bound(env):
    result = explain({**env, "SEPCONV_IMPL": "reference"}, "--input", "1x6x6x4", "--kernel", "3", "--out", "5",
                     "--measure", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["measured_with"]["implementation"] == "reference"
    for op in report["ops"]:
        assert op["measured_seconds"] > 0 and op["measured_calls"] >= 3
        assert op["fraction_of_bound"] == pytest.approx(op["bound_seconds"] / op["measured_seconds"])


def test_measure_text(env):
    result = explain(env, "--input", "1x6x6x4", "--kernel", "3", "--out", "5", "--measure")
    assert result.returncode == 0, result.stderr
    assert "measured (fast)" in result.stdout and "fraction of bound" in result.stdout


def test_model_text_and_json(env):
    result = explain(env, "--model", "mobilenet_v2")
    assert result.returncode == 0, result.stderr
    assert "300,774,272" in result.stdout and "published 300M (+0.26%)" in result.stdout
    assert "classifier" in result.stdout and "Not counted: batch norm" in result.stdout
    result = explain(env, "--model", "mobilenet_v1", "--json")
    report = json.loads(result.stdout)
    assert len(report["layers"]) == 28
    assert report["totals"]["macs"] == model_totals("mobilenet_v1").macs == 568_740_352
    assert report["totals"]["params"] == 4_210_088
    assert report["layers"][0]["output_shape"] == [1, 112, 112, 32]


def test_plot_writes_a_png(env, tmp_path):
    path = tmp_path / "roofline.png"
    result = explain(env, *SEED, "--plot", str(path))
    assert result.returncode == 0, result.stderr
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"roofline plot written to {path}" in result.stdout


def test_plot_without_matplotlib_is_a_clear_error(env, tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None; from sepconv.cli import main; "
            "raise SystemExit(main(sys.argv[1:]))")
    result = explain(env, *SEED, "--plot", str(tmp_path / "r.png"), code=code)
    assert result.returncode == 2
    assert result.stderr.strip() == ("sepconv explain: error: --plot needs matplotlib: pip install 'sepconv[plot]' "
                                     "(or pip install matplotlib)")


@pytest.mark.parametrize(("args", "message"), [
    (["--input", "1x14x14"], "--input must be a shape NxHxWxC"),
    (["--input", "1x14x14x32x2"], "--input must be a shape NxHxWxC"),
    (["--input", "ax14x14x32"], "--input must be a shape NxHxWxC"),
    (["--input", "1x2x2x3", "--kernel", "5", "--padding", "VALID"], "larger than the padded input"),
    (["--model", "resnet50"], "unknown model 'resnet50'"),
    (["--input", "1x14x14x32", "--stride", "0"], "--stride must be"),
    (["--input", "1x14x14x32", "--padding", "FULL"], "`padding` must be"),
    (["--input", "1x14x14x32", "--dtype", "int8"], "--dtype must be a float type"),
    ([], "give --input"),
])
def test_bad_arguments_exit_2_with_one_line(env, args, message):
    result = explain(env, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sepconv explain: error: ") and message in lines[0]


def test_refresh_roofline_alone_runs_the_probe(env, tmp_path):
    result = explain({**env, "SEPCONV_CACHE_DIR": str(tmp_path)}, "--refresh-roofline", "--json")
    assert result.returncode == 0, result.stderr
    roofline = json.loads(result.stdout)["roofline"]
    assert roofline["peak_gflops"] > 0 and len(roofline["bandwidths_gbs"]) == len(roofline["footprints_bytes"])
    assert roofline["peak_gflops"] >= 0.5 * roofline["gemm_gflops"] > 0  # the multiply-add peak, then NumPy's GEMM
    assert "roofline: bandwidth at" in result.stderr  # progress on stderr
    assert len(list(tmp_path.glob("roofline-*.json"))) == 1  # and cached
