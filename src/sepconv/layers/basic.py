"""The layers a small CNN needs around its convolutions: activations, batch normalization,
pooling, flatten and dense.  All NHWC, all with exact gradients."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import api
from .base import (
    Initializer,
    Layer,
    Shape,
    boolean,
    initializer,
    keras_padding,
    positive_float,
    positive_int,
    positive_pair,
    unit_interval,
)

# --------------------------------------------------------------------------- activations


class ReLU(Layer):
    """``max(x, 0)``; the gradient at 0 is 0.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.layers import ReLU
    >>> ReLU().forward(np.array([-1.0, 0.5]))
    array([0. , 0.5])
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._passes = x > 0
        return np.where(self._passes, x, 0).astype(x.dtype, copy=False)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return np.where(self._passes, dy, 0).astype(dy.dtype, copy=False)


class ReLU6(Layer):
    """``min(max(x, 0), 6)`` (MobileNet's activation); the gradient at 0 and 6 is 0.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.layers import ReLU6
    >>> ReLU6().forward(np.array([-1.0, 3.0, 9.0]))
    array([0., 3., 6.])
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._passes = (x > 0) & (x < 6)
        return np.clip(x, 0, 6).astype(x.dtype, copy=False)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return np.where(self._passes, dy, 0).astype(dy.dtype, copy=False)


ACTIVATIONS: dict[str | None, type[Layer] | None] = {None: None, "linear": None, "relu": ReLU, "relu6": ReLU6}


def activation_layer(layer: str, value: Any) -> Layer | None:
    """Keras's ``activation`` argument: ``None``/``"linear"`` (none), ``"relu"`` or ``"relu6"``."""
    if not (value is None or isinstance(value, str)) or value not in ACTIVATIONS:
        raise ValueError(f"{layer}: `activation` must be one of None, 'linear', 'relu', 'relu6', "
                         f"got activation={value!r}")
    cls = ACTIVATIONS[value]
    return cls() if cls is not None else None


# --------------------------------------------------------------------------- batch normalization


