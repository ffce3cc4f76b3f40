"""The filter gradient of depthwise filters 3, 5 or 7 wide (any height, vertical stride and dilation), NHWC, at
horizontal stride 1 (any dilation) or 2 (undilated), for CPUs of sixteen vector registers (AVX2): a filter row's
sums stay in registers while a window of ``dy`` columns rolls along the input row, one channel block of half a
vector (32 bytes: one AVX2 register, :func:`~sepconv.kernels._simd.hload`) after another.

A filter row's gradient is a correlation along the row: tap ``t`` sums ``x[j * stride + t * dilation - pad] *
dy[j]`` over the output columns ``j``.  At stride 1 the kernel walks the input columns ``u`` instead: column ``u`` is
tap ``t``'s input for output column ``u + pad - t * dilation``, so with the five ``dy`` columns ``u + pad``, ``u + pad
- d``, ... ``u + pad - 4d`` held in registers each input column costs one load of its own, one of the newest ``dy``
column, and five multiply-adds, one into each tap's sum (:func:`_pair5_s1`); the window then moves one column
(register moves, which the CPU's renamer takes for free).  At a dilation ``d`` the columns go phase by phase of
``d``.  ``dy`` columns outside ``dy`` enter the window as zeros, so the same steps cover the border columns: no
pixel is treated apart.  Each multiply-add adds to its tap's sum, a chain a multiply-add's latency long per column,
so five chains of a 5-wide row keep only half the two FMA units busy: a 5-wide filter's rows go two at a time, their
ten sums, the five ``dy`` columns they share and the input column loaded filling the sixteen registers (an odd last
row is paired with itself, its twin's sums put aside and dropped).  A 7-wide row's seven chains go alone
(:func:`_row7_s1`: seven sums, seven ``dy`` columns, the input column), and a 3-wide filter's rows three at a time
(:func:`_triple3_s1`: nine sums, three ``dy`` columns); the direct 3x3 kernel
(:mod:`sepconv.kernels.depthwise_3x3_direct`, four pixels by a whole vector, in the order of memory) is faster
where a pixel holds a vector of channels (1.0-1.46 times its time on this kernel), so 3-wide rows come here over
8 to 15 channels only.

At stride 2 an input column's taps are those of its parity: walking the output columns ``J``, the even input column
``2J - pad`` is taps 0, 2, 4 (and 6) for ``dy`` columns ``J``, ``J - 1``, ``J - 2`` (and ``J - 3``) and the odd one
taps 1, 3 (and 5) for the same columns: three ``dy`` columns in registers for a 5-wide filter (:func:`_pair5_s2`,
two filter rows again), four for a 7-wide one (:func:`_row7_s2`), two for a 3-wide one (:func:`_triple3_s2`).

The same steps run on whole vectors (``whole``: CPUs of 32 registers whose units are 256 bits wide, Zen 4, where a
whole vector's multiply-add costs two half ones and the sums, ``dy`` columns and input column fit the registers): the
width comes from the zero vector the sums start from (:func:`~sepconv.kernels._simd.load_like`).  There it also takes
3-wide filters over a vector of channels or more at dilation 2 (:mod:`sepconv.fast.depthwise`).

Each thread adds its rows' products into sums kept by channel block (``[blocks, kh, kw, lanes]``), then stores them
into its partial gradient (a last partial channel block overlaps the one before it,
:func:`~sepconv.kernels._window.block_start`, and stores the shared channels' sums twice, equal), so the input needs
half a vector of channels.

Fortieth session, AMD EPYC (Zen 3) VM, 2 threads, one process, the kernel against the general 5x5 one
(:func:`sepconv.kernels.depthwise.depthwise_nhwc_backprop_filter_5x5_rows`, 25 sums of whole vectors, which spill
out of AVX2's sixteen registers), us: 8x14x14x672 1212-3199 -> 380, 1x14x14x672 161-304 -> 66, 8x28x28x240
1810-3480 -> 591, 1x33x33x100 dilation 2 154-234 -> 44; one filter row at a time, five chains, took 2.3 times as
long as two.  3x3 over 8-12 channels, alternating processes, against the general kernel's masked vectors, us:
1x56x56x8 55 -> 27, 1x112x112x12 182 -> 61, 8x56x56x12 303 -> 99, 1x40x40x8 dilation 2 57 -> 15, 2x28x28x8 stride 2
32 -> 14.

Examples
--------
A 5x5 filter's gradient over a 3x4 image of ones and a ``dy`` of ones, SAME padding: each tap counts the output
pixels whose window puts it inside the image.

>>> import numpy as np
>>> x, dy = np.ones((1, 3, 4, 8), np.float32), np.ones((1, 3, 4, 8), np.float32)
>>> partial = np.empty((1, 5, 5, 8), np.float32)
>>> depthwise_nhwc_backprop_filter_avx2_parallel(x, dy, partial, 1, 1, 1, 1, 2, 2)  # strides, dilations, pads
>>> partial[0, :, :, 0]
array([[ 2.,  3.,  4.,  3.,  2.],
       [ 4.,  6.,  8.,  6.,  4.],
       [ 6.,  9., 12.,  9.,  6.],
       [ 4.,  6.,  8.,  6.,  4.],
       [ 2.,  3.,  4.,  3.,  2.]], dtype=float32)
"""

