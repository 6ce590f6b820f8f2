#!/usr/bin/env bash
# Sets up and runs every check and test: formatting, clippy (user crates, then the BPF crate
# with the nightly), unit and integration tests on the real kernel with a real mosquitto, the
# emulated boards (Debian arm64 kernels in QEMU), and the fleet paths (image, Buildroot tree,
# systemd unit, .deb, cross). Run as root: the probes load into this kernel. Nothing skips: a
# missing tool or download fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "test.sh: run as root (the tests load eBPF programs)" >&2; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Runs a step, showing its output and keeping it for the closing count.
step() { "$@" 2>&1 | tee -a "$log"; return "${PIPESTATUS[0]}"; }

bash scripts/setup.sh
nightly=$(tr -d '[:space:]' < ebpf/nightly-toolchain)
export CARGO_TERM_COLOR=never

echo "== fmt"
cargo fmt --all --check
echo "== clippy (user crates)"
cargo clippy --workspace --exclude firmware-agent-ebpf --all-targets -- -D warnings
echo "== clippy (BPF crate, $nightly)"
cargo +"$nightly" clippy -p firmware-agent-ebpf --bins --target bpfel-unknown-none -Z build-std=core -- -D warnings
echo "== clippy (BPF crate, perf-buffer build, $nightly)"
cargo +"$nightly" clippy -p firmware-agent-ebpf --features perf --bins --target bpfel-unknown-none -Z build-std=core -- -D warnings
# The emulated boards' kernels (downloads, and the 64K kernel built from source: ~12 min of
# CPU on 2 cores when not cached) are prepared in the background at the lowest priority, so the
# build and the tests (much of their time spent waiting on brokers and timers) keep the CPU
# first. hw-tests/run.sh, later, finds them cached; if this failed, it tries again itself.
mkdir -p target
setsid nice -n 19 bash -c 'hw-tests/fetch-kernels.sh && hw-tests/build-kernel-64k.sh \
    && hw-tests/fetch-kernel-510.sh' >target/hw-kernels-prefetch.log 2>&1 &
prefetch=$!
# Its own process group: stopped with everything it started if this script ends early.
trap 'rm -f "$log"; kill -- -"$prefetch" 2>/dev/null || true' EXIT
echo "== build"
cargo build --workspace --exclude firmware-agent-ebpf --all-targets
echo "== tests (real kernel, real mosquitto)"
step cargo test --workspace --exclude firmware-agent-ebpf
echo "== fuzzing (bounded: 20 s per target; bash scripts/fuzz.sh 600 for a longer run)"
step bash scripts/fuzz.sh 20
wait "$prefetch" || echo "hw-tests kernels: the background preparation failed (target/hw-kernels-prefetch.log); hw-tests/run.sh tries again"
echo "== emulated boards (hw-tests: 16K, 4K, no-BTF, 64K, 5.10, perf buffers, negative controls)"
step bash hw-tests/run.sh
echo "== fleet: image injector (unit + QEMU boot of the injected image), Buildroot tree, unit, .deb, cross"
step env FIRMWARE_AGENT_REQUIRE_REAL=1 FIRMWARE_AGENT_BIN=target/aarch64-unknown-linux-musl/release/firmware-agent \
    bash image/tests/run.sh
step bash buildroot-overlay/tests/check.sh
step bash packaging/tests/check-unit.sh
step bash packaging/tests/check-deb.sh
step bash packaging/tests/check-cross.sh
# One closing line for everything above: cargo's "test result" lines plus each suite's own
# labelled "<suite>: N passed, N failed" line.
awk '/^test result: /{p+=$4; f+=$6}
     /^[A-Za-z0-9_-]+: [0-9]+ passed, [0-9]+ failed/{p+=$2; f+=$4}
     END{printf "total: %d passed, %d failed\n", p, f}' "$log"
