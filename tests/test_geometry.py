"""Shape rules and argument normalization: TensorFlow's formulas, and every error path."""

from __future__ import annotations

import numpy as np
import pytest

import sepconv
from sepconv.geometry import conv2d_geometry, depthwise_geometry, normalize_padding, normalize_window


@pytest.mark.parametrize(
    "in_size, k, stride, dilation, padding, expected",
    [
        # (out, pad_before, pad_after), computed by hand from kernel_shape_util.cc
        (5, 3, 1, 1, "SAME", (5, 1, 1)),
        (6, 3, 2, 1, "SAME", (3, 0, 1)),  # even input, k3 s2: TF pads 0 before, 1 after
        (7, 3, 2, 1, "SAME", (4, 1, 1)),
        (112, 3, 2, 1, "SAME", (56, 0, 1)),
        (5, 3, 1, 2, "SAME", (5, 2, 2)),  # effective k = 5
        (4, 4, 1, 1, "SAME", (4, 1, 2)),  # odd total pad: the extra pixel after
        (7, 1, 3, 1, "SAME", (3, 0, 0)),  # stride larger than kernel
        (5, 3, 1, 1, "VALID", (3, 0, 0)),
        (7, 3, 2, 1, "VALID", (3, 0, 0)),
        (9, 3, 3, 2, "VALID", (2, 0, 0)),  # effective k = 5: (9 - 5) // 3 + 1
        (3, 3, 1, 1, "VALID", (1, 0, 0)),
        (5, 3, 2, 1, ((2, 1),), (3, 2, 1)),  # explicit: (5 + 3 - 3) // 2 + 1
    ],
)
def test_output_size_matches_tf_rule(in_size, k, stride, dilation, padding, expected):
    pad = padding if isinstance(padding, str) else [[0, 0], list(padding[0]), [0, 0], [0, 0]]
    g = conv2d_geometry("conv2d", (1, in_size, 4, 1), (k, 1, 1, 1), [stride, 1], pad, "NHWC", [dilation, 1])
    assert (g.out_h, g.pad_top, g.pad_bottom) == expected


def test_nchw_layout_and_shapes():
    g = depthwise_geometry("depthwise_conv2d", (2, 3, 7, 9), (3, 3, 3, 2), [1, 1, 2, 1], "SAME", "NCHW", None)
    assert (g.in_h, g.in_w, g.in_c, g.stride_h, g.stride_w) == (7, 9, 3, 2, 1)
    assert g.output_shape == (2, 6, 4, 9)
    assert g.filter_shape == (3, 3, 3, 2)


def test_seed_example_shapes():
    # input (_, 14, 14, 32): conv2d filter (3,3,32,64) -> 64 channels; depthwise (3,3,32,64) -> 2048
    assert conv2d_geometry("conv2d", (1, 14, 14, 32), (3, 3, 32, 64), 1, "SAME").output_shape == (1, 14, 14, 64)
    assert depthwise_geometry("dw", (1, 14, 14, 32), (3, 3, 32, 64), 1, "SAME").output_shape == (1, 14, 14, 2048)
    # input (_, 15, 15, 3), 3x3 VALID: 13x13
    assert conv2d_geometry("conv2d", (1, 15, 15, 3), (3, 3, 3, 8), 1, "VALID").output_shape == (1, 13, 13, 8)
    assert depthwise_geometry("dw", (1, 15, 15, 3), (3, 3, 3, 3), 1, "VALID").output_shape == (1, 13, 13, 9)


@pytest.mark.parametrize("value, expected", [(2, (2, 2)), ([3], (3, 3)), ([2, 3], (2, 3)), ([1, 2, 3, 1], (2, 3)),
                                             ((1, 2, 3, 1), (2, 3)), (np.array([1, 2, 3, 1]), (2, 3))])
def test_window_forms_nhwc(value, expected):
    assert normalize_window("op", "strides", value, "NHWC") == expected


