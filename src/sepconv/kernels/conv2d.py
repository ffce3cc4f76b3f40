"""Dense (and grouped) conv2d kernels, NHWC: the data movement around the GEMMs, the fused
Winograd chunks, and the direct kernel for few input channels.

A dense convolution is a matrix product once each output pixel's receptive field is laid out
as a row (im2col).  These kernels do that layout for a bounded chunk of output pixels at a
time, so that the column buffer stays small, and its adjoint (col2im) for the input gradient;
those products go through BLAS in ``sepconv.fast.conv2d`` (on our threads: ``sepconv.fast.gemm``).
The Winograd transforms serve both Winograd plans: between BLAS products, or fused with the register-tiled products of
:mod:`sepconv.kernels.pointwise` (``winograd_f2x3_fused_*``).  Shapes::

    x     [N, in_h, in_w, C]         input (C = groups * Cg)
    col   [groups, pixels, K]        K = kh * kw * Cg, column order (di, dj, c) like the filter
    dx    [N, in_h, in_w, C]         input gradient (accumulated into)

Output pixels are numbered flat, ``p = (b * out_h + i) * out_w + j``; a chunk is the pixels
``[pixel_begin, pixel_begin + pixels)``, held in ``col[:, :pixels]`` (the whole buffer is passed,
so that a short last chunk compiles no second signature).  Taps that fall in the padding read zeros
(written as zeros into ``col``, as the reference multiplies them), so nothing is padded.

The layout kernels split their pixels (tiles) into ``n_chunks`` contiguous ranges, one per
Numba thread; with one range, ``sepconv.fast.conv2d`` calls the ``*_range`` kernel itself, so
that no parallel region starts at all.  They alternate
with BLAS products, which run on the same OpenMP workers (:mod:`sepconv.kernels.blas`): on
OpenBLAS's own threads the two pools fought for the two cores (measured, with our workers
spinning: 20-35 ms instead of 0.5 ms for a 16x784x64x64 matmul).
"""

from __future__ import annotations

from numba import prange

from ._jit import kernel
from ._simd import lanes, vadd, vbroadcast, vfma, vload_n, vsplat, vstore_n, vzeros
from ._window import interior
from .pointwise import TILE_PIXELS, pack_pointwise_each, pointwise_band


@kernel(parallel=True)
def im2col_nhwc(x, col, pixel_begin, pixels, n_chunks, kh, kw, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left,
                out_h, out_w):
    """:func:`im2col_nhwc_range` over ``pixels`` output pixels, in ``n_chunks`` ranges in parallel."""
    for k in prange(n_chunks):
        im2col_nhwc_range(x, col, pixel_begin, pixels * k // n_chunks, pixels * (k + 1) // n_chunks, kh, kw,
                          stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, out_h, out_w)


@kernel
def im2col_nhwc_range(x, col, pixel_begin, t_begin, t_end, kh, kw, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left,
                      out_h, out_w):
    """Fill ``col[g, t, (di, dj, c)] = x[b, i*s_h + di*d_h - pad_top, j*s_w + dj*d_w - pad_left, g*Cg + c]``
    for the output pixels ``pixel_begin + t``, ``t_begin <= t < t_end`` (zero outside the input)."""
    in_h, in_w, c_all = x.shape[1], x.shape[2], x.shape[3]
    groups, k_size = col.shape[0], col.shape[2]
    cg = k_size // (kh * kw)
    plane = out_h * out_w
    # Few channels (a network's stem: 3): each tap is a run of only C values, so take a filter row's
    # kw * C values, contiguous in the input when undilated and ungrouped, as one run (measured 1x224x224x3,
    # 3x3 stride 2: 1.7 -> 1.1 ms; with 64 channels the per-tap runs were faster).
    run = kw * cg
    short_runs = groups == 1 and dil_w == 1 and cg <= 8
    x_rows = x.reshape(x.shape[0], in_h, in_w * c_all)
    p = pixel_begin + t_begin
    b = p // plane
    i = (p - b * plane) // out_w
    j = p - b * plane - i * out_w
    for t in range(t_begin, t_end):
        ih0 = i * stride_h - pad_top
        iw0 = j * stride_w - pad_left
        whole_rows = short_runs and iw0 >= 0 and iw0 + kw <= in_w
        for g in range(groups):
            c0 = g * cg
            k = 0
            for di in range(kh):
                ih = ih0 + di * dil_h
                row_inside = 0 <= ih < in_h
                if whole_rows:  # one copy of kw * C values per filter row, not kw copies of C
                    if row_inside:
                        base = iw0 * c_all
                        for u in range(run):
                            col[g, t, k + u] = x_rows[b, ih, base + u]
                    else:
                        for u in range(run):
                            col[g, t, k + u] = 0
                    k += run
                    continue
                for dj in range(kw):
                    iw = iw0 + dj * dil_w
                    if row_inside and 0 <= iw < in_w:
                        for c in range(cg):
                            col[g, t, k + c] = x[b, ih, iw, c0 + c]
                    else:
                        for c in range(cg):
                            col[g, t, k + c] = 0
                    k += cg
        j += 1  # the next output pixel, without divisions
        if j == out_w:
            j = 0
            i += 1
            if i == out_h:
                i = 0
                b += 1


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


