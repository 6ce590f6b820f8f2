#!/usr/bin/env bash
# hw-tests entry point (scripts/test.sh and CI call this): the static aarch64 agent on real
# arm64 kernels under QEMU, asserted by the real hub. Never skips: a missing QEMU, mosquitto
# or a failed download is a failure.
#
# Usage: hw-tests/run.sh [--cell CELL]... [CELL...]
#   default cells: e2e-16k e2e-4k nobtf-16k ringbuf-negative-16k ringbuf-negative-4k
#                  kprobe-16k kprobe-4k fentry-16k perf-16k e2e-64k ringbuf-negative-64k
#                  e2e-510 perf-510
#   *-64k cells build a 64K-page kernel first (hw-tests/build-kernel-64k.sh, cached;
#   needs hw-tests/apt-packages-64k.txt, installed by scripts/setup.sh).
#   *-510 cells fetch Debian bullseye's arm64 5.10 kernel (hw-tests/fetch-kernel-510.sh, cached).
#   perf-* cells force the perf-buffer transport (probes.transport = "perf").
#
# Steps: fetch the Debian kernels (cached), build the agent for aarch64-unknown-linux-musl
# (release), build the hub and the hw-tests runner (debug, shared with `cargo test`), run the
# cells. Output: one line per cell, a figures table, the phase times, then `N passed, M failed`
# as the last line. Logs: target/hw-tests/<cell>.{log,boot.txt,hub.jsonl}.
# Env: HW_TESTS_CACHE (default /var/cache/firmware-agent-hw), HW_TESTS_OUT (<target>/hw-tests;
#      <target> is $CARGO_TARGET_DIR if set, else target/),
#      HW_TESTS_TIMEOUT (per boot, default 240 s).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
cd "$REPO"

die() { echo "hw-tests: ERROR: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

CELLS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --cell) [ $# -ge 2 ] || die "--cell needs a name"; CELLS+=("$2"); shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) CELLS+=("$1"); shift ;;
    esac
done
[ "${#CELLS[@]}" -gt 0 ] || CELLS=(e2e-16k e2e-4k nobtf-16k ringbuf-negative-16k ringbuf-negative-4k kprobe-16k kprobe-4k fentry-16k perf-16k e2e-64k ringbuf-negative-64k e2e-510 perf-510)

export HW_TESTS_CACHE="${HW_TESTS_CACHE:-/var/cache/firmware-agent-hw}"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
OUT="${HW_TESTS_OUT:-$TARGET/hw-tests}"
mkdir -p "$OUT"

for tool in qemu-system-aarch64 mosquitto cpio gzip xz file cargo timeout; do
    command -v "$tool" >/dev/null || die "'$tool' not found (apt-get install \$(cat hw-tests/apt-packages.txt), or bash scripts/setup.sh)"
done

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
T0=$(now)

echo "== hw-tests: kernels"
t=$(now)
"$HERE/fetch-kernels.sh" || die "fetch-kernels.sh failed"
KARGS=(--kernel "16k=$HW_TESTS_CACHE/kernels/16k" --kernel "4k=$HW_TESTS_CACHE/kernels/4k")
need64=0
for c in "${CELLS[@]}"; do case "$c" in *-64k) need64=1 ;; esac; done
if [ "$need64" = 1 ]; then
    k64="$("$HERE/build-kernel-64k.sh" | sed -n 's/^KERNEL_DIR=//p')" || die "build-kernel-64k.sh failed"
    [ -n "$k64" ] || die "build-kernel-64k.sh printed no KERNEL_DIR"
    KARGS+=(--kernel "64k=$k64")
fi
need510=0
for c in "${CELLS[@]}"; do case "$c" in *-510) need510=1 ;; esac; done
if [ "$need510" = 1 ]; then
    k510="$("$HERE/fetch-kernel-510.sh" | sed -n 's/^KERNEL_DIR=//p')" || die "fetch-kernel-510.sh failed"
    [ -n "$k510" ] || die "fetch-kernel-510.sh printed no KERNEL_DIR"
    KARGS+=(--kernel "510=$k510")
fi
T_KERNELS=$(since "$t")

echo "== hw-tests: build (agent aarch64-musl release, hub + runner)"
t=$(now)
cargo build --release --target aarch64-unknown-linux-musl -p firmware-agent || die "agent cross-build failed"
cargo build -p edge-hub --bin hub -p hw-tests --bin hw-tests || die "hub/hw-tests build failed"
T_BUILD=$(since "$t")
AGENT="$TARGET/aarch64-unknown-linux-musl/release/firmware-agent"
[ -f "$AGENT" ] || die "$AGENT missing after the build"

echo "== hw-tests: cells ${CELLS[*]}"
t=$(now)
set +e
"$TARGET/debug/hw-tests" --agent "$AGENT" "${KARGS[@]}" --hub "$TARGET/debug/hub" \
    --out "$OUT" --timeout "${HW_TESTS_TIMEOUT:-240}" "${CELLS[@]}" | tee "$OUT/run.txt"
rc=${PIPESTATUS[0]}
set -e
T_CELLS=$(since "$t")

echo
echo "hw-tests wall time: $(since "$T0")s (kernels ${T_KERNELS}s, build ${T_BUILD}s, cells ${T_CELLS}s)"
last="$(tail -n1 "$OUT/run.txt")"
case "$last" in
    *" passed, "*" failed") echo "hw-tests: $last" ;;
    *) echo "hw-tests: 0 passed, ${#CELLS[@]} failed"; [ "$rc" -ne 0 ] || rc=1 ;;
esac
exit "$rc"
