"""Conformance cases found by comparing random configurations and error paths with TensorFlow 2.21.

Each test pins one discrepancy that a new user would have met; the values are TensorFlow's
(measured with ``TF_ENABLE_ONEDNN_OPTS=0``) or hand-computed from its kernels' rules, and every
test runs on both implementations (``impl``) and, where a layout is involved, both layouts.
"""

from __future__ import annotations

import numpy as np
import pytest

import sepconv

LAYOUTS = ("NHWC", "NCHW")


def _nchw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _nhwc(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 2, 3, 1)


# --------------------------------------------------------------------------- NaN and Inf


def _tf_depthwise_backprop_input(w: np.ndarray, dy: np.ndarray, in_hw, stride: int, pads) -> np.ndarray:
    """TensorFlow's CPU ``DepthwiseConv2dNativeBackpropInput`` as written: every input pixel multiplies
    every filter tap, with ``out_backprop`` where the tap reads an output and 0 where it reads none
    (``depthwise_conv_grad_op.cc``, ``CopyOutputBackpropRegion``)."""
    kh, kw, c, m = w.shape
    n, out_h, out_w, _ = dy.shape
    (pad_top, _), (pad_left, _) = pads
    dx = np.zeros((n, *in_hw, c))
    for r in range(in_hw[0]):
        for s in range(in_hw[1]):
            for di in range(kh):
                for dj in range(kw):
                    o_r, rest_r = divmod(r + pad_top - di, stride)
                    o_c, rest_c = divmod(s + pad_left - dj, stride)
                    read = rest_r == 0 and rest_c == 0 and 0 <= o_r < out_h and 0 <= o_c < out_w
                    g = dy[:, o_r, o_c].reshape(n, c, m) if read else np.zeros((n, c, m))
                    dx[:, r, s] += (g * w[di, dj]).sum(axis=-1)
    return dx


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("stride, padding, pads", [
    (1, "VALID", ((0, 0), (0, 0))),
    (2, "SAME", ((1, 1), (0, 1))),   # 5x6 input, 3x3 filter, stride 2
    (1, [[0, 0], [2, 0], [1, 3], [0, 0]], ((2, 0), (1, 3))),
    (3, [[0, 0], [1, 2], [0, 4], [0, 0]], ((1, 2), (0, 4))),
])
@pytest.mark.parametrize("data_format", LAYOUTS)
def test_depthwise_backprop_input_non_finite_filter_as_tensorflow(impl, value, stride, padding, pads, data_format):
    # A non-finite filter tap reaches every input pixel of its channel in TensorFlow's kernel: as
    # ``inf * out_backprop`` where the tap reads an output, as ``0 * inf = NaN`` where it reads none
    # (measured: tf.raw_ops.DepthwiseConv2dNativeBackpropInput, TF 2.21 CPU). The finite channels
    # are unaffected.
    with np.errstate(invalid="ignore"):
        rng = np.random.default_rng(7)
        w = rng.uniform(0.5, 1.0, (3, 3, 3, 2))
        w[1, 2, 1, 1] = value
        in_hw = (5, 6)
        g = sepconv.geometry.depthwise_geometry("t", (2, *in_hw, 3), w.shape, stride, padding)
        dy = rng.uniform(0.5, 1.0, (2, g.out_h, g.out_w, 6))
        expected = _tf_depthwise_backprop_input(w, dy, in_hw, stride, pads)
        if isinstance(padding, list) and data_format == "NCHW":
            padding = [padding[0], padding[3], padding[1], padding[2]]
        args = (stride, padding, data_format)
        if data_format == "NCHW":
            dx = _nhwc(sepconv.depthwise_conv2d_backprop_input((2, 3, *in_hw), w, _nchw(dy), *args))
        else:
            dx = sepconv.depthwise_conv2d_backprop_input((2, *in_hw, 3), w, dy, *args)
    assert not np.isfinite(expected[..., 1]).any()  # the whole channel, not only the pixels the tap reaches
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(dx), np.isposinf(expected))
    np.testing.assert_allclose(dx[..., [0, 2]], expected[..., [0, 2]], rtol=1e-12)


# --------------------------------------------------------------------------- errors name the arguments

X = np.ones((2, 7, 9, 3), np.float32)
W_CONV, W_DW = np.ones((3, 3, 3, 4), np.float32), np.ones((3, 3, 3, 2), np.float32)
DY_CONV, DY_DW = np.ones((2, 7, 9, 4), np.float32), np.ones((2, 7, 9, 6), np.float32)


