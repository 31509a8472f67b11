"""Native segments (executor/ptx/_native_run.py, run_f32 in native/ptxfma.c) compute exactly what the
NumPy forms compute.

Every served form runs over per-thread values and uniform ones (parameters), with registers that die
inside the segment (the chunk's scratch) and one defined twice, on inputs that hit signed zeros,
subnormals, NaN and infinities; the body runs again under a divergent mask (no segment there), and the
registers it leaves are compared bit for bit with the same kernel prepared without segments (a NaN's
payload aside). The C side refuses malformed records, slots and lengths before it computes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from executor.ptx import LoadedModule, _native_run
from executor.ptx._fma import native
from executor.ptx._parse import Operand

from .conftest import SM80, Device

pytestmark = pytest.mark.skipif(native is None, reason="native/ptxfma.c not built")

#: (instruction, destination stored); %f2 and %f3 hold per-thread values, %f1 the uniform parameter
BODY: list[tuple[str, str | None]] = [
    ("add.f32 %f10, %f2, %f1;", "%f10"),
    ("sub.rn.f32 %f11, %f2, %f3;", "%f11"),
    ("mul.f32 %f12, %f10, %f11;", "%f12"),
    ("div.rn.f32 %f13, %f2, %f3;", "%f13"),
    ("div.approx.f32 %f14, %f1, %f2;", "%f14"),
    ("div.full.f32 %f15, %f3, %f2;", "%f15"),
    ("fma.rn.f32 %f16, %f2, %f3, %f1;", "%f16"),
    ("mad.rn.f32 %f17, %f12, %f2, 0f3F800000;", "%f17"),
    ("neg.f32 %f18, %f2;", "%f18"),
    ("abs.f32 %f19, %f3;", "%f19"),
    ("mov.f32 %f20, %f2;", "%f20"),
    ("mov.b32 %f21, %f3;", "%f21"),
    ("rsqrt.approx.f32 %f22, %f2;", "%f22"),
    ("rcp.rn.f32 %f23, %f3;", "%f23"),
    ("rcp.approx.f32 %f24, %f2;", "%f24"),
    ("sqrt.rn.f32 %f25, %f3;", "%f25"),
    ("sqrt.approx.f32 %f26, %f2;", "%f26"),
    ("ex2.approx.f32 %f31, %f2;", "%f31"),
    ("lg2.approx.f32 %f32, %f3;", "%f32"),
    ("ex2.approx.f32 %f33, %f1;", "%f33"),
    ("tanh.approx.f32 %f51, %f2;", "%f51"),
    ("tanh.approx.f32 %f52, %f1;", "%f52"),
    ("sin.approx.f32 %f53, %f2;", "%f53"),
    ("cos.approx.f32 %f54, %f3;", "%f54"),
    ("sin.approx.ftz.f32 %f55, %f3;", "%f55"),
    ("cos.approx.ftz.f32 %f56, %f1;", "%f56"),
    # .ftz: subnormal operands (the inputs have some) and results flushed to zeros of their sign
    ("add.ftz.f32 %f34, %f2, %f3;", "%f34"),
    ("mul.rn.ftz.f32 %f35, %f2, %f3;", "%f35"),
    ("fma.rn.ftz.f32 %f36, %f2, %f3, %f1;", "%f36"),
    ("div.approx.ftz.f32 %f37, %f2, %f3;", "%f37"),
    ("setp.lt.ftz.f32 %p6, %f2, %f3;", "%p6"),
    ("neg.ftz.f32 %f38, %f3;", "%f38"),
    ("ex2.approx.ftz.f32 %f39, %f2;", "%f39"),
    ("rsqrt.approx.ftz.f32 %f43, %f3;", "%f43"),
    ("lg2.approx.ftz.f32 %f44, %f2;", "%f44"),
    ("sub.ftz.f32 %f45, %f2, 0f00000003;", "%f45"),
    ("sqrt.rn.ftz.f32 %f46, %f2;", "%f46"),
    ("rcp.approx.ftz.f32 %f47, %f3;", "%f47"),
    ("abs.ftz.f32 %f48, %f2;", "%f48"),
    ("mad.rn.ftz.f32 %f49, %f2, 0f00400000, %f3;", "%f49"),
    ("div.full.ftz.f32 %f50, %f1, %f2;", "%f50"),
    ("setp.eq.f32 %p1, %f2, %f3;", "%p1"),
    ("setp.lt.f32 %p2, %f2, %f1;", "%p2"),
    ("setp.le.f32 %p3, %f2, %f3;", "%p3"),
    ("setp.gt.f32 %p4, %f1, %f3;", "%p4"),
    ("setp.ge.f32 %p5, %f2, %f3;", "%p5"),
    ("selp.f32 %f27, %f2, %f3, %p2;", "%f27"),
    ("add.f32 %f28, %f1, %f1;", "%f28"),
    ("mul.f32 %f29, %f28, 0f40000000;", "%f29"),
    ("fma.rn.f32 %f30, %f2, %f2, %f2;", None),
    ("add.f32 %f30, %f30, %f1;", "%f30"),  # defined twice: the segment keeps the second
    ("add.f32 %f40, %f2, %f3;", None),  # %f40, %f41 die inside the segment: scratch, never arrays
    ("mul.f32 %f41, %f40, %f40;", None),
    ("sub.f32 %f42, %f41, %f2;", "%f42"),
]
STORED = [reg for _, reg in BODY if reg is not None]


def _kernel() -> str:
    """The body for every thread, then again for the threads of a divergent branch (tid % 3 != 0) on
    changed inputs, so masked writes merge with the first pass's values. More than 64 registers are
    declared, so registers are dropped where they die (``_liveness``)."""
    body = "\n".join(f"    {line}" for line, _ in BODY)
    stores = []
    for k, reg in enumerate(STORED):
        if reg.startswith("%p"):
            stores.append(f"    selp.u32 %r30, 1, 0, {reg};\n    st.global.u32 [%rd20+{4 * k}], %r30;")
        else:
            stores.append(f"    st.global.f32 [%rd20+{4 * k}], {reg};")
    return SM80 + f"""
