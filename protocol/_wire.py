"""Wire types for call arguments and results, and the packed struct derived from a model.

Every field of an argument or result model is annotated with a ``Wire`` marker that names its C type.
Fields are laid out in declaration order with C's natural alignment (so the generated C structs need
no packing pragmas), and the whole struct is padded to a multiple of 8 bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Any, Final, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "F32",
    "F64",
    "I32",
    "I64",
    "U8",
    "U16",
    "U32",
    "U64",
    "Bytes16",
    "CtxH",
    "CublasH",
    "DevPtr",
    "Device",
    "EventH",
    "FieldLayout",
    "FunctionH",
    "GraphExecH",
    "GraphH",
    "MemH",
    "ModuleH",
    "StreamH",
    "StructLayout",
    "Wire",
    "WireModel",
    "enum_field",
    "layout_of",
]


@dataclass(frozen=True, slots=True)
class Wire:
    """Marks a model field with its C type (``fmt`` in :mod:`struct` notation) and its meaning."""

    fmt: str
    ctype: str
    kind: str = "value"  # "value", "devptr", or the handle kind ("stream", "event", …)


_U8_MAX: Final = 0xFF
_U16_MAX: Final = 0xFFFF
_U32_MAX: Final = 0xFFFF_FFFF
_U64_MAX: Final = 0xFFFF_FFFF_FFFF_FFFF

U8 = Annotated[int, Wire("B", "uint8_t"), Field(ge=0, le=_U8_MAX)]
U16 = Annotated[int, Wire("H", "uint16_t"), Field(ge=0, le=_U16_MAX)]
U32 = Annotated[int, Wire("I", "uint32_t"), Field(ge=0, le=_U32_MAX)]
U64 = Annotated[int, Wire("Q", "uint64_t"), Field(ge=0, le=_U64_MAX)]
I32 = Annotated[int, Wire("i", "int32_t"), Field(ge=-(2**31), le=2**31 - 1)]
I64 = Annotated[int, Wire("q", "int64_t"), Field(ge=-(2**63), le=2**63 - 1)]
F32 = Annotated[float, Wire("f", "float")]
F64 = Annotated[float, Wire("d", "double")]
Bytes16 = Annotated[bytes, Wire("16s", "uint8_t", "bytes16"), Field(min_length=16, max_length=16)]

#: A device ordinal as CUDA's ``CUdevice`` (an int).
Device = Annotated[int, Wire("i", "int32_t", "device"), Field(ge=-(2**31), le=2**31 - 1)]
#: A real GPU virtual address, valid only inside the VM's own allocations.
DevPtr = Annotated[int, Wire("Q", "uint64_t", "devptr"), Field(ge=0, le=_U64_MAX)]


def _handle(kind: str) -> Any:
    return Annotated[int, Wire("I", "uint32_t", kind), Field(ge=0, le=_U32_MAX)]


# Per-VM handle ids; 0 is the null handle (for streams: the legacy default stream).
CtxH = _handle("context")
StreamH = _handle("stream")
EventH = _handle("event")
ModuleH = _handle("module")
FunctionH = _handle("function")
MemH = _handle("memhandle")
CublasH = _handle("cublas")
GraphH = _handle("graph")
GraphExecH = _handle("graphexec")


def enum_field(enum: type[IntEnum], fmt: str = "I", ctype: str = "uint32_t") -> Any:
    """An enum-valued field carried as an unsigned int; pydantic refuses unknown members."""
    return Annotated[enum, Wire(fmt, ctype, "enum")]


class WireModel(BaseModel):
    """Base of every argument and result model: frozen, strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True, slots=True)
class FieldLayout:
    name: str
    wire: Wire
    offset: int
    size: int
    enum: type[IntEnum] | None


@dataclass(frozen=True, slots=True)
class StructLayout:
    """The packed form of one model: a precompiled :class:`struct.Struct` and its field offsets."""

    fields: tuple[FieldLayout, ...]
    packer: struct.Struct
    size: int
    names: tuple[str, ...] = ()  # the fields' names, precomputed: the decoder zips them per frame


def _wire_of(annotation: Any, metadata: list[Any]) -> tuple[Wire, type[IntEnum] | None]:
    for item in metadata:
        if isinstance(item, Wire):
            enum = annotation if isinstance(annotation, type) and issubclass(annotation, IntEnum) else None
            return item, enum
    if get_origin(annotation) is Annotated:
        base, *extra = get_args(annotation)
        return _wire_of(base, list(extra))
    raise TypeError(f"field of type {annotation!r} has no Wire marker")


_LAYOUTS: dict[type[BaseModel], StructLayout] = {}


def layout_of(model: type[BaseModel]) -> StructLayout:
    """The C-aligned little-endian layout of ``model``'s fields (computed once, then cached)."""
    cached = _LAYOUTS.get(model)
    if cached is not None:
        return cached
    fields: list[FieldLayout] = []
    fmt = "<"
    offset = 0
    for name, info in model.model_fields.items():
        wire, enum = _wire_of(info.annotation, list(info.metadata))
        size = struct.calcsize("<" + wire.fmt)
        align = 1 if wire.fmt.endswith("s") else size
        pad = -offset % align
        if pad:
            fmt += f"{pad}x"
            offset += pad
        fields.append(FieldLayout(name, wire, offset, size, enum))
        fmt += wire.fmt
        offset += size
    tail = -offset % 8
    if tail:
        fmt += f"{tail}x"
        offset += tail
    layout = StructLayout(tuple(fields), struct.Struct(fmt), offset, tuple(f.name for f in fields))
    _LAYOUTS[model] = layout
    return layout
