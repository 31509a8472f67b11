"""Atomics (``executor/ptx/_isa_atomic.py``): the scans that serve many threads on one location at
once against the rounds they replace (the reference: one thread per location per round), bit for
bit — every operation and type, global, shared and generic addresses, random multiplicities of
threads per location, inactive threads — and against a serial model written here; float sums that
depend on their order; the time bound; the CUDA samples' one-counter pattern."""

from __future__ import annotations

import functools
import time
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from executor.ptx import Limits, LoadedModule, _isa_atomic
from executor.ptx._numeric import DTYPES
from protocol import CUresult

from .conftest import Device, ptx_device

HEADER = """
.version 8.0
.target sm_90
.address_size 64
"""

BLOCK = 256
GRID = 3
THREADS = BLOCK * GRID
TABLE = 256  # entries per table: a block copies one per thread into shared memory
SKIP = 0xFFFFFFFF  # a thread whose index is this takes no part (a branch around the atomic)

OPS_TYPES = [
    ("add", "u32"), ("add", "s32"), ("add", "u64"), ("add", "f32"), ("add", "f64"),
    ("min", "u32"), ("min", "s32"), ("min", "u64"), ("min", "s64"),
    ("max", "u32"), ("max", "s32"), ("max", "u64"), ("max", "s64"),
    ("inc", "u32"), ("dec", "u32"),
    ("and", "b32"), ("and", "b64"), ("or", "b32"), ("or", "b64"), ("xor", "b32"), ("xor", "b64"),
    ("exch", "b32"), ("exch", "b64"), ("cas", "b32"), ("cas", "b64"),
]  # fmt: skip
#: how an atomic reaches its table: the instruction's space and how the address is formed
SPACES = {
    "global": ("atom.global", ""),
    "generic_global": ("atom", ""),
    "shared": ("atom.shared", ""),
    "generic_shared": ("atom", "cvta.shared.u64 %rd9, %rd9;"),
    # results nobody reads (a histogram's atomicAdd): served by one ufunc.at where the op has one
    "shared_red": ("red.shared", ""),
    "shared_unread": ("atom.shared", ""),
}
#: the destination of the atomic, by space (the others: %v3, stored as the thread's old value)
DESTINATION = {"shared_red": "", "shared_unread": "%v0, "}
MULTIPLICITIES = ("one", "few", "zipf", "small", "distinct", "chain")


def _kernel(op: str, t: str, space: str) -> str:
    """``out[i] = atom.op(&table[idx[i]], b[i] (, c[i]))`` for every thread whose index is not SKIP;
    a shared table is the block's copy of ``table``, written back to ``table_out[block]``."""
    size = int(t[1:]) // 8
    instr, convert = SPACES[space]
    shared = "shared" in space
    c_operand = ", %v2" if op == "cas" else ""
    load_c = f"add.s64 %rd12, %rd4, %rd10; ld.global.{t} %v2, [%rd12];" if op == "cas" else ""
    if shared:
        prologue = f"""
    mul.wide.u32 %rd14, %r1, {size};
    add.s64 %rd15, %rd1, %rd14;
    ld.global.{t} %v3, [%rd15];
    mov.u64 %rd16, tab;
    add.s64 %rd17, %rd16, %rd14;
    st.shared.{t} [%rd17], %v3;
    bar.sync 0;"""
        table = "mov.u64 %rd18, tab;"
        epilogue = f"""
    bar.sync 0;
    ld.shared.{t} %v3, [%rd17];
    mul.wide.u32 %rd19, %r2, {TABLE * size};
    add.s64 %rd20, %rd6, %rd19;
    add.s64 %rd20, %rd20, %rd14;
    st.global.{t} [%rd20], %v3;"""
    else:
        prologue, table, epilogue = "", "mov.u64 %rd18, %rd1;", ""
    return f"""
.visible .entry k_{space}(.param .u64 table, .param .u64 idx, .param .u64 bv, .param .u64 cv,
    .param .u64 out, .param .u64 table_out)
{{
    .reg .pred %p;
    .reg .b32 %r<8>;
    .reg .b64 %rd<24>;
    .reg .{t} %v<4>;
    .shared .align 8 .b8 tab[{TABLE * size}];
    ld.param.u64 %rd1, [table];
    ld.param.u64 %rd2, [idx];
    ld.param.u64 %rd3, [bv];
    ld.param.u64 %rd4, [cv];
    ld.param.u64 %rd5, [out];
    ld.param.u64 %rd6, [table_out];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mad.lo.s32 %r4, %r2, %r3, %r1;{prologue}
    {table}
    mul.wide.u32 %rd7, %r4, 4;
    add.s64 %rd8, %rd2, %rd7;
    ld.global.u32 %r5, [%rd8];
    setp.eq.u32 %p, %r5, {SKIP};
    @%p bra SKIPPED;
    mul.wide.u32 %rd9, %r5, {size};
    add.s64 %rd9, %rd18, %rd9;
    {convert}
    mul.wide.u32 %rd10, %r4, {size};
    add.s64 %rd11, %rd3, %rd10;
    ld.global.{t} %v1, [%rd11];
    {load_c}
    {instr}.{op}.{t} {DESTINATION.get(space, "%v3, ")}[%rd9], %v1{c_operand};
    add.s64 %rd13, %rd5, %rd10;
    st.global.{t} [%rd13], %v3;
SKIPPED:{epilogue}
    ret;
}}
"""


