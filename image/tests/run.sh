#!/usr/bin/env bash
# End-to-end test of the flashable-image path (issue 4), never skips:
#  1. fast injector tests (tests/fast.sh: bad input, input unchanged, layouts)
#  2. build a synthetic base image from Debian arm64 packages (tests/mkbase.sh)
#  3. inject the agent with image/inject.py (per-card file: device id, broker
#     URL with credentials) - both .img and .img.xz paths
#  4. boot the injected disk image under qemu-system-aarch64 (-M virt, 16K
#     kernel from bookworm-backports, root=/dev/vda2 from the disk image, user
#     networking) and wait for the agent, started by BusyBox init via
#     /etc/init.d/S99firmware-agent, to publish to a mosquitto on 127.0.0.1
#     (10.0.2.2 from the guest) on edge/<device id from the card file>/status.
# Agent: $FIRMWARE_AGENT_BIN, else target/aarch64-unknown-linux-musl/release/
# firmware-agent if built, else the BusyBox stand-in tests/standin-agent.sh
# (FIRMWARE_AGENT_REQUIRE_REAL=1 makes the stand-in an error).
# Prints measurements (image size, build time, power-on -> first MQTT message).
. "$(dirname "$0")/common.sh"
need qemu-system-aarch64 mosquitto mosquitto_sub mosquitto_passwd sha256sum debugfs mtype xz
BOOT_TIMEOUT=${BOOT_TIMEOUT:-180}
PASS=0; FAILED=0
ok() { PASS=$((PASS + 1)); log "ok: $*"; }
bad() { FAILED=$((FAILED + 1)); log "FAIL: $*"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

log "== fast injector tests"
if bash "$TESTS_DIR/fast.sh"; then ok "fast injector tests"; else bad "fast injector tests"; fi

W=$(mktemp -d "$FA_IMAGE_CACHE/run.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${KEEP:-}" ] && log "kept $W" || rm -rf "$W"
}
trap cleanup EXIT

# ---- agent binary ----
AGENT=${FIRMWARE_AGENT_BIN:-}
if [ -z "$AGENT" ] && [ -x "$REPO/target/aarch64-unknown-linux-musl/release/firmware-agent" ]; then
	AGENT="$REPO/target/aarch64-unknown-linux-musl/release/firmware-agent"
fi
if [ -z "$AGENT" ]; then
	[ -n "${FIRMWARE_AGENT_REQUIRE_REAL:-}" ] && die "no real agent binary (FIRMWARE_AGENT_BIN)"
	AGENT="$TESTS_DIR/standin-agent.sh"
	log "agent: BusyBox stand-in $AGENT (no static aarch64 build found)"
else
	log "agent: $AGENT ($(stat -c %s "$AGENT") bytes)"
fi
[ -f "$AGENT" ] || die "agent $AGENT missing"

# ---- base image ----
log "== building the synthetic base image"
t0=$(now)
bash "$TESTS_DIR/mkbase.sh" "$W" --systemd
t1=$(now)
BUILD_BASE=$(secs "$t0" "$t1")
[ -s "$W/base.img" ] && ok "base image built in ${BUILD_BASE}s" || die "no base image"
xz -T0 -3 -k "$W/base.img"
sha_img=$(sha256sum < "$W/base.img"); sha_xz=$(sha256sum < "$W/base.img.xz")

# ---- broker ----
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DEVICE="qemu-card-$RANDOM"
MQTT_USER="fa-$RANDOM"; MQTT_PASS="pw-$RANDOM-$RANDOM"
mosquitto_passwd -c -b "$W/passwd" "$MQTT_USER" "$MQTT_PASS" 2>/dev/null
cat > "$W/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous false
password_file $W/passwd
persistence false
user $(id -un)
CONF
mosquitto -c "$W/mosquitto.conf" > "$W/mosquitto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q "running" "$W/mosquitto.log" && break; sleep 0.1; done
grep -q "running" "$W/mosquitto.log" || die "mosquitto did not start: $(cat "$W/mosquitto.log")"
log "mosquitto on 127.0.0.1:$PORT (guest: mqtt://10.0.2.2:$PORT), device id $DEVICE"

