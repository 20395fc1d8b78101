//! The loop both workers share: claim up to the free slots, run each session under a renewed
//! lease, commit with the fencing token, report failures, and stop taking work while the disk
//! is nearly full.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use psm_core::{Completion, CoreError, Lease, ProcessInstance, SessionId, Stage, WorkQueue};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::affinity::{self, ClaimScope};
use crate::disk::DiskGuard;
use crate::error::PipelineError;
use crate::events::{EventSink, PipelineEvent, Step};
use crate::lease::LeaseKeeper;

/// Settings every worker has.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// This process's name on the control plane (the seed's `processInstance`).
    pub instance: ProcessInstance,
    /// Sessions worked on at once.
    pub concurrency: usize,
    /// How often to look for work when there was none.
    pub poll_interval: Duration,
    /// How often a held lease is renewed.
    pub renew_every: Duration,
    /// How long a lease lasts without renewal: the control plane's `lease_ttl`, or less.
    pub lease_ttl: Duration,
    /// Stop taking work while this disk is nearly full.
    pub disk_guard: Option<DiskGuard>,
    /// Which sessions to claim: by default only those whose files are on this worker's disk.
    pub claim_scope: ClaimScope,
}

impl WorkerConfig {
    /// Defaults that fit the engine's defaults (60 s leases): 2 sessions at once, renewal
    /// every 15 s, polling every 2 s, no disk guard, claims among the local sessions.
    pub fn new(instance: ProcessInstance) -> Self {
        Self {
            instance,
            concurrency: 2,
            poll_interval: Duration::from_secs(2),
            renew_every: Duration::from_secs(15),
            lease_ttl: Duration::from_secs(60),
            disk_guard: None,
            claim_scope: ClaimScope::LocalFiles,
        }
    }
}

/// What a run (or a drain) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Sessions committed.
    pub completed: Vec<SessionId>,
    /// Attempts that failed (the session returned to its queue or became Failed).
    pub failed: Vec<(SessionId, String)>,
    /// Sessions whose lease was lost mid-work (nothing was committed or deleted).
    pub lease_lost: Vec<SessionId>,
}

/// One pipeline step, as the shared loop drives it.
#[async_trait]
pub(crate) trait StepWorker: Send + Sync + 'static {
    fn step(&self) -> Step;
    fn control_plane(&self) -> &Arc<dyn WorkQueue>;
    fn config(&self) -> &WorkerConfig;
    fn sink(&self) -> &Arc<dyn EventSink>;
    /// A claim from the whole queue.
    async fn claim(&self, limit: u32) -> Result<Vec<Lease>, CoreError>;
    /// A claim among `among` only.
    async fn claim_among(&self, limit: u32, among: &[SessionId]) -> Result<Vec<Lease>, CoreError>;
    /// The sessions whose input files this worker can read (see [`affinity`]).
    fn local_candidates(&self) -> std::io::Result<Vec<SessionId>>;
    /// The work, up to (not including) the commit.
    async fn process(&self, lease: &Lease) -> Result<Completion, PipelineError>;
    /// After the commit (the uploader deletes the local copy here).
    async fn after_commit(&self, session: SessionId);
}

pub(crate) enum Outcome {
    Completed(SessionId),
    Failed(SessionId, String),
    LeaseLost(SessionId),
}

/// Commits a step: retries transient failures while the lease lasts; a refusal is checked
/// against the session's stage, since a commit whose answer was lost in transit may have
/// landed.
async fn commit(
    cp: &dyn WorkQueue,
    keeper_deadline: tokio::time::Instant,
    lease: &Lease,
    completion: Completion,
) -> Result<(), CoreError> {
    let done = lease.stage.done_stage();
    let mut delay = Duration::from_millis(200);
    loop {
        match cp.complete(lease, completion.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && tokio::time::Instant::now() + delay < keeper_deadline => {
                tracing::warn!(session_id = %lease.session, error = %e, "commit failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                if let Ok(status) = cp.recording_status(&[lease.session]).await
                    && status.first().map(|s| s.stage) == done
                    && done.is_some()
                {
                    return Ok(());
                }
                return Err(e);
            }
        }
    }
}

/// Reports a failed attempt, retrying transient control-plane errors a few times (if it never
/// lands, the lease expires and the watchdog requeues the session: nothing is lost).
async fn report_failure(cp: &dyn WorkQueue, lease: &Lease, reason: &str) {
    let mut delay = Duration::from_millis(200);
    for _ in 0..5 {
        match cp.fail(lease, reason).await {
            Ok(()) => return,
            Err(e) if e.is_transient() => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                tracing::warn!(session_id = %lease.session, error = %e,
                    "could not report the failure (the lease is gone)");
                return;
            }
        }
    }
}

