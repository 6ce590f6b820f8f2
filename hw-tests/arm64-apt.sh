# Sourced, not run: a private apt configuration for Debian arm64 packages, shared by
# fetch-kernels.sh, fetch-kernel-510.sh and bench/c-consumer/arm64.sh. Its own sources.list,
# state and cache under $CACHE/<name> (APT::Architecture=arm64), so the host's apt and dpkg
# setup is never touched and no `dpkg --add-architecture` is needed. It only downloads and
# unpacks; it installs nothing.
#
#   arm64_apt_init NAME 'LOG LABEL' 'deb line'...   sets APTDIR, DEBS, APT_OPTS; reads the index
#                                                   once a day (HW_TESTS_APT_REFRESH=1 forces,
#                                                   =0 never if present)
#   arm64_apt_bookworm                              arm64_apt_init for bookworm, -updates and
#                                                   -backports (HW_TESTS_MIRROR): the one index
#                                                   under $CACHE/apt, so its users cannot disagree
#   fetch_deb PKG [VERSION]   -> prints the .deb's path in $DEBS (cached, checked with dpkg-deb)
#   extract_deb DEB DIR       unpacks once (a marker names the .deb)
#
# Needs from the caller: CACHE, and die/log functions. Each 'deb line' is
# "URL SUITE COMPONENT", e.g. "http://deb.debian.org/debian bookworm main".

arm64_apt_init() {
    local name=$1 label=$2 line keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    shift 2
    local tool
    for tool in apt-get apt-cache dpkg-deb; do
        command -v "$tool" >/dev/null || die "'$tool' not found (this needs a Debian/Ubuntu host with apt)"
    done
    [ -r "$keyring" ] || die "$keyring missing (apt-get install debian-archive-keyring)"
    APTDIR="$CACHE/$name"
    DEBS="$CACHE/debs"
    mkdir -p "$APTDIR/state/lists/partial" "$APTDIR/cache/archives/partial" \
        "$APTDIR/etc/preferences.d" "$APTDIR/etc/apt.conf.d" "$DEBS"
    : >"$APTDIR/state/status" # empty dpkg status: nothing is installed, only downloaded
    : >"$APTDIR/etc/sources.list"
    for line in "$@"; do
        echo "deb [arch=arm64 signed-by=$keyring] $line" >>"$APTDIR/etc/sources.list"
    done
    APT_OPTS=(
        -o "Dir::Etc::sourcelist=$APTDIR/etc/sources.list"
        -o "Dir::Etc::sourceparts=-"
        -o "Dir::Etc::preferencesparts=$APTDIR/etc/preferences.d"
        -o "Dir::Etc::parts=$APTDIR/etc/apt.conf.d"
        -o "Dir::State=$APTDIR/state"
        -o "Dir::State::status=$APTDIR/state/status"
        -o "Dir::Cache=$APTDIR/cache"
        -o "APT::Architecture=arm64"
        -o "APT::Architectures::=arm64"
        -o "Acquire::Languages=none"
        -o "Debug::NoLocking=1"
        # apt-get download drops privileges to _apt when run as root; the private dirs are
        # owned by root, so keep root for this private setup.
        -o "APT::Sandbox::User=root"
    )
    local stamp="$APTDIR/state/updated.stamp" need_update=0 refresh="${HW_TESTS_APT_REFRESH:-auto}"
    case "$refresh" in
        1) need_update=1 ;;
        0) [ -e "$stamp" ] || need_update=1 ;;
        *) if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440 2>/dev/null)" ]; then need_update=1; fi ;;
    esac
    [ "$need_update" = 1 ] || return 0
    log "updating private arm64 package index ($label)"
    if apt-get "${APT_OPTS[@]}" -q update >&2; then
        touch "$stamp"
    elif [ -e "$stamp" ] && [ "$refresh" != 1 ]; then
        log "WARNING: apt-get update failed; continuing with the index from $(date -r "$stamp")"
    else
        die "apt-get update (arm64 $label, private config) failed; is the mirror reachable?"
    fi
}

arm64_apt_bookworm() {
    local m="${HW_TESTS_MIRROR:-http://deb.debian.org/debian}"
    arm64_apt_init apt "$m bookworm{,-updates,-backports}" \
        "$m bookworm main" "$m bookworm-updates main" "$m bookworm-backports main"
}

fetch_deb() { # PKG [VERSION] -> path of the .deb in $DEBS
    local pkg=$1 ver=${2:-} fname
    if [ -z "$ver" ]; then
        ver="$(apt-cache "${APT_OPTS[@]}" show --no-all-versions "$pkg" 2>/dev/null | awk '/^Version:/{print $2; exit}')"
    fi
    [ -n "$ver" ] || die "package $pkg not found in the arm64 index"
    fname="${pkg}_${ver//:/%3a}_arm64.deb"
    if [ -s "$DEBS/$fname" ] && dpkg-deb --info "$DEBS/$fname" >/dev/null 2>&1; then
        log "cached:      $fname"
    else
        log "downloading: $pkg=$ver (arm64)"
        (cd "$DEBS" && apt-get "${APT_OPTS[@]}" -q download "$pkg=$ver" >&2) || die "apt-get download $pkg=$ver failed"
        [ -s "$DEBS/$fname" ] || die "expected $DEBS/$fname after download"
    fi
    echo "$DEBS/$fname"
}

extract_deb() { # DEB DIR: unpacked once (a marker file names the .deb)
    local deb=$1 dir=$2
    if [ -e "$dir/.extracted" ] && [ "$(cat "$dir/.extracted")" = "$(basename "$deb")" ]; then
        return 0
    fi
    rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
    dpkg-deb -x "$deb" "$dir.tmp" || die "dpkg-deb -x $deb failed"
    basename "$deb" >"$dir.tmp/.extracted"
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
    log "extracted:   $(basename "$deb") -> $dir"
}