# ---- inject ----
log "== injecting"
ARGS=(--device-id "$DEVICE" --broker-url "mqtt://10.0.2.2:$PORT" --username "$MQTT_USER" --password "$MQTT_PASS")
t0=$(now)
if "$PY" "$INJECT" "$W/base.img" "$AGENT" -o "$W/fleet.img" "${ARGS[@]}"; then
	t1=$(now); INJECT_T=$(secs "$t0" "$t1"); ok "inject .img in ${INJECT_T}s"
else die "inject .img failed"; fi
t0=$(now)
if "$PY" "$INJECT" "$W/base.img.xz" "$AGENT" -o "$W/fleet.img.xz" "${ARGS[@]}"; then
	t1=$(now); INJECT_XZ_T=$(secs "$t0" "$t1"); ok "inject .img.xz -> .img.xz in ${INJECT_XZ_T}s"
	xz -dc "$W/fleet.img.xz" | cmp -s - "$W/fleet.img" \
		&& ok ".img.xz output has the same contents as the .img output" \
		|| log "note: .img.xz output differs from .img output (timestamps)"
else bad "inject .img.xz failed"; fi
t0=$(now)
if "$PY" "$INJECT" "$W/base-systemd.img" "$AGENT" -o "$W/fleet-systemd.img" "${ARGS[@]}"; then
	t1=$(now); INJECT_SD_T=$(secs "$t0" "$t1"); ok "inject into the systemd image in ${INJECT_SD_T}s"
else bad "inject into the systemd image failed"; fi
[ "$sha_img" = "$(sha256sum < "$W/base.img")" ] && [ "$sha_xz" = "$(sha256sum < "$W/base.img.xz")" ] \
	&& ok "base images unchanged" || bad "base image modified"

# The image boots the very overlay files Buildroot uses.
ROOT_OFF=$(( $(sfdisk -d "$W/fleet.img" | sed -n 's/.*2 : start= *\([0-9]*\),.*/\1/p') * 512 ))
BOOT_OFF=$(( $(sfdisk -d "$W/fleet.img" | sed -n 's/.*1 : start= *\([0-9]*\),.*/\1/p') * 512 ))
for f in etc/init.d/S99firmware-agent etc/firmware-agent/agent.toml; do
	rm -f "$W/back"; debugfs -R "dump /$f $W/back" "$W/fleet.img?offset=$ROOT_OFF" 2>/dev/null
	cmp -s "$W/back" "$OVERLAY/$f" && ok "/$f in the image is buildroot-overlay's" || bad "/$f differs"
done
MTOOLS_SKIP_CHECK=1 mtype -i "$W/fleet.img@@$BOOT_OFF" ::firmware-agent.toml | grep -qx "device_id = \"$DEVICE\"" \
	&& ok "per-card file on the FAT partition" || bad "per-card file"

