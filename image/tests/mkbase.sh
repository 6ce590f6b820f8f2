#!/usr/bin/env bash
# Build the synthetic "Raspberry Pi OS Lite"-shaped base image used by run.sh,
# unprivileged (no loop devices, no mount):
#   MBR: p1 FAT32 (type 0x0c, 64 MiB at 4 MiB, like Raspberry Pi OS), p2 ext4 (0x83)
#   root: busybox-static (arm64) + BusyBox init (inittab, rcS from rootfs/),
#         the 16K kernel's modules the rcS needs, no systemd, no agent.
# Also writes the kernel Image and a small initramfs (the Debian kernel has
# virtio_blk and ext4 as modules, so the initramfs only loads them, mounts
# /dev/vda2 and switch_roots into it: the root filesystem is the disk's).
# Usage: mkbase.sh OUTDIR [--systemd]
#   -> OUTDIR/{base.img,Image,initrd.img,kernel-version} [+ base-systemd.img]
. "$(dirname "$0")/common.sh"
need dpkg-deb mkfs.vfat mkfs.ext4 sfdisk mcopy mmd cpio xz gzip depmod
OUT=${1:?usage: mkbase.sh OUTDIR}
mkdir -p "$OUT"
DEBS=$("$TESTS_DIR/fetch-debs.sh")
W=$(mktemp -d "$OUT/.mkbase.XXXXXX")
trap 'rm -rf "$W"' EXIT

log "unpacking $(cd "$DEBS" && ls linux-image-*_arm64.deb busybox-static_*_arm64.deb | tr '\n' ' ')"
dpkg-deb -x "$(ls "$DEBS"/busybox-static_*_arm64.deb | tail -1)" "$W/bb"
dpkg-deb -x "$(ls "$DEBS"/linux-image-*_arm64.deb | sort -V | tail -1)" "$W/k"
KVER=$(ls "$W/k/lib/modules" | head -1)
KMOD="$W/k/lib/modules/$KVER/kernel"
[ -f "$W/k/boot/vmlinuz-$KVER" ] || die "no vmlinuz in the kernel package"
grep -q '^CONFIG_ARM64_16K_PAGES=y' "$W/k/boot/config-$KVER" || die "$KVER is not a 16K-page kernel"

# module NAME... -> copies (decompressed) into $dest/<relative path>
modcopy() { # DESTROOT RELPATH...
	local dest=$1; shift
	for m in "$@"; do
		local src="$KMOD/$m.ko.xz"
		[ -f "$src" ] || die "module $m not in the kernel package (built in?)"
		mkdir -p "$dest/$(dirname "$m")"
		xz -dc "$src" > "$dest/$m.ko"
	done
}

# ---- root filesystem ----
R="$W/root"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc/init.d,proc,sys,dev,tmp,run,var/log,boot/firmware,root,lib/modules}
ln -s ../run "$R/var/run"
install -m 755 "$W/bb/bin/busybox" "$R/bin/busybox"
ln -s busybox "$R/bin/sh"
ln -s ../bin/busybox "$R/sbin/init"
cp -a "$TESTS_DIR/rootfs/etc/." "$R/etc/"
echo "root:x:0:0:root:/root:/bin/sh" > "$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$R/etc/group"
# setpriv (util-linux, dynamically linked: + glibc loader, libc, libcap-ng) so
# run.sh can also start the agent the way the systemd unit does: non-root
# with only CAP_BPF, CAP_PERFMON, CAP_DAC_READ_SEARCH.
for p in util-linux libc6 libcap-ng0; do
	dpkg-deb -x "$(ls "$DEBS/${p}_"*_arm64.deb | tail -1)" "$W/$p"
done
mkdir -p "$R/lib/aarch64-linux-gnu"
install -m 755 "$W/util-linux/usr/bin/setpriv" "$R/usr/bin/setpriv"
cp -a "$W/libc6/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1" "$W/libc6/lib/aarch64-linux-gnu/libc.so.6" \
	"$W/libcap-ng0/lib/aarch64-linux-gnu/"libcap-ng.so.0* "$R/lib/aarch64-linux-gnu/"
