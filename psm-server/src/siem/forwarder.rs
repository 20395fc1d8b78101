//! The forwarder: one task per sink, tailing the audit log from the sink's cursor.
//!
//! The audit log itself is the buffer: a task reads at most `batch_size` events after its
//! position, ships them, and reads on. A sink that is down costs nothing but its task's
//! retries (exponential backoff with jitter); the log keeps growing in the store and the
//! task catches up when the sink is back. Nothing here writes to the store, holds a lock
//! the control plane takes, or waits on the control plane, so a slow or dead SIEM never
//! slows a session.
//!
//! Delivery is at least once: the cursor moves only past events a sink *confirmed*
//! (a webhook's 2xx; a syslog receiver closing the connection after reading everything),
//! and after any failure, or a restart, the task resends from the confirmed position.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use psm_core::AuditEvent;
use psm_core::store::{AuditQuery, SessionStore};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::cursor::{CursorStore, check_name};
use super::error::SiemError;
use super::syslog::{SyslogConfig, SyslogSink};
use super::webhook::{WebhookConfig, WebhookSink};

/// A destination for audit events.
///
/// ```
/// use async_trait::async_trait;
/// use psm_core::AuditEvent;
/// use psm_server::siem::{Sink, SiemError};
///
/// /// Counts events (and confirms each batch at once).
/// struct Counter(u64);
///
/// #[async_trait]
/// impl Sink for Counter {
///     fn name(&self) -> &str { "counter" }
///     fn kind(&self) -> &'static str { "counter" }
///     async fn send(&mut self, batch: &[AuditEvent]) -> Result<Option<i64>, SiemError> {
///         self.0 += batch.len() as u64;
///         Ok(batch.last().map(|e| e.seq))
///     }
/// }
/// ```
#[async_trait]
pub trait Sink: Send + 'static {
    /// The sink's name (its cursor's name).
    fn name(&self) -> &str;
    /// What kind of sink (`syslog-tcp`, `syslog-tls`, `webhook`).
    fn kind(&self) -> &'static str;
    /// Ships a batch (oldest first). Returns the `seq` up to which delivery is now
    /// confirmed, if that moved.
    async fn send(&mut self, batch: &[AuditEvent]) -> Result<Option<i64>, SiemError>;
    /// The log is quiet: confirm what was sent, if the sink confirms lazily.
    async fn flush(&mut self) -> Result<Option<i64>, SiemError> {
        Ok(None)
    }
    /// A failure happened: forget any connection state (what was not confirmed is sent
    /// again).
    fn reset(&mut self) {}
}

/// Where a sink without a saved cursor starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartAt {
    /// At the first audit event (the whole history is sent).
    #[default]
    Beginning,
    /// After the last audit event present when the sink first starts.
    End,
}

/// A configured sink.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SinkConfig {
    /// RFC 5424 syslog over TCP or TLS, CEF messages.
    Syslog {
        /// The sink's name (1 to 64 of `[A-Za-z0-9._-]`; names its cursor).
        name: String,
        /// The receiver.
        config: SyslogConfig,
    },
    /// JSON batches POSTed to a URL, HMAC-signed.
    Webhook {
        /// The sink's name.
        name: String,
        /// The receiver.
        config: WebhookConfig,
    },
}

impl SinkConfig {
    fn name(&self) -> &str {
        match self {
            SinkConfig::Syslog { name, .. } | SinkConfig::Webhook { name, .. } => name,
        }
    }

    fn build(&self) -> Result<Box<dyn Sink>, SiemError> {
        Ok(match self {
            SinkConfig::Syslog { name, config } => Box::new(SyslogSink::new(name, config.clone())?),
            SinkConfig::Webhook { name, config } => {
                Box::new(WebhookSink::new(name, config.clone())?)
            }
        })
    }
}

/// The forwarder's settings.
#[derive(Clone, Debug)]
pub struct SiemConfig {
    /// The sinks, each tailing the log on its own.
    pub sinks: Vec<SinkConfig>,
    /// How often a caught-up task looks for new events (besides [`SiemHandle::wake`]).
    pub poll_interval: Duration,
    /// The most events read and sent at once (1 to 10,000): the memory bound per sink.
    pub batch_size: u32,
    /// The first retry delay after a failure.
    pub backoff_min: Duration,
    /// The longest retry delay.
    pub backoff_max: Duration,
    /// Where a sink without a cursor starts.
    pub start_at: StartAt,
}

