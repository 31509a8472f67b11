"""The PTX engine's device copies and shared-memory atomics, each beside a NumPy floor in the same run.

    python -m benchmarks.ptx_memory                       # both, best of 3 each
    python -m benchmarks.ptx_memory --kernel copy --megabytes 50 --repeat 5

* ``copy``: alignedTypes' shape -- 64 blocks of 256 threads copy ``--megabytes`` through a grid-stride
  loop, one element a thread an iteration: ``u32`` (``ld``/``st.global.u32``) and ``v4`` (16-byte
  ``ld``/``st.global.v4.u32``); the floor is ``np.copyto`` of the same bytes. Prints GB/s of both.
* ``histogram``: histogram256's shape -- 240 blocks of 192 threads, each warp counting the bytes of a
  grid-stride loop over ``--megabytes`` of random words into its own 256-bin histogram in shared
  memory with ``atom.shared.add.u32`` (whose result nothing reads), then the block's sums to global
  memory; the floor is ``np.bincount`` of the bytes. Results are checked against the floor's.
"""

from __future__ import annotations

import argparse
import functools
import struct
import time
from collections.abc import Sequence

import numpy as np

from executor._kernels import LaunchDims
from executor._sim_memory import DeviceMemory
from executor.ptx import LoadedModule, launch

from .ptx_engine import HEADER, _best, _put


def _copy_kernel(name: str, width: int) -> str:
    """``out[i] = in[i]`` over a grid-stride loop, one ``width``-byte element (u32 or v4.u32) a thread."""
    value = "%r8" if width == 4 else "{%r8, %r9, %r10, %r11}"
    kind = ".u32" if width == 4 else ".v4.u32"
    return f"""
.visible .entry {name}(.param .u64 out, .param .u64 in, .param .u32 n) {{
    .reg .pred %p<2>; .reg .b32 %r<14>; .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [out];
    ld.param.u64 %rd2, [in];
    ld.param.u32 %r1, [n];
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mov.u32 %r4, %tid.x;
    mad.lo.s32 %r5, %r2, %r3, %r4;
    mov.u32 %r6, %nctaid.x;
    mul.lo.s32 %r7, %r3, %r6;
    setp.ge.u32 %p1, %r5, %r1;
    @%p1 bra DONE;
LOOP:
    mul.wide.u32 %rd3, %r5, {width};
    add.s64 %rd4, %rd2, %rd3;
    ld.global{kind} {value}, [%rd4];
    add.s64 %rd5, %rd1, %rd3;
    st.global{kind} [%rd5], {value};
    add.s32 %r5, %r5, %r7;
    setp.lt.u32 %p1, %r5, %r1;
    @%p1 bra LOOP;
DONE:
    ret;
}}
"""


COPY = HEADER + _copy_kernel("copy_u32", 4) + _copy_kernel("copy_v4", 16)

HISTOGRAM = (
    HEADER
    + """
.visible .entry histogram(.param .u64 partial, .param .u64 data, .param .u32 n) {
    .reg .pred %p<3>; .reg .b32 %r<40>; .reg .b64 %rd<8>;
    .shared .align 4 .b8 hist[6144];
    ld.param.u64 %rd1, [partial];
    ld.param.u64 %rd2, [data];
    ld.param.u32 %r1, [n];
    mov.u32 %r2, %tid.x;
    mov.u32 %r3, %ctaid.x;
    mov.u32 %r4, %ntid.x;
    mov.u32 %r5, %nctaid.x;
    mov.u32 %r6, hist;
    shl.b32 %r7, %r2, 2;
    add.s32 %r8, %r6, %r7;
    mov.u32 %r9, 0;
    st.shared.u32 [%r8], %r9;
    st.shared.u32 [%r8+768], %r9;
    st.shared.u32 [%r8+1536], %r9;
    st.shared.u32 [%r8+2304], %r9;
    st.shared.u32 [%r8+3072], %r9;
    st.shared.u32 [%r8+3840], %r9;
    st.shared.u32 [%r8+4608], %r9;
    st.shared.u32 [%r8+5376], %r9;
    bar.sync 0;
    shr.u32 %r10, %r2, 5;
    shl.b32 %r11, %r10, 10;
    add.s32 %r12, %r6, %r11;
    mad.lo.s32 %r13, %r3, %r4, %r2;
    mul.lo.s32 %r14, %r4, %r5;
    setp.ge.u32 %p1, %r13, %r1;
    @%p1 bra MERGE;
LOOP:
    mul.wide.u32 %rd3, %r13, 4;
    add.s64 %rd4, %rd2, %rd3;
    ld.global.u32 %r15, [%rd4];
    and.b32 %r16, %r15, 255;
    shl.b32 %r17, %r16, 2;
    add.s32 %r18, %r12, %r17;
    atom.shared.add.u32 %r19, [%r18], 1;
    bfe.u32 %r20, %r15, 8, 8;
    shl.b32 %r21, %r20, 2;
    add.s32 %r22, %r12, %r21;
    atom.shared.add.u32 %r23, [%r22], 1;
    bfe.u32 %r24, %r15, 16, 8;
    shl.b32 %r25, %r24, 2;
    add.s32 %r26, %r12, %r25;
    atom.shared.add.u32 %r27, [%r26], 1;
    shr.u32 %r28, %r15, 24;
    shl.b32 %r29, %r28, 2;
    add.s32 %r30, %r12, %r29;
    atom.shared.add.u32 %r31, [%r30], 1;
    add.s32 %r13, %r13, %r14;
    setp.lt.u32 %p1, %r13, %r1;
    @%p1 bra LOOP;
MERGE:
    bar.sync 0;
    mov.u32 %r36, %r2;
BINS:
    setp.ge.u32 %p2, %r36, 256;
    @%p2 bra DONE;
    shl.b32 %r37, %r36, 2;
    add.s32 %r38, %r6, %r37;
    ld.shared.u32 %r32, [%r38];
    ld.shared.u32 %r33, [%r38+1024];
    add.s32 %r32, %r32, %r33;
    ld.shared.u32 %r33, [%r38+2048];
    add.s32 %r32, %r32, %r33;
    ld.shared.u32 %r33, [%r38+3072];
    add.s32 %r32, %r32, %r33;
    ld.shared.u32 %r33, [%r38+4096];
    add.s32 %r32, %r32, %r33;
    ld.shared.u32 %r33, [%r38+5120];
    add.s32 %r32, %r32, %r33;
    shl.b32 %r34, %r3, 8;
    add.s32 %r35, %r34, %r36;
    mul.wide.u32 %rd5, %r35, 4;
    add.s64 %rd6, %rd1, %rd5;
    st.global.u32 [%rd6], %r32;
    add.s32 %r36, %r36, %r4;
    bra BINS;
DONE:
    ret;
}
"""
)


