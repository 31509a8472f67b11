"""The kernel corpus (tests/kernels/ptx_corpus.cu, as nvcc 13 compiles it for compute_75/80/90)
against exact references: bitwise for integers and correctly rounded float operations, within the
ISA's documented error for the approximations."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from executor.ptx import LoadedModule

from .conftest import CORPUS, Device, rounded, ulps

N = 320  # ten warps: two blocks of 128 and a partial third
BLOCK = 128
GRID = (N + BLOCK - 1) // BLOCK
I32 = npt.NDArray[np.int32]


def _ints(seed: int, edge: list[int]) -> I32:
    rng = np.random.default_rng(seed)
    values = rng.integers(-(1 << 31) + 1, 1 << 31, N, dtype=np.int64)
    values[: len(edge)] = edge
    small = rng.integers(-300, 300, N // 4)
    values[N // 2 : N // 2 + small.size] = small
    return values.astype(np.int32)


def _wrap32(values: Any) -> I32:
    return np.array([((int(v) + (1 << 31)) % (1 << 32)) - (1 << 31) for v in values], dtype=np.int64).astype(
        np.int32
    )


def _cdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _crem(a: int, b: int) -> int:
    return a - _cdiv(a, b) * b


def _prmt(a: int, b: int, sel: int) -> int:
    pool = (b << 32 | a).to_bytes(8, "little")
    out = 0
    for k in range(4):
        nib = (sel >> (4 * k)) & 0xF
        byte = pool[nib & 7]
        if nib & 8:
            byte = 0xFF if byte & 0x80 else 0
        out |= byte << (8 * k)
    return out


def _bfe(a: int, pos: int, length: int, signed: bool) -> int:
    bits = [(a >> k) & 1 for k in range(32)]
    sbit = 0
    if signed and length:
        sbit = bits[min(pos + length - 1, 31)]
    return sum((bits[pos + k] if k < length and pos + k <= 31 else sbit) << k for k in range(32))


def _bfi(a: int, b: int, pos: int, length: int) -> int:
    out = b
    for k in range(length):
        if pos + k > 31:
            break
        out = (out & ~(1 << (pos + k))) | (((a >> k) & 1) << (pos + k))
    return out & 0xFFFFFFFF


def _u(v: int, bits: int = 32) -> int:
    return v % (1 << bits)


def test_int32_arithmetic(corpus: Device) -> None:
    a = _ints(1, [0, 1, -1, (1 << 31) - 1, -7, 7, 12345, -(1 << 31) + 1])
    b = _ints(2, [0, -1, 1, 2, 3, -3, 31, 33])
    pa, pb, out = corpus.put(a), corpus.put(b), corpus.zeros(33 * N, np.int32)
    corpus.run("int32_ops", GRID, BLOCK, pa, pb, out, N)
    got = corpus.get(out, 33 * N, np.int32).reshape(33, N)
    for i in range(N):
        x, y = int(a[i]), int(b[i])
        ux, uy = _u(x), _u(y)
        want = [
            x + y,
            x - y,
            x * y,
            (x * y) >> 32,
            (ux * uy) >> 32,
            _cdiv(x, y) if y else 0,
            _crem(x, y) if y else 0,
            ux // uy if uy else 0,
            ux % uy if uy else 0,
            min(x, y),
            max(x, y),
            min(ux, uy),
            max(ux, uy),
            abs(x),
            -x,
            x & y,
            x | y,
            x ^ y,
            ~x,
            x << (y & 31),
            x >> (y & 31),
            ux >> (uy & 31),
            bin(ux).count("1"),
            32 - ux.bit_length(),
            int(f"{ux:032b}"[::-1], 2),
            _prmt(ux, uy, uy & 0x7777),
            (ux & -ux).bit_length(),
            abs(x - y) + 7,
            x * 7 + y,
            (x + y) >> 1,
            _bfe(ux, uy & 0xFF, (uy >> 8) & 0xFF, False),
            _bfe(ux, uy & 0xFF, (uy >> 8) & 0xFF, True),
            _bfi(ux, uy, (ux >> 16) & 0xFF, (ux >> 24) & 0xFF),
        ]
        np.testing.assert_array_equal(got[:, i], _wrap32(want), err_msg=f"element {i}: x={x} y={y}")


def test_int64_and_int16_arithmetic(corpus: Device) -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(-(1 << 63) + 1, (1 << 63) - 1, N, dtype=np.int64)
    b = rng.integers(-(1 << 63) + 1, (1 << 63) - 1, N, dtype=np.int64)
    a[:6] = [0, 1, -1, 5, -(1 << 40), 1 << 33]
    b[:6] = [0, -1, 0, 3, 7, -5]
    b[N // 2 :] = rng.integers(-1000, 1000, N - N // 2)
    pa, pb, out = corpus.put(a), corpus.put(b), corpus.zeros(23 * N, np.int64)
    corpus.run("int64_ops", GRID, BLOCK, pa, pb, out, N)
    got = corpus.get(out, 23 * N, np.int64).reshape(23, N)

    def s64(v: int) -> int:
        return ((v + (1 << 63)) % (1 << 64)) - (1 << 63)

    def s16(v: int) -> int:
        return ((v + (1 << 15)) % (1 << 16)) - (1 << 15)

    def s32(v: int) -> int:
        return ((v + (1 << 31)) % (1 << 32)) - (1 << 31)

    for i in range(N):
        x, y = int(a[i]), int(b[i])
        ux, uy = _u(x, 64), _u(y, 64)
        sx, sy = s16(x), s16(y)
        want = [
            x + y,
            x - y,
            x * y,
            (x * y) >> 64,
            (ux * uy) >> 64,
            _cdiv(x, y) if y else 0,
            _crem(x, y) if y else 0,
            ux // uy if uy else 0,
            ux % uy if uy else 0,
            min(x, y),
            max(ux, uy),
            x << (y & 63),
            x >> (y & 63),
            ux >> (uy & 63),
            bin(ux).count("1"),
            64 - ux.bit_length(),
            int(f"{ux:064b}"[::-1], 2),
            s32(x) * s32(y),
            _u(x) * _u(y),
            s16(sx * sy + sx),
            _u(sx, 16) // (_u(sy, 16) | 1),
            s32(x),
            (x & 0xFF) + (((y & 0xFF) ^ 0x80) - 0x80),
        ]
        np.testing.assert_array_equal(
            got[:, i], np.array([s64(v) for v in want], dtype=np.int64), err_msg=f"element {i}: x={x} y={y}"
        )


def _floats(seed: int, n: int = N) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    values = (rng.standard_normal(n) * np.exp2(rng.integers(-20, 20, n))).astype(np.float32)
    values[:4] = [1.0, -2.5, 3.0e-3, 7.0]
    return values


def test_f32_arithmetic_rounds_as_ieee_says_in_every_mode(corpus: Device) -> None:
    a, b, c = _floats(4), _floats(5), _floats(6)
    pa, pb, pc, out = corpus.put(a), corpus.put(b), corpus.put(c), corpus.zeros(30 * N, np.float32)
    corpus.run("f32_ops", GRID, BLOCK, pa, pb, pc, out, N)
    got = corpus.get(out, 30 * N, np.float32).reshape(30, N)
    fa, fb, fc = ([Fraction(float(v)) for v in arr] for arr in (a, b, c))
    f32 = np.float32
    sums = [x + y for x, y in zip(fa, fb, strict=True)]
    products = [x * y for x, y in zip(fa, fb, strict=True)]
    fmas = [x * y + z for x, y, z in zip(fa, fb, fc, strict=True)]
    quotients = [x / y for x, y in zip(fa, fb, strict=True)]
    want = [
        a + b,
        a - b,
        a * b,
        a / b,
        rounded(fmas, "rn", f32),
        rounded(sums, "rz", f32),
        rounded(sums, "rm", f32),
        rounded(sums, "rp", f32),
        rounded(products, "rz", f32),
        rounded(products, "rm", f32),
        rounded(products, "rp", f32),
        rounded(fmas, "rz", f32),
        rounded(fmas, "rm", f32),
        rounded(fmas, "rp", f32),
        rounded(quotients, "rz", f32),
        rounded(quotients, "rm", f32),
        rounded(quotients, "rp", f32),
        np.fmin(a, b),
        np.fmax(a, b),
        np.abs(a),
        -a,
        np.copysign(a, b),
        np.sqrt(np.abs(a)),
        rounded([1 / y for y in fb], "rn", f32),
        np.clip(a, 0, 1),
        np.where(a < b, c, a),
        np.floor(a),
        np.ceil(a),
        np.trunc(a),
        np.rint(a),
    ]
    for k, expected in enumerate(want):
        np.testing.assert_array_equal(got[k], np.asarray(expected, dtype=np.float32), err_msg=f"result {k}")


def test_f32_approximations_are_within_the_isas_error(corpus: Device) -> None:
    x = np.linspace(-8, 8, N).astype(np.float32)
    px, out = corpus.put(x), corpus.zeros(11 * N, np.float32)
    corpus.run("f32_approx", GRID, BLOCK, px, out, N)
    got = corpus.get(out, 11 * N, np.float32).reshape(11, N)
    x64 = x.astype(np.float64)
    assert ulps(got[0], np.exp2(x64)).max() <= 2  # ex2.approx: 2 ulp (PTX ISA)
    assert ulps(got[1], np.exp(x64)).max() <= 2 + 1.5 * 8  # __expf: ex2 of a rounded x*log2(e)
    log_arg = np.abs(x) + np.float32(1)
    assert np.abs(got[2] - np.log2(log_arg.astype(np.float64))).max() <= 2.0**-22 * 8
    inside = np.abs(x64) <= np.pi
    assert np.abs(got[3] - np.sin(x64))[inside].max() <= 2.0**-20.9  # sin.approx: 2^-20.9 in [-pi, pi]
    assert np.abs(got[4] - np.cos(x64))[inside].max() <= 2.0**-20.9
    assert ulps(got[5], 1 / np.sqrt(np.abs(x64) + 1)).max() <= 2  # rsqrt.approx: 2^-22.9 relative
    np.testing.assert_array_equal(
        got[6], (1 / (x64 + 3).astype(np.float32).astype(np.float64)).astype(np.float32)
    )
    assert np.abs(got[7] - np.tanh(x64)).max() <= 2.0**-10.987 * np.abs(np.tanh(x64)).max()  # tanh.approx
    assert ulps(got[8], np.exp(x64)).max() <= 2  # expf: 2 ulp (CUDA's documented bound)
    assert ulps(got[9], np.tanh(x64)).max() <= 2  # tanhf: 2 ulp
    assert ulps(got[10], x64 / 3).max() <= 2  # __fdividef: 2 ulp


def test_f64_arithmetic_and_narrowing(corpus: Device) -> None:
    rng = np.random.default_rng(7)
    a, b, c = (rng.standard_normal(N) * np.exp2(rng.integers(-40, 40, N)) for _ in range(3))
    pa, pb, pc = corpus.put(a), corpus.put(b), corpus.put(c)
    out, out32 = corpus.zeros(11 * N, np.float64), corpus.zeros(5 * N, np.float32)
    corpus.run("f64_ops", GRID, BLOCK, pa, pb, pc, out, out32, N)
    got = corpus.get(out, 11 * N, np.float64).reshape(11, N)
    got32 = corpus.get(out32, 5 * N, np.float32).reshape(5, N)
    fa, fb, fc = ([Fraction(float(v)) for v in arr] for arr in (a, b, c))
    f64 = np.float64
    want = [
        a + b,
        a - b,
        a * b,
        a / b,
        rounded([x * y + z for x, y, z in zip(fa, fb, fc, strict=True)], "rn", f64),
        np.sqrt(np.abs(a)),
        np.fmin(a, b),
        np.fmax(a, b),
        -np.abs(a),
        rounded([x + y for x, y in zip(fa, fb, strict=True)], "rz", f64),
        rounded([x * y for x, y in zip(fa, fb, strict=True)], "rp", f64),
    ]
    for k, expected in enumerate(want):
        np.testing.assert_array_equal(got[k], expected, err_msg=f"result {k}")
    f32 = np.float32
    want32 = [
        a.astype(np.float32),
        rounded(fa, "rz", f32),
        rounded(fa, "rm", f32),
        rounded(fa, "rp", f32),
        (a * b).astype(np.float32),
    ]
    for k, expected in enumerate(want32):
        np.testing.assert_array_equal(got32[k], expected, err_msg=f"narrowed {k}")


def test_conversions_round_and_saturate(corpus: Device) -> None:
    x = _floats(8)
    x[4:12] = [np.nan, 3.0e9, -3.0e9, 2.5, -2.5, 0.5, -0.0, 65537.7]
    y = _ints(9, [0, -1, 255, -129, (1 << 31) - 1, 16777217, -16777219, 70000])
    z = np.random.default_rng(10).integers(-(1 << 62), 1 << 62, N, dtype=np.int64)
    z[:3] = [0, (1 << 53) + 1, -(1 << 60) - 3]
    px, py, pz = corpus.put(x), corpus.put(y), corpus.put(z)
    oi, of, ol = corpus.zeros(8 * N, np.int32), corpus.zeros(7 * N, np.float32), corpus.zeros(4 * N, np.int64)
    corpus.run("conversions", GRID, BLOCK, px, py, pz, oi, of, ol, N)
    gi = corpus.get(oi, 8 * N, np.int32).reshape(8, N)
    gf = corpus.get(of, 7 * N, np.float32).reshape(7, N)
    gl = corpus.get(ol, 4 * N, np.int64).reshape(4, N)
    x64 = x.astype(np.float64)

    def sat(values: npt.NDArray[np.float64], lo: int, hi: int) -> list[int]:
        return [0 if np.isnan(v) else int(min(max(v, lo), hi)) for v in values]

    i32 = (-(1 << 31), (1 << 31) - 1)
    want_i = [
        sat(np.rint(x64), *i32),
        sat(np.trunc(x64), *i32),
        sat(np.floor(x64), *i32),
        sat(np.ceil(x64), *i32),
        _wrap32(sat(np.rint(x64), 0, (1 << 32) - 1)),
        [v & 0xFFFF for v in sat(np.trunc(x64), 0, (1 << 32) - 1)],
        [((int(v) & 0xFF) ^ 0x80) - 0x80 for v in y],
        [int(v) & 0xFFFF for v in y],
    ]
    for k, expected in enumerate(want_i):
        np.testing.assert_array_equal(
            gi[k], np.asarray(expected, dtype=np.int64).astype(np.int32), err_msg=f"to int {k}"
        )
    f32 = np.float32
    fy = [Fraction(int(v)) for v in y]
    want_f = [
        y.astype(np.float32),
        rounded(fy, "rz", f32),
        rounded(fy, "rm", f32),
        rounded(fy, "rp", f32),
        rounded([Fraction(int(v) % (1 << 32)) for v in y], "rn", f32),
        rounded([Fraction(int(v)) for v in z], "rn", f32),
        z.astype(np.float64).astype(np.float32),
    ]
    for k, expected in enumerate(want_f):
        np.testing.assert_array_equal(gf[k], expected, err_msg=f"to float {k}")
    i64 = (-(1 << 63), (1 << 63) - 1)
    scaled = (x * np.float32(1e10)).astype(np.float64)
    want_l = [
        sat(np.rint(x64), *i64),
        sat(np.trunc(scaled), *i64),
        sat(np.floor(x64), 0, (1 << 64) - 1),
        sat(np.rint(x64 * 3.0e9), *i64),
    ]
    for k, expected in enumerate(want_l):
        wrapped = [((v + (1 << 63)) % (1 << 64)) - (1 << 63) for v in expected]
        np.testing.assert_array_equal(gl[k], np.array(wrapped, dtype=np.int64), err_msg=f"to int64 {k}")


def test_comparisons_and_predicate_logic(corpus: Device) -> None:
    a = _ints(11, [0, 1, -1, 5])
    b = _ints(12, [0, -1, 1, 5])
    b[N // 2 :] = a[N // 2 :] + np.random.default_rng(1).integers(-1, 2, N - N // 2).astype(np.int32)
    fa, fb = _floats(13), _floats(14)
    fa[:6] = [np.nan, 1.0, np.nan, 0.0, -0.0, np.inf]
    fb[:6] = [1.0, np.nan, np.nan, -0.0, 0.0, np.inf]
    pa, pb, pfa, pfb = corpus.put(a), corpus.put(b), corpus.put(fa), corpus.put(fb)
    out = corpus.zeros(23 * N, np.int32)
    corpus.run("compares", GRID, BLOCK, pa, pb, pfa, pfb, out, N)
    got = corpus.get(out, 23 * N, np.int32).reshape(23, N)
    ua, ub = a.view(np.uint32), b.view(np.uint32)
    with np.errstate(invalid="ignore"):
        want = [
            a == b,
            a != b,
            a < b,
            a <= b,
            a > b,
            a >= b,
            ua < ub,
            ua <= ub,
            ua > ub,
            ua >= ub,
            fa == fb,
            fa != fb,
            fa < fb,
            fa <= fb,
            fa > fb,
            fa >= fb,
            ~(fa < fb),
            ~(fa >= fb),
            np.isnan(fa),
            (a < b) & (fa < fb),
            (a < b) | (fa < fb),
            (a < b) != (fa < fb),
            np.where(a < b, a, _wrap32(b.astype(np.int64) * 3)),
        ]
    for k, expected in enumerate(want):
        np.testing.assert_array_equal(got[k], np.asarray(expected).astype(np.int32), err_msg=f"result {k}")


def _control(x: int) -> int:
    if _crem(x, 3) == 0:
        r = 100
        for j in range(x & 7):
            if j == 5:
                break
            r += j * j
        return r
    if _crem(x, 3) == 1:
        r = -x
        while r < 0:
            r += 7
        return r
    return {0: 1, 1: 11, 2: 111}.get(x & 3, 1111)


def _collatz(v: int, limit: int) -> int:
    steps = 0
    while v > 1 and steps < limit:
        v = 3 * v + 1 if v & 1 else v // 2
        steps += 1
    return steps


def test_divergent_control_flow_and_calls(corpus: Device) -> None:
    a = np.random.default_rng(15).integers(-100000, 100000, N).astype(np.int32)
    pa, out = corpus.put(a), corpus.zeros(2 * N, np.int32)
    corpus.run("control_flow", GRID, BLOCK, pa, out, N)
    got = corpus.get(out, 2 * N, np.int32).reshape(2, N)
    np.testing.assert_array_equal(got[0], [_control(int(v)) for v in a])
    np.testing.assert_array_equal(got[1], [_collatz(int(v) & 1023, 200) for v in a])


def _walk(table: list[int], v: int) -> int:
    if v <= 0:
        return table[0]
    return (_walk(table, v - 1) ^ table[v & 7]) + v


def test_recursion_runs_within_the_call_depth(corpus: Device) -> None:
    a = np.random.default_rng(16).integers(-3, 40, N).astype(np.int32)
    table = np.random.default_rng(17).integers(0, 1000, 8).astype(np.int32)
    pa, pt, out = corpus.put(a), corpus.put(table), corpus.zeros(N, np.int32)
    corpus.run("recursion", GRID, BLOCK, pa, pt, out, N)
    want = [_walk([int(t) for t in table], int(v)) for v in a]
    np.testing.assert_array_equal(corpus.get(out, N, np.int32), want)


def test_vector_loads_stores_and_local_arrays(corpus: Device) -> None:
    v4 = _floats(17, 4 * N)
    d2 = np.random.default_rng(18).standard_normal(2 * N)
    p4, p2 = corpus.put(v4), corpus.put(d2)
    o4, o2, ol = corpus.zeros(4 * N, np.float32), corpus.zeros(2 * N, np.float64), corpus.zeros(N, np.int32)
    corpus.run("vectors", GRID, BLOCK, p4, p2, o4, o2, ol, N)
    q = v4.reshape(N, 4)
    want4 = np.stack([q[:, 3], q[:, 2] + np.float32(1), q[:, 1], q[:, 0]], axis=1)
    np.testing.assert_array_equal(corpus.get(o4, 4 * N, np.float32).reshape(N, 4), want4)
    r = d2.reshape(N, 2)
    np.testing.assert_array_equal(
        corpus.get(o2, 2 * N, np.float64).reshape(N, 2), np.stack([r[:, 1], r[:, 0] * 2], 1)
    )
    i = np.arange(N)
    np.testing.assert_array_equal(corpus.get(ol, N, np.int32), i * ((i * 7) & 15) + i * (i & 15))


def test_dynamic_shared_memory(corpus: Device) -> None:
    x = _floats(19)
    px, out = corpus.put(x), corpus.zeros(N, np.float32)
    block = 64
    corpus.run("dynamic_shared_reverse", N // block, block, px, out, N, shared=4 * block)
    np.testing.assert_array_equal(corpus.get(out, N, np.float32), x.reshape(-1, block)[:, ::-1].reshape(-1))


def test_threads_that_returned_before_a_barrier_count_as_arrived(corpus: Device) -> None:
    width, height = 20, 5
    x = np.random.default_rng(20).integers(-50, 50, width * height).astype(np.float32)
    px, out = corpus.put(x), corpus.zeros(8, np.float32)
    corpus.run("early_exit_barrier", 1, (32, 8, 1), px, out, width, height)
    got = corpus.get(out, 8, np.float32)
    np.testing.assert_array_equal(got[:height], x.reshape(height, width).sum(axis=1))
    np.testing.assert_array_equal(got[height:], 0)


def test_warp_shuffles_votes_and_lane_registers(corpus: Device) -> None:
    v = np.random.default_rng(21).integers(-2000, 2000, N).astype(np.int32)
    pv, out = corpus.put(v), corpus.zeros(14 * N, np.int32)
    corpus.run("warp_ops", GRID, BLOCK, pv, out, N)
    got = corpus.get(out, 14 * N, np.int32).reshape(14, N)
    t = np.arange(N)
    lane = (t % BLOCK) % 32
    base = t - lane

    def src(lanes: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
        picked: npt.NDArray[np.int32] = v[base + np.clip(lanes, 0, 31)]
        return picked

    seg8, seg16, seg4 = lane - lane % 8, lane - lane % 16, lane - lane % 4
    ballot = np.array([sum(1 << k for k in range(32) if v[b + k] & 1) for b in base], dtype=np.int64)
    warp_sum = np.array([int(v[b : b + 32].sum()) for b in base])
    want = [
        src((t % BLOCK * 7) & 31),
        np.where(lane >= 3, src(lane - 3), v),
        np.where(lane + 5 <= 31, src(lane + 5), v),
        src(lane ^ 6),
        src(seg8 + 2),
        np.where(lane - 1 >= seg16, src(lane - 1), v),
        np.where(lane + 2 < seg4 + 4, src(lane + 2), v),
        _wrap32(ballot),
        [int((v[b : b + 32] > 1000).any()) for b in base],
        [int((v[b : b + 32] > -1000).all()) for b in base],
        lane,
        (t % BLOCK) // 32,
        _wrap32(warp_sum),
        np.where(v & 1, _wrap32(ballot), -1),
    ]
    for k, expected in enumerate(want):
        np.testing.assert_array_equal(got[k], np.asarray(expected).astype(np.int32), err_msg=f"result {k}")


def test_atomics_on_global_and_shared_memory_serialize_in_thread_order(corpus: Device) -> None:
    v = np.random.default_rng(22).integers(-(1 << 20), 1 << 20, N).astype(np.int32)
    gint0 = np.array([5, 1 << 30, -(1 << 30), -1, 0, 0x55, 0, 0] + [0] * 8, dtype=np.int32)
    guint0 = np.array([3, 20, 0xFFFFFFFF, 0], dtype=np.uint32)
    pv, pg, pu = corpus.put(v), corpus.put(gint0), corpus.put(guint0)
    pf, p64, old = (
        corpus.put(np.array([0.5], dtype=np.float32)),
        corpus.put(np.array([7], dtype=np.uint64)),
        corpus.zeros(N, np.int32),
    )
    corpus.run("atomics", GRID, BLOCK, pv, pg, pu, pf, p64, old, N)
    gint, guint = corpus.get(pg, 16, np.int32), corpus.get(pu, 4, np.uint32)
    np.testing.assert_array_equal(
        corpus.get(old, N, np.int32), _wrap32(5 + np.concatenate([[0], np.cumsum(v[:-1].astype(np.int64))]))
    )
    assert gint[0] == _wrap32([5 + int(v.astype(np.int64).sum())])[0]
    assert gint[1] == min(1 << 30, int(v.min())) and gint[2] == max(-(1 << 30), int(v.max()))
    assert gint[3] == np.bitwise_and.reduce(v | 0x10000) & -1
    assert gint[4] == np.bitwise_or.reduce(v & 0xFF)
    assert gint[5] == 0x55 ^ np.bitwise_xor.reduce(v)
    assert gint[6] == v[-1] and gint[7] == v[0]  # exchange: the last thread's; CAS from 0: the first's
    inc, dec = 3, 20
    for _ in range(N):
        inc = 0 if inc >= 17 else inc + 1
        dec = 13 if dec == 0 or dec > 13 else dec - 1
    assert (guint[0], guint[1]) == (inc, dec)
    assert guint[2] == min(0xFFFFFFFF, int(v.view(np.uint32).min())) and guint[3] == int(
        v.view(np.uint32).max()
    )
    assert corpus.get(pf, 1, np.float32)[0] == np.float32(0.5 + float(((v & 15) * 0.25).sum()))
    assert corpus.get(p64, 1, np.uint64)[0] == 7 + int((v & 0xFFFF).astype(np.int64).sum())
    np.testing.assert_array_equal(gint[8:], np.bincount(v & 7, minlength=8))


def test_3d_geometry_special_registers(corpus: Device) -> None:
    grid, block = (2, 3, 2), (4, 2, 3)
    threads = 2 * 3 * 2 * 4 * 2 * 3
    out = corpus.zeros(8 * threads, np.int32)
    corpus.run("geometry", grid, block, out)
    got = corpus.get(out, 8 * threads, np.int32).reshape(threads, 8)
    rows = []
    for bz in range(2):
        for by in range(3):
            for bx in range(2):
                for tz in range(3):
                    for ty in range(2):
                        for tx in range(4):
                            rows.append([tx, ty, tz, bx, by, bz, 423, 232])
    np.testing.assert_array_equal(got, rows)


def _funnel(lo: int, hi: int, shift: int, left: bool) -> int:
    pair = hi << 32 | lo
    return ((pair << shift) >> 32) & 0xFFFFFFFF if left else (pair >> shift) & 0xFFFFFFFF


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def _lanes_of(value: int, width: int, signed: bool) -> list[int]:
    bits = 8 * width
    lanes = [(value >> (bits * k)) & ((1 << bits) - 1) for k in range(4 // width)]
    return [_signed(v, bits) if signed else v for v in lanes]


def test_funnel_shifts_dot_products_lop3_and_24_bit_multiplies(corpus: Device) -> None:
    rng = np.random.default_rng(23)
    a, b = (rng.integers(0, 1 << 32, N, dtype=np.uint64).astype(np.uint32) for _ in range(2))
    c = rng.integers(0, 1 << 32, N, dtype=np.uint64).astype(np.uint32)
    c[: N // 2] = rng.integers(0, 70, N // 2).astype(np.uint32)  # shift counts in and past range
    pa, pb, pc, out = corpus.put(a), corpus.put(b), corpus.put(c), corpus.zeros(14 * N, np.uint32)
    corpus.run("more_int_ops", GRID, BLOCK, pa, pb, pc, out, N)
    got = corpus.get(out, 14 * N, np.uint32).reshape(14, N)
    for i in range(N):
        x, y, z = int(a[i]), int(b[i]), int(c[i])

        def dot(xs: list[int], ys: list[int], acc: int) -> int:
            return (acc + sum(p * q for p, q in zip(xs, ys, strict=True))) & 0xFFFFFFFF

        mul24 = (_signed(x & 0xFFFFFF, 24) * _signed(y & 0xFFFFFF, 24)) & 0xFFFFFFFF
        want = [
            _funnel(x, y, z & 31, True),
            _funnel(x, y, z & 31, False),
            _funnel(x, y, min(z, 32), True),
            _funnel(x, y, min(z, 32), False),
            dot(_lanes_of(x, 1, True), _lanes_of(y, 1, True), z),
            dot(_lanes_of(x, 1, False), _lanes_of(y, 1, False), z),
            dot(_lanes_of(x, 2, True), _lanes_of(y, 1, True)[:2], z),
            dot(_lanes_of(x, 2, False), _lanes_of(y, 1, False)[2:], z),
            (x & y) | (x & z) | (y & z),
            x ^ y ^ z,
            _prmt(x, y, z & 0xFFFF),
            mul24,
            ((x & 0xFFFFFF) * (y & 0xFFFFFF)) & 0xFFFFFFFF,
            (((x * y) >> 32) + abs(x - y) + z) & 0xFFFFFFFF,
        ]
        np.testing.assert_array_equal(
            got[:, i],
            np.array(want, dtype=np.uint64).astype(np.uint32),
            err_msg=f"element {i}: x={x:#x} y={y:#x} z={z:#x}",
        )


def _bf16(value: np.float32, mode: str) -> int:
    bits = int(np.array([value], dtype=np.float32).view(np.uint32)[0])
    top, low = bits >> 16, bits & 0xFFFF
    if mode == "rn" and (low > 0x8000 or (low == 0x8000 and top & 1)):
        top += 1
    return top


def test_half_and_bfloat16_conversions(corpus: Device) -> None:
    rng = np.random.default_rng(24)
    x = (rng.standard_normal(N) * np.exp2(rng.integers(-26, 15, N))).astype(np.float32)
    x[:6] = [0.0, -0.0, 65472.0, -65000.0, 3.0e-8, 1.0 / 3.0]
    h = rng.integers(0, 1 << 16, N).astype(np.uint16)
    px, ph = corpus.put(x), corpus.put(h)
    out, out_h = corpus.zeros(3 * N, np.float32), corpus.zeros(7 * N, np.uint16)
    corpus.run("half_conversions", GRID, BLOCK, px, ph, out, out_h, N)
    got_h = corpus.get(out_h, 7 * N, np.uint16).reshape(7, N)
    got = corpus.get(out, 3 * N, np.float32).reshape(3, N)
    fx = [Fraction(float(v)) for v in x]
    for k, mode in enumerate(("rn", "rz", "rm", "rp")):
        want = np.copysign(rounded(fx, mode, np.float16), x)  # the sign of an exact zero too
        np.testing.assert_array_equal(got_h[k], want.astype(np.float16).view(np.uint16), err_msg=mode)
    np.testing.assert_array_equal(got_h[4], [_bf16(v, "rn") for v in x])
    np.testing.assert_array_equal(got_h[5], [_bf16(v, "rz") for v in x])
    scaled = [Fraction(float(np.float64(v) * 1.0000001)) for v in x]
    want6 = np.copysign(rounded(scaled, "rn", np.float16), x).astype(np.float16)
    np.testing.assert_array_equal(got_h[6], want6.view(np.uint16))
    with np.errstate(invalid="ignore"):  # NaN patterns among the random bits
        halves = h.view(np.float16).astype(np.float64)
        np.testing.assert_array_equal(got[0], h.view(np.float16).astype(np.float32))
    np.testing.assert_array_equal(got[1], (h.astype(np.uint32) << 16).view(np.float32))
    truncated = np.where(
        np.isnan(halves),
        0,
        np.clip(np.trunc(np.nan_to_num(halves, posinf=3e9, neginf=-3e9)), -(2**31), 2**31 - 1),
    )
    np.testing.assert_array_equal(got[2], truncated.astype(np.int64).astype(np.float32))


def test_more_atomics_reductions_shared_operations_and_64_bit(corpus: Device) -> None:
    v = np.random.default_rng(25).integers(-1000, 1000, N).astype(np.int32)
    v[0] = 41
    g0 = np.zeros(12, dtype=np.int32)
    g0[1] = -5000
    pv, pg = corpus.put(v), corpus.put(g0)
    p64, pd, out = corpus.zeros(2, np.uint64), corpus.put(np.array([0.25])), corpus.zeros(N, np.int32)
    corpus.run("more_atomics", GRID, BLOCK, pv, pg, p64, pd, out, N)
    # the engine's order: blocks one after another, threads in order within a block
    g = [int(x) for x in g0]
    g64 = [0, 0]
    gd = 0.25
    ranks = []
    for block in range(GRID):
        s = [0, 1 << 30, -(1 << 30), -1, 0, 0, 0, 0, 0]
        su = [0, 50]
        for t in range(BLOCK):
            i = block * BLOCK + t
            if i >= N:
                continue
            x = int(v[i])
            g[0] += x
            g[1] = max(g[1], x)
            s[0] += x
            s[1], s[2] = min(s[1], x), max(s[2], x)
            s[3] &= ~(1 << (x & 31))
            s[4] |= 1 << (x & 31)
            s[5] ^= x
            s[6] = x
            s[7] = x + 1 if s[7] == 0 else s[7]
            su[0] = 0 if su[0] >= 9 else su[0] + 1
            su[1] = 60 if su[1] == 0 or su[1] > 60 else su[1] - 1
            ranks.append(s[8])
            s[8] += 1
            g64[0] = (x + 5) % (1 << 64) if g64[0] == 0 else g64[0]
            g64[1] = x % (1 << 64)
            gd += x * 0.5
        for t in range(8):
            g[2 + t] += s[t]
        g[10] += su[0]
        g[11] += su[1]
    np.testing.assert_array_equal(corpus.get(pg, 12, np.int32), _wrap32(g))
    np.testing.assert_array_equal(corpus.get(p64, 2, np.uint64), np.array(g64, dtype=np.uint64))
    assert corpus.get(pd, 1, np.float64)[0] == gd
    np.testing.assert_array_equal(corpus.get(out, N, np.int32), ranks)


def test_barrier_reductions_match_and_redux(corpus: Device, request: pytest.FixtureRequest) -> None:
    v = np.random.default_rng(26).integers(-2000, 2000, N).astype(np.int32)
    v[:32] = np.abs(v[:32])  # one warp whose values all share their top bits
    has_redux = "compute_75" not in request.node.name  # __reduce_*_sync needs sm_80
    results = 13 if has_redux else 6
    pv, out = corpus.put(v), corpus.zeros(13 * N, np.int32)
    corpus.run("collectives", GRID, BLOCK, pv, out, N)
    got = corpus.get(out, 13 * N, np.int32).reshape(13, N)
    t = np.arange(N)
    block, warp = t // BLOCK, t // 32
    lane = t % 32

    def per(groups: npt.NDArray[np.int64], fn: Any) -> npt.NDArray[Any]:
        return np.array([fn(v[groups == g]) for g in groups])

    def match_any(values: npt.NDArray[np.int32]) -> npt.NDArray[np.int64]:
        out_ = np.zeros(N, dtype=np.int64)
        for i in range(N):
            same = (warp == warp[i]) & (values == values[i])
            out_[i] = sum(1 << int(k) for k in lane[same])
        return out_

    uniform = per(warp, lambda w: int((w >> 20 == w[0] >> 20).all()))
    want: list[Any] = [
        per(block, lambda b: int((b & 1).sum())),
        per(block, lambda b: int((b > -1500).all())),
        per(block, lambda b: int((b > 1500).any())),
        _wrap32(match_any(v & 7)),
        np.where(uniform == 1, -1, 0),
        uniform,
    ]
    if has_redux:
        u = v.view(np.uint32)
        want += [
            _wrap32(per(warp, lambda w: int(w.astype(np.int64).sum()))),
            per(warp, lambda w: int(w.min())),
            per(warp, lambda w: int(w.max())),
            per(warp, lambda w: int(np.bitwise_and.reduce(w))),
            per(warp, lambda w: int(np.bitwise_or.reduce(w))),
            per(warp, lambda w: int(np.bitwise_xor.reduce(w))),
            _wrap32([int(u[warp == warp[i]].min()) for i in range(N)]),
        ]
    for k in range(results):
        np.testing.assert_array_equal(got[k], np.asarray(want[k]).astype(np.int32), err_msg=f"result {k}")


def test_half_precision_arithmetic_rounds_once(corpus: Device) -> None:
    rng = np.random.default_rng(27)
    a, b, c = (
        (rng.standard_normal(N) * np.exp2(rng.integers(-12, 7, N))).astype(np.float16) for _ in range(3)
    )
    a[:4], b[:4] = [0.0, -0.0, 1.0, 6e-8], [0.0, -0.0, -1.0, 3.0]  # min/max of +0 and -0: not pinned
    pa, pb, pc = (corpus.put(v.view(np.uint16)) for v in (a, b, c))
    out = corpus.zeros(16 * N, np.uint16)
    corpus.run("half_arith", GRID, BLOCK, pa, pb, pc, out, N)
    got = corpus.get(out, 16 * N, np.uint16).reshape(16, N)
    fa, fb, fc = ([Fraction(float(v)) for v in arr] for arr in (a, b, c))
    f16 = np.float16

    def exact(values: list[Fraction], signs: npt.NDArray[np.float16]) -> npt.NDArray[np.uint16]:
        # the sign of an exact zero result follows IEEE: -0 only when both addends are -0 (or a product is)
        bits: npt.NDArray[np.uint16] = rounded(values, "rn", f16).astype(f16).view(np.uint16)
        return np.where(np.array([v == 0 for v in values]), signs.view(np.uint16), bits)

    def zero_sign(*parts: npt.NDArray[np.float16]) -> npt.NDArray[np.float16]:
        with np.errstate(all="ignore"):
            total = parts[0].astype(np.float64)
            for p in parts[1:]:
                total = total + p.astype(np.float64)
        return np.where(total == 0, np.copysign(f16(0), total), f16(0)).astype(f16)

    prod = (a.astype(np.float64) * b.astype(np.float64)).astype(f16)
    want = [
        exact([x + y for x, y in zip(fa, fb, strict=True)], zero_sign(a, b)),
        exact([x - y for x, y in zip(fa, fb, strict=True)], zero_sign(a, -b)),
        exact([x * y for x, y in zip(fa, fb, strict=True)], prod),
        exact([x * y + z for x, y, z in zip(fa, fb, fc, strict=True)], zero_sign(prod, c)),
        (-a).view(np.uint16),
        np.abs(a).view(np.uint16),
        np.fmin(a, b).view(np.uint16),
        np.fmax(a, b).view(np.uint16),
        exact([x + y for x, y in zip(fa, fb, strict=True)], zero_sign(a, b)),
        exact([y + z for y, z in zip(fb, fc, strict=True)], zero_sign(b, c)),
        exact([x * z for x, z in zip(fa, fc, strict=True)], (a.astype(np.float64) * c).astype(f16)),
        exact([y * x for x, y in zip(fa, fb, strict=True)], prod),
        exact([x * y + z for x, y, z in zip(fa, fb, fc, strict=True)], zero_sign(prod, c)),
        exact(
            [y * z + x for x, y, z in zip(fa, fb, fc, strict=True)],
            zero_sign((b.astype(np.float64) * c).astype(f16), a),
        ),
        (a < b).astype(np.uint16),
        (a >= b).astype(np.uint16),
    ]
    for k, expected in enumerate(want):
        np.testing.assert_array_equal(got[k], np.asarray(expected, dtype=np.uint16), err_msg=f"result {k}")


@pytest.mark.parametrize("valid", [16, 12, 4, 0])
def test_async_copies_zero_fill_past_the_source_size_without_reading_it(corpus: Device, valid: int) -> None:
    data = np.random.default_rng(28).standard_normal(64 * 4).astype(np.float32)
    raw = data.view(np.uint8)[: 63 * 16 + valid]  # the allocation ends where the copied bytes do
    pin, out = corpus.put(raw.copy()), corpus.zeros(64 * 4, np.float32)
    corpus.run("async_copy", 1, 64, pin, out, valid)
    tile = np.zeros(64 * 16, dtype=np.uint8)
    tile[: raw.size] = raw
    want = tile.view(np.float32).reshape(64, 4)[::-1]
    np.testing.assert_array_equal(corpus.get(out, 64 * 4, np.float32).reshape(64, 4), want)


def bf16_round(value: Fraction) -> int:
    """``value`` rounded to bf16 (nearest, ties to even), as bits; ``value`` within bf16's range."""
    if value == 0:
        return 0
    sign = 0x8000 if value < 0 else 0
    mag = abs(value)
    exp = max(mag.numerator.bit_length() - mag.denominator.bit_length(), -126)
    while Fraction(2) ** exp > mag and exp > -126:
        exp -= 1
    while Fraction(2) ** (exp + 1) <= mag:
        exp += 1
    ulp = Fraction(2) ** (exp - 7)  # 8 significant bits
    q, r = divmod(mag, ulp)
    q = int(q) + (1 if r > ulp / 2 or (r == ulp / 2 and int(q) % 2) else 0)
    bits = int(np.array([float(q * ulp)], dtype=np.float32).view(np.uint32)[0]) >> 16
    return sign | bits


