"""Explicit SIMD vectors for the Numba kernels: one 64-byte vector of float32 (16 lanes) or float64 (8).

LLVM's loop vectorizer only vectorizes the innermost loop, and gives up when a loop reads too
many distinct arrays for its runtime alias checks.  Kernels that want the channels in vector
registers while an outer loop walks the pixels (a filter held in registers, a sliding window
of input columns, accumulators that stay in registers for a whole row) use these instead:

- ``vload(a, i)`` / ``vstore(a, i, v)``: lanes ``a.flat[i : i + LANES]`` of a C-contiguous array;
- ``vload_part(a, i, n)`` / ``vstore_part(a, i, v, n)``: the same, first ``n`` lanes only
  (masked; the others read as zero and are not written);
- ``vload_n(a, i, n)`` / ``vstore_n(a, i, v, n)``: whole vectors when ``n`` is the lane count, else masked;
- ``vload_lanes(a, i, lo, hi)`` / ``vstore_lanes(a, i, v, lo, hi)``: lanes ``lo .. hi - 1`` only (masked; the
  others are neither read, so they may lie outside ``a``, nor written): a row's ends read as flat arrays;
- ``vload_even(a, i)``: every other element from flat index ``i`` (stride-2 rows), and
  ``vstore_interleaved(a, i, even, odd)``, its converse for two vectors;
- ``vtranspose_block(src, i, src_stride, dst, j, dst_stride)``: a ``LANES x LANES`` block copied
  transposed, in registers (layout changes, :mod:`sepconv.kernels.layout`);
- ``vzeros(a)``, ``vsplat(a, s)``, ``vbroadcast(a, i)`` (``a.flat[i]`` in every lane), ``vsum(v)``,
  ``vfma(x, y, acc)`` (``x * y + acc``), ``vadd``, ``vsub``, ``vmul``;
- ``vadd_apart(x, y)``: ``x + y`` kept as written: fast-math may not reassociate it, so two sums
  computed apart (a filter's rows) stay independent chains of multiply-adds instead of being folded
  into one chain, a multiply-add's latency per tap;
- ``lanes(a)``: the lane count for ``a``'s dtype, a compile-time constant;
- ``vstore_stream(a, i, v)``: ``vstore`` past the caches (a non-temporal store: no read of the line first; ``i`` on
  a 64-byte line, else the CPU faults), and ``store_fence()``, which orders such stores before any later store;
- ``hload(a, i)``, ``hzeros(a)``, ``hlanes(a)``: half vectors, 32 bytes (one AVX2 register), for kernels that keep more vectors in
  registers than sixteen AVX2 registers hold as whole ones (``vstore`` and ``vfma`` take them);
- ``load_like(a, i, v)`` / ``lanes_like(v)``: a load of, and the lane count of, a vector as wide as ``v`` (half or
  whole), for kernels written once for both widths, with ``broadcast_like(a, i, v)``, ``load_part_like(a, i, n, v)``
  and ``store_part(a, i, v, n)`` (the first ``n`` lanes of a vector of either width);
- ``address(a)``: the address of ``a``'s first element (for alignment decisions);
- ``prefetch(a, i)``: a hint to bring the cache line of ``a.flat[i]`` into L2 (``prefetcht1``; never
  faults, so ``i`` may run past the end);
- ``opaque(i)``: ``i`` unchanged, hidden from LLVM's optimizer, so that addresses built on it keep the
  base-plus-scaled-index form they are written in (:mod:`sepconv.kernels.depthwise_5x5_direct`).

A 64-byte vector is one AVX-512 register (or two AVX2 / four NEON registers: LLVM splits it,
so the kernels stay correct on any CPU).
"""

from __future__ import annotations

import os

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from ._jit import kernel

VECTOR_BYTES = 64


def _wide_registers() -> bool:
    """Whether this CPU has AVX-512's 32 vector registers of 64 bytes (``SEPCONV_WIDE_REGISTERS=1`` or ``0`` says so
    instead), as Numba compiles for the host CPU."""
    chosen = os.environ.get("SEPCONV_WIDE_REGISTERS", "").strip()
    if chosen in ("0", "1"):
        return chosen == "1"
    import llvmlite.binding as llvm  # imported with Numba already: ~0.3 ms

    return bool(llvm.get_host_cpu_features().get("avx512f", False))


