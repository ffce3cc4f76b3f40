"""``sepconv explain``: conv2d vs depthwise vs separable side by side, or a model's per-layer table.

For one input shape and kernel it prints, for ``conv2d``, ``depthwise_conv2d``, the
pointwise (1x1) conv that follows it and ``separable_conv2d`` (depthwise then pointwise):
the output shape, parameters, multiply-adds, FLOPs, bytes, arithmetic intensity and the
roofline bound on this machine, and with ``--measure`` the measured time of sepconv's own
ops.  ``--model`` prints the same per layer for MobileNetV1/V2 or Xception, with totals
against the published figures.  Costs come from :mod:`sepconv.cost`, the roofline from
:mod:`sepconv.roofline`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cost import Cost, op_cost
from .models import MODELS

_SEED_FORMULA = "2 x bs x ic x oh x ow x (kh x kw + oc)"


class _UsageError(ValueError):
    """A bad command-line value: reported in one line, exit code 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``sepconv explain``'s options on ``parser``.

    Examples
    --------
    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> add_arguments(p)
    >>> p.parse_args(["--input", "1x14x14x32", "--out", "64"]).kernel
    '3'
    """
    parser.epilog = ("examples:  sepconv explain --input 1x14x14x32 --kernel 3 --out 64\n"
                     "           sepconv explain --input 1x14x14x32 --kernel 3 --out 64 --multiplier 64 --measure\n"
                     "           sepconv explain --model mobilenet_v2")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    one = parser.add_argument_group("one layer")
    one.add_argument("--input", metavar="NxHxWxC", help="input shape, e.g. 1x14x14x32 (NxCxHxW with --data-format NCHW)")
    one.add_argument("--kernel", metavar="K|KHxKW", default="3", help="filter size (default 3)")
    one.add_argument("--out", metavar="C_OUT", help="output channels of conv2d and separable (default: input channels)")
    one.add_argument("--stride", metavar="S|SHxSW", default="1", help="stride (default 1)")
    one.add_argument("--padding", default="SAME", metavar="SAME|VALID|T,B,L,R",
                     help="SAME (default), VALID, or explicit pads top,bottom,left,right")
    one.add_argument("--dilation", metavar="D|DHxDW", default="1", help="dilation rate (default 1)")
    one.add_argument("--multiplier", metavar="M", default="1", help="depthwise channel multiplier (default 1)")
    one.add_argument("--data-format", default="NHWC", metavar="NHWC|NCHW", help="layout of --input (default NHWC)")
    model = parser.add_argument_group("a model")
    model.add_argument("--model", metavar="NAME", help=f"per-layer table of {', '.join(MODELS)}")
    model.add_argument("--batch", metavar="N", default="1", help="batch size of --model (default 1)")
    out = parser.add_argument_group("output")
    out.add_argument("--dtype", default="float32", help="element type for bytes and --measure (default float32)")
    out.add_argument("--measure", action="store_true",
                     help="also time sepconv's own ops on random data (median after a warm-up)")
    out.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    out.add_argument("--plot", metavar="FILE.png", help="draw the roofline with each op as a point (needs matplotlib)")
    out.add_argument("--refresh-roofline", action="store_true",
                     help="measure this machine's bandwidth and peak again instead of using the cached figures")


# --------------------------------------------------------------------------- argument parsing


def _positive_ints(text: str, name: str, count: tuple[int, ...]) -> tuple[int, ...]:
    parts = str(text).lower().replace(" ", "").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) not in count or any(v < 1 for v in values):
        forms = " or ".join({1: "N", 2: "HxW", 4: "NxHxWxC"}[c] for c in count)
        raise _UsageError(f"--{name} must be {forms} with positive integers, got {text!r}")
    return values


def _pair(text: str, name: str) -> tuple[int, int]:
    values = _positive_ints(text, name, (1, 2))
    return (values[0], values[-1])


def _input_shape(text: str, data_format: str) -> tuple[int, ...]:
    layout = "NxCxHxW" if data_format == "NCHW" else "NxHxWxC"
    parts = str(text).lower().replace(" ", "").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 4 or any(d < 0 for d in shape):
        raise _UsageError(f"--input must be a shape {layout} of 4 non-negative integers (e.g. 1x14x14x32), got {text!r}")
    return shape


def _padding(text: str, data_format: str) -> Any:
    """``SAME``/``VALID``, or ``T,B,L,R`` as TensorFlow's 4 [before, after] pairs for the layout."""
    if "," not in text:
        return text.upper()
    try:
        top, bottom, left, right = (int(v) for v in text.split(","))
    except ValueError:
        raise _UsageError(f"--padding must be SAME, VALID or top,bottom,left,right, got {text!r}") from None
    spatial = [[top, bottom], [left, right]]
    return [[0, 0], [0, 0], *spatial] if data_format == "NCHW" else [[0, 0], *spatial, [0, 0]]


