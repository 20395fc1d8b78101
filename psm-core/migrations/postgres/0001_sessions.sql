-- Sessions and their append-only audit log. Times are microseconds since the Unix epoch (UTC).
CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    stage             TEXT NOT NULL,
    last_reported     BIGINT NOT NULL,
    process_instance  TEXT,
    start_time        BIGINT NOT NULL,
    end_time          BIGINT,
    terminate         BOOLEAN NOT NULL DEFAULT FALSE,
    terminate_reason  TEXT,
    user_name         TEXT NOT NULL,
    target            TEXT NOT NULL,
    protocol          TEXT NOT NULL,
    checkout_id       TEXT,
    attempts          BIGINT NOT NULL DEFAULT 0,
    recording_format  TEXT,
    ssh_logs_uploaded BOOLEAN NOT NULL DEFAULT FALSE,
    lease_expires     BIGINT,
    fencing_token     BIGINT NOT NULL DEFAULT 0,
    retry_at          BIGINT,
    failure_reason    TEXT,
    version           BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX sessions_queue ON sessions (stage, end_time, id);
CREATE INDEX sessions_reported ON sessions (stage, last_reported);
CREATE INDEX sessions_lease ON sessions (stage, lease_expires);
CREATE INDEX sessions_start ON sessions (start_time);

CREATE TABLE audit_events (
    seq        BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    session_id TEXT,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    from_stage TEXT,
    to_stage   TEXT,
    detail     TEXT NOT NULL
);

CREATE INDEX audit_session ON audit_events (session_id, seq);

CREATE FUNCTION psm_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION psm_audit_append_only();
