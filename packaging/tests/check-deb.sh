#!/usr/bin/env bash
# Build the arm64 .deb with a stand-in aarch64 binary and check what dpkg sees:
# metadata (dpkg-deb -I), file list/modes/owners (-c), conffiles and
# maintainer scripts (-e), file contents (-x), plus the maintainer scripts'
# behaviour with stubbed deb-systemd-helper/systemctl, and bad-input errors.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PKGDIR=$(cd "$HERE/.." && pwd)
REPO=$(cd "$PKGDIR/.." && pwd)
PASS=0; FAILED=0
ok() { PASS=$((PASS + 1)); echo "ok: $*"; }
bad() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

# Stand-in: a 64-bit little-endian ELF header with e_machine = EM_AARCH64 (183).
python3 - "$T/firmware-agent" <<'PY'
import struct, sys
hdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
hdr += struct.pack("<HHIQQQIHHHHHH", 2, 183, 1, 0x400000, 64, 0, 0, 64, 56, 0, 64, 0, 0)
open(sys.argv[1], "wb").write(hdr + b"stand-in firmware-agent\n")
PY
VER=0.1.0-1
DEB=$(SOURCE_DATE_EPOCH=1700000000 bash "$PKGDIR/build-deb.sh" "$T/firmware-agent" "$VER" "$T")
check "built $(basename "$DEB")" [ "$(basename "$DEB")" = "firmware-agent_${VER}_arm64.deb" -a -s "$DEB" ]

# ---- dpkg-deb -I: control fields
dpkg-deb -I "$DEB" > "$T/info"
field() { dpkg-deb -f "$DEB" "$1"; }
check "Package: firmware-agent" [ "$(field Package)" = firmware-agent ]
check "Version: $VER" [ "$(field Version)" = "$VER" ]
check "Architecture: arm64" [ "$(field Architecture)" = arm64 ]
check "Maintainer set" [ -n "$(field Maintainer)" ]
check "Description set" [ -n "$(field Description)" ]
check "Installed-Size set" [ "$(field Installed-Size)" -gt 0 ]
check "no Depends (static binary)" [ -z "$(field Depends)" ]
for s in conffiles postinst prerm postrm; do
	check "control member $s listed" grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\*? *$s" "$T/info"
done

