/*
 * Driver API: modules, kernels, globals and launches.
 *
 * cuModuleLoadData gets an image without its size, as the real driver does: a fatbin's size is in
 * its header (magic 0xBA55ED50: u16 header size at 6, u64 payload size at 8), a fatbin wrapper
 * (magic 0x466243B1, what nvcc's host code registers) points at one, an ELF cubin ends with its
 * last section or header table, anything else is PTX text up to its NUL. The host parses the
 * image (and refuses what it cannot use).
 *
 * Function attributes are asked of and set on the host, which also refuses a launch asking more
 * dynamic shared memory than the function's CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (like
 * any refusal of a posted launch, reported by the next call that waits).
 *
 * A launch packs the kernel's parameters by the layout the host reports for the function
 * (vgpuFuncGetParamLayout: offset and size of each parameter), fetched once per function and kept
 * in its record, and posts the launch with that block as payload. Launch dimensions are checked
 * against the device's limits first (cached attributes), so a bad configuration fails at once.
 */
#include <stdlib.h>
#include <string.h>

#include "cu_api.h"
#include "shim.h"
#include "vgpu_protocol.h"
#include "vgpu_transport.h"

#define MAX_PARAMS 4096u        /* CUDA's parameter space is 32 KiB: at most 4096 8-byte parameters */
#define MAX_IMAGE (1ull << 30)  /* an image size beyond this is a corrupt header */

static uint64_t rd64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t rd32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint16_t rd16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* The size of the ELF64 image at p: the end of its furthest header table or section. */
static uint64_t elf_size(const unsigned char *p)
{
    if (p[4] != 2) /* ELFCLASS64 only: cubins are */
        return 0;
    uint64_t phoff = rd64(p + 0x20), shoff = rd64(p + 0x28);
    uint16_t phentsize = rd16(p + 0x36), phnum = rd16(p + 0x38);
    uint16_t shentsize = rd16(p + 0x3a), shnum = rd16(p + 0x3c);
    uint64_t end = 64;
    if (phoff + (uint64_t)phentsize * phnum > end)
        end = phoff + (uint64_t)phentsize * phnum;
    if (shoff + (uint64_t)shentsize * shnum > end)
        end = shoff + (uint64_t)shentsize * shnum;
    if (shentsize >= 64 && shoff < MAX_IMAGE)
        for (uint16_t i = 0; i < shnum; i++) {
            const unsigned char *sh = p + shoff + (uint64_t)i * shentsize;
            uint32_t type = rd32(sh + 4);
            uint64_t off = rd64(sh + 0x18), size = rd64(sh + 0x20);
            if (type != 8 /* SHT_NOBITS */ && off + size > end)
                end = off + size;
        }
    return end;
}

/* Where the image starts and how long it is; 0 when it is none of the formats above. */
static size_t image_extent(const void *image, const void **start)
{
    const unsigned char *p = image;
    if (rd32(p) == VGPU_FATBINC_MAGIC) {
        const struct vgpu_fatbin_wrapper *w = image;
        p = (const unsigned char *)w->data;
        if (!p)
            return 0;
    }
    *start = p;
    if (rd32(p) == VGPU_FATBIN_MAGIC) {
        uint64_t size = (uint64_t)rd16(p + 6) + rd64(p + 8);
        return size < MAX_IMAGE ? (size_t)size : 0;
    }
    if (!memcmp(p, "\x7f" "ELF", 4)) {
        uint64_t size = elf_size(p);
        return size < MAX_IMAGE ? (size_t)size : 0;
    }
    return strnlen((const char *)p, MAX_IMAGE) + 1; /* PTX, with its NUL */
}

/* The image in one call when it fits the transport's data arena; otherwise in chunks of the
 * transport's copy size (vgpuModuleUploadBegin, vgpuModuleUploadChunk, vgpuModuleLoadUpload: the host
 * bounds it by device.module_bytes). The upload is always finished, so the host lets it go even when a
 * chunk was refused. */
