#!/usr/bin/env bash
# Builds the C baseline (consumer, bindgen) for the arm64 guests: static aarch64 binaries (the
# guests' initramfs has no libc), with Debian bookworm's arm64 libbpf, libelf and zlib
# downloaded and unpacked by hw-tests/arm64-apt.sh (private apt config, nothing installed on the
# host) and the host's aarch64-linux-gnu cross compiler. The BPF object is the same source,
# built with the arm64 kernel headers.
#
# Usage: bench/c-consumer/arm64.sh OUT_DIR     (writes OUT_DIR/consumer and OUT_DIR/bindgen)
# Env:   HW_TESTS_CACHE (default /var/cache/firmware-agent-hw), HW_TESTS_MIRROR.
# Needs: gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, linux-libc-dev-arm64-cross, clang,
#        bpftool (scripts/setup.sh installs them).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:?usage: $0 OUT_DIR}"
CACHE="${HW_TESTS_CACHE:-/var/cache/firmware-agent-hw}"
die() { echo "c-consumer/arm64: ERROR: $*" >&2; exit 1; }
log() { echo "c-consumer/arm64: $*" >&2; }

for tool in aarch64-linux-gnu-gcc clang bpftool make; do
    command -v "$tool" >/dev/null || die "'$tool' not found (bash scripts/setup.sh installs it)"
done
[ -d /usr/aarch64-linux-gnu/include/linux ] \
    || die "no arm64 kernel headers (apt-get install libc6-dev-arm64-cross linux-libc-dev-arm64-cross)"

# shellcheck source=../../hw-tests/arm64-apt.sh
. "$HERE/../../hw-tests/arm64-apt.sh"
arm64_apt_bookworm
inc=() lib=()
for pkg in libbpf-dev libelf-dev zlib1g-dev; do
    dir="$CACHE/arm64-dev/$pkg"
    extract_deb "$(fetch_deb "$pkg")" "$dir"
    inc+=("-I$dir/usr/include")
    lib+=("-L$dir/usr/lib/aarch64-linux-gnu")
done

make -s -C "$HERE" OUT="$OUT" ARCH=arm64 CC=aarch64-linux-gnu-gcc \
    BPF_INCLUDES="-I/usr/aarch64-linux-gnu/include ${inc[*]}" \
    CFLAGS="-O2 -g -Wall -Wextra ${inc[*]}" LDFLAGS="-static ${lib[*]}"
for b in consumer bindgen; do
    file -b "$OUT/$b" | grep -q 'ARM aarch64.*statically linked' || die "$OUT/$b is not a static aarch64 binary: $(file -b "$OUT/$b")"
done
log "built $OUT/consumer and $OUT/bindgen (static aarch64)"
