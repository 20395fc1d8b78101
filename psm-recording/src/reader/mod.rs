//! Reading recordings: open, verify, iterate, seek.

mod open;
mod verify;

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;

pub use open::Integrity;
pub use verify::{VerifyOptions, VerifyReport, verify, verify_reader};

use crate::error::{Place, RecordingError};
use crate::event::{Event, Keyframe, Record};
use crate::format::MAX_CHUNK_RAW;
use crate::format::crypto::{DataKey, WrappedKey};
use crate::format::frame::{self, FRAME_HEADER_LEN, SEAL_LEN, SIG_LEN};
use crate::format::record::{
    CODEC_STORED, CODEC_ZSTD, CODEC_ZSTD_STREAM, ChunkMeta, DecodeState, RecordIter,
};
use crate::format::stream::StreamDecompressor;
pub use crate::format::trailer::ChunkInfo;
use crate::header::Header;
use crate::keys::{RecipientPublic, RecipientSecret, VerifyingKey};
use crate::terminal::TerminalTracker;
use crate::time::Micros;
use open::LoadedIndex;

/// How to open a recording.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// The recipient key that decrypts an encrypted recording.
    pub identity: Option<RecipientSecret>,
    /// Signers to accept. Empty: any signer (check [`Reader::signer`] yourself).
    pub trusted_signers: Vec<VerifyingKey>,
    /// Check every frame's hash chain and signature on open, even when a valid trailer
    /// would allow lazy, per-chunk verification.
    pub full_scan: bool,
}

/// How the session ended, from the trailer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ending {
    /// Time of the last event.
    pub end: Micros,
    /// Events in the recording.
    pub event_count: u64,
    /// The reason the writer gave.
    pub reason: String,
}

/// The records of one chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRecords {
    /// The chunk.
    pub info: ChunkInfo,
    /// Keyframes for its start (every terminal's state before its events), from the seek
    /// index; empty if the index has none for this chunk.
    pub keyframes: Vec<Keyframe>,
    /// Its events, in order.
    pub events: Vec<Event>,
}

/// An open recording. Every chunk read is checked against the hash chain and its signature.
///
/// ```
/// # fn demo(path: &std::path::Path) -> Result<(), psm_recording::RecordingError> {
/// use psm_recording::{Reader, ReadOptions, Micros, ChannelId};
/// let mut r = Reader::open(path, ReadOptions::default())?;
/// println!("{} on {} by {}", r.header().session_id, r.header().target, r.header().user);
/// for i in 0..r.chunks().len() {
///     for e in r.read_chunk(i)?.events {
///         println!("{} {:?}", e.time, e.kind);
///     }
/// }
/// // The screen one minute in, from the nearest keyframe:
/// let mut screens = r.screen_at(Micros(60_000_000))?;
/// if let Some(t) = screens.terminal(ChannelId(0)) {
///     println!("{}", t.lines().join("\n"));
/// }
/// # Ok(()) }
/// ```
pub struct Reader<R> {
    src: R,
    len: u64,
    raw_len: u64,
    header: Header,
    signer: VerifyingKey,
    recipients: Vec<WrappedKey>,
    data_key: Option<DataKey>,
    header_hash: [u8; 32],
    last_hash: [u8; 32],
    chunks: Vec<ChunkInfo>,
    damaged: Vec<(u64, String)>,
    /// Chunks preceded by frames of unknown kinds: the chain value before them.
    chain_before: Vec<(usize, [u8; 32])>,
    integrity: Integrity,
    ending: Option<Ending>,
    /// Whether opening checked every chunk's signature (a full scan).
    scanned: bool,
    index: Option<LoadedIndex>,
    index_note: Option<String>,
    buf: Vec<u8>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
    cursor: GroupCursor,
}

/// Where decoding stands inside a group: the next chunk it can decode without going back to
/// the group's start, the zstd stream, and the output-delta reference.
#[derive(Default)]
struct GroupCursor {
    next: Option<usize>,
    stream: Option<StreamDecompressor>,
    /// Whether the last chunk decoded was a codec-2 piece (so a chunk that continues its
    /// group has the stream it continues).
    stream_live: bool,
    state: DecodeState,
}

