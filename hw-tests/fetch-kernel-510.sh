#!/usr/bin/env bash
# Fetch Debian bullseye's arm64 kernel (5.10, 4K pages: the generation older Raspberry Pi
# fleets run) and unpack it into the hw-tests cache, the same way fetch-kernels.sh does the
# bookworm ones: a private apt configuration (own sources.list, state and cache, arm64 only),
# so the host's apt/dpkg setup is never touched. Cached: a .deb already in the cache is not
# downloaded again; the index is re-read once a day (HW_TESTS_APT_REFRESH=1 forces, =0 never
# if present).
#
# Usage: hw-tests/fetch-kernel-510.sh     (prints KERNEL_DIR=... last)
# Env:   HW_TESTS_CACHE        cache dir (default /var/cache/firmware-agent-hw)
#        HW_TESTS_MIRROR       Debian mirror (default http://deb.debian.org/debian)
#        HW_TESTS_SECURITY     security mirror (default http://deb.debian.org/debian-security)
#        HW_TESTS_KVER_510     kernel package regex (default 5\.10\.0-[0-9]+)
#
# Output: $CACHE/kernels/510 -> symlink to the versioned dir ({boot/vmlinuz-*,lib/modules/*}),
#         $CACHE/versions-510.env (KVER_510=..., KPKG_510=...).
set -euo pipefail

CACHE="${HW_TESTS_CACHE:-/var/cache/firmware-agent-hw}"
MIRROR="${HW_TESTS_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${HW_TESTS_SECURITY:-http://deb.debian.org/debian-security}"
KPAT="${HW_TESTS_KVER_510:-5\.10\.0-[0-9]+}"

die() { echo "fetch-kernel-510: ERROR: $*" >&2; exit 1; }
log() { echo "fetch-kernel-510: $*" >&2; }

# shellcheck source=arm64-apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/arm64-apt.sh"
arm64_apt_init apt-bullseye "bullseye{,-updates,-security}" \
    "$MIRROR bullseye main" "$MIRROR bullseye-updates main" "$SECURITY bullseye-security main"
mkdir -p "$CACHE/kernels"

# The newest plain arm64 5.10 image (not -rt, not -cloud) whose .deb the mirror serves: an
# index can list a security upload the pool no longer (or not yet) has, so each candidate is
# tried newest first; one already in the cache wins without a download (HW_TESTS_510_FRESH=1
# ignores the cache and takes the newest served).
mapfile -t cands < <(apt-cache "${APT_OPTS[@]}" pkgnames linux-image- 2>/dev/null \
    | grep -E "^linux-image-${KPAT}-arm64-unsigned\$" | sort -V -r)
[ "${#cands[@]}" -gt 0 ] || die "no linux-image-${KPAT}-arm64-unsigned in the bullseye arm64 index"
PKG=""; deb=""; tried=()
# A kernel already in the cache wins (runs stay reproducible and offline-capable); else the
# newest the mirror serves.
for p in "${cands[@]}"; do
    [ "${HW_TESTS_510_FRESH:-0}" = 1 ] && break
    for f in "$DEBS/${p}"_*_arm64.deb; do
        if [ -s "$f" ] && dpkg-deb --info "$f" >/dev/null 2>&1; then
            log "cached:      $(basename "$f")"; PKG="$p"; deb="$f"; break 2
        fi
    done
done
[ -n "$PKG" ] || for p in "${cands[@]}"; do
    mapfile -t vers < <(apt-cache "${APT_OPTS[@]}" madison "$p" 2>/dev/null | awk -F'|' '{gsub(/ /,"",$2); print $2}' | sort -V -r -u)
    for v in "${vers[@]}"; do
        f="$DEBS/${p}_${v//:/%3a}_arm64.deb"
        if [ -s "$f" ] && dpkg-deb --info "$f" >/dev/null 2>&1; then
            log "cached:      $(basename "$f")"; PKG="$p"; deb="$f"; break 2
        fi
        log "downloading: $p=$v (arm64)"
        if (cd "$DEBS" && apt-get "${APT_OPTS[@]}" -q download "$p=$v" >&2) && [ -s "$f" ]; then
            PKG="$p"; deb="$f"; break 2
        fi
        tried+=("$p=$v")
        log "not served: $p=$v; trying the next candidate"
    done
done
[ -n "$PKG" ] || die "no 5.10 arm64 image could be downloaded (tried: ${tried[*]:-none})"
KVER="${PKG#linux-image-}"; KVER="${KVER%-unsigned}"

dir="$CACHE/kernels/$KVER"
extract_deb "$deb" "$dir"
ln -sfn "$KVER" "$CACHE/kernels/510"
ls "$dir"/boot/vmlinuz-* >/dev/null 2>&1 || die "no boot/vmlinuz-* in $dir"
ls -d "$dir"/lib/modules/* >/dev/null 2>&1 || die "no lib/modules/* in $dir"
cat >"$CACHE/versions-510.env" <<ENV
KVER_510=$KVER
KPKG_510=$(basename "$deb")
ENV
echo "5.10 kernel: $KVER ($(basename "$deb"))"
echo "KERNEL_DIR=$CACHE/kernels/510"
