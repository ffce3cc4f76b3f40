"""The worker side of ``sepconv bench``: one process per framework, driven over a pipe.

``python -m sepconv._bench_peers FRAMEWORK`` starts a worker.  It reads one JSON request per
line on stdin and answers with one JSON line on its *original* stdout (file descriptor 1 is
redirected to stderr at start, so a framework printing to stdout cannot corrupt the protocol).

Requests (``cmd``):

- ``info``: framework version and the seconds its import took.
- ``setup``: load a case's inputs (``.npz`` of NHWC/HWIO arrays written by the driver), build
  the framework's callable, call it twice (first-call and second-call seconds), and save its
  output in NHWC/HWIO layout to the ``.npy`` path given, for the driver to check.
- ``time``: warm-up calls, then calls timed one by one for about ``target_s`` seconds;
  answers the median and minimum seconds per call.
- ``bandwidth`` / ``gemm`` / ``overhead`` (sepconv worker only): machine probes and the
  Python-level cost of a sepconv call.

Every callable returns the framework's own output object; the conversion to NumPy for the
check is done outside the timed call.  Each call includes the framework's Python-level call
cost and its output allocation: that is what a user pays.

A case carries its resolved geometry (``pads`` as ``[[top, bottom], [left, right]]`` and
``out_hw``), so every framework computes exactly TensorFlow's padding: frameworks that only
pad symmetrically (PyTorch) pad the input explicitly inside the call when the pads differ.
"""

from __future__ import annotations

import gc
import importlib.metadata
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

FRAMEWORKS = ("sepconv", "torch_cl", "torch_nchw", "tf", "ort_nchw", "ort_nhwc", "jax")
THREADS = 2
SLOW_CALL_S = 0.1  # calls slower than this get no warm-up and a single timed call per round


class Unsupported(Exception):
    """The framework has no op for this case (reported as ``n/a``, not as a failure)."""


Runner = tuple[Callable[[], Any], Callable[[Any], np.ndarray]]


# --------------------------------------------------------------------------- case helpers


def _dw_filter_oihw(w: np.ndarray) -> np.ndarray:
    """Depthwise ``[kh, kw, C, M]`` -> grouped ``[C*M, 1, kh, kw]`` (output channel ``k*M + q``)."""
    kh, kw, c, m = w.shape
    return np.ascontiguousarray(w.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw))


def _oihw_to_dw_filter(w: np.ndarray, c: int, m: int) -> np.ndarray:
    kh, kw = w.shape[2:]
    return np.ascontiguousarray(w.reshape(c, m, kh, kw).transpose(2, 3, 0, 1))


def _conv_filter_oihw(w: np.ndarray) -> np.ndarray:
    """Dense ``[kh, kw, C, O]`` (HWIO) -> ``[O, C, kh, kw]`` (OIHW)."""
    return np.ascontiguousarray(w.transpose(3, 2, 0, 1))


def _nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def _flat_pair(pair) -> np.ndarray:
    """Two results (input gradient, filter gradient) as the one array a worker returns: both flattened,
    concatenated (:func:`sepconv.bench.relative_error` splits them again)."""
    return np.concatenate([np.asarray(pair[0]).reshape(-1), np.asarray(pair[1]).reshape(-1)])


def _both_gradients(runner: Callable[[dict, dict[str, np.ndarray]], Runner]) -> Callable[[dict, dict], Runner]:
    """For a framework without one op for both gradients: ``runner``'s input-gradient and filter-gradient
    calls one after the other (what TensorFlow's own gradient of the op runs), for ``dw_bwd`` cases."""
    def run(case: dict, a: dict[str, np.ndarray]) -> Runner:
        if case["kind"] != "dw_bwd":
            return runner(case, a)
        grad_input, input_to_numpy = runner({**case, "kind": "dw_bwd_input"}, a)
        grad_filter, filter_to_numpy = runner({**case, "kind": "dw_bwd_filter"}, a)
        return (lambda: (grad_input(), grad_filter())), lambda pair: _flat_pair(
            (input_to_numpy(pair[0]), filter_to_numpy(pair[1])))
    return run


def _symmetric(case: dict) -> bool:
    (top, bottom), (left, right) = case["pads"]
    return top == bottom and left == right


# --------------------------------------------------------------------------- sepconv


