"""``sepconv demo``: the command prints its table; the numbers agree with hand counts and with
``sepconv explain``; same seed, same numbers; missing optional packages give a one-line hint."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from sepconv import cli, demo
from sepconv.layers import (
    BatchNormalization,
    Dense,
    GlobalAveragePooling2D,
    MaxPooling2D,
    ReLU,
    SeparableConv2D,
    Sequential,
)

pytest.importorskip("sklearn")

from sepconv.datasets import load_digits  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    """The demo's own setting: tiny tensors, threads only add overhead."""
    with demo.threads(1):
        yield


def demo_args(**overrides) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args([])
    vars(args).update(overrides)
    return args


def test_quick_demo_prints_the_table_and_its_reading():
    done = subprocess.run([sys.executable, "-m", "sepconv", "demo", "--quick"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "sound recipe" in out and "seed's recipe" in out
    assert "params" in out and "MACs/image" in out and "train time" in out and "test accuracy" in out
    for label in ("standard CNN", "separable CNN, multiplier 1", "separable CNN, multiplier 2"):
        assert out.count(label) >= 2
    assert "65,834" in out and "1,493,632" in out  # the standard CNN's parameters and multiply-adds
    assert "The cause is the scale of the initial weights" in out
    assert "epoch 3/3" in done.stderr  # progress went to stderr


def test_hand_counted_parameters_and_multiply_adds():
    """Four 3x3 SAME convolutions 1->32->32 (8x8), max-pool, 32->64->64 (4x4), then dense 64->10."""
    layers = [(64, 1, 32), (64, 32, 32), (16, 32, 64), (16, 64, 64)]  # (pixels, in, out)
    dense_macs, dense_params = 64 * 10, 64 * 10 + 10
    batch_norm = 2 * sum(out for _, _, out in layers)
    conv_macs = sum(p * 9 * i * o for p, i, o in layers) + dense_macs
    for multiplier in (1, 2):
        model = demo.build_model(demo.Variant(True, multiplier, False), (8, 8, 1), 10, seed=0)
        sep_macs = sum(p * i * multiplier * (9 + o) for p, i, o in layers) + dense_macs
        sep_params = sum(i * multiplier * (9 + o) for _, i, o in layers) + batch_norm + dense_params
        assert sum(row[3] for row in model.summary()) == sep_macs
        assert model.count_params() == sep_params
    model = demo.build_model(demo.Variant(False, 1, False), (8, 8, 1), 10, seed=0)
    assert sum(row[3] for row in model.summary()) == conv_macs == 1_493_632
    assert model.count_params() == sum(9 * i * o for _, i, o in layers) + batch_norm + dense_params == 65_834
    seed_model = demo.build_model(demo.Variant(False, 1, True), (8, 8, 1), 10, seed=0)  # biases, no batch norm
    assert seed_model.count_params() == 65_834 - batch_norm + sum(o for _, _, o in layers)


@pytest.mark.parametrize("variant", [demo.Variant(False, 1, False), demo.Variant(True, 1, False),
                                     demo.Variant(True, 2, False)], ids=lambda v: v.label)
def test_layer_costs_agree_with_sepconv_explain(variant, capsys):
    model = demo.build_model(variant, (8, 8, 1), 10, seed=0)
    shape = model.input_shape
    checked = 0
    for layer, (_, output_shape, params, macs) in zip(model.layers, model.summary(), strict=True):
        if type(layer).__name__ in ("Conv2D", "SeparableConv2D"):
            h, w, c = shape
            assert cli.main(["explain", "--input", f"1x{h}x{w}x{c}", "--kernel", "3", "--out", str(layer.filters),
                             "--multiplier", str(variant.multiplier), "--json"]) == 0
            ops = {op["name"]: op for op in json.loads(capsys.readouterr().out)["ops"]}
            op = ops["separable" if variant.separable else "conv2d"]
            assert (op["params"], op["macs"]) == (params, macs)  # no bias in the sound recipe
            checked += 1
        shape = output_shape
    assert checked == 4


def test_same_seed_same_numbers_and_another_seed_differs():
    data = load_digits(seed=3)
    variants = (demo.Variant(True, 1, False),)
    first, again = (demo.run_variants(data, variants, epochs=1, seed=3)[0] for _ in range(2))
    other = demo.run_variants(load_digits(seed=4), variants, epochs=1, seed=4)[0]
    assert first.train_loss == again.train_loss and first.test_accuracy == again.test_accuracy
    assert first.signal_at_init == again.signal_at_init
    assert first.train_loss != other.train_loss


def test_split_is_stratified_and_deterministic():
    a, b, c = load_digits(seed=0), load_digits(seed=0), load_digits(seed=1)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.y_test, c.y_test)
    assert a.x_train.shape[1:] == (8, 8, 1) and a.x_train.dtype == np.float32
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    counts = np.bincount(a.y_test)
    assert counts.min() >= 35 and counts.max() <= 37  # 20% of each class (174..183 images)
    assert len(a.x_train) + len(a.x_test) == 1797


def test_seed_recipe_signal_shrinks_as_predicted():
    """The measured ratio of classifier-input spread, conv2d over separable, under the seed's
    N(0, 0.1) weights, is within 2x of (0.1 * sqrt(multiplier)) ** -4."""
    x = load_digits(seed=0).x_test
    signal = {m: demo.signal_at_classifier(demo.build_model(demo.Variant(m > 0, max(m, 1), True), (8, 8, 1), 10,
                                                            seed=0), x) for m in (0, 1, 2)}
    for multiplier in (1, 2):
        ratio = signal[0] / signal[multiplier]
        assert 0.5 < ratio / demo.predicted_signal_ratio(multiplier) < 2, (multiplier, ratio)


def test_demo_with_plot_in_process(tmp_path):
    pytest.importorskip("matplotlib")
    out, err = io.StringIO(), io.StringIO()
    path = tmp_path / "curves.png"
    assert demo.run(demo_args(epochs=1, plot=str(path)), stdout=out, stderr=err) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = out.getvalue()
    assert "1 epochs" in text and f"training curves: {path}" in text
    assert "epoch 1/1" in err.getvalue()


def test_missing_scikit_learn_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    err = io.StringIO()
    assert demo.run(demo_args(), stdout=io.StringIO(), stderr=err) == 2
    assert err.getvalue().count("\n") == 1 and 'pip install "sepconv[demo]"' in err.getvalue()


def test_missing_matplotlib_stops_before_training(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out, err = io.StringIO(), io.StringIO()
    assert demo.run(demo_args(plot=str(tmp_path / "x.png")), stdout=out, stderr=err) == 2
    assert out.getvalue() == "" and "needs matplotlib" in err.getvalue()


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--threads", "-1"], ["--epochs", "two"]])
def test_bad_options_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["demo", *argv])
    assert stop.value.code == 2
    assert "sepconv demo: error: argument" in capsys.readouterr().err


def test_docstring_examples_run():
    import doctest

    import sepconv.datasets

    for module in (demo, sepconv.datasets):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_either_fix_alone_makes_the_separable_network_train():
    """The reading's claim: He initialization without batch norm, or the seed's N(0, 0.1) weights
    with batch norm, each make the multiplier-1 separable network train (6 epochs), where the
    seed's recipe (N(0, 0.1), no batch norm) stays near chance."""
    def separable_net(init, batch_norm: bool) -> Sequential:
        layers = []
        for i, filters in enumerate(demo.WIDTHS):
            layers.append(SeparableConv2D(filters, 3, padding="same", use_bias=not batch_norm,
                                          depthwise_initializer=init, pointwise_initializer=init))
            layers += [BatchNormalization(momentum=0.9)] if batch_norm else []
            layers += [ReLU(), MaxPooling2D(2)] if i == 1 else [ReLU()]
        return Sequential([*layers, GlobalAveragePooling2D(), Dense(10)], (8, 8, 1), seed=0)

    data = load_digits(seed=0)
    accuracy = {}
    for name, init, batch_norm in [("he", "he_normal", False), ("seed+bn", demo.seed_recipe_normal, True),
                                   ("seed", demo.seed_recipe_normal, False)]:
        accuracy[name] = demo.train(separable_net(init, batch_norm), data, epochs=6, seed=0)[2][-1]
    assert accuracy["he"] >= 0.8 and accuracy["seed+bn"] >= 0.9 and accuracy["seed"] <= 0.2, accuracy
