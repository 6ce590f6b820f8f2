#!/usr/bin/env bash
# Build a gzip'd newc initramfs for the hw-tests QEMU guests.
#
# Usage: hw-tests/mkinitramfs.sh KERNEL_DIR AGENT_BINARY OUT.cpio.gz [EXTRA...]
#
#   KERNEL_DIR    an extracted Debian linux-image package, e.g.
#                 $HW_TESTS_CACHE/kernels/16k (from fetch-kernels.sh); must contain
#                 lib/modules/<ver>/kernel/...
#   AGENT_BINARY  static aarch64 firmware-agent, installed as /usr/bin/firmware-agent;
#                 pass 'none' to build an initramfs without the agent (smoke/run scenarios)
#   OUT.cpio.gz   output file
#   EXTRA         SRC:DEST  -> copy host file SRC to DEST (absolute path in the guest),
#                           e.g. agent.toml:/etc/firmware-agent/agent.toml
#                 SRC       -> copy to /usr/bin/<basename SRC> (handy for test binaries)
#
# Env: HW_TESTS_CACHE (default /var/cache/firmware-agent-hw) for the busybox
#      binary ($HW_TESTS_CACHE/busybox/bin/busybox); BUSYBOX overrides the path.
#      HW_TESTS_MODULES  space-separated module names to include (default: virtio_net);
#                        their dependencies are resolved from the modules' modinfo.
#
# Contents: /init (hw-tests/init.sh), /bin/busybox (+ /bin/sh; all other applet
# links are created at boot by `busybox --install -s`), the listed kernel modules
# (decompressed, in load order, listed in /lib/modules/<ver>/modules.load),
# /usr/bin/hwtest-marker (exec trigger, exits 0), /usr/bin/hwtest-exit3 (exits 3),
# /usr/bin/hwtest-crash (kills itself with SIGSEGV), the agent and the extras.
set -euo pipefail

die() { echo "mkinitramfs: ERROR: $*" >&2; exit 1; }