def _sepconv_runner(case: dict, a: dict[str, np.ndarray]) -> Runner:
    import sepconv

    kind, s, d, padding = case["kind"], case["s"], case["d"], case["padding"]
    if kind == "dw":
        x, w = a["x"], a["w"]
        return (lambda: sepconv.depthwise_conv2d(x, w, s, padding, dilations=d)), np.asarray
    if kind == "dw_bwd_input":
        w, dy, sizes = a["w"], a["dy"], list(case["shape"])
        return (lambda: sepconv.depthwise_conv2d_backprop_input(sizes, w, dy, s, padding, dilations=d)), np.asarray
    if kind == "dw_bwd_filter":
        x, dy, sizes = a["x"], a["dy"], list(a["w_shape"])
        return (lambda: sepconv.depthwise_conv2d_backprop_filter(x, sizes, dy, s, padding, dilations=d)), np.asarray
    if kind == "dw_bwd":
        x, w, dy = a["x"], a["w"], a["dy"]
        return (lambda: sepconv.depthwise_conv2d_gradients(x, w, dy, s, padding, dilations=d)), _flat_pair
    if kind == "sep":
        x, wd, wp = a["x"], a["wd"], a["wp"]
        return (lambda: sepconv.separable_conv2d(x, wd, wp, s, padding, dilations=d)), np.asarray
    x, w = a["x"], a["w"]
    return (lambda: sepconv.conv2d(x, w, s, padding, dilations=d)), np.asarray


# --------------------------------------------------------------------------- PyTorch


def _torch_setup() -> str:
    import torch

    torch.set_num_threads(THREADS)
    torch.set_num_interop_threads(1)
    torch.set_grad_enabled(False)
    return torch.__version__


def _torch_runner(case: dict, a: dict[str, np.ndarray], channels_last: bool) -> Runner:
    import torch
    import torch.nn.functional as F

    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def tensor(array: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(array))
        return t.contiguous(memory_format=fmt) if t.dim() == 4 else t

    kind, s, d = case["kind"], case["s"], case["d"]
    (top, bottom), (left, right) = case["pads"]
    n, h, w_, c = case["shape"]
    m = case["m"]
    if _symmetric(case):
        padding, pad = (top, left), None
    else:  # TF's asymmetric SAME: pad the input explicitly, then convolve without padding
        padding, pad = (0, 0), (left, right, top, bottom)

    def padded(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, pad) if pad else x

    def to_nhwc(t: torch.Tensor) -> np.ndarray:
        return t.permute(0, 2, 3, 1).contiguous().numpy()

    if kind in ("dw", "sep"):
        x = tensor(_nchw(a["x"]))
        wd = tensor(_dw_filter_oihw(a["w"] if kind == "dw" else a["wd"]))
        if kind == "dw":
            return (lambda: F.conv2d(padded(x), wd, None, s, padding, d, c)), to_nhwc
        wp = tensor(np.ascontiguousarray(a["wp"][0, 0].T[:, :, None, None]))
        return (lambda: F.conv2d(F.conv2d(padded(x), wd, None, s, padding, d, c), wp)), to_nhwc
    if kind == "conv":
        x, w = tensor(_nchw(a["x"])), tensor(_conv_filter_oihw(a["w"]))
        return (lambda: F.conv2d(padded(x), w, None, s, padding, d)), to_nhwc

    # Gradients through aten.convolution_backward, the op autograd itself calls.
    backward = torch.ops.aten.convolution_backward
    dy = tensor(_nchw(a["dy"]))
    ph, pw = (h, w_) if pad is None else (h + top + bottom, w_ + left + right)
    padded_input_shape = (n, c, ph, pw)
    if kind == "dw_bwd":  # both in one call, as autograd asks for them
        x, wd = tensor(_nchw(a["x"])), tensor(_dw_filter_oihw(a["w"]))

        def gradients() -> tuple[torch.Tensor, torch.Tensor]:
            dx, dw, _ = backward(dy, padded(x), wd, None, [s, s], list(padding), [d, d], False, [0, 0], c,
                                 [True, True, False])
            return (dx if pad is None else dx[:, :, top:top + h, left:left + w_]), dw

        return gradients, lambda pair: _flat_pair((to_nhwc(pair[0]), _oihw_to_dw_filter(pair[1].contiguous().numpy(),
                                                                                       c, m)))
    if kind == "dw_bwd_input":
        wd = tensor(_dw_filter_oihw(a["w"]))
        x_like = torch.empty(padded_input_shape).contiguous(memory_format=fmt)

        def grad_input() -> torch.Tensor:
            dx = backward(dy, x_like, wd, None, [s, s], list(padding), [d, d], False, [0, 0], c,
                          [True, False, False])[0]
            return dx if pad is None else dx[:, :, top:top + h, left:left + w_]

        return grad_input, to_nhwc
    x = tensor(_nchw(a["x"]))
    w_like = torch.empty((c * m, 1, case["k"], case["k"])).contiguous(memory_format=fmt)

    def grad_filter() -> torch.Tensor:
        return backward(dy, padded(x), w_like, None, [s, s], list(padding), [d, d], False, [0, 0], c,
                        [False, True, False])[1]

    return grad_filter, lambda t: _oihw_to_dw_filter(t.contiguous().numpy(), c, m)


