"""Tensor cores: ``mma.sync`` on nvcc's PTX against exact NumPy products. Each lane's fragment
registers are placed here from the PTX ISA's fragment tables (written out below, independently of
the engine's), for two warps with different matrices; the values are small integers, so every
product and sum is exact and the reference is bitwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from executor.ptx import LoadedModule
from protocol import CUresult

from .conftest import CORPUS, Device, ptx_device

WARPS = 2
rng = np.random.default_rng(13)
Place = Callable[[int, int, int], tuple[int, int]]


def acc(g: int, t: int, i: int) -> tuple[int, int]:
    return (g if i < 2 else g + 8), 2 * t + (i % 2)


def frag(mats: npt.NDArray[Any], place: Place, count: int, per_word: int) -> npt.NDArray[Any]:
    """Every lane's elements (lane-major, ``count`` each) of each warp's matrix, packed ``per_word``
    to a 32-bit word, lowest element in the lowest bits."""
    bits = mats.dtype.itemsize * 8
    out = []
    for mat in mats:
        for lane in range(32):
            elems = [mat[place(lane // 4, lane % 4, i)] for i in range(count)]
            if per_word == 1:
                out.extend(elems)
                continue
            raw = np.array(elems).view(f"u{mats.dtype.itemsize}").astype(np.uint64)
            for w in range(count // per_word):
                word = 0
                for j in range(per_word):
                    word |= int(raw[w * per_word + j]) << (bits * j)
                out.append(word)
    dtype = mats.dtype if per_word == 1 else np.uint32
    return np.array(out, dtype=np.uint64 if per_word != 1 else None).astype(dtype)


def unfrag(words: npt.NDArray[Any], place: Place, count: int, shape: tuple[int, int]) -> npt.NDArray[Any]:
    """The inverse of :func:`frag` for unpacked elements: each warp's matrix."""
    per_warp = words.reshape(WARPS, 32, count)
    out = np.zeros((WARPS, *shape), dtype=words.dtype)
    for w in range(WARPS):
        for lane in range(32):
            for i in range(count):
                out[(w, *place(lane // 4, lane % 4, i))] = per_warp[w, lane, i]
    return out


def ints(shape: tuple[int, ...], lo: int, hi: int, dtype: Any) -> npt.NDArray[Any]:
    return rng.integers(lo, hi, size=(WARPS, *shape)).astype(dtype)


# the PTX ISA's fragment tables ("Matrix fragments for mma.m16n8k8 / m16n8k16 / m16n8k32 / m8n8k4")
A_F16_K8: Place = lambda g, t, i: (g + 8 * (i // 2), 2 * t + i % 2)  # noqa: E731
B_F16_K8: Place = lambda g, t, i: (2 * t + i % 2, g)  # noqa: E731
A_F16_K16: Place = lambda g, t, i: (g + 8 * (i // 2 % 2), 2 * t + i % 2 + 8 * (i // 4))  # noqa: E731
B_F16_K16: Place = lambda g, t, i: (2 * t + i % 2 + 8 * (i // 2), g)  # noqa: E731
A_TF32_K8: Place = lambda g, t, i: (g + 8 * (i % 2), t + 4 * (i // 2))  # noqa: E731
B_TF32_K8: Place = lambda g, t, i: (t + 4 * i, g)  # noqa: E731
A_S8_K32: Place = lambda g, t, i: (g + 8 * (i // 4 % 2), 4 * t + i % 4 + 16 * (i // 8))  # noqa: E731
B_S8_K32: Place = lambda g, t, i: (4 * t + i % 4 + 16 * (i // 4), g)  # noqa: E731


def run_f32(dev: Device, kernel: str, a: Any, b: Any, c: Any, *extra: int) -> npt.NDArray[np.float32]:
    pd = dev.zeros(WARPS * 32 * 4, np.float32)
    dev.run(kernel, 1, WARPS * 32, dev.put(a), dev.put(b), dev.put(c), pd, *extra)
    return unfrag(dev.get(pd, WARPS * 32 * 4, np.float32), acc, 4, (16, 8))


@pytest.mark.parametrize("arch", [75, 80, 90])
def test_m16n8k8_f16_to_f32(arch: int) -> None:
    dev = Device(LoadedModule(CORPUS[arch].read_text()))
    a, b, c = ints((16, 8), -8, 8, np.float16), ints((8, 8), -8, 8, np.float16), ints((16, 8), -99, 99, np.float32)
    got = run_f32(dev, "mma_f16_k8_f32", frag(a, A_F16_K8, 4, 2), frag(b, B_F16_K8, 2, 2), frag(c, acc, 4, 1))
    np.testing.assert_array_equal(got, a.astype(np.float32) @ b.astype(np.float32) + c)


@pytest.mark.parametrize("arch", [80, 90])
def test_m16n8k16_f16_to_f32_and_to_f16(arch: int) -> None:
    dev = Device(LoadedModule(CORPUS[arch].read_text()))
    a, b = ints((16, 16), -8, 8, np.float16), ints((16, 8), -8, 8, np.float16)
    c, ch = ints((16, 8), -99, 99, np.float32), ints((16, 8), -99, 99, np.float16)
    pd, pdh = dev.zeros(WARPS * 128, np.float32), dev.zeros(WARPS * 64, np.uint32)
    dev.run("mma_f16_k16", 1, WARPS * 32, dev.put(frag(a, A_F16_K16, 8, 2)), dev.put(frag(b, B_F16_K16, 4, 2)),
            dev.put(frag(c, acc, 4, 1)), pd, dev.put(frag(ch, acc, 4, 2)), pdh)
    want = a.astype(np.float32) @ b.astype(np.float32)
    np.testing.assert_array_equal(unfrag(dev.get(pd, WARPS * 128, np.float32), acc, 4, (16, 8)), want + c)
    halves = dev.get(pdh, WARPS * 64, np.uint32).view(np.float16)  # two per word, the lower first
    np.testing.assert_array_equal(unfrag(halves, acc, 4, (16, 8)), (want + ch).astype(np.float16))


@pytest.mark.parametrize("arch", [80, 90])
def test_m16n8k16_bf16_to_f32(arch: int) -> None:
    dev = Device(LoadedModule(CORPUS[arch].read_text()))
    a, b = ints((16, 16), -8, 8, np.float32), ints((16, 8), -8, 8, np.float32)

    def bf(m: npt.NDArray[np.float32]) -> npt.NDArray[np.uint16]:  # exact: small integers
        return (m.view(np.uint32) >> 16).astype(np.uint16)

    c = ints((16, 8), -99, 99, np.float32)
    got = run_f32(dev, "mma_bf16_k16", frag(bf(a), A_F16_K16, 8, 2), frag(bf(b), B_F16_K16, 4, 2), frag(c, acc, 4, 1))
    np.testing.assert_array_equal(got, a @ b + c)


@pytest.mark.parametrize("arch", [80, 90])
def test_m16n8k8_tf32_ignores_the_low_13_bits(arch: int) -> None:
    dev = Device(LoadedModule(CORPUS[arch].read_text()))
    a, b, c = ints((16, 8), -64, 64, np.float32), ints((8, 8), -64, 64, np.float32), ints((16, 8), -99, 99, np.float32)

    def noise(m: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:  # set the 13 bits tf32 ignores
        bits: npt.NDArray[np.uint32] = m.view(np.uint32) | np.where(m != 0, np.uint32(0x1FFF), np.uint32(0))
        return bits.view(np.float32)

    got = run_f32(dev, "mma_tf32_k8", frag(noise(a), A_TF32_K8, 4, 1).view(np.uint32),
                  frag(noise(b), B_TF32_K8, 2, 1).view(np.uint32), frag(c, acc, 4, 1))
    np.testing.assert_array_equal(got, a @ b + c)


@pytest.mark.parametrize("arch", [80, 90])
def test_m8n8k4_f64(arch: int) -> None:
    dev = Device(LoadedModule(CORPUS[arch].read_text()))
    a, b, c = ints((8, 4), -1000, 1000, np.float64), ints((4, 8), -1000, 1000, np.float64), ints((8, 8), -9, 9, np.float64)
    c_place: Place = lambda g, t, i: (g, 2 * t + i)  # noqa: E731
    pd = dev.zeros(WARPS * 64, np.float64)
    dev.run("mma_f64_k4", 1, WARPS * 32, dev.put(frag(a, lambda g, t, i: (g, t), 1, 1)),
            dev.put(frag(b, lambda g, t, i: (t, g), 1, 1)), dev.put(frag(c, c_place, 2, 1)), pd)
    np.testing.assert_array_equal(unfrag(dev.get(pd, WARPS * 64, np.float64), c_place, 2, (8, 8)), a @ b + c)


@pytest.mark.parametrize("arch", [80, 90])
def test_m16n8k32_s8_wraps_and_satfinite_saturates(arch: int) -> None:
    dev = Device(LoadedModule(CORPUS[arch].read_text()))
    a, b = ints((16, 32), -128, 128, np.int8), ints((32, 8), -128, 128, np.int8)
    c = ints((16, 8), -(2**31), 2**31, np.int64)
    c[:, 0, 0], c[:, 1, 1] = 2**31 - 1, -(2**31)  # overflow up and down
    pd, ps = dev.zeros(WARPS * 128, np.int32), dev.zeros(WARPS * 128, np.int32)
    dev.run("mma_s8_k32", 1, WARPS * 32, dev.put(frag(a, A_S8_K32, 16, 4)), dev.put(frag(b, B_S8_K32, 8, 4)),
            dev.put(frag(c.astype(np.int32), acc, 4, 1)), pd, ps)
    exact = a.astype(np.int64) @ b.astype(np.int64) + c
    got = unfrag(dev.get(pd, WARPS * 128, np.int32), acc, 4, (16, 8))
    np.testing.assert_array_equal(got, exact.astype(np.uint32).view(np.int32))
    sat = unfrag(dev.get(ps, WARPS * 128, np.int32), acc, 4, (16, 8))
    np.testing.assert_array_equal(sat, np.clip(exact, -(2**31), 2**31 - 1))


def test_an_mma_by_part_of_a_warp_fails_the_launch() -> None:
    dev = Device(LoadedModule(CORPUS[90].read_text()))
    zeros = dev.zeros(64 * 4, np.uint32)
    err = dev.fails("mma_f16_k8_f32", 1, 48, zeros, zeros, zeros, dev.zeros(64 * 4, np.float32))
    assert err.status == CUresult.CUDA_ERROR_LAUNCH_FAILED and "mma.sync" in err.message


def ldmatrix_reference(mat: npt.NDArray[np.uint16], trans: bool) -> npt.NDArray[np.uint32]:
    """Each lane's register for one 8x8 matrix (the PTX ISA's ldmatrix fragment): row lane / 4,
    columns 2 (lane % 4) and 2 (lane % 4) + 1 — of the transpose with ``.trans`` — lower first."""
    m = mat.T if trans else mat
    out = np.zeros(32, dtype=np.uint32)
    for lane in range(32):
        g, t = lane // 4, lane % 4
        out[lane] = int(m[g, 2 * t]) | (int(m[g, 2 * t + 1]) << 16)
    return out


def test_ldmatrix_loads_each_form_as_mma_fragments(corpus: Device) -> None:
    tile = rng.integers(0, 1 << 16, size=(32, 8)).astype(np.uint16)  # four 8x8 matrices, row by row
    out = corpus.zeros(32 * 11, np.uint32)
    corpus.run("load_matrices", 1, 32, corpus.put(tile), out)
    got = corpus.get(out, 32 * 11, np.uint32).reshape(32, 11)
    mats = tile.reshape(4, 8, 8)
    for j in range(4):
        np.testing.assert_array_equal(got[:, j], ldmatrix_reference(mats[j], False))
        np.testing.assert_array_equal(got[:, 4 + j], ldmatrix_reference(mats[j], True))
    for j in range(2):
        np.testing.assert_array_equal(got[:, 8 + j], ldmatrix_reference(mats[j], False))
    np.testing.assert_array_equal(got[:, 10], ldmatrix_reference(mats[0], True))


def test_movmatrix_transposes_a_fragment(corpus: Device) -> None:
    mat = rng.integers(0, 1 << 16, size=(8, 8)).astype(np.uint16)
    out = corpus.zeros(32, np.uint32)
    corpus.run("transpose_fragment", 1, 32, corpus.put(ldmatrix_reference(mat, False)), out)
    np.testing.assert_array_equal(corpus.get(out, 32, np.uint32), ldmatrix_reference(mat, True))


# -- more mma.sync shapes: the fragment tables of the PTX ISA for each, written out here ------------

PAIR: Place = lambda g, t, i: (g, 2 * t + i)  # noqa: E731  (C and D of the m8n8 shapes)
A_I8_M8K16: Place = lambda g, t, i: (g, 4 * t + i)  # noqa: E731
B_I8_M8K16: Place = lambda g, t, i: (4 * t + i, g)  # noqa: E731
A_I4_M8K32: Place = lambda g, t, i: (g, 8 * t + i)  # noqa: E731
B_I4_M8K32: Place = lambda g, t, i: (8 * t + i, g)  # noqa: E731
A_TF32_K4: Place = lambda g, t, i: (g + 8 * i, t)  # noqa: E731
B_TF32_K4: Place = lambda g, t, i: (t, g)  # noqa: E731
A_I8_K16: Place = lambda g, t, i: (g + 8 * (i // 4), 4 * t + i % 4)  # noqa: E731
B_I8_K16: Place = lambda g, t, i: (4 * t + i, g)  # noqa: E731
A_I4_K32: Place = lambda g, t, i: (g + 8 * (i // 8), 8 * t + i % 8)  # noqa: E731
B_I4_K32: Place = lambda g, t, i: (8 * t + i, g)  # noqa: E731
A_I4_K64: Place = lambda g, t, i: (g + 8 * (i // 8 % 2), 8 * t + i % 8 + 32 * (i // 16))  # noqa: E731
B_I4_K64: Place = lambda g, t, i: (8 * t + i % 8 + 32 * (i // 8), g)  # noqa: E731
A_F64_K: Place = lambda g, t, i: (g + 8 * (i % 2), t + 4 * (i // 2))  # noqa: E731  (m16n8k4/8/16)
B_F64_K: Place = lambda g, t, i: (t + 4 * i, g)  # noqa: E731


def elements(words: npt.NDArray[np.uint32], place: Place, count: int, bits: int, signed: bool,
             shape: tuple[int, int]) -> npt.NDArray[np.int64]:
    """Each warp's matrix from raw fragment words (``(WARPS * 32, count * bits / 32)``, lane-major),
    elements of ``bits`` packed lowest first, read as signed or unsigned integers."""
    per_lane = words.reshape(WARPS, 32, -1).astype(np.uint64)
    out = np.zeros((WARPS, *shape), dtype=np.int64)
    for w in range(WARPS):
        for lane in range(32):
            for i in range(count):
                word = int(per_lane[w, lane, i * bits // 32])
                value = (word >> (i * bits % 32)) & ((1 << bits) - 1)
                if signed and value >> (bits - 1):
                    value -= 1 << bits
                out[(w, *place(lane // 4, lane % 4, i))] = value
    return out


def words(count: int) -> npt.NDArray[np.uint32]:
    return rng.integers(0, 1 << 32, size=WARPS * 32 * count, dtype=np.uint64).astype(np.uint32)


def wrap32(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
    return values.astype(np.uint64).astype(np.uint32).view(np.int32)


@pytest.mark.parametrize("arch", [75, 80, 90])
def test_m8n8k16_u8_s8_wraps_and_m8n8k32_s4_u4_saturates(arch: int) -> None:
    dev = Device(LoadedModule(CORPUS[arch].read_text()))
    a, b = words(1), words(1)
    c = rng.integers(-(2**31), 2**31, size=(WARPS, 8, 8))
    c[:, 0, :4], c[:, 1, :4] = 2**31 - 1, -(2**31)  # overflow up and down
    d8, d4 = dev.zeros(WARPS * 64, np.int32), dev.zeros(WARPS * 64, np.int32)
    dev.run("mma_m8n8_int", 1, WARPS * 32, dev.put(a), dev.put(b), dev.put(frag(c.astype(np.int32), PAIR, 2, 1)), d8, d4)
    exact8 = elements(a, A_I8_M8K16, 4, 8, False, (8, 16)) @ elements(b, B_I8_M8K16, 4, 8, True, (16, 8)) + c
    got8 = unfrag(dev.get(d8, WARPS * 64, np.int32), PAIR, 2, (8, 8))
    np.testing.assert_array_equal(got8, wrap32(exact8))
    exact4 = elements(a, A_I4_M8K32, 8, 4, True, (8, 32)) @ elements(b, B_I4_M8K32, 8, 4, False, (32, 8)) + c
    got4 = unfrag(dev.get(d4, WARPS * 64, np.int32), PAIR, 2, (8, 8))
    np.testing.assert_array_equal(got4, np.clip(exact4, -(2**31), 2**31 - 1))


def sm80_forms(dev: Device, a: Any, b: Any, c: Any, ci: Any) -> dict[str, npt.NDArray[Any]]:
    outs = {name: dev.zeros(WARPS * 128, np.float32 if name in ("dbf", "dtf") else np.int32)
            for name in ("dbf", "dtf", "d8", "d4", "d4k64")}
    dev.run("mma_sm80_forms", 1, WARPS * 32, dev.put(a), dev.put(b), dev.put(c), dev.put(ci), *outs.values())
    return {name: unfrag(dev.get(ptr, WARPS * 128, np.float32 if name in ("dbf", "dtf") else np.int32), acc, 4,
                         (16, 8)) for name, ptr in outs.items()}


@pytest.mark.parametrize("arch", [80, 90])
def test_sm80_integer_shapes_s8_u8_k16_u4_s4_k32_s4_k64(arch: int) -> None:
    dev = Device(LoadedModule(CORPUS[arch].read_text()))
    a, b = words(4), words(2)
    ci = rng.integers(-(2**31), 2**31, size=(WARPS, 16, 8))
    got = sm80_forms(dev, a, b, np.zeros(WARPS * 128, np.float32), frag(ci.astype(np.int32), acc, 4, 1))
    a2, b1 = a.reshape(-1, 4)[:, :2].reshape(-1), b.reshape(-1, 2)[:, :1].reshape(-1)
    exact8 = elements(a2, A_I8_K16, 8, 8, True, (16, 16)) @ elements(b1, B_I8_K16, 4, 8, False, (16, 8)) + ci
    np.testing.assert_array_equal(got["d8"], wrap32(exact8))
    exact4 = elements(a2, A_I4_K32, 16, 4, False, (16, 32)) @ elements(b1, B_I4_K32, 8, 4, True, (32, 8)) + ci
    np.testing.assert_array_equal(got["d4"], wrap32(exact4))
    exact64 = elements(a, A_I4_K64, 32, 4, True, (16, 64)) @ elements(b, B_I4_K64, 16, 4, True, (64, 8)) + ci
    np.testing.assert_array_equal(got["d4k64"], wrap32(exact64))


@pytest.mark.parametrize("arch", [80, 90])
def test_sm80_float_shapes_bf16_k8_and_tf32_k4(arch: int) -> None:
    dev = Device(LoadedModule(CORPUS[arch].read_text()))
    c, zi = ints((16, 8), -99, 99, np.float32), np.zeros(WARPS * 128, np.int32)
    a, b = ints((16, 8), -8, 8, np.float32), ints((8, 8), -8, 8, np.float32)

    def bf(m: npt.NDArray[np.float32]) -> npt.NDArray[np.uint16]:  # exact: small integers
        return (m.view(np.uint32) >> 16).astype(np.uint16)

    a_words = frag(bf(a), A_F16_K8, 4, 2).reshape(-1, 2)
    a4 = np.concatenate([a_words, np.zeros_like(a_words)], axis=1).reshape(-1)
    b2 = np.stack([frag(bf(b), B_F16_K8, 2, 2), np.zeros(WARPS * 32, np.uint32)], axis=1).reshape(-1)
    got = sm80_forms(dev, a4, b2, frag(c, acc, 4, 1), zi)
    np.testing.assert_array_equal(got["dbf"], a @ b + c)
    at, bt = ints((16, 4), -64, 64, np.float32), ints((4, 8), -64, 64, np.float32)
    ta = frag(at, A_TF32_K4, 2, 1).view(np.uint32).reshape(-1, 2)
    ta4 = np.concatenate([ta, np.zeros_like(ta)], axis=1).reshape(-1)
    tb2 = np.stack([frag(bt, B_TF32_K4, 1, 1).view(np.uint32), np.zeros(WARPS * 32, np.uint32)], axis=1).reshape(-1)
    got = sm80_forms(dev, ta4, tb2, frag(c, acc, 4, 1), zi)
    np.testing.assert_array_equal(got["dtf"], at @ bt + c)


def e4m3(values: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """Encodings of e4m3 values that are small integers (1..15 and their negatives, and 0)."""
    out = np.zeros(values.shape, dtype=np.uint8)
    for idx, v in np.ndenumerate(values):
        if v:
            exp = int(np.floor(np.log2(abs(v))))
            man = round((abs(v) / 2.0**exp - 1) * 8)
            out[idx] = (0x80 if v < 0 else 0) | ((exp + 7) << 3) | man
    return out


def test_sm90_f64_shapes_and_fp8() -> None:
    dev = Device(LoadedModule(CORPUS[90].read_text()))
    a, b = ints((16, 16), -1000, 1000, np.float64), ints((16, 8), -1000, 1000, np.float64)
    c = ints((16, 8), -9, 9, np.float64)
    a8 = rng.choice([-15.0, -6, -3, -1, 0, 1, 2, 5, 7, 12], size=(WARPS, 16, 32))
    b8 = rng.choice([-8.0, -2, -1, 0, 1, 3, 4, 6], size=(WARPS, 32, 8))
    b8_raw = (np.abs(b8).astype(np.float16).view(np.uint16) >> 8).astype(np.uint8) | np.where(b8 < 0, 0x80, 0).astype(np.uint8)
    c8 = ints((16, 8), -99, 99, np.float32)
    outs = [dev.zeros(WARPS * 128, np.float64) for _ in range(3)] + [dev.zeros(WARPS * 128, np.float32)]
    dev.run("mma_sm90_forms", 1, WARPS * 32, dev.put(frag(a, A_F64_K, 8, 1)), dev.put(frag(b, B_F64_K, 4, 1)),
            dev.put(frag(c, acc, 4, 1)), dev.put(frag(e4m3(a8), A_S8_K32, 16, 4)),
            dev.put(frag(b8_raw, B_S8_K32, 8, 4)), dev.put(frag(c8, acc, 4, 1)), *outs)
    for ptr, k in zip(outs[:3], (4, 8, 16), strict=True):
        got = unfrag(dev.get(ptr, WARPS * 128, np.float64), acc, 4, (16, 8))
        np.testing.assert_array_equal(got, a[:, :, :k] @ b[:, :k, :] + c, err_msg=f"m16n8k{k}")
    got8 = unfrag(dev.get(outs[3], WARPS * 128, np.float32), acc, 4, (16, 8))
    np.testing.assert_array_equal(got8, a8 @ b8 + c8)


# -- wmma: the fragment layout is the implementation's (the ISA leaves it open), so each kernel is
# checked end to end, load -> mma -> store, for four warps (two blocks of two) on different tiles ------

TILES = 4


def tiles(shape: tuple[int, ...], lo: int, hi: int, dtype: Any) -> npt.NDArray[Any]:
    return rng.integers(lo, hi, size=(TILES, *shape)).astype(dtype)


def col_major(m: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Each tile stored column by column."""
    return np.ascontiguousarray(m.transpose(0, 2, 1))


def wmma_run(corpus: Device, kernel: str, *inputs: npt.NDArray[Any], outs: list[tuple[int, Any]]) -> list[Any]:
    ptrs = [corpus.zeros(count, dtype) for count, dtype in outs]
    corpus.run(kernel, 2, 64, *(corpus.put(x) for x in inputs), *ptrs)
    return [corpus.get(p, count, dtype) for p, (count, dtype) in zip(ptrs, outs, strict=True)]


def test_wmma_f16_16x16x16_from_shared_and_global_f32_and_f16_accumulators(corpus: Device) -> None:
    a, b = tiles((16, 16), -8, 8, np.float16), tiles((16, 16), -8, 8, np.float16)
    c = tiles((16, 16), -99, 99, np.float32)
    d, dh = wmma_run(corpus, "wmma_f16", a, col_major(b), col_major(c),
                     outs=[(TILES * 256, np.float32), (TILES * 256, np.float16)])
    product = a.astype(np.float32) @ b.astype(np.float32)
    np.testing.assert_array_equal(d.reshape(TILES, 16, 16), product + c)
    # the f16 accumulator: filled with 0.5, each element doubled, then A x B added; stored column-major
    np.testing.assert_array_equal(dh.reshape(TILES, 16, 16).transpose(0, 2, 1), (product + 1).astype(np.float16))


def test_wmma_f16_32x8x16_and_8x32x16(corpus: Device) -> None:
    """Warp w reads 512 elements of each input at w * 512: A column-major (32x16, then 8x16 with a
    stride of 8), B row-major (16x8, then 16x32), C 32x8 row-major then 8x32 column-major."""
    a, b = tiles((512,), -8, 8, np.float16), tiles((512,), -8, 8, np.float16)
    c = tiles((512,), -99, 99, np.float32)
    dh, d = wmma_run(corpus, "wmma_f16_tall_wide", a, b, c, outs=[(TILES * 512, np.float16), (TILES * 512, np.float32)])
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    tall = a32.reshape(TILES, 16, 32).transpose(0, 2, 1) @ b32[:, :128].reshape(TILES, 16, 8)
    tall += c[:, :256].reshape(TILES, 32, 8)
    np.testing.assert_array_equal(dh.reshape(TILES, 512)[:, :256].reshape(TILES, 32, 8), tall.astype(np.float16))
    wide = a32[:, :128].reshape(TILES, 16, 8).transpose(0, 2, 1) @ b32.reshape(TILES, 16, 32)
    wide += c[:, :256].reshape(TILES, 32, 8).transpose(0, 2, 1)
    np.testing.assert_array_equal(d.reshape(TILES, 512)[:, :256].reshape(TILES, 8, 32), wide)


def test_wmma_s8_wraps_and_u8_satfinite_saturates(corpus: Device) -> None:
    a, b = tiles((16, 16), 0, 256, np.uint8), tiles((16, 16), 0, 256, np.uint8)  # b: column-major bytes
    c = tiles((16, 16), -(2**31), 2**31, np.int64)
    c[:, 0, :], c[:, 1, :] = 2**31 - 1, -(2**31)
    d, dsat = wmma_run(corpus, "wmma_int8", a, b, c.astype(np.int32),
                       outs=[(TILES * 256, np.int32), (TILES * 256, np.int32)])
    bm = b.transpose(0, 2, 1)
    signed = a.view(np.int8).astype(np.int64) @ bm.view(np.int8).astype(np.int64) + c
    np.testing.assert_array_equal(d.reshape(TILES, 16, 16), wrap32(signed))
    unsigned = a.astype(np.int64) @ bm.astype(np.int64) + c
    np.testing.assert_array_equal(dsat.reshape(TILES, 16, 16).transpose(0, 2, 1),
                                  np.clip(unsigned, -(2**31), 2**31 - 1))


def nibbles(raw: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """Signed 4-bit elements, the low nibble of each byte first."""
    low, high = (raw & 15).astype(np.int64), (raw >> 4).astype(np.int64)
    both = np.stack([low, high], axis=-1).reshape(*raw.shape[:-1], -1)
    return np.where(both >= 8, both - 16, both)


def bits(raw: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """Single-bit elements, the lowest bit of each byte first."""
    return np.unpackbits(raw, axis=-1, bitorder="little").astype(np.int64)


@pytest.mark.parametrize("arch", [75, 80, 90])
def test_wmma_sub_byte_s4_and_b1_xor_and_popc(arch: int) -> None:
    corpus = Device(LoadedModule(CORPUS[arch].read_text()))
    a, b = tiles((128,), 0, 256, np.uint8), tiles((128,), 0, 256, np.uint8)
    c = tiles((8, 8), -1000, 1000, np.int32)
    d4, dx, dand = wmma_run(corpus, "wmma_sub_byte", a, b, c,
                            outs=[(TILES * 64, np.int32), (TILES * 64, np.int32), (TILES * 64, np.int32)])
    a4, b4 = nibbles(a.reshape(TILES, 8, 16)), nibbles(b.reshape(TILES, 8, 16)).transpose(0, 2, 1)
    np.testing.assert_array_equal(d4.reshape(TILES, 8, 8), a4 @ b4 + c)
    a1, b1 = bits(a.reshape(TILES, 8, 16)), bits(b.reshape(TILES, 8, 16)).transpose(0, 2, 1)
    xor = (a1[:, :, :, None] ^ b1[:, None, :, :]).sum(axis=2)
    np.testing.assert_array_equal(dx.reshape(TILES, 8, 8), xor)
    if arch >= 80:  # .and.popc is sm_80's
        np.testing.assert_array_equal(dand.reshape(TILES, 8, 8).transpose(0, 2, 1), a1 @ b1)


def tf32_rna(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Round to tf32 (10 fraction bits), to nearest with ties away from zero (finite values)."""
    raw = x.view(np.uint32)
    sign, mag = raw & np.uint32(0x80000000), raw & np.uint32(0x7FFFFFFF)
    out: npt.NDArray[np.float32] = (sign | ((mag + np.uint32(0x1000)) & np.uint32(0xFFFFE000))).view(np.float32)
    return out


@pytest.mark.parametrize("arch", [80, 90])
def test_wmma_bf16_tf32_rounded_by_float_to_tf32_and_f64(arch: int) -> None:
    dev = Device(LoadedModule(CORPUS[arch].read_text()))
    abf, bbf = tiles((16, 16), -8, 8, np.float32), tiles((16, 16), -8, 8, np.float32)

    def to_bf16(m: npt.NDArray[np.float32]) -> npt.NDArray[np.uint16]:  # exact: small integers
        return (m.view(np.uint32) >> 16).astype(np.uint16)

    def noisy(shape: tuple[int, int]) -> npt.NDArray[np.float32]:  # multiples of 2^-8 with low bits set
        exact = (tiles(shape, -1024, 1024, np.float64) / 256).astype(np.float32)
        noise = rng.integers(0, 0x2000, size=exact.shape).astype(np.uint32)
        return (exact.view(np.uint32) | np.where(exact != 0, noise, 0).astype(np.uint32)).view(np.float32)

    a32, b32 = noisy((16, 8)), noisy((8, 16))
    a64, b64 = tiles((8, 4), -1000, 1000, np.float64), tiles((4, 8), -1000, 1000, np.float64)
    c, c64 = tiles((16, 16), -99, 99, np.float32), tiles((8, 8), -9, 9, np.float64)
    dbf, dtf, d64 = wmma_run(dev, "wmma_sm80", to_bf16(abf), to_bf16(bbf), a32, col_major(b32), a64, col_major(b64),
                             c, c64, outs=[(TILES * 256, np.float32), (TILES * 256, np.float32), (TILES * 64, np.float64)])
    np.testing.assert_array_equal(dbf.reshape(TILES, 16, 16), abf @ bbf + c)
    exact = tf32_rna(a32).astype(np.float64) @ tf32_rna(b32).astype(np.float64) + c  # exact in float64
    np.testing.assert_array_equal(dtf.reshape(TILES, 16, 16), exact.astype(np.float32))
    np.testing.assert_array_equal(d64.reshape(TILES, 8, 8), a64 @ b64 + c64)


def test_wmma_by_part_of_a_warp_and_out_of_bounds_fail_the_launch(corpus90: Device) -> None:
    half = np.zeros(TILES * 256, np.float16)
    ptrs = [corpus90.put(half), corpus90.put(half), corpus90.put(np.zeros(TILES * 256, np.float32)),
            corpus90.zeros(TILES * 256, np.float32), corpus90.zeros(TILES * 256, np.float16)]
    err = corpus90.fails("wmma_f16", 1, 48, *ptrs)
    assert err.status == CUresult.CUDA_ERROR_LAUNCH_FAILED and "wmma" in err.message
    small = corpus90.put(np.zeros(64, np.float16))  # B of warp 0 runs past its allocation
    err = corpus90.fails("wmma_f16", 1, 32, ptrs[0], small, *ptrs[2:])
    assert err.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS


TF32_CVT = """
.version 8.0
.target sm_90
.address_size 64
.visible .entry to_tf32(.param .u64 in, .param .u64 out)
{
    .reg .b32 %r<8>;
    .reg .f32 %f<2>;
    .reg .b64 %rd<6>;
    ld.param.u64 %rd1, [in];
    ld.param.u64 %rd2, [out];
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.f32 %f1, [%rd4];
    cvt.rna.tf32.f32 %r2, %f1;
    cvt.rn.tf32.f32 %r3, %f1;
    cvt.rz.tf32.f32 %r4, %f1;
    cvt.rna.satfinite.tf32.f32 %r5, %f1;
    mul.wide.u32 %rd3, %r1, 16;
    add.s64 %rd5, %rd2, %rd3;
    st.global.v4.u32 [%rd5], {%r2, %r3, %r4, %r5};
    ret;
}
"""


def test_cvt_to_tf32_rounds_by_each_mode() -> None:
    dev = ptx_device(TF32_CVT)
    one = 0x3F800000
    cases = [  # input bits -> rna, rn, rz, rna.satfinite
        (one | 0x1000, one | 0x2000, one, one, one | 0x2000),  # a tie: away from zero / to even
        (one | 0x3000, one | 0x4000, one | 0x4000, one | 0x2000, one | 0x4000),  # a tie, odd below
        (one | 0x0FFF, one, one, one, one),
        (0x80000000 | one | 0x1001, 0x80000000 | one | 0x2000, 0x80000000 | one | 0x2000, 0x80000000 | one,
         0x80000000 | one | 0x2000),
        (0x7F7FFFFF, 0x7F800000, 0x7F800000, 0x7F7FE000, 0x7F7FE000),  # overflow: inf, or the largest tf32
        (0x7F800000, 0x7F800000, 0x7F800000, 0x7F800000, 0x7F7FE000),
        (0x7FC00001, 0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF, 0x7FFFFFFF),  # NaN: the canonical NaN
    ]
    values = np.array([c[0] for c in cases], dtype=np.uint32)
    out = dev.zeros(4 * len(cases), np.uint32)
    dev.run("to_tf32", 1, len(cases), dev.put(values), out)
    got = dev.get(out, 4 * len(cases), np.uint32).reshape(-1, 4)
    np.testing.assert_array_equal(got, np.array([c[1:] for c in cases], dtype=np.uint32))


def test_stmatrix_stores_each_form_from_mma_fragments(corpus90: Device) -> None:
    mats = rng.integers(0, 1 << 16, size=(4, 8, 8)).astype(np.uint16)
    regs = np.stack([ldmatrix_reference(mats[j], False) for j in range(4)], axis=1)  # lane-major words
    out = corpus90.zeros(3 * 32 * 8, np.uint16)
    corpus90.run("store_matrices", 1, 32, corpus90.put(regs), out)
    tiles = corpus90.get(out, 3 * 32 * 8, np.uint16).reshape(3, 4, 8, 8)  # rows of lanes 8j..8j+7: matrix j
    np.testing.assert_array_equal(tiles[0], mats)
    np.testing.assert_array_equal(tiles[1], mats.transpose(0, 2, 1))
    np.testing.assert_array_equal(tiles[2, :2], mats[:2])
    np.testing.assert_array_equal(tiles[2, 2:], 0)  # x2 stores through lanes 0-15 only


# single-bit mma.sync: the PTX ISA's .b1 fragment tables (32 elements to a register, lowest bit first)
A_B1_M8K128: Place = lambda g, t, i: (g, 32 * t + i)  # noqa: E731
B_B1_M8K128: Place = lambda g, t, i: (32 * t + i, g)  # noqa: E731
A_B1_K128: Place = lambda g, t, i: (g + 8 * (i // 32), 32 * t + i % 32)  # noqa: E731
B_B1_K128: Place = lambda g, t, i: (32 * t + i, g)  # noqa: E731
A_B1_K256: Place = lambda g, t, i: (g + 8 * (i // 32 % 2), 32 * t + i % 32 + 128 * (i // 64))  # noqa: E731
B_B1_K256: Place = lambda g, t, i: (32 * t + i % 32 + 128 * (i // 32), g)  # noqa: E731


@pytest.mark.parametrize("arch", [75, 80, 90])
def test_b1_popc_xor_and_and(arch: int) -> None:
    dev = Device(LoadedModule(CORPUS[arch].read_text()))
    a, b = words(4), words(2)
    c = rng.integers(-1000, 1000, size=(WARPS, 16, 8))
    outs = [dev.zeros(WARPS * 64, np.int32), dev.zeros(WARPS * 128, np.int32), dev.zeros(WARPS * 128, np.int32)]
    dev.run("mma_b1", 1, WARPS * 32, dev.put(a), dev.put(b), dev.put(frag(c.astype(np.int32), acc, 4, 1)), *outs)
    first_a, first_b = a.reshape(-1, 4)[:, :1].reshape(-1), b.reshape(-1, 2)[:, :1].reshape(-1)
    c8 = unfrag(frag(c.astype(np.int32), acc, 4, 1).reshape(-1, 4)[:, :2].reshape(-1), PAIR, 2, (8, 8))

    def popc(x: npt.NDArray[np.int64], y: npt.NDArray[np.int64], op: str) -> npt.NDArray[np.int64]:
        pairs = x[:, :, :, None] ^ y[:, None, :, :] if op == "xor" else x[:, :, :, None] & y[:, None, :, :]
        out: npt.NDArray[np.int64] = pairs.sum(axis=2)
        return out

    xa, xb = elements(first_a, A_B1_M8K128, 32, 1, False, (8, 128)), elements(first_b, B_B1_M8K128, 32, 1, False, (128, 8))
    np.testing.assert_array_equal(unfrag(dev.get(outs[0], WARPS * 64, np.int32), PAIR, 2, (8, 8)), popc(xa, xb, "xor") + c8)
    if arch < 80:
        return
    two_a = a.reshape(-1, 4)[:, :2].reshape(-1)
    ya, yb = elements(two_a, A_B1_K128, 64, 1, False, (16, 128)), elements(first_b, B_B1_K128, 32, 1, False, (128, 8))
    np.testing.assert_array_equal(unfrag(dev.get(outs[1], WARPS * 128, np.int32), acc, 4, (16, 8)), popc(ya, yb, "and") + c)
    za, zb = elements(a, A_B1_K256, 128, 1, False, (16, 256)), elements(b, B_B1_K256, 64, 1, False, (256, 8))
    np.testing.assert_array_equal(unfrag(dev.get(outs[2], WARPS * 128, np.int32), acc, 4, (16, 8)), popc(za, zb, "xor") + c)


def _regs(prefix: str, first: int, count: int) -> str:
    return "{" + ", ".join(f"%{prefix}{first + i}" for i in range(count)) + "}"


# odd warps branch around the wmma; even warp w reads A at a + 1024 w with a stride of 16 (1 + w / 2)
# halves, B at b + 512 w, C at c + 1024 w, and passes D through shared memory by generic addresses
WMMA_SOME_WARPS = f"""
.version 8.0
.target sm_80
.address_size 64
.visible .entry some_warps(.param .u64 pa, .param .u64 pb, .param .u64 pc, .param .u64 pd)
{{
    .reg .pred %p<2>;
    .reg .b32 %r<40>;
    .reg .f32 %f<40>;
    .reg .b64 %rd<20>;
    .shared .align 16 .b8 stage[4096];
    mov.u32 %r1, %tid.x;
    shr.u32 %r2, %r1, 5;
    and.b32 %r3, %r2, 1;
    setp.eq.u32 %p1, %r3, 1;
    @%p1 bra DONE;
    ld.param.u64 %rd1, [pa];
    ld.param.u64 %rd2, [pb];
    ld.param.u64 %rd3, [pc];
    ld.param.u64 %rd4, [pd];
    shr.u32 %r4, %r2, 1;
    add.u32 %r5, %r4, 1;
    shl.b32 %r6, %r5, 4;
    mul.wide.u32 %rd5, %r2, 1024;
    add.s64 %rd6, %rd1, %rd5;
    wmma.load.a.sync.aligned.row.m16n16k16.global.f16 {_regs("r", 10, 8)}, [%rd6], %r6;
    mul.wide.u32 %rd7, %r2, 512;
    add.s64 %rd8, %rd2, %rd7;
    wmma.load.b.sync.aligned.col.m16n16k16.global.f16 {_regs("r", 20, 8)}, [%rd8];
    add.s64 %rd9, %rd3, %rd5;
    wmma.load.c.sync.aligned.row.m16n16k16.global.f32 {_regs("f", 1, 8)}, [%rd9], 16;
    wmma.mma.sync.aligned.row.col.m16n16k16.f32.f32 {_regs("f", 10, 8)}, {_regs("r", 10, 8)}, \
{_regs("r", 20, 8)}, {_regs("f", 1, 8)};
    mov.u64 %rd10, stage;
    cvta.shared.u64 %rd11, %rd10;
    shr.u32 %r7, %r2, 1;
    mul.wide.u32 %rd12, %r7, 1024;
    add.s64 %rd13, %rd11, %rd12;
    wmma.store.d.sync.aligned.col.m16n16k16.f32 [%rd13], {_regs("f", 10, 8)}, 16;
    wmma.load.c.sync.aligned.col.m16n16k16.f32 {_regs("f", 20, 8)}, [%rd13], 16;
    add.s64 %rd14, %rd4, %rd5;
    wmma.store.d.sync.aligned.row.m16n16k16.global.f32 [%rd14], {_regs("f", 20, 8)}, 16;
DONE:
    ret;
}}
"""


def test_wmma_by_some_warps_with_strides_of_their_own_through_generic_shared_addresses() -> None:
    dev = ptx_device(WMMA_SOME_WARPS)
    warps = 4
    a = rng.integers(-8, 8, size=(warps, 512)).astype(np.float16)
    b = rng.integers(-8, 8, size=(warps, 16, 16)).astype(np.float16)  # column-major: row j is column j
    c = rng.integers(-99, 99, size=(warps, 16, 16)).astype(np.float32)
    out = dev.put(np.full((warps, 16, 16), -1, np.float32))
    dev.run("some_warps", 1, 32 * warps, dev.put(a), dev.put(b), dev.put(c), out)
    d = dev.get(out, warps * 256, np.float32).reshape(warps, 16, 16)
    for w in range(warps):
        if w % 2:
            np.testing.assert_array_equal(d[w], -1)  # a warp that branched around: nothing stored
            continue
        stride = 16 * (1 + w // 2)
        rows = a[w, : 16 * stride].reshape(16, stride)[:, :16].astype(np.float32)
        np.testing.assert_array_equal(d[w], rows @ b[w].T.astype(np.float32) + c[w])


WMMA_SHARED_AT = f"""
.version 8.0
.target sm_80
.address_size 64
.visible .entry shared_at(.param .u32 off, .param .u64 out)
{{
    .reg .b32 %r<20>;
    .reg .b64 %rd<4>;
    .shared .align 16 .b8 buf[512];
    ld.param.u32 %r1, [off];
    mov.u32 %r2, buf;
    add.u32 %r3, %r2, %r1;
    wmma.load.a.sync.aligned.row.m16n16k16.shared.f16 {_regs("r", 10, 8)}, [%r3];
    ld.param.u64 %rd1, [out];
    st.global.u32 [%rd1], %r17;
    ret;
}}
"""


def test_wmma_load_from_shared_memory_is_checked_against_the_window() -> None:
    dev = ptx_device(WMMA_SHARED_AT)
    out = dev.zeros(1, np.uint32)
    dev.run("shared_at", 1, 64, 0, out)  # the 512 bytes of buf exactly
    assert dev.fails("shared_at", 1, 64, 16, out).status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
    assert dev.fails("shared_at", 1, 64, 2, out).status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
    assert dev.fails("shared_at", 1, 64, 1, out).status == CUresult.CUDA_ERROR_MISALIGNED_ADDRESS


# warp w: D1 = A B1 + C; one element of every lane's D1 (register %f10) plus 1; D2 = A B2 + D1'
WMMA_CHAIN = f"""
.version 8.0
.target sm_80
.address_size 64
.visible .entry chain(.param .u64 pa, .param .u64 pb, .param .u64 pc, .param .u64 pd)
{{
    .reg .b32 %r<50>;
    .reg .f32 %f<40>;
    .reg .b64 %rd<20>;
    ld.param.u64 %rd1, [pa];
    ld.param.u64 %rd2, [pb];
    ld.param.u64 %rd3, [pc];
    ld.param.u64 %rd4, [pd];
    mov.u32 %r1, %tid.x;
    shr.u32 %r2, %r1, 5;
    mul.wide.u32 %rd5, %r2, 512;
    add.s64 %rd6, %rd1, %rd5;
    wmma.load.a.sync.aligned.row.m16n16k16.global.f16 {_regs("r", 10, 8)}, [%rd6];
    mul.wide.u32 %rd7, %r2, 1024;
    add.s64 %rd8, %rd2, %rd7;
    wmma.load.b.sync.aligned.col.m16n16k16.global.f16 {_regs("r", 20, 8)}, [%rd8];
    add.s64 %rd9, %rd8, 512;
    wmma.load.b.sync.aligned.col.m16n16k16.global.f16 {_regs("r", 30, 8)}, [%rd9];
    mul.wide.u32 %rd10, %r2, 1024;
    add.s64 %rd11, %rd3, %rd10;
    wmma.load.c.sync.aligned.row.m16n16k16.global.f32 {_regs("f", 1, 8)}, [%rd11], 16;
    wmma.mma.sync.aligned.row.col.m16n16k16.f32.f32 {_regs("f", 10, 8)}, {_regs("r", 10, 8)}, \
{_regs("r", 20, 8)}, {_regs("f", 1, 8)};
    add.f32 %f10, %f10, 0f3F800000;
    wmma.mma.sync.aligned.row.col.m16n16k16.f32.f32 {_regs("f", 20, 8)}, {_regs("r", 10, 8)}, \
{_regs("r", 30, 8)}, {_regs("f", 10, 8)};
    add.s64 %rd12, %rd4, %rd10;
    wmma.store.d.sync.aligned.row.m16n16k16.global.f32 [%rd12], {_regs("f", 20, 8)}, 16;
    ret;
}}
"""


def test_wmma_accumulator_changed_between_two_mma_is_read_as_changed() -> None:
    """The second wmma.mma reads A and the first's D again; D changed in one register in between."""
    dev = ptx_device(WMMA_CHAIN)
    warps = 3
    a = rng.integers(-8, 8, size=(warps, 16, 16)).astype(np.float16)
    b = rng.integers(-8, 8, size=(warps, 2, 16, 16)).astype(np.float16)  # two column-major tiles
    c = rng.integers(-99, 99, size=(warps, 16, 16)).astype(np.float32)
    out = dev.zeros(warps * 256, np.float32)
    dev.run("chain", 1, 32 * warps, dev.put(a), dev.put(b), dev.put(c), out)
    a32, b32 = a.astype(np.float32), b.astype(np.float32).transpose(0, 1, 3, 2)
    d1 = a32 @ b32[:, 0] + c
    d1.reshape(warps, 256)[:, :32] += 1  # register 0 of every lane: elements 0-31 in the engine's layout
    np.testing.assert_array_equal(dev.get(out, warps * 256, np.float32).reshape(warps, 16, 16), a32 @ b32[:, 1] + d1)


# block w (one warp): D = A_{2w} B_w + A_{2w+1} B_w, each A copied into the same shared tile in turn and
# loaded by wmma.load from one address register (its checked index computed once, then reused)
WMMA_SHARED_LOOP = f"""
.version 8.0
.target sm_80
.address_size 64
.visible .entry shared_loop(.param .u64 pa, .param .u64 pb, .param .u64 pd)
{{
    .reg .pred %p<2>;
    .reg .b32 %r<60>;
    .reg .f32 %f<20>;
    .reg .b64 %rd<20>;
    .shared .align 16 .b8 tile[512];
    ld.param.u64 %rd1, [pa];
    ld.param.u64 %rd2, [pb];
    ld.param.u64 %rd3, [pd];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, tile;
    mul.wide.u32 %rd4, %r2, 512;
    add.s64 %rd5, %rd2, %rd4;
    wmma.load.b.sync.aligned.col.m16n16k16.global.f16 {_regs("r", 20, 8)}, [%rd5];
""" + "".join(f"    mov.f32 %f{i}, 0f00000000;\n" for i in range(1, 9)) + f"""    mov.u32 %r4, 0;
LOOP:
    shl.b32 %r5, %r2, 1;
    add.u32 %r6, %r5, %r4;
    mul.wide.u32 %rd6, %r6, 512;
    add.s64 %rd7, %rd1, %rd6;
    mul.wide.u32 %rd8, %r1, 16;
    add.s64 %rd9, %rd7, %rd8;
    ld.global.v4.u32 {_regs("r", 40, 4)}, [%rd9];
    shl.b32 %r7, %r1, 4;
    add.u32 %r8, %r3, %r7;
    st.shared.v4.u32 [%r8], {_regs("r", 40, 4)};
    bar.sync 0;
    wmma.load.a.sync.aligned.row.m16n16k16.shared.f16 {_regs("r", 10, 8)}, [%r3], 16;
    wmma.mma.sync.aligned.row.col.m16n16k16.f32.f32 {_regs("f", 1, 8)}, {_regs("r", 10, 8)}, \
{_regs("r", 20, 8)}, {_regs("f", 1, 8)};
    bar.sync 0;
    add.u32 %r4, %r4, 1;
    setp.lt.u32 %p1, %r4, 2;
    @%p1 bra LOOP;
    mul.wide.u32 %rd10, %r2, 1024;
    add.s64 %rd11, %rd3, %rd10;
    wmma.store.d.sync.aligned.row.m16n16k16.global.f32 [%rd11], {_regs("f", 1, 8)}, 16;
    ret;
}}
"""


def test_wmma_load_from_one_shared_address_register_on_every_pass_reads_the_tile_as_it_is_now() -> None:
    dev = ptx_device(WMMA_SHARED_LOOP)
    blocks = 3
    a = rng.integers(-8, 8, size=(blocks, 2, 16, 16)).astype(np.float16)
    b = rng.integers(-8, 8, size=(blocks, 16, 16)).astype(np.float16)  # column-major: row j is column j
    out = dev.zeros(blocks * 256, np.float32)
    dev.run("shared_loop", blocks, 32, dev.put(a), dev.put(b), out)
    a32, bt = a.astype(np.float32), b.astype(np.float32).transpose(0, 2, 1)
    want = a32[:, 0] @ bt + a32[:, 1] @ bt
    np.testing.assert_array_equal(dev.get(out, blocks * 256, np.float32).reshape(blocks, 16, 16), want)
