"""CUDA and cuBLAS enumerations that calls carry, with CUDA's names and values."""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "CublasComputeType",
    "CublasDiagType",
    "CublasFillMode",
    "CublasOperation",
    "CublasSideMode",
    "CudaDataType",
    "FunctionAttribute",
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


class FunctionAttribute(IntEnum):
    """``CUfunction_attribute`` (CUDA 13.0's cuda.h); ``cudaFuncAttribute`` uses the same values 8-15."""

    CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0
    CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES = 1
    CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES = 2
    CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES = 3
    CU_FUNC_ATTRIBUTE_NUM_REGS = 4
    CU_FUNC_ATTRIBUTE_PTX_VERSION = 5
    CU_FUNC_ATTRIBUTE_BINARY_VERSION = 6
    CU_FUNC_ATTRIBUTE_CACHE_MODE_CA = 7
    CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8
    CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT = 9
    CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET = 10
    CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH = 11
    CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT = 12
    CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH = 13
    CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED = 14
    CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE = 15


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
    """``cudaDataType_t`` members some cuBLAS GEMM takes as a matrix type."""

    CUDA_R_32F = 0
    CUDA_R_64F = 1
    CUDA_R_16F = 2
    CUDA_R_8I = 3
    CUDA_C_32F = 4
    CUDA_C_64F = 5
    CUDA_C_8I = 7
    CUDA_R_32I = 10
    CUDA_R_16BF = 14


class CublasComputeType(IntEnum):
    """``cublasComputeType_t``."""

    CUBLAS_COMPUTE_16F = 64
    CUBLAS_COMPUTE_16F_PEDANTIC = 65
    CUBLAS_COMPUTE_32F = 68
    CUBLAS_COMPUTE_32F_PEDANTIC = 69
    CUBLAS_COMPUTE_64F = 70
    CUBLAS_COMPUTE_64F_PEDANTIC = 71
    CUBLAS_COMPUTE_32I = 72
    CUBLAS_COMPUTE_32I_PEDANTIC = 73
    CUBLAS_COMPUTE_32F_FAST_16F = 74
    CUBLAS_COMPUTE_32F_FAST_16BF = 75
    CUBLAS_COMPUTE_32F_FAST_TF32 = 77


class CublasSideMode(IntEnum):
    """``cublasSideMode_t``: on which side of B the triangular matrix stands."""

    CUBLAS_SIDE_LEFT = 0
    CUBLAS_SIDE_RIGHT = 1


class CublasFillMode(IntEnum):
    """``cublasFillMode_t`` members a triangular matrix may have."""

    CUBLAS_FILL_MODE_LOWER = 0
    CUBLAS_FILL_MODE_UPPER = 1


class CublasDiagType(IntEnum):
    """``cublasDiagType_t``."""

    CUBLAS_DIAG_NON_UNIT = 0
    CUBLAS_DIAG_UNIT = 1