static int load_image(const void *start, size_t size, uint32_t *module)
{
    int err;
    struct cuda_transport *t = vgpu_shim_transport(&err);
    if (!t || size <= cuda_transport_arena_size(t)) {
        struct vgpu_result_module_load_data r;
        int rc = vgpu_shim_call(VGPU_CALL_MODULE_LOAD_DATA, NULL, 0, start, size, &r, sizeof r, NULL, 0, NULL);
        *module = r.module;
        return rc;
    }
    size_t chunk = cuda_transport_chunk_size(t);
    struct vgpu_args_module_upload_begin b = {.bytes = size};
    struct vgpu_result_module_upload_begin u;
    int rc = vgpu_shim_call(VGPU_CALL_MODULE_UPLOAD_BEGIN, &b, sizeof b, NULL, 0, &u, sizeof u, NULL, 0, NULL);
    if (rc)
        return rc;
    for (size_t off = 0; rc == 0 && off < size; off += chunk) {
        struct vgpu_args_module_upload_chunk c = {.upload = u.upload, .offset = off};
        size_t n = size - off < chunk ? size - off : chunk;
        rc = vgpu_shim_call(VGPU_CALL_MODULE_UPLOAD_CHUNK, &c, sizeof c, (const unsigned char *)start + off, n, NULL,
                            0, NULL, 0, NULL);
    }
    struct vgpu_args_module_load_upload f = {.upload = u.upload};
    struct vgpu_result_module_load_upload r;
    int done = vgpu_shim_call(VGPU_CALL_MODULE_LOAD_UPLOAD, &f, sizeof f, NULL, 0, &r, sizeof r, NULL, 0, NULL);
    *module = r.module;
    return rc ? rc : done;
}

