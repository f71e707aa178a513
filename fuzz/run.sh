#!/usr/bin/env bash
# Runs every fuzz target for a bounded number of runs (issues 3 and 5).
# Runnable by hand from any directory; `.ci/run` calls it.
#
#   FUZZ_RUNS=200000    libFuzzer -runs per target (-1: none) } whichever
#   FUZZ_SECONDS=60     libFuzzer -max_total_time per target  } comes first
#   FUZZ_TARGETS="django_decode session_key cookie"
#   FUZZ_SANITIZER=none cargo fuzz -s: none | address (about 3x fewer runs/s)
#   FUZZ_MAX_LEN=4096   longest input, in bytes (a browser's cookie limit)
#
# cargo-fuzz passes nightly-only `-Z` flags to rustc; RUSTC_BOOTSTRAP=1 lets
# the stable toolchain accept them. The build goes to fuzz/target, never the
# workspace's target dir. Each target reads its committed seeds from
# fuzz/corpus/<target> and writes what it finds to fuzz/target/corpus/<target>
# (libFuzzer adds new inputs to the first directory it is given), so runs
# never touch the tracked files. A crash leaves its input in
# fuzz/artifacts/<target>/ and makes the script exit 1.
set -euo pipefail

fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$fuzz_dir/.."

runs=${FUZZ_RUNS:-200000}
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-django_decode session_key cookie}
sanitizer=${FUZZ_SANITIZER:-none}
max_len=${FUZZ_MAX_LEN:-4096}
cargo_fuzz_version=0.13.2

started=$SECONDS
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version 2>/dev/null | grep -q "cargo-fuzz $cargo_fuzz_version"; then
    echo "fuzz: installing cargo-fuzz $cargo_fuzz_version"
    cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi

fuzz() {
    local sub=$1
    shift
    cargo fuzz "$sub" --fuzz-dir "$fuzz_dir" --target-dir "$fuzz_dir/target" \
        --sanitizer "$sanitizer" "$@"
}

echo "fuzz: building (sanitizer: $sanitizer)"
fuzz build
echo "fuzz: built in $((SECONDS - started))s"

total_runs=0
crashes=0
count=0
for target in $targets; do
    count=$((count + 1))
    scratch="$fuzz_dir/target/corpus/$target"
    log="$fuzz_dir/target/logs/$target.log"
    mkdir -p "$scratch" "$(dirname "$log")"
    target_started=$SECONDS
    status=0
    fuzz run "$target" "$scratch" "$fuzz_dir/corpus/$target" -- \
        -runs="$runs" -max_total_time="$seconds" -max_len="$max_len" \
        -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?
    executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    executed=${executed:-0}
    total_runs=$((total_runs + executed))
    if [ "$status" -eq 0 ]; then
        echo "fuzz: $target: $executed runs in $((SECONDS - target_started))s, no crash"
    else
        crashes=$((crashes + 1))
        echo "fuzz: $target: CRASH (exit $status) after $executed runs; log: $log" >&2
        # The panic or sanitizer report, and cargo-fuzz's reproduce/minimise hints.
        grep -E -A12 'panicked at|ERROR: (libFuzzer|AddressSanitizer)' "$log" | head -n 40 >&2 || true
        grep -E -A2 'Failing input|Reproduce with|Minimize test case with' "$log" >&2 || true
        echo "(run those from the repository root with RUSTC_BOOTSTRAP=1 set)" >&2
    fi
done

echo "fuzz: done in $((SECONDS - started))s"
echo "fuzz: $count targets, $total_runs runs, $crashes crashes"
[ "$crashes" -eq 0 ]
