"""Separable conv2d kernels, NHWC: the depthwise stage of a band of output pixels.

The fused separable forward (``sepconv.fast.separable``) computes the depthwise result of a
band of output pixels into a small, cache-resident buffer and multiplies it by the pointwise
filter straight away, so that the intermediate tensor is never written to memory whole.
Shapes::

    x     [N, in_h, in_w, C]        input
    wd    [kh, kw, C * M]           depthwise filter (M = channel multiplier), channel k*M + q
    band  [pixels, C * M]           depthwise output of the band, channel k*M + q

Output pixels are numbered flat, ``p = (b * out_h + i) * out_w + j``; the band is the pixels
``[pixel_begin, pixel_begin + pixels)`` in ``band[:pixels]``.  Taps outside the input are
skipped (the adapter sends non-finite filters to the reference, where ``0 * inf`` matters).

The kernel runs on the calling thread: it alternates with BLAS calls, which bring their own
threads (see ``sepconv.kernels.conv2d`` on OpenMP workers spinning against BLAS's).
"""

from __future__ import annotations

from ._jit import kernel


@kernel
def depthwise_band_nhwc(x, wd, band, multiplier, pixel_begin, pixels, stride_h, stride_w, dil_h, dil_w,
                        pad_top, pad_left, out_h, out_w):
    """``band[t, k*M + q] = sum_{di, dj} x[b, i*s_h + di*d_h - pad_top, j*s_w + dj*d_w - pad_left, k]
    * wd[di, dj, k*M + q]`` for the output pixels ``pixel_begin + t`` (``wd`` is the depthwise
    filter as ``[kh, kw, C * M]``).  A 3x3, multiplier-1 pixel whose window is inside the input
    takes one pass with all nine taps; the others accumulate tap by tap."""
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    kh, kw = wd.shape[0], wd.shape[1]
    m = multiplier
    plane = out_h * out_w
    for t in range(pixels):
        p = pixel_begin + t
        b = p // plane
        i = (p - b * plane) // out_w
        j = p - b * plane - i * out_w
        ih0 = i * stride_h - pad_top
        iw0 = j * stride_w - pad_left
        inside = ih0 >= 0 and iw0 >= 0 and ih0 + (kh - 1) * dil_h < in_h and iw0 + (kw - 1) * dil_w < in_w
        if m == 1 and kh == 3 and kw == 3 and inside:
            r0, r1, r2 = x[b, ih0], x[b, ih0 + dil_h], x[b, ih0 + 2 * dil_h]
            j0, j1, j2 = iw0, iw0 + dil_w, iw0 + 2 * dil_w
            w0, w1, w2 = wd[0], wd[1], wd[2]
            for k in range(c):
                band[t, k] = (r0[j0, k] * w0[0, k] + r0[j1, k] * w0[1, k] + r0[j2, k] * w0[2, k]
                              + r1[j0, k] * w1[0, k] + r1[j1, k] * w1[1, k] + r1[j2, k] * w1[2, k]
                              + r2[j0, k] * w2[0, k] + r2[j1, k] * w2[1, k] + r2[j2, k] * w2[2, k])
            continue
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
                        band[t, k] += x[b, ih, iw, k] * wd[di, dj, k]
                else:
                    for k in range(c):
                        value = x[b, ih, iw, k]
                        for q in range(m):
                            band[t, k * m + q] += value * wd[di, dj, k * m + q]
