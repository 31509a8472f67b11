"""Fused runs (executor/ptx/_fuse.py) compute exactly what the instructions' closures compute.

Every inline form runs over per-thread values (arrays) and uniform ones (parameters: NumPy scalars),
under a full batch and under a divergent mask, guarded by per-thread and uniform predicates, with
inputs chosen to hit sign bits, wrap-around, subnormals, NaN and infinities; the registers it leaves
are stored and compared bit for bit with the same kernel run one instruction at a time."""

from __future__ import annotations

import numpy as np
import pytest

from executor._errors import CudaError
from executor.ptx import LoadedModule, _machine
from executor.ptx._fuse import MAX_RUN
from protocol import CUresult

from .conftest import Device

HEADER = ".version 8.0\n.target sm_80\n.address_size 64\n"

#: (instruction, destination register, its width in bytes); %r4/%f2/%rd4.. hold per-thread values,
#: %r1 (n), %r2 (k) and %f1 (x) the uniform parameters
BODY: list[tuple[str, str, int]] = [
    ("add.s32 %r5, %r4, %r2;", "%r5", 4),
    ("sub.s32 %r6, %r2, %r4;", "%r6", 4),
    ("mul.lo.s32 %r7, %r4, %r2;", "%r7", 4),
    ("mad.lo.s32 %r8, %r4, %r2, %r1;", "%r8", 4),
    ("and.b32 %r9, %r4, 255;", "%r9", 4),
    ("or.b32 %r10, %r4, %r2;", "%r10", 4),
    ("xor.b32 %r11, %r4, -1;", "%r11", 4),
    ("not.b32 %r12, %r4;", "%r12", 4),
    ("shl.b32 %r13, %r4, 5;", "%r13", 4),
    ("shr.u32 %r14, %r4, 7;", "%r14", 4),
    ("shr.s32 %r15, %r4, 7;", "%r15", 4),
    ("mul.wide.s32 %rd5, %r4, %r2;", "%rd5", 8),
    ("mul.wide.u32 %rd6, %r4, %r2;", "%rd6", 8),
    ("mad.wide.s32 %rd7, %r4, %r2, %rd3;", "%rd7", 8),
    ("mad.wide.u32 %rd11, %r4, %r1, %rd3;", "%rd11", 8),
    ("cvt.s64.s32 %rd8, %r4;", "%rd8", 8),
    ("cvt.u64.u32 %rd9, %r4;", "%rd9", 8),
    ("cvt.u32.u64 %r16, %rd5;", "%r16", 4),
    ("cvt.s64.s32 %rd10, %r2;", "%rd10", 8),
    ("add.s64 %rd12, %rd8, -3;", "%rd12", 8),
    ("mul.lo.s64 %rd13, %rd8, %rd10;", "%rd13", 8),
    ("shl.b64 %rd14, %rd8, 33;", "%rd14", 8),
    ("shr.u64 %rd15, %rd8, 3;", "%rd15", 8),
    ("add.s32 %r18, %r2, %r1;", "%r18", 4),
    ("mul.lo.s32 %r19, %r2, %r2;", "%r19", 4),
    ("mov.u32 %r21, %tid.x;", "%r21", 4),
    ("mov.b32 %r22, %f1;", "%r22", 4),
    ("mov.u32 %r23, -9;", "%r23", 4),
    ("add.ftz.f32 %f3, %f2, %f1;", "%f3", 4),
    ("mul.ftz.f32 %f4, %f2, %f1;", "%f4", 4),
    ("sub.f32 %f5, %f2, %f1;", "%f5", 4),
    ("add.rn.f32 %f6, %f2, %f2;", "%f6", 4),
    ("mul.rn.ftz.f32 %f8, %f2, 0f3F000000;", "%f8", 4),
    ("add.f32 %f9, %f1, %f1;", "%f9", 4),
    ("add.f64 %fd2, %fd1, %fd1;", "%fd2", 8),
    ("mul.f64 %fd3, %fd1, 0d3FF8000000000000;", "%fd3", 8),
    ("setp.lt.s32 %p1, %r4, %r2;", "%p1", 1),
    ("setp.lt.u32 %p2, %r4, %r2;", "%p2", 1),
    ("setp.ge.s32 %p3, %r2, %r4;", "%p3", 1),
    ("setp.lo.s32 %p4, %r4, %r2;", "%p4", 1),
    ("setp.ne.and.s32 %p5, %r4, 0, %p2;", "%p5", 1),
    ("setp.lt.f32 %p6, %f2, %f1;", "%p6", 1),
    ("setp.ge.ftz.f32 %p7, %f2, %f1;", "%p7", 1),
    ("setp.gt.s64 %p8|%p9, %rd8, %rd10;", "%p9", 1),
    ("setp.eq.or.u32 %p10, %r2, %r1, !%p1;", "%p10", 1),
    ("setp.le.s32 %p11, %r2, %r1;", "%p11", 1),
    ("and.pred %p12, %p1, %p2;", "%p12", 1),
    ("or.pred %p13, %p1, !%p2;", "%p13", 1),
    ("xor.pred %p14, %p6, %p11;", "%p14", 1),
    ("not.pred %p15, %p3;", "%p15", 1),
    ("selp.b32 %r17, %r4, %r2, %p1;", "%r17", 4),
    ("selp.f32 %f7, %f2, %f1, %p6;", "%f7", 4),
    ("selp.b64 %rd16, %rd8, 77, %p11;", "%rd16", 8),
    ("@%p1 add.s32 %r20, %r4, 1;", "%r20", 4),
    ("@!%p2 mov.u32 %r20, 7;", "%r20", 4),
    ("@%p11 sub.s32 %r24, %r4, %r2;", "%r24", 4),
    ("@!%p11 mov.b32 %r25, %r4;", "%r25", 4),
    ("cvta.to.global.u64 %rd17, %rd2;", "%rd17", 8),
    ("mov.f32 %f11, 0f33800000;", "%f11", 4),
    ("fma.rn.f32 %f10, %f2, %f2, %f11;", "%f10", 4),
    ("fma.rn.ftz.f32 %f12, %f2, %f1, %f2;", "%f12", 4),
    ("mad.rn.f32 %f13, %f1, %f1, %f2;", "%f13", 4),
    ("fma.rn.f32 %f16, %f1, %f1, %f11;", "%f16", 4),
    ("max.ftz.f32 %f14, %f2, %f1;", "%f14", 4),
    ("min.f32 %f15, %f2, %f1;", "%f15", 4),
    ("min.u32 %r26, %r4, %r2;", "%r26", 4),
    ("mul.hi.u32 %r27, %r4, %r2;", "%r27", 4),
]


