"""The fast depthwise kernels against the reference, over awkward geometries.

Every call goes through the public ops, once under ``use_implementation("fast")`` and once
under ``use_implementation("reference")``, so layouts, dtypes and the kernel selection in
``sepconv.fast.depthwise`` (serial / parallel, non-finite routing) are all exercised.
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np
import pytest
from conftest import TUNED_DTYPES, rand, record_calls, tol
from conftest import fast_and_reference as _both

import sepconv
from sepconv.fast import aligned
from sepconv.fast import depthwise as fast_depthwise
from sepconv.fast import separable as fast_separable
from sepconv.fast.tuned import tuned

# (batch, height, width, channels, multiplier, kernel (kh, kw), strides, dilations, padding)
GEOMETRIES = [
    (1, 7, 9, 5, 1, (3, 3), 1, 1, "SAME"),
    (2, 7, 9, 3, 2, (3, 3), 2, 1, "SAME"),
    (1, 7, 9, 23, 1, (3, 3), (2, 3), 1, "VALID"),
    (3, 1, 1, 3, 1, (3, 3), 1, 1, "SAME"),
    (1, 2, 3, 17, 3, (3, 2), 1, 1, "SAME"),
    (2, 9, 7, 1, 1, (5, 5), 1, 1, "SAME"),
    (1, 8, 11, 67, 1, (3, 3), 1, (2, 3), "SAME"),
    (1, 10, 9, 5, 2, (3, 3), 1, 3, "VALID"),
    (2, 9, 10, 64, 1, (3, 3), 2, 1, "SAME"),
    (1, 11, 9, 16, 1, (2, 2), 3, 1, "VALID"),  # stride > kernel: some input pixels are never read
    (1, 7, 9, 5, 3, (1, 1), (3, 2), 1, "SAME"),
    (2, 6, 7, 23, 1, (3, 3), (3, 1), 2, "SAME"),
    (1, 7, 9, 17, 1, (3, 3), 1, 1, [[0, 0], [2, 0], [0, 3], [0, 0]]),
    (1, 5, 6, 3, 2, (3, 3), 2, 1, [[0, 0], [4, 1], [1, 5], [0, 0]]),  # pads larger than the window
    (1, 4, 4, 3, 1, (3, 3), 1, 3, [[0, 0], [6, 0], [0, 6], [0, 0]]),  # windows entirely in the padding
    (2, 21, 22, 70, 1, (3, 3), 1, 1, "SAME"),
    (2, 9, 8, 21, 1, (3, 3), (2, 1), 1, "SAME"),  # SAME columns, rows one at a time (vertical stride)
    (1, 10, 8, 16, 1, (3, 3), 1, (2, 1), "SAME"),  # SAME columns, rows one at a time (vertical dilation)
    (1, 24, 20, 40, 2, (3, 3), 2, 1, "SAME"),
    (3, 15, 16, 48, 1, (5, 5), 1, 1, "VALID"),
    (1, 11, 12, 19, 1, (5, 5), 2, 1, "SAME"),
    (1, 13, 12, 9, 2, (5, 5), 1, 2, "SAME"),
    (1, 9, 40, 16, 1, (3, 3), 1, 1, "SAME"),  # one full vector of channels (float32), a half (float64)
    (1, 8, 30, 12, 1, (5, 5), 1, 1, "SAME"),
    (1, 7, 9, 130, 1, (5, 5), 1, 1, "SAME"),  # channel blocks and a masked last block
    (1, 9, 10, 129, 1, (3, 3), 1, 2, "SAME"),
    (1, 6, 30, 20, 1, (3, 3), 1, 3, "SAME"),  # dilated
    (1, 6, 7, 3, 1, (7, 7), 1, 1, "SAME"),  # general kernel size, windows mostly in the padding
    # 3x3 stride 2: the input gradient's parity kernel (pairs of columns, clipped edges, missing dy rows)
    (1, 2, 1, 5, 1, (3, 3), 2, 1, "SAME"),
    (2, 8, 13, 33, 1, (3, 3), 2, 1, [[0, 0], [0, 2], [2, 1], [0, 0]]),
    (1, 12, 11, 24, 1, (3, 3), 2, 1, "VALID"),
    (1, 9, 8, 7, 1, (3, 3), 2, 1, [[0, 0], [1, 0], [0, 0], [0, 0]]),
    # 5x5 stride 2: its parity kernel (three dy rows and columns for even positions, two for odd)
    (2, 11, 13, 9, 1, (5, 5), 2, 1, "SAME"),
    (1, 12, 9, 20, 2, (5, 5), 2, 1, [[0, 0], [4, 1], [0, 3], [0, 0]]),
    (1, 6, 7, 5, 1, (5, 5), 2, 1, "VALID"),
    # vertical stride and dilation 1, horizontal ones not: 5x5 row pairs with strided, dilated columns
    (2, 9, 13, 20, 1, (5, 5), (1, 2), (1, 2), "SAME"),
    (1, 8, 12, 33, 2, (3, 3), (1, 2), 1, [[0, 0], [2, 1], [0, 2], [0, 0]]),
    # 3x3 stride 1, wide: many channel blocks, explicit pads on one side
    (1, 6, 13, 100, 1, (3, 3), 1, 1, "SAME"),
    (2, 5, 10, 144, 1, (3, 3), 1, 1, [[0, 0], [1, 0], [2, 1], [0, 0]]),
    # 5x5 and 7x7, horizontal stride 1 or 2: packed channel blocks, eight pixels per step, bands of rows
    (2, 37, 19, 40, 1, (7, 7), 1, 1, "SAME"),  # two bands per image, a last group of three pixels
    (1, 10, 12, 33, 1, (7, 7), 1, 1, "VALID"),
    (1, 13, 9, 17, 2, (7, 7), (2, 1), (2, 1), [[0, 0], [3, 1], [0, 4], [0, 0]]),
    (1, 5, 6, 3, 1, (7, 7), 1, 1, [[0, 0], [8, 0], [0, 9], [0, 0]]),  # pads beyond the window: crops
    (2, 15, 29, 40, 1, (7, 7), 2, 1, "VALID"),
    (1, 70, 20, 24, 1, (5, 5), 2, 1, "SAME"),  # 35 output rows at stride 2: two bands
    (1, 12, 17, 19, 1, (5, 5), (1, 2), (3, 1), "SAME"),
    (1, 9, 8, 8, 1, (7, 7), 1, 1, [[0, 0], [8, 0], [9, 0], [0, 0]]),  # packed input gradient, negative pads
    (1, 40, 10, 16, 1, (5, 5), 1, (2, 1), "SAME"),  # bands with vertical dilation
    (1, 75, 9, 40, 1, (5, 5), 1, 1, "SAME"),  # three bands: padding zeroed once per band, the middle one has none
    # 3x3, horizontal stride 1 and dilation d: the window slides by d in each of the d phases of a row
    (1, 10, 30, 40, 1, (3, 3), 1, 4, [[0, 0], [1, 2], [3, 0], [0, 0]]),
    (1, 6, 9, 17, 1, (3, 3), 1, 4, "SAME"),  # an interior shorter than the dilation
    (2, 5, 16, 32, 2, (3, 3), 1, (1, 3), "VALID"),
    (1, 12, 20, 24, 1, (3, 3), 1, (2, 3), [[0, 0], [3, 1], [0, 4], [0, 0]]),  # with vertical dilation, uneven pads
    # rows 7, 14 or 21 wide: seven pixels per step
    (1, 28, 27, 40, 1, (7, 7), 2, 1, "SAME"),
    (2, 9, 21, 24, 1, (5, 5), 1, 1, "SAME"),
    (1, 7, 7, 20, 1, (7, 7), 1, 1, "SAME"),
    (1, 16, 14, 33, 1, (5, 5), (1, 2), (2, 1), [[0, 0], [3, 1], [1, 2], [0, 0]]),
    (1, 6, 42, 24, 1, (7, 7), 1, 1, "SAME"),
    (1, 22, 40, 16, 1, (7, 7), 2, 1, "SAME"),  # NCHW: 7x7 stride 2, rows of two vectors and a row group of three
    (1, 18, 40, 8, 1, (5, 5), 2, 1, "SAME"),  # NCHW: 5x5 stride 2, rows of two vectors and one, a last output row
    (1, 12, 35, 16, 1, (5, 5), 1, 1, [[0, 0], [0, 0], [6, 0], [0, 0]]),  # input gradient: 35 wide, negative pad
    # 5x5 and 7x7 with horizontal dilation, stride 1: packed by phase (phases of unequal length)
    (1, 19, 19, 40, 1, (7, 7), 1, 2, "SAME"),
    (2, 11, 23, 17, 1, (5, 5), 1, 3, [[0, 0], [2, 5], [7, 1], [0, 0]]),
    (1, 13, 30, 24, 1, (7, 7), (2, 1), (1, 4), "SAME"),  # 30 = 4 phases of 8 and 7 pixels
    (1, 9, 6, 16, 1, (5, 5), 1, (2, 5), "SAME"),  # a dilation near the image's width: phases of one pixel
    (1, 14, 29, 33, 1, (7, 7), 1, 2, "VALID"),  # 17 output pixels: phases of 9 and 8
    (2, 9, 23, 20, 1, (3, 7), 1, (1, 2), "SAME"),  # 7 wide, 3 tall: the filter gradient row by row
    (1, 6, 30, 17, 2, (1, 7), (1, 2), 1, "VALID"),
    (1, 13, 17, 24, 1, (9, 9), 1, 1, "SAME"),  # packed, tap by tap (widths without a routine of their own)
    (2, 11, 20, 16, 2, (4, 4), (1, 2), 1, [[0, 0], [2, 1], [0, 3], [0, 0]]),
    (1, 12, 15, 20, 1, (2, 3), 1, (2, 3), "VALID"),
    (1, 19, 9, 33, 1, (7, 1), 2, (2, 1), "SAME"),
    (1, 8, 21, 40, 1, (1, 1), 1, 1, "VALID"),
    (1, 8, 16, 16, 1, (5, 5), 1, (1, 2), [[0, 0], [1, 1], [9, 0], [0, 0]]),  # input gradient: a negative pad
    # 3x3, rows wider than 64 pixels: tiles of 16 pixels, a last partial tile (SAME at stride 1, stride 2)
    (1, 5, 70, 24, 1, (3, 3), 1, 1, "SAME"),
    (1, 4, 83, 9, 1, (3, 3), 1, 1, "SAME"),
    (1, 6, 75, 40, 1, (3, 3), 2, 1, "SAME"),
    (2, 5, 70, 20, 1, (3, 3), (1, 2), 1, [[0, 0], [1, 0], [3, 0], [0, 0]]),
    # 7 wide at stride 2: the parity kernel's strips of four column pairs, single pairs, clipped edges
    (1, 17, 23, 20, 1, (5, 7), 2, 1, [[0, 0], [1, 3], [4, 0], [0, 0]]),
    (2, 9, 30, 33, 1, (7, 7), 2, 1, "SAME"),
    (1, 8, 13, 5, 1, (7, 7), 2, 1, [[0, 0], [0, 0], [7, 1], [0, 0]]),  # a pad beyond the window: no pairs
    # 3x3 dilated at stride 1, interiors wider than 56 pixels: tiles of 32, the phases within each tile
    (1, 9, 75, 20, 1, (3, 3), 1, (2, 4), "SAME"),
    (1, 7, 97, 17, 2, (3, 3), 1, 3, "VALID"),
]


def _ids(geometry) -> str:
    n, h, w, c, m, k, s, d, pad = geometry
    pad_name = pad if isinstance(pad, str) else "explicit"
    return f"{n}x{h}x{w}x{c}_m{m}_k{k[0]}x{k[1]}_s{s}_d{d}_{pad_name}"


def _problem(geometry, dtype, seed=0):
    n, h, w, c, m, (kh, kw), s, d, pad = geometry
    rng = np.random.default_rng(seed)
    x = rand(rng, (n, h, w, c), dtype)
    filt = rand(rng, (kh, kw, c, m), dtype)
    with sepconv.use_implementation("reference"):
        out_shape = sepconv.depthwise_conv2d(x, filt, s, pad, dilations=d).shape
    dy = rand(rng, out_shape, dtype)
    return x, filt, dy, dict(strides=s, padding=pad, dilations=d)


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_ids)
def test_forward_and_gradients_match_reference(geometry, dtype, threads, monkeypatch):
    """Every geometry on the calling thread and split over the threads (rows cut at every block size)."""
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 10**18 if threads == "serial" else 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 10**18 if threads == "serial" else 0)
    _assert_three_ops_match(*_problem(geometry, dtype), dtype)


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("width", [1, 2, 3, 4, 7, 17])
@pytest.mark.parametrize("height", [1, 2, 3, 5])
def test_same_3x3_rows_every_width_and_height(height, width, threads, monkeypatch):
    """3x3, stride 1, SAME: rows of width >= 2 take the sliding pass with zero padding columns, in
    pairs and alone (odd heights, rows split between threads); width 1 takes the border path."""
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 10**18 if threads == "serial" else 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 10**18 if threads == "serial" else 0)
    for channels, dtype in [(5, np.float64), (16, np.float32), (37, np.float32)]:
        _assert_three_ops_match(*_problem((2, height, width, channels, 1, (3, 3), 1, 1, "SAME"), dtype), dtype)


DILATED_PAIRS = [
    (2, 11, 9, 20, 1, (3, 3), 1, (2, 1), "SAME"),  # two phases of rows, uneven
    (1, 13, 12, 35, 1, (3, 3), 1, (4, 4), "SAME"),  # four phases, pairs and single rows, SAME columns
    (2, 9, 13, 16, 1, (3, 3), 1, (3, 2), "VALID"),
    (1, 17, 10, 24, 1, (3, 3), 1, (2, 3), [[0, 0], [1, 3], [4, 1], [0, 0]]),  # pads not the dilation
    (1, 6, 5, 17, 1, (3, 3), 1, (5, 5), "SAME"),  # rows and columns fewer than the dilation's reach
    (1, 10, 70, 260, 1, (3, 3), 1, (4, 4), "SAME"),  # a page between a phase's pixels (prefetched), tiles
    (1, 12, 75, 260, 1, (3, 3), 1, (2, 4), "VALID"),
    (2, 8, 9, 8, 3, (3, 3), 1, (2, 2), "SAME"),  # with a multiplier (the band kernels call the same rows)
    (2, 13, 11, 20, 1, (5, 5), 1, (2, 1), "SAME"),  # 5x5: rows i and i + d share four input rows
    (1, 17, 12, 24, 1, (5, 5), 1, (3, 2), "VALID"),
    (1, 14, 15, 33, 1, (5, 5), 1, (2, 3), [[0, 0], [1, 5], [4, 2], [0, 0]]),
    # images of PIXEL_MAJOR_MIN_IMAGE_BYTES or more in float32: the pixel-major pairs
    (1, 24, 23, 1000, 1, (3, 3), 1, (2, 2), "SAME"),
    (1, 21, 20, 1300, 1, (3, 3), 1, (3, 2), [[0, 0], [2, 1], [1, 3], [0, 0]]),
]


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", DILATED_PAIRS, ids=_ids)
def test_dilated_rows_in_pairs_per_phase(geometry, dtype, threads, monkeypatch):
    """3x3 and 5x5 at stride 1 with dilations: output rows ``i`` and ``i + d`` in one pass, phase by phase
    (odd counts per phase, images and thread chunks cut inside a phase), SAME columns dilated in
    the sliding pass, rows whose phase pixels lie a page apart (the prefetching passes), and images large
    enough for the pixel-major pairs."""
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 10**18 if threads == "serial" else 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 10**18 if threads == "serial" else 0)
    _assert_three_ops_match(*_problem(geometry, dtype), dtype)


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("multiplier", [2, 3, 4, 5, 6, 8, 11, 20])
def test_multipliers_match_reference(multiplier, dtype, threads, monkeypatch):
    """The input repeated ``M`` times and the input gradient summed over ``M``: whole vectors for
    ``M`` from 2 to 8 (11 and 20: one splat store per value), a tail of 11 elements, blocks split between threads."""
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 10**18 if threads == "serial" else 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 10**18 if threads == "serial" else 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_COPY_VALUES", 10**18 if threads == "serial" else 0)
    for channels, (h, w) in [(11, (5, 7)), (16, (4, 4))]:
        geometry = (2, h, w, channels, multiplier, (3, 3), 1, 1, "SAME")
        _assert_three_ops_match(*_problem(geometry, dtype), dtype)


FEW_CHANNELS = [
    (2, 11, 13, 3, 1, (5, 5), 1, 1, "SAME"),
    (1, 12, 40, 5, 1, (7, 7), 1, 2, "SAME"),  # 200 values a row: four-vector steps, weights of period 5
    (1, 9, 30, 12, 1, (5, 5), 1, (1, 2), "VALID"),
    (1, 8, 50, 7, 1, (2, 4), 1, 1, [[0, 0], [1, 0], [2, 1], [0, 0]]),
    (2, 6, 9, 1, 2, (7, 7), 1, 1, "SAME"),  # a multiplier: two channels after the repeat
    (1, 3, 4, 3, 1, (5, 5), 1, 3, "SAME"),  # no interior pixel
    (1, 5, 6, 3, 1, (7, 7), 1, 1, [[0, 0], [8, 0], [0, 9], [0, 0]]),  # pads beyond the window
]


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", FEW_CHANNELS, ids=_ids)
def test_few_channels_match_reference(geometry, dtype, threads, monkeypatch):
    """Fewer channels than a vector at stride 1 (not 3x3): output rows as flat runs of vectors, the forward
    and the stride-1 input gradient; the border pixels as one masked vector of channels."""
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 10**18 if threads == "serial" else 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 10**18 if threads == "serial" else 0)
    x, filt, dy, args = _problem(geometry, dtype)
    channels = x.shape[3] * filt.shape[3]
    assert fast_depthwise._few_channels(channels, x.itemsize, *filt.shape[:2], 1, 1, 0, 0) == (channels * x.itemsize < 64)
    _assert_three_ops_match(x, filt, dy, args, dtype)


def _split_and_count(monkeypatch, parallel: bool, name: str, kernels=None) -> list:
    """Every call split over the threads (or none), and the kernel ``name`` of ``kernels`` (default
    :mod:`sepconv.kernels.depthwise`) counted in the returned list (with the band kernels' ``kind``, for
    :mod:`sepconv.kernels.depthwise_multiplier`).  Only a kernel called from Python is wrapped: a parallel
    kernel compiled while a kernel it calls is a Python function fails to type."""
    kernels = kernels or fast_depthwise.kernels
    for threshold in ("PARALLEL_MIN_MACS", "NHWC_PARALLEL_MIN_MACS", "PARALLEL_MIN_BYTES"):
        monkeypatch.setattr(fast_depthwise, threshold, 0 if parallel else 10**18)
    calls: list = []
    kernel = getattr(kernels, name)
    if kernels is fast_depthwise.multiplier_kernels:
        monkeypatch.setattr(kernels, name, lambda *a: calls.append((name, a[6 if parallel else 8])) or kernel(*a))
    else:
        monkeypatch.setattr(kernels, name, lambda *a: calls.append(name) or kernel(*a))
    return calls


FEW_CHANNELS_3X3 = [
    (2, 9, 11, 3, 1, (3, 3), 1, 1, "SAME"),  # four float32 channels or fewer: the flat-row kernel
    (1, 7, 13, 4, 1, (3, 3), 1, 1, [[0, 0], [0, 2], [1, 0], [0, 0]]),
    (1, 10, 12, 8, 1, (3, 3), 1, 2, "SAME"),  # dilated, up to half a vector of channels: flat-row on one thread
    (1, 9, 15, 12, 1, (3, 3), 1, (3, 1), "VALID"),  # dilated, more: the 3x3 kernels
    (1, 4, 5, 2, 2, (3, 3), 1, 2, "SAME"),  # a multiplier: four channels after the repeat
]


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", FEW_CHANNELS_3X3, ids=_ids)
def test_few_channels_3x3_take_the_flat_row_kernel(geometry, dtype, threads, monkeypatch):
    """3x3 layers of up to 16 bytes of channels (or dilated, up to 32 bytes, on one thread) run the flat-row
    kernel, forward and stride-1 input gradient, and match the reference."""
    parallel = threads == "parallel"
    calls = _split_and_count(monkeypatch, parallel,
                             "depthwise_nhwc_forward_few_channels_" + ("parallel" if parallel else "padded_rows"))
    x, filt, dy, args = _problem(geometry, dtype)
    _assert_three_ops_match(x, filt, dy, args, dtype)
    channel_bytes = x.shape[3] * filt.shape[3] * x.itemsize
    dilated = geometry[7] != 1
    flat_row = channel_bytes <= 16 or (dilated and not parallel and channel_bytes <= 32)
    assert len(calls) == (2 if flat_row else 0)  # the forward and the input gradient


def test_launch_follows_the_thresholds_and_thread_count(monkeypatch):
    """The forward's kernel choice is kept per geometry, and chosen again when a threshold or the thread count
    changes: the same call runs on one thread, then split, then on one thread under set_num_threads(1)."""
    import numba

    from sepconv.kernels import depthwise as kernels
    from sepconv.kernels._jit import thread_count
    x, filt, _, args = _problem((1, 20, 24, 32, 1, (3, 3), 1, 1, "SAME"), np.float32)
    with sepconv.use_implementation("reference"):
        want = sepconv.depthwise_conv2d(x, filt, **args)
    # the parallel kernel compiled before the rows kernel it calls is wrapped in Python
    kernels.depthwise_nhwc_forward_parallel(x, np.ascontiguousarray(filt[..., 0]), np.empty_like(x),
                                            np.zeros(x.shape[2:], x.dtype), 2, 1, 1, 1, 1, 1, 1)
    calls = []
    for name in ("depthwise_nhwc_forward_parallel", "depthwise_nhwc_forward_3x3_rows"):
        kernel = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, _k=kernel, _n=name: calls.append(_n) or _k(*a))
    with sepconv.use_implementation("fast"):
        for parallel_from in (10**18, 0, 0):
            for name in ("PARALLEL_MIN_MACS", "NHWC_PARALLEL_MIN_MACS", "PARALLEL_MIN_BYTES"):
                monkeypatch.setattr(fast_depthwise, name, parallel_from)
            if len(calls) == 2:
                before = numba.get_num_threads()
                numba.set_num_threads(1)
                try:
                    assert thread_count() == 1
                    got = sepconv.depthwise_conv2d(x, filt, **args)
                finally:
                    numba.set_num_threads(before)
                assert thread_count() == before
            else:
                got = sepconv.depthwise_conv2d(x, filt, **args)
            np.testing.assert_allclose(got, want, **tol(np.float32))
    expected_split = "depthwise_nhwc_forward_parallel" if numba.get_num_threads() > 1 else "depthwise_nhwc_forward_3x3_rows"
    assert calls == ["depthwise_nhwc_forward_3x3_rows", expected_split, "depthwise_nhwc_forward_3x3_rows"]


STRIDED_SIMD = [
    (2, 29, 29, 40, 1, (7, 7), 2, 1, "SAME"),  # four-pixel groups and edge pixels in both phases
    (1, 28, 31, 3, 1, (7, 7), 2, 1, "VALID"),  # a masked channel block only
    (1, 17, 23, 33, 2, (4, 4), 2, 1, [[0, 0], [3, 0], [1, 2], [0, 0]]),  # even filter, explicit pads
    (1, 30, 26, 17, 1, (7, 7), 3, 1, "VALID"),
    (2, 11, 40, 20, 1, (5, 5), (2, 1), 1, "SAME"),  # vertical stride only: one column phase
    (1, 16, 45, 24, 1, (3, 7), (1, 2), 1, "SAME"),
    (1, 9, 10, 5, 1, (3, 3), 3, 1, "SAME"),  # one tap per pixel, no four-pixel group
    (1, 13, 37, 130, 1, (6, 6), (3, 2), 1, [[0, 0], [0, 4], [5, 0], [0, 0]]),  # channel blocks, pads beyond the stride
]


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", STRIDED_SIMD, ids=_ids)
def test_strided_input_gradient_register_sums(geometry, dtype, threads, monkeypatch):
    """The strided input gradient without a parity kernel, each pixel's sum in a register (four pixels at a
    time where their dy columns exist), forced on whatever the taps and columns: against the reference.
    The same call is made first with the default settings, so a plan kept from it must not be reused."""
    parallel = threads == "parallel"
    x, filt, dy, args = _problem(geometry, dtype)
    _split_and_count(monkeypatch, parallel, "depthwise_nhwc_backprop_input_strided_simd_rows")
    with sepconv.use_implementation("fast"):
        sepconv.depthwise_conv2d_backprop_input(x.shape, filt, dy, **args)
    monkeypatch.setattr(fast_depthwise, "STRIDED_SIMD_MIN_TAPS", 1)
    monkeypatch.setattr(fast_depthwise, "STRIDED_SIMD_MIN_COLUMNS", 0)
    monkeypatch.setattr(fast_depthwise, "S2_W7_PARITY", False)  # 7x7 stride 2 has a kernel of its own
    if geometry[4] > 1 and tuned(np.dtype(dtype).itemsize):  # a multiplier: the band kernel, asked for the sums
        name = "depthwise_nhwc_backprop_input_multiplier_" + ("parallel" if parallel else "bands")
        calls = _split_and_count(monkeypatch, parallel, name, fast_depthwise.multiplier_kernels)
        expected = [(name, fast_depthwise.multiplier_kernels.INPUT_GRADIENT_STRIDED_SIMD)]
    else:
        name = "depthwise_nhwc_backprop_input_strided_simd_" + ("parallel" if parallel else "rows")
        calls = _split_and_count(monkeypatch, parallel, name)
        expected = [name]
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, **args)
    np.testing.assert_allclose(fast, ref, **tol(dtype))
    assert calls == expected


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("geometry", [
    (1, 17, 23, 20, 1, (5, 7), 2, 1, [[0, 0], [1, 3], [4, 0], [0, 0]]),
    (2, 9, 30, 33, 1, (7, 7), 2, 1, "SAME"),
    (1, 20, 44, 17, 1, (7, 7), 2, 1, "VALID"),
], ids=_ids)
def test_seven_wide_stride_2_input_gradient_takes_its_parity_kernel(geometry, threads, monkeypatch):
    """Filters 7 wide at stride 2: the parity kernel (strips of four column pairs), serial and split, both dtypes."""
    parallel = threads == "parallel"
    name = "depthwise_nhwc_backprop_input_s2_" + ("parallel" if parallel else "w7_rows")
    calls = _split_and_count(monkeypatch, parallel, name)
    for dtype in (np.float32, np.float64):
        x, filt, dy, args = _problem(geometry, dtype)
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, **args)
        np.testing.assert_allclose(fast, ref, **tol(dtype))
    assert calls == [name, name]


def test_strided_input_gradient_register_sums_where_they_pay():
    """7x7 stride 2 on wide rows takes the register sums; one tap per pixel, dilation or few dy columns do not."""
    from sepconv.geometry import depthwise_geometry

    def takes(shape, k, strides, dilations=1):
        g = depthwise_geometry("depthwise_conv2d_backprop_input", shape, (k, k, shape[3], 1), strides, "SAME",
                               dilations=dilations)
        return fast_depthwise._strided_simd(g)
    assert takes((2, 29, 29, 240), 7, 2) and takes((1, 28, 28, 32), 4, 2) and takes((1, 40, 40, 8), 5, (2, 1))
    assert not takes((1, 28, 28, 32), 3, 3)  # one tap per pixel
    assert not takes((1, 13, 13, 32), 7, 2)  # 7 dy columns
    assert not takes((1, 28, 28, 32), 7, 2, dilations=(2, 1))


MULTIPLIER_GEOMETRIES = [geometry for geometry in GEOMETRIES if geometry[4] > 1] + [
    (2, 13, 11, 8, 6, (3, 3), 2, 1, "SAME"),  # bands whose first row is in the top padding
    (1, 15, 21, 5, 3, (7, 7), 2, 1, "SAME"),  # the 7-wide parity kernel in bands
    (1, 17, 9, 3, 4, (5, 5), 2, 1, "VALID"),
    (3, 10, 12, 20, 2, (7, 7), 1, (2, 1), [[0, 0], [6, 0], [0, 2], [0, 0]]),  # pads beyond the window
    # 5x5 and 7x7 at stride 1, undilated (or dilated on the AVX2 5x5 kernel): the multiplier-1 plan on the whole repeat
    (2, 12, 14, 12, 2, (5, 5), 1, 1, "SAME"),
    (1, 11, 9, 24, 3, (7, 7), 1, 1, [[0, 0], [1, 4], [3, 0], [0, 0]]),
    (1, 9, 44, 8, 2, (5, 5), 1, 2, "SAME"),
]


@pytest.mark.parametrize("threads", ["serial", "parallel"])
def test_filter_gradient_bands_of_wide_rows_stay_within_the_limit(threads, monkeypatch):
    """With a multiplier, the filter gradient's band of repeated rows stays within MULTIPLIER_GRADIENT_BAND_MAX_BYTES
    (an even count of output rows, at least two) where the reuse rule alone would take more, and the gradient equals
    the reference's; the forward keeps the rule's bands."""
    limit = fast_depthwise.MULTIPLIER_GRADIENT_BAND_MAX_BYTES
    x_shape, dy_shape = (1, 42, 42, 144), (1, 42, 42, 864)  # multiplier 6, 3x3, dilation 2: rows of 142 KB
    assert fast_depthwise._multiplier_bands(x_shape, dy_shape, 4, 3, 1, 2, 2)[0] == 8
    rows, values = fast_depthwise._multiplier_bands(x_shape, dy_shape, 4, 3, 1, 2, 2, limit)
    assert rows == 6 and values * 4 <= limit
    # a small layer with the limit scaled to it: bands of two rows (five repeated rows of 2,304 bytes fit in 12 KB)
    monkeypatch.setattr(fast_depthwise, "MULTIPLIER_GRADIENT_BAND_MAX_BYTES", 12 * 1024)
    for name in ("PARALLEL_MIN_MACS", "PARALLEL_MIN_BYTES"):
        monkeypatch.setattr(fast_depthwise, name, 10**18 if threads == "serial" else 0)
    bands = fast_depthwise._multiplier_bands
    calls = []
    monkeypatch.setattr(fast_depthwise, "_multiplier_bands", lambda *a: calls.append(bands(*a)) or calls[-1])
    geometry = (2, 12, 12, 8, 6, (3, 3), (1, 1), 2, "SAME")
    for dtype in TUNED_DTYPES:
        x, filt, dy, args = _problem(geometry, dtype)
        calls.clear()
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, filt.shape, dy, **args)
        np.testing.assert_allclose(fast, ref, **tol(dtype))
        assert [rows for rows, _ in calls] == [2]  # the fast op's bands (the reference has none)


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("band_bytes", [1, 3000, 256 * 1024])
@pytest.mark.parametrize("geometry", MULTIPLIER_GEOMETRIES, ids=_ids)
def test_multiplier_bands(geometry, band_bytes, threads, monkeypatch):
    """With a multiplier the forward and the filter gradient repeat the input band by band: bands of one output
    row, of a few, and whole images, on the calling thread and split (a thread's bands crossing images); the forward
    of layers the flat-row kernel takes, and of 5x5 and 7x7 layers at stride 1 (undilated, or on the AVX2 5x5
    kernel), repeats the input whole, and the input gradient of those and of every 5x5 and 7x7 layer is computed
    whole and summed."""
    monkeypatch.setattr(fast_depthwise, "MULTIPLIER_BAND_BYTES", band_bytes)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 10**18 if threads == "serial" else 0)
    monkeypatch.setattr(fast_depthwise, "NHWC_PARALLEL_MIN_MACS", 10**18 if threads == "serial" else 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 10**18 if threads == "serial" else 0)
    n, h, w, c, m, k, s, d, pad = geometry
    for dtype in TUNED_DTYPES:  # compiled before the band kernels are wrapped in Python (see _split_and_count)
        x, filt, dy, args = _problem(geometry, dtype)
        sepconv.depthwise_conv2d(x, filt, **args)
        sepconv.depthwise_conv2d_backprop_input(x.shape, filt, dy, **args)
        sepconv.depthwise_conv2d_backprop_filter(x, filt.shape, dy, **args)
    calls = []
    for op in ("forward", "backprop_input", "backprop_filter"):
        for suffix in ("bands", "parallel"):
            name = f"depthwise_nhwc_{op}_multiplier_{suffix}"
            kernel = getattr(fast_depthwise.multiplier_kernels, name)
            monkeypatch.setattr(fast_depthwise.multiplier_kernels, name,
                                lambda *a, kernel=kernel, name=name: calls.append(name) or kernel(*a))
    for dtype in TUNED_DTYPES:
        calls.clear()
        x, filt, dy, args = _problem(geometry, dtype)
        fast, ref = _both(sepconv.depthwise_conv2d, x, filt, **args)
        np.testing.assert_allclose(fast, ref, **tol(dtype))
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, **args)
        np.testing.assert_allclose(fast, ref, **tol(dtype))
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, filt.shape, dy, **args)
        np.testing.assert_allclose(fast, ref, **tol(dtype))
        split = threads == "parallel" and dy.shape[0] * dy.shape[1] > 1  # one output row stays on the calling thread
        suffix = "_parallel" if split else "_bands"
        assert {name for name in calls if "filter" in name} == {f"depthwise_nhwc_backprop_filter_multiplier{suffix}"}
        flat_rows = (c * m * np.dtype(dtype).itemsize < 64 and s == 1
                     and (isinstance(pad, str) or min(pad[1] + pad[2]) >= 0))
        large_filter = k in ((5, 5), (7, 7))
        on_avx2 = fast_depthwise._direct_5x5_avx2((n, h, w, c * m), dy.shape, 4, *k, 1, d if isinstance(d, int) else d[1])
        whole_forward = large_filter and s == 1 and (d == 1 or on_avx2)
        forward_calls = {name for name in calls if "forward" in name}
        assert forward_calls == (set() if flat_rows or whole_forward else {f"depthwise_nhwc_forward_multiplier{suffix}"})
        input_calls = {name for name in calls if "input" in name}
        input_split = threads == "parallel" and x.shape[0] * x.shape[1] > 1
        assert input_calls == (set() if flat_rows or large_filter else
                               {f"depthwise_nhwc_backprop_input_multiplier{'_parallel' if input_split else '_bands'}"})


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("geometry", [
    (2, 12, 12, 5, 4, (3, 3), 1, 1, "SAME"),  # 20 channels: a last block overlapping the one before it
    (1, 15, 13, 8, 6, (3, 3), 2, 1, "VALID"),  # stride 2
    (2, 11, 14, 12, 2, (3, 3), 1, 2, [[0, 0], [2, 1], [0, 3], [0, 0]]),  # dilated, explicit pads
    (1, 9, 10, 3, 8, (3, 3), (1, 2), 1, "SAME"),  # strides 1 and 2
], ids=_ids)
def test_multiplier_filter_gradient_on_the_direct_3x3_kernel(geometry, threads, monkeypatch):
    """With DIRECT_3X3 the filter gradient of a 3x3 layer with a multiplier runs its repeated bands (of one or
    two output rows) on the direct 3x3 kernel's sums, added to the gradient once per thread, in both dtypes."""
    monkeypatch.setattr(fast_depthwise, "DIRECT_3X3", True)
    monkeypatch.setattr(fast_depthwise, "MULTIPLIER_BAND_BYTES", 3000)
    for setting in ("PARALLEL_MIN_MACS", "NHWC_PARALLEL_MIN_MACS", "PARALLEL_MIN_BYTES"):
        monkeypatch.setattr(fast_depthwise, setting, 10**18 if threads == "serial" else 0)
    taken = []
    direct_layer = fast_depthwise._direct_3x3_layer
    monkeypatch.setattr(fast_depthwise, "_direct_3x3_layer", lambda *a: taken.append(direct_layer(*a)) or taken[-1])
    for dtype in TUNED_DTYPES:
        fast_depthwise.clear_plans()
        taken.clear()
        x, filt, dy, args = _problem(geometry, dtype)
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, filt.shape, dy, **args)
        np.testing.assert_allclose(fast, ref, **tol(dtype))
        assert taken == [True]


