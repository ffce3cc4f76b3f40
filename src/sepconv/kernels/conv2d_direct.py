"""Direct conv2d forward, NHWC (an implicit GEMM): the register tiles of the pointwise kernels,
walking the filter's taps instead of reading an im2col buffer.

A dense convolution is the product of each output pixel's receptive field ``[kh * kw * C]``
with the filter ``[kh * kw * C, out_c]``.  Here the receptive field is never laid out: a
tile of six output pixels keeps one base address per pixel in the (padded) input, and for
tap ``t`` reads ``C`` consecutive values at ``base + taps[t]``, where ``taps[t]`` is the
tap's offset in the input, ``(i * dil_h * Wp + j * dil_w) * C``.  The filter is packed once
per call by :func:`~sepconv.kernels.pointwise.pack_pointwise` (rows in ``(i, j, c)`` order,
the filter's own), so a panel's rows follow the taps with no jumps.  Shapes::

    xf     flat padded input [N, Hp, Wp, C] (zero borders; the caller pads)
    taps   int64 [kh * kw], offsets of the taps from a pixel's base
    bp     the packed filter [kh * kw * C, out_c]
    out    flat [N, out_h, out_w, out_c]

The six pixels of a tile are any six consecutive output pixels (they may span rows and
images: each has its own base), so no row tail wastes a tile; a range's last tile repeats its
last pixel's base for the missing ones and stores only the pixels that exist.

**Register tile** (:func:`_taps_6x4`): six pixels by one panel of four vectors, 24 sums kept in
registers across a chunk of taps and channels (added to the sums of the chunks before); :func:`_taps_6x2`
and :func:`_taps_6x1` take the two- and one-vector tail panels (:func:`_taps_6x3`, three).  A
two-vector tail panel (17-32 output channels) takes twelve pixels at once where twelve remain
(:func:`_taps_12x2`, 24 sums again; 1x112x112x32 -> 32 on one thread 72-73 -> 80-81 G multiply-adds/s).  They are
:mod:`sepconv.kernels.pointwise`'s tiles with a base per pixel and a loop over taps; sharing one
tile (the pointwise band as one tap) cost the pointwise products 3-7% (A/B, 3136x144x128 and
600x64x144), so both are kept.

**One-vector panels** (:func:`conv2d_direct_narrow_range`, for AVX2's sixteen registers, where the tiles above
spill): the filter packed in panels of one vector of columns (:func:`pack_vector_panels`), every tile six pixels by
one vector (:func:`_taps_6x1`, twelve registers of sums), the last panel partly filled.

**Order.**  A thread takes a range of output pixels (or, when there are few pixels, a range
of panels); within it, blocks of ``block_pixels`` pixels, each block through every panel, so
that a block's receptive fields stay in cache while the panels stream past them.

**Streamed filter** (:func:`conv2d_direct_streamed_range`, large filters): nothing packed
beforehand; for each chunk of the filter's rows (contiguous in the filter) and each panel, the
first tile reads the panel's part in place and copies it, as it goes, into a small panel-major
buffer of this thread, which the other tiles read; so the filter is read from memory once, in
order, the packing costs no pass of its own, and the packed copy never leaves the cache.  A block
of ``6 * t - f`` pixels (``f <= t``) takes ``t - f`` tiles of six and ``f`` of five (:func:`_taps_5x4`) rather
than a last tile of ``6 - f`` pixels that costs a whole one: 49 pixels (7x7 layers) cost 49 pixels' work, not 54.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import kernel
from ._simd import empty_on_line, lanes, prefetch, vbroadcast, vfma, vload, vload_n, vstore, vstore_n, vzeros
from .pointwise import TILE_PIXELS, _pixel2, _pixel3, _pixel4, _store2, _store3, _store4, pack_pointwise_panels, panel_layout


@kernel(inline=True)
def _load4(out, o, n, accumulate):
    """The sums so far of one pixel's four vectors (zeros on the first chunk)."""
    L = lanes(out)
    z = vzeros(out)
    if not accumulate:
        return z, z, z, z
    return (vload_n(out, o, min(L, n)), vload_n(out, o + L, max(0, min(L, n - L))),
            vload_n(out, o + 2 * L, max(0, min(L, n - 2 * L))), vload_n(out, o + 3 * L, max(0, min(L, n - 3 * L))))


@kernel(inline=True)
def _load3(out, o, n, accumulate):
    L = lanes(out)
    z = vzeros(out)
    if not accumulate:
        return z, z, z
    return (vload_n(out, o, min(L, n)), vload_n(out, o + L, max(0, min(L, n - L))),
            vload_n(out, o + 2 * L, max(0, min(L, n - 2 * L))))


