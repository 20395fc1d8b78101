//! SQL text shared by the SQLite and PostgreSQL stores: one builder renders each statement
//! for either dialect, so the two backends cannot drift apart.

use super::{ClaimSpec, Guard, LeasePatch, OverdueQuery, Patch};
use crate::audit::{AuditAction, AuditRecord};
use crate::id::SessionId;
use crate::stage::Stage;

/// Every column of `sessions`, in the order the row decoder expects.
pub(crate) const SESSION_COLUMNS: &str = "id, stage, last_reported, process_instance, \
    start_time, end_time, terminate, terminate_reason, user_name, target, protocol, \
    checkout_id, attempts, recording_format, ssh_logs_uploaded, lease_expires, fencing_token, \
    retry_at, failure_reason, recording_commitment, version";

/// Every column of `audit_events` but `seq`.
pub(crate) const AUDIT_COLUMNS: &str =
    "at, session_id, actor, action, from_stage, to_stage, detail";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A value bound to a placeholder.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Text(String),
    OptText(Option<String>),
    I64(i64),
    OptI64(Option<i64>),
    Bool(bool),
}

/// Statement text plus its bound values.
pub(crate) struct Sql {
    dialect: Dialect,
    pub(crate) text: String,
    pub(crate) binds: Vec<Value>,
}

impl Sql {
    pub(crate) fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            text: String::with_capacity(512),
            binds: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a placeholder for `v`.
    pub(crate) fn bind(&mut self, v: Value) -> &mut Self {
        self.binds.push(v);
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            Dialect::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.binds.len().to_string());
            }
        }
        self
    }

    fn bind_stage_list(&mut self, stages: impl Iterator<Item = Stage>) {
        self.push("(");
        for (i, stage) in stages.enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(Value::Text(stage.as_str().into()));
        }
        self.push(")");
    }

    fn bind_audit_values(&mut self, a: &AuditRecord) {
        self.bind(Value::I64(a.at.as_micros()));
        self.push(", ");
        self.bind(Value::OptText(a.session.map(|s| s.to_string())));
        self.push(", ");
        self.bind(Value::Text(a.actor.clone()));
        self.push(", ");
        self.bind(Value::Text(a.action.as_str().into()));
        self.push(", ");
        self.bind(Value::OptText(a.from_stage.map(|s| s.as_str().into())));
        self.push(", ");
        self.bind(Value::OptText(a.to_stage.map(|s| s.as_str().into())));
        self.push(", ");
        self.bind(Value::Text(a.detail.clone()));
    }
}

/// `INSERT INTO audit_events ... VALUES (...) RETURNING seq`.
pub(crate) fn insert_audit(dialect: Dialect, a: &AuditRecord) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO audit_events (")
        .push(AUDIT_COLUMNS)
        .push(") VALUES (");
    sql.bind_audit_values(a);
    sql.push(") RETURNING seq");
    sql
}

/// `INSERT INTO sessions (...) VALUES (...)` for a whole row.
pub(crate) fn insert_session(dialect: Dialect, s: &crate::session::PrivSession) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO sessions (")
        .push(SESSION_COLUMNS)
        .push(") VALUES (");
    let values = [
        Value::Text(s.id.to_string()),
        Value::Text(s.stage.as_str().into()),
        Value::I64(s.last_reported.as_micros()),
        Value::OptText(s.process_instance.as_ref().map(|p| p.to_string())),
        Value::I64(s.start_time.as_micros()),
        Value::OptI64(s.end_time.map(|t| t.as_micros())),
        Value::Bool(s.terminate),
        Value::OptText(s.terminate_reason.clone()),
        Value::Text(s.user.clone()),
        Value::Text(s.target.clone()),
        Value::Text(s.protocol.as_str().into()),
        Value::OptText(s.checkout_id.as_ref().map(|c| c.to_string())),
        Value::I64(i64::from(s.attempts)),
        Value::OptText(s.recording_format.clone()),
        Value::Bool(s.ssh_logs_uploaded),
        Value::OptI64(s.lease_expires.map(|t| t.as_micros())),
        Value::I64(s.fencing_token.0 as i64),
        Value::OptI64(s.retry_at.map(|t| t.as_micros())),
        Value::OptText(s.failure_reason.clone()),
        Value::OptText(s.recording_commitment.map(|c| c.to_string())),
        Value::I64(s.version as i64),
    ];
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(v);
    }
    sql.push(")");
    sql
}

