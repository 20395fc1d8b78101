//! The vault on the SQL stores: [`VaultStore`] for [`SqliteStore`] and [`PostgresStore`].
//! One set of statements (numbered `$N` placeholders, which both drivers accept) serves
//! both, so they cannot drift apart.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::checkout::{Checkout, CheckoutEnd};
use super::keyring::{KeyId, NONCE_LEN, Sealed};
use super::store::{MAX_VAULT_LIST, SealedCredential, VaultStore};
use super::target::Target;
use crate::error::CoreError;
use crate::id::{CheckoutId, SessionId};
use crate::store::{PostgresStore, SqliteStore};
use crate::timestamp::Timestamp;

const TARGET_COLUMNS: &str = "name, host, port, protocol, host_key";
const CREDENTIAL_COLUMNS: &str = "target, username, kind, key_id, nonce, ciphertext, updated";
const CHECKOUT_COLUMNS: &str =
    "id, user_name, target, created, expires, ended, end_reason, created_by";

fn malformed(what: &str, e: impl std::fmt::Display) -> CoreError {
    CoreError::MalformedRow {
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

fn get<'r, R, T>(row: &'r R, col: &'static str, what: &str) -> Result<T, CoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(col)
        .map_err(|e| malformed(&format!("{what} column {col}"), e))
}

fn target_row<'r, R>(row: &'r R) -> Result<Target, CoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let name: String = get(row, "name", "target")?;
    let what = format!("target {name:?}");
    let port: i64 = get(row, "port", &what)?;
    let protocol: String = get(row, "protocol", &what)?;
    Ok(Target {
        host: get(row, "host", &what)?,
        port: u16::try_from(port).map_err(|e| malformed(&what, e))?,
        protocol: protocol.parse().map_err(|e| malformed(&what, e))?,
        host_key: get(row, "host_key", &what)?,
        name,
    })
}

fn credential_row<'r, R>(row: &'r R) -> Result<SealedCredential, CoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let target: String = get(row, "target", "credential")?;
    let what = format!("credential of target {target:?}");
    let key_id: String = get(row, "key_id", &what)?;
    let nonce: Vec<u8> = get(row, "nonce", &what)?;
    let nonce: [u8; NONCE_LEN] = nonce
        .as_slice()
        .try_into()
        .map_err(|_| malformed(&what, "nonce is not 24 bytes"))?;
    Ok(SealedCredential {
        username: get(row, "username", &what)?,
        kind: get(row, "kind", &what)?,
        sealed: Sealed {
            key_id: KeyId::parse(&key_id)?,
            nonce,
            ciphertext: get(row, "ciphertext", &what)?,
        },
        updated: Timestamp::from_micros(get(row, "updated", &what)?),
        target,
    })
}

fn checkout_row<'r, R>(row: &'r R) -> Result<Checkout, CoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let id: String = get(row, "id", "checkout")?;
    let what = format!("checkout {id:?}");
    let end_reason: Option<String> = get(row, "end_reason", &what)?;
    Ok(Checkout {
        id: CheckoutId::new(id).map_err(|e| malformed(&what, e))?,
        user: get(row, "user_name", &what)?,
        target: get(row, "target", &what)?,
        created: Timestamp::from_micros(get(row, "created", &what)?),
        expires: Timestamp::from_micros(get(row, "expires", &what)?),
        ended: get::<_, Option<i64>>(row, "ended", &what)?.map(Timestamp::from_micros),
        end_reason: end_reason.map(|r| r.parse()).transpose()?,
        created_by: get(row, "created_by", &what)?,
    })
}

fn is_fk_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

fn db(operation: &'static str) -> impl FnOnce(sqlx::Error) -> CoreError {
    move |source| CoreError::Database { operation, source }
}