@kernel(inline=True)
def _load2(out, o, n, accumulate):
    L = lanes(out)
    z = vzeros(out)
    if not accumulate:
        return z, z
    return vload_n(out, o, min(L, n)), vload_n(out, o + L, max(0, min(L, n - L)))


@kernel(inline=True)
def _load1(out, o, n, accumulate):
    if not accumulate:
        return vzeros(out)
    return vload_n(out, o, n)


@kernel(inline=True)
def _taps_x4(rows, xf, bases, q, taps, t0, t1, c0, c1, bp, ib, ldb, out, ic, ldc, pixels, n, accumulate,
             fetch_from, fetch, fetch_row, fetch_begin, fetch_end, copy_to, copy):
    """The body of :func:`_taps_6x4` and :func:`_taps_5x4`: ``rows`` (6 or 5, a constant once inlined, so that LLVM
    drops the sixth row's work from the five-row tile) pixels by a four-vector panel."""
    L = lanes(out)
    last = pixels - 1
    r0 = _load4(out, ic, n, accumulate)
    r1 = _load4(out, ic + min(1, last) * ldc, n, accumulate)
    r2 = _load4(out, ic + min(2, last) * ldc, n, accumulate)
    r3 = _load4(out, ic + min(3, last) * ldc, n, accumulate)
    r4 = _load4(out, ic + min(4, last) * ldc, n, accumulate)
    r5 = _load4(out, ic + min(5, last) * ldc, n, accumulate and rows > 5)
    copied = 0
    for t in range(t0, t1):
        off = taps[t] + c0
        a0, a1, a2 = bases[q] + off, bases[q + 1] + off, bases[q + 2] + off
        a3, a4, a5 = bases[q + 3] + off, bases[q + 4] + off, bases[q + min(5, rows - 1)] + off
        for k in range(c1 - c0):
            b0 = vload(bp, ib)
            b1 = vload(bp, ib + L)
            b2 = vload(bp, ib + 2 * L)
            b3 = vload(bp, ib + 3 * L)
            if copy:
                vstore(copy_to, copied, b0)
                vstore(copy_to, copied + L, b1)
                vstore(copy_to, copied + 2 * L, b2)
                vstore(copy_to, copied + 3 * L, b3)
                copied += 4 * L
            r0 = _pixel4(xf, a0 + k, b0, b1, b2, b3, r0)
            r1 = _pixel4(xf, a1 + k, b0, b1, b2, b3, r1)
            r2 = _pixel4(xf, a2 + k, b0, b1, b2, b3, r2)
            r3 = _pixel4(xf, a3 + k, b0, b1, b2, b3, r3)
            r4 = _pixel4(xf, a4 + k, b0, b1, b2, b3, r4)
            if rows > 5:
                r5 = _pixel4(xf, a5 + k, b0, b1, b2, b3, r5)
            ib += ldb
            j = fetch_begin + k
            if j < fetch_end:
                prefetch(fetch_from, fetch + (j >> 2) * fetch_row + (j & 3) * L)
    _store4(out, ic, r0, n)
    if pixels > 1:
        _store4(out, ic + ldc, r1, n)
    if pixels > 2:
        _store4(out, ic + 2 * ldc, r2, n)
    if pixels > 3:
        _store4(out, ic + 3 * ldc, r3, n)
    if pixels > 4:
        _store4(out, ic + 4 * ldc, r4, n)
    if rows > 5 and pixels > 5:
        _store4(out, ic + 5 * ldc, r5, n)


@kernel
def _taps_6x4(xf, bases, q, taps, t0, t1, c0, c1, bp, ib, ldb, out, ic, ldc, pixels, n, accumulate,
              fetch_from, fetch, fetch_row, fetch_begin, fetch_end, copy_to, copy):
    """``out`` rows ``ic + r * ldc`` (``r < pixels``), first ``n`` columns, plus (or, on the first chunk,
    set to) the sums over taps ``t0..t1`` and channels ``c0..c1`` of the pixels whose bases are
    ``bases[q : q + 6]``, from a four-vector panel at ``bp[ib:]`` whose rows are ``ldb`` values apart.
    Meanwhile it prefetches lines ``fetch_begin..fetch_end`` of ``fetch_from`` into L2, one per row
    (line ``j`` at ``fetch + (j // 4) * fetch_row + (j % 4) * L``: the streamed kernel's next panel of
    four-line rows; none in the direct kernel).  With ``copy``, it also writes the panel's rows it reads, one after
    another, to ``copy_to`` (the streamed kernel's first tile packs the chunk that its other tiles read)."""
    _taps_x4(6, xf, bases, q, taps, t0, t1, c0, c1, bp, ib, ldb, out, ic, ldc, pixels, n, accumulate, fetch_from,
             fetch, fetch_row, fetch_begin, fetch_end, copy_to, copy)


