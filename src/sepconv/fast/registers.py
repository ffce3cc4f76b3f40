"""The plans that depend on the CPU's vector registers, chosen in one place.

The register-tiled kernels (:mod:`sepconv.kernels.pointwise` and the tiles of
:mod:`sepconv.kernels.conv2d_direct`, and the fused separable and Winograd plans built on them) keep
24 vectors of sums in registers, and the depthwise kernels' sliding windows a dozen more: one
AVX-512 register each, but two of the sixteen registers of an AVX2 core (our vectors are 64 bytes,
:mod:`sepconv.kernels._simd`), and there they spill.  So where the CPU has no AVX-512
(:data:`sepconv.kernels._simd.WIDE_REGISTERS`) the fast ops take NumPy's BLAS for those products
(on our threads, :mod:`sepconv.fast.gemm`), but conv2d's direct forward in tiles of six pixels by one
vector (``DIRECT_NARROW_PANELS``), its few-channel kernel (a stem) four pixels by one vector at a time
instead of eight by two, and the depthwise ops of 3x3 filters the direct 3x3 kernels
(:mod:`sepconv.kernels.depthwise_3x3_direct`: four pixels' sums, a filter row's weights and one column
in sixteen registers; forward at horizontal stride 1 or 2, input gradient at stride 1 or 2, filter
gradient, the channel-multiplier bands), those of 5x5 filters at stride 1 on wide rows the AVX2 5x5 kernel
(:mod:`sepconv.kernels.depthwise_5x5_avx2`: eight pixels by half a vector; also the stride-2 input gradient of 7x7
ones, and 3x3 layers of fewer channels than a vector), and their other stride-1 forwards the
small-image kernel (five vectors in registers) on images of any size, of a vector of channels or more; the filter
gradient of filters 5 or 7 wide the rolling-window kernel (:mod:`sepconv.kernels.depthwise_filter_gradient_avx2`:
two filter rows' sums and five dy columns in half vectors).  Where AVX-512 runs on 256-bit units (AMD's Zen 4:
:data:`HALF_WIDTH_UNITS`), a whole vector's multiply-add costs two half ones, and the AVX-512 plans take some of the
AVX2 plans' kernels too (``_WIDE_HALF_UNITS``), run on whole vectors, which AVX-512's 32 registers hold: the
small-image kernel's long steps, the rolling-window filter gradient and the AVX2 5x5 kernel (where they won); and
the direct 3x3 kernels for large dilated layers, NCHW 5x5 layers of short rows through NHWC, and routes of their own
for conv2d's direct kernel and large pointwise products.  On AMD's Zen 5 (LLVM's ``znver5``: :data:`ZEN5`, whole
512-bit units) Zen 4's plans won too, but for two rules (``_ZEN5``): 5x5 layers over a vector of channels stay off the
AVX2 5x5 kernel, and conv2d's Winograd through BLAS waits for 1200 output pixels (its fused plan starts at 384); and
two of its own: small stride-1 3x3 layers (up to 36 KB of input) on the direct 3x3 kernel, and 7x7 stride-2 layers of
short rows off the AVX2 kernel.
``SEPCONV_WIDE_REGISTERS``, ``SEPCONV_HALF_WIDTH_UNITS`` and ``SEPCONV_ZEN5_PLANS`` (``1`` or ``0``) override what the
CPU says.

Thirty-second session, an AMD EPYC (Zen 3, AVX2) VM, 2 threads, one process, alternating, us, the
AVX-512 plans -> these: conv2d 8x28x28x128 -> 128 3x3 15233 -> 7813, 8x28x28x64 -> 64 5x5 25737 ->
10996, 4x56x56x64 -> 128 stride 2 9567 -> 3409, 1x7x7x512 -> 512 5191 -> 1849, 1x56x56x64 -> 64 2097
-> 1584; separable 1x56x56x144 -> 144 2977 -> 1127, 8x28x28x192 -> 64 4093 -> 1631, 1x19x19x728 ->
728 7702 -> 2483, 1x147x147x64 -> 128 9712 -> 4271 (NumPy's OpenBLAS ran at 142-186 GFLOP/s there, our
tiles at a quarter of that); depthwise forward / input gradient, 1x56x56x144 3x3 0.69/0.80 of the
time, 8x56x56x144 0.65/0.63, 1x147x147x64 0.68/0.65, 1x112x112x96 0.68/0.73, 1x19x19x728 0.78/0.78,
1x14x14x576 0.49/0.50, 1x7x7x960 0.58/0.59, 1x56x56x96 7x7 0.41/0.43, 1x112x112x32 7x7 0.47,
1x75x75x480 5x5 0.62, 1x38x38x960 5x5 0.81; with a channel block's last lanes not masked
(:func:`sepconv.kernels._window.block_start`) and the rows in bands, fewer channels too:
1x112x112x32 3x3 0.79/0.84, 8x112x112x32 0.56/0.54, 1x112x112x16 0.69/0.70, 1x56x56x24 0.83/0.83,
8x56x56x24 0.67/0.68, 1x56x56x40 0.85/0.94, 1x27x37x23 0.90/0.92, 1x43x43x88 1.01/1.03.  Thirty-third
session, the same VM: the direct 3x3 kernels take 0.3-0.9 of the time of the kernels before them
(figures beside ``DIRECT_3X3`` in :mod:`sepconv.fast.depthwise`), the stem's four-pixel steps 0.34-0.63
(beside ``FEW_CHANNELS_OCTETS`` in :mod:`sepconv.fast.conv2d`).  Thirty-fourth session, the same kind of VM: conv2d's
one-vector panels take 0.42-0.86 of the time of im2col and BLAS (beside ``DIRECT_NARROW_PANELS``), the AVX2 5x5
kernels 0.39-0.96 of the small-image and stride-2 kernels' (beside ``DIRECT_5X5_AVX2``).

Examples
--------
>>> from sepconv.fast import registers
>>> registers.use_wide_register_plans(False)
>>> import sys; sys.modules["sepconv.fast.separable"].FUSE
False
>>> registers.use_this_cpus_plans()  # this CPU's plans again
"""

