/*
 * Runtime API: what nvcc's host code calls — fatbin, kernel and variable registration, the
 * `<<<...>>>` configuration stack, launches — and the function queries built on them.
 *
 * Theory of operation (nvcc 13's host stubs, crt/host_runtime.h):
 *  - a constructor calls __cudaRegisterFatBinary(&wrapper) (magic 0x466243B1, pointing at the
 *    fatbin), then __cudaRegisterFunction / __cudaRegisterVar for each kernel and variable, then
 *    __cudaRegisterFatBinaryEnd; atexit runs __cudaUnregisterFatBinary;
 *  - `k<<<g, b, s, st>>>(args)` calls __cudaPushCallConfiguration, then the kernel's stub, which
 *    pops it (__cudaPopCallConfiguration), gets the kernel's handle once (__cudaGetKernel) and
 *    calls __cudaLaunchKernel with an array of pointers to the arguments.
 * Registration only records: a fatbin is loaded on the host (cuModuleLoadData) the first time one
 * of its kernels or variables is used, and each kernel's CUfunction is looked up once.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cu_api.h"
#include "rt_internal.h"
#include "vgpu_protocol.h"

/* -- the registry: host function / variable address -> record, in open-addressed tables -------- */

struct table { const void **keys; void **values; size_t cap, count; };

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct table kernels, variables;

static size_t slot_of(const struct table *t, const void *key)
{
    size_t h = ((uintptr_t)key >> 4) * 0x9e3779b97f4a7c15ull;
    size_t i = h & (t->cap - 1);
    while (t->keys[i] && t->keys[i] != key)
        i = (i + 1) & (t->cap - 1);
    return i;
}

static int table_put(struct table *t, const void *key, void *value)
{
    if ((t->count + 1) * 2 > t->cap) {
        struct table grown = {calloc(t->cap ? t->cap * 2 : 64, sizeof(void *)),
                              calloc(t->cap ? t->cap * 2 : 64, sizeof(void *)), t->cap ? t->cap * 2 : 64, 0};
        if (!grown.keys || !grown.values) {
            free(grown.keys);
            free(grown.values);
            return -1;
        }
        for (size_t i = 0; i < t->cap; i++)
            if (t->keys[i]) {
                size_t j = slot_of(&grown, t->keys[i]);
                grown.keys[j] = t->keys[i];
                grown.values[j] = t->values[i];
                grown.count++;
            }
        free(t->keys);
        free(t->values);
        *t = grown;
    }
    size_t i = slot_of(t, key);
    if (!t->keys[i])
        t->count++;
    t->keys[i] = key;
    t->values[i] = value;
    return 0;
}

static void *table_get(const struct table *t, const void *key)
{
    if (!t->cap)
        return NULL;
    size_t i = slot_of(t, key);
    return t->keys[i] ? t->values[i] : NULL;
}

static char *copy_name(const char *name)
{
    size_t n = strlen(name) + 1;
    char *copy = malloc(n);
    if (copy)
        memcpy(copy, name, n);
    return copy;
}

/* -- registration ------------------------------------------------------------------------------ */

void **__cudaRegisterFatBinary(void *wrapper)
{
    const struct vgpu_fatbin_wrapper *w = wrapper;
    struct rt_fatbin *fb = calloc(1, sizeof *fb);
    if (!fb) {
        vgpu_shim_log("__cudaRegisterFatBinary: out of memory; its kernels will not launch");
        return NULL;
    }
    pthread_mutex_init(&fb->lock, NULL);
    if (!w || (unsigned)w->magic != VGPU_FATBINC_MAGIC || !w->data) {
        vgpu_shim_log("__cudaRegisterFatBinary: %p is not a fatbin wrapper (magic %#x)", wrapper,
                      w ? (unsigned)w->magic : 0u);
        fb->loaded = 1;
        fb->load_status = cudaErrorInvalidValue; /* every use of its kernels says so */
    }
    fb->image = w ? (const void *)w->data : NULL;
    return (void **)fb;
}

void __cudaRegisterFatBinaryEnd(void **handle)
{
    /* Loading is deferred to first use; all this binary's kernels and variables are known now. */
    (void)handle;
}

void __cudaUnregisterFatBinary(void **handle)
{
    struct rt_fatbin *fb = (struct rt_fatbin *)handle;
    if (!fb)
        return;
    pthread_mutex_lock(&fb->lock);
    if (fb->loaded && fb->module) {
        CUresult rc = cuModuleUnload(fb->module);
        if (rc)
            vgpu_shim_log("__cudaUnregisterFatBinary: cuModuleUnload returned %d", rc);
        fb->module = NULL;
    }
    fb->loaded = 1;
    fb->load_status = cudaErrorInvalidValue; /* unregistered: its kernels are gone */
    pthread_mutex_unlock(&fb->lock);
}

