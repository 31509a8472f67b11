"""NVIDIA's libraries' device code (tests/kernels/ptx_libs.cu, as nvcc 13 compiles CUB for compute_75/80/
90): a block radix sort (its digits masked with bmsk), a block exclusive scan, a block reduction and a
warp reduction against exact references; and bmsk's clamp and wrap forms in hand-written PTX."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from executor import CallIO
from executor._sim import SimExecutor
from executor.ptx import LoadedModule
from protocol import CALLS_BY_NAME, CUresult

from .conftest import KERNELS, Device, ptx_device

LIBS = {arch: KERNELS / f"ptx_libs.compute_{arch}.ptx" for arch in (75, 80, 90)}
THREADS, ITEMS = 128, 4


@pytest.fixture(params=sorted(LIBS), ids=lambda arch: f"compute_{arch}")
def libs(request: pytest.FixtureRequest) -> Device:
    return Device(LoadedModule(LIBS[request.param].read_text()))


def test_cub_block_radix_sort_and_scan(libs: Device) -> None:
    blocks = 3
    per_block = THREADS * ITEMS
    rng = np.random.default_rng(9)
    keys = rng.integers(-(1 << 31), 1 << 31, blocks * per_block, dtype=np.int64).astype(np.int32)
    keys[:50] = keys[50]  # duplicates
    keys[per_block : 2 * per_block] = rng.integers(-300, 300, per_block)  # small keys: sums stay in range
    pin = libs.put(keys)
    psorted, psums, ptotals = (
        libs.zeros(blocks * per_block, np.int32),
        libs.zeros(blocks * per_block, np.int32),
        libs.zeros(blocks, np.int32),
    )
    libs.run("cub_sort_scan", blocks, THREADS, pin, psorted, psums, ptotals)
    want = np.sort(keys.reshape(blocks, per_block), axis=1)
    assert (libs.get(psorted, blocks * per_block, np.int32).reshape(blocks, per_block) == want).all()
    wide = want.astype(np.int64)
    exclusive = np.cumsum(wide, axis=1) - wide
    wrap = ((exclusive + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)  # int sums wrap as on a GPU
    assert (libs.get(psums, blocks * per_block, np.int32).reshape(blocks, per_block) == wrap).all()
    totals = ((wide.sum(axis=1) + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)
    assert (libs.get(ptotals, blocks, np.int32) == totals).all()


def test_cub_block_and_warp_reductions(libs: Device) -> None:
    blocks = 4
    n = blocks * THREADS
    rng = np.random.default_rng(10)
    values = rng.integers(-1000, 1000, n).astype(np.float32)
    keys = rng.integers(-(1 << 31), 1 << 31, n, dtype=np.int64).astype(np.int32)
    pv, pk, ps, pm = (
        libs.put(values),
        libs.put(keys),
        libs.zeros(blocks, np.float32),
        libs.zeros(n // 32, np.int32),
    )
    libs.run("cub_reduce", blocks, THREADS, pv, pk, ps, pm)
    assert (libs.get(ps, blocks, np.float32) == values.reshape(blocks, -1).sum(axis=1)).all()
    assert (libs.get(pm, n // 32, np.int32) == keys.reshape(-1, 32).max(axis=1)).all()


_BMSK = """
.version 8.0
.target sm_80
.address_size 64
.visible .entry bmsk(.param .u64 io)
{
    .reg .b32 %r<5>;
    .reg .b64 %rd<2>;
    ld.param.u64 %rd1, [io];
    ld.global.u32 %r1, [%rd1];
    ld.global.u32 %r2, [%rd1+4];
    bmsk.clamp.b32 %r3, %r1, %r2;
    bmsk.wrap.b32 %r4, %r1, %r2;
    st.global.v2.u32 [%rd1+8], {%r3, %r4};
    ret;
}
"""


@pytest.mark.parametrize(
    ("a", "b", "clamp", "wrap"),
    [
        (0, 8, 0xFF, 0xFF),
        (4, 4, 0xF0, 0xF0),
        (28, 8, 0xF0000000, 0xF0000000),  # past bit 31: cut there
        (0, 32, 0xFFFFFFFF, 0),  # wrap: a width of 32 is 0
        (32, 4, 0, 0xF),  # clamp: nothing at 32; wrap: position 0
        (33, 40, 0, 0x1FE),  # wrap: 1 and 8
        (0, 0, 0, 0),
    ],
)
def test_bmsk_clamp_and_wrap(a: int, b: int, clamp: int, wrap: int) -> None:
    device = ptx_device(_BMSK)
    io = device.put(np.array([a, b, 0, 0], dtype=np.uint32))
    device.run("bmsk", 1, 1, io)
    assert [int(v) for v in device.get(io, 4, np.uint32)[2:]] == [clamp, wrap]


_BYVAL = """
.version 8.0
.target sm_90
.address_size 64
.visible .entry byval(.param .align 8 .b8 s[24], .param .u64 out, .param .u32 past)
{
    .reg .b32 %r<3>;
    .reg .b64 %rd<6>;
    mov.b64 %rd1, s;
    ld.param.u32 %r2, [past];
    cvt.u64.u32 %rd5, %r2;
    add.s64 %rd1, %rd1, %rd5;
    ld.param.u32 %r1, [%rd1+4];
    ld.param.u64 %rd2, [%rd1+16];
    ld.param.u64 %rd3, [out];
    st.global.u32 [%rd3], %r1;
    st.global.u64 [%rd3+8], %rd2;
    ret;
}
"""


def test_a_kernel_parameter_read_through_its_address() -> None:
    """``mov %rd, param`` and ``ld.param [%rd+k]`` (how CUB's device-wide kernels read by-value
    functors) read the launch's parameter block; past it is CUDA_ERROR_ILLEGAL_ADDRESS."""
    device = ptx_device(_BYVAL)
    struct = np.array([7, 0xC0FFEE, 0, 0, 0xDEADBEEF, 0x12345678], dtype=np.uint32).tobytes()
    out = device.zeros(4, np.uint32)
    device.run("byval", 1, 32, struct, out, 0)
    assert [int(v) for v in device.get(out, 4, np.uint32)] == [0xC0FFEE, 0, 0xDEADBEEF, 0x12345678]
    err = device.fails("byval", 1, 32, struct, out, 64)  # 64 bytes on: past the 36-byte parameter block
    assert err.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS


