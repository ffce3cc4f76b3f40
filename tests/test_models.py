"""Model tables against the papers: totals, layer shapes, and an independent recount from the papers' formulas."""

from __future__ import annotations

import pytest

from sepconv.models import MODELS, PUBLISHED, model_layers, model_totals


def _within(value: float, published: float, tolerance: float = 0.01) -> bool:
    return abs(value / published - 1) <= tolerance


def test_mobilenet_v1_matches_the_paper():
    totals = model_totals("mobilenet_v1")
    assert _within(totals.macs, 569e6) and _within(totals.params, 4.2e6)
    assert totals.macs == 568_740_352
    assert totals.params == 4_210_088 and totals.biases == 1000  # weights + the classifier's bias
    # Keras' MobileNet "Trainable params" adds batch norm's gamma and beta: 4,231,976.
    assert totals.params + totals.batch_norm_params // 2 == 4_231_976


def test_mobilenet_v1_recounted_from_the_paper_table():
    """Table 1 with the paper's cost formulas: D_K^2 M D_F^2 (depthwise), M N D_F^2 (pointwise)."""
    table = [  # (kind, M in, N out, D_F output size)
        ("full", 3, 32, 112), ("dw", 32, 32, 112), ("pw", 32, 64, 112), ("dw", 64, 64, 56), ("pw", 64, 128, 56),
        ("dw", 128, 128, 56), ("pw", 128, 128, 56), ("dw", 128, 128, 28), ("pw", 128, 256, 28),
        ("dw", 256, 256, 28), ("pw", 256, 256, 28), ("dw", 256, 256, 14), ("pw", 256, 512, 14),
        *[row for _ in range(5) for row in (("dw", 512, 512, 14), ("pw", 512, 512, 14))],
        ("dw", 512, 512, 7), ("pw", 512, 1024, 7), ("dw", 1024, 1024, 7), ("pw", 1024, 1024, 7),
        ("pw", 1024, 1000, 1),  # the classifier
    ]
    macs = {"full": lambda m, n, d: 9 * m * n * d * d, "dw": lambda m, n, d: 9 * m * d * d,
            "pw": lambda m, n, d: m * n * d * d}
    params = {"full": lambda m, n: 9 * m * n, "dw": lambda m, n: 9 * m, "pw": lambda m, n: m * n}
    layers = model_layers("mobilenet_v1")
    assert len(layers) == len(table)
    for layer, (kind, m, n, d) in zip(layers, table, strict=True):
        cost = layer.cost()
        assert cost.output_shape == (1, d, d, n), layer.name
        assert cost.macs == macs[kind](m, n, d), layer.name
        assert cost.params == params[kind](m, n), layer.name
    assert model_totals("mobilenet_v1").macs == sum(macs[k](m, n, d) for k, m, n, d in table)


def test_mobilenet_v2_matches_the_paper():
    totals = model_totals("mobilenet_v2")
    assert _within(totals.macs, 300e6)
    assert totals.macs == 300_774_272
    # The paper's "3.4M" is 3.47M truncated; TF-Slim's table for the same model publishes 3.47M.
    assert _within(totals.params, 3.47e6)
    assert totals.params == 3_470_760
    assert totals.params + totals.batch_norm_params // 2 == 3_504_872  # Keras' "Trainable params"


def test_mobilenet_v2_follows_table_2():
    layers = {layer.name: layer for layer in model_layers("mobilenet_v2")}
    # (last layer of each bottleneck sequence, output size, channels c) from Table 2
    for name, size, channels in [("block1/project", 112, 16), ("block3/project", 56, 24), ("block6/project", 28, 32),
                                 ("block10/project", 14, 64), ("block13/project", 14, 96),
                                 ("block16/project", 7, 160), ("block17/project", 7, 320), ("conv_last", 7, 1280)]:
        assert layers[name].cost().output_shape == (1, size, size, channels), name
    assert "block1/expand" not in layers  # t = 1: no expansion
    assert layers["block2/expand"].cost().output_shape == (1, 112, 112, 96)  # expansion factor 6
    assert layers["block2/dw"].strides == 2


def test_xception_matches_the_paper():
    totals = model_totals("xception")
    assert _within(totals.macs, 8.4e9)
    # Table 3 of the paper counts batch norm's trainable gamma and beta: exactly 22,855,952.
    assert totals.params + totals.batch_norm_params // 2 == 22_855_952 == PUBLISHED["xception"]["params"]
    assert totals.params_as_published == 22_855_952 and totals.as_dict()["params_vs_published"] == 0
    assert model_totals("mobilenet_v1").params_as_published == 4_210_088  # the MobileNets count no batch norm
    layers = {layer.name: layer for layer in model_layers("xception")}
    assert layers["entry/conv2"].cost().output_shape == (1, 147, 147, 64)
    assert layers["entry/block3/shortcut"].cost().output_shape == (1, 19, 19, 728)
    assert layers["middle/block8/sep3"].cost().output_shape == (1, 19, 19, 728)
    assert layers["exit/block1/shortcut"].cost().output_shape == (1, 10, 10, 1024)
    assert layers["exit/sep4"].cost().output_shape == (1, 10, 10, 2048)


@pytest.mark.parametrize("name", MODELS)
def test_totals_are_sums_over_layers_and_scale_with_batch(name):
    layers = model_layers(name)
    totals = model_totals(name)
    assert totals.macs == sum(layer.cost().macs for layer in layers)
    assert totals.flops == 2 * totals.macs
    assert [layer.name for layer in layers if layer.bias] == ["classifier"]
    double = model_totals(name, batch=2)
    assert double.macs == 2 * totals.macs and double.params == totals.params


def test_model_names():
    assert model_layers("MobileNet-V2")[0].name == "conv1"
    with pytest.raises(ValueError, match="unknown model 'resnet50'; choose from mobilenet_v1"):
        model_layers("resnet50")
