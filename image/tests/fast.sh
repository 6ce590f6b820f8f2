#!/usr/bin/env bash
# Fast (seconds, no downloads, no QEMU) tests of image/inject.py on tiny
# synthetic images: bad input must fail with a clear message and exit 2, leave
# the input byte-for-byte unchanged and leave no output or partial file behind;
# good input must get exactly the expected files.
. "$(dirname "$0")/common.sh"
need sfdisk mkfs.vfat mkfs.ext4 mcopy mtype debugfs e2fsck sha256sum xz
T=$(mktemp -d "${TMPDIR:-/tmp}/fa-inject-fast.XXXXXX")
trap 'rm -rf "$T"' EXIT
PASS=0; FAILED=0
ok() { PASS=$((PASS + 1)); log "ok: $*"; }
bad() { FAILED=$((FAILED + 1)); log "FAIL: $*"; }

# mkimg OUT [boot_mb root_mb [parts]]  parts: both|bootonly|rootonly
mkimg() {
	local out=$1 bmb=${2:-8} rmb=${3:-16} parts=${4:-both} r="$T/skel.$RANDOM"
	mkdir -p "$r"/{bin,etc/init.d,usr/bin,boot/firmware}
	echo "#!/bin/sh" > "$r/bin/sh"
	[ -n "${WITH_SYSTEMD:-}" ] && mkdir -p "$r/usr/lib/systemd" && echo x > "$r/usr/lib/systemd/systemd"
	truncate -s $(( (2048 + (bmb + rmb) * 2048) * 512 )) "$out"
	case $parts in
		both) printf 'label: dos\nstart=2048, size=%d, type=c\nstart=%d, type=83\n' $((bmb*2048)) $((2048+bmb*2048)) ;;
		bootonly) printf 'label: dos\nstart=2048, size=%d, type=c\n' $((bmb*2048)) ;;
		rootonly) printf 'label: dos\nstart=%d, type=83\n' $((2048+bmb*2048)) ;;
	esac | sfdisk -q "$out"
	truncate -s ${bmb}M "$T/fat"; mkfs.vfat -n BOOTFS "$T/fat" >/dev/null
	dd if="$T/fat" of="$out" bs=1M seek=1 conv=notrunc status=none; rm "$T/fat"
	mkfs.ext4 -q -F -E offset=$(( (2048 + bmb * 2048) * 512 )),root_owner=0:0 -d "$r" "$out" ${rmb}M
	rm -rf "$r"
}
AGENT="$TESTS_DIR/standin-agent.sh"
inj() { "$PY" "$INJECT" "$@" 2>"$T/err"; }

# expect_fail NAME INPUT [inject args...]: exit 2, message, input unchanged, no output.
expect_fail() {
	local name=$1 pattern=$2 input=$3; shift 3
	local before after rc=0 out="$T/out-$RANDOM.img"
	before=$( [ -e "$input" ] && sha256sum < "$input" || echo absent)
	inj "$input" -o "$out" "$@" || rc=$?
	after=$( [ -e "$input" ] && sha256sum < "$input" || echo absent)
	if [ $rc -ne 2 ]; then bad "$name: exit $rc, expected 2 ($(cat "$T/err"))"; return; fi
	if ! grep -qiE "$pattern" "$T/err"; then bad "$name: message '$(cat "$T/err")' lacks /$pattern/"; return; fi
	if [ "$before" != "$after" ]; then bad "$name: input changed"; return; fi
	if [ -e "$out" ] || ls "$T"/.out-*partial* >/dev/null 2>&1; then bad "$name: left output behind"; return; fi
	ok "$name -> $(grep -m1 error "$T/err" | sed 's/^inject: //')"
}

