//! Builds the eBPF probes (ebpf/probes) for the BPF target matching this build's target
//! endianness and architecture, with the dated nightly named in ebpf/nightly-toolchain.
//! The object is embedded in the agent (see `probes::object`).

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?;
    let root = std::path::Path::new(&manifest_dir).join("..");
    let pin = root.join("ebpf/nightly-toolchain");
    println!("cargo::rerun-if-changed={}", pin.display());
    println!("cargo::rerun-if-env-changed=EBPF_TOOLCHAIN");
    let toolchain = match std::env::var("EBPF_TOOLCHAIN") {
        Ok(t) => t,
        Err(_) => std::fs::read_to_string(&pin)
            .with_context(|| format!("reading the eBPF toolchain pin {}", pin.display()))?
            .trim()
            .to_owned(),
    };
    let probes_dir = root.join("ebpf/probes");
    let probes_dir = probes_dir
        .to_str()
        .context("non-UTF-8 path to ebpf/probes")?;
    let package = aya_build::Package {
        name: "firmware-agent-ebpf",
        root_dir: probes_dir,
        ..Default::default()
    };
    // aya-build relays every line the inner cargo prints as a cargo warning; keep its
    // progress lines out of every build's output (errors and compiler warnings still show).
    // SAFETY: build scripts are single-threaded here; the variable is for the child cargo.
    unsafe { std::env::set_var("CARGO_TERM_QUIET", "true") };
    aya_build::build_ebpf([package], aya_build::Toolchain::Custom(&toolchain))
}
