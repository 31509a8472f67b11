"""Shared and local loads and stores through an address register's cached window index
(``_memory.window_index``, used by ``ld``/``st`` in ``_isa_memory``) do exactly what the checked path
does: the same memory, registers and faults (illegal and misaligned addresses, with their messages)
for affine, broadcast, reversed and out-of-window addresses, negative offsets, 64-bit and signed
address registers, masks and vectors. Each case runs twice, once with the index disabled."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from executor._errors import CudaError
from executor.ptx import _fuse, _isa_memory, _memory
from executor.ptx._state import Batch, Limits

from .conftest import Device, ptx_device

HEADER = ".version 8.0\n.target sm_80\n.address_size 64\n"

#: per thread: the address register is buf + ((tid * a) & 1023) + b, 32-bit and 64-bit; threads below
#: k take the guarded accesses; what it loads is stored to out[gtid * 8 ...]
KERNEL = (
    HEADER
    + """
.visible .entry win(.param .u64 out, .param .u64 in, .param .u32 a, .param .u32 b, .param .u32 k)
{
    .reg .pred %p<3>; .reg .b16 %rs<4>; .reg .b32 %r<30>; .reg .b64 %rd<20>;
    .shared .align 8 .b8 buf[2048];
    .local .align 8 .b8 stack[64];
    ld.param.u64 %rd1, [out];
    ld.param.u64 %rd2, [in];
    ld.param.u32 %r1, [a];
    ld.param.u32 %r2, [b];
    ld.param.u32 %r20, [k];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mov.u32 %r3, %tid.x;
    mov.u32 %r21, %ctaid.x;
    mov.u32 %r22, %ntid.x;
    mad.lo.s32 %r23, %r21, %r22, %r3;
    mul.lo.s32 %r4, %r3, %r1;
    and.b32 %r4, %r4, 1023;
    add.s32 %r4, %r4, %r2;
    mov.u32 %r5, buf;
    add.s32 %r6, %r5, %r4;
    cvt.u64.u32 %rd3, %r6;
    setp.lt.u32 %p1, %r3, %r20;
    mul.wide.u32 %rd4, %r23, 4;
    add.s64 %rd5, %rd2, %rd4;
    ld.global.u32 %r7, [%rd5];
    shl.b32 %r24, %r3, 2;
    add.s32 %r25, %r5, %r24;
    st.shared.u32 [%r25], %r7;
    st.shared.u32 [%r6+1000], %r7;
    cvt.u16.u32 %rs1, %r3;
    @%p1 st.shared.u16 [%rd3+2], %rs1;
    bar.sync 0;
    ld.shared.u32 %r8, [%r6];
    ld.shared.u32 %r9, [%r6+-4];
    @%p1 ld.shared.u32 %r10, [%rd3+4];
    shl.b32 %r26, %r3, 3;
    and.b32 %r26, %r26, 1016;
    add.s32 %r26, %r5, %r26;
    ld.shared.v2.u32 {%r11, %r12}, [%r26+8];
    ld.shared.u8 %rs2, [%r6+3];
    cvt.u32.u16 %r13, %rs2;
    mov.u64 %rd6, stack;
    cvt.u64.u32 %rd7, %r3;
    and.b64 %rd7, %rd7, 7;
    shl.b64 %rd7, %rd7, 2;
    add.s64 %rd8, %rd6, %rd7;
    st.local.u32 [%rd8+4], %r7;
    @%p1 st.local.u32 [%rd8], %r3;
    ld.local.u32 %r14, [%rd8+4];
    ld.local.u32 %r15, [%rd8];
    mul.wide.u32 %rd9, %r23, 32;
    add.s64 %rd10, %rd1, %rd9;
    st.global.v4.u32 [%rd10], {%r8, %r9, %r10, %r11};
    st.global.v4.u32 [%rd10+16], {%r12, %r13, %r14, %r15};
    ret;
}
"""
)

BLOCKS, THREADS = 3, 128


def _run(a: int, b: int, k: int) -> tuple[np.ndarray[Any, Any] | None, str]:
    dev = ptx_device(KERNEL)
    n = BLOCKS * THREADS
    src = dev.put(np.arange(1000, 1000 + n, dtype=np.uint32))
    out = dev.zeros(8 * n, np.uint32)
    try:
        dev.run("win", BLOCKS, THREADS, out, src, a, b, k)
    except CudaError as err:
        return None, f"{err.status.name}: {err.message}"
    return dev.get(out, 8 * n, np.uint32), ""


CASES = [
    pytest.param(4, 4, 128, id="affine"),
    pytest.param(4, 8, 50, id="affine-masked"),
    pytest.param(4, 0, 128, id="negative-offset-below-window"),
    pytest.param(0, 16, 128, id="broadcast"),
    pytest.param(-4 & 0xFFFFFFFF, 4, 100, id="reversed"),
    pytest.param(8, 4, 128, id="strided"),
    pytest.param(4, 2, 128, id="misaligned"),
    pytest.param(4, 1, 0, id="misaligned-by-one"),
    pytest.param(4, 2040, 128, id="outside-window"),
    pytest.param(4, 0xFFFFFFF0, 128, id="below-window"),
    pytest.param(4, 4, 0, id="inside-unguarded"),
]


#: the modules that go through the window index: ld/st's closures and the fused runs' inline loads
USERS = (_isa_memory, _fuse)


@pytest.mark.parametrize(("a", "b", "k"), CASES)
def test_window_index_matches_the_checked_path(
    a: int, b: int, k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: dict[str, int] = {}

    def counting(module: Any) -> Callable[..., Any]:
        def load(*args: Any) -> Any:
            got = _memory.window_load(*args)
            served[module.__name__] = served.get(module.__name__, 0) + (got is not None)
            return got

        return load

    for module in USERS:
        monkeypatch.setattr(module, "window_load", counting(module))
    fast = _run(a, b, k)
    for module in USERS:
        monkeypatch.setattr(module, "window_index", lambda *args: None)
    checked = _run(a, b, k)
    assert fast[1] == checked[1]
    if checked[0] is None:
        assert fast[0] is None
    else:
        assert fast[0] is not None and np.array_equal(fast[0], checked[0])
        # inline in a fused run (a full batch), and the closure (guarded: under a mask)
        assert served.get(_fuse.__name__) and (k >= THREADS or served.get(_isa_memory.__name__)), served


def test_a_small_cache_is_emptied_and_stays_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    want, _ = _run(4, 8, 60)
    monkeypatch.setattr(_memory, "WINDOW_CACHE_BYTES", 8 * THREADS * BLOCKS + 1)  # one index at a time
    got, _ = _run(4, 8, 60)
    assert want is not None and got is not None and np.array_equal(got, want)


def test_a_register_holds_the_index_it_keyed() -> None:
    """An entry keeps its register value alive: a new value at a reused ``id`` cannot hit it."""
    dev: Device = ptx_device(KERNEL)
    assert dev.module.program is not None
    batch = Batch(
        kernel="win",
        memory=dev.memory,
        symbols={},
        params=b"",
        n=4,
        block_threads=4,
        block_dim=(4, 1, 1),
        grid_dim=(1, 1, 1),
        block_index=np.zeros(4, dtype=np.intp),
        ctaid=(np.zeros(4, np.uint32),) * 3,
        tid=(np.arange(4, dtype=np.uint32),) * 3,
        linear_tid=np.arange(4, dtype=np.uint32),
        shared=np.zeros((1, 64), np.uint8),
        dynamic_shared=0,
        limits=Limits(),
    )
    first = _memory.window_index(batch, "shared", np.array([0, 4, 8, 12], np.uint32), 4)
    assert first is not None and first.hi == 12
    again = _memory.window_index(batch, "shared", np.array([4, 8, 12, 16], np.uint32), 4)
    assert again is not None and (again.lo, again.hi) == (4, 16)
    assert _memory.window_index(batch, "shared", np.array([0, 2, 4, 6], np.uint32), 4) is None
    signed = _memory.window_index(batch, "shared", np.int32(-4), 4)
    assert signed is not None and signed.lo == 0xFFFFFFFC  # an address is the register's bits, unsigned
    assert _memory.window_load(signed, 0, 4, None) is None  # outside the window: the checked path decides
    assert _memory.window_load(first, 4, 4, None) is not None
    assert _memory.window_load(first, 52, 4, None) is None  # the last thread's bytes past the 64


def _batch_2d(blocks: int, block: tuple[int, int, int], shared: int) -> Batch:
    bt = block[0] * block[1] * block[2]
    n = blocks * bt
    t = np.arange(n)
    lt = t % bt
    tid = (
        (lt % block[0]).astype(np.uint32),
        ((lt // block[0]) % block[1]).astype(np.uint32),
        (lt // (block[0] * block[1])).astype(np.uint32),
    )
    return Batch(
        kernel="k", memory=None, symbols={}, params=b"", n=n, block_threads=bt,  # type: ignore[arg-type]
        block_dim=block, grid_dim=(blocks, 1, 1), block_index=(t // bt).astype(np.intp),
        ctaid=(np.repeat(np.arange(blocks, dtype=np.uint32), bt),) * 3, tid=tid, linear_tid=lt.astype(np.uint32),
        shared=np.arange(blocks * shared, dtype=np.uint32).view(np.uint8).reshape(blocks, -1)[:, :shared].copy(),
        dynamic_shared=0, limits=Limits(),
    )  # fmt: skip


@pytest.mark.parametrize(
    "layout",
    ["row", "column-broadcast", "row-broadcast", "uniform", "3d", "reversed", "scattered"],
)
def test_an_affine_register_loads_by_a_strided_copy_as_by_its_index(layout: str) -> None:
    """From its third access a register that is the same affine function of %tid in every block loads
    through a strided view of shared memory (``WindowIndex.grid``) — what the gather loads."""
    block = (4, 2, 3) if layout == "3d" else (8, 4, 1)
    batch = _batch_2d(3, block, 1024)
    x, y, z = (batch.tid[axis].astype(np.uint32) for axis in range(3))
    base = {
        "row": 64 + 4 * x + 32 * y,
        "column-broadcast": 4 * y + 8,
        "row-broadcast": 128 + 4 * x,
        "uniform": np.full(batch.n, 12, np.uint32),
        "3d": 4 * x + 16 * y + 128 * z,
        "reversed": 400 - 4 * x,
        "scattered": (x * 7919 + y * 104729) % 200 * 4,
    }[layout].astype(np.uint32)
    wins = [_memory.window_index(batch, "shared", base, 4) for _ in range(4)]
    assert all(w is not None for w in wins)
    last = wins[-1]
    assert last is not None
    affine = layout not in ("reversed", "scattered")
    assert (last.grid is not None) == affine
    for offset in (0, 4, 96, -8 if last.lo >= 8 else 8):
        got = _memory.window_load(last, offset, 4, None)
        want = _memory.window_load(last._replace(grid=None), offset, 4, None)
        assert got is not None and want is not None and np.array_equal(got, want)
        got[:] = 0  # a copy: shared memory is not changed through it
        again = _memory.window_load(last, offset, 4, None)
        assert again is not None and np.array_equal(again, want)
    assert _memory.window_load(last, 1024, 4, None) is None  # past the window: the checked path decides
