"""The cost model against brute-force counting, hand-computed values and the ops' own errors; the roofline."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

import sepconv
from sepconv.cost import op_cost
from sepconv.roofline import (
    Roofline,
    cache_path,
    machine_roofline,
    measure_bandwidth,
    measure_fma_gflops,
    measure_gemm_gflops,
    save_roofline,
)

# (input NHWC/NCHW, filter, strides, padding, dilations, data_format): awkward on purpose
CASES = [
    ((1, 7, 9, 3), (3, 3, 3, 2), 1, "SAME", 1, "NHWC"),
    ((2, 8, 6, 4), (3, 2, 4, 3), 2, "SAME", 1, "NHWC"),  # even input, stride 2: TF pads bottom/right only
    ((1, 9, 7, 2), (3, 3, 2, 2), 1, "SAME", 2, "NHWC"),  # dilation with SAME
    ((1, 10, 11, 3), (2, 3, 3, 1), [3, 2], "VALID", 1, "NHWC"),  # stride larger than the kernel
    ((1, 6, 7, 2), (3, 3, 2, 2), 1, [[0, 0], [2, 0], [1, 3], [0, 0]], 1, "NHWC"),  # explicit, asymmetric
    ((2, 3, 5, 6), (3, 3, 3, 2), 1, "SAME", 1, "NCHW"),
    ((1, 5, 5, 1), (5, 5, 1, 1), 1, "SAME", 1, "NHWC"),  # most taps in the padding
]


def _ones(shape):
    return np.ones(shape, np.float64)


def _padded_shape(cost, input_shape):
    """The input with its padding made of real ones: a VALID op on it counts padded taps too."""
    g = cost.geometry
    h, w = g.in_h + g.pad_top + g.pad_bottom, g.in_w + g.pad_left + g.pad_right
    n = input_shape[0]
    return (n, h, w, g.in_c) if g.data_format == "NHWC" else (n, g.in_c, h, w)


def _reference(fn, *args, **kwargs):
    with sepconv.use_implementation("reference"):
        return fn(*args, **kwargs)


def _loop_count(cost, per_tap: int) -> tuple[int, int]:
    """Multiply-adds by explicit loops over TF's formula: every (output pixel, tap), in the input or not."""
    g = cost.geometry
    total = valid = 0
    for i in range(g.out_h):
        for j in range(g.out_w):
            for di in range(g.kh):
                for dj in range(g.kw):
                    row = i * g.stride_h + di * g.dil_h - g.pad_top
                    col = j * g.stride_w + dj * g.dil_w - g.pad_left
                    total += per_tap
                    valid += per_tap if 0 <= row < g.in_h and 0 <= col < g.in_w else 0
    return g.batch * total, g.batch * valid


@pytest.mark.parametrize("case", CASES)
def test_conv2d_macs_against_brute_force(case):
    shape, filt, strides, padding, dilations, fmt = case
    kh, kw, c, m = filt
    filt = (kh, kw, shape[-1] if fmt == "NHWC" else shape[1], m + 2)
    cost = op_cost("conv2d", shape, filt, strides, padding, fmt, dilations)
    # Ones in, ones filter: each output element sums exactly its valid multiply-adds.
    y = _reference(sepconv.conv2d, _ones(shape), _ones(filt), strides, padding, fmt, dilations)
    assert y.shape == cost.output_shape
    assert y.sum() == cost.macs_valid
    # The same with the padding made of real ones: every tap counts (TensorFlow's convention).
    y_all = _reference(sepconv.conv2d, _ones(_padded_shape(cost, shape)), _ones(filt), strides, "VALID", fmt,
                       dilations)
    assert y_all.sum() == cost.macs
    assert _loop_count(cost, filt[2] * filt[3]) == (cost.macs, cost.macs_valid)
    assert cost.params == math.prod(filt)
    assert cost.flops == 2 * cost.macs


