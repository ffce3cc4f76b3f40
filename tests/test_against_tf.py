"""Random configurations against live TensorFlow, as a new user would compare them.

Awkward sizes (7x9, 5x8, ...), channels 3/5/23, multipliers 1-3, strides 1-3 (unequal too),
dilations 1-2, SAME / VALID / explicit pads, strides and dilations in every accepted form
(int, 1-, 2- and 4-lists), NHWC and NCHW, float32 and float64, all eight public ops.

Where TensorFlow's CPU kernels refuse or go wrong (shared/TF_NOTES.md), the oracle is still
TensorFlow, through an equivalent it computes correctly:

- NCHW: transpose to NHWC, call TensorFlow, transpose back.
- grouped conv2d: the concatenation of per-group ``tf.nn.conv2d``.
- depthwise with unequal strides or stride > 1 with dilation > 1: ``tf.nn.conv2d`` with the
  block-diagonal dense filter (output channel ``k*M + q``).
- dilated gradients: ``tf.GradientTape`` through ``tf.nn.conv2d`` with the zero-upsampled
  filter, built from the filter by a linear map, so the tape gives both gradients.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import sepconv
from sepconv.geometry import conv2d_geometry, depthwise_geometry

CONFIGS_PER_OP = 24
TOL = {np.float32: {"rtol": 2e-4, "atol": 2e-4}, np.float64: {"rtol": 1e-9, "atol": 1e-9}}


# --------------------------------------------------------------------------- configurations


def random_config(rng: np.random.Generator, depthwise: bool) -> dict:
    """One valid random configuration; pads are ``"SAME"``, ``"VALID"`` or ``((t, b), (l, r))``."""
    while True:
        h, w = (int(v) for v in rng.choice([(7, 9), (5, 8), (9, 7), (6, 6), (11, 5), (1, 4)]))
        cfg = dict(
            batch=int(rng.choice([1, 2, 3])), h=h, w=w,
            in_c=int(rng.choice([1, 3, 5, 23] if depthwise else [1, 3, 5, 6])),
            kh=int(rng.choice([1, 2, 3, 5])), kw=int(rng.choice([1, 2, 3, 4])),
            multiplier=int(rng.choice([1, 2, 3])), out_c=int(rng.choice([1, 4, 5, 23])),
            groups=1,
            stride=(int(rng.choice([1, 2, 3])), int(rng.choice([1, 2, 3]))),
            dilation=(int(rng.choice([1, 2])), int(rng.choice([1, 2]))),
        )
        if rng.random() < 0.5:
            cfg["stride"] = (cfg["stride"][0],) * 2
        if rng.random() < 0.4:
            cfg["dilation"] = (1, 1)
        kind = rng.choice(["SAME", "VALID", "explicit"])
        cfg["padding"] = str(kind) if kind != "explicit" else tuple(
            (int(rng.integers(0, 4)), int(rng.integers(0, 4))) for _ in range(2))
        if not depthwise and rng.random() < 0.25:  # grouped conv2d
            cfg["in_c"], cfg["groups"], cfg["out_c"] = 6, int(rng.choice([2, 3])), 6
        try:
            make = depthwise_geometry if depthwise else conv2d_geometry
            filter_shape = filter_shape_of(cfg, depthwise)
            make("config", input_nhwc(cfg), filter_shape, list(cfg["stride"]), padding_arg(cfg, "NHWC"),
                 dilations=list(cfg["dilation"]))
        except ValueError:
            continue
        return cfg


def input_nhwc(cfg) -> tuple[int, ...]:
    return (cfg["batch"], cfg["h"], cfg["w"], cfg["in_c"])


def filter_shape_of(cfg, depthwise: bool) -> tuple[int, ...]:
    if depthwise:
        return (cfg["kh"], cfg["kw"], cfg["in_c"], cfg["multiplier"])
    return (cfg["kh"], cfg["kw"], cfg["in_c"] // cfg["groups"], cfg["out_c"])


def padding_arg(cfg, data_format: str):
    pad = cfg["padding"]
    if isinstance(pad, str):
        return pad
    return [[0, 0], list(pad[0]), list(pad[1]), [0, 0]] if data_format == "NHWC" else [[0, 0], [0, 0], *map(list, pad)]


def window_arg(hw, data_format: str, form: int):
    """Strides or dilations in one of the accepted forms (int, [v], [h, w], 4-list in layout order)."""
    h, w = hw
    if h == w and form == 0:
        return h
    if h == w and form == 1:
        return [h]
    if form == 2:
        return [h, w]
    return [1, h, w, 1] if data_format == "NHWC" else [1, 1, h, w]


def op_args(cfg, data_format: str, index: int) -> dict:
    return dict(strides=window_arg(cfg["stride"], data_format, index % 4),
                padding=padding_arg(cfg, data_format), data_format=data_format,
                dilations=window_arg(cfg["dilation"], data_format, (index // 4) % 4))


def configs(depthwise: bool, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [random_config(rng, depthwise) for _ in range(CONFIGS_PER_OP)]


def fixed(h, w, in_c, k, multiplier, out_c, stride, dilation, padding, groups=1) -> dict:
    return dict(batch=2, h=h, w=w, in_c=in_c, kh=k[0], kw=k[1], multiplier=multiplier, out_c=out_c, groups=groups,
                stride=stride, dilation=dilation, padding=padding)


# besides the random ones: the typical layers, and dilation at stride 1 (TensorFlow's native depthwise path)
CONV_CONFIGS = configs(depthwise=False, seed=2) + [
    fixed(7, 9, 3, (3, 3), 1, 23, (2, 2), (1, 1), "SAME"),
    fixed(7, 9, 5, (3, 3), 1, 5, (1, 1), (2, 2), ((2, 2), (2, 2))),
    fixed(7, 9, 6, (3, 3), 1, 6, (2, 1), (1, 2), "SAME", groups=6),
]
DEPTHWISE_CONFIGS = configs(depthwise=True, seed=3) + [
    fixed(7, 9, 3, (3, 3), 2, 0, (1, 1), (2, 2), "SAME"),
    fixed(7, 9, 5, (3, 3), 3, 0, (1, 1), (2, 1), ((1, 2), (0, 3))),
    fixed(7, 9, 23, (3, 3), 1, 0, (2, 2), (1, 1), "SAME"),
    fixed(8, 8, 5, (5, 5), 2, 0, (2, 2), (2, 2), "SAME"),
]


def cfg_id(cfg) -> str:
    return (f"{cfg['batch']}x{cfg['h']}x{cfg['w']}x{cfg['in_c']}-k{cfg['kh']}x{cfg['kw']}-g{cfg['groups']}"
            f"-m{cfg['multiplier']}-o{cfg['out_c']}-s{cfg['stride'][0]}{cfg['stride'][1]}"
            f"-d{cfg['dilation'][0]}{cfg['dilation'][1]}-{cfg['padding']}").replace(" ", "")


def arrays(cfg, depthwise: bool, dtype, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(input_nhwc(cfg)).astype(dtype)
    w = rng.standard_normal(filter_shape_of(cfg, depthwise)).astype(dtype)
    return x, w


def nchw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def nhwc(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 2, 3, 1)


def in_layout(a: np.ndarray, data_format: str) -> np.ndarray:
    return nchw(a) if data_format == "NCHW" else a


def back_to_nhwc(a: np.ndarray, data_format: str) -> np.ndarray:
    return nhwc(a) if data_format == "NCHW" else a


# --------------------------------------------------------------------------- TensorFlow oracles (NHWC)


def tf_padding(cfg):
    pad = cfg["padding"]
    return pad if isinstance(pad, str) else [[0, 0], list(pad[0]), list(pad[1]), [0, 0]]


def upsample_matrix(k: int, dilation: int) -> np.ndarray:
    """``U[a, i] = 1`` where dilated tap ``a`` is original tap ``i``: ``w_dilated = U_h w U_w^T``."""
    u = np.zeros(((k - 1) * dilation + 1, k))
    u[np.arange(k) * dilation, np.arange(k)] = 1.0
    return u


def block_diagonal_matrix(channels: int, multiplier: int) -> np.ndarray:
    """``E[k, j, q] = 1`` where dense output channel ``j`` is depthwise channel ``k*M + q``."""
    e = np.zeros((channels, channels * multiplier, multiplier))
    for k in range(channels):
        for q in range(multiplier):
            e[k, k * multiplier + q, q] = 1.0
    return e


def tf_dense_filter(tf, w, cfg, depthwise: bool):
    """Our filter as the undilated dense filter TensorFlow's CPU conv2d computes correctly (linear in ``w``)."""
    dtype = w.dtype
    if depthwise:
        e = tf.constant(block_diagonal_matrix(cfg["in_c"], cfg["multiplier"]), dtype)
        w = tf.einsum("hwkq,kjq->hwkj", w, e)
    uh = tf.constant(upsample_matrix(cfg["kh"], cfg["dilation"][0]), dtype)
    uw = tf.constant(upsample_matrix(cfg["kw"], cfg["dilation"][1]), dtype)
    return tf.einsum("ah,bw,hwij->abij", uh, uw, w)


