"""``sepconv demo``: train a standard CNN and depthwise-separable CNNs on real digits and compare them.

The question it answers (``shared/seeds/003``): a network built with ``separable_conv2d``
trained to ~10% accuracy on MNIST where the same network with ``conv2d`` reached 99%, and
``channel_multiplier`` 2 did better than 1.  Why?

The demo trains, on scikit-learn's 8x8 handwritten digits, three networks of the same depth
and width: a standard CNN (``Conv2D``), and depthwise-separable CNNs (``SeparableConv2D``)
with ``depth_multiplier`` 1 and 2.  Each is trained twice with the same optimizer, data order
and epochs: once with a sound recipe (He initialization from each filter's true fan-in, batch
normalization after every convolution) and once with the seed's recipe (every weight drawn
from a normal of standard deviation 0.1, biases 0.1, no batch normalization, as in
TensorFlow's classic MNIST tutorial).  The table gives parameters, multiply-adds per image
(from :mod:`sepconv.cost`, the numbers ``sepconv explain`` prints), the size of the input's
signal at the classifier at initialization, training time and test accuracy, then a
paragraph that reads them.

Every layer runs on the library's own ops and gradients (:mod:`sepconv.layers`).  Training
is deterministic: the same ``--seed`` and ``--threads`` give the same numbers, bit for bit.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from .datasets import INSTALL_HINT, ImageSplit
from .layers import (
    Adam,
    BatchNormalization,
    Conv2D,
    Dense,
    GlobalAveragePooling2D,
    Layer,
    MaxPooling2D,
    ReLU,
    SeparableConv2D,
    Sequential,
    softmax_cross_entropy,
)

WIDTHS = (32, 32, 64, 64)
"""Output channels of the four 3x3 convolutions; a 2x2 max-pool follows the second."""

BATCH_SIZE = 64
LEARNING_RATE = 3e-3
DEFAULT_EPOCHS = 12
QUICK_EPOCHS = 3
SEED_STDDEV = 0.1
SEED_BIAS = 0.1
WRAP = 110


@dataclass(frozen=True)
class Variant:
    """One network to train: standard or separable, its depth multiplier, and the recipe."""

    separable: bool
    multiplier: int
    seed_recipe: bool

    @property
    def label(self) -> str:
        """Name in the table.

        Examples
        --------
        >>> Variant(separable=True, multiplier=2, seed_recipe=False).label
        'separable CNN, multiplier 2'
        """
        return f"separable CNN, multiplier {self.multiplier}" if self.separable else "standard CNN"


VARIANTS = tuple(Variant(separable, multiplier, seed_recipe)
                 for seed_recipe in (False, True)
                 for separable, multiplier in ((False, 1), (True, 1), (True, 2)))


def seed_recipe_normal(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    """The seed's initializer: normal with standard deviation 0.1 truncated at two deviations,
    whatever the filter's size (``tf.truncated_normal(shape, stddev=0.1)``).

    Examples
    --------
    >>> import numpy as np
    >>> w = seed_recipe_normal(np.random.default_rng(0), (3, 3, 32, 1), 9, 9)
    >>> bool(np.abs(w).max() <= 0.2)
    True
    """
    w = rng.normal(0.0, SEED_STDDEV, size=shape)
    outside = np.abs(w) > 2 * SEED_STDDEV
    while outside.any():  # redraw, as a truncated normal does
        w[outside] = rng.normal(0.0, SEED_STDDEV, size=int(outside.sum()))
        outside = np.abs(w) > 2 * SEED_STDDEV
    return w


def build_model(variant: Variant, input_shape: tuple[int, ...], classes: int, seed: int) -> Sequential:
    """The network of ``variant``: four 3x3 convolutions (``WIDTHS``), a 2x2 max-pool after the
    second, global average pooling and a dense classifier.

    With the sound recipe each convolution has no bias and is followed by batch normalization
    and ReLU; with the seed's recipe each convolution has a bias and a ReLU, and every weight
    comes from :func:`seed_recipe_normal` and every bias is 0.1.

    Examples
    --------
    >>> model = build_model(Variant(True, 1, False), (8, 8, 1), 10, seed=0)
    >>> model.output_shape, model.count_params()
    ((10,), 9395)
    """
    init = seed_recipe_normal if variant.seed_recipe else "he_normal"

    def convolution(filters: int) -> Layer:
        common = {"padding": "same", "use_bias": variant.seed_recipe}
        if variant.separable:
            return SeparableConv2D(filters, 3, depth_multiplier=variant.multiplier, depthwise_initializer=init,
                                   pointwise_initializer=init, **common)
        return Conv2D(filters, 3, kernel_initializer=init, **common)

    layers: list[Layer] = []
    for i, filters in enumerate(WIDTHS):
        layers.append(convolution(filters))
        if not variant.seed_recipe:
            layers.append(BatchNormalization(momentum=0.9))
        layers.append(ReLU())
        if i == 1:
            layers.append(MaxPooling2D(2))
    layers += [GlobalAveragePooling2D(),
               Dense(classes, kernel_initializer=seed_recipe_normal if variant.seed_recipe else "glorot_uniform")]
    model = Sequential(layers, input_shape, seed=seed)
    if variant.seed_recipe:
        for name, value in model.parameters().items():
            if name.endswith("/bias"):
                value[...] = SEED_BIAS
    return model


def signal_at_classifier(model: Sequential, x: np.ndarray) -> float:
    """How much the input moves the features the classifier sees, as training sees them: their
    standard deviation across the images ``x``, averaged over features (batch normalization
    uses the batch's statistics; ``model`` itself is left untouched).

    Examples
    --------
    >>> import numpy as np
    >>> model = build_model(Variant(False, 1, True), (8, 8, 1), 10, seed=0)
    >>> signal_at_classifier(model, np.zeros((4, 8, 8, 1), np.float32)) < 1e-6  # the same image four times
    True
    """
    features = np.asarray(x, model.dtype)
    for layer in copy.deepcopy(model.layers[:-1]):
        features = layer.forward(features, training=True)
    return float(features.std(axis=0).mean())


# --------------------------------------------------------------------------- training


@dataclass
class Result:
    """What training one variant produced."""

    variant: Variant
    params: int
    macs: int
    signal_at_init: float
    layers: list[tuple[str, tuple[int, ...], int, int]]
    seconds: float = 0.0
    train_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)


class Progress:
    """A progress line on ``stream``: redrawn in place on a terminal, one line per epoch otherwise.

    Examples
    --------
    >>> import io
    >>> stream = io.StringIO()
    >>> progress = Progress(stream, "net", epochs=2, steps=10)
    >>> progress.step(1, 5, 0.7)  # drawn only on a terminal
    >>> progress.epoch_done(1, 0.5, 0.9)
    >>> stream.getvalue()
    'net epoch 1/2 loss 0.500, test accuracy 90.0%\\n'
    """

    def __init__(self, stream: TextIO, label: str, epochs: int, steps: int) -> None:
        self.stream, self.label, self.epochs, self.steps = stream, label, epochs, steps
        self.live = stream.isatty()

    def step(self, epoch: int, step: int, loss: float) -> None:
        """Redraw the bar after ``step`` of ``steps`` in ``epoch`` (on a terminal only)."""
        if self.live:
            filled = round(20 * step / self.steps)
            self.stream.write(f"\r{self.label} epoch {epoch}/{self.epochs} "
                              f"[{'#' * filled}{'.' * (20 - filled)}] loss {loss:.3f}")
            self.stream.flush()

    def epoch_done(self, epoch: int, loss: float, accuracy: float) -> None:
        """Finish ``epoch`` with its mean loss and test accuracy."""
        line = f"{self.label} epoch {epoch}/{self.epochs} loss {loss:.3f}, test accuracy {accuracy:.1%}"
        self.stream.write(f"\r{line}{' ' * 12}" if self.live else line)
        if not self.live or epoch == self.epochs:
            self.stream.write("\n")
        self.stream.flush()


def accuracy(model: Sequential, x: np.ndarray, y: np.ndarray) -> float:
    """Share of ``x`` whose highest logit is the label ``y`` (inference mode).

    Examples
    --------
    >>> import numpy as np
    >>> from sepconv.layers import Flatten, Sequential
    >>> model = Sequential([Flatten()], (1, 1, 3))  # the logits are the pixels
    >>> accuracy(model, np.array([[[[0.0, 1.0, 0.0]]], [[[1.0, 0.0, 0.0]]]]), np.array([1, 2]))
    0.5
    """
    return float((model.predict(x).argmax(axis=1) == y).mean())


def train(model: Sequential, data: ImageSplit, epochs: int, seed: int, progress: Progress | None = None,
          learning_rate: float = LEARNING_RATE, batch_size: int = BATCH_SIZE) -> tuple[float, list[float], list[float]]:
    """Adam with a cosine-decayed learning rate, ``epochs`` passes over the training images in an
    order drawn from ``seed`` (the same for every model).

    Returns
    -------
    seconds : float
        Wall time of the training steps (evaluation excluded).
    train_loss, test_accuracy : list of float
        Mean training loss and test accuracy after each epoch.

    Examples
    --------
    >>> from sepconv.datasets import load_digits
    >>> data = load_digits()
    >>> model = build_model(Variant(True, 2, False), (8, 8, 1), 10, seed=0)
    >>> with threads(1):
    ...     seconds, losses, accuracies = train(model, data, epochs=1, seed=0)
    >>> accuracies[-1] > 0.5
    True
    """
    optimizer = Adam(learning_rate)
    order_rng = np.random.default_rng(seed)
    n = len(data.x_train)
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = epochs * steps_per_epoch
    seconds, losses, accuracies = 0.0, [], []
    for epoch in range(1, epochs + 1):
        order = order_rng.permutation(n)
        epoch_loss = 0.0
        for step in range(steps_per_epoch):
            batch = order[step * batch_size:(step + 1) * batch_size]
            done = (epoch - 1) * steps_per_epoch + step
            optimizer.learning_rate = learning_rate * 0.5 * (1 + math.cos(math.pi * done / total_steps))
            start = time.perf_counter()
            loss, dlogits = softmax_cross_entropy(model.forward(data.x_train[batch], training=True),
                                                  data.y_train[batch])
            model.backward(dlogits)
            optimizer.step(model.parameters(), model.gradients())
            seconds += time.perf_counter() - start
            epoch_loss += loss * len(batch) / n
            if progress:
                progress.step(epoch, step + 1, loss)
        losses.append(epoch_loss)
        accuracies.append(accuracy(model, data.x_test, data.y_test))
        if progress:
            progress.epoch_done(epoch, epoch_loss, accuracies[-1])
    return seconds, losses, accuracies


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    """Run Numba's kernels and the BLAS on ``count`` threads inside the block.

    The demo's tensors are tiny (8x8 images, batches of 64): threads cost more than they give,
    and the parallel reductions' rounding depends on the thread count.

    Examples
    --------
    >>> import numba
    >>> with threads(1):
    ...     numba.get_num_threads()
    1
    """
    import numba
    from threadpoolctl import threadpool_limits

    before = numba.get_num_threads()
    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpool_limits(count):
            yield
    finally:
        numba.set_num_threads(before)


def run_variants(data: ImageSplit, variants: tuple[Variant, ...], epochs: int, seed: int,
                 stream: TextIO | None = None) -> list[Result]:
    """Build and train each variant from ``seed``; return what each produced.

    Examples
    --------
    >>> from sepconv.datasets import load_digits
    >>> with threads(1):
    ...     [r] = run_variants(load_digits(), (Variant(False, 1, True),), epochs=1, seed=0)
    >>> r.params, r.macs, len(r.test_accuracy)
    (65642, 1493632, 1)
    """
    labels = [f"[{i}/{len(variants)}] {v.label} ({'seed' if v.seed_recipe else 'sound'} recipe)"
              for i, v in enumerate(variants, 1)]
    labels = [label.ljust(max(map(len, labels))) for label in labels]
    results = []
    for i, variant in enumerate(variants, 1):
        model = build_model(variant, data.x_train.shape[1:], data.classes, seed)
        rows = model.summary()
        result = Result(variant, model.count_params(), sum(row[3] for row in rows),
                        signal_at_classifier(model, data.x_test), rows)
        progress = Progress(stream, labels[i - 1], epochs, math.ceil(len(data.x_train) / BATCH_SIZE)) if stream else None
        result.seconds, result.train_loss, result.test_accuracy = train(model, data, epochs, seed, progress)
        results.append(result)
    return results


# --------------------------------------------------------------------------- report


def table(results: list[Result]) -> str:
    """The results as an aligned text table, sound recipe first, then the seed's recipe.

    Examples
    --------
    >>> r = Result(Variant(False, 1, False), params=10, macs=20, signal_at_init=0.5, layers=[], seconds=1.0,
    ...            train_loss=[1.0], test_accuracy=[0.9])
    >>> table([r]).splitlines()[-1].split()
    ['standard', 'CNN', '10', '20', '0.5', '1.0s', '90.0%']
    """
    header = ("model", "params", "MACs/image", "signal at init", "train time", "test accuracy")
    lines = []
    for seed_recipe, title in ((False, "sound recipe: He init from each filter's fan-in, batch norm"),
                               (True, f"seed's recipe: weights ~ N(0, {SEED_STDDEV}) truncated, biases {SEED_BIAS}, "
                                      "no batch norm")):
        rows = [r for r in results if r.variant.seed_recipe == seed_recipe]
        if not rows:
            continue
        lines.append(title)
        lines.append(f"  {header[0]:<28} {header[1]:>8} {header[2]:>11} {header[3]:>15} {header[4]:>11} {header[5]:>14}")
        for r in rows:
            lines.append(f"  {r.variant.label:<28} {r.params:>8,} {r.macs:>11,} {r.signal_at_init:>15.2g} "
                         f"{r.seconds:>10.1f}s {r.test_accuracy[-1]:>14.1%}")
    return "\n".join(lines)


def footnote(results: list[Result]) -> str:
    """What the columns mean, and the ``sepconv explain`` command that shows one layer's figures.

    Examples
    --------
    >>> "sepconv.cost" in footnote([])  # where the multiply-adds come from
    True
    """
    text = textwrap.fill(
        "Params: trainable parameters (filters, biases, batch-norm scales and shifts, classifier). "
        "MACs: multiply-adds of one image's forward pass (convolutions and the classifier, padded taps included), "
        "from sepconv.cost. 'signal at init': spread across the test images of the features entering the "
        "classifier, before training. Train time: wall time of the training steps.", WRAP)
    sep1 = _find(results, True, 1, False)
    if sep1:
        # the second convolution: SAME with stride 1, so its input is as large as its output
        _, (h, w, _), params, macs = [row for row in sep1.layers if "SeparableConv2D" in row[0]][1]
        text += (f"\nThe second layer of the separable network with multiplier 1 has {params:,} weights and does "
                 f"{macs:,} multiply-adds;\nits 'separable' column in: sepconv explain --input "
                 f"1x{h}x{w}x{WIDTHS[0]} --kernel 3 --out {WIDTHS[1]} --multiplier 1")
    return text


def _find(results: list[Result], separable: bool, multiplier: int, seed_recipe: bool) -> Result | None:
    return next((r for r in results if r.variant == Variant(separable, multiplier, seed_recipe)), None)


def predicted_signal_ratio(multiplier: int, layers: int = len(WIDTHS), stddev: float = SEED_STDDEV) -> float:
    """How many times less signal ``layers`` separable layers pass than conv2d layers when every
    weight has standard deviation ``stddev``.

    A conv2d layer multiplies the spread of its input by about ``stddev * sqrt(kh*kw*C)``; a
    separable layer by ``stddev * sqrt(kh*kw)`` (depthwise) times ``stddev * sqrt(C*multiplier)``
    (pointwise): ``stddev * sqrt(multiplier)`` times less, whatever ``kh``, ``kw`` and ``C``.

    Examples
    --------
    >>> round(predicted_signal_ratio(1)), round(predicted_signal_ratio(2))
    (10000, 2500)
    """
    return (stddev * math.sqrt(multiplier)) ** -layers


def reading(results: list[Result]) -> str:
    """A paragraph that reads the table and answers the seed's question, from the numbers in it
    (empty unless all six networks are there).

    Examples
    --------
    >>> reading([])
    ''
    """
    conv, sep1, sep2 = (_find(results, s, m, False) for s, m in ((False, 1), (True, 1), (True, 2)))
    seed_conv, seed_sep1, seed_sep2 = (_find(results, s, m, True) for s, m in ((False, 1), (True, 1), (True, 2)))
    if not all((conv, sep1, sep2, seed_conv, seed_sep1, seed_sep2)):
        return ""
    final = {id(r): r.test_accuracy[-1] for r in (conv, sep1, sep2, seed_conv, seed_sep1, seed_sep2)}
    epochs = len(conv.train_loss)
    trained = min(final[id(sep1)], final[id(sep2)]) >= 0.9
    if final[id(seed_conv)] < 0.5:
        verdict = f"{epochs} epoch(s) are too few for the seed's recipe to say much; run more --epochs. "
    elif final[id(seed_sep1)] < 0.5 * final[id(seed_conv)]:
        verdict = "the seed's failure, reproduced. "
    else:
        verdict = "in this run the failure is milder than the seed's. "
    measured = [seed_conv.signal_at_init / max(r.signal_at_init, 1e-300) for r in (seed_sep1, seed_sep2)]
    return (
        ("With He initialization and batch normalization both separable networks train: " if trained else
         f"With He initialization and batch normalization, after {epochs} epoch(s) the separable networks are still "
         f"learning (more --epochs closes the gap): ")
        + f"{final[id(sep1)]:.1%} (multiplier 1) and {final[id(sep2)]:.1%} (multiplier 2) against "
        f"{final[id(conv)]:.1%} for the standard CNN, with {conv.params / sep1.params:.1f}x and "
        f"{conv.params / sep2.params:.1f}x fewer parameters and {conv.macs / sep1.macs:.1f}x and "
        f"{conv.macs / sep2.macs:.1f}x fewer multiply-adds (time falls less, {conv.seconds / sep1.seconds:.1f}x "
        f"for multiplier 1: on 8x8 images the fixed cost of each op call weighs more than its arithmetic, and a "
        f"separable layer makes two calls forward and four backward where conv2d makes one and two). "
        f"With the seed's recipe the same separable networks reach {final[id(seed_sep1)]:.1%} and "
        f"{final[id(seed_sep2)]:.1%} while the standard CNN reaches {final[id(seed_conv)]:.1%}: "
        + verdict
        + f"The cause is the scale of the initial weights, which the 'signal at init' column measures. "
        f"A conv2d tap is one weight of standard deviation {SEED_STDDEV}; a separable tap is a depthwise weight "
        f"times a pointwise weight, {SEED_STDDEV} x {SEED_STDDEV}, so each separable layer passes "
        f"1 / ({SEED_STDDEV} x sqrt(multiplier)) times less signal than the conv2d layer it replaces: over "
        f"{len(WIDTHS)} layers {predicted_signal_ratio(1):,.0f}x less for multiplier 1 and "
        f"{predicted_signal_ratio(2):,.0f}x for multiplier 2; this run measured {measured[0]:,.0f}x and "
        f"{measured[1]:,.0f}x. What reaches the classifier then barely depends on the image (the {SEED_BIAS} biases "
        f"added on the way are not shrunk), and the gradients that would make it depend on the image are as small: "
        f"the network learns little beyond the class frequencies (chance is 10%). Multiplier 2 helped the seed "
        f"because it doubles the pointwise filter's fan-in (and gives the one grey-scale input channel two filters "
        f"instead of one), not because 1 is a bad value: initialize each factor from its own fan-in (depthwise "
        f"kh x kw, pointwise channels x multiplier) or normalize after each layer (either alone is enough), and "
        f"multiplier 1 trains; the multiplier is then a width knob that buys accuracy with parameters and "
        f"multiply-adds. (Fixing the pointwise filter to ones, the seed's other "
        f"attempt, makes every output channel the same sum: a network one channel wide.)"
    )


def plot_curves(results: list[Result], path: str) -> None:
    """Training loss and test accuracy per epoch, one line per network, saved as a PNG at ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> r = Result(Variant(True, 1, True), params=1, macs=1, signal_at_init=0.0, layers=[],
    ...            train_loss=[2.3, 2.2], test_accuracy=[0.1, 0.2])
    >>> path = os.path.join(tempfile.mkdtemp(), "curves.png")
    >>> plot_curves([r], path)
    >>> os.path.getsize(path) > 0
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {}
    for r in results:  # one color per network, solid for the sound recipe, dashed for the seed's
        color = colors.setdefault((r.variant.separable, r.variant.multiplier), f"C{len(colors)}")
        style = {"color": color, "linestyle": "--" if r.variant.seed_recipe else "-", "marker": "o", "markersize": 3,
                 "label": f"{r.variant.label}{' (seed recipe)' if r.variant.seed_recipe else ''}"}
        epochs = range(1, len(r.train_loss) + 1)
        ax_loss.plot(epochs, r.train_loss, **style)
        ax_acc.plot(epochs, r.test_accuracy, **style)
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.set(xlabel="epoch", ylabel="training loss (cross-entropy)", yscale="log", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1), title="test accuracy (digits)")
    ax_acc.axhline(0.1, color="grey", linewidth=0.8, linestyle=":")
    ax_acc.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``sepconv demo``'s options on ``parser``.

    Examples
    --------
    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> add_arguments(p)
    >>> p.parse_args(["--quick"]).quick
    True
    """
    parser.epilog = ("Trains six networks on scikit-learn's 8x8 handwritten digits (shipped with it, no download): "
                     "a standard CNN and separable CNNs with multiplier 1 and 2, each with a sound recipe and with "
                     "the recipe of the question in shared/seeds/003 (N(0, 0.1) weights, 0.1 biases, no batch "
                     "norm). About a minute on 2 cores; --quick about 20 s.")
    parser.add_argument("--epochs", type=_positive, default=None, metavar="N",
                        help=f"passes over the training images (default {DEFAULT_EPOCHS}, {QUICK_EPOCHS} with --quick)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the split, the weights and the batch order "
                                                            "(default 0)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_EPOCHS} epochs: the same table in a fraction of the time")
    parser.add_argument("--threads", type=_positive, default=1, metavar="N",
                        help="threads for sepconv's kernels and the BLAS (default 1; the tensors are tiny). "
                             "The same seed and thread count give the same numbers")
    parser.add_argument("--plot", metavar="FILE.png", help="save training curves (needs matplotlib)")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def run(args: argparse.Namespace, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    """Train the networks, print the table and its reading; 2 if scikit-learn (or matplotlib for
    ``--plot``) is missing.  Progress goes to ``stderr``.

    Examples
    --------
    >>> import argparse, io
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> out = io.StringIO()
    >>> run(parser.parse_args(["--epochs", "1"]), stdout=out, stderr=io.StringIO())
    0
    >>> out.getvalue().splitlines()[1]
    "sound recipe: He init from each filter's fan-in, batch norm"
    """
    from .datasets import load_digits

    try:
        data = load_digits(seed=args.seed)
    except ImportError:
        print(f"sepconv demo needs scikit-learn for its data (8x8 digits): {INSTALL_HINT}", file=stderr)
        return 2
    if args.plot and not _has_matplotlib():
        print("sepconv demo --plot needs matplotlib: pip install \"sepconv[plot]\"", file=stderr)
        return 2
    epochs = args.epochs or (QUICK_EPOCHS if args.quick else DEFAULT_EPOCHS)
    print(f"{data.describe()}; {epochs} epochs, batch {BATCH_SIZE}, Adam (learning rate {LEARNING_RATE}, cosine "
          f"decay), seed {args.seed}, {args.threads} thread{'s' if args.threads > 1 else ''}", file=stdout)
    stdout.flush()
    with threads(args.threads):
        print("warming up (the first run on a machine compiles sepconv's kernels) ...", file=stderr, flush=True)
        _warm_up(data)
        started = time.perf_counter()
        results = run_variants(data, VARIANTS, epochs, args.seed, stderr)
        total = time.perf_counter() - started
    print(table(results), file=stdout)
    print(f"\n{footnote(results)}\nTotal {total:.0f} s.\n", file=stdout)
    print(textwrap.fill(reading(results), WRAP), file=stdout)
    if args.plot:
        plot_curves(results, args.plot)
        print(f"\ntraining curves: {args.plot}", file=stdout)
    return 0


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _warm_up(data: ImageSplit) -> None:
    """One training step of each kind of network, untimed, so that no row pays for compiling kernels."""
    for variant in (Variant(False, 1, False), Variant(True, 2, False)):
        model = build_model(variant, data.x_train.shape[1:], data.classes, seed=0)
        _, dlogits = softmax_cross_entropy(model.forward(data.x_train[:8], training=True), data.y_train[:8])
        model.backward(dlogits)
        model.predict(data.x_test[:8])
