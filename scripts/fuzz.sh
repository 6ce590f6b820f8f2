#!/usr/bin/env bash
# Fuzzes the disk spool's segment scanner and the hub's payload handling with cargo-fuzz
# (libFuzzer) on the dated nightly from ebpf/nightly-toolchain.
#
#   bash scripts/fuzz.sh [SECONDS]     # SECONDS per target, default 60
#
# Installs cargo-fuzz (and the nightly) if missing, builds both targets (release, with debug
# assertions so integer overflow is a crash), then runs each for SECONDS from the checked-in
# seeds in fuzz/corpus/<target>/ (new corpus entries stay there, ignored by git; crash inputs
# go to fuzz/artifacts/<target>/). Prints one line per target,
#   fuzz <target>: N execs, M crashes
# and exits non-zero if any target crashed (libFuzzer stops at the first crash, so M is 0 or 1).
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-60}"
[[ "$duration" =~ ^[0-9]+$ ]] || { echo "usage: bash scripts/fuzz.sh [SECONDS]" >&2; exit 2; }
nightly="$(tr -d '[:space:]' < ebpf/nightly-toolchain)"
targets=(spool_scan hub_payload)

if ! rustup run "$nightly" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$nightly" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi

cd fuzz
mkdir -p artifacts target
if ! cargo "+$nightly" fuzz build --debug-assertions >target/fuzz-build.log 2>&1; then
    cat target/fuzz-build.log >&2
    exit 1
fi

status=0
summary=()
for t in "${targets[@]}"; do
    mkdir -p "artifacts/$t" "corpus/$t"
    log="target/fuzz-$t.log"
    marker="target/fuzz-$t.start"
    touch "$marker"
    echo "== fuzzing $t for ${duration}s (log: fuzz/$log)"
    rc=0
    cargo "+$nightly" fuzz run --debug-assertions "$t" -- \
        -max_total_time="$duration" -print_final_stats=1 >"$log" 2>&1 || rc=$?
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || true)"
    crashes="$(find "artifacts/$t" -type f -newer "$marker" | wc -l)"
    if [[ -z "$execs" ]]; then
        tail -n 30 "$log" >&2
        echo "fuzz $t: libFuzzer printed no final stats (exit $rc)" >&2
        status=1
        execs=0
    fi
    if (( rc != 0 && crashes == 0 )); then
        tail -n 30 "$log" >&2
        echo "fuzz $t: cargo fuzz exited $rc without a crash input" >&2
        status=1
    fi
    if (( crashes > 0 )); then
        status=1
        find "artifacts/$t" -type f -newer "$marker" | sed 's|^|crash input: fuzz/|' >&2
    fi
    summary+=("fuzz $t: $execs execs, $crashes crashes")
done
printf '%s\n' "${summary[@]}"
exit "$status"
