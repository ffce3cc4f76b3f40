"""sepconv.torch against PyTorch itself: opcheck, gradcheck, and F.conv2d(groups=C) as the oracle."""

from __future__ import annotations

import itertools
import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import sepconv.torch as st  # noqa: E402

ops = torch.ops.sepconv
CL = torch.channels_last


def close(actual, expected, dtype=torch.float64):
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol)


def randn(*shape, dtype=torch.float64, memory_format=torch.contiguous_format, grad=True):
    t = torch.randn(*shape, dtype=dtype).to(memory_format=memory_format)
    return t.requires_grad_(grad)


def tf_same_pads(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME rule, written out by hand for the test."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


# --------------------------------------------------------------------------- the registered operators

WINDOW = ([2, 1], [1, 0, 2, 1], [1, 2])  # stride, [top, bottom, left, right], dilation: all asymmetric


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, CL])
def test_opcheck_forward_ops(memory_format):
    torch.manual_seed(0)
    x = randn(2, 3, 7, 6, memory_format=memory_format)
    dw, pw = randn(6, 1, 3, 2), randn(5, 6, 1, 1)
    dense = randn(4, 3, 2, 3)
    for op, args in [
        (ops.depthwise_conv2d, (x, dw, randn(6))),
        (ops.depthwise_conv2d, (x, dw, None)),
        (ops.conv2d, (x, dense, randn(4))),
        (ops.separable_conv2d, (x, dw, pw, randn(5))),
    ]:
        torch.library.opcheck(op.default, (*args, *WINDOW))


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, CL])
def test_opcheck_backprop_ops(memory_format):
    torch.manual_seed(1)
    x = randn(2, 3, 7, 6, memory_format=memory_format)
    dw, dense = randn(6, 1, 3, 2), randn(4, 3, 2, 3)
    dy_dw = randn(*ops.depthwise_conv2d(x, dw, None, *WINDOW).shape, memory_format=memory_format)
    dy_dense = randn(*ops.conv2d(x, dense, None, *WINDOW).shape, memory_format=memory_format)
    for op, args in [
        (ops.depthwise_conv2d_backprop_input, (dy_dw, dw, list(x.shape))),
        (ops.depthwise_conv2d_backprop_filter, (x, dy_dw, list(dw.shape))),
        (ops.conv2d_backprop_input, (dy_dense, dense, list(x.shape))),
        (ops.conv2d_backprop_filter, (x, dy_dense, list(dense.shape))),
    ]:
        torch.library.opcheck(op.default, (*args, *WINDOW))


def test_gradcheck_and_gradgradcheck_float64():
    torch.manual_seed(2)
    x, dw, bias = randn(2, 2, 6, 5), randn(4, 1, 3, 3), randn(4)
    pw, pw_bias = randn(3, 4, 1, 1), randn(3)

    def depthwise(x, w, b):
        return st.depthwise_conv2d(x, w, b, stride=2, padding="SAME", dilation=1)

    def separable(x, w, p, b):
        return st.separable_conv2d(x, w, p, b, stride=1, padding=(1, 2), dilation=2)

    assert torch.autograd.gradcheck(depthwise, (x, dw, bias))
    assert torch.autograd.gradgradcheck(depthwise, (x, dw, bias))
    assert torch.autograd.gradcheck(separable, (x, dw, pw, pw_bias))
    assert torch.autograd.gradgradcheck(separable, (x, dw, pw, pw_bias))


# --------------------------------------------------------------------------- against F.conv2d(groups=C)


def assert_matches_grouped_conv(x, weight, bias, stride, padding, dilation, dtype=torch.float64):
    """Output and the gradients of input, weight and bias equal F.conv2d(groups=C) on copies."""
    ours = st.depthwise_conv2d(x, weight, bias, stride, padding, dilation)
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]
    theirs = F.conv2d(*leaves, stride, padding, dilation, groups=x.shape[1])
    close(ours, theirs, dtype)
    assert ours.is_contiguous(memory_format=CL) == x.is_contiguous(memory_format=CL)
    grad = torch.randn_like(theirs)
    ours_grads = torch.autograd.grad(ours, (x, weight, bias), grad)
    theirs_grads = torch.autograd.grad(theirs, leaves, grad)
    for a, b in zip(ours_grads, theirs_grads, strict=True):
        close(a, b, dtype)


