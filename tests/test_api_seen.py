"""Calls like one made before skip the argument checks (``sepconv.api._seen``): the results, the errors and the
implementation chosen must be those of a first call, whatever changed between the calls."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import rand, tol

import sepconv
from sepconv import api


def _reference(fn, *args, **kwargs):
    """The reference's result, from a call that remembers nothing and finds nothing remembered (the memory is
    shared by the implementations: a wrong geometry there would reach both)."""
    saved = dict(api._SEEN)
    api._SEEN.clear()
    try:
        with sepconv.use_implementation("reference"):
            return fn(*args, **kwargs)
    finally:
        api._SEEN.clear()
        api._SEEN.update(saved)


def _calls(rng, dtype=np.float32):
    """Each public op that remembers its calls, with arrays for one geometry: ``(name, fn, args, kwargs)``."""
    x = rand(rng, (2, 9, 10, 6), dtype)
    wd = rand(rng, (3, 3, 6, 2), dtype)
    wp = rand(rng, (1, 1, 12, 5), dtype)
    wc = rand(rng, (3, 3, 6, 4), dtype)
    dy_dw = rand(rng, (2, 5, 5, 12), dtype)
    dy_c = rand(rng, (2, 5, 5, 4), dtype)
    window = dict(strides=[1, 2, 2, 1], padding="SAME")
    return [
        ("depthwise_conv2d", sepconv.depthwise_conv2d, (x, wd), window),
        ("conv2d", sepconv.conv2d, (x, wc), window),
        ("separable_conv2d", sepconv.separable_conv2d, (x, wd, wp), window),
        ("depthwise_conv2d_backprop_input", sepconv.depthwise_conv2d_backprop_input, (list(x.shape), wd, dy_dw),
         window),
        ("depthwise_conv2d_backprop_filter", sepconv.depthwise_conv2d_backprop_filter, (x, list(wd.shape), dy_dw),
         window),
        ("conv2d_backprop_input", sepconv.conv2d_backprop_input, (list(x.shape), wc, dy_c), window),
        ("conv2d_backprop_filter", sepconv.conv2d_backprop_filter, (x, list(wc.shape), dy_c), window),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_repeated_calls_match_the_reference(dtype):
    """The second call of each op takes the remembered geometry (it is in ``_SEEN``) and still matches the
    reference; so does a third with new values in arrays of the same shapes."""
    rng = np.random.default_rng(1)
    for name, fn, args, kwargs in _calls(rng, dtype):
        first = fn(*args, **kwargs)
        assert any(key[0] == name and key[1] == np.dtype(dtype) for key in api._SEEN), name
        again = fn(*args, **kwargs)
        np.testing.assert_array_equal(again, first, err_msg=name)
        fresh = [rand(rng, a.shape, dtype) if isinstance(a, np.ndarray) else a for a in args]
        np.testing.assert_allclose(fn(*fresh, **kwargs), _reference(fn, *fresh, **kwargs), **tol(dtype),
                                   err_msg=name)


def test_each_argument_is_part_of_the_key():
    """Same shapes, other strides, padding or dilations: the geometry of the new arguments, not the remembered
    one (the output shape shows it), as the reference computes it."""
    rng = np.random.default_rng(2)
    x, w = rand(rng, (1, 12, 12, 8), np.float32), rand(rng, (3, 3, 8, 1), np.float32)
    explicit = [[0, 0], [2, 0], [1, 3], [0, 0]]
    for kwargs, out_hw in ((dict(strides=1, padding="SAME"), (12, 12)), (dict(strides=2, padding="SAME"), (6, 6)),
                           (dict(strides=1, padding="VALID"), (10, 10)),
                           (dict(strides=1, padding="SAME", dilations=2), (12, 12)),
                           (dict(strides=1, padding="VALID", dilations=2), (8, 8)),
                           (dict(strides=[1, 1], padding=explicit), (12, 14))):
        for _ in range(2):
            out = sepconv.depthwise_conv2d(x, w, **kwargs)
            assert out.shape == (1, *out_hw, 8), kwargs
            np.testing.assert_allclose(out, _reference(sepconv.depthwise_conv2d, x, w, **kwargs), **tol(np.float32))


def test_errors_and_conversions_are_not_skipped():
    """After a call has been remembered: ``strides=True`` (equal to 1 as a key) is still refused, a filter of
    another dtype still promotes, a non-contiguous input and NCHW still give the reference's values, and a
    ``dy`` of the wrong shape still fails its check."""
    rng = np.random.default_rng(3)
    x, w = rand(rng, (1, 10, 10, 16), np.float32), rand(rng, (3, 3, 16, 1), np.float32)
    sepconv.depthwise_conv2d(x, w, 1, "SAME")
    sepconv.depthwise_conv2d(x, w, 1, "SAME")
    with pytest.raises(TypeError, match="strides"):
        sepconv.depthwise_conv2d(x, w, True, "SAME")
    promoted = sepconv.depthwise_conv2d(x, w.astype(np.float64), 1, "SAME")
    assert promoted.dtype == np.float64
    strided = np.asfortranarray(x)
    np.testing.assert_allclose(sepconv.depthwise_conv2d(strided, w, 1, "SAME"),
                               _reference(sepconv.depthwise_conv2d, x, w, 1, "SAME"), **tol(np.float32))
    nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    for _ in range(2):
        out = sepconv.depthwise_conv2d(nchw, w, 1, "SAME", data_format="NCHW")
        np.testing.assert_allclose(out.transpose(0, 2, 3, 1), _reference(sepconv.depthwise_conv2d, x, w, 1, "SAME"),
                                   **tol(np.float32))
    dy = rand(rng, (1, 10, 10, 16), np.float32)
    sepconv.depthwise_conv2d_backprop_input(list(x.shape), w, dy, 1, "SAME")
    with pytest.raises(ValueError, match="out_backprop"):
        sepconv.depthwise_conv2d_backprop_input(list(x.shape), w, dy[:, :9], 1, "SAME")


def test_the_implementation_is_chosen_at_each_call(monkeypatch):
    """A call remembered under the fast implementation runs the reference inside ``use_implementation``."""
    rng = np.random.default_rng(4)
    x, w = rand(rng, (1, 8, 8, 4), np.float32), rand(rng, (3, 3, 4, 1), np.float32)
    sepconv.depthwise_conv2d(x, w, 1, "SAME")
    calls = []
    original = sepconv.reference.depthwise_conv2d

    def spy(*args):
        calls.append(args[0].shape)
        return original(*args)

    monkeypatch.setattr(sepconv.reference, "depthwise_conv2d", spy)
    with sepconv.use_implementation("reference"):
        sepconv.depthwise_conv2d(x, w, 1, "SAME")
    assert calls == [x.shape]


def test_the_memory_is_bounded(monkeypatch):
    """Past ``SEEN_MAX_CALLS`` different calls the remembered ones are dropped, and calls still compute."""
    monkeypatch.setattr(api, "SEEN_MAX_CALLS", 3)
    rng = np.random.default_rng(5)
    w = rand(rng, (3, 3, 2, 1), np.float32)
    for h in range(5, 12):
        x = rand(rng, (1, h, 6, 2), np.float32)
        np.testing.assert_allclose(sepconv.depthwise_conv2d(x, w, 1, "SAME"),
                                   _reference(sepconv.depthwise_conv2d, x, w, 1, "SAME"), **tol(np.float32))
        assert len(api._SEEN) <= 3
