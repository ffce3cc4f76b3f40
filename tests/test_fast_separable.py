"""The fast separable forward, its plans (fused, packed, unfused and the one-call kernels), against the NumPy reference."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import rand, tol

import sepconv
from sepconv import reference
from sepconv.geometry import depthwise_geometry

fast_separable = sys.modules["sepconv.fast.separable"]

# (input NHWC, filter kh x kw, multiplier, out_c, strides, dilations, padding): awkward on purpose
GEOMETRIES = [
    ((2, 7, 9, 5), (3, 3), 1, 4, (1, 1), (1, 1), "SAME"),
    ((1, 7, 9, 3), (3, 3), 2, 7, (2, 3), (1, 1), "VALID"),
    ((2, 9, 7, 23), (3, 2), 1, 5, (1, 2), (2, 1), "SAME"),
    ((1, 7, 9, 5), (2, 3), 3, 6, (3, 1), (1, 2), [[0, 0], [1, 0], [2, 3], [0, 0]]),
    ((2, 8, 7, 4), (3, 3), 2, 3, (2, 2), (2, 2), "SAME"),
    ((1, 9, 9, 5), (2, 2), 1, 3, (3, 3), (1, 1), "VALID"),  # stride > kernel
    ((1, 7, 9, 6), (1, 1), 1, 5, (1, 1), (1, 1), "VALID"),  # 1x1 depthwise
    ((1, 5, 6, 4), (5, 4), 1, 2, (1, 1), (1, 1), [[0, 0], [0, 1], [3, 0], [0, 0]]),  # window wider than the padding
    ((1, 9, 11, 20), (5, 5), 1, 7, (1, 1), (1, 1), "SAME"),  # the 5x5 row kernel in the bands
    ((1, 10, 9, 6), (7, 7), 2, 5, (2, 2), (1, 1), "SAME"),  # 7x7: the general row kernel in the bands
    ((2, 9, 8, 5), (3, 3), 1, 4, (2, 1), (1, 1), "SAME"),  # 3x3 SAME columns, rows one at a time
    ((1, 9, 8, 5), (3, 3), 1, 4, (1, 1), (2, 1), "SAME"),
]
IDS = [f"{shape}-k{k}-m{m}-o{out_c}-s{s}-d{d}-{pad}" for shape, k, m, out_c, s, d, pad in GEOMETRIES]

# Layers the packed kernels take (5x5, 7x7 and other sizes but 3x3, at least eight channels, horizontal stride 1 or
# 2), each of more than FUSED_PACKED_MIN_PIXELS output pixels, their counts not multiples of a tile's six
PACKED_GEOMETRIES = [
    ((1, 28, 28, 96), (5, 5), 1, 160, (2, 2), (1, 1), "SAME"),  # the standard case: 196 pixels, a two-vector tail panel
    ((2, 13, 11, 20), (5, 5), 1, 7, (1, 1), (1, 1), "SAME"),  # channels not whole vectors, one partial output vector
    ((1, 29, 27, 24), (7, 7), 1, 65, (2, 2), (1, 1), "VALID"),  # 132 pixels, one column past a panel
    ((3, 12, 10, 16), (5, 5), 1, 33, (1, 1), (2, 2), [[0, 0], [3, 1], [2, 4], [0, 0]]),  # dilated, explicit pads
    ((1, 11, 23, 40), (3, 5), 1, 17, (1, 2), (1, 1), "SAME"),  # 3x5 at strides (1, 2)
    ((2, 9, 9, 8), (7, 7), 1, 128, (1, 1), (1, 1), "SAME"),  # one vector of channels, two full panels
]
PACKED_IDS = [f"{shape}-k{k}-o{out_c}-s{s}-d{d}-{pad}" for shape, k, m, out_c, s, d, pad in PACKED_GEOMETRIES]


@pytest.fixture(autouse=True)
def _planned_path(monkeypatch):
    """The geometries here are small enough for the one-call kernels of small layers and of few pixels; the tests
    of the fused and unfused plans turn them off (their own tests turn them on)."""
    monkeypatch.setattr(fast_separable, "SMALL", False)
    monkeypatch.setattr(fast_separable, "FEW_PIXELS_MAX_PIXELS", 0)


def _fused_kernel_calls(monkeypatch, record=lambda args: True) -> list:
    """The fused plan's kernels (serial and parallel) wrapped: each call appends ``record(args)`` to the list
    returned."""
    kernels = sys.modules["sepconv.kernels.separable"]
    calls = []
    for name in ("separable_nhwc_forward_bands", "separable_nhwc_forward_parallel"):
        real = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, real=real: (calls.append(record(a)), real(*a))[1])
    return calls


def _case(rng, spec, dtype):
    shape, (kh, kw), multiplier, out_c, strides, dilations, padding = spec
    x = rand(rng, shape, dtype)
    wd = rand(rng, (kh, kw, shape[3], multiplier), dtype)
    wp = rand(rng, (1, 1, shape[3] * multiplier, out_c), dtype)
    g = depthwise_geometry("separable_conv2d", x.shape, wd.shape, strides, padding, "NHWC", dilations)
    return x, wd, wp, g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("product", ["blas", "ours-split", "ours-one-thread"])
@pytest.mark.parametrize("spec", GEOMETRIES, ids=IDS)
def test_unfused_plan_matches_reference(spec, product, dtype, monkeypatch):
    """The depthwise op (one thread or split) then the pointwise product: BLAS on our threads (every
    size through our kernel), or our register-tiled product in runs of six-pixel tiles over the threads
    or on the calling thread (the geometries' pixel counts leave short last tiles)."""
    monkeypatch.setattr(fast_separable, "FUSE", False)
    depthwise = sys.modules["sepconv.fast.depthwise"]
    conv2d = sys.modules["sepconv.fast.conv2d"]
    if product == "blas":
        monkeypatch.setattr(depthwise, "PARALLEL_MIN_MACS", 10**18)
        monkeypatch.setattr(depthwise, "PARALLEL_MIN_BYTES", 10**18)
        monkeypatch.setattr(conv2d, "POINTWISE_KERNEL", False)
        monkeypatch.setattr(sys.modules["sepconv.fast.gemm"], "OPENBLAS_SINGLE_THREAD_MACS", 0)
    else:  # the depthwise pass split, the product in one run of tiles or split too
        monkeypatch.setattr(depthwise, "PARALLEL_MIN_MACS", 0)
        monkeypatch.setattr(depthwise, "PARALLEL_MIN_BYTES", 0)
        monkeypatch.setattr(conv2d, "POINTWISE_PARALLEL_MIN_MACS", 10**18 if product == "ours-one-thread" else 1)
    x, wd, wp, g = _case(np.random.default_rng(0), spec, dtype)
    np.testing.assert_allclose(fast_separable.separable_conv2d(x, wd, wp, g),
                               reference.separable_conv2d(x, wd, wp, g), **tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("band_bytes", [1, 1 << 40], ids=["one-row-bands", "one-band"])
@pytest.mark.parametrize("min_macs", [0, 1 << 62], ids=["parallel", "serial"])
@pytest.mark.parametrize("spec", GEOMETRIES, ids=IDS)
def test_fused_plan_matches_reference(spec, band_bytes, min_macs, dtype, monkeypatch):
    """Bands of one row (each with its own top padding) and bands of a whole image (cut in two
    per thread where the image has the rows), on the thread team or the calling thread."""
    monkeypatch.setattr(fast_separable, "FUSE", True)
    monkeypatch.setattr(sys.modules["sepconv.fast.depthwise"], "PARALLEL_MIN_MACS", min_macs)
    monkeypatch.setattr(fast_separable, "BAND_BYTES", band_bytes)
    x, wd, wp, g = _case(np.random.default_rng(0), spec, dtype)
    rows = fast_separable.band_rows(g, x.itemsize, 2)
    bands = g.batch * -(-g.out_h // rows)
    assert rows == 1 if band_bytes == 1 else (rows == 1 or bands >= 4) and rows <= g.out_h
    np.testing.assert_allclose(fast_separable.separable_conv2d(x, wd, wp, g),
                               reference.separable_conv2d(x, wd, wp, g), **tol(dtype))


@pytest.mark.parametrize("rows_in_bytes, out_h, stride, want", [
    (3, 40, 1, 4), (5, 40, 1, 4), (9, 40, 1, 8), (2, 40, 1, 2), (1, 40, 1, 1), (3, 3, 1, 3), (3, 40, 2, 3),
    (5, 80, 2, 5)])
def test_bands_hold_row_pairs_at_stride_one(rows_in_bytes, out_h, stride, want, monkeypatch):
    """At stride 1 a band holds an even number of output rows (the row kernels' pairs): the count BAND_BYTES gives
    rounded down, 3 up to 4 (never past the image); at stride 2 the count itself; and the fused plan's result
    equals the reference's."""
    monkeypatch.setattr(fast_separable, "FUSE", True)
    spec = ((2, out_h * stride, 12, 16), (3, 3), 1, 8, (stride, stride), (1, 1), "SAME")  # two bands at least
    x, wd, wp, g = _case(np.random.default_rng(1), spec, np.float32)
    monkeypatch.setattr(fast_separable, "BAND_BYTES", rows_in_bytes * g.out_w * g.out_c * x.itemsize)
    assert fast_separable.band_rows(g, x.itemsize, 1) == want
    np.testing.assert_allclose(fast_separable.separable_conv2d(x, wd, wp, g),
                               reference.separable_conv2d(x, wd, wp, g), **tol(np.float32))
    monkeypatch.setattr(fast_separable, "EVEN_BANDS", False)
    assert fast_separable.band_rows(g, x.itemsize, 1) == min(rows_in_bytes, out_h)


# Output channels around the panels of the pointwise product (64 float32 / 32 float64 columns,
# tails of one, two or four vectors), and pixel counts that leave 1..5 in the last tile of six.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("out_c", [1, 8, 16, 17, 31, 32, 33, 48, 63, 64, 65, 96, 100, 128, 144, 160, 200])
def test_fused_pointwise_panels_and_tiles(out_c, dtype, monkeypatch):
    monkeypatch.setattr(fast_separable, "FUSE", True)
    rng = np.random.default_rng(out_c)
    for spec in [((1, 5, 7, 24), (3, 3), 1, out_c, (1, 1), (1, 1), "SAME"),    # 35 pixels: 5 left
                 ((2, 4, 5, 9), (3, 3), 2, out_c, (1, 1), (1, 1), "VALID")]:  # 6 per image, 18 channels
        x, wd, wp, g = _case(rng, spec, dtype)
        np.testing.assert_allclose(fast_separable.separable_conv2d(x, wd, wp, g),
                                   reference.separable_conv2d(x, wd, wp, g), **tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32])  # the fused plan's (tuned) type
@pytest.mark.parametrize("threads", ["parallel", "serial"])
@pytest.mark.parametrize("out_c, streamed", [(128, True), (80, True), (64, True), (16, True), (72, None), (7, None)])
def test_fused_plan_streams_large_outputs(out_c, streamed, threads, dtype, monkeypatch):
    """From FUSED_STREAM_MIN_BYTES (here any size) the fused plan stores whole panels of its output past the caches,
    where every pixel starts on a line (``out_c`` a whole number of vectors); the result still equals the
    reference's, across panels, tail panels, and tiles of fewer than six pixels (35 and 18 pixels here), and the
    kernels were told to stream only where the pixels start on lines."""
    told = _fused_kernel_calls(monkeypatch, record=lambda args: args[-1])  # the stream flag
    monkeypatch.setattr(fast_separable, "FUSE", True)
    monkeypatch.setattr(fast_separable, "FUSED_STREAM_MIN_BYTES", 0)
    monkeypatch.setattr(sys.modules["sepconv.fast.aligned"], "PLACED_MIN_BYTES", 0)  # small outputs on a line too
    monkeypatch.setattr(sys.modules["sepconv.fast.depthwise"], "PARALLEL_MIN_MACS", 0 if threads == "parallel" else 1 << 62)
    rng = np.random.default_rng(out_c)
    for spec in [((1, 5, 7, 24), (3, 3), 1, out_c, (1, 1), (1, 1), "SAME"),
                 ((2, 4, 5, 9), (3, 3), 2, out_c, (1, 1), (1, 1), "VALID")]:
        x, wd, wp, g = _case(rng, spec, dtype)
        np.testing.assert_allclose(fast_separable.separable_conv2d(x, wd, wp, g),
                                   reference.separable_conv2d(x, wd, wp, g), **tol(dtype))
    whole_vectors = out_c * np.dtype(dtype).itemsize % 64 == 0
    assert told == [bool(streamed) and whole_vectors] * 2, told


def test_plan_follows_the_pointwise_filter_size_and_the_pixel_count(monkeypatch):
    """Fused while the packed pointwise filter fits in FUSED_MAX_POINTWISE_BYTES and the output has
    FUSED_MIN_PIXELS pixels, else depthwise then BLAS."""
    taken = _fused_kernel_calls(monkeypatch)
    rng = np.random.default_rng(5)
    monkeypatch.setattr(fast_separable, "FUSE", None)  # the rule itself, whatever plans the CPU takes
    monkeypatch.setattr(fast_separable, "FUSED_MAX_POINTWISE_BYTES", 16 * 128 * 4)
    monkeypatch.setattr(fast_separable, "FUSED_MIN_PIXELS", 144)
    for out_c, size, fused in [(128, 12, True), (129, 12, False), (128, 11, False)]:
        x, wd, wp, g = _case(rng, ((1, size, size, 16), (3, 3), 1, out_c, (1, 1), (1, 1), "SAME"), np.float32)
        taken.clear()
        np.testing.assert_allclose(fast_separable.separable_conv2d(x, wd, wp, g),
                                   reference.separable_conv2d(x, wd, wp, g), **tol(np.float32))
        assert bool(taken) == fused


@pytest.mark.parametrize("spec, fused", [
    (((1, 12, 12, 16), (3, 3), 1, 128, (1, 1), (1, 1), "SAME"), True),  # 12 * 12 * 128 * 4 bytes: streamed
    (((1, 12, 11, 16), (3, 3), 1, 128, (1, 1), (1, 1), "SAME"), False),  # 12 pixels short of the size
    (((1, 16, 16, 16), (3, 3), 1, 120, (1, 1), (1, 1), "SAME"), False),  # large enough, pixels not on lines
    (((2, 12, 12, 16), (3, 3), 1, 64, (1, 1), (1, 1), "SAME"), True),  # the batch counts
    (((1, 12, 12, 3), (3, 3), 1, 16, (1, 1), (1, 1), "SAME"), True),  # few channels, 3x3, stride 1: always
    (((1, 12, 12, 3), (3, 3), 1, 16, (2, 2), (1, 1), "SAME"), False),  # ... but not at stride 2
    (((1, 12, 12, 3), (5, 5), 1, 16, (1, 1), (1, 1), "SAME"), False),  # 5x5: the flat-row kernel's, never fused
])
def test_fused_plan_only_where_it_streams(spec, fused, monkeypatch):
    """With FUSED_ONLY_STREAMED (Zen 4's plans), the fused plan is taken for outputs it stores past the caches (at
    least FUSED_STREAM_MIN_BYTES, every pixel on a line), and for 3x3 stride-1 layers of fewer channels than a vector
    whatever their size; the others go depthwise then product, and both match the reference."""
    taken = _fused_kernel_calls(monkeypatch)
    monkeypatch.setattr(fast_separable, "FUSE", None)
    monkeypatch.setattr(fast_separable, "FUSED_MIN_PIXELS", 1)
    monkeypatch.setattr(fast_separable, "SMALL", False)
    monkeypatch.setattr(fast_separable, "FUSED_ONLY_STREAMED", True)
    monkeypatch.setattr(fast_separable, "FUSED_STREAM_MIN_BYTES", 12 * 12 * 128 * 4)
    x, wd, wp, g = _case(np.random.default_rng(6), spec, np.float32)
    np.testing.assert_allclose(fast_separable.separable_conv2d(x, wd, wp, g), reference.separable_conv2d(x, wd, wp, g),
                               **tol(np.float32))
    assert bool(taken) == fused


def test_default_plan_matches_reference():
    x, wd, wp, g = _case(np.random.default_rng(1), ((2, 30, 31, 40), (3, 3), 2, 9, (1, 1), (1, 1), "SAME"),
                         np.float32)
    np.testing.assert_allclose(fast_separable.separable_conv2d(x, wd, wp, g),
                               reference.separable_conv2d(x, wd, wp, g), **tol(np.float32))


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("fuse", [False, True], ids=["unfused", "fused"])
def test_nonfinite_depthwise_filter_propagates_like_the_reference(fuse, monkeypatch):
    """A tap in the padding multiplies a zero: with an infinite filter value that is NaN, as in TF."""
    monkeypatch.setattr(fast_separable, "FUSE", fuse)
    x, wd, wp, g = _case(np.random.default_rng(2), GEOMETRIES[0], np.float64)
    wd[0, 0, 1, 0] = np.inf
    expected = reference.separable_conv2d(x, wd, wp, g)
    assert np.isnan(expected).any()
    np.testing.assert_array_equal(fast_separable.separable_conv2d(x, wd, wp, g), expected)


def test_public_op_on_fast_path_nchw_and_noncontiguous():
    rng = np.random.default_rng(3)
    x = rand(rng, (2, 9, 7, 6), np.float32).transpose(0, 3, 2, 1)  # NCHW view [2, 6, 7, 9], not contiguous
    wd = rand(rng, (3, 3, 6, 2), np.float32)[::-1]
    wp = np.asfortranarray(rand(rng, (1, 1, 12, 5), np.float32))
    args = ([1, 1, 2, 1], [[0, 0], [0, 0], [2, 0], [1, 1]], "NCHW")
    with sepconv.use_implementation("fast"):
        fast = sepconv.separable_conv2d(x, wd, wp, *args)
    with sepconv.use_implementation("reference"):
        ref = sepconv.separable_conv2d(x, wd, wp, *args)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))