@kernel
def _taps_5x4(xf, bases, q, taps, t0, t1, c0, c1, bp, ib, ldb, out, ic, ldc, pixels, n, accumulate,
              fetch_from, fetch, fetch_row, fetch_begin, fetch_end, copy_to, copy):
    """:func:`_taps_6x4` on five pixels (``bases[q : q + 5]``, ``pixels`` at most 5): a block of ``6 * t - f``
    pixels takes ``f`` tiles of five instead of a last tile of ``6 - f`` that costs a whole one (49 pixels: 4 of
    six and 5 of five, the multiply-adds of 49 pixels instead of 54)."""
    _taps_x4(5, xf, bases, q, taps, t0, t1, c0, c1, bp, ib, ldb, out, ic, ldc, pixels, n, accumulate, fetch_from,
             fetch, fetch_row, fetch_begin, fetch_end, copy_to, copy)


@kernel
def _taps_6x2(xf, bases, q, taps, t0, t1, c0, c1, bp, ib, ldb, out, ic, ldc, pixels, n, accumulate):
    """As :func:`_taps_6x4`, a two-vector tail panel."""
    L = lanes(out)
    last = pixels - 1
    r0 = _load2(out, ic, n, accumulate)
    r1 = _load2(out, ic + min(1, last) * ldc, n, accumulate)
    r2 = _load2(out, ic + min(2, last) * ldc, n, accumulate)
    r3 = _load2(out, ic + min(3, last) * ldc, n, accumulate)
    r4 = _load2(out, ic + min(4, last) * ldc, n, accumulate)
    r5 = _load2(out, ic + min(5, last) * ldc, n, accumulate)
    for t in range(t0, t1):
        off = taps[t] + c0
        a0, a1, a2 = bases[q] + off, bases[q + 1] + off, bases[q + 2] + off
        a3, a4, a5 = bases[q + 3] + off, bases[q + 4] + off, bases[q + 5] + off
        for k in range(c1 - c0):
            b0 = vload(bp, ib)
            b1 = vload(bp, ib + L)
            r0 = _pixel2(xf, a0 + k, b0, b1, r0)
            r1 = _pixel2(xf, a1 + k, b0, b1, r1)
            r2 = _pixel2(xf, a2 + k, b0, b1, r2)
            r3 = _pixel2(xf, a3 + k, b0, b1, r3)
            r4 = _pixel2(xf, a4 + k, b0, b1, r4)
            r5 = _pixel2(xf, a5 + k, b0, b1, r5)
            ib += ldb
    _store2(out, ic, r0, n)
    if pixels > 1:
        _store2(out, ic + ldc, r1, n)
    if pixels > 2:
        _store2(out, ic + 2 * ldc, r2, n)
    if pixels > 3:
        _store2(out, ic + 3 * ldc, r3, n)
    if pixels > 4:
        _store2(out, ic + 4 * ldc, r4, n)
    if pixels > 5:
        _store2(out, ic + 5 * ldc, r5, n)


@kernel
def _taps_12x2(xf, bases, q, taps, t0, t1, c0, c1, bp, ib, ldb, out, ic, ldc, n, accumulate):
    """As :func:`_taps_6x2`, twelve pixels (all present): a two-vector panel has room in the registers
    for twice the pixels, so each panel row loaded feeds twice the multiply-adds."""
    L = lanes(out)
    r0 = _load2(out, ic, n, accumulate)
    r1 = _load2(out, ic + ldc, n, accumulate)
    r2 = _load2(out, ic + 2 * ldc, n, accumulate)
    r3 = _load2(out, ic + 3 * ldc, n, accumulate)
    r4 = _load2(out, ic + 4 * ldc, n, accumulate)
    r5 = _load2(out, ic + 5 * ldc, n, accumulate)
    r6 = _load2(out, ic + 6 * ldc, n, accumulate)
    r7 = _load2(out, ic + 7 * ldc, n, accumulate)
    r8 = _load2(out, ic + 8 * ldc, n, accumulate)
    r9 = _load2(out, ic + 9 * ldc, n, accumulate)
    r10 = _load2(out, ic + 10 * ldc, n, accumulate)
    r11 = _load2(out, ic + 11 * ldc, n, accumulate)
    for t in range(t0, t1):
        off = taps[t] + c0
        a0, a1, a2 = bases[q] + off, bases[q + 1] + off, bases[q + 2] + off
        a3, a4, a5 = bases[q + 3] + off, bases[q + 4] + off, bases[q + 5] + off
        a6, a7, a8 = bases[q + 6] + off, bases[q + 7] + off, bases[q + 8] + off
        a9, a10, a11 = bases[q + 9] + off, bases[q + 10] + off, bases[q + 11] + off
        for k in range(c1 - c0):
            b0 = vload(bp, ib)
            b1 = vload(bp, ib + L)
            r0 = _pixel2(xf, a0 + k, b0, b1, r0)
            r1 = _pixel2(xf, a1 + k, b0, b1, r1)
            r2 = _pixel2(xf, a2 + k, b0, b1, r2)
            r3 = _pixel2(xf, a3 + k, b0, b1, r3)
            r4 = _pixel2(xf, a4 + k, b0, b1, r4)
            r5 = _pixel2(xf, a5 + k, b0, b1, r5)
            r6 = _pixel2(xf, a6 + k, b0, b1, r6)
            r7 = _pixel2(xf, a7 + k, b0, b1, r7)
            r8 = _pixel2(xf, a8 + k, b0, b1, r8)
            r9 = _pixel2(xf, a9 + k, b0, b1, r9)
            r10 = _pixel2(xf, a10 + k, b0, b1, r10)
            r11 = _pixel2(xf, a11 + k, b0, b1, r11)
            ib += ldb
    _store2(out, ic, r0, n)
    _store2(out, ic + ldc, r1, n)
    _store2(out, ic + 2 * ldc, r2, n)
    _store2(out, ic + 3 * ldc, r3, n)
    _store2(out, ic + 4 * ldc, r4, n)
    _store2(out, ic + 5 * ldc, r5, n)
    _store2(out, ic + 6 * ldc, r6, n)
    _store2(out, ic + 7 * ldc, r7, n)
    _store2(out, ic + 8 * ldc, r8, n)
    _store2(out, ic + 9 * ldc, r9, n)
    _store2(out, ic + 10 * ldc, r10, n)
    _store2(out, ic + 11 * ldc, r11, n)


