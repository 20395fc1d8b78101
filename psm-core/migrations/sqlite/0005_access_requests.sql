-- Access requests with approval (issue 20 item 1). A rule names, per target ('*': every
-- target without its own), the role whose members approve and how many must. A request is
-- one row; `approvals` is `NAME@MICROS,...`; `version` grows with every change (writers
-- compare and set it). Times are microseconds since the Unix epoch.
CREATE TABLE access_approval_rules (
    target        TEXT PRIMARY KEY,
    approver_role TEXT NOT NULL,
    approvals     INTEGER NOT NULL
) STRICT;

CREATE TABLE access_requests (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_name        TEXT NOT NULL,
    target           TEXT NOT NULL,
    reason           TEXT NOT NULL,
    duration_secs    INTEGER NOT NULL,
    created          INTEGER NOT NULL,
    state            TEXT NOT NULL,
    approver_role    TEXT NOT NULL,
    approvals_needed INTEGER NOT NULL,
    approvals        TEXT NOT NULL,
    decided_by       TEXT,
    decided_at       INTEGER,
    expires          INTEGER,
    note             TEXT NOT NULL,
    version          INTEGER NOT NULL
) STRICT;

CREATE INDEX access_requests_user ON access_requests (user_name, state);
