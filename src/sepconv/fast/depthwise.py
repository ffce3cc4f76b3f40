"""Fast depthwise: geometry -> plain ints -> kernel in :mod:`sepconv.kernels.depthwise`. (Still the reference for now.)"""

from __future__ import annotations

from ..reference import (  # noqa: F401  (replaced by kernels as they land)
    depthwise_conv2d,
    depthwise_conv2d_backprop_filter,
    depthwise_conv2d_backprop_input,
)
