"""Warp matrix functions: ``wmma.load``, ``wmma.mma`` and ``wmma.store`` — CUDA's ``nvcuda::wmma``
API (``load_matrix_sync``, ``mma_sync``, ``store_matrix_sync``) as nvcc lowers it.

A warp holds each matrix as a *fragment*: a few elements in each lane's registers. Unlike
``mma.sync``, the PTX ISA leaves the fragment layout unspecified ("the mapping of matrix elements
into fragments is unspecified"): a program may only move fragments between these instructions and
apply the same operation to every element (``fill_fragment``, scaling, ``__float_to_tf32``). The
engine uses a layout of its own: element ``e`` of lane ``l`` is element ``(e * 32 + l) mod R*C`` of
the ``R x C`` matrix in row-major order. A and B fragments of ``.f16`` hold more elements than the
matrix has (16 per lane, as the ISA's register counts say); the surplus repeats the matrix, and
``wmma.mma`` reads the first copy.

``wmma.load``/``wmma.store`` take the matrix's address (the first lane's; ``.aligned`` makes every
lane give the same) and an optional stride in elements between rows (``.row``) or columns (``.col``),
by default the matrix's width or height. Every element is read or written through the engine's
checked memory paths (a bad address is ``CUDA_ERROR_ILLEGAL_ADDRESS``, a misaligned one
``CUDA_ERROR_MISALIGNED_ADDRESS``, both sticky).

Numerics as ``mma.sync``'s (``_isa_tensor``): products exact in float64, summed with C and rounded
once; ``.satfinite`` on floating-point results clamps infinities to the largest finite value and
turns NaN into +0 (CUDA's ``satf``), on integer ones saturates at 32 bits; ``.b1`` is
``C + popc(a op b)`` with ``op`` ``.xor`` or ``.and``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._compiler import (
    Compiler,
    Getter,
    InstructionCompiler,
    Mask,
    Runner,
    Setter,
    UnsupportedError,
    access,
    broadcast_full,
)
from ._isa_tensor import decode, whole_warps
from ._memory import SHARED_WINDOW, WINDOW_BITS, check_aligned, check_window, device_elements
from ._numeric import DTYPES
from ._parse import Addr, Instruction, Reg, Vec
from ._state import Frame

__all__ = ["WMMA", "cvt_tf32"]

#: shape -> (M, N, K) and the input types it takes
SHAPES: dict[str, tuple[tuple[int, int, int], frozenset[str]]] = {
    "m16n16k16": ((16, 16, 16), frozenset({"f16", "bf16", "s8", "u8"})),
    "m32n8k16": ((32, 8, 16), frozenset({"f16", "bf16", "s8", "u8"})),
    "m8n32k16": ((8, 32, 16), frozenset({"f16", "bf16", "s8", "u8"})),
    "m16n16k8": ((16, 16, 8), frozenset({"tf32"})),
    "m8n8k4": ((8, 8, 4), frozenset({"f64"})),
    "m8n8k32": ((8, 8, 32), frozenset({"s4", "u4"})),
    "m8n8k128": ((8, 8, 128), frozenset({"b1"})),
}
#: element width in bits, in memory and in registers
BITS = {
    "f16": 16,
    "bf16": 16,
    "tf32": 32,
    "f32": 32,
    "s32": 32,
    "f64": 64,
    "s8": 8,
    "u8": 8,
    "s4": 4,
    "u4": 4,
    "b1": 1,
}
#: (D type, C type) of each input type
ACCUMULATORS: dict[str, set[tuple[str, str]]] = {
    "f16": {("f16", "f16"), ("f32", "f32"), ("f16", "f32"), ("f32", "f16")},
    "bf16": {("f32", "f32")},
    "tf32": {("f32", "f32")},
    "f64": {("f64", "f64")},
    "s8": {("s32", "s32")},
    "u8": {("s32", "s32")},
    "s4": {("s32", "s32")},
    "u4": {("s32", "s32")},
    "b1": {("s32", "s32")},
}
_SUB_BYTE = {"s4", "u4", "b1"}
_SPACES = {"global", "shared", "shared::cta"}


@dataclass(frozen=True, slots=True)
class Fragment:
    """One operand's fragment: its matrix (``rows x cols``), element type and elements per lane."""

    rows: int
    cols: int
    kind: str
    count: int  # elements per lane

    @property
    def size(self) -> int:
        return self.rows * self.cols

    @property
    def width(self) -> int:
        return BITS[self.kind]

    @property
    def per_word(self) -> int:
        return 1 if self.kind == "f64" else 32 // BITS[self.kind]

    @property
    def words(self) -> int:
        return self.count // self.per_word

    @property
    def held(self) -> int:
        """The registers that hold the first copy of the matrix (all but for ``.f16`` A and B)."""
        return self.size // (32 * self.per_word)

    def order(self) -> npt.NDArray[np.intp]:
        """``(words, 32, per_word)``: the row-major matrix index of each register's elements, lane by
        lane (element ``e = per_word * j + h`` of lane ``l`` is ``(32 e + l) mod size``)."""
        j = np.arange(self.words)[:, None, None]
        lane = np.arange(32)[None, :, None]
        h = np.arange(self.per_word)[None, None, :]
        out: npt.NDArray[np.intp] = ((32 * (self.per_word * j + h) + lane) % self.size).astype(np.intp)
        return out


