"""Argument normalization and shape rules: the one place every op, gradient and cost goes through.

``Conv2DGeometry`` is the frozen result: plain ints for strides, dilations, explicit
``(before, after)`` pads and output sizes.  Below it nothing sees ``"SAME"``, ``None``
or an ``int | list`` again.

The output-size rule is TensorFlow's (``tensorflow/core/framework/kernel_shape_util.cc``)::

    effective_filter_size = (filter_size - 1) * dilation + 1
    SAME:     out = ceil(in / stride)
              pad_total = max(0, (out - 1) * stride + effective_filter_size - in)
              pad_before = pad_total // 2, pad_after = pad_total - pad_before   # odd pixel after
    VALID:    out = (in - effective_filter_size) // stride + 1
    EXPLICIT: as VALID on in + pad_before + pad_after

A VALID or explicit window larger than the padded input is an error (TensorFlow's
"negative dimension size").
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass, fields
from typing import Any

DATA_FORMATS = ("NHWC", "NCHW")
_INT32_MAX = 2**31 - 1  # TensorFlow stores strides and dilations as int32 attributes
_INT64_MAX = 2**63 - 1  # and counts a shape's elements in an int64


@dataclass(frozen=True)
class Conv2DGeometry:
    """Everything an op needs to know about one call, as plain ints.

    ``groups`` is 1 for an ordinary ``conv2d``, ``in_c // filter_in_depth`` for a grouped
    one and ``in_c`` for a depthwise one, whose output channel ``k * multiplier + q`` comes
    from input channel ``k``.
    """

    op: str
    data_format: str
    batch_shape: tuple[int, ...]
    in_h: int
    in_w: int
    in_c: int
    kh: int
    kw: int
    out_c: int
    groups: int
    stride_h: int
    stride_w: int
    dil_h: int
    dil_w: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int
    out_h: int
    out_w: int
    depthwise: bool = False

    @property
    def batch(self) -> int:
        return math.prod(self.batch_shape)

    @property
    def out_pixels(self) -> int:
        """Output pixels over the whole batch, ``batch * out_h * out_w``."""
        return self.batch * self.out_h * self.out_w

    @property
    def multiplier(self) -> int:
        """Output channels per group (the ``channel_multiplier`` of a depthwise op)."""
        return self.out_c // self.groups if self.groups else 0

    @property
    def group_in_c(self) -> int:
        return self.in_c // self.groups if self.groups else 0

    @property
    def filter_shape(self) -> tuple[int, int, int, int]:
        if self.depthwise:
            return (self.kh, self.kw, self.in_c, self.multiplier)
        return (self.kh, self.kw, self.group_in_c, self.out_c)

    def _layout(self, h: int, w: int, c: int) -> tuple[int, ...]:
        if self.data_format == "NHWC":
            return (*self.batch_shape, h, w, c)
        return (*self.batch_shape, c, h, w)

    def __hash__(self) -> int:  # the fast path's plans are looked up by geometry: hashed once, not per call
        return self._hash

    @functools.cached_property
    def _hash(self) -> int:
        return hash(tuple(getattr(self, f.name) for f in fields(self)))

    @functools.cached_property  # geometries are cached, and read on every call
    def input_shape(self) -> tuple[int, ...]:
        """The input's shape in the caller's layout."""
        return self._layout(self.in_h, self.in_w, self.in_c)

    @functools.cached_property
    def output_shape(self) -> tuple[int, ...]:
        """The output's shape in the caller's layout."""
        return self._layout(self.out_h, self.out_w, self.out_c)

    @property
    def pads(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return ((self.pad_top, self.pad_bottom), (self.pad_left, self.pad_right))


# --------------------------------------------------------------------------- validators


def _fail(op: str, name: str, value: Any, expected: str, tf_says: str = "") -> ValueError:
    """``tf_says``: TensorFlow's own words for the same mistake, for users who search for them."""
    tf_note = f" (TensorFlow: '{tf_says}')" if tf_says else ""
    return ValueError(f"{op}: `{name}` must be {expected}, got {name}={value!r}{tf_note}")


def _as_int(op: str, name: str, value: Any, whole: Any) -> int:
    if not isinstance(value, bool) and hasattr(value, "__index__"):
        try:
            return operator.index(value)
        except TypeError:  # e.g. an array that is not a scalar
            pass
    raise TypeError(f"{op}: `{name}` must contain integers, got {name}={whole!r}")