@kernel
def _taps_6x3(xf, bases, q, taps, t0, t1, c0, c1, bp, ib, ldb, out, ic, ldc, pixels, n, accumulate):
    """As :func:`_taps_6x4`, a three-vector tail panel."""
    L = lanes(out)
    last = pixels - 1
    r0 = _load3(out, ic, n, accumulate)
    r1 = _load3(out, ic + min(1, last) * ldc, n, accumulate)
    r2 = _load3(out, ic + min(2, last) * ldc, n, accumulate)
    r3 = _load3(out, ic + min(3, last) * ldc, n, accumulate)
    r4 = _load3(out, ic + min(4, last) * ldc, n, accumulate)
    r5 = _load3(out, ic + min(5, last) * ldc, n, accumulate)
    for t in range(t0, t1):
        off = taps[t] + c0
        a0, a1, a2 = bases[q] + off, bases[q + 1] + off, bases[q + 2] + off
        a3, a4, a5 = bases[q + 3] + off, bases[q + 4] + off, bases[q + 5] + off
        for k in range(c1 - c0):
            b0 = vload(bp, ib)
            b1 = vload(bp, ib + L)
            b2 = vload(bp, ib + 2 * L)
            r0 = _pixel3(xf, a0 + k, b0, b1, b2, r0)
            r1 = _pixel3(xf, a1 + k, b0, b1, b2, r1)
            r2 = _pixel3(xf, a2 + k, b0, b1, b2, r2)
            r3 = _pixel3(xf, a3 + k, b0, b1, b2, r3)
            r4 = _pixel3(xf, a4 + k, b0, b1, b2, r4)
            r5 = _pixel3(xf, a5 + k, b0, b1, b2, r5)
            ib += ldb
    _store3(out, ic, r0, n)
    if pixels > 1:
        _store3(out, ic + ldc, r1, n)
    if pixels > 2:
        _store3(out, ic + 2 * ldc, r2, n)
    if pixels > 3:
        _store3(out, ic + 3 * ldc, r3, n)
    if pixels > 4:
        _store3(out, ic + 4 * ldc, r4, n)
    if pixels > 5:
        _store3(out, ic + 5 * ldc, r5, n)