def tf_conv_dense(tf, x, dense, cfg):
    """``tf.nn.conv2d``, per group when the filter is grouped (TensorFlow's CPU kernel refuses groups)."""
    strides = list(cfg["stride"])
    groups = x.shape[-1] // dense.shape[2]
    if groups == 1:
        return tf.nn.conv2d(x, dense, strides, tf_padding(cfg))
    xs = tf.split(x, groups, axis=3)
    ws = tf.split(dense, groups, axis=3)
    return tf.concat([tf.nn.conv2d(a, b, strides, tf_padding(cfg)) for a, b in zip(xs, ws, strict=True)], axis=3)


def tf_forward_and_gradients(tf, x, w, g, cfg, depthwise: bool):
    """The forward op through the dense-filter equivalent, and the tape's gradients for ``g``."""
    x, w = tf.constant(x), tf.constant(w)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, w])
        y = tf_conv_dense(tf, x, tf_dense_filter(tf, w, cfg, depthwise), cfg)
    if g is None:
        return y.numpy(), None, None
    dx, dw = tape.gradient(y, [x, w], output_gradients=tf.constant(g))
    return y.numpy(), dx.numpy(), dw.numpy()


def tf_native_depthwise(tf, x, w, cfg):
    """``tf.nn.depthwise_conv2d`` itself, where its CPU kernel is right (equal strides, no stride with dilation)."""
    (sh, sw), (dh, dw) = cfg["stride"], cfg["dilation"]
    if sh != sw or (sh > 1 and max(dh, dw) > 1):
        return None
    return tf.nn.depthwise_conv2d(x, w, [1, sh, sw, 1], tf_padding(cfg), dilations=[dh, dw]).numpy()


