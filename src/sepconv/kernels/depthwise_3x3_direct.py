"""The depthwise forward of a 3x3 filter at horizontal stride 1 or 2 (any vertical stride, dilations and padding; no
horizontal dilation at stride 2), its input gradient at stride 2 and its filter gradient at any stride, NHWC, read
straight from the arrays, for CPUs of sixteen vector registers (AVX2): four pixels per step, their sums in
registers, one channel block (one 64-byte vector: two AVX2 registers) after another.

Per filter row a step loads the six input columns its pixels reach and the row's three weights, and adds twelve
multiply-adds to its four sums (:func:`_row_taps`): eight registers of sums, six of weights and two for the column
loaded, the sixteen an AVX2 core has. At a horizontal dilation ``d`` the step's pixels are ``d`` apart, so that
pixel ``p``'s tap ``t`` still reads column ``p + t`` of six (the row's pixels go phase by phase of the dilation);
at stride 2 column ``2p + t`` of nine (:func:`_row_taps_s2`).
The columns are addressed from two bases three columns apart made opaque to LLVM
(:func:`~sepconv.kernels._simd.opaque`), so that each is one base plus the column gap times 1 or 2, which x86
encodes in the load (as :mod:`sepconv.kernels.depthwise_5x5_direct` does for eight pixels, whose sums alone take
all sixteen AVX2 registers).

A row's steps cover its interior (the pixels whose taps are all inside the input), each step for every channel
block in turn, and a phase's last step overlaps the one before it (:func:`_steps`); the border pixels, and phases
narrower than a step, go one at a time with the taps inside the input only (:func:`_pixel`); filter rows outside
the input are skipped. Channel blocks are whole vectors: a last partial block overlaps the one before it
(:func:`~sepconv.kernels._window.block_start`), so the input needs a vector of channels.

The input gradient at stride 2 (undilated) takes, for each of its rows, the filter rows of the row's parity, and
four pixels per step: two even ones that take taps 0 and 2, two odd ones that take tap 1, from three columns of
``dy`` (:func:`_s2_row_taps`); the border pixels go one at a time (:func:`_s2_pixel`). (At stride 1 the input
gradient is the forward of ``dy`` with the filter turned half a turn.)

The filter gradient (any stride) goes the same way, four interior pixels per step for every channel block in
turn, a step's products for one filter row added to that row's three sums of the block, kept in a buffer by block
(:func:`_step_products`: twelve input vectors and four of ``dy`` loaded per twelve multiply-adds; at stride 1
:func:`_step_products_s1`, the four of ``dy`` loaded once for the three filter rows and each of a row's six input
columns once, 0.91-0.93 of the time on 8x28x28x192, 1x56x56x144, 1x112x112x32 and 1x33x33x576 at dilation 2,
about the same on 8x56x56x144 and 8x14x14x384); the border
pixels and those left over go one at a time (:func:`_pixel_products`); each thread's sums are then stored into its
partial gradient.

:mod:`sepconv.fast.depthwise` sends it, on CPUs without AVX-512 (:mod:`sepconv.fast.registers`), the forward (and
stride-1 input gradient) of 3x3 layers at horizontal stride 1 or 2, where it takes 0.5-0.8 of the small-image
kernel's time (whose copy into planes cost a third of it on large planes), their stride-2 input gradient (0.44-0.94
of the parity kernel's time) and their filter gradient; :mod:`sepconv.kernels.depthwise_multiplier` runs the bands
of a channel multiplier's repeated rows on the forward and input-gradient rows functions.

Examples
--------
A 3x3 filter of ones over a 4x6 image of ones, SAME padding, stride 1: each output counts its taps inside the image.

>>> import numpy as np
>>> x, w = np.ones((1, 4, 6, 16), np.float32), np.ones((3, 3, 16), np.float32)
>>> out = np.empty((1, 4, 6, 16), np.float32)
>>> depthwise_nhwc_forward_3x3_direct_parallel(x, w, out, 1, 1, 1, 1, 1, 1, 1, False)  # chunks, strides, dilations, pads
>>> out[0, :, :, 0]
array([[4., 6., 6., 6., 6., 4.],
       [6., 9., 9., 9., 9., 6.],
       [6., 9., 9., 9., 9., 6.],
       [4., 6., 6., 6., 6., 4.]], dtype=float32)
"""

from __future__ import annotations

from numba import prange

