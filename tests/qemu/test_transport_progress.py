"""Both guests' waits give up only when the host makes no progress on their channel for the timeout,
as a GPU's synchronize waits as long as the queued work takes: a queue whose work in all is longer than
the timeout, served one short step at a time, completes; a host that stops serving times out.

The host is :class:`SlowHost` over the fake ivshmem server (no mediator: each step's length is the
test's). The C transport runs in this process through ctypes (``VGPU_TRANSPORT_TIMEOUT_MS``), the Python
client with its ``timeout``.
"""

from __future__ import annotations

import ctypes as ct
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from guest import GuestClient
from protocol import CALLS_BY_NAME, ChannelField

from ._support import CBuild, FakeIvshmemServer, SlowHost

pytestmark = pytest.mark.timeout(120)

TIMEOUT_S = 0.4
STEP_S = 0.1
QUEUED = 12  # 11 posted entries and the synchronous call behind them: 1.2 s of the host's work in all
E_TIMEOUT = -6  # CUDA_TRANSPORT_E_TIMEOUT
_NOP = CALLS_BY_NAME["nop"].call_id
_LAUNCH = CALLS_BY_NAME["launch_kernel"].call_id


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FakeIvshmemServer]:
    server = FakeIvshmemServer(tmp_path / "fake.sock")
    yield server
    server.close()


class TransportStats(ct.Structure):
    """``struct cuda_transport_stats``"""

    _fields_ = [(name, ct.c_uint64) for name in ("submitted", "posted", "kicks", "sleeps", "async_errors",
                                                 "bytes_htod", "bytes_dtoh")]


def c_queue(c_build: CBuild, path: Path, monkeypatch: pytest.MonkeyPatch,
            posted: int = QUEUED - 1, stats: TransportStats | None = None) -> tuple[int, float, str]:
    """Post ``posted`` entries and wait for a synchronous call behind them, through the C transport;
    returns its status, how long the call waited and the transport's last error (and fills ``stats``)."""
    monkeypatch.setenv("VGPU_TRANSPORT_TIMEOUT_MS", str(int(TIMEOUT_S * 1000)))
    lib = ct.CDLL(str(c_build.shared_lib))
    lib.cuda_transport_last_error.restype = ct.c_char_p
    transport = ct.c_void_p()
    assert lib.cuda_transport_init_socket(str(path).encode(), ct.byref(transport)) == 0, \
        lib.cuda_transport_last_error()
    try:
        for _ in range(posted):
            assert lib.cuda_transport_post(transport, _LAUNCH, None, 0, None, 0) == 0
        start = time.monotonic()
        rc = lib.cuda_transport_call(transport, _NOP, None, 0, None, 0, None, None, 0, None)
        waited = time.monotonic() - start
        if stats is not None:
            lib.cuda_transport_get_stats(transport, ct.byref(stats))
        return rc, waited, lib.cuda_transport_last_error().decode()
    finally:
        lib.cuda_transport_close(transport)


def py_queue(path: Path) -> float:
    """The same through the Python client; returns how long the synchronous call waited."""
    with GuestClient.connect(path, timeout=TIMEOUT_S) as gpu:
        args = gpu.args("memset_d8", dst=0, value=0, count=1, stream=0)
        for _ in range(QUEUED - 1):
            gpu.call("memset_d8", args, asynchronous=True)
        start = time.monotonic()
        try:
            gpu.checked("nop")
        finally:
            waited = time.monotonic() - start
    return waited


