/*
 * pinned_probe MODE [ARGS]: pinned host memory in the region (#19) through the shim, on the host
 * (tests/shim/test_pinned.py) and in a VM (tests/shim/test_vm_pinned.py). Built by the tests with cc
 * against the shim's libraries (no CUDA toolkit): the runtime API and a few driver calls, declared
 * below as NVIDIA's headers declare them.
 *
 * Every check prints `RESULT name=<name> ok=<0|1> value=<text>`, the last line is `SELFTEST PASS` or
 * `SELFTEST FAIL <n>` (tests/qemu/_support.SelftestReport). "In the region" means the pointer lies in
 * this process's mapping of the vgpu region (the memfd `vgpu-*` on a host, BAR2 `resource2` in a VM),
 * read from /proc/self/maps. Modes:
 *
 *   copies          cudaMallocHost / cudaHostAlloc memory in the region; synchronous, asynchronous
 *                   (at unaligned offsets inside an allocation), 2D, cudaMemcpyDefault and driver API
 *                   copies through it, each checked; flags; free and double free; cudaHostRegister'd
 *                   ordinary memory (staged, not in the region).
 *   mapped          mapped pinned and managed memory (#13): a pinned pointer is its own device pointer
 *                   (unified addressing); device copies and memsets through cudaHostGetDevicePointer's
 *                   and cudaMallocManaged's pointers reach the very bytes the process sees; prefetch,
 *                   attach, free and double free answer as CUDA does.
 *   collide         a device address reservation in the way of the next pinned range's own pointers:
 *                   that range is mapped elsewhere (cudaHostGetDevicePointer answers it, the device
 *                   reaches the bytes through it), and managed memory there is refused (not supported).
 *   exhaust MIB     two pinned allocations of MIB each: the first in the region, the second (the area
 *                   is smaller than 2 x MIB) falls back to ordinary memory; copies through both; mapped
 *                   and managed memory of MIB then fail (no ordinary fallback for them).
 *   register        cudaHostRegister(cudaHostRegisterMapped) of ordinary memory spanning partial pages
 *                   (#19/#13): its pages move into the region at the same addresses, every byte of them
 *                   kept; copies both ways through it (synchronous and asynchronous); a kernel reads and
 *                   writes it through cudaHostGetDevicePointer; overlapping registrations refused, one
 *                   sharing only a page staged, a file's shared pages staged (copies reach the file);
 *                   cudaHostUnregister gives private pages back, bytes kept.
 *   register_full MIB  cudaHostRegister of MIB (more than the area holds): staged, copies through it
 *                   correct; cudaHostRegisterMapped of it not supported.
 *   hold MIB        one pinned allocation of MIB in the region, filled; prints READY and waits for a
 *                   line on stdin (the test may kill it meanwhile), then frees it.
 *   bandwidth MIB   bandwidthTest-style figures, 4 KiB to MIB by 4x: per size one line
 *                   `BANDWIDTH bytes=N memcpy=.. pinned_htod=.. pinned_dtoh=.. pageable_htod=.. pageable_dtoh=..`
 *                   (MiB/s, best of 3; each copy synchronous, timed with CLOCK_MONOTONIC; memcpy is this
 *                   process copying between two of its own buffers: the guest's floor).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* -- the part of NVIDIA's API used here ---------------------------------------------------------- */
typedef int cudaError_t;
typedef struct CUstream_st *cudaStream_t;
typedef unsigned long long CUdeviceptr;
enum { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4 };
enum { cudaHostAllocPortable = 1, cudaHostAllocMapped = 2, cudaMemoryTypeHost = 1, cudaMemoryTypeManaged = 3 };
enum { cudaMemAttachGlobal = 1, cudaMemAttachHost = 2, cudaMemAttachSingle = 4, cudaErrorInvalidValue = 1,
       cudaErrorInvalidDevice = 101 };
struct cudaMemLocation { int type; int id; }; /* cudaMemLocationTypeDevice 1, cudaMemLocationTypeHost 2 */
struct cudaPointerAttributes { int type; int device; void *devicePointer; void *hostPointer; };

cudaError_t cudaMalloc(void **ptr, size_t size);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMallocHost(void **ptr, size_t size);
cudaError_t cudaHostAlloc(void **ptr, size_t size, unsigned int flags);
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaHostRegister(void *ptr, size_t size, unsigned int flags);
cudaError_t cudaHostGetFlags(unsigned int *flags, void *ptr);
cudaError_t cudaHostUnregister(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, int kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, int kind, cudaStream_t s);
cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                         int kind);
cudaError_t cudaMemset(void *dst, int value, size_t n);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *attr, const void *ptr);
cudaError_t cudaHostGetDevicePointer(void **device, void *host, unsigned int flags);
cudaError_t cudaMallocManaged(void **ptr, size_t size, unsigned int flags);
cudaError_t cudaMemPrefetchAsync(const void *ptr, size_t count, struct cudaMemLocation location, unsigned int flags,
                                 cudaStream_t s);
