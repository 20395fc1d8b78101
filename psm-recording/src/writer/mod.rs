//! Writing recordings: [`RecordingWriter`] (async, for gateways) and [`BlockingWriter`]
//! (for tools and imports).
//!
//! Events are encoded on the caller's task into the open chunk (a memory copy); a chunk is
//! closed when it reaches [`WriterConfig::chunk_bytes`] or is
//! [`WriterConfig::flush_interval`] (1 s) old, and sealed (zstd, encryption, hash chain,
//! signature, write, fsync per [`FsyncPolicy`]) on a blocking thread, so the caller never
//! waits for compression or the disk unless [`WriterConfig::queue_chunks`] closed chunks are
//! already waiting: that bound is what keeps memory bounded. After
//! [`WriterConfig::idle_release`] without events, the writer frees its buffers and
//! compression state.
//!
//! Crash safety: each chunk is a signed frame written in one piece, and compressed only
//! against the chunks before it, so a file cut at any byte still yields every chunk written
//! before the cut (see `psm verify`). A timer task sleeps until the open chunk's deadline
//! (its first event plus the flush interval) and closes it then, so a process killed at any
//! moment loses at most the last flush interval of events; bulk output fills chunks by size
//! long before that, so it is chunked as before. An idle writer's timer sleeps until the next
//! event wakes it.

mod builder;
mod config;
mod sealer;
mod sink;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Notify, mpsc, oneshot};

pub use builder::MAX_EVENT_BYTES;
pub use config::{FsyncPolicy, InputPolicy, WriterConfig};
pub use sealer::FinishedRecording;
pub use sink::{MemorySink, RecordingSink};

use crate::error::{Place, RecordingError};
use crate::event::{ChannelId, EventKind, Stream};
use crate::header::Header;
use crate::keys::SigningKey;
use crate::time::Micros;
use builder::{ChunkBuilder, RawChunk};
use sealer::Sealer;

fn create_file(path: &Path) -> Result<std::fs::File, RecordingError> {
    // Readable by its owner only: a recording holds what the user saw (issue 17 M11).
    let file = psm_core::files::create_private(path)
        .map_err(|e| RecordingError::io(format!("creating {}", path.display()), e))?;
    // Make the new directory entry durable, so a crash cannot lose the whole file.
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(file)
}

enum Job {
    Chunk(RawChunk, bool),
    /// The session went idle: free the compression state.
    Release,
    Flush(oneshot::Sender<Result<(), RecordingError>>),
    Finish {
        end: Micros,
        events: u64,
        reason: String,
        reply: oneshot::Sender<Result<FinishedRecording, RecordingError>>,
    },
}

struct State {
    builder: ChunkBuilder,
    opened: Option<Instant>,
    /// When the last event came (for the idle release).
    last_event: Instant,
    /// Whether buffers were released since the last event.
    released: bool,
    tx: Option<mpsc::Sender<Job>>,
    full: Vec<RawChunk>,
}

impl Drop for State {
    fn drop(&mut self) {
        // Dropped without finish(): hand the open chunk to the sealer if there is room, so
        // the file is "truncated" at the latest possible point rather than earlier.
        if let Some(tx) = &self.tx
            && !self.builder.is_empty()
        {
            let c = self.builder.take();
            if tx.try_send(Job::Chunk(c, true)).is_err() {
                tracing::warn!("recording writer dropped with a full queue: last chunk lost");
            }
        }
    }
}

struct Inner {
    state: Mutex<State>,
    /// Wakes the timer task: a chunk was opened (a new deadline), or the writer was dropped.
    wake: Arc<Notify>,
    start: Instant,
    failed: AtomicBool,
    failure: StdMutex<Option<String>>,
    flush_interval: Duration,
    idle_release: Duration,
    chunk_bytes: usize,
    /// Bytes the sealer holds (updated after each job), for [`RecordingWriter::held_bytes`].
    sealer_bytes: std::sync::atomic::AtomicUsize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The timer task holds only a weak reference: let it see that the writer is gone.
        self.wake.notify_one();
    }
}

impl Inner {
    fn fail(&self, e: &RecordingError) {
        if let Ok(mut f) = self.failure.lock()
            && f.is_none()
        {
            *f = Some(e.to_string());
        }
        self.failed.store(true, Ordering::Release);
    }

