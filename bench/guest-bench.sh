# The footprint bench's load phases inside an arm64 QEMU guest (issue 10: "the same figures, as
# ratios, in the 16K-page aarch64 guest"). Not run directly: scripts/bench-guest.sh puts it in
# the hw-tests initramfs as /hwtest/scenario.sh, and hw-tests/init.sh's `custom` scenario
# sources it (busybox ash; init.sh's helpers: info, result, load_agent_env, PAGESIZE).
#
# Same workloads as scripts/bench-footprint.sh, with what a busybox guest has: bindgen pinned to
# CPU 1, the consumer (nothing, our C libbpf consumer, the agent) pinned to CPU 0 and started
# fresh for each phase, measured over the generator's run after a settle time:
#   CPU            the consumer's threads' time on a CPU (/proc/PID/task/*/schedstat, ns)
#   syscalls       raw_syscalls:sys_enter hits per thread (a tracefs hist trigger)
#   ctx switches   voluntary + involuntary, summed over the threads
#   delivered      the C consumer's own count; for the agent, decoded by bench_count in the
#                  guest, subscribed to the host's broker (like the agent, through QEMU's NAT)
#   BPF run time   run_time_ns / run_cnt of the bind programs (fdinfo; names from kallsyms)
# plus idle VmRSS and CPU of the agent (default config, every probe) and the C consumer.
# Each figure is one `HWTEST-BENCH: TAG WHO KEY VALUE...` line, the format of bench-footprint's
# results.txt (bench/footprint-report.py reads both).
#
# Kernel command line: fa.rates=1000,10000,0 (binds/s; 0 = flat out), fa.secs (per paced
# phase, default 5), fa.flat (calls flat out, default 20000), fa.settle (default 6), fa.idle
# (default 10), fa.ring (ring bytes for both consumers, default 65536), fa.rounds (default 1).

B_RATES="$(echo "${FA_RATES:-1000,10000,0}" | tr , ' ')"
B_SECS="${FA_SECS:-5}"
B_FLAT="${FA_FLAT:-20000}"
B_SETTLE="${FA_SETTLE:-6}"
B_IDLE="${FA_IDLE:-10}"
B_RING="${FA_RING:-65536}"
B_ROUNDS="${FA_ROUNDS:-1}"
T=/tmp/bench
mkdir -p "$T"
printf '\n' >"$T/agent.toml"
printf '[ring_buffers]\nwatch_events = %s\n' "$B_RING" >"$T/agent-load.toml"