def _kernel() -> str:
    """The body run twice: for every thread, then again on changed inputs for the threads of a
    divergent branch (tid % 3 != 0), so masked writes merge with the values of the first pass."""
    body = "\n".join(f"    {line}" for line, _, _ in BODY)
    stores = []
    for k, (reg, width) in enumerate(dict.fromkeys((r, w) for _, r, w in BODY)):
        offset = 8 * k
        if width == 1:
            stores.append(f"    selp.u32 %r30, 1, 0, {reg};\n    st.global.u32 [%rd20+{offset}], %r30;")
        else:
            kind = "b32" if width == 4 else "b64"
            stores.append(f"    st.global.{kind} [%rd20+{offset}], {reg};")
    slots = len(dict.fromkeys(r for _, r, _ in BODY))
    return HEADER + f"""
.visible .entry mix(.param .u64 out, .param .u64 in, .param .u32 n, .param .s32 k, .param .f32 x,
                    .param .f64 y) {{
    .reg .pred %p<16>; .reg .pred %q<2>; .reg .b32 %r<32>; .reg .f32 %f<20>; .reg .b64 %rd<24>;
    .reg .f64 %fd<4>;
    ld.param.u64 %rd1, [out];
    ld.param.u64 %rd2, [in];
    ld.param.u32 %r1, [n];
    ld.param.s32 %r2, [k];
    ld.param.f32 %f1, [x];
    ld.param.f64 %fd1, [y];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mov.u32 %r3, %tid.x;
    mul.wide.u32 %rd3, %r3, 4;
    add.s64 %rd4, %rd2, %rd3;
    ld.global.u32 %r4, [%rd4];
    mov.b32 %f2, %r4;
{body}
    rem.u32 %r29, %r3, 3;
    setp.eq.u32 %q1, %r29, 0;
    @%q1 bra $L_join;
    xor.b32 %r4, %r4, 0x80000001;
    mov.b32 %f2, %r4;
    add.s32 %r2, %r2, 3;
    mul.f32 %f1, %f1, 0fC0000000;
{body}
$L_join:
    mul.wide.u32 %rd19, %r3, {8 * slots};
    add.s64 %rd20, %rd1, %rd19;
{chr(10).join(stores)}
    ret;
}}
"""


