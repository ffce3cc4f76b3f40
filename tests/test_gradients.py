"""The gradient ops checked two ways, on both implementations, over random configurations.

1. The adjoint identity: a convolution is bilinear, and its gradient ops are its adjoints,
   ``<conv(x, w), g> == <x, backprop_input(x.shape, w, g)> == <w, backprop_filter(x, w.shape, g)>``
   (and ``conv2d_transpose`` is ``conv2d``'s adjoint in the input).
2. Central finite differences, in float64, of a non-linear loss ``sum(sin(op(x, w)))`` along a
   random direction, against the chain rule through the gradient ops.
"""

from __future__ import annotations

import numpy as np
import pytest

import sepconv
from sepconv.geometry import conv2d_geometry, depthwise_geometry

N_CONFIGS = 16


def random_config(rng: np.random.Generator, depthwise: bool) -> dict:
    while True:
        data_format = str(rng.choice(["NHWC", "NCHW"]))
        h, w = int(rng.integers(1, 10)), int(rng.integers(1, 10))
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        in_c = int(rng.choice([1, 3, 5]))
        groups = 1
        if depthwise:
            filter_nhwc = (kh, kw, in_c, int(rng.integers(1, 4)))
        else:
            if rng.random() < 0.3:
                groups = int(rng.choice([2, 3]))
                in_c = groups * int(rng.integers(1, 3))
            filter_nhwc = (kh, kw, in_c // groups, groups * int(rng.integers(1, 3)))
        batch_shape = (int(rng.integers(1, 3)),) if rng.random() < 0.85 else (2, 2)
        input_shape = (*batch_shape, h, w, in_c) if data_format == "NHWC" else (*batch_shape, in_c, h, w)
        stride = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
        dilation = [int(rng.integers(1, 3)), int(rng.integers(1, 3))]
        kind = rng.choice(["SAME", "VALID", "explicit"])
        if kind == "explicit":
            pads = [[int(rng.integers(0, 4)), int(rng.integers(0, 4))] for _ in range(2)]
            padding = [[0, 0], *pads, [0, 0]] if data_format == "NHWC" else [[0, 0], [0, 0], *pads]
        else:
            padding = str(kind)
        cfg = dict(input_shape=input_shape, filter_shape=filter_nhwc, strides=stride, padding=padding,
                   data_format=data_format, dilations=dilation)
        try:
            (depthwise_geometry if depthwise else conv2d_geometry)(
                "config", input_shape, filter_nhwc, stride, padding, data_format, dilation)
        except ValueError:
            continue
        return cfg


CONV_CONFIGS = [random_config(np.random.default_rng(10 + i), depthwise=False) for i in range(N_CONFIGS)]
DEPTHWISE_CONFIGS = [random_config(np.random.default_rng(50 + i), depthwise=True) for i in range(N_CONFIGS)]


def cfg_id(cfg) -> str:
    return (f"{cfg['data_format']}-in{list(cfg['input_shape'])}-f{list(cfg['filter_shape'])}-s{cfg['strides']}"
            f"-d{cfg['dilations']}-{cfg['padding']}").replace(" ", "")


def window_args(cfg) -> dict:
    return {k: cfg[k] for k in ("strides", "padding", "data_format", "dilations")}


def arrays(cfg, seed: int):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(cfg["input_shape"]), rng.standard_normal(cfg["filter_shape"])


OPS = {
    False: (sepconv.conv2d, sepconv.conv2d_backprop_input, sepconv.conv2d_backprop_filter),
    True: (sepconv.depthwise_conv2d, sepconv.depthwise_conv2d_backprop_input,
           sepconv.depthwise_conv2d_backprop_filter),
}


# --------------------------------------------------------------------------- adjoint identity


@pytest.mark.parametrize("depthwise, cfg", [(False, c) for c in CONV_CONFIGS] + [(True, c) for c in DEPTHWISE_CONFIGS],
                         ids=[f"conv2d-{cfg_id(c)}" for c in CONV_CONFIGS] + [f"depthwise-{cfg_id(c)}"
                                                                             for c in DEPTHWISE_CONFIGS])
def test_adjoint_identity(impl, depthwise, cfg):
    forward, backprop_input, backprop_filter = OPS[depthwise]
    x, w = arrays(cfg, seed=1)
    args = window_args(cfg)
    y = forward(x, w, **args)
    g = np.random.default_rng(2).standard_normal(y.shape)
    dx = backprop_input(list(x.shape), w, g, **args)
    dw = backprop_filter(x, list(w.shape), g, **args)
    assert dx.shape == x.shape and dw.shape == w.shape
    forward_value = np.vdot(y, g)
    np.testing.assert_allclose(np.vdot(x, dx), forward_value, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.vdot(w, dw), forward_value, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cfg", CONV_CONFIGS, ids=[cfg_id(c) for c in CONV_CONFIGS])
def test_conv2d_transpose_is_the_adjoint_of_conv2d(impl, cfg):
    x, w = arrays(cfg, seed=3)
    args = window_args(cfg)
    y = sepconv.conv2d(x, w, **args)
    g = np.random.default_rng(4).standard_normal(y.shape)
    t = sepconv.conv2d_transpose(g, w, list(x.shape), **args)
    assert t.shape == x.shape
    np.testing.assert_allclose(np.vdot(t, x), np.vdot(g, y), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cfg", DEPTHWISE_CONFIGS, ids=[cfg_id(c) for c in DEPTHWISE_CONFIGS])
def test_separable_adjoint_identity(impl, cfg):
    # separable = depthwise then a 1x1 VALID conv2d: its gradients compose the two ops' gradients
    x, wd = arrays(cfg, seed=5)
    args = window_args(cfg)
    mid = sepconv.depthwise_conv2d(x, wd, **args)
    channels_axis = -1 if cfg["data_format"] == "NHWC" else -3
    wp = np.random.default_rng(6).standard_normal((1, 1, mid.shape[channels_axis], 4))
    y = sepconv.separable_conv2d(x, wd, wp, **args)
    g = np.random.default_rng(7).standard_normal(y.shape)
    pointwise = {"strides": 1, "padding": "VALID", "data_format": cfg["data_format"]}
    g_mid = sepconv.conv2d_backprop_input(list(mid.shape), wp, g, **pointwise)
    dx = sepconv.depthwise_conv2d_backprop_input(list(x.shape), wd, g_mid, **args)
    dwd = sepconv.depthwise_conv2d_backprop_filter(x, list(wd.shape), g_mid, **args)
    dwp = sepconv.conv2d_backprop_filter(mid, list(wp.shape), g, **pointwise)
    forward_value = np.vdot(y, g)
    for arg, grad in ((x, dx), (wd, dwd), (wp, dwp)):
        np.testing.assert_allclose(np.vdot(arg, grad), forward_value, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- finite differences


def finite_difference(loss, value: np.ndarray, direction: np.ndarray, eps: float = 1e-6) -> float:
    return (loss(value + eps * direction) - loss(value - eps * direction)) / (2 * eps)


@pytest.mark.parametrize("depthwise, cfg", [(False, c) for c in CONV_CONFIGS[:8]] + [(True, c) for c in
                                                                                      DEPTHWISE_CONFIGS[:8]],
                         ids=[f"conv2d-{cfg_id(c)}" for c in CONV_CONFIGS[:8]] + [f"depthwise-{cfg_id(c)}"
                                                                                 for c in DEPTHWISE_CONFIGS[:8]])
def test_finite_differences(impl, depthwise, cfg):
    forward, backprop_input, backprop_filter = OPS[depthwise]
    x, w = arrays(cfg, seed=8)
    args = window_args(cfg)
    rng = np.random.default_rng(9)
    dir_x, dir_w = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
    # loss = sum(sin(op(x, w))): dloss/dy = cos(y), then the gradient ops
    upstream = np.cos(forward(x, w, **args))
    grad_x = backprop_input(list(x.shape), w, upstream, **args)
    grad_w = backprop_filter(x, list(w.shape), upstream, **args)
    numeric_x = finite_difference(lambda v: np.sin(forward(v, w, **args)).sum(), x, dir_x)
    numeric_w = finite_difference(lambda v: np.sin(forward(x, v, **args)).sum(), w, dir_w)
    np.testing.assert_allclose(np.vdot(grad_x, dir_x), numeric_x, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.vdot(grad_w, dir_w), numeric_w, rtol=1e-6, atol=1e-6)


def test_finite_differences_separable_pointwise(impl):
    rng = np.random.default_rng(11)
    x, wd, wp = rng.standard_normal((2, 7, 9, 3)), rng.standard_normal((3, 3, 3, 2)), rng.standard_normal((1, 1, 6, 5))
    args = {"strides": [2, 1], "padding": "SAME", "dilations": [1, 2]}
    mid = sepconv.depthwise_conv2d(x, wd, **args)
    upstream = np.cos(sepconv.separable_conv2d(x, wd, wp, **args))
    grad_wp = sepconv.conv2d_backprop_filter(mid, list(wp.shape), upstream, 1, "VALID")
    direction = rng.standard_normal(wp.shape)
    numeric = finite_difference(lambda v: np.sin(sepconv.separable_conv2d(x, wd, v, **args)).sum(), wp, direction)
    np.testing.assert_allclose(np.vdot(grad_wp, direction), numeric, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- gradients of empty things


def test_empty_out_backprop_gives_zero_gradients(impl):
    # TensorFlow's CPU filter-gradient kernels return uninitialised memory here; the answer is zeros.
    dw = sepconv.conv2d_backprop_filter(np.ones((0, 5, 5, 2)), [3, 3, 2, 4], np.ones((0, 5, 5, 4)), 1, "SAME")
    np.testing.assert_array_equal(dw, np.zeros((3, 3, 2, 4)))
    dw = sepconv.depthwise_conv2d_backprop_filter(np.ones((0, 5, 5, 2)), [3, 3, 2, 2], np.ones((0, 5, 5, 4)), 1,
                                                  "SAME")
    np.testing.assert_array_equal(dw, np.zeros((3, 3, 2, 2)))
    dx = sepconv.depthwise_conv2d_backprop_input([0, 5, 5, 2], np.ones((3, 3, 2, 2)), np.ones((0, 5, 5, 4)), 1,
                                                 "SAME")
    assert dx.shape == (0, 5, 5, 2)