@pytest.mark.parametrize(("geometry", "threads"), [
    ((1, 23, 23, 1, 4, (3, 3), 1, 3, "SAME"), "serial"),  # 4 channels after the repeat: dilated 3x3, one thread
    ((2, 17, 17, 1, 3, (5, 5), 1, 2, "SAME"), "serial"),  # (the packed kernels from 32 bytes of channels)
    ((2, 17, 17, 1, 3, (5, 5), 1, 2, "SAME"), "parallel"),
    ((1, 9, 11, 1, 3, (7, 7), 1, 1, [[0, 0], [0, 0], [3, 3], [0, 0]]), "serial"),  # columns padded, rows not
    ((1, 10, 8, 1, 2, (3, 7), 1, 1, [[0, 0], [3, 0], [0, 2], [0, 0]]), "parallel"),
], ids=lambda p: p if isinstance(p, str) else _ids(p))
def test_few_channel_multiplier_repeats_in_the_padded_copy(geometry, threads, monkeypatch):
    """A few-channel layer with a multiplier, on the flat-row kernel with a padded copy (a filter reaching 6 columns
    or more): the copy repeats the channels (no repeated input of its own), on the calling thread and split, both
    dtypes."""
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 10**18 if threads == "serial" else 0)
    monkeypatch.setattr(fast_depthwise, "NHWC_PARALLEL_MIN_MACS", 10**18 if threads == "serial" else 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 10**18 if threads == "serial" else 0)

    def no_repeat(*args):
        raise AssertionError("the flat-row kernel's copy should repeat the input")
    for dtype in (np.float32, np.float64):
        x, filt, dy, args = _problem(geometry, dtype)
        with sepconv.use_implementation("reference"):
            want = sepconv.depthwise_conv2d(x, filt, **args)
        with monkeypatch.context() as patch, sepconv.use_implementation("fast"):
            patch.setattr(fast_depthwise, "_repeated", no_repeat)
            got = sepconv.depthwise_conv2d(x, filt, **args)
        np.testing.assert_allclose(got, want, **tol(dtype))


def test_multiplier_band_rows():
    """A band's repeated rows fit the budget (one output row at least), two bands per thread when split, and a
    band has at least twice as many rows of its own as rows it shares with the next."""
    bands = fast_depthwise._multiplier_bands
    row_bytes = 33 * 192 * 4
    band_rows, values = bands((4, 33, 33, 32), (4, 17, 17, 192), 4, 3, 2, 1, 1)
    assert values == ((band_rows - 1) * 2 + 3) * 33 * 192 and values * 4 <= fast_depthwise.MULTIPLIER_BAND_BYTES
    assert values * 4 + 2 * row_bytes > fast_depthwise.MULTIPLIER_BAND_BYTES  # one more output row would not fit
    assert bands((1, 33, 9, 32), (1, 17, 17, 192), 4, 3, 2, 1, 1)[0] == 17  # the whole image fits
    assert bands((1, 33, 9, 32), (1, 17, 17, 192), 4, 3, 2, 1, 2)[0] == 5  # 2 threads: ceil(17 / 4)
    # 48 KB rows, 3x3 dilation 2: the budget holds one output row; the reuse rule asks for 8
    assert bands((1, 30, 30, 200), (1, 30, 30, 400), 4, 3, 1, 2, 1) == (8, 12 * 30 * 400)


def test_results_do_not_share_the_kept_workspaces():
    """With a multiplier the repeated input and its gradient live in per-thread workspaces: a result
    must stay as it was when the next call (same shapes, other values) reuses them."""
    geometry = (1, 6, 7, 16, 3, (3, 3), 1, 1, "SAME")
    first, second = _problem(geometry, np.float32, seed=1), _problem(geometry, np.float32, seed=2)
    results = []
    with sepconv.use_implementation("fast"):
        for x, filt, dy, args in (first, second):
            results.append((sepconv.depthwise_conv2d(x, filt, **args),
                            sepconv.depthwise_conv2d_backprop_input(x.shape, filt, dy, **args)))
    x, filt, dy, args = first
    with sepconv.use_implementation("reference"):
        want = (sepconv.depthwise_conv2d(x, filt, **args), sepconv.depthwise_conv2d_backprop_input(x.shape, filt, dy, **args))
    for got, expected in zip(results[0], want, strict=True):
        np.testing.assert_allclose(got, expected, **tol(np.float32))


def _assert_three_ops_match(x, filt, dy, args, dtype):
    """Forward, input gradient and filter gradient: fast against reference."""
    fast, ref = _both(sepconv.depthwise_conv2d, x, filt, **args)
    assert fast.dtype == ref.dtype == dtype
    np.testing.assert_allclose(fast, ref, **tol(dtype))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, **args)
    np.testing.assert_allclose(fast, ref, **tol(dtype))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, filt.shape, dy, **args)
    np.testing.assert_allclose(fast, ref, **tol(dtype))


def _nchw(geometry_args: dict) -> dict:
    """The same call in NCHW: explicit NHWC pads become NCHW pads."""
    pad = geometry_args["padding"]
    if not isinstance(pad, str):
        pad = [pad[0], pad[3], pad[1], pad[2]]
    return {**geometry_args, "padding": pad, "data_format": "NCHW"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_ids)
def test_native_nchw_matches_reference(geometry, dtype, monkeypatch):
    """NCHW runs on its own kernels (no transposes): the same grid, transposed, every plane size native."""
    monkeypatch.setattr(fast_depthwise, "NCHW_NATIVE_MIN_PIXELS", 0)
    monkeypatch.setattr(fast_depthwise, "NCHW_ONE_VECTOR_ROWS_BY_CHANNELS", False)
    x, filt, dy, args = _problem(geometry, dtype)
    x, dy, args = x.transpose(0, 3, 1, 2).copy(), dy.transpose(0, 3, 1, 2).copy(), _nchw(args)
    _assert_three_ops_match(x, filt, dy, args, dtype)
    pointwise = rand(np.random.default_rng(9), (1, 1, filt.shape[2] * filt.shape[3], 5), dtype)
    fast, ref = _both(sepconv.separable_conv2d, x, filt, pointwise, **args)
    np.testing.assert_allclose(fast, ref, **tol(dtype))


