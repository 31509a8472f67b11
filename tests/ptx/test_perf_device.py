"""Device loads and stores on their fast paths do what the general ones do: a load whose address every
thread shares (a scalar) reads once and stays uniform, and a span of the simulator's memory is
gathered from and scattered into in place (``segments``) rather than copied out and back; the results
and faults are those of per-thread addresses and of a memory that offers only ``read``/``write``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from executor._errors import CudaError
from executor._kernels import LaunchDims
from executor._sim_memory import DeviceMemory
from executor.ptx import LoadedModule, _isa_memory, launch
from executor.ptx._compiler import access
from executor.ptx._state import Frame, KernelFaultError

from .conftest import ptx_device

HEADER = ".version 8.0\n.target sm_80\n.address_size 64\n"


def _uniform_kernel(name: str, per_thread: bool) -> str:
    """``out[gtid] = in[off] + in[off + 1]`` for threads below ``k``, the address of ``in[off]``
    uniform (a scalar) or, with ``per_thread``, the same value made per thread (``tid * 0``)."""
    spread = "mul.lo.s32 %r9, %r3, 0;" if per_thread else "mov.u32 %r9, 0;"
    return f"""
.visible .entry {name}(.param .u64 out, .param .u64 in, .param .u32 off, .param .u32 k)
{{
    .reg .pred %p<2>; .reg .b32 %r<12>; .reg .b64 %rd<12>;
    ld.param.u64 %rd1, [out];
    ld.param.u64 %rd2, [in];
    ld.param.u32 %r1, [off];
    ld.param.u32 %r2, [k];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mov.u32 %r3, %tid.x;
    mov.u32 %r4, %ctaid.x;
    mov.u32 %r5, %ntid.x;
    mad.lo.s32 %r6, %r4, %r5, %r3;
    {spread}
    add.s32 %r10, %r1, %r9;
    mul.wide.u32 %rd3, %r10, 4;
    add.s64 %rd4, %rd2, %rd3;
    setp.lt.u32 %p1, %r3, %r2;
    @%p1 ld.global.v2.u32 {{%r7, %r8}}, [%rd4];
    add.s32 %r11, %r7, %r8;
    mul.wide.u32 %rd5, %r6, 4;
    add.s64 %rd6, %rd1, %rd5;
    st.global.u32 [%rd6], %r11;
    ret;
}}
"""


UNIFORM = HEADER + _uniform_kernel("uniform", False) + _uniform_kernel("spread", True)


def _loads(kernel: str, off: int, k: int, misalign: int) -> tuple[list[int], str]:
    dev = ptx_device(UNIFORM)
    src = dev.put(np.arange(100, 164, dtype=np.uint32)) + misalign
    out = dev.zeros(256, np.uint32)
    try:
        dev.run(kernel, 2, 128, out, src, off, k)
    except CudaError as err:
        return [], f"{err.status.name}: {err.message.split(' (at ')[0].replace(kernel, 'K')}"
    return dev.get(out, 256, np.uint32).tolist(), ""


@pytest.mark.parametrize(
    ("off", "k", "misalign"),
    [(6, 128, 0), (6, 40, 0), (62, 128, 0), (63, 128, 0), (1 << 20, 128, 0), (6, 128, 4), (6, 0, 0)],
    ids=["even", "masked", "last", "past-the-end", "far", "misaligned", "no-thread"],
)
def test_a_uniform_address_loads_what_per_thread_addresses_load(off: int, k: int, misalign: int) -> None:
    assert _loads("uniform", off, k, misalign) == _loads("spread", off, k, misalign)


def test_a_uniform_load_leaves_a_uniform_register() -> None:
    seen: list[Any] = []

    def spy(f: Frame, space: str, rows: Any, addrs: Any, size: int, data: Any) -> Any:
        seen.append(addrs.size)
        return access(f, space, rows, addrs, size, data)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_isa_memory, "access", spy)
        got, error = _loads("uniform", 6, 128, 0)
    assert not error and got == [106 + 107] * 256
    assert seen == [1], "one address read once for the batch"


class ReadWriteOnly:
    """The engine's device-memory protocol and nothing more: no in-place ``segments``."""

    def __init__(self, memory: DeviceMemory) -> None:
        self._memory = memory

    def read(self, ptr: int, size: int, what: str = "pointer") -> Any:
        return self._memory.read(ptr, size, what)

    def write(self, ptr: int, data: Any, what: str = "pointer") -> None:
        self._memory.write(ptr, data, what)


