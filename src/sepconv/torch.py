"""PyTorch bridge: depthwise and separable convolution modules backed by sepconv's kernels.

Import it explicitly (``import sepconv.torch``); ``import sepconv`` never imports PyTorch.

What is here
------------
- Operators registered with :func:`torch.library.custom_op` in the ``sepconv`` namespace, each with
  a fake (meta) kernel for shapes and an autograd formula, so they compose with autograd,
  ``torch.compile`` and double backward:

  ============================================  ===============================================
  ``sepconv::depthwise_conv2d``                 grouped conv with ``groups = in_channels``
  ``sepconv::depthwise_conv2d_backprop_input``  its input gradient
  ``sepconv::depthwise_conv2d_backprop_filter`` its weight gradient
  ``sepconv::conv2d`` and its two backprops     dense or grouped conv (the pointwise part)
  ``sepconv::separable_conv2d``                 depthwise then 1x1, fused by sepconv
  ============================================  ===============================================

  Every gradient is itself one of sepconv's public gradient ops (the input gradient of a
  convolution is ``*_backprop_input``, the weight gradient ``*_backprop_filter``), so the
  backward pass runs on sepconv's kernels too.  In eager mode the depthwise function and module
  run the same code from an ``autograd.Function`` instead, skipping the dispatcher's ~90 us per
  call (see :class:`_EagerDepthwise`), or call the kernels directly when no gradient is recorded; its
  backward takes both gradients in one call of :func:`sepconv.depthwise_conv2d_gradients` (one pass
  over the output gradient) when both are wanted.  Under ``torch.compile``, ``torch.export`` and
  ``torch.jit.trace`` the operators run.
- Functions :func:`depthwise_conv2d` and :func:`separable_conv2d` with ``torch.nn.functional.conv2d``'s
  conventions, and the modules :class:`DepthwiseConv2d` and :class:`SeparableConv2d`.
- :func:`from_conv2d` and :meth:`DepthwiseConv2d.to_conv2d` to convert ``nn.Conv2d(groups=in_channels)``,
  and :func:`convert_depthwise` to swap every depthwise ``nn.Conv2d`` of a model at once.

Conventions (PyTorch's)
-----------------------
Tensors are NCHW; weights are PyTorch's: a depthwise weight is ``[in_channels * multiplier, 1, kh, kw]``,
output channel ``k * multiplier + q`` reading input channel ``k`` (the same order as TensorFlow's
``[kh, kw, in_channels, multiplier]``, which it is converted to, a tiny copy).  CPU tensors of
float32 or float64 only.

Memory format: the depthwise ops run in the tensor's own format, without a copy.  A
``channels_last`` tensor *is* an NHWC array in memory and goes to the NHWC kernels; a contiguous
(NCHW) tensor goes to sepconv's NCHW kernels (per channel plane); the result comes back in the
input's format.  The separable op and conv2d work on NHWC: a contiguous tensor is copied to NHWC
on the way in and back on the way out, so for those use ``channels_last``
(``model.to(memory_format=torch.channels_last)``), as for PyTorch's own CPU convolutions.

Padding
-------
``padding`` takes what ``nn.Conv2d`` takes, meaning what PyTorch means, plus TensorFlow's rule:

- an int or a pair ``(ph, pw)``: that many zeros on both sides;
- ``"valid"``: no padding; ``"same"``: the output has the input's size, only for stride 1
  (as in PyTorch; the odd pixel of an odd total goes bottom/right);
- ``"SAME"`` (upper case, TensorFlow's spelling): TensorFlow's rule for any stride,
  ``out = ceil(in / stride)``, ``pad_total = max((out - 1) * stride + (k - 1) * dilation + 1 - in, 0)``,
  half before and the odd pixel after.  With stride 2 and an even input this pads 0 top/left
  and 1 bottom/right, unlike PyTorch's symmetric ``padding=1``: the numbers differ, which matters
  when porting weights from Keras.  ``"VALID"`` is accepted as a synonym of ``"valid"``.

Examples
--------
>>> import torch, sepconv.torch as st
>>> layer = st.DepthwiseConv2d(8, kernel_size=3, stride=2, padding=1, bias=False)  # multiplier 1
>>> layer(torch.randn(2, 8, 15, 15)).shape
torch.Size([2, 8, 8, 8])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

import sepconv

from .geometry import windowed_output_size

__all__ = [
    "DepthwiseConv2d",
    "SeparableConv2d",
    "convert_depthwise",
    "depthwise_conv2d",
    "from_conv2d",
    "separable_conv2d",
]

_DTYPES = (torch.float32, torch.float64)
_NO_PADDING = [0, 0, 0, 0]
_UNIT = [1, 1]


# --------------------------------------------------------------------------- memory formats


def _is_channels_last(t: Tensor) -> bool:
    """True when ``t``'s memory is NHWC (and not also plain contiguous, e.g. with one channel)."""
    return not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def _memory_format(t: Tensor) -> torch.memory_format:
    return torch.channels_last if _is_channels_last(t) else torch.contiguous_format


def _nhwc_array(t: Tensor) -> np.ndarray:
    """An NCHW tensor as a contiguous NHWC NumPy array: a view of a ``channels_last`` tensor, else a copy."""
    a = t.detach().numpy().transpose(0, 2, 3, 1)  # NumPy's views cost less than torch's (~2 vs ~10 us)
    if a.flags.c_contiguous:
        return a
    return t.detach().contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).numpy()


def _nchw_tensor(a: np.ndarray, memory_format: torch.memory_format) -> Tensor:
    """An NHWC array as an NCHW tensor in ``memory_format``: a view for ``channels_last``, else a copy."""
    t = torch.from_numpy(a).permute(0, 3, 1, 2)
    return t if memory_format == torch.channels_last else t.contiguous(memory_format=memory_format)


def _array_in_layout(t: Tensor) -> tuple[np.ndarray, str]:
    """``t``'s memory as the array the kernels read and its ``data_format``, without a transpose: the NHWC
    view of a ``channels_last`` tensor, else the NCHW array of a contiguous one."""
    if _is_channels_last(t):
        return t.detach().numpy().transpose(0, 2, 3, 1), "NHWC"
    return t.detach().contiguous().numpy(), "NCHW"


