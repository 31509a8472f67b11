"""One soak guest process: sessions of random valid and invalid calls on a channel of one VM, each
answer checked. Several such processes share a VM at once, as a guest's processes do.

Run by ``python -m soak`` as ``python -m soak._guest '<json>'``; writes its tally as JSON to the path
it is given. Each session claims and opens a channel of its own and ends one of three ways, chosen at
random: *clean* (the process frees everything it holds, then the daemon's status for its channel must
show no memory and no handles), *abandoned* (the process drops its connection holding everything,
without closing the channel: the worker must release it all), or *broken* (the process writes an
impossible ring index: its channel alone is closed, the VM and its other processes go on). After each
session the daemon's figures for the channel (what its context still held after the close) must be zero.

Every call's status is predicted; a prediction that fails is a *surprise* (none are expected), bytes
read back that differ from those written are *corruption* (none are expected).
"""

from __future__ import annotations

import json
import os
import random
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from guest import DeviceGoneError, GuestClient
from mediator._control_client import request
from protocol import (
    CALLS_BY_NAME,
    ChannelField,
    ChannelState,
    CloseReason,
    CublasStatus,
    CUresult,
    DeviceState,
    MemAccessFlags,
    StreamCaptureMode,
    SubmitFlags,
    encode_args,
)

__all__ = ["GuestSpec", "main"]

OK = 0
INVALID_VALUE = int(CUresult.CUDA_ERROR_INVALID_VALUE)
INVALID_HANDLE = int(CUresult.CUDA_ERROR_INVALID_HANDLE)
OOM = int(CUresult.CUDA_ERROR_OUT_OF_MEMORY)
GRANULE = 2 << 20


@dataclass
class GuestSpec:
    vm: int
    socket: str
    control: str
    seconds: float
    seed: int
    out: str
    process: int = 1  # which of the VM's soak processes this is
    processes: int = 1  # how many share the VM (and its memory quota)
    quota: int = 0  # the VM's memory quota, as the soak set it


@dataclass
class Tally:
    calls: int = 0
    sessions: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)  # every non-zero status seen, by name
    surprises: list[str] = field(default_factory=list)
    surprise_count: int = 0
    corruption: int = 0
    leaks: list[dict[str, Any]] = field(default_factory=list)
    checks: Counter[str] = field(default_factory=Counter)

    def surprise(self, what: str) -> None:
        self.surprise_count += 1
        if len(self.surprises) < 20:
            self.surprises.append(what)


def _name(status: int, cublas: bool = False) -> str:
    domain: Any = CublasStatus if cublas else CUresult
    try:
        return str(domain(status).name)
    except ValueError:
        return str(status)


