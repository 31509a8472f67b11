"""Channels (issue 14): several processes of one VM, each with its own context, cleaned up when it dies.

Each test runs a real daemon (sim backend) and real guest processes (``guest.GuestClient`` in a spawned
interpreter): a process killed mid-copy gives its memory back at once (its socket peer goes), a
stopped one loses its channel to the lease, and garbage in one channel closes only that channel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from guest import CudaCallError, DeviceGoneError, GuestClient
from mediator._launcher import MediatorProcess
from protocol import ChannelField, ChannelState, CloseReason, StreamCaptureMode

from ._support import vm_status, wait_for

MIB = 1 << 20


def _spawn(mediator: MediatorProcess, body: str) -> subprocess.Popen[str]:
    """A guest process running ``body`` with ``gpu`` connected to VM 1; it prints 'ready' when set."""
    script = "import sys\nfrom guest import GuestClient, DeviceGoneError\n" + \
        f"gpu = GuestClient.connect({str(mediator.vm_socket(1))!r})\n" + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=os.getcwd())


def test_a_process_killed_mid_copy_gives_its_memory_back_within_a_second(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as other:
        mine = other.mem_alloc(8 * MIB)
        child = _spawn(mediator, """
            ptr = gpu.mem_alloc(64 << 20)
            data = bytes(range(256)) * (64 << 12)
            print("ready", flush=True)
            while True:
                gpu.memcpy_htod(ptr, data)
        """)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            wait_for("the child's memory shows", lambda: vm_status(mediator, 1)["memory_used"] >= 72 * MIB)
            payload = bytes([7]) * (8 * MIB)
            other.memcpy_htod(mine, payload)
            child.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            wait_for("the killed process's memory is back",
                     lambda: vm_status(mediator, 1)["memory_used"] == 8 * MIB, timeout=5.0)
            back_s = time.monotonic() - killed
        finally:
            child.kill()
            child.wait()
            assert child.stdout is not None
            child.stdout.close()
        print(f"memory back {back_s * 1000:.0f} ms after SIGKILL")
        assert back_s < 1.0
        assert other.memcpy_dtoh(mine, 8 * MIB) == payload  # the other process finished, undisturbed
        assert vm_status(mediator, 1)["channels_open"] == 1


def test_a_stopped_process_loses_its_channel_when_its_lease_runs_out(mediator: MediatorProcess) -> None:
    child = _spawn(mediator, """
        import time
        gpu.mem_alloc(4 << 20)
        print("ready", flush=True)
        time.sleep(3)  # stopped meanwhile: the sleep ends by the clock once it runs again
        try:
            gpu.mem_alloc(1 << 20)
            print("served", flush=True)
        except DeviceGoneError as exc:
            print("gone", exc, flush=True)
    """)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        wait_for("the stopped process's lease expires",
                 lambda: vm_status(mediator, 1)["channels_expired"] == 1, timeout=10.0)
        expired_s = time.monotonic() - stopped
        assert vm_status(mediator, 1)["memory_used"] == 0
        child.send_signal(signal.SIGCONT)
        out = child.stdout.read()
        assert "gone" in out and "CLOSED_BY_HOST" in out, out
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
    print(f"lease expired {expired_s * 1000:.0f} ms after SIGSTOP")
    assert expired_s < 0.8 + 0.5


def test_garbage_in_one_channel_closes_only_that_channel(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as bad, GuestClient.connect(mediator.vm_socket(1)) as good:
        kept = good.mem_alloc(MIB)
        good.memset_d8(kept, 0x5A, MIB)
        bad.mem_alloc(MIB)
        bad.region.set_u32(ChannelField.SQ_TAIL, bad.sq.index + 5000)  # an impossible tail
        os.eventfd_write(bad.doorbell_fd, 1)
        wait_for("the broken channel is closed",
                 lambda: bad.region.channel_state == ChannelState.CLOSED_BY_HOST, timeout=5.0)
        assert bad.region.u32(ChannelField.CLOSE_REASON) == CloseReason.PROTOCOL_VIOLATION
        try:
            bad.nop()
            raise AssertionError("a call on a closed channel was served")
        except DeviceGoneError:
            pass
        assert good.memcpy_dtoh(kept, MIB) == b"\x5a" * MIB
        row = vm_status(mediator, 1)
        assert row["channels_broken"] == 1 and row["state"] == "serving"
        wait_for("the broken channel's memory is freed", lambda: vm_status(mediator, 1)["memory_used"] == MIB)


def _run_churn(mediator: MediatorProcess, count: int, mode: str, at_once: int = 1) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom tests.reliability._support import churn\n"
         f"churn({str(mediator.vm_socket(1))!r}, {count}, {mode!r}, {at_once})"],
        capture_output=True, text=True, timeout=1800, check=False, cwd=os.getcwd())
    assert out.returncode == 0, out.stderr
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["failed"] == 0, out.stderr
    return figures


def test_back_to_back_programs_are_all_served(mediator: MediatorProcess) -> None:
    """Programs one after the other, each alone on the VM: one that connects before the previous
    one's socket is seen gone joins its session; one that connects while that session tears down
    waits for it and starts the next; none is refused."""
    for i in range(5):
        with GuestClient.connect(mediator.vm_socket(1)) as gpu:
            gpu.init()
            assert gpu.memcpy_dtoh(gpu.mem_alloc(64), 64) == bytes(64), i
    wait_for("the last session ended", lambda: vm_status(mediator, 1)["state"] == "listening", timeout=20)
    row = vm_status(mediator, 1)
    assert row["refused"] == 0 and 1 <= row["sessions"] <= 5
    assert row["last_session"]["memory_used"] == 0 and row["last_session"]["live_handles"] == 0


@pytest.mark.slow
def test_a_thousand_short_lived_processes_leave_nothing_behind(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as holder:  # the VM's session stays, as QEMU keeps it
        holder.init()
        figures = _run_churn(mediator, 1000, "compute")
        wait_for("every short-lived process's channel closed",
                 lambda: vm_status(mediator, 1)["channels_open"] == 1, timeout=10.0)
        row = vm_status(mediator, 1)
        print(f"1000 processes (half exiting without freeing): {figures['seconds']} s, "
              f"{figures['per_process_ms']} ms each; left: {row['memory_used']} bytes, "
              f"{row['live_handles']} handles; channels opened {row['channels_opened']}")
        assert row["memory_used"] == 0 and row["live_handles"] == 0
        assert row["channels_opened"] >= 1001 and row["refused"] == 0
        holder.nop()


@pytest.mark.slow
def test_discovery_processes_come_and_go_while_a_holder_computes(mediator: MediatorProcess) -> None:
    """Ollama's pattern: a runner holds 1 GiB and computes while GPU-discovery children (init,
    device queries, cuMemGetInfo, exit) come and go, a few at a time; none is refused."""
    with GuestClient.connect(mediator.vm_socket(1)) as holder:
        holder.init()
        held = holder.mem_alloc(1 << 30)
        stop = threading.Event()
        rounds = [0]
        failures: list[BaseException] = []

        def compute() -> None:
            try:
                while not stop.is_set():
                    value = rounds[0] % 256
                    holder.memset_d8(held + (rounds[0] % 64) * MIB, value, MIB)
                    assert holder.memcpy_dtoh(held + (rounds[0] % 64) * MIB, 256) == bytes([value]) * 256
                    rounds[0] += 1
            except BaseException as exc:
                failures.append(exc)

        worker = threading.Thread(target=compute, name="holder")
        worker.start()
        try:
            figures = _run_churn(mediator, 50, "discovery", at_once=5)
        finally:
            stop.set()
            worker.join()
        assert not failures, failures
        row = vm_status(mediator, 1)
        print(f"50 discovery processes (5 at a time) beside a 1 GiB holder: {figures['seconds']} s; "
              f"holder rounds {rounds[0]}")
        assert rounds[0] > 0 and row["refused"] == 0
        wait_for("the discovery channels closed", lambda: vm_status(mediator, 1)["channels_open"] == 1)
        assert vm_status(mediator, 1)["memory_used"] == 1 << 30


def _compute(gpu: GuestClient, seed: int, rounds: int) -> dict[str, int]:
    """Copies, memsets, an SGEMM and a captured graph, every result checked; returns its handles."""
    rng, n = np.random.default_rng(seed), 16
    blas = int(gpu.value("cublas_create", "handle"))
    stream = gpu.stream_create()
    buf = gpu.mem_alloc(MIB)
    pa, pb, pc = (gpu.mem_alloc(4 * n * n) for _ in range(3))
    gpu.checked("stream_begin_capture", gpu.args("stream_begin_capture", stream=stream,
                                                  mode=StreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED))
    gpu.memset_d8(buf, seed, 4096, stream=stream, asynchronous=True)
    graph = int(gpu.value("stream_end_capture", "graph", gpu.args("stream_end_capture", stream=stream)))
    graph_exec = int(gpu.value("graph_instantiate", "graph_exec",
                               gpu.args("graph_instantiate", graph=graph, flags=0)))
    for _ in range(rounds):
        data = rng.bytes(int(rng.integers(1, MIB)))
        gpu.memcpy_htod(buf, data)
        assert gpu.memcpy_dtoh(buf, len(data)) == data
        gpu.checked("graph_launch", gpu.args("graph_launch", graph_exec=graph_exec, stream=stream))
        gpu.stream_synchronize(stream)
        assert gpu.memcpy_dtoh(buf, 4096) == bytes([seed]) * 4096
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        gpu.memcpy_htod(pa, a.tobytes(order="F"))
        gpu.memcpy_htod(pb, b.tobytes(order="F"))
        gpu.checked("cublas_sgemm", gpu.args("cublas_sgemm", handle=blas, transa=0, transb=0, m=n, n=n, k=n,
                                             alpha=1.0, a=pa, lda=n, b=pb, ldb=n, beta=0.0, c=pc, ldc=n))
        c = np.frombuffer(gpu.memcpy_dtoh(pc, 4 * n * n), dtype=np.float32).reshape((n, n), order="F")
        assert np.allclose(c, a @ b, rtol=1e-4, atol=1e-4)
    return {"blas": blas, "stream": stream, "graph_exec": graph_exec, "buf": buf}


def test_two_processes_compute_at_once_each_with_only_its_own_handles(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as one, GuestClient.connect(mediator.vm_socket(1)) as two:
        one.init()
        two.init()
        results: dict[int, dict[str, int]] = {}
        errors: list[BaseException] = []

        def run(gpu: GuestClient, seed: int) -> None:
            try:
                results[seed] = _compute(gpu, seed, rounds=20)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(gpu, seed)) for gpu, seed in ((one, 7), (two, 9))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        mine, theirs = results[7], results[9]
        # each context has its own objects: the same handle numbers name each process's own
        assert mine.keys() == theirs.keys()
        for gpu, own, seed in ((one, mine, 7), (two, theirs, 9)):
            gpu.checked("graph_launch", gpu.args("graph_launch", graph_exec=own["graph_exec"], stream=own["stream"]))
            gpu.stream_synchronize(own["stream"])
            assert gpu.memcpy_dtoh(own["buf"], 4096) == bytes([seed]) * 4096
        with pytest.raises(CudaCallError):  # and another's memory is out of reach
            one.memcpy_dtoh(theirs["buf"], 16)
        two.checked("cublas_destroy", two.args("cublas_destroy", handle=theirs["blas"]))
        one.checked("cublas_sgemm", one.args("cublas_sgemm", handle=mine["blas"], transa=0, transb=0, m=1, n=1,
                                             k=1, alpha=1.0, a=mine["buf"], lda=1, b=mine["buf"], ldb=1,
                                             beta=0.0, c=mine["buf"], ldc=1))  # its own handle lives on
        rows = {c["index"]: c for c in vm_status(mediator, 1)["channels"]}
        assert rows[one.channel]["calls"] > 100 and rows[two.channel]["calls"] > 100
