//! Empty library target: it lets the agent's build script depend on this crate, so cargo
//! rebuilds the agent when the probes change. The programs are in the binary target.
#![no_std]
