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


# --------------------------------------------------------------------------- Winograd F(m x m, 3x3)
#
# For a 3x3 filter at stride 1, each m x m block of outputs ("tile") is computed from an
# a x a block of input (a = m + 2) as Y = A^T [(G g G^T) * (B^T d B)] A: a*a products per tile
# and channel pair instead of 9*m*m, done as a*a GEMMs [tiles, C] @ [C, out_c], one per
# position e = a*r + s of the transformed tile.  These kernels do the two transforms for the
# matrices they are given (``bt`` = B^T [a, a], ``at`` = A^T [m, a]).  Tile t of a chunk is the
# flat tile tile_begin + t = (b * tiles_h + ti) * tiles_w + tj: outputs rows m*ti .. m*ti + m - 1
# and columns m*tj .. m*tj + m - 1, input block from (m*ti - pad_top, m*tj - pad_left).


@kernel
def winograd_input_nhwc(x, v, bt, block, half, tile_begin, tiles, pad_top, pad_left, tiles_h, tiles_w):
    """``v[a*r + s, t, c] = (B^T d B)[r, s]`` for the input block ``d`` of each tile (zeros outside
    the input).  Scratch: ``block`` and ``half`` ``[a*a, C]`` hold ``d`` and ``B^T d``."""
    in_h, in_w, c_size = x.shape[1], x.shape[2], x.shape[3]
    a = bt.shape[0]
    tile = a - 2
    plane = tiles_h * tiles_w
    for t in range(tiles):
        p = tile_begin + t
        b = p // plane
        ti = (p - b * plane) // tiles_w
        tj = p - b * plane - ti * tiles_w
        ih0 = tile * ti - pad_top
        iw0 = tile * tj - pad_left
        for r in range(a):
            ih = ih0 + r
            for s in range(a):
                iw = iw0 + s
                e = a * r + s
                if 0 <= ih < in_h and 0 <= iw < in_w:
                    for c in range(c_size):
                        block[e, c] = x[b, ih, iw, c]
                else:
                    for c in range(c_size):
                        block[e, c] = 0
        for r_out in range(a):  # B^T d
            for s in range(a):
                e_out = a * r_out + s
                for c in range(c_size):
                    half[e_out, c] = 0
                for r in range(a):
                    coefficient = bt[r_out, r]
                    if coefficient != 0:
                        e = a * r + s
                        for c in range(c_size):
                            half[e_out, c] += coefficient * block[e, c]
        for r in range(a):  # (B^T d) B
            for s_out in range(a):
                e_out = a * r + s_out
                for c in range(c_size):
                    v[e_out, t, c] = 0
                for s in range(a):
                    coefficient = bt[s_out, s]
                    if coefficient != 0:
                        e = a * r + s
                        for c in range(c_size):
                            v[e_out, t, c] += coefficient * half[e, c]


@kernel
def winograd_output_nhwc(m, out, at, half, tile_begin, tiles, tiles_h, tiles_w):
    """``out[b, tile*ti + i, tile*tj + j, o] = (A^T M A)[i, j]`` with ``M[a*r + s] = m[a*r + s, t, o]``,
    for the outputs of each tile that lie inside ``out``.  Scratch: ``half [tile*a, out_c]``."""
    out_h, out_w, o_size = out.shape[1], out.shape[2], out.shape[3]
    tile, a = at.shape[0], at.shape[1]
    plane = tiles_h * tiles_w
    for t in range(tiles):
        p = tile_begin + t
        b = p // plane
        ti = (p - b * plane) // tiles_w
        tj = p - b * plane - ti * tiles_w
        for i in range(tile):  # A^T M
            for s in range(a):
                e_out = a * i + s
                for o in range(o_size):
                    half[e_out, o] = 0
                for r in range(a):
                    coefficient = at[i, r]
                    if coefficient != 0:
                        e = a * r + s
                        for o in range(o_size):
                            half[e_out, o] += coefficient * m[e, t, o]
        for i in range(min(tile, out_h - tile * ti)):  # (A^T M) A, the outputs inside
            for j in range(min(tile, out_w - tile * tj)):
                row = out[b, tile * ti + i, tile * tj + j]
                for o in range(o_size):
                    row[o] = 0
                for s in range(a):
                    coefficient = at[j, s]
                    if coefficient != 0:
                        e = a * i + s
                        for o in range(o_size):
                            row[o] += coefficient * half[e, o]