def test_grouped_conv2d_counts_in_channels_per_group():
    shape, filt = (1, 5, 6, 6), (3, 3, 2, 9)  # 3 groups of 2 input channels
    cost = op_cost("conv2d", shape, filt, 1, "SAME")
    y = _reference(sepconv.conv2d, _ones(shape), _ones(filt), 1, "SAME")
    assert y.sum() == cost.macs_valid
    assert cost.macs == 5 * 6 * 9 * 3 * 3 * 2
    assert cost.params == 3 * 3 * 2 * 9


@pytest.mark.parametrize("case", CASES)
def test_depthwise_and_separable_macs_against_brute_force(case):
    shape, filt, strides, padding, dilations, fmt = case
    dw = op_cost("depthwise_conv2d", shape, filt, strides, padding, fmt, dilations)
    y = _reference(sepconv.depthwise_conv2d, _ones(shape), _ones(filt), strides, padding, fmt, dilations)
    assert y.shape == dw.output_shape
    assert y.sum() == dw.macs_valid
    y_all = _reference(sepconv.depthwise_conv2d, _ones(_padded_shape(dw, shape)), _ones(filt), strides, "VALID",
                       fmt, dilations)
    assert y_all.sum() == dw.macs
    assert _loop_count(dw, filt[2] * filt[3]) == (dw.macs, dw.macs_valid)

    pw_filter = (1, 1, filt[2] * filt[3], 5)
    sep = op_cost("separable_conv2d", shape, filt, strides, padding, fmt, dilations, pointwise_shape=pw_filter)
    y = _reference(sepconv.separable_conv2d, _ones(shape), _ones(filt), _ones(pw_filter), strides, padding, fmt,
                   dilations)
    assert y.shape == sep.output_shape
    # The pointwise step, counted on its own input (the depthwise result) with ones.
    pw_count = _reference(sepconv.conv2d, _ones(dw.output_shape), _ones(pw_filter), 1, "VALID", fmt).sum()
    assert sep.macs == dw.macs + pw_count
    assert sep.macs_valid == dw.macs_valid + pw_count
    assert sep.params == math.prod(filt) + math.prod(pw_filter)
    pointwise = op_cost("pointwise", dw.output_shape, pw_filter, 1, "VALID", fmt)
    assert pointwise.macs == pw_count and pointwise.output_shape == sep.output_shape


@pytest.mark.parametrize("case", CASES)
def test_backprop_macs_against_brute_force(case):
    shape, filt, strides, padding, dilations, fmt = case
    c = shape[-1] if fmt == "NHWC" else shape[1]
    for depthwise in (False, True):
        f = filt if depthwise else (filt[0], filt[1], c, 4)
        forward_op = "depthwise_conv2d" if depthwise else "conv2d"
        forward = op_cost(forward_op, shape, f, strides, padding, fmt, dilations)
        ops = (sepconv.depthwise_conv2d_backprop_input, sepconv.depthwise_conv2d_backprop_filter) if depthwise else (
            sepconv.conv2d_backprop_input, sepconv.conv2d_backprop_filter)
        dy = _ones(forward.output_shape)
        grad_input = op_cost(f"{forward_op}_backprop_input", shape, f, strides, padding, fmt, dilations)
        dx = _reference(ops[0], list(shape), _ones(f), dy, strides, padding, fmt, dilations)
        assert dx.shape == grad_input.output_shape == tuple(shape)
        assert dx.sum() == grad_input.macs_valid == forward.macs_valid
        assert grad_input.macs == forward.macs
        grad_filter = op_cost(f"{forward_op}_backprop_filter", shape, f, strides, padding, fmt, dilations)
        dw = _reference(ops[1], _ones(shape), list(f), dy, strides, padding, fmt, dilations)
        assert dw.shape == grad_filter.output_shape == f
        assert dw.sum() == grad_filter.macs_valid == forward.macs_valid
        assert grad_filter.macs == forward.macs