def test_native_nchw_is_taken(monkeypatch):
    """The NCHW calls reach the native kernels, not the NHWC ones through transposes (planes made large
    enough to take them)."""
    def refuse(*args):
        raise AssertionError("NHWC kernel called for an NCHW depthwise op")

    rng = np.random.default_rng(3)
    x, filt = rand(rng, (2, 3, 33, 35), np.float32), rand(rng, (3, 3, 3, 2), np.float32)
    dy = rand(rng, (2, 6, 33, 35), np.float32)
    for name in ("depthwise_conv2d", "depthwise_conv2d_backprop_input", "depthwise_conv2d_backprop_filter"):
        monkeypatch.setattr(sepconv.fast, name, refuse)
        monkeypatch.setattr(fast_depthwise, name, refuse)
    args = dict(strides=1, padding="SAME", data_format="NCHW")
    assert sepconv.depthwise_conv2d(x, filt, **args).shape == dy.shape
    assert sepconv.depthwise_conv2d_backprop_input(x.shape, filt, dy, **args).shape == x.shape
    assert sepconv.depthwise_conv2d_backprop_filter(x, filt.shape, dy, **args).shape == filt.shape


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("shape, k, strides, padding, kind", [
    ((1, 960, 7, 7), 5, 1, "SAME", 1),  # packed, two ranges of 30 vectors
    ((3, 40, 7, 7), 3, 1, "SAME", 0),  # the 3x3 kernel, a range of one vector and a partial one
    ((2, 33, 9, 9), 7, 1, "VALID", 1),  # a 3x3 output plane
    ((2, 20, 6, 6), 5, 2, "SAME", 1),  # stride 2
    ((1, 8, 5, 5), 3, 1, [[0, 0], [0, 0], [2, 0], [1, 1]], 0),  # fewer channels than a vector, explicit pads
    ((2, 24, 8, 8), 4, 1, "SAME", 1),  # a 4x4 filter, packed
    ((2, 24, 9, 9), 5, 3, "SAME", 3),  # stride 3: the general kernel
    ((2, 64, 9, 9), 5, 1, "SAME", 2),  # the direct 5x5 kernel (forced)
])
def test_nchw_small_planes_by_channels(shape, k, strides, padding, kind, threads, monkeypatch):
    """NCHW layers of small planes (multiplier 1) go through NHWC range of channels by range of channels, each
    thread transposing, computing and transposing back its own (sepconv.kernels.depthwise_nchw_small), with the
    rows kernel the NHWC layer would take; results as the reference's (float32: sepconv.fast.tuned)."""
    from sepconv.kernels import depthwise_nchw_small

    calls = record_calls(monkeypatch, depthwise_nchw_small, "depthwise_nchw_small_forward_parallel",
                         lambda args: args[3:5])
    monkeypatch.setattr(fast_depthwise, "NHWC_PARALLEL_MIN_MACS", 10**18 if threads == "serial" else 0)
    if kind == 2:
        monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_MIN_WIDTH", 0)
    rng = np.random.default_rng(k)
    for dtype in TUNED_DTYPES:
        x, filt = rand(rng, shape, dtype), rand(rng, (k, k, shape[1], 1), dtype)
        fast, ref = _both(sepconv.depthwise_conv2d, x, filt, strides, padding, data_format="NCHW")
        np.testing.assert_allclose(fast, ref, **tol(dtype))
    assert [c[1] for c in calls] == [kind] * len(TUNED_DTYPES)
    vectors = [-(-shape[1] * np.dtype(dtype).itemsize // 64) for dtype in TUNED_DTYPES]
    assert [c[0] for c in calls] == [1 if threads == "serial" else min(2, v) for v in vectors]


@pytest.mark.parametrize("shape, k, padding", [
    ((1, 960, 7, 7), 5, "SAME"), ((2, 33, 9, 9), 7, "VALID"), ((3, 40, 7, 7), 3, [[0, 0], [0, 0], [2, 0], [1, 1]])])
def test_nchw_small_planes_input_gradient_by_channels(shape, k, padding, monkeypatch):
    """The stride-1 input gradient of small NCHW planes is the same route's forward of ``dy`` with the filter
    rotated (sepconv.kernels.depthwise_nchw_small); results as the reference's."""
    from sepconv.kernels import depthwise_nchw_small

    calls = record_calls(monkeypatch, depthwise_nchw_small, "depthwise_nchw_small_forward_parallel",
                         lambda args: args[4])
    rng = np.random.default_rng(k)
    for dtype in TUNED_DTYPES:
        x, filt = rand(rng, shape, dtype), rand(rng, (k, k, shape[1], 1), dtype)
        dy = rand(rng, sepconv.depthwise_conv2d(x, filt, 1, padding, data_format="NCHW").shape, dtype)
        calls.clear()
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, 1, padding, data_format="NCHW")
        np.testing.assert_allclose(fast, ref, **tol(dtype))
        assert len(calls) == 1


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("shape, k, strides, padding", [
    ((1, 960, 7, 7), 5, 1, "SAME"), ((3, 40, 7, 7), 3, 1, "SAME"), ((2, 33, 9, 9), 7, 1, "VALID"),
    ((2, 20, 6, 6), 5, 2, "SAME"), ((1, 8, 5, 5), 3, 1, [[0, 0], [0, 0], [2, 0], [1, 1]]), ((2, 24, 9, 9), 5, 3, "SAME")])
def test_nchw_small_planes_filter_gradient_by_channels(shape, k, strides, padding, threads, monkeypatch):
    """The filter gradient of small NCHW planes, channel range by channel range (each range's sums its own, no
    partial sums across threads); results as the reference's (float32: sepconv.fast.tuned)."""
    from sepconv.kernels import depthwise_nchw_small

    calls = record_calls(monkeypatch, depthwise_nchw_small, "depthwise_nchw_small_filter_gradient_parallel")
    monkeypatch.setattr(fast_depthwise, "NHWC_PARALLEL_MIN_MACS", 10**18 if threads == "serial" else 0)
    rng = np.random.default_rng(k)
    for dtype in TUNED_DTYPES:
        x, filt = rand(rng, shape, dtype), rand(rng, (k, k, shape[1], 1), dtype)
        dy = rand(rng, sepconv.depthwise_conv2d(x, filt, strides, padding, data_format="NCHW").shape, dtype)
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, filt.shape, dy, strides, padding,
                          data_format="NCHW")
        np.testing.assert_allclose(fast, ref, **tol(dtype))
    vectors = [-(-shape[1] * np.dtype(dtype).itemsize // 64) for dtype in TUNED_DTYPES]
    assert calls == [1 if threads == "serial" else min(2, v) for v in vectors]


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("shape, k, padding", [
    ((2, 40, 14, 14), 3, "SAME"), ((1, 33, 13, 13), 5, "VALID"), ((2, 24, 9, 11), 7, "SAME"),
    ((1, 8, 10, 10), 3, [[0, 0], [0, 0], [1, 2], [0, 1]])])
def test_nchw_small_planes_stride_2_input_gradient_by_channels(shape, k, padding, threads, monkeypatch):
    """The stride-2 input gradient of small NCHW output planes (3x3, 5x5, 7x7, undilated) goes channel range by
    channel range through the NHWC parity kernel; results as the reference's (float32: sepconv.fast.tuned)."""
    from sepconv.kernels import depthwise_nchw_small

    calls = record_calls(monkeypatch, depthwise_nchw_small, "depthwise_nchw_small_input_gradient_s2_parallel")
    monkeypatch.setattr(fast_depthwise, "NHWC_PARALLEL_MIN_MACS", 10**18 if threads == "serial" else 0)
    rng = np.random.default_rng(k)
    for dtype in TUNED_DTYPES:
        x, filt = rand(rng, shape, dtype), rand(rng, (k, k, shape[1], 1), dtype)
        dy = rand(rng, sepconv.depthwise_conv2d(x, filt, 2, padding, data_format="NCHW").shape, dtype)
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, 2, padding, data_format="NCHW")
        np.testing.assert_allclose(fast, ref, **tol(dtype))
    vectors = [-(-shape[1] * np.dtype(dtype).itemsize // 64) for dtype in TUNED_DTYPES]
    assert calls == [1 if threads == "serial" else min(2, v) for v in vectors]


def test_nchw_one_vector_rows_by_channels(monkeypatch):
    """Planes above the small-plane threshold whose rows are at most one vector take the route by channel ranges
    where it was measured faster: 7x7 filters at stride 1 (forward and input gradient), and every stride-1 filter
    gradient; a 3x3 forward stays native.  Results as the reference's."""
    from sepconv.kernels import depthwise_nchw_small

    calls = []
    for name in ("depthwise_nchw_small_forward_parallel", "depthwise_nchw_small_filter_gradient_parallel"):
        kernel = getattr(depthwise_nchw_small, name)
        monkeypatch.setattr(depthwise_nchw_small, name, lambda *args, _k=kernel, _n=name: calls.append(_n) or _k(*args))
    rng = np.random.default_rng(5)
    for k, expected in ((7, ["depthwise_nchw_small_forward_parallel"] * 2), (3, [])):
        x, filt = rand(rng, (2, 24, 14, 14), np.float32), rand(rng, (k, k, 24, 1), np.float32)
        dy = rand(rng, x.shape, np.float32)
        calls.clear()
        fast, ref = _both(sepconv.depthwise_conv2d, x, filt, 1, "SAME", data_format="NCHW")
        np.testing.assert_allclose(fast, ref, **tol(np.float32))
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, 1, "SAME", data_format="NCHW")
        np.testing.assert_allclose(fast, ref, **tol(np.float32))
        assert calls == expected
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, filt.shape, dy, 1, "SAME", data_format="NCHW")
        np.testing.assert_allclose(fast, ref, **tol(np.float32))
        assert calls[-1] == "depthwise_nchw_small_filter_gradient_parallel"
        calls.clear()  # both gradients: the 7x7 layer's two routes by channels; the 3x3 layer's input gradient native
        (fast_dx, fast_dw), (ref_dx, ref_dw) = _both(sepconv.depthwise_conv2d_gradients, x, filt, dy, 1, "SAME",
                                                     data_format="NCHW")
        np.testing.assert_allclose(fast_dx, ref_dx, **tol(np.float32))
        np.testing.assert_allclose(fast_dw, ref_dw, **tol(np.float32))
        if k == 7:
            assert calls == ["depthwise_nchw_small_forward_parallel", "depthwise_nchw_small_filter_gradient_parallel"]
        else:
            assert "depthwise_nchw_small_forward_parallel" not in calls


@pytest.mark.parametrize("shape, k, strides, transposed", [
    ((2, 128, 14, 14), 5, 1, True),  # rows of 14 pixels, 5x5
    ((1, 136, 24, 40), 5, 2, True),  # stride 2: output rows of 20 pixels; the last channel block overlapping
    ((1, 128, 12, 40), 5, 1, False),  # rows of 40 pixels: native
    ((1, 120, 14, 14), 5, 1, False),  # fewer than NCHW_TRANSPOSED_MIN_CHANNELS channels: native
    ((1, 256, 14, 14), 3, 1, False),  # 3x3: native
    ((1, 64, 12, 50), 7, 1, True),  # 7x7 on rows of 50 pixels, 64 channels
    ((1, 48, 12, 50), 7, 1, False),  # ... 48 channels: native
    ((1, 64, 12, 70), 7, 1, False),  # ... rows of 70 pixels: native
])
def test_nchw_transposed_filters(shape, k, strides, transposed, monkeypatch):
    """With NCHW_TRANSPOSED_FILTERS (the AVX2 plans) the NCHW forward and input gradient of 5x5 and larger filters on
    short rows of many channels (7x7 ones on rows up to 64 pixels, from 64 channels) go through NHWC by whole-array
    transposes, the others stay native; every result as the reference's."""
    calls = record_calls(monkeypatch, fast_depthwise, "nhwc_to_nchw", record=lambda args: args[0].shape)
    monkeypatch.setattr(fast_depthwise, "NCHW_TRANSPOSED_FILTERS", True)
    rng = np.random.default_rng(8)
    x, filt = rand(rng, shape, np.float32), rand(rng, (k, k, shape[1], 1), np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d, x, filt, strides, "SAME", data_format="NCHW")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    dy = rand(rng, ref.shape, np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, strides, "SAME", data_format="NCHW")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert len(calls) == (2 if transposed else 0)
    monkeypatch.setattr(fast_depthwise, "NCHW_TRANSPOSED_FILTERS", False)
    fast = sepconv.depthwise_conv2d(x, filt, strides, "SAME", data_format="NCHW")
    assert len(calls) == (2 if transposed else 0)  # the setting off: native


@pytest.mark.parametrize("shape, transposed", [
    ((2, 96, 14, 14), True),
    ((1, 96, 14, 14), False),  # batch 1: native (the filter gradient by channels)
    ((2, 64, 14, 14), False),  # fewer than NCHW_TRANSPOSED_3X3_MIN_CHANNELS channels
    ((2, 96, 12, 40), False),  # rows of 40 pixels
])
def test_nchw_3x3_transposed(shape, transposed, monkeypatch):
    """With NCHW_TRANSPOSED_FILTERS, NCHW 3x3 layers from a batch of two, on short rows of many channels, run all
    three ops (and both gradients together, as the two ops) through NHWC by whole-array transposes; the others do
    not; every result as the reference's."""
    calls = record_calls(monkeypatch, fast_depthwise, "_nhwc_copy", record=lambda args: args[1])
    monkeypatch.setattr(fast_depthwise, "NCHW_TRANSPOSED_FILTERS", True)
    rng = np.random.default_rng(9)
    x, filt = rand(rng, shape, np.float32), rand(rng, (3, 3, shape[1], 1), np.float32)
    dy = rand(rng, shape, np.float32)
    args = dict(strides=1, padding="SAME", data_format="NCHW")
    fast, ref = _both(sepconv.depthwise_conv2d, x, filt, **args)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, **args)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, filt.shape, dy, **args)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    (fast_dx, fast_dw), (ref_dx, ref_dw) = _both(sepconv.depthwise_conv2d_gradients, x, filt, dy, **args)
    np.testing.assert_allclose(fast_dx, ref_dx, **tol(np.float32))
    np.testing.assert_allclose(fast_dw, ref_dw, **tol(np.float32))
    copies = ["nchw_input", "nchw_output_gradient", "nchw_input", "nchw_output_gradient"]
    assert calls == ([*copies, "nchw_output_gradient", "nchw_input", "nchw_output_gradient"] if transposed else [])


@pytest.mark.parametrize("k", [3, 5])
def test_native_nchw_small_planes_of_a_large_input(k, monkeypatch):
    """Output planes under NCHW_NATIVE_MIN_PIXELS stay native when the input planes are not small (the
    copies would cost more), except the stride-2 input gradient, which goes through NHWC; results as the
    reference."""
    monkeypatch.setattr(fast_depthwise, "NCHW_NATIVE_MIN_INPUT_PIXELS", 40)
    rng = np.random.default_rng(8)
    x, filt = rand(rng, (2, 3, 6, 7), np.float32), rand(rng, (k, k, 3, 2), np.float32)
    calls = []
    for name in ("depthwise_conv2d", "depthwise_conv2d_backprop_input", "depthwise_conv2d_backprop_filter"):
        original = getattr(fast_depthwise, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)
        monkeypatch.setattr(fast_depthwise, name, spy)
    for strides in (1, 2):
        args = dict(strides=strides, padding="SAME", data_format="NCHW")
        fast, ref = _both(sepconv.depthwise_conv2d, x, filt, **args)
        np.testing.assert_allclose(fast, ref, **tol(np.float32))
        dy = rand(rng, fast.shape, np.float32)
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, filt.shape, dy, **args)
        np.testing.assert_allclose(fast, ref, **tol(np.float32))
        assert calls == [], calls  # forward and filter gradient: native
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, **args)
        np.testing.assert_allclose(fast, ref, **tol(np.float32))
        assert calls == ([] if strides == 1 else ["depthwise_conv2d_backprop_input"]), calls
        calls.clear()


@pytest.mark.parametrize("shape, k, padding, dtype, through_nchw", [
    ((1, 64, 64, 3), 3, "SAME", np.float32, True),
    ((2, 52, 49, 4), 5, "VALID", np.float32, True),  # 24x23 output pixels
    ((1, 48, 48, 2), 7, "SAME", np.float64, False),  # 16 bytes of channels, but float64 (sepconv.fast.tuned)
    ((2, 50, 47, 4), 5, "VALID", np.float32, False),  # 23x22 output pixels: fewer than FEW_CHANNELS_NCHW_MIN_PIXELS
    ((1, 48, 48, 3), 3, "SAME", np.float64, False),  # 24 bytes of channels
    ((1, 64, 64, 6), 3, "SAME", np.float32, False),
])
def test_few_channels_at_stride_2_through_nchw(shape, k, padding, dtype, through_nchw, monkeypatch):
    """NHWC layers of at most four float32 channels at stride 2 on large enough planes run the forward and input
    gradient on the native NCHW kernels through transposes (into the caller's scratch for a separable layer's
    depthwise pass); every result as the reference's, and still itself after the next call."""
    calls = record_calls(monkeypatch, fast_depthwise, "_nchw_copy", record=lambda args: args[1])
    rng = np.random.default_rng(21)
    x, filt = rand(rng, shape, dtype), rand(rng, (k, k, shape[3], 1), dtype)
    fast, ref = _both(sepconv.depthwise_conv2d, x, filt, 2, padding)
    np.testing.assert_allclose(fast, ref, **tol(dtype))
    dy = rand(rng, ref.shape, dtype)
    fast_dx, ref_dx = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, 2, padding)
    np.testing.assert_allclose(fast_dx, ref_dx, **tol(dtype))
    with sepconv.use_implementation("fast"):
        sepconv.depthwise_conv2d(2 * x, filt, 2, padding)
        sepconv.depthwise_conv2d_backprop_input(x.shape, filt, 2 * dy, 2, padding)
    np.testing.assert_allclose(fast, ref, **tol(dtype))
    np.testing.assert_allclose(fast_dx, ref_dx, **tol(dtype))
    pointwise = rand(rng, (1, 1, shape[3], 5), dtype)
    monkeypatch.setattr(fast_separable, "SMALL", False)  # the depthwise pass, then the product
    monkeypatch.setattr(fast_separable, "FUSE", False)
    fast, ref = _both(sepconv.separable_conv2d, x, filt, pointwise, 2, padding)
    np.testing.assert_allclose(fast, ref, **tol(dtype))
    expected = ["nhwc_input", "nhwc_output_gradient", "nhwc_input", "nhwc_output_gradient", "nhwc_input"]
    assert calls == (expected if through_nchw else [])


def test_nchw_through_nhwc_results_outlive_the_next_call():
    """Small planes go through NHWC with the copies in per-thread workspaces: a result is still itself
    after the next call, of every op, reuses them."""
    rng = np.random.default_rng(12)
    x1, x2 = rand(rng, (3, 20, 5, 6), np.float32), rand(rng, (3, 20, 5, 6), np.float32)
    filt = rand(rng, (3, 3, 20, 1), np.float32)
    args = dict(strides=1, padding="SAME", data_format="NCHW")
    with sepconv.use_implementation("fast"):
        y1 = sepconv.depthwise_conv2d(x1, filt, **args)
        kept = y1.copy()
        dx1 = sepconv.depthwise_conv2d_backprop_input(x1.shape, filt, x1, **args)
        kept_dx = dx1.copy()
        sepconv.depthwise_conv2d(x2, filt, **args)
        sepconv.depthwise_conv2d_backprop_input(x1.shape, filt, x2, **args)
        sepconv.depthwise_conv2d_backprop_filter(x2, filt.shape, x1, **args)
    np.testing.assert_array_equal(y1, kept)
    np.testing.assert_array_equal(dx1, kept_dx)
    with sepconv.use_implementation("reference"):
        np.testing.assert_allclose(y1, sepconv.depthwise_conv2d(x1, filt, **args), **tol(np.float32))


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_native_nchw_non_finite_filter_like_the_reference(bad, monkeypatch):
    monkeypatch.setattr(fast_depthwise, "NCHW_NATIVE_MIN_PIXELS", 0)
    monkeypatch.setattr(fast_depthwise, "NCHW_ONE_VECTOR_ROWS_BY_CHANNELS", False)
    x = rand(np.random.default_rng(5), (2, 4, 6, 7), np.float64)
    filt = rand(np.random.default_rng(6), (3, 3, 4, 2), np.float64)
    filt[0, 0, 1, 1] = bad
    fast, ref = _both(sepconv.depthwise_conv2d, x, filt, 1, "SAME", data_format="NCHW")
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref))
    np.testing.assert_allclose(fast, ref, **tol(np.float64))
    dy = rand(np.random.default_rng(7), fast.shape, np.float64)
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, 1, "SAME", data_format="NCHW")
    np.testing.assert_allclose(fast, ref, **tol(np.float64))


def test_thread_split_thresholds(monkeypatch):
    """Tall images split from PARALLEL_MIN_MACS, short ones (fewer rows than PARALLEL_MIN_ROWS) from three
    times that, and any call from PARALLEL_MIN_BYTES of streamed arrays; never into more ranges than rows."""
    monkeypatch.setattr(fast_depthwise, "thread_count", lambda: 2)
    low, rows = fast_depthwise.PARALLEL_MIN_MACS, fast_depthwise.PARALLEL_MIN_ROWS
    assert fast_depthwise._n_chunks(rows, low) == 2
    assert fast_depthwise._n_chunks(rows, low - 1) == 1
    assert fast_depthwise._n_chunks(rows - 1, 3 * low - 1) == 1
    assert fast_depthwise._n_chunks(rows - 1, 3 * low) == 2
    assert fast_depthwise._n_chunks(1, 0, fast_depthwise.PARALLEL_MIN_BYTES) == 1
    assert fast_depthwise._n_chunks(2, 0, fast_depthwise.PARALLEL_MIN_BYTES) == 2
    nhwc = fast_depthwise.NHWC_PARALLEL_MIN_MACS
    assert fast_depthwise._n_chunks(rows, nhwc, min_macs=nhwc) == 2
    assert fast_depthwise._n_chunks(rows, nhwc - 1, min_macs=nhwc) == 1
    assert fast_depthwise._n_chunks(rows - 1, 3 * low - 1, min_macs=nhwc) == 1  # short images as before
    # the settings are read when called (they were default arguments, fixed at import)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 1000)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_ROWS", 4)
    assert fast_depthwise._n_chunks(4, 1000) == 2 and fast_depthwise._n_chunks(4, 999) == 1
    assert fast_depthwise._n_chunks(3, 2999) == 1 and fast_depthwise._n_chunks(3, 3000) == 2