    fn check(&self) -> Result<(), RecordingError> {
        if self.failed.load(Ordering::Acquire) {
            let msg = self
                .failure
                .lock()
                .ok()
                .and_then(|f| f.clone())
                .unwrap_or_else(|| "sealing failed".into());
            return Err(RecordingError::WriterStopped(msg));
        }
        Ok(())
    }
}

/// The async recording writer a gateway holds for one session. Cheap to clone (all clones
/// write the same recording), `Send + Sync`; needs a Tokio runtime.
///
/// ```
/// # async fn demo() -> Result<(), psm_recording::RecordingError> {
/// use psm_recording::*;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("s.psmr");
/// let header = Header::new(psm_core::SessionId::new(), Protocol::Ssh, "alice", "web-01", "gw-1")
///     .with_terminal(TermSize::new(80, 24), "xterm-256color");
/// let key = SigningKey::generate()?;
/// let w = RecordingWriter::create(&path, header, key.clone(), WriterConfig::default()).await?;
/// w.record(EventKind::ChannelOpen { channel: ChannelId(0), kind: ChannelKind::Shell {
///     pty: Some(Pty { term: "xterm".into(), size: TermSize::new(80, 24) }) } }).await?;
/// w.output(ChannelId(0), b"$ ").await?;
/// w.input(ChannelId(0), b"sudo ls\r", false).await?;
/// w.input(ChannelId(0), b"hunter2\r", true).await?; // echo off: recorded as redacted
/// let done = w.finish("client disconnected").await?;
/// assert_eq!(done.events, 5);
///
/// let report = psm_recording::verify(&path, &VerifyOptions::trusting(key.verifying_key()))?;
/// assert!(report.status.is_intact());
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct RecordingWriter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RecordingWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingWriter").finish_non_exhaustive()
    }
}

impl RecordingWriter {
    /// Creates `path` (which must not exist), writes and syncs the header, and starts.
    pub async fn create(
        path: impl AsRef<Path>,
        header: Header,
        key: SigningKey,
        config: WriterConfig,
    ) -> Result<Self, RecordingError> {
        let path = path.as_ref().to_owned();
        config.validate()?;
        let file = tokio::task::spawn_blocking(move || create_file(&path))
            .await
            .map_err(|e| RecordingError::WriterStopped(format!("creating the file: {e}")))??;
        Self::with_sink(Box::new(file), header, key, config).await
    }

