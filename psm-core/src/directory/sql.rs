//! The directory over SQL: one implementation, expanded for SQLite and PostgreSQL (the
//! statements use `$N` placeholders, which both accept).

/// How a sealed TOTP secret starts in the `totp_secret` column (a secret in clear is base32,
/// which never holds a `:`).
const SEALED_TOTP: &str = "sealed-v1:";

fn totp_aad(user: &str) -> Vec<u8> {
    let mut aad = b"psm-directory-totp-v1\0".to_vec();
    aad.extend_from_slice(user.as_bytes());
    aad
}

/// The column value for `user`'s TOTP secret: sealed with `keyring` (bound to the user's
/// name) when there is one, else the base32 text as earlier versions stored it.
pub(crate) fn store_totp(
    keyring: Option<&crate::vault::Keyring>,
    user: &str,
    secret: &super::TotpSecret,
) -> Result<String, crate::CoreError> {
    use base64::Engine as _;
    let Some(keyring) = keyring else {
        return Ok(secret.as_base32().to_owned());
    };
    let sealed = keyring.seal(&totp_aad(user), secret.as_base32().as_bytes())?;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    Ok(format!(
        "{SEALED_TOTP}{}:{}:{}",
        sealed.key_id,
        b64.encode(sealed.nonce),
        b64.encode(&sealed.ciphertext)
    ))
}

/// `user`'s TOTP secret from its column value: sealed (opened with `keyring`) or, as earlier
/// versions stored it, base32 in clear. A sealed secret read by a process without the
/// keyring is [`Factor::Remote`](super::Factor::Remote): configured, not verifiable here, so
/// a login that needs it fails closed while listings still work.
pub(crate) fn load_totp(
    keyring: Option<&crate::vault::Keyring>,
    user: &str,
    stored: &str,
) -> Result<super::Factor<super::TotpSecret>, crate::CoreError> {
    use base64::Engine as _;
    let what = format!("the TOTP secret of user {user}");
    let malformed = |reason: &str| crate::CoreError::MalformedRow {
        what: what.clone(),
        reason: reason.to_owned(),
    };
    let Some(rest) = stored.strip_prefix(SEALED_TOTP) else {
        return super::TotpSecret::from_base32(stored)
            .map(super::Factor::Local)
            .map_err(|e| malformed(&e.to_string()));
    };
    let Some(keyring) = keyring else {
        tracing::warn!(user = %user, "a TOTP secret is sealed with the vault's master key, \
            which this process was not given: its TOTP logins are refused");
        return Ok(super::Factor::Remote);
    };
    let mut parts = rest.splitn(3, ':');
    let (Some(key_id), Some(nonce), Some(ciphertext)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("a sealed secret has three parts"));
    };
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let nonce: [u8; crate::vault::NONCE_LEN] = b64
        .decode(nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| malformed("the nonce is not 24 bytes of base64"))?;
    let sealed = crate::vault::Sealed {
        key_id: crate::vault::KeyId::parse(key_id)?,
        nonce,
        ciphertext: b64
            .decode(ciphertext)
            .map_err(|_| malformed("the ciphertext is not base64"))?,
    };
    let plain = keyring.open(&sealed, &totp_aad(user), &what)?;
    let text = std::str::from_utf8(&plain).map_err(|_| malformed("not text once opened"))?;
    super::TotpSecret::from_base32(text)
        .map(super::Factor::Local)
        .map_err(|e| malformed(&e.to_string()))
}