# --------------------------------------------------------------------------- TensorFlow


def _tf_setup() -> str:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    return tf.__version__


def _tf_runner(case: dict, a: dict[str, np.ndarray]) -> Runner:
    import tensorflow as tf

    kind, s, d, padding = case["kind"], case["s"], case["d"], case["padding"]
    strides = [1, s, s, 1]
    if s > 1 and d > 1:
        raise Unsupported("TensorFlow's depthwise ops do not support stride > 1 with dilation > 1")
    if d > 1 and kind.startswith("dw_bwd"):
        raise Unsupported("TensorFlow's CPU depthwise gradient ops ignore dilations")
    t = {name: tf.constant(v) for name, v in a.items() if name != "w_shape"}
    raw = tf.raw_ops
    if kind == "dw" and d == 1:
        def op():
            return raw.DepthwiseConv2dNative(input=t["x"], filter=t["w"], strides=strides, padding=padding)
    elif kind == "dw":  # the raw op ignores dilations on CPU; tf.nn's wrapper handles them
        def op():
            return tf.nn.depthwise_conv2d(t["x"], t["w"], strides, padding, dilations=[d, d])
    elif kind == "dw_bwd_input":
        input_sizes = tf.constant(case["shape"], tf.int32)

        def op():
            return raw.DepthwiseConv2dNativeBackpropInput(input_sizes=input_sizes, filter=t["w"],
                                                          out_backprop=t["dy"], strides=strides, padding=padding)
    elif kind == "dw_bwd_filter":
        filter_sizes = tf.constant(a["w_shape"], tf.int32)

        def op():
            return raw.DepthwiseConv2dNativeBackpropFilter(input=t["x"], filter_sizes=filter_sizes,
                                                           out_backprop=t["dy"], strides=strides, padding=padding)
    elif kind == "sep":
        def op():
            return tf.nn.separable_conv2d(t["x"], t["wd"], t["wp"], strides, padding, dilations=[d, d])
    else:
        def op():
            return raw.Conv2D(input=t["x"], filter=t["w"], strides=strides, padding=padding, dilations=[1, d, d, 1])
    return op, _tf_to_numpy


def _tf_to_numpy(y) -> np.ndarray:
    return y.numpy()


# --------------------------------------------------------------------------- ONNX Runtime


def _ort_setup() -> str:
    import onnxruntime

    return onnxruntime.__version__


