"""Depthwise convolution kernels, NHWC, channel multiplier 1: forward, input gradient, filter gradient.

Every kernel takes C-contiguous arrays and plain ints and writes into a preallocated output;
nothing is validated here (``sepconv.fast.depthwise`` does the bookkeeping).  Shapes::

    x    [N, in_h, in_w, C]        input
    w    [kh, kw, C]               filter (one per channel)
    out  [N, out_h, out_w, C]      output

A channel multiplier ``M > 1`` is brought back to ``M = 1`` by the caller: the filter
``[kh, kw, C, M]`` is already the ``[kh, kw, C*M]`` filter of the input with each channel
repeated ``M`` times (:func:`repeat_channels`), and the input gradient is the sum over ``q``
of that problem's input gradient.

Padding is never materialized.  An output row whose filter rows all lie inside the input
reads them directly; a filter row in the padding reads ``zero_row`` (one row of zeros).  The
pixels whose columns all lie inside the input (the interior) take the SIMD loops; the others
take loops whose tap ranges are clipped to the input (``tap_range``).

The 3x3 and 5x5 kernels use explicit 64-byte vectors (:mod:`sepconv.kernels._simd`): channel
blocks outside, pixels inside, so a block's filter taps (forward) or its filter-gradient sums
(backward) stay in vector registers along a whole row.  The first block ends at the input's
first cache-line-aligned channel (:func:`aligned_shift`; the outputs are allocated at the
input's offset from a line), the last is masked; the Winograd pairs instead keep every block whole
from that channel, the last one wrapping into the next pixel (:func:`_wrapped_block`).  With stride and dilation 1 the 3x3 window
slides (three new input loads per pixel), and two output rows share their middle input rows; at
horizontal stride 2 it slides by two columns (six loads per pixel).  Rows wider than a block's
pass can keep in L1 go by in tiles of pixels, each tile's channel blocks in turn
(:data:`SAME_TILE_PIXELS`, :data:`S2_TILE_PIXELS`).  With a horizontal dilation ``d`` the window
slides by ``d`` within each of a row's ``d`` phases, and rows ``i`` and ``i + d`` go in pairs, phase by
phase; on images of :data:`PIXEL_MAJOR_MIN_IMAGE_BYTES` or more the pairs go pixel by pixel instead,
channel blocks inside (:func:`_forward_interior_3x3_two_rows_pixel_major`).
The forward of every filter but 3x3 at horizontal stride 1 (any dilation) or 2 runs on packed
channel blocks instead (:mod:`sepconv.kernels.depthwise_packed`) when the packed copy stays small
(``sepconv.fast.depthwise._packed``); the 5x5 kernels here and the general one (SIMD too, four
pixels per weight load: :func:`_forward_interior_general`, the clipped pixels looping over their
taps inside the input) serve the other strides and dilations, inputs with fewer than half a vector
of channels and images shorter than the filter.  At stride 1, layers with fewer channels than a
vector and a filter that is neither 3x3 nor packed run each output row as one flat run of vectors
(:func:`depthwise_nhwc_forward_few_channels_rows`).  The filter gradient has SIMD kernels for 3x3,
5x5 and 7-wide filters (:func:`depthwise_nhwc_backprop_filter_w7_rows`, one filter row at a time);
other sizes go tap by tap.

Work is split over flat output rows ``r = b * out_h + i``: the ``*_rows`` kernels do the rows
``[row_begin, row_end)`` on the calling thread, and the ``*_parallel`` drivers cut all rows
into ``n_chunks`` contiguous blocks run by ``prange`` (both threads busy whatever the batch).

Examples
--------
A 3x3 filter of ones over a 4x4 image of ones, SAME padding (1 on each side), stride 1:

>>> import numpy as np
>>> x, w = np.ones((1, 4, 4, 2), np.float32), np.ones((3, 3, 2), np.float32)
>>> out, zero_row = np.empty((1, 4, 4, 2), np.float32), np.zeros((4, 2), np.float32)
>>> depthwise_nhwc_forward_3x3_rows(x, w, out, zero_row, 0, 4, 1, 1, 1, 1, 1, 1)
>>> out[0, :, :, 0]
array([[4., 6., 6., 4.],
       [6., 9., 9., 6.],
       [6., 9., 9., 6.],
       [4., 6., 6., 4.]], dtype=float32)
"""

from __future__ import annotations

from numba import prange

from ._borrowed import borrowed
from ._jit import kernel
from ._simd import (
    VECTOR_BYTES,
    address,
    lanes,
    prefetch,
    vadd,
    vfma,
    vload,
    vload_group_sums,
    vload_lanes,
    vload_n,
    vload_part,
    vmul,
    vsplat,
    vstore,
    vstore_lanes,
    vstore_n,
    vstore_part,
    vstore_repeated,
    vsub,
    vzeros,
)
from ._window import interior, row_or_zeros, tap_range

# --------------------------------------------------------------------------- forward


@kernel
def _forward_interior_general(o, x, w2, kh, b, ih0, dil_h, j_lo, j_hi, stride_w, dil_w, pad_left, shift):
    """Pixels ``[j_lo, j_hi)`` of an output row whose columns are all inside the input, any filter size
    (``w2`` ``[kh * kw, C]``): SIMD channel blocks, four pixels at a time sharing each tap's weight
    vector (loaded from cache: a 7x7 filter does not fit in the registers).  Filter rows outside
    the input are skipped.  Input rows are addressed by flat index into ``x``, not as row views:
    a view made in this loop costs two atomic reference-count updates (measured: 7x7 1x56x56x96
    VALID 1035 -> 703 us, SAME 1201 -> 729 us; it was 1996 us tap by tap)."""
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    count = lanes(o)
    kw = w2.shape[0] // kh
    step, gap = stride_w * c, dil_w * c
    n_quads = (j_hi - j_lo) // 4
    di_lo, di_hi = tap_range(ih0, dil_h, kh, in_h)
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        for qd in range(n_quads + (j_hi - j_lo - 4 * n_quads)):
            quad = qd < n_quads
            j = j_lo + 4 * qd if quad else j_lo + 4 * n_quads + (qd - n_quads)
            a0 = a1 = a2 = a3 = vzeros(o)
            for di in range(di_lo, di_hi):
                q = ((b * in_h + ih0 + di * dil_h) * in_w + j * stride_w - pad_left) * c + k
                t = di * kw * c + k
                for _ in range(kw):
                    wv = vload_n(w2, t, n)
                    a0 = vfma(vload_n(x, q, n), wv, a0)
                    if quad:
                        a1 = vfma(vload_n(x, q + step, n), wv, a1)
                        a2 = vfma(vload_n(x, q + 2 * step, n), wv, a2)
                        a3 = vfma(vload_n(x, q + 3 * step, n), wv, a3)
                    q += gap
                    t += c
            vstore_n(o, j * c + k, a0, n)
            if quad:
                vstore_n(o, (j + 1) * c + k, a1, n)
                vstore_n(o, (j + 2) * c + k, a2, n)
                vstore_n(o, (j + 3) * c + k, a3, n)


@kernel
def _forward_pixels_clipped(o, x, w2, kh, b, ih0, dil_h, j_begin, j_end, stride_w, dil_w, pad_left, shift):
    """Pixels ``[j_begin, j_end)`` of an output row whose columns reach into the padding, any filter size:
    SIMD channel blocks, one pixel at a time over only the taps inside the input (the border of
    :func:`_forward_interior_general`; measured: a 7x7 1x56x56x96 SAME layer spent as long on its
    six border columns, tap by tap with the sums in memory, as on the other fifty)."""
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    count = lanes(o)
    kw = w2.shape[0] // kh
    di_lo, di_hi = tap_range(ih0, dil_h, kh, in_h)
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        for j in range(j_begin, j_end):
            c0 = j * stride_w - pad_left
            dj_lo, dj_hi = tap_range(c0, dil_w, kw, in_w)
            acc = vzeros(o)
            for di in range(di_lo, di_hi):
                row = (b * in_h + ih0 + di * dil_h) * in_w
                for dj in range(dj_lo, dj_hi):
                    acc = vfma(vload_n(x, (row + c0 + dj * dil_w) * c + k, n), vload_n(w2, (di * kw + dj) * c + k, n), acc)
            vstore_n(o, j * c + k, acc, n)


@kernel
def depthwise_nhwc_forward_rows(x, w, out, zero_row, row_begin, row_end, stride_h, stride_w, dil_h, dil_w,
                                pad_top, pad_left):
    """Forward, any filter size/stride/dilation/padding: output rows ``[row_begin, row_end)``; the
    interior pixels by :func:`_forward_interior_general`, the others by :func:`_forward_pixels_clipped`."""
    x, w, out, zero_row = borrowed(x), borrowed(w), borrowed(out), borrowed(zero_row)
    in_w, c = x.shape[2], x.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    kh, kw = w.shape[0], w.shape[1]
    w2 = w.reshape(kh * kw, c)
    shift = aligned_shift(x)
    j_lo, j_hi = interior(out_w, in_w, kw, stride_w, dil_w, pad_left)
    for r in range(row_begin, row_end):
        b = r // out_h
        i = r - b * out_h
        ih0 = i * stride_h - pad_top
        _forward_interior_general(out[b, i], x, w2, kh, b, ih0, dil_h, j_lo, j_hi, stride_w, dil_w, pad_left, shift)
        _forward_pixels_clipped(out[b, i], x, w2, kh, b, ih0, dil_h, 0, j_lo, stride_w, dil_w, pad_left, shift)
        _forward_pixels_clipped(out[b, i], x, w2, kh, b, ih0, dil_h, j_hi, out_w, stride_w, dil_w, pad_left, shift)


@kernel
def _forward_border_pixels_5x5(o, x0, x1, x2, x3, x4, v, j_begin, j_end, in_w, stride_w, dil_w, pad_left):
    """Pixels ``[j_begin, j_end)`` of an output row of the 5x5 kernel whose columns reach into the
    padding: only the filter columns inside the input, each one pass over the channels with all its
    five rows; ``v`` is the filter ``[25, C]``."""
    c = o.shape[1]
    for j in range(j_begin, j_end):
        c0 = j * stride_w - pad_left
        dj_lo, dj_hi = tap_range(c0, dil_w, 5, in_w)
        for k in range(c):
            o[j, k] = 0.0
        for dj in range(dj_lo, dj_hi):
            col = c0 + dj * dil_w
            for k in range(c):
                o[j, k] += (x0[col, k] * v[dj, k] + x1[col, k] * v[5 + dj, k] + x2[col, k] * v[10 + dj, k]
                            + x3[col, k] * v[15 + dj, k] + x4[col, k] * v[20 + dj, k])


@kernel
def _forward_border_3x3(o, x0, x1, x2, w9, j_begin, j_end, in_w, stride_w, dil_w, pad_left, shift):
    """Pixels ``[j_begin, j_end)`` of an output row of the 3x3 kernel whose columns reach into the padding
    (one or two per row end): for each channel block, the three taps of each filter column inside the
    input, one store (scalar loops over the channels, one pass per column, before: 1x50x50x16
    dilation 3 52-61 -> 35-49 us; wide layers unchanged)."""
    c = o.shape[1]
    count = lanes(o)
    blocks = _channel_blocks(c, shift, count)
    for j in range(j_begin, j_end):
        c0 = j * stride_w - pad_left
        dj_lo, dj_hi = tap_range(c0, dil_w, 3, in_w)
        for kb in range(blocks):
            k, n = _channel_block(kb, c, shift, count)
            s = vzeros(o)
            for dj in range(dj_lo, dj_hi):
                q = (c0 + dj * dil_w) * c + k
                s = vfma(vload_n(x0, q, n), vload_n(w9, dj * c + k, n), s)
                s = vfma(vload_n(x1, q, n), vload_n(w9, (3 + dj) * c + k, n), s)
                s = vfma(vload_n(x2, q, n), vload_n(w9, (6 + dj) * c + k, n), s)
            vstore_n(o, j * c + k, s, n)


# Pixels of at most this many vectors keep whole (unaligned) channel blocks: shifting the blocks to
# the first aligned channel costs them one more pass over the row (C = 32 float32 at 16 bytes past a
# line: blocks of 12, 16 and 4 channels instead of two of 16), which costs more than the split loads
# (A/B, forward, 2 threads, three runs: 2x112x112x32 0.84-0.93x the time, 8x56x56x32 0.89-0.92x;
# with C = 48 or 64 the shifted blocks stay faster: 1.12-1.18x slower unshifted).
SPLIT_LOADS_MAX_VECTORS = 2


@kernel
def aligned_shift(a):
    """Channels before the first 64-byte-aligned vector of each pixel of ``a`` (``[..., C]``, C-contiguous).

    0 when the pixels are not all at the same offset from a cache line (``C`` not a multiple of
    the lane count), when ``a`` is aligned already (see :mod:`sepconv.fast.aligned`), or when a
    pixel holds at most :data:`SPLIT_LOADS_MAX_VECTORS` vectors.
    """
    count = lanes(a)
    itemsize = VECTOR_BYTES // count
    if a.shape[-1] % count or address(a) % itemsize or a.shape[-1] <= SPLIT_LOADS_MAX_VECTORS * count:
        return 0
    return (-address(a) % VECTOR_BYTES) // itemsize


@kernel
def _channel_blocks(c, shift, count):
    """How many channel blocks of ``count`` lanes cover ``C``, when the first block has ``shift`` channels
    (those before the input's first aligned vector; 0: none)."""
    if shift == 0:
        return (c + count - 1) // count
    return 1 + (c - shift + count - 1) // count


@kernel
def _channel_block(kb, c, shift, count):
    """The first channel and the size of channel block ``kb`` (see :func:`_channel_blocks`)."""
    if shift == 0:
        k = kb * count
    elif kb == 0:
        return 0, shift
    else:
        k = shift + (kb - 1) * count
    return k, min(count, c - k)


@kernel
def _weights3(w, tap, c, k, n):
    """The channel block ``[k, k + n)`` of taps ``tap .. tap + 2`` of ``w`` ``[taps, C]``, as three vectors."""
    return vload_n(w, tap * c + k, n), vload_n(w, (tap + 1) * c + k, n), vload_n(w, (tap + 2) * c + k, n)


@kernel
def _weights5(w, tap, c, k, n):
    """As :func:`_weights3`, five taps."""
    return (vload_n(w, tap * c + k, n), vload_n(w, (tap + 1) * c + k, n), vload_n(w, (tap + 2) * c + k, n),
            vload_n(w, (tap + 3) * c + k, n), vload_n(w, (tap + 4) * c + k, n))


@kernel
def _taps3(xr, q, gap, ws, n):
    """``sum_t xr.flat[q + t * gap : ... + n] * ws[t]`` over three taps: one filter row of one pixel."""
    return vfma(vload_n(xr, q + 2 * gap, n), ws[2], vfma(vload_n(xr, q + gap, n), ws[1], vmul(vload_n(xr, q, n), ws[0])))


@kernel
def _taps5(xr, q, gap, ws, n):
    """As :func:`_taps3`, five taps."""
    s = vfma(vload_n(xr, q + 2 * gap, n), ws[2], vfma(vload_n(xr, q + gap, n), ws[1], vmul(vload_n(xr, q, n), ws[0])))
    return vfma(vload_n(xr, q + 4 * gap, n), ws[4], vfma(vload_n(xr, q + 3 * gap, n), ws[3], s))


# With horizontal dilation at stride 1, a row whose interior is wider than this goes by in tiles of
# DILATED_TILE_PIXELS pixels, each tile's channel blocks in turn: a channel block's pass over a whole
# row reads one 64-byte line per pixel from each of four rows hundreds of kilobytes long, and the
# next block reads the lines beside them (A/B, 2 threads: 1x65x65x320 dilation 4 0.86-0.89,
# 1x129x129x64 dilation 6 0.93-0.96, rows of 56 or fewer and dilation-2 layers 0.98-1.03).
DILATED_TILE_MIN_WIDTH = 56
DILATED_TILE_PIXELS = 32

# A dilated pass over a row's phase steps from pixel to pixel by ``dilation * C`` values; from a page
# (64 vectors) up, the hardware's stream prefetcher, which follows accesses within a 4 KB page,
# does not see it, and each channel block's pass then waits on its lines one by one: the two-row
# kernels prefetch the lines two channel blocks ahead there (A/B, 2 threads, 3 processes each:
# 1x33x33x576 d2 SAME 0.79, VALID 0.95, 1x73x73x320 d4 VALID 0.97; below a page, in-cache layers such
# as 1x40x40x128 d4 lost 11-17% to the extra instructions, so they do not).
PREFETCH_GAP_VECTORS = 64


# A dilated image of at least this many bytes goes pixel by pixel instead (channel blocks inside,
# :func:`_forward_interior_3x3_two_rows_pixel_major`): the phase-by-phase passes reuse the columns a
# dilation apart only while a tile's lines stay in cache; past that each channel block's pass reads
# one line per pixel from six rows far apart, where a pixel's channels read in order stream from memory.
PIXEL_MAJOR_MIN_IMAGE_BYTES = 2 * 1024 * 1024


@kernel
def _forward_interior_3x3_two_rows_pixel_major(o0, o1, x0, x1, x2, x3, w9, j_lo, j_hi, dil_w, pad_left, shift):
    """As :func:`_forward_interior_3x3_two_rows`, pixel by pixel with the channel blocks inside: each
    block's nine weights and twelve input vectors loaded anew (no window slides), every row read in
    order."""
    c = o0.shape[1]
    count = lanes(o0)
    gap = dil_w * c
    blocks = _channel_blocks(c, shift, count)
    for j in range(j_lo, j_hi):
        q0 = (j - pad_left) * c
        for kb in range(blocks):
            k, n = _channel_block(kb, c, shift, count)
            wa, wb, we = _weights3(w9, 0, c, k, n), _weights3(w9, 3, c, k, n), _weights3(w9, 6, c, k, n)
            q = q0 + k
            b0, b1, b2 = vload_n(x1, q, n), vload_n(x1, q + gap, n), vload_n(x1, q + 2 * gap, n)
            e0, e1, e2 = vload_n(x2, q, n), vload_n(x2, q + gap, n), vload_n(x2, q + 2 * gap, n)
            mid0 = vadd(_row3(b0, b1, b2, wb), _row3(e0, e1, e2, we))
            mid1 = vadd(_row3(b0, b1, b2, wa), _row3(e0, e1, e2, wb))
            vstore_n(o0, j * c + k, vadd(mid0, _taps3(x0, q, gap, wa, n)), n)
            vstore_n(o1, j * c + k, vadd(mid1, _taps3(x3, q, gap, we, n)), n)


@kernel
def _forward_interior_3x3(o, x0, x1, x2, w9, j_lo, j_hi, stride_w, dil_w, pad_left, shift):
    """Pixels ``[j_lo, j_hi)`` of an output row whose three columns are inside the input rows ``x0, x1, x2``.

    Channel blocks outside, pixels inside: the block's nine weight vectors stay in registers
    while the pixels go by, and each pixel is nine multiply-adds, one store and nine loads (three
    at stride 1, whose window slides: measured 10-30% faster, 2 threads, dilation 1: 8x56x56x144
    1132 -> 1035 us, 1x147x147x64 603 -> 441, 1x14x14x576 64 -> 46; with dilation d it slides by d
    within each of the row's d phases: 1x33x33x576 d2 283 -> 274, 1x65x65x320 d4 770 -> 730).
    """
    if stride_w == 1 and dil_w > 1 and j_hi - j_lo > DILATED_TILE_MIN_WIDTH:
        for j0 in range(j_lo, j_hi, DILATED_TILE_PIXELS):
            _forward_interior_3x3_pixels(o, x0, x1, x2, w9, j0, min(j_hi, j0 + DILATED_TILE_PIXELS), 1, dil_w,
                                         pad_left, shift)
    else:
        _forward_interior_3x3_pixels(o, x0, x1, x2, w9, j_lo, j_hi, stride_w, dil_w, pad_left, shift)