cudaError_t cudaStreamAttachMemAsync(cudaStream_t s, void *ptr, size_t length, unsigned int flags);
cudaError_t cudaDeviceSynchronize(void);
int cublasSetMatrix(int rows, int cols, int elem, const void *a, int lda, void *b, int ldb);
int cublasGetMatrixAsync(int rows, int cols, int elem, const void *a, int lda, void *b, int ldb, cudaStream_t s);
int cuMemAllocHost_v2(void **pp, size_t bytesize);
int cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment, CUdeviceptr addr, unsigned long long flags);
int cuMemAddressFree(CUdeviceptr ptr, size_t size);
int cuPointerGetAttribute(void *data, int attribute, CUdeviceptr ptr);
int cuMemFreeHost(void *p);
int cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n);
int cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n);
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
int cuModuleLoadData(CUmodule *module, const void *image);
int cuModuleGetFunction(CUfunction *f, CUmodule module, const char *name);
int cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                   unsigned shared, cudaStream_t s, void **params, void **extra);
enum { cudaHostRegisterMapped = 2, cudaErrorNotSupported = 801, cudaErrorHostMemoryAlreadyRegistered = 712,
       cudaErrorHostMemoryNotRegistered = 713 };

/* -- reporting ------------------------------------------------------------------------------------ */
static int failures;

static void result(const char *name, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void result(const char *name, int ok, const char *fmt, ...)
{
    char value[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    for (char *c = value; *c; c++)
        if (*c == ' ')
            *c = '_';
    printf("RESULT name=%s ok=%d value=%s\n", name, ok, value);
    fflush(stdout);
    failures += !ok;
}

static int finish(void)
{
    if (failures)
        printf("SELFTEST FAIL %d\n", failures);
    else
        printf("SELFTEST PASS\n");
    return failures ? 1 : 0;
}

/* Whether `p` lies in this process's mapping of the vgpu region. */
static int in_region(const void *p)
{
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps)
        return 0;
    char line[512];
    int found = 0;
    uintptr_t addr = (uintptr_t)p;
    while (!found && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && addr >= lo && addr < hi)
            found = strstr(line, "vgpu-") != NULL || strstr(line, "resource2") != NULL;
    }
    fclose(maps);
    return found;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 31u + seed + (i >> 12));
}

/* A round trip host -> device -> host through `src` and `dst` (either pinned or not), checked. */
static int round_trip(unsigned char *src, unsigned char *dst, size_t n, void *dev, unsigned seed)
{
    fill(src, n, seed);
    memset(dst, 0, n);
    int rc = cudaMemcpy(dev, src, n, cudaMemcpyHostToDevice);
    if (!rc)
        rc = cudaMemcpy(dst, dev, n, cudaMemcpyDeviceToHost);
    return rc ? rc : memcmp(src, dst, n) ? -1 : 0;
}