def _ort_runner(case: dict, a: dict[str, np.ndarray], nhwc: bool) -> Runner:
    """A one- or two-node ONNX graph (weights as initializers), NCHW; the NHWC variant wraps it in
    Transposes, which ONNX Runtime's layout optimizer folds into its NHWC kernels."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    kind, s, d, k = case["kind"], case["s"], case["d"], case["k"]
    (top, bottom), (left, right) = case["pads"]
    h, w_, c = case["shape"][1:]
    conv_attrs = dict(kernel_shape=[k, k], strides=[s, s], dilations=[d, d], pads=[top, left, bottom, right])
    if kind == "dw_bwd_filter":
        raise Unsupported("ONNX has no filter-gradient op in the inference runtime")
    x_nchw, y_nchw = ("x_nchw", "y_nchw") if nhwc else ("x", "y")
    inits, nodes = [], []
    if kind in ("dw", "sep"):
        inits.append(numpy_helper.from_array(_dw_filter_oihw(a["w"] if kind == "dw" else a["wd"]), "wd"))
        nodes.append(helper.make_node("Conv", [x_nchw, "wd"], ["dw_out" if kind == "sep" else y_nchw],
                                      group=c, **conv_attrs))
        if kind == "sep":
            inits.append(numpy_helper.from_array(np.ascontiguousarray(a["wp"][0, 0].T[:, :, None, None]), "wp"))
            nodes.append(helper.make_node("Conv", ["dw_out", "wp"], [y_nchw], kernel_shape=[1, 1]))
        feed = a["x"]
    elif kind == "conv":
        inits.append(numpy_helper.from_array(_conv_filter_oihw(a["w"]), "w"))
        nodes.append(helper.make_node("Conv", [x_nchw, "w"], [y_nchw], **conv_attrs))
        feed = a["x"]
    else:  # dw_bwd_input: the transposed grouped convolution
        oh, ow = case["out_hw"]
        eff_k = (k - 1) * d + 1
        output_padding = [h - (s * (oh - 1) + eff_k - top - bottom), w_ - (s * (ow - 1) + eff_k - left - right)]
        inits.append(numpy_helper.from_array(_dw_filter_oihw(a["w"]), "wd"))
        nodes.append(helper.make_node("ConvTranspose", [x_nchw, "wd"], [y_nchw], group=c,
                                      output_padding=output_padding, **conv_attrs))
        feed = a["dy"]
    if nhwc:
        nodes.insert(0, helper.make_node("Transpose", ["x"], [x_nchw], perm=[0, 3, 1, 2]))
        nodes.append(helper.make_node("Transpose", [y_nchw], ["y"], perm=[0, 2, 3, 1]))
    else:
        feed = _nchw(feed)
    if kind == "dw_bwd_input":
        out_nhwc = list(case["shape"])
    else:
        out_nhwc = [case["shape"][0], *case["out_hw"], case["out"] or c * case["m"]]
    out_shape = out_nhwc if nhwc else [out_nhwc[0], out_nhwc[3], *out_nhwc[1:3]]
    graph = helper.make_graph(nodes, "case", [helper.make_tensor_value_info("x", TensorProto.FLOAT, feed.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = np.ascontiguousarray(feed)
    inputs = {"x": feed}
    return (lambda: session.run(["y"], inputs)[0]), (lambda y: y if nhwc else _nhwc(y))


# --------------------------------------------------------------------------- JAX


def _jax_setup() -> str:
    import jax

    jax.config.update("jax_platforms", "cpu")
    return jax.__version__


def _jax_runner(case: dict, a: dict[str, np.ndarray]) -> Runner:
    import jax
    import jax.numpy as jnp
    from jax import lax

    kind, s, d = case["kind"], case["s"], case["d"]
    pads = [tuple(p) for p in case["pads"]]
    c, m = case["shape"][3], case["m"]
    numbers = ("NHWC", "HWIO", "NHWC")

    def conv(x, w, groups):
        return lax.conv_general_dilated(x, w, (s, s), pads, rhs_dilation=(d, d), dimension_numbers=numbers,
                                        feature_group_count=groups)

    def depthwise(x, w):  # w as HWIO with I = 1, O = C*M: channel k*M + q, as TF
        return conv(x, w, c)

    def dw_hwio(w: np.ndarray) -> np.ndarray:
        kh, kw = w.shape[:2]
        return np.ascontiguousarray(w.reshape(kh, kw, 1, c * m))

    if kind == "dw":
        f, args = jax.jit(depthwise), (a["x"], dw_hwio(a["w"]))
    elif kind == "sep":
        f = jax.jit(lambda x, wd, wp: lax.conv_general_dilated(depthwise(x, wd), wp, (1, 1), "VALID",
                                                               dimension_numbers=numbers))
        args = (a["x"], dw_hwio(a["wd"]), a["wp"])
    elif kind == "conv":
        f, args = jax.jit(lambda x, w: conv(x, w, 1)), (a["x"], a["w"])
    elif kind == "dw_bwd":  # both, from one jitted vector-Jacobian product (its forward pass is dead code)
        kh, kw = a["w_shape"][:2]
        f = jax.jit(lambda x, w, dy: jax.vjp(depthwise, x, w)[1](dy))
        device_args = [jax.device_put(v) for v in (a["x"], dw_hwio(a["w"]), a["dy"])]
        return (lambda: jax.block_until_ready(f(*device_args))), lambda pair: _flat_pair(
            (np.asarray(pair[0]), np.asarray(pair[1]).reshape(int(kh), int(kw), c, m)))
    elif kind == "dw_bwd_input":
        x_spec = jax.ShapeDtypeStruct(tuple(case["shape"]), jnp.float32)
        f = jax.jit(lambda w, dy: jax.linear_transpose(lambda x: depthwise(x, w), x_spec)(dy)[0])
        args = (dw_hwio(a["w"]), a["dy"])
    else:
        kh, kw = a["w_shape"][:2]
        w_spec = jax.ShapeDtypeStruct((int(kh), int(kw), 1, c * m), jnp.float32)
        f = jax.jit(lambda x, dy: jax.linear_transpose(lambda w: depthwise(x, w), w_spec)(dy)[0]
                    .reshape(int(kh), int(kw), c, m))
        args = (a["x"], a["dy"])
    device_args = [jax.device_put(v) for v in args]
    return (lambda: f(*device_args).block_until_ready()), np.asarray


def _sepconv_setup() -> str:
    """Import sepconv and its kernels (``sepconv.fast``, which the first op call would import otherwise): the first
    calls then show the kernels' cache loads, as the peers' show theirs."""
    import sepconv  # noqa: F401
    import sepconv.fast  # noqa: F401

    return importlib.metadata.version("sepconv")


# --------------------------------------------------------------------------- registry

SETUPS: dict[str, Callable[[], str]] = {
    "sepconv": _sepconv_setup,
    "torch_cl": _torch_setup,
    "torch_nchw": _torch_setup,
    "tf": _tf_setup,
    "ort_nchw": _ort_setup,
    "ort_nhwc": _ort_setup,
    "jax": _jax_setup,
}

RUNNERS: dict[str, Callable[[dict, dict[str, np.ndarray]], Runner]] = {
    "sepconv": _sepconv_runner,
    "torch_cl": lambda case, a: _torch_runner(case, a, channels_last=True),
    "torch_nchw": lambda case, a: _torch_runner(case, a, channels_last=False),
    "tf": _both_gradients(_tf_runner),
    "ort_nchw": _both_gradients(lambda case, a: _ort_runner(case, a, nhwc=False)),
    "ort_nhwc": _both_gradients(lambda case, a: _ort_runner(case, a, nhwc=True)),
    "jax": _jax_runner,
}

# The framework each peer needs installed (import names).
REQUIRES: dict[str, tuple[str, ...]] = {
    "sepconv": (),
    "torch_cl": ("torch",),
    "torch_nchw": ("torch",),
    "tf": ("tensorflow",),
    "ort_nchw": ("onnxruntime", "onnx"),
    "ort_nhwc": ("onnxruntime", "onnx"),
    "jax": ("jax",),
}

NHWC_FRAMEWORKS = ("sepconv", "torch_cl", "tf", "ort_nhwc", "jax")


# --------------------------------------------------------------------------- timing and probes


def time_calls(fn: Callable[[], Any], warmup: int, target_s: float, min_calls: int, max_calls: int) -> dict:
    """Call ``fn`` ``warmup`` times untimed, then time calls one by one for about ``target_s``;
    return the median, the 25th percentile and the minimum seconds per call."""
    for _ in range(warmup):
        fn()
    gc.collect()
    gc.disable()
    try:
        times = []
        deadline = time.perf_counter() + target_s
        while len(times) < max_calls and (len(times) < min_calls or time.perf_counter() < deadline):
            start = time.perf_counter_ns()
            fn()
            times.append(time.perf_counter_ns() - start)
    finally:
        gc.enable()
    seconds = np.asarray(times) * 1e-9
    return {"median_s": float(np.median(seconds)), "p25_s": float(np.percentile(seconds, 25)),
            "min_s": float(seconds.min()), "calls": len(times)}


def bandwidth_probe(footprint_bytes: int) -> dict:
    """Memory bandwidth (GB/s, STREAM triad convention) at ``footprint_bytes``, by :mod:`sepconv.roofline`."""
    from .roofline import measure_bandwidth

    (gbps,), threads = measure_bandwidth((footprint_bytes,), verbose=False)
    return {"footprint_bytes": footprint_bytes, "gbps": gbps, "threads": threads}


def gemm_probe(size: int = 2048) -> dict:
    """fp32 GEMM rate of NumPy's BLAS (GFLOP/s) on ``size``^3, by :mod:`sepconv.roofline`."""
    from .roofline import measure_gemm_gflops

    return {"size": size, "gflops": measure_gemm_gflops(size, verbose=False)}


