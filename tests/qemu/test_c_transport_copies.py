"""The C transport's staged copies through a real mediator, driven through ctypes: pipelined chunks
both ways from buffers at any offset within a page, and a dtoh that fails part-way (its second chunk
still in flight) answers the failure and leaves the channel serving."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks._c_transport import Transport
from mediator._launcher import running_mediator
from protocol import CUresult

from ._support import CBuild

pytestmark = pytest.mark.timeout(180)

MIB = 1 << 20


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
    size = 4 * MIB + 4321  # 11 chunks of 384 KiB (sqrt(size * 32 KiB) in 32 KiB steps), the last short
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
    # 6 MiB from a 4 MiB allocation: 448 KiB chunks, the tenth (across the end) and later fail while two
    # are in flight; chunks are at most 1 MiB, so those before the failure hold at least the first 3 MiB
    back = ctypes.create_string_buffer(6 * MIB)
    assert transport.dtoh(back, 0, dptr, 6 * MIB) == CUresult.CUDA_ERROR_INVALID_VALUE
    assert back.raw[:3 * MIB] == data[:3 * MIB], "the chunks before the failure were copied out"
    again = ctypes.create_string_buffer(4 * MIB)
    assert transport.dtoh(again, 0, dptr, 4 * MIB) == 0, "nothing of the failed copy is left in the rings"
    assert again.raw == data
    assert transport.call("mem_free", dptr=dptr)[0] == 0
