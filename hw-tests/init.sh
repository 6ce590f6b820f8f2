#!/bin/sh
# /init for the hw-tests initramfs (busybox ash). Copied in by mkinitramfs.sh.
#
# Kernel command line parameters (read from /proc/cmdline):
#   fa.scenario=NAME        scenario to run (alias: fa.mode); default: smoke
#   fa.broker=URL           -> FIRMWARE_AGENT_BROKER_URL   (e.g. mqtt://10.0.2.2:18830)
#   fa.device=NAME          -> FIRMWARE_AGENT_DEVICE_ID
#   fa.env.NAME=VALUE       exported into the agent's environment (e.g. fa.env.RUST_LOG=debug)
#   fa.settle=SECONDS       e2e/nobtf: how long to wait for the agent to get ready (default 5)
#   fa.ready_log=STRING     e2e/nobtf: instead, wait until the agent log contains STRING
#                           (use '_' for spaces: fa.ready_log=probes_attached)
#   fa.ready_timeout=S      upper bound for fa.ready_log polling (default 30)
#   fa.linger=SECONDS       e2e/nobtf: keep the agent running this long after the triggers (default 3)
#   fa.idle=SECONDS         agent scenarios: leave the agent idle this long after ready, then print
#                           HWTEST-RSS/HWTEST-MEM phase=idle (default 0: no idle phase)
#   fa.stop_timeout=S       how long to wait for the agent after SIGTERM before SIGKILL (default 15)
#   fa.run=PATH             'run' scenario: program to execute (args: fa.args=a,b,c)
#   fa.sink=HOST:PORT       kprobe: a TCP sink on the host; init sends fa.sink_bytes to it with
#                           nc (reading back what the sink answers) while the agent counts
#   fa.sink_bytes=N         kprobe: bytes to send to the sink
#
# Every scenario ends with exactly one line starting with "HWTEST-RESULT:" and
# then the guest powers off (poweroff -f). If anything goes wrong in here the
# EXIT trap still prints a result line and powers off, so the host never hangs.

/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin
export HOME=/root
umask 022

RESULT_PRINTED=0
result() { # one HWTEST-RESULT line, then power off
    [ "$RESULT_PRINTED" = 1 ] && return 0
    RESULT_PRINTED=1
    sync
    echo "HWTEST-RESULT: $*"
    sleep 0.2 2>/dev/null || sleep 1
    poweroff -f
    sleep 5
    echo o >/proc/sysrq-trigger
}
trap 'result "error=init-exited scenario=${SCENARIO:-?}"' EXIT
info() { echo "HWTEST-INFO: $*"; }

# ---------------------------------------------------------------- filesystems
mkdir -p /proc /sys /dev /tmp /run /root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mdev -s
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || echo "init: WARNING: tracefs mount failed"
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || echo "init: WARNING: debugfs mount failed"
mount -t bpf bpf /sys/fs/bpf 2>/dev/null || echo "init: WARNING: bpffs mount failed"
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null || true
exec </dev/console >/dev/console 2>&1

read -r UPTIME _ </proc/uptime
echo "HWTEST-INIT: uptime=${UPTIME}s"

# ------------------------------------------------------------------- cmdline
SCENARIO=""
: >/tmp/agent.env
# shellcheck disable=SC2013  # words, not lines
for w in $(cat /proc/cmdline); do
    case "$w" in
        fa.env.*=*)
            k="${w%%=*}"; k="${k#fa.env.}"; v="${w#*=}"
            case "$k" in *[!A-Za-z0-9_]*|"") echo "init: ignoring bad env name '$k'"; continue ;; esac
            echo "export $k='$v'" >>/tmp/agent.env ;;
        fa.*=*)
            k="${w%%=*}"; k="${k#fa.}"; v="${w#*=}"
            case "$k" in *[!a-z0-9_]*|"") echo "init: ignoring bad param 'fa.$k'"; continue ;; esac
            k="$(echo "$k" | tr a-z A-Z)"
            eval "FA_$k=\$v" ;;
    esac
