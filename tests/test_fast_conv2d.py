"""The fast conv2d (forward and both gradients, grouped included) against the NumPy reference."""

from __future__ import annotations

import sys
import tracemalloc

import numpy as np
import pytest
from conftest import TUNED_DTYPES, rand, record_calls, tol

import sepconv
from sepconv import reference
from sepconv.geometry import conv2d_geometry
from sepconv.kernels import conv2d_direct
from sepconv.kernels._simd import VECTOR_BYTES

fast_conv2d = sys.modules["sepconv.fast.conv2d"]


@pytest.fixture(autouse=True, params=["numpy-matmul", "ours"])
def _products(request, monkeypatch):
    """Every test twice: the products of these small geometries as they run (``np.matmul``: OpenBLAS
    runs them on the calling thread anyway), and all of them through our BLAS kernel (batches of
    groups, transposed views, the filter gradient accumulated over chunks)."""
    if request.param == "ours":
        monkeypatch.setattr(sys.modules["sepconv.fast.gemm"], "OPENBLAS_SINGLE_THREAD_MACS", 0)

# (input NHWC, filter kh x kw, groups, out_c, strides, dilations, padding): awkward on purpose
GEOMETRIES = [
    ((2, 7, 9, 5), (3, 3), 1, 4, (1, 1), (1, 1), "SAME"),
    ((1, 7, 9, 3), (3, 3), 1, 7, (2, 3), (1, 1), "VALID"),
    ((2, 9, 7, 6), (3, 2), 2, 4, (1, 2), (2, 1), "SAME"),
    ((1, 7, 9, 6), (2, 3), 3, 6, (3, 1), (1, 2), [[0, 0], [1, 0], [2, 3], [0, 0]]),
    ((2, 8, 7, 23), (3, 3), 1, 5, (2, 2), (2, 2), "SAME"),
    ((1, 9, 9, 5), (2, 2), 1, 3, (3, 3), (1, 1), "VALID"),  # stride > kernel
    ((1, 7, 9, 4), (1, 1), 1, 5, (1, 1), (1, 1), "VALID"),  # pointwise
    ((2, 7, 9, 6), (1, 1), 3, 9, (1, 1), (1, 1), "SAME"),  # grouped pointwise
    ((1, 7, 9, 5), (1, 1), 1, 3, (2, 3), (1, 1), "VALID"),  # strided pointwise
    ((1, 7, 9, 5), (1, 1), 1, 3, (1, 1), (1, 1), [[0, 0], [1, 2], [0, 1], [0, 0]]),  # padded 1x1
    ((1, 5, 6, 4), (5, 4), 2, 2, (1, 1), (1, 1), [[0, 0], [0, 1], [3, 0], [0, 0]]),  # window wider than the padding
]
IDS = [f"{shape}-k{k}-g{groups}-o{out_c}-s{s}-d{d}-{pad}" for shape, k, groups, out_c, s, d, pad in GEOMETRIES]


