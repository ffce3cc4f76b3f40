"""Window arithmetic shared by the convolution kernels: which taps and outputs lie inside the input, and where a
channel block starts."""

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


@kernel
def parity_rows(v, out_h, k):
    """The filter rows ``r_lo, r_lo + 2, ... < r_end`` of a stride-2 layer (``k`` rows, undilated) that reach padded
    input row ``v`` from a row of ``dy`` (``out_h`` rows) inside it: ``(v - r) / 2`` in ``[0, out_h)``."""
    r_first = v % 2
    r_lo = max(r_first, v - 2 * (out_h - 1))
    r_lo += (r_lo - r_first) % 2
    return r_lo, min(k, v + 1)


@kernel
def parity_steps(out_w, in_w, pad_left, k, pixels):
    """``(m_lo, m_last)``: the first and last ``dy`` column ``m`` of the stride-2 input gradient's steps of ``pixels``
    consecutive pixels (padded columns ``2m .. 2m + pixels - 1``, reading ``dy`` columns ``m - (k - 1) // 2 .. m +
    pixels // 2 - 1``), all inside ``dx`` and ``dy``; no steps when ``m_last < m_lo``."""
    return (max((k - 1) // 2, (pad_left + 1) // 2),
            min(out_w - pixels // 2, (in_w - pixels + pad_left) // 2))


@kernel
def block_start(k, g, c, count):
    """The first channel of block ``g`` of the group from channel ``k``: blocks are ``count`` channels apart, but one
    that would pass ``C`` ends at ``C`` instead, overlapping the block before it (its shared channels computed twice,
    to the same values), so that no load or store is masked once ``C`` holds a vector: masked stores cost AVX2
    cores many cycles (Zen 3 VM, 1x56x56x40 3x3 with the last block masked: 2.5x the old kernels' time)."""
    start = k + g * count
    return min(start, c - count) if c >= count else start