done
SCENARIO="${FA_SCENARIO:-${FA_MODE:-smoke}}"

# ------------------------------------------------------------------- modules
KVER="$(uname -r)"
if [ -f "/lib/modules/$KVER/modules.load" ]; then
    while read -r m; do
        [ -n "$m" ] || continue
        if insmod "/lib/modules/$KVER/$m" 2>/tmp/insmod.err; then
            echo "init: insmod $m ok"
        else
            echo "init: insmod $m FAILED: $(cat /tmp/insmod.err)"
        fi
    done <"/lib/modules/$KVER/modules.load"
elif [ -d /lib/modules ]; then
    echo "init: WARNING: no /lib/modules/$KVER/modules.load (initramfs built for another kernel: $(ls /lib/modules))"
fi

# ------------------------------------------------------------------- network
ip link set lo up
NET=down
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    [ -e /sys/class/net/eth0 ] && break
    sleep 0.1
done
if [ -e /sys/class/net/eth0 ]; then
    ip link set eth0 up
    ip addr add 10.0.2.15/24 dev eth0
    ip route add default via 10.0.2.2
    NET=up
fi
echo "nameserver 10.0.2.3" >/etc/resolv.conf 2>/dev/null || true
hostname "${FA_DEVICE:-hwtest}"

PAGESIZE="$(awk '/^KernelPageSize:/ {print $2 * 1024; exit}' /proc/self/smaps 2>/dev/null)"
BTF=absent; [ -e /sys/kernel/btf/vmlinux ] && BTF=present
echo "HWTEST-KERNEL: $KVER"
echo "HWTEST-PAGESIZE: ${PAGESIZE:-unknown}"
info "arch=$(uname -m) cpus=$(grep -c ^processor /proc/cpuinfo) mem_kb=$(awk '/MemTotal/{print $2}' /proc/meminfo) eth0=$NET btf=$BTF scenario=$SCENARIO"
info "crng: $(dmesg | grep -m1 'crng init' || echo 'no crng init message yet')"

# --------------------------------------------------------------- helpers
broker_hostport() { # mqtt://host:port -> "host port"
    hp="${FA_BROKER#*://}"; hp="${hp%%/*}"
    case "$hp" in *:*) echo "${hp%:*} ${hp##*:}" ;; *) echo "$hp 1883" ;; esac
}

load_agent_env() { # call in a subshell: the agent's environment from the cmdline
    . /tmp/agent.env
    if [ -n "${FA_BROKER:-}" ]; then export FIRMWARE_AGENT_BROKER_URL="$FA_BROKER"; fi
    if [ -n "${FA_DEVICE:-}" ]; then export FIRMWARE_AGENT_DEVICE_ID="$FA_DEVICE"; fi
}

AGENT_PID=""
TAIL_PID=""
start_agent() { # extra agent args in "$@"
    if [ ! -x /usr/bin/firmware-agent ]; then
        result "agent-exit=missing-binary scenario=$SCENARIO"
    fi
    if [ -f "${AGENT_CONFIG:=/etc/firmware-agent/agent.toml}" ]; then
        set -- --config "$AGENT_CONFIG" "$@"
    else
        echo "init: WARNING: /etc/firmware-agent/agent.toml not in initramfs; starting agent without --config"
    fi
    : >/tmp/agent.log
    (
        load_agent_env
        exec /usr/bin/firmware-agent "$@"
    ) >>/tmp/agent.log 2>&1 &
    AGENT_PID=$!
    tail -n +1 -f /tmp/agent.log | while IFS= read -r l; do echo "[agent] $l"; done &
    TAIL_PID=$!
    read -r up _ </proc/uptime
    info "agent started pid=$AGENT_PID uptime=${up}s args=$*"
}

agent_alive() { kill -0 "$AGENT_PID" 2>/dev/null; }

print_rss() { # HWTEST-RSS: <VmRSS kB of the agent> phase=<when>
    r="$(awk '/^VmRSS:/ {print $2}' "/proc/$AGENT_PID/status" 2>/dev/null)"
    echo "HWTEST-RSS: ${r:-unknown} phase=$1"
}

