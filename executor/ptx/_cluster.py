"""Thread-block clusters (compute_90): a launch's cluster shape, its blocks' order, and distributed
shared memory.

*Shape.* A kernel declared with ``__cluster_dims__`` (``.reqnctapercluster`` in its PTX) or launched with
the cluster-dimension attribute runs in clusters of ``x * y * z`` blocks; the grid must be a multiple of
the cluster in every dimension and a cluster holds at most :data:`MAX_CLUSTER_BLOCKS` (the portable
size: a GPU allows 16 only to kernels that opt in, which is not served), else
``CUDA_ERROR_INVALID_CLUSTER_SIZE``. Every other launch is a cluster of one block (``%is_explicit_cluster``
false).

*Co-residency.* A cluster's blocks run at the same time on a GPU and may wait on each other
(``barrier.cluster``) and read and write each other's shared memory; the engine therefore puts whole
clusters in each batch, blocks ordered cluster by cluster and, within a cluster, by rank
(``%cluster_ctarank``: x fastest), so a thread's cluster is its block-in-batch divided by the cluster's
size and rank ``r`` of it is block ``cluster * size + r`` of the batch.

*Addresses.* A shared::cta address (an offset in the block's own window) is also the shared::cluster
address of that location in the executing block. ``mapa`` to rank ``r`` answers the offset with
``r + 1`` in the bits from :data:`RANK_SHIFT` up — above any block's window (the engine's shared bound
per batch is far below 2^26), so the window fast paths never take such an address and
:func:`cluster_shared` resolves it, checked against the target block's window. Generic addresses
carry the same bits in the shared window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from protocol import CUresult

from .._errors import CudaError
from ._memory import check_window, illegal
from ._state import Batch

__all__ = [
    "MAX_CLUSTER_BLOCKS",
    "RANK_SHIFT",
    "ClusterShape",
    "cluster_shape",
    "cluster_shared",
    "resolve_shared",
    "shared_owners",
]

#: the portable cluster size, the most a launch may ask without opting in to non-portable sizes
MAX_CLUSTER_BLOCKS = 8
#: a shared::cluster address of another block holds its rank + 1 from this bit up
RANK_SHIFT = 26
_OFFSET_MASK = (1 << RANK_SHIFT) - 1

Dim3 = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class ClusterShape:
    """An explicit cluster launch: the cluster's dimensions in blocks and the grid's."""

    dim: Dim3
    grid: Dim3

    @property
    def size(self) -> int:
        return self.dim[0] * self.dim[1] * self.dim[2]

    def grid_blocks(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The grid's linear block index (x fastest) of each position in the cluster-major order."""
        cx, cy, cz = self.dim
        gx, gy, _ = self.grid
        nx, ny = gx // cx, gy // cy
        size = self.size
        k, r = positions // size, positions % size
        bx = (k % nx) * cx + r % cx
        by = ((k // nx) % ny) * cy + (r // cx) % cy
        bz = (k // (nx * ny)) * cz + r // (cx * cy)
        out: npt.NDArray[np.int64] = bx + gx * (by + gy * bz)
        return out


def cluster_shape(
    name: str, grid: Dim3, required: Dim3 | None, requested: Dim3 | None, shared_bytes: int
) -> ClusterShape | None:
    """The launch's cluster: the kernel's compiled-in shape (``required``) or the launch attribute's
    (``requested``); ``None`` for an ordinary launch. Raises :class:`CudaError` as a driver answers."""
    if requested is not None and required is not None and requested != required:
        raise CudaError(
            CUresult.CUDA_ERROR_INVALID_CLUSTER_SIZE,
            f"kernel {name} is compiled for clusters of {required}; the launch asks for {requested}",
        )
    dim = requested or required
    if dim is None:
        return None
    if min(dim) < 1:
        raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"kernel {name}: a cluster of {dim} blocks")
    size = dim[0] * dim[1] * dim[2]
    if size > MAX_CLUSTER_BLOCKS or any(g % c for g, c in zip(grid, dim, strict=True)):
        raise CudaError(
            CUresult.CUDA_ERROR_INVALID_CLUSTER_SIZE,
            f"kernel {name}: clusters of {dim} blocks (at most {MAX_CLUSTER_BLOCKS}, dividing the grid "
            f"{grid} in every dimension)",
        )
    if shared_bytes > _OFFSET_MASK:  # the rank bits must lie above every block's window
        raise CudaError(
            CUresult.CUDA_ERROR_NOT_SUPPORTED,
            f"kernel {name}: {shared_bytes} bytes of shared memory per block in a cluster launch",
        )
    return ClusterShape(dim, grid)


def resolve_shared(
    batch: Batch, rows: npt.NDArray[np.intp], addrs: npt.NDArray[np.uint64]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]]:
    """Each thread's (of ``rows``) target block in the batch and offset in its window, for
    shared::cluster addresses; a rank outside the thread's cluster is ``CUDA_ERROR_ILLEGAL_ADDRESS``."""
    own = batch.block_index[rows]
    tags = (addrs >> np.uint64(RANK_SHIFT)).astype(np.intp)
    if not tags.any():
        return own, addrs
    size = batch.cluster.size if batch.cluster is not None else 1
    if int(tags.max()) > size:
        bad = int(addrs[np.flatnonzero(tags > size)[0]])
        raise illegal(
            f"shared::cluster address {bad:#x} names rank {(bad >> RANK_SHIFT) - 1} of a "
            f"cluster of {size} blocks"
        )
    blocks = np.where(tags > 0, own - own % size + tags - 1, own)
    return blocks, addrs & np.uint64(_OFFSET_MASK)


def shared_owners(
    batch: Batch, rows: npt.NDArray[np.intp], addrs: npt.NDArray[np.uint64], window: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]]:
    """The block each thread's (of ``rows``) shared address names — its own unless the address carries
    another rank of its cluster — and the address without that rank, the location's name in the block
    (a block's own location is named with no rank, or with its own rank through ``mapa``). ``window``
    is the address's base (0 for shared-space addresses, the generic shared window's for generic ones;
    others are answered the thread's own block and the address as it is). A rank outside the cluster
    is answered as the thread's own block and the address as it is: the access itself faults on it."""
    own = batch.block_index[rows]
    size = batch.cluster.size if batch.cluster is not None else 1
    addrs = addrs.astype(np.uint64, copy=False)
    offsets = addrs - np.uint64(window)  # wraps below the window: no tag
    tags = (offsets >> np.uint64(RANK_SHIFT)).astype(np.intp)
    named = (tags > 0) & (tags <= size)
    if not named.any():
        return own, addrs
    plain = np.where(named, addrs - (tags.astype(np.uint64) << np.uint64(RANK_SHIFT)), addrs)
    return np.where(named, own - own % size + tags - 1, own), plain


def cluster_shared(
    batch: Batch,
    rows: npt.NDArray[np.intp],
    addrs: npt.NDArray[np.uint64],
    size: int,
    data: npt.NDArray[np.uint8] | None,
) -> npt.NDArray[np.uint8]:
    """A shared-space load (``data is None``) or store of ``size`` bytes per thread whose addresses
    may name another block of the thread's cluster; aligned already, checked against the target
    block's window."""
    blocks, offsets = resolve_shared(batch, rows, addrs.astype(np.uint64, copy=False))
    check_window(offsets, size, batch.shared.shape[1], "shared")
    cols = offsets.astype(np.intp)[:, None] + np.arange(size)
    if data is None:
        loaded: npt.NDArray[np.uint8] = batch.shared[blocks[:, None], cols]
        return loaded
    batch.shared[blocks[:, None], cols] = data
    return data
