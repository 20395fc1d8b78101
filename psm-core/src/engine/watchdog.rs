//! The watchdog (the seed's "permanent workflow"): no session stays in limbo.

use std::time::Duration;

use tokio::sync::watch;

use crate::audit::AuditAction;
use crate::error::CoreError;
use crate::session::PrivSession;
use crate::stage::{Stage, check_transition};
use crate::store::{Guard, LeasePatch, OverdueQuery, Patch, StageSet};

use super::Engine;

/// Sessions looked at per round of a sweep.
const SWEEP_BATCH: u32 = 500;

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Connected sessions whose gateway went silent, now Ended.
    pub ended_stale: u32,
    /// Leased sessions whose worker went silent, back in their queue.
    pub requeued: u32,
    /// Leased sessions whose worker went silent on their last allowed attempt, now Failed.
    pub failed: u32,
    /// Sessions that changed under the sweep (a heartbeat got in first) and were left alone.
    pub skipped: u32,
}

impl SweepReport {
    /// Sessions moved.
    pub fn moved(&self) -> u32 {
        self.ended_stale + self.requeued + self.failed
    }
}

impl Engine {
    /// One pass of the watchdog at the clock's now:
    /// - Connected with LastReported older than `connected_stale_after` → Ended (the gateway
    ///   died; EndTime is the last time it reported);
    /// - Encoding or Uploading with an expired lease → back to Ended or Done-Encoded for
    ///   another worker, with backoff; on the last allowed attempt → Failed, reason kept.
    ///
    /// Each move is a compare-and-swap on the row's version, so a heartbeat that lands
    /// first wins and the session is left alone.
    pub async fn sweep(&self) -> Result<SweepReport, CoreError> {
        let mut report = SweepReport::default();
        // Bounded: each round either moves or skips every session it saw.
        for _ in 0..1000 {
            let now = self.clock.now();
            let query = OverdueQuery {
                connected_before: now.saturating_sub(self.config.connected_stale_after),
                now,
                limit: SWEEP_BATCH,
            };
            let overdue = self.store.overdue(&query).await?;
            let seen = overdue.len();
            let mut moved_this_round = 0;
            for session in overdue {
                match self.sweep_one(&session).await? {
                    Some(Stage::Ended) if session.stage == Stage::Connected => {
                        report.ended_stale += 1
                    }
                    Some(Stage::Failed) => report.failed += 1,
                    Some(_) => report.requeued += 1,
                    None => {
                        report.skipped += 1;
                        continue;
                    }
                }
                moved_this_round += 1;
            }
            if seen < SWEEP_BATCH as usize || moved_this_round == 0 {
                break;
            }
        }
        if report.moved() > 0 {
            tracing::info!(
                ended_stale = report.ended_stale,
                requeued = report.requeued,
                failed = report.failed,
                "watchdog sweep"
            );
        }
        Ok(report)
    }

    async fn sweep_one(&self, s: &PrivSession) -> Result<Option<Stage>, CoreError> {
        let now = self.clock.now();
        let owner = s.process_instance.as_ref().map_or("nobody", |p| p.as_str());
        let (to, patch, detail) = match s.stage {
            Stage::Connected => (
                Stage::Ended,
                Patch {
                    stage: Some(Stage::Ended),
                    terminate: Some(true),
                    end_time: Some(s.last_reported),
                    ..Patch::default()
                },
                format!("gateway {owner} silent since {}", s.last_reported),
            ),
            Stage::Encoding | Stage::Uploading => {
                let exhausted = s.attempts >= self.config.max_attempts;
                let reason = format!(
                    "lease of {owner} expired at {} (attempt {} of {})",
                    s.lease_expires.unwrap_or(s.last_reported),
                    s.attempts,
                    self.config.max_attempts
                );
                let to = match (exhausted, s.stage.retry_stage()) {
                    (false, Some(retry)) => retry,
                    _ => Stage::Failed,
                };
                let retry_at =
                    (!exhausted).then(|| now.saturating_add(self.config.backoff(s.attempts)));
                (
                    to,
                    Patch {
                        stage: Some(to),
                        lease_expires: LeasePatch::Clear,
                        retry_at: Some(retry_at),
                        failure_reason: Some(Some(reason.clone())),
                        ..Patch::default()
                    },
                    reason,
                )
            }
            _ => return Ok(None),
        };
        check_transition(s.stage, to)?;
        let guard = Guard {
            stages: StageSet::one(s.stage),
            version: Some(s.version),
            ..Guard::default()
        };
        let audit = self.audit(
            now,
            s.id,
            "watchdog",
            AuditAction::Watchdog,
            Some((s.stage, to)),
            detail,
        );
        let moved = self
            .store
            .update(s.id, &guard, &patch, Some(&audit))
            .await?;
        if moved.is_some() {
            tracing::warn!(session_id = %s.id, stage = %to, process_instance = owner,
                "watchdog moved a silent session");
        }
        Ok(moved.map(|_| to))
    }
}

/// Runs [`Engine::sweep`] every `interval` until `shutdown` turns true. Errors are logged and
/// the loop goes on (a database blip must not stop the watchdog).
pub async fn run_watchdog(engine: Engine, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(e) = engine.sweep().await {
                    tracing::error!(error = %e, "watchdog sweep failed");
                }
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
}