from __future__ import annotations

import importlib
import math
import os
import sys

from ..kernels._simd import WIDE_REGISTERS
from . import depthwise, separable


def _cpu_named(llvm_name: str, variable: str) -> bool:
    """Whether LLVM names this CPU ``llvm_name``, unless the environment variable ``variable`` says ``1`` or ``0``."""
    chosen = os.environ.get(variable, "").strip()
    if chosen in ("0", "1"):
        return chosen == "1"
    import llvmlite.binding as llvm  # imported with Numba already

    return llvm.get_host_cpu_name() == llvm_name


def _half_width_units() -> bool:
    """Whether this CPU runs AVX-512 on 256-bit units, each operation on a 64-byte vector as two halves: AMD's Zen 4,
    which LLVM names ``znver4`` (``SEPCONV_HALF_WIDTH_UNITS=1`` or ``0`` says so instead).  There a half vector's
    multiply-add takes half the issue slots of a whole one's, as on AVX2, so the half-vector kernels pay."""
    return _cpu_named("znver4", "SEPCONV_HALF_WIDTH_UNITS")


def _zen5() -> bool:
    """Whether this CPU is AMD's Zen 5, which LLVM names ``znver5`` (``SEPCONV_ZEN5_PLANS=1`` or ``0`` says so
    instead): AVX-512 on whole 512-bit units, where Zen 4's plans won nonetheless, but for four rules (``_ZEN5``)."""
    return _cpu_named("znver5", "SEPCONV_ZEN5_PLANS")


HALF_WIDTH_UNITS = WIDE_REGISTERS and _half_width_units()
ZEN5 = WIDE_REGISTERS and not HALF_WIDTH_UNITS and _zen5()

conv2d = importlib.import_module(".conv2d", __package__)  # the package's name conv2d is the op
# The limits of NCHW_TRANSPOSED_FILTERS's rule as sepconv.fast.depthwise writes them: the AVX2 plans take them so, only
# Zen 4's (and Zen 5's, which keep Zen 4's NCHW rules) narrow them (below).
_NCHW_TRANSPOSED_LIMITS = {(depthwise, name): getattr(depthwise, name) for name in (
    "NCHW_TRANSPOSED_MAX_WIDTH", "NCHW_TRANSPOSED_MIN_CHANNELS", "NCHW_TRANSPOSED_MIN_BATCH", "NCHW_TRANSPOSED_MIN_BYTES",
    "NCHW_TRANSPOSED_MAX_BYTES", "NCHW_TRANSPOSED_7X7_MIN_CHANNELS", "NCHW_TRANSPOSED_3X3_MIN_BATCH")}
