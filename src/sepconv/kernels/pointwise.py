"""Pointwise (1x1) product kernels, NHWC: ``c[p, :] = a[p, :] @ B`` for a band of pixels, B packed.

The separable forward's pointwise stage, computed from a band of depthwise results while they
are still in cache (``sepconv.kernels.separable``), without a BLAS call.  Shapes::

    a   flat, pixel p of the band at a[a_off + p * K : a_off + (p + 1) * K]   (row-major [pixels, K])
    bp  flat, B [K, N] packed by pack_pointwise: panels of PANEL = 4 vectors of columns
    c   flat, output pixel q at c[q * N : (q + 1) * N]

**Packing.** ``B`` is cut into ``N // PANEL`` full panels of ``PANEL`` columns (64 float32, 32
float64), each stored ``[K, PANEL]`` so that one step of ``k`` reads four consecutive vectors, and a
tail panel for the last ``N % PANEL`` columns, ``[K, tail_width]`` with ``tail_width`` one, two,
three or four vectors (zero-padded).  All loads of a step are then at constant offsets from one pointer.

**Register tile** (:func:`_tile_6x4`): six pixels by one panel, 24 accumulators.  Per step of
``k``, four vector loads of the panel, six broadcasts of ``a`` (one per pixel, at ``lda`` apart)
and 24 fused multiply-adds; the 24 sums stay in registers for the whole ``K`` and are stored
once.  Tail panels take the 6x3, 6x2 and 6x1 tiles (a three-vector tile for 33-48 columns: 40,
112 or 240 output channels waste a quarter of a four-vector tile).  Measured on this machine's AVX-512 core, the
6x4 tile runs at ~95 GFLOP/s on data in L1 (NumPy's OpenBLAS sgemm, one thread: ~80 GFLOP/s on
1024^3), and a whole 3136x144x128 product at 200 GFLOP/s on two threads, as OpenBLAS.

A band's last tile may hold fewer than six pixels: it still reads six rows of ``a`` and stores
only the pixels that exist.  The caller leaves those rows readable and zero: a stale subnormal
value there costs a microcode assist per multiply-add (measured: a 1x28x28x96 5x5 stride-2 band
took 217 us instead of 77 on uninitialized rows).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import kernel
from ._simd import VECTOR_BYTES, lanes, vbroadcast, vfma, vload, vload_n, vstore, vstore_n, vstore_stream, vzeros

# Pixels per register tile.
TILE_PIXELS = 6


@kernel
def panel_layout(n_size, lane_count):
    """``(full_panels, tail_columns, tail_width)`` for ``N = n_size`` columns and vectors of ``lane_count``
    (the kernels derive it from ``N`` and their arrays' lane count; callers only size ``bp``).

    Examples
    --------
    >>> panel_layout(144, 16)   # float32: two panels of 64 columns, 16 left in a one-vector tail panel
    (2, 16, 16)
    >>> panel_layout(160, 16), panel_layout(100, 8), panel_layout(40, 16)
    ((2, 32, 32), (3, 4, 8), (0, 40, 48))
    """
    panel = 4 * lane_count
    full = n_size // panel
    tail = n_size - full * panel
    if tail == 0:
        return full, 0, 0
    width = -(-tail // lane_count) * lane_count
    return full, tail, width


def packed_size(k_size: int, n_size: int, itemsize: int) -> int:
    """Values in ``bp`` for a ``[K, N]`` filter packed by :func:`pack_pointwise`.

    Examples
    --------
    >>> packed_size(96, 160, 4)   # float32: two panels of 64 columns and a two-vector tail panel
    15360
    """
    lane_count = VECTOR_BYTES // itemsize
    full, _, tail_width = panel_layout(n_size, lane_count)
    return k_size * (full * 4 * lane_count + tail_width)


@kernel
def pack_pointwise(b, bp):
    """Pack ``b [K, N]`` into ``bp`` (flat, :func:`packed_size` values), one vector at a time (the
    tail's missing columns read as zeros)."""
    pack_pointwise_panels(b, bp, 0, b.shape[1])


@kernel
def pack_pointwise_panels(b, bp, panel_begin, panel_end):
    """:func:`pack_pointwise` for panels ``[panel_begin, panel_end)`` only (the tail panel, if any, is
    panel number ``N // PANEL``; ``panel_end`` past it means all), each at its place in ``bp``."""
    k_size, n_size = b.shape
    L = lanes(bp)
    panel = 4 * L
    full_panels, _, tail_width = panel_layout(n_size, L)
    bf = b.reshape(-1)
    for p in range(panel_begin, min(panel_end, full_panels)):
        for k in range(k_size):
            src = k * n_size + p * panel
            dst = (p * k_size + k) * panel
            for u in range(4):
                vstore(bp, dst + u * L, vload_n(bf, src + u * L, L))
    if panel_end <= full_panels:
        return
    base = full_panels * k_size * panel
    col = full_panels * panel
    for k in range(k_size):
        for u in range(tail_width // L):
            vstore(bp, base + k * tail_width + u * L, vload_n(bf, k * n_size + col + u * L, n_size - col - u * L))


@kernel
def pack_pointwise_each(b, bp):
    """:func:`pack_pointwise` for each ``b[e]`` (``[E, K, N]``) into ``bp[e]`` (one call for Winograd's 16)."""
    for e in range(b.shape[0]):
        pack_pointwise(b[e], bp[e])


@kernel(inline=True)
def _pixel4(a, i, b0, b1, b2, b3, acc):
    s = vbroadcast(a, i)
    return vfma(s, b0, acc[0]), vfma(s, b1, acc[1]), vfma(s, b2, acc[2]), vfma(s, b3, acc[3])


@kernel(inline=True)
def _pixel3(a, i, b0, b1, b2, acc):
    s = vbroadcast(a, i)
    return vfma(s, b0, acc[0]), vfma(s, b1, acc[1]), vfma(s, b2, acc[2])


@kernel(inline=True)
def _pixel2(a, i, b0, b1, acc):
    s = vbroadcast(a, i)
    return vfma(s, b0, acc[0]), vfma(s, b1, acc[1])


@kernel(inline=True)
def _store4(c, o, acc, n):
    """Store the first ``n`` columns of four vectors at ``c[o:]``."""
    L = lanes(c)
    vstore_n(c, o, acc[0], min(L, n))
    if n > L:
        vstore_n(c, o + L, acc[1], min(L, n - L))
    if n > 2 * L:
        vstore_n(c, o + 2 * L, acc[2], min(L, n - 2 * L))
    if n > 3 * L:
        vstore_n(c, o + 3 * L, acc[3], min(L, n - 3 * L))


@kernel(inline=True)
def _store4_stream(c, o, acc):
    """:func:`_store4` of a whole panel (four vectors), past the caches (``c.flat[o]`` on a line)."""
    L = lanes(c)
    vstore_stream(c, o, acc[0])
    vstore_stream(c, o + L, acc[1])
    vstore_stream(c, o + 2 * L, acc[2])
    vstore_stream(c, o + 3 * L, acc[3])


@kernel(inline=True)
def _store3(c, o, acc, n):
    L = lanes(c)
    vstore_n(c, o, acc[0], min(L, n))
    if n > L:
        vstore_n(c, o + L, acc[1], min(L, n - L))
    if n > 2 * L:
        vstore_n(c, o + 2 * L, acc[2], min(L, n - 2 * L))


@kernel(inline=True)
def _store2(c, o, acc, n):
    L = lanes(c)
    vstore_n(c, o, acc[0], min(L, n))
    if n > L:
        vstore_n(c, o + L, acc[1], min(L, n - L))


@kernel
def _tile_6x4(a, ia, lda, bp, ib, k_size, c, ic, ldc, pixels, n, stream=False):
    """``c`` rows ``ic + t * ldc`` (``t < pixels <= 6``), first ``n`` columns, from a four-vector panel at ``bp[ib:]``."""
    L = lanes(c)
    z = vzeros(c)
    r0 = r1 = r2 = r3 = r4 = r5 = (z, z, z, z)
    for _ in range(k_size):
        b0 = vload(bp, ib)
        b1 = vload(bp, ib + L)
        b2 = vload(bp, ib + 2 * L)
        b3 = vload(bp, ib + 3 * L)
        r0 = _pixel4(a, ia, b0, b1, b2, b3, r0)
        r1 = _pixel4(a, ia + lda, b0, b1, b2, b3, r1)
        r2 = _pixel4(a, ia + 2 * lda, b0, b1, b2, b3, r2)
        r3 = _pixel4(a, ia + 3 * lda, b0, b1, b2, b3, r3)
        r4 = _pixel4(a, ia + 4 * lda, b0, b1, b2, b3, r4)
        r5 = _pixel4(a, ia + 5 * lda, b0, b1, b2, b3, r5)
        ia += 1
        ib += 4 * L
    if stream and pixels == 6 and n == 4 * L:  # a full tile of whole panels
        _store4_stream(c, ic, r0)
        _store4_stream(c, ic + ldc, r1)
        _store4_stream(c, ic + 2 * ldc, r2)
        _store4_stream(c, ic + 3 * ldc, r3)
        _store4_stream(c, ic + 4 * ldc, r4)
        _store4_stream(c, ic + 5 * ldc, r5)
        return
    _store4(c, ic, r0, n)
    if pixels > 1:
        _store4(c, ic + ldc, r1, n)
    if pixels > 2:
        _store4(c, ic + 2 * ldc, r2, n)
    if pixels > 3:
        _store4(c, ic + 3 * ldc, r3, n)
    if pixels > 4:
        _store4(c, ic + 4 * ldc, r4, n)
    if pixels > 5:
        _store4(c, ic + 5 * ldc, r5, n)


@kernel
def _tile_6x3(a, ia, lda, bp, ib, k_size, c, ic, ldc, pixels, n):
    """As :func:`_tile_6x4`, a three-vector tail panel."""
    L = lanes(c)
    z = vzeros(c)
    r0 = r1 = r2 = r3 = r4 = r5 = (z, z, z)
    for _ in range(k_size):
        b0 = vload(bp, ib)
        b1 = vload(bp, ib + L)
        b2 = vload(bp, ib + 2 * L)
        r0 = _pixel3(a, ia, b0, b1, b2, r0)
        r1 = _pixel3(a, ia + lda, b0, b1, b2, r1)
        r2 = _pixel3(a, ia + 2 * lda, b0, b1, b2, r2)
        r3 = _pixel3(a, ia + 3 * lda, b0, b1, b2, r3)
        r4 = _pixel3(a, ia + 4 * lda, b0, b1, b2, r4)
        r5 = _pixel3(a, ia + 5 * lda, b0, b1, b2, r5)
        ia += 1
        ib += 3 * L
    _store3(c, ic, r0, n)
    if pixels > 1:
        _store3(c, ic + ldc, r1, n)
    if pixels > 2:
        _store3(c, ic + 2 * ldc, r2, n)
    if pixels > 3:
        _store3(c, ic + 3 * ldc, r3, n)
    if pixels > 4:
        _store3(c, ic + 4 * ldc, r4, n)
    if pixels > 5:
        _store3(c, ic + 5 * ldc, r5, n)


@kernel
def _tile_6x2(a, ia, lda, bp, ib, k_size, c, ic, ldc, pixels, n):
    """As :func:`_tile_6x4`, a two-vector tail panel."""
    L = lanes(c)
    z = vzeros(c)
    r0 = r1 = r2 = r3 = r4 = r5 = (z, z)
    for _ in range(k_size):
        b0 = vload(bp, ib)
        b1 = vload(bp, ib + L)
        r0 = _pixel2(a, ia, b0, b1, r0)
        r1 = _pixel2(a, ia + lda, b0, b1, r1)
        r2 = _pixel2(a, ia + 2 * lda, b0, b1, r2)
        r3 = _pixel2(a, ia + 3 * lda, b0, b1, r3)
        r4 = _pixel2(a, ia + 4 * lda, b0, b1, r4)
        r5 = _pixel2(a, ia + 5 * lda, b0, b1, r5)
        ia += 1
        ib += 2 * L
    _store2(c, ic, r0, n)
    if pixels > 1:
        _store2(c, ic + ldc, r1, n)
    if pixels > 2:
        _store2(c, ic + 2 * ldc, r2, n)
    if pixels > 3:
        _store2(c, ic + 3 * ldc, r3, n)
    if pixels > 4:
        _store2(c, ic + 4 * ldc, r4, n)
    if pixels > 5:
        _store2(c, ic + 5 * ldc, r5, n)


@kernel
def _tile_6x1(a, ia, lda, bp, ib, k_size, c, ic, ldc, pixels, n):
    """As :func:`_tile_6x4`, a one-vector tail panel."""
    L = lanes(c)
    r0 = r1 = r2 = r3 = r4 = r5 = vzeros(c)
    for _ in range(k_size):
        b0 = vload(bp, ib)
        r0 = vfma(vbroadcast(a, ia), b0, r0)
        r1 = vfma(vbroadcast(a, ia + lda), b0, r1)
        r2 = vfma(vbroadcast(a, ia + 2 * lda), b0, r2)
        r3 = vfma(vbroadcast(a, ia + 3 * lda), b0, r3)
        r4 = vfma(vbroadcast(a, ia + 4 * lda), b0, r4)
        r5 = vfma(vbroadcast(a, ia + 5 * lda), b0, r5)
        ia += 1
        ib += L
    vstore_n(c, ic, r0, n)
    if pixels > 1:
        vstore_n(c, ic + ldc, r1, n)
    if pixels > 2:
        vstore_n(c, ic + 2 * ldc, r2, n)
    if pixels > 3:
        vstore_n(c, ic + 3 * ldc, r3, n)
    if pixels > 4:
        vstore_n(c, ic + 4 * ldc, r4, n)
    if pixels > 5:
        vstore_n(c, ic + 5 * ldc, r5, n)


@kernel
def pointwise_band(a, a_off, pixels, k_size, bp, c, c_pixel, n_size, stream=False):
    """``c[c_pixel + t, :] = a[t, :] @ B`` for the band's pixels ``t < pixels`` (``B [K, n_size]`` packed in ``bp``).

    Panel by panel, so that one panel (``K * PANEL`` values) serves every tile of the band from cache.  With
    ``stream``, full tiles store their full panels past the caches (``vstore_stream``: every row of ``c`` must
    start on a line; the caller fences the stores, :func:`~sepconv.kernels._simd.store_fence`)."""
    panel = 4 * lanes(c)
    full_panels, tail, tail_width = panel_layout(n_size, lanes(c))
    for p in range(full_panels):
        ib = p * k_size * panel
        for t in range(0, pixels, TILE_PIXELS):
            _tile_6x4(a, a_off + t * k_size, k_size, bp, ib, k_size, c, (c_pixel + t) * n_size + p * panel, n_size,
                      min(TILE_PIXELS, pixels - t), panel, stream)
    if tail == 0:
        return
    ib = full_panels * k_size * panel
    col = full_panels * panel
    for t in range(0, pixels, TILE_PIXELS):
        ic = (c_pixel + t) * n_size + col
        ia = a_off + t * k_size
        count = min(TILE_PIXELS, pixels - t)
        if tail_width == panel:
            _tile_6x4(a, ia, k_size, bp, ib, k_size, c, ic, n_size, count, tail)
        elif tail_width == 3 * lanes(c):
            _tile_6x3(a, ia, k_size, bp, ib, k_size, c, ic, n_size, count, tail)
        elif tail_width * 2 == panel:
            _tile_6x2(a, ia, k_size, bp, ib, k_size, c, ic, n_size, count, tail)
        else:
            _tile_6x1(a, ia, k_size, bp, ib, k_size, c, ic, n_size, count, tail)


@kernel
def pointwise_tiles(a, bp, c, k_size, n_size, tile_begin, tile_end):
    """``c = a @ B`` for the pixels of tiles ``[tile_begin, tile_end)`` (tile ``t``: pixels ``6t .. 6t + 5``) of
    the whole of ``a`` (flat ``[pixels, K]``; ``c`` flat ``[pixels, N]``).  The last tile of ``a`` may be
    short: it is read from a zero-padded copy, so no row past ``a`` is read."""
    pixels = a.shape[0] // k_size
    p0 = tile_begin * TILE_PIXELS
    p1 = min(pixels, tile_end * TILE_PIXELS)
    if p1 > p0:
        pointwise_pixels(a, bp, c, k_size, n_size, p0, p1)


@kernel
def pointwise_pixels(a, bp, c, k_size, n_size, p0, p1):
    """``c`` pixels ``[p0, p1)`` from the same pixels of ``a`` (flat ``[pixels, K]``; ``c`` flat ``[pixels, N]``): whole
    tiles of six in place, a last short tile from a zero-padded copy, so no pixel past ``p1`` is read (another
    thread's, or past ``a``)."""
    full_end = p0 + (p1 - p0) // TILE_PIXELS * TILE_PIXELS
    if full_end > p0:
        pointwise_band(a, p0 * k_size, full_end - p0, k_size, bp, c, p0, n_size)
    if p1 > full_end:
        last = np.zeros(TILE_PIXELS * k_size, a.dtype)
        last[:(p1 - full_end) * k_size] = a[full_end * k_size:p1 * k_size]
        pointwise_band(last, 0, p1 - full_end, k_size, bp, c, full_end, n_size)


@kernel(parallel=True)
def pointwise_parallel(a, b, bps, c, k_size, n_size, n_chunks):
    """:func:`pointwise_tiles` over all of ``a``, in ``n_chunks`` runs of tiles in parallel, each thread
    first packing ``b [K, N]`` into its own ``bps[t]``.  (Packed once on the calling thread, the packed
    filter would sit modified in that core's cache, and the other threads would fetch it line by line
    from there: 196x96x160, 2 threads, us, pack + product 31, the product alone 17, packed per thread 19.)"""
    tiles = -(-(a.shape[0] // k_size) // TILE_PIXELS)
    for t in prange(n_chunks):
        pack_pointwise(b, bps[t])
        pointwise_tiles(a, bps[t], c, k_size, n_size, tiles * t // n_chunks, tiles * (t + 1) // n_chunks)
