//! Decoding stored rows into domain types, for either SQL backend. Stored rows are treated as
//! untrusted: a value PSM cannot read is a [`CoreError::MalformedRow`], never a panic.

use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::audit::{AuditEvent, AuditRecord};
use crate::error::CoreError;
use crate::id::{CheckoutId, FencingToken, ProcessInstance, SessionId};
use crate::session::PrivSession;
use crate::timestamp::Timestamp;

fn malformed(what: &str, e: impl std::fmt::Display) -> CoreError {
    CoreError::MalformedRow {
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

fn get<'r, R, T>(row: &'r R, col: &'static str) -> Result<T, CoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(col)
        .map_err(|e| malformed(&format!("column {col}"), e))
}

/// Decodes one `sessions` row.
pub(crate) fn session<'r, R>(row: &'r R) -> Result<PrivSession, CoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
{
    let id: String = get(row, "id")?;
    let id: SessionId = id.parse().map_err(|e| malformed("session id", e))?;
    let what = format!("session {id}");
    let ts = |micros: i64| Timestamp::from_micros(micros);
    let stage: String = get(row, "stage")?;
    let process_instance: Option<String> = get(row, "process_instance")?;
    let checkout_id: Option<String> = get(row, "checkout_id")?;
    let protocol: String = get(row, "protocol")?;
    let attempts: i64 = get(row, "attempts")?;
    let token: i64 = get(row, "fencing_token")?;
    let version: i64 = get(row, "version")?;
    Ok(PrivSession {
        id,
        stage: stage.parse().map_err(|e| malformed(&what, e))?,
        last_reported: ts(get(row, "last_reported")?),
        process_instance: process_instance
            .map(ProcessInstance::new)
            .transpose()
            .map_err(|e| malformed(&what, e))?,
        start_time: ts(get(row, "start_time")?),
        end_time: get::<_, Option<i64>>(row, "end_time")?.map(ts),
        terminate: get(row, "terminate")?,
        terminate_reason: get(row, "terminate_reason")?,
        user: get(row, "user_name")?,
        target: get(row, "target")?,
        protocol: protocol.parse().map_err(|e| malformed(&what, e))?,
        checkout_id: checkout_id
            .map(CheckoutId::new)
            .transpose()
            .map_err(|e| malformed(&what, e))?,
        attempts: u32::try_from(attempts).map_err(|e| malformed(&what, e))?,
        recording_format: get(row, "recording_format")?,
        ssh_logs_uploaded: get(row, "ssh_logs_uploaded")?,
        lease_expires: get::<_, Option<i64>>(row, "lease_expires")?.map(ts),
        fencing_token: FencingToken(u64::try_from(token).map_err(|e| malformed(&what, e))?),
        retry_at: get::<_, Option<i64>>(row, "retry_at")?.map(ts),
        failure_reason: get(row, "failure_reason")?,
        recording_commitment: get::<_, Option<String>>(row, "recording_commitment")?
            .map(|c| c.parse())
            .transpose()
            .map_err(|e| malformed(&what, e))?,
        version: u64::try_from(version).map_err(|e| malformed(&what, e))?,
    })
}

/// Decodes one `audit_events` row.
pub(crate) fn audit_event<'r, R>(row: &'r R) -> Result<AuditEvent, CoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let seq: i64 = get(row, "seq")?;
    let what = format!("audit event {seq}");
    let session: Option<String> = get(row, "session_id")?;
    let action: String = get(row, "action")?;
    let from: Option<String> = get(row, "from_stage")?;
    let to: Option<String> = get(row, "to_stage")?;
    Ok(AuditEvent {
        seq,
        record: AuditRecord {
            at: Timestamp::from_micros(get(row, "at")?),
            session: session
                .map(|s| s.parse())
                .transpose()
                .map_err(|e| malformed(&what, e))?,
            actor: get(row, "actor")?,
            action: action.parse()?,
            from_stage: from
                .map(|s| s.parse())
                .transpose()
                .map_err(|e| malformed(&what, e))?,
            to_stage: to
                .map(|s| s.parse())
                .transpose()
                .map_err(|e| malformed(&what, e))?,
            detail: get(row, "detail")?,
        },
    })
}