@pytest.mark.parametrize("plan", ["unfused", "fused", "packed"])
def test_concurrent_calls_from_python_threads(plan, monkeypatch):
    """Band buffers and the packed plan's intermediate are per call or per Python thread: several Python threads at
    once get the single-threaded answers."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(fast_separable, "FUSE", {"unfused": False, "fused": True, "packed": None}[plan])
    monkeypatch.setattr(fast_separable, "FUSED_PACKED_FAMILIES", ("packed", "small_image", None))  # any kernel
    monkeypatch.setattr(fast_separable, "BAND_BYTES", 1)
    monkeypatch.setattr(sys.modules["sepconv.fast.depthwise"], "PARALLEL_MIN_MACS", 0)  # the thread team too
    rng = np.random.default_rng(4)
    cases = [_case(rng, spec, np.float32) for spec in (PACKED_GEOMETRIES if plan == "packed" else GEOMETRIES)[:3]]
    expected = [reference.separable_conv2d(*case) for case in cases]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: fast_separable.separable_conv2d(*cases[i % 3]), range(24)))
    for i, result in enumerate(results):
        np.testing.assert_allclose(result, expected[i % 3], **tol(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spec", GEOMETRIES, ids=IDS)
def test_small_layer_kernel_matches_reference(spec, dtype, monkeypatch):
    """The one-call kernel of small layers (every geometry above: strides, dilations, multipliers, explicit
    and wide padding, batch 2)."""
    monkeypatch.setattr(fast_separable, "SMALL", True)
    x, wd, wp, g = _case(np.random.default_rng(7), spec, dtype)
    np.testing.assert_allclose(fast_separable.separable_conv2d(x, wd, wp, g),
                               reference.separable_conv2d(x, wd, wp, g), **tol(dtype))


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_small_layer_kernel_propagates_nonfinite_inputs(monkeypatch):
    """NaN and infinities in the input reach the outputs whose windows hold them, as in the reference."""
    monkeypatch.setattr(fast_separable, "SMALL", True)
    x, wd, wp, g = _case(np.random.default_rng(8), GEOMETRIES[0], np.float64)
    x[0, 2, 3, 1], x[1, 5, 0, 4] = np.nan, np.inf
    expected = reference.separable_conv2d(x, wd, wp, g)
    assert np.isnan(expected).any()
    np.testing.assert_allclose(fast_separable.separable_conv2d(x, wd, wp, g), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("half_width_units", [True, False])
def test_small_layer_kernel_is_taken_up_to_small_max_macs(half_width_units, monkeypatch):
    """By default, layers of at most SMALL_MAX_MACS multiply-adds (depthwise plus pointwise) take the one-call
    kernel: 1x10x10x3 3x3 stride 2 -> 16 (25 pixels x 3 x (9 + 16) = 1,875), not 1x14x14x8 -> 16 (39,200); on Zen
    4's plans over a vector of channels or more without a multiplier up to SMALL_WIDE_MAX_MACS: 1x10x10x24 stride 2
    -> 48 (34,200), not with a multiplier of 2 (1x10x10x12, the same 24 depthwise channels), nor 1x14x14x32 -> 32
    (257,152)."""
    sepconv.fast.use_wide_register_plans(True, half_width_units)
    monkeypatch.setattr(fast_separable, "SMALL", None)
    kernels = sys.modules["sepconv.kernels.separable"]
    calls = []
    original = kernels.separable_nhwc_forward_small

    def spy(x, *args):
        calls.append(x.shape)
        return original(x, *args)

    monkeypatch.setattr(kernels, "separable_nhwc_forward_small", spy)
    assert 1875 <= fast_separable.SMALL_MAX_MACS < 34200
    assert (34200 <= fast_separable.SMALL_WIDE_MAX_MACS < 257152) == half_width_units
    rng = np.random.default_rng(9)
    for shape, multiplier, strides, out_c in (((1, 10, 10, 3), 1, (2, 2), 16), ((1, 14, 14, 8), 1, (1, 1), 16),
                                              ((1, 10, 10, 24), 1, (2, 2), 48), ((1, 10, 10, 12), 2, (2, 2), 48),
                                              ((1, 14, 14, 32), 1, (1, 1), 32)):
        x, wd, wp, g = _case(rng, (shape, (3, 3), multiplier, out_c, strides, (1, 1), "SAME"), np.float32)
        np.testing.assert_allclose(fast_separable.separable_conv2d(x, wd, wp, g),
                                   reference.separable_conv2d(x, wd, wp, g), **tol(np.float32))
    assert calls == [(1, 10, 10, 3), (1, 10, 10, 24)][:2 if half_width_units else 1]


def _few_pixel_kernel_calls(monkeypatch) -> list:
    """The one-call few-pixel kernel wrapped: each call appends its input's shape to the list returned."""
    kernels = sys.modules["sepconv.kernels.separable"]
    calls = []
    real = kernels.separable_nhwc_forward_few_pixels
    monkeypatch.setattr(kernels, "separable_nhwc_forward_few_pixels", lambda x, *a: (calls.append(x.shape), real(x, *a))[1])
    return calls


