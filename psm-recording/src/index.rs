//! Seek indexes: keyframes of every terminal at chosen chunk starts, so a player can jump
//! to any instant by decoding one keyframe and the events after it, instead of replaying
//! the session from the start.
//!
//! Computing keyframes means emulating every terminal over all of its output, which is
//! most of what writing costs on escape-heavy output. So a gateway's writer does not do it:
//! the encoder that processes each recording after the session appends the index with
//! [`add_seek_index`] (signed by its own key, chained to the recording's last frame, and
//! encrypted like the recording). Tools and imports can let the writer do it as it goes
//! ([`WriterConfig::live_keyframes`](crate::WriterConfig::live_keyframes)). A recording
//! without an index reads, verifies and exports the same; only seeking replays from the
//! start.
//!
//! ```
//! # fn demo() -> Result<(), psm_recording::RecordingError> {
//! use psm_recording::*;
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("s.psmr");
//! let gateway = SigningKey::generate()?;
//! let header = Header::new(psm_core::SessionId::new(), Protocol::Ssh, "alice", "web-01", "gw-1")
//!     .with_terminal(TermSize::new(80, 24), "xterm");
//! let mut w = BlockingWriter::create(&path, header, gateway.clone(), WriterConfig::default())?;
//! for i in 0..6000u64 {
//!     w.output_at(Micros(i * 50_000), ChannelId(0), Stream::Stdout,
//!                 format!("\x1b[H\x1b[2Jframe {i}\r\n").as_bytes())?;
//! }
//! w.finish("done")?;
//!
//! // After the session: the encoder adds the keyframes.
//! let encoder = SigningKey::generate()?;
//! let added = index::add_seek_index(&path, &index::IndexOptions::new(encoder.clone()))?;
//! assert!(added.keyframes > 0);
//! let mut r = Reader::open(&path, ReadOptions::default())?;
//! assert_eq!(r.seek_index().unwrap().signer, encoder.verifying_key());
//! let mut screen = r.screen_at(Micros(60_000_000))?;
//! assert_eq!(screen.terminal(ChannelId(0)).unwrap().lines()[0], "frame 1200");
//! # Ok(()) }
//! # demo().unwrap();
//! ```

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use crate::error::RecordingError;
use crate::event::{Event, EventKind, TermSize};
use crate::format::crypto::DataKey;
use crate::format::frame::{self, KIND_INDEX, write_frame};
use crate::format::index as index_codec;
use crate::format::record::{CODEC_STORED, ChunkMeta, DecodeState, RecordIter, encode_keyframe};
use crate::format::{MAX_CHUNK_RAW, MAX_FRAME_BODY};
use crate::keys::{RecipientSecret, SigningKey, VerifyingKey};
use crate::reader::{ReadOptions, Reader};
use crate::terminal::TerminalTracker;
use crate::time::Micros;

/// How [`add_seek_index`] works.
#[derive(Clone, Debug)]
pub struct IndexOptions {
    /// Signs the index (readers that trust only given keys ignore an index by another).
    pub key: SigningKey,
    /// Decrypts an encrypted recording (the keyframes are encrypted with its data key).
    pub identity: Option<RecipientSecret>,
    /// Keyframes once this much terminal output has gone by since the last ones (default
    /// 64 KiB)...
    pub keyframe_bytes: usize,
    /// ...or this much time with some output (default 120 s: the byte bound already keeps
    /// replay short, and idle-heavy sessions then pay less for keyframes).
    pub keyframe_interval: Duration,
}

impl IndexOptions {
    /// The defaults, signed by `key`.
    pub fn new(key: SigningKey) -> Self {
        Self {
            key,
            identity: None,
            keyframe_bytes: 64 << 10,
            keyframe_interval: Duration::from_secs(120),
        }
    }
}

/// What [`add_seek_index`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSummary {
    /// Chunks that got keyframes.
    pub keyframes: u64,
    /// Bytes the index takes in the file.
    pub bytes: u64,
    /// Whether an earlier index was replaced.
    pub replaced: bool,
}

