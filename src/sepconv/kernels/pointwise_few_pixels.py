"""The pointwise (1x1) product of few pixels, ``c = a @ B``, for CPUs of sixteen vector registers (AVX2), ``B``
read where it is.

With a few dozen pixels the product is too short for packing ``B`` to pay: BLAS packs it on every call (NumPy's
OpenBLAS, 9x120 @ 120x160: ~9 us, of ~3.6 us of multiply-adds on one core), and so does
:mod:`sepconv.kernels.pointwise`, whose 6x4 tile of 64-byte vectors is also twice what sixteen AVX2 registers hold.
Here a tile is four pixels by three half vectors of columns (24 float32 columns): twelve sums in registers, and per
``k`` three loads of ``B``'s row ``k`` (consecutive) and four broadcasts of ``a``, for twelve multiply-adds
(:func:`_tile`). A thread takes a range of column tiles and runs every pixel tile on each, so that the tile's ``K``
rows of ``B`` stay in L1 (up to ~300 of them) while the pixels go by. A row's last tile of columns is masked
(:func:`_tile_masked`); a last tile of fewer than four pixels reads the last pixel again for the missing ones and
stores only its own.

Examples
--------
>>> import numpy as np
>>> a, b = np.ones((5, 3), np.float32), np.arange(30, dtype=np.float32).reshape(3, 10)
>>> c = np.empty((5, 10), np.float32)
>>> pointwise_few_pixels_parallel(a, b, c, 1)
>>> c[4]
array([30., 33., 36., 39., 42., 45., 48., 51., 54., 57.], dtype=float32)
"""

from __future__ import annotations

from numba import prange

from ._jit import kernel
from ._simd import hbroadcast, hlanes, hload, hload_part, hstore_part, hzeros, vfma, vstore

TILE_PIXELS = 4
TILE_HALVES = 3  # half vectors of columns per tile


@kernel(inline=True)
def _rows(p0, pixels, k_size):
    """The flat offsets in ``a`` of the tile's four pixel rows from pixel ``p0``, the missing ones the last pixel's."""
    last = pixels - 1
    return (p0 * k_size, min(p0 + 1, last) * k_size, min(p0 + 2, last) * k_size, min(p0 + 3, last) * k_size)


@kernel
def _tile(a, b, c, p0, pixels, col, k_size, n_size):
    """Pixels ``p0 .. p0 + 3`` (those below ``pixels``) by columns ``col .. col + 23`` of ``c``."""
    half = hlanes(b)
    r0, r1, r2, r3 = _rows(p0, pixels, k_size)
    s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = s30 = s31 = s32 = hzeros(b)
    ib = col
    for k in range(k_size):
        b0, b1, b2 = hload(b, ib), hload(b, ib + half), hload(b, ib + 2 * half)
        x = hbroadcast(a, r0 + k)
        s00, s01, s02 = vfma(x, b0, s00), vfma(x, b1, s01), vfma(x, b2, s02)
        x = hbroadcast(a, r1 + k)
        s10, s11, s12 = vfma(x, b0, s10), vfma(x, b1, s11), vfma(x, b2, s12)
        x = hbroadcast(a, r2 + k)
        s20, s21, s22 = vfma(x, b0, s20), vfma(x, b1, s21), vfma(x, b2, s22)
        x = hbroadcast(a, r3 + k)
        s30, s31, s32 = vfma(x, b0, s30), vfma(x, b1, s31), vfma(x, b2, s32)
        ib += n_size
    o = p0 * n_size + col
    vstore(c, o, s00)
    vstore(c, o + half, s01)
    vstore(c, o + 2 * half, s02)
    if p0 + 1 < pixels:
        vstore(c, o + n_size, s10)
        vstore(c, o + n_size + half, s11)
        vstore(c, o + n_size + 2 * half, s12)
    if p0 + 2 < pixels:
        vstore(c, o + 2 * n_size, s20)
        vstore(c, o + 2 * n_size + half, s21)
        vstore(c, o + 2 * n_size + 2 * half, s22)
    if p0 + 3 < pixels:
        vstore(c, o + 3 * n_size, s30)
        vstore(c, o + 3 * n_size + half, s31)
        vstore(c, o + 3 * n_size + 2 * half, s32)


