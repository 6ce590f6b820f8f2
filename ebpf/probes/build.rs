//! Re-run when bpf-linker changes: it is the linker of this crate's binaries.
//!
//! `--disable-expand-memcpy-in-order`: bpf-linker passes LLVM `-bpf-expand-memcpy-in-order` by
//! default, which sets the BPF backend's store limits for memset/memcpy/memmove to 0, so every
//! zeroing (a `[0; N]` array, a struct with padding: 3 bytes and up) became a call to
//! compiler-builtins' byte-loop `memset`, a BPF-to-BPF function. The kernel JITs a program with
//! calls function by function and keeps each function as its own program allocation, whole
//! pages: 9 programs were allocated 3 times each (37 allocations for 18 programs; 592 kB on a
//! 16K-page kernel, 164 kB on 4K, hw-tests `vm.progs`). Without the flag LLVM expands them
//! into stores (up to 128) like any other target.
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
    println!("cargo:rustc-link-arg=--disable-expand-memcpy-in-order");
}