def _inputs(threads: int) -> np.ndarray:
    special = np.array(
        [0, 0x80000000, 1, 0x807FFFFF, 0x00800000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFFFFFFF,
         0x7FFFFFFF, 0x3F800000, 0xBF800000, 0x0000FFFF, 0x80000001, 0x00400000, 5],
        dtype=np.uint32,
    )
    rng = np.random.default_rng(13)
    return np.concatenate([special, rng.integers(0, 1 << 32, threads - special.size, dtype=np.uint32)])


def _run(text: str, threads: int, k: int, x: float, y: float) -> np.ndarray:
    dev = Device(LoadedModule(text))
    slots = len(dict.fromkeys(r for _, r, _ in BODY))
    inp = dev.put(_inputs(threads))
    out = dev.zeros(threads * slots, np.uint64)
    dev.run("mix", 1, threads, out, inp, 0xFFFFFFF0, k, x, y)
    return dev.get(out, threads * slots, np.uint64).reshape(threads, slots)


@pytest.mark.parametrize(("k", "x", "y"), [(-5, 1e-39, -2.5), (0x7FFFFFFF, -3.25, 1e300), (0, 0.0, -0.0)])
def test_fused_runs_compute_what_the_closures_compute(
    monkeypatch: pytest.MonkeyPatch, k: int, x: float, y: float
) -> None:
    text = _kernel()
    fused = _run(text, 96, k, x, y)
    monkeypatch.setattr(_machine, "fuse", lambda *args: {})
    one_by_one = _run(text, 96, k, x, y)
    for j, reg in enumerate(dict.fromkeys(r for _, r, _ in BODY)):
        assert np.array_equal(fused[:, j], one_by_one[:, j]), f"{reg} differs"


def test_every_form_of_the_body_but_shr_s32_is_inline() -> None:
    """The forms above are those the fast path claims (``shr.s32`` is left to its closure): a
    template that stops matching shows here, not as a slowdown."""
    kernel = LoadedModule(_kernel()).kernel("mix")
    code = kernel.codes["mix"].code
    inline: dict[str, bool] = {}
    for run in kernel.fused["mix"]:
        if run is not None:
            for k, fast in enumerate(run.inline):
                inline[code[run.start + k].text] = fast
    body = {ins.text for ins in code if ins.line in _body_lines()}
    assert body and {text for text in body if not inline[text]} == {"shr.s32"}


def _body_lines() -> set[int]:
    lines = _kernel().splitlines()
    first = next(k for k, line in enumerate(lines) if BODY[0][0] in line) + 1
    return set(range(first, first + len(BODY)))


def test_a_fault_inside_a_run_names_its_instruction() -> None:
    dev = Device(LoadedModule(HEADER + """
.visible .entry bad(.param .u64 p) {
    .reg .b32 %r<4>; .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [p];
    mov.u32 %r1, %tid.x;
    add.s32 %r2, %r1, 1;
    ld.global.u32 %r3, [%rd1];
    add.s32 %r3, %r3, %r2;
    ret;
}
"""))
    err = dev.fails("bad", 1, 32, 0x10)
    assert err.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
    assert err.message.endswith("(at ld.global.u32, line 10 of bad)")


