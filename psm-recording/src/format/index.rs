//! The seek index frame (kind 4): keyframes of every terminal at chosen chunk starts,
//! appended after a recording by whoever computed them (an encoder after the session, or a
//! writer that emulated the terminals as it went), so a player can seek without replaying.

use super::codec::{Dec, put_bytes, put_uvarint};
use crate::error::{Place, RecordingError};
use crate::keys::VerifyingKey;

/// One entry: the keyframes for the start of a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// The chunk (its index in the recording) whose start the keyframes describe.
    pub chunk: u64,
    /// Length of the keyframe records after decompression.
    pub raw_len: u64,
    /// Where the (compressed, maybe sealed) keyframe records are in the body.
    pub blob: (usize, usize),
}

/// A parsed seek index body.
#[derive(Clone, Debug)]
pub(crate) struct SeekIndexBody {
    pub signer: VerifyingKey,
    /// Length of the recording part the index was built for (its own offset).
    pub covers: u64,
    /// Chunks it was built over.
    pub chunk_count: u64,
    pub entries: Vec<IndexEntry>,
}

/// Encodes an index body; `entries` are `(chunk, raw_len, blob)`.
pub(crate) fn encode(
    signer: &VerifyingKey,
    covers: u64,
    chunk_count: u64,
    entries: &[(u64, u64, Vec<u8>)],
) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + entries.iter().map(|e| e.2.len() + 8).sum::<usize>());
    b.extend_from_slice(&signer.to_bytes());
    put_uvarint(&mut b, covers);
    put_uvarint(&mut b, chunk_count);
    put_uvarint(&mut b, entries.len() as u64);
    for (chunk, raw_len, blob) in entries {
        put_uvarint(&mut b, *chunk);
        put_uvarint(&mut b, *raw_len);
        put_bytes(&mut b, blob);
    }
    b
}

/// Decodes an index body found at `base`.
pub(crate) fn decode(body: &[u8], base: u64) -> Result<SeekIndexBody, RecordingError> {
    let mut d = Dec::new(body, Place::Index, base);
    let signer = d.array::<32>("index signer")?;
    let signer = VerifyingKey::from_bytes(&signer)
        .map_err(|e| d.err("index signer", format!("not an ed25519 key: {e}")))?;
    let covers = d.uvarint("index coverage")?;
    let chunk_count = d.uvarint("index chunk count")?;
    let n = d.uvarint("index entry count")?;
    if n > (d.remaining() / 3) as u64 {
        return Err(d.err(
            "index entry count",
            format!("{n} entries cannot fit in the {} bytes left", d.remaining()),
        ));
    }
    let mut entries = Vec::with_capacity(n as usize);
    let mut last: Option<u64> = None;
    for _ in 0..n {
        let chunk = d.uvarint("index entry chunk")?;
        if last.is_some_and(|l| chunk <= l) || chunk >= chunk_count {
            return Err(d.err(
                "index entry chunk",
                format!("chunk {chunk} is out of order or past the {chunk_count} chunks"),
            ));
        }
        last = Some(chunk);
        let raw_len = d.uvarint("index entry length")?;
        if raw_len > super::MAX_CHUNK_RAW as u64 {
            return Err(d.err(
                "index entry length",
                format!(
                    "{raw_len} bytes exceeds the limit of {} bytes",
                    super::MAX_CHUNK_RAW
                ),
            ));
        }
        let blob = d.bytes("index entry keyframes")?;
        let end = d.position();
        entries.push(IndexEntry {
            chunk,
            raw_len,
            blob: (end - blob.len(), end),
        });
    }
    Ok(SeekIndexBody {
        signer,
        covers,
        chunk_count,
        entries,
    })
}
