//! The scale-out store: PostgreSQL through sqlx. Claims use `FOR UPDATE SKIP LOCKED`, so any
//! number of encoders and uploaders on any number of hosts claim without blocking each other.

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions as _, Executor};

use super::sql::{self, Dialect, bind_all};
use super::{AuditQuery, ClaimSpec, Guard, ListQuery, OverdueQuery, Patch, SessionStore, row};
use crate::audit::{AuditEvent, AuditRecord};
use crate::error::CoreError;
use crate::id::SessionId;
use crate::session::PrivSession;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How to reach PostgreSQL.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// `postgres://user@host:port/database` (a password in it is never logged or echoed).
    pub url: String,
    /// A schema of its own (created if missing; lower-case letters, digits and `_`), so several
    /// PSM deployments or test runs share one database without colliding. `None`: the
    /// connection's default search path.
    pub schema: Option<String>,
    /// Pool size.
    pub max_connections: u32,
}

impl PostgresOptions {
    /// Options for `url` with the default search path and 16 connections.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            max_connections: 16,
        }
    }
}

/// Sessions in PostgreSQL.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    relaxed: PgPool,
    schema: Option<String>,
    totp_keyring: Option<std::sync::Arc<crate::vault::Keyring>>,
}

async fn make_pool(
    options: PgConnectOptions,
    size: u32,
    search_path: Option<String>,
) -> Result<PgPool, CoreError> {
    PgPoolOptions::new()
        .max_connections(size)
        .after_connect(move |conn, _meta| {
            let search_path = search_path.clone();
            Box::pin(async move {
                if let Some(schema) = search_path {
                    conn.execute(sqlx::AssertSqlSafe(format!("SET search_path TO {schema}")))
                        .await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(|source| CoreError::Database {
            operation: "connecting to PostgreSQL",
            source,
        })
}

fn redact_url(url: &str) -> String {
    // postgres://user:password@host/db -> postgres://user:***@host/db
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl PostgresStore {
    /// Connects, creates the schema if asked, and applies pending migrations.
    pub async fn connect(options: &PostgresOptions) -> Result<Self, CoreError> {
        let location = redact_url(&options.url);
        let connect_opts: PgConnectOptions =
            options
                .url
                .parse()
                .map_err(|e: sqlx::Error| CoreError::InvalidInput {
                    field: "database",
                    reason: format!("{location} is not a PostgreSQL URL: {e}"),
                })?;
        if let Some(schema) = &options.schema {
            let valid = !schema.is_empty()
                && schema.len() <= 63
                && schema
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && !schema.as_bytes()[0].is_ascii_digit();
            if !valid {
                return Err(CoreError::InvalidInput {
                    field: "schema",
                    reason: format!("{schema:?} must be a lower-case SQL identifier"),
                });
            }
        }
        if let Some(schema) = &options.schema {
            // Once, on one connection: concurrent `CREATE SCHEMA IF NOT EXISTS` can race.
            let mut conn = connect_opts
                .connect()
                .await
                .map_err(|source| CoreError::Database {
                    operation: "connecting to PostgreSQL",
                    source,
                })?;
            conn.execute(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}"
            )))
            .await
            .map_err(CoreError::db("creating the schema"))?;
            let _ = sqlx::Connection::close(conn).await;
        }
        let schema = options.schema.clone();
        let size = options.max_connections.max(1);
        let pool = make_pool(connect_opts.clone(), size, schema.clone()).await?;
        // Writes without an audit event (heartbeats, UpdateSession) commit asynchronously:
        // they don't wait for the WAL flush (2.6 ms per fdatasync on the benchmark machine).
        // A database crash may lose the last few hundred milliseconds of LastReported, which
        // the next heartbeat repeats; every stage change stays a durable commit.
        let relaxed = make_pool(
            connect_opts.options([("synchronous_commit", "off")]),
            (size / 4).max(1),
            schema.clone(),
        )
        .await?;
        MIGRATOR.run(&pool).await.map_err(CoreError::Migration)?;
        Ok(Self {
            pool,
            relaxed,
            schema,
            totp_keyring: None,
        })
    }

    /// Seals the user directory's TOTP secrets with `keyring` (the vault's) when they are
    /// written, and opens sealed ones when read; secrets stored in clear by earlier versions
    /// are still read. Without a keyring, a sealed secret cannot be read (the error says so).
    pub fn with_totp_keyring(mut self, keyring: crate::vault::Keyring) -> Self {
        self.totp_keyring = Some(std::sync::Arc::new(keyring));
        self
    }

    /// The keyring TOTP secrets are sealed with, if any.
    pub(crate) fn totp_keyring(&self) -> Option<&crate::vault::Keyring> {
        self.totp_keyring.as_deref()
    }

    /// The pool, for other modules' tables in the same schema (the vault).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema in use, if one was asked for.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Drops this store's schema and everything in it (tests clean up with this).
    pub async fn drop_schema(self) -> Result<(), CoreError> {
        if let Some(schema) = &self.schema {
            self.pool
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .await
                .map_err(CoreError::db("dropping the schema"))?;
        }
        self.close().await;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.relaxed.close().await;
        self.pool.close().await;
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn insert(&self, session: &PrivSession, audit: &AuditRecord) -> Result<(), CoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(CoreError::db("inserting a session"))?;
        let s = sql::insert_session(Dialect::Postgres, session);
        let inserted = bind_all!(sqlx::query(sqlx::AssertSqlSafe(s.text)), s.binds)
            .execute(&mut *tx)
            .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Err(CoreError::SessionExists(session.id)),
            other => other.map_err(CoreError::db("inserting a session"))?,
        };
        let a = sql::insert_audit(Dialect::Postgres, audit);
        bind_all!(sqlx::query(sqlx::AssertSqlSafe(a.text)), a.binds)
            .execute(&mut *tx)
            .await
            .map_err(CoreError::db("writing an audit event"))?;
        tx.commit()
            .await
            .map_err(CoreError::db("inserting a session"))
    }

    async fn get(&self, id: SessionId) -> Result<Option<PrivSession>, CoreError> {
        let sql = format!(
            "SELECT {} FROM sessions WHERE id = $1",
            sql::SESSION_COLUMNS
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(CoreError::db("reading a session"))?;
        row.as_ref().map(row::session).transpose()
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<PrivSession>, CoreError> {
        let s = sql::list(Dialect::Postgres, query);
        let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(s.text)), s.binds)
            .fetch_all(&self.pool)
            .await
            .map_err(CoreError::db("listing sessions"))?;
        rows.iter().map(row::session).collect()
    }

    async fn update(
        &self,
        id: SessionId,
        guard: &Guard,
        patch: &Patch,
        audit: Option<&AuditRecord>,
    ) -> Result<Option<PrivSession>, CoreError> {
        // One statement: the audit insert rides in a data-modifying CTE, so the update and its
        // audit event commit together without a multi-statement transaction.
        let s = sql::guarded_update(Dialect::Postgres, id, guard, patch, audit);
        let pool = if audit.is_some() {
            &self.pool
        } else {
            &self.relaxed
        };
        let row = bind_all!(sqlx::query(sqlx::AssertSqlSafe(s.text)), s.binds)
            .fetch_optional(pool)
            .await
            .map_err(CoreError::db("updating a session"))?;
        row.as_ref().map(row::session).transpose()
    }

    async fn claim(&self, claim: &ClaimSpec) -> Result<Vec<PrivSession>, CoreError> {
        let s = sql::claim(Dialect::Postgres, claim);
        let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(s.text)), s.binds)
            .fetch_all(&self.pool)
            .await
            .map_err(CoreError::db("claiming sessions"))?;
        rows.iter().map(row::session).collect()
    }

    async fn overdue(&self, query: &OverdueQuery) -> Result<Vec<PrivSession>, CoreError> {
        let s = sql::overdue(Dialect::Postgres, query);
        let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(s.text)), s.binds)
            .fetch_all(&self.pool)
            .await
            .map_err(CoreError::db("finding overdue sessions"))?;
        rows.iter().map(row::session).collect()
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<i64, CoreError> {
        let a = sql::insert_audit(Dialect::Postgres, record);
        let (seq,): (i64,) = bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(a.text)), a.binds)
            .fetch_one(&self.pool)
            .await
            .map_err(CoreError::db("writing an audit event"))?;
        Ok(seq)
    }

    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, CoreError> {
        let s = sql::audit_events(Dialect::Postgres, query);
        let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(s.text)), s.binds)
            .fetch_all(&self.pool)
            .await
            .map_err(CoreError::db("reading audit events"))?;
        rows.iter().map(row::audit_event).collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            super::redact_url("postgres://psm:hunter2@db:5432/psm"),
            "postgres://psm:***@db:5432/psm"
        );
        assert_eq!(
            super::redact_url("postgres://127.0.0.1/test"),
            "postgres://127.0.0.1/test"
        );
    }
}
