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
import importlib
import os
import threading

import numba

CACHE = os.environ.get("SEPCONV_NUMBA_CACHE", "1").lower() in ("1", "true", "yes")
FASTMATH = {"reassoc", "contract", "nsz", "arcp"} if os.environ.get("SEPCONV_FASTMATH", "1").lower() in (
    "1", "true", "yes") else False


def _thread_safe_layer_available() -> bool:
    """Whether Numba will run parallel kernels on a layer that allows concurrent launches.

    Importing the layer loads its OpenMP runtime (``libgomp``), which reads ``OMP_WAIT_POLICY``
    once, then: unless the caller has chosen (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``), we load
    it ``PASSIVE`` (and put the environment back).  By default idle OpenMP workers spin for
    300,000 rounds after each parallel region, and on two cores they then fight BLAS's threads in
    the GEMM that follows (measured: separable 1x56x56x144 -> 144 as a parallel depthwise then a
    GEMM, 6.7 ms spinning vs 1.2 ms passive).  Passive workers cost ~20 us to wake for each
    parallel region, so small problems stay on the calling thread (``PARALLEL_MIN_MACS`` in
    ``sepconv.fast.depthwise``).  A short spin (``GOMP_SPINCOUNT=3000``) was tried too: small
    layers gained, the GEMM-bound separable and conv2d cases lost up to 50% in the benchmark.
    """
    if os.environ.get("NUMBA_THREADING_LAYER", "").lower() == "workqueue":
        return False
    chosen = "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ
    if not chosen:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
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
            del os.environ["OMP_WAIT_POLICY"]


THREAD_SAFE_LAYER = _thread_safe_layer_available()
PARALLEL_LAUNCH: contextlib.AbstractContextManager = (
    contextlib.nullcontext() if THREAD_SAFE_LAYER else threading.Lock())


def kernel(fn=None, *, parallel: bool = False, inline: bool = False):
    """``numba.njit`` with the project's policy; ``parallel=True`` for kernels that use ``prange``;
    ``inline=True`` for small helpers called in a hot loop (inlined by Numba, so that their vector
    results stay in registers whatever LLVM's inliner decides)."""
    def wrap(f):
        return numba.njit(cache=CACHE, fastmath=FASTMATH, parallel=parallel, nogil=True, error_model="numpy",
                          inline="always" if inline else "never")(f)
    return wrap(fn) if fn is not None else wrap
