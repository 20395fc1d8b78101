//! The header frame's body.

use psm_core::SessionId;

use super::codec::{Dec, put_str, put_uvarint};
use super::crypto::{WRAPPED_LEN, WrappedKey};
use crate::error::{Place, RecordingError};
use crate::event::TermSize;
use crate::header::{Header, RecordedProtocol, from_unix_micros};
use crate::keys::VerifyingKey;

/// Largest header body a reader accepts.
pub(crate) const MAX_HEADER_BODY: u32 = 1 << 20;
const MAX_METADATA: u64 = 1024;
const MAX_RECIPIENTS: u64 = 64;

pub(crate) const ENCRYPTION_NONE: u8 = 0;
pub(crate) const ENCRYPTION_X25519_XCHACHA20POLY1305: u8 = 1;

/// Everything in the header frame.
#[derive(Clone, Debug)]
pub(crate) struct HeaderFrame {
    pub header: Header,
    pub signer: VerifyingKey,
    pub recipients: Vec<WrappedKey>,
}

pub(crate) fn encode(h: &HeaderFrame) -> Vec<u8> {
    let mut b = Vec::with_capacity(256);
    b.extend_from_slice(h.header.session_id.as_uuid().as_bytes());
    b.extend_from_slice(&h.header.started_at_unix_micros().to_le_bytes());
    put_str(&mut b, h.header.protocol.as_str());
    put_str(&mut b, &h.header.user);
    put_str(&mut b, &h.header.target);
    put_str(&mut b, &h.header.writer);
    match h.header.terminal {
        None => b.push(0),
        Some(t) => {
            b.push(1);
            put_uvarint(&mut b, u64::from(t.cols));
            put_uvarint(&mut b, u64::from(t.rows));
        }
    }
    put_str(&mut b, &h.header.term_type);
    put_uvarint(&mut b, h.header.metadata.len() as u64);
    for (k, v) in &h.header.metadata {
        put_str(&mut b, k);
        put_str(&mut b, v);
    }
    b.extend_from_slice(&h.signer.to_bytes());
    if h.recipients.is_empty() {
        b.push(ENCRYPTION_NONE);
    } else {
        b.push(ENCRYPTION_X25519_XCHACHA20POLY1305);
        put_uvarint(&mut b, h.recipients.len() as u64);
        for r in &h.recipients {
            b.extend_from_slice(&r.recipient);
            b.extend_from_slice(&r.ephemeral);
            b.extend_from_slice(&r.sealed);
        }
    }
    // Extensions (tag, bytes)* follow here in later minor versions; v1.0 writes none.
    b
}

pub(crate) fn decode(body: &[u8], base: u64) -> Result<HeaderFrame, RecordingError> {
    let mut d = Dec::new(body, Place::Header, base);
    let id: [u8; 16] = d.array("session id")?;
    let start_us = i64::from_le_bytes(d.array("start time")?);
    let started_at = from_unix_micros(start_us)
        .ok_or_else(|| d.err("start time", format!("{start_us} µs is out of range")))?;
    let protocol = RecordedProtocol::from_name(d.str("protocol")?);
    let user = d.string("user")?;
    let target = d.string("target")?;
    let writer = d.string("writer")?;
    let terminal = if d.bool("terminal flag")? {
        Some(TermSize::new(
            d.u16v("terminal columns")?,
            d.u16v("terminal rows")?,
        ))
    } else {
        None
    };
    let term_type = d.string("TERM")?;
    let n = d.uvarint("metadata count")?;
    if n > MAX_METADATA {
        return Err(d.err(
            "metadata count",
            format!("{n} entries, at most {MAX_METADATA}"),
        ));
    }
    let mut metadata = std::collections::BTreeMap::new();
    for _ in 0..n {
        let k = d.string("metadata key")?;
        let v = d.string("metadata value")?;
        metadata.insert(k, v);
    }
    let signer_bytes: [u8; 32] = d.array("signer public key")?;
    let signer = VerifyingKey::from_bytes(&signer_bytes)
        .map_err(|_| d.err("signer public key", "not an ed25519 public key"))?;
    let mut recipients = Vec::new();
    match d.u8("encryption")? {
        ENCRYPTION_NONE => {}
        ENCRYPTION_X25519_XCHACHA20POLY1305 => {
            let n = d.uvarint("recipient count")?;
            if n == 0 || n > MAX_RECIPIENTS {
                return Err(d.err(
                    "recipient count",
                    format!("{n}, must be 1..={MAX_RECIPIENTS}"),
                ));
            }
            for _ in 0..n {
                recipients.push(WrappedKey {
                    recipient: d.array("recipient key")?,
                    ephemeral: d.array("ephemeral key")?,
                    sealed: d.array::<WRAPPED_LEN>("wrapped data key")?,
                });
            }
        }
        other => return Err(d.err("encryption", format!("unknown scheme {other}"))),
    }
    // Unknown extensions: (tag uvarint, length-prefixed bytes)*, skipped.
    while !d.is_empty() {
        d.uvarint("extension tag")?;
        d.bytes("extension")?;
    }
    Ok(HeaderFrame {
        header: Header {
            session_id: SessionId::from_uuid(uuid::Uuid::from_bytes(id)),
            started_at,
            protocol,
            user,
            target,
            terminal,
            term_type,
            writer,
            metadata,
        },
        signer,
        recipients,
    })
}
