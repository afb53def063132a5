#!/usr/bin/env bash
# Runs one cargo-fuzz target for a bounded time, seeded from the bad-input corpus, the example
# data, ../shared/corpus (where present) and fuzz/seeds/TARGET (which keeps past findings).
#
#   fuzz/run.sh TARGET SECONDS      (TARGET: header, open_read, table, filter, wcs, write, or all)
#
# Every target runs with fits.dict, a dictionary of FITS keywords and extreme values: a header
# that declares far more than its few kB hold (PCOUNT, NAXISn, descriptors of 4 GB) is one
# dictionary insertion away.
#
# Uses the nightly toolchain with AddressSanitizer when rustup has one; otherwise the stable
# toolchain (RUSTC_BOOTSTRAP, no sanitizer). A crash leaves its input in fuzz/artifacts/TARGET and
# fails the script; the input then becomes a regression test (tests/bad/ or a unit test) and a
# seed in fuzz/seeds/TARGET.
set -euo pipefail
cd "$(dirname "$0")"
# its own target folder: its builds (sanitizer flags, nightly) never touch the main ones
export CARGO_TARGET_DIR="$PWD/target"
target=${1:?usage: fuzz/run.sh TARGET SECONDS}
seconds=${2:?usage: fuzz/run.sh TARGET SECONDS}

if ! command -v cargo-fuzz >/dev/null; then
    cargo install --locked cargo-fuzz --version =0.13.2
fi
if rustup run nightly rustc --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
    build_flags=(-O)
else
    echo "fuzz/run.sh: no nightly toolchain; building with the stable one, without a sanitizer" >&2
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
    build_flags=(-O -s none)
fi

if [ "$target" = all ]; then
    for t in header open_read table filter wcs write; do ./run.sh "$t" "$seconds"; done
    exit 0
fi

seeds=(seeds/"$target")
case "$target" in
    header|open_read)
        seeds+=(../tests/bad ../tests/data ../examples/data)
        for d in ../../shared/corpus/images-tables ../../shared/corpus/wcs; do
            [ -d "$d" ] && seeds+=("$d")
        done
        ;;
    wcs)
        [ -d ../../shared/corpus/wcs ] && seeds+=(../../shared/corpus/wcs)
        ;;
    remote)
        # every small file of the corpora as an object, behind three scripts of answers: none
        # (honest), a lie about the size and a long body, a shifted range and an error
        mkdir -p corpus/remote-seeds
        for f in ../tests/data/*.fits ../examples/data/*.fits ../../shared/corpus/images-tables/*.fits; do
            [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 60000 ] || continue
            n=$(basename "$f")
            printf '\x00' | cat - "$f" >corpus/remote-seeds/"$n".0
            printf '\x03\x00\x00\x00\x00\x00\x00\x00\x00\x07\xff\xff\xff\xff\x7f\x03\x01\x09\x01\x10\x00\x03\x07\x00\x00' \
                | cat - "$f" >corpus/remote-seeds/"$n".1
            printf '\x02\x08\x05\x00\x40\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00' | cat - "$f" >corpus/remote-seeds/"$n".2
        done
        seeds+=(corpus/remote-seeds)
        ;;
esac
mkdir -p corpus/"$target" artifacts/"$target"
existing=()
for d in "${seeds[@]}"; do [ -d "$d" ] && existing+=("$d"); done

"${fuzz[@]}" build "${build_flags[@]}" "$target"
# wcslib's own leaks on headers it rejects (see lsan.supp); any other leak fails the run. cfitsio
# has no frame pointers: to see the Rust frames under a finding inside it, rerun the input with
# ASAN_OPTIONS=fast_unwind_on_malloc=0 (slow, so not for the runs themselves)
export LSAN_OPTIONS="suppressions=$PWD/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
status=0
"${fuzz[@]}" run "${build_flags[@]}" "$target" corpus/"$target" "${existing[@]}" -- \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=65536 -dict=fits.dict \
    -artifact_prefix=artifacts/"$target"/ -print_final_stats=1 >"artifacts/$target.log" 2>&1 || status=$?
grep -E "^(#[0-9]+ +(INITED|DONE)|Done|stat::number_of_executed_units|stat::peak_rss_mb)" "artifacts/$target.log" || true
if [ "$status" -ne 0 ]; then
    echo "fuzz/run.sh: $target failed (exit $status); see fuzz/artifacts/$target.log" >&2
    tail -40 "artifacts/$target.log" >&2
    exit "$status"
fi
