#!/usr/bin/env bash
# Set up a fresh machine for netstruct: the CPU build of torch, the package with its test and
# benchmark extras, and (where apt is available as root) Debian's Fashion-MNIST files.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch is pinned to the CPU build; an unpinned torch would pull a multi-GB CUDA build.
python -m pip install -q "torch==2.13.0" -e ".[dev]"
# compile the numba kernels once into the on-disk cache, so no first call pays the compile
netstruct warmup >/dev/null
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 \
   && [ ! -e /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
   || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }) \
   || echo "note: dataset-fashion-mnist not installed; Fashion-MNIST tests and notebooks' full mode will be skipped" >&2
fi
