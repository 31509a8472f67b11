"""The simulated device's answer to every ``CUdevice_attribute`` of CUDA 13.

An H100/H200-like part (SXM, Hopper limits) whose identity comes from the configuration (compute
capability, multiprocessor count, PCI address). Every attribute CUDA 13's ``cuda.h`` defines (1 to
147) has a value, so ``cuDeviceGetAttribute`` never answers ``CUDA_ERROR_INVALID_VALUE`` for a real
attribute and ``cudaGetDeviceProperties`` fills every field.

Hardware limits (threads, grid, shared memory, texture and surface sizes, clocks, caches) are those
of the part. A capability is reported only where the mediator serves what it promises. Cooperative
and cluster launches are served (the PTX engine runs a cooperative grid, and each cluster, as one
batch), and so are mapped pinned memory and managed memory (the region's pinned ranges mapped into
the device, without concurrent access); stream priorities, stream memory operations, IPC, memory
pools, tensor maps, exportable handles and the host-NUMA features are not served, so they are 0
(and must be raised here when they are).
"""

from __future__ import annotations

from typing import Final

from ._base import DeviceConfig

__all__ = ["ATTRIBUTE_COUNT", "blocks_per_sm", "device_attributes"]

#: CU_DEVICE_ATTRIBUTE_MAX in CUDA 13.0's cuda.h: attributes are 1 .. ATTRIBUTE_COUNT - 1
ATTRIBUTE_COUNT: Final = 148
#: the PCI ids of an H100 SXM5 (device << 16 | NVIDIA's vendor id), as CUDA 13 reports them
_GPU_PCI_DEVICE_ID: Final = 0x2330_10DE
_GPU_PCI_SUBSYSTEM_ID: Final = 0x16C1_10DE


def _parse_pci(bus_id: str) -> tuple[int, int, int]:
    """(domain, bus, device) from ``dddd:bb:dd.f``."""
    domain, bus, rest = bus_id.split(":")
    return int(domain, 16), int(bus, 16), int(rest.split(".")[0], 16)


