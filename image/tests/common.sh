# Sourced by image/tests/*.sh.  Shared paths and helpers.
set -euo pipefail
TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$TESTS_DIR/../.." && pwd)
INJECT="$REPO/image/inject.py"
OVERLAY="$REPO/buildroot-overlay/board/raspberrypi5/rootfs-overlay"
# Caches live outside the repository.
if [ -z "${FA_IMAGE_CACHE:-}" ]; then
	if mkdir -p /var/cache/firmware-agent-image 2>/dev/null && [ -w /var/cache/firmware-agent-image ]; then
		FA_IMAGE_CACHE=/var/cache/firmware-agent-image
	else
		FA_IMAGE_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/firmware-agent-image"
	fi
fi
mkdir -p "$FA_IMAGE_CACHE"
PY=${PYTHON:-python3}

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
need() { for t in "$@"; do command -v "$t" >/dev/null 2>&1 || die "missing tool $t (see packaging/apt-packages.txt)"; done; }
