"""Outputs placed for the SIMD kernels: 64-byte vectors that do not straddle cache lines.

NumPy's buffers start 16 bytes past a cache line (malloc's header), so in an NHWC array whose
pixel is a multiple of 64 bytes (C = 16, 32, 48, ... float32) every 64-byte vector of channels
straddles two lines, and a split load costs about twice a whole one (measured: the depthwise
forward on 1x56x56x144, 2 threads, 230 us misaligned vs 150 us aligned).  The kernels therefore
start their channel blocks at the input's first aligned channel
(:func:`sepconv.kernels.depthwise.aligned_shift`), and outputs are allocated at the same offset
from a cache line as the input they are computed from, so loads and stores are whole lines.  The
packed kernels (5x5, 7x7, ...), which read the input through a copy, take outputs on a line instead
(:func:`sepconv.fast.depthwise._packed_output`).
"""

from __future__ import annotations

import math

import numpy as np

from ..kernels._jit import kernel
from ..kernels._simd import VECTOR_BYTES, address
from . import recycled
from .recycled import recycled_bytes


@kernel
def start_at_offset_of(buffer, like):
    """The first index of ``buffer`` at ``like``'s offset from a 64-byte line (``like``'s address is
    a multiple of its itemsize, as NumPy's are)."""
    return ((address(like) - address(buffer)) % VECTOR_BYTES) // buffer.itemsize


@kernel
def start_on_line(buffer):
    """The first index of ``buffer`` on a 64-byte line (``buffer``'s address is a multiple of its itemsize)."""
    return (-address(buffer) % VECTOR_BYTES) // buffer.itemsize


# Outputs of an input smaller than this are plain np.empty: placing them costs ~0.9 us (a buffer one
# vector longer, a kernel call for the offset, a view), a tenth of a small call, and a few split stores
# cost less (public depthwise call, 1x33x33x8 3x3 stride 2: 12.2 -> 10.8 us; 1x4x4x8: 8.4 -> 6.6).
PLACED_MIN_BYTES = 32 * 1024


def empty_like_offset(shape: tuple[int, ...], dtype: np.dtype, like: np.ndarray) -> np.ndarray:
    """``np.empty(shape, dtype)`` whose data starts at the same offset from a cache line as ``like``'s
    (when ``like`` takes at least :data:`PLACED_MIN_BYTES`; else wherever NumPy puts it).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones(10000, np.float32)[3:]
    >>> out = empty_like_offset((4, 8), np.float32, x)
    >>> out.shape, (out.ctypes.data - x.ctypes.data) % 64
    ((4, 8), 0)
    """
    if like.nbytes < PLACED_MIN_BYTES:
        return np.empty(shape, dtype)
    return _empty_placed(shape, dtype, like)


# empty_apart_from places an output this many bytes past ``like``'s address modulo APART_PERIOD_BYTES: three
# cache lines.  By the output's distance from the input modulo 4 KB, 2 threads, one process, us (when this VM
# ran slow; in its fast hours no distance mattered): 3x3 stride 1 8x56x56x144 0 1129, 64 1050, 128 953, 192 900,
# 448 911, 704 1051; 8x112x112x32 760, 615, 629, 553, 577, 623; 8x28x28x192 (in steps of 64 from 0 to 960)
# 344 292 366 268 352 263 302 233 295 236 294 234 315 255 333 261.  An odd number of lines was fastest on every
# layer, and three lines past a multiple of four faster than one on some (1x112x112x64 0 149, 64 148, 192 132);
# stride 2 layers did not care (1x112x112x96 109-112).  The direct 5x5 forward, 1x65x65x320 dilation 2: 0 582,
# 1280 572, 128 505, 640 504, 64 471, 192 468, 320 472, 4032 467.
APART_BYTES = 3 * VECTOR_BYTES
APART_PERIOD_BYTES = 4 * VECTOR_BYTES


