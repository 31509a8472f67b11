"""A sparse divergent path's fused run on a compacted batch (``_compact``) leaves the memory, the
registers read after the path and the faults exactly as the masked run does: a stencil-like kernel
whose one thread in eight loads a halo value, stores it to shared and global memory and overwrites a
uniform register, run with compaction on and off, against NumPy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from executor._errors import CudaError
from executor.ptx import _compact, _machine
from executor.ptx._parse import Instruction, Reg

from .conftest import Device, ptx_device

HEADER = ".version 8.0\n.target sm_80\n.address_size 64\n"

#: one thread in eight (tid % 8 == 0) loads in[gid + bad], keeps v = 3 * it + ctaid in %r9 (7, a
#: uniform, for the others) and in edge[tid / 8], stores v + tid to side[gid / 8] and sets %r10 to 5
#: (0 for the others); after the barrier every thread stores its neighbour's in[] (tid ^ 1) plus its
#: group's edge value plus %r9 plus %r10 to out[gid]. REGS: the declared count (above 64, registers
#: dying on the path are let go by _liveness)
KERNEL = """
.visible .entry halo(.param .u64 in, .param .u64 out, .param .u64 side, .param .u32 bad)
{
    .reg .pred %p<3>; .reg .b32 %r<REGS>; .reg .b64 %rd<20>;
    .shared .align 4 .b8 buf[1024];
    .shared .align 4 .b8 edge[128];
    ld.param.u64 %rd1, [in];
    ld.param.u64 %rd2, [out];
    ld.param.u64 %rd3, [side];
    ld.param.u32 %r20, [bad];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    cvta.to.global.u64 %rd3, %rd3;
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mad.lo.s32 %r4, %r2, %r3, %r1;
    mul.wide.u32 %rd4, %r4, 4;
    add.s64 %rd5, %rd1, %rd4;
    ld.global.u32 %r5, [%rd5];
    shl.b32 %r6, %r1, 2;
    mov.u32 %r7, buf;
    add.s32 %r8, %r7, %r6;
    st.shared.u32 [%r8], %r5;
    mov.u32 %r9, 7;
    mov.u32 %r10, 0;
    and.b32 %r11, %r1, 7;
    setp.ne.u32 %p1, %r11, 0;
    @%p1 bra $L_join;
    add.s32 %r12, %r4, %r20;
    mul.wide.u32 %rd6, %r12, 4;
    add.s64 %rd7, %rd1, %rd6;
    ld.global.u32 %r13, [%rd7];
    mad.lo.s32 %r9, %r13, 3, %r2;
    shr.u32 %r14, %r1, 3;
    shl.b32 %r15, %r14, 2;
    mov.u32 %r16, edge;
    add.s32 %r17, %r16, %r15;
    st.shared.u32 [%r17], %r9;
    shr.u32 %r18, %r4, 3;
    mul.wide.u32 %rd8, %r18, 4;
    add.s64 %rd9, %rd3, %rd8;
    add.s32 %r19, %r9, %r1;
    st.global.u32 [%rd9], %r19;
    mov.u32 %r10, 5;
$L_join:
    bar.sync 0;
    xor.b32 %r21, %r1, 1;
    shl.b32 %r22, %r21, 2;
    add.s32 %r23, %r7, %r22;
    ld.shared.u32 %r24, [%r23];
    shr.u32 %r25, %r1, 3;
    shl.b32 %r26, %r25, 2;
    mov.u32 %r27, edge;
    add.s32 %r28, %r27, %r26;
    ld.shared.u32 %r29, [%r28];
    add.s32 %r24, %r24, %r29;
    add.s32 %r24, %r24, %r9;
    add.s32 %r24, %r24, %r10;
    mul.wide.u32 %rd10, %r4, 4;
    add.s64 %rd11, %rd2, %rd10;
    st.global.u32 [%rd11], %r24;
    ret;
}
"""
BLOCK, GRID = 256, 64  # one batch of 16,384 threads, 2,048 of them on the path


@pytest.fixture(params=[30, 90], ids=["all-held", "dying-let-go"])
def module(request: pytest.FixtureRequest) -> str:
    return HEADER + KERNEL.replace("REGS", str(request.param))


@pytest.fixture
def compactions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many threads each compacted run had (the machine's calls of ``run_compact``)."""
    seen: list[int] = []
    real: Callable[..., None] = _compact.run_compact

    def counting(frame: Any, run: Any, mask: npt.NDArray[np.bool_], names: Any) -> None:
        seen.append(int(mask.sum()))
        real(frame, run, mask, names)

    monkeypatch.setattr(_machine, "run_compact", counting)
    yield seen