class BatchNormalization(Layer):
    """Normalize each channel over the batch and the image, then scale by ``gamma`` and shift by ``beta``.

    In training, the batch's mean and variance are used and folded into moving averages
    (``moving = momentum * moving + (1 - momentum) * batch``); in inference the moving averages
    are used.  Keras's names and defaults; the last axis (channels) is normalized.

    Parameters
    ----------
    momentum : float
        Weight of the old moving average, in ``[0, 1)``.
    epsilon : float
        Added to the variance before the square root.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.layers import BatchNormalization
    >>> bn = BatchNormalization()
    >>> bn.build((2, 2, 3), np.random.default_rng(0), np.float64)
    (2, 2, 3)
    >>> y = bn.forward(np.random.default_rng(1).normal(5, 2, (8, 2, 2, 3)), training=True)
    >>> bool(abs(y.mean()) < 1e-12), round(float(y.std()), 3)
    (True, 1.0)
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3) -> None:
        super().__init__()
        self.momentum = unit_interval("BatchNormalization", "momentum", momentum)
        self.epsilon = positive_float("BatchNormalization", "epsilon", epsilon)

    def _build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        channels = input_shape[-1]
        self.params = {"gamma": np.ones(channels, dtype), "beta": np.zeros(channels, dtype)}
        self.state = {"moving_mean": np.zeros(channels, dtype), "moving_variance": np.ones(channels, dtype)}
        return input_shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        axes = tuple(range(x.ndim - 1))
        if training:
            mean, var = x.mean(axis=axes), x.var(axis=axes)
            m = self.momentum
            self.state["moving_mean"][...] = m * self.state["moving_mean"] + (1 - m) * mean
            self.state["moving_variance"][...] = m * self.state["moving_variance"] + (1 - m) * var
        else:
            mean, var = self.state["moving_mean"], self.state["moving_variance"]
        self._training = training
        self._inv_std = (1.0 / np.sqrt(var + self.epsilon)).astype(x.dtype)
        self._normalized = (x - mean) * self._inv_std
        return self._normalized * self.params["gamma"] + self.params["beta"]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        axes = tuple(range(dy.ndim - 1))
        xhat = self._normalized
        self.grads = {"gamma": (dy * xhat).sum(axis=axes), "beta": dy.sum(axis=axes)}
        dxhat = dy * self.params["gamma"]
        if not self._training:  # mean and variance were constants
            return dxhat * self._inv_std
        # the batch's mean and variance depend on x too
        return self._inv_std * (dxhat - dxhat.mean(axis=axes) - xhat * (dxhat * xhat).mean(axis=axes))

    def __repr__(self) -> str:
        return f"BatchNormalization(momentum={self.momentum}, epsilon={self.epsilon})"


# --------------------------------------------------------------------------- pooling


class _Pooling2D(Layer):
    """Non-overlapping windows (``strides == pool_size``), ``"valid"`` padding: rows and columns
    that do not fill a window are dropped, as Keras does."""

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid") -> None:
        super().__init__()
        name = type(self).__name__
        self.pool_size = positive_pair(name, "pool_size", pool_size)
        if strides is not None and positive_pair(name, "strides", strides) != self.pool_size:
            raise ValueError(f"{name}: `strides` must be None or equal to pool_size={self.pool_size} "
                             f"(non-overlapping windows), got strides={strides!r}")
        keras_padding(name, padding, allowed=("valid",))

    def _build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        h, w, c = input_shape
        ph, pw = self.pool_size
        if h < ph or w < pw:
            raise ValueError(f"{type(self).__name__}: pool_size={self.pool_size} is larger than the input "
                             f"({h}x{w})")
        return (h // ph, w // pw, c)

    def _windows(self, x: np.ndarray) -> np.ndarray:
        """``[N, H, W, C]`` -> ``[N, H/ph, W/pw, C, ph*pw]`` (a copy)."""
        n, c = x.shape[0], x.shape[-1]
        (oh, ow, _), (ph, pw) = self.output_shape, self.pool_size
        win = x[:, :oh * ph, :ow * pw].reshape(n, oh, ph, ow, pw, c).transpose(0, 1, 3, 5, 2, 4)
        return win.reshape(n, oh, ow, c, ph * pw)

    def _unwindows(self, dwin: np.ndarray) -> np.ndarray:
        """The adjoint of :meth:`_windows`: scatter back, zeros where no window reads."""
        n, oh, ow, c, _ = dwin.shape
        ph, pw = self.pool_size
        dx = np.zeros((n, *self.input_shape), dwin.dtype)
        blocks = dwin.reshape(n, oh, ow, c, ph, pw).transpose(0, 1, 4, 2, 5, 3)
        dx[:, :oh * ph, :ow * pw] = blocks.reshape(n, oh * ph, ow * pw, c)
        return dx

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pool_size={self.pool_size})"


class MaxPooling2D(_Pooling2D):
    """The maximum of each ``pool_size`` window; the gradient goes to the first maximum.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.layers import MaxPooling2D
    >>> pool = MaxPooling2D(2)
    >>> pool.build((4, 5, 3), np.random.default_rng(0), np.float32)
    (2, 2, 3)
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        win = self._windows(x)
        self._argmax = win.argmax(axis=-1)[..., None]
        return np.take_along_axis(win, self._argmax, axis=-1)[..., 0]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dwin = np.zeros((*dy.shape, self.pool_size[0] * self.pool_size[1]), dy.dtype)
        np.put_along_axis(dwin, self._argmax, dy[..., None], axis=-1)
        return self._unwindows(dwin)