@functools.cache
def tf_results(kind: str, index: int, dtype_name: str) -> dict:
    """TensorFlow's answers for one configuration (cached: each test runs on both implementations)."""
    import tensorflow as tf

    dtype = np.dtype(dtype_name).type
    depthwise = kind == "depthwise"
    cfg = (DEPTHWISE_CONFIGS if depthwise else CONV_CONFIGS)[index]
    x, w = arrays(cfg, depthwise, dtype, seed=index)
    y, _, _ = tf_forward_and_gradients(tf, x, w, None, cfg, depthwise)
    g = np.random.default_rng(100 + index).standard_normal(y.shape).astype(dtype)
    y, dx, dw = tf_forward_and_gradients(tf, x, w, g, cfg, depthwise)
    out = dict(x=x, w=w, y=y, g=g, dx=dx, dw=dw)
    if depthwise:
        out["native"] = tf_native_depthwise(tf, x, w, cfg)
        pw = np.random.default_rng(200 + index).standard_normal((1, 1, y.shape[-1], 5)).astype(dtype)
        out["pw"] = pw
        out["separable"] = tf.nn.conv2d(y, pw, 1, "VALID").numpy()
        if out["native"] is not None:
            (s, _), dil = cfg["stride"], list(cfg["dilation"])
            out["native_separable"] = tf.nn.separable_conv2d(x, w, pw, [1, s, s, 1], tf_padding(cfg), dilations=dil).numpy()
            if dil == [1, 1]:
                out["native_dx"] = tf.compat.v1.nn.depthwise_conv2d_native_backprop_input(
                    x.shape, w, g, [1, s, s, 1], tf_padding(cfg)).numpy()
                out["native_dw"] = tf.compat.v1.nn.depthwise_conv2d_native_backprop_filter(
                    x, w.shape, g, [1, s, s, 1], tf_padding(cfg)).numpy()
    elif cfg["dilation"] == (1, 1) and cfg["groups"] == 1:
        strides = [1, *cfg["stride"], 1]
        out["native_dx"] = tf.compat.v1.nn.conv2d_backprop_input(x.shape, w, g, strides, tf_padding(cfg)).numpy()
        out["native_dx_hw"] = tf.raw_ops.Conv2DBackpropInput(
            input_sizes=list(x.shape[1:3]), filter=w, out_backprop=g, strides=strides, padding="EXPLICIT"
            if not isinstance(cfg["padding"], str) else cfg["padding"],
            explicit_paddings=sum(tf_padding(cfg), []) if not isinstance(cfg["padding"], str) else []).numpy()
        out["native_dw"] = tf.compat.v1.nn.conv2d_backprop_filter(x, w.shape, g, strides, tf_padding(cfg)).numpy()
        out["transpose"] = tf.nn.conv2d_transpose(g, w, x.shape, cfg["stride"], tf_padding(cfg)).numpy()
    return out


