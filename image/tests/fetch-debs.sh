#!/usr/bin/env bash
# Download the arm64 Debian packages the synthetic test image is built from,
# with a private apt configuration (no change to the host's apt setup, no root
# needed): busybox-static (bookworm), the 16K-page kernel (bookworm-backports),
# and util-linux + libc6 + libcap-ng0 for setpriv (least-privilege boot).
# Prints the directory holding the .debs.
. "$(dirname "$0")/common.sh"
need apt-get
A="$FA_IMAGE_CACHE/apt"
D="$FA_IMAGE_CACHE/debs"
mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/etc" "$D"
touch "$A/status"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
KEYRING=${DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
cat > "$A/etc/sources.list" <<SRC
deb [arch=arm64 signed-by=$KEYRING] $MIRROR bookworm main
deb [arch=arm64 signed-by=$KEYRING] $MIRROR bookworm-backports main
SRC
O=(-o APT::Architecture=arm64 -o APT::Architectures::=arm64
   -o Dir::Etc::SourceList="$A/etc/sources.list" -o Dir::Etc::SourceParts=/nonexistent
   -o Dir::State::Lists="$A/lists" -o Dir::Cache="$A/cache" -o Dir::State::status="$A/status"
   -o Debug::NoLocking=1 -o APT::Sandbox::User="$(id -un)" -o Acquire::Languages=none
   -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false)
# Refresh the package lists at most once a day.
if [ -z "$(find "$A/lists" -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
	apt-get "${O[@]}" -qq update >&2
fi
KPKG=${KERNEL_PACKAGE:-$(apt-cache "${O[@]}" pkgnames linux-image-6.12 \
	| grep -E '^linux-image-6\.12\.[0-9]+\+deb12-arm64-16k-unsigned$' | sort -V | tail -1)}
[ -n "$KPKG" ] || die "no linux-image-6.12.*-arm64-16k-unsigned in bookworm-backports"
cd "$D"
for p in busybox-static util-linux libc6 libcap-ng0 "$KPKG"; do
	if ! ls "${p}_"*_arm64.deb >/dev/null 2>&1 || [ -n "${FA_REFRESH:-}" ]; then
		apt-get "${O[@]}" -qq download "$p" >&2
	fi
done
ls "${KPKG}_"*_arm64.deb >/dev/null
# --systemd: also systemd + udev + kmod + dash and their dependency closure (for the
# systemd boot of run.sh), in $D/systemd/.
if [ "${1:-}" = --systemd ]; then
	mkdir -p "$D/systemd"; cd "$D/systemd"
	PKGS=$(apt-cache "${O[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
		--no-breaks --no-replaces --no-enhances systemd udev kmod dash base-files \
		| grep -E '^[a-z0-9]' | sort -u)
	missing=()
	for p in $PKGS; do ls "${p}_"*.deb >/dev/null 2>&1 || missing+=("$p"); done
	[ ${#missing[@]} -eq 0 ] || apt-get "${O[@]}" -qq download "${missing[@]}" >&2
fi
echo "$D"
