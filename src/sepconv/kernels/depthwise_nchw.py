"""Depthwise convolution kernels, NCHW: the forward op (and through it the stride-1 input gradient).

In NCHW every channel is a plane ``[H, W]`` of its own, and a depthwise convolution is an
independent 2-D convolution per plane: output channel ``o = k*M + q`` reads input plane ``k``
with the weights ``w[:, :, o]``.  So these kernels work plane by plane, the width innermost
(contiguous: explicit SIMD vectors along the rows for horizontal strides 1 and 2), and never
transpose.  Shapes::

    x     [N, C, in_h, in_w]        input
    w     [kh, kw, C * M]           filter, output channel k*M + q
    out   [N, C * M, out_h, out_w]  output (and ``dy``, the gradient of the output)

Each input plane is first copied into a small window buffer with its zero padding (a few KB,
in cache, one per call of a ``*_range`` kernel), so that every output pixel takes the same
vectorized loop; padded taps multiply zeros, as in TensorFlow.  For 3x3 and 5x5 filters the forward
keeps the weights in registers (9 or 25 vectors) and the filter gradient its sums (one pass over the
plane); other sizes go tap by tap, four output rows at a time.  The input gradient with stride 1 is
the forward op on ``out_backprop`` with the flipped filter (``sepconv.fast.depthwise``).

Work is split over output planes ``p = b * C*M + o``: ``*_range`` does ``[begin, end)`` on the
calling thread, ``*_parallel`` cuts them into ``n_chunks`` blocks run by ``prange``.

The filter gradient sums, per plane and filter tap, the products of the window and ``dy``
(SIMD along the rows, one horizontal sum per tap and plane).

Examples
--------
A 3x3 filter of ones over a 4x4 plane of ones, SAME padding (1 on each side), stride 1:

>>> import numpy as np
>>> x, w = np.ones((1, 1, 4, 4), np.float32), np.ones((3, 3, 1), np.float32)
>>> out = np.empty((1, 1, 4, 4), np.float32)
>>> depthwise_nchw_forward_range(x, w, out, 1, 0, 1, 1, 1, 1, 1, 1, 1)
>>> out[0, 0]
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
    empty_on_line,
    lanes,
    vadd,
    vadd_apart,
    vfma,
    vload,
    vload_even,
    vload_n,
    vmul,
    vsplat,
    vstore_interleaved,
    vstore_n,
    vsum,
    vzeros,
)


@kernel
def _window_plane(x, b, k, plane, pad_top, pad_left, fresh):
    """Copy input plane ``x[b, k]`` into ``plane``, the window the outputs read: ``plane[r, c] =
    x[b, k, r - pad_top, c - pad_left]``, zero outside the input (negative pads crop).

    The padding sits at the same places for every plane of a call, so it is zeroed once, when the
    buffer is ``fresh``; after that only the input's rows are copied, in SIMD vectors."""
    in_h, in_w = x.shape[2], x.shape[3]
    rows, cols = plane.shape
    if fresh:
        for r in range(rows):
            for c in range(cols):
                plane[r, c] = 0
    c_lo, c_hi = min(max(pad_left, 0), cols), min(max(pad_left + in_w, 0), cols)
    width = max(0, c_hi - c_lo)
    count = lanes(plane)
    for r in range(max(0, pad_top), min(rows, pad_top + in_h)):  # flat indices: no row views in the loop
        src = ((b * x.shape[1] + k) * in_h + r - pad_top) * in_w + c_lo - pad_left
        dst = r * cols + c_lo
        for t in range(0, width, count):
            n = min(count, width - t)
            vstore_n(plane, dst + t, vload_n(x, src + t, n), n)


@kernel(inline=True)
def _plane_vector(prow, q, stride_w):
    """Elements ``q, q + stride_w, ...`` of ``prow`` (a window row, or the whole window with a flat index)
    as one vector (stride 1 or 2)."""
    if stride_w == 1:
        return vload(prow, q)
    return vload_even(prow, q)


@kernel(inline=True)
def _weights_row5(plane, w, di, o):
    """The five weights of filter row ``di`` of output channel ``o``, each in every lane."""
    return (vsplat(plane, w[di, 0, o]), vsplat(plane, w[di, 1, o]), vsplat(plane, w[di, 2, o]),
            vsplat(plane, w[di, 3, o]), vsplat(plane, w[di, 4, o]))


@kernel(inline=True)
def _row5_into(plane, q, dil_w, stride_w, ws, acc):
    """``acc`` plus one filter row of five taps for a vector of neighbouring outputs (window flat index ``q``)."""
    acc = vfma(_plane_vector(plane, q, stride_w), ws[0], acc)
    acc = vfma(_plane_vector(plane, q + dil_w, stride_w), ws[1], acc)
    acc = vfma(_plane_vector(plane, q + 2 * dil_w, stride_w), ws[2], acc)
    acc = vfma(_plane_vector(plane, q + 3 * dil_w, stride_w), ws[3], acc)
    return vfma(_plane_vector(plane, q + 4 * dil_w, stride_w), ws[4], acc)


@kernel(inline=True)
def _row5_into2(plane, q, dil_w, stride_w, ws, acc, vs, acc2):
    """:func:`_row5_into` for two sums of the same input row (two filter rows ``ws``, ``vs``), each tap loaded once."""
    t = _plane_vector(plane, q, stride_w)
    acc, acc2 = vfma(t, ws[0], acc), vfma(t, vs[0], acc2)
    t = _plane_vector(plane, q + dil_w, stride_w)
    acc, acc2 = vfma(t, ws[1], acc), vfma(t, vs[1], acc2)
    t = _plane_vector(plane, q + 2 * dil_w, stride_w)
    acc, acc2 = vfma(t, ws[2], acc), vfma(t, vs[2], acc2)
    t = _plane_vector(plane, q + 3 * dil_w, stride_w)
    acc, acc2 = vfma(t, ws[3], acc), vfma(t, vs[3], acc2)
    t = _plane_vector(plane, q + 4 * dil_w, stride_w)
    return vfma(t, ws[4], acc), vfma(t, vs[4], acc2)