# HWTEST-MEM: phase=<p> KEY=kB...: the agent's memory by component (parsed by
# hw-tests/src/memory.rs; keep the keys in step). /proc/<pid>/status: vmrss rssanon rssfile
# rssshmem pte (VmPTE) threads (a count). /proc/<pid>/smaps, Rss summed per mapping: bin (the
# agent's file, its written .data included; bin_anon: that part), bpfmap (anon_inode:bpf-map:
# the ring buffer mmaps), perf (anon_inode:[perf_event]: perf buffers), stack ([stack] and each
# thread's stack: the mapping holding the SP in task/*/syscall; stacks: how many), anon ([heap]
# and the other anonymous mappings: the allocator), other (vdso...), maps (all of smaps);
# bpfmap_vsz/perf_vsz: those mappings' Size. /proc/<pid>/fdinfo: k_ringbuf (ring buffer maps'
# memlock), k_maps (every map's, rings included), k_progs (programs'): kernel memory the agent
# holds outside its RSS. /proc/vmallocinfo (the whole guest, where the agent is the only BPF
# user): vm_progs (bpf_prog_alloc_no_stats: every program and, once JITed with BPF-to-BPF calls,
# each of its functions again; vm_progs_n: how many allocations) and vm_jit (the JIT's pack).
# At phase=idle also one "HWTEST-MAP: size= rss= anon= <range> <perms> <category> <name>" line
# per mapping with resident pages (kB), for the console log.
print_mem() {
    p=/proc/$AGENT_PID
    # One grep (-H: "file:line") so that an fd or thread gone meanwhile is skipped, not fatal.
    grep -H . $p/task/*/syscall $p/fdinfo/* $p/status $p/smaps /proc/vmallocinfo 2>/dev/null \
    | awk -v phase="$1" -v pg="${PAGESIZE:-4096}" '
        function pad(h) { sub(/^0x/, "", h); while (length(h) < 16) h = "0" h; return h }
        function kb(b) { return int((b + 1023) / 1024) }
        {
            i = index($0, ":"); f = substr($0, 1, i - 1); n = split(substr($0, i + 1), w, " ")
            if (f != lastf) { lastf = f; kind = "" }
        }
        f ~ /\/syscall$/ { if (n >= 3 && w[1] != "running") sp[++nsp] = pad(w[n - 1]); next }
        f ~ /\/fdinfo\// {
            if (w[1] == "map_type:") kind = (w[2] == 27) ? "ringbuf" : "map"
            else if (w[1] == "prog_type:") kind = "prog"
            else if (w[1] == "memlock:" && kind != "") {
                k[kind] += w[2]; if (kind == "ringbuf") k["map"] += w[2]
            }
            next
        }
        f ~ /\/status$/ { st[w[1]] = w[2]; next }
        f == "/proc/vmallocinfo" {
            v = ""
            if (w[3] ~ /^bpf_prog_alloc_no_stats/) v = "progs"
            else if (w[3] ~ /^(bpf_jit_alloc_exec|execmem)/) v = "jit"
            if (v != "") for (j = 4; j <= n; j++) if (w[j] ~ /^pages=/) {
                vm[v] += substr(w[j], 7) * pg / 1024; if (v == "progs") nprogs++
            }
            next
        }
        f ~ /\/smaps$/ && w[1] ~ /^[0-9a-f]+-[0-9a-f]+$/ {
            split(w[1], a, "-"); lo = pad(a[1]); hi = pad(a[2]); name = (n >= 6) ? w[6] : ""
            if (name == "/usr/bin/firmware-agent") c = "bin"
            else if (name ~ /bpf-map/) c = "bpfmap"
            else if (name ~ /perf_event/) c = "perf"
            else if (name == "[stack]") c = "stack"
            else if (name == "" || name == "[heap]") c = "anon"
            else c = "other"
            if (c == "anon") for (j = 1; j <= nsp; j++) if (sp[j] >= lo && sp[j] < hi) c = "stack"
            if (c == "stack") stacks++
            nm++; mname[nm] = w[1] " " w[2] " " c " " name
            next
        }
        f ~ /\/smaps$/ && w[1] == "Rss:" { r[c] += w[2]; r["maps"] += w[2]; mrss[nm] = w[2]; next }
        f ~ /\/smaps$/ && w[1] == "Size:" { vsz[c] += w[2]; msz[nm] = w[2]; next }
        f ~ /\/smaps$/ && w[1] == "Anonymous:" {
            manon[nm] = w[2]; if (c == "bin") r["bin_anon"] += w[2]; next
        }
        END {
            if (phase == "idle") for (j = 1; j <= nm; j++) if (mrss[j] > 0)
                printf "HWTEST-MAP: size=%d rss=%d anon=%d %s\n", msz[j], mrss[j], manon[j], mname[j]
            printf "HWTEST-MEM: phase=%s vmrss=%d rssanon=%d rssfile=%d rssshmem=%d pte=%d threads=%d", \
                phase, st["VmRSS:"], st["RssAnon:"], st["RssFile:"], st["RssShmem:"], st["VmPTE:"], st["Threads:"]
            printf " bin=%d bin_anon=%d bpfmap=%d perf=%d stack=%d stacks=%d anon=%d other=%d maps=%d", \
                r["bin"], r["bin_anon"], r["bpfmap"], r["perf"], r["stack"], stacks, r["anon"], r["other"], r["maps"]
            printf " bpfmap_vsz=%d perf_vsz=%d k_ringbuf=%d k_maps=%d k_progs=%d", \
                vsz["bpfmap"], vsz["perf"], kb(k["ringbuf"]), kb(k["map"]), kb(k["prog"])
            printf " vm_progs=%d vm_progs_n=%d vm_jit=%d\n", vm["progs"], nprogs, vm["jit"]
        }'
}

idle_sample() { # fa.idle=S: the agent left alone S seconds after ready, then sampled (phase=idle)
    if [ "${FA_IDLE:-0}" -gt 0 ] 2>/dev/null; then
        info "idle ${FA_IDLE}s before the idle sample"
        sleep "$FA_IDLE"
        print_rss idle
        print_mem idle
    fi
}

wait_agent_ready() {
    if [ -n "${FA_READY_LOG:-}" ]; then
        pat="$(echo "$FA_READY_LOG" | tr _ ' ')"
        t=0; lim=$(( ${FA_READY_TIMEOUT:-30} * 10 ))
        while [ "$t" -lt "$lim" ]; do
            if grep -qF "$pat" /tmp/agent.log; then
                read -r up _ </proc/uptime
                info "agent ready (log matched '$pat', poll $t) uptime=${up}s"
                return 0
            fi
            agent_alive || return 1
            sleep 0.1; t=$((t + 1))
        done
        info "agent not ready after ${FA_READY_TIMEOUT:-30}s (no '$pat' in log); continuing"
    else
        sleep "${FA_SETTLE:-5}"
    fi
    agent_alive
}

stop_agent() { # sets STOP_RC to the exit code (or 'killed-after-timeout')
    kill -TERM "$AGENT_PID" 2>/dev/null
    t=0; lim=$(( ${FA_STOP_TIMEOUT:-15} * 10 ))
    while agent_alive && [ "$t" -lt "$lim" ]; do sleep 0.1; t=$((t + 1)); done
    if agent_alive; then
        kill -KILL "$AGENT_PID" 2>/dev/null; wait "$AGENT_PID" 2>/dev/null
        STOP_RC=killed-after-timeout
    else
        wait "$AGENT_PID"; STOP_RC=$?
    fi
}

finish_log() { # busybox tail -f polls once a second: let it catch the agent's last lines
    sleep 1.5
    if [ -n "$TAIL_PID" ]; then kill "$TAIL_PID" 2>/dev/null; fi
}

trigger_events() {
    # Two binds: an IPv4 one on 0.0.0.0:4242 (busybox httpd binds the address it is given;
    # this busybox's small nc has no -s) and `nc -l -p 4243`, which binds [::] where the
    # kernel has IPv6 (the Debian kernels) and 0.0.0.0 where it hasn't.
    info "trigger: bind tcp 0.0.0.0:4242 (httpd) and tcp/4243 (nc -l)"
    mkdir -p /tmp/www
    httpd -f -p 0.0.0.0:4242 -h /tmp/www </dev/null >/dev/null 2>/tmp/httpd.err &
    httpdpid=$!
    nc -l -p 4243 </dev/null >/dev/null 2>/tmp/nc.err &
    ncpid=$!
    sleep 1
    for p in 4242 4243; do
        if netstat -ltn 2>/dev/null | grep -q ":$p "; then info "listener on :$p up"
        else info "WARNING: no listener on :$p ($(cat /tmp/httpd.err /tmp/nc.err 2>/dev/null | head -c 200))"; fi
    done
    # connect once so the listener also sees an accept (ignored if nc exited already)
    echo hwtest | nc -w 1 127.0.0.1 4243 >/dev/null 2>&1 || true
    kill "$ncpid" "$httpdpid" 2>/dev/null; wait "$ncpid" "$httpdpid" 2>/dev/null
    info "trigger: exec /usr/bin/hwtest-marker"
    /usr/bin/hwtest-marker; info "hwtest-marker exit=$?"
    info "trigger: exits: /usr/bin/hwtest-exit3 (code 3), /usr/bin/hwtest-crash (SIGSEGV)"
    /usr/bin/hwtest-exit3; info "hwtest-exit3 exit=$?"
    /usr/bin/hwtest-crash; info "hwtest-crash exit=$?"
}

# --------------------------------------------------------------- scenarios
scenario_smoke() { # boot + network check, no agent needed
    net=skipped
    if [ -n "${FA_BROKER:-}" ]; then
        # shellcheck disable=SC2046  # "host port" -> $1 $2
        set -- $(broker_hostport)
        if echo | nc -w 3 "$1" "$2" >/dev/null 2>&1; then net="ok($1:$2)"; else net="fail($1:$2)"; fi
    fi
    result "smoke kernel=$KVER pagesize=${PAGESIZE:-unknown} eth0=$NET tcp=$net"
}

scenario_e2e() {
    start_agent
    if ! wait_agent_ready; then
        wait "$AGENT_PID"; rc=$?
        finish_log
        result "agent-exit=$rc (agent died before ready) scenario=$SCENARIO"
    fi
    print_rss ready
    print_mem ready
    idle_sample
    trigger_events
    sleep "${FA_LINGER:-3}"
    print_rss before-stop
    print_mem before-stop
    stop_agent
    finish_log
    result "agent-exit=$STOP_RC scenario=$SCENARIO"
}

scenario_nobtf() {
    if [ -e /sys/kernel/btf/vmlinux ]; then
        : >/tmp/empty-btf
        mount --bind /tmp/empty-btf /sys/kernel/btf/vmlinux \
            || echo "init: WARNING: bind-mount over /sys/kernel/btf/vmlinux failed"
    fi
    n="$(head -c 16 /sys/kernel/btf/vmlinux 2>/dev/null | wc -c)"
    if [ "${n:-0}" -eq 0 ]; then info "btf-hidden=yes (/sys/kernel/btf/vmlinux reads 0 bytes)"
    else info "btf-hidden=no (/sys/kernel/btf/vmlinux still readable: $n bytes)"; fi
    scenario_e2e
}

# The e2e scenario with the TCP byte counters forced onto kprobe/kretprobe (the path for
# kernels without BTF or without the 6.3 sock_*_length tracepoints; `fentry`: onto fexit, the
# path for BTF kernels older than 6.3), one-second summaries, and a TCP transfer of known size to
# a sink on the host.
scenario_fentry() { FUNCTIONS=fentry scenario_kprobe; }
scenario_kprobe() {
    AGENT_CONFIG=/tmp/agent-functions.toml
    sed -e "s/^kernel_functions = .*/kernel_functions = \"${FUNCTIONS:-kprobe}\"/" \
        -e 's/^interval_s = .*/interval_s = 1/' /etc/firmware-agent/agent.toml >"$AGENT_CONFIG"
    grep -q "^kernel_functions = \"${FUNCTIONS:-kprobe}\"" "$AGENT_CONFIG" \
        || result "agent-exit=no-kernel_functions-key scenario=$SCENARIO"
    start_agent
    if ! wait_agent_ready; then
        wait "$AGENT_PID"; rc=$?
        finish_log
        result "agent-exit=$rc (agent died before ready) scenario=$SCENARIO"
    fi
    print_rss ready
    print_mem ready
    idle_sample
    trigger_events
    host="${FA_SINK%:*}"; port="${FA_SINK##*:}"
    info "trigger: send ${FA_SINK_BYTES:-0} bytes to the sink at $host:$port with nc"
    head -c "${FA_SINK_BYTES:-0}" /dev/zero | nc -w 10 "$host" "$port" >/tmp/sink.back 2>/tmp/sink.err
    info "sink transfer: nc exit=$? received=$(wc -c </tmp/sink.back) bytes $(head -c 200 /tmp/sink.err)"
    sleep "${FA_LINGER:-3}"
    print_rss before-stop
    print_mem before-stop
    stop_agent
    finish_log
    result "agent-exit=$STOP_RC scenario=$SCENARIO"
}

