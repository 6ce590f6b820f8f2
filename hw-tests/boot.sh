#!/usr/bin/env bash
# Boot a Debian arm64 kernel + hw-tests initramfs under QEMU (TCG) and capture
# the serial console.
#
# Usage: hw-tests/boot.sh KERNEL_IMAGE INITRAMFS 'CMDLINE' LOGFILE [TIMEOUT_S]
#
#   CMDLINE is appended after 'console=ttyAMA0 panic=-1', e.g.
#     'fa.scenario=e2e fa.broker=mqtt://10.0.2.2:18830 fa.device=pi-16k'
#   TIMEOUT_S hard wall-clock limit (default 300). QEMU is killed when it expires.
#
# Guest: -M virt, -cpu max,pauth-impdef=on, 512M, 2 vCPUs, virtio-net-pci with
# QEMU user networking (guest 10.0.2.15, host's 127.0.0.1 reachable as 10.0.2.2).
#
# Exit status: 0 if the guest powered off and printed a 'HWTEST-RESULT:' line;
#              124 on timeout; 3 if QEMU exited without a result line (panic,
#              init crash); 2 on usage/setup errors; QEMU's status if it failed.
# The result line is echoed to stdout together with the measured boot times:
#   HWTEST-BOOT: host_to_init=<s>  (wall clock from QEMU start to /init's first line)
#   HWTEST-BOOT: guest_uptime_at_init=<s> (from /proc/uptime inside the guest)
#
# Env: QEMU (default qemu-system-aarch64), HW_TESTS_QEMU_EXTRA (extra QEMU args),
#      HW_TESTS_MEM (default 512M), HW_TESTS_SMP (default 2),
#      HW_TESTS_INTERACTIVE=1 (connect the serial console to this terminal too).
set -euo pipefail

die() { echo "boot.sh: ERROR: $*" >&2; exit 2; }

[ $# -ge 4 ] || die "usage: $0 KERNEL_IMAGE INITRAMFS 'CMDLINE' LOGFILE [TIMEOUT_S]"
KERNEL="$1"; INITRD="$2"; CMDLINE="$3"; LOG="$4"; TIMEOUT="${5:-300}"
QEMU="${QEMU:-qemu-system-aarch64}"

command -v "$QEMU" >/dev/null || die "$QEMU not found (apt-get install qemu-system-arm)"
command -v timeout >/dev/null || die "'timeout' (coreutils) not found"
[ -f "$KERNEL" ] || die "kernel image $KERNEL not found"
[ -f "$INITRD" ] || die "initramfs $INITRD not found"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "TIMEOUT_S must be an integer, got '$TIMEOUT'"
mkdir -p "$(dirname "$LOG")"
: >"$LOG"

if [ "${HW_TESTS_INTERACTIVE:-0}" = 1 ]; then console=(-serial mon:stdio); else console=(-monitor none); fi
# shellcheck disable=SC2054  # commas are QEMU option syntax
args=(
    -M virt -cpu max,pauth-impdef=on -m "${HW_TESTS_MEM:-512M}" -smp "${HW_TESTS_SMP:-2}"
    -nographic -no-reboot "${console[@]}"
    -kernel "$KERNEL" -initrd "$INITRD"
    -append "console=ttyAMA0 panic=-1 $CMDLINE"
    -netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile=
)
# shellcheck disable=SC2206
[ -n "${HW_TESTS_QEMU_EXTRA:-}" ] && args+=(${HW_TESTS_QEMU_EXTRA})

start_ns=$(date +%s%N)
if [ "${HW_TESTS_INTERACTIVE:-0}" = 1 ]; then
    timeout --foreground -k 5 "$TIMEOUT" "$QEMU" "${args[@]}" 2>&1 | tee "$LOG" &
else
    timeout -k 5 "$TIMEOUT" "$QEMU" "${args[@]}" </dev/null >"$LOG" 2>&1 &
fi
qpid=$!

# watch the log for /init's first line to measure host-side boot time
init_ns=""
while kill -0 "$qpid" 2>/dev/null; do
    if [ -z "$init_ns" ] && grep -q '^HWTEST-INIT:' "$LOG" 2>/dev/null; then
        init_ns=$(date +%s%N)
    fi
    sleep 0.05
done
set +e
wait "$qpid"; rc=$?
set -e
end_ns=$(date +%s%N)

fmt() { awk -v n="$1" 'BEGIN { printf "%.2f", n / 1e9 }'; }
# the guest's console uses CRLF
tr -d '\r' <"$LOG" >"$LOG.tmp" && mv "$LOG.tmp" "$LOG"
if [ -z "$init_ns" ] && grep -q '^HWTEST-INIT:' "$LOG"; then init_ns=$end_ns; fi
[ -n "$init_ns" ] && echo "HWTEST-BOOT: host_to_init=$(fmt $((init_ns - start_ns)))s"
guest_up="$(sed -n 's/^HWTEST-INIT: uptime=//p' "$LOG" | head -n1)"
[ -n "$guest_up" ] && echo "HWTEST-BOOT: guest_uptime_at_init=$guest_up"
echo "HWTEST-BOOT: total=$(fmt $((end_ns - start_ns)))s qemu_exit=$rc"
grep -E '^HWTEST-(KERNEL|PAGESIZE):' "$LOG" || true

if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "boot.sh: TIMEOUT after ${TIMEOUT}s (QEMU killed); last console lines:" >&2
    tail -n 20 "$LOG" >&2
    exit 124
fi
if [ "$rc" -ne 0 ]; then
    echo "boot.sh: QEMU exited with status $rc; last console lines:" >&2
    tail -n 20 "$LOG" >&2
    exit "$rc"
fi
nres="$(grep -c '^HWTEST-RESULT:' "$LOG" || true)"
if [ "$nres" -eq 0 ]; then
    echo "boot.sh: guest stopped without a HWTEST-RESULT line; last console lines:" >&2
    tail -n 30 "$LOG" >&2
    exit 3
fi
grep '^HWTEST-RESULT:' "$LOG" | tail -n1
