#!/usr/bin/env bash
# World coordinates on Burn tensors on a real GPU: the `device_wcs` example (16.8M points through
# the backend extension, checked against wcslib, beside wcslib on one core; a 256-stamp batch's
# host-device bytes) on each device, and the `torchfits bench` WCS cases. For a machine with a GPU
# and Vulkan (wgpu); `--cuda` adds the CUDA runtime (its build needs the CUDA toolkit).
#
#   scripts/gpu_wcs.sh [--cuda] [BENCH_DIR]
#
# BENCH_DIR holds the standard files (`python3 ../shared/peers/peer_bench.py make --dir DIR`); without
# it only the example runs. The goal: the extension at least 100x wcslib on one core.
set -euo pipefail
cd "$(dirname "$0")/.."
cuda=no
if [ "${1:-}" = "--cuda" ]; then cuda=yes; shift; fi
dir="${1:-}"
features=wgpu
devices=(wgpu cpu)
cli_features=gpu
if [ "$cuda" = yes ]; then
    features=wgpu,cuda
    devices=(cuda wgpu cpu)
    cli_features=gpu,cuda
fi
cargo build --release -p torchfits-burn --features "$features" --example device_wcs
for d in "${devices[@]}"; do
    echo "== device_wcs --device $d"
    target/release/examples/device_wcs --device "$d"
done
if [ -n "$dir" ]; then
    cargo build --release -p torchfits-cli --features "$cli_features"
    echo "== torchfits bench (wcs cases)"
    target/release/torchfits bench --dir "$dir" --only wcs
fi