@kernel
def start_apart_from(buffer, like, on_line):
    """The first index of ``buffer`` :data:`APART_BYTES` past ``like``'s address (with ``on_line``, past the start of
    ``like``'s line) modulo :data:`APART_PERIOD_BYTES`.  One compiled call: NumPy's ``.ctypes.data`` costs ~1.4 us
    an array (an output placed for a 1x50x50x8 input took 4.8 us)."""
    target = address(like) + APART_BYTES - (address(like) % VECTOR_BYTES if on_line else 0)
    return ((target - address(buffer)) % APART_PERIOD_BYTES) // buffer.itemsize


def empty_apart_from(shape: tuple[int, ...], dtype: np.dtype, like: np.ndarray, on_line: bool = False) -> np.ndarray:
    """As :func:`empty_like_offset`, and three cache lines past a multiple of four lines from ``like``: for a
    kernel that stores each output pixel just after reading the input's pixels around it (the depthwise forward
    of unpacked and direct kernels and their input gradients, see :data:`APART_BYTES`), so that the output's lines
    do not fall in the L1 sets and line pairs of the input's lines beside them.  With ``on_line``, on a cache line
    that far past ``like``'s line instead (for a kernel that reads ``like`` in whole unaligned vectors and stores
    whole lines).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones(10000, np.float32)[3:]
    >>> out = empty_apart_from((40, 80), np.float32, x)
    >>> out.shape, (out.ctypes.data - x.ctypes.data) % 256
    ((40, 80), 192)
    >>> out = empty_apart_from((40, 80), np.float32, x, on_line=True)
    >>> out.ctypes.data % 64, (out.ctypes.data - (x.ctypes.data - x.ctypes.data % 64)) % 256
    (0, 192)
    """
    if like.nbytes < PLACED_MIN_BYTES:
        return np.empty(shape, dtype)
    return _empty_placed(shape, dtype, like, apart=True, on_line=on_line)


def empty_aligned(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` whose data starts on a 64-byte line (for outputs written in whole vectors).

    Examples
    --------
    >>> out = empty_aligned((300, 50), np.float32)
    >>> out.shape, out.ctypes.data % 64
    ((300, 50), 0)

    Below :data:`PLACED_MIN_BYTES` wherever NumPy puts it (as :func:`empty_like_offset`).
    """
    if math.prod(shape) * np.dtype(dtype).itemsize < PLACED_MIN_BYTES:
        return np.empty(shape, dtype)
    return _empty_placed(shape, dtype)


def _empty_placed(shape: tuple[int, ...], dtype: np.dtype, like: np.ndarray | None = None,
                  apart: bool = False, on_line: bool = False) -> np.ndarray:
    """``np.empty(shape, dtype)`` as a view of a buffer one vector longer (recycled when large, see
    :mod:`~sepconv.fast.recycled`), starting at ``like``'s offset from a 64-byte line, or on a line; with
    ``apart``, four vectors longer, :data:`APART_BYTES` past ``like``'s address modulo :data:`APART_PERIOD_BYTES`
    (with ``on_line`` too, past the start of ``like``'s line).
    A buffer too small to be recycled is a plain ``np.empty`` of the dtype (~0.5 us less than a byte
    buffer and a view)."""
    itemsize = like.itemsize if like is not None and dtype is like.dtype else np.dtype(dtype).itemsize
    count = math.prod(shape)
    period = APART_PERIOD_BYTES if apart else VECTOR_BYTES
    nbytes = (count + period // itemsize) * itemsize
    if nbytes < recycled.RECYCLED_MIN_BYTES:
        buffer = np.empty(nbytes // itemsize, dtype)
    else:
        buffer = recycled_bytes(nbytes).view(dtype)
    if apart:
        start = start_apart_from(buffer, like, on_line)
    elif like is not None:
        start = start_at_offset_of(buffer, like)
    else:
        start = start_on_line(buffer)
    return buffer[start:start + count].reshape(shape)
