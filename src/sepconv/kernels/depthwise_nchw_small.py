"""The depthwise forward, filter gradient and stride-2 input gradient of NCHW inputs with small planes or rows (a 7x7
plane is fewer pixels than two vectors, so :mod:`sepconv.kernels.depthwise_nchw` would leave most lanes idle),
through NHWC, split by channels.

Each thread takes a range of whole channel vectors: it transposes them, image by image, into an NHWC buffer of
its own (:func:`~sepconv.kernels.layout.swap_last_axes_range`), runs the NHWC rows kernel the same layer would
take, and transposes its outputs back into the NCHW result.  Every line a thread reads was written by the same
thread.  The earlier route (a whole-array transpose, the NHWC op split by rows over the threads, a transpose back)
read half of each array from the other core's cache: one process, 2 threads, 1x960x7x7 5x5, the NHWC forward took
23 us alone and 49 us after the transpose.

``kind`` picks the rows kernel, as :mod:`sepconv.fast.depthwise` would for the NHWC layer: 0 the 3x3 kernel, 1 the
packed kernels, 2 the direct 5x5 kernel, 3 the general one.

Examples
--------
>>> import numpy as np
>>> x, w = np.ones((1, 3, 4, 4), np.float32), np.ones((3, 3, 3), np.float32)
>>> out = np.empty((1, 3, 4, 4), np.float32)
>>> buffers = np.empty((1, 48), np.float32), np.empty((1, 48), np.float32), np.empty((1, 27), np.float32)
>>> depthwise_nchw_small_forward_parallel(x, w, out, 1, 0, 1, 1, 1, 1, 1, 1, *buffers)
>>> out[0, 0]
array([[4., 6., 6., 4.],
       [6., 9., 9., 6.],
       [6., 9., 9., 6.],
       [4., 6., 6., 4.]], dtype=float32)
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._borrowed import borrowed
from ._jit import kernel
from ._simd import lanes
from .depthwise import (
    depthwise_nhwc_backprop_filter_any_rows,
    depthwise_nhwc_backprop_input_s2_any_rows,
    depthwise_nhwc_forward_3x3_rows,
    depthwise_nhwc_forward_any_rows,
)
from .depthwise_5x5_direct import depthwise_nhwc_forward_5x5_direct_rows, filter_blocks
from .depthwise_packed import depthwise_nhwc_forward_packed_rows
from .layout import swap_last_axes_range


@kernel
def _filter_channels(w, c0, c1, buffer):
    """The channels ``[c0, c1)`` of the filter ``w`` ``[kh, kw, C]``, laid out contiguously in ``buffer``."""
    kh, kw = w.shape[0], w.shape[1]
    wt = buffer[:kh * kw * (c1 - c0)].reshape((kh, kw, c1 - c0))
    for di in range(kh):
        for dj in range(kw):
            wt[di, dj] = w[di, dj, c0:c1]
    return wt


@kernel
def _channels_forward(x, w, out, c0, c1, kind, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, bx, by, bw):
    """Channels ``[c0, c1)`` of every image, image by image: into NHWC (in ``bx``), forward (into ``by``), back into
    ``out`` (NCHW); the filter's channels are laid out in ``bw``.  The buffers, the caller's, are reused from call to
    call: fresh ones of a few hundred KB were mapped anew by every call, and faulted in page by page."""
    x, w, out = borrowed(x), borrowed(w), borrowed(out)
    n, _, in_h, in_w = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    ct = c1 - c0
    count = lanes(x)
    xt = bx[:in_h * in_w * ct].reshape((1, in_h, in_w, ct))
    yt = by[:out_h * out_w * ct].reshape((1, out_h, out_w, ct))
    wt = _filter_channels(w, c0, c1, bw)
    wb = filter_blocks(xt, wt, 25) if kind == 2 else bw
    zero_row = np.zeros((in_w, ct), x.dtype)
    in_blocks = (ct + count - 1) // count
    out_blocks = (out_h * out_w + count - 1) // count
    for b in range(n):
        swap_last_axes_range(x[b, c0:c1].reshape((1, ct, in_h * in_w)), xt.reshape((1, in_h * in_w, ct)), 0,
                             in_blocks)
        if kind == 0:
            depthwise_nhwc_forward_3x3_rows(xt, wt, yt, zero_row, 0, out_h, stride_h, stride_w, dil_h, dil_w, pad_top,
                                            pad_left)
        elif kind == 1:
            depthwise_nhwc_forward_packed_rows(xt, wt, yt, 0, out_h, stride_h, stride_w, dil_h, dil_w, pad_top,
                                               pad_left)
        elif kind == 2:
            depthwise_nhwc_forward_5x5_direct_rows(xt, wb, yt, 0, out_h, stride_h, dil_h, dil_w, pad_top, pad_left)
        else:
            depthwise_nhwc_forward_any_rows(xt, wt, yt, zero_row, 0, out_h, stride_h, stride_w, dil_h, dil_w, pad_top,
                                            pad_left)
        swap_last_axes_range(yt.reshape((1, out_h * out_w, ct)), out[b, c0:c1].reshape((1, ct, out_h * out_w)), 0,
                             out_blocks)


@kernel(parallel=True)
def depthwise_nchw_small_forward_parallel(x, w, out, n_chunks, kind, stride_h, stride_w, dil_h, dil_w, pad_top,
                                          pad_left, buffers_x, buffers_y, buffers_w):
    """The forward of ``x`` ``[N, C, H, W]`` with ``w`` ``[kh, kw, C]`` into ``out`` ``[N, C, out_h, out_w]``, the
    channels cut into ``n_chunks`` ranges of whole vectors run in parallel (:func:`_channels_forward`), range ``t``
    in row ``t`` of each buffer (``buffers_x`` ``[n_chunks, >= in_h * in_w * channels]``, ``buffers_y`` likewise for
    one output image, ``buffers_w`` for the filter; channels: :func:`chunk_channels`)."""
    c = x.shape[1]
    for t in prange(n_chunks):
        c0, c1 = chunk_channels(c, lanes(x), n_chunks, t)
        if c1 > c0:
            _channels_forward(x, w, out, c0, c1, kind, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left,
                              buffers_x[t], buffers_y[t], buffers_w[t])


@kernel
def _channels_filter_gradient(x, dy, dw, c0, c1, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, bx, by, bw):
    """Channels ``[c0, c1)`` of the filter gradient ``dw`` ``[kh, kw, C]``: image by image, ``x`` and ``dy`` into NHWC
    (in ``bx`` and ``by``), the NHWC filter gradient's rows kernel summed into ``bw``, then copied into ``dw``."""
    x, dy, dw = borrowed(x), borrowed(dy), borrowed(dw)
    n, _, in_h, in_w = x.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    kh, kw = dw.shape[0], dw.shape[1]
    ct = c1 - c0
    count = lanes(x)
    xt = bx[:in_h * in_w * ct].reshape((1, in_h, in_w, ct))
    dyt = by[:out_h * out_w * ct].reshape((1, out_h, out_w, ct))
    dwt = bw[:kh * kw * ct].reshape((kh, kw, ct))
    dwt[:] = 0
    zero_row = np.zeros((in_w, ct), x.dtype)
    blocks = (ct + count - 1) // count
    for b in range(n):
        swap_last_axes_range(x[b, c0:c1].reshape((1, ct, in_h * in_w)), xt.reshape((1, in_h * in_w, ct)), 0, blocks)
        swap_last_axes_range(dy[b, c0:c1].reshape((1, ct, out_h * out_w)), dyt.reshape((1, out_h * out_w, ct)), 0,
                             blocks)
        depthwise_nhwc_backprop_filter_any_rows(xt, dyt, dwt, zero_row, 0, out_h, stride_h, stride_w, dil_h, dil_w,
                                                pad_top, pad_left)
    for di in range(kh):
        for dj in range(kw):
            dw[di, dj, c0:c1] = dwt[di, dj]


