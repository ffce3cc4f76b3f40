"""Depthwise convolution kernels, NCHW: the forward op (and through it the stride-1 input gradient).

In NCHW every channel is a plane ``[H, W]`` of its own, and a depthwise convolution is an
independent 2-D convolution per plane: output channel ``o = k*M + q`` reads input plane ``k``
with the weights ``w[:, :, o]``.  So these kernels work plane by plane, the width innermost
(contiguous, so it vectorizes), and never transpose.  Shapes::

    x     [N, C, in_h, in_w]        input
    w     [kh, kw, C * M]           filter, output channel k*M + q
    out   [N, C * M, out_h, out_w]  output (and ``dy``, the gradient of the output)

Each input plane is first copied into a small window buffer with its zero padding (a few KB,
in cache, one per call of a ``*_range`` kernel), so that every output pixel takes the same
vectorized loop; padded taps multiply zeros, as in TensorFlow.  The input gradient with stride
1 is the forward op on ``out_backprop`` with the flipped filter (``sepconv.fast.depthwise``).

Work is split over output planes ``p = b * C*M + o``: ``*_range`` does ``[begin, end)`` on the
calling thread, ``*_parallel`` cuts them into ``n_chunks`` blocks run by ``prange``.

The filter gradient has no NCHW kernel: per-row reductions over small planes measured slower
than transposing to NHWC and using its kernel (1x144x56x56: 3.2 vs 2.0 ms).

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

import numpy as np
from numba import prange

from ._jit import kernel


@kernel
def _window_plane(x, b, k, plane, pad_top, pad_left):
    """Copy input plane ``x[b, k]`` into ``plane``, the window the outputs read: ``plane[r, c] =
    x[b, k, r - pad_top, c - pad_left]``, zero outside the input (negative pads crop)."""
    in_h, in_w = x.shape[2], x.shape[3]
    rows, cols = plane.shape
    c_lo, c_hi = min(max(pad_left, 0), cols), min(max(pad_left + in_w, 0), cols)
    c_hi = max(c_lo, c_hi)
    for r in range(rows):
        ih = r - pad_top
        row = plane[r]
        if 0 <= ih < in_h:
            src = x[b, k, ih, c_lo - pad_left:]
            for c in range(c_lo):
                row[c] = 0
            dst = row[c_lo:]
            for t in range(c_hi - c_lo):
                dst[t] = src[t]
            for c in range(c_hi, cols):
                row[c] = 0
        else:
            for c in range(cols):
                row[c] = 0


@kernel
def _forward_plane(plane, w, out, b, o, stride_h, stride_w, dil_h, dil_w):
    """``out[b, o, i, j] = sum_{di, dj} plane[i*s_h + di*d_h, j*s_w + dj*d_w] * w[di, dj, o]``: every tap is
    inside the window ``plane`` (see :func:`_window_plane`), so every output pixel takes the same loop.

    Rows are views indexed from 0 by the loop variable plus constants, so Numba knows no index is
    negative (no wrap-around test) and the loop vectorizes."""
    out_h, out_w = out.shape[2], out.shape[3]
    kh, kw = w.shape[0], w.shape[1]
    for i in range(out_h):
        r = i * stride_h
        orow = out[b, o, i]
        if kh == 3 and kw == 3:  # the nine taps in one expression, one store
            w0, w1, w2 = w[0, 0, o], w[0, 1, o], w[0, 2, o]
            w3, w4, w5 = w[1, 0, o], w[1, 1, o], w[1, 2, o]
            w6, w7, w8 = w[2, 0, o], w[2, 1, o], w[2, 2, o]
            x0, x1, x2 = plane[r], plane[r + dil_h], plane[r + 2 * dil_h]
            if stride_w == 1 and dil_w == 1:
                for t in range(out_w):
                    orow[t] = (x0[t] * w0 + x0[t + 1] * w1 + x0[t + 2] * w2 + x1[t] * w3 + x1[t + 1] * w4
                               + x1[t + 2] * w5 + x2[t] * w6 + x2[t + 1] * w7 + x2[t + 2] * w8)
            elif stride_w == 2 and dil_w == 1:
                for t in range(out_w):
                    orow[t] = (x0[2 * t] * w0 + x0[2 * t + 1] * w1 + x0[2 * t + 2] * w2 + x1[2 * t] * w3
                               + x1[2 * t + 1] * w4 + x1[2 * t + 2] * w5 + x2[2 * t] * w6 + x2[2 * t + 1] * w7
                               + x2[2 * t + 2] * w8)
            else:
                for t in range(out_w):
                    a = t * stride_w
                    orow[t] = (x0[a] * w0 + x0[a + dil_w] * w1 + x0[a + 2 * dil_w] * w2 + x1[a] * w3
                               + x1[a + dil_w] * w4 + x1[a + 2 * dil_w] * w5 + x2[a] * w6 + x2[a + dil_w] * w7
                               + x2[a + 2 * dil_w] * w8)
        else:  # any other filter: tap by tap along the row
            for t in range(out_w):
                orow[t] = 0
            for di in range(kh):
                for dj in range(kw):
                    wv = w[di, dj, o]
                    xrow = plane[r + di * dil_h, dj * dil_w:]
                    for t in range(out_w):
                        orow[t] += xrow[t * stride_w] * wv


@kernel
def depthwise_nchw_forward_range(x, w, out, multiplier, begin, end, stride_h, stride_w, dil_h, dil_w, pad_top,
                                 pad_left):
    """Forward for the output planes ``p = b * C*M + o`` in ``[begin, end)``.  Each input plane is first
    copied, with its zero padding, into a window buffer of this call's own (a few KB, in cache),
    once for the ``M`` output planes that read it."""
    channels = out.shape[1]
    kh, kw = w.shape[0], w.shape[1]
    rows = (out.shape[2] - 1) * stride_h + (kh - 1) * dil_h + 1
    cols = (out.shape[3] - 1) * stride_w + (kw - 1) * dil_w + 1
    plane = np.empty((rows, cols), x.dtype)
    last = -1
    for p in range(begin, end):
        b = p // channels
        o = p - b * channels
        source = b * x.shape[1] + o // multiplier
        if source != last:
            _window_plane(x, b, o // multiplier, plane, pad_top, pad_left)
            last = source
        _forward_plane(plane, w, out, b, o, stride_h, stride_w, dil_h, dil_w)


@kernel(parallel=True)
def depthwise_nchw_forward_parallel(x, w, out, multiplier, n_chunks, stride_h, stride_w, dil_h, dil_w, pad_top,
                                    pad_left):
    planes = out.shape[0] * out.shape[1]
    for t in prange(n_chunks):
        depthwise_nchw_forward_range(x, w, out, multiplier, t * planes // n_chunks, (t + 1) * planes // n_chunks,
                                     stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)
