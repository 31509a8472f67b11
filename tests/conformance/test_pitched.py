"""The pitched calls of 0x00C8-0x00CB through the rings on each backend: 2D memsets (the rows set, the
bytes between them untouched), box copies between pinned memory and pitched device memory, an im2col
tensor map, and what CUDA refuses."""

from __future__ import annotations

import numpy as np

from guest import GuestClient, host_alloc, host_free
from protocol import CUresult
from tests.executor._tensor_maps import IM2COL_ARGS, IM2COL_EXTENT

from ._util import status_of

PITCH, ROWS = 512, 24


def test_a_2d_memset_sets_the_rows_and_leaves_the_gaps(gpu: GuestClient) -> None:
    ptr = gpu.mem_alloc(PITCH * ROWS)
    gpu.memset_d8(ptr, 0x11, PITCH * ROWS)
    gpu.checked(
        "memset_2d",
        gpu.args(
            "memset_2d", dst=ptr, pitch=PITCH, value=0xBEEF, width=100, height=ROWS, element_bytes=2, stream=0
        ),
    )
    gpu.checked(
        "memset_2d",
        gpu.args(
            "memset_2d",
            dst=ptr + 300,
            pitch=PITCH,
            value=0xDEADBEEF,
            width=10,
            height=ROWS,
            element_bytes=4,
            stream=0,
        ),
        asynchronous=True,
    )
    gpu.checked("ctx_synchronize")
    rows = np.frombuffer(gpu.memcpy_dtoh(ptr, PITCH * ROWS), dtype=np.uint8).reshape(ROWS, PITCH)
    assert (rows[:, :200].copy().view("<u2") == 0xBEEF).all()
    assert (rows[:, 300:340].copy().view("<u4") == 0xDEADBEEF).all()
    assert (rows[:, 200:300] == 0x11).all() and (rows[:, 340:] == 0x11).all()
    gpu.mem_free(ptr)


def test_hostile_2d_memsets_are_invalid_value(gpu: GuestClient) -> None:
    ptr = gpu.mem_alloc(PITCH * ROWS)
    bad = [
        dict(pitch=64, width=65, height=2, element_bytes=1),  # a row wider than its pitch
        dict(pitch=PITCH, width=1, height=ROWS + 1, element_bytes=1),  # the last row past the block
        dict(pitch=PITCH, width=4, height=2, element_bytes=3),
        dict(pitch=1 << 40, width=4, height=1 << 30, element_bytes=1),
    ]  # a span past 2^64
    for fields in bad:
        args = gpu.args("memset_2d", dst=ptr, value=0, stream=0, **fields)
        assert status_of(gpu, "memset_2d", args) == CUresult.CUDA_ERROR_INVALID_VALUE, fields
    gpu.mem_free(ptr)


def test_pinned_rows_go_to_pitched_memory_and_back_as_boxes(gpu: GuestClient) -> None:
    src, back = host_alloc(gpu, 4096 * 8), host_alloc(gpu, 4096 * 8)
    data = np.random.default_rng(4).integers(0, 256, (ROWS, 600), dtype=np.uint8)
    src.view[: data.size] = data.tobytes()
    back.view[:] = b"\xa5" * back.size
    ptr = gpu.mem_alloc(1024 * ROWS)
    box = dict(
        array=0,
        stream=0,
        x=16,
        y=0,
        z=0,
        device=ptr,
        pitch=1024,
        layout_height=ROWS,
        width_bytes=500,
        height=ROWS,
        depth=1,
        host_x=50,
        host_y=0,
        host_z=0,
        host_layout_height=ROWS,
    )
    gpu.checked(
        "memcpy_3d_htod_pinned", gpu.args("memcpy_3d_htod_pinned", offset=src.offset, host_pitch=600, **box)
    )
    gpu.checked(
        "memcpy_3d_dtoh_pinned",
        gpu.args("memcpy_3d_dtoh_pinned", offset=back.offset, host_pitch=512, **box | {"host_x": 0}),
    )
    got = np.frombuffer(bytes(back.view[: 512 * ROWS]), dtype=np.uint8).reshape(ROWS, 512)
    assert np.array_equal(got[:, :500], data[:, 50:550]) and (got[:, 500:] == 0xA5).all()
    past = gpu.args("memcpy_3d_htod_pinned", offset=src.offset + src.size - 100, host_pitch=600, **box)
    assert status_of(gpu, "memcpy_3d_htod_pinned", past) == CUresult.CUDA_ERROR_INVALID_VALUE
    gpu.mem_free(ptr)
    host_free(gpu, src)
    host_free(gpu, back)


def test_an_im2col_tensor_map(gpu: GuestClient) -> None:
    ptr = gpu.mem_alloc(IM2COL_EXTENT)
    fields = IM2COL_ARGS | dict(global_address=ptr, pixels_per_column=128, l2_promotion=0, oob_fill=0)
    made = gpu.checked(
        "tensor_map_encode_im2col", gpu.args("tensor_map_encode_im2col", **fields), out_cap=128
    )
    assert len(made.out) == 128
    for change in ({"lower0": -129}, {"pixels_per_column": 1025}, {"channels_per_pixel": 4}):
        args = gpu.args("tensor_map_encode_im2col", **fields | change)
        assert (
            status_of(gpu, "tensor_map_encode_im2col", args, out_cap=128) == CUresult.CUDA_ERROR_INVALID_VALUE
        )
    gpu.mem_free(ptr)
