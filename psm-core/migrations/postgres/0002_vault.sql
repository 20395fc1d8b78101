-- The credential vault: targets, their sealed credentials, and checkouts.
-- Times are microseconds since the Unix epoch (UTC). Secrets are only ever stored sealed
-- (XChaCha20-Poly1305 under the master key named by key_id; see psm_core::vault).
CREATE TABLE vault_targets (
    name      TEXT PRIMARY KEY,
    host      TEXT NOT NULL,
    port      BIGINT NOT NULL,
    protocol  TEXT NOT NULL,
    host_key  TEXT,
    updated   BIGINT NOT NULL
);

CREATE TABLE vault_credentials (
    target     TEXT PRIMARY KEY REFERENCES vault_targets (name) ON DELETE CASCADE,
    username   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    updated    BIGINT NOT NULL
);

CREATE INDEX vault_credentials_key ON vault_credentials (key_id);

CREATE TABLE vault_checkouts (
    id         TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL,
    target     TEXT NOT NULL,
    created    BIGINT NOT NULL,
    expires    BIGINT NOT NULL,
    ended      BIGINT,
    end_reason TEXT,
    created_by TEXT NOT NULL
);

CREATE INDEX vault_checkouts_open ON vault_checkouts (ended, expires);
CREATE INDEX sessions_checkout ON sessions (checkout_id, stage);