def _tensor_in_layout(a: np.ndarray, data_format: str) -> Tensor:
    """A result in ``data_format`` as an NCHW tensor: ``channels_last`` for NHWC, contiguous for NCHW (an
    NCHW op may return a transposed view of an NHWC result)."""
    if data_format == "NHWC":  # NumPy's transposed view costs less than torch's permute (1.9 vs 4.1 us)
        return torch.from_numpy(a.transpose(0, 3, 1, 2))
    return torch.from_numpy(np.ascontiguousarray(a))


def _pads_in_layout(padding: Sequence[int], data_format: str) -> list[list[int]]:
    """``[top, bottom, left, right]`` -> TensorFlow's explicit pads for ``data_format``."""
    if data_format == "NHWC":
        return _pairs(padding)
    top, bottom, left, right = padding
    return [[0, 0], [0, 0], [top, bottom], [left, right]]


def _empty_like_layout(t: Tensor, shape: Sequence[int]) -> Tensor:
    """The fake kernels' output: ``shape`` in ``t``'s dtype, device and memory format (as the real ones)."""
    return torch.empty(shape, dtype=t.dtype, device=t.device, memory_format=_memory_format(t))


def _in_nhwc(op, input: Tensor, *args) -> Tensor:
    """Run ``op`` on ``input`` in ``channels_last`` (NHWC memory, what the kernels read) and return the
    result in ``input``'s memory format: no copy for a ``channels_last`` input, one each way otherwise.

    Converting here, in autograd's view, rather than inside the operator, means the backward pass
    finds the NHWC input saved and converts the incoming gradient once for both backprops.
    """
    if _is_channels_last(input):
        return op(input, *args)
    return op(input.contiguous(memory_format=torch.channels_last), *args).contiguous()


def _like_input(grad: Tensor, input: Tensor) -> Tensor:
    """The gradient in the saved input's memory format (once, before the backprops read it)."""
    return grad.contiguous(memory_format=_memory_format(input))


def _pairs(padding: Sequence[int]) -> list[list[int]]:
    """``[top, bottom, left, right]`` -> TensorFlow's explicit NHWC pads ``[[0, 0], [top, bottom], [left, right], [0, 0]]``."""
    top, bottom, left, right = padding
    return [[0, 0], [top, bottom], [left, right], [0, 0]]


def _output_hw(op: str, in_h, in_w, kh: int, kw: int, stride, padding, dilation) -> tuple:
    out_h, _, _ = windowed_output_size(op, "height", in_h, kh, stride[0], dilation[0], (padding[0], padding[1]))
    out_w, _, _ = windowed_output_size(op, "width", in_w, kw, stride[1], dilation[1], (padding[2], padding[3]))
    return out_h, out_w


def _check(op: str, input: Tensor, *weights: Tensor) -> None:
    """What the fake and real kernels both refuse: non-4-D input, unsupported or mixed dtypes."""
    if input.dim() != 4:
        raise ValueError(f"{op}: `input` must be 4-D [batch, channels, height, width], got shape {tuple(input.shape)}")
    for t in (input, *weights):
        if t.dtype not in _DTYPES or t.dtype != input.dtype:
            dtypes = [str(w.dtype) for w in (input, *weights)]
            raise TypeError(f"{op}: tensors must all be float32 or all float64, got dtypes {dtypes}")


# --------------------------------------------------------------------------- weight layouts