@kernel(parallel=True)
def winograd_f2x3_input_nhwc(x, v, n_chunks, tile_begin, tiles, pad_top, pad_left, tiles_h, tiles_w):
    """:func:`winograd_f2x3_input_range` over ``tiles`` tiles, in ``n_chunks`` ranges in parallel."""
    for k in prange(n_chunks):
        winograd_f2x3_input_range(x, v, tile_begin, tiles * k // n_chunks, tiles * (k + 1) // n_chunks,
                                  pad_top, pad_left, tiles_h, tiles_w)


@kernel(parallel=True)
def winograd_f2x3_output_nhwc(m, out, n_chunks, tile_begin, tiles, tiles_h, tiles_w):
    """:func:`winograd_f2x3_output_range` over ``tiles`` tiles, in ``n_chunks`` ranges in parallel."""
    for k in prange(n_chunks):
        winograd_f2x3_output_range(m, out, tile_begin, tiles * k // n_chunks, tiles * (k + 1) // n_chunks,
                                   tiles_h, tiles_w)


@kernel(inline=True)
def _input_row(xf, in_h, in_w, c_size, b, ih, iw0, k, n, zero):
    """The four input pixels ``(ih, iw0 .. iw0 + 3)`` of image ``b`` (``xf`` the flat input), channels
    ``[k, k + n)``; zeros outside the input."""
    d0 = d1 = d2 = d3 = zero
    if 0 <= ih < in_h:
        row = (b * in_h + ih) * in_w * c_size + k
        if 0 <= iw0 < in_w:
            d0 = vload_n(xf, row + iw0 * c_size, n)
        if 0 <= iw0 + 1 < in_w:
            d1 = vload_n(xf, row + (iw0 + 1) * c_size, n)
        if 0 <= iw0 + 2 < in_w:
            d2 = vload_n(xf, row + (iw0 + 2) * c_size, n)
        if 0 <= iw0 + 3 < in_w:
            d3 = vload_n(xf, row + (iw0 + 3) * c_size, n)
    return d0, d1, d2, d3


@kernel(inline=True)
def _times_b(vf, e, step, s0, s1, s2, s3, minus, n):
    """Store ``[s0, s1, s2, s3] B`` (``B``'s columns: ``s0 - s2``, ``s1 + s2``, ``s2 - s1``, ``s1 - s3``) at
    ``vf[e]``, ``vf[e + step]``, ... ."""
    vstore_n(vf, e, vfma(s2, minus, s0), n)
    vstore_n(vf, e + step, vadd(s1, s2), n)
    vstore_n(vf, e + 2 * step, vfma(s1, minus, s2), n)
    vstore_n(vf, e + 3 * step, vfma(s3, minus, s1), n)


