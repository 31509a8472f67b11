"""Vector and packed-half atomics (``executor/ptx/_isa_atomic_vec.py``) through the corpus
``tests/kernels/ptx_atomic_vec.cu`` as nvcc 13 compiles it: atomicAdd on ``__half``, ``__half2``,
``__nv_bfloat16``, ``__nv_bfloat162`` (compute_90's ``atom.add.noftz`` forms; NVIDIA's CAS loops on
compute_75/80, ``atom.cas.b16`` among them), on global and shared memory, ``float2``/``float4`` adds
and the sm_90 16-bit vector forms with min and max — against a serial model written here: the
threads one after another in index order, each element's add exact then rounded once to nearest
even (the ISA's rounding), subnormal halves kept (``.noftz``). Many threads share each slot, so the
sums round differently from an unrounded total, and every thread's old value is checked too."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from executor.ptx import LoadedModule
from protocol import CUresult

from .conftest import KERNELS, Device, ptx_device

SOURCE = {arch: KERNELS / f"ptx_atomic_vec.compute_{arch}.ptx" for arch in (75, 80, 90)}
N = 200  # threads: two blocks of 128, the second partly idle
BLOCK = 128
SLOTS = 6

Bits = npt.NDArray[np.uint16]


def _device(path: Path) -> Device:
    return Device(LoadedModule(path.read_text()))


def _f16(bits: int) -> Fraction:
    return Fraction(float(np.uint16(bits).view(np.float16)))


def _to_f16(x: Fraction) -> int:
    return int(np.float16(float(x)).view(np.uint16))  # f16 + f16 is exact in float64; one rounding


def _bf16(bits: int) -> Fraction:
    return Fraction(float(np.uint32(bits << 16).view(np.float32)))


def _to_bf16(x: Fraction) -> int:
    """``x`` (normal range) to bf16 by round-to-nearest-even, exactly."""
    if x == 0:
        return 0
    mantissa, exponent = math.frexp(abs(x))  # exact for these: x is a float64 sum
    scaled = Fraction(mantissa) * 256  # 8 significant bits
    near = round(scaled)  # Fraction rounds half to even
    value = float(Fraction(near, 256)) * 2.0**exponent
    bits = int(np.float32(value).view(np.uint32)) >> 16
    return bits | (0x8000 if x < 0 else 0)


_VALUE: dict[str, tuple[Callable[[int], Fraction], Callable[[Fraction], int]]] = {
    "f16": (_f16, _to_f16),
    "bf16": (_bf16, _to_bf16),
}


def _serial(kind: str, op: str, start: Bits, values: Bits, slots: int) -> tuple[Bits, Bits]:
    """The model: thread i applies row i of ``values`` (its elements) to slot i % slots in index
    order; returns memory after and every thread's old elements."""
    value, to_bits = _VALUE[kind]
    memory = start.copy()
    olds = np.empty_like(values)
    for i, row in enumerate(values):
        slot = memory[i % slots]
        olds[i] = slot
        for k, b in enumerate(row.tolist()):
            a = int(slot[k])
            if op == "add":
                slot[k] = to_bits(value(a) + value(b))
            else:
                pick = min if op == "min" else max
                slot[k] = a if pick(value(a), value(b)) == value(a) else b
    return memory, olds


