#!/usr/bin/env bash
# The test suite: installs what is missing, runs every Rust test (unit, integration, CLI, doc),
# then the conformance check of the `torchfits` command against astropy on ../shared/corpus and on
# this repository's own fixtures, then the round trips of written files through astropy (and
# fitsverify).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
# the build needs some GB of disk (debug and release builds, the fuzz build, doctests in $TMPDIR):
# say what there is, so a run that fills the disk says so at its top
df -h . "${TMPDIR:-/tmp}" | sed 's/^/test: /'

# the command's `gpu` feature brings the wgpu runtime (and with it the kernel tests, which need
# torchfits-burn's `wgpu` feature): one feature set for every step, so the build is shared
features=(--features torchfits-cli/gpu)
# the remote tests read from nginx and moto's S3 server on 127.0.0.1, started around the run and
# stopped after; a server that cannot start fails the run
python3 scripts/remote_servers.py -- cargo test --workspace --all-targets "${features[@]}"
cargo test --workspace --doc "${features[@]}"
# library code: no unwrap/expect/panic/indexing a file could trigger (denied in each crate's root;
# every exception is an `allow` with its reason)
cargo clippy --workspace --lib --bins "${features[@]}"
# each fuzz target for a short bounded run over the corpora and past findings (fuzz/run.sh)
fuzz/run.sh all "${TORCHFITS_FUZZ_SECS:-30}"
cargo build --release -p torchfits-cli "${features[@]}"

corpus=()
[ -d ../shared/corpus ] && corpus+=(../shared/corpus)
if [ "${#corpus[@]}" = 0 ]; then
  if [ "${CI:-}" = true ]; then echo "test: ../shared/corpus is missing" >&2; exit 1; fi
  echo "test: ../shared/corpus not found; checking this repository's fixtures only" >&2
fi
cli="${CARGO_TARGET_DIR:-target}/release/torchfits"
checker=../shared/conformance/check.py
if [ -f "$checker" ]; then
  python3 "$checker" --cli "$cli" --only info,header,image,table,wcs "${corpus[@]}" tests/data examples/data
  # the GPU kernel on wgpu (Mesa's lavapipe on machines without a GPU), 1e-4 degree
  python3 "$checker" --cli "$cli" --only wcs --device wgpu "${corpus[@]}" tests/data examples/data
elif [ "${CI:-}" = true ]; then
  echo "test: $checker is missing" >&2; exit 1
else
  echo "test: $checker not found; conformance check skipped" >&2
fi
python3 tests/astropy_roundtrip.py --cli "$cli"
# the benchmark gate: the peers' read cases against python fitsio and astropy, 3 runs each (about
# 3 minutes); fails on a missed target, prints the table either way. Its own check first: a slow
# result must fail it.
python3 benches/test_compare_gate.py
if [ -f ../shared/peers/peer_bench.py ]; then
  python3 benches/compare.py --gate --dir "${CARGO_TARGET_DIR:-target}/bench-data"
elif [ "${CI:-}" = true ]; then
  echo "test: ../shared/peers/peer_bench.py is missing" >&2; exit 1
fi
