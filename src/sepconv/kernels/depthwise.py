"""Depthwise convolution kernels, NHWC: forward, input gradient, filter gradient.

Every kernel takes C-contiguous arrays and plain ints and writes into a preallocated output;
nothing is validated here (``sepconv.fast.depthwise`` does the bookkeeping).  Shapes::

    x    [N, in_h, in_w, C]          input
    w    [kh, kw, C, M]              filter (M = channel multiplier)
    out  [N, out_h, out_w, C * M]    output, channel k*M + q from input channel k

Padding is never materialized: for each output row the filter rows that land inside the
input are found once (``_tap_range``), and each output row is split into a left border, an
interior where every filter column is inside the input (no checks at all) and a right border.
Channels are the innermost loop everywhere, so it is contiguous and vectorizes.

Work is split over flat output rows ``r = b * out_h + i``: the ``*_rows`` kernels do the rows
``[row_begin, row_end)`` on the calling thread, and the ``*_parallel`` drivers cut all rows
into ``n_chunks`` contiguous blocks run by ``prange`` (both threads busy whatever the batch).
"""

from __future__ import annotations

from numba import prange

from ._jit import kernel


@kernel
def _tap_range(origin: int, dilation: int, k: int, size: int) -> tuple[int, int]:
    """The taps ``t`` in ``[lo, hi)`` with ``0 <= origin + t * dilation < size``."""
    lo = 0 if origin >= 0 else (-origin + dilation - 1) // dilation
    hi = 0 if origin > size - 1 else min(k, (size - 1 - origin) // dilation + 1)
    return lo, max(lo, hi)


@kernel
def _interior(out_size: int, in_size: int, k: int, stride: int, dilation: int, pad: int) -> tuple[int, int]:
    """The outputs ``[lo, hi)`` whose every tap is inside the input (``pad`` may be negative)."""
    lo = 0 if pad <= 0 else (pad + stride - 1) // stride
    last = in_size - 1 + pad - (k - 1) * dilation
    hi = 0 if last < 0 else last // stride + 1
    lo = min(lo, out_size)
    hi = min(hi, out_size)
    return lo, max(lo, hi)


# --------------------------------------------------------------------------- forward


@kernel
def depthwise_nhwc_forward_rows(x, w, out, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):
    """Forward, any multiplier/stride/dilation, output rows ``[row_begin, row_end)`` on this thread."""
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    kh, kw, m = w.shape[0], w.shape[1], w.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    j_lo, j_hi = _interior(out_w, in_w, kw, stride_w, dil_w, pad_left)
    for r in range(row_begin, row_end):
        b = r // out_h
        i = r - b * out_h
        ih0 = i * stride_h - pad_top
        di_lo, di_hi = _tap_range(ih0, dil_h, kh, in_h)
        for j in range(out_w):
            iw0 = j * stride_w - pad_left
            if j_lo <= j < j_hi:
                dj_lo, dj_hi = 0, kw
            else:
                dj_lo, dj_hi = _tap_range(iw0, dil_w, kw, in_w)
            for o in range(c * m):
                out[b, i, j, o] = 0.0
            for di in range(di_lo, di_hi):
                ih = ih0 + di * dil_h
                for dj in range(dj_lo, dj_hi):
                    iw = iw0 + dj * dil_w
                    if m == 1:
                        for k in range(c):
                            out[b, i, j, k] += x[b, ih, iw, k] * w[di, dj, k, 0]
                    else:
                        for k in range(c):
                            xv = x[b, ih, iw, k]
                            for q in range(m):
                                out[b, i, j, k * m + q] += xv * w[di, dj, k, q]


@kernel(parallel=True)
def depthwise_nhwc_forward_parallel(x, w, out, n_chunks, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):
    """Forward over all output rows, cut into ``n_chunks`` blocks run in parallel."""
    rows = out.shape[0] * out.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_forward_rows(x, w, out, t * rows // n_chunks, (t + 1) * rows // n_chunks,
                                    stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)


# --------------------------------------------------------------------------- input gradient


@kernel
def depthwise_nhwc_backprop_input_rows(w, dy, dx, row_begin, row_end, stride_h, stride_w, dil_h, dil_w,
                                       pad_top, pad_left):
    """Input gradient, any multiplier/stride/dilation, input rows ``[row_begin, row_end)`` of ``dx``.

    Gathers, for each input pixel, the output pixels that read it (race-free: each thread
    writes only its own rows of ``dx``)::

        dx[b, y, x, k] = sum_{di, dj, q} dy[b, i, j, k*M + q] * w[di, dj, k, q]
                         over  i*stride_h + di*dil_h - pad_top == y,  j*stride_w + dj*dil_w - pad_left == x
    """
    in_h, in_w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    kh, kw, m = w.shape[0], w.shape[1], w.shape[3]
    out_h, out_w = dy.shape[1], dy.shape[2]
    for r in range(row_begin, row_end):
        b = r // in_h
        y = r - b * in_h
        for xc in range(in_w):
            for k in range(c):
                dx[b, y, xc, k] = 0.0
            for di in range(kh):
                t = y + pad_top - di * dil_h
                if t < 0 or t % stride_h != 0:
                    continue
                i = t // stride_h
                if i >= out_h:
                    continue
                for dj in range(kw):
                    s = xc + pad_left - dj * dil_w
                    if s < 0 or s % stride_w != 0:
                        continue
                    j = s // stride_w
                    if j >= out_w:
                        continue
                    if m == 1:
                        for k in range(c):
                            dx[b, y, xc, k] += dy[b, i, j, k] * w[di, dj, k, 0]
                    else:
                        for k in range(c):
                            acc = dx[b, y, xc, k]
                            for q in range(m):
                                acc += dy[b, i, j, k * m + q] * w[di, dj, k, q]
                            dx[b, y, xc, k] = acc


@kernel(parallel=True)
def depthwise_nhwc_backprop_input_parallel(w, dy, dx, n_chunks, stride_h, stride_w, dil_h, dil_w,
                                           pad_top, pad_left):
    """Input gradient over all rows of ``dx``, cut into ``n_chunks`` blocks run in parallel."""
    rows = dx.shape[0] * dx.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_backprop_input_rows(w, dy, dx, t * rows // n_chunks, (t + 1) * rows // n_chunks,
                                           stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)


# --------------------------------------------------------------------------- filter gradient


@kernel
def depthwise_nhwc_backprop_filter_rows(x, dy, dw, row_begin, row_end, stride_h, stride_w, dil_h, dil_w,
                                        pad_top, pad_left):
    """Filter gradient of output rows ``[row_begin, row_end)``, *added* to ``dw`` ``[kh, kw, C, M]``::

        dw[di, dj, k, q] += sum_{b, i, j} x[b, i*stride_h + di*dil_h - pad_top, j*stride_w + dj*dil_w - pad_left, k]
                                          * dy[b, i, j, k*M + q]
    """
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    kh, kw, m = dw.shape[0], dw.shape[1], dw.shape[3]
    out_h, out_w = dy.shape[1], dy.shape[2]
    for r in range(row_begin, row_end):
        b = r // out_h
        i = r - b * out_h
        ih0 = i * stride_h - pad_top
        di_lo, di_hi = _tap_range(ih0, dil_h, kh, in_h)
        for di in range(di_lo, di_hi):
            ih = ih0 + di * dil_h
            for dj in range(kw):
                # the outputs j whose tap dj reads inside the input: 0 <= j*stride_w + dj*dil_w - pad_left < in_w
                j_lo, j_hi = _tap_range(dj * dil_w - pad_left, stride_w, out_w, in_w)
                for j in range(j_lo, j_hi):
                    iw = j * stride_w + dj * dil_w - pad_left
                    if m == 1:
                        for k in range(c):
                            dw[di, dj, k, 0] += x[b, ih, iw, k] * dy[b, i, j, k]
                    else:
                        for k in range(c):
                            xv = x[b, ih, iw, k]
                            for q in range(m):
                                dw[di, dj, k, q] += xv * dy[b, i, j, k * m + q]


@kernel(parallel=True)
def depthwise_nhwc_backprop_filter_parallel(x, dy, partial, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):
    """Filter gradient: chunk ``t`` of the output rows is summed into ``partial[t]`` (zeroed by the caller)."""
    n_chunks = partial.shape[0]
    rows = dy.shape[0] * dy.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_backprop_filter_rows(x, dy, partial[t], t * rows // n_chunks, (t + 1) * rows // n_chunks,
                                            stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)


__all__ = [
    "depthwise_nhwc_backprop_filter_parallel",
    "depthwise_nhwc_backprop_filter_rows",
    "depthwise_nhwc_backprop_input_parallel",
    "depthwise_nhwc_backprop_input_rows",
    "depthwise_nhwc_forward_parallel",
    "depthwise_nhwc_forward_rows",
]