@kernel
def _forward_interior_3x3_pixels(o, x0, x1, x2, w9, j_lo, j_hi, stride_w, dil_w, pad_left, shift):
    """The pixels of :func:`_forward_interior_3x3`, channel blocks outside, pixels inside."""
    c = o.shape[1]
    count = lanes(o)
    step, gap = stride_w * c, dil_w * c
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        wa, wb, we = _weights3(w9, 0, c, k, n), _weights3(w9, 3, c, k, n), _weights3(w9, 6, c, k, n)
        q = (j_lo * stride_w - pad_left) * c + k
        if stride_w == 1:
            # a sliding window: pixels j, j + d, j + 2d, ... (dilation d) share their columns, so the
            # window slides by d within each of the d phases of the row (three loads per pixel, not nine)
            for phase in range(min(dil_w, j_hi - j_lo)):
                p = q + phase * c
                a0, b0, e0 = vload_n(x0, p, n), vload_n(x1, p, n), vload_n(x2, p, n)
                a1, b1, e1 = vload_n(x0, p + gap, n), vload_n(x1, p + gap, n), vload_n(x2, p + gap, n)
                for j in range(j_lo + phase, j_hi, dil_w):
                    p2 = p + 2 * gap
                    a2, b2, e2 = vload_n(x0, p2, n), vload_n(x1, p2, n), vload_n(x2, p2, n)
                    s = vfma(a2, wa[2], vfma(a1, wa[1], vmul(a0, wa[0])))
                    t = vfma(b2, wb[2], vfma(b1, wb[1], vmul(b0, wb[0])))
                    u = vfma(e2, we[2], vfma(e1, we[1], vmul(e0, we[0])))
                    vstore_n(o, j * c + k, vadd(vadd(s, t), u), n)
                    a0, a1, b0, b1, e0, e1 = a1, a2, b1, b2, e1, e2
                    p += gap
        else:
            for j in range(j_lo, j_hi):
                s = vadd(vadd(_taps3(x0, q, gap, wa, n), _taps3(x1, q, gap, wb, n)), _taps3(x2, q, gap, we, n))
                vstore_n(o, j * c + k, s, n)
                q += step


# Output pixels per tile of the stride-2 3x3 forward: the tile's input columns (three rows of
# 2 * 16 + 1 pixels, ~38 KB at 96 channels) stay in L1-L2 while its channel blocks go by (A/B, one
# thread, against whole rows: 1x112x112x96 0.89, 8x112x112x96 0.89, 8x56x56x144 0.98, 1x14x14x576
# 0.92; tiles of 8 gained more on 112-wide rows, 0.75-0.85, but lost 3-5% on 28- and 56-wide ones).
S2_TILE_PIXELS = 16


@kernel
def _forward_interior_3x3_s2(o, x0, x1, x2, w9, j_lo, j_hi, pad_left, shift, ahead0, ahead1, ahead2, fetch):
    """:func:`_forward_interior_3x3` at horizontal stride 2, dilation 1, in tiles of
    :data:`S2_TILE_PIXELS` pixels, each tile's channel blocks in turn.  Pixel ``j`` reads columns
    ``2j - pad_left .. + 2`` and pixel ``j + 1`` starts at the last of them, so the window slides by
    two columns (six loads per pixel, not nine).  (Channel blocks outside a whole row, as at stride
    1, swept three input rows per block, twice the output's pixels each, from L2.)  With ``fetch``, the next
    output row's new input rows ``ahead0``, ``ahead1`` (two vectors a pixel) and its output row ``ahead2`` are
    prefetched into L2 (see :func:`depthwise_nhwc_backprop_filter_3x3_rows`)."""
    c = o.shape[1]
    count = lanes(o)
    ahead = 0
    for j0 in range(j_lo, j_hi, S2_TILE_PIXELS):
        j1 = min(j0 + S2_TILE_PIXELS, j_hi)
        for kb in range(_channel_blocks(c, shift, count)):
            k, n = _channel_block(kb, c, shift, count)
            wa, wb, we = _weights3(w9, 0, c, k, n), _weights3(w9, 3, c, k, n), _weights3(w9, 6, c, k, n)
            p = (j0 * 2 - pad_left) * c + k
            a0, b0, e0 = vload_n(x0, p, n), vload_n(x1, p, n), vload_n(x2, p, n)
            for j in range(j0, j1):
                a1, b1, e1 = vload_n(x0, p + c, n), vload_n(x1, p + c, n), vload_n(x2, p + c, n)
                a2, b2, e2 = vload_n(x0, p + 2 * c, n), vload_n(x1, p + 2 * c, n), vload_n(x2, p + 2 * c, n)
                if fetch:
                    prefetch(ahead0, 2 * ahead)
                    prefetch(ahead0, 2 * ahead + count)
                    prefetch(ahead1, 2 * ahead)
                    prefetch(ahead1, 2 * ahead + count)
                    prefetch(ahead2, ahead)
                    ahead += count
                vstore_n(o, j * c + k, vadd(vadd(_row3(a0, a1, a2, wa), _row3(b0, b1, b2, wb)), _row3(e0, e1, e2, we)), n)
                a0, b0, e0 = a2, b2, e2
                p += 2 * c


@kernel
def _forward_interior_3x3_two_rows(o0, o1, x0, x1, x2, x3, w9, j_lo, j_hi, dil_w, pad_left, shift):
    """Stride 1: the interior of two output rows a vertical dilation apart, ``o0`` from input rows
    ``x0 .. x2`` and ``o1`` from ``x1 .. x3``, in one sliding pass (four input loads for two pixels
    instead of six: the middle rows are shared); with horizontal dilation ``d`` the window slides
    within each of the row's ``d`` phases, wide rows in tiles (as :func:`_forward_interior_3x3`)."""
    if dil_w > 1 and j_hi - j_lo > DILATED_TILE_MIN_WIDTH:
        for j0 in range(j_lo, j_hi, DILATED_TILE_PIXELS):
            _forward_interior_3x3_two_rows_pixels(o0, o1, x0, x1, x2, x3, w9, j0, min(j_hi, j0 + DILATED_TILE_PIXELS),
                                                  dil_w, pad_left, shift)
    else:
        _forward_interior_3x3_two_rows_pixels(o0, o1, x0, x1, x2, x3, w9, j_lo, j_hi, dil_w, pad_left, shift)


@kernel
def _forward_interior_3x3_two_rows_pixels(o0, o1, x0, x1, x2, x3, w9, j_lo, j_hi, dil_w, pad_left, shift):
    """The pixels of :func:`_forward_interior_3x3_two_rows`, channel blocks outside, phases inside."""
    c = o0.shape[1]
    count = lanes(o0)
    gap = dil_w * c
    far = gap >= PREFETCH_GAP_VECTORS * count  # the next pixel of a phase a page or more away
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        wa, wb, we = _weights3(w9, 0, c, k, n), _weights3(w9, 3, c, k, n), _weights3(w9, 6, c, k, n)
        for phase in range(min(dil_w, j_hi - j_lo)):
            q = (j_lo + phase - pad_left) * c + k
            a0, b0, e0, f0 = vload_n(x0, q, n), vload_n(x1, q, n), vload_n(x2, q, n), vload_n(x3, q, n)
            q += gap
            a1, b1, e1, f1 = vload_n(x0, q, n), vload_n(x1, q, n), vload_n(x2, q, n), vload_n(x3, q, n)
            for j in range(j_lo + phase, j_hi, dil_w):
                q += gap
                a2, b2, e2, f2 = vload_n(x0, q, n), vload_n(x1, q, n), vload_n(x2, q, n), vload_n(x3, q, n)
                if far:
                    prefetch(x0, q + 2 * count)
                    prefetch(x1, q + 2 * count)
                    prefetch(x2, q + 2 * count)
                    prefetch(x3, q + 2 * count)
                mid_b, mid_e = _row3(b0, b1, b2, wb), _row3(e0, e1, e2, we)
                vstore_n(o0, j * c + k, vadd(vadd(_row3(a0, a1, a2, wa), mid_b), mid_e), n)
                vstore_n(o1, j * c + k, vadd(vadd(_row3(b0, b1, b2, wa), _row3(e0, e1, e2, wb)), _row3(f0, f1, f2, we)),
                         n)
                a0, a1, b0, b1, e0, e1, f0, f1 = a1, a2, b1, b2, e1, e2, f1, f2


@kernel(inline=True)
def _row3(a0, a1, a2, ws):
    """One filter row of one pixel: ``a0 * ws[0] + a1 * ws[1] + a2 * ws[2]``."""
    return vfma(a2, ws[2], vfma(a1, ws[1], vmul(a0, ws[0])))


@kernel
def _forward_same_3x3(o, x0, x1, x2, w9, dil_w, shift):
    """Horizontal stride 1 and as many padding columns on each side as the dilation ``d`` (SAME,
    ``out_w == in_w``): every pixel of an output row in one sliding pass per phase (pixels ``p,
    p + d, ...``), the padding columns entering as zero vectors (no border pixels: on a 7x7 image
    they are two in seven)."""
    c = o.shape[1]
    width = o.shape[0]
    count = lanes(o)
    gap = dil_w * c
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        wa, wb, we = _weights3(w9, 0, c, k, n), _weights3(w9, 3, c, k, n), _weights3(w9, 6, c, k, n)
        for phase in range(min(dil_w, width)):
            q = phase * c + k
            a0 = b0 = e0 = vzeros(o)
            a1, b1, e1 = vload_n(x0, q, n), vload_n(x1, q, n), vload_n(x2, q, n)
            for j in range(phase, width, dil_w):
                if j + dil_w < width:
                    q += gap
                    a2, b2, e2 = vload_n(x0, q, n), vload_n(x1, q, n), vload_n(x2, q, n)
                else:
                    a2 = b2 = e2 = vzeros(o)
                vstore_n(o, j * c + k, vadd(vadd(_row3(a0, a1, a2, wa), _row3(b0, b1, b2, wb)), _row3(e0, e1, e2, we)),
                         n)
                a0, a1, b0, b1, e0, e1 = a1, a2, b1, b2, e1, e2


# A row wider than this goes by in tiles of SAME_TILE_PIXELS pixels, each tile's channel blocks in
# turn: a channel block's pass over four whole input rows then touches more lines than L1 holds, and
# the next block, which shares them, reads them again from L2.  A/B, one thread, two-row kernel:
# 1x147x147x64 0.81, 1x112x112x32 0.73; rows of 56 or fewer pixels lost 1-14% tiled, so stay whole.
# Dilated rows take the tiles of the dilated interior (DILATED_TILE_MIN_WIDTH, DILATED_TILE_PIXELS).
SAME_TILE_MIN_WIDTH = 64
SAME_TILE_PIXELS = 16


@kernel(inline=True)
def _tile_window(x0, x1, x2, x3, q, gap, n, first):
    """The first two columns of a SAME 3x3 window over four input rows at flat index ``q`` (a phase's
    first pixel in a tile): the column a dilation ``gap`` before it (zeros at the row's start: the
    padding) and its own."""
    if first:
        a0 = b0 = e0 = f0 = vzeros(x0)
    else:
        a0, b0 = vload_n(x0, q - gap, n), vload_n(x1, q - gap, n)
        e0, f0 = vload_n(x2, q - gap, n), vload_n(x3, q - gap, n)
    return a0, b0, e0, f0, vload_n(x0, q, n), vload_n(x1, q, n), vload_n(x2, q, n), vload_n(x3, q, n)


@kernel
def _forward_same_3x3_two_rows(o0, o1, x0, x1, x2, x3, w9, dil_w, shift):
    """As :func:`_forward_same_3x3`, two output rows a vertical dilation apart in one pass (as
    :func:`_forward_interior_3x3_two_rows`); wide rows in tiles (:data:`DILATED_TILE_PIXELS`).  Dilation 1 has
    a loop of its own (:func:`_forward_same_3x3_two_rows_d1`)."""
    c = o0.shape[1]
    width = o0.shape[0]
    count = lanes(o0)
    gap = dil_w * c
    far = gap >= PREFETCH_GAP_VECTORS * count  # the next pixel of a phase a page or more away
    tile = width if width <= DILATED_TILE_MIN_WIDTH else DILATED_TILE_PIXELS
    for j0 in range(0, width, tile):
        j1 = min(j0 + tile, width)
        for kb in range(_channel_blocks(c, shift, count)):
            k, n = _channel_block(kb, c, shift, count)
            wa, wb, we = _weights3(w9, 0, c, k, n), _weights3(w9, 3, c, k, n), _weights3(w9, 6, c, k, n)
            for phase in range(min(dil_w, j1 - j0)):
                q = (j0 + phase) * c + k
                a0, b0, e0, f0, a1, b1, e1, f1 = _tile_window(x0, x1, x2, x3, q, gap, n, j0 + phase < dil_w)
                for j in range(j0 + phase, j1, dil_w):
                    if j + dil_w < width:
                        q += gap
                        a2, b2, e2, f2 = vload_n(x0, q, n), vload_n(x1, q, n), vload_n(x2, q, n), vload_n(x3, q, n)
                        if far:
                            prefetch(x0, q + 2 * count)
                            prefetch(x1, q + 2 * count)
                            prefetch(x2, q + 2 * count)
                            prefetch(x3, q + 2 * count)
                    else:
                        a2 = b2 = e2 = f2 = vzeros(o0)
                    mid_b, mid_e = _row3(b0, b1, b2, wb), _row3(e0, e1, e2, we)
                    vstore_n(o0, j * c + k, vadd(vadd(_row3(a0, a1, a2, wa), mid_b), mid_e), n)
                    vstore_n(o1, j * c + k,
                             vadd(vadd(_row3(b0, b1, b2, wa), _row3(e0, e1, e2, wb)), _row3(f0, f1, f2, we)), n)
                    a0, a1, b0, b1, e0, e1, f0, f1 = a1, a2, b1, b2, e1, e2, f1, f2


@kernel(inline=True)
def _prefetch4(a0, a1, a2, a3, i):
    """Prefetch the line of ``a.flat[i]`` of four rows into L2 (the rows a SAME pair's next pair adds)."""
    prefetch(a0, i)
    prefetch(a1, i)
    prefetch(a2, i)
    prefetch(a3, i)


@kernel
def _forward_same_3x3_two_rows_d1(o0, o1, x0, x1, x2, x3, w9, shift, ahead0, ahead1, ahead2, ahead3, fetch):
    """:func:`_forward_same_3x3_two_rows` at dilation 1, wide rows in tiles (:data:`SAME_TILE_PIXELS`), its loop
    without branches: loads and stores masked whatever the block (a masked access costs what a whole one does),
    the row's last pixel, whose right column is padding, after the loop.  A/B against the dilated routine at
    dilation 1, one thread, rows in L2, outputs placed alike: 8x147x64 0.90, 4x147x64 0.86, 8x14x576 0.94,
    8x28x192 0.95, 8x112x32 0.92, 8x56x144 0.98-1.01 (its loop had branches on the block's width and the row's end
    and reloaded four row pointers from the stack: ~55 instructions for two output vectors, now 33).  With ``fetch``,
    the rows ``ahead0 .. ahead3`` (the next pair's new input and output rows) are prefetched into L2, a vector a row
    per pixel (see :func:`depthwise_nhwc_backprop_filter_3x3_rows`)."""
    c = o0.shape[1]
    width = o0.shape[0]
    count = lanes(o0)
    tile = width if width <= SAME_TILE_MIN_WIDTH else SAME_TILE_PIXELS
    ahead = 0
    for j0 in range(0, width, tile):
        j1 = min(j0 + tile, width)
        inner = j1 - 1 if j1 == width else j1  # pixels with their right column in the row
        for kb in range(_channel_blocks(c, shift, count)):
            k, n = _channel_block(kb, c, shift, count)
            wa, wb, we = _weights3(w9, 0, c, k, n), _weights3(w9, 3, c, k, n), _weights3(w9, 6, c, k, n)
            q = j0 * c + k
            if j0 == 0:
                a0 = b0 = e0 = f0 = vzeros(o0)
            else:
                a0, b0 = vload_part(x0, q - c, n), vload_part(x1, q - c, n)
                e0, f0 = vload_part(x2, q - c, n), vload_part(x3, q - c, n)
            a1, b1 = vload_part(x0, q, n), vload_part(x1, q, n)
            e1, f1 = vload_part(x2, q, n), vload_part(x3, q, n)
            for j in range(j0, inner):
                q += c
                a2, b2 = vload_part(x0, q, n), vload_part(x1, q, n)
                e2, f2 = vload_part(x2, q, n), vload_part(x3, q, n)
                if fetch:
                    _prefetch4(ahead0, ahead1, ahead2, ahead3, ahead)
                    ahead += count
                mid_b, mid_e = _row3(b0, b1, b2, wb), _row3(e0, e1, e2, we)
                vstore_part(o0, j * c + k, vadd(vadd(_row3(a0, a1, a2, wa), mid_b), mid_e), n)
                vstore_part(o1, j * c + k, vadd(vadd(_row3(b0, b1, b2, wa), _row3(e0, e1, e2, wb)),
                                                _row3(f0, f1, f2, we)), n)
                a0, a1, b0, b1, e0, e1, f0, f1 = a1, a2, b1, b2, e1, e2, f1, f2
            if inner < j1:
                z = vzeros(o0)
                mid_b, mid_e = _row3(b0, b1, z, wb), _row3(e0, e1, z, we)
                vstore_part(o0, inner * c + k, vadd(vadd(_row3(a0, a1, z, wa), mid_b), mid_e), n)
                vstore_part(o1, inner * c + k, vadd(vadd(_row3(b0, b1, z, wa), _row3(e0, e1, z, wb)),
                                                    _row3(f0, f1, z, we)), n)


@kernel(inline=True)
def _column_transform(a, b, e, f):
    """The four rows of Winograd's F(2, 3) of one input column ``a, b, e, f`` (input rows ``i .. i + 3``):
    ``a - e, b + e, e - b, b - f``."""
    return vsub(a, e), vadd(b, e), vsub(e, b), vsub(b, f)


@kernel(inline=True)
def _winograd_filter(w9, c, k, n, half):
    """The channel block ``[k, k + n)`` of a 3x3 filter's rows for :func:`_forward_same_3x3_two_rows_winograd`,
    each three vectors (its columns): ``w0``, ``(w0 + w1 + w2) / 2``, ``(w0 - w1 + w2) / 2`` and ``-w2``."""
    wa, wb, we = _block_weights3(w9, 0, c, k, n), _block_weights3(w9, 3, c, k, n), _block_weights3(w9, 6, c, k, n)
    g1 = (vmul(vadd(vadd(wa[0], wb[0]), we[0]), half), vmul(vadd(vadd(wa[1], wb[1]), we[1]), half),
          vmul(vadd(vadd(wa[2], wb[2]), we[2]), half))
    g2 = (vmul(vadd(vsub(wa[0], wb[0]), we[0]), half), vmul(vadd(vsub(wa[1], wb[1]), we[1]), half),
          vmul(vadd(vsub(wa[2], wb[2]), we[2]), half))
    z = vzeros(w9)
    return wa, g1, g2, (vsub(z, we[0]), vsub(z, we[1]), vsub(z, we[2]))


@kernel(inline=True)
def _winograd_window(x0, x1, x2, x3, q, gap, n, first):
    """The first two columns of a tile's window (:func:`_tile_window`), each as its four Winograd rows
    (:func:`_column_transform`): ``u00, u10, u20, u30`` of the column before, then ``u01 .. u31`` of its own."""
    a0, b0, e0, f0, a1, b1, e1, f1 = _tile_window(x0, x1, x2, x3, q, gap, n, first)
    return _column_transform(a0, b0, e0, f0) + _column_transform(a1, b1, e1, f1)


@kernel(inline=True)
def _row3_onto(a0, a1, a2, ws, acc):
    """``acc + a0 * ws[0] + a1 * ws[1] + a2 * ws[2]``."""
    return vfma(a2, ws[2], vfma(a1, ws[1], vfma(a0, ws[0], acc)))


