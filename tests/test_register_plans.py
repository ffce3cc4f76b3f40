"""The plans for CPUs without AVX-512 (sepconv.fast.registers): BLAS for the products, the direct 3x3 depthwise
kernel at stride 1 and the small-image one on any other plane; the half-vector kernels they share with Zen 4's plans
(AVX-512 on 256-bit units), and Zen 5's two rules on Zen 4's plans; the same results as the reference, and the kernels
they name are the ones reached."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import KernelsSeenByOps, rand, record_calls, tol
from conftest import fast_and_reference as _both

import sepconv
from sepconv.fast import registers
from sepconv.geometry import conv2d_geometry
from sepconv.kernels import (
    _simd,
    conv2d_direct,
    depthwise_3x3_direct,
    depthwise_5x5_avx2,
    depthwise_multiplier,
    depthwise_small_image,
    pointwise,
)

fast_depthwise = sys.modules["sepconv.fast.depthwise"]
fast_conv2d = sys.modules["sepconv.fast.conv2d"]


@pytest.fixture
def narrow_plans():
    """The plans of a CPU without AVX-512 for this test (conftest sets the AVX-512 ones back afterwards)."""
    registers.use_wide_register_plans(False)
    yield
    registers.use_wide_register_plans(True)


@pytest.fixture(params=["narrow", "half_width_units"])
def half_vector_plans(request):
    """The plans that take the half-vector kernels, one test each: those of a CPU without AVX-512, and those of AVX-512
    on 256-bit units (Zen 4)."""
    registers.use_wide_register_plans(request.param != "narrow", half_width_units=True)
    yield request.param
    registers.use_wide_register_plans(True)


@pytest.fixture
def tiled_kernel_calls(monkeypatch):
    """Calls that reach a register-tiled kernel (pointwise tiles, direct or streamed conv2d), recorded (the direct
    conv2d's by its launch from Python: its kernels on one thread take it on two threads too)."""
    calls = []
    for module, name in [(pointwise, "pointwise_parallel"), (conv2d_direct, "conv2d_direct_streamed_parallel"),
                         (conv2d_direct, "conv2d_direct_parallel"), (conv2d_direct, "conv2d_direct_narrow_parallel")]:
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *args, _f=original, _n=name: calls.append(_n) or _f(*args))
    # pointwise_tiles is a global of pointwise_parallel too, which must stay the kernel (Numba may compile it here):
    # wrapped only where the ops find it
    seen = KernelsSeenByOps(pointwise)
    seen.wrapped["pointwise_tiles"] = lambda *args: calls.append("pointwise_tiles") or pointwise.pointwise_tiles(*args)
    monkeypatch.setattr(fast_conv2d, "pointwise", seen)
    return calls


@pytest.mark.parametrize("shape, k, out_c, strides, direct", [
    ((1, 20, 20, 64), 3, 64, 1, True),  # too few pixels for Winograd
    ((2, 12, 12, 32), 5, 48, 1, True),  # a 5x5 layer: three panels, the last one half full
    ((1, 24, 24, 24), 3, 40, 1, True),
    ((1, 9, 9, 256), 3, 512, 1, False),  # the streamed kernel's (a 4.5 MB filter): BLAS
    ((1, 16, 16, 40), 1, 72, 1, False),  # pointwise: the few-pixel kernel (256 pixels)
    ((1, 18, 18, 24), 3, 40, 2, False),  # 81 pixels: BLAS
])
def test_conv2d_takes_blas_or_the_narrow_direct_kernel(shape, k, out_c, strides, direct, narrow_plans,
                                                        tiled_kernel_calls):
    """conv2d and its gradients match the reference; the forward of a filter of up to 2 MB and 128 pixels or more
    takes the direct kernel in panels of one vector (six pixels by one vector in registers), and so does the input
    gradient at stride 1 (the forward of dy); the rest BLAS, and none of the four-vector register tiles is
    reached."""
    rng = np.random.default_rng(0)
    x, w = rand(rng, shape, np.float32), rand(rng, (k, k, shape[3], out_c), np.float32)
    fast, ref = _both(sepconv.conv2d, x, w, strides, "SAME")
    np.testing.assert_allclose(fast, ref, rtol=1e-3, atol=1e-3)
    dy = rand(rng, ref.shape, np.float32)
    fast, ref = _both(sepconv.conv2d_backprop_input, x.shape, w, dy, strides, "SAME")
    np.testing.assert_allclose(fast, ref, rtol=1e-3, atol=1e-3)
    fast, ref = _both(sepconv.conv2d_backprop_filter, x, w.shape, dy, strides, "SAME")
    np.testing.assert_allclose(fast, ref, rtol=1e-3, atol=1e-2)
    assert tiled_kernel_calls == ["conv2d_direct_narrow_parallel"] * (2 * direct)  # the forward, the input gradient