class Session:
    """One connection's worth of traffic, with the model of what the guest holds."""

    def __init__(self, gpu: GuestClient, rng: random.Random, tally: Tally, processes: int = 1,
                 vm_quota: int = 0) -> None:
        self.gpu = gpu
        self.rng = rng
        self.tally = tally
        self.blocks: dict[int, bytearray] = {}
        self.freed: list[int] = []
        self.streams: list[int] = []
        self.events: list[int] = []
        self.dead: list[int] = []  # destroyed handles of any kind
        self.vmm: list[tuple[int, int, int]] = []  # (handle, reservation, size) mapped and accessible
        self.blas: int | None = None
        # Alone on the VM, a process owns its quota and every out-of-memory answer is predicted. Sharing it,
        # each keeps to its share (a little under an equal part, so that what one allocates for a moment
        # never runs another out) and only what no share can satisfy is predicted to fail.
        self.alone = processes == 1
        self.vm_quota = vm_quota or self.gpu.mem_get_info()[1]
        self.quota = self.gpu.mem_get_info()[0] if self.alone else self.vm_quota * 7 // (8 * processes)
        self.used = 0

    # -- calls and their predictions ------------------------------------------------------------------

    def expect(self, expected: int, name: str, *, data: bytes | None = None, out_cap: int = 0,
               asynchronous: bool = False, **args: Any) -> bytes:
        spec = CALLS_BY_NAME[name]
        result = self.gpu.call(name, spec.args(**args), data=data, out_cap=out_cap, asynchronous=asynchronous)
        self.tally.calls += 1
        cublas = spec.status_domain == "cublasStatus_t"
        if result.status:
            self.tally.statuses[_name(result.status, cublas)] += 1
        if result.status != expected:
            self.tally.surprise(f"{name}({args}) answered {_name(result.status, cublas)}, "
                                f"expected {_name(expected, cublas)}")
        return result.out

    def make(self, name: str, field_name: str, **args: Any) -> int | None:
        spec = CALLS_BY_NAME[name]
        result = self.gpu.call(name, spec.args(**args))
        self.tally.calls += 1
        if result.status:
            self.tally.statuses[_name(result.status)] += 1
            self.tally.surprise(f"{name}({args}) answered {_name(result.status)}")
            return None
        return int(getattr(result.result, field_name))

    def raw(self, expected: int, call_id: int, args: bytes = b"", **fields: int) -> None:
        """A submission written exactly as given, bypassing every check the client library makes."""
        gpu = self.gpu
        gpu.seq += 1
        if not gpu.sq.push(seq=gpu.seq, call_id=call_id, args=args, **fields):
            return
        gpu._kick()
        completion = gpu.wait(gpu.seq)
        self.tally.calls += 1
        if completion.status:
            self.tally.statuses[_name(completion.status)] += 1
        if completion.status != expected:
            self.tally.surprise(f"raw call {call_id:#x} answered {_name(completion.status)}, "
                                f"expected {_name(expected)}")

    def pick_block(self) -> tuple[int, bytearray] | None:
        if not self.blocks:
            return None
        ptr = self.rng.choice(list(self.blocks))
        return ptr, self.blocks[ptr]

    # -- valid traffic ----------------------------------------------------------------------------

    def alloc(self) -> None:
        size = self.rng.choice([256, 4096, 65536, 1 << 20, 3 << 20])
        if self.used + size > self.quota:
            if self.alone:
                self.expect(OOM, "mem_alloc", bytesize=size)
            return
        ptr = self.make("mem_alloc", "dptr", bytesize=size)
        if ptr is not None:
            self.blocks[ptr] = bytearray(size)
            self.used += size

    def free(self) -> None:
        picked = self.pick_block()
        if picked is None:
            return
        ptr, block = picked
        self.expect(OK, "mem_free", dptr=ptr)
        del self.blocks[ptr]
        self.freed.append(ptr)
        self.used -= len(block)

    def copy_in(self) -> None:
        picked = self.pick_block()
        if picked is None:
            return
        ptr, block = picked
        count = self.rng.randint(1, min(len(block), 65536))
        offset = self.rng.randint(0, len(block) - count)
        payload = self.rng.randbytes(count)
        self.expect(OK, "memcpy_htod", data=payload, dst=ptr + offset, stream=0,
                    asynchronous=self.rng.random() < 0.3)
        block[offset:offset + count] = payload

    def copy_out(self) -> None:
        picked = self.pick_block()
        if picked is None:
            return
        ptr, block = picked
        count = self.rng.randint(1, min(len(block), 65536))
        offset = self.rng.randint(0, len(block) - count)
        out = self.expect(OK, "memcpy_dtoh", src=ptr + offset, count=count, stream=0, out_cap=count)
        self.tally.checks["bytes read back"] += 1
        if out != bytes(block[offset:offset + count]):
            self.tally.corruption += 1

    def memset(self) -> None:
        picked = self.pick_block()
        if picked is None:
            return
        ptr, block = picked
        count, value = self.rng.randint(1, len(block)), self.rng.randrange(256)
        self.expect(OK, "memset_d8", dst=ptr, count=count, value=value, stream=0,
                    asynchronous=self.rng.random() < 0.5)
        block[:count] = bytes([value]) * count

    def copy_between(self) -> None:
        one, two = self.pick_block(), self.pick_block()
        if one is None or two is None:
            return
        count = self.rng.randint(1, min(len(one[1]), len(two[1])))
        self.expect(OK, "memcpy_dtod", dst=one[0], src=two[0], count=count, stream=0)
        one[1][:count] = bytes(two[1][:count])

    def streams_and_events(self) -> None:
        rng = self.rng
        if len(self.streams) < 8 and rng.random() < 0.5:
            stream = self.make("stream_create", "stream", flags=rng.choice([0, 1]))
            if stream is not None:
                self.streams.append(stream)
        if len(self.events) < 8 and rng.random() < 0.5:
            event = self.make("event_create", "event", flags=0)
            if event is not None:
                self.events.append(event)
        if self.streams and self.events:
            stream, event = rng.choice(self.streams), rng.choice(self.events)
            self.expect(OK, "event_record", event=event, stream=stream)
            self.expect(OK, "stream_wait_event", stream=rng.choice(self.streams), event=event, flags=0)
            self.expect(OK, "event_synchronize", event=event)
            self.expect(OK, "stream_synchronize", stream=stream)
        if self.streams and rng.random() < 0.3:
            stream = self.streams.pop(rng.randrange(len(self.streams)))
            self.expect(OK, "stream_destroy", stream=stream)
            self.dead.append(stream)
        if self.events and rng.random() < 0.3:
            event = self.events.pop(rng.randrange(len(self.events)))
            self.expect(OK, "event_destroy", event=event)
            self.dead.append(event)

    def vmm_cycle(self) -> None:
        """Create, reserve, map, grant access, copy through it; sometimes keep it, usually tear it down."""
        if self.used + GRANULE > self.quota:
            if self.alone:
                self.expect(OOM, "mem_create", size=GRANULE, device=0, flags=0)
            return
        handle = self.make("mem_create", "handle", size=GRANULE, device=0, flags=0)
        base = self.make("mem_address_reserve", "dptr", size=2 * GRANULE, alignment=0, addr=0, flags=0)
        if handle is None or base is None:
            return
        self.used += GRANULE
        self.expect(OK, "mem_map", ptr=base, size=GRANULE, offset=0, handle=handle, flags=0)
        self.expect(CUresult.CUDA_ERROR_ILLEGAL_ADDRESS, "memcpy_htod", data=b"no access yet", dst=base,
                    stream=0)
        self.expect(OK, "mem_set_access", ptr=base, size=GRANULE, device=0,
                    flags=MemAccessFlags.CU_MEM_ACCESS_FLAGS_PROT_READWRITE)
        payload = self.rng.randbytes(4096)
        self.expect(OK, "memcpy_htod", data=payload, dst=base + GRANULE - 4096, stream=0)
        self.tally.checks["bytes read back"] += 1
        out = self.expect(OK, "memcpy_dtoh", src=base + GRANULE - 4096, count=4096, stream=0, out_cap=4096)
        if out != payload:
            self.tally.corruption += 1
        # wrong orders: freeing a range that is still mapped, mapping twice, unmapping what is not mapped
        self.expect(INVALID_VALUE, "mem_address_free", ptr=base, size=2 * GRANULE)
        self.expect(CUresult.CUDA_ERROR_ALREADY_MAPPED, "mem_map", ptr=base, size=GRANULE, offset=0,
                    handle=handle, flags=0)
        self.expect(INVALID_VALUE, "mem_unmap", ptr=base + GRANULE, size=GRANULE)
        self.expect(OK, "mem_release", handle=handle)  # the memory lives on while mapped
        self.dead.append(handle)
        if len(self.vmm) < 3 and self.rng.random() < 0.3:  # a few stay mapped until the session ends
            self.vmm.append((handle, base, 2 * GRANULE))
            return
        self.unmap_vmm(base, 2 * GRANULE)

    def unmap_vmm(self, base: int, size: int) -> None:
        self.expect(OK, "mem_unmap", ptr=base, size=GRANULE)
        self.used -= GRANULE
        self.expect(OK, "mem_address_free", ptr=base, size=size)

    def gemm(self) -> None:
        """A small SGEMM checked against NumPy."""
        n = 16
        size = 3 * n * n * 4
        if self.used + size > self.quota:
            return
        if self.blas is None:
            self.blas = self.make("cublas_create", "handle")
            if self.blas is None:
                return
        ptr = self.make("mem_alloc", "dptr", bytesize=size)
        if ptr is None:
            return
        a = np.asarray([self.rng.uniform(-1, 1) for _ in range(n * n)], dtype=np.float32)
        b = np.asarray([self.rng.uniform(-1, 1) for _ in range(n * n)], dtype=np.float32)
        self.expect(OK, "memcpy_htod", data=a.tobytes() + b.tobytes(), dst=ptr, stream=0)
        step = n * n * 4
        self.expect(OK, "cublas_sgemm", handle=self.blas, transa=0, transb=0, m=n, n=n, k=n, alpha=1.0, a=ptr,
                    lda=n, b=ptr + step, ldb=n, beta=0.0, c=ptr + 2 * step, ldc=n)
        out = self.expect(OK, "memcpy_dtoh", src=ptr + 2 * step, count=step, stream=0, out_cap=step)
        want = (a.reshape(n, n, order="F") @ b.reshape(n, n, order="F")).reshape(-1, order="F")
        self.tally.checks["GEMMs against NumPy"] += 1
        if len(out) != step or not np.allclose(np.frombuffer(out, dtype=np.float32), want, atol=1e-4):
            self.tally.corruption += 1
        self.expect(OK, "mem_free", dptr=ptr)

    def graph(self) -> None:
        """Capture memsets into a graph (RELAXED, as GGML does), replay it, check the bytes."""
        picked = self.pick_block()
        if picked is None or not self.streams:
            return
        ptr, block = picked
        stream = self.rng.choice(self.streams)
        value = self.rng.randrange(256)
        self.expect(OK, "stream_begin_capture", stream=stream,
                    mode=StreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED)
        count = min(len(block), 4096)
        self.expect(OK, "memset_d8", dst=ptr, count=count, value=value, stream=stream, asynchronous=True)
        # waiting for a capturing stream is refused, and invalidates the capture
        if self.rng.random() < 0.2:
            self.expect(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "stream_synchronize", stream=stream)
            self.expect(CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "stream_end_capture", stream=stream)
            return
        graph = self.make("stream_end_capture", "graph", stream=stream)
        if graph is None:
            return
        graph_exec = self.make("graph_instantiate", "graph_exec", graph=graph, flags=0)
        if graph_exec is None:
            return
        self.expect(OK, "graph_launch", graph_exec=graph_exec, stream=stream)
        self.expect(OK, "stream_synchronize", stream=stream)
        block[:count] = bytes([value]) * count
        self.expect(OK, "graph_exec_destroy", graph_exec=graph_exec)
        self.expect(OK, "graph_destroy", graph=graph)
        self.dead += [graph, graph_exec]

    def info(self) -> None:
        free, _ = self.gpu.mem_get_info()
        self.tally.calls += 1
        self.tally.checks["memory free as the guest counts it"] += 1
        if (free != self.quota - self.used) if self.alone else not 0 <= free <= self.vm_quota - self.used:
            self.tally.surprise(f"mem_get_info free {free}, the guest holds {self.used} of {self.quota}")

    # -- invalid traffic ---------------------------------------------------------------------------

    def invalid(self) -> None:
        rng, gpu = self.rng, self.gpu
        choice = rng.randrange(9)
        if choice == 0 and self.freed:  # double free and use after free
            ptr = rng.choice(self.freed)
            self.expect(INVALID_VALUE, "mem_free", dptr=ptr)
            self.expect(INVALID_VALUE, "memcpy_dtoh", src=ptr, count=16, stream=0, out_cap=16)
        elif choice == 1 and self.blocks:  # starts inside an allocation and runs past its end
            ptr, block = self.pick_block() or (0, bytearray())
            self.expect(INVALID_VALUE, "memcpy_htod", data=bytes(64), dst=ptr + len(block) - 32, stream=0)
            self.expect(INVALID_VALUE, "memset_d8", dst=ptr, count=len(block) + 1, value=0, stream=0)
        elif choice == 2 and self.dead:  # stale handles of every kind
            handle = rng.choice(self.dead)
            self.expect(INVALID_HANDLE, "stream_synchronize", stream=handle)
            self.expect(INVALID_HANDLE, "event_query", event=handle)
        elif choice == 3 and self.streams and self.events:  # a handle of the wrong kind
            self.expect(INVALID_HANDLE, "stream_synchronize", stream=rng.choice(self.events))
            self.expect(INVALID_HANDLE, "event_synchronize", event=rng.choice(self.streams))
        elif choice == 4:  # never issued
            self.expect(INVALID_HANDLE, "stream_destroy", stream=rng.randint(1 << 20, 2**32 - 1))
            self.expect(int(CublasStatus.CUBLAS_STATUS_NOT_INITIALIZED), "cublas_destroy",
                        handle=rng.randint(1 << 20, 2**32 - 1))
        elif choice == 5:  # over the quota (the VM's whole quota when processes share it)
            beyond = self.quota - self.used if self.alone else self.vm_quota
            self.expect(OOM, "mem_alloc", bytesize=beyond + 1)
        elif choice == 6:  # malformed frames
            spec = CALLS_BY_NAME["memcpy_htod"]
            args = encode_args(gpu.args("memcpy_htod", dst=0, stream=0))
            self.raw(int(CUresult.CUDA_ERROR_NOT_SUPPORTED), 0x7000 + rng.randrange(0x800))
            self.raw(INVALID_VALUE, spec.call_id, args[:rng.randrange(len(args))])
            arena = gpu.region.layout.arena_size
            self.raw(INVALID_VALUE, spec.call_id, args, in_off=arena - 8, in_len=64)
            self.raw(INVALID_VALUE, spec.call_id, args, in_off=0xFFFF_FF00, in_len=0x200)
        elif choice == 7:  # an enum value CUDA does not have
            self.raw(INVALID_VALUE, CALLS_BY_NAME["mem_get_allocation_granularity"].call_id,
                     struct.pack("<iI", 0, 7 + rng.randrange(100)))
        elif choice == 8:  # a call with no asynchronous form posted ASYNC: latched, reported once
            spec = CALLS_BY_NAME["mem_alloc"]
            self.raw_async(spec.call_id, encode_args(gpu.args("mem_alloc", bytesize=256)))
            self.expect(INVALID_VALUE, "ctx_synchronize")
            self.expect(OK, "ctx_synchronize")
            gpu.async_errors.clear()

    def raw_async(self, call_id: int, args: bytes) -> None:
        gpu = self.gpu
        gpu.seq += 1
        if gpu.sq.push(seq=gpu.seq, call_id=call_id, args=args, flags=int(SubmitFlags.ASYNC)):
            self.tally.calls += 1
            self.tally.statuses["CUDA_ERROR_INVALID_VALUE"] += 1  # its async error, seen at the next wait
            gpu._kick()

    # -- the session's end --------------------------------------------------------------------------

    def release_everything(self) -> None:
        for ptr in list(self.blocks):
            self.expect(OK, "mem_free", dptr=ptr)
        self.blocks.clear()
        for _handle, base, size in self.vmm:
            self.unmap_vmm(base, size)
        self.vmm.clear()
        for stream in self.streams:
            self.expect(OK, "stream_destroy", stream=stream)
        for event in self.events:
            self.expect(OK, "event_destroy", event=event)
        if self.blas is not None:
            self.expect(OK, "cublas_destroy", handle=self.blas)
        self.streams, self.events, self.blas, self.used = [], [], None, 0

    OPS = ("alloc", "alloc", "free", "copy_in", "copy_in", "copy_out", "copy_out", "memset", "copy_between",
           "streams_and_events", "vmm_cycle", "gemm", "graph", "info", "invalid", "invalid", "invalid")

    def step(self) -> None:
        if self.used > self.quota * 3 // 4 and self.rng.random() < 0.5:
            self.free()  # keep room to allocate: most of the traffic should be served, not refused
            return
        getattr(self, self.rng.choice(self.OPS))()


