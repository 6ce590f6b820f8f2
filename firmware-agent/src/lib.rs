//! The firmware agent as a library, so the binary, the tests and the benches share one
//! implementation. `main.rs` only wires these together.

pub mod agent;
pub mod batch;
pub mod cgroup;
pub mod config;
pub mod counters;
pub mod decode;
pub mod health;
pub mod kernel;
pub mod metrics;
pub mod outbox;
pub mod perfbuf;
pub mod pipeline;
pub mod probes;
pub mod procs;
pub mod publish;
pub mod queue;
pub mod residency;
pub mod ringbuf;
pub mod selftest;
pub mod summary;
pub mod tracefs;
pub mod transport;
pub mod wakeups;
