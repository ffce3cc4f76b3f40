"""The depthwise forward of small images, NHWC: each channel block's plane copied, taps inside the image only.

On a 7x7 image a 7x7 filter reaches past the image for 43% of its taps (1,369 of 2,401 per channel do work; 14x14:
77%), and the padded kernels (:mod:`sepconv.kernels.depthwise_packed`) multiply those zeros too. Here a worker takes
an image, a group of one or two channel blocks and a band of output rows at a time. The band's input rows of the
blocks' planes, one vector per pixel, are copied into buffers of their own (:func:`_pack_planes`: each pixel's blocks
read in order, whole lines; read in place, a plane whose pixels are a multiple of 4 KB apart sits in one cache set),
with :func:`plane_margin` zero columns each side of a row, written once per call; the filters into ``[kh * kw,
lanes]``. Each output row then goes four pixels per step (:func:`_four_pixels`), their sums in registers: the filter
rows inside the image only, and the taps from the first inside the image for the step's last pixel to the last inside
for its first (those outside for a pixel read the zero margin), one weight load per tap and one input load per
multiply-add. A row's last step overlaps the one before it (its pixels computed twice) rather than running a step of
fewer pixels; a row narrower than a step goes in one step whose pixels past the row are computed (the margins are
wide enough) and not stored, four chains of sums rather than one pixel's at a time. Each step runs for the group's
blocks one after the other, with the same loop counts. Any stride and dilation; :mod:`sepconv.fast.depthwise` sends
it stride-1 5x5 and larger layers of small planes, and on CPUs without AVX-512 every stride-1 layer and stride-2 ones of small
planes (:mod:`sepconv.fast.registers`).

Examples
--------
A 3x3 filter of ones over a 4x4 image of ones, SAME padding, stride 1: each output counts its taps inside the image.

>>> import numpy as np
>>> x, w = np.ones((1, 4, 4, 3), np.float32), np.ones((3, 3, 3), np.float32)
>>> out = np.empty((1, 4, 4, 3), np.float32)
>>> depthwise_nhwc_forward_small_image_parallel(x, w, out, 1, 1, 4, 1, 1, 1, 1, 1, 1)  # 1 chunk, 1 block, 4 rows
>>> out[0, :, :, 0]
array([[4., 6., 6., 4.],
       [6., 9., 9., 6.],
       [6., 9., 9., 6.],
       [4., 6., 6., 4.]], dtype=float32)
"""

from __future__ import annotations

from numba import prange

from ._borrowed import borrowed
from ._jit import kernel
from ._simd import empty_on_line, hlanes, hload, hzeros, lanes, vfma, vload, vload_n, vstore, vstore_n, vzeros
from ._window import block_start, tap_range
from .depthwise_5x5_avx2 import (
    STEP_5X5_SHORT_PIXELS,
    STEP_7X7_PIXELS,
    STEP_7X7_SHORT_PIXELS,
    step_5x5,
    step_5x5_seven,
    step_7x7,
    step_7x7_seven,
)
from .depthwise_5x5_avx2 import STEP_PIXELS as STEP_5X5_PIXELS

# Output pixels per step: four sums of one 64-byte vector each stay in registers with the weight and an input.
STEP_PIXELS = 4

# How stride-1 5x5 and 7x7 rows go (the kernels' ``steps`` argument): in four-pixel steps (above); in steps of eight
# (5x5), ten or seven (7x7) pixels of half vectors, each half of a block in turn (sixteen registers: AVX2); or in
# those steps of whole vectors (32 registers, on 256-bit units: Zen 4), each plane column loaded once a filter row.
FOUR_PIXEL_STEPS = 0
HALF_VECTOR_STEPS = 1
WHOLE_VECTOR_STEPS = 2


@kernel
def plane_margin(stride_w):
    """The zero columns each side of a plane's rows: a step's taps run from the first one inside the image for its
    last pixel to the last one inside for its first pixel, so its pixels read up to ``3 * stride_w`` columns past the
    image on either side."""
    return (STEP_PIXELS - 1) * stride_w


