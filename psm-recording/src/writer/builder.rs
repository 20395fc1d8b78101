//! The open chunk: events encoded as they arrive, on the caller's thread.
//!
//! The builder also decides where compression groups start (at a chunk's first event, from
//! what it knows then: the group's size, its chunk count, the time since the last event), so
//! output deltas never refer across a group start.

use crate::error::RecordingError;
use crate::event::{ChannelId, EventKind, Stream};
use crate::format::delta::OutputRef;
use crate::format::record::{DeltaScratch, encode_event, encode_output_delta};
use crate::time::Micros;

use super::config::{InputPolicy, WriterConfig};

/// Largest single event (a PNG frame, a clipboard) accepted.
pub const MAX_EVENT_BYTES: usize = 8 << 20;

/// First allocation of a chunk buffer; it grows by doubling (an idle session's chunks are
/// small, and nothing is reserved between chunks).
const FIRST_CAPACITY: usize = 1 << 10;

/// A closed chunk's events, not sealed yet.
#[derive(Debug)]
pub(crate) struct RawChunk {
    pub seq: u64,
    pub t_start: Micros,
    pub t_end: Micros,
    pub events: u64,
    pub payload: Vec<u8>,
    /// Whether it continues the previous chunk's group.
    pub continues: bool,
}

#[derive(Debug)]
pub(crate) struct ChunkBuilder {
    buf: Vec<u8>,
    scratch: Vec<u8>,
    delta: DeltaScratch,
    reference: OutputRef,
    t_start: Micros,
    t_last: Micros,
    events: u64,
    next_seq: u64,
    pub(crate) total_events: u64,
    pub(crate) last_time: Micros,
    chunk_bytes: usize,
    input_policy: InputPolicy,
    /// Output bytes in the open chunk (deltas make this larger than the buffer).
    expanded: usize,
    group_bytes: usize,
    group_chunks: u32,
    idle_release: Micros,
    /// Uncompressed bytes and chunks closed so far in the current group.
    group_raw: usize,
    group_len: u32,
    /// Whether the open chunk continues the group (decided at its first event).
    continues: bool,
    /// The next chunk starts a new group whatever the rules say (after an idle release).
    new_group: bool,
}

impl ChunkBuilder {
    pub(crate) fn new(config: &WriterConfig) -> Self {
        Self {
            buf: Vec::new(),
            scratch: Vec::new(),
            delta: DeltaScratch::default(),
            reference: OutputRef::default(),
            t_start: Micros::ZERO,
            t_last: Micros::ZERO,
            events: 0,
            next_seq: 0,
            total_events: 0,
            last_time: Micros::ZERO,
            chunk_bytes: config.chunk_bytes,
            input_policy: config.input_policy,
            expanded: 0,
            group_bytes: config.group_bytes,
            group_chunks: config.group_chunks,
            idle_release: Micros::from_duration(config.idle_release),
            group_raw: 0,
            group_len: 0,
            continues: false,
            new_group: true,
        }
    }

    pub(crate) fn chunk_start(&self) -> Micros {
        self.t_start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.events == 0
    }

    pub(crate) fn is_full(&self) -> bool {
        self.buf.len() >= self.chunk_bytes || self.expanded >= 2 * self.chunk_bytes
    }

    /// Clamps `t` so times never go backwards, and returns the record's delta.
    fn stamp(&mut self, t: Micros) -> (Micros, u64) {
        let t = t.max(self.last_time);
        if self.events == 0 {
            let idle = t.saturating_sub(self.last_time) >= self.idle_release;
            self.continues = !self.new_group
                && !idle
                && self.group_len > 0
                && self.group_raw < self.group_bytes
                && self.group_len < self.group_chunks;
            if !self.continues {
                self.reference.clear();
            }
            self.new_group = false;
            self.t_start = t;
            self.t_last = t;
            self.expanded = 0;
            if self.buf.capacity() == 0 {
                self.buf.reserve(FIRST_CAPACITY.min(self.chunk_bytes));
            }
        }
        self.last_time = t;
        let dt = t.0 - self.t_last.0;
        self.t_last = t;
        self.events += 1;
        self.total_events += 1;
        (t, dt)
    }