def test_nhwc_3x3_splits_from_its_threshold(monkeypatch):
    """The NHWC 3x3 forward and input gradient of tall images split from NHWC_PARALLEL_MIN_MACS (lower than
    the packed kernels' PARALLEL_MIN_MACS, which also holds with a channel multiplier): 1x32x32x32 3x3 is
    0.29M multiply-adds."""
    monkeypatch.setattr(fast_depthwise, "thread_count", lambda: 2)
    assert fast_depthwise.NHWC_PARALLEL_MIN_MACS <= 32 * 32 * 32 * 9 < fast_depthwise.PARALLEL_MIN_MACS
    assert fast_depthwise._forward_chunks((1, 32, 32, 32), (1, 32, 32, 32), 4, 3, 3, 1, 1, 1) == 2
    assert fast_depthwise._forward_chunks((1, 32, 32, 32), (1, 32, 32, 32), 4, 5, 5, 1, 1, 1) == 2  # 0.8M
    # packed, 0.31M multiply-adds; counted in whole vectors of 16 channels, 0.41M
    assert fast_depthwise._forward_chunks((1, 32, 32, 12), (1, 32, 32, 12), 4, 5, 5, 1, 1, 1, whole_vectors=False) == 1
    assert fast_depthwise._forward_chunks((1, 32, 32, 12), (1, 32, 32, 12), 4, 5, 5, 1, 1, 1) == 2
    # 3 channels at stride 2: 0.07M multiply-adds, 0.38M in whole vectors
    assert fast_depthwise._forward_chunks((1, 61, 61, 3), (1, 31, 31, 3), 4, 5, 5, 2, 1, 1) == 2
    assert fast_depthwise._forward_chunks((1, 61, 61, 3), (1, 31, 31, 3), 4, 5, 5, 2, 1, 1, whole_vectors=False) == 1
    assert fast_depthwise._vector_size((2, 3, 5, 17), 4) == 2 * 3 * 5 * 32
    assert fast_depthwise._vector_size((2, 3, 5, 17), 8) == 2 * 3 * 5 * 24
    # around a channel multiplier's copy, the higher threshold
    assert fast_depthwise._forward_chunks((1, 32, 32, 32), (1, 32, 32, 32), 4, 3, 3, 1, 1, 1, True) == 1


def test_packed_kernels_split_short_images(monkeypatch):
    """The packed kernels (filters other than 3x3) split short images from PARALLEL_MIN_MACS as tall ones;
    the 3x3 kernels keep the short-image rule.  1x14x14x96 5x5: 0.47M multiply-adds; 3x3 over 56
    channels: 14 * 14 * 56 * 9 = 0.1M below, 3x3 over 256: 0.45M, short."""
    monkeypatch.setattr(fast_depthwise, "thread_count", lambda: 2)
    assert fast_depthwise.PARALLEL_MIN_MACS <= 14 * 14 * 96 * 25 < 3 * fast_depthwise.PARALLEL_MIN_MACS
    chunks = fast_depthwise._forward_chunks
    assert chunks((1, 14, 14, 96), (1, 14, 14, 96), 4, 5, 5, 1, 1, 1) == 2
    assert chunks((1, 28, 28, 96), (1, 14, 14, 96), 4, 5, 5, 2, 1, 1) == 2
    assert chunks((1, 14, 14, 256), (1, 14, 14, 256), 4, 3, 3, 1, 1, 1) == 1
    assert chunks((1, 14, 14, 16), (1, 14, 14, 16), 4, 5, 5, 1, 1, 1) == 1  # below PARALLEL_MIN_MACS


def test_serial_and_parallel_paths_agree(monkeypatch):
    x, filt, dy, args = _problem((2, 21, 22, 70, 2, (3, 3), 1, 1, "SAME"), np.float64)
    results = {}
    for name, threshold in (("serial", 10**18), ("parallel", 0)):
        monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", threshold)
        monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", threshold)
        with sepconv.use_implementation("fast"):
            results[name] = (sepconv.depthwise_conv2d(x, filt, **args),
                             sepconv.depthwise_conv2d_backprop_input(x.shape, filt, dy, **args),
                             sepconv.depthwise_conv2d_backprop_filter(x, filt.shape, dy, **args))
    for serial, parallel in zip(results["serial"], results["parallel"], strict=True):
        np.testing.assert_allclose(serial, parallel, rtol=1e-12, atol=1e-12)


def _at_offset(a: np.ndarray, offset_bytes: int) -> np.ndarray:
    """A C-contiguous copy of ``a`` whose data starts ``offset_bytes`` past a 64-byte line."""
    buffer = np.empty(a.size + 64 // a.itemsize, a.dtype)
    start = ((offset_bytes - buffer.ctypes.data) % 64) // a.itemsize
    out = buffer[start:start + a.size].reshape(a.shape)
    out[...] = a
    assert out.ctypes.data % 64 == offset_bytes
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [8, 15, 16, 17, 32, 48])
@pytest.mark.parametrize("kernel_size", [3, 5, 7])
def test_simd_channel_blocks_at_every_alignment(kernel_size, c, dtype, monkeypatch):
    """The SIMD kernels start their channel blocks at the input's first cache-line-aligned channel: a
    short first block, full vectors, a masked last one (pixels of more than ``SPLIT_LOADS_MAX_VECTORS``
    vectors; smaller ones, such as 32 float32 channels, keep whole unaligned blocks).  Every offset
    of ``x`` and ``dy`` from a line, channel counts on both sides of the lane count, serial and parallel,
    outputs placed at the input's offset from a line or wherever NumPy puts them."""
    geometry = (2, 7, 11, c, 1, (kernel_size, kernel_size), 1, 1, "SAME")
    x, filt, dy, args = _problem(geometry, dtype, seed=c)
    itemsize = np.dtype(dtype).itemsize
    for offset in range(0, 64, itemsize):
        monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 0 if offset % 16 else 10**18)
        monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 0 if offset % 16 else 10**18)
        monkeypatch.setattr(sys.modules["sepconv.fast.aligned"], "PLACED_MIN_BYTES", 0 if offset % 24 else 10**18)
        _assert_three_ops_match(_at_offset(x, offset), filt, _at_offset(dy, (64 - offset) % 64), args, dtype)
    strided = dict(args, strides=2, dilations=1)
    x, filt, dy, _ = _problem((2, 9, 12, c, 1, (kernel_size, kernel_size), 2, 1, "SAME"), dtype, seed=c + 1)
    _assert_three_ops_match(_at_offset(x, itemsize), filt, _at_offset(dy, 2 * itemsize), strided, dtype)


@pytest.mark.parametrize("kernel_size", [5, 7])
def test_packed_stride_2_blocks_from_the_input_line(kernel_size, fresh_plans, monkeypatch):
    """At stride 2 the packed forward starts its channel blocks at the input's first aligned channel (its output
    is on a line, so the stores split instead): 80 channels (a short first block, four whole, a short last one)
    at every 4-byte offset of a line, one thread and two."""
    x, filt, _, args = _problem((1, 23, 26, 80, 1, (kernel_size, kernel_size), 2, 1, "SAME"), np.float32)
    for offset in range(0, 64, 4):
        monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 0 if offset % 8 else 10**18)
        fast, ref = _both(sepconv.depthwise_conv2d, _at_offset(x, offset), filt, **args)
        np.testing.assert_allclose(fast, ref, **tol(np.float32))


@pytest.mark.parametrize("shape, kernel_size, padding, offset, dtype", [
    ((1, 64, 66, 256), 5, "SAME", 0, np.float32),  # one image per thread; the rings' first rows in the top padding
    ((1, 69, 64, 256), 7, "VALID", 16, np.float32),  # blocks from the input's first aligned channel
    ((3, 64, 64, 128), 5, "SAME", 0, np.float32),  # a thread's rows run from one image into the next
    ((1, 70, 65, 128), 9, "SAME", 8, np.float32),  # 512 bytes of channels
    ((2, 68, 64, 192), 5, "VALID", 24, np.float32),  # a short first block, a short last one
])
def test_packed_stride_2_rolling_rows(shape, kernel_size, padding, offset, dtype, fresh_plans, monkeypatch):
    """Stride-2 layers from 2 MB whose pixels are a multiple of 256 bytes pack their input row by row into rings
    (``_forward_rows_rolling``), a group of channel blocks at a time (5x5 filters here too, not the direct kernel)."""
    from sepconv.kernels import depthwise_packed
    monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_S2", False)
    n, h, w, c = shape
    itemsize = np.dtype(dtype).itemsize
    out_h = -(-h // 2) if padding == "SAME" else (h - kernel_size) // 2 + 1
    assert depthwise_packed.rolling_fit(h * w * c * itemsize, c * itemsize, out_h)
    x, filt, _, args = _problem((*shape, 1, (kernel_size, kernel_size), 2, 1, padding), dtype)
    fast, ref = _both(sepconv.depthwise_conv2d, _at_offset(x, offset), filt, **args)
    np.testing.assert_allclose(fast, ref, **tol(dtype))


@pytest.mark.parametrize("kernel_size, stride, on_line", [(5, 1, True), (7, 2, True), (3, 1, False)])
def test_packed_outputs_start_on_a_line(kernel_size, stride, on_line, fresh_plans, monkeypatch):
    """The packed kernels' outputs (forward, and the stride-1 input gradient, the packed forward of ``dy``) start
    on a cache line whatever the input's offset from one; the other kernels' at the input's offset.  Both match
    the reference, from an input 16 bytes past a line."""
    monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_MIN_VECTORS", 10**9)  # 5x5 on the packed kernels
    x, filt, dy, args = _problem((1, 40, 44, 64, 1, (kernel_size, kernel_size), stride, 1, "SAME"), np.float32)
    x, dy = _at_offset(x, 16), _at_offset(dy, 16)
    fast, ref = _both(sepconv.depthwise_conv2d, x, filt, **args)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert fast.ctypes.data % 64 == (0 if on_line else 16)
    if stride == 1:
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, **args)
        np.testing.assert_allclose(fast, ref, **tol(np.float32))
        assert fast.ctypes.data % 64 == (0 if on_line else 16)


DIRECT_5X5 = [
    # (batch, height, width, channels, strides, dilations, padding); 5x5 filter, horizontal stride 1
    (1, 9, 6, 3, 1, 1, "SAME"),  # a row narrower than a step: its pixels two at a time, clipped
    (2, 7, 23, 20, 1, 1, "SAME"),  # interior steps, one overlapping step, a partial block
    (1, 8, 21, 16, 1, 1, "SAME"),  # 17 interior pixels: two steps, one left over (two at a time)
    (1, 6, 40, 37, 1, 1, "VALID"),
    (1, 10, 33, 48, 1, (1, 2), "SAME"),  # dilated columns: phases of unequal length
    (2, 13, 29, 17, (2, 1), (2, 3), "SAME"),  # vertical stride and dilation, three column phases
    (1, 12, 31, 130, 1, 1, [[0, 0], [3, 1], [6, 0], [0, 0]]),  # pads beyond the window, a masked last block
    (1, 19, 26, 24, 1, 4, [[0, 0], [0, 20], [1, 12], [0, 0]]),  # rows wholly in the padding
    (1, 12, 30, 40, 1, 1, [[0, 0], [7, 0], [2, 2], [0, 0]]),  # a pair whose first row lies wholly in the padding
    (1, 11, 18, 64, 1, 2, "VALID"),  # phases of fewer than eight pixels
    (1, 3, 34, 40, 1, 1, "SAME"),  # an image shorter than the filter
    (1, 6, 14, 70, 1, 1, "SAME"),  # 14 pixels: two clipped steps of eight, overlapping, a partial block
    (2, 5, 16, 33, 1, 1, "SAME"),  # 16 pixels: two clipped steps side by side
    (1, 7, 12, 20, 1, 1, "SAME"),  # 12 pixels: an interior step and clipped pairs (as cheap as two clipped steps)
]


@pytest.mark.parametrize("out_w, in_w, pad_left, dilation, expected", [
    (14, 14, 2, 1, [[-1, -1, -1, -1, 2]]),  # one step and three pairs cost more than two clipped steps
    (16, 16, 2, 1, [[-1, -1, -1, -1, 2]]),  # one step, an overlapping one and two pairs
    (12, 12, 2, 1, [[2, 1, -1, 10, 0]]),  # one step and two pairs: as cheap, kept
    (10, 14, 0, 1, [[0, 1, -1, 8, 0]]),  # VALID: one step and one pair
    (7, 7, 2, 1, [[-1, -1, -1, -1, 1]]),  # a short row: one clipped step
    (28, 28, 2, 1, [[2, 3, -1, 26, 0]]),  # wider than two steps: interior steps
    (33, 33, 4, 2, [[4, 1, 14, 30, 0], [-1, -1, -1, -1, 2]]),  # phases of 17 and 16 pixels
])
def test_direct_5x5_step_plan(out_w, in_w, pad_left, dilation, expected):
    """Each phase's pixels go in interior steps of eight and clipped pairs, or in one or two clipped steps of eight
    where those cost less (a step counted as two pairs)."""
    from sepconv.kernels import depthwise_5x5_direct
    from sepconv.kernels._window import interior

    j_lo, j_hi = interior(out_w, in_w, 5, 1, dilation, pad_left)
    assert depthwise_5x5_direct.plan_steps(out_w, j_lo, j_hi, dilation).tolist() == expected


@pytest.fixture
def fresh_plans():
    """The plan caches, which hold the kernel choices (made from module settings a test may patch), emptied before
    and after the test."""
    plans = (fast_depthwise._forward_launch, fast_depthwise._forward_plan, fast_depthwise._input_gradient_plan,
             fast_depthwise._filter_gradient_plan)
    for plan in plans:
        plan.cache_clear()
    yield
    for plan in plans:
        plan.cache_clear()


@pytest.fixture
def direct_5x5_everywhere(fresh_plans, monkeypatch):
    """Every 5x5 layer at horizontal stride 1 takes the direct kernel; the calls that reach it are counted."""
    from sepconv.kernels import depthwise_5x5_direct

    calls = record_calls(monkeypatch, depthwise_5x5_direct, "depthwise_nhwc_forward_5x5_direct_parallel")
    for setting in ("DIRECT_5X5_MIN_WIDTH", "DIRECT_5X5_MIN_BATCH_WIDTH", "DIRECT_5X5_MIN_VECTORS",
                    "SMALL_IMAGE_5X5_MAX_PLANE_BYTES"):
        monkeypatch.setattr(fast_depthwise, setting, 0)
    return calls


@pytest.mark.parametrize("shape, dilation, direct", [
    ((1, 30, 30, 96), 1, True), ((8, 28, 28, 240), 1, True), ((1, 65, 65, 320), 2, True),
    ((4, 20, 20, 480), 1, True), ((1, 40, 40, 64), 1, True),
    ((1, 30, 30, 48), 1, False), ((1, 14, 14, 480), 1, False), ((1, 40, 40, 128), 4, False), ((1, 7, 7, 960), 1, False)])
def test_direct_5x5_takes_wide_rows_of_many_channels(shape, dilation, direct):
    """The layers the direct 5x5 kernel takes by default (wide rows, or many of them, of at least four vectors of
    channels) have their outputs at the input's offset from a cache line and one line past a multiple of four
    from it (:func:`sepconv.fast.aligned.empty_apart_from`), the forward's and the input gradient's, or, for pixels
    the kernel reads in whole unaligned blocks (64 channels), on a line that far from the input's line; the packed
    kernels' outputs start on a line."""
    apart = aligned.APART_BYTES
    whole_blocks = shape[3] <= 64
    rng = np.random.default_rng(3)
    x, filt = _at_offset(rand(rng, shape, np.float32), 16), rand(rng, (5, 5, shape[3], 1), np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d, x, filt, 1, "SAME", dilations=dilation)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert fast.ctypes.data % 64 == (16 if direct and not whole_blocks else 0)
    dy = _at_offset(rand(rng, fast.shape, np.float32), 16)
    fast_dx, ref_dx = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, 1, "SAME", dilations=dilation)
    np.testing.assert_allclose(fast_dx, ref_dx, **tol(np.float32))
    assert fast_dx.ctypes.data % 64 == (16 if direct and not whole_blocks else 0)
    if direct:
        assert (fast.ctypes.data - (x.ctypes.data - 16 * whole_blocks)) % 256 == apart
        assert (fast_dx.ctypes.data - (dy.ctypes.data - 16 * whole_blocks)) % 256 == apart


DIRECT_5X5_S2 = [
    # (batch, height, width, channels, strides, padding); 5x5 and 7x7 filters, horizontal stride 2
    (1, 9, 6, 3, 2, "SAME"),  # three pixels, all clipped
    (2, 11, 37, 20, 2, "SAME"),  # interior steps, an overlapping last step, a partial block
    (1, 8, 40, 37, (1, 2), "VALID"),  # vertical stride 1
    (1, 13, 35, 130, 2, [[0, 0], [3, 1], [6, 0], [0, 0]]),  # pads beyond the window, a masked last block
    (1, 12, 50, 48, (3, 2), "SAME"),  # vertical stride 3
    (1, 3, 34, 40, 2, "SAME"),  # an image shorter than the filter
    (1, 8, 21, 64, 2, [[0, 0], [0, 0], [0, 9], [0, 0]]),  # a right pad wider than the filter
    (2, 19, 37, 40, (1, 2), "SAME", (2, 1)),  # vertical dilation: no pairs of rows
]


DIRECT_S2_KERNELS = {5: ("depthwise_5x5_direct", "depthwise_nhwc_forward_5x5_direct_s2_parallel", "DIRECT_5X5_S2_MIN_WIDTH"),
                     7: ("depthwise_7x7_s2_direct", "depthwise_nhwc_forward_7x7_s2_direct_parallel",
                         "DIRECT_7X7_S2_MIN_WIDTH")}


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", TUNED_DTYPES)
@pytest.mark.parametrize("kernel_size", [5, 7])
@pytest.mark.parametrize("geometry", DIRECT_5X5_S2, ids=lambda g: _ids((*g[:4], 1, (5, 5), *g[4:5], 1, g[5])))
def test_direct_stride_2_matches_reference(geometry, kernel_size, dtype, threads, fresh_plans, monkeypatch):
    """The direct 5x5 and 7x7 kernels at horizontal stride 2 (even and odd input columns, steps of eight pixels in
    the interior, the others one by one, clipped), from inputs at several offsets from a cache line."""
    import importlib

    module_name, kernel_name, min_width = DIRECT_S2_KERNELS[kernel_size]
    module = importlib.import_module(f"sepconv.kernels.{module_name}")
    calls = record_calls(monkeypatch, module, kernel_name)
    monkeypatch.setattr(fast_depthwise, min_width, 0)
    monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_MIN_VECTORS", 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 10**18 if threads == "serial" else 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 10**18 if threads == "serial" else 0)
    n, h, w, c, s, pad, *dilations = geometry
    x, filt, _, _ = _problem((n, h, w, c, 1, (kernel_size, kernel_size), 1, 1, "SAME"), dtype, seed=c)
    itemsize = np.dtype(dtype).itemsize
    for offset in (0, itemsize, 48):
        fast, ref = _both(sepconv.depthwise_conv2d, _at_offset(x, offset), filt, s, pad,
                          dilations=dilations[0] if dilations else None)
        np.testing.assert_allclose(fast, ref, **tol(dtype))
    assert len(calls) == (0 if kernel_size == 7 and dilations else 3)  # the 7x7 kernel: undilated only
    assert threads == "parallel" or set(calls) <= {1}