CASES = [
    (stride, dilation, padding, multiplier)
    for stride, dilation, padding, multiplier in itertools.product(
        [1, 2, (2, 1)], [1, 2], [0, 1, (2, 1), "same", "valid"], [1, 2, 3])
    if not (padding == "same" and stride != 1)
]


@pytest.mark.parametrize("stride, dilation, padding, multiplier", CASES)
def test_depthwise_matches_grouped_conv2d(stride, dilation, padding, multiplier):
    torch.manual_seed(3)
    channels = 3
    memory_format = CL if multiplier != 2 else torch.contiguous_format
    x = randn(2, channels, 9, 8, memory_format=memory_format)
    weight, bias = randn(channels * multiplier, 1, 3, 3), randn(channels * multiplier)
    assert_matches_grouped_conv(x, weight, bias, stride, padding, dilation)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, CL])
def test_depthwise_float32_odd_sizes(memory_format):
    torch.manual_seed(4)
    dtype = torch.float32
    x = randn(3, 5, 13, 11, dtype=dtype, memory_format=memory_format)
    weight, bias = randn(10, 1, 5, 3, dtype=dtype), randn(10, dtype=dtype)
    assert_matches_grouped_conv(x, weight, bias, (2, 3), (2, 1), (1, 2), dtype)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # PyTorch's own note, from the oracle
@pytest.mark.parametrize("kernel_size, dilation", [((2, 4), 1), ((2, 3), 2), ((4, 1), (1, 3))])
def test_pytorch_same_with_even_kernels(kernel_size, dilation):
    torch.manual_seed(11)
    x = randn(2, 3, 7, 8, memory_format=CL)
    weight, bias = randn(6, 1, *kernel_size), randn(6)
    assert_matches_grouped_conv(x, weight, bias, 1, "same", dilation)


@pytest.mark.parametrize("size, stride, dilation", [(8, 2, 1), (9, 2, 1), (10, 3, 1), (7, 1, 2), (12, 2, 2)])
def test_tensorflow_same_equals_explicit_asymmetric_pad(size, stride, dilation):
    torch.manual_seed(5)
    x = randn(1, 4, size, size + 1, memory_format=CL)
    weight = randn(8, 1, 3, 3)
    top, bottom = tf_same_pads(size, 3, stride, dilation)
    left, right = tf_same_pads(size + 1, 3, stride, dilation)
    ours = st.depthwise_conv2d(x, weight, None, stride, "SAME", dilation)
    x_ref = x.detach().clone().requires_grad_()
    theirs = F.conv2d(F.pad(x_ref, (left, right, top, bottom)), weight, None, stride, 0, dilation, groups=4)
    close(ours, theirs)
    assert ours.shape[-2:] == (math.ceil(size / stride), math.ceil((size + 1) / stride))
    grad = torch.randn_like(theirs)
    close(torch.autograd.grad(ours, x, grad)[0], torch.autograd.grad(theirs, x_ref, grad)[0])


def test_tensorflow_same_is_asymmetric_where_pytorch_is_not():
    x, weight = torch.ones(1, 1, 4, 4), torch.ones(1, 1, 3, 3)
    tf_style = st.depthwise_conv2d(x, weight, stride=2, padding="SAME")
    torch_style = st.depthwise_conv2d(x, weight, stride=2, padding=1)
    assert tf_style[0, 0].tolist() == [[9.0, 6.0], [6.0, 4.0]]  # pads 0 top/left, 1 bottom/right
    assert torch_style[0, 0].tolist() == [[4.0, 6.0], [6.0, 9.0]]  # pads 1 on each side


def test_separable_matches_stock_sequential():
    torch.manual_seed(6)
    layer = st.SeparableConv2d(3, 7, 3, stride=2, padding=1, dilation=2, depth_multiplier=2, dtype=torch.float64)
    stock = layer.to_conv2d()
    x = randn(2, 3, 11, 9, memory_format=CL)
    x_ref = x.detach().clone().requires_grad_()
    ours, theirs = layer(x), stock(x_ref)
    close(ours, theirs)
    grad = torch.randn_like(theirs)
    ours.backward(grad)
    theirs.backward(grad)
    close(x.grad, x_ref.grad)
    close(layer.depthwise_weight.grad, stock[0].weight.grad)
    close(layer.pointwise_weight.grad, stock[1].weight.grad)
    close(layer.bias.grad, stock[1].bias.grad)