# ---- bad input ----
head -c 3000000 /dev/urandom > "$T/random.bin"
expect_fail "not an image (random bytes)" "not a disk image" "$T/random.bin" "$AGENT"
printf 'hello\n' > "$T/tiny.img"
expect_fail "not an image (6 bytes)" "too small" "$T/tiny.img" "$AGENT"
mkimg "$T/good.img"
cp "$T/good.img" "$T/trunc.img"; truncate -s $((12 * 1024 * 1024)) "$T/trunc.img"
expect_fail "truncated image" "truncated" "$T/trunc.img" "$AGENT"
mkimg "$T/bootonly.img" 8 16 bootonly
expect_fail "missing root partition" "no Linux root partition" "$T/bootonly.img" "$AGENT"
mkimg "$T/rootonly.img" 8 16 rootonly
expect_fail "missing boot partition" "no FAT boot partition" "$T/rootonly.img" "$AGENT"
cp "$T/good.img" "$T/nofs.img"; dd if=/dev/zero of="$T/nofs.img" bs=1M seek=9 count=2 conv=notrunc status=none
expect_fail "root partition without ext4" "not an ext2/3/4" "$T/nofs.img" "$AGENT"
# No space: an agent bigger than the 16 MiB root filesystem.
{ printf '#!/bin/sh\nexit 0\n'; head -c $((20 * 1024 * 1024)) /dev/zero; } > "$T/big-agent"
expect_fail "no space on root" "no space left on the root" "$T/good.img" "$T/big-agent"
# No space on FAT: fill the boot partition, then ask for a big CA file.
cp "$T/good.img" "$T/fatfull.img"
head -c $((7 * 1024 * 1024 + 900 * 1024)) /dev/zero > "$T/filler"
MTOOLS_SKIP_CHECK=1 mcopy -i "$T/fatfull.img@@1048576" "$T/filler" ::filler
head -c 400000 /dev/zero > "$T/ca.pem"
expect_fail "no space on boot" "no space left on the boot" "$T/fatfull.img" "$AGENT" --ca-file "$T/ca.pem"
xz -T0 -c "$T/good.img" > "$T/good.img.xz"
head -c $(( $(stat -c %s "$T/good.img.xz") / 2 )) "$T/good.img.xz" > "$T/cut.img.xz"
expect_fail "truncated .img.xz" "corrupt or truncated xz" "$T/cut.img.xz" "$AGENT"
expect_fail "x86-64 agent binary" "not aarch64" "$T/good.img" "$(command -v mkfs.ext4)"
echo "not a program" > "$T/notelf"
expect_fail "agent not an ELF" "not an ELF" "$T/good.img" "$T/notelf"
expect_fail "bad broker url" "broker-url" "$T/good.img" "$AGENT" --broker-url "http://x"
cp "$T/good.img" "$T/exists.img"
expect_fail "output exists" "exists" "$T/good.img" "$AGENT" --output "$T/exists.img"
expect_fail "missing base" "no such file" "$T/nonexistent.img" "$AGENT"

