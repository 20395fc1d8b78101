//! Sealing closed chunks: zstd (one stream per group), encryption, framing, hash chain,
//! signature, I/O; and, with live keyframes, the terminals' state for the seek index.
//! Runs on a blocking thread, never on the caller's task.

use std::time::Instant;

use crate::error::{Place, RecordingError};
use crate::format::crypto::DataKey;
use crate::format::frame::{self, KIND_CHUNK, KIND_HEADER, KIND_INDEX, KIND_TRAILER, write_frame};
use crate::format::header::{self as header_codec, HeaderFrame};
use crate::format::record::{CODEC_ZSTD_STREAM, ChunkMeta, FLAG_CONTINUES};
use crate::format::stream::StreamCompressor;
use crate::format::trailer::{self, ChunkInfo, Trailer};
use crate::header::Header;
use crate::index::KeyframeCollector;
use crate::keys::{SigningKey, VerifyingKey};
use crate::time::Micros;

use super::builder::RawChunk;
use super::config::{FsyncPolicy, WriterConfig};
use super::sink::RecordingSink;

/// What a finished recording looks like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedRecording {
    /// Chunks written.
    pub chunks: u64,
    /// Events written.
    pub events: u64,
    /// Bytes in the file (with the seek index, if the writer made one).
    pub bytes: u64,
    /// Time of the last event.
    pub duration: Micros,
    /// The chain hash the trailer's signature covers.
    pub final_hash: [u8; 32],
    /// The key that signed it.
    pub signer: VerifyingKey,
    /// Keyframe entries in the seek index the writer appended (0: none).
    pub keyframes: u64,
}

pub(crate) struct Sealer {
    sink: Box<dyn RecordingSink>,
    key: SigningKey,
    data_key: Option<DataKey>,
    prev: [u8; 32],
    offset: u64,
    index: Vec<ChunkInfo>,
    level: i32,
    window_log: u32,
    long_distance: bool,
    /// The open group's zstd stream; `None` between groups once released.
    stream: Option<StreamCompressor>,
    keyframes: Option<KeyframeCollector>,
    fsync: FsyncPolicy,
    last_sync: Instant,
    frame_buf: Vec<u8>,
    compressed: Vec<u8>,
    body: Vec<u8>,
}

