"""The instruction table: which compiler handles each opcode, and what is supported (for the docs).

:data:`SUPPORTED` says, per opcode, which forms the engine implements; ``docs/ptx-engine.md`` is
generated from it (``python -m executor.ptx._docs``) and a test keeps the two equal. Anything not
implemented answers ``CUDA_ERROR_NOT_SUPPORTED`` at a kernel's first launch, naming it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._compiler import Compiler, InstructionCompiler, Runner, UnsupportedError
from ._isa_arith import ARITHMETIC
from ._isa_atomic import ATOMIC as SCALAR_ATOMIC
from ._isa_atomic_vec import with_vector_atomics
from ._isa_bits import BITS
from ._isa_carry import CARRY, compile_with_carry
from ._isa_cluster import CLUSTER
from ._isa_fp8 import FP8_PAIRS, cvt_fp8
from ._isa_mbarrier import MBARRIER, compile_async, compile_cp
from ._isa_memory import MEMORY
from ._isa_mma884 import compile_mma884, is_mma884
from ._isa_pack import PACKED_HALVES, cvt_pack
from ._isa_set import SET
from ._isa_simd import VIDEO, compile_pairs16
from ._isa_tensor import TENSOR
from ._isa_texture import TEXTURE
from ._isa_tma import with_tensor_copies
from ._isa_warp import WARP
from ._isa_wmma import WMMA, cvt_tf32
from ._numeric import DTYPES
from ._parse import Instruction

__all__ = ["COMPILERS", "SUPPORTED"]

#: atom and red: the vector and packed-half forms (_isa_atomic_vec), the rest _isa_atomic
ATOMIC = with_vector_atomics(SCALAR_ATOMIC)

#: what the engine implements: opcode -> the forms (types and modifiers), for the docs
SUPPORTED: dict[str, str] = {
    "abs": "s16 s32 s64; f32 (.ftz), f64; f16 f16x2; bf16 bf16x2",
    "activemask": "b32",
    "add": "u/s 16 32 64 (.sat s32); f32 (.rn .rz .rm .rp .ftz .sat), f64 (.rn .rz .rm .rp); "
    "f16 f16x2 (.rn .ftz .sat); bf16 bf16x2 (.rn); u16x2 s16x2 (lane by lane, wrapping); .cc (carry out) "
    "on u32 s32 u64 s64",
    "and": "b16 b32 b64 pred",
    "atom": "global, shared (::cta, ::cluster), generic; add (u32 s32 u64 f32 f64), min max (u32 s32 u64 "
    "s64), and or xor (b32 b64), exch (b32 b64), cas (b16 b32 b64), inc dec (u32); any .sem/.scope; "
    "add.noftz f16 f16x2 bf16 bf16x2 (rounded once to nearest even); global (or generic) vectors, each "
    "element its own atomic: add .v2 .v4 f32, add min max .noftz .v2 .v4 .v8 f16 bf16 and .v2 .v4 f16x2 "
    "bf16x2",
    "bar": "bar.sync / bar.sync.aligned / barrier.sync with a barrier id; with a thread count too, and "
    "bar.arrive / barrier.arrive with one (named barriers: a waiting path lets its sibling path run); "
    "bar.red.popc.u32, bar.red.and.pred, bar.red.or.pred; bar.warp.sync; barrier.cluster.arrive (.release "
    ".relaxed) and barrier.cluster.wait (.acquire), .aligned: every non-exited thread of the cluster",
    "barrier": "as bar",
    "bfe": "u32 s32 u64 s64",
    "bfi": "b32 b64",
    "bfind": "u32 s32 u64 s64 (.shiftamt)",
    "addc": "u32 s32 u64 s64, with the carry in (.cc: and out)",
    "bmsk": "clamp wrap, b32",
    "bra": "bra, bra.uni, with a predicate",
    "brev": "b32 b64",
    "call": "call / call.uni to a .func defined in the module, arguments and results through .param; "
    "to the extern vprintf (device printf: C's conversions d i o u x X c s f F e E g G a A p %, flags, "
    "width, precision, h hh l ll z; bounded output logged per launch)",
    "clz": "b32 b64",
    "cnot": "b16 b32 b64",
    "copysign": "f32 f64",
    "cos": "approx.f32 (.ftz)",
    "cp": "cp.async.{ca,cg}.shared.global with cp-size and src-size (executed at once), commit_group, "
    "wait_group, wait_all; cp.async.mbarrier.arrive (.noinc); cp.async.bulk global to shared::cta/cluster "
    "with .mbarrier::complete_tx::bytes, shared::cta to shared::cluster (another block's) with it too, and "
    "shared::cta to global with .bulk_group (executed at once, "
    ".L2::cache_hint), cp.async.bulk.commit_group / wait_group (.read), cp.async.bulk.prefetch.L2; "
    "TMA: cp.async.bulk.tensor.1d-5d (.tile or no mode, .L2::cache_hint) global to shared::cluster/::cta "
    "with "
    ".mbarrier::complete_tx::bytes and shared::cta to global with .bulk_group (a tensor map of "
    "cuTensorMapEncodeTiled, checked at each instruction: out-of-tensor elements zero or NaN, element "
    "strides, 32B/64B/128B swizzle), cp.reduce.async.bulk.tensor (add min max inc dec and or xor, by the "
    "map's type), .multicast::cluster loads (the box and the complete_tx into each block ctaMask names), "
    "cp.async.bulk.prefetch.tensor.L2 (a hint); im2col loads and prefetches 3d-5d (a map of "
    "cuTensorMapEncodeIm2col: pixels of a bounding box at the im2col offsets, traversal strides); not "
    ".im2col::w, .im2col_no_offs, .tile::gather4",
    "cvt": "integer to integer (.sat from up to 32-bit sources); float to float (f32<->f64 with .rn .rz .rm "
    ".rp, .rni .rzi .rmi .rpi to an integral value, .ftz, .sat); integer to float (.rn .rz .rm .rp; 64-bit "
    "integers .rn only); float to integer (.rni .rzi .rmi .rpi, saturating, NaN to 0); f16 from f32, f64 "
    "and 32-bit integers (.rn .rz .rm .rp), bf16 from f32 (.rn .rz .rm .rp), f16 and bf16 to f32, f64 and "
    "integers; tf32 from f32 (.rna .rn .rz, .satfinite); e4m3x2 e5m2x2 from f32 pairs and f16x2 (.rn "
    ".satfinite .relu), f16x2 from e4m3x2 e5m2x2 (.rn .relu); f16x2 and bf16x2 from two f32 (.rn .rz, .relu "
    ".satfinite)",
    "cvta": "global shared local const param, to and from generic, u64",
    "dp2a": "lo hi, u32/s32 operands",
    "dp4a": "u32/s32 operands",
    "div": "u/s 16 32 64; f32 (.rn .rz .rm .rp .approx .full, .ftz), f64 (.rn)",
    "elect": "sync, with the optional predicate destination: the lowest active lane in the member mask",
    "ex2": "approx.f32 (.ftz)",
    "exit": "",
    "fence": "every form (a no-op: the engine is sequentially consistent)",
    "fma": "f32 (.rn .rz .rm .rp, .ftz .sat), f64 (.rn); f16 f16x2 (.rn .ftz .sat); bf16 bf16x2 (.rn)",
    "griddepcontrol": "launch_dependents, wait (no-ops: launches run in stream order, each to completion)",
    "ld": "global, shared, local, const, param, generic; .v2 .v4; u/s/b 8-64, f32 f64; "
    "cache and ordering hints ignored",
    "ldu": "as ld.global",
    "ldmatrix": "sync.aligned.m8n8 .x1 .x2 .x4 (.trans) .shared.b16",
    "getctarank": "u32 u64, generic or .shared::cluster: the rank of the block whose shared memory an "
    "address names",
    "lg2": "approx.f32 (.ftz)",
    "lop3": "b32 with an immediate LUT",
    "mapa": "u32 u64, generic or .shared::cluster: another block's address in the cluster (distributed "
    "shared memory, reached by ld/st/atom through generic or .shared::cluster addresses)",
    "madc": "lo hi, u32 s32 u64 s64, with the carry in (.cc: and out)",
    "match": "any.sync all.sync, b32 b64",
    "mad": "lo hi wide for u/s 16 32 64; f32 f64 as fma; lo hi .cc (carry out) on u32 s32 u64 s64",
    "max": "u/s 16 32 64; f32 (.ftz, .NaN), f64; f16 f16x2 (.ftz .NaN); bf16 bf16x2 (.NaN); u16x2 s16x2 "
    "(.relu s16x2)",
    "mbarrier": "init inval arrive (count, .expect_tx, .noComplete) arrive_drop expect_tx complete_tx "
    "test_wait try_wait (.parity; answered at once) pending_count, .b64 in shared memory (.shared, "
    "::cta, ::cluster of the block itself, or generic); .release .acquire .relaxed .cta .cluster",
    "membar": "every form (a no-op: the engine is sequentially consistent)",
    "min": "u/s 16 32 64; f32 (.ftz, .NaN), f64; f16 f16x2 (.ftz .NaN); bf16 bf16x2 (.NaN); u16x2 s16x2 "
    "(.relu s16x2)",
    "mma": "sync.aligned.row.col: f16 m16n8k8 m16n8k16 (f32.f16.f16.f32, f16.f16.f16.f16); bf16 m16n8k8 "
    "m16n8k16 (f32); tf32 m16n8k4 m16n8k8 (f32); f64 m8n8k4 m16n8k4 m16n8k8 m16n8k16; s8/u8 (mixed too) "
    "m8n8k16 m16n8k16 m16n8k32 and s4/u4 m8n8k32 m16n8k32 m16n8k64 (s32, .satfinite); e4m3/e5m2 m16n8k32 "
    "(f32); b1 m8n8k128 m16n8k128 m16n8k256 (.xor.popc .and.popc); f16 m8n8k4 (sm_70's quad-pair shape: "
    "row/col A and B, f16.f16.f16.f16, f32.f16.f16.f32, f32.f16.f16.f16). Not mma.sp (sparse)",
    "movmatrix": "sync.aligned.m8n8.trans.b16",
    "mov": "every scalar type, special registers, addresses of variables, vector pack/unpack",
    "mul": "lo hi wide for u/s 16 32 64; f32 (.rn .rz .rm .rp .ftz .sat), f64 (.rn .rz .rm .rp); "
    "f16 f16x2 (.rn .ftz .sat); bf16 bf16x2 (.rn)",
    "nanosleep": "u32 (sleeps 0 ns: within the ISA's [0, 2t])",
    "neg": "s16 s32 s64; f32 (.ftz), f64; f16 f16x2; bf16 bf16x2",
    "not": "b16 b32 b64 pred",
    "or": "b16 b32 b64 pred",
    "popc": "b32 b64",
    "prmt": "b32 (default mode)",
    "prefetch": ".global .local (or generic) .L1 .L2, and prefetchu.L1: no effect, no fault (a hint); "
    ".tensormap (.const .param .global or generic): a hint",
    "prefetchu": "as prefetch",
    "rcp": "approx.f32 (.ftz), rn.f32, rn.f64, approx.ftz.f64",
    "red": "as atom, without a result; red.async.relaxed.cluster.shared::cluster.mbarrier::complete_tx::"
    "bytes (the reduction and its completion at once)",
    "redux": "sync: add min max (s32 u32), and or xor (b32)",
    "rem": "u/s 16 32 64",
    "ret": "",
    "rsqrt": "approx.f32 (.ftz), approx.f64",
    "selp": "every scalar type",
    "set": "CmpOp (as setp) with .and .or .xor and .ftz: .u32 .s32 .f32 from integers, f32, f64; .u32 .f16x2 "
    ".bf16x2 from f16x2 and bf16x2, half by half",
    "setp": "eq ne lt le gt ge lo ls hi hs (integers), and equ neu ltu leu gtu geu num nan (floats, f16 and "
    "bf16 too); .and .or .xor with a predicate; two destinations",
    "shfl": "sync: up down bfly idx, b32, with the optional predicate destination",
    "shf": "l r, wrap clamp, b32",
    "shl": "b16 b32 b64",
    "shr": "b16 b32 b64 u16 u32 u64 s16 s32 s64",
    "sad": "u/s 16 32 64",
    "sin": "approx.f32 (.ftz)",
    "sqrt": "approx.f32 (.ftz), rn.f32, rn.f64",
    "st": "global, shared, local, param, generic; .v2 .v4; u/s/b 8-64, f32 f64; hints ignored; "
    "st.async{.weak}.shared::cluster.mbarrier::complete_tx::bytes (the store and its completion at once)",
    "stmatrix": "sync.aligned.m8n8 .x1 .x2 .x4 (.trans) .shared.b16",
    "sub": "as add (.cc: the borrow out)",
    "subc": "u32 s32 u64 s64, with the borrow in (.cc: and out)",
    "tanh": "approx.f32",
    "istypep": "texref samplerref surfref: whether a handle is one of the VM's texture or surface objects "
    "(there are no independent samplers: samplerref is false)",
    "suld": "b, 1d 2d 3d a1d a2d, b8 b16 b32 b64, .v2 .v4, .trap .clamp .zero; x in bytes; object handles",
    "suq": "width height depth channel_data_type channel_order array_size, b32",
    "sust": "b (as suld), and p (formatted: f32 or s32/u32 components to the surface's format, integers "
    "saturated; .b32 elements)",
    "tex": "1d 2d 3d a1d a2d cube acube, .v4 f32 s32 u32 destinations, f32 coordinates (s32 on 1d: "
    "tex1Dfetch); .level and .grad (one mip level: level 0); point and linear filtering, wrap clamp "
    "mirror border, normalized coordinates, normalized-float and sRGB reads; object handles",
    "tld4": "r g b a, 2d, .v4.f32.f32: the bilinear footprint counter-clockwise from the lower left",
    "txq": "width height depth channel_data_type channel_order normalized_coords array_size "
    "num_mipmap_levels num_samples force_unnormalized_coords filter_mode addr_mode_0..2, b32",
    "trap": "ends the launch: CUDA_ERROR_LAUNCH_FAILED, sticky",
    "vabsdiff2": "as vabsdiff4, on 16-bit halves",
    "vabsdiff4": "u32/s32 operands, with .add (the sum into c) or without; no lane selectors, masks or .sat",
    "vote": "sync: all any uni ballot",
    "wmma": "load.{a,b,c} store.d mma, .sync.aligned, row/col, global shared generic, with a stride: f16 "
    "m16n16k16 m32n8k16 m8n32k16 (f16/f32 accumulators, any pair), bf16 and s8/u8 on those shapes (f32, s32 "
    "with .satfinite), tf32 m16n16k8, f64 m8n8k4 (.rn), s4/u4 m8n8k32, b1 m8n8k128 (.xor.popc .and.popc); "
    "the fragment layout is the engine's own (the ISA leaves it unspecified)",
    "xor": "b16 b32 b64 pred",
}


def _nanosleep(c: Compiler, ins: Instruction) -> Runner:
    """``nanosleep.u32 t``: the ISA promises a sleep in [0, 2t] ns; the engine's is 0."""
    if ins.mods != ("u32",) or len(ins.operands) != 1:
        raise UnsupportedError("nanosleep.u32 t")
    c.read(ins.operands[0], DTYPES["u32"])  # a register of the right type, or an immediate
    return lambda f, m: None


