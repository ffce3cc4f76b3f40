"""Large outputs in recycled memory: the buffer of a result nobody holds any more serves the next one.

A large ``np.empty`` comes back from the allocator as newly mapped pages (glibc maps every block
over 32 MB afresh, and smaller ones once the top of its heap has been given back), and the kernel
that writes it first pays a page fault per page — inside the parallel region, where on this
machine's VMs (which hand freed memory back to the host) the faults cost far more than the writes:
the stride-2 input gradient of 8x112x112x96 (a 38.5 MB result) takes ~1.3 ms on mapped pages,
4.5 ms on new ones, and 22-50 ms in a PyTorch training step, where every output was new memory.
:mod:`~sepconv.fast.workspace` keeps the temporaries that never leave an op; outputs leave, so they
are recycled instead: each buffer of at least :data:`RECYCLED_MIN_BYTES` is kept here and handed
out again, for an output of the same size, once no array refers to it (its reference count says
so).  At most :data:`RECYCLED_MAX_BYTES` are kept, in use or free (``SEPCONV_RECYCLED_MB``, read
at import; ``0`` turns recycling off): a buffer that would pass it first drops free ones of other
sizes, and is a plain ``np.empty`` if that is not enough.

Not below :data:`RECYCLED_MIN_BYTES` (8 MB): there glibc reuses its heap, and a block just freed by
the framework's previous op is still in cache where ours was last written a whole network ago.  In
MobileNetV2's inference (PyTorch, ``channels_last``, batch 8, kernels timed inside the network, us,
plain vs recycled from 1 MB): 8x28x28x192 214-255 vs 317-430, 8x14x14x384 118 vs 196-200,
8x7x7x960 62-64 vs 78-83; from 8 MB the small ones are back to par, and 8x112x112x32 (a 12.8 MB
result) gains, 1383-1771 vs 1134-1172.
"""

from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

RECYCLED_MIN_BYTES = 8 * 1024 * 1024


def _max_bytes(setting: str) -> int:
    """``SEPCONV_RECYCLED_MB`` in bytes."""
    try:
        megabytes = float(setting)
    except ValueError:
        megabytes = -1.0
    if not (megabytes >= 0 and math.isfinite(megabytes)):  # NaN compares false
        raise ValueError(f"SEPCONV_RECYCLED_MB must be a number of megabytes >= 0 (0: no recycling), got {setting!r}")
    return int(megabytes * 1024 * 1024)


RECYCLED_MAX_BYTES = _max_bytes(os.environ.get("SEPCONV_RECYCLED_MB", "512"))

_lock = threading.Lock()
_kept: dict[int, list[np.ndarray]] = {}  # nbytes -> the buffers of that size
_kept_bytes = 0
_FREE = 2  # a kept buffer's references when no array uses it: its list's and getrefcount's argument


def recycled_bytes(nbytes: int) -> np.ndarray:
    """An uninitialized ``uint8`` buffer of ``nbytes``: a free kept one of that size if there is one.

    Examples
    --------
    >>> a = recycled_bytes(RECYCLED_MIN_BYTES)
    >>> address = a.ctypes.data
    >>> view = a[100:]
    >>> del a
    >>> recycled_bytes(RECYCLED_MIN_BYTES).ctypes.data == address  # ``view`` still uses it
    False
    >>> del view
    >>> recycled_bytes(RECYCLED_MIN_BYTES).ctypes.data == address
    True
    """
    global _kept_bytes
    if nbytes < RECYCLED_MIN_BYTES or nbytes > RECYCLED_MAX_BYTES:
        return np.empty(nbytes, np.uint8)
    with _lock:  # a buffer handed out is referenced by the caller before the lock is released
        same = _kept.get(nbytes)
        if same is not None:
            for index in range(len(same)):
                if sys.getrefcount(same[index]) == _FREE:
                    return same[index]
        if _kept_bytes + nbytes > RECYCLED_MAX_BYTES:
            _drop_free(_kept_bytes + nbytes - RECYCLED_MAX_BYTES)
        buffer = np.empty(nbytes, np.uint8)
        if _kept_bytes + nbytes <= RECYCLED_MAX_BYTES:
            _kept.setdefault(nbytes, []).append(buffer)
            _kept_bytes += nbytes
        return buffer


def _drop_free(nbytes: int) -> None:
    """Forget free kept buffers (under the lock) until ``nbytes`` are dropped or none is left."""
    global _kept_bytes
    for size in list(_kept):
        buffers = _kept[size]
        index = 0
        while index < len(buffers) and nbytes > 0:
            if sys.getrefcount(buffers[index]) == _FREE:
                del buffers[index]
                _kept_bytes -= size
                nbytes -= size
            else:
                index += 1
        if not buffers:
            del _kept[size]
        if nbytes <= 0:
            return


def empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` (C order), in a recycled buffer when it is large.

    Examples
    --------
    >>> empty((2, 3), np.float32).shape
    (2, 3)
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < RECYCLED_MIN_BYTES:
        return np.empty(shape, dtype)
    return recycled_bytes(nbytes).view(dtype).reshape(shape)
