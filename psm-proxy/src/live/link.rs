//! The gateway's link to the control plane for live control: a long poll that brings admin
//! commands (pause, resume, lock, unlock, terminate, approve, deny) within milliseconds, and
//! a reporter that delivers what happened in live sessions (each report an audit event
//! there, and so a SIEM event). Neither ever blocks a session: reports are queued (bounded)
//! and sent in batches.

use std::sync::Arc;
use std::time::Duration;

use psm_core::live::{LiveReport, LiveReportKind, MAX_REPORTS};
use psm_core::{CoreError, LiveLinkApi, ProcessInstance};
use tokio::sync::{mpsc, watch};

use crate::registry::SessionRegistry;

/// How long one long poll waits for a command.
pub const POLL_WAIT: Duration = Duration::from_secs(25);
/// Reports queued at most before new ones are dropped (with a log line).
pub const REPORT_QUEUE: usize = 8192;

/// The running link; [`stop`](LiveLink::stop) it at shutdown (after the gateway, so the
/// last reports go out).
#[derive(Debug)]
pub struct LiveLink {
    stop: watch::Sender<bool>,
    poller: tokio::task::JoinHandle<()>,
    reporter: tokio::task::JoinHandle<()>,
}

impl LiveLink {
    /// Starts the poller and the reporter for gateway `me`. `live_url` is the websocket
    /// base URL this gateway serves viewers on (`wss://gw.example.com:2223`), advertised to
    /// the control plane for the URLs it hands out.
    pub fn start(
        control_plane: Arc<dyn LiveLinkApi>,
        registry: SessionRegistry,
        me: ProcessInstance,
        live_url: Option<String>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(REPORT_QUEUE);
        registry.set_reports(tx);
        let (stop, stopped) = watch::channel(false);
        let poller = tokio::spawn(poll(
            control_plane.clone(),
            registry,
            me.clone(),
            live_url,
            stopped.clone(),
        ));
        let reporter = tokio::spawn(report(control_plane, me, rx, stopped));
        Self {
            stop,
            poller,
            reporter,
        }
    }

    /// Stops polling, delivers the reports still queued (for a few seconds at most).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.poller.await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.reporter).await;
    }
}

async fn poll(
    cp: Arc<dyn LiveLinkApi>,
    registry: SessionRegistry,
    me: ProcessInstance,
    live_url: Option<String>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let got = tokio::select! {
            r = cp.live_commands(&me, POLL_WAIT, live_url.as_deref()) => r,
            _ = stop.changed() => return,
        };
        match got {
            Ok(commands) => {
                backoff = Duration::from_millis(500);
                for c in commands {
                    let result = registry.apply(&c);
                    tracing::info!(session_id = %c.session, action = c.action.as_str(),
                        actor = %c.actor, ok = result.is_ok(), "live command");
                    let (ok, message) = match result {
                        Ok(m) => (true, m),
                        Err(m) => (false, m),
                    };
                    registry.report(LiveReport {
                        session: c.session,
                        actor: c.actor.clone(),
                        kind: LiveReportKind::CommandDone {
                            command: c.id,
                            ok,
                            message,
                        },
                    });
                }
            }
            Err(CoreError::Unsupported { .. }) => {
                tracing::info!(
                    "the control plane offers no live commands; admins reach sessions \
                     through viewers' websockets and terminate through Polling"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "waiting for live commands failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn report(
    cp: Arc<dyn LiveLinkApi>,
    me: ProcessInstance,
    mut rx: mpsc::Receiver<LiveReport>,
    mut stop: watch::Receiver<bool>,
) {
    let mut supported = true;
    loop {
        let first = tokio::select! {
            r = rx.recv() => r,
            _ = stop.changed() => None,
        };
        let mut batch = match first {
            Some(r) => vec![r],
            None => {
                // Stopping: deliver what is queued, once.
                let mut rest = Vec::new();
                while let Ok(r) = rx.try_recv() {
                    rest.push(r);
                }
                for chunk in rest.chunks(MAX_REPORTS) {
                    if supported {
                        let _ = cp.live_report(&me, chunk).await;
                    }
                }
                return;
            }
        };
        while batch.len() < MAX_REPORTS {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        if !supported {
            continue;
        }
        let mut delay = Duration::from_millis(200);
        for attempt in 0..5u32 {
            match cp.live_report(&me, &batch).await {
                Ok(()) => break,
                Err(CoreError::Unsupported { .. }) => {
                    tracing::info!(
                        "the control plane takes no live reports; they are not audited there"
                    );
                    supported = false;
                    break;
                }
                Err(e) if e.is_transient() && attempt < 4 => {
                    tracing::warn!(error = %e, reports = batch.len(), "delivering live reports failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    tracing::warn!(error = %e, reports = batch.len(),
                        "the control plane refused live reports (the rest of the batch was kept)");
                    break;
                }
            }
        }
    }
}
