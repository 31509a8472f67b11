"""``bfind`` (every type, with and without ``.shiftamt``) and ``clz`` at both widths against a reference
that scans the bits one by one, on values at every bit position, their neighbours, signs and zero."""

from __future__ import annotations

import numpy as np

from .conftest import SM80, indexed_entry, ptx_device

SCANS = SM80 + indexed_entry(
    "scans",
    ".reg .b32 %r<16>; .reg .b64 %rd<8>;",
    """
    mul.wide.u32 %rd3, %r4, 8;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.u64 %rd5, [%rd4];
    cvt.u32.u64 %r5, %rd5;
    bfind.u32 %r6, %r5;
    bfind.s32 %r7, %r5;
    bfind.u64 %r8, %rd5;
    bfind.s64 %r9, %rd5;
    bfind.shiftamt.u32 %r10, %r5;
    bfind.shiftamt.s64 %r11, %rd5;
    clz.b32 %r12, %r5;
    clz.b64 %r13, %rd5;
    mul.wide.u32 %rd6, %r4, 32;
    add.s64 %rd7, %rd2, %rd6;
    st.global.v4.u32 [%rd7], {%r6, %r7, %r8, %r9};
    st.global.v4.u32 [%rd7+16], {%r10, %r11, %r12, %r13};
    ret;
""",
)


def highest(x: int, bits: int, signed: bool) -> int:
    """bfind's answer by scanning: the highest bit set (unlike the sign bit, for signed), else -1."""
    if signed and x >> (bits - 1):
        x = ~x & ((1 << bits) - 1)
    return max((k for k in range(bits) if x >> k & 1), default=-1)


def test_bfind_and_clz_at_every_bit() -> None:
    device = ptx_device(SCANS)
    one = [1 << k for k in range(64)]
    values = sorted({v & (2**64 - 1) for b in one for v in (b, b - 1, b + 1, -b, ~b)} | {0, 2**64 - 1})
    values += list(np.random.default_rng(3).integers(0, 2**64, 120, dtype=np.uint64))
    values = values[: len(values) // 64 * 64]
    n = len(values)
    pv, out = device.put(np.array(values, dtype=np.uint64)), device.zeros(8 * n, np.uint32)
    device.run("scans", n // 64, 64, pv, out)
    got = device.get(out, 8 * n, np.uint32).reshape(n, 8)
    for value, row in zip(values, got, strict=True):
        v = int(value)
        lo = v & 0xFFFFFFFF
        u32, s32, u64, s64 = highest(lo, 32, False), highest(lo, 32, True), highest(v, 64, False), highest(v, 64, True)
        want = [u32, s32, u64, s64, 31 - u32 if u32 >= 0 else -1, 63 - s64 if s64 >= 0 else -1, 31 - u32, 63 - u64]
        assert row.tolist() == [w & 0xFFFFFFFF for w in want], hex(v)