def fma_probe() -> dict:
    """fp32 multiply-add peak (GFLOP/s: independent vector chains on every thread), by :mod:`sepconv.roofline`."""
    from .roofline import measure_fma_gflops

    return {"gflops": measure_fma_gflops(verbose=False)}


def overhead_probe() -> dict:
    """Python-level cost of a sepconv call on a tiny depthwise input (1x4x4x8, 3x3, SAME): the public
    call, the implementation function alone (geometry precomputed), the output allocation, and a
    jitted call with the same arrays that does almost nothing (the kernel's own compute on 128
    outputs x 9 taps is a few nanoseconds, so this is "the kernel alone")."""
    import sepconv
    from sepconv import fast
    from sepconv._touch_kernel import touch_kernel
    from sepconv.geometry import depthwise_geometry

    x = np.random.default_rng(0).standard_normal((1, 4, 4, 8), dtype=np.float32)
    w = np.random.default_rng(1).standard_normal((3, 3, 8, 1), dtype=np.float32)
    out = np.empty((1, 4, 4, 8), np.float32)
    g = depthwise_geometry("depthwise_conv2d", x.shape, w.shape, 1, "SAME")
    calls = {
        "public_call_us": lambda: sepconv.depthwise_conv2d(x, w, 1, "SAME"),
        "implementation_call_us": lambda: fast.depthwise_conv2d(x, w, g),
        "output_allocation_us": lambda: np.empty((1, 4, 4, 8), np.float32),
        "kernel_call_floor_us": lambda: touch_kernel(x, w, out, 1, 1),
    }
    result = {}
    for name, fn in calls.items():
        medians = [time_calls(fn, 100, 0.02, 200, 20000)["median_s"] for _ in range(5)]
        result[name] = min(medians) * 1e6
    result["api_overhead_us"] = result["public_call_us"] - result["implementation_call_us"]
    return result