void __cudaRegisterFunction(void **handle, const char *host_fun, char *device_fun, const char *device_name,
                            int thread_limit, void *tid, void *bid, void *bdim, void *gdim, int *wsize)
{
    (void)device_fun, (void)thread_limit, (void)tid, (void)bid, (void)bdim, (void)gdim, (void)wsize;
    struct CUkern_st *k = calloc(1, sizeof *k);
    if (k && (k->device_name = copy_name(device_name))) {
        k->host_fun = host_fun;
        k->fatbin = (struct rt_fatbin *)handle;
        pthread_mutex_lock(&registry_lock);
        int rc = table_put(&kernels, host_fun, k);
        pthread_mutex_unlock(&registry_lock);
        if (rc == 0)
            return;
        free(k->device_name);
    }
    free(k);
    vgpu_shim_log("__cudaRegisterFunction: out of memory registering %s", device_name);
}

void __cudaRegisterVar(void **handle, char *host_var, char *device_address, const char *device_name, int ext,
                       size_t size, int constant, int global)
{
    (void)device_address, (void)ext, (void)constant, (void)global;
    struct rt_var *v = calloc(1, sizeof *v);
    if (v && (v->device_name = copy_name(device_name))) {
        v->host_var = host_var;
        v->fatbin = (struct rt_fatbin *)handle;
        v->size = size;
        pthread_mutex_lock(&registry_lock);
        int rc = table_put(&variables, host_var, v);
        pthread_mutex_unlock(&registry_lock);
        if (rc == 0)
            return;
        free(v->device_name);
    }
    free(v);
    vgpu_shim_log("__cudaRegisterVar: out of memory registering %s", device_name);
}

cudaError_t rt_symbol_add(struct rt_fatbin *fb, const void *host_var, const char *name, size_t size,
                          CUdeviceptr dptr)
{
    __cudaRegisterVar((void **)fb, (char *)host_var, NULL, name, 0, size, 0, 0);
    pthread_mutex_lock(&registry_lock);
    struct rt_var *v = table_get(&variables, host_var);
    pthread_mutex_unlock(&registry_lock);
    if (!v)
        return cudaErrorMemoryAllocation;
    __atomic_store_n(&v->dptr, dptr, __ATOMIC_RELEASE);
    return cudaSuccess;
}

static cudaError_t load_fatbin(struct rt_fatbin *fb)
{
    cudaError_t err = rt_init();
    if (err)
        return err;
    pthread_mutex_lock(&fb->lock);
    if (!fb->loaded) {
        fb->load_status = rt_err(cuModuleLoadData(&fb->module, fb->image));
        if (!fb->load_status && fb->managed)
            fb->load_status = rt_place_managed(fb);
        if (fb->load_status)
            vgpu_shim_log("loading a registered fatbin on the host failed: error %d", fb->load_status);
        fb->loaded = 1;
    }
    err = fb->load_status;
    pthread_mutex_unlock(&fb->lock);
    return err;
}

/* Loads the module now (managed variables need it initialized): 1 when it is. */
char __cudaInitModule(void **handle)
{
    struct rt_fatbin *fb = (struct rt_fatbin *)handle;
    return fb && load_fatbin(fb) == cudaSuccess;
}

/* -- look-ups ---------------------------------------------------------------------------------- */

cudaError_t rt_kernel_of(const void *host_fun, struct CUkern_st **kernel)
{
    pthread_mutex_lock(&registry_lock);
    *kernel = table_get(&kernels, host_fun);
    pthread_mutex_unlock(&registry_lock);
    return *kernel ? cudaSuccess : cudaErrorInvalidDeviceFunction;
}

