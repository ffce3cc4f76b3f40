"""Layers: gradients against finite differences, Keras's semantics, optimizers, save/load,
argument errors, determinism, and a short training run that must reach a stated accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from sepconv.demo import threads
from sepconv.layers import (
    SGD,
    Adam,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    GlobalAveragePooling2D,
    MaxPooling2D,
    ReLU,
    ReLU6,
    SeparableConv2D,
    Sequential,
    softmax_cross_entropy,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Thousands of calls on tiny arrays: threads only add overhead (the ops' own tests cover them)."""
    with threads(1):
        yield


# --------------------------------------------------------------------------- finite differences


def numerical_gradient(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to every entry of ``x`` (changed in place)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f()
        x[i] = old - eps
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def check_layer_gradients(layer, input_shape, training=True, seed=0):
    """``backward`` against finite differences of ``sum(forward(x) * g)``, for the input and every parameter."""
    rng = np.random.default_rng(seed)
    layer.build(input_shape, rng, np.float64)
    for value in layer.params.values():  # non-trivial biases, gammas, betas
        value += rng.normal(0, 0.3, value.shape)
    x = rng.normal(size=(2, *input_shape))
    g = rng.normal(size=(2, *layer.output_shape))

    def loss():
        return float(np.sum(layer.forward(x, training=training) * g))

    loss()
    dx = layer.backward(g)
    grads = {name: value.copy() for name, value in layer.grads.items()}
    assert set(grads) == set(layer.params)
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-5, atol=1e-7)
    for name, param in layer.params.items():
        np.testing.assert_allclose(grads[name], numerical_gradient(loss, param), rtol=1e-5, atol=1e-7,
                                   err_msg=f"gradient of {name}")


CONV_LAYERS = [
    pytest.param(lambda: Conv2D(4, 3, padding="same"), (5, 6, 3), id="conv2d-same"),
    pytest.param(lambda: Conv2D(3, (2, 3), strides=2, padding="valid", activation="relu"), (7, 6, 2),
                 id="conv2d-strided-relu"),
    pytest.param(lambda: Conv2D(2, 3, dilation_rate=2, padding="same", use_bias=False), (7, 5, 2),
                 id="conv2d-dilated-nobias"),
    pytest.param(lambda: DepthwiseConv2D(3, depth_multiplier=2, padding="same"), (5, 5, 3), id="depthwise-m2"),
    pytest.param(lambda: DepthwiseConv2D((3, 2), strides=(2, 1), padding="valid", activation="relu6"), (7, 5, 2),
                 id="depthwise-strided-relu6"),
    pytest.param(lambda: DepthwiseConv2D(2, dilation_rate=2, padding="same", use_bias=False), (6, 5, 2),
                 id="depthwise-dilated"),
    pytest.param(lambda: SeparableConv2D(4, 3, padding="same"), (5, 6, 3), id="separable-m1"),
    pytest.param(lambda: SeparableConv2D(3, 3, strides=2, depth_multiplier=2, padding="same", activation="relu"),
                 (7, 6, 2), id="separable-strided-m2-relu"),
    pytest.param(lambda: SeparableConv2D(2, 2, dilation_rate=2, depth_multiplier=3, use_bias=False), (6, 6, 2),
                 id="separable-dilated-m3"),
]


@pytest.mark.parametrize("make, input_shape", CONV_LAYERS)
def test_conv_layer_gradients(impl, make, input_shape):
    check_layer_gradients(make(), input_shape)


@pytest.mark.parametrize("make, input_shape, training", [
    (lambda: BatchNormalization(), (3, 4, 3), True),
    (lambda: BatchNormalization(momentum=0.5, epsilon=1e-2), (3, 4, 3), False),
    (lambda: ReLU(), (3, 4, 2), True),
    (lambda: MaxPooling2D(2), (5, 4, 2), True),  # odd height: the last row is dropped
    (lambda: MaxPooling2D((2, 3)), (4, 6, 2), True),
    (lambda: AveragePooling2D(2), (5, 5, 2), True),
    (lambda: GlobalAveragePooling2D(), (3, 4, 3), True),
    (lambda: Flatten(), (3, 2, 2), True),
    (lambda: Dense(4), (6,), True),
    (lambda: Dense(3, activation="relu", use_bias=False), (5,), True),
], ids=["batchnorm-train", "batchnorm-inference", "relu", "maxpool", "maxpool-2x3", "avgpool", "gap",
        "flatten", "dense", "dense-relu-nobias"])