@functools.cache
def _module(op: str, t: str) -> LoadedModule:
    return LoadedModule(HEADER + "".join(_kernel(op, t, space) for space in SPACES))


def _indices(kind: str, rng: np.random.Generator) -> npt.NDArray[np.uint32]:
    """Which table entry each thread updates: every thread one entry, a few entries, a skewed spread
    (a few crowded entries and many with one or two threads), a few threads an entry at most, one
    thread an entry, a chain."""
    if kind in ("one", "chain"):
        idx = np.zeros(THREADS, dtype=np.uint32)
    elif kind == "few":
        idx = rng.integers(0, 3, THREADS).astype(np.uint32)
    elif kind == "zipf":
        idx = (np.minimum(rng.zipf(1.6, THREADS), TABLE) - 1).astype(np.uint32)
    elif kind == "small":  # a handful of threads on each location at most
        idx = rng.integers(0, TABLE, THREADS).astype(np.uint32)
    else:  # distinct: each block's threads on entries of their own
        idx = np.concatenate([rng.permutation(TABLE) for _ in range(GRID)]).astype(np.uint32)
    skipped = rng.random(THREADS) < 0.1
    idx[skipped] = SKIP
    return idx


def _values(op: str, t: str, kind: str, rng: np.random.Generator) -> tuple[npt.NDArray[Any], ...]:
    """The table, b and c: full-range integers; floats of mixed magnitudes, subnormal and infinite
    ones among them, whose sum depends on its order; bounds and compare values that often match."""
    dt = DTYPES[t]
    if dt.kind == "f":

        def floats(count: int) -> npt.NDArray[Any]:
            scale = rng.choice([1.0, 3.0e7, 1.0e-3, 1.0e17, 1.0e-40 if t == "f32" else 1.0e-310], count)
            values: npt.NDArray[Any] = (rng.standard_normal(count) * scale).astype(dt)
            return values

        table, b = floats(TABLE), floats(THREADS)
        if kind == "few":
            b[rng.integers(0, THREADS, 2)] = [np.inf, -np.inf]  # two sums end in NaN
        return table, b, b
    if op in ("inc", "dec"):
        table = rng.integers(0, 40, TABLE).astype(dt)
        table[:2] = [0, 0xFFFFFFFF]
        # one bound for every thread (the closed form), or a bound per thread (stepped)
        b = np.full(THREADS, 17, dtype=dt) if kind != "zipf" else rng.integers(0, 30, THREADS).astype(dt)
        if kind == "chain":
            b[:] = 0xFFFFFFFF
        return table, b, b
    if op == "cas":
        if kind == "chain":  # simpleAtomicIntrinsics: thread i swaps i - 1 for i, every swap succeeds
            tid = np.arange(THREADS, dtype=np.uint64)
            return np.zeros(TABLE, dtype=dt), (tid - 1).astype(dt), tid.astype(dt)
        return tuple(rng.integers(0, 4, count).astype(dt) for count in (TABLE, THREADS, THREADS))
    info = np.iinfo(dt)
    table = rng.integers(info.min, info.max, TABLE, dtype=dt, endpoint=True)
    return table, rng.integers(info.min, info.max, THREADS, dtype=dt, endpoint=True), table


