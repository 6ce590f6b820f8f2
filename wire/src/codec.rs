//! Framing: a schema-version varint, then the postcard message. Decoding checks the version
//! before touching the body, so a future schema is rejected by name, not as garbage.

use alloc::vec::Vec;

use crate::{Message, SCHEMA_VERSION};

/// Why a payload was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Zero bytes.
    Empty,
    /// The version prefix itself is not a valid varint.
    BadVersion,
    /// A schema version this build does not know.
    UnknownVersion { found: u16 },
    /// The body is not a valid message of this schema.
    Malformed { reason: &'static str },
    /// A valid message followed by extra bytes.
    TrailingBytes { extra: usize },
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Empty => write!(f, "empty payload"),
            Self::BadVersion => write!(f, "payload does not start with a schema version"),
            Self::UnknownVersion { found } => {
                write!(
                    f,
                    "unknown schema version {found} (this build knows {SCHEMA_VERSION})"
                )
            }
            Self::Malformed { reason } => write!(f, "malformed body: {reason}"),
            Self::TrailingBytes { extra } => write!(f, "{extra} trailing bytes after the message"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}

/// Encodes `msg` with the current schema version.
pub fn encode(msg: &Message) -> Result<Vec<u8>, postcard::Error> {
    let mut out = Vec::with_capacity(256);
    encode_into(msg, &mut out)?;
    Ok(out)
}

/// Appends the framed `msg` to `out` (lets a caller reuse one buffer).
pub fn encode_into(msg: &Message, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
    // Straight into `out`: no intermediate buffers.
    let buf = postcard::to_extend(&SCHEMA_VERSION, core::mem::take(out))?;
    *out = postcard::to_extend(msg, buf)?;
    Ok(())
}

/// Decodes one payload, refusing unknown versions and trailing bytes.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let (version, body) =
        postcard::take_from_bytes::<u16>(bytes).map_err(|_| DecodeError::BadVersion)?;
    if version != SCHEMA_VERSION {
        return Err(DecodeError::UnknownVersion { found: version });
    }
    let (msg, rest) =
        postcard::take_from_bytes::<Message>(body).map_err(|e| DecodeError::Malformed {
            reason: postcard_reason(&e),
        })?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { extra: rest.len() });
    }
    Ok(msg)
}

fn postcard_reason(e: &postcard::Error) -> &'static str {
    use postcard::Error as E;
    match e {
        E::DeserializeUnexpectedEnd => "unexpected end of input",
        E::DeserializeBadVarint => "bad varint",
        E::DeserializeBadBool => "bad bool",
        E::DeserializeBadChar => "bad char",
        E::DeserializeBadUtf8 => "bad utf-8",
        E::DeserializeBadOption => "bad option tag",
        E::DeserializeBadEnum => "unknown enum variant",
        E::DeserializeBadEncoding => "bad encoding",
        _ => "invalid data",
    }
}