def _prefetch(c: Compiler, ins: Instruction) -> Runner:
    """``prefetch{.global,.local}.{L1,L2}`` / ``prefetchu.L1``: a cache hint, no effect on memory and
    no fault for any address (as on a GPU); only the address operand is checked for form."""
    space = next((m for m in ins.mods if m in ("global", "local")), "generic")
    levels = [m for m in ins.mods if m not in ("global", "local")]
    if len(levels) != 1 or not levels[0].startswith(("L1", "L2")) or len(ins.operands) != 1:
        raise UnsupportedError("prefetch{.global,.local}.{L1,L2} [a]")
    c.address(ins.operands[0], space)
    return lambda f, m: None


def _mma(c: Compiler, ins: Instruction) -> Runner:
    """``mma``: sm_70's quad-pair shape m8n8k4 with f16 inputs (``_isa_mma884``), the rest ``_isa_tensor``."""
    if is_mma884(ins):
        return compile_mma884(c, ins)
    return TENSOR["mma"](c, ins)


def _cp(c: Compiler, ins: Instruction) -> Runner:
    """``cp``: bulk copies and ``cp.async.mbarrier.arrive`` (``_isa_mbarrier``), the rest ``_isa_memory``."""
    return compile_cp(c, ins, MEMORY["cp"])