DTYPES = [np.float32, np.float64]
LAYOUTS = ["NHWC", "NCHW"]


def check(got, want, dtype):
    assert got.shape == want.shape
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, **TOL[dtype])


# --------------------------------------------------------------------------- conv2d family


@pytest.mark.parametrize("data_format", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index", range(len(CONV_CONFIGS)), ids=[cfg_id(c) for c in CONV_CONFIGS])
def test_conv2d_family_vs_tf(tf, impl, index, dtype, data_format):
    cfg = CONV_CONFIGS[index]
    r = tf_results("conv2d", index, np.dtype(dtype).name)
    args = op_args(cfg, data_format, index)
    x, g = in_layout(r["x"], data_format), in_layout(r["g"], data_format)
    check(back_to_nhwc(sepconv.conv2d(x, r["w"], **args), data_format), r["y"], dtype)
    dx = sepconv.conv2d_backprop_input(list(x.shape), r["w"], g, **args)
    check(back_to_nhwc(dx, data_format), r["dx"], dtype)
    check(sepconv.conv2d_backprop_filter(x, r["w"].shape, g, **args), r["dw"], dtype)
    dx_hw = sepconv.conv2d_backprop_input([cfg["h"], cfg["w"]], r["w"], g, **args)
    if cfg["groups"] == 1:  # the 2-vector form takes the channels from the filter: ungrouped only
        check(back_to_nhwc(dx_hw, data_format), r["dx"], dtype)
    y_t = sepconv.conv2d_transpose(g, r["w"], list(x.shape), **args)
    check(back_to_nhwc(y_t, data_format), r["dx"], dtype)
    if "native_dx" in r:  # TensorFlow's own gradient ops too, where its CPU runs them
        check(back_to_nhwc(dx, data_format), r["native_dx"], dtype)
        check(back_to_nhwc(dx, data_format), r["native_dx_hw"], dtype)
        check(sepconv.conv2d_backprop_filter(x, r["w"].shape, g, **args), r["native_dw"], dtype)
        check(back_to_nhwc(y_t, data_format), r["transpose"], dtype)


# --------------------------------------------------------------------------- depthwise family


@pytest.mark.parametrize("data_format", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index", range(len(DEPTHWISE_CONFIGS)), ids=[cfg_id(c) for c in DEPTHWISE_CONFIGS])
def test_depthwise_family_vs_tf(tf, impl, index, dtype, data_format):
    cfg = DEPTHWISE_CONFIGS[index]
    r = tf_results("depthwise", index, np.dtype(dtype).name)
    args = op_args(cfg, data_format, index)
    x, g = in_layout(r["x"], data_format), in_layout(r["g"], data_format)
    y = back_to_nhwc(sepconv.depthwise_conv2d(x, r["w"], **args), data_format)
    check(y, r["y"], dtype)
    if r["native"] is not None:
        check(y, r["native"], dtype)
    dx = sepconv.depthwise_conv2d_backprop_input(list(x.shape), r["w"], g, **args)
    check(back_to_nhwc(dx, data_format), r["dx"], dtype)
    dw = sepconv.depthwise_conv2d_backprop_filter(x, r["w"].shape, g, **args)
    check(dw, r["dw"], dtype)
    both = sepconv.depthwise_conv2d_gradients(x, r["w"], g, **args)
    check(back_to_nhwc(both[0], data_format), r["dx"], dtype)
    check(both[1], r["dw"], dtype)
    if "native_dx" in r:
        check(back_to_nhwc(dx, data_format), r["native_dx"], dtype)
        check(dw, r["native_dw"], dtype)
    sep = back_to_nhwc(sepconv.separable_conv2d(x, r["w"], r["pw"], **args), data_format)
    check(sep, r["separable"], dtype)
    if "native_separable" in r:
        check(sep, r["native_separable"], dtype)


@pytest.mark.filterwarnings("ignore:When dilation rate is greater than 1")
def test_depthwise_stride_with_dilation_where_tf_is_wrong(tf):
    # tf.nn.depthwise_conv2d returns a wrongly shaped result here; tf.nn.conv2d with the dense filter is right.
    x = np.random.default_rng(0).standard_normal((2, 7, 9, 3))
    w = np.random.default_rng(1).standard_normal((3, 3, 3, 2))
    ours = sepconv.depthwise_conv2d(x, w, 2, "SAME", dilations=2)
    cfg = dict(in_c=3, multiplier=2, kh=3, kw=3, dilation=(2, 2), stride=(2, 2), padding="SAME")
    want, _, _ = tf_forward_and_gradients(tf, x, w, None, cfg, depthwise=True)
    assert ours.shape == want.shape == (2, 4, 5, 6)
    np.testing.assert_allclose(ours, want, rtol=1e-10, atol=1e-10)
    wrong = tf.nn.depthwise_conv2d(x, w, [1, 2, 2, 1], "SAME", dilations=[2, 2]).numpy()
    assert wrong.shape != ours.shape  # the TensorFlow bug this library works around


# --------------------------------------------------------------------------- shapes, dtypes and odd forms


@pytest.mark.parametrize("shape", [(0, 7, 9, 3), (2, 0, 9, 3), (2, 7, 0, 3)])
@pytest.mark.parametrize("op", ["conv2d", "depthwise_conv2d", "separable_conv2d"])
def test_empty_inputs_match_tf_shapes(tf, impl, op, shape):
    x = np.ones(shape, np.float32)
    w = np.ones((3, 3, 3, 2), np.float32)
    pw = np.ones((1, 1, 6, 4), np.float32)
    call = {
        "conv2d": (lambda m: m.conv2d(x, w, [1, 2, 2, 1], "SAME")),
        "depthwise_conv2d": (lambda m: m.depthwise_conv2d(x, w, [1, 2, 2, 1], "SAME")),
        "separable_conv2d": (lambda m: m.separable_conv2d(x, w, pw, [1, 2, 2, 1], "SAME")),
    }[op]
    want = call(tf.nn).numpy()
    got = call(sepconv)
    assert got.shape == want.shape
    assert got.dtype == np.float32
    assert not got.any()


def test_rank5_conv2d_matches_tf(tf, impl):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 9, 5))
    w = np.random.default_rng(1).standard_normal((3, 2, 5, 4))
    want = tf.nn.conv2d(x, w, [1, 2], "SAME", dilations=[1, 1]).numpy()
    got = sepconv.conv2d(x, w, [1, 2], "SAME")
    check(got, want, np.float64)
    got_nchw = sepconv.conv2d(x.transpose(0, 1, 4, 2, 3), w, [1, 2], "SAME", data_format="NCHW")
    np.testing.assert_allclose(got_nchw.transpose(0, 1, 3, 4, 2), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
@pytest.mark.parametrize("op", ["conv2d", "depthwise_conv2d"])
def test_half_precision_matches_tf(tf, impl, op, dtype_name):
    dtype = tf.dtypes.as_dtype(dtype_name).as_numpy_dtype  # bfloat16 is ml_dtypes', as TensorFlow's
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 7, 9, 5)).astype(dtype)
    w = (rng.standard_normal((3, 3, 5, 2)) / 3).astype(dtype)
    if op == "conv2d":
        want = tf.nn.conv2d(x, w, 2, "SAME").numpy()
        got = sepconv.conv2d(x, w, 2, "SAME")
    else:
        want = tf.nn.depthwise_conv2d(x, w, [1, 2, 2, 1], "SAME").numpy()
        got = sepconv.depthwise_conv2d(x, w, 2, "SAME")
    assert got.dtype == want.dtype == dtype
    tolerance = 2e-2 if dtype_name == "float16" else 1e-1
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=tolerance, atol=tolerance)


