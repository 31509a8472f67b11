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
    UnsupportedError,
    access,
    broadcast_full,
)
from ._isa_tensor import decode, whole_warps
from ._numeric import DTYPES
from ._parse import Addr, Instruction, Vec
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
    def per_word(self) -> int:
        return 1 if self.kind == "f64" else 32 // BITS[self.kind]

    @property
    def words(self) -> int:
        return self.count // self.per_word

    def places(self) -> npt.NDArray[np.intp]:
        """``(32, count)``: the row-major matrix index of each lane's elements."""
        lane = np.arange(32)[:, None]
        element = np.arange(self.count)[None, :]
        out: npt.NDArray[np.intp] = ((element * 32 + lane) % self.size).astype(np.intp)
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


def _split(ins: Instruction) -> tuple[str, list[str]]:
    """``wmma.<op>`` and the other modifiers, without ``.sync``/``.aligned`` (which must be there)."""
    if len(ins.mods) < 3 or "sync" not in ins.mods or "aligned" not in ins.mods:
        raise UnsupportedError("wmma.{load,store,mma}.sync.aligned")
    return ins.mods[0], [m for m in ins.mods[1:] if m not in ("sync", "aligned")]


def _warp_leads(f: Frame, m: Mask | None) -> npt.NDArray[np.intp]:
    """The first thread of every warp that executes the instruction (every lane does, or none)."""
    warps = f.batch.n // 32
    active = np.ones(warps, dtype=np.bool_) if m is None else m.reshape(warps, 32)[:, 0]
    out: npt.NDArray[np.intp] = (np.flatnonzero(active) * 32).astype(np.intp)
    return out