# What the fast ops' plans depend on: see sepconv.fast.registers.
WIDE_REGISTERS = _wide_registers()


class Vector(types.Type):
    """A SIMD vector of ``VECTOR_BYTES // itemsize`` lanes of ``dtype`` (a Numba float type)."""

    def __init__(self, dtype: types.Float, count: int | None = None) -> None:
        self.dtype = dtype
        self.count = count or VECTOR_BYTES * 8 // dtype.bitwidth
        super().__init__(name=f"Vector({dtype}x{self.count})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(dmm.lookup(fe_type.dtype).get_value_type(), fe_type.count))


def _vector_of(array_type) -> Vector:
    if (not isinstance(array_type, types.Array) or not isinstance(array_type.dtype, types.Float)
            or array_type.layout != "C"):
        raise TypeError(f"expected a C-contiguous float array, got {array_type}")
    return Vector(array_type.dtype)


def _pointer(context, builder, array_type, array, index, vty):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.bitcast(builder.gep(data, [index]), vty.as_pointer())


def _splat(builder, value, count):
    """``<count x type(value)>`` with every lane ``value``."""
    one = builder.insert_element(ir.Constant(ir.VectorType(value.type, count), ir.Undefined), value,
                                 ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, one, ir.Constant(ir.VectorType(ir.IntType(32), count), [0] * count))


def _mask(builder, n, count):
    """The ``<count x i1>`` mask of the first ``n`` lanes, built as the integer ``2**n - 1`` (``n`` clamped to
    ``[0, count]``): one shift, where comparing a vector of lane numbers with ``n`` took two 64-bit vector
    compares and a merge per mask, on the port the multiply-adds use."""
    zero, full = ir.Constant(n.type, 0), ir.Constant(n.type, count)
    n = builder.select(builder.icmp_signed("<", n, zero), zero, n)
    n = builder.select(builder.icmp_signed(">", n, full), full, n)
    wide = ir.IntType(max(64, n.type.width))
    bits = builder.sub(builder.shl(ir.Constant(wide, 1), builder.zext(n, wide) if n.type != wide else n),
                       ir.Constant(wide, 1))
    return builder.bitcast(builder.trunc(bits, ir.IntType(count)), ir.VectorType(ir.IntType(1), count))


def _lane_range_mask(builder, lo, hi, count):
    """The ``<count x i1>`` mask of lanes ``lo .. hi - 1`` (empty when ``hi <= lo``): :func:`_mask` of ``hi``
    without :func:`_mask` of ``lo``."""
    upper, lower = _mask(builder, hi, count), _mask(builder, lo, count)
    return builder.and_(upper, builder.not_(lower))


def _masked_intrinsic(builder, name, vty, count):
    """``llvm.masked.load`` or ``llvm.masked.store`` for vectors of type ``vty``."""
    mask_type = ir.VectorType(ir.IntType(1), count)
    if name == "load":
        fn_type = ir.FunctionType(vty, [vty.as_pointer(), ir.IntType(32), mask_type, vty])
    else:
        fn_type = ir.FunctionType(ir.VoidType(), [vty, vty.as_pointer(), ir.IntType(32), mask_type])
    return cgutils.get_or_insert_function(builder.module, fn_type, f"llvm.masked.{name}.{_suffix(vty)}.p0{_suffix(vty)}")


def _masked_load(context, builder, array_type, array, index, mask, vec: Vector):
    """Codegen of a masked load of a ``vec`` from flat index ``index`` of ``array``: the lanes of ``mask``, the
    others zero and not read."""
    vty = context.get_value_type(vec)
    ptr = _pointer(context, builder, array_type, array, index, vty)
    fn = _masked_intrinsic(builder, "load", vty, vec.count)
    return builder.call(fn, [ptr, ir.Constant(ir.IntType(32), 1), mask, ir.Constant(vty, None)])


def _masked_store(context, builder, array_type, array, index, value, mask, vec: Vector):
    """Codegen of a masked store of the ``vec`` ``value`` at flat index ``index`` of ``array``: the lanes of
    ``mask``."""
    vty = context.get_value_type(vec)
    ptr = _pointer(context, builder, array_type, array, index, vty)
    fn = _masked_intrinsic(builder, "store", vty, vec.count)
    builder.call(fn, [value, ptr, ir.Constant(ir.IntType(32), 1), mask])
    return context.get_dummy_value()


def _load_part(context, builder, array_type, args, vec: Vector):
    """Codegen of ``vload_part(a, i, n)``: the first ``n`` lanes, the others zero."""
    return _masked_load(context, builder, array_type, args[0], args[1], _mask(builder, args[2], vec.count), vec)


def _store_part(context, builder, array_type, args, vec: Vector):
    """Codegen of ``vstore_part(a, i, v, n)``: the first ``n`` lanes of ``v``."""
    return _masked_store(context, builder, array_type, args[0], args[1], args[2], _mask(builder, args[3], vec.count),
                         vec)


def _load_lanes(context, builder, array_type, args, vec: Vector):
    """Codegen of ``vload_lanes(a, i, lo, hi)``: lanes ``lo .. hi - 1``, the others zero and not read."""
    return _masked_load(context, builder, array_type, args[0], args[1],
                        _lane_range_mask(builder, args[2], args[3], vec.count), vec)


def _store_lanes(context, builder, array_type, args, vec: Vector):
    """Codegen of ``vstore_lanes(a, i, v, lo, hi)``: lanes ``lo .. hi - 1`` of ``v``."""
    return _masked_store(context, builder, array_type, args[0], args[1], args[2],
                         _lane_range_mask(builder, args[3], args[4], vec.count), vec)


@intrinsic
def lanes(typingctx, array):
    vec = _vector_of(array)

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, vec.count)
    return types.intp(array), codegen