def test_nan_and_inf_propagate_like_tf(tf, impl):
    x = np.random.default_rng(0).standard_normal((1, 5, 6, 2))
    x[0, 2, 3, 0] = np.nan
    x[0, 0, 0, 1] = np.inf
    w = np.random.default_rng(1).standard_normal((3, 3, 2, 2))
    for ours, theirs in [
        (sepconv.conv2d(x, w, 1, "SAME"), tf.nn.conv2d(x, w, 1, "SAME").numpy()),
        (sepconv.depthwise_conv2d(x, w, 1, "SAME"), tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME").numpy()),
    ]:
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs))
        finite = np.isfinite(theirs)
        np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-10, atol=1e-10)


def test_int32_conv2d_values_match_tf(tf, impl):
    # TensorFlow's conv2d runs int32 on the CPU (its kernel tests use it); we promote to float64, same values.
    x = np.arange(1, 1 + 2 * 7 * 9 * 3, dtype=np.int32).reshape(2, 7, 9, 3) % 11
    w = np.arange(1, 1 + 3 * 3 * 3 * 4, dtype=np.int32).reshape(3, 3, 3, 4) % 7 - 3
    want = tf.nn.conv2d(x, w, 2, "SAME").numpy()
    got = sepconv.conv2d(x, w, 2, "SAME")
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("output_hw", [(10, 10), (9, 9), (11, 11), (12, 12)])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv2d_transpose_output_shapes_like_tf(tf, impl, output_hw, padding):
    # several output sizes map to the same conv2d output; TensorFlow accepts exactly those
    x = np.random.default_rng(0).standard_normal((1, 5, 5, 4))
    w = np.random.default_rng(1).standard_normal((3, 3, 2, 4))
    shape = [1, *output_hw, 2]
    try:
        want = tf.nn.conv2d_transpose(x, w, shape, 2, padding).numpy()
    except Exception:  # TensorFlow refuses this output size: so must we
        with pytest.raises(ValueError):
            sepconv.conv2d_transpose(x, w, shape, 2, padding)
        return
    check(sepconv.conv2d_transpose(x, w, shape, 2, padding), want, np.float64)
    check(sepconv.conv2d_transpose(x, w, list(output_hw), 2, padding), want, np.float64)
    nchw_out = sepconv.conv2d_transpose(nchw(x), w, [1, 2, *output_hw], [1, 1, 2, 2], padding, "NCHW")
    check(nhwc(nchw_out), want, np.float64)