CUresult cuModuleLoadData(CUmodule *module, const void *image)
{
    if (!module || !image)
        return CUDA_ERROR_INVALID_VALUE;
    const void *start;
    size_t size = image_extent(image, &start);
    if (size == 0 || size > MAX_IMAGE) {
        vgpu_shim_log("cuModuleLoadData: the image at %p has no size this shim can read", image);
        return CUDA_ERROR_INVALID_IMAGE;
    }
    uint32_t id = 0;
    int rc = load_image(start, size, &id);
    if (rc)
        return vgpu_shim_cu_status(rc);
    CUmodule m = malloc(sizeof *m);
    if (!m) {
        struct vgpu_args_module_unload d = {.module = id};
        vgpu_cu_call(VGPU_CALL_MODULE_UNLOAD, &d, sizeof d, NULL, 0);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *m = (struct CUmod_st){VGPU_MAGIC_MODULE, id};
    *module = m;
    return CUDA_SUCCESS;
}

CUresult cuModuleLoadFatBinary(CUmodule *module, const void *fatbin) { return cuModuleLoadData(module, fatbin); }

CUresult cuModuleLoadDataEx(CUmodule *module, const void *image, unsigned int num_options, void *options,
                            void **values)
{
    /* JIT options tune or report on compilation, which happens on the host */
    (void)options;
    (void)values;
    if (num_options) {
        static int once;
        if (!__atomic_exchange_n(&once, 1, __ATOMIC_RELAXED))
            vgpu_shim_log("cuModuleLoadDataEx: %u JIT options ignored (the host compiles)", num_options);
    }
    return cuModuleLoadData(module, image);
}

CUresult cuModuleUnload(CUmodule m)
{
    if (!VGPU_CHECK_HANDLE(m, VGPU_MAGIC_MODULE))
        return CUDA_ERROR_INVALID_HANDLE;
    return vgpu_cu_release(VGPU_CALL_MODULE_UNLOAD, m->id, &m->magic, m);
}

CUresult cuModuleGetFunction(CUfunction *out, CUmodule m, const char *name)
{
    if (!out || !name)
        return CUDA_ERROR_INVALID_VALUE;
    if (!VGPU_CHECK_HANDLE(m, VGPU_MAGIC_MODULE))
        return CUDA_ERROR_INVALID_HANDLE;
    size_t len = strlen(name);
    struct vgpu_args_module_get_function a = {.module = m->id};
    struct vgpu_result_module_get_function r;
    int rc = vgpu_shim_call(VGPU_CALL_MODULE_GET_FUNCTION, &a, sizeof a, name, len, &r, sizeof r, NULL, 0, NULL);
    if (rc)
        return vgpu_shim_cu_status(rc);
    CUfunction f = calloc(1, sizeof *f + len + 1);
    if (!f)
        return CUDA_ERROR_OUT_OF_MEMORY;
    f->magic = VGPU_MAGIC_FUNC;
    f->id = r.function;
    f->module = m;
    f->layout_once = (pthread_once_t)PTHREAD_ONCE_INIT;
    memcpy(f->name, name, len + 1);
    *out = f;
    return CUDA_SUCCESS;
}

CUresult cuModuleGetGlobal_v2(CUdeviceptr *dptr, size_t *bytes, CUmodule m, const char *name)
{
    if (!name)
        return CUDA_ERROR_INVALID_VALUE;
    if (!VGPU_CHECK_HANDLE(m, VGPU_MAGIC_MODULE))
        return CUDA_ERROR_INVALID_HANDLE;
    struct vgpu_args_module_get_global a = {.module = m->id};
    struct vgpu_result_module_get_global r;
    int rc = vgpu_shim_call(VGPU_CALL_MODULE_GET_GLOBAL, &a, sizeof a, name, strlen(name), &r, sizeof r, NULL,
                            0, NULL);
    if (rc)
        return vgpu_shim_cu_status(rc);
    if (!vgpu_shim_ptr_kind(r.dptr, NULL, NULL))
        vgpu_track_range(r.dptr, r.bytes, VGPU_PTR_DEVICE);
    if (dptr)
        *dptr = r.dptr;
    if (bytes)
        *bytes = (size_t)r.bytes;
    return CUDA_SUCCESS;
}

CUresult cuFuncGetParamInfo(CUfunction f, size_t index, size_t *offset, size_t *size)
{
    if (!VGPU_CHECK_HANDLE(f, VGPU_MAGIC_FUNC))
        return CUDA_ERROR_INVALID_HANDLE;
    if (index > UINT32_MAX)
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu_args_func_get_param_info a = {.function = f->id, .index = (uint32_t)index};
    struct vgpu_result_func_get_param_info r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_FUNC_GET_PARAM_INFO, &a, sizeof a, &r, sizeof r);
    if (rc)
        return rc;
    if (offset)
        *offset = (size_t)r.offset;
    if (size)
        *size = (size_t)r.size;
    return CUDA_SUCCESS;
}

CUresult cuFuncGetName(const char **name, CUfunction f)
{
    if (!name)
        return CUDA_ERROR_INVALID_VALUE;
    if (!VGPU_CHECK_HANDLE(f, VGPU_MAGIC_FUNC))
        return CUDA_ERROR_INVALID_HANDLE;
    *name = f->name;
    return CUDA_SUCCESS;
}

/* Function attributes are the host's: what its backend knows of the kernel (the sim backend answers
 * CUDA_ERROR_NOT_SUPPORTED for what the module image does not record) and what was set there. */
static int valid_attribute(int attrib)
{
    return attrib >= VGPU_CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK &&
           attrib <= VGPU_CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE;
}

CUresult cuFuncGetAttribute(int *value, int attrib, CUfunction f)
{
    if (!value || !valid_attribute(attrib))
        return CUDA_ERROR_INVALID_VALUE;
    if (!VGPU_CHECK_HANDLE(f, VGPU_MAGIC_FUNC))
        return CUDA_ERROR_INVALID_HANDLE;
    struct vgpu_args_func_get_attribute a = {.attrib = (uint32_t)attrib, .function = f->id};
    struct vgpu_result_func_get_attribute r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_FUNC_GET_ATTRIBUTE, &a, sizeof a, &r, sizeof r);
    if (rc == CUDA_SUCCESS)
        *value = r.value;
    return rc;
}

