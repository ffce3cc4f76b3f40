"""Window arithmetic shared by the convolution kernels: which taps and outputs lie inside the input."""

from __future__ import annotations

from ._jit import kernel


@kernel
def tap_range(origin, dilation, k, size):
    """The taps ``t`` in ``[lo, hi)`` with ``0 <= origin + t * dilation < size``."""
    lo = 0 if origin >= 0 else (-origin + dilation - 1) // dilation
    hi = 0 if origin > size - 1 else min(k, (size - 1 - origin) // dilation + 1)
    return lo, max(lo, hi)


@kernel
def interior(out_size, in_size, k, stride, dilation, pad):
    """The outputs ``[lo, hi)`` all of whose ``k`` taps are inside the input (``pad`` may be negative)."""
    lo = 0 if pad <= 0 else (pad + stride - 1) // stride
    last = in_size - 1 + pad - (k - 1) * dilation
    hi = 0 if last < 0 else last // stride + 1
    lo = min(lo, out_size)
    return lo, max(lo, min(hi, out_size))


@kernel
def row_or_zeros(x, zero_row, b, ih):
    """Input row ``ih`` of image ``b``, or ``zero_row`` (``[in_w, C]`` zeros) when it is padding."""
    if 0 <= ih < x.shape[1]:
        return x[b, ih]
    return zero_row
