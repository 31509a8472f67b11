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

from .conftest import CORPUS, Device

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