def _fragment(which: str, shape: str, kind: str) -> Fragment:
    (m, n, k), _ = SHAPES[shape]
    rows, cols = {"a": (m, k), "b": (k, n)}.get(which, (m, n))
    count = (rows * cols) // 32
    if kind == "f16" and which in ("a", "b"):
        count = 16  # eight .f16x2 registers for every shape
    return Fragment(rows, cols, kind, count)


def _register_dtype(kind: str) -> np.dtype[Any]:
    return DTYPES[{"f64": "f64", "f32": "f32", "s32": "s32"}.get(kind, "u32")]


def _word_type(kind: str) -> type[np.unsignedinteger[Any]]:
    return np.uint64 if kind == "f64" else np.uint32


_ELEMENT: dict[int, type[np.unsignedinteger[Any]]] = {16: np.uint16, 32: np.uint32, 64: np.uint64}


def _element_type(kind: str) -> type[np.unsignedinteger[Any]]:
    """How a raw element is held: the unsigned integer of its width (a byte below 16 bits)."""
    return _ELEMENT.get(BITS[kind], np.uint8)


def _split(ins: Instruction) -> tuple[str, list[str]]:
    """``wmma.<op>`` and the other modifiers, without ``.sync``/``.aligned`` (which must be there)."""
    if len(ins.mods) < 3 or "sync" not in ins.mods or "aligned" not in ins.mods:
        raise UnsupportedError("wmma.{load,store,mma}.sync.aligned")
    return ins.mods[0], [m for m in ins.mods[1:] if m not in ("sync", "aligned")]


def _warps(f: Frame, m: Mask | None) -> npt.NDArray[np.intp] | None:
    """The warps that execute the instruction (every lane does, or none): ``None`` for all."""
    if m is None:
        return None
    return np.flatnonzero(m.reshape(-1, 32)[:, 0])


# -- registers <-> fragments: (words, warps, 32, per_word) raw elements, lane by lane -------------


def _read_words(f: Frame, getters: list[Getter], kind: str) -> npt.NDArray[Any]:
    """The registers as raw words, ``(len(getters), threads)`` (a uniform register broadcast)."""
    out = np.empty((len(getters), f.batch.n), dtype=_register_dtype(kind))
    for j, get in enumerate(getters):
        out[j] = get(f)
    return out.view(_word_type(kind))


def _write_words(
    f: Frame, puts: list[Setter], words: npt.NDArray[Any], kind: str, m: Mask | None
) -> list[npt.NDArray[Any]]:
    """Write each register's row of ``words``, the rows over again to the registers past them (the
    copies of the matrix an ``.f16`` A or B fragment repeats: the same arrays); returns the rows."""
    rows = list(words.view(_register_dtype(kind)))
    for j, put in enumerate(puts):
        put(f, rows[j % len(rows)], m)
    return rows


def _pack(elements: npt.NDArray[Any], kind: str) -> npt.NDArray[Any]:
    """``(words, warps, 32, per_word)`` raw elements as ``(words, warps * 32)`` register words,
    the lowest element in the lowest bits."""
    count = elements.shape[0]
    width = BITS[kind]
    if width >= 8:
        whole = np.ascontiguousarray(elements, dtype=_element_type(kind))
        return whole.view(_word_type(kind)).reshape(count, -1)
    shifts = np.arange(elements.shape[-1], dtype=np.uint32) * np.uint32(width)
    packed: npt.NDArray[Any] = np.bitwise_or.reduce(elements.astype(np.uint32) << shifts, axis=-1)
    out: npt.NDArray[Any] = packed.reshape(count, -1)
    return out


