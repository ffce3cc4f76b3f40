"""What bounds the 3x3 depthwise pair kernels: their time per step against the multiply-add floor, in cache.

Not the project's benchmark (``sepconv bench`` is); a profile for the notes.  Each kernel computes a pair of SAME
3x3 rows (the forward, or the filter gradient's sums) one channel block at a time; a *step* is one block of one
pixel.  The script times many passes on one thread over rows that stay in L1 (a few KB) or in L2 (100-200 KB) and
prints each step's time in *multiply-add slots*: the time one core takes for one 64-byte multiply-add when nothing
else limits it (this machine's measured peak, ``sepconv.roofline.measure_fma_gflops``, per core).  The floor is
the step's multiply-adds: 18 for the direct kernels, 12 for Winograd's F(2, 3)::

    python benchmarks/kernel_cycles.py            # ~20 s
    python benchmarks/kernel_cycles.py --rounds 5

On the forty-fourth session's Zen 4 VM (see the README for the table): the direct kernels take about as many slots
in L1 as in L2, near their floor (the multiply-adds bound them); Winograd's take far fewer in L1 but about as many
as the direct ones in L2, where each step's six cache lines (four input rows and two output rows, or two ``dy``
rows) bound them.
"""

from __future__ import annotations

import argparse
import sys
import time

import numba
import numpy as np
from numba import njit

from sepconv.kernels import depthwise as kernels
from sepconv.roofline import measure_fma_gflops


def _passes(kernel):
    """A jitted ``run(reps, *operands)``: ``reps`` passes of a pair kernel over its seven arrays (a forward's two
    output rows, four input rows and filter, or a filter gradient's sums, four input rows and two ``dy`` rows), no
    rows fetched ahead."""
    @njit
    def run(reps, a0, a1, a2, a3, a4, a5, a6):
        for _ in range(reps):
            kernel(a0, a1, a2, a3, a4, a5, a6, 0, a2, a2, a2, a2, False)
    return run


KERNELS = {  # name: (passes, multiply-adds a step, forward?)
    "forward, direct": (_passes(kernels._forward_same_3x3_two_rows_d1), 18, True),
    "forward, Winograd": (_passes(kernels._forward_same_3x3_two_rows_winograd), 12, True),
    "filter gradient, direct": (_passes(kernels._filter_gradient_same_3x3_two_rows), 18, False),
    "filter gradient, Winograd": (_passes(kernels._filter_gradient_same_3x3_two_rows_winograd), 12, False),
}
ROWS = {"L1 (24 KB)": (64, 16), "L2 (126 KB)": (28, 192), "L2 (189 KB)": (56, 144)}  # pixels, channels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per kernel and size, the best kept "
                        "(default 3)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    print("measuring the multiply-add peak ...", file=sys.stderr, flush=True)
    per_core = measure_fma_gflops(verbose=False) / numba.get_num_threads()
    slot = 2 * 16 / (per_core * 1e9)  # seconds per 64-byte float32 multiply-add on one core
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    print("| kernel | rows in | slots a step | floor | floor / slots |\n| --- | --- | ---: | ---: | ---: |")
    for where, (width, channels) in ROWS.items():
        rows = [rng.standard_normal((width, channels)).astype(np.float32) for _ in range(6)]
        weights = rng.standard_normal((9, channels)).astype(np.float32)
        steps = width * channels // 16
        reps = max(1, 2_000_000 // (width * channels))
        for name, (passes, floor, forward) in KERNELS.items():
            print(f"  {name}, {where} ...", file=sys.stderr, flush=True)
            operands = ((rows[4].copy(), rows[5].copy(), *rows[:4], weights) if forward
                        else (np.zeros_like(weights), *rows))
            passes(1, *operands)  # compile, or load from the cache
            seconds = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                passes(reps, *operands)
                seconds.append(time.perf_counter() - start)
            slots = min(seconds) / (reps * steps) / slot
            print(f"| {name} | {where} | {slots:.1f} | {floor} | {floor / slots:.0%} |", flush=True)
    print(f"\n(a slot: one 64-byte multiply-add at the measured peak, {per_core:.0f} GFLOP/s a core)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
