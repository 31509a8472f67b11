#!/usr/bin/env bash
# Rebuild the shim's test programs into bin/ with the real CUDA toolkit (`nvcc -cudart shared`).
#
# The binaries are checked in: tests and CI run those, "the same binaries", and need no nvcc.
# gemm.cu is compiled against NVIDIA's cuBLAS headers and linked against NVIDIA's libcublas.so.13,
# both from PyPI's nvidia-cublas wheel, downloaded once into build/shim-rebuild/ (never committed).
# At run time the shim's libraries stand in for libcudart.so.13, libcublas.so.13 and libcuda.so.1.
set -euo pipefail
cd "$(dirname "$0")"
REPO=$(cd ../../.. && pwd)
WORK=$REPO/build/shim-rebuild
NVCC=${NVCC:-nvcc}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
# sm_80 and sm_90 code: the sim backend reads the kernels from the ELF entries, an H100/H200 runs sm_90
ARCH=(-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90)

CUBLAS=$WORK/wheel/nvidia/cu13
if [[ ! -f $CUBLAS/include/cublas_v2.h || ! -f $CUBLAS/lib/libcublas.so.13 ]]; then
    mkdir -p "$WORK"
    "$PYTHON" -m pip download -q --no-deps 'nvidia-cublas>=13,<14' -d "$WORK"
    wheel=$(ls "$WORK"/nvidia_cublas-13*.whl | tail -n 1)
    # only the headers and libcublas.so.13 (libcublasLt.so.13 alone is half a gigabyte)
    "$PYTHON" - "$wheel" "$WORK/wheel" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for name in wheel.namelist():
        if name.startswith("nvidia/cu13/include/") or name == "nvidia/cu13/lib/libcublas.so.13":
            wheel.extract(name, sys.argv[2])
PY
fi

mkdir -p bin
for program in vector_add streams_events graph graph_nodes host_funcs graph_memory managed_vars; do
    "$NVCC" -cudart shared "${ARCH[@]}" -O2 -o "bin/$program" "$program.cu"
done
# libcublas.so.13 needs libcublasLt.so.13, which is not extracted: the link does not look into it
for program in gemm blas3; do
    "$NVCC" -cudart shared "${ARCH[@]}" -O2 -I "$CUBLAS/include" -o "bin/$program" "$program.cu" \
        -L "$CUBLAS/lib" -l:libcublas.so.13 -Xlinker --allow-shlib-undefined
done

{
    "$NVCC" --version | tail -n 2
    echo "cuBLAS headers and link library: $(basename "$(ls "$WORK"/nvidia_cublas-13*.whl | tail -n 1)")"
} > bin/BUILT_WITH.txt
echo "built: $(ls bin | tr '\n' ' ')"
