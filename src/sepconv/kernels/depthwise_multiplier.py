"""Depthwise kernels with a channel multiplier ``M > 1`` that never write the repeated input to memory:
each thread repeats a band of input rows ``M`` times into its own buffer
(:func:`~sepconv.kernels.depthwise.repeat_channels_flat`) and runs the multiplier-1 rows kernel of
:mod:`sepconv.kernels.depthwise` (or :mod:`sepconv.kernels.depthwise_packed`) on them while they are
in its cache.  The input gradient computes a band of ``dx`` rows of the ``C*M``-channel problem into the
buffer and sums it over the multiplier into ``dx`` (:func:`~sepconv.kernels.depthwise.sum_over_multiplier_flat`).

A band is ``band_rows`` output rows of one image (as :func:`~sepconv.kernels.depthwise._band`); its
input rows ``[y0, y1)`` are those its filter rows reach, clipped to the image.  The rows kernel sees
the buffer as an image of ``y1 - y0`` rows and the band's rows of ``out`` (or ``dy``) as one of
``i1 - i0``, with the top pad moved by the band's origin, so that rows outside ``[y0, y1)`` are
exactly the padding it already handles.

Examples
--------
A 3x3 filter of ones, multiplier 2, over a 4x4 image of ones, SAME padding, in bands of one row:

>>> import numpy as np
>>> x, w = np.ones((1, 4, 4, 1), np.float32), np.ones((3, 3, 2), np.float32)
>>> out, zero_row = np.empty((1, 4, 4, 2), np.float32), np.zeros((4, 2), np.float32)
>>> buffer = np.empty(3 * 4 * 2, np.float32)
>>> depthwise_nhwc_forward_multiplier_bands(x, w, out, buffer, zero_row, 0, 4, 1, ROWS, 1, 1, 1, 1, 1, 1)
>>> out[0, :, :, 1]
array([[4., 6., 6., 4.],
       [6., 9., 9., 6.],
       [6., 9., 9., 6.],
       [4., 6., 6., 4.]], dtype=float32)
"""

from __future__ import annotations

from numba import prange

from ._borrowed import borrowed
from ._jit import kernel
from .depthwise import (
    depthwise_nhwc_backprop_filter_any_rows,
    depthwise_nhwc_backprop_input_s2_any_rows,
    depthwise_nhwc_backprop_input_strided_rows,
    depthwise_nhwc_backprop_input_strided_simd_rows,
    depthwise_nhwc_forward_any_rows,
    repeat_channels_flat,
    sum_over_multiplier_flat,
)
from .depthwise_3x3_direct import (
    add_filter_gradient_rows,
    add_filter_gradient_sums,
    depthwise_nhwc_backprop_input_3x3_s2_direct_rows,
    depthwise_nhwc_forward_3x3_direct_rows,
    filter_gradient_sums,
)
from .depthwise_packed import depthwise_nhwc_forward_packed_rows

# The forward's rows kernel for a band (depthwise_nhwc_forward_multiplier_bands's ``rows_kernel``).
ROWS, PACKED_ROWS, DIRECT_3X3_ROWS = 0, 1, 2


@kernel
def _band_rows(x, buffer, band, band_rows, out_h, multiplier, stride_h, reach, pad_top):
    """Band ``band`` (``band_rows`` output rows of one image, as :func:`~sepconv.kernels.depthwise._band`): its
    input rows repeated into ``buffer``.  Returns ``(repeated [1, y1 - y0, W, C*M], the top pad of the band's rows
    kernel, image b, output rows i0, i1)``; ``repeated`` has no rows when every filter row is in the padding."""
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    bands_per_image = (out_h + band_rows - 1) // band_rows
    b = band // bands_per_image
    i0 = (band - b * bands_per_image) * band_rows
    i1 = min(out_h, i0 + band_rows)
    y0 = max(0, i0 * stride_h - pad_top)
    y1 = max(y0, min(in_h, (i1 - 1) * stride_h - pad_top + reach))
    rows = x[b][y0:y1].reshape(-1)
    repeat_channels_flat(rows, buffer, multiplier, 0, rows.size)
    repeated = buffer[:rows.size * multiplier].reshape((1, y1 - y0, in_w, c * multiplier))
    return repeated, pad_top + y0 - i0 * stride_h, b, i0, i1


