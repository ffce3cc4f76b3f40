"""The depthwise forward of every filter but 3x3, NHWC, from packed channel blocks (horizontal stride 1
with any dilation, or stride 2 without).  Filters 5 and 7 wide have unrolled routines that keep a
sliding window of input vectors in registers; other widths go tap by tap (:func:`_eight_pixels_any`:
one weight and eight input loads per eight multiply-adds).

A wide filter's taps make many vector loads per step; addressed straight into ``x`` (pixel stride
``C``, unknown at compile time) each load had a pointer of its own, LLVM spilled them, and the 7x7
kernel ran at 1.7-1.9 cycles per multiply-add. Here each channel block of a band of input rows is
first copied into ``buf`` ``[rows, width, lanes]`` (:func:`_pack_channel_group`: one whole vector
per pixel, zeros for the lanes past ``C``; the padding cells, the same for every block, are zeroed
once per band by :func:`_zero_padding`), and its filter into ``wb`` ``[kh * kw, lanes]``. Every load
is then at a constant offset from one pointer, no pixel is a border pixel, and eight output pixels
(seven where the row's width is a multiple of seven but not of eight, :func:`pixels_per_step`) are
computed at once with their sums in registers, one filter row after the other
(:func:`_eight_pixels_7_s1` and its siblings): for a 7x7 filter at stride 1 a filter row is 7 weight
and 14 input loads for 56 multiply-adds. The copy reads the input once and writes one vector per
pixel and channel block (up to twice the input when a block is half full), plus the rows where bands
overlap, against ``kh * kw`` multiply-adds per output. A horizontal dilation ``d`` costs little more:
the band's columns are packed by phase (:func:`phase_table`), column ``u`` at ``(u % d) * span + u // d``,
so that the taps of the pixels ``j = phase + m * d`` are consecutive and each phase is computed as an
undilated row (1x19x19x200 7x7 dilation 2: 327 -> 134 us; the pixel-by-pixel kernel it replaces
loaded each tap from its own pointer). (For 3x3 filters, whose direct kernels need
only three loads per pixel, the copy does not pay: packed, 1x56x56x144 took 233 us against 174,
8x56x56x144 1465 against 1016.)

Work is split over flat output rows as in :mod:`sepconv.kernels.depthwise`; a band is about
:data:`PACKED_BAND_ROWS` output rows of one image (:func:`band_rows_of`).  On images larger than a core's
L2, a band's channel blocks are packed :data:`PACKED_GROUP_BLOCKS` at a time (:func:`_pack_channel_group`),
so that the input is read whole lines in order; at stride 2 some of them are packed row by row into rings
instead (:func:`_forward_rows_rolling`, :data:`ROLLING_MIN_IMAGE_BYTES`).

Examples
--------
A 5x5 filter of ones over a 6x6 image of ones, SAME padding (2 on each side), stride 1:

>>> import numpy as np
>>> x, w = np.ones((1, 6, 6, 3), np.float32), np.ones((5, 5, 3), np.float32)
>>> out = np.empty((1, 6, 6, 3), np.float32)
>>> depthwise_nhwc_forward_packed_rows(x, w, out, 0, 6, 1, 1, 1, 1, 2, 2)
>>> out[0, :, :, 0]
array([[ 9., 12., 15., 15., 12.,  9.],
       [12., 16., 20., 20., 16., 12.],
       [15., 20., 25., 25., 20., 15.],
       [15., 20., 25., 25., 20., 15.],
       [12., 16., 20., 20., 16., 12.],
       [ 9., 12., 15., 15., 12.,  9.]], dtype=float32)
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._borrowed import borrowed
from ._jit import kernel
from ._simd import empty_on_line, lanes, vadd, vfma, vload, vload_n, vstore, vstore_n, vzeros
from .depthwise import _channel_block, _channel_blocks, aligned_shift
from .depthwise_5x5_direct import pack_filter_blocks

# Output rows per packed band: a band of a 56-wide 7x7 layer is ~200 KB per channel block (in L2).  A call's rows
# are cut into the nearest whole number of such bands (33 rows: one band, not 32 + 1, which packed the filter's
# reach again for one row; A/B, 2 threads, us: 1x65x65x320 5x5 dilation 2 660 -> 616, 1x74x74x336 5x5 dilation 2
# 1239 -> 1205, 19 other layers within 2%).
PACKED_BAND_ROWS = 32
# A band whose input and output rows (all channels) pass this many bytes is cut into tiles of columns
# (:func:`column_tiles`): each channel block's pass re-reads the band's input lines, which must still be in L2.
PACKED_BAND_BYTES = 1024 * 1024
# ... unless a tile would be narrower than this many times the filter's reach (its extra columns packed twice).
PACKED_TILE_MIN_REACHES = 4
# A row's last pixels past its whole steps are computed one by one when there are at most this many: a step
# of eight costs about as much as four single pixels (one pixel: a weight and an input load per multiply-add).
TAIL_MAX_SINGLE_PIXELS = 3
# Pixels of at most this many vectors keep whole channel blocks, their output stores split across cache lines,
# rather than blocks shifted to the output's first aligned channel (:func:`~sepconv.kernels.depthwise.aligned_shift`):
# the shift adds a block, a whole pass of the filter's taps, to the arithmetic (48 channels: 4 blocks, not 3).
# One process, alternating, 1 thread, us, shifted / whole: 1x69x69x48 7x7 292 / 190, 1x56x56x64 7x7 178-154 /
# 160-169, 1x56x56x96 7x7 337-293 / 283-273, 4x56x56x48 7x7 754-634 / 564-551; with more channels the split
# stores cost more than the block (8x14x14x480 5x5 547 / 706, 4x28x28x144 5x5 322-286 / 340-338).
PACKED_SPLIT_STORES_MAX_VECTORS = 4
# Where the image is larger than a core's L2 (and the stride is 1), this many channel blocks are packed in one pass
# over the band, each pixel's blocks read in order (whole lines, as the prefetchers stream them), then computed one
# after the other.  One process, 2 threads, 60 alternating runs, two runs each, us, one block -> four per pass:
# 1x147x147x64 5x5 499-547 -> 444-473, 1x128x128x64 383-397 -> 341-345, 1x112x112x64 285-287 -> 257-261,
# 2x112x112x64 571-576 -> 506-509, 1x33x33x960 5x5 498-539 -> 415-445, 1x65x65x320 5x5 dilation 2 732-752 ->
# 668-710, 1x112x112x48 180 -> 174-176; but on smaller images, whose band stays in L2 anyway, the four buffers
# crowd it: 8x14x14x672 5x5 368-386 -> 427-433, 8x28x28x240 5x5 465 -> 493, 1x56x56x144 7x7 194 -> 207; and at
# stride 2 1x112x112x96 5x5 250-257 -> 269-271.
PACKED_GROUP_BLOCKS = 4
PACKED_GROUP_MIN_IMAGE_BYTES = 2 * 1024 * 1024
# At stride 2 a band is packed block by block, one line per pixel and pass; where the pixels are a multiple of 256
# bytes those lines fall in a quarter or less of the caches' sets, and the next pass's lines are gone before it reads
# them.  There, from 2 MB images of at least 32 output rows, the input is packed row by row into rings of the
# filter's reach (:func:`_forward_rows_rolling`), each pixel's blocks read in order.  One process, 2 threads, two
# alternating runs, us, bands -> rings: 1x75x75x256 5x5 414-431 -> 280-288, 1x112x112x128 5x5 507-550 -> 303-305,
# 1x150x150x64 5x5 350-358 -> 284-292, 1x150x150x128 7x7 1126-1156 -> 769-790, 1x112x112x192 7x7 787-797 -> 676-704,
# 1x75x75x192 5x5 253-285 -> 217-221, 1x95x95x192 456-474 -> 350-367, 1x75x75x512 926-931 -> 736-771, 2x75x75x256
# 894-926 -> 548-558, 1x64x64x256 266-310 -> 215-219.  Elsewhere the rings lost: 1x56x56x480 7x7 323-332 ->
# 454-460, 1x75x75x288 5x5 303-305 -> 336-337, 1x112x112x144 305-308 -> 343-360, 1x38x38x512 129-143 -> 189-194.
ROLLING_MIN_IMAGE_BYTES = 2 * 1024 * 1024
ROLLING_RING_BYTES = 1024 * 1024
ROLLING_MIN_ROWS = 32
ROLLING_PIXEL_BYTES = 256
# Rows of stride 1 with filters 5 or 7 wide go fourteen pixels per step (:func:`_fourteen_pixels_5`) where the
# output is not streamed to memory with a wide pixel stride: the pixel takes at most this many bytes ...
WIDE_STEP_MAX_PIXEL_BYTES = 1024
# ... or the call's output rows and their input take at most this many bytes (they then stay in the core's L2).
WIDE_STEP_MAX_FOOTPRINT_BYTES = 1536 * 1024
# A pixel of a fourteen-pixel step costs about this fraction of one in an eight-pixel step (:func:`wide_steps`).
WIDE_STEP_PIXEL_COST = 0.9


@kernel
def _rows_inside(row_origin, rows, in_h):
    """The band's rows ``[v_lo, v_hi)`` that hold input rows (the rest is padding)."""
    v_lo, v_hi = min(max(-row_origin, 0), rows), min(max(in_h - row_origin, 0), rows)
    if v_lo >= v_hi:
        v_lo = v_hi = rows
    return v_lo, v_hi


