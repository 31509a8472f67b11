"""The guest's C transport (``libvgpu_transport.so``, guest/c) driven through ctypes: one process's
channel on a mediator's VM socket, its generic call and its staged copies (tests/qemu, copy_phases)."""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

from protocol import CALLS_BY_NAME, codec_for, decode_result

__all__ = ["CallResult", "Transport", "build"]

GUEST_C = Path(__file__).resolve().parents[1] / "guest" / "c"


def build(directory: Path) -> Path:
    """``make`` guest/c into ``directory``; the shared library's path."""
    subprocess.run(["make", "-s", "-C", str(GUEST_C), f"BUILD={directory}"], check=True, capture_output=True,
                   timeout=300)
    return directory / "libvgpu_transport.so"


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
        if rc:
            raise RuntimeError(f"cuda_transport_init_socket: {self.lib.cuda_transport_last_error()!r}")

    def call(self, name: str, **args: int) -> tuple[int, object]:
        spec = CALLS_BY_NAME[name]
        raw = codec_for(spec.args).encode(spec.args(**args))
        result = CallResult()
        status = self.lib.cuda_transport_call(self.handle, spec.call_id, raw, len(raw), None,
                                              ctypes.c_size_t(0), ctypes.byref(result), None,
                                              ctypes.c_size_t(0), None)
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
