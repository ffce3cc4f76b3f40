"""Scratch tuning of the dense conv2d and separable forward: sepconv's variants against PyTorch.

One process, interleaved rounds: each round times every variant of a case (a burst of calls)
and PyTorch (channels_last, 2 threads); the table shows the median and the fastest call over
all rounds (the fastest is the figure that survives a machine shared with other jobs).
Variants are sepconv's workspace / band sizes (``--conv-sizes``, ``--sep-sizes``, in KB) and,
for conv2d, Winograd against im2col.  The main benchmark is ``sepconv bench``; this only picks the tunables.

    python benchmarks/tune_conv.py --rounds 7 --calls 20
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/tune_conv.py   # BLAS without the overrides
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import sepconv.fast  # noqa: F401  (loads the modules below)
from sepconv.geometry import conv2d_geometry, depthwise_geometry

fast_conv2d = sys.modules["sepconv.fast.conv2d"]
fast_separable = sys.modules["sepconv.fast.separable"]

CASES = {
    "sep_1x56x56x144_to144": ("sep", (1, 56, 56, 144), 144),
    "sep_8x28x28x192_to64": ("sep", (8, 28, 28, 192), 64),
    "conv_1x56x56x64_to64": ("conv", (1, 56, 56, 64), 64),
    "conv_8x28x28x128_to128": ("conv", (8, 28, 28, 128), 128),
}


def per_call_us(fn, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e6)
    return times


def case_functions(kind: str, shape: tuple[int, ...], out_c: int, sizes_kb: list[int]):
    """``{variant name: zero-argument callable}`` for one case, PyTorch included."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    c = shape[3]
    x_torch = torch.from_numpy(x).permute(0, 3, 1, 2)  # NHWC memory = channels_last
    variants = {}
    if kind == "sep":
        wd = rng.standard_normal((3, 3, c, 1), dtype=np.float32)
        wp = rng.standard_normal((1, 1, c, out_c), dtype=np.float32)
        g = depthwise_geometry("separable_conv2d", shape, wd.shape, 1, "SAME")
        for kb in sizes_kb:
            def run(kb=kb):
                fast_separable.BAND_BYTES = kb * 1024
                return fast_separable.separable_conv2d(x, wd, wp, g)
            variants[f"fused_{kb}KB"] = run
        wd_t = torch.from_numpy(wd[:, :, :, 0].transpose(2, 0, 1).copy()[:, None])
        wp_t = torch.from_numpy(wp[0, 0].T.copy()[:, :, None, None]).contiguous(memory_format=torch.channels_last)
        variants["torch_cl"] = lambda: F.conv2d(F.conv2d(x_torch, wd_t, padding=1, groups=c), wp_t)
        reference_result = np.asarray(variants["torch_cl"]().permute(0, 2, 3, 1))
    else:
        w = rng.standard_normal((3, 3, c, out_c), dtype=np.float32)
        g = conv2d_geometry("conv2d", shape, w.shape, 1, "SAME")
        for kb in sizes_kb:
            for method, min_channels in (("winograd", 16), ("im2col", 1 << 30)):
                def run(kb=kb, min_channels=min_channels):
                    fast_conv2d.WORKSPACE_BYTES = kb * 1024
                    fast_conv2d.WINOGRAD_MIN_CHANNELS = min_channels
                    return fast_conv2d.conv2d(x, w, g)
                variants[f"{method}_{kb}KB"] = run
        w_t = torch.from_numpy(w.transpose(3, 2, 0, 1).copy()).contiguous(memory_format=torch.channels_last)
        variants["torch_cl"] = lambda: F.conv2d(x_torch, w_t, padding=1)
        reference_result = np.asarray(variants["torch_cl"]().permute(0, 2, 3, 1))
    for name, fn in variants.items():
        result = np.asarray(fn().permute(0, 2, 3, 1)) if name == "torch_cl" else fn()
        np.testing.assert_allclose(result, reference_result, rtol=1e-3, atol=1e-2, err_msg=name)
    return variants


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--sep-sizes", type=int, nargs="*", default=[256, 1024, 4096])
    parser.add_argument("--conv-sizes", type=int, nargs="*", default=[1024, 4096])
    parser.add_argument("--threads", type=int, default=2, help="for everyone: BLAS, Numba and PyTorch")
    args = parser.parse_args()

    import numba
    import threadpoolctl
    import torch

    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    threadpoolctl.threadpool_limits(args.threads, user_api="blas")
    torch.set_grad_enabled(False)
    cases = {}
    for name in args.cases:
        kind, shape, out_c = CASES[name]
        cases[name] = case_functions(kind, shape, out_c, args.sep_sizes if kind == "sep" else args.conv_sizes)
    samples = {(case, variant): [] for case, variants in cases.items() for variant in variants}
    for _ in range(args.rounds):
        for case, variants in cases.items():
            for variant, fn in variants.items():
                fn()
                samples[case, variant].extend(per_call_us(fn, args.calls))
                time.sleep(0.03)  # let the thread pools stop spinning before the next contender
    print(f"{'case':26s} {'variant':16s} {'median us':>10s} {'/torch':>7s} {'min us':>9s} {'/torch':>7s}")
    for case, variants in cases.items():
        torch_median, torch_min = np.median(samples[case, "torch_cl"]), np.min(samples[case, "torch_cl"])
        for variant in variants:
            median, fastest = np.median(samples[case, variant]), np.min(samples[case, variant])
            print(f"{case:26s} {variant:16s} {median:10.1f} {median / torch_median:7.2f} "
                  f"{fastest:9.1f} {fastest / torch_min:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
