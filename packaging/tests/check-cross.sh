#!/usr/bin/env bash
# Static checks of cross.toml (Docker/Podman cannot run on the project's
# machines, so `cross build` itself is not run here; the same aarch64 musl
# build is exercised with plain cargo, see packaging/README.md):
#  - valid TOML with the aarch64-unknown-linux-musl target and a pre-build
#  - the pre-build installs rust-src and bpf-linker for the nightly pinned in
#    ebpf/nightly-toolchain (the two must not drift)
#  - RUSTUP_HOME for build.rs points where the pre-build installed rustup.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
python3 - "$REPO" <<'PY'
import pathlib, re, sys, tomllib
repo = pathlib.Path(sys.argv[1])
passed = failed = 0
def check(what, cond):
    global passed, failed
    print(("ok: " if cond else "FAIL: ") + what)
    if cond: passed += 1
    else: failed += 1
c = tomllib.loads((repo / "cross.toml").read_text())
t = c.get("target", {}).get("aarch64-unknown-linux-musl", {})
check("cross.toml parses; default-target aarch64-unknown-linux-musl",
      c.get("build", {}).get("default-target") == "aarch64-unknown-linux-musl")
pre = " && ".join(t.get("pre-build", []))
check("target.aarch64-unknown-linux-musl.pre-build present", bool(pre))
pin_file = repo / "ebpf" / "nightly-toolchain"
pin = pin_file.read_text().strip() if pin_file.exists() else None
m = re.search(r"EBPF_NIGHTLY=(\S+)", pre)
check(f"pre-build nightly {m.group(1) if m else '?'} == ebpf/nightly-toolchain {pin}",
      bool(m) and pin is not None and m.group(1) == pin)
check("pre-build installs rust-src for the nightly",
      re.search(r"rustup toolchain install \$EBPF_NIGHTLY .*--component rust-src", pre) is not None)
check("pre-build installs bpf-linker with the nightly",
      "cargo +$EBPF_NIGHTLY install bpf-linker --locked" in pre)
check("rustup and bpf-linker on the container PATH",
      "/usr/local/bin/rustup" in pre and "/usr/local/bin/bpf-linker" in pre)
env = t.get("env", {}).get("passthrough", [])
check("RUSTUP_HOME passed to the build = pre-build's", "RUSTUP_HOME=/opt/ebpf-rust/rustup" in env
      and "RUSTUP_HOME=/opt/ebpf-rust/rustup" in pre)
tc = tomllib.loads((repo / "rust-toolchain.toml").read_text())["toolchain"]
check("rust-toolchain.toml has the aarch64-unknown-linux-musl target (mounted into cross)",
      "aarch64-unknown-linux-musl" in tc.get("targets", []))
print(f"cross: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
