#!/usr/bin/env bash
# Benchmark of `hub serve` beside the plain `hub --json` baseline (figures only; nothing is
# asserted about speed): a private mosquitto, a simulated fleet of BENCH_DEVICES devices
# (default 1000) publishing at each rate of BENCH_RATES messages/s (default
# 1000,2500,5000,10000,20000) for BENCH_SECONDS each (default 8). Prints per rate the rate
# published and taken in, the drain time after the publisher stopped, the broker's message
# store (growing = the hub falls behind), the hub's CPU and VmRSS; then the database bytes per
# stored event and the fleet table's load time in headless Chromium with every device listed.
# Needs what scripts/setup.sh installs (mosquitto, chromium, chromium-driver). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TERM_COLOR=never
cargo test --release -p edge-hub --test serve_bench -- --ignored --nocapture --test-threads 1 2>&1 |
    grep -vE '^(running|test result|$)' 