@kernel
def _taps_6x1(xf, bases, q, taps, t0, t1, c0, c1, bp, ib, ldb, out, ic, ldc, pixels, n, accumulate):
    """As :func:`_taps_6x4`, a one-vector tail panel."""
    last = pixels - 1
    r0 = _load1(out, ic, n, accumulate)
    r1 = _load1(out, ic + min(1, last) * ldc, n, accumulate)
    r2 = _load1(out, ic + min(2, last) * ldc, n, accumulate)
    r3 = _load1(out, ic + min(3, last) * ldc, n, accumulate)
    r4 = _load1(out, ic + min(4, last) * ldc, n, accumulate)
    r5 = _load1(out, ic + min(5, last) * ldc, n, accumulate)
    for t in range(t0, t1):
        off = taps[t] + c0
        a0, a1, a2 = bases[q] + off, bases[q + 1] + off, bases[q + 2] + off
        a3, a4, a5 = bases[q + 3] + off, bases[q + 4] + off, bases[q + 5] + off
        for k in range(c1 - c0):
            b0 = vload(bp, ib)
            r0 = vfma(vbroadcast(xf, a0 + k), b0, r0)
            r1 = vfma(vbroadcast(xf, a1 + k), b0, r1)
            r2 = vfma(vbroadcast(xf, a2 + k), b0, r2)
            r3 = vfma(vbroadcast(xf, a3 + k), b0, r3)
            r4 = vfma(vbroadcast(xf, a4 + k), b0, r4)
            r5 = vfma(vbroadcast(xf, a5 + k), b0, r5)
            ib += ldb
    vstore_n(out, ic, r0, n)
    if pixels > 1:
        vstore_n(out, ic + ldc, r1, n)
    if pixels > 2:
        vstore_n(out, ic + 2 * ldc, r2, n)
    if pixels > 3:
        vstore_n(out, ic + 3 * ldc, r3, n)
    if pixels > 4:
        vstore_n(out, ic + 4 * ldc, r4, n)
    if pixels > 5:
        vstore_n(out, ic + 5 * ldc, r5, n)


@kernel(inline=True)
def _tile_bases(bases, pixel_begin, pixel_end, out_h, out_w, hp, wp, stride_h, stride_w, c_size):
    """``bases[p - pixel_begin]``: the flat index in the padded input of output pixel ``p``'s first tap, for the
    pixels ``[pixel_begin, pixel_end)`` and a tile past them (the last tile repeats its last pixel's base)."""
    for p in range(pixel_begin, pixel_end + TILE_PIXELS):
        b, r = divmod(min(p, pixel_end - 1), out_h * out_w)
        i, j = divmod(r, out_w)
        bases[p - pixel_begin] = ((b * hp + i * stride_h) * wp + j * stride_w) * c_size


@kernel
def conv2d_direct_range(xf, taps, c_size, bp, out, out_c, out_h, out_w, hp, wp, stride_h, stride_w,
                        pixel_begin, pixel_end, panel_begin, panel_end, block_pixels, chunk_taps, chunk_channels):
    """Output pixels ``[pixel_begin, pixel_end)``, columns of panels ``[panel_begin, panel_end)`` (the
    tail panel, if any, is panel number ``out_c // PANEL``).  The filter's rows are taken in chunks of
    ``chunk_taps`` taps of all channels, or (``chunk_taps == 1``) of ``chunk_channels`` channels of one
    tap, small enough for a panel's chunk to stay in L1 across a block's tiles."""
    L = lanes(out)
    panel = 4 * L
    full, tail, tail_width = panel_layout(out_c, L)
    n_taps = taps.shape[0]
    k_total = n_taps * c_size
    bases = np.empty(block_pixels + TILE_PIXELS, np.int64)
    for block in range(pixel_begin, pixel_end, block_pixels):
        block_end = min(pixel_end, block + block_pixels)
        _tile_bases(bases, block, block_end, out_h, out_w, hp, wp, stride_h, stride_w, c_size)
        for pn in range(panel_begin, panel_end):
            width = panel if pn < full else tail
            for t0 in range(0, n_taps, chunk_taps):
                t1 = min(n_taps, t0 + chunk_taps)
                for c0 in range(0, c_size, chunk_channels):
                    c1 = min(c_size, c0 + chunk_channels)
                    if pn < full:
                        ldb = panel
                        ib = (pn * k_total + t0 * c_size + c0) * panel
                    else:
                        ldb = tail_width
                        ib = full * k_total * panel + (t0 * c_size + c0) * tail_width
                    accumulate = t0 > 0 or c0 > 0
                    if pn >= full and 2 * tail_width == panel:  # twelve-pixel tiles where twelve remain
                        for t in range(block, block_end, 2 * TILE_PIXELS):
                            count = min(2 * TILE_PIXELS, block_end - t)
                            ic = t * out_c + pn * panel
                            if count == 2 * TILE_PIXELS:
                                _taps_12x2(xf, bases, t - block, taps, t0, t1, c0, c1, bp, ib, ldb, out, ic, out_c, width,
                                           accumulate)
                                continue
                            for u in range(t, t + count, TILE_PIXELS):  # the block's last pixels, six at a time
                                _taps_6x2(xf, bases, u - block, taps, t0, t1, c0, c1, bp, ib, ldb, out, ic + (u - t) * out_c,
                                          out_c, min(TILE_PIXELS, t + count - u), width, accumulate)
                        continue
                    for t in range(block, block_end, TILE_PIXELS):
                        count = min(TILE_PIXELS, block_end - t)
                        ic = t * out_c + pn * panel
                        if pn < full or tail_width == panel:
                            _taps_6x4(xf, bases, t - block, taps, t0, t1, c0, c1, bp, ib, ldb, out, ic, out_c, count, width,
                                      accumulate, bp, 0, 0, 0, 0, bp, False)
                        elif tail_width == 3 * L:
                            _taps_6x3(xf, bases, t - block, taps, t0, t1, c0, c1, bp, ib, ldb, out, ic, out_c, count, width,
                                      accumulate)
                        else:  # one vector (two-vector tails take the twelve-pixel loop above)
                            _taps_6x1(xf, bases, t - block, taps, t0, t1, c0, c1, bp, ib, ldb, out, ic, out_c, count, width,
                                      accumulate)