    /// Appends output. Output longer than `chunk_bytes` is split into pieces of that size
    /// (they read back as consecutive output events at the same time); shorter output is never
    /// split. Calls `on_full` with each chunk that fills up.
    pub(crate) fn output(
        &mut self,
        t: Micros,
        channel: ChannelId,
        stream: Stream,
        data: &[u8],
        mut on_full: impl FnMut(RawChunk),
    ) {
        let mut pieces = data.chunks(self.chunk_bytes.max(1));
        let first = pieces.next().unwrap_or_default();
        for piece in std::iter::once(first).chain(pieces) {
            let (_, dt) = self.stamp(t);
            encode_output_delta(
                &mut self.buf,
                dt,
                channel,
                stream,
                piece,
                &mut self.reference,
                &mut self.delta,
            );
            self.expanded += piece.len();
            if self.is_full() {
                on_full(self.take());
            }
        }
    }

    /// Appends any event (after the input policy).
    pub(crate) fn event(&mut self, t: Micros, kind: &EventKind) -> Result<(), RecordingError> {
        let size = match kind {
            EventKind::Output { data, .. }
            | EventKind::Input { data, .. }
            | EventKind::Clipboard { data, .. } => data.len(),
            EventKind::Frame { png, .. } => png.len(),
            EventKind::Pixels {
                width,
                height,
                palette,
                indices,
                ..
            } => {
                crate::graphics::check_pixels(*width, *height, palette, indices).map_err(
                    |reason| RecordingError::InvalidInput {
                        field: "pixels",
                        reason,
                    },
                )?;
                indices.len()
            }
            _ => 0,
        };
        if size > MAX_EVENT_BYTES {
            return Err(RecordingError::InvalidInput {
                field: "event",
                reason: format!("{size} bytes, at most {MAX_EVENT_BYTES} per event"),
            });
        }
        let redacted;
        let kind = match (kind, self.input_policy) {
            (EventKind::Input { channel, .. }, InputPolicy::RedactAll)
            | (
                EventKind::Input {
                    channel,
                    echo_off: true,
                    ..
                },
                InputPolicy::RedactEchoOff,
            ) => {
                redacted = EventKind::InputRedacted { channel: *channel };
                &redacted
            }
            _ => kind,
        };
        let (_, dt) = self.stamp(t);
        if let EventKind::Output {
            channel,
            stream,
            data,
        } = kind
        {
            encode_output_delta(
                &mut self.buf,
                dt,
                *channel,
                *stream,
                data,
                &mut self.reference,
                &mut self.delta,
            );
            self.expanded += data.len();
        } else {
            encode_event(&mut self.buf, &mut self.scratch, dt, kind);
        }
        Ok(())
    }

    /// Closes the chunk (call only when not empty). The next chunk's buffer is allocated
    /// when its first event comes.
    pub(crate) fn take(&mut self) -> RawChunk {
        let payload = std::mem::take(&mut self.buf);
        if self.continues {
            self.group_raw += payload.len();
            self.group_len += 1;
        } else {
            self.group_raw = payload.len();
            self.group_len = 1;
        }
        let c = RawChunk {
            seq: self.next_seq,
            t_start: self.t_start,
            t_end: self.t_last,
            events: self.events,
            payload,
            continues: self.continues,
        };
        self.next_seq += 1;
        self.events = 0;
        c
    }

    /// Frees every buffer of an empty builder; the next chunk starts a new group.
    pub(crate) fn release_idle(&mut self) {
        if self.events == 0 {
            self.buf = Vec::new();
        }
        self.scratch = Vec::new();
        self.delta.release();
        self.reference.release();
        self.new_group = true;
    }

    /// Bytes of buffers held (for tests and benchmarks of idle memory).
    pub(crate) fn held_bytes(&self) -> usize {
        self.buf.capacity()
            + self.scratch.capacity()
            + self.reference.capacity()
            + self.delta.capacity()
    }

    /// Drops buffers (after finish).
    pub(crate) fn release(&mut self) {
        self.buf = Vec::new();
        self.scratch = Vec::new();
        self.delta.release();
        self.reference.release();
    }
}