ln -s aarch64-linux-gnu/ld-linux-aarch64.so.1 "$R/lib/ld-linux-aarch64.so.1"
echo "nobody:x:65534:65534:nobody:/nonexistent:/bin/false" >> "$R/etc/passwd"
modcopy "$R/lib/modules/$KVER/kernel" \
	fs/fat/fat fs/fat/vfat fs/nls/nls_cp437 fs/nls/nls_ascii \
	net/core/failover drivers/net/net_failover drivers/net/virtio_net
ROOT_MB=${ROOT_MB:-96}
BOOT_MB=64
# ---- boot partition (FAT32, what the Pi firmware reads; QEMU boots -kernel) ----
truncate -s ${BOOT_MB}M "$W/boot.fat"
mkfs.vfat -F 32 -n bootfs "$W/boot.fat" 2>&1 | grep -v "lowercase labels" >&2 || true
printf '# synthetic test image; on a Pi this is config.txt\narm_64bit=1\n' > "$W/config.txt"
echo "console=ttyAMA0 root=/dev/vda2 rootfstype=ext4 rw" > "$W/cmdline.txt"
MTOOLS_SKIP_CHECK=1 mcopy -i "$W/boot.fat" "$W/config.txt" "$W/cmdline.txt" ::

# ---- disk: 4 MiB alignment gap, p1 FAT, p2 ext4 ----
BOOT_START=8192
ROOT_START=$((BOOT_START + BOOT_MB * 2048))
# assemble OUT_NAME LABEL_ID ROOT_DIR ROOT_MB: the boot FAT above plus an ext4 root made from
# ROOT_DIR, as a two-partition MBR disk image in $OUT.
assemble() {
	local img="$W/$1" label_id=$2 root_dir=$3 root_mb=$4
	truncate -s $(( (ROOT_START + root_mb * 2048) * 512 )) "$img"
	sfdisk -q "$img" <<PT
label: dos
label-id: $label_id
start=$BOOT_START, size=$((BOOT_MB * 2048)), type=c
start=$ROOT_START, type=83
PT
	dd if="$W/boot.fat" of="$img" bs=1M seek=$((BOOT_START / 2048)) conv=notrunc,sparse status=none
	mkfs.ext4 -q -F -L rootfs -E offset=$((ROOT_START * 512)),root_owner=0:0 -d "$root_dir" "$img" "${root_mb}M"
	mv "$img" "$OUT/$1"
}
assemble base.img 0x5452574b "$R" "$ROOT_MB"

# ---- kernel + initramfs ----
cp "$W/k/boot/vmlinuz-$KVER" "$OUT/Image"
cp "$W/k/boot/config-$KVER" "$OUT/config"
I="$W/initrd"
mkdir -p "$I"/{bin,dev,proc,sys,newroot,lib/modules}
install -m 755 "$W/bb/bin/busybox" "$I/bin/busybox"
ln -s busybox "$I/bin/sh"
for m in crypto/crc32c_generic lib/crc16 fs/mbcache fs/jbd2/jbd2 fs/ext4/ext4 drivers/block/virtio_blk; do
	xz -dc "$KMOD/$m.ko.xz" > "$I/lib/modules/$(basename "$m").ko"
done
cat > "$I/init" <<'INIT'
#!/bin/sh
# Minimal initramfs: load the storage modules, mount root=, switch_root.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in crc32c_generic crc16 mbcache jbd2 ext4 virtio_blk; do
	insmod /lib/modules/$m.ko || echo "initramfs: insmod $m failed"