    /// Starts a writer on any sink.
    pub async fn with_sink(
        sink: Box<dyn RecordingSink>,
        header: Header,
        key: SigningKey,
        config: WriterConfig,
    ) -> Result<Self, RecordingError> {
        config.validate()?;
        let cfg = config.clone();
        let sealer = tokio::task::spawn_blocking(move || Sealer::start(sink, &header, key, &cfg))
            .await
            .map_err(|e| RecordingError::WriterStopped(format!("writing the header: {e}")))??;
        let (tx, rx) = mpsc::channel(config.queue_chunks);
        let wake = Arc::new(Notify::new());
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                builder: ChunkBuilder::new(&config),
                opened: None,
                last_event: Instant::now(),
                released: false,
                tx: Some(tx),
                full: Vec::new(),
            }),
            wake: wake.clone(),
            start: Instant::now(),
            failed: AtomicBool::new(false),
            failure: StdMutex::new(None),
            flush_interval: config.flush_interval,
            idle_release: config.idle_release,
            chunk_bytes: config.chunk_bytes,
            sealer_bytes: std::sync::atomic::AtomicUsize::new(0),
        });
        tokio::spawn(run_sealer(sealer, rx, Arc::downgrade(&inner)));
        tokio::spawn(run_ticker(Arc::downgrade(&inner), wake));
        Ok(Self { inner })
    }

    /// Time since the writer started, as event times count it.
    pub fn elapsed(&self) -> Micros {
        Micros::from_duration(self.inner.start.elapsed())
    }

    /// Bytes of buffers and compression state this writer holds now (the open chunk, the
    /// output-delta reference, the zstd stream of the open group, sealing buffers): what an
    /// idle session costs beyond the writer's fixed structures. Released after
    /// [`WriterConfig::idle_release`] without events.
    pub async fn held_bytes(&self) -> usize {
        let st = self.inner.state.lock().await;
        st.builder.held_bytes()
            + st.full.iter().map(|c| c.payload.capacity()).sum::<usize>()
            + self.inner.sealer_bytes.load(Ordering::Relaxed)
    }

    /// Terminal output on `channel`'s stdout, stamped now. The hot path: one copy into the
    /// open chunk.
    pub async fn output(&self, channel: ChannelId, data: &[u8]) -> Result<(), RecordingError> {
        self.output_stream(channel, Stream::Stdout, data).await
    }

    /// Output on a given stream, stamped now.
    pub async fn output_stream(
        &self,
        channel: ChannelId,
        stream: Stream,
        data: &[u8],
    ) -> Result<(), RecordingError> {
        self.inner.check()?;
        let mut st = self.inner.state.lock().await;
        let t = self.elapsed();
        for piece in data.chunks(self.inner.chunk_bytes) {
            let State { builder, full, .. } = &mut *st;
            builder.output(t, channel, stream, piece, |c| full.push(c));
            self.after_push(&mut st).await?;
        }
        Ok(())
    }

    /// What the user typed on `channel`, stamped now. `echo_off`: the terminal's echo was off
    /// (the [`InputPolicy`] decides whether the bytes are kept).
    pub async fn input(
        &self,
        channel: ChannelId,
        data: &[u8],
        echo_off: bool,
    ) -> Result<(), RecordingError> {
        self.record(EventKind::Input {
            channel,
            data: data.to_vec(),
            echo_off,
        })
        .await
    }

    /// Any event, stamped now.
    pub async fn record(&self, kind: EventKind) -> Result<(), RecordingError> {
        let t = self.elapsed();
        self.record_at(t, kind).await
    }

    /// Any event at a given time (clamped so times never go backwards).
    pub async fn record_at(&self, time: Micros, kind: EventKind) -> Result<(), RecordingError> {
        self.inner.check()?;
        if let EventKind::Output {
            channel,
            stream,
            data,
        } = &kind
            && data.len() > self.inner.chunk_bytes
        {
            let mut st = self.inner.state.lock().await;
            for piece in data.chunks(self.inner.chunk_bytes) {
                let State { builder, full, .. } = &mut *st;
                builder.output(time, *channel, *stream, piece, |c| full.push(c));
                self.after_push(&mut st).await?;
            }
            return Ok(());
        }
        let mut st = self.inner.state.lock().await;
        st.builder.event(time, &kind)?;
        if st.builder.is_full() {
            let c = st.builder.take();
            st.full.push(c);
        }
        self.after_push(&mut st).await
    }

    async fn after_push(&self, st: &mut State) -> Result<(), RecordingError> {
        st.last_event = Instant::now();
        st.released = false;
        if st.builder.is_empty() {
            st.opened = None;
        } else if st.opened.is_none() {
            st.opened = Some(Instant::now());
            // A new deadline: the timer may be sleeping until a later one, or idle.
            self.inner.wake.notify_one();
        } else if st
            .opened
            .is_some_and(|o| o.elapsed() >= self.inner.flush_interval)
        {
            let c = st.builder.take();
            st.full.push(c);
            st.opened = None;
        }
        if st.full.is_empty() {
            return Ok(());
        }
        let tx = st
            .tx
            .clone()
            .ok_or_else(|| RecordingError::WriterStopped("already finished".into()))?;
        for c in std::mem::take(&mut st.full) {
            tx.send(Job::Chunk(c, false))
                .await
                .map_err(|_| self.stopped())?;
        }
        Ok(())
    }

    fn stopped(&self) -> RecordingError {
        self.inner
            .check()
            .err()
            .unwrap_or_else(|| RecordingError::WriterStopped("sealer stopped".into()))
    }

    /// Closes the open chunk and waits until everything recorded so far is written and
    /// synced to disk.
    pub async fn flush(&self) -> Result<(), RecordingError> {
        self.inner.check()?;
        let mut st = self.inner.state.lock().await;
        let tx = st
            .tx
            .clone()
            .ok_or_else(|| RecordingError::WriterStopped("already finished".into()))?;
        if !st.builder.is_empty() {
            let c = st.builder.take();
            st.opened = None;
            tx.send(Job::Chunk(c, false))
                .await
                .map_err(|_| self.stopped())?;
        }
        let (reply, rx) = oneshot::channel();
        tx.send(Job::Flush(reply))
            .await
            .map_err(|_| self.stopped())?;
        drop(st);
        rx.await.map_err(|_| self.stopped())?
    }

    /// Records [`EventKind::SessionEnd`] with `reason`, seals the last chunk, writes the
    /// signed trailer (index) and syncs. Other clones of this writer fail from then on.
    pub async fn finish(self, reason: &str) -> Result<FinishedRecording, RecordingError> {
        self.record(EventKind::SessionEnd {
            reason: reason.to_owned(),
        })
        .await?;
        let mut st = self.inner.state.lock().await;
        let tx = st
            .tx
            .take()
            .ok_or_else(|| RecordingError::WriterStopped("already finished".into()))?;
        if !st.builder.is_empty() {
            let c = st.builder.take();
            tx.send(Job::Chunk(c, false))
                .await
                .map_err(|_| self.stopped())?;
        }
        let (reply, rx) = oneshot::channel();
        let end = st.builder.last_time;
        let events = st.builder.total_events;
        st.builder.release();
        tx.send(Job::Finish {
            end,
            events,
            reason: reason.to_owned(),
            reply,
        })
        .await
        .map_err(|_| self.stopped())?;
        drop(st);
        rx.await.map_err(|_| self.stopped())?
    }
}