cudaError_t rt_kernel_function(struct CUkern_st *k, CUfunction *function)
{
    CUfunction f = __atomic_load_n(&k->function, __ATOMIC_ACQUIRE);
    if (!f) {
        cudaError_t err = k->fatbin ? load_fatbin(k->fatbin) : cudaErrorInvalidDeviceFunction;
        if (err)
            return err;
        if ((err = rt_err(cuModuleGetFunction(&f, k->fatbin->module, k->device_name))))
            return err == cudaErrorSymbolNotFound ? cudaErrorInvalidDeviceFunction : err;
        CUfunction expected = NULL;
        if (!__atomic_compare_exchange_n(&k->function, &expected, f, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            f = expected; /* another thread got there first; its record serves */
    }
    *function = f;
    return cudaSuccess;
}

cudaError_t rt_symbol(const void *host_var, CUdeviceptr *dptr, size_t *size)
{
    pthread_mutex_lock(&registry_lock);
    struct rt_var *v = table_get(&variables, host_var);
    pthread_mutex_unlock(&registry_lock);
    if (!v)
        return cudaErrorInvalidSymbol;
    CUdeviceptr d = __atomic_load_n(&v->dptr, __ATOMIC_ACQUIRE);
    if (!d) {
        cudaError_t err = load_fatbin(v->fatbin);
        size_t bytes;
        if (err || (err = rt_err(cuModuleGetGlobal_v2(&d, &bytes, v->fatbin->module, v->device_name))))
            return err == cudaErrorSymbolNotFound ? cudaErrorInvalidSymbol : err;
        __atomic_store_n(&v->dptr, d, __ATOMIC_RELEASE);
    }
    *dptr = d;
    if (size)
        *size = v->size;
    return cudaSuccess;
}

/* -- the launch configuration stack ------------------------------------------------------------ */

#define MAX_CONFIGS 16
static __thread struct config { dim3 grid, block; size_t shared; cudaStream_t stream; } configs[MAX_CONFIGS];
static __thread int nconfigs;

unsigned int __cudaPushCallConfiguration(dim3 grid, dim3 block, size_t shared, cudaStream_t stream)
{
    if (nconfigs == MAX_CONFIGS) {
        vgpu_shim_log("__cudaPushCallConfiguration: more than %d nested launch configurations", MAX_CONFIGS);
        return 1; /* nonzero: the launch is skipped */
    }
    configs[nconfigs++] = (struct config){grid, block, shared, stream};
    return 0;
}

cudaError_t __cudaPopCallConfiguration(dim3 *grid, dim3 *block, size_t *shared, void *stream)
{
    if (nconfigs == 0)
        return rt_ret(cudaErrorMissingConfiguration);
    struct config c = configs[--nconfigs];
    *grid = c.grid;
    *block = c.block;
    *shared = c.shared;
    *(cudaStream_t *)stream = c.stream;
    return cudaSuccess;
}

/* -- launches ---------------------------------------------------------------------------------- */

/* Every runtime launch goes through cuLaunchKernelEx with the caller's launch attributes (none for
 * <<<>>>), which serves or refuses them. */
static cudaError_t launch_with(struct CUkern_st *k, dim3 grid, dim3 block, void **args, size_t shared,
                               cudaStream_t stream, const vgpu_launch_attribute *attrs, unsigned int count)
{
    cudaError_t err = rt_init();
    if (err)
        return err;
    unsigned int g[3] = {grid.x, grid.y, grid.z}, b[3] = {block.x, block.y, block.z};
    CUresult rc = vgpu_shim_check_dims(g, b);
    if (rc)
        return rc == CUDA_ERROR_INVALID_VALUE ? cudaErrorInvalidConfiguration : rt_err(rc);
    if (shared > UINT32_MAX)
        return cudaErrorInvalidConfiguration;
    CUfunction f;
    if ((err = rt_kernel_function(k, &f)))
        return err;
    vgpu_launch_config config = {grid.x, grid.y, grid.z, block.x, block.y, block.z, (unsigned int)shared,
                                 stream, attrs, count};
    return rt_err(cuLaunchKernelEx(&config, f, args, NULL));
}

static cudaError_t launch(struct CUkern_st *k, dim3 grid, dim3 block, void **args, size_t shared,
                          cudaStream_t stream)
{
    return launch_with(k, grid, block, args, shared, stream, NULL, 0);
}

cudaError_t __cudaGetKernel(cudaKernel_t *kernel, const void *host_fun)
{
    if (!kernel)
        return rt_ret(cudaErrorInvalidValue);
    return rt_ret(rt_kernel_of(host_fun, kernel));
}

cudaError_t __cudaLaunchKernel(cudaKernel_t kernel, dim3 grid, dim3 block, void **args, size_t shared,
                               cudaStream_t stream)
{
    if (!kernel)
        return rt_ret(cudaErrorInvalidDeviceFunction);
    return rt_ret(launch(kernel, grid, block, args, shared, stream));
}

cudaError_t __cudaLaunchKernel_ptsz(cudaKernel_t kernel, dim3 grid, dim3 block, void **args, size_t shared,
                                    cudaStream_t stream)
{
    /* the per-thread default stream is served as the legacy one (vgpu_shim_stream_id) */
    return __cudaLaunchKernel(kernel, grid, block, args, shared, stream ? stream : CU_STREAM_PER_THREAD);
}

cudaError_t cudaLaunchKernel(const void *func, dim3 grid, dim3 block, void **args, size_t shared,
                             cudaStream_t stream)
{
    struct CUkern_st *k;
    cudaError_t err = rt_kernel_of(func, &k);
    return rt_ret(err ? err : launch(k, grid, block, args, shared, stream));
}

/* cudaLaunchConfig_t as CUDA 13's driver_types.h lays it out (its attributes are CUlaunchAttribute's). */
struct launch_config {
    dim3 grid, block;
    size_t shared;
    cudaStream_t stream;
    const vgpu_launch_attribute *attrs;
    unsigned int count;
};

static cudaError_t launch_ex(const struct launch_config *config, const void *func, void **args,
                             cudaStream_t per_thread)
{
    if (!config || (config->count && !config->attrs))
        return cudaErrorInvalidValue;
    struct CUkern_st *k;
    cudaError_t err = rt_kernel_of(func, &k);
    cudaStream_t stream = config->stream ? config->stream : per_thread;
    return err ? err : launch_with(k, config->grid, config->block, args, config->shared, stream, config->attrs,
                                   config->count);
}

cudaError_t cudaLaunchKernelExC(const void *config, const void *func, void **args)
{
    return rt_ret(launch_ex(config, func, args, NULL));
}

cudaError_t cudaLaunchKernelExC_ptsz(const void *config, const void *func, void **args)
{
    return rt_ret(launch_ex(config, func, args, CU_STREAM_PER_THREAD));
}

/* cuLaunchKernelEx with the cooperative attribute: every block resident at once, for grid.sync(). */
cudaError_t cudaLaunchCooperativeKernel(const void *func, dim3 grid, dim3 block, void **args, size_t shared,
                                        cudaStream_t stream)
{
    static const vgpu_launch_attribute cooperative = {.id = 2, .val.value = 1};
    struct CUkern_st *k;
    cudaError_t err = rt_kernel_of(func, &k);
    return rt_ret(err ? err : launch_with(k, grid, block, args, shared, stream, &cooperative, 1));
}

cudaError_t cudaLaunchCooperativeKernel_ptsz(const void *func, dim3 grid, dim3 block, void **args, size_t shared,
                                             cudaStream_t stream)
{
    return cudaLaunchCooperativeKernel(func, grid, block, args, shared, stream ? stream : CU_STREAM_PER_THREAD);
}

/* -- function queries -------------------------------------------------------------------------- */

cudaError_t cudaFuncGetName(const char **name, const void *func)
{
    struct CUkern_st *k;
    if (!name)
        return rt_ret(cudaErrorInvalidValue);
    cudaError_t err = rt_kernel_of(func, &k);
    if (err == cudaSuccess)
        *name = k->device_name;
    return rt_ret(err);
}

cudaError_t cudaGetFuncBySymbol(cudaFunction_t *function, const void *func)
{
    struct CUkern_st *k;
    if (!function)
        return rt_ret(cudaErrorInvalidValue);
    cudaError_t err = rt_kernel_of(func, &k);
    return rt_ret(err ? err : rt_kernel_function(k, function));
}

cudaError_t cudaGetKernel(cudaKernel_t *kernel, const void *func) { return __cudaGetKernel(kernel, func); }

/* The kernel's CUfunction, its fatbin loaded on the host first. */
static cudaError_t function_of(const void *func, CUfunction *f)
{
    struct CUkern_st *k;
    cudaError_t err = rt_init();
    if (err || (err = rt_kernel_of(func, &k)))
        return err;
    return rt_kernel_function(k, f);
}

/* cudaFuncAttribute's values are CUfunction_attribute's (8-15). */
cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value)
{
    CUfunction f;
    cudaError_t err = function_of(func, &f);
    if (err)
        return rt_ret(err);
    if (attr < cudaFuncAttributeMaxDynamicSharedMemorySize || attr >= cudaFuncAttributeMax)
        return rt_ret(cudaErrorInvalidValue);
    return rt_ret(rt_err(cuFuncSetAttribute(f, (int)attr, value)));
}

/* Each field of cudaFuncAttributes and the attribute that fills it (`wide`: a size_t field). */
#define ATTR(f, a, w) {offsetof(struct cudaFuncAttributes, f), VGPU_CU_FUNC_ATTRIBUTE_##a, w}
static const struct { size_t offset; int attrib, wide; } func_fields[] = {
    ATTR(sharedSizeBytes, SHARED_SIZE_BYTES, 1), ATTR(constSizeBytes, CONST_SIZE_BYTES, 1),
    ATTR(localSizeBytes, LOCAL_SIZE_BYTES, 1), ATTR(maxThreadsPerBlock, MAX_THREADS_PER_BLOCK, 0),
    ATTR(numRegs, NUM_REGS, 0), ATTR(ptxVersion, PTX_VERSION, 0), ATTR(binaryVersion, BINARY_VERSION, 0),
    ATTR(cacheModeCA, CACHE_MODE_CA, 0), ATTR(maxDynamicSharedSizeBytes, MAX_DYNAMIC_SHARED_SIZE_BYTES, 0),
    ATTR(preferredShmemCarveout, PREFERRED_SHARED_MEMORY_CARVEOUT, 0),
    ATTR(clusterDimMustBeSet, CLUSTER_SIZE_MUST_BE_SET, 0), ATTR(requiredClusterWidth, REQUIRED_CLUSTER_WIDTH, 0),
    ATTR(requiredClusterHeight, REQUIRED_CLUSTER_HEIGHT, 0), ATTR(requiredClusterDepth, REQUIRED_CLUSTER_DEPTH, 0),
    ATTR(clusterSchedulingPolicyPreference, CLUSTER_SCHEDULING_POLICY_PREFERENCE, 0),
    ATTR(nonPortableClusterSizeAllowed, NON_PORTABLE_CLUSTER_SIZE_ALLOWED, 0),
};

/* All or nothing, as CUDA's: one attribute the host cannot answer fails the call with its status
 * (the sim backend's CUDA_ERROR_NOT_SUPPORTED for what the image does not record) and leaves *attr
 * untouched. One round trip per field. */
cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes *attr, const void *func)
{
    if (!attr)
        return rt_ret(cudaErrorInvalidValue);
    CUfunction f;
    cudaError_t err = function_of(func, &f);
    if (err)
        return rt_ret(err);
    struct cudaFuncAttributes got;
    memset(&got, 0, sizeof got);
    for (size_t i = 0; i < sizeof func_fields / sizeof func_fields[0]; i++) {
        int value;
        CUresult rc = cuFuncGetAttribute(&value, func_fields[i].attrib, f);
        if (rc) {
            static int once;
            if (!__atomic_exchange_n(&once, 1, __ATOMIC_RELAXED))
                vgpu_shim_log("cudaFuncGetAttributes: the host answers function attribute %d with error %d "
                              "(the mediator's log says why)", func_fields[i].attrib, rc);
            return rt_ret(rt_err(rc));
        }
        char *field = (char *)&got + func_fields[i].offset;
        if (func_fields[i].wide) {
            size_t wide = (size_t)(value < 0 ? 0 : value);
            memcpy(field, &wide, sizeof wide);
        } else {
            memcpy(field, &value, sizeof value);
        }
    }
    *attr = got;
    return cudaSuccess;
}