@kernel(inline=True)
def _wrapped_blocks(c, count):
    """How many channel blocks the SAME pair kernels walk (:func:`_wrapped_block`): one per vector of ``C``."""
    return (c + count - 1) // count


@kernel(inline=True)
def _wrapped_block(kb, c, shift, count):
    """The first flat channel and the lane count of channel block ``kb`` of a pixel when the blocks start at the
    input's first aligned channel ``shift`` (:func:`aligned_shift`; 0: on a line already) and stay whole vectors:
    the last block's top ``shift`` lanes are then the next pixel's first channels.  A row is a flat array of
    ``W * C`` values whose taps are ``C`` apart, so such a block is as good as any, its weights the end of each
    filter row and then its start (:func:`_block_weights3`), and the pixels' blocks are
    ``C / lanes`` whole vectors, not one more split in two at the pixel's line boundary (four instead of three
    for C = 48: split blocks cost what whole ones do).  The row's ends, where the first block of pixel 0 starts
    ``shift`` lanes in and the last one of the last pixel stops ``shift`` short, are read and written by lane
    (:func:`_row_lanes`)."""
    k = shift + kb * count
    return k, min(count, c + shift - k)  # (C a multiple of the lanes when shift > 0) as _channel_block's form:
    # a conditional here made the forward's loop 1.1-1.4x slower


@kernel(inline=True)
def _block_weights3(w, tap, c, k, n):
    """:func:`_weights3` for a channel block of :func:`_wrapped_block`: a wrapping block's lanes past ``C`` from
    the start of each filter row."""
    if k + n <= c:
        return _weights3(w, tap, c, k, n)
    lo = c - k
    return (vadd(vload_lanes(w, tap * c + k, 0, lo), vload_lanes(w, (tap - 1) * c + k, lo, n)),
            vadd(vload_lanes(w, (tap + 1) * c + k, 0, lo), vload_lanes(w, tap * c + k, lo, n)),
            vadd(vload_lanes(w, (tap + 2) * c + k, 0, lo), vload_lanes(w, (tap + 1) * c + k, lo, n)))


@kernel(inline=True)
def _row_lanes(q, n, end):
    """The lanes of the ``n`` from flat index ``q`` that lie in a row of ``end`` values: ``[max(0, -q),
    min(n, end - q))`` (empty past either end: the padding reads as zeros)."""
    return max(0, -q), min(n, end - q)


@kernel(inline=True)
def _load_in_row(xr, q, n, end):
    """:func:`vload_lanes` of the lanes of the ``n`` from flat index ``q`` inside ``xr``'s ``end`` values, the
    others zero."""
    lo, hi = _row_lanes(q, n, end)
    return vload_lanes(xr, q, lo, hi)


@kernel(inline=True)
def _winograd_window_in_row(x0, x1, x2, x3, q, gap, n, end):
    """:func:`_winograd_window` of a wrapping block (:func:`_wrapped_block`), by lane: the columns at flat
    ``q - gap`` and ``q`` of rows of ``end`` values, lanes outside the rows read as zeros (:func:`_load_in_row`)."""
    p = q - gap
    return (_column_transform(_load_in_row(x0, p, n, end), _load_in_row(x1, p, n, end), _load_in_row(x2, p, n, end),
                              _load_in_row(x3, p, n, end))
            + _column_transform(_load_in_row(x0, q, n, end), _load_in_row(x1, q, n, end),
                                _load_in_row(x2, q, n, end), _load_in_row(x3, q, n, end)))


@kernel(inline=True)
def _winograd_pair(a, b, e, f, wa, g1, g2, g3, u00, u01, u10, u11, u20, u21, u30, u31):
    """One pixel of :func:`_forward_same_3x3_two_rows_winograd` from the window's next column ``a, b, e, f`` (its
    four input rows): the two output vectors, and the window moved on (the loads and stores stay in the loop:
    given the arrays, LLVM kept their pointers on the stack)."""
    u02, u12, u22, u32 = _column_transform(a, b, e, f)
    m1, m2 = _row3(u10, u11, u12, g1), _row3(u20, u21, u22, g2)
    return (_row3_onto(u00, u01, u02, wa, vadd(m1, m2)), _row3_onto(u30, u31, u32, g3, vsub(m1, m2)),
            u01, u02, u11, u12, u21, u22, u31, u32)


@kernel
def _forward_same_3x3_two_rows_winograd(o0, o1, x0, x1, x2, x3, w9, shift, ahead0, ahead1, ahead2, ahead3, fetch):
    """:func:`_forward_same_3x3_two_rows_d1` with the vertical sums by Winograd's F(2, 3): each input column's
    four rows become ``u = (a - e, b + e, e - b, b - f)`` (four additions), each ``u`` row is summed over the three
    filter columns with its own filter row (``w0``, ``(w0 + w1 + w2) / 2``, ``(w0 - w1 + w2) / 2``, ``w2``), and the
    two output rows are ``m0 + (m1 + m2)`` and ``(m1 - m2) - m3``: twelve multiply-adds for two output vectors,
    not eighteen, and eight additions, which Zen's separate adders take beside them.  Same sums as the direct
    kernel up to rounding (the transformed filter rows round once).  Channel blocks are whole vectors from the
    first aligned channel (:func:`_wrapped_block`): the block that wraps
    into the next pixel starts a pixel early (its top lanes are pixel 0's first channels), and each block's
    pixels whose columns reach a row's end go by lane, after the loop (:func:`_row_lanes`)."""
    c = o0.shape[1]
    width = o0.shape[0]
    count = lanes(o0)
    end = width * c
    tile = width if width <= SAME_TILE_MIN_WIDTH else SAME_TILE_PIXELS
    half = vsplat(o0, 0.5)
    ahead = 0
    for j0 in range(0, width, tile):
        j1 = min(j0 + tile, width)
        for kb in range(_wrapped_blocks(c, count)):
            k, n = _wrapped_block(kb, c, shift, count)
            wa, g1, g2, g3 = _winograd_filter(w9, c, k, n, half)
            ja = -1 if j0 == 0 and k + n > c else j0  # a wrapping block's pixel -1 holds pixel 0's first channels
            if k + n > c:  # its window by lane, and its last two pixels (their lanes past the row's end)
                q = ja * c + k
                u00, u10, u20, u30, u01, u11, u21, u31 = _winograd_window_in_row(x0, x1, x2, x3, q, c, n, end)
                inner = max(0, min(j1, width - 2))
            else:  # (the lanes computed at the ends cost the narrow rows' loops ~10%: 1x19x19x728)
                q = j0 * c + k
                u00, u10, u20, u30, u01, u11, u21, u31 = _winograd_window(x0, x1, x2, x3, q, c, n, j0 == 0)
                inner = j1 - 1 if j1 == width else j1  # the row's last pixel: its right column is padding
            start = max(ja, 0)
            for _ in range(ja, start):  # a wrapping block's pixel -1: its top lanes only
                q += c
                y0, y1, u00, u01, u10, u11, u20, u21, u30, u31 = _winograd_pair(
                    _load_in_row(x0, q, n, end), _load_in_row(x1, q, n, end), _load_in_row(x2, q, n, end),
                    _load_in_row(x3, q, n, end), wa, g1, g2, g3, u00, u01, u10, u11, u20, u21, u30, u31)
                lo, hi = _row_lanes(q - c, n, end)
                vstore_lanes(o0, q - c, y0, lo, hi)
                vstore_lanes(o1, q - c, y1, lo, hi)
            for j in range(start, inner):
                q += c
                if fetch:
                    _prefetch4(ahead0, ahead1, ahead2, ahead3, ahead)
                    ahead += count
                y0, y1, u00, u01, u10, u11, u20, u21, u30, u31 = _winograd_pair(
                    vload_part(x0, q, n), vload_part(x1, q, n), vload_part(x2, q, n), vload_part(x3, q, n),
                    wa, g1, g2, g3, u00, u01, u10, u11, u20, u21, u30, u31)
                vstore_part(o0, j * c + k, y0, n)
                vstore_part(o1, j * c + k, y1, n)
            if k + n <= c:
                if inner < j1:  # the row's last pixel: its right column is padding
                    z = vzeros(o0)
                    y0, y1, u00, u01, u10, u11, u20, u21, u30, u31 = _winograd_pair(
                        z, z, z, z, wa, g1, g2, g3, u00, u01, u10, u11, u20, u21, u30, u31)
                    vstore_part(o0, inner * c + k, y0, n)
                    vstore_part(o1, inner * c + k, y1, n)
                continue
            for _ in range(inner, j1):  # a wrapping block's last pixels: columns and lanes past the row's end
                q += c
                y0, y1, u00, u01, u10, u11, u20, u21, u30, u31 = _winograd_pair(
                    _load_in_row(x0, q, n, end), _load_in_row(x1, q, n, end), _load_in_row(x2, q, n, end),
                    _load_in_row(x3, q, n, end), wa, g1, g2, g3, u00, u01, u10, u11, u20, u21, u30, u31)
                lo, hi = _row_lanes(q - c, n, end)
                vstore_lanes(o0, q - c, y0, lo, hi)
                vstore_lanes(o1, q - c, y1, lo, hi)


@kernel
def _forward_interior_3x3_two_rows_winograd(o0, o1, x0, x1, x2, x3, w9, j_lo, j_hi, pad_left, shift):
    """:func:`_forward_interior_3x3_two_rows` at dilation 1 by Winograd's F(2, 3), as
    :func:`_forward_same_3x3_two_rows_winograd`: the pixels ``[j_lo, j_hi)`` whose columns are all in the row,
    channel blocks whole from the first aligned channel (:func:`_wrapped_block`; lanes outside those pixels
    neither stored nor, outside the input row, read)."""
    c = o0.shape[1]
    count = lanes(o0)
    in_end = x0.shape[0] * c
    half = vsplat(o0, 0.5)
    for kb in range(_wrapped_blocks(c, count)):
        k, n = _wrapped_block(kb, c, shift, count)
        wa, g1, g2, g3 = _winograd_filter(w9, c, k, n, half)
        ja = j_lo - 1 if k + n > c else j_lo  # a wrapping block's pixel j_lo - 1 holds pixel j_lo's first channels
        if k + n > c:  # its window by lane, its first and last pixels' lanes in part
            q = (ja + 1 - pad_left) * c + k  # input column ja + 1 - pad_left: the window's second
            u00, u10, u20, u30, u01, u11, u21, u31 = _winograd_window_in_row(x0, x1, x2, x3, q, c, n, in_end)
            inner = max(j_lo, j_hi - 1)
        else:
            q = (j_lo + 1 - pad_left) * c + k
            u00, u10, u20, u30, u01, u11, u21, u31 = _winograd_window(x0, x1, x2, x3, q, c, n, False)
            inner = j_hi
        for j in range(ja, j_lo):  # a wrapping block's pixel j_lo - 1: its top lanes only
            q += c
            y0, y1, u00, u01, u10, u11, u20, u21, u30, u31 = _winograd_pair(
                _load_in_row(x0, q, n, in_end), _load_in_row(x1, q, n, in_end), _load_in_row(x2, q, n, in_end),
                _load_in_row(x3, q, n, in_end), wa, g1, g2, g3, u00, u01, u10, u11, u20, u21, u30, u31)
            qo = j * c + k
            vstore_lanes(o0, qo, y0, j_lo * c - qo, n)
            vstore_lanes(o1, qo, y1, j_lo * c - qo, n)
        for j in range(j_lo, inner):
            q += c
            y0, y1, u00, u01, u10, u11, u20, u21, u30, u31 = _winograd_pair(
                vload_part(x0, q, n), vload_part(x1, q, n), vload_part(x2, q, n), vload_part(x3, q, n),
                wa, g1, g2, g3, u00, u01, u10, u11, u20, u21, u30, u31)
            vstore_part(o0, j * c + k, y0, n)
            vstore_part(o1, j * c + k, y1, n)
        for j in range(inner, j_hi):  # the last pixel: a wrapping block's bottom lanes only
            q += c
            y0, y1, u00, u01, u10, u11, u20, u21, u30, u31 = _winograd_pair(
                _load_in_row(x0, q, n, in_end), _load_in_row(x1, q, n, in_end), _load_in_row(x2, q, n, in_end),
                _load_in_row(x3, q, n, in_end), wa, g1, g2, g3, u00, u01, u10, u11, u20, u21, u30, u31)
            qo = j * c + k
            vstore_lanes(o0, qo, y0, 0, min(n, j_hi * c - qo))
            vstore_lanes(o1, qo, y1, 0, min(n, j_hi * c - qo))


@kernel
def _forward_interior_5x5(o, x0, x1, x2, x3, x4, w25, j_lo, j_hi, stride_w, dil_w, pad_left, shift):
    """As :func:`_forward_interior_3x3`, a 5x5 filter: 25 weight vectors in registers, 25 loads per pixel."""
    c = o.shape[1]
    count = lanes(o)
    step, gap = stride_w * c, dil_w * c
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        wa, wb, we = _weights5(w25, 0, c, k, n), _weights5(w25, 5, c, k, n), _weights5(w25, 10, c, k, n)
        wf, wg = _weights5(w25, 15, c, k, n), _weights5(w25, 20, c, k, n)
        q = (j_lo * stride_w - pad_left) * c + k
        for j in range(j_lo, j_hi):
            s = vadd(vadd(_taps5(x0, q, gap, wa, n), _taps5(x1, q, gap, wb, n)),
                     vadd(_taps5(x2, q, gap, we, n), _taps5(x3, q, gap, wf, n)))
            vstore_n(o, j * c + k, vadd(s, _taps5(x4, q, gap, wg, n)), n)
            q += step


@kernel
def _forward_interior_5x5_two_rows(o0, o1, x0, x1, x2, x3, x4, x5, w25, j_lo, j_hi, stride_w, dil_w, pad_left,
                                   shift):
    """Vertical stride and dilation 1: the interior of two neighbouring output rows, ``o0`` from input
    rows ``x0 .. x4`` and ``o1`` from ``x1 .. x5``; the four shared rows are loaded once (30 loads for
    two pixels instead of 50: measured 1.3-1.7x faster, 2 threads, 1x28x28x240 218 -> 132 us,
    8x14x14x672 1282 -> 925 us)."""
    c = o0.shape[1]
    count = lanes(o0)
    step, gap = stride_w * c, dil_w * c
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        wa, wb, we = _weights5(w25, 0, c, k, n), _weights5(w25, 5, c, k, n), _weights5(w25, 10, c, k, n)
        wf, wg = _weights5(w25, 15, c, k, n), _weights5(w25, 20, c, k, n)
        q = (j_lo * stride_w - pad_left) * c + k
        for j in range(j_lo, j_hi):
            # the same addresses in one iteration: LLVM loads each input vector once for both rows
            s0 = vadd(vadd(_taps5(x0, q, gap, wa, n), _taps5(x1, q, gap, wb, n)),
                      vadd(_taps5(x2, q, gap, we, n), _taps5(x3, q, gap, wf, n)))
            s1 = vadd(vadd(_taps5(x1, q, gap, wa, n), _taps5(x2, q, gap, wb, n)),
                      vadd(_taps5(x3, q, gap, we, n), _taps5(x4, q, gap, wf, n)))
            vstore_n(o0, j * c + k, vadd(s0, _taps5(x4, q, gap, wg, n)), n)
            vstore_n(o1, j * c + k, vadd(s1, _taps5(x5, q, gap, wg, n)), n)
            q += step


@kernel
def depthwise_nhwc_forward_3x3_rows(x, w, out, zero_row, row_begin, row_end, stride_h, stride_w,
                                    dil_h, dil_w, pad_top, pad_left, fetch=False, winograd=False):
    """Forward with a 3x3 filter, any stride/dilation/padding: output rows ``[row_begin, row_end)``.

    The pixels whose columns are all inside the input take :func:`_forward_interior_3x3` (SIMD,
    channel blocks from :func:`aligned_shift`); a filter row in the padding reads ``zero_row``
    (``[in_w, C]`` zeros, one row, not a padded copy); the pixels whose columns reach into the
    padding skip those columns.  With horizontal stride and dilation 1 and one padding column on
    each side (SAME), every pixel of a row takes the sliding pass instead, the padding columns
    entering as zero vectors (:func:`_forward_same_3x3`): the same sums, as the filters here are
    finite.  At strides 1, output rows go by in pairs a vertical dilation apart, which share two
    input rows (:func:`_forward_interior_3x3_two_rows`, :func:`_forward_same_3x3_two_rows`): with
    dilation ``d`` the rows of each of the ``d`` phases in turn, so a pair's last two input rows are
    the next pair's first two, still in cache (:func:`_forward_3x3_image_rows`).  ``fetch``: SAME pairs at dilation
    1 prefetch the rows the next pair adds (as :func:`depthwise_nhwc_backprop_filter_3x3_rows`).
    """
    x, w, out, zero_row = borrowed(x), borrowed(w), borrowed(out), borrowed(zero_row)
    r = row_begin
    while r < row_end:
        b, i_begin, i_end, r = _image_run(r, row_end, out.shape[1])
        _forward_3x3_image_rows(x, w, out, zero_row, b, i_begin, i_end, stride_h, stride_w, dil_h, dil_w, pad_top,
                                pad_left, fetch, winograd)


@kernel
def _row_phases(i_begin, i_end, stride_h, dil_h):
    """The order the rows kernels visit output rows ``[i_begin, i_end)`` of one image: at vertical stride 1,
    each of the ``d`` phases of the vertical dilation in turn (rows ``p, p + d, ...``, paired ``i`` with
    ``i + d``); otherwise row by row.  Returns the phase count and the step within a phase."""
    if stride_h == 1:
        return min(dil_h, i_end - i_begin), dil_h
    return 1, 1


@kernel
def _image_run(r, row_end, out_h):
    """The run of output rows from flat row ``r`` (over the batch) to ``row_end`` or its image's end: the
    image ``b``, its rows ``[i_begin, i_end)`` and the flat row after the run."""
    b = r // out_h
    image_end = min(row_end, (b + 1) * out_h)
    return b, r - b * out_h, image_end - b * out_h, image_end


