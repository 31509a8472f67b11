"""A Python guest: the QEMU-side handshake, the mapped region, and a driver-API-shaped interface.

``GuestClient.connect(path)`` does what QEMU's ivshmem-doorbell does on connect, maps the region and
validates it. ``call()`` is raw access to any catalog call; the typed helpers (``mem_alloc``,
``memcpy_htod``, ``stream_create``, …) raise :class:`CudaCallError` on failure, like a driver
binding would. Payloads go through the data arena, which this side owns: space is reused once the
host's submission head has passed the entry that used it. Copies larger than a chunk are split
(``protocol.plan_chunks``); all but the last chunk go ASYNC with ``CHUNK_MORE``.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Self

from protocol import (
    CALLS_BY_NAME,
    CallSpec,
    CompleteFlags,
    Completion,
    CompletionConsumer,
    CUresult,
    DeviceState,
    HeaderField,
    Region,
    RemoteProtocolError,
    SubmissionProducer,
    SubmitFlags,
    WireModel,
    decode_result,
    encode_args,
    fence,
    plan_chunks,
)

from ._handshake import receive_handshake

__all__ = ["CallResult", "CudaCallError", "DeviceGoneError", "GuestClient"]

_ASYNC_ERROR = int(CompleteFlags.ASYNC_ERROR)


class CudaCallError(Exception):
    """A call answered with a non-zero status."""

    def __init__(self, call: str, status: int, flags: int = 0) -> None:
        try:
            name = CUresult(status).name
        except ValueError:
            name = str(status)
        super().__init__(f"{call} failed: {name} ({status})")
        self.call = call
        self.status = status
        self.flags = flags


class DeviceGoneError(Exception):
    """The host stopped serving this region (daemon stopped, VM detached, region broken, reset)."""


@dataclass(frozen=True, slots=True)
class CallResult:
    status: int
    flags: int
    result: WireModel | None
    out: bytes


class _Arena:
    """A ring of payload bytes; a span is free again once the host consumed its submission."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.tail = 0  # total bytes handed out (free-running)
        self.freed = 0  # total bytes the host is done with
        self.inflight: deque[tuple[int, int]] = deque()  # (sq index after push, end total)

    def reclaim(self, consumed: int) -> None:
        while self.inflight and ((consumed - self.inflight[0][0]) & 0xFFFF_FFFF) < 0x8000_0000:
            self.freed = self.inflight.popleft()[1]

    def place(self, length: int) -> int | None:
        """The free-running start of ``length`` bytes, or None if they do not fit yet."""
        start = (self.tail + 63) & ~63
        if start % self.size + length > self.size:
            start += self.size - start % self.size  # do not wrap inside a payload
        if start + length - self.freed > self.size:
            return None
        return start


