//! The steps of an access request, run against a directory and audited: file, approve,
//! deny, cancel, expire. The decisions are [`AccessRequest::apply`]'s; this file reads,
//! decides, writes (compare-and-set on the request's version, so two approvers at once
//! both count or one is told to retry) and records what happened in the audit log, which
//! the SIEM forwarders ship like every other audit event.

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{AuditAction, AuditRecord};
use crate::clock::Clock;
use crate::directory::UserDirectory;
use crate::error::CoreError;
use crate::store::SessionStore;
use crate::timestamp::Timestamp;

use super::request::{
    AccessRequest, ApprovalRule, MAX_PENDING_PER_USER, NewAccessRequest, RequestState, RequestStep,
};

/// How often a step re-reads a request that changed under it before giving up.
const MAX_ATTEMPTS: usize = 8;

/// A duration as `2h`, `1h30m`, `45s`.
pub(crate) fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

/// Access requests over a directory, audited in a session store's log.
///
/// ```
/// # async fn demo() -> Result<(), psm_core::CoreError> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use psm_core::access::{AccessRequests, ApprovalRule, RequestState};
/// use psm_core::clock::SystemClock;
/// use psm_core::directory::{DirectoryAdmin, DirectoryLookup, MemoryDirectory, NewUser};
/// use psm_core::store::MemoryStore;
///
/// let dir = Arc::new(MemoryDirectory::new());
/// dir.create_user(&NewUser { name: "alice".parse()?, roles: vec!["dev".into()], ..NewUser::default() }).await?;
/// dir.create_user(&NewUser { name: "bob".parse()?, roles: vec!["leads".into()], ..NewUser::default() }).await?;
/// dir.set_approval_rule(&ApprovalRule::new("web-01", "leads", 1)?).await?;
///
/// let requests = AccessRequests::new(dir.clone(), Arc::new(MemoryStore::new()), Arc::new(SystemClock));
/// let r = requests.request("alice", "web-01", Duration::from_secs(3600), "incident 42").await?;
/// assert!(requests.approve(r.id, "alice").await.is_err(), "never the requester");
/// assert_eq!(requests.approve(r.id, "bob").await?.state, RequestState::Approved);
/// let alice = dir.user("alice").await?.unwrap();
/// assert!(dir.may_reach(&alice, "web-01").await?);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct AccessRequests {
    directory: Arc<dyn UserDirectory>,
    audit: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AccessRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessRequests").finish_non_exhaustive()
    }
}

