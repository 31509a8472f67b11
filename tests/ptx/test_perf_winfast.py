"""The C forms of the memory paths (``native/ptxwin.c``, ``executor.ptx._winfast``) and the uniform and
vector paths beside them do what the NumPy forms and the checked path do: the same window indexes and
refusals, the same stores (the last of threads storing to one element wins), the same runs of a device
access, and, through whole kernels, the same memory and the same faults with and without them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from executor._errors import CudaError
from executor.ptx import _isa_memory, _memory
from executor.ptx._numeric import uint_of
from executor.ptx._state import Batch, Limits

from .conftest import ptx_device

native: Any = _memory._native
needs_native = pytest.mark.skipif(native is None, reason="executor.ptx._winfast is not built")

HEADER = ".version 8.0\n.target sm_80\n.address_size 64\n"


def _batch(blocks: int, threads: int, shared: int) -> Batch:
    n = blocks * threads
    t = np.arange(n)
    return Batch(
        kernel="k", memory=None, symbols={}, params=b"", n=n, block_threads=threads,  # type: ignore[arg-type]
        block_dim=(threads, 1, 1), grid_dim=(blocks, 1, 1), block_index=(t // threads).astype(np.intp),
        ctaid=((t // threads).astype(np.uint32),) * 3, tid=((t % threads).astype(np.uint32),) * 3,
        linear_tid=(t % threads).astype(np.uint32),
        shared=np.random.default_rng(blocks).integers(0, 256, (blocks, shared), dtype=np.uint8),
        dynamic_shared=0, limits=Limits(),
    )  # fmt: skip


REGISTERS: dict[str, Callable[[npt.NDArray[np.int64]], Any]] = {
    "rows": lambda t: (t % 64) * 8,
    "misaligned": lambda t: (t % 64) * 8 + (t == 77),
    "scattered": lambda t: (t * 7919) % 256 * 4,
    "past-the-window": lambda t: (t % 64) * 8 + 4096,
    "huge": lambda t: np.where(t == 5, 1 << 62, t * 8),
    "below-zero": lambda t: (t % 64) * 8 - 64,
}


@needs_native
@pytest.mark.parametrize("esize", [1, 2, 4, 8])
@pytest.mark.parametrize("width", [4, 8])
@pytest.mark.parametrize("layout", sorted(REGISTERS))
def test_the_c_index_is_numpys(layout: str, width: int, esize: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``window_index`` in one C pass gives the index, bounds and refusals NumPy's six passes give, for
    32- and 64-bit registers (signed ones as their bits), and loads and stores through it the same."""
    t = np.arange(4 * 128, dtype=np.int64)
    value = REGISTERS[layout](t)
    dtype = (
        {4: np.int32, 8: np.uint64}[width] if layout == "below-zero" else {4: np.uint32, 8: np.uint64}[width]
    )
    if width == 4 and layout == "huge":
        pytest.skip("a 32-bit register holds no such value")
    base = value.astype(dtype)
    got: list[Any] = []
    for c_form in (True, False):
        if not c_form:
            monkeypatch.setattr(_memory, "_native", None)
        batch = _batch(4, 128, 2048)
        win = _memory.window_index(batch, "shared", base, esize)
        if win is None:
            got.append(None)
            continue
        loaded = _memory.window_load(win, esize, esize, None)
        values = np.arange(batch.n, dtype=uint_of(esize)) * 3
        stored = _memory.window_store(win, 0, values, None)
        got.append((win.at.tolist(), win.lo, win.hi, None if loaded is None else loaded.tolist(), stored,
                    batch.shared.tobytes()))  # fmt: skip
    assert got[0] == got[1]
    bits = base.view(uint_of(width))  # misaligned, or past every window: refused
    assert (got[0] is None) == (bool((bits % esize).any()) or int(bits.max()) >= 1 << 62)


@needs_native
def test_a_store_of_one_value_and_of_rows_stores_as_numpy() -> None:
    """One value for every thread, a masked store's rows, and threads storing to one element (the last
    wins) — C's scatter and NumPy's assignment leave the same memory."""
    results = []
    for c_form in (native, None):
        batch = _batch(2, 64, 512)
        base = ((np.arange(batch.n) * 5) % 32 * 4).astype(np.uint32)  # 32 elements, four threads each
        _memory._native = c_form
        try:
            win = _memory.window_index(batch, "shared", base, 4)
            assert win is not None
            assert _memory.window_store(win, 8, np.array([7], np.uint32), None)
            rows = np.flatnonzero(np.arange(batch.n) % 3 == 0)
            assert _memory.window_store(win, -8 if win.lo >= 8 else 0, rows.astype(np.uint32) + 100, rows)
            assert not _memory.window_store(win, 512, np.array([1], np.uint32), None)  # past the window
        finally:
            _memory._native = native
        results.append(batch.shared.tobytes())
    assert results[0] == results[1]