def _dtype(text: str) -> np.dtype:
    try:
        dtype = np.dtype(text)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind != "f":
        raise _UsageError(f"--dtype must be a float type (float16, float32, float64), got {text!r}")
    return dtype


# --------------------------------------------------------------------------- rows: one op call each


@dataclass
class _Row:
    """One op call: what it is, its cost, its bound, and (with --measure) its measured time."""

    name: str
    op: str
    input_shape: tuple[int, ...]
    filter_text: str
    cost: Cost
    call: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    bound: Any = None
    bound_dram: Any = None
    measured_seconds: float | None = None
    measured_min_seconds: float | None = None
    measured_calls: int = 0


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def _fmt_int(n: float) -> str:
    return f"{int(n):,}"


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} GB"


def _op_rows(args: argparse.Namespace, dtype: np.dtype) -> tuple[list[_Row], dict[str, Any]]:
    data_format = str(args.data_format).upper()
    shape = _input_shape(args.input, data_format)
    kh, kw = _pair(args.kernel, "kernel")
    strides = list(_pair(args.stride, "stride"))
    dilations = list(_pair(args.dilation, "dilation"))
    (multiplier,) = _positive_ints(args.multiplier, "multiplier", (1,))
    padding = _padding(args.padding, data_format)
    channels = shape[1] if data_format == "NCHW" else shape[3]
    (out,) = _positive_ints(args.out, "out", (1,)) if args.out is not None else (channels,)
    common = {"strides": strides, "padding": padding, "data_format": data_format, "dilations": dilations}

    conv_filter = (kh, kw, channels, out)
    dw_filter = (kh, kw, channels, multiplier)
    pw_filter = (1, 1, channels * multiplier, out)
    conv = op_cost("conv2d", shape, conv_filter, dtype=dtype, **common)
    depthwise = op_cost("depthwise_conv2d", shape, dw_filter, dtype=dtype, **common)
    pointwise_call = {"strides": 1, "padding": "VALID", "data_format": data_format, "dilations": None}
    pointwise = op_cost("pointwise", depthwise.output_shape, pw_filter, dtype=dtype, **pointwise_call)
    separable = op_cost("separable_conv2d", shape, dw_filter, pointwise_shape=pw_filter, dtype=dtype, **common)
    rows = [
        _Row("conv2d", "conv2d", shape, _fmt_shape(conv_filter), conv, {**common, "filter_shape": conv_filter}),
        _Row("depthwise", "depthwise_conv2d", shape, _fmt_shape(dw_filter), depthwise,
             {**common, "filter_shape": dw_filter}),
        _Row("pointwise", "pointwise", depthwise.output_shape, _fmt_shape(pw_filter), pointwise,
             {**pointwise_call, "filter_shape": pw_filter}),
        _Row("separable", "separable_conv2d", shape, f"{_fmt_shape(dw_filter)} + {_fmt_shape(pw_filter)}", separable,
             {**common, "filter_shape": dw_filter, "pointwise_shape": pw_filter}),
    ]
    g = conv.geometry
    arguments = {"input": list(shape), "kernel": [kh, kw], "out": out, "strides": strides, "padding": padding,
                 "pads": [[g.pad_top, g.pad_bottom], [g.pad_left, g.pad_right]], "dilations": dilations,
                 "multiplier": multiplier, "data_format": data_format, "dtype": dtype.name}
    return rows, arguments


