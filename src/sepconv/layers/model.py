"""A stack of layers (:class:`Sequential`) and the loss that trains it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import Layer, Shape


class Sequential:
    """Layers applied in order; built at construction from the example shape and a seed.

    Parameters
    ----------
    layers : sequence of Layer
        Each instance is used once (it holds its own weights).
    input_shape : tuple of int
        The shape of one example, ``(height, width, channels)`` (NHWC without the batch axis).
    seed : int
        Seeds ``np.random.default_rng`` for the initial weights: same seed, same weights.
    dtype : numpy dtype
        Of the weights (``float32`` by default; ``float64`` for gradient checks).

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.layers import Conv2D, Dense, GlobalAveragePooling2D, Sequential
    >>> model = Sequential([Conv2D(8, 3, activation="relu"), GlobalAveragePooling2D(), Dense(10)], (8, 8, 1))
    >>> model.forward(np.zeros((5, 8, 8, 1), np.float32)).shape
    (5, 10)
    >>> model.count_params()
    170
    """

    def __init__(self, layers: Sequence[Layer], input_shape: Shape, seed: int = 0, dtype: Any = np.float32) -> None:
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: `layers[{i}]` must be a Layer, got {layer!r}")
        if len({id(layer) for layer in self.layers}) != len(self.layers):
            raise ValueError("Sequential: the same layer instance appears twice in `layers`")
        self.input_shape = tuple(input_shape)
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        shape = self.input_shape
        self.names: list[str] = []
        for i, layer in enumerate(self.layers):
            shape = layer.build(shape, rng, self.dtype)
            self.names.append(f"{i:02d}_{type(layer).__name__}")
        self.output_shape = shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Run a batch through every layer (``training`` uses batch statistics in batch normalization)."""
        x = np.asarray(x, self.dtype)
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Back-propagate the gradient of the output of the last ``forward``; fills each layer's ``grads``."""
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Inference-mode outputs, computed ``batch_size`` examples at a time.

        Examples
        --------
        >>> import numpy as np
        >>> from sepconv.layers import Dense, Flatten, Sequential
        >>> Sequential([Flatten(), Dense(3)], (2, 2, 1)).predict(np.ones((7, 2, 2, 1))).shape
        (7, 3)
        """
        return np.concatenate([self.forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    def parameters(self) -> dict[str, np.ndarray]:
        """Trainable arrays by name (``"03_Conv2D/kernel"``); the optimizers update them in place."""
        return {f"{name}/{key}": value for name, layer in zip(self.names, self.layers, strict=True)
                for key, value in layer.params.items()}

    def gradients(self) -> dict[str, np.ndarray]:
        """The gradients of :meth:`parameters` from the last ``backward``, same names."""
        return {f"{name}/{key}": value for name, layer in zip(self.names, self.layers, strict=True)
                for key, value in layer.grads.items()}

    def variables(self) -> dict[str, np.ndarray]:
        """Everything that is saved: the parameters and the non-trainable state (moving statistics)."""
        state = {f"{name}/{key}": value for name, layer in zip(self.names, self.layers, strict=True)
                 for key, value in layer.state.items()}
        return {**self.parameters(), **state}

    def count_params(self) -> int:
        """The number of trainable scalars."""
        return sum(p.size for p in self.parameters().values())

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`variables` to ``path`` with ``np.savez``.

        Examples
        --------
        >>> import os, tempfile, numpy as np
        >>> from sepconv.layers import Dense, Flatten, Sequential
        >>> a, b = (Sequential([Flatten(), Dense(3)], (2, 2, 1), seed=s) for s in (1, 2))
        >>> path = os.path.join(tempfile.mkdtemp(), "weights.npz")
        >>> a.save(path); b.load(path)
        >>> bool(np.array_equal(a.predict(np.ones((1, 2, 2, 1))), b.predict(np.ones((1, 2, 2, 1)))))
        True
        """
        np.savez(path, **self.variables())

    def load(self, path: str | os.PathLike) -> None:
        """Read weights written by :meth:`save` into this model (same architecture), in place."""
        mine = self.variables()
        with np.load(path) as saved:
            missing, unexpected = sorted(set(mine) - set(saved.files)), sorted(set(saved.files) - set(mine))
            if missing or unexpected:
                raise ValueError(f"Sequential.load: {os.fspath(path)!r} does not match this model: "
                                 f"missing {missing}, unexpected {unexpected}")
            for name, target in mine.items():
                if saved[name].shape != target.shape:
                    raise ValueError(f"Sequential.load: {name} has shape {saved[name].shape} in {os.fspath(path)!r}, "
                                     f"the model expects {target.shape}")
                target[...] = saved[name]

    def summary(self) -> list[tuple[str, Shape, int, int]]:
        """One row per layer: ``(name, output shape, parameters, multiply-adds per example)``.

        Examples
        --------
        >>> from sepconv.layers import Dense, Flatten, Sequential
        >>> Sequential([Flatten(), Dense(3)], (2, 2, 1)).summary()[-1]
        ('01_Dense', (3,), 15, 12)
        """
        rows = []
        for name, layer in zip(self.names, self.layers, strict=True):
            params, macs = layer.cost()
            rows.append((name, layer.output_shape, params, macs))
        return rows

    def __repr__(self) -> str:
        inner = "".join(f"\n  {layer!r}," for layer in self.layers)
        return f"Sequential([{inner}\n], input_shape={self.input_shape})"


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of ``logits`` ``[N, classes]`` against integer ``labels`` ``[N]``,
    and its gradient with respect to the logits.

    Examples
    --------
    >>> import numpy as np
    >>> loss, grad = softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3]))
    >>> round(loss, 4), grad.shape  # log(4)
    (1.3863, (2, 4))
    """
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"softmax_cross_entropy: `logits` must be [N, classes] and `labels` [N], "
                         f"got shapes {logits.shape} and {labels.shape}")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    loss = -float(log_probs[rows, labels].mean())
    grad = np.exp(log_probs)
    grad[rows, labels] -= 1
    return loss, (grad / len(labels)).astype(logits.dtype, copy=False)