@pytest.mark.parametrize("call, pattern", [
    (lambda: sepconv.conv2d(X, np.ones((3, 3, 5, 2)), 1, "SAME"),
     r"^conv2d: .*\(3\).*\(5\).*`input` shape \(2, 7, 9, 3\).*`filters` shape \(3, 3, 5, 2\)"),
    (lambda: sepconv.conv2d(np.ones((2, 7, 9, 6)), np.ones((3, 3, 2, 4)), 1, "SAME"),
     r"^conv2d: .*3 groups.*divisible by 3.*`filters` shape \(3, 3, 2, 4\)"),
    (lambda: sepconv.depthwise_conv2d(X, np.ones((3, 3, 5, 2)), 1, "SAME"),
     r"^depthwise_conv2d: .*`filter` shape \(3, 3, 5, 2\).*\(3\).*`input` shape \(2, 7, 9, 3\)"),
    (lambda: sepconv.separable_conv2d(X, np.ones((3, 3, 5, 2)), np.ones((1, 1, 10, 4)), 1, "SAME"),
     r"^separable_conv2d: .*`depthwise_filter` shape \(3, 3, 5, 2\).*`input` shape \(2, 7, 9, 3\)"),
    (lambda: sepconv.conv2d_backprop_input([2, 7, 9, 5], W_CONV, DY_CONV, 1, "SAME"),
     r"^conv2d_backprop_input: .*\(5\).*\(3\).*`input_sizes` shape \(2, 7, 9, 5\).*`filters` shape \(3, 3, 3, 4\)"),
    (lambda: sepconv.conv2d_transpose(DY_CONV, W_CONV, [2, 7, 9, 5], 1, "SAME"),
     r"^conv2d_transpose: .*`output_shape` shape \(2, 7, 9, 5\).*`filters` shape \(3, 3, 3, 4\)"),
    (lambda: sepconv.depthwise_conv2d_backprop_input([2, 7, 9, 5], W_DW, DY_DW, 1, "SAME"),
     r"^depthwise_conv2d_backprop_input: .*`filter` shape \(3, 3, 3, 2\).*`input_sizes` shape \(2, 7, 9, 5\)"),
    (lambda: sepconv.conv2d_backprop_filter(X, [3, 3, 5, 4], DY_CONV, 1, "SAME"),
     r"^conv2d_backprop_filter: .*`input` shape \(2, 7, 9, 3\).*`filter_sizes` shape \(3, 3, 5, 4\)"),
    (lambda: sepconv.depthwise_conv2d_backprop_filter(X, [3, 3, 5, 2], DY_DW, 1, "SAME"),
     r"^depthwise_conv2d_backprop_filter: .*`filter_sizes` shape \(3, 3, 5, 2\).*`input` shape \(2, 7, 9, 3\)"),
], ids=["conv2d", "conv2d groups", "depthwise", "separable", "conv2d_backprop_input", "conv2d_transpose",
        "depthwise_backprop_input", "conv2d_backprop_filter", "depthwise_backprop_filter"])
def test_channel_mismatch_names_both_arguments(impl, call, pattern):
    # "the input's channels must equal the filter's": which argument is "the input" (an array, `input_sizes`,
    # `output_shape`) and which is "the filter" (`filters`, `depthwise_filter`, `filter_sizes`) is the op's.
    with pytest.raises(ValueError, match=pattern):
        call()


@pytest.mark.parametrize("op, sizes", [
    (sepconv.conv2d_backprop_filter, [0, 3, 3, 4]), (sepconv.depthwise_conv2d_backprop_filter, [3, 0, 3, 2]),
])
def test_zero_sized_filter_sizes_named(impl, op, sizes):
    dy = DY_CONV if op is sepconv.conv2d_backprop_filter else DY_DW
    with pytest.raises(ValueError, match=rf"^{op.__name__}: `filter_sizes` must have a positive height and width"):
        op(X, sizes, dy, 1, "SAME")


@pytest.mark.parametrize("data_format", LAYOUTS)
def test_rank_error_names_input_sizes(impl, data_format):
    with pytest.raises(ValueError, match=r"^depthwise_conv2d_backprop_input: `input_sizes` must be"):
        sepconv.depthwise_conv2d_backprop_input([2, 7, 9], W_DW, DY_DW, 1, "SAME", data_format)