FEW_PIXEL_GEOMETRIES = [spec for spec in GEOMETRIES if spec[2] == 1] + [
    ((1, 9, 9, 120), (7, 7), 1, 160, (1, 1), (1, 1), "VALID"),  # a whole group of four vectors and a masked one
    ((1, 9, 9, 144), (7, 7), 1, 16, (2, 2), (1, 1), "SAME"),  # two whole groups and one vector
    ((2, 4, 5, 64), (3, 3), 1, 50, (1, 1), (1, 1), "SAME"),  # exactly one group; a masked column tile
    ((1, 6, 7, 200), (3, 3), 1, 9, (2, 1), (2, 2), [[0, 0], [2, 1], [0, 3], [0, 0]]),
    ((3, 3, 3, 17), (5, 5), 1, 100, (1, 1), (1, 1), "SAME"),  # windows wider than the image
]


@pytest.mark.parametrize("spec", FEW_PIXEL_GEOMETRIES, ids=[str(s) for s in FEW_PIXEL_GEOMETRIES])
def test_few_pixel_kernel_matches_reference(spec, monkeypatch):
    """The one-call kernel of layers of few pixels (any size here): strides, dilations, explicit and wide padding,
    batches, channel counts in whole groups of four vectors and not, against the reference."""
    monkeypatch.setattr(fast_separable, "FEW_PIXELS_MAX_PIXELS", 10**9)
    monkeypatch.setattr(fast_separable, "FEW_PIXELS_MAX_MACS", 10**12)
    calls = _few_pixel_kernel_calls(monkeypatch)
    x, wd, wp, g = _case(np.random.default_rng(11), spec, np.float32)
    np.testing.assert_allclose(fast_separable.separable_conv2d(x, wd, wp, g),
                               reference.separable_conv2d(x, wd, wp, g), **tol(np.float32))
    assert calls == [x.shape]


