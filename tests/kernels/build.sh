#!/usr/bin/env bash
# Rebuild the module images that the tests load from test_kernels.cu.
#
# Needs nvcc (CUDA 13: sm_75 and newer only). The images are checked in, so tests and CI do not need
# nvcc; rerun this after editing the source, and update NVCC_VERSION.txt (it records the compiler
# that built the checked-in images).
#
#   test_kernels.ptx           PTX text for compute_80
#   test_kernels.cubin         an sm_90 cubin (ELF)
#   test_kernels.fatbin        uncompressed fatbin: sm_80 and sm_90 ELF, compute_90 PTX
#   test_kernels.lz4.fatbin    --compress-mode=speed: the PTX entry is LZ4-compressed (flag 0x2000)
#   test_kernels.zstd.fatbin   --compress-mode=size: every entry is ZSTD-compressed (flag 0x8000)
#   test_kernels.default.fatbin  nvcc's default: ELF entries plain, the PTX entry ZSTD-compressed
#   test_kernels.host.o        an x86-64 host object; its .nv_fatbin section wraps an sm_90 fatbin
#   ptx_corpus.compute_{75,80,90}.ptx  the PTX engine's kernel corpus (tests/ptx), one per virtual
#                              architecture the engine is held to
#   ptx_sync.compute_{80,90}.ptx  the corpus of grid-wide and asynchronous synchronization (cooperative
#                              launches, mbarrier, cp.async.bulk) and mma.m8n8k4 (tests/ptx)
#   ptx_cluster.compute_{75,80,90}.ptx  multi-warp tiles, invoke_one, an mbarrier hand-off between
#                              warps, named barriers and (compute_90) thread-block clusters
#                              (tests/ptx/test_clusters.py)
#   ptx_fp8.compute_{75,80,90}.ptx  cuda_fp8.h's pairs: cvt to and from e4m3x2/e5m2x2 on compute_90,
#                              NVIDIA's emulation elsewhere; floats to half2/bfloat162 (tests/ptx/test_fp8.py)
#   ptx_libs.compute_{75,80,90}.ptx  CUB's block radix sort, scan and reductions (tests/ptx/test_libs.py)
#   ptx_atomic_vec.compute_{75,80,90}.ptx  atomicAdd on __half/__half2/__nv_bfloat16(2), float2/float4,
#                              sm_90's vector atomics with min/max (tests/ptx/test_atomic_vec.py)
#   ptx_tma.compute_90.ptx      TMA: cp.async.bulk.tensor loads/stores with a CUtensorMap (libcu++), prefetches
#   ptx_tma_im2col.compute_90.ptx  TMA im2col loads (CUTLASS's spellings: 3d-5d, multicast, prefetch)
#                              (tests/ptx/test_tma.py)
#   ptx_texture.compute_{75,80,90}.ptx  texture and surface objects: every tex geometry, tld4, txq/suq,
#                              istypep, suld/sust (tests/ptx/test_textures.py)
set -euo pipefail
cd "$(dirname "$0")"
NVCC=${NVCC:-nvcc}
SRC=test_kernels.cu

"$NVCC" -ptx -arch=compute_80 -o test_kernels.ptx "$SRC"
"$NVCC" -cubin -arch=sm_90 -o test_kernels.cubin "$SRC"
"$NVCC" -fatbin --no-compress \
    -gencode arch=compute_80,code=sm_80 \
    -gencode arch=compute_90,code=sm_90 \
    -gencode arch=compute_90,code=compute_90 \
    -o test_kernels.fatbin "$SRC"
"$NVCC" -fatbin --compress-mode=speed \
    -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=compute_90 \
    -o test_kernels.lz4.fatbin "$SRC"
"$NVCC" -fatbin --compress-mode=size \
    -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=compute_90 \
    -o test_kernels.zstd.fatbin "$SRC"
"$NVCC" -fatbin \
    -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=compute_90 \
    -o test_kernels.default.fatbin "$SRC"
"$NVCC" -c -arch=sm_90 -o test_kernels.host.o "$SRC"

for arch in 75 80 90; do
    "$NVCC" -ptx -arch=compute_$arch -o ptx_corpus.compute_$arch.ptx ptx_corpus.cu
done
for arch in 80 90; do
    "$NVCC" -ptx -arch=compute_$arch -o ptx_sync.compute_$arch.ptx ptx_sync.cu
done
for arch in 75 80 90; do
    "$NVCC" -ptx -arch=compute_$arch -o ptx_cluster.compute_$arch.ptx ptx_cluster.cu
    "$NVCC" -ptx -arch=compute_$arch -o ptx_fp8.compute_$arch.ptx ptx_fp8.cu
    "$NVCC" -ptx -arch=compute_$arch -o ptx_libs.compute_$arch.ptx ptx_libs.cu
    "$NVCC" -ptx -arch=compute_$arch -o ptx_texture.compute_$arch.ptx ptx_texture.cu
    "$NVCC" -ptx -arch=compute_$arch -o ptx_atomic_vec.compute_$arch.ptx ptx_atomic_vec.cu
done
"$NVCC" -ptx -arch=compute_90 -o ptx_tma.compute_90.ptx ptx_tma.cu
"$NVCC" -ptx -arch=compute_90 -o ptx_tma_im2col.compute_90.ptx ptx_tma_im2col.cu

"$NVCC" --version > NVCC_VERSION.txt
echo "built the test kernels with $("$NVCC" --version | tail -n 2 | head -n 1)"
