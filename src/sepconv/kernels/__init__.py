"""Numba kernels: contiguous arrays and plain ints in, a preallocated output written, nothing validated.

One module per op family (``depthwise``, ``conv2d``, ``separable``); compile policy in ``_jit``.
Nothing here is compiled at import: each kernel compiles (or loads from the cache) on first call.
"""