def test_dilations_default_and_strides_required():
    assert normalize_window("op", "dilations", None, "NHWC") == (1, 1)
    with pytest.raises(TypeError, match=r"`strides` is required"):
        normalize_window("op", "strides", None, "NHWC")


def test_window_four_list_nchw():
    assert normalize_window("op", "strides", [1, 1, 2, 3], "NCHW") == (2, 3)
    with pytest.raises(ValueError, match="batch and channel"):
        normalize_window("op", "strides", [1, 2, 3, 1], "NCHW")


def test_explicit_padding_forms():
    assert normalize_padding("op", [[0, 0], [1, 2], [3, 4], [0, 0]], "NHWC") == ((1, 2), (3, 4))
    assert normalize_padding("op", [[0, 0], [0, 0], [1, 2], [3, 4]], "NCHW") == ((1, 2), (3, 4))
    with pytest.raises(ValueError, match=r"4 \[before, after\] pairs"):  # TensorFlow refuses 2 pairs too
        normalize_padding("op", [[1, 2], [3, 4]], "NHWC")
    assert normalize_padding("op", np.array([[0, 0], [1, 2], [3, 4], [0, 0]]), "NHWC") == ((1, 2), (3, 4))


X = np.zeros((1, 5, 5, 3), np.float32)
W = np.zeros((3, 3, 3, 2), np.float32)


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"strides": 0}, ValueError, r"depthwise_conv2d: `strides` must be positive, got strides=0"),
        ({"strides": -1}, ValueError, r"`strides` must be positive"),
        ({"strides": [1, 2, 3]}, ValueError, r"`strides` must be an int or a list of 1, 2 or 4 ints, got strides=\[1, 2, 3\]"),
        ({"strides": [2, 1, 1, 1]}, ValueError, r"1 on the batch and channel axes"),
        ({"strides": [1, 1, 1, 2]}, ValueError, r"1 on the batch and channel axes"),
        ({"strides": 1.5}, TypeError, r"`strides` must be an int or a list of ints"),
        ({"strides": "1"}, TypeError, r"`strides`"),
        ({"strides": [1.0, 1.0]}, TypeError, r"`strides` must contain integers"),
        ({"dilations": 0}, ValueError, r"`dilations` must be positive"),
        ({"dilations": [1, 2, 2, 2]}, ValueError, r"`dilations`.*batch and channel"),
        ({"padding": "FOO"}, ValueError, r"`padding` must be 'SAME', 'VALID' or a list of explicit pads, got padding='FOO'"),
        ({"padding": "same"}, ValueError, r"did you mean 'SAME'"),
        ({"padding": [[0, 0], [1, 1], [1, 1]]}, ValueError, r"`padding` must be"),
        ({"padding": [[0, 0], [1, 1], [1, 1], [0, 1]]}, ValueError, r"\[0, 0\] on the batch and channel axes"),
        ({"padding": [[1, 0], [1, 1], [1, 1], [0, 0]]}, ValueError, r"\[0, 0\] on the batch and channel axes"),
        ({"padding": [[0, 0], [-1, 1], [1, 1], [0, 0]]}, ValueError, r"`padding` must be non-negative"),
        ({"padding": [[0, 0], [1, 1, 1], [1, 1], [0, 0]]}, ValueError, r"`padding` must be"),
        ({"padding": [[0, 0], [1.5, 1], [1, 1], [0, 0]]}, TypeError, r"`padding` must contain integers"),
        ({"padding": 3}, TypeError, r"`padding` must be"),
        ({"data_format": "NCWH"}, ValueError, r"`data_format` must be 'NHWC' or 'NCHW', got data_format='NCWH'"),
        ({"data_format": "nhwc"}, ValueError, r"did you mean 'NHWC'"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, pattern):
    args = {"strides": 1, "padding": "SAME", **kwargs}
    with pytest.raises(error, match=pattern):
        sepconv.depthwise_conv2d(X, W, **args)


