"""The one home of the Numba compile policy: every kernel is decorated with :func:`kernel`.

Environment knobs, read once at import (Numba's cache freezes globals, so kernels take
everything else as arguments):

- ``SEPCONV_NUMBA_CACHE`` (default ``1``): cache compiled kernels on disk, so only the first
  run on a machine pays the JIT.
- ``SEPCONV_FASTMATH`` (default ``1``): allow reassociation and contraction (FMA) so that
  reductions vectorize.  NaN and Inf semantics are kept (no ``nnan``/``ninf``).

Thread safety: kernels release the GIL (``nogil``), so several Python threads may launch
parallel kernels at once.  Numba's ``tbb`` and ``omp`` threading layers allow that (and are
its first choices); its ``workqueue`` fallback does not.  ``PARALLEL_LAUNCH`` is a context
manager around every parallel launch: nothing when a thread-safe layer is available, a lock
that serializes the launches when only ``workqueue`` is.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import pathlib
import threading

import numba

CACHE = os.environ.get("SEPCONV_NUMBA_CACHE", "1").lower() in ("1", "true", "yes")
FASTMATH = {"reassoc", "contract", "nsz", "arcp"} if os.environ.get("SEPCONV_FASTMATH", "1").lower() in (
    "1", "true", "yes") else False


# Rounds an idle OpenMP worker spins after a parallel region before it sleeps (see below).
OMP_SPIN_COUNT = 10_000


def _thread_safe_layer_available() -> bool:
    """Whether Numba will run parallel kernels on a layer that allows concurrent launches.

    Importing the layer loads its OpenMP runtime (``libgomp``), which reads its wait policy once;
    unless the caller has chosen one (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``), we load it with
    ``GOMP_SPINCOUNT`` = :data:`OMP_SPIN_COUNT` (and put the environment back): an idle worker
    spins ~0.1-0.3 ms after each parallel region, then sleeps.  Waking a sleeping worker costs
    60-90 us on this machine's VMs (an interrupt to an idle virtual CPU), more than a whole
    MobileNet layer, so back-to-back calls must find it spinning (one process, us, passive vs
    10,000 rounds, median of three processes each: depthwise 1x28x28x192 106 vs 27, 1x56x56x144
    188 vs 64, 8x28x28x192 input gradient 359 vs 243, filter gradient 286 vs 173; separable
    1x56x56x144 -> 144 623 vs 505, 1x19x19x728 -> 728 1580 vs 1615; conv2d 1x224x224x3 stride 2
    183 vs 133, 8x14x14x256 6700 vs 6638).  libgomp's own default (300,000 rounds, several ms)
    keeps the worker on its core while BLAS's threads run the GEMM that follows a depthwise pass
    (separable 1x56x56x144 -> 144: 6.7 ms against 1.2 ms passive, measured on an earlier VM);
    30,000 rounds already cost the 1x19x19x728 separable 15%.
    """
    if os.environ.get("NUMBA_THREADING_LAYER", "").lower() == "workqueue":
        return False
    chosen = "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ
    if not chosen:
        os.environ["GOMP_SPINCOUNT"] = str(OMP_SPIN_COUNT)
    try:
        for module in ("tbbpool", "omppool"):  # what Numba itself imports to pick a layer
            try:
                importlib.import_module(f"numba.np.ufunc.{module}")
            except ImportError:
                continue
            return True
        return False
    finally:
        if not chosen:
            del os.environ["GOMP_SPINCOUNT"]


# The CPUs this process was started on, read before the OpenMP runtime loads: with OMP_PROC_BIND in the environment,
# libgomp binds the loading thread to one CPU at once, and processes started afterwards inherit that one CPU
# (sepconv.bench starts its workers on this set).
CPUS_BEFORE_OPENMP: frozenset[int] | None = (
    frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None)
THREAD_SAFE_LAYER = _thread_safe_layer_available()
PARALLEL_LAUNCH: contextlib.AbstractContextManager = (
    contextlib.nullcontext() if THREAD_SAFE_LAYER else threading.Lock())


_num_threads = None  # the function thread_count calls, chosen at its first call


def thread_count() -> int:
    """``numba.get_num_threads()`` (this Python thread's setting), at ~0.1 us instead of ~0.6: after the
    first call, Numba's own C getter directly, without its check that the threads are launched (the
    dispatchers read it on every call).  The threads are launched at the first call, not at import."""
    global _num_threads
    if _num_threads is None:
        count = numba.get_num_threads()  # launches the threading layer
        from numba.np.ufunc import parallel
        getter = getattr(parallel, "_get_num_threads", None)  # private: the public function if it goes
        _num_threads = getter if callable(getter) and getter() == count else numba.get_num_threads
        return count
    return _num_threads()


def kernel(fn=None, *, parallel: bool = False, inline: bool = False):
    """``numba.njit`` with the project's policy; ``parallel=True`` for kernels that use ``prange``;
    ``inline=True`` for small helpers called in a hot loop (inlined by Numba, so that their vector
    results stay in registers whatever LLVM's inliner decides)."""
    def wrap(f):
        dispatcher = numba.njit(cache=CACHE, fastmath=FASTMATH, parallel=parallel, nogil=True, error_model="numpy",
                                inline="always" if inline else "never")(f)
        _stamp_with_kernels_source(dispatcher)
        return dispatcher
    return wrap(fn) if fn is not None else wrap


def sources_hash(folder: pathlib.Path) -> bytes:
    """SHA-256 of the names and contents of the ``.py`` files in ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.digest()


# Numba keys a kernel's disk cache on its own file's contents only, but kernels inline the helpers and intrinsics
# of other modules (sepconv.kernels._simd, _window, ...): a change there alone left the other files' cached
# machine code in use (found when a faster _simd.vload_group_sums still ran at the old speed).  Every kernel's key
# also holds this hash of the whole kernels package, so any change to it (or an upgrade) compiles them again.
KERNELS_SOURCE_HASH = sources_hash(pathlib.Path(__file__).parent)


def _stamp_with_kernels_source(dispatcher) -> None:
    """Add :data:`KERNELS_SOURCE_HASH` to the freshness stamp of ``dispatcher``'s disk cache (Numba's private
    ``_cache._cache_file._source_stamp``; left alone if a Numba version names it otherwise)."""
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = (KERNELS_SOURCE_HASH, cache_file._source_stamp)