# ---- boot ----
# Copy for the least-privilege boot now: a booted image's ext4 is left with a
# journal to replay (QEMU is powered off), which would undo offline edits.
cp --sparse=always "$W/fleet.img" "$W/fleet-lp.img"
# boot_test LABEL IMAGE: power on, wait for the first MQTT message, assert.
boot_test() {
	local label=$1 img=$2 init=${3:-sysv} sub="$W/sub-$1.out" con="$W/console-$1.log" first="" t_on subpid qpid
	local extra=""
	[ "$init" = systemd ] && extra="net.ifnames=0 systemd.journald.forward_to_console=1 systemd.show_status=0"
	log "== [$label] booting $img under QEMU (timeout ${BOOT_TIMEOUT}s)"
	# First fresh (-R: not retained from an earlier boot) status message of any
	# device; the payload may be binary: print its length.
	mosquitto_sub -h 127.0.0.1 -p "$PORT" -u "$MQTT_USER" -P "$MQTT_PASS" -t 'edge/+/status' -R -F '%t %l' -C 1 \
		-W "$BOOT_TIMEOUT" > "$sub" 2>"$W/sub-$label.err" &
	subpid=$!; PIDS+=($subpid)
	sleep 0.5
	t_on=$(now)
	qemu-system-aarch64 -M virt -cpu max,pauth-impdef=on -smp 2 -m 1024 \
		-display none -serial "file:$con" -monitor none -no-reboot \
		-kernel "$W/Image" -initrd "$W/initrd.img" \
		-append "console=ttyAMA0 root=/dev/vda2 rootfstype=ext4 rw panic=-1 $extra" \
		-drive if=none,file="$img",format=raw,id=d -device virtio-blk-pci,drive=d \
		-netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile= &
	qpid=$!; PIDS+=($qpid)
	while kill -0 "$subpid" 2>/dev/null; do
		kill -0 "$qpid" 2>/dev/null || { sleep 1; break; }
		sleep 0.1
	done
	[ -s "$sub" ] && first=$(now)
	# Keep the guest a little longer for the console log, then power off.
	sleep "${LINGER:-4}"
	kill "$qpid" 2>/dev/null || true
	wait "$qpid" 2>/dev/null || true
	cp "$con" "$FA_IMAGE_CACHE/last-console-$label.log" 2>/dev/null || true
	if [ -n "$first" ]; then
		BOOT_T[$label]=$(secs "$t_on" "$first")
		read -r topic paylen < "$sub"
		ok "[$label] first status message ${BOOT_T[$label]}s after QEMU power-on: $topic ($paylen bytes)"
		[ "$topic" = "edge/$DEVICE/status" ] && ok "[$label] topic edge/<card device id>/status" \
			|| bad "[$label] topic $topic, expected edge/$DEVICE/status"
	else
		bad "[$label] no MQTT message within ${BOOT_TIMEOUT}s (console: $FA_IMAGE_CACHE/last-console-$label.log)"
		grep -v '^\[ *[0-9]' "$con" | tail -40 >&2
	fi
	grep -q "initramfs: root /dev/vda2 mounted" "$con" && ok "[$label] root filesystem from the disk image (/dev/vda2)" \
		|| bad "[$label] root not mounted from /dev/vda2"
	if [ "$init" = systemd ]; then
		grep -aq "Started firmware-agent.service" "$con" && ok "[$label] agent started by systemd (firmware-agent.service, enabled by inject.py)" \
			|| bad "[$label] systemd did not start firmware-agent.service"
		grep -aq "Mounted boot-firmware.mount" "$con" && grep -aq "Finished fa-test-net.service" "$con" \
			&& ok "[$label] modules loaded, /boot/firmware mounted, network up" || bad "[$label] boot-firmware.mount or network failed"
		grep -aE "Failed to start firmware-agent|firmware-agent.service: (Main process exited|Failed)" "$con" \
			&& bad "[$label] firmware-agent.service failed" || ok "[$label] firmware-agent.service did not fail"
	else
		grep -q "Starting firmware-agent: OK" "$con" && ok "[$label] agent started by BusyBox init (S99firmware-agent)" \
			|| bad "[$label] S99firmware-agent did not start the agent"
		grep -q "rcS: insmod .* failed\|cannot mount /boot/firmware\|no eth0" "$con" \
			&& bad "[$label] rcS errors: $(grep 'rcS:' "$con" | tr '\n' ' ')" || ok "[$label] modules (vfat, virtio_net) loaded, /boot/firmware mounted"
	fi
	if grep -aq "probe .*: attached to" "$con"; then
		grep -aiE "probe .*: skipped" "$con" && bad "[$label] some probes were skipped" \
			|| ok "[$label] all probes attached ($(grep -ac 'probe .*: attached to' "$con"))"
	fi
	if grep -qiE "operation not permitted|permission denied|EPERM|EACCES" "$con"; then
		bad "[$label] permission errors on the console: $(grep -iE 'operation not permitted|permission denied|EPERM|EACCES' "$con" | head -3 | tr '\n' ' ')"
	else ok "[$label] no permission errors from the agent"; fi
	grep -a '^agent-proc:' "$con" | tr -d '\r' > "$W/proc-$label"
}
declare -A BOOT_T

# 1. As installed: the rc script runs the agent as root.
boot_test root "$W/fleet.img"
grep -qP '^agent-proc: Uid:\t0\t' "$W/proc-root" && ok "[root] agent runs as uid 0" || bad "[root] agent uid: $(cat "$W/proc-root")"