def _as_int_list(op: str, name: str, value: Any) -> list[int]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or getattr(value, "ndim", None) == 0:
        if hasattr(value, "__index__") and not isinstance(value, bool):
            try:
                return [operator.index(value)]
            except TypeError:  # a 0-d float array
                pass
        raise TypeError(f"{op}: `{name}` must be an int or a list of ints, got {name}={value!r}")
    return [_as_int(op, name, v, value) for v in value]


def normalize_data_format(op: str, data_format: Any) -> str:
    if data_format is None:
        return "NHWC"
    if not isinstance(data_format, str):
        raise TypeError(f"{op}: `data_format` must be 'NHWC' or 'NCHW', got data_format={data_format!r}")
    if data_format not in DATA_FORMATS:
        hint = f" (did you mean {data_format.upper()!r}?)" if data_format.upper() in DATA_FORMATS else ""
        raise _fail(op, "data_format", data_format, f"'NHWC' or 'NCHW'{hint}")
    return data_format


def normalize_window(op: str, name: str, value: Any, data_format: str) -> tuple[int, int]:
    """Strides or dilations: an int, or a list of 1, 2 or 4 positive ints -> ``(h, w)``.

    A 4-list is in the layout's order and its batch and channel entries must be 1.
    ``None`` means 1 for ``dilations`` (its default); ``strides`` are required, as in TensorFlow.
    """
    if value is None:
        if name == "strides":
            raise TypeError(f"{op}: `strides` is required: an int or a list of 1, 2 or 4 ints, got strides=None")
        return (1, 1)
    values = _as_int_list(op, name, value)
    if len(values) == 1:
        h = w = values[0]
    elif len(values) == 2:
        h, w = values
    elif len(values) == 4:
        n_axis, c_axis, h_axis, w_axis = (0, 3, 1, 2) if data_format == "NHWC" else (0, 1, 2, 3)
        if values[n_axis] != 1 or values[c_axis] != 1:
            raise _fail(
                op, name, value,
                f"1 on the batch and channel axes of a 4-list in {data_format} order "
                f"(e.g. {[1, 2, 2, 1] if data_format == 'NHWC' else [1, 1, 2, 2]})",
                f"Current implementation does not yet support {name} in the batch and depth dimensions",
            )
        h, w = values[h_axis], values[w_axis]
    else:
        raise _fail(op, name, value, "an int or a list of 1, 2 or 4 ints")
    if h < 1 or w < 1:
        tf_says = "Stride must be > 0" if name == "strides" else "Dilation rate must be >= 1"
        raise _fail(op, name, value, "positive", f"{tf_says}, but got {min(h, w)}")
    if max(h, w) > _INT32_MAX:
        raise _fail(op, name, value, f"at most {_INT32_MAX}",
                    f"Attr {name} has value {max(h, w)} out of range for an int32")
    return (h, w)


def normalize_padding(op: str, padding: Any, data_format: str) -> str | tuple[tuple[int, int], tuple[int, int]]:
    """``"SAME"``, ``"VALID"`` or explicit pads -> the string or ``((top, bottom), (left, right))``.

    Explicit pads are TensorFlow's 4 pairs in the layout's order, with ``[0, 0]`` on the
    batch and channel axes (TensorFlow refuses 2 pairs, and so do we).  ``b"SAME"`` and ``b"VALID"``
    work too, as in TensorFlow.
    """
    if isinstance(padding, bytes):
        padding = padding.decode("latin-1")
    if isinstance(padding, str):
        if padding in ("SAME", "VALID"):
            return padding
        hint = f" (did you mean {padding.upper()!r}?)" if padding.upper() in ("SAME", "VALID") else ""
        raise _fail(op, "padding", padding, f"'SAME', 'VALID' or a list of explicit pads{hint}")
    example = "[[0, 0], [top, bottom], [left, right], [0, 0]]" if data_format == "NHWC" else (
        "[[0, 0], [0, 0], [top, bottom], [left, right]]")
    expected = f"'SAME', 'VALID' or explicit pads {example} for {data_format}"
    if not hasattr(padding, "__iter__"):
        raise TypeError(f"{op}: `padding` must be {expected}, got padding={padding!r}")
    if not all(hasattr(p, "__iter__") and not isinstance(p, (str, bytes)) for p in padding):
        raise _fail(op, "padding", padding, f"{expected} (a list of [before, after] pairs)")
    pairs = [list(p) for p in padding]
    if any(len(p) != 2 for p in pairs) or len(pairs) != 4:
        raise _fail(op, "padding", padding, f"{expected}: 4 [before, after] pairs, one per axis")
    ints = [[_as_int(op, "padding", v, padding) for v in p] for p in pairs]
    spatial = (1, 2) if data_format == "NHWC" else (2, 3)
    others = [ints[i] for i in range(4) if i not in spatial]
    if any(v != 0 for p in others for v in p):
        raise _fail(op, "padding", padding, f"[0, 0] on the batch and channel axes: {example}")
    ints = [ints[spatial[0]], ints[spatial[1]]]
    if any(v < 0 for p in ints for v in p):
        raise _fail(op, "padding", padding, "non-negative", "All elements of explicit_paddings must be nonnegative")
    return ((ints[0][0], ints[0][1]), (ints[1][0], ints[1][1]))