@kernel
def _pack_planes(x, b, k, blocks, margin, row_lo, rows, plane_rows, planes):
    """Rows ``[row_lo, row_lo + rows)`` of channel blocks ``k .. k + blocks - 1`` of image ``b`` of ``x``
    ``[N, H, W, C]`` into ``planes`` ``[blocks, plane_rows, margin + W + margin, lanes]`` from their row 0 (the
    margins are left as they are; lanes past ``C`` are zeros), each pixel's blocks read in order."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    count = lanes(planes)
    row_w = w + 2 * margin
    plane_size = plane_rows * row_w * count
    for i in range(rows):
        src = ((b * h + row_lo + i) * w) * c
        dst = (i * row_w + margin) * count
        for p in range(w):
            for g in range(blocks):
                kg = block_start(k, g, c, count)
                vstore(planes, g * plane_size + dst + p * count, vload_n(x, src + p * c + kg, min(count, c - kg)))


@kernel
def _zero_margins(planes, blocks, h, w, margin):
    """The ``margin`` columns each side of every row of ``blocks`` planes ``[h, margin + w + margin, lanes]``."""
    count = lanes(planes)
    zeros = vzeros(planes)
    row_w = w + 2 * margin
    for i in range(blocks * h):
        for p in range(margin):
            vstore(planes, (i * row_w + p) * count, zeros)
            vstore(planes, (i * row_w + margin + w + p) * count, zeros)


@kernel
def pack_filters(w, k, blocks, wbs):
    """Channel blocks ``k .. k + blocks - 1`` of ``w`` ``[kh, kw, C]`` into ``wbs`` ``[blocks, kh * kw, lanes]``."""
    c = w.shape[2]
    taps = w.shape[0] * w.shape[1]
    count = lanes(wbs)
    for g in range(blocks):
        kg = block_start(k, g, c, count)
        for t in range(taps):
            vstore(wbs, (g * taps + t) * count, vload_n(w, t * c + kg, min(count, c - kg)))


@kernel
def pack_half_filters(w, k, blocks, wbh):
    """Channel blocks ``k .. k + blocks - 1`` of ``w`` ``[kh, kw, C]`` (``C`` at least a vector) into ``wbh``
    ``[blocks, 2, kh * kw, hlanes]``: each block's two halves one after the other, for :func:`_vector_steps_row`."""
    c = w.shape[2]
    taps = w.shape[0] * w.shape[1]
    count, half = lanes(wbh), hlanes(wbh)
    for g in range(blocks):
        kg = block_start(k, g, c, count)
        for h in range(2):
            for t in range(taps):
                vstore(wbh, ((2 * g + h) * taps + t) * half, hload(w, t * c + kg + h * half))


