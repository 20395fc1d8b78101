//! Chunk bodies and the records inside their payloads.

use super::codec::{Dec, put_bytes, put_opt_u64, put_str, put_uvarint};
use super::delta::{self, OutputRef};
use crate::error::{Place, RecordingError};
use crate::event::{
    ChannelId, ChannelKind, ClipboardDirection, DbError, DbStatement, Event, EventKind,
    FileTransfer, ForwardDirection, Keyframe, PolicyAction, Pty, Record, Stream, TermSize,
    TransferDirection, ViewerMode,
};
use crate::time::Micros;

pub(crate) const CODEC_STORED: u8 = 0;
pub(crate) const CODEC_ZSTD: u8 = 1;
/// The payload is the next piece of its group's zstd frame (see `docs/psmr.md`).
pub(crate) const CODEC_ZSTD_STREAM: u8 = 2;
/// Chunk flag: the chunk continues the group of the previous chunk (its zstd stream and its
/// output references).
pub(crate) const FLAG_CONTINUES: u8 = 1;

pub(crate) const T_OUTPUT: u8 = 0x01;
pub(crate) const T_INPUT: u8 = 0x02;
pub(crate) const T_INPUT_REDACTED: u8 = 0x03;
pub(crate) const T_RESIZE: u8 = 0x04;
pub(crate) const T_CHANNEL_OPEN: u8 = 0x05;
pub(crate) const T_CHANNEL_CLOSE: u8 = 0x06;
pub(crate) const T_FILE_TRANSFER: u8 = 0x07;
pub(crate) const T_CLIPBOARD: u8 = 0x08;
pub(crate) const T_FRAME: u8 = 0x09;
pub(crate) const T_MARKER: u8 = 0x0a;
pub(crate) const T_ANNOTATION: u8 = 0x0b;
pub(crate) const T_POLICY: u8 = 0x0c;
pub(crate) const T_VIEWER_JOINED: u8 = 0x0d;
pub(crate) const T_VIEWER_LEFT: u8 = 0x0e;
pub(crate) const T_SESSION_END: u8 = 0x0f;
pub(crate) const T_OUTPUT_DELTA: u8 = 0x10;
pub(crate) const T_PIXELS: u8 = 0x11;
pub(crate) const T_DB_STATEMENT: u8 = 0x12;
pub(crate) const T_KEYFRAME: u8 = 0x40;

/// The cleartext part of a chunk body (also the AEAD's associated data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkMeta {
    pub seq: u64,
    pub t_start: Micros,
    pub t_end: Micros,
    pub event_count: u64,
    pub flags: u8,
    pub codec: u8,
    pub raw_len: u64,
}

impl ChunkMeta {
    pub(crate) fn continues(&self) -> bool {
        self.flags & FLAG_CONTINUES != 0
    }

    pub(crate) fn encode(&self, b: &mut Vec<u8>) {
        put_uvarint(b, self.seq);
        put_uvarint(b, self.t_start.0);
        put_uvarint(b, self.t_end.0.saturating_sub(self.t_start.0));
        put_uvarint(b, self.event_count);
        b.push(self.flags);
        b.push(self.codec);
        put_uvarint(b, self.raw_len);
    }

    /// Parses the metadata; returns it and the offset of the payload in `body`.
    pub(crate) fn decode(
        body: &[u8],
        place: Place,
        base: u64,
    ) -> Result<(Self, usize), RecordingError> {
        let mut d = Dec::new(body, place, base);
        let seq = d.uvarint("chunk sequence number")?;
        let t_start = Micros(d.uvarint("chunk start time")?);
        let span = d.uvarint("chunk time span")?;
        let t_end = Micros(t_start.0.checked_add(span).ok_or_else(|| {
            d.err(
                "chunk time span",
                format!("{span} after {t_start} overflows"),
            )
        })?);
        let event_count = d.uvarint("chunk event count")?;
        let flags = d.u8("chunk flags")?;
        let codec = d.u8("chunk codec")?;
        if flags & FLAG_CONTINUES != 0 && codec != CODEC_ZSTD_STREAM {
            return Err(d.err(
                "chunk flags",
                format!("only a codec-2 chunk can continue a group (codec {codec})"),
            ));
        }
        let raw_len = d.uvarint("chunk raw length")?;
        if raw_len > super::MAX_CHUNK_RAW as u64 {
            return Err(d.err(
                "chunk raw length",
                format!(
                    "{raw_len} bytes exceeds the limit of {} bytes",
                    super::MAX_CHUNK_RAW
                ),
            ));
        }
        Ok((
            Self {
                seq,
                t_start,
                t_end,
                event_count,
                flags,
                codec,
                raw_len,
            },
            d.position(),
        ))
    }
}

