"""Layers that train on NumPy arrays (NHWC), built on the library's own ops and gradients.

A small training harness for the ops, not a framework: Keras's layer names and arguments,
exact gradients, a :class:`Sequential` model, softmax cross-entropy, SGD with momentum and
Adam, deterministic from a seed, weights saved and loaded with ``np.savez``.

Examples
--------
>>> import numpy as np
>>> from sepconv.layers import (Adam, BatchNormalization, Dense, GlobalAveragePooling2D, ReLU,
...                             SeparableConv2D, Sequential, softmax_cross_entropy)
>>> model = Sequential([SeparableConv2D(8, 3, padding="same", depth_multiplier=2), BatchNormalization(), ReLU(),
...                     GlobalAveragePooling2D(), Dense(10)], input_shape=(8, 8, 1), seed=0)
>>> x, y = np.random.default_rng(0).random((4, 8, 8, 1), np.float32), np.array([0, 1, 2, 3])
>>> loss, dlogits = softmax_cross_entropy(model.forward(x, training=True), y)
>>> _ = model.backward(dlogits)
>>> Adam().step(model.parameters(), model.gradients())
"""

from .base import INITIALIZERS, Layer, glorot_uniform, he_normal
from .basic import (
    AveragePooling2D,
    BatchNormalization,
    Dense,
    Flatten,
    GlobalAveragePooling2D,
    MaxPooling2D,
    ReLU,
    ReLU6,
)
from .conv import Conv2D, DepthwiseConv2D, SeparableConv2D
from .model import Sequential, softmax_cross_entropy
from .optimizers import SGD, Adam

__all__ = [
    "INITIALIZERS",
    "SGD",
    "Adam",
    "AveragePooling2D",
    "BatchNormalization",
    "Conv2D",
    "Dense",
    "DepthwiseConv2D",
    "Flatten",
    "GlobalAveragePooling2D",
    "Layer",
    "MaxPooling2D",
    "ReLU",
    "ReLU6",
    "SeparableConv2D",
    "Sequential",
    "glorot_uniform",
    "he_normal",
    "softmax_cross_entropy",
]
