"""TMA: ``cp.async.bulk.tensor`` — boxes of a tensor between global and shared memory, described by a
tensor map (``CUtensorMap``) — and the tensor-map prefetches: what CUTLASS-style sm_90 kernels and
libcu++'s ``cp_async_bulk_tensor_*`` emit.

* ``cp.async.bulk.tensor.{1d..5d}.shared::cluster.global{.tile}.mbarrier::complete_tx::bytes [dst],
  [map, {c0, …}], [mbar]`` (``.shared::cta`` destinations too): the box at coordinates ``c`` (signed)
  into shared memory, then the barrier's ``complete_tx`` with the box's bytes, at the instruction
  (as ``_isa_mbarrier``'s bulk copies); with ``.multicast::cluster`` and a ``ctaMask``, into the same
  offset of every block of the cluster the mask names, each of their barriers completing;
* ``cp.async.bulk.tensor.{1d..5d}.global.shared::cta.tile.bulk_group [map, {c0, …}], [src]``: the
  box from shared memory into the tensor, complete at the instruction (``commit_group``/``wait_group``
  wait for nothing);
* ``cp.reduce.async.bulk.tensor.{1d..5d}.global.shared::cta.{op}.tile.bulk_group [map, {c0, …}], [src]``:
  each element of the box inside the tensor combined into it (``add`` on u32 s32 u64 f32 f16 bf16;
  ``min``/``max`` on u32 s32 u64 s64 f16 bf16; ``and``/``or``/``xor`` on 32- and 64-bit integers;
  ``inc``/``dec`` on u32; the element type is the map's, so another pairing is refused at the
  instruction, NOT_SUPPORTED), half floats rounded as ``_isa_atomic_vec``'s adds;
* ``cp.async.bulk.tensor.{3d..5d}.shared::cluster.global.im2col.mbarrier::complete_tx::bytes [dst],
  [map, {c, w, (h, (d,)) n}], [mbar], {o_w, (o_h, (o_d))}`` (multicast too): with a map of
  ``cuTensorMapEncodeIm2col``, ``pixels`` pixels of ``channels`` elements from channel ``c`` (see *im2col*);
* ``cp.async.bulk.prefetch.tensor.{1d..5d}.L2.global{.tile,.im2col} [map, {c0, …}]{, {offsets}}`` and
  ``prefetch{.space}.tensormap [a]``: hints, no effect on memory (the prefetched map is still decoded and
  checked).

*The map* is 128 bytes at a 64-byte aligned address: a ``__grid_constant__`` kernel parameter (its
address taken with ``mov`` and maybe ``cvta.param``: found when the kernel is compiled, read from the
launch's parameter block) or global/constant memory (read through the checked generic path). It is
sim's own encoding (``_tensor_map``): decoded and every field checked again at each instruction — a
guest may forge it — and a map that is not valid ends the launch with ``CUDA_ERROR_LAUNCH_FAILED``
(sticky, as the engine's other undefined uses: a GPU faults on a malformed descriptor).

*The box*: along dimension ``i`` the elements ``c_i + k * elementStrides[i]`` for ``k <
ceil(box[i] / elementStrides[i])``, laid out densely in shared memory, dimension 0 innermost. Elements
outside the tensor (``< 0`` or ``>= dim``) read as zero, or as NaN with the map's NaN fill, and are not
written by a store; every element inside it is read or written through the checked device gathers
(``CUDA_ERROR_ILLEGAL_ADDRESS`` outside the VM's memory). The shared side must be 128-byte aligned and
inside the block's shared memory. With a swizzle mode the 16-byte chunks of each shared address are
permuted as the hardware does (CUTLASS's ``Swizzle<b, 4, 3>``: address bits 4.. XOR bits 7.., ``b`` = 1,
2, 3 for 32B, 64B, 128B); a box whose inner dimension is not the swizzle span, or with an element
stride on dimension 0, is refused at the instruction (``CUDA_ERROR_NOT_SUPPORTED``). A reduction whose
box holds one address twice (a layout whose strides overlap) is refused at the instruction.

*im2col* (PTX ISA "im2col mode"; the tensor NWC, NHWC or NDHWC, dimension 0 the channels, the last N):
the map's bounding box spans ``[lower_i, dim_i - 1 + upper_i]`` of each spatial dimension; from the
instruction's filter base ``(w, h, d)`` and batch ``n`` the pixels follow in order, W fastest, each step
``elementStrides[i]``, back to the lower corner and one step of the next dimension past the upper one,
N last (past the last image the pixels lie outside the tensor). Each pixel is read at its base plus the
instruction's offsets (u16, their low 16, 8 or 5 bits for rank 3, 4, 5), its channels ``c ..
c + channels - 1`` a row of the shared tile (``pixels`` rows); elements outside the tensor are filled
as above; dimension 0's element stride is ignored (as CUDA says), one along N is refused at the
instruction. The traversal and the offsets match the outputs Triton's im2col tutorial records from a
GPU; the traversal stride follows the ISA's text (its example's figure was not at hand). A map of the
other mode than the instruction's ends the launch (LAUNCH_FAILED). Not implemented (refused when the
kernel is compiled): ``.im2col::w``/``::w::128``, ``.im2col_no_offs`` stores, ``.tile::gather4`` and
``.cta_group`` forms.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from protocol import CUresult

from ._cluster import RANK_SHIFT
from ._compiler import (
    Compiler,
    Getter,
    InstructionCompiler,
    Mask,
    Runner,
    UnsupportedError,
    access,
    active_rows,
)
from ._isa_atomic_vec import _half_combine
from ._isa_mbarrier import _barrier_address, _on_barriers, _Word
from ._memory import check_aligned, gather_device, scatter_device
from ._numeric import DTYPES
from ._parse import Addr, Imm, Instruction, Operand, Reg, Sym, TexAddr, Vec
from ._state import Frame, KernelFaultError
from ._tensor_map import IM2COL, MAP_BYTES, SWIZZLE_BYTES, TensorMap, TensorMapError, decode

__all__ = ["compile_prefetch_tensormap", "compile_tensor_copy", "is_tensor_copy"]

Rows = npt.NDArray[np.intp]
#: (frame, active rows) -> each row's 128 map bytes
MapReader = Callable[[Frame, Rows], list[bytes]]

_MAP_ALIGN = 64
#: decoded maps kept per instruction (a launch's maps, or a kernel's across launches, may all differ:
#: each is the guest's 128 bytes, so the cache is cleared when full rather than grown)
_MAP_CACHE = 256
_SHARED_ALIGN = 128
_DIMS = {f"{n}d": n for n in range(1, 6)}
#: the bits of an im2col offset the hardware takes, by rank (PTX ISA: [0, 2^16 - 1], [0, 2^8 - 1], [0, 31])
_OFFSET_BITS = {3: 16, 4: 8, 5: 5}
#: the NaN a NaN fill writes, by element size (f16/bf16, f32, f64: the canonical quiet NaNs)
_NAN_BYTES = {
    2: (0x7FFF).to_bytes(2, "little"),
    4: (0x7FFFFFFF).to_bytes(4, "little"),
    8: (0x7FFFFFFFFFFFFFFF).to_bytes(8, "little"),
}


def is_tensor_copy(ins: Instruction) -> bool:
    """``cp.async.bulk.tensor``, ``cp.async.bulk.prefetch.tensor`` and ``cp.reduce.async.bulk.tensor``."""
    mods = ins.mods
    return "tensor" in mods and mods[:2] in (("async", "bulk"), ("reduce", "async"))


def _bad_map(what: str, why: str) -> KernelFaultError:
    return KernelFaultError(CUresult.CUDA_ERROR_LAUNCH_FAILED, f"{what}: the tensor map {why}")


def _defines(ins: Instruction, reg: Reg) -> bool:
    """Whether ``ins`` writes ``reg``: its destination, or one register of a vector destination."""
    dst = ins.operands[0] if ins.operands else None
    return dst == reg or (isinstance(dst, Vec) and reg in dst.items)


def _definitions(c: Compiler, name: str) -> list[Instruction]:
    body = c.fn.body or []
    reg = Reg(name)
    return [ins for ins in body if isinstance(ins, Instruction) and _defines(ins, reg)]


def _param_offset(c: Compiler, operand: Operand, depth: int = 0) -> int | None:
    """The kernel-parameter offset ``operand`` holds when it is a kernel parameter's address: the
    parameter itself, or a register defined once by ``mov`` of it, through ``cvta.param`` and ``add`` of
    an immediate (a field of a parameter struct); else None."""
    if c.fn.kind != "entry" or depth > 4:
        return None
    if isinstance(operand, Sym):
        return c.param_offsets[operand.name] if operand.name in c.params else None
    if isinstance(operand, Addr) and isinstance(operand.base, Sym) and operand.base.name in c.params:
        return c.param_offsets[operand.base.name] + operand.offset
    if not isinstance(operand, Reg) or operand.negated or operand.name not in c.fn.registers:
        return None
    defs = _definitions(c, operand.name)
    if len(defs) != 1:
        return None
    ins = defs[0]
    ops = ins.operands
    if len(ops) == 2 and (ins.opcode == "mov" or (ins.opcode == "cvta" and ins.mods[:1] == ("param",))):
        return _param_offset(c, ops[1], depth + 1)
    if ins.opcode == "add" and len(ops) == 3 and isinstance(ops[2], Imm) and isinstance(ops[2].value, int):
        base = _param_offset(c, ops[1], depth + 1)  # a field of a parameter struct (CUTLASS's Params)
        return None if base is None else base + ops[2].value
    return None


def _map_reader(c: Compiler, handle: Operand, what: str) -> MapReader:
    """Each active thread's 128 map bytes: from the parameter block when the map is a kernel parameter,
    else through the checked generic path at the address the operand holds."""
    at = _param_offset(c, handle)
    if at is not None:
        if at % _MAP_ALIGN:
            raise UnsupportedError("a tensor map parameter that is not 64-byte aligned")
        end = at + MAP_BYTES

        def from_params(f: Frame, rows: Rows) -> list[bytes]:
            raw = f.batch.params[at:end]
            if len(raw) < MAP_BYTES:
                raise _bad_map(what, "lies past the end of the parameter block")
            return [bytes(raw)] * rows.size

        return from_params
    address = c.address_of(handle) if isinstance(handle, Sym) else c.read(handle, DTYPES["u64"])

    def from_memory(f: Frame, rows: Rows) -> list[bytes]:
        addrs = np.broadcast_to(np.asarray(address(f), dtype=np.uint64), (f.batch.n,))[rows]
        check_aligned(addrs, _MAP_ALIGN, "generic")
        words = MAP_BYTES // 8
        cols = (addrs[:, None] + np.arange(words, dtype=np.uint64) * np.uint64(8)).reshape(-1)
        raw = access(f, "generic", np.repeat(rows, words), cols, 8, None).reshape(rows.size, MAP_BYTES)
        return [row.tobytes() for row in raw]

    return from_memory


def _decoded(
    raw: bytes, rank: int, what: str, cache: dict[bytes, TensorMap], im2col: bool = False
) -> TensorMap:
    m = cache.get(raw)
    if m is None:
        try:
            m = decode(raw)
        except TensorMapError as exc:
            raise _bad_map(what, f"is not valid: {exc}") from None
        if len(cache) >= _MAP_CACHE:
            cache.clear()
        cache[raw] = m
    if m.rank != rank:
        raise _bad_map(what, f"has rank {m.rank}, the instruction {rank}")
    if (m.mode == IM2COL) != im2col:
        raise _bad_map(
            what,
            "is im2col, the instruction tiled" if not im2col else "is tiled, the instruction im2col",
        )
    return m


class _Box:
    """Where a box's elements are: per element (dimension 0 fastest) its global address and whether it
    lies inside the tensor (``inside`` None: every element does)."""

    def __init__(self, m: TensorMap, coords: list[int]) -> None:
        strides = (m.element_bytes, *m.strides)
        reach = [c + (n - 1) * e for c, n, e in zip(coords, m.loaded, m.element_strides, strict=True)]
        self.inside: npt.NDArray[np.bool_] | None = None
        if all(c >= 0 for c in coords) and all(r < d for r, d in zip(reach, m.dims, strict=True)):
            # the common box, wholly inside: the map's element offsets from the origin, plus the origin's
            origin = m.address + sum(c * s for c, s in zip(coords, strides, strict=True))
            self.addresses = _relative(m) + np.uint64(origin)
            return
        offset = np.zeros((), dtype=np.uint64)
        inside = np.ones((), dtype=np.bool_)
        for i in reversed(range(m.rank)):  # the outermost dimension first: C order, dimension 0 fastest
            at = coords[i] + np.arange(m.loaded[i], dtype=np.int64) * m.element_strides[i]
            ok = (at >= 0) & (at < m.dims[i])
            part = np.where(ok, at, 0).astype(np.uint64) * np.uint64(strides[i])  # in range: no overflow
            offset = offset[..., None] + part
            inside = inside[..., None] & ok
        self.addresses = (offset.reshape(-1) + np.uint64(m.address)).astype(np.uint64)
        self.inside = inside.reshape(-1)

    def picked(self) -> npt.NDArray[np.uint64]:
        """The addresses of the elements inside the tensor."""
        return self.addresses if self.inside is None else self.addresses[self.inside]


@functools.lru_cache(maxsize=64)
def _relative(m: TensorMap) -> npt.NDArray[np.uint64]:
    """Each box element's byte offset from the box's origin (read-only, shared by a map's copies)."""
    strides = (m.element_bytes, *m.strides)
    offset = np.zeros((), dtype=np.uint64)
    for i in reversed(range(m.rank)):
        steps = np.arange(m.loaded[i], dtype=np.uint64) * np.uint64(m.element_strides[i] * strides[i])
        offset = offset[..., None] + steps
    flat = offset.reshape(-1)
    flat.flags.writeable = False
    return flat


def _shared_words(m: TensorMap, base: int, what: str) -> npt.NDArray[np.uint64]:
    """The shared offsets of the box's 8-byte words, in box order (swizzled as the map says)."""
    span = SWIZZLE_BYTES[m.swizzle]
    strided = m.element_strides[0] != 1 and m.mode != IM2COL  # im2col ignores dimension 0's, as CUDA says
    if span and (m.inner_bytes != span or strided):
        raise KernelFaultError(
            CUresult.CUDA_ERROR_NOT_SUPPORTED,
            f"{what}: a swizzled box whose inner dimension is not the {span}-byte span (or is strided)",
            sticky=False,
        )
    if strided:
        raise KernelFaultError(
            CUresult.CUDA_ERROR_NOT_SUPPORTED, f"{what}: an element stride along dimension 0", sticky=False
        )
    words = np.uint64(base) + np.arange(m.box_bytes // 8, dtype=np.uint64) * np.uint64(8)
    if span:
        mask = np.uint64(span // 16 - 1)
        words ^= ((words >> np.uint64(7)) & mask) << np.uint64(4)
    return words


def _shared(f: Frame, row: int, words: npt.NDArray[np.uint64], data: npt.NDArray[np.uint8] | None) -> Any:
    owners = np.full(words.size, row, dtype=np.intp)
    if data is None:
        return access(f, "shared", owners, words, 8, None).reshape(-1)
    access(f, "shared", owners, words, 8, np.ascontiguousarray(data).reshape(-1, 8))
    return data


def _load(f: Frame, m: TensorMap, coords: list[int]) -> npt.NDArray[np.uint8]:
    """The box's bytes, out-of-tensor elements filled."""
    box = _Box(m, coords)
    size = m.element_bytes
    if box.inside is None:
        return gather_device(f.batch.memory, box.addresses, size, aligned=True).reshape(-1)
    fill = _NAN_BYTES[size] if m.oob_fill else bytes(size)
    out = np.tile(np.frombuffer(fill, dtype=np.uint8), (box.inside.size, 1))
    if box.inside.any():
        out[box.inside] = gather_device(f.batch.memory, box.picked(), size, aligned=True)
    return out.reshape(-1)


def _im2col_pixels(m: TensorMap, coords: list[int]) -> npt.NDArray[np.int64]:
    """The bounding-box positions of an im2col copy's pixels, in order: ``(pixels, rank - 1)``, dimension
    1 first and N last. From the instruction's position the traversal steps along W by its element
    stride, and past the box's last position (``dim - 1 + upper``) goes back to its first (``lower``)
    and steps the next dimension, N last (PTX ISA, "im2col mode")."""
    spatial = m.rank - 2
    lo, steps = m.lower, m.element_strides[1:-1]
    hi = [d - 1 + u for d, u in zip(m.dims[1:-1], m.upper, strict=True)]
    start = coords[1:-1]
    counts = [(h - low) // s + 1 for low, h, s in zip(lo, hi, steps, strict=True)]
    if all(low <= p <= h and (p - low) % s == 0 for p, low, h, s in zip(start, lo, hi, steps, strict=True)):
        # the start on the box's lattice: pixel k is the start's index in the box plus k, in mixed radix
        linear = 0
        for i in reversed(range(spatial)):
            linear = linear * counts[i] + (start[i] - lo[i]) // steps[i]
        index = linear + np.arange(m.pixels, dtype=np.int64)
        out = np.empty((m.pixels, spatial + 1), dtype=np.int64)
        for i in range(spatial):
            out[:, i] = lo[i] + (index % counts[i]) * steps[i]
            index //= counts[i]
        out[:, spatial] = coords[-1] + index
        return out
    rows, at, n = [], list(start), coords[-1]  # a start off the lattice: walk it
    for _ in range(m.pixels):
        rows.append((*at, n))
        for i in range(spatial + 1):
            if i == spatial:
                n += 1
                break
            at[i] += steps[i]
            if at[i] <= hi[i]:
                break
            at[i] = lo[i]
    return np.array(rows, dtype=np.int64)


def _load_im2col(f: Frame, m: TensorMap, coords: list[int], offsets: list[int]) -> npt.NDArray[np.uint8]:
    """An im2col copy's bytes: ``pixels`` rows of ``channels`` elements from channel ``coords[0]``, each
    pixel at its bounding-box position plus the instruction's im2col offsets; elements outside the
    tensor filled."""
    size = m.element_bytes
    where = _im2col_pixels(m, coords)
    where[:, :-1] += np.asarray(offsets, dtype=np.int64)
    ok = np.ones(m.pixels, dtype=np.bool_)
    row = np.zeros(m.pixels, dtype=np.uint64)
    for i in range(m.rank - 1):  # dimensions 1 .. rank - 1 (N last)
        at = where[:, i]
        inside = (at >= 0) & (at < m.dims[i + 1])
        row += np.where(inside, at, 0).astype(np.uint64) * np.uint64(m.strides[i])  # in range: no overflow
        ok &= inside
    channel = coords[0] + np.arange(m.channels, dtype=np.int64)
    valid = (channel >= 0) & (channel < m.dims[0])
    column = np.where(valid, channel, 0).astype(np.uint64) * np.uint64(size)
    inside_all = ok[:, None] & valid[None, :]
    fill = _NAN_BYTES[size] if m.oob_fill else bytes(size)
    out = np.tile(np.frombuffer(fill, dtype=np.uint8), (m.pixels * m.channels, 1))
    picked = inside_all.reshape(-1)
    if picked.any():
        addresses = (np.uint64(m.address) + row[:, None] + column[None, :]).reshape(-1)[picked]
        out[picked] = gather_device(f.batch.memory, addresses, size, aligned=True)
    return out.reshape(-1)


def _fetch(f: Frame, m: TensorMap, coords: list[int], offsets: list[int] | None) -> npt.NDArray[np.uint8]:
    """A load's bytes: the box of a tiled map, the pixels of an im2col one."""
    return _load(f, m, coords) if offsets is None else _load_im2col(f, m, coords, offsets)


def _store(f: Frame, m: TensorMap, coords: list[int], data: npt.NDArray[np.uint8]) -> None:
    box = _Box(m, coords)
    elements = data.reshape(-1, m.element_bytes)
    if box.inside is not None:
        elements = elements[box.inside]
    if elements.size:
        scatter_device(f.batch.memory, box.picked(), elements, aligned=True)


#: CUtensorMapDataType -> the NumPy type a reduction computes on (integers and f32; halves as bits)
_REDUCE_TYPES: dict[int, Any] = {
    2: np.uint32,
    3: np.int32,
    4: np.uint64,
    5: np.int64,
    6: np.uint16,
    7: np.float32,
    9: np.uint16,
}
_REDUCE_OPS: dict[str, frozenset[int]] = {
    "add": frozenset({2, 3, 4, 6, 7, 9}),
    "min": frozenset({2, 3, 4, 5, 6, 9}),
    "max": frozenset({2, 3, 4, 5, 6, 9}),
    "inc": frozenset({2}),
    "dec": frozenset({2}),
    "and": frozenset({2, 3, 4, 5}),
    "or": frozenset({2, 3, 4, 5}),
    "xor": frozenset({2, 3, 4, 5}),
}


def _combine(op: str, data_type: int, old: npt.NDArray[Any], b: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``op`` of the tensor's elements ``old`` and the box's ``b`` (``data_type``'s NumPy type)."""
    if data_type in (6, 9):
        return _half_combine(op, data_type == 9)(old, b, None)
    if op == "add":
        return np.asarray(np.add(old, b))
    if op in ("min", "max"):
        return np.asarray(np.minimum(old, b) if op == "min" else np.maximum(old, b))
    if op == "inc":
        return np.where(old >= b, 0, old + 1).astype(old.dtype)
    if op == "dec":
        return np.where((old == 0) | (old > b), b, old - 1).astype(old.dtype)
    return np.asarray({"and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor}[op](old, b))


def _reduce(
    f: Frame, m: TensorMap, coords: list[int], data: npt.NDArray[np.uint8], op: str, what: str
) -> None:
    if m.data_type not in _REDUCE_OPS[op]:
        raise KernelFaultError(
            CUresult.CUDA_ERROR_NOT_SUPPORTED, f"{what} on a tensor of data type {m.data_type}", sticky=False
        )
    box = _Box(m, coords)
    addrs = box.picked()
    if not addrs.size:
        return
    if np.unique(addrs).size != addrs.size:
        raise KernelFaultError(
            CUresult.CUDA_ERROR_NOT_SUPPORTED, f"{what}: a box that holds one address twice", sticky=False
        )
    dt = np.dtype(_REDUCE_TYPES[m.data_type])
    size = m.element_bytes
    elements = data.reshape(-1, size)
    b = np.ascontiguousarray(elements if box.inside is None else elements[box.inside]).view(dt).reshape(-1)
    old = np.ascontiguousarray(gather_device(f.batch.memory, addrs, size, aligned=True)).view(dt).reshape(-1)
    with np.errstate(over="ignore"):
        new = np.asarray(_combine(op, m.data_type, old, b), dtype=dt)
    scatter_device(
        f.batch.memory, addrs, np.ascontiguousarray(new).view(np.uint8).reshape(-1, size), aligned=True
    )


def compile_tensor_copy(c: Compiler, ins: Instruction) -> Runner:
    what = ins.text
    mods = [m for m in ins.mods if not m.startswith("L2::cache_hint")]
    hint = len(mods) != len(ins.mods)
    mods = [m for m in mods if m != "tile"]  # the default load mode: CUTLASS leaves it out
    reduce_op = ""
    if mods[0] == "reduce":  # cp.reduce.async.bulk.tensor: the operation, then as a store
        found = [x for x in mods if x in _REDUCE_OPS]
        if len(found) != 1:
            raise UnsupportedError("cp.reduce.async.bulk.tensor needs one operation")
        reduce_op = found[0]
        mods = [x for x in mods[1:] if x != reduce_op]  # as cp.async.bulk.tensor's store
    multicast = "multicast::cluster" in mods  # the box into every block of the cluster ctaMask names
    im2col = "im2col" in mods  # pixels of a bounding box, at the im2col offsets the instruction adds
    mods = [m for m in mods if m not in ("multicast::cluster", "im2col")]
    if any(m.startswith(("im2col", "multicast", "cta_group", "tile::")) for m in mods):
        raise UnsupportedError(f"{what} (im2col::w, im2col_no_offs, gather4 and CTA-group forms)")
    prefetch = mods[2] == "prefetch"
    rest = mods[4:] if prefetch else mods[3:]
    rank = _DIMS.get(rest[0], 0) if rest else 0
    forms = {
        "load": (["shared::cluster", "global", "mbarrier::complete_tx::bytes"], 3),
        "load_cta": (["shared::cta", "global", "mbarrier::complete_tx::bytes"], 3),
        "store": (["global", "shared::cta", "bulk_group"], 2),
        "prefetch": (["L2", "global"], 1),
    }
    kind = next(
        (k for k, (tail, _) in forms.items() if rest[1:] == tail and (k == "prefetch") == prefetch), None
    )
    ops = list(ins.operands)
    if hint and ops:
        c.read(ops.pop(), DTYPES["u64"])  # the cache policy: a hint
    if (multicast and kind != "load") or (im2col and (kind == "store" or reduce_op or rank < 3)):
        kind = None
    if not rank or kind is None or len(ops) != forms[kind][1] + multicast + im2col:
        raise UnsupportedError(
            "cp.async.bulk.tensor.Nd.shared::cluster.global{.tile,.im2col}.mbarrier::complete_tx::bytes "
            "[dst], [map, {c}], [mbar]{, {im2col offsets}}; cp.async.bulk.tensor.Nd.global.shared::cta.tile"
            ".bulk_group [map, {c}], [src]; cp.async.bulk.prefetch.tensor.Nd.L2.global{.tile,.im2col} "
            "[map, {c}]{, {im2col offsets}}"
        )
    tensor = ops[0] if kind in ("store", "prefetch") else ops[1]
    if not isinstance(tensor, TexAddr) or len(tensor.coords.items) != rank:
        raise UnsupportedError(f"[map, {{{rank} coordinates}}]")
    read_map = _map_reader(c, tensor.handle, what)
    coord_getters: list[Getter] = [c.read(x, DTYPES["s32"]) for x in tensor.coords.items]
    shared_at: Getter | None = None
    mbar: Getter | None = None
    if kind in ("load", "load_cta"):
        shared_at = c.address(ops[0], "shared")[0]
        mbar = _barrier_address(c, ins, ops[2])
    elif kind == "store":
        shared_at = c.address(ops[1], "shared")[0]
    offset_getters: list[Getter] = []
    if im2col:  # {o_W, o_H, o_D}: one u16 per spatial dimension, after the barrier (a prefetch's map)
        vec = ops[1] if kind == "prefetch" else ops[3]
        if not isinstance(vec, Vec) or len(vec.items) != rank - 2:
            raise UnsupportedError(f"{what}: {{{rank - 2} im2col offsets}}")
        offset_getters = [c.read(x, DTYPES["u16"]) for x in vec.items]
    offset_mask = (1 << _OFFSET_BITS.get(rank, 16)) - 1
    cta_mask = c.read(ops[3 + im2col], DTYPES["u16"]) if multicast else None
    cache: dict[bytes, TensorMap] = {}

    def per_row(f: Frame, rows: Rows, values: list[Getter]) -> list[npt.NDArray[Any]]:
        n = f.batch.n
        return [np.broadcast_to(np.asarray(g(f)), (n,))[rows] for g in values]

    def run(f: Frame, m: Mask | None) -> None:
        rows = active_rows(m, f.batch.n)
        if not rows.size:
            return
        maps = [_decoded(raw, rank, what, cache, im2col) for raw in read_map(f, rows)]
        coords = np.stack(per_row(f, rows, coord_getters), axis=1).astype(np.int64)
        offsets: list[list[int]] | None = None
        if im2col:
            read = per_row(f, rows, offset_getters)
            offsets = (np.stack(read, axis=1).astype(np.int64) & offset_mask).tolist()
            if any(tm.element_strides[-1] != 1 for tm in maps):
                raise KernelFaultError(
                    CUresult.CUDA_ERROR_NOT_SUPPORTED, f"{what}: an element stride along N", sticky=False
                )
        if shared_at is None:
            return  # a prefetch: the maps are checked, memory is not touched
        bases = per_row(f, rows, [shared_at])[0].astype(np.uint64)
        check_aligned(bases, _SHARED_ALIGN, "shared")
        width = f.batch.shared.shape[1]
        sizes = np.zeros(f.batch.n, dtype=np.int64)
        if cta_mask is not None and mbar is not None:
            _multicast(f, rows, maps, coords, offsets, bases, per_row(f, rows, [cta_mask])[0], mbar, what)
            return
        for j, row in enumerate(rows.tolist()):
            tm = maps[j]
            if tm.box_bytes > width:
                raise KernelFaultError(
                    CUresult.CUDA_ERROR_ILLEGAL_ADDRESS,
                    f"{what}: a box of {tm.box_bytes} bytes, past the block's {width} bytes of shared memory",
                )
            words = _shared_words(tm, int(bases[j]), what)
            box = coords[j].tolist()
            if reduce_op:
                _reduce(f, tm, box, _shared(f, row, words, None), reduce_op, what)
            elif kind == "store":
                _store(f, tm, box, _shared(f, row, words, None))
            else:
                _shared(f, row, words, _fetch(f, tm, box, None if offsets is None else offsets[j]))
            sizes[row] = tm.box_bytes
            f.batch.steps += 1
        if mbar is not None:
            _complete(f, m, mbar, sizes, what)

    return run


def _complete(f: Frame, m: Mask | None, mbar: Getter, sizes: npt.NDArray[np.int64], what: str) -> None:
    """Each active thread's barrier's ``complete_tx`` with its row's bytes (``sizes``, by row)."""

    def step(word: _Word, tx: int) -> None:
        word.transact(-tx, what)
        word.settle()

    _on_barriers(f, m, mbar, lambda f: sizes, step, what)


def _multicast(
    f: Frame,
    rows: Rows,
    maps: list[TensorMap],
    coords: npt.NDArray[np.int64],
    offsets: list[list[int]] | None,
    bases: npt.NDArray[np.uint64],
    masks: npt.NDArray[Any],
    mbar: Getter,
    what: str,
) -> None:
    """``.multicast::cluster``: each thread's box into the same shared offset of every block of its
    cluster that its ``ctaMask`` names (bit r: rank r), and the ``complete_tx`` on each of those blocks'
    barriers at the barrier's offset; a rank the cluster does not have is ILLEGAL_ADDRESS."""
    n = f.batch.n
    size = f.batch.cluster.size if f.batch.cluster is not None else 1
    width = f.batch.shared.shape[1]
    offset_mask = np.uint64((1 << RANK_SHIFT) - 1)
    by_rank: dict[int, npt.NDArray[np.int64]] = {}
    for j, row in enumerate(rows.tolist()):
        tm, mask = maps[j], int(masks[j])
        if mask >> size:
            raise KernelFaultError(
                CUresult.CUDA_ERROR_ILLEGAL_ADDRESS,
                f"{what}: ctaMask {mask:#x} names a rank past {size} blocks",
            )
        if tm.box_bytes > width:
            raise KernelFaultError(
                CUresult.CUDA_ERROR_ILLEGAL_ADDRESS,
                f"{what}: a box of {tm.box_bytes} bytes, past the block's {width} bytes of shared memory",
            )
        words = _shared_words(tm, int(bases[j]), what) & offset_mask
        data = _fetch(f, tm, coords[j].tolist(), None if offsets is None else offsets[j])
        for r in (r for r in range(size) if mask >> r & 1):
            tag = np.uint64(r + 1 << RANK_SHIFT) if size > 1 else np.uint64(0)
            _shared(f, row, words | tag, data)
            by_rank.setdefault(r, np.zeros(n, dtype=np.int64))[row] = tm.box_bytes
        f.batch.steps += 1
    for r, sizes in sorted(by_rank.items()):
        tag = np.uint64(r + 1 << RANK_SHIFT) if size > 1 else np.uint64(0)

        def ranked(f: Frame, tag: np.uint64 = tag) -> Any:
            return (np.asarray(mbar(f), dtype=np.uint64) & offset_mask) | tag

        _complete(f, sizes > 0, ranked, sizes, what)


def compile_prefetch_tensormap(c: Compiler, ins: Instruction) -> Runner:
    """``prefetch{.const,.param,.global}.tensormap [a]``: a hint; the operand is checked for form only."""
    space = next((m for m in ins.mods if m in ("const", "param", "global")), "generic")
    if [m for m in ins.mods if m != space] != ["tensormap"] or len(ins.operands) != 1:
        raise UnsupportedError("prefetch{.const,.param,.global}.tensormap [a]")
    if _param_offset(c, ins.operands[0]) is None and not isinstance(ins.operands[0], Addr):
        raise UnsupportedError("prefetch.tensormap [a]")
    return lambda f, m: None


def with_tensor_copies(
    cp: InstructionCompiler, prefetch: InstructionCompiler
) -> dict[str, InstructionCompiler]:
    """``cp`` and ``prefetch`` that serve this module's forms and hand the rest on."""

    def cp_(c: Compiler, ins: Instruction) -> Runner:
        return compile_tensor_copy(c, ins) if is_tensor_copy(ins) else cp(c, ins)

    def prefetch_(c: Compiler, ins: Instruction) -> Runner:
        return compile_prefetch_tensormap(c, ins) if "tensormap" in ins.mods else prefetch(c, ins)

    return {"cp": cp_, "prefetch": prefetch_}