def _case(rng, spec, dtype):
    shape, (kh, kw), groups, out_c, strides, dilations, padding = spec
    x = rand(rng, shape, dtype)
    w = rand(rng, (kh, kw, shape[3] // groups, out_c), dtype)
    g = conv2d_geometry("conv2d", x.shape, w.shape, strides, padding, "NHWC", dilations)
    dy = rand(rng, (shape[0], g.out_h, g.out_w, out_c), dtype)
    return x, w, dy, g


def _check_all_three(x, w, dy, g, dtype):
    np.testing.assert_allclose(fast_conv2d.conv2d(x, w, g), reference.conv2d(x, w, g), **tol(dtype))
    np.testing.assert_allclose(fast_conv2d.conv2d_backprop_input(w, dy, g),
                               reference.conv2d_backprop_input(w, dy, g), **tol(dtype))
    np.testing.assert_allclose(fast_conv2d.conv2d_backprop_filter(x, dy, g),
                               reference.conv2d_backprop_filter(x, dy, g), **tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spec", GEOMETRIES, ids=IDS)
def test_matches_reference(spec, dtype):
    x, w, dy, g = _case(np.random.default_rng(0), spec, dtype)
    _check_all_three(x, w, dy, g, dtype)


INPUT_GRADIENT_GEOMETRIES = [spec for spec in GEOMETRIES if spec[4] == (1, 1)] + [
    ((1, 9, 8, 6), (3, 3), 1, 5, (1, 1), (1, 1), [[0, 0], [2, 0], [1, 2], [0, 0]]),  # pads to the filter's reach
    ((1, 9, 8, 6), (3, 3), 1, 5, (1, 1), (1, 1), [[0, 0], [3, 0], [1, 1], [0, 0]]),  # past it: the im2col plan
    ((2, 12, 11, 24), (3, 3), 1, 40, (1, 1), (1, 1), "SAME"),  # Winograd's channels
    ((1, 10, 13, 7), (5, 3), 1, 9, (1, 1), (2, 1), "SAME"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spec", INPUT_GRADIENT_GEOMETRIES, ids=[str(s) for s in INPUT_GRADIENT_GEOMETRIES])
def test_input_gradient_as_forward_matches_reference(spec, dtype, monkeypatch):
    """With ``INPUT_GRADIENT_AS_FORWARD`` the stride-1 input gradient (ungrouped, not 1x1, pads within the filter's
    reach) is the forward of dy with the filter turned and transposed, on the forward's plans; the others keep the
    im2col plan; all match the reference."""
    monkeypatch.setattr(fast_conv2d, "INPUT_GRADIENT_AS_FORWARD", True)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_PIXELS", 1)
    forwards = []
    forward = fast_conv2d.conv2d
    monkeypatch.setattr(fast_conv2d, "conv2d", lambda *a: forwards.append(a[2]) or forward(*a))
    x, w, dy, g = _case(np.random.default_rng(2), spec, dtype)
    np.testing.assert_allclose(fast_conv2d.conv2d_backprop_input(w, dy, g), reference.conv2d_backprop_input(w, dy, g),
                               **tol(dtype))
    reach = ((g.kh - 1) * g.dil_h, (g.kw - 1) * g.dil_w)
    within = max(g.pad_top, g.pad_bottom) <= reach[0] and max(g.pad_left, g.pad_right) <= reach[1]
    taken = g.groups == 1 and not fast_conv2d._is_pointwise(g) and within
    assert len(forwards) == taken
    if taken:
        assert (forwards[0].out_h, forwards[0].out_w, forwards[0].out_c) == (g.in_h, g.in_w, g.in_c)


POINTWISE_GEOMETRIES = [
    ((1, 7, 9, 4), (1, 1), 1, 5, (1, 1), (1, 1), "VALID"),  # 63 pixels: a short last tile
    ((1, 7, 9, 5), (1, 1), 1, 3, (2, 3), (1, 1), "VALID"),  # strided: the subsampled copy
    ((2, 6, 5, 37), (1, 1), 1, 150, (1, 1), (1, 1), "SAME"),  # two full panels and a tail panel
    ((1, 12, 12, 8), (1, 1), 1, 64, (1, 1), (1, 1), "VALID"),  # 144 pixels, whole tiles, one panel
    ((1, 5, 7, 20), (1, 1), 1, 104, (1, 1), (1, 1), "VALID"),  # a panel and a three-vector tail (f32)
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("product", ["blas", "ours-one-thread", "ours-split"])
@pytest.mark.parametrize("spec", POINTWISE_GEOMETRIES, ids=[str(s) for s in POINTWISE_GEOMETRIES])
def test_pointwise_products_match_reference(spec, product, dtype, monkeypatch):
    """A 1x1 convolution on BLAS or on the register-tiled kernel, in one run of tiles or split over
    the threads."""
    monkeypatch.setattr(fast_conv2d, "POINTWISE_KERNEL", product != "blas")
    monkeypatch.setattr(fast_conv2d, "POINTWISE_FEW_PIXELS_MAX", 0)  # (its own tests below)
    monkeypatch.setattr(fast_conv2d, "POINTWISE_PARALLEL_MIN_MACS", 1 if product == "ours-split" else 10**18)
    x, w, dy, g = _case(np.random.default_rng(1), spec, dtype)
    assert fast_conv2d._is_pointwise(g)
    np.testing.assert_allclose(fast_conv2d.conv2d(x, w, g), reference.conv2d(x, w, g), **tol(dtype))


def test_pointwise_product_splits_from_its_threshold(monkeypatch):
    """From POINTWISE_PARALLEL_MIN_MACS multiply-adds the product runs on the threads, below on the calling one."""
    pointwise = sys.modules["sepconv.kernels.pointwise"]
    calls = []
    monkeypatch.setattr(fast_conv2d, "thread_count", lambda: 2)
    monkeypatch.setattr(fast_conv2d, "POINTWISE_FEW_PIXELS_MAX", 0)
    monkeypatch.setattr(pointwise, "pointwise_parallel", lambda *args: calls.append(("parallel", args[-1])))
    monkeypatch.setattr(pointwise, "pointwise_tiles", lambda *args: calls.append(("tiles", args[-1])))
    x, w, out = np.ones((60, 10), np.float32), np.ones((10, 20), np.float32), np.empty((60, 20), np.float32)
    for threshold in (60 * 10 * 20, 60 * 10 * 20 + 1):
        monkeypatch.setattr(fast_conv2d, "POINTWISE_PARALLEL_MIN_MACS", threshold)
        fast_conv2d.pointwise_product(x, w, out)
    assert calls == [("parallel", 2), ("tiles", 10)]


@pytest.mark.parametrize("dtype", TUNED_DTYPES)
@pytest.mark.parametrize("blocks", ["one", "many"])
@pytest.mark.parametrize("split", ["one-thread", "pixels", "panels", "channels"])
@pytest.mark.parametrize(("pixels", "k_size", "out_c"), [(100, 64, 300), (7, 33, 64), (61, 130, 17), (300, 9, 150),
                                                         (13, 40, 1000)])
def test_pointwise_product_streamed(pixels, k_size, out_c, split, blocks, dtype, monkeypatch):
    """A pointwise product whose filter is too large for the packed kernel streams through the direct
    kernels as a one-tap conv2d: on one thread, split by pixels (short last tiles), by panels of
    the filter (a thread's last panel may be the tail) or by input channels (two outputs added),
    in one block of pixels or in blocks of one tile each; against NumPy."""
    if blocks == "many":
        monkeypatch.setattr(fast_conv2d, "POINTWISE_STREAMED_BLOCK_BYTES", 1)
    calls, splits = [], []
    streamed = fast_conv2d._streamed
    monkeypatch.setattr(fast_conv2d, "_streamed", lambda *a, **k: calls.append(1) or streamed(*a, **k))
    parallel = conv2d_direct.conv2d_direct_streamed_parallel
    monkeypatch.setattr(conv2d_direct, "conv2d_direct_streamed_parallel",
                        lambda *a: splits.append(a[-3][:, [0, 1, 2, 3, 5, 6]].tolist()) or parallel(*a))
    monkeypatch.setattr(fast_conv2d, "POINTWISE_KERNEL_MAX_FILTER_BYTES", 0)
    monkeypatch.setattr(fast_conv2d, "POINTWISE_FEW_PIXELS_MAX", 0)
    monkeypatch.setattr(fast_conv2d, "DIRECT_MIN_THREAD_MACS", 1 if split != "one-thread" else 10**18)
    monkeypatch.setattr(fast_conv2d, "POINTWISE_STREAMED_SPLIT_PIXELS", 1 if split == "pixels" else 10**9)
    monkeypatch.setattr(fast_conv2d, "STREAMED_SPLIT_PANELS_MIN", 1 if split == "panels" else 10**9)
    rng = np.random.default_rng(out_c)
    x, w = rand(rng, (pixels, k_size), dtype), rand(rng, (k_size, out_c), dtype)
    out = np.empty((pixels, out_c), dtype)
    fast_conv2d.pointwise_product(x, w, out)
    np.testing.assert_allclose(out, x @ w, **tol(dtype))
    assert calls == [1]
    panels = -(-out_c // (256 // np.dtype(dtype).itemsize))
    if split == "one-thread" or (split == "panels" and panels < 2):  # one panel: split by channels instead
        assert splits in ([], [[[0, pixels, 0, k_size // 2, 0, panels], [0, pixels, k_size // 2, k_size, 0, panels]]])
    elif split == "panels":  # each thread all pixels and channels, half of the panels
        assert splits == [[[0, pixels, 0, k_size, 0, panels // 2], [0, pixels, 0, k_size, panels // 2, panels]]]
    elif split == "channels":
        assert splits == [[[0, pixels, 0, k_size // 2, 0, panels], [0, pixels, k_size // 2, k_size, 0, panels]]]
    else:
        assert [r[2:] for r in splits[0]] == [[0, k_size, 0, panels]] * 2 and splits[0][1][1] == pixels


@pytest.mark.parametrize(("pixels", "k_size", "out_c", "plan"), [
    (196, 512, 512, "streamed"), (512, 768, 512, "streamed"), (513, 768, 512, "blas"), (128, 1024, 1024, "streamed"),
    (129, 1024, 1024, "blas"), (361, 728, 728, "streamed"), (513, 728, 728, "blas"), (361, 1024, 1024, "blas"),
    (1369, 256, 728, "blas"), (196, 256, 512, "packed")])
def test_pointwise_product_plan_follows_filter_and_pixels(pixels, k_size, out_c, plan, monkeypatch):
    """Filters up to POINTWISE_KERNEL_MAX_FILTER_BYTES take the packed kernel; larger ones stream up to
    POINTWISE_STREAMED_MAX_FILTER_BYTES with at most POINTWISE_STREAMED_MAX_PIXELS_SMALL_FILTER pixels,
    or at any size with at most POINTWISE_STREAMED_MAX_PIXELS pixels; the rest go to BLAS."""
    calls = []
    monkeypatch.setattr(fast_conv2d, "_streamed", lambda *a, **k: calls.append("streamed"))
    monkeypatch.setattr(fast_conv2d, "matmul", lambda *a, **k: calls.append("blas"))
    monkeypatch.setattr(sys.modules["sepconv.kernels.pointwise"], "pointwise_parallel", lambda *a: calls.append("packed"))
    x, w = np.zeros((pixels, k_size), np.float32), np.zeros((k_size, out_c), np.float32)
    fast_conv2d.pointwise_product(x, w, np.empty((pixels, out_c), np.float32))
    assert calls == [plan]


@pytest.mark.parametrize(("pixels", "out_c", "split_rows"), [(100, 300, True), (99, 300, False), (300, 40, True)])
def test_large_pointwise_filter_splits_by_rows_unless_much_wider(pixels, out_c, split_rows, monkeypatch):
    """A pointwise filter too large for the register-tiled kernel goes to BLAS on our threads, split
    by rows while the pixels number at least 1/POINTWISE_SPLIT_ROWS_RATIO of the output channels;
    the product is right either way."""
    gemm = sys.modules["sepconv.fast.gemm"]
    calls = []
    original = gemm.matmul
    monkeypatch.setattr(fast_conv2d, "matmul", lambda *a, **k: calls.append(k["split_rows"]) or original(*a, **k))
    monkeypatch.setattr(fast_conv2d, "POINTWISE_KERNEL_MAX_FILTER_BYTES", 0)
    monkeypatch.setattr(fast_conv2d, "POINTWISE_STREAMED_MAX_FILTER_BYTES", 0)
    monkeypatch.setattr(fast_conv2d, "POINTWISE_STREAMED_MAX_PIXELS", 0)
    rng = np.random.default_rng(pixels)
    x, w = rand(rng, (pixels, 64), np.float32), rand(rng, (64, out_c), np.float32)
    out = np.empty((pixels, out_c), np.float32)
    fast_conv2d.pointwise_product(x, w, out)
    np.testing.assert_allclose(out, x @ w, **tol(np.float32))
    assert calls == [split_rows]


@pytest.mark.parametrize("dtype", TUNED_DTYPES)
@pytest.mark.parametrize("whole", [False, True], ids=["half_vectors", "whole_vectors"])
@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize(("pixels", "k_size", "out_c"), [
    (1, 1, 1),  # one pixel, one column: a masked tile of one lane, three pixels repeated
    (5, 3, 10),  # a full four-pixel tile and one pixel; one masked column tile
    (9, 120, 160),  # six full column tiles and a masked one of two half vectors (float32; whole: 3 + 1 of 16 lanes)
    (16, 33, 48),  # whole tiles only (float32, half vectors; whole: one tile)
    (7, 64, 25),  # a masked tile of one lane past 24 (float32, half vectors)
    (62, 17, 71),
    (3, 40, 96)])  # whole tiles only (float32, both widths)
def test_few_pixels_product_matches_numpy(pixels, k_size, out_c, split, whole, dtype, monkeypatch):
    """Products of few pixels take sepconv.kernels.pointwise_few_pixels (the filter read in place, a transposed
    one copied first), in tiles of whole vectors or half ones, on the calling thread or split by column tiles;
    every output written, against NumPy."""
    from sepconv.kernels import pointwise_few_pixels

    calls = record_calls(monkeypatch, pointwise_few_pixels, "pointwise_few_pixels_parallel",
                         serial="pointwise_few_pixels_tiles", as_parallel=lambda args: (*args[:3], 1),
                         ops="sepconv.fast.conv2d")
    monkeypatch.setattr(fast_conv2d, "POINTWISE_FEW_PIXELS_MAX", 64)
    monkeypatch.setattr(fast_conv2d, "POINTWISE_FEW_PIXELS_WHOLE_VECTORS", whole)
    monkeypatch.setattr(fast_conv2d, "POINTWISE_FEW_PIXELS_SMALL_MAX", 64)  # whole vectors: every product here
    monkeypatch.setattr(fast_conv2d, "POINTWISE_FEW_PIXELS_PARALLEL_MIN_MACS", 1 if split else 10**18)
    monkeypatch.setattr(fast_conv2d, "thread_count", lambda: 2)
    rng = np.random.default_rng(pixels)
    x, w = rand(rng, (pixels, k_size), dtype), rand(rng, (out_c, k_size), dtype).T
    out = np.full((pixels, out_c), np.nan, dtype)
    fast_conv2d.pointwise_product(x, w, out)
    np.testing.assert_allclose(out, x @ w, **tol(dtype))
    tiles = -(-out_c // (3 * (64 if whole else 32) // np.dtype(dtype).itemsize))
    assert calls == [2 if split and tiles > 1 else 1]


@pytest.mark.parametrize(("pixels", "k_size", "out_c", "taken"), [
    (32, 960, 400, True),  # up to POINTWISE_FEW_PIXELS_SMALL_MAX pixels: any filter up to 1.5 MB
    (32, 960, 420, False),  # a filter over 1.5 MB
    (33, 96, 64, True),  # more pixels: up to 600K multiply-adds...
    (64, 96, 100, False),
    (33, 96, 31, False),  # ... into 32 columns or more
    (65, 16, 64, False)])  # over POINTWISE_FEW_PIXELS_MAX pixels
def test_few_pixels_product_in_whole_vectors_where_it_won(pixels, k_size, out_c, taken, monkeypatch):
    """With whole vectors the few-pixel kernel takes filters of up to 1.5 MB, and past 32 pixels only products of
    up to 600K multiply-adds into 32 columns or more (the limits it won within, sepconv.fast.conv2d)."""
    from sepconv.kernels import pointwise_few_pixels

    calls = record_calls(monkeypatch, pointwise_few_pixels, "pointwise_few_pixels_parallel",
                         serial="pointwise_few_pixels_tiles", as_parallel=lambda args: (*args[:3], 1),
                         ops="sepconv.fast.conv2d")
    for name, value in {"WHOLE_VECTORS": True, "MAX": 64, "MAX_BYTES": 128 * 1024, "MAX_FILTER_BYTES": 1536 * 1024,
                        "SMALL_MAX": 32, "SMALL_MAX_MACS": 600_000}.items():  # the AVX-512 plans' (any CPU's here)
        monkeypatch.setattr(fast_conv2d, f"POINTWISE_FEW_PIXELS_{name}", value)
    rng = np.random.default_rng(pixels)
    x, w = rand(rng, (pixels, k_size), np.float32), rand(rng, (k_size, out_c), np.float32)
    out = np.empty((pixels, out_c), np.float32)
    fast_conv2d.pointwise_product(x, w, out)
    np.testing.assert_allclose(out, x @ w, **tol(np.float32))
    assert (len(calls) == 1) == taken


@pytest.mark.parametrize(("pixels", "k_size", "taken"), [(64, 512, True), (65, 16, False), (64, 513, False)])
def test_few_pixels_product_up_to_its_pixels_and_bytes(pixels, k_size, taken, monkeypatch):
    """The few-pixel kernel takes products of up to POINTWISE_FEW_PIXELS_MAX pixels whose left operand has at most
    POINTWISE_FEW_PIXELS_MAX_BYTES; the others go on to the other plans."""
    from sepconv.kernels import pointwise_few_pixels

    calls = record_calls(monkeypatch, pointwise_few_pixels, "pointwise_few_pixels_parallel",
                         serial="pointwise_few_pixels_tiles", as_parallel=lambda args: (*args[:3], 1),
                         ops="sepconv.fast.conv2d")
    monkeypatch.setattr(fast_conv2d, "POINTWISE_FEW_PIXELS_MAX", 64)
    monkeypatch.setattr(fast_conv2d, "POINTWISE_FEW_PIXELS_MAX_BYTES", 64 * 512 * 4)
    monkeypatch.setattr(fast_conv2d, "POINTWISE_FEW_PIXELS_SMALL_MAX", 64)  # whole vectors: any product of 64 pixels
    monkeypatch.setattr(fast_conv2d, "POINTWISE_FEW_PIXELS_PARALLEL_MIN_MACS", 10**18)
    rng = np.random.default_rng(3)
    x, w = rand(rng, (pixels, k_size), np.float32), rand(rng, (k_size, 40), np.float32)
    out = np.empty((pixels, 40), np.float32)
    fast_conv2d.pointwise_product(x, w, out)
    np.testing.assert_allclose(out, x @ w, **tol(np.float32))
    assert len(calls) == taken


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("spec", GEOMETRIES, ids=IDS)
def test_many_small_chunks_match_reference(spec, threads, monkeypatch):
    """Chunks of 5 pixels start mid-row and straddle rows and batch entries (and, on 2 threads, are
    cut again into ranges of 2 and 3)."""
    monkeypatch.setattr(fast_conv2d, "WORKSPACE_BYTES", 1)
    monkeypatch.setattr(fast_conv2d, "GEMM_MIN_PIXELS", 5)
    monkeypatch.setattr(fast_conv2d, "LAYOUT_THREADS", threads)
    monkeypatch.setattr(fast_conv2d, "PARALLEL_MIN_PIXELS", 1)
    x, w, dy, g = _case(np.random.default_rng(1), spec, np.float64)
    assert fast_conv2d.chunk_pixels(g, 8) == 5
    _check_all_three(x, w, dy, g, np.float64)


def test_public_ops_on_fast_path_nchw_and_noncontiguous():
    rng = np.random.default_rng(2)
    x = rand(rng, (2, 9, 7, 6), np.float32).transpose(0, 3, 2, 1)  # NCHW view [2, 6, 7, 9], not contiguous
    w = rand(rng, (3, 3, 3, 4), np.float32)[:, :, :, ::-1]  # negative strides; grouped (6 / 3 = 2 groups)
    args = ([1, 1, 2, 1], "SAME", "NCHW", [1, 1, 1, 2])
    results = {}
    for impl in ("fast", "reference"):
        with sepconv.use_implementation(impl):
            y = sepconv.conv2d(x, w, *args)
            dx = sepconv.conv2d_backprop_input(x.shape, w, y, *args)
            dw = sepconv.conv2d_backprop_filter(x, w.shape, y, *args)
            results[impl] = (y, dx, dw)
    for fast, ref in zip(results["fast"], results["reference"], strict=True):
        np.testing.assert_allclose(fast, ref, **tol(np.float32))


def test_large_input_keeps_im2col_bounded():
    """A 1x256x256x64 3x3 conv would need a 151 MB im2col; the chunked one stays within a few MB."""
    rng = np.random.default_rng(3)
    x = rand(rng, (1, 256, 256, 64), np.float32)
    w = rand(rng, (3, 3, 64, 64), np.float32)
    g = conv2d_geometry("conv2d", x.shape, w.shape, 1, "SAME")
    assert fast_conv2d.chunk_pixels(g, 4) * 3 * 3 * 64 * 4 <= fast_conv2d.WORKSPACE_BYTES
    # compile (or load) the kernels first, the parallel ones too (enough tiles for every thread):
    # the compiler's own allocations are not the op's
    small = np.ascontiguousarray(x[:, :80, :80])
    fast_conv2d.conv2d(small, w, conv2d_geometry("conv2d", small.shape, w.shape, 1, "SAME"))
    tracemalloc.start()
    try:
        y = fast_conv2d.conv2d(x, w, g)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    full_im2col = 256 * 256 * 3 * 3 * 64 * 4
    assert peak <= y.nbytes + fast_conv2d.WORKSPACE_BYTES + (1 << 20) < full_im2col / 4
    # spot check a few output pixels, borders included, against the definition
    xp = np.pad(x[0], ((1, 1), (1, 1), (0, 0)))
    for i, j in [(0, 0), (0, 255), (128, 77), (255, 255)]:
        expected = np.einsum("hwc,hwco->o", xp[i:i + 3, j:j + 3].astype(np.float64), w.astype(np.float64))
        np.testing.assert_allclose(y[0, i, j], expected, rtol=1e-4, atol=1e-3)


WINOGRAD_GEOMETRIES = [
    ((2, 7, 9, 16), 16, "SAME"),
    ((1, 8, 5, 17), 20, "VALID"),
    ((2, 6, 9, 16), 19, [[0, 0], [2, 0], [1, 3], [0, 0]]),  # odd output sizes: half-empty tiles at the bottom and right
    ((1, 9, 13, 24), 70, "SAME"),  # fused: a full panel of 64 output channels and a one-vector tail panel
    ((1, 5, 7, 16), 100, "SAME"),  # fused: a four-vector tail panel
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spec", WINOGRAD_GEOMETRIES, ids=[str(s) for s in WINOGRAD_GEOMETRIES])
@pytest.mark.parametrize("workspace", [1, None], ids=["small-chunks", "default-chunks"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("plan", ["blas", "fused"])
def test_winograd_matches_reference(spec, workspace, threads, plan, dtype, monkeypatch):
    """Both plans: chunks of 16 BLAS products between the transforms (tiles of 5 or the default
    chunk), and the fused chunks (6 tiles or the default, on one thread or two)."""
    monkeypatch.setattr(fast_conv2d, "FUSE_WINOGRAD", plan == "fused")
    monkeypatch.setattr(fast_conv2d, "LAYOUT_THREADS", threads)
    monkeypatch.setattr(fast_conv2d, "PARALLEL_MIN_PIXELS", 1)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_FUSED_MIN_THREAD_MACS", 1 if threads == 2 else 10**18)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_PIXELS", 1)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_OUT_CHANNELS", 1)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_CHANNELS", 16)
    if workspace is not None:
        monkeypatch.setattr(fast_conv2d, "WINOGRAD_WORKSPACE_BYTES", workspace)
        monkeypatch.setattr(fast_conv2d, "GEMM_MIN_PIXELS", 5)
        monkeypatch.setattr(fast_conv2d, "WINOGRAD_FUSED_CHUNK_BYTES", 1)
    shape, out_c, padding = spec
    rng = np.random.default_rng(4)
    x, w = rand(rng, shape, dtype), rand(rng, (3, 3, shape[3], out_c), dtype)
    g = conv2d_geometry("conv2d", x.shape, w.shape, 1, padding)
    assert fast_conv2d._is_winograd(g)
    if workspace is not None:
        assert fast_conv2d.winograd_tiles(g, x.itemsize) == 5
    np.testing.assert_allclose(fast_conv2d.conv2d(x, w, g), reference.conv2d(x, w, g), **tol(dtype))


@pytest.mark.parametrize("out_c", [32, 160])
def test_winograd_needs_enough_pixels(out_c, monkeypatch):
    """Winograd transforms the whole filter per call: fewer pixels than WINOGRAD_MIN_PIXELS go to the
    direct plans instead, with a small filter (fused plan) or a large one (BLAS plan); all agree with
    the reference."""
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_OUT_CHANNELS", 1)
    rng = np.random.default_rng(7)
    side = int(np.ceil(np.sqrt(fast_conv2d.WINOGRAD_MIN_PIXELS)))
    for shape, expected in [((1, 7, 7, 128), False), ((1, side - 1, side, 128), False), ((1, side, side, 128), True)]:
        x, w = rand(rng, shape, np.float32), rand(rng, (3, 3, 128, out_c), np.float32)
        g = conv2d_geometry("conv2d", x.shape, w.shape, 1, "SAME")
        assert fast_conv2d._is_winograd_fused(g, 4) == (out_c == 32)
        assert fast_conv2d._is_winograd(g) == expected
        np.testing.assert_allclose(fast_conv2d.conv2d(x, w, g), reference.conv2d(x, w, g), **tol(np.float32))


DIRECT_GEOMETRIES = [spec for spec in GEOMETRIES if spec[2] == 1 and spec[1] != (1, 1)] + [
    ((2, 9, 11, 20), (3, 3), 1, 150, (1, 1), (1, 1), "SAME"),  # two full panels and a two-vector tail panel
    ((1, 8, 10, 33), (5, 5), 1, 70, (2, 1), (1, 2), "SAME"),  # one full panel and a one-vector tail
    ((3, 6, 7, 40), (3, 2), 1, 100, (1, 2), (2, 1), [[0, 0], [2, 1], [0, 3], [0, 0]]),  # a three-vector tail
    ((1, 5, 5, 70), (7, 7), 1, 16, (1, 1), (1, 1), "SAME"),  # window larger than the image
    ((2, 6, 5, 21), (3, 3), 1, 124, (1, 1), (1, 1), "SAME"),  # a four-vector tail (60 or 28 columns)
    ((1, 7, 6, 19), (3, 3), 1, 40, (2, 1), (1, 1), "SAME"),  # no full panel, a three-vector tail (f32)
    ((1, 9, 13, 24), (3, 3), 1, 27, (1, 1), (1, 1), "SAME"),  # twelve-pixel tiles, 117 = 9 x 12 + 9 pixels (f32)
    ((2, 8, 9, 10), (3, 3), 1, 32, (1, 1), (2, 2), "VALID"),  # twelve-pixel tiles across images, 2 x 4 x 5 pixels
]
DIRECT_IDS = [f"{shape}-k{k}-o{out_c}-s{s}-d{d}-{pad}" for shape, k, _, out_c, s, d, pad in DIRECT_GEOMETRIES]


# Panels of four vectors (the AVX-512 tiles) in every combination of chunks and split; of one vector in three.
DIRECT_PLANS = [("four-vector", chunks, split) for chunks in ("default", "tiny")
                for split in ("one-thread", "pixels", "panels")] + [
    ("one-vector", "tiny", "one-thread"), ("one-vector", "default", "pixels"), ("one-vector", "tiny", "panels")]


@pytest.mark.parametrize("dtype", TUNED_DTYPES)
@pytest.mark.parametrize("panels, chunks, split", DIRECT_PLANS, ids=["-".join(plan) for plan in DIRECT_PLANS])
@pytest.mark.parametrize("spec", DIRECT_GEOMETRIES, ids=DIRECT_IDS)
def test_direct_matches_reference(spec, panels, chunks, split, dtype, monkeypatch):
    """The direct (implicit GEMM) forward: tiles spanning rows and images, tail tiles and panels;
    with tiny chunks (two channels of one tap at a time, six-pixel blocks) every tile adds to the
    sums of the chunks before; on two threads split by pixels or by panels; the padded input made
    by NumPy or by the padding kernel, serial or parallel.  In panels of four vectors (the AVX-512
    tiles) or of one (AVX2's six-by-one tile, ``DIRECT_NARROW_PANELS``, its last panel partly filled)."""
    narrow = panels == "one-vector"
    monkeypatch.setattr(fast_conv2d, "DIRECT_NARROW_PANELS", narrow)
    monkeypatch.setattr(fast_conv2d, "DIRECT_MIN_PIXELS", 1)
    monkeypatch.setattr(fast_conv2d, "FEW_CHANNELS_MAX_IN_C", 0)
    monkeypatch.setattr(fast_conv2d, "DIRECT_MIN_THREAD_MACS", 1 if split != "one-thread" else 10**18)
    if split == "panels":  # few tiles per thread: each thread takes some of the panels
        monkeypatch.setattr(fast_conv2d, "DIRECT_PANEL_SPLIT_TILES", 10**9)
    else:  # the padded copy by its kernel (on one thread, or split over two), not by NumPy
        monkeypatch.setattr(fast_conv2d, "DIRECT_PAD_KERNEL_MIN_VALUES", 0)
        monkeypatch.setattr(fast_conv2d, "DIRECT_PAD_MIN_THREAD_VALUES", 1 if split == "pixels" else 10**18)
    if chunks == "tiny":  # two rows of a panel
        monkeypatch.setattr(fast_conv2d, "DIRECT_CHUNK_BYTES", 2 * (VECTOR_BYTES if narrow else 64 * np.dtype(dtype).itemsize))
        monkeypatch.setattr(fast_conv2d, "DIRECT_BLOCK_BYTES", 1)
    calls = []
    direct = fast_conv2d._conv2d_direct
    monkeypatch.setattr(fast_conv2d, "_conv2d_direct", lambda *a: calls.append(1) or direct(*a))
    launches = ("range",) if split == "one-thread" else ("parallel",)  # the kernels called from Python
    seen = [record_calls(monkeypatch, conv2d_direct, f"conv2d_direct{kind}_{launch}", lambda args, _k=kind: _k)
            for kind in ("", "_narrow") for launch in launches]
    x, w, _, g = _case(np.random.default_rng(8), spec, dtype)
    if x.shape[3] >= 16 and spec[1] == (3, 3) and spec[4] == spec[5] == (1, 1):
        monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_CHANNELS", 10**9)
    np.testing.assert_allclose(fast_conv2d.conv2d(x, w, g), reference.conv2d(x, w, g), **tol(dtype))
    drivers = [name for names in seen for name in names]
    assert calls == [1] and len(drivers) == 1 and ("narrow" in drivers[0]) == narrow


STREAMED_GEOMETRIES = [
    ((2, 9, 11, 20), (3, 3), 1, 160, (1, 1), (1, 1), "SAME"),  # two full panels and a two-vector tail (f32)
    ((1, 8, 10, 33), (5, 5), 1, 80, (2, 1), (1, 2), "SAME"),  # one full panel and a one-vector tail (f32)
    ((3, 6, 7, 40), (3, 2), 1, 96, (1, 2), (2, 1), [[0, 0], [2, 1], [0, 3], [0, 0]]),
    ((1, 5, 5, 70), (7, 7), 1, 16, (1, 1), (1, 1), "SAME"),  # window larger than the image, one vector
    ((2, 8, 7, 23), (3, 3), 1, 144, (2, 2), (2, 2), "SAME"),
    ((1, 7, 9, 3), (3, 3), 1, 32, (2, 3), (1, 1), "VALID"),
    ((1, 4, 4, 17), (3, 3), 1, 64, (1, 1), (1, 1), "VALID"),  # four pixels: fewer than one tile
    ((2, 9, 11, 20), (3, 3), 1, 150, (1, 1), (1, 1), "SAME"),  # a tail of 22 columns (two vectors in f32, three in f64)
    ((2, 6, 5, 21), (3, 3), 1, 124, (1, 1), (1, 1), "SAME"),  # a four-vector tail (60 or 28 columns)
    ((1, 7, 6, 19), (3, 3), 1, 40, (2, 1), (1, 1), "SAME"),  # no full panel, a three-vector tail (f32)
    ((1, 8, 10, 13), (5, 5), 1, 33, (2, 1), (1, 2), "SAME"),  # 33 columns: a three-vector tail, one column in the last
    ((1, 6, 7, 9), (3, 2), 1, 5, (1, 2), (2, 1), [[0, 0], [2, 1], [0, 3], [0, 0]]),  # 5 columns only
    ((1, 7, 7, 24), (3, 3), 1, 64, (1, 1), (1, 1), "SAME"),  # 49 pixels: four tiles of six, five of five
    ((1, 2, 5, 30), (3, 3), 1, 136, (1, 1), (1, 1), "SAME"),  # 10 pixels: two tiles of five, the first packing
]
STREAMED_IDS = [f"{shape}-k{k}-o{out_c}-s{s}-d{d}-{pad}" for shape, k, _, out_c, s, d, pad in STREAMED_GEOMETRIES]


@pytest.mark.parametrize("dtype", TUNED_DTYPES)
@pytest.mark.parametrize("split", ["one-thread", "pixels", "panels", "channels"])
@pytest.mark.parametrize("chunks", ["default", "tiny"])
@pytest.mark.parametrize("spec", STREAMED_GEOMETRIES, ids=STREAMED_IDS)
def test_direct_streamed_matches_reference(spec, chunks, split, dtype, monkeypatch):
    """The direct forward with the filter packed chunk by chunk (large filters): full panels and tail
    panels of one to four vectors, partly filled (masked), on one thread or two splitting the
    pixels, the filter's panels (where there are two or more) or the input channels (separate outputs,
    added); with tiny chunks (one or two rows of the
    filter at a time, blocks of six pixels) every tile adds to the sums of the chunks before, and a
    thread's last chunk may be short."""
    monkeypatch.setattr(fast_conv2d, "DIRECT_STREAMED_MIN_FILTER_BYTES", 0)
    monkeypatch.setattr(fast_conv2d, "DIRECT_MAX_FILTER_BYTES", -1)  # the direct plan, checked first, takes none
    monkeypatch.setattr(fast_conv2d, "FEW_CHANNELS_MAX_IN_C", 0)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_CHANNELS", 10**9)
    monkeypatch.setattr(fast_conv2d, "DIRECT_MIN_THREAD_MACS", 1 if split != "one-thread" else 10**18)
    monkeypatch.setattr(fast_conv2d, "DIRECT_STREAMED_SPLIT_PIXELS", 1 if split == "pixels" else 10**9)
    monkeypatch.setattr(fast_conv2d, "STREAMED_SPLIT_PANELS_MIN", 1 if split == "panels" else 10**9)
    if chunks == "tiny":
        row_bytes = 64 * np.dtype(dtype).itemsize  # one row of a panel, four vectors
        monkeypatch.setattr(fast_conv2d, "DIRECT_STREAMED_CHUNK_BYTES", (1 if spec[0][3] % 2 else 2) * row_bytes)
        monkeypatch.setattr(fast_conv2d, "DIRECT_STREAMED_BLOCK_BYTES", 1)
    calls = []
    streamed = fast_conv2d._conv2d_direct_streamed
    monkeypatch.setattr(fast_conv2d, "_conv2d_direct_streamed", lambda *a: calls.append(1) or streamed(*a))
    x, w, _, g = _case(np.random.default_rng(9), spec, dtype)
    np.testing.assert_allclose(fast_conv2d.conv2d(x, w, g), reference.conv2d(x, w, g), **tol(dtype))
    assert calls == [1]


@pytest.mark.parametrize("dtype", TUNED_DTYPES)
@pytest.mark.parametrize("out_c", [512, 80, 112, 100, 33])
def test_direct_streamed_plan_takes_large_filters(dtype, out_c):
    """The streamed plan takes ungrouped filters of DIRECT_STREAMED_MIN_FILTER_BYTES or more, whatever
    their column count (it packs the tail panel with masked loads)."""
    itemsize = np.dtype(dtype).itemsize
    in_c = -(-fast_conv2d.DIRECT_STREAMED_MIN_FILTER_BYTES // (9 * out_c * itemsize))
    g = conv2d_geometry("conv2d", (1, 7, 7, in_c), (3, 3, in_c, out_c), 1, "SAME")
    assert fast_conv2d._is_direct_streamed(g, itemsize)
    small = conv2d_geometry("conv2d", (1, 7, 7, in_c // 2), (3, 3, in_c // 2, out_c), 1, "SAME")
    assert not fast_conv2d._is_direct_streamed(small, itemsize)
    grouped = conv2d_geometry("conv2d", (1, 7, 7, 2 * in_c), (3, 3, in_c, 2 * out_c), 1, "SAME")
    assert not fast_conv2d._is_direct_streamed(grouped, itemsize)


def test_winograd_plan_follows_the_filter_size(monkeypatch):
    """Fused while the 16 transformed filters fit in WINOGRAD_FUSED_MAX_FILTER_BYTES, else BLAS."""
    calls = []
    fused = fast_conv2d._winograd_fused
    monkeypatch.setattr(fast_conv2d, "_winograd_fused", lambda *a: calls.append(1) or fused(*a))
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_FUSED_MAX_FILTER_BYTES", 16 * 16 * 20 * 4)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_PIXELS", 1)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_OUT_CHANNELS", 1)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_CHANNELS", 16)
    rng = np.random.default_rng(6)
    for out_c, expected in [(20, 1), (21, 0)]:
        calls.clear()
        x, w = rand(rng, (1, 8, 8, 16), np.float32), rand(rng, (3, 3, 16, out_c), np.float32)
        g = conv2d_geometry("conv2d", x.shape, w.shape, 1, "SAME")
        np.testing.assert_allclose(fast_conv2d.conv2d(x, w, g), reference.conv2d(x, w, g), **tol(np.float32))
        assert len(calls) == expected


def test_winograd_leaves_few_input_channels_to_direct():
    """Below WINOGRAD_MIN_CHANNELS input channels the direct plan is taken, from there Winograd."""
    rng = np.random.default_rng(8)
    side = int(np.ceil(np.sqrt(fast_conv2d.WINOGRAD_MIN_PIXELS)))
    least = fast_conv2d.WINOGRAD_MIN_CHANNELS
    for in_c, expected in [(least - 1, False), (least, True)]:
        x, w = rand(rng, (1, side, side, in_c), np.float32), rand(rng, (3, 3, in_c, 40), np.float32)
        g = conv2d_geometry("conv2d", x.shape, w.shape, 1, "SAME")
        assert fast_conv2d._is_winograd(g) == expected
        np.testing.assert_allclose(fast_conv2d.conv2d(x, w, g), reference.conv2d(x, w, g), **tol(np.float32))


def test_winograd_leaves_narrow_outputs_to_direct():
    """Up to 32 output channels the direct plan is taken, from 33 Winograd (enough pixels, 3x3)."""
    rng = np.random.default_rng(9)
    side = int(np.ceil(np.sqrt(fast_conv2d.WINOGRAD_MIN_PIXELS)))
    for out_c, expected in [(32, False), (33, True)]:
        x, w = rand(rng, (1, side, side, 24), np.float32), rand(rng, (3, 3, 24, out_c), np.float32)
        g = conv2d_geometry("conv2d", x.shape, w.shape, 1, "SAME")
        assert fast_conv2d._is_winograd(g) == expected
        assert fast_conv2d._is_direct(g, 4)
        np.testing.assert_allclose(fast_conv2d.conv2d(x, w, g), reference.conv2d(x, w, g), **tol(np.float32))


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize(("where", "checked"), [
    ("input inf", "output"), ("input nan", "output"), ("filter inf", "output"), ("overflow", "output"),
    ("input inf", "input"), ("input nan", "input"), ("filter inf", "input")])
@pytest.mark.parametrize("fused", [True, False])
def test_nonfinite_values_keep_direct_semantics(where, checked, fused, monkeypatch):
    """An infinity or NaN in the input or the filter must give +-inf and NaN exactly where the direct sum
    does: the input and the filter are checked first when they are smaller than the output (then Winograd
    does not run), else the Winograd result is checked, found not all finite, and the layer computed again
    by the direct plan; checked on the output, a sum past the float range is computed again too (checked
    on the input, it is Winograd's, as the order of any sum decides where +inf and -inf meet)."""
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_PIXELS", 1)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_OUT_CHANNELS", 1)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_CHANNELS", 16)
    monkeypatch.setattr(fast_conv2d, "FUSE_WINOGRAD", fused)
    winograd_calls = []
    winograd = fast_conv2d._conv2d_winograd
    monkeypatch.setattr(fast_conv2d, "_conv2d_winograd",
                        lambda *args: winograd_calls.append(1) or winograd(*args))
    rng = np.random.default_rng(5)
    shape, out_c = ((1, 6, 6, 16), 16) if checked == "output" else ((1, 20, 20, 16), 32)  # the smaller pass
    x, w = rand(rng, shape, np.float32), rand(rng, (3, 3, 16, out_c), np.float32)
    if where == "input inf":
        x[0, 2, 3, 4] = np.inf
    elif where == "input nan":
        x[0, 5, 0, 7] = np.nan
    elif where == "filter inf":
        w[1, 2, 3, 5] = -np.inf
    else:
        x[0, 1:4, 1:4, :] = 3e38
    g = conv2d_geometry("conv2d", x.shape, w.shape, 1, "SAME")
    assert fast_conv2d._is_winograd(g)
    assert (x.size + w.size < np.prod(g.output_shape)) == (checked == "input")
    fast = fast_conv2d.conv2d(x, w, g)
    calls = [1] if checked == "output" else []
    assert winograd_calls == calls
    if where == "overflow":  # where +inf and -inf partial sums meet depends on the order: the direct plan's
        monkeypatch.setattr(fast_conv2d, "_is_winograd", lambda g, itemsize=4: False)
        expected = fast_conv2d.conv2d(x, w, g)
        assert winograd_calls == calls
    else:
        expected = reference.conv2d(x, w, g)
    assert not np.isfinite(expected).all()
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(fast), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(fast), np.isneginf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(fast[finite], expected[finite], **tol(np.float32))


def test_finite_winograd_result_is_kept(monkeypatch):
    """A finite layer is not computed twice: the direct plans are not called after Winograd."""
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_PIXELS", 1)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_OUT_CHANNELS", 1)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_CHANNELS", 16)
    for plan in ("_conv2d_direct", "_conv2d_direct_streamed", "_conv2d_few_channels", "_im2col"):  # every other plan
        monkeypatch.setattr(fast_conv2d, plan, lambda *args, plan=plan: pytest.fail(f"{plan} called"))
    rng = np.random.default_rng(6)
    x, w = rand(rng, (1, 6, 6, 16), np.float32), rand(rng, (3, 3, 16, 16), np.float32)
    g = conv2d_geometry("conv2d", x.shape, w.shape, 1, "SAME")
    np.testing.assert_allclose(fast_conv2d.conv2d(x, w, g), reference.conv2d(x, w, g), **tol(np.float32))


def test_concurrent_calls_from_python_threads(monkeypatch):
    """Workspaces are per call: several Python threads at once get the single-threaded answers
    (the fused Winograd case on the thread team too, the streamed filters and their per-thread
    buffers)."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(fast_conv2d, "WINOGRAD_FUSED_MIN_THREAD_MACS", 1)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_PIXELS", 1)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_OUT_CHANNELS", 1)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_CHANNELS", 16)

    rng = np.random.default_rng(6)
    cases = [_case(rng, spec, np.float32) for spec in (GEOMETRIES[0], GEOMETRIES[2])]
    cases.append(_case(rng, ((2, 9, 8, 16), (3, 3), 1, 16, (1, 1), (1, 1), "SAME"), np.float32))  # Winograd
    cases.append(_case(rng, ((2, 12, 10, 24), (5, 5), 1, 40, (1, 1), (1, 1), "SAME"), np.float32))  # direct
    cases.append(_case(rng, ((1, 5, 6, 128), (3, 3), 1, 130, (1, 1), (1, 1), "SAME"), np.float32))  # streamed
    cases.append(_case(rng, ((1, 4, 5, 512), (1, 1), 1, 300, (1, 1), (1, 1), "VALID"), np.float32))  # streamed 1x1
    monkeypatch.setattr(fast_conv2d, "DIRECT_MIN_THREAD_MACS", 1)
    assert fast_conv2d._is_winograd(cases[2][3]) and fast_conv2d._is_direct(cases[3][3], 4)
    assert fast_conv2d._is_direct_streamed(cases[4][3], 4)
    expected = [reference.conv2d(x, w, g) for x, w, _, g in cases]
    count = len(cases)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: fast_conv2d.conv2d(*cases[i % count][:2], cases[i % count][3]), range(48)))
    for i, result in enumerate(results):
        np.testing.assert_allclose(result, expected[i % count], **tol(np.float32))


@pytest.mark.parametrize("dtype", TUNED_DTYPES)
@pytest.mark.parametrize("width", [11, 29])
@pytest.mark.parametrize("c_in, out_c, k, stride, padding", [
    (3, 32, 3, 2, "SAME"),  # a stem: the direct few-channels kernel, octets, quads and the clipped last column
    (1, 17, 3, 1, "SAME"),  # one input channel, a masked output-channel block
    (8, 40, 5, 2, [[0, 0], [3, 0], [0, 4], [0, 0]]),  # pads wider than half the window
    (4, 16, 2, 3, "VALID"),
    (3, 64, 3, 1, "SAME"),  # two passes of two vectors
    (2, 33, 3, 1, "VALID"),  # a second pass with one channel
    (3, 24, 7, 2, "SAME"),  # a 7x7 stem
])
def test_few_input_channels_direct_kernel(c_in, out_c, k, stride, padding, width, dtype, monkeypatch):
    """The direct kernel for few input channels against the reference, including a non-finite filter
    value (the padding is multiplied as the reference multiplies it: 0 * inf is NaN there too).  Rows
    of 29 pixels take octets, a quad and single pixels."""
    calls = []
    direct = fast_conv2d._conv2d_few_channels
    monkeypatch.setattr(fast_conv2d, "_conv2d_few_channels", lambda *a: calls.append(1) or direct(*a))
    monkeypatch.setattr(fast_conv2d, "FEW_CHANNELS_MAX_TAPS", 49)  # the kernel takes up to 7x7; 3x3 by default
    rng = np.random.default_rng(c_in)
    x = rand(rng, (2, 13, width, c_in), dtype)
    w = rand(rng, (k, k, c_in, out_c), dtype)
    g = conv2d_geometry("conv2d", x.shape, w.shape, stride, padding)
    np.testing.assert_allclose(fast_conv2d.conv2d(x, w, g), reference.conv2d(x, w, g), **tol(dtype))
    w[0, 0, 0, 1] = np.inf
    with np.errstate(invalid="ignore"):
        fast, ref = fast_conv2d.conv2d(x, w, g), reference.conv2d(x, w, g)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref))
    np.testing.assert_allclose(fast, ref, **tol(dtype))
    assert len(calls) == 2


@pytest.mark.parametrize(("c_in", "k", "plan"), [(3, 3, "few"), (8, 3, "few"), (3, 5, "direct"), (3, 7, "direct"),
                                                 (9, 3, "direct")])
def test_stem_plan_follows_the_window(c_in, k, plan, monkeypatch):
    """Few input channels: 3x3 windows take the few-channel kernel, larger ones the direct implicit GEMM
    (and more than eight channels the direct one in any case); both match the reference."""
    calls = []
    for name in ("_conv2d_few_channels", "_conv2d_direct"):
        original = getattr(fast_conv2d, name)
        monkeypatch.setattr(fast_conv2d, name, lambda *a, name=name, original=original: calls.append(name) or original(*a))
    rng = np.random.default_rng(k)
    x, w = rand(rng, (1, 40, 40, c_in), np.float32), rand(rng, (k, k, c_in, 64), np.float32)
    g = conv2d_geometry("conv2d", x.shape, w.shape, 2, "SAME")
    np.testing.assert_allclose(fast_conv2d.conv2d(x, w, g), reference.conv2d(x, w, g), **tol(np.float32))
    assert calls == ["_conv2d_few_channels" if plan == "few" else "_conv2d_direct"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_few_input_channels_direct_kernel_dilated(dtype):
    """Dilated taps in the eight-pixel tiles: a tap's column is ``(t // C) * d * C + t % C``."""
    rng = np.random.default_rng(9)
    x = rand(rng, (1, 11, 31, 3), dtype)
    w = rand(rng, (3, 3, 3, 40), dtype)
    g = conv2d_geometry("conv2d", x.shape, w.shape, 1, "SAME", "NHWC", 2)
    assert fast_conv2d._is_few_channels(g)
    np.testing.assert_allclose(fast_conv2d.conv2d(x, w, g), reference.conv2d(x, w, g), **tol(dtype))


def test_direct_plan_splits_even_panels_up_to_its_own_tile_count(monkeypatch):
    """Panels split over the threads below DIRECT_PANEL_SPLIT_TILES tiles a thread whatever their count, and below
    DIRECT_PANEL_SPLIT_EVEN_TILES only where they split evenly; never fewer panels than threads."""
    monkeypatch.setattr(fast_conv2d, "DIRECT_PANEL_SPLIT_TILES", 8)
    monkeypatch.setattr(fast_conv2d, "DIRECT_PANEL_SPLIT_EVEN_TILES", 40)
    split = fast_conv2d._direct_splits_panels
    assert split(3, 15, 2) and not split(3, 16, 2)  # three panels: the general rule only
    assert split(4, 79, 2) and not split(4, 80, 2)  # four: up to 40 tiles a thread
    assert split(6, 61, 2) and not split(1, 4, 2)
    monkeypatch.setattr(fast_conv2d, "DIRECT_PANEL_SPLIT_EVEN_TILES", 0)
    assert not split(4, 16, 2) and split(4, 15, 2)


def test_docstring_examples_run():
    """The plan module's examples (plan-independent: they hold on every CPU's plans)."""
    import doctest

    result = doctest.testmod(fast_conv2d)
    assert result.attempted > 0 and result.failed == 0
