//! The trailer frame: end of session and the chunk index.

use super::codec::{Dec, put_str, put_uvarint};
use crate::error::{Place, RecordingError};
use crate::time::Micros;

/// One chunk in the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    /// Sequence number (0, 1, 2, ...).
    pub seq: u64,
    /// Offset of the chunk's frame in the file.
    pub offset: u64,
    /// Length of the whole frame (header, body, hash and signature).
    pub frame_len: u64,
    /// Time of its first event.
    pub t_start: Micros,
    /// Time of its last event.
    pub t_end: Micros,
    /// Events in it.
    pub event_count: u64,
    /// Whether the recording's seek index has keyframes of every terminal for the start of
    /// this chunk (so a player can start here without replaying earlier chunks).
    pub has_keyframes: bool,
    /// Whether it continues the compression group of the previous chunk: it can only be
    /// decoded after the chunks before it in its group (at most one group is decoded to
    /// read any chunk).
    pub continues: bool,
    /// The chain hash after this chunk, when known: the trailer's index carries it for the
    /// last chunk of each group, and reading a chunk (or a full scan) learns the others.
    pub hash: Option<[u8; 32]>,
}

/// Index flag: the chunk continues the previous chunk's group.
const ENTRY_CONTINUES: u8 = 1;
/// Index flag: the chain hash after the chunk follows.
const ENTRY_HASH: u8 = 0x80;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Trailer {
    pub end: Micros,
    pub event_count: u64,
    pub end_reason: String,
    pub index: Vec<ChunkInfo>,
}

/// Smallest encoding of one index entry (4 one-byte varints and the flags).
const MIN_ENTRY: usize = 5;

pub(crate) fn encode(t: &Trailer) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + t.index.len() * 48);
    put_uvarint(&mut b, t.end.0);
    put_uvarint(&mut b, t.event_count);
    put_str(&mut b, &t.end_reason);
    put_uvarint(&mut b, t.index.len() as u64);
    let mut last_t = 0u64;
    for c in &t.index {
        put_uvarint(&mut b, c.frame_len);
        put_uvarint(&mut b, c.t_start.0.saturating_sub(last_t));
        put_uvarint(&mut b, c.t_end.0.saturating_sub(c.t_start.0));
        put_uvarint(&mut b, c.event_count);
        let mut flags = 0;
        if c.continues {
            flags |= ENTRY_CONTINUES;
        }
        if c.hash.is_some() {
            flags |= ENTRY_HASH;
        }
        b.push(flags);
        if let Some(h) = &c.hash {
            b.extend_from_slice(h);
        }
        last_t = c.t_end.0;
    }
    b
}

/// Decodes a trailer; `first_offset` is where the first chunk's frame starts (right after
/// the header frame), from which the entries' offsets follow.
pub(crate) fn decode(body: &[u8], base: u64, first_offset: u64) -> Result<Trailer, RecordingError> {
    let mut d = Dec::new(body, Place::Trailer, base);
    let end = Micros(d.uvarint("end time")?);
    let event_count = d.uvarint("event count")?;
    let end_reason = d.string("end reason")?;
    let n = d.uvarint("chunk count")?;
    let max = (d.remaining() / MIN_ENTRY) as u64;
    if n > max {
        return Err(d.err(
            "chunk count",
            format!("{n} entries cannot fit in the {} bytes left", d.remaining()),
        ));
    }
    let mut index = Vec::with_capacity(n as usize);
    let mut offset = first_offset;
    let mut last_t = 0u64;
    let overflow = |d: &Dec<'_>, what| d.err(what, "overflows 64 bits");
    for seq in 0..n {
        let frame_len = d.uvarint("index frame length")?;
        let gap = d.uvarint("index start time")?;
        let span = d.uvarint("index time span")?;
        let event_count = d.uvarint("index event count")?;
        let flags = d.u8("index flags")?;
        if flags & !(ENTRY_CONTINUES | ENTRY_HASH) != 0 {
            return Err(d.err("index flags", format!("unknown flags {flags:#04x}")));
        }
        let continues = flags & ENTRY_CONTINUES != 0;
        if continues && seq == 0 {
            return Err(d.err("index flags", "the first chunk cannot continue a group"));
        }
        let hash = if flags & ENTRY_HASH != 0 {
            Some(d.array::<32>("index chain hash")?)
        } else {
            None
        };
        let t_start = last_t
            .checked_add(gap)
            .ok_or_else(|| overflow(&d, "index start time"))?;
        let t_end = t_start
            .checked_add(span)
            .ok_or_else(|| overflow(&d, "index time span"))?;
        index.push(ChunkInfo {
            seq,
            offset,
            frame_len,
            t_start: Micros(t_start),
            t_end: Micros(t_end),
            event_count,
            has_keyframes: false,
            continues,
            hash,
        });
        offset = offset
            .checked_add(frame_len)
            .ok_or_else(|| overflow(&d, "index frame length"))?;
        last_t = t_end;
    }
    // Every group's last chunk (and the last chunk) carries the hash after it.
    for (i, c) in index.iter().enumerate() {
        let ends_group = index.get(i + 1).is_none_or(|n| !n.continues);
        if ends_group && c.hash.is_none() {
            return Err(d.err(
                "index chain hash",
                format!("chunk {} ends a group but has no chain hash", c.seq),
            ));
        }
    }
    Ok(Trailer {
        end,
        event_count,
        end_reason,
        index,
    })
}
