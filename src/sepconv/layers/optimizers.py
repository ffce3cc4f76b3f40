"""SGD with momentum and Adam, updating a model's parameters in place (Keras's update rules)."""

from __future__ import annotations

import numpy as np

from .base import positive_float, unit_interval


class SGD:
    """Stochastic gradient descent with (heavy-ball) momentum, as ``keras.optimizers.SGD``::

        velocity = momentum * velocity - learning_rate * grad
        param += velocity

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.layers import SGD
    >>> w = np.array([1.0])
    >>> SGD(learning_rate=0.1).step({"w": w}, {"w": np.array([2.0])})
    >>> w
    array([0.8])
    """

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0) -> None:
        self.learning_rate = positive_float("SGD", "learning_rate", learning_rate)
        self.momentum = unit_interval("SGD", "momentum", momentum)
        self._velocity: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update each ``params[name]`` in place from ``grads[name]``."""
        for name, param in params.items():
            velocity = self._velocity.setdefault(name, np.zeros_like(param))
            velocity *= self.momentum
            velocity -= self.learning_rate * grads[name]
            param += velocity


class Adam:
    """Adam (Kingma and Ba 2015), as ``keras.optimizers.Adam``: bias-corrected first and second
    moment estimates, ``param -= lr_t * m / (sqrt(v) + epsilon)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.layers import Adam
    >>> w = np.array([1.0])
    >>> Adam(learning_rate=0.1).step({"w": w}, {"w": np.array([5.0])})
    >>> w.round(6)  # the first step moves each weight by about the learning rate
    array([0.9])
    """

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7) -> None:
        self.learning_rate = positive_float("Adam", "learning_rate", learning_rate)
        self.beta_1 = unit_interval("Adam", "beta_1", beta_1)
        self.beta_2 = unit_interval("Adam", "beta_2", beta_2)
        self.epsilon = positive_float("Adam", "epsilon", epsilon)
        self.iterations = 0
        self._m: dict[str, np.ndarray] = {}
        self._v: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update each ``params[name]`` in place from ``grads[name]``."""
        self.iterations += 1
        t = self.iterations
        lr_t = self.learning_rate * np.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        for name, param in params.items():
            g = grads[name]
            m = self._m.setdefault(name, np.zeros_like(param))
            v = self._v.setdefault(name, np.zeros_like(param))
            m += (1 - self.beta_1) * (g - m)
            v += (1 - self.beta_2) * (g * g - v)
            param -= (lr_t * m / (np.sqrt(v) + self.epsilon)).astype(param.dtype, copy=False)