from __future__ import annotations

from numba import prange

from ._borrowed import borrowed
from ._jit import kernel
from ._simd import empty_on_line, hzeros, lanes_like, load_like, vfma, vstore, vzeros
from ._window import block_start, tap_range


@kernel(inline=True)
def _column(a, i, valid, zero):
    """A vector as wide as ``zero`` (half or whole) of ``a`` from flat index ``i``, or ``zero`` where ``valid`` is
    false."""
    return load_like(a, i, zero) if valid else zero


@kernel(inline=True)
def _load5(z, sums, s, count):
    """Five vectors of sums as wide as ``z``, ``count`` apart from flat index ``s``."""
    return (load_like(sums, s, z), load_like(sums, s + count, z), load_like(sums, s + 2 * count, z),
            load_like(sums, s + 3 * count, z), load_like(sums, s + 4 * count, z))


@kernel(inline=True)
def _store5(sums, s, count, s0, s1, s2, s3, s4):
    """:func:`_load5`'s converse."""
    vstore(sums, s, s0)
    vstore(sums, s + count, s1)
    vstore(sums, s + 2 * count, s2)
    vstore(sums, s + 3 * count, s3)
    vstore(sums, s + 4 * count, s4)


@kernel(inline=True)
def _pair5_s1(z, x, dy, sums, s, q, xa, xb, a_dy, c, in_w, out_w, dil, pad):
    """Two filter rows of a 5-wide filter at stride 1: the products of input rows ``xa`` and ``xb`` (flat indices of
    their first column's channel block) with the ``dy`` row from ``a_dy``, added to the sums from ``s`` and ``q``."""
    count = lanes_like(z)
    for p in range(dil):
        s0, s1, s2, s3, s4 = _load5(z, sums, s, count)
        t0, t1, t2, t3, t4 = _load5(z, sums, q, count)
        j = p + pad  # the dy column of input column p's tap 0
        w1 = _column(dy, a_dy + (j - dil) * c, 0 <= j - dil < out_w, z)
        w2 = _column(dy, a_dy + (j - 2 * dil) * c, 0 <= j - 2 * dil < out_w, z)
        w3 = _column(dy, a_dy + (j - 3 * dil) * c, 0 <= j - 3 * dil < out_w, z)
        w4 = _column(dy, a_dy + (j - 4 * dil) * c, 0 <= j - 4 * dil < out_w, z)
        u = p
        end = min(in_w, out_w - pad)  # then tap 0's dy column is past dy
        while u < end:
            w0 = load_like(dy, a_dy + (u + pad) * c, z)
            i = load_like(x, xa + u * c, z)
            s0, s1, s2, s3, s4 = vfma(i, w0, s0), vfma(i, w1, s1), vfma(i, w2, s2), vfma(i, w3, s3), vfma(i, w4, s4)
            i = load_like(x, xb + u * c, z)
            t0, t1, t2, t3, t4 = vfma(i, w0, t0), vfma(i, w1, t1), vfma(i, w2, t2), vfma(i, w3, t3), vfma(i, w4, t4)
            w4, w3, w2, w1 = w3, w2, w1, w0
            u += dil
        while u < in_w:
            i = load_like(x, xa + u * c, z)
            s1, s2, s3, s4 = vfma(i, w1, s1), vfma(i, w2, s2), vfma(i, w3, s3), vfma(i, w4, s4)
            i = load_like(x, xb + u * c, z)
            t1, t2, t3, t4 = vfma(i, w1, t1), vfma(i, w2, t2), vfma(i, w3, t3), vfma(i, w4, t4)
            w4, w3, w2, w1 = w3, w2, w1, z
            u += dil
        _store5(sums, s, count, s0, s1, s2, s3, s4)
        _store5(sums, q, count, t0, t1, t2, t3, t4)