/// Closes the open chunk at its deadline (its first event plus the flush interval) and
/// releases an idle writer's buffers; sleeps until the next of those, or, with neither
/// pending, until an event opens a chunk.
async fn run_ticker(inner: std::sync::Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let next = {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let mut st = inner.state.lock().await;
            let Some(tx) = st.tx.clone() else {
                return;
            };
            let now = Instant::now();
            if let Some(o) = st.opened
                && now >= o + inner.flush_interval
            {
                st.opened = None;
                if !st.builder.is_empty() {
                    let c = st.builder.take();
                    if tx.send(Job::Chunk(c, true)).await.is_err() {
                        return;
                    }
                }
            }
            if !st.released && st.builder.is_empty() && now >= st.last_event + inner.idle_release {
                st.builder.release_idle();
                st.full = Vec::new();
                st.released = true;
                if tx.send(Job::Release).await.is_err() {
                    return;
                }
            }
            match st.opened {
                Some(o) => Some(o + inner.flush_interval),
                None if !st.released => Some(st.last_event + inner.idle_release),
                None => None,
            }
        };
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => {}
                    () = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

async fn run_sealer(sealer: Sealer, mut rx: mpsc::Receiver<Job>, inner: std::sync::Weak<Inner>) {
    let mut sealer = Some(sealer);
    let mut failed: Option<String> = None;
    while let Some(job) = rx.recv().await {
        if let Some(msg) = &failed {
            let e = || RecordingError::WriterStopped(msg.clone());
            match job {
                Job::Chunk(..) | Job::Release => {}
                Job::Flush(reply) => {
                    let _ = reply.send(Err(e()));
                }
                Job::Finish { reply, .. } => {
                    let _ = reply.send(Err(e()));
                }
            }
            continue;
        }
        let Some(mut s) = sealer.take() else { break };
        let joined = tokio::task::spawn_blocking(move || {
            let r = match job {
                Job::Chunk(c, timed) => s.seal(c, timed),
                Job::Release => {
                    s.release_idle();
                    Ok(())
                }
                Job::Flush(reply) => {
                    let r = s.sync(Place::Trailer);
                    let out = r
                        .as_ref()
                        .map(|_| ())
                        .map_err(|e| RecordingError::WriterStopped(e.to_string()));
                    let _ = reply.send(out);
                    r
                }
                Job::Finish {
                    end,
                    events,
                    reason,
                    reply,
                } => {
                    let r = s.finish(end, events, &reason);
                    let status = r
                        .as_ref()
                        .map(|_| ())
                        .map_err(|e| RecordingError::WriterStopped(e.to_string()));
                    let _ = reply.send(r);
                    status
                }
            };
            (s, r)
        })
        .await;
        match joined {
            Ok((s, Ok(()))) => {
                if let Some(i) = inner.upgrade() {
                    i.sealer_bytes.store(s.held_bytes(), Ordering::Relaxed);
                }
                sealer = Some(s);
            }
            Ok((s, Err(e))) => {
                tracing::error!(error = %e, "recording sealing failed; the recording ends at the last complete chunk");
                if let Some(i) = inner.upgrade() {
                    i.fail(&e);
                }
                failed = Some(e.to_string());
                drop(s);
            }
            Err(join) => {
                let e = RecordingError::WriterStopped(format!("sealer panicked: {join}"));
                tracing::error!(error = %e, "recording sealer panicked");
                if let Some(i) = inner.upgrade() {
                    i.fail(&e);
                }
                failed = Some(e.to_string());
            }
        }
    }
}

/// A synchronous writer that seals on the caller's thread: for tools, imports and tests.
/// It has no timer: chunks close by size, by the flush interval measured between events'
/// times, and on [`flush`](Self::flush).
pub struct BlockingWriter {
    builder: ChunkBuilder,
    sealer: Sealer,
    start: Instant,
    flush_interval: Micros,
}

impl std::fmt::Debug for BlockingWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingWriter").finish_non_exhaustive()
    }
}

