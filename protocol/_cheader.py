"""The C header for guests, generated from the layout and the call catalog.

``render_c_header()`` returns the text of ``protocol/include/vgpu_protocol.h``; ``python -m protocol``
writes it (and ``--check`` fails when the checked-in copy has drifted). Every struct is written with
explicit padding members so it has the same layout under any C ABI whose fixed-width types have their
natural size, and every size and offset is pinned by a ``static_assert``.

The tables of header, SQE and CQE fields below (their C types, who writes them, what they mean) are
shared with the documentation generator (``_docgen.py``); the tests check them against the
``struct`` formats that the codec really uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Literal

from ._catalog import CALLS, CallSpec
from ._enums import (
    CublasComputeType,
    CublasDiagType,
    CublasFillMode,
    CublasOperation,
    CublasSideMode,
    CudaDataType,
    FunctionAttribute,
    GranularityOption,
    MemAccessFlags,
    StreamCaptureMode,
    StreamCaptureStatus,
)
from ._frames import MAX_INLINE_ARGS, MAX_INLINE_RESULTS, CompleteFlags, SubmitFlags
from ._layout import (
    ALL_FEATURES,
    ARENA_ALIGN,
    CHANNEL_MAGIC,
    CQE_SIZE,
    DEFAULT_LEASE_MS,
    HEADER_SIZE,
    MAGIC,
    MAX_CHANNELS,
    MAX_REGION,
    MAX_RING_ENTRIES,
    MIN_ARENA,
    MIN_LEASE_MS,
    MIN_REGION,
    SQE_SIZE,
    VERSION_MAJOR,
    VERSION_MINOR,
    ChannelField,
    ChannelState,
    CloseReason,
    DeviceState,
    Features,
    RegionField,
)
from ._status import CublasStatus, CUresult
from ._wire import FieldLayout, WireModel, layout_of

__all__ = [
    "CHANNEL_FIELDS",
    "CQE_FIELDS",
    "C_ENUMS",
    "REGION_FIELDS",
    "SQE_FIELDS",
    "CEnum",
    "FrameField",
    "HeaderFieldInfo",
    "c_struct_name",
    "render_c_header",
]

Writer = Literal["host (lay-out)", "host", "guest"]

C_SIZES: Final[dict[str, int]] = {
    "uint8_t": 1, "uint16_t": 2, "uint32_t": 4, "uint64_t": 8,
    "int8_t": 1, "int16_t": 2, "int32_t": 4, "int64_t": 8, "float": 4, "double": 8,
}

_C_KEYWORDS: Final = frozenset((
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "_Alignas", "_Alignof", "_Atomic",
    "_Bool", "_Complex", "_Generic", "_Imaginary", "_Noreturn", "_Static_assert",
    "_Thread_local", "bool", "true", "false",
))


@dataclass(frozen=True, slots=True)
class HeaderFieldInfo:
    """One word of a header (the region's or a channel's): where it lies, its C type, who writes it,
    what it means."""

    field: RegionField | ChannelField
    ctype: str
    writer: Writer
    meaning: str

    @property
    def name(self) -> str:
        return self.field.name.lower()

    @property
    def offset(self) -> int:
        return int(self.field)

    @property
    def size(self) -> int:
        return C_SIZES[self.ctype]


_H = HeaderFieldInfo
_R = RegionField
_C = ChannelField

#: The region header (page 0) in offset order. Written by the host once when it lays the region out
#: (``device_state`` last), then only ``device_state`` and ``epoch`` change.
REGION_FIELDS: Final[tuple[HeaderFieldInfo, ...]] = (
    _H(_R.MAGIC, "uint64_t", "host (lay-out)", '`VGPU_MAGIC`, the bytes "VGPUMED\\0"'),
    _H(_R.VERSION_MAJOR, "uint16_t", "host (lay-out)", "protocol major version; must equal the guest's (2)"),
    _H(_R.VERSION_MINOR, "uint16_t", "host (lay-out)", "protocol minor version; additions only"),
    _H(_R.HEADER_SIZE, "uint32_t", "host (lay-out)", "bytes of header (4096)"),
    _H(_R.REGION_SIZE, "uint64_t", "host (lay-out)", "bytes of the whole region, a power of two"),
    _H(_R.FEATURES, "uint64_t", "host (lay-out)", "`VGPU_FEATURE_*` bits the host offers"),
    _H(_R.VM_ID, "uint32_t", "host (lay-out)", "the VM's id in the mediator's configuration"),
    _H(_R.CHANNEL_COUNT, "uint32_t", "host (lay-out)", "channels in the region, 1..256"),
    _H(_R.CHANNEL_SIZE, "uint64_t", "host (lay-out)", "bytes per channel block, a multiple of 4096"),
    _H(_R.CHANNELS_OFFSET, "uint64_t", "host (lay-out)",
       "region offset of channel 0; channel c starts at channels_offset + c × channel_size"),
    _H(_R.LEASE_MS, "uint32_t", "host (lay-out)",
       "an open channel whose `heartbeat` stands still this long is closed by the host"),
    _H(_R.VECTORS, "uint32_t", "host (lay-out)",
       "doorbell vectors the host listens on; channel c kicks vector c mod vectors"),
    _H(_R.PINNED_OFFSET, "uint64_t", "host (lay-out)",
       "region offset of the pinned area (guest pinned host memory; 2.1), 4096-aligned, after the channels"),
    _H(_R.PINNED_SIZE, "uint64_t", "host (lay-out)",
       "bytes of the pinned area, a multiple of 4096; 0: no pinned area (a 2.0 host's region reads 0)"),
    _H(_R.DEVICE_STATE, "uint32_t", "host", "`enum vgpu_device_state`; written last when laying out"),
    _H(_R.EPOCH, "uint32_t", "host", "+1 at every re-layout (reset): every channel's context is gone"),
    _H(_R.HOST_PEER_ID, "uint32_t", "host", "the host's ivshmem peer id (doorbell = id << 16 | vector)"),
)

#: A channel header (the first 4096 bytes of a channel block; offsets relative to the block) in
#: offset order. The ring words sit where a version-1 region had them.
CHANNEL_FIELDS: Final[tuple[HeaderFieldInfo, ...]] = (
    _H(_C.MAGIC, "uint64_t", "host (lay-out)", '`VGPU_CHANNEL_MAGIC`, the bytes "VGPUCHN\\0"'),
    _H(_C.VERSION_MAJOR, "uint16_t", "host (lay-out)", "= the region header's"),
    _H(_C.VERSION_MINOR, "uint16_t", "host (lay-out)", "= the region header's"),
    _H(_C.HEADER_SIZE, "uint32_t", "host (lay-out)", "bytes of channel header (4096)"),
    _H(_C.REGION_SIZE, "uint64_t", "host (lay-out)", "bytes of this channel block (= `channel_size`)"),
    _H(_C.FEATURES, "uint64_t", "host (lay-out)", "= the region header's"),
    _H(_C.VM_ID, "uint32_t", "host (lay-out)", "the VM's id"),
    _H(_C.SQ_ENTRIES, "uint32_t", "host (lay-out)", "submission ring entries, a power of two ≤ 65536"),
    _H(_C.CQ_ENTRIES, "uint32_t", "host (lay-out)", "completion ring entries, a power of two ≤ 65536"),
    _H(_C.SQE_SIZE, "uint32_t", "host (lay-out)", "bytes per submission entry (192)"),
    _H(_C.CQE_SIZE, "uint32_t", "host (lay-out)", "bytes per completion entry (64)"),
    _H(_C.MAX_INLINE_ARGS, "uint32_t", "host (lay-out)", "bytes of inline arguments in an SQE (160)"),
    _H(_C.SQ_OFFSET, "uint64_t", "host (lay-out)", "block offset of the submission ring (4096-aligned)"),
    _H(_C.CQ_OFFSET, "uint64_t", "host (lay-out)", "block offset of the completion ring (4096-aligned)"),
    _H(_C.ARENA_OFFSET, "uint64_t", "host (lay-out)", "block offset of the data arena (4096-aligned)"),
    _H(_C.ARENA_SIZE, "uint64_t", "host (lay-out)", "arena bytes; payload offsets are arena-relative"),
    _H(_C.CHANNEL_INDEX, "uint32_t", "host (lay-out)", "this channel's index c"),
    _H(_C.CHANNEL_STATE, "uint32_t", "host", "`enum vgpu_channel_state`"),
    _H(_C.GENERATION, "uint32_t", "host", "+1 at every open the host serves"),
    _H(_C.HOST_NEED_WAKEUP, "uint32_t", "host", "1 while the host is (about to be) asleep: kick it"),
    _H(_C.CALLS_COMPLETED, "uint64_t", "host", "diagnostic counter (may stay 0); never trusted"),
    _H(_C.CALLS_FAILED, "uint64_t", "host", "diagnostic counter (may stay 0); never trusted"),
    _H(_C.LATCHED_ERROR, "uint32_t", "host",
       "the first asynchronous error not yet reported (status value), 0 when none"),
    _H(_C.OPEN_ACK, "uint32_t", "host", "the `open_request` nonce the host has served; written last on open"),
    _H(_C.CLOSE_REASON, "uint32_t", "host", "`enum vgpu_close_reason`: why the host last closed the channel"),
    _H(_C.HOST_BUSY, "uint32_t", "host",
       "+1 every 0.5 s while the host serves this channel's entries: one long call (a launch, a synchronize) "
       "counts as progress for the guest's timeout"),
    _H(_C.GUEST_NEED_IRQ, "uint32_t", "guest", "1 while the owner sleeps on its vector: interrupt it"),
    _H(_C.GUEST_FEATURES, "uint64_t", "guest", "the offered feature bits the guest uses (informational)"),
    _H(_C.CALLS_SUBMITTED, "uint64_t", "guest", "diagnostic counter (may stay 0); never trusted"),
    _H(_C.OPEN_REQUEST, "uint32_t", "guest", "a new non-zero nonce asks the host to (re)open the channel"),
    _H(_C.OWNER_PID, "uint32_t", "guest", "the owning process's id (shown in status, trace, metrics)"),
    _H(_C.OWNER_PEER, "uint32_t", "guest", "the ivshmem peer id the owner rings the doorbell through"),
    _H(_C.CLOSE_REQUEST, "uint32_t", "guest", "= the open nonce: asks the host to close, free the channel"),
    _H(_C.HEARTBEAT, "uint64_t", "guest", "bumped at least every `lease_ms` / 4 while the channel is open"),
    _H(_C.SQ_TAIL, "uint32_t", "guest", "submission ring tail: free-running count of entries published"),
    _H(_C.SQ_HEAD, "uint32_t", "host", "submission ring head: free-running count of entries consumed"),
    _H(_C.CQ_TAIL, "uint32_t", "host", "completion ring tail: free-running count of entries published"),
    _H(_C.CQ_HEAD, "uint32_t", "guest", "completion ring head: free-running count of entries consumed"),
)


@dataclass(frozen=True, slots=True)
class FrameField:
    """One field of an SQE or a CQE."""

    name: str
    ctype: str
    offset: int
    count: int  # array length, 1 for a scalar
    meaning: str

    @property
    def size(self) -> int:
        return C_SIZES[self.ctype] * self.count


SQE_FIELDS: Final[tuple[FrameField, ...]] = (
    FrameField("seq", "uint32_t", 0, 1, "the guest's sequence number, echoed in the completion"),
    FrameField("call_id", "uint16_t", 4, 1, "catalog number of the call (`VGPU_CALL_*`)"),
    FrameField("flags", "uint16_t", 6, 1, "`VGPU_SUBMIT_*` bits; any other bit fails the entry (§4.1)"),
    FrameField("in_off", "uint32_t", 8, 1, "input payload: arena-relative offset"),
    FrameField("in_len", "uint32_t", 12, 1, "input payload: length in bytes (0: none)"),
    FrameField("out_off", "uint32_t", 16, 1, "output area: arena-relative offset"),
    FrameField("out_cap", "uint32_t", 20, 1, "output area: capacity in bytes (0: none)"),
    FrameField("args_len", "uint32_t", 24, 1, "bytes of `args` used: exactly the argument struct's size"),
    FrameField("reserved", "uint32_t", 28, 1, "must be 0; otherwise the entry fails (§4.1)"),
    FrameField("args", "uint8_t", 32, MAX_INLINE_ARGS, "the call's argument struct (`struct vgpu_args_*`)"),
)

CQE_FIELDS: Final[tuple[FrameField, ...]] = (
    FrameField("seq", "uint32_t", 0, 1, "the submission's `seq`"),
    FrameField("call_id", "uint16_t", 4, 1, "the submission's `call_id`"),
    FrameField("flags", "uint16_t", 6, 1, "`VGPU_COMPLETE_*` bits"),
    FrameField("status", "uint32_t", 8, 1, "`CUresult`, or `cublasStatus_t` for cuBLAS calls; 0 is success"),
    FrameField("out_len", "uint32_t", 12, 1, "bytes the host wrote to the output area (≤ `out_cap`)"),
    FrameField("results", "uint8_t", 16, MAX_INLINE_RESULTS,
               "the call's result struct (`struct vgpu_result_*`), zero-filled past it; "
               "meaningful only when status is 0"),
)


@dataclass(frozen=True, slots=True)
class CEnum:
    """An enumeration as the C header names it: ``enum <tag>`` with ``VGPU_``-prefixed members."""

    enum: type[IntEnum]
    tag: str
    cuda_name: str


def _cuda_name(enum: type[IntEnum]) -> str:
    match = re.search(r"``([^`]+)``", enum.__doc__ or "")
    if match is None:
        raise AssertionError(f"{enum.__name__}'s docstring does not name its CUDA type")
    return match.group(1)


def _c_enum(enum: type[IntEnum], tag: str) -> CEnum:
    return CEnum(enum, tag, _cuda_name(enum))


#: Status codes and the enumerations that calls carry, in the order the header lists them.
C_ENUMS: Final[tuple[CEnum, ...]] = (
    _c_enum(CUresult, "vgpu_curesult"),
    _c_enum(CublasStatus, "vgpu_cublas_status"),
    _c_enum(GranularityOption, "vgpu_mem_alloc_granularity"),
    _c_enum(MemAccessFlags, "vgpu_mem_access_flags"),
    _c_enum(StreamCaptureMode, "vgpu_stream_capture_mode"),
    _c_enum(StreamCaptureStatus, "vgpu_stream_capture_status"),
    _c_enum(FunctionAttribute, "vgpu_function_attribute"),
    _c_enum(CublasOperation, "vgpu_cublas_operation"),
    _c_enum(CudaDataType, "vgpu_cuda_data_type"),
    _c_enum(CublasComputeType, "vgpu_cublas_compute_type"),
    _c_enum(CublasSideMode, "vgpu_cublas_side_mode"),
    _c_enum(CublasFillMode, "vgpu_cublas_fill_mode"),
    _c_enum(CublasDiagType, "vgpu_cublas_diag_type"),
)

_ENUM_TAGS: Final[dict[type[IntEnum], CEnum]] = {e.enum: e for e in C_ENUMS}


def c_struct_name(spec: CallSpec, which: Literal["args", "result"]) -> str:
    """``struct vgpu_args_<name>`` / ``struct vgpu_result_<name>``."""
    return f"struct vgpu_{which}_{spec.name}"


def _field_comment(field: FieldLayout) -> str:
    kind = field.wire.kind
    if field.enum is not None:
        c_enum = _ENUM_TAGS.get(field.enum)
        return f"enum {c_enum.tag}" if c_enum is not None else field.enum.__name__
    if kind == "devptr":
        return "device pointer"
    if kind in ("value", "bytes16"):
        return ""
    if kind == "device":
        return "device ordinal (CUdevice)"
    return f"{kind} handle: per-channel id, 0 = null" + (" (the default stream)" if kind == "stream" else "")


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, *lines: str) -> None:
        self.lines.extend(lines)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _member(ctype: str, name: str, count: int, comment: str = "") -> str:
    if name in _C_KEYWORDS:
        raise AssertionError(f"field name {name!r} is a C keyword")
    decl = f"    {ctype} {name}{f'[{count}]' if count != 1 else ''};"
    return f"{decl:<40}/* {comment} */" if comment else decl


def _struct(
    out: _Writer, tag: str, members: Iterable[tuple[str, str, int, int, str]], size: int,
) -> None:
    """Emit ``struct tag`` from (ctype, name, offset, count, comment) members, with explicit padding
    and static asserts on its size and on every member's offset."""
    body: list[str] = []
    asserts: list[str] = []
    offset = 0
    pads = 0
    for ctype, name, at, count, comment in members:
        if at < offset:
            raise AssertionError(f"{tag}.{name} at {at} overlaps the member before it (ends at {offset})")
        if at > offset:
            body.append(_member("uint8_t", f"pad{pads}_", at - offset))
            pads += 1
        body.append(_member(ctype, name, count, comment))
        asserts.append(f'static_assert(offsetof(struct {tag}, {name}) == {at}, "{tag}.{name} offset");')
        offset = at + C_SIZES[ctype] * count
    if offset > size:
        raise AssertionError(f"{tag} members end at {offset}, past its size {size}")
    if size > offset:
        body.append(_member("uint8_t", f"pad{pads}_", size - offset))
    out(f"struct {tag} {{", *body, "};")
    out(f'static_assert(sizeof(struct {tag}) == {size}, "struct {tag} is {size} bytes");', *asserts, "")