/// The guarded update. On PostgreSQL the audit insert rides in the same statement (a
/// data-modifying CTE), one round trip; SQLite runs `audit` separately in the transaction.
pub(crate) fn guarded_update(
    dialect: Dialect,
    id: SessionId,
    guard: &Guard,
    patch: &Patch,
    audit: Option<&AuditRecord>,
) -> Sql {
    let mut sql = Sql::new(dialect);
    let cte = dialect == Dialect::Postgres && audit.is_some();
    if cte {
        sql.push("WITH u AS (");
    }
    sql.push("UPDATE sessions SET ");
    let set_text = |sql: &mut Sql, col: &str, v: Value| {
        sql.push(col).push(" = ");
        sql.bind(v);
        sql.push(", ");
    };
    if let Some(v) = patch.stage {
        set_text(&mut sql, "stage", Value::Text(v.as_str().into()));
    }
    if let Some(v) = patch.last_reported {
        set_text(&mut sql, "last_reported", Value::I64(v.as_micros()));
    }
    if let Some(v) = patch.end_time {
        set_text(&mut sql, "end_time", Value::I64(v.as_micros()));
    }
    if let Some(v) = patch.terminate {
        set_text(&mut sql, "terminate", Value::Bool(v));
    }
    if let Some(v) = &patch.terminate_reason {
        set_text(&mut sql, "terminate_reason", Value::OptText(v.clone()));
    }
    match patch.lease_expires {
        LeasePatch::Keep => {}
        LeasePatch::Clear => {
            sql.push("lease_expires = NULL, ");
        }
        LeasePatch::Renew(t) => {
            sql.push("lease_expires = CASE WHEN lease_expires IS NULL THEN NULL ELSE ");
            sql.bind(Value::I64(t.as_micros()));
            sql.push(" END, ");
        }
    }
    if let Some(v) = patch.attempts {
        set_text(&mut sql, "attempts", Value::I64(i64::from(v)));
    }
    if let Some(v) = patch.retry_at {
        set_text(
            &mut sql,
            "retry_at",
            Value::OptI64(v.map(|t| t.as_micros())),
        );
    }
    if let Some(v) = &patch.failure_reason {
        set_text(&mut sql, "failure_reason", Value::OptText(v.clone()));
    }
    if let Some(v) = &patch.recording_format {
        set_text(&mut sql, "recording_format", Value::OptText(v.clone()));
    }
    if let Some(v) = patch.ssh_logs_uploaded {
        set_text(&mut sql, "ssh_logs_uploaded", Value::Bool(v));
    }
    if let Some(v) = patch.recording_commitment {
        set_text(
            &mut sql,
            "recording_commitment",
            Value::OptText(v.map(|c| c.to_string())),
        );
    }
    sql.push("version = version + 1 WHERE id = ");
    sql.bind(Value::Text(id.to_string()));
    if !guard.stages.is_empty() {
        sql.push(" AND stage IN ");
        sql.bind_stage_list(guard.stages.iter());
    }
    if let Some(owner) = &guard.owner {
        sql.push(" AND process_instance = ");
        sql.bind(Value::Text(owner.to_string()));
    }
    if let Some(token) = guard.token {
        sql.push(" AND fencing_token = ");
        sql.bind(Value::I64(token.0 as i64));
    }
    if let Some(version) = guard.version {
        sql.push(" AND version = ");
        sql.bind(Value::I64(version as i64));
    }
    sql.push(" RETURNING ").push(SESSION_COLUMNS);
    if let (true, Some(a)) = (cte, audit) {
        sql.push("), a AS (INSERT INTO audit_events (")
            .push(AUDIT_COLUMNS)
            .push(") SELECT ");
        sql.bind_audit_values(a);
        sql.push(" FROM u) SELECT ")
            .push(SESSION_COLUMNS)
            .push(" FROM u");
    }
    sql
}

