"""Stock PyTorch vs sepconv's drop-in depthwise modules on a MobileNetV2-style network: training step and inference.

The same network is built twice from one seed: ``stock`` (``nn.Conv2d(groups=C)``) and ``sepconv``
(the same model passed through :func:`sepconv.torch.convert_depthwise`, weights copied).  Each
round times one step of every contestant, in alternating order, in the same process; the table
gives the median per contestant and the ratio ``stock / sepconv`` of the medians (above 1: sepconv
is faster), then the ratio of the best rounds (less sensitive to other load on the machine).

Two networks (``--model``): ``stack``, five inverted-residual blocks of MobileNetV2's stages 2-4 at
56x56 (the default), and ``mobilenet_v2``, the whole network as torchvision builds it (stem,
17 inverted-residual blocks, 1x1 head, classifier; 1000 classes) at 224x224 by default.

Measured per memory format (``channels_last`` and contiguous NCHW):

- ``train``: forward + backward + SGD step (momentum 0.9) of the whole stack, cross-entropy loss;
- ``infer``: forward under ``torch.inference_mode()`` in eval mode;
- ``dw fwd+bwd``: the depthwise layers alone (forward and backward of each, summed, the gradients
  of input and weights computed as in a training step, not accumulated into ``.grad``), to show
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


# MobileNetV2's inverted-residual settings (expansion t, out channels c, repeats n, first stride s)
MOBILENET_V2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _conv_bn_relu6(inp: int, out: int, kernel: int = 1, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(out),
                         nn.ReLU6(inplace=True))


class _FullInvertedResidual(nn.Module):
    """torchvision's block: no 1x1 expansion when ``t == 1``."""

    def __init__(self, inp: int, out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = inp * expansion
        layers = [] if expansion == 1 else [nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                                            nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(inplace=True), nn.Conv2d(hidden, out, 1, bias=False), nn.BatchNorm2d(out)]
        self.residual = stride == 1 and inp == out
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def mobilenet_v2(classes: int = 1000) -> nn.Sequential:
    """MobileNetV2 (width 1.0) with torchvision's layout."""
    layers: list[nn.Module] = [_conv_bn_relu6(3, 32, 3, 2)]
    inp = 32
    for expansion, out, repeats, stride in MOBILENET_V2:
        for index in range(repeats):
            layers.append(_FullInvertedResidual(inp, out, stride if index == 0 else 1, expansion))
            inp = out
    layers += [_conv_bn_relu6(inp, 1280), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, classes)]
    return nn.Sequential(*layers)


def depthwise_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, st.DepthwiseConv2d)
            or (isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1)]


def make_contestants(args, memory_format: torch.memory_format) -> dict[str, dict[str, Callable[[], None]]]:
    """{mode: {contestant: one step}} for one memory format."""
    torch.manual_seed(0)
    full = args.model == "mobilenet_v2"
    stock = (mobilenet_v2() if full else mobilenet_stack()).to(memory_format=memory_format)
    ours = st.convert_depthwise(copy.deepcopy(stock))
    x = torch.randn(args.batch, 3 if full else BLOCKS[0][0], args.size, args.size).to(memory_format=memory_format)
    target = torch.randint(0, 1000 if full else CLASSES, (args.batch,))
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
        inputs: list[torch.Tensor] = []
        layers = depthwise_layers(model)
        hooks = [layer.register_forward_pre_hook(lambda _, args: inputs.append(args[0].detach())) for layer in layers]
        try:
            with torch.no_grad():
                model.eval()(x)
        finally:
            for hook in hooks:
                hook.remove()
        cases = []
        with torch.no_grad():
            for layer, inp in zip(layers, inputs, strict=True):
                inp = inp.requires_grad_()
                grad = torch.randn_like(layer(inp))
                cases.append((f"dw {inp.shape[1]}@{inp.shape[2]}/s{layer.stride[0]}", layer, inp, grad))
        return cases

    def forward_and_backward(cases) -> Callable[[], None]:
        """As in a training step: the input's and the weights' gradients computed and handed back,
        not added into ``.grad`` (a leaf's ``.grad`` would grow by one input-sized addition per call)."""
        def step() -> None:
            for _, layer, inp, grad in cases:
                torch.autograd.grad(layer(inp), [inp, *layer.parameters()], grad)
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
    """Refuse to time a wrong answer: both models give the same output and gradients on (two images of)
    ``x``, in float64 copies.  (In float32 a deep network's gradients differ by up to a few percent
    between any two correct implementations: stock PyTorch's own ``channels_last`` and contiguous
    runs of the whole MobileNetV2 do, through its batch norms.)"""
    x = x[:2].double()
    outputs, grads = {}, {}
    for name, model in models.items():
        model = copy.deepcopy(model).double()
        outputs[name] = model(x)
        outputs[name].square().mean().backward()
        grads[name] = torch.cat([p.grad.flatten() for p in model.parameters()])
    out_err = ((outputs["stock"] - outputs["sepconv"]).abs().max() / outputs["stock"].abs().max()).item()
    grad_err = ((grads["stock"] - grads["sepconv"]).abs().max() / grads["stock"].abs().max()).item()
    print(f"  check (float64): max relative output diff {out_err:.2e}, max relative gradient diff {grad_err:.2e}",
          file=sys.stderr)
    if out_err > 1e-9 or grad_err > 1e-9:
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
    parser.add_argument("--model", choices=["stack", "mobilenet_v2"], default="stack",
                        help="five inverted-residual blocks at 56x56, or the whole MobileNetV2 at 224x224")
    parser.add_argument("--batch", type=int, default=8, help="batch size")
    parser.add_argument("--size", type=int, default=argparse.SUPPRESS,
                        help="input height and width (default: 56, or 224 for mobilenet_v2)")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (each times every contestant once)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds after the first call")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads and numba.set_num_threads")
    parser.add_argument("--formats", nargs="+", choices=["channels_last", "contiguous"],
                        default=["channels_last", "contiguous"], help="memory formats to measure")
    parser.add_argument("--layers", action="store_true",
                        help="also time each depthwise layer alone: forward, and forward + backward")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run: 3 rounds, no warm-up, batch 2")
    args = parser.parse_args(argv)
    if not hasattr(args, "size"):
        args.size = 224 if args.model == "mobilenet_v2" else 56
    if args.quick:
        args.rounds, args.warmup, args.batch = 3, 0, 2
    smallest = 4 if args.model == "stack" else 32  # the stack halves the image twice, MobileNetV2 five times
    if args.size < smallest or args.batch < 1:
        parser.error(f"--size must be at least {smallest} for --model {args.model} and --batch at least 1, "
                     f"got --size {args.size} --batch {args.batch}")
    if args.batch * (args.size // smallest) ** 2 < 2:
        parser.error(f"batch normalization in training needs more than one value per channel: with --model "
                     f"{args.model}, --batch {args.batch} x ({args.size} // {smallest})^2 must be at least 2")
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    blocks = ", ".join(f"{i}->{o}/s{s}" for i, o, s in BLOCKS)
    network = ("MobileNetV2 (torchvision's layout, 17 depthwise layers)" if args.model == "mobilenet_v2"
               else f"MobileNetV2-style stack, expansion {EXPANSION}, blocks {blocks}")
    print(f"{network}; batch {args.batch}, "
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