# ---- good input ----
R=$(( (2048 + 8 * 2048) * 512 ))
dfs() { debugfs -R "$1" "$2?offset=$R" 2>/dev/null; }
mode_of() { dfs "stat $2" "$1" | sed -n 's/.*Mode: *\([0-7]*\).*/\1/p' | head -1; }
same() { # IMG PATH LOCALFILE
	rm -f "$T/back"; dfs "dump $2 $T/back" "$1"; cmp -s "$T/back" "$3"
}
check_common() { # IMG LABEL
	local img=$1 label=$2
	same "$img" /usr/bin/firmware-agent "$AGENT" && [ "$(mode_of "$img" /usr/bin/firmware-agent)" = 0755 ] \
		&& ok "$label: /usr/bin/firmware-agent 0755" || bad "$label: agent binary"
	same "$img" /etc/firmware-agent/agent.toml "$OVERLAY/etc/firmware-agent/agent.toml" \
		&& [ "$(mode_of "$img" /etc/firmware-agent/agent.toml)" = 0644 ] \
		&& ok "$label: agent.toml is the overlay's, 0644" || bad "$label: agent.toml"
	MTOOLS_SKIP_CHECK=1 mtype -i "$img@@1048576" ::firmware-agent.toml > "$T/card" 2>/dev/null
	grep -qx 'device_id = "card-42"' "$T/card" && grep -qx 'url = "mqtts://broker.example:8883"' "$T/card" \
		&& grep -qx 'password = "p\\"w"' "$T/card" && grep -qx 'ca_file = "/boot/firmware/firmware-agent-ca.pem"' "$T/card" \
		&& "$PY" -c 'import sys, tomllib; c = tomllib.load(open(sys.argv[1], "rb")); assert c["device_id"] == "card-42" and c["mqtt"]["password"] == "p\"w"' "$T/card" \
		&& ok "$label: card file on FAT is valid TOML with device id, url, escaped password, CA path" \
		|| bad "$label: card file: $(cat "$T/card")"
	MTOOLS_SKIP_CHECK=1 mtype -i "$img@@1048576" ::firmware-agent-ca.pem | cmp -s - "$T/ca-small.pem" \
		&& ok "$label: CA copied to FAT" || bad "$label: CA file"
	e2fsck -fn "$img?offset=$R" >/dev/null 2>&1 && ok "$label: e2fsck clean" || bad "$label: e2fsck"
}
printf -- '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' > "$T/ca-small.pem"
ARGS=(--device-id card-42 --broker-url mqtts://broker.example:8883 --username card-42 --password 'p"w' --ca-file "$T/ca-small.pem")

before=$(sha256sum < "$T/good.img")
if inj "$T/good.img" "$AGENT" -o "$T/sysv.img" "${ARGS[@]}"; then
	ok "inject into a BusyBox-init image"
	check_common "$T/sysv.img" sysv
	same "$T/sysv.img" /etc/init.d/S99firmware-agent "$OVERLAY/etc/init.d/S99firmware-agent" \
		&& [ "$(mode_of "$T/sysv.img" /etc/init.d/S99firmware-agent)" = 0755 ] \
		&& ok "sysv: S99firmware-agent is the overlay's, 0755" || bad "sysv: init script"
	dfs "stat /etc/systemd/system/firmware-agent.service" "$T/sysv.img" | grep -q Inode: \
		&& bad "sysv: unit installed without systemd" || ok "sysv: no systemd unit"
else bad "inject into a BusyBox-init image: $(cat "$T/err")"; fi
[ "$before" = "$(sha256sum < "$T/good.img")" ] && ok "input unchanged after success" || bad "input changed"

# Re-injecting into an already injected image replaces the files (idempotent).
if inj "$T/sysv.img" "$AGENT" -o "$T/again.img" "${ARGS[@]}" && e2fsck -fn "$T/again.img?offset=$R" >/dev/null 2>&1; then
	ok "re-inject into an injected image"; else bad "re-inject: $(cat "$T/err")"; fi

# Paths with blanks (debugfs splits its commands on blanks).
mkdir -p "$T/dir with space"; cp "$AGENT" "$T/dir with space/my agent"
if inj "$T/good.img" "$T/dir with space/my agent" -o "$T/dir with space/out.img" \
	&& same "$T/dir with space/out.img" /usr/bin/firmware-agent "$AGENT"; then
	ok "paths with blanks"; else bad "paths with blanks: $(cat "$T/err")"; fi

WITH_SYSTEMD=1 mkimg "$T/sd.img"
xz -T0 -c "$T/sd.img" > "$T/sd.img.xz"
if inj "$T/sd.img.xz" "$AGENT" -o "$T/sd-out.img.xz" "${ARGS[@]}"; then
	ok "inject .img.xz -> .img.xz into a systemd image"
	xz -dc "$T/sd-out.img.xz" > "$T/sd-out.img"
	check_common "$T/sd-out.img" systemd
	same "$T/sd-out.img" /etc/systemd/system/firmware-agent.service "$REPO/packaging/firmware-agent.service" \
		&& ok "systemd: unit is packaging/firmware-agent.service" || bad "systemd: unit"
	dfs "stat /etc/systemd/system/multi-user.target.wants/firmware-agent.service" "$T/sd-out.img" \
		| grep -q 'Fast link dest: "/etc/systemd/system/firmware-agent.service"' \
		&& ok "systemd: enabled (multi-user.target.wants symlink)" || bad "systemd: enable symlink"
	dfs "stat /etc/init.d/S99firmware-agent" "$T/sd-out.img" | grep -q Inode: \
		&& bad "systemd: rc script installed too" || ok "systemd: no rc script"
else bad "inject into systemd image: $(cat "$T/err")"; fi

echo "image-fast: $PASS passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
