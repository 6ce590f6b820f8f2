#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are not installed yet (apt-get, no
# recommends, one `apt-get update` only when something is missing). Run as root. Used by
# setup.sh and the benchmarks, which install what they alone need.
#   scripts/apt-ensure.sh PKG...
set -euo pipefail
missing=()
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || exit 0
printf 'apt-ensure: apt-get install %s\n' "${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