from ._borrowed import borrowed
from ._jit import kernel
from ._simd import empty_on_line, lanes, opaque, store_fence, vfma, vload, vstore, vstore_stream, vzeros
from ._window import block_start, interior, parity_rows, parity_steps, tap_range
from .depthwise import aligned_shift
from .depthwise_small_image import pack_filters

# Output pixels per step: their sums, a filter row's three weights and one input column fill an AVX2 core's
# sixteen registers.
STEP_PIXELS = 4


@kernel(inline=True)
def _block_count(c, count, shift):
    """How many channel blocks a pixel takes: whole vectors from channel 0 (:func:`_block_first`), one more with the
    input off a line (``shift``, :func:`~sepconv.kernels.depthwise.aligned_shift`; 0: on a line)."""
    return (c + count - 1) // count + (1 if shift > 0 else 0)


@kernel(inline=True)
def _block_first(g, c, count, shift):
    """The first channel of block ``g``: blocks ``count`` channels apart, a last partial one overlapping the one
    before it (:func:`~sepconv.kernels._window.block_start`); with ``shift`` (C a whole number of vectors, the input
    ``shift`` channels before a line) a first block at channel 0 and the others from channel ``shift``, so that all
    but the first and last load whole cache lines (the last ends at ``C``, overlapping the one before it)."""
    if shift == 0 or g == 0:
        return block_start(g * count, 0, c, count)
    return block_start(shift + (g - 1) * count, 0, c, count)


@kernel
def _filters_by_block(w, like, shift=0):
    """``w`` ``[3, 3, C]`` laid out by channel block (:func:`_block_first`), ``[blocks, 9, lanes]``, on a cache
    line."""
    c = w.shape[2]
    count = lanes(like)
    blocks = _block_count(c, count, shift)
    wbs = empty_on_line(blocks * 9 * count, like)
    for g in range(blocks):
        pack_filters(w, _block_first(g, c, count, shift), 1, wbs[g * 9 * count:(g + 1) * 9 * count])
    return wbs


@kernel(inline=True)
def _row_taps(s0, s1, s2, s3, x, a, gap, wb, wt):
    """Adds one filter row (weights ``wt .. wt + 2`` vectors of ``wb``) to the sums of four pixels ``gap`` apart
    whose first tap reads ``x`` from ``a`` and whose taps are ``gap`` apart too (stride 1; at a dilation, pixels a
    dilation apart): the six columns loaded once each."""
    count = lanes(wb)
    w0, w1, w2 = vload(wb, wt), vload(wb, wt + count), vload(wb, wt + 2 * count)
    a0, a3 = opaque(a), opaque(a + 3 * gap)
    i = vload(x, a0)
    s0 = vfma(i, w0, s0)
    i = vload(x, a0 + gap)
    s0, s1 = vfma(i, w1, s0), vfma(i, w0, s1)
    i = vload(x, a0 + 2 * gap)
    s0, s1, s2 = vfma(i, w2, s0), vfma(i, w1, s1), vfma(i, w0, s2)
    i = vload(x, a3)
    s1, s2, s3 = vfma(i, w2, s1), vfma(i, w1, s2), vfma(i, w0, s3)
    i = vload(x, a3 + gap)
    s2, s3 = vfma(i, w2, s2), vfma(i, w1, s3)
    i = vload(x, a3 + 2 * gap)
    s3 = vfma(i, w2, s3)
    return s0, s1, s2, s3


@kernel(inline=True)
def _row_taps_s2(s0, s1, s2, s3, x, a, gap, wb, wt):
    """:func:`_row_taps` at horizontal stride 2 (dilation 1): pixel ``p``'s tap ``t`` reads column ``2p + t`` of
    the nine the step's pixels reach (``gap`` apart), each loaded once."""
    count = lanes(wb)
    w0, w1, w2 = vload(wb, wt), vload(wb, wt + count), vload(wb, wt + 2 * count)
    a0, a3, a6 = opaque(a), opaque(a + 3 * gap), opaque(a + 6 * gap)
    s0 = vfma(vload(x, a0), w0, s0)
    s0 = vfma(vload(x, a0 + gap), w1, s0)
    i = vload(x, a0 + 2 * gap)
    s0, s1 = vfma(i, w2, s0), vfma(i, w0, s1)
    s1 = vfma(vload(x, a3), w1, s1)
    i = vload(x, a3 + gap)
    s1, s2 = vfma(i, w2, s1), vfma(i, w0, s2)
    s2 = vfma(vload(x, a3 + 2 * gap), w1, s2)
    i = vload(x, a6)
    s2, s3 = vfma(i, w2, s2), vfma(i, w0, s3)
    s3 = vfma(vload(x, a6 + gap), w1, s3)
    s3 = vfma(vload(x, a6 + 2 * gap), w2, s3)
    return s0, s1, s2, s3


