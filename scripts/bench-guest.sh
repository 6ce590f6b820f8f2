#!/usr/bin/env bash
# The footprint bench (issue 10) inside the arm64 QEMU guests, figures only: the agent side by
# side with our C libbpf consumer on Debian's 16K-page arm64 kernel (and the 4K one of the same
# version, for comparison), as ratios. The guests run under TCG emulation on this host, so the
# absolute nanoseconds are emulated ones; the ratios between two consumers doing the same work
# in the same guest are what this reports. Memory by component (4K / 16K / 64K) comes from
# hw-tests' e2e cells (hw-tests/README.md); this adds the CPU side.
#
# Steps: fetch the kernels (hw-tests/fetch-kernels.sh, cached), build the static aarch64 agent
# and bench_count (release) and the static aarch64 C consumer and bindgen
# (bench/c-consumer/arm64.sh), start a private mosquitto on loopback, then per kernel boot one
# guest whose init sources bench/guest-bench.sh, collect its `HWTEST-BENCH:` lines and print
# bench/footprint-report.py's table.
#
# Env: BENCH_GUEST_KERNELS (default "16k 4k"), BENCH_GUEST_RATES (binds/s, default
# 1000,10000,0; 0 = flat out), BENCH_GUEST_SECS (per paced phase, default 5),
# BENCH_GUEST_FLAT (calls flat out, default 20000), BENCH_GUEST_ROUNDS (default 1),
# BENCH_GUEST_TIMEOUT (per guest, default 2400 s), BENCH_RING (default 65536),
# BENCH_OUT (default <target>/bench-guest), BENCH_NO_BUILD=1 (use what is built),
# HW_TESTS_CACHE. Run as root (mosquitto drops root itself); loopback and QEMU user
# networking only; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
log() { printf 'bench-guest: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
# setup.sh installs the QEMU, mosquitto and aarch64 gcc that the hw-tests need; the C
# baseline's cross build needs more.
bash scripts/apt-ensure.sh qemu-system-arm mosquitto mosquitto-clients cpio xz-utils file clang make \
    bpftool gcc-aarch64-linux-gnu libc6-dev-arm64-cross linux-libc-dev-arm64-cross python3
command -v cargo >/dev/null || die "cargo not found (bash scripts/setup.sh installs it)"

export HW_TESTS_CACHE="${HW_TESTS_CACHE:-/var/cache/firmware-agent-hw}"
target=${CARGO_TARGET_DIR:-$root/target}
out=${BENCH_OUT:-$target/bench-guest}
kernels=${BENCH_GUEST_KERNELS:-16k 4k}
rates=${BENCH_GUEST_RATES:-1000,10000,0}
ring=${BENCH_RING:-65536}
rm -rf "$out" && mkdir -p "$out"

log "kernels (cached)"
hw-tests/fetch-kernels.sh >"$out/fetch-kernels.log" 2>&1 || die "fetch-kernels.sh failed: $(tail -3 "$out/fetch-kernels.log")"
arm=$target/aarch64-unknown-linux-musl/release
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    log "building the agent and bench_count (aarch64 musl, release)"
    cargo build -q --release --target aarch64-unknown-linux-musl -p firmware-agent \
        --bin firmware-agent --example bench_count
fi
log "building the C consumer and bindgen (static aarch64)"
bench/c-consumer/arm64.sh "$out/c" 2>"$out/c-build.log" || die "bench/c-consumer/arm64.sh failed: $(tail -3 "$out/c-build.log")"
for b in "$arm/firmware-agent" "$arm/examples/bench_count" "$out/c/consumer" "$out/c/bindgen"; do
    [ -x "$b" ] || die "missing $b"
done

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
# shellcheck source=../bench/lib.sh
. bench/lib.sh
bench_broker "$out/mosquitto"

cmdline="fa.scenario=custom fa.broker=mqtt://10.0.2.2:$port fa.rates=$rates"
cmdline+=" fa.secs=${BENCH_GUEST_SECS:-5} fa.flat=${BENCH_GUEST_FLAT:-20000}"
cmdline+=" fa.rounds=${BENCH_GUEST_ROUNDS:-1} fa.ring=$ring"
goal=$(echo "$rates" | tr , '\n' | awk '$1 > 0' | sort -n | tail -1)
rc=0
for k in $kernels; do
    kdir="$HW_TESTS_CACHE/kernels/$k"
    [ -d "$kdir" ] || die "no kernel $kdir (BENCH_GUEST_KERNELS takes 16k and 4k)"
    initrd="$out/$k.cpio.gz"
    hw-tests/mkinitramfs.sh "$kdir" "$arm/firmware-agent" "$initrd" \
        "$out/c/consumer" "$out/c/bindgen" "$arm/examples/bench_count" \
        "bench/guest-bench.sh:/hwtest/scenario.sh" 2>"$out/$k.mkinitramfs.log" \
        || die "mkinitramfs for $k failed: $(tail -3 "$out/$k.mkinitramfs.log")"
    log "$k guest: rates $rates binds/s (0: flat out); console in $out/$k.console.txt"
    if ! hw-tests/boot.sh "$kdir"/boot/vmlinuz-* "$initrd" "$cmdline fa.device=bench-$k" \
        "$out/$k.console.txt" "${BENCH_GUEST_TIMEOUT:-2400}" >"$out/$k.boot.txt" 2>&1; then
        log "$k guest failed: $(tail -5 "$out/$k.boot.txt")"; rc=1; continue
    fi
    grep -q '^HWTEST-RESULT: bench-exit=0' "$out/$k.console.txt" \
        || { log "$k guest: $(grep '^HWTEST-RESULT' "$out/$k.console.txt")"; rc=1; }
    sed -n 's/^HWTEST-BENCH: //p' "$out/$k.console.txt" >"$out/$k.results.txt"
    kver=$(sed -n 's/^HWTEST-KERNEL: //p' "$out/$k.console.txt" | head -1)
    pg=$(sed -n 's/^HWTEST-PAGESIZE: //p' "$out/$k.console.txt" | head -1)
    python3 bench/footprint-report.py "$out/$k.results.txt" --rates "$rates" --goal-rate "$goal" \
        --machine "QEMU TCG arm64 guest on $(nproc)-core $(uname -m) (2 vCPUs, 512 MB), kernel $kver, ${pg:-?}-byte pages; CPU = the threads' schedstat run time, syscalls = a raw_syscalls hist trigger" \
        --ring "$ring" --gen rebind | tee "$out/$k.table.md"
    echo
done
log "raw figures in $out/<kernel>.results.txt, tables in $out/<kernel>.table.md"
exit "$rc"