fn record_header(buf: &mut Vec<u8>, ty: u8, dt: u64, body_len: usize) {
    buf.push(ty);
    put_uvarint(buf, dt);
    put_uvarint(buf, body_len as u64);
}

fn uvarint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// The hot path: an output record written straight into the chunk buffer.
pub(crate) fn encode_output(
    buf: &mut Vec<u8>,
    dt: u64,
    channel: ChannelId,
    stream: Stream,
    data: &[u8],
) {
    let ch = u64::from(channel.0);
    record_header(buf, T_OUTPUT, dt, uvarint_len(ch) + 1 + data.len());
    put_uvarint(buf, ch);
    buf.push(stream_code(stream));
    buf.extend_from_slice(data);
}

/// Scratch buffers for [`encode_output_delta`].
#[derive(Debug, Default)]
pub(crate) struct DeltaScratch {
    ops: Vec<u8>,
    values: Vec<u8>,
    body: Vec<u8>,
}

impl DeltaScratch {
    pub(crate) fn release(&mut self) {
        *self = Self::default();
    }

    pub(crate) fn capacity(&self) -> usize {
        self.ops.capacity() + self.values.capacity() + self.body.capacity()
    }
}

/// An output record, written as a delta of the group's previous output when that is at
/// most half the size; updates the reference either way.
pub(crate) fn encode_output_delta(
    buf: &mut Vec<u8>,
    dt: u64,
    channel: ChannelId,
    stream: Stream,
    data: &[u8],
    reference: &mut OutputRef,
    s: &mut DeltaScratch,
) {
    let code = stream_code(stream);
    let as_delta = reference.get(channel.0, code).and_then(|r| {
        s.ops.clear();
        s.values.clear();
        delta::diff(r, data, &mut s.ops, &mut s.values)
    });
    match as_delta {
        Some(count) => {
            s.body.clear();
            put_uvarint(&mut s.body, u64::from(channel.0));
            s.body.push(code);
            put_uvarint(&mut s.body, data.len() as u64);
            put_uvarint(&mut s.body, count);
            s.body.extend_from_slice(&s.ops);
            s.body.extend_from_slice(&s.values);
            record_header(buf, T_OUTPUT_DELTA, dt, s.body.len());
            buf.extend_from_slice(&s.body);
        }
        None => encode_output(buf, dt, channel, stream, data),
    }
    reference.set(channel.0, code, data);
}

pub(crate) fn encode_keyframe(buf: &mut Vec<u8>, k: &Keyframe) {
    let mut body = Vec::with_capacity(k.screen.len() + 8);
    put_uvarint(&mut body, u64::from(k.channel.0));
    put_uvarint(&mut body, u64::from(k.size.cols));
    put_uvarint(&mut body, u64::from(k.size.rows));
    body.extend_from_slice(&k.screen);
    record_header(buf, T_KEYFRAME, 0, body.len());
    buf.extend_from_slice(&body);
}