def _call_members(layout_fields: Sequence[FieldLayout]) -> list[tuple[str, str, int, int, str]]:
    members = []
    for f in layout_fields:
        if f.wire.fmt.endswith("s"):
            count = int(f.wire.fmt[:-1])
        else:
            count = 1
            if C_SIZES[f.wire.ctype] != f.size:
                raise AssertionError(f"{f.name}: C type {f.wire.ctype} is not {f.size} bytes")
        members.append((f.wire.ctype, f.name, f.offset, count, _field_comment(f)))
    return members


def _call_struct(out: _Writer, spec: CallSpec, which: Literal["args", "result"],
                 model: type[WireModel]) -> None:
    layout = layout_of(model)
    tag = f"vgpu_{which}_{spec.name}"
    if layout.size == 0:
        what = "arguments" if which == "args" else "results"
        out(f"/* {spec.name}: no {what} ({'args_len = 0' if which == 'args' else 'status only'}) */", "")
        return
    _struct(out, tag, _call_members(layout.fields), layout.size)


def _hex(value: int, width: int = 4) -> str:
    return f"0x{value:0{width}x}"


def render_c_header() -> str:
    """The full text of ``protocol/include/vgpu_protocol.h``."""
    out = _Writer()
    out(
        "/*",
        " * vgpu_protocol.h — the vgpu-mediator wire protocol for guests (C11).",
        " *",
        " * GENERATED from protocol/ by `python -m protocol`; do not edit. `python -m protocol --check`",
        " * fails when this file differs from what the catalog generates. The rules (ring discipline,",
        " * payloads, chunking, errors, versioning) are in docs/protocol.md.",
        " *",
        " * All multi-byte values are little-endian. Structs carry explicit padding members (padN_), which",
        " * must be written as zero; static asserts pin every size and offset.",
        " */",
        "#ifndef VGPU_PROTOCOL_H",
        "#define VGPU_PROTOCOL_H",
        "",
        "#include <assert.h>",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        "/* ---- constants ------------------------------------------------------------------------- */",
        "",
        f"#define VGPU_MAGIC UINT64_C({MAGIC:#018x}) /* \"VGPUMED\\0\" little-endian */",
        f"#define VGPU_CHANNEL_MAGIC UINT64_C({CHANNEL_MAGIC:#018x}) /* \"VGPUCHN\\0\" little-endian */",
        f"#define VGPU_VERSION_MAJOR {VERSION_MAJOR}u",
        f"#define VGPU_VERSION_MINOR {VERSION_MINOR}u",
        f"#define VGPU_HEADER_SIZE {HEADER_SIZE}u",
        f"#define VGPU_SQE_SIZE {SQE_SIZE}u",
        f"#define VGPU_CQE_SIZE {CQE_SIZE}u",
        f"#define VGPU_MAX_INLINE_ARGS {MAX_INLINE_ARGS}u",
        f"#define VGPU_MAX_INLINE_RESULTS {MAX_INLINE_RESULTS}u",
        f"#define VGPU_SECTION_ALIGN {ARENA_ALIGN}u /* rings and arena start on this boundary */",
        f"#define VGPU_MIN_ARENA {MIN_ARENA}u",
        f"#define VGPU_MAX_RING_ENTRIES {MAX_RING_ENTRIES}u",
        f"#define VGPU_MIN_REGION_SIZE UINT64_C({MIN_REGION})",
        f"#define VGPU_MAX_REGION_SIZE UINT64_C({MAX_REGION})",
        f"#define VGPU_MAX_CHANNELS {MAX_CHANNELS}u",
        f"#define VGPU_DEFAULT_LEASE_MS {DEFAULT_LEASE_MS}u",
        f"#define VGPU_MIN_LEASE_MS {MIN_LEASE_MS}u",
        "",
        "/* feature bits (header `features`, `guest_features`) */",
    )
    for feature in Features:
        out(f"#define VGPU_FEATURE_{feature.name} UINT64_C({int(feature):#x})")
    out(f"#define VGPU_ALL_FEATURES UINT64_C({int(ALL_FEATURES):#x})", "")
    out("/* submission flags (SQE `flags`) */")
    for submit in SubmitFlags:
        out(f"#define VGPU_SUBMIT_{submit.name} {int(submit):#06x}u")
    out("", "/* completion flags (CQE `flags`) */")
    for complete in CompleteFlags:
        out(f"#define VGPU_COMPLETE_{complete.name} {int(complete):#06x}u")
    out("", "/* the host-owned `device_state` word */", "enum vgpu_device_state {")
    for state in DeviceState:
        out(f"    VGPU_DEVICE_STATE_{state.name} = {int(state)},")
    out("};", "", "/* the host-owned `channel_state` word of a channel header */",
        "enum vgpu_channel_state {")
    for channel_state in ChannelState:
        out(f"    VGPU_CHANNEL_{channel_state.name} = {int(channel_state)},")
    out("};", "", "/* the host-owned `close_reason` word of a channel header */", "enum vgpu_close_reason {")
    for reason in CloseReason:
        out(f"    VGPU_CLOSE_{reason.name} = {int(reason)},")
    out("};", "")

    out(
        "/* ---- the region header (first VGPU_HEADER_SIZE bytes of the region) ------------------- */",
        "",
        "/* byte offsets of the region header's fields */",
    )
    for info in REGION_FIELDS:
        out(f"#define VGPU_REG_{info.field.name} {info.offset}u /* {info.ctype}, {info.writer} */")
    out("")
    _struct(out, "vgpu_region_header",
            ((i.ctype, i.name, i.offset, 1, f"{i.writer}") for i in REGION_FIELDS), HEADER_SIZE)
    out(
        "/* ---- a channel header (first VGPU_HEADER_SIZE bytes of channel c's block, which starts at",
        " * region offset channels_offset + c * channel_size; offsets below are block-relative) ---- */",
        "",
        "/* byte offsets of the channel header's fields */",
    )
    for info in CHANNEL_FIELDS:
        out(f"#define VGPU_CHN_{info.field.name} {info.offset}u /* {info.ctype}, {info.writer} */")
    out("")
    _struct(out, "vgpu_channel_header",
            ((i.ctype, i.name, i.offset, 1, f"{i.writer}") for i in CHANNEL_FIELDS), HEADER_SIZE)
    out("/* ---- ring entries ---------------------------------------------------------------------- */", "")
    _struct(out, "vgpu_sqe", ((f.ctype, f.name, f.offset, f.count, "") for f in SQE_FIELDS), SQE_SIZE)
    _struct(out, "vgpu_cqe", ((f.ctype, f.name, f.offset, f.count, "") for f in CQE_FIELDS), CQE_SIZE)

    out("/* ---- status codes and enumerations (CUDA's values, VGPU_-prefixed names) -------------- */", "")
    for c_enum in C_ENUMS:
        out(f"/* {c_enum.cuda_name} */", f"enum {c_enum.tag} {{")
        for member in c_enum.enum:
            out(f"    VGPU_{member.name} = {int(member)},")
        out("};", "")

    out("/* ---- call ids ------------------------------------------------------------------------- */", "")
    for spec in CALLS.values():
        traits = ", ".join(t for t, on in (("async-capable", spec.is_async),
                                           ("synchronizing", spec.synchronizing)) if on)
        note = f"{spec.cuda_name}{', ' + traits if traits else ''}"
        if spec.status_domain != "CUresult":
            note += f", status is {spec.status_domain}"
        out(f"#define VGPU_CALL_{spec.name.upper()} {_hex(spec.call_id)} /* {note} */")
    out("")

    out("/* ---- argument and result structs (SQE `args`, CQE `results`) -------------------------- */", "")
    for spec in CALLS.values():
        _call_struct(out, spec, "args", spec.args)
        _call_struct(out, spec, "result", spec.result)
    out("#endif /* VGPU_PROTOCOL_H */")
    return out.text()
