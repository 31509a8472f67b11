"""Divergent fused runs (``_fuse``): a masked run's lines of arithmetic are computed for every thread
of the batch and merged under the mask once at their end, their f32 lines as native segments where
the frame's SIMT stack lets the registers dying there go. They leave every register exactly as the
instructions run one at a time do: a loop whose threads drop out one by one (binomialOptions'
shape), a register a waiting path still reads that dies on the running one, and a register merged in
place that ``.ftz`` had seen flushed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from executor.ptx import _fuse, _machine

from .conftest import ptx_device

HEADER = ".version 8.0\n.target sm_80\n.address_size 64\n"

#: thread t runs the loop body while i > 2 t (i from STEPS down to 1): the active threads fall away
#: one by one. The body: a chain of f32 multiplies and fmas over four values (a native segment's
#: line), integer bookkeeping and a comparison with a select among them; out[t] (8 words) gets the four
#: values, the count, the select's last value and the bits of the last sum. REGS: the registers declared (above 64: dead ones are let go)
LOOP = """
.visible .entry dropout(.param .u64 in, .param .u64 out, .param .f32 pu, .param .f32 pd)
{
    .reg .pred %p<4>; .reg .b32 %r<REGS>; .reg .f32 %f<40>; .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [in];
    ld.param.u64 %rd2, [out];
    ld.param.f32 %f1, [pu];
    ld.param.f32 %f2, [pd];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd3, %r1, 16;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.v4.f32 {%f10, %f11, %f12, %f13}, [%rd4];
    shl.b32 %r2, %r1, 1;
    mov.u32 %r3, STEPS;
    mov.u32 %r4, 0;
    mov.f32 %f20, 0f00000000;
    mov.f32 %f21, 0f00000000;
$L_loop:
    setp.le.u32 %p1, %r3, %r2;
    @%p1 bra $L_skip;
    mul.f32 %f30, %f2, %f10;
    fma.rn.f32 %f10, %f1, %f11, %f30;
    mul.f32 %f31, %f2, %f11;
    fma.rn.f32 %f11, %f1, %f12, %f31;
    mul.f32 %f32, %f2, %f12;
    fma.rn.f32 %f12, %f1, %f13, %f32;
    mul.f32 %f33, %f2, %f13;
    fma.rn.f32 %f13, %f1, %f10, %f33;
    add.s32 %r4, %r4, %r1;
    xor.b32 %r5, %r4, %r3;
    setp.lt.f32 %p2, %f10, %f11;
    selp.f32 %f20, %f10, %f12, %p2;
    add.s32 %r6, %r5, 1;
    mov.b32 %f21, %r6;
$L_skip:
    add.s32 %r3, %r3, -1;
    setp.ne.u32 %p3, %r3, 0;
    @%p3 bra $L_loop;
    mul.wide.u32 %rd5, %r1, 32;
    add.s64 %rd6, %rd2, %rd5;
    st.global.v4.f32 [%rd6], {%f10, %f11, %f12, %f13};
    st.global.u32 [%rd6+16], %r4;
    st.global.f32 [%rd6+20], %f20;
    st.global.f32 [%rd6+24], %f21;
    ret;
}
"""


def _loop(regs: int, steps: int) -> str:
    return HEADER + LOOP.replace("REGS", str(regs)).replace("STEPS", str(steps))


def _run_loop(text: str, threads: int) -> npt.NDArray[np.uint32]:
    dev = ptx_device(text)
    rng = np.random.default_rng(7)
    values = rng.uniform(0.5, 1.5, 4 * threads).astype(np.float32)
    values[::37] = np.float32(1e-40)  # subnormal operands
    inp = dev.put(values)
    out = dev.zeros(8 * threads, np.uint32)
    dev.run("dropout", 1, threads, inp, out, 0.51, 0.49)
    return dev.get(out, 8 * threads, np.uint32)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the merges of lines computed for every thread (the generated code's ``_mrg``)."""
    calls: list[int] = []
    merge: Callable[..., None] = _fuse.merge_masked

    def counted(*args: Any) -> None:
        calls.append(1)
        merge(*args)

    monkeypatch.setitem(_fuse._HELPERS, "_mrg", counted)
    return calls


@pytest.mark.parametrize("native", [True, False], ids=["native segments", "Python forms"])
@pytest.mark.parametrize("regs", [16, 80], ids=["all registers kept", "dead registers let go"])
def test_a_loop_whose_threads_drop_out_one_by_one_computes_what_one_instruction_at_a_time_does(
    monkeypatch: pytest.MonkeyPatch, native: bool, regs: int
) -> None:
    text = _loop(regs, 40)
    with monkeypatch.context() as m:
        merges = _counting(m)
        if not native:
            m.setattr(_fuse, "_native_groups", lambda *args: {})
        spans = _run_loop(text, 64)
    assert merges, "the loop body ran as a line computed for every thread"
    with monkeypatch.context() as m:
        m.setattr(_fuse, "_spans", lambda *args: {})
        masked = _run_loop(text, 64)
    with monkeypatch.context() as m:
        m.setattr(_machine, "fuse", lambda *args: {})
        one_by_one = _run_loop(text, 64)
    assert np.array_equal(masked, one_by_one)
    assert np.array_equal(spans, one_by_one)


