/*
 * libnvidia-ml.so.1: NVML for the guest, answered from the mediator through libcuda.so.1.
 *
 * What Ollama, llama.cpp, PyTorch and monitoring tools read: versions, the device count and
 * handles (by index, UUID or PCI bus id), name, UUID, PCI information, memory (the VM's view: its
 * quota as total, its own allocations as used, through the nvml_memory_info call), compute
 * capability and architecture, maximum clocks and compute mode (from the device's attributes), the
 * host driver's version (nvml_driver_version), and the running compute processes: the VM's own, one
 * per channel, with the device memory each holds (nvml_compute_processes; no graphics processes). What a virtual GPU's guest cannot know (current
 * clocks, utilization, temperature, power, fans, ECC counters, …) answers
 * NVML_ERROR_NOT_SUPPORTED and logs once: every public NVML function is exported (public.tsv), and
 * those this file does not define are the generated stubs.
 *
 * nvmlInit counts references as NVML does: each call after the first only counts, nvmlShutdown
 * undoes one, and every other call before the first init (or after the last shutdown) answers
 * NVML_ERROR_UNINITIALIZED. Initializing opens the shim's connection (cuInit); no CUDA context is
 * created, as NVML creates none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_api.h"
#include "nvml_api.h"
#include "shim.h"
#include "vgpu_protocol.h"

#define MAX_NVML_DEVICES 16
#define NVML_HANDLE_MAGIC 0x6c6d764eu /* "Nvml" */

struct nvmlDevice_st { uint32_t magic; int index; };

static struct nvmlDevice_st handles[MAX_NVML_DEVICES];
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static int init_refs;

/* NVML's statuses and what NVML says of each. */
static const struct { nvmlReturn_t code; const char *text; } errors[] = {
    {0, "Success"},
    {1, "Uninitialized"},
    {2, "Invalid Argument"},
    {3, "Not Supported"},
    {4, "Insufficient Permissions"},
    {5, "Already Initialized"},
    {6, "Not Found"},
    {7, "Insufficient Size"},
    {8, "Insufficient External Power"},
    {9, "Driver Not Loaded"},
    {10, "Timeout"},
    {11, "Interrupt request issue"},
    {12, "NVML Shared Library Not Found"},
    {13, "Function Not Found"},
    {14, "Corrupted infoROM"},
    {15, "GPU is lost"},
    {16, "GPU requires restart"},
    {17, "The operating system has blocked the request."},
    {18, "RM has detected an NVML/RM version mismatch."},
    {19, "In use by another client"},
    {20, "Insufficient Memory"},
    {21, "No data"},
    {22, "The requested vgpu operation is not available on target device, because ECC is enabled"},
    {23, "Ran out of critical resources, other than memory"},
    {24, "The requested frequency is not supported"},
    {25, "The provided version is invalid/unsupported"},
    {26, "The requested functionality has been deprecated"},
    {27, "The system is not ready for the request"},
    {28, "No GPUs were found"},
    {29, "Resource not in correct state to perform requested operation"},
    {30, "Reset not supported for given device/parameters"},
    {999, "Unknown Error"},
};

const char *nvmlErrorString(nvmlReturn_t result)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (errors[i].code == result)
            return errors[i].text;
    return "Unknown Error";
}

/* -- statuses ---------------------------------------------------------------------------------- */

/* A driver status as NVML reports it. */
static nvmlReturn_t nvml_status(CUresult rc)
{
    switch (rc) {
    case CUDA_SUCCESS: return NVML_SUCCESS;
    case CUDA_ERROR_INVALID_VALUE: case CUDA_ERROR_INVALID_DEVICE: return NVML_ERROR_INVALID_ARGUMENT;
    case CUDA_ERROR_NOT_SUPPORTED: return NVML_ERROR_NOT_SUPPORTED;
    case CUDA_ERROR_NO_DEVICE: return NVML_ERROR_GPU_IS_LOST; /* the mediator is gone */
    default:
        vgpu_shim_log("NVML: the mediator answered %d, reported as NVML_ERROR_UNKNOWN", rc);
        return NVML_ERROR_UNKNOWN;
    }
}