CUresult cuFuncSetAttribute(CUfunction f, int attrib, int value)
{
    if (!VGPU_CHECK_HANDLE(f, VGPU_MAGIC_FUNC))
        return CUDA_ERROR_INVALID_HANDLE;
    if (!valid_attribute(attrib))
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu_args_func_set_attribute a = {.function = f->id, .attrib = (uint32_t)attrib, .value = value};
    return vgpu_cu_call(VGPU_CALL_FUNC_SET_ATTRIBUTE, &a, sizeof a, NULL, 0);
}

/* -- launches ---------------------------------------------------------------------------------- */

static __thread CUfunction layout_target;

static void fetch_layout(void)
{
    CUfunction f = layout_target;
    uint32_t (*pairs)[2] = calloc(MAX_PARAMS, sizeof *pairs);
    if (!pairs) {
        f->layout_status = CUDA_ERROR_OUT_OF_MEMORY;
        return;
    }
    struct vgpu_args_func_get_param_layout a = {.function = f->id};
    struct vgpu_result_func_get_param_layout r;
    size_t got = 0;
    int rc = vgpu_shim_call(VGPU_CALL_FUNC_GET_PARAM_LAYOUT, &a, sizeof a, NULL, 0, &r, sizeof r, pairs,
                            MAX_PARAMS * sizeof *pairs, &got);
    if (rc == 0 && (r.count > MAX_PARAMS || got != r.count * sizeof *pairs)) {
        vgpu_shim_log("%s: the host reported %u parameters in %zu bytes", f->name, r.count, got);
        rc = CUDA_ERROR_INVALID_IMAGE;
    }
    for (uint32_t i = 0; rc == 0 && i < r.count; i++)
        if ((uint64_t)pairs[i][0] + pairs[i][1] > r.param_bytes) {
            vgpu_shim_log("%s: parameter %u at %u+%u lies outside the %u-byte block", f->name, i,
                          pairs[i][0], pairs[i][1], r.param_bytes);
            rc = CUDA_ERROR_INVALID_IMAGE;
        }
    f->layout_status = vgpu_shim_cu_status(rc);
    if (rc) {
        free(pairs);
        return;
    }
    f->param_count = r.count;
    f->param_bytes = r.param_bytes;
    f->params = pairs;
}

static CUresult layout_of(CUfunction f)
{
    layout_target = f;
    pthread_once(&f->layout_once, fetch_layout);
    return f->layout_status;
}

/* Grid and block within the device's limits (attributes 1-7, cached after the first launch). */
CUresult vgpu_shim_check_dims(const unsigned int grid[3], const unsigned int block[3])
{
    int max_threads, max_block[3], max_grid[3];
    CUresult rc = cuDeviceGetAttribute(&max_threads, 1, 0);
    for (int i = 0; rc == CUDA_SUCCESS && i < 3; i++)
        if (!(rc = cuDeviceGetAttribute(&max_block[i], 2 + i, 0)))
            rc = cuDeviceGetAttribute(&max_grid[i], 5 + i, 0);
    if (rc)
        return rc;
    uint64_t threads = (uint64_t)block[0] * block[1] * block[2];
    if (threads == 0 || threads > (uint64_t)max_threads)
        return CUDA_ERROR_INVALID_VALUE;
    for (int i = 0; i < 3; i++)
        if (!grid[i] || !block[i] || block[i] > (unsigned)max_block[i] || grid[i] > (unsigned)max_grid[i])
            return CUDA_ERROR_INVALID_VALUE;
    return CUDA_SUCCESS;
}

/* cuLaunchKernel and cuLaunchCooperativeKernel (call), or a launch in clusters of `cluster` blocks
 * (non-NULL: VGPU_CALL_LAUNCH_CLUSTER_KERNEL): the parameter block packed from `params` by the host's
 * layout, or given whole in `extra`. */