.visible .entry body(.param .u64 out, .param .u64 in, .param .f32 x) {{
    .reg .pred %p<8>; .reg .pred %q<2>; .reg .b32 %r<32>; .reg .f32 %f<100>; .reg .b64 %rd<24>;
    ld.param.u64 %rd1, [out];
    ld.param.u64 %rd2, [in];
    ld.param.f32 %f1, [x];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mov.u32 %r3, %tid.x;
    mul.wide.u32 %rd3, %r3, 8;
    add.s64 %rd4, %rd2, %rd3;
    ld.global.f32 %f2, [%rd4];
    ld.global.f32 %f3, [%rd4+4];
{body}
    rem.u32 %r29, %r3, 3;
    setp.eq.u32 %q1, %r29, 0;
    @%q1 bra $L_join;
    neg.f32 %f2, %f2;
    mul.f32 %f3, %f3, 0fC0000000;
    mul.f32 %f1, %f1, 0f3F000000;
{body}
$L_join:
    mul.wide.u32 %rd19, %r3, {4 * len(STORED)};
    add.s64 %rd20, %rd1, %rd19;
{chr(10).join(stores)}
    ret;
}}
"""


def _inputs(threads: int) -> np.ndarray:
    special = np.array(
        [0, 0x80000000, 1, 0x807FFFFF, 0x00800000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001,
         0x7FFFFFFF, 0x3F800000, 0xBF800000, 0x0000FFFF, 0x80000001, 0x00400000, 0x7F7FFFFF],
        dtype=np.uint32,
    )
    pairs = np.stack(np.meshgrid(special, special), axis=-1).reshape(-1, 2)  # every special with every other
    rng = np.random.default_rng(7)
    normal = rng.standard_normal((threads - pairs.shape[0], 2)).astype(np.float32).view(np.uint32)
    return np.concatenate([pairs, normal]).reshape(-1)


def _run(monkeypatch: pytest.MonkeyPatch, segments: bool, threads: int, x: float) -> np.ndarray:
    with monkeypatch.context() as patch:
        if not segments:
            patch.setattr(_native_run, "native", None)
        module = LoadedModule(_kernel())
        module.kernel("body")  # prepared (and fused) now, under the patch
    dev = Device(module)
    inp = dev.put(_inputs(threads))
    out = dev.zeros(threads * len(STORED), np.uint32)
    dev.run("body", 1, threads, out, inp, x)
    return dev.get(out, threads * len(STORED), np.uint32).reshape(threads, len(STORED))


def _segments(module: LoadedModule, kernel: str) -> int:
    """How many native segments the kernel's fused runs call (by the helper in their namespace)."""
    count = 0
    for run in module.kernel(kernel).fused[kernel]:
        if run is not None:
            count += run.full.__code__.co_names.count("_nseg")
    return count