/// Implements [`VaultStore`] for a SQL store given how to reach its writer and reader pools.
macro_rules! sql_vault_store {
    ($store:ty, |$s:ident| $writer:expr, $reader:expr) => {
        #[async_trait]
        impl VaultStore for $store {
            async fn put_target(&self, t: &Target, now: Timestamp) -> Result<(), CoreError> {
                let $s = self;
                sqlx::query(
                    "INSERT INTO vault_targets (name, host, port, protocol, host_key, updated) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET \
                     host = excluded.host, port = excluded.port, protocol = excluded.protocol, \
                     host_key = excluded.host_key, updated = excluded.updated",
                )
                .bind(&t.name)
                .bind(&t.host)
                .bind(i64::from(t.port))
                .bind(t.protocol.as_str())
                .bind(&t.host_key)
                .bind(now.as_micros())
                .execute($writer)
                .await
                .map_err(db("writing a target"))?;
                Ok(())
            }

            async fn target(&self, name: &str) -> Result<Option<Target>, CoreError> {
                let $s = self;
                let sql = format!("SELECT {TARGET_COLUMNS} FROM vault_targets WHERE name = $1");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(name)
                    .fetch_optional($reader)
                    .await
                    .map_err(db("reading a target"))?;
                row.as_ref().map(target_row).transpose()
            }

            async fn targets(&self) -> Result<Vec<Target>, CoreError> {
                let $s = self;
                let sql = format!(
                    "SELECT {TARGET_COLUMNS} FROM vault_targets ORDER BY name LIMIT {MAX_VAULT_LIST}"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all($reader)
                    .await
                    .map_err(db("listing targets"))?;
                rows.iter().map(target_row).collect()
            }

            async fn remove_target(&self, name: &str) -> Result<bool, CoreError> {
                let $s = self;
                let mut tx = ($writer).begin().await.map_err(db("removing a target"))?;
                sqlx::query("DELETE FROM vault_credentials WHERE target = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("removing a credential"))?;
                let done = sqlx::query("DELETE FROM vault_targets WHERE name = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("removing a target"))?;
                tx.commit().await.map_err(db("removing a target"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn put_credential(&self, c: &SealedCredential) -> Result<(), CoreError> {
                let $s = self;
                let done = sqlx::query(
                    "INSERT INTO vault_credentials (target, username, kind, key_id, nonce, \
                     ciphertext, updated) SELECT $1, $2, $3, $4, $5, $6, $7 \
                     WHERE EXISTS (SELECT 1 FROM vault_targets WHERE name = $1) \
                     ON CONFLICT (target) DO UPDATE SET username = excluded.username, \
                     kind = excluded.kind, key_id = excluded.key_id, nonce = excluded.nonce, \
                     ciphertext = excluded.ciphertext, updated = excluded.updated",
                )
                .bind(&c.target)
                .bind(&c.username)
                .bind(&c.kind)
                .bind(c.sealed.key_id.as_str())
                .bind(c.sealed.nonce.to_vec())
                .bind(&c.sealed.ciphertext)
                .bind(c.updated.as_micros())
                .execute($writer)
                .await;
                match done {
                    Err(e) if is_fk_violation(&e) => Err(CoreError::UnknownTarget(c.target.clone())),
                    Err(e) => Err(db("writing a credential")(e)),
                    Ok(r) if r.rows_affected() == 0 => Err(CoreError::UnknownTarget(c.target.clone())),
                    Ok(_) => Ok(()),
                }
            }

            async fn remove_credential(&self, target: &str) -> Result<bool, CoreError> {
                let $s = self;
                let done = sqlx::query("DELETE FROM vault_credentials WHERE target = $1")
                    .bind(target)
                    .execute($writer)
                    .await
                    .map_err(db("removing a credential"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn credential(&self, target: &str) -> Result<Option<SealedCredential>, CoreError> {
                let $s = self;
                let sql = format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM vault_credentials WHERE target = $1"
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(target)
                    .fetch_optional($reader)
                    .await
                    .map_err(db("reading a credential"))?;
                row.as_ref().map(credential_row).transpose()
            }

            async fn credentials_not_under(
                &self,
                key: &KeyId,
                limit: u32,
            ) -> Result<Vec<SealedCredential>, CoreError> {
                let $s = self;
                let sql = format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM vault_credentials WHERE key_id <> $1 \
                     ORDER BY target LIMIT $2"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(key.as_str())
                    .bind(i64::from(limit.min(MAX_VAULT_LIST)))
                    .fetch_all($reader)
                    .await
                    .map_err(db("listing credentials"))?;
                rows.iter().map(credential_row).collect()
            }

            async fn replace_credential(
                &self,
                old: &SealedCredential,
                new: &SealedCredential,
            ) -> Result<bool, CoreError> {
                let $s = self;
                let done = sqlx::query(
                    "UPDATE vault_credentials SET username = $1, kind = $2, key_id = $3, \
                     nonce = $4, ciphertext = $5, updated = $6 WHERE target = $7 AND nonce = $8",
                )
                .bind(&new.username)
                .bind(&new.kind)
                .bind(new.sealed.key_id.as_str())
                .bind(new.sealed.nonce.to_vec())
                .bind(&new.sealed.ciphertext)
                .bind(new.updated.as_micros())
                .bind(&old.target)
                .bind(old.sealed.nonce.to_vec())
                .execute($writer)
                .await
                .map_err(db("re-sealing a credential"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn insert_checkout(&self, c: &Checkout) -> Result<(), CoreError> {
                let $s = self;
                let sql = format!(
                    "INSERT INTO vault_checkouts ({CHECKOUT_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                );
                let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(c.id.as_str())
                    .bind(&c.user)
                    .bind(&c.target)
                    .bind(c.created.as_micros())
                    .bind(c.expires.as_micros())
                    .bind(c.ended.map(|t| t.as_micros()))
                    .bind(c.end_reason.map(|r| r.as_str()))
                    .bind(&c.created_by)
                    .execute($writer)
                    .await;
                match done {
                    Err(e) if is_unique_violation(&e) => Err(CoreError::InvalidInput {
                        field: "checkOutId",
                        reason: format!("checkout {} already exists", c.id),
                    }),
                    other => other.map(drop).map_err(db("writing a checkout")),
                }
            }

            async fn checkout(&self, id: &CheckoutId) -> Result<Option<Checkout>, CoreError> {
                let $s = self;
                let sql = format!("SELECT {CHECKOUT_COLUMNS} FROM vault_checkouts WHERE id = $1");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id.as_str())
                    .fetch_optional($reader)
                    .await
                    .map_err(db("reading a checkout"))?;
                row.as_ref().map(checkout_row).transpose()
            }

            async fn end_checkout(
                &self,
                id: &CheckoutId,
                at: Timestamp,
                reason: CheckoutEnd,
            ) -> Result<Option<Checkout>, CoreError> {
                let $s = self;
                let sql = format!(
                    "UPDATE vault_checkouts SET ended = $1, end_reason = $2 \
                     WHERE id = $3 AND ended IS NULL RETURNING {CHECKOUT_COLUMNS}"
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(at.as_micros())
                    .bind(reason.as_str())
                    .bind(id.as_str())
                    .fetch_optional($writer)
                    .await
                    .map_err(db("ending a checkout"))?;
                row.as_ref().map(checkout_row).transpose()
            }

            async fn expired_checkouts(
                &self,
                now: Timestamp,
                limit: u32,
            ) -> Result<Vec<Checkout>, CoreError> {
                let $s = self;
                let sql = format!(
                    "SELECT {CHECKOUT_COLUMNS} FROM vault_checkouts \
                     WHERE ended IS NULL AND expires <= $1 ORDER BY expires LIMIT $2"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(now.as_micros())
                    .bind(i64::from(limit.min(MAX_VAULT_LIST)))
                    .fetch_all($reader)
                    .await
                    .map_err(db("finding expired checkouts"))?;
                rows.iter().map(checkout_row).collect()
            }

            async fn connected_sessions_on(
                &self,
                checkout: &CheckoutId,
            ) -> Result<Option<Vec<SessionId>>, CoreError> {
                let $s = self;
                let ids: Vec<(String,)> = sqlx::query_as(
                    "SELECT id FROM sessions WHERE checkout_id = $1 AND stage = 'Connected' \
                     LIMIT 10000",
                )
                .bind(checkout.as_str())
                .fetch_all($reader)
                .await
                .map_err(db("finding the sessions of a checkout"))?;
                ids.into_iter()
                    .map(|(id,)| id.parse().map_err(|e| malformed("session id", e)))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some)
            }
        }
    };
}

sql_vault_store!(SqliteStore, |s| s.pools().0, s.pools().1);
sql_vault_store!(PostgresStore, |s| s.pool(), s.pool());
