/*
 * Pinned host memory in the region (#19): cuMemHostAlloc & co. take a range of the region's pinned
 * area from the host, so a copy from or to it needs no staging — the host reads and writes the range
 * itself (one copy on sim, DMA from the registered region on a GPU).
 *
 * Theory of operation:
 *  - The host owns the area's bookkeeping (mem_host_alloc answers a pinned offset, relative to the
 *    area's start); this file keeps the process's own table of what it was given, to answer
 *    "is this pointer pinned, and where" for every copy (vgpu_shim_pinned_lookup).
 *  - The ranges are this process's channel's: the host frees them when the channel closes (exit,
 *    death, a lost lease), so they are never handed back from here after that.
 *  - When the area has no room (or the host has none), the caller falls back to ordinary memory,
 *    whose copies are staged through the arena as before.
 *  - A reset of the device (new epoch) takes every range with the contexts of the old epoch. The
 *    memory stays mapped (zeroed: the new worker punches the area out), so a range from before is
 *    kept as ordinary memory: its copies are staged,
 *    and freeing it only forgets it (the host already has it back). The host may hand the same range
 *    to another process after the reset: a program that keeps using pinned memory across a reset
 *    shares it (CUDA's cudaDeviceReset frees pinned memory outright).
 *  - Every range is mapped into the device's address space when it is handed out (mem_host_alias), as
 *    CUDA maps all pinned memory under unified addressing: at our own pointer to it when the host can
 *    put it there (host pointer == device pointer), else where the host chooses (logged once; then
 *    cudaHostGetDevicePointer's answer differs from the pointer, as CUDA allows). A host that cannot
 *    map it (a GPU whose driver refused the range, a host before mem_host_alias) leaves it unmapped:
 *    mapped allocations (DEVICEMAP) then fail, plain ones are served as before.
 *  - Managed memory (cuMemAllocManaged) is such a range whose device pointer must be its host pointer;
 *    when the host cannot place it so, the allocation is refused (NOT_SUPPORTED, logged once) — there
 *    is no ordinary-memory fallback for memory a kernel must reach.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shim.h"
#include "vgpu_pinned.h"
#include "vgpu_protocol.h"

#define CU_MEMHOSTALLOC_DEVICEMAP 0x02u

/* `user`/`user_size`: the range cuMemHostRegister named (0 for an allocation); base/size its pages */
struct pinned {
    uintptr_t base; size_t size; uint64_t offset; uint32_t epoch; uint64_t alias; int managed;
    uintptr_t user; size_t user_size;
};
static struct pinned *table;
static size_t count, cap;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* the area in our mapping, once known: a pointer outside it is not pinned, without taking the lock */
static uintptr_t area_lo, area_hi;
/* the same for registered pages, which lie outside the area: the span of all there ever were */
static uintptr_t reg_lo = UINTPTR_MAX, reg_hi;

static int maybe_pinned(uintptr_t p)
{
    return (p >= __atomic_load_n(&area_lo, __ATOMIC_RELAXED) && p < __atomic_load_n(&area_hi, __ATOMIC_ACQUIRE)) ||
           (p >= __atomic_load_n(&reg_lo, __ATOMIC_RELAXED) && p < __atomic_load_n(&reg_hi, __ATOMIC_ACQUIRE));
}

static uint32_t current_epoch(void)
{
    int err;
    struct cuda_transport *t = vgpu_shim_transport(&err);
    return t ? cuda_transport_epoch(t) : 0;
}

static void give_back(uint64_t offset)
{
    struct vgpu_args_mem_free_host f = {.offset = offset};
    (void)vgpu_cu_call(VGPU_CALL_MEM_FREE_HOST, &f, sizeof f, NULL, 0);
}

/* The device address of the fresh range at `offset`, which we see at `p`: p itself when the host can
 * map it there, else the host's choice (managed memory: 0 then, the caller refuses it); 0 when the
 * host cannot map it at all. A host that refused our pointer twice running (the cuda backend, whose
 * driver always chooses) is asked for plain pinned memory with 0 from then on: no refused call each. */