@pytest.mark.parametrize("needs", ["input", "depthwise", "pointwise"])
def test_separable_computes_only_the_gradients_asked_for(needs):
    torch.manual_seed(12)
    x = randn(2, 3, 8, 7, memory_format=CL, grad=needs == "input")
    depthwise, pointwise = randn(6, 1, 3, 3, grad=needs == "depthwise"), randn(4, 6, 1, 1, grad=needs == "pointwise")
    wanted = {"input": x, "depthwise": depthwise, "pointwise": pointwise}[needs]
    ours = st.separable_conv2d(x, depthwise, pointwise, None, 2, "SAME")  # pads (0, 1) rows, (1, 1) columns
    theirs = F.conv2d(F.conv2d(F.pad(x, (1, 1, 0, 1)), depthwise, None, 2, 0, groups=3), pointwise)
    grad = torch.randn_like(theirs)
    close(torch.autograd.grad(ours, wanted, grad)[0], torch.autograd.grad(theirs, wanted, grad)[0])


# --------------------------------------------------------------------------- modules and conversion


def test_module_initialises_like_conv2d():
    torch.manual_seed(7)
    stock = nn.Conv2d(6, 12, 3, groups=6)
    torch.manual_seed(7)
    ours = st.DepthwiseConv2d(6, 2, 3)
    assert torch.equal(ours.weight, stock.weight) and torch.equal(ours.bias, stock.bias)
    assert ours.state_dict().keys() == stock.state_dict().keys()


def test_from_conv2d_and_back():
    torch.manual_seed(8)
    stock = nn.Conv2d(4, 8, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=4, dtype=torch.float64)
    ours = st.from_conv2d(stock)
    assert (ours.stride, ours.padding, ours.dilation, ours.depth_multiplier) == ((2, 1), (1, 2), (1, 2), 2)
    x = randn(2, 4, 10, 12, grad=False)
    close(ours(x), stock(x))
    back = ours.to_conv2d()
    assert (back.groups, back.padding, back.stride) == (4, (1, 2), (2, 1))
    close(back(x), stock(x))
    assert st.from_conv2d(nn.Conv2d(4, 4, 3, padding="same", groups=4)).padding == "same"


def test_attributes_set_after_construction_are_honoured():
    """Model surgery (a backbone's output stride traded for dilation) sets ints or tuples on built layers."""
    torch.manual_seed(9)
    stock = nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4, bias=False, dtype=torch.float64)
    ours = st.from_conv2d(stock)
    x = randn(1, 4, 11, 11, grad=False)
    for module in (stock, ours):
        module.stride, module.dilation, module.padding = 1, 2, 2
    close(ours(x), F.conv2d(x, stock.weight, None, 1, 2, 2, 4))
    ours.stride, ours.padding = (1, 2), "valid"
    close(ours(x), F.conv2d(x, stock.weight, None, (1, 2), 0, 2, 4))
    ours.padding = -1
    with pytest.raises(ValueError, match="padding"):
        ours(x)


@pytest.mark.parametrize("conv, message", [
    (nn.Conv2d(4, 8, 3), "must be depthwise"),
    (nn.Conv2d(4, 8, 3, groups=2), "groups=2"),
    (nn.Conv2d(4, 4, 3, groups=4, padding_mode="reflect"), "padding_mode='reflect'"),
])
def test_from_conv2d_refuses_what_it_cannot_run(conv, message):
    with pytest.raises(ValueError, match=message):
        st.from_conv2d(conv)


