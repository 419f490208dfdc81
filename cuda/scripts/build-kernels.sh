#!/usr/bin/env bash
# Compiles the CUDA kernels ahead of time into the resources the Java side loads with
# cuModuleLoadData: PTX for compute_90 (JIT-compiled by the driver on any newer GPU) and a cubin for
# sm_90 (H100/H200), plus kernels.sha256, the SHA-256 of the .cu sources and of the flags, which
# KernelBinariesTest compares with the sources on every build (and, where nvcc is installed,
# recompiles the PTX to check the shipped file byte for byte).
#
# Usage: cuda/scripts/build-kernels.sh [--check]   (--check: compile into a temp dir and compare)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
src="$here/src/main/cuda"
res="$here/src/main/resources/io/kvcache4j/cuda"
NVCC="${NVCC:-nvcc}"
FLAGS="-O3 -fmad=false -std=c++17"
out="$res"
if [[ "${1:-}" == "--check" ]]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"
"$NVCC" $FLAGS -arch=compute_90 -ptx -o "$out/kv_attention.ptx" "$src/kv_attention.cu"
"$NVCC" $FLAGS -arch=sm_90 -cubin -o "$out/kv_attention.sm_90.cubin" "$src/kv_attention.cu"
hash() {
  (cd "$src" && for f in $(ls *.cu | LC_ALL=C sort); do printf '%s\n' "$f"; cat "$f"; done; printf 'flags %s\n' "$FLAGS") \
    | sha256sum | cut -d' ' -f1
}
{
  echo "sources=$(hash)"
  echo "nvcc=$("$NVCC" --version | grep -o 'release [0-9.]*' | head -1)"
} > "$out/kernels.sha256"
if [[ "${1:-}" == "--check" ]]; then
  cmp "$out/kv_attention.ptx" "$res/kv_attention.ptx"
  cmp "$out/kernels.sha256" "$res/kernels.sha256"
  echo "shipped kernels are current"
else
  ls -l "$res"
fi
