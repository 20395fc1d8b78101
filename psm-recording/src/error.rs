//! The crate's one error type.

use std::fmt;

/// Where in a recording something went wrong: enough for a user to find it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// The 12-byte preamble (magic and version).
    Preamble,
    /// The header frame (frame 0).
    Header,
    /// The chunk with this sequence number.
    Chunk(u64),
    /// The trailer frame (index and end of session).
    Trailer,
    /// The 16-byte footer that points at the trailer.
    Footer,
    /// A frame of a kind this reader does not know, at this frame position.
    Frame(u64),
    /// The seek index (keyframes) appended after the recording.
    Index,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Preamble => f.write_str("preamble"),
            Place::Header => f.write_str("header"),
            Place::Chunk(k) => write!(f, "chunk {k}"),
            Place::Trailer => f.write_str("trailer"),
            Place::Footer => f.write_str("footer"),
            Place::Frame(n) => write!(f, "frame {n}"),
            Place::Index => f.write_str("seek index"),
        }
    }
}

/// Everything that can go wrong reading, writing, verifying, exporting or importing a
/// recording. Each variant names what was wrong and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    /// An I/O operation failed.
    #[error("I/O error {context}: {source}")]
    Io {
        /// What was being done ("reading chunk 3 at offset 4096").
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a `.psmr` recording at all.
    #[error("not a .psmr recording: {0}")]
    NotARecording(String),
    /// A recording of a major version this reader cannot read.
    #[error("unsupported .psmr version {major}.{minor}: this reader reads version {supported}.x")]
    UnsupportedVersion {
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
        /// The major version this reader supports.
        supported: u16,
    },
    /// A structure could not be parsed.
    #[error("malformed {what} in {place} at offset {offset}: {reason}")]
    Malformed {
        /// Where.
        place: Place,
        /// Which field or structure.
        what: &'static str,
        /// Absolute byte offset in the file (or in the decompressed payload for records).
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The file ends in the middle of something that is required (the preamble or header).
    #[error("truncated in the {place} at offset {offset}")]
    Truncated {
        /// Where.
        place: Place,
        /// Offset at which data ran out.
        offset: u64,
    },
    /// A hash or signature check failed: the bytes were changed after writing.
    #[error("tampered at {place} (offset {offset}): {reason}")]
    Tampered {
        /// Where.
        place: Place,
        /// Offset of the frame.
        offset: u64,
        /// Which check failed.
        reason: String,
    },
    /// The recording is validly signed, but not by any key the caller trusts.
    #[error("signed by {found}, which is not a trusted key")]
    UntrustedSigner {
        /// The signer's public key (text form).
        found: String,
    },
    /// The recording's chunks are encrypted and no identity was given.
    #[error("recording is encrypted for {recipients:?}; pass the matching recipient secret key")]
    Encrypted {
        /// The recipients' public keys (text form).
        recipients: Vec<String>,
    },
    /// An identity was given but it is none of the recording's recipients.
    #[error(
        "the given recipient key {given} is not one of the recording's recipients {recipients:?}"
    )]
    WrongRecipient {
        /// The public half of the given identity.
        given: String,
        /// The recording's recipients.
        recipients: Vec<String>,
    },
    /// A key could not be parsed or used.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// An asciicast file could not be imported.
    #[error("invalid asciicast at line {line}: {reason}")]
    Asciicast {
        /// 1-based line number.
        line: u64,
        /// What was wrong.
        reason: String,
    },
    /// A caller passed a value outside its documented range.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which argument or field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The writer was already finished, or its background sealing failed earlier; the
    /// recording is durable up to the last chunk written.
    #[error("recording writer stopped: {0}")]
    WriterStopped(String),
    /// An export could not be produced.
    #[error("export failed: {0}")]
    Export(String),
}

impl RecordingError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn malformed(
        place: Place,
        what: &'static str,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        Self::Malformed {
            place,
            what,
            offset,
            reason: reason.into(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = RecordingError> = std::result::Result<T, E>;