def test_layer_gradients(make, input_shape, training):
    check_layer_gradients(make(), input_shape, training=training)


def test_dense_products_run_on_sepconvs_ops(monkeypatch):
    """Dense's three products go through sepconv's 1x1 convolutions (on sepconv's threads), not ``x @ kernel``,
    whose large products wake OpenBLAS's own spinning threads; right against NumPy's products."""
    from sepconv import api

    calls = []
    for name in ("conv2d", "conv2d_backprop_filter", "conv2d_backprop_input"):
        real = getattr(api, name)
        monkeypatch.setattr(api, name, lambda *a, real=real, name=name: (calls.append(name), real(*a))[1])
    rng = np.random.default_rng(4)
    dense = Dense(7)
    dense.build((5,), rng, np.float64)
    x, dy = rng.normal(size=(3, 5)), rng.normal(size=(3, 7))
    np.testing.assert_allclose(dense.forward(x), x @ dense.params["kernel"] + dense.params["bias"], rtol=1e-12)
    np.testing.assert_allclose(dense.backward(dy), dy @ dense.params["kernel"].T, rtol=1e-12)
    np.testing.assert_allclose(dense.grads["kernel"], x.T @ dy, rtol=1e-12)
    assert calls == ["conv2d", "conv2d_backprop_filter", "conv2d_backprop_input"]


def test_relu6_gradient_on_both_sides_of_six():
    relu6 = ReLU6()
    relu6.build((3, 4, 2), np.random.default_rng(0), np.float64)
    x = np.random.default_rng(1).uniform(-2, 9, (2, 3, 4, 2))
    x[np.abs(x) < 0.1] += 0.5  # away from the kinks
    x[np.abs(x - 6) < 0.1] += 0.5
    g = np.random.default_rng(2).normal(size=x.shape)
    relu6.forward(x)
    dx = relu6.backward(g)
    np.testing.assert_allclose(dx, numerical_gradient(lambda: float(np.sum(relu6.forward(x) * g)), x), atol=1e-7)
    assert (dx[x > 6] == 0).all() and (dx[x < 0] == 0).all() and (x > 6).any()


def test_model_gradient_end_to_end(impl):
    rng = np.random.default_rng(3)
    model = Sequential([SeparableConv2D(4, 3, padding="same", depth_multiplier=2), BatchNormalization(), ReLU(),
                        MaxPooling2D(2), Conv2D(3, 2, activation="relu"), GlobalAveragePooling2D(), Dense(5)],
                       (6, 6, 2), seed=0, dtype=np.float64)
    x, labels = rng.normal(size=(3, 6, 6, 2)), np.array([0, 4, 2])

    def loss():
        return softmax_cross_entropy(model.forward(x, training=True), labels)[0]

    _, dlogits = softmax_cross_entropy(model.forward(x, training=True), labels)
    dx = model.backward(dlogits)
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-5, atol=1e-8)
    for name, grad in model.gradients().items():
        param = model.parameters()[name]
        np.testing.assert_allclose(grad, numerical_gradient(loss, param), rtol=1e-5, atol=1e-8, err_msg=name)


def test_softmax_cross_entropy_value_and_gradient():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(4, 5)) * 3, np.array([1, 0, 4, 4])
    loss, grad = softmax_cross_entropy(logits, labels)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.log(probabilities[np.arange(4), labels]).mean())
    np.testing.assert_allclose(grad, numerical_gradient(lambda: softmax_cross_entropy(logits, labels)[0], logits),
                               atol=1e-8)
    assert softmax_cross_entropy(np.array([[1000.0, 0.0]]), np.array([0]))[0] == pytest.approx(0.0)  # no overflow