static uint64_t map_range(uint64_t offset, uintptr_t p, int managed)
{
    static int elsewhere_logged, unmapped_logged, refused_running;
    int ask = managed || __atomic_load_n(&refused_running, __ATOMIC_RELAXED) < 2;
    struct vgpu_args_mem_host_alias a = {.offset = offset, .address = ask ? p : 0};
    struct vgpu_result_mem_host_alias r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_MEM_HOST_ALIAS, &a, sizeof a, &r, sizeof r);
    if (ask && !rc)
        __atomic_store_n(&refused_running, 0, __ATOMIC_RELAXED);
    if (ask && rc == CUDA_ERROR_INVALID_VALUE) { /* those device addresses are taken: let the host choose */
        __atomic_add_fetch(&refused_running, 1, __ATOMIC_RELAXED);
        if (!__atomic_exchange_n(&elsewhere_logged, 1, __ATOMIC_RELAXED))
            vgpu_shim_log("pinned memory at %#lx cannot have the same device address (in use on the device): "
                          "its device pointer differs from its host pointer, and managed memory there is "
                          "refused (logged once)", (unsigned long)p);
        if (managed)
            return 0;
        a.address = 0;
        rc = vgpu_cu_call(VGPU_CALL_MEM_HOST_ALIAS, &a, sizeof a, &r, sizeof r);
    }
    if (rc) {
        if (!__atomic_exchange_n(&unmapped_logged, 1, __ATOMIC_RELAXED))
            vgpu_shim_log("the host does not map pinned memory into the device (status %d): mapped and "
                          "managed memory are not served (logged once)", (int)rc);
        return 0;
    }
    return r.dptr;
}

/* 1 when the entry went into the table (the lock held), 0 when it could not grow */
static int add_locked(struct pinned e)
{
    if (count == cap) {
        size_t grown_cap = cap ? cap * 2 : 32;
        struct pinned *grown = realloc(table, grown_cap * sizeof *grown);
        if (!grown)
            return 0;
        table = grown;
        cap = grown_cap;
    }
    table[count++] = e;
    return 1;
}

CUresult vgpu_pinned_alloc(void **pp, size_t bytesize, unsigned int flags)
{
    int err;
    struct cuda_transport *t = vgpu_shim_transport(&err);
    if (!t)
        return (CUresult)err;
    uint8_t *area;
    size_t area_size;
    if (cuda_transport_pinned_area(t, &area, &area_size))
        return CUDA_ERROR_NOT_SUPPORTED; /* no pinned area: the caller falls back */
    int managed = (flags & VGPU_PINNED_MANAGED) != 0;
    struct vgpu_args_mem_host_alloc a = {.bytesize = bytesize, .flags = flags & ~VGPU_PINNED_MANAGED};
    struct vgpu_result_mem_host_alloc r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_MEM_HOST_ALLOC, &a, sizeof a, &r, sizeof r);
    if (rc)
        return rc;
    if (r.offset > area_size || bytesize > area_size - r.offset) { /* never from a sound host */
        vgpu_shim_log("mem_host_alloc answered offset %#llx for %zu bytes of a %zu-byte pinned area",
                      (unsigned long long)r.offset, bytesize, area_size);
        return CUDA_ERROR_UNKNOWN;
    }
    uintptr_t p = (uintptr_t)(area + r.offset);
    uint64_t alias = map_range(r.offset, p, managed);
    if ((managed && alias != p) || (!alias && (flags & CU_MEMHOSTALLOC_DEVICEMAP))) {
        give_back(r.offset);
        if (managed && alias != p) {
            static int once;
            if (!__atomic_exchange_n(&once, 1, __ATOMIC_RELAXED))
                vgpu_shim_log("managed memory of %zu bytes refused: the device cannot address it at its host "
                              "pointer (logged once)", bytesize);
        }
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    pthread_mutex_lock(&lock);
    __atomic_store_n(&area_lo, (uintptr_t)area, __ATOMIC_RELAXED);
    __atomic_store_n(&area_hi, (uintptr_t)area + area_size, __ATOMIC_RELEASE);
    int added = add_locked((struct pinned){p, bytesize, r.offset, cuda_transport_epoch(t), alias, managed, 0, 0});
    pthread_mutex_unlock(&lock);
    if (!added) {
        give_back(r.offset);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *pp = (void *)p;
    return CUDA_SUCCESS;
}

int vgpu_pinned_free(void *ptr, CUresult *rc)
{
    uintptr_t p = (uintptr_t)ptr;
    pthread_mutex_lock(&lock);
    size_t i = 0;
    while (i < count && (table[i].base != p || table[i].user))
        i++;
    if (i == count) {
        pthread_mutex_unlock(&lock);
        return 0;
    }
    uint64_t offset = table[i].offset;
    uint32_t epoch = table[i].epoch;
    table[i] = table[--count]; /* forgotten first: no copy takes the pinned path into a freed range */
    pthread_mutex_unlock(&lock);
    if (epoch != current_epoch()) { /* the reset gave it back to the host already */
        *rc = CUDA_SUCCESS;
        return 1;
    }
    struct vgpu_args_mem_free_host a = {.offset = offset};
    *rc = vgpu_cu_call(VGPU_CALL_MEM_FREE_HOST, &a, sizeof a, NULL, 0);
    return 1;
}

int vgpu_shim_pinned_lookup(const void *ptr, size_t len, uint64_t *offset)
{
    uintptr_t p = (uintptr_t)ptr;
    if (!ptr || !maybe_pinned(p))
        return 0;
    int found = 0;
    uint32_t epoch = current_epoch();
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < count && !found; i++)
        if (p >= table[i].base && p - table[i].base < table[i].size) {
            found = len <= table[i].size - (p - table[i].base) && table[i].epoch == epoch;
            if (found && offset)
                *offset = table[i].offset + (p - table[i].base);
            break;
        }
    pthread_mutex_unlock(&lock);
    return found;
}