@kernel
def _few_twice(out_w, step):
    """Whether steps of ``step`` pixels over a row of ``out_w`` (the last overlapping the one before it) compute at
    most a fifth more pixels than the row's (5x5 in eights on 14 pixels: 16; 7x7 in tens on 14: 20, 1.12x the
    time of four-pixel steps)."""
    return out_w >= step and 5 * ((out_w + step - 1) // step) * step <= 6 * out_w


@kernel
def half_vector_step(out_w, kw, whole=False):
    """The pixels of :func:`_vector_steps_row`'s steps on rows of ``out_w`` pixels of a ``kw``-wide filter (5 or 7),
    0 for none: eight for 5x5 (in ``whole`` vectors seven where that computes fewer pixels: rows of 7 and 14); ten
    for 7x7, else seven (rows of 14 pixels: 0.88-0.95 of four-pixel steps' time)."""
    if kw == 5:
        eight = _few_twice(out_w, STEP_5X5_PIXELS)
        if whole and _few_twice(out_w, STEP_5X5_SHORT_PIXELS) and (
                not eight or -(-out_w // STEP_5X5_SHORT_PIXELS) * STEP_5X5_SHORT_PIXELS
                < -(-out_w // STEP_5X5_PIXELS) * STEP_5X5_PIXELS):
            return STEP_5X5_SHORT_PIXELS
        return STEP_5X5_PIXELS if eight else 0
    if _few_twice(out_w, STEP_7X7_PIXELS):
        return STEP_7X7_PIXELS
    return STEP_7X7_SHORT_PIXELS if _few_twice(out_w, STEP_7X7_SHORT_PIXELS) else 0


@kernel
def half_vector_fits(out_w, in_w, kw, pad_left, whole=False):
    """Whether :func:`_vector_steps_row` takes rows of ``out_w`` pixels of a ``kw``-wide filter (5 or 7) at stride 1
    (undilated): it has steps for them (:func:`half_vector_step`), and a step's columns, from the first pixel's
    first tap to the last pixel's last, stay within the plane's margins."""
    margin = plane_margin(1)
    return (half_vector_step(out_w, kw, whole) > 0 and pad_left <= margin
            and out_w - 1 - pad_left + kw - 1 <= in_w - 1 + margin)


@kernel(inline=True)
def _step(zero, planes, wbs, out, o, c, a, r_lo, r_hi, row_gap, count, wt, kw, step):
    """One step of :func:`_vector_steps_row`, its sums vectors of ``zero``'s width (half or whole)."""
    if kw == 7:
        if step == STEP_7X7_SHORT_PIXELS:
            step_7x7_seven(zero, planes, wbs, out, o, c, a, r_lo, r_hi, row_gap, count, wt)
        else:
            step_7x7(zero, planes, wbs, out, o, c, a, r_lo, r_hi, row_gap, count, wt)
    elif step == STEP_5X5_SHORT_PIXELS:
        step_5x5_seven(zero, planes, wbs, out, o, c, a, r_lo, r_hi, row_gap, count, wt)
    else:
        step_5x5(zero, planes, wbs, out, o, c, a, r_lo, r_hi, row_gap, count, wt)


@kernel
def _vector_steps_row(planes, wbs, out, o_row, ph0, r_lo, r_hi, row_w, plane_size, k, blocks, kw, pad_left, whole):
    """One output row of channel blocks ``k .. k + blocks - 1`` at stride 1 (undilated) of a 5x5 or 7x7 filter, eight
    (5x5) or ten or seven (7x7) pixels a step (:func:`half_vector_step`), their sums in registers, each column of the
    plane loaded once a filter row (:func:`~sepconv.kernels.depthwise_5x5_avx2.step_5x5`,
    :func:`~sepconv.kernels.depthwise_5x5_avx2.step_7x7`, :func:`~sepconv.kernels.depthwise_5x5_avx2.step_7x7_seven`):
    with ``whole``, a block's whole vector at once (filters packed by :func:`pack_filters`), else each half in turn,
    for CPUs of sixteen vector registers (:func:`pack_half_filters`).
    The steps read the plane's zero margins for the taps outside the image (:func:`half_vector_fits`), so border
    pixels go in steps too; a row's last step overlaps the one before it."""
    c, out_w = out.shape[3], out.shape[2]
    count, half = lanes(planes), hlanes(planes)
    taps = kw * kw
    step = half_vector_step(out_w, kw, whole)
    row_gap = row_w * count
    j0 = 0
    while j0 < out_w:
        j = min(j0, out_w - step)
        a_col = (ph0 * row_w + j - pad_left + plane_margin(1)) * count
        for g in range(blocks):
            kg = block_start(k, g, c, count)
            if whole:
                _step(vzeros(planes), planes, wbs, out, o_row + j * c + kg, c, g * plane_size + a_col, r_lo, r_hi,
                      row_gap, count, g * taps * count, kw, step)
                continue
            for h in range(2):
                _step(hzeros(planes), planes, wbs, out, o_row + j * c + kg + h * half, c,
                      g * plane_size + a_col + h * half, r_lo, r_hi, row_gap, count, (2 * g + h) * taps * half, kw,
                      step)
        j0 += step


@kernel(inline=True)
def _store_pixels(out, o, c, a0, a1, a2, a3, n, pixels):
    """The first ``pixels`` of four pixels' sums (channels ``[0, n)`` of a block) into ``out`` from flat index ``o``,
    ``c`` apart."""
    vstore_n(out, o, a0, n)
    if pixels > 1:
        vstore_n(out, o + c, a1, n)
    if pixels > 2:
        vstore_n(out, o + 2 * c, a2, n)
    if pixels > 3:
        vstore_n(out, o + 3 * c, a3, n)


@kernel
def _four_pixels(plane, wb, out, o, iw0, r_lo, r_hi, ih0, kw, row_w, stride_w, dil_h, dil_w, t_lo, t_hi, n, pixels):
    """Four output pixels of one row (``plane``'s row ``ih0`` under filter row 0, column ``iw0`` under tap 0 of the
    first pixel) into ``out`` from flat index ``o`` (pixel stride ``C``), channels ``[0, n)`` of the block: filter rows
    ``[r_lo, r_hi)`` and taps ``[t_lo, t_hi)``, those outside the image reading ``plane``'s zero columns; the first
    ``pixels`` of the four stored (a row narrower than a step computes the others and drops them)."""
    count = lanes(plane)
    c = out.shape[3]
    a0 = a1 = a2 = a3 = vzeros(plane)
    tap_step, pixel_step = dil_w * count, stride_w * count
    for r in range(r_lo, r_hi):
        i = ((ih0 + r * dil_h) * row_w + iw0) * count
        w_t = r * kw
        for t in range(t_lo, t_hi):
            wv = vload(wb, (w_t + t) * count)
            j = i + t * tap_step
            a0 = vfma(vload(plane, j), wv, a0)
            a1 = vfma(vload(plane, j + pixel_step), wv, a1)
            a2 = vfma(vload(plane, j + 2 * pixel_step), wv, a2)
            a3 = vfma(vload(plane, j + 3 * pixel_step), wv, a3)
    _store_pixels(out, o, c, a0, a1, a2, a3, n, pixels)


@kernel
def _four_pixels_unit(plane, wb, out, o, iw0, r_lo, r_hi, ih0, kw, row_w, dil_h, dil_w, t_lo, t_hi, n, pixels):
    """:func:`_four_pixels` at horizontal stride 1, where the four pixels' inputs are constant offsets apart (one
    process, one thread, us, against the stride as an argument: 8x7x7x1024 7x7 937 -> 692).  A copy on purpose:
    :func:`_four_pixels` inlined with a constant stride instead ran 8-11% slower (8x7x7x1024 7x7 749 -> 835,
    8x14x14x384 7x7 1021 -> 1112, 1x33x33x576 5x5 757 -> 812)."""
    count = lanes(plane)
    c = out.shape[3]
    a0 = a1 = a2 = a3 = vzeros(plane)
    tap_step = dil_w * count
    for r in range(r_lo, r_hi):
        i = ((ih0 + r * dil_h) * row_w + iw0) * count
        w_t = r * kw
        for t in range(t_lo, t_hi):
            wv = vload(wb, (w_t + t) * count)
            j = i + t * tap_step
            a0 = vfma(vload(plane, j), wv, a0)
            a1 = vfma(vload(plane, j + count), wv, a1)
            a2 = vfma(vload(plane, j + 2 * count), wv, a2)
            a3 = vfma(vload(plane, j + 3 * count), wv, a3)
    _store_pixels(out, o, c, a0, a1, a2, a3, n, pixels)


@kernel
def _blocks(planes, wbs, out, b, k, blocks, kh, kw, in_h, in_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left,
            margin, i_begin, i_end, row_origin, plane_rows, steps):
    """Output rows ``[i_begin, i_end)`` of channel blocks ``k .. k + blocks - 1`` of image ``b`` of ``out`` from
    their packed ``planes`` (each ``[plane_rows, margin + in_w + margin, lanes]``, from input row ``row_origin``)
    and filters ``wbs`` (packed by :func:`pack_filters`, or for :data:`HALF_VECTOR_STEPS` by
    :func:`pack_half_filters`): each step for all the blocks in turn (the same taps, so the same loop counts one after
    the other); the rows in the ``steps`` given (:data:`FOUR_PIXEL_STEPS`, else :func:`_vector_steps_row`)."""
    out_h, out_w, c = out.shape[1], out.shape[2], out.shape[3]
    count = lanes(planes)
    row_w = in_w + 2 * margin
    plane_size, filter_size = plane_rows * row_w * count, kh * kw * count
    unit = stride_w == 1
    for i in range(i_begin, i_end):
        ih0 = i * stride_h - pad_top
        r_lo, r_hi = tap_range(ih0, dil_h, kh, in_h)
        ph0 = ih0 - row_origin  # the plane's row under filter row 0
        o_row = ((b * out_h + i) * out_w) * c
        if steps != FOUR_PIXEL_STEPS:
            _vector_steps_row(planes, wbs, out, o_row, ph0, r_lo, r_hi, row_w, plane_size, k, blocks, kw, pad_left,
                              steps == WHOLE_VECTOR_STEPS)
            continue
        # rows narrower than a step go in one step whose pixels past the row are computed (from the margins and the
        # row's columns) and dropped: four chains of sums, not one pixel's (1x9x9x120 7x7 VALID, us: 17 -> 16)
        pixels = min(out_w, STEP_PIXELS)
        j0 = 0
        while j0 < out_w:
            j = max(0, min(j0, out_w - STEP_PIXELS))  # the last step overlaps the one before it
            iw0 = j * stride_w - pad_left
            # the taps inside the image for any of the pixels: from the last one's first to the first one's last
            t_lo = tap_range(iw0 + (pixels - 1) * stride_w, dil_w, kw, in_w)[0]
            t_hi = 0 if iw0 > in_w - 1 else min(kw, (in_w - 1 - iw0) // dil_w + 1)
            for g in range(blocks):
                kg = block_start(k, g, c, count)
                if unit:
                    _four_pixels_unit(planes[g * plane_size:], wbs[g * filter_size:], out, o_row + j * c + kg,
                                      iw0 + margin, r_lo, r_hi, ph0, kw, row_w, dil_h, dil_w, t_lo, t_hi,
                                      min(count, c - kg), pixels)
                else:
                    _four_pixels(planes[g * plane_size:], wbs[g * filter_size:], out, o_row + j * c + kg,
                                 iw0 + margin, r_lo, r_hi, ph0, kw, row_w, stride_w, dil_h, dil_w, t_lo, t_hi,
                                 min(count, c - kg), pixels)
            j0 += STEP_PIXELS


@kernel
def band_input_rows(band_rows, kh, stride_h, dil_h, in_h):
    """The input rows a band of ``band_rows`` output rows reads (at most; the image's rows at most)."""
    return min(in_h, (band_rows - 1) * stride_h + (kh - 1) * dil_h + 1)


@kernel
def depthwise_nhwc_forward_small_image_items(x, w, out, item_begin, item_end, group, band_rows, stride_h, stride_w,
                                             dil_h, dil_w, pad_top, pad_left, steps):
    """Items ``[item_begin, item_end)`` of the forward: item ``i`` is band ``i % bands`` (``band_rows`` output
    rows) of image ``i // bands // groups``'s channel group ``i // bands % groups`` (``group`` blocks), image by
    image (a pixel's next lines are the next group's). 5x5 and 7x7 filters at stride 1 (undilated) go in the
    ``steps`` given (:data:`FOUR_PIXEL_STEPS`, :data:`HALF_VECTOR_STEPS` or :data:`WHOLE_VECTOR_STEPS`) where those
    fit (:func:`half_vector_fits`), else in four-pixel steps."""
    x, w, out = borrowed(x), borrowed(w), borrowed(out)
    in_h, in_w, c = x.shape[1], x.shape[2], x.shape[3]
    out_h = out.shape[1]
    kh, kw = w.shape[0], w.shape[1]
    count = lanes(x)
    margin = plane_margin(stride_w)
    groups = (c + group * count - 1) // (group * count)
    bands = (out_h + band_rows - 1) // band_rows
    plane_rows = band_input_rows(band_rows, kh, stride_h, dil_h, in_h)
    planes = empty_on_line(group * plane_rows * (in_w + 2 * margin) * count, x)
    _zero_margins(planes, group, plane_rows, in_w, margin)  # they stay zeros
    fits = (stride_h == stride_w == dil_h == dil_w == 1 and kh == kw and (kw == 5 or kw == 7)
            and half_vector_fits(out.shape[2], in_w, kw, pad_left, steps == WHOLE_VECTOR_STEPS))
    row_steps = steps if fits else FOUR_PIXEL_STEPS
    wbs = empty_on_line(group * kh * kw * count, x)  # by vector, or for half-vector steps by half vector
    packed_group = -1
    for item in range(item_begin, item_end):
        b, kg, band = item // bands // groups, item // bands % groups, item % bands
        k = kg * group * count
        blocks = min(group, (c - k + count - 1) // count)
        if kg != packed_group:
            if row_steps == HALF_VECTOR_STEPS:
                pack_half_filters(w, k, blocks, wbs)
            else:
                pack_filters(w, k, blocks, wbs)
            packed_group = kg
        i_begin, i_end = band * band_rows, min(out_h, (band + 1) * band_rows)
        row_lo = min(max(i_begin * stride_h - pad_top, 0), in_h)
        row_hi = max(min((i_end - 1) * stride_h - pad_top + (kh - 1) * dil_h + 1, in_h), row_lo)
        _pack_planes(x, b, k, blocks, margin, row_lo, row_hi - row_lo, plane_rows, planes)
        # constants, for LLVM to fold into the steps (one thread, 8x7x7x1024 7x7, us: 937 -> 692)
        if stride_h == stride_w == dil_h == dil_w == 1:
            _blocks(planes, wbs, out, b, k, blocks, kh, kw, in_h, in_w, 1, 1, 1, 1, pad_top, pad_left,
                    plane_margin(1), i_begin, i_end, row_lo, plane_rows, row_steps)
        elif stride_h == stride_w == 1:  # dilated
            _blocks(planes, wbs, out, b, k, blocks, kh, kw, in_h, in_w, 1, 1, dil_h, dil_w, pad_top, pad_left,
                    plane_margin(1), i_begin, i_end, row_lo, plane_rows, FOUR_PIXEL_STEPS)
        elif stride_h == stride_w == 2 and dil_h == dil_w == 1:
            _blocks(planes, wbs, out, b, k, blocks, kh, kw, in_h, in_w, 2, 2, 1, 1, pad_top, pad_left,
                    plane_margin(2), i_begin, i_end, row_lo, plane_rows, FOUR_PIXEL_STEPS)
        else:
            _blocks(planes, wbs, out, b, k, blocks, kh, kw, in_h, in_w, stride_h, stride_w, dil_h, dil_w, pad_top,
                    pad_left, margin, i_begin, i_end, row_lo, plane_rows, FOUR_PIXEL_STEPS)


@kernel(parallel=True)
def depthwise_nhwc_forward_small_image_parallel(x, w, out, n_chunks, group, band_rows, stride_h, stride_w, dil_h, dil_w,
                                                pad_top, pad_left, steps=FOUR_PIXEL_STEPS):
    """The forward of ``x`` ``[N, in_h, in_w, C]`` with ``w`` ``[kh, kw, C]`` into ``out`` ``[N, out_h, out_w, C]``
    (multiplier 1), the (image, group of ``group`` channel blocks, band of ``band_rows`` output rows) items in
    ``n_chunks`` parallel runs of :func:`depthwise_nhwc_forward_small_image_items` (a call of its own: compiled
    into the parallel loop's body, the same loops ran 30-40% slower)."""
    count = lanes(x)
    items = (x.shape[0] * ((x.shape[3] + group * count - 1) // (group * count))
             * ((out.shape[1] + band_rows - 1) // band_rows))
    for t in prange(n_chunks):
        depthwise_nhwc_forward_small_image_items(x, w, out, t * items // n_chunks, (t + 1) * items // n_chunks, group,
                                                 band_rows, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left,
                                                 steps)
