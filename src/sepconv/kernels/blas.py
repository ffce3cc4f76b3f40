"""Matrix products on sepconv's own threads: NumPy's OpenBLAS, called single-threaded from each
OpenMP worker of :func:`gemm_parallel` on its block of the product.

Why not ``np.matmul``.  OpenBLAS runs a large product on threads of its own, which then spin for
~2^28 cycles (~0.1 s) waiting for the next call; our kernels run on Numba's OpenMP workers, which
spin ~0.1-0.3 ms after each call (:mod:`sepconv.kernels._jit`).  On two cores the two pools take
each other's cores: measured in one process, alternating, us, a 1x56x56x144 depthwise pass 66
alone and 212-484 right after a conv2d or separable call that used BLAS, an 8x28x28x192 input
gradient 262 -> 782-829, and BLAS's own 361x728x728 product 1.4 -> 2.5 ms after our kernels.
Here every product runs on the OpenMP workers, each calling ``cblas_?gemm`` on its rows or
columns while OpenBLAS's thread count is one (``with single_threaded:``), so OpenBLAS's pool never
wakes.

The library is the one NumPy loaded (``numpy.libs``' ``scipy_openblas``, ILP64 or LP64); its
function addresses are found with ``ctypes`` at import and passed to the kernel as integers (so
the compiled kernel stays cacheable).  Where it is not found (another BLAS), :data:`AVAILABLE` is
False and callers use ``np.matmul``.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from ._jit import kernel
from ._simd import address

CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS = 101, 111, 112


def _find_openblas() -> tuple[int, int, ctypes._CFuncPtr, ctypes._CFuncPtr, bool] | None:
    """``(sgemm, dgemm, get_num_threads, set_num_threads, ilp64)`` in NumPy's OpenBLAS (the first two as
    addresses), or None."""
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    candidates = sorted(glob.glob(os.path.join(libs, "libscipy_openblas*.so*")) +
                        glob.glob(os.path.join(libs, "libopenblas*.so*")))
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix, ilp64 in (("scipy_", "64_", True), ("", "64_", True), ("scipy_", "", False), ("", "", False)):
            try:
                sgemm = getattr(lib, f"{prefix}cblas_sgemm{suffix}")
                dgemm = getattr(lib, f"{prefix}cblas_dgemm{suffix}")
                get_threads = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}")
                set_threads = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}")
            except AttributeError:
                continue
            get_threads.argtypes, get_threads.restype = [], ctypes.c_int
            set_threads.argtypes, set_threads.restype = [ctypes.c_int], None
            sgemm_address = ctypes.cast(sgemm, ctypes.c_void_p).value
            dgemm_address = ctypes.cast(dgemm, ctypes.c_void_p).value
            return sgemm_address, dgemm_address, get_threads, set_threads, ilp64
    return None


_FOUND = None if os.environ.get("SEPCONV_BLAS_ON_OUR_THREADS", "1") == "0" else _find_openblas()
AVAILABLE = _FOUND is not None
SGEMM, DGEMM, _GET_NUM_THREADS, _SET_NUM_THREADS, ILP64 = _FOUND if _FOUND is not None else (0, 0, None, None, True)


class _SingleThreaded:
    """OpenBLAS's thread count (the process's) is one inside ``with single_threaded:``, and put back when
    the last of the calls that overlap (sepconv called from several Python threads) leaves.  A product
    the user's code runs on another Python thread meanwhile runs on one thread too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = 0

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._saved = _GET_NUM_THREADS()
                _SET_NUM_THREADS(1)
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                _SET_NUM_THREADS(self._saved)


single_threaded = _SingleThreaded()


@intrinsic
def _call_void(typingctx, function, args):
    """Call the C function at address ``function`` with the values of the tuple ``args``
    (int32/int64/float32/float64, as C ``int``/``int64_t``/``float``/``double``); no result."""
    if not isinstance(args, types.BaseTuple):
        return None

    def codegen(context, builder, sig, llargs):
        address, values = llargs
        arg_types = [context.get_value_type(t) for t in sig.args[1]]
        fnty = ir.FunctionType(ir.VoidType(), arg_types)
        fn = builder.inttoptr(address, fnty.as_pointer())
        builder.call(fn, [builder.extract_value(values, i) for i in range(len(arg_types))])
        return context.get_dummy_value()
    return types.none(types.int64, args), codegen