@kernel(inline=True)
def _triple3_s1(z, x, dy, sums, s, q, v, xa, xb, xc, a_dy, c, in_w, out_w, dil, pad):
    """Three filter rows of a 3-wide filter at stride 1, as :func:`_pair5_s1`: nine sums, the three ``dy`` columns
    they share and the input column loaded."""
    count = lanes_like(z)
    for p in range(dil):
        s0, s1, s2 = load_like(sums, s, z), load_like(sums, s + count, z), load_like(sums, s + 2 * count, z)
        t0, t1, t2 = load_like(sums, q, z), load_like(sums, q + count, z), load_like(sums, q + 2 * count, z)
        r0, r1, r2 = load_like(sums, v, z), load_like(sums, v + count, z), load_like(sums, v + 2 * count, z)
        j = p + pad
        w1 = _column(dy, a_dy + (j - dil) * c, 0 <= j - dil < out_w, z)
        w2 = _column(dy, a_dy + (j - 2 * dil) * c, 0 <= j - 2 * dil < out_w, z)
        u = p
        end = min(in_w, out_w - pad)
        while u < end:
            w0 = load_like(dy, a_dy + (u + pad) * c, z)
            i = load_like(x, xa + u * c, z)
            s0, s1, s2 = vfma(i, w0, s0), vfma(i, w1, s1), vfma(i, w2, s2)
            i = load_like(x, xb + u * c, z)
            t0, t1, t2 = vfma(i, w0, t0), vfma(i, w1, t1), vfma(i, w2, t2)
            i = load_like(x, xc + u * c, z)
            r0, r1, r2 = vfma(i, w0, r0), vfma(i, w1, r1), vfma(i, w2, r2)
            w2, w1 = w1, w0
            u += dil
        while u < in_w:
            i = load_like(x, xa + u * c, z)
            s1, s2 = vfma(i, w1, s1), vfma(i, w2, s2)
            i = load_like(x, xb + u * c, z)
            t1, t2 = vfma(i, w1, t1), vfma(i, w2, t2)
            i = load_like(x, xc + u * c, z)
            r1, r2 = vfma(i, w1, r1), vfma(i, w2, r2)
            w2, w1 = w1, z
            u += dil
        _store3(sums, s, count, s0, s1, s2)
        _store3(sums, q, count, t0, t1, t2)
        _store3(sums, v, count, r0, r1, r2)


@kernel(inline=True)
def _store3(sums, s, count, s0, s1, s2):
    """Three vectors of sums stored, ``count`` apart from flat index ``s``."""
    vstore(sums, s, s0)
    vstore(sums, s + count, s1)
    vstore(sums, s + 2 * count, s2)


@kernel(inline=True)
def _triple3_s2(z, x, dy, sums, s, q, v, xa, xb, xc, a_dy, c, in_w, out_w, pad):
    """Three filter rows of a 3-wide filter at stride 2 (undilated), as :func:`_pair5_s2`: the even input column taps
    0 and 2 of ``dy`` columns ``m`` and ``m - 1``, the odd one tap 1 of ``m``."""
    count = lanes_like(z)
    s0, s1, s2 = load_like(sums, s, z), load_like(sums, s + count, z), load_like(sums, s + 2 * count, z)
    t0, t1, t2 = load_like(sums, q, z), load_like(sums, q + count, z), load_like(sums, q + 2 * count, z)
    r0, r1, r2 = load_like(sums, v, z), load_like(sums, v + count, z), load_like(sums, v + 2 * count, z)
    m_first, m_last = pad // 2, (in_w - 1 + pad) // 2
    w1 = _column(dy, a_dy + (m_first - 1) * c, 0 <= m_first - 1 < out_w, z)
    for m in range(m_first, m_last + 1):
        w0, e, o = _s2_columns(z, x, dy, xa, a_dy, c, in_w, out_w, pad, m)
        s0, s2, s1 = vfma(e, w0, s0), vfma(e, w1, s2), vfma(o, w0, s1)
        w0, e, o = _s2_columns(z, x, dy, xb, a_dy, c, in_w, out_w, pad, m)
        t0, t2, t1 = vfma(e, w0, t0), vfma(e, w1, t2), vfma(o, w0, t1)
        w0, e, o = _s2_columns(z, x, dy, xc, a_dy, c, in_w, out_w, pad, m)
        r0, r2, r1 = vfma(e, w0, r0), vfma(e, w1, r2), vfma(o, w0, r1)
        w1 = w0
    _store3(sums, s, count, s0, s1, s2)
    _store3(sums, q, count, t0, t1, t2)
    _store3(sums, v, count, r0, r1, r2)