int vgpu_pinned_mapping(const void *ptr, uint64_t *dptr, uint64_t *base, int *managed)
{
    uintptr_t p = (uintptr_t)ptr;
    if (!ptr || !maybe_pinned(p))
        return 0;
    int found = 0;
    uint32_t epoch = current_epoch();
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < count; i++)
        if (p >= table[i].base && p - table[i].base < table[i].size) {
            found = 1;
            int mapped = table[i].alias && table[i].epoch == epoch; /* after a reset: mapped nowhere */
            if (dptr)
                *dptr = mapped ? table[i].alias + (p - table[i].base) : 0;
            if (base)
                *base = table[i].base;
            if (managed)
                *managed = table[i].managed;
            break;
        }
    pthread_mutex_unlock(&lock);
    return found;
}

/* -- cuMemHostRegister: the process's own pages moved into the area ------------------------------ */

/* Gives the pages [base, +size) private memory again, holding the bytes at `src` now (the region's
 * range: through the area, or the pages themselves): fresh anonymous pages filled aside, then moved over the range in one
 * mremap, so no moment leaves the range unmapped. 0, or -1 (errno) when the kernel refused. */
static int restore_private(uintptr_t base, size_t size, const void *src)
{
    void *fresh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fresh == MAP_FAILED)
        return -1;
    memcpy(fresh, src, size);
    if (mremap(fresh, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)base) == MAP_FAILED) {
        munmap(fresh, size);
        return -1;
    }
    return 0;
}

/* Whether every page of [lo, hi) is private anonymous memory we may read and write (the heap, malloc's
 * and mmap's anonymous ranges, stacks): only those can move. A file's pages (MAP_SHARED writes must
 * reach the file) or read-only ones stay where they are, staged. */
static int movable(uintptr_t lo, uintptr_t hi)
{
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps)
        return 0;
    char line[512];
    int ok = 1;
    while (ok && fgets(line, sizeof line, maps)) {
        unsigned long start, end, inode;
        char perms[5];
        if (sscanf(line, "%lx-%lx %4s %*s %*s %lu", &start, &end, perms, &inode) != 4)
            ok = 0;
        else if (start < hi && end > lo)
            ok = perms[0] == 'r' && perms[1] == 'w' && perms[3] == 'p' && inode == 0;
    }
    fclose(maps);
    return ok;
}

/* one registration or unregistration at a time: the overlap check holds until the pages have moved */
static pthread_mutex_t moving = PTHREAD_MUTEX_INITIALIZER;

static CUresult register_pages(void *ptr, size_t bytesize, unsigned int flags);

CUresult vgpu_pinned_register(void *ptr, size_t bytesize, unsigned int flags)
{
    pthread_mutex_lock(&moving);
    CUresult rc = register_pages(ptr, bytesize, flags);
    pthread_mutex_unlock(&moving);
    return rc;
}