def copy(megabytes: float, repeat: int) -> list[str]:
    module = LoadedModule(COPY)
    mem = DeviceMemory(1 << 32)
    nbytes = int(megabytes * 1e6) // 256 * 256
    data = np.random.default_rng(0).integers(0, 256, nbytes, dtype=np.uint8)
    src, dst = _put(mem, data), mem.alloc(nbytes)
    floor = _best(repeat, lambda: np.copyto(np.empty_like(data), data))
    lines = []
    for name, width in (("copy_u32", 4), ("copy_v4", 16)):
        params = struct.pack("<QQI4x", dst, src, nbytes // width)
        dims = LaunchDims((64, 1, 1), (256, 1, 1))
        seconds = _best(repeat, functools.partial(launch, module, name, mem, dims, params, {}))
        assert np.array_equal(mem.read(dst, nbytes), data), name
        lines.append(
            f"{name:10s} {nbytes / 1e6:.0f} MB: engine {nbytes / seconds / 1e9:6.2f} GB/s "
            f"({seconds * 1e3:.0f} ms), np.copyto floor {nbytes / floor / 1e9:6.2f} GB/s "
            f"(the engine {seconds / floor:.0f}x slower)"
        )
    return lines


def histogram(megabytes: float, repeat: int) -> list[str]:
    module = LoadedModule(HISTOGRAM)
    mem = DeviceMemory(1 << 32)
    nbytes = int(megabytes * 1e6) // 4 * 4
    data = np.random.default_rng(1).integers(0, 256, nbytes, dtype=np.uint8)
    src, partial = _put(mem, data), mem.alloc(240 * 256 * 4)
    params = struct.pack("<QQI4x", partial, src, nbytes // 4)
    dims = LaunchDims((240, 1, 1), (192, 1, 1))
    seconds = _best(repeat, lambda: launch(module, "histogram", mem, dims, params, {}))
    floor = _best(repeat, lambda: np.bincount(data, minlength=256))
    got = (
        np.frombuffer(mem.read(partial, 240 * 256 * 4).tobytes(), dtype=np.uint32)
        .reshape(240, 256)
        .sum(axis=0)
    )
    assert np.array_equal(got, np.bincount(data, minlength=256)), "histogram"
    return [
        f"histogram  {nbytes / 1e6:.0f} MB: engine {nbytes / seconds / 1e6:7.1f} MB/s "
        f"({seconds * 1e3:.0f} ms), np.bincount floor {nbytes / floor / 1e6:7.1f} MB/s "
        f"(the engine {seconds / floor:.0f}x slower)"
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", choices=("all", "copy", "histogram"), default="all")
    parser.add_argument("--megabytes", type=float, default=16.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.kernel in ("all", "copy"):
        print("\n".join(copy(args.megabytes, args.repeat)), flush=True)
    if args.kernel in ("all", "histogram"):
        print("\n".join(histogram(args.megabytes, args.repeat)), flush=True)
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
