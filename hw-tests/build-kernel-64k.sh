#!/usr/bin/env bash
# Build a minimal arm64 kernel with 64K pages (Debian ships no 64K arm64 image)
# from Debian's linux-source-6.12 (the same version as the 16K/4K kernels), for
# the e2e-64k cell. Cross-compiled with gcc-aarch64-linux-gnu.
#
# Usage: hw-tests/build-kernel-64k.sh
#   Prints KERNEL_DIR=<dir> on the last line: a directory shaped like an
#   extracted linux-image package (boot/vmlinuz-<ver>, lib/modules/<ver>/
#   modules.builtin), so mkinitramfs.sh and boot.sh take it like the others.
#
# Config: `make allnoconfig` + hw-tests/kernel/arm64-64k.config (everything
# built in, no modules, no BTF). The result is cached in
# $HW_TESTS_CACHE/k64/<key>/ where <key> is the sha256 of the fragment, the
# source package name, the cross prefix and RECIPE (below); a second run only
# prints the path.
#
# Host packages: gcc-aarch64-linux-gnu flex bison bc libssl-dev libelf-dev make
# (listed in hw-tests/apt-packages-64k.txt).
set -euo pipefail

die() { echo "build-kernel-64k: ERROR: $*" >&2; exit 1; }
log() { echo "build-kernel-64k: $*" >&2; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${HW_TESTS_CACHE:-/var/cache/firmware-agent-hw}"
FRAG="$HERE/kernel/arm64-64k.config"
SRCPKG="${HW_TESTS_K64_SRCPKG:-linux-source-6.12}"
CROSS="${CROSS_COMPILE:-aarch64-linux-gnu-}"
[ -f "$FRAG" ] || die "$FRAG missing"

for tool in "${CROSS}gcc" flex bison bc make dpkg-deb tar xz; do
    command -v "$tool" >/dev/null || die "'$tool' not found (apt-get install \$(cat hw-tests/apt-packages-64k.txt))"
done

# The private arm64 apt index of fetch-kernels.sh (run it first) also lists
# the arch:all linux-source package.
APTDIR="$CACHE/apt"
[ -f "$APTDIR/etc/sources.list" ] || "$HERE/fetch-kernels.sh" >/dev/null
APT_OPTS=(
    -o "Dir::Etc::sourcelist=$APTDIR/etc/sources.list" -o "Dir::Etc::sourceparts=-"
    -o "Dir::Etc::preferencesparts=$APTDIR/etc/preferences.d" -o "Dir::Etc::parts=$APTDIR/etc/apt.conf.d"
    -o "Dir::State=$APTDIR/state" -o "Dir::State::status=$APTDIR/state/status"
    -o "Dir::Cache=$APTDIR/cache" -o "APT::Architecture=arm64" -o "APT::Architectures::=arm64"
    -o "Acquire::Languages=none" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root"
)
DEBS="$CACHE/debs"; mkdir -p "$DEBS"
ver="$(apt-cache "${APT_OPTS[@]}" show --no-all-versions "$SRCPKG" 2>/dev/null | awk '/^Version:/{print $2; exit}')"
if [ -z "$ver" ]; then
    # offline / index gone: use a cached .deb if there is one
    # shellcheck disable=SC2012  # Debian package file names, sorted by version
    deb="$(ls "$DEBS/${SRCPKG}_"*_all.deb 2>/dev/null | sort -V | tail -n1 || true)"
    [ -n "$deb" ] || die "$SRCPKG not in the arm64 index and no cached .deb in $DEBS"
else
    deb="$DEBS/${SRCPKG}_${ver//:/%3a}_all.deb"
    if ! { [ -s "$deb" ] && dpkg-deb --info "$deb" >/dev/null 2>&1; }; then
        log "downloading $SRCPKG=$ver"
        (cd "$DEBS" && apt-get "${APT_OPTS[@]}" -q download "$SRCPKG=$ver" >&2) || die "apt-get download $SRCPKG=$ver failed"
    fi
fi
[ -s "$deb" ] || die "expected $deb"

# Bump RECIPE when a change to this script changes the built kernel (comment edits don't).
RECIPE=1
KEY="$( { cat "$FRAG"; basename "$deb"; echo "$CROSS recipe=$RECIPE"; } | sha256sum | cut -c1-16)"
K64="$CACHE/k64"
DEST="$K64/$KEY"
if [ -f "$DEST/.done" ]; then
    log "cached: $DEST ($(cat "$DEST/.done"))"
    echo "KERNEL_DIR=$DEST"
    exit 0
fi

# --- source tree (unpacked once per source package) -----------------------------
SRC="$K64/src/$(basename "$deb" .deb)"
if [ ! -f "$SRC/.unpacked" ]; then
    log "unpacking $(basename "$deb")"
    rm -rf "$SRC" "$SRC.tmp"; mkdir -p "$SRC.tmp"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$SRC.tmp" --wildcards './usr/src/linux-source-*.tar.xz'
    tarball="$(ls "$SRC.tmp"/usr/src/linux-source-*.tar.xz)"
    tar -xJf "$tarball" -C "$SRC.tmp"
    rm -f "$tarball"
    tree="$(find "$SRC.tmp" -mindepth 1 -maxdepth 1 -type d -name 'linux-source-*')"
    [ -f "$tree/Makefile" ] || die "no kernel tree in $deb"
    mv "$tree" "$SRC"; rm -rf "$SRC.tmp"
    touch "$SRC/.unpacked"
fi

# --- configure + build out of tree ------------------------------------------------
BUILD="$K64/build-$KEY"
mkdir -p "$BUILD"
MK=(make -C "$SRC" O="$BUILD" ARCH=arm64 CROSS_COMPILE="$CROSS" -j"$(nproc)")
start=$(date +%s)
log "configuring (allnoconfig + $(basename "$FRAG")) in $BUILD"
"${MK[@]}" -s allnoconfig
(cd "$BUILD" && "$SRC/scripts/kconfig/merge_config.sh" -m -O "$BUILD" "$BUILD/.config" "$FRAG" >/dev/null)
"${MK[@]}" -s olddefconfig
missing=()
while IFS= read -r l; do
    case "$l" in CONFIG_*=*) grep -qx "$l" "$BUILD/.config" || missing+=("$l") ;; esac