def test_argument_errors():
    with pytest.raises(ValueError, match="not supported for strided"):
        st.DepthwiseConv2d(4, 1, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="`padding` must be"):
        st.DepthwiseConv2d(4, kernel_size=3, padding="full")
    with pytest.raises(ValueError, match="nn.Conv2d cannot express"):
        st.DepthwiseConv2d(4, 1, 3, stride=2, padding="SAME").to_conv2d()
    with pytest.raises(TypeError, match="`kernel_size` is required"):
        st.DepthwiseConv2d(4, 3)
    with pytest.raises(TypeError, match="must all be float32 or all float64"):
        st.depthwise_conv2d(torch.randn(1, 2, 5, 5), torch.randn(2, 1, 3, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="must all be float32 or all float64"):
        st.depthwise_conv2d(torch.randn(1, 2, 5, 5).half(), torch.randn(2, 1, 3, 3).half())
    with pytest.raises(TypeError, match="must be a torch.nn.Conv2d"):
        st.from_conv2d(nn.Linear(2, 2))


# --------------------------------------------------------------------------- a MobileNetV2-style network


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand, 3x3 depthwise, 1x1 project, with batch norm and ReLU6."""

    def __init__(self, inp: int, out: int, stride: int, expansion: int):
        super().__init__()
        hidden = inp * expansion
        self.residual = stride == 1 and inp == out
        self.body = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, out, 1, bias=False), nn.BatchNorm2d(out),
        )

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def mobilenet_like(dtype) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
        InvertedResidual(8, 8, 1, 3), InvertedResidual(8, 12, 2, 3), InvertedResidual(12, 12, 1, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 5),
    ).to(dtype)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, CL])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mobilenet_block_with_modules_swapped_has_stock_gradients(memory_format, dtype):
    torch.manual_seed(9)
    stock = mobilenet_like(dtype).to(memory_format=memory_format)
    swapped = st.convert_depthwise(mobilenet_like(dtype).to(memory_format=memory_format))
    swapped.load_state_dict(stock.state_dict())
    assert sum(isinstance(m, st.DepthwiseConv2d) for m in swapped.modules()) == 3
    x = torch.randn(4, 3, 17, 15, dtype=dtype).to(memory_format=memory_format)
    target = torch.randint(0, 5, (4,))
    for model in (stock, swapped):
        F.cross_entropy(model(x), target).backward()
    stock_params, swapped_params = dict(stock.named_parameters()), dict(swapped.named_parameters())
    assert stock_params.keys() == swapped_params.keys()
    for name, param in stock_params.items():
        close(swapped_params[name].grad, param.grad, dtype)


def test_torch_compile_composes():
    torch.manual_seed(10)
    model = nn.Sequential(st.DepthwiseConv2d(4, 2, 3, 2, "SAME", bias=True), nn.ReLU(),
                          st.SeparableConv2d(8, 6, 3, padding="same")).double()
    x = randn(2, 4, 11, 10, memory_format=CL)
    expected = model(x)
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    actual = compiled(x)
    (actual_grad,) = torch.autograd.grad(actual.sum(), x)
    close(actual, expected)
    close(actual_grad, expected_grad)


def test_eager_calls_skip_the_dispatcher_and_keep_double_backward():
    """Eager mode runs the kernels from an autograd.Function (no dispatcher); create_graph=True still
    gives PyTorch's second derivatives (through the registered, differentiable operators)."""
    torch.manual_seed(11)
    x = randn(2, 3, 9, 8, memory_format=CL).requires_grad_()
    weight = torch.randn(6, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    y = st.depthwise_conv2d(x, weight, stride=2, padding=1)
    assert "_EagerDepthwise" in type(y.grad_fn).__name__
    expected = F.conv2d(x, weight, None, 2, 1, 1, 3)
    close(y, expected)
    (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    (expected_gx,) = torch.autograd.grad(expected.square().sum(), x, create_graph=True)
    close(gx, expected_gx)
    close(torch.autograd.grad(gx.sum(), weight)[0], torch.autograd.grad(expected_gx.sum(), weight)[0])


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "nothing_requires_grad"])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, CL])
def test_inference_calls_build_no_autograd_node(mode, memory_format):
    """Without gradients to record the module runs the kernels directly: same values, no graph."""
    torch.manual_seed(12)
    layer = st.DepthwiseConv2d(4, kernel_size=3, stride=2, padding=1, depth_multiplier=2)
    x = randn(2, 4, 11, 10, dtype=torch.float32, memory_format=memory_format, grad=False)
    expected = F.conv2d(x, layer.weight.detach(), layer.bias.detach(), 2, 1, 1, 4)
    if mode == "no_grad":
        with torch.no_grad():
            y = layer(x)
    elif mode == "inference_mode":
        with torch.inference_mode():
            y = layer(x)
        assert y.is_inference()
    else:
        layer.requires_grad_(False)
        y = layer(x)
    assert y.grad_fn is None and not y.requires_grad
    assert y.is_contiguous(memory_format=memory_format)
    close(y, expected, torch.float32)
    layer.requires_grad_(True)
    y = layer(x)  # and with a parameter to train, the autograd node again
    assert "_EagerDepthwise" in type(y.grad_fn).__name__


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch's own forward AD
def test_forward_mode_ad_is_refused_not_silently_dropped():
    """No forward derivative is registered: with dual tensors the call says so, even with nothing requiring grad."""
    import torch.autograd.forward_ad as fwAD

    layer = st.DepthwiseConv2d(4, kernel_size=3, padding=1).requires_grad_(False)
    x = torch.randn(1, 4, 6, 6)
    with fwAD.dual_level():
        with pytest.raises(NotImplementedError, match="jvp"):
            layer(fwAD.make_dual(x, torch.randn_like(x)))


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:DeprecationWarning")  # trace and trace_method, deprecated in 2.13
@pytest.mark.parametrize("grad", [True, False])
def test_jit_trace_records_the_operator(grad):
    """torch.jit.trace records the registered operator (the eager shortcuts would be baked in as constants):
    the trace computes new inputs right, and its gradients are PyTorch's."""
    torch.manual_seed(13)
    layer = st.DepthwiseConv2d(4, kernel_size=3, stride=2, padding=1, depth_multiplier=2)
    with torch.set_grad_enabled(grad):
        traced = torch.jit.trace(layer, randn(1, 4, 9, 8, dtype=torch.float32, grad=False))
    assert "sepconv::depthwise_conv2d" in str(traced.graph)
    x = randn(2, 4, 11, 10, dtype=torch.float32)
    expected = F.conv2d(x, layer.weight, layer.bias, 2, 1, 1, 4)
    actual = traced(x)
    close(actual, expected, torch.float32)
    close(torch.autograd.grad(actual.sum(), x)[0], torch.autograd.grad(expected.sum(), x)[0], torch.float32)


