"""Plain NumPy reference of every op: the spec that every other implementation is tested against.

Written for clarity, straight from TensorFlow's formulas, one filter tap at a time::

    conv2d:     out[b, i, j, o]       = sum_{di, dj, c} in[b, s_h*i + d_h*di - pad_top, s_w*j + d_w*dj - pad_left, g*Cg + c]
                                                        * filter[di, dj, c, o],         g = o // (out_c / groups)
    depthwise:  out[b, i, j, k*M + q] = sum_{di, dj}    in[b, s_h*i + d_h*di - pad_top, s_w*j + d_w*dj - pad_left, k]
                                                        * filter[di, dj, k, q]

reading zeros outside the input.  The gradients are the exact adjoints: the input gradient
scatters each tap back to where it was read, the filter gradient correlates the input with
``out_backprop``.

All functions take NHWC arrays with one batch axis and the op's ``Conv2DGeometry`` and
return NHWC arrays: ``api`` handles layouts and dtypes.  This module imports only NumPy.
"""

from __future__ import annotations

import numpy as np

from .geometry import Conv2DGeometry


def _padded(x: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    return np.pad(x, ((0, 0), (g.pad_top, g.pad_bottom), (g.pad_left, g.pad_right), (0, 0)))


def _tap(g: Conv2DGeometry, di: int, dj: int) -> tuple[slice, slice]:
    """The rows and columns of the padded input that filter tap ``(di, dj)`` reads, one per output pixel."""
    r0, c0 = di * g.dil_h, dj * g.dil_w
    return (slice(r0, r0 + (g.out_h - 1) * g.stride_h + 1, g.stride_h),
            slice(c0, c0 + (g.out_w - 1) * g.stride_w + 1, g.stride_w))


def _grouped(w: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """conv2d filter tap ``[Cg, out_c]`` -> ``[groups, Cg, out_c / groups]``."""
    return w.reshape(g.group_in_c, g.groups, g.multiplier).transpose(1, 0, 2)


def conv2d(x: np.ndarray, w: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    xp = _padded(x, g)
    n = x.shape[0]
    out = np.zeros((n, g.out_h, g.out_w, g.groups, g.multiplier), dtype=x.dtype)
    for di in range(g.kh):
        for dj in range(g.kw):
            rows, cols = _tap(g, di, dj)
            patch = xp[:, rows, cols, :].reshape(n, g.out_h, g.out_w, g.groups, g.group_in_c)
            out += np.einsum("nhwgc,gco->nhwgo", patch, _grouped(w[di, dj], g))
    return out.reshape(n, g.out_h, g.out_w, g.out_c)


def conv2d_backprop_input(w: np.ndarray, dy: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    n = dy.shape[0]
    dxp = np.zeros((n, g.in_h + g.pad_top + g.pad_bottom, g.in_w + g.pad_left + g.pad_right, g.in_c), dy.dtype)
    dyg = dy.reshape(n, g.out_h, g.out_w, g.groups, g.multiplier)
    for di in range(g.kh):
        for dj in range(g.kw):
            rows, cols = _tap(g, di, dj)
            contrib = np.einsum("nhwgo,gco->nhwgc", dyg, _grouped(w[di, dj], g))
            dxp[:, rows, cols, :] += contrib.reshape(n, g.out_h, g.out_w, g.in_c)
    return dxp[:, g.pad_top:g.pad_top + g.in_h, g.pad_left:g.pad_left + g.in_w, :]


def conv2d_backprop_filter(x: np.ndarray, dy: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    xp = _padded(x, g)
    n = x.shape[0]
    dyg = dy.reshape(n, g.out_h, g.out_w, g.groups, g.multiplier)
    dw = np.zeros(g.filter_shape, dtype=x.dtype)
    for di in range(g.kh):
        for dj in range(g.kw):
            rows, cols = _tap(g, di, dj)
            patch = xp[:, rows, cols, :].reshape(n, g.out_h, g.out_w, g.groups, g.group_in_c)
            tap = np.einsum("nhwgc,nhwgo->gco", patch, dyg)  # [groups, Cg, out_c / groups]
            dw[di, dj] = tap.transpose(1, 0, 2).reshape(g.group_in_c, g.out_c)
    return dw


def depthwise_conv2d(x: np.ndarray, w: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    xp = _padded(x, g)
    n = x.shape[0]
    out = np.zeros((n, g.out_h, g.out_w, g.in_c, g.multiplier), dtype=x.dtype)
    for di in range(g.kh):
        for dj in range(g.kw):
            rows, cols = _tap(g, di, dj)
            out += xp[:, rows, cols, :, None] * w[di, dj]  # [.., C, 1] * [C, M]
    return out.reshape(n, g.out_h, g.out_w, g.out_c)


def depthwise_conv2d_backprop_input(w: np.ndarray, dy: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    n = dy.shape[0]
    dxp = np.zeros((n, g.in_h + g.pad_top + g.pad_bottom, g.in_w + g.pad_left + g.pad_right, g.in_c), dy.dtype)
    dym = dy.reshape(n, g.out_h, g.out_w, g.in_c, g.multiplier)
    finite = np.isfinite(w).all()
    for di in range(g.kh):
        for dj in range(g.kw):
            rows, cols = _tap(g, di, dj)
            dxp[:, rows, cols, :] += (dym * w[di, dj]).sum(axis=-1)
            if not finite:
                # TensorFlow's CPU kernel multiplies every tap at every input pixel, by 0 where the tap
                # reads no output: a non-finite tap gives 0 * inf = NaN there (its whole channel)
                unread = np.ones(dxp.shape[1:3], bool)
                unread[rows, cols] = False
                dxp[:, unread, :] += (0 * w[di, dj]).sum(axis=-1)
    return dxp[:, g.pad_top:g.pad_top + g.in_h, g.pad_left:g.pad_left + g.in_w, :]


def depthwise_conv2d_backprop_filter(x: np.ndarray, dy: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    xp = _padded(x, g)
    n = x.shape[0]
    dym = dy.reshape(n, g.out_h, g.out_w, g.in_c, g.multiplier)
    dw = np.zeros(g.filter_shape, dtype=x.dtype)
    for di in range(g.kh):
        for dj in range(g.kw):
            rows, cols = _tap(g, di, dj)
            dw[di, dj] = np.einsum("nhwc,nhwcm->cm", xp[:, rows, cols, :], dym)
    return dw


def depthwise_conv2d_gradients(x: np.ndarray, w: np.ndarray, dy: np.ndarray,
                               g: Conv2DGeometry) -> tuple[np.ndarray, np.ndarray]:
    """``(input gradient, filter gradient)``: the two functions above."""
    return depthwise_conv2d_backprop_input(w, dy, g), depthwise_conv2d_backprop_filter(x, dy, g)


def separable_conv2d(x: np.ndarray, wd: np.ndarray, wp: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """Depthwise (with the op's strides, dilations and padding), then a 1x1 VALID conv2d."""
    mid = depthwise_conv2d(x, wd, g)
    return np.einsum("nhwc,co->nhwo", mid, wp[0, 0])