@pytest.mark.parametrize("out_c", [16, 32, 40])
def test_stem_conv2d_takes_four_pixels_at_a_time(out_c, narrow_plans, monkeypatch):
    """The few-channel conv2d kernel (a network's stem) runs four pixels by one vector of output channels at a time,
    not eight by two, and matches the reference."""
    from sepconv.kernels import conv2d as conv2d_kernels

    octets = record_calls(monkeypatch, conv2d_kernels, "conv2d_nhwc_few_channels_parallel", lambda args: args[-1])
    rng = np.random.default_rng(3)
    x, w = rand(rng, (1, 112, 110, 3), np.float32), rand(rng, (3, 3, 3, out_c), np.float32)
    fast, ref = _both(sepconv.conv2d, x, w, 2, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert octets == [False]


def test_separable_is_depthwise_then_blas(narrow_plans, tiled_kernel_calls):
    """The separable op is not fused: its depthwise pass, then the pointwise product on BLAS."""
    rng = np.random.default_rng(1)
    x = rand(rng, (1, 24, 24, 64), np.float32)
    wd, wp = rand(rng, (3, 3, 64, 1), np.float32), rand(rng, (1, 1, 64, 96), np.float32)
    fast, ref = _both(sepconv.separable_conv2d, x, wd, wp, 1, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert tiled_kernel_calls == []


@pytest.mark.parametrize("shape, k, strides, calls, direct_calls", [
    ((1, 40, 44, 128), 5, 1, 2, 0),  # 5x5, a 180 KB plane: the forward and the input gradient (the forward of dy)
    ((2, 30, 30, 80), 5, 1, 2, 0),  # a 5x5 plane past SMALL_IMAGE_5X5_MAX_PLANE_BYTES, a partial group
    ((1, 60, 33, 96), 7, 1, 2, 0),
    ((1, 40, 44, 24), 7, 1, 2, 0),  # a vector and a half: the last block overlaps the first
    ((1, 40, 44, 64), 3, 1, 0, 2),  # 3x3 at stride 1: the direct 3x3 kernel
    ((1, 40, 44, 24), 3, 1, 0, 2),
    ((1, 40, 44, 8), 3, 1, 0, 0),  # half a vector of channels: the AVX2 kernel's half-vector steps
    ((1, 20, 20, 64), 3, 2, 0, 1),  # stride 2, 3x3: the direct kernel's forward (not the stride-2 input gradient)
    ((1, 18, 17, 72), 7, 2, 1, 0),  # stride 2, a 30 KB plane: the small-image kernel's forward (fewer channels than
    # DIRECT_AVX2_7X7_S2_MAX_PIXEL_BYTES take the AVX2 kernel's 7x7 stride-2 steps instead)
    ((1, 60, 60, 64), 5, 2, 0, 0),  # stride 2, a 180 KB plane
])
def test_depthwise_takes_the_small_image_kernel(shape, k, strides, calls, direct_calls, narrow_plans, monkeypatch):
    """Stride-1 layers of at least a vector of channels take the small-image kernel (forward and input
    gradient) whatever their plane, in half-vector steps where they fit, but 3x3 ones the direct 3x3 kernel (at
    stride 2 too); stride-2 ones of small planes the small-image kernel too (forward); all three ops match the
    reference."""
    seen = record_calls(monkeypatch, depthwise_small_image, "depthwise_nhwc_forward_small_image_parallel",
                        record=lambda args: args[12],  # half-vector steps asked for
                        serial="depthwise_nhwc_forward_small_image_items")
    seen_direct = record_calls(monkeypatch, depthwise_3x3_direct, "depthwise_nhwc_forward_3x3_direct_parallel",
                               serial="depthwise_nhwc_forward_3x3_direct_rows")
    rng = np.random.default_rng(2)
    x, w = rand(rng, shape, np.float32), rand(rng, (k, k, shape[3], 1), np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d, x, w, strides, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    dy = rand(rng, ref.shape, np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, w, dy, strides, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, w.shape, dy, strides, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert len(seen) == calls and len(seen_direct) == direct_calls and all(seen)


@pytest.mark.parametrize("shape, strides, calls, s2_calls", [
    ((1, 40, 44, 64), 1, 2, 0),  # rows of 44 pixels: the forward and the input gradient (the forward of dy)
    ((2, 20, 41, 20), 1, 2, 0),  # two half-vector blocks and a partial one
    ((1, 40, 44, 128), 1, 0, 0),  # pixels of 512 bytes: the small-image kernel (above)
    ((1, 30, 30, 64), 1, 0, 0),  # rows of 30 pixels: the small-image kernel
    ((1, 36, 33, 24), 2, 1, 1),  # stride 2, output rows of 17: the forward; the input gradient by parity
    ((1, 28, 28, 24), 2, 0, 1),  # output rows of 14: the input gradient only
])
def test_depthwise_5x5_takes_the_avx2_kernel_on_wide_rows(shape, strides, calls, s2_calls, narrow_plans, monkeypatch):
    """5x5 layers with output rows of at least DIRECT_5X5_AVX2_MIN_WIDTH pixels at stride 1 (or
    DIRECT_5X5_AVX2_S2_MIN_WIDTH at stride 2) take the AVX2 5x5 kernel (eight pixels by half a vector a step), but
    not on pixels of a multiple of 512 bytes, and at stride 2 its input gradient; all three ops match the
    reference."""
    from sepconv.kernels import depthwise_5x5_avx2

    seen = record_calls(monkeypatch, depthwise_5x5_avx2, "depthwise_nhwc_forward_5x5_avx2_parallel",
                        serial="depthwise_nhwc_forward_5x5_avx2_rows")
    seen_s2 = record_calls(monkeypatch, depthwise_5x5_avx2, "depthwise_nhwc_backprop_input_5x5_s2_avx2_parallel",
                           serial="depthwise_nhwc_backprop_input_5x5_s2_avx2_rows")
    rng = np.random.default_rng(4)
    x, w = rand(rng, shape, np.float32), rand(rng, (5, 5, shape[3], 1), np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d, x, w, strides, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    dy = rand(rng, ref.shape, np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, w, dy, strides, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, w.shape, dy, strides, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert len(seen) == calls and len(seen_s2) == s2_calls


def _filter_gradient_matches_reference(shape, filter_shape, strides, padding, dilations, seed: int) -> int:
    """The fast filter gradient of a random float32 input of ``shape`` and ``dy`` matches the reference's; returns
    the output's height."""
    rng = np.random.default_rng(seed)
    x = rand(rng, shape, np.float32)
    with sepconv.use_implementation("reference"):
        y = sepconv.depthwise_conv2d(x, np.zeros(filter_shape, np.float32), strides, padding, dilations=dilations)
    dy = rand(rng, y.shape, np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, filter_shape, dy, strides, padding,
                      dilations=dilations)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    return y.shape[1]


# (shape, (kh, kw), strides, dilations, padding): filters 5 or 7 wide at horizontal stride 1 (dilated too) or 2, any
# height, on inputs of half a vector of channels, of a whole one and of partial blocks; rows shorter than the filter's
# reach, rows whose dy columns run past the input (explicit pads), a first column on the odd parity at stride 2.
FILTER_GRADIENT_AVX2 = [
    ((1, 7, 9, 8), (5, 5), 1, 1, "SAME"),
    ((2, 5, 13, 20), (5, 5), 1, 1, "VALID"),
    ((1, 12, 11, 17), (5, 5), 1, 2, "SAME"),
    ((1, 9, 30, 24), (5, 5), 1, 3, [[0, 0], [1, 3], [4, 0], [0, 0]]),
    ((1, 3, 4, 8), (5, 5), 1, 1, "SAME"),
    ((2, 9, 13, 20), (3, 5), [1, 2], 1, "SAME"),
    ((1, 12, 11, 17), (5, 5), 2, 1, "SAME"),
    ((1, 12, 12, 16), (5, 5), 2, 1, "VALID"),
    ((1, 9, 30, 24), (6, 5), 2, 1, [[0, 0], [1, 3], [4, 0], [0, 0]]),
    ((1, 14, 14, 40), (7, 7), 1, 1, "SAME"),
    ((1, 10, 14, 16), (7, 7), 1, 1, [[0, 0], [3, 3], [6, 0], [0, 0]]),
    ((2, 9, 16, 9), (1, 7), 1, 2, "SAME"),
    ((1, 12, 11, 17), (7, 7), 1, 1, [[0, 0], [2, 5], [0, 6], [0, 0]]),
    ((1, 15, 15, 24), (7, 7), 2, 1, "SAME"),
    ((1, 9, 12, 16), (7, 7), 2, 1, [[0, 0], [1, 1], [6, 3], [0, 0]]),
    ((1, 9, 12, 16), (7, 7), 2, 1, [[0, 0], [1, 1], [7, 2], [0, 0]]),
    ((1, 16, 21, 8), (5, 7), [3, 2], 1, [[0, 0], [0, 1], [5, 0], [0, 0]]),
    # 3-wide filters over fewer channels than a vector (the direct 3x3 kernel takes a vector or more)
    ((1, 9, 11, 8), (3, 3), 1, 1, "SAME"),
    ((2, 7, 13, 12), (3, 3), 1, 2, "SAME"),
    ((1, 8, 9, 10), (5, 3), 1, 1, "VALID"),
    ((1, 6, 7, 8), (1, 3), 1, 3, [[0, 0], [0, 0], [4, 2], [0, 0]]),
    ((1, 12, 11, 9), (3, 3), 2, 1, "SAME"),
    ((1, 10, 12, 15), (3, 3), 2, 1, [[0, 0], [2, 1], [4, 0], [0, 0]]),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape, kernel, strides, dilations, padding", FILTER_GRADIENT_AVX2)
def test_filter_gradient_5_and_7_wide_takes_the_avx2_kernel(shape, kernel, strides, dilations, padding, threads,
                                                             half_vector_plans, monkeypatch):
    """On the AVX2 plans and Zen 4's the filter gradient of filters 5 or 7 wide, and 3 wide over fewer channels than a vector
    (horizontal stride 1, dilated or not, or 2), takes the rolling-window kernel, on one thread or split over two, and
    matches the reference."""
    from sepconv.kernels import depthwise_filter_gradient_avx2

    seen = record_calls(monkeypatch, depthwise_filter_gradient_avx2, "depthwise_nhwc_backprop_filter_avx2_parallel",
                        record=lambda args: args[2].shape[0])
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_MACS", 10**18 if threads == 1 else 0)
    monkeypatch.setattr(fast_depthwise, "PARALLEL_MIN_BYTES", 10**18 if threads == 1 else 0)
    out_h = _filter_gradient_matches_reference(shape, (*kernel, shape[3], 1), strides, padding, dilations, seed=5)
    assert seen == [min(threads, shape[0] * out_h)]


@pytest.mark.parametrize("shape, k, multiplier, strides, dilations", [
    ((1, 12, 13, 12), 5, 2, 1, 1),
    ((2, 9, 9, 4), 5, 3, 1, 2),  # 12 channels repeated: more than half a vector
    ((1, 15, 14, 8), 7, 2, 2, 1),
    ((1, 12, 13, 4), 3, 3, 1, 1),  # 3x3 over 12 channels repeated
])
def test_multiplier_filter_gradient_5_and_7_wide_repeats_whole(shape, k, multiplier, strides, dilations, half_vector_plans,
                                                                monkeypatch):
    """With a multiplier, the filter gradient of a filter 5 or 7 wide (or 3 wide over fewer repeated channels than a
    vector, on the AVX2 plans only) repeats the whole input and takes the AVX2 kernel on it, not the multiplier
    bands."""
    from sepconv.kernels import depthwise_filter_gradient_avx2, depthwise_multiplier

    seen = record_calls(monkeypatch, depthwise_filter_gradient_avx2, "depthwise_nhwc_backprop_filter_avx2_parallel",
                        record=lambda args: args[0].shape[3])
    bands = record_calls(monkeypatch, depthwise_multiplier, "depthwise_nhwc_backprop_filter_multiplier_parallel",
                         serial="depthwise_nhwc_backprop_filter_multiplier_bands")
    _filter_gradient_matches_reference(shape, (k, k, shape[3], multiplier), strides, "SAME", dilations, seed=7)
    if k == 3 and half_vector_plans == "half_width_units":  # the bands there
        assert seen == [] and len(bands) == 1
    else:
        assert seen == [shape[3] * multiplier] and bands == []


@pytest.mark.parametrize("shape, kernel, strides, dilations", [
    ((1, 9, 9, 7), (5, 5), 1, 1),  # fewer channels than half a vector
    ((1, 12, 12, 16), (5, 5), 3, 1),  # horizontal stride 3
    ((1, 12, 12, 16), (5, 5), 2, 2),  # stride 2, dilated
    ((1, 12, 12, 16), (3, 3), 1, 1),  # 3x3: the direct 3x3 kernel
    ((1, 12, 12, 16), (5, 3), 1, 1),  # 3 wide
])
def test_filter_gradient_avx2_kernel_only_where_it_applies(shape, kernel, strides, dilations, half_vector_plans,
                                                           monkeypatch):
    """Layers outside the rolling-window kernel's reach take the other kernels, and still match the reference."""
    from sepconv.kernels import depthwise_filter_gradient_avx2

    seen = record_calls(monkeypatch, depthwise_filter_gradient_avx2, "depthwise_nhwc_backprop_filter_avx2_parallel")
    _filter_gradient_matches_reference(shape, (*kernel, shape[3], 1), strides, "SAME", dilations, seed=6)
    assert seen == []


@pytest.mark.parametrize("shape, kernel, dilations, whole", [
    ((1, 12, 12, 16), (5, 5), 1, True),  # a vector of channels
    ((2, 9, 13, 40), (7, 7), 1, True),  # two and a half: the last block overlapping
    ((1, 12, 12, 8), (5, 5), 1, False),  # half a vector
    ((1, 12, 12, 12), (3, 3), 2, False),  # fewer than a vector, 3 wide
    ((1, 13, 12, 16), (3, 3), 2, True),  # 3 wide at dilation 2 over a vector: Zen 4's plans only
    ((1, 17, 19, 40), (3, 3), (1, 2), True),
])
def test_filter_gradient_whole_vectors(shape, kernel, dilations, whole, half_vector_plans, monkeypatch):
    """On Zen 4's plans the rolling-window filter gradient runs channel blocks of whole vectors where a pixel holds a
    vector of channels (half vectors below), and takes 3-wide filters over a vector or more at horizontal dilation 2;
    on the AVX2 plans half vectors always, and not those 3-wide layers.  Each matches the reference."""
    from sepconv.kernels import depthwise_filter_gradient_avx2

    seen = record_calls(monkeypatch, depthwise_filter_gradient_avx2, "depthwise_nhwc_backprop_filter_avx2_parallel",
                        record=lambda args: args[-1])
    _filter_gradient_matches_reference(shape, (*kernel, shape[3], 1), 1, "SAME", dilations, seed=9)
    zen_4 = half_vector_plans == "half_width_units"
    wide_3 = kernel[1] == 3 and shape[3] >= 16
    if wide_3 and not zen_4:
        assert seen == []
    else:
        assert seen == [whole and zen_4]


@pytest.mark.parametrize("dilations", [1, 4])
def test_half_width_units_3_wide_filter_gradient_only_at_dilation_2(dilations, monkeypatch):
    """On Zen 4's plans 3-wide filters over a vector of channels keep the other kernels undilated and at dilation 4
    (the rolling-window kernel lost there), and match the reference."""
    from sepconv.kernels import depthwise_filter_gradient_avx2

    registers.use_wide_register_plans(True, half_width_units=True)
    seen = record_calls(monkeypatch, depthwise_filter_gradient_avx2, "depthwise_nhwc_backprop_filter_avx2_parallel")
    _filter_gradient_matches_reference((1, 20, 20, 32), (3, 3, 32, 1), 1, "SAME", dilations, seed=10)
    assert seen == []


@pytest.mark.parametrize("width", [7, 9, 10])
def test_filter_gradient_7_wide_on_short_rows(width, half_vector_plans, monkeypatch):
    """7-wide filters on rows of fewer than ten pixels take the rolling-window kernel on the AVX2 plans only (on Zen
    4's it lost there); the result matches the reference either way."""
    from sepconv.kernels import depthwise_filter_gradient_avx2

    seen = record_calls(monkeypatch, depthwise_filter_gradient_avx2, "depthwise_nhwc_backprop_filter_avx2_parallel")
    _filter_gradient_matches_reference((2, width, width, 32), (7, 7, 32, 1), 1, "SAME", 1, seed=8)
    assert len(seen) == (1 if half_vector_plans == "narrow" or width >= 10 else 0)


@pytest.mark.parametrize("shape, k", [
    ((1, 14, 14, 64), 5),
    ((2, 10, 10, 40), 7),  # a vector and a half of channels
    ((1, 7, 7, 96), 7),
    ((3, 12, 9, 16), 5),
])
def test_half_width_units_small_image_takes_whole_vector_steps(shape, k, monkeypatch):
    """On Zen 4's plans (AVX-512 on 256-bit units) the small-image kernel's 5x5 and 7x7 planes go in the long steps
    of whole vectors, forward and input gradient, and match the reference; on the AVX-512 plans in four-pixel ones;
    on the AVX2 plans in the long steps of half vectors."""
    seen = record_calls(monkeypatch, depthwise_small_image, "depthwise_nhwc_forward_small_image_parallel",
                        record=lambda args: args[12], serial="depthwise_nhwc_forward_small_image_items")
    rng = np.random.default_rng(9)
    x, w = rand(rng, shape, np.float32), rand(rng, (k, k, shape[3], 1), np.float32)
    for wide, half_width_units in ((True, True), (True, False), (False, False)):
        registers.use_wide_register_plans(wide, half_width_units)
        fast, ref = _both(sepconv.depthwise_conv2d, x, w, 1, "SAME")
        np.testing.assert_allclose(fast, ref, **tol(np.float32))
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, w, ref, 1, "SAME")
        np.testing.assert_allclose(fast, ref, **tol(np.float32))
    whole, four, half = (depthwise_small_image.WHOLE_VECTOR_STEPS, depthwise_small_image.FOUR_PIXEL_STEPS,
                         depthwise_small_image.HALF_VECTOR_STEPS)
    assert seen == [whole, whole, four, four, half, half]


@pytest.mark.parametrize("shape, dilations, multiplier, direct", [
    ((1, 20, 20, 64), 2, 1, True),  # a 100 KB image: over the threshold (lowered to 64 KB here)
    ((2, 23, 31, 24), (1, 3), 1, True),  # a vector and a half of channels, a 68 KB image
    ((1, 12, 12, 64), 2, 1, False),  # a 36 KB image: under it
    ((1, 20, 20, 64), 1, 1, False),  # undilated: the AVX-512 plans' kernels
    ((1, 20, 20, 32), 2, 2, False),  # a multiplier's forward: not there (both gradients may)
])
def test_half_width_units_dilated_3x3_takes_the_direct_kernels(shape, dilations, multiplier, direct, monkeypatch):
    """On Zen 4's plans dilated 3x3 layers of large images take the direct 3x3 kernels (forward, input gradient as
    the forward of dy, filter gradient but at horizontal dilation 2), others not; every op matches the reference."""
    registers.use_wide_register_plans(True, half_width_units=True)
    monkeypatch.setattr(fast_depthwise, "DIRECT_3X3_DILATED_MIN_IMAGE_BYTES", 64 * 1024)
    fast_depthwise.clear_plans()
    forward = record_calls(monkeypatch, depthwise_3x3_direct, "depthwise_nhwc_forward_3x3_direct_parallel",
                           serial="depthwise_nhwc_forward_3x3_direct_rows")
    filter_gradient = record_calls(monkeypatch, depthwise_3x3_direct, "depthwise_nhwc_backprop_filter_3x3_direct_parallel",
                                   serial="depthwise_nhwc_backprop_filter_3x3_direct_rows")
    band_rows = record_calls(monkeypatch, depthwise_multiplier, "depthwise_nhwc_forward_multiplier_parallel",
                             record=lambda args: args[6], serial="depthwise_nhwc_forward_multiplier_bands",
                             as_parallel=lambda args: (*args[:5], args[7], args[8]))  # the bands' rows kernel
    rng = np.random.default_rng(10)
    x, w = rand(rng, shape, np.float32), rand(rng, (3, 3, shape[3], multiplier), np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d, x, w, 1, "SAME", dilations=dilations)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert len(forward) == direct and depthwise_multiplier.DIRECT_3X3_ROWS not in band_rows
    assert len(band_rows) == (multiplier > 1)
    if multiplier == 1:
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, w, ref, 1, "SAME", dilations=dilations)
        np.testing.assert_allclose(fast, ref, **tol(np.float32))
        assert len(forward) == 2 * direct
    dy = rand(rng, (*shape[:3], shape[3] * multiplier), np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, w.shape, dy, 1, "SAME", dilations=dilations)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    dil_w = dilations if isinstance(dilations, int) else dilations[1]
    assert len(filter_gradient) == (direct and dil_w != 2)  # at dilation 2 the rolling-window kernel, whole vectors


@pytest.mark.parametrize("shape, strides, padding, direct", [
    ((4, 18, 18, 24), 2, "VALID", True),  # a vector and a half of channels
    ((2, 15, 15, 100), 2, "SAME", True),
    ((1, 17, 23, 37), 2, "SAME", True),  # odd sizes, a partial vector
    ((1, 16, 16, 8), 2, "SAME", False),  # fewer channels than a vector: the AVX2 kernel's
    ((1, 64, 64, 128), 2, "SAME", False),  # a 2 MB image: over the limit
    ((1, 20, 20, 64), 1, "SAME", False),  # stride 1: the general kernel
    ((1, 20, 20, 64), (2, 1), "SAME", False),  # stride 2 down the rows only
])
def test_half_width_units_stride_2_3x3_filter_gradient_takes_the_direct_kernel(shape, strides, padding, direct,
                                                                                 monkeypatch):
    """On Zen 4's plans the filter gradient of undilated 3x3 layers at stride 2 over a vector of channels or more, on
    images of up to 1.5 MB, takes the direct 3x3 kernel; others not; results as the reference's, one thread or two."""
    registers.use_wide_register_plans(True, half_width_units=True)
    calls = record_calls(monkeypatch, depthwise_3x3_direct, "depthwise_nhwc_backprop_filter_3x3_direct_parallel",
                         serial="depthwise_nhwc_backprop_filter_3x3_direct_rows")
    rng = np.random.default_rng(12)
    x, w = rand(rng, shape, np.float32), rand(rng, (3, 3, shape[3], 1), np.float32)
    dy = rand(rng, sepconv.depthwise_conv2d(x, w, strides, padding).shape, np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, w.shape, dy, strides, padding)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert len(calls) == direct


@pytest.mark.parametrize("shape, strides, padding, direct", [
    ((4, 18, 18, 24), 2, "VALID", True),  # a vector and a half of channels
    ((1, 14, 14, 576), 2, "SAME", True),
    ((1, 17, 23, 37), 2, "SAME", True),  # odd sizes, a partial vector
    ((1, 16, 16, 8), 2, "SAME", False),  # fewer channels than a vector
    ((1, 40, 40, 96), 2, "SAME", False),  # a 600 KB image: over the limit
    ((1, 20, 20, 64), (2, 1), "SAME", False),  # stride 2 down the rows only
])
def test_half_width_units_small_stride_2_3x3_forward_takes_the_direct_kernel(shape, strides, padding, direct,
                                                                               monkeypatch):
    """On Zen 4's plans the forward of undilated 3x3 layers at stride 2 over a vector of channels or more, on images
    of up to 512 KB, takes the direct 3x3 kernel; others not; results as the reference's."""
    registers.use_wide_register_plans(True, half_width_units=True)
    calls = record_calls(monkeypatch, depthwise_3x3_direct, "depthwise_nhwc_forward_3x3_direct_parallel",
                         serial="depthwise_nhwc_forward_3x3_direct_rows")
    rng = np.random.default_rng(13)
    x, w = rand(rng, shape, np.float32), rand(rng, (3, 3, shape[3], 1), np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d, x, w, strides, padding)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert len(calls) == direct


def test_nchw_5x5_on_short_rows_goes_through_nhwc(narrow_plans, monkeypatch):
    """On the AVX2 plans an NCHW 5x5 layer of many channels on 14-pixel rows runs through NHWC by whole-array
    transposes (forward and input gradient); results as the reference's."""
    calls = record_calls(monkeypatch, fast_depthwise, "nhwc_to_nchw", record=lambda args: args[0].shape)
    rng = np.random.default_rng(4)
    x, w = rand(rng, (2, 128, 14, 14), np.float32), rand(rng, (5, 5, 128, 1), np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d, x, w, 1, "SAME", data_format="NCHW")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, w, ref, 1, "SAME", data_format="NCHW")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert calls == [(2, 14, 14, 128)] * 2


@pytest.mark.parametrize("shape, k, transposed", [
    ((4, 128, 14, 14), 5, True),  # 14-pixel rows, batch 4: through NHWC (the size floor lowered to 64 KB here)
    ((4, 128, 14, 14), 7, False),  # 7x7 on rows of one vector: through NHWC by channel ranges instead
    ((2, 128, 14, 14), 5, False),  # batch 2
    ((4, 128, 28, 28), 5, False),  # rows of 28
    ((4, 128, 14, 14), 3, False),  # 3x3
    ((4, 96, 14, 14), 5, False),  # fewer than 128 channels
])
def test_half_width_units_nchw_5x5_at_batch_4_goes_through_nhwc(shape, k, transposed, monkeypatch):
    """On Zen 4's plans NCHW layers of 5x5 and larger filters on rows of up to 16 pixels, from batch 4, go through
    NHWC (forward and input gradient), others not; results as the reference's."""
    registers.use_wide_register_plans(True, half_width_units=True)
    monkeypatch.setattr(fast_depthwise, "NCHW_TRANSPOSED_MIN_BYTES", 64 * 1024)
    calls = record_calls(monkeypatch, fast_depthwise, "nhwc_to_nchw", record=lambda args: args[0].shape)
    rng = np.random.default_rng(11)
    x, w = rand(rng, shape, np.float32), rand(rng, (k, k, shape[1], 1), np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d, x, w, 1, "SAME", data_format="NCHW")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, w, ref, 1, "SAME", data_format="NCHW")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert len(calls) == (2 if transposed else 0)


@pytest.mark.parametrize(("pixels", "k_size", "out_c", "plan"), [
    (361, 728, 728, "packed"),  # Xception's middle flow: a 2.1 MB filter
    (100, 728, 728, "packed"),  # the least pixel count
    (99, 728, 728, "streamed"),
    (1444, 1024, 1024, "packed"),  # 4 MB
    (196, 1024, 1280, "blas"),  # 5 MB: over the limit, too many pixels to stream
    (100, 1536, 2048, "streamed"),  # 12 MB, few pixels
    (196, 256, 512, "packed"),  # under the AVX-512 plans' own limit
])
def test_half_width_units_large_pointwise_filters_take_the_tiled_kernel(pixels, k_size, out_c, plan, monkeypatch):
    """On Zen 4's plans pointwise filters of up to 4.5 MB take the register-tiled kernel from 100 pixels; fewer pixels
    stream, larger filters keep the AVX-512 plans' route."""
    registers.use_wide_register_plans(True, half_width_units=True)
    calls = []
    monkeypatch.setattr(fast_conv2d, "_streamed", lambda *a, **k: calls.append("streamed"))
    monkeypatch.setattr(fast_conv2d, "matmul", lambda *a, **k: calls.append("blas"))
    monkeypatch.setattr(pointwise, "pointwise_parallel", lambda *a: calls.append("packed"))
    x, w = np.zeros((pixels, k_size), np.float32), np.zeros((k_size, out_c), np.float32)
    fast_conv2d.pointwise_product(x, w, np.empty((pixels, out_c), np.float32))
    assert calls == [plan]


@pytest.mark.parametrize("half_width_units", [True, False])
def test_half_width_units_separable_with_a_large_pointwise_filter(half_width_units, tiled_kernel_calls):
    """Xception's 728 -> 728 separable layer (a 2.1 MB pointwise filter) reaches the register-tiled product on Zen 4's
    plans and not on the AVX-512 ones, and matches the reference on both."""
    registers.use_wide_register_plans(True, half_width_units)
    rng = np.random.default_rng(12)
    x = rand(rng, (1, 10, 11, 728), np.float32)
    wd, wp = rand(rng, (3, 3, 728, 1), np.float32), rand(rng, (1, 1, 728, 728), np.float32)
    fast, ref = _both(sepconv.separable_conv2d, x, wd, wp, 1, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert bool({"pointwise_parallel", "pointwise_tiles"} & set(tiled_kernel_calls)) == half_width_units


@pytest.mark.parametrize("half_width_units", [True, False])
def test_half_width_units_direct_conv2d_takes_whole_panels(half_width_units, monkeypatch):
    """On Zen 4's plans the direct conv2d runs each filter panel over all its taps at once (no chunks of 32 KB, whose
    sums are read back and stored again); the AVX-512 plans chunk a 5x5 filter of 64 channels two taps at a time.
    Both match the reference."""
    registers.use_wide_register_plans(True, half_width_units)
    chunks = record_calls(monkeypatch, conv2d_direct, "conv2d_direct_parallel", record=lambda args: args[-2],
                          serial="conv2d_direct_range", as_parallel=lambda args: args, ops="sepconv.fast.conv2d")
    rng = np.random.default_rng(13)
    x, w = rand(rng, (2, 12, 12, 64), np.float32), rand(rng, (5, 5, 64, 64), np.float32)
    fast, ref = _both(sepconv.conv2d, x, w, 1, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert len(chunks) == 1 and (chunks[0] >= 25 if half_width_units else chunks[0] == 2)


@pytest.mark.parametrize(("shape", "out_c", "plan"), [
    ((1, 14, 14, 128), 256, "direct"),  # a 1.2 MB filter, 196 pixels
    ((1, 7, 7, 128), 256, "streamed"),  # 49 pixels: fewer than DIRECT_MIN_PIXELS
    ((1, 14, 14, 384), 384, "streamed"),  # 5.3 MB: over Zen 4's limit
])
def test_half_width_units_direct_conv2d_takes_filters_up_to_4_mb(shape, out_c, plan, monkeypatch):
    """On Zen 4's plans the direct conv2d (whole panels) takes filters of up to 4 MB where it has the pixels; the
    others stream.  Results as the reference's."""
    registers.use_wide_register_plans(True, half_width_units=True)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_CHANNELS", 10**9)
    calls = []
    for name in ("_conv2d_direct", "_conv2d_direct_streamed"):
        original = getattr(fast_conv2d, name)
        monkeypatch.setattr(fast_conv2d, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    rng = np.random.default_rng(14)
    x, w = rand(rng, shape, np.float32), rand(rng, (3, 3, shape[3], out_c), np.float32)
    fast, ref = _both(sepconv.conv2d, x, w, 1, "SAME")
    np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-3)  # sums of up to 3456 float32 products, both
    assert calls == ["_conv2d_direct" if plan == "direct" else "_conv2d_direct_streamed"]


def _conv2d_recording_winograd(monkeypatch, shape, out_c, rng):
    """A 3x3 SAME conv2d of ``shape`` to ``out_c`` channels, fast and reference, and the list of Winograd plan calls
    (one ``True`` each) it made."""
    calls = []
    original = fast_conv2d._conv2d_winograd
    monkeypatch.setattr(fast_conv2d, "_conv2d_winograd", lambda *a: calls.append(True) or original(*a))
    x, w = rand(rng, shape, np.float32), rand(rng, (3, 3, shape[3], out_c), np.float32)
    fast, ref = _both(sepconv.conv2d, x, w, 1, "SAME")
    return fast, ref, calls


@pytest.mark.parametrize(("shape", "out_c", "winograd"), [
    ((1, 20, 20, 32), 48, True),  # 400 output pixels
    ((1, 19, 19, 32), 48, False),  # 361
    ((4, 10, 10, 32), 48, True),  # the batch counts
    ((1, 35, 35, 32), 32, True),  # 32 output channels: from 1200 pixels (1225)
    ((1, 34, 34, 32), 32, False),  # 1156
])
def test_half_width_units_conv2d_winograd_from_384_pixels(shape, out_c, winograd, monkeypatch):
    """On Zen 4's plans conv2d's 3x3 stride-1 layers go by Winograd's F(2x2, 3x3) from 384 output pixels (the AVX-512
    plans' from 1200, and never with 32 output channels or fewer), those of 24-32 output channels from 1200; fewer
    take the direct plan.  Results as the reference's."""
    registers.use_wide_register_plans(True, half_width_units=True)
    fast, ref, calls = _conv2d_recording_winograd(monkeypatch, shape, out_c, np.random.default_rng(15))
    np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-3)
    assert bool(calls) == winograd


@pytest.mark.parametrize(("shape", "out_c", "cap", "winograd"), [
    ((1, 14, 14, 192), 192, None, True),  # 196 pixels, a 2.4 MB transformed filter: the BLAS plan's
    ((1, 11, 11, 192), 192, None, False),  # 121 pixels
    ((1, 14, 14, 96), 96, None, False),  # a 0.6 MB filter: the fused plan's, from 384 pixels
    ((1, 14, 14, 192), 192, 16 * 192 * 192 * 4, False),  # the transform at the cap
])
def test_half_width_units_conv2d_winograd_blas_plan_from_144_pixels(shape, out_c, cap, winograd, monkeypatch):
    """On Zen 4's plans conv2d's 3x3 layers whose transformed filter goes to the BLAS plan (past the fused plan's 1 MB,
    under WINOGRAD_BLAS_MAX_FILTER_BYTES) take Winograd from 144 output pixels.  Results as the reference's."""
    registers.use_wide_register_plans(True, half_width_units=True)
    # the plan's cap is half this machine's last-level cache: fixed here
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_BLAS_MAX_FILTER_BYTES", 16 << 20 if cap is None else cap)
    fast, ref, calls = _conv2d_recording_winograd(monkeypatch, shape, out_c, np.random.default_rng(16))
    np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=2e-3)
    assert bool(calls) == winograd


@pytest.mark.parametrize("half_width_units", [True, False])
def test_winograd_thresholds_follow_the_plans(half_width_units, monkeypatch):
    """Winograd's least pixel counts on each plan, at their edges: Zen 4's 384 (48 output channels), 1200 (32) and
    144 (the BLAS plan's 2.4 MB transform); the AVX-512 plans' 1200, and never for 32 output channels."""
    registers.use_wide_register_plans(True, half_width_units)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_BLAS_MAX_FILTER_BYTES",
                        16 << 20 if half_width_units else fast_conv2d.WINOGRAD_BLAS_MAX_FILTER_BYTES)

    def winograd(h, w, c, out_c):
        g = conv2d_geometry("conv2d", (1, h, w, c), (3, 3, c, out_c), 1, "SAME")
        return fast_conv2d._is_winograd(g, 4)

    zen4 = half_width_units
    assert [winograd(1, 383, 32, 48), winograd(16, 24, 32, 48)] == [False, zen4]
    assert [winograd(11, 109, 32, 32), winograd(30, 40, 32, 32)] == [False, zen4]  # 1199, 1200 pixels
    assert [winograd(11, 13, 192, 192), winograd(12, 12, 192, 192)] == [False, zen4]  # 143, 144
    assert [winograd(11, 109, 32, 48), winograd(30, 40, 32, 48)] == [zen4, True]


@pytest.mark.parametrize("half_width_units", [True, False])
def test_direct_conv2d_thread_split_follows_the_plans(half_width_units, monkeypatch):
    """On Zen 4's plans the direct conv2d splits over both threads from 1 M multiply-adds (500 K each), on the
    AVX-512 plans from 4 M: a 1.8 M layer.  Results as the reference's."""
    registers.use_wide_register_plans(True, half_width_units)
    monkeypatch.setattr(fast_conv2d, "WINOGRAD_MIN_CHANNELS", 10**9)
    monkeypatch.setattr(fast_conv2d, "thread_count", lambda: 2)
    parallel = record_calls(monkeypatch, conv2d_direct, "conv2d_direct_parallel", record=lambda args: True)
    rng = np.random.default_rng(17)
    x, w = rand(rng, (1, 28, 28, 16), np.float32), rand(rng, (3, 3, 16, 16), np.float32)  # 784 * 144 * 16 = 1.8 M
    fast, ref = _both(sepconv.conv2d, x, w, 1, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert bool(parallel) == half_width_units


@pytest.mark.parametrize("shape, k, dilations, packed_on_zen_4", [
    ((1, 14, 14, 64), 7, 2, True),  # dilated, the image as tall as the dilated filter: the packed kernels
    ((1, 13, 13, 40), 5, (2, 3), True),
    ((1, 17, 17, 48), 7, 3, False),  # a dilated filter of 19 rows: no packed kernel takes it
    ((1, 14, 14, 64), 7, 1, False),  # undilated
])
@pytest.mark.parametrize("half_width_units", [True, False])
def test_small_image_kernel_only_undilated_on_zen_4(shape, k, dilations, packed_on_zen_4, half_width_units,
                                                    monkeypatch):
    """On Zen 4's plans the dilated 5x5 and 7x7 layers of small images that the packed kernels take go there rather
    than to the small-image kernel (SMALL_IMAGE_UNDILATED_ONLY), forward and stride-1 input gradient; the AVX-512
    plans keep the small-image kernel.  Both ops as the reference."""
    from sepconv.kernels import depthwise_packed

    registers.use_wide_register_plans(True, half_width_units)
    small = record_calls(monkeypatch, depthwise_small_image, "depthwise_nhwc_forward_small_image_parallel",
                         record=lambda args: True, serial="depthwise_nhwc_forward_small_image_items",
                         as_parallel=lambda args: args)
    packed = record_calls(monkeypatch, depthwise_packed, "depthwise_nhwc_forward_packed_parallel",
                          record=lambda args: True, serial="depthwise_nhwc_forward_packed_rows",
                          as_parallel=lambda args: args)
    rng = np.random.default_rng(19)
    x, w = rand(rng, shape, np.float32), rand(rng, (k, k, shape[3], 1), np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d, x, w, 1, "SAME", dilations=dilations)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, w, ref, 1, "SAME", dilations=dilations)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    to_packed = packed_on_zen_4 and half_width_units
    assert (len(packed), len(small)) == ((2, 0) if to_packed else (0, 2))


@pytest.mark.parametrize("shape, multiplier, padding, band_bytes, direct_on_zen_4", [
    ((1, 30, 30, 24), 2, "SAME", None, True),  # 15x15 output planes
    ((2, 20, 21, 12), 4, "VALID", None, True),  # 9x10
    ((1, 31, 33, 24), 2, "SAME", 8 * 1024, True),  # odd sizes, many bands an image (each band's top row offset)
    ((1, 9, 9, 48), 4, "VALID", None, False),  # 4x4: fewer than MULTIPLIER_DIRECT_3X3_S2_MIN_PIXELS
])
@pytest.mark.parametrize("half_width_units", [True, False])
def test_multiplier_stride_2_filter_gradient_bands_on_the_direct_kernel(shape, multiplier, padding, band_bytes,
                                                                        direct_on_zen_4, half_width_units,
                                                                        monkeypatch):
    """On Zen 4's plans the filter gradient of stride-2 3x3 layers with a multiplier runs its bands of repeated input
    rows on the direct 3x3 kernel (as DIRECT_3X3_FILTER_GRADIENT_STRIDE_2's layers without one), but not on output
    planes of fewer than 32 pixels; the AVX-512 plans keep the general kernel.  Results as the reference's."""
    registers.use_wide_register_plans(True, half_width_units)
    if band_bytes is not None:
        monkeypatch.setattr(fast_depthwise, "MULTIPLIER_BAND_BYTES", band_bytes)
    direct = record_calls(monkeypatch, depthwise_multiplier, "depthwise_nhwc_backprop_filter_multiplier_parallel",
                          record=lambda args: args[6], serial="depthwise_nhwc_backprop_filter_multiplier_bands",
                          as_parallel=lambda args: (*args[:5], *args[7:]))
    rng = np.random.default_rng(20)
    x, w = rand(rng, shape, np.float32), rand(rng, (3, 3, shape[3], multiplier), np.float32)
    dy = rand(rng, sepconv.depthwise_conv2d(x, w, 2, padding).shape, np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_filter, x, w.shape, dy, 2, padding)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert direct == [direct_on_zen_4 and half_width_units]


@pytest.mark.parametrize("half_width_units", [True, False])
def test_packed_thread_split_follows_the_plans(half_width_units, monkeypatch):
    """On Zen 4's plans the packed depthwise kernels split over both threads from 150 K multiply-adds, on the AVX-512
    plans from 400 K: a 194 K layer (1x21x21x64 5x5 stride 2).  Results as the reference's."""
    from sepconv.kernels import depthwise_packed

    registers.use_wide_register_plans(True, half_width_units)
    monkeypatch.setattr(fast_depthwise, "thread_count", lambda: 2)
    chunks = record_calls(monkeypatch, depthwise_packed, "depthwise_nhwc_forward_packed_parallel",
                          serial="depthwise_nhwc_forward_packed_rows")
    rng = np.random.default_rng(18)
    x, w = rand(rng, (1, 21, 21, 64), np.float32), rand(rng, (5, 5, 64, 1), np.float32)  # 121 * 64 * 25 = 194 K
    fast, ref = _both(sepconv.depthwise_conv2d, x, w, 2, "SAME")
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert chunks == [2 if half_width_units else 1]


@pytest.mark.parametrize("shape, k, strides, dilations, forward", [
    ((1, 8, 64, 16), 5, 1, 1, True),  # a vector of channels, rows of 64: whole vectors
    ((1, 8, 56, 16), 5, 1, 1, False),  # rows of 56: the AVX-512 plans' kernels
    ((1, 16, 80, 16), 5, 2, 1, False),  # stride 2 over a vector
    ((1, 8, 72, 16), 5, 1, 2, False),  # dilated over a vector
    ((2, 12, 40, 8), 5, 2, 1, True),  # half a vector, any stride and width: half vectors
    ((1, 10, 40, 8), 5, 1, 2, True),
    ((1, 16, 30, 32), 7, 2, 1, True),  # 7x7 at stride 2 over 128 bytes: whole vectors
])
def test_half_width_units_take_the_avx2_5x5_kernel(shape, k, strides, dilations, forward, monkeypatch):
    """On Zen 4's plans the AVX2 5x5 kernel takes 5x5 layers over fewer channels than a vector (half vectors), over
    a vector or more at stride 1 undilated on rows of 60 pixels or more only (whole vectors), and 7x7 layers at
    stride 2 over few channels (whole vectors from a vector); its stride-2 input gradient takes the 7x7 and the
    few-channel 5x5 layers.  Every op matches the reference."""
    registers.use_wide_register_plans(True, half_width_units=True)
    forward_calls = record_calls(monkeypatch, depthwise_5x5_avx2, "depthwise_nhwc_forward_5x5_avx2_parallel",
                                 record=lambda args: args[-1], serial="depthwise_nhwc_forward_5x5_avx2_rows",
                                 as_parallel=lambda args: args)
    s2_calls = record_calls(monkeypatch, depthwise_5x5_avx2, "depthwise_nhwc_backprop_input_5x5_s2_avx2_parallel",
                            record=lambda args: args[-1], serial="depthwise_nhwc_backprop_input_5x5_s2_avx2_rows",
                            as_parallel=lambda args: args)
    rng = np.random.default_rng(15)
    x, w = rand(rng, shape, np.float32), rand(rng, (k, k, shape[3], 1), np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d, x, w, strides, "SAME", dilations=dilations)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, w, ref, strides, "SAME", dilations=dilations)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    whole = shape[3] >= 16
    stride_1 = strides == 1
    # the forward; at stride 1 the input gradient as the forward of dy, at stride 2 the stride-2 routine
    assert forward_calls == ([whole] * (2 if stride_1 else 1) if forward else [])
    assert s2_calls == ([whole] if strides == 2 and (k == 7 or not whole) else [])


@pytest.mark.parametrize("shape, strides, dilations, avx2", [
    ((1, 12, 40, 8), 1, 1, True),  # half a vector of channels, undilated: the AVX2 kernel's half-vector steps
    ((1, 12, 40, 8), 1, (2, 1), True),  # ... dilated down the columns only (unmeasured: as before)
    ((1, 12, 40, 12), 1, 1, False),  # 9-15 channels: the general 3x3 kernel's masked whole vectors
    ((1, 12, 40, 15), 1, 1, False),
    ((2, 19, 19, 12), 1, 2, False),  # dilated: the general kernel
    ((1, 20, 40, 8), 1, 2, False),  # (the flat-row kernel: one thread)
    ((1, 20, 40, 12), 2, 1, True),  # stride 2: the AVX2 kernel, at any count under a vector
    ((1, 20, 40, 8), 2, 1, True),
])
def test_few_channel_3x3_takes_the_avx2_kernel_at_stride_1_only_over_half_vectors_on_zen_4(
        shape, strides, dilations, avx2, half_vector_plans, monkeypatch):
    """3x3 layers over half a vector of channels or more but less than a whole one take the AVX2 kernel on the AVX2
    plans at strides 1 and 2; on Zen 4's at stride 1 only over exactly half a vector (8 float32) without a
    horizontal dilation, the others another kernel (DIRECT_5X5_AVX2_3X3_S1_HALF_VECTOR_ONLY).  The forward and the
    stride-1 input gradient (the forward of dy) match the reference either way."""
    forward_calls = record_calls(monkeypatch, depthwise_5x5_avx2, "depthwise_nhwc_forward_5x5_avx2_parallel",
                                 serial="depthwise_nhwc_forward_5x5_avx2_rows")
    rng = np.random.default_rng(16)
    x, w = rand(rng, shape, np.float32), rand(rng, (3, 3, shape[3], 1), np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d, x, w, strides, "SAME", dilations=dilations)
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    if strides == 1:
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, x.shape, w, ref, strides, "SAME",
                          dilations=dilations)
        np.testing.assert_allclose(fast, ref, **tol(np.float32))
    taken = avx2 or half_vector_plans == "narrow"
    assert len(forward_calls) == (2 if strides == 1 else 1) * taken


