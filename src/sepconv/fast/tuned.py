"""Which dtypes take the shape-tuned kernels: float32 only.

The tuned kernels -- every depthwise kernel outside :mod:`sepconv.kernels.depthwise` (packed, direct 3x3, 5x5 and
7x7, AVX2 5x5, small-image, multiplier bands, native NCHW), and conv2d's and separable's own (Winograd, direct,
few-channel, register-tiled and few-pixel products, fused and small separable) -- run for float32, the dtype
networks train and deploy in.  Other dtypes (float64: gradient checks, reference work) take the general kernels:
:mod:`sepconv.kernels.depthwise` (vectorized and threaded too; NCHW through NHWC) and im2col with NumPy's BLAS.
Compiled for float64 as well, the tuned kernels took half of a first run's compile time (the test suite on a clean
clone: 13.5 minutes on 2 cores, ~5.5 of them compiling float64's) for layers no one runs at that precision.

Examples
--------
>>> import numpy as np
>>> tuned(np.dtype(np.float32).itemsize), tuned(np.dtype(np.float64).itemsize)
(True, False)
"""

from __future__ import annotations

TUNED_ITEMSIZE = 4


def tuned(itemsize: int) -> bool:
    """Whether values of ``itemsize`` bytes take the shape-tuned kernels."""
    return itemsize == TUNED_ITEMSIZE
