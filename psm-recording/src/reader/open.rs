//! Opening: the header, then the trailer's index or a scan of every frame.

use std::fmt;
use std::io::{Read, Seek};

use super::{Ending, ReadOptions, read_at};
use crate::error::{Place, RecordingError};
use crate::format::MAX_FRAME_BODY;
use crate::format::crypto::WrappedKey;
use crate::format::frame::{
    self, FOOTER_LEN, FOOTER_MAGIC, FRAME_HEADER_LEN, INDEX_FOOTER_MAGIC, KIND_CHUNK, KIND_HEADER,
    KIND_INDEX, KIND_TRAILER, PREAMBLE_LEN, SEAL_LEN, SIG_LEN, check_seal, parse_frame_header,
};
use crate::format::header::{self as header_codec, MAX_HEADER_BODY};
use crate::format::index::{self as index_codec, SeekIndexBody};
use crate::format::record::ChunkMeta;
use crate::format::trailer::{self, ChunkInfo, Trailer};
use crate::header::Header;
use crate::keys::VerifyingKey;
use crate::time::Micros;

/// What checking a recording found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Integrity {
    /// Finished by its writer, and every check made passed. `fully_checked` is false when
    /// only the header and the signed trailer were checked on open (the chunks are checked
    /// as they are read); [`verify`](crate::verify) always checks everything.
    Intact {
        /// Whether every frame was checked.
        fully_checked: bool,
    },
    /// The file ends before the trailer (the writer crashed or is still writing): every
    /// chunk up to `last_chunk` is complete and verified.
    Truncated {
        /// The last complete chunk, if any.
        last_chunk: Option<u64>,
        /// Time of its last event.
        at: Micros,
        /// Bytes that verified; the rest is an incomplete frame.
        valid_bytes: u64,
    },
    /// A frame's bytes, hash or signature do not match: the file was changed after writing.
    Tampered {
        /// The first place that failed.
        place: Place,
        /// Its offset.
        offset: u64,
        /// Which check failed.
        reason: String,
    },
}

impl Integrity {
    /// Whether the recording is intact.
    pub fn is_intact(&self) -> bool {
        matches!(self, Integrity::Intact { .. })
    }
}

impl fmt::Display for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Integrity::Intact { .. } => f.write_str("intact"),
            Integrity::Truncated {
                last_chunk: Some(k),
                at,
                ..
            } => write!(f, "truncated after chunk {k} at {at}"),
            Integrity::Truncated {
                last_chunk: None, ..
            } => f.write_str("truncated before the first chunk"),
            Integrity::Tampered {
                place,
                offset,
                reason,
            } => write!(f, "tampered at {place} (offset {offset}): {reason}"),
        }
    }
}

pub(crate) struct Opened {
    pub header: Header,
    pub signer: VerifyingKey,
    pub recipients: Vec<WrappedKey>,
    pub header_hash: [u8; 32],
    pub header_end: u64,
    pub chunks: Vec<ChunkInfo>,
    pub damaged: Vec<(u64, String)>,
    /// Chunks preceded by a frame of an unknown kind, with the chain value before them
    /// (otherwise it is the previous chunk's hash, or the header's).
    pub chain_before: Vec<(usize, [u8; 32])>,
    pub integrity: Integrity,
    pub ending: Option<Ending>,
    pub unknown_frames: u64,
    pub scanned: bool,
    /// Length of the recording itself (what precedes a seek index).
    pub raw_len: u64,
    /// The chain value after the recording's last valid frame (the trailer, if finished).
    pub last_hash: [u8; 32],
    /// The seek index, when present, valid and trusted.
    pub index: Option<LoadedIndex>,
    /// Why a seek index that is there is not used.
    pub index_note: Option<String>,
}

/// A verified seek index: its body (kept: it holds the keyframes) and what it says.
#[derive(Clone, Debug)]
pub(crate) struct LoadedIndex {
    pub body: Vec<u8>,
    pub parsed: SeekIndexBody,
    pub offset: u64,
}

/// A frame's fixed header, body and signature.
fn split_sig(rest: &[u8]) -> (&[u8], [u8; SIG_LEN]) {
    let body_len = rest.len() - SEAL_LEN;
    let mut sig = [0u8; SIG_LEN];
    sig.copy_from_slice(&rest[body_len..]);
    (&rest[..body_len], sig)
}

