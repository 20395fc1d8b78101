-- The credential vault: targets, their sealed credentials, and checkouts.
-- Times are microseconds since the Unix epoch (UTC). Secrets are only ever stored sealed
-- (XChaCha20-Poly1305 under the master key named by key_id; see psm_core::vault).
CREATE TABLE vault_targets (
    name      TEXT PRIMARY KEY NOT NULL,
    host      TEXT NOT NULL,
    port      INTEGER NOT NULL,
    protocol  TEXT NOT NULL,
    host_key  TEXT,
    updated   INTEGER NOT NULL
) STRICT;

CREATE TABLE vault_credentials (
    target     TEXT PRIMARY KEY NOT NULL REFERENCES vault_targets (name) ON DELETE CASCADE,
    username   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    updated    INTEGER NOT NULL
) STRICT;

CREATE INDEX vault_credentials_key ON vault_credentials (key_id);

CREATE TABLE vault_checkouts (
    id         TEXT PRIMARY KEY NOT NULL,
    user_name  TEXT NOT NULL,
    target     TEXT NOT NULL,
    created    INTEGER NOT NULL,
    expires    INTEGER NOT NULL,
    ended      INTEGER,
    end_reason TEXT,
    created_by TEXT NOT NULL
) STRICT;

CREATE INDEX vault_checkouts_open ON vault_checkouts (ended, expires);
CREATE INDEX sessions_checkout ON sessions (checkout_id, stage);
