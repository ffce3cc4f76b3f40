"""The matrix products on sepconv's threads (sepconv.fast.gemm, sepconv.kernels.blas) against NumPy."""

from __future__ import annotations

import itertools
import sys
import threading

import numpy as np
import pytest

from sepconv.fast import gemm  # noqa: F401  (the module, not the function of that name)
from sepconv.kernels import blas

gemm_module = sys.modules["sepconv.fast.gemm"]


def _operand(rng, shape, transposed, dtype):
    """A ``shape`` array, stored transposed in its two trailing axes when ``transposed`` (a view)."""
    if not transposed:
        return rng.standard_normal(shape).astype(dtype)
    stored = rng.standard_normal((*shape[:-2], shape[-1], shape[-2])).astype(dtype)
    return stored.swapaxes(-1, -2)


def test_numpy_openblas_is_found():
    """NumPy's wheels bundle OpenBLAS: the products run on our threads (else every test below would only
    exercise the np.matmul fallback)."""
    config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    if "openblas" not in config["name"].lower():
        pytest.fail(f"this NumPy is built with {config['name']}, not OpenBLAS: the tests expect NumPy's wheels")
    assert blas.AVAILABLE


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 3, 5), (1, 50, 30), (30, 50, 1), (200, 30, 100), (49, 60, 75),
                                   (100, 20, 7), (3, 40, 200)])
def test_matmul_matches_numpy(m, k, n, parallel, dtype, monkeypatch):
    """Every layout of the operands (either trailing axis contiguous), single products and batches (a
    2-D operand shared by the batch), split by rows (M >= N) or by columns at vector boundaries (N not
    a multiple of the lanes), on the calling thread or over the threads."""
    monkeypatch.setattr(gemm_module, "GEMM_PARALLEL_MIN_MACS", 0 if parallel else 10**12)
    monkeypatch.setattr(gemm_module, "OPENBLAS_SINGLE_THREAD_MACS", 0)  # every size on our kernel
    rng = np.random.default_rng(m * 10_000 + k * 100 + n)
    for groups, trans_a, trans_b, shared_b in itertools.product((0, 1, 3), (False, True), (False, True),
                                                                 (False, True)):
        batch = (groups,) if groups else ()
        a = _operand(rng, (*batch, m, k), trans_a, dtype)
        b = _operand(rng, (k, n) if shared_b or not groups else (groups, k, n), trans_b, dtype)
        out = np.full((*batch, m, n), np.nan, dtype)
        gemm_module.matmul(a, b, out)
        np.testing.assert_allclose(out, np.matmul(a, b), rtol=1e-4, atol=1e-4,
                                   err_msg=f"groups={groups} trans_a={trans_a} trans_b={trans_b}")
        before = out.copy()
        gemm_module.matmul(a, b, out, accumulate=True)
        np.testing.assert_allclose(out, before + np.matmul(a, b), rtol=1e-4, atol=1e-4)


def test_matmul_writes_only_its_output_block(monkeypatch):
    """``out`` a block of a larger array (row stride larger than N): nothing outside it is written."""
    monkeypatch.setattr(gemm_module, "OPENBLAS_SINGLE_THREAD_MACS", 0)
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((64, 40)).astype(np.float32), rng.standard_normal((40, 48)).astype(np.float32)
    big = np.full((70, 60), 7.0, np.float32)
    gemm_module.matmul(a, b, big[3:67, 5:53])
    np.testing.assert_allclose(big[3:67, 5:53], a @ b, rtol=1e-4, atol=1e-4)
    mask = np.ones(big.shape, bool)
    mask[3:67, 5:53] = False
    assert (big[mask] == 7.0).all()


@pytest.mark.parametrize("case", ["strided", "int", "mixed"])
def test_matmul_falls_back_to_numpy(case):
    """Operands BLAS cannot take as they are (neither trailing axis contiguous, integers, mixed dtypes)."""
    rng = np.random.default_rng(2)
    if case == "strided":
        a, b = rng.standard_normal((20, 30))[:, ::2], rng.standard_normal((15, 8))
    elif case == "int":
        a, b = rng.integers(-5, 5, (20, 15)), rng.integers(-5, 5, (15, 8))
    else:
        a, b = rng.standard_normal((20, 15)).astype(np.float32), rng.standard_normal((15, 8))
    out = np.empty((20, 8), np.result_type(a, b))
    gemm_module.matmul(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-5)


def test_openblas_thread_count_is_one_inside_and_restored(monkeypatch):
    """OpenBLAS runs single-threaded during our products (its own pool would spin against our workers)
    and the process's count is back after, also when calls from several Python threads overlap."""
    original = blas._GET_NUM_THREADS()
    blas._SET_NUM_THREADS(2)  # a known count other than one
    try:
        _check_thread_count_restored(monkeypatch)
    finally:
        blas._SET_NUM_THREADS(original)


def _check_thread_count_restored(monkeypatch):
    seen = []
    real = blas.gemm_tasks

    def spy(*args):
        seen.append(blas._GET_NUM_THREADS())
        return real(*args)

    monkeypatch.setattr(blas, "gemm_tasks", spy)
    a = np.ones((30, 20), np.float32)
    out = np.empty((30, 10), np.float32)
    gemm_module.matmul(a, np.ones((20, 10), np.float32), out)
    assert seen == []  # a product OpenBLAS runs on the calling thread anyway: np.matmul
    monkeypatch.setattr(gemm_module, "OPENBLAS_SINGLE_THREAD_MACS", 0)
    gemm_module.matmul(a, np.ones((20, 10), np.float32), out)
    assert seen == [1]
    assert blas._GET_NUM_THREADS() == 2
    monkeypatch.setattr(blas, "gemm_tasks", real)

    errors = []
    start = threading.Barrier(4)

    def work(seed):
        rng = np.random.default_rng(seed)
        x, w = rng.standard_normal((300, 200)), rng.standard_normal((200, 150))
        y = np.empty((300, 150))
        start.wait()
        for _ in range(20):
            gemm_module.matmul(x, w, y)
            if not np.allclose(y, x @ w):
                errors.append(seed)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert blas._GET_NUM_THREADS() == 2
