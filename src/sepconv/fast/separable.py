"""Fast separable conv2d: the fast depthwise op, then the pointwise 1x1 as one GEMM through NumPy's BLAS.

Same signature as :func:`sepconv.reference.separable_conv2d`: NHWC arrays with one batch
axis, in the compute dtype, with at least one element.

Two plans:

- **unfused** (the default): :func:`sepconv.fast.depthwise.depthwise_conv2d` (parallel over
  output rows) writes the depthwise result, and one ``[pixels, C*M] @ [C*M, out_c]`` GEMM reads
  it back.
- **fused** (:data:`FUSE` = True): output pixels in bands whose depthwise result (``C * M``
  values per pixel) fits in :data:`BAND_BYTES`, a cache-resident buffer; each band is computed
  by :func:`~sepconv.kernels.separable.depthwise_band_nhwc` on the calling thread and multiplied
  by the pointwise filter into its rows of the output at once.  The intermediate tensor never
  exists whole.

Fusion saves the intermediate's traffic, but on two cores it loses: the band kernel runs on one
thread between BLAS calls, and the whole-tensor GEMM is more efficient than per-band ones.
Measured on this machine (Xeon, 2 cores; µs, best of 15, ``OMP_WAIT_POLICY=PASSIVE`` as
:mod:`sepconv.kernels._jit` sets it), fused vs unfused: 1x56x56x144 -> 144: 1479 vs 1064;
8x28x28x192 -> 64: 2859 vs 1786; 1x19x19x728 -> 728: 2298 vs 2250; 1x147x147x64 -> 128:
4777 vs 3126; 1x28x28x96 k5 s2 -> 160: 253 vs 164; with one thread each, unfused still wins
(1661 vs 1535 on the first).  So unfused is the default; the fused plan stays, tested, for
machines where the intermediate's traffic dominates.
"""

from __future__ import annotations

import numpy as np

from .. import reference
from ..geometry import Conv2DGeometry
from ..kernels import separable as kernels
from . import depthwise
from .conv2d import workspace

# Take the fused plan (see above).
FUSE = False
# The depthwise result of one band is at most this large (unless one BAND_MIN_PIXELS band is larger).
# Measured 256 KB .. 16 MB: fewer, larger pointwise GEMMs win over L2 residency here (2 MB L2):
# 8x28x28x192 -> 64 took 1.70 ms with 1 MB bands, 1.55 ms with 4 MB.
BAND_BYTES = 4 * 1024 * 1024
# Fewer rows than this make the pointwise GEMM inefficient: a band holds at least this many pixels.
BAND_MIN_PIXELS = 64


def band_pixels(g: Conv2DGeometry, itemsize: int) -> int:
    """Output pixels per band for the geometry ``g``: the band's depthwise result fits in :data:`BAND_BYTES`.

    Examples
    --------
    >>> from sepconv.geometry import depthwise_geometry
    >>> g = depthwise_geometry("separable_conv2d", (1, 56, 56, 144), (3, 3, 144, 1), 1, "SAME")
    >>> band_pixels(g, 4) * 144 * 4 <= BAND_BYTES
    True
    """
    total = g.batch * g.out_h * g.out_w
    return max(1, min(total, max(BAND_MIN_PIXELS, BAND_BYTES // (g.out_c * itemsize))))


def separable_conv2d(x: np.ndarray, wd: np.ndarray, wp: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """Depthwise ``wd [kh, kw, C, M]`` then pointwise ``wp [1, 1, C*M, out_c]``: ``[N, out_h, out_w, out_c]``.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.geometry import depthwise_geometry
    >>> x, wd, wp = np.ones((1, 5, 5, 2)), np.ones((3, 3, 2, 1)), np.ones((1, 1, 2, 3))
    >>> g = depthwise_geometry("separable_conv2d", x.shape, wd.shape, 1, "SAME")
    >>> separable_conv2d(x, wd, wp, g)[0, :2, :2, 0]
    array([[ 8., 12.],
           [12., 18.]])
    """
    if not FUSE:
        y = depthwise.depthwise_conv2d(x, wd, g)
        pointwise = wp.reshape(wp.shape[2], wp.shape[3])
        out = np.empty((*y.shape[:3], pointwise.shape[1]), y.dtype)
        np.matmul(y.reshape(-1, y.shape[3]), pointwise, out=out.reshape(-1, pointwise.shape[1]))
        return out
    wd = np.ascontiguousarray(wd)
    if not np.isfinite(wd).all():
        return reference.separable_conv2d(x, wd, wp, g)
    n = x.shape[0]
    pointwise = wp.reshape(wp.shape[2], wp.shape[3])
    out = np.empty((n, g.out_h, g.out_w, pointwise.shape[1]), x.dtype)
    out2d = out.reshape(-1, pointwise.shape[1])
    total = out2d.shape[0]
    pixels = band_pixels(g, x.itemsize)
    band = workspace("separable_band", (pixels, g.out_c), x.dtype)
    wd_flat = wd.reshape(g.kh, g.kw, g.out_c)
    for begin in range(0, total, pixels):
        end = min(total, begin + pixels)
        kernels.depthwise_band_nhwc(x, wd_flat, band, g.multiplier, begin, end - begin, g.stride_h, g.stride_w,
                                    g.dil_h, g.dil_w, g.pad_top, g.pad_left, g.out_h, g.out_w)
        np.matmul(band[: end - begin], pointwise, out=out2d[begin:end])
    return out


def separable_conv2d_nchw(x: np.ndarray, wd: np.ndarray, wp: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """NCHW, natively: the NCHW depthwise op, then per image ``[out_c, C*M] @ [C*M, out_h*out_w]``.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.geometry import depthwise_geometry
    >>> x, wd, wp = np.ones((1, 2, 5, 5)), np.ones((3, 3, 2, 1)), np.ones((1, 1, 2, 3))
    >>> g = depthwise_geometry("separable_conv2d", x.shape, wd.shape, 1, "SAME", "NCHW")
    >>> separable_conv2d_nchw(x, wd, wp, g)[0, 0, :2, :2]
    array([[ 8., 12.],
           [12., 18.]])
    """
    y = depthwise.depthwise_conv2d_nchw(x, wd, g)
    n, channels, out_h, out_w = y.shape
    pointwise_t = wp.reshape(channels, wp.shape[3]).T
    out = np.empty((n, pointwise_t.shape[0], out_h, out_w), y.dtype)
    np.matmul(pointwise_t, y.reshape(n, channels, out_h * out_w), out=out.reshape(n, pointwise_t.shape[0], -1))
    return out
