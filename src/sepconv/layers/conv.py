"""Convolution layers with Keras's arguments, computed by the library's own ops and gradients.

=====================  ==========================================  ===========================================
layer                  forward                                     backward
=====================  ==========================================  ===========================================
``Conv2D``             :func:`sepconv.conv2d`                      ``conv2d_backprop_input`` / ``_filter``
``DepthwiseConv2D``    :func:`sepconv.depthwise_conv2d`            ``depthwise_conv2d_gradients`` (both at once)
``SeparableConv2D``    depthwise, then a 1x1 ``conv2d`` (training)  the gradients above, pointwise first
                       or :func:`sepconv.separable_conv2d` (inference)
=====================  ==========================================  ===========================================

Weights are ``[kh, kw, in, out]`` (HWIO); the depthwise kernel is ``[kh, kw, in, depth_multiplier]``
and its output channel ``k * depth_multiplier + q`` comes from input channel ``k``, as in TensorFlow.
The bias is added after the (pointwise) convolution, then the activation, as in Keras.

Initial weights come from each filter's true fan-in: ``kh*kw*in`` for ``Conv2D``, ``kh*kw`` for
the depthwise kernel (each output reads one channel) and ``in*depth_multiplier`` for the
pointwise kernel.  Keras computes the depthwise fan-in as ``kh*kw*in``, which shrinks the initial
depthwise weights by ``sqrt(in)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import api, cost
from ..geometry import conv2d_geometry, depthwise_geometry
from .base import Initializer, Layer, Shape, boolean, initializer, keras_padding, positive_int, positive_pair
from .basic import activation_layer


class _Conv(Layer):
    """Arguments every convolution layer shares, the bias and the activation."""

    def __init__(self, kernel_size: Any, strides: Any, padding: str, dilation_rate: Any, use_bias: bool,
                 activation: str | None) -> None:
        super().__init__()
        name = type(self).__name__
        self.kernel_size = positive_pair(name, "kernel_size", kernel_size)
        self.strides = positive_pair(name, "strides", strides)
        self.padding = keras_padding(name, padding)
        self.dilation_rate = positive_pair(name, "dilation_rate", dilation_rate)
        self.use_bias = boolean(name, "use_bias", use_bias)
        self.activation = activation_layer(name, activation)
        self._activation_name = activation

    def _window(self) -> dict[str, Any]:
        """The ops' window arguments."""
        return {"strides": list(self.strides), "padding": self.padding, "dilations": list(self.dilation_rate)}

    def _finish(self, z: np.ndarray) -> np.ndarray:
        if self.use_bias:
            z = z + self.params["bias"]
        return self.activation.forward(z) if self.activation else z

    def _start_backward(self, dy: np.ndarray) -> np.ndarray:
        """Through the activation; the bias gradient."""
        if self.activation:
            dy = self.activation.backward(dy)
        self.grads = {"bias": dy.sum(axis=(0, 1, 2))} if self.use_bias else {}
        return dy

    def _add_bias(self, channels: int, dtype: np.dtype) -> None:
        if self.use_bias:
            self.params["bias"] = np.zeros(channels, dtype)

    def _op_cost(self, op: str, filter_shape: Shape, pointwise_shape: Shape | None = None) -> tuple[int, int]:
        c = cost.op_cost(op, (1, *self.input_shape), filter_shape, list(self.strides), self.padding,
                         dilations=list(self.dilation_rate), pointwise_shape=pointwise_shape)
        bias = self.params["bias"].size if self.use_bias else 0
        return c.params + bias, c.macs

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self._describe().items())
        return (f"{type(self).__name__}(kernel_size={self.kernel_size}{extra}, strides={self.strides}, "
                f"padding={self.padding.lower()!r}, dilation_rate={self.dilation_rate}, use_bias={self.use_bias}, "
                f"activation={self._activation_name!r})")

    def _describe(self) -> dict[str, Any]:
        return {}


