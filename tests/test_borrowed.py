"""``sepconv.kernels._borrowed.borrowed``: an ownerless view of the same array (no reference count)."""

import numba
import numpy as np
import pytest
from numba.core import types
from numba.extending import intrinsic

from sepconv.kernels._borrowed import borrowed


@intrinsic
def _owner_address(typingctx, array):
    """The address of ``array``'s reference-counted owner (Numba's meminfo pointer; 0 for none)."""
    def codegen(context, builder, sig, args):
        view = context.make_array(array)(context, builder, value=args[0])
        return builder.ptrtoint(view.meminfo, context.get_value_type(types.intp))
    return types.intp(array), codegen


@numba.njit
def _owners(a):
    b = borrowed(a)
    return _owner_address(a), _owner_address(b), _owner_address(b[1:])


@numba.njit
def _strided_sum(a):
    return borrowed(a)[1:, ::2].sum()


@numba.njit
def _borrow_a_number(v):
    return borrowed(v)


@numba.njit
def _write_through(a):
    b = borrowed(a)
    b[0, 1] = 7.0


def test_borrowed_views_have_no_owner():
    a = np.ones((3, 4), np.float32)
    owned, view, row_view = _owners(a)
    assert owned != 0
    assert view == 0 and row_view == 0  # views taken from a borrowed array are ownerless too


def test_borrowed_keeps_data_shape_and_strides():
    base = np.arange(60, dtype=np.float32).reshape(5, 12)
    a = base[:, ::3]  # not contiguous
    assert _strided_sum(a) == a[1:, ::2].sum()
    c = np.zeros((2, 3), np.float32)
    _write_through(c)
    assert c[0, 1] == 7.0 and c.sum() == 7.0


def test_kernels_leave_the_callers_reference_counts_alone():
    """A guard against leaks and over-releases (it passes without borrowing too: the counts balance either way)."""
    import sys

    import sepconv

    x = np.random.default_rng(0).standard_normal((2, 9, 9, 16), dtype=np.float32)
    w = np.random.default_rng(1).standard_normal((3, 3, 16, 1), dtype=np.float32)
    sepconv.depthwise_conv2d(x, w, 1, "SAME")
    before = sys.getrefcount(x), sys.getrefcount(w)
    for _ in range(50):
        sepconv.depthwise_conv2d(x, w, 1, "SAME")
        sepconv.depthwise_conv2d_backprop_filter(x, w.shape, x, 1, "SAME")
    assert (sys.getrefcount(x), sys.getrefcount(w)) == before


def test_borrowed_takes_arrays_only():
    with pytest.raises((TypeError, numba.core.errors.TypingError), match="borrowed\\(\\) takes an array"):
        _borrow_a_number(3)