#: a transposing copy (gather rows, scatter columns: a sparse span) and a gather of strided columns,
#: over two allocations; ``gap`` moves the second's threads into the first's
TRANSPOSE = (
    HEADER
    + """
.visible .entry t(.param .u64 out, .param .u64 in, .param .u32 n, .param .u32 gap)
{
    .reg .b32 %r<12>; .reg .b64 %rd<12>; .reg .f32 %f<3>;
    ld.param.u64 %rd1, [out];
    ld.param.u64 %rd2, [in];
    ld.param.u32 %r1, [n];
    ld.param.u32 %r11, [gap];
    mov.u32 %r2, %tid.x;
    mov.u32 %r3, %ctaid.x;
    mad.lo.s32 %r4, %r2, %r1, %r3;
    mad.lo.s32 %r5, %r3, %r1, %r2;
    mul.wide.u32 %rd3, %r5, 4;
    add.s64 %rd4, %rd2, %rd3;
    ld.global.f32 %f1, [%rd4];
    mul.wide.u32 %rd5, %r4, 4;
    add.s64 %rd6, %rd1, %rd5;
    st.global.f32 [%rd6], %f1;
    mul.lo.s32 %r6, %r2, %r11;
    mul.wide.u32 %rd7, %r6, 4;
    add.s64 %rd8, %rd4, %rd7;
    ld.global.f32 %f2, [%rd8];
    add.s64 %rd9, %rd6, %rd7;
    st.global.f32 [%rd9], %f2;
    ret;
}
"""
)


@pytest.mark.parametrize("gap", [0, 1, 4096, 1 << 22], ids=["dense", "shifted", "far", "outside"])
def test_device_spans_in_place_match_read_and_write(gap: int) -> None:
    n = 64
    results = []
    for wrap in (False, True):
        memory = DeviceMemory(1 << 30)
        data = np.random.default_rng(3).standard_normal(n * n).astype(np.float32)
        src = memory.alloc(4 * n * n)
        memory.write(src, data.view(np.uint8))
        dst = memory.alloc(4 * n * n * 2)
        module = LoadedModule(TRANSPOSE)
        params = np.array([dst, src], dtype=np.uint64).tobytes() + np.array([n, gap], np.uint32).tobytes()
        mem: Any = ReadWriteOnly(memory) if wrap else memory
        try:
            launch(module, "t", mem, LaunchDims((n, 1, 1), (n, 1, 1)), params, {})
            results.append(memory.read(dst, 4 * n * n * 2).tobytes())
        except CudaError as err:
            results.append(f"{err.status.name}: {err.message}".encode())
    assert results[0] == results[1]
    if gap < n * n:
        assert not results[0].startswith(b"CUDA_ERROR")


def test_device_elements_is_the_gather_or_defers_to_it() -> None:
    """``_memory.device_elements`` (ld's full-batch path) answers exactly what ``gather_device`` gathers,
    or ``None`` — misaligned, outside the VM's memory, across a gap, past the span bound — so the
    checked path decides and names the fault."""
    from executor.ptx._memory import SPAN_LIMIT, device_elements, gather_device

    memory = DeviceMemory(1 << 30)
    first = memory.alloc(1 << 16)
    memory.write(first, np.arange(1 << 14, dtype=np.uint32).view(np.uint8))
    second = memory.alloc(1 << 16)
    rng = np.random.default_rng(4)
    for size in (1, 2, 4, 8):
        for kind in ("dense", "sparse", "misaligned", "two", "outside", "far"):
            offsets = rng.integers(0, (1 << 16) - 8, 64).astype(np.uint64) // size * size
            addrs = np.uint64(first) + offsets
            if kind == "dense":
                addrs = np.uint64(first) + np.arange(64, dtype=np.uint64) * size
            elif kind == "misaligned" and size > 1:
                addrs[5] += np.uint64(1)
            elif kind == "two":
                addrs[::2] = np.uint64(second) + offsets[::2]
            elif kind == "outside":
                addrs[3] = np.uint64(second + (1 << 20))
            elif kind == "far":
                addrs[7] = np.uint64(first + SPAN_LIMIT + 64)
            got = device_elements(memory, addrs, size)
            if kind in ("misaligned", "outside", "far") and (size > 1 or kind != "misaligned"):
                assert got is None, (size, kind)
                continue
            try:
                want = gather_device(memory, addrs, size, aligned=True)
            except Exception:  # the checked path's fault: the fast one must have deferred
                assert got is None, (size, kind)
                continue
            if got is not None:
                assert np.array_equal(got.view(np.uint8).reshape(-1, size), want), (size, kind)


