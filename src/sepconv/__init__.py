"""sepconv: TensorFlow's 2-D convolutions (conv2d, depthwise, separable and their gradients) on NumPy.

Results match ``tf.nn`` in every layout and padding mode; errors name the argument, the value
and what was expected.  See :mod:`sepconv.api` for the ops and :mod:`sepconv.geometry` for the
shape rules.
"""

from .api import (
    conv2d,
    conv2d_backprop_filter,
    conv2d_backprop_input,
    conv2d_transpose,
    depthwise_conv2d,
    depthwise_conv2d_backprop_filter,
    depthwise_conv2d_backprop_input,
    depthwise_conv2d_gradients,
    separable_conv2d,
    use_implementation,
)
from .geometry import Conv2DGeometry

__version__ = "0.1.0"

__all__ = [
    "Conv2DGeometry",
    "conv2d",
    "conv2d_backprop_filter",
    "conv2d_backprop_input",
    "conv2d_transpose",
    "depthwise_conv2d",
    "depthwise_conv2d_backprop_filter",
    "depthwise_conv2d_backprop_input",
    "depthwise_conv2d_gradients",
    "separable_conv2d",
    "use_implementation",
]
