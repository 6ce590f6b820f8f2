#!/usr/bin/env bash
# Measures the plain `hub --json` against a simulated fleet (figures, not pass/fail): a private
# mosquitto (no queue limit, $SYS every second), the release hub printing JSON lines into a
# pipe, and fleet-sim publishing for DURATION seconds. Reports what the simulator had
# acknowledged, what the hub accepted and how long after the simulator's end it had caught up,
# the broker's stored-message count over the run (a hub that falls behind shows as a growing
# store), the hub's CPU and VmRSS.
#   fleet-sim/measure-hub.sh [DEVICES=1000] [RATE=5] [DURATION=30] [BATCH_MS=200] [-- fleet-sim flags]
# RATE is events per second per device. Run on an otherwise quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
devices=${1:-1000} rate=${2:-5} duration=${3:-30} batch_ms=${4:-200}
shift $(( $# < 4 ? $# : 4 )); [ "${1:-}" = "--" ] && shift
cargo build --release -q -p edge-hub -p edge-fleet-sim --bins
bin=${CARGO_TARGET_DIR:-target}/release
dir=$(mktemp -d /tmp/measure-hub.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nsys_interval 1\nmax_queued_messages 0\n' \
    "$port" > "$dir/mosquitto.conf"
/usr/sbin/mosquitto -c "$dir/mosquitto.conf" > "$dir/mosquitto.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
url=mqtt://127.0.0.1:$port
mosquitto_sub -p "$port" -F '%U %t %p' -t '$SYS/broker/store/messages/count' \
    -t '$SYS/broker/publish/messages/dropped' > "$dir/sys.txt" & pids+=($!)
# The hub's stdout goes into a pipe, as when something reads it; only the totals are kept,
# stamped with their arrival time.
( "$bin/hub" --broker "$url" --json --totals-every 1 2> "$dir/hub.log" & echo $! > "$dir/hub.pid"; wait ) \
    | grep --line-buffered '"hub_totals"' \
    | while IFS= read -r l; do printf '%s %s\n' "$(date +%s.%N)" "$l"; done > "$dir/hub_totals.txt" &
pids+=($!)
sleep 1
hub=$(cat "$dir/hub.pid")
cpu0=$(awk '{print $14 + $15}' "/proc/$hub/stat")
start=$(date +%s.%N)
"$bin/fleet-sim" --broker "$url" --devices "$devices" --rate "$rate" --duration "$duration" \
    --batch-ms "$batch_ms" --seed 1 --json "$@" > "$dir/sim.json" 2> "$dir/sim.log"
sim_end=$(date +%s.%N)
want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["fleet"]["messages"])' "$dir/sim.json")
# Up to 120 s for the hub to catch up (it may never: a broker that drops a slow session).
deadline=$(( $(date +%s) + 120 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
    got=$(tail -n 1 "$dir/hub_totals.txt" | grep -o '"accepted":[0-9]*' | cut -d: -f2)
    [ "${got:-0}" -ge "$want" ] && break
    sleep 0.2
done
cpu1=$(awk '{print $14 + $15}' "/proc/$hub/stat")
grep -E 'VmRSS|VmHWM' "/proc/$hub/status" > "$dir/hub.mem"
kill "$hub"
sleep 1
python3 - "$dir" "$start" "$sim_end" "$cpu0" "$cpu1" "$(getconf CLK_TCK)" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'EOF'
import json, sys
d, start, sim_end, cpu0, cpu1, hz, load = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
sim = json.load(open(f"{d}/sim.json"))
totals = [(float(t), json.loads(j)) for t, j in (l.split(" ", 1) for l in open(f"{d}/hub_totals.txt"))]
want = sim["fleet"]["messages"]
caught = next((t for t, j in totals if j["accepted"] >= want), None)
during = [(t, j["accepted"]) for t, j in totals if start <= t <= sim_end]
rate = (during[-1][1] - during[0][1]) / (during[-1][0] - during[0][0]) if len(during) > 1 else 0
store, dropped = [], []
for l in open(f"{d}/sys.txt"):
    t, topic, v = l.split()
    if start <= float(t) <= sim_end + 2:
        (store if topic.endswith("count") else dropped).append(int(v))
mem = dict(l.split(":") for l in open(f"{d}/hub.mem"))
f = sim["fleet"]
print(json.dumps({
    "devices": sim["devices"], "connections": sim["connections"],
    "sim_elapsed_s": round(sim["elapsed_s"], 2), "sim_messages": want,
    "sim_messages_per_s": round(sim["messages_per_s"]), "sim_events_per_s": round(sim["events_per_s"]),
    "sim_batches": f["batches"], "sim_events": f["events"], "sim_late_ticks": sim["late_ticks"],
    "hub_accepted": totals[-1][1]["accepted"] if totals else 0,
    "hub_missed": want - (totals[-1][1]["accepted"] if totals else 0),
    "hub_reconnects": sum("connected to" in l for l in open(f"{d}/hub.log")) - 1,
    "hub_accepted_per_s_during_run": round(rate),
    "hub_caught_up_s_after_sim_end": round(caught - sim_end, 2) if caught else None,
    "broker_store_count_min_max": [min(store), max(store)] if store else None,
    "broker_dropped": dropped[-1] if dropped else None,
    "hub_cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / hz / (sim_end - start), 1),
    "hub_vmrss": mem["VmRSS"].strip(), "hub_vmhwm": mem["VmHWM"].strip(),
    "loadavg_at_end": load, "files": d,
}, indent=1))
EOF