@kernel
def _tile_masked(a, b, c, p0, pixels, col, columns, k_size, n_size):
    """:func:`_tile` for the last ``columns`` (fewer than 24) columns of ``c`` from ``col``: masked loads and
    stores."""
    half = hlanes(b)
    n0, n1, n2 = columns, columns - half, columns - 2 * half  # lanes of each half (clamped to [0, half])
    r0, r1, r2, r3 = _rows(p0, pixels, k_size)
    s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = s30 = s31 = s32 = hzeros(b)
    ib = col
    for k in range(k_size):
        b0, b1, b2 = hload_part(b, ib, n0), hload_part(b, ib + half, n1), hload_part(b, ib + 2 * half, n2)
        x = hbroadcast(a, r0 + k)
        s00, s01, s02 = vfma(x, b0, s00), vfma(x, b1, s01), vfma(x, b2, s02)
        x = hbroadcast(a, r1 + k)
        s10, s11, s12 = vfma(x, b0, s10), vfma(x, b1, s11), vfma(x, b2, s12)
        x = hbroadcast(a, r2 + k)
        s20, s21, s22 = vfma(x, b0, s20), vfma(x, b1, s21), vfma(x, b2, s22)
        x = hbroadcast(a, r3 + k)
        s30, s31, s32 = vfma(x, b0, s30), vfma(x, b1, s31), vfma(x, b2, s32)
        ib += n_size
    o = p0 * n_size + col
    hstore_part(c, o, s00, n0)
    hstore_part(c, o + half, s01, n1)
    hstore_part(c, o + 2 * half, s02, n2)
    if p0 + 1 < pixels:
        hstore_part(c, o + n_size, s10, n0)
        hstore_part(c, o + n_size + half, s11, n1)
        hstore_part(c, o + n_size + 2 * half, s12, n2)
    if p0 + 2 < pixels:
        hstore_part(c, o + 2 * n_size, s20, n0)
        hstore_part(c, o + 2 * n_size + half, s21, n1)
        hstore_part(c, o + 2 * n_size + 2 * half, s22, n2)
    if p0 + 3 < pixels:
        hstore_part(c, o + 3 * n_size, s30, n0)
        hstore_part(c, o + 3 * n_size + half, s31, n1)
        hstore_part(c, o + 3 * n_size + 2 * half, s32, n2)


@kernel
def column_tiles(n_size, like):
    """The column tiles of ``N = n_size`` columns (the last one masked when ``N`` is not a multiple of a tile)."""
    width = TILE_HALVES * hlanes(like)
    return (n_size + width - 1) // width


@kernel
def pointwise_few_pixels_tiles(a, b, c, tile_begin, tile_end):
    """Column tiles ``[tile_begin, tile_end)`` of ``c`` ``[P, N]`` = ``a`` ``[P, K]`` @ ``b`` ``[K, N]`` (all
    C-contiguous), every pixel tile on each column tile in turn."""
    pixels, k_size = a.shape
    n_size = b.shape[1]
    width = TILE_HALVES * hlanes(b)
    a1, b1, c1 = a.reshape(-1), b.reshape(-1), c.reshape(-1)
    for t in range(tile_begin, tile_end):
        col = t * width
        columns = min(width, n_size - col)
        for p0 in range(0, pixels, TILE_PIXELS):
            if columns == width:
                _tile(a1, b1, c1, p0, pixels, col, k_size, n_size)
            else:
                _tile_masked(a1, b1, c1, p0, pixels, col, columns, k_size, n_size)


@kernel(parallel=True)
def pointwise_few_pixels_parallel(a, b, c, n_chunks):
    """``c = a @ b`` (``a`` ``[P, K]``, ``b`` ``[K, N]``, ``c`` ``[P, N]``, C-contiguous), the column tiles in
    ``n_chunks`` parallel runs."""
    tiles = column_tiles(b.shape[1], b)
    for t in prange(n_chunks):
        pointwise_few_pixels_tiles(a, b, c, t * tiles // n_chunks, (t + 1) * tiles // n_chunks)