def test_plans_switch_both_ways():
    """Each call sets every plan of its kind, and forgets the depthwise plans made under the others."""
    conv2d_module = sys.modules["sepconv.fast.conv2d"]
    shape = (1, 40, 40, 64)
    registers.use_wide_register_plans(False)
    assert not conv2d_module.POINTWISE_KERNEL and sys.modules["sepconv.fast.separable"].FUSE is False
    assert fast_depthwise._small_image(shape, 4, 3, 3, 1, 1, 1, 1) and fast_depthwise._direct_3x3(shape, 4, 3, 3, 1, 1, 1)
    registers.use_wide_register_plans(True)
    assert conv2d_module.POINTWISE_KERNEL and sys.modules["sepconv.fast.separable"].FUSE is None
    assert not fast_depthwise._small_image(shape, 4, 3, 3, 1, 1, 1, 1) and not fast_depthwise._direct_3x3(shape, 4, 3, 3, 1, 1, 1)
    assert fast_depthwise._forward_plan.cache_info().currsize == 0
    registers.use_wide_register_plans(True, half_width_units=True)
    assert conv2d_module.POINTWISE_KERNEL and fast_depthwise.SMALL_IMAGE_HALF_STEPS and fast_depthwise.FILTER_GRADIENT_AVX2
    assert not fast_depthwise._direct_3x3(shape, 4, 3, 3, 1, 1, 1)
    assert registers.PLANS == "AVX-512 on 256-bit units"
    registers.use_wide_register_plans(True)
    assert not fast_depthwise.SMALL_IMAGE_HALF_STEPS and not fast_depthwise.FILTER_GRADIENT_AVX2
    assert registers.PLANS == "AVX-512"
    registers.use_wide_register_plans(False)
    assert registers.PLANS == "AVX2"
    registers.use_wide_register_plans(True)


