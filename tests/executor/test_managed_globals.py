"""``module_global_alias`` (0x00C1, a ``__managed__`` variable's module global moved to managed memory):
on sim the global is the given range from then on — cuModuleGetGlobal answers it, a kernel reads and
writes it there, the module's unload leaves it alone — only for the global's own size, once, inside the
VM's memory; on cuda it is refused (NOT_SUPPORTED)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from executor import CallIO, CudaError
from executor._sim import SimExecutor
from protocol import CALLS_BY_NAME, CUresult

from .test_cuda_textures import FakeDriver, _executor
from .test_handlers import call_handler

PTX = b"""
.version 8.0
.target sm_90
.address_size 64
.global .attribute(.managed) .align 4 .u32 counter = 5;
.visible .entry bump()
{
    .reg .b32 %r<2>;
    .reg .b64 %rd<2>;
    mov.u64 %rd1, counter;
    atom.global.add.u32 %r1, [%rd1], 1;
    ret;
}
"""


def _call(ex: SimExecutor, name: str, inp: bytes = b"", **args: Any) -> Any:
    spec = CALLS_BY_NAME[name]
    return ex.execute(spec, spec.args(**args), CallIO(memoryview(inp), memoryview(bytearray(0))))


def _fails(status: CUresult, ex: SimExecutor, name: str, inp: bytes = b"", **args: Any) -> str:
    with pytest.raises(CudaError) as caught:
        _call(ex, name, inp, **args)
    assert caught.value.status == status, caught.value
    return caught.value.message


def test_a_managed_global_moves_to_the_vms_range() -> None:
    ex = SimExecutor()
    module = int(_call(ex, "module_load_data", PTX + b"\0").module)
    own = _call(ex, "module_get_global", b"counter", module=module)
    assert own.bytes == 4 and ex.memory.read(own.dptr, 4).view(np.uint32)[0] == 5
    managed = ex.memory.alloc(4096)
    ex.memory.write(managed, np.array([40], dtype=np.uint32).view(np.uint8))
    _call(ex, "module_global_alias", b"counter\0", module=module, address=managed, size=4)
    assert _call(ex, "module_get_global", b"counter", module=module).dptr == managed
    function = int(_call(ex, "module_get_function", b"bump", module=module).function)
    _call(ex, "launch_kernel", b"", function=function, grid_x=2, grid_y=1, grid_z=1, block_x=32,
          block_y=1, block_z=1, shared_mem_bytes=0, stream=0)
    _call(ex, "ctx_synchronize")
    assert ex.memory.read(managed, 4).view(np.uint32)[0] == 40 + 64
    assert ex.memory.read(own.dptr, 4).view(np.uint32)[0] == 5  # its own bytes are no longer used
    # only once, only its own size, only the VM's memory
    assert "managed already" in _fails(CUresult.CUDA_ERROR_INVALID_VALUE, ex, "module_global_alias", b"counter",
                                       module=module, address=managed, size=4)
    module2 = int(_call(ex, "module_load_data", PTX + b"\0").module)
    assert "not 8" in _fails(CUresult.CUDA_ERROR_INVALID_VALUE, ex, "module_global_alias", b"counter",
                             module=module2, address=managed, size=8)
    _fails(CUresult.CUDA_ERROR_INVALID_VALUE, ex, "module_global_alias", b"counter", module=module2,
           address=managed + (1 << 40), size=4)
    _fails(CUresult.CUDA_ERROR_NOT_FOUND, ex, "module_global_alias", b"nothing", module=module2,
           address=managed, size=4)
    _call(ex, "module_unload", module=module)
    assert ex.memory.read(managed, 4).view(np.uint32)[0] == 104  # the range outlives the module


def test_cuda_refuses_it() -> None:
    ex = _executor(FakeDriver())
    with pytest.raises(CudaError) as caught:
        call_handler(ex, "module_global_alias", inp=b"counter", module=1, address=0x10000, size=4)
    assert caught.value.status == CUresult.CUDA_ERROR_NOT_SUPPORTED