done
root=$(sed -n 's/.*root=\([^ ]*\).*/\1/p' /proc/cmdline)
i=0
while [ ! -b "$root" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mount -t ext4 -o rw "$root" /newroot || { echo "initramfs: cannot mount $root"; exec sh; }
echo "initramfs: root $root mounted, switching"
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/init
INIT
chmod 755 "$I/init"
(cd "$I" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -9) > "$OUT/initrd.img"
echo "$KVER" > "$OUT/kernel-version"

# ---- optional: a systemd root filesystem (mkbase.sh OUTDIR --systemd) ----
# Debian arm64 systemd + udev + kmod + dash and their dependency closure,
# unpacked without maintainer scripts, plus the same modules (loaded by
# systemd-modules-load; modules.dep from the host's depmod) and a oneshot unit
# that brings up eth0 before network-online.target. inject.py sees
# /lib/systemd/systemd and installs packaging/firmware-agent.service, so this
# image boots the real unit: DynamicUser, capabilities, sandboxing, syscall filter.
if [ "${2:-}" = --systemd ]; then
	"$TESTS_DIR/fetch-debs.sh" --systemd >/dev/null
	S="$W/root-systemd"
	mkdir -p "$S"
	for d in "$DEBS"/systemd/*.deb; do dpkg-deb -x "$d" "$S"; done
	install -m 755 "$W/bb/bin/busybox" "$S/bin/busybox"
	ln -sf dash "$S/bin/sh"
	mkdir -p "$S/sbin" "$S/boot/firmware" "$S/root" "$S/etc/systemd/system/multi-user.target.wants" \
		"$S/etc/systemd/system/network-online.target.wants" "$S/etc/modules-load.d"
	ln -sf /lib/systemd/systemd "$S/sbin/init"
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' > "$S/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' > "$S/etc/group"
	printf 'root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n' > "$S/etc/shadow"; chmod 640 "$S/etc/shadow"
	: > "$S/etc/machine-id"
	echo fa-test-systemd > "$S/etc/hostname"
	printf '/dev/vda2 / ext4 rw 0 1\n/dev/vda1 /boot/firmware vfat ro 0 2\n' > "$S/etc/fstab"
	modcopy "$S/lib/modules/$KVER/kernel" \
		fs/fat/fat fs/fat/vfat fs/nls/nls_cp437 fs/nls/nls_ascii \
		net/core/failover drivers/net/net_failover drivers/net/virtio_net
	cp "$W/k/lib/modules/$KVER/"modules.builtin* "$W/k/lib/modules/$KVER/modules.order" "$S/lib/modules/$KVER/" 2>/dev/null || true
	depmod -b "$S" "$KVER"
	printf 'fat\nvfat\nnls_cp437\nnls_ascii\nfailover\nnet_failover\nvirtio_net\n' > "$S/etc/modules-load.d/fa-test.conf"
	cat > "$S/etc/systemd/system/fa-test-net.service" <<'UNIT'
[Unit]
Description=Test network (QEMU user networking, static)
After=systemd-modules-load.service sys-subsystem-net-devices-eth0.device
Wants=sys-subsystem-net-devices-eth0.device network.target
Before=network.target network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/busybox ifconfig lo 127.0.0.1 up
ExecStart=/bin/busybox ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up
ExecStart=/bin/busybox route add default gw 10.0.2.2

[Install]
WantedBy=network-online.target
UNIT
	ln -s ../fa-test-net.service "$S/etc/systemd/system/network-online.target.wants/fa-test-net.service"
	# Diagnostics on the console: the agent's uid and capabilities (asserted by run.sh).
	cat > "$S/etc/systemd/system/fa-test-diag.service" <<'UNIT'
[Unit]
Description=Test diagnostics: firmware-agent identity
After=firmware-agent.service

[Service]
Type=oneshot
ExecStart=/bin/busybox sh -c 'busybox sleep 2; pid=$$(systemctl show -P MainPID firmware-agent.service); echo "agent-proc: MainPID: $$pid"; busybox grep -E "^(Name|Uid|CapEff|CapAmb|NoNewPrivs)" /proc/$$pid/status | busybox sed "s/^/agent-proc: /"; echo "agent-proc: paranoid: $$(busybox cat /proc/sys/kernel/perf_event_paranoid)"'
StandardOutput=tty
TTYPath=/dev/console

[Install]
WantedBy=multi-user.target
UNIT
	ln -s ../fa-test-diag.service "$S/etc/systemd/system/multi-user.target.wants/fa-test-diag.service"
	# No gettys/consoles to spawn (util-linux's agetty is not installed).
	ln -sf /dev/null "$S/etc/systemd/system/serial-getty@ttyAMA0.service"
	ln -sf /dev/null "$S/etc/systemd/system/getty@tty1.service"
	assemble base-systemd.img 0x5452574c "$S" "${SYSTEMD_ROOT_MB:-320}"
	log "systemd base image: $OUT/base-systemd.img ($(stat -c %s "$OUT/base-systemd.img") bytes)"
fi
log "base image: $OUT/base.img ($(stat -c %s "$OUT/base.img") bytes), kernel $KVER"