def test_every_plan_set_names_the_same_settings():
    """Each plan set names every setting, so switching from one to another leaves none of the last one's behind."""
    sets = [registers._NARROW, registers._WIDE, registers._WIDE_HALF_UNITS, registers._ZEN5]
    assert all(set(plans) == set(registers._WIDE) for plans in sets)


def test_zen5_plans_are_zen4s_but_for_four_rules():
    """Zen 5's plans are Zen 4's but for 5x5 layers over a vector of channels on wide stride-1 rows (not the AVX2 5x5
    kernel), conv2d's Winograd (the fused plan from 384 output pixels, the BLAS plan from 1200) and small stride-1 3x3
    layers on the direct 3x3 kernel (the test below), and conv2d's direct plan splitting even panels up to 40 tiles a
    thread."""
    differ = {name for (_, name), value in registers._ZEN5.items()
              if value != registers._WIDE_HALF_UNITS[(_, name)]}
    assert differ == {"DIRECT_5X5_AVX2_WHOLE_MIN_WIDTH", "WINOGRAD_MIN_PIXELS", "WINOGRAD_FUSED_MIN_PIXELS",
                      "WINOGRAD_BLAS_MIN_PIXELS", "WINOGRAD_BLAS_MAX_FILTER_BYTES", "DIRECT_3X3_S1_MAX_BYTES",
                      "DIRECT_AVX2_7X7_S2_MIN_WIDTH", "DIRECT_PANEL_SPLIT_EVEN_TILES"}
    wide_rows, wide_out = (1, 66, 66, 432), (1, 66, 66, 432)
    few_channels, few_out = (1, 40, 40, 8), (1, 20, 20, 8)
    registers.use_wide_register_plans(True, half_width_units=True)
    assert fast_depthwise._direct_5x5_avx2(wide_rows, wide_out, 4, 5, 5, 1, 1)
    assert fast_depthwise._direct_5x5_avx2(few_channels, few_out, 4, 5, 5, 2, 1)
    registers.use_wide_register_plans(True, zen5=True)
    assert registers.PLANS == "AVX-512 on Zen 5"
    assert not fast_depthwise._direct_5x5_avx2(wide_rows, wide_out, 4, 5, 5, 1, 1)
    assert fast_depthwise._direct_5x5_avx2(few_channels, few_out, 4, 5, 5, 2, 1)  # few channels keep it
    assert fast_depthwise.FILTER_GRADIENT_AVX2 and fast_depthwise.SMALL_IMAGE_WHOLE_STEPS
    for (n, side, c_in, c_out), winograd in [
        ((1, 20, 128, 128), True),  # 400 pixels, a fused plan's filter (1 MB)
        ((1, 19, 128, 128), False),  # 361 pixels
        ((2, 14, 256, 256), False),  # 392 pixels, the BLAS plan's filter (4 MB)
        ((1, 35, 256, 256), True),  # 1225 pixels
    ]:
        g = conv2d_geometry("conv2d", (n, side, side, c_in), (3, 3, c_in, c_out), 1, "SAME")
        assert fast_conv2d._is_winograd(g) == winograd, (n, side, c_in, c_out)
    registers.use_wide_register_plans(True)


