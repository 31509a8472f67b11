#!/usr/bin/env bash
# Rebuild the checked-in NVIDIA CUDA samples into bin/: tests/shim/samples/build.sh CHECKOUT [COMMIT]
#
# CHECKOUT is github.com/NVIDIA/cuda-samples (a clone, or `git archive` of one: then give its COMMIT).
# The samples are built unchanged by `scripts/cuda-samples --install` (nvcc -cudart shared of the CUDA 13
# toolkit, the checkout's Common/ headers, cuBLAS samples against the nvidia-cublas wheel's headers that
# tests/shim/programs/build.sh unpacks, linked to the shim's libraries: run `make -C guest/shim` first),
# stripped; bin/BUILT_WITH.txt records the commit, nvcc's version and every command line, bin/LICENSE is
# the samples' BSD-3 license. Tests and CI run these binaries and need neither nvcc nor the checkout.
set -euo pipefail
cd "$(dirname "$0")"
REPO=$(cd ../../.. && pwd)
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
CHECKOUT=${1:?usage: build.sh CHECKOUT [COMMIT]}
# the list the tests run (tests/shim/_support.py SAMPLES)
mapfile -t SAMPLES < <(cd "$REPO" && "$PYTHON" -c 'from tests.shim._support import SAMPLES; print(*SAMPLES, sep="\n")')
rm -rf bin
"$PYTHON" "$REPO/scripts/cuda-samples" "$CHECKOUT" --install bin ${2:+--commit "$2"} "${SAMPLES[@]}"
du -sh bin
