"""Fast dense and grouped conv2d: direct kernels, fused Winograd, or im2col in bounded chunks and BLAS products.

Same signatures as :mod:`sepconv.reference`: NHWC arrays with one batch axis, in the compute
dtype, with at least one element; ``api`` has dealt with layouts, dtypes and empty arrays.

Shape classes:

- **pointwise** (1x1 filter, no padding): the input already is the GEMM's left matrix,
  ``(N*H*W, C_in) @ (C_in, C_out)`` straight into the output (strided: subsample first); on the
  register-tiled kernel of :mod:`sepconv.kernels.pointwise` when the filter fits in
  :data:`POINTWISE_KERNEL_MAX_FILTER_BYTES` (ungrouped), streamed through the direct kernels as a
  one-tap conv2d for few pixels (:data:`POINTWISE_STREAMED_MAX_PIXELS`, or more up to
  :data:`POINTWISE_STREAMED_MAX_FILTER_BYTES`), else BLAS.
- **few input channels** (a network's stem, <= 8 channels, windows up to 3x3; larger ones take the
  direct plan below): direct, the output channels as vector lanes
  (:func:`~sepconv.kernels.conv2d.conv2d_nhwc_few_channels_rows`).
- **winograd** (3x3, stride 1, undilated, ungrouped, :data:`WINOGRAD_MIN_CHANNELS` channels or more, at least
  :data:`WINOGRAD_MIN_PIXELS` output pixels; on Zen 4's and Zen 5's plans also :data:`WINOGRAD_NARROW_MIN_PIXELS` for fewer than
  :data:`WINOGRAD_MIN_OUT_CHANNELS` output channels, :data:`WINOGRAD_BLAS_MIN_PIXELS` for the BLAS plan's filters;
  on Zen 5's :data:`WINOGRAD_FUSED_MIN_PIXELS` for the fused plan's):
  Winograd
  F(2x2, 3x3), 2.25x fewer multiplications.  The transforms turn an infinity into NaN where the
  direct sum keeps it, so a layer whose input, filter or Winograd output is not all finite (one pass
  over whichever is smaller: see :func:`conv2d`) takes the plans below.
  When the 16 transformed filters fit in
  :data:`WINOGRAD_FUSED_MAX_FILTER_BYTES`, fused (:func:`_winograd_fused`): each thread takes
  chunks of tiles through the input transform, the 16 products by the register-tiled kernel of
  :mod:`sepconv.kernels.pointwise` and the output transform, in cache and without BLAS.  Larger
  filters: tiles in chunks whose transformed input and products fit in :data:`WINOGRAD_WORKSPACE_BYTES`,
  each chunk 16 BLAS products between the two transforms.
- **direct** (ungrouped, filter up to :data:`DIRECT_MAX_FILTER_BYTES`, at least
  :data:`DIRECT_MIN_PIXELS` output pixels): an implicit GEMM
  (:mod:`sepconv.kernels.conv2d_direct`), the input padded once and the filter packed once, six
  output pixels by 64 output channels in registers over every tap; no column buffer.  It takes
  the 5x5/7x7, strided and dilated layers with up to a few hundred channels.
- **direct, streamed** (ungrouped, filter of :data:`DIRECT_STREAMED_MIN_FILTER_BYTES` or more): the
  same register tiles, the filter not packed beforehand but chunk by chunk as each thread reaches
  it, so a large filter is read once, in order; few pixels (a 7x7 layer with 512 channels) split
  the input channels over the threads, many split the pixels.
- **general**: output pixels are taken in chunks whose column buffer (``kh*kw*C_in`` values
  per pixel) fits in :data:`WORKSPACE_BYTES`; each chunk is laid out by
  :func:`~sepconv.kernels.conv2d.im2col_nhwc` and multiplied into its rows of the output.
  The input gradient multiplies ``out_backprop`` by the transposed filter into the column
  buffer and scatters it back (:func:`~sepconv.kernels.conv2d.col2im_add_nhwc`); the filter
  gradient sums ``col^T @ out_backprop`` over the chunks.

Groups run as one batched product per chunk (``[groups, pixels, K] @ [groups, K, out_c/groups]``).
The layout kernels (im2col, the Winograd transforms) split their pixels over Numba's threads
(up to :data:`LAYOUT_THREADS`), and the BLAS products run on the same threads
(:func:`sepconv.fast.gemm.matmul`: OpenBLAS single-threaded in each worker, its own pool never
woken).  Both gradients use im2col/col2im.
"""

from __future__ import annotations

import sys

import numpy as np

from ..geometry import Conv2DGeometry, conv2d_geometry
from ..kernels import conv2d as kernels
from ..kernels import conv2d_direct, pointwise, pointwise_few_pixels
from ..kernels._jit import PARALLEL_LAUNCH, thread_count
from ..kernels._simd import VECTOR_BYTES
from ..kernels.depthwise import all_finite
from . import recycled
from .aligned import empty_aligned
from .gemm import matmul
from .tuned import tuned
from .workspace import workspace

# The column buffer of one chunk is at most this large (unless one GEMM_MIN_PIXELS chunk is larger).
WORKSPACE_BYTES = 8 * 1024 * 1024
# Fewer rows than this make the GEMMs inefficient: a chunk holds at least this many pixels.
GEMM_MIN_PIXELS = 64


