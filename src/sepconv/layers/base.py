"""What every layer shares: the :class:`Layer` protocol, weight initializers and argument checks.

A layer is built once from the shape of one example (``(height, width, channels)``, NHWC,
no batch axis), then maps a batch forward and its gradient backward.  ``forward`` keeps what
``backward`` needs; ``backward`` fills ``grads`` (same keys as ``params``) and returns the
gradient of the input.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

Shape = tuple[int, ...]
Initializer = Callable[[np.random.Generator, Shape, int, int], np.ndarray]


class Layer:
    """Base class: ``build`` once, then ``forward`` and ``backward`` on batches (NHWC).

    Attributes
    ----------
    params : dict of str to numpy.ndarray
        Trainable arrays, updated in place by the optimizers.
    grads : dict of str to numpy.ndarray
        Their gradients, filled by :meth:`backward`.
    state : dict of str to numpy.ndarray
        Non-trainable arrays that are saved with the weights (batch-norm moving statistics).

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.layers import ReLU
    >>> layer = ReLU()
    >>> layer.build((4, 4, 2), np.random.default_rng(0), np.float32)
    (4, 4, 2)
    >>> y = layer.forward(np.full((1, 4, 4, 2), -1.0, np.float32))
    >>> float(layer.backward(np.ones_like(y)).sum())  # ReLU passes no gradient below zero
    0.0
    """

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.input_shape: Shape = ()
        self.output_shape: Shape = ()

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype: Any) -> Shape:
        """Create the weights for examples of shape ``input_shape``; return the output's shape."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self._build(self.input_shape, rng, np.dtype(dtype))
        return self.output_shape

    def _build(self, input_shape: Shape, rng: np.random.Generator, dtype: np.dtype) -> Shape:
        return input_shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Map a batch ``x`` forward; ``training`` selects batch statistics in batch normalization."""
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Given the gradient of the output of the last ``forward``, fill ``grads``; return the input's gradient."""
        raise NotImplementedError

    def cost(self) -> tuple[int, int]:
        """``(parameters, multiply-adds per example)`` of the forward pass; MACs count only
        convolutions and dense layers (the element-wise work of the others is not counted)."""
        return sum(p.size for p in self.params.values()), 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# --------------------------------------------------------------------------- initializers


def he_normal(rng: np.random.Generator, shape: Shape, fan_in: int, fan_out: int) -> np.ndarray:
    """Normal with standard deviation ``sqrt(2 / fan_in)`` (He et al. 2015), untruncated.

    Examples
    --------
    >>> import numpy as np
    >>> w = he_normal(np.random.default_rng(0), (3, 3, 8, 16), fan_in=72, fan_out=144)
    >>> w.shape, round(float(w.std()), 2)  # sqrt(2 / 72) = 0.167
    ((3, 3, 8, 16), 0.16)
    """
    return rng.normal(0.0, math.sqrt(2.0 / max(fan_in, 1)), size=shape)


def glorot_uniform(rng: np.random.Generator, shape: Shape, fan_in: int, fan_out: int) -> np.ndarray:
    """Uniform on ``±sqrt(6 / (fan_in + fan_out))`` (Glorot and Bengio 2010; Keras's default).

    Examples
    --------
    >>> import numpy as np
    >>> w = glorot_uniform(np.random.default_rng(0), (16, 10), fan_in=16, fan_out=10)
    >>> bool(np.abs(w).max() <= np.sqrt(6 / 26))
    True
    """
    limit = math.sqrt(6.0 / max(fan_in + fan_out, 1))
    return rng.uniform(-limit, limit, size=shape)


INITIALIZERS: dict[str, Initializer] = {"he_normal": he_normal, "glorot_uniform": glorot_uniform}


def initializer(layer: str, name: str, value: str | Initializer) -> Initializer:
    """A name from :data:`INITIALIZERS`, or a callable ``f(rng, shape, fan_in, fan_out) -> array``."""
    if callable(value):
        return value
    if isinstance(value, str) and value in INITIALIZERS:
        return INITIALIZERS[value]
    raise ValueError(f"{layer}: `{name}` must be one of {sorted(INITIALIZERS)} or a callable "
                     f"f(rng, shape, fan_in, fan_out), got {name}={value!r}")


# --------------------------------------------------------------------------- argument checks


def positive_int(layer: str, name: str, value: Any) -> int:
    """``value`` as an int >= 1, or a ``TypeError``/``ValueError`` that names the argument."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{layer}: `{name}` must be a positive int, got {name}={value!r}")
    if operator.index(value) < 1:
        raise ValueError(f"{layer}: `{name}` must be a positive int, got {name}={value!r}")
    return operator.index(value)


def positive_pair(layer: str, name: str, value: Any) -> tuple[int, int]:
    """Keras's ``int or (int, int)`` for ``kernel_size``, ``strides``, ``dilation_rate``, ``pool_size``."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or any(isinstance(v, bool) or not hasattr(v, "__index__") for v in items):
        raise TypeError(f"{layer}: `{name}` must be an int or a pair of ints, got {name}={value!r}")
    if any(operator.index(v) < 1 for v in items):
        raise ValueError(f"{layer}: `{name}` must be positive, got {name}={value!r}")
    return operator.index(items[0]), operator.index(items[1])


def keras_padding(layer: str, value: Any, allowed: tuple[str, ...] = ("valid", "same")) -> str:
    """Keras's ``"valid"`` / ``"same"`` (any case) -> the ops' ``"VALID"`` / ``"SAME"``."""
    if not isinstance(value, str) or value.lower() not in allowed:
        raise ValueError(f"{layer}: `padding` must be one of {allowed}, got padding={value!r}")
    return value.upper()


def boolean(layer: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{layer}: `{name}` must be True or False, got {name}={value!r}")
    return value


def unit_interval(layer: str, name: str, value: Any, *, open_low: bool = False) -> float:
    """A float in ``[0, 1)`` (``(0, 1)`` with ``open_low``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{layer}: `{name}` must be a number, got {name}={value!r}")
    if not ((0 < value if open_low else 0 <= value) and value < 1):
        raise ValueError(f"{layer}: `{name}` must be in {'(0' if open_low else '[0'}, 1), got {name}={value!r}")
    return float(value)


def positive_float(layer: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{layer}: `{name}` must be a positive number, got {name}={value!r}")
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{layer}: `{name}` must be a positive number, got {name}={value!r}")
    return float(value)
