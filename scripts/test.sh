#!/usr/bin/env bash
# Sets up and runs every check and test: formatting, clippy (user crates, then the BPF crate
# with the nightly), unit and integration tests on the real kernel with a real mosquitto, and
# the emulated-board tests when present. Run as root: the probes load into this kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "test.sh: run as root (the tests load eBPF programs)" >&2; exit 1; }
bash scripts/setup.sh
nightly=$(tr -d '[:space:]' < ebpf/nightly-toolchain)
export CARGO_TERM_COLOR=never

echo "== fmt"
cargo fmt --all --check
echo "== clippy (user crates)"
cargo clippy --workspace --exclude firmware-agent-ebpf --all-targets -- -D warnings
echo "== clippy (BPF crate, $nightly)"
cargo +"$nightly" clippy -p firmware-agent-ebpf --bins --target bpfel-unknown-none -Z build-std=core -- -D warnings
echo "== build"
cargo build --workspace --exclude firmware-agent-ebpf --all-targets
echo "== tests (real kernel, real mosquitto)"
cargo test --workspace --exclude firmware-agent-ebpf
for t in hw-tests/run.sh image/tests/run.sh buildroot-overlay/tests/check.sh packaging/tests/check-deb.sh; do
    if [ -x "$t" ] || [ -f "$t" ]; then
        echo "== $t"
        bash "$t"
    fi
done
echo "== all tests passed"
