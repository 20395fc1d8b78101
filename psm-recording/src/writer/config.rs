//! How a writer chunks, compresses, syncs, redacts and encrypts.

use std::time::Duration;

use crate::error::RecordingError;
use crate::keys::RecipientPublic;

/// When the writer calls `fdatasync` on the recording file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every chunk: nothing flushed is ever lost, at a cost under bulk output.
    EveryChunk,
    /// After a chunk if the last sync is at least this old, after every chunk closed by the
    /// flush timer (light output is synced within one flush interval), on
    /// [`RecordingWriter::flush`](crate::RecordingWriter::flush) and on finish. The default,
    /// one second: a crash loses at most the chunks written in the last second of bulk output.
    Periodic(Duration),
    /// Only on `flush` and finish (the OS writes back when it likes). For tests and imports.
    Never,
}

/// What happens to what the user types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InputPolicy {
    /// Input typed while the terminal echo is off (passwords) is recorded as
    /// [`EventKind::InputRedacted`](crate::EventKind::InputRedacted); the rest as typed.
    #[default]
    RedactEchoOff,
    /// Everything as typed, echo off or not (`echo_off` is kept on the event).
    RecordAll,
    /// No keystroke is recorded, only that input happened.
    RedactAll,
}

/// Configuration of a [`RecordingWriter`](crate::RecordingWriter).
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// A chunk is closed when its uncompressed events reach this many bytes
    /// (4 KiB..=8 MiB; default 256 KiB). Bulk output larger than this is split.
    pub chunk_bytes: usize,
    /// A chunk is closed when its first event is this old (default 1 s), and synced: a
    /// process killed at any moment loses at most this much of its session. Bulk output
    /// fills chunks by size well before that; light output pays one small chunk (a piece of
    /// the group's zstd stream, its frame and signature) per interval with events.
    pub flush_interval: Duration,
    /// When to fsync (default [`FsyncPolicy::Periodic`] of 1 s).
    pub fsync: FsyncPolicy,
    /// zstd level, 1..=19 (default 3).
    pub compression_level: i32,
    /// The chunks of a compression group are pieces of one zstd stream, so each chunk is
    /// compressed with the group's earlier chunks as history; reading any chunk decodes at
    /// most its group. A new group starts once the current one holds this much
    /// uncompressed data (64 KiB..=16 MiB; default 1 MiB, which is also the zstd window)...
    pub group_bytes: usize,
    /// ...or this many chunks (1..=4096; default 320, five minutes of one-second chunks), which
    /// bounds the chunks a seek decodes in a quiet session...
    pub group_chunks: u32,
    /// ...or when no event came for this long (default 10 s): an idle writer then frees its
    /// chunk buffers and compression state, so an idle session costs little memory.
    pub idle_release: Duration,
    /// zstd's long-distance matcher (default false): finds long repeats anywhere in the
    /// group's window, not only near ones. Worth it for raw screen pixels
    /// ([`EventKind::Pixels`](crate::EventKind::Pixels)), where a scrolled or redrawn
    /// region repeats a frame written hundreds of kilobytes earlier; costs some CPU and
    /// about `group_bytes / 16` of tables. Readers need nothing more.
    pub long_distance_matching: bool,
    /// Keystroke redaction (default [`InputPolicy::RedactEchoOff`]).
    pub input_policy: InputPolicy,
    /// Emulate every terminal while writing and append a seek index (keyframes) when
    /// finishing (default false). The emulation costs most of a writer's CPU on
    /// escape-heavy output, so gateways leave it off and the encoder adds the index after
    /// the session ([`add_seek_index`](crate::index::add_seek_index)); imports and tools
    /// turn it on.
    pub live_keyframes: bool,
    /// With keyframes, a chunk gets keyframes once this much terminal output has gone by
    /// since the last ones (default 64 KiB)...
    pub keyframe_bytes: usize,
    /// ...or this much time with some output (default 120 s: the byte bound already keeps
    /// replay short, and idle-heavy sessions then pay less for keyframes).
    pub keyframe_interval: Duration,
    /// Closed chunks waiting to be sealed before `push` waits (default 2): with
    /// `chunk_bytes` this bounds the writer's buffers to about
    /// `(queue_chunks + 2) × chunk_bytes`, plus the zstd window (`group_bytes`) and tables
    /// while a group is open.
    pub queue_chunks: usize,
    /// Encrypt for these recipients (none: not encrypted). At most 64.
    pub recipients: Vec<RecipientPublic>,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            chunk_bytes: 256 << 10,
            flush_interval: Duration::from_secs(1),
            fsync: FsyncPolicy::Periodic(Duration::from_secs(1)),
            compression_level: 3,
            group_bytes: 1 << 20,
            group_chunks: 320,
            idle_release: Duration::from_secs(10),
            long_distance_matching: false,
            input_policy: InputPolicy::RedactEchoOff,
            live_keyframes: false,
            keyframe_bytes: 64 << 10,
            keyframe_interval: Duration::from_secs(120),
            queue_chunks: 2,
            recipients: Vec::new(),
        }
    }
}

impl WriterConfig {
    /// The zstd window: enough for a group, within the format's limit.
    pub(crate) fn window_log(&self) -> u32 {
        let bits = usize::BITS - self.group_bytes.saturating_sub(1).leading_zeros();
        bits.clamp(
            crate::format::stream::MIN_WINDOW_LOG,
            crate::format::stream::MAX_WINDOW_LOG,
        )
    }

    pub(crate) fn validate(&self) -> Result<(), RecordingError> {
        let bad = |field, reason: String| Err(RecordingError::InvalidInput { field, reason });
        if !(4 << 10..=8 << 20).contains(&self.chunk_bytes) {
            return bad(
                "chunk_bytes",
                format!("{} is outside 4 KiB..=8 MiB", self.chunk_bytes),
            );
        }
        if self.flush_interval.is_zero() {
            return bad("flush_interval", "must be positive".into());
        }
        if !(1..=19).contains(&self.compression_level) {
            return bad(
                "compression_level",
                format!("{} is outside 1..=19", self.compression_level),
            );
        }
        if !(64 << 10..=16 << 20).contains(&self.group_bytes) {
            return bad(
                "group_bytes",
                format!("{} is outside 64 KiB..=16 MiB", self.group_bytes),
            );
        }
        if !(1..=4096).contains(&self.group_chunks) {
            return bad(
                "group_chunks",
                format!("{} is outside 1..=4096", self.group_chunks),
            );
        }
        if self.idle_release.is_zero() {
            return bad("idle_release", "must be positive".into());
        }
        if self.queue_chunks == 0 || self.queue_chunks > 64 {
            return bad(
                "queue_chunks",
                format!("{} is outside 1..=64", self.queue_chunks),
            );
        }
        if self.recipients.len() > 64 {
            return bad(
                "recipients",
                format!("{} recipients, at most 64", self.recipients.len()),
            );
        }
        Ok(())
    }
}
