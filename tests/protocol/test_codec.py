"""The codec, table-driven in both directions: model ⇄ bytes, and bytes that must be refused."""

from __future__ import annotations

import struct

import pytest

from protocol import (
    CALLS,
    CALLS_BY_NAME,
    MAX_INLINE_RESULTS,
    CublasComputeType,
    CublasOperation,
    CudaDataType,
    CUresult,
    GranularityOption,
    LocalProtocolError,
    RemoteProtocolError,
    StreamCaptureStatus,
    Submission,
    SubmitFlags,
    WireModel,
    decode_args,
    decode_call,
    decode_result,
    encode_args,
    encode_result,
    layout_of,
)
from protocol.models import (
    CaptureInfoResult,
    DeviceUuidResult,
    EventElapsedResult,
    GemmExArgs,
    GranularityArgs,
    LaunchKernelArgs,
    MemcpyHtoDArgs,
    MemGetInfoResult,
    MemsetD8Args,
    NoArgs,
)

# (call, "args" | "result", model, its bytes as the wire carries them)
CASES: list[tuple[str, str, WireModel, bytes]] = [
    ("nop", "args", NoArgs(), b""),
    ("memset_d8", "args", MemsetD8Args(dst=0x1000, count=3, value=0xA5, stream=2),
     struct.pack("<QQB3xI", 0x1000, 3, 0xA5, 2)),
    ("memcpy_htod", "args", MemcpyHtoDArgs(dst=0xFFFF_FFFF_FFFF_FFFF, stream=0xFFFF_FFFF),
     struct.pack("<QI4x", 2**64 - 1, 2**32 - 1)),
    ("mem_get_allocation_granularity", "args",
     GranularityArgs(device=-1, option=GranularityOption.CU_MEM_ALLOC_GRANULARITY_RECOMMENDED),
     struct.pack("<iI", -1, 1)),
    ("launch_kernel", "args",
     LaunchKernelArgs(function=4, grid_x=2**31 - 1, grid_y=65535, grid_z=1, block_x=32, block_y=32,
                      block_z=1, shared_mem_bytes=49152, stream=0),
     struct.pack("<9I4x", 4, 2**31 - 1, 65535, 1, 32, 32, 1, 49152, 0)),
    ("cublas_gemm_ex", "args",
     GemmExArgs(handle=1, transa=CublasOperation.CUBLAS_OP_T, transb=CublasOperation.CUBLAS_OP_N,
                m=4, n=5, k=6, alpha=0.25, a=0xA000, a_type=CudaDataType.CUDA_R_16F, lda=6, b=0xB000,
                b_type=CudaDataType.CUDA_R_16F, ldb=6, beta=-1.5, c=0xC000, c_type=CudaDataType.CUDA_R_32F,
                ldc=4, compute_type=CublasComputeType.CUBLAS_COMPUTE_32F, algo=-1, alpha_imag=0.5,
                beta_imag=-2.0),
     struct.pack("<IIIiiidQIiQIidQIiIidd", 1, 1, 0, 4, 5, 6, 0.25, 0xA000, 2, 6, 0xB000, 2, 6, -1.5,
                 0xC000, 0, 4, 68, -1, 0.5, -2.0)),
    ("mem_get_info", "result", MemGetInfoResult(free=1 << 30, total=1 << 34), struct.pack("<QQ", 1 << 30, 1 << 34)),
    ("device_get_uuid", "result", DeviceUuidResult(uuid=bytes(range(16))), bytes(range(16))),
    ("event_elapsed_time", "result", EventElapsedResult(milliseconds=1.5), struct.pack("<f4x", 1.5)),
    ("stream_get_capture_info", "result",
     CaptureInfoResult(status=StreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_ACTIVE, capture_id=2**64 - 1),
     struct.pack("<I4xQ", 1, 2**64 - 1)),
]


