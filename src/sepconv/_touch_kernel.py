"""A jitted function with a kernel's arguments and almost no work, for ``sepconv bench --overhead``: the floor of
calling any kernel (in its own module, so that the bench's other modules, which ``sepconv --help`` imports, need no
Numba)."""

from .kernels._jit import kernel


@kernel
def touch_kernel(x, w, out, stride, pad):
    """Writes one product: ``out[0, 0, 0, 0] = x[0, stride, pad, 0] * w[0, 0, 0, 0]``."""
    out[0, 0, 0, 0] = x[0, stride, pad, 0] * w[0, 0, 0, 0]