pub(crate) fn open<R: Read + Seek>(
    src: &mut R,
    len: u64,
    options: &ReadOptions,
) -> Result<Opened, RecordingError> {
    // Preamble.
    let mut pre = [0u8; PREAMBLE_LEN];
    let have = len.min(PREAMBLE_LEN as u64) as usize;
    read_at(src, 0, &mut pre[..have], "the preamble")?;
    if have < PREAMBLE_LEN {
        if have > 0 && frame::MAGIC.starts_with(&pre[..have.min(8)]) {
            return Err(RecordingError::Truncated {
                place: Place::Preamble,
                offset: have as u64,
            });
        }
        if have < 8 {
            return Err(RecordingError::NotARecording(format!(
                "only {have} bytes long"
            )));
        }
    }
    frame::check_preamble(&pre[..have])?;

    // Header frame.
    let at = PREAMBLE_LEN as u64;
    if len < at + FRAME_HEADER_LEN as u64 {
        return Err(RecordingError::Truncated {
            place: Place::Header,
            offset: len,
        });
    }
    let mut fh = [0u8; FRAME_HEADER_LEN];
    read_at(src, at, &mut fh, "the header frame")?;
    let h = parse_frame_header(&fh);
    if h.kind != KIND_HEADER {
        return Err(RecordingError::malformed(
            Place::Header,
            "frame kind",
            at,
            format!(
                "the first frame has kind {}, not the header's {KIND_HEADER}",
                h.kind
            ),
        ));
    }
    if h.body_len > MAX_HEADER_BODY {
        return Err(RecordingError::malformed(
            Place::Header,
            "frame length",
            at + 2,
            format!(
                "{} bytes, a header is at most {MAX_HEADER_BODY}",
                h.body_len
            ),
        ));
    }
    let rest_len = h.body_len as u64 + SEAL_LEN as u64;
    let header_end = at + FRAME_HEADER_LEN as u64 + rest_len;
    if header_end > len {
        return Err(RecordingError::Truncated {
            place: Place::Header,
            offset: len,
        });
    }
    let mut rest = vec![0u8; rest_len as usize];
    read_at(
        src,
        at + FRAME_HEADER_LEN as u64,
        &mut rest,
        "the header frame",
    )?;
    let (body, sig) = split_sig(&rest);
    let hf = header_codec::decode(body, at + FRAME_HEADER_LEN as u64)?;
    let start = frame::chain_start(&pre);
    let header_hash =
        check_seal(&start, &fh, body, &sig, &hf.signer).map_err(|e| RecordingError::Tampered {
            place: Place::Header,
            offset: at,
            reason: e.reason().into(),
        })?;
    if !options.trusted_signers.is_empty() && !options.trusted_signers.contains(&hf.signer) {
        return Err(RecordingError::UntrustedSigner {
            found: hf.signer.to_string(),
        });
    }
    let located = locate_index(src, len, header_end);
    let raw_len = located.map_or(len, |(at, _)| at);
    let mut o = Opened {
        header: hf.header,
        signer: hf.signer,
        recipients: hf.recipients,
        header_hash,
        header_end,
        chunks: Vec::new(),
        damaged: Vec::new(),
        chain_before: Vec::new(),
        integrity: Integrity::Intact {
            fully_checked: false,
        },
        ending: None,
        unknown_frames: 0,
        scanned: false,
        raw_len,
        last_hash: header_hash,
        index: None,
        index_note: None,
    };
    if options.full_scan || open_by_trailer(src, raw_len, &mut o).is_err() {
        let indexed = located.is_some() || ends_with(src, len, &INDEX_FOOTER_MAGIC);
        scan(src, raw_len, indexed, &mut o)?;
    }
    if let Some((at, body_len)) = located {
        load_index(src, at, body_len, options, &mut o)?;
    }
    Ok(o)
}

/// Whether the file ends with an 8-byte magic.
fn ends_with<R: Read + Seek>(src: &mut R, len: u64, magic: &[u8; 8]) -> bool {
    let Some(at) = len.checked_sub(8) else {
        return false;
    };
    let mut m = [0u8; 8];
    read_at(src, at, &mut m, "the footer").is_ok() && m == *magic
}