impl Sealer {
    /// Writes the preamble and header frame, and syncs them.
    pub(crate) fn start(
        mut sink: Box<dyn RecordingSink>,
        header: &Header,
        key: SigningKey,
        config: &WriterConfig,
    ) -> Result<Self, RecordingError> {
        config.validate()?;
        let data_key = if config.recipients.is_empty() {
            None
        } else {
            Some(DataKey::generate()?)
        };
        let recipients = match &data_key {
            None => Vec::new(),
            Some(dk) => config
                .recipients
                .iter()
                .map(|r| dk.wrap_for(r))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let body = header_codec::encode(&HeaderFrame {
            header: header.clone(),
            signer: key.verifying_key(),
            recipients,
        });
        if body.len() > header_codec::MAX_HEADER_BODY as usize {
            return Err(RecordingError::InvalidInput {
                field: "header",
                reason: format!("{} bytes encoded, at most 1 MiB", body.len()),
            });
        }
        let pre = frame::preamble();
        let mut out = pre.to_vec();
        let prev = write_frame(
            &mut out,
            KIND_HEADER,
            &body,
            &frame::chain_start(&pre),
            &key,
        )?;
        sink.append(&out)
            .and_then(|()| sink.sync())
            .map_err(|e| RecordingError::io("writing the recording header", e))?;
        let keyframes = config.live_keyframes.then(|| {
            KeyframeCollector::new(
                header.terminal,
                config.keyframe_bytes,
                config.keyframe_interval,
            )
        });
        Ok(Self {
            sink,
            key,
            data_key,
            prev,
            offset: out.len() as u64,
            index: Vec::new(),
            level: config.compression_level,
            window_log: config.window_log(),
            long_distance: config.long_distance_matching,
            stream: None,
            keyframes,
            fsync: config.fsync,
            last_sync: Instant::now(),
            frame_buf: Vec::new(),
            compressed: Vec::new(),
            body: Vec::new(),
        })
    }

    /// Seals and writes one chunk. `timed`: closed by the flush timer (sync it).
    pub(crate) fn seal(&mut self, raw: RawChunk, timed: bool) -> Result<(), RecordingError> {
        let seq = raw.seq;
        let zstd_err = |e: String| {
            RecordingError::io(format!("compressing chunk {seq}"), std::io::Error::other(e))
        };
        // 1. Keyframes (if the writer makes them): the terminals' state before this chunk.
        if let Some(k) = &mut self.keyframes {
            k.before_chunk(self.index.len() as u64, raw.t_start, self.data_key.as_ref())?;
            k.follow_chunk(seq, raw.t_start, raw.t_end, raw.continues, &raw.payload)?;
        }

        // 2. Compress: the next piece of the group's zstd stream.
        let stream = match (&mut self.stream, raw.continues) {
            (Some(s), true) => s,
            (slot, _) => {
                if raw.continues {
                    return Err(RecordingError::WriterStopped(format!(
                        "chunk {seq} continues a group whose compression state is gone"
                    )));
                }
                match slot {
                    Some(s) => {
                        s.start_frame().map_err(zstd_err)?;
                        s
                    }
                    None => slot.insert(
                        StreamCompressor::new(self.level, self.window_log, self.long_distance)
                            .map_err(zstd_err)?,
                    ),
                }
            }
        };
        self.compressed.clear();
        stream
            .piece(&raw.payload, &mut self.compressed)
            .map_err(zstd_err)?;
        let meta = ChunkMeta {
            seq,
            t_start: raw.t_start,
            t_end: raw.t_end,
            event_count: raw.events,
            flags: if raw.continues { FLAG_CONTINUES } else { 0 },
            codec: CODEC_ZSTD_STREAM,
            raw_len: raw.payload.len() as u64,
        };
        self.body.clear();
        meta.encode(&mut self.body);
        let aad_len = self.body.len();

        // 3. Encrypt.
        match &self.data_key {
            None => self.body.extend_from_slice(&self.compressed),
            Some(dk) => {
                let sealed = dk.seal(seq, &self.body[..aad_len], &self.compressed)?;
                self.body.extend_from_slice(&sealed);
            }
        }

        // 4. Frame, chain, sign, write.
        self.frame_buf.clear();
        let hash = write_frame(
            &mut self.frame_buf,
            KIND_CHUNK,
            &self.body,
            &self.prev,
            &self.key,
        )?;
        self.sink
            .append(&self.frame_buf)
            .map_err(|e| RecordingError::io(format!("writing chunk {seq}"), e))?;
        self.index.push(ChunkInfo {
            seq,
            offset: self.offset,
            frame_len: self.frame_buf.len() as u64,
            t_start: raw.t_start,
            t_end: raw.t_end,
            event_count: raw.events,
            has_keyframes: false,
            continues: raw.continues,
            hash: Some(hash),
        });
        self.offset += self.frame_buf.len() as u64;
        self.prev = hash;
        self.shrink(256 << 10);

        // 5. Sync per policy.
        let sync = match self.fsync {
            FsyncPolicy::EveryChunk => true,
            FsyncPolicy::Periodic(p) => timed || self.last_sync.elapsed() >= p,
            FsyncPolicy::Never => false,
        };
        if sync {
            self.sync(Place::Chunk(seq))?;
        }
        Ok(())
    }

    fn shrink(&mut self, above: usize) {
        for b in [&mut self.frame_buf, &mut self.compressed, &mut self.body] {
            if b.capacity() > above {
                *b = Vec::new();
            }
        }
    }

    /// The session went idle: frees the compression state and buffers (the next chunk
    /// starts a new group, as the builder decided too).
    pub(crate) fn release_idle(&mut self) {
        self.stream = None;
        self.shrink(0);
    }

    /// Bytes of buffers and compression state held (for tests and benchmarks).
    pub(crate) fn held_bytes(&self) -> usize {
        self.stream.as_ref().map_or(0, StreamCompressor::memory)
            + self.frame_buf.capacity()
            + self.compressed.capacity()
            + self.body.capacity()
            + self.index.capacity() * std::mem::size_of::<ChunkInfo>()
    }

    pub(crate) fn sync(&mut self, place: Place) -> Result<(), RecordingError> {
        self.sink
            .sync()
            .map_err(|e| RecordingError::io(format!("syncing after the {place}"), e))?;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Writes the trailer and footer (and the seek index, with live keyframes) and syncs.
    pub(crate) fn finish(
        &mut self,
        end: Micros,
        events: u64,
        reason: &str,
    ) -> Result<FinishedRecording, RecordingError> {
        self.stream = None;
        let mut index = std::mem::take(&mut self.index);
        // The index keeps the chain hash of each group's last chunk only.
        let n = index.len();
        for i in 0..n {
            if index.get(i + 1).is_some_and(|c| c.continues) {
                index[i].hash = None;
            }
        }
        let t = Trailer {
            end,
            event_count: events,
            end_reason: reason.to_owned(),
            index,
        };
        let body = trailer::encode(&t);
        let mut out = Vec::with_capacity(body.len() + 128);
        let trailer_offset = self.offset;
        let hash = write_frame(&mut out, KIND_TRAILER, &body, &self.prev, &self.key)?;
        out.extend_from_slice(&frame::footer(trailer_offset));
        let mut keyframes = 0;
        let mut last = hash;
        if let Some(k) = self.keyframes.take() {
            let index_offset = trailer_offset + out.len() as u64;
            let (body, count) = k.finish(&self.key.verifying_key(), index_offset, n as u64);
            if count > 0 {
                last = write_frame(&mut out, KIND_INDEX, &body, &hash, &self.key)?;
                out.extend_from_slice(&frame::index_footer(index_offset));
                keyframes = count;
            }
        }
        self.sink
            .append(&out)
            .map_err(|e| RecordingError::io("writing the trailer", e))?;
        self.sync(Place::Trailer)?;
        self.offset += out.len() as u64;
        self.prev = last;
        Ok(FinishedRecording {
            chunks: t.index.len() as u64,
            events,
            bytes: self.offset,
            duration: end,
            final_hash: hash,
            signer: self.key.verifying_key(),
            keyframes,
        })
    }
}
