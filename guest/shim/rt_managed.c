/*
 * Runtime API: advice on managed memory (cudaMemAdvise), on the driver's cuMemAdvise_v2 — checked as
 * CUDA checks it and otherwise a hint: managed memory is host memory the device reads in place
 * (cu_managed.c), so nothing migrates or is duplicated whatever the advice says.
 */
#include "cu_api.h"
#include "rt_internal.h"

/* cudaMemoryAdvise has the driver's values; cudaMemLocation is CUmemLocation's layout */
cudaError_t cudaMemAdvise(const void *ptr, size_t count, int advice, CUmemLocation location)
{
    RT_CALL(cuMemAdvise_v2((CUdeviceptr)(uintptr_t)ptr, count, advice, location));
}
