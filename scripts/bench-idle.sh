#!/usr/bin/env bash
# Idle memory only (issue 10), the idle phase of bench-footprint.sh without its load phases:
# one or more agent binaries (default config, every probe loaded, publishing to a private
# mosquitto on loopback), collectd with its MQTT plugin, our C libbpf consumer (64 KiB ring)
# and node_exporter (when installed), started side by side in one run;
# after BENCH_IDLE_S each one's VmRSS, RssAnon, RssFile, RssShmem, threads (/proc/PID/status)
# and Pss (/proc/PID/smaps_rollup). No bind flood: safe beside other work.
#
#   bash scripts/bench-idle.sh [name=binary ...]
#
# Default: agent=$CARGO_TARGET_DIR/release/firmware-agent (built here unless BENCH_NO_BUILD=1).
# BENCH_IDLE_S (default 15), BENCH_OUT (default $CARGO_TARGET_DIR/bench-idle). The agents'
# largest mappings go to $BENCH_OUT/<name>.maps. Run as root (loads eBPF programs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ "$(id -u)" = 0 ] || { echo "bench-idle: run as root (loads eBPF programs)" >&2; exit 1; }
log() { printf 'bench-idle: %s\n' "$*" >&2; }
for b in mosquitto mosquitto_pub mosquitto_sub collectd python3; do
    command -v "$b" >/dev/null || { log "needs $b (bash scripts/bench-footprint.sh installs it)"; exit 1; }
done

target=${CARGO_TARGET_DIR:-$root/target}
out=${BENCH_OUT:-$target/bench-idle}
idle_s=${BENCH_IDLE_S:-15}
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    cargo build -q --release -p firmware-agent --bin firmware-agent --example bench_count
fi
counter=${BENCH_COUNTER:-$target/release/examples/bench_count}
agents=("$@")
[ ${#agents[@]} -gt 0 ] || agents=("agent=$target/release/firmware-agent")
for a in "${agents[@]}"; do
    [ -x "${a#*=}" ] || { log "missing ${a#*=}"; exit 1; }
done
[ -x "$counter" ] || { log "missing $counter"; exit 1; }
rm -rf "$out" && mkdir -p "$out"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
# shellcheck source=../bench/lib.sh
. bench/lib.sh
field() { awk -v k="$2" '$1 == k":" {print $2}' "$1" 2>/dev/null || echo 0; }

bench_broker "$out/mosquitto"
printf '\n' > "$out/agent.toml" # the defaults, with every probe

watch=() # "name pid"
for a in "${agents[@]}"; do
    name=${a%%=*} bin=${a#*=}
    "$counter" --port "$port" --device "idle-$name-$$" --status "$out/$name.count" --seconds 900 &
    pids+=($!)
    FIRMWARE_AGENT_BROKER_URL="mqtt://127.0.0.1:$port" FIRMWARE_AGENT_DEVICE_ID="idle-$name-$$" \
        RUST_LOG=warn "$bin" --config "$out/agent.toml" --card-config /nonexistent \
        > "$out/$name.log" 2>&1 & pid=$!
    pids+=("$pid")
    for _ in $(seq 300); do
        grep -q '^online 1' "$out/$name.count" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || { log "$name exited: $(tail -5 "$out/$name.log")"; exit 1; }
        sleep 0.1
    done
    grep -q '^online 1' "$out/$name.count" || { log "$name did not come online"; exit 1; }
    watch+=("$name $pid")
done

if make -s -C bench/c-consumer OUT="$out/c" >/dev/null 2>&1; then
    "$out/c/consumer" --ring 65536 --wake default > "$out/c.out" 2> "$out/c.err" & c_pid=$!
    pids+=("$c_pid")
    for _ in $(seq 100); do grep -q ready "$out/c.out" 2>/dev/null && break; sleep 0.1; done
    watch+=("C-libbpf $c_pid")
else
    log "C consumer not built (bench/c-consumer needs clang, libbpf-dev, bpftool); left out"
fi
if command -v prometheus-node-exporter >/dev/null; then
    prometheus-node-exporter --web.listen-address="127.0.0.1:$(bench_free_port)" > "$out/node_exporter.log" 2>&1 &
    pids+=($!)
    watch+=("node_exporter $!")
fi
bench_collectd_conf "$out/collectd" "$port" "collectd-idle-$$"
timeout 30 mosquitto_sub -p "$port" -t 'collectd/#' -C 1 -W 25 > "$out/collectd/first-message" 2>&1 & sub=$!
collectd -f -C "$out/collectd/collectd.conf" > "$out/collectd/log" 2>&1 & cd_pid=$!
pids+=("$cd_pid")
watch+=("collectd+mqtt $cd_pid")
log "idle ${idle_s} s: ${watch[*]}"
sleep "$idle_s"
if wait "$sub" && [ -s "$out/collectd/first-message" ]; then cd_ok=yes; else cd_ok=NO; fi

printf '%-16s %8s %8s %8s %8s %8s %7s\n' process VmRSS RssAnon RssFile RssShmem Pss threads
cd_rss=0
rows=()
for w in "${watch[@]}"; do
    set -- $w
    st=/proc/$2/status
    rss=$(field "$st" VmRSS)
    [ "$1" != collectd+mqtt ] || cd_rss=$rss
    rows+=("$1 $rss")
    printf '%-16s %8s %8s %8s %8s %8s %7s\n' "$1" "$rss" "$(field "$st" RssAnon)" \
        "$(field "$st" RssFile)" "$(field "$st" RssShmem)" "$(field /proc/$2/smaps_rollup Pss)" \
        "$(field "$st" Threads)"
    case $1 in collectd+mqtt|C-libbpf|node_exporter) continue ;; esac
    # where an agent's resident pages are, largest first
    awk '/^[0-9a-f]+-[0-9a-f]+ / {m = $6 == "" ? "[anon]" : $6} /^Rss:/ {r[m] += $2}
         END {for (k in r) if (r[k] > 0) printf "%8d kB  %s\n", r[k], k}' "/proc/$2/smaps" \
        | sort -rn > "$out/$1.maps"
done
echo "(kB; collectd published to the broker: $cd_ok)"
for r in "${rows[@]}"; do
    set -- $r
    case $1 in collectd+mqtt|C-libbpf|node_exporter) continue ;; esac
    awk -v n="$1" -v a="$2" -v c="$cd_rss" \
        'BEGIN {printf "%s / collectd VmRSS: %.2fx (goal <= 0.75x)\n", n, a / c}'
done
