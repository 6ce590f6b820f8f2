#!/usr/bin/env bash
# Benchmarks (figures, not pass/fail): the pipeline on the real kernel (events/s, drops, CPU,
# VmRSS, bytes per event vs serde_json), stripped binary sizes for x86_64 and the static
# aarch64 (Raspberry Pi) build, then the footprint table against a C libbpf consumer, collectd
# and node_exporter (scripts/bench-footprint.sh), and the same load phases inside the 16K and 4K
# arm64 QEMU guests (scripts/bench-guest.sh, about 12 minutes; BENCH_GUEST=0 leaves it out).
# Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo bench -p firmware-agent --bench pipeline
cargo build --release -p firmware-agent
cargo build --release -p firmware-agent --target aarch64-unknown-linux-musl
for bin in target/release/firmware-agent target/aarch64-unknown-linux-musl/release/firmware-agent; do
    # The release profile already strips symbols; strip again to be sure the figure is stripped.
    cp "$bin" /tmp/fa-size-check && llvm-strip /tmp/fa-size-check 2>/dev/null || strip /tmp/fa-size-check 2>/dev/null || true
    printf 'binary %-60s %8d bytes stripped  (%s)\n' "$bin" "$(stat -c %s /tmp/fa-size-check)" "$(file -b "$bin" | cut -d, -f1-2)"
done
rm -f /tmp/fa-size-check
bash scripts/bench-footprint.sh
[ "${BENCH_GUEST:-1}" = 0 ] || bash scripts/bench-guest.sh
