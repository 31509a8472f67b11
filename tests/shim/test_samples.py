"""NVIDIA's CUDA samples, built unchanged with nvcc 13 and checked in (``samples/bin``, made by
``samples/build.sh``), on the host: each through the shim with ``LD_BIND_NOW=1`` (every symbol bound
at load) against one mediator on ``sim``, one guest session after another, judged as
``scripts/cuda-samples`` judges them. The same samples run inside a real VM in ``test_vm_samples.py``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator._control_client import request
from mediator._launcher import MediatorProcess, running_mediator

from ._support import (
    KERNEL_SAMPLES,
    LONG_SAMPLES,
    SAMPLE_ARGS,
    SAMPLES,
    SAMPLES_BIN,
    SAMPLES_CONFIG,
    ShimBuild,
    sample_data,
    sample_verdict,
    shim_env,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def mediator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediatorProcess]:
    with running_mediator(tmp_path_factory.mktemp("samples"), backend="sim", vms=1, extra=SAMPLES_CONFIG) as running:
        request(running.control, {"cmd": "trace", "vm": "vm1", "enable": True})
        yield running


def test_the_checked_in_samples_are_the_list_with_their_provenance() -> None:
    present = {p.name for p in SAMPLES_BIN.iterdir()} - {"BUILT_WITH.txt", "LICENSE"}
    assert present == set(SAMPLES.values())
    built_with = (SAMPLES_BIN / "BUILT_WITH.txt").read_text()
    assert "NVIDIA/cuda-samples commit: " in built_with and "release 13." in built_with
    assert all(f"Samples/{sample}/" in built_with for sample in SAMPLES)
    assert "Redistribution and use in source and binary forms" in (SAMPLES_BIN / "LICENSE").read_text()


@pytest.mark.parametrize("name", sorted(set(SAMPLES.values()) - set(LONG_SAMPLES)))
def test_the_sample_passes_on_the_shim(name: str, shim: ShimBuild, mediator: MediatorProcess, tmp_path: Path) -> None:
    run_sample(name, shim, mediator, tmp_path, timeout=300)


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", sorted(LONG_SAMPLES))
def test_a_long_sample_passes_on_the_shim(name: str, shim: ShimBuild, tmp_path: Path) -> None:
    """A sample whose one launch outlasts the others' bound, against a mediator of its own with a longer one."""
    launch_bound, timeout = LONG_SAMPLES[name]
    config = SAMPLES_CONFIG.replace("launch_timeout_s = 60.0", f"launch_timeout_s = {launch_bound}")
    config = config.replace("worker_timeout_s = 90.0", f"worker_timeout_s = {launch_bound + 30}")
    assert config != SAMPLES_CONFIG
    with running_mediator(tmp_path, backend="sim", vms=1, extra=config) as mediator:
        request(mediator.control, {"cmd": "trace", "vm": "vm1", "enable": True})
        run_sample(name, shim, mediator, tmp_path, timeout=timeout)


def run_sample(name: str, shim: ShimBuild, mediator: MediatorProcess, tmp_path: Path, *, timeout: float) -> None:
    """Run the sample ``name`` through the shim against ``mediator``: it passes by its own verdict, and its
    work went to the mediator."""
    conf = tmp_path / "guest.conf"
    conf.write_text(f"socket = {mediator.vm_socket(1)}\nlog = stderr\n")
    for file, source in sample_data(name).items():
        (tmp_path / "data").mkdir(exist_ok=True)
        shutil.copyfile(source, tmp_path / "data" / file)
    proc = subprocess.run([str(SAMPLES_BIN / name), *SAMPLE_ARGS.get(name, ())], capture_output=True, text=True,
                          timeout=timeout, env={**shim_env(shim, conf), "LD_BIND_NOW": "1"}, cwd=tmp_path,
                          stdin=subprocess.DEVNULL, check=False)
    output = proc.stdout + proc.stderr
    assert sample_verdict(proc.returncode, output) == "PASS", output[-4000:]
    assert "is not supported by the vgpu shim" not in output
    # each guest session has its own trace; the last one's is kept until the next session ends
    calls = {record["call"] for record in
             request(mediator.control, {"cmd": "trace", "vm": "vm1", "limit": 100000})["records"]}
    # the sample's work went to the mediator: its kernels to the PTX engine, the others' no kernel at all
    assert "init" in calls
    launched = bool(calls & {"launch_kernel", "launch_cooperative_kernel"})
    assert launched == (name in KERNEL_SAMPLES), sorted(calls)
