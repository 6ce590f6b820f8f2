#!/usr/bin/env bash
# Static checks of the Buildroot external tree (no Buildroot checkout needed):
#  - the kernel fragment, option by option, against the configuration of
#    Debian's 16K-page arm64 kernel (/boot/config-* inside the
#    linux-image-6.12.*-arm64-16k-unsigned .deb from bookworm-backports)
#  - the external tree files and the package's .mk/Config.in: the variables
#    Buildroot requires, evaluated by GNU make against stubbed infrastructure
#  - the defconfig references files that exist and symbols that are defined
#  - the rootfs overlay's init script and config are the files image/inject.py
#    installs (and so the files the QEMU image test boots with)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EXT=$(cd "$HERE/.." && pwd)
REPO=$(cd "$EXT/.." && pwd)
PY=${PYTHON:-python3}
PASS=0; FAILED=0
ok() { PASS=$((PASS + 1)); echo "ok: $*"; }
bad() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

# ---------------------------------------------------------------- kernel fragment
FRAG="$EXT/board/raspberrypi5/linux-16k-ebpf.fragment"
DEBS=$(bash "$REPO/image/tests/fetch-debs.sh")
KDEB=$(ls "$DEBS"/linux-image-6.12.*-arm64-16k-unsigned_*_arm64.deb | sort -V | tail -1)
dpkg-deb --fsys-tarfile "$KDEB" | tar -x -C "$T" --wildcards './boot/config-*'
KCONF=$(ls "$T"/boot/config-*)
echo "reference: $(basename "$KDEB") -> $(basename "$KCONF")"
n=0
while IFS= read -r line; do
	case "$line" in
		CONFIG_*=*) opt=${line%%=*}; want=${line#*=} ;;
		"# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}; want=n ;;
		""|"#"*) continue ;;
		*) bad "fragment: unparsable line '$line'"; continue ;;
	esac
	n=$((n + 1))
	have=$(grep -E "^$opt=" "$KCONF" | cut -d= -f2- || true)
	if [ -z "$have" ]; then
		grep -qx "# $opt is not set" "$KCONF" && have=n || have=absent
	fi
	if [ "$have" = "$want" ]; then ok "fragment $opt=$want (Debian: $have)"
	elif [ "$have" = absent ]; then bad "fragment $opt: no such option in Debian's $(basename "$KCONF") (typo?)"
	else bad "fragment $opt=$want but Debian's 16K kernel has $have"; fi
done < "$FRAG"
[ "$n" -ge 20 ] && ok "fragment has $n options" || bad "fragment has only $n options"
for opt in ARM64_16K_PAGES BPF_SYSCALL BPF_JIT BPF_EVENTS KPROBES KPROBE_EVENTS FTRACE_SYSCALLS \
	TRACEPOINTS FTRACE PERF_EVENTS CGROUP_BPF DEBUG_FS TRACING; do
	grep -qx "CONFIG_$opt=y" "$FRAG" && ok "fragment sets required CONFIG_$opt" || bad "fragment lacks CONFIG_$opt=y"
done
grep -q '^CONFIG_ARM64_16K_PAGES=y' "$KCONF" && ok "reference kernel is 16K-page" || bad "reference kernel not 16K"

# ---------------------------------------------------------------- external tree
grep -qx 'name: FIRMWARE_AGENT' "$EXT/external.desc" && ok "external.desc name FIRMWARE_AGENT" || bad "external.desc"
grep -q '^desc: ' "$EXT/external.desc" && ok "external.desc desc" || bad "external.desc desc"
grep -qF '$(BR2_EXTERNAL_FIRMWARE_AGENT_PATH)/package/*/*.mk' "$EXT/external.mk" && ok "external.mk includes package/*/*.mk" || bad "external.mk"
grep -qF 'source "$BR2_EXTERNAL_FIRMWARE_AGENT_PATH/package/firmware-agent/Config.in"' "$EXT/Config.in" \
	&& ok "Config.in sources the package" || bad "Config.in"

PC="$EXT/package/firmware-agent/Config.in"
grep -qx 'config BR2_PACKAGE_FIRMWARE_AGENT' "$PC" && ok "Config.in: BR2_PACKAGE_FIRMWARE_AGENT" || bad "Config.in symbol"
grep -qP '^\tdepends on BR2_PACKAGE_HOST_RUSTC_TARGET_ARCH_SUPPORTS' "$PC" && ok "Config.in: depends on rustc arch support" || bad "Config.in depends"
grep -qP '^\tselect BR2_PACKAGE_HOST_RUSTC' "$PC" && ok "Config.in: selects host-rustc" || bad "Config.in select"
grep -qP '^\t  ' "$PC" && ok "Config.in: help text indented tab+2" || bad "Config.in help indent"

