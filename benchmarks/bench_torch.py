"""Stock PyTorch vs sepconv's drop-in depthwise modules on a MobileNetV2-style stack: training step and inference.

The same network is built twice from one seed: ``stock`` (``nn.Conv2d(groups=C)``) and ``sepconv``
(the same model passed through :func:`sepconv.torch.convert_depthwise`, weights copied).  Each
round times one step of every contestant, in alternating order, in the same process; the table
gives the median per contestant and the ratio ``stock / sepconv`` of the medians (above 1: sepconv
is faster), then the ratio of the best rounds (less sensitive to other load on the machine).

Measured per memory format (``channels_last`` and contiguous NCHW):

- ``train``: forward + backward + SGD step (momentum 0.9) of the whole stack, cross-entropy loss;
- ``infer``: forward under ``torch.inference_mode()`` in eval mode;
- ``dw fwd+bwd``: the depthwise layers alone (forward and backward of each, summed), to show
  where the difference comes from; with ``--layers``, each one alone too (``dw C@H/sS``: channels,
  input size, stride; ``fwd`` forward only, ``f+b`` forward and backward).

Run ``python benchmarks/bench_torch.py --help``.  Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable

import numba
import torch
import torch.nn.functional as F
from torch import nn

import sepconv.torch as st

# (in_channels, out_channels, stride) of the inverted-residual blocks, expansion 6 (MobileNetV2's stage 2-4 shapes).
BLOCKS = [(24, 24, 1), (24, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1)]
EXPANSION = 6
CLASSES = 10


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand, 3x3 depthwise (stride 1 or 2, padding 1), 1x1 project; BN and ReLU6."""

    def __init__(self, inp: int, out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = inp * expansion
        self.residual = stride == 1 and inp == out
        self.body = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, out, 1, bias=False), nn.BatchNorm2d(out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def mobilenet_stack() -> nn.Sequential:
    blocks = [InvertedResidual(inp, out, stride, EXPANSION) for inp, out, stride in BLOCKS]
    return nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(BLOCKS[-1][1], CLASSES))


def depthwise_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, st.DepthwiseConv2d)
            or (isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1)]


def make_contestants(args, memory_format: torch.memory_format) -> dict[str, dict[str, Callable[[], None]]]:
    """{mode: {contestant: one step}} for one memory format."""
    torch.manual_seed(0)
    stock = mobilenet_stack().to(memory_format=memory_format)
    ours = st.convert_depthwise(copy.deepcopy(stock))
    x = torch.randn(args.batch, BLOCKS[0][0], args.size, args.size).to(memory_format=memory_format)
    target = torch.randint(0, CLASSES, (args.batch,))
    models = {"stock": stock, "sepconv": ours}
    check_same_outputs(models, x)

    def train_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> Callable[[], None]:
        def step() -> None:
            model.train()
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), target).backward()
            optimizer.step()
        return step

    def infer_step(model: nn.Module) -> Callable[[], None]:
        def step() -> None:
            model.eval()
            with torch.inference_mode():
                model(x)
        return step

    def depthwise_cases(model: nn.Module) -> list[tuple[str, nn.Module, torch.Tensor, torch.Tensor]]:
        """(label, layer, its input in this network, a gradient of its output) per depthwise layer."""
        cases = []
        with torch.no_grad():
            h = x
            for block, layer in zip(model[:len(BLOCKS)], depthwise_layers(model), strict=True):
                expanded = block.body[2](block.body[1](block.body[0](h))).detach().requires_grad_()
                grad = torch.randn_like(layer(expanded))
                label = f"dw {expanded.shape[1]}@{expanded.shape[2]}/s{layer.stride[0]}"
                cases.append((label, layer, expanded, grad))
                h = block(h)
        return cases

    def forward_and_backward(cases) -> Callable[[], None]:
        def step() -> None:
            for _, layer, inp, grad in cases:
                layer(inp).backward(grad)
        return step

    def forward_only(layer: nn.Module, inp: torch.Tensor) -> Callable[[], None]:
        def step() -> None:
            with torch.no_grad():
                layer(inp)
        return step

    steps = {
        "train": {name: train_step(m, torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9))
                  for name, m in models.items()},
        "infer": {name: infer_step(m) for name, m in models.items()},
        "dw fwd+bwd": {name: forward_and_backward(depthwise_cases(m)) for name, m in models.items()},
    }
    if args.layers:
        cases = {name: depthwise_cases(m) for name, m in models.items()}
        for index, (label, *_) in enumerate(cases["stock"]):
            steps[f"{label} fwd"] = {name: forward_only(*c[index][1:3]) for name, c in cases.items()}
            steps[f"{label} f+b"] = {name: forward_and_backward(c[index:index + 1]) for name, c in cases.items()}
    return steps