def windowed_output_size(
    op: str, axis: str, in_size: int, k: int, stride: int, dilation: int, padding: Any,
    allow_empty: bool = False,
) -> tuple[int, int, int]:
    """TensorFlow's rule for one spatial axis -> ``(out, pad_before, pad_after)``.

    A window larger than the padded input is an error, except with ``allow_empty`` (the
    gradient ops), where TensorFlow's kernels take ``out = (padded - eff_k + stride) / stride``
    truncated towards zero and accept an empty ``out_backprop`` when that is 0.
    """
    eff_k = (k - 1) * dilation + 1
    if padding == "SAME":
        out = -(-in_size // stride)
        total = max(0, (out - 1) * stride + eff_k - in_size)
        return out, total // 2, total - total // 2
    before, after = (0, 0) if padding == "VALID" else padding
    padded = in_size + before + after
    if padded < eff_k and allow_empty and padded - eff_k + stride > -stride:
        return 0, before, after
    if padded < eff_k:
        dil = f" dilated to {eff_k}" if dilation > 1 else ""
        raise ValueError(
            f"{op}: the filter's {axis} ({k}{dil}) is larger than the padded input's {axis} "
            f"({in_size} + {before} + {after} = {padded}): the output would be empty; "
            f"use a smaller filter, more padding or padding='SAME' (TensorFlow: 'Negative dimension size "
            f"caused by subtracting {eff_k} from {padded}')"
        )
    return (padded - eff_k) // stride + 1, before, after


# --------------------------------------------------------------------------- shapes


def _shape(op: str, name: str, shape: Any) -> tuple[int, ...]:
    kind = type(shape)
    plain = kind is tuple or kind is list
    if plain:  # the common case: a loop, ~0.3 us less than all() over a generator
        for d in shape:
            if type(d) is not int:
                plain = False
                break
    if plain:
        dims = shape if kind is tuple else tuple(shape)
    else:  # NumPy integers, arrays, and everything to refuse (bools, floats, strings) with a message
        dims = tuple(_as_int_list(op, name, shape))
    if dims and min(dims) < 0:
        raise _fail(op, name, list(dims), "non-negative sizes")
    if math.prod(dims) > _INT64_MAX:
        raise ValueError(f"{op}: `{name}` must have at most 2**63 - 1 elements, got {name}={list(dims)} "
                         f"(TensorFlow: 'Shape {list(dims)} would have more than 2**63 - 1 elements')")
    return dims


def _split_input(op: str, shape: tuple[int, ...], data_format: str, name: str = "input"):
    if len(shape) < 4:
        layout = "[batch, height, width, channels]" if data_format == "NHWC" else "[batch, channels, height, width]"
        raise ValueError(
            f"{op}: `{name}` must be 4-D {layout} ({data_format}), got shape {shape} (rank {len(shape)})"
        )
    batch_shape = shape[:-3]
    if data_format == "NHWC":
        h, w, c = shape[-3:]
    else:
        c, h, w = shape[-3:]
    return batch_shape, h, w, c


def _filter4(op: str, name: str, shape: tuple[int, ...], layout: str) -> tuple[int, int, int, int]:
    if len(shape) != 4:
        raise ValueError(f"{op}: `{name}` must be 4-D {layout}, got shape {shape} (rank {len(shape)})")
    return shape  # type: ignore[return-value]


def _check_window_size(op: str, name: str, shape: tuple[int, ...]) -> None:
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"{op}: `{name}` must have a positive height and width, got shape {shape} "
                         f"(TensorFlow: 'filter must not have zero elements')")


