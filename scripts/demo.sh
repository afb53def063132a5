#!/usr/bin/env bash
# The main job: installs what is missing, builds, and trains a small CNN with Burn on stamps cut
# from FITS images around catalog positions (a synthetic survey unless given --catalog/--images),
# printing loss, validation accuracy and data throughput, and writing two PNGs.
#   scripts/demo.sh [--device cpu|wgpu] [--epochs N] [--catalog CAT --images A.fits,B.fits ...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
features=()
for arg in "$@"; do
  # the wgpu runtime is built only when asked for
  [ "$arg" = wgpu ] && features=(--features wgpu)
done
cargo run --release -p torchfits-burn "${features[@]}" --example survey -- "$@"