def test_the_c_transport_waits_while_the_host_works_through_a_long_queue(
    c_build: CBuild, server: FakeIvshmemServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = SlowHost(server, STEP_S)
    try:
        rc, waited, error = c_queue(c_build, tmp_path / "fake.sock", monkeypatch)
    finally:
        host.close()
    assert rc == 0, error
    assert host.served == QUEUED
    assert waited > 2 * TIMEOUT_S  # longer than the timeout in all: only progress kept it waiting


def test_the_c_transport_times_out_when_the_host_stops_making_progress(
    c_build: CBuild, server: FakeIvshmemServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = SlowHost(server, STEP_S, serve=3)
    try:
        rc, waited, error = c_queue(c_build, tmp_path / "fake.sock", monkeypatch)
    finally:
        host.close()
    assert rc == E_TIMEOUT
    assert "made no progress on channel 0 for 400 ms" in error, error
    # three steps of progress, then the timeout counted from the last one
    assert 3 * STEP_S + TIMEOUT_S <= waited < 3 * STEP_S + TIMEOUT_S + 5


def test_the_c_transport_waits_out_one_call_longer_than_the_timeout_while_the_host_shows_it_works(
    c_build: CBuild, server: FakeIvshmemServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = SlowHost(server, 3 * TIMEOUT_S, busy=STEP_S)  # one entry of 1.2 s, host_busy every 0.1 s
    try:
        rc, waited, error = c_queue(c_build, tmp_path / "fake.sock", monkeypatch, posted=0)
    finally:
        host.close()
    assert rc == 0, error
    assert waited > 2 * TIMEOUT_S


@pytest.mark.parametrize(("step", "posted", "sleeps"), [(0.05, QUEUED - 1, False), (0.35, 1, True)],
                         ids=["entries-shorter-than-the-spin", "entries-longer-than-the-spin"])
def test_the_c_transport_spins_on_while_the_host_consumes_its_queue_and_sleeps_once_it_stops(
    c_build: CBuild, server: FakeIvshmemServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    step: float, posted: int, sleeps: bool,
) -> None:
    """Past its spin time a wait goes on spinning (yielding) while sq_head keeps moving within each spin
    time: waking a sleeping vCPU costs more than a batch of copies' whole overhead (#19). A host slower
    than the spin time still puts it to sleep between entries."""
    monkeypatch.setenv("VGPU_TRANSPORT_SPIN_US", "250000")
    host = SlowHost(server, step)
    stats = TransportStats()
    try:
        rc, waited, error = c_queue(c_build, tmp_path / "fake.sock", monkeypatch, posted=posted, stats=stats)
    finally:
        host.close()
    assert rc == 0, error
    assert waited > 0.3  # past the spin time in both
    assert (stats.sleeps > 0) == sleeps, stats.sleeps


def test_the_python_client_waits_while_the_host_works_through_a_long_queue(
    server: FakeIvshmemServer, tmp_path: Path,
) -> None:
    host = SlowHost(server, STEP_S)
    try:
        waited = py_queue(tmp_path / "fake.sock")
    finally:
        host.close()
    assert host.served == QUEUED
    assert waited > 2 * TIMEOUT_S


def test_the_python_client_times_out_when_the_host_stops_making_progress(
    server: FakeIvshmemServer, tmp_path: Path,
) -> None:
    host = SlowHost(server, STEP_S, serve=3)
    start = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match=f"made no progress on channel 0 for {TIMEOUT_S} s"):
            py_queue(tmp_path / "fake.sock")
    finally:
        host.close()
    assert 3 * STEP_S + TIMEOUT_S <= time.monotonic() - start < 3 * STEP_S + TIMEOUT_S + 5


def _rung(fd: int) -> int:
    """How many times the doorbell eventfd was written since the last look (0: not at all)."""
    try:
        return os.eventfd_read(fd)
    except BlockingIOError:
        return 0


def test_the_c_transport_kicks_a_sleeping_host_once_until_its_submission_head_moves(
    c_build: CBuild, server: FakeIvshmemServer, tmp_path: Path,
) -> None:
    """A host that announced a sleep is kicked once for what is queued, not once per entry: while sq_head
    stands where it stood at that kick, the kick is still pending for the host (#19: a guest submitting
    while its worker woke kicked ~110 times a wake-up). Once sq_head has moved the host may be asleep again:
    the next entry kicks again; a host awake is never kicked."""
    lib = ct.CDLL(str(c_build.shared_lib))
    lib.cuda_transport_last_error.restype = ct.c_char_p
    transport = ct.c_void_p()
    assert lib.cuda_transport_init_socket(str(tmp_path / "fake.sock").encode(), ct.byref(transport)) == 0, \
        lib.cuda_transport_last_error()
    words = server.channel(0).cast("I")
    stats = TransportStats()
    try:
        _rung(server.host_fd)  # the open's
        words[ChannelField.HOST_NEED_WAKEUP >> 2] = 1
        for _ in range(8):
            assert lib.cuda_transport_post(transport, _LAUNCH, None, 0, None, 0) == 0
        assert _rung(server.host_fd) == 1
        words[ChannelField.SQ_HEAD >> 2] = words[ChannelField.SQ_TAIL >> 2]  # served them all, asleep again
        for _ in range(3):
            assert lib.cuda_transport_post(transport, _LAUNCH, None, 0, None, 0) == 0
        assert _rung(server.host_fd) == 1
        words[ChannelField.HOST_NEED_WAKEUP >> 2] = 0  # awake
        assert lib.cuda_transport_post(transport, _LAUNCH, None, 0, None, 0) == 0
        assert _rung(server.host_fd) == 0
        lib.cuda_transport_get_stats(transport, ct.byref(stats))
        assert stats.kicks == 2
    finally:
        words.release()
        lib.cuda_transport_close(transport)


def test_the_python_client_kicks_a_sleeping_host_once_until_its_submission_head_moves(
    server: FakeIvshmemServer, tmp_path: Path,
) -> None:
    """The C transport's rule, in the Python client (docs/protocol.md 3.3)."""
    with GuestClient.connect(tmp_path / "fake.sock") as gpu:
        words = server.channel(0).cast("I")
        try:
            args = gpu.args("memset_d8", dst=0, value=0, count=1, stream=0)
            _rung(server.host_fd)  # the open's
            kicks = gpu.kicks
            words[ChannelField.HOST_NEED_WAKEUP >> 2] = 1
            for _ in range(8):
                gpu.call("memset_d8", args, asynchronous=True)
            assert _rung(server.host_fd) == 1
            words[ChannelField.SQ_HEAD >> 2] = words[ChannelField.SQ_TAIL >> 2]  # served them all, asleep again
            for _ in range(3):
                gpu.call("memset_d8", args, asynchronous=True)
            assert _rung(server.host_fd) == 1
            words[ChannelField.HOST_NEED_WAKEUP >> 2] = 0  # awake
            gpu.call("memset_d8", args, asynchronous=True)
            assert _rung(server.host_fd) == 0
            assert gpu.kicks - kicks == 2
            words[ChannelField.SQ_HEAD >> 2] = words[ChannelField.SQ_TAIL >> 2]  # let the close go through
        finally:
            words.release()