/// What a recording's seek index is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeekIndexInfo {
    /// Who signed it (the encoder that computed it, or the writer).
    pub signer: VerifyingKey,
    /// Chunks it has keyframes for.
    pub keyframes: usize,
    /// Its size in the file (frame and footer).
    pub bytes: u64,
}

impl<R> std::fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("header", &self.header)
            .field("chunks", &self.chunks.len())
            .field("integrity", &self.integrity)
            .finish_non_exhaustive()
    }
}

impl Reader<BufReader<File>> {
    /// Opens a file.
    pub fn open(path: impl AsRef<Path>, options: ReadOptions) -> Result<Self, RecordingError> {
        let path = path.as_ref();
        let f = File::open(path)
            .map_err(|e| RecordingError::io(format!("opening {}", path.display()), e))?;
        Self::new(BufReader::with_capacity(64 << 10, f), options)
    }
}

impl Reader<Cursor<Vec<u8>>> {
    /// Reads from memory.
    pub fn from_bytes(bytes: Vec<u8>, options: ReadOptions) -> Result<Self, RecordingError> {
        Self::new(Cursor::new(bytes), options)
    }
}

pub(crate) fn read_at<R: Read + Seek>(
    src: &mut R,
    offset: u64,
    buf: &mut [u8],
    what: &str,
) -> Result<(), RecordingError> {
    src.seek(SeekFrom::Start(offset))
        .and_then(|_| src.read_exact(buf))
        .map_err(|e| RecordingError::io(format!("reading {what} at offset {offset}"), e))
}

impl<R: Read + Seek> Reader<R> {
    /// Opens a recording from any seekable source: reads and checks the header, then the
    /// trailer's index if the recording was finished (otherwise scans every frame, which
    /// also finds where a cut-off recording ends), then the seek index if there is one.
    pub fn new(mut src: R, options: ReadOptions) -> Result<Self, RecordingError> {
        let len = src
            .seek(SeekFrom::End(0))
            .map_err(|e| RecordingError::io("finding the recording's length", e))?;
        let o = open::open(&mut src, len, &options)?;
        let data_key = match (&options.identity, o.recipients.is_empty()) {
            (_, true) => None,
            (None, false) => None,
            (Some(id), false) => Some(
                o.recipients
                    .iter()
                    .find_map(|w| DataKey::unwrap(w, id))
                    .ok_or_else(|| RecordingError::WrongRecipient {
                        given: id.public().to_string(),
                        recipients: o
                            .recipients
                            .iter()
                            .map(|w| RecipientPublic::from_bytes(w.recipient).to_string())
                            .collect(),
                    })?,
            ),
        };
        Ok(Self {
            src,
            len,
            raw_len: o.raw_len,
            header: o.header,
            signer: o.signer,
            recipients: o.recipients,
            data_key,
            header_hash: o.header_hash,
            last_hash: o.last_hash,
            chunks: o.chunks,
            damaged: o.damaged,
            chain_before: o.chain_before,
            scanned: o.scanned,
            integrity: o.integrity,
            ending: o.ending,
            index: o.index,
            index_note: o.index_note,
            buf: Vec::new(),
            decompressor: None,
            cursor: GroupCursor::default(),
        })
    }

    /// The session.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The key that signed it.
    pub fn signer(&self) -> VerifyingKey {
        self.signer
    }

    /// Whether the chunks are encrypted.
    pub fn is_encrypted(&self) -> bool {
        !self.recipients.is_empty()
    }

    /// Who can decrypt it.
    pub fn recipients(&self) -> Vec<RecipientPublic> {
        self.recipients
            .iter()
            .map(|w| RecipientPublic::from_bytes(w.recipient))
            .collect()
    }

    /// The chunks (from the trailer's index, or found by scanning a cut-off file). Damaged
    /// chunks are listed too; reading them fails.
    pub fn chunks(&self) -> &[ChunkInfo] {
        &self.chunks
    }

