"""Tracing a live guest and reading the trace back through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime

import pytest

from guest import CudaCallError, GuestClient
from mediator._launcher import MediatorProcess

pytestmark = pytest.mark.timeout(120)


def cli(mediator: MediatorProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mediator.cli", "trace", "-c", str(mediator.config), *args],
                          capture_output=True, text=True, check=True, timeout=60)


def test_trace_records_decoded_calls_and_the_cli_reads_them(mediator: MediatorProcess) -> None:
    assert cli(mediator, "--vm", "vm1", "--on").stdout.strip() == "tracing on for vm1"
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        ptr = gpu.mem_alloc(1 << 20)
        gpu.memcpy_htod(ptr, b"\1" * 4096)
        with pytest.raises(CudaCallError):
            gpu.mem_free(ptr + 8)
        gpu.mem_free(ptr)

        lines = cli(mediator, "--vm", "vm1").stdout.splitlines()
        assert [line.split()[3].split("(")[0] for line in lines] == [
            "mem_alloc", "memcpy_htod", "mem_free", "mem_free"]
        assert "mem_alloc(bytesize=1048576)" in lines[0] and "CUDA_SUCCESS" in lines[0]
        assert f"dst={ptr:#x}" in lines[1] and "in_len=4096" in lines[1]
        assert "CUDA_ERROR_INVALID_VALUE" in lines[2]

        errors = cli(mediator, "--vm", "1", "--errors", "--json").stdout.splitlines()
        assert len(errors) == 1
        record = json.loads(errors[0])
        assert record["call"] == "mem_free" and record["args"] == f"dptr={ptr + 8:#x}"
        assert record["duration_ns"] > 0

        only_alloc = cli(mediator, "--vm", "vm1", "--call", "mem_alloc").stdout.splitlines()
        assert len(only_alloc) == 1

        cli(mediator, "--vm", "vm1", "--off")
        gpu.nop()
        assert "nop" not in cli(mediator, "--vm", "vm1").stdout


def test_follow_prints_calls_as_they_happen(mediator: MediatorProcess) -> None:
    follower = subprocess.Popen([sys.executable, "-m", "mediator.cli", "trace", "-c", str(mediator.config),
                                 "--vm", "vm2", "--on", "--follow"], stdout=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        # tracing is on once it says so; a call from then on is in its history or what it follows
        assert follower.stdout.readline().strip() == "tracing on for vm2"
        with GuestClient.connect(mediator.vm_socket(2)) as gpu:
            gpu.mem_alloc(4096)
        assert follower.stdout is not None
        assert "mem_alloc(bytesize=4096)" in follower.stdout.readline()
    finally:
        follower.terminate()
        follower.wait(10)
        if follower.stdout is not None:
            follower.stdout.close()


def test_trace_of_an_unknown_vm_is_refused(mediator: MediatorProcess) -> None:
    result = subprocess.run([sys.executable, "-m", "mediator.cli", "trace", "-c", str(mediator.config),
                             "--vm", "nope"], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "no VM 'nope'" in result.stderr


def test_n_counts_the_calls_printed_after_the_filters(mediator: MediatorProcess) -> None:
    cli(mediator, "--vm", "vm1", "--on")
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        ptrs = [gpu.mem_alloc(4096) for _ in range(3)]
        for _ in range(20):
            gpu.nop()
        last_two = cli(mediator, "--vm", "vm1", "--call", "mem_alloc", "-n", "2", "--json").stdout.splitlines()
        assert [json.loads(line)["call"] for line in last_two] == ["mem_alloc", "mem_alloc"]
        assert json.loads(last_two[-1])["args"] == "bytesize=4096" and len(ptrs) == 3
        assert len(cli(mediator, "--vm", "vm1", "--call", "init", "-n", "5").stdout.splitlines()) == 1
        assert len(cli(mediator, "--vm", "vm1", "-n", "4").stdout.splitlines()) == 4


def test_trace_times_carry_their_zone(mediator: MediatorProcess) -> None:
    cli(mediator, "--vm", "vm1", "--on")
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.nop()
        stamp = cli(mediator, "--vm", "vm1", "-n", "1").stdout.split()[0]
    parsed = datetime.fromisoformat(stamp)
    assert parsed.tzinfo is not None
    assert abs(parsed.timestamp() - time.time()) < 120