def test_seed_example_by_hand():
    """Input (_, 14, 14, 32), filter (3, 3, 32, 64), stride 1, SAME: the seeds' numbers."""
    conv = op_cost("conv2d", (1, 14, 14, 32), (3, 3, 32, 64), 1, "SAME")
    assert conv.output_shape == (1, 14, 14, 64)
    assert conv.params == 3 * 3 * 32 * 64
    assert conv.macs == 14 * 14 * 64 * 3 * 3 * 32
    assert conv.flops == 2 * 1 * 32 * 14 * 14 * 3 * 3 * 64  # the seed's standard-conv formula
    assert conv.bytes_read == (14 * 14 * 32 + 3 * 3 * 32 * 64) * 4
    assert conv.bytes_written == 14 * 14 * 64 * 4
    assert conv.intensity == pytest.approx(conv.flops / ((14 * 14 * 32 + 3 * 3 * 32 * 64 + 14 * 14 * 64) * 4))

    depthwise = op_cost("depthwise_conv2d", (1, 14, 14, 32), (3, 3, 32, 64), 1, "SAME")
    assert depthwise.output_shape == (1, 14, 14, 32 * 64)
    assert depthwise.params == 3 * 3 * 32 * 64
    assert depthwise.macs == 14 * 14 * 2048 * 9

    separable = op_cost("separable_conv2d", (1, 14, 14, 32), (3, 3, 32, 1), 1, "SAME",
                        pointwise_shape=(1, 1, 32, 64))
    bs, ic, oh, ow, kh, kw, oc = 1, 32, 14, 14, 3, 3, 64
    assert separable.flops == 2 * bs * ic * oh * ow * (kh * kw + oc)  # the seed's formula, multiplier 1
    assert separable.bytes_read == (14 * 14 * 32 + 3 * 3 * 32 + 32 * 64) * 4
    assert separable.bytes_intermediate_unfused == 2 * 14 * 14 * 32 * 4
    assert separable.params == 3 * 3 * 32 + 32 * 64


def test_seed_formula_generalizes_with_multiplier():
    bs, ic, m, oh, ow, kh, kw, oc = 2, 5, 3, 7, 9, 3, 3, 11
    s = op_cost("separable_conv2d", (bs, oh, ow, ic), (kh, kw, ic, m), 1, "SAME", pointwise_shape=(1, 1, ic * m, oc))
    assert s.flops == 2 * bs * ic * m * oh * ow * (kh * kw + oc)


def test_bytes_scale_with_dtype_and_gradients_read_what_they_use():
    f32 = op_cost("conv2d", (2, 8, 8, 3), (3, 3, 3, 4), dtype="float32")
    f64 = op_cost("conv2d", (2, 8, 8, 3), (3, 3, 3, 4), dtype=np.float64)
    assert f64.bytes_total == 2 * f32.bytes_total and f64.dtype == "float64"
    assert f64.intensity == pytest.approx(f32.intensity / 2)
    grad_input = op_cost("conv2d_backprop_input", (2, 8, 8, 3), (3, 3, 3, 4))
    assert grad_input.bytes_read == (3 * 3 * 3 * 4 + 2 * 8 * 8 * 4) * 4  # filter + out_backprop
    assert grad_input.bytes_written == 2 * 8 * 8 * 3 * 4
    grad_filter = op_cost("conv2d_backprop_filter", (2, 8, 8, 3), (3, 3, 3, 4))
    assert grad_filter.bytes_read == (2 * 8 * 8 * 3 + 2 * 8 * 8 * 4) * 4  # input + out_backprop
    assert grad_filter.bytes_written == 3 * 3 * 3 * 4 * 4


def test_both_depthwise_gradients_cost_the_two_backprops_less_one_read():
    """Both gradients in one call: the two backprops' multiply-adds, their reads less one read of
    ``out_backprop`` (which ``bytes_intermediate_unfused`` gives back), their writes."""
    args = ((2, 9, 8, 6), (3, 3, 6, 2), 2, "SAME")
    both = op_cost("depthwise_conv2d_gradients", *args)
    grad_input = op_cost("depthwise_conv2d_backprop_input", *args)
    grad_filter = op_cost("depthwise_conv2d_backprop_filter", *args)
    out_backprop_bytes = 2 * 5 * 4 * 12 * 4  # [2, 5, 4, 12] float32
    assert both.macs == grad_input.macs + grad_filter.macs and both.macs_valid == 2 * grad_input.macs_valid
    assert both.bytes_read == grad_input.bytes_read + grad_filter.bytes_read - out_backprop_bytes
    assert both.bytes_written == grad_input.bytes_written + grad_filter.bytes_written
    assert both.bytes_intermediate_unfused == out_backprop_bytes
    assert both.output_shape == (2, 9, 8, 6)


