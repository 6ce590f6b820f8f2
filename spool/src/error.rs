//! The spool's errors: every variant names what it was doing and on which file or record, so
//! the agent can log it without more context.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file-system call failed.
    #[error("spool: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `append` was given an id not greater than the previous one (in the call, or held).
    #[error("spool: record id {id} is not greater than {floor}")]
    IdOrder { id: u64, floor: u64 },
    /// `append` was given a payload over the 16 MiB cap.
    #[error("spool: record {id} has a {len}-byte payload, over the {max}-byte cap")]
    TooLarge { id: u64, len: usize, max: u32 },
    /// `read` of an id the spool does not hold.
    #[error("spool: no live record {id}")]
    NotFound { id: u64 },
    /// `read` found a record that no longer verifies; it has been removed from the index.
    #[error(
        "spool: record {id} in {segment} at offset {offset} is corrupt ({reason}); {events} events lost"
    )]
    Corrupt {
        id: u64,
        segment: PathBuf,
        offset: u64,
        /// On-disk bytes of the record, header included.
        bytes: u64,
        events: u32,
        kind: u8,
        reason: &'static str,
    },
}

impl SpoolError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }
}