@kernel(inline=True)
def _row7_s1(z, x, dy, sums, s, xa, a_dy, c, in_w, out_w, dil, pad):
    """One filter row of a 7-wide filter at stride 1, as :func:`_pair5_s1`."""
    count = lanes_like(z)
    for p in range(dil):
        s0, s1, s2, s3, s4 = _load5(z, sums, s, count)
        s5, s6 = load_like(sums, s + 5 * count, z), load_like(sums, s + 6 * count, z)
        j = p + pad
        w1 = _column(dy, a_dy + (j - dil) * c, 0 <= j - dil < out_w, z)
        w2 = _column(dy, a_dy + (j - 2 * dil) * c, 0 <= j - 2 * dil < out_w, z)
        w3 = _column(dy, a_dy + (j - 3 * dil) * c, 0 <= j - 3 * dil < out_w, z)
        w4 = _column(dy, a_dy + (j - 4 * dil) * c, 0 <= j - 4 * dil < out_w, z)
        w5 = _column(dy, a_dy + (j - 5 * dil) * c, 0 <= j - 5 * dil < out_w, z)
        w6 = _column(dy, a_dy + (j - 6 * dil) * c, 0 <= j - 6 * dil < out_w, z)
        u = p
        end = min(in_w, out_w - pad)
        while u < end:
            w0 = load_like(dy, a_dy + (u + pad) * c, z)
            i = load_like(x, xa + u * c, z)
            s0, s1, s2, s3, s4 = vfma(i, w0, s0), vfma(i, w1, s1), vfma(i, w2, s2), vfma(i, w3, s3), vfma(i, w4, s4)
            s5, s6 = vfma(i, w5, s5), vfma(i, w6, s6)
            w6, w5, w4, w3, w2, w1 = w5, w4, w3, w2, w1, w0
            u += dil
        while u < in_w:
            i = load_like(x, xa + u * c, z)
            s1, s2, s3, s4 = vfma(i, w1, s1), vfma(i, w2, s2), vfma(i, w3, s3), vfma(i, w4, s4)
            s5, s6 = vfma(i, w5, s5), vfma(i, w6, s6)
            w6, w5, w4, w3, w2, w1 = w5, w4, w3, w2, w1, z
            u += dil
        _store5(sums, s, count, s0, s1, s2, s3, s4)
        vstore(sums, s + 5 * count, s5)
        vstore(sums, s + 6 * count, s6)


@kernel(inline=True)
def _s2_columns(z, x, dy, xa, a_dy, c, in_w, out_w, pad, m):
    """Output column ``m``'s ``dy`` and the even and odd input columns ``2m - pad`` and ``2m + 1 - pad`` of the row
    from ``xa``, each zero where it is outside its array."""
    u = 2 * m - pad
    return (_column(dy, a_dy + m * c, m < out_w, z), _column(x, xa + u * c, u >= 0, z),
            _column(x, xa + (u + 1) * c, u + 1 < in_w, z))