@kernel(parallel=True)
def depthwise_nchw_small_filter_gradient_parallel(x, dy, dw, n_chunks, stride_h, stride_w, dil_h, dil_w, pad_top,
                                                  pad_left, buffers_x, buffers_y, buffers_w):
    """The filter gradient ``dw`` ``[kh, kw, C]`` of ``x`` ``[N, C, H, W]`` and ``dy`` ``[N, C, out_h, out_w]``, the
    channels cut as the forward's (:func:`chunk_channels`): a range's sums are its own, so no partial sums are
    added across threads (buffers as the forward's, ``buffers_y`` for one image of ``dy``)."""
    c = x.shape[1]
    for t in prange(n_chunks):
        c0, c1 = chunk_channels(c, lanes(x), n_chunks, t)
        if c1 > c0:
            _channels_filter_gradient(x, dy, dw, c0, c1, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left,
                                      buffers_x[t], buffers_y[t], buffers_w[t])


@kernel
def _channels_input_gradient_s2(w, dy, dx, c0, c1, pad_top, pad_left, bx, by, bw):
    """Channels ``[c0, c1)`` of the stride-2 input gradient ``dx`` (NCHW) of ``dy`` and ``w`` ``[kh, kw, C]``: image by
    image, ``dy`` into NHWC (in ``by``), the NHWC parity kernel into ``bx``, back into ``dx``."""
    w, dy, dx = borrowed(w), borrowed(dy), borrowed(dx)
    n, _, in_h, in_w = dx.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    ct = c1 - c0
    count = lanes(dx)
    dxt = bx[:in_h * in_w * ct].reshape((1, in_h, in_w, ct))
    dyt = by[:out_h * out_w * ct].reshape((1, out_h, out_w, ct))
    wt = _filter_channels(w, c0, c1, bw)
    zero_row = np.zeros((out_w, ct), dx.dtype)
    in_blocks = (ct + count - 1) // count
    out_blocks = (in_h * in_w + count - 1) // count
    for b in range(n):
        swap_last_axes_range(dy[b, c0:c1].reshape((1, ct, out_h * out_w)), dyt.reshape((1, out_h * out_w, ct)), 0,
                             in_blocks)
        depthwise_nhwc_backprop_input_s2_any_rows(wt, dyt, dxt, zero_row, 0, in_h, pad_top, pad_left)
        swap_last_axes_range(dxt.reshape((1, in_h * in_w, ct)), dx[b, c0:c1].reshape((1, ct, in_h * in_w)), 0,
                             out_blocks)


