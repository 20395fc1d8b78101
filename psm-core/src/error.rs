//! The one error type of psm-core.

use crate::id::{FencingToken, ProcessInstance, SessionId};
use crate::stage::Stage;

/// Everything that can go wrong in the lifecycle engine, its stores and the control plane.
/// Each variant says what was wrong and with which session, never a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// No session has this id.
    #[error("unknown session {0}")]
    UnknownSession(SessionId),

    /// A session with this id already exists.
    #[error("session {0} already exists")]
    SessionExists(SessionId),

    /// The call needs the caller's process instance and none was given (the seed's
    /// "Process instance not supplied").
    #[error("Process instance not supplied")]
    MissingProcessInstance,

    /// A field of the request is malformed.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field, by its wire name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// The caller is not the process that owns the session in its current stage. The
    /// message does not name the owner (a caller learns nothing about other processes);
    /// `owner` is for the caller's own logs and tests.
    #[error("session {session} is {stage} and not held by {caller}")]
    NotOwner {
        /// The session.
        session: SessionId,
        /// Its current stage.
        stage: Stage,
        /// Who asked.
        caller: ProcessInstance,
        /// Who owns it.
        owner: Option<ProcessInstance>,
    },

    /// The caller's fencing token is not the session's current one: its lease was lost and
    /// the session claimed again since.
    #[error(
        "stale fencing token {presented} for session {session} (current {current}): the lease \
         was lost and the session claimed again"
    )]
    StaleToken {
        /// The session.
        session: SessionId,
        /// The token the caller presented.
        presented: FencingToken,
        /// The session's current token.
        current: FencingToken,
    },

    /// The caller's lease ran out and the watchdog moved the session on (its fencing token is
    /// still current, but the session is no longer in the leased stage).
    #[error("lease on session {session} was lost: it expired and the session is now {stage}")]
    LeaseLost {
        /// The session.
        session: SessionId,
        /// Its current stage.
        stage: Stage,
    },

    /// The operation needs the session in another stage.
    #[error("session {session} is {actual}; {operation} needs it {expected}")]
    WrongStage {
        /// The session.
        session: SessionId,
        /// What was attempted.
        operation: &'static str,
        /// The stage(s) the operation accepts.
        expected: String,
        /// The stage the session is in.
        actual: Stage,
    },

    /// A stage change the lifecycle does not allow.
    #[error("illegal stage change {from} -> {to}")]
    IllegalTransition {
        /// From.
        from: Stage,
        /// To.
        to: Stage,
    },

    /// Concurrent writers kept changing the session under this call.
    #[error("session {0} kept changing under concurrent writers; try again")]
    Contended(SessionId),

    /// The database failed.
    #[error("database error while {operation}: {source}")]
    Database {
        /// What the store was doing.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// The database file is not a PSM database or is damaged.
    #[error("database {location} is corrupt or not a PSM database: {source}")]
    CorruptDatabase {
        /// The file or URL (without password).
        location: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// The database holds tables but is not a PSM database; nothing was written to it.
    #[error(
        "database {location} is not a PSM database (it has tables of its own); refusing to touch it"
    )]
    ForeignDatabase {
        /// The file or URL (without password).
        location: String,
    },

    /// Applying the schema migrations failed.
    #[error("database migration failed: {0}")]
    Migration(#[source] sqlx::migrate::MigrateError),

    /// A row in the store holds a value PSM cannot read (written by something else).
    #[error("stored row for {what} is malformed: {reason}")]
    MalformedRow {
        /// Which row.
        what: String,
        /// What is wrong.
        reason: String,
    },

    /// A remote control plane could not be reached or answered out of contract.
    #[error("control plane unavailable: {message}")]
    Unavailable {
        /// What happened.
        message: String,
        /// The cause.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// The caller is not authenticated.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),

    /// The caller is authenticated but may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),

    /// No directory user has this name.
    #[error("unknown user {0}")]
    UnknownUser(String),

    /// A directory user with this name already exists.
    #[error("user {0} already exists")]
    UserExists(String),

    /// No target has this name in the vault.
    #[error("unknown target {0:?}")]
    UnknownTarget(String),

    /// No checkout has this id.
    #[error("unknown checkout {0}")]
    UnknownCheckout(crate::id::CheckoutId),

    /// The checkout is no longer valid.
    #[error("checkout {checkout} has ended ({reason})")]
    CheckoutEnded {
        /// The checkout.
        checkout: crate::id::CheckoutId,
        /// `checked-in` or `expired`.
        reason: String,
    },

    /// The target has no credential in the vault.
    #[error("target {target:?} has no credential in the vault")]
    NoCredential {
        /// The target.
        target: String,
    },

    /// The vault could not seal or open a credential (wrong or missing master key, a row
    /// altered at rest). Never carries the secret.
    #[error("vault: {reason}")]
    Vault {
        /// What went wrong.
        reason: String,
    },

    /// This control plane does not offer the operation (an in-process engine without a
    /// vault, or a remote PAM product that implements only the seed's endpoints).
    #[error("{operation} is not supported by this control plane")]
    Unsupported {
        /// The operation, by its contract name.
        operation: &'static str,
    },
}

impl CoreError {
    pub(crate) fn db(operation: &'static str) -> impl FnOnce(sqlx::Error) -> CoreError {
        move |source| CoreError::Database { operation, source }
    }

    /// Whether retrying the same call later may succeed (transport and contention problems),
    /// as opposed to a refusal that will repeat.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CoreError::Contended(_) | CoreError::Database { .. } | CoreError::Unavailable { .. }
        )
    }
}
