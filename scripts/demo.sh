#!/usr/bin/env bash
# The main job, here: a private mosquitto on a free loopback port, the agent (as root) with
# its probes on this kernel, the hub printing live, decoded events, and `hub serve` with the
# web fleet view (its URL is printed; port 8080 when free), history and /metrics. Ctrl-C stops
# all.
#   scripts/demo.sh [--seconds N] [--json]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo.sh: run as root (the agent loads eBPF programs)" >&2; exit 1; }
seconds=""; hub_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        --json) hub_args+=(--json); shift ;;
        *) echo "usage: $0 [--seconds N] [--json]" >&2; exit 2 ;;
    esac
done
bash scripts/setup.sh
cargo build --release -p firmware-agent -p edge-hub
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" > "$work/mosquitto.conf"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "demo: agent log in $work/agent.log, hub serve log in $work/serve.log" >&2
}
trap cleanup EXIT INT TERM
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 & pids+=($!)
sleep 0.5
listen=127.0.0.1:8080
python3 -c 'import socket; socket.socket().bind(("127.0.0.1", 8080))' 2>/dev/null || listen=127.0.0.1:0
target/release/hub --broker "mqtt://127.0.0.1:$port" serve --listen "$listen" \
    --data-dir "$work/hub-data" >"$work/serve.out" 2>"$work/serve.log" & pids+=($!)
for _ in $(seq 100); do grep -q '^SERVING ' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^SERVING \([^ ]*\).*/\1/p' "$work/serve.out")
echo "demo: fleet view ${url:-not started, see $work/serve.log} (history in $work/hub-data)" >&2
echo "demo: broker mqtt://127.0.0.1:$port, hub below; agent log: $work/agent.log" >&2
target/release/hub --broker "mqtt://127.0.0.1:$port" "${hub_args[@]}" & hub=$!
sleep 0.5
FIRMWARE_AGENT_BROKER_URL="mqtt://127.0.0.1:$port" RUST_LOG=${RUST_LOG:-info} \
    target/release/firmware-agent --config firmware-agent/agent.example.toml \
    >"$work/agent.log" 2>&1 & agent=$!
pids=("$agent" "$hub" "${pids[@]}")
if [ -n "$seconds" ]; then
    # Something to watch: a bind and a few execs, one of which crashes.
    sleep 2
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()' || true
    sh -c 'kill -SEGV $$' 2>/dev/null || true
    sleep "$seconds"
    kill -TERM "$agent"; wait "$agent" || true
    sleep 1
else
    wait "$agent"
fi
