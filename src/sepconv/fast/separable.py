"""Fast separable conv2d, NHWC: fused (depthwise and pointwise per band of output rows), or the
fast depthwise op then one GEMM.

Same signature as :func:`sepconv.reference.separable_conv2d`: NHWC arrays with one batch axis,
in the compute dtype, with at least one element.

Three plans, and a single call for the smallest layers (at most :data:`SMALL_MAX_MACS` multiply-adds:
:func:`~sepconv.kernels.separable.separable_nhwc_forward_small`, pixel by pixel, where the plans' calls
cost more than the arithmetic):

- **fused** (:func:`~sepconv.kernels.separable.separable_nhwc_forward_parallel`): bands of output
  rows whose depthwise result fits in :data:`BAND_BYTES`, each computed into a per-thread buffer
  and multiplied at once by the pointwise filter, packed by each thread into its own buffer (our
  own register-tiled product, :mod:`sepconv.kernels.pointwise`).  The intermediate tensor never
  exists whole and no BLAS call is made.  Taken when the pointwise filter (``C*M * out_c`` values; packed, up to one panel
  more) fits in :data:`FUSED_MAX_POINTWISE_BYTES` (it is read again for every band, so it must
  stay in the core's L2), the output has at least :data:`FUSED_MIN_PIXELS` pixels (below,
  BLAS's product of a few hundred rows and the depthwise op's thread split win), on Zen 4's plans
  (:data:`FUSED_ONLY_STREAMED`) an output it stores past the caches unless the layer is 3x3 at stride 1 over fewer
  channels than a vector, and the depthwise filter is not one the packed 5x5/7x7 kernels take
  (the bands use the row kernels; measured, 1x28x28x64 7x7 -> 64: fused 325-591 us, unfused 138-149).
- **packed** (:func:`~sepconv.kernels.separable.separable_nhwc_forward_packed_parallel`): layers whose depthwise op
  runs the packed or the small-image kernels (5x5, 7x7, ...), in one parallel call, each thread's output rows by the
  packed kernels and then their product (:data:`FUSED_PACKED`).
- **unfused**: :func:`sepconv.fast.depthwise.depthwise_conv2d` writes the depthwise result, and
  one ``[pixels, C*M] @ [C*M, out_c]`` product reads it back
  (:func:`~sepconv.fast.conv2d.pointwise_product`: the register-tiled kernel, or BLAS on our
  threads for large pointwise filters, Xception's 728 -> 728, where OpenBLAS's cache blocking of
  ``K`` wins).

Measured on this machine (2 cores, alternating processes, median µs), unfused -> fused:
1x56x56x144 -> 144 ~1060 -> ~1000; 8x28x28x192 -> 64 ~2000 -> ~1400; 1x147x147x64 -> 128
~4600 -> ~2700; 1x19x19x728 -> 728 ~3000 -> ~4100 (hence the limit on the pointwise filter).
In one process, blocks alternating: 1x28x28x96 -> 160 (784 pixels) 237 -> 221; 4x14x14x384 -> 64
465 -> 415; 1x112x112x32 -> 16 442 -> 292; but 1x14x14x192 -> 192 (196 pixels) 127 -> 182 and
1x28x28x96 5x5 stride 2 -> 160 (196 pixels) 117 -> 158 (hence the least pixel count).
"""

from __future__ import annotations

import functools

import numpy as np

from .. import reference
from ..geometry import Conv2DGeometry
from ..kernels import pointwise
from ..kernels import separable as kernels
from ..kernels._jit import PARALLEL_LAUNCH
from ..kernels._simd import VECTOR_BYTES
from ..kernels.depthwise import all_finite
from . import depthwise, recycled
from .aligned import empty_aligned
from .conv2d import pointwise_product, tiled_product
from .gemm import matmul
from .tuned import tuned
from .workspace import workspace