def _depthwise_filter_tf(weight: Tensor, in_channels: int) -> np.ndarray:
    """PyTorch ``[C*M, 1, kh, kw]`` -> TensorFlow ``[kh, kw, C, M]`` (channel ``k*M + q`` in both)."""
    out_c, _, kh, kw = weight.shape
    # in NumPy: a few microseconds, where torch's permute + contiguous cost ~30 us per call
    return np.ascontiguousarray(weight.detach().numpy().reshape(in_channels, out_c // in_channels, kh, kw)
                                .transpose(2, 3, 0, 1))


def _depthwise_filter_torch(tf_filter: np.ndarray) -> Tensor:
    """TensorFlow ``[kh, kw, C, M]`` -> PyTorch ``[C*M, 1, kh, kw]``."""
    kh, kw, c, m = tf_filter.shape
    return torch.from_numpy(np.ascontiguousarray(tf_filter.transpose(2, 3, 0, 1)).reshape(c * m, 1, kh, kw))


def _conv2d_filter_tf(weight: Tensor) -> np.ndarray:
    """PyTorch ``[out_c, in_c / groups, kh, kw]`` -> TensorFlow ``[kh, kw, in_c / groups, out_c]``."""
    return weight.detach().permute(2, 3, 1, 0).contiguous().numpy()


def _conv2d_filter_torch(tf_filter: np.ndarray) -> Tensor:
    return torch.from_numpy(tf_filter).permute(3, 2, 0, 1).contiguous()


def _nhwc_size(size: Sequence[int]) -> list[int]:
    n, c, h, w = size
    return [n, h, w, c]


def _add_bias(y: np.ndarray, bias: Tensor | None) -> np.ndarray:
    """Add ``bias`` along the channel axis of an NHWC result, in place."""
    if bias is not None:
        y += bias.detach().numpy()
    return y


def _bias_grad(ctx, grad: Tensor) -> Tensor | None:
    return grad.sum((0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None


# --------------------------------------------------------------------------- depthwise operators


def _depthwise_forward_impl(input: Tensor, weight: Tensor, bias: Tensor | None, stride: list[int],
                            padding: list[int], dilation: list[int]) -> Tensor:
    """In the input's own memory format (no transposes): NHWC kernels for ``channels_last``, NCHW ones for
    contiguous tensors; the two gradients likewise."""
    _check("sepconv::depthwise_conv2d", input, weight)
    x, data_format = _array_in_layout(input)
    y = sepconv.depthwise_conv2d(x, _depthwise_filter_tf(weight, input.shape[1]), stride,
                                 _pads_in_layout(padding, data_format), data_format, dilation)
    if bias is not None:
        y += bias.detach().numpy().reshape((-1,) if data_format == "NHWC" else (-1, 1, 1))
    return _tensor_in_layout(y, data_format)


def _depthwise_backprop_input_impl(grad_output: Tensor, weight: Tensor, input_size: list[int], stride: list[int],
                                   padding: list[int], dilation: list[int]) -> Tensor:
    _check("sepconv::depthwise_conv2d_backprop_input", grad_output, weight)
    dy, data_format = _array_in_layout(grad_output)
    size = _nhwc_size(input_size) if data_format == "NHWC" else list(input_size)
    dx = sepconv.depthwise_conv2d_backprop_input(size, _depthwise_filter_tf(weight, input_size[1]), dy, stride,
                                                 _pads_in_layout(padding, data_format), data_format, dilation)
    return _tensor_in_layout(dx, data_format)


def _depthwise_backprop_filter_impl(input: Tensor, grad_output: Tensor, weight_size: list[int], stride: list[int],
                                    padding: list[int], dilation: list[int]) -> Tensor:
    _check("sepconv::depthwise_conv2d_backprop_filter", input, grad_output)
    c = input.shape[1]
    out_c, _, kh, kw = weight_size
    x, data_format = _array_in_layout(input)
    dy = _array_in_layout(grad_output.contiguous(memory_format=_memory_format(input)))[0]
    dw = sepconv.depthwise_conv2d_backprop_filter(x, [kh, kw, c, out_c // c], dy, stride,
                                                  _pads_in_layout(padding, data_format), data_format, dilation)
    return _depthwise_filter_torch(dw)


def _depthwise_gradients_impl(input: Tensor, grad_output: Tensor, weight: Tensor, stride: list[int],
                              padding: list[int], dilation: list[int]) -> tuple[Tensor, Tensor]:
    """Both backprops in one call (:func:`sepconv.depthwise_conv2d_gradients`); ``grad_output`` in ``input``'s
    memory format.  Eager mode only: the registered operators keep the two backprops apart."""
    _check("sepconv::depthwise_conv2d_backprop_filter", input, grad_output)
    x, data_format = _array_in_layout(input)
    dx, dw = sepconv.depthwise_conv2d_gradients(x, _depthwise_filter_tf(weight, input.shape[1]),
                                                _array_in_layout(grad_output)[0], stride,
                                                _pads_in_layout(padding, data_format), data_format, dilation)
    return _tensor_in_layout(dx, data_format), _depthwise_filter_torch(dw)


@torch.library.custom_op("sepconv::depthwise_conv2d", mutates_args=(), device_types="cpu")
def _depthwise_conv2d(input: Tensor, weight: Tensor, bias: Tensor | None, stride: list[int], padding: list[int],
                      dilation: list[int]) -> Tensor:
    return _depthwise_forward_impl(input, weight, bias, stride, padding, dilation)


@_depthwise_conv2d.register_fake
def _(input, weight, bias, stride, padding, dilation):
    op = "sepconv::depthwise_conv2d"
    _check(op, input, weight)
    n, c, h, w = input.shape
    out_c, one, kh, kw = weight.shape
    torch._check(one == 1 and out_c % c == 0, lambda: (
        f"{op}: `weight` must be [in_channels * multiplier, 1, kh, kw] with in_channels={c}, "
        f"got shape {tuple(weight.shape)}"))
    return _empty_like_layout(input, (n, out_c, *_output_hw(op, h, w, kh, kw, stride, padding, dilation)))


@torch.library.custom_op("sepconv::depthwise_conv2d_backprop_input", mutates_args=(), device_types="cpu")
def _depthwise_backprop_input(grad_output: Tensor, weight: Tensor, input_size: list[int], stride: list[int],
                              padding: list[int], dilation: list[int]) -> Tensor:
    return _depthwise_backprop_input_impl(grad_output, weight, input_size, stride, padding, dilation)


@_depthwise_backprop_input.register_fake
def _(grad_output, weight, input_size, stride, padding, dilation):
    _check("sepconv::depthwise_conv2d_backprop_input", grad_output, weight)
    return _empty_like_layout(grad_output, input_size)


@torch.library.custom_op("sepconv::depthwise_conv2d_backprop_filter", mutates_args=(), device_types="cpu")
def _depthwise_backprop_filter(input: Tensor, grad_output: Tensor, weight_size: list[int], stride: list[int],
                               padding: list[int], dilation: list[int]) -> Tensor:
    return _depthwise_backprop_filter_impl(input, grad_output, weight_size, stride, padding, dilation)


@_depthwise_backprop_filter.register_fake
def _(input, grad_output, weight_size, stride, padding, dilation):
    _check("sepconv::depthwise_conv2d_backprop_filter", input, grad_output)
    return input.new_empty(weight_size)


# --------------------------------------------------------------------------- conv2d operators (the pointwise part)


@torch.library.custom_op("sepconv::conv2d", mutates_args=(), device_types="cpu")
def _conv2d(input: Tensor, weight: Tensor, bias: Tensor | None, stride: list[int], padding: list[int],
            dilation: list[int]) -> Tensor:
    _check("sepconv::conv2d", input, weight)
    y = sepconv.conv2d(_nhwc_array(input), _conv2d_filter_tf(weight), stride, _pairs(padding), "NHWC", dilation)
    return _nchw_tensor(_add_bias(y, bias), _memory_format(input))


@_conv2d.register_fake
def _(input, weight, bias, stride, padding, dilation):
    op = "sepconv::conv2d"
    _check(op, input, weight)
    n, c, h, w = input.shape
    out_c, group_c, kh, kw = weight.shape
    torch._check(c % group_c == 0 and out_c % (c // group_c) == 0, lambda: (
        f"{op}: `weight` [out_channels, in_channels / groups, kh, kw] does not fit {c} input channels, "
        f"got shape {tuple(weight.shape)}"))
    return _empty_like_layout(input, (n, out_c, *_output_hw(op, h, w, kh, kw, stride, padding, dilation)))


@torch.library.custom_op("sepconv::conv2d_backprop_input", mutates_args=(), device_types="cpu")
def _conv2d_backprop_input(grad_output: Tensor, weight: Tensor, input_size: list[int], stride: list[int],
                           padding: list[int], dilation: list[int]) -> Tensor:
    _check("sepconv::conv2d_backprop_input", grad_output, weight)
    dx = sepconv.conv2d_backprop_input(_nhwc_size(input_size), _conv2d_filter_tf(weight), _nhwc_array(grad_output),
                                       stride, _pairs(padding), "NHWC", dilation)
    return _nchw_tensor(dx, _memory_format(grad_output))


@_conv2d_backprop_input.register_fake
def _(grad_output, weight, input_size, stride, padding, dilation):
    _check("sepconv::conv2d_backprop_input", grad_output, weight)
    return _empty_like_layout(grad_output, input_size)


@torch.library.custom_op("sepconv::conv2d_backprop_filter", mutates_args=(), device_types="cpu")
def _conv2d_backprop_filter(input: Tensor, grad_output: Tensor, weight_size: list[int], stride: list[int],
                            padding: list[int], dilation: list[int]) -> Tensor:
    _check("sepconv::conv2d_backprop_filter", input, grad_output)
    out_c, group_c, kh, kw = weight_size
    dw = sepconv.conv2d_backprop_filter(_nhwc_array(input), [kh, kw, group_c, out_c], _nhwc_array(grad_output),
                                        stride, _pairs(padding), "NHWC", dilation)
    return _conv2d_filter_torch(dw)


@_conv2d_backprop_filter.register_fake
def _(input, grad_output, weight_size, stride, padding, dilation):
    _check("sepconv::conv2d_backprop_filter", input, grad_output)
    return input.new_empty(weight_size)


# --------------------------------------------------------------------------- separable operator


@torch.library.custom_op("sepconv::separable_conv2d", mutates_args=(), device_types="cpu")
def _separable_conv2d(input: Tensor, depthwise_weight: Tensor, pointwise_weight: Tensor, bias: Tensor | None,
                      stride: list[int], padding: list[int], dilation: list[int]) -> Tensor:
    _check("sepconv::separable_conv2d", input, depthwise_weight, pointwise_weight)
    y = sepconv.separable_conv2d(_nhwc_array(input), _depthwise_filter_tf(depthwise_weight, input.shape[1]),
                                 _conv2d_filter_tf(pointwise_weight), stride, _pairs(padding), "NHWC", dilation)
    return _nchw_tensor(_add_bias(y, bias), _memory_format(input))


@_separable_conv2d.register_fake
def _(input, depthwise_weight, pointwise_weight, bias, stride, padding, dilation):
    op = "sepconv::separable_conv2d"
    _check(op, input, depthwise_weight, pointwise_weight)
    n, c, h, w = input.shape
    mid_c, one, kh, kw = depthwise_weight.shape
    torch._check(one == 1 and mid_c % c == 0 and tuple(pointwise_weight.shape[1:]) == (mid_c, 1, 1), lambda: (
        f"{op}: weights must be depthwise [in_channels * multiplier, 1, kh, kw] and pointwise "
        f"[out_channels, in_channels * multiplier, 1, 1] with in_channels={c}, got shapes "
        f"{tuple(depthwise_weight.shape)} and {tuple(pointwise_weight.shape)}"))
    out_h, out_w = _output_hw(op, h, w, kh, kw, stride, padding, dilation)
    return _empty_like_layout(input, (n, pointwise_weight.shape[0], out_h, out_w))


# --------------------------------------------------------------------------- autograd
#
# Each convolution is bilinear in (input, weight):  y = F(x, w),  dx = BI(dy, w),  dw = BF(x, dy).
# The backprops are bilinear too, and their gradients are again F, BI and BF:
#   BI(g, w) = dx:  given h (shaped like x),  dg = F(h, w),          dw = BF(h, g)
#   BF(x, g) = dw:  given k (shaped like w),  dx = BI(g, k),         dg = F(x, k)
# so double backward closes over the three operators of a family.


def _forward_gradients(ctx, grad: Tensor, backprop_input, backprop_filter, both=None) -> tuple:
    """The gradients of a forward operator ``(input, weight, bias, stride, padding, dilation)``
    from ``ctx`` (saved ``input, weight``; ``window``, ``has_bias``), by the two backprops given, or by
    ``both(input, grad, weight, *window)`` in one call when both are wanted and it is given."""
    input, weight = ctx.saved_tensors
    grad = _like_input(grad, input)
    grad_input = grad_weight = None
    if both is not None and ctx.needs_input_grad[0] and ctx.needs_input_grad[1]:
        grad_input, grad_weight = both(input, grad, weight, *ctx.window)
    else:
        if ctx.needs_input_grad[0]:
            grad_input = backprop_input(grad, weight, list(input.shape), *ctx.window)
        if ctx.needs_input_grad[1]:
            grad_weight = backprop_filter(input, grad, list(weight.shape), *ctx.window)
    return grad_input, grad_weight, _bias_grad(ctx, grad), None, None, None


def _register_family(forward, backprop_input, backprop_filter) -> None:
    def setup_forward(ctx, inputs, output):
        input, weight, bias, *ctx.window = inputs
        ctx.has_bias = bias is not None
        ctx.save_for_backward(input, weight)

    def backward_forward(ctx, grad):
        return _forward_gradients(ctx, grad, backprop_input, backprop_filter)

    def setup_backprop(ctx, inputs, output):
        first, second, _size, *ctx.window = inputs
        ctx.save_for_backward(first, second)

    def backward_backprop_input(ctx, grad):  # inputs (grad_output, weight); grad is shaped like the input
        grad_output, weight = ctx.saved_tensors
        d_grad_output = d_weight = None
        if ctx.needs_input_grad[0]:
            d_grad_output = forward(grad, weight, None, *ctx.window)
        if ctx.needs_input_grad[1]:
            d_weight = backprop_filter(grad, grad_output, list(weight.shape), *ctx.window)
        return d_grad_output, d_weight, None, None, None, None

    def backward_backprop_filter(ctx, grad):  # inputs (input, grad_output); grad is shaped like the weight
        input, grad_output = ctx.saved_tensors
        d_input = d_grad_output = None
        if ctx.needs_input_grad[0]:
            d_input = backprop_input(grad_output, grad, list(input.shape), *ctx.window)
        if ctx.needs_input_grad[1]:
            d_grad_output = forward(input, grad, None, *ctx.window)
        return d_input, d_grad_output, None, None, None, None

    forward.register_autograd(backward_forward, setup_context=setup_forward)
    backprop_input.register_autograd(backward_backprop_input, setup_context=setup_backprop)
    backprop_filter.register_autograd(backward_backprop_filter, setup_context=setup_backprop)


_register_family(_depthwise_conv2d, _depthwise_backprop_input, _depthwise_backprop_filter)


class _EagerDepthwise(torch.autograd.Function):
    """The same computation as ``sepconv::depthwise_conv2d`` and its autograd formula, for eager mode.

    Going through the operator dispatcher costs ~90 us per operator call (``custom_op``'s Python
    layers), three times per layer and step (forward, input and weight gradients): as much as the
    kernels themselves on a 14x14 layer.  In eager mode the modules call the kernels from this
    ``autograd.Function`` instead; under ``torch.compile`` (and for ``opcheck``) the registered
    operators run.  A backward pass that builds a graph (``create_graph=True``, double backward)
    calls the differentiable operators, so second derivatives are the operators' own.
    """

    @staticmethod
    def forward(ctx, input, weight, bias, stride, padding, dilation):  # not setup_context: its apply() binds
        ctx.window = (stride, padding, dilation)                      # arguments with inspect, ~30 us a call
        ctx.has_bias = bias is not None
        ctx.save_for_backward(input, weight)
        return _depthwise_forward_impl(input, weight, bias, stride, padding, dilation)

    @staticmethod
    def backward(ctx, grad):
        if torch.is_grad_enabled():  # building a graph: the differentiable operators
            return _forward_gradients(ctx, grad, _depthwise_backprop_input, _depthwise_backprop_filter)
        # the last argument: both gradients, when both are wanted, in one call (one pass over the gradient)
        return _forward_gradients(ctx, grad, _depthwise_backprop_input_impl, _depthwise_backprop_filter_impl,
                                  _depthwise_gradients_impl)


def _needs_grad(*tensors: Tensor | None) -> bool:
    """Whether autograd will record an op on ``tensors`` (or forward-mode AD is on: the autograd.Function
    then says that it has no forward derivative, where the plain call would drop the tangents)."""
    if torch.autograd.forward_ad._current_level >= 0:
        return True
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _eager(*tensors: Tensor | None) -> bool:
    """Whether to skip the dispatcher: not compiling or tracing, and plain CPU tensors only."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    return all(t is None or type(t) in (Tensor, nn.Parameter) for t in tensors)
_register_family(_conv2d, _conv2d_backprop_input, _conv2d_backprop_filter)


def _setup_separable(ctx, inputs, output):
    input, depthwise_weight, pointwise_weight, bias, *ctx.window = inputs
    ctx.has_bias = bias is not None
    ctx.save_for_backward(input, depthwise_weight, pointwise_weight)


def _backward_separable(ctx, grad):
    """Chain the two backprops; the pointwise filter's gradient recomputes the depthwise output (the fused
    forward never stores it)."""
    input, depthwise_weight, pointwise_weight = ctx.saved_tensors
    grad = _like_input(grad, input)
    need_input, need_depthwise, need_pointwise = ctx.needs_input_grad[:3]
    grad_input = grad_depthwise = grad_pointwise = None
    if need_pointwise:
        middle = _depthwise_conv2d(input, depthwise_weight, None, *ctx.window)
        grad_pointwise = _conv2d_backprop_filter(middle, grad, list(pointwise_weight.shape), _UNIT, _NO_PADDING,
                                                 _UNIT)
    if need_input or need_depthwise:
        middle_size = [grad.shape[0], depthwise_weight.shape[0], *grad.shape[2:]]
        grad_middle = _conv2d_backprop_input(grad, pointwise_weight, middle_size, _UNIT, _NO_PADDING, _UNIT)
        if need_input:
            grad_input = _depthwise_backprop_input(grad_middle, depthwise_weight, list(input.shape), *ctx.window)
        if need_depthwise:
            grad_depthwise = _depthwise_backprop_filter(input, grad_middle, list(depthwise_weight.shape),
                                                        *ctx.window)
    return grad_input, grad_depthwise, grad_pointwise, _bias_grad(ctx, grad), None, None, None


_separable_conv2d.register_autograd(_backward_separable, setup_context=_setup_separable)


# --------------------------------------------------------------------------- PyTorch-style arguments

PaddingArg = int | tuple[int, int] | str


def _pair(name: str, value: int | Sequence[int], minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in pair):
        raise ValueError(f"`{name}` must be an int or a pair of ints >= {minimum}, got {name}={value!r}")
    return pair  # type: ignore[return-value]


def _check_padding(padding: PaddingArg, stride: tuple[int, int]) -> PaddingArg:
    """Validate ``padding`` once; return it as a pair of ints or one of the strings."""
    if isinstance(padding, str):
        if padding not in ("same", "valid", "SAME", "VALID"):
            raise ValueError(f"`padding` must be an int, a pair of ints, 'same', 'valid' or TensorFlow's 'SAME', "
                             f"got padding={padding!r}")
        if padding == "same" and stride != (1, 1):
            raise ValueError(f"padding='same' is not supported for strided convolutions (stride={stride}), as in "
                             f"PyTorch; use padding='SAME' for TensorFlow's rule, which pads by the input size")
        return padding
    return _pair("padding", padding, 0)


def _explicit_padding(padding: PaddingArg, input: Tensor, kernel_size: Sequence[int], stride: Sequence[int],
                      dilation: Sequence[int]) -> list[int]:
    """``padding`` for this input -> ``[top, bottom, left, right]``."""
    if isinstance(padding, str):
        if padding in ("valid", "VALID"):
            return list(_NO_PADDING)
        sizes = zip(("height", "width"), input.shape[-2:], kernel_size, stride, dilation, strict=True)
        (_, top, bottom), (_, left, right) = (windowed_output_size("sepconv.torch", axis, size, k, s, d, "SAME")
                                              for axis, size, k, s, d in sizes)
        return [top, bottom, left, right]
    ph, pw = padding
    return [ph, ph, pw, pw]


def depthwise_conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int | Sequence[int] = 1,
                     padding: PaddingArg = 0, dilation: int | Sequence[int] = 1) -> Tensor:
    """Depthwise convolution on sepconv's kernels: ``F.conv2d(input, weight, bias, stride, padding, dilation,
    groups=in_channels)``.

    Parameters
    ----------
    input : torch.Tensor
        ``[batch, in_channels, height, width]``, float32 or float64, on the CPU; contiguous or
        ``channels_last`` (the output has the same memory format).
    weight : torch.Tensor
        ``[in_channels * multiplier, 1, kh, kw]``; output channel ``k * multiplier + q`` reads input channel ``k``.
    bias : torch.Tensor, optional
        ``[in_channels * multiplier]``.
    stride, dilation : int or pair of int
    padding : int, pair of int, "same", "valid" or "SAME"
        As in PyTorch; ``"SAME"`` is TensorFlow's rule (see the module docstring).

    Returns
    -------
    torch.Tensor
        ``[batch, in_channels * multiplier, out_height, out_width]``.

    Examples
    --------
    >>> import torch, sepconv.torch as st
    >>> x, w = torch.randn(1, 4, 9, 9), torch.randn(8, 1, 3, 3)
    >>> st.depthwise_conv2d(x, w, stride=2, padding="SAME").shape
    torch.Size([1, 8, 5, 5])
    """
    stride, dilation = _pair("stride", stride, 1), _pair("dilation", dilation, 1)
    return _depthwise(input, weight, bias, stride, _check_padding(padding, stride), dilation)


def _depthwise(input: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, int], padding: PaddingArg,
               dilation: tuple[int, int]) -> Tensor:
    """:func:`depthwise_conv2d` with its arguments checked (a module's, checked when it was built)."""
    pads = _explicit_padding(padding, input, weight.shape[-2:], stride, dilation)
    if not _eager(input, weight, bias):
        op = _depthwise_conv2d
    elif _needs_grad(input, weight, bias):
        op = _EagerDepthwise.apply
    else:  # inference: no autograd node to build (Function.apply costs ~25 us a call, ~100 in a network)
        op = _depthwise_forward_impl
    return op(input, weight, bias, list(stride), pads, list(dilation))  # native in either memory format


def separable_conv2d(input: Tensor, depthwise_weight: Tensor, pointwise_weight: Tensor, bias: Tensor | None = None,
                     stride: int | Sequence[int] = 1, padding: PaddingArg = 0,
                     dilation: int | Sequence[int] = 1) -> Tensor:
    """Depthwise then pointwise (1x1) convolution, fused on sepconv's kernels.

    Equal to ``F.conv2d(F.conv2d(input, depthwise_weight, None, stride, padding, dilation, groups=in_channels),
    pointwise_weight, bias)``.

    Parameters
    ----------
    input : torch.Tensor
        ``[batch, in_channels, height, width]``, float32 or float64, CPU, contiguous or ``channels_last``.
    depthwise_weight : torch.Tensor
        ``[in_channels * multiplier, 1, kh, kw]``.
    pointwise_weight : torch.Tensor
        ``[out_channels, in_channels * multiplier, 1, 1]``.
    bias : torch.Tensor, optional
        ``[out_channels]``, added after the pointwise convolution.
    stride, dilation : int or pair of int
        Of the depthwise convolution.
    padding : int, pair of int, "same", "valid" or "SAME"
        Of the depthwise convolution, as in PyTorch; ``"SAME"`` is TensorFlow's rule.

    Returns
    -------
    torch.Tensor
        ``[batch, out_channels, out_height, out_width]``.

    Examples
    --------
    >>> import torch, sepconv.torch as st
    >>> x = torch.randn(1, 4, 9, 9)
    >>> st.separable_conv2d(x, torch.randn(4, 1, 3, 3), torch.randn(16, 4, 1, 1), padding="same").shape
    torch.Size([1, 16, 9, 9])
    """
    stride, dilation = _pair("stride", stride, 1), _pair("dilation", dilation, 1)
    pads = _explicit_padding(_check_padding(padding, stride), input, depthwise_weight.shape[-2:], stride, dilation)
    return _in_nhwc(_separable_conv2d, input, depthwise_weight, pointwise_weight, bias, list(stride), pads,
                    list(dilation))


# --------------------------------------------------------------------------- modules


def _init_like_conv2d(weight: nn.Parameter, bias: nn.Parameter | None) -> None:
    """``nn.Conv2d.reset_parameters``: the same draws in the same order, so equal seeds give equal weights."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = weight.shape[1] * weight.shape[2] * weight.shape[3]
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        nn.init.uniform_(bias, -bound, bound)


class DepthwiseConv2d(nn.Module):
    """Drop-in for ``nn.Conv2d(in_channels, in_channels * depth_multiplier, kernel_size, ..., groups=in_channels)``
    running on sepconv's kernels, forward and backward.

    The parameters are named and shaped as ``nn.Conv2d``'s (``weight`` ``[in_channels * depth_multiplier, 1, kh, kw]``,
    ``bias``) and initialised the same way, so state dicts load either way and equal seeds give equal weights.

    Parameters
    ----------
    in_channels : int
    depth_multiplier : int
        Output channels per input channel (``out_channels = in_channels * depth_multiplier``).
    kernel_size : int or pair of int
        Required (it has a default only because it follows ``depth_multiplier``).
    stride, dilation : int or pair of int
    padding : int, pair of int, "same", "valid" or "SAME"
        As ``nn.Conv2d``; ``"SAME"`` is TensorFlow's rule, for any stride (see :mod:`sepconv.torch`).
    bias : bool
    device, dtype : optional
        As ``nn.Conv2d``; CPU, float32 or float64.

    Notes
    -----
    The argument order is ``nn.Conv2d``'s with ``depth_multiplier`` in place of ``out_channels``:
    ``nn.Conv2d(C, C * M, 3, 2, 1, groups=C)`` becomes ``DepthwiseConv2d(C, M, 3, 2, 1)``.
    ``DepthwiseConv2d(C, 3)`` (a kernel size in the multiplier's place) is refused, as ``kernel_size``
    is then missing.  Only ``padding_mode="zeros"`` exists.

    Examples
    --------
    >>> import torch, sepconv.torch as st
    >>> layer = st.DepthwiseConv2d(16, 2, 3, stride=2, padding=1, bias=False)
    >>> layer(torch.randn(2, 16, 28, 28).to(memory_format=torch.channels_last)).shape
    torch.Size([2, 32, 14, 14])
    """

    def __init__(self, in_channels: int, depth_multiplier: int = 1, kernel_size: int | Sequence[int] | None = None,
                 stride: int | Sequence[int] = 1, padding: PaddingArg = 0, dilation: int | Sequence[int] = 1,
                 bias: bool = True, *, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if kernel_size is None:
            raise TypeError(f"DepthwiseConv2d: `kernel_size` is required (the arguments are in_channels, "
                            f"depth_multiplier, kernel_size, ...), got in_channels={in_channels}, "
                            f"depth_multiplier={depth_multiplier} and no kernel_size")
        if in_channels < 1 or depth_multiplier < 1:
            raise ValueError(f"DepthwiseConv2d: `in_channels` and `depth_multiplier` must be positive, got "
                             f"in_channels={in_channels}, depth_multiplier={depth_multiplier}")
        self.in_channels = in_channels
        self.depth_multiplier = depth_multiplier
        self.out_channels = in_channels * depth_multiplier
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        self.stride = _pair("stride", stride, 1)
        self.dilation = _pair("dilation", dilation, 1)
        self.padding = _check_padding(padding, self.stride)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty((self.out_channels, 1, *self.kernel_size), **factory))
        self.bias = nn.Parameter(torch.empty(self.out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw the weights as ``nn.Conv2d`` does (Kaiming uniform with ``a = sqrt(5)``)."""
        _init_like_conv2d(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        stride, padding, dilation = self.stride, self.padding, self.dilation
        if type(stride) is tuple and type(dilation) is tuple and type(padding) in (tuple, str):  # as built
            return _depthwise(input, self.weight, self.bias, stride, padding, dilation)
        # set after construction (model surgery: ``layer.stride = 1``): checked again, as the function does
        return depthwise_conv2d(input, self.weight, self.bias, stride, padding, dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, depth_multiplier={self.depth_multiplier}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding!r}, dilation={self.dilation}, "
                f"bias={self.bias is not None}")

    def to_conv2d(self) -> nn.Conv2d:
        """The equivalent ``nn.Conv2d(groups=in_channels)``, with the weights copied.

        Returns
        -------
        torch.nn.Conv2d

        Raises
        ------
        ValueError
            For ``padding="SAME"`` with a stride > 1: TensorFlow's padding depends on the input
            size and may be asymmetric, which ``nn.Conv2d`` cannot express.

        Examples
        --------
        >>> import torch, sepconv.torch as st
        >>> conv = st.DepthwiseConv2d(4, kernel_size=3, padding=1).to_conv2d()
        >>> conv.groups, tuple(conv.weight.shape)
        (4, (4, 1, 3, 3))
        """
        padding = self.padding
        if padding == "SAME":
            if self.stride != (1, 1):
                raise ValueError(f"to_conv2d: padding='SAME' (TensorFlow's rule) with stride={self.stride} depends "
                                 f"on the input size and may be asymmetric; nn.Conv2d cannot express it")
            padding = "same"
        conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride,
                         padding.lower() if isinstance(padding, str) else padding, self.dilation,
                         groups=self.in_channels, bias=self.bias is not None,
                         device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(self.weight)
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv


class SeparableConv2d(nn.Module):
    """Depthwise-separable convolution (depthwise ``kernel_size`` conv, then a 1x1 conv), fused on sepconv's kernels.

    Equal to ``nn.Sequential(nn.Conv2d(in_channels, in_channels * depth_multiplier, kernel_size, stride, padding,
    dilation, groups=in_channels, bias=False), nn.Conv2d(in_channels * depth_multiplier, out_channels, 1, bias=bias))``
    (as Keras' ``SeparableConv2D``: one bias, after the pointwise convolution).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or pair of int
        Of the depthwise convolution.
    stride, dilation : int or pair of int
        Of the depthwise convolution.
    padding : int, pair of int, "same", "valid" or "SAME"
        As ``nn.Conv2d``; ``"SAME"`` is TensorFlow's rule.
    depth_multiplier : int
    bias : bool
    device, dtype : optional
        CPU, float32 or float64.

    Attributes
    ----------
    depthwise_weight : torch.nn.Parameter
        ``[in_channels * depth_multiplier, 1, kh, kw]``.
    pointwise_weight : torch.nn.Parameter
        ``[out_channels, in_channels * depth_multiplier, 1, 1]``.
    bias : torch.nn.Parameter or None
        ``[out_channels]``.

    Examples
    --------
    >>> import torch, sepconv.torch as st
    >>> layer = st.SeparableConv2d(16, 32, 3, padding="same")
    >>> layer(torch.randn(2, 16, 14, 14)).shape
    torch.Size([2, 32, 14, 14])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: PaddingArg = 0, dilation: int | Sequence[int] = 1,
                 depth_multiplier: int = 1, bias: bool = True, *, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if min(in_channels, out_channels, depth_multiplier) < 1:
            raise ValueError(f"SeparableConv2d: channels and `depth_multiplier` must be positive, got in_channels="
                             f"{in_channels}, out_channels={out_channels}, depth_multiplier={depth_multiplier}")
        self.in_channels, self.out_channels, self.depth_multiplier = in_channels, out_channels, depth_multiplier
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        self.stride = _pair("stride", stride, 1)
        self.dilation = _pair("dilation", dilation, 1)
        self.padding = _check_padding(padding, self.stride)
        factory = {"device": device, "dtype": dtype}
        middle = in_channels * depth_multiplier
        self.depthwise_weight = nn.Parameter(torch.empty((middle, 1, *self.kernel_size), **factory))
        self.pointwise_weight = nn.Parameter(torch.empty((out_channels, middle, 1, 1), **factory))
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw the weights as the two ``nn.Conv2d`` of :meth:`to_conv2d` would be drawn."""
        _init_like_conv2d(self.depthwise_weight, None)
        _init_like_conv2d(self.pointwise_weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return separable_conv2d(input, self.depthwise_weight, self.pointwise_weight, self.bias, self.stride,
                                self.padding, self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, {self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding!r}, dilation={self.dilation}, depth_multiplier={self.depth_multiplier}, "
                f"bias={self.bias is not None}")

    def to_conv2d(self) -> nn.Sequential:
        """The equivalent stock ``nn.Sequential(depthwise nn.Conv2d, pointwise nn.Conv2d)``, weights copied.

        Returns
        -------
        torch.nn.Sequential

        Raises
        ------
        ValueError
            For ``padding="SAME"`` with a stride > 1 (see :meth:`DepthwiseConv2d.to_conv2d`).

        Examples
        --------
        >>> import sepconv.torch as st
        >>> [type(m).__name__ for m in st.SeparableConv2d(4, 8, 3).to_conv2d()]
        ['Conv2d', 'Conv2d']
        """
        depthwise = DepthwiseConv2d(self.in_channels, self.depth_multiplier, self.kernel_size, self.stride,
                                    self.padding, self.dilation, bias=False,
                                    device=self.depthwise_weight.device, dtype=self.depthwise_weight.dtype)
        pointwise = nn.Conv2d(self.in_channels * self.depth_multiplier, self.out_channels, 1,
                              bias=self.bias is not None, device=self.pointwise_weight.device,
                              dtype=self.pointwise_weight.dtype)
        with torch.no_grad():
            depthwise.weight.copy_(self.depthwise_weight)
            pointwise.weight.copy_(self.pointwise_weight)
            if self.bias is not None:
                pointwise.bias.copy_(self.bias)
        return nn.Sequential(depthwise.to_conv2d(), pointwise)


def from_conv2d(conv: nn.Conv2d) -> DepthwiseConv2d:
    """The drop-in :class:`DepthwiseConv2d` for a depthwise ``nn.Conv2d`` (``groups == in_channels``), weights copied.

    Parameters
    ----------
    conv : torch.nn.Conv2d
        With ``groups == in_channels``, ``out_channels`` a multiple of ``in_channels`` and
        ``padding_mode="zeros"``, on the CPU in float32 or float64.

    Returns
    -------
    DepthwiseConv2d
        Same hyper-parameters, weights and bias (copies; ``requires_grad`` kept), same device and dtype.

    Raises
    ------
    TypeError
        If ``conv`` is not an ``nn.Conv2d``.
    ValueError
        If it is not depthwise, or its ``padding_mode`` is not ``"zeros"``.

    Examples
    --------
    >>> import torch, sepconv.torch as st
    >>> conv = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)
    >>> layer = st.from_conv2d(conv)
    >>> x = torch.randn(1, 8, 10, 10)
    >>> torch.allclose(layer(x), conv(x), atol=1e-6)
    True
    """
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"from_conv2d: `conv` must be a torch.nn.Conv2d, got {type(conv).__name__}")
    if conv.groups != conv.in_channels or conv.out_channels % conv.in_channels != 0:
        raise ValueError(
            f"from_conv2d: `conv` must be depthwise (groups == in_channels, out_channels a multiple of in_channels), "
            f"got in_channels={conv.in_channels}, out_channels={conv.out_channels}, groups={conv.groups}")
    if conv.padding_mode != "zeros":
        raise ValueError(f"from_conv2d: only padding_mode='zeros' is supported, got padding_mode={conv.padding_mode!r}")
    layer = DepthwiseConv2d(conv.in_channels, conv.out_channels // conv.in_channels, conv.kernel_size, conv.stride,
                            conv.padding, conv.dilation, bias=conv.bias is not None,
                            device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(conv.weight)
        if conv.bias is not None:
            layer.bias.copy_(conv.bias)
    layer.weight.requires_grad_(conv.weight.requires_grad)
    if conv.bias is not None:
        layer.bias.requires_grad_(conv.bias.requires_grad)
    layer.train(conv.training)
    return layer


def convert_depthwise(module: nn.Module) -> nn.Module:
    """Replace, in place, every depthwise ``nn.Conv2d`` inside ``module`` by its :func:`from_conv2d` drop-in.

    A convolution is replaced when ``groups == in_channels > 1`` and ``padding_mode == "zeros"``;
    every other module is left alone.  Weights are copied, so gradients, optimizers' state and
    parameter identity start afresh: convert before creating the optimizer.

    Parameters
    ----------
    module : torch.nn.Module
        A model, or a single ``nn.Conv2d``.

    Returns
    -------
    torch.nn.Module
        ``module`` itself with its depthwise convolutions replaced, or the drop-in module when
        ``module`` is itself a depthwise ``nn.Conv2d``.

    Examples
    --------
    >>> import torch, sepconv.torch as st
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.nn.ReLU())
    >>> [type(m).__name__ for m in st.convert_depthwise(net)]
    ['DepthwiseConv2d', 'ReLU']
    """
    if _is_convertible(module):
        return from_conv2d(module)  # type: ignore[arg-type]
    for name, child in module.named_children():
        setattr(module, name, convert_depthwise(child))
    return module


def _is_convertible(module: nn.Module) -> bool:
    return (isinstance(module, nn.Conv2d) and module.groups == module.in_channels > 1
            and module.out_channels % module.in_channels == 0 and module.padding_mode == "zeros")
