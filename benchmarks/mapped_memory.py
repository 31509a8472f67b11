"""Mapped pinned memory on ``sim`` (protocol ``mem_host_alias``, in process: the worker's handlers, no
transport): what a kernel pays to work on the region's pinned bytes in place, beside the same kernel on
device memory (the floor: the engine's own work) and the two pinned copies a program without mapped
memory adds around it; and what mapping adds to a pinned allocation, beside a device allocation.

    python -m benchmarks.mapped_memory              # best of 5
    python -m benchmarks.mapped_memory --repeat 9
"""

from __future__ import annotations

import argparse
import mmap
import time
from collections.abc import Callable, Sequence
from typing import Any

from executor import CallIO, PinnedArea, VmShare
from executor._sim import SimExecutor
from protocol import CALLS_BY_NAME

WORDS = 1 << 18  # 1 MiB of u32
BLOCK = 256
#: x[i] += 1 over n words, one thread a word
PTX = b"""
.version 8.0
.target sm_80
.address_size 64
.visible .entry inc(.param .u64 p, .param .u32 n)
{
  .reg .pred %p<2>;
  .reg .b32 %r<6>;
  .reg .b64 %rd<4>;
  ld.param.u64 %rd1, [p];
  ld.param.u32 %r1, [n];
  mov.u32 %r2, %tid.x;
  mov.u32 %r4, %ctaid.x;
  mov.u32 %r5, %ntid.x;
  mad.lo.u32 %r2, %r4, %r5, %r2;
  setp.ge.u32 %p1, %r2, %r1;
  @%p1 bra DONE;
  cvta.to.global.u64 %rd2, %rd1;
  mul.wide.u32 %rd3, %r2, 4;
  add.s64 %rd2, %rd2, %rd3;
  ld.global.u32 %r3, [%rd2];
  add.u32 %r3, %r3, 1;
  st.global.u32 [%rd2], %r3;
DONE:
  ret;
}
\0"""


def _best(repeat: int, *fns: Callable[[], object]) -> list[float]:
    """The best time of each of ``fns``, run in turn ``repeat`` times (interleaved: a loaded machine's
    slow moments fall on all of them alike)."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def _call(ex: SimExecutor, name: str, inp: bytes = b"", **args: Any) -> Any:
    spec = CALLS_BY_NAME[name]
    return ex.execute(spec, spec.args(**args), CallIO(memoryview(inp), memoryview(bytearray(0))))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mapped_memory",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args(argv)
    share = VmShare("sim")
    share.pinned = PinnedArea(memoryview(mmap.mmap(-1, 16 << 20)))  # page-aligned, as the region's mapping is
    ex = share.create_context()
    assert isinstance(ex, SimExecutor)
    nbytes = 4 * WORDS
    module = _call(ex, "module_load_data", PTX).module
    inc = _call(ex, "module_get_function", b"inc", module=module).function
    dev = _call(ex, "mem_alloc", bytesize=nbytes).dptr
    offset = _call(ex, "mem_host_alloc", bytesize=nbytes, flags=2).offset
    mapped = _call(ex, "mem_host_alias", offset=offset, address=0).dptr

    def launch(ptr: int) -> Callable[[], object]:
        params = ptr.to_bytes(8, "little") + WORDS.to_bytes(4, "little")
        grid = {"grid_x": WORDS // BLOCK, "grid_y": 1, "grid_z": 1,
                "block_x": BLOCK, "block_y": 1, "block_z": 1}
        return lambda: _call(ex, "launch_kernel", params, function=inc, shared_mem_bytes=0, stream=0, **grid)

    def copies() -> None:
        _call(ex, "memcpy_htod_pinned", dst=dev, offset=offset, count=nbytes, stream=0)
        _call(ex, "memcpy_dtoh_pinned", src=dev, offset=offset, count=nbytes, stream=0)

    def pinned_pair() -> None:
        at = _call(ex, "mem_host_alloc", bytesize=1 << 16, flags=0).offset
        _call(ex, "mem_host_alias", offset=at, address=0)
        _call(ex, "mem_free_host", offset=at)

    def device_pair() -> None:
        _call(ex, "mem_free", dptr=_call(ex, "mem_alloc", bytesize=1 << 16).dptr)

    on_device, in_place, both_copies = _best(opts.repeat, launch(dev), launch(mapped), copies)
    print(f"kernel x[i] += 1 over {nbytes >> 20} MiB ({WORDS // BLOCK} blocks of {BLOCK}), "
          f"best of {opts.repeat}:")
    print(f"  on device memory (floor)        {on_device * 1e3:8.2f} ms")
    print(f"  on mapped pinned memory         {in_place * 1e3:8.2f} ms   {in_place / on_device:5.2f}x "
          "the floor")
    print(f"  the copies it saves (HtoD+DtoH) {both_copies * 1e3:8.2f} ms")
    loops = 200
    def repeated(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(loops):
                fn()
        return run

    device, pinned = (t / loops for t in _best(opts.repeat, repeated(device_pair), repeated(pinned_pair)))
    print("64 KiB allocations, handler time per allocate-and-free:")
    print(f"  cuMemAlloc + cuMemFree (floor)                       {device * 1e6:7.1f} us")
    print(f"  mem_host_alloc + mem_host_alias + mem_free_host     {pinned * 1e6:7.1f} us")
    share.close_context(ex)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
