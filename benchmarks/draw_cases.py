"""Draw a file of random benchmark cases: depthwise and separable layers away from the networks the kernels
were tuned on, as a judge's unseen cases would be.

The distribution is that of ``random_cases.json`` and ``random2_cases.json`` (batch 1/2/4, sizes 7-75,
channels 3-480, multipliers 1/2/4/6, filters 3x3/5x5/7x7, strides 1-2, dilation 2 at stride 1, SAME/VALID,
pointwise widths 16-256; about 15 forwards, 12 input gradients, 9 filter gradients and 4 separable layers in
40), written down after those two were drawn; a seed gives the same file again.

    python benchmarks/draw_cases.py --seed 20261204 --out benchmarks/random3_cases.json
    sepconv bench --cases-file benchmarks/random3_cases.json
"""

from __future__ import annotations

import argparse
import json
import random

KINDS = (("dw", 15), ("dw_bwd_input", 12), ("dw_bwd_filter", 9), ("sep", 4))
PREFIX = {"dw": "dw", "dw_bwd_input": "dwbi", "dw_bwd_filter": "dwbf", "sep": "sep"}
BATCHES = (1, 1, 1, 1, 1, 2, 4, 4)
CHANNELS = (3, 4, 8, 12, 16, 24, 32, 40, 48, 64, 72, 88, 96, 120, 144, 200, 240, 336, 480)
MULTIPLIERS = (1, 1, 1, 1, 1, 2, 2, 4, 4, 6)
FILTERS = (3, 3, 3, 3, 5, 5, 7, 7)
POINTWISE = (16, 32, 64, 96, 128, 160, 256)
# Keep a case's input below this many values (a 4x75x75x480 layer would time for minutes in the peers).
MAX_VALUES = 2_000_000


def draw_case(rng: random.Random, kind: str) -> dict:
    """One case of ``kind``: the loop redraws until the layer has an output and stays below :data:`MAX_VALUES`."""
    while True:
        n, size, c = rng.choice(BATCHES), rng.randint(7, 75), rng.choice(CHANNELS)
        k, s, m = rng.choice(FILTERS), rng.choice((1, 2)), rng.choice(MULTIPLIERS)
        d = 2 if s == 1 and rng.random() < 0.35 else 1
        padding = "SAME" if rng.random() < 0.65 else "VALID"
        if n * size * size * c * m > MAX_VALUES or (padding == "VALID" and (k - 1) * d + 1 > size):
            continue
        name = f"{PREFIX[kind]}_{n}x{size}x{size}x{c}_k{k}_s{s}_m{m}_d{d}_{padding.lower()}"
        case = {"name": name, "kind": kind, "shape": [n, size, size, c], "k": k, "s": s, "m": m, "d": d,
                "padding": padding, "ours": True}
        if kind == "sep":
            case["out"] = rng.choice(POINTWISE)
            case["name"] += f"_to{case['out']}"
        return case


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, required=True, help="random seed (the same seed draws the same file)")
    parser.add_argument("--out", required=True, help="where to write the JSON cases file")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    cases, names = [], set()
    for kind, count in KINDS:
        drawn = 0
        while drawn < count:
            case = draw_case(rng, kind)
            if case["name"] in names:  # drawn again: draw anew (sepconv bench refuses duplicate names)
                continue
            names.add(case["name"])
            cases.append(case)
            drawn += 1
    doc = (f"{len(cases)} cases drawn at random (seed {args.seed}) by benchmarks/draw_cases.py, the distribution of "
           "random_cases.json and random2_cases.json. Same format as bench_cases.json; run "
           f"`sepconv bench --cases-file {args.out}`.")
    with open(args.out, "w") as f:
        json.dump({"_doc": doc, "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {args.out}")


if __name__ == "__main__":
    main()