class GuestClient:
    def __init__(self, sock: socket.socket, *, spin_us: int = 50, timeout: float = 30.0) -> None:
        peers = receive_handshake(sock)
        self.sock = sock
        self.peer_id = peers.my_id
        self.region_fd = peers.region_fd
        self.doorbell_fd = peers.peers[0][0]
        self.irq_fd = peers.peers[self.peer_id][0]
        size = os.fstat(self.region_fd).st_size
        # populated up front: otherwise every first touch of an arena page is a fault, and copies
        # through a fresh arena run at a tenth of memory speed
        self._map = mmap.mmap(self.region_fd, size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE)
        self.region = Region(memoryview(self._map))
        self.epoch = self.region.epoch
        self.sq = SubmissionProducer(self.region)
        self.cq = CompletionConsumer(self.region)
        self.arena = _Arena(self.region.layout.arena_size)
        self.chunk = max(self.region.layout.arena_size // 4, 64 * 1024)
        self.spin_s = spin_us / 1e6
        self.timeout = timeout
        self.seq = 0
        self.kicks = 0
        self.async_errors: list[Completion] = []
        self._early: dict[int, Completion] = {}

    @classmethod
    def connect(cls, path: str | os.PathLike[str], **kwargs: Any) -> Self:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.connect(os.fspath(path))
        return cls(sock, **kwargs)

    def close(self) -> None:
        self.region.release()
        self._map.close()
        for fd in (self.region_fd, self.doorbell_fd, self.irq_fd):
            os.close(fd)
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recover(self, timeout: float | None = None) -> None:
        """After a reset (DeviceGoneError with RESETTING or a new epoch): wait until the host serves
        again, then start over on the fresh rings. Every handle and pointer from before is gone."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not (self.region.device_state == DeviceState.READY and self.region.epoch != self.epoch):
            if self.region.device_state in (DeviceState.STOPPED, DeviceState.BROKEN):
                raise DeviceGoneError(f"device is {DeviceState(self.region.device_state).name}")
            if time.monotonic() > deadline:
                raise TimeoutError("the host did not finish resetting the device")
            select.select([self.irq_fd], [], [], 0.01)
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(self.irq_fd)
        self.epoch = self.region.epoch
        self.sq = SubmissionProducer(self.region)
        self.cq = CompletionConsumer(self.region)
        self.arena = _Arena(self.region.layout.arena_size)
        self.async_errors.clear()
        self._early.clear()

    # -- the transport --------------------------------------------------------------------------

    def _check_alive(self) -> None:
        state = self.region.device_state
        if state != DeviceState.READY or self.region.epoch != self.epoch:
            raise DeviceGoneError(f"device state {DeviceState(state).name}, epoch {self.region.epoch}")

    def _kick(self) -> None:
        fence()
        if self.region.u32(HeaderField.HOST_NEED_WAKEUP):
            os.eventfd_write(self.doorbell_fd, 1)
            self.kicks += 1

    def _reserve(self, length: int) -> int:
        """Arena offset for a payload of ``length`` bytes, waiting for the host if it is full."""
        if length > self.arena.size:
            raise ValueError(f"payload of {length} bytes exceeds the {self.arena.size}-byte arena")
        deadline = time.monotonic() + self.timeout
        while True:
            self.arena.reclaim(self.sq.consumed)
            start = self.arena.place(length)
            if start is not None:
                self.arena.tail = start + length
                return start % self.arena.size
            self._check_alive()
            self._kick()
            if time.monotonic() > deadline:
                raise TimeoutError("the host consumed no submissions: arena stays full")

    def submit(self, spec: CallSpec, args: WireModel, *, data: bytes | memoryview | None = None,
               out_cap: int = 0, flags: int = 0) -> tuple[int, int]:
        """Write one submission (payload first); returns (seq, arena offset of the output area)."""
        self._check_alive()
        in_off = in_len = out_off = 0
        if data is not None and len(data):
            in_len = len(data)
            in_off = self._reserve(in_len)
            self.region.arena[in_off:in_off + in_len] = data
        if out_cap:
            out_off = self._reserve(out_cap)
        self.seq = (self.seq + 1) & 0xFFFF_FFFF
        deadline = time.monotonic() + self.timeout
        while not self.sq.push(seq=self.seq, call_id=spec.call_id, args=encode_args(args),
                               flags=flags, in_off=in_off, in_len=in_len, out_off=out_off,
                               out_cap=out_cap):
            self._check_alive()
            self._kick()
            self._drain_async_errors()
            if time.monotonic() > deadline:
                raise TimeoutError("submission ring stays full")
        if in_len or out_cap:
            self.arena.inflight.append((self.sq.index, self.arena.tail))
        self._kick()
        return self.seq, out_off

    def _drain_async_errors(self) -> None:
        while self.cq.pending():
            completion = self.cq.pop()
            self._file(completion)

    def _file(self, completion: Completion) -> None:
        if completion.flags & _ASYNC_ERROR:
            self.async_errors.append(completion)
        else:
            self._early[completion.seq] = completion

    def wait(self, seq: int) -> Completion:
        """Block until the completion for ``seq`` arrives (spin, then sleep on our vector)."""
        deadline = time.monotonic() + self.timeout
        spin_until = time.perf_counter() + self.spin_s
        while True:
            early = self._early.pop(seq, None)
            if early is not None:
                return early
            try:
                pending = self.cq.pending()
            except RemoteProtocolError:
                self._check_alive()  # a reset re-laid the rings out under us: say so
                raise
            if pending:
                completion = self.cq.pop()
                if completion.seq == seq and not completion.flags & _ASYNC_ERROR:
                    return completion
                self._file(completion)
                continue
            if time.perf_counter() < spin_until:
                continue
            self._check_alive()
            self.region.set_u32(HeaderField.GUEST_NEED_IRQ, 1)
            fence()
            if not self.cq.pending():
                select.select([self.irq_fd], [], [], 0.05)
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(self.irq_fd)
            self.region.set_u32(HeaderField.GUEST_NEED_IRQ, 0)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no completion for seq {seq} within {self.timeout} s")
            spin_until = time.perf_counter() + self.spin_s

    def call(self, name: str, args: WireModel | None = None, *, data: bytes | memoryview | None = None,
             out_cap: int = 0, asynchronous: bool = False, chunk_more: bool = False) -> CallResult:
        """Raw access to any catalog call. ASYNC calls return at once with status 0."""
        spec = CALLS_BY_NAME[name]
        args = args if args is not None else spec.args()
        flags = (SubmitFlags.ASYNC if asynchronous else 0) | (SubmitFlags.CHUNK_MORE if chunk_more else 0)
        seq, out_off = self.submit(spec, args, data=data, out_cap=out_cap, flags=int(flags))
        if asynchronous:
            return CallResult(0, 0, None, b"")
        completion = self.wait(seq)
        result = decode_result(spec, completion.results) if completion.status == 0 else None
        out = bytes(self.region.arena[out_off:out_off + min(completion.out_len, out_cap)])
        return CallResult(completion.status, int(completion.flags), result, out)

    def checked(self, name: str, args: WireModel | None = None, **kwargs: Any) -> CallResult:
        result = self.call(name, args, **kwargs)
        if result.status:
            raise CudaCallError(name, result.status, result.flags)
        return result

    def value(self, name: str, field: str, args: WireModel | None = None, **kwargs: Any) -> Any:
        result = self.checked(name, args, **kwargs).result
        return getattr(result, field)

    def args(self, name: str, **values: Any) -> WireModel:
        """The validated argument model of call ``name``."""
        return CALLS_BY_NAME[name].args(**values)

    # -- driver-API-shaped helpers -----------------------------------------------------------------

    def init(self) -> None:
        self.checked("init", self.args("init", flags=0))

    def device_count(self) -> int:
        return int(self.value("device_get_count", "value"))

    def device_name(self, device: int = 0) -> str:
        out = self.checked("device_get_name", self.args("device_get_name", device=device), out_cap=256).out
        return out.split(b"\0", 1)[0].decode()

    def device_attribute(self, attrib: int, device: int = 0) -> int:
        return int(self.value("device_get_attribute", "value",
                               self.args("device_get_attribute", attrib=attrib, device=device)))

    def device_total_mem(self, device: int = 0) -> int:
        return int(self.value("device_total_mem", "bytes", self.args("device_total_mem", device=device)))

    def mem_get_info(self) -> tuple[int, int]:
        result = self.checked("mem_get_info").result
        return int(result.free), int(result.total)  # type: ignore[union-attr]

    def mem_alloc(self, size: int) -> int:
        return int(self.value("mem_alloc", "dptr", self.args("mem_alloc", bytesize=size)))

    def mem_free(self, dptr: int) -> None:
        self.checked("mem_free", self.args("mem_free", dptr=dptr))

    def memset_d8(self, dst: int, value: int, count: int, stream: int = 0,
                  asynchronous: bool = False) -> None:
        self.checked("memset_d8", self.args("memset_d8", dst=dst, count=count, value=value, stream=stream),
                     asynchronous=asynchronous)

    def memset_d32(self, dst: int, value: int, count: int, stream: int = 0,
                   asynchronous: bool = False) -> None:
        self.checked("memset_d32",
                     self.args("memset_d32", dst=dst, count=count, value=value, stream=stream),
                     asynchronous=asynchronous)

    def memcpy_htod(self, dst: int, data: bytes | bytearray | memoryview, stream: int = 0,
                    asynchronous: bool = False) -> None:
        view = memoryview(data).cast("B")
        chunks = plan_chunks(len(view), self.chunk)
        for i, (off, length) in enumerate(chunks):
            last = i == len(chunks) - 1
            self.checked("memcpy_htod", self.args("memcpy_htod", dst=dst + off, stream=stream),
                         data=view[off:off + length], asynchronous=asynchronous or not last,
                         chunk_more=not last)

    def memcpy_dtoh(self, src: int, count: int, stream: int = 0) -> bytes:
        out = bytearray(count)
        self.memcpy_dtoh_into(src, memoryview(out), stream)
        return bytes(out)

    def memcpy_dtoh_into(self, src: int, dest: memoryview, stream: int = 0) -> None:
        """Copy ``len(dest)`` device bytes into ``dest`` (one copy out of the arena per chunk, as a
        shim copies into the application's own buffer)."""
        dest = dest.cast("B")
        spec = CALLS_BY_NAME["memcpy_dtoh"]
        for off, length in plan_chunks(len(dest), self.chunk):
            args = self.args("memcpy_dtoh", src=src + off, count=length, stream=stream)
            seq, out_off = self.submit(spec, args, out_cap=length)
            completion = self.wait(seq)
            if completion.status:
                raise CudaCallError("memcpy_dtoh", completion.status, completion.flags)
            dest[off:off + length] = self.region.arena[out_off:out_off + length]

    def memcpy_dtod(self, dst: int, src: int, count: int, stream: int = 0,
                    asynchronous: bool = False) -> None:
        self.checked("memcpy_dtod",
                     self.args("memcpy_dtod", dst=dst, src=src, count=count, stream=stream),
                     asynchronous=asynchronous)

    def ctx_synchronize(self) -> None:
        self.checked("ctx_synchronize")

    def stream_create(self, flags: int = 0) -> int:
        return int(self.value("stream_create", "stream", self.args("stream_create", flags=flags)))

    def stream_destroy(self, stream: int) -> None:
        self.checked("stream_destroy", self.args("stream_destroy", stream=stream))

    def stream_synchronize(self, stream: int) -> None:
        self.checked("stream_synchronize", self.args("stream_synchronize", stream=stream))

    def stream_wait_event(self, stream: int, event: int) -> None:
        self.checked("stream_wait_event",
                     self.args("stream_wait_event", stream=stream, event=event, flags=0),
                     asynchronous=True)

    def event_create(self, flags: int = 0) -> int:
        return int(self.value("event_create", "event", self.args("event_create", flags=flags)))

    def event_destroy(self, event: int) -> None:
        self.checked("event_destroy", self.args("event_destroy", event=event))

    def event_record(self, event: int, stream: int = 0) -> None:
        self.checked("event_record", self.args("event_record", event=event, stream=stream),
                     asynchronous=True)

    def event_synchronize(self, event: int) -> None:
        self.checked("event_synchronize", self.args("event_synchronize", event=event))

    def event_elapsed_ms(self, start: int, end: int) -> float:
        return float(self.value("event_elapsed_time", "milliseconds",
                                 self.args("event_elapsed_time", start=start, end=end)))

    def nop(self) -> None:
        self.checked("nop")