fn stream_code(s: Stream) -> u8 {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

/// Any event; `scratch` is reused between calls to avoid allocating.
pub(crate) fn encode_event(buf: &mut Vec<u8>, scratch: &mut Vec<u8>, dt: u64, kind: &EventKind) {
    if let EventKind::Output {
        channel,
        stream,
        data,
    } = kind
    {
        encode_output(buf, dt, *channel, *stream, data);
        return;
    }
    scratch.clear();
    let b = scratch;
    let ch = |b: &mut Vec<u8>, c: &ChannelId| put_uvarint(b, u64::from(c.0));
    let ty = match kind {
        EventKind::Output { .. } => T_OUTPUT,
        EventKind::Input {
            channel,
            data,
            echo_off,
        } => {
            ch(b, channel);
            b.push(u8::from(*echo_off));
            b.extend_from_slice(data);
            T_INPUT
        }
        EventKind::InputRedacted { channel } => {
            ch(b, channel);
            T_INPUT_REDACTED
        }
        EventKind::Resize { channel, size } => {
            ch(b, channel);
            put_uvarint(b, u64::from(size.cols));
            put_uvarint(b, u64::from(size.rows));
            T_RESIZE
        }
        EventKind::ChannelOpen { channel, kind } => {
            ch(b, channel);
            encode_channel_kind(b, kind);
            T_CHANNEL_OPEN
        }
        EventKind::ChannelClose {
            channel,
            exit_status,
            exit_signal,
        } => {
            ch(b, channel);
            put_opt_u64(b, exit_status.map(u64::from));
            match exit_signal {
                None => b.push(0),
                Some(s) => {
                    b.push(1);
                    put_str(b, s);
                }
            }
            T_CHANNEL_CLOSE
        }
        EventKind::FileTransfer(t) => {
            ch(b, &t.channel);
            b.push(match t.direction {
                TransferDirection::Upload => 0,
                TransferDirection::Download => 1,
            });
            put_str(b, &t.protocol);
            put_str(b, &t.path);
            put_opt_u64(b, t.size);
            match &t.blake3 {
                None => b.push(0),
                Some(h) => {
                    b.push(1);
                    b.extend_from_slice(h);
                }
            }
            T_FILE_TRANSFER
        }
        EventKind::Clipboard {
            direction,
            mime,
            data,
        } => {
            b.push(match direction {
                ClipboardDirection::ClientToTarget => 0,
                ClipboardDirection::TargetToClient => 1,
            });
            put_str(b, mime);
            put_bytes(b, data);
            T_CLIPBOARD
        }
        EventKind::Frame {
            x,
            y,
            width,
            height,
            png,
        } => {
            for v in [x, y, width, height] {
                put_uvarint(b, u64::from(*v));
            }
            put_bytes(b, png);
            T_FRAME
        }
        EventKind::Pixels {
            x,
            y,
            width,
            height,
            palette,
            indices,
        } => {
            for v in [x, y, width, height] {
                put_uvarint(b, u64::from(*v));
            }
            put_bytes(b, palette);
            put_bytes(b, indices);
            T_PIXELS
        }
        EventKind::Marker { label } => {
            put_str(b, label);
            T_MARKER
        }
        EventKind::Annotation { author, text } => {
            put_str(b, author);
            put_str(b, text);
            T_ANNOTATION
        }
        EventKind::Policy {
            action,
            rule,
            detail,
        } => {
            b.push(match action {
                PolicyAction::Blocked => 0,
                PolicyAction::Paused => 1,
                PolicyAction::Resumed => 2,
                PolicyAction::Terminated => 3,
                PolicyAction::Alert => 4,
            });
            put_str(b, rule);
            put_str(b, detail);
            T_POLICY
        }
        EventKind::ViewerJoined { viewer, mode } => {
            put_str(b, viewer);
            b.push(match mode {
                ViewerMode::Watch => 0,
                ViewerMode::Control => 1,
            });
            T_VIEWER_JOINED
        }
        EventKind::ViewerLeft { viewer } => {
            put_str(b, viewer);
            T_VIEWER_LEFT
        }
        EventKind::SessionEnd { reason } => {
            put_str(b, reason);
            T_SESSION_END
        }
        EventKind::DbStatement(s) => {
            encode_db_statement(b, s);
            T_DB_STATEMENT
        }
    };
    record_header(buf, ty, dt, b.len());
    buf.extend_from_slice(b);
}

fn put_opt_str(b: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => b.push(0),
        Some(s) => {
            b.push(1);
            put_str(b, s);
        }
    }
}

