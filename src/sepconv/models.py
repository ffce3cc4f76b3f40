"""MobileNetV1, MobileNetV2 and Xception as layer specs, with per-layer costs and model totals.

The layers are those of the papers' architecture tables, with TensorFlow's ``SAME`` padding
(``VALID`` where Xception's figure uses it), batch 1, float32:

- ``mobilenet_v1``: Howard et al. 2017, "MobileNets", Table 1, width 1.0, 224x224.  The
  table's ``Conv dw / s2`` on the 7x7x1024 layer has stride 1 in every implementation (the
  spatial size stays 7x7), and is stride 1 here.
- ``mobilenet_v2``: Sandler et al. 2018, "MobileNetV2", Table 2, width 1.0, 224x224.  The
  first bottleneck (t=1) has no expansion layer, as in the reference implementation.
- ``xception``: Chollet 2017, "Xception", Figure 5, 299x299: entry flow (two full convs
  and three blocks of two separable convs with a strided 1x1 shortcut conv), middle flow
  (8 blocks of 3 separable convs), exit flow.  Each separable conv is one
  ``separable_conv2d`` row (depthwise 3x3, multiplier 1, then pointwise, as Keras'
  ``SeparableConv2D``).

What the totals count (the papers' convention):

- **multiply-adds**: every convolution and the fully connected classifier (1000 classes),
  padded taps included (see :mod:`sepconv.cost`).  Not counted: batch norm (folded into the
  weights at inference), activations, pooling, residual additions, biases.
- **parameters** (``params``): conv weights, classifier weights and the classifier's bias.
  Convolutions have no bias (each is followed by batch norm).  Batch-norm parameters are
  reported apart (``batch_norm_params``: 4 per channel, gamma, beta, mean and variance;
  Keras' "Total params" includes them, its "Trainable params" includes gamma and beta).

Against the published figures (:data:`PUBLISHED`):

- MobileNetV1: 568,740,352 multiply-adds (paper: 569M, -0.05%) and 4,210,088 parameters
  (paper: 4.2M, +0.24%).
- MobileNetV2: 300,774,272 multiply-adds (paper: 300M, +0.26%) and 3,470,760 parameters:
  +2.1% against the paper's "3.4M", which is 3.47M truncated (TF-Slim's published table for
  the same model says 3.47M; no convention of counting gives 3.40M).
- Xception: 8,357,403,496 multiply-adds (commonly cited 8.4G, -0.5%) and 22,801,424
  parameters; with batch norm's gamma and beta, 22,855,952, exactly the paper's Table 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .cost import Cost, op_cost
from .geometry import depthwise_geometry

MODELS = ("mobilenet_v1", "mobilenet_v2", "xception")

PUBLISHED: dict[str, dict[str, Any]] = {
    "mobilenet_v1": {"macs": 569e6, "params": 4.2e6,
                     "source": "Howard et al. 2017, MobileNets, Table 8 (1.0 MobileNet-224: 569M mult-adds, 4.2M params)"},
    "mobilenet_v2": {"macs": 300e6, "params": 3.4e6,
                     "source": "Sandler et al. 2018, MobileNetV2, Table 4 (300M MAdds, 3.4M params; "
                               "TF-Slim's table: 300M, 3.47M)"},
    "xception": {"macs": 8.4e9, "params": 22_855_952, "params_include_batch_norm_scale_offset": True,
                 "source": "Chollet 2017, Xception, Table 3 (22,855,952 params, incl. batch-norm gamma/beta); "
                           "8.4G mult-adds as commonly cited"},
}


@dataclass(frozen=True)
class Layer:
    """One layer of a model: an op call's shapes plus the layer's bias and batch norm.

    Attributes
    ----------
    name : str
        Position in the model, e.g. ``"block3/dw"``.
    op : str
        An op of :func:`sepconv.cost.op_cost`: ``"conv2d"``, ``"depthwise_conv2d"``,
        ``"pointwise"`` or ``"separable_conv2d"`` (the classifier is a ``"pointwise"`` layer on
        the pooled 1x1 feature map).
    input_shape : tuple of int
        NHWC.
    filter_shape : tuple of int
        As the op takes it (depthwise filter for separable).
    strides : int
    padding : str
    pointwise_shape : tuple of int or None
        Separable's pointwise filter.
    bias : bool
        Whether the layer adds a bias (the classifier only).
    batch_norm : bool
        Whether batch norm follows (and is folded at inference).
    """

    name: str
    op: str
    input_shape: tuple[int, ...]
    filter_shape: tuple[int, ...]
    strides: int = 1
    padding: str = "SAME"
    pointwise_shape: tuple[int, ...] | None = None
    bias: bool = False
    batch_norm: bool = True

    def cost(self, dtype: str = "float32") -> Cost:
        """The op's cost (weights only; see :attr:`bias_params`).

        Examples
        --------
        >>> Layer("conv", "conv2d", (1, 224, 224, 3), (3, 3, 3, 32), 2).cost().output_shape
        (1, 112, 112, 32)
        """
        return op_cost(self.op, self.input_shape, self.filter_shape, self.strides, self.padding,
                       pointwise_shape=self.pointwise_shape, dtype=dtype)

    @property
    def out_channels(self) -> int:
        return self.cost().output_shape[-1]

    @property
    def bias_params(self) -> int:
        """One per output channel if the layer has a bias, else 0."""
        return self.out_channels if self.bias else 0

    @property
    def batch_norm_params(self) -> int:
        """Gamma, beta, moving mean and variance of every batch norm in the layer (separable: after pointwise)."""
        return 4 * self.out_channels if self.batch_norm else 0


@dataclass(frozen=True)
class ModelTotals:
    """Sums over a model's layers, and the published figures to compare with.

    ``params`` are weights plus biases (the papers' count); ``batch_norm_params`` are apart.
    """

    name: str
    layers: int
    macs: int
    flops: int
    weights: int
    biases: int
    batch_norm_params: int
    bytes_total: int
    published_macs: float
    published_params: float
    source: str
    published_params_include_batch_norm_scale_offset: bool = False

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def params_as_published(self) -> int:
        """``params`` in the published figure's convention (plus batch norm's gamma and beta for Xception)."""
        return self.params + (self.batch_norm_params // 2 if self.published_params_include_batch_norm_scale_offset
                              else 0)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready totals with relative differences to the published figures.

        Examples
        --------
        >>> round(model_totals("mobilenet_v1").as_dict()["macs_vs_published"], 4)
        -0.0005
        """
        return {"model": self.name, "layers": self.layers, "macs": self.macs, "flops": self.flops,
                "params": self.params, "weights": self.weights, "biases": self.biases,
                "batch_norm_params": self.batch_norm_params, "bytes_total": self.bytes_total,
                "published_macs": self.published_macs, "published_params": self.published_params,
                "macs_vs_published": self.macs / self.published_macs - 1,
                "params_as_published": self.params_as_published,
                "params_vs_published": self.params_as_published / self.published_params - 1,
                "source": self.source}