class Conv2D(_Conv):
    """2-D convolution layer (as ``keras.layers.Conv2D``, NHWC), on :func:`sepconv.conv2d`.

    Parameters
    ----------
    filters : int
        Output channels.
    kernel_size : int or (int, int)
    strides : int or (int, int)
    padding : {"valid", "same"}
        Any case; ``"same"`` pads as TensorFlow does (the odd pixel bottom/right).
    dilation_rate : int or (int, int)
    use_bias : bool
    activation : {None, "linear", "relu", "relu6"}
    kernel_initializer : str or callable
        ``"he_normal"`` (default), ``"glorot_uniform"`` or ``f(rng, shape, fan_in, fan_out)``.

    Raises
    ------
    ValueError, TypeError
        Naming the argument and the value received.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.layers import Conv2D
    >>> conv = Conv2D(16, 3, padding="same", activation="relu")
    >>> conv.build((8, 8, 1), np.random.default_rng(0), np.float32)
    (8, 8, 16)
    >>> conv.forward(np.ones((2, 8, 8, 1), np.float32)).shape
    (2, 8, 8, 16)
    """

    def __init__(self, filters: int, kernel_size: Any, *, strides: Any = 1, padding: str = "valid",
                 dilation_rate: Any = 1, use_bias: bool = True, activation: str | None = None,
                 kernel_initializer: str | Initializer = "he_normal") -> None:
        super().__init__(kernel_size, strides, padding, dilation_rate, use_bias, activation)
        self.filters = positive_int("Conv2D", "filters", filters)
        self.kernel_initializer = initializer("Conv2D", "kernel_initializer", kernel_initializer)

    def _build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        kh, kw = self.kernel_size
        in_c = input_shape[-1]
        shape = (kh, kw, in_c, self.filters)
        g = conv2d_geometry("Conv2D", (1, *input_shape), shape, **self._window(), data_format="NHWC")
        self.params = {"kernel": self.kernel_initializer(rng, shape, kh * kw * in_c, kh * kw * self.filters)
                       .astype(dtype)}
        self._add_bias(self.filters, dtype)
        return (g.out_h, g.out_w, self.filters)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._x = x
        return self._finish(api.conv2d(x, self.params["kernel"], **self._window()))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dz = self._start_backward(dy)
        kernel = self.params["kernel"]
        self.grads["kernel"] = api.conv2d_backprop_filter(self._x, kernel.shape, dz, **self._window())
        return api.conv2d_backprop_input(self._x.shape, kernel, dz, **self._window())

    def cost(self) -> tuple[int, int]:
        return self._op_cost("conv2d", self.params["kernel"].shape)

    def _describe(self) -> dict[str, Any]:
        return {"filters": self.filters}


class DepthwiseConv2D(_Conv):
    """Depthwise convolution layer (as ``keras.layers.DepthwiseConv2D``), on :func:`sepconv.depthwise_conv2d`.

    Each input channel is convolved with its own ``depth_multiplier`` filters; channels are not mixed.

    Parameters
    ----------
    kernel_size, strides, padding, dilation_rate, use_bias, activation
        As :class:`Conv2D`.
    depth_multiplier : int
        Filters per input channel; the output has ``in_channels * depth_multiplier`` channels.
    depthwise_initializer : str or callable
        As ``kernel_initializer`` of :class:`Conv2D`, with fan-in ``kh*kw``.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.layers import DepthwiseConv2D
    >>> dw = DepthwiseConv2D(3, depth_multiplier=2, padding="same")
    >>> dw.build((8, 8, 4), np.random.default_rng(0), np.float32)
    (8, 8, 8)
    """

    def __init__(self, kernel_size: Any, *, strides: Any = 1, padding: str = "valid", depth_multiplier: int = 1,
                 dilation_rate: Any = 1, use_bias: bool = True, activation: str | None = None,
                 depthwise_initializer: str | Initializer = "he_normal") -> None:
        super().__init__(kernel_size, strides, padding, dilation_rate, use_bias, activation)
        self.depth_multiplier = positive_int("DepthwiseConv2D", "depth_multiplier", depth_multiplier)
        self.depthwise_initializer = initializer("DepthwiseConv2D", "depthwise_initializer", depthwise_initializer)

    def _build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        kh, kw = self.kernel_size
        m = self.depth_multiplier
        shape = (kh, kw, input_shape[-1], m)
        g = depthwise_geometry("DepthwiseConv2D", (1, *input_shape), shape, **self._window(), data_format="NHWC")
        self.params = {"depthwise_kernel": self.depthwise_initializer(rng, shape, kh * kw, kh * kw * m).astype(dtype)}
        self._add_bias(g.out_c, dtype)
        return (g.out_h, g.out_w, g.out_c)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._x = x
        return self._finish(api.depthwise_conv2d(x, self.params["depthwise_kernel"], **self._window()))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dz = self._start_backward(dy)
        dx, self.grads["depthwise_kernel"] = api.depthwise_conv2d_gradients(self._x, self.params["depthwise_kernel"],
                                                                            dz, **self._window())
        return dx

    def cost(self) -> tuple[int, int]:
        return self._op_cost("depthwise_conv2d", self.params["depthwise_kernel"].shape)

    def _describe(self) -> dict[str, Any]:
        return {"depth_multiplier": self.depth_multiplier}


