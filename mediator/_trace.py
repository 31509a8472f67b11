"""Per-VM call tracing: a bounded ring of fixed-size records in memory the guest never sees.

The worker is the only writer: it fills record ``n % capacity`` and then publishes ``n + 1`` as
the write index. Readers (the supervisor, for the CLI) copy records and re-read the index
afterwards, discarding any record the writer may have lapped meanwhile. Nothing here goes to the
journal: a traced VM can make a million calls a second, and journald would drop them.

Record (160 bytes): u64 wall time ns, u64 duration ns, u32 seq, u16 call id, u16 flags,
u32 status, u32 kind, 128 bytes of UTF-8 argument summary (sizes, pointers, handles — never
payload bytes), NUL padded. Kind 0 is a call; kind 1 (:data:`PRINTF`) a line a kernel printed
(``sim``'s device ``printf``, already bounded per launch by the engine), its text in place of the
arguments, read back as call ``printf``.

Host memory: one ring per session, sized when the supervisor creates it (8,192 records, 1.25 MiB,
at most :data:`MAX_RECORDS`) and never grown; a record's text is cut to 128 bytes before it is
stored. Nothing a guest does changes what tracing costs the host, which is why it is not charged to
the VM's host budget but counted with the region in the unit's ``MemoryMax=`` (docs/operations.md).
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Final

from protocol import CALLS, CublasStatus, CUresult, Submission, WireModel, decode_args, layout_of

__all__ = ["MAX_RECORDS", "PRINTF", "TraceRecord", "TraceRing", "printf_recorder", "summarize"]

_HEADER: Final = struct.Struct("<QI")  # write index, capacity
_RECORD: Final = struct.Struct("<QQIHHII128s")
_HEADER_SIZE: Final = 64
#: the most records a ring may have (10 MiB); the supervisor makes 8,192
MAX_RECORDS: Final = 1 << 16
#: the kind of a record that holds a line of device printf output rather than a call
PRINTF: Final = 1


@dataclass(frozen=True, slots=True)
class TraceRecord:
    index: int
    time_ns: int
    duration_ns: int
    seq: int
    call_id: int
    call: str
    flags: int
    status: int
    status_name: str
    args: str
    channel: int | None = None  # the channel (guest process) that made the call; None: unknown


    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _status_name(call_id: int, status: int) -> str:
    spec = CALLS.get(call_id)
    try:
        if spec is not None and spec.status_domain == "cublasStatus_t":
            return CublasStatus(status).name
        return CUresult(status).name
    except ValueError:
        return str(status)


def summarize(sub: Submission, args: WireModel | None = None) -> str:
    """The arguments as ``name=value`` pairs; pointers in hex, payloads by length only."""
    spec = CALLS.get(sub.call_id)
    parts: list[str] = []
    if spec is not None:
        try:
            model = args if args is not None else decode_args(spec, sub.args)
        except Exception:
            parts.append("args=<invalid>")
        else:
            for field in layout_of(spec.args).fields:
                value = getattr(model, field.name)
                if field.wire.kind == "devptr":
                    parts.append(f"{field.name}={value:#x}")
                elif field.enum is not None:
                    parts.append(f"{field.name}={value.name}")
                else:
                    parts.append(f"{field.name}={value}")
    if sub.in_len:
        parts.append(f"in_len={sub.in_len}")
    if sub.out_cap:
        parts.append(f"out_cap={sub.out_cap}")
    return " ".join(parts)


class TraceRing:
    def __init__(self, fd: int, capacity: int | None = None) -> None:
        self.fd = fd
        if capacity is not None:
            if not 0 < capacity <= MAX_RECORDS:
                raise ValueError(f"a trace ring holds 1 to {MAX_RECORDS} records, not {capacity}")
            os.ftruncate(fd, _HEADER_SIZE + capacity * _RECORD.size)
        size = os.fstat(fd).st_size
        self._map = mmap.mmap(fd, size)
        if capacity is not None:
            _HEADER.pack_into(self._map, 0, 0, capacity)
        self.capacity = _HEADER.unpack_from(self._map, 0)[1]
        if not 0 < self.capacity <= MAX_RECORDS or _HEADER_SIZE + self.capacity * _RECORD.size > size:
            raise ValueError("trace ring header does not match its mapping")
        self._next = _HEADER.unpack_from(self._map, 0)[0]

    @classmethod
    def create(cls, name: str, capacity: int = 8192) -> TraceRing:
        return cls(os.memfd_create(f"vgpu-trace-{name}", os.MFD_CLOEXEC), capacity)

    # -- writer (the worker) -------------------------------------------------------------------

    def append(self, time_ns: int, duration_ns: int, sub: Submission, status: int, args: str,
               channel: int | None = None) -> None:
        n = self._next
        # the kind word's high half holds the channel + 1 (0: unknown)
        kind = 0 if channel is None else (channel + 1) << 16
        _RECORD.pack_into(self._map, _HEADER_SIZE + (n % self.capacity) * _RECORD.size, time_ns,
                          duration_ns, sub.seq, sub.call_id, int(sub.flags), status, kind,
                          args.encode()[:128])
        self._next = n + 1
        struct.pack_into("<Q", self._map, 0, self._next)

    def note_printf(self, time_ns: int, kernel: str, line: str) -> None:
        """A line kernel ``kernel`` printed, as a :data:`PRINTF` record (cut to 128 bytes)."""
        n = self._next
        _RECORD.pack_into(self._map, _HEADER_SIZE + (n % self.capacity) * _RECORD.size, time_ns, 0, 0, 0, 0,
                          0, PRINTF, f"{kernel}: {line}".encode()[:128])
        self._next = n + 1
        struct.pack_into("<Q", self._map, 0, self._next)

    # -- readers --------------------------------------------------------------------------------

    @property
    def written(self) -> int:
        return int(struct.unpack_from("<Q", self._map, 0)[0])

    def read(self, after: int = 0, limit: int | None = None) -> tuple[list[TraceRecord], int]:
        """Records with index ≥ ``after`` still in the ring (oldest first) and the next index."""
        end = self.written
        start = max(after, end - self.capacity, 0)
        if limit is not None:
            start = max(start, end - limit)
        raw = [(_RECORD.unpack_from(self._map, _HEADER_SIZE + (i % self.capacity) * _RECORD.size), i)
               for i in range(start, end)]
        oldest_valid = self.written - self.capacity  # the writer may have lapped us meanwhile
        records = []
        for fields, index in raw:
            if index < oldest_valid:
                continue
            time_ns, duration, seq, call_id, flags, status, word, args = fields
            kind, channel = word & 0xFFFF, (word >> 16) - 1
            spec = CALLS.get(call_id)
            call = "printf" if kind == PRINTF else spec.name if spec else f"call_{call_id:#06x}"
            records.append(TraceRecord(
                index, time_ns, duration, seq, call_id, call, flags, status,
                _status_name(call_id, status), args.rstrip(b"\0").decode(errors="replace"),
                channel if channel >= 0 else None))
        return records, end

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)


def printf_recorder(ring: TraceRing | None, tracing: Callable[[], bool]) -> Callable[[str, list[str]], None]:
    """The executor's ``kernel_output`` hook: while ``tracing()``, each line a kernel printed becomes
    a :data:`PRINTF` record of ``ring`` (the engine bounds a launch's lines; the ring its records)."""

    def record(kernel: str, lines: list[str]) -> None:
        if ring is None or not tracing():
            return
        now = time.time_ns()
        for line in lines:
            ring.note_printf(now, kernel, line)

    return record