impl BlockingWriter {
    /// Creates `path` (which must not exist) and writes the header.
    pub fn create(
        path: impl AsRef<Path>,
        header: Header,
        key: SigningKey,
        config: WriterConfig,
    ) -> Result<Self, RecordingError> {
        config.validate()?;
        let file = create_file(path.as_ref())?;
        Self::with_sink(Box::new(file), header, key, config)
    }

    /// A writer on any sink.
    pub fn with_sink(
        sink: Box<dyn RecordingSink>,
        header: Header,
        key: SigningKey,
        config: WriterConfig,
    ) -> Result<Self, RecordingError> {
        let sealer = Sealer::start(sink, &header, key, &config)?;
        Ok(Self {
            builder: ChunkBuilder::new(&config),
            sealer,
            start: Instant::now(),
            flush_interval: Micros::from_duration(config.flush_interval),
        })
    }

    /// Time since the writer started.
    pub fn elapsed(&self) -> Micros {
        Micros::from_duration(self.start.elapsed())
    }

    fn maybe_close(&mut self, t: Micros) -> Result<(), RecordingError> {
        if !self.builder.is_empty()
            && (self.builder.is_full()
                || t.saturating_sub(self.builder_start()) >= self.flush_interval)
        {
            let c = self.builder.take();
            self.sealer.seal(c, false)?;
        }
        Ok(())
    }

    fn builder_start(&self) -> Micros {
        self.builder.chunk_start()
    }

    /// Output at `time`.
    pub fn output_at(
        &mut self,
        time: Micros,
        channel: ChannelId,
        stream: Stream,
        data: &[u8],
    ) -> Result<(), RecordingError> {
        self.maybe_close(time)?;
        let mut full = Vec::new();
        self.builder
            .output(time, channel, stream, data, |c| full.push(c));
        for c in full {
            self.sealer.seal(c, false)?;
        }
        Ok(())
    }

    /// Any event at `time` (clamped so times never go backwards).
    pub fn record_at(&mut self, time: Micros, kind: &EventKind) -> Result<(), RecordingError> {
        if let EventKind::Output {
            channel,
            stream,
            data,
        } = kind
        {
            return self.output_at(time, *channel, *stream, data);
        }
        self.maybe_close(time)?;
        self.builder.event(time, kind)?;
        if self.builder.is_full() {
            let c = self.builder.take();
            self.sealer.seal(c, false)?;
        }
        Ok(())
    }

    /// Any event, stamped now.
    pub fn record(&mut self, kind: &EventKind) -> Result<(), RecordingError> {
        let t = self.elapsed();
        self.record_at(t, kind)
    }

    /// Closes the open chunk, writes it and syncs.
    pub fn flush(&mut self) -> Result<(), RecordingError> {
        if !self.builder.is_empty() {
            let c = self.builder.take();
            self.sealer.seal(c, false)?;
        }
        self.sealer.sync(Place::Trailer)
    }

    /// Bytes of buffers and compression state this writer holds now (the open chunk, the
    /// output-delta reference, the zstd stream of the open group), as
    /// [`RecordingWriter::held_bytes`] counts them.
    pub fn held_bytes(&self) -> usize {
        self.builder.held_bytes() + self.sealer.held_bytes()
    }

    /// Records the end of the session at the last event's time, writes the trailer, syncs.
    pub fn finish(self, reason: &str) -> Result<FinishedRecording, RecordingError> {
        let t = self.builder.last_time;
        self.finish_at(t, reason)
    }

    /// Records the end of the session at `time`, writes the trailer, syncs.
    pub fn finish_at(
        mut self,
        time: Micros,
        reason: &str,
    ) -> Result<FinishedRecording, RecordingError> {
        self.record_at(
            time,
            &EventKind::SessionEnd {
                reason: reason.to_owned(),
            },
        )?;
        if !self.builder.is_empty() {
            let c = self.builder.take();
            self.sealer.seal(c, false)?;
        }
        let end = self.builder.last_time;
        self.sealer.finish(end, self.builder.total_events, reason)
    }
}
