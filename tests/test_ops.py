"""The public ops on hand-computed cases and their documented conventions, on every implementation."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from conftest import rand, tol

import sepconv


def test_seed_worked_example(impl):
    # shared/seeds/002: 3x3 input 1..9 as (1, 3, 3, 1), filter [[1, 2], [3, 4]] as (2, 1, 1, 2), VALID.
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
    f = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32).reshape(2, 1, 1, 2)
    y = sepconv.depthwise_conv2d(x, f, strides=[1, 1, 1, 1], padding="VALID")
    expected = [[[13, 18], [17, 24], [21, 30]], [[25, 36], [29, 42], [33, 48]]]
    np.testing.assert_array_equal(y[0], expected)
    assert y.dtype == np.float32


def test_tf_docstring_example_explicit_padding(impl):
    # tf.nn.depthwise_conv2d's docstring: x (1, 3, 2, 1) = 1..6, the same kernel.
    x = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], np.float32).reshape(1, 3, 2, 1)
    f = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32).reshape(2, 1, 1, 2)
    valid = sepconv.depthwise_conv2d(x, f, [1, 1, 1, 1], "VALID")
    np.testing.assert_array_equal(valid[0], [[[10, 14], [14, 20]], [[18, 26], [22, 32]]])
    padded = sepconv.depthwise_conv2d(x, f, [1, 1, 1, 1], [[0, 0], [1, 0], [1, 1], [0, 0]])
    # top row: only the bottom tap (3, 4) reads row 0; left/right columns read the zero pad
    np.testing.assert_array_equal(padded[0, :, 1:3], [[[3, 4], [6, 8]], [[10, 14], [14, 20]], [[18, 26], [22, 32]]])
    np.testing.assert_array_equal(padded[0, :, [0, 3]], 0)


def test_conv2d_hand_computed(impl):
    # 1x3x3x1 input 1..9, 2x2 filter of ones, VALID: sums of 2x2 windows.
    x = np.arange(1, 10, dtype=np.float64).reshape(1, 3, 3, 1)
    y = sepconv.conv2d(x, np.ones((2, 2, 1, 1)), 1, "VALID")
    np.testing.assert_array_equal(y[..., 0], [[[12, 16], [24, 28]]])
    # SAME, stride 2, even input 4x4: TF pads 0 top/left and 1 bottom/right.
    x = np.arange(1, 17, dtype=np.float64).reshape(1, 4, 4, 1)
    y = sepconv.conv2d(x, np.ones((3, 3, 1, 1)), 2, "SAME")
    # rows 0-2 x cols 0-2: 1+2+3+5+6+7+9+10+11 = 54; rows 0-2 x cols 2-3 (col 4 is pad): 3+4+7+8+11+12 = 45
    np.testing.assert_array_equal(y[..., 0], [[[54, 45], [72, 54]]])


def test_multiplier_channel_order(impl):
    # output channel k*M + q = input channel k times filter[..., k, q]
    x = np.array([1.0, 10.0, 100.0]).reshape(1, 1, 1, 3)
    f = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]).reshape(1, 1, 3, 2)
    y = sepconv.depthwise_conv2d(x, f, 1, "VALID")
    np.testing.assert_array_equal(y.ravel(), [1, 2, 30, 40, 500, 600])


def test_separable_is_depthwise_then_pointwise(impl):
    rng = np.random.default_rng(0)
    x, dw, pw = rand(rng, (2, 7, 9, 3)), rand(rng, (3, 3, 3, 2)), rand(rng, (1, 1, 6, 5))
    y = sepconv.separable_conv2d(x, dw, pw, [2, 1], "SAME")
    mid = sepconv.depthwise_conv2d(x, dw, [2, 1], "SAME")
    np.testing.assert_allclose(y, sepconv.conv2d(mid, pw, 1, "VALID"), **tol(np.float64))


def test_separable_all_ones_pointwise_is_not_conv2d(impl):
    # seed 003: with pointwise all ones, separable = sum over channels of per-channel convolutions,
    # i.e. conv2d with the filter w[..., c, o] = dw[..., c, 0] for every o (not an arbitrary conv2d).
    rng = np.random.default_rng(1)
    x, dw = rand(rng, (1, 6, 6, 3)), rand(rng, (3, 3, 3, 1))
    y = sepconv.separable_conv2d(x, dw, np.ones((1, 1, 3, 4)), 1, "SAME")
    conv_w = np.repeat(dw, 4, axis=3)
    np.testing.assert_allclose(y, sepconv.conv2d(x, conv_w, 1, "SAME"), **tol(np.float64))
    np.testing.assert_allclose(y[..., 0], y[..., 3])  # every output channel is the same


def test_grouped_conv2d_is_per_group_conv(impl):
    rng = np.random.default_rng(2)
    x, w = rand(rng, (2, 5, 6, 6)), rand(rng, (3, 3, 2, 9))  # 3 groups of 2 input / 3 output channels
    y = sepconv.conv2d(x, w, 1, "SAME")
    parts = [sepconv.conv2d(x[..., 2 * g:2 * g + 2], w[..., 3 * g:3 * g + 3], 1, "SAME") for g in range(3)]
    np.testing.assert_allclose(y, np.concatenate(parts, axis=-1), **tol(np.float64))


def test_depthwise_equals_grouped_conv2d(impl):
    rng = np.random.default_rng(3)
    x, w = rand(rng, (1, 7, 9, 4)), rand(rng, (3, 3, 4, 2))
    y = sepconv.depthwise_conv2d(x, w, [1, 2], "SAME", dilations=[2, 1])
    np.testing.assert_allclose(y, sepconv.conv2d(x, w.reshape(3, 3, 1, 8), [1, 2], "SAME", dilations=[2, 1]),
                               **tol(np.float64))


def test_stride_with_dilation_is_mathematically_right(impl):
    # TF's depthwise returns a wrong shape here; the right answer subsamples the stride-1 result.
    rng = np.random.default_rng(4)
    x, w = rand(rng, (1, 11, 10, 3)), rand(rng, (3, 3, 3, 1))
    full = sepconv.depthwise_conv2d(x, w, 1, "VALID", dilations=2)
    strided = sepconv.depthwise_conv2d(x, w, 2, "VALID", dilations=2)
    assert strided.shape == (1, 4, 3, 3)
    np.testing.assert_allclose(strided, full[:, ::2, ::2], **tol(np.float64))


@pytest.mark.parametrize("op", ["conv2d", "depthwise"])
def test_nchw_is_transposed_nhwc(impl, op):
    rng = np.random.default_rng(5)
    x, w = rand(rng, (2, 7, 9, 3)), rand(rng, (3, 2, 3, 2))
    fn = sepconv.conv2d if op == "conv2d" else sepconv.depthwise_conv2d
    nhwc = fn(x, w, [1, 2, 1, 1], [[0, 0], [1, 0], [0, 2], [0, 0]], dilations=[1, 2, 1, 1])
    nchw = fn(x.transpose(0, 3, 1, 2), w, [1, 1, 2, 1], [[0, 0], [0, 0], [1, 0], [0, 2]], "NCHW",
              dilations=[1, 1, 2, 1])
    np.testing.assert_allclose(nchw, nhwc.transpose(0, 3, 1, 2), **tol(np.float64))


def test_extra_batch_dims(impl):
    rng = np.random.default_rng(6)
    x, w = rand(rng, (2, 3, 5, 5, 2)), rand(rng, (3, 3, 2, 4))
    y = sepconv.conv2d(x, w, 1, "SAME")
    assert y.shape == (2, 3, 5, 5, 4)
    np.testing.assert_allclose(y.reshape(6, 5, 5, 4), sepconv.conv2d(x.reshape(6, 5, 5, 2), w, 1, "SAME"))


def test_empty_batch_and_zero_backprop(impl):
    x = np.zeros((0, 5, 5, 3), np.float32)
    assert sepconv.depthwise_conv2d(x, np.ones((3, 3, 3, 2), np.float32), 2, "SAME").shape == (0, 3, 3, 6)
    assert sepconv.conv2d(x, np.ones((3, 3, 3, 4), np.float32), 1, "VALID").shape == (0, 3, 3, 4)
    dw = sepconv.depthwise_conv2d_backprop_filter(x, [3, 3, 3, 2], np.zeros((0, 3, 3, 6)), 2, "SAME")
    np.testing.assert_array_equal(dw, np.zeros((3, 3, 3, 2)))  # TF returns garbage here; zeros are right
    dx = sepconv.conv2d_backprop_input([0, 5, 5, 3], np.ones((3, 3, 3, 4)), np.zeros((0, 3, 3, 4)), 1, "VALID")
    assert dx.shape == (0, 5, 5, 3)


def test_dtypes(impl):
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    w = np.ones((2, 2, 1, 1))
    y64 = sepconv.conv2d(x, w, 1, "VALID")
    assert y64.dtype == np.float64
    y16 = sepconv.conv2d(x.astype(np.float16), w.astype(np.float16), 1, "VALID")
    assert y16.dtype == np.float16
    np.testing.assert_allclose(y16, y64, rtol=1e-3)
    yint = sepconv.conv2d(x.astype(np.int32), w.astype(np.int64), 1, "VALID")  # promoted to float64
    assert yint.dtype == np.float64
    np.testing.assert_array_equal(yint, y64)
    ymixed = sepconv.conv2d(x.astype(np.float32), w, 1, "VALID")  # NumPy's result_type: float64
    assert ymixed.dtype == np.float64
    ylist = sepconv.depthwise_conv2d(x.tolist(), w.tolist(), 1, "VALID")
    np.testing.assert_array_equal(ylist, y64)


def test_nan_and_inf_propagate(impl):
    x = np.ones((1, 5, 5, 2), np.float32)
    x[0, 2, 2, 0] = np.nan
    x[0, 0, 0, 1] = np.inf
    y = sepconv.depthwise_conv2d(x, np.ones((3, 3, 2, 1), np.float32), 1, "SAME")
    assert np.isnan(y[0, 1:4, 1:4, 0]).all() and np.isfinite(y[0, [0, 4], :, 0]).all()
    assert np.isposinf(y[0, :2, :2, 1]).all() and np.isfinite(y[0, 2:, :, 1]).all()


def test_non_contiguous_and_fortran_inputs(impl):
    rng = np.random.default_rng(7)
    base = rand(rng, (2, 9, 11, 6), np.float32)
    w = rand(rng, (3, 3, 3, 2), np.float32)
    x = base[:, ::2, 1::2, ::2]
    expected = sepconv.depthwise_conv2d(np.ascontiguousarray(x), w, 1, "SAME")
    np.testing.assert_allclose(sepconv.depthwise_conv2d(x, w, 1, "SAME"), expected, **tol(np.float32))
    np.testing.assert_allclose(sepconv.depthwise_conv2d(np.asfortranarray(x), np.asfortranarray(w), 1, "SAME"),
                               expected, **tol(np.float32))


def test_conv2d_transpose_is_backprop_input(impl):
    rng = np.random.default_rng(8)
    x, w = rand(rng, (2, 4, 5, 3)), rand(rng, (3, 3, 2, 3))
    y = sepconv.conv2d_transpose(x, w, [2, 8, 9, 2], 2, "SAME")
    np.testing.assert_allclose(y, sepconv.conv2d_backprop_input([2, 8, 9, 2], w, x, 2, "SAME"))
    np.testing.assert_allclose(y, sepconv.conv2d_transpose(x, w, [8, 9], 2, "SAME"))  # [height, width] form


def test_input_sizes_two_vector(impl):
    rng = np.random.default_rng(9)
    w, dy = rand(rng, (3, 3, 4, 2)), rand(rng, (2, 3, 4, 8))
    full = sepconv.depthwise_conv2d_backprop_input([2, 5, 7, 4], w, dy, 2, "SAME")
    np.testing.assert_allclose(sepconv.depthwise_conv2d_backprop_input([5, 7], w, dy, 2, "SAME"), full)


def test_docstring_examples_run():
    result = doctest.testmod(sepconv.api, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


def test_conv2d_backprop_input_takes_the_raw_op_keyword_filter():
    """``filter=`` (tf.raw_ops / tf.compat.v1) gives what ``filters=`` gives; both, or neither, is an error."""
    rng = np.random.default_rng(0)
    w, dy = rng.standard_normal((3, 3, 2, 4)), rng.standard_normal((1, 5, 5, 4))
    expected = sepconv.conv2d_backprop_input([1, 5, 5, 2], w, dy, 1, "SAME")
    got = sepconv.conv2d_backprop_input(input_sizes=[1, 5, 5, 2], filter=w, out_backprop=dy, strides=[1, 1, 1, 1],
                                        padding="SAME")
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(TypeError, match="not both"):
        sepconv.conv2d_backprop_input([1, 5, 5, 2], w, dy, 1, "SAME", filter=w)
    with pytest.raises(TypeError, match="conv2d_backprop_input: missing required argument.*`filters`"):
        sepconv.conv2d_backprop_input([1, 5, 5, 2], out_backprop=dy, strides=1, padding="SAME")
