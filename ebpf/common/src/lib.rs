//! Records the probes write into ring buffers, the values they keep in maps, the configuration
//! user space hands to them, and the contract both sides share (record kinds, rings, programs,
//! families, counter slots).
//!
//! Everything here is `#[repr(C)]`, has no implicit padding (explicit `_pad` fields, `u32` flags
//! instead of `bool`) and ring records start with the same [`EventHeader`], so one definition
//! serves the BPF program that writes it and the agent that reads it. The crate is `no_std` for
//! the BPF target; the `user` feature adds aya `Pod` impls and serde.
#![no_std]

mod contract;
mod offsets;
mod records;
mod signals;
#[cfg(feature = "user")]
mod user;

pub use contract::*;
pub use offsets::*;
pub use records::*;
pub use signals::*;

#[cfg(feature = "user")]
pub use user::read_record;