MK="$EXT/package/firmware-agent/firmware-agent.mk"
[ "$(tail -n1 "$MK")" = '$(eval $(cargo-package))' ] && ok ".mk ends with \$(eval \$(cargo-package))" || bad ".mk eval line"
head -5 "$MK" | grep -qx '# firmware-agent' && ok ".mk has the standard header" || bad ".mk header"
# Evaluate the .mk with GNU make and stubbed Buildroot infrastructure.
cat > "$T/stub.mk" <<STUB
BR2_EXTERNAL_FIRMWARE_AGENT_PATH = $EXT
BR2_PACKAGE_FIRMWARE_AGENT_EBPF_TOOLCHAIN = "nightly-test"
BR_PATH = /br/host/bin:/usr/bin
HOME = /home/builder
qstrip = \$(strip \$(subst ",,\$(1)))
cargo-package = \$(eval CARGO_PACKAGE_EVALUATED = yes)
include $MK
vars := VERSION SITE SITE_METHOD LICENSE LICENSE_FILES SUBDIR CARGO_ENV CARGO_BUILD_OPTS PRE_BUILD_HOOKS
all: ; @\$(foreach v,\$(vars),echo '\$(v)=\$(strip \$(FIRMWARE_AGENT_\$(v)))';) echo 'EVAL=\$(CARGO_PACKAGE_EVALUATED)'
STUB
if make -s --no-print-directory -f "$T/stub.mk" > "$T/vars" 2> "$T/make.err"; then
	ok ".mk parses with GNU make"
else bad ".mk does not parse: $(cat "$T/make.err")"; fi
v() { sed -n "s/^$1=//p" "$T/vars"; }
for var in VERSION SITE SITE_METHOD LICENSE LICENSE_FILES; do
	[ -n "$(v $var)" ] && ok ".mk FIRMWARE_AGENT_$var = $(v $var)" || bad ".mk lacks FIRMWARE_AGENT_$var"
done
[ "$(v EVAL)" = yes ] && ok ".mk evaluates cargo-package" || bad ".mk does not eval cargo-package"
[ "$(v SITE)" = "$REPO" ] && ok ".mk local SITE is the repository root" || bad ".mk SITE $(v SITE) != $REPO"
[ -f "$REPO/$(v SUBDIR)/Cargo.toml" ] && grep -q '^name *= *"firmware-agent"' "$REPO/$(v SUBDIR)/Cargo.toml" \
	&& ok ".mk SUBDIR $(v SUBDIR) is the firmware-agent crate" \
	|| { [ -d "$REPO/$(v SUBDIR)" ] && echo "note: $(v SUBDIR)/Cargo.toml not written yet" && ok ".mk SUBDIR $(v SUBDIR) exists" || bad ".mk SUBDIR $(v SUBDIR) missing"; }
v CARGO_ENV | grep -q 'EBPF_TOOLCHAIN=nightly-test' && ok ".mk passes EBPF_TOOLCHAIN from Kconfig" || bad ".mk EBPF_TOOLCHAIN: $(v CARGO_ENV)"
v PRE_BUILD_HOOKS | grep -q FIRMWARE_AGENT_CHECK_EBPF_TOOLS && ok ".mk checks for nightly + bpf-linker before building" || bad ".mk eBPF tool check hook"
# Run the pre-build hook the way Buildroot does ($(call HOOK) in a recipe): with
# no rustup/bpf-linker it must stop with a clear message; on a host that has
# them (like the project's machines) it must pass.
cat > "$T/hook.mk" <<STUB
BR2_EXTERNAL_FIRMWARE_AGENT_PATH = $EXT
BR_PATH = /usr/bin:/bin
qstrip = \$(strip \$(subst ",,\$(1)))
cargo-package =
include $MK
all: ; \$(foreach hook,\$(FIRMWARE_AGENT_PRE_BUILD_HOOKS),\$(if \$(findstring CHECK,\$(hook)),\$(call \$(hook))))
STUB
if HOME="$T/nohome" RUSTUP_HOME= CARGO_HOME= make -s -f "$T/hook.mk" > "$T/hook.out" 2>&1; then
	bad "eBPF tool check passed without rustup/bpf-linker"
else
	grep -q "firmware-agent: .* not found on the build host" "$T/hook.out" \
		&& ok "eBPF tool check fails clearly without the tools: $(head -1 "$T/hook.out")" || bad "eBPF tool check message: $(cat "$T/hook.out")"
fi
if command -v rustup >/dev/null && command -v bpf-linker >/dev/null; then
	if make -s -f "$T/hook.mk" BR_PATH="$PATH" > "$T/hook.out" 2>&1; then
		ok "eBPF tool check passes on this host (nightly $(cat "$REPO/ebpf/nightly-toolchain" 2>/dev/null) + rust-src + bpf-linker)"
	else bad "eBPF tool check on this host: $(cat "$T/hook.out")"; fi
fi
# License: same SPDX expression as the workspace (Buildroot spells OR as "or").
ws=$(sed -n 's/^license *= *"\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -1)
mkl=$(v LICENSE)
[ -n "$ws" ] && [ "$(echo "$ws" | sed 's/ OR / or /g')" = "$mkl" ] && ok ".mk LICENSE matches Cargo.toml ($ws)" || bad ".mk LICENSE '$mkl' vs Cargo.toml '$ws'"
for f in $(v LICENSE_FILES); do
	[ -f "$REPO/$f" ] && ok "license file $f exists" || echo "note: license file $f not in the repository yet (Buildroot's legal-info needs it)"
done

# ---------------------------------------------------------------- defconfig
DC="$EXT/configs/raspberrypi5_firmware_agent_defconfig"
grep -qx 'BR2_PACKAGE_FIRMWARE_AGENT=y' "$DC" && ok "defconfig enables the package" || bad "defconfig package"
grep -qx 'BR2_aarch64=y' "$DC" && ok "defconfig aarch64" || bad "defconfig arch"
for ref in $(grep -o '\$(BR2_EXTERNAL_FIRMWARE_AGENT_PATH)[^"]*' "$DC"); do
	p=${ref/\$(BR2_EXTERNAL_FIRMWARE_AGENT_PATH)/$EXT}
	[ -e "$p" ] && ok "defconfig reference ${ref#*)} exists" || bad "defconfig reference $ref missing"
done
grep -q '^BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES=.*linux-16k-ebpf.fragment' "$DC" && ok "defconfig uses the kernel fragment" || bad "defconfig fragment"
grep -q '^BR2_ROOTFS_OVERLAY=.*rootfs-overlay' "$DC" && ok "defconfig uses the rootfs overlay" || bad "defconfig overlay"
for sym in $(grep -o '^BR2_PACKAGE_FIRMWARE_AGENT[A-Z0-9_]*' "$DC"); do
	grep -qx "config $sym" "$PC" && ok "defconfig symbol $sym defined" || bad "defconfig symbol $sym not in Config.in"
done

# ---------------------------------------------------------------- rootfs overlay
OV="$EXT/board/raspberrypi5/rootfs-overlay"
S99="$OV/etc/init.d/S99firmware-agent"
CONF="$OV/etc/firmware-agent/agent.toml"
[ -x "$S99" ] && ok "S99firmware-agent is executable" || bad "S99firmware-agent not executable"
sh -n "$S99" && ok "S99firmware-agent: sh -n" || bad "S99firmware-agent syntax"
if command -v busybox >/dev/null; then busybox sh -n "$S99" && ok "S99firmware-agent: busybox sh -n" || bad "busybox sh syntax"; fi
"$PY" - "$CONF" <<'PYEOF' && ok "agent.toml is valid TOML with [mqtt] url/topic_prefix, no fixed device_id" || bad "agent.toml"
import sys, tomllib
c = tomllib.load(open(sys.argv[1], "rb"))
assert "device_id" not in c  # per device: card file or board serial
assert c["mqtt"]["url"].startswith(("mqtt://", "mqtts://"))
assert c["mqtt"]["topic_prefix"] == "edge"
PYEOF
# Same command line as the systemd unit.
unit_exec=$(sed -n 's/^ExecStart=//p' "$REPO/packaging/firmware-agent.service")
rc_cfg=$(sed -n 's/^CONFIG=//p' "$S99"); rc_card=$(sed -n 's/^CARD_CONFIG=//p' "$S99")
[ "$unit_exec" = "/usr/bin/firmware-agent --config $rc_cfg --card-config $rc_card" ] \
	&& ok "rc script and systemd unit run the agent with the same arguments" || bad "unit '$unit_exec' vs rc '$rc_cfg' '$rc_card'"
# The image injector installs exactly these files.
"$PY" - "$REPO" "$S99" "$CONF" <<'PYEOF' && ok "image/inject.py installs the overlay's S99firmware-agent and agent.toml" || bad "inject.py defaults"
import sys, importlib.util, pathlib
repo, s99, conf = sys.argv[1:]
spec = importlib.util.spec_from_file_location("inject", f"{repo}/image/inject.py")
m = importlib.util.module_from_spec(spec); sys.modules["inject"] = m; spec.loader.exec_module(m)
assert pathlib.Path(m.DEFAULT_INIT_SCRIPT).resolve() == pathlib.Path(s99).resolve(), m.DEFAULT_INIT_SCRIPT
assert pathlib.Path(m.DEFAULT_CONFIG).resolve() == pathlib.Path(conf).resolve(), m.DEFAULT_CONFIG
assert m.INIT_SCRIPT_PATH == "/etc/init.d/S99firmware-agent" and m.CONFIG_PATH == "/etc/firmware-agent/agent.toml"
PYEOF
if grep -qE -- '--(config|init-script)[ =]' "$REPO/image/tests/run.sh"; then
	bad "image/tests/run.sh overrides the overlay files"
else ok "image/tests/run.sh boots with the overlay files (no --config/--init-script override)"; fi

echo "buildroot-overlay: $PASS passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