def _build(op, data_format, batch_shape, h, w, c, kh, kw, out_c, groups, strides, padding, dilations,
           depthwise, allow_empty) -> Conv2DGeometry:
    data_format = normalize_data_format(op, data_format)
    sh, sw = normalize_window(op, "strides", strides, data_format)
    dh, dw = normalize_window(op, "dilations", dilations, data_format)
    pad = normalize_padding(op, padding, data_format)
    out_h, pt, pb = windowed_output_size(op, "height", h, kh, sh, dh, pad if isinstance(pad, str) else pad[0],
                                         allow_empty)
    out_w, pl, pr = windowed_output_size(op, "width", w, kw, sw, dw, pad if isinstance(pad, str) else pad[1],
                                         allow_empty)
    return Conv2DGeometry(op, data_format, batch_shape, h, w, c, kh, kw, out_c, groups,
                          sh, sw, dh, dw, pt, pb, pl, pr, out_h, out_w, depthwise)


@functools.lru_cache(maxsize=1024)
def _conv2d_cached(op, input_shape, filter_shape, strides, padding, data_format, dilations, allow_empty, names):
    data_format = normalize_data_format(op, data_format)
    input_name, filter_name = names or ("input", "filters")
    input_shape, filter_shape = _shape(op, input_name, input_shape), _shape(op, filter_name, filter_shape)
    batch_shape, h, w, c = _split_input(op, input_shape, data_format, input_name)
    kh, kw, f_in, out_c = _filter4(op, filter_name, filter_shape,
                                   "[filter_height, filter_width, in_channels, out_channels]")
    _check_window_size(op, filter_name, filter_shape)
    if f_in == 0 or c == 0 or c % f_in != 0:
        raise ValueError(
            f"{op}: the input's channels ({c}) must equal the filter's in_channels ({f_in}) "
            f"or be a multiple of it (grouped convolution); got `{input_name}` shape {input_shape} ({data_format}) "
            f"and `{filter_name}` shape {filter_shape}"
            if f_in else f"{op}: `{filter_name}` has 0 in_channels (shape {filter_shape})"
        )
    groups = c // f_in
    if out_c % groups != 0:
        raise ValueError(
            f"{op}: grouped convolution with {groups} groups (input channels {c} / filter in_channels {f_in}) "
            f"needs out_channels divisible by {groups}, got `{filter_name}` shape {filter_shape}"
        )
    return _build(op, data_format, batch_shape, h, w, c, kh, kw, out_c, groups, strides, padding, dilations, False,
                  allow_empty)


@functools.lru_cache(maxsize=1024)
def _depthwise_cached(op, input_shape, filter_shape, strides, padding, data_format, dilations, allow_empty, names):
    data_format = normalize_data_format(op, data_format)
    # the arguments' names in that op
    input_name, name = names or ("input", "depthwise_filter" if "separable" in op.lower() else "filter")
    input_shape, filter_shape = _shape(op, input_name, input_shape), _shape(op, name, filter_shape)
    batch_shape, h, w, c = _split_input(op, input_shape, data_format, input_name)
    kh, kw, f_c, m = _filter4(op, name, filter_shape, "[filter_height, filter_width, in_channels, channel_multiplier]")
    _check_window_size(op, name, filter_shape)
    if f_c != c:
        raise ValueError(
            f"{op}: the filter's in_channels (dim 2 of `{name}` shape {filter_shape}) must equal the input's "
            f"channels ({c}) (`{input_name}` shape {input_shape}, {data_format})"
        )
    return _build(op, data_format, batch_shape, h, w, c, kh, kw, c * m, c, strides, padding, dilations, True,
                  allow_empty)


class _Uncacheable(Exception):
    pass


def _key(value: Any) -> Any:
    """``value`` as a cache key, made of plain ints, strings and tuples only (bools, floats and
    arrays are validated the slow way, so that ``True`` never passes for ``1``)."""
    kind = type(value)
    if value is None or kind is int or kind is str:
        return value
    if kind is tuple or kind is list:
        for v in value:
            if type(v) is not int:
                return tuple(_key(v) for v in value)
        return value if kind is tuple else tuple(value)  # shapes, strides: the common case, one pass
    raise _Uncacheable


def _cached(fn, op, input_shape, filter_shape, strides, padding, data_format, dilations,
            allow_empty, names) -> Conv2DGeometry:
    try:
        args = (_key(input_shape), _key(filter_shape), _key(strides), _key(padding), _key(data_format),
                _key(dilations))
    except _Uncacheable:
        return fn.__wrapped__(op, input_shape, filter_shape, strides, padding, data_format, dilations, allow_empty,
                              names)
    try:
        return fn(op, *args, allow_empty, names)
    except (ValueError, TypeError):  # again with the caller's own values, for the message
        return fn.__wrapped__(op, input_shape, filter_shape, strides, padding, data_format, dilations, allow_empty,
                              names)


