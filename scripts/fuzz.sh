#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ for SECONDS each, one at a time, and
# print a table: target, executions, crashes. Exits non-zero if any target
# crashed (or timed out, or ran out of memory), naming the artifact.
#
#   scripts/fuzz.sh SECONDS [TARGET...]
#
# Needs nightly Rust and cargo-fuzz (`cargo install cargo-fuzz`). The targets
# are built once (release, debug assertions and overflow checks, ASan) and
# their binaries run directly. Corpora
# are seeded by fuzz/seeds.py into fuzz/corpus/<target>/ and kept between
# runs; findings land in fuzz/artifacts/<target>/. Environment:
#   FUZZ_TOOLCHAIN  the toolchain for cargo-fuzz (default: nightly)
#   FUZZ_NICE       niceness of the fuzzing processes (default: 10)
#   FUZZ_RSS_MB     libFuzzer's -rss_limit_mb (default: 2048)
#   FUZZ_TIMEOUT    libFuzzer's -timeout per input, seconds (default: 10)
set -euo pipefail

usage() {
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
}
[[ $# -ge 1 && $1 =~ ^[0-9]+$ ]] || usage
seconds=$1
shift

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
toolchain=${FUZZ_TOOLCHAIN:-nightly}
nice_level=${FUZZ_NICE:-10}
rss_mb=${FUZZ_RSS_MB:-2048}
timeout_s=${FUZZ_TIMEOUT:-10}

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo "+$toolchain" fuzz list --fuzz-dir fuzz)
fi

echo "building ${#targets[@]} targets" >&2
nice -n "$nice_level" cargo "+$toolchain" fuzz build --fuzz-dir fuzz -O --debug-assertions >&2
python3 fuzz/seeds.py fuzz/corpus >&2
host=$(rustc "+$toolchain" -vV | sed -n 's/^host: //p')
bin=fuzz/target/$host/release

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
total_execs=0
total_crashes=0
failed=()
rows=()
for target in "${targets[@]}"; do
    corpus=fuzz/corpus/$target
    artifacts=fuzz/artifacts/$target
    mkdir -p "$corpus" "$artifacts"
    before=$(find "$artifacts" -type f | sort)
    dict=()
    if [[ -f fuzz/dicts/$target.dict ]]; then
        dict=("-dict=fuzz/dicts/$target.dict")
    fi
    echo "fuzzing $target for ${seconds}s" >&2
    # One process, one thread: no -jobs/-workers, which would fork workers
    # that log to fuzz-N.log instead of this log.
    log=$logs/$target.log
    status=0
    nice -n "$nice_level" "$bin/$target" "$corpus" \
        -max_total_time="$seconds" -print_final_stats=1 \
        -rss_limit_mb="$rss_mb" -timeout="$timeout_s" \
        -artifact_prefix="$artifacts/" "${dict[@]}" >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    execs=${execs:-0}
    new=$(comm -13 <(echo "$before") <(find "$artifacts" -type f | sort) | sed '/^$/d')
    crashes=0
    if [[ -n $new ]]; then
        crashes=$(echo "$new" | wc -l)
    elif [[ $status -ne 0 ]]; then
        crashes=1
        new="(exit status $status, no artifact; see the log below)"
    fi
    if [[ $crashes -ne 0 ]]; then
        failed+=("$target: $(echo "$new" | tr '\n' ' ')")
        echo "---- $target log (last 40 lines)" >&2
        tail -n 40 "$log" >&2
    fi
    rows+=("$(printf '%-20s %14s %8s' "$target" "$execs" "$crashes")")
    total_execs=$((total_execs + execs))
    total_crashes=$((total_crashes + crashes))
done

printf '%-20s %14s %8s\n' target executions crashes
printf '%s\n' "${rows[@]}"
printf '%-20s %14s %8s\n' total "$total_execs" "$total_crashes"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "crashed:" >&2
    printf '  %s\n' "${failed[@]}" >&2
    echo "reproduce: $bin/TARGET ARTIFACT (or cargo +$toolchain fuzz run --fuzz-dir fuzz TARGET ARTIFACT)" >&2
    exit 1
fi