#: the launch bound of the comparisons: past the default 5 s, which the rounds reach at load 12
_UNHURRIED = Limits(seconds=120.0)


def _run(
    op: str, t: str, space: str, idx: npt.NDArray[Any], values: tuple[npt.NDArray[Any], ...]
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """The table(s) after the launch and every thread's old value, as raw bits."""
    table, b, c = values
    dev = Device(_module(op, t))
    ptr = dev.put(table)
    out = dev.zeros(THREADS, table.dtype)
    table_out = dev.zeros(GRID * TABLE, table.dtype)
    # the reference rounds (one NumPy round per thread of a location) take seconds on a loaded machine
    dev.run(
        f"k_{space}",
        GRID,
        BLOCK,
        ptr,
        dev.put(idx),
        dev.put(b),
        dev.put(c),
        out,
        table_out,
        limits=_UNHURRIED,
    )
    bits = f"u{table.dtype.itemsize}"
    shared = "shared" in space
    after = dev.get(table_out if shared else ptr, GRID * TABLE if shared else TABLE, table.dtype)
    return after.view(bits), dev.get(out, THREADS, table.dtype).view(bits)


def _serial(
    op: str, t: str, idx: npt.NDArray[Any], values: tuple[npt.NDArray[Any], ...]
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """The global table and the old values, one thread after another (a model independent of the
    engine: NumPy scalars of the type, Python integers for inc/dec/cas)."""
    table, b, c = (v.copy() for v in values)
    olds = np.zeros(THREADS, dtype=table.dtype)
    with np.errstate(all="ignore"):
        for i in np.flatnonzero(idx != SKIP):
            at, old = idx[i], table[idx[i]]
            olds[i] = old
            if op == "add":
                table[at] = old + b[i]
            elif op in ("min", "max"):
                table[at] = min(old, b[i]) if op == "min" else max(old, b[i])
            elif op in ("and", "or", "xor"):
                table[at] = {"and": old & b[i], "or": old | b[i], "xor": old ^ b[i]}[op]
            elif op == "exch":
                table[at] = b[i]
            elif op == "cas":
                table[at] = c[i] if old == b[i] else old
            elif op == "inc":
                table[at] = 0 if int(old) >= int(b[i]) else int(old) + 1
            else:
                table[at] = b[i] if old == 0 or int(old) > int(b[i]) else int(old) - 1
    bits = f"u{table.dtype.itemsize}"
    return table.view(bits), olds.view(bits)


@pytest.mark.parametrize(("op", "t"), OPS_TYPES, ids=[f"{o}.{t}" for o, t in OPS_TYPES])
@pytest.mark.parametrize("space", sorted(SPACES))
def test_scans_equal_the_rounds_bit_for_bit(
    op: str, t: str, space: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{op}.{t}.{space}".encode()))
    for kind in MULTIPLICITIES:
        idx, values = _indices(kind, rng), _values(op, t, kind, rng)
        scanned = _run(op, t, space, idx, values)
        with monkeypatch.context() as patch:
            patch.setattr(_isa_atomic, "SCANS", False)
            reference = _run(op, t, space, idx, values)
        for got, want, what in zip(scanned, reference, ("memory", "old values"), strict=True):
            assert np.array_equal(got, want), (
                f"{kind}: the {what} differ at {np.flatnonzero(got != want)[:8]}"
            )
        if "shared" not in space:  # three blocks share the global table: the serial model's
            model = _serial(op, t, idx, values)
            assert np.array_equal(scanned[0], model[0]) and np.array_equal(scanned[1], model[1]), kind


def test_a_float_sum_on_one_address_rounds_in_thread_order() -> None:
    """The data makes the order matter: summed backwards it rounds to something else."""
    rng = np.random.default_rng(5)
    idx = np.zeros(THREADS, dtype=np.uint32)
    table, b, c = _values("add", "f32", "one", rng)
    memory, olds = _run("add", "f32", "global", idx, (table, b, c))
    forwards = np.add.accumulate(np.concatenate([table[:1], b]))
    backwards = np.add.accumulate(np.concatenate([table[:1], b[::-1]]))
    assert memory[0] == forwards[-1:].view(np.uint32)[0] != backwards[-1:].view(np.uint32)[0]
    assert np.array_equal(olds, forwards[:-1].view(np.uint32))


ONE_ADDRESS = (
    HEADER
    + """
.visible .entry count(.param .u64 out)
{
    .reg .b32 %r<4>;
    .reg .b64 %rd<2>;
    ld.param.u64 %rd1, [out];
    atom.global.add.u32 %r1, [%rd1], 1;
    atom.global.exch.b32 %r2, [%rd1+4], %r1;
    atom.global.cas.b32 %r3, [%rd1+8], %r1, %r2;
    ret;
}
"""
)


def test_atomics_on_one_address_count_every_thread() -> None:
    dev = ptx_device(ONE_ADDRESS)
    out = dev.zeros(3, np.uint32)
    dev.run("count", 4, 64, out)
    assert dev.get(out, 2, np.uint32).tolist() == [256, 255]  # served in thread order: the last saw 255


def test_sixteen_thousand_threads_on_one_counter_take_well_under_a_second_an_instruction() -> None:
    """simpleAtomicIntrinsics' shape: 64 blocks of 256 threads on one counter (16,384 rounds of
    NumPy calls before the scans); the same within a tight time bound that the rounds ran past."""
    dev = ptx_device(ONE_ADDRESS)
    out = dev.zeros(3, np.uint32)
    dev.run("count", 64, 256, out, limits=Limits(seconds=3.0))
    assert dev.get(out, 3, np.uint32).tolist()[:2] == [16384, 16383]


def test_thousands_of_threads_on_one_address_end_at_the_time_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rounds (the fallback) check the time bound between rounds."""
    monkeypatch.setattr(_isa_atomic, "SCANS", False)
    dev = ptx_device(ONE_ADDRESS)
    out = dev.zeros(3, np.uint32)
    started = time.monotonic()
    err = dev.fails("count", 64, 256, out, limits=Limits(seconds=0.3))
    assert err.status == CUresult.CUDA_ERROR_LAUNCH_TIMEOUT and err.sticky
    assert time.monotonic() - started < 4  # one round past the bound, not the 16,384 rounds it needs


def test_an_illegal_address_among_many_on_one_location_writes_nothing() -> None:
    """Every location's bounds are checked before any is written, as the first round did."""
    dev = ptx_device(
        HEADER
        + """
.visible .entry bad(.param .u64 out)
{
    .reg .pred %p;
    .reg .b32 %r<3>;
    .reg .b64 %rd<3>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    setp.eq.u32 %p, %r1, 200;
    @%p add.s64 %rd1, %rd1, 0x100000000;
    atom.global.add.u32 %r2, [%rd1], 1;
    ret;
}
"""
    )
    out = dev.zeros(1, np.uint32)
    err = dev.fails("bad", 1, 256, out)
    assert err.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS and err.sticky
    assert dev.get(out, 1, np.uint32).tolist() == [0]


CLUSTER_ATOMICS = (
    HEADER
    + """
.visible .entry cluster_sum(.param .u64 in, .param .u64 out, .param .u64 olds)
.explicitcluster
.reqnctapercluster 4, 1, 1
{
    .reg .pred %p<3>;
    .reg .b32 %r<16>;
    .reg .b64 %rd<12>;
    .shared .align 4 .u32 total;
    ld.param.u64 %rd1, [in];
    ld.param.u64 %rd2, [out];
    ld.param.u64 %rd11, [olds];
    mov.u32 %r1, %tid.x;
    setp.ne.s32 %p1, %r1, 0;
    @%p1 bra READY;
    st.shared.u32 [total], 0;
READY:
    barrier.cluster.arrive;
    barrier.cluster.wait;
    mov.u32 %r5, total;
    mapa.shared::cluster.u32 %r6, %r5, 0;
    mov.u32 %r7, %ntid.x;
    mov.u32 %r2, %ctaid.x;
    mad.lo.s32 %r8, %r2, %r7, %r1;
    mul.wide.u32 %rd6, %r8, 4;
    add.s64 %rd7, %rd1, %rd6;
    ld.global.u32 %r9, [%rd7];
    atom.shared::cluster.add.u32 %r10, [%r6], %r9;
    add.s64 %rd8, %rd11, %rd6;
    st.global.u32 [%rd8], %r10;
    barrier.cluster.arrive;
    barrier.cluster.wait;
    mov.u32 %r11, %cluster_ctarank;
    or.b32 %r12, %r11, %r1;
    setp.ne.s32 %p2, %r12, 0;
    @%p2 bra DONE;
    ld.shared.u32 %r13, [total];
    shr.u32 %r14, %r2, 2;
    mul.wide.u32 %rd9, %r14, 4;
    add.s64 %rd10, %rd2, %rd9;
    st.global.u32 [%rd10], %r13;
DONE:
    ret;
}
"""
)


def test_atom_shared_cluster_on_another_blocks_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    """``atom.shared::cluster`` through a ``mapa`` address: the 4 blocks of a cluster add into rank
    0's counter, in the batch's thread order, the same with the scans as with the rounds."""
    blocks, bt = 8, 64
    x = np.random.default_rng(3).integers(0, 1000, blocks * bt).astype(np.uint32)

    def run() -> tuple[list[int], npt.NDArray[Any]]:
        dev = ptx_device(CLUSTER_ATOMICS)
        out, olds = dev.zeros(blocks // 4, np.uint32), dev.zeros(blocks * bt, np.uint32)
        dev.run("cluster_sum", blocks, bt, dev.put(x), out, olds, cluster=(4, 1, 1))
        return dev.get(out, blocks // 4, np.uint32).tolist(), dev.get(olds, blocks * bt, np.uint32)

    sums, olds = run()
    per_cluster = x.reshape(2, -1)
    assert sums == per_cluster.sum(axis=1).tolist()
    assert np.array_equal(olds.reshape(2, -1), np.cumsum(per_cluster, axis=1) - per_cluster)
    monkeypatch.setattr(_isa_atomic, "SCANS", False)
    assert run()[0] == sums


SELF_FED = (
    HEADER
    + """
.visible .entry self_fed(.param .u64 out)
{
    .reg .pred %p;
    .reg .b32 %r<4>;
    .reg .b64 %rd<2>;
    .shared .align 4 .b32 tab;
    st.shared.u32 [tab], 0;
    mov.u32 %r1, 1;
    mov.u32 %r2, 3;
LOOP:
    atom.shared.add.u32 %r1, [tab], %r1;
    sub.u32 %r2, %r2, 1;
    setp.ne.u32 %p, %r2, 0;
    @%p bra LOOP;
    ld.shared.u32 %r3, [tab];
    ld.param.u64 %rd1, [out];
    st.global.u32 [%rd1], %r3;
    ret;
}
"""
)


def test_an_atomic_reading_its_own_result_in_a_loop_forms_it() -> None:
    """The result is read by the atomic itself, the next time round: it is no unread result."""
    dev = ptx_device(SELF_FED)
    out = dev.zeros(1, np.uint32)
    dev.run("self_fed", 1, 1, out)
    assert dev.get(out, 1, np.uint32).tolist() == [2]  # adds 1, then the old 0, then the old 1