/// A seek index at the end of the file: `(its offset, its body length)`, if the index
/// footer points at a frame of the index kind that ends right before it.
fn locate_index<R: Read + Seek>(src: &mut R, len: u64, header_end: u64) -> Option<(u64, u32)> {
    let footer_at = len.checked_sub(FOOTER_LEN as u64)?;
    let mut f = [0u8; FOOTER_LEN];
    read_at(src, footer_at, &mut f, "the index footer").ok()?;
    if f[8..] != INDEX_FOOTER_MAGIC {
        return None;
    }
    let mut off = [0u8; 8];
    off.copy_from_slice(&f[..8]);
    let at = u64::from_le_bytes(off);
    if at < header_end || at.checked_add((FRAME_HEADER_LEN + SEAL_LEN) as u64)? > footer_at {
        return None;
    }
    let mut fh = [0u8; FRAME_HEADER_LEN];
    read_at(src, at, &mut fh, "the seek index").ok()?;
    let h = parse_frame_header(&fh);
    let end = at + FRAME_HEADER_LEN as u64 + u64::from(h.body_len) + SEAL_LEN as u64;
    (h.kind == KIND_INDEX && h.body_len <= MAX_FRAME_BODY && end == footer_at)
        .then_some((at, h.body_len))
}

/// Reads and checks the seek index; a bad one is not used, and marks the file tampered.
fn load_index<R: Read + Seek>(
    src: &mut R,
    at: u64,
    body_len: u32,
    options: &ReadOptions,
    o: &mut Opened,
) -> Result<(), RecordingError> {
    let mut fh = [0u8; FRAME_HEADER_LEN];
    read_at(src, at, &mut fh, "the seek index")?;
    let mut rest = vec![0u8; body_len as usize + SEAL_LEN];
    read_at(
        src,
        at + FRAME_HEADER_LEN as u64,
        &mut rest,
        "the seek index",
    )?;
    let (body, sig) = split_sig(&rest);
    let checked = index_codec::decode(body, at + FRAME_HEADER_LEN as u64)
        .map_err(|e| e.to_string())
        .and_then(|parsed| {
            check_seal(&o.last_hash, &fh, body, &sig, &parsed.signer)
                .map_err(|e| e.reason().to_owned())?;
            if parsed.covers != at || parsed.chunk_count != o.chunks.len() as u64 {
                return Err(format!(
                    "it was built for {} chunks in {} bytes, the recording has {} chunks in {at}",
                    parsed.chunk_count,
                    parsed.covers,
                    o.chunks.len()
                ));
            }
            Ok(parsed)
        });
    match checked {
        Err(reason) => {
            o.index_note = Some(format!("seek index ignored: {reason}"));
            if o.integrity.is_intact() {
                o.integrity = Integrity::Tampered {
                    place: Place::Index,
                    offset: at,
                    reason,
                };
            }
        }
        Ok(parsed) => {
            if !options.trusted_signers.is_empty()
                && !options.trusted_signers.contains(&parsed.signer)
            {
                o.index_note = Some(format!(
                    "seek index ignored: signed by {}, which is not a trusted key",
                    parsed.signer
                ));
                return Ok(());
            }
            for e in &parsed.entries {
                if let Some(c) = o.chunks.get_mut(e.chunk as usize) {
                    c.has_keyframes = true;
                }
            }
            let body_start = FRAME_HEADER_LEN;
            let _ = body_start;
            rest.truncate(body_len as usize);
            o.index = Some(LoadedIndex {
                body: rest,
                parsed,
                offset: at,
            });
        }
    }
    Ok(())
}

