"""Both depthwise gradients of a training step: ``sepconv.depthwise_conv2d_gradients`` (one call) against
sepconv's two backprops called one after the other, and against PyTorch's own backward of the same
grouped convolution (``torch.ops.aten.convolution_backward`` with both gradients asked for, what
autograd calls), in ``channels_last`` (NHWC cases) or contiguous (NCHW cases) memory.

Same process, 2 threads each, interleaved rounds, medians; the results are checked against each other
before timing.  Prints per case the three times, ``one call / two calls`` and ``one call / PyTorch``
(below 1: the one call is faster).  ``--quick``: four cases, few rounds.  Run
``python benchmarks/bench_gradients.py --help``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numba
import numpy as np

import sepconv

# (batch, height, width, channels, kernel, stride, dilation, data_format): MobileNetV2's depthwise layers
# at batch 8 and 1, an EfficientNet 5x5, a DeepLab-like dilated layer.
CASES = [
    (8, 112, 112, 32, 3, 1, 1, "NHWC"), (8, 112, 112, 96, 3, 2, 1, "NHWC"), (8, 56, 56, 144, 3, 1, 1, "NHWC"),
    (8, 28, 28, 192, 3, 1, 1, "NHWC"), (8, 14, 14, 384, 3, 1, 1, "NHWC"), (8, 7, 7, 960, 3, 1, 1, "NHWC"),
    (1, 56, 56, 144, 3, 1, 1, "NHWC"), (1, 33, 33, 576, 3, 1, 2, "NHWC"),
    (8, 56, 56, 144, 3, 1, 1, "NCHW"), (8, 28, 28, 192, 3, 1, 1, "NCHW"), (8, 14, 14, 384, 3, 1, 1, "NCHW"),
    (1, 56, 56, 144, 3, 1, 1, "NCHW"), (8, 28, 28, 240, 5, 1, 1, "NCHW"),
]
QUICK = [CASES[2], CASES[4], CASES[8], CASES[10]]


def _median_us(times: list[float]) -> float:
    return statistics.median(times) * 1e6


def run_case(case, rounds: int, torch) -> tuple[float, float, float | None]:
    n, h, w, c, k, s, d, data_format = case
    rng = np.random.default_rng(0)
    shape = (n, h, w, c) if data_format == "NHWC" else (n, c, h, w)
    strides = [1, s, s, 1] if data_format == "NHWC" else [1, 1, s, s]
    x = rng.standard_normal(shape, dtype=np.float32)
    filt = rng.standard_normal((k, k, c, 1), dtype=np.float32)
    args = dict(strides=strides, padding="SAME", data_format=data_format, dilations=d)
    dy = rng.standard_normal(sepconv.depthwise_conv2d(x, filt, **args).shape, dtype=np.float32)

    def one_call():
        return sepconv.depthwise_conv2d_gradients(x, filt, dy, **args)

    def two_calls():
        return (sepconv.depthwise_conv2d_backprop_input(x.shape, filt, dy, **args),
                sepconv.depthwise_conv2d_backprop_filter(x, filt.shape, dy, **args))

    contestants = {"one call": one_call, "two calls": two_calls}
    if torch is not None and k % 2 == 1 and s == 1:  # PyTorch's symmetric padding equals SAME here
        to_nchw = (0, 3, 1, 2) if data_format == "NHWC" else (0, 1, 2, 3)
        fmt = torch.channels_last if data_format == "NHWC" else torch.contiguous_format
        xt = torch.from_numpy(x).permute(*to_nchw).contiguous(memory_format=fmt)
        gt = torch.from_numpy(dy).permute(*to_nchw).contiguous(memory_format=fmt)
        wt = torch.from_numpy(filt).permute(2, 3, 0, 1).contiguous()  # [C, 1, k, k]

        def pytorch():
            return torch.ops.aten.convolution_backward(gt, xt, wt, None, [s, s], [d * (k // 2)] * 2, [d, d],
                                                       False, [0, 0], c, [True, True, False])

        contestants["pytorch"] = pytorch
        got, want = one_call(), pytorch()
        back = (0, 2, 3, 1) if data_format == "NHWC" else (0, 1, 2, 3)
        np.testing.assert_allclose(got[0], want[0].permute(*back).numpy(), rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(got[1][:, :, :, 0], want[1][:, 0].permute(1, 2, 0).numpy(), rtol=1e-3,
                                   atol=1e-2 * float(np.abs(got[1]).max()))
    got, want = one_call(), two_calls()
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-4 * float(np.abs(want[1]).max()))
    times: dict[str, list[float]] = {name: [] for name in contestants}
    for _ in range(2):
        for fn in contestants.values():
            fn()
    order = list(contestants)
    for r in range(rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            contestants[name]()
            times[name].append(time.perf_counter() - start)
    return (_median_us(times["one call"]), _median_us(times["two calls"]),
            _median_us(times["pytorch"]) if "pytorch" in times else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="interleaved timed rounds per case")
    parser.add_argument("--threads", type=int, default=2, help="numba.set_num_threads and torch.set_num_threads")
    parser.add_argument("--quick", action="store_true", help="four cases, 8 rounds")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.threads < 1:
        parser.error(f"--rounds and --threads must be at least 1, got {args.rounds} and {args.threads}")
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            print("PyTorch is not installed: its column stays empty", file=sys.stderr)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    cases = QUICK if args.quick else CASES
    rounds = 8 if args.quick else args.rounds
    print(f"depthwise gradients, float32, {args.threads} threads, median of {rounds} interleaved rounds, us")
    print(f"{'case':34} {'one call':>9} {'two calls':>9} {'pytorch':>9} {'one/two':>8} {'one/pytorch':>11}")
    for index, case in enumerate(cases, 1):
        n, h, w, c, k, s, d, data_format = case
        name = f"{data_format} {n}x{h}x{w}x{c} k{k} s{s} d{d}"
        print(f"[{index}/{len(cases)}] {name}", file=sys.stderr, flush=True)
        one, two, theirs = run_case(case, rounds, torch)
        theirs_text = f"{theirs:9.0f}" if theirs is not None else f"{'n/a':>9}"
        ratio = f"{one / theirs:11.2f}" if theirs is not None else f"{'n/a':>11}"
        print(f"{name:34} {one:9.0f} {two:9.0f} {theirs_text} {one / two:8.2f} {ratio}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
