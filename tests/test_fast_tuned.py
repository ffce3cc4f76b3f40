"""float64 takes the general kernels, float32 the shape-tuned ones (:mod:`sepconv.fast.tuned`).

Every call goes through the public ops with every kernel of the tuned modules wrapped: a float64 call must reach
none of them, whatever the layout, op, stride, dilation or multiplier, and still match the reference; the same
calls in float32 reach them (so the wrapping sees the calls it is meant to see).
"""

from __future__ import annotations

import importlib
import types

import numba
import numpy as np
import pytest
from conftest import KernelsSeenByOps, fast_and_reference, rand, tol

import sepconv
from sepconv.fast.tuned import tuned

# The kernel modules whose every kernel runs for float32 only, and conv2d's tuned kernels (the rest of
# sepconv.kernels.conv2d is im2col and col2im, which every dtype takes).
TUNED_MODULES = ["depthwise_3x3_direct", "depthwise_5x5_avx2", "depthwise_5x5_direct", "depthwise_7x7_s2_direct",
                 "depthwise_filter_gradient_avx2", "depthwise_multiplier", "depthwise_nchw", "depthwise_nchw_small",
                 "depthwise_packed", "depthwise_small_image", "separable", "pointwise", "pointwise_few_pixels",
                 "conv2d_direct"]
TUNED_CONV2D_PREFIXES = ("winograd_", "conv2d_nhwc_few_channels")

# (batch, height, width, channels, multiplier, kernel, strides, dilations, padding): layers that take, in float32,
# the direct 3x3 and AVX2 5x5 kernels (CPUs without AVX-512), the packed, direct 5x5 and 7x7 stride 2, small-image,
# multiplier-band and few-channel NCHW routes, and the native NCHW kernels.
LAYERS = [
    (2, 20, 24, 32, 1, 3, 1, 1, "SAME"),
    (1, 21, 22, 48, 1, 3, 2, 1, "SAME"),
    (1, 12, 44, 24, 1, 5, 1, 1, "SAME"),
    (1, 30, 30, 16, 1, 5, 1, 2, "VALID"),
    (1, 40, 40, 24, 1, 5, 2, 1, "SAME"),
    (1, 9, 9, 40, 1, 7, 1, 1, "SAME"),
    (1, 100, 100, 16, 1, 7, 2, 1, "SAME"),
    (1, 16, 18, 8, 3, 3, 1, 1, "SAME"),
    (2, 17, 15, 24, 2, 3, 2, 1, "VALID"),
    (1, 14, 14, 40, 4, 5, 1, 2, "SAME"),
    (1, 50, 50, 3, 1, 3, 2, 1, "SAME"),
    (1, 7, 7, 96, 1, 3, 1, 1, "SAME"),
]


def _recording(kernel, name: str, calls: list[str]):
    """``kernel``, appending ``name`` to ``calls`` at each call."""
    return lambda *args: calls.append(name) or kernel(*args)


def _wrap_tuned_kernels(monkeypatch) -> list[str]:
    """Every kernel of the tuned modules wrapped where the ops find it: a call from Python appends its name to the
    list returned."""
    calls: list[str] = []
    tuned_kernels = {}
    for module_name in TUNED_MODULES:
        module = importlib.import_module(f"sepconv.kernels.{module_name}")
        tuned_kernels[module] = {name for name, value in vars(module).items()
                                 if isinstance(value, numba.core.registry.CPUDispatcher)
                                 and value.py_func.__module__ == module.__name__}
    conv2d = importlib.import_module("sepconv.kernels.conv2d")
    tuned_kernels[conv2d] = {name for name, value in vars(conv2d).items()
                             if isinstance(value, numba.core.registry.CPUDispatcher)
                             and name.startswith(TUNED_CONV2D_PREFIXES)}
    for ops_name in ("depthwise", "conv2d", "separable", "gemm", "layout"):
        ops = importlib.import_module(f"sepconv.fast.{ops_name}")
        for attr, value in list(vars(ops).items()):
            if isinstance(value, types.ModuleType) and value in tuned_kernels:
                seen = KernelsSeenByOps(value)  # the module's own globals stay the kernels (Numba types them)
                for name in tuned_kernels[value]:
                    seen.wrapped[name] = _recording(getattr(value, name), f"{value.__name__}.{name}", calls)
                monkeypatch.setattr(ops, attr, seen)
    return calls


def _run_every_op(layer, dtype, data_format: str) -> None:
    """Every depthwise and separable op on ``layer``, and a conv2d of its shape, fast against the reference."""
    n, h, w, c, m, k, strides, dilations, padding = layer
    rng = np.random.default_rng(7)
    x = rand(rng, (n, h, w, c) if data_format == "NHWC" else (n, c, h, w), dtype)
    filt = rand(rng, (k, k, c, m), dtype)
    args = {"strides": strides, "padding": padding, "data_format": data_format, "dilations": dilations}
    y, y_ref = fast_and_reference(sepconv.depthwise_conv2d, x, filt, **args)
    np.testing.assert_allclose(y, y_ref, **tol(dtype))
    dy = rand(rng, y.shape, dtype)
    for fast, ref in [fast_and_reference(sepconv.depthwise_conv2d_backprop_input, x.shape, filt, dy, **args),
                      fast_and_reference(sepconv.depthwise_conv2d_backprop_filter, x, filt.shape, dy, **args),
                      *zip(*fast_and_reference(sepconv.depthwise_conv2d_gradients, x, filt, dy, **args), strict=True)]:
        np.testing.assert_allclose(fast, ref, **tol(dtype))
    if dilations == 1 or strides == 1:  # separable: TensorFlow's rule, no strides with dilations
        pointwise = rand(rng, (1, 1, c * m, 24), dtype)
        np.testing.assert_allclose(*fast_and_reference(sepconv.separable_conv2d, x, filt, pointwise, **args),
                                   **tol(dtype))
    dense = rand(rng, (k, k, c, 16), dtype)
    out, out_ref = fast_and_reference(sepconv.conv2d, x, dense, **args)
    np.testing.assert_allclose(out, out_ref, **tol(dtype))
    dy = rand(rng, out.shape, dtype)
    np.testing.assert_allclose(*fast_and_reference(sepconv.conv2d_backprop_input, x.shape, dense, dy, **args),
                               **tol(dtype))


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("layer", LAYERS, ids=["x".join(map(str, layer[:4])) + f"_m{layer[4]}_k{layer[5]}_s{layer[6]}"
                                               f"_d{layer[7]}_{layer[8].lower()}" for layer in LAYERS])
def test_float64_takes_no_tuned_kernel(layer, data_format, monkeypatch):
    calls = _wrap_tuned_kernels(monkeypatch)
    _run_every_op(layer, np.float64, data_format)
    assert calls == []


def test_float32_takes_the_tuned_kernels(monkeypatch):
    """The same layers in float32 reach the wrapped kernels: the float64 test above would see a tuned call."""
    calls = _wrap_tuned_kernels(monkeypatch)
    for layer in LAYERS:
        for data_format in ("NHWC", "NCHW"):
            _run_every_op(layer, np.float32, data_format)
    modules = {name.rsplit(".", 1)[0] for name in calls}
    assert {"sepconv.kernels.depthwise_multiplier", "sepconv.kernels.depthwise_nchw",
            "sepconv.kernels.depthwise_packed"} <= modules
    assert len(modules) >= 6


def test_only_float32_is_tuned():
    assert tuned(np.dtype(np.float32).itemsize)
    assert not tuned(np.dtype(np.float64).itemsize)
