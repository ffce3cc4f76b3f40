"""Cases ported from TensorFlow's own kernel tests, with their hand-computed expected values.

Sources (tensorflow/tensorflow, ``python/kernel_tests/nn_ops/``): ``conv_ops_test.py``
(Conv2DTest, DepthwiseConv2DTest, SeparableConv2DTest), ``depthwise_conv_op_base.py``
(ConfigsToTest, ConfigsToTestExplicit, CheckGradConfigsToTest, CheckGradConfigsToTestExplicit),
``conv2d_transpose_test.py`` and ``separable_conv2d_patch_test.py``.  Each case keeps TensorFlow's
name, shapes and numbers; where TensorFlow's test compares against a second TensorFlow op (an
explicitly padded input, ``nn_ops.convolution`` for dilations, a numeric Jacobian), the oracle
here is the same identity computed on independent paths: a zero-padded input with VALID, a
zero-upsampled filter without dilation, the adjoint identity.

Every case runs on both implementations (``impl``), in NHWC and in NCHW (TensorFlow runs NCHW
only on GPUs; we run it everywhere).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import sepconv

LAYOUTS = ("NHWC", "NCHW")


# --------------------------------------------------------------------------- helpers


def arange_tensor(shape, dtype=np.float64) -> np.ndarray:
    """TensorFlow's ``_CreateNumpyTensor``: 1, 2, 3, ... in the given shape."""
    return np.arange(1, int(np.prod(shape)) + 1, dtype=np.float64).reshape(shape).astype(dtype)


def scaled_tensor(shape, start=1) -> np.ndarray:
    """The depthwise tests' values: ``(start .. start + size - 1) / size``."""
    size = int(np.prod(shape))
    return (np.arange(start, start + size, dtype=np.float64) / size).reshape(shape)


def to_layout(a: np.ndarray, data_format: str) -> np.ndarray:
    return a.transpose(0, 3, 1, 2) if data_format == "NCHW" else a


def from_layout(a: np.ndarray, data_format: str) -> np.ndarray:
    return a.transpose(0, 2, 3, 1) if data_format == "NCHW" else a


def shape_in_layout(shape, data_format: str) -> list[int]:
    shape = list(shape)
    return [shape[0], shape[3], shape[1], shape[2]] if data_format == "NCHW" and len(shape) == 4 else shape


def window4(hw, data_format: str) -> list[int]:
    """``[h, w]`` strides or dilations as the 4-list TensorFlow's tests pass."""
    h, w = hw
    return [1, 1, h, w] if data_format == "NCHW" else [1, h, w, 1]


def pads4(padding, data_format: str):
    """``[[t, b], [l, r]]`` as TensorFlow's 4-pair explicit padding for the layout; strings pass through."""
    if isinstance(padding, str):
        return padding
    (top, bottom), (left, right) = padding
    if data_format == "NCHW":
        return [[0, 0], [0, 0], [top, bottom], [left, right]]
    return [[0, 0], [top, bottom], [left, right], [0, 0]]


def dilate_filter(w: np.ndarray, dilations) -> np.ndarray:
    """Insert ``d - 1`` zeros between the taps: the undilated filter with the same effect."""
    dh, dw = dilations
    kh, kw = w.shape[:2]
    out = np.zeros(((kh - 1) * dh + 1, (kw - 1) * dw + 1, *w.shape[2:]), w.dtype)
    out[::dh, ::dw] = w
    return out


def pad_input(x_nhwc: np.ndarray, padding) -> np.ndarray:
    (top, bottom), (left, right) = padding
    return np.pad(x_nhwc, ((0, 0), (top, bottom), (left, right), (0, 0)))


# --------------------------------------------------------------------------- conv2d forward, hand values

# (TensorFlow test name, input [N, H, W, C], filter, [stride_h, stride_w], padding, expected flat NHWC output)
CONV2D_HAND_CASES = [
    ("testConv2D1x1Filter", [1, 2, 3, 3], [1, 1, 3, 3], [1, 1], "VALID",
     [30.0, 36.0, 42.0, 66.0, 81.0, 96.0, 102.0, 126.0, 150.0, 138.0, 171.0, 204.0, 174.0, 216.0, 258.0,
      210.0, 261.0, 312.0]),
    ("testConv2DEmpty", [0, 2, 3, 3], [1, 1, 3, 3], [1, 1], "VALID", []),
    ("testConv2D2x2Filter", [1, 2, 3, 3], [2, 2, 3, 3], [1, 1], "VALID",
     [2271.0, 2367.0, 2463.0, 2901.0, 3033.0, 3165.0]),
    ("testConv2D1x2Filter", [1, 2, 3, 3], [1, 2, 3, 3], [1, 1], "VALID",
     [231.0, 252.0, 273.0, 384.0, 423.0, 462.0, 690.0, 765.0, 840.0, 843.0, 936.0, 1029.0]),
    ("testConv2D2x2FilterStride2", [1, 2, 3, 3], [2, 2, 3, 3], [2, 2], "VALID", [2271.0, 2367.0, 2463.0]),
    ("testConv2D2x2FilterStride2Same", [1, 2, 3, 3], [2, 2, 3, 3], [2, 2], "SAME",
     [2271.0, 2367.0, 2463.0, 1230.0, 1305.0, 1380.0]),
    ("testConv2D2x2FilterStride1x2", [1, 3, 6, 1], [2, 2, 1, 1], [1, 2], "VALID",
     [58.0, 78.0, 98.0, 118.0, 138.0, 158.0]),
    ("testConv2DKernelSmallerThanStrideValid", [1, 7, 7, 1], [2, 2, 1, 1], [3, 3], "VALID", [65, 95, 275, 305]),
    ("testConv2DKernelSmallerThanStrideSame/3x3", [1, 3, 3, 1], [1, 1, 1, 1], [2, 2], "SAME", [1, 3, 7, 9]),
    ("testConv2DKernelSmallerThanStrideSame/4x4", [1, 4, 4, 1], [1, 1, 1, 1], [2, 2], "SAME", [1, 3, 9, 11]),
    ("testConv2DKernelSmallerThanStrideSame/4x4k2s3", [1, 4, 4, 1], [2, 2, 1, 1], [3, 3], "SAME", [44, 28, 41, 16]),
    ("testConv2DKernelSizeMatchesInputSize", [1, 2, 2, 1], [2, 2, 1, 2], [1, 1], "VALID", [50, 60]),
    ("testConv2dOnlyPaddingReturnsZeros", [1, 0, 2, 1], [1, 1, 1, 1], [1, 1], [[1, 1], [1, 1]], [0] * 8),
]

# TensorFlow's _VerifyValues: float32, float16 (tolerance 1e-3), float64 and int32 (NHWC).
DTYPE_TOLERANCE = {np.float32: 1e-5, np.float16: 1e-3, np.float64: 1e-5, np.int32: 0}


@pytest.mark.parametrize("data_format", LAYOUTS)
@pytest.mark.parametrize("dtype", list(DTYPE_TOLERANCE))
@pytest.mark.parametrize("name, x_shape, w_shape, strides, padding, expected", CONV2D_HAND_CASES,
                         ids=[c[0] for c in CONV2D_HAND_CASES])
def test_conv2d_hand_values(impl, name, x_shape, w_shape, strides, padding, expected, dtype, data_format):
    x = to_layout(arange_tensor(x_shape, dtype), data_format)
    w = arange_tensor(w_shape, dtype)
    y = sepconv.conv2d(x, w, window4(strides, data_format), pads4(padding, data_format), data_format=data_format)
    y = from_layout(y, data_format)
    tolerance = DTYPE_TOLERANCE[dtype]
    np.testing.assert_allclose(np.ravel(y).astype(np.float64), expected, rtol=tolerance, atol=tolerance)
    if dtype in (np.float32, np.float64, np.float16):
        assert y.dtype == dtype


def test_conv2d_expanded_batch(impl):
    # testConv2DExpandedBatch: [10, 2, 3, 3] and the same data as [2, 5, 2, 3, 3] agree.
    w = arange_tensor([1, 1, 3, 3])
    x = arange_tensor([10, 2, 3, 3])
    flat = sepconv.conv2d(x, w, strides=[1, 1], padding="VALID")
    expanded = sepconv.conv2d(x.reshape(2, 5, 2, 3, 3), w, strides=[1, 1], padding="VALID")
    assert flat.shape == (10, 2, 3, 3)
    assert expanded.shape == (2, 5, 2, 3, 3)
    np.testing.assert_array_equal(flat, expanded.reshape(flat.shape))


