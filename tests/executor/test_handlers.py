"""Both backends serve the whole catalog, and the cuda backend's typed driver layer passes calls through
as the bindings expect — all without a GPU.

A catalog call without a handler answers ``CUDA_ERROR_NOT_SUPPORTED`` at run time (``Executor.execute``),
which on the cuda backend nothing would notice until a guest hit it on a lent GPU; these tests find it
here. The cuda executor is built without its ``__init__`` (which needs a driver and a device): the
handler table is the class's methods, found by name as ``Executor.handler_for`` finds them.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

import pytest

from executor import CallIO, CudaError, Executor
from executor._cuda import CudaExecutor
from executor._cuda_driver import Driver, check
from executor._sim import SimExecutor
from protocol import CALLS, CALLS_BY_NAME, CallSpec, CUresult


def _cuda_without_a_device() -> CudaExecutor:
    ex = object.__new__(CudaExecutor)
    Executor.__init__(ex)  # only the handler cache and the fault queue: no driver, no context
    return ex


BACKENDS: dict[str, Callable[[], Executor]] = {"sim": SimExecutor, "cuda": _cuda_without_a_device}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_catalog_call_has_a_handler(backend: str) -> None:
    ex = BACKENDS[backend]()
    missing = [spec.name for spec in CALLS.values() if ex.handler_for(spec) is None]
    assert missing == [], f"the {backend} backend would answer NOT_SUPPORTED to {missing}"


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_each_handler_takes_its_calls_arguments_and_returns_its_result(backend: str) -> None:
    ex = BACKENDS[backend]()

    def signature(spec: CallSpec) -> tuple[object, object]:
        hints = typing.get_type_hints(getattr(type(ex), spec.name))
        return hints["args"], hints["return"]

    wrong = {spec.name: signature(spec) for spec in CALLS.values()
             if signature(spec) != (spec.args, spec.result)}
    assert wrong == {}


def test_no_cuda_handler_is_the_base_class_or_a_helper() -> None:
    """Each call is served by a method written for it, not by something that happens to share its name."""
    for spec in CALLS.values():
        owner = next(cls for cls in CudaExecutor.__mro__ if spec.name in vars(cls))
        assert owner.__module__.startswith("executor._cuda"), (spec.name, owner)


# -- the typed driver layer, against a stand-in for cuda.bindings.driver ---------------------------

class Handle:
    """Stands for one of the driver's objects (the layer only hands them back)."""

    def __int__(self) -> int:
        return id(self)


