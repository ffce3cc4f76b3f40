"""The one home of the Numba compile policy: every kernel is decorated with :func:`kernel`.

Environment knobs, read once at import (Numba's cache freezes globals, so kernels take
everything else as arguments):

- ``SEPCONV_NUMBA_CACHE`` (default ``1``): cache compiled kernels on disk, so only the first
  run on a machine pays the JIT.
- ``SEPCONV_FASTMATH`` (default ``1``): allow reassociation and contraction (FMA) so that
  reductions vectorize.  NaN and Inf semantics are kept (no ``nnan``/``ninf``).
"""

from __future__ import annotations

import os

import numba

CACHE = os.environ.get("SEPCONV_NUMBA_CACHE", "1").lower() in ("1", "true", "yes")
FASTMATH = {"reassoc", "contract", "nsz", "arcp"} if os.environ.get("SEPCONV_FASTMATH", "1").lower() in (
    "1", "true", "yes") else False


def kernel(fn=None, *, parallel: bool = False):
    """``numba.njit`` with the project's policy; ``parallel=True`` for kernels that use ``prange``."""
    def wrap(f):
        return numba.njit(cache=CACHE, fastmath=FASTMATH, parallel=parallel, nogil=True, error_model="numpy")(f)
    return wrap(fn) if fn is not None else wrap
