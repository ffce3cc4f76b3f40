"""Separable conv2d kernels, NHWC: the depthwise stage of a band of output pixels.

The fused separable forward (``sepconv.fast.separable``) computes the depthwise result of a
band of output pixels into a small, cache-resident buffer and multiplies it by the pointwise
filter straight away, so that the intermediate tensor is never written to memory whole.
Shapes::

    x     [N, in_h, in_w, C]        input
    wd    [kh, kw, C, M]            depthwise filter (M = channel multiplier)
    band  [pixels, C * M]           depthwise output of the band, channel k*M + q

Output pixels are numbered flat, ``p = (b * out_h + i) * out_w + j``; the band is the pixels
``[pixel_begin, pixel_begin + pixels)`` in ``band[:pixels]``.  Taps outside the input are
skipped (the adapter sends non-finite filters to the reference, where ``0 * inf`` matters).
"""

from __future__ import annotations

from numba import prange

from ._jit import kernel


@kernel(parallel=True)
def depthwise_band_nhwc(x, wd, band, pixel_begin, pixels, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left,
                        out_h, out_w):
    """``band[t, k*M + q] = sum_{di, dj} x[b, i*s_h + di*d_h - pad_top, j*s_w + dj*d_w - pad_left, k]
    * wd[di, dj, k, q]`` for the output pixels ``pixel_begin + t``; pixels split over threads."""
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    kh, kw, m = wd.shape[0], wd.shape[1], wd.shape[3]
    plane = out_h * out_w
    for t in prange(pixels):
        p = pixel_begin + t
        b = p // plane
        i = (p - b * plane) // out_w
        j = p - b * plane - i * out_w
        ih0 = i * stride_h - pad_top
        iw0 = j * stride_w - pad_left
        for o in range(c * m):
            band[t, o] = 0
        for di in range(kh):
            ih = ih0 + di * dil_h
            if ih < 0 or ih >= in_h:
                continue
            for dj in range(kw):
                iw = iw0 + dj * dil_w
                if iw < 0 or iw >= in_w:
                    continue
                if m == 1:
                    for k in range(c):
                        band[t, k] += x[b, ih, iw, k] * wd[di, dj, k, 0]
                else:
                    for k in range(c):
                        value = x[b, ih, iw, k]
                        for q in range(m):
                            band[t, k * m + q] += value * wd[di, dj, k, q]
