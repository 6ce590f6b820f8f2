#!/usr/bin/env bash
# Footprint and efficiency benchmark (issue 10), figures only: the agent side by side, in one
# run, with our own minimal C libbpf consumer doing the same kernel work (bench/c-consumer),
# collectd with its MQTT plugin and node_exporter (memory only). Prints one table of figures
# and ratios (bench/footprint-report.py) and keeps the raw numbers in $BENCH_OUT.
#
#   idle:  every process started with its default config (the agent: every probe loaded,
#          publishing to a private mosquitto on loopback; collectd: cpu, memory, load,
#          interface and the mqtt plugin to the same broker); VmRSS and CPU after BENCH_IDLE_S.
#   load:  bindgen (bind() calls, pinned to CPU 1) at 10k/s, 100k/s and flat out, against
#          nothing, the C consumer (also with its batched wake-up policy: "C, batched"), the
#          agent (and BENCH_AGENT_BASE, an older agent binary, for
#          before/after), each pinned to CPU 0, started fresh for each phase. Per phase: the
#          consumer's CPU (perf task-clock), syscalls and context switches (perf tracepoint
#          counts), events delivered (the C consumer's count; for the agent, decoded at a
#          subscriber) and drops, BPF run time per program (kernel.bpf_stats_enabled, read
#          from the consumer's program fds), and the generator's own CPU per call.
#
# Environment: BENCH_OUT (default $CARGO_TARGET_DIR or target, /bench-footprint),
# BENCH_RING (ring bytes for both consumers; default 65536, the agent's default watch ring),
# BENCH_GEN (rebind: bind() again on one bound socket, cheap, the default; fresh: socket +
# bind + close), BENCH_SECONDS (per paced phase, default 5), BENCH_FLAT_CALLS (default
# 300000), BENCH_IDLE_S (default 15), BENCH_ROUNDS (default 1), BENCH_SCHED (fifo, the
# default: consumers and generator SCHED_FIFO; nice: niceness BENCH_NICE), BENCH_NICE (default
# -10), BENCH_SETTLE_S (default 6: each consumer runs this long before its load phase is
# measured), BENCH_AGENT (agent binary; default: the release build made here), BENCH_AGENT_BASE
# (optional second agent binary, e.g. main's, for before/after in one run), BENCH_NO_BUILD=1. Run as root; loopback only; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ "$(id -u)" = 0 ] || { echo "bench-footprint: run as root (loads eBPF programs)" >&2; exit 1; }

log() { printf 'bench-footprint: %s\n' "$*" >&2; }

# --- what it needs -------------------------------------------------------------------------
want=(clang make gcc libbpf-dev bpftool libelf-dev zlib1g-dev collectd-core libmosquitto1
    mosquitto mosquitto-clients prometheus-node-exporter linux-perf python3 util-linux)
bash scripts/apt-ensure.sh "${want[@]}"
# Packages may start their daemons; this bench starts its own on loopback ports.
for svc in collectd prometheus-node-exporter; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl stop "$svc" || true
    fi
done

target=${CARGO_TARGET_DIR:-$root/target}
out=${BENCH_OUT:-$target/bench-footprint}
ring=${BENCH_RING:-65536}
gen_mode=${BENCH_GEN:-rebind}
secs=${BENCH_SECONDS:-5}
flat_calls=${BENCH_FLAT_CALLS:-300000}
idle_s=${BENCH_IDLE_S:-15}
settle_s=${BENCH_SETTLE_S:-6}
rounds=${BENCH_ROUNDS:-1}
prio=${BENCH_NICE:--10}
# The consumers and the generator run SCHED_FIFO by default: on a shared machine that is what
# gives each the quiet CPU the comparison assumes (else other work decides the drops and the
# rates). The broker and the counting subscriber are left to the scheduler.
sched="chrt -f 10"
[ "${BENCH_SCHED:-fifo}" = fifo ] || sched="nice -n $prio"
rm -rf "$out" && mkdir -p "$out"
results=$out/results.txt
: > "$results"

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    log "building the C baseline and the agent (release)"
    make -s -C bench/c-consumer OUT="$out/c" >/dev/null
    cargo build -q --release -p firmware-agent --bin firmware-agent --example bench_count