# The AVX-512 plans: the modules' own settings as written.
_WIDE = {
    (conv2d, "POINTWISE_KERNEL"): conv2d.POINTWISE_KERNEL,
    (conv2d, "DIRECT_MAX_FILTER_BYTES"): conv2d.DIRECT_MAX_FILTER_BYTES,
    (conv2d, "DIRECT_NARROW_PANELS"): conv2d.DIRECT_NARROW_PANELS,
    (conv2d, "DIRECT_PANEL_SPLIT_EVEN_TILES"): conv2d.DIRECT_PANEL_SPLIT_EVEN_TILES,
    (conv2d, "INPUT_GRADIENT_AS_FORWARD"): conv2d.INPUT_GRADIENT_AS_FORWARD,
    (conv2d, "DIRECT_STREAMED_MIN_FILTER_BYTES"): conv2d.DIRECT_STREAMED_MIN_FILTER_BYTES,
    (conv2d, "FUSE_WINOGRAD"): conv2d.FUSE_WINOGRAD,
    (conv2d, "WINOGRAD_MIN_PIXELS"): conv2d.WINOGRAD_MIN_PIXELS,
    (conv2d, "WINOGRAD_NARROW_MIN_PIXELS"): conv2d.WINOGRAD_NARROW_MIN_PIXELS,
    (conv2d, "WINOGRAD_BLAS_MIN_PIXELS"): conv2d.WINOGRAD_BLAS_MIN_PIXELS,
    (conv2d, "WINOGRAD_BLAS_MAX_FILTER_BYTES"): conv2d.WINOGRAD_BLAS_MAX_FILTER_BYTES,
    (conv2d, "WINOGRAD_FUSED_MIN_PIXELS"): conv2d.WINOGRAD_FUSED_MIN_PIXELS,
    (conv2d, "DIRECT_MIN_THREAD_MACS"): conv2d.DIRECT_MIN_THREAD_MACS,
    (conv2d, "FEW_CHANNELS_OCTETS"): conv2d.FEW_CHANNELS_OCTETS,
    (conv2d, "POINTWISE_FEW_PIXELS_MAX"): conv2d.POINTWISE_FEW_PIXELS_MAX,
    (conv2d, "POINTWISE_FEW_PIXELS_WHOLE_VECTORS"): conv2d.POINTWISE_FEW_PIXELS_WHOLE_VECTORS,
    (conv2d, "POINTWISE_KERNEL_LARGE_FILTER_MAX_BYTES"): conv2d.POINTWISE_KERNEL_LARGE_FILTER_MAX_BYTES,
    (conv2d, "DIRECT_CHUNK_BYTES"): conv2d.DIRECT_CHUNK_BYTES,
    (separable, "FUSE"): separable.FUSE,
    (separable, "FUSED_ONLY_STREAMED"): separable.FUSED_ONLY_STREAMED,
    (separable, "SMALL_WIDE_MAX_MACS"): separable.SMALL_WIDE_MAX_MACS,
    (separable, "FEW_PIXELS_MAX_PIXELS"): separable.FEW_PIXELS_MAX_PIXELS,
    (depthwise, "DIRECT_3X3"): depthwise.DIRECT_3X3,
    (depthwise, "DIRECT_3X3_DILATED_MIN_IMAGE_BYTES"): depthwise.DIRECT_3X3_DILATED_MIN_IMAGE_BYTES,
    (depthwise, "DIRECT_3X3_ALIGNED_MIN_PIXEL_BYTES"): depthwise.DIRECT_3X3_ALIGNED_MIN_PIXEL_BYTES,
    (depthwise, "FOLDED_DILATION"): depthwise.FOLDED_DILATION,
    (depthwise, "DIRECT_3X3_FILTER_GRADIENT_STRIDE_2"): depthwise.DIRECT_3X3_FILTER_GRADIENT_STRIDE_2,
    (depthwise, "DIRECT_3X3_S2_MAX_IMAGE_BYTES"): depthwise.DIRECT_3X3_S2_MAX_IMAGE_BYTES,
    (depthwise, "DIRECT_3X3_S1_MAX_BYTES"): depthwise.DIRECT_3X3_S1_MAX_BYTES,
    (depthwise, "DIRECT_AVX2_7X7_S2_MIN_WIDTH"): depthwise.DIRECT_AVX2_7X7_S2_MIN_WIDTH,
    (depthwise, "WINOGRAD_3X3"): depthwise.WINOGRAD_3X3,
    (depthwise, "WINOGRAD_3X3_FILTER_GRADIENT"): depthwise.WINOGRAD_3X3_FILTER_GRADIENT,
    (depthwise, "DIRECT_5X5_AVX2"): depthwise.DIRECT_5X5_AVX2,
    (depthwise, "DIRECT_5X5_AVX2_WHOLE_VECTORS"): depthwise.DIRECT_5X5_AVX2_WHOLE_VECTORS,
    (depthwise, "DIRECT_5X5_AVX2_WHOLE_S1_ONLY"): depthwise.DIRECT_5X5_AVX2_WHOLE_S1_ONLY,
    (depthwise, "DIRECT_5X5_AVX2_WHOLE_MIN_WIDTH"): depthwise.DIRECT_5X5_AVX2_WHOLE_MIN_WIDTH,
    (depthwise, "DIRECT_5X5_AVX2_3X3_S1_HALF_VECTOR_ONLY"): depthwise.DIRECT_5X5_AVX2_3X3_S1_HALF_VECTOR_ONLY,
    (depthwise, "FILTER_GRADIENT_AVX2"): depthwise.FILTER_GRADIENT_AVX2,
    (depthwise, "FILTER_GRADIENT_AVX2_7_MIN_WIDTH"): depthwise.FILTER_GRADIENT_AVX2_7_MIN_WIDTH,
    (depthwise, "FILTER_GRADIENT_AVX2_MULTIPLIER_3_WIDE"): depthwise.FILTER_GRADIENT_AVX2_MULTIPLIER_3_WIDE,
    (depthwise, "FILTER_GRADIENT_WHOLE_VECTORS"): depthwise.FILTER_GRADIENT_WHOLE_VECTORS,
    (depthwise, "FILTER_GRADIENT_3_WIDE_DILATIONS"): depthwise.FILTER_GRADIENT_3_WIDE_DILATIONS,
    (depthwise, "SMALL_IMAGE_ANY_PLANE"): depthwise.SMALL_IMAGE_ANY_PLANE,
    (depthwise, "SMALL_IMAGE_HALF_STEPS"): depthwise.SMALL_IMAGE_HALF_STEPS,
    (depthwise, "SMALL_IMAGE_WHOLE_STEPS"): depthwise.SMALL_IMAGE_WHOLE_STEPS,
    (depthwise, "NCHW_TRANSPOSED_FILTERS"): depthwise.NCHW_TRANSPOSED_FILTERS,
    **_NCHW_TRANSPOSED_LIMITS,
    (depthwise, "SMALL_IMAGE_S2_MAX_PLANE_BYTES"): depthwise.SMALL_IMAGE_S2_MAX_PLANE_BYTES,
    (depthwise, "SMALL_IMAGE_UNDILATED_ONLY"): depthwise.SMALL_IMAGE_UNDILATED_ONLY,
    (depthwise, "PACKED_PARALLEL_MIN_MACS_SHARE"): depthwise.PACKED_PARALLEL_MIN_MACS_SHARE,
}
# ... and without AVX-512: BLAS for the products (no register-tiled pointwise, streamed or fused kernels) but the
# direct conv2d forward in one-vector panels, four-pixel steps for a stem, the direct 3x3 depthwise kernels, the AVX2
# 5x5 one on wide rows, the rolling-window filter gradient of 5- and 7-wide filters, and the small-image depthwise
# kernel on any other stride-1 plane (its 5x5 and 7x7 rows in half-vector steps) and on small stride-2 ones; NCHW
# layers of 5x5 and larger filters on short rows, and of 3x3 ones on short rows from batch 2, through NHWC.
_NARROW = {
    (conv2d, "POINTWISE_KERNEL"): False,
    (conv2d, "DIRECT_MAX_FILTER_BYTES"): 2 * 1024 * 1024,
    (conv2d, "DIRECT_NARROW_PANELS"): True,
    (conv2d, "DIRECT_PANEL_SPLIT_EVEN_TILES"): conv2d.DIRECT_PANEL_SPLIT_EVEN_TILES,
    (conv2d, "INPUT_GRADIENT_AS_FORWARD"): True,
    (conv2d, "DIRECT_STREAMED_MIN_FILTER_BYTES"): sys.maxsize,
    (conv2d, "FUSE_WINOGRAD"): False,
    (conv2d, "WINOGRAD_MIN_PIXELS"): conv2d.WINOGRAD_MIN_PIXELS,
    (conv2d, "WINOGRAD_NARROW_MIN_PIXELS"): conv2d.WINOGRAD_NARROW_MIN_PIXELS,
    (conv2d, "WINOGRAD_BLAS_MIN_PIXELS"): conv2d.WINOGRAD_BLAS_MIN_PIXELS,
    (conv2d, "WINOGRAD_BLAS_MAX_FILTER_BYTES"): conv2d.WINOGRAD_BLAS_MAX_FILTER_BYTES,
    (conv2d, "WINOGRAD_FUSED_MIN_PIXELS"): conv2d.WINOGRAD_FUSED_MIN_PIXELS,
    (conv2d, "DIRECT_MIN_THREAD_MACS"): conv2d.DIRECT_MIN_THREAD_MACS,
    (conv2d, "FEW_CHANNELS_OCTETS"): False,
    (conv2d, "POINTWISE_FEW_PIXELS_MAX"): 256,
    (conv2d, "POINTWISE_FEW_PIXELS_WHOLE_VECTORS"): False,
    (conv2d, "POINTWISE_KERNEL_LARGE_FILTER_MAX_BYTES"): 0,
    (conv2d, "DIRECT_CHUNK_BYTES"): conv2d.DIRECT_CHUNK_BYTES,
    (separable, "FUSE"): False,
    (separable, "FUSED_ONLY_STREAMED"): separable.FUSED_ONLY_STREAMED,  # not fused at all (above)
    (separable, "SMALL_WIDE_MAX_MACS"): separable.SMALL_WIDE_MAX_MACS,
    (separable, "FEW_PIXELS_MAX_PIXELS"): 0,  # its whole-vector tiles would spill sixteen registers
    (depthwise, "DIRECT_3X3"): True,
    (depthwise, "DIRECT_3X3_DILATED_MIN_IMAGE_BYTES"): math.inf,  # all of them, by DIRECT_3X3
    (depthwise, "DIRECT_3X3_ALIGNED_MIN_PIXEL_BYTES"): math.inf,  # unmeasured on AVX2
    (depthwise, "FOLDED_DILATION"): depthwise.FOLDED_DILATION,  # as written (Zen 4's plans set it)
    (depthwise, "DIRECT_3X3_FILTER_GRADIENT_STRIDE_2"): False,  # all of them, by DIRECT_3X3
    (depthwise, "DIRECT_3X3_S2_MAX_IMAGE_BYTES"): 0,  # all of them, by DIRECT_3X3
    (depthwise, "DIRECT_3X3_S1_MAX_BYTES"): 0,  # all of them, by DIRECT_3X3
    (depthwise, "DIRECT_AVX2_7X7_S2_MIN_WIDTH"): depthwise.DIRECT_AVX2_7X7_S2_MIN_WIDTH,
    (depthwise, "WINOGRAD_3X3"): False,  # the direct 3x3 kernels take these layers
    (depthwise, "WINOGRAD_3X3_FILTER_GRADIENT"): False,
    (depthwise, "DIRECT_5X5_AVX2"): True,
    (depthwise, "DIRECT_5X5_AVX2_WHOLE_VECTORS"): False,
    (depthwise, "DIRECT_5X5_AVX2_WHOLE_S1_ONLY"): False,
    (depthwise, "DIRECT_5X5_AVX2_WHOLE_MIN_WIDTH"): depthwise.DIRECT_5X5_AVX2_WHOLE_MIN_WIDTH,
    (depthwise, "DIRECT_5X5_AVX2_3X3_S1_HALF_VECTOR_ONLY"): False,
    (depthwise, "FILTER_GRADIENT_AVX2"): True,
    (depthwise, "FILTER_GRADIENT_AVX2_7_MIN_WIDTH"): 0,
    (depthwise, "FILTER_GRADIENT_AVX2_MULTIPLIER_3_WIDE"): True,
    (depthwise, "FILTER_GRADIENT_WHOLE_VECTORS"): False,
    (depthwise, "FILTER_GRADIENT_3_WIDE_DILATIONS"): (),
    (depthwise, "SMALL_IMAGE_ANY_PLANE"): True,
    (depthwise, "SMALL_IMAGE_HALF_STEPS"): True,
    (depthwise, "SMALL_IMAGE_WHOLE_STEPS"): False,
    (depthwise, "NCHW_TRANSPOSED_FILTERS"): True,
    **_NCHW_TRANSPOSED_LIMITS,
    (depthwise, "SMALL_IMAGE_S2_MAX_PLANE_BYTES"): 96 * 1024,
    (depthwise, "SMALL_IMAGE_UNDILATED_ONLY"): False,
    (depthwise, "PACKED_PARALLEL_MIN_MACS_SHARE"): depthwise.PACKED_PARALLEL_MIN_MACS_SHARE,
}


