//! An in-memory store: tests, examples and embedders that keep sessions elsewhere.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    AuditQuery, ClaimSpec, Guard, ListQuery, OverdueQuery, Patch, SessionStore, effective_limit,
};
use crate::audit::{AuditAction, AuditEvent, AuditRecord};
use crate::error::CoreError;
use crate::id::{FencingToken, SessionId};
use crate::session::PrivSession;
use crate::stage::Stage;

#[derive(Default)]
struct Inner {
    sessions: HashMap<SessionId, PrivSession>,
    audit: Vec<AuditEvent>,
}

impl Inner {
    fn log(&mut self, record: AuditRecord) -> i64 {
        let seq = self.audit.len() as i64 + 1;
        self.audit.push(AuditEvent { seq, record });
        seq
    }
}

/// Sessions in a mutex-guarded map. Every operation holds the lock for its whole duration,
/// which makes each one trivially atomic.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied write (each write is a
        // single assignment), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert(&self, session: &PrivSession, audit: &AuditRecord) -> Result<(), CoreError> {
        let mut inner = self.lock();
        if inner.sessions.contains_key(&session.id) {
            return Err(CoreError::SessionExists(session.id));
        }
        inner.sessions.insert(session.id, session.clone());
        inner.log(audit.clone());
        Ok(())
    }

    async fn get(&self, id: SessionId) -> Result<Option<PrivSession>, CoreError> {
        Ok(self.lock().sessions.get(&id).cloned())
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<PrivSession>, CoreError> {
        let inner = self.lock();
        let mut out: Vec<PrivSession> = inner
            .sessions
            .values()
            .filter(|s| query.ids.is_empty() || query.ids.contains(&s.id))
            .filter(|s| query.stages.is_empty() || query.stages.contains(s.stage))
            .filter(|s| {
                query.after.is_none_or(|a| {
                    s.start_time < a.start_time || (s.start_time == a.start_time && s.id > a.id)
                })
            })
            .cloned()
            .collect();
        out.sort_by(|a, b| b.start_time.cmp(&a.start_time).then(a.id.cmp(&b.id)));
        out.truncate(effective_limit(query.limit) as usize);
        Ok(out)
    }

    async fn update(
        &self,
        id: SessionId,
        guard: &Guard,
        patch: &Patch,
        audit: Option<&AuditRecord>,
    ) -> Result<Option<PrivSession>, CoreError> {
        let mut inner = self.lock();
        let Some(current) = inner.sessions.get(&id) else {
            return Ok(None);
        };
        if !guard.matches(current) {
            return Ok(None);
        }
        let mut next = current.clone();
        patch.apply(&mut next);
        inner.sessions.insert(id, next.clone());
        if let Some(record) = audit {
            inner.log(record.clone());
        }
        Ok(Some(next))
    }

    async fn claim(&self, claim: &ClaimSpec) -> Result<Vec<PrivSession>, CoreError> {
        let mut inner = self.lock();
        let mut eligible: Vec<&PrivSession> = inner
            .sessions
            .values()
            .filter(|s| s.stage == claim.from && s.retry_at.is_none_or(|t| t <= claim.now))
            .filter(|s| {
                claim
                    .among
                    .as_ref()
                    .is_none_or(|among| among.contains(&s.id))
            })
            .collect();
        // Queued sessions always have an end time (ending sets it); order as the SQL stores do.
        eligible.sort_by_key(|s| (s.end_time, s.id));
        let ids: Vec<SessionId> = eligible
            .iter()
            .take(claim.limit as usize)
            .map(|s| s.id)
            .collect();
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(s) = inner.sessions.get_mut(&id) else {
                continue;
            };
            s.stage = claim.to;
            s.process_instance = Some(claim.owner.clone());
            s.fencing_token = FencingToken(s.fencing_token.0 + 1);
            s.lease_expires = Some(claim.lease_expires);
            s.attempts += 1;
            s.last_reported = claim.now;
            s.retry_at = None;
            s.version += 1;
            let s = s.clone();
            inner.log(claim_audit(claim, &s));
            claimed.push(s);
        }
        Ok(claimed)
    }

    async fn overdue(&self, query: &OverdueQuery) -> Result<Vec<PrivSession>, CoreError> {
        let inner = self.lock();
        let mut out: Vec<PrivSession> = inner
            .sessions
            .values()
            .filter(|s| match s.stage {
                Stage::Connected => s.last_reported < query.connected_before,
                Stage::Encoding | Stage::Uploading => {
                    s.lease_expires.is_some_and(|t| t < query.now)
                }
                _ => false,
            })
            .cloned()
            .collect();
        out.sort_by_key(|s| (s.last_reported, s.id));
        out.truncate(query.limit as usize);
        Ok(out)
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<i64, CoreError> {
        Ok(self.lock().log(record.clone()))
    }

    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, CoreError> {
        let inner = self.lock();
        Ok(inner
            .audit
            .iter()
            .filter(|e| query.session.is_none_or(|id| e.record.session == Some(id)))
            .filter(|e| query.after_seq.is_none_or(|seq| e.seq > seq))
            .take(effective_limit(query.limit) as usize)
            .cloned()
            .collect())
    }
}

/// The audit record of one claimed session (shared by all backends that build it in Rust).
pub(crate) fn claim_audit(claim: &ClaimSpec, claimed: &PrivSession) -> AuditRecord {
    AuditRecord {
        at: claim.now,
        session: Some(claimed.id),
        actor: claim.owner.to_string(),
        action: AuditAction::Claimed,
        from_stage: Some(claim.from),
        to_stage: Some(claim.to),
        detail: format!(
            "fencing token {}, attempt {}",
            claimed.fencing_token, claimed.attempts
        ),
    }
}