@kernel
def _forward_3x3_image_rows(x, w, out, zero_row, b, i_begin, i_end, stride_h, stride_w, dil_h, dil_w, pad_top,
                            pad_left, fetch, winograd):
    """Output rows ``[i_begin, i_end)`` of image ``b`` (see :func:`depthwise_nhwc_forward_3x3_rows`):
    at stride 1, the rows of each vertical-dilation phase in turn, in pairs (rows ``i`` and ``i + d``
    read input rows ``i - p + {0, d, 2d}`` and ``i - p + {d, 2d, 3d}``); otherwise row by row."""
    in_w, c = x.shape[2], x.shape[3]
    out_w = out.shape[2]
    w9 = w.reshape(9, c)
    shift = aligned_shift(x)
    j_lo, j_hi = interior(out_w, in_w, 3, stride_w, dil_w, pad_left)
    pixel_major = dil_w > 1 and x.shape[1] * in_w * c * x.itemsize >= PIXEL_MAJOR_MIN_IMAGE_BYTES
    same = not pixel_major and stride_w == 1 and pad_left == dil_w and in_w == out_w and out_w >= 2
    pairs = stride_h == 1 and stride_w == 1
    phases, step = _row_phases(i_begin, i_end, stride_h, dil_h)
    for phase in range(phases):
        i = i_begin + phase
        while i < i_end:
            ih0 = i * stride_h - pad_top
            x0 = row_or_zeros(x, zero_row, b, ih0)
            x1 = row_or_zeros(x, zero_row, b, ih0 + dil_h)
            x2 = row_or_zeros(x, zero_row, b, ih0 + 2 * dil_h)
            o = out[b, i]
            if pairs and i + dil_h < i_end:
                x3 = row_or_zeros(x, zero_row, b, ih0 + 3 * dil_h)
                o1 = out[b, i + dil_h]
                if same and dil_w == 1:
                    ni = i + 2 if i + 3 < out.shape[1] else i  # the next pair (this one's rows at the image's end)
                    xa, xb = row_or_zeros(x, zero_row, b, ni - pad_top + 2), row_or_zeros(x, zero_row, b, ni - pad_top + 3)
                    if winograd:
                        _forward_same_3x3_two_rows_winograd(o, o1, x0, x1, x2, x3, w9, shift, xa, xb, out[b, ni],
                                                            out[b, ni + 1], fetch)
                    else:
                        _forward_same_3x3_two_rows_d1(o, o1, x0, x1, x2, x3, w9, shift, xa, xb, out[b, ni],
                                                      out[b, ni + 1], fetch)
                elif same:
                    _forward_same_3x3_two_rows(o, o1, x0, x1, x2, x3, w9, dil_w, shift)
                else:
                    if pixel_major:
                        _forward_interior_3x3_two_rows_pixel_major(o, o1, x0, x1, x2, x3, w9, j_lo, j_hi, dil_w,
                                                                   pad_left, shift)
                    elif dil_w == 1 and winograd and j_hi > j_lo:
                        _forward_interior_3x3_two_rows_winograd(o, o1, x0, x1, x2, x3, w9, j_lo, j_hi, pad_left, shift)
                    elif dil_w == 1:  # compiled with the dilation known (~20% faster on small layers)
                        _forward_interior_3x3_two_rows(o, o1, x0, x1, x2, x3, w9, j_lo, j_hi, 1, pad_left, shift)
                    else:
                        _forward_interior_3x3_two_rows(o, o1, x0, x1, x2, x3, w9, j_lo, j_hi, dil_w, pad_left, shift)
                    _forward_border_3x3(o, x0, x1, x2, w9, 0, j_lo, in_w, 1, dil_w, pad_left, shift)
                    _forward_border_3x3(o, x0, x1, x2, w9, j_hi, out_w, in_w, 1, dil_w, pad_left, shift)
                    _forward_border_3x3(o1, x1, x2, x3, w9, 0, j_lo, in_w, 1, dil_w, pad_left, shift)
                    _forward_border_3x3(o1, x1, x2, x3, w9, j_hi, out_w, in_w, 1, dil_w, pad_left, shift)
                i += 2 * step
                continue
            if same and dil_w == 1:
                _forward_same_3x3(o, x0, x1, x2, w9, 1, shift)
            elif same:
                _forward_same_3x3(o, x0, x1, x2, w9, dil_w, shift)
            else:
                if dil_w == 1 and stride_w == 2:
                    ni = i + step if i + step < i_end else i  # the next row (this one's at the run's end)
                    nh = ni * stride_h - pad_top
                    _forward_interior_3x3_s2(o, x0, x1, x2, w9, j_lo, j_hi, pad_left, shift,
                                             row_or_zeros(x, zero_row, b, nh + 1), row_or_zeros(x, zero_row, b, nh + 2),
                                             out[b, ni], fetch)
                elif dil_w == 1:  # the common case, compiled with the dilation known
                    _forward_interior_3x3(o, x0, x1, x2, w9, j_lo, j_hi, stride_w, 1, pad_left, shift)
                else:
                    _forward_interior_3x3(o, x0, x1, x2, w9, j_lo, j_hi, stride_w, dil_w, pad_left, shift)
                _forward_border_3x3(o, x0, x1, x2, w9, 0, j_lo, in_w, stride_w, dil_w, pad_left, shift)
                _forward_border_3x3(o, x0, x1, x2, w9, j_hi, out_w, in_w, stride_w, dil_w, pad_left, shift)
            i += step


@kernel
def depthwise_nhwc_forward_5x5_rows(x, w, out, zero_row, row_begin, row_end, stride_h, stride_w,
                                    dil_h, dil_w, pad_top, pad_left):
    """Forward with a 5x5 filter, any stride/dilation/padding: output rows ``[row_begin, row_end)``
    (as the 3x3 kernel, with :func:`_forward_interior_5x5`; at vertical stride 1, two rows a vertical
    dilation apart at a time, phase by phase, :func:`_forward_interior_5x5_two_rows`)."""
    x, w, out, zero_row = borrowed(x), borrowed(w), borrowed(out), borrowed(zero_row)
    r = row_begin
    while r < row_end:
        b, i_begin, i_end, r = _image_run(r, row_end, out.shape[1])
        _forward_5x5_image_rows(x, w, out, zero_row, b, i_begin, i_end, stride_h, stride_w, dil_h, dil_w, pad_top,
                                pad_left)


@kernel
def _forward_5x5_image_rows(x, w, out, zero_row, b, i_begin, i_end, stride_h, stride_w, dil_h, dil_w, pad_top,
                            pad_left):
    """Output rows ``[i_begin, i_end)`` of image ``b`` of :func:`depthwise_nhwc_forward_5x5_rows` (the order of
    :func:`_forward_3x3_image_rows`: rows ``i`` and ``i + d`` share four of their five input rows)."""
    in_w, c = x.shape[2], x.shape[3]
    out_w = out.shape[2]
    w25 = w.reshape(25, c)
    shift = aligned_shift(x)
    j_lo, j_hi = interior(out_w, in_w, 5, stride_w, dil_w, pad_left)
    pairs = stride_h == 1
    phases, step = _row_phases(i_begin, i_end, stride_h, dil_h)
    for phase in range(phases):
        i = i_begin + phase
        while i < i_end:
            ih0 = i * stride_h - pad_top
            x0 = row_or_zeros(x, zero_row, b, ih0)
            x1 = row_or_zeros(x, zero_row, b, ih0 + dil_h)
            x2 = row_or_zeros(x, zero_row, b, ih0 + 2 * dil_h)
            x3 = row_or_zeros(x, zero_row, b, ih0 + 3 * dil_h)
            x4 = row_or_zeros(x, zero_row, b, ih0 + 4 * dil_h)
            o = out[b, i]
            if pairs and i + dil_h < i_end:
                x5 = row_or_zeros(x, zero_row, b, ih0 + 5 * dil_h)
                o1 = out[b, i + dil_h]
                _forward_interior_5x5_two_rows(o, o1, x0, x1, x2, x3, x4, x5, w25, j_lo, j_hi, stride_w, dil_w,
                                               pad_left, shift)
                _forward_border_pixels_5x5(o1, x1, x2, x3, x4, x5, w25, 0, j_lo, in_w, stride_w, dil_w, pad_left)
                _forward_border_pixels_5x5(o1, x1, x2, x3, x4, x5, w25, j_hi, out_w, in_w, stride_w, dil_w, pad_left)
                i += step  # and once more below
            else:
                _forward_interior_5x5(o, x0, x1, x2, x3, x4, w25, j_lo, j_hi, stride_w, dil_w, pad_left, shift)
            _forward_border_pixels_5x5(o, x0, x1, x2, x3, x4, w25, 0, j_lo, in_w, stride_w, dil_w, pad_left)
            _forward_border_pixels_5x5(o, x0, x1, x2, x3, x4, w25, j_hi, out_w, in_w, stride_w, dil_w, pad_left)
            i += step


@kernel
def depthwise_nhwc_forward_any_rows(x, w, out, zero_row, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top,
                                    pad_left, fetch=False, winograd=False):
    """The forward's rows kernel for ``w``'s filter size (3x3, 5x5, or any), output rows ``[row_begin, row_end)``
    (``fetch``, ``winograd``: the 3x3 kernel's)."""
    kh, kw = w.shape[0], w.shape[1]
    if kh == 3 and kw == 3:
        depthwise_nhwc_forward_3x3_rows(x, w, out, zero_row, row_begin, row_end, stride_h, stride_w, dil_h, dil_w,
                                        pad_top, pad_left, fetch, winograd)
    elif kh == 5 and kw == 5:
        depthwise_nhwc_forward_5x5_rows(x, w, out, zero_row, row_begin, row_end, stride_h, stride_w, dil_h, dil_w,
                                        pad_top, pad_left)
    else:
        depthwise_nhwc_forward_rows(x, w, out, zero_row, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top,
                                    pad_left)


@kernel(parallel=True)
def depthwise_nhwc_forward_parallel(x, w, out, zero_row, n_chunks, stride_h, stride_w, dil_h, dil_w,
                                    pad_top, pad_left, fetch=False, winograd=False):
    """Forward over all output rows in ``n_chunks`` parallel blocks (3x3 and 5x5 filters take their kernels)."""
    rows = out.shape[0] * out.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_forward_any_rows(x, w, out, zero_row, t * rows // n_chunks, (t + 1) * rows // n_chunks, stride_h,
                                        stride_w, dil_h, dil_w, pad_top, pad_left, fetch, winograd)


@kernel(inline=True)
def _folded_row(r, fold):
    """Row ``r`` (``[W, C]``) as ``W // fold`` pixels of ``fold * C`` channels: its first ``W // fold * fold``
    pixels, the columns ``fold * j' + p`` of each phase ``p`` of a horizontal dilation ``fold`` as one pixel's
    channels ``p * C .. p * C + C``."""
    width = r.shape[0] // fold
    return r.reshape(-1)[:width * fold * r.shape[1]].reshape((width, fold * r.shape[1]))


@kernel
def _folded_row_end(o, x0, x1, x2, wf9, last, rest, span):
    """The pixels of an output row ``o`` that :func:`depthwise_nhwc_forward_3x3_folded_rows` folds wrong or not at
    all, as flat runs of ``span`` values (``W % d`` pixels): the last folded pixel's first phases, from flat index
    ``last``, get their right taps (the folded pass read zeros there: the columns past the folded ones, from flat
    index ``rest``), and the pixels from ``rest`` on get their left and middle taps (their right ones are padding).
    The tiled filter ``wf9`` ``[9, d * C]`` gives each flat index its channel's weight."""
    count = lanes(o)
    wide = wf9.shape[1]
    for q in range(0, span, count):
        n = min(count, span - q)
        a0, a1, a2 = vload_n(x0, last + q, n), vload_n(x1, last + q, n), vload_n(x2, last + q, n)
        b0, b1, b2 = vload_n(x0, rest + q, n), vload_n(x1, rest + q, n), vload_n(x2, rest + q, n)
        right = vfma(b2, vload_n(wf9, 8 * wide + q, n), vfma(b1, vload_n(wf9, 5 * wide + q, n),
                                                               vmul(b0, vload_n(wf9, 2 * wide + q, n))))
        vstore_n(o, last + q, vadd(vload_n(o, last + q, n), right), n)
        s0 = vfma(b0, vload_n(wf9, wide + q, n), vmul(a0, vload_n(wf9, q, n)))
        s1 = vfma(b1, vload_n(wf9, 4 * wide + q, n), vmul(a1, vload_n(wf9, 3 * wide + q, n)))
        s2 = vfma(b2, vload_n(wf9, 7 * wide + q, n), vmul(a2, vload_n(wf9, 6 * wide + q, n)))
        vstore_n(o, rest + q, vadd(vadd(s0, s1), s2), n)


