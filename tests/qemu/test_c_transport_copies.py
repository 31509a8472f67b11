"""The C transport's staged copies through a real mediator, driven through ctypes: pipelined chunks
both ways from buffers at any offset within a page, and a dtoh that fails part-way (its second chunk
still in flight) answers the failure and leaves the channel serving."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator._launcher import running_mediator
from protocol import CALLS_BY_NAME, CUresult, codec_for, decode_result

from ._support import CBuild

pytestmark = pytest.mark.timeout(180)

MIB = 1 << 20


class CallResult(ctypes.Structure):
    """``struct cuda_call_result`` (guest/c/vgpu_transport.h)."""

    _fields_ = [("status", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("seq", ctypes.c_uint32),
                ("out_len", ctypes.c_uint32), ("results", ctypes.c_uint8 * 48), ("call_id", ctypes.c_uint32)]


class Transport:
    """One process's channel, opened on a mediator's VM socket through ``libvgpu_transport.so``."""

    def __init__(self, library: Path, socket: Path) -> None:
        self.lib = ctypes.CDLL(str(library))
        self.lib.cuda_transport_last_error.restype = ctypes.c_char_p
        self.handle = ctypes.c_void_p()
        rc = self.lib.cuda_transport_init_socket(str(socket).encode(), ctypes.byref(self.handle))
        assert rc == 0, self.lib.cuda_transport_last_error()

    def call(self, name: str, **args: int) -> tuple[int, object]:
        spec = CALLS_BY_NAME[name]
        raw = codec_for(spec.args).encode(spec.args(**args))
        result = CallResult()
        status = self.lib.cuda_transport_call(self.handle, spec.call_id, raw, len(raw), None, ctypes.c_size_t(0),
                                              ctypes.byref(result), None, ctypes.c_size_t(0), None)
        decoded = decode_result(spec, bytes(result.results)) if status == 0 else None
        return status, decoded

    def htod(self, dst: int, buffer: ctypes.Array[ctypes.c_char], offset: int, length: int) -> int:
        return int(self.lib.cuda_transport_memcpy_htod(
            self.handle, ctypes.c_uint64(dst), ctypes.c_uint32(0), ctypes.byref(buffer, offset),
            ctypes.c_size_t(length), 0, None))

    def dtoh(self, buffer: ctypes.Array[ctypes.c_char], offset: int, src: int, length: int) -> int:
        return int(self.lib.cuda_transport_memcpy_dtoh(
            self.handle, ctypes.byref(buffer, offset), ctypes.c_uint64(src), ctypes.c_uint32(0),
            ctypes.c_size_t(length), None))

    def close(self) -> None:
        self.lib.cuda_transport_close(self.handle)


@pytest.fixture
def transport(c_build: CBuild, tmp_path: Path) -> Iterator[Transport]:
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        opened = Transport(c_build.shared_lib, mediator.vm_socket(1))
        try:
            assert opened.call("init", flags=0)[0] == 0
            yield opened
        finally:
            opened.close()


def test_pipelined_copies_are_byte_exact_from_any_offset_within_a_page(transport: Transport) -> None:
    size = 4 * MIB + 4321  # eight chunks of 576 KiB (sqrt(size * 64 KiB) in 64 KiB steps), the last short
    status, result = transport.call("mem_alloc", bytesize=size)
    assert status == 0
    dptr = int(result.dptr)  # type: ignore[attr-defined]
    data = os.urandom(size)
    for src_at, dst_at in ((0, 0), (17, 4093), (4095, 1)):  # the arena follows each buffer's page offset
        source = ctypes.create_string_buffer(data, size + src_at + 1)
        ctypes.memmove(ctypes.byref(source, src_at), data, size)
        assert transport.htod(dptr, source, src_at, size) == 0
        back = ctypes.create_string_buffer(size + dst_at)
        assert transport.dtoh(back, dst_at, dptr, size) == 0
        assert back.raw[dst_at:dst_at + size] == data, (src_at, dst_at)
    assert transport.call("mem_free", dptr=dptr)[0] == 0


def test_a_dtoh_that_fails_part_way_answers_the_failure_and_the_channel_goes_on(transport: Transport) -> None:
    status, result = transport.call("mem_alloc", bytesize=4 * MIB)
    assert status == 0
    dptr = int(result.dptr)  # type: ignore[attr-defined]
    data = os.urandom(4 * MIB)
    source = ctypes.create_string_buffer(data, 4 * MIB)
    assert transport.htod(dptr, source, 0, 4 * MIB) == 0
    # 6 MiB from a 4 MiB allocation: 640 KiB chunks, the seventh (across the end) and later fail while two
    # are in flight; chunks are at most 1 MiB, so those before the failure hold at least the first 3 MiB
    back = ctypes.create_string_buffer(6 * MIB)
    assert transport.dtoh(back, 0, dptr, 6 * MIB) == CUresult.CUDA_ERROR_INVALID_VALUE
    assert back.raw[:3 * MIB] == data[:3 * MIB], "the chunks before the failure were copied out"
    again = ctypes.create_string_buffer(4 * MIB)
    assert transport.dtoh(again, 0, dptr, 4 * MIB) == 0, "nothing of the failed copy is left in the rings"
    assert again.raw == data
    assert transport.call("mem_free", dptr=dptr)[0] == 0