static CUresult register_pages(void *ptr, size_t bytesize, unsigned int flags)
{
    int err, fd;
    struct cuda_transport *t = vgpu_shim_transport(&err);
    if (!t)
        return (CUresult)err;
    uint8_t *area, *region;
    size_t area_size;
    if (cuda_transport_pinned_area(t, &area, &area_size) || cuda_transport_region_fd(t, &fd, &region))
        return CUDA_ERROR_NOT_SUPPORTED; /* no pinned area or no descriptor to map it: staged */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), p = (uintptr_t)ptr;
    if (bytesize > UINTPTR_MAX - p - page)
        return CUDA_ERROR_INVALID_VALUE;
    uintptr_t lo = p & ~(page - 1), hi = (p + bytesize + page - 1) & ~(page - 1);
    size_t size = hi - lo;
    if (lo < (uintptr_t)area + area_size && hi > (uintptr_t)region) /* the area ends the region */
        return CUDA_ERROR_NOT_SUPPORTED; /* the region's own pages: no move */
    if (msync((void *)lo, size, MS_ASYNC) < 0)
        return CUDA_ERROR_INVALID_VALUE; /* a hole in the range (ENOMEM): CUDA refuses unmapped memory */
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < count; i++)
        if (table[i].user && lo < table[i].base + table[i].size && table[i].base < hi) {
            int bytes_overlap = p < table[i].user + table[i].user_size && table[i].user < p + bytesize;
            pthread_mutex_unlock(&lock);
            /* a page shared with another registration stays where it is: this one is staged */
            return bytes_overlap ? 712 /* CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED */ : CUDA_ERROR_NOT_SUPPORTED;
        }
    pthread_mutex_unlock(&lock);
    if (!movable(lo, hi)) {
        static int once;
        if (!__atomic_exchange_n(&once, 1, __ATOMIC_RELAXED))
            vgpu_shim_log("cuMemHostRegister at %#lx: its pages are not all private anonymous read-write "
                          "memory (a file's, or read-only), so they stay where they are (logged once)",
                          (unsigned long)lo);
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    struct vgpu_args_mem_host_alloc a = {.bytesize = size, .flags = 0};
    struct vgpu_result_mem_host_alloc r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_MEM_HOST_ALLOC, &a, sizeof a, &r, sizeof r);
    if (rc)
        return rc; /* OUT_OF_MEMORY: no room, the caller stages */
    size_t file_offset = (size_t)(area - region) + r.offset;
    if (r.offset > area_size || size > area_size - r.offset || file_offset % page) {
        vgpu_shim_log("mem_host_alloc answered offset %#llx for %zu bytes of a %zu-byte pinned area, not at a "
                      "page of %zu bytes", (unsigned long long)r.offset, size, area_size, (size_t)page);
        give_back(r.offset);
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    /* Copy, then map the area over the pages: a write by another thread in between is lost (CUDA's
     * cuMemHostRegister pins pages in place; the caller is not expected to write them meanwhile). */
    memcpy(area + r.offset, (void *)lo, size);
    if (mmap((void *)lo, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, (off_t)file_offset) == MAP_FAILED) {
        vgpu_shim_log("cuMemHostRegister: mapping %zu bytes of the region at %#lx failed (errno %d): staged",
                      size, (unsigned long)lo, errno);
        give_back(r.offset);
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    uint64_t alias = map_range(r.offset, lo, 0);
    if (!alias && (flags & CU_MEMHOSTALLOC_DEVICEMAP)) {
        if (restore_private(lo, size, area + r.offset))
            vgpu_shim_log("cuMemHostRegister: restoring private pages at %#lx failed (errno %d): they stay in "
                          "the region", (unsigned long)lo, errno);
        else
            give_back(r.offset);
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    pthread_mutex_lock(&lock);
    int added = add_locked((struct pinned){lo, size, r.offset, cuda_transport_epoch(t), alias, 0, p, bytesize});
    if (added) {
        if (lo < reg_lo)
            __atomic_store_n(&reg_lo, lo, __ATOMIC_RELAXED);
        if (hi > reg_hi)
            __atomic_store_n(&reg_hi, hi, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&lock);
    if (!added && !restore_private(lo, size, area + r.offset))
        give_back(r.offset);
    return added ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

static int unregister_pages(void *ptr, CUresult *rc);

int vgpu_pinned_unregister(void *ptr, CUresult *rc)
{
    pthread_mutex_lock(&moving);
    int found = unregister_pages(ptr, rc);
    pthread_mutex_unlock(&moving);
    return found;
}

static int unregister_pages(void *ptr, CUresult *rc)
{
    uintptr_t p = (uintptr_t)ptr;
    pthread_mutex_lock(&lock);
    size_t i = 0;
    while (i < count && table[i].user != p)
        i++;
    if (i == count) {
        pthread_mutex_unlock(&lock);
        return 0;
    }
    struct pinned e = table[i];
    table[i] = table[--count]; /* forgotten first: no copy takes the pinned path meanwhile */
    pthread_mutex_unlock(&lock);
    if (restore_private(e.base, e.size, (const void *)e.base)) { /* its bytes: the region's, mapped there */
        /* the pages stay the region's (the range is not handed back: it is still mapped here) */
        vgpu_shim_log("cuMemHostUnregister: restoring private pages at %#lx failed (errno %d): they stay in "
                      "the region", (unsigned long)e.base, errno);
        *rc = CUDA_ERROR_OUT_OF_MEMORY;
        return 1;
    }
    *rc = CUDA_SUCCESS;
    if (e.epoch == current_epoch()) { /* a reset gave it back to the host already */
        struct vgpu_args_mem_free_host f = {.offset = e.offset};
        *rc = vgpu_cu_call(VGPU_CALL_MEM_FREE_HOST, &f, sizeof f, NULL, 0);
    }
    return 1;
}
