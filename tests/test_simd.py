"""The SIMD intrinsics of ``sepconv.kernels._simd`` against plain NumPy, in both float dtypes."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from sepconv.kernels._jit import FASTMATH
from sepconv.kernels._simd import (
    address,
    empty_on_line,
    lanes,
    opaque,
    prefetch,
    vadd,
    vadd_apart,
    vbroadcast,
    vfma,
    vload,
    vload_even,
    vload_group_sums,
    vload_n,
    vload_part,
    vmul,
    vsplat,
    vstore,
    vstore_interleaved,
    vstore_n,
    vstore_repeated,
    vsum,
    vtranspose_block,
    vzeros,
)


@numba.njit
def _exercise(a, out, n):
    count = lanes(a)
    x, y = vload(a, 0), vload(a, count)
    vstore(out, 0, vfma(x, y, vsplat(a, 1.5)))           # x * y + 1.5
    vstore(out, count, vadd(vmul(x, vbroadcast(a, 3)), vzeros(a)))  # x * a[3]
    vstore_n(out, 2 * count, vload_n(a, 5, n), n)         # first n lanes only
    vstore(out, 3 * count, vload_even(a, 1))              # a[1], a[3], ...
    vstore_interleaved(out, 4 * count, x, y)              # x0, y0, x1, y1, ...
    return count, vsum(x), address(a) - address(a[1:])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_intrinsics_match_numpy(dtype):
    count = 64 // np.dtype(dtype).itemsize
    a = np.arange(1, 4 * count + 1, dtype=dtype) / 7
    out = np.full(6 * count, -1.0, dtype)
    n = count // 2 + 1
    lanes_seen, total, step = _exercise(a, out, n)
    x, y = a[:count], a[count:2 * count]
    assert lanes_seen == count and step == -np.dtype(dtype).itemsize
    np.testing.assert_allclose(total, x.sum(), rtol=1e-6)
    np.testing.assert_allclose(out[:count], x * y + 1.5, rtol=1e-6)
    np.testing.assert_allclose(out[count:2 * count], x * a[3], rtol=1e-6)
    np.testing.assert_array_equal(out[2 * count:2 * count + n], a[5:5 + n])
    np.testing.assert_array_equal(out[2 * count + n:3 * count], -1.0)  # the masked lanes are not written
    np.testing.assert_array_equal(out[3 * count:4 * count], a[1:1 + 2 * count:2])
    np.testing.assert_array_equal(out[4 * count:6 * count], np.stack([x, y], axis=1).ravel())


@numba.njit
def _masked_copy(a, i, out, n):
    vstore_n(out, 0, vload_part(a, i, n), n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masks_take_the_first_n_lanes_clamped(dtype):
    count = 64 // np.dtype(dtype).itemsize
    a = np.arange(1, 2 * count + 1, dtype=dtype)
    for n in range(-2, count + 3):
        out = np.full(count, -1.0, dtype)
        _masked_copy(a, 3, out, n)
        kept = min(max(n, 0), count)
        np.testing.assert_array_equal(out[:kept], a[3:3 + kept])
        np.testing.assert_array_equal(out[kept:], -1.0)
    # a load of no lanes reads no memory: the kernels point it at columns in the padding, before the array
    out = np.full(count, -1.0, dtype)
    for i in (-10**6, 10**6):
        _masked_copy(a, i, out, 0)
    np.testing.assert_array_equal(out, -1.0)


@numba.njit
def _opaque_sum(values):
    total = 0
    for v in values:
        total += opaque(v) + opaque(3 * v)
    return total


def test_opaque_returns_its_value():
    values = np.array([-7, 0, 5, 2**40], np.int64)
    assert _opaque_sum(values) == 4 * values.sum()


@numba.njit
def _groups(a, repeated, sums3, sums8):
    count = lanes(a)
    vstore_repeated(repeated, 0, vload(a, 0), 3)       # a0, a0, a0, a1, ...
    vstore_repeated(repeated, 3 * count, vload(a, count), 8)
    vstore(sums3, 0, vload_group_sums(a, 1, 3))         # a1 + a2 + a3, a4 + a5 + a6, ...
    vstore(sums8, 0, vload_group_sums(a, 0, 8))


@numba.njit
def _group_sums_of_each_count(a, sums):
    """Row ``m - 1`` of ``sums``: the group sums of ``m`` elements from ``a[m]`` on, for ``m`` = 1 to 8."""
    vstore(sums[0], 0, vload_group_sums(a, 1, 1))
    vstore(sums[1], 0, vload_group_sums(a, 2, 2))
    vstore(sums[2], 0, vload_group_sums(a, 3, 3))
    vstore(sums[3], 0, vload_group_sums(a, 4, 4))
    vstore(sums[4], 0, vload_group_sums(a, 5, 5))
    vstore(sums[5], 0, vload_group_sums(a, 6, 6))
    vstore(sums[6], 0, vload_group_sums(a, 7, 7))
    vstore(sums[7], 0, vload_group_sums(a, 8, 8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_group_sums_of_every_multiplier_match_numpy(dtype):
    """Two, four, six and eight take the pairwise rounds (some float64 ones not), the odd counts the gather alone: every
    group of ``m`` consecutive elements from an offset of ``m`` summed into its own lane, in order."""
    count = 64 // np.dtype(dtype).itemsize
    rng = np.random.default_rng(3)
    a = rng.standard_normal(9 * count + 8).astype(dtype)
    sums = np.full((8, count), np.nan, dtype)
    _group_sums_of_each_count(a, sums)
    for m in range(1, 9):
        np.testing.assert_allclose(sums[m - 1], a[m:m + m * count].reshape(count, m).sum(axis=1), rtol=1e-5,
                                   err_msg=f"groups of {m}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_repeated_stores_and_group_sums_match_numpy(dtype):
    count = 64 // np.dtype(dtype).itemsize
    a = np.arange(1, 8 * count + 2, dtype=dtype) / 7
    repeated = np.full(12 * count, -1.0, dtype)
    sums3, sums8 = np.empty(count, dtype), np.empty(count, dtype)
    _groups(a, repeated, sums3, sums8)
    np.testing.assert_array_equal(repeated[:3 * count], np.repeat(a[:count], 3))
    np.testing.assert_array_equal(repeated[3 * count:11 * count], np.repeat(a[count:2 * count], 8))
    np.testing.assert_array_equal(repeated[11 * count:], -1.0)  # nothing written past the block
    np.testing.assert_allclose(sums3, a[1:1 + 3 * count].reshape(count, 3).sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(sums8, a[:8 * count].reshape(count, 8).sum(axis=1), rtol=1e-6)


@numba.njit
def _transpose(src, i, src_stride, dst, j, dst_stride):
    vtranspose_block(src, i, src_stride, dst, j, dst_stride)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_transpose_matches_numpy(dtype):
    count = 64 // np.dtype(dtype).itemsize
    src = np.arange(3 + count * (2 * count + 3), dtype=dtype)  # a block at offset 3, rows 2 * count + 3 wide
    dst = np.full(5 + count * 23, -1.0, dtype)                 # ... stored at offset 5, rows 23 wide
    _transpose(src, 3, 2 * count + 3, dst, 5, 23)
    block = src[3:3 + count * (2 * count + 3)].reshape(count, 2 * count + 3)[:, :count]
    stored = dst[5:5 + count * 23].reshape(count, 23)
    np.testing.assert_array_equal(stored[:, :count], block.T)
    np.testing.assert_array_equal(stored[:, count:], -1.0)  # nothing written between the rows
    np.testing.assert_array_equal(dst[:5], -1.0)


def test_non_contiguous_arrays_are_refused():
    @numba.njit
    def load(a):
        return vsum(vload(a, 0))

    with pytest.raises((TypeError, numba.core.errors.TypingError), match="C-contiguous"):
        load(np.ones((4, 32), np.float32)[:, ::2])


@numba.njit
def _sum_with_prefetch(a, ahead):
    total = 0.0
    for i in range(a.size):
        prefetch(a, i + ahead)  # a hint only: past the end too, it never faults
        total += a[i]
    return total


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prefetch_is_only_a_hint(dtype):
    """``prefetch`` compiles for both dtypes, changes nothing it is mixed into, and does not fault on
    indices past the array's end (the streamed kernels prefetch the next panel's rows)."""
    a = np.arange(1, 1001, dtype=dtype)
    for ahead in (0, 64, 10**6):
        assert _sum_with_prefetch(a, ahead) == a.sum(dtype=np.float64)


@numba.njit
def _scratch_offsets(like, sizes):
    offsets = np.empty(len(sizes), np.int64)
    for i in range(len(sizes)):
        a = empty_on_line(sizes[i], like)
        a[:] = 1  # every element writable: the slice is inside its buffer
        offsets[i] = address(a) % 64 if a.size == sizes[i] else -1
    return offsets


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_on_line_starts_on_a_line(dtype):
    """Numba's ``np.empty`` starts 32 bytes past a line as often as not; ``empty_on_line`` on one, of the size asked."""
    sizes = np.arange(1, 2000, 37)
    assert (_scratch_offsets(np.ones(1, dtype), sizes) == 0).all()


