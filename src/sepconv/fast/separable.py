"""Fast separable conv2d: depthwise, then a pointwise GEMM through NumPy's BLAS.

Same signature as :func:`sepconv.reference.separable_conv2d`: NHWC arrays with one batch
axis, in the compute dtype, with at least one element.

Two ways, chosen by :func:`plan`:

- **fused**: output pixels in bands whose depthwise result (``C * M`` values per pixel) fits
  in :data:`BAND_BYTES`, a cache-resident buffer; each band is computed by
  :func:`~sepconv.kernels.separable.depthwise_band_nhwc` and multiplied by the pointwise
  filter into its rows of the output at once.  The intermediate tensor never exists whole.
- **unfused**: the fast depthwise op writes the whole intermediate, then one GEMM.
"""

from __future__ import annotations

import numpy as np

from .. import reference
from ..geometry import Conv2DGeometry
from ..kernels import separable as kernels
from .depthwise import depthwise_conv2d

# The depthwise result of one band is at most this large (unless one BAND_MIN_PIXELS band is larger).
BAND_BYTES = 1024 * 1024
# Fewer rows than this make the pointwise GEMM inefficient: a band holds at least this many pixels.
BAND_MIN_PIXELS = 64


def plan(g: Conv2DGeometry, itemsize: int) -> tuple[str, int]:
    """``("fused", pixels per band)`` or ``("unfused", all pixels)`` for the geometry ``g``.

    Examples
    --------
    >>> from sepconv.geometry import depthwise_geometry
    >>> g = depthwise_geometry("separable_conv2d", (1, 56, 56, 144), (3, 3, 144, 1), 1, "SAME")
    >>> plan(g, 4)[0]
    'fused'
    """
    total = g.batch * g.out_h * g.out_w
    band = max(BAND_MIN_PIXELS, BAND_BYTES // (g.out_c * itemsize))
    if band >= total:
        return "unfused", total
    return "fused", band


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
    wd = np.ascontiguousarray(wd)
    if not np.isfinite(wd).all():
        return reference.separable_conv2d(x, wd, wp, g)
    n = x.shape[0]
    pointwise = wp.reshape(wp.shape[2], wp.shape[3])
    out = np.empty((n, g.out_h, g.out_w, pointwise.shape[1]), x.dtype)
    out2d = out.reshape(-1, pointwise.shape[1])
    method, band_pixels = plan(g, x.itemsize)
    if method == "unfused":
        mid = depthwise_conv2d(x, wd, g)
        np.matmul(mid.reshape(-1, g.out_c), pointwise, out=out2d)
        return out
    total = out2d.shape[0]
    band = np.empty((band_pixels, g.out_c), x.dtype)
    for begin in range(0, total, band_pixels):
        end = min(total, begin + band_pixels)
        kernels.depthwise_band_nhwc(x, wd, band, begin, end - begin, g.stride_h, g.stride_w, g.dil_h, g.dil_w,
                                    g.pad_top, g.pad_left, g.out_h, g.out_w)
        np.matmul(band[: end - begin], pointwise, out=out2d[begin:end])
    return out
