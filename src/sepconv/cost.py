"""What one op call costs: output shape, parameters, multiply-adds, bytes moved, arithmetic intensity.

One formula per op, computed from the :class:`~sepconv.geometry.Conv2DGeometry` the op itself
builds (the same normalization, the same shape rule, the same ``ValueError`` for bad
arguments).  Units are in the field names: ``macs`` are multiply-adds, ``flops = 2 * macs``,
``bytes_*`` are bytes for the given dtype, ``intensity`` is FLOPs per byte.

Counting conventions
--------------------
- **Padded taps count.**  Like TensorFlow's cost registry (``tf.profiler``, 2 FLOPs per
  multiply-add) and the MobileNet papers, every filter tap of every output element is one
  multiply-add, also when it lands in the zero padding:
  ``macs = out_elements * kh * kw * in_channels_per_group`` for conv2d and
  ``macs = out_elements * kh * kw`` for depthwise.  ``macs_valid`` counts only the taps that
  land on real input (what a kernel that skips the padding does).
- **Parameters** are the filter weights.  The ops have no bias; a layer's bias and batch-norm
  parameters are counted by :mod:`sepconv.models`.
- **Bytes** are the minimum traffic: every tensor read once and written once (no
  write-allocate, no re-reads).  Forward ops read the input and the filter(s) and write the
  output; the input gradient reads the filter and ``out_backprop`` and writes an input-shaped
  tensor; the filter gradient reads the input and ``out_backprop`` and writes a filter-shaped
  tensor.  For ``separable_conv2d`` the minimum assumes fusion (the depthwise result never
  reaches memory); ``bytes_intermediate_unfused`` is the extra traffic of writing it and
  reading it back, as two separate ops do.  ``depthwise_conv2d_gradients`` (both gradients
  in one call) reads the input, the filter and ``out_backprop`` once and writes both
  gradients; its ``bytes_intermediate_unfused`` is the second read of ``out_backprop`` that
  the two backprops called one after the other make.
- **Gradients** do exactly the forward op's multiply-adds (each forward tap is used once; both
  gradients together, twice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .geometry import Conv2DGeometry, conv2d_geometry, depthwise_geometry, pointwise_filter_check

OPS = (
    "conv2d",
    "depthwise_conv2d",
    "separable_conv2d",
    "pointwise",
    "conv2d_backprop_input",
    "conv2d_backprop_filter",
    "depthwise_conv2d_backprop_input",
    "depthwise_conv2d_backprop_filter",
    "depthwise_conv2d_gradients",
)


@dataclass(frozen=True)
class Cost:
    """The cost of one op call.  Shapes are in the caller's layout; counts are for the whole batch.

    Attributes
    ----------
    op : str
        The op name (one of :data:`OPS`).
    output_shape : tuple of int
        Shape of the op's result (for a filter gradient: the filter's shape).
    params : int
        Filter weights (depthwise plus pointwise for ``separable_conv2d``).  No bias.
    macs : int
        Multiply-adds, padded taps included (TensorFlow's convention).
    macs_valid : int
        Multiply-adds whose input tap lands on real input (padding skipped).
    flops : int
        ``2 * macs``.
    bytes_read, bytes_written, bytes_total : int
        Minimum bytes read, written, and their sum, for ``dtype``.
    bytes_intermediate_unfused : int
        Extra bytes when the op runs as unfused steps (separable: the depthwise result written
        and read back); 0 for the other ops.
    intensity : float
        Arithmetic intensity, ``flops / bytes_total`` (FLOPs per byte).
    dtype : str
        The element type the bytes are counted for.
    geometry : Conv2DGeometry
        The normalized arguments (of the depthwise step for ``separable_conv2d``).
    """

    op: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    macs_valid: int
    bytes_read: int
    bytes_written: int
    bytes_intermediate_unfused: int
    dtype: str
    geometry: Conv2DGeometry = field(repr=False)

    @property
    def flops(self) -> int:
        """Floating-point operations, ``2 * macs`` (one multiply and one add per tap)."""
        return 2 * self.macs

    @property
    def bytes_total(self) -> int:
        """Minimum bytes moved: ``bytes_read + bytes_written``."""
        return self.bytes_read + self.bytes_written

    @property
    def intensity(self) -> float:
        """FLOPs per byte moved (0 when nothing moves)."""
        return self.flops / self.bytes_total if self.bytes_total else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Every field and derived figure as JSON-ready plain values (the geometry as its pads etc.).

        Examples
        --------
        >>> op_cost("depthwise_conv2d", (1, 14, 14, 32), (3, 3, 32, 64)).as_dict()["output_shape"]
        [1, 14, 14, 2048]
        """
        g = self.geometry
        return {
            "op": self.op,
            "output_shape": list(self.output_shape),
            "params": self.params,
            "macs": self.macs,
            "macs_valid": self.macs_valid,
            "flops": self.flops,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "bytes_total": self.bytes_total,
            "bytes_intermediate_unfused": self.bytes_intermediate_unfused,
            "intensity_flops_per_byte": self.intensity,
            "dtype": self.dtype,
            "strides": [g.stride_h, g.stride_w],
            "dilations": [g.dil_h, g.dil_w],
            "pads": [[g.pad_top, g.pad_bottom], [g.pad_left, g.pad_right]],
        }


def _valid_taps(out_size: int, k: int, stride: int, dilation: int, pad_before: int, in_size: int) -> int:
    """Number of (output index, filter tap) pairs along one axis whose input index is inside the input."""
    rows = np.arange(out_size)[:, None] * stride + np.arange(k)[None, :] * dilation - pad_before
    return int(np.count_nonzero((rows >= 0) & (rows < in_size)))


def _window_counts(g: Conv2DGeometry) -> tuple[int, int]:
    """``(all taps, valid taps)`` over the batch and the output plane, per (input, output) channel pair."""
    valid_h = _valid_taps(g.out_h, g.kh, g.stride_h, g.dil_h, g.pad_top, g.in_h)
    valid_w = _valid_taps(g.out_w, g.kw, g.stride_w, g.dil_w, g.pad_left, g.in_w)
    return g.batch * g.out_h * g.kh * g.out_w * g.kw, g.batch * valid_h * valid_w


def _tuple(shape: Any, name: str) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in shape)
    except TypeError:
        raise TypeError(f"op_cost: `{name}` must be a sequence of ints, got {name}={shape!r}") from None


