/* Where the region's pinned area is in this process (vgpu_pinned.h). */
#include <string.h>

#include "transport_internal.h"
#include "vgpu_pinned.h"
#include "vgpu_protocol.h"

_Static_assert(VGPU_REG_PINNED_OFFSET == 64 && VGPU_REG_PINNED_SIZE == 72, "pinned area words (protocol 2.1)");

static uint64_t header_u64(const struct cuda_transport *t, size_t off)
{
    uint64_t v;
    memcpy(&v, t->region + off, sizeof v);
    return v;
}

uint32_t cuda_transport_epoch(const struct cuda_transport *t)
{
    return __atomic_load_n(&t->epoch, __ATOMIC_ACQUIRE);
}

int cuda_transport_pinned_area(const struct cuda_transport *t, uint8_t **base, size_t *size)
{
    if (!t || !t->region)
        return vt_fail(CUDA_TRANSPORT_E_INVAL, "no transport");
    /* host (lay-out) words: written before device_state READY, which attaching waited for */
    uint64_t offset = header_u64(t, VGPU_REG_PINNED_OFFSET), bytes = header_u64(t, VGPU_REG_PINNED_SIZE);
    if (bytes == 0)
        return vt_fail(CUDA_TRANSPORT_E_INVAL, "the region has no pinned area (the host's pinned_size is 0)");
    uint64_t channels_end = t->channels_offset + (uint64_t)t->channel_count * t->channel_size;
    if (offset % VR_SECTION_ALIGN || bytes % VR_SECTION_ALIGN || offset < channels_end || offset > t->region_size ||
        bytes > t->region_size - offset)
        return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "pinned area [%llu, +%llu) does not lie between the channels' end "
                       "(%llu) and the region's (%zu)", (unsigned long long)offset, (unsigned long long)bytes,
                       (unsigned long long)channels_end, t->region_size);
    *base = t->region + offset;
    *size = (size_t)bytes;
    return 0;
}

int cuda_transport_region_fd(const struct cuda_transport *t, int *fd, uint8_t **region)
{
    /* the socket backend's memfd; the PCI backend keeps resource2 open as its claim descriptor */
    int have = !t || !t->region ? -1 : t->backend == VT_SOCKET ? t->region_fd : t->claim_fd;
    if (have < 0)
        return vt_fail(CUDA_TRANSPORT_E_INVAL, "no region descriptor");
    *fd = have;
    *region = t->region;
    return 0;
}