@pytest.mark.parametrize("in_shape, expected", [
    ((1, 33, 33, 144), True),  # rows of 17
    ((1, 31, 31, 96), True),  # rows of 16
    ((1, 33, 33, 32), False),  # rows of 17, two vectors of channels
    ((1, 40, 40, 8), True),  # rows of 20, half a vector
    ((1, 29, 29, 480), False),  # rows of 15, pixels of 1,920 bytes
    ((1, 28, 28, 960), True),  # rows of 14, pixels of 3,840 bytes
    ((1, 26, 26, 1344), False),  # rows of 13
])
def test_direct_5x5_stride_2_takes_rows_by_width_and_pixel_size(in_shape, expected):
    """At horizontal stride 2 the direct 5x5 kernel takes rows of 20 pixels and more, rows of 16-19 pixels of at
    least four vectors of channels, and rows of 14-15 pixels of at least 3 KB per pixel (``DIRECT_5X5_S2_MIN_WIDTH``,
    ``DIRECT_5X5_S2_BLOCKS_MIN_WIDTH``, ``DIRECT_5X5_S2_WIDE_PIXEL_BYTES``); the others go packed."""
    n, h, w, c = in_shape
    out_shape = (n, -(-h // 2), -(-w // 2), c)
    assert fast_depthwise._direct_5x5(in_shape, out_shape, 4, 5, 5, 2, 1) is expected


@pytest.mark.parametrize("in_shape, expected", [
    ((1, 112, 112, 96), True),  # rows of 56
    ((1, 56, 56, 480), False),  # rows of 28, pixels of 1,920 bytes
    ((2, 56, 56, 192), True),  # rows of 28, pixels of 768 bytes, 4.8 MB of input
    ((1, 56, 56, 128), False),  # rows of 28, pixels of 512 bytes, but 1.6 MB of input
    ((2, 64, 64, 64), False),  # rows of 32, pixels of 256 bytes
    ((1, 50, 50, 256), False),  # rows of 25
])
def test_direct_7x7_stride_2_takes_rows_by_width_and_pixel_size(in_shape, expected):
    """At horizontal stride 2 the direct 7x7 kernel takes rows of 48 pixels and more, and rows of 28 and more when
    the pixels are a multiple of 256 bytes (from 512) and the input is 2 MB or more
    (``DIRECT_7X7_S2_MIN_WIDTH``, ``DIRECT_7X7_S2_ALIASED_MIN_WIDTH``); the others go packed."""
    n, h, w, c = in_shape
    out_shape = (n, -(-h // 2), -(-w // 2), c)
    assert fast_depthwise._direct_7x7_s2(in_shape, out_shape, 4, 7, 7, 2, 1, 1) is expected


@pytest.mark.parametrize("shape, strides, dilations", [
    ((1, 56, 56, 128), 1, 1), ((8, 28, 28, 192), 1, 1), ((1, 112, 112, 96), 2, 1), ((1, 40, 40, 64), 1, 2)])
def test_unpacked_outputs_apart_from_their_input(shape, strides, dilations):
    """The outputs of the 3x3 kernels sit three lines past a multiple of four from the array they are computed from
    (:data:`sepconv.fast.aligned.APART_BYTES`), the forward's and the input gradient's, and the input gradient of
    both gradients in one pass, and equal the reference's."""
    rng = np.random.default_rng(4)
    x = _at_offset(rand(rng, shape, np.float32), 16)
    filt = rand(rng, (3, 3, shape[3], 1), np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d, x, filt, strides, "SAME", dilations=dilations)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    dy = _at_offset(rand(rng, fast.shape, np.float32), 16)
    fast_dx, ref_dx = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, strides, "SAME",
                            dilations=dilations)
    np.testing.assert_allclose(fast_dx, ref_dx, **tol(np.float32))
    assert (fast.ctypes.data - x.ctypes.data) % 256 == aligned.APART_BYTES == 192
    if strides == 1:
        assert (fast_dx.ctypes.data - dy.ctypes.data) % 256 == aligned.APART_BYTES
    (both_dx, both_dw), (ref_dx, ref_dw) = _both(sepconv.depthwise_conv2d_gradients, x, filt, dy, strides, "SAME",
                                                 dilations=dilations)
    np.testing.assert_allclose(both_dx, ref_dx, **tol(np.float32))
    np.testing.assert_allclose(both_dw, ref_dw, **tol(np.float32))
    assert (both_dx.ctypes.data - dy.ctypes.data) % 256 == aligned.APART_BYTES  # the one-pass kernel's dx


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", TUNED_DTYPES)
@pytest.mark.parametrize("geometry", DIRECT_5X5, ids=lambda g: _ids((*g[:4], 1, (5, 5), *g[4:])))
def test_direct_5x5_matches_reference(geometry, dtype, threads, direct_5x5_everywhere, monkeypatch):
    """The direct 5x5 kernel (forward, and the stride-1 input gradient, its forward of ``dy``): steps of eight
    pixels in the interior, an overlapping last step, pixels two at a time at the borders and left over, masked
    channel blocks, from inputs at every offset from a cache line."""
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 10**18 if threads == "serial" else 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 10**18 if threads == "serial" else 0)
    n, h, w, c, s, d, pad = geometry
    x, filt, dy, args = _problem((n, h, w, c, 1, (5, 5), (1, 1) if s == 1 else s, d, pad), dtype, seed=c)
    args["strides"] = s
    itemsize = np.dtype(dtype).itemsize
    for offset in (0, itemsize, 48):
        _assert_three_ops_match(_at_offset(x, offset), filt, _at_offset(dy, offset), args, dtype)
    assert len(direct_5x5_everywhere) >= 3  # the forward at each offset (the input gradient's where dy is tall enough)
    assert threads == "parallel" or set(direct_5x5_everywhere) == {1}  # the thread split: one chunk when serial


@pytest.mark.parametrize("layout", ["transposed", "fortran", "strided", "reversed"])
def test_non_contiguous_inputs(layout):
    rng = np.random.default_rng(1)
    base = rand(rng, (2, 9, 14, 12), np.float32)
    filt_base = rand(rng, (3, 3, 12, 4), np.float32)
    if layout == "transposed":  # C-contiguous arrays of another shape, seen through a transpose
        x = np.ascontiguousarray(base.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
        filt = np.ascontiguousarray(filt_base.transpose(3, 2, 1, 0)).transpose(3, 2, 1, 0)
    elif layout == "fortran":
        x, filt = np.asfortranarray(base), np.asfortranarray(filt_base)
    elif layout == "strided":
        x, filt = base[:, ::2, 1::2, ::2], filt_base[:, :, ::2, 1::2]
    else:  # negative strides: a merged-axes reshape of these is still a view, not contiguous
        x, filt = base[:, ::-1], filt_base[::-1]
    assert not x.flags.c_contiguous
    fast, ref = _both(sepconv.depthwise_conv2d, x, filt, 2, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    dy = np.asfortranarray(rand(rng, fast.shape, np.float32))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, 2, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, filt.shape, dy, 2, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))


def test_nchw_matches_reference():
    rng = np.random.default_rng(2)
    x = rand(rng, (2, 13, 7, 9), np.float32)  # NCHW: C=13
    filt = rand(rng, (3, 3, 13, 2), np.float32)
    args = dict(strides=[1, 1, 2, 1], padding=[[0, 0], [0, 0], [1, 2], [0, 1]], data_format="NCHW")
    fast, ref = _both(sepconv.depthwise_conv2d, x, filt, **args)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    dy = rand(rng, fast.shape, np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, **args)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, filt.shape, dy, **args)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))


def test_empty_batch_gives_empty_results():
    x, filt = np.ones((0, 5, 5, 3), np.float32), np.ones((3, 3, 3, 2), np.float32)
    dy = np.ones((0, 5, 5, 6), np.float32)
    with sepconv.use_implementation("fast"):
        assert sepconv.depthwise_conv2d(x, filt, 1, "SAME").shape == (0, 5, 5, 6)
        assert sepconv.depthwise_conv2d_backprop_input(x.shape, filt, dy, 1, "SAME").shape == (0, 5, 5, 3)
        dw = sepconv.depthwise_conv2d_backprop_filter(x, filt.shape, dy, 1, "SAME")
    np.testing.assert_array_equal(dw, np.zeros((3, 3, 3, 2)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_filter_propagates_through_the_padding_like_the_reference(bad):
    rng = np.random.default_rng(3)
    x = rand(rng, (1, 6, 5, 4), np.float32)
    filt = rand(rng, (3, 3, 4, 1), np.float32)
    filt[0, 0, 1, 0] = bad  # the top-left tap reads the padding on the first row and column
    with np.errstate(invalid="ignore"):
        fast, ref = _both(sepconv.depthwise_conv2d, x, filt, 1, "SAME")
    assert np.isnan(ref[0, 0, :, 1]).any() or np.isinf(ref[0, 0, :, 1]).any()
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref))
    np.testing.assert_allclose(fast, ref, **tol(np.float32))


@pytest.mark.parametrize("padding", ["SAME", [[0, 0], [5, 0], [0, 0], [0, 0]]])
def test_non_finite_out_backprop_in_filter_gradient_like_the_reference(padding):
    rng = np.random.default_rng(4)
    x = rand(rng, (1, 6, 5, 4), np.float64)
    dy_shape = (1, 6, 5, 4) if padding == "SAME" else (1, 9, 3, 4)
    dy = rand(rng, dy_shape, np.float64)
    dy[0, 0, 0, 2] = np.inf  # the window of output (0, 0) is all padding with the explicit pads
    with np.errstate(invalid="ignore"):
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, (3, 3, 4, 1), dy, 1, padding)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref))
    np.testing.assert_allclose(fast, ref, **tol(np.float64))


def test_concurrent_calls_from_python_threads(monkeypatch):
    """Parallel kernels launched from several Python threads at once, NHWC (3x3 and packed 7x7) and native NCHW,
    both gradients in one call too."""
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(fast_depthwise, "NCHW_NATIVE_MIN_PIXELS", 0)
    monkeypatch.setattr(fast_depthwise, "NCHW_ONE_VECTOR_ROWS_BY_CHANNELS", False)
    geometries = [(2, 21, 22, 70, 1, (3, 3), 1, 1, "SAME"), (1, 24, 20, 40, 2, (3, 3), 2, 1, "SAME"),
                  (2, 19, 21, 36, 1, (7, 7), 1, 1, "SAME")]  # the packed kernels allocate their buffers per call
    problems = [_problem(geometry, np.float32, seed) for seed, geometry in enumerate(geometries)]
    problems += [(x.transpose(0, 3, 1, 2).copy(), filt, dy.transpose(0, 3, 1, 2).copy(), _nchw(args))
                 for x, filt, dy, args in problems]
    expected = []
    with sepconv.use_implementation("reference"):
        for x, filt, dy, args in problems:
            dx = sepconv.depthwise_conv2d_backprop_input(x.shape, filt, dy, **args)
            dw = sepconv.depthwise_conv2d_backprop_filter(x, filt.shape, dy, **args)
            expected.append((sepconv.depthwise_conv2d(x, filt, **args), dx, dw, dx, dw))
    failures: list[str] = []

    def worker(index: int) -> None:
        x, filt, dy, args = problems[index % len(problems)]
        want = expected[index % len(problems)]
        with sepconv.use_implementation("fast"):
            for _ in range(20):
                got = (sepconv.depthwise_conv2d(x, filt, **args),
                       sepconv.depthwise_conv2d_backprop_input(x.shape, filt, dy, **args),
                       sepconv.depthwise_conv2d_backprop_filter(x, filt.shape, dy, **args),
                       *sepconv.depthwise_conv2d_gradients(x, filt, dy, **args))
                for a, b in zip(got, want, strict=True):
                    if not np.allclose(a, b, **tol(np.float32)):
                        failures.append(f"thread {index}: max error {np.abs(a - b).max()}")
                        return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_docstring_examples_run():
    import doctest

    from sepconv.fast import aligned, workspace
    from sepconv.kernels import depthwise as kernels
    from sepconv.kernels import (
        depthwise_3x3_direct,
        depthwise_5x5_avx2,
        depthwise_5x5_direct,
        depthwise_7x7_s2_direct,
        depthwise_filter_gradient_avx2,
        depthwise_nchw,
        depthwise_nchw_small,
        depthwise_packed,
        depthwise_small_image,
    )

    for module in (aligned, workspace, fast_depthwise, kernels, depthwise_nchw, depthwise_nchw_small, depthwise_packed,
                   depthwise_3x3_direct, depthwise_5x5_avx2, depthwise_5x5_direct, depthwise_7x7_s2_direct,
                   depthwise_filter_gradient_avx2, depthwise_small_image):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


@pytest.mark.parametrize("threads", ["serial", "parallel"])
def test_kept_zero_rows_stay_zero(threads, monkeypatch):
    """The zero rows kept between calls (read for rows in the padding) are never written by a kernel."""
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 10**18 if threads == "serial" else 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 10**18 if threads == "serial" else 0)
    fast_depthwise._zero_rows.clear()
    for geometry in GEOMETRIES:
        x, filt, dy, args = _problem(geometry, np.float32)
        _assert_three_ops_match(x, filt, dy, args, np.float32)
    assert fast_depthwise._zero_rows
    assert all(not row.any() for row in fast_depthwise._zero_rows.values())


def _spy_packed_rows(monkeypatch) -> list[tuple]:
    """Every call on one thread, 5x5 layers on the packed kernels rather than the direct one (with the fixture
    ``fresh_plans``), and the input shape of each call of the packed forward's rows kernel recorded in the
    returned list."""
    from sepconv.kernels import depthwise_packed

    calls: list[tuple] = []
    original = depthwise_packed.depthwise_nhwc_forward_packed_rows

    def spy(x, *args):
        calls.append(x.shape)
        return original(x, *args)

    monkeypatch.setattr(depthwise_packed, "depthwise_nhwc_forward_packed_rows", spy)
    monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_MIN_VECTORS", 10**9)
    monkeypatch.setattr(fast_depthwise, "SMALL_IMAGE_MAX_PLANE_BYTES", 0)
    monkeypatch.setattr(fast_depthwise, "SMALL_IMAGE_5X5_MAX_PLANE_BYTES", 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 10**18)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 10**18)
    return calls


def test_packed_kernels_are_taken_where_the_copy_stays_small(fresh_plans, monkeypatch):
    """5x5 and 7x7 layers with half a vector of channels or more reach the packed kernels (forward and
    stride-1 input gradient, dilated too); fewer channels, an image shorter than the dilated filter, or
    a horizontal dilation with stride 2, do not."""
    calls = _spy_packed_rows(monkeypatch)
    for geometry, taken in [((1, 12, 11, 16, 1, (7, 7), 1, 1, "SAME"), True),
                            ((1, 12, 11, 24, 1, (5, 5), (1, 2), 1, "SAME"), True),
                            ((1, 12, 11, 4, 1, (7, 7), 1, 1, "SAME"), False),  # 16 bytes of channels
                            ((1, 12, 11, 16, 1, (5, 5), 1, (3, 1), "SAME"), False),  # 13 rows of dilated filter
                            ((1, 12, 11, 16, 1, (5, 5), 1, (1, 2), "SAME"), True),  # horizontal dilation
                            ((1, 12, 11, 16, 1, (5, 5), 2, (1, 2), "SAME"), False)]:  # ... with stride 2
        calls.clear()
        x, filt, dy, args = _problem(geometry, np.float32)
        _assert_three_ops_match(x, filt, dy, args, np.float32)
        assert bool(calls) == taken, geometry


@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("k", [5, 7])
def test_packed_fourteen_pixel_steps_match_reference(k, dilation, fresh_plans, monkeypatch):
    """Rows of 5x5 and 7x7 layers at stride 1 go fourteen pixels per step, then eight or seven, then single
    pixels (widths 14-69, dilated rows by phase); a layer whose output streams to memory at a wide pixel
    stride keeps the eight-pixel steps.  Both against the reference."""
    from sepconv.kernels import depthwise_packed

    assert [depthwise_packed.wide_steps(w) for w in (13, 14, 19, 32, 33, 42, 69)] == [0, 1, 1, 0, 2, 3, 4]
    calls = _spy_packed_rows(monkeypatch)
    for n, h, w, c in [(1, 13, 14, 20), (2, 14, 19, 40), (1, 13, 33, 34), (1, 15, 42, 24), (1, 13, 69, 32)]:
        out_w = w if dilation == 1 else -(-w // dilation)
        assert depthwise_packed.wide_steps_fit(c, 4, n * h, out_w)
        calls.clear()
        _assert_three_ops_match(*_problem((n, h, w, c, 1, (k, k), 1, dilation, "SAME"), np.float32), np.float32)
        assert calls, (n, h, w, c)
    # 40x40x600: 2400 bytes a pixel, 7.7 MB of output and input
    assert not depthwise_packed.wide_steps_fit(600, 4, 40, 40)
    x, filt, _, args = _problem((1, 40, 40, 600, 1, (k, k), 1, dilation, "SAME"), np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d, x, filt, **args)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))


@pytest.mark.parametrize("stride, dilation, w, c", [(1, 1, 100, 96), (2, 1, 100, 96), (1, 3, 150, 32)])
@pytest.mark.parametrize("k", [5, 7])
def test_packed_column_tiles_match_reference(k, stride, dilation, w, c, fresh_plans, monkeypatch):
    """A band of a wide image of many channels, past PACKED_BAND_BYTES, is packed and computed in tiles of
    columns (the last one narrower, but for 7x7 at stride 2 and dilation 3): the forward and both gradients as
    the reference, one image after the other.  The filter gradient's sums (7,400 products in float32) against the
    reference's in float64, within a thousandth of their largest."""
    from sepconv.kernels import depthwise_packed

    n, h, dtype = 2, 37, np.float32
    out_h, out_w = -(-h // stride), -(-w // stride)
    band_max = depthwise_packed.band_rows_of(out_h)  # one thread: the call computes every row of an image
    band_rows = (band_max - 1) * stride + (k - 1) * dilation + 1
    itemsize = np.dtype(dtype).itemsize
    tile_w = depthwise_packed.column_tiles(out_w, (band_rows * w + band_max * out_w) * c * itemsize, k, dilation)
    assert tile_w < out_w
    monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_S2", False)  # 5x5 at stride 2 on the packed kernels too
    calls = _spy_packed_rows(monkeypatch)
    x, filt, dy, args = _problem((n, h, w, c, 1, (k, k), stride, dilation, "SAME"), dtype)
    fast, ref = _both(sepconv.depthwise_conv2d, x, filt, **args)
    np.testing.assert_allclose(fast, ref, **tol(dtype))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, **args)
    np.testing.assert_allclose(fast, ref, **tol(dtype))
    with sepconv.use_implementation("fast"):
        fast = sepconv.depthwise_conv2d_backprop_filter(x, filt.shape, dy, **args)
    with sepconv.use_implementation("reference"):
        exact = sepconv.depthwise_conv2d_backprop_filter(x.astype(np.float64), filt.shape, dy.astype(np.float64), **args)
    np.testing.assert_allclose(fast, exact, rtol=1e-4, atol=1e-3 * np.abs(exact).max())
    assert (n, h, w, c) in calls


@pytest.mark.parametrize("h, w, c, k, dilation", [(96, 100, 72, 5, 1), (80, 90, 96, 7, 2), (100, 104, 64, 5, 1)])
def test_packed_channel_groups_match_reference(h, w, c, k, dilation, fresh_plans, monkeypatch):
    """An image past PACKED_GROUP_MIN_IMAGE_BYTES at stride 1 packs PACKED_GROUP_BLOCKS channel blocks per pass:
    72 and 96 channels (lanes of 16) are groups of 4 and a last block alone (72: its 8 channels masked) or
    a group of 2; 64 is one group of 4.  Forward and input gradient (the packed forward of ``out_backprop``) as the
    reference, in bands of rows and tiles of columns."""
    from sepconv.kernels import depthwise_packed

    dtype = np.float32
    assert h * w * c * np.dtype(dtype).itemsize >= depthwise_packed.PACKED_GROUP_MIN_IMAGE_BYTES
    assert -(-c // 16) > depthwise_packed.PACKED_GROUP_BLOCKS or c == 64
    calls = _spy_packed_rows(monkeypatch)
    x, filt, dy, args = _problem((1, h, w, c, 1, (k, k), 1, dilation, "SAME"), dtype, seed=h)
    fast, ref = _both(sepconv.depthwise_conv2d, x, filt, **args)
    np.testing.assert_allclose(fast, ref, **tol(dtype))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, **args)
    np.testing.assert_allclose(fast, ref, **tol(dtype))
    assert (1, h, w, c) in calls


# --------------------------------------------------------------------------- both gradients in one call


def _fused_spy(monkeypatch) -> list:
    """Record the calls of the one-pass kernel of both gradients."""
    from sepconv.kernels import depthwise as depthwise_kernels

    calls: list = []
    original = depthwise_kernels.depthwise_nhwc_backprop_3x3_parallel

    def spy(*args):
        calls.append(args[8])  # band_rows
        return original(*args)

    monkeypatch.setattr(depthwise_kernels, "depthwise_nhwc_backprop_3x3_parallel", spy)
    return calls


def _eligible(geometry) -> bool:
    """The geometries the one-pass kernel takes (3x3, multiplier 1, stride 1, or stride 2 undilated)."""
    n, h, w, c, m, k, s, d, pad = geometry
    return m == 1 and k == (3, 3) and (s == 1 or (s == 2 and d == 1))


@pytest.mark.parametrize("band", ["two rows", "default"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_ids)
def test_gradients_together_match_the_reference(geometry, dtype, band, monkeypatch):
    """``depthwise_conv2d_gradients`` returns what the two backprops of the reference return, split over
    the threads, with bands of two ``dy`` rows (a band's last rows, image ends) or of the default size;
    the one-pass kernel is the one that ran wherever it applies (and there are threads to split over)."""
    import numba

    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 0)
    if band == "two rows":
        monkeypatch.setattr(fast_depthwise, "GRADIENTS_BAND_BYTES", 1)
    calls = _fused_spy(monkeypatch)
    x, filt, dy, args = _problem(geometry, dtype)
    with sepconv.use_implementation("fast"):
        dx, dw = sepconv.depthwise_conv2d_gradients(x, filt, dy, **args)
    with sepconv.use_implementation("reference"):
        want_dx = sepconv.depthwise_conv2d_backprop_input(x.shape, filt, dy, **args)
        want_dw = sepconv.depthwise_conv2d_backprop_filter(x, filt.shape, dy, **args)
    assert dx.dtype == dw.dtype == dtype and dx.shape == x.shape and dw.shape == filt.shape
    np.testing.assert_allclose(dx, want_dx, **tol(dtype))
    np.testing.assert_allclose(dw, want_dw, **tol(dtype))
    taken = _eligible(geometry) and numba.get_num_threads() > 1 and dy.shape[0] * dy.shape[1] > 1
    assert bool(calls) == taken, geometry
    if taken and band == "two rows":
        assert calls == [2]