# --------------------------------------------------------------------------- conv2d, dilations and explicit pads

# _VerifyDilatedConvValues cases: (name, input, filter, strides, dilations, padding)
CONV2D_DILATED_CASES = [
    ("testConv2D2x2Filter2x1Dilation", [1, 4, 4, 1], [2, 2, 1, 1], [1, 1], [2, 1], "VALID"),
    ("testConv2DEmptyDilation", [0, 2, 3, 3], [1, 1, 3, 3], [1, 1], [2, 1], "VALID"),
    ("testConv2D2x2FilterDilation", [1, 2, 3, 3], [2, 2, 3, 3], [1, 1], [1, 2], "VALID"),
    ("testConv2D1x2FilterDilation", [1, 2, 3, 3], [1, 2, 3, 3], [1, 1], [2, 1], "VALID"),
    ("testConv2DKernelSizeMatchesInputSizeDilation", [1, 3, 3, 1], [2, 2, 1, 2], [1, 1], [2, 2], "VALID"),
    # the shrunk Inception shapes of testInceptionFwdDilatedConv (stride 1, dilation 2)
    ("testInceptionFwdDilatedConv/17x17", [4, 17, 17, 19], [3, 3, 19, 19], [1, 1], [2, 2], "SAME"),
    ("testInceptionFwdDilatedConv/35x35", [4, 35, 35, 4], [5, 5, 4, 6], [1, 1], [2, 2], "SAME"),
    ("testInceptionFwdDilatedConv/8x8", [4, 8, 8, 38], [1, 3, 38, 38], [1, 1], [2, 2], "SAME"),
]


@pytest.mark.parametrize("data_format", LAYOUTS)
@pytest.mark.parametrize("name, x_shape, w_shape, strides, dilations, padding", CONV2D_DILATED_CASES,
                         ids=[c[0] for c in CONV2D_DILATED_CASES])
def test_conv2d_dilated_equals_upsampled_filter(impl, name, x_shape, w_shape, strides, dilations, padding,
                                                data_format):
    x = to_layout(arange_tensor(x_shape), data_format)
    w = arange_tensor(w_shape)
    got = sepconv.conv2d(x, w, window4(strides, data_format), padding, data_format, window4(dilations, data_format))
    want = sepconv.conv2d(x, dilate_filter(w, dilations), window4(strides, data_format), padding, data_format)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12)


# _VerifyExplicitPaddings cases: (name, input, filter, strides, [[top, bottom], [left, right]], dilations)
CONV2D_EXPLICIT_CASES = [
    ("testConv2D0x0Padding/a", [1, 2, 3, 3], [2, 2, 3, 3], [1, 1], [[0, 0], [0, 0]], [1, 1]),
    ("testConv2D0x0Padding/b", [3, 4, 3, 2], [1, 1, 2, 1], [2, 2], [[0, 0], [0, 0]], [1, 1]),
    ("testConv2D1x1Padding/a", [1, 2, 3, 2], [2, 2, 2, 2], [1, 1], [[1, 1], [1, 1]], [1, 1]),
    ("testConv2D1x1Padding/b", [1, 2, 2, 1], [1, 1, 1, 2], [1, 1], [[1, 1], [1, 1]], [1, 1]),
    ("testConv2D2x2Padding/a", [1, 2, 1, 2], [2, 1, 2, 1], [1, 1], [[2, 2], [2, 2]], [1, 1]),
    ("testConv2D2x2Padding/b", [1, 2, 1, 2], [1, 1, 2, 1], [2, 1], [[2, 2], [2, 2]], [1, 1]),
    ("testConv2DOnlyBottomPadding/a", [1, 2, 3, 3], [2, 2, 3, 2], [1, 1], [[0, 3], [0, 0]], [1, 1]),
    ("testConv2DOnlyBottomPadding/b", [2, 2, 4, 3], [1, 2, 3, 2], [2, 2], [[0, 3], [0, 0]], [1, 1]),
    ("testConv2DOnlyTopRightPadding/a", [1, 2, 3, 3], [2, 2, 3, 2], [1, 1], [[1, 0], [0, 2]], [1, 1]),
    ("testConv2DOnlyTopRightPadding/b", [1, 2, 4, 2], [2, 2, 2, 2], [1, 3], [[1, 0], [0, 2]], [1, 1]),
    ("testConv2DLotsPadding/a", [1, 1, 1, 3], [2, 2, 3, 3], [1, 1], [[3, 4], [4, 2]], [1, 1]),
    ("testConv2DLotsPadding/b", [1, 2, 1, 1], [2, 2, 1, 3], [2, 1], [[3, 4], [4, 2]], [1, 1]),
    ("testConv2DExplicitPaddingWithDilations/a", [1, 3, 2, 1], [1, 2, 1, 2], [1, 1], [[1, 0], [0, 1]], [2, 1]),
    ("testConv2DExplicitPaddingWithDilations/b", [1, 2, 3, 2], [3, 2, 2, 1], [1, 1], [[2, 1], [1, 2]], [2, 3]),
]


@pytest.mark.parametrize("data_format", LAYOUTS)
@pytest.mark.parametrize("name, x_shape, w_shape, strides, padding, dilations", CONV2D_EXPLICIT_CASES,
                         ids=[c[0] for c in CONV2D_EXPLICIT_CASES])
def test_conv2d_explicit_padding_equals_padded_valid(impl, name, x_shape, w_shape, strides, padding, dilations,
                                                     data_format):
    x = arange_tensor(x_shape)
    w = arange_tensor(w_shape)
    want = sepconv.conv2d(pad_input(x, padding), w, strides, "VALID", dilations=dilations)
    got = sepconv.conv2d(to_layout(x, data_format), w, window4(strides, data_format), pads4(padding, data_format),
                         data_format, window4(dilations, data_format))
    got = from_layout(got, data_format)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_conv2d_explicit_padding_hand_value(impl):
    # testConv2D1x1Padding/b by hand: 2x2 input 1..4, 1x1 filter [1, 2], one pixel of zeros around.
    y = sepconv.conv2d(arange_tensor([1, 2, 2, 1]), arange_tensor([1, 1, 1, 2]), 1, [[0, 0], [1, 1], [1, 1], [0, 0]])
    expected = np.zeros((4, 4))
    expected[1:3, 1:3] = [[1, 2], [3, 4]]
    np.testing.assert_array_equal(y[0, ..., 0], expected)
    np.testing.assert_array_equal(y[0, ..., 1], 2 * expected)


# testConv2DGroupConvFwd: grouped conv2d equals the concatenation of per-group conv2d.
@pytest.mark.parametrize("data_format", LAYOUTS)
@pytest.mark.parametrize("filter_shape", [[3, 3, 4, 8], [1, 1, 2, 16]])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("dilation", [1, 2])
def test_conv2d_group_conv_fwd(impl, filter_shape, stride, dilation, data_format):
    x = arange_tensor([2, 12, 12, 16]) / 1000.0  # TensorFlow uses [10, 32, 32, 16]; smaller, same channels
    w = arange_tensor(filter_shape) / 100.0
    groups = 16 // filter_shape[2]
    per_group_out = filter_shape[3] // groups
    args = dict(strides=window4([stride, stride], data_format), padding="SAME", data_format=data_format,
                dilations=window4([dilation, dilation], data_format))
    got = from_layout(sepconv.conv2d(to_layout(x, data_format), w, **args), data_format)
    parts = []
    for g in range(groups):
        xg = x[..., g * filter_shape[2]:(g + 1) * filter_shape[2]]
        wg = w[..., g * per_group_out:(g + 1) * per_group_out]
        parts.append(from_layout(sepconv.conv2d(to_layout(xg, data_format), wg, **args), data_format))
    np.testing.assert_allclose(got, np.concatenate(parts, axis=-1), rtol=1e-12)


# --------------------------------------------------------------------------- conv2d gradients, hand values

