/*
 * Force-included (nvcc -include) when bandwidthTest is built with CUDA 13, its source unchanged.
 * NVIDIA removed the sample from cuda-samples (7d1730f3, "Remove outdated bandwidthTest sample") when
 * CUDA 13 dropped cudaDeviceProp::computeMode, which it reads once, to skip a device in the
 * prohibited compute mode. After helper_cuda.h (whose own local variable of that name a macro would
 * break; its include guard keeps the sample's later include from reading it again) the member reads
 * as 0, cudaComputeModeDefault: what the vgpu device reports for cudaDevAttrComputeMode.
 */
#include <cuda_runtime.h>
#include <helper_cuda.h>
#define computeMode major * 0