static int mode_copies(void)
{
    const size_t n = 4u << 20;
    unsigned char *a = NULL, *b = NULL, *c = NULL;
    void *dev = NULL;
    int rc = cudaMallocHost((void **)&a, n);
    int rc2 = cudaMallocHost((void **)&b, n);
    result("pinned_in_region", !rc && !rc2 && in_region(a) && in_region(b) && a != b, "rc=%d/%d a=%p b=%p", rc, rc2,
           (void *)a, (void *)b);
    if (rc || rc2)
        return finish();
    rc = cudaMalloc(&dev, n);
    rc = rc ? rc : round_trip(a, b, n, dev, 1);
    result("copy_sync", rc == 0, "rc=%d", rc);

    /* asynchronous both ways at unaligned offsets inside the allocations, then a synchronize */
    cudaStream_t s;
    fill(a, n, 2);
    memset(b, 0, n);
    const size_t part = (1u << 20) + 333;
    rc = cudaStreamCreate(&s);
    rc = rc ? rc : cudaMemcpyAsync((char *)dev + 4096, a + 4103, part, cudaMemcpyHostToDevice, s);
    rc = rc ? rc : cudaMemcpyAsync(b + 13, (char *)dev + 4096, part, cudaMemcpyDeviceToHost, s);
    rc = rc ? rc : cudaStreamSynchronize(s);
    result("copy_async_offsets", rc == 0 && !memcmp(a + 4103, b + 13, part), "rc=%d", rc);
    cudaStreamDestroy(s);

    /* 2D: one copy per row between pitched pinned rows and a dense device matrix */
    fill(a, n, 3);
    memset(b, 0, n);
    rc = cudaMemcpy2D(dev, 1000, a, 4096, 1000, 300, cudaMemcpyHostToDevice);
    rc = rc ? rc : cudaMemcpy2D(b, 2048, dev, 1000, 1000, 300, cudaMemcpyDeviceToHost);
    int rows_ok = rc == 0;
    for (int row = 0; rows_ok && row < 300; row++)
        rows_ok = !memcmp(a + row * 4096, b + row * 2048, 1000);
    result("copy_2d", rows_ok, "rc=%d", rc);

    /* cudaMemcpyDefault infers the direction; the driver API takes the same path */
    fill(a, n, 4);
    memset(b, 0, n);
    rc = cudaMemcpy(dev, a, n, cudaMemcpyDefault);
    rc = rc ? rc : cudaMemcpy(b, dev, n, cudaMemcpyDefault);
    result("copy_default", rc == 0 && !memcmp(a, b, n), "rc=%d", rc);
    rc = cuMemAllocHost_v2((void **)&c, 1u << 20);
    if (!rc) {
        fill(c, 1u << 20, 5);
        rc = cuMemcpyHtoD_v2((CUdeviceptr)(uintptr_t)dev, c, 1u << 20);
        memset(c, 0, 1u << 20);
        rc = rc ? rc : cuMemcpyDtoH_v2(c, (CUdeviceptr)(uintptr_t)dev, 1u << 20);
        unsigned char want[64];
        fill(want, sizeof want, 5);
        rc = rc ? rc : memcmp(c, want, sizeof want) ? -1 : 0;
    }
    result("driver_api", rc == 0 && in_region(c), "rc=%d", rc);
    rc = cuMemFreeHost(c);
    result("driver_free", rc == 0, "rc=%d", rc);

    /* cuBLAS's matrix copies take the same path: contiguous, and column by column into a padded device
     * matrix (leading dimension 80 for 64 rows); the Async get into pinned memory is posted */
    fill(a, n, 6);
    memset(b, 0, n);
    rc = cudaStreamCreate(&s);
    int matrix_ok = rc == 0;
    for (int ld = 64; matrix_ok && ld <= 80; ld += 16) {
        rc = cublasSetMatrix(64, 32, 4, a, 64, dev, ld);
        rc = rc ? rc : cublasGetMatrixAsync(64, 32, 4, dev, ld, b, 64, s);
        rc = rc ? rc : cudaStreamSynchronize(s);
        matrix_ok = rc == 0 && !memcmp(a, b, 64 * 32 * 4);
    }
    result("cublas_matrix", matrix_ok, "rc=%d", rc);
    cudaStreamDestroy(s);

    struct cudaPointerAttributes attr;
    rc = cudaPointerGetAttributes(&attr, a + 100);
    /* unified addressing: the device reaches pinned memory at the process's own pointer to it */
    result("pointer_attributes", rc == 0 && attr.type == cudaMemoryTypeHost && attr.devicePointer == a + 100 &&
                                     attr.hostPointer == a + 100,
           "rc=%d type=%d device=%p", rc, attr.type, attr.devicePointer);

    void *portable = NULL, *mapped = NULL;
    rc = cudaHostAlloc(&portable, 8192, cudaHostAllocPortable);
    rc2 = cudaHostAlloc(&mapped, 8192, cudaHostAllocMapped);
    unsigned int got = 99, plain_flags = 99;
    int got_rc = cudaHostGetFlags(&got, (char *)portable + 100), plain_rc = cudaHostGetFlags(&plain_flags, &got);
    result("host_alloc_flags", rc == 0 && in_region(portable) && rc2 == 0 && in_region(mapped) && got_rc == 0 &&
                                   got == cudaHostAllocPortable && plain_rc != 0,
           "portable=%d mapped=%d get=%d/%u plain=%d", rc, rc2, got_rc, got, plain_rc);
    cudaFreeHost(portable);
    cudaFreeHost(mapped);

    /* cudaHostRegister'd ordinary memory: its pages move into the region (mode register has more) */
    unsigned char *plain = malloc(n), *back = malloc(n);
    rc = plain && back ? cudaHostRegister(plain, n, 0) : -1;
    rc = rc ? rc : round_trip(plain, back, n, dev, 6);
    result("registered_in_region", rc == 0 && in_region(plain) && !in_region(back), "rc=%d", rc);
    cudaHostUnregister(plain);
    free(plain);
    free(back);

    rc = cudaFreeHost(a);
    rc2 = cudaFreeHost(b);
    int again = cudaFreeHost(a);
    result("free", rc == 0 && rc2 == 0 && again != 0, "rc=%d/%d again=%d", rc, rc2, again);
    cudaFree(dev);
    return finish();
}

