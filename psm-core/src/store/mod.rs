//! Where sessions and the audit log live: the [`SessionStore`] trait and its backends.
//!
//! The engine decides *what* changes; a store applies it atomically. Every write is a
//! guarded patch ([`Guard`] + [`Patch`]): "if the session is in one of these stages, owned by
//! this process, at this fencing token (or version), set these fields", in one statement or
//! transaction together with its audit event. A claim ([`ClaimSpec`]) is the one write that
//! picks its own rows; PostgreSQL does it with `FOR UPDATE SKIP LOCKED`, so concurrent
//! workers never wait on each other's rows.
//!
//! Backends: [`MemoryStore`] (tests, embedding), [`SqliteStore`] (the embedded default) and
//! [`PostgresStore`] (scale-out). All three pass the same conformance suite
//! (`conformance`, behind the crate feature of that name).

use async_trait::async_trait;

use crate::audit::{AuditEvent, AuditRecord};
use crate::error::CoreError;
use crate::id::{FencingToken, ProcessInstance, SessionId};
use crate::session::PrivSession;
use crate::stage::Stage;
use crate::timestamp::Timestamp;

mod memory;
mod postgres;
mod row;
mod sql;
mod sqlite;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use memory::MemoryStore;
pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::SqliteStore;

/// A set of stages, for guards and queries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StageSet(u8);

impl StageSet {
    /// No stage.
    pub const EMPTY: StageSet = StageSet(0);

    /// One stage.
    pub const fn one(stage: Stage) -> Self {
        StageSet(1 << stage as u8)
    }

    /// These stages.
    pub fn of(stages: &[Stage]) -> Self {
        stages.iter().fold(Self::EMPTY, |set, s| set.with(*s))
    }

    /// This set plus `stage`.
    pub const fn with(self, stage: Stage) -> Self {
        StageSet(self.0 | 1 << stage as u8)
    }

    /// Whether `stage` is in the set.
    pub const fn contains(self, stage: Stage) -> bool {
        self.0 & (1 << stage as u8) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The stages, in lifecycle order.
    pub fn iter(self) -> impl Iterator<Item = Stage> {
        Stage::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Human-readable, for errors: `Connected or Encoding`.
    pub fn describe(self) -> String {
        self.iter()
            .map(Stage::as_str)
            .collect::<Vec<_>>()
            .join(" or ")
    }
}

/// The conditions a guarded write needs to hold; `None`/empty means "any".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Guard {
    /// The session must be in one of these stages.
    pub stages: StageSet,
    /// The session's `process_instance` must be this one.
    pub owner: Option<ProcessInstance>,
    /// The session's fencing token must be this one.
    pub token: Option<FencingToken>,
    /// The session's version must be this one (compare-and-swap).
    pub version: Option<u64>,
}

impl Guard {
    /// Whether `session` satisfies the guard.
    pub fn matches(&self, session: &PrivSession) -> bool {
        (self.stages.is_empty() || self.stages.contains(session.stage))
            && self
                .owner
                .as_ref()
                .is_none_or(|o| session.process_instance.as_ref() == Some(o))
            && self.token.is_none_or(|t| session.fencing_token == t)
            && self.version.is_none_or(|v| session.version == v)
    }
}

/// How a patch treats the lease expiry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LeasePatch {
    /// Leave it.
    #[default]
    Keep,
    /// Remove it (the session leaves a leased stage).
    Clear,
    /// Set it to this instant only if a lease is held now (heartbeats: a Connected session
    /// has no lease and gets none).
    Renew(Timestamp),
}

/// The fields a guarded write sets; `None` leaves a field as it is. `Some(None)` clears an
/// optional field. Every applied patch also bumps `version` by one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Patch {
    /// New stage.
    pub stage: Option<Stage>,
    /// New LastReported.
    pub last_reported: Option<Timestamp>,
    /// New EndTime.
    pub end_time: Option<Timestamp>,
    /// New terminate flag.
    pub terminate: Option<bool>,
    /// New terminate reason.
    pub terminate_reason: Option<Option<String>>,
    /// Lease expiry.
    pub lease_expires: LeasePatch,
    /// New attempt count.
    pub attempts: Option<u32>,
    /// New retry-not-before.
    pub retry_at: Option<Option<Timestamp>>,
    /// New failure reason.
    pub failure_reason: Option<Option<String>>,
    /// New recording format.
    pub recording_format: Option<Option<String>>,
    /// New sshLogsUploaded.
    pub ssh_logs_uploaded: Option<bool>,
    /// The gateway's commitment to its recording (set by EndSession).
    pub recording_commitment: Option<Option<crate::session::RecordingCommitment>>,
}

impl Patch {
    /// Applies the patch to a session in memory: the reference semantics every backend's
    /// SQL must match (the conformance suite compares them).
    pub fn apply(&self, s: &mut PrivSession) {
        if let Some(v) = self.stage {
            s.stage = v;
        }
        if let Some(v) = self.last_reported {
            s.last_reported = v;
        }
        if let Some(v) = self.end_time {
            s.end_time = Some(v);
        }
        if let Some(v) = self.terminate {
            s.terminate = v;
        }
        if let Some(v) = &self.terminate_reason {
            s.terminate_reason = v.clone();
        }
        match self.lease_expires {
            LeasePatch::Keep => {}
            LeasePatch::Clear => s.lease_expires = None,
            LeasePatch::Renew(t) => {
                if s.lease_expires.is_some() {
                    s.lease_expires = Some(t);
                }
            }
        }
        if let Some(v) = self.attempts {
            s.attempts = v;
        }
        if let Some(v) = self.retry_at {
            s.retry_at = v;
        }
        if let Some(v) = &self.failure_reason {
            s.failure_reason = v.clone();
        }
        if let Some(v) = &self.recording_format {
            s.recording_format = v.clone();
        }
        if let Some(v) = self.ssh_logs_uploaded {
            s.ssh_logs_uploaded = v;
        }
        if let Some(v) = self.recording_commitment {
            s.recording_commitment = v;
        }
        s.version += 1;
    }
}

