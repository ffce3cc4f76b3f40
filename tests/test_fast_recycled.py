"""Recycled output buffers (sepconv.fast.recycled): reused only when no array refers to them, never
shared between live results, bounded in size, safe from several threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import sepconv
from sepconv import reference
from sepconv.fast import recycled
from sepconv.geometry import depthwise_geometry

MB = 1024 * 1024


@pytest.fixture
def fresh_pool(monkeypatch):
    """An empty pool for the test (the suite's other tests leave buffers in the real one), keeping
    buffers from 1 MB, so that the tests' arrays stay small."""
    monkeypatch.setattr(recycled, "RECYCLED_MIN_BYTES", MB)
    monkeypatch.setattr(recycled, "_kept", {})
    monkeypatch.setattr(recycled, "_kept_bytes", 0)
    return recycled


def test_free_buffer_is_reused_and_a_used_one_is_not(fresh_pool):
    a = fresh_pool.recycled_bytes(2 * MB)
    first = a.ctypes.data
    view = a.view(np.float32)[10:].reshape(-1, 2)
    del a
    b = fresh_pool.recycled_bytes(2 * MB)
    assert b.ctypes.data != first  # the view still uses the first buffer
    del view
    c = fresh_pool.recycled_bytes(2 * MB)
    assert c.ctypes.data == first
    assert fresh_pool.recycled_bytes(3 * MB).ctypes.data not in (first, b.ctypes.data)  # other size: new
    assert fresh_pool._kept_bytes == 7 * MB


def test_small_buffers_are_not_kept(fresh_pool):
    fresh_pool.recycled_bytes(fresh_pool.RECYCLED_MIN_BYTES - 1)
    assert fresh_pool._kept == {} and fresh_pool._kept_bytes == 0


def test_the_cap_drops_free_buffers_and_then_stops_keeping(fresh_pool, monkeypatch):
    monkeypatch.setattr(fresh_pool, "RECYCLED_MAX_BYTES", 5 * MB)
    held = fresh_pool.recycled_bytes(2 * MB)
    fresh_pool.recycled_bytes(2 * MB)  # freed at once
    assert fresh_pool._kept_bytes == 4 * MB
    fresh_pool.recycled_bytes(3 * MB)  # 7 MB > 5: the free 2 MB buffer goes, the held one stays
    assert sorted(fresh_pool._kept) == [2 * MB, 3 * MB] and len(fresh_pool._kept[2 * MB]) == 1
    assert fresh_pool._kept[2 * MB][0] is held and fresh_pool._kept_bytes == 5 * MB
    other = fresh_pool.recycled_bytes(4 * MB)  # nothing free to drop but the 3 MB: it goes, 4 MB does not fit
    assert other.nbytes == 4 * MB and 4 * MB not in fresh_pool._kept
    assert fresh_pool._kept_bytes == 2 * MB
    too_large = fresh_pool.recycled_bytes(6 * MB)
    assert too_large.nbytes == 6 * MB and 6 * MB not in fresh_pool._kept


def test_empty_has_the_shape_dtype_and_order(fresh_pool):
    for shape, dtype in [((8, 64, 64, 32), np.float32), ((3, 5), np.float64), ((300, 700), np.float64)]:
        a = fresh_pool.empty(shape, dtype)
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable


def test_results_kept_by_the_caller_are_never_overwritten(fresh_pool):
    """Call an op whose result is recycled again and again, keeping some results: each kept one still
    holds its own values and shares no memory with another."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 3, 64, 1)).astype(np.float32)
    g = depthwise_geometry("depthwise_conv2d", (2, 48, 48, 64), w.shape, 1, "SAME")
    inputs = [rng.standard_normal((2, 48, 48, 64)).astype(np.float32) for _ in range(4)]  # 1.2 MB results
    kept = []
    for round_ in range(3):
        for index, x in enumerate(inputs):
            y = sepconv.depthwise_conv2d(x, w, 1, "SAME")
            if index % 2 == round_ % 2:
                kept.append((x, y))
    assert fresh_pool._kept_bytes > 0  # the results did go through the pool
    for x, y in kept:
        np.testing.assert_allclose(y, reference.depthwise_conv2d(x, w, g), rtol=1e-5, atol=1e-5)
    for i, (_, a) in enumerate(kept):
        for _, b in kept[i + 1:]:
            assert not np.shares_memory(a, b)


def test_threads_never_share_a_buffer(fresh_pool):
    errors = []

    def worker(value: int) -> None:
        for _ in range(200):
            a = fresh_pool.empty((MB // 4,), np.float32)
            a.fill(value)
            if not (a == value).all():  # another thread wrote into this buffer meanwhile
                errors.append(value)
            del a

    threads = [threading.Thread(target=worker, args=(v,)) for v in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert 1 <= len(fresh_pool._kept[MB]) <= 4


def test_the_size_setting_is_checked():
    assert recycled._max_bytes("0") == 0 and recycled._max_bytes("1.5") == 3 * MB // 2
    for bad in ("lots", "-1", "nan", "inf", ""):
        with pytest.raises(ValueError, match="SEPCONV_RECYCLED_MB"):
            recycled._max_bytes(bad)


def test_recycling_switched_off_keeps_nothing(fresh_pool, monkeypatch):
    monkeypatch.setattr(fresh_pool, "RECYCLED_MAX_BYTES", 0)
    assert fresh_pool.recycled_bytes(2 * MB).nbytes == 2 * MB
    assert fresh_pool.empty((4 * MB,), np.uint8).nbytes == 4 * MB
    assert fresh_pool._kept == {} and fresh_pool._kept_bytes == 0