def chunk_pixels(g: Conv2DGeometry, itemsize: int) -> int:
    """Output pixels per im2col chunk for ``g``: the column buffer stays within :data:`WORKSPACE_BYTES`.

    Examples
    --------
    >>> from sepconv.geometry import conv2d_geometry
    >>> g = conv2d_geometry("conv2d", (1, 256, 256, 64), (3, 3, 64, 64), 1, "SAME")
    >>> chunk_pixels(g, 4) * 3 * 3 * 64 * 4 <= WORKSPACE_BYTES
    True
    """
    total = g.out_pixels
    row_bytes = g.kh * g.kw * g.in_c * itemsize
    return max(1, min(total, max(GEMM_MIN_PIXELS, WORKSPACE_BYTES // row_bytes)))


# Winograd F(2x2, 3x3) filter transform G (Lavin & Gray 2016); B^T and A^T are in the kernels.
# (F(4x4, 3x3) was tried too: no faster here, and 10x the float32 rounding error.)
WINOGRAD_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
# Winograd pays once the GEMMs per chunk are big enough: at least this many channels in and out (2 threads,
# one process, us, Winograd vs direct: 2x30x30x17 -> 33 165 vs 136, 1x40x40x20 -> 40 162 vs 138; at par
# from 24: 1x40x40x24 -> 40 164 vs 158, 2x30x30x24 -> 48 164 vs 170, 1x56x56x24 -> 64 294 vs 316).
WINOGRAD_MIN_CHANNELS = 24
# Winograd transforms the whole filter (16 * C_in * C_out values) on every call, and its fused plan
# splits few tiles badly: with fewer output pixels than this the direct plans are faster (measured,
# 2 threads, us, fused Winograd vs direct: 1x14x14x128 458 vs 202, 1x28x28x96 494 vs 364, 1x28x28x128
# 748 vs 606, 4x14x14x128 735 vs 610, 1x32x32x128 857 vs 807-844; but 1x36x36x64 269 vs 268-285,
# 1x40x40x64 314 vs 324-341, 2x28x28x128 1022 vs 1165, 1x56x56x64 578 vs 606-640.  The BLAS plan,
# against im2col before the streamed plan: 1x7x7x512 -> 512 5005 vs 1806, 8x14x14x256 7672 vs 12676).
# Zen 4's plans (sepconv.fast.registers) take 384: there the direct plan lost from 384 pixels (forty-seventh session,
# one process, 7 alternating rounds, direct -> Winograd: 1x28x28x128 -> 128 0.73, 1x28x28x192 -> 384 0.67-0.72,
# 1x32x32x128 0.66, 2x14x14x256 0.70, 4x14x14x128 0.72-0.74, 1x24x24x96 0.80, 1x20x20x128 0.88, 1x28x28x48 0.85,
# 8x7x7x256 0.85, 8x7x7x512 0.94-0.98); below, mixed or worse (1x14x14x128 1.16, 1x17x17x192 0.80-1.01, 1x14x14x64
# 1.04-1.25, 2x9x9x128 1.24, 2x7x7x1024 1.74-1.88: few tiles, and a 64 MB transformed filter written and read).
WINOGRAD_MIN_PIXELS = 1200
# ... and more output channels than 32: up to 32 the direct kernel's twelve-pixel tiles are faster (measured,
# 2 threads, one process, us, Winograd vs direct: 1x112x112x32 -> 32 844 vs 768, 1x56x56x64 -> 32 385 vs 365;
# but 1x56x56x32 -> 64 303 vs 333, 1x56x56x48 -> 48 361 vs 397).
WINOGRAD_MIN_OUT_CHANNELS = 33
# ... unless the layer has this many output pixels (Zen 4's and Zen 5's plans: 1200; elsewhere none does).  Forty-seventh session,
# one process, 7-9 alternating rounds, direct -> Winograd: 1x112x112x32 -> 24 0.60, 1x56x56x64 -> 24 0.59,
# 1x56x56x64 -> 32 0.74, 1x112x112x32 -> 32 0.75, 1x149x149x32 -> 32 0.77, 4x28x28x32 -> 32 0.78, 8x14x14x32 -> 32
# 0.87, 1x40x40x32 -> 32 0.80, 1x32x32x32 -> 32 0.90; below ~1000 pixels they lost (1x28x28x32 -> 32 1.10-1.14,
# 1x28x28x24 -> 24 1.30, 2x14x14x64 -> 32 1.19, 1x20x20x32 -> 32 1.10).
WINOGRAD_NARROW_MIN_PIXELS = sys.maxsize
# ... and from this many (or WINOGRAD_MIN_PIXELS if fewer) where the transformed filter (16 * C_in * C_out values)
# takes fewer bytes than WINOGRAD_BLAS_MAX_FILTER_BYTES and more than WINOGRAD_FUSED_MAX_FILTER_BYTES, so that the
# BLAS plan takes it (Zen 4's plans: 144 and half the last-level cache; elsewhere none, so WINOGRAD_MIN_PIXELS).
# Forty-seventh session, one process, 7 alternating rounds, direct -> Winograd: 1x14x14x256 -> 256 0.69-0.78,
# 1x14x14x192 -> 192 0.73, 1x14x14x160 0.79, 1x16x16x192 0.68, 1x16x16x256 0.73, 1x12x12x256 0.86-0.89, 1x14x14x384
# -> 384 (9.4 MB) 0.84, 1x14x14x256 -> 512 0.85; but 1x14x14x512 -> 512 (16 MB) 1.05, 2x7x7x1024 -> 1024 (98
# pixels, 64 MB) 1.74-1.88, and the fused plan's 1x14x14x128 -> 128 1.13-1.16.
WINOGRAD_BLAS_MIN_PIXELS = sys.maxsize
WINOGRAD_BLAS_MAX_FILTER_BYTES = 0
# ... and from this many (or WINOGRAD_MIN_PIXELS if fewer) where the fused plan takes the layer (Zen 5's plans: 384,
# WINOGRAD_MIN_PIXELS 1200 for the BLAS plan; elsewhere none).  Forty-ninth session, Zen 5 VM, one process, 5 alternating
# rounds, direct -> Winograd: fused, 1x28x28x128 -> 128 0.76, 1x32x32x128 0.70, 4x14x14x128 0.77, 1x24x24x96 0.88,
# 1x20x20x128 0.97; but the BLAS plan lost below 1200 pixels (Zen 4's 384, and 144 for filters up to half the L3):
# 8x7x7x512 -> 512 1.56, 8x7x7x256 1.47, 2x14x14x256 1.23, 1x17x17x192 1.41, 1x14x14x256 1.39, 1x14x14x160 1.52,
# 1x12x12x256 1.45, 1x14x14x384 -> 384 1.35; at 784-1568 pixels it tied (1x28x28x192 -> 384 0.96-1.04, 8x14x14x256
# 0.96-1.04), so the BLAS plan keeps the AVX-512 plans' 1200.
WINOGRAD_FUSED_MIN_PIXELS = sys.maxsize


# The BLAS plan's transformed input and products of one chunk take at most this many bytes.  Twice the
# im2col chunk: the 16 products are each a GEMM of the chunk's tiles, and OpenBLAS runs fewer, taller
# ones faster (2 threads, alternating, us, 8 vs 16 MB: 8x14x14x256 -> 256, 392 tiles in 2 chunks or
# 1, 5906 vs 5204; 4x14x14x256, 1x28x28x256 and the 128-channel layers, one chunk either way, equal).
WINOGRAD_WORKSPACE_BYTES = 16 * 1024 * 1024


def winograd_tiles(g: Conv2DGeometry, itemsize: int) -> int:
    """2x2-output tiles per Winograd chunk: its transformed input and product fit in
    :data:`WINOGRAD_WORKSPACE_BYTES`."""
    total = g.batch * (-(-g.out_h // 2)) * (-(-g.out_w // 2))
    tile_bytes = 16 * (g.in_c + g.out_c) * itemsize
    return max(1, min(total, max(GEMM_MIN_PIXELS, WINOGRAD_WORKSPACE_BYTES // tile_bytes)))


def _is_winograd(g: Conv2DGeometry, itemsize: int = 4) -> bool:
    """3x3, stride 1, undilated, ungrouped, wide enough, with enough pixels for the filter transform
    to pay."""
    return (g.kh == g.kw == 3 and g.stride_h == g.stride_w == g.dil_h == g.dil_w == g.groups == 1
            and min(g.in_c, g.out_c) >= WINOGRAD_MIN_CHANNELS and g.out_pixels >= _winograd_min_pixels(g, itemsize))


def _winograd_min_pixels(g: Conv2DGeometry, itemsize: int) -> int:
    """The least output pixels for Winograd: :data:`WINOGRAD_NARROW_MIN_PIXELS` for outputs of fewer than
    :data:`WINOGRAD_MIN_OUT_CHANNELS` channels; for the BLAS plan's filters (a transform of more bytes than the fused
    plan takes, fewer than :data:`WINOGRAD_BLAS_MAX_FILTER_BYTES`) the lesser of :data:`WINOGRAD_BLAS_MIN_PIXELS` and
    :data:`WINOGRAD_MIN_PIXELS` (which tests lower to force Winograd); for the fused plan's, the lesser of
    :data:`WINOGRAD_FUSED_MIN_PIXELS` and :data:`WINOGRAD_MIN_PIXELS`; else :data:`WINOGRAD_MIN_PIXELS`.  (So raising
    :data:`WINOGRAD_MIN_PIXELS` alone does not turn Winograd off where those take the lesser: tests raise
    :data:`WINOGRAD_MIN_CHANNELS` instead.)"""
    if g.out_c < WINOGRAD_MIN_OUT_CHANNELS:
        return WINOGRAD_NARROW_MIN_PIXELS
    if _is_winograd_fused(g, itemsize):
        return min(WINOGRAD_MIN_PIXELS, WINOGRAD_FUSED_MIN_PIXELS)
    if _winograd_filter_bytes(g, itemsize) < WINOGRAD_BLAS_MAX_FILTER_BYTES:
        return min(WINOGRAD_MIN_PIXELS, WINOGRAD_BLAS_MIN_PIXELS)
    return WINOGRAD_MIN_PIXELS


def _winograd_filter_bytes(g: Conv2DGeometry, itemsize: int) -> int:
    """The bytes of the transformed filter (16 ``[C_in, C_out]`` matrices)."""
    return 16 * g.in_c * g.out_c * itemsize


def _is_winograd_fused(g: Conv2DGeometry, itemsize: int) -> bool:
    return FUSE_WINOGRAD and _winograd_filter_bytes(g, itemsize) <= WINOGRAD_FUSED_MAX_FILTER_BYTES


def _conv2d_winograd(x: np.ndarray, w: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    n = x.shape[0]
    out = empty_aligned((n, g.out_h, g.out_w, g.out_c), x.dtype)
    transform = WINOGRAD_G.astype(x.dtype)
    # U = G w G^T per channel pair, as two matrix products (np.einsum takes ~1 ms here)
    rows = np.empty((4, 3 * g.in_c * g.out_c), x.dtype)
    matmul(transform, np.ascontiguousarray(w).reshape(3, -1), rows)  # [a, (j, C, out_c)]
    u = np.empty((4, 4, g.in_c * g.out_c), x.dtype)
    matmul(transform, rows.reshape(4, 3, -1), u)  # [a, b, C*out_c]
    u = u.reshape(16, g.in_c, g.out_c)
    tiles_h, tiles_w = -(-g.out_h // 2), -(-g.out_w // 2)
    total = n * tiles_h * tiles_w
    if _is_winograd_fused(g, x.itemsize):
        _winograd_fused(x, u, out, g, tiles_h, tiles_w)
        return out
    chunk = winograd_tiles(g, x.itemsize)
    # one spare tile per matrix: the 16 matrices' rows then do not lie a multiple of 4 KB apart, which
    # made the transforms' 16 streams share cache sets (8x14x14x256 input transform 370 -> 238 us)
    v = workspace("winograd_input", (16, chunk + 1, g.in_c), x.dtype)
    m = workspace("winograd_products", (16, chunk + 1, g.out_c), x.dtype)
    n_chunks = _n_chunks(total)
    for begin in range(0, total, chunk):
        tiles = min(total, begin + chunk) - begin
        if n_chunks == 1:  # no parallel region at all (see LAYOUT_THREADS)
            kernels.winograd_f2x3_input_range(x, v, begin, 0, tiles, g.pad_top, g.pad_left,
                                              tiles_h, tiles_w)
        else:
            with PARALLEL_LAUNCH:
                kernels.winograd_f2x3_input_nhwc(x, v, n_chunks, begin, tiles, g.pad_top, g.pad_left, tiles_h,
                                                 tiles_w)
        matmul(v[:, :tiles], u, m[:, :tiles])
        if n_chunks == 1:
            kernels.winograd_f2x3_output_range(m, out, begin, 0, tiles, tiles_h, tiles_w)
        else:
            with PARALLEL_LAUNCH:
                kernels.winograd_f2x3_output_nhwc(m, out, n_chunks, begin, tiles, tiles_h, tiles_w)
    return out


# The fused Winograd plan (:func:`_winograd_fused`) is taken when the 16 transformed filters fit in
# this many bytes (they are all read again for every chunk of tiles); larger ones (256 -> 256: 4 MB)
# go through NumPy's batched GEMM.  FUSE_WINOGRAD = False turns the plan off (tests).
FUSE_WINOGRAD = True
WINOGRAD_FUSED_MAX_FILTER_BYTES = 1024 * 1024
# A thread's transformed input and products for one chunk of tiles take at most this many bytes.
WINOGRAD_FUSED_CHUNK_BYTES = 512 * 1024
# Each thread gets at least this many multiply-adds of the products (else fewer threads).
WINOGRAD_FUSED_MIN_THREAD_MACS = 2_000_000


def _winograd_fused(x: np.ndarray, u: np.ndarray, out: np.ndarray, g: Conv2DGeometry, tiles_h: int,
                    tiles_w: int) -> None:
    """Winograd F(2x2, 3x3) in chunks of tiles that stay in cache, one run of chunks per thread
    (:func:`~sepconv.kernels.conv2d.winograd_f2x3_fused_parallel`): each chunk's 16 products are
    the register-tiled kernel of :mod:`sepconv.kernels.pointwise` on the packed ``U[e]``, not BLAS."""
    u = np.ascontiguousarray(u)
    total = x.shape[0] * tiles_h * tiles_w
    tile = pointwise.TILE_PIXELS
    chunk = max(tile, WINOGRAD_FUSED_CHUNK_BYTES // (16 * (g.in_c + g.out_c) * x.itemsize) // tile * tile)
    threads = max(1, min(thread_count(), total * 16 * g.in_c * g.out_c // WINOGRAD_FUSED_MIN_THREAD_MACS))
    per_thread = -(-total // threads)
    chunk = min(chunk, -(-per_thread // tile) * tile)  # every thread gets tiles
    v = workspace("winograd_fused_input", (threads, 16, chunk, g.in_c), x.dtype)
    m = workspace("winograd_fused_products", (threads, 16, chunk, g.out_c), x.dtype)
    args = (g.pad_top, g.pad_left, tiles_h, tiles_w)
    ups = workspace("winograd_packed_filter", (threads, 16, pointwise.packed_size(g.in_c, g.out_c, x.itemsize)),
                    x.dtype)
    if threads == 1:
        pointwise.pack_pointwise_each(u, ups[0])
        kernels.winograd_f2x3_fused_chunks(x, ups[0], out, v[0], m[0], chunk, 0, -(-total // chunk), *args)
    else:  # each thread packs its own copy of the transformed filter
        with PARALLEL_LAUNCH:
            kernels.winograd_f2x3_fused_parallel(x, u, ups, out, v, m, *args)


# Fewer pixels (tiles) than this per thread, and the layout kernels run on one thread.
PARALLEL_MIN_PIXELS = 256
# Threads for the layout kernels (at most).  Measured when the GEMMs still ran on OpenBLAS's own threads
# (whose worker kept spinning on the other core for a while), in a loop of calls, alternating, median
# us, two runs each: with OMP_PROC_BIND=true (as `sepconv bench` runs every framework), parallel
# vs serial: 1x224x224x3 s2 -> 32: 1472/1440 vs 1974/2141; 1x112x112x16 -> 32: 2485/2485 vs
# 2848/2906; 8x28x28x128: 11575/8793 vs 9835/9854.  Unbound: 1605/1435 vs 1367/1270;
# 2973/2664 vs 2175/1958; 11815/8921 vs 10538/7624.  Parallel is kept.
LAYOUT_THREADS = 2


def _n_chunks(pixels: int) -> int:
    """Ranges for the layout kernels: up to one per thread, each at least :data:`PARALLEL_MIN_PIXELS` long."""
    return max(1, min(LAYOUT_THREADS, thread_count(), pixels // PARALLEL_MIN_PIXELS))


def _im2col(x: np.ndarray, col: np.ndarray, begin: int, pixels: int, g: Conv2DGeometry) -> None:
    n_chunks = _n_chunks(pixels)
    if n_chunks == 1:  # no parallel region at all
        kernels.im2col_nhwc_range(x, col, begin, 0, pixels, *_window_ints(g))
    else:
        with PARALLEL_LAUNCH:
            kernels.im2col_nhwc(x, col, begin, pixels, n_chunks, *_window_ints(g))


def _is_pointwise(g: Conv2DGeometry) -> bool:
    return g.kh == 1 and g.kw == 1 and g.pad_top == g.pad_bottom == g.pad_left == g.pad_right == 0


def _window_ints(g: Conv2DGeometry) -> tuple[int, ...]:
    return (g.kh, g.kw, g.stride_h, g.stride_w, g.dil_h, g.dil_w, g.pad_top, g.pad_left, g.out_h, g.out_w)


def _grouped_filter(w: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """``[kh, kw, Cg, groups * Mo]`` -> ``[groups, kh*kw*Cg, Mo]`` (a view when ungrouped)."""
    k_size = g.kh * g.kw * g.group_in_c
    if g.groups == 1:
        return w.reshape(1, k_size, g.out_c)
    return np.ascontiguousarray(w.reshape(k_size, g.groups, g.multiplier).transpose(1, 0, 2))


def _grouped_pixels(a2d: np.ndarray, g: Conv2DGeometry, per_group: int) -> np.ndarray:
    """``[pixels, groups * per_group]`` -> the view ``[groups, pixels, per_group]``."""
    return a2d.reshape(a2d.shape[0], g.groups, per_group).transpose(1, 0, 2)


def _subsampled(x: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """The input pixels a strided 1x1 filter reads, as ``[pixels, C]`` (a view when stride is 1)."""
    if g.stride_h != 1 or g.stride_w != 1:
        x = np.ascontiguousarray(x[:, :: g.stride_h, :: g.stride_w, :])
    return x.reshape(-1, g.in_c)


# Ungrouped convolutions with at most this many input channels (a network's stem) run direct, the
# output channels as vector lanes, instead of im2col + GEMM (measured, 2 threads, us: 1x224x224x3
# s2 -> 32: 1582 vs 1224; 1x112x112x8 -> 32: 2277 vs 1652; 1x56x56x4 -> 24: 445 vs 317), for filters
# up to 7x7: with the eight-pixel tiles, a 7x7 stem 1x224x224x3 s2 -> 64 takes 2329-3121 direct vs
# 3875-4564 with im2col (-> 24: 1130-1287 vs 2920-4434; 1x112x112x8 -> 32: 4635 vs 7956).  Larger
# windows than 3x3 now take the direct implicit GEMM, whose tiles of 64 output channels run them faster
# (2 threads, us, few-channel kernel vs direct: 1x224x224x3 7x7 s2 -> 64 947 vs 853, -> 32 486 vs 463,
# 5x5 s2 -> 64 504 vs 470, 2x64x64x4 5x5 -> 48 392 vs 288; but 3x3 s2 -> 64 220 vs 274, -> 16 82 vs 166,
# 3x3 s1 -> 64 806 vs 851).
FEW_CHANNELS_MAX_IN_C = 8
FEW_CHANNELS_MAX_TAPS = 9
# Eight pixels by two vectors of output channels at a time, then four by one (False: four by one only, on CPUs
# without AVX-512, where the sixteen vectors of sums spill; sepconv.fast.registers).
FEW_CHANNELS_OCTETS = True


def _is_few_channels(g: Conv2DGeometry) -> bool:
    return (g.groups == 1 and g.in_c <= FEW_CHANNELS_MAX_IN_C and g.kh * g.kw <= FEW_CHANNELS_MAX_TAPS
            and not _is_pointwise(g))


def _conv2d_few_channels(x: np.ndarray, w: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """Direct conv2d for few input channels (:func:`~sepconv.kernels.conv2d.conv2d_nhwc_few_channels_rows`)."""
    out = recycled.empty((x.shape[0], g.out_h, g.out_w, g.out_c), x.dtype)
    wk = np.ascontiguousarray(w.reshape(g.kh, g.kw * g.in_c, g.out_c))
    rows = x.shape[0] * g.out_h
    n_chunks = max(1, min(rows, thread_count(), out.size // PARALLEL_MIN_PIXELS // 32))
    args = (g.stride_h, g.stride_w, g.dil_h, g.dil_w, g.pad_top, g.pad_left, FEW_CHANNELS_OCTETS)
    if n_chunks == 1:  # no parallel region at all
        kernels.conv2d_nhwc_few_channels_rows(np.ascontiguousarray(x), wk, out, 0, rows, *args)
    else:
        with PARALLEL_LAUNCH:
            kernels.conv2d_nhwc_few_channels_parallel(np.ascontiguousarray(x), wk, out, n_chunks, *args)
    return out


# The direct plan is taken (instead of im2col + GEMM) for ungrouped filters of at most this many bytes
# with at least DIRECT_MIN_PIXELS output pixels: larger filters cost more to pack on every call, and
# their panels no longer stay in L2 (measured, 2 threads, us, im2col vs direct: 8x28x28x64 -> 64 5x5:
# 17060 vs 11636; 1x56x56x32 -> 64 7x7: 9380 vs 6111; 1x32x32x64 3x3 dilation 2: 1398 vs 944; but
# 1x14x14x256 -> 512 stride 2: 1238 vs 2406, 1x28x28x96 -> 160 stride 2: 591 vs 729).
# Zen 4's plans (sepconv.fast.registers), whose direct kernel runs whole panels (see DIRECT_CHUNK_BYTES), take
# filters of up to 4 MB here (one process, alternating, 7 rounds, us, streamed vs direct: 1x14x14x128 -> 256 691 vs
# 590, 2x28x28x128 -> 128 5x5 6183 vs 5873, 4x28x28x96 -> 128 5x5 9636 vs 8957, 1x28x28x256 -> 256 4554 vs 4340,
# 1x14x14x256 -> 256 1217 vs 1173, 1x28x28x192 -> 384 5201 vs 5078); fewer pixels than DIRECT_MIN_PIXELS still
# stream (1x7x7x512 -> 512, 1x14x14x256 -> 512 stride 2).
DIRECT_MAX_FILTER_BYTES = 512 * 1024
DIRECT_MIN_PIXELS = 128
# Panels of one vector of output channels, each tile six pixels by one vector: twelve AVX2 registers of sums, where
# the four-vector tiles spill (sepconv.fast.registers takes it, with filters up to 2 MB, on CPUs without AVX-512).
# Zen 3 VM, 2 threads, one process, alternating, us, im2col + BLAS -> this: 8x28x28x64 -> 64 5x5 11241 -> 7013
# (183 GFLOP/s), 4x56x56x64 -> 128 stride 2 3234 -> 2789, 1x56x56x32 -> 64 7x7 5622 -> 3403, 8x56x56x32 -> 32
# 6436 -> 2702, 1x112x112x32 -> 32 2894 -> 1365, 1x224x224x3 -> 64 7x7 stride 2 2534 -> 1762, 2x28x28x128 -> 128
# 5x5 9085 -> 7040, 4x14x14x512 -> 512 26692 -> 21527; but 1x14x14x256 -> 256 (2.4 MB) 1670 -> 1961 and
# 8x7x7x512 -> 512 (9.4 MB) 11327 -> 12186, whose whole filter each thread packs for few pixels.  Winograd stays
# first where it applies (8x28x28x128 -> 128: 7367 vs 13316 direct).
DIRECT_NARROW_PANELS = False
# The direct plan's pixel blocks: a block's receptive rows (about kh * C * pixels * stride_w values)
# take at most this many bytes, so they stay in L2 while every panel of the filter passes them.
DIRECT_BLOCK_BYTES = 512 * 1024
# Each thread gets at least this many multiply-adds (else fewer threads).  Zen 4's plans (sepconv.fast.registers)
# take 500,000 (both threads from 1 M multiply-adds): forty-seventh session, one process, 7 alternating rounds, us,
# 2,000,000 -> 500,000: 4x13x13x37 -> 61 stride 2 (4.0 M) 99.8 -> 72.2, 1x16x16x24 -> 48 (2.7 M) 66.3 -> 47.4,
# 1x28x28x16 -> 16 (1.8 M) 67.5 -> 42.8, 1x14x14x32 -> 32 (1.8 M) 60.9 -> 50.5; 22 conv2d layers of the case files
# within 0.96-1.02.
DIRECT_MIN_THREAD_MACS = 2_000_000
# With fewer six-pixel tiles than this per thread, the threads split the filter's panels instead of
# the pixels (each then reads only its own panels of the filter).
DIRECT_PANEL_SPLIT_TILES = 8
# ... and with fewer than this (0: no such rule; Zen 5's plans, sepconv.fast.registers) where the panels split evenly
# over the threads: each thread then packs only its half of the filter, not the whole.  Fifty-third session, Zen 5 VM,
# one process, 5 alternating rounds, 8 -> 40 tiles a thread whatever the panels: 1x14x14x256 -> 256 0.93-0.95,
# 1x14x14x128 -> 256 0.94, 1x14x14x128 -> 128 0.93, 1x28x28x128 -> 256 stride 2 0.95, 1x19x19x256 -> 384 0.96, the
# other layers of benchmarks/large_filter_conv_cases.json 0.97-1.01; but with the panels split unevenly (three panels:
# 160 or 192 columns) 1.12-1.25, hence even splits only.  As shipped (even splits), over 26 conv2d layers of the case
# files and eight added: geomean 0.998, 0.93-1.06 (the 1.06 a layer whose plan it leaves as it was: noise).
DIRECT_PANEL_SPLIT_EVEN_TILES = 0


def _direct_splits_panels(panels: int, tiles: int, threads: int) -> bool:
    """Whether the direct plan's ``threads`` split the filter's ``panels`` (else the ``tiles`` of six pixels).

    Examples
    --------
    >>> _direct_splits_panels(8, 10, 2), _direct_splits_panels(8, 1000, 2), _direct_splits_panels(1, 10, 2)
    (True, False, False)
    """
    if panels < threads:
        return False
    return tiles < DIRECT_PANEL_SPLIT_TILES * threads or (
        panels % threads == 0 and tiles < DIRECT_PANEL_SPLIT_EVEN_TILES * threads)


# The padded copy of the input: NumPy's np.zeros and a copy below this many values (a kernel call costs
# more there), else a kernel that writes each value once, split over threads from this many values per
# thread (2 threads, us, zeros + copy vs kernel: 4x57x57x64 406 vs 277, 8x32x32x64 193 vs 145,
# 1x16x16x64 5 vs 11).  Split, each thread pads the rows its pixels then read, in its own cache: the
# stem 1x224x224x3 7x7 s2 -> 64 (157K values) 847 us on one thread vs 749 split from 32K (128K before).
DIRECT_PAD_KERNEL_MIN_VALUES = 64 * 1024
DIRECT_PAD_MIN_THREAD_VALUES = 32 * 1024
# A chunk of a filter panel (rows x 64 float32 columns) takes at most this many bytes, so it stays in L1
# while a block's tiles pass it.  Zen 4's plans (sepconv.fast.registers) take whole panels instead: there the sums
# read back and stored again after each chunk cost more than the panel's rows coming from L2 (one process,
# alternating, 7 rounds, us, 32 KB vs whole panels: 8x28x28x64 -> 64 5x5 6058 vs 5695, 4x56x56x64 -> 128 stride 2
# 2302 vs 2202, 1x56x56x32 -> 64 7x7 2951 vs 2810, 8x56x56x32 -> 32 2384 vs 2297, 1x32x32x64 dilation 2 386 vs
# 368; 16 and 24 KB lost 2-5%).
DIRECT_CHUNK_BYTES = 32 * 1024


# Filters of at least this many bytes that the direct plan does not take (DIRECT_MAX_FILTER_BYTES, DIRECT_MIN_PIXELS)
# are not packed beforehand: the streamed direct plan packs each chunk of
# rows as it comes (sepconv.kernels.conv2d_direct.conv2d_direct_streamed_range), on every thread, so the
# filter is read once, in order, and never written back to memory.  Measured, 2 threads, us, before
# (im2col + BLAS) vs streamed: 1x7x7x512 -> 512 1240 vs 905; 1x14x14x256 -> 512 stride 2 737 vs 546;
# 1x14x14x512 -> 512 3453 vs 2898; 1x28x28x256 -> 256 3004 vs 2791; 4x28x28x256 -> 256 5x5 41594 vs 25241;
# 1x14x14x128 -> 256 588 vs 387; 1x7x7x160 -> 960 827 vs 635; 1x28x28x192 -> 384 3237 vs 3282.
# (Winograd, when it applies, still comes first: 8x14x14x256 -> 256 4223 vs 5453 streamed.)
DIRECT_STREAMED_MIN_FILTER_BYTES = 512 * 1024
# Rows of the filter per chunk: at most this many bytes per panel (64 float32 columns).  A chunk of 32 KB stays in
# L1 while the tiles pass it (2 threads, us, 16/32/48/64 KB, the chunk packed before the tiles: 1x7x7x512 -> 512
# 1100/1016/1078/1016, 4x14x14x512 -> 512 10419/10209/10679/10874, 2x28x28x256 5x5 14136/13403/14313/14234).  Since
# the first tile packs the chunk as it reads it (fifty-third session), larger chunks, read by the other tiles from L2,
# pay off: fewer reloads of the sums.  Zen 5 VM, one process, 9 interleaved rounds, time against the chunk packed
# before the tiles in 32 KB, 1 / 2 threads, first tile packing in 32 / 64 / 128 KB: 1x7x7x512 -> 512 0.93/0.90/0.88,
# 0.97/0.90/0.90; 1x14x14x256 -> 512 stride 2 0.92/0.94/0.93, 0.95/0.93/0.93; 1x7x7x160 -> 960 0.95/0.91/0.91,
# 0.98/0.93/0.94; 4x7x7x512 -> 512 0.99/0.98/0.95, 0.99/0.95/0.93; separable 1x19x19x728 -> 728 0.97/0.91/0.95,
# 0.97/0.95/0.98; 1x10x10x1024 -> 1536 1.00/0.96/0.92, 1.01/0.96/0.95; at par 1x28x28x256 -> 256, 1x14x14x128 -> 256.
DIRECT_STREAMED_CHUNK_BYTES = 64 * 1024
# With at least this many output pixels per thread, the threads split the pixels (each then packs the
# whole filter); with fewer, the filter's panels or the input channels (see _streamed).  2 threads, us,
# one process, split by pixels / panels / channels (2026-12-03): 8x7x7x512 -> 512 (196 per thread) 6685 /
# 7161 / 7496; 1x14x14x256 -> 256 (98) 1014 / 1013 / 998; 1x7x7x512 -> 512 1567 / 1223 / 1254;
# 1x14x14x256 -> 512 stride 2 788 / 591 / 639; 1x28x28x128 -> 128 787 / 940 / 927.
DIRECT_STREAMED_SPLIT_PIXELS = 128
# The pixels of a block (the whole filter streams past each block) have at most this many bytes of output,
# so their sums stay in L2 between chunks (4x28x28x256 -> 256 5x5, us, 512 vs 128 KB: 25241 vs 26856).
DIRECT_STREAMED_BLOCK_BYTES = 512 * 1024
# With fewer pixels than that split, the threads split the filter's panels (64 float32 columns each) where
# each gets at least this many, else the input channels.
STREAMED_SPLIT_PANELS_MIN = 4


def _is_direct_streamed(g: Conv2DGeometry, itemsize: int) -> bool:
    """Ungrouped, not 1x1, a filter of :data:`DIRECT_STREAMED_MIN_FILTER_BYTES` or more."""
    return (tuned(itemsize) and g.groups == 1 and not _is_pointwise(g)
            and min(g.pad_top, g.pad_bottom, g.pad_left, g.pad_right) >= 0
            and g.kh * g.kw * g.in_c * g.out_c * itemsize >= DIRECT_STREAMED_MIN_FILTER_BYTES)


def _direct_taps(g: Conv2DGeometry, wp: int) -> np.ndarray:
    """The direct kernels' taps: offsets in the padded input (``wp`` pixels wide) of the ``kh * kw``
    filter taps, each spanning ``C`` values.  (Merging a row's ``kw`` taps into one run of ``kw * C``
    values, possible when undilated, was measured: no faster, 1x224x224x3 7x7 included.)"""
    taps = [(i * g.dil_h * wp + j * g.dil_w) * g.in_c for i in range(g.kh) for j in range(g.kw)]
    return np.array(taps, np.int64)


def _conv2d_direct_streamed(x: np.ndarray, w: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """Direct forward with the filter packed chunk by chunk as it streams in (large filters, see
    :data:`DIRECT_STREAMED_MIN_FILTER_BYTES`)."""
    xp = _padded(x, g)
    hp, wp = xp.shape[1], xp.shape[2]
    out = empty_aligned((x.shape[0], g.out_h, g.out_w, g.out_c), x.dtype)
    _streamed(xp.reshape(-1), _direct_taps(g, wp), g.in_c, np.ascontiguousarray(w).reshape(-1), out.reshape(-1),
              (g.out_c, g.out_h, g.out_w, hp, wp, g.stride_h, g.stride_w))
    return out


def _streamed(xf: np.ndarray, taps: np.ndarray, tap_values: int, wf: np.ndarray, out: np.ndarray,
              geo: tuple[int, ...], split_pixels: int = DIRECT_STREAMED_SPLIT_PIXELS, split: str | None = None,
              block_bytes: int | None = None) -> None:
    """The streamed direct kernels over all of ``out`` (flat; ``geo`` = out_c, out_h, out_w, hp, wp,
    stride_h, stride_w): the threads split the output pixels from ``split_pixels`` per thread; with
    fewer, the filter's panels (columns) where there are :data:`STREAMED_SPLIT_PANELS_MIN` per thread,
    else the values of each tap (input channels), each thread into its own output, added at the end.
    ``split`` ("pixels", "panels" or "channels") forces the split (tests, measurements); ``block_bytes``
    replaces :data:`DIRECT_STREAMED_BLOCK_BYTES`."""
    out_c = geo[0]
    pixels = out.size // out_c
    chunk = max(1, DIRECT_STREAMED_CHUNK_BYTES // (VECTOR_BYTES * 4))
    tile = pointwise.TILE_PIXELS
    block_bytes = DIRECT_STREAMED_BLOCK_BYTES if block_bytes is None else block_bytes
    block = max(tile, block_bytes // (out_c * out.itemsize) // tile * tile)
    full, tail, _ = pointwise.panel_layout(out_c, VECTOR_BYTES // out.itemsize)
    panels = full + (tail > 0)
    args = (taps, tap_values, wf)
    threads = max(1, min(thread_count(), pixels * wf.size // DIRECT_MIN_THREAD_MACS))
    if threads == 1:
        conv2d_direct.conv2d_direct_streamed_range(xf, *args, out, *geo, 0, pixels, 0, tap_values, 0, panels, chunk,
                                                   block)
        return
    if split is None:
        split = ("pixels" if pixels >= split_pixels * threads
                 else "panels" if panels >= STREAMED_SPLIT_PANELS_MIN * threads else "channels")
    tiles = -(-pixels // tile)
    outs = out.reshape(1, -1)
    if split == "pixels":
        ranges = [(min(pixels, tiles * k // threads * tile), min(pixels, tiles * (k + 1) // threads * tile), 0,
                   tap_values, 0, 0, panels) for k in range(threads)]
    elif split == "panels":
        ranges = [(0, pixels, 0, tap_values, 0, panels * k // threads, panels * (k + 1) // threads)
                  for k in range(threads)]
    else:  # each thread takes a share of every tap's values
        outs = np.empty((threads, out.size), out.dtype)
        ranges = [(0, pixels, tap_values * k // threads, tap_values * (k + 1) // threads, k, 0, panels)
                  for k in range(threads)]
    with PARALLEL_LAUNCH:
        conv2d_direct.conv2d_direct_streamed_parallel(xf, *args, outs, *geo, np.array(ranges, np.int64), chunk, block)
    if outs.shape[0] > 1:
        np.sum(outs, axis=0, out=out)


def _is_direct(g: Conv2DGeometry, itemsize: int) -> bool:
    if (not tuned(itemsize) or g.groups != 1 or _is_pointwise(g)
            or min(g.pad_top, g.pad_bottom, g.pad_left, g.pad_right) < 0):
        return False
    return (g.kh * g.kw * g.in_c * g.out_c * itemsize <= DIRECT_MAX_FILTER_BYTES
            and g.out_pixels >= DIRECT_MIN_PIXELS)


def _padded(x: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """``x`` with its padding as zeros, ``[N, Hp, Wp, C]`` (``x`` itself when unpadded)."""
    n = x.shape[0]
    hp, wp = g.in_h + g.pad_top + g.pad_bottom, g.in_w + g.pad_left + g.pad_right
    x = np.ascontiguousarray(x)
    if hp == g.in_h and wp == g.in_w:
        return x
    if n * hp * wp * g.in_c < DIRECT_PAD_KERNEL_MIN_VALUES:
        xp = np.zeros((n, hp, wp, g.in_c), x.dtype)
        xp[:, g.pad_top:g.pad_top + g.in_h, g.pad_left:g.pad_left + g.in_w] = x
        return xp
    xp = workspace("padded_input", (n, hp, wp, g.in_c), x.dtype)  # each value written once, on both threads
    n_chunks = max(1, min(thread_count(), xp.size // DIRECT_PAD_MIN_THREAD_VALUES))
    if n_chunks == 1:
        conv2d_direct.pad_rows(x, xp, g.pad_top, g.pad_left, 0, n * hp)
    else:
        with PARALLEL_LAUNCH:
            conv2d_direct.pad_parallel(x, xp, g.pad_top, g.pad_left, n_chunks)
    return xp


def _conv2d_direct(x: np.ndarray, w: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """Direct (implicit GEMM) forward (:mod:`sepconv.kernels.conv2d_direct`): the input padded once,
    the filter packed once by each thread (the panels it uses), six output pixels by four vectors of output
    channels in registers over every tap, or by one (:data:`DIRECT_NARROW_PANELS`)."""
    n = x.shape[0]
    xp = _padded(x, g)
    hp, wp = xp.shape[1], xp.shape[2]
    k_total = g.kh * g.kw * g.in_c
    b = np.ascontiguousarray(w.reshape(k_total, g.out_c))
    taps = _direct_taps(g, wp)
    out = empty_aligned((n, g.out_h, g.out_w, g.out_c), x.dtype)
    pixels = g.out_pixels
    tile = pointwise.TILE_PIXELS
    lane_count = VECTOR_BYTES // x.itemsize
    narrow = DIRECT_NARROW_PANELS
    panel_columns = lane_count if narrow else 4 * lane_count
    if narrow:
        panels = -(-g.out_c // lane_count)
        packed = panels * lane_count * k_total
    else:
        full, tail, _ = pointwise.panel_layout(g.out_c, lane_count)
        panels = full + (tail > 0)
        packed = pointwise.packed_size(k_total, g.out_c, x.itemsize)
    block = max(tile, DIRECT_BLOCK_BYTES // (g.kh * g.in_c * g.stride_w * x.itemsize) // tile * tile)
    threads = max(1, min(thread_count(), pixels * k_total * g.out_c // DIRECT_MIN_THREAD_MACS))
    tap_bytes = g.in_c * panel_columns * x.itemsize
    if tap_bytes <= DIRECT_CHUNK_BYTES:
        chunk = (DIRECT_CHUNK_BYTES // tap_bytes, g.in_c)
    else:
        chunk = (1, DIRECT_CHUNK_BYTES // (panel_columns * x.itemsize))
    geo = (out.reshape(-1), g.out_c, g.out_h, g.out_w, hp, wp, g.stride_h, g.stride_w)
    bps = workspace("direct_packed_filter", (threads, packed), x.dtype)
    if narrow:
        pack, run_range = conv2d_direct.pack_vector_panels, conv2d_direct.conv2d_direct_narrow_range
        run_parallel = conv2d_direct.conv2d_direct_narrow_parallel
    else:
        pack, run_range = pointwise.pack_pointwise_panels, conv2d_direct.conv2d_direct_range
        run_parallel = conv2d_direct.conv2d_direct_parallel
    if threads == 1:
        pack(b, bps[0], 0, panels)
        run_range(xp.reshape(-1), taps, g.in_c, bps[0], *geo, 0, pixels, 0, panels, block, *chunk)
        return out
    tiles = -(-pixels // tile)
    if _direct_splits_panels(panels, tiles, threads):  # few pixels: each thread takes some panels
        ranges = [(0, pixels, panels * k // threads, panels * (k + 1) // threads) for k in range(threads)]
    else:  # each thread takes a run of whole tiles
        ranges = [(min(pixels, tiles * k // threads * tile), min(pixels, tiles * (k + 1) // threads * tile), 0, panels)
                  for k in range(threads)]
    with PARALLEL_LAUNCH:  # each thread packs the panels it uses into its own buffer
        run_parallel(xp.reshape(-1), taps, g.in_c, b, bps, *geo, np.array(ranges, np.int64), block, *chunk)
    return out


# Products whose filter takes at most this many bytes (the 1x1 conv2d, the unfused separable's pointwise
# stage) run on the register-tiled kernel of sepconv.kernels.pointwise, not BLAS.  Chosen when BLAS ran on
# its own threads, which waited for the cores of our spinning OpenMP workers after a depthwise layer
# (2 threads, us, a depthwise 3x3 layer then the 1x1 conv, BLAS vs ours: 1x56x56x144 -> 24 374 vs 179;
# 1x28x28x192 -> 32 228 vs 76); against BLAS on our own threads (sepconv.fast.gemm) it still wins on
# these shapes: 1x56x56x144 -> 24 215 vs 185, 1x28x28x192 -> 32 98 vs 81, 1x112x112x32 -> 16 173 vs
# 138, 8x14x14x384 -> 64 455 vs 369; 1x14x14x576 -> 96 and 1x7x7x960 -> 320 at par.
# POINTWISE_KERNEL = False keeps BLAS (tests, and CPUs without AVX-512: sepconv.fast.registers).
POINTWISE_KERNEL = True
POINTWISE_KERNEL_MAX_FILTER_BYTES = 512 * 1024
# The product splits over the threads from this many multiply-adds (one process, alternating, us, 1,000,000 vs
# 600,000, separable / its 1x1 conv2d alone: 1x30x30x64 3x3 stride 2 -> 64 (0.92M) 34.7 / 21.5 vs 32.5 / 18.1,
# 1x24x24x96 stride 2 -> 64 (0.88M) 34.1 / 22.4 vs 31.9 / 19.1, 1x20x20x96 stride 2 -> 96 (0.92M) 35.2 / 23.7 vs
# 31.3 / 20.3, 2x18x18x64 stride 2 -> 64 (0.66M) 30.9 / 19.9 vs 30.3 / 17.9; below, split lost: 1x17x17x64 7x7
# stride 2 -> 64 (0.33M) 21.5 / 11.1 on one thread, 24.4 / 13.5 split).
POINTWISE_PARALLEL_MIN_MACS = 600_000
# Larger filters stream through the direct kernels as a one-tap conv2d (each thread packing its chunks of
# the filter as it reaches them): of any size for at most POINTWISE_STREAMED_MAX_PIXELS pixels, up to
# POINTWISE_STREAMED_MAX_FILTER_BYTES for at most POINTWISE_STREAMED_MAX_PIXELS_SMALL_FILTER pixels; the
# threads split the pixels from POINTWISE_STREAMED_SPLIT_PIXELS each (the rows of the depthwise result
# each thread wrote), else the filter's panels.  The rest go to BLAS on our threads.  2 threads, us,
# one process, streamed vs BLAS, after the panel-by-panel packing and the panel split (2026-12-03):
# 49x512 @ 512x1024 277 vs 319, 49x1024x1024 487 vs 621, 100x1024x1536 1421 vs 1428, 100x1536x2048
# 2500 vs 2549, 128x728x728 532 vs 575, 196x512x512 380 vs 410, 400x512x512 730 vs 775; but
# 784x256x728 1044 vs 981, 1369x256x728 1737 vs 1661, 361x728x728 1633 vs 1450 (at par: 784x512x512
# 1441 vs 1469, 144x1024x1536 1787 vs 1784).  With the product in one block (POINTWISE_STREAMED_BLOCK_BYTES),
# G multiply-adds/s, streamed vs BLAS: 361x728x728 151 vs 143, 400x728x728 145 vs 140, but 1444x728x728
# 140 vs 158, 196x1024x1024 129 vs 131, 512x1024x1024 139 vs 147 (hence 2.5 MB: Xception's 728 x 728).
POINTWISE_STREAMED_MAX_FILTER_BYTES = 2560 * 1024
POINTWISE_STREAMED_MAX_PIXELS = 128
POINTWISE_STREAMED_MAX_PIXELS_SMALL_FILTER = 512
POINTWISE_STREAMED_SPLIT_PIXELS = 64
# The streamed products' blocks of pixels (each block packs the whole filter again) have up to this many
# bytes of output: one block for these few pixels (2 threads, G multiply-adds/s, blocks of 512 KB vs 2 MB:
# 100x1024 @ 1024x1536 103 vs 131, 100x1536x2048 111 vs 138, 400x512x1024 140 vs 146; conv2d keeps
# DIRECT_STREAMED_BLOCK_BYTES: 4x28x28x256 -> 256 5x5 33.2 vs 38.9 ms).
POINTWISE_STREAMED_BLOCK_BYTES = 2 * 1024 * 1024
# Filters larger than POINTWISE_KERNEL_MAX_FILTER_BYTES, up to this many bytes, also take the register-tiled kernel
# when the product has at least POINTWISE_KERNEL_LARGE_FILTER_MIN_PIXELS pixels (0: none; Zen 4's plans,
# sepconv.fast.registers).  There, each thread packing the whole filter, one panel of it in L2 at a time, beat the
# streamed kernels and BLAS on our threads (one process, 2 threads, orders rotated, 11 rounds, us, tiles / streamed /
# BLAS: 361x728x728 1863 / 2085 / 1948, 128x728x728 674 / 755 / 708, 1444x728x728 7177 / 8149 / 7574, 196x1024x512
# 990 / 1098 / 1051, 1444x1024x1024 14503 / 15646 / 15392; at par 100x728x728 565 / 585 / 573, 400x1024x1536 6372 /
# 6581 / 6349; lost with few pixels: 64x728x728 400 / 396 / 383, 16x728x728 172 / 131 / 126, 49x512x1024 351 / 318 /
# 386, and with a 12 MB filter, 100x1536x2048 4859 / 3639 / 3770).
POINTWISE_KERNEL_LARGE_FILTER_MAX_BYTES = 0
POINTWISE_KERNEL_LARGE_FILTER_MIN_PIXELS = 100
# Larger filters (BLAS on our threads) split the product by rows while the pixels number at least
# 1/this of the output channels, else by columns (2 threads, us, separable, whole layer, rows vs
# columns: 1x19x19x728 -> 728 1226 vs 1326, 1x14x14x512 -> 512 461 vs 509; but 1x10x10x728 -> 728
# 541 vs 473, 2x10x10x1024 -> 1536 2419 vs 2217, 1x14x14x1024 -> 1024 1584 vs 1467).
POINTWISE_SPLIT_ROWS_RATIO = 3
# Products of at most this many pixels (0: none) whose left operand takes at most POINTWISE_FEW_PIXELS_MAX_BYTES
# (each thread reads all of it once per tile of columns) run on sepconv.kernels.pointwise_few_pixels, the filter
# read where it is (no packing), split over the threads by columns from POINTWISE_FEW_PIXELS_PARALLEL_MIN_MACS
# multiply-adds; in tiles of whole vectors (AVX-512) or of half ones (sixteen AVX2 registers:
# POINTWISE_FEW_PIXELS_WHOLE_VECTORS, sepconv.fast.registers).  With whole vectors: filters of up to
# POINTWISE_FEW_PIXELS_MAX_FILTER_BYTES, and over POINTWISE_FEW_PIXELS_SMALL_MAX pixels only products of up to
# POINTWISE_FEW_PIXELS_SMALL_MAX_MACS multiply-adds into two vectors of columns or more (32 float32: narrower ones
# leave most of a tile's three vectors idle).  Fifty-first session, Zen 5 VM, one process, 9 interleaved rounds, 250 random
# products of 1-196 pixels, 16-960 x 16-1024 (the packed register-tiled kernel -> this one, its best of 1 and 2
# threads, us): 1 pixel 0.23-0.41 (1x192 @ 192x160 9.7 -> 3.1), 4 pixels 0.21-0.43, 9 0.25-0.95 (9x120 @ 120x160
# 5.7 -> 2.7), 16 0.25-0.81, 25 0.31-0.91; but 1.01-1.22 with a filter of 2.3 MB or more; 36-64 pixels 0.28-0.89 up
# to 600K multiply-adds (1.07-1.33 into 16 columns of 256-576 rows), 0.71-1.73 beyond; 100-196 pixels 0.57-2.69
# (geomean above 1).  Two threads from 300K multiply-adds (one thread 0.7-1.4 of two's time at 150-400K).
POINTWISE_FEW_PIXELS_MAX = 64
POINTWISE_FEW_PIXELS_MAX_BYTES = 128 * 1024
POINTWISE_FEW_PIXELS_PARALLEL_MIN_MACS = 300_000
POINTWISE_FEW_PIXELS_WHOLE_VECTORS = True
POINTWISE_FEW_PIXELS_MAX_FILTER_BYTES = 1536 * 1024
POINTWISE_FEW_PIXELS_SMALL_MAX = 32
POINTWISE_FEW_PIXELS_SMALL_MAX_MACS = 600_000


def pointwise_product(x2d: np.ndarray, w2d: np.ndarray, out2d: np.ndarray) -> None:
    """``out2d = x2d @ w2d`` (``out2d`` C-contiguous): products of at most :data:`POINTWISE_FEW_PIXELS_MAX`
    pixels on :mod:`sepconv.kernels.pointwise_few_pixels`; else on the register-tiled kernel
    (:mod:`sepconv.kernels.pointwise`), split over the OpenMP threads from
    :data:`POINTWISE_PARALLEL_MIN_MACS`, when ``w2d`` fits in :data:`POINTWISE_KERNEL_MAX_FILTER_BYTES` (or in
    :data:`POINTWISE_KERNEL_LARGE_FILTER_MAX_BYTES`, from :data:`POINTWISE_KERNEL_LARGE_FILTER_MIN_PIXELS` pixels) and
    ``x2d`` is C-contiguous; else the streamed direct kernels (see :data:`POINTWISE_STREAMED_MAX_FILTER_BYTES`) or
    BLAS (:func:`sepconv.fast.gemm.matmul`).

    Examples
    --------
    >>> import numpy as np
    >>> x, w, out = np.ones((7, 3), np.float32), np.ones((3, 5), np.float32), np.empty((7, 5), np.float32)
    >>> pointwise_product(x, w, out); float(out[6, 4])
    3.0
    """
    tuned_dtype = tuned(x2d.itemsize)  # else BLAS (sepconv.fast.tuned)
    kernel = POINTWISE_KERNEL and tuned_dtype
    if tuned_dtype and _few_pixels(x2d, w2d) and x2d.flags.c_contiguous and out2d.flags.c_contiguous:
        _few_pixels_product(x2d, np.ascontiguousarray(w2d), out2d)
        return
    tiled = tuned_dtype and x2d.flags.c_contiguous and tiled_product(x2d.shape[0], w2d.nbytes)
    if (kernel and not tiled and w2d.nbytes > POINTWISE_KERNEL_MAX_FILTER_BYTES and x2d.flags.c_contiguous
            and (x2d.shape[0] <= POINTWISE_STREAMED_MAX_PIXELS
                 or (w2d.nbytes <= POINTWISE_STREAMED_MAX_FILTER_BYTES
                     and x2d.shape[0] <= POINTWISE_STREAMED_MAX_PIXELS_SMALL_FILTER))):
        # the filter streamed through the direct kernels as one tap (see POINTWISE_STREAMED_MAX_FILTER_BYTES)
        pixels, k_size = x2d.shape
        _streamed(x2d.reshape(-1), np.zeros(1, np.int64), k_size, np.ascontiguousarray(w2d).reshape(-1),
                  out2d.reshape(-1), (w2d.shape[1], 1, pixels, 1, pixels, 1, 1), POINTWISE_STREAMED_SPLIT_PIXELS,
                  block_bytes=POINTWISE_STREAMED_BLOCK_BYTES)
        return
    if not tiled:
        # split by rows unless the filter is much wider than the pixels are many: x2d was written by
        # our threads split by rows, so each then reads the rows it wrote, in its own cache
        matmul(x2d, w2d, out2d, split_rows=POINTWISE_SPLIT_ROWS_RATIO * x2d.shape[0] >= w2d.shape[1])
        return
    k_size, out_c = w2d.shape
    pixels = x2d.shape[0]
    tiles = -(-pixels // pointwise.TILE_PIXELS)
    threads = 1 if pixels * k_size * out_c < POINTWISE_PARALLEL_MIN_MACS else min(thread_count(), tiles)
    bps = workspace("pointwise_packed_filter", (threads, pointwise.packed_size(k_size, out_c, x2d.itemsize)),
                    x2d.dtype)
    if threads == 1:
        pointwise.pack_pointwise(np.ascontiguousarray(w2d), bps[0])
        pointwise.pointwise_tiles(x2d.reshape(-1), bps[0], out2d.reshape(-1), k_size, out_c, 0, tiles)
    else:  # each thread packs its own copy of the filter (see pointwise_parallel)
        with PARALLEL_LAUNCH:
            pointwise.pointwise_parallel(x2d.reshape(-1), np.ascontiguousarray(w2d), bps, out2d.reshape(-1), k_size,
                                         out_c, threads)


def tiled_product(pixels: int, filter_bytes: int) -> bool:
    """Whether :func:`pointwise_product` computes a product of ``pixels`` rows and a filter of ``filter_bytes`` on the
    register-tiled kernel (:data:`POINTWISE_KERNEL`; the filter within :data:`POINTWISE_KERNEL_MAX_FILTER_BYTES`, or
    within :data:`POINTWISE_KERNEL_LARGE_FILTER_MAX_BYTES` from :data:`POINTWISE_KERNEL_LARGE_FILTER_MIN_PIXELS`
    pixels); the caller checks the rest (a C-contiguous input of a tuned dtype, more pixels than the few-pixel
    kernel's).

    Examples
    --------
    >>> tiled_product(196, 96 * 160 * 4) == POINTWISE_KERNEL  # 60 KB: within every plan's limit
    True
    >>> tiled_product(361, 8 * 1024 * 1024)  # 8 MB: past every plan's
    False
    """
    return POINTWISE_KERNEL and (
        filter_bytes <= POINTWISE_KERNEL_MAX_FILTER_BYTES
        or (filter_bytes <= POINTWISE_KERNEL_LARGE_FILTER_MAX_BYTES and pixels >= POINTWISE_KERNEL_LARGE_FILTER_MIN_PIXELS))


def _few_pixels(x2d: np.ndarray, w2d: np.ndarray) -> bool:
    """Whether the product ``x2d @ w2d`` takes :mod:`sepconv.kernels.pointwise_few_pixels` (see
    :data:`POINTWISE_FEW_PIXELS_MAX`)."""
    pixels = x2d.shape[0]
    if pixels > POINTWISE_FEW_PIXELS_MAX or x2d.nbytes > POINTWISE_FEW_PIXELS_MAX_BYTES:
        return False
    if not POINTWISE_FEW_PIXELS_WHOLE_VECTORS:
        return True
    k_size, out_c = w2d.shape
    return w2d.nbytes <= POINTWISE_FEW_PIXELS_MAX_FILTER_BYTES and (pixels <= POINTWISE_FEW_PIXELS_SMALL_MAX or (
        pixels * k_size * out_c <= POINTWISE_FEW_PIXELS_SMALL_MAX_MACS
        and out_c * w2d.itemsize >= 2 * VECTOR_BYTES))


def _few_pixels_product(x2d: np.ndarray, w2d: np.ndarray, out2d: np.ndarray) -> None:
    """``out2d = x2d @ w2d`` on :mod:`sepconv.kernels.pointwise_few_pixels` (all three C-contiguous)."""
    pixels, k_size = x2d.shape
    out_c = w2d.shape[1]
    whole = POINTWISE_FEW_PIXELS_WHOLE_VECTORS
    tiles = pointwise_few_pixels.column_tiles(out_c, w2d, whole)
    chunks = 1 if pixels * k_size * out_c < POINTWISE_FEW_PIXELS_PARALLEL_MIN_MACS else min(thread_count(), tiles)
    if chunks == 1:
        pointwise_few_pixels.pointwise_few_pixels_tiles(x2d, w2d, out2d, 0, tiles, whole)
        return
    with PARALLEL_LAUNCH:
        pointwise_few_pixels.pointwise_few_pixels_parallel(x2d, w2d, out2d, chunks, whole)


def conv2d(x: np.ndarray, w: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """Forward: ``x [N, H, W, C]``, ``w [kh, kw, C/groups, out_c]`` -> ``[N, out_h, out_w, out_c]``.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.geometry import conv2d_geometry
    >>> x, w = np.ones((1, 5, 5, 2), np.float32), np.ones((3, 3, 2, 4), np.float32)
    >>> g = conv2d_geometry("conv2d", x.shape, w.shape, 1, "SAME")
    >>> float(conv2d(x, w, g)[0, 2, 2, 0]), float(conv2d(x, w, g)[0, 0, 0, 0])
    (18.0, 8.0)
    """
    if tuned(x.itemsize) and _is_winograd(g, x.itemsize):
        # Non-finite layers take the plans below (see the module docstring).  An infinity or NaN in x or w
        # makes every product it enters non-finite and no transform makes it finite again, so one pass over
        # whichever is smaller, the output or the input and the filter, finds it (8x14x14x256 -> 256: 28 us,
        # against 152 for np.sum(x) and np.isfinite(w)); checked on the output, a sum past the float range too.
        if x.size + w.size < g.out_pixels * g.out_c:
            if all_finite(x) and all_finite(w):
                return _conv2d_winograd(x, w, g)
        else:
            out = _conv2d_winograd(x, w, g)
            if all_finite(out):
                return out
    if tuned(x.itemsize) and _is_few_channels(g):
        return _conv2d_few_channels(x, w, g)
    if _is_direct(g, x.itemsize):
        return _conv2d_direct(x, w, g)
    if _is_direct_streamed(g, x.itemsize):
        return _conv2d_direct_streamed(x, w, g)
    n = x.shape[0]
    out = recycled.empty((n, g.out_h, g.out_w, g.out_c), x.dtype)
    out2d = out.reshape(-1, g.out_c)
    wg = _grouped_filter(w, g)
    if _is_pointwise(g):
        xg = _grouped_pixels(_subsampled(x, g), g, g.group_in_c)
        if g.groups == 1:
            pointwise_product(xg[0], wg[0], out2d)
        else:
            matmul(xg, wg, _grouped_pixels(out2d, g, g.multiplier))
        return out
    total = out2d.shape[0]
    chunk = chunk_pixels(g, x.itemsize)
    col = workspace("im2col", (g.groups, chunk, wg.shape[1]), x.dtype)
    for begin in range(0, total, chunk):
        end = min(total, begin + chunk)
        col_chunk = col[:, : end - begin]
        _im2col(x, col, begin, end - begin, g)
        if g.groups == 1:
            matmul(col_chunk[0], wg[0], out2d[begin:end])
        else:
            matmul(col_chunk, wg, _grouped_pixels(out2d[begin:end], g, g.multiplier))
    return out


# At stride 1 (ungrouped, not 1x1) the input gradient is the forward of dy with the filter turned half a turn and its
# input and output channels swapped, padded by the filter's reach less the layer's pads: it then takes the forward's
# plans (Winograd, the direct kernels) instead of a product into an im2col buffer and a col2im.  sepconv.fast.registers
# turns it on for CPUs without AVX-512 (not measured with AVX-512).  Thirty-fourth session, Zen 3 VM, 2 threads, us,
# im2col -> forward of dy: 8x28x28x64 -> 64 5x5 11633 -> 7259, 1x56x56x64 -> 64 3x3 1938 -> 1015, 8x28x28x128 -> 128
# 3x3 13111 -> 7968, 1x112x112x32 -> 64 5103 -> 2981, 1x56x56x32 -> 64 7x7 5729 -> 3393.
INPUT_GRADIENT_AS_FORWARD = False


def _input_gradient_as_forward(w: np.ndarray, dy: np.ndarray, g: Conv2DGeometry) -> np.ndarray | None:
    """The stride-1 input gradient as the forward of ``dy`` (see :data:`INPUT_GRADIENT_AS_FORWARD`), or None where
    that does not apply (strided, grouped, 1x1, empty, or pads past the filter's reach)."""
    reach_h, reach_w = (g.kh - 1) * g.dil_h, (g.kw - 1) * g.dil_w
    pads = (reach_h - g.pad_top, reach_h - g.pad_bottom, reach_w - g.pad_left, reach_w - g.pad_right)
    if (not INPUT_GRADIENT_AS_FORWARD or g.stride_h != 1 or g.stride_w != 1 or g.groups != 1 or _is_pointwise(g)
            or dy.size == 0 or min(pads) < 0):
        return None
    turned = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))  # [kh, kw, out_c, in_c]
    forward = conv2d_geometry("conv2d", dy.shape, turned.shape, 1, [[0, 0], pads[:2], pads[2:], [0, 0]],
                              dilations=[1, g.dil_h, g.dil_w, 1])
    return conv2d(np.ascontiguousarray(dy), turned, forward)


def conv2d_backprop_input(w: np.ndarray, dy: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """Input gradient: ``w [kh, kw, C/groups, out_c]``, ``dy [N, out_h, out_w, out_c]`` -> ``[N, H, W, C]``.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.geometry import conv2d_geometry
    >>> w, dy = np.ones((3, 3, 2, 4)), np.ones((1, 5, 5, 4))
    >>> g = conv2d_geometry("conv2d_backprop_input", (1, 5, 5, 2), w.shape, 1, "SAME")
    >>> float(conv2d_backprop_input(w, dy, g)[0, 2, 2, 0])
    36.0
    """
    dx = _input_gradient_as_forward(w, dy, g)
    if dx is not None:
        return dx
    n = dy.shape[0]
    dy2d = dy.reshape(-1, g.out_c)
    wg_t = _grouped_filter(w, g).transpose(0, 2, 1)  # [groups, Mo, K]
    if _is_pointwise(g) and g.stride_h == 1 and g.stride_w == 1:
        dx = recycled.empty((n, g.in_h, g.in_w, g.in_c), dy.dtype)
        matmul(_grouped_pixels(dy2d, g, g.multiplier), wg_t, _grouped_pixels(dx.reshape(-1, g.in_c), g, g.group_in_c))
        return dx
    dx = np.zeros((n, g.in_h, g.in_w, g.in_c), dy.dtype)
    total = dy2d.shape[0]
    chunk = chunk_pixels(g, dy.itemsize)
    col = workspace("im2col", (g.groups, chunk, wg_t.shape[2]), dy.dtype)
    for begin in range(0, total, chunk):
        end = min(total, begin + chunk)
        col_chunk = col[:, : end - begin]
        matmul(_grouped_pixels(dy2d[begin:end], g, g.multiplier), wg_t, col_chunk)
        kernels.col2im_add_nhwc(col, dx, begin, end - begin, *_window_ints(g))
    return dx


def conv2d_backprop_filter(x: np.ndarray, dy: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """Filter gradient: ``x [N, H, W, C]``, ``dy [N, out_h, out_w, out_c]`` -> ``[kh, kw, C/groups, out_c]``.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.geometry import conv2d_geometry
    >>> x, dy = np.ones((1, 5, 5, 2)), np.ones((1, 5, 5, 4))
    >>> g = conv2d_geometry("conv2d_backprop_filter", x.shape, (3, 3, 2, 4), 1, "SAME")
    >>> conv2d_backprop_filter(x, dy, g)[:, :, 0, 0]
    array([[16., 20., 16.],
           [20., 25., 20.],
           [16., 20., 16.]])
    """
    dyg = _grouped_pixels(dy.reshape(-1, g.out_c), g, g.multiplier)  # [groups, pixels, Mo]
    k_size = g.kh * g.kw * g.group_in_c
    if _is_pointwise(g):
        xg = _grouped_pixels(_subsampled(x, g), g, g.group_in_c)
        dw_grouped = np.empty((g.groups, k_size, g.multiplier), x.dtype)
        matmul(xg.transpose(0, 2, 1), dyg, dw_grouped)
    else:
        total = dyg.shape[1]
        chunk = chunk_pixels(g, x.itemsize)
        col = workspace("im2col", (g.groups, chunk, k_size), x.dtype)
        dw_grouped = np.empty((g.groups, k_size, g.multiplier), x.dtype)
        for begin in range(0, total, chunk):
            end = min(total, begin + chunk)
            col_chunk = col[:, : end - begin]
            _im2col(x, col, begin, end - begin, g)
            matmul(col_chunk.transpose(0, 2, 1), dyg[:, begin:end], dw_grouped, accumulate=begin > 0)
    # [groups, (kh, kw, Cg), Mo] -> [kh, kw, Cg, groups * Mo]
    dw = dw_grouped.reshape(g.groups, g.kh, g.kw, g.group_in_c, g.multiplier).transpose(1, 2, 3, 0, 4)
    return np.ascontiguousarray(dw).reshape(g.filter_shape)