def op_cost(
    op: str,
    input_shape: Any,
    filter_shape: Any,
    strides: Any = 1,
    padding: Any = "SAME",
    data_format: str = "NHWC",
    dilations: Any = None,
    pointwise_shape: Any = None,
    dtype: Any = "float32",
) -> Cost:
    """The cost of calling ``op`` with these arguments (shapes only, no arrays).

    Parameters
    ----------
    op : str
        ``"conv2d"``, ``"depthwise_conv2d"``, ``"separable_conv2d"``, ``"pointwise"`` (a 1x1
        ``conv2d``), ``"conv2d_backprop_input"``, ``"conv2d_backprop_filter"``,
        ``"depthwise_conv2d_backprop_input"``, ``"depthwise_conv2d_backprop_filter"`` or
        ``"depthwise_conv2d_gradients"`` (both; its ``output_shape`` is the input gradient's).
    input_shape : sequence of int
        The (forward) input's shape in ``data_format``; for the gradients, the forward op's input.
    filter_shape : sequence of int
        ``[kh, kw, in_c / groups, out_c]`` (conv2d, pointwise) or ``[kh, kw, in_c, multiplier]``
        (depthwise, and the depthwise filter of separable).
    strides, padding, data_format, dilations
        As the op takes them (see :func:`sepconv.conv2d`).
    pointwise_shape : sequence of int, optional
        ``[1, 1, in_c * multiplier, out_c]``; required for ``"separable_conv2d"``.
    dtype : str or numpy.dtype
        Element type the bytes are counted for.

    Returns
    -------
    Cost
        See the module docstring for what is counted and how.

    Raises
    ------
    ValueError, TypeError
        The op's own errors for bad arguments (same geometry, same messages); also an unknown
        ``op``, a ``"pointwise"`` filter that is not 1x1, or a missing ``pointwise_shape``.

    Examples
    --------
    >>> c = op_cost("conv2d", (1, 14, 14, 32), (3, 3, 32, 64))
    >>> c.output_shape, c.params, c.macs, c.flops
    ((1, 14, 14, 64), 18432, 3612672, 7225344)
    >>> s = op_cost("separable_conv2d", (1, 14, 14, 32), (3, 3, 32, 1), pointwise_shape=(1, 1, 32, 64))
    >>> s.flops == 2 * 1 * 32 * 14 * 14 * (3 * 3 + 64)
    True
    """
    if op not in OPS:
        raise ValueError(f"op_cost: `op` must be one of {', '.join(OPS)}, got op={op!r}")
    itemsize = np.dtype(dtype).itemsize
    input_shape = _tuple(input_shape, "input_shape")
    filter_shape = _tuple(filter_shape, "filter_shape")
    depthwise = op.startswith(("depthwise", "separable"))
    make_geometry = depthwise_geometry if depthwise else conv2d_geometry
    geometry_op = "conv2d" if op == "pointwise" else op
    g = make_geometry(geometry_op, input_shape, filter_shape, strides, padding, data_format, dilations)
    if op == "pointwise" and (g.kh, g.kw) != (1, 1):
        raise ValueError(f"pointwise: `filter_shape` must be [1, 1, in_channels, out_channels], got {filter_shape}")

    all_taps, valid_taps = _window_counts(g)
    per_tap = g.out_c * (1 if g.depthwise else g.group_in_c)  # multiply-adds per tap position
    macs, macs_valid = all_taps * per_tap, valid_taps * per_tap
    params = math.prod(g.filter_shape)
    in_elems, out_elems = math.prod(g.input_shape), math.prod(g.output_shape)
    output_shape = g.output_shape
    intermediate = 0

    if op == "separable_conv2d":
        if pointwise_shape is None:
            raise ValueError("separable_conv2d: `pointwise_shape` [1, 1, in_channels * multiplier, out_channels] "
                             "is required")
        pointwise_shape = _tuple(pointwise_shape, "pointwise_shape")
        pointwise_filter_check(op, g, pointwise_shape)
        pw = conv2d_geometry(op, g.output_shape, pointwise_shape, 1, "VALID", g.data_format)
        pw_macs = math.prod(pw.output_shape) * pw.in_c
        macs, macs_valid = macs + pw_macs, macs_valid + pw_macs
        params += math.prod(pointwise_shape)
        intermediate = 2 * out_elems  # the depthwise result, written then read back
        output_shape, out_elems = pw.output_shape, math.prod(pw.output_shape)

    if op == "depthwise_conv2d_gradients":
        macs, macs_valid = 2 * macs, 2 * macs_valid
        read, written, output_shape = in_elems + params + out_elems, in_elems + params, g.input_shape
        intermediate = out_elems  # out_backprop read again by the second of two separate calls
    elif op.endswith("backprop_input"):
        read, written, output_shape = params + out_elems, in_elems, g.input_shape
    elif op.endswith("backprop_filter"):
        read, written, output_shape = in_elems + out_elems, params, g.filter_shape
    else:
        read, written = in_elems + params, out_elems
    return Cost(op, tuple(output_shape), params, macs, macs_valid, read * itemsize, written * itemsize,
                intermediate * itemsize, np.dtype(dtype).name, g)