/// A claim: atomically move up to `limit` sessions in stage `from` whose `retry_at` has
/// passed (or is unset), oldest end time first (then by id; queued sessions always have an
/// end time), to stage `to`, owned by `owner` with a lease
/// until `lease_expires`. Each claimed session gets `fencing_token + 1`, `attempts + 1`,
/// `last_reported = now`, `retry_at = NULL`, `process_instance = owner`, `version + 1`, and an
/// audit event `claimed` (actor `owner`, from → to, detail `fencing token T, attempt A`).
/// The claimed sessions may be returned in any order. With `among`, only the listed sessions
/// are eligible (a worker names the sessions whose files it can reach).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimSpec {
    /// The queue stage.
    pub from: Stage,
    /// The leased stage.
    pub to: Stage,
    /// The claiming worker.
    pub owner: ProcessInstance,
    /// Now.
    pub now: Timestamp,
    /// Lease expiry of the new claims.
    pub lease_expires: Timestamp,
    /// At most this many sessions.
    pub limit: u32,
    /// Only these sessions are eligible (`None`: any). At most [`MAX_CLAIM_AMONG`] ids; the
    /// engine never passes an empty list (it answers that claim itself: nothing).
    pub among: Option<Vec<SessionId>>,
}

/// Most ids a claim restricted to given sessions ([`ClaimSpec::among`]) may name.
pub const MAX_CLAIM_AMONG: usize = 1000;

/// Sessions the watchdog should look at: Connected ones whose LastReported is older than
/// `connected_before`, and leased ones whose lease expired before `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverdueQuery {
    /// Connected sessions with `last_reported < connected_before` are stale.
    pub connected_before: Timestamp,
    /// Leased sessions with `lease_expires < now` lost their lease.
    pub now: Timestamp,
    /// At most this many.
    pub limit: u32,
}

/// A listing of sessions, newest start first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only these ids (empty: any).
    pub ids: Vec<SessionId>,
    /// Only these stages (empty: any).
    pub stages: StageSet,
    /// At most this many (0: the store's maximum, 10,000).
    pub limit: u32,
    /// Only sessions after this one in the listing's order (a page's last session: the
    /// next page starts after it, whatever was inserted meanwhile).
    pub after: Option<ListCursor>,
}

/// A position in a listing of sessions: a session's start time and id. Listings are
/// ordered by start time, newest first, then by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListCursor {
    /// The session's start time.
    pub start_time: Timestamp,
    /// The session's id.
    pub id: SessionId,
}

impl ListCursor {
    /// The position of `s`.
    pub fn of(s: &PrivSession) -> Self {
        Self {
            start_time: s.start_time,
            id: s.id,
        }
    }
}

/// Upper bound of any listing.
pub const MAX_LIST: u32 = 10_000;

/// Which audit events to read, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only about this session.
    pub session: Option<SessionId>,
    /// Only with `seq` greater than this (for paging and tailing).
    pub after_seq: Option<i64>,
    /// At most this many (0: 10,000).
    pub limit: u32,
}

/// Where sessions and their audit trail are kept.
///
/// Implementations must make each method atomic: a guarded `update` and its audit event are
/// written together or not at all; a `claim` never hands one session to two callers.
///
/// ```
/// # async fn demo() -> Result<(), psm_core::CoreError> {
/// use psm_core::store::{MemoryStore, SessionStore, ListQuery};
/// let store = MemoryStore::new();
/// assert!(store.list(&ListQuery::default()).await?.is_empty());
/// # Ok(()) }
/// ```
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Inserts a new session with its audit event. A duplicate id is
    /// [`CoreError::SessionExists`].
    async fn insert(&self, session: &PrivSession, audit: &AuditRecord) -> Result<(), CoreError>;

    /// One session.
    async fn get(&self, id: SessionId) -> Result<Option<PrivSession>, CoreError>;

    /// Sessions matching a query, newest start first.
    async fn list(&self, query: &ListQuery) -> Result<Vec<PrivSession>, CoreError>;

    /// If session `id` exists and satisfies `guard`, applies `patch` (as [`Patch::apply`]
    /// does) and appends `audit`, atomically, and returns the new row; otherwise changes
    /// nothing and returns `None`. A write with an audit event (every stage change) must be
    /// durable when this returns; one without (heartbeats) may be committed asynchronously.
    async fn update(
        &self,
        id: SessionId,
        guard: &Guard,
        patch: &Patch,
        audit: Option<&AuditRecord>,
    ) -> Result<Option<PrivSession>, CoreError>;

    /// Performs a claim (see [`ClaimSpec`]) and returns the claimed sessions.
    async fn claim(&self, claim: &ClaimSpec) -> Result<Vec<PrivSession>, CoreError>;

    /// Sessions the watchdog must move (see [`OverdueQuery`]).
    async fn overdue(&self, query: &OverdueQuery) -> Result<Vec<PrivSession>, CoreError>;

    /// Appends an audit event not tied to a session write (refusals, checkouts...).
    async fn append_audit(&self, record: &AuditRecord) -> Result<i64, CoreError>;

    /// Reads audit events, oldest first.
    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, CoreError>;
}

pub(crate) fn effective_limit(limit: u32) -> u32 {
    if limit == 0 {
        MAX_LIST
    } else {
        limit.min(MAX_LIST)
    }
}
