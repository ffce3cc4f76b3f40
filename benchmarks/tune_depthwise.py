"""Scratch timing of the depthwise kernels: sepconv fast vs torch channels_last, interleaved, one process.

Not the project's benchmark (``benchmarks/`` has the harness); a quick look while tuning::

    python benchmarks/tune_depthwise.py                 # the depthwise cases of cases.json
    python benchmarks/tune_depthwise.py --no-torch --rounds 5 --case dw_8x56x56x144_s1

Prints, per case, the median time of sepconv's public op, of the fast implementation called
directly (no argument normalization), and of ``torch.nn.functional.conv2d(groups=C)`` (or its
gradients) with 2 threads; and the GB/s of the minimal traffic (input + output + filter).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import sepconv
from sepconv import fast
from sepconv.geometry import depthwise_geometry

CASES = [  # name, kind, (N, H, W, C), k, stride, multiplier
    ("dw_1x112x112x32_s1", "dw", (1, 112, 112, 32), 3, 1, 1),
    ("dw_1x112x112x96_s2", "dw", (1, 112, 112, 96), 3, 2, 1),
    ("dw_1x56x56x144_s1", "dw", (1, 56, 56, 144), 3, 1, 1),
    ("dw_1x28x28x192_s1", "dw", (1, 28, 28, 192), 3, 1, 1),
    ("dw_1x14x14x576_s1", "dw", (1, 14, 14, 576), 3, 1, 1),
    ("dw_1x7x7x960_s1", "dw", (1, 7, 7, 960), 3, 1, 1),
    ("dw_8x56x56x144_s1", "dw", (8, 56, 56, 144), 3, 1, 1),
    ("dw_1x28x28x240_k5", "dw", (1, 28, 28, 240), 5, 1, 1),
    ("dw_1x56x56x32_m2", "dw", (1, 56, 56, 32), 3, 1, 2),
    ("dwbi_8x56x56x144", "dw_bwd_input", (8, 56, 56, 144), 3, 1, 1),
    ("dwbf_8x56x56x144", "dw_bwd_filter", (8, 56, 56, 144), 3, 1, 1),
    ("dwbi_8x28x28x192", "dw_bwd_input", (8, 28, 28, 192), 3, 1, 1),
    ("dwbf_8x28x28x192", "dw_bwd_filter", (8, 28, 28, 192), 3, 1, 1),
    ("dw_1x112x112x32_s2_extra", "dw", (1, 112, 112, 32), 3, 2, 1),
    ("dwbi_1x56x56x144_s2_extra", "dw_bwd_input", (1, 56, 56, 144), 3, 2, 1),
    ("dwbf_1x56x56x144_s2_extra", "dw_bwd_filter", (1, 56, 56, 144), 3, 2, 1),
    ("dw_1x147x147x64_s1_extra", "dw", (1, 147, 147, 64), 3, 1, 1),
    ("dwbf_1x112x112x32_extra", "dw_bwd_filter", (1, 112, 112, 32), 3, 1, 1),
]


def _time_us(fn, statistic, min_time: float = 0.05) -> float:
    fn()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 5:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistic(times) * 1e6


def _calls(kind, shape, k, s, m, use_torch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((k, k, shape[3], m)).astype(np.float32)
    g = depthwise_geometry("depthwise_conv2d", x.shape, w.shape, s, "SAME")
    y = fast.depthwise_conv2d(x, w, g)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    if kind == "dw":
        ours = lambda: sepconv.depthwise_conv2d(x, w, s, "SAME")  # noqa: E731
        direct = lambda: fast.depthwise_conv2d(x, w, g)  # noqa: E731
        nbytes = x.nbytes + y.nbytes + w.nbytes
    elif kind == "dw_bwd_input":
        ours = lambda: sepconv.depthwise_conv2d_backprop_input(x.shape, w, dy, s, "SAME")  # noqa: E731
        direct = lambda: fast.depthwise_conv2d_backprop_input(w, dy, g)  # noqa: E731
        nbytes = x.nbytes + dy.nbytes + w.nbytes
    else:
        ours = lambda: sepconv.depthwise_conv2d_backprop_filter(x, w.shape, dy, s, "SAME")  # noqa: E731
        direct = lambda: fast.depthwise_conv2d_backprop_filter(x, dy, g)  # noqa: E731
        nbytes = x.nbytes + dy.nbytes + w.nbytes
    peer = None
    if use_torch:
        peer = _torch_call(kind, x, w, dy, g)
    return ours, direct, peer, nbytes


def _torch_call(kind, x, w, dy, g):
    import torch
    import torch.nn.functional as F

    c, m = x.shape[3], w.shape[3]
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)  # NCHW view of NHWC memory = channels_last
    wt = torch.from_numpy(np.ascontiguousarray(w.transpose(2, 3, 0, 1).reshape(c * m, 1, *w.shape[:2])))
    dyt = torch.from_numpy(dy).permute(0, 3, 1, 2)
    symmetric = g.pad_top == g.pad_bottom and g.pad_left == g.pad_right
    stride = (g.stride_h, g.stride_w)

    def forward(inp):
        if symmetric:
            return F.conv2d(inp, wt, None, stride, (g.pad_top, g.pad_left), 1, c)
        return F.conv2d(F.pad(inp, (g.pad_left, g.pad_right, g.pad_top, g.pad_bottom)), wt, None, stride, 0, 1, c)

    if kind == "dw":
        return lambda: forward(xt)
    if not symmetric:  # torch's gradient functions take symmetric padding only
        return None
    if kind == "dw_bwd_input":
        return lambda: torch.nn.grad.conv2d_input(xt.shape, wt, dyt, stride, (g.pad_top, g.pad_left), 1, c)
    return lambda: torch.nn.grad.conv2d_weight(xt, wt.shape, dyt, stride, (g.pad_top, g.pad_left), 1, c)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", help="case name (repeatable); default: all")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median over rounds)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--torch-threads", type=int, default=2,
                        help="torch's threads (1 to compare kernels alone, with NUMBA_NUM_THREADS=1)")
    parser.add_argument("--min", action="store_true",
                        help="best call instead of the median (a loaded machine: what the code can do)")
    args = parser.parse_args()
    statistic = min if args.min else statistics.median
    use_torch = not args.no_torch
    if use_torch:
        import torch

        torch.set_num_threads(args.torch_threads)
    cases = [c for c in CASES if not args.case or c[0] in args.case]
    print(f"{'case':28s} {'api us':>9s} {'direct us':>9s} {'torch_cl us':>11s} {'ratio':>6s} {'GB/s':>7s}")
    for name, kind, shape, k, s, m in cases:
        ours, direct, peer, nbytes = _calls(kind, shape, k, s, m, use_torch)
        rounds = {"api": [], "direct": [], "torch": []}
        for _ in range(args.rounds):
            rounds["api"].append(_time_us(ours, statistic))
            rounds["direct"].append(_time_us(direct, statistic))
            if peer is not None:
                time.sleep(0.03)  # let the other thread pool stop spinning
                rounds["torch"].append(_time_us(peer, statistic))
                time.sleep(0.03)
        api_us = statistics.median(rounds["api"])
        direct_us = statistics.median(rounds["direct"])
        torch_us = statistics.median(rounds["torch"]) if rounds["torch"] else float("nan")
        print(f"{name:28s} {api_us:9.1f} {direct_us:9.1f} {torch_us:11.1f} {api_us / torch_us:6.2f} "
              f"{nbytes / api_us / 1e3:7.1f}")


if __name__ == "__main__":
    main()