fn encode_db_statement(b: &mut Vec<u8>, s: &DbStatement) {
    put_str(b, &s.database);
    put_str(b, &s.text);
    put_opt_str(b, s.prepared.as_deref());
    put_uvarint(b, s.parameters.len() as u64);
    for p in &s.parameters {
        put_opt_str(b, p.as_deref());
    }
    put_str(b, &s.class);
    put_uvarint(b, s.duration_us);
    put_opt_str(b, s.tag.as_deref());
    put_opt_u64(b, s.rows);
    put_uvarint(b, s.columns.len() as u64);
    for c in &s.columns {
        put_str(b, c);
    }
    put_uvarint(b, s.rows_returned);
    match &s.error {
        None => b.push(0),
        Some(e) => {
            b.push(1);
            put_str(b, &e.code);
            put_str(b, &e.message);
        }
    }
}

fn opt_string(d: &mut Dec<'_>, what: &'static str) -> Result<Option<String>, RecordingError> {
    if d.bool(what)? {
        Ok(Some(d.string(what)?))
    } else {
        Ok(None)
    }
}

/// A count of items that take at least one byte each: more than the bytes left is malformed
/// (checked before anything is allocated for them).
fn count(d: &mut Dec<'_>, what: &'static str) -> Result<usize, RecordingError> {
    let n = d.uvarint(what)?;
    usize::try_from(n)
        .ok()
        .filter(|n| *n <= d.remaining())
        .ok_or_else(|| {
            d.err(
                what,
                format!("{n} items cannot fit in the {} bytes left", d.remaining()),
            )
        })
}

fn decode_db_statement(d: &mut Dec<'_>) -> Result<DbStatement, RecordingError> {
    let database = d.string("statement database")?;
    let text = d.string("statement text")?;
    let prepared = opt_string(d, "prepared statement name")?;
    let n = count(d, "statement parameter count")?;
    let mut parameters = Vec::with_capacity(n);
    for _ in 0..n {
        parameters.push(opt_string(d, "statement parameter")?);
    }
    let class = d.string("statement class")?;
    let duration_us = d.uvarint("statement duration")?;
    let tag = opt_string(d, "statement command tag")?;
    let rows = d.opt_u64("statement rows")?;
    let n = count(d, "result column count")?;
    let mut columns = Vec::with_capacity(n);
    for _ in 0..n {
        columns.push(d.string("result column name")?);
    }
    let rows_returned = d.uvarint("rows returned")?;
    let error = if d.bool("statement error flag")? {
        Some(DbError {
            code: d.string("statement error code")?,
            message: d.string("statement error message")?,
        })
    } else {
        None
    };
    Ok(DbStatement {
        database,
        text,
        prepared,
        parameters,
        class,
        duration_us,
        tag,
        rows,
        columns,
        rows_returned,
        error,
    })
}

fn encode_pty(b: &mut Vec<u8>, pty: &Option<Pty>) {
    match pty {
        None => b.push(0),
        Some(p) => {
            b.push(1);
            put_str(b, &p.term);
            put_uvarint(b, u64::from(p.size.cols));
            put_uvarint(b, u64::from(p.size.rows));
        }
    }
}

fn encode_channel_kind(b: &mut Vec<u8>, k: &ChannelKind) {
    match k {
        ChannelKind::Shell { pty } => {
            b.push(0);
            encode_pty(b, pty);
        }
        ChannelKind::Exec { command, pty } => {
            b.push(1);
            put_str(b, command);
            encode_pty(b, pty);
        }
        ChannelKind::Subsystem { name } => {
            b.push(2);
            put_str(b, name);
        }
        ChannelKind::PortForward {
            direction,
            host,
            port,
            originator,
        } => {
            b.push(match direction {
                ForwardDirection::Local => 3,
                ForwardDirection::Remote => 4,
            });
            put_str(b, host);
            put_uvarint(b, u64::from(*port));
            put_str(b, originator);
        }
        ChannelKind::X11 => b.push(5),
        ChannelKind::Agent => b.push(6),
        ChannelKind::Other { name } => {
            b.push(7);
            put_str(b, name);
        }
    }
}