# --------------------------------------------------------------------------- the worker loop


class Worker:
    """Holds one framework's callables, keyed by case name, and answers the driver's requests."""

    def __init__(self, framework: str) -> None:
        self.framework = framework
        start = time.perf_counter()
        self.version = SETUPS[framework]()
        self.import_s = time.perf_counter() - start
        self.calls: dict[str, Callable[[], Any]] = {}
        self.estimates: dict[str, float] = {}

    def handle(self, request: dict) -> dict:
        cmd = request["cmd"]
        if cmd == "info":
            cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
            return {"version": self.version, "import_s": self.import_s, "pid": os.getpid(), "cpus": cpus}
        if cmd == "setup":
            return self.setup(request)
        if cmd == "time":
            return self.time(request)
        if cmd == "bandwidth":
            return bandwidth_probe(request["footprint_bytes"])
        if cmd == "gemm":
            return gemm_probe(request["size"])
        if cmd == "fma":
            return fma_probe()
        if cmd == "overhead":
            return overhead_probe()
        raise ValueError(f"unknown request {cmd!r}")

    def setup(self, request: dict) -> dict:
        case = request["case"]
        with np.load(request["inputs"]) as data:
            arrays = {name: data[name] for name in data.files}
        try:
            fn, to_numpy = RUNNERS[self.framework](case, arrays)
        except Unsupported as e:
            return {"unsupported": str(e)}
        start = time.perf_counter()
        y = fn()
        first = time.perf_counter() - start
        start = time.perf_counter()
        y = fn()
        second = time.perf_counter() - start
        np.save(request["output"], np.asarray(to_numpy(y), np.float32))
        self.calls[case["name"]] = fn
        self.estimates[case["name"]] = second
        return {"first_call_s": first, "second_call_s": second}

    def time(self, request: dict) -> dict:
        """Time a case; a call much slower than the round's budget gets fewer warm-up and timed calls
        (a framework 100 times slower than the fastest needs no precision, and must not stall the run)."""
        name, target = request["case"], request["target_s"]
        estimate = self.estimates[name]
        warmup, min_calls = request["warmup"], request["min_calls"]
        if estimate > SLOW_CALL_S:
            warmup, min_calls = 0, 1
        elif estimate * (warmup + min_calls) > target:
            warmup = 1
        result = time_calls(self.calls[name], warmup, target, min_calls, request["max_calls"])
        self.estimates[name] = result["min_s"]  # not inflated by interruptions
        return result


def main(argv: list[str] | None = None) -> int:
    """Run a worker for the framework named in ``argv[0]`` until stdin closes or ``quit``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in FRAMEWORKS:
        print(f"usage: python -m sepconv._bench_peers {{{','.join(FRAMEWORKS)}}}", file=sys.stderr)
        return 2
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    worker = Worker(argv[0])
    protocol.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        if request["cmd"] == "quit":
            break
        try:
            answer = worker.handle(request)
        except Exception as e:  # reported to the driver, which prints it loudly
            answer = {"error": f"{type(e).__name__}: {e}"}
        protocol.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