/// The claim. PostgreSQL: one statement that picks rows with `FOR UPDATE SKIP LOCKED`,
/// updates them and logs each claim. SQLite: an `UPDATE ... WHERE id IN (SELECT ... LIMIT n)`
/// (the write lock is taken by the first statement, so no upgrade deadlock); the caller logs.
pub(crate) fn claim(dialect: Dialect, c: &ClaimSpec) -> Sql {
    let mut sql = Sql::new(dialect);
    let pick = |sql: &mut Sql| {
        sql.push("SELECT id FROM sessions WHERE stage = ");
        sql.bind(Value::Text(c.from.as_str().into()));
        sql.push(" AND (retry_at IS NULL OR retry_at <= ");
        sql.bind(Value::I64(c.now.as_micros()));
        sql.push(")");
        if let Some(among) = &c.among {
            // An empty list never reaches a store (the engine answers it); render it as
            // "nothing" anyway rather than as invalid `IN ()`.
            if among.is_empty() {
                sql.push(" AND 1 = 0");
            } else {
                sql.push(" AND id IN (");
                for (i, id) in among.iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.bind(Value::Text(id.to_string()));
                }
                sql.push(")");
            }
        }
        sql.push(" ORDER BY end_time, id LIMIT ");
        sql.bind(Value::I64(i64::from(c.limit)));
    };
    let set = |sql: &mut Sql| {
        sql.push("UPDATE sessions SET stage = ");
        sql.bind(Value::Text(c.to.as_str().into()));
        sql.push(", process_instance = ");
        sql.bind(Value::Text(c.owner.to_string()));
        sql.push(", fencing_token = fencing_token + 1, lease_expires = ");
        sql.bind(Value::I64(c.lease_expires.as_micros()));
        sql.push(", attempts = attempts + 1, last_reported = ");
        sql.bind(Value::I64(c.now.as_micros()));
        sql.push(", retry_at = NULL, version = version + 1 WHERE id IN (");
    };
    match dialect {
        Dialect::Sqlite => {
            set(&mut sql);
            pick(&mut sql);
            sql.push(") RETURNING ").push(SESSION_COLUMNS);
        }
        Dialect::Postgres => {
            sql.push("WITH picked AS (");
            pick(&mut sql);
            sql.push(" FOR UPDATE SKIP LOCKED), claimed AS (");
            set(&mut sql);
            sql.push("SELECT id FROM picked) RETURNING ")
                .push(SESSION_COLUMNS)
                .push("), logged AS (INSERT INTO audit_events (")
                .push(AUDIT_COLUMNS)
                .push(") SELECT ");
            sql.bind(Value::I64(c.now.as_micros()));
            sql.push(", id, ");
            sql.bind(Value::Text(c.owner.to_string()));
            sql.push(", ");
            sql.bind(Value::Text(AuditAction::Claimed.as_str().into()));
            sql.push(", ");
            sql.bind(Value::Text(c.from.as_str().into()));
            sql.push(", ");
            sql.bind(Value::Text(c.to.as_str().into()));
            sql.push(
                ", 'fencing token ' || fencing_token || ', attempt ' || attempts FROM claimed) \
                 SELECT ",
            )
            .push(SESSION_COLUMNS)
            .push(" FROM claimed");
        }
    }
    sql
}

/// The watchdog's query.
pub(crate) fn overdue(dialect: Dialect, q: &OverdueQuery) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT ")
        .push(SESSION_COLUMNS)
        .push(" FROM sessions WHERE (stage = 'Connected' AND last_reported < ");
    sql.bind(Value::I64(q.connected_before.as_micros()));
    sql.push(") OR (stage IN ('Encoding', 'Uploading') AND lease_expires < ");
    sql.bind(Value::I64(q.now.as_micros()));
    sql.push(") ORDER BY last_reported, id LIMIT ");
    sql.bind(Value::I64(i64::from(q.limit)));
    sql
}

