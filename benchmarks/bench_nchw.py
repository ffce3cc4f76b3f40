"""sepconv's NCHW depthwise ops against PyTorch's NCHW depthwise and against sepconv's own NHWC path.

``sepconv bench`` times NHWC calls.  This script answers the NCHW question: is an NCHW call (native kernels,
no transposes) as fast as the peers' NCHW ops, and no more than a little slower than the same layer in NHWC?
For each layer and op (``fwd`` forward, ``bi`` input gradient, ``bf`` filter gradient) it times, in one process
and alternating, round after round: sepconv NCHW, PyTorch NCHW (``F.conv2d(groups=C)`` and
``aten.convolution_backward``, the op autograd calls), and sepconv NHWC on the same values.  A figure is the
median over rounds of each round's median call time; every result is checked against the others first.
Both libraries use 2 threads (``torch.set_num_threads``; ``NUMBA_NUM_THREADS`` as set, 2 on this machine).

Usage::

    python benchmarks/bench_nchw.py                  # the default layers, all three ops (~1 min)
    python benchmarks/bench_nchw.py --ops fwd --layers 8x480x14x14:k5 1x320x65x65:k5:d2 --rounds 9

A layer is ``NxCxHxW:kK[:sS][:dD]`` (batch, channels, height, width; filter size, stride, dilation;
multiplier 1), padded symmetrically by half the filter's reach on each side, as PyTorch pads.  Progress goes
to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DEFAULT_LAYERS = ("1x144x56x56:k3", "8x192x28x28:k3", "1x96x112x112:k3:s2", "8x480x14x14:k5", "1x240x28x28:k5",
                  "1x320x65x65:k5:d2", "1x64x147x147:k5", "1x96x112x112:k5:s2", "1x96x56x56:k7")
OPS = ("fwd", "bi", "bf")


@dataclass(frozen=True)
class Layer:
    n: int
    c: int
    h: int
    w: int
    k: int
    stride: int = 1
    dilation: int = 1

    @classmethod
    def parse(cls, text: str) -> Layer:
        """``NxCxHxW:kK[:sS][:dD]`` -> a layer; ``ValueError`` naming the text on anything else."""
        parts = text.split(":")
        try:
            n, c, h, w = (int(v) for v in parts[0].split("x"))
            fields = {p[0]: int(p[1:]) for p in parts[1:]}
        except ValueError:
            raise ValueError(f"layer {text!r}: expected NxCxHxW:kK[:sS][:dD], e.g. 8x480x14x14:k5") from None
        if "k" not in fields or set(fields) - {"k", "s", "d"} or min(n, c, h, w, *fields.values()) < 1:
            raise ValueError(f"layer {text!r}: expected NxCxHxW:kK[:sS][:dD] with positive sizes, e.g. 8x480x14x14:k5")
        return cls(n, c, h, w, fields["k"], fields.get("s", 1), fields.get("d", 1))

    def __str__(self) -> str:
        extra = (f" s{self.stride}" if self.stride > 1 else "") + (f" d{self.dilation}" if self.dilation > 1 else "")
        return f"{self.n}x{self.c}x{self.h}x{self.w} {self.k}x{self.k}{extra}"


def _median_call(fn: Callable[[], object], calls: int) -> float:
    fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _contestants(layer: Layer, op: str) -> dict[str, Callable[[], object]]:
    """The three calls of one op on one layer, their results checked against each other."""
    import torch

    import sepconv

    rng = np.random.default_rng(0)
    n, c, h, w, k, s, d = layer.n, layer.c, layer.h, layer.w, layer.k, layer.stride, layer.dilation
    pad = (k - 1) * d // 2  # symmetric, as PyTorch pads (TensorFlow's SAME puts the odd one at the end)
    out_h, out_w = (h + 2 * pad - (k - 1) * d - 1) // s + 1, (w + 2 * pad - (k - 1) * d - 1) // s + 1
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    f = rng.standard_normal((k, k, c, 1), dtype=np.float32)
    dy = rng.standard_normal((n, c, out_h, out_w), dtype=np.float32)
    x_nhwc, dy_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(dy.transpose(0, 2, 3, 1))
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
    wt = torch.from_numpy(np.ascontiguousarray(f.transpose(2, 3, 0, 1)))  # [C, 1, k, k]
    conv = dict(strides=[1, 1, s, s], padding=[[0, 0], [0, 0], [pad, pad], [pad, pad]], data_format="NCHW",
                dilations=[d, d])
    conv_nhwc = dict(strides=[1, s, s, 1], padding=[[0, 0], [pad, pad], [pad, pad], [0, 0]], dilations=[d, d])
    torch_args = ([c], [s, s], [pad, pad], [d, d], False, [0, 0], c)
    if op == "fwd":
        calls = {"sepconv NCHW": lambda: sepconv.depthwise_conv2d(x, f, **conv),
                 "torch NCHW": lambda: torch.nn.functional.conv2d(xt, wt, stride=s, padding=pad, dilation=d,
                                                                  groups=c),
                 "sepconv NHWC": lambda: sepconv.depthwise_conv2d(x_nhwc, f, **conv_nhwc)}
        as_nchw = {"sepconv NCHW": np.asarray, "torch NCHW": lambda r: r.numpy(),
                   "sepconv NHWC": lambda r: r.transpose(0, 3, 1, 2)}
    elif op == "bi":
        calls = {"sepconv NCHW": lambda: sepconv.depthwise_conv2d_backprop_input(x.shape, f, dy, **conv),
                 "torch NCHW": lambda: torch.ops.aten.convolution_backward(dyt, xt, wt, *torch_args,
                                                                           [True, False, False]),
                 "sepconv NHWC": lambda: sepconv.depthwise_conv2d_backprop_input(x_nhwc.shape, f, dy_nhwc,
                                                                                 **conv_nhwc)}
        as_nchw = {"sepconv NCHW": np.asarray, "torch NCHW": lambda r: r[0].numpy(),
                   "sepconv NHWC": lambda r: r.transpose(0, 3, 1, 2)}
    else:
        calls = {"sepconv NCHW": lambda: sepconv.depthwise_conv2d_backprop_filter(x, f.shape, dy, **conv),
                 "torch NCHW": lambda: torch.ops.aten.convolution_backward(dyt, xt, wt, *torch_args,
                                                                           [False, True, False]),
                 "sepconv NHWC": lambda: sepconv.depthwise_conv2d_backprop_filter(x_nhwc, f.shape, dy_nhwc,
                                                                                  **conv_nhwc)}
        as_nchw = {"sepconv NCHW": np.asarray, "torch NCHW": lambda r: r[1].numpy().transpose(2, 3, 0, 1),
                   "sepconv NHWC": np.asarray}
    results = {name: as_nchw[name](fn()) for name, fn in calls.items()}
    reference = results["sepconv NCHW"]
    for name, result in results.items():
        error = float(np.abs(result - reference).max() / max(float(np.abs(reference).max()), 1e-30))
        if result.shape != reference.shape or error > 2e-4:
            raise AssertionError(f"{layer} {op}: {name} differs from sepconv NCHW (relative error {error:.2g})")
    return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", nargs="+", default=list(DEFAULT_LAYERS), metavar="NxCxHxW:kK[:sS][:dD]",
                        help="layers to time (default: %(default)s)")
    parser.add_argument("--ops", default=",".join(OPS), help="comma-separated among fwd,bi,bf (default: all)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (default 7)")
    parser.add_argument("--calls", type=int, default=8, help="timed calls per contestant per round (default 8)")
    args = parser.parse_args(argv)
    ops = [op.strip() for op in args.ops.split(",") if op.strip()]
    if not ops or set(ops) - set(OPS):
        parser.error(f"--ops {args.ops!r}: expected a comma-separated list among {','.join(OPS)}")
    if args.rounds < 1 or args.calls < 1:
        parser.error("--rounds and --calls must be at least 1")
    try:
        layers = [Layer.parse(text) for text in args.layers]
    except ValueError as error:
        parser.error(str(error))
    try:
        import torch
    except ImportError:
        parser.error("PyTorch is not installed: pip install -e '.[bench]'")
    torch.set_num_threads(2)

    print("| layer | op | sepconv NCHW µs | PyTorch NCHW µs | ours / PyTorch | sepconv NHWC µs | NCHW / NHWC |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for number, layer in enumerate(layers, 1):
        for op in ops:
            print(f"[bench_nchw] {number}/{len(layers)} {layer} {op}", file=sys.stderr, flush=True)
            calls = _contestants(layer, op)
            times: dict[str, list[float]] = {name: [] for name in calls}
            order = list(calls)
            for r in range(args.rounds):
                for name in order[r % len(order):] + order[:r % len(order)]:
                    times[name].append(_median_call(calls[name], args.calls))
                    time.sleep(0.005)  # let the other library's worker threads go idle
            ours, peer, nhwc = (statistics.median(times[name]) * 1e6 for name in order)
            print(f"| {layer} | {op} | {ours:.0f} | {peer:.0f} | {ours / peer:.2f} | {nhwc:.0f} | {ours / nhwc:.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