    /// What opening found: intact, truncated, or tampered.
    pub fn integrity(&self) -> &Integrity {
        &self.integrity
    }

    /// The trailer's account of the end, if the writer finished.
    pub fn ending(&self) -> Option<&Ending> {
        self.ending.as_ref()
    }

    /// Whether opening read and checked every chunk (a full scan: `ReadOptions::full_scan`,
    /// or no usable signed trailer), rather than trusting the signed trailer's chunk table.
    pub fn fully_scanned(&self) -> bool {
        self.scanned
    }

    /// Chunks that cannot be read because their bytes were changed (or they depend on a
    /// changed chunk of their group), with the reason.
    pub fn damaged_chunks(&self) -> &[(u64, String)] {
        &self.damaged
    }

    /// File size.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// The seek index, if the file has a valid one (signed by a trusted key, when
    /// [`ReadOptions::trusted_signers`] names any).
    pub fn seek_index(&self) -> Option<SeekIndexInfo> {
        self.index.as_ref().map(|i| SeekIndexInfo {
            signer: i.parsed.signer,
            keyframes: i.parsed.entries.len(),
            bytes: self.len - i.offset,
        })
    }

    /// Why the file's seek index is not used (damaged, untrusted signer, unfinished).
    pub fn seek_index_note(&self) -> Option<&str> {
        self.index_note.as_deref()
    }

    pub(crate) fn raw_len(&self) -> u64 {
        self.raw_len
    }

    pub(crate) fn last_hash(&self) -> [u8; 32] {
        self.last_hash
    }

    /// The chain value after the recording's last valid frame: for a finished recording,
    /// the value its signed trailer covers, which is what the writer returned as
    /// [`FinishedRecording::final_hash`](crate::FinishedRecording::final_hash) and what a
    /// gateway commits to at EndSession. A recording cut short or changed after it was
    /// written ends at another value. A seek index appended later does not change it.
    pub fn chain_end(&self) -> [u8; 32] {
        self.last_hash
    }

    pub(crate) fn data_key(&self) -> Option<&DataKey> {
        self.data_key.as_ref()
    }

    /// Time of the last event known.
    pub fn duration(&self) -> Micros {
        match (&self.ending, self.chunks.last()) {
            (Some(e), _) => e.end,
            (None, Some(c)) => c.t_end,
            (None, None) => Micros::ZERO,
        }
    }

    fn damage(&self, seq: u64) -> Option<&String> {
        self.damaged.iter().find(|(s, _)| *s == seq).map(|(_, r)| r)
    }

    /// The first chunk of chunk `i`'s group.
    fn group_start(&self, i: usize) -> usize {
        let mut g = i;
        while g > 0 && self.chunks[g].continues {
            g -= 1;
        }
        g
    }

    /// The chain value before chunk `i`, if known.
    fn prev_hash(&self, i: usize) -> Option<[u8; 32]> {
        if let Some((_, h)) = self.chain_before.iter().find(|(j, _)| *j == i) {
            return Some(*h);
        }
        match i {
            0 => Some(self.header_hash),
            _ => self.chunks[i - 1].hash,
        }
    }

    /// Reads chunk `i`'s whole frame into `self.buf` and checks its bounds and kind.
    fn read_frame(&mut self, i: usize) -> Result<(), RecordingError> {
        let info = self.chunks[i];
        let place = Place::Chunk(info.seq);
        let min = (FRAME_HEADER_LEN + SEAL_LEN) as u64;
        let end = info.offset.checked_add(info.frame_len);
        if info.frame_len < min || end.is_none_or(|e| e > self.raw_len) {
            return Err(RecordingError::malformed(
                place,
                "chunk frame length",
                info.offset,
                format!(
                    "{} bytes does not fit the recording ({} bytes)",
                    info.frame_len, self.raw_len
                ),
            ));
        }
        let n = usize::try_from(info.frame_len).unwrap_or(usize::MAX);
        if n > crate::format::MAX_FRAME_BODY as usize + min as usize {
            return Err(RecordingError::malformed(
                place,
                "chunk frame length",
                info.offset,
                "too large",
            ));
        }
        self.buf.resize(n, 0);
        read_at(
            &mut self.src,
            info.offset,
            &mut self.buf,
            &format!("chunk {}", info.seq),
        )?;
        let mut fh = [0u8; FRAME_HEADER_LEN];
        fh.copy_from_slice(&self.buf[..FRAME_HEADER_LEN]);
        let parsed = frame::parse_frame_header(&fh);
        if parsed.kind != frame::KIND_CHUNK
            || FRAME_HEADER_LEN + parsed.body_len as usize + SEAL_LEN != n
        {
            return Err(RecordingError::Tampered {
                place,
                offset: info.offset,
                reason: "the frame at the indexed offset is not this chunk".into(),
            });
        }
        Ok(())
    }