@kernel(parallel=True)
def conv2d_direct_parallel(xf, taps, c_size, b, bps, out, out_c, out_h, out_w, hp, wp, stride_h, stride_w,
                           ranges, block_pixels, chunk_taps, chunk_channels):
    """:func:`conv2d_direct_range` on each thread: thread ``k`` packs panels ``ranges[k, 2]..ranges[k, 3]``
    of the filter ``b [K, out_c]`` into its own ``bps[k]`` (see
    :func:`sepconv.kernels.pointwise.pointwise_parallel`) and takes pixels ``ranges[k, 0]..ranges[k, 1]``
    by those panels."""
    for k in prange(ranges.shape[0]):
        pack_pointwise_panels(b, bps[k], ranges[k, 2], ranges[k, 3])
        conv2d_direct_range(xf, taps, c_size, bps[k], out, out_c, out_h, out_w, hp, wp, stride_h, stride_w,
                            ranges[k, 0], ranges[k, 1], ranges[k, 2], ranges[k, 3], block_pixels, chunk_taps,
                            chunk_channels)


@kernel
def pack_vector_panels(b, bp, panel_begin, panel_end):
    """The filter ``b [K, N]`` (contiguous) in panels of one vector of columns, for
    :func:`conv2d_direct_narrow_range`: panel ``p``'s row ``k`` (columns ``p * L`` on, zeros past ``N``)
    at ``bp[(p * K + k) * L]``, for panels ``[panel_begin, panel_end)``."""
    k_size, n_size = b.shape
    L = lanes(bp)
    bf = b.reshape(-1)
    for p in range(panel_begin, panel_end):
        col = p * L
        for k in range(k_size):
            vstore(bp, (p * k_size + k) * L, vload_n(bf, k * n_size + col, min(L, n_size - col)))


@kernel
def conv2d_direct_narrow_range(xf, taps, c_size, bp, out, out_c, out_h, out_w, hp, wp, stride_h, stride_w,
                               pixel_begin, pixel_end, panel_begin, panel_end, block_pixels, chunk_taps, chunk_channels):
    """:func:`conv2d_direct_range` in panels of one vector (``bp`` packed by :func:`pack_vector_panels`), every
    tile six pixels by one vector (:func:`_taps_6x1`): the tile for sixteen AVX2 registers, where the four-vector
    tiles spill.  Panels ``[panel_begin, panel_end)`` of ``-(-out_c // L)``."""
    L = lanes(out)
    n_taps = taps.shape[0]
    k_total = n_taps * c_size
    bases = np.empty(block_pixels + TILE_PIXELS, np.int64)
    for block in range(pixel_begin, pixel_end, block_pixels):
        block_end = min(pixel_end, block + block_pixels)
        _tile_bases(bases, block, block_end, out_h, out_w, hp, wp, stride_h, stride_w, c_size)
        for pn in range(panel_begin, panel_end):
            width = min(L, out_c - pn * L)
            for t0 in range(0, n_taps, chunk_taps):
                t1 = min(n_taps, t0 + chunk_taps)
                for c0 in range(0, c_size, chunk_channels):
                    c1 = min(c_size, c0 + chunk_channels)
                    ib = (pn * k_total + t0 * c_size + c0) * L
                    accumulate = t0 > 0 or c0 > 0
                    for t in range(block, block_end, TILE_PIXELS):
                        _taps_6x1(xf, bases, t - block, taps, t0, t1, c0, c1, bp, ib, L, out, t * out_c + pn * L, out_c,
                                  min(TILE_PIXELS, block_end - t), width, accumulate)


@kernel(parallel=True)
def conv2d_direct_narrow_parallel(xf, taps, c_size, b, bps, out, out_c, out_h, out_w, hp, wp, stride_h, stride_w,
                                  ranges, block_pixels, chunk_taps, chunk_channels):
    """:func:`conv2d_direct_narrow_range` on each thread, as :func:`conv2d_direct_parallel`: thread ``k`` packs
    panels ``ranges[k, 2]..ranges[k, 3]`` into ``bps[k]`` and takes pixels ``ranges[k, 0]..ranges[k, 1]``."""
    for k in prange(ranges.shape[0]):
        pack_vector_panels(b, bps[k], ranges[k, 2], ranges[k, 3])
        conv2d_direct_narrow_range(xf, taps, c_size, bps[k], out, out_c, out_h, out_w, hp, wp, stride_h, stride_w,
                                   ranges[k, 0], ranges[k, 1], ranges[k, 2], ranges[k, 3], block_pixels, chunk_taps,
                                   chunk_channels)