class _Stack:
    """Builds a chain of layers; each layer's input shape is the previous op's output (from geometry)."""

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        self.shape = input_shape
        self.layers: list[Layer] = []

    @property
    def channels(self) -> int:
        return self.shape[-1]

    def add(self, name: str, op: str, filter_shape: tuple[int, ...], strides: int = 1, padding: str = "SAME",
            pointwise_shape: tuple[int, ...] | None = None, bias: bool = False, batch_norm: bool = True) -> Layer:
        layer = Layer(name, op, self.shape, filter_shape, strides, padding, pointwise_shape, bias, batch_norm)
        self.layers.append(layer)
        self.shape = layer.cost().output_shape
        return layer

    def conv(self, name: str, k: int, out: int, strides: int = 1, padding: str = "SAME") -> Layer:
        return self.add(name, "conv2d", (k, k, self.channels, out), strides, padding)

    def depthwise(self, name: str, strides: int = 1) -> Layer:
        return self.add(name, "depthwise_conv2d", (3, 3, self.channels, 1), strides)

    def pointwise(self, name: str, out: int, strides: int = 1) -> Layer:
        return self.add(name, "pointwise", (1, 1, self.channels, out), strides)

    def separable(self, name: str, out: int) -> Layer:
        return self.add(name, "separable_conv2d", (3, 3, self.channels, 1), pointwise_shape=(1, 1, self.channels, out))

    def pool(self, k: int, strides: int, padding: str = "SAME") -> None:
        """A pooling window: no parameters, no multiply-adds; only the shape changes (geometry's rule)."""
        self.shape = depthwise_geometry("pool", self.shape, (k, k, self.channels, 1), strides, padding).output_shape

    def classifier(self, classes: int = 1000) -> Layer:
        """Global average pooling, then the fully connected layer (a 1x1 conv with bias on 1x1)."""
        self.shape = (self.shape[0], 1, 1, self.channels)
        return self.add("classifier", "pointwise", (1, 1, self.channels, classes), bias=True, batch_norm=False)