@kernel
def phase_table(out_w, in_w, kw, stride_w, dil_w, pad_left):
    """How a band's columns are packed, as ``(span, table)``.  Padded column ``u`` (input column
    ``u - pad_left``) goes to position ``(u % dil_w) * span + u // dil_w`` of its row: with stride 1
    the taps of output pixel ``j = phase + m * dil_w`` are then the consecutive positions
    ``phase * span + m + d``, ``d < kw``, and each phase's pixels are computed as an undilated row
    (with dilation 1 there is one phase and the layout is the plain padded row).  Row ``phase`` of
    ``table`` holds the positions ``[m_lo, m_hi)`` of that phase that hold input pixels, and the
    phase's output pixels.  ``span`` covers whole steps of pixels of every phase (:func:`pixels_per_step`),
    plus the filter's width."""
    table = np.empty((dil_w, 3), np.int64)
    span = 0
    for phase in range(dil_w):
        pixels = table[phase, 2] = (out_w - phase + dil_w - 1) // dil_w
        step = pixels_per_step(pixels)
        span = max(span, (pixels + step - 1) // step * step * stride_w + kw - 1)
    u_lo, u_hi = min(max(pad_left, 0), span * dil_w), min(max(pad_left + in_w, 0), span * dil_w)
    for phase in range(dil_w):
        table[phase, 0] = min((u_lo - phase + dil_w - 1) // dil_w, span)
        table[phase, 1] = min(max((u_hi - phase + dil_w - 1) // dil_w, table[phase, 0]), span)
    return span, table


@kernel
def _zero_padding(x, row_origin, span, table, buf):
    """Zeros in the cells of ``buf`` ``[rows, width, lanes]`` outside the input (the same for every
    channel block of a band, so written once per band: per block, the short zero runs became
    ``memset`` calls that cost as much as the copy); ``table`` as :func:`phase_table`."""
    rows, width, count = buf.shape
    phases = table.shape[0]
    v_lo, v_hi = _rows_inside(row_origin, rows, x.shape[1])
    flat = buf.reshape(-1)
    flat[:v_lo * width * count] = 0
    flat[v_hi * width * count:] = 0
    for v in range(v_lo, v_hi):
        for phase in range(phases):
            p = (v * width + phase * span) * count
            flat[p:p + table[phase, 0] * count] = 0
            flat[p + table[phase, 1] * count:p + span * count] = 0


@kernel
def _pack_channel_group(x, b, row_origin, pad_left, ks, ns, span, table, bufs):
    """The channel blocks ``[ks[g], ks[g] + ns[g])`` of a band, block ``g`` into ``bufs[g]`` (``[group, rows,
    phases * span, lanes]``): ``bufs[g, v, (u % phases) * span + u // phases, :ns[g]] = x[b, row_origin + v,
    u - pad_left, ks[g] : ks[g] + ns[g]]`` where that is inside the input, zeros in the lanes from ``ns[g]``
    (``table`` as :func:`phase_table`; the padding cells are left as they are: :func:`_zero_padding`).  Each
    pixel's blocks are read one after the other, whole lines in order (a group of one block runs as fast as a
    routine for one block did)."""
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    count = lanes(x)
    group = ks.shape[0]
    rows, width = bufs.shape[1], bufs.shape[2]
    size = rows * width * count
    phases = table.shape[0]
    v_lo, v_hi = _rows_inside(row_origin, rows, in_h)
    for v in range(v_lo, v_hi):
        row = ((b * in_h + row_origin + v) * in_w - pad_left) * c
        for phase in range(phases):
            p = (v * width + phase * span) * count
            src = row + phase * c
            for m in range(table[phase, 0], table[phase, 1]):
                for g in range(group):
                    vstore(bufs, g * size + p + m * count, vload_n(x, src + m * phases * c + ks[g], ns[g]))


@kernel
def _pack_channel_block(x, b, row_origin, pad_left, k, n, span, table, buf):
    """:func:`_pack_channel_group` for one block (``k``, ``n``) into ``buf`` ``[rows, phases * span, lanes]``, its
    loop written for one: whole-vector loads where the block is whole (one thread, 1x56x56x480 at stride 2, the
    band's 30 blocks: 404 -> 347 us; 1x56x56x32 13.4 -> 10.2)."""
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    count = lanes(x)
    rows, width = buf.shape[0], buf.shape[1]
    phases = table.shape[0]
    v_lo, v_hi = _rows_inside(row_origin, rows, in_h)
    step = phases * c
    for v in range(v_lo, v_hi):
        row = ((b * in_h + row_origin + v) * in_w - pad_left) * c + k
        for phase in range(phases):
            p = (v * width + phase * span) * count
            src = row + phase * c
            if n == count:
                for m in range(table[phase, 0], table[phase, 1]):
                    vstore(buf, p + m * count, vload(x, src + m * step))
            else:
                for m in range(table[phase, 0], table[phase, 1]):
                    vstore(buf, p + m * count, vload_n(x, src + m * step, n))


@kernel
def _dot5(v0, v1, v2, v3, v4, ws, acc):
    """``acc + sum_t v_t * ws[t]``: one filter row of five taps at one pixel."""
    return vfma(v4, ws[4], vfma(v3, ws[3], vfma(v2, ws[2], vfma(v1, ws[1], vfma(v0, ws[0], acc)))))


@kernel
def _dot7(v0, v1, v2, v3, v4, v5, v6, ws, acc):
    """``acc + sum_t v_t * ws[t]``: one filter row of seven taps at one pixel."""
    s = vfma(v3, ws[3], vfma(v2, ws[2], vfma(v1, ws[1], vfma(v0, ws[0], acc))))
    return vfma(v6, ws[6], vfma(v5, ws[5], vfma(v4, ws[4], s)))


@kernel
def _eight_pixels_5_s1(buf, q, wb, t, a):
    """``a[p] + sum_d buf.flat[q + (p + d) * lanes : ...] * wb.flat[t + d * lanes : ...]``, the eight
    pixels ``p`` of one filter row (5 taps, stride 1: 5 weight and 12 input vectors)."""
    count = lanes(buf)
    ws = (vload(wb, t), vload(wb, t + 1 * count), vload(wb, t + 2 * count), vload(wb, t + 3 * count),
          vload(wb, t + 4 * count))
    x0, x1, x2 = vload(buf, q), vload(buf, q + 1 * count), vload(buf, q + 2 * count)
    x3, x4, x5 = vload(buf, q + 3 * count), vload(buf, q + 4 * count), vload(buf, q + 5 * count)
    x6, x7, x8 = vload(buf, q + 6 * count), vload(buf, q + 7 * count), vload(buf, q + 8 * count)
    x9, x10, x11 = vload(buf, q + 9 * count), vload(buf, q + 10 * count), vload(buf, q + 11 * count)
    return (_dot5(x0, x1, x2, x3, x4, ws, a[0]),
            _dot5(x1, x2, x3, x4, x5, ws, a[1]),
            _dot5(x2, x3, x4, x5, x6, ws, a[2]),
            _dot5(x3, x4, x5, x6, x7, ws, a[3]),
            _dot5(x4, x5, x6, x7, x8, ws, a[4]),
            _dot5(x5, x6, x7, x8, x9, ws, a[5]),
            _dot5(x6, x7, x8, x9, x10, ws, a[6]),
            _dot5(x7, x8, x9, x10, x11, ws, a[7]))


@kernel
def _eight_pixels_5_s2(buf, q, wb, t, a):
    """``a[p] + sum_d buf.flat[q + (2 * p + d) * lanes : ...] * wb.flat[t + d * lanes : ...]``, the eight
    pixels ``p`` of one filter row (5 taps, stride 2: 5 weight and 19 input vectors)."""
    count = lanes(buf)
    ws = (vload(wb, t), vload(wb, t + 1 * count), vload(wb, t + 2 * count), vload(wb, t + 3 * count),
          vload(wb, t + 4 * count))
    x0, x1, x2 = vload(buf, q), vload(buf, q + 1 * count), vload(buf, q + 2 * count)
    x3, x4, x5 = vload(buf, q + 3 * count), vload(buf, q + 4 * count), vload(buf, q + 5 * count)
    x6, x7, x8 = vload(buf, q + 6 * count), vload(buf, q + 7 * count), vload(buf, q + 8 * count)
    x9, x10, x11 = vload(buf, q + 9 * count), vload(buf, q + 10 * count), vload(buf, q + 11 * count)
    x12, x13, x14 = vload(buf, q + 12 * count), vload(buf, q + 13 * count), vload(buf, q + 14 * count)
    x15, x16, x17 = vload(buf, q + 15 * count), vload(buf, q + 16 * count), vload(buf, q + 17 * count)
    x18 = vload(buf, q + 18 * count)
    return (_dot5(x0, x1, x2, x3, x4, ws, a[0]),
            _dot5(x2, x3, x4, x5, x6, ws, a[1]),
            _dot5(x4, x5, x6, x7, x8, ws, a[2]),
            _dot5(x6, x7, x8, x9, x10, ws, a[3]),
            _dot5(x8, x9, x10, x11, x12, ws, a[4]),
            _dot5(x10, x11, x12, x13, x14, ws, a[5]),
            _dot5(x12, x13, x14, x15, x16, ws, a[6]),
            _dot5(x14, x15, x16, x17, x18, ws, a[7]))


@kernel
def _eight_pixels_7_s1(buf, q, wb, t, a):
    """``a[p] + sum_d buf.flat[q + (p + d) * lanes : ...] * wb.flat[t + d * lanes : ...]``, the eight
    pixels ``p`` of one filter row (7 taps, stride 1: 7 weight and 14 input vectors)."""
    count = lanes(buf)
    ws = (vload(wb, t), vload(wb, t + 1 * count), vload(wb, t + 2 * count), vload(wb, t + 3 * count),
          vload(wb, t + 4 * count), vload(wb, t + 5 * count), vload(wb, t + 6 * count))
    x0, x1, x2 = vload(buf, q), vload(buf, q + 1 * count), vload(buf, q + 2 * count)
    x3, x4, x5 = vload(buf, q + 3 * count), vload(buf, q + 4 * count), vload(buf, q + 5 * count)
    x6, x7, x8 = vload(buf, q + 6 * count), vload(buf, q + 7 * count), vload(buf, q + 8 * count)
    x9, x10, x11 = vload(buf, q + 9 * count), vload(buf, q + 10 * count), vload(buf, q + 11 * count)
    x12, x13 = vload(buf, q + 12 * count), vload(buf, q + 13 * count)
    return (_dot7(x0, x1, x2, x3, x4, x5, x6, ws, a[0]),
            _dot7(x1, x2, x3, x4, x5, x6, x7, ws, a[1]),
            _dot7(x2, x3, x4, x5, x6, x7, x8, ws, a[2]),
            _dot7(x3, x4, x5, x6, x7, x8, x9, ws, a[3]),
            _dot7(x4, x5, x6, x7, x8, x9, x10, ws, a[4]),
            _dot7(x5, x6, x7, x8, x9, x10, x11, ws, a[5]),
            _dot7(x6, x7, x8, x9, x10, x11, x12, ws, a[6]),
            _dot7(x7, x8, x9, x10, x11, x12, x13, ws, a[7]))


@kernel
def _eight_pixels_7_s2(buf, q, wb, t, a):
    """``a[p] + sum_d buf.flat[q + (2 * p + d) * lanes : ...] * wb.flat[t + d * lanes : ...]``, the eight
    pixels ``p`` of one filter row (7 taps, stride 2: 7 weight and 21 input vectors)."""
    count = lanes(buf)
    ws = (vload(wb, t), vload(wb, t + 1 * count), vload(wb, t + 2 * count), vload(wb, t + 3 * count),
          vload(wb, t + 4 * count), vload(wb, t + 5 * count), vload(wb, t + 6 * count))
    x0, x1, x2 = vload(buf, q), vload(buf, q + 1 * count), vload(buf, q + 2 * count)
    x3, x4, x5 = vload(buf, q + 3 * count), vload(buf, q + 4 * count), vload(buf, q + 5 * count)
    x6, x7, x8 = vload(buf, q + 6 * count), vload(buf, q + 7 * count), vload(buf, q + 8 * count)
    x9, x10, x11 = vload(buf, q + 9 * count), vload(buf, q + 10 * count), vload(buf, q + 11 * count)
    x12, x13, x14 = vload(buf, q + 12 * count), vload(buf, q + 13 * count), vload(buf, q + 14 * count)
    x15, x16, x17 = vload(buf, q + 15 * count), vload(buf, q + 16 * count), vload(buf, q + 17 * count)
    x18, x19, x20 = vload(buf, q + 18 * count), vload(buf, q + 19 * count), vload(buf, q + 20 * count)
    return (_dot7(x0, x1, x2, x3, x4, x5, x6, ws, a[0]),
            _dot7(x2, x3, x4, x5, x6, x7, x8, ws, a[1]),
            _dot7(x4, x5, x6, x7, x8, x9, x10, ws, a[2]),
            _dot7(x6, x7, x8, x9, x10, x11, x12, ws, a[3]),
            _dot7(x8, x9, x10, x11, x12, x13, x14, ws, a[4]),
            _dot7(x10, x11, x12, x13, x14, x15, x16, ws, a[5]),
            _dot7(x12, x13, x14, x15, x16, x17, x18, ws, a[6]),
            _dot7(x14, x15, x16, x17, x18, x19, x20, ws, a[7]))


@kernel
def _seven_pixels_5_s1(buf, q, wb, t, a):
    """:func:`_eight_pixels_5_s1` for seven pixels (rows 7, 14, 21, 28, ... wide: no eighth pixel computed in vain)."""
    count = lanes(buf)
    ws = (vload(wb, t), vload(wb, t + 1 * count), vload(wb, t + 2 * count), vload(wb, t + 3 * count),
          vload(wb, t + 4 * count))
    x0, x1, x2 = vload(buf, q), vload(buf, q + 1 * count), vload(buf, q + 2 * count)
    x3, x4, x5 = vload(buf, q + 3 * count), vload(buf, q + 4 * count), vload(buf, q + 5 * count)
    x6, x7, x8 = vload(buf, q + 6 * count), vload(buf, q + 7 * count), vload(buf, q + 8 * count)
    x9, x10 = vload(buf, q + 9 * count), vload(buf, q + 10 * count)
    return (_dot5(x0, x1, x2, x3, x4, ws, a[0]),
            _dot5(x1, x2, x3, x4, x5, ws, a[1]),
            _dot5(x2, x3, x4, x5, x6, ws, a[2]),
            _dot5(x3, x4, x5, x6, x7, ws, a[3]),
            _dot5(x4, x5, x6, x7, x8, ws, a[4]),
            _dot5(x5, x6, x7, x8, x9, ws, a[5]),
            _dot5(x6, x7, x8, x9, x10, ws, a[6]))


@kernel
def _seven_pixels_5_s2(buf, q, wb, t, a):
    """:func:`_eight_pixels_5_s2` for seven pixels."""
    count = lanes(buf)
    ws = (vload(wb, t), vload(wb, t + 1 * count), vload(wb, t + 2 * count), vload(wb, t + 3 * count),
          vload(wb, t + 4 * count))
    x0, x1, x2 = vload(buf, q), vload(buf, q + 1 * count), vload(buf, q + 2 * count)
    x3, x4, x5 = vload(buf, q + 3 * count), vload(buf, q + 4 * count), vload(buf, q + 5 * count)
    x6, x7, x8 = vload(buf, q + 6 * count), vload(buf, q + 7 * count), vload(buf, q + 8 * count)
    x9, x10, x11 = vload(buf, q + 9 * count), vload(buf, q + 10 * count), vload(buf, q + 11 * count)
    x12, x13, x14 = vload(buf, q + 12 * count), vload(buf, q + 13 * count), vload(buf, q + 14 * count)
    x15, x16 = vload(buf, q + 15 * count), vload(buf, q + 16 * count)
    return (_dot5(x0, x1, x2, x3, x4, ws, a[0]),
            _dot5(x2, x3, x4, x5, x6, ws, a[1]),
            _dot5(x4, x5, x6, x7, x8, ws, a[2]),
            _dot5(x6, x7, x8, x9, x10, ws, a[3]),
            _dot5(x8, x9, x10, x11, x12, ws, a[4]),
            _dot5(x10, x11, x12, x13, x14, ws, a[5]),
            _dot5(x12, x13, x14, x15, x16, ws, a[6]))


@kernel
def _seven_pixels_7_s1(buf, q, wb, t, a):
    """:func:`_eight_pixels_7_s1` for seven pixels."""
    count = lanes(buf)
    ws = (vload(wb, t), vload(wb, t + 1 * count), vload(wb, t + 2 * count), vload(wb, t + 3 * count),
          vload(wb, t + 4 * count), vload(wb, t + 5 * count), vload(wb, t + 6 * count))
    x0, x1, x2 = vload(buf, q), vload(buf, q + 1 * count), vload(buf, q + 2 * count)
    x3, x4, x5 = vload(buf, q + 3 * count), vload(buf, q + 4 * count), vload(buf, q + 5 * count)
    x6, x7, x8 = vload(buf, q + 6 * count), vload(buf, q + 7 * count), vload(buf, q + 8 * count)
    x9, x10, x11 = vload(buf, q + 9 * count), vload(buf, q + 10 * count), vload(buf, q + 11 * count)
    x12 = vload(buf, q + 12 * count)
    return (_dot7(x0, x1, x2, x3, x4, x5, x6, ws, a[0]),
            _dot7(x1, x2, x3, x4, x5, x6, x7, ws, a[1]),
            _dot7(x2, x3, x4, x5, x6, x7, x8, ws, a[2]),
            _dot7(x3, x4, x5, x6, x7, x8, x9, ws, a[3]),
            _dot7(x4, x5, x6, x7, x8, x9, x10, ws, a[4]),
            _dot7(x5, x6, x7, x8, x9, x10, x11, ws, a[5]),
            _dot7(x6, x7, x8, x9, x10, x11, x12, ws, a[6]))


@kernel
def _seven_pixels_7_s2(buf, q, wb, t, a):
    """:func:`_eight_pixels_7_s2` for seven pixels."""
    count = lanes(buf)
    ws = (vload(wb, t), vload(wb, t + 1 * count), vload(wb, t + 2 * count), vload(wb, t + 3 * count),
          vload(wb, t + 4 * count), vload(wb, t + 5 * count), vload(wb, t + 6 * count))
    x0, x1, x2 = vload(buf, q), vload(buf, q + 1 * count), vload(buf, q + 2 * count)
    x3, x4, x5 = vload(buf, q + 3 * count), vload(buf, q + 4 * count), vload(buf, q + 5 * count)
    x6, x7, x8 = vload(buf, q + 6 * count), vload(buf, q + 7 * count), vload(buf, q + 8 * count)
    x9, x10, x11 = vload(buf, q + 9 * count), vload(buf, q + 10 * count), vload(buf, q + 11 * count)
    x12, x13, x14 = vload(buf, q + 12 * count), vload(buf, q + 13 * count), vload(buf, q + 14 * count)
    x15, x16, x17 = vload(buf, q + 15 * count), vload(buf, q + 16 * count), vload(buf, q + 17 * count)
    x18 = vload(buf, q + 18 * count)
    return (_dot7(x0, x1, x2, x3, x4, x5, x6, ws, a[0]),
            _dot7(x2, x3, x4, x5, x6, x7, x8, ws, a[1]),
            _dot7(x4, x5, x6, x7, x8, x9, x10, ws, a[2]),
            _dot7(x6, x7, x8, x9, x10, x11, x12, ws, a[3]),
            _dot7(x8, x9, x10, x11, x12, x13, x14, ws, a[4]),
            _dot7(x10, x11, x12, x13, x14, x15, x16, ws, a[5]),
            _dot7(x12, x13, x14, x15, x16, x17, x18, ws, a[6]))


@kernel
def _fourteen_pixels_5(buf, q, wb, t, a):
    """``a[p] + sum_d buf.flat[q + (p + d) * lanes : ...] * wb.flat[t + d * lanes : ...]``, the fourteen
    pixels ``p`` of one filter row (5 taps, stride 1), tap by tap: the fourteen input vectors a tap reads stay
    in registers, and each next tap loads one new vector and its weight (29 registers; sixteen pixels
    spilled).  Fourteen independent sums hide the multiply-add latency better than the eight of
    :func:`_eight_pixels_5_s1` (one thread, rows of an L2-resident band: 70-84% of the FMA peak against
    64-70%)."""
    count = lanes(buf)
    a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13 = a
    x0, x1, x2, x3 = vload(buf, q), vload(buf, q + count), vload(buf, q + 2 * count), vload(buf, q + 3 * count)
    x4, x5, x6 = vload(buf, q + 4 * count), vload(buf, q + 5 * count), vload(buf, q + 6 * count)
    x7, x8, x9 = vload(buf, q + 7 * count), vload(buf, q + 8 * count), vload(buf, q + 9 * count)
    x10, x11, x12 = vload(buf, q + 10 * count), vload(buf, q + 11 * count), vload(buf, q + 12 * count)
    x13 = vload(buf, q + 13 * count)
    w = vload(wb, t)
    a0, a1, a2, a3, a4 = vfma(x0, w, a0), vfma(x1, w, a1), vfma(x2, w, a2), vfma(x3, w, a3), vfma(x4, w, a4)
    a5, a6, a7, a8, a9 = vfma(x5, w, a5), vfma(x6, w, a6), vfma(x7, w, a7), vfma(x8, w, a8), vfma(x9, w, a9)
    a10, a11, a12, a13 = vfma(x10, w, a10), vfma(x11, w, a11), vfma(x12, w, a12), vfma(x13, w, a13)
    x14 = vload(buf, q + 14 * count)
    w = vload(wb, t + 1 * count)
    a0, a1, a2, a3, a4 = vfma(x1, w, a0), vfma(x2, w, a1), vfma(x3, w, a2), vfma(x4, w, a3), vfma(x5, w, a4)
    a5, a6, a7, a8, a9 = vfma(x6, w, a5), vfma(x7, w, a6), vfma(x8, w, a7), vfma(x9, w, a8), vfma(x10, w, a9)
    a10, a11, a12, a13 = vfma(x11, w, a10), vfma(x12, w, a11), vfma(x13, w, a12), vfma(x14, w, a13)
    x15 = vload(buf, q + 15 * count)
    w = vload(wb, t + 2 * count)
    a0, a1, a2, a3, a4 = vfma(x2, w, a0), vfma(x3, w, a1), vfma(x4, w, a2), vfma(x5, w, a3), vfma(x6, w, a4)
    a5, a6, a7, a8, a9 = vfma(x7, w, a5), vfma(x8, w, a6), vfma(x9, w, a7), vfma(x10, w, a8), vfma(x11, w, a9)
    a10, a11, a12, a13 = vfma(x12, w, a10), vfma(x13, w, a11), vfma(x14, w, a12), vfma(x15, w, a13)
    x16 = vload(buf, q + 16 * count)
    w = vload(wb, t + 3 * count)
    a0, a1, a2, a3, a4 = vfma(x3, w, a0), vfma(x4, w, a1), vfma(x5, w, a2), vfma(x6, w, a3), vfma(x7, w, a4)
    a5, a6, a7, a8, a9 = vfma(x8, w, a5), vfma(x9, w, a6), vfma(x10, w, a7), vfma(x11, w, a8), vfma(x12, w, a9)
    a10, a11, a12, a13 = vfma(x13, w, a10), vfma(x14, w, a11), vfma(x15, w, a12), vfma(x16, w, a13)
    x17 = vload(buf, q + 17 * count)
    w = vload(wb, t + 4 * count)
    a0, a1, a2, a3, a4 = vfma(x4, w, a0), vfma(x5, w, a1), vfma(x6, w, a2), vfma(x7, w, a3), vfma(x8, w, a4)
    a5, a6, a7, a8, a9 = vfma(x9, w, a5), vfma(x10, w, a6), vfma(x11, w, a7), vfma(x12, w, a8), vfma(x13, w, a9)
    a10, a11, a12, a13 = vfma(x14, w, a10), vfma(x15, w, a11), vfma(x16, w, a12), vfma(x17, w, a13)
    return a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13


@kernel
def _fourteen_pixels_7(buf, q, wb, t, a):
    """:func:`_fourteen_pixels_5` for 7 taps."""
    count = lanes(buf)
    a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13 = a
    x0, x1, x2, x3 = vload(buf, q), vload(buf, q + count), vload(buf, q + 2 * count), vload(buf, q + 3 * count)
    x4, x5, x6 = vload(buf, q + 4 * count), vload(buf, q + 5 * count), vload(buf, q + 6 * count)
    x7, x8, x9 = vload(buf, q + 7 * count), vload(buf, q + 8 * count), vload(buf, q + 9 * count)
    x10, x11, x12 = vload(buf, q + 10 * count), vload(buf, q + 11 * count), vload(buf, q + 12 * count)
    x13 = vload(buf, q + 13 * count)
    w = vload(wb, t)
    a0, a1, a2, a3, a4 = vfma(x0, w, a0), vfma(x1, w, a1), vfma(x2, w, a2), vfma(x3, w, a3), vfma(x4, w, a4)
    a5, a6, a7, a8, a9 = vfma(x5, w, a5), vfma(x6, w, a6), vfma(x7, w, a7), vfma(x8, w, a8), vfma(x9, w, a9)
    a10, a11, a12, a13 = vfma(x10, w, a10), vfma(x11, w, a11), vfma(x12, w, a12), vfma(x13, w, a13)
    x14 = vload(buf, q + 14 * count)
    w = vload(wb, t + 1 * count)
    a0, a1, a2, a3, a4 = vfma(x1, w, a0), vfma(x2, w, a1), vfma(x3, w, a2), vfma(x4, w, a3), vfma(x5, w, a4)
    a5, a6, a7, a8, a9 = vfma(x6, w, a5), vfma(x7, w, a6), vfma(x8, w, a7), vfma(x9, w, a8), vfma(x10, w, a9)
    a10, a11, a12, a13 = vfma(x11, w, a10), vfma(x12, w, a11), vfma(x13, w, a12), vfma(x14, w, a13)
    x15 = vload(buf, q + 15 * count)
    w = vload(wb, t + 2 * count)
    a0, a1, a2, a3, a4 = vfma(x2, w, a0), vfma(x3, w, a1), vfma(x4, w, a2), vfma(x5, w, a3), vfma(x6, w, a4)
    a5, a6, a7, a8, a9 = vfma(x7, w, a5), vfma(x8, w, a6), vfma(x9, w, a7), vfma(x10, w, a8), vfma(x11, w, a9)
    a10, a11, a12, a13 = vfma(x12, w, a10), vfma(x13, w, a11), vfma(x14, w, a12), vfma(x15, w, a13)
    x16 = vload(buf, q + 16 * count)
    w = vload(wb, t + 3 * count)
    a0, a1, a2, a3, a4 = vfma(x3, w, a0), vfma(x4, w, a1), vfma(x5, w, a2), vfma(x6, w, a3), vfma(x7, w, a4)
    a5, a6, a7, a8, a9 = vfma(x8, w, a5), vfma(x9, w, a6), vfma(x10, w, a7), vfma(x11, w, a8), vfma(x12, w, a9)
    a10, a11, a12, a13 = vfma(x13, w, a10), vfma(x14, w, a11), vfma(x15, w, a12), vfma(x16, w, a13)
    x17 = vload(buf, q + 17 * count)
    w = vload(wb, t + 4 * count)
    a0, a1, a2, a3, a4 = vfma(x4, w, a0), vfma(x5, w, a1), vfma(x6, w, a2), vfma(x7, w, a3), vfma(x8, w, a4)
    a5, a6, a7, a8, a9 = vfma(x9, w, a5), vfma(x10, w, a6), vfma(x11, w, a7), vfma(x12, w, a8), vfma(x13, w, a9)
    a10, a11, a12, a13 = vfma(x14, w, a10), vfma(x15, w, a11), vfma(x16, w, a12), vfma(x17, w, a13)
    x18 = vload(buf, q + 18 * count)
    w = vload(wb, t + 5 * count)
    a0, a1, a2, a3, a4 = vfma(x5, w, a0), vfma(x6, w, a1), vfma(x7, w, a2), vfma(x8, w, a3), vfma(x9, w, a4)
    a5, a6, a7, a8, a9 = vfma(x10, w, a5), vfma(x11, w, a6), vfma(x12, w, a7), vfma(x13, w, a8), vfma(x14, w, a9)
    a10, a11, a12, a13 = vfma(x15, w, a10), vfma(x16, w, a11), vfma(x17, w, a12), vfma(x18, w, a13)
    x19 = vload(buf, q + 19 * count)
    w = vload(wb, t + 6 * count)
    a0, a1, a2, a3, a4 = vfma(x6, w, a0), vfma(x7, w, a1), vfma(x8, w, a2), vfma(x9, w, a3), vfma(x10, w, a4)
    a5, a6, a7, a8, a9 = vfma(x11, w, a5), vfma(x12, w, a6), vfma(x13, w, a7), vfma(x14, w, a8), vfma(x15, w, a9)
    a10, a11, a12, a13 = vfma(x16, w, a10), vfma(x17, w, a11), vfma(x18, w, a12), vfma(x19, w, a13)
    return a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13


@kernel
def _eight_pixels_any(buf, q, wb, t, kw, stride_w, a):
    """:func:`_eight_pixels_5_s1` for any filter width and stride, tap by tap: one weight and eight input
    vectors per tap (no window kept in registers: the widths without a routine of their own)."""
    count = lanes(buf)
    a0, a1, a2, a3, a4, a5, a6, a7 = a
    step = stride_w * count
    for d in range(kw):
        w = vload(wb, t + d * count)
        p = q + d * count
        a0 = vfma(vload(buf, p), w, a0)
        a1 = vfma(vload(buf, p + step), w, a1)
        a2 = vfma(vload(buf, p + 2 * step), w, a2)
        a3 = vfma(vload(buf, p + 3 * step), w, a3)
        a4 = vfma(vload(buf, p + 4 * step), w, a4)
        a5 = vfma(vload(buf, p + 5 * step), w, a5)
        a6 = vfma(vload(buf, p + 6 * step), w, a6)
        a7 = vfma(vload(buf, p + 7 * step), w, a7)
    return a0, a1, a2, a3, a4, a5, a6, a7


@kernel
def _seven_pixels_any(buf, q, wb, t, kw, stride_w, a):
    """:func:`_eight_pixels_any` for seven pixels."""
    count = lanes(buf)
    a0, a1, a2, a3, a4, a5, a6 = a
    step = stride_w * count
    for d in range(kw):
        w = vload(wb, t + d * count)
        p = q + d * count
        a0 = vfma(vload(buf, p), w, a0)
        a1 = vfma(vload(buf, p + step), w, a1)
        a2 = vfma(vload(buf, p + 2 * step), w, a2)
        a3 = vfma(vload(buf, p + 3 * step), w, a3)
        a4 = vfma(vload(buf, p + 4 * step), w, a4)
        a5 = vfma(vload(buf, p + 5 * step), w, a5)
        a6 = vfma(vload(buf, p + 6 * step), w, a6)
    return a0, a1, a2, a3, a4, a5, a6


@kernel
def _one_pixel(buf, q, wb, row_step, kh, kw):
    """One output pixel's sum over the whole filter (window top left at flat index ``q`` of ``buf``, filter
    rows ``row_step`` apart), each filter row's taps in a sum of its own so that the rows' multiply-adds
    overlap (one pixel's taps in one sum would be a chain of ``kh * kw`` dependent multiply-adds, as long
    as a whole step of eight pixels)."""
    count = lanes(buf)
    acc = vzeros(buf)
    for di in range(kh):
        t = di * kw * count
        p = q + di * row_step
        s = vzeros(buf)
        for d in range(kw):
            s = vfma(vload(buf, p + d * count), vload(wb, t + d * count), s)
        acc = vadd(acc, s)
    return acc


@kernel
def _store_pixels(out, p, c, a, n, pixels):
    """Store the first ``pixels`` (at most ``len(a)``) sums of ``a``, pixel ``t`` at flat index ``p + t * c``."""
    for t in range(min(pixels, len(a))):
        vstore_n(out, p + t * c, a[t], n)


@kernel
def pixels_per_step(out_w):
    """Output pixels computed per step: seven where the row is a multiple of seven but not of eight
    (MobileNet's and EfficientNet's 7, 14 and 28), so that no step computes a pixel in vain; else eight."""
    return 7 if out_w % 8 != 0 and out_w % 7 == 0 else 8


@kernel
def _step_cost(out_w):
    """Pixel slots spent on a row of ``out_w`` pixels by the steps of :func:`pixels_per_step` and the single
    pixels of the tail (one counts as two slots, see :data:`TAIL_MAX_SINGLE_PIXELS`)."""
    step = pixels_per_step(out_w)
    tail = out_w % step
    if tail > TAIL_MAX_SINGLE_PIXELS:
        tail = 0
    return (out_w - tail + step - 1) // step * step + 2 * tail


@kernel
def wide_steps(out_w):
    """How many fourteen-pixel steps begin a row of ``out_w`` pixels: the count that spends the fewest pixel
    slots, the rest of the row going as :func:`_step_cost` says (32 pixels: four steps of eight, not two of
    fourteen and a step of eight for the last four).

    Examples
    --------
    >>> wide_steps(14), wide_steps(28), wide_steps(32), wide_steps(56), wide_steps(69), wide_steps(17)
    (1, 2, 0, 4, 4, 0)
    """
    best, best_cost = 0, float(_step_cost(out_w))
    for m in range(1, out_w // 14 + 1):
        cost = 14 * m * WIDE_STEP_PIXEL_COST + (_step_cost(out_w - 14 * m) if out_w > 14 * m else 0)
        if cost < best_cost:
            best, best_cost = m, cost
    return best


@kernel
def wide_steps_fit(channels, itemsize, rows, out_w):
    """Whether a call over ``rows`` output rows ``out_w`` pixels wide, ``channels`` per pixel, goes fourteen
    pixels per step (:func:`_fourteen_pixels_5`): unless its output goes to memory at a wide pixel stride,
    where a step's fourteen stores miss at once (one process, 2 threads, us, eight-pixel -> fourteen-pixel
    steps: 8x28x28x240 5x5 486 -> 440, 4x69x69x48 7x7 517 -> 484, 1x56x56x96 7x7 111 -> 99, 1x14x14x672
    5x5 36 -> 32; but 8x14x14x672 5x5 352 -> 401, 8x14x14x480 259 -> 277, 1x33x33x960 5x5 470 -> 510).

    Examples
    --------
    >>> wide_steps_fit(48, 4, 276, 69), wide_steps_fit(672, 4, 7, 14), wide_steps_fit(672, 4, 56, 14)
    (True, True, False)
    """
    return (channels * itemsize <= WIDE_STEP_MAX_PIXEL_BYTES
            or 2 * rows * out_w * channels * itemsize <= WIDE_STEP_MAX_FOOTPRINT_BYTES)


@kernel
def _forward_row(buf, wb, v_top, col, dil_h, kh, kw, stride_w, out, o, pixel_stride, out_w, n, wide_count):
    """``out_w`` output pixels from a packed block (window top row ``buf[v_top]``, first pixel's window at
    column ``col``), stored from flat index ``o`` of ``out`` (pixel ``j`` at ``o + j * pixel_stride``).
    Filters 5 and 7 wide have routines of their own, other widths take :func:`_eight_pixels_any`;
    ``stride_w`` must be 1 or 2 (the band holds those steps' columns; :mod:`sepconv.fast.depthwise`
    routes only those).  ``wide_count``: steps of fourteen pixels that begin the row (:func:`_fourteen_pixels_5`;
    stride 1, filters 5 and 7 wide only), the rest of the row as below."""
    count = lanes(buf)
    width = buf.shape[1]
    z = vzeros(buf)
    row_step = dil_h * width * count
    if wide_count > 0:
        j = 0
        for _ in range(wide_count):
            a14 = (z, z, z, z, z, z, z, z, z, z, z, z, z, z)
            q = (v_top * width + col + j) * count
            for di in range(kh):
                if kw == 5:
                    a14 = _fourteen_pixels_5(buf, q, wb, di * kw * count, a14)
                else:
                    a14 = _fourteen_pixels_7(buf, q, wb, di * kw * count, a14)
                q += row_step
            _store_pixels(out, o + j * pixel_stride, pixel_stride, a14, n, 14)
            j += 14
        if j == out_w:
            return
        col += j
        o += j * pixel_stride
        out_w -= j
    step = pixels_per_step(out_w)
    tail = out_w % step
    if tail > TAIL_MAX_SINGLE_PIXELS:
        tail = 0
    for j in range(out_w - tail, out_w):  # the last few pixels one by one rather than in a whole step
        q = (v_top * width + col + j * stride_w) * count
        vstore_n(out, o + j * pixel_stride, _one_pixel(buf, q, wb, row_step, kh, kw), n)
    out_w -= tail
    if step == 7:
        for j in range(0, out_w, 7):
            a7 = (z, z, z, z, z, z, z)
            q = (v_top * width + col + j * stride_w) * count
            for di in range(kh):
                t = di * kw * count
                if kw == 5:
                    a7 = _seven_pixels_5_s1(buf, q, wb, t, a7) if stride_w == 1 else _seven_pixels_5_s2(buf, q, wb, t, a7)
                elif kw == 7:
                    a7 = _seven_pixels_7_s1(buf, q, wb, t, a7) if stride_w == 1 else _seven_pixels_7_s2(buf, q, wb, t, a7)
                else:
                    a7 = _seven_pixels_any(buf, q, wb, t, kw, stride_w, a7)
                q += row_step
            _store_pixels(out, o + j * pixel_stride, pixel_stride, a7, n, out_w - j)
        return
    for j in range(0, out_w, 8):
        a = (z, z, z, z, z, z, z, z)
        q = (v_top * width + col + j * stride_w) * count
        for di in range(kh):
            t = di * kw * count
            if kw == 5:
                a = _eight_pixels_5_s1(buf, q, wb, t, a) if stride_w == 1 else _eight_pixels_5_s2(buf, q, wb, t, a)
            elif kw == 7:
                a = _eight_pixels_7_s1(buf, q, wb, t, a) if stride_w == 1 else _eight_pixels_7_s2(buf, q, wb, t, a)
            else:
                a = _eight_pixels_any(buf, q, wb, t, kw, stride_w, a)
            q += row_step
        _store_pixels(out, o + j * pixel_stride, pixel_stride, a, n, out_w - j)


@kernel
def band_rows_of(run):
    """Output rows per band for a call that computes ``run`` rows of an image (at most): the nearest whole number
    of bands of :data:`PACKED_BAND_ROWS` rows, cut evenly.

    Examples
    --------
    >>> band_rows_of(33), band_rows_of(56), band_rows_of(74), band_rows_of(12)
    (33, 28, 37, 12)
    """
    return -(-run // max(1, (run + PACKED_BAND_ROWS // 2) // PACKED_BAND_ROWS))


@kernel
def column_tiles(out_w, band_bytes, kw, dil_w):
    """Output columns per tile of a band of ``band_bytes`` (its input and output rows): ``out_w`` (one tile)
    when the band fits :data:`PACKED_BAND_BYTES`, else the fewest tiles that fit, rounded up to whole
    fourteen-pixel steps (unless that leaves a last tile narrower than :data:`PACKED_TILE_MIN_REACHES` filter
    reaches: 31 columns of a 7x7 filter in 28 and 3 took 1.3x the time of one tile), unless they would be
    narrower than that.
    One process, 2 threads, public calls, three alternating runs, us, one tile -> tiles: 1x147x147x64 5x5
    853-864 -> 615-682, 1x112x112x64 5x5 411-450 -> 322-385, 1x112x112x96 5x5 stride 2 319-406 -> 281-309,
    1x56x56x144 5x5 164-192 -> 159-170; 1x56x56x144 7x7 212-261 -> 225-249 and 1x56x56x96 7x7 131-176 ->
    147-169 within the noise.  A band cut to fewer rows instead (its filter rows packed again in each) lost
    on 8x28x28x240 5x5 (0.97 -> 1.1 of PyTorch's time) and 1x65x65x320 5x5 dilation 2 (1.55 -> 1.8).

    Examples
    --------
    >>> column_tiles(147, 32 * (147 + 147) * 64 * 4, 5, 1), column_tiles(112, 32 * 224 * 256, 5, 1)
    (56, 56)
    >>> column_tiles(56, 36 * 112 * 576, 7, 1), column_tiles(28, 28 * 56 * 960, 5, 1), column_tiles(65, 5 << 20, 5, 2)
    (28, 28, 65)
    >>> column_tiles(31, (67 * 67 + 31 * 31) * 384, 7, 1), column_tiles(60, 3 << 20, 5, 1)
    (31, 20)
    """
    tiles = -(-band_bytes // PACKED_BAND_BYTES)
    if tiles <= 1:
        return out_w
    narrowest = PACKED_TILE_MIN_REACHES * (kw - 1) * dil_w
    width = -(-out_w // tiles)
    rounded = -(-width // 14) * 14
    if out_w % rounded == 0 or out_w % rounded >= narrowest:  # no last tile of a few columns
        width = rounded
    if width >= out_w or width < narrowest:
        return out_w
    return width


@kernel
def rolling_fit(image_bytes, pixel_bytes, out_h):
    """Whether a stride-2 forward packs its input row by row (:func:`_forward_rows_rolling`): images from
    :data:`ROLLING_MIN_IMAGE_BYTES` of at least :data:`ROLLING_MIN_ROWS` output rows whose pixels are a multiple
    of :data:`ROLLING_PIXEL_BYTES`."""
    return (image_bytes >= ROLLING_MIN_IMAGE_BYTES and out_h >= ROLLING_MIN_ROWS
            and pixel_bytes % ROLLING_PIXEL_BYTES == 0)


@kernel
def _pack_rolling_row(x, b, y, pad_left, ks, ns, table, ring, slot):
    """Input row ``y`` of image ``b`` (zeros where ``y`` is outside the input) into row ``slot`` of every ring of
    ``ring`` ``[group, 2 * reach, span, lanes]`` and into its twin ``slot + reach``, block ``g`` (channels
    ``ks[g] .. ks[g] + ns[g]``) into ring ``g``: each pixel's blocks read one after the other, so that the input
    is read in order, whole lines.  Only the positions ``table[0, 0] .. table[0, 1]`` are written (the padding
    columns stay zero)."""
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    count = lanes(x)
    reach, span = ring.shape[1] // 2, ring.shape[2]
    size = 2 * reach * span * count
    p0, p1 = slot * span * count, (slot + reach) * span * count
    m_lo, m_hi = table[0, 0], table[0, 1]
    if 0 <= y < in_h:
        row = ((b * in_h + y) * in_w - pad_left) * c
        for m in range(m_lo, m_hi):
            for g in range(ks.shape[0]):
                v = vload_n(x, row + m * c + ks[g], ns[g])
                vstore(ring, g * size + p0 + m * count, v)
                vstore(ring, g * size + p1 + m * count, v)
    else:
        z = vzeros(x)
        for g in range(ks.shape[0]):
            for m in range(m_lo, m_hi):
                vstore(ring, g * size + p0 + m * count, z)
                vstore(ring, g * size + p1 + m * count, z)


@kernel
def _forward_rows_rolling(x, w, out, row_begin, row_end, stride_h, dil_h, pad_top, pad_left, shift):
    """:func:`depthwise_nhwc_forward_packed_rows` at horizontal stride 2 (dilation 1), output rows ``[row_begin,
    row_end)``, the input packed row by row into rings of the filter's vertical reach: a group of channel blocks
    at a time, each output row packs the ``stride_h`` input rows it adds to the window and computes its blocks.
    Every input row is read once per group, its pixels' blocks in order, where a band packed block by block read
    one line per pixel and page (see :data:`ROLLING_MIN_IMAGE_BYTES`).  Each ring holds every row twice (rows
    ``v`` and ``v + reach``), so that a window is ``reach`` consecutive rows from any slot."""
    c = x.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    kh, kw = w.shape[0], w.shape[1]
    count = lanes(x)
    reach = (kh - 1) * dil_h + 1
    span, table = phase_table(out_w, x.shape[2], kw, 2, 1, pad_left)
    blocks = _channel_blocks(c, shift, count)
    group = max(1, min(blocks, ROLLING_RING_BYTES // (2 * reach * span * count * x.itemsize)))
    ring = empty_on_line(group * 2 * reach * span * count, x).reshape((group, 2 * reach, span, count))
    ring[:, :, :table[0, 0]] = 0  # the padding columns, never written by the rows' packs
    ring[:, :, table[0, 1]:] = 0
    wbs = empty_on_line(blocks * kh * kw * count, x)
    pack_filter_blocks(w.reshape(kh * kw, c), shift, wbs)  # every block's taps, laid out once
    wbs = wbs.reshape((blocks, kh * kw, count))
    ks = np.empty(group, np.int64)
    ns = np.empty(group, np.int64)
    for kb0 in range(0, blocks, group):
        members = min(group, blocks - kb0)
        for g in range(members):
            ks[g], ns[g] = _channel_block(kb0 + g, c, shift, count)
        image, packed_to = -1, 0
        for r in range(row_begin, row_end):
            b = r // out_h
            i = r - b * out_h
            top = i * stride_h - pad_top
            if b != image:
                image, packed_to = b, top
            for y in range(max(packed_to, top), top + reach):
                _pack_rolling_row(x, b, y, pad_left, ks[:members], ns[:members], table, ring, y % reach)
            packed_to = top + reach
            for g in range(members):
                _forward_row(ring[g], wbs[kb0 + g], top % reach, 0, dil_h, kh, kw, 2, out, ((b * out_h + i) * out_w) * c
                             + ks[g], c, table[0, 2], ns[g], 0)


@kernel
def depthwise_nhwc_forward_packed_rows(x, w, out, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top,
                                       pad_left):
    """Forward with a filter ``w`` ``[kh, kw, C]``, horizontal stride 1 (any dilation) or 2 (dilation 1),
    any vertical stride and dilation, any padding: output rows ``[row_begin, row_end)``."""
    x, w, out = borrowed(x), borrowed(w), borrowed(out)
    c = x.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    kh, kw = w.shape[0], w.shape[1]
    count = lanes(x)
    w2 = w.reshape(kh * kw, c)
    if stride_w == 2:  # the blocks from the input's first aligned channel: the copy reads four input pixels per
        # output pixel, one line each instead of two (one process, 2 threads, an input 16 bytes past a line, us:
        # 1x56x56x480 7x7 VALID 459-582 -> 340-365, SAME 535-630 -> 363-387, 1x112x112x144 5x5 470-527 -> 385-413)
        shift = aligned_shift(x)
    else:
        shift = aligned_shift(out) if c > PACKED_SPLIT_STORES_MAX_VECTORS * count else 0
    if stride_w == 2 and rolling_fit(x.shape[1] * x.shape[2] * c * x.itemsize, c * x.itemsize, out_h):
        _forward_rows_rolling(x, w, out, row_begin, row_end, stride_h, dil_h, pad_top, pad_left, shift)
        return
    band_max = band_rows_of(max(1, min(out_h, row_end - row_begin)))
    band_rows = (band_max - 1) * stride_h + (kh - 1) * dil_h + 1
    tile_w = column_tiles(out_w, (band_rows * x.shape[2] + band_max * out_w) * c * x.itemsize, kw, dil_w)
    tiles = -(-out_w // tile_w)
    spans = np.empty(tiles, np.int64)
    tables = np.empty((tiles, dil_w, 3), np.int64)
    wide_counts = np.zeros((tiles, dil_w), np.int64)  # fourteen-pixel steps per row of each phase (none at stride 2)
    wide = stride_w == 1 and (kw == 5 or kw == 7) and wide_steps_fit(c, x.itemsize, row_end - row_begin, out_w)
    for tile in range(tiles):
        j0 = tile * tile_w
        spans[tile], tables[tile] = phase_table(min(tile_w, out_w - j0), x.shape[2], kw, stride_w, dil_w,
                                                pad_left - j0 * stride_w)
        if wide:
            for phase in range(dil_w):
                wide_counts[tile, phase] = wide_steps(tables[tile, phase, 2])
    wb = empty_on_line(kh * kw * count, x).reshape((kh * kw, count))
    blocks = _channel_blocks(c, shift, count)
    group = 1
    if stride_w == 1 and x.shape[1] * x.shape[2] * c * x.itemsize >= PACKED_GROUP_MIN_IMAGE_BYTES:
        group = min(blocks, PACKED_GROUP_BLOCKS)
    storage = empty_on_line(group * band_rows * spans.max() * dil_w * count, x)
    ks = np.empty(group, np.int64)
    ns = np.empty(group, np.int64)
    r = row_begin
    while r < row_end:
        b = r // out_h
        i_begin = r - b * out_h
        i_end = min(out_h, i_begin + (row_end - r), i_begin + band_max)
        rows = (i_end - 1 - i_begin) * stride_h + (kh - 1) * dil_h + 1
        row_origin = i_begin * stride_h - pad_top
        for tile in range(tiles):
            j0 = tile * tile_w
            span, table, tile_pad = spans[tile], tables[tile], pad_left - j0 * stride_w
            bands = storage[:group * rows * span * dil_w * count].reshape((group, rows, span * dil_w, count))
            for g in range(group):
                _zero_padding(x, row_origin, span, table, bands[g])
            for kb0 in range(0, blocks, group):
                members = min(group, blocks - kb0)
                for g in range(members):
                    ks[g], ns[g] = _channel_block(kb0 + g, c, shift, count)
                if members == 1:
                    _pack_channel_block(x, b, row_origin, tile_pad, ks[0], ns[0], span, table, bands[0])
                else:
                    _pack_channel_group(x, b, row_origin, tile_pad, ks[:members], ns[:members], span, table,
                                        bands)
                for g in range(members):
                    k, n, band = ks[g], ns[g], bands[g]
                    for t in range(kh * kw):
                        vstore(wb, t * count, vload_n(w2, t * c + k, n))
                    for i in range(i_begin, i_end):
                        o = ((b * out_h + i) * out_w + j0) * c + k
                        for phase in range(dil_w):
                            _forward_row(band, wb, (i - i_begin) * stride_h, phase * span, dil_h, kh, kw, stride_w,
                                         out, o + phase * c, dil_w * c, table[phase, 2], n, wide_counts[tile, phase])
        r += i_end - i_begin


@kernel(parallel=True)
def depthwise_nhwc_forward_packed_parallel(x, w, out, n_chunks, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):
    """:func:`depthwise_nhwc_forward_packed_rows` over all output rows in ``n_chunks`` parallel blocks."""
    rows = out.shape[0] * out.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_forward_packed_rows(x, w, out, t * rows // n_chunks, (t + 1) * rows // n_chunks, stride_h,
                                           stride_w, dil_h, dil_w, pad_top, pad_left)