static int mode_mapped(void)
{
    const size_t n = 1u << 20;
    unsigned char *mapped = NULL, *managed = NULL, *plain = malloc(n);
    void *dev = NULL, *alias = NULL;
    int rc = cudaHostAlloc((void **)&mapped, n, cudaHostAllocMapped);
    int rc2 = rc ? rc : cudaHostGetDevicePointer(&alias, mapped + 5, 0);
    result("mapped_alloc", rc == 0 && rc2 == 0 && in_region(mapped) && alias == mapped + 5, "rc=%d/%d alias=%p",
           rc, rc2, alias);
    if (rc || rc2 || !plain)
        return finish();
    /* the device's copies and memsets through the alias are the process's bytes, both ways */
    rc = cudaMalloc(&dev, n);
    fill(mapped, n, 11);
    rc = rc ? rc : cudaMemcpy(dev, mapped, n, cudaMemcpyDeviceToDevice);
    rc = rc ? rc : cudaMemcpy(plain, dev, n, cudaMemcpyDeviceToHost);
    int read_ok = rc == 0 && !memcmp(plain, mapped, n);
    rc = rc ? rc : cudaMemset(mapped + 4096, 0x5a, 100);
    rc = rc ? rc : cudaDeviceSynchronize();
    result("mapped_device_access", read_ok && rc == 0 && mapped[4096] == 0x5a && mapped[4195] == 0x5a &&
                                       mapped[4196] == plain[4196], "rc=%d", rc);
    unsigned int bad_flags = cudaHostGetDevicePointer(&alias, mapped, 1);
    int unpinned = cudaHostGetDevicePointer(&alias, plain, 0);
    result("device_pointer_refusals", bad_flags == cudaErrorInvalidValue && unpinned == cudaErrorInvalidValue,
           "flags=%u unpinned=%d", bad_flags, unpinned);

    /* managed memory: one pointer for both sides */
    rc = cudaMallocManaged((void **)&managed, n, cudaMemAttachGlobal);
    struct cudaPointerAttributes attr = {0};
    rc2 = rc ? rc : cudaPointerGetAttributes(&attr, managed + 7);
    result("managed_alloc", rc == 0 && rc2 == 0 && in_region(managed) && attr.type == cudaMemoryTypeManaged &&
                                attr.devicePointer == managed + 7 && attr.hostPointer == managed + 7,
           "rc=%d/%d type=%d", rc, rc2, attr.type);
    if (rc)
        return finish();
    /* the driver's view: memory type (1 host, 2 device; managed reads as device), device and host
     * pointer, managed, the range's start and size; an attribute not served, memory not known */
    unsigned int types[3] = {9, 9, 9};
    CUdeviceptr dp[2] = {0, 0}, start = 0;
    void *hp = NULL;
    int is_managed[2] = {7, 7}, hp_dev = 0;
    size_t size = 0;
    int rcs = cuPointerGetAttribute(&types[0], 2, (CUdeviceptr)(uintptr_t)dev) |
              cuPointerGetAttribute(&types[1], 2, (CUdeviceptr)(uintptr_t)(mapped + 3)) |
              cuPointerGetAttribute(&types[2], 2, (CUdeviceptr)(uintptr_t)managed) |
              cuPointerGetAttribute(&dp[0], 3, (CUdeviceptr)(uintptr_t)(mapped + 3)) |
              cuPointerGetAttribute(&dp[1], 3, (CUdeviceptr)(uintptr_t)dev) |
              cuPointerGetAttribute(&hp, 4, (CUdeviceptr)(uintptr_t)(managed + 8)) |
              cuPointerGetAttribute(&is_managed[0], 8, (CUdeviceptr)(uintptr_t)mapped) |
              cuPointerGetAttribute(&is_managed[1], 8, (CUdeviceptr)(uintptr_t)(managed + 100)) |
              cuPointerGetAttribute(&start, 11, (CUdeviceptr)(uintptr_t)(managed + 100)) |
              cuPointerGetAttribute(&size, 12, (CUdeviceptr)(uintptr_t)(managed + 100));
    hp_dev = cuPointerGetAttribute(&hp, 4, (CUdeviceptr)(uintptr_t)dev);
    int not_served = cuPointerGetAttribute(&start, 6, (CUdeviceptr)(uintptr_t)dev);
    int unknown = cuPointerGetAttribute(&start, 2, (CUdeviceptr)(uintptr_t)plain);
    result("pointer_attribute", rcs == 0 && types[0] == 2 && types[1] == 1 && types[2] == 2 &&
                                    dp[0] == (CUdeviceptr)(uintptr_t)(mapped + 3) &&
                                    dp[1] == (CUdeviceptr)(uintptr_t)dev &&
                                    hp == managed + 8 && is_managed[0] == 0 && is_managed[1] == 1 &&
                                    start == (CUdeviceptr)(uintptr_t)managed && size == n && hp_dev == 1 &&
                                    not_served == 801 && unknown == 1,
           "rcs=%d types=%u/%u/%u managed=%d/%d size=%zu host_of_device=%d unserved=%d unknown=%d", rcs, types[0],
           types[1], types[2], is_managed[0], is_managed[1], size, hp_dev, not_served, unknown);
    fill(managed, n, 12);
    rc = cudaMemcpy(dev, managed, n, cudaMemcpyDefault);
    rc = rc ? rc : cudaMemset(managed, 0x33, 64);
    rc = rc ? rc : cudaDeviceSynchronize();
    rc = rc ? rc : cudaMemcpy(plain, dev, n, cudaMemcpyDeviceToHost);
    result("managed_device_access", rc == 0 && managed[0] == 0x33 && managed[63] == 0x33 && managed[64] == plain[64] &&
                                        plain[0] != 0x33, "rc=%d", rc);
    cudaStream_t s;
    rc = cudaStreamCreate(&s);
    struct cudaMemLocation host = {2, 0}, device = {1, 0};
    int to_host = cudaMemPrefetchAsync(managed, n, host, 0, s);
    int to_device = cudaMemPrefetchAsync(managed, n, device, 0, s);
    int attach = cudaStreamAttachMemAsync(s, managed, 0, cudaMemAttachSingle);
    int attach_part = cudaStreamAttachMemAsync(s, managed, 4096, cudaMemAttachHost);
    int attach_plain = cudaStreamAttachMemAsync(s, plain, 0, cudaMemAttachHost);
    rc = rc ? rc : cudaStreamSynchronize(s);
    result("managed_prefetch_attach", rc == 0 && to_host == 0 && to_device == cudaErrorInvalidDevice && attach == 0 &&
                                          attach_part == cudaErrorInvalidValue && attach_plain == cudaErrorInvalidValue,
           "rc=%d host=%d device=%d attach=%d/%d/%d", rc, to_host, to_device, attach, attach_part, attach_plain);
    cudaStreamDestroy(s);
    int inside = cudaFree(managed + 4096);
    rc = cudaFree(managed);
    int again = cudaFree(managed);
    rc2 = cudaFreeHost(mapped);
    result("free", inside != 0 && rc == 0 && again != 0 && rc2 == 0, "inside=%d rc=%d again=%d host=%d", inside, rc,
           again, rc2);
    cudaFree(dev);
    free(plain);
    return finish();
}