@kernel
def winograd_f2x3_input_range(x, v, tile_begin, t_begin, t_end, pad_top, pad_left, tiles_h, tiles_w):
    """``v[4r + s, t, c] = (B^T d B)[r, s]`` for the input block ``d`` of each tile ``t_begin <= t < t_end``
    (zeros outside the input).  SIMD over a block of channels: the 16 input vectors of a tile are
    loaded once, transformed in registers and stored as 16 vectors (measured against a scalar
    loop per row, 1x56x56x64, one thread: 418 -> 187 us)."""
    in_h, in_w, c_size = x.shape[1], x.shape[2], x.shape[3]
    plane = tiles_h * tiles_w
    count = lanes(v)
    step = v.shape[1] * c_size
    xf = x.reshape(-1)
    vf = v.reshape(-1)
    minus = vsplat(v, -1.0)
    zero = vzeros(v)
    for t in range(t_begin, t_end):
        p = tile_begin + t
        b = p // plane
        ti = (p - b * plane) // tiles_w
        tj = p - b * plane - ti * tiles_w
        ih0 = 2 * ti - pad_top
        iw0 = 2 * tj - pad_left
        for k in range(0, c_size, count):
            n = min(count, c_size - k)
            a0, a1, a2, a3 = _input_row(xf, in_h, in_w, c_size, b, ih0, iw0, k, n, zero)
            b0, b1, b2, b3 = _input_row(xf, in_h, in_w, c_size, b, ih0 + 1, iw0, k, n, zero)
            c0, c1, c2, c3 = _input_row(xf, in_h, in_w, c_size, b, ih0 + 2, iw0, k, n, zero)
            d0, d1, d2, d3 = _input_row(xf, in_h, in_w, c_size, b, ih0 + 3, iw0, k, n, zero)
            o = t * c_size + k
            # B^T d, row by row (rows of B^T: d0 - d2, d1 + d2, d2 - d1, d1 - d3), each times B
            _times_b(vf, o, step, vfma(c0, minus, a0), vfma(c1, minus, a1), vfma(c2, minus, a2), vfma(c3, minus, a3),
                     minus, n)
            _times_b(vf, o + 4 * step, step, vadd(b0, c0), vadd(b1, c1), vadd(b2, c2), vadd(b3, c3), minus, n)
            _times_b(vf, o + 8 * step, step, vfma(b0, minus, c0), vfma(b1, minus, c1), vfma(b2, minus, c2),
                     vfma(b3, minus, c3), minus, n)
            _times_b(vf, o + 12 * step, step, vfma(d0, minus, b0), vfma(d1, minus, b1), vfma(d2, minus, b2),
                     vfma(d3, minus, b3), minus, n)


@kernel
def winograd_f2x3_output_range(m, out, tile_begin, t_begin, t_end, tiles_h, tiles_w):
    """``out[b, 2ti + r, 2tj + s, o] = (A^T M A)[r, s]`` with ``M[4r + s] = m[4r + s, t, o]``,
    for the outputs of each tile ``t_begin <= t < t_end`` that lie inside ``out``.  SIMD over a
    block of output channels: 16 loads, the transform in registers, up to four stores."""
    out_h, out_w, o_size = out.shape[1], out.shape[2], out.shape[3]
    plane = tiles_h * tiles_w
    count = lanes(m)
    step = m.shape[1] * o_size
    mf = m.reshape(-1)
    of = out.reshape(-1)
    minus = vsplat(m, -1.0)
    for t in range(t_begin, t_end):
        p = tile_begin + t
        b = p // plane
        ti = (p - b * plane) // tiles_w
        tj = p - b * plane - ti * tiles_w
        i, j = 2 * ti, 2 * tj
        for k in range(0, o_size, count):
            n = min(count, o_size - k)
            q = t * o_size + k
            # A^T M: row 0 = M_0 + M_1 + M_2, row 1 = M_1 - M_2 - M_3 (M_r the four values 4r .. 4r + 3)
            top = (vadd(vadd(vload_n(mf, q, n), vload_n(mf, 4 * step + q, n)), vload_n(mf, 8 * step + q, n)),
                   vadd(vadd(vload_n(mf, step + q, n), vload_n(mf, 5 * step + q, n)), vload_n(mf, 9 * step + q, n)),
                   vadd(vadd(vload_n(mf, 2 * step + q, n), vload_n(mf, 6 * step + q, n)), vload_n(mf, 10 * step + q, n)),
                   vadd(vadd(vload_n(mf, 3 * step + q, n), vload_n(mf, 7 * step + q, n)), vload_n(mf, 11 * step + q, n)))
            low = (vfma(vadd(vload_n(mf, 8 * step + q, n), vload_n(mf, 12 * step + q, n)), minus,
                        vload_n(mf, 4 * step + q, n)),
                   vfma(vadd(vload_n(mf, 9 * step + q, n), vload_n(mf, 13 * step + q, n)), minus,
                        vload_n(mf, 5 * step + q, n)),
                   vfma(vadd(vload_n(mf, 10 * step + q, n), vload_n(mf, 14 * step + q, n)), minus,
                        vload_n(mf, 6 * step + q, n)),
                   vfma(vadd(vload_n(mf, 11 * step + q, n), vload_n(mf, 15 * step + q, n)), minus,
                        vload_n(mf, 7 * step + q, n)))
            base = ((b * out_h + i) * out_w + j) * o_size + k
            vstore_n(of, base, vadd(vadd(top[0], top[1]), top[2]), n)
            if j + 1 < out_w:
                vstore_n(of, base + o_size, vfma(vadd(top[2], top[3]), minus, top[1]), n)
            if i + 1 < out_h:
                base += out_w * o_size
                vstore_n(of, base, vadd(vadd(low[0], low[1]), low[2]), n)
                if j + 1 < out_w:
                    vstore_n(of, base + o_size, vfma(vadd(low[2], low[3]), minus, low[1]), n)


