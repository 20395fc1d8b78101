-- Sessions and their append-only audit log. Times are microseconds since the Unix epoch (UTC).
CREATE TABLE sessions (
    id                TEXT PRIMARY KEY NOT NULL,
    stage             TEXT NOT NULL,
    last_reported     INTEGER NOT NULL,
    process_instance  TEXT,
    start_time        INTEGER NOT NULL,
    end_time          INTEGER,
    terminate         INTEGER NOT NULL DEFAULT 0,
    terminate_reason  TEXT,
    user_name         TEXT NOT NULL,
    target            TEXT NOT NULL,
    protocol          TEXT NOT NULL,
    checkout_id       TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    recording_format  TEXT,
    ssh_logs_uploaded INTEGER NOT NULL DEFAULT 0,
    lease_expires     INTEGER,
    fencing_token     INTEGER NOT NULL DEFAULT 0,
    retry_at          INTEGER,
    failure_reason    TEXT,
    version           INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX sessions_queue ON sessions (stage, end_time, id);
CREATE INDEX sessions_reported ON sessions (stage, last_reported);
CREATE INDEX sessions_lease ON sessions (stage, lease_expires);
CREATE INDEX sessions_start ON sessions (start_time);

CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    session_id TEXT,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    from_stage TEXT,
    to_stage   TEXT,
    detail     TEXT NOT NULL
) STRICT;

CREATE INDEX audit_session ON audit_events (session_id, seq);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
