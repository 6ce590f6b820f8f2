#!/usr/bin/env bash
# Fetch Debian arm64 kernels (16K-page and 4K-page builds of the same 6.12
# version from bookworm-backports) plus Debian's arm64 busybox-static, and
# unpack them into a cache outside the repository.
#
# Uses a *private* apt configuration (own sources.list, state and cache dirs,
# APT::Architecture=arm64), so the host's apt/dpkg setup is never modified and
# no `dpkg --add-architecture` is needed.
#
# Idempotent: packages already in the cache are not downloaded again; a second
# run only re-reads the package index if it is older than a day
# (HW_TESTS_APT_REFRESH=1 forces a refresh, =0 never refreshes if present).
#
# Usage: hw-tests/fetch-kernels.sh
# Env:   HW_TESTS_CACHE        cache dir (default /var/cache/firmware-agent-hw)
#        HW_TESTS_MIRROR       Debian mirror (default http://deb.debian.org/debian)
#        HW_TESTS_KVER_PATTERN kernel version regex (default 6\.12\.)
#
# Output layout (stable paths used by the other scripts):
#   $CACHE/kernels/16k/{boot/vmlinuz-*,lib/modules/*}   -> symlink to versioned dir
#   $CACHE/kernels/4k/...
#   $CACHE/busybox/bin/busybox
#   $CACHE/versions.env   (KVER_16K=..., KVER_4K=..., BUSYBOX_VERSION=...)
set -euo pipefail

CACHE="${HW_TESTS_CACHE:-/var/cache/firmware-agent-hw}"
KVER_PATTERN="${HW_TESTS_KVER_PATTERN:-6\.12\.}"

die() { echo "fetch-kernels: ERROR: $*" >&2; exit 1; }
log() { echo "fetch-kernels: $*" >&2; }

# shellcheck source=arm64-apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/arm64-apt.sh"
arm64_apt_bookworm
mkdir -p "$CACHE/kernels"

# --- pick the newest 6.12 16k-unsigned image that also has a 4k twin ----------
mapfile -t cands < <(apt-cache "${APT_OPTS[@]}" pkgnames linux-image- 2>/dev/null \
    | grep -E "^linux-image-${KVER_PATTERN}[0-9A-Za-z.+~-]*-arm64-16k-unsigned\$" \
    | grep -vE -- '-(rt|cloud)-arm64-16k-unsigned$'  | sort -V -r)
[ "${#cands[@]}" -gt 0 ] || die "no linux-image-${KVER_PATTERN}*-arm64-16k-unsigned in the arm64 index (bookworm-backports)"

PKG16=""; PKG4=""; KVER16=""; KVER4=""
for p in "${cands[@]}"; do
    base="${p%-16k-unsigned}"            # linux-image-6.12.X+deb12-arm64
    four="${base}-unsigned"
    if apt-cache "${APT_OPTS[@]}" show "$four" >/dev/null 2>&1; then
        PKG16="$p"; PKG4="$four"
        KVER16="${p#linux-image-}"; KVER16="${KVER16%-unsigned}"   # 6.12.X+deb12-arm64-16k
        KVER4="${four#linux-image-}"; KVER4="${KVER4%-unsigned}"   # 6.12.X+bpo-arm64
        break
    fi
done
[ -n "$PKG16" ] || die "found 16k images (${cands[*]}) but none with a matching 4k -unsigned package"

deb16="$(fetch_deb "$PKG16")"
deb4="$(fetch_deb "$PKG4")"
debbb="$(fetch_deb busybox-static)"

extract_deb "$deb16" "$CACHE/kernels/$KVER16"
extract_deb "$deb4"  "$CACHE/kernels/$KVER4"
extract_deb "$debbb" "$CACHE/busybox-pkg"
ln -sfn "$KVER16" "$CACHE/kernels/16k"
ln -sfn "$KVER4"  "$CACHE/kernels/4k"
mkdir -p "$CACHE/busybox/bin"
install -m 0755 "$CACHE/busybox-pkg/bin/busybox" "$CACHE/busybox/bin/busybox"

for d in 16k 4k; do
    k="$CACHE/kernels/$d"
    ls "$k"/boot/vmlinuz-* >/dev/null 2>&1 || die "no boot/vmlinuz-* in $k"
    ls -d "$k"/lib/modules/* >/dev/null 2>&1 || die "no lib/modules/* in $k"
done

BBVER="$(dpkg-deb -f "$debbb" Version)"
cat >"$CACHE/versions.env" <<EOF
KVER_16K=$KVER16
KVER_4K=$KVER4
KPKG_16K=$(basename "$deb16")
KPKG_4K=$(basename "$deb4")
BUSYBOX_VERSION=$BBVER
EOF

echo "16k kernel: $KVER16 ($(basename "$deb16"))"
echo "4k kernel:  $KVER4 ($(basename "$deb4"))"
echo "busybox:    $BBVER"
echo "KERNEL_16K=$(ls "$CACHE"/kernels/16k/boot/vmlinuz-*)"
echo "KERNEL_4K=$(ls "$CACHE"/kernels/4k/boot/vmlinuz-*)"
echo "BUSYBOX=$CACHE/busybox/bin/busybox"