done <"$FRAG"
[ "${#missing[@]}" -eq 0 ] || die "options not in the final .config (dependency missing?): ${missing[*]}"
log "building Image with $(nproc) jobs"
"${MK[@]}" Image >"$BUILD/build.log" 2>&1 || { tail -n 40 "$BUILD/build.log" >&2; die "kernel build failed (log: $BUILD/build.log)"; }
secs=$(( $(date +%s) - start ))
KREL="$("${MK[@]}" -s kernelrelease)"

rm -rf "$DEST.tmp"; mkdir -p "$DEST.tmp/boot" "$DEST.tmp/lib/modules/$KREL/kernel"
cp "$BUILD/arch/arm64/boot/Image" "$DEST.tmp/boot/vmlinuz-$KREL"
cp "$BUILD/.config" "$DEST.tmp/boot/config-$KREL"
# everything is built in: tell mkinitramfs.sh so it doesn't look for virtio_net.ko
{ [ -f "$BUILD/modules.builtin" ] && cat "$BUILD/modules.builtin"; echo "kernel/drivers/net/virtio_net.ko"; } \
    | sort -u >"$DEST.tmp/lib/modules/$KREL/modules.builtin"
echo "kernel=$KREL build_seconds=$secs jobs=$(nproc) src=$(basename "$deb")" >"$DEST.tmp/.done"
rm -rf "$DEST"; mv "$DEST.tmp" "$DEST"
rm -rf "$BUILD" # ~0.5 GB of objects; a new key builds in a new directory anyway
log "built $KREL in ${secs}s -> $DEST"
echo "KERNEL_DIR=$DEST"