# 2. Least privilege, as the systemd unit runs it: /etc/default/firmware-agent
#    sets DAEMON_WRAPPER to setpriv (uid 65534, only CAP_BPF, CAP_PERFMON,
#    CAP_DAC_READ_SEARCH, ambient, no_new_privs).
cat > "$W/default" <<'DEF'
DAEMON_WRAPPER="/usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all,+bpf,+perfmon,+dac_read_search --ambient-caps=-all,+bpf,+perfmon,+dac_read_search --bounding-set=-all,+bpf,+perfmon,+dac_read_search --no-new-privs --"
DEF
printf 'mkdir /etc/default\ncd /etc/default\nwrite %s firmware-agent\n' "$W/default" > "$W/lp.cmds"
debugfs -w -f "$W/lp.cmds" "$W/fleet-lp.img?offset=$ROOT_OFF" >/dev/null 2>&1 || true
rm -f "$W/back"; debugfs -R "dump /etc/default/firmware-agent $W/back" "$W/fleet-lp.img?offset=$ROOT_OFF" 2>/dev/null
cmp -s "$W/back" "$W/default" || die "could not write /etc/default/firmware-agent"
boot_test least-privilege "$W/fleet-lp.img"
grep -qP '^agent-proc: Uid:\t65534\t' "$W/proc-least-privilege" && ok "[least-privilege] agent runs as uid 65534" \
	|| bad "[least-privilege] agent uid: $(cat "$W/proc-least-privilege")"
grep -qP '^agent-proc: CapEff:\t000000c000000004$' "$W/proc-least-privilege" \
	&& ok "[least-privilege] effective capabilities = CAP_BPF CAP_PERFMON CAP_DAC_READ_SEARCH only" \
	|| bad "[least-privilege] capabilities: $(cat "$W/proc-least-privilege")"

# 3. systemd (Debian bookworm's systemd 252, as on Raspberry Pi OS bookworm):
#    the image inject.py gave packaging/firmware-agent.service, enabled; the
#    unit itself sets DynamicUser, the three capabilities, the sandbox, the
#    syscall filter and lowers perf_event_paranoid.
boot_test systemd "$W/fleet-systemd.img" systemd
P="$W/proc-systemd"
uid=$(sed -n 's/^agent-proc: Uid:\t\([0-9]*\).*/\1/p' "$P")
[ -n "$uid" ] && [ "$uid" -ge 61184 ] && [ "$uid" -le 65519 ] && ok "[systemd] agent runs as a DynamicUser uid ($uid)" \
	|| bad "[systemd] agent uid: $(cat "$P")"
grep -qP '^agent-proc: CapEff:\t000000c000000004$' "$P" && grep -qP '^agent-proc: NoNewPrivs:\t1$' "$P" \
	&& ok "[systemd] capabilities = CAP_BPF CAP_PERFMON CAP_DAC_READ_SEARCH only, no_new_privs" \
	|| bad "[systemd] capabilities: $(cat "$P")"
grep -qx 'agent-proc: paranoid: 2' "$P" && ok "[systemd] ExecStartPre lowered perf_event_paranoid to 2" \
	|| bad "[systemd] perf_event_paranoid: $(grep paranoid "$P")"

# ---- figures ----
size_img=$(stat -c %s "$W/fleet.img"); used_img=$(du -B1 "$W/fleet.img" | cut -f1)
size_xz=$(stat -c %s "$W/fleet.img.xz" 2>/dev/null || echo 0)
echo "== measurements"
echo "agent:                         $(basename "$AGENT") ($(stat -c %s "$AGENT") bytes)"
echo "image size:                    $size_img bytes ($((size_img / 1048576)) MiB; $used_img bytes allocated; .img.xz $size_xz bytes)"
echo "build base image:              ${BUILD_BASE}s (mkbase.sh, incl. fetching the debs when not cached)"
echo "inject (.img):                 ${INJECT_T:-?}s"
echo "inject (.img.xz -> .img.xz):   ${INJECT_XZ_T:-?}s"
echo "inject (systemd image):        ${INJECT_SD_T:-?}s"
echo "systemd image size:            $(stat -c %s "$W/fleet-systemd.img") bytes"
echo "QEMU power-on -> first MQTT:   ${BOOT_T[root]:-none}s (BusyBox init, root), ${BOOT_T[least-privilege]:-none}s (BusyBox init, setpriv), ${BOOT_T[systemd]:-none}s (systemd unit)"
echo "image-e2e: $PASS passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
