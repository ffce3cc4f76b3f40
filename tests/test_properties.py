"""Property-based tests: over random valid configurations, the fast implementation equals the reference.

Every op is checked, in both layouts and float32/float64, with strides and dilations in every
accepted form, unequal strides, stride with dilation, explicit pads, grouped conv2d and
channel multipliers, extra batch axes, and sizes down to 1.
"""

from __future__ import annotations

import numpy as np
from conftest import tol
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import sepconv
from sepconv.geometry import conv2d_geometry, depthwise_geometry

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def window_form(draw, hw: tuple[int, int], data_format: str):
    """Strides or dilations ``(h, w)`` in one of the accepted forms."""
    h, w = hw
    forms = ["pair", "four"] + (["int", "one"] if h == w else [])
    form = draw(st.sampled_from(forms))
    if form == "int":
        return h
    if form == "one":
        return [h]
    if form == "pair":
        return [h, w]
    return [1, h, w, 1] if data_format == "NHWC" else [1, 1, h, w]


@st.composite
def configurations(draw, depthwise: bool) -> dict:
    data_format = draw(st.sampled_from(["NHWC", "NCHW"]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    batch_shape = tuple(draw(st.lists(st.integers(1, 2), min_size=1, max_size=2)))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if depthwise:
        in_c = draw(st.integers(1, 9))
        filter_shape = (kh, kw, in_c, draw(st.integers(1, 3)))
    else:
        groups = draw(st.sampled_from([1, 1, 2, 3]))
        group_in = draw(st.integers(1, 4))
        in_c = groups * group_in
        filter_shape = (kh, kw, group_in, groups * draw(st.integers(1, 4)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilations = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    kind = draw(st.sampled_from(["SAME", "VALID", "explicit"]))
    if kind == "explicit":
        pads = [[draw(st.integers(0, 3)), draw(st.integers(0, 3))] for _ in range(2)]
        padding = [[0, 0], *pads, [0, 0]] if data_format == "NHWC" else [[0, 0], [0, 0], *pads]
    else:
        padding = kind
    input_shape = (*batch_shape, h, w, in_c) if data_format == "NHWC" else (*batch_shape, in_c, h, w)
    args = {"strides": window_form(draw, strides, data_format), "padding": padding, "data_format": data_format,
            "dilations": window_form(draw, dilations, data_format)}
    try:
        (depthwise_geometry if depthwise else conv2d_geometry)("config", input_shape, filter_shape, **args)
    except ValueError:
        assume(False)
    seed = draw(st.integers(0, 2**32 - 1))
    return {"input_shape": input_shape, "filter_shape": filter_shape, "args": args, "dtype": dtype, "seed": seed}


def both(call):
    """``call()`` on the fast and on the reference implementation."""
    with sepconv.use_implementation("fast"):
        fast = call()
    with sepconv.use_implementation("reference"):
        reference = call()
    return fast, reference


def assert_same(fast: np.ndarray, reference: np.ndarray) -> None:
    """Equal within the dtype's tolerance, the absolute part scaled to the result's largest value in
    float32: a filter gradient sums thousands of products, and both implementations round each sum
    by ~eps x the sum of its terms' magnitudes (a 2x39x32x48 5x5 conv2d filter gradient, largest
    value ~230: the float32 reference is 3e-4 off the float64 result, the fast path 8e-5), more than
    a fixed 1e-4 on a value that cancels to ~0.02.  A wrong tap or index moves values by O(1)."""
    assert fast.shape == reference.shape
    assert fast.dtype == reference.dtype
    tolerance = tol(reference.dtype)
    if reference.dtype == np.float32 and reference.size:
        tolerance["atol"] = max(tolerance["atol"], 1e-5 * float(np.abs(reference).max()))
    np.testing.assert_allclose(fast, reference, **tolerance)


def arrays(cfg):
    rng = np.random.default_rng(cfg["seed"])
    x = rng.standard_normal(cfg["input_shape"]).astype(cfg["dtype"])
    w = rng.standard_normal(cfg["filter_shape"]).astype(cfg["dtype"])
    return rng, x, w


@SETTINGS
@given(configurations(depthwise=False))
def test_conv2d_family_fast_equals_reference(cfg):
    rng, x, w = arrays(cfg)
    args = cfg["args"]
    y, y_ref = both(lambda: sepconv.conv2d(x, w, **args))
    assert_same(y, y_ref)
    g = rng.standard_normal(y.shape).astype(cfg["dtype"])
    assert_same(*both(lambda: sepconv.conv2d_backprop_input(list(x.shape), w, g, **args)))
    assert_same(*both(lambda: sepconv.conv2d_backprop_filter(x, list(w.shape), g, **args)))
    assert_same(*both(lambda: sepconv.conv2d_transpose(g, w, list(x.shape), **args)))


@SETTINGS
@given(configurations(depthwise=True), st.integers(1, 6))
def test_depthwise_family_fast_equals_reference(cfg, out_channels):
    rng, x, w = arrays(cfg)
    args = cfg["args"]
    y, y_ref = both(lambda: sepconv.depthwise_conv2d(x, w, **args))
    assert_same(y, y_ref)
    g = rng.standard_normal(y.shape).astype(cfg["dtype"])
    assert_same(*both(lambda: sepconv.depthwise_conv2d_backprop_input(list(x.shape), w, g, **args)))
    assert_same(*both(lambda: sepconv.depthwise_conv2d_backprop_filter(x, list(w.shape), g, **args)))
    pw = rng.standard_normal((1, 1, w.shape[2] * w.shape[3], out_channels)).astype(cfg["dtype"])
    assert_same(*both(lambda: sepconv.separable_conv2d(x, w, pw, **args)))


@st.composite
def layer_sized(draw) -> dict:
    """Shapes where the fast kernels take their specialised paths: wider images, channel counts that
    fill (or just miss) the vector width, the common 3x3 / 5x5 / 7x7 windows."""
    data_format = draw(st.sampled_from(["NHWC", "NCHW"]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    h, w = draw(st.integers(8, 40)), draw(st.integers(8, 40))
    channels = draw(st.sampled_from([8, 16, 17, 32, 48]))
    k = draw(st.sampled_from([3, 5, 7]))
    stride = draw(st.sampled_from([1, 2]))
    dilation = draw(st.sampled_from([1, 1, 2]))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    input_shape = (2, h, w, channels) if data_format == "NHWC" else (2, channels, h, w)
    args = {"strides": stride, "padding": padding, "data_format": data_format, "dilations": dilation}
    try:
        depthwise_geometry("config", input_shape, (k, k, channels, 1), **args)
    except ValueError:
        assume(False)
    return {"input_shape": input_shape, "kernel": k, "channels": channels, "args": args, "dtype": dtype,
            "multiplier": draw(st.sampled_from([1, 2])), "seed": draw(st.integers(0, 2**32 - 1))}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layer_sized())
def test_layer_sized_fast_equals_reference(cfg):
    rng = np.random.default_rng(cfg["seed"])
    x = rng.standard_normal(cfg["input_shape"]).astype(cfg["dtype"])
    k, c, m = cfg["kernel"], cfg["channels"], cfg["multiplier"]
    dw = rng.standard_normal((k, k, c, m)).astype(cfg["dtype"])
    w = rng.standard_normal((k, k, c, 8)).astype(cfg["dtype"])
    pw = rng.standard_normal((1, 1, c * m, 16)).astype(cfg["dtype"])
    args = cfg["args"]
    y, y_ref = both(lambda: sepconv.depthwise_conv2d(x, dw, **args))
    assert_same(y, y_ref)
    g = rng.standard_normal(y.shape).astype(cfg["dtype"])
    assert_same(*both(lambda: sepconv.depthwise_conv2d_backprop_input(list(x.shape), dw, g, **args)))
    assert_same(*both(lambda: sepconv.depthwise_conv2d_backprop_filter(x, list(dw.shape), g, **args)))
    assert_same(*both(lambda: sepconv.separable_conv2d(x, dw, pw, **args)))
    yc, yc_ref = both(lambda: sepconv.conv2d(x, w, **args))
    assert_same(yc, yc_ref)
    gc = rng.standard_normal(yc.shape).astype(cfg["dtype"])
    assert_same(*both(lambda: sepconv.conv2d_backprop_input(list(x.shape), w, gc, **args)))
    assert_same(*both(lambda: sepconv.conv2d_backprop_filter(x, list(w.shape), gc, **args)))