def test_torch_export_records_the_operator():
    torch.manual_seed(14)
    layer = st.DepthwiseConv2d(4, kernel_size=3, stride=2, padding=1, depth_multiplier=2)
    x = randn(2, 4, 11, 10, dtype=torch.float32, grad=False)
    exported = torch.export.export(layer, (x,))
    targets = [str(node.target) for node in exported.graph.nodes if node.op == "call_function"]
    assert targets == ["sepconv.depthwise_conv2d.default"]
    close(exported.module()(x), F.conv2d(x, layer.weight, layer.bias, 2, 1, 1, 4), torch.float32)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, CL])
def test_backward_takes_both_gradients_in_one_call(memory_format, monkeypatch):
    """Eager backward with both gradients wanted calls ``sepconv.depthwise_conv2d_gradients`` once (one pass
    over the output gradient), the two backprops when only one is wanted; PyTorch's values either way."""
    import sepconv

    calls: list[str] = []

    def spy_on(name):
        original = getattr(sepconv, name)

        def spy(*args, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)
        monkeypatch.setattr(sepconv, name, spy)

    for name in ("depthwise_conv2d_gradients", "depthwise_conv2d_backprop_input", "depthwise_conv2d_backprop_filter"):
        spy_on(name)
    torch.manual_seed(13)
    x = randn(2, 4, 10, 9, memory_format=memory_format).requires_grad_()
    weight = torch.randn(4, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    grad = randn(2, 4, 5, 5, memory_format=memory_format)
    got = torch.autograd.grad(st.depthwise_conv2d(x, weight, stride=2, padding=1), (x, weight), grad)
    assert calls == ["depthwise_conv2d_gradients"]
    want = torch.autograd.grad(F.conv2d(x, weight, None, 2, 1, 1, 4), (x, weight), grad)
    for a, b in zip(got, want, strict=True):
        close(a, b)
    assert got[0].is_contiguous(memory_format=memory_format)
    calls.clear()
    (gx,) = torch.autograd.grad(st.depthwise_conv2d(x, weight.detach(), stride=2, padding=1), x, grad)
    assert calls == ["depthwise_conv2d_backprop_input"]
    close(gx, torch.autograd.grad(F.conv2d(x, weight.detach(), None, 2, 1, 1, 4), x, grad)[0])
