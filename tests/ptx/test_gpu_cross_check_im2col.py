"""On a lent GPU: TMA im2col loads of the corpus (``tests/kernels/ptx_tma_im2col.cu``) move the same bytes
on the GPU (the ``cuda`` backend: the driver's ``cuTensorMapEncodeIm2col`` map, the hardware's traversal)
as on the engine (sim's map, ``_isa_tma``'s traversal), from the same tensor and arguments — padding,
im2col offsets, the run into the next image, and the traversal strides, whose rule the engine takes from
the PTX ISA's text alone. Skips where no GPU is usable (the fixtures are ``test_gpu_cross_check``'s).
Not yet run: no GPU was lent while it was written
(``.venv/bin/python -m pytest tests/ptx/test_gpu_cross_check_im2col.py``)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

from .conftest import KERNELS
from .test_gpu_cross_check import Device, devices

pytestmark = pytest.mark.gpu

SOURCE = KERNELS / "ptx_tma_im2col.compute_90.ptx"
N, H, W, C = 2, 7, 9, 16  # u16 channels: 32-byte pixels
_ = devices  # the fixture, used by name

# (corners lower/upper W, H; traversal strides W, H; pixels; position c, w, h, n; im2col offsets W, H)
CASES: dict[
    str, tuple[tuple[int, int], tuple[int, int], tuple[int, int], int, tuple[int, ...], tuple[int, int]]
] = {
    "whole_images": ((0, 0), (0, 0), (1, 1), 126, (0, 0, 0, 0), (0, 0)),
    "padding": ((-1, -1), (-1, -1), (1, 1), 100, (0, -1, -1, 0), (0, 0)),
    "offsets": ((-1, -1), (-1, -1), (1, 1), 100, (0, -1, -1, 0), (2, 1)),
    "next_image": ((-1, -1), (-1, -1), (1, 1), 90, (0, 3, 5, 0), (1, 1)),
    "strides": ((-1, -1), (-1, -1), (2, 2), 64, (0, 3, 1, 0), (1, 1)),
    "off_lattice": ((-1, -1), (-1, -1), (3, 2), 64, (0, 0, 0, 0), (0, 0)),
}


def _load(device: Device, tensor: bytes, case: str) -> bytes:
    lower, upper, steps, pixels, at, offsets = CASES[case]
    module = device("module_load_data", inp=SOURCE.read_bytes() + b"\0")[0].module
    function = int(device("module_get_function", module=module, inp=b"im2col_load_4d")[0].function)
    base = int(device("mem_alloc", bytesize=len(tensor))[0].dptr)
    device("memcpy_htod", dst=base, stream=0, inp=tensor)
    nbytes = pixels * C * 2
    out = int(device("mem_alloc", bytesize=nbytes)[0].dptr)
    device("memcpy_htod", dst=out, stream=0, inp=bytes(nbytes))
    args: dict[str, Any] = dict(
        global_address=base,
        dim0=C,
        dim1=W,
        dim2=H,
        dim3=N,
        dim4=0,
        stride1=2 * C,
        stride2=2 * C * W,
        stride3=2 * C * W * H,
        stride4=0,
        data_type=1,
        rank=4,
        lower0=lower[0],
        lower1=lower[1],
        lower2=0,
        upper0=upper[0],
        upper1=upper[1],
        upper2=0,
        channels_per_pixel=C,
        pixels_per_column=pixels,
        elem_stride0=1,
        elem_stride1=steps[0],
        elem_stride2=steps[1],
        elem_stride3=1,
        elem_stride4=0,
        interleave=0,
        swizzle=0,
        l2_promotion=0,
        oob_fill=0,
    )
    _, raw = device("tensor_map_encode_im2col", out_cap=128, **args)
    params = raw[:128] + struct.pack("<Q7i", out, nbytes, *at, *offsets)
    device(
        "launch_kernel",
        function=function,
        grid_x=1,
        grid_y=1,
        grid_z=1,
        block_x=64,
        block_y=1,
        block_z=1,
        shared_mem_bytes=0,
        stream=0,
        inp=params,
    )
    device("ctx_synchronize")
    _, got = device("memcpy_dtoh", src=out, count=nbytes, stream=0, out_cap=nbytes)
    return got[:nbytes]


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_gpu_and_the_engine_load_the_same_pixels(devices: tuple[Device, Device], case: str) -> None:
    tensor = np.random.default_rng(13).integers(0, 1 << 16, (N, H, W, C)).astype(np.uint16).tobytes()
    gpu, sim = devices
    on_gpu, on_sim = _load(gpu, tensor, case), _load(sim, tensor, case)
    np.testing.assert_array_equal(
        np.frombuffer(on_sim, dtype=np.uint16).reshape(-1, C),
        np.frombuffer(on_gpu, dtype=np.uint16).reshape(-1, C),
        err_msg=case,
    )
