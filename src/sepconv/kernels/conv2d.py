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

All of them run on the calling thread: they sit between BLAS calls, which bring their own
threads, and a Numba (OpenMP) parallel region right before a BLAS call leaves its workers
spinning against BLAS's (measured here: 20-35 ms instead of 0.5 ms for a 16x784x64x64 matmul).
"""

from __future__ import annotations

from ._jit import kernel


@kernel
def im2col_nhwc(x, col, pixel_begin, pixels, kh, kw, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, out_h, out_w):
    """Fill ``col[g, t, (di, dj, c)] = x[b, i*s_h + di*d_h - pad_top, j*s_w + dj*d_w - pad_left, g*Cg + c]``
    for the output pixels ``pixel_begin + t`` (zero outside the input)."""
    in_h, in_w = x.shape[1], x.shape[2]
    groups, k_size = col.shape[0], col.shape[2]
    cg = k_size // (kh * kw)
    plane = out_h * out_w
    for t in range(pixels):
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


@kernel
def col2im_add_nhwc(col, dx, pixel_begin, pixels, kh, kw, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, out_h, out_w):
    """Adjoint of :func:`im2col_nhwc`: ``dx[...] += col[g, t, (di, dj, c)]`` for the chunk's pixels.

    Written as a gather over input pixels (race-free, should it ever be split over threads): an
    input pixel receives, for each tap, the one output pixel that read it through that tap, if
    that pixel is in the chunk.
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
    for q in range(q_begin, q_end):
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


# --------------------------------------------------------------------------- Winograd F(2x2, 3x3)
#
# For a 3x3 filter at stride 1, each 2x2 block of outputs ("tile") is computed from a 4x4 block
# of input as Y = A^T [(G g G^T) * (B^T d B)] A: 16 products per tile and channel pair instead
# of 36, done as 16 GEMMs [tiles, C] @ [C, out_c] (one per position e = 4r + s of the 4x4
# transformed tile).  These kernels do the two transforms; tile t of the chunk is the flat tile
# tile_begin + t = (b * tiles_h + ti) * tiles_w + tj, whose outputs are rows 2ti, 2ti+1 and
# columns 2tj, 2tj+1 and whose input block starts at (2ti - pad_top, 2tj - pad_left).
#
#   B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]      A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]


@kernel
def winograd_f2x3_input_nhwc(x, v, scratch, tile_begin, tiles, pad_top, pad_left, tiles_h, tiles_w):
    """``v[4r + s, t, c] = (B^T d B)[r, s]`` for the input block ``d`` of each tile (zeros outside
    the input); ``scratch [16, C]`` holds ``B^T d``.  ``x`` must be finite: a value outside the
    input is read at a clamped position and multiplied by 0."""
    in_h, in_w, c_size = x.shape[1], x.shape[2], x.shape[3]
    plane = tiles_h * tiles_w
    for t in range(tiles):
        p = tile_begin + t
        b = p // plane
        ti = (p - b * plane) // tiles_w
        tj = p - b * plane - ti * tiles_w
        ih0 = 2 * ti - pad_top
        iw0 = 2 * tj - pad_left
        rows = (min(max(ih0, 0), in_h - 1), min(max(ih0 + 1, 0), in_h - 1),
                min(max(ih0 + 2, 0), in_h - 1), min(max(ih0 + 3, 0), in_h - 1))
        row_inside = (1.0 if 0 <= ih0 < in_h else 0.0, 1.0 if 0 <= ih0 + 1 < in_h else 0.0,
                      1.0 if 0 <= ih0 + 2 < in_h else 0.0, 1.0 if 0 <= ih0 + 3 < in_h else 0.0)
        for s in range(4):  # B^T d, one column of the block at a time
            iw = iw0 + s
            col_inside = 1.0 if 0 <= iw < in_w else 0.0
            iw = min(max(iw, 0), in_w - 1)
            f0, f1 = row_inside[0] * col_inside, row_inside[1] * col_inside
            f2, f3 = row_inside[2] * col_inside, row_inside[3] * col_inside
            for c in range(c_size):
                d0 = x[b, rows[0], iw, c] * f0
                d1 = x[b, rows[1], iw, c] * f1
                d2 = x[b, rows[2], iw, c] * f2
                d3 = x[b, rows[3], iw, c] * f3
                scratch[s, c] = d0 - d2
                scratch[4 + s, c] = d1 + d2
                scratch[8 + s, c] = d2 - d1
                scratch[12 + s, c] = d1 - d3
        for r in range(4):  # (B^T d) B, one row at a time
            for c in range(c_size):
                e0, e1, e2, e3 = scratch[4 * r, c], scratch[4 * r + 1, c], scratch[4 * r + 2, c], scratch[4 * r + 3, c]
                v[4 * r, t, c] = e0 - e2
                v[4 * r + 1, t, c] = e1 + e2
                v[4 * r + 2, t, c] = e2 - e1
                v[4 * r + 3, t, c] = e1 - e3


@kernel
def winograd_f2x3_output_nhwc(m, out, tile_begin, tiles, tiles_h, tiles_w):
    """``out[b, 2ti + r, 2tj + s, o] = (A^T M A)[r, s]`` with ``M[4r + s] = m[4r + s, t, o]``,
    for the outputs of each tile that lie inside ``out``."""
    out_h, out_w, o_size = out.shape[1], out.shape[2], out.shape[3]
    plane = tiles_h * tiles_w
    for t in range(tiles):
        p = tile_begin + t
        b = p // plane
        ti = (p - b * plane) // tiles_w
        tj = p - b * plane - ti * tiles_w
        i0 = 2 * ti
        j0 = 2 * tj
        second_row = i0 + 1 < out_h
        second_col = j0 + 1 < out_w
        for o in range(o_size):
            # rows of A^T M
            a0 = m[0, t, o] + m[4, t, o] + m[8, t, o]
            a1 = m[1, t, o] + m[5, t, o] + m[9, t, o]
            a2 = m[2, t, o] + m[6, t, o] + m[10, t, o]
            a3 = m[3, t, o] + m[7, t, o] + m[11, t, o]
            b0 = m[4, t, o] - m[8, t, o] - m[12, t, o]
            b1 = m[5, t, o] - m[9, t, o] - m[13, t, o]
            b2 = m[6, t, o] - m[10, t, o] - m[14, t, o]
            b3 = m[7, t, o] - m[11, t, o] - m[15, t, o]
            out[b, i0, j0, o] = a0 + a1 + a2
            if second_col:
                out[b, i0, j0 + 1, o] = a1 - a2 - a3
            if second_row:
                out[b, i0 + 1, j0, o] = b0 + b1 + b2
                if second_col:
                    out[b, i0 + 1, j0 + 1, o] = b1 - b2 - b3