@kernel
def _pixel(x, wbs, out, o_row, x_row, row_gap, r_lo, r_hi, j, in_w, stride_w, dil_w, pad_left, shift):
    """Output pixel ``j`` of one row (as :func:`_steps`), every channel block, the taps of its window inside the
    input only."""
    c = out.shape[3]
    count = lanes(x)
    iw0 = j * stride_w - pad_left
    t_lo, t_hi = tap_range(iw0, dil_w, 3, in_w)
    for g in range(_block_count(c, count, shift)):
        k = _block_first(g, c, count, shift)
        acc = vzeros(x)
        for r in range(r_lo, r_hi):
            for t in range(t_lo, t_hi):
                acc = vfma(vload(x, x_row + r * row_gap + (iw0 + t * dil_w) * c + k),
                           vload(wbs, (9 * g + 3 * r + t) * count), acc)
        vstore(out, o_row + j * c + k, acc)


@kernel
def _steps(x, wbs, out, o_row, x_row, row_gap, r_lo, r_hi, j_lo, j_hi, stride_w, dil_w, pad_left, stream, shift):
    """The interior pixels ``[j_lo, j_hi)`` of one output row in steps of four pixels; at stride 1 a horizontal
    dilation apart (so that, as at dilation 1, pixel ``p``'s tap ``t`` reads column ``p + t`` of the step's six),
    phase by phase of the dilation; at stride 2 (dilation 1) consecutive, reading nine columns. A phase's last step
    overlaps the one before it, and a phase of fewer than four pixels goes pixel by pixel. Each step runs for every
    channel block in turn (in the order of memory: 1x147x147x64 and 8x56x56x144, 2 threads, 0.69 and 0.77 of the
    time block by block). Output pixel ``j`` is at ``out`` flat index ``o_row + j * C``; its filter row ``r``
    reads ``x`` from ``x_row + r * row_gap + (j * stride_w - pad_left) * C``, for ``r`` in ``[r_lo, r_hi)``; the
    filters are laid out by block in ``wbs`` (``[blocks, 9, lanes]``, blocks as :func:`_block_first`)."""
    c = out.shape[3]
    count = lanes(x)
    blocks = _block_count(c, count, shift)
    step_gap = dil_w if stride_w == 1 else 1  # the step's pixels are this many apart
    gap = step_gap * c
    for phase in range(j_lo, min(j_lo + step_gap, j_hi)):
        last = phase + (j_hi - 1 - phase) // step_gap * step_gap  # the phase's last pixel
        if last - phase < (STEP_PIXELS - 1) * step_gap:
            for j in range(phase, last + 1, step_gap):
                _pixel(x, wbs, out, o_row, x_row, row_gap, r_lo, r_hi, j, x.shape[2], stride_w, dil_w, pad_left,
                       shift)
            continue
        j0 = phase
        while j0 <= last:
            j = min(j0, last - (STEP_PIXELS - 1) * step_gap)  # the last step overlaps the one before it
            for g in range(blocks):
                k = _block_first(g, c, count, shift)
                s0 = s1 = s2 = s3 = vzeros(x)
                a = x_row + (j * stride_w - pad_left) * c + k
                for r in range(r_lo, r_hi):
                    if stride_w == 1:
                        s0, s1, s2, s3 = _row_taps(s0, s1, s2, s3, x, a + r * row_gap, gap, wbs, (9 * g + 3 * r) * count)
                    else:
                        s0, s1, s2, s3 = _row_taps_s2(s0, s1, s2, s3, x, a + r * row_gap, c, wbs,
                                                      (9 * g + 3 * r) * count)
                o = o_row + j * c + k
                if stream:  # past the caches
                    vstore_stream(out, o, s0)
                    vstore_stream(out, o + gap, s1)
                    vstore_stream(out, o + 2 * gap, s2)
                    vstore_stream(out, o + 3 * gap, s3)
                else:
                    vstore(out, o, s0)
                    vstore(out, o + gap, s1)
                    vstore(out, o + 2 * gap, s2)
                    vstore(out, o + 3 * gap, s3)
            j0 += STEP_PIXELS * step_gap