static CUresult launch_in(uint32_t call, CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
                          unsigned int bx, unsigned int by, unsigned int bz, unsigned int shared, CUstream s,
                          void **params, void **extra, const unsigned int *cluster)
{
    if (!VGPU_CHECK_HANDLE(f, VGPU_MAGIC_FUNC))
        return CUDA_ERROR_INVALID_HANDLE;
    unsigned int grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
    CUresult rc = vgpu_shim_check_dims(grid, block);
    if (rc)
        return rc;
    struct vgpu_args_launch_kernel a = {.function = f->id, .grid_x = gx, .grid_y = gy, .grid_z = gz,
                                        .block_x = bx, .block_y = by, .block_z = bz, .shared_mem_bytes = shared};
    if ((rc = vgpu_shim_stream_id(s, &a.stream)))
        return rc;
    /* the cluster call's arguments: the plain launch's and the cluster's shape */
    struct vgpu_args_launch_cluster_kernel ca = {
        .function = a.function, .grid_x = gx, .grid_y = gy, .grid_z = gz, .block_x = bx, .block_y = by,
        .block_z = bz, .shared_mem_bytes = shared, .stream = a.stream};
    const void *args = &a;
    size_t args_size = sizeof a;
    if (cluster) {
        ca.cluster_x = cluster[0];
        ca.cluster_y = cluster[1];
        ca.cluster_z = cluster[2];
        args = &ca;
        args_size = sizeof ca;
    }
    if (extra) { /* a block packed by the caller: CU_LAUNCH_PARAM_BUFFER_POINTER/_SIZE */
        const void *buffer = NULL;
        size_t size = 0;
        for (void **e = extra; *e != CU_LAUNCH_PARAM_END; e += 2) {
            if (e[0] == CU_LAUNCH_PARAM_BUFFER_POINTER)
                buffer = e[1];
            else if (e[0] == CU_LAUNCH_PARAM_BUFFER_SIZE && e[1])
                size = *(const size_t *)e[1];
            else
                return CUDA_ERROR_INVALID_VALUE;
        }
        if (params || (size && !buffer))
            return CUDA_ERROR_INVALID_VALUE;
        return vgpu_cu_post(call, args, args_size, buffer, size);
    }
    if ((rc = layout_of(f)))
        return rc;
    if (f->param_count && !params)
        return CUDA_ERROR_INVALID_VALUE;
    unsigned char stack_block[512];
    unsigned char *block_bytes = f->param_bytes <= sizeof stack_block ? stack_block : malloc(f->param_bytes);
    if (!block_bytes)
        return CUDA_ERROR_OUT_OF_MEMORY;
    memset(block_bytes, 0, f->param_bytes);
    for (uint32_t i = 0; i < f->param_count; i++) {
        if (!params[i]) {
            rc = CUDA_ERROR_INVALID_VALUE;
            break;
        }
        memcpy(block_bytes + f->params[i][0], params[i], f->params[i][1]);
    }
    if (rc == CUDA_SUCCESS)
        rc = vgpu_cu_post(call, args, args_size, block_bytes, f->param_bytes);
    if (block_bytes != stack_block)
        free(block_bytes);
    return rc;
}

static CUresult launch(uint32_t call, CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
                       unsigned int bx, unsigned int by, unsigned int bz, unsigned int shared, CUstream s,
                       void **params, void **extra)
{
    return launch_in(call, f, gx, gy, gz, bx, by, bz, shared, s, params, extra, NULL);
}

CUresult cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                        unsigned int by, unsigned int bz, unsigned int shared, CUstream s, void **params,
                        void **extra)
{
    return launch(VGPU_CALL_LAUNCH_KERNEL, f, gx, gy, gz, bx, by, bz, shared, s, params, extra);
}

/* Every block resident at once (the host checks the grid against the occupancy: 720 past it), so that
 * cooperative_groups' grid.sync() works; parameters only through `params`, as CUDA requires. */
CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                                   unsigned int by, unsigned int bz, unsigned int shared, CUstream s, void **params)
{
    return launch(VGPU_CALL_LAUNCH_COOPERATIVE_KERNEL, f, gx, gy, gz, bx, by, bz, shared, s, params, NULL);
}

