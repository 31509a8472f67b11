"""A Python guest: the QEMU-side handshake, the mapped region, and a driver-API-shaped interface.

``GuestClient.connect(path)`` does what QEMU's ivshmem-doorbell does on connect, maps the region and
validates it, then does what a guest process does (docs/protocol.md §1.5-1.8): claims a channel with an
open-file-description lock on its own description of the region (``/proc/self/fd/<memfd>``), opens it,
keeps it alive with a heartbeat thread, and closes it in :meth:`GuestClient.close`; the kernel drops
the claim however the process ends. ``call()`` is raw access to any catalog call; the typed helpers
(``mem_alloc``, ``memcpy_htod``, ``stream_create``, …) raise :class:`CudaCallError` on failure, like a driver
binding would. Payloads go through the data arena, which this side owns: space is reused once the
host's submission head has passed the entry that used it. Copies larger than a chunk are split
(``protocol.plan_chunks``); all but the last chunk go ASYNC with ``CHUNK_MORE``; a module image
larger than the arena is uploaded in chunks (:meth:`GuestClient.module_load`). A wait gives up
(``TimeoutError``) only when the host made no progress on our channel for ``timeout`` seconds
(:class:`_Progress`), however long the queued work takes in all.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import mmap
import os
import secrets
import select
import socket
import struct
import threading
import time
from collections import deque
from typing import Any, Final, NamedTuple, Self

import numpy as np

from protocol import (
    CALLS_BY_NAME,
    CallSpec,
    ChannelField,
    ChannelState,
    Codec,
    CompleteFlags,
    Completion,
    CompletionConsumer,
    CUresult,
    DeviceState,
    Region,
    RegionField,
    RegionHeader,
    RemoteProtocolError,
    SubmissionProducer,
    SubmitFlags,
    WireModel,
    codec_for,
    fence,
    plan_chunks,
)

from ._handshake import receive_handshake

__all__ = ["CallResult", "ChannelsBusyError", "CudaCallError", "DeviceGoneError", "GuestClient"]

_ASYNC_ERROR: Final = int(CompleteFlags.ASYNC_ERROR)
_ASYNC: Final = int(SubmitFlags.ASYNC)
_CHUNK_MORE: Final = int(SubmitFlags.CHUNK_MORE)
_MASK32: Final = 0xFFFF_FFFF
# the host's device state and epoch are adjacent u32s, and so are a channel's state and generation:
# one u64 read of each says whether the host still serves us
_STATE_WORD: Final = RegionField.DEVICE_STATE >> 3
assert RegionField.EPOCH == RegionField.DEVICE_STATE + 4 and RegionField.DEVICE_STATE % 8 == 0
_CHANNEL_WORD: Final = ChannelField.CHANNEL_STATE >> 3
assert ChannelField.GENERATION == ChannelField.CHANNEL_STATE + 4 and ChannelField.CHANNEL_STATE % 8 == 0
_NEED_WAKEUP: Final = ChannelField.HOST_NEED_WAKEUP >> 2
_NEED_IRQ: Final = ChannelField.GUEST_NEED_IRQ >> 2
_SQ_HEAD: Final = ChannelField.SQ_HEAD >> 2
_HOST_BUSY: Final = ChannelField.HOST_BUSY >> 2
_CQ_TAIL: Final = ChannelField.CQ_TAIL >> 2
_FLOCK: Final = struct.Struct("hhqqi4x")  # struct flock on Linux x86-64/arm64: type, whence, start, len, pid
#: how long an open waits for the host's acknowledgement, and a close for the channel to be FREE
OPEN_TIMEOUT_S: Final = 5.0
CLOSE_TIMEOUT_S: Final = 1.0
#: after this long spinning for a completion, yield the CPU between looks (an overcommitted host:
#: the worker we wait for may need this core)
YIELD_AFTER_NS: Final = 10_000
#: htod/dtoh copies larger than PIPELINE_MIN are pipelined: the worker copies one chunk out of the
#: arena while the guest fills (or drains) the next. A copy of S bytes in N chunks takes about
#: S/rate + N * (a chunk's calls) + S/N/rate (the first chunk's fill, or the last one's drain), least at
#: N = sqrt(S / (rate * per-chunk cost)): chunks of sqrt(S * PIPELINE_GRAIN), between PIPELINE_MIN and
#: PIPELINE_CHUNK (1 MiB: 4 of 256 KiB; 4 MiB: 8 of 512 KiB; 16 MiB up: 1 MiB), as measured best here
#: (docs/benchmarks.md, pageable copies, sixth session); the C transport's calls cost less a chunk, and
#: its chunks are finer by the same rule (guest/c/vgpu_transport.c)
PIPELINE_MIN: Final = 256 << 10
PIPELINE_CHUNK: Final = 1 << 20
PIPELINE_GRAIN: Final = 64 << 10
#: payloads from this size up start in the arena at the same offset within a page as the application's
#: buffer: glibc's memcpy (``rep movsb`` from 4 KiB to the L2 size) is 10-15x slower on AMD Zen 3 when
#: the destination is 1-31 bytes past the source modulo 4 KiB (docs/benchmarks.md, pageable copies)
PHASE_MIN: Final = 16 << 10
_PAGE: Final = 4096


def copy_chunk(total: int, cap: int) -> int:
    """Chunk size of a pipelined copy of ``total`` bytes (``PIPELINE_GRAIN``), at most ``cap`` (the
    channel's chunk); ``cap`` itself for a copy of ``PIPELINE_MIN`` or less, which goes whole."""
    if total <= PIPELINE_MIN:
        return cap
    chunk = -(-math.isqrt(total * PIPELINE_GRAIN) // PIPELINE_GRAIN) * PIPELINE_GRAIN  # in 64 KiB steps
    return min(cap, max(PIPELINE_MIN, min(PIPELINE_CHUNK, chunk)))


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
    """The host stopped serving this region or our channel (daemon stopped, VM detached, reset, the
    channel's lease expired while this process was stopped)."""


class ChannelsBusyError(Exception):
    """Every channel of the VM is claimed by a live process (CUDA_ERROR_DEVICES_UNAVAILABLE)."""

    status = 46  # CUDA_ERROR_DEVICES_UNAVAILABLE (cudaErrorDevicesUnavailable)


class CallResult(NamedTuple):
    """A call's answer (a named tuple: one is built per synchronous call)."""

    status: int
    flags: int
    result: WireModel | None
    out: bytes


_POSTED: Final = CallResult(0, 0, None, b"")  # what an ASYNC call returns at once
_HTOD: Final = CALLS_BY_NAME["memcpy_htod"].call_id
_DTOH: Final = CALLS_BY_NAME["memcpy_dtoh"].call_id
_HTOD_ARGS: Final = codec_for(CALLS_BY_NAME["memcpy_htod"].args)  # (dst, stream)
_DTOH_ARGS: Final = codec_for(CALLS_BY_NAME["memcpy_dtoh"].args)  # (src, count, stream)
assert _HTOD_ARGS.names == ("dst", "stream") and _DTOH_ARGS.names == ("src", "count", "stream")
_new_tuple = tuple.__new__


class _Arena:
    """A ring of payload bytes; a span is free again once the host consumed its submission (and,
    for an output area the guest has yet to copy out, once the guest says so: ``hold``)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.tail = 0  # total bytes handed out (free-running)
        self.freed = 0  # total bytes the host is done with
        self.inflight: deque[tuple[int, int]] = deque()  # (sq index after push, end total)
        self.hold: int | None = None  # sq index after the oldest output not yet copied out

    def reclaim(self, consumed: int) -> None:
        inflight, hold = self.inflight, self.hold
        while inflight and ((consumed - inflight[0][0]) & _MASK32) < 0x8000_0000 and (
                hold is None or 0 < ((hold - inflight[0][0]) & _MASK32) < 0x8000_0000):
            self.freed = inflight.popleft()[1]  # consumed, and pushed before the held output

    def place(self, length: int, phase: int | None = None) -> int | None:
        """The free-running start of ``length`` bytes, or None if they do not fit yet; ``phase``: the
        start's offset within a page (else 64-byte aligned). The arena starts on a page."""
        if not self.inflight and self.tail % self.size:
            # nothing in flight: start over at the arena's first byte, which a copy just before
            # this one left in the cache, instead of walking cold memory around the ring
            self.tail = self.freed = self.tail + self.size - self.tail % self.size
        start = (self.tail + 63) & ~63 if phase is None else self.tail + ((phase - self.tail) & (_PAGE - 1))
        if start % self.size + length > self.size:
            start += self.size - start % self.size  # do not wrap inside a payload
            if phase is not None and phase + length <= self.size:
                start += phase
        if start + length - self.freed > self.size:
            return None
        return start


class _Progress:
    """The host's progress on our channel while we wait: it consumed a submission (``sq_head``),
    posted a completion (``cq_tail``) or is serving one of our calls now (``host_busy``, +1 every
    0.5 s while it does). A wait gives up only after ``timeout`` seconds in which none moved, not after
    ``timeout`` in all: a GPU's synchronize waits as long as the queued work takes, and one long launch
    or a long queue of them keeps counting as progress (as the C transport's wait does)."""

    __slots__ = ("_deadline", "_mark", "_timeout", "_words")

    def __init__(self, words: memoryview, timeout: float) -> None:
        self._words = words
        self._timeout = timeout
        self._mark = (words[_SQ_HEAD], words[_CQ_TAIL], words[_HOST_BUSY])
        self._deadline = time.monotonic() + timeout

    def stalled(self) -> bool:
        """True once the host has made no progress for the timeout."""
        now = time.monotonic()
        mark = (self._words[_SQ_HEAD], self._words[_CQ_TAIL], self._words[_HOST_BUSY])
        if mark != self._mark:
            self._mark = mark
            self._deadline = now + self._timeout
            return False
        return now > self._deadline


class GuestClient:
    def __init__(self, sock: socket.socket, *, spin_us: int = 50, timeout: float = 30.0) -> None:
        peers = receive_handshake(sock, timeout=timeout)  # a loaded host may take seconds to spawn a worker
        self.sock: socket.socket | None = sock
        self.peer_id = peers.my_id
        self._attach(peers.region_fd, peers.peers[0], peers.peers[self.peer_id], spin_us, timeout)

    @classmethod
    def from_fds(cls, region_fd: int, doorbell_fd: int, irq_fd: int, *, spin_us: int = 50,
                 timeout: float = 30.0) -> Self:
        """A client over a region and its two eventfds without the ivshmem handshake (in-process
        benchmarks and profiles); it owns and closes the descriptors."""
        client = cls.__new__(cls)
        client.sock = None
        client.peer_id = 1
        client._attach(region_fd, [doorbell_fd], [irq_fd], spin_us, timeout)
        return client

    def _attach(self, region_fd: int, doorbell_fds: list[int], irq_fds: list[int], spin_us: int,
                timeout: float) -> None:
        self.region_fd = region_fd
        self._vector_fds = [*doorbell_fds, *irq_fds]
        size = os.fstat(self.region_fd).st_size
        # our channel is populated once claimed (_open_channel): otherwise every first touch of an
        # arena page is a fault, and copies through a fresh arena run at a tenth of memory speed; the
        # other processes' channels are none of our business
        self._map = mmap.mmap(self.region_fd, size, flags=mmap.MAP_SHARED)
        self.header = RegionHeader(memoryview(self._map))
        self._device_words = self.header.buf[:4096].cast("Q")
        self.epoch = self.header.epoch
        self.spin_s = spin_us / 1e6
        self._spin_ns = spin_us * 1000
        self.timeout = timeout
        self.seq = 0
        self.kicks = 0
        # sq_head at our last kick, and whether entries were queued then (_ring: one kick per host sleep)
        self._kick_head = 0
        self._kick_live = False
        self.async_errors: list[Completion] = []
        self._early: dict[int, Completion] = {}
        self._claim_fd = -1
        self._closed = False
        self._beating: threading.Event | None = None
        self._beater: threading.Thread | None = None
        self.nonce = 0
        self.generation = 0
        try:
            self.channel = self._claim()
            self.doorbell_fd = doorbell_fds[self.channel % len(doorbell_fds)]
            self.irq_fd = irq_fds[self.channel % len(irq_fds)]
            self._open_channel()
        except BaseException:
            self._release_all()
            raise

    # -- the channel (docs/protocol.md §1.5-1.8) -------------------------------------------------

    def _claim(self) -> int:
        """Lock one byte per channel on our own open file description of the region: the first free
        one is ours until this process ends (the kernel drops the lock however it ends)."""
        self._claim_fd = os.open(f"/proc/self/fd/{self.region_fd}", os.O_RDWR | os.O_CLOEXEC)
        count = self.header.layout.channel_count
        for index in range(count):
            try:
                fcntl.fcntl(self._claim_fd, fcntl.F_OFD_SETLK,
                            _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, index, 1, 0))
            except OSError:
                continue
            return index
        raise ChannelsBusyError(f"all {count} channels of the VM are held by live processes "
                                "(cudaErrorDevicesUnavailable)")

    def _open_channel(self) -> None:
        """Ask the host for a fresh context on our channel and wait until it acknowledges."""
        block = self.header.channel_block(self.channel)
        with contextlib.suppress(OSError, ValueError):  # MADV_POPULATE_WRITE: Linux 5.14
            self._map.madvise(getattr(mmap, "MADV_POPULATE_WRITE", 23),
                              self.header.layout.channel_offset(self.channel), len(block))
        self.region = Region(block)
        self._words = self.region.u32_view
        self._states = self.region.u64_view
        self.region.set_u32(ChannelField.OWNER_PID, os.getpid())
        self.region.set_u32(ChannelField.OWNER_PEER, self.peer_id)
        self.region.set_u64(ChannelField.HEARTBEAT, self.region.u64(ChannelField.HEARTBEAT) + 1)
        nonce = 0
        taken = (0, self.region.u32(ChannelField.OPEN_ACK), self.region.u32(ChannelField.OPEN_REQUEST))
        while nonce in taken:
            nonce = secrets.randbits(32)
        fence()
        self.region.set_u32(ChannelField.OPEN_REQUEST, nonce)
        fence()
        os.eventfd_write(self.doorbell_fd, 1)
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        while not (self.region.u32(ChannelField.OPEN_ACK) == nonce
                   and self.region.channel_state == ChannelState.OPEN):
            if self.header.device_state != DeviceState.READY or time.monotonic() > deadline:
                raise DeviceGoneError(f"the host did not open channel {self.channel} (device state "
                                      f"{DeviceState(self.header.device_state).name})")
            time.sleep(0.002)
        self.nonce = nonce
        self.generation = self.region.generation
        self.epoch = self.header.epoch
        self._serving = self._serving_word()
        self._channel_serving = int(ChannelState.OPEN) | (self.generation << 32)
        self.sq = SubmissionProducer(self.region)
        self.cq = CompletionConsumer(self.region)
        self.arena = _Arena(self.region.layout.arena_size)
        self.chunk = max(self.region.layout.arena_size // 4, 64 * 1024)
        self._start_heartbeat()

    def _start_heartbeat(self) -> None:
        """A thread of our own bumps the heartbeat every lease_ms / 4: a process busy or blocked keeps
        its channel, a dead one loses it within the lease."""
        self._stop_heartbeat()
        period = max(self.header.layout.lease_ms / 4000, 0.01)
        stop = self._beating = threading.Event()
        words = self.region.u64_view
        index = ChannelField.HEARTBEAT >> 3

        def beat() -> None:
            while not stop.wait(period):
                words[index] = (words[index] + 1) & 0xFFFF_FFFF_FFFF_FFFF

        self._beater = threading.Thread(target=beat, name=f"vgpu-heartbeat-{self.channel}", daemon=True)
        self._beater.start()

    def _stop_heartbeat(self) -> None:
        if self._beating is not None and self._beater is not None:
            self._beating.set()
            self._beater.join()
        self._beating = self._beater = None

    def _close_channel(self) -> None:
        """Ask the host to free our context, and wait (briefly) until it has."""
        self._stop_heartbeat()
        if not self.nonce or self.header.device_state != DeviceState.READY:
            return
        self.region.set_u32(ChannelField.CLOSE_REQUEST, self.nonce)
        fence()
        os.eventfd_write(self.doorbell_fd, 1)
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while self.region.channel_state == ChannelState.OPEN and time.monotonic() < deadline:
            time.sleep(0.002)

    @classmethod
    def connect(cls, path: str | os.PathLike[str], **kwargs: Any) -> Self:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.connect(os.fspath(path))
        return cls(sock, **kwargs)

    def close(self) -> None:
        if self._closed:
            return
        with contextlib.suppress(OSError, ValueError):
            self._close_channel()
        self._release_all()

    def _release_all(self) -> None:
        self._closed = True
        self._stop_heartbeat()
        region = getattr(self, "region", None)
        if region is not None:
            region.release()
        self._device_words.release()
        self.header.release()
        self._map.close()
        for fd in (self.region_fd, *self._vector_fds):
            os.close(fd)
        if self._claim_fd >= 0:
            os.close(self._claim_fd)  # drops the claim
            self._claim_fd = -1
        if self.sock is not None:
            self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recover(self, timeout: float | None = None) -> None:
        """After a reset (DeviceGoneError with RESETTING or a new epoch): wait until the host serves
        again, then start over on the fresh rings. Every handle and pointer from before is gone."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        header = self.header
        while not (header.device_state == DeviceState.READY and (
                header.epoch != self.epoch or self.region.channel_state != ChannelState.OPEN
                or self.region.generation != self.generation)):
            if header.device_state in (DeviceState.STOPPED, DeviceState.BROKEN):
                raise DeviceGoneError(f"device is {DeviceState(header.device_state).name}")
            if time.monotonic() > deadline:
                raise TimeoutError("the host did not finish resetting the device")
            select.select([self.irq_fd], [], [], 0.01)
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(self.irq_fd)
        self._stop_heartbeat()
        self.region.release()
        self.async_errors.clear()
        self._early.clear()
        self._open_channel()  # our claim still holds: a fresh context on the same channel

    def reopen(self) -> None:
        """Close our channel and open it again: a fresh context, as a process that starts over (after
        a sticky error its context fails every call until then). Every handle and pointer is gone."""
        self._close_channel()
        self.region.release()
        self.async_errors.clear()
        self._early.clear()
        self._open_channel()

    # -- the transport --------------------------------------------------------------------------

    def _serving_word(self) -> int:
        """The u64 at DEVICE_STATE while the host serves this epoch: READY, and our epoch above it."""
        return int(DeviceState.READY) | (self.epoch << 32)

    def _check_alive(self) -> None:
        if self._device_words[_STATE_WORD] != self._serving:
            state = self.header.device_state
            raise DeviceGoneError(f"device state {DeviceState(state).name}, epoch {self.header.epoch}")
        if self._states[_CHANNEL_WORD] != self._channel_serving:
            state = self.region.channel_state
            name = ChannelState(state).name if state in ChannelState._value2member_map_ else str(state)
            reason = self.region.u32(ChannelField.CLOSE_REASON)
            raise DeviceGoneError(f"channel {self.channel} is {name} (close reason {reason}), generation "
                                  f"{self.region.generation}: its context is gone")

    def _kick(self) -> None:
        fence()
        if self._words[_NEED_WAKEUP]:
            self._ring()

    def _ring(self) -> None:
        """Ring the doorbell the host asked for (its need-wakeup flag is set), once per host sleep: while
        sq_head stands where it stood at our last kick, made with entries queued, that kick is still
        pending for the host (it cannot sleep again before serving them: it looks at every ring after
        announcing a sleep), so another would only cost a system call, and on PCI a VM exit. A guest
        submitting while its worker woke (~40 us here) otherwise kicked once per submission meanwhile
        (docs/protocol.md 3.3; the C transport's ``kick``)."""
        head = self._words[_SQ_HEAD]
        if self._kick_live and head == self._kick_head:
            return
        self._kick_head = head
        self._kick_live = head != self.sq.index
        os.eventfd_write(self.doorbell_fd, 1)
        self.kicks += 1

    def _reserve(self, length: int, phase: int | None = None) -> int:
        """Arena offset for a payload of ``length`` bytes (at ``phase`` within a page, see
        ``_Arena.place``), waiting for the host if it is full."""
        arena = self.arena
        if length > arena.size:
            raise ValueError(f"payload of {length} bytes exceeds the {arena.size}-byte arena")
        progress = None
        while True:
            arena.reclaim(self.sq.consumed)
            start = arena.place(length, phase)
            if start is not None:
                arena.tail = start + length
                return start % arena.size
            self._check_alive()
            self._kick()
            os.sched_yield()  # the worker that frees the arena may need this CPU
            if progress is None:
                progress = _Progress(self._words, self.timeout)
            elif progress.stalled():
                raise TimeoutError(f"the host consumed no submissions for {self.timeout} s: arena stays full")

    def submit(self, spec: CallSpec, args: WireModel, *, data: bytes | memoryview | None = None,
               out_cap: int = 0, flags: int = 0) -> tuple[int, int]:
        """Write one submission (payload first); returns (seq, arena offset of the output area)."""
        return self._submit(spec.call_id, codec_for(type(args)).encode(args), data, out_cap, flags)

    def _submit(self, call_id: int, raw: bytes, data: bytes | memoryview | None, out_cap: int,
                flags: int, out_phase: int | None = None) -> tuple[int, int]:
        """``out_phase``: where the output area starts within a page (``_Arena.place``)."""
        if (self._device_words[_STATE_WORD] != self._serving
                or self._states[_CHANNEL_WORD] != self._channel_serving):
            self._check_alive()
        in_off = in_len = out_off = 0
        if data is not None and len(data):
            in_len = len(data)
            in_off = self._reserve(in_len, page_phase(data) if in_len >= PHASE_MIN else None)
            self.region.arena[in_off:in_off + in_len] = data
        if out_cap:
            out_off = self._reserve(out_cap, out_phase)
        seq = self.seq = (self.seq + 1) & _MASK32
        if not self.sq.push(seq=seq, call_id=call_id, args=raw, flags=flags, in_off=in_off,
                            in_len=in_len, out_off=out_off, out_cap=out_cap):
            progress = _Progress(self._words, self.timeout)
            while not self.sq.push(seq=seq, call_id=call_id, args=raw, flags=flags, in_off=in_off,
                                   in_len=in_len, out_off=out_off, out_cap=out_cap):
                self._check_alive()
                self._kick()
                self._drain_async_errors()
                os.sched_yield()  # a full ring: the worker that empties it may need this CPU
                if progress.stalled():
                    raise TimeoutError(f"submission ring stays full: the host consumed nothing for "
                                       f"{self.timeout} s")
        if in_len or out_cap:
            self.arena.inflight.append((self.sq.index, self.arena.tail))
        fence()  # publish the tail, then look at the host's flag (the need-wakeup handshake)
        if self._words[_NEED_WAKEUP]:
            self._ring()
        return seq, out_off

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
        if self._early:
            early = self._early.pop(seq, None)
            if early is not None:
                return early
        cq = self.cq
        progress = None
        while True:
            try:
                pending = cq.pending() or cq.spin(self._spin_ns, YIELD_AFTER_NS)
            except RemoteProtocolError:
                self._check_alive()  # a reset re-laid the rings out under us: say so
                raise
            if pending:
                completion = cq.pop()
                if completion.seq == seq and not completion.flags & _ASYNC_ERROR:
                    return completion
                self._file(completion)
                continue
            # nothing within the spin: sleep on our vector until the host kicks it
            self._check_alive()
            if progress is None:
                progress = _Progress(self._words, self.timeout)
            self._words[_NEED_IRQ] = 1
            fence()
            if not cq.pending():
                select.select([self.irq_fd], [], [], 0.05)
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(self.irq_fd)
            self._words[_NEED_IRQ] = 0
            if progress.stalled():
                raise TimeoutError(f"no completion for seq {seq}: the host made no progress on channel "
                                   f"{self.channel} for {self.timeout} s")

    def call(self, name: str, args: WireModel | None = None, *, data: bytes | memoryview | None = None,
             out_cap: int = 0, asynchronous: bool = False, chunk_more: bool = False) -> CallResult:
        """Raw access to any catalog call. ASYNC calls return at once with status 0."""
        spec, no_args, results = _PLANS.get(name) or _plan(name)
        flags = (_ASYNC if asynchronous else 0) | (_CHUNK_MORE if chunk_more else 0)
        if args is None:
            if no_args is None:
                spec.args()  # raises pydantic's complaint: this call has arguments
            raw = b""
        else:
            raw = codec_for(type(args)).encode(args)
        seq, out_off = self._submit(spec.call_id, raw, data, out_cap, flags)
        if asynchronous:
            return _POSTED
        completion = self.wait(seq)
        status = completion.status
        result = None
        if status == 0:
            result = results.empty
            if result is None:
                result = results.decode(completion.results[:results.size], name, "results")
        out = bytes(self.region.arena[out_off:out_off + min(completion.out_len, out_cap)]) if out_cap else b""
        return _new_tuple(CallResult, (status, completion.flags, result, out))  # skips a Python frame

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

    def _copy_chunk(self, total: int) -> int:
        """Chunk size of a copy of ``total`` bytes: small enough that chunks pipeline (the worker
        copies one while the guest copies the next), never more than ``self.chunk``."""
        return copy_chunk(total, self.chunk)

    def memcpy_htod(self, dst: int, data: bytes | bytearray | memoryview, stream: int = 0,
                    asynchronous: bool = False) -> None:
        view = memoryview(data).cast("B")
        chunks = plan_chunks(len(view), self._copy_chunk(len(view)))
        last = len(chunks) - 1
        for i, (off, length) in enumerate(chunks):
            # all chunks but the last are posted: the next one is copied in while the host copies
            # this one out; the last goes as the copy was asked, so an earlier failure comes back on it
            flags = _ASYNC | _CHUNK_MORE if i < last else (_ASYNC if asynchronous else 0)
            seq, _ = self._submit(_HTOD, _HTOD_ARGS.pack(dst + off, stream), view[off:off + length], 0, flags)
            if not flags & _ASYNC:
                completion = self.wait(seq)
                if completion.status:
                    raise CudaCallError("memcpy_htod", completion.status, completion.flags)

    def memcpy_dtoh(self, src: int, count: int, stream: int = 0) -> bytes:
        out = bytearray(count)
        self.memcpy_dtoh_into(src, memoryview(out), stream)
        return bytes(out)

    def memcpy_dtoh_into(self, src: int, dest: memoryview, stream: int = 0) -> None:
        """Copy ``len(dest)`` device bytes into ``dest`` (one copy out of the arena per chunk, as a
        shim copies into the application's own buffer). Two chunks are in flight at a time: the
        host fills the next output area while the guest copies the last one out; an output area
        stays held (``_Arena.hold``) until it has been copied."""
        dest = dest.cast("B")
        arena = self.region.arena
        base = page_phase(dest) if len(dest) >= PHASE_MIN else 0
        chunks = plan_chunks(len(dest), self._copy_chunk(len(dest)))
        flying: deque[tuple[int, int, int, int, int]] = deque()  # seq, out_off, off, length, sq index
        try:
            for i, (off, length) in enumerate(chunks):
                more = _CHUNK_MORE if i < len(chunks) - 1 else 0
                raw = _DTOH_ARGS.pack(src + off, length, stream)
                phase = (base + off) & (_PAGE - 1) if length >= PHASE_MIN else None
                seq, out_off = self._submit(_DTOH, raw, None, length, more, phase)
                flying.append((seq, out_off, off, length, self.sq.index))
                if self.arena.hold is None:
                    self.arena.hold = self.sq.index
                if len(flying) == 2:
                    self._finish_dtoh(flying, dest, arena)
            while flying:
                self._finish_dtoh(flying, dest, arena)
        finally:
            self.arena.hold = None

    def _finish_dtoh(self, flying: deque[tuple[int, int, int, int, int]], dest: memoryview,
                     arena: memoryview) -> None:
        seq, out_off, off, length, _ = flying.popleft()
        completion = self.wait(seq)
        if completion.status:
            for later, *_ in flying:  # answer the rest before raising: nothing left behind
                self.wait(later)
            flying.clear()
            raise CudaCallError("memcpy_dtoh", completion.status, completion.flags)
        dest[off:off + length] = arena[out_off:out_off + length]
        self.arena.hold = flying[0][4] if flying else None

    def module_load(self, image: bytes | bytearray | memoryview) -> int:
        """``cuModuleLoadData``: the image in one call when it fits the arena, otherwise in chunks of
        the copy size (``module_upload_begin``, ``module_upload_chunk``, ``module_load_upload``; the
        host bounds it by ``device.module_bytes``), as the C shim does. The upload is always
        finished, so the host lets it go even when a chunk was refused; the first failure raises."""
        view = memoryview(image).cast("B")
        if len(view) <= self.arena.size:
            return int(self.value("module_load_data", "module", data=view))
        begin = self.args("module_upload_begin", bytes=len(view))
        upload = int(self.value("module_upload_begin", "upload", begin))
        refused: CudaCallError | None = None
        for off, length in plan_chunks(len(view), self.chunk):
            args = self.args("module_upload_chunk", upload=upload, offset=off)
            chunk = self.call("module_upload_chunk", args, data=view[off:off + length])
            if chunk.status:
                refused = CudaCallError("module_upload_chunk", chunk.status, chunk.flags)
                break
        loaded = self.call("module_load_upload", self.args("module_load_upload", upload=upload))
        if refused is not None:
            raise refused
        if loaded.status:
            raise CudaCallError("module_load_upload", loaded.status, loaded.flags)
        return int(loaded.result.module)  # type: ignore[union-attr]

    def module_unload(self, module: int) -> None:
        self.checked("module_unload", self.args("module_unload", module=module))

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


def page_phase(buffer: bytes | bytearray | memoryview) -> int:
    """Where ``buffer`` starts within a page."""
    return int(np.frombuffer(buffer, dtype=np.uint8).ctypes.data) & (_PAGE - 1)


_Plan = tuple[CallSpec, Any, Codec]
_PLANS: dict[str, _Plan] = {}


def _plan(name: str) -> _Plan:
    """What ``call(name)`` needs, looked up once: the spec, the argument model to send when none is
    given (models are frozen, so one instance serves every call; None where the call has fields),
    and the result codec."""
    spec = CALLS_BY_NAME[name]
    no_args = codec_for(spec.args).empty
    plan = _PLANS[name] = (spec, no_args, codec_for(spec.result))
    return plan