# The e2e scenario with the records forced through perf buffers (`probes.transport = "perf"`:
# the path for kernels before 5.8, which have no BPF ring buffers).
scenario_perf() {
    AGENT_CONFIG=/tmp/agent-perf.toml
    sed -e 's/^transport = .*/transport = "perf"/' /etc/firmware-agent/agent.toml >"$AGENT_CONFIG"
    grep -q '^transport = "perf"' "$AGENT_CONFIG" \
        || result "agent-exit=no-transport-key scenario=$SCENARIO"
    scenario_e2e
}

scenario_ringbuf_negative() {
    [ -x /usr/bin/firmware-agent ] || result "selftest-exit=missing-binary scenario=$SCENARIO"
    ( load_agent_env; exec /usr/bin/firmware-agent selftest-ringbuf ) >/tmp/selftest.out 2>&1; rc=$?
    sed 's/^/[selftest] /' /tmp/selftest.out
    grep -E 'raw_ringbuf|sized_ringbuf' /tmp/selftest.out | sed 's/^/HWTEST-INFO: /'
    result "selftest-exit=$rc pagesize=${PAGESIZE:-unknown} scenario=$SCENARIO"
}

scenario_run() { # fa.run=/usr/bin/prog [fa.args=a,b,c]
    [ -n "${FA_RUN:-}" ] || result "run-exit=no-fa.run scenario=run"
    [ -x "$FA_RUN" ] || result "run-exit=missing($FA_RUN) scenario=run"
    args="$(echo "${FA_ARGS:-}" | tr , ' ')"
    # shellcheck disable=SC2086  # fa.args is split on purpose
    ( load_agent_env; exec "$FA_RUN" $args ); rc=$?
    result "run-exit=$rc prog=$FA_RUN scenario=run"
}

scenario_custom() { # /hwtest/scenario.sh from the initramfs extras; sourced, may call result
    [ -f /hwtest/scenario.sh ] || result "error=no-/hwtest/scenario.sh scenario=custom"
    . /hwtest/scenario.sh
    result "custom-exit=$? scenario=custom"
}

scenario_shell() { # interactive debugging (boot.sh with HWTEST_INTERACTIVE=1)
    setsid cttyhack sh -l || sh
    result "shell-exited scenario=shell"
}

fn="scenario_$(echo "$SCENARIO" | tr - _)"
if type "$fn" >/dev/null 2>&1; then
    "$fn"
else
    result "error=unknown-scenario($SCENARIO) scenario=$SCENARIO"
fi
result "error=scenario-returned scenario=$SCENARIO"
