"""The depthwise forward of a 5x5 filter at horizontal stride 1 or 2 (any vertical stride, dilations and padding; no
horizontal dilation at stride 2) and its input gradient at stride 2, NHWC, read straight from the arrays, for CPUs
of sixteen vector registers (AVX2): eight pixels per step, their sums in registers, one channel block of half a
vector (32 bytes: one AVX2 register, :func:`~sepconv.kernels._simd.hload`) after another.  The same steps run on
whole vectors (``whole``: AVX-512's 32 registers on 256-bit units, Zen 4), their width taken from the zero vector the
sums start from (:func:`~sepconv.kernels._simd.load_like`).

Per filter row a step loads the row's five weights and then the twelve input columns its pixels reach, one at a
time, each added to the sums of every pixel it is a tap of (:func:`_row_taps`: 5 weight and 12 input loads per 40
multiply-adds): eight registers of sums, five of weights and one for the column, of the sixteen. In whole 64-byte
vectors a filter row's weights alone would take ten (the AVX-512 kernel, :mod:`sepconv.kernels.depthwise_5x5_direct`,
keeps 25 vectors in registers; here it spills). At a horizontal dilation ``d`` the step's pixels are ``d`` apart, so
pixel ``p``'s tap ``t`` still reads column ``p + t`` of twelve (the row's pixels go phase by phase of the
dilation); at stride 2 column ``2p + t`` of nineteen (:func:`_row_taps_s2`). The columns are addressed from bases
three columns apart made opaque to LLVM (:func:`~sepconv.kernels._simd.opaque`), each column one base plus the
column gap times 1 or 2.

A row's steps cover its interior (the pixels whose taps are all inside the input), each step for every channel block
in turn, in the order of memory, and a phase's last step overlaps the one before it (:func:`_steps`); the border
pixels, and phases narrower than a step, go one at a time with the taps inside the input only, four channel blocks
at once for four chains of sums (:func:`_pixel`: 0.93-0.98 of the time of one block at a time on 8x56x56x96,
1x56x56x96 and 1x75x75x480); filter rows outside the input are skipped. A last partial channel block overlaps the
one before it (:func:`~sepconv.kernels._window.block_start`), so the input needs half a vector of channels.

The steps of eight pixels (:func:`step_5x5`), and ten-pixel ones for 7x7 filters (:func:`step_7x7`: each filter
row's taps four then three, so that ten chains of sums fit; seven pixels on rows of 14, :func:`step_7x7_seven`), also
run the small-image kernel's stride-1 rows on its packed planes, whose zero margins let border pixels go in steps too
(:func:`sepconv.kernels.depthwise_small_image.half_vector_fits`).

The input gradient at stride 2 (undilated) takes, for each of its rows, the filter rows of the row's parity, and
eight pixels per step: four even ones that take taps 0, 2 and 4, four odd ones that take taps 1 and 3, from six
columns of ``dy`` (:func:`_s2_row_taps`); the border pixels go one at a time (:func:`_s2_pixel`). A 7x7 filter's
input gradient at stride 2 goes the same way, its four even pixels taking taps 0, 2, 4 and 6, its odd ones 1, 3 and 5,
from seven columns (:func:`_s2_row_taps7`: eight sums, seven weights and a column fill the sixteen registers), and a
3x3 filter's from five (:func:`_s2_row_taps3`).

3x3 filters over fewer channels than a vector (whose whole vectors would be part empty, their lanes masked) take the
same steps, ten columns a filter row at stride 1 (:func:`_row_taps_3x3`) and seventeen at stride 2
(:func:`_row_taps_3x3_s2`), and so do 7x7 filters at horizontal stride 2 over few channels, twenty-one columns a filter
row (:func:`_row_taps_7x7_s2`).

:mod:`sepconv.fast.depthwise` sends it, on CPUs without AVX-512 (:mod:`sepconv.fast.registers`), the forward (and
stride-1 input gradient, the forward of ``dy``) of 5x5 layers at horizontal stride 1 or 2 whose rows are wide enough
(its pixels' many columns a step, at a pixel stride of a multiple of 512 bytes, fall in a few of L1's sets: those
take the small-image kernel), and their stride-2 input gradient, and that of 7x7 layers; and 3x3 layers over at least
half a vector of channels but less than a whole one, forward and input gradient, and the forward of 7x7 layers at
horizontal stride 2 over few channels.

Examples
--------
A 5x5 filter of ones over a 6x10 image of ones, SAME padding, stride 1: each output counts its taps inside the image.

>>> import numpy as np
>>> x, w = np.ones((1, 6, 10, 8), np.float32), np.ones((5, 5, 8), np.float32)
>>> out = np.empty((1, 6, 10, 8), np.float32)
>>> depthwise_nhwc_forward_5x5_avx2_parallel(x, w, out, 1, 1, 1, 1, 1, 2, 2)  # 1 chunk, strides, dilations, pads
>>> out[0, :, :, 0]
array([[ 9., 12., 15., 15., 15., 15., 15., 15., 12.,  9.],
       [12., 16., 20., 20., 20., 20., 20., 20., 16., 12.],
       [15., 20., 25., 25., 25., 25., 25., 25., 20., 15.],
       [15., 20., 25., 25., 25., 25., 25., 25., 20., 15.],
       [12., 16., 20., 20., 20., 20., 20., 20., 16., 12.],
       [ 9., 12., 15., 15., 15., 15., 15., 15., 12.,  9.]], dtype=float32)
"""

from __future__ import annotations

from numba import prange

from ._borrowed import borrowed
from ._jit import kernel
from ._simd import empty_on_line, hzeros, lanes_like, load_like, opaque, vfma, vstore, vzeros
from ._window import block_start, interior, parity_rows, parity_steps, tap_range

# Output pixels per step: their sums, a filter row's five weights and one input column take fourteen of an AVX2
# core's sixteen registers.
STEP_PIXELS = 8
# ... and of a 7x7 filter, four taps then three (:func:`step_7x7`: ten sums, four weights and a column).
STEP_7X7_PIXELS = 10
# ... or seven, for rows of 14 pixels (:func:`step_7x7_seven`); and a 5x5 filter's in seven pixels too, in whole
# vectors (:func:`step_5x5_seven`: rows of 14 or 7 pixels in steps that do not overlap).
STEP_7X7_SHORT_PIXELS = 7
STEP_5X5_SHORT_PIXELS = 7


@kernel(inline=True)
def _store_eight(out, o, gap, s0, s1, s2, s3, s4, s5, s6, s7):
    """Store a step's eight sums at flat indices ``o, o + gap, ... o + 7 * gap`` of ``out``."""
    vstore(out, o, s0)
    vstore(out, o + gap, s1)
    vstore(out, o + 2 * gap, s2)
    vstore(out, o + 3 * gap, s3)
    vstore(out, o + 4 * gap, s4)
    vstore(out, o + 5 * gap, s5)
    vstore(out, o + 6 * gap, s6)
    vstore(out, o + 7 * gap, s7)