pub(crate) async fn run_one<W: StepWorker + ?Sized>(worker: &W, lease: Lease) -> Outcome {
    let session = lease.session;
    let step = worker.step();
    let config = worker.config();
    let cp = worker.control_plane().clone();
    tracing::info!(session_id = %session, step = step.as_str(), process_instance = %config.instance,
        fencing_token = lease.token.0, attempt = lease.attempt, "working on session");
    let keeper = LeaseKeeper::spawn(
        cp.clone(),
        lease.clone(),
        config.renew_every,
        config.lease_ttl,
    );
    let result = tokio::select! {
        r = worker.process(&lease) => r,
        reason = keeper.lost() => Err(PipelineError::LeaseLost { session, reason }),
    };
    let deadline = keeper.deadline();
    let lost_reason = keeper.lost_reason();
    let lease = keeper.stop().await;
    match result {
        Ok(completion) => {
            if let Some(reason) = lost_reason {
                tracing::warn!(session_id = %session, reason, "lease lost before the commit");
                return Outcome::LeaseLost(session);
            }
            match commit(cp.as_ref(), deadline, &lease, completion).await {
                Ok(()) => {
                    tracing::info!(session_id = %session, step = step.as_str(),
                        stage = %lease.stage.done_stage().unwrap_or(Stage::Failed), "step committed");
                    worker.after_commit(session).await;
                    Outcome::Completed(session)
                }
                Err(e) => {
                    tracing::warn!(session_id = %session, step = step.as_str(), error = %e,
                        "commit refused; nothing deleted");
                    worker.sink().event(&PipelineEvent::Failed {
                        step,
                        session,
                        error: e.to_string(),
                    });
                    Outcome::LeaseLost(session)
                }
            }
        }
        Err(PipelineError::LeaseLost { reason, .. }) => {
            tracing::warn!(session_id = %session, step = step.as_str(), reason,
                "lease lost mid-work; stopped without committing");
            worker.sink().event(&PipelineEvent::Failed {
                step,
                session,
                error: format!("lease lost: {reason}"),
            });
            Outcome::LeaseLost(session)
        }
        Err(e) => {
            let reason = e.to_string();
            tracing::warn!(session_id = %session, step = step.as_str(), error = %reason,
                "attempt failed; local data kept");
            report_failure(cp.as_ref(), &lease, &reason).await;
            worker.sink().event(&PipelineEvent::Failed {
                step,
                session,
                error: reason.clone(),
            });
            Outcome::Failed(session, reason)
        }
    }
}

/// Whether the disk guard lets the worker take work; logs and reports transitions.
fn disk_allows<W: StepWorker + ?Sized>(worker: &W, was_low: &mut bool) -> bool {
    let Some(guard) = &worker.config().disk_guard else {
        return true;
    };
    match guard.check() {
        Ok(_) => {
            if *was_low {
                tracing::info!(path = %guard.path.display(), step = worker.step().as_str(),
                    "disk has room again; taking work");
                worker.sink().event(&PipelineEvent::DiskRecovered {
                    step: worker.step(),
                    path: guard.path.clone(),
                });
            }
            *was_low = false;
            true
        }
        Err(space) => {
            if !*was_low {
                tracing::warn!(path = %guard.path.display(), free_bytes = space.free,
                    total_bytes = space.total, min_free_bytes = guard.min_free.bytes,
                    step = worker.step().as_str(),
                    "local disk nearly full: not taking new work until space is freed");
                worker.sink().event(&PipelineEvent::DiskNearlyFull {
                    step: worker.step(),
                    path: guard.path.clone(),
                    free_bytes: space.free,
                });
            }
            *was_low = true;
            false
        }
    }
}

fn record(summary: &mut RunSummary, outcome: Outcome) {
    match outcome {
        Outcome::Completed(s) => summary.completed.push(s),
        Outcome::Failed(s, r) => summary.failed.push((s, r)),
        Outcome::LeaseLost(s) => summary.lease_lost.push(s),
    }
}

/// Runs until `stop` turns true (or its sender is dropped), then finishes the sessions in
/// hand. With `until_idle`, also returns once nothing is in hand and a claim finds nothing.
pub(crate) async fn run_loop<W: StepWorker>(
    worker: Arc<W>,
    mut stop: watch::Receiver<bool>,
    until_idle: bool,
) -> RunSummary {
    let mut summary = RunSummary::default();
    let mut tasks: JoinSet<Outcome> = JoinSet::new();
    let mut disk_low = false;
    let mut claim_backoff = Duration::ZERO;
    let mut unrestricted = false;
    let concurrency = worker.config().concurrency.max(1);
    loop {
        if *stop.borrow() {
            break;
        }
        let free = concurrency.saturating_sub(tasks.len());
        let mut claimed_any = false;
        if free > 0 && disk_allows(worker.as_ref(), &mut disk_low) {
            let limit = u32::try_from(free).unwrap_or(u32::MAX);
            match affinity::claim(worker.as_ref(), limit, &mut unrestricted).await {
                Ok(leases) => {
                    claim_backoff = Duration::ZERO;
                    claimed_any = !leases.is_empty();
                    for lease in leases {
                        let w = worker.clone();
                        tasks.spawn(async move { run_one(w.as_ref(), lease).await });
                    }
                }
                Err(e) => {
                    claim_backoff = (claim_backoff * 2)
                        .max(Duration::from_millis(500))
                        .min(Duration::from_secs(30));
                    tracing::warn!(step = worker.step().as_str(), error = %e,
                        retry_in_ms = claim_backoff.as_millis() as u64, "claim failed");
                }
            }
        }
        if until_idle && !claimed_any && tasks.is_empty() && claim_backoff.is_zero() && !disk_low {
            break;
        }
        if claimed_any && tasks.len() < concurrency {
            continue;
        }
        let wait = worker.config().poll_interval.max(claim_backoff);
        tokio::select! {
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(outcome) = done { record(&mut summary, outcome) }
            }
            _ = tokio::time::sleep(wait) => {}
            changed = stop.changed() => {
                if changed.is_err() { break; }
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(outcome) = done {
            record(&mut summary, outcome);
        }
    }
    summary
}
