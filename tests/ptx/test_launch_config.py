"""The PTX engine's launch bounds come from the configuration's ``[device]`` section, through the
worker's device settings, to every launch ``sim`` runs; a kernel's printf output reaches the VM's
trace ring as ``printf`` records, bounded as the log's."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest

from executor import CallIO, CudaError
from executor._sim import SimExecutor
from guest import GuestClient
from mediator._config import MediatorConfig
from mediator._launcher import running_mediator
from mediator._trace import TraceRing, printf_recorder
from mediator._worker import _device_config
from protocol import CALLS_BY_NAME, CUresult

from ..conformance._util import get_function, launch, load_module
from .conftest import CORPUS

SPIN = """
.version 8.0
.target sm_90
.address_size 64
.visible .entry spin()
{
$L:
    bra.uni $L;
}
"""


class Gpu:
    """One VM's ``sim`` executor built from a configuration as the worker builds it."""

    def __init__(self, device: dict[str, Any]) -> None:
        config = MediatorConfig.model_validate({"device": device})
        self.ex = SimExecutor(_device_config(config.device.model_dump()))

    def __call__(self, name: str, *, inp: bytes = b"", **args: Any) -> Any:
        spec = CALLS_BY_NAME[name]
        io = CallIO(memoryview(inp), memoryview(bytearray(64)), True)
        return self.ex.execute(spec, spec.args(**args), io)

    def function(self, ptx: str, name: str) -> int:
        module = self("module_load_data", inp=ptx.encode()).module
        return int(self("module_get_function", module=module, inp=name.encode()).function)

    def launch(self, function: int, block: int, params: bytes = b"") -> None:
        self("launch_kernel", function=function, grid_x=1, grid_y=1, grid_z=1, block_x=block, block_y=1,
             block_z=1, shared_mem_bytes=0, stream=0, inp=params)


def test_the_device_section_sets_every_launch_bound() -> None:
    gpu = Gpu({"launch_timeout_s": 2.5, "launch_instructions": 4000, "printf_bytes": "1KiB", "printf_lines": 3})
    limits = gpu.ex.launch_limits
    assert (limits.seconds, limits.instructions, limits.printf_bytes, limits.printf_lines) == (2.5, 4000, 1024, 3)
    spin = gpu.function(SPIN, "spin")
    with pytest.raises(CudaError) as err:
        gpu.launch(spin, 32)
    assert err.value.status == CUresult.CUDA_ERROR_LAUNCH_TIMEOUT and err.value.sticky
    assert "4000" in err.value.message  # the configured bound, reached long before 2.5 s


def test_a_launch_bound_past_the_workers_watchdog_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="launch_timeout_s"):
        MediatorConfig.model_validate({"device": {"launch_timeout_s": 30}, "mediator": {"worker_timeout_s": 30}})
    MediatorConfig.model_validate({"device": {"launch_timeout_s": 29}, "mediator": {"worker_timeout_s": 30}})


def test_printf_reaches_the_trace_ring_bounded_and_only_while_tracing() -> None:
    gpu = Gpu({"printf_lines": 2})
    ring = TraceRing.create("printf-test", capacity=64)
    tracing = [True]
    gpu.ex.kernel_output = printf_recorder(ring, lambda: tracing[0])
    function = gpu.function(CORPUS[90].read_text(), "printf_formats")
    name = gpu.ex.memory.alloc(16)
    gpu.ex.memory.write(name, np.frombuffer(b"gpu\0", dtype=np.uint8))
    params = struct.pack("<Qi", name, 0) + bytes(4)
    try:
        gpu.launch(function, 5, params)  # five threads print a line each; the launch keeps two
        records, _ = ring.read()
        assert [r.call for r in records] == ["printf"] * 3
        assert records[0].args.startswith("printf_formats: t0:     0|0   |0000.000|")
        assert records[1].args.startswith("printf_formats: t1:    -7|ff  |")
        assert records[2].args.startswith("printf_formats: … ") and records[2].args.endswith("dropped")
        tracing[0] = False
        gpu.launch(function, 5, params)
        assert ring.written == 3
    finally:
        ring.close()


def test_a_printf_record_is_a_kind_of_its_own_cut_to_the_record() -> None:
    ring = TraceRing.create("printf-cut", capacity=4)
    try:
        ring.note_printf(123, "k", "x" * 300)
        (record,), _ = ring.read()
        assert (record.call, record.args, record.time_ns) == ("printf", "k: " + "x" * 125, 123)
    finally:
        ring.close()


@pytest.mark.slow
def test_a_kernels_printf_is_in_the_vms_trace_through_a_real_worker(tmp_path: Path) -> None:
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        trace = [sys.executable, "-m", "mediator.cli", "trace", "-c", str(mediator.config), "--vm", "vm1"]
        subprocess.run([*trace, "--on"], check=True, capture_output=True, timeout=60)
        with GuestClient.connect(mediator.vm_socket(1)) as gpu:
            module = load_module(gpu, CORPUS[80].read_bytes())
            function = get_function(gpu, module, "printf_formats")
            name = gpu.mem_alloc(16)
            gpu.memcpy_htod(name, b"gpu\0")
            launch(gpu, function, 1, 2, struct.pack("<Qi", name, 0) + bytes(4))
            gpu.ctx_synchronize()
            lines = subprocess.run([*trace, "--call", "launch_kernel"], check=True, capture_output=True, text=True,
                                   timeout=60).stdout
            out = subprocess.run(trace, check=True, capture_output=True, text=True, timeout=60).stdout
    printed = [line.split(" printf(", 1)[1] for line in out.splitlines() if " printf(" in line]
    assert lines and printed == ["printf_formats: t0:     0|0   |0000.000|+0.000000e+00|gpu|a%) -> CUDA_SUCCESS 0.0µs",
                                 "printf_formats: t1:    -7|ff  |0001.500|+2.500000e-01|gpu|b%) -> CUDA_SUCCESS 0.0µs"]