class Bindings:
    """Answers each ``cu*`` call with the next canned tuple for it and records the arguments."""

    def __init__(self, **answers: list[tuple[Any, ...]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any) -> tuple[Any, ...]:
            self.calls.append((name, args))
            return self.answers[name].pop(0)
        return call


def call_handler(ex: Executor, name: str, *, inp: bytes = b"", out_cap: int = 0, blocking: bool = True,
                 **args: Any) -> Any:
    """``name``'s handler itself, called with ``args`` (``execute`` would make the cuda context current
    first, and a stand-in executor has none)."""
    spec = CALLS_BY_NAME[name]
    handler = ex.handler_for(spec)
    assert handler is not None
    return handler(spec.args(**args), CallIO(memoryview(inp), memoryview(bytearray(out_cap)), blocking))


def test_a_parameter_layout_ends_at_the_drivers_invalid_value_and_other_failures_raise() -> None:
    bindings = Bindings(cuFuncGetParamInfo=[(0, 0, 8), (0, 8, 4), (int(CUresult.CUDA_ERROR_INVALID_VALUE), 0, 0),
                                            (int(CUresult.CUDA_ERROR_INVALID_HANDLE), 0, 0)])
    driver = Driver(bindings)
    hfunc = Handle()
    assert driver.func_param_info_or_none(hfunc, 0) == (0, 8)
    assert driver.func_param_info_or_none(hfunc, 1) == (8, 4)
    assert driver.func_param_info_or_none(hfunc, 2) is None
    with pytest.raises(CudaError) as caught:
        driver.func_param_info_or_none(hfunc, 3)
    assert caught.value.status == CUresult.CUDA_ERROR_INVALID_HANDLE
    assert [args for _, args in bindings.calls] == [(hfunc, i) for i in range(4)]


def test_capture_info_is_the_status_and_the_capture_id() -> None:
    stream = Handle()
    bindings = Bindings(cuStreamGetCaptureInfo=[(0, 1, 42, None, None, None, 0)],
                        cuStreamIsCapturing=[(0, 1)])
    driver = Driver(bindings)
    assert driver.stream_get_capture_info(stream) == (1, 42)
    assert driver.stream_is_capturing(stream) == 1


@pytest.mark.parametrize(("width", "function"), [(1, "cuMemsetD8Async"), (2, "cuMemsetD16Async"),
                                                 (4, "cuMemsetD32Async")])
def test_a_memset_goes_to_the_drivers_function_for_its_width(width: int, function: str) -> None:
    bindings = Bindings(**{function: [(0,)]})
    stream = Handle()
    Driver(bindings).memset_async(width, 0x1000, 7, 16, stream, "memset")
    assert bindings.calls == [(function, (0x1000, 7, 16, stream))]


def test_a_launch_passes_grid_block_and_the_extra_array_in_the_drivers_order() -> None:
    bindings = Bindings(cuLaunchKernel=[(0,)])
    hfunc, stream = Handle(), Handle()
    Driver(bindings).launch_kernel(hfunc, (2, 3, 4), (32, 1, 1), 128, stream, 0xABC)
    assert bindings.calls == [("cuLaunchKernel", (hfunc, 2, 3, 4, 32, 1, 1, 128, stream, 0, 0xABC))]


def test_the_occupancy_is_the_drivers() -> None:
    bindings = Bindings(cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags=[(0, 3)])
    hfunc = Handle()
    assert Driver(bindings).occupancy(hfunc, 256, 4096, 1) == 3
    assert bindings.calls == [("cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags", (hfunc, 256, 4096, 1))]


def test_an_occupancy_for_a_block_size_past_an_int_is_invalid_without_asking_the_driver() -> None:
    bindings = Bindings()
    with pytest.raises(CudaError) as caught:
        Driver(bindings).occupancy(Handle(), 1 << 31, 0, 0)
    assert caught.value.status == CUresult.CUDA_ERROR_INVALID_VALUE
    assert bindings.calls == []


def test_a_cooperative_launch_passes_kernel_params_and_no_extra() -> None:
    bindings = Bindings(cuLaunchCooperativeKernel=[(0,), (720,)])
    hfunc, stream = Handle(), Handle()
    Driver(bindings).launch_cooperative_kernel(hfunc, (4, 1, 1), (256, 1, 1), 0, stream, 0xBEEF)
    assert bindings.calls == [("cuLaunchCooperativeKernel", (hfunc, 4, 1, 1, 256, 1, 1, 0, stream, 0xBEEF))]
    with pytest.raises(CudaError) as caught:  # too large a grid: refused, and the context carries on
        Driver(bindings).launch_cooperative_kernel(hfunc, (999, 1, 1), (1024, 1, 1), 0, stream, 0xBEEF)
    assert caught.value.status == CUresult.CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE and not caught.value.sticky


def test_failures_carry_the_drivers_status_and_poisoning_ones_are_sticky() -> None:
    with pytest.raises(CudaError) as caught:
        check((int(CUresult.CUDA_ERROR_ILLEGAL_ADDRESS),), "cuStreamSynchronize")
    assert caught.value.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS and caught.value.sticky
    with pytest.raises(CudaError) as caught:
        check((99999, None), "cuMemAlloc")
    assert caught.value.status == CUresult.CUDA_ERROR_UNKNOWN and "99999" in caught.value.message
    assert not caught.value.sticky
    assert check((0, 5), "cuDriverGetVersion") == 5
    assert check((0, 1, 2), "cuMemGetInfo") == (1, 2)


def test_a_cluster_launch_is_cu_launch_kernel_ex_with_the_cluster_dimension_attribute() -> None:
    """cuLaunchKernelEx gets one CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION (4) with the shape, the grid, the
    block, the stream and the parameter block in ``extra``; the driver's 912 is raised as such."""
    from types import SimpleNamespace as Ns

    def objects() -> tuple[Ns, Ns]:
        return Ns(value=Ns(clusterDim=Ns())), Ns()

    (attr, config), (attr2, config2) = objects(), objects()
    # the binding's classes answer the objects the layer fills in
    bindings = Bindings(CUlaunchAttribute=[attr, attr2], CUlaunchConfig=[config, config2],  # type: ignore[list-item]
                        CUlaunchAttributeID=["CLUSTER", "CLUSTER"],  # type: ignore[list-item]
                        cuLaunchKernelEx=[(0,), (int(CUresult.CUDA_ERROR_INVALID_CLUSTER_SIZE),)])
    driver, hfunc, stream = Driver(bindings), Handle(), Handle()
    driver.launch_cluster_kernel(hfunc, (4, 2, 1), (64, 1, 1), 256, stream, 0xBEEF, (2, 2, 1))
    assert (attr.id, attr.value.clusterDim.x, attr.value.clusterDim.y, attr.value.clusterDim.z) == ("CLUSTER", 2, 2, 1)
    assert (config.gridDimX, config.gridDimY, config.gridDimZ, config.blockDimX, config.sharedMemBytes) == (4, 2, 1,
                                                                                                         64, 256)
    assert config.hStream is stream and config.attrs == [attr] and config.numAttrs == 1
    assert bindings.calls[-1] == ("cuLaunchKernelEx", (config, hfunc, 0, 0xBEEF))
    assert ("CUlaunchAttributeID", (4,)) in bindings.calls
    with pytest.raises(CudaError) as caught:
        driver.launch_cluster_kernel(hfunc, (3, 1, 1), (64, 1, 1), 0, stream, 0, (2, 1, 1))
    assert caught.value.status == CUresult.CUDA_ERROR_INVALID_CLUSTER_SIZE
