#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the demo on FILE
# (default: the small sample shipped in examples/data/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo run --release --example inspect -- "$@"