@kernel
def _gemm(gemm, ilp64, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """``cblas_?gemm`` in row-major order on raw addresses."""
    if ilp64:
        _call_void(gemm, (np.int32(CBLAS_ROW_MAJOR), np.int32(trans_a), np.int32(trans_b), np.int64(m), np.int64(n),
                          np.int64(k), alpha, a, np.int64(lda), b, np.int64(ldb), beta, c, np.int64(ldc)))
    else:
        _call_void(gemm, (np.int32(CBLAS_ROW_MAJOR), np.int32(trans_a), np.int32(trans_b), np.int32(m), np.int32(n),
                          np.int32(k), alpha, a, np.int32(lda), b, np.int32(ldb), beta, c, np.int32(ldc)))


@kernel
def data_addresses(a, b, out):
    """The data addresses of the three operands of a product, in one compiled call (NumPy's ``.ctypes.data`` costs
    ~1.4 us an array)."""
    return address(a), address(b), address(out)


@kernel
def gemm_tasks(task_begin, task_end, gemm, ilp64, m, n, k, alpha, beta,
               a, a_group, trans_a, lda, b, b_group, trans_b, ldb, c, c_group, ldc, itemsize, chunks, split_rows,
               column_step):
    """Tasks ``[task_begin, task_end)`` of ``C[g] = alpha * op(A[g]) @ op(B[g]) + beta * C[g]``: task ``t`` is
    block ``t % chunks`` of group ``t // chunks``, the groups' products each cut into ``chunks`` blocks of
    rows (``split_rows``) or of columns (at multiples of ``column_step``).  Each block is one
    ``cblas_?gemm`` (function address ``gemm``; call it inside ``with single_threaded:``).  Matrices
    are row-major at byte addresses ``a``, ``b``, ``c``, group ``g`` at ``a + g * a_group`` etc.;
    ``op(A)`` is ``[m, k]`` (stored ``[k, m]`` when ``trans_a``), ``op(B)`` ``[k, n]``."""
    for task in range(task_begin, task_end):
        g, part = task // chunks, task % chunks
        a_g, b_g, c_g = a + g * a_group, b + g * b_group, c + g * c_group
        if split_rows:
            r0, r1 = m * part // chunks, m * (part + 1) // chunks
            a_off = r0 * itemsize if trans_a == CBLAS_TRANS else r0 * lda * itemsize
            a_g, c_g, rows, cols = a_g + a_off, c_g + r0 * ldc * itemsize, r1 - r0, n
        else:
            c0 = n * part // chunks // column_step * column_step
            c1 = n if part == chunks - 1 else n * (part + 1) // chunks // column_step * column_step
            b_off = c0 * ldb * itemsize if trans_b == CBLAS_TRANS else c0 * itemsize
            b_g, c_g, rows, cols = b_g + b_off, c_g + c0 * itemsize, m, c1 - c0
        if rows > 0 and cols > 0:
            _gemm(gemm, ilp64, trans_a, trans_b, rows, cols, k, alpha, a_g, lda, b_g, ldb, beta, c_g, ldc)


@kernel(parallel=True)
def gemm_parallel(tasks, gemm, ilp64, m, n, k, alpha, beta,
                  a, a_group, trans_a, lda, b, b_group, trans_b, ldb, c, c_group, ldc, itemsize, chunks, split_rows,
                  column_step):
    """:func:`gemm_tasks` over ``tasks`` tasks, one per OpenMP task."""
    for task in prange(tasks):
        gemm_tasks(task, task + 1, gemm, ilp64, m, n, k, alpha, beta, a, a_group, trans_a, lda,
                   b, b_group, trans_b, ldb, c, c_group, ldc, itemsize, chunks, split_rows, column_step)