@pytest.mark.parametrize(("call", "which", "model", "raw"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_encode(call: str, which: str, model: WireModel, raw: bytes) -> None:
    encoded = encode_args(model) if which == "args" else encode_result(model)
    assert encoded == raw


@pytest.mark.parametrize(("call", "which", "model", "raw"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_decode(call: str, which: str, model: WireModel, raw: bytes) -> None:
    spec = CALLS_BY_NAME[call]
    if which == "args":
        assert decode_args(spec, raw) == model
    else:
        # A completion carries 48 bytes of results; the struct is a prefix, the rest is zeros.
        assert decode_result(spec, raw.ljust(MAX_INLINE_RESULTS, b"\0")) == model


def _args(call: str, raw: bytes) -> Submission:
    return Submission(11, CALLS_BY_NAME[call].call_id, SubmitFlags(0), 0, 0, 0, 0, raw)


def _launch(**dims: int) -> Submission:
    values = {"grid_x": 1, "grid_y": 1, "grid_z": 1, "block_x": 1, "block_y": 1, "block_z": 1} | dims
    return _args("launch_kernel", struct.pack("<9I4x", 1, *values.values(), 0, 0))


def _sgemm(m: int, n: int, k: int, lda: int, ldb: int, ldc: int, transa: int = 0) -> bytes:
    return struct.pack("<IIIiiif4xQi4xQifQi4x", 1, transa, 0, m, n, k, 1.0, 0, lda, 0, ldb, 0.0, 0, ldc)


REFUSALS: list[tuple[str, Submission, str]] = [
    ("unknown call", Submission(11, 0x7777, SubmitFlags(0), 0, 0, 0, 0, b""), "unknown call id 0x7777"),
    ("short args", _args("mem_alloc", b"\0" * 4), "mem_alloc arguments: 4 bytes, the struct is 8"),
    ("long args", _args("mem_alloc", b"\0" * 16), "mem_alloc arguments: 16 bytes, the struct is 8"),
    ("args for nop", _args("nop", b"\0" * 8), "nop arguments: 8 bytes, the struct is 0"),
    ("unknown enum", _args("mem_get_allocation_granularity", struct.pack("<iI", 0, 9)), "option: Input should be"),
    ("unknown op", _args("cublas_sgemm", _sgemm(1, 1, 1, 1, 1, 1, transa=3)), "transa: Input should be"),
    ("zero block", _launch(block_x=0), "grid and block dimensions must be at least 1"),
    ("big block", _launch(block_x=1024, block_y=2), "a block has at most 1024 threads"),
    ("grid_y", _launch(grid_y=65536), "grid dimensions exceed CUDA's limits"),
    ("lda", _args("cublas_sgemm", _sgemm(8, 1, 1, 4, 1, 8)), "lda=4 < max(1, 8)"),
    ("ldb", _args("cublas_sgemm", _sgemm(1, 1, 8, 1, 4, 1)), "ldb=4 < max(1, 8)"),
    ("ldc", _args("cublas_sgemm", _sgemm(8, 1, 1, 8, 1, 0)), "ldc=0 < max(1, 8)"),
    ("negative m", _args("cublas_sgemm", _sgemm(-1, 1, 1, 1, 1, 1)), "m, n and k must not be negative"),
    ("mem_create size", _args("mem_create", struct.pack("<QiI", 0, 0, 0)), "size must be positive"),
    ("alignment", _args("mem_address_reserve", struct.pack("<QQQQ", 4096, 3, 0, 0)),
     "alignment must be 0 or a power of two"),
]


@pytest.mark.parametrize(("what", "sub", "complaint"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_decode_call_refuses_with_a_clear_message(what: str, sub: Submission, complaint: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_call(sub)
    assert complaint in info.value.message, info.value.message
    expected = CUresult.CUDA_ERROR_NOT_SUPPORTED if what == "unknown call" else CUresult.CUDA_ERROR_INVALID_VALUE
    assert info.value.status == expected


def test_decode_result_refuses_a_truncated_result_area() -> None:
    with pytest.raises(RemoteProtocolError, match="mem_get_info results: 8 bytes, the struct is 16"):
        decode_result(CALLS_BY_NAME["mem_get_info"], bytes(8))


def test_encoding_a_model_that_bypassed_validation_is_our_bug() -> None:
    broken = MemsetD8Args.model_construct(dst=0, count=1, value=256, stream=0)
    with pytest.raises(LocalProtocolError, match="cannot encode MemsetD8Args"):
        encode_args(broken)


def test_models_are_frozen_and_refuse_unknown_fields() -> None:
    args = MemsetD8Args(dst=0, count=1, value=1, stream=0)
    with pytest.raises(ValueError, match="frozen"):
        args.value = 2  # type: ignore[misc]
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        MemsetD8Args(dst=0, count=1, value=1, stream=0, bogus=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="less than or equal to 255"):
        MemsetD8Args(dst=0, count=1, value=256, stream=0)


def test_every_call_fits_its_inline_slots_and_has_a_unique_number_and_name() -> None:
    assert len({s.call_id for s in CALLS.values()}) == len(CALLS) == len(CALLS_BY_NAME)
    for spec in CALLS.values():
        assert layout_of(spec.args).size <= 160
        assert layout_of(spec.result).size <= MAX_INLINE_RESULTS
        assert layout_of(spec.args).size % 8 == 0 and layout_of(spec.result).size % 8 == 0
        assert spec.name == spec.name.lower() and spec.name.isidentifier()
        if spec.synchronizing:
            assert not spec.is_async, f"{spec.name} cannot both wait and be posted"


@pytest.mark.parametrize(
    "name",
    ["device_get_name", "device_get_pci_bus_id", "mem_alloc", "memset_d8", "memset_d16", "memset_d32",
     "memcpy_htod", "memcpy_dtoh", "memcpy_dtod", "mem_create", "mem_address_reserve", "mem_map",
     "mem_set_access", "mem_get_allocation_granularity", "stream_wait_event", "event_elapsed_time",
     "module_load_data", "module_get_function", "module_get_global", "func_get_param_info",
     "launch_kernel", "cublas_sgemm", "cublas_gemm_ex", "cublas_gemm_strided_batched_ex",
     "cublas_gemm_batched_ex", "stream_begin_capture", "stream_end_capture", "graph_instantiate",
     "graph_launch"],
)
def test_catalog_covers_what_ggml_and_the_seed_notes_need(name: str) -> None:
    assert name in CALLS_BY_NAME