# _RunAndVerifyBackpropInput: filter = 1.., out_backprop = 1..; (name, input_sizes, filter, output, strides, padding, expected)
BACKPROP_INPUT_CASES = [
    ("testConv2D2x2Depth1ValidBackpropInput", [1, 2, 3, 1], [2, 2, 1, 1], [1, 1, 2, 1], [1, 1], "VALID",
     [1.0, 4.0, 4.0, 3.0, 10.0, 8.0]),
    ("testConv2DEmptyBackpropInput", [0, 2, 3, 1], [2, 2, 1, 1], [0, 1, 2, 1], [1, 1], "VALID", []),
    ("testConv2D2x2Depth3ValidBackpropInput", [1, 2, 3, 3], [2, 2, 3, 3], [1, 1, 2, 3], [1, 1], "VALID",
     [14.0, 32.0, 50.0, 100.0, 163.0, 226.0, 167.0, 212.0, 257.0, 122.0, 140.0, 158.0, 478.0, 541.0, 604.0,
      437.0, 482.0, 527.0]),
    ("testConv2D2x2Depth3ValidBackpropInputStride1x2", [1, 3, 6, 1], [2, 2, 1, 1], [1, 2, 3, 1], [1, 2], "VALID",
     [1.0, 2.0, 2.0, 4.0, 3.0, 6.0, 7.0, 12.0, 11.0, 18.0, 15.0, 24.0, 12.0, 16.0, 15.0, 20.0, 18.0, 24.0]),
    ("testConv2DStrideTwoFilterOneSameBackpropInput", [1, 4, 4, 1], [1, 1, 1, 1], [1, 2, 2, 1], [2, 2], "SAME",
     [1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ("testConv2DKernelSizeMatchesInputSizeBackpropInput", [1, 2, 2, 1], [2, 2, 1, 2], [1, 1, 1, 2], [1, 1],
     "VALID", [5.0, 11.0, 17.0, 23.0]),
    ("testConv2DInputSizesContainsOnlySpatialDimensionsBackpropInput", [2, 2], [2, 2, 1, 2], [1, 1, 1, 2],
     [1, 1], "VALID", [5.0, 11.0, 17.0, 23.0]),
    ("testConv2DBackpropInputDegenerateBackpropInput", [3, 1, 1, 2], [1, 3, 2, 3], [3, 1, 0, 3], [1, 2], "VALID",
     [0.0] * 6),
]


@pytest.mark.parametrize("data_format", LAYOUTS)
@pytest.mark.parametrize("name, input_sizes, w_shape, dy_shape, strides, padding, expected", BACKPROP_INPUT_CASES,
                         ids=[c[0] for c in BACKPROP_INPUT_CASES])
def test_conv2d_backprop_input_hand_values(impl, name, input_sizes, w_shape, dy_shape, strides, padding, expected,
                                           data_format):
    dy = to_layout(arange_tensor(dy_shape), data_format)
    dx = sepconv.conv2d_backprop_input(shape_in_layout(input_sizes, data_format), arange_tensor(w_shape), dy,
                                       window4(strides, data_format), padding, data_format)
    dx = from_layout(dx, data_format)
    full_input = input_sizes if len(input_sizes) == 4 else [dy_shape[0], *input_sizes, w_shape[2]]
    assert list(dx.shape) == full_input
    np.testing.assert_allclose(np.ravel(dx), expected, rtol=1e-12, atol=1e-12)


def test_conv2d_transpose_two_element_output_shape(impl):
    # conv2d_transpose passes output_shape on as input_sizes: the 2-vector form works there too.
    y = sepconv.conv2d_transpose(arange_tensor([1, 1, 1, 2]), arange_tensor([2, 2, 1, 2]), [2, 2], 1, "VALID")
    np.testing.assert_array_equal(np.ravel(y), [5.0, 11.0, 17.0, 23.0])


# _RunAndVerifyBackpropFilter: input = 1.., out_backprop = 1..; (name, input, filter_sizes, output, strides, padding, expected)
BACKPROP_FILTER_CASES = [
    ("testConv2D2x2Depth1ValidBackpropFilter", [1, 2, 3, 1], [2, 2, 1, 1], [1, 1, 2, 1], [1, 1], "VALID",
     [5.0, 8.0, 14.0, 17.0]),
    ("testConv2DEmptyBackpropFilter", [1, 2, 3, 1], [2, 2, 1, 0], [1, 1, 2, 0], [1, 1], "VALID", []),
    ("testConv2DBackpropFilterWithEmptyInput", [0, 2, 3, 1], [2, 2, 1, 1], [0, 1, 2, 1], [1, 1], "VALID",
     [0, 0, 0, 0]),
    ("testConv2D2x2Depth3ValidBackpropFilter", [1, 2, 3, 3], [2, 2, 3, 3], [1, 1, 2, 3], [1, 1], "VALID",
     [17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0, 32.0, 43.0, 54.0, 37.0, 50.0, 63.0, 42.0, 57.0, 72.0,
      62.0, 85.0, 108.0, 67.0, 92.0, 117.0, 72.0, 99.0, 126.0, 77.0, 106.0, 135.0, 82.0, 113.0, 144.0, 87.0,
      120.0, 153.0]),
    ("testConv2D2x2Depth3ValidBackpropFilterStride1x2", [1, 3, 6, 1], [2, 2, 1, 1], [1, 2, 3, 1], [1, 2], "VALID",
     [161.0, 182.0, 287.0, 308.0]),
    ("testConv2DStrideTwoFilterOneSameBackpropFilter", [1, 4, 4, 1], [1, 1, 1, 1], [1, 2, 2, 1], [2, 2], "SAME",
     [78.0]),
    ("testConv2DKernelSizeMatchesInputSizeBackpropFilter", [1, 2, 2, 1], [2, 2, 1, 2], [1, 1, 1, 2], [1, 1],
     "VALID", [1.0, 2.0, 2.0, 4.0, 3.0, 6.0, 4.0, 8.0]),
    # TensorFlow's CPU kernel returns uninitialised memory here (shared/TF_NOTES.md); the answer is zeros.
    ("degenerate out_backprop (cf. testConv2DBackpropInputDegenerateBackpropInput)", [3, 1, 1, 2], [1, 3, 2, 3],
     [3, 1, 0, 3], [1, 2], "VALID", [0.0] * 18),
]


@pytest.mark.parametrize("data_format", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, x_shape, filter_sizes, dy_shape, strides, padding, expected", BACKPROP_FILTER_CASES,
                         ids=[c[0] for c in BACKPROP_FILTER_CASES])
def test_conv2d_backprop_filter_hand_values(impl, name, x_shape, filter_sizes, dy_shape, strides, padding, expected,
                                            dtype, data_format):
    x = to_layout(arange_tensor(x_shape, dtype), data_format)
    dy = to_layout(arange_tensor(dy_shape, dtype), data_format)
    dw = sepconv.conv2d_backprop_filter(x, filter_sizes, dy, window4(strides, data_format), padding, data_format)
    assert list(dw.shape) == filter_sizes
    assert dw.dtype == dtype
    np.testing.assert_allclose(np.ravel(dw), expected, rtol=1e-6, atol=1e-6)


# _RunAndVerifyBackprop{Input,Filter}ExplicitPadding: (name, input, filter, output, strides, [[t, b], [l, r]], dilations)
BACKPROP_EXPLICIT_CASES = [
    ("Padding0x0/a", [1, 2, 3, 1], [2, 2, 1, 1], [1, 1, 2, 1], [1, 1], [[0, 0], [0, 0]], [1, 1]),
    ("Padding0x0/b", [1, 3, 4, 2], [2, 2, 2, 3], [1, 1, 2, 3], [2, 2], [[0, 0], [0, 0]], [1, 1]),
    ("Padding1x1/a", [1, 2, 3, 1], [2, 2, 1, 2], [1, 3, 4, 2], [1, 1], [[1, 1], [1, 1]], [1, 1]),
    ("Padding1x1/b", [1, 2, 3, 2], [1, 1, 2, 1], [1, 4, 3, 1], [1, 2], [[1, 1], [1, 1]], [1, 1]),
    ("Padding1x1/c-dilated", [1, 4, 3, 1], [2, 2, 1, 1], [1, 4, 2, 1], [1, 2], [[1, 1], [1, 1]], [2, 2]),
    ("Padding2x2/a", [2, 3, 1, 1], [2, 1, 1, 1], [2, 2, 5, 1], [3, 1], [[2, 2], [2, 2]], [1, 1]),
    ("Padding2x2/b-dilated", [1, 3, 6, 1], [3, 2, 1, 1], [1, 3, 4, 1], [1, 2], [[2, 2], [2, 2]], [2, 3]),
    ("Padding_1_8_4_1/a", [1, 2, 3, 1], [2, 2, 1, 1], [1, 10, 8, 1], [1, 1], [[1, 8], [4, 2]], [1, 1]),
    ("Padding_1_8_4_1/b", [1, 5, 3, 1], [3, 2, 1, 1], [1, 4, 8, 1], [3, 1], [[1, 8], [4, 2]], [1, 1]),
    ("Padding_5_0_2_2/a", [1, 3, 3, 1], [2, 1, 1, 1], [1, 7, 7, 1], [1, 1], [[5, 0], [2, 2]], [1, 1]),
    ("Padding_5_0_2_2/b-dilated", [1, 4, 2, 1], [3, 3, 1, 1], [1, 5, 2, 1], [1, 2], [[5, 0], [2, 2]], [2, 1]),
]


@pytest.mark.parametrize("data_format", LAYOUTS)
@pytest.mark.parametrize("name, x_shape, w_shape, dy_shape, strides, padding, dilations", BACKPROP_EXPLICIT_CASES,
                         ids=[c[0] for c in BACKPROP_EXPLICIT_CASES])
def test_conv2d_backprops_explicit_padding(impl, name, x_shape, w_shape, dy_shape, strides, padding, dilations,
                                           data_format):
    (top, bottom), (left, right) = padding
    w, dy, x = arange_tensor(w_shape), arange_tensor(dy_shape), arange_tensor(x_shape)
    padded_sizes = [x_shape[0], x_shape[1] + top + bottom, x_shape[2] + left + right, x_shape[3]]
    # oracle: VALID on the padded input, then crop (input gradient) / as is (filter gradient)
    dx_padded = sepconv.conv2d_backprop_input(padded_sizes, w, dy, strides, "VALID", dilations=dilations)
    want_dx = dx_padded[:, top:top + x_shape[1], left:left + x_shape[2], :]
    want_dw = sepconv.conv2d_backprop_filter(pad_input(x, padding), w_shape, dy, strides, "VALID", dilations=dilations)

    args = (window4(strides, data_format), pads4(padding, data_format), data_format, window4(dilations, data_format))
    dyl = to_layout(dy, data_format)
    got_dx = sepconv.conv2d_backprop_input(shape_in_layout(x_shape, data_format), w, dyl, *args)
    got_dw = sepconv.conv2d_backprop_filter(to_layout(x, data_format), w_shape, dyl, *args)
    np.testing.assert_allclose(from_layout(got_dx, data_format), want_dx, rtol=1e-12)
    np.testing.assert_allclose(got_dw, want_dw, rtol=1e-12)


# _RunAndVerifyBackprop{Input,Filter}Dilation: (name, input, filter, output, strides, dilations, padding).
# TensorFlow's helpers take the gradients of the forward op and never read the listed output size
# (three of them are wrong); the out_backprop here has the forward output's shape.
BACKPROP_DILATION_CASES = [
    ("testConv2D2x2Depth3ValidBackpropFilterStride1x1Dilation2x1", [1, 3, 6, 1], [2, 2, 1, 1], [1, 1, 5, 1],
     [1, 1], [2, 1], "VALID"),
    ("testConv2D2x2Depth1ValidBackpropFilterDilation1x2", [1, 2, 3, 1], [2, 2, 1, 1], [1, 1, 2, 1], [1, 1], [1, 2],
     "VALID"),
    ("testConv2DEmptyBackpropFilterDilation1x2", [1, 2, 3, 1], [2, 2, 1, 0], [1, 1, 2, 0], [1, 1], [1, 2], "VALID"),
    ("testConv2D2x2Depth3ValidBackpropFilterDilation2x2", [1, 3, 4, 3], [2, 2, 3, 3], [1, 1, 2, 3], [1, 1], [2, 2],
     "VALID"),
    ("testConv2DKernelSizeMatchesInputSizeBackpropFilterDilation2x2", [1, 3, 3, 1], [2, 2, 1, 2], [1, 1, 1, 2],
     [1, 1], [2, 2], "VALID"),
    ("testConv2DEmptyBackpropInputDilation1x2", [0, 2, 3, 1], [2, 2, 1, 1], [0, 1, 2, 1], [1, 1], [1, 2], "VALID"),
    ("testConv2D2x2Depth3ValidBackpropInputDilation2x1", [1, 3, 2, 3], [2, 2, 3, 3], [1, 1, 2, 3], [1, 1], [2, 1],
     "VALID"),
]


@pytest.mark.parametrize("data_format", LAYOUTS)
@pytest.mark.parametrize("name, x_shape, w_shape, dy_shape, strides, dilations, padding", BACKPROP_DILATION_CASES,
                         ids=[c[0] for c in BACKPROP_DILATION_CASES])
def test_conv2d_backprops_dilated_equal_upsampled_filter(impl, name, x_shape, w_shape, dy_shape, strides, dilations,
                                                         padding, data_format):
    x, w = arange_tensor(x_shape), arange_tensor(w_shape)
    dy = arange_tensor(sepconv.conv2d(x, w, strides, padding, dilations=dilations).shape)
    wide = dilate_filter(w, dilations)
    want_dx = sepconv.conv2d_backprop_input(x_shape, wide, dy, strides, padding)
    dh, dw_ = dilations
    want_dw = sepconv.conv2d_backprop_filter(x, wide.shape, dy, strides, padding)[::dh, ::dw_]
    args = (window4(strides, data_format), padding, data_format, window4(dilations, data_format))
    dyl = to_layout(dy, data_format)
    got_dx = sepconv.conv2d_backprop_input(shape_in_layout(x_shape, data_format), w, dyl, *args)
    got_dw = sepconv.conv2d_backprop_filter(to_layout(x, data_format), w_shape, dyl, *args)
    assert list(got_dw.shape) == w_shape
    np.testing.assert_allclose(from_layout(got_dx, data_format), want_dx, rtol=1e-12)
    np.testing.assert_allclose(got_dw, want_dw, rtol=1e-12)


# ConstructAndTestGradient: (name, batch, rows, cols, filter_rows, filter_cols, in_depth, out_depth, stride_rows,
# stride_cols, padding [NHWC 4 pairs or a string], num_groups).  TensorFlow compares the gradient ops
# with a numeric Jacobian; a convolution is linear in each argument, so that is the adjoint identity.
GRADIENT_CHECK_CASES = [
    ("ValidPaddingStrideOne/input", 2, 5, 4, 3, 3, 2, 3, 1, 1, "VALID", 1),
    ("ValidPaddingStrideOne/filter", 4, 6, 5, 2, 2, 2, 3, 1, 1, "VALID", 1),
    ("ValidPaddingStrideTwo/input", 2, 4, 5, 3, 3, 2, 3, 2, 2, "VALID", 1),
    ("ValidPaddingStrideTwo/filter", 4, 6, 5, 2, 2, 2, 3, 2, 2, "VALID", 1),
    ("ValidPaddingStrideThree/input", 2, 7, 6, 3, 3, 4, 5, 3, 3, "VALID", 1),
    ("ValidPaddingStrideThree/filter", 2, 8, 7, 4, 4, 2, 3, 3, 3, "VALID", 1),
    ("SamePaddingStrideOne/input", 2, 7, 6, 3, 3, 2, 3, 1, 1, "SAME", 1),
    ("SamePaddingStrideOne/filter", 4, 6, 5, 2, 2, 2, 3, 1, 1, "SAME", 1),
    ("SamePaddingStrideTwo/input", 2, 5, 4, 3, 3, 3, 3, 2, 2, "SAME", 1),
    ("SamePaddingStrideTwo/filter", 4, 6, 5, 2, 2, 2, 3, 2, 2, "SAME", 1),
    ("SamePaddingStrideThree/input", 2, 7, 6, 3, 3, 4, 5, 3, 3, "SAME", 1),
    ("SamePaddingStrideThree/filter", 2, 8, 7, 4, 4, 2, 3, 3, 3, "SAME", 1),
    ("SamePaddingStride2x1/filter", 2, 8, 7, 4, 4, 2, 3, 2, 1, "SAME", 1),
    ("KernelSizeMatchesInputSize", 2, 4, 3, 4, 3, 2, 3, 1, 1, "VALID", 1),
    ("1x1PaddingStrideOne", 2, 5, 4, 3, 3, 2, 3, 1, 1, [[0, 0], [1, 1], [1, 1], [0, 0]], 1),
    ("1x1PaddingStrideTwo", 2, 4, 5, 3, 3, 2, 3, 2, 2, [[0, 0], [1, 1], [1, 1], [0, 0]], 1),
    ("2x2PaddingStrideOne", 2, 5, 4, 3, 3, 2, 3, 1, 1, [[0, 0], [2, 2], [2, 2], [0, 0]], 1),
    ("1_2_3_4PaddingStride3x2", 2, 8, 5, 4, 2, 3, 2, 3, 2, [[0, 0], [1, 2], [3, 4], [0, 0]], 1),
    ("4_3_2_1PaddingStride2x1", 3, 5, 7, 3, 2, 1, 2, 2, 1, [[0, 0], [4, 3], [2, 1], [0, 0]], 1),
    ("0_0_0_5PaddingStride1x2", 2, 6, 7, 3, 4, 3, 2, 1, 2, [[0, 0], [0, 0], [0, 5], [0, 0]], 1),
    ("GradientGroupConv", 2, 5, 4, 3, 3, 4, 6, 1, 1, "VALID", 2),
]


def tf_expected_output_hw(rows, cols, filter_rows, filter_cols, stride_rows, stride_cols, padding):
    """The output size as TensorFlow's ConstructAndTestGradient writes it down."""
    if padding == "VALID":
        return (rows - filter_rows + stride_rows) // stride_rows, (cols - filter_cols + stride_cols) // stride_cols
    if padding == "SAME":
        return (rows + stride_rows - 1) // stride_rows, (cols + stride_cols - 1) // stride_cols
    return ((rows + padding[1][0] + padding[1][1] - filter_rows + stride_rows) // stride_rows,
            (cols + padding[2][0] + padding[2][1] - filter_cols + stride_cols) // stride_cols)


@pytest.mark.parametrize("data_format", LAYOUTS)
@pytest.mark.parametrize("case", GRADIENT_CHECK_CASES, ids=[c[0] for c in GRADIENT_CHECK_CASES])
def test_conv2d_gradient_checks(impl, case, data_format):
    _, batch, rows, cols, f_rows, f_cols, in_depth, out_depth, s_rows, s_cols, padding, groups = case
    x_shape = [batch, rows, cols, in_depth]
    w_shape = [f_rows, f_cols, in_depth // groups, out_depth]
    out_h, out_w = tf_expected_output_hw(rows, cols, f_rows, f_cols, s_rows, s_cols, padding)
    x = scaled_tensor(x_shape, start=0)
    w = scaled_tensor(w_shape, start=0)
    if not isinstance(padding, str) and data_format == "NCHW":
        padding = [padding[0], padding[3], padding[1], padding[2]]
    args = (window4([s_rows, s_cols], data_format), padding, data_format)
    xl = to_layout(x, data_format)
    y = sepconv.conv2d(xl, w, *args, name="conv")  # TensorFlow's test names its op; accepted and ignored
    assert list(from_layout(y, data_format).shape) == [batch, out_h, out_w, out_depth]
    g = np.random.default_rng(len(case[0])).standard_normal(y.shape)
    dx = sepconv.conv2d_backprop_input(list(xl.shape), w, g, *args)
    dw = sepconv.conv2d_backprop_filter(xl, w_shape, g, *args)
    np.testing.assert_allclose(np.vdot(y, g), np.vdot(xl, dx), rtol=1e-10)
    np.testing.assert_allclose(np.vdot(y, g), np.vdot(w, dw), rtol=1e-10)


# --------------------------------------------------------------------------- depthwise

# DepthwiseConv2DTest.testConv2D2x2Filter, computed by hand in TensorFlow's comments
def test_depthwise_hand_values(impl):
    expected = [196, 216, 272, 296, 252, 280, 344, 376]
    x, w = arange_tensor([1, 2, 3, 2]), arange_tensor([2, 2, 2, 2])
    y = sepconv.depthwise_conv2d(x, w, [1, 1, 1, 1], "VALID")
    assert y.shape == (1, 1, 2, 4)
    np.testing.assert_array_equal(np.ravel(y), expected)
    y = sepconv.depthwise_conv2d(to_layout(x, "NCHW"), w, [1, 1, 1, 1], "VALID", data_format="NCHW")
    np.testing.assert_array_equal(np.ravel(from_layout(y, "NCHW")), expected)


def depthwise_as_dense_filter(w: np.ndarray) -> np.ndarray:
    """The dense conv2d filter of a depthwise filter: block-diagonal, output channel k*M + q."""
    kh, kw, channels, multiplier = w.shape
    dense = np.zeros((kh, kw, channels, channels * multiplier), w.dtype)
    for k in range(channels):
        dense[:, :, k, k * multiplier:(k + 1) * multiplier] = w[:, :, k, :]
    return dense


# ConfigsToTest (depthwise_conv_op_base.py): (input, filter, expected output, stride, padding, dilations)
DEPTHWISE_CONFIGS = [
    ([4, 5, 5, 48], [1, 1, 48, 2], [4, 5, 5, 96], 1, "SAME", None),
    ([4, 8, 8, 84], [1, 3, 84, 1], [4, 8, 8, 84], 1, "SAME", None),
    ([4, 17, 17, 48], [3, 1, 48, 4], [4, 17, 17, 192], 1, "SAME", None),
    ([4, 9, 27, 8], [3, 3, 8, 1], [4, 9, 27, 8], 1, "SAME", None),
    ([4, 31, 31, 7], [3, 3, 7, 1], [4, 31, 31, 7], 1, "SAME", None),
    ([4, 35, 35, 2], [5, 5, 2, 1], [4, 35, 35, 2], 1, "SAME", None),
    ([4, 147, 147, 2], [3, 3, 2, 8], [4, 49, 49, 16], 3, "VALID", None),
    ([3, 299, 299, 3], [3, 2, 3, 8], [3, 150, 150, 24], 2, "SAME", None),
    ([5, 183, 183, 1], [5, 5, 1, 2], [5, 92, 92, 2], 2, "SAME", None),
    ([5, 183, 183, 1], [5, 5, 1, 2], [5, 183, 183, 2], 1, "SAME", [2, 2]),
    ([5, 41, 35, 2], [4, 7, 2, 2], [5, 32, 23, 4], 1, "VALID", [3, 2]),
]

# ConfigsToTestExplicit: padding [[top, bottom], [left, right]]
DEPTHWISE_EXPLICIT_CONFIGS = [
    ([4, 5, 5, 48], [1, 1, 48, 2], [4, 8, 12, 96], 1, [[1, 2], [3, 4]], None),
    ([4, 1, 1, 3], [3, 3, 3, 2], [4, 29, 39, 6], 1, [[10, 20], [15, 25]], None),
    ([4, 9, 27, 8], [3, 3, 8, 1], [4, 14, 31, 8], 1, [[3, 4], [4, 2]], None),
    ([4, 31, 31, 7], [3, 3, 7, 1], [4, 29, 29, 7], 1, [[0, 0], [0, 0]], None),
    ([3, 299, 299, 3], [3, 2, 3, 8], [3, 150, 153, 24], 2, [[1, 2], [3, 5]], None),
    ([5, 183, 183, 1], [5, 5, 1, 2], [5, 62, 60, 2], 3, [[3, 2], [1, 0]], None),
    ([5, 29, 31, 1], [5, 4, 1, 2], [5, 26, 23, 2], 1, [[3, 2], [1, 0]], [2, 3]),
    ([4, 5, 5, 48], [3, 3, 48, 1], [4, 5, 5, 48], 1, [[0, 2], [0, 2]], None),
    ([1, 8, 7, 2], [8, 7, 2, 1], [1, 8, 7, 2], 1, [[0, 7], [3, 3]], None),
    ([2, 4, 3, 2], [3, 2, 2, 1], [2, 4, 3, 2], 1, [[2, 0], [1, 0]], None),
]


def config_id(config) -> str:
    x_shape, w_shape, _, stride, padding, dilations = config
    return f"{x_shape}*{w_shape}/s{stride}/{padding}/d{dilations}".replace(" ", "")


@pytest.mark.parametrize("data_format", LAYOUTS)
@pytest.mark.parametrize("config", DEPTHWISE_CONFIGS + DEPTHWISE_EXPLICIT_CONFIGS,
                         ids=[config_id(c) for c in DEPTHWISE_CONFIGS + DEPTHWISE_EXPLICIT_CONFIGS])
def test_depthwise_configs(impl, config, data_format):
    x_shape, w_shape, out_shape, stride, padding, dilations = config
    x, w = scaled_tensor(x_shape), scaled_tensor(w_shape)
    dil = dilations or [1, 1]
    # TensorFlow's tests pass strides as a 4-list, dilations as a 2-list and explicit pads as 4 pairs
    got = sepconv.depthwise_conv2d(to_layout(x, data_format), w, window4([stride, stride], data_format),
                                   pads4(padding, data_format), data_format, dilations)
    got = from_layout(got, data_format)
    assert list(got.shape) == out_shape
    want = sepconv.conv2d(x, depthwise_as_dense_filter(w), stride, pads4(padding, "NHWC"), dilations=dil)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def low_precision_dtypes():
    """testDepthwiseConv2DExplicit's dtypes with its tolerances: float16 4e-2, bfloat16 2e-2, float32 1e-5."""
    dtypes = [(np.float16, 4e-2), (np.float32, 1e-5)]
    try:
        import ml_dtypes  # TensorFlow's bfloat16; installed with TensorFlow
    except ImportError:
        return dtypes
    return [*dtypes, (ml_dtypes.bfloat16, 2e-2)]


@functools.cache
def depthwise_float64_result(index: int) -> np.ndarray:
    x_shape, w_shape, _, stride, padding, dilations = DEPTHWISE_EXPLICIT_CONFIGS[index]
    with sepconv.use_implementation("reference"):
        return sepconv.depthwise_conv2d(scaled_tensor(x_shape), scaled_tensor(w_shape), stride, pads4(padding, "NHWC"),
                                        dilations=dilations)


@pytest.mark.parametrize("dtype, tolerance", low_precision_dtypes(), ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("index", range(len(DEPTHWISE_EXPLICIT_CONFIGS)),
                         ids=[config_id(c) for c in DEPTHWISE_EXPLICIT_CONFIGS])
def test_depthwise_explicit_low_precision(impl, index, dtype, tolerance):
    # testDepthwiseConv2DExplicit runs float16, float32 and bfloat16 on the CPU too: the result keeps the dtype
    x_shape, w_shape, _, stride, padding, dilations = DEPTHWISE_EXPLICIT_CONFIGS[index]
    x, w = scaled_tensor(x_shape).astype(dtype), scaled_tensor(w_shape).astype(dtype)
    got = sepconv.depthwise_conv2d(x, w, [1, stride, stride, 1], pads4(padding, "NHWC"), dilations=dilations)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got.astype(np.float64), depthwise_float64_result(index), rtol=tolerance,
                               atol=tolerance)


# CheckGradConfigsToTest and CheckGradConfigsToTestExplicit: small shapes for the gradient checks
DEPTHWISE_GRAD_CONFIGS = [
    ([2, 5, 8, 1], [4, 4, 1, 2], [2, 5, 8, 2], 1, "SAME", None),
    ([4, 5, 5, 1], [2, 2, 1, 2], [4, 2, 2, 2], 2, "VALID", None),
    ([2, 4, 4, 2], [3, 1, 2, 2], [2, 4, 4, 4], 1, "SAME", None),
    ([1, 15, 15, 2], [1, 3, 2, 1], [1, 15, 15, 2], 1, "SAME", None),
    ([2, 15, 16, 1], [3, 3, 1, 2], [2, 5, 5, 2], 3, "VALID", None),
    ([2, 5, 8, 1], [4, 3, 1, 2], [2, 5, 8, 2], 1, "SAME", [1, 2]),
    ([1, 3, 1, 2], [2, 1, 2, 1], [1, 3, 1, 2], 1, "SAME", None),
    ([2, 2, 3, 2], [2, 1, 2, 1], [2, 2, 3, 2], 1, "SAME", None),
    ([2, 2, 3, 1], [2, 2, 1, 1], [2, 2, 3, 1], 1, "SAME", None),
    ([2, 5, 8, 1], [4, 4, 1, 2], [2, 3, 10, 2], 1, [[0, 1], [2, 3]], None),
    ([4, 5, 5, 1], [2, 2, 1, 2], [4, 4, 5, 2], 2, [[3, 1], [5, 0]], None),
    ([2, 4, 4, 2], [3, 1, 2, 2], [2, 7, 11, 4], 1, [[4, 1], [3, 4]], None),
    ([1, 15, 15, 2], [1, 3, 2, 1], [1, 18, 23, 2], 1, [[3, 0], [2, 8]], None),
    ([2, 15, 16, 1], [3, 3, 1, 2], [2, 5, 8, 2], 3, [[0, 0], [10, 0]], None),
    ([2, 5, 8, 1], [3, 4, 1, 2], [2, 5, 10, 2], 1, [[3, 1], [2, 3]], [2, 1]),
    ([2, 4, 3, 2], [3, 2, 2, 1], [2, 4, 3, 2], 1, [[2, 0], [1, 0]], None),
]


@pytest.mark.parametrize("data_format", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", DEPTHWISE_GRAD_CONFIGS, ids=[config_id(c) for c in DEPTHWISE_GRAD_CONFIGS])
def test_depthwise_gradient_configs(impl, config, dtype, data_format):
    x_shape, w_shape, out_shape, stride, padding, dilations = config
    x = to_layout(scaled_tensor(x_shape, start=0), data_format).astype(dtype)
    w = scaled_tensor(w_shape, start=0).astype(dtype)
    args = (window4([stride, stride], data_format), pads4(padding, data_format), data_format, dilations)
    y = sepconv.depthwise_conv2d(x, w, *args)
    assert list(from_layout(y, data_format).shape) == out_shape
    g = np.random.default_rng(sum(x_shape)).standard_normal(y.shape).astype(dtype)
    dx = sepconv.depthwise_conv2d_backprop_input(list(x.shape), w, g, *args)
    dw = sepconv.depthwise_conv2d_backprop_filter(x, w_shape, g, *args)
    assert dx.dtype == dw.dtype == dtype
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    f64 = np.float64
    np.testing.assert_allclose(np.vdot(y.astype(f64), g), np.vdot(x.astype(f64), dx), rtol=rtol)
    np.testing.assert_allclose(np.vdot(y.astype(f64), g), np.vdot(w.astype(f64), dw), rtol=rtol)
    # and the same numbers as the dense block-diagonal conv2d's gradients
    dense = depthwise_as_dense_filter(w.astype(f64))
    want_dx = sepconv.conv2d_backprop_input(list(x.shape), dense, g.astype(f64), *args)
    np.testing.assert_allclose(dx, want_dx, rtol=rtol, atol=rtol)


# --------------------------------------------------------------------------- separable

# SeparableConv2DTest: input values 0.5, 1.0, 1.5, ...; [1, 4, 4, 2] * [2, 2, 2, 3] then [1, 1, 6, out]
SEPARABLE_EXPECTED_7 = [
    6644.5, 6971.5, 7298.5, 7625.5, 7952.5, 8279.5, 8606.5, 8154.5, 8556.5, 8958.5, 9360.5, 9762.5, 10164.5,
    10566.5, 9664.5, 10141.5, 10618.5, 11095.5, 11572.5, 12049.5, 12526.5, 4145.5, 4346.5, 4547.5, 4748.5,
    4949.5, 5150.5, 5351.5, 12684.5, 13311.5, 13938.5, 14565.5, 15192.5, 15819.5, 16446.5, 14194.5, 14896.5,
    15598.5, 16300.5, 17002.5, 17704.5, 18406.5, 15704.5, 16481.5, 17258.5, 18035.5, 18812.5, 19589.5, 20366.5,
    6499.5, 6814.5, 7129.5, 7444.5, 7759.5, 8074.5, 8389.5, 18724.5, 19651.5, 20578.5, 21505.5, 22432.5,
    23359.5, 24286.5, 20234.5, 21236.5, 22238.5, 23240.5, 24242.5, 25244.5, 26246.5, 21744.5, 22821.5, 23898.5,
    24975.5, 26052.5, 27129.5, 28206.5, 8853.5, 9282.5, 9711.5, 10140.5, 10569.5, 10998.5, 11427.5, 5746.75,
    6010.75, 6274.75, 6538.75, 6802.75, 7066.75, 7330.75, 6168.75, 6452.25, 6735.75, 7019.25, 7302.75, 7586.25,
    7869.75, 6590.75, 6893.75, 7196.75, 7499.75, 7802.75, 8105.75, 8408.75, 2036.25, 2119.5, 2202.75, 2286.0,
    2369.25, 2452.5, 2535.75,
]
SEPARABLE_EXPECTED_6 = [
    5742.0, 6069.0, 6396.0, 6723.0, 7050.0, 7377.0, 7047.0, 7449.0, 7851.0, 8253.0, 8655.0, 9057.0, 8352.0, 8829.0,
    9306.0, 9783.0, 10260.0, 10737.0, 3582.0, 3783.0, 3984.0, 4185.0, 4386.0, 4587.0, 10962.0, 11589.0, 12216.0,
    12843.0, 13470.0, 14097.0, 12267.0, 12969.0, 13671.0, 14373.0, 15075.0, 15777.0, 13572.0, 14349.0, 15126.0,
    15903.0, 16680.0, 17457.0, 5616.0, 5931.0, 6246.0, 6561.0, 6876.0, 7191.0, 16182.0, 17109.0, 18036.0, 18963.0,
    19890.0, 20817.0, 17487.0, 18489.0, 19491.0, 20493.0, 21495.0, 22497.0, 18792.0, 19869.0, 20946.0, 22023.0,
    23100.0, 24177.0, 7650.0, 8079.0, 8508.0, 8937.0, 9366.0, 9795.0, 4963.5, 5227.5, 5491.5, 5755.5, 6019.5,
    6283.5, 5328.0, 5611.5, 5895.0, 6178.5, 6462.0, 6745.5, 5692.5, 5995.5, 6298.5, 6601.5, 6904.5, 7207.5,
    1757.25, 1840.5, 1923.75, 2007.0, 2090.25, 2173.5,
]


def half_steps(shape) -> np.ndarray:
    return arange_tensor(shape) * 0.5


@pytest.mark.parametrize("data_format", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("out_channels, expected", [(7, SEPARABLE_EXPECTED_7), (6, SEPARABLE_EXPECTED_6)],
                         ids=["testSeparableConv2D", "testSeparableConv2DEqualInputOutputDepth"])
def test_separable_hand_values(impl, out_channels, expected, dtype, data_format):
    x = to_layout(half_steps([1, 4, 4, 2]), data_format).astype(dtype)
    y = sepconv.separable_conv2d(x, half_steps([2, 2, 2, 3]).astype(dtype),
                                 half_steps([1, 1, 6, out_channels]).astype(dtype),
                                 window4([1, 1], data_format), "SAME", data_format)
    y = from_layout(y, data_format)
    assert y.shape == (1, 4, 4, out_channels)
    assert y.dtype == dtype
    np.testing.assert_allclose(np.ravel(y), expected, atol=2e-3, rtol=1e-6)


@pytest.mark.parametrize("data_format", LAYOUTS)
def test_separable_explicit_padding(impl, data_format):
    # testSeparableConv2dExplicitPadding: explicit [[0, 0], [1, 2], [3, 4], [0, 0]] == VALID on the padded input
    x, wd, wp = half_steps([1, 4, 4, 2]), half_steps([2, 2, 2, 3]), half_steps([1, 1, 6, 7])
    want = sepconv.separable_conv2d(pad_input(x, [[1, 2], [3, 4]]), wd, wp, [1, 1, 1, 1], "VALID")
    got = sepconv.separable_conv2d(to_layout(x, data_format), wd, wp, window4([1, 1], data_format),
                                   pads4([[1, 2], [3, 4]], data_format), data_format)
    np.testing.assert_allclose(from_layout(got, data_format), want, rtol=1e-12)


@pytest.mark.parametrize("x_shape, dw_shape, pw_shape, strides", [
    ((1, 5, 5, 3), (3, 3, 3, 1), (1, 1, 3, 2), [1, 1, 1, 1]),
    ((2, 7, 7, 2), (3, 3, 2, 1), (1, 1, 2, 4), [1, 2, 2, 1]),
])
def test_separable_forward_shapes(impl, x_shape, dw_shape, pw_shape, strides):
    # separable_conv2d_patch_test.testSeparableConv2DForward
    rng = np.random.default_rng(0)
    y = sepconv.separable_conv2d(rng.random(x_shape, np.float32), rng.random(dw_shape, np.float32),
                                 rng.random(pw_shape, np.float32), strides, padding="SAME")
    assert y.shape[-1] == pw_shape[-1]
    assert y.shape[0] == x_shape[0]


# --------------------------------------------------------------------------- conv2d_transpose

def transpose_ones_expected_same_stride1(y_shape, in_depth):
    """testConv2DTransposeSingleStride: 4 * 3 at the corners, +2 * 3 on a border, +5 * 3 inside."""
    expected = np.zeros(y_shape)
    for h in range(y_shape[1]):
        for w in range(y_shape[2]):
            h_in, w_in = 0 < h < y_shape[1] - 1, 0 < w < y_shape[2] - 1
            target = 4 * in_depth
            if h_in and w_in:
                target += 5 * in_depth
            elif h_in or w_in:
                target += 2 * in_depth
            expected[:, h, w, :] = target
    return expected


def transpose_ones_expected_stride2(y_shape, in_depth, pad):
    """testConv2DTransposeSame (pad 0) and testConv2DTransposeValid (pad 1, borders copied)."""
    expected = np.zeros(y_shape)
    rows, cols = y_shape[1], y_shape[2]
    for h in range(pad, rows - pad):
        for w in range(pad, cols - pad):
            h_in = h % 2 == 0 and pad < h < rows - 1 - pad
            w_in = w % 2 == 0 and pad < w < cols - 1 - pad
            target = in_depth
            if h_in and w_in:
                target += 9
            elif h_in or w_in:
                target += 3
            expected[:, h, w, :] = target
    if pad:
        expected[:, :, 0], expected[:, :, -1] = expected[:, :, 1], expected[:, :, -2]
        expected[:, 0], expected[:, -1] = expected[:, 1], expected[:, -2]
    return expected


@pytest.mark.parametrize("data_format", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
@pytest.mark.parametrize("case", ["SingleStride", "Same", "Valid"])
def test_conv2d_transpose_ones(impl, case, dtype, data_format):
    x_shape, f_shape = [2, 6, 4, 3], [3, 3, 2, 3]  # filter [kh, kw, output_depth, input_depth]
    if case == "SingleStride":
        y_shape, strides, padding = [2, 6, 4, 2], [1, 1], "SAME"
        expected = transpose_ones_expected_same_stride1(y_shape, 3)
    elif case == "Same":
        y_shape, strides, padding = [2, 12, 8, 2], [2, 2], "SAME"
        expected = transpose_ones_expected_stride2(y_shape, 3, pad=0)
    else:
        y_shape, strides, padding = [2, 13, 9, 2], [2, 2], "VALID"
        expected = transpose_ones_expected_stride2(y_shape, 3, pad=1)
    x = to_layout(np.ones(x_shape, dtype), data_format)
    y = sepconv.conv2d_transpose(x, np.ones(f_shape, dtype), shape_in_layout(y_shape, data_format),
                                 strides=window4(strides, data_format), padding=padding, data_format=data_format)
    np.testing.assert_array_equal(from_layout(y, data_format), expected)


# --------------------------------------------------------------------------- bad inputs

BAD = (ValueError, TypeError)
X1 = np.ones((1, 5, 5, 3), np.float32)


@pytest.mark.parametrize("input_shape, filter_shape, padding, data_format", [
    ((1, 3), (3, 3, 3, 2), "SAME", "NHWC"),                                   # incorrect input shape
    ((1, 5, 5, 3), (1, 3), "SAME", "NHWC"),                                   # incorrect filter shape
    ((32, 20, 20, 3), (4, 4, 2, 2), "SAME", "NHWC"),                          # depth mismatch
    ((1, 5, 5, 3), (3, 3, 3, 2), [[0, 0], [0, -1], [1, 2], [0, 0]], "NHWC"),  # negative padding
    ((1, 5, 5, 3), (3, 3, 3, 2), [[1, 0], [0, 0], [0, 0], [0, 0]], "NHWC"),   # nonzero padding, batch dimension
    ((1, 3, 5, 5), (3, 3, 3, 2), [[0, 0], [0, 1], [0, 0], [0, 0]], "NCHW"),   # nonzero NCHW padding, channel dim
    ((1, 5, 5, 3), (3, 3, 3, 2), [[0, 0], [0, 0], [0, 0]], "NHWC"),           # wrong amount of padding
    ((1, 5, 5, 3), (3, 3, 3, 2), [[0], [0], [0], [0]], "NHWC"),               # one padding amount per dimension
    ((1, 5, 5, 3), (3, 3, 3, 2), [0, 0, 0, 0], "NHWC"),                       # padding elements are not lists
], ids=["input rank", "filter rank", "depth mismatch", "negative padding", "batch padding", "NCHW channel padding",
        "three pairs", "one-element pairs", "flat list"])
def test_shape_function_edge_cases(impl, input_shape, filter_shape, padding, data_format):
    # testShapeFunctionEdgeCases: each raises ValueError in TensorFlow
    with pytest.raises(ValueError):
        sepconv.conv2d(np.ones(input_shape), np.ones(filter_shape), [1, 1, 1, 1], padding, data_format=data_format)


def test_grouped_conv2d_is_accepted(impl):
    # testShapeFunctionEdgeCases: input depth divisible by filter depth raises nothing
    y = sepconv.conv2d(np.ones((2, 6, 6, 8)), np.ones((4, 4, 2, 16)), [1, 1, 1, 1], "SAME")
    assert y.shape == (2, 6, 6, 16)
    np.testing.assert_array_equal(y[0, 2, 2], 32.0)  # 4 * 4 taps * 2 channels of its group


@pytest.mark.parametrize("strides", [[2, 1, 1, 1], [1, 1, 1, 2]])
def test_op_edge_cases_batch_depth_strides(impl, strides):
    with pytest.raises(BAD, match="strides in the batch and depth"):
        sepconv.conv2d(np.ones([2, 4, 10, 10]), np.ones([2, 4, 10, 10]), strides=strides, padding="SAME")


def test_op_edge_cases_zero_size_filter(impl):
    with pytest.raises(BAD, match="filter must not have zero elements|has a non-positive dimension"):
        sepconv.conv2d(np.ones([1, 1, 1, 1]), np.ones([1, 0, 1, 1]), strides=[1, 1, 1, 1], padding="SAME")


@pytest.mark.parametrize("filter_shape, padding", [
    ([20, 21, 3, 2], "VALID"), ([21, 20, 3, 2], "VALID"), ([24, 25, 3, 2], [[0, 0], [2, 2], [2, 2], [0, 0]]),
])
def test_op_edge_cases_filter_larger_than_input(impl, filter_shape, padding):
    # TensorFlow's graph-mode shape function refuses these ("Negative dimension size"); so do we.
    with pytest.raises(BAD, match="Negative dimension size"):
        sepconv.conv2d(np.ones([2, 20, 20, 3]), np.ones(filter_shape), strides=[1, 1, 1, 1], padding=padding)


def test_op_edge_cases_negative_padding_in_backprops(impl):
    pads = [[0, 0], [-1, 0], [0, 0], [0, 0]]
    with pytest.raises(BAD, match="All elements of explicit_paddings must be nonnegative"):
        sepconv.conv2d_backprop_input([32, 20, 20, 3], np.ones([18, 18, 3, 2]), np.ones([32, 3, 2, 2]),
                                      strides=[1, 1, 1, 1], padding=pads)
    with pytest.raises(BAD, match="All elements of explicit_paddings must be nonnegative"):
        sepconv.conv2d_backprop_filter(np.ones([32, 20, 20, 3]), [18, 18, 3, 2], np.ones([32, 3, 2, 2]),
                                       strides=[1, 1, 1, 1], padding=pads)


def test_backprop_input_invalid_out_backprop(impl):
    # testConv2DBackpropInputInvalidOutBackpropRaiseError: 2-vector input_sizes with a scalar out_backprop
    with pytest.raises(BAD):
        sepconv.conv2d_backprop_input([65534, 65534], np.full([3, 3, 2, 2], 0.159749106, np.float32),
                                      np.float32(0), strides=[1, 1, 1, 1], padding="SAME")


def test_conv2d_transpose_invalid_output_shape(impl):
    with pytest.raises(BAD, match="output_shape"):
        sepconv.conv2d_transpose(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), output_shape=[2, -2], strides=[1])


def test_conv2d_transpose_large_output_shape(impl):
    # must be refused before anything of that size is allocated
    with pytest.raises(BAD):
        sepconv.conv2d_transpose(np.ones((2, 2, 2, 2)), [[[[1]]]], output_shape=[114078056, 179835296], strides=[10])


def test_zero_d_arrays_as_window_arguments(impl):
    # a NumPy scalar array is an int like any other; a float one is refused by name
    y = sepconv.conv2d(X1, np.ones((3, 3, 3, 2)), np.array(2), "SAME", dilations=np.int64(1))
    assert y.shape == (1, 3, 3, 2)
    with pytest.raises(TypeError, match="`strides` must be an int or a list of ints"):
        sepconv.conv2d(X1, np.ones((3, 3, 3, 2)), np.array(2.0), "SAME")


def test_malformed_arrays_are_refused_by_name(impl):
    with pytest.raises(ValueError, match="conv2d: `input` must be an array of numbers"):
        sepconv.conv2d([[1.0, 2.0], [3.0]], np.ones((1, 1, 1, 1)), 1, "SAME")
    with pytest.raises(TypeError, match="conv2d: `padding` must contain integers"):
        sepconv.conv2d(X1, np.ones((3, 3, 3, 2)), 1, np.zeros((4, 2, 1), int))


def test_separable_errors_name_depthwise_filter(impl):
    with pytest.raises(ValueError, match="separable_conv2d: `depthwise_filter` must be 4-D"):
        sepconv.separable_conv2d(X1, np.ones((3, 3, 3)), np.ones((1, 1, 3, 2)), 1, "SAME")
    with pytest.raises(ValueError, match="separable_conv2d: `depthwise_filter` must have a positive height"):
        sepconv.separable_conv2d(X1, np.ones((0, 3, 3, 1)), np.ones((1, 1, 3, 2)), 1, "SAME")


SEP_X, SEP_DW, SEP_PW = np.ones((1, 8, 8, 3), np.float32), np.ones((3, 3, 3, 1), np.float32), np.ones((1, 1, 3, 2))


@pytest.mark.parametrize("strides, pattern", [
    ([1, -2, 1, 1], "Stride.*-2"),
    ([1, 2**31, 1, 1], "Attr strides has value 2147483648 out of range for an int32"),
    ([2, 1, 1, 2], "Current implementation does not yet support strides in the batch and depth dimensions"),
], ids=["testNegativeStride", "testLargeStride", "testInvalidStridesFormat"])
def test_separable_stride_validation(impl, strides, pattern):
    with pytest.raises(ValueError, match=pattern):
        sepconv.separable_conv2d(SEP_X, SEP_DW, SEP_PW, strides=strides, padding="VALID")


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_deterministic(impl, dtype):
    # DepthwiseConv2DDeterministicTest.testForwardCPU / testBackwardCPU (TensorFlow: [2, 500, 1000, 2] input,
    # 7x7 filter, multiplier 10, SAME; smaller here): two runs give bit-identical results.
    rng = np.random.default_rng(123)
    x = rng.standard_normal((2, 50, 100, 2)).astype(dtype)
    w = rng.standard_normal((7, 7, 2, 10)).astype(dtype)
    g = rng.standard_normal((2, 50, 100, 20)).astype(dtype)

    def run():
        return [sepconv.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME"),
                sepconv.depthwise_conv2d_backprop_input(x.shape, w, g, [1, 1, 1, 1], "SAME"),
                sepconv.depthwise_conv2d_backprop_filter(x, w.shape, g, [1, 1, 1, 1], "SAME")]

    for first, second in zip(run(), run(), strict=True):
        np.testing.assert_array_equal(first, second)