class _Matrix:
    """Where a ``wmma.load``/``wmma.store`` finds a fragment's matrix in memory, per warp."""

    def __init__(
        self, c: Compiler, frag: Fragment, layout: str, space: str, addr_op: Any, stride: Any
    ) -> None:
        if not isinstance(addr_op, Addr):
            raise UnsupportedError("an address operand [...]")
        self.frag, self.space = frag, space
        self.addr, _ = c.address(addr_op, space)
        default = np.uint32(frag.cols if layout == "row" else frag.rows)
        self.stride: Getter = c.read(stride, DTYPES["u32"]) if stride is not None else (lambda f: default)
        r, col = np.divmod(np.arange(frag.size, dtype=np.uint64), np.uint64(frag.cols))
        self.major, self.minor = (r, col) if layout == "row" else (col, r)

    def bits(
        self, f: Frame, leads: npt.NDArray[np.intp]
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        """Per warp and element: the byte address, and the bit offset within that byte."""
        base = broadcast_full(self.addr(f), f.batch.n).astype(np.uint64)[leads]
        stride = broadcast_full(self.stride(f), f.batch.n).astype(np.uint64)[leads]
        index = stride[:, None] * self.major[None, :] + self.minor[None, :]  # in elements
        width = BITS[self.frag.kind]
        if width >= 8:
            return base[:, None] + index * np.uint64(width // 8), np.zeros_like(index)
        bit = index * np.uint64(width)
        return base[:, None] + (bit >> np.uint64(3)), bit & np.uint64(7)

    def load(self, f: Frame, leads: npt.NDArray[np.intp]) -> npt.NDArray[np.uint64]:
        """Every warp's matrix as raw elements, ``(warps, size)``."""
        addrs, shift = self.bits(f, leads)
        width = BITS[self.frag.kind]
        rows = np.repeat(leads, self.frag.size)
        data = access(f, self.space, rows, addrs.reshape(-1), max(width // 8, 1), None)
        raw = data.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[max(width // 8, 1)])
        values = raw.reshape(leads.size, self.frag.size).astype(np.uint64)
        if width < 8:
            values = (values >> shift) & np.uint64((1 << width) - 1)
        return values

    def store(self, f: Frame, leads: npt.NDArray[np.intp], values: npt.NDArray[np.uint64]) -> None:
        addrs, _ = self.bits(f, leads)
        size = BITS[self.frag.kind] // 8
        data = values.astype({2: np.uint16, 4: np.uint32, 8: np.uint64}[size])
        rows = np.repeat(leads, self.frag.size)
        access(f, self.space, rows, addrs.reshape(-1), size, data.reshape(-1, 1).view(np.uint8))


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
    rdt = _register_dtype(kind)
    puts = [c.write(o, rdt) for o in regs]
    places = frag.places()
    width = BITS[kind]

    def load(f: Frame, m: Mask | None) -> None:
        whole_warps(f, m, "wmma.load")
        n = f.batch.n
        leads = _warp_leads(f, m)
        elements = matrix.load(f, leads)[:, places]  # (warps, 32, count)
        words = np.zeros((n // 32, 32, frag.words), dtype=np.uint64)
        packed = elements.reshape(leads.size, 32, frag.words, frag.per_word)
        shifts = (np.arange(frag.per_word, dtype=np.uint64) * np.uint64(width)) if width < 64 else None
        words[leads // 32] = (
            (packed << shifts).sum(axis=-1, dtype=np.uint64) if shifts is not None else packed[..., 0]
        )
        for j, put in enumerate(puts):
            word = words[:, :, j].reshape(n)
            put(f, word.view(np.float64) if kind == "f64" else word.astype(np.uint32).view(rdt), m)

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
    rdt = _register_dtype(kind)
    gets = [c.read(o, rdt) for o in regs]
    places = frag.places()

    def store(f: Frame, m: Mask | None) -> None:
        whole_warps(f, m, "wmma.store")
        n = f.batch.n
        leads = _warp_leads(f, m)
        words = np.stack([broadcast_full(g(f), n).reshape(n // 32, 32)[leads // 32] for g in gets], axis=-1)
        words = words.view(np.uint64) if kind == "f64" else words.view(np.uint32).astype(np.uint64)
        elements = _unpack_raw(words, BITS[kind], frag.per_word)  # (warps, 32, count)
        values = np.zeros((leads.size, frag.size), dtype=np.uint64)
        values[:, places] = elements
        matrix.store(f, leads, values)

    return store


def _unpack_raw(words: npt.NDArray[np.uint64], width: int, per_word: int) -> npt.NDArray[np.uint64]:
    """``(..., words)`` registers as ``(..., words * per_word)`` raw elements, lowest bits first."""
    if per_word == 1:
        return words
    shifts = np.arange(per_word, dtype=np.uint64) * np.uint64(width)
    parts = (words[..., None] >> shifts) & np.uint64((1 << width) - 1)
    return parts.reshape(*words.shape[:-1], words.shape[-1] * per_word)


def _values(raw: npt.NDArray[np.uint64], kind: str) -> npt.NDArray[Any]:
    """Raw elements as float64 or int64 values."""
    if kind == "f64":
        return raw.view(np.float64)
    if kind == "f32":
        return raw.astype(np.uint32).view(np.float32).astype(np.float64)
    if kind == "s32":
        return raw.astype(np.uint32).view(np.int32).astype(np.int64)
    if kind == "b1":
        return raw.astype(np.int64)
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
    ga = [c.read(o, _register_dtype(at)) for o in a_op]
    gb = [c.read(o, _register_dtype(bt)) for o in b_op]
    gc = [c.read(o, _register_dtype(ct)) for o in c_op]
    puts = [c.write(o, _register_dtype(dt)) for o in d_op]
    (m_, n_, _k), _ = SHAPES[shape]

    def operand(
        f: Frame, getters: list[Getter], frag: Fragment, leads: npt.NDArray[np.intp]
    ) -> npt.NDArray[Any]:
        """Every warp's matrix ``(warps, rows, cols)`` from its lanes' registers (the first copy)."""
        n = f.batch.n
        words = np.stack(
            [broadcast_full(g(f), n).reshape(n // 32, 32)[leads // 32] for g in getters], axis=-1
        )
        words = words.view(np.uint64) if frag.kind == "f64" else words.view(np.uint32).astype(np.uint64)
        elements = _values(_unpack_raw(words, BITS[frag.kind], frag.per_word), frag.kind)
        u = np.arange(frag.size)
        return elements[:, u % 32, u // 32].reshape(leads.size, frag.rows, frag.cols)

    integer = dt == "s32"

    def mma(f: Frame, m: Mask | None) -> None:
        whole_warps(f, m, "wmma.mma")
        n = f.batch.n
        leads = _warp_leads(f, m)
        a = operand(f, ga, fa, leads)
        b = operand(f, gb, fb, leads)
        acc = operand(f, gc, fc, leads)
        if bitop == "xor":
            d = acc + (a[:, :, :, None] ^ b[:, None, :, :]).sum(axis=2)
        elif bitop == "and":
            d = acc + (a[:, :, :, None] & b[:, None, :, :]).sum(axis=2)
        else:
            d = np.matmul(a, b) + acc  # f16/bf16/tf32 products exact in float64; int64 exact
        flat = d.reshape(leads.size, m_ * n_)
        if integer:
            if satfinite:
                flat = np.clip(flat, -(1 << 31), (1 << 31) - 1)
            raw = flat.astype(np.int64).astype(np.uint64) & np.uint64(0xFFFFFFFF)
        else:
            raw = _round(flat, dt, satfinite)
        elements = raw[:, fd.places()]  # (warps, 32, count)
        packed = elements.reshape(leads.size, 32, fd.words, fd.per_word)
        shifts = np.arange(fd.per_word, dtype=np.uint64) * np.uint64(BITS[dt] if dt != "f64" else 0)
        words = np.zeros((n // 32, 32, fd.words), dtype=np.uint64)
        words[leads // 32] = (packed << shifts).sum(axis=-1, dtype=np.uint64)
        for j, put in enumerate(puts):
            word = words[:, :, j].reshape(n)
            put(
                f,
                word.view(np.float64) if dt == "f64" else word.astype(np.uint32).view(_register_dtype(dt)),
                m,
            )

    return mma


_FLOATS: dict[str, tuple[type[np.floating[Any]], type[np.unsignedinteger[Any]]]] = {
    "f16": (np.float16, np.uint16),
    "f32": (np.float32, np.uint32),
    "f64": (np.float64, np.uint64),
}


def _round(values: npt.NDArray[np.float64], dt: str, satfinite: bool) -> npt.NDArray[np.uint64]:
    """float64 results rounded once to ``dt`` (nearest even), as raw bits; with ``.satfinite``
    infinities clamp to the largest finite value and NaN becomes +0."""
    target, raw_type = _FLOATS[dt]
    with np.errstate(over="ignore", invalid="ignore"):
        out: npt.NDArray[Any] = values.astype(target)
    if satfinite:
        big = float(np.finfo(target).max)
        out = np.where(np.isnan(out), 0.0, np.clip(out, -big, big)).astype(target)
    raw: npt.NDArray[np.uint64] = out.view(raw_type).astype(np.uint64)
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