    /// The chain hash of the frame in `self.buf` after `prev`, and whether its signature
    /// verifies.
    fn hash_of_buf(&self, prev: &[u8; 32], check_sig: bool) -> ([u8; 32], bool) {
        let n = self.buf.len();
        let mut fh = [0u8; FRAME_HEADER_LEN];
        fh.copy_from_slice(&self.buf[..FRAME_HEADER_LEN]);
        let body = &self.buf[FRAME_HEADER_LEN..n - SEAL_LEN];
        if !check_sig {
            return (frame::chain_next(prev, &fh, body), true);
        }
        let mut sig = [0u8; SIG_LEN];
        sig.copy_from_slice(&self.buf[n - SEAL_LEN..]);
        match frame::check_seal(prev, &fh, body, &sig, &self.signer) {
            Ok(h) => (h, true),
            Err(_) => (frame::chain_next(prev, &fh, body), false),
        }
    }

    /// Records that chunk `j`'s content was changed: it and the chunks after it in its group
    /// (which depend on it) cannot be read.
    fn mark_damaged(&mut self, j: usize, reason: &str) {
        let mut e = j;
        while self.chunks.get(e + 1).is_some_and(|c| c.continues) {
            e += 1;
        }
        let seq = self.chunks[j].seq;
        for k in j..=e {
            let s = self.chunks[k].seq;
            if self.damage(s).is_some() {
                continue;
            }
            let why = if k == j {
                reason.to_owned()
            } else {
                format!("depends on chunk {seq}, whose content was changed")
            };
            self.damaged.push((s, why));
        }
        self.damaged.sort_by_key(|(s, _)| *s);
        if self.integrity.is_intact() {
            self.integrity = Integrity::Tampered {
                place: Place::Chunk(seq),
                offset: self.chunks[j].offset,
                reason: reason.into(),
            };
        }
    }

    /// Authenticates the group starting at chunk `g`: chains its frames from the hash
    /// before it to the hash the signed index gives for its last chunk (so the chunks inside
    /// learn their hashes). If that fails, each frame's own signature locates the change.
    fn verify_group(&mut self, g: usize) -> Result<(), RecordingError> {
        let mut e = g;
        while self.chunks.get(e + 1).is_some_and(|c| c.continues) {
            e += 1;
        }
        let info = self.chunks[g];
        let Some(start) = self.prev_hash(g) else {
            return Err(RecordingError::malformed(
                Place::Chunk(info.seq),
                "chunk index",
                info.offset,
                "the chain hash before this group is unknown",
            ));
        };
        let Some(expected) = self.chunks[e].hash else {
            return Err(RecordingError::malformed(
                Place::Chunk(self.chunks[e].seq),
                "chunk index",
                self.chunks[e].offset,
                "the last chunk of a group has no chain hash in the index",
            ));
        };
        let mut hashes = Vec::with_capacity(e - g + 1);
        let mut prev = start;
        for j in g..=e {
            self.read_frame(j)?;
            prev = self.hash_of_buf(&prev, false).0;
            hashes.push(prev);
        }
        if prev == expected {
            for (j, h) in (g..=e).zip(hashes) {
                self.chunks[j].hash = Some(h);
            }
            return Ok(());
        }
        // Locate the change by the frames' own signatures.
        let mut prev = start;
        for j in g..=e {
            self.read_frame(j)?;
            let (h, ok) = self.hash_of_buf(&prev, true);
            if !ok {
                self.mark_damaged(j, frame::SealError::BadSignature.reason());
                return Ok(());
            }
            self.chunks[j].hash = Some(h);
            prev = h;
        }
        // Every frame is validly signed, yet the chain does not reach the index's hash.
        Err(RecordingError::Tampered {
            place: Place::Trailer,
            offset: self.chunks[e].offset,
            reason: "the index's chain hash does not match the chunks".into(),
        })
    }

