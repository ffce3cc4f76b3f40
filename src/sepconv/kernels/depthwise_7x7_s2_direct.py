"""The depthwise forward of a 7x7 filter at horizontal stride 2 (dilation 1; any vertical stride and padding),
NHWC, read straight from the input, as the 5x5 kernel's stride-2 routine
(:func:`sepconv.kernels.depthwise_5x5_direct.depthwise_nhwc_forward_5x5_direct_s2_parallel`) does: eight output
pixels per step, their sums in registers, one channel block at a time.

Output pixel ``p`` of a step reads input columns ``2p .. 2p + 6``: the even columns ``2m`` (taps 0, 2, 4, 6) and
the odd ones ``2m + 1`` (taps 1, 3, 5), each set a gap of ``2C`` apart, so a step loads eleven even and ten odd
columns per filter row (21 loads per 56 multiply-adds), addressed from opaque bases three columns apart
(:func:`~sepconv.kernels._simd.opaque`: a column is then one base plus the gap times 1, 2, 4 or 8, which x86
encodes in the load).  The filter is laid out by channel block once
(:func:`~sepconv.kernels.depthwise_5x5_direct.filter_blocks`).  The pixels whose taps are all inside the
input go in steps of eight (the last overlapping the one before it); the others one by one, clipped.  The packed
kernels (:mod:`sepconv.kernels.depthwise_packed`) copy each channel block of a band first; at stride 2 that copy
is most of their time (one thread, 1x56x56x480: the copy 400 us of 630).

Examples
--------
A 7x7 filter of ones over an 8x8 image of ones, SAME padding (2 before, 3 after), stride 2:

>>> import numpy as np
>>> x, w = np.ones((1, 8, 8, 3), np.float32), np.ones((7, 7, 3), np.float32)
>>> out = np.empty((1, 4, 4, 3), np.float32)
>>> depthwise_nhwc_forward_7x7_s2_direct_parallel(x, w, out, 1, 2, 2, 2)
>>> out[0, :, :, 0]
array([[25., 35., 30., 20.],
       [35., 49., 42., 28.],
       [30., 42., 36., 24.],
       [20., 28., 24., 16.]], dtype=float32)
"""

from __future__ import annotations

from numba import prange

from ._borrowed import borrowed
from ._jit import kernel
from ._simd import lanes, opaque, vfma, vload, vload_part, vstore_n, vzeros
from ._window import interior, tap_range
from .depthwise import _channel_block, _channel_blocks
from .depthwise_5x5_direct import _stores8, block_shift, filter_blocks


