#!/usr/bin/env bash
# Rebuild the function-attribute test images from attr_kernels.cu (needs nvcc 13; the images are
# checked in, so tests and CI do not). What each image records is what `ptxas -v` prints when it is
# built (ptxas.txt keeps that output: the tests compare the parser with it).
#
#   attr_kernels.cubin       sm_90
#   attr_kernels.dlcm.cubin  sm_90 with -Xptxas -dlcm=ca (CU_FUNC_ATTRIBUTE_CACHE_MODE_CA = 1)
#   attr_kernels.ptx         PTX for compute_90
set -euo pipefail
cd "$(dirname "$0")"
NVCC=${NVCC:-nvcc}
SRC=attr_kernels.cu

"$NVCC" -cubin -arch=sm_90 -Xptxas -v -o attr_kernels.cubin "$SRC" 2> ptxas.txt
"$NVCC" -cubin -arch=sm_90 -Xptxas -dlcm=ca -o attr_kernels.dlcm.cubin "$SRC"
"$NVCC" -ptx -arch=compute_90 -o attr_kernels.ptx "$SRC"
sed -i '/Compile time/d' ptxas.txt
{ "$NVCC" --version | tail -n 2; } > NVCC_VERSION.txt
echo "built the function-attribute images with $("$NVCC" --version | tail -n 2 | head -n 1)"