impl Default for SiemConfig {
    fn default() -> Self {
        Self {
            sinks: Vec::new(),
            poll_interval: Duration::from_secs(1),
            batch_size: 500,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            start_at: StartAt::Beginning,
        }
    }
}

/// A sink's state, for health pages and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkStatus {
    /// The sink's name.
    pub name: String,
    /// Its kind.
    pub kind: &'static str,
    /// The last `seq` whose delivery is confirmed (and saved in the cursor).
    pub confirmed: i64,
    /// The last `seq` sent.
    pub sent: i64,
    /// Events sent (resends included).
    pub events_sent: u64,
    /// Failures so far.
    pub failures: u64,
    /// The last failure, if the sink is failing now.
    pub last_error: Option<String>,
}

/// The running forwarder.
#[derive(Debug)]
pub struct SiemHandle {
    tasks: Vec<JoinHandle<()>>,
    status: Vec<Arc<Mutex<SinkStatus>>>,
    wake: watch::Sender<u64>,
    stop: watch::Sender<bool>,
}

impl SiemHandle {
    /// New audit events may be there: look now rather than at the next poll.
    pub fn wake(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Every sink's state.
    pub fn status(&self) -> Vec<SinkStatus> {
        self.status
            .iter()
            .filter_map(|s| s.lock().ok().map(|s| s.clone()))
            .collect()
    }

    /// Stops every task after it confirmed what it sent (each sink's `flush`, bounded by
    /// its own timeouts), saving the cursors.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Streams the audit log of a store to SIEM sinks.
#[derive(Debug)]
pub struct SiemForwarder;

impl SiemForwarder {
    /// Starts one task per configured sink (on the current tokio runtime).
    pub fn spawn(
        store: Arc<dyn SessionStore>,
        cursors: Arc<dyn CursorStore>,
        config: SiemConfig,
    ) -> Result<SiemHandle, SiemError> {
        let mut sinks = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for s in &config.sinks {
            check_name(s.name())?;
            if names.contains(&s.name()) {
                return Err(SiemError::Config(format!(
                    "two sinks are named {:?}",
                    s.name()
                )));
            }
            names.push(s.name());
            sinks.push(s.build()?);
        }
        Self::spawn_sinks(store, cursors, config, sinks)
    }

    /// Starts one task per given sink (custom [`Sink`] implementations); `config.sinks` is
    /// ignored.
    pub fn spawn_sinks(
        store: Arc<dyn SessionStore>,
        cursors: Arc<dyn CursorStore>,
        config: SiemConfig,
        sinks: Vec<Box<dyn Sink>>,
    ) -> Result<SiemHandle, SiemError> {
        if !(1..=10_000).contains(&config.batch_size) {
            return Err(SiemError::Config(format!(
                "batch_size {} is outside 1..=10000",
                config.batch_size
            )));
        }
        let (wake, _) = watch::channel(0u64);
        let (stop, _) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut status = Vec::new();
        for sink in sinks {
            let st = Arc::new(Mutex::new(SinkStatus {
                name: sink.name().to_owned(),
                kind: sink.kind(),
                ..SinkStatus::default()
            }));
            status.push(st.clone());
            let task = Task {
                store: store.clone(),
                cursors: cursors.clone(),
                config: config.clone(),
                sink,
                status: st,
                wake: wake.subscribe(),
                stop: stop.subscribe(),
            };
            tasks.push(tokio::spawn(task.run()));
        }
        Ok(SiemHandle {
            tasks,
            status,
            wake,
            stop,
        })
    }
}

struct Task {
    store: Arc<dyn SessionStore>,
    cursors: Arc<dyn CursorStore>,
    config: SiemConfig,
    sink: Box<dyn Sink>,
    status: Arc<Mutex<SinkStatus>>,
    wake: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
}

impl Task {
    fn update(&self, f: impl FnOnce(&mut SinkStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    fn failed(&self, e: &SiemError) {
        tracing::warn!(sink = self.sink.name(), error = %e, "SIEM sink failing; will retry");
        let text = e.to_string();
        self.update(|s| {
            s.failures += 1;
            s.last_error = Some(text);
        });
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps `d`, or less if woken or stopped; returns whether to stop.
    async fn pause(&mut self, d: Duration, wakeable: bool) -> bool {
        let sleep = tokio::time::sleep(d);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return self.stopping(),
                r = self.stop.changed() => {
                    if r.is_err() || self.stopping() {
                        return true;
                    }
                }
                r = self.wake.changed(), if wakeable => {
                    if r.is_err() {
                        // The handle is gone: nobody wakes us any more, keep polling.
                        return self.stopping();
                    }
                    return false;
                }
            }
        }
    }

    /// The position to start from: the saved cursor, else per `start_at`.
    async fn start(&mut self) -> Result<i64, SiemError> {
        let name = self.sink.name().to_owned();
        if let Some(c) = self.cursors.load(&name).await? {
            return Ok(c);
        }
        let start = match self.config.start_at {
            StartAt::Beginning => 0,
            StartAt::End => {
                let mut last = 0;
                loop {
                    let page = self
                        .store
                        .audit_events(&AuditQuery {
                            session: None,
                            after_seq: Some(last),
                            limit: 10_000,
                        })
                        .await?;
                    match page.last() {
                        Some(e) => last = e.seq,
                        None => break,
                    }
                }
                last
            }
        };
        self.cursors.save(&name, start).await?;
        Ok(start)
    }

    async fn confirmed(&mut self, seq: i64, confirmed: &mut i64) {
        if seq <= *confirmed {
            return;
        }
        let name = self.sink.name().to_owned();
        match self.cursors.save(&name, seq).await {
            Ok(()) => {
                *confirmed = seq;
                self.update(|s| {
                    s.confirmed = seq;
                    s.last_error = None;
                });
            }
            Err(e) => self.failed(&e),
        }
    }

    async fn run(mut self) {
        let mut backoff = self.config.backoff_min;
        let mut confirmed = loop {
            match self.start().await {
                Ok(c) => break c,
                Err(e) => {
                    self.failed(&e);
                    if self.pause(backoff, false).await {
                        return;
                    }
                    backoff = (backoff * 2).min(self.config.backoff_max);
                }
            }
        };
        self.update(|s| {
            s.confirmed = confirmed;
            s.sent = confirmed;
        });
        let mut sent = confirmed;
        backoff = self.config.backoff_min;
        loop {
            if self.stopping() {
                // Confirm what is in flight before leaving.
                if sent > confirmed
                    && let Ok(Some(c)) = self.sink.flush().await
                {
                    self.confirmed(c, &mut confirmed).await;
                }
                return;
            }
            let page = self
                .store
                .audit_events(&AuditQuery {
                    session: None,
                    after_seq: Some(sent),
                    limit: self.config.batch_size,
                })
                .await;
            let result: Result<(), SiemError> = match page {
                Err(e) => Err(SiemError::Store(e)),
                Ok(events) if events.is_empty() => {
                    let flushed = if sent > confirmed {
                        self.sink.flush().await
                    } else {
                        Ok(None)
                    };
                    match flushed {
                        Ok(c) => {
                            if let Some(c) = c {
                                self.confirmed(c, &mut confirmed).await;
                            }
                            backoff = self.config.backoff_min;
                            // Stopping is checked at the top of the loop.
                            let _ = self.pause(self.config.poll_interval, true).await;
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
                Ok(events) => {
                    let n = events.len() as u64;
                    let last = events.last().map_or(sent, |e| e.seq);
                    match self.sink.send(&events).await {
                        Ok(c) => {
                            sent = last;
                            self.update(|s| {
                                s.sent = last;
                                s.events_sent += n;
                            });
                            if let Some(c) = c {
                                self.confirmed(c, &mut confirmed).await;
                            }
                            backoff = self.config.backoff_min;
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            if let Err(e) = result {
                self.failed(&e);
                self.sink.reset();
                // Resend everything not confirmed.
                sent = confirmed;
                self.update(|s| s.sent = confirmed);
                let jitter = backoff.mul_f64(rand::random::<f64>() * 0.2);
                if self.pause(backoff + jitter, false).await {
                    return;
                }
                backoff = (backoff * 2).min(self.config.backoff_max);
            }
        }
    }
}