@kernel
def depthwise_nhwc_forward_multiplier_bands(x, w, out, buffer, zero_row, band_begin, band_end, band_rows, rows_kernel,
                                            stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):
    """Forward with a channel multiplier: ``x [N, H, W, C]``, ``w [kh, kw, C*M]``, bands ``[band_begin, band_end)``
    of ``band_rows`` rows of ``out [N, out_h, out_w, C*M]``; ``buffer`` 1-D, room for a band's repeated input
    rows; ``zero_row`` ``[W, C*M]`` zeros; the band's rows go to the rows kernels of
    :mod:`sepconv.kernels.depthwise` (``rows_kernel`` :data:`ROWS`), the packed kernel (:data:`PACKED_ROWS`) or
    the direct 3x3 kernel (:data:`DIRECT_3X3_ROWS`)."""
    x, w, out, buffer, zero_row = borrowed(x), borrowed(w), borrowed(out), borrowed(buffer), borrowed(zero_row)
    c = x.shape[3]
    out_h, out_w, cm = out.shape[1], out.shape[2], out.shape[3]
    reach = (w.shape[0] - 1) * dil_h + 1
    for band in range(band_begin, band_end):
        repeated, top, b, i0, i1 = _band_rows(x, buffer, band, band_rows, out_h, cm // c, stride_h, reach, pad_top)
        out_band = out[b][i0:i1].reshape((1, i1 - i0, out_w, cm))
        if repeated.shape[1] == 0:  # every filter row in the padding
            out_band[:] = 0
        elif rows_kernel == PACKED_ROWS:
            depthwise_nhwc_forward_packed_rows(repeated, w, out_band, 0, i1 - i0, stride_h, stride_w, dil_h, dil_w,
                                               top, pad_left)
        elif rows_kernel == DIRECT_3X3_ROWS:
            depthwise_nhwc_forward_3x3_direct_rows(repeated, w, out_band, 0, i1 - i0, stride_h, stride_w, dil_h, dil_w,
                                                   top, pad_left, False)
        else:
            depthwise_nhwc_forward_any_rows(repeated, w, out_band, zero_row, 0, i1 - i0, stride_h, stride_w, dil_h,
                                            dil_w, top, pad_left)


@kernel(parallel=True)
def depthwise_nhwc_forward_multiplier_parallel(x, w, out, buffers, zero_row, band_rows, rows_kernel, stride_h,
                                               stride_w, dil_h, dil_w, pad_top, pad_left):
    """:func:`depthwise_nhwc_forward_multiplier_bands` over all bands: thread ``t`` takes a contiguous run of
    them and its own ``buffers[t]``."""
    n_threads = buffers.shape[0]
    bands = out.shape[0] * ((out.shape[1] + band_rows - 1) // band_rows)
    for t in prange(n_threads):
        depthwise_nhwc_forward_multiplier_bands(x, w, out, buffers[t], zero_row, t * bands // n_threads,
                                                (t + 1) * bands // n_threads, band_rows, rows_kernel, stride_h, stride_w,
                                                dil_h, dil_w, pad_top, pad_left)


@kernel
def depthwise_nhwc_backprop_filter_multiplier_bands(x, dy, dw, buffer, zero_row, band_begin, band_end, band_rows,
                                                    direct_3x3, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):
    """Filter gradient with a channel multiplier: ``x [N, H, W, C]``, ``dy [N, out_h, out_w, C*M]``; bands
    ``[band_begin, band_end)`` of ``band_rows`` ``dy`` rows *added* to ``dw`` ``[kh, kw, C*M]``; ``buffer`` and
    ``zero_row`` as :func:`depthwise_nhwc_forward_multiplier_bands`.  With ``direct_3x3`` (3x3, ``C*M`` at least a
    vector) the bands' products go to the direct 3x3 kernel's sums, added to ``dw`` at the end."""
    x, dy, dw, buffer, zero_row = borrowed(x), borrowed(dy), borrowed(dw), borrowed(buffer), borrowed(zero_row)
    c = x.shape[3]
    out_h, out_w, cm = dy.shape[1], dy.shape[2], dy.shape[3]
    reach = (dw.shape[0] - 1) * dil_h + 1
    sums = filter_gradient_sums(dy) if direct_3x3 else buffer[:0]
    for band in range(band_begin, band_end):
        repeated, top, b, i0, i1 = _band_rows(x, buffer, band, band_rows, out_h, cm // c, stride_h, reach, pad_top)
        if repeated.shape[1] == 0:  # every filter row in the padding: nothing to add
            continue
        dy_band = dy[b][i0:i1].reshape((1, i1 - i0, out_w, cm))
        if direct_3x3:
            add_filter_gradient_rows(repeated, dy_band, sums, 0, i1 - i0, stride_h, stride_w, dil_h, dil_w, top,
                                     pad_left)
        else:
            depthwise_nhwc_backprop_filter_any_rows(repeated, dy_band, dw, zero_row, 0, i1 - i0, stride_h, stride_w,
                                                    dil_h, dil_w, top, pad_left)
    if direct_3x3:
        add_filter_gradient_sums(sums, dw)


@kernel(parallel=True)
def depthwise_nhwc_backprop_filter_multiplier_parallel(x, dy, partial, buffers, zero_row, band_rows, direct_3x3,
                                                       stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):
    """:func:`depthwise_nhwc_backprop_filter_multiplier_bands` over all bands: thread ``t`` takes a contiguous
    run of them, its own ``buffers[t]``, and sums into ``partial[t]`` (zeroed by the caller)."""
    n_threads = partial.shape[0]
    bands = dy.shape[0] * ((dy.shape[1] + band_rows - 1) // band_rows)
    for t in prange(n_threads):
        depthwise_nhwc_backprop_filter_multiplier_bands(x, dy, partial[t], buffers[t], zero_row, t * bands // n_threads,
                                                        (t + 1) * bands // n_threads, band_rows, direct_3x3, stride_h,
                                                        stride_w, dil_h, dil_w, pad_top, pad_left)


# The input gradient's rows kernel for a band (``kind`` of depthwise_nhwc_backprop_input_multiplier_bands): stride
# 1, the forward of dy with the flipped filter (by filter size, packed, or the direct 3x3 kernel); stride 2, the
# parity kernels (3x3, 5x5, 7 wide; the direct 3x3 kernel's); other strides, the register sums or tap by tap.
INPUT_GRADIENT_FORWARD = 0
INPUT_GRADIENT_FORWARD_PACKED = 1
INPUT_GRADIENT_S2 = 2
INPUT_GRADIENT_STRIDED_SIMD = 3
INPUT_GRADIENT_STRIDED = 4
INPUT_GRADIENT_FORWARD_DIRECT_3X3 = 5
INPUT_GRADIENT_S2_DIRECT_3X3 = 6
# ... of which these take the flipped filter (and the forward's pads)
INPUT_GRADIENT_FORWARD_KINDS = (INPUT_GRADIENT_FORWARD, INPUT_GRADIENT_FORWARD_PACKED, INPUT_GRADIENT_FORWARD_DIRECT_3X3)


@kernel
def depthwise_nhwc_backprop_input_multiplier_bands(w, dy, dx, buffer, zero_row, band_begin, band_end, band_rows, kind,
                                                   stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):
    """Input gradient with a channel multiplier, without the ``C*M``-channel gradient in memory: ``dy [N, out_h,
    out_w, C*M]`` -> ``dx [N, H, W, C]``, bands ``[band_begin, band_end)`` of ``band_rows`` rows of ``dx`` (within
    an image).  A band's ``C*M``-channel rows are computed into ``buffer`` (1-D, room for them) by the rows kernel
    ``kind`` (see above), then summed over the multiplier into ``dx``.  ``w`` is ``[kh, kw, C*M]``, flipped for
    the forward kinds, whose pads are the forward's (``(k - 1) * dilation - pad``); ``zero_row`` ``[out_w, C*M]``
    zeros."""
    w, dy, dx, buffer, zero_row = borrowed(w), borrowed(dy), borrowed(dx), borrowed(buffer), borrowed(zero_row)
    in_h, in_w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    out_h, out_w, cm = dy.shape[1], dy.shape[2], dy.shape[3]
    bands_per_image = (in_h + band_rows - 1) // band_rows
    for band in range(band_begin, band_end):
        b = band // bands_per_image
        y0 = (band - b * bands_per_image) * band_rows
        rows = min(in_h, y0 + band_rows) - y0
        g = buffer[:rows * in_w * cm].reshape((1, rows, in_w, cm))
        dy_image = dy[b].reshape((1, out_h, out_w, cm))
        if kind == INPUT_GRADIENT_FORWARD:
            depthwise_nhwc_forward_any_rows(dy_image, w, g, zero_row, 0, rows, 1, 1, dil_h, dil_w, pad_top - y0,
                                            pad_left)
        elif kind == INPUT_GRADIENT_FORWARD_PACKED:
            depthwise_nhwc_forward_packed_rows(dy_image, w, g, 0, rows, 1, 1, dil_h, dil_w, pad_top - y0, pad_left)
        elif kind == INPUT_GRADIENT_FORWARD_DIRECT_3X3:
            depthwise_nhwc_forward_3x3_direct_rows(dy_image, w, g, 0, rows, 1, 1, dil_h, dil_w, pad_top - y0, pad_left,
                                                   False)
        elif kind == INPUT_GRADIENT_S2_DIRECT_3X3:
            depthwise_nhwc_backprop_input_3x3_s2_direct_rows(w, dy_image, g, 0, rows, pad_top + y0, pad_left)
        elif kind == INPUT_GRADIENT_S2:
            depthwise_nhwc_backprop_input_s2_any_rows(w, dy_image, g, zero_row, 0, rows, pad_top + y0, pad_left)
        elif kind == INPUT_GRADIENT_STRIDED_SIMD:
            depthwise_nhwc_backprop_input_strided_simd_rows(w, dy_image, g, 0, rows, stride_h, stride_w, pad_top + y0,
                                                            pad_left)
        else:
            depthwise_nhwc_backprop_input_strided_rows(w, dy_image, g, 0, rows, stride_h, stride_w, dil_h, dil_w,
                                                       pad_top + y0, pad_left)
        summed = dx[b][y0:y0 + rows].reshape(-1)
        sum_over_multiplier_flat(buffer, summed, cm // c, 0, summed.size)


@kernel(parallel=True)
def depthwise_nhwc_backprop_input_multiplier_parallel(w, dy, dx, buffers, zero_row, band_rows, kind, stride_h,
                                                      stride_w, dil_h, dil_w, pad_top, pad_left):
    """:func:`depthwise_nhwc_backprop_input_multiplier_bands` over all bands: thread ``t`` takes a contiguous run
    of them and its own ``buffers[t]``."""
    n_threads = buffers.shape[0]
    bands = dx.shape[0] * ((dx.shape[1] + band_rows - 1) // band_rows)
    for t in prange(n_threads):
        depthwise_nhwc_backprop_input_multiplier_bands(w, dy, dx, buffers[t], zero_row, t * bands // n_threads,
                                                       (t + 1) * bands // n_threads, band_rows, kind, stride_h,
                                                       stride_w, dil_h, dil_w, pad_top, pad_left)