bench() { echo "HWTEST-BENCH: $*"; }
field() { awk -v k="$2" '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}' "$1" 2>/dev/null; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null; }
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d\n", s}'; }
switches() {
    cat /proc/"$1"/task/*/status 2>/dev/null \
        | awk '/^(non)?voluntary_ctxt_switches:/ {s += $2} END {printf "%d\n", s}'
}
threads_of() { ls /proc/"$1"/task 2>/dev/null | tr '\n' ' '; }

HIST=/sys/kernel/tracing/events/raw_syscalls/sys_enter
hist_on() { echo 'hist:keys=common_pid:size=1024' >"$HIST/trigger" 2>/dev/null; }
hist_off() { echo '!hist:keys=common_pid:size=1024' >"$HIST/trigger" 2>/dev/null; }
syscalls_of() { # $@: thread ids -> their raw_syscalls:sys_enter hits since hist_on
    awk -v ids=" $* " '/common_pid:/ {
        gsub(/[{}]/, ""); for (i = 1; i <= NF; i++) {
            if ($i == "common_pid:") p = $(i + 1); if ($i == "hitcount:") h = $(i + 1) }
        if (index(ids, " " p " ")) s += h
    } END {printf "%d\n", s}' "$HIST/hist" 2>/dev/null
}

# The bind programs a process holds: "enter|exit run_time_ns run_cnt" per program, names from
# /proc/kallsyms (bpf_prog_<tag>_<name>), run figures from the program fds' fdinfo.
bpf_runs() {
    for f in /proc/"$1"/fdinfo/*; do
        grep -q '^run_time_ns:' "$f" 2>/dev/null || continue
        tag="$(awk '/^prog_tag:/ {print $2}' "$f")"
        name="$(awk -v t="bpf_prog_${tag}_" 'index($3, t) == 1 {print substr($3, length(t) + 1); exit}' /proc/kallsyms)"
        case "$name" in *bind*) ;; *) continue ;; esac
        kind=enter; case "$name" in *exit*) kind=exit ;; esac
        awk -v k="$kind" '/^run_time_ns:/ {t = $2} /^run_cnt:/ {c = $2} END {print k, t, c}' "$f"
    done
}

CPID=""; CNT_PID=""; CNT_FILE=""
start_consumer() { # who tag -> CPID (and CNT_PID, CNT_FILE for the agent)
    CPID=""; CNT_PID=""
    case "$1" in
        c)
            taskset -c 0 /usr/bin/consumer --ring "$B_RING" >"$T/$2.c.out" 2>"$T/$2.c.err" &
            CPID=$!
            i=0; while [ $i -lt 300 ]; do grep -q ready "$T/$2.c.out" && return 0; sleep 0.1; i=$((i + 1)); done
            info "bench: C consumer did not start: $(cat "$T/$2.c.err")"; return 1 ;;
        agent)
            cfg="$T/agent-load.toml"; [ "$2" = idle ] && cfg="$T/agent.toml"
            dev="bench-$2-agent-$$"
            hp="$(broker_hostport)"
            CNT_FILE="$T/$2.agent.count"
            taskset -c 1 /usr/bin/bench_count --host "${hp% *}" --port "${hp#* }" --device "$dev" \
                --status "$CNT_FILE" --seconds 900 &
            CNT_PID=$!
            (
                load_agent_env
                export FIRMWARE_AGENT_DEVICE_ID="$dev" RUST_LOG=warn
                exec taskset -c 0 /usr/bin/firmware-agent --config "$cfg" --card-config /nonexistent
            ) >"$T/$2.agent.log" 2>&1 &
            CPID=$!
            i=0; while [ $i -lt 1200 ]; do
                grep -q '^online 1' "$CNT_FILE" 2>/dev/null && return 0
                kill -0 "$CPID" 2>/dev/null || break
                sleep 0.1; i=$((i + 1))
            done
            info "bench: agent did not come online: $(tail -5 "$T/$2.agent.log")"; return 1 ;;
    esac
}
stop_pid() { # SIGTERM, up to 30 s, then SIGKILL
    kill -TERM "$1" 2>/dev/null
    i=0; while kill -0 "$1" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null
}

# BPF run time per program (run_time_ns / run_cnt in each program fd's fdinfo)
echo 1 >/proc/sys/kernel/bpf_stats_enabled || info "bench: kernel.bpf_stats_enabled could not be set"

# --- idle -----------------------------------------------------------------------------------
info "bench: idle ${B_IDLE}s: agent (default config, every probe) and the C consumer"
start_consumer agent idle || result "bench-exit=agent-not-online scenario=custom"
A=$CPID; ACNT=$CNT_PID
start_consumer c idle || result "bench-exit=c-not-ready scenario=custom"
C=$CPID
sleep "$B_SETTLE"
a0=$(cpu_ns "$A"); c0=$(cpu_ns "$C")
sleep "$B_IDLE"
for w in "agent $A $a0" "c $C $c0"; do
    set -- $w
    bench idle "$1" rss_kb "$(status_kb "$2" VmRSS)"
    bench idle "$1" anon_kb "$(status_kb "$2" RssAnon)"
    bench idle "$1" threads "$(status_kb "$2" Threads)"
    # idle_ticks at hz 100: the report's unit (bench-footprint reads /proc/PID/stat ticks)
    bench idle "$1" idle_ticks "$(( ($(cpu_ns "$2") - $3) / 10000000 ))"
done
bench idle all idle_s "$B_IDLE"
bench idle all hz 100
stop_pid "$A"; stop_pid "$C"; stop_pid "$ACNT"

# --- load -----------------------------------------------------------------------------------
run_phase() { # rate who round
    rate=$1 who=$2 tag="r$3-$1"
    calls=$(( rate ? rate * B_SECS : B_FLAT ))
    CPID=""; CNT_PID=""
    if [ "$who" != none ]; then
        start_consumer "$who" "$tag" || { bench "$tag" "$who" failed 1; return 0; }
        sleep "$B_SETTLE"
        if [ -n "$CNT_PID" ]; then
            o0=$(field "$CNT_FILE" ours); e0=$(field "$CNT_FILE" events); d0=$(field "$CNT_FILE" drops)
        fi
        hist_on
        n0=$(cpu_ns "$CPID"); s0=$(switches "$CPID")
    fi
    taskset -c 1 /usr/bin/bindgen "$calls" "$rate" rebind >"$T/$tag.$who.gen"
    if [ -n "$CNT_PID" ]; then # the agent: until every call is delivered or counted as dropped
        want=$(( o0 + calls )); i=0
        while [ $i -lt 1200 ]; do
            got=$(( $(field "$CNT_FILE" ours) + $(field "$CNT_FILE" drops) - d0 ))
            [ "$got" -ge "$want" ] && break
            sleep 0.1; i=$((i + 1))
        done
    elif [ -n "$CPID" ]; then
        sleep 0.5
    fi
    if [ -n "$CPID" ]; then
        n1=$(cpu_ns "$CPID"); s1=$(switches "$CPID")
        bench "$tag" "$who" perf:raw_syscalls:sys_enter "$(syscalls_of $(threads_of "$CPID"))"
        hist_off
        # perf's task-clock is in ms
        bench "$tag" "$who" perf:task-clock "$(awk -v a="$n0" -v b="$n1" 'BEGIN {printf "%.3f", (b - a) / 1e6}')"
        bench "$tag" "$who" perf:context-switches "$((s1 - s0))"
        bpf_runs "$CPID" | while read -r k t c; do bench "$tag" "$who" "bpf_$k" "$t" "$c" 0 0; done
        bench "$tag" "$who" rss_kb "$(status_kb "$CPID" VmRSS)"
        bench "$tag" "$who" hwm_kb "$(status_kb "$CPID" VmHWM)"
        stop_pid "$CPID"
    fi
    if [ "$who" = c ]; then
        read -r _ recs _ ours _ _ _ drops _ _ <<EOF
$(tail -n 1 "$T/$tag.c.out")
EOF
        bench "$tag" c delivered "$recs"; bench "$tag" c ours "$ours"; bench "$tag" c drops "$drops"
    elif [ -n "$CNT_PID" ]; then
        stop_pid "$CNT_PID"
        bench "$tag" "$who" delivered "$(( $(field "$CNT_FILE" events) - e0 ))"
        bench "$tag" "$who" ours "$(( $(field "$CNT_FILE" ours) - o0 ))"
        bench "$tag" "$who" drops "$(( $(field "$CNT_FILE" drops) - d0 ))"
        bench "$tag" "$who" lat_max_ms "$(field "$CNT_FILE" lat_max_ms)"
        bench "$tag" "$who" lat_mean_ms "$(field "$CNT_FILE" lat_mean_ms)"
    fi
    read -r _ gcalls _ _ _ gsecs _ grate _ gns <"$T/$tag.$who.gen"
    bench "$tag" "$who" gen_calls "$gcalls"; bench "$tag" "$who" gen_secs "$gsecs"
    bench "$tag" "$who" gen_rate "$grate"; bench "$tag" "$who" gen_cpu_ns "$gns"
}
round=1
while [ "$round" -le "$B_ROUNDS" ]; do
    for rate in $B_RATES; do
        info "bench: round $round, $rate binds/s (0: flat out) against none, c, agent"
        for who in none c agent; do run_phase "$rate" "$who" "$round"; done
    done
    round=$((round + 1))
done
result "bench-exit=0 scenario=custom"
