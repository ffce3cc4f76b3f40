"""The public ops: normalize once, convert layout and dtype, call an implementation, convert back.

Every op takes ``tf.nn``'s arguments, in its order, with its defaults.  The work is done by
an *implementation*: ``"fast"`` (Numba kernels and BLAS, the default) or ``"reference"``
(plain NumPy, the spec).  Both take NHWC arrays with one batch axis and a
:class:`~sepconv.geometry.Conv2DGeometry`; see :func:`use_implementation`.

A call on plain C-contiguous NHWC float32/float64 arrays like one that has run before (same op, shapes,
dtype and arguments) takes that call's geometry and goes straight to the implementation (:func:`_seen`):
a public call costs ~4.5 us instead of ~6 (1x4x4x8 3x3; 1x12x12x4 3x3 stride 2 multiplier 2 input
gradient 9.5 -> 7.4 us).

The fast implementation, :mod:`sepconv.fast`, is imported by the first op call that runs on it, not by
``import sepconv``: it brings in Numba and creates ~400 kernel dispatchers (0.35-0.45 s on the Zen 5 VM, where
``PYTHONDONTWRITEBYTECODE`` makes every import compile its modules; ~0.2 s with bytecode cached), which code that
only asks the shape rules, the cost model or the reference ops does not need.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from . import reference
from .geometry import (
    Conv2DGeometry,
    _key,
    _Uncacheable,
    check_filter_sizes,
    check_out_backprop,
    conv2d_geometry,
    depthwise_geometry,
    pointwise_filter_check,
    resolve_input_sizes,
)

IMPLEMENTATIONS: dict[str, str] = {"fast": "sepconv.fast", "reference": "sepconv.reference"}  # name -> module
_LOADED: dict[str, ModuleType] = {"reference": reference}  # the implementations imported so far
_DEFAULT_IMPLEMENTATION: str = os.environ.get("SEPCONV_IMPL", "fast")
_implementation = contextvars.ContextVar("sepconv_implementation", default=_DEFAULT_IMPLEMENTATION)

IntOrList = int | Sequence[int]
Padding = str | Sequence[Sequence[int]]


@contextlib.contextmanager
def use_implementation(name: str) -> Iterator[None]:
    """Run the ops inside the ``with`` block on implementation ``name`` (``"fast"`` or ``"reference"``).

    The default comes from the environment variable ``SEPCONV_IMPL`` (``"fast"`` if unset).
    The choice is per thread and per asyncio task.

    Examples
    --------
    >>> import numpy as np, sepconv
    >>> x, w = np.ones((1, 4, 4, 2), np.float32), np.ones((3, 3, 2, 1), np.float32)
    >>> with sepconv.use_implementation("reference"):
    ...     y = sepconv.depthwise_conv2d(x, w, 1, "SAME")
    >>> float(y[0, 1, 1, 0])
    9.0
    """
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"use_implementation: `name` must be one of {sorted(IMPLEMENTATIONS)}, got name={name!r}")
    token = _implementation.set(name)
    try:
        yield
    finally:
        _implementation.reset(token)


def _impl() -> ModuleType:
    name = _implementation.get()
    try:
        return _LOADED[name]
    except KeyError:
        return _load_implementation(name)


def _load_implementation(name: str) -> ModuleType:
    """Import implementation ``name`` (its first use; Python's import lock makes concurrent first calls wait for
    one import)."""
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"SEPCONV_IMPL must be one of {sorted(IMPLEMENTATIONS)}, got {name!r}")
    module = _LOADED[name] = importlib.import_module(IMPLEMENTATIONS[name])
    return module


# --------------------------------------------------------------------------- arrays in and out


_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)
_NATIVE = (_FLOAT32, _FLOAT64)


def _common_native_dtype(values: tuple[Any, ...]) -> np.dtype | None:
    """The dtype of ``values`` when all are NumPy arrays of one native float dtype, else None (a loop
    of identity tests: ~2 us less per call than a generator over dtype comparisons)."""
    dtype = None
    for v in values:
        if type(v) is not np.ndarray:
            return None
        if dtype is None:
            dtype = v.dtype
            if dtype is not _FLOAT32 and dtype is not _FLOAT64 and dtype not in _NATIVE:
                return None
        elif v.dtype is not dtype and v.dtype != dtype:
            return None
    return dtype


def _arrays(op: str, names: tuple[str, ...], *values: Any) -> tuple[list[np.ndarray] | tuple, np.dtype, np.dtype]:
    """``np.asarray`` each of ``values`` (the arguments ``names``, for the messages); return them in the
    compute dtype, plus compute and result dtypes.

    Promotion: NumPy's ``result_type`` over the arguments; integer and bool become float64;
    float16 and bfloat16 (``ml_dtypes``, as TensorFlow's) are computed in float32 and returned as
    they came; complex and object are refused.
    """
    dtype = _common_native_dtype(values)
    if dtype is not None:
        return values, dtype, dtype  # the common case: nothing to convert
    arrays = []
    for name, value in zip(names, values, strict=True):
        try:
            a = np.asarray(value)
        except ValueError as error:  # ragged nested lists
            raise ValueError(f"{op}: `{name}` must be an array of numbers, got {type(value).__name__}: {error}") from None
        if a.dtype.kind not in "fiub" and a.dtype.name != "bfloat16":
            raise TypeError(f"{op}: `{name}` must be a real numeric array, got dtype {a.dtype}")
        arrays.append(a)
    result = np.result_type(*arrays)
    if result.kind != "f" and result.name != "bfloat16":
        result = np.dtype(np.float64)
    compute = np.dtype(np.float32) if result.itemsize < 4 else result
    if compute.itemsize > 8:
        compute = result = np.dtype(np.float64)
    return [a.astype(compute, copy=False) for a in arrays], compute, result


def _to_nhwc(x: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """Caller layout (any number of batch axes) -> contiguous ``[N, H, W, C]``."""
    if g.data_format == "NHWC" and x.ndim == 4 and x.flags.c_contiguous:
        return x  # the common case, without the ~1.5 us of a reshape and a contiguity check
    x = x.reshape((g.batch, *x.shape[-3:]))
    if g.data_format == "NCHW":
        x = x.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x)


def _from_nhwc(y: np.ndarray, g: Conv2DGeometry, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if g.data_format == "NHWC" and y.dtype == dtype and y.shape == tuple(shape):
        return y  # the common case
    if g.data_format == "NCHW":
        y = y.transpose(0, 3, 1, 2)
    return y.reshape(shape).astype(dtype, copy=False)


def _native_nchw(g: Conv2DGeometry, name: str):
    """The implementation's ``<name>_nchw`` function when the call is NCHW and it has one, else None."""
    if g.data_format != "NCHW":
        return None
    return getattr(_impl(), f"{name}_nchw", None)


def _batch_flat(a: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """Any number of batch axes -> one (a view when it can be)."""
    return a.reshape((g.batch, *a.shape[-3:]))


def _required(op: str, **named: Any) -> None:
    """Arguments that have a default only so that an alias may stand in for one of them."""
    missing = [name for name, value in named.items() if value is None]
    if missing:
        raise TypeError(f"{op}: missing required argument(s) {', '.join(f'`{m}`' for m in missing)}")


def _empty(*arrays: np.ndarray) -> bool:
    for a in arrays:  # not any() over a generator: ~0.6 us less on every call
        if a.size == 0:
            return True
    return False


# --------------------------------------------------------------------------- calls seen before

# The geometry of each NHWC call that needed no conversion (plain 4-D NumPy arrays of one float dtype), by what
# decides it: the op, the dtype, the arrays' shapes and the other arguments as given.  A call like one that has
# run goes straight to the implementation, past the checks and the normalization it has already passed
# (:func:`_seen`; a C-contiguous input is all it needs besides).
_SEEN: dict[tuple, Conv2DGeometry] = {}
SEEN_MAX_CALLS = 1024


def _seen(op: str, a: Any, b: Any, strides: Any, padding: Any, dilations: Any, data_format: Any, c: Any = None,
          sizes: Any = None) -> tuple[tuple | None, Conv2DGeometry | None]:
    """The key of a call in :data:`_SEEN` (None where it cannot have one: arrays other than plain NumPy arrays of
    one float32 or float64 dtype, a layout other than the default ``"NHWC"``, arguments other than ints, strings
    and lists of them) and the geometry of the same call made before, if any.  ``a``, ``b`` (and ``c``): the
    op's arrays; ``sizes``: a gradient's ``input_sizes`` or ``filter_sizes``.  (Written out for two or three
    arrays: ~0.5 us, against ~1.2 for a loop over them.)"""
    if data_format != "NHWC" or type(a) is not np.ndarray or type(b) is not np.ndarray:
        return None, None
    dtype = a.dtype
    if (dtype is not _FLOAT32 and dtype is not _FLOAT64) or b.dtype is not dtype:
        return None, None
    if c is not None and (type(c) is not np.ndarray or c.dtype is not dtype):
        return None, None
    try:
        key = (op, dtype, a.shape, b.shape, None if c is None else c.shape, _key(sizes), _key(strides), _key(padding),
               _key(dilations))
    except _Uncacheable:
        return None, None
    return key, _SEEN.get(key)


def _remember(key: tuple | None, g: Conv2DGeometry, *arrays: np.ndarray) -> None:
    """Keep ``g`` for calls like this one, when its ``arrays`` (those the layout applies to) are 4-D: the calls
    that :func:`_seen` lets skip :func:`_to_nhwc` and :func:`_from_nhwc`, which leave such arrays as they are."""
    if key is None:
        return
    for a in arrays:
        if a.ndim != 4:
            return
    if len(_SEEN) >= SEEN_MAX_CALLS:
        _SEEN.clear()
    _SEEN[key] = g


# --------------------------------------------------------------------------- docstring pieces

_COMMON = """strides : int or list of int
        The stride of the sliding window: an int, or a list of 1, 2 (``[h, w]``) or 4 ints
        (in ``data_format`` order, with 1 on the batch and channel axes).
    padding : str or list of pairs
        ``"VALID"``, ``"SAME"`` (TensorFlow's rule: ``pad_total = max((out - 1) * stride +
        (k - 1) * dilation + 1 - in, 0)``, half before, the odd pixel after, i.e. bottom/right)
        or explicit pads ``[[0, 0], [top, bottom], [left, right], [0, 0]]`` (NHWC) /
        ``[[0, 0], [0, 0], [top, bottom], [left, right]]`` (NCHW).
    data_format : {"NHWC", "NCHW"}
        Layout of the input and output. Filters are always ``[kh, kw, ...]`` (HWIO).
    dilations : int or list of int, optional
        The dilation rate of the filter, in the same forms as ``strides``; default 1.
    name : str, optional
        Ignored: accepted so that a ``tf.nn`` call runs unchanged."""

_DTYPES = """Arrays are anything ``np.asarray`` accepts.  The result has NumPy's ``result_type`` of
    the arguments; integer and bool arguments are promoted to float64, and float16 (or
    bfloat16) is computed in float32 and returned as float16 (or bfloat16)."""


def _doc(fn):
    fn.__doc__ = fn.__doc__.replace("{common}", _COMMON).replace("{dtypes}", _DTYPES)
    return fn


# --------------------------------------------------------------------------- forward ops


@_doc
def conv2d(
    input: Any,
    filters: Any,
    strides: IntOrList,
    padding: Padding,
    data_format: str = "NHWC",
    dilations: IntOrList | None = None,
    name: str | None = None,
) -> np.ndarray:
    """2-D convolution, as ``tf.nn.conv2d``.

    ``out[b, i, j, o] = sum_{di, dj, c} in[b, s_h*i + d_h*di - pad_top, s_w*j + d_w*dj - pad_left, c]
    * filters[di, dj, c, o]`` (a cross-correlation, zeros outside the input).

    Parameters
    ----------
    input : array_like
        ``[batch, in_height, in_width, in_channels]`` (NHWC) or ``[batch, in_channels, in_height,
        in_width]`` (NCHW).  More leading axes are batch axes too.
    filters : array_like
        ``[filter_height, filter_width, in_channels / groups, out_channels]``.  When the filter's
        in_channels divides the input's, the convolution is grouped (``groups = in / filter_in``),
        as TensorFlow's shape rule allows; TensorFlow's CPU kernel refuses it, we compute it.
    {common}

    Returns
    -------
    numpy.ndarray
        ``[batch, out_height, out_width, out_channels]`` (or NCHW).

    Raises
    ------
    ValueError, TypeError
        Naming the argument, the value received and what was expected.

    Notes
    -----
    {dtypes}

    Examples
    --------
    >>> import numpy as np, sepconv
    >>> x = np.ones((1, 14, 14, 32), np.float32)
    >>> sepconv.conv2d(x, np.ones((3, 3, 32, 64), np.float32), 1, "SAME").shape
    (1, 14, 14, 64)
    """
    op = "conv2d"
    key, g = _seen(op, input, filters, strides, padding, dilations, data_format)
    if g is not None and input.flags.c_contiguous:
        return _impl().conv2d(input, filters, g)
    (x, w), _, result = _arrays(op, ("input", "filters"), input, filters)
    g = conv2d_geometry(op, x.shape, w.shape, strides, padding, data_format, dilations)
    if _empty(x, w) or g.out_h == 0 or g.out_w == 0:
        return np.zeros(g.output_shape, result)
    y = _impl().conv2d(_to_nhwc(x, g), w, g)
    _remember(key, g, x)
    return _from_nhwc(y, g, g.output_shape, result)


@_doc
def depthwise_conv2d(
    input: Any,
    filter: Any,
    strides: IntOrList,
    padding: Padding,
    data_format: str = "NHWC",
    dilations: IntOrList | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Depthwise 2-D convolution, as ``tf.nn.depthwise_conv2d``.

    Each input channel ``k`` is convolved with its own ``channel_multiplier`` filters, and the
    results are concatenated: ``out[b, i, j, k*M + q] = sum_{di, dj} in[b, s_h*i + d_h*di - pad_top,
    s_w*j + d_w*dj - pad_left, k] * filter[di, dj, k, q]``.  There is no mixing across channels.

    Parameters
    ----------
    input : array_like
        ``[batch, in_height, in_width, in_channels]`` (NHWC) or NCHW.
    filter : array_like
        ``[filter_height, filter_width, in_channels, channel_multiplier]``.
    {common}

    Returns
    -------
    numpy.ndarray
        ``[batch, out_height, out_width, in_channels * channel_multiplier]`` (or NCHW).

    Notes
    -----
    Stride > 1 together with dilation > 1 computes the mathematically correct result
    (``tf.nn.depthwise_conv2d`` documents it as unsupported and returns a wrongly shaped
    result); so do NCHW, unequal strides and float64, which TensorFlow's CPU kernel refuses.

    {dtypes}

    Examples
    --------
    >>> import numpy as np, sepconv
    >>> x = np.ones((1, 14, 14, 32), np.float32)
    >>> sepconv.depthwise_conv2d(x, np.ones((3, 3, 32, 64), np.float32), 1, "SAME").shape
    (1, 14, 14, 2048)
    """
    op = "depthwise_conv2d"
    key, g = _seen(op, input, filter, strides, padding, dilations, data_format)
    if g is not None and input.flags.c_contiguous:
        return _impl().depthwise_conv2d(input, filter, g)
    (x, w), _, result = _arrays(op, ("input", "filter"), input, filter)
    g = depthwise_geometry(op, x.shape, w.shape, strides, padding, data_format, dilations)
    if _empty(x, w) or g.out_h == 0 or g.out_w == 0:
        return np.zeros(g.output_shape, result)
    native = _native_nchw(g, "depthwise_conv2d")
    if native is not None:
        return native(_batch_flat(x, g), w, g).reshape(g.output_shape).astype(result, copy=False)
    y = _impl().depthwise_conv2d(_to_nhwc(x, g), w, g)
    _remember(key, g, x)
    return _from_nhwc(y, g, g.output_shape, result)


@_doc
def separable_conv2d(
    input: Any,
    depthwise_filter: Any,
    pointwise_filter: Any,
    strides: IntOrList,
    padding: Padding,
    data_format: str = "NHWC",
    dilations: IntOrList | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Depthwise-separable 2-D convolution, as ``tf.nn.separable_conv2d``.

    A depthwise convolution (with ``strides``, ``dilations`` and ``padding``) followed by a 1x1
    convolution that mixes channels::

        out[b, i, j, o] = sum_{di, dj, k, q} in[b, s_h*i + d_h*di - pad_top, s_w*j + d_w*dj - pad_left, k]
                          * depthwise_filter[di, dj, k, q] * pointwise_filter[0, 0, k*M + q, o]

    Parameters
    ----------
    input : array_like
        ``[batch, in_height, in_width, in_channels]`` (NHWC) or NCHW.
    depthwise_filter : array_like
        ``[filter_height, filter_width, in_channels, channel_multiplier]``.
    pointwise_filter : array_like
        ``[1, 1, in_channels * channel_multiplier, out_channels]``; any ``out_channels``.
    {common}

    Returns
    -------
    numpy.ndarray
        ``[batch, out_height, out_width, out_channels]`` (or NCHW).

    Notes
    -----
    Stride > 1 together with dilation > 1 computes the mathematically correct result, as
    :func:`depthwise_conv2d` does (``tf.nn.separable_conv2d`` only warns and returns wrong
    values, often of the wrong shape).

    {dtypes}

    Examples
    --------
    >>> import numpy as np, sepconv
    >>> x = np.ones((1, 14, 14, 32), np.float32)
    >>> dw, pw = np.ones((3, 3, 32, 1), np.float32), np.ones((1, 1, 32, 64), np.float32)
    >>> sepconv.separable_conv2d(x, dw, pw, 1, "SAME").shape
    (1, 14, 14, 64)
    """
    op = "separable_conv2d"
    key, g = _seen(op, input, depthwise_filter, strides, padding, dilations, data_format, pointwise_filter)
    if g is not None and input.flags.c_contiguous:
        return _impl().separable_conv2d(input, depthwise_filter, pointwise_filter, g)
    (x, wd, wp), _, result = _arrays(op, ("input", "depthwise_filter", "pointwise_filter"), input,
                                     depthwise_filter, pointwise_filter)
    g = depthwise_geometry(op, x.shape, wd.shape, strides, padding, data_format, dilations)
    out_c = pointwise_filter_check(op, g, wp.shape)
    out_shape = g._layout(g.out_h, g.out_w, out_c)
    if _empty(x, wd, wp) or g.out_h == 0 or g.out_w == 0:
        return np.zeros(out_shape, result)
    native = _native_nchw(g, "separable_conv2d")
    if native is not None:
        return native(_batch_flat(x, g), wd, wp, g).reshape(out_shape).astype(result, copy=False)
    y = _impl().separable_conv2d(_to_nhwc(x, g), wd, wp, g)
    _remember(key, g, x)
    return _from_nhwc(y, g, out_shape, result)


# --------------------------------------------------------------------------- gradients


def _backprop_input(op, input_sizes, filt, out_backprop, strides, padding, data_format, dilations, depthwise,
                    names=("input_sizes", "filter", "out_backprop")):
    """``names``: the caller's names for the three arrays, for the error messages."""
    sizes_name, filter_name, dy_name = names
    key, g = _seen(op, filt, out_backprop, strides, padding, dilations, data_format, sizes=input_sizes)
    if g is not None and out_backprop.flags.c_contiguous:
        kernel = _impl().depthwise_conv2d_backprop_input if depthwise else _impl().conv2d_backprop_input
        return kernel(filt, out_backprop, g)
    (w, dy), _, result = _arrays(op, (filter_name, dy_name), filt, out_backprop)
    shape = resolve_input_sizes(op, input_sizes, w.shape, dy.shape, data_format, depthwise, sizes_name)
    geometry = depthwise_geometry if depthwise else conv2d_geometry
    g = geometry(op, shape, w.shape, strides, padding, data_format, dilations, allow_empty_output=True,
                 names=(sizes_name, filter_name))
    if dy.shape != g.output_shape:  # the message built only when it is needed (~0.2 us)
        check_out_backprop(op, g, dy.shape, f"`{sizes_name}` and the filter", dy_name)
    if _empty(w, dy):
        return np.zeros(g.input_shape, result)
    native = _native_nchw(g, "depthwise_conv2d_backprop_input") if depthwise else None
    if native is not None:
        return native(w, _batch_flat(dy, g), g).reshape(g.input_shape).astype(result, copy=False)
    kernel = _impl().depthwise_conv2d_backprop_input if depthwise else _impl().conv2d_backprop_input
    dx = kernel(w, _to_nhwc(dy, g), g)
    _remember(key, g, dy)
    return _from_nhwc(dx, g, g.input_shape, result)


def _backprop_filter(op, input, filter_sizes, out_backprop, strides, padding, data_format, dilations, depthwise):
    key, g = _seen(op, input, out_backprop, strides, padding, dilations, data_format, sizes=filter_sizes)
    if g is not None and input.flags.c_contiguous and out_backprop.flags.c_contiguous:
        kernel = _impl().depthwise_conv2d_backprop_filter if depthwise else _impl().conv2d_backprop_filter
        return kernel(input, out_backprop, g)
    (x, dy), _, result = _arrays(op, ("input", "out_backprop"), input, out_backprop)
    sizes = check_filter_sizes(op, filter_sizes)
    geometry = depthwise_geometry if depthwise else conv2d_geometry
    g = geometry(op, x.shape, sizes, strides, padding, data_format, dilations, allow_empty_output=True,
                 names=("input", "filter_sizes"))
    check_out_backprop(op, g, dy.shape, "`input` and `filter_sizes`")
    if _empty(x, dy) or 0 in sizes:
        return np.zeros(sizes, result)
    native = _native_nchw(g, "depthwise_conv2d_backprop_filter") if depthwise else None
    if native is not None:
        return native(_batch_flat(x, g), _batch_flat(dy, g), g).astype(result, copy=False)
    kernel = _impl().depthwise_conv2d_backprop_filter if depthwise else _impl().conv2d_backprop_filter
    dw = kernel(_to_nhwc(x, g), _to_nhwc(dy, g), g)
    _remember(key, g, x, dy)
    return dw.astype(result, copy=False)


@_doc
def conv2d_backprop_input(
    input_sizes: Sequence[int],
    filters: Any = None,
    out_backprop: Any = None,
    strides: IntOrList | None = None,
    padding: Padding | None = None,
    data_format: str = "NHWC",
    dilations: IntOrList | None = None,
    name: str | None = None,
    *,
    filter: Any = None,
) -> np.ndarray:
    """Gradient of :func:`conv2d` with respect to its input, as ``tf.raw_ops.Conv2DBackpropInput``.

    Parameters
    ----------
    input_sizes : list of int
        The input's full shape, or its ``[height, width]`` (batch and channels then come from
        ``out_backprop`` and ``filters``).
    filters : array_like
        ``[filter_height, filter_width, in_channels / groups, out_channels]``.  Keyword ``filter=``
        (the spelling of ``tf.raw_ops`` and ``tf.compat.v1``) is accepted instead.
    out_backprop : array_like
        The gradient of the output, shaped like :func:`conv2d`'s output.
    {common}

    Returns
    -------
    numpy.ndarray
        The gradient of the input, of shape ``input_sizes``.

    Notes
    -----
    Dilations > 1 work on every op here (TensorFlow's CPU gradient kernels refuse them).
    {dtypes}

    Examples
    --------
    >>> import numpy as np, sepconv
    >>> w, dy = np.ones((3, 3, 2, 4)), np.ones((1, 5, 5, 4))
    >>> dx = sepconv.conv2d_backprop_input([1, 5, 5, 2], w, dy, 1, "SAME")
    >>> dx.shape, float(dx[0, 2, 2, 0])
    ((1, 5, 5, 2), 36.0)
    """
    op = "conv2d_backprop_input"
    if filter is not None:  # the raw op's and tf.compat.v1's spelling
        if filters is not None:
            raise TypeError(f"{op}: give the filter as `filters` or as `filter`, not both")
        filters = filter
    _required(op, filters=filters, out_backprop=out_backprop, strides=strides, padding=padding)
    return _backprop_input(op, input_sizes, filters, out_backprop, strides, padding,
                           data_format, dilations, depthwise=False, names=("input_sizes", "filters", "out_backprop"))


@_doc
def conv2d_backprop_filter(
    input: Any,
    filter_sizes: Sequence[int],
    out_backprop: Any,
    strides: IntOrList,
    padding: Padding,
    data_format: str = "NHWC",
    dilations: IntOrList | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Gradient of :func:`conv2d` with respect to its filter, as ``tf.raw_ops.Conv2DBackpropFilter``.

    Parameters
    ----------
    input : array_like
        The forward op's input.
    filter_sizes : list of int
        The filter's shape ``[filter_height, filter_width, in_channels / groups, out_channels]``.
    out_backprop : array_like
        The gradient of the output, shaped like :func:`conv2d`'s output.
    {common}

    Returns
    -------
    numpy.ndarray
        The gradient of the filter, of shape ``filter_sizes``.  Empty ``out_backprop`` gives zeros.

    Notes
    -----
    {dtypes}

    Examples
    --------
    >>> import numpy as np, sepconv
    >>> x, dy = np.ones((1, 5, 5, 2)), np.ones((1, 3, 3, 4))
    >>> dw = sepconv.conv2d_backprop_filter(x, [3, 3, 2, 4], dy, 1, "VALID")
    >>> dw.shape, float(dw[0, 0, 0, 0])
    ((3, 3, 2, 4), 9.0)
    """
    return _backprop_filter("conv2d_backprop_filter", input, filter_sizes, out_backprop, strides, padding,
                            data_format, dilations, depthwise=False)


@_doc
def conv2d_transpose(
    input: Any,
    filters: Any,
    output_shape: Sequence[int],
    strides: IntOrList,
    padding: Padding = "SAME",
    data_format: str = "NHWC",
    dilations: IntOrList | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Transposed 2-D convolution, as ``tf.nn.conv2d_transpose``.

    The gradient of :func:`conv2d` with respect to its input, applied to ``input``: it maps a
    ``conv2d`` output shape back to ``output_shape``.

    Parameters
    ----------
    input : array_like
        ``[batch, height, width, in_channels]`` (NHWC) or NCHW.
    filters : array_like
        ``[filter_height, filter_width, out_channels, in_channels]`` (note the order).
    output_shape : list of int
        The result's full shape, or its ``[height, width]``.
    {common}

    Returns
    -------
    numpy.ndarray
        Of shape ``output_shape``.

    Notes
    -----
    {dtypes}

    Examples
    --------
    >>> import numpy as np, sepconv
    >>> x, w = np.ones((1, 4, 4, 8)), np.ones((3, 3, 3, 8))
    >>> sepconv.conv2d_transpose(x, w, [1, 8, 8, 3], 2).shape
    (1, 8, 8, 3)
    """
    return _backprop_input("conv2d_transpose", output_shape, filters, input, strides, padding,
                           data_format, dilations, depthwise=False, names=("output_shape", "filters", "input"))


@_doc
def depthwise_conv2d_backprop_input(
    input_sizes: Sequence[int],
    filter: Any,
    out_backprop: Any,
    strides: IntOrList,
    padding: Padding,
    data_format: str = "NHWC",
    dilations: IntOrList | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Gradient of :func:`depthwise_conv2d` with respect to its input, as
    ``tf.compat.v1.nn.depthwise_conv2d_native_backprop_input``.

    Parameters
    ----------
    input_sizes : list of int
        The input's full shape, or its ``[height, width]``.
    filter : array_like
        ``[filter_height, filter_width, in_channels, channel_multiplier]``.
    out_backprop : array_like
        The gradient of the output, shaped like :func:`depthwise_conv2d`'s output.
    {common}

    Returns
    -------
    numpy.ndarray
        The gradient of the input, of shape ``input_sizes``.

    Notes
    -----
    Dilations are honoured (TensorFlow's CPU depthwise gradient kernels ignore them).
    {dtypes}

    Examples
    --------
    >>> import numpy as np, sepconv
    >>> w, dy = np.ones((3, 3, 2, 2)), np.ones((1, 5, 5, 4))
    >>> dx = sepconv.depthwise_conv2d_backprop_input([1, 5, 5, 2], w, dy, 1, "SAME")
    >>> dx.shape, float(dx[0, 2, 2, 0])
    ((1, 5, 5, 2), 18.0)
    """
    return _backprop_input("depthwise_conv2d_backprop_input", input_sizes, filter, out_backprop, strides,
                           padding, data_format, dilations, depthwise=True)


@_doc
def depthwise_conv2d_backprop_filter(
    input: Any,
    filter_sizes: Sequence[int],
    out_backprop: Any,
    strides: IntOrList,
    padding: Padding,
    data_format: str = "NHWC",
    dilations: IntOrList | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Gradient of :func:`depthwise_conv2d` with respect to its filter, as
    ``tf.compat.v1.nn.depthwise_conv2d_native_backprop_filter``.

    Parameters
    ----------
    input : array_like
        The forward op's input.
    filter_sizes : list of int
        ``[filter_height, filter_width, in_channels, channel_multiplier]``.
    out_backprop : array_like
        The gradient of the output, shaped like :func:`depthwise_conv2d`'s output.
    {common}

    Returns
    -------
    numpy.ndarray
        The gradient of the filter, of shape ``filter_sizes``.  Empty ``out_backprop`` gives zeros.

    Notes
    -----
    {dtypes}

    Examples
    --------
    >>> import numpy as np, sepconv
    >>> x, dy = np.ones((2, 5, 5, 3)), np.ones((2, 3, 3, 3))
    >>> dw = sepconv.depthwise_conv2d_backprop_filter(x, [3, 3, 3, 1], dy, 1, "VALID")
    >>> dw.shape, float(dw[1, 1, 0, 0])
    ((3, 3, 3, 1), 18.0)
    """
    return _backprop_filter("depthwise_conv2d_backprop_filter", input, filter_sizes, out_backprop, strides,
                            padding, data_format, dilations, depthwise=True)


@_doc
def depthwise_conv2d_gradients(
    input: Any,
    filter: Any,
    out_backprop: Any,
    strides: IntOrList,
    padding: Padding,
    data_format: str = "NHWC",
    dilations: IntOrList | None = None,
    name: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Both gradients of :func:`depthwise_conv2d`, with respect to its input and to its filter, in one call:
    what :func:`depthwise_conv2d_backprop_input` and :func:`depthwise_conv2d_backprop_filter` return
    for the same arguments (a training step needs both; TensorFlow has no single op for it).

    Layers with multiplier 1 at stride 1 or undilated stride 2 that are large enough to split over the
    threads take one pass (NHWC: 3x3 filters; NCHW: any size): each band of ``out_backprop`` rows (or
    group of channel planes) gives its input gradient and then its filter-gradient sums while it is
    still in cache, so ``out_backprop`` is read from memory once instead of twice (8x56x56x144: ~0.8x
    the time of the two calls).  Other layers run the two gradients one after the other.

    Parameters
    ----------
    input : array_like
        The forward op's input, NHWC or NCHW.
    filter : array_like
        ``[filter_height, filter_width, in_channels, channel_multiplier]``.
    out_backprop : array_like
        The gradient of the output, shaped like :func:`depthwise_conv2d`'s output.
    {common}

    Returns
    -------
    tuple of numpy.ndarray
        ``(input_gradient, filter_gradient)``, shaped like ``input`` and ``filter``.

    Notes
    -----
    {dtypes}

    Examples
    --------
    >>> import numpy as np, sepconv
    >>> x, w, dy = np.ones((1, 5, 5, 2)), np.ones((3, 3, 2, 1)), np.ones((1, 5, 5, 2))
    >>> dx, dw = sepconv.depthwise_conv2d_gradients(x, w, dy, 1, "SAME")
    >>> dx.shape, float(dx[0, 2, 2, 0]), dw.shape, float(dw[1, 1, 0, 0])
    ((1, 5, 5, 2), 9.0, (3, 3, 2, 1), 25.0)
    """
    op = "depthwise_conv2d_gradients"
    (x, w, dy), _, result = _arrays(op, ("input", "filter", "out_backprop"), input, filter, out_backprop)
    g = depthwise_geometry(op, x.shape, w.shape, strides, padding, data_format, dilations, allow_empty_output=True)
    check_out_backprop(op, g, dy.shape, "`input` and `filter`")
    if _empty(x, w, dy):
        return np.zeros(g.input_shape, result), np.zeros(w.shape, result)
    native = _native_nchw(g, "depthwise_conv2d_gradients")
    if native is not None:
        dx, dw = native(_batch_flat(x, g), w, _batch_flat(dy, g), g)
        dx = dx.reshape(g.input_shape)
    else:
        dx, dw = _impl().depthwise_conv2d_gradients(_to_nhwc(x, g), w, _to_nhwc(dy, g), g)
        dx = _from_nhwc(dx, g, g.input_shape, result)
    return dx.astype(result, copy=False), dw.astype(result, copy=False)