class AveragePooling2D(_Pooling2D):
    """The mean of each ``pool_size`` window.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.layers import AveragePooling2D
    >>> pool = AveragePooling2D(2)
    >>> _ = pool.build((2, 2, 1), np.random.default_rng(0), np.float64)
    >>> pool.forward(np.arange(4.0).reshape(1, 2, 2, 1)).ravel()
    array([1.5])
    """

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self._windows(x).mean(axis=-1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        size = self.pool_size[0] * self.pool_size[1]
        dwin = np.broadcast_to((dy / size)[..., None], (*dy.shape, size))
        return self._unwindows(dwin)


class GlobalAveragePooling2D(Layer):
    """The mean over height and width: ``[N, H, W, C]`` -> ``[N, C]``.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.layers import GlobalAveragePooling2D
    >>> GlobalAveragePooling2D().forward(np.ones((2, 3, 3, 4))).shape
    (2, 4)
    """

    def _build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        return (input_shape[-1],)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._spatial = x.shape[1:3]
        return x.mean(axis=(1, 2))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        h, w = self._spatial
        return np.broadcast_to((dy / (h * w))[:, None, None, :], (dy.shape[0], h, w, dy.shape[1])).copy()


class Flatten(Layer):
    """``[N, ...]`` -> ``[N, prod(...)]`` in C order.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.layers import Flatten
    >>> Flatten().forward(np.ones((2, 3, 3, 4))).shape
    (2, 36)
    """

    def _build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        return (int(np.prod(input_shape)),)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(self._shape)


# --------------------------------------------------------------------------- dense


class Dense(Layer):
    """``activation(x @ kernel + bias)`` on ``[N, features]``.

    Parameters
    ----------
    units : int
        Output features.
    activation : {None, "linear", "relu", "relu6"}
    use_bias : bool
    kernel_initializer : str or callable
        ``"glorot_uniform"`` (default, as Keras), ``"he_normal"`` or ``f(rng, shape, fan_in, fan_out)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.layers import Dense
    >>> dense = Dense(10)
    >>> dense.build((64,), np.random.default_rng(0), np.float32)
    (10,)
    >>> dense.cost()  # (parameters, multiply-adds per example)
    (650, 640)
    """

    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True,
                 kernel_initializer: str | Initializer = "glorot_uniform") -> None:
        super().__init__()
        self.units = positive_int("Dense", "units", units)
        self.activation = activation_layer("Dense", activation)
        self.use_bias = boolean("Dense", "use_bias", use_bias)
        self.kernel_initializer = initializer("Dense", "kernel_initializer", kernel_initializer)

    def _build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(f"Dense: expects flat examples [features], got input shape {input_shape}; "
                             "put Flatten or GlobalAveragePooling2D before it")
        (features,) = input_shape
        self.params = {"kernel": self.kernel_initializer(rng, (features, self.units), features, self.units)
                       .astype(dtype)}
        if self.use_bias:
            self.params["bias"] = np.zeros(self.units, dtype)
        return (self.units,)

    # The products run as 1x1 convolutions on sepconv's threads, not as ``x @ kernel``: NumPy's OpenBLAS would run a
    # large one on threads of its own, which then spin for ~0.1 s and take the two cores from the next ops' threads
    # (a training step of 8x14x14x160 -> depthwise, 1x1 to 320, depthwise, 1x1 to 1280, pooling, Dense(1000):
    # 43.8 ms with ``@``, against 19.5 with Dense(10); sepconv.kernels.blas).
    def _kernel_4d(self) -> np.ndarray:
        return self.params["kernel"].reshape(1, 1, *self.params["kernel"].shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._x = x
        y = api.conv2d(x.reshape(x.shape[0], 1, 1, -1), self._kernel_4d(), 1, "VALID").reshape(x.shape[0], -1)
        if self.use_bias:
            y = y + self.params["bias"]
        return self.activation.forward(y) if self.activation else y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self.activation:
            dy = self.activation.backward(dy)
        x4, dy4, kernel4 = self._x.reshape(len(self._x), 1, 1, -1), dy.reshape(len(dy), 1, 1, -1), self._kernel_4d()
        self.grads = {"kernel": api.conv2d_backprop_filter(x4, kernel4.shape, dy4, 1, "VALID")[0, 0]}
        if self.use_bias:
            self.grads["bias"] = dy.sum(axis=0)
        return api.conv2d_backprop_input(x4.shape, kernel4, dy4, 1, "VALID").reshape(self._x.shape)

    def cost(self) -> tuple[int, int]:
        return sum(p.size for p in self.params.values()), self.params["kernel"].size

    def __repr__(self) -> str:
        return f"Dense({self.units})"