@kernel
def depthwise_nhwc_forward_3x3_folded_rows(x, wf, out, zero_row, row_begin, row_end, dil_h, fold, pad_top):
    """The forward of a 3x3 filter ``w`` at strides 1, dilations ``dil_h`` and ``fold`` (> 1), SAME along the rows
    (``pad_left == fold``, ``in_w == out_w``), any vertical padding: output rows ``[row_begin, row_end)``, given
    ``wf`` ``[3, 3, fold * C]``, ``w`` tiled ``fold`` times along the channels.  Each row's first ``W // fold * fold``
    pixels go folded (:func:`_folded_row`) through the undilated SAME pairs of rows ``dil_h`` apart, by Winograd's
    F(2, 3) (:func:`_forward_same_3x3_two_rows_winograd`: :mod:`sepconv.fast.depthwise` folds only there), whose
    last folded pixel reads zeros for the columns past the folded ones; then its phases that read those columns (the
    first ``W % fold``) get those taps, and the pixels past the folded ones are computed, as flat runs of channels
    (:func:`_folded_row_end`; per pixel and channel block, as the border pixels go, it cost 17% of the time on
    1x33x33x960).  So DeepLab's rows of 33 and 65 pixels (dilation 2 or 4) go as their whole
    neighbours folded in :mod:`sepconv.fast.depthwise` do."""
    x, wf, out, zero_row = borrowed(x), borrowed(wf), borrowed(out), borrowed(zero_row)
    in_w, c = x.shape[2], x.shape[3]
    out_h = out.shape[1]
    wf9 = wf.reshape(9, fold * c)
    shift = aligned_shift(x)
    last = (in_w // fold - 1) * fold * c  # the last folded pixel, flat: its first phases read columns past the folded
    rest = in_w // fold * fold * c  # the columns past the folded ones, flat
    span = in_w * c - rest
    r = row_begin
    while r < row_end:
        b, i_begin, i_end, r = _image_run(r, row_end, out_h)
        phases, step = _row_phases(i_begin, i_end, 1, dil_h)
        for phase in range(phases):
            i = i_begin + phase
            while i < i_end:
                ih0 = i - pad_top
                x0 = row_or_zeros(x, zero_row, b, ih0)
                x1 = row_or_zeros(x, zero_row, b, ih0 + dil_h)
                x2 = row_or_zeros(x, zero_row, b, ih0 + 2 * dil_h)
                o = out[b, i]
                f0, f1, f2 = _folded_row(x0, fold), _folded_row(x1, fold), _folded_row(x2, fold)
                if i + dil_h < i_end:
                    x3 = row_or_zeros(x, zero_row, b, ih0 + 3 * dil_h)
                    o1 = out[b, i + dil_h]
                    f3, g0, g1 = _folded_row(x3, fold), _folded_row(o, fold), _folded_row(o1, fold)
                    _forward_same_3x3_two_rows_winograd(g0, g1, f0, f1, f2, f3, wf9, shift, f0, f1, f2, f3, False)
                    _folded_row_end(o, x0, x1, x2, wf9, last, rest, span)
                    _folded_row_end(o1, x1, x2, x3, wf9, last, rest, span)
                    i += 2 * step
                    continue
                _forward_same_3x3(_folded_row(o, fold), f0, f1, f2, wf9, 1, shift)
                _folded_row_end(o, x0, x1, x2, wf9, last, rest, span)
                i += step


@kernel(parallel=True)
def depthwise_nhwc_forward_3x3_folded_parallel(x, wf, out, zero_row, n_chunks, dil_h, fold, pad_top):
    """:func:`depthwise_nhwc_forward_3x3_folded_rows` over all output rows in ``n_chunks`` parallel blocks."""
    rows = out.shape[0] * out.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_forward_3x3_folded_rows(x, wf, out, zero_row, t * rows // n_chunks,
                                               (t + 1) * rows // n_chunks, dil_h, fold, pad_top)


# --------------------------------------------------------------------------- fewer channels than a vector


@kernel
def depthwise_nhwc_forward_few_channels_rows(x, wt, w2, out, row_begin, row_end, kh, dil_h, dil_w, pad_top, pad_left):
    """Forward at stride 1 with fewer channels than a vector holds: output rows ``[row_begin, row_end)``,
    each one flat run of ``out_w * C`` values in whole vectors (channel blocks would leave most lanes
    idle: a 3-channel layer uses 3 of 16).

    Value ``f = j*C + k`` of an output row reads value ``f + (dj*dil_w - pad_left)*C`` of an input row for
    filter column ``dj``: one offset per tap, so a vector of consecutive values (several pixels) takes
    one load per tap, four vectors at a time with their own sums.  Their weights repeat with period
    ``C``: ``wt`` ``[kh*kw, P*lanes]`` holds ``wt[t, p] = w[t, p % C]`` for the ``P = C / gcd(C, lanes)``
    vectors of one period (:func:`tile_weights`).  The pixels whose columns reach into the padding (a
    row's first and last few) take one masked vector of their ``C`` channels over the taps inside the
    input, from ``w2`` ``[kh*kw, C]``; filter rows outside the input are skipped.
    """
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    kw = w2.shape[0] // kh
    count = lanes(out)
    span = wt.shape[1]
    row_len = out_w * c
    j_lo = min(pad_left, out_w)  # the pixels whose columns are all inside the input
    j_hi = max(j_lo, min(in_w + pad_left - (kw - 1) * dil_w, out_w))
    f_lo, f_hi = j_lo * c, j_hi * c
    quads = (f_hi - f_lo) // (4 * count)
    gap = dil_w * c
    for r in range(row_begin, row_end):
        b = r // out_h
        ih0 = r - b * out_h - pad_top
        di_lo, di_hi = tap_range(ih0, dil_h, kh, in_h)
        o_row = r * row_len
        p = 0
        for qd in range(quads):
            f = f_lo + 4 * count * qd
            p1 = _next_phase(p, count, span)
            p2 = _next_phase(p1, count, span)
            p3 = _next_phase(p2, count, span)
            a0 = a1 = a2 = a3 = vzeros(out)
            for di in range(di_lo, di_hi):
                q = ((b * in_h + ih0 + di * dil_h) * in_w - pad_left) * c + f
                t = di * kw * span
                for _ in range(kw):
                    a0 = vfma(vload(x, q), vload(wt, t + p), a0)
                    a1 = vfma(vload(x, q + count), vload(wt, t + p1), a1)
                    a2 = vfma(vload(x, q + 2 * count), vload(wt, t + p2), a2)
                    a3 = vfma(vload(x, q + 3 * count), vload(wt, t + p3), a3)
                    q += gap
                    t += span
            vstore(out, o_row + f, a0)
            vstore(out, o_row + f + count, a1)
            vstore(out, o_row + f + 2 * count, a2)
            vstore(out, o_row + f + 3 * count, a3)
            p = _next_phase(p3, count, span)
        for f in range(f_lo + 4 * count * quads, f_hi, count):  # the rest of the interior, a vector at a time
            n = min(count, f_hi - f)
            a0 = a1 = vzeros(out)  # two sums, even and odd taps: one chain of dependent multiply-adds waits on each
            for di in range(di_lo, di_hi):
                q = ((b * in_h + ih0 + di * dil_h) * in_w - pad_left) * c + f
                t = di * kw * span + p
                for _ in range(kw // 2):
                    a0 = vfma(vload_n(x, q, n), vload_n(wt, t, n), a0)
                    a1 = vfma(vload_n(x, q + gap, n), vload_n(wt, t + span, n), a1)
                    q += 2 * gap
                    t += 2 * span
                if kw % 2:
                    a0 = vfma(vload_n(x, q, n), vload_n(wt, t, n), a0)
            vstore_n(out, o_row + f, vadd(a0, a1), n)
            p = _next_phase(p, count, span)
        for side in range(2):  # the pixels before the interior, then those after it
            for j in range(0, j_lo) if side == 0 else range(j_hi, out_w):
                c0 = j - pad_left
                dj_lo, dj_hi = tap_range(c0, dil_w, kw, in_w)
                a0 = a1 = vzeros(out)  # even and odd taps, as above (the border took 3/5 of a 7x7 layer's time)
                for di in range(di_lo, di_hi):
                    row = (b * in_h + ih0 + di * dil_h) * in_w
                    for dj in range(dj_lo, dj_hi - 1, 2):
                        a0 = vfma(vload_part(x, (row + c0 + dj * dil_w) * c, c),
                                  vload_part(w2, (di * kw + dj) * c, c), a0)
                        a1 = vfma(vload_part(x, (row + c0 + (dj + 1) * dil_w) * c, c),
                                  vload_part(w2, (di * kw + dj + 1) * c, c), a1)
                    if (dj_hi - dj_lo) % 2:
                        dj = dj_hi - 1
                        a0 = vfma(vload_part(x, (row + c0 + dj * dil_w) * c, c),
                                  vload_part(w2, (di * kw + dj) * c, c), a0)
                vstore_part(out, o_row + j * c, vadd(a0, a1), c)


@kernel
def _fill_zeros(a, begin, end):
    """``a[begin:end] = 0`` (``a`` 1-D) in whole vectors."""
    count = lanes(a)
    zeros = vzeros(a)
    i = begin
    while i + count <= end:
        vstore(a, i, zeros)
        i += count
    if i < end:
        vstore_n(a, i, zeros, end - i)


@kernel
def _pad_columns(x, b, pad_left, img):
    """``img[ih, u] = x[b, ih, u - pad_left]`` where that is inside the input, zeros elsewhere (``img``
    ``[in_h, padded width, C*M]``; with a channel multiplier ``M > 1`` each channel repeated ``M`` times).
    In explicit vectors: slice assignments, or index loops that LLVM would not vectorize (``img`` and ``x``
    might overlap), took 1x23x23x12 3.2-3.9 us."""
    in_h, in_w, source_c = x.shape[1], x.shape[2], x.shape[3]
    c = img.shape[2]
    multiplier = c // source_c
    count = lanes(img)
    flat = img.reshape(-1)
    source = x[b].reshape(-1)
    lead, body, row_len = pad_left * c, in_w * c, img.shape[1] * c
    for ih in range(in_h):
        o = ih * row_len
        _fill_zeros(flat, o, o + lead)
        s0 = ih * in_w * source_c
        if multiplier == 1:
            whole = body - body % count
            for i in range(0, whole, count):
                vstore(flat, o + lead + i, vload(source, s0 + i))
            if whole < body:
                vstore_n(flat, o + lead + whole, vload_n(source, s0 + whole, body - whole), body - whole)
        else:
            repeat_channels_flat(source[s0:s0 + in_w * source_c], flat[o + lead:o + lead + body], multiplier, 0,
                                 in_w * source_c)
        _fill_zeros(flat, o + lead + body, o + row_len)


@kernel
def depthwise_nhwc_forward_few_channels_padded_rows(x, wt, w2, out, buffer, row_begin, row_end, kh, dil_h, dil_w,
                                                    pad_top, pad_left):
    """:func:`depthwise_nhwc_forward_few_channels_rows` on a copy of each image with its left and right
    padding as zeros, in ``buffer`` (flat, at least ``in_h * padded_width * C`` values, ``padded_width =
    max(pad_left + in_w, out_w + (kw - 1) * dil_w)``): every pixel then takes the flat runs, where those
    whose columns reach into the padding took one masked vector of ``C`` channels per tap (1x28x28x3 7x7
    dilation 2: the 12 such pixels of each row took three quarters of the time).  One image at a time: a
    few-channel image is small.  With an empty ``buffer``, the rows kernel on ``x`` itself.  With a channel
    multiplier (``out`` has ``M`` times ``x``'s channels) the copy repeats each channel ``M`` times: ``x`` is
    the layer's own input, and the repeat costs no pass of its own."""
    x, wt, w2, out, buffer = borrowed(x), borrowed(wt), borrowed(w2), borrowed(out), borrowed(buffer)
    if buffer.size == 0:
        depthwise_nhwc_forward_few_channels_rows(x, wt, w2, out, row_begin, row_end, kh, dil_h, dil_w, pad_top,
                                                 pad_left)
        return
    in_h, c = x.shape[1], out.shape[3]
    out_h = out.shape[1]
    width = buffer.size // (in_h * c)
    img = buffer[:in_h * width * c].reshape((1, in_h, width, c))
    r = row_begin
    while r < row_end:
        b = r // out_h
        end = min(row_end, (b + 1) * out_h)
        _pad_columns(x, b, pad_left, img[0])
        depthwise_nhwc_forward_few_channels_rows(img, wt, w2, out[b:b + 1], r - b * out_h, end - b * out_h, kh,
                                                 dil_h, dil_w, pad_top, 0)
        r = end


@kernel(inline=True)
def _next_phase(p, count, span):
    """The weight offset of the next vector in a period of ``span`` values (:func:`tile_weights`)."""
    return p + count if p + count < span else p + count - span


@kernel
def tile_weights(w2, wt):
    """``wt[t, p] = w2[t, p % C]``: the filter ``[taps, C]`` repeated along whole vectors (see
    :func:`depthwise_nhwc_forward_few_channels_rows`)."""
    c = w2.shape[1]
    for t in range(w2.shape[0]):
        for p in range(wt.shape[1]):
            wt[t, p] = w2[t, p % c]


@kernel(parallel=True)
def depthwise_nhwc_forward_few_channels_parallel(x, wt, w2, out, buffers, kh, dil_h, dil_w, pad_top, pad_left):
    """:func:`depthwise_nhwc_forward_few_channels_padded_rows` over all output rows, in ``buffers.shape[0]``
    parallel blocks (block ``t`` through ``buffers[t]``)."""
    n_chunks = buffers.shape[0]
    rows = out.shape[0] * out.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_forward_few_channels_padded_rows(x, wt, w2, out, buffers[t], t * rows // n_chunks,
                                                        (t + 1) * rows // n_chunks, kh, dil_h, dil_w, pad_top,
                                                        pad_left)


# --------------------------------------------------------------------------- input gradient


@kernel
def depthwise_nhwc_backprop_input_strided_rows(w, dy, dx, row_begin, row_end, stride_h, stride_w, dil_h, dil_w,
                                               pad_top, pad_left):
    """Input gradient, any stride/dilation/padding: rows ``[row_begin, row_end)`` of ``dx``.

    Gathers, for each input pixel, the output pixels that read it (race-free: each thread
    writes only its own rows)::

        dx[b, y, x, k] = sum_{di, dj} dy[b, i, j, k] * w[di, dj, k]
                         over  i*stride_h + di*dil_h - pad_top == y,  j*stride_w + dj*dil_w - pad_left == x

    (With stride 1 the fast path is the forward kernel with the flipped filter instead.)
    """
    w, dy, dx = borrowed(w), borrowed(dy), borrowed(dx)
    in_h, in_w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    kh, kw = w.shape[0], w.shape[1]
    out_h, out_w = dy.shape[1], dy.shape[2]
    for r in range(row_begin, row_end):
        b = r // in_h
        y = r - b * in_h
        g = dx[b, y]
        for xc in range(in_w):
            for k in range(c):
                g[xc, k] = 0.0
        for di in range(kh):
            t = y + pad_top - di * dil_h
            if t < 0 or t % stride_h != 0 or t // stride_h >= out_h:
                continue
            dyr = dy[b, t // stride_h]
            for dj in range(kw):
                wt = w[di, dj]
                # the columns xc = j*stride_w + dj*dil_w - pad_left, for the j whose xc is inside
                j_lo, j_hi = tap_range(dj * dil_w - pad_left, stride_w, out_w, in_w)
                for j in range(j_lo, j_hi):
                    xc = j * stride_w + dj * dil_w - pad_left
                    for k in range(c):
                        g[xc, k] += dyr[j, k] * wt[k]


@kernel(parallel=True)
def depthwise_nhwc_backprop_input_strided_parallel(w, dy, dx, n_chunks, stride_h, stride_w, dil_h, dil_w,
                                                   pad_top, pad_left):
    """Input gradient over all rows of ``dx``, in ``n_chunks`` parallel blocks."""
    rows = dx.shape[0] * dx.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_backprop_input_strided_rows(w, dy, dx, t * rows // n_chunks, (t + 1) * rows // n_chunks,
                                                   stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)


@kernel
def depthwise_nhwc_backprop_input_strided_simd_rows(w, dy, dx, row_begin, row_end, stride_h, stride_w, pad_top,
                                                    pad_left):
    """Input gradient, any filter size and stride, dilation 1: rows ``[row_begin, row_end)`` of ``dx``.

    As :func:`depthwise_nhwc_backprop_input_strided_rows`, but each ``dx`` pixel is one sum held in a
    register, in SIMD channel blocks from ``dy``'s first aligned channel: only the filter rows of the
    row's parity (``di = t mod stride``, ``t = y + pad_top``) and the columns of the pixel's
    (``dj = u mod stride``), clipped to ``dy``; nothing is accumulated in memory.  For the strides and
    filters without a parity kernel of their own (7x7 stride 2: ~12 of 49 taps per pixel).
    """
    w, dy, dx = borrowed(w), borrowed(dy), borrowed(dx)
    in_h, in_w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    kh, kw = w.shape[0], w.shape[1]
    out_h, out_w = dy.shape[1], dy.shape[2]
    count = lanes(dx)
    shift = aligned_shift(dy)
    dyf, wf, gf = dy.reshape(-1), w.reshape(-1), dx.reshape(-1)
    for r in range(row_begin, row_end):
        b = r // in_h
        y = r - b * in_h
        t = y + pad_top
        di_first = t % stride_h  # the row's filter rows: di_first, + stride_h, ...; dy rows i_first, - 1, ...
        row_taps = (kh - di_first + stride_h - 1) // stride_h
        i_first = (t - di_first) // stride_h
        for kb in range(_channel_blocks(c, shift, count)):
            k, n = _channel_block(kb, c, shift, count)
            for phase in range(stride_w):  # the columns whose u = xc + pad_left is phase mod stride_w
                col_taps = (kw - phase + stride_w - 1) // stride_w
                xc_first = (phase - pad_left) % stride_w
                j_first = (xc_first + pad_left - phase) // stride_w
                xc = xc_first
                while xc < in_w:  # no division in here: j_first grows by one a pixel
                    if xc + 3 * stride_w < in_w and j_first >= col_taps - 1 and j_first + 3 < out_w:
                        # four pixels, four independent sums (one chain of ~12 dependent FMAs ran at
                        # their latency), sharing the filter loads; all their dy columns exist
                        a0, a1, a2, a3 = vzeros(gf), vzeros(gf), vzeros(gf), vzeros(gf)
                        for mi in range(row_taps):
                            i = i_first - mi
                            if 0 <= i < out_h:
                                q0 = (b * out_h + i) * out_w * c + k + j_first * c
                                w_start = (di_first + mi * stride_h) * kw * c + k + phase * c
                                for mj in range(col_taps):
                                    wv = vload_n(wf, w_start + mj * stride_w * c, n)
                                    q = q0 - mj * c
                                    a0 = vfma(vload_n(dyf, q, n), wv, a0)
                                    a1 = vfma(vload_n(dyf, q + c, n), wv, a1)
                                    a2 = vfma(vload_n(dyf, q + 2 * c, n), wv, a2)
                                    a3 = vfma(vload_n(dyf, q + 3 * c, n), wv, a3)
                        o = (r * in_w + xc) * c + k
                        step = stride_w * c
                        vstore_n(gf, o, a0, n)
                        vstore_n(gf, o + step, a1, n)
                        vstore_n(gf, o + 2 * step, a2, n)
                        vstore_n(gf, o + 3 * step, a3, n)
                        xc += 4 * stride_w
                        j_first += 4
                        continue
                    # an edge pixel: its taps clipped to dy, in four chains (by parity of filter row and
                    # column) instead of one
                    a0, a1, a2, a3 = vzeros(gf), vzeros(gf), vzeros(gf), vzeros(gf)
                    for mi in range(row_taps):
                        i = i_first - mi
                        if 0 <= i < out_h:
                            row_start = (b * out_h + i) * out_w * c + k
                            w_start = (di_first + mi * stride_h) * kw * c + k + phase * c
                            j_lo = max(0, j_first - out_w + 1)  # the taps mj whose column j = j_first - mj exists
                            j_hi = min(col_taps, j_first + 1)
                            mj = j_lo
                            while mj + 1 < j_hi:
                                q = row_start + (j_first - mj) * c
                                a0 = vfma(vload_n(dyf, q, n), vload_n(wf, w_start + mj * stride_w * c, n), a0)
                                a1 = vfma(vload_n(dyf, q - c, n), vload_n(wf, w_start + (mj + 1) * stride_w * c, n), a1)
                                mj += 2
                            if mj < j_hi:
                                a0 = vfma(vload_n(dyf, row_start + (j_first - mj) * c, n),
                                          vload_n(wf, w_start + mj * stride_w * c, n), a0)
                        a0, a1, a2, a3 = a2, a3, a0, a1
                    vstore_n(gf, (r * in_w + xc) * c + k, vadd(vadd(a0, a1), vadd(a2, a3)), n)
                    xc += stride_w
                    j_first += 1


@kernel(parallel=True)
def depthwise_nhwc_backprop_input_strided_simd_parallel(w, dy, dx, n_chunks, stride_h, stride_w, pad_top, pad_left):
    """Input gradient over all rows of ``dx``, in ``n_chunks`` parallel blocks."""
    rows = dx.shape[0] * dx.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_backprop_input_strided_simd_rows(w, dy, dx, t * rows // n_chunks, (t + 1) * rows // n_chunks,
                                                        stride_h, stride_w, pad_top, pad_left)


@kernel(inline=True)
def _backprop_input_s2_pixel(g, ra, rb, rc, w, di_a, di_b, di_c, xc, pad_left, out_w, shift):
    """One pixel ``xc`` of a stride-2 input-gradient row (filter ``w`` ``[kh, kw, C]``): the taps of
    its column parity, clipped to the ``dy`` columns that exist, from the ``dy`` rows ``ra``, ``rb``,
    ``rc`` of filter rows ``di_a``, ``di_b``, ``di_c`` (``-1``: no such row), in channel blocks
    (as scalar loops these edge pixels took most of a small layer's time: 4x19x19x16 5x5 VALID,
    7 of 19 columns)."""
    c, kw = g.shape[1], w.shape[1]
    count = lanes(g)
    u = xc + pad_left
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        acc = vzeros(g)
        for dj in range(u % 2, kw, 2):
            j = (u - dj) // 2
            if 0 <= j < out_w:
                q = j * c + k
                acc = vfma(vload_n(ra, q, n), vload_n(w, (di_a * kw + dj) * c + k, n), acc)
                if di_b >= 0:
                    acc = vfma(vload_n(rb, q, n), vload_n(w, (di_b * kw + dj) * c + k, n), acc)
                if di_c >= 0:
                    acc = vfma(vload_n(rc, q, n), vload_n(w, (di_c * kw + dj) * c + k, n), acc)
        vstore_n(g, xc * c + k, acc, n)


@kernel
def _s2_row(dy, zero_row, b, t, di):
    """The ``dy`` row of filter row ``di`` for a stride-2 input-gradient row with ``y + pad_top = t``
    (``zero_row`` when it lies outside ``dy``)."""
    i = (t - di) // 2
    return dy[b, i] if 0 <= i < dy.shape[1] else zero_row


@kernel
def _s2_pairs(kw, out_w, in_w, pad_left):
    """The column pairs ``m`` in ``[m_lo, m_hi)`` of a stride-2 input-gradient row (filter width
    ``kw``) that need no clipping: ``dx`` columns ``2m - pad_left`` (``dy`` columns ``m`` down to
    ``m - (kw - 1) / 2``) and ``2m + 1 - pad_left``, both inside ``dx``; and the ``dx`` columns
    ``[lo, hi)`` they cover (the others are edge pixels)."""
    m_lo = max((kw - 1) // 2, (pad_left + 1) // 2)
    m_hi = max(m_lo, min(out_w, (in_w + pad_left) // 2))  # 2m + 1 - pad_left <= in_w - 1
    if m_hi == m_lo:
        return m_lo, m_hi, 0, 0
    return m_lo, m_hi, 2 * m_lo - pad_left, 2 * m_hi - pad_left


@kernel(inline=True)
def _s2_edges(g, ra, rb, rc, w, di_a, di_b, di_c, done_lo, done_hi, pad_left, out_w, shift):
    """The pixels of a stride-2 input-gradient row outside the pairs' ``[done_lo, done_hi)``, clipped."""
    in_w = g.shape[0]
    for xc in range(0, min(done_lo, in_w)):
        _backprop_input_s2_pixel(g, ra, rb, rc, w, di_a, di_b, di_c, xc, pad_left, out_w, shift)
    for xc in range(max(done_hi, 0), in_w):
        _backprop_input_s2_pixel(g, ra, rb, rc, w, di_a, di_b, di_c, xc, pad_left, out_w, shift)


@kernel
def _s2_terms3(row, q, c, ws, n, even, odd):
    """Add one ``dy`` row's taps (filter row ``ws``, 3 wide) to a pair of ``dx`` columns of a stride-2
    input gradient: the even column takes ``dy`` columns ``m`` and ``m - 1`` (flat index ``q`` and
    ``q - c``) with filter columns 0 and 2, the odd one column ``m`` with filter column 1."""
    r0, r1 = vload_n(row, q, n), vload_n(row, q - c, n)
    return vfma(r1, ws[2], vfma(r0, ws[0], even)), vfma(r0, ws[1], odd)


@kernel
def _s2_terms5(row, q, c, ws, n, even, odd):
    """As :func:`_s2_terms3`, a filter row 5 wide: even column ``dy`` columns ``m, m - 1, m - 2`` with
    filter columns 0, 2, 4; odd column ``m, m - 1`` with 1, 3."""
    r0, r1, r2 = vload_n(row, q, n), vload_n(row, q - c, n), vload_n(row, q - 2 * c, n)
    return vfma(r2, ws[4], vfma(r1, ws[2], vfma(r0, ws[0], even))), vfma(r1, ws[3], vfma(r0, ws[1], odd))


@kernel
def _s2_pairs_3x3(g, ra, rb, w9, di_a, di_b, m_lo, m_hi, pad_left, shift, ahead_g, ahead_dy, fetch):
    """The column pairs ``[m_lo, m_hi)`` of one stride-2 input-gradient row, 3x3 filter (SIMD): ``dy`` rows
    ``ra`` (filter row ``di_a``) and ``rb`` (``di_b``; ``-1``: none).  With ``fetch``, the next ``dx`` row
    ``ahead_g`` (two vectors a pair) and the next new ``dy`` row ``ahead_dy`` (one) are prefetched into L2 (as
    :func:`depthwise_nhwc_backprop_filter_3x3_rows`)."""
    c = g.shape[1]
    count = lanes(g)
    ahead = 0
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        wa = _weights3(w9, 3 * di_a, c, k, n)
        wb = _weights3(w9, 3 * max(di_b, 0), c, k, n)
        for m in range(m_lo, m_hi):
            if fetch:
                prefetch(ahead_g, 2 * ahead)
                prefetch(ahead_g, 2 * ahead + count)
                prefetch(ahead_dy, ahead)
                ahead += count
            q = m * c + k
            even, odd = _s2_terms3(ra, q, c, wa, n, vzeros(g), vzeros(g))
            if di_b >= 0:
                even, odd = _s2_terms3(rb, q, c, wb, n, even, odd)
            xe = (2 * m - pad_left) * c + k
            vstore_n(g, xe, even, n)
            vstore_n(g, xe + c, odd, n)


@kernel
def _s2_pairs_5x5(g, ra, rb, rc, w25, di_a, di_b, di_c, m_lo, m_hi, pad_left, shift):
    """As :func:`_s2_pairs_3x3`, a 5x5 filter: ``dy`` rows ``ra, rb`` and ``rc`` (``di_c = -1``: none)."""
    c = g.shape[1]
    count = lanes(g)
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        wa, wb = _weights5(w25, 5 * di_a, c, k, n), _weights5(w25, 5 * di_b, c, k, n)
        wc = _weights5(w25, 5 * max(di_c, 0), c, k, n)
        for m in range(m_lo, m_hi):
            q = m * c + k
            even, odd = _s2_terms5(ra, q, c, wa, n, vzeros(g), vzeros(g))
            even, odd = _s2_terms5(rb, q, c, wb, n, even, odd)
            if di_c >= 0:
                even, odd = _s2_terms5(rc, q, c, wc, n, even, odd)
            xe = (2 * m - pad_left) * c + k
            vstore_n(g, xe, even, n)
            vstore_n(g, xe + c, odd, n)


@kernel
def depthwise_nhwc_backprop_input_s2_3x3_rows(w, dy, dx, zero_row, row_begin, row_end, pad_top, pad_left,
                                              fetch=False):
    """Input gradient of a 3x3 filter with stride 2 (dilation 1): rows ``[row_begin, row_end)`` of ``dx``.

    Each ``dx`` pixel is one expression of the (at most four) taps that reach it, by parity: row
    ``y`` takes filter rows 0 and 2 (``dy`` rows ``(y + pad_top) / 2`` and that minus 1) when
    ``y + pad_top`` is even, else filter row 1; likewise for columns.  An even/odd pair of columns
    shares its ``dy`` loads, in SIMD channel blocks from ``dy``'s first aligned channel
    (:func:`_s2_pairs_3x3`); nothing is accumulated in memory.  A ``dy`` row outside ``dy`` reads
    ``zero_row``; the columns at the edges, whose taps would leave ``dy``, are clipped
    (:func:`_backprop_input_s2_pixel`).  ``fetch``: prefetch the next ``dx`` row and ``dy`` row
    (:func:`_s2_pairs_3x3`).
    """
    w, dy, dx, zero_row = borrowed(w), borrowed(dy), borrowed(dx), borrowed(zero_row)
    in_h, in_w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    out_w = dy.shape[2]
    # pairs m: dx columns 2m - pad_left (dy columns m and m - 1) and 2m + 1 - pad_left (dy column m)
    m_lo, m_hi, done_lo, done_hi = _s2_pairs(3, out_w, in_w, pad_left)
    w9 = w.reshape(9, c)
    shift = aligned_shift(dy)
    for r in range(row_begin, row_end):
        b = r // in_h
        y = r - b * in_h
        t = y + pad_top
        if t % 2 == 0:
            di_a, di_b = 0, 2
        else:
            di_a, di_b = 1, -1
        ra = _s2_row(dy, zero_row, b, t, di_a)
        rb = _s2_row(dy, zero_row, b, t, di_b) if di_b >= 0 else zero_row
        g = dx[b, y]
        _s2_pairs_3x3(g, ra, rb, w9, di_a, di_b, m_lo, m_hi, pad_left, shift, dx[b, min(y + 1, in_h - 1)],
                      row_or_zeros(dy, zero_row, b, t // 2 + 1), fetch)
        _s2_edges(g, ra, rb, zero_row, w, di_a, di_b, -1, done_lo, done_hi, pad_left, out_w, shift)


@kernel
def depthwise_nhwc_backprop_input_s2_5x5_rows(w, dy, dx, zero_row, row_begin, row_end, pad_top, pad_left):
    """Input gradient of a 5x5 filter with stride 2 (dilation 1): rows ``[row_begin, row_end)`` of ``dx``.

    As the 3x3 kernel, by parity: a row with ``y + pad_top`` even takes filter rows 0, 2, 4 (``dy``
    rows ``t/2``, ``t/2 - 1``, ``t/2 - 2``), an odd one rows 1, 3; an even column takes filter
    columns 0, 2, 4 (``dy`` columns ``m``, ``m - 1``, ``m - 2``), the odd column after it 1, 3
    (``m``, ``m - 1``).  Each pair of columns is one expression per channel block with all its taps
    (at most 15), sharing the ``dy`` loads (:func:`_s2_pairs_5x5`).
    """
    w, dy, dx, zero_row = borrowed(w), borrowed(dy), borrowed(dx), borrowed(zero_row)
    in_h, in_w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    out_w = dy.shape[2]
    m_lo, m_hi, done_lo, done_hi = _s2_pairs(5, out_w, in_w, pad_left)
    w25 = w.reshape(25, c)
    shift = aligned_shift(dy)
    for r in range(row_begin, row_end):
        b = r // in_h
        y = r - b * in_h
        t = y + pad_top
        g = dx[b, y]
        if t % 2 == 0:
            ra, rb, rc = _s2_row(dy, zero_row, b, t, 0), _s2_row(dy, zero_row, b, t, 2), _s2_row(dy, zero_row, b, t, 4)
            di_a, di_b, di_c = 0, 2, 4
        else:
            ra, rb, rc = _s2_row(dy, zero_row, b, t, 1), _s2_row(dy, zero_row, b, t, 3), zero_row
            di_a, di_b, di_c = 1, 3, -1
        _s2_pairs_5x5(g, ra, rb, rc, w25, di_a, di_b, di_c, m_lo, m_hi, pad_left, shift)
        _s2_edges(g, ra, rb, rc, w, di_a, di_b, di_c, done_lo, done_hi, pad_left, out_w, shift)


@kernel
def _s2_strip7(dyf, q, c, ws, n, e, o):
    """Add one ``dy`` row's taps (filter row ``ws``, 7 wide) to four column pairs ``m .. m + 3`` of a stride-2
    input-gradient row (``q``: flat index of ``dy`` column ``m``, channel block ``k``): the even column of pair
    ``p`` takes ``dy`` columns ``m+p, m+p-1, m+p-2, m+p-3`` with filter columns 0, 2, 4, 6, the odd one
    ``m+p, m+p-1, m+p-2`` with 1, 3, 5.  The seven ``dy`` columns ``m-3 .. m+3`` are loaded once for the 28
    multiply-adds (the register-sum kernel loaded a ``dy`` vector and a weight per multiply-add)."""
    dm3, dm2, dm1 = vload_n(dyf, q - 3 * c, n), vload_n(dyf, q - 2 * c, n), vload_n(dyf, q - c, n)
    d0, d1, d2, d3 = vload_n(dyf, q, n), vload_n(dyf, q + c, n), vload_n(dyf, q + 2 * c, n), vload_n(dyf, q + 3 * c, n)
    w0, w1, w2, w3, w4, w5, w6 = ws
    e0 = vfma(dm3, w6, vfma(dm2, w4, vfma(dm1, w2, vfma(d0, w0, e[0]))))
    e1 = vfma(dm2, w6, vfma(dm1, w4, vfma(d0, w2, vfma(d1, w0, e[1]))))
    e2 = vfma(dm1, w6, vfma(d0, w4, vfma(d1, w2, vfma(d2, w0, e[2]))))
    e3 = vfma(d0, w6, vfma(d1, w4, vfma(d2, w2, vfma(d3, w0, e[3]))))
    o0 = vfma(dm2, w5, vfma(dm1, w3, vfma(d0, w1, o[0])))
    o1 = vfma(dm1, w5, vfma(d0, w3, vfma(d1, w1, o[1])))
    o2 = vfma(d0, w5, vfma(d1, w3, vfma(d2, w1, o[2])))
    o3 = vfma(d1, w5, vfma(d2, w3, vfma(d3, w1, o[3])))
    return (e0, e1, e2, e3), (o0, o1, o2, o3)


@kernel
def _s2_pair7(dyf, q, c, ws, n, even, odd):
    """As :func:`_s2_strip7`, one column pair."""
    dm3, dm2, dm1, d0 = vload_n(dyf, q - 3 * c, n), vload_n(dyf, q - 2 * c, n), vload_n(dyf, q - c, n), vload_n(dyf, q, n)
    return (vfma(dm3, ws[6], vfma(dm2, ws[4], vfma(dm1, ws[2], vfma(d0, ws[0], even)))),
            vfma(dm2, ws[5], vfma(dm1, ws[3], vfma(d0, ws[1], odd))))


@kernel
def _s2_edge_pixel7(g, dyf, w2, b, t, first, xc, pad_left, out_h, out_w, shift):
    """One pixel ``xc`` of a stride-2 input-gradient row of a filter 7 wide (``w2`` ``[kh * 7, C]``) whose taps
    are clipped to the ``dy`` columns that exist; filter rows ``first, first + 2, ...`` (``t = y + pad_top``)."""
    c, kh = g.shape[1], w2.shape[0] // 7
    count = lanes(g)
    u = xc + pad_left
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        acc = vzeros(g)
        for di in range(first, kh, 2):
            i = (t - di) // 2
            if 0 <= i < out_h:
                for dj in range(u % 2, 7, 2):
                    j = (u - dj) // 2
                    if 0 <= j < out_w:
                        acc = vfma(vload_n(dyf, ((b * out_h + i) * out_w + j) * c + k, n),
                                   vload_n(w2, (di * 7 + dj) * c + k, n), acc)
        vstore_n(g, xc * c + k, acc, n)


@kernel
def depthwise_nhwc_backprop_input_s2_w7_rows(w, dy, dx, row_begin, row_end, pad_top, pad_left):
    """Input gradient of a filter 7 wide (any height) with stride 2 (dilation 1): rows ``[row_begin, row_end)``
    of ``dx``.  By parity, as the 3x3 and 5x5 kernels: a row takes the filter rows of ``y + pad_top``'s parity
    (``dy`` rows outside ``dy`` skipped), a column pair ``m`` (``dx`` columns ``2m - pad_left``, even, and the
    odd one after it) the ``dy`` columns ``m .. m - 3``; four pairs at a time share their ``dy`` loads, in
    registers (:func:`_s2_strip7`: 28 multiply-adds per 7 ``dy`` and 7 weight loads and a filter row), channel
    block by channel block; the edge columns are clipped (:func:`_s2_edge_pixel7`)."""
    w, dy, dx = borrowed(w), borrowed(dy), borrowed(dx)
    in_h, in_w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    out_h, out_w = dy.shape[1], dy.shape[2]
    kh = w.shape[0]
    m_lo, m_hi, done_lo, done_hi = _s2_pairs(7, out_w, in_w, pad_left)
    w2 = w.reshape(kh * 7, c)
    dyf = dy.reshape(-1)
    shift = aligned_shift(dy)
    count = lanes(dx)
    for r in range(row_begin, row_end):
        b = r // in_h
        y = r - b * in_h
        t = y + pad_top
        first = t % 2
        g = dx[b, y]
        for kb in range(_channel_blocks(c, shift, count)):
            k, n = _channel_block(kb, c, shift, count)
            m = m_lo
            while m + 4 <= m_hi:
                z = vzeros(g)
                e, o = (z, z, z, z), (z, z, z, z)
                for di in range(first, kh, 2):
                    i = (t - di) // 2
                    if 0 <= i < out_h:
                        e, o = _s2_strip7(dyf, ((b * out_h + i) * out_w + m) * c + k, c, _weights7(w2, di * 7, c, k, n),
                                          n, e, o)
                xe = (2 * m - pad_left) * c + k
                vstore_n(g, xe, e[0], n)
                vstore_n(g, xe + c, o[0], n)
                vstore_n(g, xe + 2 * c, e[1], n)
                vstore_n(g, xe + 3 * c, o[1], n)
                vstore_n(g, xe + 4 * c, e[2], n)
                vstore_n(g, xe + 5 * c, o[2], n)
                vstore_n(g, xe + 6 * c, e[3], n)
                vstore_n(g, xe + 7 * c, o[3], n)
                m += 4
            while m < m_hi:
                even = odd = vzeros(g)
                for di in range(first, kh, 2):
                    i = (t - di) // 2
                    if 0 <= i < out_h:
                        even, odd = _s2_pair7(dyf, ((b * out_h + i) * out_w + m) * c + k, c,
                                              _weights7(w2, di * 7, c, k, n), n, even, odd)
                xe = (2 * m - pad_left) * c + k
                vstore_n(g, xe, even, n)
                vstore_n(g, xe + c, odd, n)
                m += 1
        for xc in range(0, min(done_lo, in_w)):
            _s2_edge_pixel7(g, dyf, w2, b, t, first, xc, pad_left, out_h, out_w, shift)
        for xc in range(max(done_hi, 0), in_w):
            _s2_edge_pixel7(g, dyf, w2, b, t, first, xc, pad_left, out_h, out_w, shift)


@kernel
def depthwise_nhwc_backprop_input_s2_any_rows(w, dy, dx, zero_row, row_begin, row_end, pad_top, pad_left, fetch=False):
    """The stride-2 parity kernel for ``w``'s filter size (3x3, 5x5 or 7 wide), rows ``[row_begin, row_end)`` of
    ``dx`` (``fetch``: the 3x3 kernel's)."""
    if w.shape[1] == 7:
        depthwise_nhwc_backprop_input_s2_w7_rows(w, dy, dx, row_begin, row_end, pad_top, pad_left)
    elif w.shape[0] == 3:
        depthwise_nhwc_backprop_input_s2_3x3_rows(w, dy, dx, zero_row, row_begin, row_end, pad_top, pad_left, fetch)
    else:
        depthwise_nhwc_backprop_input_s2_5x5_rows(w, dy, dx, zero_row, row_begin, row_end, pad_top, pad_left)


@kernel(parallel=True)
def depthwise_nhwc_backprop_input_s2_parallel(w, dy, dx, zero_row, n_chunks, pad_top, pad_left, fetch=False):
    """The stride-2 parity kernels over all rows of ``dx``, in ``n_chunks`` parallel blocks."""
    rows = dx.shape[0] * dx.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_backprop_input_s2_any_rows(w, dy, dx, zero_row, t * rows // n_chunks, (t + 1) * rows // n_chunks,
                                                  pad_top, pad_left, fetch)


# --------------------------------------------------------------------------- filter gradient


@kernel
def _accumulate3(xr, q, gap, g, acc, n):
    """``acc[t] += xr.flat[q + t * gap : ... + n] * g`` for the three taps of one filter row."""
    return (vfma(vload_n(xr, q, n), g, acc[0]), vfma(vload_n(xr, q + gap, n), g, acc[1]),
            vfma(vload_n(xr, q + 2 * gap, n), g, acc[2]))


@kernel
def _accumulate5(xr, q, gap, g, acc, n):
    """As :func:`_accumulate3`, five taps."""
    return (vfma(vload_n(xr, q, n), g, acc[0]), vfma(vload_n(xr, q + gap, n), g, acc[1]),
            vfma(vload_n(xr, q + 2 * gap, n), g, acc[2]), vfma(vload_n(xr, q + 3 * gap, n), g, acc[3]),
            vfma(vload_n(xr, q + 4 * gap, n), g, acc[4]))


@kernel
def _accumulate7(xr, q, gap, g, acc, n):
    """As :func:`_accumulate3`, seven taps."""
    return (vfma(vload_n(xr, q, n), g, acc[0]), vfma(vload_n(xr, q + gap, n), g, acc[1]),
            vfma(vload_n(xr, q + 2 * gap, n), g, acc[2]), vfma(vload_n(xr, q + 3 * gap, n), g, acc[3]),
            vfma(vload_n(xr, q + 4 * gap, n), g, acc[4]), vfma(vload_n(xr, q + 5 * gap, n), g, acc[5]),
            vfma(vload_n(xr, q + 6 * gap, n), g, acc[6]))


@kernel
def _weights7(w, tap, c, k, n):
    """As :func:`_weights3`, seven taps."""
    return (vload_n(w, tap * c + k, n), vload_n(w, (tap + 1) * c + k, n), vload_n(w, (tap + 2) * c + k, n),
            vload_n(w, (tap + 3) * c + k, n), vload_n(w, (tap + 4) * c + k, n), vload_n(w, (tap + 5) * c + k, n),
            vload_n(w, (tap + 6) * c + k, n))


@kernel
def _store3(w, tap, c, k, acc, n):
    """Store three vectors as the channel block ``[k, k + n)`` of taps ``tap .. tap + 2`` of ``w`` ``[taps, C]``."""
    vstore_n(w, tap * c + k, acc[0], n)
    vstore_n(w, (tap + 1) * c + k, acc[1], n)
    vstore_n(w, (tap + 2) * c + k, acc[2], n)


@kernel
def _store5(w, tap, c, k, acc, n):
    """As :func:`_store3`, five taps."""
    _store3(w, tap, c, k, acc, n)
    vstore_n(w, (tap + 3) * c + k, acc[3], n)
    vstore_n(w, (tap + 4) * c + k, acc[4], n)


@kernel
def _filter_gradient_interior_3x3(dw9, x0, x1, x2, dyr, j_lo, j_hi, stride_w, dil_w, pad_left, shift):
    """Add to ``dw9`` ``[9, C]`` the pixels ``[j_lo, j_hi)`` of one ``dy`` row whose three columns are inside
    the input rows ``x0, x1, x2``: per channel block, the nine sums stay in registers while the
    pixels go by (one ``dy`` load, nine input loads and nine multiply-adds per pixel)."""
    c = dyr.shape[1]
    count = lanes(dyr)
    step, gap = stride_w * c, dil_w * c
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        ra, rb, re = _weights3(dw9, 0, c, k, n), _weights3(dw9, 3, c, k, n), _weights3(dw9, 6, c, k, n)
        q = (j_lo * stride_w - pad_left) * c + k
        if stride_w == 1 and dil_w == 1:
            # a sliding window, as in the forward: three new input loads per pixel instead of nine
            a0, b0, e0 = vload_n(x0, q, n), vload_n(x1, q, n), vload_n(x2, q, n)
            a1, b1, e1 = vload_n(x0, q + c, n), vload_n(x1, q + c, n), vload_n(x2, q + c, n)
            for j in range(j_lo, j_hi):
                g = vload_n(dyr, j * c + k, n)
                q2 = q + 2 * c
                a2, b2, e2 = vload_n(x0, q2, n), vload_n(x1, q2, n), vload_n(x2, q2, n)
                ra = (vfma(a0, g, ra[0]), vfma(a1, g, ra[1]), vfma(a2, g, ra[2]))
                rb = (vfma(b0, g, rb[0]), vfma(b1, g, rb[1]), vfma(b2, g, rb[2]))
                re = (vfma(e0, g, re[0]), vfma(e1, g, re[1]), vfma(e2, g, re[2]))
                a0, a1, b0, b1, e0, e1 = a1, a2, b1, b2, e1, e2
                q += c
        else:
            for j in range(j_lo, j_hi):
                g = vload_n(dyr, j * c + k, n)
                ra = _accumulate3(x0, q, gap, g, ra, n)
                rb = _accumulate3(x1, q, gap, g, rb, n)
                re = _accumulate3(x2, q, gap, g, re, n)
                q += step
        _store3(dw9, 0, c, k, ra, n)
        _store3(dw9, 3, c, k, rb, n)
        _store3(dw9, 6, c, k, re, n)


@kernel
def _filter_gradient_interior_3x3_two_rows(dw9, x0, x1, x2, x3, dy0, dy1, j_lo, j_hi, pad_left, shift):
    """Stride and dilation 1: two neighbouring ``dy`` rows, ``dy0`` against input rows ``x0 .. x2`` and
    ``dy1`` against ``x1 .. x3``, in one sliding pass (the middle rows' loads are shared)."""
    c = dy0.shape[1]
    count = lanes(dy0)
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        ra, rb, re = _weights3(dw9, 0, c, k, n), _weights3(dw9, 3, c, k, n), _weights3(dw9, 6, c, k, n)
        q = (j_lo - pad_left) * c + k
        a0, b0, e0, f0 = vload_n(x0, q, n), vload_n(x1, q, n), vload_n(x2, q, n), vload_n(x3, q, n)
        a1, b1, e1, f1 = vload_n(x0, q + c, n), vload_n(x1, q + c, n), vload_n(x2, q + c, n), vload_n(x3, q + c, n)
        for j in range(j_lo, j_hi):
            g, h = vload_n(dy0, j * c + k, n), vload_n(dy1, j * c + k, n)
            q2 = q + 2 * c
            a2, b2, e2, f2 = vload_n(x0, q2, n), vload_n(x1, q2, n), vload_n(x2, q2, n), vload_n(x3, q2, n)
            ra = (vfma(b0, h, vfma(a0, g, ra[0])), vfma(b1, h, vfma(a1, g, ra[1])), vfma(b2, h, vfma(a2, g, ra[2])))
            rb = (vfma(e0, h, vfma(b0, g, rb[0])), vfma(e1, h, vfma(b1, g, rb[1])), vfma(e2, h, vfma(b2, g, rb[2])))
            re = (vfma(f0, h, vfma(e0, g, re[0])), vfma(f1, h, vfma(e1, g, re[1])), vfma(f2, h, vfma(e2, g, re[2])))
            a0, a1, b0, b1, e0, e1, f0, f1 = a1, a2, b1, b2, e1, e2, f1, f2
            q += c
        _store3(dw9, 0, c, k, ra, n)
        _store3(dw9, 3, c, k, rb, n)
        _store3(dw9, 6, c, k, re, n)


@kernel
def _filter_gradient_same_3x3(dw9, x0, x1, x2, dy0, shift):
    """Stride and dilation 1 with one column of padding on each side (SAME, ``out_w == in_w >= 2``):
    every pixel of the ``dy`` row ``dy0`` against input rows ``x0 .. x2`` in one sliding pass, the
    padding columns as zero vectors (no border pixels)."""
    c = dy0.shape[1]
    width = dy0.shape[0]
    count = lanes(dy0)
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        ra, rb, re = _weights3(dw9, 0, c, k, n), _weights3(dw9, 3, c, k, n), _weights3(dw9, 6, c, k, n)
        a0 = b0 = e0 = vzeros(dy0)
        a1, b1, e1 = vload_n(x0, k, n), vload_n(x1, k, n), vload_n(x2, k, n)
        q = k
        for j in range(width):
            if j + 1 < width:
                q += c
                a2, b2, e2 = vload_n(x0, q, n), vload_n(x1, q, n), vload_n(x2, q, n)
            else:
                a2 = b2 = e2 = vzeros(dy0)
            g = vload_n(dy0, j * c + k, n)
            ra = (vfma(a0, g, ra[0]), vfma(a1, g, ra[1]), vfma(a2, g, ra[2]))
            rb = (vfma(b0, g, rb[0]), vfma(b1, g, rb[1]), vfma(b2, g, rb[2]))
            re = (vfma(e0, g, re[0]), vfma(e1, g, re[1]), vfma(e2, g, re[2]))
            a0, a1, b0, b1, e0, e1 = a1, a2, b1, b2, e1, e2
        _store3(dw9, 0, c, k, ra, n)
        _store3(dw9, 3, c, k, rb, n)
        _store3(dw9, 6, c, k, re, n)


@kernel
def _filter_gradient_same_3x3_two_rows(dw9, x0, x1, x2, x3, dy0, dy1, shift, ahead0, ahead1, ahead2, ahead3, fetch):
    """As :func:`_filter_gradient_same_3x3`, two neighbouring ``dy`` rows (``dy0`` against ``x0 .. x2``,
    ``dy1`` against ``x1 .. x3``) in one pass, as :func:`_filter_gradient_interior_3x3_two_rows`; wide
    rows in tiles, as the forward (:data:`SAME_TILE_PIXELS`), the sums of a block kept in ``dw9``
    between tiles.  Its loop has no branch, as the forward's (:func:`_forward_same_3x3_two_rows_d1`): loads masked
    whatever the block, the row's last pixel (its right column is padding) after the loop.  With ``fetch``, the
    rows ``ahead0 .. ahead3`` (the next pair's) are prefetched into L2 a vector a row per pixel but the row's last,
    spread over the pass (see :func:`depthwise_nhwc_backprop_filter_3x3_rows`)."""
    c = dy0.shape[1]
    width = dy0.shape[0]
    count = lanes(dy0)
    tile = width if width <= SAME_TILE_MIN_WIDTH else SAME_TILE_PIXELS
    ahead = 0
    for j0 in range(0, width, tile):
        j1 = min(j0 + tile, width)
        inner = j1 - 1 if j1 == width else j1  # pixels with their right column in the row
        for kb in range(_channel_blocks(c, shift, count)):
            k, n = _channel_block(kb, c, shift, count)
            ra0, ra1, ra2 = _weights3(dw9, 0, c, k, n)
            rb0, rb1, rb2 = _weights3(dw9, 3, c, k, n)
            re0, re1, re2 = _weights3(dw9, 6, c, k, n)
            q = j0 * c + k
            a0, b0, e0, f0, a1, b1, e1, f1 = _tile_window(x0, x1, x2, x3, q, c, n, j0 == 0)
            for _ in range(j0, inner):
                q += c
                a2, b2 = vload_part(x0, q, n), vload_part(x1, q, n)
                e2, f2 = vload_part(x2, q, n), vload_part(x3, q, n)
                if fetch:
                    _prefetch4(ahead0, ahead1, ahead2, ahead3, ahead)
                    ahead += count
                g, h = vload_part(dy0, q - c, n), vload_part(dy1, q - c, n)
                ra0, ra1, ra2 = vfma(b0, h, vfma(a0, g, ra0)), vfma(b1, h, vfma(a1, g, ra1)), vfma(b2, h, vfma(a2, g, ra2))
                rb0, rb1, rb2 = vfma(e0, h, vfma(b0, g, rb0)), vfma(e1, h, vfma(b1, g, rb1)), vfma(e2, h, vfma(b2, g, rb2))
                re0, re1, re2 = vfma(f0, h, vfma(e0, g, re0)), vfma(f1, h, vfma(e1, g, re1)), vfma(f2, h, vfma(e2, g, re2))
                a0, a1, b0, b1, e0, e1, f0, f1 = a1, a2, b1, b2, e1, e2, f1, f2
            if inner < j1:  # the row's last pixel: its right column is padding
                g, h = vload_part(dy0, inner * c + k, n), vload_part(dy1, inner * c + k, n)
                ra0, ra1 = vfma(b0, h, vfma(a0, g, ra0)), vfma(b1, h, vfma(a1, g, ra1))
                rb0, rb1 = vfma(e0, h, vfma(b0, g, rb0)), vfma(e1, h, vfma(b1, g, rb1))
                re0, re1 = vfma(f0, h, vfma(e0, g, re0)), vfma(f1, h, vfma(e1, g, re1))
            _store3(dw9, 0, c, k, (ra0, ra1, ra2), n)
            _store3(dw9, 3, c, k, (rb0, rb1, rb2), n)
            _store3(dw9, 6, c, k, (re0, re1, re2), n)


@kernel(inline=True)
def _add_to(a, i, v, n):
    """``a.flat[i : i + n] += v``."""
    vstore_n(a, i, vadd(vload_n(a, i, n), v), n)


@kernel(inline=True)
def _add_to_block(a, i, v, c, k, n):
    """``a.flat[i : i + n] += v`` for the channel block of :func:`_wrapped_block` at ``k``, ``i`` its place in a
    row of ``C``: the lanes past ``C`` (a wrapping block's, the next pixel's first channels) added at ``i - C``."""
    if k + n <= c:
        _add_to(a, i, v, n)
    else:
        lo = c - k
        vstore_lanes(a, i, vadd(vload_lanes(a, i, 0, lo), v), 0, lo)
        vstore_lanes(a, i - c, vadd(vload_lanes(a, i - c, lo, n), v), lo, n)


@kernel(inline=True)
def _filter_column_from_winograd(dw9, t, c, k, m0, m1, m2, m3, half, n):
    """Add filter column ``t`` of the Winograd sums ``m0 .. m3`` of
    :func:`_filter_gradient_same_3x3_two_rows_winograd` to ``dw9``: rows ``m0 + (m1 + m2) / 2``, ``(m1 - m2) / 2``,
    ``(m1 + m2) / 2 - m3`` (a wrapping block's as :func:`_add_to_block`)."""
    both = vmul(vadd(m1, m2), half)
    _add_to_block(dw9, t * c + k, vadd(m0, both), c, k, n)
    _add_to_block(dw9, (3 + t) * c + k, vmul(vsub(m1, m2), half), c, k, n)
    _add_to_block(dw9, (6 + t) * c + k, vsub(both, m3), c, k, n)


@kernel(inline=True)
def _winograd_filter_products(a, b, e, f, g, h, window, sums):
    """One pixel of :func:`_filter_gradient_same_3x3_two_rows_winograd`: the window's next column ``a, b, e, f``
    (its four input rows) transformed, the pixel's two ``dy`` vectors ``g, h`` multiplied into the twelve sums
    ``sums``, the window ``window`` (``u00, u01, u10, ...``) moved on; the loads stay in the loop (given the arrays,
    LLVM kept their pointers on the stack)."""
    u00, u01, u10, u11, u20, u21, u30, u31 = window
    m00, m01, m02, m10, m11, m12, m20, m21, m22, m30, m31, m32 = sums
    u02, u12, u22, u32 = _column_transform(a, b, e, f)
    s, d = vadd(g, h), vsub(g, h)
    m00, m01, m02 = vfma(u00, g, m00), vfma(u01, g, m01), vfma(u02, g, m02)
    m10, m11, m12 = vfma(u10, s, m10), vfma(u11, s, m11), vfma(u12, s, m12)
    m20, m21, m22 = vfma(u20, d, m20), vfma(u21, d, m21), vfma(u22, d, m22)
    m30, m31, m32 = vfma(u30, h, m30), vfma(u31, h, m31), vfma(u32, h, m32)
    return ((u01, u02, u11, u12, u21, u22, u31, u32),
            (m00, m01, m02, m10, m11, m12, m20, m21, m22, m30, m31, m32))


@kernel
def _filter_gradient_same_3x3_two_rows_winograd(dw9, x0, x1, x2, x3, dy0, dy1, shift, ahead0, ahead1, ahead2, ahead3,
                                                fetch):
    """:func:`_filter_gradient_same_3x3_two_rows` by Winograd's F(2, 3) down the columns, transposed: each input
    column's four rows become ``u = (a - e, b + e, e - b, b - f)`` (as the forward,
    :func:`_forward_same_3x3_two_rows_winograd`), the two ``dy`` rows ``g, h`` become ``(g, g + h, g - h, h)``, and
    each ``u`` row times its ``dy`` row is summed over the three filter columns: twelve multiply-adds a pixel, not
    eighteen, into twelve sums, which become the filter's three rows at the tile's end
    (:func:`_filter_column_from_winograd`).  Channel blocks as the forward's (:func:`_wrapped_block`): a wrapping
    block's lanes outside the row read as zeros, so they add nothing."""
    c = dy0.shape[1]
    width = dy0.shape[0]
    count = lanes(dy0)
    end = width * c
    tile = width if width <= SAME_TILE_MIN_WIDTH else SAME_TILE_PIXELS
    half = vsplat(dy0, 0.5)
    z = vzeros(dy0)
    ahead = 0
    for j0 in range(0, width, tile):
        j1 = min(j0 + tile, width)
        for kb in range(_wrapped_blocks(c, count)):
            k, n = _wrapped_block(kb, c, shift, count)
            sums = (z, z, z, z, z, z, z, z, z, z, z, z)
            ja = -1 if j0 == 0 and k + n > c else j0  # a wrapping block's pixel -1 holds pixel 0's first channels
            if k + n > c:  # its window by lane, and its last two pixels (their lanes past the row's end)
                q = ja * c + k
                u00, u10, u20, u30, u01, u11, u21, u31 = _winograd_window_in_row(x0, x1, x2, x3, q, c, n, end)
                inner = max(0, min(j1, width - 2))
            else:
                q = j0 * c + k
                u00, u10, u20, u30, u01, u11, u21, u31 = _winograd_window(x0, x1, x2, x3, q, c, n, j0 == 0)
                inner = j1 - 1 if j1 == width else j1  # the row's last pixel: its right column is padding
            window = (u00, u01, u10, u11, u20, u21, u30, u31)
            start = max(ja, 0)
            for _ in range(ja, start):  # a wrapping block's pixel -1: its top lanes only
                q += c
                window, sums = _winograd_filter_products(
                    vload_part(x0, q, n), vload_part(x1, q, n), vload_part(x2, q, n), vload_part(x3, q, n),
                    _load_in_row(dy0, q - c, n, end), _load_in_row(dy1, q - c, n, end), window, sums)
            u00, u01, u10, u11, u20, u21, u30, u31 = window
            m00, m01, m02, m10, m11, m12, m20, m21, m22, m30, m31, m32 = sums
            for _ in range(start, inner):  # no branch in the loop (else LLVM reloads the row pointers each step)
                q += c
                u02, u12, u22, u32 = _column_transform(vload_part(x0, q, n), vload_part(x1, q, n),
                                                       vload_part(x2, q, n), vload_part(x3, q, n))
                if fetch:
                    _prefetch4(ahead0, ahead1, ahead2, ahead3, ahead)
                    ahead += count
                g, h = vload_part(dy0, q - c, n), vload_part(dy1, q - c, n)
                s, d = vadd(g, h), vsub(g, h)
                m00, m01, m02 = vfma(u00, g, m00), vfma(u01, g, m01), vfma(u02, g, m02)
                m10, m11, m12 = vfma(u10, s, m10), vfma(u11, s, m11), vfma(u12, s, m12)
                m20, m21, m22 = vfma(u20, d, m20), vfma(u21, d, m21), vfma(u22, d, m22)
                m30, m31, m32 = vfma(u30, h, m30), vfma(u31, h, m31), vfma(u32, h, m32)
                u00, u01, u10, u11, u20, u21, u30, u31 = u01, u02, u11, u12, u21, u22, u31, u32
            if k + n <= c:
                if inner < j1:  # the row's last pixel: its right column is padding
                    g, h = vload_part(dy0, inner * c + k, n), vload_part(dy1, inner * c + k, n)
                    s, d = vadd(g, h), vsub(g, h)
                    m00, m01 = vfma(u00, g, m00), vfma(u01, g, m01)
                    m10, m11 = vfma(u10, s, m10), vfma(u11, s, m11)
                    m20, m21 = vfma(u20, d, m20), vfma(u21, d, m21)
                    m30, m31 = vfma(u30, h, m30), vfma(u31, h, m31)
            else:
                window = (u00, u01, u10, u11, u20, u21, u30, u31)
                sums = (m00, m01, m02, m10, m11, m12, m20, m21, m22, m30, m31, m32)
                for _ in range(inner, j1):  # a wrapping block's last pixels: columns and lanes past the row's end
                    q += c
                    window, sums = _winograd_filter_products(
                        _load_in_row(x0, q, n, end), _load_in_row(x1, q, n, end), _load_in_row(x2, q, n, end),
                        _load_in_row(x3, q, n, end), _load_in_row(dy0, q - c, n, end),
                        _load_in_row(dy1, q - c, n, end), window, sums)
                m00, m01, m02, m10, m11, m12, m20, m21, m22, m30, m31, m32 = sums
            _filter_column_from_winograd(dw9, 0, c, k, m00, m10, m20, m30, half, n)
            _filter_column_from_winograd(dw9, 1, c, k, m01, m11, m21, m31, half, n)
            _filter_column_from_winograd(dw9, 2, c, k, m02, m12, m22, m32, half, n)


@kernel
def _filter_gradient_interior_5x5(dw25, x0, x1, x2, x3, x4, dyr, j_lo, j_hi, stride_w, dil_w, pad_left, shift):
    """As :func:`_filter_gradient_interior_3x3`, a 5x5 filter: 25 sums in registers."""
    c = dyr.shape[1]
    count = lanes(dyr)
    step, gap = stride_w * c, dil_w * c
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        ra, rb, re = _weights5(dw25, 0, c, k, n), _weights5(dw25, 5, c, k, n), _weights5(dw25, 10, c, k, n)
        rf, rg = _weights5(dw25, 15, c, k, n), _weights5(dw25, 20, c, k, n)
        q = (j_lo * stride_w - pad_left) * c + k
        for j in range(j_lo, j_hi):
            g = vload_n(dyr, j * c + k, n)
            ra = _accumulate5(x0, q, gap, g, ra, n)
            rb = _accumulate5(x1, q, gap, g, rb, n)
            re = _accumulate5(x2, q, gap, g, re, n)
            rf = _accumulate5(x3, q, gap, g, rf, n)
            rg = _accumulate5(x4, q, gap, g, rg, n)
            q += step
        _store5(dw25, 0, c, k, ra, n)
        _store5(dw25, 5, c, k, rb, n)
        _store5(dw25, 10, c, k, re, n)
        _store5(dw25, 15, c, k, rf, n)
        _store5(dw25, 20, c, k, rg, n)


@kernel
def _store7(w, tap, c, k, acc, n):
    """As :func:`_store3`, seven taps."""
    _store5(w, tap, c, k, acc, n)
    vstore_n(w, (tap + 5) * c + k, acc[5], n)
    vstore_n(w, (tap + 6) * c + k, acc[6], n)


@kernel
def _filter_gradient_interior_row7(dw, tap, xr, dyr, j_lo, j_hi, stride_w, dil_w, pad_left, shift):
    """Add to ``dw`` ``[taps, C]`` the taps ``tap .. tap + 6`` (one row of a filter 7 wide) over the pixels
    ``[j_lo, j_hi)`` of one ``dy`` row, whose seven columns are inside the input row ``xr``: per channel
    block, the seven sums stay in registers while the pixels go by (one ``dy`` load, seven input loads and
    seven multiply-adds per pixel; the 49 sums of a whole 7x7 filter would not fit the registers)."""
    c = dyr.shape[1]
    count = lanes(dyr)
    step, gap = stride_w * c, dil_w * c
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        acc = _weights7(dw, tap, c, k, n)
        q = (j_lo * stride_w - pad_left) * c + k
        for j in range(j_lo, j_hi):
            acc = _accumulate7(xr, q, gap, vload_n(dyr, j * c + k, n), acc, n)
            q += step
        _store7(dw, tap, c, k, acc, n)


@kernel
def _filter_gradient_border(dw, x, b, ih0, dil_h, kh, dy, i, kw, j_begin, j_end, stride_w, dil_w, pad_left):
    """Add to ``dw`` ``[kh * kw, C]`` the pixels ``[j_begin, j_end)`` of ``dy`` row ``(b, i)`` whose columns
    reach into the padding: only the filter taps inside the input (input row of filter row ``di``:
    ``ih0 + di * dil_h``).  Indexed in full, with no row views: a view made in a loop costs atomic
    reference counting."""
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    di_lo, di_hi = tap_range(ih0, dil_h, kh, in_h)
    for j in range(j_begin, j_end):
        c0 = j * stride_w - pad_left
        dj_lo, dj_hi = tap_range(c0, dil_w, kw, in_w)
        for di in range(di_lo, di_hi):
            ih = ih0 + di * dil_h
            for dj in range(dj_lo, dj_hi):
                col = c0 + dj * dil_w
                t = di * kw + dj
                for k in range(c):
                    dw[t, k] += x[b, ih, col, k] * dy[b, i, j, k]


@kernel
def depthwise_nhwc_backprop_filter_3x3_rows(x, dy, dw, zero_row, row_begin, row_end, stride_h, stride_w, dil_h,
                                            dil_w, pad_top, pad_left, fetch=False, winograd=False):
    """Filter gradient of a 3x3 filter, output rows ``[row_begin, row_end)`` *added* to ``dw`` ``[3, 3, C]``
    (SIMD, :func:`_filter_gradient_interior_3x3`, two rows at a time with strides and dilations 1;
    input rows in the padding read ``zero_row``; SAME columns at horizontal stride and dilation 1:
    every pixel in the sliding pass, :func:`_filter_gradient_same_3x3` and its two-row form, the
    padding columns as zero vectors; ``fast.depthwise`` sends a non-finite ``dy`` to the reference).

    ``fetch``: while a SAME pair of rows is summed, prefetch the rows the next pair adds (two ``x`` rows, two ``dy``
    rows; the next image's first when this one ends).  A channel block's pass walks a row a pixel apart, and on
    layers too large to stay in the last-level cache the hardware's prefetchers do not keep up with those strides:
    ``fast.depthwise`` sets it for those (:data:`~sepconv.fast.depthwise.FETCH_AHEAD_MIN_BYTES`)."""
    x, dy, dw, zero_row = borrowed(x), borrowed(dy), borrowed(dw), borrowed(zero_row)
    in_w, c = x.shape[2], x.shape[3]
    out_h, out_w = dy.shape[1], dy.shape[2]
    dw9 = dw.reshape(9, c)
    shift = aligned_shift(x)
    j_lo, j_hi = interior(out_w, in_w, 3, stride_w, dil_w, pad_left)
    pairs = stride_h == 1 and stride_w == 1 and dil_h == 1 and dil_w == 1
    same = stride_w == 1 and dil_w == 1 and pad_left == 1 and in_w == out_w and out_w >= 2
    r = row_begin
    while r < row_end:
        b = r // out_h
        i = r - b * out_h
        ih0 = i * stride_h - pad_top
        x0 = row_or_zeros(x, zero_row, b, ih0)
        x1 = row_or_zeros(x, zero_row, b, ih0 + dil_h)
        x2 = row_or_zeros(x, zero_row, b, ih0 + 2 * dil_h)
        dyr = dy[b, i]
        if same:  # every pixel in the sliding pass, the padding columns as zeros
            if pairs and r + 1 < row_end and i + 1 < out_h:
                nb, ni = b, i + 2  # the next pair: the next image's first past this one's last (this pair's own
                if ni + 1 >= out_h:  # rows past the batch: in cache, nothing fetched)
                    nb, ni = (b + 1, 0) if b + 1 < dy.shape[0] else (b, i)
                x3, xa, xb = (row_or_zeros(x, zero_row, b, ih0 + 3), row_or_zeros(x, zero_row, nb, ni + 1),
                              row_or_zeros(x, zero_row, nb, ni + 2))
                if winograd:
                    _filter_gradient_same_3x3_two_rows_winograd(dw9, x0, x1, x2, x3, dyr, dy[b, i + 1], shift, xa, xb,
                                                                dy[nb, ni], dy[nb, ni + 1], fetch)
                else:
                    _filter_gradient_same_3x3_two_rows(dw9, x0, x1, x2, x3, dyr, dy[b, i + 1], shift, xa, xb,
                                                       dy[nb, ni], dy[nb, ni + 1], fetch)
                r += 2
            else:
                _filter_gradient_same_3x3(dw9, x0, x1, x2, dyr, shift)
                r += 1
            continue
        if pairs and r + 1 < row_end and i + 1 < out_h:  # two rows of the same image
            x3 = row_or_zeros(x, zero_row, b, ih0 + 3)
            dy1 = dy[b, i + 1]
            _filter_gradient_interior_3x3_two_rows(dw9, x0, x1, x2, x3, dyr, dy1, j_lo, j_hi, pad_left, shift)
            _filter_gradient_border(dw9, x, b, ih0 + 1, 1, 3, dy, i + 1, 3, 0, j_lo, 1, 1, pad_left)
            _filter_gradient_border(dw9, x, b, ih0 + 1, 1, 3, dy, i + 1, 3, j_hi, out_w, 1, 1, pad_left)
            r += 1
        elif dil_w == 1:  # the common case, compiled with the dilation known (as the forward)
            _filter_gradient_interior_3x3(dw9, x0, x1, x2, dyr, j_lo, j_hi, stride_w, 1, pad_left, shift)
        else:
            _filter_gradient_interior_3x3(dw9, x0, x1, x2, dyr, j_lo, j_hi, stride_w, dil_w, pad_left, shift)
        _filter_gradient_border(dw9, x, b, ih0, dil_h, 3, dy, i, 3, 0, j_lo, stride_w, dil_w, pad_left)
        _filter_gradient_border(dw9, x, b, ih0, dil_h, 3, dy, i, 3, j_hi, out_w, stride_w, dil_w, pad_left)
        r += 1


@kernel
def depthwise_nhwc_backprop_filter_5x5_rows(x, dy, dw, zero_row, row_begin, row_end, stride_h, stride_w, dil_h,
                                            dil_w, pad_top, pad_left):
    """As :func:`depthwise_nhwc_backprop_filter_3x3_rows`, a 5x5 filter."""
    x, dy, dw, zero_row = borrowed(x), borrowed(dy), borrowed(dw), borrowed(zero_row)
    in_w, c = x.shape[2], x.shape[3]
    out_h, out_w = dy.shape[1], dy.shape[2]
    dw25 = dw.reshape(25, c)
    shift = aligned_shift(x)
    j_lo, j_hi = interior(out_w, in_w, 5, stride_w, dil_w, pad_left)
    for r in range(row_begin, row_end):
        b = r // out_h
        i = r - b * out_h
        ih0 = i * stride_h - pad_top
        x0 = row_or_zeros(x, zero_row, b, ih0)
        x1 = row_or_zeros(x, zero_row, b, ih0 + dil_h)
        x2 = row_or_zeros(x, zero_row, b, ih0 + 2 * dil_h)
        x3 = row_or_zeros(x, zero_row, b, ih0 + 3 * dil_h)
        x4 = row_or_zeros(x, zero_row, b, ih0 + 4 * dil_h)
        dyr = dy[b, i]
        _filter_gradient_interior_5x5(dw25, x0, x1, x2, x3, x4, dyr, j_lo, j_hi, stride_w, dil_w, pad_left, shift)
        _filter_gradient_border(dw25, x, b, ih0, dil_h, 5, dy, i, 5, 0, j_lo, stride_w, dil_w, pad_left)
        _filter_gradient_border(dw25, x, b, ih0, dil_h, 5, dy, i, 5, j_hi, out_w, stride_w, dil_w, pad_left)


@kernel
def depthwise_nhwc_backprop_filter_w7_rows(x, dy, dw, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top,
                                           pad_left):
    """Filter gradient of a filter 7 wide (any height), output rows ``[row_begin, row_end)`` *added* to ``dw``
    ``[kh, 7, C]``: filter row by filter row (:func:`_filter_gradient_interior_row7`), the rows in the padding
    skipped, the pixels whose columns reach into the padding by :func:`_filter_gradient_border`.  (Tap by tap,
    :func:`depthwise_nhwc_backprop_filter_rows` took 136-313 us on 1x28x28x8, ~20 times this.)"""
    x, dy, dw = borrowed(x), borrowed(dy), borrowed(dw)
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = dy.shape[1], dy.shape[2]
    kh = dw.shape[0]
    dw2 = dw.reshape(kh * 7, c)
    shift = aligned_shift(x)
    j_lo, j_hi = interior(out_w, in_w, 7, stride_w, dil_w, pad_left)
    for r in range(row_begin, row_end):
        b = r // out_h
        i = r - b * out_h
        ih0 = i * stride_h - pad_top
        dyr = dy[b, i]
        di_lo, di_hi = tap_range(ih0, dil_h, kh, in_h)
        for di in range(di_lo, di_hi):
            _filter_gradient_interior_row7(dw2, di * 7, x[b, ih0 + di * dil_h], dyr, j_lo, j_hi, stride_w, dil_w,
                                           pad_left, shift)
        _filter_gradient_border(dw2, x, b, ih0, dil_h, kh, dy, i, 7, 0, j_lo, stride_w, dil_w, pad_left)
        _filter_gradient_border(dw2, x, b, ih0, dil_h, kh, dy, i, 7, j_hi, out_w, stride_w, dil_w, pad_left)


@kernel
def depthwise_nhwc_backprop_filter_rows(x, dy, dw, row_begin, row_end, stride_h, stride_w, dil_h, dil_w,
                                        pad_top, pad_left):
    """Filter gradient, any filter size, one tap at a time: output rows ``[row_begin, row_end)`` *added*
    to ``dw`` ``[kh, kw, C]``::

        dw[di, dj, k] += sum_{b, i, j} x[b, i*stride_h + di*dil_h - pad_top, j*stride_w + dj*dil_w - pad_left, k]
                                       * dy[b, i, j, k]
    """
    x, dy, dw = borrowed(x), borrowed(dy), borrowed(dw)
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    kh, kw = dw.shape[0], dw.shape[1]
    out_h, out_w = dy.shape[1], dy.shape[2]
    for r in range(row_begin, row_end):
        b = r // out_h
        i = r - b * out_h
        dyr = dy[b, i]
        ih0 = i * stride_h - pad_top
        di_lo, di_hi = tap_range(ih0, dil_h, kh, in_h)
        for di in range(di_lo, di_hi):
            xr = x[b, ih0 + di * dil_h]
            for dj in range(kw):
                a = dw[di, dj]
                j_lo, j_hi = tap_range(dj * dil_w - pad_left, stride_w, out_w, in_w)
                for j in range(j_lo, j_hi):
                    iw = j * stride_w + dj * dil_w - pad_left
                    for k in range(c):
                        a[k] += xr[iw, k] * dyr[j, k]


@kernel
def depthwise_nhwc_backprop_filter_any_rows(x, dy, dw, zero_row, row_begin, row_end, stride_h, stride_w, dil_h, dil_w,
                                            pad_top, pad_left, fetch=False, winograd=False):
    """The filter gradient's rows kernel for ``dw``'s filter size (3x3, 5x5, 7 wide, or tap by tap), output rows
    ``[row_begin, row_end)`` *added* to ``dw`` ``[kh, kw, C]`` (``fetch``, ``winograd``: the 3x3 kernel's)."""
    kh, kw = dw.shape[0], dw.shape[1]
    if kh == 3 and kw == 3:
        depthwise_nhwc_backprop_filter_3x3_rows(x, dy, dw, zero_row, row_begin, row_end, stride_h, stride_w, dil_h,
                                                dil_w, pad_top, pad_left, fetch, winograd)
    elif kh == 5 and kw == 5:
        depthwise_nhwc_backprop_filter_5x5_rows(x, dy, dw, zero_row, row_begin, row_end, stride_h, stride_w, dil_h,
                                                dil_w, pad_top, pad_left)
    elif kw == 7:
        depthwise_nhwc_backprop_filter_w7_rows(x, dy, dw, row_begin, row_end, stride_h, stride_w, dil_h, dil_w,
                                               pad_top, pad_left)
    else:
        depthwise_nhwc_backprop_filter_rows(x, dy, dw, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top,
                                            pad_left)


@kernel(parallel=True)
def depthwise_nhwc_backprop_filter_parallel(x, dy, partial, zero_row, stride_h, stride_w, dil_h, dil_w, pad_top,
                                            pad_left, fetch=False, winograd=False):
    """Filter gradient: block ``t`` of the output rows is summed into ``partial[t]`` (zeroed by the caller)."""
    n_chunks = partial.shape[0]
    rows = dy.shape[0] * dy.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_backprop_filter_any_rows(x, dy, partial[t], zero_row, t * rows // n_chunks,
                                                (t + 1) * rows // n_chunks, stride_h, stride_w, dil_h, dil_w, pad_top,
                                                pad_left, fetch, winograd)


# --------------------------------------------------------------------------- both gradients in one pass


@kernel
def _band(t, bands_per_image, band_rows, out_h, in_h, stride_h):
    """Band ``t``: its image, its ``dy`` rows ``[i0, i1)`` and the ``dx`` rows ``[y0, y1)`` it owns (those
    from ``i0 * stride_h``; the image's last band owns the rows to the end, so the bands' ``dx`` rows
    partition the image)."""
    b = t // bands_per_image
    i0 = (t - b * bands_per_image) * band_rows
    i1 = min(out_h, i0 + band_rows)
    y0 = min(in_h, i0 * stride_h)
    y1 = in_h if i1 == out_h else min(in_h, i1 * stride_h)
    return b, i0, i1, y0, y1


@kernel(parallel=True)
def depthwise_nhwc_backprop_3x3_parallel(x, w, flipped, dy, dx, partial, dy_zero_row, x_zero_row, band_rows,
                                         stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, fetch=False,
                                         winograd=False, winograd_filter=False):
    """Both gradients of a 3x3 depthwise layer (multiplier 1) at stride 1 (any dilation) or 2 (dilation 1),
    band by band: a band's input-gradient rows, then its filter-gradient rows, which read the same
    ``dy`` rows while they are still in this core's cache (one pass over ``dy`` from memory, not two).

    Thread ``t`` takes a contiguous run of bands (``band_rows`` rows of ``dy`` each, within one image)
    and adds its filter gradient into ``partial[t]`` (zeroed by the caller).  ``flipped`` is ``w``
    rotated by 180 degrees (the stride-1 input gradient is its forward correlation with ``dy``).  ``fetch``: the
    rows kernels prefetch the next rows (see :func:`depthwise_nhwc_backprop_filter_3x3_rows`); ``winograd``,
    ``winograd_filter``: the rows kernels' SAME pairs by Winograd's F(2, 3) (the input gradient's, the filter
    gradient's)."""
    n_threads = partial.shape[0]
    n, out_h = dy.shape[0], dy.shape[1]
    in_h = dx.shape[1]
    bands_per_image = (out_h + band_rows - 1) // band_rows
    bands = n * bands_per_image
    for t in prange(n_threads):
        for band in range(t * bands // n_threads, (t + 1) * bands // n_threads):
            b, i0, i1, y0, y1 = _band(band, bands_per_image, band_rows, out_h, in_h, stride_h)
            if y1 > y0:
                if stride_h == 1:
                    depthwise_nhwc_forward_3x3_rows(dy, flipped, dx, dy_zero_row, b * in_h + y0, b * in_h + y1, 1, 1,
                                                    dil_h, dil_w, 2 * dil_h - pad_top, 2 * dil_w - pad_left, fetch,
                                                    winograd)
                else:
                    depthwise_nhwc_backprop_input_s2_3x3_rows(w, dy, dx, dy_zero_row, b * in_h + y0, b * in_h + y1,
                                                              pad_top, pad_left)
            depthwise_nhwc_backprop_filter_3x3_rows(x, dy, partial[t], x_zero_row, b * out_h + i0, b * out_h + i1,
                                                    stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, fetch,
                                                    winograd_filter)


# --------------------------------------------------------------------------- helpers


@kernel
def all_finite(a):
    """Whether every element of ``a`` is finite (a filter: small; cheaper than NumPy's two passes).

    ``v * 0`` is 0 for a finite ``v`` and NaN for an infinite or NaN one, so the sum is 0 exactly
    when all are finite; a sum without an early exit vectorizes (measured 7.2 -> 1 us on a
    ``[3, 3, 960]`` filter, against an element-by-element ``isfinite`` loop).
    """
    flat = a.ravel()
    total = flat.dtype.type(0)
    for i in range(flat.size):
        total += flat[i] * 0
    return total == 0


@kernel
def sum_partials(partial):
    """``partial [T, ...]`` summed over its first axis: the threads' partial filter gradients, reduced (a fresh
    array; ~0.3 us on ``[2, 3, 3, 32]``, where NumPy's ``sum(axis=0)`` took 1-3 us after a large kernel)."""
    total = partial[0].copy()
    flat = total.ravel()
    for t in range(1, partial.shape[0]):
        part = partial[t].ravel()
        for i in range(flat.size):
            flat[i] += part[i]
    return total


# --------------------------------------------------------------------------- channel multiplier


@kernel(inline=True)
def _chunk_start(size, n_chunks, t):
    """Where block ``t`` of ``n_chunks`` starts in ``size`` elements: a multiple of 16 elements, so
    the vector loops of every block but the last run whole (the last block ends at ``size``)."""
    if t == n_chunks:
        return size
    return min(size, (size * t // n_chunks) // 16 * 16)


@kernel
def repeat_channels_flat(x, out, multiplier, begin, end):
    """``out[M*i + q] = x[i]`` for ``q < M`` and flat indices ``i`` in ``[begin, end)`` of ``x`` (``x`` and ``out``
    1-D, C-contiguous): an NHWC input with each channel repeated ``M`` times, the input of the ``M = 1`` problem.

    Multipliers 2 to 8 store whole vectors of repeated lanes (float64: 3, 5, 6, 7 only; for 2, 4 and 8
    the scalar loop measured faster, 1x56x56x8 M = 8 68 against 90 us); larger ones one vector of
    each value per 16 (or 8) copies.  The per-row loops with strided stores before, float32:
    2x28x28x32 M = 3 110 -> 29 us, 1x56x56x8 M = 8 117 -> 31 us, 1x28x28x200 M = 6 1,666 -> 61 us."""
    i = begin
    step = lanes(x)
    if step == 16 or multiplier % 2 == 1 or multiplier == 6:
        if multiplier == 2:
            while i + step <= end:
                vstore_repeated(out, 2 * i, vload(x, i), 2)
                i += step
        elif multiplier == 3:
            while i + step <= end:
                vstore_repeated(out, 3 * i, vload(x, i), 3)
                i += step
        elif multiplier == 4:
            while i + step <= end:
                vstore_repeated(out, 4 * i, vload(x, i), 4)
                i += step
        elif multiplier == 5:
            while i + step <= end:
                vstore_repeated(out, 5 * i, vload(x, i), 5)
                i += step
        elif multiplier == 6:
            while i + step <= end:
                vstore_repeated(out, 6 * i, vload(x, i), 6)
                i += step
        elif multiplier == 7:
            while i + step <= end:
                vstore_repeated(out, 7 * i, vload(x, i), 7)
                i += step
        elif multiplier == 8:
            while i + step <= end:
                vstore_repeated(out, 8 * i, vload(x, i), 8)
                i += step
    if multiplier > 8:
        for j in range(i, end):
            v = vsplat(x, x[j])
            for q in range(0, multiplier, step):
                vstore_n(out, multiplier * j + q, v, min(step, multiplier - q))
        return
    for j in range(i, end):
        v = x[j]
        for q in range(multiplier):
            out[multiplier * j + q] = v


@kernel(parallel=True)
def repeat_channels_parallel(x, out, multiplier, n_chunks):
    """:func:`repeat_channels_flat` over all of ``x``, in ``n_chunks`` parallel blocks."""
    for t in prange(n_chunks):
        repeat_channels_flat(x, out, multiplier, _chunk_start(x.size, n_chunks, t), _chunk_start(x.size, n_chunks, t + 1))


@kernel
def sum_over_multiplier_flat(dx_repeated, dx, multiplier, begin, end):
    """``dx[i] = sum_q dx_repeated[M*i + q]`` for flat indices ``i`` in ``[begin, end)`` of ``dx`` (both 1-D,
    C-contiguous): the input gradient for multiplier ``M`` from that of the ``M = 1`` problem.

    Multipliers 2 to 8 sum whole vectors (float32 2x28x28x32 M = 3: 221 -> 15 us against the per-row
    loops before; float64 163 -> 28); larger ones (rare) take the scalar loop, which is slow
    (1x28x28x64, M = 12: ~420 us)."""
    i = begin
    step = lanes(dx)
    if multiplier == 2:
        while i + step <= end:
            vstore(dx, i, vload_group_sums(dx_repeated, 2 * i, 2))
            i += step
    elif multiplier == 3:
        while i + step <= end:
            vstore(dx, i, vload_group_sums(dx_repeated, 3 * i, 3))
            i += step
    elif multiplier == 4:
        while i + step <= end:
            vstore(dx, i, vload_group_sums(dx_repeated, 4 * i, 4))
            i += step
    elif multiplier == 5:
        while i + step <= end:
            vstore(dx, i, vload_group_sums(dx_repeated, 5 * i, 5))
            i += step
    elif multiplier == 6:
        while i + step <= end:
            vstore(dx, i, vload_group_sums(dx_repeated, 6 * i, 6))
            i += step
    elif multiplier == 7:
        while i + step <= end:
            vstore(dx, i, vload_group_sums(dx_repeated, 7 * i, 7))
            i += step
    elif multiplier == 8:
        while i + step <= end:
            vstore(dx, i, vload_group_sums(dx_repeated, 8 * i, 8))
            i += step
    for j in range(i, end):
        acc = dx_repeated[multiplier * j]
        for q in range(1, multiplier):
            acc += dx_repeated[multiplier * j + q]
        dx[j] = acc


@kernel(parallel=True)
def sum_over_multiplier_parallel(dx_repeated, dx, multiplier, n_chunks):
    """:func:`sum_over_multiplier_flat` over all of ``dx``, in ``n_chunks`` parallel blocks."""
    for t in prange(n_chunks):
        sum_over_multiplier_flat(dx_repeated, dx, multiplier, _chunk_start(dx.size, n_chunks, t),
                                 _chunk_start(dx.size, n_chunks, t + 1))