@pytest.mark.parametrize("x", [1.5, -0.0, 1e-40, float("inf"), float("nan")])
def test_segments_compute_what_numpy_computes(monkeypatch: pytest.MonkeyPatch, x: float) -> None:
    native_out = _run(monkeypatch, True, 320, x)
    numpy_out = _run(monkeypatch, False, 320, x)
    for j, reg in enumerate(STORED):
        got, want = native_out[:, j], numpy_out[:, j]
        # which NaN an operation of two NaNs passes on is the compiler's operand order, in NumPy's
        # loops as in C's (a GPU's NaN is canonical): its payload is not promised, its NaN-ness is
        both_nan = np.isnan(got.view(np.float32)) & np.isnan(want.view(np.float32))
        assert np.array_equal(np.where(both_nan, 0, got), np.where(both_nan, 0, want)), f"{reg} differs"


def test_the_body_runs_as_one_segment_and_its_dying_registers_as_scratch() -> None:
    assert _segments(LoadedModule(_kernel()), "body") == 2  # one per copy of the body
    text = "\n".join(f"    {line}" for line, _ in BODY[-4:])
    code = LoadedModule(SM80 + f".visible .entry t() {{\n    .reg .f32 %f<100>;\n{text}\n    ret;\n}}\n")
    forms = [_native_run.native_form(ins, _f32) for ins in code.kernel("t").codes["t"].code[:4]]
    assert all(form is not None for form in forms)
    seg = _native_run.segment([f for f in forms if f is not None], [(), (), ("%f40",), ("%f41",)])
    assert seg.scratch == 2 and [name for name, _ in seg.outputs] == ["%f30", "%f42"]
    assert set(seg.pops) == {"%f40", "%f41"}


def test_a_long_line_of_temporaries_takes_two_scratch_slots_and_never_writes_its_source() -> None:
    """Each temporary dies at its one reader: the chunk buffers are taken again (a 40-long chain in two
    alternating slots, so they stay in the cache), and no record writes the slot it reads."""
    lines = ["add.f32 %f10, %f2, %f2;"] + [f"add.f32 %f{11 + k}, %f{10 + k}, %f2;" for k in range(39)]
    text = "\n".join(f"    {line}" for line in lines)
    code = LoadedModule(SM80 + f".visible .entry t() {{\n    .reg .f32 %f<100>;\n{text}\n    ret;\n}}\n")
    forms = [_native_run.native_form(ins, _f32) for ins in code.kernel("t").codes["t"].code[:40]]
    drops = [(f"%f{10 + k}",) for k in range(39)] + [()]
    seg = _native_run.segment([f for f in forms if f is not None], drops)
    assert seg.scratch == 2 and [name for name, _ in seg.outputs] == ["%f49"]
    records = np.frombuffer(seg.code, dtype=np.int32).reshape(-1, 5)
    assert all(d not in (a, b) for _, d, a, b, _ in records.tolist())


def test_an_ftz_record_flushes_only_what_may_be_subnormal() -> None:
    """``.ftz`` flushes a result in its own pass and an operand before it, but not one that an earlier
    ``.ftz`` record (or a mov/neg/abs of one) left flushed, nor a normal constant; a subnormal constant
    is flushed, as the Python form's ``float_pre`` does."""
    lines = [
        "mul.ftz.f32 %f10, %f2, %f3;",  # both from outside: flushed
        "add.ftz.f32 %f11, %f10, 0f3F800000;",  # neither
        "neg.f32 %f12, %f11;",
        "sub.ftz.f32 %f13, %f12, 0f00000003;",  # the subnormal constant only
        "setp.lt.ftz.f32 %p1, %f13, %f2;",  # %f2 again
    ]
    text = "\n".join(f"    {line}" for line in lines)
    decls = ".reg .f32 %f<20>; .reg .pred %p<2>;"
    code = LoadedModule(SM80 + f".visible .entry t() {{\n    {decls}\n{text}\n    ret;\n}}\n")
    forms = [_native_run.native_form(ins, _typed) for ins in code.kernel("t").codes["t"].code[:5]]
    seg = _native_run.segment([f for f in forms if f is not None], [()] * 5)
    ops = np.frombuffer(seg.code, dtype=np.int32).reshape(-1, 5)[:, 0].tolist()
    a, b = _native_run.FTZ_IN[:2]
    ftz = _native_run.FTZ
    assert ops == [
        _native_run.MUL | ftz | a | b,
        _native_run.ADD | ftz,
        _native_run.NEG,
        _native_run.SUB | ftz | b,
        _native_run.LT | ftz | b,
    ]