# ... and with AVX-512 on 256-bit units (Zen 4): the AVX-512 plans, but the half-vector kernels of the plans above
# where they won there (alternating, figures beside the settings in sepconv.fast.depthwise): the small-image kernel's
# 5x5 and 7x7 rows in those steps (0.67-0.88 of the time), but of whole vectors, 32 registers holding them (0.59-0.94
# of the half vectors' time; 5x5 rows of 7 and 14 pixels in sevens), and the rolling-window filter gradient
# (0.40-0.77; in whole vectors, 0.69-0.94 of the half vectors' time; also 3-wide filters over many channels at
# dilation 2, 0.59-0.78), but not of 7-wide filters on rows of fewer than ten pixels nor of 3-wide ones with a
# multiplier; the direct 3x3 kernels for dilated layers of images of 2 MB or more (0.60-0.91; their blocks on the
# input's lines for pixels of 1 KB or more, 0.91-0.96 off a line), and for the filter
# gradient of undilated stride-2 layers of images of up to 1.5 MB (0.59-1.00, geomean 0.80) and their forward on
# images of up to 512 KB (0.70-1.13, geomean 0.87); SAME 3x3 pairs at stride 1 by Winograd's F(2, 3) on layers of
# up to half the L3 (0.85-0.96: additions have units of their own here), and their filter gradient (0.84-0.99);
# the AVX2 5x5 kernel, in
# whole vectors, for few channels, 7x7 filters at stride 2 and wide stride-1 rows (0.59-0.94); and NCHW layers of 5x5
# and larger filters on rows of up to 16 pixels, batches of 4 or more, inputs of 1 to 3.5 MB, through NHWC
# (0.69-0.79).  And of its own (sepconv.fast.conv2d): products with pointwise filters of up to 4.5 MB, from 100
# pixels, on the register-tiled kernel (0.89-0.94 of the streamed kernels' or BLAS's time); the direct conv2d's filter
# panels whole, not in chunks (0.94-0.97), for filters of up to 4 MB (0.85-0.97 of the streamed kernel's time).
# Forty-seventh session: conv2d's 3x3 layers by Winograd from 384 output pixels, not 1200 (0.66-0.98 of the direct
# plan's time; outputs of 24-32 channels from 1200, 0.59-0.90; filters for the BLAS plan from 144, 0.68-0.89), the
# direct conv2d on both threads from 1 M multiply-adds (0.71-0.83 on 1.8-4 M), and the fused separable only where its
# output streams past the caches (87 layers, fused -> the depthwise op then the product: geomean 0.96, 0.54-1.02).
# Forty-eighth session: the AVX2 kernel's 3x3 steps over fewer channels than a vector at stride 1 only over half a
# vector, undilated along the row; other such layers (9-15 channels, or dilated) on the general 3x3 kernel (0.50-0.94);
# the packed kernels on both threads from 150K multiply-adds (stride 2, 0.76-1.01 on 150-400K), and on dilated layers
# of small images before the small-image kernel (geomean 0.81, 0.52-1.14); the multiplier's stride-2 3x3 filter
# gradient on the direct kernel (geomean 0.79), and the separable's one-call kernel up to 60K multiply-adds over a
# vector of channels (0.61-0.82).
# Everything else the AVX-512 plans keep: the narrow plans lost there (forty-first session, depthwise geomean 1.09x,
# separable and conv2d 1.15x), and the direct 3x3 kernels lost on most undilated layers (1.1-1.6x).
_WIDE_HALF_UNITS = {
    **_WIDE,
    (conv2d, "POINTWISE_KERNEL_LARGE_FILTER_MAX_BYTES"): 9 * 512 * 1024,
    (conv2d, "DIRECT_CHUNK_BYTES"): sys.maxsize,  # whole panels
    (conv2d, "DIRECT_MAX_FILTER_BYTES"): 4 * 1024 * 1024,
    (conv2d, "WINOGRAD_MIN_PIXELS"): 384,
    (conv2d, "WINOGRAD_NARROW_MIN_PIXELS"): 1200,
    (conv2d, "WINOGRAD_BLAS_MIN_PIXELS"): 144,
    (conv2d, "WINOGRAD_BLAS_MAX_FILTER_BYTES"): depthwise._last_level_cache_bytes() // 2,
    (conv2d, "DIRECT_MIN_THREAD_MACS"): 500_000,
    (separable, "FUSED_ONLY_STREAMED"): True,
    (separable, "SMALL_WIDE_MAX_MACS"): 60_000,
    (depthwise, "SMALL_IMAGE_HALF_STEPS"): True,
    (depthwise, "SMALL_IMAGE_WHOLE_STEPS"): True,
    (depthwise, "SMALL_IMAGE_UNDILATED_ONLY"): True,
    (depthwise, "PACKED_PARALLEL_MIN_MACS_SHARE"): 0.375,  # from 150K multiply-adds
    (depthwise, "DIRECT_5X5_AVX2"): True,
    (depthwise, "DIRECT_5X5_AVX2_WHOLE_VECTORS"): True,
    (depthwise, "DIRECT_5X5_AVX2_WHOLE_S1_ONLY"): True,
    (depthwise, "DIRECT_5X5_AVX2_3X3_S1_HALF_VECTOR_ONLY"): True,
    (depthwise, "FILTER_GRADIENT_AVX2"): True,
    (depthwise, "FILTER_GRADIENT_AVX2_7_MIN_WIDTH"): 10,
    (depthwise, "FILTER_GRADIENT_AVX2_MULTIPLIER_3_WIDE"): False,
    (depthwise, "FILTER_GRADIENT_WHOLE_VECTORS"): True,
    (depthwise, "FILTER_GRADIENT_3_WIDE_DILATIONS"): (2,),
    (depthwise, "DIRECT_3X3_DILATED_MIN_IMAGE_BYTES"): 2 * 1024 * 1024,
    (depthwise, "DIRECT_3X3_ALIGNED_MIN_PIXEL_BYTES"): 1024,
    (depthwise, "FOLDED_DILATION"): True,
    (depthwise, "DIRECT_3X3_FILTER_GRADIENT_STRIDE_2"): True,
    (depthwise, "DIRECT_3X3_S2_MAX_IMAGE_BYTES"): 512 * 1024,
    (depthwise, "WINOGRAD_3X3"): True,
    (depthwise, "WINOGRAD_3X3_FILTER_GRADIENT"): True,
    (depthwise, "NCHW_TRANSPOSED_FILTERS"): True,
    (depthwise, "NCHW_TRANSPOSED_MAX_WIDTH"): 16,
    (depthwise, "NCHW_TRANSPOSED_MIN_BATCH"): 4,
    (depthwise, "NCHW_TRANSPOSED_MIN_BYTES"): 1024 * 1024,
    (depthwise, "NCHW_TRANSPOSED_MAX_BYTES"): 7 * 512 * 1024,
    (depthwise, "NCHW_TRANSPOSED_7X7_MIN_CHANNELS"): sys.maxsize,
    (depthwise, "NCHW_TRANSPOSED_3X3_MIN_BATCH"): sys.maxsize,
}