/// A listing.
pub(crate) fn list(dialect: Dialect, q: &super::ListQuery) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT ")
        .push(SESSION_COLUMNS)
        .push(" FROM sessions WHERE 1 = 1");
    if !q.ids.is_empty() {
        sql.push(" AND id IN (");
        for (i, id) in q.ids.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(Value::Text(id.to_string()));
        }
        sql.push(")");
    }
    if !q.stages.is_empty() {
        sql.push(" AND stage IN ");
        sql.bind_stage_list(q.stages.iter());
    }
    if let Some(after) = &q.after {
        let t = after.start_time.as_micros();
        sql.push(" AND (start_time < ");
        sql.bind(Value::I64(t));
        sql.push(" OR (start_time = ");
        sql.bind(Value::I64(t));
        sql.push(" AND id > ");
        sql.bind(Value::Text(after.id.to_string()));
        sql.push("))");
    }
    sql.push(" ORDER BY start_time DESC, id LIMIT ");
    sql.bind(Value::I64(i64::from(super::effective_limit(q.limit))));
    sql
}

/// Audit events.
pub(crate) fn audit_events(dialect: Dialect, q: &super::AuditQuery) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push("SELECT seq, ")
        .push(AUDIT_COLUMNS)
        .push(" FROM audit_events WHERE 1 = 1");
    if let Some(id) = q.session {
        sql.push(" AND session_id = ");
        sql.bind(Value::Text(id.to_string()));
    }
    if let Some(after) = q.after_seq {
        sql.push(" AND seq > ");
        sql.bind(Value::I64(after));
    }
    sql.push(" ORDER BY seq LIMIT ");
    sql.bind(Value::I64(i64::from(super::effective_limit(q.limit))));
    sql
}

/// Binds a rendered statement's values to a sqlx query of either backend.
macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut q = $query;
        for v in $binds {
            q = match v {
                $crate::store::sql::Value::Text(s) => q.bind(s),
                $crate::store::sql::Value::OptText(s) => q.bind(s),
                $crate::store::sql::Value::I64(n) => q.bind(n),
                $crate::store::sql::Value::OptI64(n) => q.bind(n),
                $crate::store::sql::Value::Bool(b) => q.bind(b),
            };
        }
        q
    }};
}
pub(crate) use bind_all;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{FencingToken, ProcessInstance};
    use crate::store::StageSet;
    use crate::timestamp::Timestamp;

    #[test]
    fn postgres_placeholders_are_numbered_in_order() {
        let guard = Guard {
            stages: StageSet::one(Stage::Encoding),
            owner: Some(ProcessInstance::new("enc").expect("pi")),
            token: Some(FencingToken(3)),
            version: None,
        };
        let patch = Patch {
            stage: Some(Stage::DoneEncoded),
            ..Patch::default()
        };
        let sql = guarded_update(Dialect::Postgres, SessionId::new(), &guard, &patch, None);
        assert!(sql.text.contains("stage = $1"), "{}", sql.text);
        assert!(sql.text.contains("id = $2"), "{}", sql.text);
        assert!(sql.text.contains("stage IN ($3)"), "{}", sql.text);
        assert!(sql.text.contains("fencing_token = $5"), "{}", sql.text);
        assert_eq!(sql.binds.len(), 5);
        let sqlite = guarded_update(Dialect::Sqlite, SessionId::new(), &guard, &patch, None);
        assert_eq!(sqlite.text.matches('?').count(), 5);
    }

    #[test]
    fn claim_sql_uses_skip_locked_on_postgres_only() {
        let c = ClaimSpec {
            from: Stage::Ended,
            to: Stage::Encoding,
            owner: ProcessInstance::new("e1").expect("pi"),
            now: Timestamp::EPOCH,
            lease_expires: Timestamp::EPOCH,
            limit: 4,
            among: None,
        };
        assert!(
            claim(Dialect::Postgres, &c)
                .text
                .contains("FOR UPDATE SKIP LOCKED")
        );
        assert!(!claim(Dialect::Sqlite, &c).text.contains("SKIP LOCKED"));
    }
}