@kernel(inline=True)
def _pair5_s2(z, x, dy, sums, s, q, xa, xb, a_dy, c, in_w, out_w, pad):
    """Two filter rows of a 5-wide filter at stride 2 (undilated), as :func:`_pair5_s1`: output column by output
    column ``m``, the even input column taps 0, 2 and 4 of ``dy`` columns ``m``, ``m - 1`` and ``m - 2``, the odd
    one taps 1 and 3 of ``m`` and ``m - 1``; the columns at the row's ends, whose loads may fall outside, checked
    one by one."""
    count = lanes_like(z)
    s0, s1, s2, s3, s4 = _load5(z, sums, s, count)
    t0, t1, t2, t3, t4 = _load5(z, sums, q, count)
    m_first, m_last = pad // 2, (in_w - 1 + pad) // 2  # the output columns whose even or odd column is inside
    m_lo, m_hi = (pad + 1) // 2, min(out_w, (in_w - 2 + pad) // 2 + 1)  # ... whose loads all are
    m_hi = max(m_hi, m_lo)
    w1 = _column(dy, a_dy + (m_first - 1) * c, 0 <= m_first - 1 < out_w, z)
    w2 = _column(dy, a_dy + (m_first - 2) * c, 0 <= m_first - 2 < out_w, z)
    for m in range(m_first, m_last + 1):
        if m_lo <= m < m_hi:
            w0 = load_like(dy, a_dy + m * c, z)
            e, o = load_like(x, xa + (2 * m - pad) * c, z), load_like(x, xa + (2 * m + 1 - pad) * c, z)
            s0, s2, s4, s1, s3 = vfma(e, w0, s0), vfma(e, w1, s2), vfma(e, w2, s4), vfma(o, w0, s1), vfma(o, w1, s3)
            e, o = load_like(x, xb + (2 * m - pad) * c, z), load_like(x, xb + (2 * m + 1 - pad) * c, z)
        else:
            w0, e, o = _s2_columns(z, x, dy, xa, a_dy, c, in_w, out_w, pad, m)
            s0, s2, s4, s1, s3 = vfma(e, w0, s0), vfma(e, w1, s2), vfma(e, w2, s4), vfma(o, w0, s1), vfma(o, w1, s3)
            w0, e, o = _s2_columns(z, x, dy, xb, a_dy, c, in_w, out_w, pad, m)
        t0, t2, t4, t1, t3 = vfma(e, w0, t0), vfma(e, w1, t2), vfma(e, w2, t4), vfma(o, w0, t1), vfma(o, w1, t3)
        w2, w1 = w1, w0
    _store5(sums, s, count, s0, s1, s2, s3, s4)
    _store5(sums, q, count, t0, t1, t2, t3, t4)


@kernel(inline=True)
def _row7_s2(z, x, dy, sums, s, xa, a_dy, c, in_w, out_w, pad):
    """One filter row of a 7-wide filter at stride 2 (undilated), as :func:`_pair5_s2`: the even input column taps
    0, 2, 4 and 6 of ``dy`` columns ``m`` to ``m - 3``, the odd one taps 1, 3 and 5 of ``m`` to ``m - 2``."""
    count = lanes_like(z)
    s0, s1, s2, s3, s4 = _load5(z, sums, s, count)
    s5, s6 = load_like(sums, s + 5 * count, z), load_like(sums, s + 6 * count, z)
    m_first, m_last = pad // 2, (in_w - 1 + pad) // 2
    w1 = _column(dy, a_dy + (m_first - 1) * c, 0 <= m_first - 1 < out_w, z)
    w2 = _column(dy, a_dy + (m_first - 2) * c, 0 <= m_first - 2 < out_w, z)
    w3 = _column(dy, a_dy + (m_first - 3) * c, 0 <= m_first - 3 < out_w, z)
    for m in range(m_first, m_last + 1):
        w0, e, o = _s2_columns(z, x, dy, xa, a_dy, c, in_w, out_w, pad, m)
        s0, s2, s4, s6 = vfma(e, w0, s0), vfma(e, w1, s2), vfma(e, w2, s4), vfma(e, w3, s6)
        s1, s3, s5 = vfma(o, w0, s1), vfma(o, w1, s3), vfma(o, w2, s5)
        w3, w2, w1 = w2, w1, w0
    _store5(sums, s, count, s0, s1, s2, s3, s4)
    vstore(sums, s + 5 * count, s5)
    vstore(sums, s + 6 * count, s6)


