"""The pointwise (1x1) product of few pixels, ``c = a @ B``, ``B`` read where it is.

With a few dozen pixels the product is too short for packing ``B`` to pay: BLAS packs it on every call (NumPy's
OpenBLAS, 9x120 @ 120x160: ~6-9 us, of ~1.3 us of multiply-adds on one AVX-512 core), and so does
:mod:`sepconv.kernels.pointwise`.  Here a tile is four pixels by three vectors of columns: twelve sums in registers,
and per ``k`` three loads of ``B``'s row ``k`` (consecutive) and four broadcasts of ``a``, for twelve multiply-adds
(:func:`_tile`).  The vectors are whole ones (48 float32 columns) or, for CPUs of sixteen vector registers (AVX2), half
ones (24): the kernels are written once for both widths, which they take from the sums they start from (``whole``,
:func:`~sepconv.kernels._simd.load_like`).  A thread takes a range of column tiles and runs every pixel tile on each,
so that the tile's ``K`` rows of ``B`` stay in L1 while the pixels go by.  A row's last tile of columns is masked
(:func:`_tile_masked`); a last tile of fewer than four pixels reads the last pixel again for the missing ones and
stores only its own.

Examples
--------
>>> import numpy as np
>>> a, b = np.ones((5, 3), np.float32), np.arange(30, dtype=np.float32).reshape(3, 10)
>>> c = np.empty((5, 10), np.float32)
>>> pointwise_few_pixels_parallel(a, b, c, 1, True)
>>> c[4]
array([30., 33., 36., 39., 42., 45., 48., 51., 54., 57.], dtype=float32)
"""

from __future__ import annotations

from numba import prange

from ._jit import kernel
from ._simd import broadcast_like, hlanes, hzeros, lanes, lanes_like, load_like, load_part_like, store_part, vfma, vstore, vzeros

TILE_PIXELS = 4
TILE_VECTORS = 3  # vectors of columns per tile


@kernel(inline=True)
def _rows(p0, pixels, k_size):
    """The flat offsets in ``a`` of the tile's four pixel rows from pixel ``p0``, the missing ones the last pixel's."""
    last = pixels - 1
    return (p0 * k_size, min(p0 + 1, last) * k_size, min(p0 + 2, last) * k_size, min(p0 + 3, last) * k_size)


@kernel
def _tile(a, b, c, p0, pixels, col, k_size, n_size, z):
    """Pixels ``p0 .. p0 + 3`` (those below ``pixels``) by the ``3 * lanes_like(z)`` columns of ``c`` from ``col``."""
    n = lanes_like(z)
    r0, r1, r2, r3 = _rows(p0, pixels, k_size)
    s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = s30 = s31 = s32 = z
    ib = col
    for k in range(k_size):
        b0, b1, b2 = load_like(b, ib, z), load_like(b, ib + n, z), load_like(b, ib + 2 * n, z)
        x = broadcast_like(a, r0 + k, z)
        s00, s01, s02 = vfma(x, b0, s00), vfma(x, b1, s01), vfma(x, b2, s02)
        x = broadcast_like(a, r1 + k, z)
        s10, s11, s12 = vfma(x, b0, s10), vfma(x, b1, s11), vfma(x, b2, s12)
        x = broadcast_like(a, r2 + k, z)
        s20, s21, s22 = vfma(x, b0, s20), vfma(x, b1, s21), vfma(x, b2, s22)
        x = broadcast_like(a, r3 + k, z)
        s30, s31, s32 = vfma(x, b0, s30), vfma(x, b1, s31), vfma(x, b2, s32)
        ib += n_size
    o = p0 * n_size + col
    vstore(c, o, s00)
    vstore(c, o + n, s01)
    vstore(c, o + 2 * n, s02)
    if p0 + 1 < pixels:
        vstore(c, o + n_size, s10)
        vstore(c, o + n_size + n, s11)
        vstore(c, o + n_size + 2 * n, s12)
    if p0 + 2 < pixels:
        vstore(c, o + 2 * n_size, s20)
        vstore(c, o + 2 * n_size + n, s21)
        vstore(c, o + 2 * n_size + 2 * n, s22)
    if p0 + 3 < pixels:
        vstore(c, o + 3 * n_size, s30)
        vstore(c, o + 3 * n_size + n, s31)
        vstore(c, o + 3 * n_size + 2 * n, s32)