else
    make -s -C bench/c-consumer OUT="$out/c" >/dev/null
fi
agent=${BENCH_AGENT:-$target/release/firmware-agent}
counter=${BENCH_COUNTER:-$target/release/examples/bench_count}
consumer=$out/c/consumer
bindgen=$out/c/bindgen
for b in "$agent" "$counter" "$consumer" "$bindgen"; do
    [ -x "$b" ] || { log "missing $b"; exit 1; }
done
whos=(none c agent)
# The C consumer again with the batched wake-up policy (bind.bpf.c), unless BENCH_C_WAKE=0.
[ "${BENCH_C_WAKE:-1}" = 0 ] || whos+=(cb)
if [ -n "${BENCH_AGENT_BASE:-}" ]; then
    [ -x "$BENCH_AGENT_BASE" ] || { log "BENCH_AGENT_BASE $BENCH_AGENT_BASE is not executable"; exit 1; }
    whos+=(base)
fi

# --- processes we start, and their cleanup ---------------------------------------------------
pids=()
old_stats=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    sysctl -q kernel.bpf_stats_enabled="$old_stats" || true
}
trap cleanup EXIT
forget() { local keep=() p; for p in "${pids[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done; pids=("${keep[@]}"); }
stop_pid() { # SIGTERM, wait up to 20 s, then SIGKILL
    local p=$1 i
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    forget "$p"
}
# shellcheck source=../bench/lib.sh
. bench/lib.sh
status_of() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
ticks() { awk '{sub(/.*\) /, ""); split($0, f, " "); print f[12] + f[13]}' "/proc/$1/stat"; }
rec() { echo "$*" >> "$results"; }
sysctl -q kernel.bpf_stats_enabled=1

# A private broker on loopback; mosquitto drops root itself.
bench_broker "$out/mosquitto"
printf '\n' > "$out/agent.toml" # the defaults, with every probe

# Starts consumer $1 ("c", "agent", "base") pinned to CPU 0; sets $cpid (and $cnt_pid, $cnt_file).
start_consumer() {
    local who=$1 tag=$2
    cnt_pid=""
    case $who in
        c|cb)
            local wake=default
            [ "$who" = cb ] && wake=batched
            taskset -c 0 $sched "$consumer" --ring "$ring" --wake "$wake" \
                > "$out/$tag.$who.out" 2> "$out/$tag.$who.err" & cpid=$!
            pids+=("$cpid")
            for _ in $(seq 100); do grep -q ready "$out/$tag.$who.out" 2>/dev/null && return 0; sleep 0.1; done
            log "C consumer did not start: $(cat "$out/$tag.$who.err")"; return 1 ;;
        agent|base)
            local bin=$agent cfg=$out/agent.toml
            [ "$who" = base ] && bin=$BENCH_AGENT_BASE
            if [ "$tag" != idle ]; then
                cfg=$out/agent-load.toml
                printf '[ring_buffers]\nwatch_events = %s\n' "$ring" > "$cfg"
            fi
            cnt_file=$out/$tag.$who.count
            "$counter" --port "$port" --device "bench-$tag-$who-$$" --status "$cnt_file" \
                --seconds 900 & cnt_pid=$!
            pids+=("$cnt_pid")
            FIRMWARE_AGENT_BROKER_URL="mqtt://127.0.0.1:$port" FIRMWARE_AGENT_DEVICE_ID="bench-$tag-$who-$$" \
                RUST_LOG=warn taskset -c 0 $sched "$bin" --config "$cfg" --card-config /nonexistent \
                > "$out/$tag.$who.log" 2>&1 & cpid=$!
            pids+=("$cpid")
            for _ in $(seq 300); do
                grep -q '^online 1' "$cnt_file" 2>/dev/null && return 0
                kill -0 "$cpid" 2>/dev/null || break
                sleep 0.1
            done
            log "agent did not come online: $(tail -5 "$out/$tag.$who.log")"; return 1 ;;
    esac
}
count_field() { awk -v k="$2" '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}' "$1" 2>/dev/null || echo 0; }

