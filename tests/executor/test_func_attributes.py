"""Function attributes: what the module parser reads from real nvcc images, and how the sim backend
answers ``cuFuncGetAttribute``/``cuFuncSetAttribute`` and bounds launches with them.

The expected figures are what ``ptxas -v`` printed when the images were built (nvcc 13.0):
``attr_kernels/ptxas.txt`` for ``attr_kernels.cubin``, and the tables below for
``tests/kernels/test_kernels.cu`` (sm_90 and sm_80 builds).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from executor import CallIO, CudaError, DeviceConfig
from executor._cuda import CudaExecutor
from executor._modules import KernelAttributes, parse_module_image
from executor._sim import SimExecutor
from executor._sim_modules import FunctionLimits, device_variant, max_threads_per_block
from protocol import CALLS_BY_NAME, CUresult
from protocol import FunctionAttribute as A
from protocol.models import FuncGetAttributeArgs, FuncSetAttributeArgs

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
ATTR_KERNELS = Path(__file__).resolve().parent / "attr_kernels"
SOFTMAX = "_Z12softmax_rowsPKfPfii"
RMS_NORM = "_Z13rms_norm_rowsPKfPfiif"
SCALE = "_Z9scale_f32Pffi"

# ptxas -v of test_kernels.cu: "Used N registers" for sm_90 and sm_80; "N bytes smem" (both)
REGS_SM90 = {"_Z14mystery_kernelcdPf4Pairs": 10, "_Z7add_lutPii": 12, "_Z15scale_by_globalPfi": 10, SOFTMAX: 20,
             RMS_NORM: 16, "_Z7mul_f32PKfS0_Pfi": 12, "_Z8silu_f32PKfPfi": 16, "_Z8gelu_f32PKfPfi": 14,
             "_Z8relu_f32PKfPfi": 10, "_Z13add_bias_rowsPfPKfii": 14, SCALE: 8, "_Z10vector_addPKfS0_Pfi": 12}
REGS_SM80 = {**REGS_SM90, SOFTMAX: 19, RMS_NORM: 15, "_Z8silu_f32PKfPfi": 15, "_Z8gelu_f32PKfPfi": 12,
             "_Z13add_bias_rowsPfPKfii": 10}
SMEM = {SOFTMAX: 8192, RMS_NORM: 4096}
H100 = FunctionLimits(90, 1024, 65536, 48 * 1024, 227 * 1024, 32)


def ptxas_report(path: Path) -> dict[str, dict[str, int]]:
    """Per entry function: registers, stack frame and static shared memory as ptxas printed them."""
    found: dict[str, dict[str, int]] = {}
    current: dict[str, int] = {}
    for line in path.read_text().splitlines():
        if entry := re.search(r"Compiling entry function '(\w+)'", line):
            current = found.setdefault(entry[1], {"smem": 0})
        elif frame := re.match(r"\s+(\d+) bytes stack frame", line):
            current.setdefault("frame", int(frame[1]))
        elif used := re.search(r"Used (\d+) registers", line):
            current["regs"] = int(used[1])
            if smem := re.search(r"(\d+) bytes smem", line):
                current["smem"] = int(smem[1])
    return found


def only_variant(image: str, kernel: str) -> KernelAttributes:
    (variant,) = parse_module_image((ATTR_KERNELS / image).read_bytes()).kernels[kernel].variants
    return variant


# -- the parser -----------------------------------------------------------------------------------

def test_a_cubin_records_what_ptxas_reported_for_each_kernel() -> None:
    image = parse_module_image((ATTR_KERNELS / "attr_kernels.cubin").read_bytes())
    report = ptxas_report(ATTR_KERNELS / "ptxas.txt")
    assert set(report) == set(image.kernels) == {"bounded", "with_stack", "clustered", "big_tile"}
    for name, figures in report.items():
        (variant,) = image.kernels[name].variants
        assert (variant.num_regs, variant.local_bytes, variant.static_shared) == (
            figures["regs"], figures["frame"], figures["smem"]), name
        assert (variant.source, variant.arch, variant.ptx_version) == ("cubin", 90, 90)
        assert variant.const_bytes == 0  # no __constant__ data in the module
        assert variant.cache_mode_ca == 0


def test_the_sm90_window_reserve_is_not_static_shared_memory() -> None:
    # sm_90's .nv.shared.<kernel> sections hold 1 KiB more than ptxas's "bytes smem"
    image = parse_module_image((KERNELS / "test_kernels.cubin").read_bytes())
    for name, kernel in image.kernels.items():
        (variant,) = kernel.variants
        assert variant.num_regs == REGS_SM90[name], name
        assert variant.static_shared == SMEM.get(name, 0), name
        assert variant.const_bytes == 16  # g_lut, the module's __constant__ bank


def test_launch_bounds_cluster_dimensions_and_the_cache_mode_are_read() -> None:
    assert only_variant("attr_kernels.cubin", "bounded").max_threads == 256
    assert only_variant("attr_kernels.cubin", "with_stack").max_threads is None
    clustered = only_variant("attr_kernels.cubin", "clustered")
    assert (clustered.cluster_dims, clustered.explicit_cluster) == ((2, 1, 1), True)
    assert only_variant("attr_kernels.cubin", "bounded").cluster_dims == (0, 0, 0)
    assert only_variant("attr_kernels.dlcm.cubin", "bounded").cache_mode_ca == 1


def test_a_malformed_build_note_leaves_the_cache_mode_unknown_and_the_image_usable() -> None:
    raw = bytearray((ATTR_KERNELS / "attr_kernels.dlcm.cubin").read_bytes())
    note = re.search(rb"\x0c\x00\x00\x00(....)\xd0\x07\x00\x00NVIDIA Corp\x00", raw, re.DOTALL)
    assert note is not None  # .note.nv.tkinfo: namesz 12, descsz, type 2000, "NVIDIA Corp"
    raw[note.start(1):note.end(1)] = (1 << 30).to_bytes(4, "little")  # a descriptor past the section
    (variant,) = parse_module_image(bytes(raw)).kernels["bounded"].variants
    assert variant.cache_mode_ca is None and variant.num_regs == 10


def test_ptx_says_its_target_and_directives_and_nothing_the_jit_decides() -> None:
    bounded = only_variant("attr_kernels.ptx", "bounded")
    assert (bounded.source, bounded.arch, bounded.ptx_version, bounded.max_threads) == ("ptx", 90, 90, 256)
    assert (bounded.num_regs, bounded.local_bytes) == (None, None)
    assert bounded.static_shared is None  # big_tile declares a .shared array: the JIT lays it out
    clustered = only_variant("attr_kernels.ptx", "clustered")
    assert (clustered.cluster_dims, clustered.explicit_cluster) == ((2, 1, 1), True)


def test_ptx_without_static_shared_or_constant_variables_has_none() -> None:
    ptx = (b".version 9.0\n.target sm_86\n.address_size 64\n.extern .shared .align 16 .b8 dyn[];\n"
           b".visible .entry k(.param .u64 p)\n.reqntid 64, 2\n{\n\tld.shared.f32 %f1, [dyn];\n\tret;\n}\n")
    (variant,) = parse_module_image(ptx).kernels["k"].variants
    assert (variant.arch, variant.static_shared, variant.const_bytes, variant.max_threads) == (86, 0, 0, 128)


def test_a_fatbin_keeps_every_entrys_figures_and_the_device_picks_its_own() -> None:
    image = parse_module_image((KERNELS / "test_kernels.fatbin").read_bytes())
    softmax = image.kernels[SOFTMAX]
    assert sorted((v.source, v.arch) for v in softmax.variants) == [("cubin", 80), ("cubin", 90), ("ptx", 90)]
    chosen = device_variant(softmax, 90)
    assert chosen is not None and (chosen.source, chosen.arch, chosen.num_regs) == ("cubin", 90, REGS_SM90[SOFTMAX])
    on_ampere = device_variant(softmax, 86)  # sm_80 code runs on 8.6; sm_90 and compute_90 do not
    assert on_ampere is not None and (on_ampere.arch, on_ampere.num_regs) == (80, REGS_SM80[SOFTMAX])
    lz4 = parse_module_image((KERNELS / "test_kernels.lz4.fatbin").read_bytes()).kernels[SOFTMAX]
    jit = device_variant(lz4, 90)  # sm_80 cubin + compute_90 PTX on 9.0: the driver compiles the PTX
    assert jit is not None and jit.source == "ptx"
    default = parse_module_image((KERNELS / "test_kernels.default.fatbin").read_bytes()).kernels[SOFTMAX]
    zstd = device_variant(default, 90)  # its compute_90 PTX is ZSTD-compressed, and read as well
    assert zstd is not None and (zstd.source, zstd.arch) == ("ptx", 90)


# -- the register file's limit on a block ----------------------------------------------------------

@pytest.mark.parametrize(("regs", "bound", "threads"), [
    (8, None, 1024), (64, None, 1024),  # 64 registers x 1024 threads fill the 64 Ki register file exactly
    (72, None, 896),  # 2304 registers a warp: 28 warps (a multiple of the 4 sub-partitions)
    (128, None, 512), (255, None, 256), (128, 256, 256), (16, 96, 96),
])
def test_max_threads_per_block_is_the_least_of_device_bound_and_registers(
        regs: int, bound: int | None, threads: int) -> None:
    variant = KernelAttributes("cubin", 90, 90, num_regs=regs, max_threads=bound)
    assert max_threads_per_block(variant, H100) == threads


def test_ptx_max_threads_is_known_only_from_a_launch_bound() -> None:
    assert max_threads_per_block(KernelAttributes("ptx", 90, 90), H100) is None
    assert max_threads_per_block(KernelAttributes("ptx", 90, 90, max_threads=4096), H100) == 1024


# -- the sim backend ------------------------------------------------------------------------------

class Gpu:
    def __init__(self) -> None:
        self.ex = SimExecutor()

    def __call__(self, name: str, *, inp: bytes = b"", **args: Any) -> Any:
        spec = CALLS_BY_NAME[name]
        return self.ex.execute(spec, spec.args(**args), CallIO(memoryview(inp), memoryview(bytearray(64))))

    def function(self, image: Path, name: str) -> int:
        module = self("module_load_data", inp=image.read_bytes()).module
        return int(self("module_get_function", module=module, inp=name.encode()).function)

    def get(self, function: int, attrib: A) -> int:
        return int(self("func_get_attribute", attrib=attrib, function=function).value)

    def set(self, function: int, attrib: A, value: int) -> None:
        self("func_set_attribute", function=function, attrib=attrib, value=value)

    def fails(self, status: CUresult, name: str, **args: Any) -> str:
        with pytest.raises(CudaError) as caught:
            self(name, **args)
        assert caught.value.status == status, caught.value
        return caught.value.message

    def launch(self, function: int, shared: int, params: bytes) -> None:
        self("launch_kernel", function=function, grid_x=1, grid_y=1, grid_z=1, block_x=32, block_y=1,
             block_z=1, shared_mem_bytes=shared, stream=0, inp=params)


def test_sim_answers_a_fatbin_kernel_from_its_sm90_cubin() -> None:
    gpu = Gpu()
    softmax = gpu.function(KERNELS / "test_kernels.fatbin", SOFTMAX)
    assert {a: gpu.get(softmax, a) for a in A} == {
        A.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: 1024,
        A.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: 8192,
        A.CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES: 16,
        A.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES: 0,
        A.CU_FUNC_ATTRIBUTE_NUM_REGS: 20,
        A.CU_FUNC_ATTRIBUTE_PTX_VERSION: 90,
        A.CU_FUNC_ATTRIBUTE_BINARY_VERSION: 90,
        A.CU_FUNC_ATTRIBUTE_CACHE_MODE_CA: 0,
        A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: 48 * 1024 - 8192,
        A.CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT: -1,
        A.CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET: 0,
        A.CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH: 0,
        A.CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT: 0,
        A.CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH: 0,
        A.CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED: 0,
        A.CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE: 0,
    }


def test_ptx_attributes_are_what_the_engine_lays_out() -> None:
    """sim's JIT compiler is the PTX engine: what a driver's compilation decides, it answers."""
    gpu = Gpu()
    ptx = gpu.function(KERNELS / "test_kernels.ptx", SOFTMAX)
    assert gpu.get(ptx, A.CU_FUNC_ATTRIBUTE_PTX_VERSION) == 80  # .target sm_80
    assert gpu.get(ptx, A.CU_FUNC_ATTRIBUTE_BINARY_VERSION) == 90  # compiled for the device it loads on
    assert gpu.get(ptx, A.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES) == 8192  # as ptxas: two 1024-float arrays
    assert gpu.get(ptx, A.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES) == 0
    assert gpu.get(ptx, A.CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES) == 16  # the module's .const g_lut[16]
    assert 1 <= gpu.get(ptx, A.CU_FUNC_ATTRIBUTE_NUM_REGS) <= 255
    assert gpu.get(ptx, A.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK) == 1024
    assert gpu.get(ptx, A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) == 48 * 1024 - 8192
    bounded = gpu.function(ATTR_KERNELS / "attr_kernels.ptx", "bounded")
    assert gpu.get(bounded, A.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK) == 256  # its launch bound


def test_what_no_image_entry_runs_is_not_supported_and_says_why() -> None:
    turing = Gpu()  # the image's sm_80 cubin and compute_90 PTX: neither runs on compute capability 7.5
    turing.ex = SimExecutor(DeviceConfig(compute_capability=(7, 5)))
    none = turing.function(KERNELS / "test_kernels.default.fatbin", SOFTMAX)
    why = turing.fails(CUresult.CUDA_ERROR_NOT_SUPPORTED, "func_get_attribute",
                       attrib=A.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, function=none)
    assert "compute capability 7.5" in why and "elf sm_80, ptx compute_90 zstd" in why


def test_the_dynamic_shared_limit_is_set_within_the_opt_in_limit_and_bounds_launches() -> None:
    gpu = Gpu()
    softmax = gpu.function(KERNELS / "test_kernels.fatbin", SOFTMAX)
    x = gpu("mem_alloc", bytesize=4096).dptr
    params = x.to_bytes(8, "little") * 2 + (1).to_bytes(4, "little") + (32).to_bytes(4, "little")
    limit = A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    gpu.launch(softmax, 40 * 1024, params)  # the default: 48 KiB less 8 KiB static
    assert "may use 40960" in gpu.fails(
        CUresult.CUDA_ERROR_INVALID_VALUE, "launch_kernel", function=softmax, grid_x=1, grid_y=1, grid_z=1,
        block_x=32, block_y=1, block_z=1, shared_mem_bytes=40 * 1024 + 1, stream=0, inp=params)
    gpu.set(softmax, limit, 219 * 1024)  # the most: 227 KiB opt-in less 8 KiB static
    assert gpu.get(softmax, limit) == 219 * 1024
    gpu.launch(softmax, 219 * 1024, params)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "func_set_attribute", function=softmax, attrib=limit,
              value=219 * 1024 + 1)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "func_set_attribute", function=softmax, attrib=limit, value=-1)
    assert gpu.get(softmax, limit) == 219 * 1024  # a refused value changes nothing
    gpu.set(softmax, limit, 1024)  # lowering it bounds launches too
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "launch_kernel", function=softmax, grid_x=1, grid_y=1,
              grid_z=1, block_x=32, block_y=1, block_z=1, shared_mem_bytes=2048, stream=0, inp=params)


def test_a_kernel_with_48_kib_static_shared_memory_gets_no_dynamic_by_default() -> None:
    gpu = Gpu()
    tile = gpu.function(ATTR_KERNELS / "attr_kernels.cubin", "big_tile")
    assert gpu.get(tile, A.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES) == 48 * 1024
    assert gpu.get(tile, A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) == 0
    gpu.set(tile, A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 179 * 1024)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "func_set_attribute", function=tile,
              attrib=A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, value=179 * 1024 + 1)


def test_ptx_dynamic_shared_limit_is_set_within_the_opt_in_limit_less_the_engines_static_layout() -> None:
    gpu = Gpu()
    ptx = gpu.function(KERNELS / "test_kernels.ptx", SOFTMAX)
    limit = A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    gpu.set(ptx, limit, 219 * 1024)  # 227 KiB opt-in less 8 KiB static
    assert gpu.get(ptx, limit) == 219 * 1024
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "func_set_attribute", function=ptx, attrib=limit,
              value=219 * 1024 + 1)


@pytest.mark.parametrize("attrib", [a for a in A if a < A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES]
                         + [A.CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET])
def test_read_only_attributes_refuse_a_set(attrib: A) -> None:
    gpu = Gpu()
    scale = gpu.function(KERNELS / "test_kernels.cubin", SCALE)
    before = gpu.get(scale, attrib)
    assert "read-only" in gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "func_set_attribute", function=scale,
                                    attrib=attrib, value=before + 1)
    assert gpu.get(scale, attrib) == before


@pytest.mark.parametrize(("attrib", "good", "bad"), [
    (A.CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, [0, 50, 100, -1], [101, -2]),
    (A.CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED, [1, 0], [2, -1]),
    (A.CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE, [2, 1, 0], [3, -1]),
    (A.CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH, [2, 0], [-1]),
])
def test_settable_attributes_keep_valid_values_and_refuse_others(attrib: A, good: list[int], bad: list[int]) -> None:
    gpu = Gpu()
    scale = gpu.function(KERNELS / "test_kernels.cubin", SCALE)
    for value in good:
        gpu.set(scale, attrib, value)
        assert gpu.get(scale, attrib) == value
    for value in bad:
        gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "func_set_attribute", function=scale, attrib=attrib,
                  value=value)
    assert gpu.get(scale, attrib) == good[-1]


def test_compile_time_cluster_dimensions_cannot_be_changed() -> None:
    gpu = Gpu()
    clustered = gpu.function(ATTR_KERNELS / "attr_kernels.cubin", "clustered")
    assert gpu.get(clustered, A.CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET) == 1
    assert [gpu.get(clustered, a) for a in (A.CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH,
                                            A.CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT,
                                            A.CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH)] == [2, 1, 1]
    gpu.fails(CUresult.CUDA_ERROR_NOT_PERMITTED, "func_set_attribute", function=clustered,
              attrib=A.CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH, value=4)


def test_launch_bounds_and_stack_frames_are_reported() -> None:
    gpu = Gpu()
    assert gpu.get(gpu.function(ATTR_KERNELS / "attr_kernels.cubin", "bounded"),
                   A.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK) == 256
    assert gpu.get(gpu.function(ATTR_KERNELS / "attr_kernels.cubin", "with_stack"),
                   A.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES) == 208
    assert gpu.get(gpu.function(ATTR_KERNELS / "attr_kernels.dlcm.cubin", "bounded"),
                   A.CU_FUNC_ATTRIBUTE_CACHE_MODE_CA) == 1


def test_wrong_and_stale_handles_are_invalid() -> None:
    gpu = Gpu()
    module = gpu("module_load_data", inp=(KERNELS / "test_kernels.cubin").read_bytes()).module
    scale = int(gpu("module_get_function", module=module, inp=SCALE.encode()).function)
    stream = int(gpu("stream_create", flags=0).stream)
    for handle in (0, stream, module, scale + 1000):
        gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "func_get_attribute",
                  attrib=A.CU_FUNC_ATTRIBUTE_NUM_REGS, function=handle)
        gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "func_set_attribute", function=handle,
                  attrib=A.CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, value=50)
    gpu("module_unload", module=module)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "func_get_attribute", attrib=A.CU_FUNC_ATTRIBUTE_NUM_REGS,
              function=scale)


def test_settings_end_with_the_module() -> None:
    gpu = Gpu()
    image = KERNELS / "test_kernels.cubin"
    first = gpu.function(image, SCALE)
    gpu.set(first, A.CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, 25)
    assert gpu.get(gpu.function(image, SCALE), A.CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT) == -1


# -- the cuda backend's calls, against a stand-in for cuda.bindings.driver ------------------------

class FakeDriver:
    """Records calls with cuda-bindings' signatures: ``cuFuncGetAttribute(attrib, hfunc)`` returns
    ``(err, value)``, ``cuFuncSetAttribute(hfunc, attrib, value)`` returns ``(err,)``."""

    CUfunction_attribute = A

    def __init__(self, status: int = 0) -> None:
        self.status = status
        self.calls: list[tuple[Any, ...]] = []

    def cuFuncGetAttribute(self, attrib: A, hfunc: object) -> tuple[int, int]:  # noqa: N802
        self.calls.append(("get", attrib, hfunc))
        return self.status, 42

    def cuFuncSetAttribute(self, hfunc: object, attrib: A, value: int) -> tuple[int]:  # noqa: N802
        self.calls.append(("set", hfunc, attrib, value))
        return (self.status,)


def cuda_executor(driver: FakeDriver) -> tuple[CudaExecutor, int, object]:
    from executor._base import HandleTable
    from executor._cuda_driver import Driver

    ex = object.__new__(CudaExecutor)  # no GPU here: only the records the two handlers use
    ex._drv = Driver(driver)
    ex._functions = HandleTable("function")
    hfunc = object()
    return ex, ex._functions.add(SimpleNamespace(function=hfunc)), hfunc  # type: ignore[arg-type]


def test_the_cuda_backend_passes_attributes_to_the_driver_in_its_argument_order() -> None:
    driver = FakeDriver()
    ex, handle, hfunc = cuda_executor(driver)
    io = CallIO(memoryview(b""), memoryview(bytearray(0)))
    result = ex.func_get_attribute(FuncGetAttributeArgs(attrib=A.CU_FUNC_ATTRIBUTE_NUM_REGS, function=handle), io)
    assert result.value == 42
    ex.func_set_attribute(FuncSetAttributeArgs(
        function=handle, attrib=A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, value=65536), io)
    assert driver.calls == [("get", A.CU_FUNC_ATTRIBUTE_NUM_REGS, hfunc),
                            ("set", hfunc, A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 65536)]
    with pytest.raises(CudaError) as caught:
        ex.func_get_attribute(FuncGetAttributeArgs(attrib=A.CU_FUNC_ATTRIBUTE_NUM_REGS, function=handle + 1), io)
    assert caught.value.status == CUresult.CUDA_ERROR_INVALID_HANDLE and len(driver.calls) == 2


def test_the_cuda_backend_reports_the_drivers_refusal() -> None:
    ex, handle, _ = cuda_executor(FakeDriver(status=int(CUresult.CUDA_ERROR_INVALID_VALUE)))
    with pytest.raises(CudaError) as caught:
        ex.func_set_attribute(FuncSetAttributeArgs(function=handle, attrib=A.CU_FUNC_ATTRIBUTE_NUM_REGS, value=1),
                              CallIO(memoryview(b""), memoryview(bytearray(0))))
    assert caught.value.status == CUresult.CUDA_ERROR_INVALID_VALUE
    assert "cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_NUM_REGS, 1)" in caught.value.message