def _halves(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> Bits:
    """Values of mixed magnitudes (f16: subnormals among them), none zero, no NaN or infinity."""
    magnitude = rng.uniform(0.5, 1.0, shape) * 2.0 ** rng.integers(-6, 6, shape)
    signed = np.where(rng.random(shape) < 0.3, -magnitude, magnitude)
    if kind == "f16":
        tiny = rng.random(shape) < 0.1
        signed = np.where(tiny, signed * 2.0**-17, signed)  # f16 subnormals: .noftz keeps them
        return signed.astype(np.float16).view(np.uint16)
    return (signed.astype(np.float32).view(np.uint32) >> np.uint32(16)).astype(np.uint16)


def _run(
    device: Device, kernel: str, kind: str, op: str, lanes: int, seed: int, slots: int = SLOTS
) -> tuple[Bits, Bits, Bits, Bits]:
    """Launch ``kernel(p, v, n, slots, old)`` over random elements; (memory, olds) and the model's."""
    rng = np.random.default_rng(seed)
    start = _halves(rng, kind, (slots, lanes))
    values = _halves(rng, kind, (N, lanes))
    p = device.put(start)
    old = device.zeros(N * lanes, np.uint16)
    device.run(kernel, (N + BLOCK - 1) // BLOCK, BLOCK, p, device.put(values), N, slots, old)
    want_memory, want_olds = _serial(kind, op, start, values, slots)
    got_memory = device.get(p, slots * lanes, np.uint16).reshape(slots, lanes)
    got_olds = device.get(old, N * lanes, np.uint16).reshape(N, lanes)
    return got_memory, want_memory, got_olds, want_olds


def _same(got: Bits, want: Bits) -> None:
    np.testing.assert_array_equal(got, want, err_msg="bits differ")


@pytest.mark.parametrize("arch", sorted(SOURCE))
@pytest.mark.parametrize(
    ("kernel", "kind", "lanes"),
    [("half_add", "f16", 1), ("half2_add", "f16", 2), ("bf16_add", "bf16", 1), ("bf162_add", "bf16", 2)],
)
def test_half_adds_in_thread_order(arch: int, kernel: str, kind: str, lanes: int) -> None:
    memory, want_memory, olds, want_olds = _run(_device(SOURCE[arch]), kernel, kind, "add", lanes, seed=arch)
    _same(memory, want_memory)
    _same(olds, want_olds)


def test_half_add_rounds_every_step() -> None:
    """2048 + 1 in f16 is 2048 (a tie, to even): 64 threads adding 1 leave 2048, not 2112 — each
    add is rounded as it happens, not the sum at the end."""
    device = _device(SOURCE[90])
    n = 64
    p = device.put(np.array([2048.0], dtype=np.float16))
    old = device.zeros(n, np.uint16)
    device.run("half_add", 1, n, p, device.put(np.ones(n, dtype=np.float16)), n, 1, old)
    assert float(device.get(p, 1, np.float16)[0]) == 2048.0
    assert set(device.get(old, n, np.float16).tolist()) == {2048.0}


@pytest.mark.parametrize("arch", sorted(SOURCE))
def test_half2_shared(arch: int) -> None:
    """Shared slots through generic addresses, each block its own: per block the serial model."""
    device = _device(SOURCE[arch])
    rng = np.random.default_rng(7)
    values = _halves(rng, "f16", (N, 2))
    out = device.zeros(2 * 4 * 2, np.uint16)
    old = device.zeros(N * 2, np.uint16)
    device.run("half2_shared", 2, BLOCK, device.put(values), N, out, old)
    got = device.get(out, 16, np.uint16).reshape(2, 4, 2)
    got_olds = device.get(old, N * 2, np.uint16).reshape(N, 2)
    for block in range(2):
        rows = values[block * BLOCK : min(N, (block + 1) * BLOCK)]
        memory, olds = _serial("f16", "add", np.zeros((4, 2), dtype=np.uint16), rows, 4)
        _same(got[block], memory)
        _same(got_olds[block * BLOCK : block * BLOCK + len(rows)], olds)


def _floats(rng: np.random.Generator, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    return (rng.uniform(-1, 1, shape) * 2.0 ** rng.integers(-10, 10, shape)).astype(np.float32)


def _serial_f32(start: npt.NDArray[np.float32], values: npt.NDArray[np.float32], slots: int) -> Any:
    memory = start.astype(np.float32).copy()
    olds = np.empty_like(values)
    for i, row in enumerate(values):
        olds[i] = memory[i % slots]
        # two f32 summed in float64 then rounded once: correctly rounded (53 >= 2 * 24 + 2)
        memory[i % slots] = (memory[i % slots].astype(np.float64) + row.astype(np.float64)).astype(np.float32)
    return memory, olds


@pytest.mark.parametrize("arch", sorted(SOURCE))
@pytest.mark.parametrize(("kernel", "lanes"), [("float4_add", 4), ("float2_red", 2)])
def test_float_vectors(arch: int, kernel: str, lanes: int) -> None:
    device = _device(SOURCE[arch])
    rng = np.random.default_rng(lanes)
    start, values = _floats(rng, (SLOTS, lanes)), _floats(rng, (N, lanes))
    p = device.put(start)
    args: list[int] = [p, device.put(values), N, SLOTS]
    old = device.zeros(N * lanes, np.float32)
    if kernel == "float4_add":
        args.append(old)
    device.run(kernel, (N + BLOCK - 1) // BLOCK, BLOCK, *args)
    want_memory, want_olds = _serial_f32(start, values, SLOTS)
    _same(device.get(p, SLOTS * lanes, np.uint32), want_memory.view(np.uint32).reshape(-1))
    if kernel == "float4_add":
        _same(device.get(old, N * lanes, np.uint32), want_olds.view(np.uint32).reshape(-1))


@pytest.mark.parametrize("op", ["add", "min", "max"])
@pytest.mark.parametrize(("kernel", "kind", "lanes"), [("half8", "f16", 8), ("bf16x2x4", "bf16", 8)])
def test_sm90_vectors(kernel: str, kind: str, lanes: int, op: str) -> None:
    """``atom.global.{add,min,max}.noftz.v8.f16`` and ``.v4.bf16x2``: eight elements a thread."""
    memory, want_memory, olds, want_olds = _run(
        _device(SOURCE[90]), f"{kernel}_{op}", kind, op, lanes, seed=3
    )
    _same(memory, want_memory)
    _same(olds, want_olds)


def test_sm90_reductions() -> None:
    """``red.global.add.noftz.v4.bf16`` and ``.v2.f16x2`` (no result)."""
    device = _device(SOURCE[90])
    rng = np.random.default_rng(11)
    start_b, values_b = _halves(rng, "bf16", (SLOTS, 4)), _halves(rng, "bf16", (N, 4))
    start_h, values_h = _halves(rng, "f16", (SLOTS, 4)), _halves(rng, "f16", (N, 4))
    p, q = device.put(start_b), device.put(start_h)
    device.run("reductions", 2, BLOCK, p, device.put(values_b), q, device.put(values_h), N, SLOTS)
    _same(
        device.get(p, SLOTS * 4, np.uint16).reshape(SLOTS, 4),
        _serial("bf16", "add", start_b, values_b, SLOTS)[0],
    )
    _same(
        device.get(q, SLOTS * 4, np.uint16).reshape(SLOTS, 4),
        _serial("f16", "add", start_h, values_h, SLOTS)[0],
    )


_HEADER = ".version 8.0\n.target sm_90\n.address_size 64\n"


def _hand(body: str, params: str = ".param .u64 p") -> Device:
    return ptx_device(
        f"{_HEADER}.visible .entry k({params})\n{{\n.reg .b16 %h<9>;\n.reg .b32 %r<5>;\n"
        f".reg .b64 %rd<3>;\n.reg .f32 %f<5>;\nld.param.u64 %rd1, [p];\n{body}\nret;\n}}\n"
    )


def test_misaligned_vector_faults() -> None:
    """A vector's address must be aligned to the whole vector: 8 bytes off a 16-byte v4.f32 fails."""
    device = _hand(
        "add.u64 %rd2, %rd1, 8;\natom.global.add.v4.f32 {%f1,%f2,%f3,%f4}, [%rd2], {%f1,%f2,%f3,%f4};"
    )
    p = device.zeros(8, np.float32)
    assert device.fails("k", 1, 1, p).status == CUresult.CUDA_ERROR_MISALIGNED_ADDRESS


def test_outside_the_vm_faults() -> None:
    """An element past the allocation's end is ILLEGAL_ADDRESS, and nothing is written."""
    device = _hand("mov.b32 %r1, 0x3c003c00;\natom.global.add.noftz.v2.f16x2 {%r2,%r3}, [%rd1], {%r1,%r1};")
    assert device.fails("k", 1, 1, 0x10).status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS


@pytest.mark.parametrize(
    "text",
    [
        "atom.global.min.v4.f32 {%f1,%f2,%f3,%f4}, [%rd1], {%f1,%f2,%f3,%f4};",  # f32 vectors add only
        "atom.global.add.noftz.v8.f16x2 {%r1,%r2,%r3,%r4,%r1,%r2,%r3,%r4}, [%rd1], {%r1,%r2,%r3,%r4,%r1,%r2,%r3,%r4};",
        "atom.shared.add.v2.f32 {%f1,%f2}, [%rd1], {%f1,%f2};",  # vectors: global memory only
        "atom.global.max.noftz.f16 %h1, [%rd1], %h2;",  # scalar halves: add only
        "atom.global.add.f16 %h1, [%rd1], %h2;",  # .noftz is required
    ],
)
def test_forms_the_isa_lacks_are_refused(text: str) -> None:
    device = _hand(text)
    err = device.fails("k", 1, 1, device.zeros(16, np.float32))
    assert err.status == CUresult.CUDA_ERROR_NOT_SUPPORTED