@kernel
def winograd_f2x3_fused_chunks(x, up, out, v, m, chunk, chunk_begin, chunk_end,
                               pad_top, pad_left, tiles_h, tiles_w):
    """Chunks ``[chunk_begin, chunk_end)`` of ``chunk`` tiles, each in one pass through this thread's
    buffers: the input transform into ``v [16, chunk, C]``, the 16 products ``v[e] @ U[e]`` by the
    packed register-tiled kernel (:func:`sepconv.kernels.pointwise.pointwise_band`, ``up [16, ...]``
    the packed ``U[e] [C, out_c]``) into ``m [16, chunk, out_c]``, and the output transform.  The
    transformed input and the products stay in cache, and no BLAS call is made."""
    total = out.shape[0] * tiles_h * tiles_w
    c_size, o_size = v.shape[2], m.shape[2]
    vf = v.reshape(-1)
    mf = m.reshape(-1)
    for q in range(chunk_begin, chunk_end):
        begin = q * chunk
        tiles = min(chunk, total - begin)
        winograd_f2x3_input_range(x, v, begin, 0, tiles, pad_top, pad_left, tiles_h, tiles_w)
        padded = min(chunk, tiles + (-tiles) % TILE_PIXELS)
        for e in range(16):  # the last register tile of a short chunk reads rows past it: zeros
            v[e, tiles:padded] = 0
        for e in range(16):
            pointwise_band(vf, e * chunk * c_size, tiles, c_size, up[e], mf,
                           e * chunk, o_size)
        winograd_f2x3_output_range(m, out, begin, 0, tiles, tiles_h, tiles_w)