def check_same_outputs(models: dict[str, nn.Module], x: torch.Tensor) -> None:
    """Refuse to time a wrong answer: both models give the same output and gradients on ``x``."""
    outputs, grads = {}, {}
    for name, model in models.items():
        model.zero_grad(set_to_none=True)
        outputs[name] = model(x)
        outputs[name].square().mean().backward()
        grads[name] = torch.cat([p.grad.flatten() for p in model.parameters()])
        model.zero_grad(set_to_none=True)
    out_err = (outputs["stock"] - outputs["sepconv"]).abs().max().item()
    grad_err = ((grads["stock"] - grads["sepconv"]).abs().max() / grads["stock"].abs().max()).item()
    print(f"  check: max |output diff| {out_err:.2e}, max relative gradient diff {grad_err:.2e}", file=sys.stderr)
    if out_err > 1e-3 or grad_err > 1e-3:
        raise SystemExit(f"bench_torch: sepconv and stock disagree (output {out_err:.2e}, gradient {grad_err:.2e})")


def time_once(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def run(args) -> list[tuple[str, str, float, float, float]]:
    rows = []
    formats = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
    for format_name in args.formats:
        print(f"{format_name}: building and checking", file=sys.stderr)
        contestants = make_contestants(args, formats[format_name])
        for mode, steps in contestants.items():
            first = {name: time_once(step) for name, step in steps.items()}  # includes any JIT compile
            for _ in range(args.warmup):
                for step in steps.values():
                    step()
            times: dict[str, list[float]] = {name: [] for name in steps}
            order = list(steps)
            for round_index in range(args.rounds):
                for name in order if round_index % 2 == 0 else order[::-1]:
                    times[name].append(time_once(steps[name]))
            stock, ours = statistics.median(times["stock"]), statistics.median(times["sepconv"])
            print(f"  {mode:<17} first call: stock {first['stock'] * 1e3:.0f} ms, sepconv {first['sepconv'] * 1e3:.0f} ms"
                  f"; median stock {stock * 1e3:.1f} ms, sepconv {ours * 1e3:.1f} ms", file=sys.stderr)
            best_ratio = min(times["stock"]) / min(times["sepconv"])
            rows.append((format_name, mode, stock, ours, best_ratio))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="batch size")
    parser.add_argument("--size", type=int, default=56, help="input height and width")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (each times every contestant once)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds after the first call")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads and numba.set_num_threads")
    parser.add_argument("--formats", nargs="+", choices=["channels_last", "contiguous"],
                        default=["channels_last", "contiguous"], help="memory formats to measure")
    parser.add_argument("--layers", action="store_true",
                        help="also time each depthwise layer alone: forward, and forward + backward")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run: 3 rounds, no warm-up, batch 2")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup, args.batch = 3, 0, 2
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    blocks = ", ".join(f"{i}->{o}/s{s}" for i, o, s in BLOCKS)
    print(f"MobileNetV2-style stack, expansion {EXPANSION}, blocks {blocks}; batch {args.batch}, "
          f"{args.size}x{args.size}, float32, {args.threads} threads, torch {torch.__version__}; "
          f"median of {args.rounds} interleaved rounds")
    print(f"{'memory format':<14} {'mode':<17} {'stock ms':>9} {'sepconv ms':>11} {'stock/sepconv':>14} "
          f"{'(of the best)':>14}")
    for format_name, mode, stock, ours, best_ratio in run(args):
        print(f"{format_name:<14} {mode:<17} {stock * 1e3:9.2f} {ours * 1e3:11.2f} {stock / ours:13.2f}x "
              f"{best_ratio:13.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
