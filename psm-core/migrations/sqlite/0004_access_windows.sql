-- Access windows (issue 20 item 2): when and from where a role may use its grant of a
-- target ('*': every target it reaches). `spec` is the window's canonical text
-- (psm_core::access::AccessWindow), parsed again when read.
CREATE TABLE access_windows (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    role   TEXT NOT NULL,
    target TEXT NOT NULL,
    spec   TEXT NOT NULL
) STRICT;

CREATE INDEX access_windows_role ON access_windows (role);