/// Expands `impl UserDirectory for $store`, reading through `self.$read()` and writing
/// through `self.$write()`.
macro_rules! sql_directory {
    ($store:ty, $read:ident, $write:ident) => {
        #[async_trait::async_trait]
        impl $crate::directory::DirectoryLookup for $store {
            async fn user(
                &self,
                name: &str,
            ) -> Result<Option<$crate::directory::DirectoryUser>, $crate::CoreError> {
                use sqlx::Row;
                if !$crate::directory::is_valid_name(name) {
                    return Ok(None);
                }
                let row = sqlx::query(
                    "SELECT name, password_hash, totp_secret, disabled FROM directory_users \
                     WHERE name = $1",
                )
                .bind(name)
                .fetch_optional(self.$read())
                .await
                .map_err($crate::CoreError::db("reading a user"))?;
                let Some(row) = row else { return Ok(None) };
                let keys = sqlx::query(
                    "SELECT key, comment FROM directory_user_keys WHERE user_name = $1 \
                     ORDER BY key",
                )
                .bind(name)
                .fetch_all(self.$read())
                .await
                .map_err($crate::CoreError::db("reading a user's keys"))?;
                let roles = sqlx::query(
                    "SELECT role FROM directory_user_roles WHERE user_name = $1 ORDER BY role",
                )
                .bind(name)
                .fetch_all(self.$read())
                .await
                .map_err($crate::CoreError::db("reading a user's roles"))?;
                let malformed = |reason: String| $crate::CoreError::MalformedRow {
                    what: format!("user {name}"),
                    reason,
                };
                let password: Option<String> =
                    row.try_get("password_hash").map_err(|e| malformed(e.to_string()))?;
                let totp: Option<String> =
                    row.try_get("totp_secret").map_err(|e| malformed(e.to_string()))?;
                let disabled: bool =
                    row.try_get("disabled").map_err(|e| malformed(e.to_string()))?;
                let mut parsed_keys = Vec::with_capacity(keys.len());
                for k in &keys {
                    let key: String = k.try_get("key").map_err(|e| malformed(e.to_string()))?;
                    let comment: String =
                        k.try_get("comment").map_err(|e| malformed(e.to_string()))?;
                    let line = if comment.is_empty() { key } else { format!("{key} {comment}") };
                    parsed_keys.push(
                        $crate::directory::AuthorizedKey::parse(&line)
                            .map_err(|e| malformed(e.to_string()))?,
                    );
                }
                let mut parsed_roles = Vec::with_capacity(roles.len());
                for r in &roles {
                    parsed_roles
                        .push(r.try_get::<String, _>("role").map_err(|e| malformed(e.to_string()))?);
                }
                Ok(Some($crate::directory::DirectoryUser {
                    name: name.parse()?,
                    password: password
                        .map(|p| $crate::directory::PasswordHash::from_phc(&p))
                        .transpose()
                        .map_err(|e| malformed(e.to_string()))?
                        .into(),
                    keys: parsed_keys,
                    totp: match totp {
                        Some(t) => $crate::directory::sql::load_totp(self.totp_keyring(), name, &t)?,
                        None => $crate::directory::Factor::Absent,
                    },
                    roles: parsed_roles,
                    disabled,
                }))
            }

            async fn targets_of_roles(
                &self,
                roles: &[String],
            ) -> Result<Vec<String>, $crate::CoreError> {
                use sqlx::Row;
                let mut out = Vec::new();
                // Few roles per user: one indexed lookup each keeps the SQL portable.
                for role in roles {
                    let rows = sqlx::query(
                        "SELECT target FROM directory_role_targets WHERE role = $1",
                    )
                    .bind(role)
                    .fetch_all(self.$read())
                    .await
                    .map_err($crate::CoreError::db("reading grants"))?;
                    for row in rows {
                        out.push(row.try_get::<String, _>("target").map_err(|e| {
                            $crate::CoreError::MalformedRow {
                                what: format!("grants of role {role}"),
                                reason: e.to_string(),
                            }
                        })?);
                    }
                }
                out.sort();
                out.dedup();
                Ok(out)
            }
        }

        #[async_trait::async_trait]
        impl $crate::directory::DirectoryAdmin for $store {
            async fn users(
                &self,
            ) -> Result<Vec<$crate::directory::DirectoryUser>, $crate::CoreError> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT name FROM directory_users ORDER BY name LIMIT 100000")
                    .fetch_all(self.$read())
                    .await
                    .map_err($crate::CoreError::db("listing users"))?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let name: String = row.try_get("name").map_err(|e| {
                        $crate::CoreError::MalformedRow { what: "user".into(), reason: e.to_string() }
                    })?;
                    if let Some(u) = $crate::directory::DirectoryLookup::user(self, &name).await? {
                        out.push(u);
                    }
                }
                Ok(out)
            }

            async fn create_user(
                &self,
                user: &$crate::directory::NewUser,
            ) -> Result<(), $crate::CoreError> {
                user.validate()?;
                let db = $crate::CoreError::db("creating a user");
                let mut tx = self.$write().begin().await.map_err($crate::CoreError::db("creating a user"))?;
                let inserted = sqlx::query(
                    "INSERT INTO directory_users (name, password_hash, totp_secret, disabled) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(user.name.as_str())
                .bind(user.password.as_ref().map(|p| p.as_phc().to_owned()))
                .bind(
                    user.totp
                        .as_ref()
                        .map(|t| {
                            $crate::directory::sql::store_totp(
                                self.totp_keyring(),
                                user.name.as_str(),
                                t,
                            )
                        })
                        .transpose()?,
                )
                .bind(false)
                .execute(&mut *tx)
                .await;
                if let Err(e) = inserted {
                    if e.as_database_error()
                        .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::UniqueViolation)
                    {
                        return Err($crate::CoreError::UserExists(user.name.to_string()));
                    }
                    return Err(db(e));
                }
                for key in &user.keys {
                    sqlx::query(
                        "INSERT INTO directory_user_keys (user_name, key, comment) VALUES ($1, $2, $3) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(user.name.as_str())
                    .bind(key.key())
                    .bind(key.comment())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::CoreError::db("adding a key"))?;
                }
                for role in &user.roles {
                    sqlx::query(
                        "INSERT INTO directory_user_roles (user_name, role) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(user.name.as_str())
                    .bind(role)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::CoreError::db("adding a role"))?;
                }
                tx.commit().await.map_err($crate::CoreError::db("creating a user"))
            }

            async fn update_user(
                &self,
                name: &str,
                update: &$crate::directory::UserUpdate,
            ) -> Result<(), $crate::CoreError> {
                update.validate()?;
                let mut tx = self.$write().begin().await.map_err($crate::CoreError::db("updating a user"))?;
                let exists = sqlx::query("SELECT 1 FROM directory_users WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::CoreError::db("updating a user"))?;
                if exists.is_none() {
                    return Err($crate::CoreError::UnknownUser(name.to_owned()));
                }
                if let Some(p) = &update.password {
                    sqlx::query("UPDATE directory_users SET password_hash = $1 WHERE name = $2")
                        .bind(p.as_ref().map(|p| p.as_phc().to_owned()))
                        .bind(name)
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::CoreError::db("updating a user"))?;
                }
                if let Some(t) = &update.totp {
                    sqlx::query("UPDATE directory_users SET totp_secret = $1 WHERE name = $2")
                        .bind(
                            t.as_ref()
                                .map(|t| {
                                    $crate::directory::sql::store_totp(
                                        self.totp_keyring(),
                                        name,
                                        t,
                                    )
                                })
                                .transpose()?,
                        )
                        .bind(name)
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::CoreError::db("updating a user"))?;
                }
                if let Some(d) = update.disabled {
                    sqlx::query("UPDATE directory_users SET disabled = $1 WHERE name = $2")
                        .bind(d)
                        .bind(name)
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::CoreError::db("updating a user"))?;
                }
                if let Some(roles) = &update.roles {
                    sqlx::query("DELETE FROM directory_user_roles WHERE user_name = $1")
                        .bind(name)
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::CoreError::db("updating a user"))?;
                    for role in roles {
                        sqlx::query(
                            "INSERT INTO directory_user_roles (user_name, role) VALUES ($1, $2) \
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(name)
                        .bind(role)
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::CoreError::db("updating a user"))?;
                    }
                }
                tx.commit().await.map_err($crate::CoreError::db("updating a user"))
            }

            async fn delete_user(&self, name: &str) -> Result<bool, $crate::CoreError> {
                let mut tx = self.$write().begin().await.map_err($crate::CoreError::db("deleting a user"))?;
                for table in ["directory_user_keys", "directory_user_roles"] {
                    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE user_name = $1")))
                        .bind(name)
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::CoreError::db("deleting a user"))?;
                }
                let done = sqlx::query("DELETE FROM directory_users WHERE name = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::CoreError::db("deleting a user"))?;
                tx.commit().await.map_err($crate::CoreError::db("deleting a user"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn add_key(
                &self,
                name: &str,
                key: &$crate::directory::AuthorizedKey,
            ) -> Result<(), $crate::CoreError> {
                use sqlx::Row;
                let mut tx = self.$write().begin().await.map_err($crate::CoreError::db("adding a key"))?;
                let exists = sqlx::query("SELECT 1 FROM directory_users WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::CoreError::db("adding a key"))?;
                if exists.is_none() {
                    return Err($crate::CoreError::UnknownUser(name.to_owned()));
                }
                let count: i64 = sqlx::query(
                    "SELECT count(*) AS n FROM directory_user_keys WHERE user_name = $1",
                )
                .bind(name)
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::CoreError::db("adding a key"))?
                .try_get("n")
                .map_err($crate::CoreError::db("adding a key"))?;
                if count >= $crate::directory::MAX_KEYS_PER_USER as i64 {
                    return Err($crate::CoreError::InvalidInput {
                        field: "key",
                        reason: format!(
                            "user {name} already has {} keys",
                            $crate::directory::MAX_KEYS_PER_USER
                        ),
                    });
                }
                sqlx::query(
                    "INSERT INTO directory_user_keys (user_name, key, comment) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(name)
                .bind(key.key())
                .bind(key.comment())
                .execute(&mut *tx)
                .await
                .map_err($crate::CoreError::db("adding a key"))?;
                tx.commit().await.map_err($crate::CoreError::db("adding a key"))
            }

            async fn remove_key(
                &self,
                name: &str,
                key: &$crate::directory::AuthorizedKey,
            ) -> Result<bool, $crate::CoreError> {
                if $crate::directory::DirectoryLookup::user(self, name).await?.is_none() {
                    return Err($crate::CoreError::UnknownUser(name.to_owned()));
                }
                let done = sqlx::query(
                    "DELETE FROM directory_user_keys WHERE user_name = $1 AND key = $2",
                )
                .bind(name)
                .bind(key.key())
                .execute(self.$write())
                .await
                .map_err($crate::CoreError::db("removing a key"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn grant(&self, role: &str, target: &str) -> Result<(), $crate::CoreError> {
                $crate::directory::check_name("role", role)?;
                $crate::directory::check_target(target)?;
                sqlx::query(
                    "INSERT INTO directory_role_targets (role, target) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(role)
                .bind(target)
                .execute(self.$write())
                .await
                .map_err($crate::CoreError::db("granting a target"))?;
                Ok(())
            }

            async fn revoke(&self, role: &str, target: &str) -> Result<bool, $crate::CoreError> {
                let done =
                    sqlx::query("DELETE FROM directory_role_targets WHERE role = $1 AND target = $2")
                        .bind(role)
                        .bind(target)
                        .execute(self.$write())
                        .await
                        .map_err($crate::CoreError::db("revoking a target"))?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

pub(crate) use sql_directory;