# BPF run time and JIT size of the bind programs a process holds, from its program fds.
bpf_stats() {
    local who=$1 tag=$2 pid=$3 f id
    for f in /proc/"$pid"/fdinfo/*; do
        grep -q '^run_time_ns:' "$f" 2>/dev/null || continue
        id=$(awk '/^prog_id:/ {print $2}' "$f")
        bpftool prog show id "$id" --json 2>/dev/null | python3 -c '
import json, sys
p = json.load(sys.stdin)
if "bind" in p.get("name", ""):
    kind = "exit" if "exit" in p["name"] else "enter"
    print(sys.argv[1], sys.argv[2], "bpf_" + kind, p.get("run_time_ns", 0), p.get("run_cnt", 0), p.get("bytes_jited", 0), p.get("bytes_xlated", 0))
' "$tag" "$who" >> "$results" || true
    done
}

# --- idle ------------------------------------------------------------------------------------
log "idle: agent (default config, every probe), C consumer, collectd + mqtt, node_exporter (${idle_s} s)"
start_consumer agent idle; agent_idle=$cpid; agent_cnt=$cnt_pid
base_idle="" base_cnt=""
if [ -n "${BENCH_AGENT_BASE:-}" ]; then start_consumer base idle; base_idle=$cpid; base_cnt=$cnt_pid; fi
start_consumer c idle; c_idle=$cpid
bench_collectd_conf "$out/collectd" "$port" "collectd-bench-$$"
timeout 30 mosquitto_sub -p "$port" -t 'collectd/#' -C 1 -W 25 > "$out/collectd/first-message" 2>&1 & sub=$!
collectd -f -C "$out/collectd/collectd.conf" > "$out/collectd/log" 2>&1 & collectd_pid=$!
pids+=("$collectd_pid")
ne_port=$(bench_free_port)
prometheus-node-exporter --web.listen-address="127.0.0.1:$ne_port" > "$out/node_exporter.log" 2>&1 & ne_pid=$!
pids+=("$ne_pid")
sleep 3
curl -s -o /dev/null "http://127.0.0.1:$ne_port/metrics" 2>/dev/null || true # one scrape, as in use
t0_agent=$(ticks "$agent_idle"); t0_c=$(ticks "$c_idle"); t0_base=$([ -z "$base_idle" ] || ticks "$base_idle"); t0_cd=$(ticks "$collectd_pid"); t0_ne=$(ticks "$ne_pid")
sleep "$idle_s"
if wait "$sub" && [ -s "$out/collectd/first-message" ]; then collectd_ok=1; else collectd_ok=0; fi
idle_set=("agent $agent_idle $t0_agent" "c $c_idle $t0_c" "collectd $collectd_pid $t0_cd" "node_exporter $ne_pid $t0_ne")
[ -z "$base_idle" ] || idle_set+=("base $base_idle $t0_base")
for w in "${idle_set[@]}"; do
    set -- $w
    rec idle "$1" rss_kb "$(status_of "$2" VmRSS)"
    rec idle "$1" anon_kb "$(status_of "$2" RssAnon)"
    rec idle "$1" threads "$(status_of "$2" Threads)"
    rec idle "$1" idle_ticks "$(( $(ticks "$2") - $3 ))"
done
rec idle collectd published "$collectd_ok"
rec idle all idle_s "$idle_s"
rec idle all hz "$(getconf CLK_TCK)"
bpf_stats agent idle "$agent_idle"
for p in "$agent_idle" "$c_idle" "$collectd_pid" "$ne_pid" "$agent_cnt" $base_idle $base_cnt; do stop_pid "$p"; done
[ "$collectd_ok" = 1 ] || log "collectd published nothing to the broker: $(tail -3 "$out/collectd/log")"

# --- load ------------------------------------------------------------------------------------
sys_events="raw_syscalls:sys_enter"
for s in epoll_wait epoll_pwait epoll_ctl timerfd_settime read write futex sendto recvfrom; do
    sys_events+=",syscalls:sys_enter_$s"
done
run_phase() { # rate who round
    local rate=$1 who=$2 round=$3 tag calls perf_pid i want got
    tag="r$round-$rate"
    calls=$(( rate ? rate * secs : flat_calls ))
    cpid="" cnt_pid=""
    [ "$who" = none ] || start_consumer "$who" "$tag"
    # Steady state only: one-time start-up work (the agent hands back its start-up pages 5 s
    # in) is not charged to the phase's events.
    [ -z "$cpid" ] || sleep "$settle_s"
    if [ -n "$cpid" ]; then
        [ -z "$cnt_pid" ] || { c_ours0=$(count_field "$cnt_file" ours); c_ev0=$(count_field "$cnt_file" events); c_dr0=$(count_field "$cnt_file" drops); }
        perf stat -x, -o "$out/$tag.$who.perf" -e "task-clock,context-switches,$sys_events" -p "$cpid" & perf_pid=$!
        pids+=("$perf_pid")
        sleep 0.5
    fi
    taskset -c 1 $sched "$bindgen" "$calls" "$rate" "$gen_mode" > "$out/$tag.$who.gen"
    if [ -n "$cnt_pid" ]; then # the agent: until every call is delivered or counted as dropped
        want=$(( c_ours0 + calls ))
        for i in $(seq 600); do
            got=$(( $(count_field "$cnt_file" ours) + $(count_field "$cnt_file" drops) - c_dr0 ))
            [ "$got" -ge "$want" ] && break
            sleep 0.1
        done
    elif [ -n "$cpid" ]; then
        sleep 0.5
    fi
    if [ -n "$cpid" ]; then
        kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true; forget "$perf_pid"
        bpf_stats "$who" "$tag" "$cpid"
        rec "$tag" "$who" rss_kb "$(status_of "$cpid" VmRSS)"
        rec "$tag" "$who" hwm_kb "$(awk '/^VmHWM:/ {print $2}' "/proc/$cpid/status")"
        stop_pid "$cpid"
        awk -F, -v t="$tag" -v w="$who" 'NF > 3 && $1 ~ /^[0-9.]+$/ {print t, w, "perf:" $3, $1}' "$out/$tag.$who.perf" >> "$results"
    fi
    if [ "$who" = c ] || [ "$who" = cb ]; then
        read -r _ recs _ ours _ _ _ drops _ _ < <(tail -1 "$out/$tag.$who.out")
        rec "$tag" "$who" delivered "$recs"; rec "$tag" "$who" ours "$ours"; rec "$tag" "$who" drops "$drops"
    elif [ -n "$cnt_pid" ]; then
        stop_pid "$cnt_pid"
        rec "$tag" "$who" delivered "$(( $(count_field "$cnt_file" events) - c_ev0 ))"
        rec "$tag" "$who" ours "$(( $(count_field "$cnt_file" ours) - c_ours0 ))"
        rec "$tag" "$who" drops "$(( $(count_field "$cnt_file" drops) - c_dr0 ))"
        rec "$tag" "$who" lat_max_ms "$(count_field "$cnt_file" lat_max_ms)"
        rec "$tag" "$who" lat_mean_ms "$(count_field "$cnt_file" lat_mean_ms)"
    fi
    read -r _ gcalls _ _ _ gsecs _ grate _ gns < "$out/$tag.$who.gen"
    rec "$tag" "$who" gen_calls "$gcalls"; rec "$tag" "$who" gen_secs "$gsecs"
    rec "$tag" "$who" gen_rate "$grate"; rec "$tag" "$who" gen_cpu_ns "$gns"
}
for round in $(seq "$rounds"); do
    for rate in 10000 100000 0; do
        log "round $round: ${rate/#0/flat-out} binds/s ($gen_mode) against: ${whos[*]}"
        for who in "${whos[@]}"; do run_phase "$rate" "$who" "$round"; done
    done
done

python3 bench/footprint-report.py "$results" \
    --machine "$(nproc)-core $(uname -m), kernel $(uname -r), $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" \
    --ring "$ring" --gen "$gen_mode" | tee "$out/table.md"
log "raw figures in $results; table in $out/table.md"