    /// Reads, verifies, decrypts and decompresses chunk `i`, as the next piece of its group's
    /// stream; returns its metadata and payload.
    fn payload(&mut self, i: usize) -> Result<(ChunkMeta, Vec<u8>), RecordingError> {
        let info = self.chunks[i];
        let place = Place::Chunk(info.seq);
        self.read_frame(i)?;
        let prev = self.prev_hash(i).unwrap_or(self.header_hash);
        let (hash, _) = self.hash_of_buf(&prev, false);
        if Some(hash) != info.hash {
            let reason = "content does not match its BLAKE3 chain hash";
            self.mark_damaged(i, reason);
            return Err(RecordingError::Tampered {
                place,
                offset: info.offset,
                reason: reason.into(),
            });
        }
        let n = self.buf.len();
        let body = &self.buf[FRAME_HEADER_LEN..n - SEAL_LEN];
        let body_offset = info.offset + FRAME_HEADER_LEN as u64;
        let (meta, payload_at) = ChunkMeta::decode(body, place.clone(), body_offset)?;
        if meta.seq != info.seq || meta.continues() != info.continues {
            return Err(RecordingError::malformed(
                place,
                "chunk sequence number",
                body_offset,
                format!(
                    "{} (continues: {}) where the index says {} (continues: {})",
                    meta.seq,
                    meta.continues(),
                    info.seq,
                    info.continues
                ),
            ));
        }
        let data = &body[payload_at..];
        let opened;
        let data: &[u8] = if self.recipients.is_empty() {
            data
        } else {
            let dk = self
                .data_key
                .as_ref()
                .ok_or_else(|| RecordingError::Encrypted {
                    recipients: self.recipients().iter().map(|r| r.to_string()).collect(),
                })?;
            opened = dk
                .open(meta.seq, &body[..payload_at], data)
                .ok_or_else(|| RecordingError::Tampered {
                    place: place.clone(),
                    offset: info.offset,
                    reason: "payload does not decrypt (AEAD tag mismatch)".into(),
                })?;
            &opened
        };
        let raw_len = (meta.raw_len as usize).min(MAX_CHUNK_RAW);
        let zstd_err = |e: String| {
            RecordingError::malformed(
                place.clone(),
                "zstd payload",
                body_offset + payload_at as u64,
                e,
            )
        };
        if meta.codec != CODEC_ZSTD_STREAM {
            self.cursor.stream_live = false;
        }
        let payload: Vec<u8> = match meta.codec {
            CODEC_STORED => data.to_vec(),
            CODEC_ZSTD => {
                let dec = match &mut self.decompressor {
                    Some(d) => d,
                    None => self.decompressor.insert(
                        zstd::bulk::Decompressor::new()
                            .map_err(|e| RecordingError::io("starting zstd", e))?,
                    ),
                };
                // The capacity bounds the output: a "bomb" fails here, never allocates more.
                dec.decompress(data, raw_len).map_err(|e| {
                    zstd_err(format!("does not decompress within {raw_len} bytes: {e}"))
                })?
            }
            CODEC_ZSTD_STREAM => {
                if meta.continues() && !self.cursor.stream_live {
                    return Err(RecordingError::malformed(
                        place,
                        "chunk codec",
                        body_offset,
                        "continues a group whose previous chunk is not a codec-2 piece",
                    ));
                }
                self.cursor.stream_live = false;
                let stream = match &mut self.cursor.stream {
                    Some(s) => s,
                    None => self
                        .cursor
                        .stream
                        .insert(StreamDecompressor::new().map_err(zstd_err)?),
                };
                if !meta.continues() {
                    stream.start_frame().map_err(zstd_err)?;
                }
                let piece = stream.piece(data, raw_len).map_err(zstd_err)?;
                self.cursor.stream_live = true;
                piece
            }
            other => {
                return Err(RecordingError::malformed(
                    place,
                    "chunk codec",
                    body_offset,
                    format!("unknown codec {other}"),
                ));
            }
        };
        if payload.len() as u64 != meta.raw_len {
            return Err(RecordingError::malformed(
                place,
                "chunk payload",
                body_offset,
                format!(
                    "{} bytes where the header says {}",
                    payload.len(),
                    meta.raw_len
                ),
            ));
        }
        if self.buf.capacity() > 16 << 20 {
            self.buf = Vec::new();
        }
        Ok((meta, payload))
    }