def test_gradients_together_large_layers_and_bands(monkeypatch):
    """Layers of MobileNet's sizes at the default split (the default bands, images split between the threads
    mid-image): the same as the two ops of the fast implementation, which the tests above hold to the
    reference."""
    calls = _fused_spy(monkeypatch)
    rng = np.random.default_rng(3)
    for shape, s, d, pad in [((2, 56, 56, 144), 1, 1, "SAME"), ((1, 112, 112, 32), 2, 1, "SAME"),
                             ((3, 33, 35, 64), 1, 2, "SAME"), ((1, 57, 41, 96), 2, 1, "VALID")]:
        x = rand(rng, shape, np.float32)
        filt = rand(rng, (3, 3, shape[3], 1), np.float32)
        dy = rand(rng, sepconv.depthwise_conv2d(x, filt, s, pad, dilations=d).shape, np.float32)
        dx, dw = sepconv.depthwise_conv2d_gradients(x, filt, dy, s, pad, dilations=d)
        np.testing.assert_allclose(dx, sepconv.depthwise_conv2d_backprop_input(x.shape, filt, dy, s, pad,
                                                                               dilations=d), rtol=1e-5, atol=1e-5)
        # the sums are taken in another order (per band, per thread): float32 rounding, relative to |x| |dy|
        scale = np.abs(x).sum() * np.abs(dy).max() / filt.shape[2]
        np.testing.assert_allclose(dw, sepconv.depthwise_conv2d_backprop_filter(x, filt.shape, dy, s, pad,
                                                                                dilations=d), atol=1e-5 * scale)
    import numba
    assert len(calls) == (4 if numba.get_num_threads() > 1 else 0)


@pytest.mark.parametrize("group", ["one plane", "default"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_ids)
def test_gradients_together_nchw_match_the_reference(geometry, dtype, group, monkeypatch):
    """NCHW: the one-pass NCHW kernel (groups of one plane, or the default), the native backprops or the
    NHWC route, whichever the geometry takes, give the reference's two backprops."""
    from sepconv.kernels import depthwise_nchw

    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 0)
    if group == "one plane":
        monkeypatch.setattr(fast_depthwise, "GRADIENTS_NCHW_GROUP_BYTES", 1)
    groups: list[int] = []
    original = depthwise_nchw.depthwise_nchw_backprop_parallel
    monkeypatch.setattr(depthwise_nchw, "depthwise_nchw_backprop_parallel",
                        lambda *a: groups.append(a[6]) or original(*a))
    x, filt, dy, args = _problem(geometry, dtype)
    x, dy, args = x.transpose(0, 3, 1, 2).copy(), dy.transpose(0, 3, 1, 2).copy(), _nchw(args)
    with sepconv.use_implementation("fast"):
        dx, dw = sepconv.depthwise_conv2d_gradients(x, filt, dy, **args)
    with sepconv.use_implementation("reference"):
        want_dx = sepconv.depthwise_conv2d_backprop_input(x.shape, filt, dy, **args)
        want_dw = sepconv.depthwise_conv2d_backprop_filter(x, filt.shape, dy, **args)
    assert dx.shape == x.shape and dw.shape == filt.shape
    np.testing.assert_allclose(dx, want_dx, **tol(dtype))
    np.testing.assert_allclose(dw, want_dw, **tol(dtype))
    if groups and group == "one plane":
        assert groups == [1]


def test_gradients_together_nchw_one_pass_is_taken(monkeypatch):
    """Planes large enough for the native NCHW kernels (5x5 and 7x7 too, at stride 1 and 2) take the
    one-pass NCHW kernel when split over the threads; a multiplier, or a stride of 3, do not."""
    import numba

    from sepconv.kernels import depthwise_nchw

    calls: list = []
    original = depthwise_nchw.depthwise_nchw_backprop_parallel
    monkeypatch.setattr(depthwise_nchw, "depthwise_nchw_backprop_parallel", lambda *a: calls.append(1) or original(*a))
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 0)
    for geometry, taken in [((2, 20, 21, 6, 1, (3, 3), 1, 1, "SAME"), True),
                            ((1, 23, 20, 5, 1, (5, 5), 2, 1, "SAME"), True),
                            ((1, 18, 19, 4, 1, (7, 7), 1, 2, "VALID"), True),
                            ((1, 20, 21, 4, 2, (3, 3), 1, 1, "SAME"), False),
                            ((1, 30, 31, 4, 1, (3, 3), 3, 1, "SAME"), False)]:
        calls.clear()
        x, filt, dy, args = _problem(geometry, np.float32)
        x, dy, args = x.transpose(0, 3, 1, 2).copy(), dy.transpose(0, 3, 1, 2).copy(), _nchw(args)
        dx, dw = sepconv.depthwise_conv2d_gradients(x, filt, dy, **args)
        np.testing.assert_allclose(dx, sepconv.depthwise_conv2d_backprop_input(x.shape, filt, dy, **args),
                                   **tol(np.float32))
        np.testing.assert_allclose(dw, sepconv.depthwise_conv2d_backprop_filter(x, filt.shape, dy, **args),
                                   **tol(np.float32))
        assert bool(calls) == (taken and numba.get_num_threads() > 1), geometry


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("where", ["dy inf", "dy nan", "filter inf"])
def test_gradients_together_non_finite_like_the_two_ops(where, monkeypatch):
    """Infinities and NaNs come out where the two backprops put them (which follow TensorFlow's kernels)."""
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 0)
    for geometry in [(2, 9, 10, 20, 1, (3, 3), 1, 1, "SAME"), (1, 8, 9, 17, 1, (3, 3), 2, 1, "SAME"),
                     (1, 4, 4, 3, 1, (3, 3), 1, 3, [[0, 0], [6, 0], [0, 6], [0, 0]])]:
        x, filt, dy, args = _problem(geometry, np.float32)
        if where == "filter inf":
            filt[1, 2, 0, 0] = np.inf
        else:
            dy[0, 1, 2, 1] = np.inf if where == "dy inf" else np.nan
        dx, dw = sepconv.depthwise_conv2d_gradients(x, filt, dy, **args)
        want_dx = sepconv.depthwise_conv2d_backprop_input(x.shape, filt, dy, **args)
        want_dw = sepconv.depthwise_conv2d_backprop_filter(x, filt.shape, dy, **args)
        np.testing.assert_allclose(dx, want_dx, **tol(np.float32))  # equal_nan by default
        np.testing.assert_allclose(dw, want_dw, **tol(np.float32))
        assert not np.isfinite(dx if where == "filter inf" else dw).all()


def test_gradients_together_arguments():
    """Errors name the argument; empty inputs give zeros of the right shapes; other batch axes and dtypes
    as the other ops."""
    x, filt, dy = np.ones((1, 5, 5, 2)), np.ones((3, 3, 2, 1)), np.ones((1, 5, 5, 2))
    with pytest.raises(ValueError, match="`out_backprop` has shape"):
        sepconv.depthwise_conv2d_gradients(x, filt, np.ones((1, 4, 5, 2)), 1, "SAME")
    with pytest.raises(ValueError, match="filter"):
        sepconv.depthwise_conv2d_gradients(x, np.ones((3, 3, 3, 1)), dy, 1, "SAME")
    with pytest.raises(ValueError, match="padding"):
        sepconv.depthwise_conv2d_gradients(x, filt, dy, 1, "FULL")
    dx, dw = sepconv.depthwise_conv2d_gradients(np.ones((0, 5, 5, 2)), filt, np.ones((0, 5, 5, 2)), 1, "SAME")
    assert dx.shape == (0, 5, 5, 2) and dw.shape == (3, 3, 2, 1) and not dw.any()
    dx, dw = sepconv.depthwise_conv2d_gradients(x.astype(np.float16), filt.astype(np.float32), dy.astype(np.float32),
                                                1, "SAME")
    assert dx.dtype == dw.dtype == np.float32
    dx, dw = sepconv.depthwise_conv2d_gradients(x.astype(np.float16), filt.astype(np.float16), dy.astype(np.float16),
                                                1, "SAME")
    assert dx.dtype == dw.dtype == np.float16
    batched = np.ones((2, 3, 5, 5, 2))
    dx, dw = sepconv.depthwise_conv2d_gradients(batched, filt, batched, 1, "SAME")
    assert dx.shape == batched.shape and float(dw[1, 1, 0, 0]) == 6 * 25


SMALL_IMAGE = [
    # (batch, height, width, channels, multiplier, filter, strides, dilations, padding); stride 1, small planes
    (2, 7, 7, 40, 1, (7, 7), 1, 1, "SAME"),  # two blocks and a partial one: a group of two, then one
    (1, 7, 7, 96, 1, (5, 5), 1, 1, "SAME"),  # a last step overlapping the one before it
    (1, 3, 3, 16, 1, (7, 7), 1, 1, "SAME"),  # rows narrower than a step: one step, its pixels past the row dropped
    (1, 9, 9, 40, 1, (7, 7), 1, 1, "VALID"),  # ... three pixels, a partial block
    (1, 9, 10, 24, 1, (5, 5), 1, (1, 2), "VALID"),  # ... two pixels, dilated: the last column of the margin read
    (3, 5, 9, 33, 1, (5, 5), 1, 1, "VALID"),
    (1, 14, 14, 48, 1, (7, 7), 1, (2, 3), "SAME"),  # dilated: a tap's columns three apart
    (2, 6, 6, 20, 1, (4, 6), 1, 1, "SAME"),  # even filters: uneven pads
    (1, 9, 8, 24, 1, (7, 7), 1, 1, [[0, 0], [8, 0], [9, 2], [0, 0]]),  # rows and steps wholly in the padding
    (1, 5, 4, 16, 1, (9, 9), 1, 1, "SAME"),  # a filter larger than the image
    (1, 10, 11, 17, 1, (7, 5), 1, 1, [[0, 0], [1, 6], [0, 4], [0, 0]]),
]


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", TUNED_DTYPES)
@pytest.mark.parametrize("geometry", SMALL_IMAGE, ids=_ids)
def test_small_image_kernel_matches_reference(geometry, dtype, threads, fresh_plans, monkeypatch):
    """Small images at stride 1 take the small-image kernel (forward, and the input gradient as the forward of
    ``dy``), on the calling thread and split over (image, channel group) pairs; both match the reference, and so do
    the kernels they took before (the setting at 0)."""
    from sepconv.kernels import depthwise_small_image

    calls = record_calls(monkeypatch, depthwise_small_image, "depthwise_nhwc_forward_small_image_parallel",
                         serial="depthwise_nhwc_forward_small_image_items")
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 10**18 if threads == "serial" else 0)
    monkeypatch.setattr(fast_depthwise, "NHWC_PARALLEL_MIN_MACS", 10**18 if threads == "serial" else 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 10**18 if threads == "serial" else 0)
    x, filt, dy, args = _problem(geometry, dtype)
    x, dy = _at_offset(x, 16), _at_offset(dy, 16)
    _assert_three_ops_match(x, filt, dy, args, dtype)
    assert len(calls) == 2  # the forward and the input gradient
    if threads == "serial":
        assert set(calls) == {1}
    elif x.shape[0] > 1:  # at least two (image, channel group) pairs
        assert set(calls) == {min(2, fast_depthwise.thread_count())}
    for setting in ("SMALL_IMAGE_MAX_PLANE_BYTES", "SMALL_IMAGE_5X5_MAX_PLANE_BYTES"):
        monkeypatch.setattr(fast_depthwise, setting, 0)
    for plan in (fast_depthwise._forward_launch, fast_depthwise._forward_plan, fast_depthwise._input_gradient_plan):
        plan.cache_clear()
    _assert_three_ops_match(x, filt, dy, args, dtype)
    assert len(calls) == 2


DIRECT_3X3 = [
    # (batch, height, width, channels, multiplier, filter, strides, dilations, padding); 3x3, horizontal stride 1
    (2, 9, 11, 16, 1, (3, 3), 1, 1, "SAME"),  # interior of 9 pixels: two steps, the second overlapping
    (1, 6, 7, 40, 1, (3, 3), 1, 1, "VALID"),  # two blocks and a partial one overlapping the second
    (1, 5, 5, 32, 1, (3, 3), 1, 1, "SAME"),  # an interior of 3 pixels: every pixel one at a time
    (3, 8, 13, 17, 1, (3, 3), (2, 1), 1, "SAME"),  # vertical stride 2
    (1, 12, 15, 24, 1, (3, 3), 1, (2, 3), "SAME"),  # dilated: a pixel's taps three columns apart
    (1, 9, 8, 48, 1, (3, 3), 1, 1, [[0, 0], [4, 0], [5, 2], [0, 0]]),  # rows and pixels wholly in the padding
    (1, 3, 20, 16, 1, (3, 3), 1, 1, "VALID"),  # one output row
    (2, 11, 12, 24, 1, (3, 3), 2, 1, "SAME"),  # stride 2: nine columns a step; the input gradient by parity
    (1, 14, 17, 16, 1, (3, 3), 2, 1, [[0, 0], [0, 3], [3, 1], [0, 0]]),
    (1, 9, 20, 40, 1, (3, 3), (1, 2), 1, "VALID"),
    (1, 13, 9, 32, 1, (3, 3), (1, 3), 1, [[0, 0], [1, 3], [2, 0], [0, 0]]),  # horizontal stride 3: filter gradient
]


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", TUNED_DTYPES)
@pytest.mark.parametrize("geometry", DIRECT_3X3, ids=_ids)
def test_direct_3x3_kernel_matches_reference(geometry, dtype, threads, fresh_plans, monkeypatch):
    """With ``DIRECT_3X3`` (CPUs without AVX-512) 3x3 layers take the direct 3x3 kernels: the forward at horizontal
    stride 1 or 2, the input gradient at stride 1 (the forward of ``dy``) or 2, the filter gradient at any stride,
    on the calling thread and split; all three ops match the reference on inputs 16 bytes past a line."""
    from sepconv.kernels import depthwise_3x3_direct

    calls = record_calls(monkeypatch, depthwise_3x3_direct, "depthwise_nhwc_forward_3x3_direct_parallel",
                         serial="depthwise_nhwc_forward_3x3_direct_rows")
    filter_calls = record_calls(monkeypatch, depthwise_3x3_direct, "depthwise_nhwc_backprop_filter_3x3_direct_parallel",
                                lambda args: args[2].shape[0],  # the partial sums' count: the split
                                serial="depthwise_nhwc_backprop_filter_3x3_direct_rows",
                                as_parallel=lambda args: (*args[:2], args[2][None], *args[5:]))
    s2_calls = record_calls(monkeypatch, depthwise_3x3_direct, "depthwise_nhwc_backprop_input_3x3_s2_direct_parallel",
                            serial="depthwise_nhwc_backprop_input_3x3_s2_direct_rows")
    monkeypatch.setattr(fast_depthwise, "DIRECT_3X3", True)
    for setting in ("PARALLEL_MIN_MACS", "NHWC_PARALLEL_MIN_MACS", "PARALLEL_MIN_BYTES"):
        monkeypatch.setattr(fast_depthwise, setting, 10**18 if threads == "serial" else 0)
    x, filt, dy, args = _problem(geometry, dtype)
    x, dy = _at_offset(x, 16), _at_offset(dy, 16)
    _assert_three_ops_match(x, filt, dy, args, dtype)
    rows = [dy.shape[0] * dy.shape[1], x.shape[0] * x.shape[1]]  # the forward's output rows, the gradient's
    split = [1, 1] if threads == "serial" else [min(2, fast_depthwise.thread_count(), r) for r in rows]
    stride_h, stride_w = (args["strides"],) * 2 if isinstance(args["strides"], int) else args["strides"]
    dil_w = args["dilations"] if isinstance(args["dilations"], int) else args["dilations"][1]
    taken = [stride_w == 1 or (stride_w, dil_w) == (2, 1), stride_h == stride_w == 1]  # forward, stride-1 input grad.
    assert calls == [chunks for chunks, took in zip(split, taken, strict=True) if took]
    assert len(filter_calls) == 1 and (threads == "parallel" or filter_calls == [1])
    assert len(s2_calls) == (stride_h == stride_w == 2)  # the stride-2 input gradient


@pytest.mark.parametrize("geometry", [
    (1, 11, 13, 48, 1, (3, 3), 1, 2, "SAME"),  # dilated: blocks at channels 0, s, s + 16, 32
    (2, 9, 10, 64, 1, (3, 3), 1, (1, 3), "VALID"),
    (1, 12, 11, 96, 1, (3, 3), 2, 1, [[0, 0], [1, 2], [2, 0], [0, 0]]),  # stride 2
    (1, 9, 9, 40, 1, (3, 3), 1, 1, "SAME"),  # not a whole number of vectors: blocks from channel 0
])
def test_direct_3x3_blocks_from_the_input_line_match_the_reference(geometry, fresh_plans, monkeypatch):
    """With DIRECT_3X3_ALIGNED_MIN_PIXEL_BYTES (here 0) the direct 3x3 forward starts its channel blocks, but each
    pixel's first and last, on the input's lines: at every 4-byte offset of the input, serial and split, it matches
    the reference, and the kernel was told to."""
    from sepconv.kernels import depthwise_3x3_direct

    told = record_calls(monkeypatch, depthwise_3x3_direct, "depthwise_nhwc_forward_3x3_direct_parallel",
                        record=lambda args: args[-1], serial="depthwise_nhwc_forward_3x3_direct_rows")
    monkeypatch.setattr(fast_depthwise, "DIRECT_3X3", True)
    monkeypatch.setattr(fast_depthwise, "DIRECT_3X3_ALIGNED_MIN_PIXEL_BYTES", 0)
    x, filt, _, args = _problem(geometry, np.float32, seed=geometry[3])
    for offset in range(0, 64, 4):
        for setting in ("PARALLEL_MIN_MACS", "NHWC_PARALLEL_MIN_MACS", "PARALLEL_MIN_BYTES"):
            monkeypatch.setattr(fast_depthwise, setting, 0 if offset % 8 else 10**18)
        fast_depthwise.clear_plans()
        fast, ref = _both(sepconv.depthwise_conv2d, _at_offset(x, offset), filt, **args)
        np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert len(told) == 16 and all(told), told