def test_a_straight_line_longer_than_a_run_is_cut_into_runs() -> None:
    """A straight line of more than MAX_RUN instructions runs as several runs, and a fault in a later
    one still names its own line."""
    count = 2 * MAX_RUN + 50
    chain = "\n".join("    add.s32 %r2, %r2, 3;" for _ in range(count))
    text = HEADER + f"""
.visible .entry chain(.param .u64 p, .param .u64 bad) {{
    .reg .b32 %r<4>; .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [p];
    ld.param.u64 %rd2, [bad];
    cvta.to.global.u64 %rd1, %rd1;
    mov.u32 %r2, %tid.x;
{chain}
    st.global.u32 [%rd1], %r2;
    ld.global.u32 %r3, [%rd2];
    ret;
}}
"""
    module = LoadedModule(text)
    runs = [run for run in module.kernel("chain").fused["chain"] if run is not None]
    assert len(runs) >= 3 and max(run.length for run in runs) <= MAX_RUN
    dev = Device(module)
    out = dev.zeros(1, np.uint32)
    err = dev.fails("chain", 1, 1, out, 0x10)
    assert dev.get(out, 1, np.uint32)[0] == 3 * count  # every add ran before the faulting load
    assert err.message.endswith(f"(at ld.global.u32, line {count + 12} of chain)")


_UNIFORM = HEADER + """
.const .align 4 .b8 table[64];
.visible .entry uniform(.param .align 4 .b8 block[32], .param .u64 out, .param .u64 p, .param .u32 k) {
    .reg .b32 %r<12>; .reg .b64 %rd<12>;
    mov.b64 %rd1, block;
    ld.param.u64 %rd2, [out];
    ld.param.u64 %rd3, [p];
    ld.param.u32 %r1, [k];
    cvt.u64.u32 %rd4, %r1;
    add.s64 %rd5, %rd1, %rd4;
    ld.param.u32 %r2, [%rd5+4];
    mov.u64 %rd6, table;
    add.s64 %rd7, %rd6, %rd4;
    ld.const.u32 %r3, [%rd7+8];
    add.s64 %rd8, %rd3, %rd4;
    ld.global.u32 %r4, [%rd8];
    mov.u32 %r5, %tid.x;
    mul.wide.u32 %rd9, %r5, 4;
    add.s64 %rd10, %rd3, %rd9;
    ld.global.u32 %r6, [%rd10];
    add.s32 %r7, %r2, %r3;
    add.s32 %r8, %r7, %r4;
    add.s32 %r9, %r8, %r6;
    add.s64 %rd11, %rd2, %rd9;
    st.global.u32 [%rd11], %r9;
    ret;
}
"""


def test_uniform_loads_through_an_address_register_read_once_and_fault_as_the_closures_do() -> None:
    """``ld.param [%rd+k]`` (a by-value struct's address), ``ld.const``/``ld.global [%rd+k]`` with a
    uniform address are inline (read once, checked); a per-thread address, a misaligned one and one past
    the parameter block or the VM's memory go to the closure, which names the fault."""
    module = LoadedModule(_UNIFORM)
    runs = [run for run in module.kernel("uniform").fused["uniform"] if run is not None]
    assert {"_pat", "_uld"} <= {name for run in runs for name in run.full.__code__.co_names}
    dev = Device(module)
    table = dev.put(np.arange(16, dtype=np.uint32) * 10)
    block = (np.arange(8, dtype=np.uint32) + 100).tobytes()
    src = dev.put(np.arange(64, dtype=np.uint32) * 1000)
    out = dev.zeros(64, np.uint32)
    dev.run("uniform", 1, 64, block, out, src, 8, symbols={"table": table})
    want = 103 + 40 + 2000 + np.arange(64, dtype=np.uint32) * 1000  # k = 8 bytes: block[3], table[4], src[2]
    assert np.array_equal(dev.get(out, 64, np.uint32), want)
    lines = _UNIFORM.splitlines()
    param = next(k for k, line in enumerate(lines) if "[%rd5+4]" in line) + 1
    const = next(k for k, line in enumerate(lines) if "[%rd7+8]" in line) + 1
    for k, status, at in (
        (2, CUresult.CUDA_ERROR_MISALIGNED_ADDRESS, f"ld.param.u32, line {param} "),
        (48, CUresult.CUDA_ERROR_ILLEGAL_ADDRESS, f"ld.param.u32, line {param} "),  # past the 52-byte block
        (16, CUresult.CUDA_ERROR_ILLEGAL_ADDRESS, f"ld.const.u32, line {const} "),  # past the table's 64 bytes
    ):
        with pytest.raises(CudaError) as err:
            dev.run("uniform", 1, 64, block, out, src, k, symbols={"table": table + 48})
        assert err.value.status == status and at in err.value.message, err.value.message