def _coalesced_kernel(vec: int) -> str:
    """``out[gtid + shift] = in[gtid + shift]``, one element of ``vec`` u32 a thread: the threads'
    addresses one run in order (a coalesced copy), moved by ``shift`` elements."""
    regs = ", ".join(f"%r{10 + j}" for j in range(vec))
    kind, value = (f".v{vec}.u32", f"{{{regs}}}") if vec > 1 else (".u32", regs)
    return f"""
.visible .entry copy{vec}(.param .u64 out, .param .u64 in, .param .u32 shift)
{{
    .reg .b32 %r<16>; .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [out];
    ld.param.u64 %rd2, [in];
    ld.param.u32 %r1, [shift];
    mov.u32 %r2, %tid.x;
    mov.u32 %r3, %ctaid.x;
    mov.u32 %r4, %ntid.x;
    mad.lo.s32 %r5, %r3, %r4, %r2;
    add.s32 %r6, %r5, %r1;
    mul.wide.u32 %rd3, %r6, {4 * vec};
    add.s64 %rd4, %rd2, %rd3;
    add.s64 %rd5, %rd1, %rd3;
    ld.global{kind} {value}, [%rd4];
    st.global{kind} [%rd5], {value};
    ret;
}}
"""


COALESCED = HEADER + "".join(_coalesced_kernel(vec) for vec in (1, 2, 4))


@pytest.mark.parametrize("vec", [1, 2, 4])
@pytest.mark.parametrize("shift", [0, 1, -1], ids=["inside", "past-the-end", "before-the-start"])
def test_a_coalesced_run_is_one_copy_and_faults_as_each_thread(vec: int, shift: int) -> None:
    """Threads whose addresses are one run in order load and store it with one copy (``_memory.runs``);
    a run that ends past its allocation (the load from the last one) or starts before it (the store
    into the first) faults as the per-thread path does — the same error naming the same thread's
    address — and with a memory that offers no in-place views the results and faults are the same."""
    block, grid = 64, 4
    count = block * grid
    results = []
    for wrap in (False, True):
        memory = DeviceMemory(1 << 30)
        dst = memory.alloc(4 * vec * count)  # the first allocation: nothing below it
        src = memory.alloc(4 * vec * count)  # the last: nothing above it
        data = np.random.default_rng(vec).integers(0, 1 << 32, vec * count, dtype=np.uint32)
        memory.write(src, data.view(np.uint8))
        params = (
            np.array([dst, src], dtype=np.uint64).tobytes()
            + np.array([shift & 0xFFFFFFFF], np.uint32).tobytes()
        )
        mem: Any = ReadWriteOnly(memory) if wrap else memory
        try:
            launch(
                LoadedModule(COALESCED),
                f"copy{vec}",
                mem,
                LaunchDims((grid, 1, 1), (block, 1, 1)),
                params,
                {},
            )
            results.append(memory.read(dst, 4 * vec * count).tobytes())
        except CudaError as err:
            results.append(f"{err.status.name}: {err.message}".encode())
    assert results[0] == results[1]
    if shift == 0:
        assert results[0] == data.tobytes()
    else:
        assert results[0].startswith(b"CUDA_ERROR_ILLEGAL_ADDRESS"), results[0][:80]


class _Counted(DeviceMemory):
    """The simulator's memory, counting the range lookups that reads and views make."""

    lookups = 0

    def segments(self, ptr: int, size: int, *, write: bool, what: str = "pointer") -> Any:
        self.lookups += 1
        return super().segments(ptr, size, write=write, what=what)


