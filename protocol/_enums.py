"""CUDA and cuBLAS enumerations that calls carry, with CUDA's names and values."""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "CublasComputeType",
    "CublasOperation",
    "CudaDataType",
    "GranularityOption",
    "MemAccessFlags",
    "StreamCaptureMode",
    "StreamCaptureStatus",
]


class GranularityOption(IntEnum):
    """``CUmemAllocationGranularity_flags``."""

    CU_MEM_ALLOC_GRANULARITY_MINIMUM = 0
    CU_MEM_ALLOC_GRANULARITY_RECOMMENDED = 1


class MemAccessFlags(IntEnum):
    """``CUmemAccess_flags``."""

    CU_MEM_ACCESS_FLAGS_PROT_NONE = 0
    CU_MEM_ACCESS_FLAGS_PROT_READ = 1
    CU_MEM_ACCESS_FLAGS_PROT_READWRITE = 3


class StreamCaptureMode(IntEnum):
    """``CUstreamCaptureMode``."""

    CU_STREAM_CAPTURE_MODE_GLOBAL = 0
    CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1
    CU_STREAM_CAPTURE_MODE_RELAXED = 2


class StreamCaptureStatus(IntEnum):
    """``CUstreamCaptureStatus``."""

    CU_STREAM_CAPTURE_STATUS_NONE = 0
    CU_STREAM_CAPTURE_STATUS_ACTIVE = 1
    CU_STREAM_CAPTURE_STATUS_INVALIDATED = 2


class CublasOperation(IntEnum):
    """``cublasOperation_t``."""

    CUBLAS_OP_N = 0
    CUBLAS_OP_T = 1
    CUBLAS_OP_C = 2


class CudaDataType(IntEnum):
    """``cudaDataType_t`` members accepted as GEMM matrix types."""

    CUDA_R_32F = 0
    CUDA_R_16F = 2
    CUDA_R_16BF = 14


class CublasComputeType(IntEnum):
    """``cublasComputeType_t`` members with f32 accumulation."""

    CUBLAS_COMPUTE_32F = 68
    CUBLAS_COMPUTE_32F_PEDANTIC = 69
    CUBLAS_COMPUTE_32F_FAST_16F = 74
    CUBLAS_COMPUTE_32F_FAST_16BF = 75
    CUBLAS_COMPUTE_32F_FAST_TF32 = 77