def _model_rows(args: argparse.Namespace, dtype: np.dtype) -> list[_Row]:
    from .models import model_layers

    (batch,) = _positive_ints(args.batch, "batch", (1,))
    try:
        layers = model_layers(args.model, batch)
    except ValueError as e:
        raise _UsageError(str(e)) from None
    rows = []
    for layer in layers:
        cost = layer.cost(dtype.name)
        filter_text = _fmt_shape(layer.filter_shape)
        if layer.pointwise_shape is not None:
            filter_text += " + " + _fmt_shape(layer.pointwise_shape)
        call = {"strides": layer.strides, "padding": layer.padding, "data_format": "NHWC", "dilations": None,
                "filter_shape": layer.filter_shape, "pointwise_shape": layer.pointwise_shape}
        rows.append(_Row(layer.name, layer.op, layer.input_shape, filter_text, cost, call,
                         {"bias_params": layer.bias_params, "batch_norm_params": layer.batch_norm_params}))
    return rows


# --------------------------------------------------------------------------- measuring


def _op_function(row: _Row, dtype: np.dtype):
    """A zero-argument callable running sepconv's public op for ``row`` on random data."""
    import sepconv

    rng = np.random.default_rng(0)

    def array(shape):
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)

    c = row.call
    x, w = array(row.input_shape), array(c["filter_shape"])
    kwargs = {"data_format": c["data_format"], "dilations": c["dilations"]}
    if row.op == "separable_conv2d":
        wp = array(c["pointwise_shape"])
        return lambda: sepconv.separable_conv2d(x, w, wp, c["strides"], c["padding"], **kwargs)
    if row.op == "depthwise_conv2d":
        return lambda: sepconv.depthwise_conv2d(x, w, c["strides"], c["padding"], **kwargs)
    return lambda: sepconv.conv2d(x, w, c["strides"], c["padding"], **kwargs)


# Pause before measuring an op that follows one that used BLAS (see _measure).
SETTLE_SECONDS = 0.3


def _median_seconds(fn, min_calls: int = 5, budget_seconds: float = 0.3,
                    max_calls: int = 100) -> tuple[float, float, int]:
    """Median and fastest time of ``fn`` after warm-up calls (the first compiles or loads kernels), and the count."""
    start = time.perf_counter()
    fn()
    if time.perf_counter() - start > 1.0:  # slow op: one warm-up is enough, and a few calls
        min_calls = 3
    else:
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or (time.perf_counter() - start < budget_seconds and len(times) < max_calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), len(times)


def _measure(rows: list[_Row], dtype: np.dtype, budget_seconds: float) -> str:
    implementation = os.environ.get("SEPCONV_IMPL", "fast")  # how sepconv.api picks it in this process
    progress = sys.stderr.isatty()
    previous_used_blas = True  # the roofline probe, or whatever ran before
    for i, row in enumerate(rows):
        if progress:
            print(f"\rmeasuring {row.name} ({i + 1}/{len(rows)})...\033[K", file=sys.stderr, end="", flush=True)
        # Let BLAS's threads go idle first: they spin for ~0.1-0.2 s after a GEMM, and measured right
        # after conv2d a depthwise call took 394 us instead of 239.  Only depthwise does no GEMM.
        if previous_used_blas:
            time.sleep(SETTLE_SECONDS)
        previous_used_blas = row.op != "depthwise_conv2d"
        row.measured_seconds, row.measured_min_seconds, row.measured_calls = _median_seconds(
            _op_function(row, dtype), budget_seconds=budget_seconds)
    if progress:
        print("\r\033[K", file=sys.stderr, end="", flush=True)
    return implementation


# --------------------------------------------------------------------------- reports


def _load_note() -> str:
    if not hasattr(os, "getloadavg"):
        return ""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load <= cores / 2:
        return ""
    return (f" The machine is busy (load average {load:.1f} on {cores} cores): other processes compete for the "
            f"cores, so measured times are noisy; compare ratios, or re-run when it is quieter.")


def _fraction(row: _Row) -> float | None:
    """Bound over measured time: 1.0 runs at the roofline."""
    if row.measured_seconds is None or row.measured_seconds <= 0:
        return None
    return row.bound.seconds / row.measured_seconds