/* Resident blocks per multiprocessor: the host's answer (cuOccupancyMaxActiveBlocksPerMultiprocessor:
 * sim from the device's limits and the registers its engine holds, cuda the driver's), the bound the
 * host checks cooperative launches against. */
static cudaError_t occupancy(int *blocks, const void *func, int block_size, size_t dynamic_smem, unsigned int flags)
{
    if (!blocks || block_size <= 0)
        return cudaErrorInvalidValue;
    struct CUkern_st *k;
    CUfunction f;
    cudaError_t err = rt_init();
    if (err || (err = rt_kernel_of(func, &k)) || (err = rt_kernel_function(k, &f)))
        return err;
    return rt_err(cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(blocks, f, block_size, dynamic_smem, flags));
}

cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *blocks, const void *func, int block_size,
                                                          size_t dynamic_smem)
{
    return rt_ret(occupancy(blocks, func, block_size, dynamic_smem, 0));
}

cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int *blocks, const void *func, int block_size,
                                                                   size_t dynamic_smem, unsigned int flags)
{
    if (flags > 1) /* cudaOccupancyDefault 0, cudaOccupancyDisableCachingOverride 1 */
        return rt_ret(cudaErrorInvalidValue);
    return rt_ret(occupancy(blocks, func, block_size, dynamic_smem, flags));
}