@kernel
def _output_rows(x, wbs, out, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, stream,
                 shift):
    """Output rows ``[row_begin, row_end)`` (counted over the batch) of every channel block, the filters laid out by
    block in ``wbs`` (``[blocks, 9, lanes]``)."""
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    j_lo, j_hi = interior(out_w, in_w, 3, stride_w, dil_w, pad_left)
    for row in range(row_begin, row_end):
        b, i = row // out_h, row % out_h
        ih0 = i * stride_h - pad_top
        r_lo, r_hi = tap_range(ih0, dil_h, 3, in_h)
        o_row = row * out_w * c
        x_row = (b * in_h + ih0) * in_w * c  # may be negative: filter rows r_lo and on are inside the input
        row_gap = dil_h * in_w * c
        for j in range(j_lo):
            _pixel(x, wbs, out, o_row, x_row, row_gap, r_lo, r_hi, j, in_w, stride_w, dil_w, pad_left, shift)
        _steps(x, wbs, out, o_row, x_row, row_gap, r_lo, r_hi, j_lo, j_hi, stride_w, dil_w, pad_left, stream, shift)
        for j in range(j_hi, out_w):
            _pixel(x, wbs, out, o_row, x_row, row_gap, r_lo, r_hi, j, in_w, stride_w, dil_w, pad_left, shift)


@kernel
def depthwise_nhwc_forward_3x3_direct_rows(x, w, out, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top,
                                           pad_left, stream, aligned=False):
    """Output rows ``[row_begin, row_end)`` (over the batch) of the forward of ``x`` ``[N, in_h, in_w, C]`` (``C`` at
    least a vector) with ``w`` ``[3, 3, C]`` into ``out`` ``[N, out_h, out_w, C]``, horizontal stride 1, or 2 at
    horizontal dilation 1.  With ``stream`` the steps store past the caches (``out`` on a 64-byte line, ``C`` a
    whole number of vectors).  With ``aligned`` (and not ``stream``) the channel blocks but a pixel's first and last
    start on the input's lines (:func:`_block_first`; ``out`` at the input's offset from a line)."""
    x, w, out = borrowed(x), borrowed(w), borrowed(out)
    shift = aligned_shift(x) if aligned and not stream else 0
    wbs = _filters_by_block(w, x, shift)
    # constants, for LLVM to fold into the steps
    if stride_h == stride_w == dil_h == dil_w == 1:
        _output_rows(x, wbs, out, row_begin, row_end, 1, 1, 1, 1, pad_top, pad_left, stream, shift)
    elif stride_h == stride_w == 2 and dil_h == dil_w == 1:
        _output_rows(x, wbs, out, row_begin, row_end, 2, 2, 1, 1, pad_top, pad_left, stream, shift)
    else:
        _output_rows(x, wbs, out, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, stream,
                     shift)
    if stream:
        store_fence()


@kernel(parallel=True)
def depthwise_nhwc_forward_3x3_direct_parallel(x, w, out, n_chunks, stride_h, stride_w, dil_h, dil_w, pad_top,
                                               pad_left, stream, aligned=False):
    """:func:`depthwise_nhwc_forward_3x3_direct_rows` over all output rows, in ``n_chunks`` parallel runs."""
    rows = out.shape[0] * out.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_forward_3x3_direct_rows(x, w, out, t * rows // n_chunks, (t + 1) * rows // n_chunks, stride_h,
                                               stride_w, dil_h, dil_w, pad_top, pad_left, stream, aligned)


# --------------------------------------------------------------------------- the input gradient at stride 2


@kernel(inline=True)
def _s2_row_taps(s0, s1, s2, s3, dy, a, gap, wb, wt):
    """Adds one filter row's products to the input gradient of four consecutive pixels, columns ``2m .. 2m + 3`` of
    the stride-2 forward's padded input (``m``: the ``dy`` column of ``a``, ``gap`` apart): the even ones take taps 0
    and 2 of ``dy`` columns ``m`` and ``m - 1`` (and ``m + 1`` and ``m``), the odd ones tap 1 of column ``m`` (and
    ``m + 1``)."""
    count = lanes(wb)
    w0, w1, w2 = vload(wb, wt), vload(wb, wt + count), vload(wb, wt + 2 * count)
    i = vload(dy, a - gap)
    s0 = vfma(i, w2, s0)
    i = vload(dy, a)
    s0, s1, s2 = vfma(i, w0, s0), vfma(i, w1, s1), vfma(i, w2, s2)
    i = vload(dy, a + gap)
    s2, s3 = vfma(i, w0, s2), vfma(i, w1, s3)
    return s0, s1, s2, s3