static int mode_collide(void)
{
    const size_t small = 64u << 10, big = 4u << 20, granule = 2u << 20;
    unsigned char *first = NULL, *second = NULL, *managed = NULL;
    void *alias = NULL;
    int rc = cudaMallocHost((void **)&first, small);
    /* first fit: the next range starts right after the first, and a big one runs over `hint` */
    CUdeviceptr hint = ((CUdeviceptr)(uintptr_t)first + small + granule - 1) & ~(CUdeviceptr)(granule - 1);
    CUdeviceptr reserved = 0;
    int rc2 = rc ? rc : cuMemAddressReserve(&reserved, granule, 0, hint, 0);
    result("reserve_in_the_way", rc == 0 && rc2 == 0 && reserved == hint, "rc=%d/%d", rc, rc2);
    if (rc || rc2)
        return finish();
    rc = cudaMallocHost((void **)&second, big);
    rc2 = rc ? rc : cudaHostGetDevicePointer(&alias, second, 0);
    int over = second && (uintptr_t)second <= hint && hint < (uintptr_t)second + big;
    result("mapped_elsewhere", rc == 0 && rc2 == 0 && in_region(second) && over && alias && alias != second,
           "rc=%d/%d second=%p alias=%p", rc, rc2, (void *)second, alias);
    if (rc || rc2 || !over)
        return finish();
    memset(second, 0, 64);
    rc = cudaMemset((char *)alias + 10, 0x42, 5);
    rc = rc ? rc : cudaDeviceSynchronize();
    result("reached_through_it", rc == 0 && second[10] == 0x42 && second[14] == 0x42 && second[15] == 0 &&
                                     second[9] == 0, "rc=%d", rc);
    rc = cudaFreeHost(second);
    rc2 = cudaMallocManaged((void **)&managed, big, 1); /* the same range again: its pointers are taken */
    result("managed_refused", rc == 0 && rc2 == 801 && !managed, "free=%d managed=%d", rc, rc2);
    rc = cuMemAddressFree(reserved, granule);
    rc2 = cudaFreeHost(first);
    result("free", rc == 0 && rc2 == 0, "rc=%d/%d", rc, rc2);
    return finish();
}