@kernel(inline=True)
def _fma2(v, u, wt, a, e):
    """``a + v * wt`` and ``e + u * wt``."""
    return vfma(v, wt, a), vfma(u, wt, e)


@kernel(inline=True)
def _seven_rows_into4_body(plane, w, o, q0, cols, dil_w, stride_w, kw):
    """The sums of four output rows by two vectors of a filter seven rows tall (vertical stride and dilation 1)
    from window flat index ``q0``: column by column of the filter, each of the ten input rows the four output rows
    read is loaded once for all of them (two vectors, ``count * stride_w`` apart), its seven weights in registers.
    A tap's loads are split over two lines at most filter columns, and loaded once per output row they cost more
    than the multiply-adds."""
    count = lanes(plane)
    a0 = a1 = a2 = a3 = e0 = e1 = e2 = e3 = vzeros(plane)
    far = count * stride_w
    for dj in range(kw):
        w0, w1, w2 = vsplat(plane, w[0, dj, o]), vsplat(plane, w[1, dj, o]), vsplat(plane, w[2, dj, o])
        w3, w4, w5 = vsplat(plane, w[3, dj, o]), vsplat(plane, w[4, dj, o]), vsplat(plane, w[5, dj, o])
        w6 = vsplat(plane, w[6, dj, o])
        p = q0 + dj * dil_w
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w0, a0, e0)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w1, a0, e0)
        a1, e1 = _fma2(v, u, w0, a1, e1)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w2, a0, e0)
        a1, e1 = _fma2(v, u, w1, a1, e1)
        a2, e2 = _fma2(v, u, w0, a2, e2)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w3, a0, e0)
        a1, e1 = _fma2(v, u, w2, a1, e1)
        a2, e2 = _fma2(v, u, w1, a2, e2)
        a3, e3 = _fma2(v, u, w0, a3, e3)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w4, a0, e0)
        a1, e1 = _fma2(v, u, w3, a1, e1)
        a2, e2 = _fma2(v, u, w2, a2, e2)
        a3, e3 = _fma2(v, u, w1, a3, e3)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w5, a0, e0)
        a1, e1 = _fma2(v, u, w4, a1, e1)
        a2, e2 = _fma2(v, u, w3, a2, e2)
        a3, e3 = _fma2(v, u, w2, a3, e3)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w6, a0, e0)
        a1, e1 = _fma2(v, u, w5, a1, e1)
        a2, e2 = _fma2(v, u, w4, a2, e2)
        a3, e3 = _fma2(v, u, w3, a3, e3)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a1, e1 = _fma2(v, u, w6, a1, e1)
        a2, e2 = _fma2(v, u, w5, a2, e2)
        a3, e3 = _fma2(v, u, w4, a3, e3)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a2, e2 = _fma2(v, u, w6, a2, e2)
        a3, e3 = _fma2(v, u, w5, a3, e3)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a3, e3 = _fma2(v, u, w6, a3, e3)
    return a0, a1, a2, a3, e0, e1, e2, e3


@kernel(inline=True)
def _seven_rows_into4_s2_body(plane, w, o, q0, cols, dil_w, stride_w, kw):
    """:func:`_seven_rows_into4_body` at vertical stride 2: the four output rows read thirteen input rows."""
    count = lanes(plane)
    a0 = a1 = a2 = a3 = e0 = e1 = e2 = e3 = vzeros(plane)
    far = count * stride_w
    for dj in range(kw):
        w0, w1, w2 = vsplat(plane, w[0, dj, o]), vsplat(plane, w[1, dj, o]), vsplat(plane, w[2, dj, o])
        w3, w4, w5 = vsplat(plane, w[3, dj, o]), vsplat(plane, w[4, dj, o]), vsplat(plane, w[5, dj, o])
        w6 = vsplat(plane, w[6, dj, o])
        p = q0 + dj * dil_w
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w0, a0, e0)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w1, a0, e0)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w2, a0, e0)
        a1, e1 = _fma2(v, u, w0, a1, e1)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w3, a0, e0)
        a1, e1 = _fma2(v, u, w1, a1, e1)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w4, a0, e0)
        a1, e1 = _fma2(v, u, w2, a1, e1)
        a2, e2 = _fma2(v, u, w0, a2, e2)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w5, a0, e0)
        a1, e1 = _fma2(v, u, w3, a1, e1)
        a2, e2 = _fma2(v, u, w1, a2, e2)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w6, a0, e0)
        a1, e1 = _fma2(v, u, w4, a1, e1)
        a2, e2 = _fma2(v, u, w2, a2, e2)
        a3, e3 = _fma2(v, u, w0, a3, e3)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a1, e1 = _fma2(v, u, w5, a1, e1)
        a2, e2 = _fma2(v, u, w3, a2, e2)
        a3, e3 = _fma2(v, u, w1, a3, e3)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a1, e1 = _fma2(v, u, w6, a1, e1)
        a2, e2 = _fma2(v, u, w4, a2, e2)
        a3, e3 = _fma2(v, u, w2, a3, e3)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a2, e2 = _fma2(v, u, w5, a2, e2)
        a3, e3 = _fma2(v, u, w3, a3, e3)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a2, e2 = _fma2(v, u, w6, a2, e2)
        a3, e3 = _fma2(v, u, w4, a3, e3)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a3, e3 = _fma2(v, u, w5, a3, e3)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a3, e3 = _fma2(v, u, w6, a3, e3)
    return a0, a1, a2, a3, e0, e1, e2, e3


@kernel
def _seven_rows_into4(plane, w, o, q0, cols, dil_w, stride_w, kw):
    """:func:`_seven_rows_into4_body`, compiled on its own, once per dtype (inlined in each compiled variant of the forward,
    it doubled the forward kernel's compile time), with the horizontal stride known in each branch."""
    if stride_w == 1:
        return _seven_rows_into4_body(plane, w, o, q0, cols, dil_w, 1, kw)
    return _seven_rows_into4_body(plane, w, o, q0, cols, dil_w, 2, kw)