@pytest.mark.parametrize("arch", [80, 90])
def test_bfloat16_arithmetic_rounds_once(arch: int) -> None:
    dev = Device(LoadedModule(CORPUS[arch].read_text()))
    rng = np.random.default_rng(28)
    vals = [
        (rng.standard_normal(N).astype(np.float32) * np.exp2(rng.integers(-20, 20, N)).astype(np.float32))
        .view(np.uint32) >> 16
        for _ in range(3)
    ]
    a, b, c = (v.astype(np.uint16) for v in vals)
    out = dev.zeros(12 * N, np.uint16)
    dev.run("bf16_arith", GRID, BLOCK, dev.put(a), dev.put(b), dev.put(c), out, N)
    got = dev.get(out, 12 * N, np.uint16).reshape(12, N)
    fa, fb, fc = ([Fraction(float(x)) for x in (v.astype(np.uint32) << 16).view(np.float32)] for v in (a, b, c))

    def want(values: list[Fraction]) -> npt.NDArray[np.uint16]:
        return np.array([bf16_round(v) for v in values], dtype=np.uint16)

    nonzero = np.array([x + y != 0 and x * y + z != 0 for x, y, z in zip(fa, fb, fc, strict=True)])
    checks = {
        0: want([x + y for x, y in zip(fa, fb, strict=True)]),
        1: want([x - y for x, y in zip(fa, fb, strict=True)]),
        2: want([x * y for x, y in zip(fa, fb, strict=True)]),
        3: want([x * y + z for x, y, z in zip(fa, fb, fc, strict=True)]),
        4: a ^ np.uint16(0x8000),
        5: a & np.uint16(0x7FFF),
        6: np.where(np.array(fa) <= np.array(fb), a, b),
        7: np.where(np.array(fa) >= np.array(fb), a, b),
        8: want([x + y for x, y in zip(fa, fb, strict=True)]),
        9: want([y + z for y, z in zip(fb, fc, strict=True)]),
        10: want([x * y + x for x, y in zip(fa, fb, strict=True)]),
        11: want([y * z + y for y, z in zip(fb, fc, strict=True)]),
    }
    for row, expected in checks.items():
        sel = nonzero & (a != b) if row in (6, 7) else nonzero  # signs of exact zeros: not pinned here
        np.testing.assert_array_equal(got[row][sel], expected[sel], err_msg=f"row {row}")