@kernel
def _add_rows(z, x, dy, sums, row_begin, row_end, kh, kw, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):
    """The products of output rows ``[row_begin, row_end)`` (over the batch) added to ``sums`` (``[blocks, kh, kw,
    lanes]`` flat, then ``kw`` vectors put aside: the sums of the twins that fill a last pair or triple of filter
    rows)."""
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = dy.shape[1], dy.shape[2]
    count = lanes_like(z)
    blocks = (c + count - 1) // count
    aside = blocks * kh * kw * count
    row_gap = dil_h * in_w * c
    for row in range(row_begin, row_end):
        b = row // out_h
        i = row - b * out_h
        ih0 = i * stride_h - pad_top
        r_lo, r_hi = tap_range(ih0, dil_h, kh, in_h)
        a_dy = row * out_w * c
        for g in range(blocks):
            k = block_start(g * count, 0, c, count)
            x_row = (b * in_h + ih0) * in_w * c + k
            for r in range(r_lo, r_hi, 2 if kw == 5 else (3 if kw == 3 else 1)):
                s = (g * kh + r) * kw * count
                xa = x_row + r * row_gap
                if kw == 3:
                    q, xb = (s + kw * count, xa + row_gap) if r + 1 < r_hi else (aside, xa)
                    v, xc = (s + 2 * kw * count, xa + 2 * row_gap) if r + 2 < r_hi else (aside, xa)
                    if stride_w == 1:
                        _triple3_s1(z, x, dy, sums, s, q, v, xa, xb, xc, a_dy + k, c, in_w, out_w, dil_w, pad_left)
                    else:
                        _triple3_s2(z, x, dy, sums, s, q, v, xa, xb, xc, a_dy + k, c, in_w, out_w, pad_left)
                    continue
                if kw == 7:
                    if stride_w == 1:
                        _row7_s1(z, x, dy, sums, s, xa, a_dy + k, c, in_w, out_w, dil_w, pad_left)
                    else:
                        _row7_s2(z, x, dy, sums, s, xa, a_dy + k, c, in_w, out_w, pad_left)
                    continue
                q, xb = (s + kw * count, xa + row_gap) if r + 1 < r_hi else (aside, xa)
                if stride_w == 1:
                    _pair5_s1(z, x, dy, sums, s, q, xa, xb, a_dy + k, c, in_w, out_w, dil_w, pad_left)
                else:
                    _pair5_s2(z, x, dy, sums, s, q, xa, xb, a_dy + k, c, in_w, out_w, pad_left)


@kernel
def _gradient_rows(z, x, dy, dw, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):
    """:func:`depthwise_nhwc_backprop_filter_avx2_rows` in channel blocks as wide as ``z``."""
    c = x.shape[3]
    kh, kw = dw.shape[0], dw.shape[1]
    count = lanes_like(z)
    blocks = (c + count - 1) // count
    sums = empty_on_line((blocks * kh + 1) * kw * count, x)
    sums[:] = 0
    _add_rows(z, x, dy, sums, row_begin, row_end, kh, kw, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)
    flat = dw.reshape(-1)
    for g in range(blocks):
        k = block_start(g * count, 0, c, count)
        for t in range(kh * kw):
            vstore(flat, t * c + k, load_like(sums, (g * kh * kw + t) * count, z))


@kernel
def depthwise_nhwc_backprop_filter_avx2_rows(x, dy, dw, row_begin, row_end, stride_h, stride_w, dil_h, dil_w,
                                             pad_top, pad_left, whole=False):
    """The filter gradient ``dw`` ``[kh, kw, C]`` (``kw`` 3, 5 or 7; written, not added to) of the output rows
    ``[row_begin, row_end)`` (over the batch) of the forward of ``x`` ``[N, in_h, in_w, C]`` (``C`` at least half
    a vector) into ``dy`` ``[N, out_h, out_w, C]``, at horizontal stride 1 or 2 (undilated): in channel blocks of
    half a vector, or with ``whole`` of a whole one (C at least a vector; 32 registers: 5-wide rows' two rows of
    sums, five ``dy`` columns and an input column take 16 of them)."""
    x, dy, dw = borrowed(x), borrowed(dy), borrowed(dw)
    if whole:
        _gradient_rows(vzeros(x), x, dy, dw, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)
    else:
        _gradient_rows(hzeros(x), x, dy, dw, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)


@kernel(parallel=True)
def depthwise_nhwc_backprop_filter_avx2_parallel(x, dy, partial, stride_h, stride_w, dil_h, dil_w, pad_top,
                                                 pad_left, whole=False):
    """The filter gradient of the output rows in ``partial.shape[0]`` parallel runs, run ``t``'s into ``partial[t]``
    (``[T, kh, kw, C]``)."""
    n_chunks = partial.shape[0]
    rows = dy.shape[0] * dy.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_backprop_filter_avx2_rows(x, dy, partial[t], t * rows // n_chunks, (t + 1) * rows // n_chunks,
                                                 stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, whole)