@pytest.mark.parametrize("layer", [((1, 20, 20, 96), 96), ((1, 35, 35, 128), 160)])
def test_zen5_winograd_agrees_with_the_reference(layer, monkeypatch):
    """conv2d on Zen 5's plans, through Winograd's fused and BLAS plans (recorded), gives the reference's result."""
    (shape, c_out) = layer
    registers.use_wide_register_plans(True, zen5=True)
    g = conv2d_geometry("conv2d", shape, (3, 3, shape[3], c_out), 1, "SAME")
    assert fast_conv2d._is_winograd_fused(g, 4) == (shape[3] == 96)
    fast, ref, calls = _conv2d_recording_winograd(monkeypatch, shape, c_out, np.random.default_rng(11))
    np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-3)
    assert calls
    registers.use_wide_register_plans(True)


def test_zen5_winograd_thresholds_at_their_edges():
    """Zen 5's Winograd thresholds at their edges: the fused plan's 384 output pixels (a 0.6 MB transform), the BLAS
    plan's 1200 (a 2.4 MB transform), and 1200 for 32 output channels, as on Zen 4's plans."""
    registers.use_wide_register_plans(True, zen5=True)

    def winograd(h, w, c, out_c):
        g = conv2d_geometry("conv2d", (1, h, w, c), (3, 3, c, out_c), 1, "SAME")
        return fast_conv2d._is_winograd(g, 4)

    assert [winograd(1, 383, 96, 96), winograd(16, 24, 96, 96)] == [False, True]  # 383, 384 pixels, fused
    assert [winograd(11, 109, 192, 192), winograd(30, 40, 192, 192)] == [False, True]  # 1199, 1200, BLAS
    assert [winograd(12, 12, 192, 192), winograd(16, 24, 192, 192)] == [False, False]  # Zen 4's 144 and 384: not here
    assert [winograd(11, 109, 32, 32), winograd(30, 40, 32, 32)] == [False, True]
    registers.use_wide_register_plans(True)