/// The trailer the footer points at, with its seal checked against the chain value its own
/// index gives for the last chunk, and its index tiling the file: `(trailer, its offset,
/// its chain hash)`.
fn verified_trailer<R: Read + Seek>(
    src: &mut R,
    len: u64,
    o: &Opened,
) -> Option<(Trailer, u64, [u8; 32])> {
    let footer_at = len.checked_sub(FOOTER_LEN as u64)?;
    if footer_at < o.header_end {
        return None;
    }
    let mut footer = [0u8; FOOTER_LEN];
    read_at(src, footer_at, &mut footer, "the footer").ok()?;
    if footer[8..] != FOOTER_MAGIC {
        return None;
    }
    let mut off = [0u8; 8];
    off.copy_from_slice(&footer[..8]);
    let t_at = u64::from_le_bytes(off);
    if t_at < o.header_end || t_at.checked_add((FRAME_HEADER_LEN + SEAL_LEN) as u64)? > footer_at {
        return None;
    }
    let mut fh = [0u8; FRAME_HEADER_LEN];
    read_at(src, t_at, &mut fh, "the trailer").ok()?;
    let h = parse_frame_header(&fh);
    let rest_len = u64::from(h.body_len) + SEAL_LEN as u64;
    if h.kind != KIND_TRAILER
        || h.body_len > MAX_FRAME_BODY
        || t_at + FRAME_HEADER_LEN as u64 + rest_len != footer_at
    {
        return None;
    }
    let mut rest = vec![0u8; rest_len as usize];
    read_at(
        src,
        t_at + FRAME_HEADER_LEN as u64,
        &mut rest,
        "the trailer",
    )
    .ok()?;
    let (body, sig) = split_sig(&rest);
    let t = trailer::decode(body, t_at + FRAME_HEADER_LEN as u64, o.header_end).ok()?;
    // The index must tile the file from the header to the trailer, in time order.
    let mut expect = o.header_end;
    let mut last_t = Micros::ZERO;
    for c in &t.index {
        if c.offset != expect
            || c.frame_len < (FRAME_HEADER_LEN + SEAL_LEN) as u64
            || c.t_end < c.t_start
            || c.t_start < last_t
        {
            return None;
        }
        expect = c.offset.checked_add(c.frame_len)?;
        last_t = c.t_end;
    }
    if expect != t_at {
        return None;
    }
    let prev = match t.index.last() {
        None => o.header_hash,
        Some(c) => c.hash?,
    };
    let hash = check_seal(&prev, &fh, body, &sig, &o.signer).ok()?;
    Some((t, t_at, hash))
}

/// The fast path: footer → trailer → index.
fn open_by_trailer<R: Read + Seek>(src: &mut R, len: u64, o: &mut Opened) -> Result<(), ()> {
    let (t, _, hash) = verified_trailer(src, len, o).ok_or(())?;
    o.ending = Some(Ending {
        end: t.end,
        event_count: t.event_count,
        reason: t.end_reason,
    });
    o.chunks = t.index;
    o.last_hash = hash;
    o.integrity = Integrity::Intact {
        fully_checked: false,
    };
    Ok(())
}

fn footer_offset<R: Read + Seek>(src: &mut R, len: u64, header_end: u64) -> Option<u64> {
    let at = len.checked_sub(FOOTER_LEN as u64)?;
    let mut f = [0u8; FOOTER_LEN];
    read_at(src, at, &mut f, "the footer").ok()?;
    let mut off = [0u8; 8];
    off.copy_from_slice(&f[..8]);
    let t = u64::from_le_bytes(off);
    (f[8..] == FOOTER_MAGIC && t >= header_end && t < at).then_some(t)
}

