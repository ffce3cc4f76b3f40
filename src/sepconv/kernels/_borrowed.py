"""Arrays without a reference count, for the kernels that take views row by row.

Numba counts references to every array it holds: each row view a kernel takes (``x[b, i]``) and each array passed
to a kernel that is not inlined adds one to its owner's count on the way in and takes it off on the way out, with a
locked (atomic) instruction on the owner's counter.  The rows kernels take a few views per output row and pass them
down, so each row paid some forty of those instructions, and in a parallel kernel both threads lock the *same*
counter (the one of the array the caller passed), whose cache line then moves between the cores at every view.
Measured on the Zen 5 VM (fiftieth session), one thread, the 3x3 filter gradient's rows kernel on its own: ~370 ns a
pair of rows before any pixel (a 1x16x8x16 layer 3.14 -> 1.54 us, 1x16x16x64 4.32 -> 2.72, 8x28x28x192 233 -> 173).

The kernels that take row views or call helpers in loops (the rows, range and band kernels, called from Python or
once per thread from a parallel kernel) rebind their array arguments to :func:`borrowed` views at their top: the
same data, shape and strides with no owner, so the counts on them and on every view taken from them are skipped (Numba
tests the owner pointer before it locks).  (Rebinding them in a parallel kernel before its ``prange`` does not reach
the loop's body, which gets owned arrays again: measured, no change.)  The rule that keeps this safe: only arguments
are borrowed (the caller holds them for the whole call; never an array the kernel allocates, which Numba frees after
its last use), and nothing borrowed leaves the call: the borrowing kernels return nothing, and a borrowed view
returned to Python would come back as an array that owns nothing (``base`` None) over memory it does not keep alive.
"""

from __future__ import annotations

from numba.core import cgutils, types
from numba.extending import intrinsic


@intrinsic
def borrowed(typingctx, array):
    """``array`` without an owner: the same data, shape and strides, no reference count (see the module's text)."""
    if not isinstance(array, types.Array):
        raise TypeError(f"borrowed() takes an array, not {array}")

    def codegen(context, builder, sig, args):
        source = context.make_array(array)(context, builder, value=args[0])
        view = context.make_array(array)(context, builder)
        view.meminfo = cgutils.get_null_value(view.meminfo.type)
        view.parent = cgutils.get_null_value(view.parent.type)
        for field in ("nitems", "itemsize", "data", "shape", "strides"):
            setattr(view, field, getattr(source, field))
        return view._getvalue()
    return array(array), codegen
