"""The depthwise forward of a 3x3 filter at horizontal stride 1 (any vertical stride, dilations and padding), NHWC,
read straight from the input, for CPUs of sixteen vector registers (AVX2): four output pixels per step, with
their sums in registers, one channel block (one 64-byte vector: two AVX2 registers) at a time.

Per filter row a step loads the six input columns its pixels reach (:func:`_row_taps`) and the row's three weights,
and adds twelve multiply-adds to its four sums: eight registers of sums, six of weights and two for the column
loaded, the sixteen an AVX2 core has. At a horizontal dilation the columns are those of each pixel's taps
(:func:`_row_taps_dilated`, twelve loads). The columns are addressed from two bases three columns apart made opaque
to LLVM (:func:`~sepconv.kernels._simd.opaque`), so that each is one base plus the pixel gap times 1 or 2, which x86
encodes in the load (as :mod:`sepconv.kernels.depthwise_5x5_direct` does for eight pixels, whose sums alone take all
sixteen AVX2 registers).

A row's steps cover its interior (the pixels whose taps are all inside the input), the last step overlapping the
one before it; the border pixels (and rows narrower than a step) go one at a time with the taps inside the input
only (:func:`_pixel`); filter rows outside the input are skipped. Channel blocks are whole vectors: a last partial
block overlaps the one before it (:func:`~sepconv.kernels.depthwise_small_image.block_start`), so the input needs
a vector of channels. :mod:`sepconv.fast.depthwise` sends it the stride-1 3x3 layers of large planes on CPUs
without AVX-512, where the small-image kernel's copy into planes cost a third of its time
(:mod:`sepconv.fast.registers`).

Examples
--------
A 3x3 filter of ones over a 4x6 image of ones, SAME padding, stride 1: each output counts its taps inside the image.

>>> import numpy as np
>>> x, w = np.ones((1, 4, 6, 16), np.float32), np.ones((3, 3, 16), np.float32)
>>> out = np.empty((1, 4, 6, 16), np.float32)
>>> depthwise_nhwc_forward_3x3_direct_parallel(x, w, out, 1, 1, 1, 1, 1, 1)  # 1 chunk, stride 1, dilation 1, pads
>>> out[0, :, :, 0]
array([[4., 6., 6., 6., 6., 4.],
       [6., 9., 9., 9., 9., 6.],
       [6., 9., 9., 9., 9., 6.],
       [4., 6., 6., 6., 6., 4.]], dtype=float32)
"""

from __future__ import annotations

from numba import prange

from ._jit import kernel
from ._simd import empty_on_line, lanes, opaque, vfma, vload, vstore, vzeros
from ._window import interior, tap_range
from .depthwise_small_image import _pack_filters, block_start

# Output pixels per step: their sums, a filter row's three weights and one input column fill an AVX2 core's
# sixteen registers.
STEP_PIXELS = 4


@kernel(inline=True)
def _row_taps(s0, s1, s2, s3, x, a, gap, wb, wt):
    """Adds one filter row (weights ``wt .. wt + 2`` vectors of ``wb``) to the sums of four pixels ``gap`` apart
    whose first tap reads ``x`` from ``a``, dilation 1: the six columns loaded once each."""
    count = lanes(wb)
    w0, w1, w2 = vload(wb, wt), vload(wb, wt + count), vload(wb, wt + 2 * count)
    a0, a3 = opaque(a), opaque(a + 3 * gap)
    i = vload(x, a0)
    s0 = vfma(i, w0, s0)
    i = vload(x, a0 + gap)
    s0, s1 = vfma(i, w1, s0), vfma(i, w0, s1)
    i = vload(x, a0 + 2 * gap)
    s0, s1, s2 = vfma(i, w2, s0), vfma(i, w1, s1), vfma(i, w0, s2)
    i = vload(x, a3)
    s1, s2, s3 = vfma(i, w2, s1), vfma(i, w1, s2), vfma(i, w0, s3)
    i = vload(x, a3 + gap)
    s2, s3 = vfma(i, w2, s2), vfma(i, w1, s3)
    i = vload(x, a3 + 2 * gap)
    s3 = vfma(i, w2, s3)
    return s0, s1, s2, s3


@kernel(inline=True)
def _row_taps_dilated(s0, s1, s2, s3, x, a, gap, tap_gap, wb, wt):
    """:func:`_row_taps` at a horizontal dilation: tap ``t`` of pixel ``p`` reads ``a + p * gap + t * tap_gap``."""
    count = lanes(wb)
    for t in range(3):
        wv = vload(wb, wt + t * count)
        b0, b2 = opaque(a + t * tap_gap), opaque(a + t * tap_gap + 2 * gap)
        s0, s1 = vfma(vload(x, b0), wv, s0), vfma(vload(x, b0 + gap), wv, s1)
        s2, s3 = vfma(vload(x, b2), wv, s2), vfma(vload(x, b2 + gap), wv, s3)
    return s0, s1, s2, s3