    /// Reads, verifies, decrypts and decompresses chunk `i` (an index into
    /// [`chunks`](Self::chunks)). A chunk that continues a group is decoded after the
    /// chunks before it in the group (reading chunks in order decodes each once).
    pub fn read_chunk(&mut self, i: usize) -> Result<ChunkRecords, RecordingError> {
        let info = *self
            .chunks
            .get(i)
            .ok_or_else(|| RecordingError::InvalidInput {
                field: "chunk",
                reason: format!("{i} is past the last chunk ({})", self.chunks.len()),
            })?;
        let place = Place::Chunk(info.seq);
        let g = self.group_start(i);
        // A damaged chunk's own reason first (the chunks after a changed one depend on it).
        for j in (g..=i).rev() {
            if let Some(why) = self.damage(self.chunks[j].seq) {
                return Err(RecordingError::Tampered {
                    place,
                    offset: info.offset,
                    reason: why.clone(),
                });
            }
        }
        if self.chunks[i].hash.is_none() || (g..i).any(|j| self.chunks[j].hash.is_none()) {
            self.verify_group(g)?;
            if let Some(why) = (g..=i).rev().find_map(|j| self.damage(self.chunks[j].seq)) {
                return Err(RecordingError::Tampered {
                    place,
                    offset: info.offset,
                    reason: why.clone(),
                });
            }
        }
        let from = if self.cursor.next == Some(i) && info.continues {
            i
        } else {
            self.cursor.state.reset();
            g
        };
        self.cursor.next = None;
        for j in from..i {
            let (meta, payload) = self.payload(j)?;
            for r in RecordIter::new(&payload, &meta, &mut self.cursor.state) {
                r?;
            }
        }
        let (meta, payload) = self.payload(i)?;
        let mut events = Vec::new();
        for r in RecordIter::new(&payload, &meta, &mut self.cursor.state) {
            if let Record::Event(e) = r? {
                events.push(e);
            }
        }
        if events.len() as u64 != meta.event_count {
            return Err(RecordingError::malformed(
                place,
                "chunk event count",
                info.offset + FRAME_HEADER_LEN as u64,
                format!(
                    "{} events where the header says {}",
                    events.len(),
                    meta.event_count
                ),
            ));
        }
        self.cursor.next = Some(i + 1);
        let keyframes = if info.has_keyframes {
            self.keyframes(i).unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(ChunkRecords {
            info: self.chunks[i],
            keyframes,
            events,
        })
    }

    /// The keyframes the seek index has for the start of chunk `i` (empty if none).
    pub fn keyframes(&mut self, i: usize) -> Result<Vec<Keyframe>, RecordingError> {
        let Some(index) = &self.index else {
            return Ok(Vec::new());
        };
        let Ok(at) = index
            .parsed
            .entries
            .binary_search_by_key(&(i as u64), |e| e.chunk)
        else {
            return Ok(Vec::new());
        };
        let entry = index.parsed.entries[at];
        let blob = &index.body[entry.blob.0..entry.blob.1];
        let base = index.offset + FRAME_HEADER_LEN as u64 + entry.blob.0 as u64;
        let malformed =
            |reason: String| RecordingError::malformed(Place::Index, "keyframes", base, reason);
        let opened;
        let data: &[u8] = if self.recipients.is_empty() {
            blob
        } else {
            let dk = self
                .data_key
                .as_ref()
                .ok_or_else(|| RecordingError::Encrypted {
                    recipients: self.recipients().iter().map(|r| r.to_string()).collect(),
                })?;
            opened = dk
                .open_keyframes(at as u64, entry.chunk, blob)
                .ok_or_else(|| malformed("do not decrypt (AEAD tag mismatch)".into()))?;
            &opened
        };
        let raw_len = entry.raw_len as usize;
        let raw = zstd::bulk::Decompressor::new()
            .map_err(|e| RecordingError::io("starting zstd", e))?
            .decompress(data, raw_len)
            .map_err(|e| malformed(format!("do not decompress within {raw_len} bytes: {e}")))?;
        if raw.len() != raw_len {
            return Err(malformed(format!(
                "{} bytes where the index says {raw_len}",
                raw.len()
            )));
        }
        let meta = ChunkMeta {
            seq: entry.chunk,
            t_start: Micros::ZERO,
            t_end: Micros::ZERO,
            event_count: 0,
            flags: 0,
            codec: CODEC_STORED,
            raw_len: raw.len() as u64,
        };
        let mut state = DecodeState::default();
        let mut out = Vec::new();
        for r in RecordIter::new(&raw, &meta, &mut state) {
            match r.map_err(|e| malformed(e.to_string()))? {
                Record::Keyframe(_, k) => out.push(k),
                Record::Event(_) => {
                    return Err(malformed("an event among keyframes".into()));
                }
            }
        }
        Ok(out)
    }

    /// Every event in order, chunk by chunk; stops at the first chunk that cannot be read.
    pub fn events(&mut self) -> Events<'_, R> {
        Events {
            reader: self,
            chunk: 0,
            pending: Vec::new().into_iter(),
            done: false,
        }
    }