@intrinsic
def hlanes(typingctx, array):
    """The lane count of a half vector (32 bytes: one AVX2 register) for ``a``'s dtype."""
    vec = _vector_of(array)

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, vec.count // 2)
    return types.intp(array), codegen


@intrinsic
def hload(typingctx, array, index):
    """Lanes ``a.flat[i : i + hlanes(a)]`` as a half vector (stored by ``vstore``, added by ``vfma`` like any)."""
    vec = _vector_of(array)
    half = Vector(vec.dtype, vec.count // 2)

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(half)
        return builder.load(_pointer(context, builder, array, args[0], args[1], vty), align=1)
    return half(array, types.intp), codegen


@intrinsic
def hzeros(typingctx, array):
    vec = _vector_of(array)
    half = Vector(vec.dtype, vec.count // 2)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(half), None)
    return half(array), codegen


@intrinsic
def load_like(typingctx, array, index, like):
    """Lanes ``a.flat[i : i + n]`` as a vector of ``like``'s type, ``n`` its lane count: a half vector or a whole one,
    as ``like`` is (kernels written once for both widths take their width from the sums they start from)."""
    vec = _vector_of(array)
    if not isinstance(like, Vector) or like.dtype != vec.dtype:
        return None

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(like)
        return builder.load(_pointer(context, builder, array, args[0], args[1], vty), align=1)
    return like(array, types.intp, like), codegen


@intrinsic
def broadcast_like(typingctx, array, index, like):
    """Element ``a.flat[index]`` in every lane of a vector of ``like``'s type (one broadcast load)."""
    vec = _vector_of(array)
    if not isinstance(like, Vector) or like.dtype != vec.dtype:
        return None

    def codegen(context, builder, sig, args):
        data = context.make_array(array)(context, builder, args[0]).data
        return _splat(builder, builder.load(builder.gep(data, [args[1]])), like.count)
    return like(array, types.intp, like), codegen


@intrinsic
def load_part_like(typingctx, array, index, n, like):
    """The first ``n`` lanes of :func:`load_like` (masked: the others read as zero, their memory untouched)."""
    vec = _vector_of(array)
    if not isinstance(like, Vector) or like.dtype != vec.dtype:
        return None

    def codegen(context, builder, sig, args):
        return _load_part(context, builder, array, args[:3], like)
    return like(array, types.intp, types.intp, like), codegen


@intrinsic
def store_part(typingctx, array, index, value, n):
    """Store the first ``n`` lanes of ``value``, a half vector or a whole one, at flat index ``index`` of ``a``
    (masked)."""
    vec = _vector_of(array)
    if not isinstance(value, Vector) or value.dtype != vec.dtype:
        return None

    def codegen(context, builder, sig, args):
        return _store_part(context, builder, array, args, value)
    return types.none(array, types.intp, value, types.intp), codegen


@intrinsic
def lanes_like(typingctx, like):
    """The lane count of the vector ``like`` (a compile-time constant)."""
    if not isinstance(like, Vector):
        return None

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, like.count)
    return types.intp(like), codegen


@intrinsic
def vload(typingctx, array, index):
    vec = _vector_of(array)

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(vec)
        return builder.load(_pointer(context, builder, array, args[0], args[1], vty), align=1)
    return vec(array, types.intp), codegen


@intrinsic
def vstore(typingctx, array, index, value):
    _vector_of(array)

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(sig.args[2])
        builder.store(args[2], _pointer(context, builder, array, args[0], args[1], vty), align=1)
        return context.get_dummy_value()
    return types.none(array, types.intp, value), codegen


@intrinsic
def vstore_stream(typingctx, array, index, value):
    """``vstore`` past the caches (a non-temporal store); ``a.flat[i]`` must be on a 64-byte line."""
    _vector_of(array)

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(sig.args[2])
        store = builder.store(args[2], _pointer(context, builder, array, args[0], args[1], vty), align=VECTOR_BYTES)
        store.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
        return context.get_dummy_value()
    return types.none(array, types.intp, value), codegen


@intrinsic
def store_fence(typingctx):
    """``sfence``: the non-temporal stores before it are visible before any store after it."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse.sfence")
        builder.call(fn, [])
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic
def vload_part(typingctx, array, index, n):
    vec = _vector_of(array)

    def codegen(context, builder, sig, args):
        return _load_part(context, builder, array, args, vec)
    return vec(array, types.intp, types.intp), codegen


@intrinsic
def vstore_part(typingctx, array, index, value, n):
    vec = _vector_of(array)

    def codegen(context, builder, sig, args):
        return _store_part(context, builder, array, args, vec)
    return types.none(array, types.intp, value, types.intp), codegen


@intrinsic
def vload_lanes(typingctx, array, index, lo, hi):
    vec = _vector_of(array)

    def codegen(context, builder, sig, args):
        return _load_lanes(context, builder, array, args, vec)
    return vec(array, types.intp, types.intp, types.intp), codegen


@intrinsic
def vstore_lanes(typingctx, array, index, value, lo, hi):
    vec = _vector_of(array)

    def codegen(context, builder, sig, args):
        return _store_lanes(context, builder, array, args, vec)
    return types.none(array, types.intp, value, types.intp, types.intp), codegen


def _suffix(vty) -> str:
    return f"v{vty.count}f{32 if vty.element == ir.FloatType() else 64}"


@intrinsic
def vzeros(typingctx, array):
    vec = _vector_of(array)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vec), None)
    return vec(array), codegen


@intrinsic
def vsplat(typingctx, array, scalar):
    vec = _vector_of(array)

    def codegen(context, builder, sig, args):
        return _splat(builder, context.cast(builder, args[1], sig.args[1], vec.dtype), vec.count)
    return vec(array, scalar), codegen


@intrinsic
def vfma(typingctx, x, y, acc):
    if not (isinstance(x, Vector) and x == y == acc):
        return None

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(x)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty, vty, vty]),
                                            f"llvm.fma.{_suffix(vty)}")
        return builder.call(fn, args)
    return x(x, y, acc), codegen


@intrinsic
def vadd(typingctx, x, y):
    if not (isinstance(x, Vector) and x == y):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(*args)
    return x(x, y), codegen


@intrinsic
def vadd_apart(typingctx, x, y):
    if not (isinstance(x, Vector) and x == y):
        return None

    def codegen(context, builder, sig, args):
        # an instruction with flags of its own is left alone by Numba's fast-math pass (which adds its flags,
        # reassociation among them, only to float instructions that have none): contraction only
        return builder.fadd(*args, flags=("contract",))
    return x(x, y), codegen


@intrinsic
def vsub(typingctx, x, y):
    if not (isinstance(x, Vector) and x == y):
        return None

    def codegen(context, builder, sig, args):
        return builder.fsub(*args)
    return x(x, y), codegen


@intrinsic
def vmul(typingctx, x, y):
    if not (isinstance(x, Vector) and x == y):
        return None

    def codegen(context, builder, sig, args):
        return builder.fmul(*args)
    return x(x, y), codegen


@intrinsic
def address(typingctx, array):
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, sig, args):
        data = context.make_array(array)(context, builder, args[0]).data
        return builder.ptrtoint(data, context.get_value_type(types.intp))
    return types.intp(array), codegen


@intrinsic
def prefetch(typingctx, array, index):
    """``llvm.prefetch`` of ``a.flat[index]``'s line for reading, into L2 (locality 2, data cache)."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, sig, args):
        data = context.make_array(array)(context, builder, args[0]).data
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]), "llvm.prefetch.p0")
        builder.call(function, [builder.bitcast(builder.gep(data, [args[1]]), byte_pointer), i32(0), i32(2), i32(1)])
        return context.get_dummy_value()
    return types.void(array, types.intp), codegen


