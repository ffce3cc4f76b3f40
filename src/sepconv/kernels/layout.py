"""Layout changes: the last two axes of a 3-D array swapped, ``src [B, R, S] -> dst [B, S, R]``.

NCHW -> NHWC is ``[N, C, H*W] -> [N, H*W, C]`` and NHWC -> NCHW the converse.  NumPy's
``ascontiguousarray(a.transpose(...))`` copies element by element with one side strided, 2-3x
slower than a plain copy (8x960x7x7 float32: ~290 us against ~110 for ``copy``); here square
blocks of ``LANES x LANES`` values are transposed in registers
(:func:`~sepconv.kernels._simd.vtranspose_block`), which runs at about the speed of a copy
(~100 us).  The edges (fewer than ``LANES`` rows or columns left) are copied element by element.

Work is split over ``(b, block of LANES rows of src)`` items: ``*_range`` does ``[begin, end)``,
``*_parallel`` cuts them into ``n_chunks`` blocks run by ``prange``.

A few-channel image (``R`` or ``S`` at most :data:`FEW`) has no square blocks: the ``*_few_*`` kernels copy it
pixel by pixel, all channels of a pixel at once, the channel count a constant of their code so that LLVM
interleaves whole vectors (one thread, 1x112x112x3 float32, us: NHWC -> NCHW 49 -> 4.3, NCHW -> NHWC 77 -> 5.0).
Their items are images.

Examples
--------
>>> import numpy as np
>>> src = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
>>> dst = np.empty((2, 5, 3), np.float32)
>>> swap_last_axes_range(src, dst, 0, 2)
>>> bool((dst == src.transpose(0, 2, 1)).all())
True
"""

from __future__ import annotations

from numba import prange

from ._jit import kernel
from ._simd import lanes, vtranspose_block


@kernel
def swap_last_axes_range(src, dst, begin, end):
    """``dst[b, s, r] = src[b, r, s]`` for the items ``[begin, end)``: item ``q`` is image ``b`` and the
    rows ``r`` of one block of ``lanes`` (both arrays C-contiguous)."""
    batch, rows, cols = src.shape
    count = lanes(src)
    blocks = (rows + count - 1) // count
    s, d = src.reshape(-1), dst.reshape(-1)
    for q in range(begin, end):
        b = q // blocks
        r0 = (q - b * blocks) * count
        r1 = min(r0 + count, rows)
        base = b * rows * cols
        c0 = 0
        if r1 - r0 == count:
            while c0 + count <= cols:
                vtranspose_block(s, base + r0 * cols + c0, cols, d, base + c0 * rows + r0, rows)
                c0 += count
        for c in range(c0, cols):
            for r in range(r0, r1):
                d[base + c * rows + r] = s[base + r * cols + c]


@kernel(parallel=True)
def swap_last_axes_parallel(src, dst, n_chunks):
    """:func:`swap_last_axes_range` over all items in ``n_chunks`` parallel blocks."""
    count = lanes(src)
    items = src.shape[0] * ((src.shape[1] + count - 1) // count)
    for t in prange(n_chunks):
        swap_last_axes_range(src, dst, t * items // n_chunks, (t + 1) * items // n_chunks)


# At most this many channels take the few-channel kernels.
FEW = 8


@kernel(inline=True)
def _copy_channels(s, d, pixels, channels, to_planes):
    """One image: ``d[c * pixels + p] = s[p * channels + c]`` (``to_planes``) or the converse, ``channels`` a
    constant (indices from zero, which LLVM vectorizes: offset by the image's start they ran 6x slower)."""
    for p in range(pixels):
        for c in range(channels):
            if to_planes:
                d[c * pixels + p] = s[p * channels + c]
            else:
                d[p * channels + c] = s[c * pixels + p]


@kernel
def _few_channels_range(src, dst, begin, end, to_planes):
    """The images ``[begin, end)`` of :func:`few_channels_to_planes_range` (``to_planes``) or
    :func:`few_channels_to_pixels_range`.  Those two pass the direction from compiled code, where the copy loop
    vectorizes; given it from Python as a flag, the loop kept the branch and ran ~2.7x slower (1x112x112x3, one
    thread, 4.9 -> 13.3 us), so they stay two entry points."""
    channels = src.shape[2] if to_planes else src.shape[1]
    pixels = src.shape[1] if to_planes else src.shape[2]
    for b in range(begin, end):
        s, d = src[b].reshape(-1), dst[b].reshape(-1)
        if channels == 1:
            _copy_channels(s, d, pixels, 1, to_planes)
        elif channels == 2:
            _copy_channels(s, d, pixels, 2, to_planes)
        elif channels == 3:
            _copy_channels(s, d, pixels, 3, to_planes)
        elif channels == 4:
            _copy_channels(s, d, pixels, 4, to_planes)
        elif channels == 5:
            _copy_channels(s, d, pixels, 5, to_planes)
        elif channels == 6:
            _copy_channels(s, d, pixels, 6, to_planes)
        elif channels == 7:
            _copy_channels(s, d, pixels, 7, to_planes)
        else:
            _copy_channels(s, d, pixels, 8, to_planes)


@kernel
def few_channels_to_planes_range(src, dst, begin, end):
    """NHWC -> NCHW of few channels: ``dst[b, c, p] = src[b, p, c]`` (``src [B, pixels, C]``, ``C <= FEW``) for
    the images ``[begin, end)``."""
    _few_channels_range(src, dst, begin, end, True)


@kernel
def few_channels_to_pixels_range(src, dst, begin, end):
    """NCHW -> NHWC of few channels: ``dst[b, p, c] = src[b, c, p]`` (``src [B, C, pixels]``, ``C <= FEW``) for
    the images ``[begin, end)``."""
    _few_channels_range(src, dst, begin, end, False)


@kernel(parallel=True)
def few_channels_to_planes_parallel(src, dst, n_chunks):
    """:func:`few_channels_to_planes_range` over all images in ``n_chunks`` parallel blocks."""
    batch = src.shape[0]
    for t in prange(n_chunks):
        few_channels_to_planes_range(src, dst, t * batch // n_chunks, (t + 1) * batch // n_chunks)


@kernel(parallel=True)
def few_channels_to_pixels_parallel(src, dst, n_chunks):
    """:func:`few_channels_to_pixels_range` over all images in ``n_chunks`` parallel blocks."""
    batch = src.shape[0]
    for t in prange(n_chunks):
        few_channels_to_pixels_range(src, dst, t * batch // n_chunks, (t + 1) * batch // n_chunks)