/// The thorough path: every frame of the recording (its first `len` bytes), in order, hash
/// chain and signature. `index_expected`: the file ends with a seek index footer.
pub(crate) fn scan<R: Read + Seek>(
    src: &mut R,
    len: u64,
    index_expected: bool,
    o: &mut Opened,
) -> Result<(), RecordingError> {
    o.scanned = true;
    o.chunks.clear();
    o.damaged.clear();
    o.chain_before.clear();
    // Where the footer says the trailer is: names a frame that fails its checks by position
    // (its kind byte may be what was changed).
    let trailer_at = footer_offset(src, len, o.header_end);
    o.ending = None;
    let mut recovery: Option<Option<(Trailer, u64, [u8; 32])>> = None;
    let mut pos = o.header_end;
    let mut prev = o.header_hash;
    let mut seq: u64 = 0;
    let mut last_t = Micros::ZERO;
    let mut buf: Vec<u8> = Vec::new();
    let mut first_damage: Option<Integrity> = None;
    let truncated = |chunks: &[ChunkInfo], pos: u64| Integrity::Truncated {
        last_chunk: chunks.last().map(|c| c.seq),
        at: chunks.last().map_or(Micros::ZERO, |c| c.t_end),
        valid_bytes: pos,
    };
    loop {
        let place = Place::Chunk(seq);
        o.last_hash = prev;
        if len - pos < FRAME_HEADER_LEN as u64 {
            o.integrity = first_damage.unwrap_or_else(|| truncated(&o.chunks, pos));
            return Ok(());
        }
        let mut fh = [0u8; FRAME_HEADER_LEN];
        read_at(src, pos, &mut fh, "a frame")?;
        let h = parse_frame_header(&fh);
        let frame_place = match (trailer_at, h.kind) {
            (Some(t), _) if pos < t => place.clone(),
            (Some(t), _) if pos == t => Place::Trailer,
            (_, KIND_CHUNK) => place.clone(),
            (_, KIND_TRAILER) => Place::Trailer,
            (_, KIND_HEADER) => Place::Header,
            _ => Place::Frame(seq),
        };
        if h.body_len > MAX_FRAME_BODY {
            o.integrity = first_damage.unwrap_or(Integrity::Tampered {
                place: frame_place,
                offset: pos,
                reason: format!("frame length {} exceeds the format's limit", h.body_len),
            });
            return Ok(());
        }
        let total = (FRAME_HEADER_LEN + SEAL_LEN) as u64 + u64::from(h.body_len);
        if total > len - pos {
            // A file that still ends with a footer was not cut short: the length was changed.
            o.integrity = first_damage.unwrap_or_else(|| {
                if ends_with(src, len, &FOOTER_MAGIC) || index_expected {
                    Integrity::Tampered {
                        place: frame_place,
                        offset: pos,
                        reason: format!(
                            "frame length {} runs past the end of a finished file",
                            h.body_len
                        ),
                    }
                } else {
                    truncated(&o.chunks, pos)
                }
            });
            return Ok(());
        }
        buf.resize(total as usize - FRAME_HEADER_LEN, 0);
        read_at(src, pos + FRAME_HEADER_LEN as u64, &mut buf, "a frame")?;
        let (body, sig) = split_sig(&buf);
        let hash = match check_seal(&prev, &fh, body, &sig, &o.signer) {
            Ok(hash) => hash,
            Err(e) => {
                // A changed chunk: if the signed trailer's index vouches for the end of its
                // group, the chain goes on from there and later groups can still be read.
                let reason = e.reason().to_string();
                if matches!(frame_place, Place::Chunk(_)) {
                    let t = recovery.get_or_insert_with(|| verified_trailer(src, len, o));
                    if let Some((t, _, _)) = t
                        && let Some(c) = t.index.get(seq as usize)
                        && c.offset == pos
                    {
                        let mut end = seq as usize;
                        while t.index.get(end + 1).is_some_and(|n| n.continues) {
                            end += 1;
                        }
                        first_damage.get_or_insert(Integrity::Tampered {
                            place: place.clone(),
                            offset: pos,
                            reason: reason.clone(),
                        });
                        for k in seq as usize..=end {
                            let mut info = t.index[k];
                            info.hash = (k == end).then_some(t.index[end].hash).flatten();
                            o.chunks.push(info);
                            o.damaged.push((
                                k as u64,
                                if k as u64 == seq {
                                    reason.clone()
                                } else {
                                    format!("depends on chunk {seq}, whose content was changed")
                                },
                            ));
                        }
                        let last = t.index[end];
                        match last.hash {
                            Some(h) => prev = h,
                            None => {
                                o.integrity = first_damage.unwrap_or(Integrity::Tampered {
                                    place,
                                    offset: pos,
                                    reason,
                                });
                                return Ok(());
                            }
                        }
                        pos = last.offset + last.frame_len;
                        last_t = last.t_end;
                        seq = end as u64 + 1;
                        continue;
                    }
                }
                o.integrity = first_damage.unwrap_or(Integrity::Tampered {
                    place: frame_place,
                    offset: pos,
                    reason,
                });
                return Ok(());
            }
        };
        let body_at = pos + FRAME_HEADER_LEN as u64;
        match h.kind {
            KIND_CHUNK => {
                let meta = match ChunkMeta::decode(body, place.clone(), body_at) {
                    Ok((m, _)) => m,
                    Err(e) => {
                        o.integrity = first_damage.unwrap_or(Integrity::Tampered {
                            place,
                            offset: pos,
                            reason: format!("signed but malformed: {e}"),
                        });
                        return Ok(());
                    }
                };
                if meta.seq != seq || meta.t_start < last_t || (seq == 0 && meta.continues()) {
                    o.integrity = first_damage.unwrap_or(Integrity::Tampered {
                        place,
                        offset: pos,
                        reason: format!(
                            "out of order: sequence {} starting at {} after chunk {} ending at {last_t}",
                            meta.seq,
                            meta.t_start,
                            seq.wrapping_sub(1)
                        ),
                    });
                    return Ok(());
                }
                let before = o.chunks.last().map_or(Some(o.header_hash), |c| c.hash);
                if before != Some(prev) {
                    o.chain_before.push((o.chunks.len(), prev));
                }
                o.chunks.push(ChunkInfo {
                    seq,
                    offset: pos,
                    frame_len: total,
                    t_start: meta.t_start,
                    t_end: meta.t_end,
                    event_count: meta.event_count,
                    has_keyframes: false,
                    continues: meta.continues(),
                    hash: Some(hash),
                });
                last_t = meta.t_end;
                seq += 1;
            }
            KIND_TRAILER => {
                let end_of_trailer = pos + total;
                let t: Trailer = match trailer::decode(body, body_at, o.header_end) {
                    Ok(t) => t,
                    Err(e) => {
                        o.integrity = first_damage.unwrap_or(Integrity::Tampered {
                            place: Place::Trailer,
                            offset: pos,
                            reason: format!("signed but malformed: {e}"),
                        });
                        return Ok(());
                    }
                };
                let consistent = t.index.len() == o.chunks.len()
                    && t.index.iter().zip(&o.chunks).all(|(a, b)| {
                        a.offset == b.offset
                            && a.frame_len == b.frame_len
                            && a.t_start == b.t_start
                            && a.t_end == b.t_end
                            && a.event_count == b.event_count
                            && a.continues == b.continues
                            && a.hash.is_none_or(|h| Some(h) == b.hash)
                    });
                if !consistent {
                    o.integrity = first_damage.unwrap_or(Integrity::Tampered {
                        place: Place::Trailer,
                        offset: pos,
                        reason: "the index does not match the chunks in the file".into(),
                    });
                    return Ok(());
                }
                o.ending = Some(Ending {
                    end: t.end,
                    event_count: t.event_count,
                    reason: t.end_reason,
                });
                o.last_hash = hash;
                let tail = len - end_of_trailer;
                let mut f = [0u8; FOOTER_LEN];
                let have = tail.min(FOOTER_LEN as u64) as usize;
                read_at(src, end_of_trailer, &mut f[..have], "the footer")?;
                let footer_ok = frame::footer(pos).starts_with(&f[..have]);
                // The footer only speeds up opening: a cut inside it loses nothing. Bytes after
                // it are a seek index: an append that did not finish is not tampering, but a
                // damaged one (the file ends with the index footer) is.
                let after = if footer_ok && tail > FOOTER_LEN as u64 {
                    let mut k = [0u8; 1];
                    read_at(
                        src,
                        end_of_trailer + FOOTER_LEN as u64,
                        &mut k,
                        "the seek index",
                    )?;
                    Some(k[0])
                } else {
                    None
                };
                o.integrity = match (first_damage, after) {
                    (Some(d), _) => d,
                    (None, None) if footer_ok => Integrity::Intact {
                        fully_checked: true,
                    },
                    (None, Some(KIND_INDEX)) if !index_expected => {
                        o.index_note =
                            Some("an unfinished seek index after the footer was ignored".into());
                        // The recording ends at its footer: a new index replaces these bytes.
                        o.raw_len = end_of_trailer + FOOTER_LEN as u64;
                        Integrity::Intact {
                            fully_checked: true,
                        }
                    }
                    (None, Some(KIND_INDEX)) => Integrity::Tampered {
                        place: Place::Index,
                        offset: end_of_trailer + FOOTER_LEN as u64,
                        reason: "the seek index is damaged".into(),
                    },
                    (None, _) => Integrity::Tampered {
                        place: Place::Footer,
                        offset: end_of_trailer,
                        reason: format!("{tail} unexpected bytes after the trailer"),
                    },
                };
                return Ok(());
            }
            KIND_HEADER => {
                o.integrity = first_damage.unwrap_or(Integrity::Tampered {
                    place: Place::Header,
                    offset: pos,
                    reason: "a second header frame".into(),
                });
                return Ok(());
            }
            _ => o.unknown_frames += 1,
        }
        prev = hash;
        pos += total;
    }
}