class SeparableConv2D(_Conv):
    """Depthwise-separable convolution layer (as ``keras.layers.SeparableConv2D``).

    A depthwise convolution (``kernel_size``, ``strides``, ``padding``, ``dilation_rate``) with
    ``depth_multiplier`` filters per input channel, then a 1x1 convolution to ``filters``
    channels, then the bias and the activation; nothing in between, exactly
    :func:`sepconv.separable_conv2d`.

    Parameters
    ----------
    filters : int
        Output channels.
    kernel_size, strides, padding, dilation_rate, use_bias, activation
        As :class:`Conv2D`.
    depth_multiplier : int
        Depthwise filters per input channel.
    depthwise_initializer, pointwise_initializer : str or callable
        As ``kernel_initializer`` of :class:`Conv2D`; fan-ins ``kh*kw`` and ``in*depth_multiplier``.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.layers import SeparableConv2D
    >>> sep = SeparableConv2D(32, 3, depth_multiplier=2, padding="same")
    >>> sep.build((8, 8, 16), np.random.default_rng(0), np.float32)
    (8, 8, 32)
    >>> sorted((k, v.shape) for k, v in sep.params.items())
    [('bias', (32,)), ('depthwise_kernel', (3, 3, 16, 2)), ('pointwise_kernel', (1, 1, 32, 32))]
    """

    def __init__(self, filters: int, kernel_size: Any, *, strides: Any = 1, padding: str = "valid",
                 dilation_rate: Any = 1, depth_multiplier: int = 1, use_bias: bool = True,
                 activation: str | None = None, depthwise_initializer: str | Initializer = "he_normal",
                 pointwise_initializer: str | Initializer = "he_normal") -> None:
        super().__init__(kernel_size, strides, padding, dilation_rate, use_bias, activation)
        self.filters = positive_int("SeparableConv2D", "filters", filters)
        self.depth_multiplier = positive_int("SeparableConv2D", "depth_multiplier", depth_multiplier)
        self.depthwise_initializer = initializer("SeparableConv2D", "depthwise_initializer", depthwise_initializer)
        self.pointwise_initializer = initializer("SeparableConv2D", "pointwise_initializer", pointwise_initializer)

    def _build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        kh, kw = self.kernel_size
        m = self.depth_multiplier
        dw_shape = (kh, kw, input_shape[-1], m)
        g = depthwise_geometry("SeparableConv2D", (1, *input_shape), dw_shape, **self._window(), data_format="NHWC")
        pw_shape = (1, 1, g.out_c, self.filters)
        self.params = {
            "depthwise_kernel": self.depthwise_initializer(rng, dw_shape, kh * kw, kh * kw * m).astype(dtype),
            "pointwise_kernel": self.pointwise_initializer(rng, pw_shape, g.out_c, self.filters).astype(dtype),
        }
        self._add_bias(self.filters, dtype)
        return (g.out_h, g.out_w, self.filters)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        depthwise, pointwise = self.params["depthwise_kernel"], self.params["pointwise_kernel"]
        if not training:  # one call; nothing kept for a backward pass
            return self._finish(api.separable_conv2d(x, depthwise, pointwise, **self._window()))
        self._x = x
        self._mid = api.depthwise_conv2d(x, depthwise, **self._window())
        return self._finish(api.conv2d(self._mid, pointwise, 1, "VALID"))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dz = self._start_backward(dy)
        depthwise, pointwise = self.params["depthwise_kernel"], self.params["pointwise_kernel"]
        self.grads["pointwise_kernel"] = api.conv2d_backprop_filter(self._mid, pointwise.shape, dz, 1, "VALID")
        dmid = api.conv2d_backprop_input(self._mid.shape, pointwise, dz, 1, "VALID")
        dx, self.grads["depthwise_kernel"] = api.depthwise_conv2d_gradients(self._x, depthwise, dmid, **self._window())
        return dx

    def cost(self) -> tuple[int, int]:
        return self._op_cost("separable_conv2d", self.params["depthwise_kernel"].shape,
                             self.params["pointwise_kernel"].shape)

    def _describe(self) -> dict[str, Any]:
        return {"filters": self.filters, "depth_multiplier": self.depth_multiplier}
