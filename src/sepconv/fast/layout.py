"""NCHW <-> NHWC copies on the layout kernels (:mod:`sepconv.kernels.layout`), for the NCHW paths that
compute in NHWC.

Examples
--------
>>> import numpy as np
>>> x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
>>> bool((nchw_to_nhwc(x) == x.transpose(0, 2, 3, 1)).all())
True
>>> bool((nhwc_to_nchw(nchw_to_nhwc(x)) == x).all())
True
"""

from __future__ import annotations

import numpy as np

from ..kernels import layout as kernels
from ..kernels._jit import PARALLEL_LAUNCH, thread_count
from ..kernels._simd import VECTOR_BYTES
from . import recycled

# Split over the threads from this many values (a copy: ~0.3 ns a value, against a few us to start a
# parallel region while the OpenMP workers spin, 60-90 us once they sleep: see kernels._jit).
PARALLEL_MIN_VALUES = 256 * 1024


def _swap_last_axes(src: np.ndarray, dst: np.ndarray) -> None:
    batch, rows, cols = src.shape
    if min(rows, cols) <= kernels.FEW:  # few channels: NHWC -> NCHW if they are the columns
        to_planes = cols <= kernels.FEW
        if src.size < PARALLEL_MIN_VALUES or batch == 1:
            (kernels.few_channels_to_planes_range if to_planes else kernels.few_channels_to_pixels_range)(
                src, dst, 0, batch)
        else:
            with PARALLEL_LAUNCH:
                (kernels.few_channels_to_planes_parallel if to_planes else kernels.few_channels_to_pixels_parallel)(
                    src, dst, min(batch, thread_count()))
        return
    if src.size < PARALLEL_MIN_VALUES:
        blocks = -(-src.shape[1] // (VECTOR_BYTES // src.itemsize))  # items: (b, block of a vector's rows)
        kernels.swap_last_axes_range(src, dst, 0, src.shape[0] * blocks)
    else:
        with PARALLEL_LAUNCH:
            kernels.swap_last_axes_parallel(src, dst, thread_count())


def nchw_to_nhwc(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a [N, C, H, W]`` (float32 or float64) as a C-contiguous ``[N, H, W, C]`` array: ``out`` if given
    (C-contiguous, that shape and dtype), else a new one."""
    n, c, h, w = a.shape
    out = recycled.empty((n, h, w, c), a.dtype) if out is None else out
    _swap_last_axes(np.ascontiguousarray(a).reshape(n, c, h * w), out.reshape(n, h * w, c))
    return out


def nhwc_to_nchw(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a [N, H, W, C]`` (float32 or float64) as a C-contiguous ``[N, C, H, W]`` array: ``out`` if given
    (C-contiguous, that shape and dtype), else a new one."""
    n, h, w, c = a.shape
    out = recycled.empty((n, c, h, w), a.dtype) if out is None else out
    _swap_last_axes(np.ascontiguousarray(a).reshape(n, h * w, c), out.reshape(n, c, h * w))
    return out
