//! The hub's library: what it makes of each MQTT message ([`intake`]: topic checks, decoding,
//! commands ignored, duplicates recognised), the per-device delivery [`totals`] over streams of
//! batches ([`seqset`] keeps the seqs seen), and rendering as terminal-safe text ([`escape`]) or
//! JSON ([`render`], [`report`]), and Home Assistant MQTT discovery ([`ha`]). For `hub serve`:
//! the [`fleet`] as the web view shows it, the history ([`store`], behind one trait, SQLite by
//! default; [`history`] renders stored records; [`timespec`] reads query times), the pages
//! ([`web`]) and the Prometheus page ([`exporter`]). Everything here is tested without a
//! broker; the MQTT and HTTP side is the binary's (`src/main.rs`, `src/app/`). `testkit`
//! (feature `testkit`) is test support for other crates' tests, not part of the hub.

pub mod escape;
pub mod exporter;
pub mod fleet;
pub mod ha;
pub mod history;
pub mod intake;
pub mod render;
pub mod report;
pub mod seqset;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod timespec;
pub mod totals;
pub mod web;

pub use escape::escape;
pub use intake::{Counters, Hub, Outcome, Rejection};
pub use totals::{Arrival, Gap, StreamKey, Summary, Totals};
