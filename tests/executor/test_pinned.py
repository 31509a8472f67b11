"""Pinned host memory in the region (#19), on the host: the per-VM allocator (``executor._pinned``), the
calls that hand out, free and copy through its ranges (``sim``, and ``cuda`` against a stand-in for the
driver), and what a guest may name: every offset and length is checked against the calling context's
own live ranges, refused with a CUDA error, counted and logged."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import structlog

from benchmarks.mapped_memory import PTX
from executor import CallIO, CudaError, Executor, PinnedAllocator, PinnedArea, SimExecutor, VmShare
from protocol import CALLS_BY_NAME, CUresult, WireModel
from protocol.models import (
    MemcpyDtoHPinnedArgs,
    MemcpyHtoDPinnedArgs,
    MemFreeHostArgs,
    MemHostAliasArgs,
    MemHostAllocArgs,
)
from tests.reliability._ring_pair import RingPair

PAGE = 4096
MIB = 1 << 20


def io() -> CallIO:
    return CallIO(memoryview(b""), memoryview(bytearray(0)))


def call(executor: Executor, name: str, *, blocking: bool = True, inp: bytes = b"", **args: Any) -> WireModel:
    spec = CALLS_BY_NAME[name]
    return executor.execute(spec, spec.args(**args), CallIO(memoryview(inp), memoryview(bytearray(0)), blocking))


def refused(executor: Executor, name: str, *, inp: bytes = b"", **args: Any) -> CudaError:
    with pytest.raises(CudaError) as caught:
        call(executor, name, inp=inp, **args)
    return caught.value


# -- the allocator ---------------------------------------------------------------------------------

def test_ranges_are_whole_pages_first_fit_and_freed_runs_coalesce() -> None:
    a = PinnedAllocator(16 * PAGE)
    first, second, third = a.alloc(1, 1), a.alloc(1, PAGE + 1), a.alloc(2, 3 * PAGE)
    assert (first, second, third) == (0, PAGE, 3 * PAGE)
    assert first is not None and second is not None and third is not None
    assert a.used == 6 * PAGE
    assert a.free(1, second) == 2 * PAGE
    assert a.alloc(2, 2 * PAGE) == PAGE  # first fit reuses the hole exactly
    assert a.free(1, first) == PAGE and a.free(2, PAGE) == 2 * PAGE and a.free(2, third) == 3 * PAGE
    assert a.used == 0 and len(a) == 0
    assert a.alloc(3, 16 * PAGE) == 0  # the holes merged back into one run of the whole area


def test_a_range_is_its_owners_alone_and_every_question_is_checked() -> None:
    a = PinnedAllocator(8 * PAGE)
    mine = a.alloc(1, 2 * PAGE)
    assert mine == 0
    assert a.find(1, 100, 2 * PAGE - 100) == (0, 2 * PAGE)
    assert a.find(1, 2 * PAGE - 1, 0) == (0, 2 * PAGE)
    for owner, offset, length in [(2, 0, 1),  # another owner's
                                  (1, 100, 2 * PAGE),  # runs past the range's end
                                  (1, 2 * PAGE, 1),  # free memory
                                  (1, -1, 1), (1, 0, -1),  # negative
                                  (1, 8 * PAGE, 0), (1, 1 << 64, 1)]:  # outside the area
        assert a.find(owner, offset, length) is None, (owner, offset, length)
    assert a.free(2, mine) is None  # not its range
    assert a.free(1, mine + PAGE) is None  # not a range's start
    assert a.alloc(1, 0) is None and a.alloc(1, -5) is None and a.alloc(1, 9 * PAGE) is None
    assert a.alloc(2, 6 * PAGE) == 2 * PAGE
    assert a.alloc(2, 1) is None  # exhausted
    assert a.free_owner(2) == [(2 * PAGE, 6 * PAGE)] and a.owned(2) == 0 and a.owned(1) == 2 * PAGE


def test_freed_and_abandoned_ranges_are_discarded_or_zeroed_never_handed_on_with_their_bytes() -> None:
    buf = bytearray(8 * PAGE)
    discarded: list[tuple[int, int]] = []
    area = PinnedArea(memoryview(buf), lambda start, size: discarded.append((start, size)))
    one, two = area.client(), area.client()
    a, b = one.alloc(PAGE, "test"), one.alloc(3 * PAGE, "test")
    one.free(a, "test")
    one.close()
    assert discarded == [(0, PAGE), (PAGE, 3 * PAGE)] and area.allocator.used == 0

    def failing(start: int, size: int) -> None:
        raise OSError("no MADV_REMOVE here")

    area = PinnedArea(memoryview(buf), failing)
    start = area.client().alloc(PAGE, "test")
    buf[start:start + PAGE] = b"\xab" * PAGE
    area.allocator.free_owner(1)
    area._discard(start, PAGE)
    assert bytes(buf[start:start + PAGE]) == bytes(PAGE)  # zeroed instead
    assert two.owner != one.owner and b == PAGE


def test_an_exhausted_area_answers_out_of_memory_and_is_logged_once() -> None:
    area = PinnedArea(memoryview(bytearray(4 * PAGE)))
    client = area.client()
    client.alloc(4 * PAGE, "cuMemHostAlloc")
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            with pytest.raises(CudaError) as caught:
                client.alloc(PAGE, "cuMemHostAlloc")
            assert caught.value.status == CUresult.CUDA_ERROR_OUT_OF_MEMORY
    assert [entry["event"] for entry in logs] == [
        "pinned area exhausted: the guest falls back to pageable (staged) memory"]


# -- sim: the calls ----------------------------------------------------------------------------------

@pytest.fixture
def vm() -> tuple[VmShare, bytearray]:
    buf = bytearray(4 * MIB)
    share = VmShare("sim")
    share.pinned = PinnedArea(memoryview(buf))
    return share, buf


def test_sim_copies_straight_between_pinned_ranges_and_device_memory(vm: tuple[VmShare, bytearray]) -> None:
    share, buf = vm
    ex = share.create_context()
    src = call(ex, "mem_host_alloc", bytesize=MIB, flags=0).offset  # type: ignore[attr-defined]
    dst = call(ex, "mem_host_alloc", bytesize=MIB, flags=1).offset  # type: ignore[attr-defined]
    data = np.random.default_rng(19).integers(0, 256, MIB, dtype=np.uint8).tobytes()
    buf[src:src + MIB] = data
    dev = call(ex, "mem_alloc", bytesize=MIB).dptr  # type: ignore[attr-defined]
    call(ex, "memcpy_htod_pinned", dst=dev, offset=src + 7, count=MIB - 7, stream=0)
    call(ex, "memcpy_dtoh_pinned", src=dev, offset=dst, count=MIB - 7, stream=0, blocking=False)
    assert bytes(buf[dst:dst + MIB - 7]) == data[7:]
    assert share.pinned_used() == 2 * MIB
    call(ex, "mem_free_host", offset=src)
    assert share.pinned_used() == MIB
    share.close_context(ex)  # the channel closes: its remaining range comes back
    assert share.pinned_used() == 0


def test_what_a_guest_names_in_the_pinned_area_is_checked(vm: tuple[VmShare, bytearray]) -> None:
    share, _ = vm
    ex, other = share.create_context(), share.create_context()
    mine = call(ex, "mem_host_alloc", bytesize=2 * PAGE, flags=0).offset  # type: ignore[attr-defined]
    theirs = call(other, "mem_host_alloc", bytesize=PAGE, flags=0).offset  # type: ignore[attr-defined]
    dev = call(ex, "mem_alloc", bytesize=4 * PAGE).dptr  # type: ignore[attr-defined]
    bad = [("memcpy_htod_pinned", {"dst": dev, "offset": theirs, "count": 16, "stream": 0}),  # another process's
           ("memcpy_dtoh_pinned", {"src": dev, "offset": mine + PAGE, "count": PAGE + 1, "stream": 0}),  # past the end
           ("memcpy_htod_pinned", {"dst": dev, "offset": (1 << 64) - 1, "count": 1, "stream": 0}),  # outside the area
           ("memcpy_dtoh_pinned", {"src": dev, "offset": mine, "count": (1 << 64) - 1, "stream": 0}),
           ("mem_free_host", {"offset": theirs}),  # not its own
           ("mem_free_host", {"offset": mine + PAGE})]  # not a range's start
    for name, args in bad:
        assert refused(ex, name, **args).status == CUresult.CUDA_ERROR_INVALID_VALUE, (name, args)
    # a device range outside the VM's allocations is refused too, before anything is copied
    assert refused(ex, "memcpy_htod_pinned", dst=dev + 4 * PAGE, offset=mine, count=1,
                   stream=0).status == CUresult.CUDA_ERROR_INVALID_VALUE
    assert refused(ex, "mem_host_alloc", bytesize=PAGE, flags=8).status == CUresult.CUDA_ERROR_INVALID_VALUE
    assert refused(ex, "mem_host_alloc", bytesize=0, flags=0).status == CUresult.CUDA_ERROR_INVALID_VALUE
    assert refused(ex, "mem_host_alloc", bytesize=8 * MIB, flags=0).status == CUresult.CUDA_ERROR_OUT_OF_MEMORY
    assert share.pinned_used() == 3 * PAGE  # nothing changed hands


def test_without_a_pinned_area_the_calls_are_not_supported_and_say_why() -> None:
    ex = SimExecutor()
    error = refused(ex, "mem_host_alloc", bytesize=PAGE, flags=0)
    assert error.status == CUresult.CUDA_ERROR_NOT_SUPPORTED and "no pinned area" in error.message
    assert refused(ex, "memcpy_htod_pinned", dst=0, offset=0, count=1, stream=0).status == \
        CUresult.CUDA_ERROR_NOT_SUPPORTED


def test_a_captured_pinned_copy_is_checked_again_when_the_graph_runs(vm: tuple[VmShare, bytearray]) -> None:
    share, buf = vm
    ex = share.create_context()
    offset = call(ex, "mem_host_alloc", bytesize=PAGE, flags=0).offset  # type: ignore[attr-defined]
    buf[offset:offset + 4] = b"\x01\x02\x03\x04"
    dev = call(ex, "mem_alloc", bytesize=PAGE).dptr  # type: ignore[attr-defined]
    stream = call(ex, "stream_create", flags=1).stream  # type: ignore[attr-defined]
    call(ex, "stream_begin_capture", stream=stream, mode=0)
    call(ex, "memcpy_htod_pinned", dst=dev, offset=offset, count=4, stream=stream, blocking=False)
    graph = call(ex, "stream_end_capture", stream=stream).graph  # type: ignore[attr-defined]
    exec_ = call(ex, "graph_instantiate", graph=graph, flags=0).graph_exec  # type: ignore[attr-defined]
    call(ex, "graph_launch", graph_exec=exec_, stream=stream)
    assert isinstance(ex, SimExecutor) and bytes(ex.device_read(dev, 4)) == b"\x01\x02\x03\x04"
    call(ex, "mem_free_host", offset=offset)
    error = refused(ex, "graph_launch", graph_exec=exec_, stream=stream)
    assert "is not inside one live pinned allocation" in error.message


# -- sim: mapped pinned memory (mem_host_alias) -------------------------------------------------------

#: each of the first n u32s at p goes up by one (benchmarks.mapped_memory's kernel): a kernel reaching
#: pinned memory through its alias
INC_PTX = PTX
#: where a guest process of the tests maps the pinned area (a 47-bit user address, as a real mmap's)
GUEST_AREA = 0x7F80_0000_0000


def inc_kernel(ex: Executor) -> int:
    module = call(ex, "module_load_data", inp=INC_PTX).module  # type: ignore[attr-defined]
    return int(call(ex, "module_get_function", module=module, inp=b"inc").function)  # type: ignore[attr-defined]


def launch_inc(ex: Executor, function: int, ptr: int, n: int, stream: int = 0) -> None:
    call(ex, "launch_kernel", function=function, grid_x=1, grid_y=1, grid_z=1, block_x=32, block_y=1,
         block_z=1, shared_mem_bytes=0, stream=stream, blocking=False, inp=ptr.to_bytes(8, "little") + n.to_bytes(4, "little"))


def alias(ex: Executor, offset: int, address: int) -> int:
    return int(call(ex, "mem_host_alias", offset=offset, address=address).dptr)  # type: ignore[attr-defined]


def test_sim_maps_a_pinned_range_at_the_guests_own_pointer_and_kernels_reach_its_bytes(
        vm: tuple[VmShare, bytearray]) -> None:
    share, buf = vm
    ex = share.create_context()
    offset = call(ex, "mem_host_alloc", bytesize=2 * PAGE, flags=2).offset  # type: ignore[attr-defined]
    host = GUEST_AREA + offset  # the guest's pointer to the range
    assert alias(ex, offset + 8, host + 8) == host + 8  # host pointer == device pointer
    assert alias(ex, offset, 0) == host and alias(ex, offset + PAGE, 0) == host + PAGE  # one alias a range
    buf[offset:offset + 16] = np.arange(4, dtype="<u4").tobytes()
    inc = inc_kernel(ex)
    launch_inc(ex, inc, host, 4)  # no copy either way: the kernel loads and stores the region's bytes
    assert np.frombuffer(buf, "<u4", 4, offset).tolist() == [1, 2, 3, 4]
    dev = call(ex, "mem_alloc", bytesize=16).dptr  # type: ignore[attr-defined]
    call(ex, "memcpy_dtod", dst=dev, src=host + 4, count=8, stream=0)  # copies name it as device memory too
    assert isinstance(ex, SimExecutor) and ex.device_read(dev, 8).view("<u4").tolist() == [2, 3]
    # where the guest names nothing, the host chooses, among addresses it never handed out
    other = call(ex, "mem_host_alloc", bytesize=PAGE, flags=0).offset  # type: ignore[attr-defined]
    chosen = alias(ex, other, 0)
    assert chosen % PAGE == 0 and chosen not in (GUEST_AREA + other, dev)
    launch_inc(ex, inc, chosen, 1)
    assert buf[other] == 1


def test_a_freed_alias_faults_in_a_kernel_and_in_a_graph_never_reaching_the_next_owner(
        vm: tuple[VmShare, bytearray]) -> None:
    share, buf = vm
    ex, nxt = share.create_context(), share.create_context()
    offset = call(ex, "mem_host_alloc", bytesize=PAGE, flags=2).offset  # type: ignore[attr-defined]
    host = alias(ex, offset, GUEST_AREA + offset)
    inc = inc_kernel(ex)
    stream = call(ex, "stream_create", flags=1).stream  # type: ignore[attr-defined]
    call(ex, "stream_begin_capture", stream=stream, mode=0)
    launch_inc(ex, inc, host, 1, stream)
    graph = call(ex, "stream_end_capture", stream=stream).graph  # type: ignore[attr-defined]
    exec_ = call(ex, "graph_instantiate", graph=graph, flags=0).graph_exec  # type: ignore[attr-defined]
    call(ex, "graph_launch", graph_exec=exec_, stream=stream)
    assert buf[offset] == 1
    call(ex, "mem_free_host", offset=offset)
    assert call(nxt, "mem_host_alloc", bytesize=PAGE, flags=0).offset == offset  # type: ignore[attr-defined]
    buf[offset] = 7  # the next owner's byte, which the stale alias must not reach
    assert refused(ex, "graph_launch", graph_exec=exec_, stream=stream).status == \
        CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
    assert buf[offset] == 7
    # another context never reaches a context's alias either
    theirs = call(nxt, "mem_host_alloc", bytesize=PAGE, flags=2).offset  # type: ignore[attr-defined]
    mapped = alias(nxt, theirs, GUEST_AREA + theirs)
    third = share.create_context()
    assert refused(third, "launch_kernel", function=inc_kernel(third), grid_x=1, grid_y=1, grid_z=1, block_x=1,
                   block_y=1, block_z=1, shared_mem_bytes=0, stream=0,
                   inp=mapped.to_bytes(8, "little") + (1).to_bytes(4, "little")).status == \
        CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
    # a closed context's aliases go with it: their addresses are free for the next process's
    share.close_context(nxt)
    again = call(third, "mem_host_alloc", bytesize=PAGE, flags=2).offset  # type: ignore[attr-defined]
    assert alias(third, again, mapped) == mapped


def test_what_a_guest_asks_of_an_alias_is_checked(vm: tuple[VmShare, bytearray]) -> None:
    share, _ = vm
    ex, other = share.create_context(), share.create_context()
    mine = call(ex, "mem_host_alloc", bytesize=2 * PAGE, flags=2).offset  # type: ignore[attr-defined]
    theirs = call(other, "mem_host_alloc", bytesize=PAGE, flags=2).offset  # type: ignore[attr-defined]
    dev = call(ex, "mem_alloc", bytesize=4 * PAGE).dptr  # type: ignore[attr-defined]
    bad = [{"offset": theirs, "address": GUEST_AREA + theirs},  # another process's range
           {"offset": mine + 2 * PAGE, "address": GUEST_AREA},  # free memory of the area
           {"offset": (1 << 64) - 1, "address": 0},  # outside the area
           {"offset": mine, "address": GUEST_AREA + 8},  # not on a page
           {"offset": mine + 16, "address": 8},  # the range would start below address 0
           {"offset": mine, "address": dev},  # the device's own allocation
           {"offset": mine, "address": dev - PAGE},  # running into it
           {"offset": mine, "address": (1 << 47) - PAGE},  # past the device's address space
           {"offset": mine, "address": (1 << 64) - PAGE}]
    for args in bad:
        assert refused(ex, "mem_host_alias", **args).status == CUresult.CUDA_ERROR_INVALID_VALUE, args
    theirs_alias = alias(other, theirs, GUEST_AREA + mine)  # another context holds those addresses now
    assert refused(ex, "mem_host_alias", offset=mine, address=theirs_alias).status == \
        CUresult.CUDA_ERROR_INVALID_VALUE
    assert refused(ex, "mem_free", dptr=theirs_alias).status == CUresult.CUDA_ERROR_INVALID_VALUE
    assert alias(ex, mine, GUEST_AREA + PAGE * 64) == GUEST_AREA + PAGE * 64  # the refusals claimed nothing
    assert refused(ex, "mem_free", dptr=GUEST_AREA + PAGE * 64).status == CUresult.CUDA_ERROR_INVALID_VALUE
    assert refused(SimExecutor(), "mem_host_alias", offset=0, address=0).status == \
        CUresult.CUDA_ERROR_NOT_SUPPORTED


# -- through the rings: refused, counted and logged ---------------------------------------------------

@pytest.fixture
def ring_pair() -> Iterator[RingPair]:
    """A sim executor behind real rings, with a pinned area of 1 MiB."""
    pair = RingPair()
    try:
        pair.executor.pinned = PinnedArea(memoryview(bytearray(MIB))).client()
        yield pair
    finally:
        pair.close()


def refused_once(pair: RingPair, name: str, **args: Any) -> None:
    """``name`` through the rings: CUDA_ERROR_INVALID_VALUE, one error counted and one line logged."""
    errors = pair.counters.errors
    with structlog.testing.capture_logs() as logs:
        answer = pair.call(name, **args)
    assert answer.status == CUresult.CUDA_ERROR_INVALID_VALUE
    assert pair.counters.errors == errors + 1
    assert [(e["event"], e["call"]) for e in logs] == [("call failed", name)]


def test_a_bad_pinned_offset_through_the_rings_is_an_error_status_counted_and_logged(ring_pair: RingPair) -> None:
    pair = ring_pair
    offset = pair.call("mem_host_alloc", bytesize=PAGE, flags=0).result.offset  # type: ignore[union-attr]
    dev = pair.call("mem_alloc", bytesize=PAGE).result.dptr  # type: ignore[union-attr]
    refused_once(pair, "memcpy_dtoh_pinned", src=dev, offset=offset + PAGE, count=8, stream=0)
    # posted, the failure is latched and reported by the next call that waits, as CUDA does
    pair.call("memcpy_htod_pinned", dst=dev, offset=offset, count=PAGE + 1, stream=0, asynchronous=True)
    assert pair.async_errors == [CUresult.CUDA_ERROR_INVALID_VALUE]
    assert pair.call("ctx_synchronize").status == CUresult.CUDA_ERROR_INVALID_VALUE
    assert pair.call("memcpy_htod_pinned", dst=dev, offset=offset, count=PAGE, stream=0).status == 0


def test_a_bad_alias_through_the_rings_is_an_error_status_counted_and_logged(ring_pair: RingPair) -> None:
    pair = ring_pair
    offset = pair.call("mem_host_alloc", bytesize=PAGE, flags=2).result.offset  # type: ignore[union-attr]
    dev = pair.call("mem_alloc", bytesize=PAGE).result.dptr  # type: ignore[union-attr]
    refused_once(pair, "mem_host_alias", offset=offset, address=dev)  # a collision
    assert pair.call("mem_host_alias", offset=offset, address=0).status == 0


# -- cuda: against a stand-in for cuda.bindings.driver ------------------------------------------------

class FakeDriver:
    """The driver calls the pinned path makes, with cuda-bindings' signatures; "device memory" is host
    memory here, so a copy really moves the bytes between the addresses it was given."""

    def __init__(self, *, refuse_register: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.refuse_register = refuse_register

    def cuMemHostRegister(self, address: int, size: int, flags: int) -> tuple[int]:  # noqa: N802
        self.calls.append(("register", address, size, flags))
        return (int(CUresult.CUDA_ERROR_NOT_PERMITTED) if self.refuse_register else 0,)

    def cuMemHostUnregister(self, address: int) -> tuple[int]:  # noqa: N802
        self.calls.append(("unregister", address))
        return (0,)

    def cuMemHostGetDevicePointer(self, address: int, flags: int) -> tuple[int, int]:  # noqa: N802
        self.calls.append(("device_pointer", address, flags))
        return 0, address + ALIAS_SHIFT  # a driver's address of its own choosing

    def cuCtxSynchronize(self) -> tuple[int]:  # noqa: N802
        self.calls.append(("ctx_synchronize",))
        return (0,)

    def cuStreamIsCapturing(self, stream: object) -> tuple[int, int]:  # noqa: N802
        return 0, 0

    def cuStreamSynchronize(self, stream: object) -> tuple[int]:  # noqa: N802
        self.calls.append(("stream_synchronize",))
        return (0,)

    def cuMemcpyHtoDAsync(self, dst: int, src: int, count: int, stream: object) -> tuple[int]:  # noqa: N802
        self.calls.append(("htod", dst, src, count))
        ctypes.memmove(dst, src, count)
        return (0,)

    def cuMemcpyDtoHAsync(self, dst: int, src: int, count: int, stream: object) -> tuple[int]:  # noqa: N802
        self.calls.append(("dtoh", dst, src, count))
        ctypes.memmove(dst, src, count)
        return (0,)


#: how far the stand-in driver puts a range's device pointer from its host address
ALIAS_SHIFT = 1 << 40


def cuda_executor(driver: FakeDriver, area: PinnedArea) -> tuple[Any, ctypes.Array[ctypes.c_char]]:
    from executor import Allocation, AllocationMap, CudaExecutor
    from executor._cuda_driver import Driver

    ex = object.__new__(CudaExecutor)  # no GPU here: only the records the pinned calls use
    ex._drv = Driver(driver)
    ex._null = object()  # type: ignore[assignment]
    ex._pinned_registered = {}
    ex._pinned_aliases = {}
    ex.log = structlog.get_logger("test")
    ex.pending_faults = []
    ex._handlers = {}
    ex._closed = False
    ex.allocations = AllocationMap()
    ex.pinned = area.client()
    device = ctypes.create_string_buffer(2 * PAGE)
    ex.allocations.add(Allocation(ctypes.addressof(device), 2 * PAGE, "alloc"))
    return ex, device


def test_cuda_registers_each_range_dmas_straight_from_it_and_unregisters_before_discarding() -> None:
    buf = bytearray(16 * PAGE)
    discarded: list[tuple[int, int]] = []
    area = PinnedArea(memoryview(buf), lambda start, size: discarded.append((start, size)))
    driver = FakeDriver()
    ex, device = cuda_executor(driver, area)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    offset = ex.mem_host_alloc(MemHostAllocArgs(bytesize=PAGE + 1, flags=0), io()).offset
    assert driver.calls == [("register", base + offset, 2 * PAGE, 2)]  # CU_MEMHOSTREGISTER_DEVICEMAP
    buf[offset:offset + 5] = b"hello"
    dev = ctypes.addressof(device)
    ex.memcpy_htod_pinned(MemcpyHtoDPinnedArgs(dst=dev, offset=offset, count=5, stream=0), io())
    assert driver.calls[-2:] == [("htod", dev, base + offset, 5), ("stream_synchronize",)]
    assert device.raw[:5] == b"hello"
    posted = CallIO(memoryview(b""), memoryview(bytearray(0)), False)
    ex.memcpy_dtoh_pinned(MemcpyDtoHPinnedArgs(src=dev, offset=offset + PAGE, count=5,
                                                                   stream=0), posted)
    assert driver.calls[-1] == ("dtoh", base + offset + PAGE, dev, 5)  # posted: no wait
    assert bytes(buf[offset + PAGE:offset + PAGE + 5]) == b"hello"
    with pytest.raises(CudaError) as caught:
        ex.memcpy_dtoh_pinned(MemcpyDtoHPinnedArgs(src=dev, offset=offset, count=2 * PAGE + 1,
                                                                       stream=0), io())
    assert caught.value.status == CUresult.CUDA_ERROR_INVALID_VALUE and driver.calls[-1][0] == "dtoh"
    ex.mem_free_host(MemFreeHostArgs(offset=offset), io())
    assert driver.calls[-2:] == [("ctx_synchronize",), ("unregister", base + offset)]
    assert discarded == [(offset, 2 * PAGE)]


def test_cuda_maps_a_registered_range_where_the_driver_says_and_forgets_it_with_the_range() -> None:
    buf = bytearray(16 * PAGE)
    driver = FakeDriver()
    ex, _ = cuda_executor(driver, PinnedArea(memoryview(buf)))
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    offset = ex.mem_host_alloc(MemHostAllocArgs(bytesize=PAGE, flags=2), io()).offset
    mapped = ex.mem_host_alias(MemHostAliasArgs(offset=offset + 8, address=0), io()).dptr
    assert mapped == base + offset + 8 + ALIAS_SHIFT
    assert ex.mem_host_alias(MemHostAliasArgs(offset=offset, address=mapped - 8), io()).dptr == mapped - 8
    assert driver.calls.count(("device_pointer", base + offset, 0)) == 1  # asked once a range
    ex._check_range(mapped, PAGE - 8, write=True, what="a copy naming the alias")  # it is device memory now
    for args, status in [(MemHostAliasArgs(offset=offset, address=base + offset), CUresult.CUDA_ERROR_INVALID_VALUE),
                         (MemHostAliasArgs(offset=offset + PAGE, address=0), CUresult.CUDA_ERROR_INVALID_VALUE)]:
        with pytest.raises(CudaError) as caught:  # not where the driver put it; not a live range
            ex.mem_host_alias(args, io())
        assert caught.value.status == status
    ex.mem_free_host(MemFreeHostArgs(offset=offset), io())
    with pytest.raises(CudaError) as caught:
        ex._check_range(mapped, 1, write=False, what="a copy naming the freed alias")
    assert caught.value.status == CUresult.CUDA_ERROR_INVALID_VALUE
    refusing = FakeDriver(refuse_register=True)
    ex, _ = cuda_executor(refusing, PinnedArea(memoryview(bytearray(4 * PAGE))))
    offset = ex.mem_host_alloc(MemHostAllocArgs(bytesize=PAGE, flags=2), io()).offset
    with pytest.raises(CudaError) as caught:  # the driver did not register it: not mapped either
        ex.mem_host_alias(MemHostAliasArgs(offset=offset, address=0), io())
    assert caught.value.status == CUresult.CUDA_ERROR_NOT_SUPPORTED


def test_cuda_serves_a_range_the_driver_would_not_register_as_pageable() -> None:
    area = PinnedArea(memoryview(bytearray(4 * PAGE)))
    driver = FakeDriver(refuse_register=True)
    ex, _ = cuda_executor(driver, area)
    offset = ex.mem_host_alloc(MemHostAllocArgs(bytesize=PAGE, flags=0), io()).offset
    assert ex.unregister_pinned() == []  # nothing for a closing context to unregister
    ex.mem_free_host(MemFreeHostArgs(offset=offset), io())
    assert [c[0] for c in driver.calls] == ["register", "ctx_synchronize"]


# -- the C copy path (mediator._pinned_fast) and an alias -------------------------------------------

def test_the_c_copy_path_lets_an_alias_go_with_its_range() -> None:
    """Copies naming a range's alias as device memory are served in C like any block's, and once the
    range is freed they answer as the Python path does (the alias is gone), never reaching the bytes."""
    from tests.executor.test_pinned_fast import DTOH, HTOD, STAGED_DTOH, STAGED_HTOD, Side, both, fresh_sides

    def script(side: Side) -> None:
        mapped = side.value("mem_host_alias", "dptr", offset=side.host, address=0)
        into, out_of = mapped - side.dev, mapped - side.dev + 4 * PAGE
        copies = [side.staged(STAGED_HTOD, count=PAGE, dev_offset=into),
                  side.staged(STAGED_DTOH, count=PAGE, dev_offset=out_of),
                  side.copy(HTOD, count=PAGE, dev_offset=into + 6 * PAGE),
                  side.copy(DTOH, count=PAGE, offset=2 * PAGE, dev_offset=into)]
        side.submit(copies)
        side.submit(copies)  # served in C now that it knows the block
        side.pair.call("mem_free_host", offset=side.host)
        side.submit(copies)  # refused: no alias, no range

    with fresh_sides() as sides:
        fast, slow = both(sides, script)
        assert [s[2] for s in fast.seen if s[0] != "drain"][-4:] == [CUresult.CUDA_ERROR_INVALID_VALUE] * 4
        assert fast.python_copies <= slow.python_copies - 4  # the second batch was served in C
