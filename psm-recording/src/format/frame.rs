//! Preamble, frames, the hash chain, signatures and the footer.

use crate::error::{Place, RecordingError};
use crate::keys::{SigningKey, VerifyingKey};

/// The first 8 bytes of every `.psmr` file.
pub const MAGIC: [u8; 8] = *b"\x89PSMR\r\n\x1a";
/// The format's major version: readers refuse other majors.
pub const VERSION_MAJOR: u16 = 2;
/// The format's minor version: additions older readers can skip.
pub const VERSION_MINOR: u16 = 1;

pub(crate) const PREAMBLE_LEN: usize = 12;
pub(crate) const FRAME_HEADER_LEN: usize = 6;
pub(crate) const SIG_LEN: usize = 64;
/// What follows a frame's body: its signature (the chain hash is recomputed, not stored).
pub(crate) const SEAL_LEN: usize = SIG_LEN;
pub(crate) const FOOTER_MAGIC: [u8; 8] = *b"PSMR-END";
/// The footer after a seek index appended to a recording.
pub(crate) const INDEX_FOOTER_MAGIC: [u8; 8] = *b"PSMR-IDX";
pub(crate) const FOOTER_LEN: usize = 16;

pub(crate) const KIND_HEADER: u8 = 1;
pub(crate) const KIND_CHUNK: u8 = 2;
pub(crate) const KIND_TRAILER: u8 = 3;
pub(crate) const KIND_INDEX: u8 = 4;

const SIGNATURE_CONTEXT: &[u8] = b"psmr v2 frame signature\0";

pub(crate) fn preamble() -> [u8; PREAMBLE_LEN] {
    let mut p = [0u8; PREAMBLE_LEN];
    p[..8].copy_from_slice(&MAGIC);
    p[8..10].copy_from_slice(&VERSION_MAJOR.to_le_bytes());
    p[10..12].copy_from_slice(&VERSION_MINOR.to_le_bytes());
    p
}

/// Checks magic and version; returns (major, minor).
pub(crate) fn check_preamble(p: &[u8]) -> Result<(u16, u16), RecordingError> {
    if p.len() < 8 || p[..8] != MAGIC {
        let shown: Vec<u8> = p.iter().take(8).copied().collect();
        return Err(RecordingError::NotARecording(format!(
            "the first bytes are {shown:02x?}, not the .psmr magic {MAGIC:02x?}"
        )));
    }
    if p.len() < PREAMBLE_LEN {
        return Err(RecordingError::Truncated {
            place: Place::Preamble,
            offset: p.len() as u64,
        });
    }
    let major = u16::from_le_bytes([p[8], p[9]]);
    let minor = u16::from_le_bytes([p[10], p[11]]);
    if major != VERSION_MAJOR {
        return Err(RecordingError::UnsupportedVersion {
            major,
            minor,
            supported: VERSION_MAJOR,
        });
    }
    Ok((major, minor))
}

/// The chain value before frame 0: BLAKE3 of the preamble.
pub(crate) fn chain_start(preamble: &[u8]) -> [u8; 32] {
    *blake3::hash(preamble).as_bytes()
}

/// `h_i = BLAKE3(h_{i-1} || frame header || body)`.
pub(crate) fn chain_next(prev: &[u8; 32], frame_header: &[u8], body: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(frame_header);
    h.update(body);
    *h.finalize().as_bytes()
}

pub(crate) fn signature_message(hash: &[u8; 32]) -> [u8; 56] {
    let mut m = [0u8; 56];
    m[..24].copy_from_slice(SIGNATURE_CONTEXT);
    m[24..].copy_from_slice(hash);
    m
}

pub(crate) fn frame_header(kind: u8, body_len: u32) -> [u8; FRAME_HEADER_LEN] {
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[0] = kind;
    h[1] = 0;
    h[2..6].copy_from_slice(&body_len.to_le_bytes());
    h
}

/// Appends a complete frame to `out` and returns its chain hash.
pub(crate) fn write_frame(
    out: &mut Vec<u8>,
    kind: u8,
    body: &[u8],
    prev: &[u8; 32],
    key: &SigningKey,
) -> Result<[u8; 32], RecordingError> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|l| *l <= super::MAX_FRAME_BODY)
        .ok_or_else(|| RecordingError::InvalidInput {
            field: "frame body",
            reason: format!("{} bytes exceeds the format's limit", body.len()),
        })?;
    let fh = frame_header(kind, len);
    let hash = chain_next(prev, &fh, body);
    let sig = key.sign(&signature_message(&hash));
    out.reserve(FRAME_HEADER_LEN + body.len() + SEAL_LEN);
    out.extend_from_slice(&fh);
    out.extend_from_slice(body);
    out.extend_from_slice(&sig);
    Ok(hash)
}

pub(crate) fn footer(trailer_offset: u64) -> [u8; FOOTER_LEN] {
    let mut f = [0u8; FOOTER_LEN];
    f[..8].copy_from_slice(&trailer_offset.to_le_bytes());
    f[8..].copy_from_slice(&FOOTER_MAGIC);
    f
}

pub(crate) fn index_footer(index_offset: u64) -> [u8; FOOTER_LEN] {
    let mut f = [0u8; FOOTER_LEN];
    f[..8].copy_from_slice(&index_offset.to_le_bytes());
    f[8..].copy_from_slice(&INDEX_FOOTER_MAGIC);
    f
}

/// Parsed fixed part of a frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameHeader {
    pub kind: u8,
    /// `b[1]` holds flags, reserved (written 0, ignored by readers).
    pub body_len: u32,
}

pub(crate) fn parse_frame_header(b: &[u8; FRAME_HEADER_LEN]) -> FrameHeader {
    FrameHeader {
        kind: b[0],
        body_len: u32::from_le_bytes([b[2], b[3], b[4], b[5]]),
    }
}

/// Checks a frame's signature over its recomputed chain hash; returns the hash.
pub(crate) fn check_seal(
    prev: &[u8; 32],
    fh: &[u8; FRAME_HEADER_LEN],
    body: &[u8],
    sig: &[u8; 64],
    signer: &VerifyingKey,
) -> Result<[u8; 32], SealError> {
    let computed = chain_next(prev, fh, body);
    if signer.verify(&signature_message(&computed), sig) {
        Ok(computed)
    } else {
        Err(SealError::BadSignature)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SealError {
    /// The signature does not verify over the chain hash of the frame's bytes: the content,
    /// the signature, or an earlier frame was changed.
    BadSignature,
}

impl SealError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            SealError::BadSignature => {
                "ed25519 signature does not verify over the frame's chain hash"
            }
        }
    }
}
