"""The daemon end to end: real processes, real sockets, real shared memory, the sim backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from guest import CudaCallError, DeviceGoneError, GuestClient
from mediator._control_client import request
from mediator._launcher import MediatorProcess, write_config
from protocol import CALLS_BY_NAME, CompleteFlags, CUresult, DeviceState
from protocol.models import StreamArgs

pytestmark = pytest.mark.timeout(120)


def status(mediator: MediatorProcess) -> dict[str, dict[str, object]]:
    reply = request(mediator.control, {"cmd": "status"})
    return {vm["name"]: vm for vm in reply["vms"]}


def wait_until(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_guest_copies_64_mib_uses_streams_and_events_and_releases_everything(
    mediator: MediatorProcess,
) -> None:
    data = np.random.default_rng(1).integers(0, 256, 64 * 2**20, dtype=np.uint8)
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        assert gpu.device_count() == 1
        dptr = gpu.mem_alloc(data.nbytes)
        assert dptr % 256 == 0
        gpu.memcpy_htod(dptr, data.data)
        assert gpu.memcpy_dtoh(dptr, data.nbytes) == data.tobytes()

        s1, s2 = gpu.stream_create(), gpu.stream_create()
        start, done_first, end = gpu.event_create(), gpu.event_create(), gpu.event_create()
        half = data.nbytes // 2
        scratch = gpu.mem_alloc(data.nbytes)
        gpu.event_record(start, s1)
        gpu.memcpy_dtod(scratch, dptr, half, stream=s1, asynchronous=True)
        gpu.event_record(done_first, s1)
        gpu.stream_wait_event(s2, done_first)  # s2 runs after s1's copy
        gpu.memcpy_dtod(scratch + half, scratch, half, stream=s2, asynchronous=True)
        gpu.event_record(end, s2)
        gpu.event_synchronize(end)
        assert gpu.event_elapsed_ms(start, end) > 0.0
        both = gpu.memcpy_dtoh(scratch, data.nbytes)
        assert both == data[:half].tobytes() * 2

        free, total = gpu.mem_get_info()
        assert total - free >= 2 * data.nbytes
        assert status(mediator)["vm1"]["memory_used"] == 2 * data.nbytes
        for handle in (s1, s2):
            gpu.stream_destroy(handle)
        for event in (start, done_first, end):
            gpu.event_destroy(event)
        gpu.mem_free(scratch)  # dptr is left allocated on purpose: disconnecting releases it

    wait_until(lambda: status(mediator)["vm1"]["state"] == "listening")
    vm1 = status(mediator)["vm1"]
    assert vm1["memory_used"] == 0
    assert vm1["sessions"] == 1
    assert '"memory_used": 0' in mediator.log and "worker released its resources" in mediator.log


def test_two_vms_cannot_reach_each_others_pointers_or_handles(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as vm1, GuestClient.connect(mediator.vm_socket(2)) as vm2:
        secret = vm1.mem_alloc(4096)
        vm1.memcpy_htod(secret, b"\x42" * 4096)
        stream = vm1.stream_create()
        event = vm1.event_create()

        with pytest.raises(CudaCallError) as read:
            vm2.memcpy_dtoh(secret, 16)
        assert read.value.status == CUresult.CUDA_ERROR_INVALID_VALUE
        with pytest.raises(CudaCallError) as write:
            vm2.memcpy_htod(secret, b"\0" * 16)
        assert write.value.status == CUresult.CUDA_ERROR_INVALID_VALUE
        with pytest.raises(CudaCallError) as free:
            vm2.mem_free(secret)
        assert free.value.status == CUresult.CUDA_ERROR_INVALID_VALUE
        with pytest.raises(CudaCallError) as sync:
            vm2.stream_synchronize(stream)
        assert sync.value.status == CUresult.CUDA_ERROR_INVALID_HANDLE
        with pytest.raises(CudaCallError) as query:
            vm2.event_synchronize(event)
        assert query.value.status == CUresult.CUDA_ERROR_INVALID_HANDLE

        assert vm1.memcpy_dtoh(secret, 4096) == b"\x42" * 4096
        vm1.stream_synchronize(stream)


def test_two_programs_on_one_vm_each_get_their_own_channel_and_context(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as one, GuestClient.connect(mediator.vm_socket(1)) as two:
        assert one.channel != two.channel
        mine = one.mem_alloc(4096)
        theirs = two.mem_alloc(4096)
        one.memset_d8(mine, 0x11, 4096)
        two.memset_d8(theirs, 0x22, 4096)
        stream = one.stream_create()
        with pytest.raises(CudaCallError) as foreign:  # a handle of the other process's context
            two.stream_synchronize(stream)
        assert foreign.value.status == CUresult.CUDA_ERROR_INVALID_HANDLE
        with pytest.raises(CudaCallError) as reach:  # and its memory
            two.memcpy_dtoh(mine, 16)
        assert reach.value.status == CUresult.CUDA_ERROR_INVALID_VALUE
        assert one.memcpy_dtoh(mine, 4096) == b"\x11" * 4096
        assert two.memcpy_dtoh(theirs, 4096) == b"\x22" * 4096
        vm = status(mediator)["vm1"]
        assert vm["refused"] == 0 and vm["peers"] == 2
        channels = {c["index"]: c for c in vm["channels"]}  # type: ignore[attr-defined]
        assert channels[one.channel]["state"] == "open" and channels[two.channel]["state"] == "open"
        assert {channels[one.channel]["owner_pid"], channels[two.channel]["owner_pid"]} == {os.getpid()}
        two.close()
        wait_until(lambda: status(mediator)["vm1"]["channels_open"] == 1)
        assert one.memcpy_dtoh(mine, 4096) == b"\x11" * 4096  # the other's close disturbed nothing


def test_async_failure_is_latched_and_reported_by_the_next_synchronizing_call(
    mediator: MediatorProcess,
) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        stream = gpu.stream_create()
        gpu.memset_d8(0xDEAD_0000, 1, 64, stream=stream, asynchronous=True)  # not ours
        result = gpu.call("stream_synchronize", StreamArgs(stream=stream))
        assert result.status == CUresult.CUDA_ERROR_INVALID_VALUE
        assert result.flags & CompleteFlags.LATCHED
        assert [c.status for c in gpu.async_errors] == [CUresult.CUDA_ERROR_INVALID_VALUE]
        gpu.stream_synchronize(stream)  # reported once, then cleared


def test_unknown_calls_and_bad_arguments_get_errors_and_the_vm_keeps_working(
    mediator: MediatorProcess,
) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        # An unknown call id straight into the ring:
        gpu.seq += 1
        gpu.sq.push(seq=gpu.seq, call_id=0x7777)
        gpu._kick()
        assert gpu.wait(gpu.seq).status == CUresult.CUDA_ERROR_NOT_SUPPORTED
        # A payload that leaves the arena:
        gpu.seq += 1
        gpu.sq.push(seq=gpu.seq, call_id=CALLS_BY_NAME["nop"].call_id, in_off=2**31, in_len=2**31)
        gpu._kick()
        assert gpu.wait(gpu.seq).status == CUresult.CUDA_ERROR_INVALID_VALUE
        with pytest.raises(CudaCallError) as zero:
            gpu.mem_alloc(0)
        assert zero.value.status == CUresult.CUDA_ERROR_INVALID_VALUE
        gpu.nop()
    wait_until(lambda: status(mediator)["vm1"]["state"] == "listening")
    assert status(mediator)["vm1"]["errors"] == 3


GUEST_THAT_DIES = """
import sys
from guest import GuestClient
gpu = GuestClient.connect(sys.argv[1])
ptr = gpu.mem_alloc(32 * 2**20)
print("ready", flush=True)
block = b"x" * (32 * 2**20)
while True:
    gpu.memcpy_htod(ptr, block)
