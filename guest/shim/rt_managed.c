/*
 * Runtime API: managed memory's extras — advice (cudaMemAdvise, on the driver's cuMemAdvise_v2: checked
 * as CUDA checks it and otherwise a hint: managed memory is host memory the device reads in place
 * (cu_managed.c), so nothing migrates or is duplicated whatever the advice says) and __managed__
 * variables (below).
 */
#include <stdlib.h>
#include <string.h>

#include "cu_api.h"
#include "rt_internal.h"
#include "vgpu_protocol.h"

#define CU_MEM_ATTACH_GLOBAL 0x1u

/* cudaMemoryAdvise has the driver's values; cudaMemLocation is CUmemLocation's layout */
cudaError_t cudaMemAdvise(const void *ptr, size_t count, int advice, CUmemLocation location)
{
    RT_CALL(cuMemAdvise_v2((CUdeviceptr)(uintptr_t)ptr, count, advice, location));
}

/* -- __managed__ variables ----------------------------------------------------------------------
 * nvcc's host code registers each with __cudaRegisterManagedVar(handle, &ptr, ...), `ptr` a host static
 * that every host access dereferences after one __cudaInitModule(handle). When the fatbin loads (that
 * call, or its first kernel), each variable gets managed memory (cuMemAllocManaged: host memory the
 * device reads at the same address), the module global's initial bytes are copied into it, the host is
 * told that the global now lives there (module_global_alias: kernels launched after it use that range),
 * and `ptr` points at it; the symbol calls (cudaMemcpyToSymbol(var, ...)) find it by that address.
 * On the cuda backend the host refuses the alias (CUDA_ERROR_NOT_SUPPORTED, logged): the fatbin's load
 * fails with it, as every use of its kernels then does. */

struct rt_managed {
    struct rt_managed *next;
    void **host_ptr;
    char *name;
    size_t size;
};

void __cudaRegisterManagedVar(void **handle, void **host_ptr, char *device_address, const char *device_name,
                              int ext, size_t size, int constant, int global)
{
    (void)device_address, (void)ext, (void)constant, (void)global;
    struct rt_fatbin *fb = (struct rt_fatbin *)handle;
    size_t n = device_name ? strlen(device_name) + 1 : 0;
    struct rt_managed *m = fb && host_ptr && n ? calloc(1, sizeof *m + n) : NULL;
    if (!m) {
        vgpu_shim_log("__cudaRegisterManagedVar: %s not registered (no fatbin, name or memory)",
                      device_name ? device_name : "(null)");
        return;
    }
    m->host_ptr = host_ptr;
    m->name = (char *)(m + 1);
    memcpy(m->name, device_name, n);
    m->size = size;
    pthread_mutex_lock(&fb->lock);
    m->next = fb->managed;
    fb->managed = m;
    pthread_mutex_unlock(&fb->lock);
}

cudaError_t rt_place_managed(struct rt_fatbin *fb)
{
    for (struct rt_managed *m = fb->managed; m; m = m->next) {
        CUdeviceptr global = 0, range = 0;
        size_t bytes = 0;
        CUresult rc = cuModuleGetGlobal_v2(&global, &bytes, fb->module, m->name);
        if (!rc && bytes != m->size)
            rc = CUDA_ERROR_INVALID_VALUE;
        if (!rc)
            rc = cuMemAllocManaged(&range, m->size, CU_MEM_ATTACH_GLOBAL);
        if (!rc)
            rc = cuMemcpyDtoH_v2((void *)(uintptr_t)range, global, m->size); /* its initial value */
        if (!rc) {
            struct vgpu_args_module_global_alias a = {.module = fb->module->id, .address = range, .size = m->size};
            rc = vgpu_shim_cu_status(vgpu_shim_call(VGPU_CALL_MODULE_GLOBAL_ALIAS, &a, sizeof a, m->name,
                                                    strlen(m->name) + 1, NULL, 0, NULL, 0, NULL));
        }
        if (rc) {
            vgpu_shim_log("__managed__ variable %s: not placed in managed memory (error %d)", m->name, rc);
            if (range)
                cuMemFree_v2(range);
            return rt_err(rc);
        }
        *m->host_ptr = (void *)(uintptr_t)range;
        cudaError_t err = rt_symbol_add(fb, (void *)(uintptr_t)range, m->name, m->size, range);
        if (err)
            return err;
    }
    return cudaSuccess;
}