@kernel
def _tile_masked(a, b, c, p0, pixels, col, columns, k_size, n_size, z):
    """:func:`_tile` for the last ``columns`` (fewer than a tile's) columns of ``c`` from ``col``: masked loads and
    stores."""
    n = lanes_like(z)
    n0, n1, n2 = columns, columns - n, columns - 2 * n  # lanes of each vector (clamped to [0, n])
    r0, r1, r2, r3 = _rows(p0, pixels, k_size)
    s00 = s01 = s02 = s10 = s11 = s12 = s20 = s21 = s22 = s30 = s31 = s32 = z
    ib = col
    for k in range(k_size):
        b0, b1, b2 = load_part_like(b, ib, n0, z), load_part_like(b, ib + n, n1, z), load_part_like(b, ib + 2 * n, n2, z)
        x = broadcast_like(a, r0 + k, z)
        s00, s01, s02 = vfma(x, b0, s00), vfma(x, b1, s01), vfma(x, b2, s02)
        x = broadcast_like(a, r1 + k, z)
        s10, s11, s12 = vfma(x, b0, s10), vfma(x, b1, s11), vfma(x, b2, s12)
        x = broadcast_like(a, r2 + k, z)
        s20, s21, s22 = vfma(x, b0, s20), vfma(x, b1, s21), vfma(x, b2, s22)
        x = broadcast_like(a, r3 + k, z)
        s30, s31, s32 = vfma(x, b0, s30), vfma(x, b1, s31), vfma(x, b2, s32)
        ib += n_size
    o = p0 * n_size + col
    store_part(c, o, s00, n0)
    store_part(c, o + n, s01, n1)
    store_part(c, o + 2 * n, s02, n2)
    if p0 + 1 < pixels:
        store_part(c, o + n_size, s10, n0)
        store_part(c, o + n_size + n, s11, n1)
        store_part(c, o + n_size + 2 * n, s12, n2)
    if p0 + 2 < pixels:
        store_part(c, o + 2 * n_size, s20, n0)
        store_part(c, o + 2 * n_size + n, s21, n1)
        store_part(c, o + 2 * n_size + 2 * n, s22, n2)
    if p0 + 3 < pixels:
        store_part(c, o + 3 * n_size, s30, n0)
        store_part(c, o + 3 * n_size + n, s31, n1)
        store_part(c, o + 3 * n_size + 2 * n, s32, n2)


@kernel
def column_tiles(n_size, like, whole):
    """The column tiles of ``N = n_size`` columns (the last one masked when ``N`` is not a multiple of a tile), in
    whole vectors or half ones."""
    width = TILE_VECTORS * (lanes(like) if whole else hlanes(like))
    return (n_size + width - 1) // width


@kernel
def _tiles(a, b, c, tile_begin, tile_end, z):
    """:func:`pointwise_few_pixels_tiles` in vectors as wide as ``z`` (zeros)."""
    pixels, k_size = a.shape
    n_size = b.shape[1]
    width = TILE_VECTORS * lanes_like(z)
    a1, b1, c1 = a.reshape(-1), b.reshape(-1), c.reshape(-1)
    for t in range(tile_begin, tile_end):
        col = t * width
        columns = min(width, n_size - col)
        for p0 in range(0, pixels, TILE_PIXELS):
            if columns == width:
                _tile(a1, b1, c1, p0, pixels, col, k_size, n_size, z)
            else:
                _tile_masked(a1, b1, c1, p0, pixels, col, columns, k_size, n_size, z)


@kernel
def pointwise_few_pixels_tiles(a, b, c, tile_begin, tile_end, whole):
    """Column tiles ``[tile_begin, tile_end)`` (of :func:`column_tiles`) of ``c`` ``[P, N]`` = ``a`` ``[P, K]`` @
    ``b`` ``[K, N]`` (all C-contiguous), every pixel tile on each column tile in turn; in whole vectors or half
    ones."""
    if whole:
        _tiles(a, b, c, tile_begin, tile_end, vzeros(b))
    else:
        _tiles(a, b, c, tile_begin, tile_end, hzeros(b))


@kernel(parallel=True)
def pointwise_few_pixels_parallel(a, b, c, n_chunks, whole):
    """``c = a @ b`` (``a`` ``[P, K]``, ``b`` ``[K, N]``, ``c`` ``[P, N]``, C-contiguous), the column tiles in
    ``n_chunks`` parallel runs; in whole vectors or half ones."""
    tiles = column_tiles(b.shape[1], b, whole)
    for t in prange(n_chunks):
        pointwise_few_pixels_tiles(a, b, c, t * tiles // n_chunks, (t + 1) * tiles // n_chunks, whole)