@pytest.mark.parametrize(("shape", "k", "multiplier", "out_c", "strides", "padding", "taken"), [
    ((1, 9, 9, 120), 7, 1, 160, 1, "VALID", True),  # 9 pixels, 226K multiply-adds
    ((2, 7, 7, 8), 5, 1, 160, 1, "VALID", True),  # 18 pixels
    ((1, 8, 8, 40), 3, 1, 64, 1, "SAME", True),  # 64 pixels, 187K
    ((1, 9, 8, 40), 3, 1, 64, 1, "SAME", False),  # 72 pixels
    ((1, 9, 9, 60), 7, 2, 40, 1, "VALID", False),  # a multiplier
    ((1, 8, 8, 64), 3, 1, 128, 1, "SAME", False),  # 561K multiply-adds
    ((1, 4, 4, 640), 1, 1, 640, 1, "VALID", False)])  # a pointwise filter of 1.6 MB
def test_few_pixel_kernel_is_taken_where_it_won(shape, k, multiplier, out_c, strides, padding, taken, monkeypatch):
    """Layers without a multiplier of at most FEW_PIXELS_MAX_PIXELS output pixels (64) and FEW_PIXELS_MAX_MACS
    multiply-adds (400K), pointwise filters of at most 1.5 MB, take the one-call few-pixel kernel (on the AVX-512
    plans, set here whatever the CPU)."""
    monkeypatch.setattr(fast_separable, "FEW_PIXELS_MAX_PIXELS", 64)
    monkeypatch.setattr(fast_separable, "FEW_PIXELS_MAX_MACS", 400_000)
    monkeypatch.setattr(fast_separable, "FEW_PIXELS_MAX_FILTER_BYTES", 1536 * 1024)
    calls = _few_pixel_kernel_calls(monkeypatch)
    x, wd, wp, g = _case(np.random.default_rng(12), (shape, (k, k), multiplier, out_c, (strides, strides), (1, 1),
                                                     padding), np.float32)
    np.testing.assert_allclose(fast_separable.separable_conv2d(x, wd, wp, g),
                               reference.separable_conv2d(x, wd, wp, g), **tol(np.float32))
    assert (calls == [x.shape]) == taken