@kernel
def _filters_by_block(z, w, like):
    """``w`` ``[kh, kw, C]`` (3x3, 5x5 or 7x7) laid out by channel block of vectors as wide as ``z`` (half or whole),
    ``[blocks, kh * kw, lanes]`` (a last partial block overlapping the one before it), on a cache line."""
    kh, kw, c = w.shape
    taps = kh * kw
    count = lanes_like(z)
    blocks = (c + count - 1) // count
    wbs = empty_on_line(blocks * taps * count, like)
    for g in range(blocks):
        k = block_start(g * count, 0, c, count)
        for t in range(taps):
            for u in range(count):
                wbs[(g * taps + t) * count + u] = w[t // kw, t % kw, k + u]
    return wbs


@kernel(inline=True)
def _row_taps(s0, s1, s2, s3, s4, s5, s6, s7, x, a, gap, wb, wt):
    """Adds one filter row (weights ``wt ..`` of ``wb``, five half vectors) to the sums of eight pixels ``gap``
    apart whose first tap reads ``x`` from ``a`` and whose taps are ``gap`` apart too: the twelve columns loaded
    once each, in order, each added to the pixels it is a tap of."""
    count = lanes_like(s0)
    w0, w1, w2 = load_like(wb, wt, s0), load_like(wb, wt + count, s0), load_like(wb, wt + 2 * count, s0)
    w3, w4 = load_like(wb, wt + 3 * count, s0), load_like(wb, wt + 4 * count, s0)
    a0, a3, a6, a9 = opaque(a), opaque(a + 3 * gap), opaque(a + 6 * gap), opaque(a + 9 * gap)
    i = load_like(x, a0, s0)
    s0 = vfma(i, w0, s0)
    i = load_like(x, a0 + gap, s0)
    s0, s1 = vfma(i, w1, s0), vfma(i, w0, s1)
    i = load_like(x, a0 + 2 * gap, s0)
    s0, s1, s2 = vfma(i, w2, s0), vfma(i, w1, s1), vfma(i, w0, s2)
    i = load_like(x, a3, s0)
    s0, s1, s2, s3 = vfma(i, w3, s0), vfma(i, w2, s1), vfma(i, w1, s2), vfma(i, w0, s3)
    i = load_like(x, a3 + gap, s0)
    s0, s1, s2, s3, s4 = vfma(i, w4, s0), vfma(i, w3, s1), vfma(i, w2, s2), vfma(i, w1, s3), vfma(i, w0, s4)
    i = load_like(x, a3 + 2 * gap, s0)
    s1, s2, s3, s4, s5 = vfma(i, w4, s1), vfma(i, w3, s2), vfma(i, w2, s3), vfma(i, w1, s4), vfma(i, w0, s5)
    i = load_like(x, a6, s0)
    s2, s3, s4, s5, s6 = vfma(i, w4, s2), vfma(i, w3, s3), vfma(i, w2, s4), vfma(i, w1, s5), vfma(i, w0, s6)
    i = load_like(x, a6 + gap, s0)
    s3, s4, s5, s6, s7 = vfma(i, w4, s3), vfma(i, w3, s4), vfma(i, w2, s5), vfma(i, w1, s6), vfma(i, w0, s7)
    i = load_like(x, a6 + 2 * gap, s0)
    s4, s5, s6, s7 = vfma(i, w4, s4), vfma(i, w3, s5), vfma(i, w2, s6), vfma(i, w1, s7)
    i = load_like(x, a9, s0)
    s5, s6, s7 = vfma(i, w4, s5), vfma(i, w3, s6), vfma(i, w2, s7)
    i = load_like(x, a9 + gap, s0)
    s6, s7 = vfma(i, w4, s6), vfma(i, w3, s7)
    i = load_like(x, a9 + 2 * gap, s0)
    s7 = vfma(i, w4, s7)
    return s0, s1, s2, s3, s4, s5, s6, s7


@kernel(inline=True)
def _four_taps(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, x, a, gap, wb, wt):
    """Adds four taps of a filter row (weights ``wt ..`` of ``wb``, four half vectors) to the sums of ten pixels
    ``gap`` apart whose first tap reads ``x`` from ``a``, taps ``gap`` apart: the thirteen columns loaded once each,
    in order, each added to the pixels it is a tap of (ten sums, four weights and one column: fifteen registers)."""
    count = lanes_like(s0)
    w0, w1 = load_like(wb, wt, s0), load_like(wb, wt + count, s0)
    w2, w3 = load_like(wb, wt + 2 * count, s0), load_like(wb, wt + 3 * count, s0)
    a0, a3, a6, a9, a12 = opaque(a), opaque(a + 3 * gap), opaque(a + 6 * gap), opaque(a + 9 * gap), opaque(a + 12 * gap)
    i = load_like(x, a0, s0)
    s0 = vfma(i, w0, s0)
    i = load_like(x, a0 + gap, s0)
    s0, s1 = vfma(i, w1, s0), vfma(i, w0, s1)
    i = load_like(x, a0 + 2 * gap, s0)
    s0, s1, s2 = vfma(i, w2, s0), vfma(i, w1, s1), vfma(i, w0, s2)
    i = load_like(x, a3, s0)
    s0, s1, s2, s3 = vfma(i, w3, s0), vfma(i, w2, s1), vfma(i, w1, s2), vfma(i, w0, s3)
    i = load_like(x, a3 + gap, s0)
    s1, s2, s3, s4 = vfma(i, w3, s1), vfma(i, w2, s2), vfma(i, w1, s3), vfma(i, w0, s4)
    i = load_like(x, a3 + 2 * gap, s0)
    s2, s3, s4, s5 = vfma(i, w3, s2), vfma(i, w2, s3), vfma(i, w1, s4), vfma(i, w0, s5)
    i = load_like(x, a6, s0)
    s3, s4, s5, s6 = vfma(i, w3, s3), vfma(i, w2, s4), vfma(i, w1, s5), vfma(i, w0, s6)
    i = load_like(x, a6 + gap, s0)
    s4, s5, s6, s7 = vfma(i, w3, s4), vfma(i, w2, s5), vfma(i, w1, s6), vfma(i, w0, s7)
    i = load_like(x, a6 + 2 * gap, s0)
    s5, s6, s7, s8 = vfma(i, w3, s5), vfma(i, w2, s6), vfma(i, w1, s7), vfma(i, w0, s8)
    i = load_like(x, a9, s0)
    s6, s7, s8, s9 = vfma(i, w3, s6), vfma(i, w2, s7), vfma(i, w1, s8), vfma(i, w0, s9)
    i = load_like(x, a9 + gap, s0)
    s7, s8, s9 = vfma(i, w3, s7), vfma(i, w2, s8), vfma(i, w1, s9)
    i = load_like(x, a9 + 2 * gap, s0)
    s8, s9 = vfma(i, w3, s8), vfma(i, w2, s9)
    i = load_like(x, a12, s0)
    s9 = vfma(i, w3, s9)
    return s0, s1, s2, s3, s4, s5, s6, s7, s8, s9


@kernel(inline=True)
def _three_taps(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, x, a, gap, wb, wt):
    """:func:`_four_taps` for three taps: twelve columns."""
    count = lanes_like(s0)
    w0, w1, w2 = load_like(wb, wt, s0), load_like(wb, wt + count, s0), load_like(wb, wt + 2 * count, s0)
    a0, a3, a6, a9 = opaque(a), opaque(a + 3 * gap), opaque(a + 6 * gap), opaque(a + 9 * gap)
    i = load_like(x, a0, s0)
    s0 = vfma(i, w0, s0)
    i = load_like(x, a0 + gap, s0)
    s0, s1 = vfma(i, w1, s0), vfma(i, w0, s1)
    i = load_like(x, a0 + 2 * gap, s0)
    s0, s1, s2 = vfma(i, w2, s0), vfma(i, w1, s1), vfma(i, w0, s2)
    i = load_like(x, a3, s0)
    s1, s2, s3 = vfma(i, w2, s1), vfma(i, w1, s2), vfma(i, w0, s3)
    i = load_like(x, a3 + gap, s0)
    s2, s3, s4 = vfma(i, w2, s2), vfma(i, w1, s3), vfma(i, w0, s4)
    i = load_like(x, a3 + 2 * gap, s0)
    s3, s4, s5 = vfma(i, w2, s3), vfma(i, w1, s4), vfma(i, w0, s5)
    i = load_like(x, a6, s0)
    s4, s5, s6 = vfma(i, w2, s4), vfma(i, w1, s5), vfma(i, w0, s6)
    i = load_like(x, a6 + gap, s0)
    s5, s6, s7 = vfma(i, w2, s5), vfma(i, w1, s6), vfma(i, w0, s7)
    i = load_like(x, a6 + 2 * gap, s0)
    s6, s7, s8 = vfma(i, w2, s6), vfma(i, w1, s7), vfma(i, w0, s8)
    i = load_like(x, a9, s0)
    s7, s8, s9 = vfma(i, w2, s7), vfma(i, w1, s8), vfma(i, w0, s9)
    i = load_like(x, a9 + gap, s0)
    s8, s9 = vfma(i, w2, s8), vfma(i, w1, s9)
    i = load_like(x, a9 + 2 * gap, s0)
    s9 = vfma(i, w2, s9)
    return s0, s1, s2, s3, s4, s5, s6, s7, s8, s9


@kernel(inline=True)
def step_5x5(zero, x, wbs, out, o, o_gap, a, r_lo, r_hi, row_gap, gap, wt):
    """Eight output pixels of a 5x5 filter at horizontal stride 1 into ``out`` from flat index ``o``, ``o_gap``
    apart, one channel block: filter row ``r`` in ``[r_lo, r_hi)`` reads ``x`` from ``a + r * row_gap``, columns
    ``gap`` apart (:func:`_row_taps`), with weights from ``wt + 5 * r`` half vectors of ``wbs``."""
    count = lanes_like(zero)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
    for r in range(r_lo, r_hi):
        s0, s1, s2, s3, s4, s5, s6, s7 = _row_taps(s0, s1, s2, s3, s4, s5, s6, s7, x, a + r * row_gap, gap, wbs,
                                                   wt + 5 * r * count)
    _store_eight(out, o, o_gap, s0, s1, s2, s3, s4, s5, s6, s7)


@kernel(inline=True)
def _row_taps_seven(s0, s1, s2, s3, s4, s5, s6, x, a, gap, wb, wt):
    """:func:`_row_taps` for seven pixels: eleven columns (rows of 14 or 7 pixels in whole vectors, no step
    overlapping another).  The eighth pixel's sums are not used, so LLVM drops its twelfth column and its
    multiply-adds."""
    s0, s1, s2, s3, s4, s5, s6, _ = _row_taps(s0, s1, s2, s3, s4, s5, s6, s6, x, a, gap, wb, wt)
    return s0, s1, s2, s3, s4, s5, s6


@kernel(inline=True)
def step_5x5_seven(zero, x, wbs, out, o, o_gap, a, r_lo, r_hi, row_gap, gap, wt):
    """:func:`step_5x5` in seven pixels (:func:`_row_taps_seven`), for whole vectors on 256-bit units (Zen 4), where
    seven chains of sums keep the multiply-adds busy (on AVX2, half vectors, eight are needed)."""
    count = lanes_like(zero)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = zero
    for r in range(r_lo, r_hi):
        s0, s1, s2, s3, s4, s5, s6 = _row_taps_seven(s0, s1, s2, s3, s4, s5, s6, x, a + r * row_gap, gap, wbs,
                                                     wt + 5 * r * count)
    vstore(out, o, s0)
    vstore(out, o + o_gap, s1)
    vstore(out, o + 2 * o_gap, s2)
    vstore(out, o + 3 * o_gap, s3)
    vstore(out, o + 4 * o_gap, s4)
    vstore(out, o + 5 * o_gap, s5)
    vstore(out, o + 6 * o_gap, s6)


@kernel(inline=True)
def step_7x7(zero, x, wbs, out, o, o_gap, a, r_lo, r_hi, row_gap, gap, wt):
    """:func:`step_5x5` for a 7x7 filter, ten pixels: each filter row's taps four then three (:func:`_four_taps`,
    :func:`_three_taps`: 7 weight and 25 input loads per 70 multiply-adds). Ten chains of sums keep the two FMA
    pipes busy with slack; eight, each seven multiply-adds a row, would need every one on time."""
    count = lanes_like(zero)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = s9 = zero
    for r in range(r_lo, r_hi):
        b, t = a + r * row_gap, wt + 7 * r * count
        s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 = _four_taps(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, x, b, gap, wbs, t)
        s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 = _three_taps(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, x, b + 4 * gap,
                                                             gap, wbs, t + 4 * count)
    _store_eight(out, o, o_gap, s0, s1, s2, s3, s4, s5, s6, s7)
    vstore(out, o + 8 * o_gap, s8)
    vstore(out, o + 9 * o_gap, s9)

@kernel(inline=True)
def _four_taps_seven(s0, s1, s2, s3, s4, s5, s6, x, a, gap, wb, wt):
    """:func:`_four_taps` for seven pixels: ten columns."""
    count = lanes_like(s0)
    w0, w1 = load_like(wb, wt, s0), load_like(wb, wt + count, s0)
    w2, w3 = load_like(wb, wt + 2 * count, s0), load_like(wb, wt + 3 * count, s0)
    a0, a3, a6, a9 = opaque(a), opaque(a + 3 * gap), opaque(a + 6 * gap), opaque(a + 9 * gap)
    i = load_like(x, a0, s0)
    s0 = vfma(i, w0, s0)
    i = load_like(x, a0 + gap, s0)
    s0, s1 = vfma(i, w1, s0), vfma(i, w0, s1)
    i = load_like(x, a0 + 2 * gap, s0)
    s0, s1, s2 = vfma(i, w2, s0), vfma(i, w1, s1), vfma(i, w0, s2)
    i = load_like(x, a3, s0)
    s0, s1, s2, s3 = vfma(i, w3, s0), vfma(i, w2, s1), vfma(i, w1, s2), vfma(i, w0, s3)
    i = load_like(x, a3 + gap, s0)
    s1, s2, s3, s4 = vfma(i, w3, s1), vfma(i, w2, s2), vfma(i, w1, s3), vfma(i, w0, s4)
    i = load_like(x, a3 + 2 * gap, s0)
    s2, s3, s4, s5 = vfma(i, w3, s2), vfma(i, w2, s3), vfma(i, w1, s4), vfma(i, w0, s5)
    i = load_like(x, a6, s0)
    s3, s4, s5, s6 = vfma(i, w3, s3), vfma(i, w2, s4), vfma(i, w1, s5), vfma(i, w0, s6)
    i = load_like(x, a6 + gap, s0)
    s4, s5, s6 = vfma(i, w3, s4), vfma(i, w2, s5), vfma(i, w1, s6)
    i = load_like(x, a6 + 2 * gap, s0)
    s5, s6 = vfma(i, w3, s5), vfma(i, w2, s6)
    i = load_like(x, a9, s0)
    s6 = vfma(i, w3, s6)
    return s0, s1, s2, s3, s4, s5, s6


@kernel(inline=True)
def _three_taps_seven(s0, s1, s2, s3, s4, s5, s6, x, a, gap, wb, wt):
    """:func:`_three_taps` for seven pixels: nine columns."""
    count = lanes_like(s0)
    w0, w1, w2 = load_like(wb, wt, s0), load_like(wb, wt + count, s0), load_like(wb, wt + 2 * count, s0)
    a0, a3, a6 = opaque(a), opaque(a + 3 * gap), opaque(a + 6 * gap)
    i = load_like(x, a0, s0)
    s0 = vfma(i, w0, s0)
    i = load_like(x, a0 + gap, s0)
    s0, s1 = vfma(i, w1, s0), vfma(i, w0, s1)
    i = load_like(x, a0 + 2 * gap, s0)
    s0, s1, s2 = vfma(i, w2, s0), vfma(i, w1, s1), vfma(i, w0, s2)
    i = load_like(x, a3, s0)
    s1, s2, s3 = vfma(i, w2, s1), vfma(i, w1, s2), vfma(i, w0, s3)
    i = load_like(x, a3 + gap, s0)
    s2, s3, s4 = vfma(i, w2, s2), vfma(i, w1, s3), vfma(i, w0, s4)
    i = load_like(x, a3 + 2 * gap, s0)
    s3, s4, s5 = vfma(i, w2, s3), vfma(i, w1, s4), vfma(i, w0, s5)
    i = load_like(x, a6, s0)
    s4, s5, s6 = vfma(i, w2, s4), vfma(i, w1, s5), vfma(i, w0, s6)
    i = load_like(x, a6 + gap, s0)
    s5, s6 = vfma(i, w2, s5), vfma(i, w1, s6)
    i = load_like(x, a6 + 2 * gap, s0)
    s6 = vfma(i, w2, s6)
    return s0, s1, s2, s3, s4, s5, s6


@kernel(inline=True)
def step_7x7_seven(zero, x, wbs, out, o, o_gap, a, r_lo, r_hi, row_gap, gap, wt):
    """:func:`step_7x7` in seven pixels (rows of fourteen: two steps, none overlapping)."""
    count = lanes_like(zero)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = zero
    for r in range(r_lo, r_hi):
        b, t = a + r * row_gap, wt + 7 * r * count
        s0, s1, s2, s3, s4, s5, s6 = _four_taps_seven(s0, s1, s2, s3, s4, s5, s6, x, b, gap, wbs, t)
        s0, s1, s2, s3, s4, s5, s6 = _three_taps_seven(s0, s1, s2, s3, s4, s5, s6, x, b + 4 * gap, gap, wbs, t + 4 * count)
    vstore(out, o, s0)
    vstore(out, o + o_gap, s1)
    vstore(out, o + 2 * o_gap, s2)
    vstore(out, o + 3 * o_gap, s3)
    vstore(out, o + 4 * o_gap, s4)
    vstore(out, o + 5 * o_gap, s5)
    vstore(out, o + 6 * o_gap, s6)

@kernel(inline=True)
def _row_taps_s2(s0, s1, s2, s3, s4, s5, s6, s7, x, a, gap, wb, wt):
    """:func:`_row_taps` at horizontal stride 2 (dilation 1): pixel ``p``'s tap ``t`` reads column ``2p + t`` of
    the nineteen the step's pixels reach (``gap`` apart), each loaded once."""
    count = lanes_like(s0)
    w0, w1, w2 = load_like(wb, wt, s0), load_like(wb, wt + count, s0), load_like(wb, wt + 2 * count, s0)
    w3, w4 = load_like(wb, wt + 3 * count, s0), load_like(wb, wt + 4 * count, s0)
    a0, a3, a6, a9 = opaque(a), opaque(a + 3 * gap), opaque(a + 6 * gap), opaque(a + 9 * gap)
    a12, a15, a18 = opaque(a + 12 * gap), opaque(a + 15 * gap), opaque(a + 18 * gap)
    s0 = vfma(load_like(x, a0, s0), w0, s0)
    s0 = vfma(load_like(x, a0 + gap, s0), w1, s0)
    i = load_like(x, a0 + 2 * gap, s0)
    s0, s1 = vfma(i, w2, s0), vfma(i, w0, s1)
    i = load_like(x, a3, s0)
    s0, s1 = vfma(i, w3, s0), vfma(i, w1, s1)
    i = load_like(x, a3 + gap, s0)
    s0, s1, s2 = vfma(i, w4, s0), vfma(i, w2, s1), vfma(i, w0, s2)
    i = load_like(x, a3 + 2 * gap, s0)
    s1, s2 = vfma(i, w3, s1), vfma(i, w1, s2)
    i = load_like(x, a6, s0)
    s1, s2, s3 = vfma(i, w4, s1), vfma(i, w2, s2), vfma(i, w0, s3)
    i = load_like(x, a6 + gap, s0)
    s2, s3 = vfma(i, w3, s2), vfma(i, w1, s3)
    i = load_like(x, a6 + 2 * gap, s0)
    s2, s3, s4 = vfma(i, w4, s2), vfma(i, w2, s3), vfma(i, w0, s4)
    i = load_like(x, a9, s0)
    s3, s4 = vfma(i, w3, s3), vfma(i, w1, s4)
    i = load_like(x, a9 + gap, s0)
    s3, s4, s5 = vfma(i, w4, s3), vfma(i, w2, s4), vfma(i, w0, s5)
    i = load_like(x, a9 + 2 * gap, s0)
    s4, s5 = vfma(i, w3, s4), vfma(i, w1, s5)
    i = load_like(x, a12, s0)
    s4, s5, s6 = vfma(i, w4, s4), vfma(i, w2, s5), vfma(i, w0, s6)
    i = load_like(x, a12 + gap, s0)
    s5, s6 = vfma(i, w3, s5), vfma(i, w1, s6)
    i = load_like(x, a12 + 2 * gap, s0)
    s5, s6, s7 = vfma(i, w4, s5), vfma(i, w2, s6), vfma(i, w0, s7)
    i = load_like(x, a15, s0)
    s6, s7 = vfma(i, w3, s6), vfma(i, w1, s7)
    i = load_like(x, a15 + gap, s0)
    s6, s7 = vfma(i, w4, s6), vfma(i, w2, s7)
    s7 = vfma(load_like(x, a15 + 2 * gap, s0), w3, s7)
    s7 = vfma(load_like(x, a18, s0), w4, s7)
    return s0, s1, s2, s3, s4, s5, s6, s7


@kernel(inline=True)
def _step_5x5_s2(zero, x, wbs, out, o, a, r_lo, r_hi, row_gap, wt):
    """:func:`step_5x5` at horizontal stride 2 (undilated): eight consecutive pixels (:func:`_row_taps_s2`)."""
    count, c = lanes_like(zero), out.shape[3]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
    for r in range(r_lo, r_hi):
        s0, s1, s2, s3, s4, s5, s6, s7 = _row_taps_s2(s0, s1, s2, s3, s4, s5, s6, s7, x, a + r * row_gap, c, wbs,
                                                      wt + 5 * r * count)
    _store_eight(out, o, c, s0, s1, s2, s3, s4, s5, s6, s7)

@kernel(inline=True)
def _row_taps_3x3(s0, s1, s2, s3, s4, s5, s6, s7, x, a, gap, wb, wt):
    """:func:`_row_taps` of a 3x3 filter: the ten columns the eight pixels reach, each loaded once."""
    count = lanes_like(s0)
    w0, w1, w2 = load_like(wb, wt, s0), load_like(wb, wt + count, s0), load_like(wb, wt + 2 * count, s0)
    a0, a3, a6, a9 = opaque(a), opaque(a + 3 * gap), opaque(a + 6 * gap), opaque(a + 9 * gap)
    i = load_like(x, a0, s0)
    s0 = vfma(i, w0, s0)
    i = load_like(x, a0 + gap, s0)
    s0, s1 = vfma(i, w1, s0), vfma(i, w0, s1)
    i = load_like(x, a0 + 2 * gap, s0)
    s0, s1, s2 = vfma(i, w2, s0), vfma(i, w1, s1), vfma(i, w0, s2)
    i = load_like(x, a3, s0)
    s1, s2, s3 = vfma(i, w2, s1), vfma(i, w1, s2), vfma(i, w0, s3)
    i = load_like(x, a3 + gap, s0)
    s2, s3, s4 = vfma(i, w2, s2), vfma(i, w1, s3), vfma(i, w0, s4)
    i = load_like(x, a3 + 2 * gap, s0)
    s3, s4, s5 = vfma(i, w2, s3), vfma(i, w1, s4), vfma(i, w0, s5)
    i = load_like(x, a6, s0)
    s4, s5, s6 = vfma(i, w2, s4), vfma(i, w1, s5), vfma(i, w0, s6)
    i = load_like(x, a6 + gap, s0)
    s5, s6, s7 = vfma(i, w2, s5), vfma(i, w1, s6), vfma(i, w0, s7)
    i = load_like(x, a6 + 2 * gap, s0)
    s6, s7 = vfma(i, w2, s6), vfma(i, w1, s7)
    s7 = vfma(load_like(x, a9, s0), w2, s7)
    return s0, s1, s2, s3, s4, s5, s6, s7


@kernel(inline=True)
def _row_taps_3x3_s2(s0, s1, s2, s3, s4, s5, s6, s7, x, a, gap, wb, wt):
    """:func:`_row_taps_3x3` at horizontal stride 2: pixel ``p``'s tap ``t`` reads column ``2p + t`` of the
    seventeen the step's pixels reach, each loaded once."""
    count = lanes_like(s0)
    w0, w1, w2 = load_like(wb, wt, s0), load_like(wb, wt + count, s0), load_like(wb, wt + 2 * count, s0)
    a0, a3, a6, a9 = opaque(a), opaque(a + 3 * gap), opaque(a + 6 * gap), opaque(a + 9 * gap)
    a12, a15 = opaque(a + 12 * gap), opaque(a + 15 * gap)
    s0 = vfma(load_like(x, a0, s0), w0, s0)
    s0 = vfma(load_like(x, a0 + gap, s0), w1, s0)
    i = load_like(x, a0 + 2 * gap, s0)
    s0, s1 = vfma(i, w2, s0), vfma(i, w0, s1)
    s1 = vfma(load_like(x, a3, s0), w1, s1)
    i = load_like(x, a3 + gap, s0)
    s1, s2 = vfma(i, w2, s1), vfma(i, w0, s2)
    s2 = vfma(load_like(x, a3 + 2 * gap, s0), w1, s2)
    i = load_like(x, a6, s0)
    s2, s3 = vfma(i, w2, s2), vfma(i, w0, s3)
    s3 = vfma(load_like(x, a6 + gap, s0), w1, s3)
    i = load_like(x, a6 + 2 * gap, s0)
    s3, s4 = vfma(i, w2, s3), vfma(i, w0, s4)
    s4 = vfma(load_like(x, a9, s0), w1, s4)
    i = load_like(x, a9 + gap, s0)
    s4, s5 = vfma(i, w2, s4), vfma(i, w0, s5)
    s5 = vfma(load_like(x, a9 + 2 * gap, s0), w1, s5)
    i = load_like(x, a12, s0)
    s5, s6 = vfma(i, w2, s5), vfma(i, w0, s6)
    s6 = vfma(load_like(x, a12 + gap, s0), w1, s6)
    i = load_like(x, a12 + 2 * gap, s0)
    s6, s7 = vfma(i, w2, s6), vfma(i, w0, s7)
    s7 = vfma(load_like(x, a15, s0), w1, s7)
    s7 = vfma(load_like(x, a15 + gap, s0), w2, s7)
    return s0, s1, s2, s3, s4, s5, s6, s7


@kernel(inline=True)
def _row_taps_7x7_s2(s0, s1, s2, s3, s4, s5, s6, s7, x, a, gap, wb, wt):
    """:func:`_row_taps_s2` of a 7x7 filter: pixel ``p``'s tap ``t`` reads column ``2p + t`` of the twenty-one the
    step's pixels reach, each loaded once (eight sums, seven weights and the column: the sixteen registers)."""
    count = lanes_like(s0)
    w0, w1, w2 = load_like(wb, wt, s0), load_like(wb, wt + count, s0), load_like(wb, wt + 2 * count, s0)
    w3, w4 = load_like(wb, wt + 3 * count, s0), load_like(wb, wt + 4 * count, s0)
    w5, w6 = load_like(wb, wt + 5 * count, s0), load_like(wb, wt + 6 * count, s0)
    a0, a3, a6, a9 = opaque(a), opaque(a + 3 * gap), opaque(a + 6 * gap), opaque(a + 9 * gap)
    a12, a15, a18 = opaque(a + 12 * gap), opaque(a + 15 * gap), opaque(a + 18 * gap)
    s0 = vfma(load_like(x, a0, s0), w0, s0)
    s0 = vfma(load_like(x, a0 + gap, s0), w1, s0)
    i = load_like(x, a0 + 2 * gap, s0)
    s0, s1 = vfma(i, w2, s0), vfma(i, w0, s1)
    i = load_like(x, a3, s0)
    s0, s1 = vfma(i, w3, s0), vfma(i, w1, s1)
    i = load_like(x, a3 + gap, s0)
    s0, s1, s2 = vfma(i, w4, s0), vfma(i, w2, s1), vfma(i, w0, s2)
    i = load_like(x, a3 + 2 * gap, s0)
    s0, s1, s2 = vfma(i, w5, s0), vfma(i, w3, s1), vfma(i, w1, s2)
    i = load_like(x, a6, s0)
    s0, s1, s2, s3 = vfma(i, w6, s0), vfma(i, w4, s1), vfma(i, w2, s2), vfma(i, w0, s3)
    i = load_like(x, a6 + gap, s0)
    s1, s2, s3 = vfma(i, w5, s1), vfma(i, w3, s2), vfma(i, w1, s3)
    i = load_like(x, a6 + 2 * gap, s0)
    s1, s2, s3, s4 = vfma(i, w6, s1), vfma(i, w4, s2), vfma(i, w2, s3), vfma(i, w0, s4)
    i = load_like(x, a9, s0)
    s2, s3, s4 = vfma(i, w5, s2), vfma(i, w3, s3), vfma(i, w1, s4)
    i = load_like(x, a9 + gap, s0)
    s2, s3, s4, s5 = vfma(i, w6, s2), vfma(i, w4, s3), vfma(i, w2, s4), vfma(i, w0, s5)
    i = load_like(x, a9 + 2 * gap, s0)
    s3, s4, s5 = vfma(i, w5, s3), vfma(i, w3, s4), vfma(i, w1, s5)
    i = load_like(x, a12, s0)
    s3, s4, s5, s6 = vfma(i, w6, s3), vfma(i, w4, s4), vfma(i, w2, s5), vfma(i, w0, s6)
    i = load_like(x, a12 + gap, s0)
    s4, s5, s6 = vfma(i, w5, s4), vfma(i, w3, s5), vfma(i, w1, s6)
    i = load_like(x, a12 + 2 * gap, s0)
    s4, s5, s6, s7 = vfma(i, w6, s4), vfma(i, w4, s5), vfma(i, w2, s6), vfma(i, w0, s7)
    i = load_like(x, a15, s0)
    s5, s6, s7 = vfma(i, w5, s5), vfma(i, w3, s6), vfma(i, w1, s7)
    i = load_like(x, a15 + gap, s0)
    s5, s6, s7 = vfma(i, w6, s5), vfma(i, w4, s6), vfma(i, w2, s7)
    i = load_like(x, a15 + 2 * gap, s0)
    s6, s7 = vfma(i, w5, s6), vfma(i, w3, s7)
    i = load_like(x, a18, s0)
    s6, s7 = vfma(i, w6, s6), vfma(i, w4, s7)
    s7 = vfma(load_like(x, a18 + gap, s0), w5, s7)
    s7 = vfma(load_like(x, a18 + 2 * gap, s0), w6, s7)
    return s0, s1, s2, s3, s4, s5, s6, s7


@kernel(inline=True)
def _step_7x7_s2(zero, x, wbs, out, o, a, r_lo, r_hi, row_gap, wt):
    """Eight consecutive output pixels of a 7x7 filter at horizontal stride 2 (undilated), as :func:`_step_5x5_s2`
    (:func:`_row_taps_7x7_s2`)."""
    count, c = lanes_like(zero), out.shape[3]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
    for r in range(r_lo, r_hi):
        s0, s1, s2, s3, s4, s5, s6, s7 = _row_taps_7x7_s2(s0, s1, s2, s3, s4, s5, s6, s7, x, a + r * row_gap, c, wbs,
                                                          wt + 7 * r * count)
    _store_eight(out, o, c, s0, s1, s2, s3, s4, s5, s6, s7)


@kernel(inline=True)
def _step_3x3(zero, x, wbs, out, o, o_gap, a, r_lo, r_hi, row_gap, gap, wt, stride_w):
    """Eight output pixels of a 3x3 filter, as :func:`step_5x5` (horizontal stride 1, pixels ``o_gap`` apart) or
    :func:`_step_5x5_s2` (stride 2, consecutive)."""
    count = lanes_like(zero)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
    for r in range(r_lo, r_hi):
        if stride_w == 1:
            s0, s1, s2, s3, s4, s5, s6, s7 = _row_taps_3x3(s0, s1, s2, s3, s4, s5, s6, s7, x, a + r * row_gap, gap,
                                                           wbs, wt + 3 * r * count)
        else:
            s0, s1, s2, s3, s4, s5, s6, s7 = _row_taps_3x3_s2(s0, s1, s2, s3, s4, s5, s6, s7, x, a + r * row_gap, gap,
                                                              wbs, wt + 3 * r * count)
    _store_eight(out, o, o_gap, s0, s1, s2, s3, s4, s5, s6, s7)


@kernel
def _pixel(z, x, wbs, out, o_row, x_row, row_gap, r_lo, r_hi, j, in_w, stride_w, dil_w, pad_left, kw):
    """Output pixel ``j`` of one row (as :func:`_steps`), every channel block, the taps of its window (``kw`` wide)
    inside the input only."""
    c = out.shape[3]
    count = lanes_like(z)
    blocks = (c + count - 1) // count
    taps = kw * kw
    iw0 = j * stride_w - pad_left
    t_lo, t_hi = tap_range(iw0, dil_w, kw, in_w)
    g = 0
    while g + 4 <= blocks:  # four blocks at once: four chains of sums, not one
        k0, k1 = block_start(g * count, 0, c, count), block_start((g + 1) * count, 0, c, count)
        k2, k3 = block_start((g + 2) * count, 0, c, count), block_start((g + 3) * count, 0, c, count)
        a0 = a1 = a2 = a3 = z
        for r in range(r_lo, r_hi):
            for t in range(t_lo, t_hi):
                i, wt = x_row + r * row_gap + (iw0 + t * dil_w) * c, (taps * g + kw * r + t) * count
                a0 = vfma(load_like(x, i + k0, z), load_like(wbs, wt, z), a0)
                a1 = vfma(load_like(x, i + k1, z), load_like(wbs, wt + taps * count, z), a1)
                a2 = vfma(load_like(x, i + k2, z), load_like(wbs, wt + 2 * taps * count, z), a2)
                a3 = vfma(load_like(x, i + k3, z), load_like(wbs, wt + 3 * taps * count, z), a3)
        o = o_row + j * c
        vstore(out, o + k0, a0)
        vstore(out, o + k1, a1)
        vstore(out, o + k2, a2)
        vstore(out, o + k3, a3)
        g += 4
    for h in range(g, blocks):
        k = block_start(h * count, 0, c, count)
        acc = z
        for r in range(r_lo, r_hi):
            for t in range(t_lo, t_hi):
                acc = vfma(load_like(x, x_row + r * row_gap + (iw0 + t * dil_w) * c + k, z),
                           load_like(wbs, (taps * h + kw * r + t) * count, z), acc)
        vstore(out, o_row + j * c + k, acc)


@kernel
def _steps(z, x, wbs, out, o_row, x_row, row_gap, r_lo, r_hi, j_lo, j_hi, stride_w, dil_w, pad_left, kw):
    """The interior pixels ``[j_lo, j_hi)`` of one output row in steps of eight pixels, each step for every channel
    block in turn: at stride 1 a horizontal dilation apart (so that, as at dilation 1, pixel ``p``'s tap ``t`` reads
    column ``p + t`` of the step's twelve; a ``kw`` = 3 filter's: ten), phase by phase of the dilation; at stride 2
    (dilation 1) consecutive, reading nineteen columns (seventeen). A phase's last step overlaps the one before it,
    and a phase of fewer than eight pixels goes pixel by pixel. Output pixel ``j`` is at ``out`` flat index
    ``o_row + j * C``; its filter row ``r`` reads ``x`` from ``x_row + r * row_gap + (j * stride_w - pad_left) * C``,
    for ``r`` in ``[r_lo, r_hi)``; the filters are laid out by block in ``wbs`` (``[blocks, kw * kw, hlanes]``)."""
    c = out.shape[3]
    count = lanes_like(z)
    blocks = (c + count - 1) // count
    step_gap = dil_w if stride_w == 1 else 1  # the step's pixels are this many apart
    gap = step_gap * c
    for phase in range(j_lo, min(j_lo + step_gap, j_hi)):
        last = phase + (j_hi - 1 - phase) // step_gap * step_gap  # the phase's last pixel
        if last - phase < (STEP_PIXELS - 1) * step_gap:
            for j in range(phase, last + 1, step_gap):
                _pixel(z, x, wbs, out, o_row, x_row, row_gap, r_lo, r_hi, j, x.shape[2], stride_w, dil_w, pad_left, kw)
            continue
        j0 = phase
        while j0 <= last:
            j = min(j0, last - (STEP_PIXELS - 1) * step_gap)  # the last step overlaps the one before it
            for g in range(blocks):
                k = block_start(g * count, 0, c, count)
                o, a = o_row + j * c + k, x_row + (j * stride_w - pad_left) * c + k
                if kw == 7:  # stride 2 only
                    _step_7x7_s2(z, x, wbs, out, o, a, r_lo, r_hi, row_gap, 49 * g * count)
                elif kw == 3:
                    _step_3x3(z, x, wbs, out, o, gap if stride_w == 1 else c, a, r_lo, r_hi, row_gap, gap, 9 * g * count,
                              stride_w)
                elif stride_w == 1:
                    step_5x5(z, x, wbs, out, o, gap, a, r_lo, r_hi, row_gap, gap, 25 * g * count)
                else:
                    _step_5x5_s2(z, x, wbs, out, o, a, r_lo, r_hi, row_gap, 25 * g * count)
            j0 += STEP_PIXELS * step_gap


@kernel
def _output_rows(z, x, wbs, out, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, kw):
    """Output rows ``[row_begin, row_end)`` (counted over the batch) of every channel block, a ``kw`` x ``kw`` filter."""
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    j_lo, j_hi = interior(out_w, in_w, kw, stride_w, dil_w, pad_left)
    for row in range(row_begin, row_end):
        b, i = row // out_h, row % out_h
        ih0 = i * stride_h - pad_top
        r_lo, r_hi = tap_range(ih0, dil_h, kw, in_h)
        o_row = row * out_w * c
        x_row = (b * in_h + ih0) * in_w * c  # may be negative: filter rows r_lo and on are inside the input
        row_gap = dil_h * in_w * c
        for j in range(j_lo):
            _pixel(z, x, wbs, out, o_row, x_row, row_gap, r_lo, r_hi, j, in_w, stride_w, dil_w, pad_left, kw)
        _steps(z, x, wbs, out, o_row, x_row, row_gap, r_lo, r_hi, j_lo, j_hi, stride_w, dil_w, pad_left, kw)
        for j in range(j_hi, out_w):
            _pixel(z, x, wbs, out, o_row, x_row, row_gap, r_lo, r_hi, j, in_w, stride_w, dil_w, pad_left, kw)


@kernel
def depthwise_nhwc_forward_5x5_avx2_rows(x, w, out, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top,
                                         pad_left, whole=False):
    """Output rows ``[row_begin, row_end)`` (over the batch) of the forward of ``x`` ``[N, in_h, in_w, C]`` (``C`` at
    least half a vector) with ``w`` ``[5, 5, C]`` (or ``[3, 3, C]``) into ``out`` ``[N, out_h, out_w, C]``, horizontal
    stride 1, or 2 at horizontal dilation 1; or ``[7, 7, C]`` at horizontal stride 2 (undilated) only.  In channel
    blocks of half a vector, or with ``whole`` of a whole one (``C`` at least a vector)."""
    x, w, out = borrowed(x), borrowed(w), borrowed(out)
    if whole:
        _forward_rows(vzeros(x), x, w, out, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)
    else:
        _forward_rows(hzeros(x), x, w, out, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)


@kernel
def _forward_rows(z, x, w, out, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):
    """:func:`depthwise_nhwc_forward_5x5_avx2_rows` in channel blocks as wide as ``z``."""
    wbs = _filters_by_block(z, w, x)
    # constants, for LLVM to fold into the steps
    if w.shape[0] == 7:  # horizontal stride 2, undilated
        if stride_h == 2 and dil_h == 1:
            _output_rows(z, x, wbs, out, row_begin, row_end, 2, 2, 1, 1, pad_top, pad_left, 7)
        else:
            _output_rows(z, x, wbs, out, row_begin, row_end, stride_h, 2, dil_h, 1, pad_top, pad_left, 7)
    elif w.shape[0] == 3:
        if stride_h == stride_w == dil_h == dil_w == 1:
            _output_rows(z, x, wbs, out, row_begin, row_end, 1, 1, 1, 1, pad_top, pad_left, 3)
        elif stride_h == stride_w == 2 and dil_h == dil_w == 1:
            _output_rows(z, x, wbs, out, row_begin, row_end, 2, 2, 1, 1, pad_top, pad_left, 3)
        else:
            _output_rows(z, x, wbs, out, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, 3)
    elif stride_h == stride_w == dil_h == dil_w == 1:
        _output_rows(z, x, wbs, out, row_begin, row_end, 1, 1, 1, 1, pad_top, pad_left, 5)
    elif stride_h == stride_w == 2 and dil_h == dil_w == 1:
        _output_rows(z, x, wbs, out, row_begin, row_end, 2, 2, 1, 1, pad_top, pad_left, 5)
    else:
        _output_rows(z, x, wbs, out, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, 5)


@kernel(parallel=True)
def depthwise_nhwc_forward_5x5_avx2_parallel(x, w, out, n_chunks, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left,
                                             whole=False):
    """:func:`depthwise_nhwc_forward_5x5_avx2_rows` over all output rows, in ``n_chunks`` parallel runs."""
    rows = out.shape[0] * out.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_forward_5x5_avx2_rows(x, w, out, t * rows // n_chunks, (t + 1) * rows // n_chunks, stride_h,
                                             stride_w, dil_h, dil_w, pad_top, pad_left, whole)


# --------------------------------------------------------------------------- the input gradient at stride 2


@kernel(inline=True)
def _s2_row_taps(s0, s1, s2, s3, s4, s5, s6, s7, dy, a, gap, wb, wt):
    """Adds one filter row's products to the input gradient of eight consecutive pixels, columns ``2m .. 2m + 7`` of
    the stride-2 forward's padded input (``m``: the ``dy`` column two past ``a``, columns ``gap`` apart): pixel
    ``2m + 2q`` takes taps 0, 2 and 4 of ``dy`` columns ``m + q``, ``m + q - 1`` and ``m + q - 2``, pixel
    ``2m + 2q + 1`` taps 1 and 3 of columns ``m + q`` and ``m + q - 1``; the six columns loaded once each."""
    count = lanes_like(s0)
    w0, w1, w2 = load_like(wb, wt, s0), load_like(wb, wt + count, s0), load_like(wb, wt + 2 * count, s0)
    w3, w4 = load_like(wb, wt + 3 * count, s0), load_like(wb, wt + 4 * count, s0)
    a0, a3 = opaque(a), opaque(a + 3 * gap)
    i = load_like(dy, a0, s0)
    s0 = vfma(i, w4, s0)
    i = load_like(dy, a0 + gap, s0)
    s0, s1, s2 = vfma(i, w2, s0), vfma(i, w3, s1), vfma(i, w4, s2)
    i = load_like(dy, a0 + 2 * gap, s0)
    s0, s1, s2, s3, s4 = vfma(i, w0, s0), vfma(i, w1, s1), vfma(i, w2, s2), vfma(i, w3, s3), vfma(i, w4, s4)
    i = load_like(dy, a3, s0)
    s2, s3, s4, s5, s6 = vfma(i, w0, s2), vfma(i, w1, s3), vfma(i, w2, s4), vfma(i, w3, s5), vfma(i, w4, s6)
    i = load_like(dy, a3 + gap, s0)
    s4, s5, s6, s7 = vfma(i, w0, s4), vfma(i, w1, s5), vfma(i, w2, s6), vfma(i, w3, s7)
    i = load_like(dy, a3 + 2 * gap, s0)
    s6, s7 = vfma(i, w0, s6), vfma(i, w1, s7)
    return s0, s1, s2, s3, s4, s5, s6, s7


@kernel(inline=True)
def _s2_row_taps3(s0, s1, s2, s3, s4, s5, s6, s7, dy, a, gap, wb, wt):
    """As :func:`_s2_row_taps`, a filter row three wide (``m``: the ``dy`` column one past ``a``): pixel ``2m + 2q``
    takes taps 0 and 2 of ``dy`` columns ``m + q`` and ``m + q - 1``, pixel ``2m + 2q + 1`` tap 1 of column ``m + q``;
    the five columns loaded once each (eight loads per twelve multiply-adds)."""
    count = lanes_like(s0)
    w0, w1, w2 = load_like(wb, wt, s0), load_like(wb, wt + count, s0), load_like(wb, wt + 2 * count, s0)
    a0, a3 = opaque(a), opaque(a + 3 * gap)
    i = load_like(dy, a0, s0)
    s0 = vfma(i, w2, s0)
    i = load_like(dy, a0 + gap, s0)
    s0, s1, s2 = vfma(i, w0, s0), vfma(i, w1, s1), vfma(i, w2, s2)
    i = load_like(dy, a0 + 2 * gap, s0)
    s2, s3, s4 = vfma(i, w0, s2), vfma(i, w1, s3), vfma(i, w2, s4)
    i = load_like(dy, a3, s0)
    s4, s5, s6 = vfma(i, w0, s4), vfma(i, w1, s5), vfma(i, w2, s6)
    i = load_like(dy, a3 + gap, s0)
    s6, s7 = vfma(i, w0, s6), vfma(i, w1, s7)
    return s0, s1, s2, s3, s4, s5, s6, s7


@kernel(inline=True)
def _s2_row_taps7(s0, s1, s2, s3, s4, s5, s6, s7, dy, a, gap, wb, wt):
    """As :func:`_s2_row_taps`, a filter row seven wide (``m``: the ``dy`` column three past ``a``): pixel ``2m + 2q``
    takes taps 0, 2, 4 and 6 of ``dy`` columns ``m + q`` down to ``m + q - 3``, pixel ``2m + 2q + 1`` taps 1, 3 and 5
    of columns ``m + q`` down to ``m + q - 2``; the seven columns loaded once each (fourteen loads per 28
    multiply-adds; eight sums, seven weights and the column: the sixteen registers)."""
    count = lanes_like(s0)
    w0, w1, w2 = load_like(wb, wt, s0), load_like(wb, wt + count, s0), load_like(wb, wt + 2 * count, s0)
    w3, w4 = load_like(wb, wt + 3 * count, s0), load_like(wb, wt + 4 * count, s0)
    w5, w6 = load_like(wb, wt + 5 * count, s0), load_like(wb, wt + 6 * count, s0)
    a0, a3, a6 = opaque(a), opaque(a + 3 * gap), opaque(a + 6 * gap)
    i = load_like(dy, a0, s0)
    s0 = vfma(i, w6, s0)
    i = load_like(dy, a0 + gap, s0)
    s0, s1, s2 = vfma(i, w4, s0), vfma(i, w5, s1), vfma(i, w6, s2)
    i = load_like(dy, a0 + 2 * gap, s0)
    s0, s1, s2, s3, s4 = vfma(i, w2, s0), vfma(i, w3, s1), vfma(i, w4, s2), vfma(i, w5, s3), vfma(i, w6, s4)
    i = load_like(dy, a3, s0)
    s0, s1, s2, s3 = vfma(i, w0, s0), vfma(i, w1, s1), vfma(i, w2, s2), vfma(i, w3, s3)
    s4, s5, s6 = vfma(i, w4, s4), vfma(i, w5, s5), vfma(i, w6, s6)
    i = load_like(dy, a3 + gap, s0)
    s2, s3, s4, s5, s6, s7 = vfma(i, w0, s2), vfma(i, w1, s3), vfma(i, w2, s4), vfma(i, w3, s5), vfma(i, w4, s6), vfma(i, w5, s7)
    i = load_like(dy, a3 + 2 * gap, s0)
    s4, s5, s6, s7 = vfma(i, w0, s4), vfma(i, w1, s5), vfma(i, w2, s6), vfma(i, w3, s7)
    i = load_like(dy, a6, s0)
    s6, s7 = vfma(i, w0, s6), vfma(i, w1, s7)
    return s0, s1, s2, s3, s4, s5, s6, s7


@kernel
def _s2_pixel(z, dy, wbs, dx, o, dy_row, row_gap, r_first, r_end, u, out_w, kw):
    """Input-gradient pixel at padded column ``u``, flat index ``o`` of ``dx``, every channel block: filter rows
    ``r_first, r_first + 2, ... < r_end`` (``dy`` row of filter row ``r`` at ``dy_row - r // 2 * row_gap``, rows
    inside ``dy`` only), the taps whose ``dy`` column is inside ``dy``; a square filter ``kw`` wide."""
    c = dx.shape[3]
    count = lanes_like(z)
    taps = kw * kw
    for g in range((c + count - 1) // count):
        k = block_start(g * count, 0, c, count)
        acc = z
        for r in range(r_first, r_end, 2):
            for t in range(u % 2, kw, 2):
                j = (u - t) // 2
                if 0 <= j < out_w:
                    acc = vfma(load_like(dy, dy_row - r // 2 * row_gap + j * c + k, z),
                               load_like(wbs, (taps * g + kw * r + t) * count, z), acc)
        vstore(dx, o + k, acc)


@kernel
def _s2_input_gradient_rows(z, dy, wbs, dx, row_begin, row_end, pad_top, pad_left, kw):
    """Input-gradient rows ``[row_begin, row_end)`` (over the batch) of a stride-2 layer of a square filter ``kw``
    (3, 5 or 7) wide, every channel block."""
    out_h, out_w, c = dy.shape[1], dy.shape[2], dy.shape[3]
    in_h, in_w = dx.shape[1], dx.shape[2]
    count = lanes_like(z)
    blocks = (c + count - 1) // count
    taps = kw * kw
    reach = (kw - 1) // 2  # a step from dy column m reads columns m - reach .. m + 3
    row_gap = out_w * c
    # steps of eight pixels from dy column m: the first whose columns are all inside dx and dy, and the last
    # (overlapping the one before it)
    m_lo, m_last = parity_steps(out_w, in_w, pad_left, kw, 8)
    steps = m_last >= m_lo
    # the padded columns the steps cover (none without steps)
    u_steps_lo, u_steps_hi = (2 * m_lo, 2 * m_last + 8) if steps else (in_w + pad_left, in_w + pad_left)
    for row in range(row_begin, row_end):
        b, y = row // in_h, row % in_h
        v = y + pad_top  # the padded input row
        r_lo, r_end = parity_rows(v, out_h, kw)  # filter rows r_lo, r_lo + 2, .. < r_end: dy row (v - r) / 2
        dy_row = (b * out_h * out_w + v // 2 * out_w) * c  # dy row v // 2: filter row r reads dy row (v - r) // 2
        o_row = row * in_w * c
        for xx in range(in_w):
            u = xx + pad_left
            if u < u_steps_lo or u >= u_steps_hi:
                _s2_pixel(z, dy, wbs, dx, o_row + xx * c, dy_row, row_gap, r_lo, r_end, u, out_w, kw)
        if not steps:
            continue
        m0 = m_lo
        while m0 <= m_last + 3:  # the steps from m_lo and m_last cover dx columns 2 m_lo .. 2 m_last + 7
            m = min(m0, m_last)  # the last step overlaps the one before it
            for g in range(blocks):
                k = block_start(g * count, 0, c, count)
                s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
                a = dy_row + (m - reach) * c + k
                for r in range(r_lo, r_end, 2):
                    if kw == 7:
                        s0, s1, s2, s3, s4, s5, s6, s7 = _s2_row_taps7(s0, s1, s2, s3, s4, s5, s6, s7, dy,
                                                                       a - r // 2 * row_gap, c, wbs,
                                                                       (taps * g + kw * r) * count)
                    elif kw == 3:
                        s0, s1, s2, s3, s4, s5, s6, s7 = _s2_row_taps3(s0, s1, s2, s3, s4, s5, s6, s7, dy,
                                                                       a - r // 2 * row_gap, c, wbs,
                                                                       (taps * g + kw * r) * count)
                    else:
                        s0, s1, s2, s3, s4, s5, s6, s7 = _s2_row_taps(s0, s1, s2, s3, s4, s5, s6, s7, dy,
                                                                      a - r // 2 * row_gap, c, wbs,
                                                                      (taps * g + kw * r) * count)
                o = o_row + (2 * m - pad_left) * c + k
                _store_eight(dx, o, c, s0, s1, s2, s3, s4, s5, s6, s7)
            m0 += 4


@kernel
def depthwise_nhwc_backprop_input_5x5_s2_avx2_rows(w, dy, dx, row_begin, row_end, pad_top, pad_left, whole=False):
    """Rows ``[row_begin, row_end)`` (over the batch) of the input gradient ``dx`` ``[N, in_h, in_w, C]`` of a
    stride-2 layer (dilation 1) with filter ``w`` ``[5, 5, C]`` (also ``[7, 7, C]``, or ``[3, 3, C]``; ``C`` at least
    half a vector), from ``dy`` ``[N, out_h, out_w, C]``: per ``dx`` row the filter rows of its parity, eight pixels
    per step (six ``dy`` columns, :func:`_s2_row_taps`: eleven loads per twenty multiply-adds; seven of a 7x7 filter,
    :func:`_s2_row_taps7`; five of a 3x3, :func:`_s2_row_taps3`), the pixels left one at a time.  In channel blocks
    of half a vector, or with ``whole`` of a whole one (``C`` at least a vector)."""
    w, dy, dx = borrowed(w), borrowed(dy), borrowed(dx)
    if whole:
        _s2_input_gradient(vzeros(dy), w, dy, dx, row_begin, row_end, pad_top, pad_left)
    else:
        _s2_input_gradient(hzeros(dy), w, dy, dx, row_begin, row_end, pad_top, pad_left)


@kernel
def _s2_input_gradient(z, w, dy, dx, row_begin, row_end, pad_top, pad_left):
    """:func:`depthwise_nhwc_backprop_input_5x5_s2_avx2_rows` in channel blocks as wide as ``z``."""
    wbs = _filters_by_block(z, w, dy)
    # the filter width as a constant, for LLVM to fold into the steps
    if w.shape[0] == 7:
        _s2_input_gradient_rows(z, dy, wbs, dx, row_begin, row_end, pad_top, pad_left, 7)
    elif w.shape[0] == 3:
        _s2_input_gradient_rows(z, dy, wbs, dx, row_begin, row_end, pad_top, pad_left, 3)
    else:
        _s2_input_gradient_rows(z, dy, wbs, dx, row_begin, row_end, pad_top, pad_left, 5)


@kernel(parallel=True)
def depthwise_nhwc_backprop_input_5x5_s2_avx2_parallel(w, dy, dx, n_chunks, pad_top, pad_left, whole=False):
    """:func:`depthwise_nhwc_backprop_input_5x5_s2_avx2_rows` over all rows of ``dx``, in ``n_chunks`` parallel
    runs."""
    rows = dx.shape[0] * dx.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_backprop_input_5x5_s2_avx2_rows(w, dy, dx, t * rows // n_chunks, (t + 1) * rows // n_chunks,
                                                       pad_top, pad_left, whole)