def _typed(operand: Operand) -> np.dtype[Any]:
    return np.dtype(np.bool_) if str(getattr(operand, "name", "")).startswith("%p") else np.dtype(np.float32)


def _f32(operand: Operand) -> np.dtype[Any]:
    return np.dtype(np.float32)


def test_a_segment_of_uniform_values_leaves_uniform_values() -> None:
    module = LoadedModule(SM80 + """
.visible .entry uniform(.param .u64 out, .param .f32 x) {
    .reg .b32 %r<4>; .reg .f32 %f<8>; .reg .b64 %rd<4>; .reg .pred %p<2>;
    ld.param.u64 %rd1, [out];
    ld.param.f32 %f1, [x];
    mul.f32 %f2, %f1, %f1;
    fma.rn.f32 %f3, %f2, %f1, 0f3F800000;
    setp.gt.f32 %p1, %f3, %f1;
    selp.f32 %f4, %f3, %f2, %p1;
    sqrt.rn.f32 %f5, %f4;
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.f32 [%rd3], %f5;
    ret;
}
""")
    assert _segments(module, "uniform") == 1
    dev = Device(module)
    out = dev.zeros(64, np.float32)
    dev.run("uniform", 1, 64, out, 3.0)
    x = np.float32(3.0)
    f2 = x * x
    want = np.sqrt(np.float64(f2 * x + np.float32(1)))  # fma exact here
    assert np.array_equal(dev.get(out, 64, np.float32), np.full(64, np.float32(want)))


@pytest.mark.parametrize(
    ("records", "slots", "n", "scratch"),
    [
        ([[99, 0, 1, 1, 0]], 2, 4, 0),  # an unknown op
        ([[1, 7, 0, 0, 0]], 2, 4, 0),  # a slot past the slots and scratch
        ([[1, -1, 0, 0, 0]], 2, 4, 0),  # a negative slot
        ([[13, 0, 1, 1, 0]], 2, 4, 0),  # a 4-byte slot written as a predicate
        ([[1, 1, 0, 0, 0]], 2, 8, 0),  # arrays shorter than the lanes
        ([[1, 1, 0, 0, 0]], 2, 0, 0),  # no lanes
        ([[1, 1, 0, 0]], 2, 4, 0),  # not whole records
    ],
)
def test_run_f32_refuses_what_it_cannot_serve(records: list[list[int]], slots: int, n: int, scratch: int) -> None:
    assert native is not None
    arrays = tuple(np.zeros(4, dtype=np.float32) for _ in range(slots))
    code = np.array(records, dtype=np.int32).tobytes()
    with pytest.raises(ValueError):
        native.run_f32(code, arrays, n, scratch)
    assert all(not a.any() for a in arrays)  # nothing written


def test_run_f32_never_writes_a_read_only_or_uniform_slot() -> None:
    assert native is not None
    a = np.ones(4, dtype=np.float32)
    read_only = np.zeros(4, dtype=np.float32)
    read_only.flags.writeable = False
    code = np.array([[1, 1, 0, 0, 0]], dtype=np.int32).tobytes()
    with pytest.raises(ValueError):  # NumPy refuses a writable buffer of a read-only array
        native.run_f32(code, (a, read_only), 4, 0)
    with pytest.raises(ValueError):  # a one-element (uniform) destination for four lanes
        native.run_f32(code, (a, np.zeros(1, dtype=np.float32)), 4, 0)


@pytest.mark.parametrize(
    ("records", "extra", "scratch"),
    [
        # a slot no record names, uniform, of 8-byte elements: its broadcast would fill 512 * 8 bytes of a
        # 512 * 4-byte pool entry (heap corruption before the element sizes were checked as 1 or 4)
        ([[0, 1, 0, 0, 0]], (np.ones(1, dtype=np.float64),), 0),
        # a scratch slot read before any record writes it: uninitialized heap bytes into the registers
        ([[0, 1, 2, 0, 0]], (), 1),
        ([[1, 2, 0, 2, 0], [0, 1, 2, 0, 0]], (), 1),  # its first write reads it as well
    ],
)
def test_run_f32_refuses_unused_wide_slots_and_unwritten_scratch(
    records: list[list[int]], extra: tuple[np.ndarray[Any, Any], ...], scratch: int
) -> None:
    assert native is not None
    a = np.ones(4, dtype=np.float32)
    d = np.zeros(4, dtype=np.float32)
    with pytest.raises(ValueError):
        native.run_f32(np.array(records, dtype=np.int32).tobytes(), (a, d, *extra), 4, scratch)
    assert not d.any()  # nothing written