def _lanes(v: npt.NDArray[np.uint32], width: int, signed: bool) -> npt.NDArray[np.int64]:
    """(n, lanes) of each word's lanes, lowest first."""
    shifts = np.arange(0, 32, width, dtype=np.int64)
    lanes = (v.astype(np.int64)[:, None] >> shifts) & ((1 << width) - 1)
    return np.where(lanes >> (width - 1), lanes - (1 << width), lanes) if signed else lanes


def _words(lanes: npt.NDArray[np.int64], width: int) -> npt.NDArray[np.uint32]:
    shifts = np.arange(0, 32, width, dtype=np.int64)
    words: npt.NDArray[np.uint32] = ((lanes & ((1 << width) - 1)) << shifts).sum(axis=1).astype(np.uint32)
    return words


def test_simd_intrinsics_agree_across_architectures_and_with_their_definitions() -> None:
    """The CUDA Math API's __v* intrinsics: compute_90's u16x2/s16x2 instructions against
    compute_75/80's emulation of them, bit for bit, and the vabsdiff ones (every architecture) against
    the intrinsics' definitions."""
    rng = np.random.default_rng(12)
    n = 256
    a = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    a[:8] = [0, 0xFFFFFFFF, 0x80808080, 0x7F7F7F7F, 0x80008000, 0x7FFF7FFF, 0x01FF80FE, 0xFFFF0000]
    results = {}
    for arch, path in LIBS.items():
        device = Device(LoadedModule(path.read_text()))
        pa, pb, po = device.put(a), device.put(b), device.zeros(32 * n, np.uint32)
        device.run("simd_intrinsics", n // 64, 64, pa, pb, po)
        results[arch] = device.get(po, 32 * n, np.uint32).reshape(n, 32)
    assert np.array_equal(results[90], results[80]) and np.array_equal(results[80], results[75])
    got = results[90]
    for width in (8, 16):
        us, ut = _lanes(a, width, False), _lanes(b, width, False)
        ss, st = _lanes(a, width, True), _lanes(b, width, True)
        assert np.array_equal(got[:, 2 if width == 16 else 3], _words(np.abs(ss - st), width))  # __vabsdiffs
        assert np.array_equal(got[:, 4 if width == 16 else 5], _words(np.abs(us - ut), width))  # __vabsdiffu
        sads, sadu = (24, 25) if width == 16 else (26, 27)
        assert np.array_equal(got[:, sads], np.abs(ss - st).sum(axis=1).astype(np.uint32))  # __vsads
        assert np.array_equal(got[:, sadu], np.abs(us - ut).sum(axis=1).astype(np.uint32))  # __vsadu
    s8 = _lanes(a, 8, True)
    assert np.array_equal(got[:, 7], _words(np.minimum(np.abs(s8), 127), 8))  # __vabsss4
    s16, t16 = _lanes(a, 16, True), _lanes(b, 16, True)
    u16, v16 = _lanes(a, 16, False), _lanes(b, 16, False)
    assert np.array_equal(got[:, 8], _words(u16 + v16, 16))  # __vadd2
    assert np.array_equal(got[:, 17], _words(np.maximum(s16, t16), 16))  # __vmaxs2
    assert np.array_equal(got[:, 18], _words(np.maximum(u16, v16), 16))  # __vmaxu2
    assert np.array_equal(got[:, 20], _words(np.minimum(s16, t16), 16))  # __vmins2
    assert np.array_equal(got[:, 21], _words(np.minimum(u16, v16), 16))  # __vminu2
    assert np.array_equal(got[:, 28], _words(u16 - v16, 16))  # __vsub2


def _sim_launch(
    arch: int,
    kernel: str,
    grid: int,
    block: int,
    inputs: list[npt.NDArray[Any]],
    outputs: list[tuple[Any, int]],
    scalars: bytes,
) -> list[npt.NDArray[Any]]:
    """``kernel`` of the corpus through ``sim``'s executor, which places the module's globals (with
    their initializers) as a guest's module load does; pointer parameters, then ``scalars``."""
    ex = SimExecutor()

    def call(name: str, inp: bytes = b"", **args: Any) -> Any:
        spec = CALLS_BY_NAME[name]
        return ex.execute(spec, spec.args(**args), CallIO(memoryview(inp), memoryview(bytearray(64)), True))

    module = call("module_load_data", inp=LIBS[arch].read_bytes() + b"\0").module
    function = int(call("module_get_function", module=module, inp=kernel.encode()).function)
    ptrs = []
    for values in inputs:
        ptrs.append(ex.memory.alloc(values.nbytes))
        ex.memory.write(ptrs[-1], values.view(np.uint8).reshape(-1))
    for dtype, count in outputs:
        ptrs.append(ex.memory.alloc(np.dtype(dtype).itemsize * count))
    params = b"".join(p.to_bytes(8, "little") for p in ptrs) + scalars
    call(
        "launch_kernel",
        function=function,
        grid_x=grid,
        grid_y=1,
        grid_z=1,
        block_x=block,
        block_y=1,
        block_z=1,
        shared_mem_bytes=0,
        stream=0,
        inp=params,
    )
    call("ctx_synchronize")
    got = []
    for ptr, (dtype, count) in zip(ptrs[len(inputs) :], outputs, strict=True):
        got.append(ex.memory.read(ptr, np.dtype(dtype).itemsize * count).view(dtype).copy())
    ex.close()
    return got


@pytest.mark.parametrize("arch", sorted(LIBS), ids=lambda a: f"compute_{a}")
def test_double_sin_cos_tan_of_large_arguments(arch: int) -> None:
    """libdevice's sin/cos/tan of doubles (large arguments reduced with carry chains and the module's
    constant table of 2/pi) within 2 ulps of NumPy's (the CUDA Math API documents 2 ulps)."""
    rng = np.random.default_rng(13)
    x = np.concatenate(
        [rng.uniform(-10, 10, 64), 10.0 ** rng.uniform(5, 300, 128), [1e22, 2.0**1000, -3e200, 0.0]]
    )
    n = x.size
    (out,) = _sim_launch(
        arch, "double_trig", (n + 63) // 64, 64, [x], [(np.float64, 3 * n)], np.uint32(n).tobytes()
    )
    got = out.reshape(n, 3)
    for k, want in enumerate((np.sin(x), np.cos(x), np.tan(x))):
        ulps = np.abs(got[:, k] - want) / np.spacing(np.abs(want))
        assert (ulps <= 2).all(), (k, x[ulps > 2][:3], got[ulps > 2, k][:3], want[ulps > 2][:3])


_CARRY = """
.version 8.0
.target sm_80
.address_size 64
.visible .entry carry(.param .u64 io)
{
    .reg .b32 %r<24>;
    .reg .b64 %rd<12>;
    ld.param.u64 %rd1, [io];
    ld.global.v4.u32 {%r1, %r2, %r3, %r4}, [%rd1];
    ld.global.v4.u32 {%r5, %r6, %r7, %r8}, [%rd1+16];
    add.cc.u32 %r9, %r8, -1;
    madc.hi.cc.u32 %r10, %r1, %r2, %r3;
    addc.u32 %r11, 0, 0;
    add.cc.u32 %r12, %r1, %r4;
    addc.cc.u32 %r13, %r2, %r5;
    addc.u32 %r14, %r3, %r6;
    sub.cc.u32 %r15, %r1, %r4;
    subc.cc.u32 %r16, %r2, %r5;
    subc.u32 %r17, %r3, %r6;
    mad.lo.cc.u32 %r18, %r1, %r2, %r3;
    madc.lo.u32 %r19, %r4, %r5, %r6;
    mad.hi.cc.s32 %r20, %r1, %r2, %r3;
    addc.u32 %r21, 0, 0;
    st.global.v4.u32 [%rd1+32], {%r10, %r11, %r12, %r13};
    st.global.v4.u32 [%rd1+48], {%r14, %r15, %r16, %r17};
    st.global.v4.u32 [%rd1+64], {%r18, %r19, %r20, %r21};
    ld.global.v2.u64 {%rd2, %rd3}, [%rd1+80];
    ld.global.v2.u64 {%rd4, %rd5}, [%rd1+96];
    add.cc.u64 %rd6, %rd2, %rd4;
    addc.u64 %rd7, %rd3, %rd5;
    mad.hi.cc.s64 %rd8, %rd2, %rd4, %rd5;
    madc.hi.u64 %rd9, %rd3, %rd5, %rd2;
    sub.cc.s64 %rd10, %rd2, %rd4;
    subc.u64 %rd11, %rd3, %rd5;
    st.global.v2.u64 [%rd1+112], {%rd6, %rd7};
    st.global.v2.u64 [%rd1+128], {%rd8, %rd9};
    st.global.v2.u64 [%rd1+144], {%rd10, %rd11};
    ret;
}
"""


def _carry_reference(w: list[int], q: list[int]) -> list[int]:
    """What the _CARRY kernel writes, by Python integers (w: eight u32, q: four u64)."""
    m32, m64 = (1 << 32) - 1, (1 << 64) - 1
    r1, r2, r3, r4, r5, r6, _r7, r8 = w

    def s(v: int, bits: int) -> int:  # the signed value of ``bits`` bits
        return v - (1 << bits) if v >> (bits - 1) else v

    cf = int(r8 + m32 > m32)
    t = ((r1 * r2) >> 32) + r3 + cf
    out = [t & m32, t >> 32]
    a96, b96 = r1 | r2 << 32 | r3 << 64, r4 | r5 << 32 | r6 << 64
    total = (a96 + b96) & ((1 << 96) - 1)
    out += [total & m32, (total >> 32) & m32, total >> 64]
    diff = (a96 - b96) & ((1 << 96) - 1)
    out += [diff & m32, (diff >> 32) & m32, diff >> 64]
    lo = (r1 * r2 & m32) + r3
    out += [lo & m32, ((r4 * r5) + r6 + (lo >> 32)) & m32]
    hi = ((s(r1, 32) * s(r2, 32)) >> 32) & m32
    out += [(hi + r3) & m32, (hi + r3) >> 32]
    q2, q3, q4, q5 = q
    wide = q2 + q4
    out64 = [wide & m64, (q3 + q5 + (wide >> 64)) & m64]
    high = ((s(q2, 64) * s(q4, 64)) >> 64) & m64
    madc = high + q5
    out64 += [madc & m64, (((q3 * q5) >> 64) + q2 + (madc >> 64)) & m64]
    borrow = int(q2 < q4)
    out64 += [(q2 - q4) & m64, (q3 - q5 - borrow) & m64]
    return out + out64


def test_carry_chains_against_python_integers() -> None:
    device = ptx_device(_CARRY)
    rng = np.random.default_rng(14)
    for trial in range(40):
        w = [int(v) for v in rng.integers(0, 1 << 32, 8, dtype=np.uint64)]
        q = [int(v) for v in rng.integers(0, 1 << 64, 4, dtype=np.uint64)]
        if trial % 4 == 0:  # carries and borrows all the way
            w[:6] = [0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 1, 0, 0]
            q = [(1 << 64) - 1, (1 << 63), 1, (1 << 64) - 1]
        w[7] = trial % 2  # the carry flag madc.hi.cc starts with
        raw = np.zeros(40, dtype=np.uint32)
        raw[:8] = w
        raw[20:28] = np.array(q, dtype=np.uint64).view(np.uint32)
        io = device.put(raw)
        device.run("carry", 1, 1, io)
        got = device.get(io, 40, np.uint32)
        words = [int(v) for v in got[8:20]] + [int(v) for v in got[28:40].view(np.uint64)]
        assert words == _carry_reference(w, q), trial