# ---- dpkg-deb -c: paths, modes, owners
dpkg-deb -c "$DEB" > "$T/list"
entry() { grep -E " \./$1\$" "$T/list" || true; }
for p in usr/bin/firmware-agent:-rwxr-xr-x lib/systemd/system/firmware-agent.service:-rw-r--r-- \
	 etc/firmware-agent/agent.toml:-rw-r--r-- usr/share/doc/firmware-agent/copyright:-rw-r--r-- \
	 usr/share/doc/firmware-agent/README.md:-rw-r--r--; do
	path=${p%%:*}; mode=${p#*:}
	e=$(entry "$path")
	check "/$path present, $mode root/root" bash -c "[[ '$e' == '$mode root/root'* ]]"
done
check "nothing outside /usr /lib /etc" bash -c "! awk '{print \$6}' '$T/list' | grep -vE '^\./(\$|usr/|lib/|etc/)'"

# ---- dpkg-deb -e: conffiles and maintainer scripts
dpkg-deb -e "$DEB" "$T/ctl"
check "conffiles = /etc/firmware-agent/agent.toml" [ "$(cat "$T/ctl/conffiles")" = /etc/firmware-agent/agent.toml ]
for s in postinst prerm postrm; do
	check "$s executable" [ -x "$T/ctl/$s" ]
	check "$s: sh -n" sh -n "$T/ctl/$s"
	check "$s: set -e" grep -qx 'set -e' "$T/ctl/$s"
done
check "postinst enables via deb-systemd-helper" grep -q 'deb-systemd-helper enable "\$UNIT"' "$T/ctl/postinst"
check "postinst starts only under running systemd" grep -q 'if \[ -d /run/systemd/system \]' "$T/ctl/postinst"
check "postinst restarts on upgrade via deb-systemd-invoke" grep -q 'deb-systemd-invoke "\$action"' "$T/ctl/postinst"
check "prerm stops on remove" grep -q 'deb-systemd-invoke stop "\$UNIT"' "$T/ctl/prerm"
check "postrm purges enablement state" grep -q 'deb-systemd-helper purge "\$UNIT"' "$T/ctl/postrm"

# Behaviour with stubs: chroot-like (no /run/systemd/system) vs running systemd.
mkdir -p "$T/stub"
for t in deb-systemd-helper deb-systemd-invoke systemctl; do
	printf '#!/bin/sh\necho "%s $*" >> "%s"\n[ "$1" = --quiet ] && [ "$2" = was-enabled ] && exit 0\nexit 0\n' "$t" "$T/calls" > "$T/stub/$t"
	chmod +x "$T/stub/$t"
done
run_script() { rm -f "$T/calls"; touch "$T/calls"; PATH="$T/stub:/usr/bin:/bin" sh "$T/ctl/$1" "${@:2}"; }
run_script postinst configure ""
check "postinst (fresh install) enables the unit" grep -qx 'deb-systemd-helper enable firmware-agent.service' "$T/calls"
if [ -d /run/systemd/system ]; then
	check "postinst starts the unit (systemd running)" grep -qx 'deb-systemd-invoke start firmware-agent.service' "$T/calls"
else
	check "postinst does not start anything outside a running systemd (chroot)" bash -c "! grep -q 'invoke\|systemctl' '$T/calls'"
fi
run_script postinst configure 0.0.9
check "postinst (upgrade) keeps enablement" grep -qx 'deb-systemd-helper enable firmware-agent.service' "$T/calls"
run_script prerm remove; check "prerm exits 0" true
run_script postrm remove
check "postrm remove masks (debhelper behaviour)" grep -qx 'deb-systemd-helper mask firmware-agent.service' "$T/calls"
run_script postrm purge
check "postrm purge purges and unmasks" bash -c "grep -qx 'deb-systemd-helper purge firmware-agent.service' '$T/calls' && grep -qx 'deb-systemd-helper unmask firmware-agent.service' '$T/calls'"

# ---- dpkg-deb -x: contents are the repository's files
dpkg-deb -x "$DEB" "$T/x"
check "binary is the input" cmp -s "$T/x/usr/bin/firmware-agent" "$T/firmware-agent"
check "unit is packaging/firmware-agent.service" cmp -s "$T/x/lib/systemd/system/firmware-agent.service" "$PKGDIR/firmware-agent.service"
check "config is the Buildroot overlay's agent.toml" cmp -s "$T/x/etc/firmware-agent/agent.toml" \
	"$REPO/buildroot-overlay/board/raspberrypi5/rootfs-overlay/etc/firmware-agent/agent.toml"

# ---- reproducible with SOURCE_DATE_EPOCH
mkdir "$T/again"
DEB2=$(SOURCE_DATE_EPOCH=1700000000 bash "$PKGDIR/build-deb.sh" "$T/firmware-agent" "$VER" "$T/again")
check "reproducible with SOURCE_DATE_EPOCH" cmp -s "$DEB" "$DEB2"

# ---- bad input
expect_fail() { local what=$1 pat=$2; shift 2; local rc=0
	bash "$PKGDIR/build-deb.sh" "$@" > /dev/null 2> "$T/err" || rc=$?
	if [ $rc -ne 0 ] && grep -q "$pat" "$T/err"; then ok "$what -> $(cat "$T/err")"; else bad "$what (rc=$rc: $(cat "$T/err"))"; fi; }
expect_fail "x86-64 binary rejected" "not aarch64" "$(command -v dpkg-deb)" 1.0 "$T"
expect_fail "non-ELF rejected" "not an ELF" "$PKGDIR/README.md" 1.0 "$T"
expect_fail "bad version rejected" "not a valid Debian version" "$T/firmware-agent" "v1 0" "$T"
expect_fail "missing binary rejected" "no such file" "$T/nope" 1.0 "$T"

# With the real agent, if it has been built.
REAL="$REPO/target/aarch64-unknown-linux-musl/release/firmware-agent"
if [ -x "$REAL" ]; then
	mkdir "$T/real"
	check "builds with the real aarch64 agent" bash -c "bash \"$PKGDIR/build-deb.sh\" \"$REAL\" $VER \"$T/real\" >/dev/null"
fi

echo "deb: $PASS passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