def _packed_kernel_calls(monkeypatch) -> list:
    """The packed plan's kernels (parallel, and one thread's rows) wrapped: each call appends its name."""
    kernels = sys.modules["sepconv.kernels.separable"]
    calls = []
    for name in ("separable_nhwc_forward_packed_parallel", "separable_nhwc_forward_packed_rows"):
        real = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, real=real, name=name: (calls.append(name), real(*a))[1])
    return calls


@pytest.mark.parametrize("threads", ["parallel", "serial"])
@pytest.mark.parametrize("spec", PACKED_GEOMETRIES, ids=PACKED_IDS)
def test_packed_plan_matches_reference(spec, threads, monkeypatch):
    """The packed plan (each thread's rows by the packed depthwise kernels, then their product) on layers whatever
    kernel the depthwise op would run, on both threads and on one."""
    calls = _packed_kernel_calls(monkeypatch)
    monkeypatch.setattr(fast_separable, "FUSE", None)
    monkeypatch.setattr(fast_separable, "FUSED_PACKED", True)
    monkeypatch.setattr(fast_separable, "FUSED_PACKED_FAMILIES", ("packed", "small_image", None))  # any kernel
    monkeypatch.setattr(sys.modules["sepconv.fast.depthwise"], "PARALLEL_MIN_MACS", 0 if threads == "parallel" else 1 << 62)
    x, wd, wp, g = _case(np.random.default_rng(8), spec, np.float32)
    np.testing.assert_allclose(fast_separable.separable_conv2d(x, wd, wp, g), reference.separable_conv2d(x, wd, wp, g),
                               **tol(np.float32))
    assert calls and calls[0] == ("separable_nhwc_forward_packed_parallel" if threads == "parallel"
                                  else "separable_nhwc_forward_packed_rows")