def conv2d_geometry(op: str, input_shape, filter_shape, strides, padding, data_format="NHWC",
                    dilations=None, allow_empty_output: bool = False,
                    names: tuple[str, str] | None = None) -> Conv2DGeometry:
    """Geometry of a (possibly grouped) ``conv2d``; filter ``[kh, kw, in_c / groups, out_c]``.

    ``allow_empty_output`` (for the gradient ops) accepts an output height or width of 0 where
    TensorFlow's kernels do; see :func:`windowed_output_size`.  ``names``: the caller's names
    for the input and the filter shape in error messages (default ``("input", "filters")``;
    e.g. ``("input_sizes", "filters")`` for a gradient op).
    """
    return _cached(_conv2d_cached, op, input_shape, filter_shape, strides, padding, data_format, dilations,
                   allow_empty_output, names)


def depthwise_geometry(op: str, input_shape, filter_shape, strides, padding, data_format="NHWC",
                       dilations=None, allow_empty_output: bool = False,
                       names: tuple[str, str] | None = None) -> Conv2DGeometry:
    """Geometry of a ``depthwise_conv2d``; filter ``[kh, kw, in_c, channel_multiplier]``.

    ``allow_empty_output`` and ``names``: as in :func:`conv2d_geometry` (default names
    ``("input", "filter")``, ``"depthwise_filter"`` for a separable op).
    """
    return _cached(_depthwise_cached, op, input_shape, filter_shape, strides, padding, data_format, dilations,
                   allow_empty_output, names)


def pointwise_filter_check(op: str, depthwise: Conv2DGeometry, pointwise_shape: tuple[int, ...]) -> int:
    """Check separable's pointwise filter ``[1, 1, in_c * multiplier, out_c]``; return ``out_c``."""
    expected_in = depthwise.out_c
    if len(pointwise_shape) != 4 or pointwise_shape[:3] != (1, 1, expected_in):
        raise ValueError(
            f"{op}: `pointwise_filter` must have shape [1, 1, in_channels * channel_multiplier, out_channels] "
            f"= [1, 1, {expected_in}, out_channels], got shape {tuple(pointwise_shape)}"
        )
    return pointwise_shape[3]


def resolve_input_sizes(op: str, input_sizes: Any, filter_shape: tuple[int, ...],
                        out_backprop_shape: tuple[int, ...], data_format: str, depthwise: bool,
                        name: str = "input_sizes") -> tuple[int, ...]:
    """``input_sizes`` as the full shape, or as ``[height, width]`` (batch and channels then come
    from ``out_backprop`` and the filter)."""
    data_format = normalize_data_format(op, data_format)
    sizes = _shape(op, name, input_sizes)
    if len(sizes) >= 4:
        return sizes
    if len(sizes) != 2:
        raise _fail(op, name, list(sizes), "the input's full shape or its [height, width]")
    if len(filter_shape) != 4 or len(out_backprop_shape) < 4:
        raise ValueError(f"{op}: with 2-element `{name}` the filter must be 4-D and `out_backprop` at least 4-D, "
                         f"got filter shape {filter_shape}, out_backprop shape {out_backprop_shape}")
    batch_shape = tuple(out_backprop_shape[:-3])
    c = filter_shape[2]  # a depthwise filter's in_channels; for conv2d, ungrouped is assumed
    h, w = sizes
    return (*batch_shape, h, w, c) if data_format == "NHWC" else (*batch_shape, c, h, w)


def check_out_backprop(op: str, geom: Conv2DGeometry, out_backprop_shape: tuple[int, ...], what: str,
                       name: str = "out_backprop") -> None:
    if tuple(out_backprop_shape) != geom.output_shape:
        raise ValueError(
            f"{op}: `{name}` has shape {tuple(out_backprop_shape)}, but {what} give an output of shape "
            f"{geom.output_shape} ({geom.data_format}, strides {(geom.stride_h, geom.stride_w)}, "
            f"pads {geom.pads}, dilations {(geom.dil_h, geom.dil_w)})"
        )


def check_filter_sizes(op: str, filter_sizes: Any) -> tuple[int, ...]:
    sizes = _shape(op, "filter_sizes", filter_sizes)
    if len(sizes) != 4:
        raise _fail(op, "filter_sizes", list(sizes), "4 ints [filter_height, filter_width, in_channels, out_channels]")
    return sizes
