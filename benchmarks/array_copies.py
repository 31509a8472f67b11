"""Copies with a CUDA array as a side on ``sim`` (protocol 0x00B2-0x00B4, in process: the worker's handler,
no transport), in GB/s beside a NumPy floor moving the same bytes in the same shape in the same run.

    python -m benchmarks.array_copies              # best of 5
    python -m benchmarks.array_copies --repeat 9

Cases: a packed host box into and out of a 2D float4 array (whole 16 KiB rows: one contiguous run), the
same array into pitched device memory (rows apart: a strided copy), and a narrow box of 16-byte rows
(the worst shape per byte). The floor of each is ``numpy.copyto`` between arrays of that shape and
strides, so the ratio is what the handler's checks, views and Python cost on top of the copy itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np

from executor import CallIO
from executor._sim import SimExecutor
from protocol import CALLS_BY_NAME
from protocol.models import ArrayCreateArgs

from .ptx_engine import _best

WIDTH, HEIGHT = 1024, 256  # float4 texels: 16 KiB rows, 4 MiB


def _call(ex: SimExecutor, name: str, inp: memoryview, out: memoryview, **args: Any) -> None:
    spec = CALLS_BY_NAME[name]
    ex.execute(spec, spec.args(**args), CallIO(inp, out))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.array_copies",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args(argv)
    ex = SimExecutor()
    row = WIDTH * 16
    created = ArrayCreateArgs(width=WIDTH, height=HEIGHT, depth=0, format=0x20, channels=4, flags=0)
    array = ex.array_create(created, CallIO(memoryview(b""), memoryview(bytearray()))).array
    pitch = row + 512
    dev = ex.memory.alloc(pitch * HEIGHT)
    host = np.random.default_rng(0).integers(0, 256, row * HEIGHT, dtype=np.uint8)
    out = bytearray(row * HEIGHT)
    payload = memoryview(host.tobytes())
    none = memoryview(b"")
    box = dict(array=array, stream=0, x=0, y=0, z=0, device=0, pitch=0, layout_height=0, depth=1)
    to_device = dict(src_array=array, dst_array=0, stream=0, src_x=0, src_y=0, src_z=0, src_device=0,
                     src_pitch=0, src_layout_height=0, dst_x=0, dst_y=0, dst_z=0, dst_device=dev,
                     dst_pitch=pitch, dst_layout_height=HEIGHT, depth=1)
    # the floors: the same bytes, shapes and strides, numpy.copyto alone
    packed, dense = host.reshape(HEIGHT, row), np.zeros((HEIGHT, row), np.uint8)
    strided = np.zeros((HEIGHT, pitch), np.uint8)[:, :row]
    floor_out = np.zeros((HEIGHT, row), np.uint8)
    cases = [
        ("host to array, 4 MiB of 16 KiB rows", row * HEIGHT,
         lambda: _call(ex, "memcpy_3d_htod", payload, none, **box, width_bytes=row, height=HEIGHT),
         lambda: np.copyto(dense, packed)),
        ("array to host, 4 MiB", row * HEIGHT,
         lambda: _call(ex, "memcpy_3d_dtoh", none, memoryview(out), **box, width_bytes=row, height=HEIGHT),
         lambda: np.copyto(floor_out, packed)),
        ("array to pitched device memory, 4 MiB", row * HEIGHT,
         lambda: _call(ex, "memcpy_3d", none, none, **to_device, width_bytes=row, height=HEIGHT),
         lambda: np.copyto(strided, dense)),
        ("array to pitched device memory, 256 rows of 16 bytes", 16 * HEIGHT,
         lambda: _call(ex, "memcpy_3d", none, none, **to_device, width_bytes=16, height=HEIGHT),
         lambda: np.copyto(strided[:, :16], dense[:, :16])),
    ]
    print("| copy | handler GB/s | floor GB/s (numpy.copyto, same shape) | handler / floor |")
    print("| --- | ---: | ---: | ---: |")
    for name, nbytes, handler, floor in cases:
        t, f = _best(opts.repeat, handler), _best(opts.repeat, floor)
        print(f"| {name} | {nbytes / t / 1e9:.2f} | {nbytes / f / 1e9:.2f} | {f / t:.0%} |")
    back = np.frombuffer(out, np.uint8)
    assert np.array_equal(back, host), "the array did not give back what it was given"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
