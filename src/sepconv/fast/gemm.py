"""``out = a @ b`` for the fast ops, on sepconv's OpenMP threads (:mod:`sepconv.kernels.blas`:
NumPy's OpenBLAS, single-threaded in each worker), or ``np.matmul`` where that is not possible.

Operands are 2-D or 3-D (a batch of products; a 2-D operand is shared by the whole batch), any
of their two trailing axes may be the contiguous one (transposed views are passed to BLAS as
such, without a copy); ``out`` must have a contiguous last axis.
"""

from __future__ import annotations

import numpy as np

from ..kernels import blas
from ..kernels._jit import PARALLEL_LAUNCH, thread_count
from ..kernels._simd import VECTOR_BYTES

# OpenBLAS runs products of at most this many multiply-adds (M * N * K) on the calling thread
# (``SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD`` in its interface/gemm.c), so its pool does not
# wake: those go to ``np.matmul`` as they are (2 us for 64x12x128, against ~8 us of Python and
# dispatch on the way to our kernel).
OPENBLAS_SINGLE_THREAD_MACS = 65536 * 4
# Products of fewer multiply-adds run on the calling thread (still single-threaded in OpenBLAS, so
# that its own thread pool does not wake).
GEMM_PARALLEL_MIN_MACS = 1_000_000

# cblas_?gemm's address, alpha = 1 and beta = 0 per dtype (where NumPy's OpenBLAS was found).
_GEMMS = {np.dtype(t): (address, t(1), t(0)) for t, address in ((np.float32, blas.SGEMM), (np.float64, blas.DGEMM))
          if blas.AVAILABLE}


def _layout(a: np.ndarray, rows: int, cols: int) -> tuple[int, int] | None:
    """``(trans, ld)`` of a ``[rows, cols]`` matrix (the two trailing axes of ``a``) for BLAS, or None."""
    itemsize = a.itemsize
    s_row, s_col = a.strides[-2], a.strides[-1]
    if s_row % itemsize or s_col % itemsize:
        return None
    if cols == 1 or s_col == itemsize:
        ld = s_row // itemsize if rows > 1 else cols
        if ld >= max(1, cols):
            return blas.CBLAS_NO_TRANS, ld
    if rows == 1 or s_row == itemsize:
        ld = s_col // itemsize if cols > 1 else rows
        if ld >= max(1, rows):
            return blas.CBLAS_TRANS, ld
    return None


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, accumulate: bool = False,
           split_rows: bool | None = None) -> None:
    """``out[...] = a @ b`` (``a`` ``[..., M, K]``, ``b`` ``[..., K, N]``, ``out`` ``[..., M, N]``), or
    ``out += a @ b`` with ``accumulate``.  Split over the threads by rows of ``out`` (each thread then
    reads its rows of ``a`` and all of ``b``) or by columns (all of ``a``, its columns of ``b``):
    ``split_rows``, or by default rows when ``M >= N``.

    Examples
    --------
    >>> import numpy as np
    >>> a, b, out = np.ones((7, 3), np.float32), np.ones((5, 3), np.float32).T, np.empty((7, 5), np.float32)
    >>> matmul(a, b, out); float(out[6, 4])
    3.0
    """
    dtype = out.dtype
    groups = out.shape[0] if out.ndim == 3 else 1
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    macs = groups * m * n * k
    gemm = _GEMMS.get(dtype) if macs > OPENBLAS_SINGLE_THREAD_MACS else None
    layouts = None
    if (gemm is not None and a.dtype == dtype and b.dtype == dtype
            and a.ndim in (2, 3) and b.ndim in (2, 3) and out.ndim in (2, 3)
            and (a.ndim == 2 or a.shape[0] == groups) and (b.ndim == 2 or b.shape[0] == groups)
            and out.strides[-1] == dtype.itemsize and (m == 1 or out.strides[-2] >= n * dtype.itemsize)
            and out.strides[-2] % dtype.itemsize == 0):
        layouts = _layout(a, m, k), _layout(b, k, n)
    if layouts is None or None in layouts:
        if accumulate:
            out += np.matmul(a, b)
        else:
            np.matmul(a, b, out=out)
        return
    (trans_a, lda), (trans_b, ldb) = layouts
    itemsize = dtype.itemsize
    ldc = out.strides[-2] // itemsize if m > 1 else n
    parallel = macs >= GEMM_PARALLEL_MIN_MACS
    threads = thread_count() if parallel else 1
    chunks = 1 if not parallel or groups % threads == 0 or groups >= 4 * threads else threads
    function, one, zero = gemm
    a_data, b_data, out_data = blas.data_addresses(a, b, out)
    args = (function, blas.ILP64, m, n, k, one, one if accumulate else zero,
            a_data, a.strides[0] if a.ndim == 3 else 0, trans_a, lda,
            b_data, b.strides[0] if b.ndim == 3 else 0, trans_b, ldb,
            out_data, out.strides[0] if out.ndim == 3 else 0, ldc,
            itemsize, chunks, m >= n if split_rows is None else split_rows, VECTOR_BYTES // itemsize)
    tasks = groups * chunks
    with blas.single_threaded:
        if tasks == 1 or not parallel:
            blas.gemm_tasks(0, tasks, *args)
        else:
            with PARALLEL_LAUNCH:
                blas.gemm_parallel(tasks, *args)