@kernel
def _seven_rows_into4_s2(plane, w, o, q0, cols, dil_w, stride_w, kw):
    """:func:`_seven_rows_into4_s2_body`, compiled on its own, once per dtype (inlined in each compiled variant of the forward,
    it doubled the forward kernel's compile time), with the horizontal stride known in each branch."""
    if stride_w == 1:
        return _seven_rows_into4_s2_body(plane, w, o, q0, cols, dil_w, 1, kw)
    return _seven_rows_into4_s2_body(plane, w, o, q0, cols, dil_w, 2, kw)


@kernel(inline=True)
def _column5(plane, w, o, dj):
    """The five weights of filter column ``dj`` of output channel ``o``, each in every lane."""
    return (vsplat(plane, w[0, dj, o]), vsplat(plane, w[1, dj, o]), vsplat(plane, w[2, dj, o]),
            vsplat(plane, w[3, dj, o]), vsplat(plane, w[4, dj, o]))


@kernel(inline=True)
def _five_rows_into4_body(plane, w, o, q0, cols, dil_w, stride_w, kw):
    """As :func:`_seven_rows_into4_body`, a 5x5 filter: the four output rows read eight input rows."""
    count = lanes(plane)
    a0 = a1 = a2 = a3 = e0 = e1 = e2 = e3 = vzeros(plane)
    far = count * stride_w
    for dj in range(kw):
        w0, w1, w2, w3, w4 = _column5(plane, w, o, dj)
        p = q0 + dj * dil_w
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w0, a0, e0)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w1, a0, e0)
        a1, e1 = _fma2(v, u, w0, a1, e1)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w2, a0, e0)
        a1, e1 = _fma2(v, u, w1, a1, e1)
        a2, e2 = _fma2(v, u, w0, a2, e2)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w3, a0, e0)
        a1, e1 = _fma2(v, u, w2, a1, e1)
        a2, e2 = _fma2(v, u, w1, a2, e2)
        a3, e3 = _fma2(v, u, w0, a3, e3)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a0, e0 = _fma2(v, u, w4, a0, e0)
        a1, e1 = _fma2(v, u, w3, a1, e1)
        a2, e2 = _fma2(v, u, w2, a2, e2)
        a3, e3 = _fma2(v, u, w1, a3, e3)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a1, e1 = _fma2(v, u, w4, a1, e1)
        a2, e2 = _fma2(v, u, w3, a2, e2)
        a3, e3 = _fma2(v, u, w2, a3, e3)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a2, e2 = _fma2(v, u, w4, a2, e2)
        a3, e3 = _fma2(v, u, w3, a3, e3)
        p += cols
        v, u = _plane_vector(plane, p, stride_w), _plane_vector(plane, p + far, stride_w)
        a3, e3 = _fma2(v, u, w4, a3, e3)
    return a0, a1, a2, a3, e0, e1, e2, e3


@kernel
def _five_rows_into4(plane, w, o, q0, cols, dil_w, stride_w, kw):
    """:func:`_five_rows_into4_body`, compiled on its own (see :func:`_seven_rows_into4`)."""
    if stride_w == 1:
        return _five_rows_into4_body(plane, w, o, q0, cols, dil_w, 1, kw)
    return _five_rows_into4_body(plane, w, o, q0, cols, dil_w, 2, kw)


@kernel(inline=True)  # inlined where it is called, so a call with constant strides is compiled for them
def _forward_plane_3x3(plane, w, out, b, o, stride_h, stride_w, dil_h, dil_w):
    """:func:`_forward_plane` for a 3x3 filter at horizontal stride 1 or 2: the nine weights in registers, three
    short chains of multiply-adds per vector."""
    out_h, out_w = out.shape[2], out.shape[3]
    count = lanes(plane)
    w0, w1, w2 = vsplat(plane, w[0, 0, o]), vsplat(plane, w[0, 1, o]), vsplat(plane, w[0, 2, o])
    w3, w4, w5 = vsplat(plane, w[1, 0, o]), vsplat(plane, w[1, 1, o]), vsplat(plane, w[1, 2, o])
    w6, w7, w8 = vsplat(plane, w[2, 0, o]), vsplat(plane, w[2, 1, o]), vsplat(plane, w[2, 2, o])
    cols, gap = plane.shape[1], dil_h * plane.shape[1]
    for i in range(out_h):  # flat indices: a row view made in this loop costs atomic reference counting
        o_row = ((b * out.shape[1] + o) * out_h + i) * out_w
        for j in range(0, out_w, count):
            q = i * stride_h * cols + j * stride_w
            a = vfma(_plane_vector(plane, q + 2 * dil_w, stride_w), w2,
                     vfma(_plane_vector(plane, q + dil_w, stride_w), w1, vmul(_plane_vector(plane, q, stride_w), w0)))
            q += gap
            c = vfma(_plane_vector(plane, q + 2 * dil_w, stride_w), w5,
                     vfma(_plane_vector(plane, q + dil_w, stride_w), w4, vmul(_plane_vector(plane, q, stride_w), w3)))
            q += gap
            e = vfma(_plane_vector(plane, q + 2 * dil_w, stride_w), w8,
                     vfma(_plane_vector(plane, q + dil_w, stride_w), w7, vmul(_plane_vector(plane, q, stride_w), w6)))
            vstore_n(out, o_row + j, vadd(vadd(a, c), e), min(count, out_w - j))