static int initialized(void)
{
    pthread_mutex_lock(&init_lock);
    int refs = init_refs;
    pthread_mutex_unlock(&init_lock);
    return refs > 0;
}

/* The device index behind a handle, or a status. */
static nvmlReturn_t device_of(nvmlDevice_t device, int *index)
{
    if (!initialized())
        return NVML_ERROR_UNINITIALIZED;
    if (!device || device->magic != NVML_HANDLE_MAGIC || device < handles || device >= handles + MAX_NVML_DEVICES)
        return NVML_ERROR_INVALID_ARGUMENT;
    *index = device->index;
    return NVML_SUCCESS;
}

#define DEVICE(handle, index)                                                                     \
    int index;                                                                                    \
    do {                                                                                          \
        nvmlReturn_t st_ = device_of((handle), &index);                                           \
        if (st_)                                                                                  \
            return st_;                                                                           \
    } while (0)

/* Copy a string into a caller's buffer of `length` bytes, NVML's way: too small is an error. */
static nvmlReturn_t put_string(char *out, unsigned int length, const char *text)
{
    if (!out)
        return NVML_ERROR_INVALID_ARGUMENT;
    size_t n = strlen(text);
    if (n + 1 > length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(out, text, n + 1);
    return NVML_SUCCESS;
}

/* -- init and shutdown ------------------------------------------------------------------------- */

nvmlReturn_t nvmlInitWithFlags(unsigned int flags)
{
    if (flags & ~0x7u) /* NO_GPUS, NO_ATTACH, FORCE_INIT */
        return NVML_ERROR_INVALID_ARGUMENT;
    pthread_mutex_lock(&init_lock);
    nvmlReturn_t st = NVML_SUCCESS;
    if (init_refs == 0) {
        CUresult rc = cuInit(0);
        int count = 0;
        if (rc == CUDA_SUCCESS)
            rc = cuDeviceGetCount(&count);
        if (rc == CUDA_ERROR_NO_DEVICE && (flags & 0x1u)) /* NVML_INIT_FLAG_NO_GPUS */
            rc = CUDA_SUCCESS;
        if (rc != CUDA_SUCCESS) {
            vgpu_shim_log("nvmlInit: no connection to the mediator (error %d)", rc);
            st = NVML_ERROR_DRIVER_NOT_LOADED; /* NVML's answer when it cannot reach the driver */
        }
        for (int i = 0; i < MAX_NVML_DEVICES; i++)
            handles[i] = (struct nvmlDevice_st){NVML_HANDLE_MAGIC, i};
    }
    if (st == NVML_SUCCESS)
        init_refs++;
    pthread_mutex_unlock(&init_lock);
    return st;
}

nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

nvmlReturn_t nvmlShutdown(void)
{
    pthread_mutex_lock(&init_lock);
    nvmlReturn_t st = init_refs > 0 ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
    if (init_refs > 0)
        init_refs--;
    pthread_mutex_unlock(&init_lock);
    return st;
}

/* -- the system -------------------------------------------------------------------------------- */

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    if (!initialized())
        return NVML_ERROR_UNINITIALIZED;
    if (!version || length == 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    char text[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE];
    size_t got = 0;
    int rc = vgpu_shim_call(VGPU_CALL_NVML_DRIVER_VERSION, NULL, 0, NULL, 0, NULL, 0, text, sizeof text, &got);
    if (rc)
        return nvml_status(vgpu_shim_cu_status(rc));
    text[got ? got - 1 : 0] = 0;
    return put_string(version, length, text);
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *version)
{
    if (!initialized())
        return NVML_ERROR_UNINITIALIZED;
    if (!version)
        return NVML_ERROR_INVALID_ARGUMENT;
    return nvml_status(cuDriverGetVersion(version));
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version) { return nvmlSystemGetCudaDriverVersion(version); }

/* -- devices ----------------------------------------------------------------------------------- */

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
    if (!initialized())
        return NVML_ERROR_UNINITIALIZED;
    if (!count)
        return NVML_ERROR_INVALID_ARGUMENT;
    int n = 0;
    nvmlReturn_t st = nvml_status(cuDeviceGetCount(&n));
    if (st == NVML_SUCCESS)
        *count = (unsigned int)(n < MAX_NVML_DEVICES ? n : MAX_NVML_DEVICES);
    return st;
}

nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) { return nvmlDeviceGetCount_v2(count); }

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    unsigned int count;
    nvmlReturn_t st = nvmlDeviceGetCount_v2(&count);
    if (st)
        return st;
    if (!device || index >= count)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = &handles[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device)
{
    return nvmlDeviceGetHandleByIndex_v2(index, device);
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)
{
    DEVICE(device, dev);
    if (!index)
        return NVML_ERROR_INVALID_ARGUMENT;
    *index = (unsigned int)dev;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    DEVICE(device, dev);
    char text[256];
    nvmlReturn_t st = nvml_status(cuDeviceGetName(text, sizeof text, dev));
    return st ? st : put_string(name, length, text);
}

/* "GPU-" and the UUID's 16 bytes as 8-4-4-4-12 hex digits, as NVML writes it. */
static nvmlReturn_t uuid_text(int dev, char out[48])
{
    CUuuid uuid;
    nvmlReturn_t st = nvml_status(cuDeviceGetUuid_v2(&uuid, dev));
    if (st)
        return st;
    const unsigned char *b = (const unsigned char *)uuid.bytes;
    char *p = out + sprintf(out, "GPU-");
    for (int i = 0; i < 16; i++)
        p += sprintf(p, "%s%02x", i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "", b[i]);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    DEVICE(device, dev);
    char text[48];
    nvmlReturn_t st = uuid_text(dev, text);
    return st ? st : put_string(uuid, length, text);
}

nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device)
{
    unsigned int count;
    nvmlReturn_t st = nvmlDeviceGetCount_v2(&count);
    if (st)
        return st;
    if (!uuid || !device)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned int i = 0; i < count; i++) {
        char text[48];
        if ((st = uuid_text((int)i, text)))
            return st;
        if (!strcasecmp(text, uuid)) {
            *device = &handles[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

static nvmlReturn_t attribute(int dev, int attrib, int *value)
{
    return nvml_status(cuDeviceGetAttribute(value, attrib, dev));
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
    DEVICE(device, dev);
    if (!pci)
        return NVML_ERROR_INVALID_ARGUMENT;
    int domain, bus, slot, device_id, subsystem_id;
    nvmlReturn_t st = attribute(dev, 50, &domain); /* PCI_DOMAIN_ID, PCI_BUS_ID, PCI_DEVICE_ID */
    if (!st)
        st = attribute(dev, 33, &bus);
    if (!st)
        st = attribute(dev, 34, &slot);
    if (!st)
        st = attribute(dev, 139, &device_id); /* GPU_PCI_DEVICE_ID, GPU_PCI_SUBSYSTEM_ID */
    if (!st)
        st = attribute(dev, 140, &subsystem_id);
    if (st)
        return st;
    memset(pci, 0, sizeof *pci);
    pci->domain = (unsigned int)domain;
    pci->bus = (unsigned int)bus;
    pci->device = (unsigned int)slot;
    pci->pciDeviceId = (unsigned int)device_id;
    pci->pciSubSystemId = (unsigned int)subsystem_id;
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04X:%02X:%02X.0", pci->domain & 0xffff, pci->bus & 0xff,
             pci->device & 0xff);
    snprintf(pci->busId, sizeof pci->busId, "%08X:%02X:%02X.0", pci->domain, pci->bus & 0xff, pci->device & 0xff);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t device, nvmlPciInfo_t *pci) { return nvmlDeviceGetPciInfo_v3(device, pci); }
nvmlReturn_t nvmlDeviceGetPciInfo(nvmlDevice_t device, nvmlPciInfo_t *pci) { return nvmlDeviceGetPciInfo_v3(device, pci); }

nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *bus_id, nvmlDevice_t *device)
{
    unsigned int count, domain, bus, slot;
    nvmlReturn_t st = nvmlDeviceGetCount_v2(&count);
    if (st)
        return st;
    if (!bus_id || !device || sscanf(bus_id, "%x:%x:%x", &domain, &bus, &slot) != 3)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned int i = 0; i < count; i++) {
        nvmlPciInfo_t pci;
        if ((st = nvmlDeviceGetPciInfo_v3(&handles[i], &pci)))
            return st;
        if (pci.domain == domain && pci.bus == bus && pci.device == slot) {
            *device = &handles[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetHandleByPciBusId(const char *bus_id, nvmlDevice_t *device)
{
    return nvmlDeviceGetHandleByPciBusId_v2(bus_id, device);
}

/* The VM's memory: its quota as total, its allocations as used, the rest free. */
static nvmlReturn_t vm_memory(int dev, unsigned long long *total, unsigned long long *used)
{
    struct vgpu_args_nvml_memory_info a = {.device = dev};
    struct vgpu_result_nvml_memory_info r;
    int rc = vgpu_shim_call(VGPU_CALL_NVML_MEMORY_INFO, &a, sizeof a, NULL, 0, &r, sizeof r, NULL, 0, NULL);
    if (rc)
        return nvml_status(vgpu_shim_cu_status(rc));
    *total = r.total;
    *used = r.used < r.total ? r.used : r.total;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    DEVICE(device, dev);
    if (!memory)
        return NVML_ERROR_INVALID_ARGUMENT;
    unsigned long long total, used;
    nvmlReturn_t st = vm_memory(dev, &total, &used);
    if (st)
        return st;
    *memory = (nvmlMemory_t){.total = total, .free = total - used, .used = used};
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
    DEVICE(device, dev);
    if (!memory)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (memory->version != nvmlMemory_v2)
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    unsigned long long total, used;
    nvmlReturn_t st = vm_memory(dev, &total, &used);
    if (st)
        return st;
    /* nothing of the VM's quota is set aside for the driver: reserved is 0 */
    *memory = (nvmlMemory_v2_t){.version = nvmlMemory_v2, .total = total, .reserved = 0, .free = total - used,
                                .used = used};
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor)
{
    DEVICE(device, dev);
    if (!major || !minor)
        return NVML_ERROR_INVALID_ARGUMENT;
    nvmlReturn_t st = attribute(dev, 75, major);
    return st ? st : attribute(dev, 76, minor);
}

nvmlReturn_t nvmlDeviceGetArchitecture(nvmlDevice_t device, unsigned int *arch)
{
    int major, minor;
    nvmlReturn_t st = nvmlDeviceGetCudaComputeCapability(device, &major, &minor);
    if (st)
        return st;
    if (!arch)
        return NVML_ERROR_INVALID_ARGUMENT;
    switch (major) {
    case 7: *arch = minor >= 5 ? NVML_DEVICE_ARCH_TURING : NVML_DEVICE_ARCH_VOLTA; break;
    case 8: *arch = minor >= 9 ? NVML_DEVICE_ARCH_ADA : NVML_DEVICE_ARCH_AMPERE; break;
    case 9: *arch = NVML_DEVICE_ARCH_HOPPER; break;
    case 10: case 12: *arch = NVML_DEVICE_ARCH_BLACKWELL; break;
    default: *arch = NVML_DEVICE_ARCH_UNKNOWN; break;
    }
    return NVML_SUCCESS;
}

/* The part's maximum clocks, from its attributes (kHz); the current ones are not known to a guest. */
nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t device, int type, unsigned int *mhz)
{
    DEVICE(device, dev);
    if (!mhz)
        return NVML_ERROR_INVALID_ARGUMENT;
    int khz;
    nvmlReturn_t st;
    if (type == NVML_CLOCK_GRAPHICS || type == NVML_CLOCK_SM)
        st = attribute(dev, 13, &khz); /* CLOCK_RATE */
    else if (type == NVML_CLOCK_MEM)
        st = attribute(dev, 36, &khz); /* MEMORY_CLOCK_RATE */
    else if (type == NVML_CLOCK_VIDEO)
        VGPU_UNSUPPORTED_USE(NVML_ERROR_NOT_SUPPORTED, "nvmlDeviceGetMaxClockInfo: the video clock is not known");
    else
        return NVML_ERROR_INVALID_ARGUMENT;
    if (st == NVML_SUCCESS)
        *mhz = (unsigned int)khz / 1000;
    return st;
}

nvmlReturn_t nvmlDeviceGetComputeMode(nvmlDevice_t device, int *mode)
{
    DEVICE(device, dev);
    if (!mode)
        return NVML_ERROR_INVALID_ARGUMENT;
    return attribute(dev, 20, mode); /* CUcomputemode and nvmlComputeMode_t share their values */
}

nvmlReturn_t nvmlDeviceGetMemoryBusWidth(nvmlDevice_t device, unsigned int *bits)
{
    DEVICE(device, dev);
    if (!bits)
        return NVML_ERROR_INVALID_ARGUMENT;
    int width;
    nvmlReturn_t st = attribute(dev, 37, &width); /* GLOBAL_MEMORY_BUS_WIDTH */
    if (st == NVML_SUCCESS)
        *bits = (unsigned int)width;
    return st;
}

/* -- running processes: the VM's own ---------------------------------------------------------------- */

#define VGPU_MAX_PROCESSES 256 /* a VM's channels: one process per channel */
#define NVML_NO_INSTANCE 0xffffffffu /* no MIG: the instance ids are not available */

/* The VM's processes that hold a context (each has a channel of the VM), as the host lists them. NVML's
 * contract: *count in is the room in infos; too little room is NVML_ERROR_INSUFFICIENT_SIZE with *count
 * the number needed. */
static nvmlReturn_t compute_processes(nvmlDevice_t device, unsigned int *count, void *infos, int v1)
{
    DEVICE(device, dev);
    if (!count || (*count && !infos))
        return NVML_ERROR_INVALID_ARGUMENT;
    struct vgpu_args_nvml_compute_processes a = {.device = dev};
    struct vgpu_result_nvml_compute_processes r;
    static struct { uint32_t pid, zero; uint64_t used; } got[VGPU_MAX_PROCESSES];
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&lock);
    size_t len = 0;
    int rc = vgpu_shim_call(VGPU_CALL_NVML_COMPUTE_PROCESSES, &a, sizeof a, NULL, 0, &r, sizeof r, got, sizeof got,
                            &len);
    nvmlReturn_t st = rc ? nvml_status(vgpu_shim_cu_status(rc)) : NVML_SUCCESS;
    unsigned int n = (unsigned int)(len / sizeof got[0]);
    if (!st && r.count > n)
        st = NVML_ERROR_UNKNOWN; /* more channels than a VM can have: the host answered wrongly */
    if (!st && *count < n)
        st = NVML_ERROR_INSUFFICIENT_SIZE;
    for (unsigned int i = 0; !st && i < n; i++) {
        if (v1)
            ((nvmlProcessInfo_v1_t *)infos)[i] = (nvmlProcessInfo_v1_t){got[i].pid, got[i].used};
        else
            ((nvmlProcessInfo_t *)infos)[i] = (nvmlProcessInfo_t){got[i].pid, got[i].used, NVML_NO_INSTANCE,
                                                              NVML_NO_INSTANCE};
    }
    if (!st || st == NVML_ERROR_INSUFFICIENT_SIZE)
        *count = n;
    pthread_mutex_unlock(&lock);
    return st;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos)
{
    return compute_processes(device, count, infos, 0);
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos)
{
    return compute_processes(device, count, infos, 0);
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_v1_t *infos)
{
    return compute_processes(device, count, infos, 1);
}

/* A virtual GPU serves compute only: no process uses it for graphics. */
static nvmlReturn_t no_graphics(nvmlDevice_t device, unsigned int *count)
{
    DEVICE(device, dev);
    (void)dev;
    if (!count)
        return NVML_ERROR_INVALID_ARGUMENT;
    *count = 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos)
{
    (void)infos;
    return no_graphics(device, count);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v2(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos)
{
    (void)infos;
    return no_graphics(device, count);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_v1_t *infos)
{
    (void)infos;
    return no_graphics(device, count);
}
