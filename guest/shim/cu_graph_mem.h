/* Graph memory (cu_graph_mem.c): the allocations of graphs' memory nodes, built or captured. */
#ifndef VGPU_CU_GRAPH_MEM_H
#define VGPU_CU_GRAPH_MEM_H

#include "cu_api.h"
#include "shim.h"

/* One allocation of an alloc node (built, or a cuMemAllocAsync under capture), shared by the
 * nodes, graphs and executable graphs that name it. */
struct graph_alloc {
    size_t refs, size;
    CUdeviceptr dptr;
    int freed_in_graph;         /* its own graph frees it */
    int outstanding;            /* a launch allocated it and nothing has freed it since */
    unsigned long long capture; /* the capture that made it, until that capture ends */
    int capturing;
    struct graph_alloc *next;
};

/* holders of allocations, by their handle (CUgraph, CUgraphExec) */
enum { VGPU_GMEM_GRAPH = 1, VGPU_GMEM_EXEC = 2 };

VGPU_HIDDEN CUresult vgpu_gmem_alloc(size_t size, struct graph_alloc **out);
VGPU_HIDDEN void vgpu_gmem_hold(struct graph_alloc *a);
VGPU_HIDDEN void vgpu_gmem_release(struct graph_alloc *a);
VGPU_HIDDEN struct graph_alloc *vgpu_gmem_find(CUdeviceptr dptr);

/* stream capture: cuMemAllocAsync / cuMemFreeAsync on a capturing stream, and the capture's end */
VGPU_HIDDEN CUresult vgpu_gmem_capture_alloc(CUdeviceptr *dptr, size_t size, unsigned long long capture);
VGPU_HIDDEN CUresult vgpu_gmem_capture_free(CUdeviceptr dptr, unsigned long long capture);
VGPU_HIDDEN int vgpu_gmem_capture_pending(void);
VGPU_HIDDEN void vgpu_gmem_capture_ended(unsigned long long capture, int ok, const void *graph);

/* holders: a built graph's executable graph registers what its nodes allocate and free (roles) */
#define ROLE_ALLOCATES 1u
#define ROLE_FREES 2u
VGPU_HIDDEN void vgpu_gmem_graph_gone(const void *graph);
VGPU_HIDDEN CUresult vgpu_gmem_register(const void *exec, const void *graph, unsigned long long flags, size_t count,
                                        struct graph_alloc *const *allocs, const unsigned char *frees);
VGPU_HIDDEN CUresult vgpu_gmem_copy(int kind, const void *from, int to_kind, const void *to, unsigned long long flags);
VGPU_HIDDEN void vgpu_gmem_forget(int kind, const void *id);
VGPU_HIDDEN int vgpu_gmem_holds(int kind, const void *id);
VGPU_HIDDEN CUresult vgpu_gmem_launch(const void *exec, CUstream s);

/* cuMemFree / cuMemFreeAsync (on *s) of a graph's allocation: 1 when it is one (the answer in *rc) */
VGPU_HIDDEN int vgpu_gmem_free_outside(CUdeviceptr dptr, const CUstream *s, CUresult *rc);

/* whether a capture this process began may be in progress (cu_guest_nodes.c) */
VGPU_HIDDEN int vgpu_capture_possible(void);

/* cuDeviceGetGraphMemAttribute's figures */
VGPU_HIDDEN void vgpu_gmem_usage(uint64_t *current, uint64_t *high);
VGPU_HIDDEN void vgpu_gmem_reset_high(void);

#endif