@pytest.mark.parametrize("geometry, folded", [
    ((1, 10, 12, 24, 1, (3, 3), 1, 2, "SAME"), (1, 10, 6, 48)),
    ((2, 9, 16, 20, 1, (3, 3), 1, (3, 4), "VALID"), (2, 9, 4, 80)),  # rows 3 apart, columns 4
    ((1, 8, 9, 16, 1, (3, 3), 1, 3, "SAME"), (1, 8, 3, 48)),
    ((1, 7, 10, 32, 1, (3, 3), 1, 2, [[0, 0], [2, 1], [2, 4], [0, 0]]), (1, 7, 5, 64)),  # 12 output columns
    ((1, 7, 11, 32, 1, (3, 3), 1, 2, "SAME"), "rows"),  # 11 columns: folded row by row in the kernel
    ((2, 9, 13, 48, 1, (3, 3), 1, 3, "SAME"), "rows"),
    ((1, 10, 9, 20, 1, (3, 3), 1, (3, 4), [[0, 0], [4, 1], [4, 4], [0, 0]]), "rows"),  # 20 channels, 2 pixels folded
    ((1, 7, 10, 32, 1, (3, 3), 1, 2, [[0, 0], [2, 1], [1, 5], [0, 0]]), None),  # left padding of 1: not folded
    ((1, 7, 5, 32, 1, (3, 3), 1, 3, "SAME"), None),  # one pixel to fold: not folded
    ((1, 8, 12, 16, 2, (3, 3), 1, 2, "SAME"), None),  # a channel multiplier: not folded
    ((1, 8, 12, 16, 1, (3, 3), 2, 2, "SAME"), None),  # stride 2: not folded
], ids=lambda v: _ids(v) if isinstance(v, tuple) and len(v) == 9 else str(v))
def test_dilated_rows_folded_into_channels_match_the_reference(geometry, folded, fresh_plans, monkeypatch):
    """With FOLDED_DILATION (from any image size here, the pairs by Winograd's F(2, 3)) a 3x3 layer at horizontal
    stride 1 and dilation d, its rows and left padding a whole number of d pixels, runs on its arrays reshaped to rows
    of W / d pixels of d * C channels; SAME along rows of other widths, each row's first W // d * d pixels go so in
    the kernel, the others and the last folded pixel's phases that reach them with the dilated taps.  The forward,
    both gradients apart and in one pass match the reference (the filter gradient is not folded), and the general
    kernel ran on the folded shape (or the folding kernel ran) for the forward and the stride-1 input gradient, or
    the layer's own shape where it cannot fold."""
    shapes = record_calls(monkeypatch, fast_depthwise.kernels, "depthwise_nhwc_forward_parallel",
                          record=lambda args: args[0].shape)
    folds = record_calls(monkeypatch, fast_depthwise.kernels, "depthwise_nhwc_forward_3x3_folded_parallel",
                         record=lambda args: args[6])
    monkeypatch.setattr(fast_depthwise, "FOLDED_DILATION", True)
    monkeypatch.setattr(fast_depthwise, "FOLDED_DILATION_MIN_IMAGE_BYTES", 0)
    monkeypatch.setattr(fast_depthwise, "WINOGRAD_3X3", True)  # folded only where the pairs go by Winograd
    monkeypatch.setattr(fast_depthwise, "WINOGRAD_3X3_MAX_BYTES", math.inf)
    monkeypatch.setattr(fast_depthwise, "DIRECT_3X3", False)
    monkeypatch.setattr(fast_depthwise, "DIRECT_3X3_DILATED_MIN_IMAGE_BYTES", math.inf)
    for setting in ("PARALLEL_MIN_MACS", "NHWC_PARALLEL_MIN_MACS", "PARALLEL_MIN_BYTES"):
        monkeypatch.setattr(fast_depthwise, setting, 0)
    x, filt, dy, args = _problem(geometry, np.float32, seed=geometry[3])
    _assert_three_ops_match(x, filt, dy, args, np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d_gradients, x, filt, dy, **args)
    for f, r in zip(fast, ref, strict=True):
        np.testing.assert_allclose(f, r, **tol(np.float32))
    dilation = geometry[7] if isinstance(geometry[7], tuple) else (geometry[7],) * 2
    if folded == "rows":
        assert folds == [dilation[1]] * 2 and not shapes, (folds, shapes)
    elif folded is None:
        assert not folds and (shapes or filt.shape[3] > 1), shapes
        assert all(shape[2] in (x.shape[2], dy.shape[2]) for shape in shapes), shapes
    else:
        d = folded[3] // x.shape[3]  # the input gradient's forward reads dy
        assert not folds and shapes[:2] == [folded, (*dy.shape[:2], dy.shape[2] // d, dy.shape[3] * d)], shapes


@pytest.mark.parametrize("dtype", TUNED_DTYPES)
@pytest.mark.parametrize("geometry", [
    (2, 19, 21, 32, 1, (3, 3), 1, 1, "SAME"),  # pixels of two vectors
    (2, 19, 21, 64, 1, (3, 3), 1, 1, "SAME"),  # ... or four
    (1, 22, 25, 48, 1, (3, 3), 1, (2, 3), "SAME"),  # dilated
    (1, 34, 37, 64, 1, (3, 3), 2, 1, [[0, 0], [0, 3], [3, 1], [0, 0]]),  # stride 2 (the forward only)
    (1, 16, 17, 40, 1, (3, 3), 1, 1, "VALID"),  # 40 channels: a block overlapping the one before it
    (1, 3, 5, 16, 1, (3, 3), 1, 1, "SAME"),  # a small output, wherever NumPy puts it
], ids=_ids)
def test_direct_3x3_forward_streams_large_outputs(geometry, dtype, fresh_plans, monkeypatch):
    """Past ``STREAM_OUTPUT_MIN_BYTES`` of input and output (here every layer) the direct 3x3 forward stores its
    steps' sums past the caches, where the pixels are whole vectors and the output is on a line; the three ops still
    match the reference (the input gradient at stride 1 is the forward of ``dy``)."""
    from sepconv.kernels import depthwise_3x3_direct

    calls = record_calls(monkeypatch, depthwise_3x3_direct, "depthwise_nhwc_forward_3x3_direct_parallel",
                         lambda args: (args[-2], args[2].ctypes.data % 64 == 0),
                         serial="depthwise_nhwc_forward_3x3_direct_rows")
    monkeypatch.setattr(fast_depthwise, "DIRECT_3X3", True)
    monkeypatch.setattr(fast_depthwise, "STREAM_OUTPUT_MIN_BYTES", 0)
    monkeypatch.setattr(fast_depthwise, "STREAM_OUTPUT_MIN_PIXEL_BYTES", 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 0)
    x, filt, dy, args = _problem(geometry, dtype)
    _assert_three_ops_match(x, filt, dy, args, dtype)
    whole_vectors = x.shape[3] * x.itemsize % 64 == 0
    assert len(calls) == 1 + (args["strides"] == 1)
    assert all(streamed == (whole_vectors and on_line) for streamed, on_line in calls)
    if whole_vectors and x.nbytes >= 32 * 1024:  # outputs this large are placed on a line: streamed
        assert all(streamed for streamed, _ in calls)


@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("geometry", [
    (2, 10, 12, 20, 2, (3, 3), 1, 1, "SAME"),  # 40 channels repeated: a band's rows on the direct 3x3 kernel
    (1, 13, 11, 8, 4, (3, 3), 2, 1, "VALID"),
    (1, 12, 14, 16, 3, (3, 3), 1, (1, 2), [[0, 0], [3, 1], [0, 2], [0, 0]]),
], ids=_ids)
def test_direct_3x3_kernels_take_a_channel_multiplier(geometry, threads, fresh_plans, monkeypatch):
    """With ``DIRECT_3X3``, the forward and the input gradient with a channel multiplier run each band of repeated
    rows on the direct 3x3 kernels; the three ops match the reference."""
    from sepconv.kernels import depthwise_multiplier as multiplier

    suffix, index = ("bands", 8) if threads == "serial" else ("parallel", 6)
    rows_kernels = record_calls(monkeypatch, multiplier, f"depthwise_nhwc_forward_multiplier_{suffix}",
                                lambda args: args[index])
    kinds = record_calls(monkeypatch, multiplier, f"depthwise_nhwc_backprop_input_multiplier_{suffix}",
                         lambda args: args[index])
    monkeypatch.setattr(fast_depthwise, "DIRECT_3X3", True)
    for setting in ("PARALLEL_MIN_MACS", "NHWC_PARALLEL_MIN_MACS", "PARALLEL_MIN_BYTES"):
        monkeypatch.setattr(fast_depthwise, setting, 10**18 if threads == "serial" else 0)
    x, filt, dy, args = _problem(geometry, np.float32)
    _assert_three_ops_match(x, filt, dy, args, np.float32)
    assert rows_kernels == [multiplier.DIRECT_3X3_ROWS]
    assert kinds == [multiplier.INPUT_GRADIENT_FORWARD_DIRECT_3X3 if args["strides"] == 1
                     else multiplier.INPUT_GRADIENT_S2_DIRECT_3X3]


DIRECT_5X5_AVX2 = [
    # (batch, height, width, channels, multiplier, filter, strides, dilations, padding); 5x5, horizontal stride 1
    (2, 9, 13, 8, 1, (5, 5), 1, 1, "SAME"),  # one half-vector block (f32); an interior of 9: two steps, overlapping
    (1, 7, 12, 20, 1, (5, 5), 1, 1, "VALID"),  # two blocks and a partial one overlapping the second (f32)
    (1, 6, 9, 16, 1, (5, 5), 1, 1, "SAME"),  # an interior of 5 pixels: every pixel one at a time
    (3, 10, 21, 12, 1, (5, 5), (2, 1), 1, "SAME"),  # vertical stride 2
    (1, 12, 40, 16, 1, (5, 5), (3, 1), (2, 3), "SAME"),  # dilated: a pixel's taps three columns apart, three phases
    (1, 9, 20, 24, 1, (5, 5), 1, 1, [[0, 0], [6, 0], [7, 3], [0, 0]]),  # rows and pixels wholly in the padding
    (1, 5, 30, 16, 1, (5, 5), 1, 1, "VALID"),  # one output row
    (2, 13, 19, 8, 1, (5, 5), 2, 1, "SAME"),  # stride 2: nineteen columns a step; the input gradient by parity
    (1, 22, 37, 20, 1, (5, 5), 2, 1, [[0, 0], [0, 4], [4, 1], [0, 0]]),
    (1, 11, 12, 16, 1, (5, 5), 2, 1, "VALID"),  # rows narrower than a step: pixel by pixel
    (1, 9, 40, 24, 1, (5, 5), (1, 2), 1, "SAME"),  # horizontal stride 2 only: the forward
    (1, 8, 14, 44, 1, (5, 5), 1, 1, "SAME"),  # six blocks (f32): border pixels four blocks at a time, then two
]


@pytest.mark.parametrize("vectors", ["half", "whole"])
@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", TUNED_DTYPES)
@pytest.mark.parametrize("geometry", DIRECT_5X5_AVX2, ids=_ids)
def test_direct_5x5_avx2_kernel_matches_reference(geometry, dtype, threads, vectors, fresh_plans, monkeypatch):
    """With ``DIRECT_5X5_AVX2`` (CPUs without AVX-512) 5x5 layers take the AVX2 5x5 kernels (half-vector blocks,
    eight pixels a step): the forward at horizontal stride 1 or 2, the input gradient at stride 1 (the forward of ``dy``,
    whose pads are negative where the layer's exceed the filter's reach) or 2, on the calling thread and split; all
    three ops match the reference on inputs 16 bytes past a line."""
    from sepconv.kernels import depthwise_5x5_avx2

    calls = record_calls(monkeypatch, depthwise_5x5_avx2, "depthwise_nhwc_forward_5x5_avx2_parallel",
                         serial="depthwise_nhwc_forward_5x5_avx2_rows")
    s2_calls = record_calls(monkeypatch, depthwise_5x5_avx2, "depthwise_nhwc_backprop_input_5x5_s2_avx2_parallel",
                            serial="depthwise_nhwc_backprop_input_5x5_s2_avx2_rows")
    monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_AVX2", True)
    monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_AVX2_WHOLE_VECTORS", vectors == "whole")  # from a vector of channels
    monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_AVX2_MIN_WIDTH", 1)
    monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_AVX2_S2_MIN_WIDTH", 1)
    for setting in ("PARALLEL_MIN_MACS", "NHWC_PARALLEL_MIN_MACS", "PARALLEL_MIN_BYTES"):
        monkeypatch.setattr(fast_depthwise, setting, 10**18 if threads == "serial" else 0)
    x, filt, dy, args = _problem(geometry, dtype)
    x, dy = _at_offset(x, 16), _at_offset(dy, 16)
    _assert_three_ops_match(x, filt, dy, args, dtype)
    rows = [dy.shape[0] * dy.shape[1], x.shape[0] * x.shape[1]]  # the forward's output rows, the gradient's
    split = [1, 1] if threads == "serial" else [min(2, fast_depthwise.thread_count(), r) for r in rows]
    stride_h, stride_w = (args["strides"],) * 2 if isinstance(args["strides"], int) else args["strides"]
    taken = [stride_w <= 2, stride_h == stride_w == 1]  # the forward, the stride-1 input gradient
    assert calls == [chunks for chunks, took in zip(split, taken, strict=True) if took]
    assert len(s2_calls) == (stride_h == stride_w == 2)


AVX2_FEW_CHANNELS = [
    # (batch, height, width, channels, multiplier, filter, strides, dilations, padding); 3x3 over half a vector of
    # channels or more but less than a whole one
    (2, 9, 13, 8, 1, (3, 3), 1, 1, "SAME"),  # one half-vector block; an interior of 11: two steps, overlapping
    (1, 7, 12, 12, 1, (3, 3), 1, 1, "VALID"),  # a partial block overlapping the first
    (1, 5, 6, 8, 1, (3, 3), 1, 1, "SAME"),  # rows narrower than a step: pixel by pixel
    (3, 10, 21, 10, 1, (3, 3), (2, 1), 1, "SAME"),  # vertical stride 2
    (1, 12, 40, 8, 1, (3, 3), 1, (2, 3), "SAME"),  # dilated: three phases of the horizontal dilation
    (1, 9, 20, 14, 1, (3, 3), 1, 1, [[0, 0], [4, 0], [5, 3], [0, 0]]),  # rows and pixels wholly in the padding
    (2, 13, 19, 8, 1, (3, 3), 2, 1, "SAME"),  # stride 2: seventeen columns a step
    (1, 22, 37, 12, 1, (3, 3), 2, 1, [[0, 0], [0, 4], [4, 1], [0, 0]]),
    (1, 9, 40, 10, 1, (3, 3), (1, 2), 1, "SAME"),  # horizontal stride 2 only
    # 7x7 at horizontal stride 2 over half a vector of channels or more, less than DIRECT_AVX2_7X7_S2_MAX_PIXEL_BYTES
    (2, 15, 19, 8, 1, (7, 7), 2, 1, "SAME"),  # one half-vector block; twenty-one columns a step
    (1, 47, 47, 20, 1, (7, 7), 2, 1, "VALID"),  # a partial block overlapping the second
    (1, 12, 13, 16, 1, (7, 7), 2, 1, "VALID"),  # rows narrower than a step: pixel by pixel
    (1, 23, 40, 24, 1, (7, 7), 2, 1, [[0, 0], [0, 5], [6, 1], [0, 0]]),  # a row and columns wholly in the padding
    (3, 18, 26, 60, 1, (7, 7), (1, 2), 1, "SAME"),  # vertical stride 1
    (1, 30, 44, 12, 1, (7, 7), 2, (2, 1), "SAME"),  # vertical dilation 2
]


@pytest.mark.parametrize("vectors", ["half", "whole"])
@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", TUNED_DTYPES)
@pytest.mark.parametrize("geometry", AVX2_FEW_CHANNELS, ids=_ids)
def test_avx2_kernel_takes_layers_of_few_channels(geometry, dtype, threads, vectors, fresh_plans, monkeypatch):
    """With ``DIRECT_5X5_AVX2`` (CPUs without AVX-512) 3x3 layers over fewer channels than a vector (but half a vector
    or more) take the AVX2 kernel's half-vector steps: the forward at horizontal stride 1 or 2, and the input gradient
    at stride 1 (the forward of ``dy``); and so does the forward of 7x7 layers at horizontal stride 2 over few
    channels; on the calling thread and split; all three ops match the reference on inputs 16 bytes past a line."""
    from sepconv.kernels import depthwise_5x5_avx2

    calls = record_calls(monkeypatch, depthwise_5x5_avx2, "depthwise_nhwc_forward_5x5_avx2_parallel",
                         serial="depthwise_nhwc_forward_5x5_avx2_rows")
    monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_AVX2", True)
    monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_AVX2_WHOLE_VECTORS", vectors == "whole")  # from a vector of channels
    for setting in ("PARALLEL_MIN_MACS", "NHWC_PARALLEL_MIN_MACS", "PARALLEL_MIN_BYTES"):
        monkeypatch.setattr(fast_depthwise, setting, 10**18 if threads == "serial" else 0)
    x, filt, dy, args = _problem(geometry, dtype)
    x, dy = _at_offset(x, 16), _at_offset(dy, 16)
    _assert_three_ops_match(x, filt, dy, args, dtype)
    rows = [dy.shape[0] * dy.shape[1], x.shape[0] * x.shape[1]]  # the forward's output rows, the gradient's
    split = [1, 1] if threads == "serial" else [min(2, fast_depthwise.thread_count(), r) for r in rows]
    stride_h, stride_w = (args["strides"],) * 2 if isinstance(args["strides"], int) else args["strides"]
    taken = [True, stride_h == stride_w == 1]  # the forward, the stride-1 input gradient
    assert calls == [chunks for chunks, took in zip(split, taken, strict=True) if took]


AVX2_S2_INPUT_GRADIENT = [
    # (batch, height, width, channels, multiplier, filter, strides, dilations, padding), stride 2; 3x3 filters over
    # fewer channels than a vector
    (2, 15, 19, 8, 1, (7, 7), 2, 1, "SAME"),  # one half-vector block (f32); steps overlapping
    (1, 47, 47, 20, 1, (7, 7), 2, 1, "VALID"),  # two blocks and a partial one overlapping the second (f32)
    (1, 12, 13, 16, 1, (7, 7), 2, 1, "VALID"),  # rows narrower than a step: pixel by pixel
    (1, 23, 40, 24, 1, (7, 7), 2, 1, [[0, 0], [0, 5], [6, 1], [0, 0]]),  # a row and columns wholly in the padding
    (3, 18, 26, 12, 1, (7, 7), 2, 1, "SAME"),  # rows of both parities over three images
    (2, 43, 43, 8, 1, (3, 3), 2, 1, "VALID"),  # one half-vector block
    (1, 21, 30, 12, 1, (3, 3), 2, 1, "SAME"),  # a partial block overlapping the first
    (1, 9, 7, 10, 1, (3, 3), 2, 1, "SAME"),  # rows narrower than a step: pixel by pixel
    (2, 16, 37, 14, 1, (3, 3), 2, 1, [[0, 0], [2, 1], [0, 3], [0, 0]]),  # a row and columns wholly in the padding
]


@pytest.mark.parametrize("vectors", ["half", "whole"])
@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", TUNED_DTYPES)
@pytest.mark.parametrize("geometry", AVX2_S2_INPUT_GRADIENT, ids=_ids)
def test_avx2_s2_input_gradient_matches_reference(geometry, dtype, threads, vectors, fresh_plans, monkeypatch):
    """With ``DIRECT_5X5_AVX2`` (CPUs without AVX-512) the input gradient at stride 2 of a 7x7 layer, or of a 3x3 one
    over fewer channels than a vector, takes the AVX2 kernel's stride-2 routine (eight pixels by half a vector a
    step), on the calling thread and split; all three ops match the reference on inputs 16 bytes past a line."""
    from sepconv.kernels import depthwise_5x5_avx2

    calls = record_calls(monkeypatch, depthwise_5x5_avx2, "depthwise_nhwc_backprop_input_5x5_s2_avx2_parallel",
                         serial="depthwise_nhwc_backprop_input_5x5_s2_avx2_rows")
    monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_AVX2", True)
    monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_AVX2_WHOLE_VECTORS", vectors == "whole")  # from a vector of channels
    for setting in ("PARALLEL_MIN_MACS", "NHWC_PARALLEL_MIN_MACS", "PARALLEL_MIN_BYTES"):
        monkeypatch.setattr(fast_depthwise, setting, 10**18 if threads == "serial" else 0)
    x, filt, dy, args = _problem(geometry, dtype)
    x, dy = _at_offset(x, 16), _at_offset(dy, 16)
    _assert_three_ops_match(x, filt, dy, args, dtype)
    rows = x.shape[0] * x.shape[1]
    assert calls == [1 if threads == "serial" else min(2, fast_depthwise.thread_count(), rows)]


@pytest.mark.parametrize("channels, expected", [(8, True), (15, True), (7, False), (16, False)])
def test_avx2_s2_input_gradient_takes_3x3_layers_of_few_channels(channels, expected, monkeypatch):
    """3x3 layers at stride 2 take the AVX2 kernel's input gradient from half a vector of float32 channels up to, not
    including, a whole one (the direct 3x3 kernel's), and not when dilated or without ``DIRECT_5X5_AVX2``."""
    monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_AVX2", True)
    dy_shape = (1, 28, 28, channels)
    assert fast_depthwise._direct_5x5_avx2_s2_input_gradient(dy_shape, 4, 3, 3, 2, 2, 1, 1) is expected
    assert not fast_depthwise._direct_5x5_avx2_s2_input_gradient(dy_shape, 4, 3, 3, 2, 2, 2, 2)
    monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_AVX2", False)
    assert not fast_depthwise._direct_5x5_avx2_s2_input_gradient(dy_shape, 4, 3, 3, 2, 2, 1, 1)


@pytest.mark.parametrize("in_shape, k, stride_w, expected", [
    ((1, 56, 56, 96), 5, 1, True), ((1, 40, 40, 8), 5, 1, True),  # half a vector of channels is enough
    ((1, 56, 56, 4), 5, 1, False),  # less than half a vector
    ((1, 39, 39, 96), 5, 1, False),  # rows narrower than DIRECT_5X5_AVX2_MIN_WIDTH
    ((1, 32, 32, 96), 5, 2, True), ((1, 30, 30, 96), 5, 2, False),  # stride 2: output rows of 16, or 15
    ((1, 56, 56, 96), 5, 3, False), ((1, 56, 56, 96), 3, 1, False), ((1, 56, 56, 96), 7, 1, False),
    ((1, 57, 57, 384), 5, 1, False), ((1, 56, 56, 128), 5, 1, False),  # pixels of a multiple of 512 bytes
    ((1, 64, 64, 256), 5, 2, False),
])
def test_direct_5x5_avx2_takes_wide_rows_of_unaliased_pixels(in_shape, k, stride_w, expected, monkeypatch):
    """The AVX2 5x5 kernel takes 5x5 filters at horizontal stride 1 on rows of at least ``DIRECT_5X5_AVX2_MIN_WIDTH``
    pixels, or 2 (undilated) on rows of ``DIRECT_5X5_AVX2_S2_MIN_WIDTH``, of at least half a vector, but not of a
    multiple of 512 bytes, when ``DIRECT_5X5_AVX2`` is set, and nothing when it is not."""
    monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_AVX2", True)
    out_shape = in_shape[:2] + (-(-in_shape[2] // stride_w), in_shape[3])  # SAME
    assert fast_depthwise._direct_5x5_avx2(in_shape, out_shape, 4, k, k, stride_w, 1) is expected
    assert not fast_depthwise._direct_5x5_avx2(in_shape, out_shape, 4, k, k, 2, 2)  # stride 2, dilated
    monkeypatch.setattr(fast_depthwise, "DIRECT_5X5_AVX2", False)
    assert not fast_depthwise._direct_5x5_avx2(in_shape, out_shape, 4, k, k, stride_w, 1)


@pytest.mark.parametrize("in_shape, k, strides, expected", [
    ((1, 56, 56, 16), 3, 1, True), ((1, 7, 7, 960), 3, (2, 1), True),  # a vector of channels; any vertical stride
    ((1, 56, 56, 15), 3, 1, False),  # less than a vector
    ((1, 56, 56, 64), 3, 2, True), ((1, 56, 56, 64), 3, (1, 2), True),  # horizontal stride 2
    ((1, 56, 56, 64), 3, 3, False),
    ((1, 56, 56, 64), 5, 1, False),
])
def test_direct_3x3_takes_3x3_layers_at_horizontal_stride_1_or_2(in_shape, k, strides, expected, monkeypatch):
    """The direct 3x3 kernel takes 3x3 filters at horizontal stride 1, or 2 undilated, on pixels of at least a
    vector, when ``DIRECT_3X3`` is set, and nothing when it is not."""
    stride_h, stride_w = (strides, strides) if isinstance(strides, int) else strides
    monkeypatch.setattr(fast_depthwise, "DIRECT_3X3", True)
    assert fast_depthwise._direct_3x3(in_shape, 4, k, k, stride_w, 1, 1) is expected
    assert fast_depthwise._direct_3x3(in_shape, 4, k, k, stride_w, 1, 2) is (expected and stride_w == 1)
    monkeypatch.setattr(fast_depthwise, "DIRECT_3X3", False)
    assert not fast_depthwise._direct_3x3(in_shape, 4, k, k, stride_w, 1, 1)
    assert not fast_depthwise._direct_3x3(in_shape, 4, k, k, stride_w, 2, 2)  # DIRECT_3X3_DILATED_MIN_IMAGE_BYTES unset


@pytest.mark.parametrize("in_shape, k, expected", [
    ((8, 7, 7, 1024), 7, True), ((1, 28, 28, 192), 7, True),  # planes of 5.8 and 61 KB
    ((1, 30, 30, 96), 7, False),  # 69 KB
    ((8, 14, 14, 480), 5, True), ((1, 19, 19, 1344), 5, True),  # 5x5: up to 32 KB
    ((1, 28, 28, 240), 5, False),  # 61 KB: the direct kernel's
    ((1, 7, 7, 960), 3, False),  # 3x3: the direct kernels'
    ((1, 7, 7, 8), 7, False),  # less than a vector of channels
])
def test_small_image_takes_small_planes(in_shape, k, expected):
    """At stride 1 the small-image kernel takes planes (rows with their margins, one 64-byte vector per pixel) of
    at most ``SMALL_IMAGE_MAX_PLANE_BYTES``, 5x5 filters of at most ``SMALL_IMAGE_5X5_MAX_PLANE_BYTES``, no 3x3
    filters, and pixels of at least a vector; never at stride 2."""
    assert fast_depthwise._small_image(in_shape, 4, k, k, 1, 1, 1, 1) is expected
    assert not fast_depthwise._small_image(in_shape, 4, k, k, 2, 2, 1, 1)


HALF_STEPS = [
    # (batch, height, width, channels, filter size, [[top, bottom], [left, right]] pads, band rows)
    (2, 14, 14, 40, 5, [[2, 2], [2, 2]], 14),  # two steps, the second overlapping; a partial channel block
    (1, 9, 20, 16, 7, [[3, 3], [3, 3]], 4),  # two ten-pixel steps; bands of four rows
    (1, 12, 19, 24, 7, [[3, 3], [3, 3]], 5),  # an overlapping ten-pixel step; one and a half vectors of channels
    (3, 6, 12, 33, 5, [[0, 0], [0, 0]], 2),  # VALID: one step a row
    (1, 10, 17, 16, 5, [[1, 3], [0, 2]], 3),  # uneven pads, the last step reading the right margin
    (2, 11, 30, 48, 7, [[3, 3], [3, 3]], 11),  # three steps over three blocks
    (2, 9, 14, 40, 7, [[3, 3], [3, 3]], 4),  # rows of 14 pixels: two seven-pixel steps
    (1, 8, 7, 16, 7, [[3, 3], [3, 3]], 8),  # rows of 7 pixels: one seven-pixel step
    (2, 7, 7, 40, 5, [[2, 2], [2, 2]], 7),  # 5x5 on rows of 7: one seven-pixel step in whole vectors
    (1, 9, 21, 24, 5, [[2, 2], [2, 2]], 4),  # 5x5 on rows of 21: three seven-pixel steps in whole vectors
]


@pytest.mark.parametrize("steps", ["half", "whole"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", TUNED_DTYPES)
@pytest.mark.parametrize("geometry", HALF_STEPS, ids=str)
def test_small_image_vector_steps_match_reference(geometry, dtype, threads, steps):
    """The small-image kernel's steps of half or whole vectors (5x5 and 7x7 at stride 1, the border pixels reading the
    planes' zero margins) match the reference, in bands and whole, on inputs off a cache line, serial and split."""
    from sepconv.kernels import depthwise_small_image

    n, h, w, c, k, pads, band_rows = geometry
    rng = np.random.default_rng(11)
    x, filt = _at_offset(rand(rng, (n, h, w, c), dtype), 16), rand(rng, (k, k, c, 1), dtype)
    with sepconv.use_implementation("reference"):
        ref = sepconv.depthwise_conv2d(x, filt, 1, [[0, 0], *pads, [0, 0]])
    # 5x5 rows of fewer than eight pixels take seven-pixel steps in whole vectors only (four-pixel steps in half ones)
    fits = steps == "whole" or k == 7 or ref.shape[2] >= 8
    assert depthwise_small_image.half_vector_fits(ref.shape[2], w, k, pads[1][0], steps == "whole") is fits
    out = np.full(ref.shape, np.nan, dtype)
    depthwise_small_image.depthwise_nhwc_forward_small_image_parallel(
        x, np.ascontiguousarray(filt[..., 0]), out, threads, 1, band_rows, 1, 1, 1, 1, pads[0][0], pads[1][0],
        depthwise_small_image.HALF_VECTOR_STEPS if steps == "half" else depthwise_small_image.WHOLE_VECTOR_STEPS)
    np.testing.assert_allclose(out, ref, **tol(dtype))


@pytest.mark.parametrize("out_w, in_w, k, pad_left, expected", [
    (14, 14, 5, 2, True),  # two eight-pixel steps for fourteen pixels
    (12, 12, 5, 2, False),  # sixteen for twelve
    (14, 14, 7, 3, True),  # 7x7: two seven-pixel steps for fourteen (ten-pixel steps: twenty)
    (16, 16, 7, 3, False),  # twenty or twenty-one for sixteen
    (17, 17, 7, 3, True),
    (20, 20, 5, 4, False),  # the first step reads past the left margin
    (20, 16, 5, 0, False),  # the last step reads past the right margin
    (7, 7, 5, 2, False),  # narrower than a step
])
def test_half_vector_fits(out_w, in_w, k, pad_left, expected):
    """Half-vector steps take rows whose steps (eight pixels for 5x5, ten or else seven for 7x7) compute at most a
    fifth more pixels than the row's, and whose columns stay within the planes' three-column margins."""
    from sepconv.kernels import depthwise_small_image

    assert depthwise_small_image.half_vector_fits(out_w, in_w, k, pad_left) is expected


@pytest.mark.parametrize("out_w, k, whole, expected", [
    (14, 5, True, 7), (14, 5, False, 8),  # two steps of seven, not sixteen pixels for fourteen
    (7, 5, True, 7), (7, 5, False, 0),  # narrower than eight: seven in whole vectors only
    (21, 5, True, 7), (16, 5, True, 8), (24, 5, True, 8),  # eights where they compute no more pixels
    (14, 7, True, 7), (20, 7, True, 10),  # 7x7 as before
])
def test_vector_step_pixels(out_w, k, whole, expected):
    """The long steps' pixels: 5x5 rows go in sevens in whole vectors where that computes fewer pixels than eights
    (seven chains of sums suffice there), else in eights; 7x7 rows in tens, else sevens."""
    from sepconv.kernels import depthwise_small_image

    assert depthwise_small_image.half_vector_step(out_w, k, whole) == expected


@pytest.mark.parametrize("half, whole, expected", [
    (True, False, "HALF_VECTOR_STEPS"), (False, False, "FOUR_PIXEL_STEPS"), (False, True, "WHOLE_VECTOR_STEPS"),
    (True, True, "WHOLE_VECTOR_STEPS")])
def test_small_image_steps_settings(half, whole, expected, fresh_plans, monkeypatch):
    """The dispatcher passes the steps ``SMALL_IMAGE_WHOLE_STEPS`` or else ``SMALL_IMAGE_HALF_STEPS`` ask for to the
    small-image kernel; every setting matches the reference, forward and input gradient."""
    from sepconv.kernels import depthwise_small_image

    calls = record_calls(monkeypatch, depthwise_small_image, "depthwise_nhwc_forward_small_image_parallel",
                         record=lambda args: args[12], serial="depthwise_nhwc_forward_small_image_items")
    monkeypatch.setattr(fast_depthwise, "SMALL_IMAGE_ANY_PLANE", True)
    monkeypatch.setattr(fast_depthwise, "SMALL_IMAGE_HALF_STEPS", half)
    monkeypatch.setattr(fast_depthwise, "SMALL_IMAGE_WHOLE_STEPS", whole)
    expected = getattr(depthwise_small_image, expected)
    x, filt, dy, args = _problem((2, 14, 14, 48, 1, (5, 5), 1, 1, "SAME"), np.float32)
    _assert_three_ops_match(x, filt, dy, args, np.float32)
    assert calls == [expected, expected]


@pytest.mark.parametrize("strides, dilations", [((2, 2), (1, 1)), ((1, 3), (2, 1)), ((3, 2), (1, 2))])
def test_small_image_kernel_any_stride(strides, dilations):
    """The small-image kernel itself computes any stride and dilation (the dispatcher sends it stride 1 only)."""
    from sepconv.kernels import depthwise_small_image

    rng = np.random.default_rng(6)
    x, filt = rand(rng, (2, 9, 13, 36), np.float32), rand(rng, (5, 7, 36, 1), np.float32)
    with sepconv.use_implementation("reference"):
        ref = sepconv.depthwise_conv2d(x, filt, strides, "SAME", dilations=dilations)
    (sh, sw), (dh, dw) = strides, dilations
    pad_top = max((ref.shape[1] - 1) * sh + 4 * dh + 1 - 9, 0) // 2
    pad_left = max((ref.shape[2] - 1) * sw + 6 * dw + 1 - 13, 0) // 2
    out = np.full(ref.shape, np.nan, np.float32)
    depthwise_small_image.depthwise_nhwc_forward_small_image_parallel(
        x, np.ascontiguousarray(filt[..., 0]), out, 2, 2, 3, sh, sw, dh, dw, pad_top, pad_left)  # bands of 3 rows
    np.testing.assert_allclose(out, ref, **tol(np.float32))


@pytest.mark.parametrize("shape", [
    (3, 9, 70, 40),  # rows wider than a tile (64 pixels), odd heights, a partial channel block, pairs across images
    (4, 8, 40, 64),  # whole vectors, even heights
    (200, 3, 5, 17),  # three rows an image: the last pair's next pair is the next image's first
])
def test_fetch_ahead_matches_the_reference(shape, monkeypatch):
    """With the next rows prefetched (the general 3x3 kernels' ``fetch``, taken from FETCH_AHEAD_MIN_BYTES, here 0:
    every layer) the SAME 3x3 forward (and at stride 2), input gradient, filter gradient and both gradients match the
    reference, and the kernels were told to fetch."""
    monkeypatch.setattr(fast_depthwise, "FETCH_AHEAD_MIN_BYTES", 0)
    fast_depthwise.clear_plans()
    kernels = sys.modules["sepconv.kernels.depthwise"]
    fetched = {name: record_calls(monkeypatch, kernels, name, record=lambda args, at=at: args[at])
               for name, at in (("depthwise_nhwc_forward_parallel", 11),  # then winograd
                                ("depthwise_nhwc_backprop_filter_parallel", 10),
                                ("depthwise_nhwc_backprop_3x3_parallel", 15))}
    rng = np.random.default_rng(31)
    x, w = rand(rng, shape, np.float32), rand(rng, (3, 3, shape[3], 1), np.float32)
    dy = rand(rng, shape, np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d, x, w, 1, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    for strides, padding in ((2, "SAME"), (2, "VALID"), ((1, 2), "SAME")):  # row by row, the stride-2 interior
        fast, ref = _both(sepconv.depthwise_conv2d, x, w, strides, padding)
        np.testing.assert_allclose(fast, ref, **tol(np.float32))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, w, dy, 1, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, w.shape, dy, 1, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    (fast_dx, fast_dw), (ref_dx, ref_dw) = _both(sepconv.depthwise_conv2d_gradients, x, w, dy, 1, "SAME")
    np.testing.assert_allclose(fast_dx, ref_dx, **tol(np.float32))
    np.testing.assert_allclose(fast_dw, ref_dw, **tol(np.float32))
    if fast_depthwise.thread_count() > 1:  # the layers split: the parallel kernels ran, told to fetch
        assert all(calls and all(calls) for calls in fetched.values()), fetched


@pytest.mark.parametrize("shape, dtype", [
    ((3, 9, 70, 40), np.float32),  # rows wider than a tile (64 pixels), odd heights, a partial channel block
    ((4, 8, 40, 64), np.float32),  # whole vectors, even heights
    ((2, 5, 2, 17), np.float32),  # rows of two pixels (one in the loop, the last after it)
    ((2, 7, 9, 24), np.float64),
])
def test_winograd_3x3_pairs_match_the_reference(shape, dtype, monkeypatch):
    """The SAME 3x3 pairs by Winograd's F(2, 3) (WINOGRAD_3X3 and WINOGRAD_3X3_FILTER_GRADIENT, here on every
    layer): the stride-1 forward, input gradient, filter gradient and both gradients in one pass match the
    reference, and the kernels were told to take them; so do VALID and explicitly padded rows (the interior pairs at
    dilation 1); other strides and dilations, which the flags do not touch, still match."""
    for name, value in (("WINOGRAD_3X3", True), ("WINOGRAD_3X3_MAX_BYTES", math.inf), ("DIRECT_3X3", False),
                        ("WINOGRAD_3X3_FILTER_GRADIENT", True), ("WINOGRAD_3X3_FILTER_GRADIENT_MAX_BYTES", math.inf),
                        ("DIRECT_3X3_FILTER_GRADIENT_STRIDE_2", False), ("FILTER_GRADIENT_AVX2", False)):
        monkeypatch.setattr(fast_depthwise, name, value)
    fast_depthwise.clear_plans()
    kernels = sys.modules["sepconv.kernels.depthwise"]
    told = {name: record_calls(monkeypatch, kernels, name, record=lambda args: args[-1], serial=serial,
                               as_parallel=lambda args: args)  # the rows kernels wrapped only where the ops call them
            for name, serial in (("depthwise_nhwc_forward_parallel", "depthwise_nhwc_forward_3x3_rows"),
                                 ("depthwise_nhwc_backprop_filter_parallel", "depthwise_nhwc_backprop_filter_any_rows"))}
    both_told = record_calls(monkeypatch, kernels, "depthwise_nhwc_backprop_3x3_parallel",
                             record=lambda args: args[-2] and args[-1])
    rng = np.random.default_rng(34)
    x, w = rand(rng, shape, dtype), rand(rng, (3, 3, shape[3], 1), dtype)
    dy = rand(rng, shape, dtype)
    fast, ref = _both(sepconv.depthwise_conv2d, x, w, 1, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(dtype))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, w, dy, 1, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(dtype))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, w.shape, dy, 1, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(dtype))
    (fast_dx, fast_dw), (ref_dx, ref_dw) = _both(sepconv.depthwise_conv2d_gradients, x, w, dy, 1, "SAME")
    np.testing.assert_allclose(fast_dx, ref_dx, **tol(dtype))
    np.testing.assert_allclose(fast_dw, ref_dw, **tol(dtype))
    if both_told:  # the layer split over the threads: both gradients in one pass, told to take the pairs so
        assert all(both_told), both_told
    forward, backward = told["depthwise_nhwc_forward_parallel"], told["depthwise_nhwc_backprop_filter_parallel"]
    assert forward and all(forward) and backward and all(backward), told
    for strides, dilations in ((2, 1), (1, 2)):
        fast, ref = _both(sepconv.depthwise_conv2d, x, w, strides, "SAME", dilations=dilations)
        np.testing.assert_allclose(fast, ref, **tol(dtype))
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, w.shape, rand(rng, fast.shape, dtype),
                          strides, "SAME", dilations=dilations)
        np.testing.assert_allclose(fast, ref, **tol(dtype))
    explicit = [[0, 0], [1, 2], [0, 1], [0, 0]]
    for padding in (["VALID"] if shape[2] >= 3 else []) + [explicit]:  # the interior pairs (input gradient: padded by 2)
        fast, ref = _both(sepconv.depthwise_conv2d, x, w, 1, padding)
        np.testing.assert_allclose(fast, ref, **tol(dtype))
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, w, rand(rng, fast.shape, dtype), 1,
                          padding)
        np.testing.assert_allclose(fast, ref, **tol(dtype))


@pytest.mark.parametrize("shape", [
    (1, 5, 70, 48),  # rows in tiles, the last one of six pixels; three vectors a pixel
    (2, 4, 2, 48),  # rows of two pixels: the wrapping block's first and last pixels are the row
    (1, 6, 17, 144),  # nine vectors a pixel, a row of one tile
])
def test_winograd_3x3_blocks_wrapping_into_the_next_pixel_match_the_reference(shape, monkeypatch):
    """With the input off a cache line, the Winograd pairs' channel blocks start at its first aligned channel and
    stay whole: the last block of a pixel wraps into the next pixel's first channels, and at a row's ends its lanes
    outside the row are neither read nor written (nor stored outside the interior's pixels, VALID and explicit
    padding).  At every 4-byte offset of ``x`` (``dy`` at another), forward, both gradients apart and in one pass
    match the reference."""
    for name, value in (("WINOGRAD_3X3", True), ("WINOGRAD_3X3_MAX_BYTES", math.inf), ("DIRECT_3X3", False),
                        ("WINOGRAD_3X3_FILTER_GRADIENT", True), ("WINOGRAD_3X3_FILTER_GRADIENT_MAX_BYTES", math.inf),
                        ("FILTER_GRADIENT_AVX2", False), ("PARALLEL_MIN_MACS", 0), ("PARALLEL_MIN_BYTES", 0)):
        monkeypatch.setattr(fast_depthwise, name, value)
    fast_depthwise.clear_plans()
    for padding in ("SAME", "VALID", [[0, 0], [1, 0], [2, 1], [0, 0]]):
        if padding == "VALID" and shape[2] < 3:
            continue
        x, filt, dy, args = _problem((*shape, 1, (3, 3), 1, 1, padding), np.float32, seed=shape[3])
        for offset in range(0, 64, 4):
            xo, dyo = _at_offset(x, offset), _at_offset(dy, (offset + 20) % 64)
            _assert_three_ops_match(xo, filt, dyo, args, np.float32)
            (fast_dx, fast_dw), (ref_dx, ref_dw) = _both(sepconv.depthwise_conv2d_gradients, xo, filt, dyo, **args)
            np.testing.assert_allclose(fast_dx, ref_dx, **tol(np.float32))
            np.testing.assert_allclose(fast_dw, ref_dw, **tol(np.float32))


@pytest.mark.parametrize("shape, padding", [
    ((2, 23, 37, 40), "SAME"),  # odd rows and columns, a partial channel block, two images
    ((1, 30, 34, 64), "VALID"),
    ((3, 9, 40, 17), "SAME"),  # fewer channels than a vector
])
def test_direct_5x5_stride_2_fetching_ahead_matches_the_reference(shape, padding, monkeypatch):
    """The direct 5x5 kernel's stride-2 rows with the next row's input and output rows prefetched (``fetch``, from
    FETCH_AHEAD_5X5_S2_MIN_BYTES, here 0) give the reference's result, and the kernel was told to fetch."""
    module = sys.modules["sepconv.kernels.depthwise_5x5_direct"]
    calls = record_calls(monkeypatch, module, "depthwise_nhwc_forward_5x5_direct_s2_parallel",
                         record=lambda args: args[-1])
    for name, value in (("FETCH_AHEAD_5X5_S2_MIN_BYTES", 0), ("DIRECT_5X5_S2_MIN_WIDTH", 0),
                        ("DIRECT_5X5_MIN_VECTORS", 0), ("PARALLEL_MIN_MACS", 0), ("PARALLEL_MIN_BYTES", 0)):
        monkeypatch.setattr(fast_depthwise, name, value)
    fast_depthwise.clear_plans()
    rng = np.random.default_rng(32)
    x, w = rand(rng, shape, np.float32), rand(rng, (5, 5, shape[3], 1), np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d, x, w, 2, padding)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert calls == [True]


@pytest.mark.parametrize("shape, padding", [
    ((2, 23, 37, 40), "SAME"),  # odd rows and columns, a partial channel block, two images
    ((1, 30, 34, 64), "VALID"),
    ((3, 9, 40, 17), [[0, 0], [1, 0], [0, 1], [0, 0]]),  # fewer channels than a vector, uneven padding
])
def test_stride_2_input_gradient_fetching_ahead_matches_the_reference(shape, padding, monkeypatch):
    """The stride-2 3x3 input gradient's parity kernel with the next dx and dy rows prefetched (``fetch``, from
    FETCH_AHEAD_S2_INPUT_GRADIENT_MIN_BYTES, here 0) gives the reference's result, and it was told to fetch."""
    module = sys.modules["sepconv.kernels.depthwise"]
    calls = record_calls(monkeypatch, module, "depthwise_nhwc_backprop_input_s2_parallel", record=lambda args: args[-1])
    for name, value in (("FETCH_AHEAD_S2_INPUT_GRADIENT_MIN_BYTES", 0), ("PARALLEL_MIN_MACS", 0),
                        ("NHWC_PARALLEL_MIN_MACS", 0), ("PARALLEL_MIN_BYTES", 0)):
        monkeypatch.setattr(fast_depthwise, name, value)
    fast_depthwise.clear_plans()
    rng = np.random.default_rng(33)
    x, w = rand(rng, shape, np.float32), rand(rng, (3, 3, shape[3], 1), np.float32)
    dy = rand(rng, sepconv.depthwise_conv2d(x, w, 2, padding).shape, np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, w, dy, 2, padding)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    if fast_depthwise.thread_count() > 1:
        assert calls == [True]
