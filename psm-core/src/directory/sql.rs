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

/// One `access_windows` row, its spec parsed again (a row altered at rest is malformed, not
/// a window that admits anyone).
pub(crate) fn window_row<R>(row: &R) -> Result<crate::access::StoredWindow, crate::CoreError>
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let malformed = |reason: String| crate::CoreError::MalformedRow {
        what: "access window".into(),
        reason,
    };
    let id: i64 = row.try_get("id").map_err(|e| malformed(e.to_string()))?;
    let role: String = row.try_get("role").map_err(|e| malformed(e.to_string()))?;
    let target: String = row
        .try_get("target")
        .map_err(|e| malformed(e.to_string()))?;
    let spec: String = row.try_get("spec").map_err(|e| malformed(e.to_string()))?;
    let window = spec
        .parse()
        .map_err(|e: crate::CoreError| malformed(format!("window {id}: {e}")))?;
    Ok(crate::access::StoredWindow {
        id,
        role,
        target,
        window,
    })
}

/// One `access_requests` row, checked (a row altered at rest is malformed).
pub(crate) fn request_row<R>(row: &R) -> Result<crate::access::AccessRequest, crate::CoreError>
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let malformed = |reason: String| crate::CoreError::MalformedRow {
        what: "access request".into(),
        reason,
    };
    let id: i64 = row.try_get("id").map_err(|e| malformed(e.to_string()))?;
    let text = |col: &str| -> Result<String, crate::CoreError> {
        row.try_get::<String, _>(col)
            .map_err(|e| malformed(format!("request {id}: {e}")))
    };
    let int = |col: &str| -> Result<i64, crate::CoreError> {
        row.try_get::<i64, _>(col)
            .map_err(|e| malformed(format!("request {id}: {e}")))
    };
    let opt_int = |col: &str| -> Result<Option<i64>, crate::CoreError> {
        row.try_get::<Option<i64>, _>(col)
            .map_err(|e| malformed(format!("request {id}: {e}")))
    };
    let duration = u64::try_from(int("duration_secs")?)
        .map(std::time::Duration::from_secs)
        .map_err(|_| malformed(format!("request {id}: negative duration")))?;
    let approvals_needed = u32::try_from(int("approvals_needed")?)
        .map_err(|_| malformed(format!("request {id}: approvals needed")))?;
    let decided_by: Option<String> = row
        .try_get("decided_by")
        .map_err(|e| malformed(format!("request {id}: {e}")))?;
    let request = crate::access::AccessRequest {
        id,
        user: text("user_name")?,
        target: text("target")?,
        reason: text("reason")?,
        duration,
        created: crate::Timestamp::from_micros(int("created")?),
        state: text("state")?
            .parse()
            .map_err(|e: crate::CoreError| malformed(format!("request {id}: {e}")))?,
        approver_role: text("approver_role")?,
        approvals_needed,
        approvals: crate::access::approvals_from_text(&text("approvals")?)?,
        decided_by,
        decided_at: opt_int("decided_at")?.map(crate::Timestamp::from_micros),
        expires: opt_int("expires")?.map(crate::Timestamp::from_micros),
        note: text("note")?,
        version: int("version")?,
    };
    crate::access::NewAccessRequest {
        user: request.user.clone(),
        target: request.target.clone(),
        reason: request.reason.clone(),
        duration: request.duration,
        created: request.created,
        approver_role: request.approver_role.clone(),
        approvals_needed: request.approvals_needed,
    }
    .validate()
    .map_err(|e| malformed(format!("request {id}: {e}")))?;
    Ok(request)
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

            async fn windows_of_roles(
                &self,
                roles: &[String],
            ) -> Result<Vec<$crate::access::StoredWindow>, $crate::CoreError> {
                let mut out = Vec::new();
                for role in roles {
                    let rows = sqlx::query(
                        "SELECT id, role, target, spec FROM access_windows WHERE role = $1 \
                         ORDER BY id LIMIT 10000",
                    )
                    .bind(role)
                    .fetch_all(self.$read())
                    .await
                    .map_err($crate::CoreError::db("reading access windows"))?;
                    for row in &rows {
                        out.push($crate::directory::sql::window_row(row)?);
                    }
                }
                Ok(out)
            }

            async fn approval_rule(
                &self,
                target: &str,
            ) -> Result<Option<$crate::access::ApprovalRule>, $crate::CoreError> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT target, approver_role, approvals FROM access_approval_rules \
                     WHERE target = $1 OR target = '*' ORDER BY target = '*' LIMIT 1",
                )
                .bind(target)
                .fetch_optional(self.$read())
                .await
                .map_err($crate::CoreError::db("reading an approval rule"))?;
                let Some(row) = row else { return Ok(None) };
                let malformed = |e: sqlx::Error| $crate::CoreError::MalformedRow {
                    what: "approval rule".into(),
                    reason: e.to_string(),
                };
                let t: String = row.try_get("target").map_err(malformed)?;
                let role: String = row.try_get("approver_role").map_err(malformed)?;
                let n: i64 = row.try_get("approvals").map_err(malformed)?;
                let n = u32::try_from(n).unwrap_or(0);
                $crate::access::ApprovalRule::new(&t, &role, n)
                    .map(Some)
                    .map_err(|e| $crate::CoreError::MalformedRow {
                        what: "approval rule".into(),
                        reason: e.to_string(),
                    })
            }

            async fn request_grants(
                &self,
                user: &str,
                now: $crate::Timestamp,
            ) -> Result<Vec<String>, $crate::CoreError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT DISTINCT target FROM access_requests WHERE user_name = $1 \
                     AND state = 'approved' AND expires > $2 ORDER BY target LIMIT 1000",
                )
                .bind(user)
                .bind(now.as_micros())
                .fetch_all(self.$read())
                .await
                .map_err($crate::CoreError::db("reading approved access requests"))?;
                rows.iter()
                    .map(|r| {
                        r.try_get::<String, _>("target").map_err(|e| {
                            $crate::CoreError::MalformedRow {
                                what: "access request".into(),
                                reason: e.to_string(),
                            }
                        })
                    })
                    .collect()
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

            async fn windows(
                &self,
            ) -> Result<Vec<$crate::access::StoredWindow>, $crate::CoreError> {
                let rows = sqlx::query(
                    "SELECT id, role, target, spec FROM access_windows \
                     ORDER BY role, target, id LIMIT 10000",
                )
                .fetch_all(self.$read())
                .await
                .map_err($crate::CoreError::db("listing access windows"))?;
                rows.iter().map($crate::directory::sql::window_row).collect()
            }

            async fn add_window(
                &self,
                window: &$crate::access::NewWindow,
            ) -> Result<i64, $crate::CoreError> {
                use sqlx::Row;
                $crate::directory::check_name("role", &window.role)?;
                $crate::directory::check_target(&window.target)?;
                let mut tx = self.$write().begin().await.map_err($crate::CoreError::db("adding an access window"))?;
                let count: i64 = sqlx::query("SELECT count(*) AS n FROM access_windows")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err($crate::CoreError::db("adding an access window"))?
                    .try_get("n")
                    .map_err($crate::CoreError::db("adding an access window"))?;
                if count >= $crate::access::MAX_WINDOWS as i64 {
                    return Err($crate::CoreError::InvalidInput {
                        field: "window",
                        reason: format!(
                            "the directory already holds {} windows",
                            $crate::access::MAX_WINDOWS
                        ),
                    });
                }
                let id: i64 = sqlx::query(
                    "INSERT INTO access_windows (role, target, spec) VALUES ($1, $2, $3) \
                     RETURNING id",
                )
                .bind(&window.role)
                .bind(&window.target)
                .bind(window.window.to_string())
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::CoreError::db("adding an access window"))?
                .try_get("id")
                .map_err($crate::CoreError::db("adding an access window"))?;
                tx.commit().await.map_err($crate::CoreError::db("adding an access window"))?;
                Ok(id)
            }

            async fn remove_window(&self, id: i64) -> Result<bool, $crate::CoreError> {
                let done = sqlx::query("DELETE FROM access_windows WHERE id = $1")
                    .bind(id)
                    .execute(self.$write())
                    .await
                    .map_err($crate::CoreError::db("removing an access window"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn approval_rules(
                &self,
            ) -> Result<Vec<$crate::access::ApprovalRule>, $crate::CoreError> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT target, approver_role, approvals FROM access_approval_rules \
                     ORDER BY target LIMIT 10000",
                )
                .fetch_all(self.$read())
                .await
                .map_err($crate::CoreError::db("listing approval rules"))?;
                let malformed = |e: String| $crate::CoreError::MalformedRow {
                    what: "approval rule".into(),
                    reason: e,
                };
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    let t: String = row.try_get("target").map_err(|e| malformed(e.to_string()))?;
                    let role: String =
                        row.try_get("approver_role").map_err(|e| malformed(e.to_string()))?;
                    let n: i64 = row.try_get("approvals").map_err(|e| malformed(e.to_string()))?;
                    out.push(
                        $crate::access::ApprovalRule::new(&t, &role, u32::try_from(n).unwrap_or(0))
                            .map_err(|e| malformed(e.to_string()))?,
                    );
                }
                Ok(out)
            }

            async fn set_approval_rule(
                &self,
                rule: &$crate::access::ApprovalRule,
            ) -> Result<(), $crate::CoreError> {
                let rule = $crate::access::ApprovalRule::new(
                    &rule.target,
                    &rule.approver_role,
                    rule.approvals,
                )?;
                let mut tx = self.$write().begin().await.map_err($crate::CoreError::db("setting an approval rule"))?;
                let count: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM access_approval_rules WHERE target <> $1",
                )
                .bind(&rule.target)
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::CoreError::db("setting an approval rule"))?;
                if count >= $crate::access::MAX_APPROVAL_RULES as i64 {
                    return Err($crate::CoreError::InvalidInput {
                        field: "rule",
                        reason: format!(
                            "the directory already holds {} approval rules",
                            $crate::access::MAX_APPROVAL_RULES
                        ),
                    });
                }
                sqlx::query(
                    "INSERT INTO access_approval_rules (target, approver_role, approvals) \
                     VALUES ($1, $2, $3) ON CONFLICT (target) DO UPDATE SET \
                     approver_role = excluded.approver_role, approvals = excluded.approvals",
                )
                .bind(&rule.target)
                .bind(&rule.approver_role)
                .bind(i64::from(rule.approvals))
                .execute(&mut *tx)
                .await
                .map_err($crate::CoreError::db("setting an approval rule"))?;
                tx.commit().await.map_err($crate::CoreError::db("setting an approval rule"))?;
                Ok(())
            }

            async fn remove_approval_rule(&self, target: &str) -> Result<bool, $crate::CoreError> {
                let done = sqlx::query("DELETE FROM access_approval_rules WHERE target = $1")
                    .bind(target)
                    .execute(self.$write())
                    .await
                    .map_err($crate::CoreError::db("removing an approval rule"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn create_access_request(
                &self,
                request: &$crate::access::NewAccessRequest,
            ) -> Result<i64, $crate::CoreError> {
                request.validate()?;
                let what = "filing an access request";
                let mut tx = self.$write().begin().await.map_err($crate::CoreError::db(what))?;
                let pending: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM access_requests WHERE user_name = $1 \
                     AND state = 'pending'",
                )
                .bind(&request.user)
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::CoreError::db(what))?;
                if pending >= $crate::access::MAX_PENDING_PER_USER as i64 {
                    return Err($crate::access::approval_pending_cap_error(&request.user));
                }
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO access_requests (user_name, target, reason, duration_secs, \
                     created, state, approver_role, approvals_needed, approvals, note, version) \
                     VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, '', '', 1) RETURNING id",
                )
                .bind(&request.user)
                .bind(&request.target)
                .bind(&request.reason)
                .bind(i64::try_from(request.duration.as_secs()).unwrap_or(i64::MAX))
                .bind(request.created.as_micros())
                .bind(&request.approver_role)
                .bind(i64::from(request.approvals_needed))
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::CoreError::db(what))?;
                tx.commit().await.map_err($crate::CoreError::db(what))?;
                Ok(id)
            }

            async fn access_requests(
                &self,
                user: Option<&str>,
            ) -> Result<Vec<$crate::access::AccessRequest>, $crate::CoreError> {
                let rows = match user {
                    // The LIMIT is MAX_LISTED_REQUESTS.
                    Some(u) => sqlx::query(
                        "SELECT id, user_name, target, reason, duration_secs, created, state, approver_role, \
                         approvals_needed, approvals, decided_by, decided_at, expires, note, version FROM access_requests WHERE user_name = $1 \
                         ORDER BY id DESC LIMIT 1000",
                    )
                    .bind(u)
                    .fetch_all(self.$read())
                    .await,
                    None => sqlx::query(
                        "SELECT id, user_name, target, reason, duration_secs, created, state, approver_role, \
                         approvals_needed, approvals, decided_by, decided_at, expires, note, version FROM access_requests ORDER BY id DESC LIMIT 1000",
                    )
                    .fetch_all(self.$read())
                    .await,
                }
                .map_err($crate::CoreError::db("listing access requests"))?;
                rows.iter().map($crate::directory::sql::request_row).collect()
            }

            async fn access_request(
                &self,
                id: i64,
            ) -> Result<Option<$crate::access::AccessRequest>, $crate::CoreError> {
                let row = sqlx::query(
                    "SELECT id, user_name, target, reason, duration_secs, created, state, approver_role, \
                         approvals_needed, approvals, decided_by, decided_at, expires, note, version FROM access_requests WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(self.$read())
                .await
                .map_err($crate::CoreError::db("reading an access request"))?;
                row.as_ref().map($crate::directory::sql::request_row).transpose()
            }

            async fn replace_access_request(
                &self,
                next: &$crate::access::AccessRequest,
            ) -> Result<bool, $crate::CoreError> {
                $crate::access::check_request_fields(next)?;
                let done = sqlx::query(
                    "UPDATE access_requests SET state = $1, approvals = $2, decided_by = $3, \
                     decided_at = $4, expires = $5, note = $6, version = $7 \
                     WHERE id = $8 AND version = $9",
                )
                .bind(next.state.as_str())
                .bind($crate::access::approvals_to_text(&next.approvals))
                .bind(next.decided_by.as_deref())
                .bind(next.decided_at.map(|t| t.as_micros()))
                .bind(next.expires.map(|t| t.as_micros()))
                .bind(&next.note)
                .bind(next.version)
                .bind(next.id)
                .bind(next.version.saturating_sub(1))
                .execute(self.$write())
                .await
                .map_err($crate::CoreError::db("changing an access request"))?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

pub(crate) use sql_directory;