@pytest.mark.parametrize("plans", ["zen5", "zen4"])
@pytest.mark.parametrize("shape, taken", [
    ((1, 12, 12, 16), True),  # 9 KB
    ((1, 24, 24, 16), True),  # 36 KB, the limit
    ((4, 7, 7, 20), True),  # 15.7 KB over four items, channels past a vector
    ((1, 24, 24, 24), False),  # 54 KB
    ((2, 12, 12, 48), False),  # 54 KB over two items of 27 KB
])
def test_zen5_small_stride_1_3x3_layers_on_the_direct_kernel(plans, shape, taken, monkeypatch):
    """On Zen 5's plans the forward of undilated stride-1 3x3 layers of up to 36 KB of input (all items; a vector of
    channels or more) takes the direct 3x3 kernel, and so does their input gradient (the forward of ``dy``); not on
    Zen 4's plans, nor from 36 KB, nor dilated.  Results as the reference's."""
    registers.use_wide_register_plans(True, half_width_units=plans == "zen4", zen5=plans == "zen5")
    calls = record_calls(monkeypatch, depthwise_3x3_direct, "depthwise_nhwc_forward_3x3_direct_parallel",
                         record=lambda args: True, serial="depthwise_nhwc_forward_3x3_direct_rows")
    rng = np.random.default_rng(19)
    x, w = rand(rng, shape, np.float32), rand(rng, (3, 3, shape[3], 1), np.float32)
    dy = rand(rng, shape, np.float32)
    for dilations in (1, 2):
        fast, ref = _both(sepconv.depthwise_conv2d, x, w, 1, "SAME", dilations=dilations)
        np.testing.assert_allclose(fast, ref, **tol(np.float32))
        fast, ref = _both(sepconv.depthwise_conv2d_backprop_input, shape, w, dy, 1, "SAME", dilations=dilations)
        np.testing.assert_allclose(fast, ref, **tol(np.float32))
        assert len(calls) == 2 * (taken and plans == "zen5"), dilations
    registers.use_wide_register_plans(True)


