#!/usr/bin/env bash
# Rebuild the checked-in NVIDIA CUDA samples into bin/: tests/shim/samples/build.sh CHECKOUT [COMMIT]
#
# CHECKOUT is github.com/NVIDIA/cuda-samples (a clone, or `git archive` of one: then give its COMMIT, and
# RETIRED_FROM=<a clone or mirror> for the samples NVIDIA has removed since, see below).
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
COMMIT=${2:-$(git -C "$CHECKOUT" rev-parse HEAD)}
# Samples NVIDIA has removed (scripts/cuda-samples --retired) are built from the last commit that had them:
# one missing from CHECKOUT is added to it from git (RETIRED_FROM: a clone or mirror of cuda-samples;
# default CHECKOUT itself, then a clone). The checkout's own path is kept: the binaries hold it (__FILE__).
while read -r sample commit; do
    if [ ! -d "$CHECKOUT/Samples/$sample" ]; then
        git -C "${RETIRED_FROM:-$CHECKOUT}" archive "$commit" "Samples/$sample" | tar -x -C "$CHECKOUT"
    fi
done < <("$PYTHON" "$REPO/scripts/cuda-samples" --retired)
rm -rf bin
"$PYTHON" "$REPO/scripts/cuda-samples" "$CHECKOUT" --install bin --commit "$COMMIT" "${SAMPLES[@]}"
du -sh bin