/// One record, undecoded: its type, time and body.
pub(crate) struct RawRecord<'a> {
    pub ty: u8,
    pub time: Micros,
    pub body: &'a [u8],
    /// Offset of the body in the payload.
    pub base: u64,
}

impl RawRecord<'_> {
    pub(crate) fn decode(&self, seq: u64) -> Result<Option<Record>, RecordingError> {
        decode_record(self.ty, self.time, self.body, seq, self.base)
    }
}

/// Walks a payload's records without decoding their bodies.
pub(crate) struct RawRecordIter<'a> {
    d: Dec<'a>,
    time: u64,
    failed: bool,
}

impl<'a> RawRecordIter<'a> {
    pub(crate) fn new(payload: &'a [u8], meta: &ChunkMeta) -> Self {
        Self {
            d: Dec::new(payload, Place::Chunk(meta.seq), 0),
            time: meta.t_start.0,
            failed: false,
        }
    }

    fn next_raw(&mut self) -> Result<Option<RawRecord<'a>>, RecordingError> {
        if self.d.is_empty() {
            return Ok(None);
        }
        let ty = self.d.u8("record type")?;
        let dt = self.d.uvarint("record time delta")?;
        self.time = self
            .time
            .checked_add(dt)
            .ok_or_else(|| self.d.err("record time delta", "time overflows"))?;
        let body = self.d.bytes("record body")?;
        let base = (self.d.position() - body.len()) as u64;
        Ok(Some(RawRecord {
            ty,
            time: Micros(self.time),
            body,
            base,
        }))
    }
}

impl<'a> Iterator for RawRecordIter<'a> {
    type Item = Result<RawRecord<'a>, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_raw() {
            Ok(r) => r.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// What decoding a group's records carries from one record (and chunk) to the next: the
/// reference of output deltas, and how much output deltas rebuilt in the current chunk.
#[derive(Debug, Default)]
pub(crate) struct DecodeState {
    pub(crate) reference: OutputRef,
    expanded: usize,
}

impl DecodeState {
    /// A new group starts.
    pub(crate) fn reset(&mut self) {
        self.reference.clear();
        self.expanded = 0;
    }
}

/// Walks the records of a decompressed payload, rebuilding output deltas against `state`.
pub(crate) struct RecordIter<'a, 's> {
    raw: RawRecordIter<'a>,
    seq: u64,
    failed: bool,
    state: &'s mut DecodeState,
}

impl<'a, 's> RecordIter<'a, 's> {
    pub(crate) fn new(payload: &'a [u8], meta: &ChunkMeta, state: &'s mut DecodeState) -> Self {
        state.expanded = 0;
        Self {
            raw: RawRecordIter::new(payload, meta),
            seq: meta.seq,
            failed: false,
            state,
        }
    }