@pytest.mark.parametrize("plans", ["zen5", "zen4"])
@pytest.mark.parametrize("shape, out_width", [((1, 20, 20, 32), 10), ((2, 21, 21, 16), 11), ((1, 39, 39, 48), 20)])
def test_zen5_short_7x7_stride_2_rows_off_the_avx2_kernel(plans, shape, out_width, monkeypatch):
    """On Zen 5's plans 7x7 stride-2 layers take the AVX2 kernel on output rows of 11 pixels or more only; on Zen 4's
    on any row.  Results as the reference's."""
    registers.use_wide_register_plans(True, half_width_units=plans == "zen4", zen5=plans == "zen5")
    calls = record_calls(monkeypatch, depthwise_5x5_avx2, "depthwise_nhwc_forward_5x5_avx2_parallel",
                         record=lambda args: True, serial="depthwise_nhwc_forward_5x5_avx2_rows",
                         as_parallel=lambda args: args)
    rng = np.random.default_rng(21)
    x, w = rand(rng, shape, np.float32), rand(rng, (7, 7, shape[3], 1), np.float32)
    fast, ref = _both(sepconv.depthwise_conv2d, x, w, 2, "SAME")
    assert fast.shape[2] == out_width
    np.testing.assert_allclose(fast, ref, **tol(np.float32))
    assert bool(calls) == (plans == "zen4" or out_width >= 11)
    registers.use_wide_register_plans(True)