impl AccessRequests {
    /// Requests kept in `directory`, audited in `audit`'s log, at `clock`'s time.
    pub fn new(
        directory: Arc<dyn UserDirectory>,
        audit: Arc<dyn SessionStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            directory,
            audit,
            clock,
        }
    }

    /// The directory underneath.
    pub fn directory(&self) -> &Arc<dyn UserDirectory> {
        &self.directory
    }

    async fn record(&self, at: Timestamp, actor: &str, action: AuditAction, detail: String) {
        let record = AuditRecord {
            at,
            session: None,
            actor: actor.to_owned(),
            action,
            from_stage: None,
            to_stage: None,
            detail,
        };
        if let Err(e) = self.audit.append_audit(&record).await {
            tracing::error!(error = %e, "could not audit an access request step");
        }
    }

    async fn refused(&self, actor: &str, what: &str, e: CoreError) -> CoreError {
        let now = self.clock.now();
        self.record(
            now,
            actor,
            AuditAction::Refused,
            format!("{what} refused: {e}"),
        )
        .await;
        e
    }

    /// `user` asks for `target` for `duration`, saying why. Refused when the user is
    /// unknown or disabled, already reaches the target by a standing grant (or an approved
    /// request), or the target has no approval rule.
    pub async fn request(
        &self,
        user: &str,
        target: &str,
        duration: Duration,
        reason: &str,
    ) -> Result<AccessRequest, CoreError> {
        let what = format!("access request by {user} for {target}");
        match self.file(user, target, duration, reason).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.refused(user, &what, e).await),
        }
    }

    async fn file(
        &self,
        user: &str,
        target: &str,
        duration: Duration,
        reason: &str,
    ) -> Result<AccessRequest, CoreError> {
        let Some(u) = self.directory.user(user).await? else {
            return Err(CoreError::UnknownUser(user.to_owned()));
        };
        if u.disabled {
            return Err(CoreError::Forbidden(format!("user {user} is disabled")));
        }
        let standing = self.directory.targets_of_roles(&u.roles).await?;
        if standing
            .iter()
            .any(|t| t == crate::directory::ALL_TARGETS || t == target)
        {
            return Err(CoreError::Forbidden(format!(
                "{user} already may reach {target} (a standing grant): no request needed"
            )));
        }
        let now = self.clock.now();
        if self
            .directory
            .request_grants(user, now)
            .await?
            .iter()
            .any(|t| t == target)
        {
            return Err(CoreError::Forbidden(format!(
                "{user} already has approved access to {target}"
            )));
        }
        let Some(rule) = self.directory.approval_rule(target).await? else {
            return Err(CoreError::Forbidden(format!(
                "{target} takes no access requests (no approval rule names it)"
            )));
        };
        let new = NewAccessRequest {
            user: user.to_owned(),
            target: target.to_owned(),
            reason: reason.trim().to_owned(),
            duration,
            created: now,
            approver_role: rule.approver_role.clone(),
            approvals_needed: rule.approvals,
        };
        new.validate()?;
        let id = self.directory.create_access_request(&new).await?;
        self.record(
            now,
            user,
            AuditAction::Other,
            format!(
                "access request {id} filed: {user} asks for {target} for {} (approved by {} of \
                 role {}): {}",
                short_duration(duration),
                rule.approvals,
                rule.approver_role,
                new.reason
            ),
        )
        .await;
        self.get(id).await
    }

    /// One request (its state as stored; see [`AccessRequest::state_at`]).
    pub async fn get(&self, id: i64) -> Result<AccessRequest, CoreError> {
        self.directory
            .access_request(id)
            .await?
            .ok_or_else(|| CoreError::InvalidInput {
                field: "request",
                reason: format!("there is no access request {id}"),
            })
    }

    /// `by` approves request `id`; the last approval needed grants the access from now
    /// for the requested duration.
    pub async fn approve(&self, id: i64, by: &str) -> Result<AccessRequest, CoreError> {
        self.step(id, RequestStep::Approve { by: by.to_owned() })
            .await
    }

    /// `by` denies request `id`, with a note for the requester (may be empty).
    pub async fn deny(&self, id: i64, by: &str, note: &str) -> Result<AccessRequest, CoreError> {
        self.step(
            id,
            RequestStep::Deny {
                by: by.to_owned(),
                note: note.trim().to_owned(),
            },
        )
        .await
    }

    /// The requester withdraws request `id` (an approved one stops granting at once).
    pub async fn cancel(&self, id: i64, by: &str) -> Result<AccessRequest, CoreError> {
        self.step(id, RequestStep::Cancel { by: by.to_owned() })
            .await
    }

    async fn step(&self, id: i64, step: RequestStep) -> Result<AccessRequest, CoreError> {
        let (by, verb) = match &step {
            RequestStep::Approve { by } => (by.clone(), "approval"),
            RequestStep::Deny { by, .. } => (by.clone(), "denial"),
            RequestStep::Cancel { by } => (by.clone(), "cancellation"),
        };
        let what = format!("{verb} of access request {id} by {by}");
        match self.try_step(id, &step, &by).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.refused(&by, &what, e).await),
        }
    }

    async fn try_step(
        &self,
        id: i64,
        step: &RequestStep,
        by: &str,
    ) -> Result<AccessRequest, CoreError> {
        let roles = match step {
            RequestStep::Cancel { .. } => Vec::new(),
            _ => match self.directory.user(by).await? {
                Some(u) if !u.disabled => u.roles,
                Some(_) => return Err(CoreError::Forbidden(format!("user {by} is disabled"))),
                None => return Err(CoreError::UnknownUser(by.to_owned())),
            },
        };
        for _ in 0..MAX_ATTEMPTS {
            let current = self.get(id).await?;
            let now = self.clock.now();
            self.expire_one(&current, now).await?;
            let next = current.apply(step, &roles, now)?;
            if !self.directory.replace_access_request(&next).await? {
                continue;
            }
            let detail = match (step, next.state) {
                (RequestStep::Approve { .. }, RequestState::Approved) => format!(
                    "access request {id} approved by {by} ({} of {}): {} may reach {} until {}",
                    next.approvals.len(),
                    next.approvals_needed,
                    next.user,
                    next.target,
                    next.expires.map(|e| e.to_string()).unwrap_or_default()
                ),
                (RequestStep::Approve { .. }, _) => format!(
                    "access request {id} approved by {by} ({} of {}): {} for {} waits for more \
                     approvals",
                    next.approvals.len(),
                    next.approvals_needed,
                    next.user,
                    next.target
                ),
                (RequestStep::Deny { note, .. }, _) => format!(
                    "access request {id} denied by {by}: {} may not reach {}{}",
                    next.user,
                    next.target,
                    if note.is_empty() {
                        String::new()
                    } else {
                        format!(" ({note})")
                    }
                ),
                (RequestStep::Cancel { .. }, _) => format!(
                    "access request {id} cancelled by {by} (was {})",
                    current.state
                ),
            };
            self.record(now, by, AuditAction::Other, detail).await;
            return Ok(next);
        }
        Err(CoreError::InvalidInput {
            field: "request",
            reason: format!("access request {id} kept changing; try again"),
        })
    }

    /// Stores `r` as expired (audited, once) if its time ran out.
    async fn expire_one(&self, r: &AccessRequest, now: Timestamp) -> Result<(), CoreError> {
        let Some(next) = r.expired(now) else {
            return Ok(());
        };
        if self.directory.replace_access_request(&next).await? {
            self.record(
                now,
                "access-request",
                AuditAction::Other,
                format!(
                    "access request {} of {} for {} expired: {}",
                    r.id, r.user, r.target, next.note
                ),
            )
            .await;
        }
        Ok(())
    }

    /// Requests, newest first (every user's, or `user`'s), those whose time ran out stored
    /// (and audited) as expired first.
    pub async fn list(&self, user: Option<&str>) -> Result<Vec<AccessRequest>, CoreError> {
        let now = self.clock.now();
        let mut out = self.directory.access_requests(user).await?;
        for r in &mut out {
            if let Some(next) = r.expired(now) {
                self.expire_one(r, now).await?;
                *r = next;
            }
        }
        Ok(out)
    }

    /// Requests `approver` may decide now: pending, filed by someone else, approved by a
    /// role they hold and not yet by them.
    pub async fn awaiting(&self, approver: &str) -> Result<Vec<AccessRequest>, CoreError> {
        let roles = match self.directory.user(approver).await? {
            Some(u) if !u.disabled => u.roles,
            _ => return Ok(Vec::new()),
        };
        Ok(self
            .list(None)
            .await?
            .into_iter()
            .filter(|r| {
                r.state == RequestState::Pending
                    && r.user != approver
                    && roles.contains(&r.approver_role)
                    && !r.approvals.iter().any(|a| a.by == approver)
            })
            .collect())
    }

    /// Sets a target's approval rule (audited as done by `actor`).
    pub async fn set_rule(&self, rule: &ApprovalRule, actor: &str) -> Result<(), CoreError> {
        self.directory.set_approval_rule(rule).await?;
        self.record(
            self.clock.now(),
            actor,
            AuditAction::Other,
            format!(
                "approval rule for {}: {} of role {} approve access requests",
                rule.target, rule.approvals, rule.approver_role
            ),
        )
        .await;
        Ok(())
    }

    /// Removes a target's approval rule (audited); returns whether it existed.
    pub async fn remove_rule(&self, target: &str, actor: &str) -> Result<bool, CoreError> {
        let removed = self.directory.remove_approval_rule(target).await?;
        if removed {
            self.record(
                self.clock.now(),
                actor,
                AuditAction::Other,
                format!("approval rule for {target} removed: it takes no access requests"),
            )
            .await;
        }
        Ok(removed)
    }
}

/// How many requests one user has stored as pending, for the stores' cap.
pub(crate) fn approval_pending_cap_error(user: &str) -> CoreError {
    CoreError::Forbidden(format!(
        "{user} already has {MAX_PENDING_PER_USER} pending access requests: cancel one or wait \
         for an answer"
    ))
}
