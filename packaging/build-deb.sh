#!/usr/bin/env bash
# Build firmware-agent_<version>_arm64.deb for Raspberry Pi OS (arm64) with
# dpkg-deb only (no cargo-deb, no debhelper).
#
#   packaging/build-deb.sh BINARY VERSION [OUTDIR]
#     BINARY   static aarch64 firmware-agent
#              (target/aarch64-unknown-linux-musl/release/firmware-agent)
#     VERSION  Debian version, e.g. 0.1.0 or 0.1.0-1
#     OUTDIR   where to write the .deb (default: .)
#
# Contents: /usr/bin/firmware-agent, /lib/systemd/system/firmware-agent.service
# (packaging/firmware-agent.service), /etc/firmware-agent/agent.toml (conffile;
# the Buildroot overlay's default config), docs. Maintainer scripts enable and
# start the unit like debhelper's would: deb-systemd-helper for enablement
# (works in chroots and image builds), start/stop/daemon-reload only when
# systemd is running (/run/systemd/system), through deb-systemd-invoke so
# policy-rc.d is honoured.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
die() { echo "build-deb: error: $*" >&2; exit 2; }

[ $# -ge 2 ] || die "usage: $0 BINARY VERSION [OUTDIR]"
BIN=$1; VERSION=$2; OUT=${3:-.}
ARCH=arm64
PKG=firmware-agent
UNIT="$HERE/firmware-agent.service"
CONF="$REPO/buildroot-overlay/board/raspberrypi5/rootfs-overlay/etc/firmware-agent/agent.toml"
MAINTAINER=${DEB_MAINTAINER:-"firmware-agent maintainers <firmware-agent@localhost>"}

[ -f "$BIN" ] || die "binary $BIN: no such file"
[ -d "$OUT" ] || die "output directory $OUT does not exist"
[[ "$VERSION" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "version '$VERSION' is not a valid Debian version"
# The binary must be an aarch64 ELF (EM_AARCH64 = 183 at offset 18).
magic=$(head -c 4 "$BIN" | od -An -c | tr -d ' ')
[ "$magic" = '177ELF' ] || die "$BIN is not an ELF executable"
machine=$(od -An -t u2 -j 18 -N 2 "$BIN" | tr -d ' ')
[ "$machine" = 183 ] || die "$BIN is built for ELF machine $machine, not aarch64"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (apt-get install dpkg)"

W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
R="$W/root"
install -d -m 755 "$R/DEBIAN" "$R/usr/bin" "$R/lib/systemd/system" "$R/etc/firmware-agent" \
	"$R/usr/share/doc/$PKG"
install -m 755 "$BIN" "$R/usr/bin/firmware-agent"
install -m 644 "$UNIT" "$R/lib/systemd/system/firmware-agent.service"
install -m 644 "$CONF" "$R/etc/firmware-agent/agent.toml"
install -m 644 "$HERE/README.md" "$R/usr/share/doc/$PKG/README.md"
cat > "$R/usr/share/doc/$PKG/copyright" <<'COPY'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: firmware-agent

Files: *
Copyright: firmware-agent contributors
License: MIT or Apache-2.0
 Licensed under either of the MIT license or the Apache License, Version 2.0,
 at your option. On Debian systems the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
COPY
chmod 644 "$R/usr/share/doc/$PKG/copyright"

echo /etc/firmware-agent/agent.toml > "$R/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$R" | cut -f1)
cat > "$R/DEBIAN/control" <<CTRL
Package: $PKG
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $SIZE
Section: admin
Priority: optional
Recommends: systemd
Description: eBPF monitoring agent for Raspberry Pi 5 fleets
 Attaches eBPF tracepoint programs (process exec/exit, bind, signals) and
 publishes status, events and metrics to an MQTT broker under
 edge/<device>/... . Statically linked (musl); runs as a systemd service
 with CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH only.
 .
 Configuration: /etc/firmware-agent/agent.toml, overridden per card by
 /boot/firmware/firmware-agent.toml on the boot partition.
CTRL

cat > "$R/DEBIAN/postinst" <<'SH'
#!/bin/sh
set -e
UNIT=firmware-agent.service
if [ "$1" = configure ] || [ "$1" = abort-upgrade ] || [ "$1" = abort-deconfigure ] || [ "$1" = abort-remove ]; then
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		# Remove a mask left by a previous removal; enable on first install,
		# keep the admin's choice on upgrades.
		deb-systemd-helper unmask "$UNIT" >/dev/null || true
		if deb-systemd-helper --quiet was-enabled "$UNIT"; then
			deb-systemd-helper enable "$UNIT" >/dev/null || true
		else
			deb-systemd-helper update-state "$UNIT" >/dev/null || true
		fi
	elif command -v systemctl >/dev/null 2>&1; then
		# Creates the multi-user.target.wants symlink; works in a chroot.
		systemctl enable "$UNIT" >/dev/null 2>&1 || true
	fi
	# Only touch the running system when systemd is PID 1 (not in a chroot
	# or an image build).
	if [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		if [ -n "$2" ]; then action=restart; else action=start; fi
		if command -v deb-systemd-invoke >/dev/null 2>&1; then
			deb-systemd-invoke "$action" "$UNIT" >/dev/null || true
		else
			systemctl "$action" "$UNIT" >/dev/null || true
		fi
	fi
fi
exit 0
SH

cat > "$R/DEBIAN/prerm" <<'SH'
#!/bin/sh
set -e
UNIT=firmware-agent.service
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	if command -v deb-systemd-invoke >/dev/null 2>&1; then
		deb-systemd-invoke stop "$UNIT" >/dev/null || true
	else
		systemctl stop "$UNIT" >/dev/null 2>&1 || true
	fi
fi
exit 0
SH

cat > "$R/DEBIAN/postrm" <<'SH'
#!/bin/sh
set -e
UNIT=firmware-agent.service
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = remove ]; then
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		deb-systemd-helper mask "$UNIT" >/dev/null || true
	fi
fi
if [ "$1" = purge ]; then
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		deb-systemd-helper purge "$UNIT" >/dev/null || true
		deb-systemd-helper unmask "$UNIT" >/dev/null || true
	fi
	rmdir /etc/firmware-agent 2>/dev/null || true
fi
exit 0
SH
chmod 755 "$R/DEBIAN/postinst" "$R/DEBIAN/prerm" "$R/DEBIAN/postrm"
chmod 644 "$R/DEBIAN/control" "$R/DEBIAN/conffiles"

if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
	find "$R" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
fi
DEB="$OUT/${PKG}_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$R" "$DEB.partial" >/dev/null
mv "$DEB.partial" "$DEB"
echo "$DEB"