# --------------------------------------------------------------------------- semantics


def test_separable_inference_is_one_fused_call_with_the_same_result(impl):
    layer = SeparableConv2D(5, 3, strides=2, padding="same", depth_multiplier=2, activation="relu")
    layer.build((9, 7, 3), np.random.default_rng(0), np.float64)
    layer.params["bias"] += 0.1
    x = np.random.default_rng(1).normal(size=(2, 9, 7, 3))
    np.testing.assert_allclose(layer.forward(x, training=False), layer.forward(x, training=True), rtol=1e-12,
                               atol=1e-12)


def test_layers_match_keras(tf):
    keras = tf.keras
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 8, 3)).astype(np.float32)
    cases = [
        (Conv2D(4, 3, strides=2, padding="same", activation="relu"),
         keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"), ["kernel", "bias"]),
        (DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
         keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), ["depthwise_kernel", "bias"]),
        (SeparableConv2D(5, 3, strides=2, padding="same", depth_multiplier=2, activation="relu6"),
         keras.layers.SeparableConv2D(5, 3, strides=2, padding="same", depth_multiplier=2, activation="relu6"),
         ["depthwise_kernel", "pointwise_kernel", "bias"]),
    ]
    for ours, theirs, names in cases:
        ours.build(x.shape[1:], rng, np.float32)
        ours.params["bias"] += rng.normal(size=ours.params["bias"].shape).astype(np.float32)
        theirs.build(x.shape)
        theirs.set_weights([ours.params[name] for name in names])
        np.testing.assert_allclose(ours.forward(x), np.asarray(theirs(x)), rtol=1e-5, atol=1e-5,
                                   err_msg=type(ours).__name__)


def test_batch_normalization_moving_statistics():
    bn = BatchNormalization(momentum=0.75)
    bn.build((2, 2, 2), np.random.default_rng(0), np.float64)
    x = np.random.default_rng(1).normal(3.0, 2.0, (5, 2, 2, 2))
    bn.forward(x, training=True)
    np.testing.assert_allclose(bn.state["moving_mean"], 0.25 * x.mean(axis=(0, 1, 2)))
    np.testing.assert_allclose(bn.state["moving_variance"], 0.75 + 0.25 * x.var(axis=(0, 1, 2)))
    y = bn.forward(x, training=False)  # inference: the moving statistics, not the batch's
    expected = (x - bn.state["moving_mean"]) / np.sqrt(bn.state["moving_variance"] + 1e-3)
    np.testing.assert_allclose(y, expected)


def test_pooling_values():
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    pool = MaxPooling2D(2)
    pool.build((4, 4, 1), np.random.default_rng(0), np.float64)
    np.testing.assert_array_equal(pool.forward(x)[0, ..., 0], [[5, 7], [13, 15]])
    average = AveragePooling2D(2)
    average.build((4, 4, 1), np.random.default_rng(0), np.float64)
    np.testing.assert_array_equal(average.forward(x)[0, ..., 0], [[2.5, 4.5], [10.5, 12.5]])


def test_optimizers_match_keras(tf):
    keras = tf.keras
    grads = [np.array([0.5, -1.0, 2.0]), np.array([0.1, 0.3, -0.2]), np.array([-1.0, 0.0, 1.0])]
    for ours, theirs in [(SGD(0.1, momentum=0.9), keras.optimizers.SGD(0.1, momentum=0.9)),
                         (Adam(0.01), keras.optimizers.Adam(0.01))]:
        w = np.array([1.0, 2.0, 3.0])
        variable = tf.Variable(w.copy())
        for g in grads:
            ours.step({"w": w}, {"w": g})
            theirs.apply_gradients([(tf.constant(g), variable)])
        np.testing.assert_allclose(w, variable.numpy(), rtol=1e-6, err_msg=type(ours).__name__)