# The plan: None chooses (see above); True or False forces it (tests, and CPUs without AVX-512:
# sepconv.fast.registers).
FUSE: bool | None = None
# The fused plan is taken when the pointwise filter (K * out_c values) is at most this large.
FUSED_MAX_POINTWISE_BYTES = 512 * 1024
# ... and the output has at least this many pixels.
FUSED_MIN_PIXELS = 512
# Layers of at most this many multiply-adds (depthwise and pointwise) are computed in one call, pixel by pixel
# (sepconv.kernels.separable.separable_nhwc_forward_small); SMALL = True or False forces it (tests).  Public
# calls, one process, alternating, us, planned -> one call: 1x10x10x3 3x3 stride 2 -> 16 (1.9K) 11.0 -> 4.6,
# 1x12x12x4 stride 2 -> 128 (20K) 11.2 -> 6.6; but 1x14x14x8 -> 16 (39K) 13.4 -> 30.1, 2x14x14x16 stride 2 -> 64
# (114K) 15.1 -> 32.5 (its loops were scalar then: ~1.3 G multiply-adds/s; without a multiplier they now run
# along the channels, which LLVM vectorizes: 1x7x7x40 5x5 stride 2 VALID -> 64, 14K, 9.5 -> 4.6 us).
SMALL_MAX_MACS = 25_000
# ... and those of at most SMALL_WIDE_MAX_MACS (Zen 4's plans: 60K, sepconv.fast.registers) over a vector of channels
# or more without a multiplier, whose loops along the channels (depthwise) and the output channels (pointwise) LLVM
# vectorizes.  Forty-eighth session, Zen 4
# VM, one process, 7 alternating rounds, planned -> one call: 1x10x10x24 3x3 stride 2 -> 48 (34K) 11.6 -> 7.1 us,
# 1x14x14x16 stride 2 -> 32 (32K) 11.3 -> 8.9, 1x8x8x16 -> 32 (42K) 12.1 -> 9.9; from 60K it lost (2x8x8x32 stride
# 2 -> 64, 75K, 1.21; 1x9x9x48 5x5 stride 2 -> 96, 145K, 1.30), and so did fewer channels or a multiplier at 39-59K
# (1x14x14x8 -> 16 1.45, 1x45x45x4 stride 2 -> 16 1.75, 2x27x27x3 stride 2 m2 -> 16 1.95, 1x16x16x8 5x5 stride 2 m2 -> 32 2.14).
SMALL_WIDE_MAX_MACS = SMALL_MAX_MACS
SMALL: bool | None = None
# Layers without a multiplier of at most FEW_PIXELS_MAX_PIXELS output pixels and FEW_PIXELS_MAX_MACS multiply-adds
# (depthwise and pointwise; 0: none, CPUs without AVX-512: sepconv.fast.registers), pointwise filters of at most
# FEW_PIXELS_MAX_FILTER_BYTES, are computed in one call on this thread, the depthwise sums in vectors of channels,
# the product in the few-pixel kernel's tiles (sepconv.kernels.separable.separable_nhwc_forward_few_pixels): one
# call instead of the planned path's dozen (~5 us of choices, allocations and launches).  Fifty-first session, Zen 5
# VM, one process, 9 interleaved rounds, planned -> one call, us: 1x9x9x120 7x7 VALID -> 160 12.9 -> 10.5, 1x9x9x144
# 7x7 stride 2 -> 16 18.5 -> 13.2, 1x12x12x88 5x5 stride 2 -> 32 12.1 -> 10.6, 2x7x7x8 5x5 VALID -> 160 8.9 -> 6.2;
# up to 400 pixels it lost on few channels (1x35x35x8 stride 2 -> 16 1.28x), and up to 1M multiply-adds on larger
# layers (1x41x41x12 7x7 stride 2 -> 128 2.8x, 1x17x17x64 7x7 stride 2 -> 64 1.14x).
FEW_PIXELS_MAX_PIXELS = 64
FEW_PIXELS_MAX_MACS = 400_000
FEW_PIXELS_MAX_FILTER_BYTES = 1536 * 1024
# The depthwise result of one band is at most this large (unless one output row is larger).
BAND_BYTES = 128 * 1024
# At stride 1 a band holds an even number of rows (rounded down; 3 up to 4): the row kernels go in pairs, and the
# odd band's last row ran alone, three input rows read for one output row.  One process, alternating, us, rows
# from BAND_BYTES -> even: 1x147x147x64 -> 128 3 -> 4 rows 1321 -> 1297 and 1301 -> 1269 (2 rows: 1276),
# 1x75x75x128 -> 256 3 -> 4 1237 -> 1161, 1x65x65x96 -> 96 5 -> 4 304 -> 286, 1x112x112x32 -> 64 9 -> 8 217 -> 209,
# 2x56x56x64 -> 128 9 -> 8 362 -> 361.  False keeps the count BAND_BYTES gives (tests).
EVEN_BANDS = True