def test_wrong_rank_and_channel_mismatch():
    with pytest.raises(ValueError, match=r"`input` must be 4-D .* got shape \(5, 5, 3\) \(rank 3\)"):
        sepconv.conv2d(X[0], np.zeros((3, 3, 3, 4)), 1, "SAME")
    with pytest.raises(ValueError, match=r"`filters` must be 4-D"):
        sepconv.conv2d(X, np.zeros((3, 3, 3)), 1, "SAME")
    with pytest.raises(ValueError, match=r"input's channels \(3\) must equal the filter's in_channels \(2\)"):
        sepconv.conv2d(X, np.zeros((3, 3, 2, 4)), 1, "SAME")
    with pytest.raises(ValueError, match=r"filter's in_channels .* must equal the input's channels \(3\)"):
        sepconv.depthwise_conv2d(X, np.zeros((3, 3, 4, 1)), 1, "SAME")
    with pytest.raises(ValueError, match=r"needs out_channels divisible by 3"):
        sepconv.conv2d(np.zeros((1, 5, 5, 6)), np.zeros((3, 3, 2, 4)), 1, "SAME")


def test_filter_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"filter's height \(7\) is larger than the padded input's height \(5 \+ 0 \+ 0 = 5\)"):
        sepconv.depthwise_conv2d(X, np.zeros((7, 1, 3, 1)), 1, "VALID")
    with pytest.raises(ValueError, match=r"width \(3 dilated to 7\)"):
        sepconv.conv2d(X, np.zeros((1, 3, 3, 1)), 1, "VALID", dilations=3)
    # explicit pads that make room are fine
    assert sepconv.conv2d(X, np.zeros((7, 1, 3, 1)), 1, [[0, 0], [1, 1], [0, 0], [0, 0]]).shape == (1, 1, 5, 1)


def test_bad_pointwise_filter():
    expected = r"`pointwise_filter` must have shape \[1, 1, in_channels \* channel_multiplier, out_channels\]"
    with pytest.raises(ValueError, match=expected + r" = \[1, 1, 6, out_channels\]"):
        sepconv.separable_conv2d(X, W, np.zeros((1, 1, 3, 4)), 1, "SAME")
    with pytest.raises(ValueError, match=r"`pointwise_filter`"):
        sepconv.separable_conv2d(X, W, np.zeros((3, 3, 6, 4)), 1, "SAME")


def test_backprop_size_mismatches():
    dy = np.zeros((1, 5, 5, 6))
    with pytest.raises(ValueError, match=r"`out_backprop` has shape \(1, 5, 5, 6\), but `input_sizes` and the filter give"):
        sepconv.depthwise_conv2d_backprop_input([1, 7, 7, 3], W, dy, 1, "SAME")
    with pytest.raises(ValueError, match=r"`out_backprop` has shape .* but `input` and `filter_sizes` give"):
        sepconv.depthwise_conv2d_backprop_filter(X, [3, 3, 3, 1], dy, 1, "SAME")
    with pytest.raises(ValueError, match=r"`filter_sizes` must be 4 ints"):
        sepconv.conv2d_backprop_filter(X, [3, 3, 3], dy, 1, "SAME")
    with pytest.raises(ValueError, match=r"`input_sizes` must be the input's full shape or its \[height, width\]"):
        sepconv.conv2d_backprop_input([1, 5, 5], np.zeros((3, 3, 3, 6)), dy, 1, "SAME")
    with pytest.raises(ValueError, match=r"`input_sizes` must be non-negative"):
        sepconv.conv2d_backprop_input([1, -5, 5, 3], np.zeros((3, 3, 3, 6)), dy, 1, "SAME")


def test_bad_dtypes():
    with pytest.raises(TypeError, match=r"`input` must be a real numeric array, got dtype complex128"):
        sepconv.conv2d(X.astype(complex), np.zeros((3, 3, 3, 1)), 1, "SAME")
    with pytest.raises(TypeError, match=r"`filter` must be a real numeric array, got dtype <U1"):
        sepconv.depthwise_conv2d(X, np.full((3, 3, 3, 1), "a"), 1, "SAME")