@numba.njit(fastmath=FASTMATH)  # the kernels' policy, reassociation among it
def _sums(a, out):
    count = lanes(a)
    x, y = vload(a, 0), vload(a, count)
    vstore(out, 0, vadd_apart(x, y))
    vstore(out, count, vadd(y, vload(a, 2 * count)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vadd_apart_adds_without_reassociation(dtype):
    """``vadd_apart`` is ``x + y``, and its addition carries no reassociation flag under the kernels' fast-math
    policy (``vadd``'s does), so that sums computed apart stay apart."""
    count = 64 // np.dtype(dtype).itemsize
    a = np.arange(1, 3 * count + 1, dtype=dtype) / 3
    out = np.zeros(2 * count, dtype)
    _sums(a, out)
    np.testing.assert_array_equal(out[:count], a[:count] + a[count:2 * count])
    np.testing.assert_array_equal(out[count:], a[count:2 * count] + a[2 * count:])
    ir = _sums.inspect_llvm(next(sig for sig in _sums.signatures if sig[0].dtype == numba.from_dtype(dtype)))
    adds = [line for line in ir.splitlines() if " fadd " in line and f"<{count} x" in line]
    assert len(adds) == 2, adds
    apart, plain = adds
    assert "reassoc" not in apart and " fast " not in apart and "contract" in apart
    assert "reassoc" in plain or " fast " in plain