def _st(c: Compiler, ins: Instruction) -> Runner:
    """``st``: ``st.async`` into a cluster's shared memory (``_isa_mbarrier``), the rest ``_isa_memory``."""
    if "async" in ins.mods:
        return compile_async(c, ins, MEMORY["st"])
    return MEMORY["st"](c, ins)


def _red(c: Compiler, ins: Instruction) -> Runner:
    """``red``: ``red.async`` (``_isa_mbarrier``), the rest ``_isa_atomic``."""
    if "async" in ins.mods:
        return compile_async(c, ins, ATOMIC["red"])
    return ATOMIC["red"](c, ins)


def _packed16(opcode: str) -> InstructionCompiler:
    """``add sub min max mad``: with ``.cc`` (carries, ``_isa_carry``), on ``.u16x2``/``.s16x2``
    (``_isa_simd``), the rest ``_isa_arith``."""

    def compile_(c: Compiler, ins: Instruction) -> Runner:
        if "cc" in ins.mods:
            return compile_with_carry(c, ins, ARITHMETIC[opcode])
        if opcode == "mad":
            return ARITHMETIC[opcode](c, ins)
        return compile_pairs16(c, ins, ARITHMETIC[opcode])

    return compile_


def _cvt(c: Compiler, ins: Instruction) -> Runner:
    """``cvt``: conversions to tf32 (a tensor-core type, ``_isa_wmma``), to and from FP8 pairs
    (``_isa_fp8``), two f32 to f16x2/bf16x2 (``_isa_pack``), the rest ``_isa_arith``."""
    if "tf32" in ins.mods:
        return cvt_tf32(c, ins)
    if any(m in FP8_PAIRS for m in ins.mods):  # pairs of FP8 values (_isa_fp8)
        return cvt_fp8(c, ins)
    if "f32" in ins.mods and any(m in PACKED_HALVES for m in ins.mods):  # two f32 to a pair (_isa_pack)
        return cvt_pack(c, ins)
    return ARITHMETIC["cvt"](c, ins)


COMPILERS: Mapping[str, InstructionCompiler] = {
    **ARITHMETIC,
    **MEMORY,
    **ATOMIC,
    **WARP,
    **TENSOR,
    **WMMA,
    **MBARRIER,
    **CLUSTER,
    **SET,
    **BITS,
    **VIDEO,
    **CARRY,
    **TEXTURE,
    **{opcode: _packed16(opcode) for opcode in ("add", "sub", "min", "max", "mad")},
    "cvt": _cvt,
    "red": _red,
    "st": _st,
    "mma": _mma,
    "nanosleep": _nanosleep,
    "prefetchu": _prefetch,
    **with_tensor_copies(_cp, _prefetch),  # TMA's tensor copies and tensormap prefetches (_isa_tma)
}
