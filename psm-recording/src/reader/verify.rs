//! `verify`: check every frame of a recording and say what survived.

use std::io::{Read, Seek};
use std::path::Path;

use super::open::Integrity;
use super::{ReadOptions, Reader, SeekIndexInfo};
use crate::error::RecordingError;
use crate::header::Header;
use crate::keys::{RecipientPublic, RecipientSecret, VerifyingKey};
use crate::time::Micros;

/// What to check.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The keys the recording must be signed by. Empty: any key (the report names it; a
    /// recording re-signed by an attacker's key verifies too, so pass the gateway's key).
    pub trusted_signers: Vec<VerifyingKey>,
    /// Decrypts an encrypted recording so its payloads can be decoded too.
    pub identity: Option<RecipientSecret>,
    /// Also decompress and decode every chunk's events (skipped for encrypted chunks
    /// without an identity: their integrity is still checked).
    pub decode: bool,
}

impl VerifyOptions {
    /// Check everything, and require `key` as the signer.
    pub fn trusting(key: VerifyingKey) -> Self {
        Self {
            trusted_signers: vec![key],
            identity: None,
            decode: true,
        }
    }
}

/// The outcome of [`verify`].
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// Intact, truncated after chunk K at T, or tampered at chunk K.
    pub status: Integrity,
    /// The session.
    pub header: Header,
    /// Who signed it.
    pub signer: VerifyingKey,
    /// Whether the signer is one of the trusted keys (`None`: none were given).
    pub signer_trusted: Option<bool>,
    /// Complete chunks.
    pub chunks: u64,
    /// Events in the complete chunks (counted from chunk headers).
    pub events: u64,
    /// Time of the last complete event.
    pub duration: Micros,
    /// File size.
    pub bytes: u64,
    /// Recipients, if encrypted.
    pub recipients: Vec<RecipientPublic>,
    /// Chunks whose content was changed while their neighbours verify.
    pub damaged_chunks: Vec<u64>,
    /// Whether every readable chunk's events were decoded.
    pub decoded: bool,
    /// The writer's end reason, if it finished.
    pub end_reason: Option<String>,
    /// The seek index appended after the recording, if any (verified like every frame:
    /// chained to the recording's last frame and signed, by its own signer).
    pub seek_index: Option<SeekIndexInfo>,
    /// Whether the seek index's signer is one of the trusted keys (`None`: no index, or no
    /// keys given).
    pub seek_index_trusted: Option<bool>,
    /// Why a seek index present in the file is not used.
    pub seek_index_note: Option<String>,
    /// The chain value after the last valid frame ([`Reader::chain_end`]): compare it with
    /// what the gateway committed to at EndSession.
    pub chain_end: [u8; 32],
}

impl VerifyReport {
    /// Intact and (if keys were given) signed by a trusted key.
    pub fn is_trusted_and_intact(&self) -> bool {
        self.status.is_intact() && self.signer_trusted != Some(false)
    }
}

/// Verifies a recording file: every frame's hash chain and signature, the index, and
/// (with `decode`) every payload. An error means the file is not a recording at all, or its
/// header is unusable; everything else is in the report's `status`.
pub fn verify(
    path: impl AsRef<Path>,
    options: &VerifyOptions,
) -> Result<VerifyReport, RecordingError> {
    let path = path.as_ref();
    let f = std::fs::File::open(path)
        .map_err(|e| RecordingError::io(format!("opening {}", path.display()), e))?;
    verify_reader(std::io::BufReader::with_capacity(256 << 10, f), options)
}

/// [`verify`] on any seekable source.
pub fn verify_reader<R: Read + Seek>(
    src: R,
    options: &VerifyOptions,
) -> Result<VerifyReport, RecordingError> {
    let mut r = Reader::new(
        src,
        ReadOptions {
            identity: options.identity.clone(),
            trusted_signers: Vec::new(),
            full_scan: true,
        },
    )?;
    let signer = r.signer();
    let signer_trusted =
        (!options.trusted_signers.is_empty()).then(|| options.trusted_signers.contains(&signer));
    let mut status = r.integrity().clone();
    let mut decoded = false;
    if options.decode && (!r.is_encrypted() || options.identity.is_some()) {
        decoded = true;
        for i in 0..r.chunks().len() {
            let seq = r.chunks()[i].seq;
            if r.damaged_chunks().iter().any(|(s, _)| *s == seq) {
                continue;
            }
            if let Err(e) = r.read_chunk(i) {
                if status.is_intact() || matches!(status, Integrity::Truncated { .. }) {
                    status = Integrity::Tampered {
                        place: crate::error::Place::Chunk(seq),
                        offset: r.chunks()[i].offset,
                        reason: format!("signed but unreadable: {e}"),
                    };
                }
                decoded = false;
                break;
            }
        }
        // Every keyframe of the seek index decodes too.
        for i in 0..r.chunks().len() {
            if !r.chunks()[i].has_keyframes {
                continue;
            }
            if let Err(e) = r.keyframes(i) {
                if status.is_intact() || matches!(status, Integrity::Truncated { .. }) {
                    status = Integrity::Tampered {
                        place: crate::error::Place::Index,
                        offset: r.chunks()[i].offset,
                        reason: format!("signed but unreadable keyframes for chunk {i}: {e}"),
                    };
                }
                decoded = false;
                break;
            }
        }
    }
    let good: Vec<_> = r
        .chunks()
        .iter()
        .filter(|c| !r.damaged_chunks().iter().any(|(s, _)| *s == c.seq))
        .collect();
    Ok(VerifyReport {
        status,
        header: r.header().clone(),
        signer,
        signer_trusted,
        chunks: r.chunks().len() as u64,
        events: good.iter().map(|c| c.event_count).sum(),
        duration: r.chunks().last().map_or(Micros::ZERO, |c| c.t_end),
        bytes: r.file_len(),
        recipients: r.recipients(),
        damaged_chunks: r.damaged_chunks().iter().map(|(s, _)| *s).collect(),
        decoded,
        end_reason: r.ending().map(|e| e.reason.clone()),
        seek_index_trusted: r.seek_index().and_then(|i| {
            (!options.trusted_signers.is_empty())
                .then(|| options.trusted_signers.contains(&i.signer))
        }),
        seek_index: r.seek_index(),
        seek_index_note: r.seek_index_note().map(str::to_owned),
        chain_end: r.chain_end(),
    })
}