@pytest.mark.parametrize("in_w, stride", [(0, 2), (0, 1), (1, 2), (1, 1), (2, 1), (0, 3), (1, 3)])
def test_gradient_ops_accept_empty_outputs_exactly_where_tf_does(tf, impl, in_w, stride):
    # TensorFlow's kernels: out = (in - k + stride) / stride truncated towards zero, refused only when negative
    w = np.ones((3, 3, 2, 4), np.float32)
    dy = np.ones((1, 3, 0, 4), np.float32)
    args = ([1, 5, in_w, 2], w, dy, [1, 1, stride, 1], "VALID")
    try:
        want = tf.compat.v1.nn.conv2d_backprop_input(*args).numpy()
    except tf.errors.InvalidArgumentError:
        with pytest.raises(ValueError, match="larger than the padded input"):
            sepconv.conv2d_backprop_input(*args)
        return
    got = sepconv.conv2d_backprop_input(*args)
    assert got.shape == want.shape
    assert not got.any()
    dw = sepconv.conv2d_backprop_filter(np.ones((1, 5, in_w, 2), np.float32), w.shape, dy, [1, 1, stride, 1], "VALID")
    np.testing.assert_array_equal(dw, np.zeros(w.shape))


@pytest.mark.parametrize("padding", ["same", "valid", "Same", "EXPLICIT", "FULL"])
def test_padding_strings_tf_refuses(tf, impl, padding):
    x, w = np.ones((1, 5, 5, 2), np.float32), np.ones((3, 3, 2, 4), np.float32)
    with pytest.raises(Exception):  # noqa: B017 - TensorFlow 2.21 raises InvalidArgumentError or ValueError
        tf.nn.conv2d(x, w, 1, padding)
    with pytest.raises(ValueError, match="padding"):
        sepconv.conv2d(x, w, 1, padding)