static int mode_exhaust(size_t mib)
{
    const size_t n = mib << 20;
    unsigned char *first = NULL, *second = NULL;
    void *dev = NULL;
    int rc = cudaMallocHost((void **)&first, n);
    int rc2 = cudaMallocHost((void **)&second, n);
    result("fallback", rc == 0 && rc2 == 0 && in_region(first) && !in_region(second), "rc=%d/%d", rc, rc2);
    if (rc || rc2)
        return finish();
    /* memory the device must reach has no ordinary fallback: out of memory (cudaErrorMemoryAllocation) */
    void *mapped = NULL, *managed = NULL;
    int mapped_rc = cudaHostAlloc(&mapped, n, cudaHostAllocMapped), managed_rc = cudaMallocManaged(&managed, n, 1);
    result("mapped_exhausted", mapped_rc == 2 && managed_rc == 2 && !mapped && !managed, "mapped=%d managed=%d",
           mapped_rc, managed_rc);
    rc = cudaMalloc(&dev, n);
    rc = rc ? rc : round_trip(first, second, n, dev, 7);
    int back = rc ? rc : round_trip(second, first, n, dev, 8);
    result("copies_through_both", rc == 0 && back == 0, "rc=%d/%d", rc, back);
    rc = cudaFreeHost(first);
    rc2 = cudaFreeHost(second);
    result("free", rc == 0 && rc2 == 0, "rc=%d/%d", rc, rc2);
    cudaFree(dev);
    return finish();
}

/* p[i] += 1 for i < n (32-bit words), one thread each */
static const char add_one_ptx[] =
    ".version 8.0\n.target sm_80\n.address_size 64\n"
    ".visible .entry add_one(.param .u64 ptr, .param .u32 n)\n{\n"
    "  .reg .pred %p;\n  .reg .b32 %r<6>;\n  .reg .b64 %rd<4>;\n"
    "  ld.param.u64 %rd1, [ptr];\n  ld.param.u32 %r1, [n];\n"
    "  mov.u32 %r2, %ctaid.x;\n  mov.u32 %r3, %ntid.x;\n  mov.u32 %r4, %tid.x;\n"
    "  mad.lo.s32 %r2, %r2, %r3, %r4;\n  setp.ge.u32 %p, %r2, %r1;\n  @%p ret;\n"
    "  cvta.to.global.u64 %rd1, %rd1;\n  mul.wide.u32 %rd2, %r2, 4;\n  add.s64 %rd3, %rd1, %rd2;\n"
    "  ld.global.u32 %r5, [%rd3];\n  add.s32 %r5, %r5, 1;\n  st.global.u32 [%rd3], %r5;\n  ret;\n}\n";