def test_sgd_momentum_by_hand():
    w, sgd = np.array([1.0]), SGD(learning_rate=0.1, momentum=0.5)
    sgd.step({"w": w}, {"w": np.array([1.0])})  # v = -0.1
    sgd.step({"w": w}, {"w": np.array([1.0])})  # v = 0.5 * -0.1 - 0.1 = -0.15
    np.testing.assert_allclose(w, [0.75])


# --------------------------------------------------------------------------- model: determinism, save/load


def small_model(seed: int) -> Sequential:
    return Sequential([SeparableConv2D(6, 3, padding="same", depth_multiplier=2, use_bias=False),
                       BatchNormalization(), ReLU(), MaxPooling2D(2), Conv2D(8, 3, padding="same"),
                       GlobalAveragePooling2D(), Dense(10)], (8, 8, 1), seed=seed)


def train_steps(model: Sequential, steps: int) -> list[float]:
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 8, 8, 1), np.float32), rng.integers(0, 10, 32)
    optimizer, losses = Adam(0.01), []
    for _ in range(steps):
        loss, dlogits = softmax_cross_entropy(model.forward(x, training=True), y)
        model.backward(dlogits)
        optimizer.step(model.parameters(), model.gradients())
        losses.append(loss)
    return losses


def test_same_seed_same_weights_and_training():
    a, b, c = small_model(7), small_model(7), small_model(8)
    for name, value in a.variables().items():
        np.testing.assert_array_equal(value, b.variables()[name])
    assert not np.array_equal(a.parameters()["00_SeparableConv2D/depthwise_kernel"],
                              c.parameters()["00_SeparableConv2D/depthwise_kernel"])
    assert train_steps(a, 3) == train_steps(b, 3)
    assert all(p.dtype == np.float32 for p in a.parameters().values())


def test_save_load_round_trip(tmp_path):
    trained = small_model(0)
    losses = train_steps(trained, 5)
    assert losses[-1] < losses[0]
    path = tmp_path / "weights.npz"
    trained.save(path)
    fresh = small_model(1)
    x = np.random.default_rng(5).random((4, 8, 8, 1), np.float32)
    assert not np.allclose(fresh.predict(x), trained.predict(x))
    fresh.load(path)
    np.testing.assert_array_equal(fresh.predict(x), trained.predict(x))  # moving statistics came along too
    with np.load(path) as saved:
        assert {"01_BatchNormalization/moving_mean", "01_BatchNormalization/moving_variance"} <= set(saved.files)


def test_load_refuses_another_architecture(tmp_path):
    path = tmp_path / "weights.npz"
    small_model(0).save(path)
    other = Sequential([Flatten(), Dense(10)], (8, 8, 1))
    with pytest.raises(ValueError, match="does not match this model"):
        other.load(path)
    wider = Sequential([SeparableConv2D(7, 3, padding="same", depth_multiplier=2, use_bias=False),
                        BatchNormalization(), ReLU(), MaxPooling2D(2), Conv2D(8, 3, padding="same"),
                        GlobalAveragePooling2D(), Dense(10)], (8, 8, 1))
    with pytest.raises(ValueError, match="pointwise_kernel has shape"):
        wider.load(path)


def test_summary_counts_params_and_macs():
    model = Sequential([Conv2D(4, 3, padding="same"), ReLU(), SeparableConv2D(6, 3, depth_multiplier=2),
                        Flatten(), Dense(10)], (5, 5, 2))
    rows = model.summary()
    # conv2d: 5x5 outputs x 4 channels x 3x3x2 taps; separable on 5x5x4 VALID -> 3x3: depthwise 3x3x8x9, pointwise 3x3x8x6
    assert [row[3] for row in rows] == [25 * 4 * 18, 0, 9 * 8 * 9 + 9 * 8 * 6, 0, 54 * 10]
    assert [row[2] for row in rows] == [3 * 3 * 2 * 4 + 4, 0, 3 * 3 * 4 * 2 + 8 * 6 + 6, 0, 54 * 10 + 10]
    assert sum(row[2] for row in rows) == model.count_params()
    assert rows[2][1] == (3, 3, 6)


# --------------------------------------------------------------------------- argument errors