@kernel(inline=True)
def _taps8(sums, even, odd, wb, t):
    """Adds the seven taps ``t .. t + 6`` of ``wb`` to the eight ``sums``: output ``p`` reads the even columns
    ``even[p] .. even[p + 3]`` (taps 0, 2, 4, 6) and the odd ones ``odd[p] .. odd[p + 2]`` (taps 1, 3, 5)."""
    count = lanes(wb)
    s0, s1, s2, s3, s4, s5, s6, s7 = sums
    e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10 = even
    d0, d1, d2, d3, d4, d5, d6, d7, d8, d9 = odd
    w = vload(wb, t * count)
    s0, s1, s2, s3 = vfma(e0, w, s0), vfma(e1, w, s1), vfma(e2, w, s2), vfma(e3, w, s3)
    s4, s5, s6, s7 = vfma(e4, w, s4), vfma(e5, w, s5), vfma(e6, w, s6), vfma(e7, w, s7)
    w = vload(wb, (t + 1) * count)
    s0, s1, s2, s3 = vfma(d0, w, s0), vfma(d1, w, s1), vfma(d2, w, s2), vfma(d3, w, s3)
    s4, s5, s6, s7 = vfma(d4, w, s4), vfma(d5, w, s5), vfma(d6, w, s6), vfma(d7, w, s7)
    w = vload(wb, (t + 2) * count)
    s0, s1, s2, s3 = vfma(e1, w, s0), vfma(e2, w, s1), vfma(e3, w, s2), vfma(e4, w, s3)
    s4, s5, s6, s7 = vfma(e5, w, s4), vfma(e6, w, s5), vfma(e7, w, s6), vfma(e8, w, s7)
    w = vload(wb, (t + 3) * count)
    s0, s1, s2, s3 = vfma(d1, w, s0), vfma(d2, w, s1), vfma(d3, w, s2), vfma(d4, w, s3)
    s4, s5, s6, s7 = vfma(d5, w, s4), vfma(d6, w, s5), vfma(d7, w, s6), vfma(d8, w, s7)
    w = vload(wb, (t + 4) * count)
    s0, s1, s2, s3 = vfma(e2, w, s0), vfma(e3, w, s1), vfma(e4, w, s2), vfma(e5, w, s3)
    s4, s5, s6, s7 = vfma(e6, w, s4), vfma(e7, w, s5), vfma(e8, w, s6), vfma(e9, w, s7)
    w = vload(wb, (t + 5) * count)
    s0, s1, s2, s3 = vfma(d2, w, s0), vfma(d3, w, s1), vfma(d4, w, s2), vfma(d5, w, s3)
    s4, s5, s6, s7 = vfma(d6, w, s4), vfma(d7, w, s5), vfma(d8, w, s6), vfma(d9, w, s7)
    w = vload(wb, (t + 6) * count)
    s0, s1, s2, s3 = vfma(e3, w, s0), vfma(e4, w, s1), vfma(e5, w, s2), vfma(e6, w, s3)
    s4, s5, s6, s7 = vfma(e7, w, s4), vfma(e8, w, s5), vfma(e9, w, s6), vfma(e10, w, s7)
    return s0, s1, s2, s3, s4, s5, s6, s7


@kernel(inline=True)
def _step8(o, xb, ih0, a_lo, a_hi, wb, wt, k, n, c, j, pad_left):
    """Eight pixels ``j .. j + 7`` of output row ``o``, all of whose taps are inside the input, the ``n`` channels
    of block ``k``, from input rows ``ih0 + r`` (filter rows ``r`` in ``[a_lo, a_hi)``)."""
    row = xb.shape[1] * c
    gap = 2 * c
    q = (2 * j - pad_left) * c + k
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = vzeros(o)
    for r in range(a_lo, a_hi):
        a = (ih0 + r) * row + q
        a0, a3, a6, a9 = opaque(a), opaque(a + 3 * gap), opaque(a + 6 * gap), opaque(a + 9 * gap)
        e0, e1 = vload_part(xb, a0, n), vload_part(xb, a0 + gap, n)
        e2, e3 = vload_part(xb, a0 + 2 * gap, n), vload_part(xb, a3, n)
        e4, e5 = vload_part(xb, a0 + 4 * gap, n), vload_part(xb, a3 + 2 * gap, n)
        e6, e7 = vload_part(xb, a6, n), vload_part(xb, a3 + 4 * gap, n)
        e8, e9 = vload_part(xb, a0 + 8 * gap, n), vload_part(xb, a9, n)
        e10 = vload_part(xb, a6 + 4 * gap, n)
        b0, b3, b6, b9 = opaque(a + c), opaque(a + c + 3 * gap), opaque(a + c + 6 * gap), opaque(a + c + 9 * gap)
        d0, d1 = vload_part(xb, b0, n), vload_part(xb, b0 + gap, n)
        d2, d3 = vload_part(xb, b0 + 2 * gap, n), vload_part(xb, b3, n)
        d4, d5 = vload_part(xb, b0 + 4 * gap, n), vload_part(xb, b3 + 2 * gap, n)
        d6, d7 = vload_part(xb, b6, n), vload_part(xb, b3 + 4 * gap, n)
        d8, d9 = vload_part(xb, b0 + 8 * gap, n), vload_part(xb, b9, n)
        s0, s1, s2, s3, s4, s5, s6, s7 = _taps8((s0, s1, s2, s3, s4, s5, s6, s7),
                                                (e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10),
                                                (d0, d1, d2, d3, d4, d5, d6, d7, d8, d9), wb, wt + 7 * r)
    _stores8(o, j * c + k, c, n, 8, s0, s1, s2, s3, s4, s5, s6, s7)