def device_attributes(config: DeviceConfig) -> dict[int, int]:
    """``CUdevice_attribute`` -> value for the simulated device, every attribute of CUDA 13."""
    major, minor = config.compute_capability
    domain, bus, device = _parse_pci(config.pci_bus_id)
    attributes = {
        # threads, blocks and grids
        1: 1024, 2: 1024, 3: 1024, 4: 64, 5: 2**31 - 1, 6: 65535, 7: 65535,
        # shared memory per block, constant memory, warp, pitch, registers per block
        8: 48 * 1024, 9: 64 * 1024, 10: 32, 11: 2**31 - 1, 12: 65536,
        # clock (kHz), texture alignment (cuMemAlloc's: a linear or pitch-2D texture's pointer needs it),
        # copy/compute overlap, SMs, no run-time limit, discrete
        13: 1_980_000, 14: 256, 15: 1, 16: config.multiprocessor_count, 17: 0, 18: 0,
        19: 1,  # mapped host memory: the region's pinned area (mem_host_alias)
        20: 0,  # compute mode: default
        # texture limits: 1D, 2D, 3D, 2D layered
        21: 131072, 22: 131072, 23: 65536, 24: 16384, 25: 16384, 26: 16384, 27: 32768, 28: 32768, 29: 2048,
        30: 512,  # surface alignment
        31: 1, 32: 1, 33: bus, 34: device, 35: 0,  # concurrent kernels, ECC, PCI bus/device, not TCC
        36: 2_619_000, 37: 5120, 38: 50 * 2**20, 39: 2048, 40: 3, 41: 1,  # memory clock (kHz), bus, L2, …
        42: 32768, 43: 2048,  # 1D layered textures
        44: 1,  # 2D texture gather (tld4 on arrays made with CUDA_ARRAY3D_TEXTURE_GATHER)
        45: 32768, 46: 32768, 47: 8192, 48: 8192, 49: 32768,  # gather and alternate 3D sizes
        50: domain, 51: 32,  # PCI domain, texture pitch alignment
        52: 32768, 53: 32768, 54: 2046,  # cubemaps
        # surfaces: 1D, 2D, 3D, 1D layered, 2D layered, cubemap, cubemap layered
        55: 32768, 56: 131072, 57: 65536, 58: 16384, 59: 16384, 60: 16384, 61: 32768, 62: 2048,
        63: 32768, 64: 32768, 65: 2048, 66: 32768, 67: 32768, 68: 2046,
        # linear and mipmapped textures
        69: 2**28, 70: 131072, 71: 65000, 72: 2_097_120, 73: 32768, 74: 32768,
        75: major, 76: minor, 77: 32768,
        78: 0,  # stream priorities: clamped to [0, 0]
        79: 1, 80: 1, 81: 228 * 1024, 82: 65536,  # L1 caches, shared memory and registers per SM
        83: 1,  # managed memory: pinned ranges at the guest's own addresses (no concurrent access: 89)
        84: 0, 85: 0, 86: 0, 87: 2,  # not a multi-GPU board, no host-native atomics, FP32:FP64 2:1
        88: 0, 89: 0,  # pageable memory access, concurrent managed access: not served
        90: 1, 91: 0,  # compute preemption; registered host memory is not GPU-addressable
        92: 0, 93: 0, 94: 0,  # stream memory operations: not served
        95: 1,  # cooperative launches (cuLaunchCooperativeKernel, grid.sync())
        96: 0,  # cooperative multi-device launches: one device, not served
        97: 227 * 1024, 98: 0, 99: 1,  # opt-in shared memory per block, no remote flush, host register
        100: 0, 101: 0,
        102: 1,  # virtual memory management: served
        103: 0, 104: 0, 105: 0,  # exportable allocation handles: not served
        106: 32, 107: 0,  # blocks per SM, no generic compression
        108: 0, 109: 0,  # persisting L2 and access policy windows: stream attributes are not served
        110: 0, 111: 1024,  # no GPUDirect RDMA with VMM, shared memory reserved per block
        112: 0, 113: 0, 114: 0,  # sparse arrays, read-only host registration, timeline semaphores
        115: 0,  # memory pools: the stream-ordered allocator is not served
        116: 0, 117: 0, 118: 0, 119: 0,  # GPUDirect RDMA, pool handle types
        120: 1,  # cluster launch: cuLaunchKernelEx's cluster dimension and __cluster_dims__
        121: 0, 122: 0, 123: 0, 124: 0, 125: 0,  # deferred mapping, stream mem ops, dma-buf, IPC events
        126: 1,  # memory synchronization domains: only the default (launch attributes are not served)
        127: 0, 128: 0, 129: 0,  # tensor maps, fabric handles, unified function pointers
        130: 0, 131: -1,  # no NUMA configuration
        132: 0, 133: 0, 134: -1,  # multicast, MPS, host NUMA node
        135: 0, 136: 0, 137: 0, 138: 0,  # D3D12/Vulkan CIG, memory decompression
        139: _GPU_PCI_DEVICE_ID, 140: _GPU_PCI_SUBSYSTEM_ID,
        141: 0, 142: 0, 143: 0, 144: 0, 145: 0, 146: 0, 147: 0,  # host-NUMA/host memory features
    }
    assert set(attributes) == set(range(1, ATTRIBUTE_COUNT)), "every CUDA 13 attribute has a value"
    return attributes


def blocks_per_sm(attributes: dict[int, int], block_threads: int, shared: int, registers: int) -> int:
    """How many blocks of ``block_threads`` threads one multiprocessor holds at once, as CUDA's
    occupancy calculator reckons it from the device's limits: threads in whole warps (at most
    2,048), blocks (32), shared memory (the block's static and dynamic bytes with the 1 KiB reserved
    per block, of 228 KiB) and registers (65,536, allocated per warp in units of 256)."""
    warp = attributes[10]
    if block_threads > attributes[1] or block_threads < 1:
        return 0
    warps = -(-block_threads // warp)
    n = min(attributes[39] // (warps * warp), attributes[106])
    per_block = shared + attributes[111]
    if per_block:
        n = min(n, attributes[81] // per_block)
    if registers:
        per_warp = -(-registers * warp // 256) * 256
        n = min(n, (attributes[82] // per_warp) // warps)
    return max(n, 0)