#: first branch: threads with an odd tid take $L_then first (the taken path) while the even ones wait
#: at $L_else, which reads %f20 and %f21 too: on the running path both die inside a native line, and
#: must stay for them. Second: the even threads compute %f8 (written before a native segment that
#: leaves it: merged in place after the line, and max.ftz has seen it with no subnormal) while the odd
#: ones keep theirs, a subnormal, which mul.ftz by 2^23 after the join must flush (unflushed: 2^-126)
WAITING = (
    HEADER
    + """
.visible .entry waiting(.param .u64 in, .param .u64 out)
{
    .reg .pred %p<3>; .reg .b32 %r<80>; .reg .f32 %f<40>; .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [in];
    ld.param.u64 %rd2, [out];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd3, %r1, 16;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.v4.f32 {%f20, %f21, %f22, %f23}, [%rd4];
    and.b32 %r2, %r1, LANES;
    mov.b32 %f8, %r2;
    setp.eq.u32 %p1, %r2, 1;
    @%p1 bra $L_then;
$L_else:
    add.f32 %f6, %f20, %f21;
    bra $L_join;
$L_then:
    mul.f32 %f30, %f20, %f21;
    add.f32 %f31, %f30, %f20;
    mul.f32 %f6, %f31, %f21;
$L_join:
    @%p1 bra $L_skip;
    min.f32 %f8, %f22, %f23;
    mul.f32 %f32, %f22, %f23;
    add.f32 %f33, %f32, %f8;
    mul.f32 %f8, %f33, %f23;
    max.ftz.f32 %f9, %f8, %f23;
$L_skip:
    mul.ftz.f32 %f7, %f8, 0f4B000000;
    mul.wide.u32 %rd5, %r1, 12;
    add.s64 %rd6, %rd2, %rd5;
    st.global.f32 [%rd6], %f6;
    st.global.f32 [%rd6+4], %f7;
    st.global.f32 [%rd6+8], %f8;
    ret;
}
"""
)


def _run_waiting(threads: int, lanes: int = 1, blocks: int = 1) -> npt.NDArray[np.uint32]:
    """Threads with ``tid & lanes == 1`` take the first branch; every block writes the same rows."""
    dev = ptx_device(WAITING.replace("LANES", str(lanes)))
    values = np.random.default_rng(3).uniform(1.0, 2.0, 4 * threads).astype(np.float32)
    inp = dev.put(values)
    out = dev.zeros(3 * threads, np.uint32)
    dev.run("waiting", blocks, threads, inp, out)
    return dev.get(out, 3 * threads, np.uint32).reshape(threads, 3)


def test_registers_a_waiting_path_reads_and_a_flushed_register_merged_in_place_stay_right(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with monkeypatch.context() as m:
        merges = _counting(m)
        spans = _run_waiting(1024, blocks=8)  # a batch of 8,192: merged by bits
    assert len(merges) >= 2
    with monkeypatch.context() as m:
        m.setattr(_machine, "fuse", lambda *args: {})
        one_by_one = _run_waiting(1024, blocks=8)
    assert np.array_equal(spans, one_by_one)
    assert np.all(spans[:, 0] > 0x3F800000)  # %f20 and %f21 were there for the waiting threads' sum
    odd = spans[1::2]
    assert np.all(odd[:, 2] == 1)  # %f8 kept its subnormal for the threads that did not take the path
    assert np.all(odd[:, 1] == 0)  # and mul.ftz flushed it: +0 x 2^23


def test_a_sparse_path_run_compacted_keeps_what_the_waiting_threads_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One thread in eight takes the first branch: its run is a full batch's on a compacted batch
    (``_compact``) while the others wait, and its native line may let go only what none of them reads."""
    spans = _run_waiting(1024, lanes=7, blocks=4)
    with monkeypatch.context() as m:
        m.setattr(_machine, "fuse", lambda *args: {})
        one_by_one = _run_waiting(1024, lanes=7, blocks=4)
    assert np.array_equal(spans, one_by_one)
    assert np.all(spans[:, 0] > 0x3F800000)


#: %f1 is +0.0 for every thread (uniform), then -0.0 for the odd threads only: a masked write of a
#: uniform value equal to the old one (-0.0 == +0.0) must still leave the even threads' +0.0
ZEROS = (
    HEADER
    + """
.visible .entry zeros(.param .u64 out, .param .f32 zero)
{
    .reg .pred %p<3>; .reg .b32 %r<8>; .reg .f32 %f<8>; .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [out];
    ld.param.f32 %f2, [zero];
    cvta.to.global.u64 %rd1, %rd1;
    mov.u32 %r1, %tid.x;
    add.f32 %f1, %f2, %f2;
    and.b32 %r2, %r1, 1;
    setp.eq.u32 %p1, %r2, 0;
    @%p1 bra $L_join;
    neg.f32 %f3, %f2;
    add.f32 %f1, %f3, %f3;
$L_join:
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.f32 [%rd3], %f1;
    ret;
}
"""
)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "one at a time"])
def test_a_uniform_minus_zero_written_under_a_mask_leaves_the_others_plus_zero(
    monkeypatch: pytest.MonkeyPatch, fused: bool
) -> None:
    if not fused:
        monkeypatch.setattr(_machine, "fuse", lambda *args: {})
    dev = ptx_device(ZEROS)
    out = dev.zeros(64, np.uint32)
    dev.run("zeros", 1, 64, out, 0.0)
    got = dev.get(out, 64, np.uint32)
    assert np.all(got[0::2] == 0)
    assert np.all(got[1::2] == 0x80000000)