[ $# -ge 3 ] || die "usage: $0 KERNEL_DIR AGENT_BINARY|none OUT.cpio.gz [SRC[:DEST]...]"
KDIR="$1"; AGENT="$2"; OUT="$3"; shift 3

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${HW_TESTS_CACHE:-/var/cache/firmware-agent-hw}"
BUSYBOX="${BUSYBOX:-$CACHE/busybox/bin/busybox}"
MODULES="${HW_TESTS_MODULES:-virtio_net}"

for tool in cpio gzip xz find; do
    command -v "$tool" >/dev/null || die "'$tool' not found (apt-get install cpio gzip xz-utils findutils)"
done
[ -d "$KDIR" ] || die "kernel dir $KDIR does not exist (run hw-tests/fetch-kernels.sh)"
[ -x "$BUSYBOX" ] || die "busybox not found at $BUSYBOX (run hw-tests/fetch-kernels.sh or set BUSYBOX)"
[ -f "$HERE/init.sh" ] || die "$HERE/init.sh missing"

mapfile -t mdirs < <(find "$KDIR/lib/modules" -mindepth 1 -maxdepth 1 -type d 2>/dev/null)
[ "${#mdirs[@]}" -eq 1 ] || die "expected exactly one lib/modules/<ver> in $KDIR, found ${#mdirs[@]}"
MDIR="${mdirs[0]}"; KVER="$(basename "$MDIR")"

STAGE="$(mktemp -d "${TMPDIR:-/tmp}/hwtest-initramfs.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE"/{bin,sbin,usr/bin,usr/sbin,etc/firmware-agent,proc,sys,dev,tmp,run,root,hwtest,lib/modules/"$KVER"}

# --- busybox -----------------------------------------------------------------
install -m 0755 "$BUSYBOX" "$STAGE/bin/busybox"
ln -s busybox "$STAGE/bin/sh"
install -m 0755 "$HERE/init.sh" "$STAGE/init"
# exec trigger with a recognisable name (a script: comm and filename = hwtest-marker)
printf '#!/bin/sh\nexit 0\n' >"$STAGE/usr/bin/hwtest-marker"
chmod 0755 "$STAGE/usr/bin/hwtest-marker"
# exit triggers, named like the marker (comm = script name): a code, and a crash (SIGSEGV)
printf '#!/bin/sh\nexit 3\n' >"$STAGE/usr/bin/hwtest-exit3"
printf '#!/bin/sh\nkill -SEGV $$\n' >"$STAGE/usr/bin/hwtest-crash"
chmod 0755 "$STAGE/usr/bin/hwtest-exit3" "$STAGE/usr/bin/hwtest-crash"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$STAGE/etc/passwd"
printf 'root:x:0:\n' >"$STAGE/etc/group"

# --- kernel modules (dependency order from each module's modinfo 'depends=') --
find_mod() { # name -> path (.ko, .ko.xz, .ko.zst, .ko.gz); '-' and '_' are equivalent
    local n="$1" alt
    alt="$(echo "$n" | tr _ -)"
    find "$MDIR/kernel" \( -name "$n.ko*" -o -name "$alt.ko*" \) -print -quit
}
decompress_to() { # src dst
    case "$1" in
        *.ko.xz)  xz -dc "$1" >"$2" ;;
        *.ko.zst) zstd -qdc "$1" >"$2" ;;
        *.ko.gz)  gzip -dc "$1" >"$2" ;;
        *.ko)     cp "$1" "$2" ;;
        *) die "unknown module format: $1" ;;
    esac
}
declare -A SEEN=()
ORDER=()
add_mod() { # depth-first: dependencies first
    local n="$1" src dst deps d
    [ -n "${SEEN[$n]:-}" ] && return 0
    SEEN[$n]=1
    grep -qE "/$n\.ko|/$(echo "$n" | tr _ -)\.ko" "$MDIR/modules.builtin" 2>/dev/null && {
        echo "mkinitramfs: $n is built in to $KVER" >&2; return 0; }
    src="$(find_mod "$n")"
    [ -n "$src" ] || die "module $n not found under $MDIR/kernel"
    dst="$STAGE/lib/modules/$KVER/$n.ko"
    decompress_to "$src" "$dst"
    deps="$(tr '\0' '\n' <"$dst" | sed -n 's/^depends=//p' | head -n1)"
    for d in ${deps//,/ }; do add_mod "$d"; done
    ORDER+=("$n.ko")
}
for m in $MODULES; do add_mod "$m"; done
printf '%s\n' "${ORDER[@]}" >"$STAGE/lib/modules/$KVER/modules.load"
echo "mkinitramfs: kernel $KVER modules (load order): ${ORDER[*]:-none}" >&2

# --- agent ---------------------------------------------------------------------
if [ "$AGENT" != none ]; then
    [ -f "$AGENT" ] || die "agent binary $AGENT not found"
    if command -v file >/dev/null; then
        desc="$(file -b "$AGENT")"
        case "$desc" in *aarch64*) ;; *) die "agent $AGENT is not an aarch64 binary: $desc" ;; esac
        case "$desc" in *"statically linked"*|*"static-pie linked"*) ;;
            *) echo "mkinitramfs: WARNING: agent does not look static ($desc); the initramfs has no libc" >&2 ;; esac
    fi
    install -m 0755 "$AGENT" "$STAGE/usr/bin/firmware-agent"
fi

# --- extras ----------------------------------------------------------------------
for e in "$@"; do
    if [[ "$e" == *:/* ]]; then src="${e%%:/*}"; dst="/${e#*:/}"; else src="$e"; dst="/usr/bin/$(basename "$e")"; fi
    [ -f "$src" ] || die "extra file $src not found"
    mkdir -p "$STAGE$(dirname "$dst")"
    cp "$src" "$STAGE$dst"
    if [ -x "$src" ]; then chmod 0755 "$STAGE$dst"; else chmod 0644 "$STAGE$dst"; fi
    echo "mkinitramfs: extra $src -> $dst" >&2
done

# /dev/console for the kernel's initial console (the kernel's built-in initramfs
# normally has one too; creating it needs root, so it's optional).
mknod -m 600 "$STAGE/dev/console" c 5 1 2>/dev/null || true

mkdir -p "$(dirname "$OUT")"
(cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) | gzip -6 >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "mkinitramfs: wrote $OUT ($(du -h "$OUT" | cut -f1), kernel $KVER)" >&2
