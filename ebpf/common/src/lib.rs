//! Records the probes write into ring buffers, and the configuration user space hands to them.
//!
//! Everything here is `#[repr(C)]`, has no implicit padding (explicit `_pad` fields, `u32` flags
//! instead of `bool`) and starts with the same [`EventHeader`], so one definition serves the BPF
//! program that writes it and the agent that reads it. The crate is `no_std` for the BPF target;
//! the `user` feature adds aya `Pod` impls and serde.
#![no_std]

mod offsets;
mod records;
#[cfg(feature = "user")]
mod user;

pub use offsets::*;
pub use records::*;

#[cfg(feature = "user")]
pub use user::read_record;
