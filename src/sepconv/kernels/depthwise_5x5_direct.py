"""The depthwise forward of a 5x5 filter at horizontal stride 1 (any vertical stride, any dilations and
padding) or 2 (dilation 1), NHWC, read straight from the input: eight output pixels a dilation apart per step,
with their sums in registers, for one channel block (one vector of channels) at a time.  Stride 2 is at the end
(:func:`depthwise_nhwc_forward_5x5_direct_s2_parallel`).

A step loads the twelve input columns its pixels reach in one filter row and adds that row's five taps
to the eight sums (:func:`_taps8`: 12 input and 5 weight loads per 40 multiply-adds), filter row by filter
row.  The packed kernels (:mod:`sepconv.kernels.depthwise_packed`) first copy each channel block of a band
of rows into a buffer so that every load is at a constant offset from one pointer; here the loads are
addressed in the input itself, at a pixel stride ``C`` known only at run time, which cost the earlier
direct kernels a pointer per address, spilled.  Two things avoid that: the filter rows go in a loop that
is not unrolled (the rows share the columns' offsets), and the twelve columns are addressed from four
bases three columns apart made opaque to LLVM (:func:`~sepconv.kernels._simd.opaque`), each column then
one base plus the column gap times 1, 2, 4 or 8, which x86 encodes in the load.  The loads and stores are
masked to the block's channels (a partial block costs what a whole one does), and the filter is first
laid out by channel block (:func:`pack_filter_blocks`, zeros past ``C``), so its taps are at constant
offsets too.

Each row of steps covers the interior (the pixels whose taps are all inside the input), a row's last step
overlapping the one before it (:func:`plan_steps`); the pixels left, at the borders and up to three
left over, go two at a time with masked loads that take no lanes for a column in the padding
(:func:`_step2_clipped`).  A row of at most sixteen pixels may instead go in one or two steps of eight
clipped the same way (:func:`_step8_clipped`; 8x14x14x672 forward 344-360 -> 319-324 us, two threads).
At vertical stride 1 the output rows go in pairs a vertical dilation apart
(:func:`_step8`): their windows share four input rows, each row's twelve columns loaded once for
both (A/B, us, 2 threads: 1x65x65x320 432 -> 379, dilation 2 417 -> 368, 8x56x56x144 1022 -> 930).

Against the packed kernels (one process, 2 threads, alternating, us, packed -> direct): 1x65x65x320 dilation 2
646 -> 505, 8x56x56x144 1530 -> 1009, 8x14x14x672 433 -> 322, 1x112x112x64 246 -> 197; rows of 7 or 14 pixels
at batch 1 lose (1x14x14x480 25 -> 40, most of such a row being border pixels), so ``sepconv.fast.depthwise``
picks this kernel for wide rows, or many rows, of at least four vectors of channels
(``DIRECT_5X5_MIN_WIDTH`` and the settings beside it).

Examples
--------
A 5x5 filter of ones over a 6x6 image of ones, SAME padding (2 on each side), stride 1:

>>> import numpy as np
>>> x, w = np.ones((1, 6, 6, 3), np.float32), np.ones((5, 5, 3), np.float32)
>>> out = np.empty((1, 6, 6, 3), np.float32)
>>> depthwise_nhwc_forward_5x5_direct_parallel(x, w, out, 1, 1, 1, 1, 2, 2)
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
from ._simd import empty_on_line, lanes, opaque, prefetch, vfma, vload, vload_part, vstore, vstore_n, vzeros
from ._window import interior, tap_range
from .depthwise import _channel_block, _channel_blocks, _image_run, _row_phases, aligned_shift


@kernel(inline=True)
def _taps8(s0, s1, s2, s3, s4, s5, s6, s7, i0, i1, i2, i3, i4, i5, i6, i7, i8, i9, i10, i11, wb, t):
    """Adds the five taps ``t .. t + 4`` of ``wb`` to the sums of eight outputs whose inputs are ``i0 .. i11``."""
    count = lanes(wb)
    w0, w1, w2 = vload(wb, t * count), vload(wb, (t + 1) * count), vload(wb, (t + 2) * count)
    w3, w4 = vload(wb, (t + 3) * count), vload(wb, (t + 4) * count)
    s0, s1, s2, s3 = vfma(i0, w0, s0), vfma(i1, w0, s1), vfma(i2, w0, s2), vfma(i3, w0, s3)
    s4, s5, s6, s7 = vfma(i4, w0, s4), vfma(i5, w0, s5), vfma(i6, w0, s6), vfma(i7, w0, s7)
    s0, s1, s2, s3 = vfma(i1, w1, s0), vfma(i2, w1, s1), vfma(i3, w1, s2), vfma(i4, w1, s3)
    s4, s5, s6, s7 = vfma(i5, w1, s4), vfma(i6, w1, s5), vfma(i7, w1, s6), vfma(i8, w1, s7)
    s0, s1, s2, s3 = vfma(i2, w2, s0), vfma(i3, w2, s1), vfma(i4, w2, s2), vfma(i5, w2, s3)
    s4, s5, s6, s7 = vfma(i6, w2, s4), vfma(i7, w2, s5), vfma(i8, w2, s6), vfma(i9, w2, s7)
    s0, s1, s2, s3 = vfma(i3, w3, s0), vfma(i4, w3, s1), vfma(i5, w3, s2), vfma(i6, w3, s3)
    s4, s5, s6, s7 = vfma(i7, w3, s4), vfma(i8, w3, s5), vfma(i9, w3, s6), vfma(i10, w3, s7)
    s0, s1, s2, s3 = vfma(i4, w4, s0), vfma(i5, w4, s1), vfma(i6, w4, s2), vfma(i7, w4, s3)
    s4, s5, s6, s7 = vfma(i8, w4, s4), vfma(i9, w4, s5), vfma(i10, w4, s6), vfma(i11, w4, s7)
    return s0, s1, s2, s3, s4, s5, s6, s7


@kernel(inline=True)
def _stores8(o, qo, gap, n, npix, s0, s1, s2, s3, s4, s5, s6, s7):
    """Stores the first ``npix`` of eight output vectors ``gap`` apart from ``qo``, ``n`` lanes each."""
    vstore_n(o, qo, s0, n)
    if npix > 1:
        vstore_n(o, qo + gap, s1, n)
    if npix > 2:
        vstore_n(o, qo + 2 * gap, s2, n)
    if npix > 3:
        vstore_n(o, qo + 3 * gap, s3, n)
    if npix > 4:
        vstore_n(o, qo + 4 * gap, s4, n)
    if npix > 5:
        vstore_n(o, qo + 5 * gap, s5, n)
    if npix > 6:
        vstore_n(o, qo + 6 * gap, s6, n)
    if npix > 7:
        vstore_n(o, qo + 7 * gap, s7, n)


@kernel(inline=True)
def _rows_of_pair(a_lo, a_hi, b_lo, b_hi):
    """The input rows ``[lo, hi)`` (counted from the first row's window) two output rows a vertical dilation apart
    read: the first's filter rows ``[a_lo, a_hi)`` and the second's ``[b_lo, b_hi)``, one row further down."""
    if a_lo >= a_hi:
        return b_lo + 1, max(b_lo + 1, b_hi + 1)
    if b_lo >= b_hi:
        return a_lo, a_hi
    return min(a_lo, b_lo + 1), max(a_hi, b_hi + 1)


@kernel(inline=True)
def _step8(o, o1, xb, ih0, dil_h, a_lo, a_hi, b_lo, b_hi, pair, wb, wt, k, n, c, j, gap, pad_left):
    """Eight pixels ``j, j + d, ..., j + 7d`` all of whose taps are inside the input, the ``n`` channels of block
    ``k`` (masked loads and stores: as fast as whole ones here, A/B 0.90-1.02), of output row ``o`` from input rows
    ``ih0 + r * dil_h`` (filter rows ``r`` in ``[a_lo, a_hi)``) and, when ``pair``, of ``o1``, the output row a
    vertical dilation further down (filter rows ``r - 1`` in ``[b_lo, b_hi)``), each input row's twelve columns
    loaded once for both.  The filter rows go in a loop (not unrolled, so the rows share the columns' offsets)."""
    row = xb.shape[1] * c
    q = (j - pad_left) * c + k
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = vzeros(o)
    t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = vzeros(o)
    lo, hi = _rows_of_pair(a_lo, a_hi, b_lo, b_hi)
    for r in range(lo, hi):
        a = (ih0 + r * dil_h) * row + q
        a0, a3, a6, a9 = opaque(a), opaque(a + 3 * gap), opaque(a + 6 * gap), opaque(a + 9 * gap)
        i0, i1 = vload_part(xb, a0, n), vload_part(xb, a0 + gap, n)
        i2, i3 = vload_part(xb, a0 + 2 * gap, n), vload_part(xb, a3, n)
        i4, i5 = vload_part(xb, a0 + 4 * gap, n), vload_part(xb, a3 + 2 * gap, n)
        i6, i7 = vload_part(xb, a6, n), vload_part(xb, a3 + 4 * gap, n)
        i8, i9 = vload_part(xb, a0 + 8 * gap, n), vload_part(xb, a9, n)
        i10, i11 = vload_part(xb, a6 + 4 * gap, n), vload_part(xb, a3 + 8 * gap, n)
        if a_lo <= r < a_hi:
            s0, s1, s2, s3, s4, s5, s6, s7 = _taps8(s0, s1, s2, s3, s4, s5, s6, s7, i0, i1, i2, i3, i4, i5, i6, i7,
                                                    i8, i9, i10, i11, wb, wt + 5 * r)
        if b_lo <= r - 1 < b_hi:
            t0, t1, t2, t3, t4, t5, t6, t7 = _taps8(t0, t1, t2, t3, t4, t5, t6, t7, i0, i1, i2, i3, i4, i5, i6, i7,
                                                    i8, i9, i10, i11, wb, wt + 5 * (r - 1))
    _stores8(o, j * c + k, gap, n, 8, s0, s1, s2, s3, s4, s5, s6, s7)
    if pair:
        _stores8(o1, j * c + k, gap, n, 8, t0, t1, t2, t3, t4, t5, t6, t7)


@kernel
def _interior_steps(o, o1, xb, ih0, dil_h, a_lo, a_hi, b_lo, b_hi, pair, wb, shift, plan, dil_w, pad_left):
    """The steps of eight pixels inside the interior (:func:`_step8`), every channel block and phase (``plan``,
    :func:`plan_steps`), of ``o`` and, when ``pair``, ``o1``.  Compiled on its own: inlined in the row loop,
    LLVM gave each of the 12 columns a pointer of its own and spilled them."""
    count = lanes(o)
    c = o.shape[1]
    gap = dil_w * c
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        for p in range(plan.shape[0]):
            j0, steps, last = plan[p, 0], plan[p, 1], plan[p, 2]
            for m in range(steps + (last >= 0)):
                j = j0 + 8 * dil_w * m if m < steps else last
                _step8(o, o1, xb, ih0, dil_h, a_lo, a_hi, b_lo, b_hi, pair, wb, kb * 25, k, n, c, j, gap, pad_left)


# A phase of at most this many pixels whose border pixels would cost more, two at a time, than a second step of
# eight goes in clipped steps of eight (:func:`_step8_clipped`), the second overlapping the first, instead of
# interior steps and clipped pairs: a pair's five-deep chains of multiply-adds run at about half the rate of a
# step's (:func:`plan_steps`).
CLIPPED_STEPS_MAX_PIXELS = 16


@kernel
def plan_steps(out_w, j_lo, j_hi, dil_w):
    """For each phase ``p`` of the horizontal dilation, its interior pixels ``[j_lo, j_hi)`` in steps of eight:
    ``[first pixel, whole steps, the start of one more step overlapping the last (-1: none), the first
    pixel after the steps, clipped steps]``.  Three or fewer pixels left over go two at a time, clipped, as the
    border pixels do; more take the overlapping step.  No interior steps (first pixel = -1) below eight interior
    pixels; a phase of eight pixels or fewer without them is one clipped step of eight, and one of
    :data:`CLIPPED_STEPS_MAX_PIXELS` or fewer two (the second ending at the phase's last pixel) where that is
    cheaper, counting a step's multiply-adds at twice the rate of a pair's."""
    phases = min(dil_w, out_w)
    plan = np.full((phases, 5), -1, np.int64)
    for p in range(phases):
        plan[p, 4] = 0
        total = (out_w - 1 - p) // dil_w + 1
        j0 = p + dil_w * max(0, -(-(j_lo - p) // dil_w))
        pixels = 0 if j0 >= j_hi else (j_hi - 1 - j0) // dil_w + 1
        steps, left = pixels // 8, pixels % 8
        if steps == 0:  # every pixel clipped: one step, or two rather than five pairs or more
            plan[p, 4] = 1 if total <= 8 else 2 if total <= CLIPPED_STEPS_MAX_PIXELS else 0
            continue
        before = (j0 - p) // dil_w
        after = total - before - pixels + (left if left <= 3 else 0)
        pairs_cost = 2 * (steps + (left > 3)) + (before + 1) // 2 + (after + 1) // 2  # a step costs two pairs
        if total <= CLIPPED_STEPS_MAX_PIXELS and pairs_cost > 4:
            plan[p, 4] = 2
            continue
        plan[p, 0], plan[p, 1] = j0, steps
        plan[p, 3] = j0 + 8 * dil_w * steps
        if left > 3:
            plan[p, 2] = j0 + dil_w * (pixels - 8)
            plan[p, 3] = j0 + dil_w * pixels
    return plan


@kernel(inline=True)
def _column(xb, a, m, m_lo, m_hi, n):
    """Input column ``m`` of a step (``n`` lanes from ``a``), or zeros when it lies in the padding (a load
    with no lanes touches no memory)."""
    return vload_part(xb, a, n if m_lo <= m < m_hi else 0)


@kernel(inline=True)
def _taps2(s0, s1, i0, i1, i2, i3, i4, i5, wb, t):
    """Adds the five taps ``t .. t + 4`` of ``wb`` to the sums of two outputs whose inputs are ``i0 .. i5``."""
    count = lanes(wb)
    w0, w1, w2 = vload(wb, t * count), vload(wb, (t + 1) * count), vload(wb, (t + 2) * count)
    w3, w4 = vload(wb, (t + 3) * count), vload(wb, (t + 4) * count)
    s0 = vfma(i4, w4, vfma(i3, w3, vfma(i2, w2, vfma(i1, w1, vfma(i0, w0, s0)))))
    s1 = vfma(i5, w4, vfma(i4, w3, vfma(i3, w2, vfma(i2, w1, vfma(i1, w0, s1)))))
    return s0, s1


@kernel(inline=True)
def _step2_clipped(o, o1, xb, ih0, dil_h, a_lo, a_hi, b_lo, b_hi, wb, wt, k, n, c, j, gap, pad_left, npix, m_lo,
                   m_hi, pair):
    """The first ``npix`` (1 or 2) of the pixels ``j, j + d`` of ``o`` (filter rows ``[a_lo, a_hi)``) and, when
    ``pair``, of ``o1``, the output row a vertical dilation further down (filter rows ``[b_lo, b_hi)``), ``n``
    channels of block ``k``, taps in the padding read as zeros (columns outside ``[m_lo, m_hi)``)."""
    row = xb.shape[1] * c
    q = (j - pad_left) * c + k
    s0 = s1 = t0 = t1 = vzeros(o)
    lo, hi = _rows_of_pair(a_lo, a_hi, b_lo, b_hi)
    for r in range(lo, hi):
        a = (ih0 + r * dil_h) * row + q
        i0, i1 = _column(xb, a, 0, m_lo, m_hi, n), _column(xb, a + gap, 1, m_lo, m_hi, n)
        i2, i3 = _column(xb, a + 2 * gap, 2, m_lo, m_hi, n), _column(xb, a + 3 * gap, 3, m_lo, m_hi, n)
        i4, i5 = _column(xb, a + 4 * gap, 4, m_lo, m_hi, n), _column(xb, a + 5 * gap, 5, m_lo, m_hi, n)
        if a_lo <= r < a_hi:
            s0, s1 = _taps2(s0, s1, i0, i1, i2, i3, i4, i5, wb, wt + 5 * r)
        if b_lo <= r - 1 < b_hi:
            t0, t1 = _taps2(t0, t1, i0, i1, i2, i3, i4, i5, wb, wt + 5 * (r - 1))
    qo = j * c + k
    vstore_n(o, qo, s0, n)
    if npix > 1:
        vstore_n(o, qo + gap, s1, n)
    if pair:
        vstore_n(o1, qo, t0, n)
        if npix > 1:
            vstore_n(o1, qo + gap, t1, n)


@kernel(inline=True)
def _step8_clipped(o, o1, xb, ih0, dil_h, a_lo, a_hi, b_lo, b_hi, wb, wt, k, n, c, j, gap, pad_left, dil_w, npix,
                   pair):
    """As :func:`_step2_clipped`, eight pixels (the first ``npix`` stored): a row phase of eight pixels or fewer,
    none of them in the interior, in one step instead of two at a time."""
    row = xb.shape[1] * c
    q = (j - pad_left) * c + k
    m_lo, m_hi = tap_range(j - pad_left, dil_w, 12, xb.shape[1])
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = vzeros(o)
    t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = vzeros(o)
    lo, hi = _rows_of_pair(a_lo, a_hi, b_lo, b_hi)
    for r in range(lo, hi):
        a = (ih0 + r * dil_h) * row + q
        i0, i1 = _column(xb, a, 0, m_lo, m_hi, n), _column(xb, a + gap, 1, m_lo, m_hi, n)
        i2, i3 = _column(xb, a + 2 * gap, 2, m_lo, m_hi, n), _column(xb, a + 3 * gap, 3, m_lo, m_hi, n)
        i4, i5 = _column(xb, a + 4 * gap, 4, m_lo, m_hi, n), _column(xb, a + 5 * gap, 5, m_lo, m_hi, n)
        i6, i7 = _column(xb, a + 6 * gap, 6, m_lo, m_hi, n), _column(xb, a + 7 * gap, 7, m_lo, m_hi, n)
        i8, i9 = _column(xb, a + 8 * gap, 8, m_lo, m_hi, n), _column(xb, a + 9 * gap, 9, m_lo, m_hi, n)
        i10, i11 = _column(xb, a + 10 * gap, 10, m_lo, m_hi, n), _column(xb, a + 11 * gap, 11, m_lo, m_hi, n)
        if a_lo <= r < a_hi:
            s0, s1, s2, s3, s4, s5, s6, s7 = _taps8(s0, s1, s2, s3, s4, s5, s6, s7, i0, i1, i2, i3, i4, i5, i6, i7,
                                                    i8, i9, i10, i11, wb, wt + 5 * r)
        if b_lo <= r - 1 < b_hi:
            t0, t1, t2, t3, t4, t5, t6, t7 = _taps8(t0, t1, t2, t3, t4, t5, t6, t7, i0, i1, i2, i3, i4, i5, i6, i7,
                                                    i8, i9, i10, i11, wb, wt + 5 * (r - 1))
    _stores8(o, j * c + k, gap, n, npix, s0, s1, s2, s3, s4, s5, s6, s7)
    if pair:
        _stores8(o1, j * c + k, gap, n, npix, t0, t1, t2, t3, t4, t5, t6, t7)


@kernel
def _border_steps(o, o1, xb, ih0, dil_h, a_lo, a_hi, b_lo, b_hi, pair, wb, shift, plan, dil_w, pad_left):
    """Block by block, the pixels of ``o`` the interior steps leave (``plan``, :func:`plan_steps`), two at a
    time, clipped (a phase of eight pixels or fewer without interior steps in one step of eight); and those of
    ``o1`` when ``pair`` (the output row a vertical dilation further down, filter
    rows ``[b_lo, b_hi)``), each input row's columns loaded once for both."""
    count = lanes(o)
    out_w, c = o.shape[0], o.shape[1]
    gap = dil_w * c
    blocks = _channel_blocks(c, shift, count)
    for p in range(plan.shape[0]):
        pixels = (out_w - 1 - p) // dil_w + 1
        if plan[p, 4] > 0:  # a short phase: one or two clipped steps, the second ending at its last pixel
            for kb in range(blocks):
                k, n = _channel_block(kb, c, shift, count)
                _step8_clipped(o, o1, xb, ih0, dil_h, a_lo, a_hi, b_lo, b_hi, wb, kb * 25, k, n, c, p, gap, pad_left,
                               dil_w, min(pixels, 8), pair)
                if plan[p, 4] > 1:
                    _step8_clipped(o, o1, xb, ih0, dil_h, a_lo, a_hi, b_lo, b_hi, wb, kb * 25, k, n, c,
                                   p + (pixels - 8) * dil_w, gap, pad_left, dil_w, 8, pair)
            continue
        j = p
        while j < out_w:
            if j == plan[p, 0]:  # the interior steps' pixels
                j = plan[p, 3]
                continue
            npix = 2 if j + dil_w < out_w and j + dil_w != plan[p, 0] else 1
            m_lo, m_hi = tap_range(j - pad_left, dil_w, 6, xb.shape[1])
            for kb in range(blocks):
                k, n = _channel_block(kb, c, shift, count)
                _step2_clipped(o, o1, xb, ih0, dil_h, a_lo, a_hi, b_lo, b_hi, wb, kb * 25, k, n, c, j, gap, pad_left,
                               npix, m_lo, m_hi, pair)
            j += npix * dil_w


# Pixels of at most this many vectors keep whole channel blocks, unaligned when the input is (split loads), rather
# than blocks from the input's first aligned channel (one block more per pixel: C = 64 float32 at 16 bytes past a
# line, blocks of 12, 16, 16, 16 and 4 channels instead of four of 16).  The other kernels keep whole blocks up to
# two vectors only (:data:`sepconv.kernels.depthwise.SPLIT_LOADS_MAX_VECTORS`: their 48- and 64-channel layers ran
# faster shifted); measurements in ``sepconv.fast.depthwise._direct_5x5_whole_blocks``.
SPLIT_LOADS_MAX_VECTORS = 4


@kernel
def block_shift(x):
    """The first channel block's width when the blocks start at ``x``'s first aligned channel
    (:func:`~sepconv.kernels.depthwise.aligned_shift`), or 0: whole blocks from channel 0, for pixels of at most
    :data:`SPLIT_LOADS_MAX_VECTORS` vectors."""
    if x.shape[-1] <= SPLIT_LOADS_MAX_VECTORS * lanes(x):
        return 0
    return aligned_shift(x)


@kernel
def pack_filter_blocks(w_taps, shift, wb):
    """``wb[kb, t]`` = the channel block ``kb`` of tap ``t`` of ``w_taps`` ``[taps, C]`` (the blocks of
    :func:`~sepconv.kernels.depthwise.aligned_shift` ``shift``), zeros past ``C``."""
    taps, c = w_taps.shape
    count = lanes(wb)
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        for t in range(taps):
            vstore(wb, (kb * taps + t) * count, vload_part(w_taps, t * c + k, n))


@kernel
def filter_blocks(x, w, taps):
    """The filter ``w`` ``[kh, kw, C]`` (``taps = kh * kw``) laid out by the channel blocks the kernels read ``x``
    in (:func:`block_shift`, :func:`pack_filter_blocks`), in a new buffer on a cache line."""
    c = x.shape[3]
    shift = block_shift(x)
    count = lanes(x)
    wb = empty_on_line(_channel_blocks(c, shift, count) * taps * count, x)
    pack_filter_blocks(w.reshape(taps, c), shift, wb)
    return wb


@kernel
def depthwise_nhwc_forward_5x5_direct_rows(x, wb, out, row_begin, row_end, stride_h, dil_h, dil_w, pad_top, pad_left):
    """Output rows ``[row_begin, row_end)`` (flat over the batch) of ``out`` ``[N, out_h, out_w, C]``, from ``x``
    ``[N, in_h, in_w, C]`` and the filter laid out by :func:`pack_filter_blocks` ``wb``; horizontal stride 1."""
    x, wb, out = borrowed(x), borrowed(wb), borrowed(out)
    in_h, in_w = x.shape[1], x.shape[2]
    out_h, out_w = out.shape[1], out.shape[2]
    shift = block_shift(x)
    j_lo, j_hi = interior(out_w, in_w, 5, 1, dil_w, pad_left)
    plan = plan_steps(out_w, j_lo, j_hi, dil_w)
    r = row_begin
    while r < row_end:
        b, i_begin, i_end, r = _image_run(r, row_end, out_h)
        xb = x[b]
        phases, step = _row_phases(i_begin, i_end, stride_h, dil_h)
        for phase in range(phases):
            i = i_begin + phase
            while i < i_end:
                ih0 = i * stride_h - pad_top
                a_lo, a_hi = tap_range(ih0, dil_h, 5, in_h)
                pair = stride_h == 1 and i + dil_h < i_end  # else one row: no second row's filter rows
                b_lo, b_hi = tap_range(ih0 + dil_h, dil_h, 5, in_h) if pair else (0, 0)
                o1 = out[b, i + dil_h] if pair else out[b, i]
                _interior_steps(out[b, i], o1, xb, ih0, dil_h, a_lo, a_hi, b_lo, b_hi, pair, wb, shift, plan, dil_w,
                                pad_left)
                _border_steps(out[b, i], o1, xb, ih0, dil_h, a_lo, a_hi, b_lo, b_hi, pair, wb, shift, plan, dil_w,
                              pad_left)
                i += 2 * step if pair else step


@kernel(parallel=True)
def depthwise_nhwc_forward_5x5_direct_parallel(x, w, out, n_chunks, stride_h, dil_h, dil_w, pad_top, pad_left):
    """The forward of ``x`` with ``w`` ``[5, 5, C]`` into ``out``, horizontal stride 1: the filter laid out once,
    then all output rows in ``n_chunks`` parallel blocks (:func:`depthwise_nhwc_forward_5x5_direct_rows`)."""
    wb = filter_blocks(x, w, 25)
    rows = out.shape[0] * out.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_forward_5x5_direct_rows(x, wb, out, t * rows // n_chunks, (t + 1) * rows // n_chunks,
                                               stride_h, dil_h, dil_w, pad_top, pad_left)


# Horizontal stride 2 (dilation 1).  Output pixel ``p`` of a step reads input columns ``2p .. 2p + 4``: the even
# columns ``2m`` (taps 0, 2, 4) and the odd ones ``2m + 1`` (taps 1, 3), each set a gap of ``2C`` apart, so a step of
# eight pixels loads ten even and nine odd columns per filter row (19 loads per 40 multiply-adds), addressed as the
# dilation-2 columns above: from opaque bases three columns apart.


@kernel(inline=True)
def _taps8_s2(s0, s1, s2, s3, s4, s5, s6, s7, e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, d0, d1, d2, d3, d4, d5, d6, d7,
              d8, wb, t):
    """Adds the five taps ``t .. t + 4`` of ``wb`` to the sums of eight outputs at stride 2: output ``p`` reads the
    even columns ``e_p, e_p+1, e_p+2`` (taps 0, 2, 4) and the odd ones ``d_p, d_p+1`` (taps 1, 3)."""
    count = lanes(wb)
    w0, w1, w2 = vload(wb, t * count), vload(wb, (t + 1) * count), vload(wb, (t + 2) * count)
    w3, w4 = vload(wb, (t + 3) * count), vload(wb, (t + 4) * count)
    s0, s1, s2, s3 = vfma(e0, w0, s0), vfma(e1, w0, s1), vfma(e2, w0, s2), vfma(e3, w0, s3)
    s4, s5, s6, s7 = vfma(e4, w0, s4), vfma(e5, w0, s5), vfma(e6, w0, s6), vfma(e7, w0, s7)
    s0, s1, s2, s3 = vfma(d0, w1, s0), vfma(d1, w1, s1), vfma(d2, w1, s2), vfma(d3, w1, s3)
    s4, s5, s6, s7 = vfma(d4, w1, s4), vfma(d5, w1, s5), vfma(d6, w1, s6), vfma(d7, w1, s7)
    s0, s1, s2, s3 = vfma(e1, w2, s0), vfma(e2, w2, s1), vfma(e3, w2, s2), vfma(e4, w2, s3)
    s4, s5, s6, s7 = vfma(e5, w2, s4), vfma(e6, w2, s5), vfma(e7, w2, s6), vfma(e8, w2, s7)
    s0, s1, s2, s3 = vfma(d1, w3, s0), vfma(d2, w3, s1), vfma(d3, w3, s2), vfma(d4, w3, s3)
    s4, s5, s6, s7 = vfma(d5, w3, s4), vfma(d6, w3, s5), vfma(d7, w3, s6), vfma(d8, w3, s7)
    s0, s1, s2, s3 = vfma(e2, w4, s0), vfma(e3, w4, s1), vfma(e4, w4, s2), vfma(e5, w4, s3)
    s4, s5, s6, s7 = vfma(e6, w4, s4), vfma(e7, w4, s5), vfma(e8, w4, s6), vfma(e9, w4, s7)
    return s0, s1, s2, s3, s4, s5, s6, s7


@kernel(inline=True)
def _step8_s2(o, xb, ih0, dil_h, a_lo, a_hi, wb, wt, k, n, c, j, pad_left):
    """Eight pixels ``j .. j + 7`` of output row ``o`` at horizontal stride 2, all of whose taps are inside the
    input, the ``n`` channels of block ``k``, from input rows ``ih0 + r * dil_h`` (filter rows ``r`` in
    ``[a_lo, a_hi)``)."""
    row = xb.shape[1] * c
    gap = 2 * c
    q = (2 * j - pad_left) * c + k
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = vzeros(o)
    for r in range(a_lo, a_hi):
        a = (ih0 + r * dil_h) * row + q
        a0, a3, a6, a9 = opaque(a), opaque(a + 3 * gap), opaque(a + 6 * gap), opaque(a + 9 * gap)
        e0, e1 = vload_part(xb, a0, n), vload_part(xb, a0 + gap, n)
        e2, e3 = vload_part(xb, a0 + 2 * gap, n), vload_part(xb, a3, n)
        e4, e5 = vload_part(xb, a0 + 4 * gap, n), vload_part(xb, a3 + 2 * gap, n)
        e6, e7 = vload_part(xb, a6, n), vload_part(xb, a3 + 4 * gap, n)
        e8, e9 = vload_part(xb, a0 + 8 * gap, n), vload_part(xb, a9, n)
        b0, b3, b6 = opaque(a + c), opaque(a + c + 3 * gap), opaque(a + c + 6 * gap)
        d0, d1 = vload_part(xb, b0, n), vload_part(xb, b0 + gap, n)
        d2, d3 = vload_part(xb, b0 + 2 * gap, n), vload_part(xb, b3, n)
        d4, d5 = vload_part(xb, b0 + 4 * gap, n), vload_part(xb, b3 + 2 * gap, n)
        d6, d7 = vload_part(xb, b6, n), vload_part(xb, b3 + 4 * gap, n)
        d8 = vload_part(xb, b0 + 8 * gap, n)
        s0, s1, s2, s3, s4, s5, s6, s7 = _taps8_s2(s0, s1, s2, s3, s4, s5, s6, s7, e0, e1, e2, e3, e4, e5, e6, e7,
                                                   e8, e9, d0, d1, d2, d3, d4, d5, d6, d7, d8, wb, wt + 5 * r)
    _stores8(o, j * c + k, c, n, 8, s0, s1, s2, s3, s4, s5, s6, s7)


@kernel(inline=True)
def _pixel_s2_clipped(o, xb, ih0, dil_h, a_lo, a_hi, wb, wt, k, n, c, j, pad_left):
    """Output pixel ``j`` of row ``o`` at horizontal stride 2, taps in the padding read as zeros."""
    count = lanes(wb)
    row = xb.shape[1] * c
    m_lo, m_hi = tap_range(2 * j - pad_left, 1, 5, xb.shape[1])
    q = (2 * j - pad_left) * c + k
    s = vzeros(o)
    for r in range(a_lo, a_hi):
        a = (ih0 + r * dil_h) * row + q
        for m in range(m_lo, m_hi):
            s = vfma(vload_part(xb, a + m * c, n), vload(wb, (wt + 5 * r + m) * count), s)
    vstore_n(o, j * c + k, s, n)


@kernel
def _row_s2(o, xb, ih0, dil_h, a_lo, a_hi, wb, shift, j_lo, j_hi, pad_left, ahead_x, ahead_begin, ahead_end, ahead_o,
            fetch):
    """Output row ``o`` at horizontal stride 2, every channel block: its interior pixels ``[j_lo, j_hi)`` in steps
    of eight (the last overlapping the one before it), the others one by one, clipped.  Compiled on its own, as
    :func:`_interior_steps` is.  With ``fetch``, the flat range ``[ahead_begin, ahead_end)`` of ``ahead_x`` (the
    input rows the next output row adds) and the row ``ahead_o`` (the next output row) are prefetched into L2, a few
    lines before each step (as :func:`sepconv.kernels.depthwise.depthwise_nhwc_backprop_filter_3x3_rows`)."""
    count = lanes(o)
    out_w, c = o.shape[0], o.shape[1]
    steps = (j_hi - j_lo) // 8
    first, rest = (j_lo, j_lo + 8 * steps) if steps > 0 else (0, 0)  # no steps: every pixel clipped
    blocks = _channel_blocks(c, shift, count)
    all_steps = max(1, blocks * steps)
    x_lines = -(-(ahead_end - ahead_begin) // (count * all_steps))  # lines a step, input and output
    o_lines = -(-ahead_o.size // (count * all_steps))
    x_at, o_at = ahead_begin, 0
    for kb in range(blocks):
        k, n = _channel_block(kb, c, shift, count)
        wt = kb * 25
        for m in range(steps):
            if fetch:
                for _ in range(x_lines):
                    prefetch(ahead_x, x_at)
                    x_at += count
                for _ in range(o_lines):
                    prefetch(ahead_o, o_at)
                    o_at += count
            _step8_s2(o, xb, ih0, dil_h, a_lo, a_hi, wb, wt, k, n, c, j_lo + 8 * m, pad_left)
        end = rest
        if steps > 0 and rest < j_hi:
            _step8_s2(o, xb, ih0, dil_h, a_lo, a_hi, wb, wt, k, n, c, j_hi - 8, pad_left)
            end = j_hi
        for j in range(0, first):
            _pixel_s2_clipped(o, xb, ih0, dil_h, a_lo, a_hi, wb, wt, k, n, c, j, pad_left)
        for j in range(end, out_w):
            _pixel_s2_clipped(o, xb, ih0, dil_h, a_lo, a_hi, wb, wt, k, n, c, j, pad_left)


@kernel
def depthwise_nhwc_forward_5x5_direct_s2_rows(x, wb, out, row_begin, row_end, stride_h, dil_h, pad_top, pad_left,
                                              fetch=False):
    """As :func:`depthwise_nhwc_forward_5x5_direct_rows`, horizontal stride 2 (dilation 1), row by row; ``fetch``:
    prefetch the input rows and the output row of the next output row while computing one (:func:`_row_s2`)."""
    x, wb, out = borrowed(x), borrowed(wb), borrowed(out)
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    shift = block_shift(x)
    j_lo, j_hi = interior(out_w, in_w, 5, 2, 1, pad_left)
    row = in_w * c
    for r in range(row_begin, row_end):
        b = r // out_h
        i = r - b * out_h
        ih0 = i * stride_h - pad_top
        a_lo, a_hi = tap_range(ih0, dil_h, 5, in_h)
        # the next output row's new input rows (those past this row's last tap), within the image
        new_begin = min(max(ih0 + 4 * dil_h + 1, 0), in_h)
        new_end = min(max(ih0 + 4 * dil_h + 1 + stride_h, 0), in_h)
        _row_s2(out[b, i], x[b], ih0, dil_h, a_lo, a_hi, wb, shift, j_lo, j_hi, pad_left, x[b], new_begin * row,
                new_end * row, out[b, min(i + 1, out_h - 1)], fetch)


@kernel(parallel=True)
def depthwise_nhwc_forward_5x5_direct_s2_parallel(x, w, out, n_chunks, stride_h, dil_h, pad_top, pad_left,
                                                  fetch=False):
    """The forward of ``x`` with ``w`` ``[5, 5, C]`` into ``out`` at horizontal stride 2: the filter laid out once,
    then all output rows in ``n_chunks`` parallel blocks (:func:`depthwise_nhwc_forward_5x5_direct_s2_rows`)."""
    wb = filter_blocks(x, w, 25)
    rows = out.shape[0] * out.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_forward_5x5_direct_s2_rows(x, wb, out, t * rows // n_chunks, (t + 1) * rows // n_chunks,
                                                  stride_h, dil_h, pad_top, pad_left, fetch)
