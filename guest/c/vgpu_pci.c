/*
 * The PCI backend: QEMU's ivshmem-doorbell device (1af4:1110) as a guest sees it, through sysfs.
 *
 * No kernel driver is needed: writing 1 to the device's `enable` file turns on memory decoding,
 * `resource2` (BAR2, the region) and `resource0` (BAR0, the registers) are mmap()ed MAP_SHARED.
 * BAR0 offset 8 is IVPosition (our peer id), offset 12 the doorbell: writing
 * `peer << 16 | vector` fires that peer's eventfd on the host, here the mediator's vector for our
 * channel (channel % vectors). The process's own open of resource2 is also what its channel claim
 * (an OFD lock, vgpu_channel.c) is taken on.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport_internal.h"

#define PCI_DEVICES "/sys/bus/pci/devices"
#define IVSHMEM_VENDOR 0x1af4u
#define IVSHMEM_DEVICE 0x1110u

static long read_hex_file(const char *dir, const char *name)
{
    char path[PATH_MAX], text[32];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return -1;
    text[n] = '\0';
    return strtol(text, NULL, 16);
}

static int is_ivshmem(const char *dir)
{
    return read_hex_file(dir, "vendor") == IVSHMEM_VENDOR && read_hex_file(dir, "device") == IVSHMEM_DEVICE;
}

/* The device's sysfs directory: `bdf` if given, else the lowest-numbered ivshmem device. */
static int find_device(const char *bdf, char *dir, size_t dir_len)
{
    if (bdf) {
        snprintf(dir, dir_len, "%s/%s", PCI_DEVICES, bdf);
        if (!is_ivshmem(dir))
            return vt_fail(CUDA_TRANSPORT_E_NODEV, "%s is not an ivshmem device (1af4:1110)", dir);
        return 0;
    }
    DIR *d = opendir(PCI_DEVICES);
    if (!d)
        return vt_fail(CUDA_TRANSPORT_E_NODEV, "cannot list %s: %s", PCI_DEVICES, strerror(errno));
    char best[256] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof best)
            continue;
        char candidate[sizeof PCI_DEVICES + 256];
        snprintf(candidate, sizeof candidate, "%s/%s", PCI_DEVICES, e->d_name);
        if (is_ivshmem(candidate) && (!best[0] || strcmp(e->d_name, best) < 0))
            snprintf(best, sizeof best, "%s", e->d_name);
    }
    closedir(d);
    if (!best[0])
        return vt_fail(CUDA_TRANSPORT_E_NODEV, "no ivshmem device (1af4:1110) under %s", PCI_DEVICES);
    snprintf(dir, dir_len, "%s/%s", PCI_DEVICES, best);
    return 0;
}

/* mmap a resource file, opened by this process (`keep_fd`: the descriptor stays open there) */
static int map_resource(const char *dir, const char *name, uint8_t **base, size_t *size, int *keep_fd)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return vt_fail(CUDA_TRANSPORT_E_SYS, "open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size <= 0) {
        close(fd);
        return vt_fail(CUDA_TRANSPORT_E_SYS, "%s has no size", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int saved = errno;
    if (p == MAP_FAILED) {
        close(fd);
        return vt_fail(CUDA_TRANSPORT_E_SYS, "mmap %s (%lld bytes): %s", path, (long long)st.st_size,
                       strerror(saved));
    }
    if (keep_fd)
        *keep_fd = fd;
    else
        close(fd);
    *base = p;
    *size = (size_t)st.st_size;
    return 0;
}

int vt_pci_open(struct cuda_transport *t, const char *bdf)
{
    char dir[sizeof PCI_DEVICES + 256];
    int rc = find_device(bdf, dir, sizeof dir);
    if (rc)
        return rc;
    char enable[PATH_MAX];
    snprintf(enable, sizeof enable, "%s/enable", dir);
    int fd = open(enable, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        /* Fails with EIO/EBUSY when already enabled; the mmap below says if it matters. */
        if (write(fd, "1", 1) < 0) {
        }
        close(fd);
    }
    if ((rc = map_resource(dir, "resource0", &t->bar0, &t->bar0_size, NULL)))
        return rc;
    if (t->bar0_size < VR_BAR0_DOORBELL + 4)
        return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "BAR0 of %zu bytes has no doorbell register", t->bar0_size);
    size_t region_size;
    if ((rc = map_resource(dir, "resource2", &t->region, &region_size, &t->claim_fd)))
        return rc;
    t->region_size = region_size;
    t->peer_id = *(volatile uint32_t *)(void *)(t->bar0 + VR_BAR0_IVPOSITION);
    return vt_attach_region(t);
}

void vt_pci_close(struct cuda_transport *t)
{
    if (t->region)
        munmap(t->region, t->region_size);
    if (t->bar0)
        munmap(t->bar0, t->bar0_size);
    t->region = t->bar0 = NULL;
    if (t->claim_fd >= 0)
        close(t->claim_fd); /* its lock went with the claim already; closing drops any left */
    t->claim_fd = -1;
}

void vt_pci_kick(struct cuda_transport *t)
{
    *(volatile uint32_t *)(void *)(t->bar0 + VR_BAR0_DOORBELL) =
        (t->host_peer_id & 0xffffu) << 16 | (t->vector & 0xffffu);
}