/* Resident blocks of f per multiprocessor, the host's answer (the bound of a cooperative launch). */
CUresult cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int *blocks, CUfunction f, int block_size,
                                                              size_t dynamic_smem, unsigned int flags)
{
    if (!blocks || block_size <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    if (!VGPU_CHECK_HANDLE(f, VGPU_MAGIC_FUNC))
        return CUDA_ERROR_INVALID_HANDLE;
    struct vgpu_args_func_occupancy a = {.function = f->id, .block_size = (uint32_t)block_size,
                                         .dynamic_smem = dynamic_smem, .flags = flags};
    struct vgpu_result_func_occupancy r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_FUNC_OCCUPANCY, &a, sizeof a, &r, sizeof r);
    if (rc == CUDA_SUCCESS)
        *blocks = r.value;
    return rc;
}

CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int *blocks, CUfunction f, int block_size, size_t dynamic_smem)
{
    return cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(blocks, f, block_size, dynamic_smem, 0);
}

/* Launch attributes: those that leave a launch's meaning alone (ignored entries, cache and priority
 * hints, the cluster scheduling preference, and programmatic stream serialization, which lets the next
 * kernel start early: running kernels in stream order is one schedule it allows), the cooperative one
 * (*cooperative set) and the cluster dimension (cluster[] set; all zero: none). Anything else
 * (preferred cluster shapes, programmatic events, sync domains, completion events) is not served. */
static int launch_attribute_served(const vgpu_launch_attribute *a, int *cooperative, unsigned int cluster[3])
{
    switch (a->id) {
    case 0: case 1: case 5: case 6: case 8: case 14: /* ignore, access policy, cluster scheduling,
                                                      * serialization, priority, carveout */
        return 1;
    case 2: /* cooperative */
        *cooperative = a->val.value != 0;
        return 1;
    case 4: /* cluster dimension: the host checks the shape (912 for one a GPU refuses) */
        cluster[0] = a->val.clusterDim.x;
        cluster[1] = a->val.clusterDim.y;
        cluster[2] = a->val.clusterDim.z;
        return 1;
    default:
        return 0;
    }
}

CUresult cuLaunchKernelEx(const vgpu_launch_config *config, CUfunction f, void **params, void **extra)
{
    if (!config || (config->numAttrs && !config->attrs))
        return CUDA_ERROR_INVALID_VALUE;
    int cooperative = 0;
    unsigned int cluster[3] = {0, 0, 0};
    for (unsigned int i = 0; i < config->numAttrs; i++)
        if (!launch_attribute_served(&config->attrs[i], &cooperative, cluster)) {
            static int once;
            if (!__atomic_exchange_n(&once, 1, __ATOMIC_RELAXED))
                vgpu_shim_log("cuLaunchKernelEx: launch attribute %d (value %d) is not supported by the vgpu "
                              "shim (returns 801)", config->attrs[i].id, config->attrs[i].val.value);
            return CUDA_ERROR_NOT_SUPPORTED;
        }
    if (cooperative && extra)
        return CUDA_ERROR_INVALID_VALUE;
    if (cluster[0] || cluster[1] || cluster[2]) {
        if (cooperative) { /* a cooperative grid of clusters: not served */
            vgpu_shim_log("cuLaunchKernelEx: a cooperative launch in clusters is not supported by the vgpu shim "
                          "(returns 801)");
            return CUDA_ERROR_NOT_SUPPORTED;
        }
        return launch_in(VGPU_CALL_LAUNCH_CLUSTER_KERNEL, f, config->gridDimX, config->gridDimY, config->gridDimZ,
                         config->blockDimX, config->blockDimY, config->blockDimZ, config->sharedMemBytes,
                         config->hStream, params, extra, cluster);
    }
    return launch(cooperative ? VGPU_CALL_LAUNCH_COOPERATIVE_KERNEL : VGPU_CALL_LAUNCH_KERNEL, f, config->gridDimX,
                  config->gridDimY, config->gridDimZ, config->blockDimX, config->blockDimY, config->blockDimZ,
                  config->sharedMemBytes, config->hStream, params, extra);
}