@needs_native
def test_the_c_scatter_checks_every_index_before_it_stores() -> None:
    """An index outside the table (a caller's mistake) stores nothing and names the first such thread;
    buffers of the wrong element size or length are refused before anything is done."""
    table = np.zeros(16, np.uint32)
    at = np.array([0, 3, 16, 2], np.int64)
    assert native.put(table, at, 0, np.arange(4, dtype=np.uint32) + 1) == 2
    assert native.put(table, at, -4, np.arange(4, dtype=np.uint32) + 1) == 0
    assert not table.any()
    assert native.put(table, at[[0, 1, 3]], 1, np.arange(3, dtype=np.uint32) + 1) == -1
    assert table.tolist()[:5] == [0, 1, 0, 3, 2]
    with pytest.raises(ValueError):
        native.put(table, at, 0, np.zeros(4, np.uint16))
    with pytest.raises(ValueError):
        native.put(table, at, 0, np.zeros(3, np.uint32))
    with pytest.raises(ValueError):
        native.index(np.zeros(4, np.uint16), np.zeros(4, np.int64), 1, np.zeros(4, np.int64))


@needs_native
@pytest.mark.parametrize(
    "layout", ["run", "rotated", "strided", "reversed", "wrapping", "many", "one", "two"]
)
def test_the_c_breaks_are_numpys(layout: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a device access's addresses stop being one stride apart, and so its runs, as NumPy finds them
    (a step that wraps past 2^64 included)."""
    k = {"one": 1, "two": 2}.get(layout, 96)
    ramp = np.arange(k, dtype=np.uint64) * np.uint64(16) + np.uint64(1 << 20)
    if layout == "rotated":
        ramp = np.roll(ramp, 17)
    elif layout == "strided":
        ramp = ramp * np.uint64(3)
    elif layout == "reversed":
        ramp = ramp[::-1].copy()
    elif layout == "wrapping":
        ramp = ramp - np.uint64(1 << 20) - np.uint64(16 * 40)  # threads below 40 wrap to the top
    elif layout == "many":
        ramp = ramp.reshape(-1, 8)[:, ::-1].reshape(-1).copy()
    c_form = _memory._runs(ramp, 16)  # not runs(): it answers an array it has seen again
    for limit in (1, 3, 8):
        want = np.flatnonzero(np.diff(ramp) != np.uint64(16))[:limit].tolist()
        assert native.breaks(ramp, 16, limit) == want
    monkeypatch.setattr(_memory, "_native", None)
    assert _memory._runs(ramp, 16) == c_form


#: a block scan as NVIDIA's scan sample compiles (``uint4`` loads, a shared-memory loop of two barriers
#: with an address register per offset, a zero stored by every thread), then thread 0's total through
#: a shared variable every thread reads (``[total]``) and a ``v4`` store of scalars and arrays
SCAN = (
    HEADER
    + """
.visible .entry scan(.param .u64 out, .param .u64 in, .param .u32 pad)
{
    .reg .pred %p<4>; .reg .b32 %r<40>; .reg .b64 %rd<10>;
    .shared .align 4 .b8 data[2048];
    .shared .align 16 .b8 total[16];
    ld.param.u64 %rd1, [out];
    ld.param.u64 %rd2, [in];
    ld.param.u32 %r30, [pad];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mad.lo.s32 %r4, %r2, %r3, %r1;
    mul.wide.u32 %rd3, %r4, 16;
    add.s64 %rd4, %rd2, %rd3;
    ld.global.v4.u32 {%r5, %r6, %r7, %r8}, [%rd4];
    add.s32 %r9, %r5, %r6;
    add.s32 %r9, %r9, %r7;
    add.s32 %r9, %r9, %r8;
    mov.u32 %r10, data;
    shl.b32 %r11, %r1, 2;
    add.s32 %r12, %r10, %r11;
    mov.u32 %r13, 0;
    st.volatile.shared.u32 [%r12], %r13;
    add.s32 %r14, %r12, %r30;
    st.volatile.shared.u32 [%r14], %r9;
    mov.u32 %r15, 1;
LOOP:
    bar.sync 0;
    shl.b32 %r16, %r15, 2;
    sub.s32 %r17, %r14, %r16;
    ld.volatile.shared.u32 %r18, [%r17];
    ld.volatile.shared.u32 %r19, [%r14];
    add.s32 %r20, %r18, %r19;
    bar.sync 0;
    st.volatile.shared.u32 [%r14], %r20;
    shl.b32 %r15, %r15, 1;
    setp.lt.u32 %p1, %r15, %r3;
    @%p1 bra LOOP;
    ld.volatile.shared.u32 %r21, [%r14];
    sub.s32 %r22, %r21, %r9;
    add.s32 %r23, %r3, -1;
    setp.ne.s32 %p2, %r1, %r23;
    @%p2 bra SKIP;
    st.shared.u32 [total+4], %r21;
SKIP:
    bar.sync 0;
    ld.shared.u32 %r24, [total+4];
    mov.u32 %r25, 7;
    mul.wide.u32 %rd5, %r4, 16;
    add.s64 %rd6, %rd1, %rd5;
    st.global.v4.u32 [%rd6], {%r22, %r24, %r25, %r9};
    ret;
}

.visible .entry uniform_fault(.param .u64 out, .param .u32 off)
{
    .reg .pred %p<2>; .reg .b32 %r<4>; .reg .b64 %rd<4>;
    .shared .align 4 .b8 cell[64];
    ld.param.u64 %rd1, [out];
    ld.param.u32 %r1, [off];
    mov.u32 %r2, %tid.x;
    st.shared.u32 [cell], %r2;
    bar.sync 0;
    setp.eq.u32 %p1, %r1, 0;
    @%p1 ld.shared.u32 %r3, [cell+64];
    @!%p1 ld.shared.u32 %r3, [cell+2];
    cvta.to.global.u64 %rd1, %rd1;
    st.global.u32 [%rd1], %r3;
    ret;
}
"""
)


def _scan_run(blocks: int, threads: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    dev = ptx_device(SCAN)
    data = np.random.default_rng(threads).integers(0, 1 << 32, (blocks * threads, 4), dtype=np.uint32)
    src, dst = dev.put(data), dev.zeros(4 * blocks * threads, np.uint32)
    dev.run("scan", blocks, threads, dst, src, 4 * threads)
    return data, dev.get(dst, 4 * blocks * threads, np.uint32).reshape(-1, 4)


@pytest.mark.parametrize("threads", [32, 256])
@pytest.mark.parametrize("blocks", [3, 130])  # one batch; several (16,384 threads a batch)
def test_a_shared_memory_scan_is_exact_on_every_path(
    blocks: int, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan kernel's results against NumPy's, with the C forms, with NumPy's, and with the window
    index, the uniform shared load and the device runs all off (the checked path)."""
    data, got = _scan_run(blocks, threads)
    sums = data.astype(np.uint64).sum(axis=1).reshape(blocks, threads)
    inclusive = np.cumsum(sums, axis=1) & 0xFFFFFFFF
    want = np.stack(
        [
            ((inclusive - sums) & 0xFFFFFFFF).reshape(-1),
            np.repeat(inclusive[:, -1], threads),
            np.full(blocks * threads, 7),
            (sums & 0xFFFFFFFF).reshape(-1),
        ],
        axis=1,
    ).astype(np.uint32)
    assert np.array_equal(got, want)
    monkeypatch.setattr(_memory, "_native", None)
    assert np.array_equal(_scan_run(blocks, threads)[1], want)
    monkeypatch.setattr(_isa_memory, "window_index", lambda *args: None)
    monkeypatch.setattr(_isa_memory, "device_runs", lambda *args, **kw: None)
    monkeypatch.setattr(_isa_memory, "_uniform_shared_load", lambda c, a, dt, vec, puts, ld: ld)
    from executor.ptx import _fuse

    monkeypatch.setattr(_fuse, "window_index", lambda *args: None)
    assert np.array_equal(_scan_run(blocks, threads)[1], want)


@pytest.mark.parametrize("off", [0, 1], ids=["outside-the-window", "misaligned"])
def test_a_uniform_shared_load_faults_as_the_checked_path(off: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``[cell+64]`` past the block's shared memory and ``[cell+2]`` misaligned: the same error either
    way."""
    errors = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(_isa_memory, "_uniform_shared_load", lambda c, a, dt, vec, puts, ld: ld)
        dev = ptx_device(SCAN)
        with pytest.raises(CudaError) as err:
            dev.run("uniform_fault", 2, 64, dev.zeros(1, np.uint32), off)
        errors.append((err.value.status, err.value.message))
    assert errors[0] == errors[1]
    assert errors[0][0].name == (
        "CUDA_ERROR_ILLEGAL_ADDRESS" if off == 0 else "CUDA_ERROR_MISALIGNED_ADDRESS"
    )
