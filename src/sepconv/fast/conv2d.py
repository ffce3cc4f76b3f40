"""Fast conv2d: geometry -> plain ints -> kernel in :mod:`sepconv.kernels.conv2d`. (Still the reference for now.)"""

from __future__ import annotations

from ..reference import (  # noqa: F401  (replaced by kernels as they land)
    conv2d,
    conv2d_backprop_filter,
    conv2d_backprop_input,
)
