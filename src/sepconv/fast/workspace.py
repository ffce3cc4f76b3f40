"""Scratch arrays kept per thread between calls: the temporaries of an op that never leave it.

A fresh multi-hundred-kilobyte ``np.empty`` comes back from the allocator as newly mapped pages,
and touching them costs page faults on every call: glibc gives the top of its heap back to the
system once more than twice the last large block is free there, so an op whose temporaries and
output add up to that pays the faults again each call.  Measured: the 3 MB of a 56x56x64 Winograd
conv2d, ~0.5 ms; the 600 KB input repeated for a channel multiplier (depthwise 2x28x28x32,
``M = 3``), ~0.2 ms on top of a 50 us kernel.  A buffer kept per thread and per name is paid once.

Per thread, so concurrent calls never share one; a name is used once per call (two temporaries of
one op have two names).  Buffers larger than :data:`KEPT_WORKSPACE_BYTES` are not kept.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from ..kernels._simd import VECTOR_BYTES
from .aligned import PLACED_MIN_BYTES, start_at_offset_of, start_on_line

# Workspaces up to this size are kept per thread between calls.
KEPT_WORKSPACE_BYTES = 64 * 1024 * 1024
_kept = threading.local()


def workspace(name: str, shape: tuple[int, ...], dtype: np.dtype, like: np.ndarray | None = None) -> np.ndarray:
    """An uninitialized C-contiguous array for scratch use, reused by this thread's next calls with ``name``.

    The data starts on a 64-byte line (a vector split over two lines loads at about half speed),
    or, given ``like``, at ``like``'s offset from a line (for a kernel's output whose input is ``like``; not
    for a ``like`` below :data:`~sepconv.fast.aligned.PLACED_MIN_BYTES`).

    Examples
    --------
    >>> a = workspace("doc", (2, 3), np.float32)
    >>> a.shape, a.dtype, workspace("doc", (3, 2), np.float32).ctypes.data == a.ctypes.data, a.ctypes.data % 64
    ((2, 3), dtype('float32'), True, 0)
    >>> x = np.ones(10000, np.float32)[3:]
    >>> (workspace("doc", (4, 8), np.float32, like=x).ctypes.data - x.ctypes.data) % 64
    0
    """
    buffers = _kept.__dict__
    if like is not None and like.nbytes < PLACED_MIN_BYTES:
        like = None  # as the outputs of small inputs (sepconv.fast.aligned): placing costs more than it saves
    if like is None:  # the last call's array when the shape and dtype are the same (0.2 us, not 1.8)
        last = buffers.get((name, "array"))
        if last is not None and last.shape == shape and last.dtype == dtype:
            return last
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > KEPT_WORKSPACE_BYTES:
        buffer = np.empty(nbytes + VECTOR_BYTES, np.uint8)
    else:
        buffer = buffers.get(name)
        if buffer is None or buffer.nbytes < nbytes + VECTOR_BYTES:
            buffer = buffers[name] = np.empty(nbytes + VECTOR_BYTES, np.uint8)
    start = start_on_line(buffer) if like is None else start_at_offset_of(buffer, like)
    array = buffer[start:start + nbytes].view(dtype).reshape(shape)
    if like is None and nbytes <= KEPT_WORKSPACE_BYTES:
        buffers[(name, "array")] = array
    return array