@kernel
def conv2d_direct_streamed_range(xf, taps, c_size, w, out, out_c, out_h, out_w, hp, wp, stride_h, stride_w,
                                 pixel_begin, pixel_end, channel_begin, channel_end, panel_begin, panel_end,
                                 chunk_channels, block_pixels):
    """Output pixels ``[pixel_begin, pixel_end)``, the columns of panels ``[panel_begin, panel_end)``
    (``4 * lanes`` columns each), summed over channels ``[channel_begin, channel_end)`` of every tap,
    from the filter as it is (``w`` flat ``[K, out_c]``, not packed beforehand), in blocks of
    ``block_pixels`` pixels.  For large filters, read once per block, in order: chunk by chunk of
    ``chunk_channels`` rows, each panel's part of the chunk is packed into a buffer of this thread by the
    block's first tile, which reads it in place, passes the block's other tiles, and is dropped, while the
    next panel's part is prefetched into L2; the output rows are read back and added to after the range's
    first chunk.  (Read in place by every tile, the rows of a panel, ``out_c`` values apart, share a few
    L1 sets and evict each other: 2x slower.)"""
    L = lanes(out)
    panel = 4 * L
    bases = np.empty(block_pixels + TILE_PIXELS, np.int64)
    bp = empty_on_line(chunk_channels * panel, w)  # vector loads of the panel: on a line, none split
    bp[:] = 0
    # blocks of equal size (whole tiles), so that no block is a short remainder that packs the whole filter
    # again for a few tiles (100 pixels -> 1536 columns, blocks of 84 + 16: 25% slower than 54 + 46)
    blocks = -(-(pixel_end - pixel_begin) // block_pixels)
    block_pixels = -(-(pixel_end - pixel_begin) // (blocks * TILE_PIXELS)) * TILE_PIXELS
    for block in range(pixel_begin, pixel_end, block_pixels):
        block_end = min(pixel_end, block + block_pixels)
        _stream_block(xf, taps, c_size, w, out, out_c, out_h, out_w, hp, wp, stride_h, stride_w, block, block_end,
                      channel_begin, channel_end, panel_begin, panel_end, chunk_channels, bases, bp)


@kernel
def _stream_block(xf, taps, c_size, w, out, out_c, out_h, out_w, hp, wp, stride_h, stride_w, pixel_begin, pixel_end,
                  channel_begin, channel_end, panel_begin, panel_end, chunk_channels, bases, bp):
    """One block of :func:`conv2d_direct_streamed_range`: the whole filter (its channels and panels of the
    range) through pixels ``[pixel_begin, pixel_end)``."""
    L = lanes(out)
    panel = 4 * L
    full, tail, tail_width = panel_layout(out_c, L)
    n_taps = taps.shape[0]
    _tile_bases(bases, pixel_begin, pixel_end, out_h, out_w, hp, wp, stride_h, stride_w, c_size)
    tiles = -(-(pixel_end - pixel_begin) // TILE_PIXELS)
    fives = tiles * TILE_PIXELS - (pixel_end - pixel_begin)  # the last tiles take five pixels each (_taps_5x4)
    if fives > tiles:
        fives = 0
    sixes = tiles - fives
    for t0 in range(n_taps):
        for c0 in range(channel_begin, channel_end, chunk_channels):
            c1 = min(channel_end, c0 + chunk_channels)
            rows = c1 - c0
            accumulate = t0 > 0 or c0 > channel_begin
            first = (t0 * c_size + c0) * out_c  # the chunk's first row in w
            next_row = t0 * c_size + c1 if c1 < channel_end else (t0 + 1) % n_taps * c_size + channel_begin
            lines = -(-4 * rows // tiles)  # of the next panel's chunk, prefetched by each tile
            for pn in range(panel_begin, panel_end):
                width = panel if pn < full else tail
                if pn >= full:  # pack the tail panel's chunk: its columns, then zeros to a whole number of vectors
                    for r in range(rows):
                        src = first + r * out_c + pn * panel
                        for v in range(0, tail, L):
                            vstore(bp, r * panel + v, vload_n(w, src + v, min(L, tail - v)))
                # while the tiles run, the next panel's chunk (its rows out_c values apart, four lines each)
                # is prefetched into L2, where that panel's first tile, which packs it, finds it
                fetch = first + (pn + 1) * panel if pn + 1 < panel_end else next_row * out_c + panel_begin * panel
                for q in range(tiles):
                    t = pixel_begin + (q * TILE_PIXELS if q < sixes else sixes * TILE_PIXELS + (q - sixes) * 5)
                    count = min(TILE_PIXELS if q < sixes else 5, pixel_end - t)
                    ic = t * out_c + pn * panel
                    four = pn < full or tail_width == panel
                    if four and q >= sixes:
                        if pn < full and q == 0:
                            _taps_5x4(xf, bases, t - pixel_begin, taps, t0, t0 + 1, c0, c1, w, first + pn * panel, out_c,
                                      out, ic, out_c, count, width, accumulate, w, fetch, out_c, 0, min(4 * rows, lines),
                                      bp, True)
                        else:
                            _taps_5x4(xf, bases, t - pixel_begin, taps, t0, t0 + 1, c0, c1, bp, 0, panel, out, ic, out_c,
                                      count, width, accumulate, w, fetch, out_c, q * lines,
                                      min(4 * rows, (q + 1) * lines), bp, False)
                    elif pn < full and q == 0:  # the first tile reads the chunk in place and packs it: row r at bp[r * panel]
                        _taps_6x4(xf, bases, t - pixel_begin, taps, t0, t0 + 1, c0, c1, w, first + pn * panel, out_c, out,
                                  ic, out_c, count, width, accumulate, w, fetch, out_c, 0, min(4 * rows, lines), bp, True)
                    elif four:
                        _taps_6x4(xf, bases, t - pixel_begin, taps, t0, t0 + 1, c0, c1, bp, 0, panel, out, ic, out_c,
                                  count, width, accumulate, w, fetch, out_c, q * lines, min(4 * rows, (q + 1) * lines),
                                  bp, False)
                    elif tail_width == 3 * L:
                        _taps_6x3(xf, bases, t - pixel_begin, taps, t0, t0 + 1, c0, c1, bp, 0, panel, out, ic, out_c,
                                  count, width, accumulate)
                    elif 2 * tail_width == panel:
                        _taps_6x2(xf, bases, t - pixel_begin, taps, t0, t0 + 1, c0, c1, bp, 0, panel, out, ic, out_c,
                                  count, width, accumulate)
                    else:
                        _taps_6x1(xf, bases, t - pixel_begin, taps, t0, t0 + 1, c0, c1, bp, 0, panel, out, ic, out_c,
                                  count, width, accumulate)


@kernel(parallel=True)
def conv2d_direct_streamed_parallel(xf, taps, c_size, w, outs, out_c, out_h, out_w, hp, wp, stride_h, stride_w,
                                    ranges, chunk_channels, block_pixels):
    """:func:`conv2d_direct_streamed_range` on each thread: thread ``k`` takes pixels
    ``ranges[k, 0]..ranges[k, 1]``, channels ``ranges[k, 2]..ranges[k, 3]`` and panels
    ``ranges[k, 5]..ranges[k, 6]`` into ``outs[ranges[k, 4]]`` (threads that split the channels write
    separate outputs, the caller adds them)."""
    for k in prange(ranges.shape[0]):
        conv2d_direct_streamed_range(xf, taps, c_size, w, outs[ranges[k, 4]], out_c, out_h, out_w, hp, wp,
                                     stride_h, stride_w, ranges[k, 0], ranges[k, 1], ranges[k, 2], ranges[k, 3],
                                     ranges[k, 5], ranges[k, 6], chunk_channels, block_pixels)


@kernel
def pad_rows(x, xp, pad_top, pad_left, row_begin, row_end):
    """Rows ``[row_begin, row_end)`` (numbered ``b * Hp + i``) of the padded input ``xp [N, Hp, Wp, C]``:
    ``x``'s row where there is one, zeros around it, each value written once."""
    hp, c = xp.shape[1], xp.shape[3]
    in_h, in_w = x.shape[1], x.shape[2]
    left, right = pad_left * c, (pad_left + in_w) * c
    for r in range(row_begin, row_end):
        b, i = divmod(r, hp)
        row = xp[b, i].reshape(-1)  # flat rows, one run of values each (1x229x229x3: 100 -> 48 us)
        ih = i - pad_top
        if ih < 0 or ih >= in_h:
            row[:] = 0
            continue
        row[:left] = 0
        row[left:right] = x[b, ih].reshape(-1)
        row[right:] = 0


@kernel(parallel=True)
def pad_parallel(x, xp, pad_top, pad_left, n_chunks):
    """:func:`pad_rows` over all rows of ``xp`` in ``n_chunks`` parallel ranges."""
    rows = xp.shape[0] * xp.shape[1]
    for k in prange(n_chunks):
        pad_rows(x, xp, pad_top, pad_left, k * rows // n_chunks, (k + 1) * rows // n_chunks)