    fn decode(&mut self, r: &RawRecord<'_>) -> Result<Option<Record>, RecordingError> {
        if r.ty != T_OUTPUT_DELTA {
            let rec = r.decode(self.seq)?;
            if let Some(Record::Event(Event {
                kind:
                    EventKind::Output {
                        channel,
                        stream,
                        data,
                    },
                ..
            })) = &rec
            {
                self.state
                    .reference
                    .set(channel.0, stream_code(*stream), data);
            }
            return Ok(rec);
        }
        let mut d = Dec::new(r.body, Place::Chunk(self.seq), r.base);
        let channel = ChannelId(d.u32v("channel")?);
        let code = d.u8("stream")?;
        let stream = match code {
            0 => Stream::Stdout,
            1 => Stream::Stderr,
            v => return Err(d.err("stream", format!("unknown stream {v}"))),
        };
        let len = d.uvarint("delta output length")?;
        let budget = (super::MAX_CHUNK_RAW - self.state.expanded) as u64;
        if len > budget {
            return Err(d.err(
                "delta output length",
                format!(
                    "{len} bytes would rebuild more than {} bytes of output in one chunk",
                    super::MAX_CHUNK_RAW
                ),
            ));
        }
        let reference = self.state.reference.get(channel.0, code).ok_or_else(|| {
            d.err(
                "output delta",
                "no previous output of this channel and stream in the group to apply it to",
            )
        })?;
        let data = delta::apply(reference, len as usize, &mut d)?;
        self.state.expanded += data.len();
        self.state.reference.set(channel.0, code, &data);
        Ok(Some(Record::Event(Event {
            time: r.time,
            kind: EventKind::Output {
                channel,
                stream,
                data,
            },
        })))
    }
}

impl Iterator for RecordIter<'_, '_> {
    type Item = Result<Record, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            let r = match self.raw.next()? {
                Ok(r) => self.decode(&r),
                Err(e) => Err(e),
            };
            match r {
                Ok(Some(rec)) => return Some(Ok(rec)),
                // Unknown record type: skipped (a newer minor version wrote it).
                Ok(None) => continue,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

fn decode_pty(d: &mut Dec<'_>) -> Result<Option<Pty>, RecordingError> {
    if !d.bool("pty flag")? {
        return Ok(None);
    }
    let term = d.string("pty TERM")?;
    let size = TermSize::new(d.u16v("pty columns")?, d.u16v("pty rows")?);
    Ok(Some(Pty { term, size }))
}

fn decode_record(
    ty: u8,
    time: Micros,
    body: &[u8],
    seq: u64,
    base: u64,
) -> Result<Option<Record>, RecordingError> {
    let mut d = Dec::new(body, Place::Chunk(seq), base);
    let ev = |kind| Ok(Some(Record::Event(Event { time, kind })));
    let ch = |d: &mut Dec<'_>| d.u32v("channel").map(ChannelId);
    match ty {
        T_OUTPUT => {
            let channel = ch(&mut d)?;
            let stream = match d.u8("stream")? {
                0 => Stream::Stdout,
                1 => Stream::Stderr,
                v => return Err(d.err("stream", format!("unknown stream {v}"))),
            };
            ev(EventKind::Output {
                channel,
                stream,
                data: d.rest().to_vec(),
            })
        }
        T_INPUT => {
            let channel = ch(&mut d)?;
            let echo_off = d.bool("echo-off flag")?;
            ev(EventKind::Input {
                channel,
                echo_off,
                data: d.rest().to_vec(),
            })
        }
        T_INPUT_REDACTED => ev(EventKind::InputRedacted {
            channel: ch(&mut d)?,
        }),
        T_RESIZE => {
            let channel = ch(&mut d)?;
            let size = TermSize::new(d.u16v("columns")?, d.u16v("rows")?);
            ev(EventKind::Resize { channel, size })
        }
        T_CHANNEL_OPEN => {
            let channel = ch(&mut d)?;
            let kind = match d.u8("channel kind")? {
                0 => ChannelKind::Shell {
                    pty: decode_pty(&mut d)?,
                },
                1 => {
                    let command = d.string("exec command")?;
                    ChannelKind::Exec {
                        command,
                        pty: decode_pty(&mut d)?,
                    }
                }
                2 => ChannelKind::Subsystem {
                    name: d.string("subsystem")?,
                },
                k @ (3 | 4) => ChannelKind::PortForward {
                    direction: if k == 3 {
                        ForwardDirection::Local
                    } else {
                        ForwardDirection::Remote
                    },
                    host: d.string("forward host")?,
                    port: d.u16v("forward port")?,
                    originator: d.string("forward originator")?,
                },
                5 => ChannelKind::X11,
                6 => ChannelKind::Agent,
                7 => ChannelKind::Other {
                    name: d.string("channel type")?,
                },
                v => return Err(d.err("channel kind", format!("unknown kind {v}"))),
            };
            ev(EventKind::ChannelOpen { channel, kind })
        }
        T_CHANNEL_CLOSE => {
            let channel = ch(&mut d)?;
            let exit_status = match d.opt_u64("exit status")? {
                None => None,
                Some(v) => {
                    Some(u32::try_from(v).map_err(|_| d.err("exit status", format!("{v} > u32")))?)
                }
            };
            let exit_signal = if d.bool("exit signal flag")? {
                Some(d.string("exit signal")?)
            } else {
                None
            };
            ev(EventKind::ChannelClose {
                channel,
                exit_status,
                exit_signal,
            })
        }
        T_FILE_TRANSFER => {
            let channel = ch(&mut d)?;
            let direction = match d.u8("transfer direction")? {
                0 => TransferDirection::Upload,
                1 => TransferDirection::Download,
                v => return Err(d.err("transfer direction", format!("unknown {v}"))),
            };
            let protocol = d.string("transfer protocol")?;
            let path = d.string("transfer path")?;
            let size = d.opt_u64("transfer size")?;
            let blake3 = if d.bool("content hash flag")? {
                Some(d.array::<32>("content hash")?)
            } else {
                None
            };
            ev(EventKind::FileTransfer(FileTransfer {
                channel,
                direction,
                protocol,
                path,
                size,
                blake3,
            }))
        }
        T_CLIPBOARD => {
            let direction = match d.u8("clipboard direction")? {
                0 => ClipboardDirection::ClientToTarget,
                1 => ClipboardDirection::TargetToClient,
                v => return Err(d.err("clipboard direction", format!("unknown {v}"))),
            };
            let mime = d.string("clipboard type")?;
            let data = d.bytes("clipboard data")?.to_vec();
            ev(EventKind::Clipboard {
                direction,
                mime,
                data,
            })
        }
        T_FRAME => {
            let x = d.u32v("frame x")?;
            let y = d.u32v("frame y")?;
            let width = d.u32v("frame width")?;
            let height = d.u32v("frame height")?;
            let png = d.bytes("frame PNG")?.to_vec();
            ev(EventKind::Frame {
                x,
                y,
                width,
                height,
                png,
            })
        }
        T_PIXELS => {
            let x = d.u32v("pixels x")?;
            let y = d.u32v("pixels y")?;
            let width = d.u32v("pixels width")?;
            let height = d.u32v("pixels height")?;
            let palette = d.bytes("pixels palette")?;
            let indices = d.bytes("pixel indices")?;
            crate::graphics::check_pixels(width, height, palette, indices)
                .map_err(|reason| d.err("pixels", reason))?;
            ev(EventKind::Pixels {
                x,
                y,
                width,
                height,
                palette: palette.to_vec(),
                indices: indices.to_vec(),
            })
        }
        T_MARKER => ev(EventKind::Marker {
            label: d.string("marker label")?,
        }),
        T_ANNOTATION => {
            let author = d.string("annotation author")?;
            let text = d.string("annotation text")?;
            ev(EventKind::Annotation { author, text })
        }
        T_POLICY => {
            let action = match d.u8("policy action")? {
                0 => PolicyAction::Blocked,
                1 => PolicyAction::Paused,
                2 => PolicyAction::Resumed,
                3 => PolicyAction::Terminated,
                4 => PolicyAction::Alert,
                v => return Err(d.err("policy action", format!("unknown {v}"))),
            };
            let rule = d.string("policy rule")?;
            let detail = d.string("policy detail")?;
            ev(EventKind::Policy {
                action,
                rule,
                detail,
            })
        }
        T_VIEWER_JOINED => {
            let viewer = d.string("viewer")?;
            let mode = match d.u8("viewer mode")? {
                0 => ViewerMode::Watch,
                1 => ViewerMode::Control,
                v => return Err(d.err("viewer mode", format!("unknown {v}"))),
            };
            ev(EventKind::ViewerJoined { viewer, mode })
        }
        T_VIEWER_LEFT => ev(EventKind::ViewerLeft {
            viewer: d.string("viewer")?,
        }),
        T_SESSION_END => ev(EventKind::SessionEnd {
            reason: d.string("end reason")?,
        }),
        T_DB_STATEMENT => ev(EventKind::DbStatement(Box::new(decode_db_statement(
            &mut d,
        )?))),
        T_KEYFRAME => {
            let channel = ch(&mut d)?;
            let size = TermSize::new(d.u16v("keyframe columns")?, d.u16v("keyframe rows")?);
            Ok(Some(Record::Keyframe(
                time,
                Keyframe {
                    channel,
                    size,
                    screen: d.rest().to_vec(),
                },
            )))
        }
        _ => Ok(None),
    }
}