@intrinsic
def vbroadcast(typingctx, array, index):
    """Element ``a.flat[index]`` in every lane: one broadcast load (no negative-index wraparound test)."""
    vec = _vector_of(array)

    def codegen(context, builder, sig, args):
        data = context.make_array(array)(context, builder, args[0]).data
        return _splat(builder, builder.load(builder.gep(data, [args[1]])), vec.count)
    return vec(array, types.intp), codegen


@kernel
def empty_on_line(size, like):
    """A 1-D array of ``size`` elements of ``like``'s dtype whose data starts on a cache line.  Numba's own
    ``np.empty`` starts 32 bytes past one as often as not, and there every vector load of a scratch buffer
    is split over two lines."""
    raw = np.empty(size + lanes(like), like.dtype)
    start = (-address(raw) % VECTOR_BYTES) // raw.itemsize
    return raw[start:start + size]


@kernel
def vload_n(a, i, n):
    """The ``n`` values from flat index ``i`` of ``a`` as a vector (a whole one, or masked when ``n`` is less)."""
    if n == lanes(a):
        return vload(a, i)
    return vload_part(a, i, n)


@kernel
def vstore_n(a, i, v, n):
    """Store the first ``n`` lanes of ``v`` at flat index ``i`` of ``a``."""
    if n == lanes(a):
        vstore(a, i, v)
    else:
        vstore_part(a, i, v, n)