def test_conv2d_backprop_input_dtype_error_names_filters(impl):
    with pytest.raises(TypeError, match=r"^conv2d_backprop_input: `filters` must be a real numeric array"):
        sepconv.conv2d_backprop_input(X.shape, W_CONV.astype(np.complex64), DY_CONV, 1, "SAME")


# --------------------------------------------------------------------------- stride with dilation


@pytest.mark.parametrize("size", [9, 10, 11])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_separable_stride_with_dilation_is_conv2d_of_the_combined_filter(impl, size, padding):
    # tf.nn.separable_conv2d with strides 2 and dilations 2 warns and returns other values (of another
    # shape for even sizes); the right answer is conv2d with filter[i, j, k, o] = sum_q dw[i, j, k, q] pw[k*M + q, o].
    rng = np.random.default_rng(size)
    x, dw, pw = rng.random((2, size, size, 2)), rng.random((3, 3, 2, 2)), rng.random((1, 1, 4, 3))
    combined = np.einsum("hwkq,kqo->hwko", dw, pw.reshape(2, 2, 3))
    expected = sepconv.conv2d(x, combined, 2, padding, dilations=2)
    assert expected.shape[1] == {("SAME", 9): 5, ("SAME", 10): 5, ("SAME", 11): 6}.get((padding, size), expected.shape[1])
    np.testing.assert_allclose(sepconv.separable_conv2d(x, dw, pw, 2, padding, dilations=2), expected, rtol=1e-12)


# --------------------------------------------------------------------------- no error from deep inside


@pytest.mark.parametrize("call", [
    lambda: sepconv.conv2d(np.ones((2, 7, 9, 0)), W_CONV, 1, "SAME"),
    lambda: sepconv.conv2d(np.ones((2, 0, 7, 9)), W_CONV, 1, "SAME", "NCHW"),
    lambda: sepconv.conv2d_backprop_filter(np.ones((2, 7, 9, 0)), [3, 3, 3, 4], DY_CONV, 1, "SAME"),
    lambda: sepconv.conv2d_backprop_input([2, 7, 9, 0], W_CONV, DY_CONV, 1, "SAME"),
], ids=["conv2d", "conv2d NCHW", "backprop_filter", "backprop_input"])
def test_input_without_channels_is_a_channel_mismatch(impl, call):
    # 0 input channels against a filter with 3: 0 % 3 == 0 made it "0 groups" (ZeroDivisionError).
    with pytest.raises(ValueError, match=r"input's channels \(0\) must equal the filter's in_channels \(3\)"):
        call()


@pytest.mark.parametrize("op, args", [
    (sepconv.conv2d_backprop_filter, (X, [2**62, 2**62, 3, 4], DY_CONV)),
    (sepconv.depthwise_conv2d_backprop_filter, (X, [2**40, 2**40, 3, 2], DY_DW)),
    (sepconv.conv2d_backprop_input, ([2**40, 2**40, 2**40, 3], W_CONV, DY_CONV)),
], ids=["conv2d_backprop_filter", "depthwise_backprop_filter", "backprop_input"])
def test_sizes_beyond_int64_elements_are_refused_by_name(impl, op, args):
    # TensorFlow: "Shape [...] would have more than 2**63 - 1 elements"; NumPy said "Maximum allowed dimension exceeded".
    name = "filter_sizes" if "filter" in op.__name__ else "input_sizes"
    with pytest.raises(ValueError, match=rf"^{op.__name__}: `{name}` must have at most 2\*\*63 - 1 elements"):
        op(*args, 1, "SAME")


# --------------------------------------------------------------------------- what TensorFlow accepts


@pytest.mark.parametrize("padding", [b"SAME", b"VALID"])
def test_padding_as_bytes_as_tensorflow(impl, padding):
    # tf.nn.conv2d / depthwise_conv2d / separable_conv2d / conv2d_transpose take b"SAME" and b"VALID"
    # (string attributes go in as bytes); b"same" stays an error, as there.
    rng = np.random.default_rng(0)
    x, w = rng.random((1, 5, 6, 3)), rng.random((3, 3, 3, 2))
    expected = sepconv.depthwise_conv2d(x, w, 2, padding.decode())
    np.testing.assert_array_equal(sepconv.depthwise_conv2d(x, w, 2, padding), expected)
    with pytest.raises(ValueError, match=r"^conv2d: `padding` must be 'SAME', 'VALID'"):
        sepconv.conv2d(x, w, 1, padding.lower())
