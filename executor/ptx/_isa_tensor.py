"""Tensor cores: ``mma.sync.aligned`` — a warp's matrix multiply-accumulate ``D = A x B + C`` —,
``ldmatrix``/``stmatrix``, which move 8x8 matrices of 16-bit elements between shared memory and mma
fragments, and ``movmatrix``, which transposes one held in fragments.

Each of a warp's 32 lanes holds a *fragment* of every matrix: a few elements in its registers, at the
places the PTX ISA's fragment layouts give as functions of the lane's ``groupID`` (``lane >> 2``) and
``threadID_in_group`` (``lane % 4``) and of the element's index ``i`` in the lane's registers (lowest
bits of a packed register first). The op gathers the fragments of every warp of the batch into whole
matrices, multiplies in float64 (int64 for integers) and scatters ``D`` back into the lanes' registers.
The shapes and types (:data:`SHAPES`, :data:`INPUTS`, :data:`ACCUMULATORS`): f16/bf16, tf32, f64,
s8/u8 and the FP8 types e4m3/e5m2, s4/u4 and b1 (``.xor.popc``/``.and.popc``), every shape nvcc
accepts for them on sm_75-sm_90; sm_70's quad-pair m8n8k4 f16 shape is ``_isa_mma884``'s.

Numerics: f16, bf16, tf32 and FP8 products are exact in float64; they are summed with C in float64 and
rounded once to the accumulator's type (a GPU's tensor core rounds its partial sums in an order of
its own, so results can differ from one in the last bit when they are not exact); tf32 operands
keep the upper 19 bits of their register (the low 13 are ignored, as the ISA allows); f64 ``mma`` is
``A x B`` then ``+ C``, each rounded; integer ``mma`` wraps at 32 bits, or saturates with ``.satfinite``.

``mma.sync`` must be executed by every lane of a warp together (``.aligned``); a warp whose lanes are
not all active, or a block whose last warp is partial, ends the launch with
``CUDA_ERROR_LAUNCH_FAILED``, which is how this undefined case is answered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from protocol import CUresult

from ._compiler import (
    Compiler,
    InstructionCompiler,
    Mask,
    Runner,
    UnsupportedError,
    access,
    broadcast_full,
    is_hint,
)
from ._numeric import DTYPES
from ._parse import Instruction, Vec
from ._state import Frame, KernelFaultError

__all__ = ["ACCUMULATORS", "INPUTS", "SHAPES", "TENSOR", "decode", "whole_warps"]

#: (groupID, threadID_in_group, element index) -> (row, column) in the operand's matrix
Place = Callable[[int, int, int], tuple[int, int]]


def _acc(g: int, t: int, i: int) -> tuple[int, int]:
    """C and D of every m16n8 shape: c0 c1 on row g, c2 c3 on row g + 8, columns 2t and 2t + 1."""
    return g + 8 * (i >> 1), 2 * t + (i & 1)


@dataclass(frozen=True, slots=True)
class Shape:
    m: int
    n: int
    k: int
    a: Place
    b: Place
    c: Place
    a_count: int  # elements per lane
    b_count: int
    c_count: int


def _k4(g: int, t: int, i: int) -> tuple[int, int]:
    """A of the m16n8k4/k8/k16 shapes of one-element-per-register types (tf32, f64): a_i at row
    ``g + 8 (i % 2)``, column ``t + 4 (i / 2)``."""
    return g + 8 * (i & 1), t + 4 * (i >> 1)


def _k4_b(g: int, t: int, i: int) -> tuple[int, int]:
    return t + 4 * i, g


def _pair_acc(g: int, t: int, i: int) -> tuple[int, int]:
    """C and D of the m8n8 shapes: row g, columns 2t and 2t + 1."""
    return g, 2 * t + i


# the fragment layouts of the PTX ISA ("Matrix fragments for mma.m*n*k*"), by input family and shape;
# the families: f16 (f16, bf16), tf32, f64, i8 (s8, u8, and the fp8 types e4m3, e5m2), i4 (s4, u4)
SHAPES: dict[tuple[str, str], Shape] = {
    ("f16", "m16n8k8"): Shape(
        16, 8, 8,
        lambda g, t, i: (g + 8 * (i >> 1), 2 * t + (i & 1)),
        lambda g, t, i: (2 * t + (i & 1), g),
        _acc, 4, 2, 4,
    ),
    ("f16", "m16n8k16"): Shape(
        16, 8, 16,
        lambda g, t, i: (g + 8 * ((i >> 1) & 1), 2 * t + (i & 1) + 8 * (i >> 2)),
        lambda g, t, i: (2 * t + (i & 1) + 8 * (i >> 1), g),
        _acc, 8, 4, 4,
    ),
    ("tf32", "m16n8k4"): Shape(16, 8, 4, _k4, _k4_b, _acc, 2, 1, 4),
    ("tf32", "m16n8k8"): Shape(16, 8, 8, _k4, _k4_b, _acc, 4, 2, 4),
    ("f64", "m8n8k4"): Shape(
        8, 8, 4,
        lambda g, t, i: (g, t),
        lambda g, t, i: (t, g),
        _pair_acc, 1, 1, 2,
    ),
    ("f64", "m16n8k4"): Shape(16, 8, 4, _k4, _k4_b, _acc, 2, 1, 4),
    ("f64", "m16n8k8"): Shape(16, 8, 8, _k4, _k4_b, _acc, 4, 2, 4),
    ("f64", "m16n8k16"): Shape(16, 8, 16, _k4, _k4_b, _acc, 8, 4, 4),
    ("i8", "m8n8k16"): Shape(
        8, 8, 16,
        lambda g, t, i: (g, 4 * t + i),
        lambda g, t, i: (4 * t + i, g),
        _pair_acc, 4, 4, 2,
    ),
    ("i8", "m16n8k16"): Shape(
        16, 8, 16,
        lambda g, t, i: (g + 8 * (i >> 2), 4 * t + (i & 3)),
        lambda g, t, i: (4 * t + i, g),
        _acc, 8, 4, 4,
    ),
    ("i8", "m16n8k32"): Shape(
        16, 8, 32,
        lambda g, t, i: (g + 8 * ((i >> 2) & 1), 4 * t + (i & 3) + 16 * (i >> 3)),
        lambda g, t, i: (4 * t + (i & 3) + 16 * (i >> 2), g),
        _acc, 16, 8, 4,
    ),
    ("i4", "m8n8k32"): Shape(
        8, 8, 32,
        lambda g, t, i: (g, 8 * t + i),
        lambda g, t, i: (8 * t + i, g),
        _pair_acc, 8, 8, 2,
    ),
    ("i4", "m16n8k32"): Shape(
        16, 8, 32,
        lambda g, t, i: (g + 8 * (i >> 3), 8 * t + (i & 7)),
        lambda g, t, i: (8 * t + i, g),
        _acc, 16, 8, 4,
    ),
    ("b1", "m8n8k128"): Shape(
        8, 8, 128,
        lambda g, t, i: (g, 32 * t + i),
        lambda g, t, i: (32 * t + i, g),
        _pair_acc, 32, 32, 2,
    ),
    ("b1", "m16n8k128"): Shape(
        16, 8, 128,
        lambda g, t, i: (g + 8 * (i >> 5), 32 * t + (i & 31)),
        lambda g, t, i: (32 * t + i, g),
        _acc, 64, 32, 4,
    ),
    ("b1", "m16n8k256"): Shape(
        16, 8, 256,
        lambda g, t, i: (g + 8 * ((i >> 5) & 1), 32 * t + (i & 31) + 128 * (i >> 6)),
        lambda g, t, i: (32 * t + (i & 31) + 128 * (i >> 5), g),
        _acc, 128, 64, 4,
    ),
    ("i4", "m16n8k64"): Shape(
        16, 8, 64,
        lambda g, t, i: (g + 8 * ((i >> 3) & 1), 8 * t + (i & 7) + 32 * (i >> 4)),
        lambda g, t, i: (8 * t + (i & 7) + 32 * (i >> 3), g),
        _acc, 32, 16, 4,
    ),
}

#: input type -> (fragment family, element width in bits; packed 32 / bits to a register, f64 one)
INPUTS: dict[str, tuple[str, int]] = {
    "f16": ("f16", 16), "bf16": ("f16", 16), "tf32": ("tf32", 32), "f64": ("f64", 64),
    "s8": ("i8", 8), "u8": ("i8", 8), "e4m3": ("i8", 8), "e5m2": ("i8", 8), "s4": ("i4", 4), "u4": ("i4", 4),
    "b1": ("b1", 1),
}

#: (D type, C type) for each input type the engine implements
ACCUMULATORS: dict[str, set[tuple[str, str]]] = {
    "f16": {("f32", "f32"), ("f16", "f16")},  # mixed only for m8n8k4 (``_isa_mma884``)
    "bf16": {("f32", "f32")}, "tf32": {("f32", "f32")}, "f64": {("f64", "f64")},
    "s8": {("s32", "s32")}, "u8": {("s32", "s32")}, "s4": {("s32", "s32")}, "u4": {("s32", "s32")},
    "e4m3": {("f32", "f32")}, "e5m2": {("f32", "f32")}, "b1": {("s32", "s32")},
}


def _e4m3_table() -> npt.NDArray[np.float64]:
    """Every e4m3 byte's value: sign, 4 exponent bits (bias 7), 3 mantissa bits, subnormals below
    exponent 1; no infinities, S.1111.111 is NaN (the FP8 format the PTX ISA names e4m3)."""
    out = np.empty(256, dtype=np.float64)
    for byte in range(256):
        sign = -1.0 if byte & 0x80 else 1.0
        exp, man = (byte >> 3) & 0xF, byte & 7
        if exp == 0xF and man == 7:
            out[byte] = np.nan
        elif exp == 0:
            out[byte] = sign * man * 2.0**-9
        else:
            out[byte] = sign * (1 + man / 8) * 2.0 ** (exp - 7)
    return out


_E4M3 = _e4m3_table()


def decode(raw: npt.NDArray[Any], kind: str) -> npt.NDArray[Any]:
    """Raw elements of ``kind`` (unsigned, as unpacked from registers) as float64 or int64 values."""
    if kind == "f16":
        return raw.astype(np.uint16).view(np.float16).astype(np.float64)
    if kind == "bf16":
        return (raw.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)
    if kind == "tf32":  # the low 13 bits are ignored, as the ISA allows
        return (raw.astype(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32).astype(np.float64)
    if kind == "s8":
        return raw.astype(np.uint8).view(np.int8).astype(np.int64)
    if kind == "s4":
        wide = raw.astype(np.int64)
        return wide - ((wide & 8) << 1)
    if kind == "e5m2":  # the upper byte of an f16
        return (raw.astype(np.uint16) << np.uint16(8)).view(np.float16).astype(np.float64)
    if kind == "e4m3":
        return _E4M3[raw.astype(np.intp)]
    return raw.astype(np.int64)  # u8 u4 b1


def _tables(shape: Shape) -> dict[str, tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    """Per operand: (32, count) arrays of rows and columns, lane by element."""
    out = {}
    for name, place, count in (("a", shape.a, shape.a_count), ("b", shape.b, shape.b_count),
                               ("c", shape.c, shape.c_count)):
        rows = np.empty((32, count), dtype=np.intp)
        cols = np.empty((32, count), dtype=np.intp)
        for lane in range(32):
            for i in range(count):
                rows[lane, i], cols[lane, i] = place(lane >> 2, lane & 3, i)
        out[name] = (rows, cols)
    return out


def _placer(
    rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp], height: int, width: int, work: type[np.generic]
) -> Callable[[npt.NDArray[Any]], npt.NDArray[Any]]:
    """Lanes' elements ``(warps, 32, count)`` as each warp's ``height x width`` matrix: one gather when
    the fragment holds every element once (the ISA's mma layouts), else a scatter into zeros."""
    flat = (rows * width + cols).reshape(-1)
    if flat.size == height * width and np.array_equal(np.sort(flat), np.arange(height * width)):
        inverse = np.argsort(flat)

        def gather(el: npt.NDArray[Any]) -> npt.NDArray[Any]:
            warps = el.shape[0]
            out: npt.NDArray[Any] = el.reshape(warps, -1)[:, inverse].astype(work, copy=False)
            return out.reshape(warps, height, width)

        return gather

    def scatter(el: npt.NDArray[Any]) -> npt.NDArray[Any]:
        mat = np.zeros((el.shape[0], height, width), dtype=work)
        mat[:, rows, cols] = el
        return mat

    return scatter


def _unpack(words: list[npt.NDArray[Any]], kind: str) -> npt.NDArray[Any]:
    """A lane's registers (each ``(warps, 32)``) as its elements ``(warps, 32, count)``, as float64 or
    int64, lowest bits first."""
    if kind == "f64":
        return np.stack([w.astype(np.float64) for w in words], axis=-1)
    bits = INPUTS[kind][1]
    parts = []
    for word in words:
        w = word.astype(np.uint32)
        for j in range(32 // bits):
            parts.append((w >> np.uint32(j * bits)) & np.uint32((1 << bits) - 1))
    return decode(np.stack(parts, axis=-1), kind)


def _c_mma(c: Compiler, ins: Instruction) -> Runner:
    mods = list(ins.mods)
    satfinite = "satfinite" in mods
    mods = [m for m in mods if m not in ("sync", "aligned", "satfinite", "rn")]
    bitop = ""
    if mods[-2:] in (["xor", "popc"], ["and", "popc"]):  # .b1: C + popc(a op b) over k
        bitop, mods = mods[-2], mods[:-2]
    if "sync" not in ins.mods or "aligned" not in ins.mods or len(mods) != 7 or mods[1:3] != ["row", "col"]:
        raise UnsupportedError("mma.sync.aligned.<shape>.row.col.<d>.<a>.<b>.<c>")
    shape_name, _, _, dt, at, bt, ct = mods
    family = INPUTS.get(at, ("", 0))[0]
    if (
        at not in INPUTS
        or bt not in INPUTS
        or INPUTS[bt][0] != family
        or (at in ("f16", "bf16") and at != bt)
        or (dt, ct) not in ACCUMULATORS[at]
        or (family, shape_name) not in SHAPES
    ):
        raise UnsupportedError(f"mma of shape {shape_name} with types .{dt}.{at}.{bt}.{ct}")
    if "rn" in ins.mods and at != "f64":
        raise UnsupportedError("mma .rn on other than f64")
    if (at == "b1") != bool(bitop):
        raise UnsupportedError("mma .xor.popc / .and.popc for .b1 only")
    if satfinite and dt != "s32":
        raise UnsupportedError("mma .satfinite on floating-point types")
    shape = SHAPES[(family, shape_name)]
    tables = _tables(shape)
    if len(ins.operands) != 4 or not all(isinstance(o, Vec) for o in ins.operands):
        raise UnsupportedError("mma operands: four vectors {d}, {a}, {b}, {c}")
    d_op, a_op, b_op, c_op = ins.operands
    assert isinstance(d_op, Vec) and isinstance(a_op, Vec) and isinstance(b_op, Vec) and isinstance(c_op, Vec)
    per_word = 1 if family in ("f64", "tf32") else 32 // INPUTS[at][1]
    acc_per_word = 2 if ct == "f16" else 1
    if (
        len(a_op.items) * per_word != shape.a_count
        or len(b_op.items) * per_word != shape.b_count
        or len(c_op.items) * acc_per_word != shape.c_count
        or len(d_op.items) * (2 if dt == "f16" else 1) != shape.c_count
    ):
        raise UnsupportedError(f"mma.{shape_name} with these fragment sizes")
    in_dt = DTYPES["f64"] if at == "f64" else DTYPES["u32"]
    acc_dt = {"f32": DTYPES["f32"], "f16": DTYPES["u32"], "f64": DTYPES["f64"], "s32": DTYPES["s32"]}
    ga = [c.read(o, in_dt) for o in a_op.items]
    gb = [c.read(o, in_dt) for o in b_op.items]
    gc = [c.read(o, acc_dt[ct]) for o in c_op.items]
    puts = [c.write(o, acc_dt[dt]) for o in d_op.items]
    m_, n_, k_ = shape.m, shape.n, shape.k
    (ar, ac), (br, bc), (cr, cc) = tables["a"], tables["b"], tables["c"]
    work = np.int64 if dt == "s32" else np.float64
    place_a, place_b, place_c = _placer(ar, ac, m_, k_, work), _placer(br, bc, k_, n_, work), _placer(
        cr, cc, m_, n_, work)

    def mma(f: Frame, m: Mask | None) -> None:
        whole_warps(f, m, "mma.sync")
        n = f.batch.n
        warps = n // 32

        def regs(getters: list[Any]) -> list[npt.NDArray[Any]]:
            return [broadcast_full(g(f), n).reshape(warps, 32) for g in getters]

        a_el = _unpack(regs(ga), at)
        b_el = _unpack(regs(gb), bt)
        c_words = regs(gc)
        if ct == "f16":
            c_el = _unpack(c_words, "f16")
        else:
            c_el = np.stack([w.astype(np.float64 if ct != "s32" else np.int64) for w in c_words], axis=-1)
        integer = dt == "s32"
        a_mat, b_mat, c_mat = place_a(a_el), place_b(b_el), place_c(c_el)
        if bitop == "xor":  # popc(a ^ b) = popc(a) + popc(b) - 2 popc(a & b), row by column
            ones = a_mat.sum(axis=2)[:, :, None] + b_mat.sum(axis=1)[:, None, :]
            d_mat = ones - 2 * np.matmul(a_mat, b_mat) + c_mat
        else:  # .and.popc is the 0/1 product; f16/bf16/tf32 products are exact in float64
            d_mat = np.matmul(a_mat, b_mat) + c_mat
        d_el = d_mat[:, cr, cc]  # (warps, 32, count)
        if integer:
            if satfinite:
                d_el = np.clip(d_el, -(1 << 31), (1 << 31) - 1)
            out = d_el.astype(np.int64).astype(np.uint32).view(np.int32)
            words = [out[..., i] for i in range(shape.c_count)]
        elif dt == "f16":
            h = d_el.astype(np.float16).view(np.uint16).astype(np.uint32)
            words = [h[..., 2 * j] | (h[..., 2 * j + 1] << np.uint32(16)) for j in range(shape.c_count // 2)]
        elif dt == "f32":
            words = [d_el[..., i].astype(np.float32) for i in range(shape.c_count)]
        else:
            words = [d_el[..., i] for i in range(shape.c_count)]
        for put, word in zip(puts, words, strict=True):
            put(f, word.reshape(n), m)

    return mma


def whole_warps(f: Frame, m: Mask | None, what: str) -> None:
    """A ``.sync.aligned`` warp instruction: every lane of each warp that runs it runs it together."""
    batch = f.batch
    lanes = None if m is None or batch.block_threads % 32 else m.reshape(-1, 32)
    if batch.block_threads % 32 or (lanes is not None and (lanes.any(axis=1) & ~lanes.all(axis=1)).any()):
        raise KernelFaultError(
            CUresult.CUDA_ERROR_LAUNCH_FAILED,
            f"{what} executed by only some lanes of a warp (every lane must execute it together)",
        )


def _c_ldmatrix(c: Compiler, ins: Instruction) -> Runner:
    """``ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16``: lanes ``8j .. 8j + 7`` give the
    addresses of the eight 16-byte rows of matrix ``j``; each lane receives, in register ``j``, the
    elements ``(lane / 4, 2 (lane % 4))`` and ``(lane / 4, 2 (lane % 4) + 1)`` of matrix ``j`` (of its
    transpose with ``.trans``), the first in the lower half."""
    mods = [x for x in ins.mods if not is_hint(x)]
    trans = "trans" in mods
    mods = [x for x in mods if x != "trans"]
    space = "shared" if "shared" in mods or "shared::cta" in ins.mods else "generic"
    mods = [x for x in mods if x != "shared"]
    if "sync" not in ins.mods or "aligned" not in ins.mods or len(mods) != 3 or mods[0] != "m8n8" \
            or mods[1] not in ("x1", "x2", "x4") or mods[2] != "b16":
        raise UnsupportedError("ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{.trans}.shared.b16")
    count = int(mods[1][1])
    if len(ins.operands) != 2 or not isinstance(ins.operands[0], Vec) or len(ins.operands[0].items) != count:
        raise UnsupportedError(f"ldmatrix .x{count} with {count} destination registers")
    puts = [c.write(o, DTYPES["u32"]) for o in ins.operands[0].items]
    addr, _ = c.address(ins.operands[1], space)
    lane = np.arange(32)
    g, t = lane >> 2, lane & 3
    rows_of = (2 * t, 2 * t + 1) if trans else (g, g)
    cols_of = (g, g) if trans else (2 * t, 2 * t + 1)

    def ldmatrix(f: Frame, m: Mask | None) -> None:
        whole_warps(f, m, "ldmatrix")
        n = f.batch.n
        warps = n // 32
        addrs = broadcast_full(addr(f), n).astype(np.uint64).reshape(warps, 32)
        active = np.ones(warps, dtype=np.bool_) if m is None else m.reshape(warps, 32)[:, 0]
        sources = (np.flatnonzero(active)[:, None] * 32 + np.arange(8 * count)).reshape(-1)
        data = access(f, space, sources.astype(np.intp), addrs[active, : 8 * count].reshape(-1), 16, None)
        mats = np.zeros((warps, count, 8, 8), dtype=np.uint16)
        mats[active] = data.view(np.uint16).reshape(-1, count, 8, 8)
        for j, put in enumerate(puts):
            low = mats[:, j, rows_of[0], cols_of[0]].astype(np.uint32)
            high = mats[:, j, rows_of[1], cols_of[1]].astype(np.uint32)
            put(f, (low | (high << np.uint32(16))).reshape(n), m)

    return ldmatrix


def _c_movmatrix(c: Compiler, ins: Instruction) -> Runner:
    """``movmatrix.sync.aligned.m8n8.trans.b16 d, a``: the warp's 8x8 matrix, held in ldmatrix's
    fragment layout (lane ``l``: row ``l / 4``, columns ``2 (l % 4)`` and ``+ 1``), transposed."""
    mods = [x for x in ins.mods if x not in ("sync", "aligned")]
    if "sync" not in ins.mods or "aligned" not in ins.mods or mods != ["m8n8", "trans", "b16"]:
        raise UnsupportedError("movmatrix.sync.aligned.m8n8.trans.b16")
    if len(ins.operands) != 2:
        raise UnsupportedError("movmatrix d, a")
    get, put = c.read(ins.operands[1], DTYPES["u32"]), c.write(ins.operands[0], DTYPES["u32"])
    lane = np.arange(32)
    g, t = lane >> 2, lane & 3

    def movmatrix(f: Frame, m: Mask | None) -> None:
        whole_warps(f, m, "movmatrix")
        n = f.batch.n
        words = broadcast_full(get(f), n).astype(np.uint32).reshape(n // 32, 32)
        mats = np.zeros((n // 32, 8, 8), dtype=np.uint32)
        mats[:, g, 2 * t] = words & np.uint32(0xFFFF)
        mats[:, g, 2 * t + 1] = words >> np.uint32(16)
        out = mats[:, 2 * t, g] | (mats[:, 2 * t + 1, g] << np.uint32(16))
        put(f, out.reshape(n), m)

    return movmatrix


def _c_stmatrix(c: Compiler, ins: Instruction) -> Runner:
    """``stmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16 [p], {r...}``: ldmatrix's inverse —
    register ``j`` of lane ``l`` holds the elements ``(l / 4, 2 (l % 4))`` and ``+ 1`` of matrix ``j``
    (of its transpose with ``.trans``), lower half first; lanes ``8j .. 8j + 7`` give the addresses of
    the eight 16-byte rows matrix ``j`` is stored to."""
    mods = [x for x in ins.mods if not is_hint(x)]
    trans = "trans" in mods
    mods = [x for x in mods if x not in ("trans", "shared")]
    if "sync" not in ins.mods or "aligned" not in ins.mods or len(mods) != 3 or mods[0] != "m8n8" \
            or mods[1] not in ("x1", "x2", "x4") or mods[2] != "b16":
        raise UnsupportedError("stmatrix.sync.aligned.m8n8.{x1,x2,x4}{.trans}.shared.b16")
    count = int(mods[1][1])
    if len(ins.operands) != 2 or not isinstance(ins.operands[1], Vec) or len(ins.operands[1].items) != count:
        raise UnsupportedError(f"stmatrix .x{count} from {count} registers")
    gets = [c.read(o, DTYPES["u32"]) for o in ins.operands[1].items]
    addr, _ = c.address(ins.operands[0], "shared")
    lane = np.arange(32)
    g, t = lane >> 2, lane & 3
    rows_of = (2 * t, 2 * t + 1) if trans else (g, g)
    cols_of = (g, g) if trans else (2 * t, 2 * t + 1)

    def stmatrix(f: Frame, m: Mask | None) -> None:
        whole_warps(f, m, "stmatrix")
        n = f.batch.n
        warps = n // 32
        addrs = broadcast_full(addr(f), n).astype(np.uint64).reshape(warps, 32)
        active = np.ones(warps, dtype=np.bool_) if m is None else m.reshape(warps, 32)[:, 0]
        mats = np.zeros((warps, count, 8, 8), dtype=np.uint16)
        for j, get in enumerate(gets):
            words = broadcast_full(get(f), n).astype(np.uint32).reshape(warps, 32)
            mats[:, j, rows_of[0], cols_of[0]] = (words & np.uint32(0xFFFF)).astype(np.uint16)
            mats[:, j, rows_of[1], cols_of[1]] = (words >> np.uint32(16)).astype(np.uint16)
        sources = (np.flatnonzero(active)[:, None] * 32 + np.arange(8 * count)).reshape(-1)
        data = np.ascontiguousarray(mats[active]).view(np.uint8).reshape(-1, 16)
        access(f, "shared", sources.astype(np.intp), addrs[active, : 8 * count].reshape(-1), 16, data)

    return stmatrix


TENSOR: dict[str, InstructionCompiler] = {
    "ldmatrix": _c_ldmatrix,
    "mma": _c_mma,
    "movmatrix": _c_movmatrix,
    "stmatrix": _c_stmatrix,
}