def _unpack(words: npt.NDArray[Any], frag: Fragment) -> npt.NDArray[Any]:
    """The inverse of :func:`_pack`."""
    count, n = words.shape
    if frag.width >= 8:
        return words.view(_element_type(frag.kind)).reshape(count, n // 32, 32, frag.per_word)
    shifts = np.arange(frag.per_word, dtype=np.uint32) * np.uint32(frag.width)
    parts: npt.NDArray[Any] = (words[..., None] >> shifts) & np.uint32((1 << frag.width) - 1)
    return parts.astype(np.uint8).reshape(count, n // 32, 32, frag.per_word)


def _spread(words: npt.NDArray[Any], warps: npt.NDArray[np.intp] | None, n: int) -> npt.NDArray[Any]:
    """Words computed for some warps as words for the whole batch (the others 0)."""
    if warps is None:
        return words
    full = np.zeros((words.shape[0], n // 32, 32), dtype=words.dtype)
    full[:, warps] = words.reshape(words.shape[0], -1, 32)
    return full.reshape(words.shape[0], n)


# -- matrices of fragments already seen ------------------------------------------------------------

#: the batch's ``derived`` entry that holds its :class:`_Seen`
_SEEN = "wmma matrices"
#: bytes of matrices one batch keeps
SEEN_BYTES = 24 << 20


class _Seen:
    """The value matrices of recent ``wmma.mma`` operands and results, by the identity of the register
    arrays that hold them. Registers are never changed in place, so the same arrays (held here, so
    their identities cannot be reused) hold the same fragments: an A fragment multiplied against four
    B fragments, or an accumulator that the next ``wmma.mma`` reads back, is decoded once."""

    def __init__(self) -> None:
        self.entries: dict[tuple[Any, ...], tuple[tuple[Any, ...], npt.NDArray[Any]]] = {}
        self.bytes = 0

    def get(self, tag: Fragment, regs: list[Any]) -> npt.NDArray[Any] | None:
        key = (tag, *map(id, regs))
        hit = self.entries.pop(key, None)
        if hit is None:
            return None
        self.entries[key] = hit  # the most recently used last
        return hit[1]

    def put(self, tag: Fragment, regs: list[Any], values: npt.NDArray[Any]) -> None:
        key = (tag, *map(id, regs))
        old = self.entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1].nbytes
        while self.entries and self.bytes + values.nbytes > SEEN_BYTES:
            self.bytes -= self.entries.pop(next(iter(self.entries)))[1].nbytes
        self.entries[key] = (tuple(regs), values)
        self.bytes += values.nbytes


def _seen(f: Frame) -> _Seen:
    seen = f.batch.derived.get(_SEEN)
    if seen is None:
        seen = f.batch.derived[_SEEN] = _Seen()
    assert isinstance(seen, _Seen)
    return seen


# -- fragments <-> memory --------------------------------------------------------------------------


#: the batch's ``derived`` entry that holds its :class:`_Indexes`
_INDEXES = "wmma shared indexes"
#: bytes of indexes one batch keeps
INDEX_BYTES = 16 << 20


class _Indexes:
    """The checked shared-memory element indexes of recent ``wmma.load`` instructions, by the identity
    of their address register (held here, so it is not reused) and their uniform stride: code that
    computes its tiles' addresses once and loads from them on every pass of a loop (cudaTensorCoreGemm:
    24 address registers, each loaded from 64 times a tile) computes and checks each index once."""

    def __init__(self) -> None:
        self.entries: dict[tuple[int, ...], tuple[Any, npt.NDArray[np.int64]]] = {}
        self.bytes = 0

    @staticmethod
    def of(f: Frame) -> _Indexes:
        known = f.batch.derived.get(_INDEXES)
        if known is None:
            known = f.batch.derived[_INDEXES] = _Indexes()
        assert isinstance(known, _Indexes)
        return known

    def get(self, key: tuple[int, ...]) -> npt.NDArray[np.int64] | None:
        hit = self.entries.pop(key, None)
        if hit is None:
            return None
        self.entries[key] = hit  # the most recently used last
        return hit[1]

    def put(self, key: tuple[int, ...], register: Any, index: npt.NDArray[np.int64]) -> None:
        while self.entries and self.bytes + index.nbytes > INDEX_BYTES:
            self.bytes -= self.entries.pop(next(iter(self.entries)))[1].nbytes
        self.entries[key] = (register, index)
        self.bytes += index.nbytes


class _Matrix:
    """Where a ``wmma.load``/``wmma.store`` finds a fragment's matrix in memory, per warp: the element
    of each register, lane and position (:meth:`Fragment.order`) at ``base + (stride * major + minor)``
    elements."""

    def __init__(
        self, c: Compiler, frag: Fragment, layout: str, space: str, addr_op: Any, stride: Any
    ) -> None:
        if not isinstance(addr_op, Addr):
            raise UnsupportedError("an address operand [...]")
        self.frag, self.space = frag, space
        self.addr, _ = c.address(addr_op, space)
        default = np.uint32(frag.cols if layout == "row" else frag.rows)
        self.stride: Getter = c.read(stride, DTYPES["u32"]) if stride is not None else (lambda f: default)
        # the registers that hold the matrix once: a load repeats them into the rest, a store has no rest
        order = frag.order()[: frag.held].reshape(frag.held, 1, -1)
        r, col = np.divmod(order.astype(np.int64), frag.cols)
        self.major, self.minor = (r, col) if layout == "row" else (col, r)
        self.reach = (int(self.major.max()), int(self.minor.max()))
        self.esize = max(frag.width // 8, 1)
        self.uniform: dict[int, npt.NDArray[np.int64]] = {}  # stride -> element offsets
        # the address register as it is held (its identity keys the batch's shared-memory indexes)
        self.register: Getter | None = None
        if space != "global" and isinstance(addr_op.base, Reg) and addr_op.base.name in c.fn.registers:
            self.register = c.read(Reg(addr_op.base.name), c.reg_type(addr_op.base.name))

    def offsets(self, stride: Any) -> npt.NDArray[np.int64]:
        """``(words, warps or 1, 32 * per_word)`` element offsets from each warp's matrix."""
        if isinstance(stride, np.ndarray) and stride.ndim:
            wide = stride.astype(np.int64)[None, :, None]
            out: npt.NDArray[np.int64] = wide * self.major + self.minor
            return out
        key = int(stride)
        got = self.uniform.get(key)
        if got is None:
            if len(self.uniform) > 8:
                self.uniform.clear()
            got = self.uniform[key] = key * self.major + self.minor
        return got

    def locate(self, f: Frame, warps: npt.NDArray[np.intp] | None) -> tuple[str, npt.NDArray[np.uint64], Any]:
        """The state space, each warp's matrix address (its first lane's) and stride."""
        n = f.batch.n
        lead = slice(None, None, 32) if warps is None else warps * 32
        base = broadcast_full(self.addr(f), n).astype(np.uint64)[lead]
        stride = self.stride(f)
        if isinstance(stride, np.ndarray) and stride.ndim:
            stride = stride[lead]
            if stride.size and bool((stride == stride[0]).all()):
                stride = stride[0]
        space = self.space
        if space == "generic" and base.size:
            top = int(base.max()) + self._extent(stride)
            window = int(base.min()) >> WINDOW_BITS
            if window == 1 and top <= SHARED_WINDOW + (1 << WINDOW_BITS):
                space, base = "shared", base - np.uint64(SHARED_WINDOW)
            elif top <= SHARED_WINDOW:
                space = "global"
        return space, base, stride

    def _extent(self, stride: Any) -> int:
        """Bytes from a matrix's address past its last element (the largest stride of any warp)."""
        big = int(np.max(stride))
        last = big * self.reach[0] + self.reach[1]
        return (last * self.frag.width) // 8 + self.esize

    def addresses(
        self, f: Frame, warps: npt.NDArray[np.intp] | None
    ) -> tuple[str, npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        """The space, and every element's byte address and bit within the byte, ``(words, warps, k)``."""
        space, base, stride = self.locate(f, warps)
        index = self.offsets(stride).astype(np.uint64)
        width = self.frag.width
        if width >= 8:
            addrs = base[None, :, None] + index * np.uint64(self.esize)
            return space, addrs, np.zeros(1, dtype=np.uint64)
        bit = index * np.uint64(width)
        return space, base[None, :, None] + (bit >> np.uint64(3)), bit & np.uint64(7)

    def _shared_index(
        self, f: Frame, warps: npt.NDArray[np.intp] | None, base: npt.NDArray[np.uint64], stride: Any
    ) -> npt.NDArray[np.int64] | None:
        """Element indexes into the batch's shared memory (as one flat typed array), checked per warp
        (a matrix's elements lie between its address and its extent); ``None`` when this fast path
        does not apply."""
        batch = f.batch
        width, esize = batch.shared.shape[1], self.esize
        if (
            batch.cluster is not None
            or self.frag.width < 8
            or width % esize
            or not batch.shared.flags.c_contiguous
        ):
            return None
        check_aligned(base, esize, "shared")
        check_window(base + np.uint64(self._extent(stride) - esize), esize, width, "shared")
        lead = np.arange(0, batch.n, 32) if warps is None else warps * 32
        first = (base >> np.uint64(esize.bit_length() - 1)).view(np.int64)
        start = batch.block_index[lead] * (width // esize) + first
        out: npt.NDArray[np.int64] = start[None, :, None] + self.offsets(stride)
        return out

    def load(self, f: Frame, warps: npt.NDArray[np.intp] | None) -> npt.NDArray[Any]:
        """Every warp's fragment as raw elements, ``(held, warps, 32, per_word)``."""
        frag = self.frag
        known = _Indexes.of(f) if warps is None and self.register is not None else None
        key: tuple[int, ...] = ()
        if known is not None and self.register is not None:
            held = self.register(f)
            stride_now = self.stride(f)
            if not (isinstance(stride_now, np.ndarray) and stride_now.ndim):
                key = (id(self), id(held), int(stride_now))
                index = known.get(key)
                if index is not None:  # the same register as before: its checked index as before
                    typed = f.batch.shared.reshape(-1).view(_element_type(frag.kind))
                    return typed.take(index).reshape(frag.held, -1, 32, frag.per_word)
        space, base, stride = self.locate(f, warps)
        count = base.size
        shape = (frag.held, count, 32, frag.per_word)
        if space == "shared":
            index = self._shared_index(f, warps, base, stride)
            if index is not None:
                if known is not None and key:
                    known.put(key, held, index)
                typed = f.batch.shared.reshape(-1).view(_element_type(frag.kind))
                return typed.take(index).reshape(shape)
        space, addrs, shift = self.addresses(f, warps)
        flat = addrs.reshape(-1)
        got = device_elements(f.batch.memory, flat, self.esize) if space == "global" else None
        if got is None:
            data = access(f, space, self._rows(warps, f.batch.n, addrs.shape), flat, self.esize, None)
            got = data.view(_element_type(frag.kind) if frag.width >= 8 else np.uint8).reshape(-1)
        values = got.reshape(shape) if frag.width >= 8 else got.reshape(addrs.shape)
        if frag.width < 8:
            values = ((values >> shift.astype(np.uint8)) & np.uint8((1 << frag.width) - 1)).reshape(shape)
        return values

    def store(self, f: Frame, warps: npt.NDArray[np.intp] | None, elements: npt.NDArray[Any]) -> None:
        """Store ``(words, warps, 32, per_word)`` raw elements (8 bits wide or more)."""
        frag = self.frag
        space, base, stride = self.locate(f, warps)
        values = np.ascontiguousarray(elements, dtype=_element_type(frag.kind)).reshape(-1)
        if space == "shared":
            index = self._shared_index(f, warps, base, stride)
            if index is not None:
                typed = f.batch.shared.reshape(-1).view(_element_type(frag.kind))
                typed[index.reshape(-1)] = values
                return
        space, addrs, _ = self.addresses(f, warps)
        rows = self._rows(warps, f.batch.n, addrs.shape)
        access(f, space, rows, addrs.reshape(-1), self.esize, values.view(np.uint8).reshape(-1, self.esize))

    @staticmethod
    def _rows(warps: npt.NDArray[np.intp] | None, n: int, shape: tuple[int, ...]) -> npt.NDArray[np.intp]:
        """The thread (each warp's first lane) of every element address."""
        lead = np.arange(0, n, 32, dtype=np.intp) if warps is None else warps * 32
        return np.broadcast_to(lead[None, :, None], shape).reshape(-1)


def _space(mods: list[str]) -> tuple[str, list[str]]:
    spaces = [m for m in mods if m in _SPACES]
    rest = [m for m in mods if m not in _SPACES]
    if len(spaces) > 1:
        raise UnsupportedError("two state spaces")
    return (
        "shared" if spaces and spaces[0].startswith("shared") else spaces[0] if spaces else "generic"
    ), rest


def _c_load(c: Compiler, ins: Instruction, mods: list[str]) -> Runner:
    space, mods = _space(mods)
    if (
        len(mods) != 4
        or mods[0] not in ("a", "b", "c")
        or mods[1] not in ("row", "col")
        or mods[2] not in SHAPES
    ):
        raise UnsupportedError("wmma.load.{a,b,c}.sync.aligned.{row,col}.<shape>{.space}.<type>")
    which, layout, shape, kind = mods
    inputs = SHAPES[shape][1]
    if which == "c":
        if kind not in {d for t in inputs for pair in ACCUMULATORS[t] for d in pair}:
            raise UnsupportedError(f"wmma.load.c of .{kind} for {shape}")
    elif kind not in inputs:
        raise UnsupportedError(f"wmma.load.{which} of .{kind} for {shape}")
    if kind in _SUB_BYTE and layout != ("row" if which == "a" else "col"):
        raise UnsupportedError(f"wmma.load.{which}.{layout} of .{kind} (only a row-major, b column-major)")
    frag = _fragment(which, shape, kind)
    if len(ins.operands) not in (2, 3) or not isinstance(ins.operands[0], Vec):
        raise UnsupportedError("wmma.load {registers}, [address]{, stride}")
    regs = ins.operands[0].items
    if len(regs) != frag.words:
        raise UnsupportedError(
            f"wmma.load.{which} .{shape}.{kind} into {len(regs)} registers, not {frag.words}"
        )
    matrix = _Matrix(
        c, frag, layout, space, ins.operands[1], ins.operands[2] if len(ins.operands) == 3 else None
    )
    puts = [c.write(o, _register_dtype(kind)) for o in regs]

    def load(f: Frame, m: Mask | None) -> None:
        whole_warps(f, m, "wmma.load")
        warps = _warps(f, m)
        if warps is not None and not warps.size:
            return
        words = _pack(matrix.load(f, warps), kind)
        _write_words(f, puts, _spread(words, warps, f.batch.n), kind, m)

    return load


def _c_store(c: Compiler, ins: Instruction, mods: list[str]) -> Runner:
    space, mods = _space(mods)
    if len(mods) != 4 or mods[0] != "d" or mods[1] not in ("row", "col") or mods[2] not in SHAPES:
        raise UnsupportedError("wmma.store.d.sync.aligned.{row,col}.<shape>{.space}.<type>")
    _, layout, shape, kind = mods
    if kind not in {d for t in SHAPES[shape][1] for d, _ in ACCUMULATORS[t]}:
        raise UnsupportedError(f"wmma.store.d of .{kind} for {shape}")
    frag = _fragment("d", shape, kind)
    if len(ins.operands) not in (2, 3) or not isinstance(ins.operands[1], Vec):
        raise UnsupportedError("wmma.store [address], {registers}{, stride}")
    regs = ins.operands[1].items
    if len(regs) != frag.words:
        raise UnsupportedError(f"wmma.store.d .{shape}.{kind} from {len(regs)} registers, not {frag.words}")
    matrix = _Matrix(
        c, frag, layout, space, ins.operands[0], ins.operands[2] if len(ins.operands) == 3 else None
    )
    gets = [c.read(o, _register_dtype(kind)) for o in regs]

    def store(f: Frame, m: Mask | None) -> None:
        whole_warps(f, m, "wmma.store")
        warps = _warps(f, m)
        if warps is not None and not warps.size:
            return
        elements = _unpack(_read_words(f, gets, kind), frag)
        matrix.store(f, warps, elements if warps is None else elements[:, warps])

    return store


def _values(raw: npt.NDArray[Any], kind: str) -> npt.NDArray[Any]:
    """Raw elements as float64 or int64 values."""
    if kind == "f64":
        return raw.view(np.float64)
    if kind == "f32":
        return raw.view(np.float32).astype(np.float64)
    if kind == "s32":
        return raw.view(np.int32).astype(np.int64)
    if kind == "f16":
        return raw.view(np.float16).astype(np.float64)
    if kind == "u8":
        return raw.astype(np.float64)  # exact: every sum of products stays below 2^53
    if kind == "s8":
        return raw.view(np.int8).astype(np.float64)
    return decode(raw, kind)


def _c_mma(c: Compiler, ins: Instruction, mods: list[str]) -> Runner:
    bitop = ""
    if mods[:2] in (["xor", "popc"], ["and", "popc"]):
        bitop, mods = mods[0], mods[2:]
    satfinite = "satfinite" in mods
    mods = [m for m in mods if m not in ("satfinite", "rn")]
    if (
        len(mods) < 5
        or mods[0] not in ("row", "col")
        or mods[1] not in ("row", "col")
        or mods[2] not in SHAPES
    ):
        raise UnsupportedError("wmma.mma.sync.aligned.<alayout>.<blayout>.<shape>.<types>")
    shape, types = mods[2], mods[3:]
    if len(types) == 2:  # .f16: .dtype.ctype
        dt, ct = types
        at = bt = "f16"
    elif len(types) == 4:
        dt, at, bt, ct = types
    else:
        raise UnsupportedError(f"wmma.mma with types .{'.'.join(types)}")
    inputs = SHAPES[shape][1]
    if (
        at not in inputs
        or (at != bt and {at, bt} != {"s8", "u8"} and {at, bt} != {"s4", "u4"})
        or (dt, ct) not in ACCUMULATORS[at]
    ):
        raise UnsupportedError(f"wmma.mma.{shape} with types .{'.'.join(types)}")
    if (at == "b1") != bool(bitop):
        raise UnsupportedError("wmma.mma .xor.popc / .and.popc for .b1 only")
    if "rn" in ins.mods and at != "f64":
        raise UnsupportedError("wmma.mma .rn on other than f64")
    if any(r in ins.mods for r in ("rz", "rm", "rp")):
        raise UnsupportedError("wmma.mma with a rounding mode other than .rn")
    fa, fb = _fragment("a", shape, at), _fragment("b", shape, bt)
    fc, fd = _fragment("c", shape, ct), _fragment("d", shape, dt)
    if len(ins.operands) != 4 or not all(isinstance(o, Vec) for o in ins.operands):
        raise UnsupportedError("wmma.mma operands: four vectors {d}, {a}, {b}, {c}")
    d_op, a_op, b_op, c_op = (o.items for o in ins.operands if isinstance(o, Vec))
    for frag, regs, name in ((fa, a_op, "a"), (fb, b_op, "b"), (fc, c_op, "c"), (fd, d_op, "d")):
        if len(regs) != frag.words:
            raise UnsupportedError(
                f"wmma.mma.{shape} with {len(regs)} registers for {name}, not {frag.words}"
            )
    # only the registers holding the first copy of the matrix are read (the rest repeat it)
    ga = [c.read(o, _register_dtype(at)) for o in a_op[: fa.held]]
    gb = [c.read(o, _register_dtype(bt)) for o in b_op[: fb.held]]
    gc = [c.read(o, _register_dtype(ct)) for o in c_op]
    puts = [c.write(o, _register_dtype(dt)) for o in d_op]
    integer = dt == "s32"

    def operand(
        f: Frame, getters: list[Getter], frag: Fragment, warps: npt.NDArray[np.intp] | None
    ) -> npt.NDArray[Any]:
        """Every warp's matrix ``(warps, rows, cols)`` from its lanes' registers, as values."""
        regs = [get(f) for get in getters]
        seen = _seen(f) if warps is None else None
        if seen is not None:
            hit = seen.get(frag, regs)
            if hit is not None:
                return hit
        words = np.empty((len(regs), f.batch.n), dtype=_register_dtype(frag.kind))
        for j, reg in enumerate(regs):
            words[j] = reg
        elements = _unpack(words.view(_word_type(frag.kind)), frag)
        if warps is not None:
            elements = elements[:, warps]
        raw = elements.transpose(1, 0, 3, 2).reshape(-1, frag.rows, frag.cols)
        values = _values(raw, frag.kind)
        if seen is not None:
            seen.put(frag, regs, values)
        return values

    def mma(f: Frame, m: Mask | None) -> None:
        whole_warps(f, m, "wmma.mma")
        warps = _warps(f, m)
        if warps is not None and not warps.size:
            return
        a = operand(f, ga, fa, warps)
        b = operand(f, gb, fb, warps)
        acc = operand(f, gc, fc, warps)
        if bitop:
            wide_a, wide_b = a[:, :, :, None], b[:, None, :, :]
            d = acc + (wide_a ^ wide_b if bitop == "xor" else wide_a & wide_b).sum(axis=2)
        elif integer:  # the float64 product of 8- and 4-bit integers is exact
            d = np.matmul(a, b).astype(np.int64) + acc
        else:
            d = np.matmul(a, b) + acc  # f16/bf16/tf32 products exact in float64
        flat = d.reshape(d.shape[0], fd.size)
        if integer:
            if satfinite:
                flat = np.clip(flat, -(1 << 31), (1 << 31) - 1)
            raw = flat.astype(np.uint32)  # wraps at 32 bits
        else:
            raw = _round(flat, dt, satfinite)
        elements = raw.reshape(raw.shape[0], fd.words, fd.per_word, 32).transpose(1, 0, 3, 2)
        written = _write_words(f, puts, _spread(_pack(elements, dt), warps, f.batch.n), dt, m)
        if warps is None:  # the next wmma.mma may read D back as its C (the registers as written)
            _seen(f).put(fd, written, _values(raw, dt).reshape(-1, fd.rows, fd.cols))

    return mma


_FLOATS: dict[str, tuple[type[np.floating[Any]], type[np.unsignedinteger[Any]]]] = {
    "f16": (np.float16, np.uint16),
    "f32": (np.float32, np.uint32),
    "f64": (np.float64, np.uint64),
}


def _round(values: npt.NDArray[np.float64], dt: str, satfinite: bool) -> npt.NDArray[Any]:
    """float64 results rounded once to ``dt`` (nearest even), as raw bits; with ``.satfinite``
    infinities clamp to the largest finite value and NaN becomes +0."""
    target, raw_type = _FLOATS[dt]
    with np.errstate(over="ignore", invalid="ignore"):
        out: npt.NDArray[Any] = values.astype(target)
    if satfinite:
        big = float(np.finfo(target).max)
        out = np.where(np.isnan(out), 0.0, np.clip(out, -big, big)).astype(target)
    raw: npt.NDArray[Any] = out.view(raw_type)
    return raw


def _c_wmma(c: Compiler, ins: Instruction) -> Runner:
    op, mods = _split(ins)
    if op == "load":
        return _c_load(c, ins, mods)
    if op == "store":
        return _c_store(c, ins, mods)
    if op == "mma":
        return _c_mma(c, ins, mods)
    raise UnsupportedError(f"wmma.{op}")


def cvt_tf32(c: Compiler, ins: Instruction) -> Runner:
    """``cvt.{rna,rn,rz}{.satfinite}.tf32.f32 d, a``: ``a`` rounded to tf32's 10 fraction bits (the
    low 13 bits of the result are 0): ``.rna`` to nearest with ties away from zero, ``.rn`` ties to
    even, ``.rz`` toward zero. A NaN gives the canonical NaN ``0x7FFFFFFF``; an overflow gives
    infinity, or the largest finite tf32 with ``.satfinite``."""
    mods = [m for m in ins.mods if m != "satfinite"]
    if len(mods) != 3 or mods[1:] != ["tf32", "f32"] or mods[0] not in ("rna", "rn", "rz"):
        raise UnsupportedError("cvt.{rna,rn,rz}{.satfinite}.tf32.f32")
    if len(ins.operands) != 2:
        raise UnsupportedError("cvt d, a")
    mode, satfinite = mods[0], "satfinite" in ins.mods
    get = c.read(ins.operands[1], DTYPES["f32"])
    put = c.write(ins.operands[0], DTYPES["u32"])

    def run(f: Frame, m: Mask | None) -> None:
        bits = np.asarray(get(f), dtype=np.float32).view(np.uint32)
        sign, mag = bits & np.uint32(0x80000000), bits & np.uint32(0x7FFFFFFF)
        if mode == "rna":
            mag = mag + np.uint32(0x1000)
        elif mode == "rn":
            mag = mag + np.uint32(0xFFF) + ((mag >> np.uint32(13)) & np.uint32(1))
        nan = (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
        inf_in = (bits & np.uint32(0x7FFFFFFF)) == np.uint32(0x7F800000)
        mag = np.where(inf_in, np.uint32(0x7F800000), mag & np.uint32(0xFFFFE000))
        mag = np.minimum(mag, np.uint32(0x7F800000))
        if satfinite:
            mag = np.minimum(mag, np.uint32(0x7F7FE000))
        out = np.where(nan, np.uint32(0x7FFFFFFF), sign | mag).astype(np.uint32)
        put(f, out, m)

    return run


WMMA: dict[str, InstructionCompiler] = {"wmma": _c_wmma}