    /// The index of the chunk that holds time `t` (the last one starting at or before it).
    pub fn chunk_at(&self, t: Micros) -> Option<usize> {
        let n = self.chunks.partition_point(|c| c.t_start <= t);
        n.checked_sub(1)
    }

    /// Every terminal's state at time `t` (after all events at `t`), rebuilt from the
    /// nearest keyframe of the seek index at or before it (or from the start when the
    /// recording has no seek index yet): the seek a player does.
    pub fn screen_at(&mut self, t: Micros) -> Result<TerminalTracker, RecordingError> {
        let mut tracker = TerminalTracker::new(self.header.terminal);
        let Some(k) = self.chunk_at(t) else {
            return Ok(tracker);
        };
        let from = self.index.as_ref().and_then(|ix| {
            let n = ix.parsed.entries.partition_point(|e| e.chunk <= k as u64);
            n.checked_sub(1)
                .map(|p| ix.parsed.entries[p].chunk as usize)
        });
        let j = match from {
            Some(j) => {
                tracker.restore(&self.keyframes(j)?);
                j
            }
            None => 0,
        };
        for i in j..=k {
            let c = self.read_chunk(i)?;
            for e in &c.events {
                if e.time > t {
                    break;
                }
                tracker.apply(&e.kind);
            }
        }
        Ok(tracker)
    }
}

/// Iterator over a recording's events (see [`Reader::events`]).
pub struct Events<'a, R> {
    reader: &'a mut Reader<R>,
    chunk: usize,
    pending: std::vec::IntoIter<Event>,
    done: bool,
}

impl<R: Read + Seek> Iterator for Events<'_, R> {
    type Item = Result<Event, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.pending.next() {
                return Some(Ok(e));
            }
            if self.done || self.chunk >= self.reader.chunks.len() {
                return None;
            }
            match self.reader.read_chunk(self.chunk) {
                Ok(c) => {
                    self.chunk += 1;
                    self.pending = c.events.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
