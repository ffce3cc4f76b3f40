"""Fast separable: geometry -> plain ints -> kernel in :mod:`sepconv.kernels.separable`. (Still the reference for now.)"""

from __future__ import annotations

from ..reference import (  # noqa: F401  (replaced by kernels as they land)
    separable_conv2d,
)