@kernel
def _s2_pixel(dy, wbs, dx, o, dy_row, row_gap, r_first, r_end, u, out_w):
    """Input-gradient pixel at padded column ``u``, flat index ``o`` of ``dx``, every channel block: filter rows
    ``r_first, r_first + 2, ... < r_end`` (``dy`` row of filter row ``r`` at ``dy_row - r // 2 * row_gap``, rows
    inside ``dy`` only), the taps whose ``dy`` column is inside ``dy``."""
    c = dx.shape[3]
    count = lanes(dy)
    for g in range((c + count - 1) // count):
        k = block_start(g * count, 0, c, count)
        acc = vzeros(dy)
        for r in range(r_first, r_end, 2):
            for t in range(u % 2, 3, 2):
                j = (u - t) // 2
                if 0 <= j < out_w:
                    acc = vfma(vload(dy, dy_row - r // 2 * row_gap + j * c + k), vload(wbs, (9 * g + 3 * r + t) * count),
                               acc)
        vstore(dx, o + k, acc)


@kernel
def _s2_input_gradient_rows(dy, wbs, dx, row_begin, row_end, pad_top, pad_left):
    """Input-gradient rows ``[row_begin, row_end)`` (over the batch) of a stride-2 3x3 layer, every channel block."""
    out_h, out_w, c = dy.shape[1], dy.shape[2], dy.shape[3]
    in_h, in_w = dx.shape[1], dx.shape[2]
    count = lanes(dy)
    blocks = (c + count - 1) // count
    row_gap = out_w * c
    # steps of four pixels from dy column m (each reads columns m - 1 .. m + 1): the first whose columns are all
    # inside dx and dy, and the last (overlapping the one before it)
    m_lo, m_last = parity_steps(out_w, in_w, pad_left, 3, 4)
    steps = m_last >= m_lo
    # the padded columns the steps cover (none without steps)
    u_steps_lo, u_steps_hi = (2 * m_lo, 2 * m_last + 4) if steps else (in_w + pad_left, in_w + pad_left)
    for row in range(row_begin, row_end):
        b, y = row // in_h, row % in_h
        v = y + pad_top  # the padded input row
        r_lo, r_end = parity_rows(v, out_h, 3)  # filter rows r_lo, r_lo + 2, .. < r_end: dy row (v - r) / 2
        dy_row = (b * out_h * out_w + v // 2 * out_w) * c  # dy row v // 2: filter row r reads dy row (v - r) // 2
        o_row = row * in_w * c
        for xx in range(in_w):
            u = xx + pad_left
            if u < u_steps_lo or u >= u_steps_hi:
                _s2_pixel(dy, wbs, dx, o_row + xx * c, dy_row, row_gap, r_lo, r_end, u, out_w)
        if not steps:
            continue
        m0 = m_lo
        while m0 <= m_last + 1:  # the steps from m_lo and m_last cover dx columns 2 m_lo .. 2 m_last + 3
            m = min(m0, m_last)  # the last step overlaps the one before it
            for g in range(blocks):
                k = block_start(g * count, 0, c, count)
                s0 = s1 = s2 = s3 = vzeros(dy)
                for r in range(r_lo, r_end, 2):
                    s0, s1, s2, s3 = _s2_row_taps(s0, s1, s2, s3, dy, dy_row - r // 2 * row_gap + m * c + k, c, wbs,
                                                  (9 * g + 3 * r) * count)
                o = o_row + (2 * m - pad_left) * c + k
                vstore(dx, o, s0)
                vstore(dx, o + c, s1)
                vstore(dx, o + 2 * c, s2)
                vstore(dx, o + 3 * c, s3)
            m0 += 2


@kernel
def depthwise_nhwc_backprop_input_3x3_s2_direct_rows(w, dy, dx, row_begin, row_end, pad_top, pad_left):
    """Rows ``[row_begin, row_end)`` (over the batch) of the input gradient ``dx`` ``[N, in_h, in_w, C]`` of a
    stride-2 3x3 layer (dilation 1) with filter ``w`` ``[3, 3, C]`` (``C`` at least a vector), from ``dy``
    ``[N, out_h, out_w, C]``: per ``dx`` row the filter rows of its parity, four pixels per step (two ``dy``
    columns, :func:`_s2_row_taps`: three loads of ``dy`` per six multiply-adds), the pixels left one at a time."""
    w, dy, dx = borrowed(w), borrowed(dy), borrowed(dx)
    _s2_input_gradient_rows(dy, _filters_by_block(w, dy), dx, row_begin, row_end, pad_top, pad_left)


@kernel(parallel=True)
def depthwise_nhwc_backprop_input_3x3_s2_direct_parallel(w, dy, dx, n_chunks, pad_top, pad_left):
    """:func:`depthwise_nhwc_backprop_input_3x3_s2_direct_rows` over all rows of ``dx``, in ``n_chunks`` parallel
    runs."""
    rows = dx.shape[0] * dx.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_backprop_input_3x3_s2_direct_rows(w, dy, dx, t * rows // n_chunks, (t + 1) * rows // n_chunks,
                                                         pad_top, pad_left)


# --------------------------------------------------------------------------- the filter gradient


@kernel(inline=True)
def _step_products(x, dy, sums, a, a_dy, pixel_gap, tap_gap, dy_gap, st):
    """Adds the products of four pixels (``x`` from ``a``, ``pixel_gap`` apart; ``dy`` from ``a_dy``, ``dy_gap``
    apart) for one filter row's three taps (``tap_gap`` apart) to ``sums`` from ``st``."""
    count = lanes(x)
    d0, d1 = vload(dy, a_dy), vload(dy, a_dy + dy_gap)
    d2, d3 = vload(dy, a_dy + 2 * dy_gap), vload(dy, a_dy + 3 * dy_gap)
    s0 = vfma(vload(x, a), d0, vload(sums, st))
    s1 = vfma(vload(x, a + tap_gap), d0, vload(sums, st + count))
    s2 = vfma(vload(x, a + 2 * tap_gap), d0, vload(sums, st + 2 * count))
    a += pixel_gap
    s0, s1, s2 = vfma(vload(x, a), d1, s0), vfma(vload(x, a + tap_gap), d1, s1), vfma(vload(x, a + 2 * tap_gap), d1, s2)
    a += pixel_gap
    s0, s1, s2 = vfma(vload(x, a), d2, s0), vfma(vload(x, a + tap_gap), d2, s1), vfma(vload(x, a + 2 * tap_gap), d2, s2)
    a += pixel_gap
    s0, s1, s2 = vfma(vload(x, a), d3, s0), vfma(vload(x, a + tap_gap), d3, s1), vfma(vload(x, a + 2 * tap_gap), d3, s2)
    vstore(sums, st, s0)
    vstore(sums, st + count, s1)
    vstore(sums, st + 2 * count, s2)


@kernel(inline=True)
def _step_products_s1(x, dy, sums, a, row_gap, r_lo, r_hi, a_dy, gap, st):
    """:func:`_step_products` at horizontal stride 1 (pixels and taps ``gap`` apart), for filter rows ``[r_lo,
    r_hi)`` (row ``r``'s input from ``a + r * row_gap``, its sums from ``st + 3 * r`` vectors): the four ``dy``
    vectors loaded once, each filter row's six input columns once each, each added to the sums of the taps it is
    (column ``c`` is pixel ``p``'s tap ``c - p``): 8 + 3 * 6 loads per 36 multiply-adds, where
    :func:`_step_products` loads 4 + 12 per 12."""
    count = lanes(x)
    d0, d1, d2, d3 = vload(dy, a_dy), vload(dy, a_dy + gap), vload(dy, a_dy + 2 * gap), vload(dy, a_dy + 3 * gap)
    for r in range(r_lo, r_hi):
        b, t = a + r * row_gap, st + 3 * r * count
        a0, a3 = opaque(b), opaque(b + 3 * gap)
        s0, s1, s2 = vload(sums, t), vload(sums, t + count), vload(sums, t + 2 * count)
        i = vload(x, a0)
        s0 = vfma(i, d0, s0)
        i = vload(x, a0 + gap)
        s0, s1 = vfma(i, d1, s0), vfma(i, d0, s1)
        i = vload(x, a0 + 2 * gap)
        s0, s1, s2 = vfma(i, d2, s0), vfma(i, d1, s1), vfma(i, d0, s2)
        i = vload(x, a3)
        s0, s1, s2 = vfma(i, d3, s0), vfma(i, d2, s1), vfma(i, d1, s2)
        i = vload(x, a3 + gap)
        s1, s2 = vfma(i, d3, s1), vfma(i, d2, s2)
        s2 = vfma(vload(x, a3 + 2 * gap), d3, s2)
        vstore(sums, t, s0)
        vstore(sums, t + count, s1)
        vstore(sums, t + 2 * count, s2)

@kernel
def _pixel_products(x, dy, sums, x_row, row_gap, a_dy, r_lo, r_hi, j, iw0, in_w, dil_w):
    """Pixel ``j``'s products (its window from input column ``iw0``), every channel block, for its taps inside the
    input only."""
    c = x.shape[3]
    count = lanes(x)
    t_lo, t_hi = tap_range(iw0, dil_w, 3, in_w)
    for g in range((c + count - 1) // count):
        k = block_start(g * count, 0, c, count)
        d = vload(dy, a_dy + j * c + k)
        for r in range(r_lo, r_hi):
            for t in range(t_lo, t_hi):
                i = (9 * g + 3 * r + t) * count
                vstore(sums, i, vfma(vload(x, x_row + r * row_gap + (iw0 + t * dil_w) * c + k), d, vload(sums, i)))


@kernel
def _gradient_row(x, dy, sums, x_row, row_gap, a_dy, r_lo, r_hi, out_w, j_lo, j_hi, stride_w, dil_w, pad_left):
    """One output row's products added to ``sums``: its ``dy`` from flat index ``a_dy``, its filter row ``r``'s
    input row from ``x_row + r * row_gap`` (for ``r`` in ``[r_lo, r_hi)``). Steps of four interior pixels (a
    dilation apart at stride 1, phase by phase), each for every channel block in turn (in the order of memory:
    block by block, with a row's sums in registers, took 1.1-2.3 times as long); the pixels left one at a time."""
    in_w, c = x.shape[2], x.shape[3]
    count = lanes(x)
    blocks = (c + count - 1) // count
    step_gap = dil_w if stride_w == 1 else 1  # pixels a step's pixels are apart
    pixel_gap, tap_gap = step_gap * stride_w * c, dil_w * c
    for j in range(j_lo):
        _pixel_products(x, dy, sums, x_row, row_gap, a_dy, r_lo, r_hi, j, j * stride_w - pad_left, in_w, dil_w)
    for phase in range(j_lo, min(j_lo + step_gap, j_hi)):
        n = (j_hi - 1 - phase) // step_gap + 1  # the phase's pixels
        for m in range(n // STEP_PIXELS):
            j = phase + m * STEP_PIXELS * step_gap
            for g in range(blocks):
                k = block_start(g * count, 0, c, count)
                a = x_row + (j * stride_w - pad_left) * c + k
                if stride_w == 1:
                    _step_products_s1(x, dy, sums, a, row_gap, r_lo, r_hi, a_dy + j * c + k, pixel_gap, 9 * g * count)
                    continue
                for r in range(r_lo, r_hi):
                    _step_products(x, dy, sums, a + r * row_gap, a_dy + j * c + k, pixel_gap, tap_gap, step_gap * c,
                                   (9 * g + 3 * r) * count)
        for m in range(n // STEP_PIXELS * STEP_PIXELS, n):
            j = phase + m * step_gap
            _pixel_products(x, dy, sums, x_row, row_gap, a_dy, r_lo, r_hi, j, j * stride_w - pad_left, in_w, dil_w)
    for j in range(j_hi, out_w):
        _pixel_products(x, dy, sums, x_row, row_gap, a_dy, r_lo, r_hi, j, j * stride_w - pad_left, in_w, dil_w)


@kernel
def _filter_gradient_rows(x, dy, sums, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):
    """The filter gradient's sums over output rows ``[row_begin, row_end)`` (over the batch), added to ``sums``
    (``[blocks, 9, lanes]``, by channel block)."""
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w = dy.shape[1], dy.shape[2]
    j_lo, j_hi = interior(out_w, in_w, 3, stride_w, dil_w, pad_left)
    for row in range(row_begin, row_end):
        b, i = row // out_h, row % out_h
        ih0 = i * stride_h - pad_top
        r_lo, r_hi = tap_range(ih0, dil_h, 3, in_h)
        _gradient_row(x, dy, sums, (b * in_h + ih0) * in_w * c, dil_h * in_w * c, row * out_w * c, r_lo, r_hi, out_w,
                      j_lo, j_hi, stride_w, dil_w, pad_left)


@kernel
def filter_gradient_sums(like):
    """Zeroed sums of the filter gradient of ``like``'s channels (``[blocks, 9, lanes]``, by channel block) for
    :func:`add_filter_gradient_rows`."""
    c = like.shape[3]
    count = lanes(like)
    sums = empty_on_line((c + count - 1) // count * 9 * count, like)
    sums[:] = 0
    return sums


@kernel
def add_filter_gradient_rows(x, dy, sums, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left):
    """The filter gradient's products of output rows ``[row_begin, row_end)`` (over the batch) added to ``sums``
    (:func:`filter_gradient_sums`), strides and dilations folded as constants where they are 1 (or 2 undilated)."""
    if stride_h == stride_w == dil_h == dil_w == 1:
        _filter_gradient_rows(x, dy, sums, row_begin, row_end, 1, 1, 1, 1, pad_top, pad_left)
    elif stride_h == stride_w == 2 and dil_h == dil_w == 1:
        _filter_gradient_rows(x, dy, sums, row_begin, row_end, 2, 2, 1, 1, pad_top, pad_left)
    else:
        _filter_gradient_rows(x, dy, sums, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)


@kernel
def add_filter_gradient_sums(sums, dw):
    """``dw`` ``[3, 3, C]`` += the sums (a last block overlapping the one before it adds the shared channels once:
    its lanes before the block's own are skipped)."""
    c = dw.shape[2]
    count = lanes(sums)
    flat = dw.reshape(-1)
    for g in range((c + count - 1) // count):
        k = block_start(g * count, 0, c, count)
        first = g * count - k  # lanes already added by the block before
        for t in range(9):
            for lane in range(first, count):
                flat[t * c + k + lane] += sums[(9 * g + t) * count + lane]


@kernel
def depthwise_nhwc_backprop_filter_3x3_direct_rows(x, dy, dw, row_begin, row_end, stride_h, stride_w, dil_h, dil_w,
                                                   pad_top, pad_left):
    """The filter gradient ``dw`` ``[3, 3, C]`` (written, not added to) of the output rows ``[row_begin, row_end)``
    (over the batch) of the forward of ``x`` ``[N, in_h, in_w, C]`` (``C`` at least a vector) into ``dy``
    ``[N, out_h, out_w, C]``: the sums by channel block, then stored (a last block overlapping the one before it
    stores the shared channels' sums twice, equal)."""
    x, dy, dw = borrowed(x), borrowed(dy), borrowed(dw)
    c = x.shape[3]
    count = lanes(x)
    blocks = (c + count - 1) // count
    sums = empty_on_line(blocks * 9 * count, x)
    sums[:] = 0
    # constants, for LLVM to fold into the rows (written here again, not a call of add_filter_gradient_rows: through
    # that call, alternating processes, 1x56x56x144 took 153-179 us against 89-133, 4x56x56x144 stride 2 226-312
    # against 157-182)
    if stride_h == stride_w == dil_h == dil_w == 1:
        _filter_gradient_rows(x, dy, sums, row_begin, row_end, 1, 1, 1, 1, pad_top, pad_left)
    elif stride_h == stride_w == 2 and dil_h == dil_w == 1:
        _filter_gradient_rows(x, dy, sums, row_begin, row_end, 2, 2, 1, 1, pad_top, pad_left)
    else:
        _filter_gradient_rows(x, dy, sums, row_begin, row_end, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)
    flat = dw.reshape(-1)
    for g in range(blocks):
        k = block_start(g * count, 0, c, count)
        for t in range(9):
            vstore(flat, t * c + k, vload(sums, (9 * g + t) * count))


@kernel(parallel=True)
def depthwise_nhwc_backprop_filter_3x3_direct_parallel(x, dy, partial, stride_h, stride_w, dil_h, dil_w, pad_top,
                                                       pad_left):
    """The filter gradient of the output rows in ``partial.shape[0]`` parallel runs, run ``t``'s into ``partial[t]``
    (``[T, 3, 3, C]``)."""
    n_chunks = partial.shape[0]
    rows = dy.shape[0] * dy.shape[1]
    for t in prange(n_chunks):
        depthwise_nhwc_backprop_filter_3x3_direct_rows(x, dy, partial[t], t * rows // n_chunks,
                                                       (t + 1) * rows // n_chunks, stride_h, stride_w, dil_h, dil_w,
                                                       pad_top, pad_left)