@kernel(inline=True)
def _pixel_clipped(o, xb, ih0, a_lo, a_hi, wb, wt, k, n, c, j, pad_left):
    """Output pixel ``j`` of row ``o``, taps in the padding read as zeros."""
    count = lanes(wb)
    row = xb.shape[1] * c
    m_lo, m_hi = tap_range(2 * j - pad_left, 1, 7, xb.shape[1])
    q = (2 * j - pad_left) * c + k
    s = vzeros(o)
    for r in range(a_lo, a_hi):
        a = (ih0 + r) * row + q
        for m in range(m_lo, m_hi):
            s = vfma(vload_part(xb, a + m * c, n), vload(wb, (wt + 7 * r + m) * count), s)
    vstore_n(o, j * c + k, s, n)


@kernel
def _row(o, xb, ih0, a_lo, a_hi, wb, shift, j_lo, j_hi, pad_left):
    """Output row ``o``, every channel block: its interior pixels ``[j_lo, j_hi)`` in steps of eight (the last
    overlapping the one before it), the others one by one, clipped.  Compiled on its own (inlined in the rows
    loop, LLVM gave the columns pointers of their own)."""
    count = lanes(o)
    out_w, c = o.shape[0], o.shape[1]
    steps = (j_hi - j_lo) // 8
    first, rest = (j_lo, j_lo + 8 * steps) if steps > 0 else (0, 0)
    for kb in range(_channel_blocks(c, shift, count)):
        k, n = _channel_block(kb, c, shift, count)
        wt = kb * 49
        for m in range(steps):
            _step8(o, xb, ih0, a_lo, a_hi, wb, wt, k, n, c, j_lo + 8 * m, pad_left)
        end = rest
        if steps > 0 and rest < j_hi:
            _step8(o, xb, ih0, a_lo, a_hi, wb, wt, k, n, c, j_hi - 8, pad_left)
            end = j_hi
        for j in range(0, first):
            _pixel_clipped(o, xb, ih0, a_lo, a_hi, wb, wt, k, n, c, j, pad_left)
        for j in range(end, out_w):
            _pixel_clipped(o, xb, ih0, a_lo, a_hi, wb, wt, k, n, c, j, pad_left)


@kernel
def depthwise_nhwc_forward_7x7_s2_direct_rows(x, wb, out, row_begin, row_end, stride_h, pad_top, pad_left):
    """Output rows ``[row_begin, row_end)`` (flat over the batch) of ``out`` ``[N, out_h, out_w, C]``, from ``x``
    ``[N, in_h, in_w, C]`` and the filter laid out by channel block, ``wb``
    (:func:`~sepconv.kernels.depthwise_5x5_direct.filter_blocks`); horizontal stride 2."""
    x, wb, out = borrowed(x), borrowed(wb), borrowed(out)
    in_h, in_w = x.shape[1], x.shape[2]
    out_h, out_w = out.shape[1], out.shape[2]
    shift = block_shift(x)
    j_lo, j_hi = interior(out_w, in_w, 7, 2, 1, pad_left)
    for r in range(row_begin, row_end):
        b = r // out_h
        i = r - b * out_h
        ih0 = i * stride_h - pad_top
        a_lo, a_hi = tap_range(ih0, 1, 7, in_h)
        _row(out[b, i], x[b], ih0, a_lo, a_hi, wb, shift, j_lo, j_hi, pad_left)


@kernel(parallel=True)
def depthwise_nhwc_forward_7x7_s2_direct_parallel(x, w, out, n_chunks, stride_h, pad_top, pad_left):
    """The forward of ``x`` with ``w`` ``[7, 7, C]`` into ``out`` at horizontal stride 2: the filter laid out once,
    then all output rows in ``n_chunks`` parallel blocks (:func:`depthwise_nhwc_forward_7x7_s2_direct_rows`)."""
    wb = filter_blocks(x, w, 49)
    rows = out.shape[0] * out.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_forward_7x7_s2_direct_rows(x, wb, out, t * rows // n_chunks, (t + 1) * rows // n_chunks,
                                                  stride_h, pad_top, pad_left)