static int mode_register(void)
{
    const size_t page = 4096, span = 5 * page, n = 2 * page + 52;
    unsigned char *buf = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *want = malloc(span), *p = buf + page + 100; /* partial first and last pages */
    if (buf == MAP_FAILED || !want)
        return finish();
    fill(buf, span, 21);
    memcpy(want, buf, span);
    int rc = cudaHostRegister(p, n, cudaHostRegisterMapped);
    result("register_moves_pages", rc == 0 && in_region(buf + page) && in_region(p + n - 1) && !in_region(buf) &&
                                       !in_region(buf + 4 * page) && !memcmp(buf, want, span),
           "rc=%d", rc);
    if (rc)
        return finish();

    /* copies both ways name the range; the neighbouring bytes of its pages stay as they were */
    void *dev = NULL;
    cudaStream_t s;
    rc = cudaMalloc(&dev, n);
    fill(p, n, 22);
    memcpy(want + page + 100, p, n);
    rc = rc ? rc : cudaMemcpy(dev, p, n, cudaMemcpyHostToDevice);
    memset(p, 0, n);
    rc = rc ? rc : cudaMemcpy(p, dev, n, cudaMemcpyDeviceToHost);
    int sync_ok = rc == 0 && !memcmp(buf, want, span);
    rc = rc ? rc : cudaStreamCreate(&s);
    rc = rc ? rc : cudaMemcpyAsync(dev, p, n, cudaMemcpyHostToDevice, s);
    rc = rc ? rc : cudaMemcpyAsync(p + 8, dev, n - 8, cudaMemcpyDeviceToHost, s); /* after it, in order */
    rc = rc ? rc : cudaStreamSynchronize(s);
    memmove(want + page + 100 + 8, want + page + 100, n - 8); /* p[8..n) = the old p[0..n-8) */
    int async_ok = rc == 0 && !memcmp(buf, want, span);
    memcpy(want, buf, span); /* from here on, the bytes as they are */
    result("registered_copies", sync_ok && async_ok, "rc=%d sync=%d async=%d", rc, sync_ok, async_ok);

    /* a kernel reaches the bytes through the device pointer: each word of the range one more */
    void *alias = NULL;
    CUmodule mod;
    CUfunction f;
    rc = cudaHostGetDevicePointer(&alias, p, 0);
    rc = rc ? rc : cuModuleLoadData(&mod, add_one_ptx);
    rc = rc ? rc : cuModuleGetFunction(&f, mod, "add_one");
    unsigned words = (unsigned)(n / 4);
    void *params[] = {&alias, &words};
    rc = rc ? rc : cuLaunchKernel(f, (words + 127) / 128, 1, 1, 128, 1, 1, 0, NULL, params, NULL);
    rc = rc ? rc : cudaDeviceSynchronize();
    for (size_t i = 0; i < words; i++) {
        uint32_t w;
        memcpy(&w, want + page + 100 + 4 * i, 4);
        w += 1;
        memcpy(want + page + 100 + 4 * i, &w, 4);
    }
    struct cudaPointerAttributes attr = {0};
    int arc = cudaPointerGetAttributes(&attr, p + 4); /* the runtime's view: host memory, mapped */
    result("mapped_kernel", rc == 0 && alias != NULL && !memcmp(buf, want, span) && arc == 0 &&
                                attr.type == cudaMemoryTypeHost && attr.devicePointer == (char *)alias + 4,
           "rc=%d alias=%p attr=%d/%d/%p", rc, alias, arc, attr.type, attr.devicePointer);

    /* CUDA refuses registering registered bytes again; sharing only a page is served, staged */
    int again = cudaHostRegister(p, n, 0), inside = cudaHostRegister(p + 10, 20, 0);
    int tail = cudaHostRegister(p + n - 4, 100, 0);
    int shared = cudaHostRegister(buf + page, 64, 0);
    int shared_moved = in_region(buf + page);
    int shared_off = shared ? shared : cudaHostUnregister(buf + page);
    result("overlap", again == cudaErrorHostMemoryAlreadyRegistered && inside == again && tail == again &&
                          shared == 0 && shared_off == 0 && shared_moved && !memcmp(buf, want, span),
           "again=%d inside=%d tail=%d shared=%d/%d", again, inside, tail, shared, shared_off);

    /* a file's shared pages stay the file's: registered staged, its copies reach the file */
    FILE *file = tmpfile();
    unsigned char *mapped = MAP_FAILED, back[8192];
    if (file && !ftruncate(fileno(file), sizeof back))
        mapped = mmap(NULL, sizeof back, PROT_READ | PROT_WRITE, MAP_SHARED, fileno(file), 0);
    int frc = mapped == MAP_FAILED ? -1 : cudaHostRegister(mapped, sizeof back, 0);
    int file_staged = frc == 0 && !in_region(mapped);
    fill(back, sizeof back, 23);
    frc = frc ? frc : cudaMemcpy(dev, back, sizeof back, cudaMemcpyHostToDevice);
    frc = frc ? frc : cudaMemcpy(mapped, dev, sizeof back, cudaMemcpyDeviceToHost);
    unsigned char from_file[8192];
    frc = frc ? frc : pread(fileno(file), from_file, sizeof from_file, 0) == (ssize_t)sizeof from_file ? 0 : -1;
    frc = frc ? frc : cudaHostUnregister(mapped);
    result("file_pages_staged", file_staged && frc == 0 && !memcmp(from_file, back, sizeof back), "rc=%d", frc);
    if (mapped != MAP_FAILED)
        munmap(mapped, sizeof back);
    if (file)
        fclose(file);

    /* unregistering gives the process private pages again, with every byte */
    rc = cudaHostUnregister(p);
    int twice = cudaHostUnregister(p);
    buf[page] ^= 1; /* private pages, writable */
    want[page] ^= 1;
    result("unregister_restores", rc == 0 && twice == cudaErrorHostMemoryNotRegistered && !in_region(buf + page) &&
                                      !in_region(p + n - 1) && !memcmp(buf, want, span),
           "rc=%d twice=%d", rc, twice);
    cudaStreamDestroy(s);
    cudaFree(dev);
    munmap(buf, span);
    free(want);
    return finish();
}

