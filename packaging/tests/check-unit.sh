#!/usr/bin/env bash
# Verify packaging/firmware-agent.service with systemd-analyze (systemd >= 250):
#  - `systemd-analyze verify --root=R` in a scratch root holding the unit, a
#    stand-in /usr/bin/firmware-agent and the host's unit files: must exit 0
#    and print nothing (verify only warns on unknown keys, so output = failure)
#  - `systemd-analyze security --offline=yes`: exposure must stay <= 3.0
#  - the least-privilege settings the design relies on are present.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
UNIT="$HERE/../firmware-agent.service"
PASS=0; FAILED=0
ok() { PASS=$((PASS + 1)); echo "ok: $*"; }
bad() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
command -v systemd-analyze >/dev/null || { echo "FAIL: systemd-analyze missing (apt-get install systemd)"; exit 1; }
echo "$(systemd-analyze --version | head -1)"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
R="$T/root"
mkdir -p "$R/usr/bin" "$R/etc/systemd/system" "$R/usr/lib/systemd"
SYSUNITS=$(ls -d /usr/lib/systemd/system /lib/systemd/system 2>/dev/null | head -1)
cp -a "$SYSUNITS" "$R/usr/lib/systemd/system"
ln -s usr/lib "$R/lib"
printf '#!/bin/sh\nexit 0\n' > "$R/usr/bin/firmware-agent"; chmod 755 "$R/usr/bin/firmware-agent"
mkdir -p "$R/bin"; cp "$(readlink -f /bin/sh)" "$R/bin/sh"   # ExecStartPre=+/bin/sh
cp "$UNIT" "$R/etc/systemd/system/firmware-agent.service"

if systemd-analyze verify --root="$R" firmware-agent.service > "$T/verify" 2>&1 && [ ! -s "$T/verify" ]; then
	ok "systemd-analyze verify: clean"
else
	bad "systemd-analyze verify: $(cat "$T/verify")"
fi
# Negative control: the check must catch a broken unit.
sed 's/^Restart=on-failure/Restart=sometimes/' "$UNIT" > "$R/etc/systemd/system/firmware-agent.service"
systemd-analyze verify --root="$R" firmware-agent.service > "$T/verify2" 2>&1 || true
[ -s "$T/verify2" ] && ok "verify catches a bad value (negative control)" || bad "verify did not flag Restart=sometimes"
cp "$UNIT" "$R/etc/systemd/system/firmware-agent.service"

if systemd-analyze security --offline=yes --root="$R" firmware-agent.service > "$T/sec" 2>&1; then :; fi
score=$(sed -n 's/.*Overall exposure level for firmware-agent.service: \([0-9.]*\).*/\1/p' "$T/sec")
if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 3.0) }'; then
	ok "systemd-analyze security exposure $score (<= 3.0)"
else bad "security exposure '${score:-?}': $(tail -3 "$T/sec")"; fi

has() { grep -qx "$1" "$UNIT" && ok "unit: $1" || bad "unit lacks: $1"; }
has 'DynamicUser=yes'
has 'AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_DAC_READ_SEARCH'
has 'CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_DAC_READ_SEARCH'
has 'NoNewPrivileges=yes'
has 'ProtectSystem=strict'
has 'ProtectHome=yes'
has 'PrivateTmp=yes'
has 'Restart=on-failure'
has 'RestartPreventExitStatus=2'
has 'WantedBy=multi-user.target'
grep -q '^Wants=.*network-online.target' "$UNIT" && ok "unit: Wants=network-online.target" || bad "Wants network-online"
grep -q '^After=.*network-online.target' "$UNIT" && ok "unit: After=network-online.target" || bad "After network-online"
grep -q '^ExecStartPre=+/bin/sh -c .*perf_event_paranoid' "$UNIT" && ok "unit: lowers perf_event_paranoid 3 -> 2 before start" || bad "unit: no perf_event_paranoid step"
grep -q 'CAP_SYS_ADMIN' <(grep -v '^#' "$UNIT") && bad "unit grants CAP_SYS_ADMIN" || ok "unit: no CAP_SYS_ADMIN"
grep -qE '^User=root' "$UNIT" && bad "unit runs as root" || ok "unit: not root"

echo "unit: $PASS passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
