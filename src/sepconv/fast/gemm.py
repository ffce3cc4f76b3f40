"""``out = a @ b`` for the fast ops, on sepconv's OpenMP threads (:mod:`sepconv.kernels.blas`:
NumPy's OpenBLAS, single-threaded in each worker), or ``np.matmul`` where that is not possible.

Operands are 2-D or 3-D (a batch of products; a 2-D operand is shared by the whole batch), any
of their two trailing axes may be the contiguous one (transposed views are passed to BLAS as
such, without a copy); ``out`` must have a contiguous last axis.
"""

from __future__ import annotations

import numba
import numpy as np

from ..kernels import blas
from ..kernels._jit import PARALLEL_LAUNCH
from ..kernels._simd import VECTOR_BYTES

# Products of fewer multiply-adds run on the calling thread (still single-threaded in OpenBLAS, so
# that its own thread pool does not wake).
GEMM_PARALLEL_MIN_MACS = 1_000_000


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


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, accumulate: bool = False) -> None:
    """``out[...] = a @ b`` (``a`` ``[..., M, K]``, ``b`` ``[..., K, N]``, ``out`` ``[..., M, N]``), or
    ``out += a @ b`` with ``accumulate``.

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
    layouts = None
    if (blas.AVAILABLE and dtype in (np.float32, np.float64) and a.dtype == dtype and b.dtype == dtype
            and a.ndim in (2, 3) and b.ndim in (2, 3) and out.ndim in (2, 3) and m * n * k > 0
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
    ldc = out.strides[-2] // dtype.itemsize if m > 1 else n
    threads = numba.get_num_threads()
    macs = groups * m * n * k
    chunks = 1 if macs < GEMM_PARALLEL_MIN_MACS or groups % threads == 0 or groups >= 4 * threads else threads
    split_rows = m >= n
    itemsize = dtype.itemsize
    args = (blas.SGEMM if dtype == np.float32 else blas.DGEMM, blas.ILP64, m, n, k,
            dtype.type(1), dtype.type(1 if accumulate else 0),
            a.ctypes.data, a.strides[0] if a.ndim == 3 else 0, trans_a, lda,
            b.ctypes.data, b.strides[0] if b.ndim == 3 else 0, trans_b, ldb,
            out.ctypes.data, out.strides[0] if out.ndim == 3 else 0, ldc,
            itemsize, chunks, split_rows, VECTOR_BYTES // itemsize)
    tasks = groups * chunks
    with blas.single_threaded:
        if macs < GEMM_PARALLEL_MIN_MACS or tasks == 1:
            blas.gemm_tasks(0, tasks, *args)
        else:
            with PARALLEL_LAUNCH:
                blas.gemm_parallel(tasks, *args)