/// Computes keyframes for a recording and appends them as its seek index (replacing an
/// earlier one, or what a crash left of one after the footer). The recording itself is not
/// changed: its bytes, hash chain and signatures stay as the writer made them, so `psm
/// verify` gives the same verdict for it. It writes the file in place: callers that need
/// the file whole at every instant index a copy and rename it (as `psm_pipeline::seek_index`
/// does). Works on finished recordings, and on cut-off ones that end at a frame boundary
/// (after a partial last frame, the index makes the file read as tampered: section 5 of
/// `docs/psmr.md`); keyframes stop at the first chunk that cannot be read. Do not run it on
/// a recording a writer is still appending to.
pub fn add_seek_index(
    path: impl AsRef<Path>,
    options: &IndexOptions,
) -> Result<IndexSummary, RecordingError> {
    let path = path.as_ref();
    let mut r = Reader::open(
        path,
        ReadOptions {
            identity: options.identity.clone(),
            ..ReadOptions::default()
        },
    )?;
    if r.is_encrypted() && r.data_key().is_none() {
        return Err(RecordingError::Encrypted {
            recipients: r.recipients().iter().map(|k| k.to_string()).collect(),
        });
    }
    let covers = r.raw_len();
    let replaced = covers < r.file_len();
    let mut k = KeyframeCollector::new(
        r.header().terminal,
        options.keyframe_bytes,
        options.keyframe_interval,
    );
    let dk = r.data_key().cloned();
    let n = r.chunks().len();
    for i in 0..n {
        let t_start = r.chunks()[i].t_start;
        k.before_chunk(i as u64, t_start, dk.as_ref())?;
        match r.read_chunk(i) {
            Ok(c) => k.follow_events(&c.events),
            // Past a gap the terminals' state is unknown: no more keyframes.
            Err(_) => break,
        }
    }
    let last_hash = r.last_hash();
    drop(r);
    let (body, count) = k.finish(&options.key.verifying_key(), covers, n as u64);
    let mut out = Vec::with_capacity(body.len() + 96);
    write_frame(&mut out, KIND_INDEX, &body, &last_hash, &options.key)?;
    out.extend_from_slice(&frame::index_footer(covers));
    let io = |e| RecordingError::io(format!("appending the seek index to {}", path.display()), e);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io)?;
    f.set_len(covers).map_err(io)?;
    f.seek(SeekFrom::Start(covers)).map_err(io)?;
    f.write_all(&out).map_err(io)?;
    f.sync_data().map_err(io)?;
    Ok(IndexSummary {
        keyframes: count,
        bytes: out.len() as u64,
        replaced,
    })
}

/// Follows a session's terminals and takes keyframes at chunk starts, by the rules of
/// [`IndexOptions`]: shared by the writer (live keyframes) and [`add_seek_index`].
pub(crate) struct KeyframeCollector {
    tracker: TerminalTracker,
    decode: DecodeState,
    every_bytes: usize,
    every: Micros,
    output_since: usize,
    last_time: Micros,
    entries: Vec<(u64, u64, Vec<u8>)>,
    total: usize,
    records: Vec<u8>,
}

impl KeyframeCollector {
    pub(crate) fn new(terminal: Option<TermSize>, every_bytes: usize, every: Duration) -> Self {
        Self {
            tracker: TerminalTracker::new(terminal),
            decode: DecodeState::default(),
            every_bytes: every_bytes.max(1),
            every: Micros::from_duration(every),
            output_since: 0,
            last_time: Micros::ZERO,
            entries: Vec::new(),
            total: 0,
            records: Vec::new(),
        }
    }

    /// Before chunk `chunk` (starting at `t_start`): takes keyframes if they are due.
    pub(crate) fn before_chunk(
        &mut self,
        chunk: u64,
        t_start: Micros,
        data_key: Option<&DataKey>,
    ) -> Result<(), RecordingError> {
        let due = self.output_since > 0
            && !self.tracker.is_empty()
            && (self.output_since >= self.every_bytes
                || t_start.saturating_sub(self.last_time) >= self.every);
        if !due {
            return Ok(());
        }
        self.records.clear();
        for k in self.tracker.keyframes() {
            encode_keyframe(&mut self.records, &k);
        }
        if self.records.len() > MAX_CHUNK_RAW {
            return Ok(());
        }
        let compressed = zstd::bulk::compress(&self.records, 3)
            .map_err(|e| RecordingError::io("compressing keyframes", e))?;
        let blob = match data_key {
            None => compressed,
            Some(dk) => dk.seal_keyframes(self.entries.len() as u64, chunk, &compressed)?,
        };
        // The index is one frame: stop adding keyframes before it would outgrow one.
        if self.total + blob.len() + 64 > MAX_FRAME_BODY as usize / 2 {
            return Ok(());
        }
        self.total += blob.len() + 16;
        self.entries.push((chunk, self.records.len() as u64, blob));
        self.output_since = 0;
        self.last_time = t_start;
        Ok(())
    }

