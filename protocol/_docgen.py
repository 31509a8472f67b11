"""The generated parts of ``docs/protocol.md``: call table, layout tables, status codes, enumerations.

The document is written by hand except for sections fenced by markers::

    <!-- BEGIN GENERATED: call-table -->
    …
    <!-- END GENERATED: call-table -->

:func:`rewrite_generated` replaces what lies between each pair with the catalog's current rendering
(``python -m protocol`` does this to the file; ``--check`` reports drift). Pure functions over strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final

from ._catalog import CALLS, CallSpec
from ._cheader import (
    C_ENUMS,
    CHANNEL_FIELDS,
    CQE_FIELDS,
    REGION_FIELDS,
    SQE_FIELDS,
    FrameField,
    HeaderFieldInfo,
)
from ._layout import ChannelState, CloseReason, DeviceState
from ._wire import FieldLayout, WireModel, layout_of

__all__ = [
    "GENERATED_SECTIONS",
    "render_call_table",
    "render_cqe_table",
    "render_enum_tables",
    "render_channel_header_table",
    "render_region_header_table",
    "render_sqe_table",
    "render_state_tables",
    "render_status_tables",
    "rewrite_generated",
]

_BEGIN: Final = "<!-- BEGIN GENERATED: {name} -->"
_END: Final = "<!-- END GENERATED: {name} -->"
_MARKER: Final = re.compile(r"<!-- (BEGIN|END) GENERATED: ([a-z0-9-]+) -->")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _field_desc(field: FieldLayout) -> str:
    ctype = field.wire.ctype
    if field.wire.fmt.endswith("s"):
        ctype = f"{ctype}[{int(field.wire.fmt[:-1])}]"
    if field.enum is not None:
        note = next((e.cuda_name for e in C_ENUMS if e.enum is field.enum), field.enum.__name__)
    elif field.wire.kind in ("value", "bytes16"):
        note = ""
    else:
        note = field.wire.kind
    return f"@{field.offset} `{ctype} {field.name}`" + (f" ({note})" if note else "")


def _struct_desc(model: type[WireModel]) -> str:
    layout = layout_of(model)
    if layout.size == 0:
        return "—"
    return f"{layout.size} B: " + "<br>".join(_field_desc(f) for f in layout.fields)


def _call_row(spec: CallSpec) -> str:
    cells = [
        f"`{spec.call_id:#06x}`",
        f"`{spec.name}`",
        f"`{spec.cuda_name}`",
        "yes" if spec.is_async else "",
        "yes" if spec.synchronizing else "",
        _struct_desc(spec.args),
        _struct_desc(spec.result),
        spec.in_payload or "",
        spec.out_payload or "",
        "cuBLAS" if spec.status_domain == "cublasStatus_t" else "CUresult",
        spec.doc,
    ]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def render_call_table() -> str:
    """A markdown table of every call in the catalog, in call-id order."""
    lines = [
        "| id | name | CUDA entry point | async-capable | synchronizing | arguments (`args`) "
        "| results (`results`) | input payload | output payload | status | notes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [_call_row(spec) for spec in sorted(CALLS.values(), key=lambda s: s.call_id)]
    return "\n".join(lines) + "\n"


def _header_table(fields: tuple[HeaderFieldInfo, ...]) -> str:
    lines = [
        "| offset | field | C type | written by | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {f.offset} | `{f.name}` | `{f.ctype}` | {f.writer} | {_cell(f.meaning)} |" for f in fields]
    return "\n".join(lines) + "\n"


def render_region_header_table() -> str:
    return _header_table(REGION_FIELDS)


def render_channel_header_table() -> str:
    return _header_table(CHANNEL_FIELDS)


def render_state_tables() -> str:
    """The values of ``device_state``, ``channel_state`` and ``close_reason``."""
    lines = ["| word | C header | values |", "| --- | --- | --- |"]
    for word, tag, prefix, enum in (
        ("device_state", "vgpu_device_state", "VGPU_DEVICE_STATE_", DeviceState),
        ("channel_state", "vgpu_channel_state", "VGPU_CHANNEL_", ChannelState),
        ("close_reason", "vgpu_close_reason", "VGPU_CLOSE_", CloseReason),
    ):
        values = ", ".join(f"`{prefix}{m.name}` = {int(m)}" for m in enum)
        lines.append(f"| `{word}` | `enum {tag}` | {values} |")
    return "\n".join(lines) + "\n"


def _frame_table(fields: tuple[FrameField, ...]) -> str:
    lines = ["| offset | field | C type | meaning |", "| --- | --- | --- | --- |"]
    for f in fields:
        ctype = f.ctype if f.count == 1 else f"{f.ctype}[{f.count}]"
        lines.append(f"| {f.offset} | `{f.name}` | `{ctype}` | {_cell(f.meaning)} |")
    return "\n".join(lines) + "\n"


def render_sqe_table() -> str:
    return _frame_table(SQE_FIELDS)


def render_cqe_table() -> str:
    return _frame_table(CQE_FIELDS)


def render_status_tables() -> str:
    parts = []
    for c_enum in C_ENUMS[:2]:
        parts.append(f"`{c_enum.cuda_name}` (C header: `enum {c_enum.tag}`, names prefixed `VGPU_`):\n")
        parts.append("| name | value |\n| --- | --- |")
        parts.extend(f"| `{m.name}` | {int(m)} |" for m in c_enum.enum)
        parts.append("")
    return "\n".join(parts)


def render_enum_tables() -> str:
    lines = ["| CUDA type | C header | members |", "| --- | --- | --- |"]
    for c_enum in C_ENUMS[2:]:
        members = ", ".join(f"`{m.name}` = {int(m)}" for m in c_enum.enum)
        lines.append(f"| `{c_enum.cuda_name}` | `enum {c_enum.tag}` | {members} |")
    return "\n".join(lines) + "\n"


#: Every generated section of docs/protocol.md, by marker name.
GENERATED_SECTIONS: Final[Mapping[str, Callable[[], str]]] = {
    "region-fields": render_region_header_table,
    "channel-fields": render_channel_header_table,
    "states": render_state_tables,
    "sqe-fields": render_sqe_table,
    "cqe-fields": render_cqe_table,
    "status-codes": render_status_tables,
    "enums": render_enum_tables,
    "call-table": render_call_table,
}


def rewrite_generated(text: str, sections: Mapping[str, Callable[[], str]] = GENERATED_SECTIONS) -> str:
    """Return ``text`` with every generated section replaced by its current rendering.

    Raises :class:`ValueError` when a marker is missing, duplicated, unknown or out of order.
    """
    seen: dict[str, int] = {}
    open_name: str | None = None
    for match in _MARKER.finditer(text):
        kind, name = match.groups()
        if name not in sections:
            raise ValueError(f"unknown generated section {name!r}")
        if kind == "BEGIN":
            if open_name is not None:
                raise ValueError(f"section {name!r} begins inside section {open_name!r}")
            if name in seen:
                raise ValueError(f"section {name!r} appears twice")
            seen[name] = match.start()
            open_name = name
        else:
            if open_name != name:
                raise ValueError(f"END of {name!r} without its BEGIN")
            open_name = None
    if open_name is not None:
        raise ValueError(f"section {open_name!r} has no END marker")
    missing = [name for name in sections if name not in seen]
    if missing:
        raise ValueError(f"docs lack the generated section(s) {', '.join(missing)}")
    for name, render in sections.items():
        begin, end = _BEGIN.format(name=name), _END.format(name=name)
        start = text.index(begin) + len(begin)
        stop = text.index(end, start)
        text = f"{text[:start]}\n{render()}{text[stop:]}"
    return text