def _mobilenet_v1(batch: int) -> list[Layer]:
    s = _Stack((batch, 224, 224, 3))
    s.conv("conv1", 3, 32, strides=2)
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
              (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]
    for i, (out, stride) in enumerate(blocks, start=1):
        s.depthwise(f"block{i}/dw", stride)
        s.pointwise(f"block{i}/pw", out)
    s.classifier()
    return s.layers


def _mobilenet_v2(batch: int) -> list[Layer]:
    s = _Stack((batch, 224, 224, 3))
    s.conv("conv1", 3, 32, strides=2)
    table = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1)]  # (expansion t, channels c, repeats n, first stride s), Table 2
    block = 0
    for t, c, n, first_stride in table:
        for r in range(n):
            block += 1
            if t != 1:
                s.pointwise(f"block{block}/expand", s.channels * t)
            s.depthwise(f"block{block}/dw", first_stride if r == 0 else 1)
            s.pointwise(f"block{block}/project", c)
    s.pointwise("conv_last", 1280)
    s.classifier()
    return s.layers


def _xception(batch: int) -> list[Layer]:
    s = _Stack((batch, 299, 299, 3))
    s.conv("entry/conv1", 3, 32, strides=2, padding="VALID")
    s.conv("entry/conv2", 3, 64, padding="VALID")
    for i, out in enumerate((128, 256, 728), start=1):
        block_input = s.shape
        s.separable(f"entry/block{i}/sep1", out)
        s.separable(f"entry/block{i}/sep2", out)
        s.pool(3, 2)
        pooled = s.shape
        s.shape = block_input
        s.add(f"entry/block{i}/shortcut", "pointwise", (1, 1, block_input[-1], out), strides=2)
        assert s.shape == pooled, (s.shape, pooled)  # the shortcut meets the pooled branch
    for i in range(1, 9):
        for j in range(1, 4):
            s.separable(f"middle/block{i}/sep{j}", 728)
    block_input = s.shape
    s.separable("exit/block1/sep1", 728)
    s.separable("exit/block1/sep2", 1024)
    s.pool(3, 2)
    s.shape = block_input
    s.add("exit/block1/shortcut", "pointwise", (1, 1, 728, 1024), strides=2)
    s.separable("exit/sep3", 1536)
    s.separable("exit/sep4", 2048)
    s.classifier()
    return s.layers


_BUILDERS = {"mobilenet_v1": _mobilenet_v1, "mobilenet_v2": _mobilenet_v2, "xception": _xception}


def _model_name(name: str) -> str:
    key = name.lower().replace("-", "_")
    if key not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return key


def model_layers(name: str, batch: int = 1) -> list[Layer]:
    """The layers of model ``name`` (``"mobilenet_v1"``, ``"mobilenet_v2"`` or ``"xception"``).

    Parameters
    ----------
    name : str
        Model name (case and ``-``/``_`` do not matter).
    batch : int
        Batch size of every layer's input.

    Returns
    -------
    list of Layer
        In execution order, classifier last.  Pooling layers are not listed (no parameters,
        no multiply-adds).

    Raises
    ------
    ValueError
        For an unknown model.

    Examples
    --------
    >>> layers = model_layers("mobilenet_v1")
    >>> len(layers), layers[-2].cost().output_shape
    (28, (1, 7, 7, 1024))
    """
    return _BUILDERS[_model_name(name)](batch)


def model_totals(name: str, batch: int = 1, dtype: str = "float32") -> ModelTotals:
    """Totals of model ``name`` (see the module docstring for what is counted).

    Examples
    --------
    >>> t = model_totals("mobilenet_v1")
    >>> t.macs, t.params
    (568740352, 4210088)
    """
    key = _model_name(name)
    layers = model_layers(key, batch)
    costs = [layer.cost(dtype) for layer in layers]
    published = PUBLISHED[key]
    return ModelTotals(
        name=key,
        layers=len(layers),
        macs=sum(c.macs for c in costs),
        flops=sum(c.flops for c in costs),
        weights=sum(c.params for c in costs),
        biases=sum(layer.bias_params for layer in layers),
        batch_norm_params=sum(layer.batch_norm_params for layer in layers),
        bytes_total=sum(c.bytes_total for c in costs),
        published_macs=published["macs"] * batch,
        published_params=published["params"],
        source=published["source"],
        published_params_include_batch_norm_scale_offset=published.get("params_include_batch_norm_scale_offset",
                                                                       False),
    )