@pytest.mark.parametrize("kwargs", [
    {"strides": [1, 1, 1]}, {"dilations": [1, 1, 1]}, {"strides": 0}, {"dilations": 0},
    {"strides": [2, 1, 1, 1]}, {"dilations": [2, 1, 1, 1]}, {"padding": [[0, 0], [1, 1], [1, 1]]},
    {"padding": [[0, 0], [-1, 1], [1, 1], [0, 0]]}, {"padding": [[1, 1], [1, 1], [1, 1], [0, 0]]},
    {"filters": np.ones((3, 3, 4, 4), np.float32)}, {"filters": np.ones((1, 0, 2, 4), np.float32)},
    {"filters": np.ones((7, 3, 2, 4), np.float32), "padding": "VALID"},
    {"input": np.ones((5, 5, 2), np.float32)}, {"data_format": "NCW"},
])
def test_conv2d_refusals_agree_with_tf(tf, impl, kwargs):
    args = {"input": np.ones((1, 5, 5, 2), np.float32), "filters": np.ones((3, 3, 2, 4), np.float32),
            "strides": 1, "padding": "SAME", **kwargs}
    with pytest.raises(Exception):  # noqa: B017 - TensorFlow's error types vary
        tf.nn.conv2d(**args)
    with pytest.raises(ValueError):
        sepconv.conv2d(**args)
