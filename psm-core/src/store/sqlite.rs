//! The embedded default: SQLite through sqlx, WAL mode, one writer connection.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::ConnectOptions as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::sql::{self, Dialect, bind_all};
use super::{AuditQuery, ClaimSpec, Guard, ListQuery, OverdueQuery, Patch, SessionStore, row};
use crate::audit::{AuditEvent, AuditRecord};
use crate::error::CoreError;
use crate::id::SessionId;
use crate::session::PrivSession;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Sessions in one SQLite file.
///
/// Writes go through a single connection (SQLite allows one writer at a time; queueing them
/// in-process is cheaper than retrying on `SQLITE_BUSY`), reads through a small pool of
/// read-only connections. The file runs in WAL mode with `synchronous=NORMAL`: every committed
/// write survives a crash of the process; on power loss the last moments of writes may be
/// lost, which the lifecycle tolerates (a lost heartbeat or claim is redone, a lost completion
/// repeats idempotent work). Other processes may open the same file (the `psm` CLI does):
/// they wait on a busy timeout of 10 s.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    location: String,
    totp_keyring: Option<std::sync::Arc<crate::vault::Keyring>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    ///
    /// A file that is not SQLite, or a SQLite file that is not a PSM database, is refused with
    /// [`CoreError::CorruptDatabase`] or [`CoreError::Migration`] and left untouched.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, CoreError> {
        let path = path.as_ref();
        let location = path.display().to_string();
        let base = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let corrupt = |source| CoreError::CorruptDatabase {
            location: location.clone(),
            source,
        };
        // Probe an existing file read-only first: a foreign or damaged file is reported as
        // such and left byte for byte untouched (opening the writer would switch it to WAL
        // and the migrator would add its bookkeeping table).
        let existed = path.exists();
        if !existed {
            // Created by us with mode 0600 (an empty file is a new database to SQLite), so
            // the database never exists with the umask's mode; SQLite gives its `-wal` and
            // `-shm` files the database file's mode.
            let memory = path
                .to_str()
                .is_some_and(|p| p.starts_with(':') || p.is_empty());
            if !memory {
                match crate::files::create_private(path) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(CoreError::Database {
                            operation: "creating the database file",
                            source: sqlx::Error::Io(e),
                        });
                    }
                }
            }
        }
        if existed {
            let mut probe = base
                .clone()
                .read_only(true)
                .connect()
                .await
                .map_err(|e| classify(e, &corrupt))?;
            let (tables, ours): (i64, i64) = sqlx::query_as(
                "SELECT count(*), count(*) FILTER (WHERE name = '_sqlx_migrations') \
                 FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .fetch_one(&mut probe)
            .await
            .map_err(|e| classify(e, &corrupt))?;
            let _ = sqlx::Connection::close(probe).await;
            if tables > 0 && ours == 0 {
                return Err(CoreError::ForeignDatabase { location });
            }
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal),
            )
            .await
            .map_err(|e| classify(e, &corrupt))?;
        MIGRATOR.run(&writer).await.map_err(CoreError::Migration)?;
        // A database made by an older version (or before this process's umask) is narrowed
        // too: it holds the audit trail, the sealed vault and the directory's password hashes.
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            crate::files::restrict_to_owner(Path::new(&file)).map_err(|e| CoreError::Database {
                operation: "making the database file private",
                source: sqlx::Error::Io(e),
            })?;
        }
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(base.read_only(true))
            .await
            .map_err(|e| classify(e, &corrupt))?;
        Ok(Self {
            writer,
            reader,
            location,
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

    /// The writer and reader pools, for other modules' tables in the same file (the vault).
    pub(crate) fn pools(&self) -> (&SqlitePool, &SqlitePool) {
        (&self.writer, &self.reader)
    }

    /// The database file.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Closes every connection (checkpointing the WAL).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// SQLITE_CORRUPT (11) and SQLITE_NOTADB (26) mean the file is not a usable database.
fn classify(e: sqlx::Error, corrupt: &dyn Fn(sqlx::Error) -> CoreError) -> CoreError {
    let code = e
        .as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned());
    match code.as_deref() {
        Some("11") | Some("26") => corrupt(e),
        _ => CoreError::Database {
            operation: "opening the database",
            source: e,
        },
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert(&self, session: &PrivSession, audit: &AuditRecord) -> Result<(), CoreError> {
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(CoreError::db("inserting a session"))?;
        let s = sql::insert_session(Dialect::Sqlite, session);
        let inserted = bind_all!(sqlx::query(sqlx::AssertSqlSafe(s.text)), s.binds)
            .execute(&mut *tx)
            .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Err(CoreError::SessionExists(session.id)),
            other => other.map_err(CoreError::db("inserting a session"))?,
        };
        let a = sql::insert_audit(Dialect::Sqlite, audit);
        bind_all!(sqlx::query(sqlx::AssertSqlSafe(a.text)), a.binds)
            .execute(&mut *tx)
            .await
            .map_err(CoreError::db("writing an audit event"))?;
        tx.commit()
            .await
            .map_err(CoreError::db("inserting a session"))
    }

    async fn get(&self, id: SessionId) -> Result<Option<PrivSession>, CoreError> {
        let sql = format!("SELECT {} FROM sessions WHERE id = ?", sql::SESSION_COLUMNS);
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(CoreError::db("reading a session"))?;
        row.as_ref().map(row::session).transpose()
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<PrivSession>, CoreError> {
        let s = sql::list(Dialect::Sqlite, query);
        let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(s.text)), s.binds)
            .fetch_all(&self.reader)
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
        let s = sql::guarded_update(Dialect::Sqlite, id, guard, patch, None);
        let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(s.text)), s.binds);
        let Some(audit) = audit else {
            let row = q
                .fetch_optional(&self.writer)
                .await
                .map_err(CoreError::db("updating a session"))?;
            return row.as_ref().map(row::session).transpose();
        };
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(CoreError::db("updating a session"))?;
        let row = q
            .fetch_optional(&mut *tx)
            .await
            .map_err(CoreError::db("updating a session"))?;
        let Some(row) = row else {
            return Ok(None); // dropping the transaction rolls it back
        };
        let session = row::session(&row)?;
        let a = sql::insert_audit(Dialect::Sqlite, audit);
        bind_all!(sqlx::query(sqlx::AssertSqlSafe(a.text)), a.binds)
            .execute(&mut *tx)
            .await
            .map_err(CoreError::db("writing an audit event"))?;
        tx.commit()
            .await
            .map_err(CoreError::db("updating a session"))?;
        Ok(Some(session))
    }

    async fn claim(&self, claim: &ClaimSpec) -> Result<Vec<PrivSession>, CoreError> {
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(CoreError::db("claiming sessions"))?;
        let s = sql::claim(Dialect::Sqlite, claim);
        let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(s.text)), s.binds)
            .fetch_all(&mut *tx)
            .await
            .map_err(CoreError::db("claiming sessions"))?;
        let claimed = rows
            .iter()
            .map(row::session)
            .collect::<Result<Vec<_>, _>>()?;
        for session in &claimed {
            let a = sql::insert_audit(Dialect::Sqlite, &super::memory::claim_audit(claim, session));
            bind_all!(sqlx::query(sqlx::AssertSqlSafe(a.text)), a.binds)
                .execute(&mut *tx)
                .await
                .map_err(CoreError::db("writing an audit event"))?;
        }
        tx.commit()
            .await
            .map_err(CoreError::db("claiming sessions"))?;
        Ok(claimed)
    }

    async fn overdue(&self, query: &OverdueQuery) -> Result<Vec<PrivSession>, CoreError> {
        let s = sql::overdue(Dialect::Sqlite, query);
        let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(s.text)), s.binds)
            .fetch_all(&self.reader)
            .await
            .map_err(CoreError::db("finding overdue sessions"))?;
        rows.iter().map(row::session).collect()
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<i64, CoreError> {
        let a = sql::insert_audit(Dialect::Sqlite, record);
        let (seq,): (i64,) = bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(a.text)), a.binds)
            .fetch_one(&self.writer)
            .await
            .map_err(CoreError::db("writing an audit event"))?;
        Ok(seq)
    }

    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, CoreError> {
        let s = sql::audit_events(Dialect::Sqlite, query);
        let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(s.text)), s.binds)
            .fetch_all(&self.reader)
            .await
            .map_err(CoreError::db("reading audit events"))?;
        rows.iter().map(row::audit_event).collect()
    }
}