@pytest.mark.parametrize("size", [4, 16])
@pytest.mark.parametrize("bad", [False, True], ids=["owned", "one-outside"])
def test_halves_of_a_gather_in_two_allocations_take_a_view_each(size: int, bad: bool) -> None:
    """Threads reading rows 8 KiB apart, even warps in one allocation and odd in another (a tensor-core
    GEMM's tile copy): views of each allocation, a few lookups rather than one per thread; bytes and
    the fault of a thread outside as a memory without views answers them."""
    from executor.ptx._memory import gather_device

    results: list[Any] = []
    for memory in (_Counted(1 << 30), ReadWriteOnly(DeviceMemory(1 << 30))):
        inner = memory if isinstance(memory, DeviceMemory) else memory._memory
        rng = np.random.default_rng(5)
        blocks = [inner.alloc(8 << 20), inner.alloc(8 << 20)]
        for block in blocks:
            inner.write(block, rng.integers(0, 256, 8 << 20).astype(np.uint8))
        lane = np.arange(8192, dtype=np.uint64)
        warp = lane // np.uint64(32)
        offsets = (warp // np.uint64(2)) * np.uint64(8192) + (lane % np.uint64(32)) * np.uint64(size)
        addrs = np.where(warp % np.uint64(2) == 0, np.uint64(blocks[0]), np.uint64(blocks[1])) + offsets
        if bad:
            addrs[4097] = np.uint64(blocks[1] + (16 << 20))
        if isinstance(memory, _Counted):
            memory.lookups = 0
        try:
            results.append(gather_device(memory, addrs, size, aligned=True).tobytes())
        except KernelFaultError as err:
            results.append(f"{err.status.name}: {err.message}")
        if isinstance(memory, _Counted) and not bad:
            assert memory.lookups < 64, memory.lookups
    assert results[0] == results[1]
    assert isinstance(results[0], str) == bad


@pytest.mark.parametrize("size", [1, 4, 8, 16])
@pytest.mark.parametrize(
    "layout", ["run", "rotated", "overlapping", "strided", "field", "reversed", "misaligned", "many"]
)
def test_runs_gather_and_scatter_as_each_thread(size: int, layout: str) -> None:
    """Accesses taken as a few runs (a grid-stride loop's threads one iteration apart: a rotated run;
    runs that overlap, where the later thread's store stays) load and store what the per-thread path
    of a memory without in-place views does; layouts that are not a few aligned runs go the span
    paths."""
    from executor.ptx._memory import gather_device, runs, scatter_device

    k = 96
    ramp = np.arange(k, dtype=np.uint64) * np.uint64(size)
    if layout == "rotated":
        ramp = np.roll(ramp, 17)
    elif layout == "overlapping":
        ramp = np.concatenate([ramp[:48], ramp[40:88]])
    elif layout == "strided":  # every third element: one field of an array of structs
        ramp = ramp * np.uint64(3)
    elif layout == "field":  # the second field of 4-element structs, a grid-stride loop's rotation
        ramp = np.roll(ramp * np.uint64(4) + np.uint64(size), 5)
    elif layout == "reversed":
        ramp = ramp[::-1].copy()
    elif layout == "misaligned":
        ramp = ramp + np.uint64(1 if size > 1 else 0)
    elif layout == "many":
        ramp = ramp.reshape(-1, 8)[:, ::-1].reshape(-1).copy()
    found = runs(ramp + np.uint64(1 << 12), size)
    taken = ("run", "rotated", "overlapping", "strided", "field")
    assert (found is not None) == (layout in taken or (layout == "misaligned" and size == 1))
    stored = []
    for wrap in (False, True):
        memory = DeviceMemory(1 << 30)
        base = memory.alloc(1 << 16)
        memory.write(base, np.random.default_rng(size).integers(0, 256, 1 << 16, dtype=np.uint8))
        mem: Any = ReadWriteOnly(memory) if wrap else memory
        addrs = ramp + np.uint64(base + 4096)
        aligned = layout != "misaligned" or size == 1
        got = gather_device(mem, addrs, size, aligned=aligned)
        data = np.random.default_rng(7).integers(0, 256, (k, size), dtype=np.uint8)
        scatter_device(mem, addrs, data, aligned=aligned)
        stored.append((got.tobytes(), memory.read(base, 1 << 16).tobytes()))
    assert stored[0] == stored[1]