@intrinsic
def vload_even(typingctx, array, index):
    """Lanes ``a.flat[index], a.flat[index + 2], ...``: every other element of the next ``2 * LANES``
    (a stride-2 row read as one vector; the ``2 * LANES`` elements must all be inside ``a``)."""
    vec = _vector_of(array)

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(vec)
        wide = ir.VectorType(vty.element, 2 * vec.count)
        pair = builder.load(_pointer(context, builder, array, args[0], args[1], wide), align=1)
        return builder.shuffle_vector(pair, ir.Constant(wide, ir.Undefined),
                                      ir.Constant(ir.VectorType(ir.IntType(32), vec.count),
                                                  list(range(0, 2 * vec.count, 2))))
    return vec(array, types.intp), codegen


@intrinsic
def vsum(typingctx, value):
    """The sum of the lanes of a vector (in lane order; for a few reductions per plane, not a hot loop)."""
    if not isinstance(value, Vector):
        return None

    def codegen(context, builder, sig, args):
        total = builder.extract_element(args[0], ir.Constant(ir.IntType(32), 0))
        for lane in range(1, value.count):
            total = builder.fadd(total, builder.extract_element(args[0], ir.Constant(ir.IntType(32), lane)))
        return total
    return value.dtype(value), codegen


@intrinsic
def vstore_interleaved(typingctx, array, index, even, odd):
    """Store ``even[0], odd[0], even[1], odd[1], ...`` at ``a.flat[index : index + 2 * LANES]`` (whole)."""
    vec = _vector_of(array)
    if even != vec or odd != vec:
        return None

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(vec)
        wide = ir.VectorType(vty.element, 2 * vec.count)
        order = [lane // 2 + (vec.count if lane % 2 else 0) for lane in range(2 * vec.count)]
        pair = builder.shuffle_vector(args[2], args[3], ir.Constant(ir.VectorType(ir.IntType(32), 2 * vec.count), order))
        builder.store(pair, _pointer(context, builder, array, args[0], args[1], wide), align=1)
        return context.get_dummy_value()
    return types.none(array, types.intp, vec, vec), codegen


def _literal_count(count) -> int | None:
    """The value of a compile-time integer argument (a constant in the kernel's code), or None."""
    return count.literal_value if isinstance(count, types.IntegerLiteral) else None


@intrinsic(prefer_literal=True)
def vstore_repeated(typingctx, array, index, value, count):
    """Store each lane of ``value`` ``count`` times in a row at ``a.flat[index : index + count * LANES]``
    (whole; ``count`` a constant of the kernel's code): ``v[0], v[0], ..., v[1], v[1], ...``."""
    vec, m = _vector_of(array), _literal_count(count)
    if value != vec or m is None or m < 1:
        return None

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(vec)
        wide = ir.VectorType(vty.element, m * vec.count)
        order = ir.Constant(ir.VectorType(ir.IntType(32), m * vec.count), [lane // m for lane in range(m * vec.count)])
        repeated = builder.shuffle_vector(args[2], ir.Constant(vty, ir.Undefined), order)
        builder.store(repeated, _pointer(context, builder, array, args[0], args[1], wide), align=1)
        return context.get_dummy_value()
    return types.none(array, types.intp, vec, count), codegen


def _group_sums(builder, vectors: list, count: int, chunk: int):
    """Lane ``l`` of the result: the sum of elements ``count*l`` to ``count*(l + 1) - 1`` of ``vectors`` (taken as
    one run of elements).  While every lane of a pair of vectors can add two neighbours of the same group, the
    pairs are added within each ``chunk`` lanes (128 bits: ``vhaddps``, in-lane shuffles) and the vectors halve;
    the partial sums left are gathered group by group from all of them and added.  The lane bookkeeping (which
    elements each lane holds) is done here, at compile time.

    For four float32 lanes a group two such rounds leave one sum per lane, and one permutation puts them in order
    (where a gather of every fourth lane from four vectors took twice as long: one thread, 139,392 sums from
    557 KB, 24.4 -> 11.9 us; six lanes 37.7 -> 24.0, eight 53.8 -> 24.5; two, three, five and seven and float64
    within 5%)."""
    lanes = vectors[0].type.count
    half = chunk // 2

    def mask(order):
        return ir.Constant(ir.VectorType(ir.IntType(32), len(order)), order)

    held = [[[q * lanes + lane] for lane in range(lanes)] for q in range(len(vectors))]  # elements in each lane
    # lane l of a pairwise round adds lanes first[l] and first[l] + 1 of its two vectors side by side
    first = [(lanes if pos >= half else 0) + c * chunk + 2 * (pos % half)
             for c, pos in (divmod(lane, chunk) for lane in range(lanes))]
    while len(vectors) % 2 == 0 and len(held[0][0]) * 2 <= count:
        side_by_side = [held[q] + held[q + 1] for q in range(0, len(vectors), 2)]
        if any(h[i][0] // count != h[i + 1][0] // count for h in side_by_side for i in first):
            break
        vectors = [builder.fadd(builder.shuffle_vector(vectors[q], vectors[q + 1], mask(first)),
                                builder.shuffle_vector(vectors[q], vectors[q + 1], mask([i + 1 for i in first])))
                   for q in range(0, len(vectors), 2)]
        held = [[h[i] + h[i + 1] for i in first] for h in side_by_side]
    while len(vectors) & (len(vectors) - 1):  # a power of two of vectors, to join them in pairs
        vectors.append(ir.Constant(vectors[0].type, ir.Undefined))
        held.append([[-1]] * lanes)
    while len(vectors) > 1:
        vectors = [builder.shuffle_vector(vectors[q], vectors[q + 1], mask(list(range(2 * len(held[q])))))
                   for q in range(0, len(vectors), 2)]
        held = [held[q] + held[q + 1] for q in range(0, len(held), 2)]
    where = [[i for i, h in enumerate(held[0]) if h[0] >= 0 and h[0] // count == group] for group in range(lanes)]
    undefined = ir.Constant(vectors[0].type, ir.Undefined)
    total = None
    for j in range(len(where[0])):
        part = builder.shuffle_vector(vectors[0], undefined, mask([w[j] for w in where]))
        total = part if total is None else builder.fadd(total, part)
    return total


@intrinsic(prefer_literal=True)
def vload_group_sums(typingctx, array, index, count):
    """Lane ``l`` is the sum of ``a.flat[index + count*l : index + count*(l + 1)]``: the next ``count * LANES``
    elements (whole; ``count`` a constant of the kernel's code) summed in groups of ``count``
    (:func:`_group_sums`)."""
    vec, m = _vector_of(array), _literal_count(count)
    if m is None or m < 1:
        return None

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(vec)
        index = args[1]
        vectors = [builder.load(_pointer(context, builder, array, args[0],
                                         builder.add(index, ir.Constant(index.type, q * vec.count)), vty), align=1)
                   for q in range(m)]
        return _group_sums(builder, vectors, m, 128 // vec.dtype.bitwidth)
    return vec(array, types.intp, count), codegen


@intrinsic
def vtranspose_block(typingctx, src, i, src_stride, dst, j, dst_stride):
    """``dst.flat[j + c * dst_stride + r] = src.flat[i + r * src_stride + c]`` for ``r, c < LANES``: a square
    block of whole vectors loaded, transposed in registers and stored (both arrays C-contiguous, same dtype).

    The transpose takes ``log2(LANES)`` rounds of two-vector shuffles: the round of distance ``d`` swaps
    bit ``d`` of the row index with bit ``d`` of the lane index, so after all rounds lane ``c`` of row
    ``r`` holds what was lane ``r`` of row ``c`` (16 loads, 64 shuffles and 16 stores for 256 float32,
    where element-wise copies took one load and one store each and ran ~3x slower)."""
    vec = _vector_of(src)
    if _vector_of(dst) != vec:
        return None

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(vec)
        count = vec.count
        src_array, src_index, src_step, dst_array, dst_index, dst_step = args
        mask_type = ir.VectorType(ir.IntType(32), count)
        rows = [builder.load(_pointer(context, builder, sig.args[0], src_array,
                                      builder.add(src_index, builder.mul(src_step, ir.Constant(src_step.type, r))),
                                      vty), align=1) for r in range(count)]
        distance = 1
        while distance < count:
            low = ir.Constant(mask_type, [lane if not lane & distance else count + lane - distance
                                          for lane in range(count)])
            high = ir.Constant(mask_type, [lane + distance if not lane & distance else count + lane
                                           for lane in range(count)])
            for r in range(count):
                if not r & distance:
                    a, b = rows[r], rows[r + distance]
                    rows[r], rows[r + distance] = builder.shuffle_vector(a, b, low), builder.shuffle_vector(a, b, high)
            distance *= 2
        for c in range(count):
            index = builder.add(dst_index, builder.mul(dst_step, ir.Constant(dst_step.type, c)))
            builder.store(rows[c], _pointer(context, builder, sig.args[3], dst_array, index, vty), align=1)
        return context.get_dummy_value()
    return types.none(src, types.intp, types.intp, dst, types.intp, types.intp), codegen


@intrinsic
def opaque(typingctx, value):
    """``value`` unchanged, through an empty inline-assembly statement, so that LLVM cannot see how it was
    computed: a loop's addresses built on it keep the base-plus-scaled-index form they are written in,
    instead of one strength-reduced pointer per address (which run out of registers and spill)."""
    if not isinstance(value, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return builder.asm(ir.FunctionType(args[0].type, [args[0].type]), "", "=r,0", [args[0]], False)
    return value(value), codegen

