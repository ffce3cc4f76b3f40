"""Dense (and grouped) conv2d kernels, NHWC: the data movement around the GEMMs.

A dense convolution is a matrix product once each output pixel's receptive field is laid out
as a row (im2col).  These kernels do that layout for a bounded chunk of output pixels at a
time, so that the column buffer stays small, and its adjoint (col2im) for the input gradient;
the products themselves go through NumPy's BLAS in ``sepconv.fast.conv2d``.  Shapes::

    x     [N, in_h, in_w, C]         input (C = groups * Cg)
    col   [groups, pixels, K]        K = kh * kw * Cg, column order (di, dj, c) like the filter
    dx    [N, in_h, in_w, C]         input gradient (accumulated into)

Output pixels are numbered flat, ``p = (b * out_h + i) * out_w + j``; a chunk is the pixels
``[pixel_begin, pixel_begin + pixels)``, held in ``col[:, :pixels]`` (the whole buffer is passed,
so that a short last chunk compiles no second signature).  Taps that fall in the padding read zeros
(written as zeros into ``col``, as the reference multiplies them), so nothing is padded.
"""

from __future__ import annotations

from numba import prange

from ._jit import kernel


@kernel(parallel=True)
def im2col_nhwc(x, col, pixel_begin, pixels, kh, kw, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, out_h, out_w):
    """Fill ``col[g, t, (di, dj, c)] = x[b, i*s_h + di*d_h - pad_top, j*s_w + dj*d_w - pad_left, g*Cg + c]``
    for the output pixels ``pixel_begin + t`` (zero outside the input); pixels split over threads."""
    in_h, in_w = x.shape[1], x.shape[2]
    groups, k_size = col.shape[0], col.shape[2]
    cg = k_size // (kh * kw)
    plane = out_h * out_w
    for t in prange(pixels):
        p = pixel_begin + t
        b = p // plane
        i = (p - b * plane) // out_w
        j = p - b * plane - i * out_w
        ih0 = i * stride_h - pad_top
        iw0 = j * stride_w - pad_left
        for g in range(groups):
            c0 = g * cg
            k = 0
            for di in range(kh):
                ih = ih0 + di * dil_h
                row_inside = 0 <= ih < in_h
                for dj in range(kw):
                    iw = iw0 + dj * dil_w
                    if row_inside and 0 <= iw < in_w:
                        for c in range(cg):
                            col[g, t, k + c] = x[b, ih, iw, c0 + c]
                    else:
                        for c in range(cg):
                            col[g, t, k + c] = 0
                    k += cg


@kernel(parallel=True)
def col2im_add_nhwc(col, dx, pixel_begin, pixels, kh, kw, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, out_h, out_w):
    """Adjoint of :func:`im2col_nhwc`: ``dx[...] += col[g, t, (di, dj, c)]`` for the chunk's pixels.

    Written as a gather over input pixels (each input row is owned by one thread, so there are
    no write races): an input pixel receives, for each tap, the one output pixel that read it
    through that tap, if that pixel is in the chunk.
    """
    in_h, in_w = dx.shape[1], dx.shape[2]
    groups, k_size = col.shape[0], col.shape[2]
    cg = k_size // (kh * kw)
    plane = out_h * out_w
    pixel_end = pixel_begin + pixels
    # the flat input rows q = b * in_h + ih that this chunk's output rows read
    first_row = pixel_begin // out_w
    last_row = (pixel_end - 1) // out_w
    b_first = first_row // out_h
    b_last = last_row // out_h
    q_begin = b_first * in_h + max(0, (first_row - b_first * out_h) * stride_h - pad_top)
    q_end = b_last * in_h + min(in_h, (last_row - b_last * out_h) * stride_h - pad_top + (kh - 1) * dil_h + 1)
    for q in prange(q_begin, q_end):
        b = q // in_h
        ih = q - b * in_h
        for di in range(kh):
            i_scaled = ih + pad_top - di * dil_h
            if i_scaled < 0 or i_scaled % stride_h != 0:
                continue
            i = i_scaled // stride_h
            if i >= out_h:
                continue
            for iw in range(in_w):
                for dj in range(kw):
                    j_scaled = iw + pad_left - dj * dil_w
                    if j_scaled < 0 or j_scaled % stride_w != 0:
                        continue
                    j = j_scaled // stride_w
                    if j >= out_w:
                        continue
                    t = b * plane + i * out_w + j - pixel_begin
                    if t < 0 or t >= pixels:
                        continue
                    k = (di * kw + dj) * cg
                    for g in range(groups):
                        c0 = g * cg
                        for c in range(cg):
                            dx[b, ih, iw, c0 + c] += col[g, t, k + c]