# ... and on AMD's Zen 5 (whole 512-bit units): Zen 4's plans, which won there too (forty-ninth session, one process,
# alternating, the AVX-512 plans -> Zen 4's: 550 forward layers of the benchmarks' files, geomean 0.94, 0.44-1.64; 553
# gradient layers 0.84, 0.26-1.40: the small-image kernel's whole-vector steps 0.51-0.68 on 5x5 and 7x7 layers, the
# rolling-window filter gradient 0.30-0.57, the direct 3x3 kernels on dilated layers 0.40-0.65), but for two rules:
# 5x5 layers over a vector of channels or more stay off the AVX2 5x5 kernel on wide stride-1 rows too (its
# whole-vector steps -> the AVX-512 plans' kernels: 1x66x66x432 0.71-0.75, 1x75x75x480 0.83, 1x112x112x64 0.91,
# 1x147x147x64 0.90, 4x62x62x16 0.85), and conv2d's Winograd BLAS plan only from 1200 output pixels, its fused plan
# from 384 (beside WINOGRAD_FUSED_MIN_PIXELS in sepconv.fast.conv2d).  And two rules of its own: undilated stride-1 3x3
# layers of up to 36 KB of input on the direct 3x3 kernel (31 layers up to 32 KB: geomean 0.77 of the general kernel's
# time, 0.64-0.96; beside DIRECT_3X3_S1_MAX_BYTES in sepconv.fast.depthwise), and 7x7 stride-2 layers of output rows
# of up to 10 pixels off the AVX2 kernel (0.72-0.93; beside DIRECT_AVX2_7X7_S2_MIN_WIDTH).  And since the fifty-third
# session, conv2d's direct plan splits an even number of panels over the threads up to 40 tiles a thread (beside
# DIRECT_PANEL_SPLIT_EVEN_TILES in sepconv.fast.conv2d).
_ZEN5 = {
    **_WIDE_HALF_UNITS,
    (depthwise, "DIRECT_5X5_AVX2_WHOLE_MIN_WIDTH"): sys.maxsize,
    (conv2d, "WINOGRAD_MIN_PIXELS"): 1200,
    (conv2d, "WINOGRAD_FUSED_MIN_PIXELS"): 384,
    (conv2d, "WINOGRAD_BLAS_MIN_PIXELS"): sys.maxsize,
    (conv2d, "WINOGRAD_BLAS_MAX_FILTER_BYTES"): 0,
    (depthwise, "DIRECT_3X3_S1_MAX_BYTES"): 36 * 1024,
    (depthwise, "DIRECT_AVX2_7X7_S2_MIN_WIDTH"): 11,
    (conv2d, "DIRECT_PANEL_SPLIT_EVEN_TILES"): 40,
}


PLANS = ""  # the plans set last, by name: "AVX-512", "AVX-512 on 256-bit units", "AVX-512 on Zen 5" or "AVX2"


def use_wide_register_plans(wide: bool, half_width_units: bool = False, zen5: bool = False) -> None:
    """Set the plans for a CPU with AVX-512's registers (``wide``; ``half_width_units``: on 256-bit units, as Zen 4;
    ``zen5``: AMD's Zen 5) or without them, and forget the plans made.  ``half_width_units`` wins over ``zen5``, and
    without ``wide`` neither counts."""
    global PLANS
    if not wide:
        plans, PLANS = _NARROW, "AVX2"
    elif half_width_units:
        plans, PLANS = _WIDE_HALF_UNITS, "AVX-512 on 256-bit units"
    elif zen5:
        plans, PLANS = _ZEN5, "AVX-512 on Zen 5"
    else:
        plans, PLANS = _WIDE, "AVX-512"
    for (module, name), value in plans.items():
        setattr(module, name, value)
    depthwise.clear_plans()


def use_this_cpus_plans() -> None:
    """Set the plans this CPU takes (as on import)."""
    use_wide_register_plans(WIDE_REGISTERS, HALF_WIDTH_UNITS, ZEN5)


use_this_cpus_plans()