def _row_dict(row: _Row) -> dict[str, Any]:
    b = row.bound
    data = {"name": row.name, "input_shape": list(row.input_shape), "filter": row.filter_text,
            **row.cost.as_dict(), **row.extra,
            "bound_seconds": b.seconds, "bound_compute_seconds": b.compute_seconds,
            "bound_memory_seconds": b.memory_seconds, "bound_by": b.limiter, "bandwidth_gbs": b.bandwidth_gbs,
            "bound_dram_seconds": row.bound_dram.seconds, "bound_dram_by": row.bound_dram.limiter}
    if row.measured_seconds is not None:
        data["measured_seconds"] = row.measured_seconds
        data["measured_min_seconds"] = row.measured_min_seconds
        data["measured_calls"] = row.measured_calls
        data["fraction_of_bound"] = _fraction(row)
        data["measured_gflops"] = row.cost.flops / row.measured_seconds / 1e9 if row.measured_seconds else None
    return data


def _table(header: list[str], body: list[list[str]], align_left: int = 1) -> str:
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = []
    for r in [header, *body]:
        cells = [c.ljust(w) if i < align_left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _roofline_line(roofline) -> str:
    from .roofline import _human_bytes

    curve = ", ".join(f"{_human_bytes(f)}: {b:.0f}" for f, b in zip(roofline.footprints_bytes, roofline.bandwidths_gbs,
                                                                    strict=True))
    gemm = f" (NumPy's GEMM {roofline.gemm_gflops:.0f})" if roofline.gemm_gflops else ""
    return (f"machine: {roofline.machine}; fp32 peak {roofline.peak_gflops:.0f} GFLOP/s{gemm}; bandwidth (GB/s) by "
            f"footprint {curve}; ridge point {roofline.ridge_intensity:.1f} FLOP/byte (peak / DRAM bandwidth). "
            f"Measured {roofline.measured_at} at load average {roofline.load_average:.1f}; "
            f"re-measure with --refresh-roofline.")


def _seed_check(rows: list[_Row], arguments: dict[str, Any]) -> dict[str, Any]:
    separable = rows[3].cost
    g = separable.geometry
    oc = separable.output_shape[1 if g.data_format == "NCHW" else 3]
    seed = 2 * g.batch * g.in_c * g.out_h * g.out_w * (g.kh * g.kw + oc)
    general = 2 * g.batch * g.in_c * g.multiplier * g.out_h * g.out_w * (g.kh * g.kw + oc)
    return {"formula": _SEED_FORMULA, "flops": seed, "separable_flops": separable.flops,
            "applies": g.multiplier == 1, "agrees": seed == separable.flops,
            "general_formula": "2 x bs x ic x M x oh x ow x (kh x kw + oc)", "general_flops": general,
            "terms": {"bs": g.batch, "ic": g.in_c, "oh": g.out_h, "ow": g.out_w, "kh": g.kh, "kw": g.kw, "oc": oc,
                      "M": g.multiplier}}


def _why_memory_bound(rows: list[_Row], roofline) -> list[str]:
    conv, depthwise, _, separable = rows
    g = depthwise.cost.geometry
    out_elems = math.prod(depthwise.cost.output_shape)
    if out_elems == 0 or not separable.cost.flops:
        return []
    per_out_bytes = depthwise.cost.bytes_total / out_elems
    conv_out_c = conv.cost.output_shape[1 if g.data_format == "NCHW" else -1]
    ridge = roofline.ridge_intensity
    below = depthwise.cost.intensity < ridge
    text = [
        f"{'Why depthwise is memory-bound' if below else 'Depthwise and the roofline'}: it does kh x kw = "
        f"{g.kh * g.kw} multiply-adds ({2 * g.kh * g.kw} FLOPs) per output element but must move at least "
        f"{per_out_bytes:.1f} bytes per output element (its input and output, once each): an intensity of "
        f"{depthwise.cost.intensity:.2f} FLOP/byte, {'below' if below else 'above'} this machine's ridge point of "
        f"{ridge:.1f} FLOP/byte ({roofline.peak_gflops:.0f} GFLOP/s peak / {roofline.dram_bandwidth_gbs:.0f} GB/s "
        f"DRAM), while conv2d reuses each input value for all {conv_out_c} output channels "
        f"({conv.cost.intensity:.1f} FLOP/byte).",
    ]
    pointwise = rows[2]
    flops_share = depthwise.cost.flops / (depthwise.cost.flops + pointwise.cost.flops)
    time_share = depthwise.bound_dram.seconds / (depthwise.bound_dram.seconds + pointwise.bound_dram.seconds)
    text.append(f"Below the ridge an op's time is set by the bytes it moves, not by its FLOPs: in separable, depthwise "
                f"is {flops_share:.0%} of the FLOPs but {time_share:.0%} of the time bound (tensors from DRAM, "
                f"depthwise and pointwise as two ops).")
    flops_ratio = conv.cost.flops / separable.cost.flops
    if flops_ratio > 1:
        sentence = (f"Separable does {flops_ratio:.1f}x fewer FLOPs than conv2d; its bound is "
                    f"{conv.bound_dram.seconds / separable.bound_dram.seconds:.1f}x lower")
        if conv.measured_seconds and separable.measured_seconds:
            sentence += f", and measured it is {conv.measured_seconds / separable.measured_seconds:.2g}x faster"
        text.append(sentence + ".")
    footprint = depthwise.cost.bytes_total
    bandwidth = roofline.bandwidth_at(footprint)
    if bandwidth > 1.5 * roofline.dram_bandwidth_gbs:
        text.append(f"At this size the tensors ({_fmt_bytes(footprint)} for depthwise) stay in cache between calls, "
                    f"where bandwidth is ~{bandwidth:.0f} GB/s and the ridge drops to "
                    f"{roofline.peak_gflops / bandwidth:.1f} FLOP/byte: 'roofline bound' uses the bandwidth measured "
                    f"at each op's footprint, 'bound from DRAM' the DRAM bandwidth.")
    return text


def _times(reference: float, other: float, noun: str) -> str:
    """``"7.89x fewer parameters"`` or ``"8.11x more parameters"``."""
    return f"{reference / other:.2f}x fewer {noun}" if reference >= other else f"{other / reference:.2f}x more {noun}"


def _ops_text(rows: list[_Row], arguments: dict[str, Any], roofline, seed: dict[str, Any],
              implementation: str | None) -> str:
    a = arguments
    pads = a["pads"]
    lines = [
        f"input {_fmt_shape(a['input'])} ({a['data_format']}, {a['dtype']}), kernel {a['kernel'][0]}x{a['kernel'][1]}, "
        f"stride {a['strides'][0]}x{a['strides'][1]}, dilation {a['dilations'][0]}x{a['dilations'][1]}, padding "
        f"{a['padding'] if isinstance(a['padding'], str) else 'explicit'} (top/bottom {pads[0][0]}/{pads[0][1]}, "
        f"left/right {pads[1][0]}/{pads[1][1]}), out {a['out']}, multiplier {a['multiplier']}",
        "conv2d: dense; depthwise: one filter per input channel (x multiplier); pointwise: the 1x1 conv after it; "
        "separable = depthwise + pointwise",
        "",
    ]
    names = [r.name for r in rows]
    body = [
        ["filter (HWIO)", *[r.filter_text for r in rows]],
        ["output shape", *[_fmt_shape(r.cost.output_shape) for r in rows]],
        ["parameters", *[_fmt_int(r.cost.params) for r in rows]],
        ["multiply-adds", *[_fmt_int(r.cost.macs) for r in rows]],
        ["  on real input", *[_fmt_int(r.cost.macs_valid) for r in rows]],
        ["FLOPs (2 x MACs)", *[_fmt_int(r.cost.flops) for r in rows]],
        ["bytes read", *[_fmt_int(r.cost.bytes_read) for r in rows]],
        ["bytes written", *[_fmt_int(r.cost.bytes_written) for r in rows]],
        ["bytes total (min)", *[_fmt_int(r.cost.bytes_total) for r in rows]],
        ["  + if unfused", *[_fmt_int(r.cost.bytes_intermediate_unfused) if r.cost.bytes_intermediate_unfused
                             else "-" for r in rows]],
        ["FLOP/byte", *[f"{r.cost.intensity:.2f}" for r in rows]],
        ["roofline bound", *[_fmt_seconds(r.bound.seconds) for r in rows]],
        ["  bound by", *[r.bound.limiter for r in rows]],
        ["bound from DRAM", *[_fmt_seconds(r.bound_dram.seconds) for r in rows]],
        ["  bound by", *[r.bound_dram.limiter for r in rows]],
    ]
    if implementation is not None:
        body += [
            [f"measured ({implementation})", *[_fmt_seconds(r.measured_seconds) for r in rows]],
            ["  fraction of bound", *[f"{_fraction(r):.2g}" if _fraction(r) is not None else "-" for r in rows]],
            ["  GFLOP/s", *[f"{r.cost.flops / r.measured_seconds / 1e9:.1f}" if r.measured_seconds else "-"
                            for r in rows]],
        ]
    lines.append(_table(["", *names], body))
    conv, _, _, separable = rows
    lines.append("")
    if separable.cost.params and separable.cost.macs:
        lines.append(f"separable vs conv2d: {_times(conv.cost.params, separable.cost.params, 'parameters')}, "
                     f"{_times(conv.cost.macs, separable.cost.macs, 'multiply-adds')}.")
    t = seed["terms"]
    check = "agrees" if seed["agrees"] else "differs"
    if seed["applies"]:
        lines.append(f"seed formula {_SEED_FORMULA} = 2 x {t['bs']} x {t['ic']} x {t['oh']} x {t['ow']} x "
                     f"({t['kh']} x {t['kw']} + {t['oc']}) = {_fmt_int(seed['flops'])} FLOPs: {check} with separable "
                     f"({_fmt_int(seed['separable_flops'])}).")
    else:
        lines.append(f"seed formula {_SEED_FORMULA} assumes multiplier 1 ({_fmt_int(seed['flops'])} FLOPs); with "
                     f"multiplier {t['M']}: {seed['general_formula']} = {_fmt_int(seed['general_flops'])} = separable "
                     f"({_fmt_int(seed['separable_flops'])}).")
    lines.append("multiply-adds count every filter tap, also taps on the zero padding (TensorFlow's convention); "
                 "'on real input' skips those. Bytes: each tensor read or written once; separable's minimum assumes "
                 "fusion, '+ if unfused' is the depthwise result written and read back.")
    lines.append("")
    lines.extend(_why_memory_bound(rows, roofline))
    lines.append("")
    lines.append(_roofline_line(roofline))
    if implementation is not None:
        lines.append("measured = median of repeated calls of sepconv's public op after warm-up calls; fraction of "
                     "bound = roofline bound / measured (1.0 = at the roofline)." + _load_note())
    return "\n".join(lines)


def _model_text(rows: list[_Row], totals, roofline, implementation: str | None) -> str:
    header = ["#", "layer", "op", "input", "filter", "s", "output", "params", "MACs", "bytes", "FLOP/B", "bound", "by"]
    if implementation is not None:
        header += ["measured", "frac"]
    body = []
    for i, r in enumerate(rows, start=1):
        line = [str(i), r.name, r.op, _fmt_shape(r.input_shape[1:]), r.filter_text, str(r.call["strides"]),
                _fmt_shape(r.cost.output_shape[1:]), _fmt_int(r.cost.params + r.extra["bias_params"]),
                _fmt_int(r.cost.macs), _fmt_int(r.cost.bytes_total), f"{r.cost.intensity:.1f}",
                _fmt_seconds(r.bound.seconds), r.bound.limiter]
        if implementation is not None:
            line += [_fmt_seconds(r.measured_seconds), f"{_fraction(r):.2g}" if _fraction(r) is not None else "-"]
        body.append(line)
    bound_total = sum(r.bound.seconds for r in rows)
    lines = [f"{totals.name}: {totals.layers} layers, batch {rows[0].input_shape[0]}, NHWC, {rows[0].cost.dtype}",
             "", _table(header, body, align_left=5), ""]
    lines.append(f"total multiply-adds   {_fmt_int(totals.macs):>16}   published {totals.published_macs / 1e6:,.0f}M "
                 f"({totals.macs / totals.published_macs - 1:+.2%})")
    as_published = "" if totals.params_as_published == totals.params else (
        f" with batch norm's gamma and beta {_fmt_int(totals.params_as_published)}")
    lines.append(f"total parameters      {_fmt_int(totals.params):>16}   published {totals.published_params / 1e6:,.2f}M "
                 f"({as_published.strip() + ': ' if as_published else ''}"
                 f"{totals.params_as_published / totals.published_params - 1:+.2%})  [weights {_fmt_int(totals.weights)} "
                 f"+ classifier bias {_fmt_int(totals.biases)}]")
    lines.append(f"batch-norm parameters {_fmt_int(totals.batch_norm_params):>16}   (not in the total; gamma, beta, "
                 f"mean, variance per channel; with gamma and beta: {_fmt_int(totals.params + totals.batch_norm_params // 2)})")
    lines.append(f"FLOPs (2 x MACs)      {_fmt_int(totals.flops):>16}")
    lines.append(f"roofline bound        {_fmt_seconds(bound_total):>16}   (sum over layers, each at its own footprint)")
    if implementation is not None:
        measured = sum(r.measured_seconds or 0.0 for r in rows)
        lines.append(f"measured ({implementation}) {_fmt_seconds(measured):>16}   (sum of per-layer medians; fraction of "
                     f"bound {bound_total / measured:.2g})" + _load_note())
    lines.append("")
    lines.append(f"source: {totals.source}.")
    lines.append("counted: every convolution and the 1000-class fully connected classifier (as a 1x1 conv), padded "
                 "taps included; parameters = weights + the classifier's bias (convolutions have no bias: batch norm "
                 "follows each, folded at inference). Not counted: batch norm, activations, pooling, residual adds.")
    if totals.name == "mobilenet_v2":
        lines.append("note: the paper's 3.4M is 3.47M truncated (TF-Slim's table for this model says 3.47M).")
    if totals.name == "xception":
        lines.append("note: the paper's 22,855,952 parameters include batch norm's gamma and beta (see above); its "
                     "separable convs are one row each (depthwise 3x3 then pointwise, batch norm after pointwise).")
    lines.append("")
    lines.append(_roofline_line(roofline))
    return "\n".join(lines)


# --------------------------------------------------------------------------- plot


def _plot(path: str, rows: list[_Row], roofline, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise _UsageError("--plot needs matplotlib: pip install 'sepconv[plot]' (or pip install matplotlib)") from None
    intensities = [r.cost.intensity for r in rows if r.cost.intensity > 0]
    if not intensities:
        raise _UsageError("--plot: nothing to draw (every op has zero cost)")
    lo, hi = min(min(intensities) / 4, roofline.ridge_intensity / 10), max(max(intensities) * 4,
                                                                          roofline.ridge_intensity * 10)
    x = np.geomspace(lo, hi, 200)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.loglog(x, np.minimum(roofline.peak_gflops, roofline.dram_bandwidth_gbs * x), "k-",
              label=f"DRAM roof ({roofline.dram_bandwidth_gbs:.0f} GB/s, peak {roofline.peak_gflops:.0f} GFLOP/s)")
    cache_bw = max(roofline.bandwidths_gbs)
    ax.loglog(x, np.minimum(roofline.peak_gflops, cache_bw * x), "k:", label=f"in-cache roof ({cache_bw:.0f} GB/s)")
    ax.axvline(roofline.ridge_intensity, color="0.7", lw=0.8)
    colors = {"conv2d": "C0", "depthwise_conv2d": "C1", "pointwise": "C2", "separable_conv2d": "C3"}
    seen: set[str] = set()
    for r in rows:
        if r.cost.intensity <= 0 or r.bound.seconds <= 0:
            continue
        label = r.op if r.op not in seen else None
        seen.add(r.op)
        ax.plot(r.cost.intensity, r.cost.flops / r.bound.seconds / 1e9, "o", color=colors.get(r.op, "C4"),
                label=label)
        if r.measured_seconds:
            ax.plot(r.cost.intensity, r.cost.flops / r.measured_seconds / 1e9, "x", color=colors.get(r.op, "C4"))
        if len(rows) <= 6:
            ax.annotate(r.name, (r.cost.intensity, r.cost.flops / r.bound.seconds / 1e9), textcoords="offset points",
                        xytext=(5, -12))
    if any(r.measured_seconds for r in rows):
        ax.plot([], [], "kx", label="measured (sepconv)")
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("GFLOP/s (o: roofline bound at the op's footprint)")
    ax.set_title(title)
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- entry point


def _refresh_only(as_json: bool) -> int:
    """``sepconv explain --refresh-roofline`` alone: measure the machine again and show its figures."""
    from .roofline import machine_roofline

    roofline = machine_roofline(refresh=True)
    print(json.dumps({"roofline": roofline.as_dict()}, indent=2) if as_json else _roofline_line(roofline))
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``sepconv explain``; returns the exit code (2 for bad arguments, with a one-line message).

    Examples
    --------
    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> add_arguments(p)
    >>> run(p.parse_args(["--input", "1x14x14", "--out", "64"]))
    2
    """
    try:
        dtype = _dtype(args.dtype)
        if args.model is not None and args.input is not None:
            raise _UsageError("give either --input (one layer) or --model, not both")
        if args.model is None and args.input is None and args.refresh_roofline:
            return _refresh_only(args.json)
        if args.model is None and args.input is None:
            raise _UsageError("give --input NxHxWxC (with --kernel and --out) or --model "
                              f"{{{','.join(MODELS)}}}")
        if args.model is not None:
            rows, arguments = _model_rows(args, dtype), {"model": args.model, "batch": int(args.batch),
                                                        "dtype": dtype.name}
        else:
            rows, arguments = _op_rows(args, dtype)
        if args.plot is not None and not str(args.plot).lower().endswith((".png", ".svg", ".pdf")):
            raise _UsageError(f"--plot must name a .png, .svg or .pdf file, got {args.plot!r}")
    except (ValueError, TypeError) as e:  # _UsageError, and the ops' own argument errors from the geometry
        print(f"sepconv explain: error: {e}", file=sys.stderr)
        return 2

    from .roofline import machine_roofline

    roofline = machine_roofline(refresh=args.refresh_roofline)
    for row in rows:
        row.bound = roofline.bound(row.cost)
        row.bound_dram = roofline.bound(row.cost, roofline.dram_bandwidth_gbs)
    implementation = _measure(rows, dtype, 0.3 if args.model is None else 0.1) if args.measure else None

    if args.model is not None:
        from .models import model_totals

        totals = model_totals(args.model, int(args.batch), dtype.name)
        report: dict[str, Any] = {"arguments": arguments, "roofline": roofline.as_dict(),
                                  "layers": [_row_dict(r) for r in rows],
                                  "totals": {**totals.as_dict(), "bound_seconds": sum(r.bound.seconds for r in rows)}}
        text = _model_text(rows, totals, roofline, implementation)
        title = f"{totals.name} layers on this machine's roofline"
    else:
        seed = _seed_check(rows, arguments)
        report = {"arguments": arguments, "roofline": roofline.as_dict(), "ops": [_row_dict(r) for r in rows],
                  "seed_formula": seed, "why_memory_bound": " ".join(_why_memory_bound(rows, roofline))}
        text = _ops_text(rows, arguments, roofline, seed, implementation)
        title = f"input {_fmt_shape(arguments['input'])}, kernel {arguments['kernel'][0]}x{arguments['kernel'][1]}"
    if implementation is not None:
        report["measured_with"] = {"implementation": implementation, "statistic": "median after warm-up calls",
                                   "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
                                   "cores": os.cpu_count()}

    if args.plot is not None:
        try:
            _plot(args.plot, rows, roofline, title)
        except _UsageError as e:
            print(f"sepconv explain: error: {e}", file=sys.stderr)
            return 2
        report["plot"] = args.plot
        text += f"\n\nroofline plot written to {args.plot}"
    print(json.dumps(report, indent=2) if args.json else text)
    return 0