def test_empty_batch_costs_nothing():
    c = op_cost("depthwise_conv2d", (0, 8, 8, 3), (3, 3, 3, 1))
    assert c.macs == c.macs_valid == c.flops == 0 and c.output_shape == (0, 8, 8, 3)
    assert c.bytes_total == 3 * 3 * 3 * 1 * 4 and c.intensity == 0.0  # only the filter is read


def _error(fn, *args) -> str:
    with pytest.raises((ValueError, TypeError)) as info:
        fn(*args)
    return str(info.value)


@pytest.mark.parametrize(("input_shape", "filter_shape", "strides", "padding"), [
    ((1, 4, 4, 3), (5, 5, 3, 2), 1, "VALID"),  # kernel larger than the input
    ((1, 4, 4, 3), (3, 3, 2, 2), 1, "SAME"),  # channels mismatch
    ((1, 4, 4, 3), (3, 3, 3, 2), 0, "SAME"),  # bad stride
    ((1, 4, 4, 3), (3, 3, 3, 2), 1, "same"),  # bad padding
    ((4, 4, 3), (3, 3, 3, 2), 1, "SAME"),  # not 4-D
])
def test_bad_arguments_raise_the_ops_own_errors(input_shape, filter_shape, strides, padding):
    x, w = np.zeros(input_shape), np.zeros(filter_shape)
    assert _error(op_cost, "conv2d", input_shape, filter_shape, strides, padding) == _error(
        sepconv.conv2d, x, w, strides, padding)
    if len(input_shape) == 4 and filter_shape[2] == input_shape[3]:
        assert _error(op_cost, "depthwise_conv2d", input_shape, filter_shape, strides, padding) == _error(
            sepconv.depthwise_conv2d, x, w, strides, padding)


def test_separable_pointwise_shape_checked_like_the_op():
    x, wd, wp = np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 3, 2)), np.zeros((1, 1, 5, 4))
    assert _error(op_cost, "separable_conv2d", x.shape, wd.shape, 1, "SAME", "NHWC", None, wp.shape) == _error(
        sepconv.separable_conv2d, x, wd, wp, 1, "SAME")
    assert "pointwise_shape" in _error(op_cost, "separable_conv2d", x.shape, wd.shape)
    assert "1, 1" in _error(op_cost, "pointwise", x.shape, (3, 3, 3, 4))
    assert "op_cost" in _error(op_cost, "conv3d", x.shape, wd.shape)


def test_as_dict_is_json_ready():
    d = op_cost("separable_conv2d", (1, 6, 6, 2), (3, 3, 2, 1), 2, "SAME", pointwise_shape=(1, 1, 2, 3)).as_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["flops"] == 2 * d["macs"] and d["bytes_total"] == d["bytes_read"] + d["bytes_written"]
    assert d["pads"] == [[0, 1], [0, 1]]


# --------------------------------------------------------------------------- roofline

TINY = Roofline(peak_gflops=100.0, footprints_bytes=(1_000, 1_000_000), bandwidths_gbs=(50.0, 10.0), threads=2,
                machine="test machine", measured_at="2026-01-01T00:00:00Z", probe_seconds=0.0)


def test_bandwidth_interpolates_in_log_footprint_and_clamps():
    assert TINY.bandwidth_at(10) == 50.0
    assert TINY.bandwidth_at(10**9) == 10.0
    assert TINY.bandwidth_at(math.sqrt(1_000 * 1_000_000)) == pytest.approx(30.0)
    assert TINY.ridge_intensity == pytest.approx(10.0)