@pytest.mark.parametrize("make, error, message", [
    (lambda: Conv2D(0, 3), ValueError, "Conv2D: `filters` must be a positive int, got filters=0"),
    (lambda: Conv2D(4.0, 3), TypeError, "Conv2D: `filters` must be a positive int, got filters=4.0"),
    (lambda: Conv2D(4, (3, 3, 3)), TypeError, r"`kernel_size` must be an int or a pair of ints, got kernel_size=\(3, 3, 3\)"),
    (lambda: Conv2D(4, 3, strides=0), ValueError, "`strides` must be positive, got strides=0"),
    (lambda: Conv2D(4, 3, padding="full"), ValueError, r"Conv2D: `padding` must be one of \('valid', 'same'\)"),
    (lambda: Conv2D(4, 3, activation="tanh"), ValueError, "Conv2D: `activation` must be one of None"),
    (lambda: Conv2D(4, 3, use_bias="yes"), TypeError, "Conv2D: `use_bias` must be True or False"),
    (lambda: Conv2D(4, 3, kernel_initializer="zeros"), ValueError, "Conv2D: `kernel_initializer` must be one of"),
    (lambda: DepthwiseConv2D(3, depth_multiplier=0), ValueError, "DepthwiseConv2D: `depth_multiplier` must be a "
                                                                 "positive int"),
    (lambda: DepthwiseConv2D(3, dilation_rate=(1, True)), TypeError, "`dilation_rate` must be an int or a pair"),
    (lambda: SeparableConv2D(8, 3, depth_multiplier=1.5), TypeError, "SeparableConv2D: `depth_multiplier`"),
    (lambda: SeparableConv2D(8, 3, pointwise_initializer=None), ValueError, "`pointwise_initializer` must be"),
    (lambda: MaxPooling2D(2, strides=1), ValueError, r"MaxPooling2D: `strides` must be None or equal to pool_size"),
    (lambda: AveragePooling2D(2, padding="same"), ValueError, r"AveragePooling2D: `padding` must be one of \('valid',\)"),
    (lambda: BatchNormalization(momentum=1.0), ValueError, r"BatchNormalization: `momentum` must be in \[0, 1\)"),
    (lambda: Dense(-1), ValueError, "Dense: `units` must be a positive int"),
    (lambda: Adam(learning_rate=0), ValueError, "Adam: `learning_rate` must be a positive number"),
    (lambda: SGD(momentum=-0.1), ValueError, r"SGD: `momentum` must be in \[0, 1\)"),
    (lambda: Sequential([Dense(3)], (4, 4, 1)), ValueError, "Dense: expects flat examples"),
    (lambda: Sequential([Conv2D(3, 5)], (4, 4, 1)), ValueError, "Conv2D"),  # window larger than the input
    (lambda: Sequential([ReLU, Dense(3)], (4,)), TypeError, r"Sequential: `layers\[0\]` must be a Layer"),
])
def test_bad_arguments_name_the_argument(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_same_layer_twice_is_refused():
    relu = ReLU()
    with pytest.raises(ValueError, match="same layer instance appears twice"):
        Sequential([relu, relu], (3,))


# --------------------------------------------------------------------------- it trains


def test_separable_network_reaches_95_percent_on_digits():
    """The seed's case (separable, multiplier 1), with the demo's sound recipe: >= 95% on the
    held-out digits within 12 epochs of 23 steps (276 Adam steps)."""
    pytest.importorskip("sklearn")
    from sepconv.datasets import load_digits
    from sepconv.demo import Variant, build_model, train

    data = load_digits(seed=0)
    model = build_model(Variant(separable=True, multiplier=1, seed_recipe=False), (8, 8, 1), 10, seed=0)
    _, losses, accuracies = train(model, data, epochs=12, seed=0)
    assert accuracies[-1] >= 0.95
    assert losses[-1] < 0.5 * losses[0]


def test_docstring_examples_run():
    import doctest

    import sepconv.layers

    modules = [sepconv.layers, *(getattr(sepconv.layers, name) for name in ("base", "basic", "conv", "model",
                                                                           "optimizers"))]
    for module in modules:
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__