@kernel(parallel=True)
def depthwise_nchw_small_input_gradient_s2_parallel(w, dy, dx, n_chunks, pad_top, pad_left, buffers_x, buffers_y,
                                                    buffers_w):
    """The stride-2 input gradient ``dx`` ``[N, C, H, W]`` of ``dy`` ``[N, C, out_h, out_w]`` (3x3, 5x5 or 7-wide
    filters, undilated), the channels cut as the forward's (:func:`chunk_channels`; ``buffers_x`` holds one image of
    ``dx``, ``buffers_y`` one of ``dy``)."""
    c = dx.shape[1]
    for t in prange(n_chunks):
        c0, c1 = chunk_channels(c, lanes(dx), n_chunks, t)
        if c1 > c0:
            _channels_input_gradient_s2(w, dy, dx, c0, c1, pad_top, pad_left, buffers_x[t], buffers_y[t], buffers_w[t])


@kernel
def chunk_channels(c, count, n_chunks, t):
    """The channels ``[c0, c1)`` of range ``t`` of ``n_chunks``: whole vectors of ``count`` (the last may be short).

    >>> chunk_channels(960, 16, 2, 0), chunk_channels(960, 16, 2, 1), chunk_channels(40, 16, 2, 1)
    ((0, 480), (480, 960), (16, 40))
    """
    vectors = (c + count - 1) // count
    return min(c, t * vectors // n_chunks * count), min(c, (t + 1) * vectors // n_chunks * count)
