#!/usr/bin/env bash
# A long fuzz campaign: every target for SECONDS, JOBS targets at a time (one core each), with the
# sanitizers and every seed corpus (each run is fuzz/run.sh), then a Markdown table of each
# target's executions, coverage, corpus and findings, for the README's reliability section.
#
#   fuzz/campaign.sh SECONDS [JOBS] [TARGET...]     (default: 1 job, every target)
#
# A finding fails its target's run and leaves the input in fuzz/artifacts/TARGET/ (see run.sh).
set -uo pipefail
cd "$(dirname "$0")"
seconds=${1:?usage: fuzz/campaign.sh SECONDS [JOBS] [TARGET...]}
jobs=${2:-1}
shift $(( $# < 2 ? $# : 2 ))
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(header open_read table filter wcs write)
mkdir -p artifacts
# one build of every target first: parallel runs would queue on each other's builds
for t in "${targets[@]}"; do ./run.sh "$t" 1 >/dev/null 2>&1 || true; done
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} sh -c \
    './run.sh {} '"$seconds"' >artifacts/{}.campaign 2>&1; echo $? >artifacts/{}.status'

echo "| target | seconds | executions | coverage (edges) | features | corpus | findings |"
echo "|---|---|---|---|---|---|---|"
failed=0
for t in "${targets[@]}"; do
    log=artifacts/$t.log
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    last=$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
    status=$(cat "artifacts/$t.status" 2>/dev/null || echo 1)
    if [ "$status" = 0 ]; then finding=none; else finding="exit $status: fuzz/artifacts/$t/"; failed=1; fi
    echo "| $t | $seconds | ${runs:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $finding |"
done
exit "$failed"
