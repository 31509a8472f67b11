/*
 * The region's pinned area (protocol 2.1): the guest's pinned host memory, at the region's end.
 * The host hands out its ranges (the catalog's mem_host_alloc); this only says where the area is in
 * this process's mapping of the region, after checking the header's words against the mapping.
 */
#ifndef VGPU_PINNED_H
#define VGPU_PINNED_H

#include <stddef.h>
#include <stdint.h>

#include "vgpu_transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The pinned area in this process: *base (its first byte in our mapping of the region) and *size.
 * 0 on success; CUDA_TRANSPORT_E_INVAL when the region has none (pinned_size 0, a 2.0 host), and
 * CUDA_TRANSPORT_E_LAYOUT when the header's words do not describe a range between the channels' end
 * and the region's (the reason is in cuda_transport_last_error).
 */
CUDA_TRANSPORT_API int cuda_transport_pinned_area(const struct cuda_transport *t, uint8_t **base, size_t *size);
/*
 * The region's epoch as this transport last saw it (it moves when a call notices a reset). Every pinned
 * range handed out in an earlier epoch went with the contexts of that epoch: its memory is still mapped
 * but no longer the process's on the host.
 */
CUDA_TRANSPORT_API uint32_t cuda_transport_epoch(const struct cuda_transport *t);
/*
 * A descriptor of the region (the memfd on a host, BAR2's resource2 in a VM) and *region, the first
 * byte of this process's mapping of it, which maps the descriptor from offset 0: a byte at
 * `region + k` can be mapped again elsewhere with mmap(fd, k) (#19: cuMemHostRegister moves a
 * process's pages into the pinned area so). The descriptor stays the transport's (never closed here).
 * 0 on success; CUDA_TRANSPORT_E_INVAL when there is none.
 */
CUDA_TRANSPORT_API int cuda_transport_region_fd(const struct cuda_transport *t, int *fd, uint8_t **region);

#ifdef __cplusplus
}
#endif
#endif /* VGPU_PINNED_H */
