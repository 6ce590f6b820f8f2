//! Builds the eBPF probes (ebpf/probes) for the BPF target matching this build's target
//! endianness and architecture, with the dated nightly named in ebpf/nightly-toolchain.
//! Two objects are built, one per transport (the probes crate's `perf` feature), stripped of
//! their DWARF and both embedded in the agent, which picks one at start-up (see
//! `probes::object`): `OUT_DIR/firmware-agent-ebpf.ringbuf` and `OUT_DIR/firmware-agent-ebpf.perf`.

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
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR not set")?);
    // aya-build relays every line the inner cargo prints as a cargo warning; keep its
    // progress lines out of every build's output (errors and compiler warnings still show).
    // SAFETY: build scripts are single-threaded here; the variable is for the child cargo.
    unsafe { std::env::set_var("CARGO_TERM_QUIET", "true") };
    // aya-build writes the binary to OUT_DIR under its name: build one transport, strip it
    // into its own name, then the other.
    for (transport, features) in [("ringbuf", &[][..]), ("perf", &["perf"][..])] {
        let package = aya_build::Package {
            name: "firmware-agent-ebpf",
            root_dir: probes_dir,
            features,
            ..Default::default()
        };
        aya_build::build_ebpf([package], aya_build::Toolchain::Custom(&toolchain))
            .with_context(|| format!("building the {transport} probes object"))?;
        let built = out_dir.join("firmware-agent-ebpf");
        let object =
            std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
        let stripped = strip_dwarf(&object)
            .with_context(|| format!("dropping DWARF from the {transport} eBPF object"))?;
        let named = out_dir.join(format!("firmware-agent-ebpf.{transport}"));
        std::fs::write(&named, stripped).with_context(|| format!("writing {}", named.display()))?;
    }
    Ok(())
}

/// The probes are built with debug info because bpf-linker makes BTF (`.BTF`, `.BTF.ext`) from
/// it; the DWARF itself (`.debug_*` and their relocations, ~80 % of the object) is of no use to
/// the loader, but it would be embedded in the agent and aya's parser would read every one of
/// its relocations at start-up. Returns the ELF64 relocatable object with those sections
/// emptied (kept as zero-size `SHT_NOBITS`, so section and symbol indices do not change) and
/// their bytes left out of the file; every other section is copied as it is.
fn strip_dwarf(elf: &[u8]) -> anyhow::Result<Vec<u8>> {
    const SHT_RELA: u32 = 4;
    const SHT_NOBITS: u32 = 8;
    const SHT_REL: u32 = 9;
    anyhow::ensure!(
        elf.len() >= 64 && elf[..4] == *b"\x7fELF",
        "not an ELF file"
    );
    anyhow::ensure!(elf[4] == 2, "not ELF64");
    let le = match elf[5] {
        1 => true,
        2 => false,
        other => anyhow::bail!("unknown ELF data encoding {other}"),
    };
    let bytes = |at: usize, n: usize| -> anyhow::Result<&[u8]> {
        elf.get(at..at.checked_add(n).context("offset overflow")?)
            .with_context(|| format!("ELF truncated at {at}+{n}"))
    };
    let uint = |at: usize, n: usize| -> anyhow::Result<u64> {
        let b = bytes(at, n)?;
        let mut v = 0u64;
        for i in 0..n {
            let byte = if le { b[n - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Ok(v)
    };
    let put = |buf: &mut [u8], at: usize, n: usize, v: u64| {
        for i in 0..n {
            let shift = 8 * if le { i } else { n - 1 - i };
            buf[at + i] = (v >> shift) as u8;
        }
    };
    anyhow::ensure!(
        uint(0x38, 2)? == 0,
        "program headers in a relocatable object"
    );
    let shoff = usize::try_from(uint(0x28, 8)?)?;
    let shentsize = usize::try_from(uint(0x3a, 2)?)?;
    let shnum = usize::try_from(uint(0x3c, 2)?)?;
    let shstrndx = usize::try_from(uint(0x3e, 2)?)?;
    anyhow::ensure!(
        shentsize == 64 && shnum > 0 && shstrndx < shnum,
        "odd section table"
    );
    let mut headers = bytes(shoff, shnum * shentsize)?.to_vec();
    let field = |h: &[u8], at: usize, n: usize| -> u64 {
        let mut v = 0u64;
        for i in 0..n {
            let byte = if le { h[at + n - 1 - i] } else { h[at + i] };
            v = (v << 8) | u64::from(byte);
        }
        v
    };
    let hdr = |i: usize| &headers[i * 64..(i + 1) * 64];
    let strtab = {
        let h = hdr(shstrndx);
        bytes(
            usize::try_from(field(h, 24, 8))?,
            usize::try_from(field(h, 32, 8))?,
        )?
    };
    let name = |i: usize| -> anyhow::Result<&[u8]> {
        let at = usize::try_from(field(hdr(i), 0, 4))?;
        let rest = strtab.get(at..).context("section name outside .shstrtab")?;
        Ok(&rest[..rest
            .iter()
            .position(|&b| b == 0)
            .context("unterminated name")?])
    };
    let dwarf: Vec<bool> = (0..shnum)
        .map(|i| Ok(name(i)?.starts_with(b".debug")))
        .collect::<anyhow::Result<_>>()?;
    let drop: Vec<bool> = (0..shnum)
        .map(|i| {
            let h = hdr(i);
            let ty = field(h, 4, 4) as u32;
            let target = usize::try_from(field(h, 44, 4)).unwrap_or(usize::MAX);
            dwarf[i] || ((ty == SHT_REL || ty == SHT_RELA) && dwarf.get(target) == Some(&true))
        })
        .collect();
    // The header, then each kept section's bytes (aligned as before), then the section table.
    let mut out = elf[..64].to_vec();
    for i in 1..shnum {
        let h = &mut headers[i * 64..(i + 1) * 64];
        let (ty, offset, size, align) = (
            field(h, 4, 4) as u32,
            field(h, 24, 8),
            field(h, 32, 8),
            field(h, 48, 8),
        );
        if drop[i] {
            put(h, 4, 4, u64::from(SHT_NOBITS));
            put(h, 24, 8, out.len() as u64);
            put(h, 32, 8, 0);
            continue;
        }
        if ty == SHT_NOBITS {
            put(h, 24, 8, out.len() as u64);
            continue;
        }
        let align = usize::try_from(align.max(1))?;
        out.resize(out.len().next_multiple_of(align), 0);
        put(h, 24, 8, out.len() as u64);
        out.extend_from_slice(bytes(usize::try_from(offset)?, usize::try_from(size)?)?);
    }
    out.resize(out.len().next_multiple_of(8), 0);
    let new_shoff = out.len() as u64;
    out.extend_from_slice(&headers);
    put(&mut out, 0x28, 8, new_shoff);
    Ok(out)
}