def band_rows(g: Conv2DGeometry, itemsize: int, threads: int) -> int:
    """Output rows per band: the band's depthwise result fits in :data:`BAND_BYTES` (at stride 1 an even number of
    rows, see :data:`EVEN_BANDS`), and there are at least two bands per thread where the image has the rows.

    Examples
    --------
    >>> from sepconv.geometry import depthwise_geometry
    >>> g = depthwise_geometry("separable_conv2d", (1, 56, 56, 144), (3, 3, 144, 1), 1, "SAME")
    >>> band_rows(g, 4, 2), 56 * 144 * 4 * band_rows(g, 4, 2) <= BAND_BYTES
    (4, True)
    """
    rows = max(1, min(g.out_h, BAND_BYTES // (g.out_w * g.out_c * itemsize)))
    if EVEN_BANDS and rows > 1 and g.stride_h == 1:  # row pairs (see EVEN_BANDS)
        rows = min(4, g.out_h) if rows == 3 else rows - rows % 2
    while rows > 1 and g.batch * -(-g.out_h // rows) < 2 * threads:
        rows //= 2
    return rows


def _macs(x: np.ndarray, g: Conv2DGeometry, out_c: int) -> int:
    """The layer's multiply-adds, depthwise and pointwise."""
    return x.shape[0] * g.out_h * g.out_w * g.out_c * (g.kh * g.kw + out_c)


def _small(x: np.ndarray, g: Conv2DGeometry, out_c: int) -> bool:
    """Whether the layer's multiply-adds (depthwise and pointwise) are at most :data:`SMALL_MAX_MACS`
    (:data:`SMALL_WIDE_MAX_MACS` over a vector of channels or more, without a multiplier)."""
    if not tuned(x.itemsize):
        return False
    if SMALL is not None:
        return SMALL
    macs = _macs(x, g, out_c)
    wide = g.multiplier == 1 and g.in_c * x.itemsize >= VECTOR_BYTES
    return macs <= (SMALL_WIDE_MAX_MACS if wide else SMALL_MAX_MACS)


def _few_pixels(x: np.ndarray, wp: np.ndarray, g: Conv2DGeometry) -> bool:
    """Whether the layer takes the one-call few-pixel kernel (see :data:`FEW_PIXELS_MAX_PIXELS`)."""
    return (tuned(x.itemsize) and g.multiplier == 1 and x.shape[0] * g.out_h * g.out_w <= FEW_PIXELS_MAX_PIXELS
            and _macs(x, g, wp.shape[3]) <= FEW_PIXELS_MAX_MACS
            and wp.nbytes <= FEW_PIXELS_MAX_FILTER_BYTES)


def _fused(x: np.ndarray, wp: np.ndarray, g: Conv2DGeometry) -> bool:
    if not tuned(x.itemsize):
        return False
    if FUSE is not None:
        return FUSE
    out_c = wp.shape[3]
    return (wp.shape[2] * out_c * wp.itemsize <= FUSED_MAX_POINTWISE_BYTES
            and g.out_pixels >= FUSED_MIN_PIXELS
            and (not FUSED_ONLY_STREAMED or _streamed(g.out_pixels * out_c * x.itemsize, out_c, x.itemsize)
                 # 3x3 at stride 1 over fewer channels than a vector (the flat-row kernel's other layers are not
                 # fused at all, below)
                 or depthwise._flat_rows_fit(g.out_c, x.itemsize, g.stride_h, g.stride_w, g.pad_top, g.pad_left))
            and not depthwise._packed(x.shape, x.itemsize, g.kh, g.kw, g.stride_w, g.dil_h, g.dil_w)
            and not depthwise._few_channels(g.out_c, x.itemsize, g.kh, g.kw, g.stride_h, g.stride_w, g.pad_top,
                                            g.pad_left))


# The fused kernel's output, from this many bytes (a quarter of the last-level cache: 8 MB on the Zen 4 VM), is
# stored past the caches in whole panels of 64 channels (``vstore_stream``; where every pixel starts on a line): no
# line is read for ownership before it is written.  Forty-sixth session, Zen 4 VM, one process, 7 alternating
# rounds, us, cached -> streamed stores: 1x147x147x64 -> 128 3232 -> 2526, 2x147x147x64 -> 128 5902 -> 4606,
# 8x56x56x24 -> 144 1468 -> 1097, 1x147x147x128 -> 128 5160 -> 4462, 1x75x75x128 -> 256 2634 -> 2227, 1x112x112x64
# -> 128 1340 -> 1231; smaller outputs gained little (1x74x74x128 -> 256, 5.6 MB, 0.94; 1x56x56x144 -> 288 0.97;
# 4x28x28x192 -> 192 0.99), and whatever reads them next would find them in memory, not in the cache.
FUSED_STREAM_MIN_BYTES = depthwise._last_level_cache_bytes() // 4


def _streamed(nbytes: int, out_c: int, itemsize: int) -> bool:
    """Whether the fused kernel stores an output of ``nbytes`` bytes and ``out_c`` channels past the caches: from
    :data:`FUSED_STREAM_MIN_BYTES`, where every pixel starts on a line (the output itself starts on one:
    :func:`~sepconv.fast.aligned.empty_aligned`)."""
    return nbytes >= FUSED_STREAM_MIN_BYTES and out_c * itemsize % VECTOR_BYTES == 0


# The fused plan only for outputs it streams (:func:`_streamed`), and for 3x3 layers at stride 1 over fewer channels
# than a vector, uncropped (both passes then memory-bound: 1x72x72x3 -> 32 33 us fused, 42-44 depthwise then
# product).  Zen 4's plans take it: there the depthwise op then the product measured faster on the other layers
# (forty-seventh session, one process, 5 alternating rounds, fused -> unfused: 1x56x56x128 stride 2 -> 256 0.79,
# 1x28x28x256 -> 256 0.87, 1x112x112x32 -> 64 0.90, 1x49x49x64 dilation 2 -> 160 0.82, 2x43x43x8 stride 2 -> 160
# 0.81, 1x52x52x3 7x7 stride 2 -> 256 0.71, 1x56x56x144 -> 144 0.96; 8x28x28x192 -> 64 1.02; the fused plan's
# streamed stores won: 8x56x56x64 -> 128 1.23, 1x147x147x64 -> 128 1.01).  Elsewhere False: the fused plan won on
# the earlier AVX-512 VMs.
FUSED_ONLY_STREAMED = False


def _separable_fused(x: np.ndarray, wd: np.ndarray, wp: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    w3 = depthwise._filter_per_channel(wd)
    x = depthwise._repeated(np.ascontiguousarray(x), g.multiplier)
    k_size, out_c = wp.shape[2], wp.shape[3]
    b = np.ascontiguousarray(wp.reshape(k_size, out_c))
    out = empty_aligned((x.shape[0], g.out_h, g.out_w, out_c), x.dtype)  # whole-line stores
    macs = out.size * k_size + x.shape[0] * g.out_h * g.out_w * k_size * g.kh * g.kw
    threads = depthwise._n_chunks(x.shape[0] * g.out_h, macs)
    bps = workspace("separable_pointwise", (threads, pointwise.packed_size(k_size, out_c, x.itemsize)), x.dtype)
    rows = band_rows(g, x.itemsize, threads)
    # one buffer per thread, each at the input's offset from a cache line (whole-vector stores)
    lane_count = VECTOR_BYTES // x.itemsize
    per_thread = -(-(rows * g.out_w + pointwise.TILE_PIXELS) * k_size // lane_count) * lane_count
    buffers = workspace("separable_bands", (threads, per_thread), x.dtype, like=x)
    zero_row = depthwise._zero_row(x.shape[2:], x.dtype)
    args = (g.stride_h, g.stride_w, g.dil_h, g.dil_w, g.pad_top, g.pad_left)
    stream = _streamed(out.nbytes, out_c, out.itemsize) and out.ctypes.data % VECTOR_BYTES == 0  # panels on lines
    if threads > 1:
        with PARALLEL_LAUNCH:
            kernels.separable_nhwc_forward_parallel(x, w3, b, bps, out, zero_row, buffers, rows, *args, stream)
    else:
        pointwise.pack_pointwise(b, bps[0])
        bands = x.shape[0] * -(-g.out_h // rows)
        kernels.separable_nhwc_forward_bands(x, w3, bps[0], out, zero_row, buffers[0], rows, 0, bands, *args, stream)
    return out


# Layers whose depthwise op runs the packed kernels or the small-image ones (sepconv.fast.depthwise.
# forward_kernel_family, FUSED_PACKED_FAMILIES: 5x5, 7x7 and other sizes but 3x3 where no direct kernel takes them),
# which the fused plan's bands cannot use, are computed in one parallel call by the packed kernels
# (sepconv.kernels.separable.separable_nhwc_forward_packed_parallel): each thread its run of output rows, then their
# product from its own cache.  Against the depthwise op then the product (two launches, the product's threads
# reading rows the other thread may have written, two ops' choices), fifty-fourth session, Zen 5 VM, one process, 9
# alternating rounds, 50 separable layers of the case files and EfficientNet-like ones: over the depthwise op's packed
# kernels 1x28x28x96 5x5 stride 2 -> 160 0.92, 4x18x18x200 5x5 stride 2 VALID -> 32 0.90, 2x16x16x32 5x5 dilation 2
# -> 96 0.91, 1x65x65x16 5x5 dilation 2 -> 32 0.91, 1x27x27x480 5x5 stride 2 -> 160 0.94, 1x56x56x96 7x7 -> 96 0.98
# (15 layers, all 0.90-0.98); over its small-image kernels 1x10x10x336 5x5 -> 128 0.87, 1x28x28x64 7x7 -> 64 0.88,
# 8x14x14x480 5x5 -> 160 0.92, 1x10x10x512 5x5 -> 128 0.93, 4x14x14x240 5x5 -> 80 0.95, 1x14x14x672 5x5 -> 112
# 0.98, but 1x14x14x384 7x7 -> 96 1.05 (12 layers); the layers of the other kernels did not gain (direct 5x5,
# dilation 2, 1x70x70x144 VALID -> 96 1.11; the runs' noise: 0.99-1.06 on layers whose path did not change).  Not
# at FUSED_PACKED_MIN_PIXELS output pixels or fewer, whose product the few-pixel kernel computes better (1x7x7x960
# 5x5 -> 160 1.09), nor pointwise filters the tiled product does not take (sepconv.fast.conv2d.tiled_product).
# FUSED_PACKED = False keeps the two ops (tests).
FUSED_PACKED = True
FUSED_PACKED_FAMILIES = ("packed", "small_image")
FUSED_PACKED_MIN_PIXELS = 64


def _fused_packed(x: np.ndarray, wp: np.ndarray, g: Conv2DGeometry) -> int:
    """The threads of the packed plan for this layer, or 0 where it does not take it (see :data:`FUSED_PACKED`)."""
    if not (FUSED_PACKED and FUSE is None and tuned(x.itemsize) and g.multiplier == 1
            and tiled_product(x.shape[0] * g.out_h * g.out_w, wp.nbytes)):
        return 0
    return _packed_threads(x.shape, x.dtype, g, wp.shape[3], FUSED_PACKED_MIN_PIXELS, FUSED_PACKED_FAMILIES,
                           depthwise._split_settings())


@functools.lru_cache(maxsize=256)
def _packed_threads(x_shape: tuple[int, ...], dtype: np.dtype, g: Conv2DGeometry, out_c: int, min_pixels: int,
                    families: tuple[str, ...], split_settings: tuple) -> int:
    """:func:`_fused_packed` past its cheap checks, once per geometry (~1.5 us a call otherwise): whether the
    depthwise op runs kernels of ``families`` and the packed kernels take the layer, and the thread split for the
    layer's multiply-adds."""
    pixels = x_shape[0] * g.out_h * g.out_w
    if (pixels <= min_pixels or depthwise.forward_kernel_family(x_shape, dtype, g) not in families
            or not depthwise._packed(x_shape, dtype.itemsize, g.kh, g.kw, g.stride_w, g.dil_h, g.dil_w)):
        return 0
    return depthwise._n_chunks(x_shape[0] * g.out_h, pixels * g.out_c * (g.kh * g.kw + out_c))


def _separable_fused_packed(x: np.ndarray, wd: np.ndarray, wp: np.ndarray, g: Conv2DGeometry,
                            threads: int) -> np.ndarray:
    x = np.ascontiguousarray(x)
    w3 = depthwise._filter_per_channel(wd)
    k_size, out_c = wp.shape[2], wp.shape[3]
    b = np.ascontiguousarray(wp.reshape(k_size, out_c))
    y = workspace("separable_depthwise", (x.shape[0], g.out_h, g.out_w, k_size), x.dtype)
    out = recycled.empty((x.shape[0], g.out_h, g.out_w, out_c), x.dtype)
    bps = workspace("separable_pointwise", (threads, pointwise.packed_size(k_size, out_c, x.itemsize)), x.dtype)
    args = (g.stride_h, g.stride_w, g.dil_h, g.dil_w, g.pad_top, g.pad_left)
    if threads > 1:
        with PARALLEL_LAUNCH:
            kernels.separable_nhwc_forward_packed_parallel(x, w3, y, b, bps, out, *args)
    else:
        pointwise.pack_pointwise(b, bps[0])
        kernels.separable_nhwc_forward_packed_rows(x, w3, y, bps[0], out, 0, x.shape[0] * g.out_h, *args)
    return out


def separable_conv2d(x: np.ndarray, wd: np.ndarray, wp: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """Depthwise ``wd [kh, kw, C, M]`` then pointwise ``wp [1, 1, C*M, out_c]``: ``[N, out_h, out_w, out_c]``.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.geometry import depthwise_geometry
    >>> x, wd, wp = np.ones((1, 5, 5, 2)), np.ones((3, 3, 2, 1)), np.ones((1, 1, 2, 3))
    >>> g = depthwise_geometry("separable_conv2d", x.shape, wd.shape, 1, "SAME")
    >>> separable_conv2d(x, wd, wp, g)[0, :2, :2, 0]
    array([[ 8., 12.],
           [12., 18.]])
    """
    if not all_finite(wd):  # 0.5 against 1.3 us (np.isfinite) on a 7x7x64 filter
        return reference.separable_conv2d(x, wd, wp, g)
    k_size, out_c = wp.shape[2], wp.shape[3]
    if _small(x, g, out_c):
        out = np.empty((x.shape[0], g.out_h, g.out_w, out_c), x.dtype)
        kernels.separable_nhwc_forward_small(np.ascontiguousarray(x), np.ascontiguousarray(wd),
                                             np.ascontiguousarray(wp.reshape(k_size, out_c)), out, g.stride_h,
                                             g.stride_w, g.dil_h, g.dil_w, g.pad_top, g.pad_left)
        return out
    if _few_pixels(x, wp, g):
        out = np.empty((x.shape[0], g.out_h, g.out_w, out_c), x.dtype)
        kernels.separable_nhwc_forward_few_pixels(
            np.ascontiguousarray(x), depthwise._filter_per_channel(wd), np.ascontiguousarray(wp.reshape(k_size, out_c)),
            out, workspace("separable_few_pixels", (x.shape[0] * g.out_h * g.out_w, k_size), x.dtype), g.stride_h,
            g.stride_w, g.dil_h, g.dil_w, g.pad_top, g.pad_left)
        return out
    if _fused(x, wp, g):
        return _separable_fused(x, wd, wp, g)
    packed_threads = _fused_packed(x, wp, g)
    if packed_threads:
        return _separable_fused_packed(x, wd, wp, g, packed_threads)
    y = depthwise.depthwise_conv2d(x, wd, g, scratch="separable_depthwise", finite=True)
    out = recycled.empty((*y.shape[:3], out_c), y.dtype)
    # The product on the register-tiled kernel where the filter fits in cache (else BLAS on our threads:
    # pointwise_product decides).  2 threads, us, BLAS on its own threads (then waiting for our spinning
    # workers' cores) vs ours: 1x75x75x3 7x7 -> 64 241 vs 80; 1x56x56x32 5x5 -> 64 274 vs 97; 8x14x14x96
    # 5x5 -> 96 360 vs 171; BLAS on our threads vs ours: 86 vs 80, 128 vs 98, 199 vs 170, and after a
    # depthwise pass on one thread 1x14x14x192 -> 192 158 vs 123, 1x33x33x40 3x3 stride 2 -> 128 53 vs 47,
    # 1x10x10x336 -> 128 97 vs 84 (1x28x28x96 5x5 stride 2 -> 160, 1x7x7x480 5x5 -> 160 at par).
    pointwise_product(y.reshape(-1, k_size), wp.reshape(k_size, out_c), out.reshape(-1, out_c))
    return out


def separable_conv2d_nchw(x: np.ndarray, wd: np.ndarray, wp: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """NCHW, natively: the NCHW depthwise op, then per image ``[out_c, C*M] @ [C*M, out_h*out_w]``.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.geometry import depthwise_geometry
    >>> x, wd, wp = np.ones((1, 2, 5, 5)), np.ones((3, 3, 2, 1)), np.ones((1, 1, 2, 3))
    >>> g = depthwise_geometry("separable_conv2d", x.shape, wd.shape, 1, "SAME", "NCHW")
    >>> separable_conv2d_nchw(x, wd, wp, g)[0, 0, :2, :2]
    array([[ 8., 12.],
           [12., 18.]])
    """
    y = depthwise.depthwise_conv2d_nchw(x, wd, g)
    n, channels, out_h, out_w = y.shape
    pointwise_t = wp.reshape(channels, wp.shape[3]).T
    out = recycled.empty((n, pointwise_t.shape[0], out_h, out_w), y.dtype)
    matmul(pointwise_t, y.reshape(n, channels, out_h * out_w), out.reshape(n, pointwise_t.shape[0], -1))
    return out
