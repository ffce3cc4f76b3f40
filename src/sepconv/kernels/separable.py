"""Separable conv2d kernels, NHWC: the fused forward, one band of output rows at a time.

For each band of output rows, the depthwise stage writes the band's ``C * M`` values per pixel
into a small buffer of the thread's own (the depthwise row kernels of
:mod:`sepconv.kernels.depthwise`), and the pointwise stage
(:func:`sepconv.kernels.pointwise.pointwise_band`) multiplies it by the packed pointwise filter
into the output while it is still in cache.  The intermediate tensor never exists whole, and
no BLAS call is made (BLAS's own threads, spinning after a call, would fight the kernel's for
the two cores).  Shapes::

    x        [N, in_h, in_w, K]       input, channels already repeated for a multiplier M > 1 (K = C * M)
    w        [kh, kw, K]              depthwise filter of the multiplier-1 problem
    bp                                pointwise filter [K, out_c], packed (sepconv.kernels.pointwise)
    out      [N, out_h, out_w, out_c]
    buffers  [threads, band]          per-thread band buffers: band_rows * out_w * K values, plus 6 * K

Layers whose depthwise op runs the packed or the small-image kernels (5x5, 7x7 and other sizes but 3x3, where the
packed kernels of :mod:`sepconv.kernels.depthwise_packed` take them) take
:func:`separable_nhwc_forward_packed_parallel` instead: each thread computes its run of output rows by the packed
kernels into ``y`` (the whole intermediate's shape; each thread writes and reads back only its own rows, in its own
cache), then their product, in one parallel call.

A band is ``band_rows`` output rows of one image.  The depthwise kernel is called as if the band
were a whole image of ``band_rows`` rows: its top padding is moved by the band's first row
(``pad_top - i0 * stride_h``), and the row kernels read real input rows or their zero row.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from . import depthwise
from ._borrowed import borrowed
from ._jit import kernel
from ._simd import lanes, store_fence, vfma, vload, vload_part, vstore, vstore_part, vzeros
from ._window import tap_range
from .depthwise_packed import depthwise_nhwc_forward_packed_rows
from .pointwise import TILE_PIXELS, pack_pointwise, pointwise_band, pointwise_pixels
from .pointwise_few_pixels import column_tiles, pointwise_few_pixels_tiles


@kernel
def _depthwise_band(xb, w, y, zero_row, rows, stride_h, stride_w, dil_h, dil_w, top, pad_left):
    kh, kw = w.shape[0], w.shape[1]
    if kh == 3 and kw == 3:
        depthwise.depthwise_nhwc_forward_3x3_rows(xb, w, y, zero_row, 0, rows, stride_h, stride_w, dil_h, dil_w, top,
                                                  pad_left)
    elif kh == 5 and kw == 5:
        depthwise.depthwise_nhwc_forward_5x5_rows(xb, w, y, zero_row, 0, rows, stride_h, stride_w, dil_h, dil_w, top,
                                                  pad_left)
    else:
        depthwise.depthwise_nhwc_forward_rows(xb, w, y, zero_row, 0, rows, stride_h, stride_w, dil_h, dil_w, top,
                                              pad_left)


@kernel
def separable_nhwc_forward_bands(x, w, bp, out, zero_row, buffer, band_rows,
                                 band_begin, band_end, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, stream=False):
    """Bands ``[band_begin, band_end)`` (band ``q`` is rows ``[i0, i0 + band_rows)`` of image
    ``q // bands_per_image``), each through ``buffer`` (flat, this thread's own)."""
    x, w, bp, out = borrowed(x), borrowed(w), borrowed(bp), borrowed(out)
    zero_row, buffer = borrowed(zero_row), borrowed(buffer)
    n, out_h, out_w, n_size = out.shape
    k_size = w.shape[2]
    in_h, in_w = x.shape[1], x.shape[2]
    bands_per_image = (out_h + band_rows - 1) // band_rows
    c = out.reshape(-1)
    for q in range(band_begin, band_end):
        b = q // bands_per_image
        i0 = (q - b * bands_per_image) * band_rows
        rows = min(band_rows, out_h - i0)
        y = buffer[: rows * out_w * k_size].reshape((1, rows, out_w, k_size))
        _depthwise_band(x[b].reshape((1, in_h, in_w, k_size)), w, y, zero_row, rows, stride_h, stride_w, dil_h,
                        dil_w, pad_top - i0 * stride_h, pad_left)
        pixels = rows * out_w
        # the last tile reads up to five pixels past the band: zeros, not stale (maybe subnormal) values
        buffer[pixels * k_size: (pixels + (-pixels) % TILE_PIXELS) * k_size] = 0
        pointwise_band(buffer, 0, pixels, k_size, bp, c,
                       (b * out_h + i0) * out_w, n_size, stream)
    if stream:
        store_fence()


@kernel(parallel=True)
def separable_nhwc_forward_parallel(x, w, b, bps, out, zero_row, buffers, band_rows,
                                    stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, stream=False):
    """All bands, cut into ``buffers.shape[0]`` contiguous runs, one per thread; each thread first packs
    the pointwise filter ``b [K, out_c]`` into its own ``bps[t]`` (see
    :func:`sepconv.kernels.pointwise.pointwise_parallel`)."""
    bands = out.shape[0] * ((out.shape[1] + band_rows - 1) // band_rows)
    threads = buffers.shape[0]
    for t in prange(threads):
        pack_pointwise(b, bps[t])
        separable_nhwc_forward_bands(x, w, bps[t], out, zero_row, buffers[t], band_rows,
                                     t * bands // threads, (t + 1) * bands // threads, stride_h, stride_w, dil_h,
                                     dil_w, pad_top, pad_left, stream)


@kernel
def separable_nhwc_forward_packed_rows(x, w, y, bp, out, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top,
                                       pad_left):
    """Output rows ``[row_begin, row_end)`` (over the batch, as :func:`~sepconv.kernels.depthwise_packed.
    depthwise_nhwc_forward_packed_rows`): their depthwise sums into the same rows of ``y`` (``[N, out_h, out_w, K]``)
    by the packed kernels, then those pixels' product with the packed pointwise filter ``bp`` into ``out``, while they
    are in this core's cache (:func:`~sepconv.kernels.pointwise.pointwise_pixels`: no pixel past the rows, another
    thread's, is read)."""
    depthwise_nhwc_forward_packed_rows(x, w, y, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top,
                                       pad_left)
    out_w = y.shape[2]
    pointwise_pixels(y.reshape(-1), bp, out.reshape(-1), y.shape[3], out.shape[3], row_begin * out_w, row_end * out_w)


@kernel(parallel=True)
def separable_nhwc_forward_packed_parallel(x, w, y, b, bps, out, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):
    """:func:`separable_nhwc_forward_packed_rows` over all output rows in ``bps.shape[0]`` runs, one per thread, each
    thread first packing the pointwise filter ``b [K, out_c]`` into its own ``bps[t]``."""
    rows = y.shape[0] * y.shape[1]
    threads = bps.shape[0]
    for t in prange(threads):
        pack_pointwise(b, bps[t])
        separable_nhwc_forward_packed_rows(x, w, y, bps[t], out, t * rows // threads, (t + 1) * rows // threads,
                                           stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)


@kernel
def separable_nhwc_forward_small(x, wd, wp, out, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):
    """The whole separable forward of a small layer in one call, pixel by pixel, straight from the formula:
    the ``C * M`` depthwise sums of a pixel (taps in the padding skipped), then their product with the
    pointwise filter.  ``wd`` ``[kh, kw, C, M]`` and ``wp`` ``[C * M, out_c]``, both C-contiguous; for layers whose
    whole work is a few microseconds, where the planned path's calls (the depthwise pass, the filter's
    packing, the product) cost more than the arithmetic."""
    x, wd, wp, out = borrowed(x), borrowed(wd), borrowed(wp), borrowed(out)
    n, in_h, in_w, c = x.shape
    kh, kw, m = wd.shape[0], wd.shape[1], wd.shape[3]
    out_h, out_w, out_c = out.shape[1], out.shape[2], out.shape[3]
    k_size = c * m
    mid = np.empty(k_size, x.dtype)
    taps = wd.reshape((kh, kw, k_size))
    for b in range(n):
        for i in range(out_h):
            for j in range(out_w):
                mid[:] = 0
                for di in range(kh):
                    u = i * stride_h + di * dil_h - pad_top
                    if u < 0 or u >= in_h:
                        continue
                    for dj in range(kw):
                        v = j * stride_w + dj * dil_w - pad_left
                        if v < 0 or v >= in_w:
                            continue
                        pixel_in, tap = x[b, u, v], taps[di, dj]
                        if m == 1:  # a loop along the channels, which LLVM vectorizes
                            for k in range(c):
                                mid[k] += pixel_in[k] * tap[k]
                        else:
                            for k in range(c):
                                value = pixel_in[k]
                                for q in range(m):
                                    mid[k * m + q] += value * tap[k * m + q]
                pixel = out[b, i, j]
                pixel[:] = 0
                for t in range(k_size):
                    value, row = mid[t], wp[t]
                    for o in range(out_c):
                        pixel[o] += value * row[o]


@kernel(inline=True)
def _pixel_sums(x1, w1, mid1, o, image, i, j, c0, n0, n1, n2, n3, in_h, in_w, k_size, kh, kw, stride_h, stride_w,
                dil_h, dil_w, pad_top, pad_left, masked):
    """The depthwise sums of output pixel ``(image, i, j)`` on the four vectors of channels from ``c0`` (the first
    ``n0``, ``n1``, ``n2``, ``n3`` lanes of each, masked loads and stores, if ``masked``; else whole ones), stored at
    flat index ``o`` of ``mid1``; four chains of multiply-adds over the taps inside the image (their range
    computed first: no branch in the loops, which border pixels, most of a small image's, would mispredict)."""
    count = lanes(x1)
    s0 = s1 = s2 = s3 = vzeros(x1)
    u0, v0 = i * stride_h - pad_top, j * stride_w - pad_left
    di_lo, di_hi = tap_range(u0, dil_h, kh, in_h)
    dj_lo, dj_hi = tap_range(v0, dil_w, kw, in_w)
    for di in range(di_lo, di_hi):
        row = (image * in_h + u0 + di * dil_h) * in_w
        for dj in range(dj_lo, dj_hi):
            a, t = (row + v0 + dj * dil_w) * k_size + c0, (di * kw + dj) * k_size + c0
            if masked:
                s0 = vfma(vload_part(x1, a, n0), vload_part(w1, t, n0), s0)
                s1 = vfma(vload_part(x1, a + count, n1), vload_part(w1, t + count, n1), s1)
                s2 = vfma(vload_part(x1, a + 2 * count, n2), vload_part(w1, t + 2 * count, n2), s2)
                s3 = vfma(vload_part(x1, a + 3 * count, n3), vload_part(w1, t + 3 * count, n3), s3)
            else:
                s0 = vfma(vload(x1, a), vload(w1, t), s0)
                s1 = vfma(vload(x1, a + count), vload(w1, t + count), s1)
                s2 = vfma(vload(x1, a + 2 * count), vload(w1, t + 2 * count), s2)
                s3 = vfma(vload(x1, a + 3 * count), vload(w1, t + 3 * count), s3)
    if masked:
        vstore_part(mid1, o, s0, n0)
        vstore_part(mid1, o + count, s1, n1)
        vstore_part(mid1, o + 2 * count, s2, n2)
        vstore_part(mid1, o + 3 * count, s3, n3)
    else:
        vstore(mid1, o, s0)
        vstore(mid1, o + count, s1)
        vstore(mid1, o + 2 * count, s2)
        vstore(mid1, o + 3 * count, s3)


@kernel
def separable_nhwc_forward_few_pixels(x, w, b, out, mid, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):
    """The whole separable forward of a layer of few output pixels without a multiplier in one call, on this
    thread: each pixel's depthwise sums four vectors of channels at a time (:func:`_pixel_sums`; the last four
    masked) into ``mid`` ``[P, K]``, then ``out = mid @ b`` in the few-pixel product's tiles
    (:mod:`sepconv.kernels.pointwise_few_pixels`, ``b`` ``[K, out_c]`` read where it is).  ``w`` ``[kh, kw, K]``;
    all C-contiguous.  For layers where the planned path's calls (the depthwise pass, the product, their choices
    and allocations: ~5 us) cost as much as the arithmetic."""
    x, w, b, out, mid = borrowed(x), borrowed(w), borrowed(b), borrowed(out), borrowed(mid)
    n, in_h, in_w, k_size = x.shape
    kh, kw = w.shape[0], w.shape[1]
    out_h, out_w, out_c = out.shape[1], out.shape[2], out.shape[3]
    count = lanes(x)
    whole = k_size - k_size % (4 * count)  # channels in whole groups of four vectors
    x1, w1, mid1 = x.reshape(-1), w.reshape(-1), mid.reshape(-1)
    p = 0
    for image in range(n):
        for i in range(out_h):
            for j in range(out_w):
                for c0 in range(0, whole, 4 * count):
                    _pixel_sums(x1, w1, mid1, p * k_size + c0, image, i, j, c0, count, count, count, count, in_h,
                                in_w, k_size, kh, kw, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, False)
                if whole < k_size:
                    rest = k_size - whole
                    _pixel_sums(x1, w1, mid1, p * k_size + whole, image, i, j, whole, rest, rest - count,
                                rest - 2 * count, rest - 3 * count, in_h, in_w, k_size, kh, kw, stride_h, stride_w,
                                dil_h, dil_w, pad_top, pad_left, True)
                p += 1
    pointwise_few_pixels_tiles(mid, b, out.reshape((p, out_c)), 0, column_tiles(out_c, b, True), True)
