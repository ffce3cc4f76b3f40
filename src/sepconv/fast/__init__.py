"""The fast implementation: the same functions as :mod:`sepconv.reference`, on Numba kernels and BLAS.

Each function takes NHWC arrays with one batch axis in the compute dtype and the op's
``Conv2DGeometry``, allocates the output, picks a kernel by shape class and hands it plain
ints.  One module per op family; the kernels themselves live in :mod:`sepconv.kernels`.

The depthwise forward, its gradients and separable also have ``*_nchw`` functions, which
take NCHW arrays (same geometry) and return NCHW results: ``sepconv.api`` calls them for
``data_format="NCHW"`` when the implementation has them, instead of transposing to NHWC and back.
Some plans depend on the CPU's vector registers: :mod:`sepconv.fast.registers` sets them on import.
"""

from .conv2d import conv2d, conv2d_backprop_filter, conv2d_backprop_input
from .depthwise import (
    depthwise_conv2d,
    depthwise_conv2d_backprop_filter,
    depthwise_conv2d_backprop_filter_nchw,
    depthwise_conv2d_backprop_input,
    depthwise_conv2d_backprop_input_nchw,
    depthwise_conv2d_gradients,
    depthwise_conv2d_gradients_nchw,
    depthwise_conv2d_nchw,
)
from .registers import use_wide_register_plans  # this CPU's plans, set on import
from .separable import separable_conv2d, separable_conv2d_nchw

__all__ = [
    "conv2d",
    "conv2d_backprop_filter",
    "conv2d_backprop_input",
    "depthwise_conv2d",
    "depthwise_conv2d_backprop_filter",
    "depthwise_conv2d_backprop_filter_nchw",
    "depthwise_conv2d_backprop_input",
    "depthwise_conv2d_backprop_input_nchw",
    "depthwise_conv2d_gradients",
    "depthwise_conv2d_gradients_nchw",
    "depthwise_conv2d_nchw",
    "separable_conv2d",
    "separable_conv2d_nchw",
    "use_wide_register_plans",
]
