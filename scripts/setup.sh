#!/usr/bin/env bash
# Installs everything the build, the demo and the tests need, idempotently. Run as root.
#   - apt: mosquitto (broker + clients), QEMU for arm64, tools for the hw-tests and packaging,
#     headless Chromium + chromedriver and Prometheus for the hub serve tests
#     and python3-jinja2 (renders the Home Assistant templates in the hub tests)
#   - rustup: the pinned stable (rust-toolchain.toml; aya 0.16 needs >= 1.98) with the musl
#     targets, and the dated nightly with rust-src that builds the eBPF object
#     (ebpf/nightly-toolchain)
#   - bpf-linker 0.13, linked against the libLLVM that ships inside that nightly, so no LLVM
#     package is needed and the LLVM versions always match
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

# --- apt -------------------------------------------------------------------------------
# chromium, chromium-driver, fonts-dejavu-core and prometheus: the hub serve tests drive a real
# headless browser and scrape the hub with a real Prometheus.
want=(mosquitto mosquitto-clients openssl qemu-system-arm cpio xz-utils file
      chromium chromium-driver fonts-dejavu-core prometheus python3-jinja2)
for extra in hw-tests/apt-packages.txt hw-tests/apt-packages-64k.txt packaging/apt-packages.txt; do
    [ -f "$extra" ] || continue
    while read -r p; do
        p=${p%%#*}; p=${p//[[:space:]]/}
        [ -n "$p" ] && want+=("$p")
    done < "$extra"
done
bash scripts/apt-ensure.sh "${want[@]}"
# The tests start their own brokers and Prometheus; packaged services are not needed.
for svc in mosquitto prometheus; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl stop "$svc" || true
    fi
done

# --- Rust toolchains -------------------------------------------------------------------
command -v rustup >/dev/null || { log "rustup is required (https://rustup.rs)"; exit 1; }
stable=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
nightly=$(tr -d '[:space:]' < ebpf/nightly-toolchain)
export RUSTUP_AUTO_INSTALL=0
log "toolchains: $stable (user space), $nightly (eBPF)"
rustup toolchain install "$stable" --profile minimal -c clippy,rustfmt \
    -t aarch64-unknown-linux-musl -t x86_64-unknown-linux-musl >/dev/null 2>&1 \
    || rustup toolchain install "$stable" --profile minimal -c clippy,rustfmt -t aarch64-unknown-linux-musl -t x86_64-unknown-linux-musl
rustup toolchain install "$nightly" --profile minimal -c rust-src,clippy,rustfmt >/dev/null 2>&1 \
    || rustup toolchain install "$nightly" --profile minimal -c rust-src,clippy,rustfmt

# --- bpf-linker against the nightly's libLLVM ------------------------------------------
sysroot=$(rustc +"$nightly" --print sysroot)
llvm_major=$(rustc +"$nightly" -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
libllvm=$(ls "$sysroot"/lib/libLLVM.so.* 2>/dev/null | head -n1)
[ -n "$libllvm" ] || { log "no libLLVM.so in $sysroot/lib"; exit 1; }
prefix=${BPF_LINKER_LLVM_PREFIX:-/opt/firmware-agent/llvm-$llvm_major}
mkdir -p "$prefix/lib"
# The link-time name, and the SONAME the loader looks for at run time (bpf-linker's RUNPATH is
# $prefix/lib), so bpf-linker also runs outside `rustup run`.
ln -sfn "$libllvm" "$prefix/lib/libLLVM.so"
ln -sfn "$libllvm" "$prefix/lib/$(basename "$libllvm")"
if ! bpf-linker --version 2>/dev/null | grep -q '0\.13\.'; then
    log "building bpf-linker 0.13 against $libllvm (LLVM $llvm_major)"
    LLVM_PREFIX="$prefix" cargo +"$stable" install bpf-linker@0.13.0 --locked --force \
        --no-default-features --features "llvm-$llvm_major"
fi
bpf-linker --version >/dev/null
log "ready: $(bpf-linker --version 2>&1 | head -n1)"