    /// Follows a chunk's events.
    pub(crate) fn follow_events(&mut self, events: &[Event]) {
        for e in events {
            self.follow(&e.kind);
        }
    }

    fn follow(&mut self, kind: &EventKind) {
        match kind {
            EventKind::Output { data, .. } => self.output_since += data.len(),
            EventKind::ChannelOpen { .. } => self.output_since += 1,
            _ => {}
        }
        self.tracker.apply(kind);
    }

    /// Follows a chunk's encoded records (the writer's side).
    pub(crate) fn follow_chunk(
        &mut self,
        seq: u64,
        t_start: Micros,
        t_end: Micros,
        continues: bool,
        payload: &[u8],
    ) -> Result<(), RecordingError> {
        if !continues {
            self.decode.reset();
        }
        let meta = ChunkMeta {
            seq,
            t_start,
            t_end,
            event_count: 0,
            flags: 0,
            codec: CODEC_STORED,
            raw_len: payload.len() as u64,
        };
        let mut decode = std::mem::take(&mut self.decode);
        for r in RecordIter::new(payload, &meta, &mut decode) {
            if let crate::event::Record::Event(e) = r? {
                self.follow(&e.kind);
            }
        }
        self.decode = decode;
        Ok(())
    }

    /// The index body and its entry count.
    pub(crate) fn finish(
        self,
        signer: &VerifyingKey,
        covers: u64,
        chunk_count: u64,
    ) -> (Vec<u8>, u64) {
        let n = self.entries.len() as u64;
        (
            index_codec::encode(signer, covers, chunk_count, &self.entries),
            n,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{BlockingWriter, ChannelId, Header, Protocol, Stream, VerifyOptions, WriterConfig};

    #[test]
    fn an_index_torn_by_a_crash_is_replaced_and_the_file_stays_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.psmr");
        let header = Header::new(psm_core::SessionId::new(), Protocol::Ssh, "a", "t", "w")
            .with_terminal(TermSize::new(80, 24), "xterm");
        let gateway = SigningKey::generate().unwrap();
        let mut w =
            BlockingWriter::create(&path, header, gateway, WriterConfig::default()).unwrap();
        for i in 0..3000u64 {
            let line = format!("\x1b[H\x1b[2Jframe {i} {}\r\n", "x".repeat(60));
            w.output_at(
                Micros(i * 100_000),
                ChannelId(0),
                Stream::Stdout,
                line.as_bytes(),
            )
            .unwrap();
        }
        w.finish("done").unwrap();
        let recording = std::fs::read(&path).unwrap();
        let options = IndexOptions::new(SigningKey::generate().unwrap());
        add_seek_index(&path, &options).unwrap();
        let indexed = std::fs::read(&path).unwrap();
        assert!(indexed.len() > recording.len() + 100);

        // A crash halfway through the append: the reader ignores the unfinished index...
        let torn = &indexed[..recording.len() + (indexed.len() - recording.len()) / 2];
        std::fs::write(&path, torn).unwrap();
        let report = crate::verify(&path, &VerifyOptions::default()).unwrap();
        assert!(report.status.is_intact(), "{}", report.status);
        assert!(report.seek_index.is_none());
        // ...and indexing again replaces it: the same bytes as an append that finished.
        let again = add_seek_index(&path, &options).unwrap();
        assert!(again.replaced);
        assert_eq!(std::fs::read(&path).unwrap(), indexed);
        let report = crate::verify(&path, &VerifyOptions::default()).unwrap();
        assert!(report.status.is_intact(), "{}", report.status);
        assert!(report.seek_index.is_some());
    }
}
