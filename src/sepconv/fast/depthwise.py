"""Fast depthwise convolution: geometry -> plain ints -> a kernel of :mod:`sepconv.kernels.depthwise`
(the 5x5 and 7x7 forward, where :func:`_packed` allows: :mod:`sepconv.kernels.depthwise_packed`, or for
wide 5x5 rows :mod:`sepconv.kernels.depthwise_5x5_direct`, :func:`_direct_5x5`; NCHW:
:mod:`sepconv.kernels.depthwise_nchw`).

Same signatures as :mod:`sepconv.reference`: NHWC arrays with one batch axis, in the compute
dtype, with at least one element; ``api`` has dealt with layouts, dtypes and empty arrays.

A channel multiplier ``M > 1`` runs the multiplier-1 kernels on the input with each channel
repeated ``M`` times, a band of rows at a time in each thread's buffer
(:mod:`sepconv.kernels.depthwise_multiplier`, :data:`MULTIPLIER_BAND_BYTES`); the input gradient is
theirs summed over ``M``, band by band too.  Layers of fewer than a vector of ``C*M`` channels at
stride 1 (the flat-row kernel's) repeat the whole input, or sum the whole gradient, in this thread's
workspace (:mod:`sepconv.fast.workspace`).

Thread split: small problems run on the calling thread (starting the thread team would cost
more than it saves); larger ones are cut into one block of output rows per Numba thread.

Non-finite values: the kernels skip the filter taps that fall in the padding, where
TensorFlow (and the reference) multiply by zeros.  ``0 * inf`` is NaN, so when a filter (or,
for the filter gradient, ``out_backprop``) holds a non-finite value the result could differ;
those calls go to the reference.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from .. import reference
from ..geometry import Conv2DGeometry
from ..kernels import depthwise as kernels
from ..kernels import depthwise_3x3_direct as direct_3x3
from ..kernels import depthwise_5x5_avx2 as direct_5x5_avx2
from ..kernels import depthwise_5x5_direct as direct_5x5
from ..kernels import depthwise_7x7_s2_direct as direct_7x7_s2
from ..kernels import depthwise_filter_gradient_avx2 as filter_gradient_avx2
from ..kernels import depthwise_multiplier as multiplier_kernels
from ..kernels import depthwise_nchw as nchw
from ..kernels import depthwise_nchw_small as nchw_small
from ..kernels import depthwise_packed as packed
from ..kernels import depthwise_small_image as small_image
from ..kernels._jit import PARALLEL_LAUNCH, thread_count
from ..kernels._simd import VECTOR_BYTES
from . import recycled
from .aligned import empty_aligned, empty_apart_from, empty_like_offset
from .layout import nchw_to_nhwc, nhwc_to_nchw
from .tuned import tuned
from .workspace import workspace

# Below this many multiply-adds a call stays on the calling thread: a parallel region costs a few us
# while the OpenMP workers spin (60-90 us to wake them once asleep, see kernels._jit), and the
# smaller layers gain little or lose.  So do images of fewer than PARALLEL_MIN_ROWS output rows (in
# all, over the batch), split by rows, below three times this many.  Measured in one process, 1 vs 2
# threads, the order alternating each round, workers spinning (forward / input gradient / filter
# gradient, us): 0.34M 1x56x56x48 stride 2 23/28/25 vs 18/22/24; 0.45M 2x28x28x32 21/23/22 vs
# 16/18/20; 0.59M 1x32x32x64 19/22/20 vs 18/19/20; 0.68M 1x56x56x24 28/32/32 vs 20/23/23; 0.78M
# 1x28x28x40 5x5 29/32/56 vs 24/26/39; 1.18M 1x64x64x32 42/45/36 vs 23/27/25.  Short images: 0.42M
# 1x7x7x960 18/20/19 vs 16/28/27; 1.0M 1x14x14x576 26/30/27 vs 22/29/30; 1.4M 1x7x7x1152 5x5
# 45/51/105 vs 37/62/97.  (On an earlier VM, whose passive workers woke in ~20 us, the threshold was
# 1.2M for every image: 1.35M 1x28x28x192 180/210/217 vs 154/176/179.)
PARALLEL_MIN_MACS = 400_000
PARALLEL_MIN_ROWS = 16
# The NHWC forward and input gradient of tall images split from this many (this session's VM, one process,
# 1 vs 2 threads, alternating, workers spinning, forward / input gradient, us: 0.15M 1x32x32x16 13.2/16.5
# vs 11.1/14.9; 0.23M 1x28x28x32 dilation 2 19.8/22.4 vs 13.9/17.2; 0.23M 1x56x56x8 19.8/22.2 vs
# 13.8/17.4; 0.36M 1x50x50x16 dilation 3 29.9/50.2 vs 16.7/30.7; 0.35M 1x40x40x24 27.3/33.1 vs
# 20.4/23.7; the filter gradient gained less: 13.7/21.0/19.8 vs 14.4/17.1/16.4 at 0.15M, 0.23M, 0.35M).
# Not with a channel multiplier: the calling thread has just written the repeated input (or will sum
# the repeated gradient), and the other core's half of it crosses between the cores' caches
# (1x28x28x8 multiplier 6 dilation 2, 0.34M: 29 vs 39 us; the same layer given 48 channels: 23 vs 17).
# Lowered from 200K in the thirtieth session (one process, 6 alternating rounds, us, one thread -> two, forward /
# input gradient): 0.15M 4x32x32x3 stride 2 multiplier 4 25.9/26.5 -> 18.5/17.5, 0.15M 1x32x32x16 13.5/14.6 ->
# 11.6/13.0, 0.16M 1x28x28x24 14.0/15.4 -> 11.9/14.2, 0.15M 8x8x8x32 18.4/19.7 -> 12.5/15.4, 0.13M 2x15x15x100
# stride 2 14.9/16.6 -> 12.8/13.6, 0.14M 1x24x24x24 12.8/14.1 -> 11.8/14.5.  Below 100K batch-1 layers lost
# (1x16x16x32 11.1/11.9 -> 12.9/12.6), though batches of small images still gained (8x8x8x16 18.8 -> 13.2).
NHWC_PARALLEL_MIN_MACS = 100_000


# The packed kernels split from this share of PARALLEL_MIN_MACS (Zen 4's plans: 150K of 400K, sepconv.fast.registers;
# their band copy makes a row's work larger than its multiply-adds say, see _forward_chunks), but on a multiplier's
# repeated input (the calling thread's copy) from PARALLEL_MIN_MACS.  Forty-eighth session, Zen 4 VM, one process,
# 2 threads, 7 alternating rounds, 400K -> 150K, stride 2, 5x5: 1x10x10x240 0.87, 1x9x9x240 0.89, 1x21x21x64 0.78,
# 1x28x28x48 0.82, 1x14x14x240 0.80, 1x11x11x336 0.78, 2x11x11x200 0.77, 1x15x15x240 0.88, 1x20x20x120 0.94; 7x7:
# 1x17x17x96 0.76, 1x11x11x120 0.90, 1x9x9x128 1.01; from 100K, below 150K it was mixed (1x12x12x144 5x5 0.92-1.01,
# 1x13x13x96 1.08, 1x6x6x480 0.89).  At stride 1 (few channels, or dilated), 176-338K, forward and input gradient:
# geomean 0.99 (0.91-1.10 over 16).
PACKED_PARALLEL_MIN_MACS_SHARE = 1.0


def _nhwc_min_macs(multiplier_pass: bool) -> int:
    """The split threshold of the NHWC forward and input gradient (unpacked kernels): see above."""
    return PARALLEL_MIN_MACS if multiplier_pass else NHWC_PARALLEL_MIN_MACS
# ... unless the arrays it streams (input and output, or input and output gradient) take this many
# bytes: a stride-2 layer reads four input values per output, and one thread's share of the memory
# bandwidth then limits it (measured on the earlier VM: 0.90M 8x28x28x64 stride 2, 2.0 MB,
# 151/193/161 vs 90/92/108; 0.68M 1x56x56x96 stride 2, 1.5 MB, 102/131/113 vs 85/91/102).
PARALLEL_MIN_BYTES = 1536 * 1024


def _n_chunks(rows: int, macs: int, nbytes: int = 0, short_rows: int | None = None,
              min_macs: int | None = None) -> int:
    """Ranges to split a call into: one per thread (each at least a row), or 1 to stay on the calling
    thread; from ``min_macs`` multiply-adds (:data:`PARALLEL_MIN_MACS` if not given), or three times
    :data:`PARALLEL_MIN_MACS` for images of fewer than ``short_rows`` output rows (:data:`PARALLEL_MIN_ROWS` if not
    given; see above).  The defaults are read when called, so that the settings can be changed."""
    short_rows = PARALLEL_MIN_ROWS if short_rows is None else short_rows
    min_macs = PARALLEL_MIN_MACS if min_macs is None else min_macs
    short = rows < short_rows and macs < 3 * PARALLEL_MIN_MACS
    if nbytes < PARALLEL_MIN_BYTES and (macs < min_macs or short):
        return 1
    return max(1, min(rows, thread_count()))


# The channel-multiplier passes (the input repeated, the input gradient summed) are copies, a few
# instructions per value: split over the threads from this many values of the repeated array.  Split,
# each thread also repeats the rows the kernel's split then gives it, in its own cache (2 threads, us,
# 256K vs 64K: forward 1x56x56x8 multiplier 8 76 vs 44, 1x56x56x32 m2 84 vs 45, 1x28x28x64 m3 62 vs 39;
# input gradient 87 vs 51, 72 vs 47, 56 vs 36; from 16K, 1x28x28x8 m6 lost, 21 vs 38).
PARALLEL_MIN_COPY_VALUES = 64 * 1024


def _whole_vectors(channels: int, itemsize: int) -> int:
    """``channels`` rounded up to whole vectors: the work of a kernel that computes a pixel's channels in vectors."""
    lane_count = VECTOR_BYTES // itemsize
    return -(-channels // lane_count) * lane_count


def _vector_size(shape: tuple[int, ...], itemsize: int) -> int:
    """The size of an NHWC array of ``shape`` with the channels rounded up to whole vectors (:func:`_whole_vectors`),
    as :func:`_forward_chunks` counts work (``whole_vectors``)."""
    return math.prod(shape[:-1]) * _whole_vectors(shape[-1], itemsize)


def _copy_chunks(values: int) -> int:
    return 1 if values < PARALLEL_MIN_COPY_VALUES else thread_count()


def _geometry_ints(g: Conv2DGeometry) -> tuple[int, int, int, int, int, int]:
    return g.stride_h, g.stride_w, g.dil_h, g.dil_w, g.pad_top, g.pad_left


def _filter_per_channel(w: np.ndarray) -> np.ndarray:
    """``[kh, kw, C, M]`` -> the contiguous ``[kh, kw, C*M]`` filter of the multiplier-1 problem."""
    kh, kw, c, m = w.shape
    return np.ascontiguousarray(w.reshape(kh, kw, c * m))  # the kernels take C-contiguous filters


def _repeated(x: np.ndarray, multiplier: int) -> np.ndarray:
    """The input with each channel repeated ``multiplier`` times (the multiplier-1 problem's input),
    in this thread's workspace: valid until the next call that repeats an input."""
    if multiplier == 1:
        return x
    out = workspace("repeated_input", (*x.shape[:3], x.shape[3] * multiplier), x.dtype)
    n_chunks = _copy_chunks(out.size)
    if n_chunks == 1:
        kernels.repeat_channels_flat(x.reshape(-1), out.reshape(-1), multiplier, 0, x.size)
    else:
        with PARALLEL_LAUNCH:
            kernels.repeat_channels_parallel(x.reshape(-1), out.reshape(-1), multiplier, n_chunks)
    return out


# The forward and filter gradient with a channel multiplier repeat the input band by band, about this many bytes
# of repeated input rows at a time (the input gradient: of C*M-channel dx rows), in the cache of the core that
# then reads them, instead of writing the whole repeated input to memory and reading it back; a band has at
# least MULTIPLIER_BAND_MIN_REUSE times as many rows of its own as rows it shares with the next (a dilated
# filter's reach repeats its rows again in every band: 1x30x30x200 3x3 dilation 2 multiplier 2 took 1.6x the
# whole repeat's time in bands of one dy row).
# One process, 2 threads, alternating, whole repeat / bands, us: 4x33x33x32 3x3 stride 2 multiplier 6
# 207 / 131, 2x58x58x72 3x3 s2 m4 456 / 319, 4x75x75x24 7x7 d2 m2 743 / 627, 8x28x28x32 3x3 m2 115 / 88,
# 1x56x56x8 3x3 m8 55 / 48, 1x30x30x200 3x3 d2 m2 160 / 129; layers whose repeat is a few KB within 1%.
# Forward: 1x59x59x72 3x3 s2 m4 221 / 149, 2x30x30x96 3x3 s2 m4 120 / 93, 2x23x23x8 7x7 s2 m6 53 / 37,
# 1x28x28x64 3x3 m3 49 / 38, 1x16x16x240 3x3 m2 54 / 44; 15-25 us layers within 3%.
MULTIPLIER_BAND_BYTES = 256 * 1024
MULTIPLIER_BAND_MIN_REUSE = 2
# ... but the filter gradient's band of repeated rows stays within this many bytes (an even count of output rows,
# at least two): the reuse rule gave very wide rows bands that no longer fit in the core's L2 beside dy's rows
# (one process, 2 threads, alternating, us, by output rows per band, the rule's count marked *: 1x42x42x144 3x3
# multiplier 6 dilation 2, rows of 142 KB: 1 654, 2 494, 3 441, 4 467, 6 498, 8* 665-688; rule vs limit (6 rows)
# 698 / 520, 709 / 614, 727 / 504.  1x49x49x200 5x5 m4 d2, 153 KB: 1 1968, 2 1621, 4 1707, 13* 1725; rule vs
# limit (2 rows) 1.01-1.02.  Bands this limit would cut to 6-7 rows on other layers lost 4-12% or won 5-12%
# (1x75x75x96 5x5 m4, 1x64x64x128 3x3 m4 d2), so it only binds on rows this wide.)  The forward keeps its bands
# (1x49x49x200: 13* 1171, 2 1571).
MULTIPLIER_GRADIENT_BAND_MAX_BYTES = 1536 * 1024


def _multiplier_bands(x_shape: tuple[int, ...], out_shape: tuple[int, ...], itemsize: int, kh: int, stride_h: int,
                      dil_h: int, n_chunks: int, max_bytes: int | None = None) -> tuple[int, int]:
    """The bands of a forward or filter gradient with a channel multiplier (``out_shape`` that of the output or
    of ``dy``): output rows per band (at least two bands per thread when split; the repeated rows within
    ``max_bytes`` if given, but at least two output rows) and the values of one band's repeated input rows (a
    thread's buffer)."""
    n, out_h, out_c = x_shape[0], out_shape[1], out_shape[3]
    row_values = x_shape[2] * out_c
    reach = (kh - 1) * dil_h + 1
    band_rows = max(1, (MULTIPLIER_BAND_BYTES // (row_values * itemsize) - reach) // stride_h + 1,
                    -(-MULTIPLIER_BAND_MIN_REUSE * (reach - stride_h) // stride_h))
    if max_bytes is not None:
        fit = (max_bytes // (row_values * itemsize) - reach) // stride_h + 1
        band_rows = min(band_rows, max(2, fit - fit % 2))  # an even count: the row kernels go in pairs
    if n_chunks > 1:
        band_rows = min(band_rows, -(-n * out_h // (2 * n_chunks)))
    band_rows = min(band_rows, out_h)
    return band_rows, min(x_shape[1], (band_rows - 1) * stride_h + reach) * row_values


# 5x5 and 7x7 layers with a multiplier take the multiplier-1 plan on the whole repeated input (or gradient) instead:
# the bands run the packed rows kernel, the multiplier-1 plan the small-image and AVX2 5x5 kernels, two to three times
# as fast, which pays for the repeat's pass.  Thirty-ninth session, Zen 3 VM, one process, 2 threads, alternating, us,
# bands -> whole: forward at stride 1, undilated, 4x22x22x240 m4 2169 -> 1052, 1x56x56x32 m2 260 -> 113, 1x75x75x24
# m4 701 -> 257, 1x28x28x96 m2 196 -> 95, 8x14x14x96 m2 436 -> 173, 1x56x56x24 7x7 m4 604 -> 240, 1x14x14x192 7x7 m2
# 186 -> 76 (fourteen layers, 0.35-0.68); dilated, where the AVX2 kernel takes it: 1x40x40x32 5x5 d2 m2 248 -> 143,
# 1x65x65x40 5x5 d2 m6 1513 -> 1146 (through the small-image kernel it lost: 1x31x31x24 d2 m4 166 -> 184,
# 1x68x68x88 7x7 d2 m4 4387 -> 5489; so did stride 2 at times, 1x28x28x64 5x5 m4 94 -> 119, 1x67x67x32 7x7 m4 359 ->
# 423).  Input gradient, any stride and dilation: 4x22x22x240 m4 3638 -> 1913, 1x112x112x16 m2 824 -> 341,
# 1x56x56x24 7x7 m4 1067 -> 476, 1x65x65x40 d2 m6 2023 -> 1303, 1x31x31x24 d2 m4 177 -> 138, stride 2 1x67x67x32 7x7
# m4 525 -> 295, 1x56x56x48 m2 207 -> 117, 1x112x112x16 m2 161 -> 148 (nineteen layers, 0.40-0.92); 3x3 filters
# lost both ways (the bands run the direct 3x3 kernel: 1x28x28x96 m2 1.33 / 1.15, 1x56x56x32 m4 - / 1.09).
MULTIPLIER_WHOLE_FILTERS = ((5, 5), (7, 7))


def _multiplier_forward_in_bands(in_shape: tuple[int, ...], itemsize: int, g: Conv2DGeometry) -> bool:
    """Whether a forward with a multiplier repeats the input band by band (the multiplier bands' kernels), rather
    than whole for the multiplier-1 plan: not for other dtypes than float32 (:mod:`sepconv.fast.tuned`), the
    flat-row kernel's layers (it repeats as it copies), or the 5x5 and 7x7 layers above."""
    if not tuned(itemsize) or _flat_rows_fit(g.out_c, itemsize, g.stride_h, g.stride_w, g.pad_top, g.pad_left):
        return False
    if (g.kh, g.kw) not in MULTIPLIER_WHOLE_FILTERS or g.stride_h != 1 or g.stride_w != 1:
        return True
    repeated_shape = (*in_shape[:3], g.out_c)
    out_shape = (in_shape[0], g.out_h, g.out_w, g.out_c)
    return not (g.dil_h == g.dil_w == 1 or _direct_5x5_avx2(repeated_shape, out_shape, itemsize, g.kh, g.kw, 1, g.dil_w))


def _multiplier_gradient_in_bands(itemsize: int, g: Conv2DGeometry) -> bool:
    """Whether an input gradient with a multiplier computes the ``C*M``-channel gradient band by band, rather than
    whole (then summed over the multiplier): not for other dtypes than float32, the flat-row kernel's layers (the
    stride-1 forward of ``dy``), or 5x5 and 7x7 filters (above)."""
    flat_rows = g.stride_h == g.stride_w == 1 and _flat_rows_fit(
        g.out_c, itemsize, 1, 1, (g.kh - 1) * g.dil_h - g.pad_top, (g.kw - 1) * g.dil_w - g.pad_left)
    return tuned(itemsize) and not flat_rows and (g.kh, g.kw) not in MULTIPLIER_WHOLE_FILTERS


_zero_rows: dict[tuple, np.ndarray] = {}
ZERO_ROW_KEPT_BYTES = 64 * 1024


def _zero_row(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A row of zeros ``[in_w, C]``, what the kernels read for a row in the padding (they never write it):
    kept between calls, as allocating and zeroing one cost ~3.5 us, a quarter of a small call.
    Not placed at the input's offset from a cache line, since only padding rows read it."""
    key = (shape, dtype)
    row = _zero_rows.get(key)
    if row is None:
        row = np.zeros(shape, dtype)
        if row.nbytes <= ZERO_ROW_KEPT_BYTES:  # larger calls do not feel the allocation
            if len(_zero_rows) >= 64:
                _zero_rows.clear()
            _zero_rows[key] = row
    return row


def _plan_zero_row(shape: tuple[int, ...], dtype: np.dtype):
    """``zero_row()`` for a launch made once per geometry: the row of :func:`_zero_row` kept by the launch when it
    is small, else looked up at each call (a large call does not feel the allocation; the launch keeps no large
    buffer)."""
    row = _zero_row(shape, dtype)
    if row.nbytes > ZERO_ROW_KEPT_BYTES:
        return lambda: _zero_row(shape, dtype)
    return lambda: row


# Filters of any size but 3x3 (whose direct kernels need only three loads per pixel), horizontal
# stride 1 (any dilation: a band's columns are packed by phase) or 2 (dilation 1), take the packed
# kernels (sepconv.kernels.depthwise_packed) when the packed copy stays a small multiple of the input:
# at least half a vector of channels (a block is one vector per pixel) and an image at least as tall
# as the dilated filter (a band is its rows plus the filter's).  Widths 5 and 7 have routines of their
# own; the others go tap by tap (against the pixel-by-pixel kernel they took before, one thread, one
# process, alternating, us: 1x28x28x64 9x9 420 -> 268, stride 2 164 -> 96; 1x28x28x128 11x11 1278 ->
# 664; 1x56x56x64 1x7 430 -> 233, 7x1 673 -> 279, 1x3 299 -> 227; 1x28x28x64 4x4 183 -> 78, dilation 2
# 187 -> 107, 3x5 162 -> 58, 2x2 91 -> 64, 1x1 61 -> 50).
UNPACKED = (3, 3)


def _packed(in_shape: tuple[int, ...], itemsize: int, kh: int, kw: int, stride_w: int, dil_h: int, dil_w: int) -> bool:
    """Whether the forward pass of an input of ``in_shape`` (multiplier 1) takes the packed kernels."""
    return (tuned(itemsize) and (kh, kw) != UNPACKED and (stride_w == 1 or (stride_w == 2 and dil_w == 1))
            and in_shape[3] * itemsize >= 32 and in_shape[1] >= (kh - 1) * dil_h + 1)


# 5x5 filters at horizontal stride 1 take the direct kernel (sepconv.kernels.depthwise_5x5_direct) instead of the
# packed one when their channels fill DIRECT_5X5_MIN_VECTORS vectors and their output rows are at least
# DIRECT_5X5_MIN_WIDTH pixels per phase of the horizontal dilation, or DIRECT_5X5_MIN_BATCH_WIDTH with
# DIRECT_5X5_MIN_PIXELS output pixels in all (a short row is mostly border pixels, two at a time, and a small
# layer pays the filter's layout).  One process, 2 threads, alternating, us, packed -> direct, final kernel:
# 1x65x65x320 dilation 2 646 -> 505, 1x74x74x336 dilation 2 875 -> 673, 8x56x56x144 1530 -> 1009, 1x56x56x144
# 131 -> 114, 8x28x28x240 450 -> 398, 1x28x28x240 55 -> 49, 8x14x14x480 265 -> 221, 8x14x14x672 433 -> 322,
# 1x129x129x64 dilation 3 541 -> 369, 1x112x112x64 246 -> 197, 1x56x56x64 49 -> 43, 1x56x56x96 80 -> 74,
# 1x33x33x960 410 -> 387, 1x65x65x32 dilation 2 43 -> 33; near even or lost: 1x147x147x64 428 -> 441 and
# 436 -> 455, 2x28x28x64 24.3 -> 23.3, 1x112x112x48 162 -> 128 but 2x56x56x48 74 -> 83 (three vectors: left
# packed), 4x14x14x480 96 -> 105, 1x14x14x480 25 -> 40, 8x7x7x1152 165 -> 184, 1x7x7x960 22 -> 47.
# Rows of at most 8 pixels per phase are one step each (a clipped step of eight, in row pairs): from
# DIRECT_5X5_SHORT_MIN_PIXELS output pixels the direct kernel takes them too (8x7x7x1152 221 -> 125 us,
# 4x7x7x960 67 -> 62; 1x7x7x960 21 -> 42, 1x10x10x1024 45 -> 65 stay packed).  Rows of 9-16 pixels per phase
# are two clipped steps where that beats steps and clipped pairs (plan_steps), and from
# DIRECT_5X5_MIN_BATCH_BYTES of input the direct kernel takes rows of DIRECT_5X5_MIN_BATCH_WIDTH pixels at fewer
# than DIRECT_5X5_MIN_PIXELS pixels too (one process, 2 threads, alternating, packed -> direct, us: 4x14x14x672
# 204-220 -> 158-173, 2x14x14x1152 171 -> 161; below it 3x14x14x672 145 -> 143, 2x14x14x672 76-89 -> 84-91,
# 4x14x14x480 114-128 -> 111-119, 4x14x14x240 50-59 -> 59-64).
DIRECT_5X5_MIN_VECTORS = 4
DIRECT_5X5_MIN_WIDTH = 28
DIRECT_5X5_MIN_BATCH_WIDTH = 14
DIRECT_5X5_MIN_PIXELS = 1500
DIRECT_5X5_MIN_BATCH_BYTES = 2 * 1024 * 1024
DIRECT_5X5_SHORT_WIDTH = 8
DIRECT_5X5_SHORT_MIN_PIXELS = 300
# At horizontal stride 2 (dilation 1) the direct kernel takes rows of DIRECT_5X5_S2_MIN_WIDTH output pixels and more
# (its border pixels go one by one).  One process, 2 threads, 4 alternating rounds, us, packed -> direct:
# 1x75x75x192 262 -> 205, 1x95x95x192 413 -> 345, 1x112x112x144 419 -> 266, 1x112x112x96 285 -> 212, 1x56x56x480
# 379 -> 352, 1x56x56x144 70 -> 60, 4x56x56x64 171 -> 139, 1x33x33x1024 393 -> 305, 1x150x150x32 131 -> 113;
# 1x112x112x32 and 1x56x56x64 within 3%; rows of 14-15 lost (1x28x28x96 19.5 -> 22.1, 1x28x28x240 33 -> 36).
# Rows of 16-19 pixels of at least DIRECT_5X5_MIN_VECTORS vectors take it too (thirty-first session, packed -> direct,
# 4-6 alternating rounds, us): 1x33x33x1200 433 -> 358, 1x33x33x960 502 -> 395, 1x33x33x672 257 -> 217, 1x33x33x240
# 70 -> 60, 1x31x31x672 203 -> 184, 4x33x33x144 183 -> 140, 1x37x37x240 95 -> 77; 1x31x31x96 and 2x32x32x64 even,
# 1x32x32x144 43 -> 46; with fewer channels they lost, 1x35x35x8 VALID 8.2 -> 12.2, 1x33x33x16 9.7 -> 13.4,
# 1x33x33x32 16.3 -> 17.7.  Rows of 14-15 take it from DIRECT_5X5_S2_WIDE_PIXEL_BYTES per pixel: 1x28x28x960 301 -> 266,
# 1x30x30x1152 482 -> 401 (1x28x28x672 156 -> 151, 1x29x29x816 even; 1x28x28x384 73 -> 80, 1x28x28x240 51 -> 54).
DIRECT_5X5_S2 = True
DIRECT_5X5_S2_MIN_WIDTH = 20
DIRECT_5X5_S2_BLOCKS_MIN_WIDTH = 16
DIRECT_5X5_S2_WIDE_PIXEL_BYTES = 3072
# 7x7 filters at horizontal stride 2 take the direct kernel (sepconv.kernels.depthwise_7x7_s2_direct) for rows of
# DIRECT_7X7_S2_MIN_WIDTH output pixels and more, of at least DIRECT_5X5_MIN_VECTORS vectors of channels.  One
# process, 2 threads, 4 alternating rounds, us, packed -> direct: 1x112x112x96 417 -> 288, 1x112x112x192 824 -> 651,
# 1x150x150x128 1077 -> 795; on rows of 28 it lost or tied (1x56x56x96 74 -> 77, 1x56x56x144 93 -> 100, 1x56x56x480
# 411 -> 425; 1x45x45x64 41 -> 51), and with two vectors (1x112x112x32 81 -> 95).
# Pixels of a multiple of 256 bytes (from 512), whose block-by-block copy reads lines that share a quarter of the
# caches' sets or less (see sepconv.kernels.depthwise_packed.ROLLING_PIXEL_BYTES), take it from rows of
# DIRECT_7X7_S2_ALIASED_MIN_WIDTH, on inputs from DIRECT_7X7_S2_ALIASED_MIN_BYTES (thirty-first session, 4 alternating
# rounds, us, packed -> direct: 1x64x64x256 374-405 -> 308-319, 1x75x75x256 521-547 -> 453-455, 2x56x56x192 450-474 ->
# 351-379, 4x56x56x128 598 -> 515, 1x80x80x192 413 -> 379, 1x56x56x192 169 -> 156; even at 1x56x56x256, 1x64x64x512
# and 1x90x90x128; an input in L2 lost, 1x56x56x128 92 -> 120, as did 64 channels, 1x64x64x64 65 -> 79).
DIRECT_7X7_S2 = True
DIRECT_7X7_S2_MIN_WIDTH = 48
DIRECT_7X7_S2_ALIASED_MIN_WIDTH = 28
DIRECT_7X7_S2_ALIASED_PIXEL_BYTES = 256
DIRECT_7X7_S2_ALIASED_MIN_BYTES = 2 * 1024 * 1024


def _direct_5x5(in_shape: tuple[int, ...], out_shape: tuple[int, ...], itemsize: int, kh: int, kw: int,
                stride_w: int, dil_w: int) -> bool:
    """Whether the forward pass of an input of ``in_shape`` (multiplier 1) into ``out_shape`` takes the direct 5x5
    kernel (at horizontal stride 2 its stride-2 routine, ``depthwise_nhwc_forward_5x5_direct_s2_parallel``)."""
    if not tuned(itemsize) or (kh, kw) != (5, 5) or stride_w > 2 or (stride_w == 2 and dil_w != 1):
        return False
    if stride_w == 2:
        pixel_bytes = in_shape[3] * itemsize
        return DIRECT_5X5_S2 and (
            out_shape[2] >= DIRECT_5X5_S2_MIN_WIDTH
            or (out_shape[2] >= DIRECT_5X5_S2_BLOCKS_MIN_WIDTH and pixel_bytes >= DIRECT_5X5_MIN_VECTORS * VECTOR_BYTES)
            or (out_shape[2] >= DIRECT_5X5_MIN_BATCH_WIDTH and pixel_bytes >= DIRECT_5X5_S2_WIDE_PIXEL_BYTES))
    width, pixels = -(-out_shape[2] // dil_w), math.prod(out_shape[:3])
    return in_shape[3] * itemsize >= DIRECT_5X5_MIN_VECTORS * VECTOR_BYTES and (
        width >= DIRECT_5X5_MIN_WIDTH
        or (width >= DIRECT_5X5_MIN_BATCH_WIDTH
            and (pixels >= DIRECT_5X5_MIN_PIXELS or math.prod(in_shape) * itemsize >= DIRECT_5X5_MIN_BATCH_BYTES))
        or (width <= DIRECT_5X5_SHORT_WIDTH and pixels >= DIRECT_5X5_SHORT_MIN_PIXELS))


def _direct_7x7_s2(in_shape: tuple[int, ...], out_shape: tuple[int, ...], itemsize: int, kh: int, kw: int, stride_w: int,
                   dil_h: int, dil_w: int) -> bool:
    """Whether the forward pass of an input of ``in_shape`` into ``out_shape`` (multiplier 1) takes the direct 7x7
    stride-2 kernel (:mod:`sepconv.kernels.depthwise_7x7_s2_direct`: undilated)."""
    pixel_bytes = out_shape[3] * itemsize
    aliased = (pixel_bytes % DIRECT_7X7_S2_ALIASED_PIXEL_BYTES == 0 and pixel_bytes >= 2 * DIRECT_7X7_S2_ALIASED_PIXEL_BYTES
               and math.prod(in_shape) * itemsize >= DIRECT_7X7_S2_ALIASED_MIN_BYTES)
    return (tuned(itemsize) and (kh, kw) == (7, 7) and (stride_w, dil_h, dil_w) == (2, 1, 1) and DIRECT_7X7_S2
            and out_shape[2] >= (DIRECT_7X7_S2_ALIASED_MIN_WIDTH if aliased else DIRECT_7X7_S2_MIN_WIDTH)
            and pixel_bytes >= DIRECT_5X5_MIN_VECTORS * VECTOR_BYTES)


# With DIRECT_3X3 (CPUs without AVX-512: sepconv.fast.registers) 3x3 layers of a vector of channels or more take the
# direct 3x3 kernel (sepconv.kernels.depthwise_3x3_direct: four pixels' sums, a filter row's weights and a column in
# an AVX2 core's sixteen registers) before the small-image kernel: their forward at horizontal stride 1 or 2, input
# gradient at stride 1 or 2 and filter gradient at any stride.  Thirty-third session, Zen 3 VM, one process, 2 threads,
# alternating, us, small-image -> direct: 1x147x147x64 547 -> 292, 1x56x56x144 212 -> 129, 8x56x56x144 1598 -> 1292,
# 1x112x112x32 197 -> 90, 1x28x28x192 65 -> 56, 1x14x14x576 52 -> 31, 1x7x7x960 47 -> 32, 4x7x7x960 131 -> 99,
# 1x19x19x728 155 -> 91, 8x28x28x192 404 -> 258, 8x14x14x384 297 -> 185, 1x27x37x23 36 -> 18; dilated, 1x33x33x576
# dilation 2 377 -> 287, 1x65x65x320 dilation 4 629 -> 458. At horizontal stride 2 too (undilated), against the
# small-image kernel (planes to 96 KB) or the older kernels, us: 1x112x112x96 178 -> 111, 1x56x56x144 133 -> 97,
# 1x14x14x576 35 -> 25, 2x15x15x100 22 -> 18, 4x56x56x144 227 -> 157, 1x112x112x32 69 -> 47, 1x28x28x240 63 -> 34.
# Its stride-2 input gradient against the parity kernel, us: 4x56x56x144 428 -> 190, 1x112x112x96 252 -> 123,
# 1x56x56x144 86 -> 57, 1x14x14x576 40 -> 35, 8x28x28x192 206 -> 137, 1x112x112x32 58 -> 54.  With a channel
# multiplier its forward runs on each band of repeated input rows (older kernels -> direct, us: 1x112x112x32 m4
# 1061 -> 360, 1x56x56x32 m2 200 -> 77, 1x28x28x64 m3 140 -> 64, 4x56x56x64 m2 stride 2 329 -> 246, 1x112x112x8 m4
# 457 -> 144), and so does its input gradient (1x112x112x32 m4 1299 -> 484, 1x56x56x32 m2 165 -> 54, 1x28x28x64 m3
# 108 -> 50, 4x56x56x64 m2 stride 2 322 -> 193, 1x112x112x8 m4 269 -> 106).
DIRECT_3X3 = False


def _last_level_cache_bytes() -> int:
    """The L3 cache's size as Linux reports it (``/sys/devices/system/cpu/cpu0/cache/index3/size``), else 32 MB."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index3/size") as f:
            text = f.read().strip().upper()
        return int(text[:-1]) * {"K": 1024, "M": 1024**2}[text[-1]] if text[-1] in "KM" else int(text)
    except (OSError, ValueError, IndexError, KeyError):
        return 32 * 1024 * 1024


# The direct 3x3 forward stores its output past the caches (non-temporal stores, no read of the lines it fills) when
# its input and output take at least this many bytes, three quarters of the L3: then they do not stay in the cache
# from one call to the next anyway.  Thirty-fourth session, Zen 3 VM (32 MB L3), one process, alternating rounds, the
# kernel alone, us, cached -> streamed stores: 8x56x56x144 (29 MB) 1019-1242 -> 744-793 (through sepconv's call
# 1238-1645 -> 861-959), 4x112x112x96 (39 MB) 1145-1429 -> 1057-1087; but smaller layers lose, their output no
# longer in the cache for whatever reads it: 1x147x147x64 (11 MB) 177 -> 263, 8x28x28x192 (10 MB) 196 -> 326,
# 1x112x112x32 58 -> 87.  Through the op, forward and input gradient (the forward of dy), 8 alternating rounds:
# 8x56x56x144 1022 -> 715 and 1053 -> 782, 4x112x112x96 1126 -> 885 and 1109 -> 892, 16x56x56x144 3008 -> 1959,
# 8x112x112x64 1684 -> 1381; pixels of fewer than STREAM_OUTPUT_MIN_PIXEL_BYTES gain nothing or lose (12x56x56x96
# 680 -> 692, 8x112x112x48 809 -> 799, 8x112x112x32 595 -> 729, 12x112x112x32 873 -> 951).
STREAM_OUTPUT_MIN_BYTES = _last_level_cache_bytes() * 3 // 4
STREAM_OUTPUT_MIN_PIXEL_BYTES = 256


def _streamed_output(in_shape: tuple[int, ...], out_shape: tuple[int, ...], itemsize: int) -> bool:
    """Whether the direct 3x3 forward stores past the caches: a large layer of wide pixels, a whole number of
    vectors (so that every step's stores are on lines, given the output on one)."""
    pixel_bytes = in_shape[3] * itemsize
    return ((math.prod(in_shape) + math.prod(out_shape)) * itemsize >= STREAM_OUTPUT_MIN_BYTES
            and pixel_bytes % VECTOR_BYTES == 0 and pixel_bytes >= STREAM_OUTPUT_MIN_PIXEL_BYTES)


# The general 3x3 kernels prefetch the rows of the next pair of output rows while they compute a pair (``fetch``,
# sepconv.kernels.depthwise.depthwise_nhwc_backprop_filter_3x3_rows) when the arrays they stream take at least this
# many bytes, a quarter of the L3: a channel block's pass steps through a row a pixel (C values) at a time, and on
# this VM the hardware's prefetchers do not keep up with those strides once the arrays come from memory.  Forty-third
# session, Zen 4 VM (32 MB L3), 2 threads, one process, the filter gradient's SAME pairs, without -> with: 8x56x56x144
# (29 MB) 1762 -> 609 us, 6x56x56x144 1163 -> 413, 16x28x28x192 1236 -> 417, 32x14x14x384 711 -> 348, 4x112x112x64
# 1053 -> 607, 8x112x112x32 999 -> 564, 4x56x56x144 (14 MB) 457 -> 297; at par below (3x56x56x144, 11 MB, 204 ->
# 196; 8x28x28x192 202 -> 195; 1x148x148x64 243 -> 243; 1x112x112x96 172 -> 178; 12x14x14x384 151 -> 155).  Through
# the ops, one process, 5 alternating rounds over 146 layers of 6 MB or more (benchmarks/*.json), without -> with:
# forward 8x56x56x144 0.50, 8x112x112x32 0.73, 1x147x147x128 0.74, 32x14x14x384 0.86; stride 2 (the next row's input
# rows and output row) 8x112x112x96 0.55-0.66, 1x228x228x144 0.67-0.77, 1x264x264x192 0.69-0.95; input gradient
# 8x56x56x144 0.46-0.54, 32x14x14x384 0.63, 8x112x112x32 0.76; filter gradient 8x56x56x144 0.34-0.43, 8x112x112x32
# 0.66, 32x14x14x384 0.72; both gradients 8x56x56x144 0.53-0.55; the layers whose kernels do not fetch at par
# (0.84-1.20, noise: geomean 0.955 over all 146).
FETCH_AHEAD_MIN_BYTES = _last_level_cache_bytes() // 4


# ... and the direct 5x5 kernel's stride-2 rows (the next output row's new input rows and its output row, a few lines
# before each eight-pixel step) from three quarters of the L3: one process, 9 alternating rounds, without -> with,
# 2x114x114x240 (31 MB) 0.63, 4x112x112x96 (24 MB) 0.60, 1x150x150x288 (32 MB) 0.70-0.75, 2x132x132x240 0.75,
# 1x160x160x240 0.81, 1x200x200x192 0.91; below it at par or worse (1x132x132x240, 21 MB, 1.06; 1x114x114x240 1.06;
# 1x38x38x1344 1.05; 8x56x56x144, 18 MB, 0.90).
FETCH_AHEAD_5X5_S2_MIN_BYTES = _last_level_cache_bytes() * 3 // 4


# ... and the stride-2 3x3 input gradient's parity kernel (the next dx row and dy row) from half the L3: one
# process, 7 alternating rounds, without -> with, 8x112x112x96 (48 MB) 0.47-0.52, 4x112x112x144 0.46,
# 2x228x228x144 0.45, 1x228x228x144 (37 MB) 0.59, 1x264x264x192 0.59-0.68, 4x56x56x336 (21 MB) 0.54; at 8-14 MB par
# or worse (1x66x66x432 1.09-1.11, 2x53x53x336 1.04, 4x56x56x144 1.03-1.05, 1x75x75x480 0.96-1.03).
FETCH_AHEAD_S2_INPUT_GRADIENT_MIN_BYTES = _last_level_cache_bytes() // 2


# The SAME 3x3 pairs of the general kernels at strides and dilations 1 (the forward, and so the stride-1 input
# gradient) by Winograd's F(2, 3) down the columns, on layers that stream less than this many bytes
# (:func:`sepconv.kernels.depthwise._forward_same_3x3_two_rows_winograd`: two-thirds of the multiply-adds, and
# additions, which Zen 4 runs on units of their own; the Zen 4 plans, sepconv.fast.registers).  A/B, 2 threads,
# alternating: 1x28x28x192 0.87, 2x56x56x144 0.85, 1x147x147x64 0.90, 8x28x28x192 0.93 (input gradient too), up to
# 16 MB 0.85-0.96 over 14 layers; from 19 MB (16x28x28x192, 32x14x14x384) 0.93-1.04, and 8x56x56x144 (29 MB)
# 1.14-1.25: past the cache the pair waits on memory either way.  The interior pairs of VALID and explicitly padded
# rows at dilation 1 take it too (:func:`sepconv.kernels.depthwise._forward_interior_3x3_two_rows_winograd`; the
# stride-1 input gradient of VALID layers is one): 16 layers 0.84-0.99, geomean 0.93 (1x147x147x64 0.84-0.87).
WINOGRAD_3X3 = False
WINOGRAD_3X3_MAX_BYTES = _last_level_cache_bytes() // 2
# ... and the filter gradient's SAME pairs, transposed (:func:`sepconv.kernels.depthwise.
# _filter_gradient_same_3x3_two_rows_winograd`), on layers whose x and dy take less than this: A/B as above, 10
# layers up to 16 MB 0.84-0.99 (1x28x28x192 0.89, 2x56x56x144 0.84, 8x28x28x192 0.93); at 19 MB 1.02, and
# 8x112x112x32, 8x56x56x144 (26-29 MB) 1.11-1.21 over 15 rounds.
WINOGRAD_3X3_FILTER_GRADIENT = False
WINOGRAD_3X3_FILTER_GRADIENT_MAX_BYTES = _last_level_cache_bytes() // 2


def _fetch_ahead(nbytes: int) -> bool:
    """Whether the general 3x3 kernels prefetch the next rows for arrays of ``nbytes`` (:data:`FETCH_AHEAD_MIN_BYTES`)."""
    return nbytes >= FETCH_AHEAD_MIN_BYTES


def _winograd(nbytes: int) -> bool:
    """Whether the general 3x3 kernels' forward pairs (and so the stride-1 input gradient's) go by Winograd's F(2, 3)
    for arrays of ``nbytes`` (:data:`WINOGRAD_3X3`, :data:`WINOGRAD_3X3_MAX_BYTES`)."""
    return WINOGRAD_3X3 and nbytes < WINOGRAD_3X3_MAX_BYTES


def _winograd_filter_gradient(nbytes: int) -> bool:
    """As :func:`_winograd`, the filter gradient's pairs (:data:`WINOGRAD_3X3_FILTER_GRADIENT`,
    :data:`WINOGRAD_3X3_FILTER_GRADIENT_MAX_BYTES`)."""
    return WINOGRAD_3X3_FILTER_GRADIENT and nbytes < WINOGRAD_3X3_FILTER_GRADIENT_MAX_BYTES


# Without DIRECT_3X3, dilated 3x3 layers whose image (one item's H x W x C) takes at least this many bytes take the
# direct 3x3 kernels all the same (Zen 4's plans, sepconv.fast.registers).  Forty-first session, Zen 4 VM (AVX-512 on
# 256-bit units, 1 MB of L2 a core), 2 threads, alternating, the AVX-512 plans' kernels -> direct, forward / input
# gradient / filter gradient: 1x33x33x576 dilation 2 0.65 / 0.67 / 0.74, 2x33x33x576 0.76 / 0.70 / 0.82, 1x65x65x128
# 0.77 / 0.73 / 0.70, 1x129x129x64 0.67 / 0.73 / 0.60, 1x33x33x728 dilation 4 0.72 / 0.70 / 0.73, 1x65x65x320
# dilation 4 0.88 / 0.86 / 0.81; on images of 1.2 MB or less they lost (1x24x24x512 3.29 / 3.04 / 1.08, 4x33x33x256
# 1.56 / 1.52 / 0.92, 1x17x17x728 1.51 / 1.28 / 1.09), and so did undilated layers (1x147x147x64 1.16 / 1.24 / 0.88,
# 1x56x56x144 1.21 / 1.22 / 1.12).
DIRECT_3X3_DILATED_MIN_IMAGE_BYTES = math.inf

# On pixels of at least DIRECT_3X3_ALIGNED_MIN_PIXEL_BYTES (Zen 4's plans: 1 KB, 256 float32 channels) the direct 3x3
# forward starts its channel blocks, but a pixel's first and last, on the input's cache lines when the input is off
# a line (C a whole number of vectors): one block more a pixel, whole-line loads for the others
# (sepconv.kernels.depthwise_3x3_direct._block_first).  Forty-fifth session, Zen 4 VM, 2 threads, one process, 5
# alternating rounds, inputs 16 or 48 bytes past a line, blocks from channel 0 -> from the line: dilation 2
# 1x33x33x576 0.94-0.96, 2x33x33x576 0.91-0.94, dilation 4 1x65x65x320 0.92; on a line, or with C not a whole
# number of vectors (1x33x33x728), 1.00-1.02.  Narrower pixels, where the block more weighs more, were mixed: 1x65x65x128
# dilation 2 0.91 and 1.16, stride 2 1x14x14x576 0.88-0.98, 1x24x24x144 0.94-0.98, 2x15x15x96 VALID 1.03-1.05.
DIRECT_3X3_ALIGNED_MIN_PIXEL_BYTES = math.inf


def _direct_3x3_layer(shape: tuple[int, ...], itemsize: int, kh: int, kw: int, dil_h: int = 1, dil_w: int = 1) -> bool:
    """Whether a layer whose NHWC arrays have ``shape``'s channels takes the direct 3x3 kernels at all (its filter
    gradient does, at any stride)."""
    return tuned(itemsize) and (kh, kw) == (3, 3) and shape[3] * itemsize >= VECTOR_BYTES and (
        DIRECT_3X3 or ((dil_h, dil_w) != (1, 1) and math.prod(shape[1:]) * itemsize >= DIRECT_3X3_DILATED_MIN_IMAGE_BYTES))


def _direct_3x3(in_shape: tuple[int, ...], itemsize: int, kh: int, kw: int, stride_w: int, dil_h: int, dil_w: int,
                multiplier_pass: bool = False) -> bool:
    """Whether the forward pass of an input of ``in_shape`` (multiplier 1, or the input repeated for a multiplier:
    ``multiplier_pass``) takes the direct 3x3 kernel: horizontal stride 1, or 2 undilated.  A multiplier's forward
    takes it only on the plans of DIRECT_3X3, not for DIRECT_3X3_DILATED_MIN_IMAGE_BYTES (Zen 4 VM, 1x65x65x64
    dilation 2 M = 2 1.23x the time, 1x33x33x256 M = 3 1.30x)."""
    return ((DIRECT_3X3 or not multiplier_pass) and _direct_3x3_layer(in_shape, itemsize, kh, kw, dil_h, dil_w)
            and (stride_w == 1 or (stride_w == 2 and dil_w == 1)))


# With FOLDED_DILATION (Zen 4's plans) a 3x3 layer at horizontal stride 1 and dilation d > 1 whose input and output
# rows are a whole number of d pixels (and its left padding too: SAME, VALID), on images (one item's H x W x C) of at
# least FOLDED_DILATION_MIN_IMAGE_BYTES, runs as the layer of its arrays reshaped to rows of W / d pixels of d * C
# channels (:func:`_folded_dilation`): output pixel j = d * j' + p reads the input columns d * (j' + t - 1) + p,
# channel c, which are column j' + t - 1, channel p * C + c, of the reshaped rows (the filter tiled d times along the
# channels), so that the general 3x3 kernel's undilated loops (Winograd's pairs, rows d apart) take it instead of the
# direct 3x3 kernel.  Forty-sixth session, Zen 4 VM, one process, 5 alternating rounds, inputs 0, 16 and 48 bytes
# past a line, us, dilated -> folded: 1x32x32x576 dilation 2 115-121 -> 90-91 (input gradient 120-123 -> 92-94),
# 1x32x32x960 187-192 -> 144-147, 1x64x64x128 80-107 -> 66, 1x64x64x256 dilation 4 280-324 -> 214-282; below 2 MB
# it lost: 1x16x16x256 15 -> 21, 1x128x128x16 36-40 -> 39-52, 4x32x32x96 49-58 -> 55-56, 1x64x64x32 dilation 4
# 21-25 -> 26.  SAME rows of other widths (DeepLab's 33 and 65 pixels) fold in the kernel, row by row
# (:func:`_folded_rows`, sepconv.kernels.depthwise.depthwise_nhwc_forward_3x3_folded_rows: each row's first W // d * d
# pixels folded, the last few with the dilated taps); as above, dilated -> folded: 1x33x33x576 dilation 2 154-165 ->
# 102-140 (input gradient 231-240 -> 166-179), 2x33x33x576 247-310 -> 188-252, 1x33x33x960 210-251 -> 168-206,
# 1x33x33x728 173-215 -> 142-194, 1x65x65x320 dilation 4 293-367 -> 245-285, 1x65x65x256 dilation 2 192-214 ->
# 174-182, 1x129x129x64 154-228 -> 125-134 (0.57-0.91, geomean 0.77 with 1x32x32x576).  Only where the folded pairs
# go by Winograd (:func:`_winograd`, arrays of less than half the last-level cache): past it the d1 pairs lost to the
# direct kernel (1x65x65x576 dilation 4, 19 MB, 750 -> 939 us, 1x65x65x960 966 -> 1822).
FOLDED_DILATION = False
FOLDED_DILATION_MIN_IMAGE_BYTES = 2 * 1024 * 1024


def _folded_dilation(in_shape: tuple[int, ...], out_shape: tuple[int, ...], itemsize: int, kh: int, kw: int,
                     stride_h: int, stride_w: int, dil_w: int, pad_left: int, multiplier_pass: bool = False) -> int:
    """The horizontal dilation a forward (or stride-1 input gradient) of these shapes folds into its channels
    (:data:`FOLDED_DILATION`), or 0."""
    d = dil_w
    if not (FOLDED_DILATION and tuned(itemsize) and not multiplier_pass and (kh, kw) == (3, 3) and stride_w == 1
            and d > 1 and math.prod(in_shape[1:]) * itemsize >= FOLDED_DILATION_MIN_IMAGE_BYTES
            and _winograd((math.prod(in_shape) + math.prod(out_shape)) * itemsize)):
        return 0
    if in_shape[2] % d == 0 and out_shape[2] % d == 0 and pad_left % d == 0:
        return d  # the arrays reshaped
    return d if _folded_rows(in_shape, out_shape, stride_h, d, pad_left) else 0


def _tiled_filter(w3: np.ndarray, fold: int) -> np.ndarray:
    """``w3`` ``[kh, kw, C]`` tiled ``fold`` times along the channels, in this thread's workspace (a fresh
    ``np.tile`` cost the folded kernel ~15 us more than a buffer kept warm, 1x33x33x960)."""
    kh, kw, c = w3.shape
    tiled = workspace("folded_filter", (kh, kw, fold * c), w3.dtype)
    tiled.reshape(kh, kw, fold, c)[...] = w3[:, :, None, :]
    return tiled


def _folded_rows(in_shape: tuple[int, ...], out_shape: tuple[int, ...], stride_h: int, dil_w: int,
                 pad_left: int) -> bool:
    """Whether a dilated layer folds row by row in its kernel (SAME along the rows, vertical stride 1, at least two
    folded pixels: :func:`sepconv.kernels.depthwise.depthwise_nhwc_forward_3x3_folded_rows`) rather than as its
    reshaped arrays."""
    return (stride_h == 1 and pad_left == dil_w and in_shape[2] == out_shape[2] and in_shape[2] // dil_w >= 2
            and in_shape[2] % dil_w != 0)


# With DIRECT_3X3_S2_MAX_IMAGE_BYTES (Zen 4's plans: 512 KB) the forward of undilated stride-2 3x3 layers over a
# vector of channels or more (multiplier 1), on images (one item's H x W x C) of at most that many bytes, takes the
# direct 3x3 kernel too.  Forty-third session, Zen 4 VM, one process, 9 alternating rounds, the general kernel ->
# direct, 35 layers of up to 512 KB: geomean 0.87, 4x18x18x24 VALID 0.70, 1x24x24x144 0.75, 1x14x14x576 0.80,
# 2x15x15x100 0.91, 4x30x30x144 0.89; 2x20x20x120 VALID 1.03 and 8x14x14x384 1.13 lost.  On larger images it was
# mixed (5 rounds, 0.66-1.20; 1x56x56x144 1.09, 4x56x56x144 1.04, 1x61x61x240 1.20).
DIRECT_3X3_S2_MAX_IMAGE_BYTES = 0


# With DIRECT_3X3_S1_MAX_BYTES (Zen 5's plans: 36 KB) the forward of undilated stride-1 3x3 layers over a vector of
# channels or more (multiplier 1; so also their stride-1 input gradient, the forward of dy), on inputs (all items) of at
# most that many bytes, takes the direct 3x3 kernel too: its four-pixel steps against the general kernel's work per
# row, which small layers pay on few pixels.  Forty-ninth session, Zen 5 VM, one process, 5 alternating rounds, the
# general kernel -> direct, forward / input gradient, 31 layers up to 32 KB: geomean 0.77 (0.64-0.96), 1x10x10x16
# 0.74 / 0.77, 1x12x12x16 0.73, 1x16x16x16 0.71 / 0.73, 1x16x16x32 0.80 / 0.77, 1x7x7x64 0.87 / 0.89, 1x7x7x128 0.96,
# 2x10x10x16 0.64, 4x7x7x16 - / 0.64, 2x16x16x16 - / 0.67; at 36 KB 1x24x24x16 0.76 / 0.77, 1x12x12x64 0.90 / 0.86,
# 4x12x12x16 - / 0.62; beyond, mixed (4x10x10x24 1.07, 1x20x20x24 1.05, 4x7x7x48 0.77) and from 48 KB lost (1.06-1.49).
DIRECT_3X3_S1_MAX_BYTES = 0


def _direct_3x3_small(in_shape: tuple[int, ...], itemsize: int, kh: int, kw: int, stride_h: int, stride_w: int,
                      dil_h: int, dil_w: int) -> bool:
    """Whether the forward of a small undilated 3x3 layer takes the direct 3x3 kernel: at stride 2 on images (one
    item) of up to :data:`DIRECT_3X3_S2_MAX_IMAGE_BYTES`, at stride 1 on inputs (all items) of up to
    :data:`DIRECT_3X3_S1_MAX_BYTES`."""
    if not (tuned(itemsize) and (kh, kw, dil_h, dil_w) == (3, 3, 1, 1) and stride_h == stride_w in (1, 2)
            and in_shape[3] * itemsize >= VECTOR_BYTES):
        return False
    if stride_w == 2:
        return math.prod(in_shape[1:]) * itemsize <= DIRECT_3X3_S2_MAX_IMAGE_BYTES
    return math.prod(in_shape) * itemsize <= DIRECT_3X3_S1_MAX_BYTES


def _direct_3x3_s2_input_gradient(dy_shape: tuple[int, ...], itemsize: int, kh: int, kw: int, stride_h: int,
                                  stride_w: int, dil_h: int, dil_w: int) -> bool:
    """Whether the input gradient from ``dy`` of ``dy_shape`` takes the direct 3x3 kernel's stride-2 routine
    (undilated)."""
    return (stride_h, stride_w, dil_h, dil_w) == (2, 2, 1, 1) and _direct_3x3_layer(dy_shape, itemsize, kh, kw)


# With DIRECT_5X5_AVX2 (CPUs without AVX-512: sepconv.fast.registers) 5x5 layers at horizontal stride 1 whose output
# rows are at least DIRECT_5X5_AVX2_MIN_WIDTH wide take sepconv.kernels.depthwise_5x5_avx2 (eight pixels' sums, a
# filter row's five weights and a column, in half vectors) before the small-image kernel: forward and input gradient;
# at stride 2 its forward and input gradient too.
# Thirty-fourth session, Zen 3 VM, one process, 2 threads, alternating, median (and minimum) of 8-10 rounds, us,
# small-image -> this, forward: 1x66x66x432 1171 -> 973, 1x75x75x480 1920 -> 1501, 1x112x112x32 250 -> 151,
# 1x56x56x96 159 -> 133, 1x64x64x264 746 -> 514, 1x57x57x376 782 -> 617, 1x56x56x136 265 -> 221, 1x48x48x240 301 ->
# 281, 1x40x40x480 431 -> 411; input gradient 1x66x66x432 2442 -> 1482, 1x75x75x480 3125 -> 1765.  Narrower rows
# lose to the small-image kernel (8x14x14x672 566 -> 715, 1x19x19x1344 259 -> 342, 1x38x38x960 806 -> 849), and so
# do pixels of a multiple of 512 bytes (1x57x57x384 712 -> 823, 1x64x64x256 650 -> 905, 1x57x57x768 1528 -> 2086,
# 1x56x56x128 258 -> 257): a step's 60 input columns, that many bytes apart, fall in 8 of L1's 64 sets.  Its stride-2
# input gradient (eight pixels by parity, six dy columns a filter row) against the parity kernel, input gradient, us:
# 2x56x56x144 256 -> 140, 1x114x114x240 771 -> 483, 1x29x29x1056 251 -> 203, 1x132x132x240 876 -> 638, 1x33x33x1200
# 353 -> 240, 1x150x150x288 1479 -> 1422, 1x38x38x1344 529 -> 376, 1x56x56x144 139 -> 85, 1x28x28x240 68 -> 48,
# 1x112x112x32 110 -> 72.
# At horizontal stride 2 (undilated; nineteen columns a filter row), output rows of DIRECT_5X5_AVX2_S2_MIN_WIDTH or
# more, against the stride-2 kernels before it, forward, us: 2x56x56x144 327 -> 187, 1x114x114x240 1028 -> 616,
# 1x132x132x240 2479 -> 976, 1x150x150x288 4912 -> 2218, 1x33x33x1200 372 -> 284, 1x38x38x1344 623 -> 537,
# 1x56x56x144 141 -> 89, 1x112x112x32 97 -> 66, 8x28x28x240 389 -> 287, 1x36x36x672 224 -> 164; but 1x14x14x480 42
# -> 54, 1x29x29x1056 228 -> 244, and pixels of a multiple of 512 bytes again (1x64x64x256 289 -> 333, 1x58x58x384
# 342 -> 365).
# 3x3 filters over half a vector of channels or more but less than a whole one (which the direct 3x3 kernel takes)
# take it too, at horizontal stride 1 or 2 (ten or seventeen columns a filter row), any row width; one thread, us,
# the 3x3 kernel of masked whole vectors -> this: 2x43x43x8 stride 2 VALID 20.4 -> 4.6, 1x50x50x8 s2 15.2 -> 4.3,
# 1x112x112x8 s2 60 -> 13, 4x56x56x12 s2 71 -> 29.5, 1x56x56x8 44 -> 11, 1x56x56x12 72 -> 17.5, 1x40x40x8 dilation 2
# 28.8 -> 10.9, 2x29x29x10 strides (2, 1) 14.8 -> 8.1.
DIRECT_5X5_AVX2 = False
DIRECT_5X5_AVX2_MIN_WIDTH = 40
# With DIRECT_5X5_AVX2_WHOLE_VECTORS that kernel runs channel blocks of whole vectors where a pixel holds one (32
# registers, on 256-bit units: Zen 4), forward and stride-2 input gradient.
DIRECT_5X5_AVX2_WHOLE_VECTORS = False
# ... and with DIRECT_5X5_AVX2_WHOLE_S1_ONLY 5x5 layers over a vector of channels or more take it at horizontal stride
# 1 undilated only, on rows of DIRECT_5X5_AVX2_WHOLE_MIN_WIDTH output pixels or more (forward; not the stride-2 input
# gradient).  Zen 4 VM, one process, alternating, 7-9 rounds, the AVX-512 plans' kernels -> whole-vector steps: wide
# stride-1 rows won (1x75x75x480 0.81-0.93 / input gradient 0.75-0.94, 1x66x66x432 0.91 / 0.92-0.94, 1x112x112x48
# 0.81, 1x112x112x64 0.92 / 0.90, 2x71x71x32 0.90), 56-pixel rows lost or tied (1x56x56x144 1.01-1.14), and so did
# strided and dilated steps (1x132x132x240 stride 2 1.28, 8x56x56x144 stride 2 1.24, 1x65x65x320 dilation 2 1.19,
# input gradient 1x38x38x1344 stride 2 1.19).  Over fewer channels than a vector (half vectors, any stride) and for
# 7x7 filters at stride 2 it won: 4x63x63x8 stride-2 input gradient 0.59, 4x67x67x8 0.71, 1x60x60x8 dilation 2 0.72,
# 1x39x39x48 7x7 stride 2 0.73, 4x51x51x48 7x7 stride-2 input gradient 0.69, 2x20x20x336 0.66 (189 layers of 5x5
# filters, of 7x7 ones at stride 2 and of few channels, geomean 0.965; 3x3 layers over 8-12 channels 0.73-1.13).
DIRECT_5X5_AVX2_WHOLE_S1_ONLY = False
DIRECT_5X5_AVX2_WHOLE_MIN_WIDTH = 60
# 7x7 layers at horizontal stride 2 (undilated) over fewer than this many bytes of channels take it too (twenty-one
# columns a filter row); one thread, us, the kernels before (small-image, direct 7x7 stride 2) -> this: 1x39x39x48
# 95 -> 41, 1x61x61x8 54 -> 18, 1x112x112x32 251 -> 171; on more channels it won less or lost: 1x56x56x144 321 -> 269,
# 1x28x28x96 52 -> 49, 1x24x24x240 VALID 71 -> 63, 4x25x25x480 VALID 610 -> 618, 2x29x29x240 245 -> 329.
DIRECT_AVX2_7X7_S2_MAX_PIXEL_BYTES = 256
# ... on output rows of at least this many pixels (Zen 5's plans: 11; shorter rows take the packed kernels).  Forty-ninth
# session, Zen 5 VM, one process, 7 alternating rounds, this kernel -> the packed ones: rows of 6-10 pixels 4x16x16x32
# 0.72, 1x20x20x8 VALID 0.74, 1x17x17x32 0.88, 1x14x14x48 0.89, 4x12x12x48 0.91, 1x24x24x16 0.93 (12 pixels); 11-13
# mixed (1x21x21x24 0.85, 2x22x22x16 1.11, 1x25x25x48 1.11, 1x26x26x40 1.06), 14-20 lost (1.03-1.20).
DIRECT_AVX2_7X7_S2_MIN_WIDTH = 0
# With DIRECT_5X5_AVX2_3X3_S1_HALF_VECTOR_ONLY (Zen 4's plans) the 3x3 layers of fewer channels than a vector take it at
# horizontal stride 1 only without a horizontal dilation over exactly half a vector of channels (8 float32); the others
# (9-15 channels, or dilated along the row) take the general 3x3 kernel's masked whole vectors (dilated ones of 8
# channels on one thread the flat-row kernel, _few_channels_3x3).  A vertical dilation alone was not measured.
# Forty-eighth session, Zen 4 VM, one process, 2 threads, 5 alternating rounds, this kernel -> the general one, forward
# / stride-1 input gradient: dilation 2, 1x19x19x12 0.50 / 0.56, 1x14x14x12 0.50 / 0.54, 8x28x28x12 0.52 / 0.54,
# 4x56x56x12 0.56 / 0.62, 1x129x129x12 0.67 / 0.67, 1x112x112x8 0.89 / 0.91, 1x40x40x8 0.87 / 0.92, 1x19x19x8 0.89 /
# 0.90; dilation 3 and 4, 1x28x28x12 0.52 / 0.55, 1x65x65x8 0.67 / 0.74; undilated, 9-15 channels, 1x56x56 0.80-0.94 /
# 0.82-0.89, 4x56x56x10 0.79 / 0.82, 1x112x112x10 0.79 / 0.83, 2x28x28x14 0.93 / 0.94; but 8 channels undilated,
# 1x112x112x8, 1.15 / 1.03.  At stride 2 it kept its lead (1x112x112x8 1.37 / 1.18, 2x43x43x8 1.23 / 1.36, 4x56x56x12
# 1.12 / 1.06).
DIRECT_5X5_AVX2_3X3_S1_HALF_VECTOR_ONLY = False
DIRECT_5X5_AVX2_S2_MIN_WIDTH = 16
DIRECT_5X5_AVX2_ALIASED_PIXEL_BYTES = 512


def _direct_5x5_avx2(in_shape: tuple[int, ...], out_shape: tuple[int, ...], itemsize: int, kh: int, kw: int,
                     stride_w: int, dil_w: int) -> bool:
    """Whether the forward pass of an input of ``in_shape`` (multiplier 1) takes the AVX2 5x5 kernel: horizontal
    stride 1, or 2 undilated, on rows wide enough, of pixels of at least half a vector but not of a multiple of
    :data:`DIRECT_5X5_AVX2_ALIASED_PIXEL_BYTES`; or a 3x3 filter over at least half a vector of channels but less
    than a whole one, any width (at stride 1 only half vectors, undilated along the row, with
    :data:`DIRECT_5X5_AVX2_3X3_S1_HALF_VECTOR_ONLY`); or a 7x7 filter at horizontal stride 2 (undilated) over at
    least half a vector of channels but less than :data:`DIRECT_AVX2_7X7_S2_MAX_PIXEL_BYTES`, on rows of
    :data:`DIRECT_AVX2_7X7_S2_MIN_WIDTH` output pixels or more."""
    if not tuned(itemsize):
        return False
    pixel_bytes = in_shape[3] * itemsize
    if DIRECT_5X5_AVX2 and (kh, kw) == (3, 3) and VECTOR_BYTES <= 2 * pixel_bytes < 2 * VECTOR_BYTES:
        if stride_w == 1 and DIRECT_5X5_AVX2_3X3_S1_HALF_VECTOR_ONLY:
            return dil_w == 1 and 2 * pixel_bytes == VECTOR_BYTES
        return stride_w == 1 or (stride_w == 2 and dil_w == 1)  # fewer channels than the direct 3x3 kernel takes
    if (DIRECT_5X5_AVX2 and (kh, kw) == (7, 7) and VECTOR_BYTES <= 2 * pixel_bytes
            and pixel_bytes < DIRECT_AVX2_7X7_S2_MAX_PIXEL_BYTES):
        return stride_w == 2 and dil_w == 1 and out_shape[2] >= DIRECT_AVX2_7X7_S2_MIN_WIDTH
    if not (DIRECT_5X5_AVX2 and (kh, kw) == (5, 5) and 2 * pixel_bytes >= VECTOR_BYTES
            and pixel_bytes % DIRECT_5X5_AVX2_ALIASED_PIXEL_BYTES != 0):
        return False
    if DIRECT_5X5_AVX2_WHOLE_S1_ONLY and pixel_bytes >= VECTOR_BYTES:
        return (stride_w, dil_w) == (1, 1) and out_shape[2] >= DIRECT_5X5_AVX2_WHOLE_MIN_WIDTH
    if stride_w == 2:
        return dil_w == 1 and out_shape[2] >= DIRECT_5X5_AVX2_S2_MIN_WIDTH
    return stride_w == 1 and out_shape[2] >= DIRECT_5X5_AVX2_MIN_WIDTH


# The AVX2 kernel's stride-2 input gradient also takes 7x7 filters (seven dy columns per eight pixels) rather than
# their parity kernel (whole vectors: on AVX2 its eight sums alone fill the sixteen registers).  One thread, us, parity
# kernel -> AVX2 kernel: 4x47x47x72 VALID 670 -> 336, 4x48x48x72 SAME 753 -> 331, 1x56x56x96 346 -> 145,
# 2x29x29x240 413 -> 218, 1x47x187x72 VALID 631 -> 237, 1x13x13x20 8 -> 4; and 3x3 filters over fewer channels than
# a vector, whose parity kernel's vectors are part empty (masked): 2x43x43x8 VALID 38 -> 12.5, 1x50x50x8 25 -> 7,
# 1x112x112x8 114 -> 28.5, 4x56x56x12 123 -> 47.5, 1x57x57x10 31 -> 10.
def _direct_5x5_avx2_s2_input_gradient(dy_shape: tuple[int, ...], itemsize: int, kh: int, kw: int, stride_h: int,
                                       stride_w: int, dil_h: int, dil_w: int) -> bool:
    """Whether the input gradient from ``dy`` of ``dy_shape`` takes the AVX2 5x5 kernel's stride-2 routine
    (undilated, 5x5 or 7x7; 3x3 on pixels of less than a vector, which the direct 3x3 kernel does not take)."""
    pixel_bytes = dy_shape[3] * itemsize
    if kh == 5 and DIRECT_5X5_AVX2_WHOLE_S1_ONLY and pixel_bytes >= VECTOR_BYTES:
        return False
    return (DIRECT_5X5_AVX2 and tuned(itemsize) and kh == kw and (kh in (5, 7) or (kh == 3 and pixel_bytes < VECTOR_BYTES))
            and (stride_h, stride_w, dil_h, dil_w) == (2, 2, 1, 1) and 2 * pixel_bytes >= VECTOR_BYTES)


# Images whose channel-block plane (with the kernel's zero margins) is small take the small-image kernel
# (sepconv.kernels.depthwise_small_image) at stride 1: taps inside the image only, the plane in L1 or L2.  Thirty-second
# session, one process, 2 threads, alternating rounds, new / old (the packed or direct 5x5 kernel), forward and input
# gradient: 1x7x7x1024 7x7 0.65/0.83, 8x7x7x1024 7x7 0.72/0.70, 8x7x7x768 7x7 0.78/0.73, 1x14x14x512 7x7 0.58/0.60,
# 1x28x28x192 7x7 0.60/0.60, 8x28x28x192 7x7 0.61/0.58, 1x19x19x200 7x7 0.59/0.71, 1x7x7x960 5x5 0.84/0.80,
# 1x10x10x1024 5x5 0.68/0.67, 1x14x14x480 5x5 0.65/0.69, 8x14x14x480 5x5 0.84/0.91, 1x15x15x1056 5x5 0.57/0.59,
# 1x19x19x1344 5x5 0.87/0.85, 4x7x7x960 5x5 0.66/0.65; 8x14x14x512 7x7 tied (1.00).  Larger 5x5 planes lost to the
# direct kernel (1x28x28x120 1.15/1.13, 8x28x28x240 0.94/1.05), and so did stride 2 (2x15x15x100 5x5 1.15/1.04) and
# 3x3 filters, whose direct kernels load three vectors per pixel (1x7x7x960 1.14, 4x14x14x480 1.23/1.43, though
# 1x14x14x576 gained 0.59): those stay where they were.
SMALL_IMAGE_MAX_PLANE_BYTES = 64 * 1024
SMALL_IMAGE_5X5_MAX_PLANE_BYTES = 32 * 1024
# With SMALL_IMAGE_ANY_PLANE (CPUs without AVX-512: sepconv.fast.registers) the small-image kernel takes every
# stride-1 layer of a vector of channels or more, 3x3 too, whatever its plane.
SMALL_IMAGE_ANY_PLANE = False
# With SMALL_IMAGE_HALF_STEPS (CPUs without AVX-512) its stride-1 5x5 and 7x7 rows go in half-vector steps of eight
# (5x5), ten or seven (7x7) pixels, each plane column loaded once a filter row, the margins' zeros read for the border
# pixels (sepconv.kernels.depthwise_small_image.half_vector_step, half_vector_fits).  Zen 3 VM, 2 threads,
# alternating, four-pixel steps -> half-vector steps, us: 8x14x14x672 5x5 599 -> 518, 1x38x38x960 5x5 915 -> 719,
# 1x14x14x672 5x5 72 -> 67, 4x14x14x480 5x5 206 -> 196, 1x28x28x240 5x5 99 -> 98; 1x56x56x96 7x7 249 -> 227,
# 1x28x28x192 7x7 118 -> 106, 8x28x28x192 7x7 892 -> 825, 1x19x19x200 7x7 60 -> 52, 1x112x112x32 7x7 351 -> 326;
# 7x7 rows of 14 pixels in two seven-pixel steps (in two ten-pixel ones they lost, 8x14x14x384 481 -> 519):
# 8x14x14x384 522 -> 458, 8x14x14x768 985 -> 907, 1x14x14x512 85 -> 81.  Forty-first session, Zen 4 VM (AVX-512 on
# 256-bit units), the AVX-512 plans' planes, alternating, whole-vector steps -> half-vector steps: 8x14x14x672 5x5
# 0.69 (forward) / 0.70 (input gradient), 1x14x14x672 0.77 / 0.79, 4x14x14x480 0.73 / 0.76, 1x19x19x200 7x7
# 0.67 / 0.74, 1x28x28x192 7x7 0.75 / 0.76, 8x14x14x384 7x7 0.84 / 0.88, 8x7x7x1024 7x7 0.83 / 0.85.
SMALL_IMAGE_HALF_STEPS = False
# With SMALL_IMAGE_WHOLE_STEPS (Zen 4's plans: 32 registers, AVX-512 on 256-bit units) those steps take whole vectors,
# a block at once (sepconv.kernels.depthwise_small_image.WHOLE_VECTOR_STEPS).  It comes before SMALL_IMAGE_HALF_STEPS.
# Zen 4 VM, 2 threads, one process, alternating, 9 rounds, half -> whole vectors, forward / input gradient:
# 8x7x7x1024 7x7 0.59 / 0.82, 8x14x14x512 7x7 0.90 / 0.82, 8x28x28x192 7x7 0.86 / 0.85, 1x14x14x512 7x7 0.84 / 0.89,
# 8x14x14x672 5x5 0.89 / 0.92-0.94, 1x14x14x672 5x5 0.91, 1x15x15x1056 5x5 0.95 / 0.90; larger planes, which take
# other kernels, at par (107 layers of 5x5 and 7x7 filters at stride 1, geomean 0.96, none above 1.04).  In whole
# vectors 5x5 rows of 7 and 14 pixels go in seven-pixel steps, none overlapping (alternating processes, three pairs,
# forward / input gradient, eights or four-pixel steps -> sevens: 8x7x7x1152 0.52 / 0.65, 1x7x7x960 0.72 / 0.81,
# 1x14x14x672 0.81 / 0.94, 8x14x14x672 0.90 / 0.80, 8x14x14x480 0.83 / 0.90, 1x21x21x240 0.92 / 0.99; but 2x14x14x336
# 1.10 / 1.06).
SMALL_IMAGE_WHOLE_STEPS = False
# ... and stride-2 layers whose plane takes at most this many bytes (0: none).  Zen 3 VM, forward, new / old:
# 1x14x14x576 3x3 0.83, 1x28x28x96 7x7 0.85, 1x33x33x1200 5x5 0.91; larger planes lost or gained little
# (1x56x56x144 3x3 1.33, 1x112x112x96 3x3 1.47, 1x112x112x144 5x5 1.14, 1x56x56x144 5x5 0.91, 1x38x38x1344 0.94).
SMALL_IMAGE_S2_MAX_PLANE_BYTES = 0
# With SMALL_IMAGE_UNDILATED_ONLY (Zen 4's plans) dilated layers the packed kernels take (the image as tall as the
# dilated filter) go there (or to the direct 5x5 kernel) instead.  Forty-eighth session, Zen 4 VM, one process, 2
# threads, 5 alternating rounds, small-image -> the others, 36 forwards and 12 input gradients of 5x5 and 7x7 filters at
# dilation 2 or 3 over 32-960 channels, planes of 14-24 pixels: geomean 0.81 (0.52-1.14; 1x24x24x32 7x7 0.52, 1x19x19x32
# 0.59-0.69, 2x14x14x480 5x5 0.61, 1x14x14x64 7x7 0.75-0.82, 1x19x19x144 0.72-0.91, 1x14x14x960 5x5 0.82; 1x14x14x480
# 7x7 0.85 forward, 1.14 input gradient, the only one above 1.00).  1x17x17x144 7x7 dilation 3, whose dilated filter (19
# rows) is taller than the image, lost (1.22-1.51): no packed kernel takes it, and it stays here.  Undilated layers kept
# the small-image kernel (48 layers of 16-192 channels: it won on most, 1.0-2.1).
SMALL_IMAGE_UNDILATED_ONLY = False
# A worker packs up to this many bytes of channel-block planes at once, at most SMALL_IMAGE_MAX_GROUP blocks: each
# pixel's blocks are consecutive lines (one thread, us, one block / two / four: 8x7x7x1024 7x7 923 / 791 / 792;
# 2 threads, alternating, four -> two / one: 8x14x14x512 7x7 0.93 / 0.89, 8x14x14x384 0.97 / 0.95, 8x7x7x1024 0.96).
SMALL_IMAGE_GROUP_BYTES = 32 * 1024
SMALL_IMAGE_MAX_GROUP = 2
# Larger planes go in bands of output rows whose input rows take at most this many bytes (in L2), and images of few
# channel groups in bands enough for this many items per thread (so that the threads' shares differ by little).
SMALL_IMAGE_BAND_BYTES = 64 * 1024
SMALL_IMAGE_MIN_ITEMS_PER_THREAD = 8


def _small_image_row_bytes(in_w: int, stride_w: int) -> int:
    """The bytes of one row of a channel block's plane in the small-image kernel, with its zero margins
    (:func:`sepconv.kernels.depthwise_small_image.plane_margin`)."""
    return (in_w + 2 * (small_image.STEP_PIXELS - 1) * stride_w) * VECTOR_BYTES


def _small_image_plane_bytes(in_shape: tuple[int, ...], stride_w: int) -> int:
    """The bytes of one channel block's whole plane in the small-image kernel."""
    return in_shape[1] * _small_image_row_bytes(in_shape[2], stride_w)


def _small_image(in_shape: tuple[int, ...], itemsize: int, kh: int, kw: int, stride_h: int, stride_w: int,
                 dil_h: int, dil_w: int) -> bool:
    """Whether the forward pass of an input of ``in_shape`` (multiplier 1) takes the small-image kernel (not, with
    :data:`SMALL_IMAGE_UNDILATED_ONLY`, a dilated layer the packed kernels take)."""
    if not tuned(itemsize) or stride_h > 2 or stride_w > 2 or kh * kw == 1 or in_shape[3] * itemsize < VECTOR_BYTES:
        return False
    if stride_h == 2 or stride_w == 2:
        return _small_image_plane_bytes(in_shape, stride_w) <= SMALL_IMAGE_S2_MAX_PLANE_BYTES
    if (SMALL_IMAGE_UNDILATED_ONLY and (dil_h > 1 or dil_w > 1)
            and _packed(in_shape, itemsize, kh, kw, stride_w, dil_h, dil_w)):
        return False
    if SMALL_IMAGE_ANY_PLANE:
        return True
    if kh * kw <= 9:
        return False
    limit = SMALL_IMAGE_5X5_MAX_PLANE_BYTES if (kh, kw) == (5, 5) else SMALL_IMAGE_MAX_PLANE_BYTES
    return _small_image_plane_bytes(in_shape, stride_w) <= limit


def _small_image_band_rows(in_shape: tuple[int, ...], out_h: int, kh: int, stride_h: int, stride_w: int, dil_h: int,
                           group: int, images_groups: int, threads: int = 0) -> int:
    """Output rows per band of the small-image kernel: the group's planes of a band's input rows take at most
    :data:`SMALL_IMAGE_BAND_BYTES`, and, on ``threads`` threads (0: all), the call has at least
    :data:`SMALL_IMAGE_MIN_ITEMS_PER_THREAD` items (image, channel group, band) per thread where the image has the
    rows (on one thread, none more than L2 asks: each band packs its input rows again)."""
    input_rows = max(1, SMALL_IMAGE_BAND_BYTES // (group * _small_image_row_bytes(in_shape[2], stride_w)))
    band_rows = max(1, (input_rows - (kh - 1) * dil_h - 1) // stride_h + 1)
    threads = threads or thread_count()
    items_per_thread = SMALL_IMAGE_MIN_ITEMS_PER_THREAD if threads > 1 else 1
    bands = max(-(-out_h // band_rows), -(-items_per_thread * threads // images_groups))
    return max(1, -(-out_h // min(bands, out_h)))


def _small_image_group(in_shape: tuple[int, ...], stride_w: int) -> int:
    """The channel blocks a worker of the small-image kernel packs at once."""
    plane = _small_image_plane_bytes(in_shape, stride_w)
    return max(1, min(SMALL_IMAGE_MAX_GROUP, SMALL_IMAGE_GROUP_BYTES // plane))


def _direct_5x5_whole_blocks(channels: int, itemsize: int) -> bool:
    """Whether the direct 5x5 kernel reads pixels of ``channels`` in whole channel blocks from channel 0, unaligned
    when the input is (:func:`sepconv.kernels.depthwise_5x5_direct.block_shift`): its output then starts on a cache
    line (whole-line stores), not at the input's offset from one.  One thread, 1x112x112x64 at 16 bytes past a line,
    us: five blocks from the first aligned channel 527, four whole blocks 540 with the output at the input's offset
    and 502 on a line (423 for an input on a line); 1x147x147x64 916-948, 943, 931-936 (744-786)."""
    return channels * itemsize <= direct_5x5.SPLIT_LOADS_MAX_VECTORS * VECTOR_BYTES


def _packed_output(shape: tuple[int, ...], dtype: np.dtype, scratch: str | None) -> np.ndarray:
    """The output of a packed kernel (or of the small-image kernel, which packs its planes too), on a cache line
    (not at the input's offset from one, as the other kernels' outputs are placed,
    :func:`~sepconv.fast.aligned.empty_like_offset`): the input is read through the packed
    copy, where a load split over two lines costs little, and whole channel blocks are then stored in whole lines,
    none split and no block added to align them (an input 16 bytes past a line; one process, 2 threads, 80
    alternating runs, us, output at the input's offset -> on a line: 1x147x147x64 5x5 571 -> 524, 1x112x112x64
    345 -> 307, 1x112x112x48 231 -> 208, 1x65x65x320 5x5 dilation 2 1035 -> 947, 1x56x56x96 7x7 170 -> 147,
    1x56x56x144 7x7 241 -> 222, 1x112x112x96 5x5 stride 2 281 -> 256, 8x28x28x240 5x5 515 -> 492; 1x112x112x32
    5x5 and 8x14x14x480 5x5 unchanged).  In this thread's workspace ``scratch`` if given."""
    return empty_aligned(shape, dtype) if scratch is None else workspace(scratch, shape, dtype)


def _forward_chunks(in_shape: tuple[int, ...], out_shape: tuple[int, ...], itemsize: int, kh: int, kw: int,
                    stride_w: int, dil_h: int, dil_w: int, multiplier_pass: bool = False,
                    whole_vectors: bool = True) -> int:
    """:func:`_n_chunks` of the forward pass of an input of ``in_shape`` (multiplier 1) into an output of
    ``out_shape``.
    ``whole_vectors``: the kernel computes a pixel's channels in whole vectors, so its work is counted
    with the channels rounded up to a vector's lanes (a 3-channel layer costs what a 16-channel one
    does); not for the flat-row kernel, whose vectors run along the row.  One process, alternating,
    us, real multiply-adds -> whole vectors: 1x75x75x3 5x5 stride 2 47.0 -> 27.5, 1x112x112x3 3x3
    stride 2 28.9 -> 19.9, 1x40x40x8 3x3 16.1 -> 12.8, 1x56x56x24 3x3 stride 2 19.5 -> 15.2,
    1x28x28x8 7x7 18.4 -> 16.2; the others of 13 layers of 3-40 channels unchanged.
    The packed kernels' copy makes a row's work larger than its multiply-adds say, and short images
    gain from the split as tall ones do (one process, alternating, 1 vs 2 threads, us: 0.47M
    1x14x14x96 5x5 22.1 vs 18.5, 0.59M 1x7x7x480 5x5 24.3 vs 20.6, 0.63M 1x14x14x128 5x5 22.6 vs 18.9,
    0.71M 1x28x28x144 5x5 stride 2 35.7 vs 27.4, 0.92M 1x28x28x96 7x7 stride 2 37.0 vs 30.5; below the
    threshold, 0.29M 1x14x14x240 5x5 stride 2 18.8 vs 19.8, 0.24M 1x28x28x48 5x5 stride 2 14.8 vs 14.7, on an
    earlier VM; on Zen 4 those two gained, 0.80 and 0.82, and the packed kernels split from a share of the threshold
    there, :data:`PACKED_PARALLEL_MIN_MACS_SHARE`)."""
    rows = out_shape[0] * out_shape[1]
    out_size = math.prod(out_shape)
    channels = _whole_vectors(out_shape[3], itemsize) if whole_vectors else out_shape[3]
    if _packed(in_shape, itemsize, kh, kw, stride_w, dil_h, dil_w):
        share = 1.0 if multiplier_pass else PACKED_PARALLEL_MIN_MACS_SHARE
        short_rows, min_macs = 0, int(PARALLEL_MIN_MACS * share)
    else:
        short_rows, min_macs = PARALLEL_MIN_ROWS, _nhwc_min_macs(multiplier_pass)
    return _n_chunks(rows, rows * out_shape[2] * channels * kh * kw, (math.prod(in_shape) + out_size) * itemsize,
                     short_rows, min_macs)


# The few-channel kernel copies each image with its left and right padding (one thread, one process,
# alternating, us, before -> after: 1x28x28x3 7x7 dilation 2 SAME 45 -> 20, 7x7 SAME 35 -> 22,
# 1x75x75x3 7x7 136 -> 113) when the filter reaches at least this many columns beyond its first (a
# 5x5 layer's two padding columns a side did not pay: 1x10x10x12 3.9 -> 4.7, 1x28x28x3 10.1 -> 9.5).
FEW_CHANNELS_PADDED_MIN_REACH = 6


def _flat_rows_fit(channels: int, itemsize: int, stride_h: int, stride_w: int, pad_top: int, pad_left: int) -> bool:
    """Fewer channels than a vector, stride 1, no crop: what the flat-row kernel takes."""
    return (channels * itemsize < VECTOR_BYTES and stride_h == 1 and stride_w == 1 and pad_top >= 0
            and pad_left >= 0)


def _few_channels(channels: int, itemsize: int, kh: int, kw: int, stride_h: int, stride_w: int, pad_top: int,
                  pad_left: int) -> bool:
    """Fewer channels than a vector, stride 1, no crop, and a filter that neither the 3x3 kernels (whose
    sliding window wins at 8 channels: 1x56x56x8 15-22 against 20-22 us, but see :func:`_few_channels_3x3`)
    nor the packed ones take: the flat-row kernel (1x75x75x3 7x7 ~530 -> ~120 us, 1x28x28x3 7x7 dilation 2
    58 -> 25, 1x10x10x12 5x5 18 -> 7, one thread)."""
    return _flat_rows_fit(channels, itemsize, stride_h, stride_w, pad_top, pad_left) and (kh, kw) != (3, 3)


# 3x3 layers of at most this many bytes of channels per pixel take the flat-row kernel too; dilated ones on one
# thread up to the second figure (half a vector).
FEW_CHANNELS_3X3_BYTES = 16
FEW_CHANNELS_3X3_DILATED_BYTES = 32


def _few_channels_3x3(channels: int, itemsize: int, kh: int, kw: int, stride_h: int, stride_w: int, dil_h: int,
                      dil_w: int, pad_top: int, pad_left: int, n_chunks: int) -> bool:
    """The 3x3 layers the flat-row kernel runs faster than the 3x3 kernels, whose vector of channels is
    then mostly empty: up to four float32 channels, and dilated layers of up to eight on one thread
    (one process, us, 3x3 kernel vs flat-row: 1x56x56x2 16.6 vs 12.1, 4x32x32x3 29.4 vs 19.5, 1x224x224x3
    78 vs 53, dilation 2 102 vs 57; 1x33x33x3 d2 16.5 vs 9.7, 1x28x28x4 d3 14.7 vs 9.8, 1x20x20x8 d2 VALID
    9.7 vs 7.9, 1x28x28x8 d2 11.4 vs 10.8; not split in two, where the 3x3 kernel kept the lead: 1x56x56x8
    d2 14.4 vs 16.8, 2x40x40x8 d4 18.7 vs 22.0; 8 channels undilated lost, 1x56x56x8 10.4 vs 17.0).
    From nine to fifteen channels, its vector of channels mostly full, the 3x3 kernel leads (the implementation
    function, 1x19x19x12 d2 6.5 vs 8.0, 1x33x33x12 d4 10.6 vs 15.4, 1x33x33x14 d4 11.1 vs 18.7, 1x20x20x10 d2
    6.3 vs 7.5; 1x33x33x12 d2 had been 17.7 vs 15.5 on an earlier VM)."""
    if (kh, kw) != (3, 3) or not _flat_rows_fit(channels, itemsize, stride_h, stride_w, pad_top, pad_left):
        return False
    channel_bytes = channels * itemsize
    return channel_bytes <= FEW_CHANNELS_3X3_BYTES or (
        (dil_h > 1 or dil_w > 1) and n_chunks == 1 and channel_bytes <= FEW_CHANNELS_3X3_DILATED_BYTES)


def _forward(x: np.ndarray, w3: np.ndarray, out: np.ndarray, stride_h: int, stride_w: int, dil_h: int, dil_w: int,
             pad_top: int, pad_left: int, multiplier_pass: bool = False, multiplier: int = 1) -> None:
    """``out = depthwise(x, w3)``, multiplier 1; pads may be negative (crop).  ``out`` is best
    allocated at ``x``'s offset from a cache line (:func:`~sepconv.fast.aligned.empty_like_offset`).
    ``multiplier_pass``: ``x`` (or ``out``) is a channel-multiplier copy the calling thread has just
    written (or will read), see :func:`_forward_chunks`.  ``multiplier > 1``: ``x`` is not repeated yet
    (``w3`` and ``out`` have ``multiplier`` times its channels): the flat-row kernel's padded copy repeats
    it, other kernels take :func:`_repeated`."""
    in_shape = x.shape if multiplier == 1 else (*x.shape[:3], x.shape[3] * multiplier)
    _forward_launch(in_shape, out.shape, x.dtype, w3.shape[0], w3.shape[1], stride_h, stride_w, dil_h, dil_w,
                    pad_top, pad_left, multiplier_pass, _split_settings(), multiplier)(x, w3, out)


def _split_settings() -> tuple:
    """What the thread split depends on besides the shapes: the thresholds above and the thread count."""
    return (PARALLEL_MIN_MACS, NHWC_PARALLEL_MIN_MACS, PACKED_PARALLEL_MIN_MACS_SHARE, PARALLEL_MIN_BYTES,
            PARALLEL_MIN_ROWS, thread_count(), FETCH_AHEAD_MIN_BYTES, FETCH_AHEAD_5X5_S2_MIN_BYTES,
            FETCH_AHEAD_S2_INPUT_GRADIENT_MIN_BYTES, DIRECT_3X3_S2_MAX_IMAGE_BYTES, WINOGRAD_3X3, WINOGRAD_3X3_MAX_BYTES,
            WINOGRAD_3X3_FILTER_GRADIENT, WINOGRAD_3X3_FILTER_GRADIENT_MAX_BYTES)


@functools.lru_cache(maxsize=256)
def _forward_launch(in_shape: tuple[int, ...], out_shape: tuple[int, ...], dtype: np.dtype, kh: int, kw: int,
                    stride_h: int, stride_w: int, dil_h: int, dil_w: int, pad_top: int, pad_left: int,
                    multiplier_pass: bool, split_settings: tuple[int, ...], multiplier: int = 1, folded: bool = False):
    """What :func:`_forward` runs for arrays of these shapes: ``launch(x, w3, out)``, the kernel and its
    thread split chosen once per geometry and :func:`_split_settings` (the choice cost ~1.5 us a call, a
    sixth of a small layer's).  ``folded``: the shapes are a dilated layer's folded rows (:func:`_folded_dilation`),
    which go to the general kernel's undilated loops, not to the direct 3x3 kernel."""
    d = _folded_dilation(in_shape, out_shape, dtype.itemsize, kh, kw, stride_h, stride_w, dil_w, pad_left,
                         multiplier_pass or multiplier > 1)
    if d and _folded_rows(in_shape, out_shape, stride_h, dil_w, pad_left):
        fold_chunks = _forward_chunks(in_shape, out_shape, dtype.itemsize, kh, kw, stride_w, dil_h, dil_w,
                                      multiplier_pass)
        fold_zero_row = np.zeros(in_shape[2:], dtype)  # kept: a fresh one cost ~15 us on 1x33x33x960

        def launch(x, w3, out):  # (the pairs by Winograd's: _folded_dilation folds only there)
            with PARALLEL_LAUNCH:
                kernels.depthwise_nhwc_forward_3x3_folded_parallel(x, _tiled_filter(w3, d), out, fold_zero_row,
                                                                   fold_chunks, dil_h, d, pad_top)
        return launch
    if d:
        folded_in = (*in_shape[:2], in_shape[2] // d, in_shape[3] * d)
        folded_out = (*out_shape[:2], out_shape[2] // d, out_shape[3] * d)
        folded_launch = _forward_launch(folded_in, folded_out, dtype, kh, kw, stride_h, 1, dil_h, 1, pad_top,
                                        pad_left // d, multiplier_pass, split_settings, folded=True)

        def launch(x, w3, out):  # views of the same memory (C-contiguous, as every launch's arrays)
            assert x.flags.c_contiguous and out.flags.c_contiguous
            folded_launch(x.reshape(folded_in), _tiled_filter(w3, d), out.reshape(folded_out))
        return launch
    args = (stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)
    rows = out_shape[0] * out_shape[1]
    itemsize = dtype.itemsize
    nbytes = (math.prod(in_shape) + math.prod(out_shape)) * itemsize  # what the kernels stream
    n_chunks = _forward_chunks(in_shape, out_shape, itemsize, kh, kw, stride_w, dil_h, dil_w, multiplier_pass)
    channels = in_shape[3]
    packed_rows = _packed(in_shape, itemsize, kh, kw, stride_w, dil_h, dil_w)
    flat_rows = not packed_rows and (
        _few_channels(channels, itemsize, kh, kw, stride_h, stride_w, pad_top, pad_left)
        or _few_channels_3x3(channels, itemsize, kh, kw, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, n_chunks))
    padded_width = max(pad_left + in_shape[2], out_shape[2] + (kw - 1) * dil_w)
    if padded_width == in_shape[2] or (kw - 1) * dil_w < FEW_CHANNELS_PADDED_MIN_REACH:
        padded_width = 0  # no copy: no horizontal padding, or a narrow window (the masked edge pixels cost less)
    if multiplier > 1 and not (flat_rows and padded_width):  # the other kernels read the repeated input
        repeated_launch = _forward_launch(in_shape, out_shape, dtype, kh, kw, *args, multiplier_pass, split_settings)

        def launch(x, w3, out):
            repeated_launch(_repeated(x, multiplier), w3, out)
        return launch
    def chunks_of_short_images_too(units: int) -> int:
        """The split of the kernels below over ``units`` (rows or items), short images split too (the direct 3x3
        kernel, 1x7x7x960, 2 threads: 43 us on one)."""
        return _n_chunks(units, rows * out_shape[2] * _whole_vectors(channels, itemsize) * kh * kw,
                         nbytes, 0, _nhwc_min_macs(multiplier_pass))

    if multiplier == 1 and not folded and (_direct_3x3(in_shape, itemsize, kh, kw, stride_w, dil_h, dil_w,
                                                       multiplier_pass) or (
            not multiplier_pass and _direct_3x3_small(in_shape, itemsize, kh, kw, stride_h, stride_w, dil_h, dil_w))):
        direct_chunks = chunks_of_short_images_too(rows)
        stream = _streamed_output(in_shape, out_shape, itemsize)
        aligned = in_shape[3] * itemsize >= DIRECT_3X3_ALIGNED_MIN_PIXEL_BYTES

        if direct_chunks == 1:  # no parallel launch: ~1.8 us less (1x3x3x256, 1x7x7x160)
            def launch(x, w3, out):
                direct_3x3.depthwise_nhwc_forward_3x3_direct_rows(x, w3, out, 0, rows, *args,
                                                                  stream and out.ctypes.data % VECTOR_BYTES == 0,
                                                                  aligned)
            return launch

        def launch(x, w3, out):
            with PARALLEL_LAUNCH:  # past the caches only from a line (else a fault)
                direct_3x3.depthwise_nhwc_forward_3x3_direct_parallel(
                    x, w3, out, direct_chunks, *args, stream and out.ctypes.data % VECTOR_BYTES == 0, aligned)
        return launch
    if multiplier == 1 and _direct_5x5_avx2(in_shape, out_shape, itemsize, kh, kw, stride_w, dil_w):
        avx2_chunks = chunks_of_short_images_too(rows)
        whole = DIRECT_5X5_AVX2_WHOLE_VECTORS and in_shape[3] * itemsize >= VECTOR_BYTES
        if avx2_chunks == 1:
            def launch(x, w3, out):
                direct_5x5_avx2.depthwise_nhwc_forward_5x5_avx2_rows(x, w3, out, 0, rows, *args, whole)
            return launch

        def launch(x, w3, out):
            with PARALLEL_LAUNCH:
                direct_5x5_avx2.depthwise_nhwc_forward_5x5_avx2_parallel(x, w3, out, avx2_chunks, *args, whole)
        return launch
    if multiplier == 1 and _small_image(in_shape, itemsize, kh, kw, stride_h, stride_w, dil_h, dil_w):
        group = _small_image_group(in_shape, stride_w)
        lane_count = VECTOR_BYTES // itemsize
        images_groups = in_shape[0] * -(-in_shape[3] // (group * lane_count))
        band_rows = _small_image_band_rows(in_shape, out_shape[1], kh, stride_h, stride_w, dil_h, group,
                                           images_groups)
        small_chunks = chunks_of_short_images_too(images_groups * -(-out_shape[1] // band_rows))
        steps = (small_image.WHOLE_VECTOR_STEPS if SMALL_IMAGE_WHOLE_STEPS
                 else small_image.HALF_VECTOR_STEPS if SMALL_IMAGE_HALF_STEPS else small_image.FOUR_PIXEL_STEPS)
        if small_chunks == 1:  # on this thread: bands for L2 only, no parallel launch (1x9x9x120 7x7 VALID: 15 -> 10.5 us)
            band_rows = _small_image_band_rows(in_shape, out_shape[1], kh, stride_h, stride_w, dil_h, group,
                                               images_groups, threads=1)
            items = images_groups * -(-out_shape[1] // band_rows)

            def launch(x, w3, out):
                small_image.depthwise_nhwc_forward_small_image_items(x, w3, out, 0, items, group, band_rows, *args,
                                                                     steps)
            launch.family = "small_image"
            return launch

        def launch(x, w3, out):
            with PARALLEL_LAUNCH:
                small_image.depthwise_nhwc_forward_small_image_parallel(x, w3, out, small_chunks, group, band_rows,
                                                                        *args, steps)
        launch.family = "small_image"  # (forward_kernel_family)
        return launch
    if _direct_7x7_s2(in_shape, out_shape, itemsize, kh, kw, stride_w, dil_h, dil_w):
        def launch(x, w3, out):
            with PARALLEL_LAUNCH:
                direct_7x7_s2.depthwise_nhwc_forward_7x7_s2_direct_parallel(x, w3, out, n_chunks, stride_h, pad_top,
                                                                            pad_left)
        return launch
    if _direct_5x5(in_shape, out_shape, itemsize, kh, kw, stride_w, dil_w) and stride_w == 2:
        fetch = nbytes >= FETCH_AHEAD_5X5_S2_MIN_BYTES

        def launch(x, w3, out):
            with PARALLEL_LAUNCH:
                direct_5x5.depthwise_nhwc_forward_5x5_direct_s2_parallel(x, w3, out, n_chunks, stride_h, dil_h, pad_top,
                                                                         pad_left, fetch)
        return launch
    if _direct_5x5(in_shape, out_shape, itemsize, kh, kw, stride_w, dil_w):  # horizontal stride 1
        direct_args = (stride_h, dil_h, dil_w, pad_top, pad_left)

        def launch(x, w3, out):
            with PARALLEL_LAUNCH:
                direct_5x5.depthwise_nhwc_forward_5x5_direct_parallel(x, w3, out, n_chunks, *direct_args)
        return launch
    if packed_rows:
        if n_chunks > 1:
            def launch(x, w3, out):
                with PARALLEL_LAUNCH:
                    packed.depthwise_nhwc_forward_packed_parallel(x, w3, out, n_chunks, *args)
        else:
            def launch(x, w3, out):
                packed.depthwise_nhwc_forward_packed_rows(x, w3, out, 0, rows, *args)
        launch.family = "packed"  # (forward_kernel_family)
        return launch
    if flat_rows:
        flat_chunks = _forward_chunks(in_shape, out_shape, itemsize, kh, kw, stride_w, dil_h, dil_w, multiplier_pass,
                                      whole_vectors=False)
        lane_count = VECTOR_BYTES // itemsize
        tiled_shape = (kh * kw, channels // math.gcd(channels, lane_count) * lane_count)
        few_args = (kh, dil_h, dil_w, pad_top, pad_left)
        buffers_shape = (flat_chunks, in_shape[1] * padded_width * channels)
        no_buffers = np.empty(buffers_shape, dtype) if padded_width == 0 else None  # nothing to copy: ~1 us less

        def launch(x, w3, out):
            w2 = w3.reshape(kh * kw, channels)
            wt = workspace("tiled_weights", tiled_shape, dtype)
            kernels.tile_weights(w2, wt)
            buffers = workspace("padded_image", buffers_shape, dtype, like=x) if no_buffers is None else no_buffers
            if flat_chunks > 1:
                with PARALLEL_LAUNCH:
                    kernels.depthwise_nhwc_forward_few_channels_parallel(x, wt, w2, out, buffers, *few_args)
            else:
                kernels.depthwise_nhwc_forward_few_channels_padded_rows(x, wt, w2, out, buffers[0], 0, rows,
                                                                         *few_args)
        return launch
    zero_row = _plan_zero_row(in_shape[2:], dtype)
    fetch = _fetch_ahead(nbytes)
    winograd = _winograd(nbytes)
    if n_chunks > 1:
        def launch(x, w3, out):
            with PARALLEL_LAUNCH:
                kernels.depthwise_nhwc_forward_parallel(x, w3, out, zero_row(), n_chunks, *args, fetch, winograd)
        return launch
    if kh == 3 and kw == 3:
        def launch(x, w3, out):
            kernels.depthwise_nhwc_forward_3x3_rows(x, w3, out, zero_row(), 0, rows, *args, fetch, winograd)
        return launch
    elif kh == 5 and kw == 5:
        rows_kernel = kernels.depthwise_nhwc_forward_5x5_rows
    else:
        rows_kernel = kernels.depthwise_nhwc_forward_rows

    def launch(x, w3, out):  # the zero row: read for filter rows in the padding
        rows_kernel(x, w3, out, zero_row(), 0, rows, *args)
    return launch


def forward_kernel_family(in_shape: tuple[int, ...], dtype: np.dtype, g: Conv2DGeometry) -> str | None:
    """Which kernels the forward plan of this geometry (multiplier 1) runs on the input as it is: ``"packed"``
    (:mod:`sepconv.kernels.depthwise_packed`), ``"small_image"`` (:mod:`sepconv.kernels.depthwise_small_image`), or
    None for the others (the separable op's packed plan, :mod:`sepconv.fast.separable`, takes the place of the first
    two).

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.geometry import depthwise_geometry
    >>> g = depthwise_geometry("depthwise_conv2d", (1, 28, 28, 64), (3, 3, 64, 1), 1, "SAME")
    >>> forward_kernel_family((1, 28, 28, 64), np.dtype(np.float32), g) is None  # 3x3: the direct kernels
    True
    """
    if g.multiplier != 1:
        return None
    shape = (in_shape[0], g.out_h, g.out_w, g.out_c)
    launch = _forward_launch(tuple(in_shape), shape, dtype, g.kh, g.kw, *_geometry_ints(g), False, _split_settings(), 1)
    return getattr(launch, "family", None)


def depthwise_conv2d(x: np.ndarray, w: np.ndarray, g: Conv2DGeometry, scratch: str | None = None,
                     finite: bool = False) -> np.ndarray:
    """Depthwise forward: ``x [N, H, W, C]``, ``w [kh, kw, C, M]`` -> ``[N, out_h, out_w, C*M]``; in this
    thread's workspace ``scratch`` if given (for a caller that copies the result before its next call);
    ``finite``: the caller has checked that every value of ``w`` is finite.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.geometry import depthwise_geometry
    >>> x, w = np.ones((1, 5, 5, 2), np.float32), np.ones((3, 3, 2, 1), np.float32)
    >>> g = depthwise_geometry("depthwise_conv2d", x.shape, w.shape, 1, "SAME")
    >>> float(depthwise_conv2d(x, w, g)[0, 2, 2, 0])
    9.0
    """
    w3 = _filter_per_channel(w)
    if not finite and not kernels.all_finite(w3):
        return reference.depthwise_conv2d(x, w, g)
    if _few_channels_through_nchw(g, x.itemsize):
        out = depthwise_conv2d_nchw(_nchw_copy(x, "nhwc_input"), w, g)
        return _nhwc_result(out, scratch)
    x = np.ascontiguousarray(x)
    return _forward_plan(x.shape, x.dtype, g, _plan_settings())(x, w3, scratch)


# Layers of at most FEW_CHANNELS_NCHW_BYTES of channels a pixel (four float32) at stride 2 (undilated, multiplier 1),
# output planes of at least FEW_CHANNELS_NCHW_MIN_PIXELS, take the native NCHW kernels (vectors along a row) through
# whole-array transposes (sepconv.fast.layout's few-channel copies, a few us), forward and input gradient: in NHWC a
# vector of channels is mostly empty.  Zen 3 VM, 2 threads, one process, us, NHWC -> native NCHW on NCHW arrays
# (before the transposes): input gradient 1x112x112x3 3x3 116 -> 28, 1x64x64x4 3x3 47 -> 21, 1x56x56x3 7x7 54 -> 27,
# 4x56x56x3 3x3 135 -> 41, 2x64x64x4 7x7 VALID 156 -> 44, 1x48x48x4 5x5 42 -> 24, 1x64x64x2 27 -> 18; forward
# 1x224x224x3 3x3 213 -> 61, 1x112x112x3 44 -> 28, 1x64x64x4 34 -> 17, 1x56x56x3 7x7 61 -> 23, 4x56x56x3 78 -> 35.
# Not smaller planes (1x30x30x3 5x5 20.3 -> 19.3 and 1x40x40x3 3x3 21.7 -> 19.6, input gradient; 1x40x40x3 forward
# 14.6 -> 15.8), nor more channels (1x64x64x6 27.5 -> 22.7, 4x40x40x6 87 -> 95, 2x33x33x8 22 -> 65), nor the filter
# gradient (1x48x48x4 3x3 33 -> 45, though 1x64x64x4 5x5 63 -> 30).
FEW_CHANNELS_NCHW_BYTES = 16
FEW_CHANNELS_NCHW_MIN_PIXELS = 512


def _few_channels_through_nchw(g: Conv2DGeometry, itemsize: int) -> bool:
    """Whether an NHWC forward or input gradient goes through the native NCHW kernels (see above)."""
    return (tuned(itemsize) and g.in_c * itemsize <= FEW_CHANNELS_NCHW_BYTES and g.multiplier == 1
            and (g.stride_h, g.stride_w, g.dil_h, g.dil_w) == (2, 2, 1, 1)
            and g.out_h * g.out_w >= FEW_CHANNELS_NCHW_MIN_PIXELS)


def _nchw_copy(a: np.ndarray, name: str) -> np.ndarray:
    """An NHWC operand as NCHW, in this thread's workspace ``name`` (as :func:`_nhwc_copy`)."""
    n, h, w, c = a.shape
    return nhwc_to_nchw(a, workspace(name, (n, c, h, w), a.dtype))


def _nhwc_result(a: np.ndarray, scratch: str | None) -> np.ndarray:
    """An NCHW result as a new NHWC array, or in this thread's workspace ``scratch`` if given."""
    n, c, h, w = a.shape
    return nchw_to_nhwc(a, None if scratch is None else workspace(scratch, (n, h, w, c), a.dtype))


def _plan_settings() -> tuple[int, ...]:
    """:func:`_split_settings` and the multiplier band settings: what a forward plan depends on besides the call."""
    return (*_split_settings(), MULTIPLIER_BAND_BYTES, MULTIPLIER_BAND_MIN_REUSE)


@functools.lru_cache(maxsize=256)
def _forward_plan(in_shape: tuple[int, ...], dtype: np.dtype, g: Conv2DGeometry, settings: tuple[int, ...]):
    """``run(x, w3, scratch) -> out``: the forward's output allocation and launch for one geometry, chosen
    once (four arguments to look up instead of the launch's fourteen and the choices before it: 1x15x15x3
    multiplier 4 stride 2 9.0 -> 7.3 us)."""
    shape = (in_shape[0], g.out_h, g.out_w, g.out_c)
    if g.multiplier > 1 and _multiplier_forward_in_bands(in_shape, dtype.itemsize, g):
        multiplier_launch = _forward_multiplier_launch(in_shape, shape, dtype, g.kh, g.kw, *_geometry_ints(g), settings)

        def run(x, w3, scratch):
            out = empty_aligned(shape, dtype) if scratch is None else workspace(scratch, shape, dtype)
            multiplier_launch(x, w3, out)
            return out
        return run
    repeated_shape = in_shape if g.multiplier == 1 else (*in_shape[:3], in_shape[3] * g.multiplier)
    launch = _forward_launch(repeated_shape, shape, dtype, g.kh, g.kw, *_geometry_ints(g), g.multiplier > 1,
                             settings[:-2], g.multiplier)  # the split settings (no band settings)
    output_on_line = not _folded_dilation(repeated_shape, shape, dtype.itemsize, g.kh, g.kw, g.stride_h, g.stride_w,
                                          g.dil_w, g.pad_left, g.multiplier > 1) and (
        _small_image(repeated_shape, dtype.itemsize, g.kh, g.kw, g.stride_h, g.stride_w, g.dil_h, g.dil_w)
        or _direct_3x3(repeated_shape, dtype.itemsize, g.kh, g.kw, g.stride_w, g.dil_h, g.dil_w, g.multiplier > 1))
    if g.multiplier == 1 and not output_on_line and (
            _direct_5x5(repeated_shape, shape, dtype.itemsize, g.kh, g.kw, g.stride_w, g.dil_w)
            or _direct_7x7_s2(repeated_shape, shape, dtype.itemsize, g.kh, g.kw, g.stride_w, g.dil_h, g.dil_w)):
        on_line = _direct_5x5_whole_blocks(g.out_c, dtype.itemsize)

        def run(x, w3, scratch):
            out = (empty_apart_from(shape, dtype, x, on_line) if scratch is None
                   else workspace(scratch, shape, dtype, like=x))
            launch(x, w3, out)
            return out
        return run
    if output_on_line or _packed(repeated_shape, dtype.itemsize, g.kh, g.kw, g.stride_w, g.dil_h, g.dil_w):
        def run(x, w3, scratch):
            out = _packed_output(shape, dtype, scratch)
            launch(x, w3, out)
            return out
        return run

    placed = empty_apart_from if g.multiplier == 1 else empty_like_offset

    def run(x, w3, scratch):
        out = placed(shape, dtype, x) if scratch is None else workspace(scratch, shape, dtype, like=x)
        launch(x, w3, out)
        return out
    return run


@functools.lru_cache(maxsize=256)
def _forward_multiplier_launch(in_shape: tuple[int, ...], out_shape: tuple[int, ...], dtype: np.dtype, kh: int,
                               kw: int, stride_h: int, stride_w: int, dil_h: int, dil_w: int, pad_top: int,
                               pad_left: int, settings: tuple[int, ...]):
    """What the forward with a channel multiplier runs, the input repeated band by band: ``launch(x, w3, out)``,
    chosen once per geometry and ``settings`` (:func:`_split_settings` and the band settings); ``out`` best
    placed at a line's start (the buffers')."""
    args = (stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)
    itemsize = dtype.itemsize
    repeated_shape = (*in_shape[:3], out_shape[3])
    n_chunks = _forward_chunks(repeated_shape, out_shape, itemsize, kh, kw, stride_w, dil_h, dil_w)
    band_rows, band_values = _multiplier_bands(in_shape, out_shape, itemsize, kh, stride_h, dil_h, n_chunks)
    bands = in_shape[0] * -(-out_shape[1] // band_rows)
    if _packed(repeated_shape, itemsize, kh, kw, stride_w, dil_h, dil_w):
        rows_kernel = multiplier_kernels.PACKED_ROWS
    elif _direct_3x3(repeated_shape, itemsize, kh, kw, stride_w, dil_h, dil_w, True):
        rows_kernel = multiplier_kernels.DIRECT_3X3_ROWS
    else:
        rows_kernel = multiplier_kernels.ROWS
    row_shape = (in_shape[2], out_shape[3])

    def launch(x, w3, out):
        buffers = workspace("repeated_input_bands", (n_chunks, band_values), dtype)
        zero_row = _zero_row(row_shape, dtype)
        if n_chunks == 1:
            multiplier_kernels.depthwise_nhwc_forward_multiplier_bands(x, w3, out, buffers[0], zero_row, 0, bands,
                                                                       band_rows, rows_kernel, *args)
        else:
            with PARALLEL_LAUNCH:
                multiplier_kernels.depthwise_nhwc_forward_multiplier_parallel(x, w3, out, buffers, zero_row,
                                                                              band_rows, rows_kernel, *args)
    return launch


def _flipped(w3: np.ndarray) -> np.ndarray:
    """``w3 [kh, kw, C]`` rotated by 180 degrees: the stride-1 input gradient is the forward correlation of
    ``dy`` with it (padding ``(k - 1) * dilation - pad``)."""
    return np.ascontiguousarray(w3[::-1, ::-1])


def _checked_filter_gradient(dw: np.ndarray, x: np.ndarray, dy: np.ndarray, g: Conv2DGeometry,
                             nchw: bool = False) -> np.ndarray:
    """The kernels' filter gradient ``dw`` (reshaped to the filter), or the reference's where they can differ:
    a non-finite ``out_backprop`` shows up in ``dw``, except at a pixel whose whole window is padding.
    ``x`` and ``dy`` in NCHW when ``nchw``."""
    dw = dw.reshape(g.filter_shape)
    if not kernels.all_finite(dw) or (_has_window_in_padding(g) and not np.isfinite(dy).all()):
        if nchw:
            x, dy = nchw_to_nhwc(x), nchw_to_nhwc(dy)
        return reference.depthwise_conv2d_backprop_filter(x, dy, g)
    return dw


def depthwise_conv2d_backprop_input(w: np.ndarray, dy: np.ndarray, g: Conv2DGeometry,
                                    scratch: str | None = None) -> np.ndarray:
    """Input gradient: ``w [kh, kw, C, M]``, ``dy [N, out_h, out_w, C*M]`` -> ``[N, H, W, C]``; in this
    thread's workspace ``scratch`` if given (as :func:`depthwise_conv2d`).

    With stride 1 it is the forward correlation of ``dy`` with the flipped filter (padding
    ``(k - 1) * dilation - pad``); undilated 3x3 and 5x5 filters with stride 2 take the parity
    kernels (each input pixel one expression of the taps that reach it), as do filters 7 wide; otherwise each input
    pixel gathers the outputs that read it, tap by tap.
    With a multiplier, the ``C*M``-channel gradient is summed over the multiplier, band by band of ``dx`` rows
    (one process, 2 threads, alternating, whole gradient / bands, us: 1x58x58x96 3x3 stride 2 multiplier 6
    453 / 195, 4x54x54x48 3x3 m4 717 / 432, 2x65x65x32 5x5 dilation 2 m2 363 / 279, 1x37x37x24 3x3 s2 m2
    44 / 28; 12-27 us layers 2-6% faster).

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.geometry import depthwise_geometry
    >>> w, dy = np.ones((3, 3, 2, 1)), np.ones((1, 5, 5, 2))
    >>> g = depthwise_geometry("depthwise_conv2d_backprop_input", (1, 5, 5, 2), w.shape, 1, "SAME")
    >>> float(depthwise_conv2d_backprop_input(w, dy, g)[0, 2, 2, 0])
    9.0
    """
    w3 = _filter_per_channel(w)
    if not kernels.all_finite(w3):
        return reference.depthwise_conv2d_backprop_input(w, dy, g)
    if _few_channels_through_nchw(g, dy.itemsize):
        dx = depthwise_conv2d_backprop_input_nchw(w, _nchw_copy(dy, "nhwc_output_gradient"), g)
        return _nhwc_result(dx, scratch)
    dy = np.ascontiguousarray(dy)
    return _input_gradient_plan(dy.shape, dy.dtype, g, _input_gradient_settings())(w3, dy, scratch)


def _input_gradient_settings() -> tuple:
    """What an input-gradient plan depends on besides the call: :func:`_split_settings`, the band size and
    the kernel choices' settings."""
    return (*_split_settings(), MULTIPLIER_BAND_BYTES, S2_W7_PARITY, STRIDED_SIMD_MIN_TAPS, STRIDED_SIMD_MIN_COLUMNS)


@functools.lru_cache(maxsize=256)
def _input_gradient_plan(dy_shape: tuple[int, ...], dtype: np.dtype, g: Conv2DGeometry, settings: tuple):
    """``run(w3, dy, scratch) -> dx``: the input gradient's allocation, kernel and thread split for one
    geometry, chosen once (as :func:`_forward_plan`: 1x13x13x8 stride 2, the implementation function
    4.2 -> 3.3 us).  The kernels are looked up when they run, not when the plan is made."""
    n = dy_shape[0]
    m = g.multiplier
    dx_shape = (n, g.in_h, g.in_w, g.in_c)
    if m > 1 and _multiplier_gradient_in_bands(dtype.itemsize, g):
        band_settings = settings[:len(_split_settings()) + 2]  # _split_settings(), MULTIPLIER_BAND_BYTES, S2_W7_PARITY
        multiplier_launch = _input_gradient_multiplier_launch(dy_shape, dx_shape, dtype, g.kh, g.kw,
                                                              *_geometry_ints(g), _strided_simd(g), band_settings)

        def run(w3, dy, scratch):
            dx = recycled.empty(dx_shape, dtype) if scratch is None else workspace(scratch, dx_shape, dtype)
            multiplier_launch(w3, dy, dx)
            return dx
        return run
    shape = (n, g.in_h, g.in_w, g.out_c)  # the C*M-channel gradient (C with multiplier 1)
    launch = _input_gradient_launch(dy_shape, shape, dtype, g, settings)
    output_on_line = m == 1 and g.stride_h == g.stride_w == 1 and not _folded_dilation(
        dy_shape, shape, dtype.itemsize, g.kh, g.kw, 1, 1, g.dil_w, (g.kw - 1) * g.dil_w - g.pad_left) and (
        _small_image(dy_shape, dtype.itemsize, g.kh, g.kw, 1, 1, g.dil_h, g.dil_w)
        or _direct_3x3(dy_shape, dtype.itemsize, g.kh, g.kw, 1, g.dil_h, g.dil_w))
    if (m == 1 and g.stride_h == g.stride_w == 1 and not output_on_line
            and _direct_5x5(dy_shape, shape, dtype.itemsize, g.kh, g.kw, 1, g.dil_w)):
        on_line = _direct_5x5_whole_blocks(g.out_c, dtype.itemsize)

        def run(w3, dy, scratch):  # the direct forward of dy
            dx = (empty_apart_from(shape, dtype, dy, on_line) if scratch is None
                  else workspace(scratch, shape, dtype, like=dy))
            launch(w3, dy, dx)
            return dx
        return run
    if output_on_line or (m == 1 and g.stride_h == g.stride_w == 1
                          and _packed(dy_shape, dtype.itemsize, g.kh, g.kw, 1, g.dil_h, g.dil_w)):
        def run(w3, dy, scratch):  # the packed (or small-image) forward of dy
            dx = _packed_output(shape, dtype, scratch)
            launch(w3, dy, dx)
            return dx
        return run
    if m == 1:
        def run(w3, dy, scratch):
            dx = empty_apart_from(shape, dtype, dy) if scratch is None else workspace(scratch, shape, dtype, like=dy)
            launch(w3, dy, dx)
            return dx
        return run
    sum_chunks = _copy_chunks(math.prod(shape))

    def run(w3, dy, scratch):
        dx = workspace("repeated_input_gradient", shape, dtype, like=dy)
        launch(w3, dy, dx)
        summed = recycled.empty(dx_shape, dtype) if scratch is None else workspace(scratch, dx_shape, dtype)
        if sum_chunks == 1:
            kernels.sum_over_multiplier_flat(dx.reshape(-1), summed.reshape(-1), m, 0, summed.size)
        else:
            with PARALLEL_LAUNCH:
                kernels.sum_over_multiplier_parallel(dx.reshape(-1), summed.reshape(-1), m, sum_chunks)
        return summed
    return run


def _input_gradient_launch(dy_shape: tuple[int, ...], dx_shape: tuple[int, ...], dtype: np.dtype, g: Conv2DGeometry,
                           settings: tuple):
    """``launch(w3, dy, dx)``: the multiplier-1 kernels of the input gradient into ``dx`` of ``dx_shape``
    (``C*M`` channels, for :func:`_input_gradient_plan`)."""
    m = g.multiplier
    if g.stride_h == 1 and g.stride_w == 1:
        split_settings = settings[:len(_split_settings())]
        forward_launch = _forward_launch(dy_shape, dx_shape, dtype, g.kh, g.kw, 1, 1, g.dil_h, g.dil_w,
                                         (g.kh - 1) * g.dil_h - g.pad_top, (g.kw - 1) * g.dil_w - g.pad_left, m > 1,
                                         split_settings)

        def launch(w3, dy, dx):
            forward_launch(dy, _flipped(w3), dx)
        return launch
    rows = dx_shape[0] * g.in_h
    itemsize = dtype.itemsize
    work = math.prod(dy_shape[:3]) * _whole_vectors(dy_shape[3], itemsize) * g.kh * g.kw
    n_chunks = _n_chunks(rows, work, (math.prod(dy_shape) + math.prod(dx_shape)) * itemsize,
                         min_macs=_nhwc_min_macs(m > 1))
    if _direct_5x5_avx2_s2_input_gradient(dy_shape, itemsize, g.kh, g.kw, *_geometry_ints(g)[:4]):
        pad_top, pad_left = g.pad_top, g.pad_left
        whole = DIRECT_5X5_AVX2_WHOLE_VECTORS and dy_shape[3] * itemsize >= VECTOR_BYTES
        if n_chunks == 1:
            def launch(w3, dy, dx):
                direct_5x5_avx2.depthwise_nhwc_backprop_input_5x5_s2_avx2_rows(w3, dy, dx, 0, rows, pad_top, pad_left,
                                                                               whole)
            return launch

        def launch(w3, dy, dx):
            with PARALLEL_LAUNCH:
                direct_5x5_avx2.depthwise_nhwc_backprop_input_5x5_s2_avx2_parallel(w3, dy, dx, n_chunks, pad_top,
                                                                                   pad_left, whole)
        return launch
    if _direct_3x3_s2_input_gradient(dy_shape, itemsize, g.kh, g.kw, *_geometry_ints(g)[:4]):
        pad_top, pad_left = g.pad_top, g.pad_left
        if n_chunks == 1:
            def launch(w3, dy, dx):
                direct_3x3.depthwise_nhwc_backprop_input_3x3_s2_direct_rows(w3, dy, dx, 0, rows, pad_top, pad_left)
            return launch

        def launch(w3, dy, dx):
            with PARALLEL_LAUNCH:
                direct_3x3.depthwise_nhwc_backprop_input_3x3_s2_direct_parallel(w3, dy, dx, n_chunks, pad_top, pad_left)
        return launch
    if _parity_kernel(g.kh, g.kw, g.stride_h, g.stride_w, g.dil_h, g.dil_w):
        pad_top, pad_left = g.pad_top, g.pad_left
        zero_row = _plan_zero_row(dy_shape[2:], dtype)
        fetch = (math.prod(dy_shape) + math.prod(dx_shape)) * itemsize >= FETCH_AHEAD_S2_INPUT_GRADIENT_MIN_BYTES
        if n_chunks > 1:
            def launch(w3, dy, dx):
                with PARALLEL_LAUNCH:
                    kernels.depthwise_nhwc_backprop_input_s2_parallel(w3, dy, dx, zero_row(), n_chunks, pad_top,
                                                                      pad_left, fetch)
        elif g.kw == 7:
            def launch(w3, dy, dx):
                kernels.depthwise_nhwc_backprop_input_s2_w7_rows(w3, dy, dx, 0, rows, pad_top, pad_left)
        elif g.kh == 3:
            def launch(w3, dy, dx):
                kernels.depthwise_nhwc_backprop_input_s2_3x3_rows(w3, dy, dx, zero_row(), 0, rows, pad_top, pad_left,
                                                                  fetch)
        else:
            def launch(w3, dy, dx):
                kernels.depthwise_nhwc_backprop_input_s2_5x5_rows(w3, dy, dx, zero_row(), 0, rows, pad_top, pad_left)
        return launch
    if _strided_simd(g):  # each pixel's sum in a register
        args = (g.stride_h, g.stride_w, g.pad_top, g.pad_left)
        if n_chunks == 1:
            def launch(w3, dy, dx):
                kernels.depthwise_nhwc_backprop_input_strided_simd_rows(w3, dy, dx, 0, rows, *args)
        else:
            def launch(w3, dy, dx):
                with PARALLEL_LAUNCH:
                    kernels.depthwise_nhwc_backprop_input_strided_simd_parallel(w3, dy, dx, n_chunks, *args)
        return launch
    args = _geometry_ints(g)  # tap by tap, accumulated in the dx row
    if n_chunks == 1:
        def launch(w3, dy, dx):
            kernels.depthwise_nhwc_backprop_input_strided_rows(w3, dy, dx, 0, rows, *args)
    else:
        def launch(w3, dy, dx):
            with PARALLEL_LAUNCH:
                kernels.depthwise_nhwc_backprop_input_strided_parallel(w3, dy, dx, n_chunks, *args)
    return launch


@functools.lru_cache(maxsize=256)
def _input_gradient_multiplier_launch(dy_shape: tuple[int, ...], dx_shape: tuple[int, ...], dtype: np.dtype, kh: int,
                                      kw: int, stride_h: int, stride_w: int, dil_h: int, dil_w: int, pad_top: int,
                                      pad_left: int, strided_simd: bool, settings: tuple[int, ...]):
    """What the input gradient with a channel multiplier runs, band by band of ``dx`` rows (the ``C*M``-channel
    gradient of a band in a thread's buffer, then summed over the multiplier): ``launch(w3, dy, dx)``, chosen
    once per geometry and ``settings`` (:func:`_split_settings` and the band size); the rows kernel is the one
    the multiplier-1 problem would take (see :func:`depthwise_conv2d_backprop_input`)."""
    n, in_h, in_w = dx_shape[:3]
    itemsize = dtype.itemsize
    channels = dy_shape[3]
    repeated_shape = (n, in_h, in_w, channels)
    if stride_h == stride_w == 1:  # the forward of dy with the flipped filter
        n_chunks = _forward_chunks(dy_shape, repeated_shape, itemsize, kh, kw, 1, dil_h, dil_w)
        if _packed(dy_shape, itemsize, kh, kw, 1, dil_h, dil_w):
            kind = multiplier_kernels.INPUT_GRADIENT_FORWARD_PACKED
        elif _direct_3x3(dy_shape, itemsize, kh, kw, 1, dil_h, dil_w):
            kind = multiplier_kernels.INPUT_GRADIENT_FORWARD_DIRECT_3X3
        else:
            kind = multiplier_kernels.INPUT_GRADIENT_FORWARD
        pad_top, pad_left = (kh - 1) * dil_h - pad_top, (kw - 1) * dil_w - pad_left
    else:
        work = math.prod(dy_shape[:3]) * _whole_vectors(channels, itemsize) * kh * kw
        n_chunks = _n_chunks(n * in_h, work, (math.prod(dy_shape) + math.prod(repeated_shape)) * itemsize,
                             min_macs=NHWC_PARALLEL_MIN_MACS)
        if _direct_3x3_s2_input_gradient(dy_shape, itemsize, kh, kw, stride_h, stride_w, dil_h, dil_w):
            kind = multiplier_kernels.INPUT_GRADIENT_S2_DIRECT_3X3
        elif _parity_kernel(kh, kw, stride_h, stride_w, dil_h, dil_w):
            kind = multiplier_kernels.INPUT_GRADIENT_S2
        elif strided_simd:
            kind = multiplier_kernels.INPUT_GRADIENT_STRIDED_SIMD
        else:
            kind = multiplier_kernels.INPUT_GRADIENT_STRIDED
    flip = kind in multiplier_kernels.INPUT_GRADIENT_FORWARD_KINDS
    # bands of dx rows, each computed from dy in place: the bands of a 1x1 filter over the C*M-channel gradient
    band_rows, band_values = _multiplier_bands(repeated_shape, repeated_shape, itemsize, 1, 1, 1, n_chunks)
    bands = n * -(-in_h // band_rows)
    buffers_shape = (n_chunks, band_values)
    args = (kind, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)

    def launch(w3, dy, dx):
        buffers = workspace("repeated_input_bands", buffers_shape, dtype)
        zero_row = _zero_row(dy_shape[2:], dtype)
        w = _flipped(w3) if flip else w3
        if n_chunks == 1:
            multiplier_kernels.depthwise_nhwc_backprop_input_multiplier_bands(w, dy, dx, buffers[0], zero_row, 0, bands,
                                                                              band_rows, *args)
        else:
            with PARALLEL_LAUNCH:
                multiplier_kernels.depthwise_nhwc_backprop_input_multiplier_parallel(w, dy, dx, buffers, zero_row,
                                                                                     band_rows, *args)
    return launch


# Filters 7 wide at stride 2 take their parity kernel (kernels.depthwise.depthwise_nhwc_backprop_input_s2_w7_rows,
# four column pairs sharing their dy loads) rather than the register sums below (one process, 2 threads,
# alternating, us: 1x55x55x144 VALID 158 -> 105, 2x29x29x240 142 -> 91, 1x56x56x96 127 -> 81, 8x28x28x144
# 389 -> 260, 1x13x13x32 18.5 -> 11.7, 1x28x28x3 19.6 -> 17.1).
S2_W7_PARITY = True


def _parity_kernel(kh: int, kw: int, stride_h: int, stride_w: int, dil_h: int, dil_w: int) -> bool:
    """Whether the input gradient has a stride-2 parity kernel for this filter: 3x3, 5x5, or 7 wide (any height),
    undilated, stride 2."""
    return ((stride_h, stride_w, dil_h, dil_w) == (2, 2, 1, 1)
            and ((kh == kw and kh in (3, 5)) or (kw == 7 and S2_W7_PARITY)))


# The strided input gradient (no parity kernel of its own) sums each pixel in registers, four pixels at a time
# (depthwise_nhwc_backprop_input_strided_simd_rows), from this many taps per pixel and this many dy columns.
# One thread, us, tap-by-tap rows -> four-pixel sums, 1x28x28x32 SAME: 7x7 stride 2 49.3 -> 19.4, 4x4 s2
# 18.0 -> 8.7, 7x7 s3 25.2 -> 10.4, 9x9 s2 78.7 -> 31.9, 5x5 strides (2, 1) 51.3 -> 15.6; 1x17x17x96 (9
# dy columns): 7x7 s2 31.9 -> 30.3, 4x4 s2 12.6 -> 10.6, 6x6 s2 24.7 -> 26.3; 2x29x29x240 7x7 s2 460 -> 291;
# but one tap per pixel (3x3 stride 3) 4.6 -> 8.2, and 1x17x17x96 5x5 stride 4 (5 dy columns) 6.2 -> 7.9.
STRIDED_SIMD_MIN_TAPS = 4
STRIDED_SIMD_MIN_COLUMNS = 8


def _strided_simd(g: Conv2DGeometry) -> bool:
    """Whether the strided input gradient takes the register-sum kernel (dilation 1, see above)."""
    taps = -(-g.kh // g.stride_h) * -(-g.kw // g.stride_w)
    return (g.dil_h == 1 and g.dil_w == 1 and taps >= STRIDED_SIMD_MIN_TAPS
            and g.out_w >= STRIDED_SIMD_MIN_COLUMNS)


@functools.lru_cache(maxsize=256)
def _has_window_in_padding(g: Conv2DGeometry) -> bool:
    """Whether some output pixel's filter window lies entirely in the padding."""
    def empty_along(out_size: int, in_size: int, k: int, stride: int, dilation: int, pad: int) -> bool:
        for o in range(out_size):
            origin = o * stride - pad
            if not any(0 <= origin + t * dilation < in_size for t in range(k)):
                return True
        return False
    return (empty_along(g.out_h, g.in_h, g.kh, g.stride_h, g.dil_h, g.pad_top)
            or empty_along(g.out_w, g.in_w, g.kw, g.stride_w, g.dil_w, g.pad_left))


def depthwise_conv2d_backprop_filter(x: np.ndarray, dy: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """Filter gradient: ``x [N, H, W, C]``, ``dy [N, out_h, out_w, C*M]`` -> ``[kh, kw, C, M]``.

    Per-thread partial sums over blocks of output rows, then one reduction.  3x3 and 5x5 filters
    keep the sums of a channel block in vector registers along each row of ``dy``.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.geometry import depthwise_geometry
    >>> x, dy = np.ones((2, 5, 5, 3)), np.ones((2, 3, 3, 3))
    >>> g = depthwise_geometry("depthwise_conv2d_backprop_filter", x.shape, (3, 3, 3, 1), 1, "VALID")
    >>> float(depthwise_conv2d_backprop_filter(x, dy, g)[1, 1, 0, 0])
    18.0
    """
    x = np.ascontiguousarray(x)
    dy = np.ascontiguousarray(dy)
    dw = _filter_gradient_plan(x.shape, dy.shape, x.dtype, g, _filter_gradient_settings())(x, dy)
    return _checked_filter_gradient(dw, x, dy, g)


# With FILTER_GRADIENT_AVX2 (CPUs without AVX-512: sepconv.fast.registers) the filter gradient of filters 5 or 7 wide
# over half a vector of channels or more, and of 3-wide ones over half a vector but less than a whole one (the direct
# 3x3 kernel takes a whole one), at horizontal stride 1 (any dilation) or 2 (undilated), takes
# sepconv.kernels.depthwise_filter_gradient_avx2 (a filter row's sums in registers, a window of dy columns rolling
# along the input row) instead of the general kernels, whose 25 sums of whole vectors spill out of AVX2's registers.
# Fortieth session, Zen 3 VM, 2 threads, one process, us, general -> this: 8x14x14x672 5x5 1212-3199 -> 380,
# 1x14x14x672 161-304 -> 66, 8x28x28x240 1810-3480 -> 591, 1x33x33x100 dilation 2 154-234 -> 44; alternating
# processes, 3x3: 1x56x56x8 55 -> 27, 1x112x112x12 182 -> 61, 4x11x11x8 stride 2 28 -> 15, 1x40x40x8 dilation 2 57 ->
# 15, 8x56x56x12 303 -> 99, and with a multiplier (whole, not in bands) 1x56x56x4 M = 2 60 -> 33, 1x28x28x4 M = 3
# 29 -> 22.  Forty-first session, Zen 4 VM (AVX-512 on 256-bit units), 2 threads, alternating, general -> this:
# 8x14x14x672 5x5 861 -> 473, 1x112x112x32 7x7 847 -> 376, 1x65x65x40 5x5 dilation 2 215 -> 81, 2x56x56x144 5x5
# stride 2 210 -> 155, 1x112x112x8 3x3 65 -> 31; but 7x7 filters on rows of 7 or 9 pixels lost (8x7x7x1024 676 ->
# 858, 1x9x9x640 114 -> 133; rows of 10 won, 8x10x10x384 486 -> 271), so there 7-wide filters take it on rows of
# FILTER_GRADIENT_AVX2_7_MIN_WIDTH input pixels or more.
FILTER_GRADIENT_AVX2 = False
FILTER_GRADIENT_AVX2_7_MIN_WIDTH = 0
FILTER_GRADIENT_AVX2_MULTIPLIER_3_WIDE = True  # see _multiplier_filter_gradient_in_bands
# With FILTER_GRADIENT_WHOLE_VECTORS (Zen 4's plans) that kernel runs channel blocks of whole vectors where a pixel
# holds one (32 registers hold its sums, dy columns and input column).  Forty-second session, Zen 4 VM, 2 threads, one
# process, alternating, 7 rounds, half -> whole vectors: 8x28x28x192 7x7 0.70, 8x14x14x512 7x7 0.69, 1x56x56x128 7x7
# 0.71, 8x14x14x672 5x5 0.77-0.79, 8x56x56x144 5x5 stride 2 0.74, 1x112x112x64 5x5 0.76, 8x28x28x240 5x5 0.86,
# 1x28x28x120 5x5 0.94 (93 filter-gradient cases, geomean 0.92; those it does not take at par).
FILTER_GRADIENT_WHOLE_VECTORS = False
# ... and it takes 3-wide filters over a vector of channels or more at these horizontal dilations (Zen 4's plans: 2).
# Zen 4 VM, as above, whole vectors, the kernels before -> this: dilation 2 1x41x41x200 0.59, 1x72x72x72 0.73,
# 1x33x33x576 0.73, 1x33x33x960 0.73, 1x9x9x240 0.78; but dilation 4 1x65x65x576 1.31, and undilated 8x112x112x32
# 1.19, 4x7x7x960 1.23, 1x62x62x240 1.12, 8x28x28x192 1.11, 4x56x56x144 stride 2 1.11.
FILTER_GRADIENT_3_WIDE_DILATIONS: tuple[int, ...] = ()


# With DIRECT_3X3_FILTER_GRADIENT_STRIDE_2 (Zen 4's plans) the filter gradient of undilated 3x3 layers at stride 2
# over a vector of channels or more, on images (one item's H x W x C) of at most DIRECT_3X3_FILTER_GRADIENT_MAX_IMAGE_BYTES,
# takes the direct 3x3 kernel, as DIRECT_3X3's plans do.  Forty-third session, Zen 4 VM, 2 threads, one process, 9
# alternating rounds, the general kernel -> direct, over 52 such layers of images of up to 1.5 MB: geomean 0.80, from
# 0.59 (4x18x18x24 VALID) to 1.00 (1x30x30x16 VALID); 2x29x29x24 0.57-0.61, 4x15x15x120 0.68, 16x28x28x144 0.76-0.78,
# 4x75x75x40 VALID 0.76, 8x28x28x144 0.82-0.91, 8x14x14x384 0.84-0.92.  On larger images par or worse (7 rounds: 1.5 to
# 2 MB 0.83-1.21, 1x56x56x144 0.98-1.04, 4x56x56x144 1.02-1.05; 3.6 to 5 MB 0.90-1.22, 1x65x65x240 VALID 1.21-1.22,
# 1x112x112x96 1.06-1.07; 8x112x112x96 1.19, 1x264x264x192 1.24).
DIRECT_3X3_FILTER_GRADIENT_STRIDE_2 = False
DIRECT_3X3_FILTER_GRADIENT_MAX_IMAGE_BYTES = 1536 * 1024
# ... and so do the bands of repeated input rows of such layers with a multiplier (each band an image of at most
# MULTIPLIER_GRADIENT_BAND_MAX_BYTES), where the output planes have at least MULTIPLIER_DIRECT_3X3_S2_MIN_PIXELS
# pixels.  Forty-eighth session, Zen 4 VM, one process, 2 threads, 5 alternating rounds, the general kernel ->
# direct, 24 filter gradients of stride-2 3x3 layers with multipliers 2-6: 1x37x37x336 m4 VALID 0.70, 1x66x66x72 m4
# 0.70, 2x58x58x72 m4 VALID 0.71, 1x75x75x120 m2 0.72, 2x55x55x72 m4 0.77, 4x75x75x8 m6 0.77, 4x27x27x12 m2 VALID
# 0.78, 1x59x59x8 m2 0.81, 4x57x57x72 m2 0.83, 4x14x14x4 m4 VALID 0.83, the others 0.88-0.99; on planes of 16 and 25
# pixels of 2880 and 960 channels it lost (1x9x9x480 m6 VALID 1.31, 2x11x11x240 m4 VALID 1.07).
MULTIPLIER_DIRECT_3X3_S2_MIN_PIXELS = 32


def _direct_3x3_filter_gradient(x_shape: tuple[int, ...], itemsize: int, g: Conv2DGeometry) -> bool:
    """Whether the filter gradient of an input of ``x_shape`` (multiplier 1) takes the direct 3x3 kernel."""
    return _direct_3x3_layer(x_shape, itemsize, g.kh, g.kw, g.dil_h, g.dil_w) or (
        DIRECT_3X3_FILTER_GRADIENT_STRIDE_2 and tuned(itemsize) and (g.kh, g.kw) == (3, 3)
        and x_shape[3] * itemsize >= VECTOR_BYTES and (g.stride_h, g.stride_w, g.dil_h, g.dil_w) == (2, 2, 1, 1)
        and math.prod(x_shape[1:]) * itemsize <= DIRECT_3X3_FILTER_GRADIENT_MAX_IMAGE_BYTES)


def _filter_gradient_avx2(x_shape: tuple[int, ...], itemsize: int, g: Conv2DGeometry) -> bool:
    """Whether the filter gradient of an input of ``x_shape`` (multiplier 1) takes the AVX2 rolling-window kernel."""
    pixel_bytes = x_shape[3] * itemsize
    return (FILTER_GRADIENT_AVX2 and tuned(itemsize) and 2 * pixel_bytes >= VECTOR_BYTES
            and (g.kw == 5 or (g.kw == 7 and x_shape[2] >= FILTER_GRADIENT_AVX2_7_MIN_WIDTH)
                 or (g.kw == 3 and (pixel_bytes < VECTOR_BYTES or g.dil_w in FILTER_GRADIENT_3_WIDE_DILATIONS)))
            and (g.stride_w == 1 or (g.stride_w, g.dil_w) == (2, 1)) and g.pad_left >= 0)


def _multiplier_filter_gradient_in_bands(x_shape: tuple[int, ...], itemsize: int, g: Conv2DGeometry) -> bool:
    """Whether a filter gradient with a multiplier repeats the input band by band (the multiplier bands' kernels),
    rather than whole for the multiplier-1 plan: not for other dtypes than float32, nor for the layers the AVX2
    filter-gradient kernel takes once repeated (the bands' rows kernel for them is the general one, whose sums
    spill).  Fortieth session, Zen 3 VM, alternating processes, us, bands -> whole: 1x28x28x96 5x5 M = 2 253 -> 129,
    4x22x22x240 M = 4 3109 -> 1959, 1x56x56x24 7x7 M = 4 688 -> 389, 2x56x56x32 5x5 stride 2 M = 2 240 -> 175,
    1x65x65x40 dilation 2 M = 6 1816 -> 796, 1x14x14x8 M = 3 34 -> 18.  3-wide filters keep the bands where
    FILTER_GRADIENT_AVX2_MULTIPLIER_3_WIDE is off (Zen 4's plans; whole there: 1x56x56x4 M = 3 1.43x the time,
    1x56x56x6 M = 2 1.44x, 1x49x49x3 M = 4 1.04-1.16x; 5- and 7-wide ones whole 0.53-0.70)."""
    return tuned(itemsize) and not (_filter_gradient_avx2((*x_shape[:3], g.out_c), itemsize, g)
                                    and (g.kw != 3 or FILTER_GRADIENT_AVX2_MULTIPLIER_3_WIDE))


def _filter_gradient_settings() -> tuple[int, ...]:
    """What a filter-gradient plan depends on besides the call: :func:`_split_settings` and the band sizes."""
    return (*_split_settings(), MULTIPLIER_BAND_BYTES, MULTIPLIER_BAND_MIN_REUSE, MULTIPLIER_GRADIENT_BAND_MAX_BYTES)


@functools.lru_cache(maxsize=256)
def _filter_gradient_plan(x_shape: tuple[int, ...], dy_shape: tuple[int, ...], dtype: np.dtype, g: Conv2DGeometry,
                          settings: tuple[int, ...]):
    """``run(x, dy) -> dw [kh, kw, C*M]``: the filter gradient's thread split, bands and kernel for one geometry,
    chosen once (as :func:`_forward_plan`); the threads' partial sums are added by one small kernel
    (:func:`~sepconv.kernels.depthwise.sum_partials`).  1x112x112x32 3x3, the implementation function: 72 -> 64 us
    around a 59 us kernel."""
    if g.multiplier > 1 and not _multiplier_filter_gradient_in_bands(x_shape, dtype.itemsize, g):
        # the whole input repeated, then the multiplier-1 kernels
        repeated_g = dataclasses.replace(g, in_c=g.out_c, groups=g.out_c)
        plain = _filter_gradient_plan((*x_shape[:3], g.out_c), dy_shape, dtype, repeated_g, settings)
        multiplier = g.multiplier
        return lambda x, dy: plain(_repeated(x, multiplier), dy)
    rows = dy_shape[0] * g.out_h
    itemsize = dtype.itemsize
    nbytes = (math.prod(x_shape) * g.multiplier + math.prod(dy_shape)) * itemsize
    n_chunks = _n_chunks(rows, _vector_size(dy_shape, itemsize) * g.kh * g.kw, nbytes)
    per_channel = (g.kh, g.kw, g.out_c)
    args = _geometry_ints(g)
    zero_row = _plan_zero_row((x_shape[2], g.out_c), dtype)  # read for input rows in the padding
    if g.multiplier > 1:  # the input repeated band by band, into each thread's buffer
        band_rows, band_values = _multiplier_bands(x_shape, dy_shape, itemsize, g.kh, g.stride_h, g.dil_h, n_chunks,
                                                   MULTIPLIER_GRADIENT_BAND_MAX_BYTES)
        bands = dy_shape[0] * -(-g.out_h // band_rows)
        # the repeated bands on the direct 3x3 kernel (at stride 2 where a band, as an image, would take it)
        band_shape = (1, band_values // (x_shape[2] * g.out_c), x_shape[2], g.out_c)  # a band's repeated rows
        direct = _direct_3x3_layer(dy_shape, itemsize, g.kh, g.kw, g.dil_h, g.dil_w) or (
            (g.stride_h, g.stride_w) == (2, 2) and g.out_h * g.out_w >= MULTIPLIER_DIRECT_3X3_S2_MIN_PIXELS
            and _direct_3x3_filter_gradient(band_shape, itemsize, g))

        def run(x, dy):
            buffers = workspace("repeated_input_bands", (n_chunks, band_values), dtype)
            if n_chunks == 1:
                dw = np.zeros(per_channel, dtype)
                multiplier_kernels.depthwise_nhwc_backprop_filter_multiplier_bands(x, dy, dw, buffers[0], zero_row(),
                                                                                   0, bands, band_rows, direct, *args)
                return dw
            partial = np.zeros((n_chunks, *per_channel), dtype)
            with PARALLEL_LAUNCH:
                multiplier_kernels.depthwise_nhwc_backprop_filter_multiplier_parallel(x, dy, partial, buffers,
                                                                                      zero_row(), band_rows, direct,
                                                                                      *args)
            return kernels.sum_partials(partial)
        return run
    if _filter_gradient_avx2(x_shape, itemsize, g):
        whole = FILTER_GRADIENT_WHOLE_VECTORS and x_shape[3] * itemsize >= VECTOR_BYTES

        def run(x, dy):
            partial = np.empty((n_chunks, *per_channel), dtype)  # written, not added to
            with PARALLEL_LAUNCH:
                filter_gradient_avx2.depthwise_nhwc_backprop_filter_avx2_parallel(x, dy, partial, *args, whole)
            return partial[0] if n_chunks == 1 else kernels.sum_partials(partial)
        return run
    if _direct_3x3_filter_gradient(x_shape, itemsize, g):  # the direct kernel's filter gradient
        if n_chunks == 1:
            def run(x, dy):
                dw = np.empty(per_channel, dtype)
                direct_3x3.depthwise_nhwc_backprop_filter_3x3_direct_rows(x, dy, dw, 0, rows, *args)
                return dw
            return run

        def run(x, dy):
            partial = np.empty((n_chunks, *per_channel), dtype)  # written, not added to
            with PARALLEL_LAUNCH:
                direct_3x3.depthwise_nhwc_backprop_filter_3x3_direct_parallel(x, dy, partial, *args)
            return partial[0] if n_chunks == 1 else kernels.sum_partials(partial)
        return run
    fetch = _fetch_ahead(nbytes)
    winograd = _winograd_filter_gradient(nbytes)
    if n_chunks == 1:
        def run(x, dy):
            dw = np.zeros(per_channel, dtype)
            kernels.depthwise_nhwc_backprop_filter_any_rows(x, dy, dw, zero_row(), 0, rows, *args, fetch, winograd)
            return dw
        return run

    def run(x, dy):
        partial = np.zeros((n_chunks, *per_channel), dtype)
        with PARALLEL_LAUNCH:
            kernels.depthwise_nhwc_backprop_filter_parallel(x, dy, partial, zero_row(), *args, fetch, winograd)
        return kernels.sum_partials(partial)
    return run


# Both gradients in one pass (depthwise_conv2d_gradients): bands of about this many bytes of the rows they
# read and write (their ``dy`` rows, ``x`` rows and ``dx`` rows), so that a band's ``dy`` rows are still
# in L2 when its filter gradient reads them after its input gradient (A/B in one process, us, fused / two
# calls, 2 threads: 8x56x56x144 1156 / 1376, 8x112x112x32 975 / 1064, 8x28x28x192 432 / 529, 8x14x14x384
# 212 / 259, 1x56x56x144 140 / 167, 1x112x112x96 stride 2 304 / 339; 8x112x112x96 stride 2 3059 / 3058,
# its input gradient writing four times the bytes of ``dy``; bands of 128 or 768 KB within 5%).
GRADIENTS_BAND_BYTES = 256 * 1024
# ... and on NCHW, groups of planes of about this many bytes (each group's planes restart the kernels'
# window buffers, zeroed on a range's first plane; groups of 256 KB made 8x32x112x112 one plane per group and
# 1.13x the two calls' time).  One call / two calls, us, 2 MB groups: 8x144x56x56 1844 / 1917, 8x32x112x112
# 1645 / 1734, 8x192x28x28 738 / 807, 8x384x14x14 484 / 588, 1x144x56x56 238 / 276, 8x96x112x112 stride 2
# 5279 / 5372, 8x240x28x28 5x5 3615 / 3648 (groups of 1 or 4 MB within a few percent).
GRADIENTS_NCHW_GROUP_BYTES = 2 * 1024 * 1024


def _fused_gradients(g: Conv2DGeometry) -> bool:
    """Whether :func:`depthwise_conv2d_gradients` has a one-pass kernel for ``g``: 3x3, multiplier 1, stride 1
    (any dilation) or 2 (undilated) -- the layers of MobileNets, Xception and DeepLab."""
    return (g.multiplier == 1 and (g.kh, g.kw) == (3, 3) and not DIRECT_3X3
            and ((g.stride_h, g.stride_w) == (1, 1) or (g.stride_h, g.stride_w, g.dil_h, g.dil_w) == (2, 2, 1, 1)))


def depthwise_conv2d_gradients(x: np.ndarray, w: np.ndarray, dy: np.ndarray,
                               g: Conv2DGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Input and filter gradients together: ``x [N, H, W, C]``, ``w [kh, kw, C, M]``, ``dy [N, out_h, out_w, C*M]``
    -> ``([N, H, W, C], [kh, kw, C, M])``, what :func:`depthwise_conv2d_backprop_input` and
    :func:`depthwise_conv2d_backprop_filter` return.

    Where :func:`_fused_gradients` allows and the layer is large enough for both threads, one parallel pass
    (:func:`~sepconv.kernels.depthwise.depthwise_nhwc_backprop_3x3_parallel`): each thread takes bands of
    ``dy`` rows and computes a band's input gradient, then its filter gradient while its ``dy`` rows are
    in cache, so ``dy`` is read from memory once; otherwise the two functions, one after the other.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.geometry import depthwise_geometry
    >>> x, w, dy = np.ones((1, 5, 5, 2)), np.ones((3, 3, 2, 1)), np.ones((1, 5, 5, 2))
    >>> g = depthwise_geometry("depthwise_conv2d_gradients", x.shape, w.shape, 1, "SAME")
    >>> dx, dw = depthwise_conv2d_gradients(x, w, dy, g)
    >>> float(dx[0, 2, 2, 0]), float(dw[1, 1, 0, 0])
    (9.0, 25.0)
    """
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    w3 = _filter_per_channel(w)
    rows = dy.shape[0] * g.out_h
    threads = thread_count()
    split = _n_chunks(rows, dy.size * g.kh * g.kw, x.nbytes + dy.nbytes) > 1
    if not (split and threads > 1 and _fused_gradients(g) and kernels.all_finite(w3)):
        return depthwise_conv2d_backprop_input(w, dy, g), depthwise_conv2d_backprop_filter(x, dy, g)
    dx = empty_apart_from((dy.shape[0], g.in_h, g.in_w, g.in_c), dy.dtype, dy)
    partial = np.zeros((threads, g.kh, g.kw, g.out_c), x.dtype)
    row_bytes = (2 * g.stride_h * g.in_w + g.out_w) * g.in_c * x.itemsize  # a dy row's share of a band
    band_rows = max(2, GRADIENTS_BAND_BYTES // row_bytes)
    nbytes = x.nbytes + dy.nbytes + dx.nbytes
    winograd = _winograd(dy.nbytes + dx.nbytes)  # the bytes each gradient's own plan counts
    winograd_filter = _winograd_filter_gradient(x.nbytes + dy.nbytes)
    with PARALLEL_LAUNCH:
        kernels.depthwise_nhwc_backprop_3x3_parallel(
            x, w3, _flipped(w3), dy, dx, partial, _zero_row(dy.shape[2:], dy.dtype), _zero_row(x.shape[2:], x.dtype),
            band_rows, *_geometry_ints(g), _fetch_ahead(nbytes), winograd, winograd_filter)
    return dx, _checked_filter_gradient(kernels.sum_partials(partial), x, dy, g)


# --------------------------------------------------------------------------- NCHW, natively


# Output planes smaller than this many pixels go through NHWC (copied by the layout kernels,
# sepconv.fast.layout) instead: each plane costs a window copy and a few horizontal sums, which tiny
# planes do not amortize.  Measured, 2 threads, native vs through NHWC, forward / input gradient /
# filter gradient, us: 8x960x7x7 555/555/1013 vs 488/498/502, 8x160x7x7 180/180/302 vs 84/86/72; but
# 1x576x14x14 118/120/186 vs 169/186/135, 8x384x14x14 343/359/570 vs 835/851/866.
NCHW_NATIVE_MIN_PIXELS = 100
# ... when the input planes are small too: larger input planes amortize their overheads, and copying
# them costs more (8x576x14x14 stride 2, 7x7 output planes: 462/-/643 native vs 740/-/1013; the
# input's size does not matter otherwise: 32x960x7x7 1923/1953/3585 vs 1516/1577/1449).  (The
# stride-2 input gradient of small output planes goes through NHWC whatever the input planes:
# 8x576x14x14 1312-1624 native vs 796-1026.)
NCHW_NATIVE_MIN_INPUT_PIXELS = 100


def _small_planes(g: Conv2DGeometry) -> bool:
    return g.out_h * g.out_w < NCHW_NATIVE_MIN_PIXELS


def _nchw_via_nhwc(g: Conv2DGeometry) -> bool:
    return _small_planes(g) and g.in_h * g.in_w < NCHW_NATIVE_MIN_INPUT_PIXELS


# With NCHW_TRANSPOSED_FILTERS (CPUs without AVX-512: sepconv.fast.registers) the forward and input gradient of 5x5
# and larger filters on output rows of at most NCHW_TRANSPOSED_MAX_WIDTH pixels, at least NCHW_TRANSPOSED_MIN_CHANNELS
# channels (multiplier 1), go through NHWC by whole-array transposes: there the NHWC kernels fill their vectors with
# channels, the native ones fill theirs with a short row.  Zen 3 VM, 2 threads, alternating, native -> transposed,
# forward / input gradient, us: 8x480x14x14 5x5 1185 -> 737 / 1112 -> 670, 4x672x14x14 5x5 791 -> 478 / 765 -> 453,
# 1x672x14x14 5x5 204 -> 170 / 206 -> 174, 1x240x28x28 5x5 214 -> 197 / 218 -> 214, 1x192x28x28 7x7 262 -> 209 /
# 267 -> 214, 1x144x56x56 5x5 s2 251 -> 213 / 246 -> 208 (8x96x28x28 5x5 637 -> 464 / 651 -> 524 too, but fewer
# channels lost: 1x120x28x28 5x5 1.22 / 1.21, 8x32x32x32 5x5 1.33 / 1.27).  Wider rows lost (1x64x147x147 5x5
# 1.04 / 1.07, 8x96x56x56 7x7 1.10 / 1.19), and so did 3x3 filters at batch 1 (1x576x14x14 1.78 / 1.73, 1x144x28x28
# 1.17 / 1.17); the filter gradients stay native too (8x480x14x14 5x5 1.04).
# 7x7 and larger filters go that way on output rows of up to NCHW_TRANSPOSED_7X7_MAX_WIDTH pixels too, from
# NCHW_TRANSPOSED_7X7_MIN_CHANNELS channels, inputs of at most NCHW_TRANSPOSED_7X7_MAX_BYTES (native -> transposed:
# 1x96x56x56 579 -> 461 / 572 -> 437 (other runs 0.97 / 0.84, 1.15 / 0.83), 2x96x56x56 808 -> 652 / 820 -> 653,
# 8x64x28x28 634 -> 434 / 631 -> 433, 1x64x56x56 380 -> 311 / 385 -> 318 (another run 1.04 / 1.00); but 8x96x56x56
# (9.6 MB) 1.10 / 1.19, 1x32x112x112 1.12 / 1.11, and 1x48x56x56 only 0.94 / 0.95).
# Zen 4's plans (sepconv.fast.registers) take the first rule only from a batch of NCHW_TRANSPOSED_MIN_BATCH, on inputs
# of NCHW_TRANSPOSED_MIN_BYTES to NCHW_TRANSPOSED_MAX_BYTES and rows of at most 16 pixels, and neither the 7x7 nor the
# 3x3 rule below.  Forty-first session, Zen 4 VM, alternating, native -> transposed, forward / input gradient:
# 8x480x14x14 5x5 (3 MB) 0.76 / 0.76, 4x480x14x14 0.74 / 0.69, 8x384x14x14 0.71 / 0.74, 8x240x14x14 (1.5 MB) 0.75 /
# 0.74, 4x672x14x14 0.76 / 0.98; but 8x672x14x14 (4.2 MB) 1.10 / 1.19, smaller inputs (4x240x14x14, 0.75 MB, 1.18 /
# 1.15; 1x672x14x14 1.19 / 1.17; 1x192x28x28 7x7 3.15 / 2.87), batches of 1 or 2 (1x1344x14x14 1.29 / 1.07;
# 2x672x14x14 0.99 / 1.00, 2x960x14x14 1.02 / 1.20, 2x1152x14x14 1.00 / 0.70), rows of 28 (2x240x28x28 1.37 / 1.26,
# 4x144x28x28 1.19 / 1.11), 1x96x56x56 7x7 2.00 / 1.92, and 3x3 layers (4x192x28x28 1.18 / 1.17, 2x192x28x28 1.45 /
# 1.41; the filter gradient 0.70-1.16) lost.
NCHW_TRANSPOSED_FILTERS = False
NCHW_TRANSPOSED_MAX_WIDTH = 32
NCHW_TRANSPOSED_MIN_CHANNELS = 128
NCHW_TRANSPOSED_MIN_BATCH = 1
NCHW_TRANSPOSED_MIN_BYTES = 0
NCHW_TRANSPOSED_MAX_BYTES = math.inf
NCHW_TRANSPOSED_7X7_MAX_WIDTH = 64
NCHW_TRANSPOSED_7X7_MIN_CHANNELS = 64
NCHW_TRANSPOSED_7X7_MAX_BYTES = 4 * 1024 * 1024
# 3x3 filters go that way too, all three ops, from a batch of NCHW_TRANSPOSED_3X3_MIN_BATCH, on output rows of at most
# NCHW_TRANSPOSED_MAX_WIDTH pixels, from NCHW_TRANSPOSED_3X3_MIN_CHANNELS channels, planes not small (forward / input
# gradient / filter gradient, us: 8x192x28x28 784 -> 647 / 790 -> 670 / 745 -> 594, 4x192x28x28 395 -> 277 /
# 402 -> 299 / 388 -> 280, 8x128x28x28 522 -> 365 / 535 -> 369 / 502 -> 371, 4x384x14x14 291 -> 171 / 300 -> 185 /
# 343 -> 177 (by channels before), 2x192x28x28 205 -> 151 / 214 -> 168 / 201 -> 152, 8x96x28x28 394 -> 254 /
# 405 -> 262 / 383 -> 269, 8x384x14x14 587 -> 414 / 587 -> 417).  At batch 1 they lost (1x576x14x14 1.78 / 1.73,
# 1x144x28x28 1.17 / 1.17), and so did wide rows (8x144x56x56 2.39 / 2.26).
NCHW_TRANSPOSED_3X3_MIN_BATCH = 2
NCHW_TRANSPOSED_3X3_MIN_CHANNELS = 96


def _nchw_transposed(g: Conv2DGeometry, itemsize: int, filter_gradient: bool = False) -> bool:
    """Whether an NCHW forward or input gradient (or, of 3x3 filters, filter gradient) of planes not small goes
    through NHWC by whole-array transposes (:data:`NCHW_TRANSPOSED_FILTERS`)."""
    if not tuned(itemsize):
        return True  # the general NHWC kernels
    if not (NCHW_TRANSPOSED_FILTERS and g.multiplier == 1):
        return False
    if (g.kh, g.kw) == (3, 3):
        return (g.batch >= NCHW_TRANSPOSED_3X3_MIN_BATCH and g.out_w <= NCHW_TRANSPOSED_MAX_WIDTH
                and g.in_c >= NCHW_TRANSPOSED_3X3_MIN_CHANNELS and not _small_planes(g))
    if filter_gradient or g.kh * g.kw < 25:
        return False
    input_bytes = g.batch * g.in_c * g.in_h * g.in_w * itemsize
    if (g.out_w <= NCHW_TRANSPOSED_MAX_WIDTH and g.in_c >= NCHW_TRANSPOSED_MIN_CHANNELS
            and g.batch >= NCHW_TRANSPOSED_MIN_BATCH
            and NCHW_TRANSPOSED_MIN_BYTES <= input_bytes <= NCHW_TRANSPOSED_MAX_BYTES):
        return True
    return (g.kh * g.kw >= 49 and g.out_w <= NCHW_TRANSPOSED_7X7_MAX_WIDTH and g.in_c >= NCHW_TRANSPOSED_7X7_MIN_CHANNELS
            and input_bytes <= NCHW_TRANSPOSED_7X7_MAX_BYTES)


def _nhwc_copy(a: np.ndarray, name: str) -> np.ndarray:
    """An NCHW operand as NHWC, in this thread's workspace ``name`` (a temporary of the call: a fresh
    array of a few MB cost page faults on every call, 32x960x7x7 ~1.5 ms)."""
    n, c, h, w = a.shape
    return nchw_to_nhwc(a, workspace(name, (n, h, w, c), a.dtype))


def depthwise_conv2d_nchw(x: np.ndarray, w: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """Depthwise forward on NCHW: ``x [N, C, H, W]``, ``w [kh, kw, C, M]`` -> ``[N, C*M, out_h, out_w]``.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.geometry import depthwise_geometry
    >>> x, w = np.ones((1, 2, 5, 5), np.float32), np.ones((3, 3, 2, 1), np.float32)
    >>> g = depthwise_geometry("depthwise_conv2d", x.shape, w.shape, 1, "SAME", "NCHW")
    >>> float(depthwise_conv2d_nchw(x, w, g)[0, 0, 2, 2])
    9.0
    """
    by_channels = _nchw_by_channels(g, x.itemsize)
    if (_nchw_via_nhwc(g) or _nchw_transposed(g, x.itemsize)) and not by_channels:
        return nhwc_to_nchw(depthwise_conv2d(_nhwc_copy(x, "nchw_input"), w, g, scratch="nchw_result"))
    x = np.ascontiguousarray(x)
    out = recycled.empty((x.shape[0], g.out_c, g.out_h, g.out_w), x.dtype)
    if by_channels:
        _nchw_small_forward(x, _filter_per_channel(w), out, g.stride_h, g.stride_w, g.dil_h, g.dil_w, g.pad_top,
                            g.pad_left)
        return out
    _nchw_forward(x, _filter_per_channel(w), out, g.multiplier, g.stride_h, g.stride_w, g.dil_h, g.dil_w,
                  g.pad_top, g.pad_left)
    return out


# Small planes (multiplier 1) go through NHWC channel range by channel range, each thread transposing, computing and
# transposing back its own channels (sepconv.kernels.depthwise_nchw_small), instead of whole-array transposes around
# the NHWC op, whose threads then read half of each array from the other core's cache.  One process, 2 threads,
# 4 alternating rounds, us, whole-array transposes -> by channels: 1x960x7x7 5x5 65.8 -> 40.1, 1x1152x7x7 5x5 89.4 ->
# 45.9, 1x1024x7x7 7x7 94.1 -> 51.6, 8x768x7x7 7x7 253 -> 222, 8x960x7x7 5x5 241 -> 220, 32x960x7x7 3x3 819 -> 607,
# 1x576x7x7 3x3 26.1 -> 20.4, 8x160x7x7 57.6 -> 31.6; even at 1x96x9x9 and 1x40x7x7 (~12 us).
NCHW_SMALL_BY_CHANNELS = True


# Rows of at most one vector leave the native NCHW kernels' lanes mostly idle; for some of them the route by
# channel ranges wins even above NCHW_NATIVE_MIN_PIXELS (one process, 2 threads, 4 alternating rounds, us, native ->
# by channels): 7x7 filters at stride 1, forward and input gradient, 2x512x14x14 321 -> 139 and 309 -> 155; the
# filter gradient at stride 1, 1x1024x10x10 3x3 82 -> 49, 1x576x14x14 3x3 57 -> 44, 8x384x14x14 3x3 263 -> 203
# (even at 8x480x14x14 and 4x672x14x14 5x5, 2x512x14x14 7x7).  Not 3x3 or 5x5 forwards: 8x384x14x14 3x3 159 -> 219,
# 4x672x14x14 5x5 300 -> 320.
NCHW_ONE_VECTOR_ROWS_BY_CHANNELS = True


def _nchw_by_channels(g: Conv2DGeometry, itemsize: int, filter_gradient: bool = False) -> bool:
    """Whether an NCHW op (multiplier 1) goes through NHWC by channel ranges (:mod:`sepconv.kernels.depthwise_nchw_small`):
    small planes of a small input (:func:`_nchw_via_nhwc`), and stride-1 rows of at most one vector for 7x7 filters
    (the forward and input gradient) or any filter (the filter gradient)."""
    if g.multiplier != 1 or not tuned(itemsize):
        return False
    if _nchw_via_nhwc(g):
        return NCHW_SMALL_BY_CHANNELS
    return (NCHW_ONE_VECTOR_ROWS_BY_CHANNELS and g.stride_h == g.stride_w == 1 and (filter_gradient or g.kw == 7)
            and max(g.in_w, g.out_w) * itemsize <= VECTOR_BYTES)


def _nchw_small_kind(in_shape: tuple[int, ...], out_shape: tuple[int, ...], itemsize: int, kh: int, kw: int,
                     stride_w: int, dil_h: int, dil_w: int) -> int:
    """The NHWC rows kernel :func:`depthwise_conv2d` would take for an input of ``in_shape`` into ``out_shape``
    (NHWC, multiplier 1), as :mod:`sepconv.kernels.depthwise_nchw_small` numbers them."""
    if (kh, kw) == (3, 3):
        return 0
    if stride_w == 1 and _direct_5x5(in_shape, out_shape, itemsize, kh, kw, 1, dil_w):
        return 2
    if _packed(in_shape, itemsize, kh, kw, stride_w, dil_h, dil_w):
        return 1
    return 3


def _nchw_small_split(x: np.ndarray, macs: int, in_pixels: int, out_pixels: int, taps: int) -> tuple[int, tuple]:
    """The channel ranges (one per thread, from :data:`NHWC_PARALLEL_MIN_MACS`) of an NCHW op on ``x`` by
    :mod:`sepconv.kernels.depthwise_nchw_small`, and each range's buffers for one image (this thread's workspace)."""
    vectors = -(-x.shape[1] * x.itemsize // VECTOR_BYTES)
    n_chunks = 1 if macs < NHWC_PARALLEL_MIN_MACS else max(1, min(vectors, thread_count()))
    channels = -(-vectors // n_chunks) * (VECTOR_BYTES // x.itemsize)  # the widest range's
    return n_chunks, (workspace("nchw_small_input", (n_chunks, in_pixels * channels), x.dtype),
                      workspace("nchw_small_output", (n_chunks, out_pixels * channels), x.dtype),
                      workspace("nchw_small_filter", (n_chunks, taps * channels), x.dtype))


def _nchw_small_forward(x: np.ndarray, w3: np.ndarray, out: np.ndarray, stride_h: int, stride_w: int, dil_h: int,
                        dil_w: int, pad_top: int, pad_left: int) -> None:
    """``out = depthwise(x, w3)`` (NCHW, multiplier 1) by :mod:`sepconv.kernels.depthwise_nchw_small`."""
    _, c, in_h, in_w = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    kh, kw = w3.shape[0], w3.shape[1]
    n_chunks, buffers = _nchw_small_split(x, out.size * kh * kw, in_h * in_w, out_h * out_w, kh * kw)
    kind = _nchw_small_kind((1, in_h, in_w, c), (1, out_h, out_w, c), x.itemsize, kh, kw, stride_w, dil_h, dil_w)
    with PARALLEL_LAUNCH:
        nchw_small.depthwise_nchw_small_forward_parallel(x, w3, out, n_chunks, kind, stride_h, stride_w, dil_h, dil_w,
                                                         pad_top, pad_left, *buffers)


def _nchw_forward(x: np.ndarray, w3: np.ndarray, out: np.ndarray, multiplier: int, stride_h: int, stride_w: int,
                  dil_h: int, dil_w: int, pad_top: int, pad_left: int) -> None:
    args = (stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)
    planes = out.shape[0] * out.shape[1]
    n_chunks = _n_chunks(planes, out.size * w3.shape[0] * w3.shape[1], x.nbytes + out.nbytes)
    if n_chunks == 1:
        nchw.depthwise_nchw_forward_range(x, w3, out, multiplier, 0, planes, *args)
    else:
        with PARALLEL_LAUNCH:
            nchw.depthwise_nchw_forward_parallel(x, w3, out, multiplier, n_chunks, *args)


def depthwise_conv2d_backprop_input_nchw(w: np.ndarray, dy: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """Input gradient on NCHW: ``w [kh, kw, C, M]``, ``dy [N, C*M, out_h, out_w]`` -> ``[N, C, H, W]``.

    Stride 1: the NCHW forward op on ``dy`` with the flipped filter (then summed over the
    multiplier); where :func:`_nchw_by_channels` says so, the same forward by channel ranges
    (:func:`_nchw_small_forward`); strides 2 (undilated): the parity kernel, per plane, or for small output planes
    (multiplier 1) the NHWC parity kernel by channel ranges.  Other strides, the other small planes and
    :func:`_nchw_transposed` layers go through NHWC (whole-array transposes).

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.geometry import depthwise_geometry
    >>> w, dy = np.ones((3, 3, 2, 1)), np.ones((1, 2, 5, 5))
    >>> g = depthwise_geometry("depthwise_conv2d_backprop_input", (1, 2, 5, 5), w.shape, 1, "SAME", "NCHW")
    >>> float(depthwise_conv2d_backprop_input_nchw(w, dy, g)[0, 0, 2, 2])
    9.0
    """
    w3 = _filter_per_channel(w)
    strides_2 = (g.stride_h, g.stride_w, g.dil_h, g.dil_w) == (2, 2, 1, 1)
    stride_1 = g.stride_h == g.stride_w == 1
    finite = kernels.all_finite(w3)
    by_channels = finite and _nchw_by_channels(g, dy.itemsize)
    if stride_1 and by_channels:
        dx = recycled.empty((dy.shape[0], g.in_c, g.in_h, g.in_w), dy.dtype)  # the forward of dy, filter flipped
        _nchw_small_forward(np.ascontiguousarray(dy), _flipped(w3), dx, 1, 1, g.dil_h, g.dil_w,
                            (g.kh - 1) * g.dil_h - g.pad_top, (g.kw - 1) * g.dil_w - g.pad_left)
        return dx
    # Small output planes (whatever the input's) at stride 2, by channel ranges through the NHWC parity kernel (one
    # process, 2 threads, 4 alternating rounds, us, whole-array transposes -> by channels: 8x576x14x14 3x3 479 -> 243,
    # 1x576x14x14 3x3 55 -> 35, 1x672x14x14 5x5 80 -> 46, 1x240x14x14 7x7 46 -> 33, 8x672x14x14 5x5 501 -> 488)
    if (finite and g.multiplier == 1 and NCHW_SMALL_BY_CHANNELS and tuned(dy.itemsize) and _small_planes(g)
            and _parity_kernel(g.kh, g.kw, g.stride_h, g.stride_w, g.dil_h, g.dil_w)):
        dy = np.ascontiguousarray(dy)
        dx = recycled.empty((dy.shape[0], g.in_c, g.in_h, g.in_w), dy.dtype)
        n_chunks, buffers = _nchw_small_split(dy, dy.size * g.kh * g.kw, g.in_h * g.in_w, g.out_h * g.out_w,
                                              g.kh * g.kw)
        with PARALLEL_LAUNCH:
            nchw_small.depthwise_nchw_small_input_gradient_s2_parallel(w3, dy, dx, n_chunks, g.pad_top, g.pad_left,
                                                                       *buffers)
        return dx
    if ((not stride_1 and not strides_2) or _nchw_via_nhwc(g) or (strides_2 and _small_planes(g)) or not finite
            or _nchw_transposed(g, dy.itemsize)):
        return nhwc_to_nchw(depthwise_conv2d_backprop_input(w, _nhwc_copy(dy, "nchw_output_gradient"), g,
                                                            scratch="nchw_result"))
    dy = np.ascontiguousarray(dy)
    n, m = dy.shape[0], g.multiplier
    dx = recycled.empty((n, g.out_c, g.in_h, g.in_w), dy.dtype)
    if strides_2:
        planes = n * g.out_c
        n_chunks = _n_chunks(planes, dy.size * g.kh * g.kw, dy.nbytes + dx.nbytes)
        if n_chunks == 1:
            nchw.depthwise_nchw_backprop_input_s2_range(w3, dy, dx, 0, planes, g.pad_top, g.pad_left)
        else:
            with PARALLEL_LAUNCH:
                nchw.depthwise_nchw_backprop_input_s2_parallel(w3, dy, dx, n_chunks, g.pad_top, g.pad_left)
    else:
        _nchw_forward(dy, _flipped(w3), dx, 1, 1, 1, g.dil_h, g.dil_w,
                      (g.kh - 1) * g.dil_h - g.pad_top, (g.kw - 1) * g.dil_w - g.pad_left)
    if m > 1:
        return dx.reshape(n, g.in_c, m, g.in_h, g.in_w).sum(axis=2)
    return dx


def depthwise_conv2d_backprop_filter_nchw(x: np.ndarray, dy: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """Filter gradient on NCHW: ``x [N, C, H, W]``, ``dy [N, C*M, out_h, out_w]`` -> ``[kh, kw, C, M]``.

    Per-thread partial sums over blocks of ``dy`` planes, then one reduction; small planes of a
    small input go through NHWC by channel ranges, as the forward (:func:`_nchw_via_nhwc`, multiplier 1; with a
    multiplier, whole-array transposes).

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.geometry import depthwise_geometry
    >>> x, dy = np.ones((2, 3, 5, 5)), np.ones((2, 3, 3, 3))
    >>> g = depthwise_geometry("depthwise_conv2d_backprop_filter", x.shape, (3, 3, 3, 1), 1, "VALID", "NCHW")
    >>> float(depthwise_conv2d_backprop_filter_nchw(x, dy, g)[1, 1, 0, 0])
    18.0
    """
    by_channels = _nchw_by_channels(g, x.itemsize, filter_gradient=True)
    if (_nchw_via_nhwc(g) and not by_channels) or _nchw_transposed(g, x.itemsize, filter_gradient=True):
        return depthwise_conv2d_backprop_filter(_nhwc_copy(x, "nchw_input"), _nhwc_copy(dy, "nchw_output_gradient"), g)
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    if by_channels:  # channel range by channel range, as the forward
        n_chunks, buffers = _nchw_small_split(x, dy.size * g.kh * g.kw, g.in_h * g.in_w, g.out_h * g.out_w,
                                              g.kh * g.kw)
        dw = np.empty((g.kh, g.kw, g.in_c), x.dtype)
        with PARALLEL_LAUNCH:
            nchw_small.depthwise_nchw_small_filter_gradient_parallel(x, dy, dw, n_chunks, *_geometry_ints(g), *buffers)
        return _checked_filter_gradient(dw, x, dy, g, nchw=True)
    planes = dy.shape[0] * dy.shape[1]
    n_chunks = _n_chunks(planes, dy.size * g.kh * g.kw, x.nbytes + dy.nbytes)
    partial = np.zeros((n_chunks, g.kh, g.kw, g.out_c), x.dtype)
    window = _geometry_ints(g)
    if n_chunks == 1:
        nchw.depthwise_nchw_backprop_filter_range(x, dy, partial[0], g.multiplier, 0, planes, *window)
    else:
        with PARALLEL_LAUNCH:
            nchw.depthwise_nchw_backprop_filter_parallel(x, dy, partial, g.multiplier, *window)
    return _checked_filter_gradient(kernels.sum_partials(partial), x, dy, g, nchw=True)


def depthwise_conv2d_gradients_nchw(x: np.ndarray, w: np.ndarray, dy: np.ndarray,
                                    g: Conv2DGeometry) -> tuple[np.ndarray, np.ndarray]:
    """:func:`depthwise_conv2d_gradients` on NCHW arrays: ``([N, C, H, W], [kh, kw, C, M])``.

    Where both NCHW backprops would run natively and split over the threads, with multiplier 1 at
    stride 1 or undilated stride 2 (any filter size), one pass over groups of planes
    (:func:`~sepconv.kernels.depthwise_nchw.depthwise_nchw_backprop_parallel`), each group's filter
    gradient right after its input gradient; otherwise :func:`depthwise_conv2d_backprop_input_nchw` and
    :func:`depthwise_conv2d_backprop_filter_nchw`.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.geometry import depthwise_geometry
    >>> x, w, dy = np.ones((1, 2, 5, 5)), np.ones((3, 3, 2, 1)), np.ones((1, 2, 5, 5))
    >>> g = depthwise_geometry("depthwise_conv2d_gradients", x.shape, w.shape, 1, "SAME", "NCHW")
    >>> dx, dw = depthwise_conv2d_gradients_nchw(x, w, dy, g)
    >>> float(dx[0, 0, 2, 2]), float(dw[1, 1, 0, 0])
    (9.0, 25.0)
    """
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    w3 = _filter_per_channel(w)
    strides_2 = (g.stride_h, g.stride_w, g.dil_h, g.dil_w) == (2, 2, 1, 1)
    planes = dy.shape[0] * dy.shape[1]
    threads = thread_count()
    # 7x7 rows of one vector: the two routes by channel ranges (one process, 2 threads, us, one pass -> them:
    # 8x384x14x14 1679 -> 1375, 4x512x14x14 1197 -> 952, 1x384x14x14 227 -> 200; 5x5 stays, 8x480x14x14 1027 / 1114)
    native = not (_nchw_via_nhwc(g) or (strides_2 and _small_planes(g)) or _nchw_by_channels(g, x.itemsize)
                  or _nchw_transposed(g, x.itemsize, filter_gradient=True))
    split = _n_chunks(planes, dy.size * g.kh * g.kw, x.nbytes + dy.nbytes) > 1
    if not (g.multiplier == 1 and ((g.stride_h, g.stride_w) == (1, 1) or strides_2) and native and split
            and threads > 1 and kernels.all_finite(w3)):
        return depthwise_conv2d_backprop_input_nchw(w, dy, g), depthwise_conv2d_backprop_filter_nchw(x, dy, g)
    dx = recycled.empty(x.shape, dy.dtype)
    partial = np.zeros((threads, g.kh, g.kw, g.out_c), x.dtype)
    plane_bytes = (2 * g.in_h * g.in_w + g.out_h * g.out_w) * x.itemsize
    with PARALLEL_LAUNCH:
        nchw.depthwise_nchw_backprop_parallel(x, w3, _flipped(w3), dy, dx, partial,
                                              max(1, GRADIENTS_NCHW_GROUP_BYTES // plane_bytes), *_geometry_ints(g))
    return dx, _checked_filter_gradient(kernels.sum_partials(partial), x, dy, g, nchw=True)


def clear_plans() -> None:
    """Forget the plans made: their kernel choices follow this module's settings, which a caller may change
    (:mod:`sepconv.fast.registers`, tests)."""
    for plan in (_forward_launch, _forward_plan, _forward_multiplier_launch, _input_gradient_plan,
                 _input_gradient_multiplier_launch, _filter_gradient_plan):
        plan.cache_clear()