def test_bound_is_the_larger_of_compute_and_memory_time():
    depthwise = op_cost("depthwise_conv2d", (1, 64, 64, 32), (3, 3, 32, 1))  # ~1 MB, 2.2 FLOP/byte
    b = TINY.bound(depthwise)
    assert b.limiter == "memory"
    assert b.seconds == pytest.approx(depthwise.bytes_total / (TINY.bandwidth_at(depthwise.bytes_total) * 1e9))
    conv = op_cost("conv2d", (1, 64, 64, 32), (3, 3, 32, 64))
    assert TINY.bound(conv).limiter == "compute"
    assert TINY.bound_seconds(conv) == pytest.approx(conv.flops / 100e9)
    dram = TINY.bound(depthwise, TINY.dram_bandwidth_gbs)
    assert dram.memory_seconds == pytest.approx(depthwise.bytes_total / 10e9)


def test_machine_roofline_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEPCONV_CACHE_DIR", str(tmp_path))
    assert cache_path().parent == tmp_path
    save_roofline(TINY)
    assert machine_roofline(verbose=False) == TINY  # no probe: the cached figures come back
    assert Roofline.from_dict(json.loads(cache_path().read_text())) == TINY


def test_bandwidth_probe_runs_on_a_small_footprint():
    bandwidths, threads = measure_bandwidth((64 << 10, 128 << 10), run_bytes=1 << 20, verbose=False)
    assert len(bandwidths) == 2 and threads >= 1
    assert bandwidths[0] >= bandwidths[1] > 0  # the envelope: a larger footprint never beats a smaller one


def test_multiply_add_peak_is_at_least_what_a_blas_product_reaches():
    # A product of 384^3 is multiply-adds plus loads and packing: it cannot beat the multiply-add peak.  A probe whose
    # chains LLVM merged into one reads a multiply-add's latency per result, a quarter of the peak or less.  (Half the
    # GEMM rate, not all of it: the other test worker may load the cores during one probe and not the other.)
    peak = measure_fma_gflops(verbose=False)
    assert peak >= 0.5 * measure_gemm_gflops(384, verbose=False)
    assert peak <= 64 * 6.0 * os.cpu_count()  # two 16-lane FMA units a core (64 FLOPs a cycle) at 6 GHz at most


def test_roofline_cached_before_the_multiply_add_peak_is_measured_again(tmp_path, monkeypatch):
    from sepconv import roofline as module

    monkeypatch.setenv("SEPCONV_CACHE_DIR", str(tmp_path))
    old = TINY.as_dict()
    del old["gemm_gflops"]  # a cache from when peak_gflops was NumPy's GEMM rate
    cache_path().parent.mkdir(parents=True, exist_ok=True)
    cache_path().write_text(json.dumps(old))
    fresh = TINY.__class__(**{**TINY.__dict__, "peak_gflops": 250.0, "gemm_gflops": 200.0})
    monkeypatch.setattr(module, "measure_roofline", lambda verbose=True: fresh)
    assert machine_roofline(verbose=False) == fresh
    assert Roofline.from_dict(json.loads(cache_path().read_text())).gemm_gflops == 200.0


def test_busy_cached_roofline_is_measured_again_when_quiet(tmp_path, monkeypatch):
    import dataclasses

    from sepconv import roofline as module

    monkeypatch.setenv("SEPCONV_CACHE_DIR", str(tmp_path))
    busy = dataclasses.replace(TINY, load_average=100.0)
    fresh = dataclasses.replace(TINY, peak_gflops=300.0)
    save_roofline(busy)
    monkeypatch.setattr(module, "measure_roofline", lambda verbose=True: fresh)
    monkeypatch.setattr(module, "_load_average", lambda: 100.0)  # still busy: keep the cache
    assert machine_roofline(verbose=False) == busy
    monkeypatch.setattr(module, "_load_average", lambda: 0.0)  # quiet now: measure again, and cache that
    assert machine_roofline(verbose=False) == fresh
    assert Roofline.from_dict(json.loads(cache_path().read_text())) == fresh