@pytest.mark.parametrize("spec, taken", [
    (((1, 28, 28, 96), (5, 5), 1, 160, (2, 2), (1, 1), "SAME"), True),  # the depthwise op runs the packed kernels
    (((1, 14, 14, 96), (5, 5), 1, 160, (2, 2), (1, 1), "SAME"), False),  # 49 pixels: the few-pixel product's
    (((1, 28, 28, 96), (3, 3), 1, 160, (2, 2), (1, 1), "SAME"), False),  # 3x3: the direct kernels'
    (((1, 28, 28, 96), (5, 5), 2, 160, (2, 2), (1, 1), "SAME"), False),  # a multiplier
    (((1, 28, 28, 96), (5, 5), 1, 1400, (2, 2), (1, 1), "SAME"), False),  # a filter past the tiled product's
])
def test_packed_plan_follows_the_depthwise_kernel(spec, taken, monkeypatch):
    """Taken where the depthwise op would run the packed or the small-image kernels, more than
    FUSED_PACKED_MIN_PIXELS pixels, no multiplier, a pointwise filter the tiled product takes; the result matches the
    reference either way."""
    calls = _packed_kernel_calls(monkeypatch)
    monkeypatch.setattr(fast_separable, "FUSE", None)
    monkeypatch.setattr(fast_separable, "FUSED_PACKED", True)
    monkeypatch.setattr(fast_separable, "FUSED_MAX_POINTWISE_BYTES", 0)  # not the bands
    x, wd, wp, g = _case(np.random.default_rng(9), spec, np.float32)
    if fast_separable.tuned(x.itemsize) and sys.modules["sepconv.fast.conv2d"].POINTWISE_KERNEL:
        family = sys.modules["sepconv.fast.depthwise"].forward_kernel_family(x.shape, x.dtype, g)
        assert (family in ("packed", "small_image")) >= taken
    np.testing.assert_allclose(fast_separable.separable_conv2d(x, wd, wp, g), reference.separable_conv2d(x, wd, wp, g),
                               **tol(np.float32))
    assert bool(calls) == (taken and fast_separable.tuned(x.itemsize)
                           and sys.modules["sepconv.fast.conv2d"].POINTWISE_KERNEL)
