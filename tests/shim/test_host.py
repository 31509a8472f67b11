"""The checked-in CUDA programs on the host: the shim first on the loader's path, a real mediator (sim)
behind the Unix-socket transport, exactly as QEMU's ivshmem-doorbell would connect.

Each program's own checks must pass, and the mediator's trace must show the calls the shim made for
it: kernels loaded from the program's fatbin and launched posted, GEMMs posted, device attributes
asked once each, and everything freed.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mediator._control_client import request
from mediator._launcher import running_mediator
from tests.qemu._support import SelftestReport

from ._support import PROGRAMS, ShimBuild, check_program, run_program

ASYNC = 0x1

#: calls each program must have made (beyond init and the device queries every runtime makes)
EXPECTED_CALLS = {
    "vector_add": {"module_load_data", "module_get_function", "func_get_param_layout", "launch_kernel",
                   "module_get_global", "memcpy_htod", "memcpy_dtoh", "ctx_synchronize", "module_unload",
                   "func_get_attribute", "func_set_attribute"},
    "gemm": {"cublas_create", "cublas_set_stream", "cublas_set_math_mode", "cublas_sgemm", "cublas_gemm_ex",
             "cublas_gemm_strided_batched_ex", "cublas_gemm_batched_ex", "cublas_destroy",
             "stream_synchronize"},
    "streams_events": {"stream_create", "event_create", "event_record", "stream_wait_event", "launch_kernel",
                       "event_synchronize", "event_query", "event_elapsed_time", "stream_query", "memset_d8",
                       "stream_destroy", "event_destroy"},
    "graph": {"stream_begin_capture", "stream_get_capture_info", "stream_end_capture", "graph_instantiate",
              "graph_launch", "graph_exec_destroy", "graph_destroy", "memcpy_dtod", "memset_d8"},
    "blas3": {"cublas_create", "cublas_strsm", "cublas_strsm_batched", "cublas_gemm_strided_batched_ex",
              "cublas_getrf_batched", "cublas_destroy"},
    "graph_nodes": {"mem_alloc", "stream_begin_capture", "memset_d32", "memcpy_dtod", "launch_kernel",
                    "event_record_with_flags", "stream_wait_event", "stream_end_capture", "graph_instantiate",
                    "graph_launch", "graph_exec_destroy", "mem_free"},
    "graph_memory": {"graph_mem_alloc", "graph_mem_free", "stream_begin_capture", "stream_end_capture",
                     "graph_instantiate", "graph_launch", "memset_d8", "memcpy_dtod"},
    "host_funcs": {"stream_add_guest_node", "graph_exec_guest_node", "graph_launch_phase", "graph_node_count",
                   "graph_clone", "graph_exec_update", "stream_synchronize", "memcpy_htod", "memcpy_dtoh",
                   "launch_kernel"},
}
#: calls that must only ever have been posted (never waited for)
POSTED = {"graph_launch_phase", "launch_kernel", "cublas_sgemm", "cublas_gemm_ex", "cublas_gemm_strided_batched_ex",
          "cublas_gemm_batched_ex", "event_record", "stream_wait_event", "graph_launch", "cublas_strsm",
          "cublas_strsm_batched", "cublas_getrf_batched"}


def run_on_mediator(name: str, shim: ShimBuild, tmp_path: Path) -> tuple[SelftestReport, list[dict[str, Any]],
                                                                        dict[str, Any], str]:
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        request(mediator.control, {"cmd": "trace", "vm": "vm1", "enable": True})
        conf = tmp_path / "guest.conf"
        conf.write_text(f"socket = {mediator.vm_socket(1)}\nlog = stderr\n")
        code, output = run_program(name, shim, conf)
        trace = request(mediator.control, {"cmd": "trace", "vm": "vm1", "limit": 100000})["records"]
        status = next(v for v in request(mediator.control, {"cmd": "status"})["vms"] if v["name"] == "vm1")
    assert code == 0, output
    return SelftestReport.parse(output), trace, status, output


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", ["vector_add", "gemm", "streams_events", "graph", "blas3", "graph_nodes",
                                  "host_funcs", "graph_memory"])
def test_program_passes_through_the_socket_transport_and_the_mediator_saw_its_calls(
    name: str, shim: ShimBuild, tmp_path: Path, artifacts: Path,
) -> None:
    report, trace, status, output = run_on_mediator(name, shim, tmp_path)
    check_program(name, report)
    if "timings" in report.results:
        (artifacts / "timings-shim-host.json").write_text(json.dumps(report["timings"].fields(), indent=2) + "\n")
    calls = Counter(record["call"] for record in trace)
    missing = EXPECTED_CALLS[name] - set(calls)
    assert not missing, f"{name}: these calls never reached the mediator: {missing}"
    assert calls["init"] == 1
    waited_for = {r["call"] for r in trace if r["call"] in POSTED and not r["flags"] & ASYNC}
    assert not waited_for, f"{name}: asynchronous calls submitted synchronously: {waited_for}"
    attributes = Counter(r["args"] for r in trace if r["call"] == "device_get_attribute")
    assert all(count == 1 for count in attributes.values()), f"attributes asked twice: {attributes}"
    assert status["calls"] == len(trace)
    assert status["memory_used"] == 0, "the program's allocations were not all freed"
    if name != "graph_nodes":  # graph_nodes checks that two refusals are refused
        assert "is not supported by the vgpu shim" not in output, output  # the programs use served calls only


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_kernel_without_a_sim_reference_fails_at_the_next_synchronize(shim: ShimBuild, tmp_path: Path) -> None:
    report, trace, _, _ = run_on_mediator("vector_add", shim, tmp_path)
    fields = report["unreferenced_kernel"].fields()
    assert fields["posted"] == "0" and fields["status"] == "801"  # cudaErrorNotSupported, latched
    refused = [r for r in trace if r["call"] == "launch_kernel" and r["status"]]
    # the launch past softmax_rows' dynamic shared memory limit (1, CUDA_ERROR_INVALID_VALUE), then this one
    assert [r["status"] for r in refused] == [1, 801] and all(r["flags"] & ASYNC for r in refused)


def test_without_any_configuration_the_shim_looks_for_the_pci_device(shim: ShimBuild, tmp_path: Path) -> None:
    """No config file, no environment: the PCI backend, and on this host there is no ivshmem device."""
    if Path("/etc/vgpu/guest.conf").exists():
        pytest.skip("this machine has an /etc/vgpu/guest.conf")
    if any((p / "vendor").read_text().strip() == "0x1af4" and (p / "device").read_text().strip() == "0x1110"
           for p in Path("/sys/bus/pci/devices").glob("*")):
        pytest.skip("this machine has an ivshmem-doorbell device")
    code, output = run_program("vector_add", shim, None)
    report = SelftestReport.parse(output)
    assert code != 0
    assert report["device_count"].fields()["status"] == "100"  # cudaErrorNoDevice
    assert "no ivshmem device (1af4:1110)" in output


def test_the_programs_are_nvcc_binaries_that_link_nvidias_sonames() -> None:
    for name in ("vector_add", "gemm", "streams_events", "graph", "blas3", "graph_nodes", "host_funcs",
                 "graph_memory"):
        dynamic = subprocess.run(["readelf", "-dW", str(PROGRAMS / name)], capture_output=True, text=True,
                                 check=True).stdout
        assert "Shared library: [libcudart.so.13]" in dynamic, name
        assert "RPATH" not in dynamic and "RUNPATH" not in dynamic, name
        symbols = subprocess.run(["nm", "-D", str(PROGRAMS / name)], capture_output=True, text=True,
                                 check=True).stdout
        assert "__cudaRegisterFatBinary@libcudart.so.13" in symbols, name
    gemm = subprocess.run(["nm", "-D", str(PROGRAMS / "gemm")], capture_output=True, text=True, check=True).stdout
    assert "cublasSgemm_v2@libcublas.so.13" in gemm


def test_a_config_files_mistakes_are_logged_and_ignored(shim: ShimBuild, tmp_path: Path) -> None:
    conf = tmp_path / "guest.conf"
    conf.write_text("# a guest without the device\nlog = stderr\nno equals sign here\ncolour = blue\n"
                    "device = 0000:00:1f.7  # no such device\n")
    code, output = run_program("vector_add", shim, conf, timeout=30)
    assert code != 0
    assert f"{conf}:3: expected `key = value`, ignored" in output
    assert f"{conf}:4: unknown key `colour`, ignored" in output
    assert "/sys/bus/pci/devices/0000:00:1f.7 is not an ivshmem device" in output