"""


def test_a_guest_killed_mid_call_leaves_the_daemon_and_the_other_vm_unaffected(
    mediator: MediatorProcess,
) -> None:
    with GuestClient.connect(mediator.vm_socket(2)) as bystander:
        kept = bystander.mem_alloc(1024)
        bystander.memcpy_htod(kept, b"k" * 1024)
        victim = subprocess.Popen([sys.executable, "-c", GUEST_THAT_DIES, str(mediator.vm_socket(1))],
                                  stdout=subprocess.PIPE)
        assert victim.stdout is not None
        assert victim.stdout.readline() == b"ready\n"
        time.sleep(0.2)  # let it get well into its copies
        victim.kill()
        victim.wait()
        victim.stdout.close()
        wait_until(lambda: status(mediator)["vm1"]["state"] == "listening")
        assert status(mediator)["vm1"]["memory_used"] == 0
        assert bystander.memcpy_dtoh(kept, 1024) == b"k" * 1024
        with GuestClient.connect(mediator.vm_socket(1)) as again:
            assert again.mem_get_info()[1] > 0
    assert mediator.proc.poll() is None


def test_sigterm_drains_marks_regions_stopped_and_exits_zero(mediator: MediatorProcess) -> None:
    gpu = GuestClient.connect(mediator.vm_socket(1))
    gpu.mem_alloc(1 << 20)
    mediator.proc.send_signal(signal.SIGTERM)
    assert mediator.proc.wait(20) == 0
    assert gpu.header.device_state == DeviceState.STOPPED
    with pytest.raises(DeviceGoneError):
        gpu.nop()
    gpu.close()
    assert not mediator.vm_socket(1).exists()
    assert "mediator stopped" in mediator.log


def test_sighup_adds_new_vms_and_removes_idle_ones(mediator: MediatorProcess) -> None:
    write_config(mediator.config, mediator.sockets, backend="sim", vm_ids=[1, 3])
    mediator.proc.send_signal(signal.SIGHUP)
    mediator.wait_for(mediator.vm_socket(3))
    wait_until(lambda: not mediator.vm_socket(2).exists())
    assert set(status(mediator)) == {"vm1", "vm3"}
    with GuestClient.connect(mediator.vm_socket(3)) as gpu:
        gpu.nop()


def test_status_cli_against_a_running_daemon(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.mem_alloc(3 << 20)
        for _ in range(10):
            gpu.nop()
        cli = [sys.executable, "-m", "mediator.cli", "status", "-c", str(mediator.config)]
        table = subprocess.run(cli, capture_output=True, text=True, check=True).stdout
        as_json = json.loads(subprocess.run([*cli, "--json"], capture_output=True, text=True,
                                            check=True).stdout)
    lines = table.splitlines()
    assert lines[0].startswith("mediator pid") and "backend sim" in lines[0]
    assert lines[2].split()[:3] == ["ID", "NAME", "STATE"]
    vm1_row = next(line for line in lines if line.split()[:2] == ["1", "vm1"])
    assert "serving" in vm1_row and "3.0 MiB" in vm1_row and "2.0 GiB" in vm1_row
    vm1 = next(vm for vm in as_json["vms"] if vm["name"] == "vm1")
    assert vm1["connected"] is True and vm1["calls"] >= 11 and vm1["memory_used"] == 3 << 20


def test_status_cli_says_when_no_daemon_runs(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "mediator.cli", "status", "-s",
                             str(tmp_path / "nothing.sock")], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "cannot reach the mediator" in result.stderr