@kernel(parallel=True)
def winograd_f2x3_fused_parallel(x, u, ups, out, v, m, pad_top, pad_left, tiles_h,
                                 tiles_w):
    """:func:`winograd_f2x3_fused_chunks` over all tiles, ``v.shape[0]`` threads, each with ``v[t]``,
    ``m[t]`` of its own and a contiguous run of chunks; each thread first packs the transformed filter
    ``u [16, C, out_c]`` into its own ``ups[t]`` (see :func:`sepconv.kernels.pointwise.pointwise_parallel`)."""
    threads, chunk = v.shape[0], v.shape[2]
    chunks = -(-(out.shape[0] * tiles_h * tiles_w) // chunk)
    for t in prange(threads):
        pack_pointwise_each(u, ups[t])
        winograd_f2x3_fused_chunks(x, ups[t], out, v[t], m[t], chunk,
                                   t * chunks // threads, (t + 1) * chunks // threads, pad_top, pad_left, tiles_h,
                                   tiles_w)


# --------------------------------------------------------------------------- few input channels


@kernel(inline=True)
def _few_channels_quad(x, wk, b, ih0, dil_h, q0, step, dil_w, ob, n, like):
    """Output channels ``[ob, ob + n)`` of four neighbouring output pixels whose taps are all inside the
    input columns; pixel ``p``'s first tap is at flat index ``q0 + p * step`` of an input row.  Each
    filter tap's weight vector is loaded once for the four pixels; the input values are broadcast.
    A filter row in the padding multiplies zeros (as the reference).  Rows are addressed by flat
    index into ``x``, not as row views (a view made in this loop costs reference counting)."""
    in_h, in_w, c_in, out_c = x.shape[1], x.shape[2], x.shape[3], wk.shape[2]
    taps = wk.shape[1]
    zero = vzeros(like)
    a0 = a1 = a2 = a3 = zero
    for di in range(wk.shape[0]):
        ih = ih0 + di * dil_h
        inside = 0 <= ih < in_h
        base = (b * in_h + ih) * in_w * c_in + q0
        for t in range(taps):  # t = dj * c_in + ci: contiguous in the input row when undilated
            wv = vload_n(wk, (di * taps + t) * out_c + ob, n)
            if inside:
                q = base + (t if dil_w == 1 else (t // c_in) * dil_w * c_in + t % c_in)
                a0 = vfma(vbroadcast(x, q), wv, a0)
                a1 = vfma(vbroadcast(x, q + step), wv, a1)
                a2 = vfma(vbroadcast(x, q + 2 * step), wv, a2)
                a3 = vfma(vbroadcast(x, q + 3 * step), wv, a3)
            else:
                a0, a1, a2, a3 = vfma(zero, wv, a0), vfma(zero, wv, a1), vfma(zero, wv, a2), vfma(zero, wv, a3)
    return a0, a1, a2, a3


@kernel(inline=True)
def _few_channels_octet(x, wk, b, ih0, dil_h, q0, step, dil_w, ob, n0, n1, like):
    """As :func:`_few_channels_quad`, eight neighbouring pixels by two vectors of output channels
    (``[ob, ob + n0)`` and the next ``n1``, ``n1 <= 0``: none): 16 sums in registers, and per
    filter tap two weight loads and eight broadcasts for 16 multiply-adds (the quad: one and four
    for four, which waits on the multiply-adds' latency)."""
    in_h, in_w, c_in, out_c = x.shape[1], x.shape[2], x.shape[3], wk.shape[2]
    taps = wk.shape[1]
    count = lanes(like)
    zero = vzeros(like)
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
    e0 = e1 = e2 = e3 = e4 = e5 = e6 = e7 = zero
    for di in range(wk.shape[0]):
        ih = ih0 + di * dil_h
        if not 0 <= ih < in_h:  # a filter row in the padding multiplies zeros (as the reference)
            for t in range(taps):
                w_lo = vload_n(wk, (di * taps + t) * out_c + ob, n0)
                w_hi = vload_n(wk, (di * taps + t) * out_c + ob + count, n1)
                a0, a1, a2, a3 = vfma(zero, w_lo, a0), vfma(zero, w_lo, a1), vfma(zero, w_lo, a2), vfma(zero, w_lo, a3)
                a4, a5, a6, a7 = vfma(zero, w_lo, a4), vfma(zero, w_lo, a5), vfma(zero, w_lo, a6), vfma(zero, w_lo, a7)
                e0, e1, e2, e3 = vfma(zero, w_hi, e0), vfma(zero, w_hi, e1), vfma(zero, w_hi, e2), vfma(zero, w_hi, e3)
                e4, e5, e6, e7 = vfma(zero, w_hi, e4), vfma(zero, w_hi, e5), vfma(zero, w_hi, e6), vfma(zero, w_hi, e7)
            continue
        base = (b * in_h + ih) * in_w * c_in + q0
        for t in range(taps):  # t = dj * c_in + ci: contiguous in the input row when undilated
            w_lo = vload_n(wk, (di * taps + t) * out_c + ob, n0)
            w_hi = vload_n(wk, (di * taps + t) * out_c + ob + count, n1)
            q = base + (t if dil_w == 1 else (t // c_in) * dil_w * c_in + t % c_in)
            v = vbroadcast(x, q)
            a0, e0 = vfma(v, w_lo, a0), vfma(v, w_hi, e0)
            v = vbroadcast(x, q + step)
            a1, e1 = vfma(v, w_lo, a1), vfma(v, w_hi, e1)
            v = vbroadcast(x, q + 2 * step)
            a2, e2 = vfma(v, w_lo, a2), vfma(v, w_hi, e2)
            v = vbroadcast(x, q + 3 * step)
            a3, e3 = vfma(v, w_lo, a3), vfma(v, w_hi, e3)
            v = vbroadcast(x, q + 4 * step)
            a4, e4 = vfma(v, w_lo, a4), vfma(v, w_hi, e4)
            v = vbroadcast(x, q + 5 * step)
            a5, e5 = vfma(v, w_lo, a5), vfma(v, w_hi, e5)
            v = vbroadcast(x, q + 6 * step)
            a6, e6 = vfma(v, w_lo, a6), vfma(v, w_hi, e6)
            v = vbroadcast(x, q + 7 * step)
            a7, e7 = vfma(v, w_lo, a7), vfma(v, w_hi, e7)
    return (a0, a1, a2, a3, a4, a5, a6, a7), (e0, e1, e2, e3, e4, e5, e6, e7)


@kernel(inline=True)
def _few_channels_pixel(x, wk, b, ih0, dil_h, col0, dil_w, ob, n, like):
    """As :func:`_few_channels_quad`, one pixel whose first tap is at input column ``col0``; taps outside
    the input read zeros (multiplied, as the reference multiplies its padding)."""
    in_h, in_w, c_in, out_c = x.shape[1], x.shape[2], x.shape[3], wk.shape[2]
    zero = vzeros(like)
    a = zero
    for di in range(wk.shape[0]):
        ih = ih0 + di * dil_h
        for dj in range(wk.shape[1] // c_in):
            col = col0 + dj * dil_w
            inside = 0 <= ih < in_h and 0 <= col < in_w
            base = ((b * in_h + ih) * in_w + col) * c_in
            for ci in range(c_in):
                v = vbroadcast(x, base + ci) if inside else zero
                a = vfma(v, vload_n(wk, ((di * (wk.shape[1] // c_in) + dj) * c_in + ci) * out_c + ob, n), a)
    return a


@kernel
def conv2d_nhwc_few_channels_rows(x, wk, out, row_begin, row_end, stride_h, stride_w, dil_h, dil_w,
                                  pad_top, pad_left, octets):
    """Dense conv2d for inputs with few channels (a network's stem), direct: output rows
    ``[row_begin, row_end)``, ``wk`` the filter as ``[kh, kw * C_in, out_c]``.

    With a handful of input channels an im2col row is a short copy per tap and the GEMM's inner
    dimension is tiny; here the output channels are the vector lanes instead: per filter tap a
    weight vector, multiplied by each pixel's input value broadcast, eight pixels by two vectors
    of output channels at a time (:func:`_few_channels_octet`; when ``octets``: its sixteen vectors of
    sums spill on AVX2's sixteen registers), then four pixels by one vector, then single pixels.
    Taps in the padding multiply zeros, as the reference does.
    """
    c_in, in_w = x.shape[3], x.shape[2]
    out_h, out_w, out_c = out.shape[1], out.shape[2], out.shape[3]
    count = lanes(out)
    kw = wk.shape[1] // c_in
    j_lo, j_hi = interior(out_w, in_w, kw, stride_w, dil_w, pad_left)
    n_octets = (j_hi - j_lo) // 8 if octets else 0
    j_quads = j_lo + 8 * n_octets
    n_quads = (j_hi - j_quads) // 4
    step = stride_w * c_in
    for r in range(row_begin, row_end):
        b = r // out_h
        i = r - b * out_h
        ih0 = i * stride_h - pad_top
        o = out[b, i]
        for ob in range(0, out_c, 2 * count):
            n0, n1 = min(count, out_c - ob), min(count, out_c - ob - count)
            for od in range(n_octets):
                j = j_lo + 8 * od
                lo, hi = _few_channels_octet(x, wk, b, ih0, dil_h, (j * stride_w - pad_left) * c_in, step, dil_w,
                                             ob, n0, n1, o)
                for p in range(8):
                    vstore_n(o, (j + p) * out_c + ob, lo[p], n0)
                    if n1 > 0:
                        vstore_n(o, (j + p) * out_c + ob + count, hi[p], n1)
        for ob in range(0, out_c, count):
            n = min(count, out_c - ob)
            for qd in range(n_quads):
                j = j_quads + 4 * qd
                a0, a1, a2, a3 = _few_channels_quad(x, wk, b, ih0, dil_h, (j * stride_w - pad_left) * c_in, step,
                                                    dil_w, ob, n, o)
                vstore_n(o, j * out_c + ob, a0, n)
                vstore_n(o, (j + 1) * out_c + ob, a1, n)
                vstore_n(o, (j + 2) * out_c + ob, a2, n)
                vstore_n(o, (j + 3) * out_c + ob, a3, n)
            for j in range(out_w):
                if j_lo <= j < j_quads + 4 * n_quads:
                    continue
                a = _few_channels_pixel(x, wk, b, ih0, dil_h, j * stride_w - pad_left, dil_w, ob, n, o)
                vstore_n(o, j * out_c + ob, a, n)


@kernel(parallel=True)
def conv2d_nhwc_few_channels_parallel(x, wk, out, n_chunks, stride_h, stride_w, dil_h, dil_w, pad_top,
                                      pad_left, octets):
    """:func:`conv2d_nhwc_few_channels_rows` over all output rows, in ``n_chunks`` parallel blocks."""
    rows = out.shape[0] * out.shape[1]
    for t in prange(n_chunks):
        conv2d_nhwc_few_channels_rows(x, wk, out, t * rows // n_chunks, (t + 1) * rows // n_chunks,
                                      stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, octets)