@pytest.mark.timeout(300)
def test_hostile_calls_into_the_c_forms_find_nothing() -> None:
    """fuzz/native_calls.py for a fixed number of calls (its long runs, under ASan, in
    docs/reliability.md) in a process of its own: an overflow that corrupts the heap ends it. The
    build before f0a89b0 aborted here (glibc: double free or corruption)."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(root / "fuzz" / "native_calls.py"), "1", "240", "3000"],
        check=False, capture_output=True, text=True, timeout=280,
    )
    assert done.returncode == 0 and "no fault" in done.stdout, (done.stdout + done.stderr)[-3000:]


def _run_one(op: int, x: np.ndarray) -> np.ndarray:
    assert native is not None
    out = np.empty_like(x)
    native.run_f32(np.array([op, 1, 0, 0, 0], dtype=np.int32).tobytes(), (x, out), x.size, 0)
    return out


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 63, reason="needs x87's 64-bit long double")
@pytest.mark.parametrize(
    ("op", "fn"),
    [
        (_native_run.EX2, np.exp2),
        (_native_run.LG2, np.log2),
        (_native_run.TANH, np.tanh),
        (_native_run.SIN, np.sin),
        (_native_run.COS, np.cos),
    ],
)
def test_the_special_functions_are_the_correctly_rounded_floats(op: int, fn: Any) -> None:
    """run_f32's vectorized ex2/lg2/tanh/sin/cos (a double approximation, the lanes near a float rounding
    boundary redone in long double) round the true value correctly: random bit patterns (every sign,
    subnormals, NaN, infinities, sin/cos past their reduction's 2^20), the range where ex2's results
    turn subnormal and zero and tanh's saturate, lg2 around 1, tanh's small arguments (where its two
    approximations meet), and the floats nearest multiples of pi/2 (sin/cos's reduction)."""
    rng = np.random.default_rng(11)
    special = [0, -0.0, np.inf, -np.inf, np.nan, -150, -149, 128, 1, 2, 1e-45, 3.4e38]
    x = np.concatenate(
        [
            rng.integers(0, 1 << 32, 1 << 21, dtype=np.uint64).astype(np.uint32).view(np.float32),
            np.linspace(-152, 130, 1 << 20, dtype=np.float32),
            np.linspace(0.5, 2, 1 << 20, dtype=np.float32),
            np.linspace(-0.5, 0.5, 1 << 20, dtype=np.float32),
            (np.arange(1, 1 << 19) * np.pi / 2).astype(np.float32),
            np.array(special, dtype=np.float32),
        ]
    )
    with np.errstate(all="ignore"):
        want = fn(x.astype(np.longdouble)).astype(np.float32)
    got = _run_one(op, x)
    same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
    assert same.all(), (x[~same][:5], got[~same][:5], want[~same][:5])


def test_rsqrt_is_the_python_forms_float_for_every_mantissa() -> None:
    """run_f32's rsqrt (float's estimate, one correction in double, the Python form's own computation
    near a float midpoint) equals ``(float)(1 / sqrt(double))`` for every float in [1, 4) — a whole
    period: rsqrt(4x) is rsqrt(x) / 2 exactly — and for random bit patterns (subnormals, zeros, negative
    values, infinities, NaN)."""
    rng = np.random.default_rng(5)
    chunks = [np.arange(lo, lo + (1 << 22), dtype=np.uint32) for lo in range(0x3F800000, 0x40800000, 1 << 22)]
    chunks.append(rng.integers(0, 1 << 32, 1 << 21, dtype=np.uint64).astype(np.uint32))
    for bits in chunks:
        x = bits.view(np.float32)
        with np.errstate(all="ignore"):
            want = (1.0 / np.sqrt(x.astype(np.float64))).astype(np.float32)
        got = _run_one(_native_run.RSQRT, x)
        same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
        assert same.all(), (x[~same][:5], got[~same][:5], want[~same][:5])