static int mode_register_full(size_t mib)
{
    const size_t n = mib << 20;
    unsigned char *buf = malloc(n), *back = malloc(n);
    void *dev = NULL;
    int rc = buf && back ? cudaHostRegister(buf, n, 0) : -1;
    struct cudaPointerAttributes attr = {0};
    int staged = rc == 0 && !in_region(buf) && !cudaPointerGetAttributes(&attr, buf) &&
                 attr.type == cudaMemoryTypeHost && !attr.devicePointer; /* not mapped */
    rc = rc ? rc : cudaMalloc(&dev, n);
    rc = rc ? rc : round_trip(buf, back, n, dev, 31);
    int off = cudaHostUnregister(buf);
    result("register_staged", staged && rc == 0 && off == 0, "rc=%d unregister=%d", rc, off);
    rc = cudaHostRegister(buf, n, cudaHostRegisterMapped);
    result("register_mapped_refused", rc == cudaErrorNotSupported && cudaHostUnregister(buf) != 0, "rc=%d", rc);
    cudaFree(dev);
    free(buf);
    free(back);
    return finish();
}

static int mode_hold(size_t mib)
{
    unsigned char *p = NULL;
    int rc = cudaMallocHost((void **)&p, mib << 20);
    if (rc == 0)
        fill(p, mib << 20, 9);
    result("hold", rc == 0 && in_region(p), "rc=%d", rc);
    printf("READY in_region=%d\n", rc == 0 && in_region(p));
    fflush(stdout);
    char line[64];
    if (fgets(line, sizeof line, stdin) == NULL)
        line[0] = '\0';
    rc = cudaFreeHost(p);
    result("free", rc == 0, "rc=%d", rc);
    return finish();
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* MiB/s of the best of three runs of `copy(dst, src, n)` */
static double rate(int (*copy)(void *, const void *, size_t, void *), void *dst, const void *src, size_t n,
                   void *ctx, int *rc)
{
    double best = 1e30;
    for (int i = 0; i < 3 && !*rc; i++) {
        double t = now_s();
        *rc = copy(dst, src, n, ctx);
        t = now_s() - t;
        best = t < best ? t : best;
    }
    return (double)n / best / (1 << 20);
}

static int host_copy(void *dst, const void *src, size_t n, void *ctx)
{
    (void)ctx;
    memcpy(dst, src, n);
    return 0;
}
static int up(void *dev, const void *src, size_t n, void *ctx)
{
    (void)ctx;
    return cudaMemcpy(dev, src, n, cudaMemcpyHostToDevice);
}
static int down(void *dst, const void *dev, size_t n, void *ctx)
{
    (void)ctx;
    return cudaMemcpy(dst, dev, n, cudaMemcpyDeviceToHost);
}

static int mode_bandwidth(size_t mib)
{
    const size_t top = mib << 20;
    unsigned char *pinned = NULL, *plain = malloc(top), *other = malloc(top);
    void *dev = NULL;
    int rc = cudaMallocHost((void **)&pinned, top);
    rc = rc ? rc : cudaMalloc(&dev, top);
    result("bandwidth_setup", rc == 0 && plain && other && in_region(pinned), "rc=%d", rc);
    if (rc || !plain || !other)
        return finish();
    fill(pinned, top, 10);
    fill(plain, top, 10);
    memset(other, 0, top);
    for (size_t n = 4096; n <= top && !rc; n *= 4) {
        double floor = rate(host_copy, other, plain, n, NULL, &rc);
        double ph = rate(up, dev, pinned, n, NULL, &rc), pd = rate(down, pinned, dev, n, NULL, &rc);
        double gh = rate(up, dev, plain, n, NULL, &rc), gd = rate(down, plain, dev, n, NULL, &rc);
        printf("BANDWIDTH bytes=%zu memcpy=%.0f pinned_htod=%.0f pinned_dtoh=%.0f pageable_htod=%.0f "
               "pageable_dtoh=%.0f\n", n, floor, ph, pd, gh, gd);
    }
    result("bandwidth", rc == 0, "rc=%d", rc);
    cudaFree(dev);
    cudaFreeHost(pinned);
    free(plain);
    free(other);
    return finish();
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "copies"))
        return mode_copies();
    if (argc >= 2 && !strcmp(argv[1], "mapped"))
        return mode_mapped();
    if (argc >= 2 && !strcmp(argv[1], "collide"))
        return mode_collide();
    if (argc >= 3 && !strcmp(argv[1], "exhaust"))
        return mode_exhaust(strtoul(argv[2], NULL, 10));
    if (argc >= 2 && !strcmp(argv[1], "register"))
        return mode_register();
    if (argc >= 3 && !strcmp(argv[1], "register_full"))
        return mode_register_full(strtoul(argv[2], NULL, 10));
    if (argc >= 3 && !strcmp(argv[1], "hold"))
        return mode_hold(strtoul(argv[2], NULL, 10));
    if (argc >= 3 && !strcmp(argv[1], "bandwidth"))
        return mode_bandwidth(strtoul(argv[2], NULL, 10));
    fprintf(stderr, "usage: pinned_probe copies | mapped | collide | exhaust MIB | hold MIB | bandwidth MIB\n");
    return 2;
}