def _run(dev: Device, bad: int = 0) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
    n = BLOCK * GRID
    data = (np.arange(n, dtype=np.uint32) * 2654435761) >> 7
    pin, pout, pside = dev.put(data), dev.zeros(n, np.uint32), dev.zeros(n // 8, np.uint32)
    dev.run("halo", GRID, BLOCK, pin, pout, pside, bad)
    return dev.get(pout, n, np.uint32), dev.get(pside, n // 8, np.uint32)


def _expected() -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
    n = BLOCK * GRID
    data = (np.arange(n, dtype=np.uint32) * 2654435761) >> 7
    gid = np.arange(n, dtype=np.uint32)
    tid, ctaid = gid % BLOCK, gid // BLOCK
    on_path = tid % 8 == 0
    v = data * np.uint32(3) + ctaid  # on the path; 7 elsewhere
    r9 = np.where(on_path, v, np.uint32(7))
    edge = v[(ctaid * BLOCK + (tid // 8) * 8)]  # the group leader's v
    out = data[ctaid * BLOCK + (tid ^ 1)] + edge + r9 + np.where(on_path, np.uint32(5), np.uint32(0))
    side = (v + tid)[on_path]
    return out.astype(np.uint32), side.astype(np.uint32)


def test_a_sparse_path_runs_compacted_with_the_masked_runs_results(
    module: str, compactions: list[int]
) -> None:
    out, side = _run(ptx_device(module))
    want_out, want_side = _expected()
    assert np.array_equal(side, want_side)
    assert np.array_equal(out, want_out)
    assert compactions == [BLOCK * GRID // 8]  # the path's one run, compacted


def test_without_compaction_the_results_are_the_same(
    module: str, compactions: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_compact, "COMPACT_MIN_THREADS", 1 << 40)
    out, side = _run(ptx_device(module))
    want_out, want_side = _expected()
    assert np.array_equal(side, want_side) and np.array_equal(out, want_out)
    assert compactions == []


def test_a_fault_on_the_compacted_path_is_the_masked_runs_fault(
    module: str, compactions: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    far = 1 << 28  # in[gid + far] is 1 GiB past in[]: outside the device's memory
    with pytest.raises(CudaError) as compacted:
        _run(ptx_device(module), far)
    assert compactions
    monkeypatch.setattr(_compact, "COMPACT_MIN_THREADS", 1 << 40)
    with pytest.raises(CudaError) as masked:
        _run(ptx_device(module), far)  # a new device: the same addresses
    assert "CUDA_ERROR_ILLEGAL_ADDRESS" in str(compacted.value)
    assert str(compacted.value) == str(masked.value)


def test_warp_and_local_instructions_keep_a_run_masked() -> None:
    def ins(opcode: str, *mods: str) -> Instruction:
        return Instruction(opcode, mods, (Reg("%r1"), Reg("%r2")), None, 1)

    regs = {"%r1": "b32", "%r2": "b32"}
    plain = [ins("add", "s32"), ins("ld", "global", "u32")]
    assert _compact.compactable(plain, regs, set()) == ("%r1", "%r2")
    warp, local, generic = ins("shfl", "sync", "idx", "b32"), ins("ld", "local", "u32"), ins("ld", "u32")
    for bad in (warp, local, generic, ins("atom", "global", "add", "u32"), ins("st", "param", "b32")):
        assert _compact.compactable([ins("add", "s32"), bad], regs, set()) is None


#: a uniform computed by ``div``/``rem`` (held as a 0-d array, not a NumPy scalar) read on the sparse
#: path, and another overwritten there with a uniform: shfl_scan's second scan (``ntid / 32``) has
#: this shape. out[gid] = (on the path: ntid / 32 + tid; else 1) + (on the path: 3; else 1) * (ntid % 48)
UNIFORM_DIV = HEADER + """
.visible .entry k(.param .u64 out)
{
    .reg .pred %p<3>; .reg .b32 %r<20>; .reg .b64 %rd<9>;
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd1, %rd1;
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mad.lo.s32 %r4, %r2, %r3, %r1;
    div.u32 %r5, %r3, 32;
    rem.u32 %r9, %r3, 48;
    mov.u32 %r7, 1;
    and.b32 %r6, %r1, 7;
    setp.ne.u32 %p1, %r6, 0;
    @%p1 bra $L_join;
    add.s32 %r7, %r5, %r1;
    mul.lo.s32 %r9, %r9, 3;
$L_join:
    add.s32 %r8, %r7, %r9;
    mul.wide.u32 %rd2, %r4, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r8;
    ret;
}
"""


def test_a_uniform_division_read_and_a_uniform_overwritten_on_a_compacted_path(compactions: list[int]) -> None:
    dev = ptx_device(UNIFORM_DIV)
    n = BLOCK * GRID
    out = dev.zeros(n, np.uint32)
    dev.run("k", GRID, BLOCK, out)
    tid = np.arange(n, dtype=np.uint32) % BLOCK
    on_path = tid % 8 == 0
    want = np.where(on_path, BLOCK // 32 + tid + 3 * (BLOCK % 48), 1 + BLOCK % 48).astype(np.uint32)
    assert np.array_equal(dev.get(out, n, np.uint32), want)
    assert compactions == [n // 8]