@kernel
def _steps(x, wb, out, o_row, x_row, row_gap, r_lo, r_hi, k, j_lo, j_hi, dil_w, pad_left):
    """The interior pixels ``[j_lo, j_hi)`` (at least :data:`STEP_PIXELS`) of one output row, channel block from
    ``k``: output pixel ``j`` at ``out`` flat index ``o_row + j * C + k``; its filter row ``r`` reads ``x`` from
    ``x_row + r * row_gap + (j - pad_left) * C + k``, for ``r`` in ``[r_lo, r_hi)``."""
    c = out.shape[3]
    count = lanes(x)
    j0 = j_lo
    while j0 < j_hi:
        j = min(j0, j_hi - STEP_PIXELS)  # the last step overlaps the one before it
        s0 = s1 = s2 = s3 = vzeros(x)
        a = x_row + (j - pad_left) * c + k
        for r in range(r_lo, r_hi):
            if dil_w == 1:
                s0, s1, s2, s3 = _row_taps(s0, s1, s2, s3, x, a + r * row_gap, c, wb, 3 * r * count)
            else:
                s0, s1, s2, s3 = _row_taps_dilated(s0, s1, s2, s3, x, a + r * row_gap, c, dil_w * c, wb, 3 * r * count)
        o = o_row + j * c + k
        vstore(out, o, s0)
        vstore(out, o + c, s1)
        vstore(out, o + 2 * c, s2)
        vstore(out, o + 3 * c, s3)
        j0 += STEP_PIXELS


@kernel
def _pixel(x, wb, out, o, x_row, row_gap, r_lo, r_hi, iw0, in_w, dil_w, k):
    """One output pixel at flat index ``o`` of ``out``, channel block from ``k``: filter rows ``[r_lo, r_hi)`` from
    ``x_row`` (``row_gap`` apart), the taps of its window (from input column ``iw0``) inside the input only."""
    c = out.shape[3]
    count = lanes(x)
    t_lo, t_hi = tap_range(iw0, dil_w, 3, in_w)
    acc = vzeros(x)
    for r in range(r_lo, r_hi):
        for t in range(t_lo, t_hi):
            acc = vfma(vload(x, x_row + r * row_gap + (iw0 + t * dil_w) * c + k), vload(wb, (3 * r + t) * count), acc)
    vstore(out, o, acc)


@kernel
def _output_rows(x, wbs, out, row_begin, row_end, stride_h, dil_h, dil_w, pad_top, pad_left):
    """Output rows ``[row_begin, row_end)`` (counted over the batch) of every channel block, the filters laid out by
    block in ``wbs`` (``[blocks, 9, lanes]``)."""
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    count = lanes(x)
    blocks = (c + count - 1) // count
    j_lo, j_hi = interior(out_w, in_w, 3, 1, dil_w, pad_left)
    if j_hi - j_lo < STEP_PIXELS:
        j_lo = j_hi = 0  # every pixel one at a time
    for row in range(row_begin, row_end):
        b, i = row // out_h, row % out_h
        ih0 = i * stride_h - pad_top
        r_lo, r_hi = tap_range(ih0, dil_h, 3, in_h)
        o_row = row * out_w * c
        x_row = (b * in_h + ih0) * in_w * c  # may be negative: filter rows r_lo and on are inside the input
        row_gap = dil_h * in_w * c
        for g in range(blocks):
            k = block_start(g * count, 0, c, count)
            wb = wbs[g * 9 * count:(g + 1) * 9 * count]
            for j in range(j_lo):
                _pixel(x, wb, out, o_row + j * c + k, x_row, row_gap, r_lo, r_hi, j - pad_left, in_w, dil_w, k)
            if j_hi > j_lo:
                _steps(x, wb, out, o_row, x_row, row_gap, r_lo, r_hi, k, j_lo, j_hi, dil_w, pad_left)
            for j in range(j_hi, out_w):
                _pixel(x, wb, out, o_row + j * c + k, x_row, row_gap, r_lo, r_hi, j - pad_left, in_w, dil_w, k)


@kernel
def depthwise_nhwc_forward_3x3_direct_rows(x, w, out, row_begin, row_end, stride_h, dil_h, dil_w, pad_top, pad_left):
    """Output rows ``[row_begin, row_end)`` (over the batch) of the forward of ``x`` ``[N, in_h, in_w, C]`` (``C`` at
    least a vector) with ``w`` ``[3, 3, C]`` into ``out`` ``[N, out_h, out_w, C]``, horizontal stride 1."""
    c = x.shape[3]
    count = lanes(x)
    blocks = (c + count - 1) // count
    wbs = empty_on_line(blocks * 9 * count, x)
    for g in range(blocks):
        _pack_filters(w, block_start(g * count, 0, c, count), 1, wbs[g * 9 * count:(g + 1) * 9 * count])
    # constants, for LLVM to fold into the steps
    if stride_h == dil_h == dil_w == 1:
        _output_rows(x, wbs, out, row_begin, row_end, 1, 1, 1, pad_top, pad_left)
    else:
        _output_rows(x, wbs, out, row_begin, row_end, stride_h, dil_h, dil_w, pad_top, pad_left)


@kernel(parallel=True)
def depthwise_nhwc_forward_3x3_direct_parallel(x, w, out, n_chunks, stride_h, dil_h, dil_w, pad_top, pad_left):
    """:func:`depthwise_nhwc_forward_3x3_direct_rows` over all output rows, in ``n_chunks`` parallel runs."""
    rows = out.shape[0] * out.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_forward_3x3_direct_rows(x, w, out, t * rows // n_chunks, (t + 1) * rows // n_chunks, stride_h,
                                               dil_h, dil_w, pad_top, pad_left)