def _vm_row(spec: GuestSpec) -> dict[str, Any]:
    row: dict[str, Any] = request(spec.control, {"cmd": "status"})["vms"][spec.vm - 1]
    return row


def _channel_row(spec: GuestSpec, index: int) -> dict[str, Any]:
    row: dict[str, Any] = next(c for c in _vm_row(spec)["channels"] if c["index"] == index)
    return row


def _held_by_me(spec: GuestSpec, index: int) -> tuple[int, int] | None:
    """What this process's open channel holds, or None once the channel is no longer open and ours."""
    row = _channel_row(spec, index)
    if row["state"] != "open" or row["owner_pid"] != os.getpid():
        return None
    return int(row["memory_used"]), int(row["live_handles"])


def _released(spec: GuestSpec, index: int) -> bool:
    """Our channel closed and its context freed (or already someone else's: nothing left to look at)."""
    row = _channel_row(spec, index)
    if row["owner_pid"] != os.getpid():
        return True
    return bool(row["state"] != "open" and row["memory_used"] == 0 and row["live_handles"] == 0)


def _wait(what: str, check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def _end_broken(gpu: GuestClient, tally: Tally) -> None:
    """An impossible submission tail: the host closes this channel alone, the VM serves on."""
    tail = gpu.region.u32(ChannelField.SQ_TAIL)
    gpu.region.set_u32(ChannelField.SQ_TAIL, tail + gpu.region.layout.sq_entries + 7)
    gpu._kick()
    if not _wait("broken", lambda: gpu.region.channel_state == ChannelState.CLOSED_BY_HOST):
        tally.surprise("an impossible submission tail did not close the channel")
    elif (reason := gpu.region.u32(ChannelField.CLOSE_REASON)) != CloseReason.PROTOCOL_VIOLATION:
        tally.surprise(f"a broken channel was closed for reason {reason}")
    if gpu.header.device_state != DeviceState.READY:
        tally.surprise("one process's broken channel took the VM's device down")
    tally.checks["broken channels, the VM serving on"] += 1


def _session(spec: GuestSpec, tally: Tally, rng: random.Random, ending: str, deadline: float) -> int:
    """One connection's worth of traffic on a channel of our own; returns the channel's index."""
    gpu = GuestClient.connect(spec.socket, timeout=60)
    index = gpu.channel
    try:
        gpu.init()
        session = Session(gpu, rng, tally, spec.processes, spec.quota)
        until = min(deadline, time.monotonic() + rng.uniform(5, 30))
        while time.monotonic() < until:
            session.step()
        if ending == "clean":
            session.release_everything()
            gpu.ctx_synchronize()
            tally.checks["clean session ends"] += 1
            if not _wait("nothing held", lambda: _held_by_me(spec, index) in ((0, 0), None)):
                row = _channel_row(spec, index)
                tally.leaks.append({"when": "clean end", "channel": index, "memory_used": row["memory_used"],
                                    "live_handles": row["live_handles"]})
        elif ending == "broken":
            _end_broken(gpu, tally)
    except DeviceGoneError as exc:
        tally.surprise(f"the device went away mid-session: {exc}")
    finally:
        if ending == "abandoned":
            gpu._release_all()  # gone without closing the channel, holding everything
        else:
            gpu.close()
    return index


def run(spec: GuestSpec, tally: Tally) -> None:
    rng = random.Random(spec.seed)
    deadline = time.monotonic() + spec.seconds
    while time.monotonic() < deadline:
        ending = rng.choices(["clean", "abandoned", "broken"], weights=[75, 20, 5])[0]
        index = _session(spec, tally, rng, ending, deadline)
        tally.sessions[ending] += 1
        # the session is over: the worker must have freed everything its channel held
        if not _wait("session over", partial(_released, spec, index), 60):
            row = _channel_row(spec, index)
            tally.leaks.append({"when": f"after a {ending} session", "channel": index, "state": row["state"],
                                "memory_used": row["memory_used"], "live_handles": row["live_handles"]})
            continue
        tally.checks["channels released by the worker"] += 1


def main(argv: list[str] | None = None) -> int:
    spec = GuestSpec(**json.loads((sys.argv[1:] if argv is None else argv)[0]))
    tally, crash = Tally(), None
    try:
        run(spec, tally)
    except Exception as exc:  # the report says what went wrong; the soak fails on it
        crash = f"{type(exc).__name__}: {exc}"
    with open(spec.out, "w") as out:
        json.dump({"vm": spec.vm, "process": spec.process, "calls": tally.calls,
                   "sessions": dict(tally.sessions),
                   "statuses": dict(tally.statuses), "surprises": tally.surprises,
                   "surprise_count": tally.surprise_count, "corruption": tally.corruption,
                   "leaks": tally.leaks, "checks": dict(tally.checks), "crash": crash}, out)
    return 0 if crash is None else 1


if __name__ == "__main__":
    sys.exit(main())