@kernel
def _forward_plane(plane, w, out, b, o, stride_h, stride_w, dil_h, dil_w):
    """``out[b, o, i, j] = sum_{di, dj} plane[i*s_h + di*d_h, j*s_w + dj*d_w] * w[di, dj, o]``: every tap is
    inside the window ``plane`` (see :func:`_window_plane`), so every output pixel takes the same loop.

    With a horizontal stride of 1 or 2, SIMD along the row: a vector of neighbouring outputs per
    tap and per window row (stride 2 reads every other column, :func:`~sepconv.kernels._simd.vload_even`),
    the last vector of a row stored masked; the window has ``3 * LANES`` spare zero columns, so
    no load leaves it.  Other strides: tap by tap along the row."""
    out_h, out_w = out.shape[2], out.shape[3]
    kh, kw = w.shape[0], w.shape[1]
    count = lanes(plane)
    planes_out = out[b, o]
    if kh == 5 and kw == 5 and stride_w <= 2:
        # the 25 weights in registers, flat indices.  One process, 2 threads, 30 alternating runs, us, the
        # tap-by-tap loop below (then with row views and a weight load per tap) -> this: 8x480x14x14 678 -> 457,
        # 1x320x65x65 dilation 2 1614 -> 942, 1x64x147x147 1119 -> 665, 1x96x112x112 stride 2 436 -> 335,
        # 1x240x28x28 154 -> 90 (PyTorch's NCHW depthwise: 490, 915, 918 on the first three).  The five rows'
        # sums are added apart (vadd_apart: fast-math folded them into one chain of 25 dependent multiply-adds),
        # and at stride and dilation 1 four output rows share each input row's loads (unaligned loads: ~1.5x the
        # cost of aligned ones here); from the above, us: 8x480x14x14 383 -> 329, 1x320x65x65 dilation 2 888
        # -> 613, 1x64x147x147 532 -> 512, 1x240x28x28 73 -> 64, 1x960x7x7 58 -> 48.
        cols, gap = plane.shape[1], dil_h * plane.shape[1]
        wr0 = _weights_row5(plane, w, 0, o)
        wr1 = _weights_row5(plane, w, 1, o)
        wr2 = _weights_row5(plane, w, 2, o)
        wr3 = _weights_row5(plane, w, 3, o)
        wr4 = _weights_row5(plane, w, 4, o)
        z = vzeros(plane)
        first = 0  # the first output row left for the one-row loop (the four stores below are written out: a
        # shared inline routine for them made this path 1.07-1.3x slower, as compiled)
        if stride_h == 1 and dil_h == 1:  # four output rows at a time: each input row loaded once for them all
            for i in range(0, out_h - 3, 4):
                o_row = ((b * out.shape[1] + o) * out_h + i) * out_w
                j = 0
                # two vectors: eight chains in flight (_five_rows_into4, compiled on its own; old and new processes
                # alternating, us: 1x64x112x112 273-275 -> 237-247, 1x64x147x147 515-546 -> 427-455,
                # 1x144x56x56 146-151 -> 129-132; rows of one vector unchanged)
                while j + count < out_w:
                    a0, a1, a2, a3, e0, e1, e2, e3 = _five_rows_into4(plane, w, o, i * cols + j * stride_w, cols,
                                                                      dil_w, stride_w, kw)
                    vstore_n(out, o_row + j, a0, count)
                    vstore_n(out, o_row + out_w + j, a1, count)
                    vstore_n(out, o_row + 2 * out_w + j, a2, count)
                    vstore_n(out, o_row + 3 * out_w + j, a3, count)
                    n = min(count, out_w - j - count)
                    vstore_n(out, o_row + j + count, e0, n)
                    vstore_n(out, o_row + out_w + j + count, e1, n)
                    vstore_n(out, o_row + 2 * out_w + j + count, e2, n)
                    vstore_n(out, o_row + 3 * out_w + j + count, e3, n)
                    j += 2 * count
                rest = j
                for j in range(rest, out_w, count):
                    q = i * cols + j * stride_w
                    a0 = _row5_into(plane, q, dil_w, stride_w, wr0, z)
                    q += cols
                    a0, a1 = _row5_into2(plane, q, dil_w, stride_w, wr1, a0, wr0, z)
                    q += cols
                    a0, a1 = _row5_into2(plane, q, dil_w, stride_w, wr2, a0, wr1, a1)
                    a2 = _row5_into(plane, q, dil_w, stride_w, wr0, z)
                    q += cols
                    a0, a1 = _row5_into2(plane, q, dil_w, stride_w, wr3, a0, wr2, a1)
                    a2, a3 = _row5_into2(plane, q, dil_w, stride_w, wr1, a2, wr0, z)
                    q += cols
                    a0, a1 = _row5_into2(plane, q, dil_w, stride_w, wr4, a0, wr3, a1)
                    a2, a3 = _row5_into2(plane, q, dil_w, stride_w, wr2, a2, wr1, a3)
                    q += cols
                    a1, a2 = _row5_into2(plane, q, dil_w, stride_w, wr4, a1, wr3, a2)
                    a3 = _row5_into(plane, q, dil_w, stride_w, wr2, a3)
                    q += cols
                    a2, a3 = _row5_into2(plane, q, dil_w, stride_w, wr4, a2, wr3, a3)
                    q += cols
                    a3 = _row5_into(plane, q, dil_w, stride_w, wr4, a3)
                    n = min(count, out_w - j)
                    vstore_n(out, o_row + j, a0, n)
                    vstore_n(out, o_row + out_w + j, a1, n)
                    vstore_n(out, o_row + 2 * out_w + j, a2, n)
                    vstore_n(out, o_row + 3 * out_w + j, a3, n)
            first = out_h // 4 * 4
        for i in range(first, out_h):
            o_row = ((b * out.shape[1] + o) * out_h + i) * out_w
            for j in range(0, out_w, count):
                q = i * stride_h * cols + j * stride_w
                s0 = _row5_into(plane, q, dil_w, stride_w, wr0, z)
                s1 = _row5_into(plane, q + gap, dil_w, stride_w, wr1, z)
                s2 = _row5_into(plane, q + 2 * gap, dil_w, stride_w, wr2, z)
                s3 = _row5_into(plane, q + 3 * gap, dil_w, stride_w, wr3, z)
                s4 = _row5_into(plane, q + 4 * gap, dil_w, stride_w, wr4, z)
                vstore_n(out, o_row + j, vadd_apart(vadd_apart(vadd_apart(s0, s1), vadd_apart(s2, s3)), s4),
                         min(count, out_w - j))
        return
    if stride_w <= 2:  # tap by tap, flat indices (row views here cost atomic reference counting: 7x7 0.94x the time)
        cols = plane.shape[1]
        down = stride_h * cols
        # four output rows per step: four independent sums per weight broadcast (A/B, 2 threads, us: 1x96x56x56
        # 7x7 371 -> 262, 1x32x112x112 7x7 431 -> 313, 1x96x112x112 7x7 stride 2 658 -> 530, 1x64x33x33 9x9
        # 186 -> 121, 1x64x56x56 4x4 98 -> 61)
        # 7x7 filters at vertical stride 1 or 2 and dilation 1, rows of two vectors or more: four rows by two
        # vectors per step, eight chains of multiply-adds in flight instead of four, each input row loaded once
        # for the four output rows (_seven_rows_into4; one process, 2 threads, alternating, us: 1x96x56x56 297
        # -> 149, 1x144x56x56 461 -> 231, 4x48x69x69 891 -> 584, 1x32x112x112 362 -> 211, 1x96x112x112 stride
        # 2 590 -> 353; the NHWC kernels' times, where the tap-by-tap loop took twice them).  Two vectors per
        # step for the other sizes too (9x9 81 -> 70 us, 4x4 66 -> 59) and the 5x5 path's rows in the same
        # form at stride 2 (1x96x112x112 311-322 -> 232-267) were measured but not kept: with them inlined in the
        # forward's three compiled variants, its compile took 2-4 minutes and 10 GB (45 s before, 67 s now; the 5x5
        # path's stride-1 rows call _five_rows_into4, compiled on its own).
        for i in range(0, out_h - 3, 4):
            o_row = ((b * out.shape[1] + o) * out_h + i) * out_w
            j = 0
            while j + count < out_w and kh == 7 and stride_h <= 2 and dil_h == 1:  # each input row loaded once
                if stride_h == 1:
                    a0, a1, a2, a3, e0, e1, e2, e3 = _seven_rows_into4(plane, w, o, i * down + j * stride_w, cols,
                                                                       dil_w, stride_w, kw)
                else:
                    a0, a1, a2, a3, e0, e1, e2, e3 = _seven_rows_into4_s2(plane, w, o, i * down + j * stride_w, cols,
                                                                          dil_w, stride_w, kw)
                vstore_n(out, o_row + j, a0, count)
                vstore_n(out, o_row + out_w + j, a1, count)
                vstore_n(out, o_row + 2 * out_w + j, a2, count)
                vstore_n(out, o_row + 3 * out_w + j, a3, count)
                n = min(count, out_w - j - count)
                vstore_n(out, o_row + j + count, e0, n)
                vstore_n(out, o_row + out_w + j + count, e1, n)
                vstore_n(out, o_row + 2 * out_w + j + count, e2, n)
                vstore_n(out, o_row + 3 * out_w + j + count, e3, n)
                j += 2 * count
            while j < out_w:  # the row's last vectors, one at a time
                q0 = i * down + j * stride_w
                a0 = a1 = a2 = a3 = vzeros(plane)
                for di in range(kh):
                    q = q0 + di * dil_h * cols
                    for dj in range(kw):
                        wv = vsplat(plane, w[di, dj, o])
                        p = q + dj * dil_w
                        a0 = vfma(_plane_vector(plane, p, stride_w), wv, a0)
                        a1 = vfma(_plane_vector(plane, p + down, stride_w), wv, a1)
                        a2 = vfma(_plane_vector(plane, p + 2 * down, stride_w), wv, a2)
                        a3 = vfma(_plane_vector(plane, p + 3 * down, stride_w), wv, a3)
                n = min(count, out_w - j)
                vstore_n(out, o_row + j, a0, n)
                vstore_n(out, o_row + out_w + j, a1, n)
                vstore_n(out, o_row + 2 * out_w + j, a2, n)
                vstore_n(out, o_row + 3 * out_w + j, a3, n)
                j += count
        for i in range(out_h // 4 * 4, out_h):
            o_row = ((b * out.shape[1] + o) * out_h + i) * out_w
            for j in range(0, out_w, count):
                q0 = i * stride_h * cols + j * stride_w
                acc = vzeros(plane)
                for di in range(kh):
                    q = q0 + di * dil_h * cols
                    for dj in range(kw):
                        acc = vfma(_plane_vector(plane, q + dj * dil_w, stride_w), vsplat(plane, w[di, dj, o]), acc)
                vstore_n(out, o_row + j, acc, min(count, out_w - j))
        return
    for i in range(out_h):
        r = i * stride_h
        orow = planes_out[i]
        for t in range(out_w):
            orow[t] = 0
        for di in range(kh):
            for dj in range(kw):
                wv = w[di, dj, o]
                xrow = plane[r + di * dil_h, dj * dil_w:]
                for t in range(out_w):
                    orow[t] += xrow[t * stride_w] * wv


@kernel(inline=True)
def _accumulate_row5(plane, q, dil_w, stride_w, d, acc):
    """``acc[t] + plane[q + t * dil_w, ...] * d`` for the five taps of one filter row."""
    return (vfma(_plane_vector(plane, q, stride_w), d, acc[0]),
            vfma(_plane_vector(plane, q + dil_w, stride_w), d, acc[1]),
            vfma(_plane_vector(plane, q + 2 * dil_w, stride_w), d, acc[2]),
            vfma(_plane_vector(plane, q + 3 * dil_w, stride_w), d, acc[3]),
            vfma(_plane_vector(plane, q + 4 * dil_w, stride_w), d, acc[4]))


@kernel
def _filter_gradient_plane(plane, dy, dw, b, o, stride_h, stride_w, dil_h, dil_w):
    """Add to ``dw[:, :, o]`` the filter gradient of one plane: ``sum_{i, j} plane[i*s_h + di*d_h, j*s_w + dj*d_w]
    * dy[b, o, i, j]``, one tap at a time over the plane (in cache), SIMD along the rows for
    strides 1 and 2 (the masked last vector of a ``dy`` row reads zeros), two accumulators."""
    out_h, out_w = dy.shape[2], dy.shape[3]
    kh, kw = dw.shape[0], dw.shape[1]
    count = lanes(plane)
    g = dy[b, o]
    if kh == 3 and kw == 3 and stride_w <= 2:  # nine sums in registers over the whole plane
        z = vzeros(plane)
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = z
        cols, gap = plane.shape[1], dil_h * plane.shape[1]
        for i in range(out_h):  # flat indices, as in the forward
            g_row = ((b * dy.shape[1] + o) * out_h + i) * out_w
            for j in range(0, out_w, count):
                q = i * stride_h * cols + j * stride_w
                d = vload_n(dy, g_row + j, min(count, out_w - j))
                a0 = vfma(_plane_vector(plane, q, stride_w), d, a0)
                a1 = vfma(_plane_vector(plane, q + dil_w, stride_w), d, a1)
                a2 = vfma(_plane_vector(plane, q + 2 * dil_w, stride_w), d, a2)
                a3 = vfma(_plane_vector(plane, q + gap, stride_w), d, a3)
                a4 = vfma(_plane_vector(plane, q + gap + dil_w, stride_w), d, a4)
                a5 = vfma(_plane_vector(plane, q + gap + 2 * dil_w, stride_w), d, a5)
                a6 = vfma(_plane_vector(plane, q + 2 * gap, stride_w), d, a6)
                a7 = vfma(_plane_vector(plane, q + 2 * gap + dil_w, stride_w), d, a7)
                a8 = vfma(_plane_vector(plane, q + 2 * gap + 2 * dil_w, stride_w), d, a8)
        dw[0, 0, o] += vsum(a0)
        dw[0, 1, o] += vsum(a1)
        dw[0, 2, o] += vsum(a2)
        dw[1, 0, o] += vsum(a3)
        dw[1, 1, o] += vsum(a4)
        dw[1, 2, o] += vsum(a5)
        dw[2, 0, o] += vsum(a6)
        dw[2, 1, o] += vsum(a7)
        dw[2, 2, o] += vsum(a8)
        return
    if kh == 5 and kw == 5 and stride_w <= 2:
        # 25 sums in registers over the whole plane, as for 3x3.  One process, 2 threads, 30 alternating runs,
        # us, tap by tap (25 passes over the plane, with row views) -> this: 8x480x14x14 2031 -> 659,
        # 1x320x65x65 dilation 2 2210 -> 755, 1x64x147x147 2372 -> 692, 1x96x112x112 stride 2 693 -> 349
        z = vzeros(plane)
        r0 = r1 = r2 = r3 = r4 = (z, z, z, z, z)
        cols, gap = plane.shape[1], dil_h * plane.shape[1]
        for i in range(out_h):
            g_row = ((b * dy.shape[1] + o) * out_h + i) * out_w
            for j in range(0, out_w, count):
                q = i * stride_h * cols + j * stride_w
                d = vload_n(dy, g_row + j, min(count, out_w - j))
                r0 = _accumulate_row5(plane, q, dil_w, stride_w, d, r0)
                r1 = _accumulate_row5(plane, q + gap, dil_w, stride_w, d, r1)
                r2 = _accumulate_row5(plane, q + 2 * gap, dil_w, stride_w, d, r2)
                r3 = _accumulate_row5(plane, q + 3 * gap, dil_w, stride_w, d, r3)
                r4 = _accumulate_row5(plane, q + 4 * gap, dil_w, stride_w, d, r4)
        for dj in range(5):
            dw[0, dj, o] += vsum(r0[dj])
            dw[1, dj, o] += vsum(r1[dj])
            dw[2, dj, o] += vsum(r2[dj])
            dw[3, dj, o] += vsum(r3[dj])
            dw[4, dj, o] += vsum(r4[dj])
        return
    cols = plane.shape[1]
    if kw == 7 and stride_w <= 2:
        # a filter row's seven sums in registers, one pass over the plane per filter row, each dy vector loaded
        # once for the seven (2 threads, old and new processes alternating, us, tap by tap -> this: 1x96x56x56
        # 464-528 -> 251-260, 4x48x69x69 2269-2487 -> 950-976, 1x96x112x112 stride 2 934-1031 -> 589-637)
        for di in range(kh):
            s0 = s1 = s2 = s3 = s4 = s5 = s6 = vzeros(plane)
            for i in range(out_h):
                q = (i * stride_h + di * dil_h) * cols
                g_row = ((b * dy.shape[1] + o) * out_h + i) * out_w
                for j in range(0, out_w, count):
                    d = vload_n(dy, g_row + j, min(count, out_w - j))
                    p = q + j * stride_w
                    s0 = vfma(_plane_vector(plane, p, stride_w), d, s0)
                    s1 = vfma(_plane_vector(plane, p + dil_w, stride_w), d, s1)
                    s2 = vfma(_plane_vector(plane, p + 2 * dil_w, stride_w), d, s2)
                    s3 = vfma(_plane_vector(plane, p + 3 * dil_w, stride_w), d, s3)
                    s4 = vfma(_plane_vector(plane, p + 4 * dil_w, stride_w), d, s4)
                    s5 = vfma(_plane_vector(plane, p + 5 * dil_w, stride_w), d, s5)
                    s6 = vfma(_plane_vector(plane, p + 6 * dil_w, stride_w), d, s6)
            dw[di, 0, o] += vsum(s0)
            dw[di, 1, o] += vsum(s1)
            dw[di, 2, o] += vsum(s2)
            dw[di, 3, o] += vsum(s3)
            dw[di, 4, o] += vsum(s4)
            dw[di, 5, o] += vsum(s5)
            dw[di, 6, o] += vsum(s6)
        return
    for di in range(kh):
        for dj in range(kw):
            if stride_w <= 2:  # flat indices: row views here cost atomic reference counting
                even = odd = vzeros(plane)
                for i in range(out_h):
                    q = (i * stride_h + di * dil_h) * cols + dj * dil_w
                    g_row = ((b * dy.shape[1] + o) * out_h + i) * out_w
                    for j in range(0, out_w, count):
                        v = vfma(_plane_vector(plane, q + j * stride_w, stride_w),
                                 vload_n(dy, g_row + j, min(count, out_w - j)), vzeros(plane))
                        if (j // count) % 2 == 0:
                            even = vadd(even, v)
                        else:
                            odd = vadd(odd, v)
                dw[di, dj, o] += vsum(vadd(even, odd))
            else:
                total = 0.0
                for i in range(out_h):
                    prow = plane[i * stride_h + di * dil_h, dj * dil_w:]
                    grow = g[i]
                    for j in range(out_w):
                        total += prow[j * stride_w] * grow[j]
                dw[di, dj, o] += total


@kernel
def _window_buffer(x, out_h, out_w, kh, kw, stride_h, stride_w, dil_h, dil_w):
    """The window buffer of one input plane for ``out_h x out_w`` outputs of a ``kh x kw`` filter, with
    ``3 * LANES`` spare columns so that whole vectors stay inside (zeroed by :func:`_window_plane`); on a cache
    line, its rows whole vectors apart, so that a row's vectors at its first column are whole lines."""
    count = lanes(x)
    rows = (out_h - 1) * stride_h + (kh - 1) * dil_h + 1
    cols = -(-((out_w - 1) * stride_w + (kw - 1) * dil_w + 1 + 3 * count) // count) * count
    return empty_on_line(rows * cols, x).reshape((rows, cols))


@kernel
def depthwise_nchw_forward_range(x, w, out, multiplier, begin, end, stride_h, stride_w, dil_h, dil_w, pad_top,
                                 pad_left):
    """Forward for the output planes ``p = b * C*M + o`` in ``[begin, end)``.  Each input plane is first
    copied, with its zero padding, into a window buffer of this call's own (a few KB, in cache),
    once for the ``M`` output planes that read it."""
    x, w, out = borrowed(x), borrowed(w), borrowed(out)
    channels = out.shape[1]
    plane = _window_buffer(x, out.shape[2], out.shape[3], w.shape[0], w.shape[1], stride_h, stride_w, dil_h, dil_w)
    kh3 = w.shape[0] == 3 and w.shape[1] == 3 and stride_w <= 2
    last = -1
    for p in range(begin, end):
        b = p // channels
        o = p - b * channels
        source = b * x.shape[1] + o // multiplier
        if source != last:
            _window_plane(x, b, o // multiplier, plane, pad_top, pad_left, last == -1)
            last = source
        # 3x3 filters: the common cases compiled with their strides and dilations known (A/B, 2 threads, stride 1:
        # 1x384x14x14 73 -> 55 us, 8x192x28x28 503 -> 463, 8x144x56x56 1285 -> 1234).  The other sizes' routine is
        # compiled once, for any strides: three copies of it made this kernel's compile 120 s (27 s now; two, 83
        # s), for 6-28% of their time (one process, 2 threads, us, three copies -> one: 1x64x147x147 5x5 823 ->
        # 881, 8x480x14x14 5x5 462 -> 537, 1x96x56x56 7x7 220 -> 269, 1x64x33x33 9x9 167 -> 213)
        if kh3 and stride_w == 1 and dil_h == 1 and dil_w == 1:
            _forward_plane_3x3(plane, w, out, b, o, stride_h, 1, 1, 1)
        elif kh3 and stride_w == 2 and dil_h == 1 and dil_w == 1:
            _forward_plane_3x3(plane, w, out, b, o, stride_h, 2, 1, 1)
        elif kh3:
            _forward_plane_3x3(plane, w, out, b, o, stride_h, stride_w, dil_h, dil_w)
        else:
            _forward_plane(plane, w, out, b, o, stride_h, stride_w, dil_h, dil_w)


@kernel(parallel=True)
def depthwise_nchw_forward_parallel(x, w, out, multiplier, n_chunks, stride_h, stride_w, dil_h, dil_w, pad_top,
                                    pad_left):
    planes = out.shape[0] * out.shape[1]
    for t in prange(n_chunks):
        depthwise_nchw_forward_range(x, w, out, multiplier, t * planes // n_chunks, (t + 1) * planes // n_chunks,
                                     stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)


@kernel
def depthwise_nchw_backprop_filter_range(x, dy, dw, multiplier, begin, end, stride_h, stride_w, dil_h, dil_w, pad_top,
                                         pad_left):
    """Filter gradient of the ``dy`` planes ``p = b * C*M + o`` in ``[begin, end)``, *added* to ``dw``
    ``[kh, kw, C*M]``; each input plane is copied with its padding into a window buffer once for
    the ``M`` planes that read it (as in the forward)."""
    x, dy, dw = borrowed(x), borrowed(dy), borrowed(dw)
    channels = dy.shape[1]
    plane = _window_buffer(x, dy.shape[2], dy.shape[3], dw.shape[0], dw.shape[1], stride_h, stride_w, dil_h, dil_w)
    last = -1
    for p in range(begin, end):
        b = p // channels
        o = p - b * channels
        source = b * x.shape[1] + o // multiplier
        if source != last:
            _window_plane(x, b, o // multiplier, plane, pad_top, pad_left, last == -1)
            last = source
        _filter_gradient_plane(plane, dy, dw, b, o, stride_h, stride_w, dil_h, dil_w)


@kernel(parallel=True)
def depthwise_nchw_backprop_filter_parallel(x, dy, partial, multiplier, stride_h, stride_w, dil_h, dil_w, pad_top,
                                            pad_left):
    """Filter gradient: block ``t`` of the ``dy`` planes is summed into ``partial[t]`` (zeroed by the caller)."""
    n_chunks = partial.shape[0]
    planes = dy.shape[0] * dy.shape[1]
    for t in prange(n_chunks):
        depthwise_nchw_backprop_filter_range(x, dy, partial[t], multiplier, t * planes // n_chunks,
                                             (t + 1) * planes // n_chunks, stride_h, stride_w, dil_h, dil_w, pad_top,
                                             pad_left)


@kernel
def _backprop_input_s2_plane(window, w, dx, row, b, o, pad_top, pad_left, win_top, win_left):
    """Input gradient of one plane for strides 2 (dilation 1), any filter: ``dx[b, o]`` from ``window``,
    the ``dy`` plane with ``win_top`` zero rows above and ``win_left`` zero columns to its left.

    By parity, as the NHWC kernel: ``dx`` row ``y`` takes the filter rows ``di`` with ``y + pad_top - di``
    even (``dy`` row ``(y + pad_top - di) / 2``); along the row, the columns ``u = x + pad_left`` come
    in pairs ``u = 2m`` (filter columns ``dj`` even, ``dy`` columns ``m - dj / 2``) and ``2m + 1``
    (``dj`` odd, ``m - (dj - 1) / 2``): a vector of ``m`` for each, interleaved into ``row`` (scratch,
    indexed by ``u - 2 * m0``), then copied into ``dx``."""
    in_h, in_w = dx.shape[2], dx.shape[3]
    out_h = window.shape[0] - win_top - 1
    kh, kw = w.shape[0], w.shape[1]
    count = lanes(window)
    m0 = pad_left // 2
    m1 = (pad_left + in_w - 1) // 2 + 1
    first = pad_left - 2 * m0  # row[x + first] is dx[.., x]
    target = dx[b, o]
    if kh == 3 and kw == 3:  # the nine weights in registers, the parity cases written out
        w00, w01, w02 = vsplat(window, w[0, 0, o]), vsplat(window, w[0, 1, o]), vsplat(window, w[0, 2, o])
        w10, w11, w12 = vsplat(window, w[1, 0, o]), vsplat(window, w[1, 1, o]), vsplat(window, w[1, 2, o])
        w20, w21, w22 = vsplat(window, w[2, 0, o]), vsplat(window, w[2, 1, o]), vsplat(window, w[2, 2, o])
        for y in range(in_h):
            t = y + pad_top
            if t % 2 == 0:  # filter rows 0 and 2: dy rows t/2 and t/2 - 1 (zero rows of the window outside dy)
                ra, rb = window[t // 2 + win_top], window[t // 2 - 1 + win_top]
                for m in range(m0, m1, count):
                    q = m + win_left
                    a0, a1, b0, b1 = vload(ra, q), vload(ra, q - 1), vload(rb, q), vload(rb, q - 1)
                    even = vfma(b1, w22, vfma(b0, w20, vfma(a1, w02, vmul(a0, w00))))
                    vstore_interleaved(row, 2 * (m - m0), even, vfma(b0, w21, vmul(a0, w01)))
            else:  # filter row 1: dy row (t - 1) / 2
                ra = window[(t - 1) // 2 + win_top]
                for m in range(m0, m1, count):
                    q = m + win_left
                    a0, a1 = vload(ra, q), vload(ra, q - 1)
                    vstore_interleaved(row, 2 * (m - m0), vfma(a1, w12, vmul(a0, w10)), vmul(a0, w11))
            drow = target[y]
            for x in range(0, in_w, count):
                n = min(count, in_w - x)
                vstore_n(drow, x, vload_n(row, x + first, n), n)
        return
    for y in range(in_h):
        t = y + pad_top
        for m in range(m0, m1, count):
            even = odd = vzeros(window)
            for di in range(t % 2, kh, 2):
                i = (t - di) // 2
                if i < 0 or i >= out_h:
                    continue
                wrow = window[i + win_top]
                for dj in range(kw):
                    v = vsplat(window, w[di, dj, o])
                    if dj % 2 == 0:
                        even = vfma(vload(wrow, m - dj // 2 + win_left), v, even)
                    else:
                        odd = vfma(vload(wrow, m - (dj - 1) // 2 + win_left), v, odd)
            vstore_interleaved(row, 2 * (m - m0), even, odd)
        drow = target[y]
        for x in range(0, in_w, count):
            n = min(count, in_w - x)
            vstore_n(drow, x, vload_n(row, x + first, n), n)


@kernel
def depthwise_nchw_backprop_input_s2_range(w, dy, dx, begin, end, pad_top, pad_left):
    """Input gradient for strides 2 (dilation 1) of the planes ``p = b * C' + o`` in ``[begin, end)``
    (``C'`` = ``dy``'s channels, multiplier 1: the caller sums a multiplier's planes)."""
    w, dy, dx = borrowed(w), borrowed(dy), borrowed(dx)
    channels = dy.shape[1]
    kh, kw = w.shape[0], w.shape[1]
    count = lanes(dy)
    win_top, win_left = kh // 2 + 1, kw // 2 + 1
    cols = -(-(dy.shape[3] + win_left + 2 * count + 2) // count) * count
    window = empty_on_line((dy.shape[2] + win_top + 1) * cols, dy).reshape((dy.shape[2] + win_top + 1, cols))
    row = empty_on_line(dx.shape[3] + 4 * count + 4, dy)
    for p in range(begin, end):
        b = p // channels
        o = p - b * channels
        _window_plane(dy, b, o, window, win_top, win_left, p == begin)
        _backprop_input_s2_plane(window, w, dx, row, b, o, pad_top, pad_left, win_top, win_left)


@kernel(parallel=True)
def depthwise_nchw_backprop_input_s2_parallel(w, dy, dx, n_chunks, pad_top, pad_left):
    """:func:`depthwise_nchw_backprop_input_s2_range` over all planes, in ``n_chunks`` parallel blocks."""
    planes = dy.shape[0] * dy.shape[1]
    for t in prange(n_chunks):
        depthwise_nchw_backprop_input_s2_range(w, dy, dx, t * planes // n_chunks, (t + 1) * planes // n_chunks,
                                               pad_top, pad_left)


@kernel(parallel=True)
def depthwise_nchw_backprop_parallel(x, w, flipped, dy, dx, partial, group, stride_h, stride_w, dil_h, dil_w, pad_top,
                                     pad_left):
    """Both gradients (multiplier 1) at stride 1 (any dilation) or 2 (dilation 1): thread ``t`` takes a
    contiguous run of planes, ``group`` planes at a time, and computes a group's input gradient, then its
    filter gradient (added to ``partial[t]``, zeroed by the caller), while the group's ``dy`` planes are
    still in this core's cache.  ``flipped`` is ``w`` rotated by 180 degrees (the stride-1 input gradient
    is its forward correlation with ``dy``, with pads ``(k - 1) * dilation - pad``)."""
    n_threads = partial.shape[0]
    planes = dy.shape[0] * dy.shape[1]
    kh, kw = w.shape[0], w.shape[1]
    for t in prange(n_threads):
        end = (t + 1) * planes // n_threads
        for begin in range(t * planes // n_threads, end, group):
            stop = min(end, begin + group)
            if stride_h == 1 and stride_w == 1:
                depthwise_nchw_forward_range(dy, flipped, dx, 1, begin, stop, 1, 1, dil_h, dil_w,
                                             (kh - 1) * dil_h - pad_top, (kw - 1) * dil_w - pad_left)
            else:
                depthwise_nchw_backprop_input_s2_range(w, dy, dx, begin, stop, pad_top, pad_left)
            depthwise_nchw_backprop_filter_range(x, dy, partial[t], 1, begin, stop, stride_h, stride_w, dil_h, dil_w,
                                                 pad_top, pad_left)