@pytest.mark.parametrize("setting, wide", [("1", True), ("0", False)])
def test_wide_registers_follow_the_environment(setting, wide, monkeypatch):
    """``SEPCONV_WIDE_REGISTERS`` overrides what the CPU reports."""
    monkeypatch.setenv("SEPCONV_WIDE_REGISTERS", setting)
    assert _simd._wide_registers() is wide


CPU_FLAGS = [(registers._half_width_units, "SEPCONV_HALF_WIDTH_UNITS", "znver4"),
             (registers._zen5, "SEPCONV_ZEN5_PLANS", "znver5")]


@pytest.mark.parametrize("flag, variable, cpu_name", CPU_FLAGS)
@pytest.mark.parametrize("setting, expected", [("1", True), ("0", False)])
def test_cpu_flags_follow_the_environment(flag, variable, cpu_name, setting, expected, monkeypatch):
    """``SEPCONV_HALF_WIDTH_UNITS`` (Zen 4's plans) and ``SEPCONV_ZEN5_PLANS`` override the CPU's name."""
    monkeypatch.setenv(variable, setting)
    assert flag() is expected


@pytest.mark.parametrize("flag, variable, cpu_name", CPU_FLAGS)
def test_cpu_flags_default_to_the_cpus_name(flag, variable, cpu_name, monkeypatch):
    """Unset, each flag is whether LLVM names the host CPU ``znver4`` (Zen 4) or ``znver5`` (Zen 5)."""
    import llvmlite.binding as llvm

    monkeypatch.delenv(variable, raising=False)
    assert flag() is (llvm.get_host_cpu_name() == cpu_name)


def test_wide_registers_default_to_the_cpu(monkeypatch):
    """Unset, the flag is whether the CPU has AVX-512 (as LLVM reads the host's features)."""
    import llvmlite.binding as llvm

    monkeypatch.delenv("SEPCONV_WIDE_REGISTERS", raising=False)
    assert _simd._wide_registers() is bool(llvm.get_host_cpu_features().get("avx512f", False))
