//! Keeping a claim alive: a background task renews the lease while the work runs, and says so
//! the moment the lease is lost.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use psm_core::{Lease, WorkQueue};
use tokio::sync::watch;
use tokio::time::Instant;

/// Renews one lease every `renew_every` until stopped.
///
/// A transient control-plane error (unreachable, contended) is retried at the next tick; the
/// lease counts as lost once `lease_ttl` passed since the last successful renewal, since the
/// watchdog may have requeued the session by then. A refusal (stale token, lease lost, wrong
/// stage) loses it at once.
#[derive(Debug)]
pub struct LeaseKeeper {
    state: Arc<Mutex<(Lease, Instant)>>,
    lost: watch::Receiver<Option<String>>,
    task: tokio::task::JoinHandle<()>,
    lease_ttl: Duration,
}

impl LeaseKeeper {
    /// Starts renewing `lease`.
    pub fn spawn(
        cp: Arc<dyn WorkQueue>,
        lease: Lease,
        renew_every: Duration,
        lease_ttl: Duration,
    ) -> Self {
        let state = Arc::new(Mutex::new((lease, Instant::now())));
        let (lost_tx, lost) = watch::channel(None);
        let task_state = state.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(renew_every).await;
                let (current, last) = match task_state.lock() {
                    Ok(s) => (s.0.clone(), s.1),
                    Err(_) => return,
                };
                match cp.renew(&current).await {
                    Ok(renewed) => {
                        if let Ok(mut s) = task_state.lock() {
                            *s = (renewed, Instant::now());
                        }
                    }
                    Err(e) if e.is_transient() => {
                        if last.elapsed() >= lease_ttl {
                            let _ = lost_tx.send(Some(format!(
                                "not renewed for {}s, the control plane kept failing: {e}",
                                lease_ttl.as_secs()
                            )));
                            return;
                        }
                        tracing::warn!(session_id = %current.session, error = %e,
                            "lease renewal failed; retrying");
                    }
                    Err(e) => {
                        let _ = lost_tx.send(Some(e.to_string()));
                        return;
                    }
                }
            }
        });
        Self {
            state,
            lost,
            task,
            lease_ttl,
        }
    }

    /// The lease as last renewed.
    pub fn lease(&self) -> Lease {
        match self.state.lock() {
            Ok(s) => s.0.clone(),
            Err(p) => p.into_inner().0.clone(),
        }
    }

    /// When the lease runs out if it is not renewed again (by this process's clock).
    pub fn deadline(&self) -> Instant {
        let last = match self.state.lock() {
            Ok(s) => s.1,
            Err(p) => p.into_inner().1,
        };
        last + self.lease_ttl
    }

    /// Why the lease was lost, if it was.
    pub fn lost_reason(&self) -> Option<String> {
        self.lost.borrow().clone()
    }

    /// Waits until the lease is lost, and says why.
    pub async fn lost(&self) -> String {
        let mut rx = self.lost.clone();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                // The renewal task ended without a loss (stopped): never resolves.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Stops renewing and returns the lease as last renewed.
    pub async fn stop(self) -> Lease {
        self.task.abort();
        let lease = self.lease();
        let _ = self.task.await;
        // A renewal that landed while aborting only extended the same lease (same token).
        match self.state.lock() {
            Ok(s) => s.0.clone(),
            Err(_) => lease,
        }
    }
}
