//! Login (directory password, TOTP when the user has one), logout, and who am I.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use psm_core::AuditAction;
use psm_core::directory::{DirectoryUser, Factor, LoginThrottle};
use psm_core::vault::Secret;
use serde::{Deserialize, Serialize};

use super::WebState;
use super::guard::{Capabilities, WebUser, audit, client_of, cookie_name};
use crate::error::ApiError;

/// A login form.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    user: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm")
            .field("user", &self.user)
            .field("password", &"***")
            .field("totp", &self.totp.as_ref().map(|_| "***"))
            .finish()
    }
}

/// What the page needs to know about its user.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Me {
    user: String,
    capabilities: Capabilities,
    csrf: String,
    refresh_seconds: u32,
    /// Whether the browser terminal is available.
    terminal: bool,
}

fn me_of(state: &WebState, user: &str, caps: Capabilities, csrf: &str) -> Me {
    Me {
        user: user.to_owned(),
        capabilities: caps,
        csrf: csrf.to_owned(),
        refresh_seconds: state.config.refresh_seconds.max(1),
        terminal: state.config.live_gateway.is_some(),
    }
}

/// What a login session remembers of its user's directory record: a hash of the name,
/// password hash, second factor, roles and whether the user is disabled. A session whose
/// user no longer has the same stamp ends ([`WebConfig::directory_recheck`](super::WebConfig::directory_recheck)).
pub(crate) fn user_stamp(user: &DirectoryUser) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(b"psm web ui directory stamp v1 \0\0");
    let mut field = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(user.name.as_str().as_bytes());
    match &user.password {
        Factor::Absent => field(b"no password"),
        Factor::Local(p) => field(p.as_phc().as_bytes()),
        Factor::Remote => field(b"remote password"),
    }
    match &user.totp {
        Factor::Absent => field(b"no totp"),
        Factor::Local(t) => field(t.as_base32().as_bytes()),
        Factor::Remote => field(b"remote totp"),
    }
    let mut roles = user.roles.clone();
    roles.sort();
    roles.dedup();
    for r in &roles {
        field(r.as_bytes());
    }
    field(if user.disabled {
        b"disabled"
    } else {
        b"enabled"
    });
    *h.finalize().as_bytes()
}

pub(crate) fn capabilities(state: &WebState, user: &DirectoryUser) -> Capabilities {
    let has = |roles: &[String]| user.roles.iter().any(|r| roles.contains(r));
    if has(&state.config.admin_roles) {
        Capabilities::admin()
    } else if has(&state.config.auditor_roles) {
        Capabilities::auditor()
    } else {
        Capabilities::user()
    }
}

/// Longest user name, password or code accepted (bounded before any hashing).
const MAX_FIELD: usize = 1024;

/// POST /ui/api/login.
pub(crate) async fn login(
    State(state): State<WebState>,
    headers: HeaderMap,
    req: axum::extract::Request,
) -> Response {
    let peer = client_of(&state, &headers, req.extensions());
    match login_inner(&state, &headers, req, &peer).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn login_inner(
    state: &WebState,
    headers: &HeaderMap,
    req: axum::extract::Request,
    peer: &str,
) -> Result<Response, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        // A cross-site HTML form cannot send JSON without a preflight.
        return Err(ApiError::new(
            415,
            "unsupported-media-type",
            "send the login as application/json",
        ));
    }
    let body = axum::body::to_bytes(req.into_body(), 16 * 1024)
        .await
        .map_err(|_| ApiError::new(413, "payload-too-large", "the login is too large"))?;
    let form: LoginForm = serde_json::from_slice(&body).map_err(|_| {
        ApiError::new(
            400,
            "invalid-input",
            "the login must be {\"user\", \"password\", \"totp\"}",
        )
    })?;
    if form.user.len() > MAX_FIELD
        || form.password.len() > MAX_FIELD
        || form.totp.as_ref().is_some_and(|t| t.len() > MAX_FIELD)
    {
        return Err(ApiError::new(
            400,
            "invalid-input",
            "a login field is too long",
        ));
    }
    let Some(directory) = state.app.directory.clone() else {
        return Err(ApiError::new(
            503,
            "no-directory",
            "this server has no user directory, so nobody can log in to the web UI",
        ));
    };
    let name_key = LoginThrottle::user_key(&form.user);
    let addr_key = format!("addr:{peer}");
    let shown_user: String = form
        .user
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let actor = format!("web:{shown_user}@{peer}");
    // The attempt is counted before anything is checked, so concurrent logins cannot all
    // pass the lockout check before the first failure is counted; a right answer takes it
    // back below.
    let reserved_name = state.logins.reserve(&name_key);
    let reserved_addr = reserved_name && state.logins.reserve(&addr_key);
    if !reserved_addr {
        if reserved_name {
            state.logins.release(&name_key);
        }
        audit(
            state,
            None,
            &actor,
            AuditAction::Refused,
            "web login refused: too many failed attempts".into(),
        )
        .await;
        return Err(ApiError::new(
            429,
            "too-many-attempts",
            "too many failed logins; wait a few minutes and try again",
        ));
    }
    let release = || {
        state.logins.release(&name_key);
        state.logins.release(&addr_key);
    };
    let user = directory.user(&form.user).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "reading the directory for a web login");
        None
    });
    let code = form
        .totp
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if code.is_none() && user.as_ref().is_some_and(DirectoryUser::needs_totp) {
        // Asked before the password is checked, so the answer never says whether the
        // password was right; nothing was guessed, so nothing is counted.
        release();
        return Err(ApiError::new(
            401,
            "totp-required",
            "enter the code from your authenticator app",
        ));
    }
    let fail = |why: &'static str| async move {
        audit(
            state,
            None,
            &actor,
            AuditAction::Refused,
            format!("web login refused: {why}"),
        )
        .await;
        ApiError::new(401, "login-failed", "wrong user name, password or code")
    };
    let password_ok =
        {
            let _permit =
                state.logins.hashing.acquire().await.map_err(|_| {
                    ApiError::new(503, "unavailable", "the server is shutting down")
                })?;
            // The directory checks where the hash lives (an unknown user costs the same argon2
            // run as a known one).
            directory
                .verify_password(&form.user, &Secret::new(form.password.clone()))
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, "checking a web login's password");
                    false
                })
        };
    let Some(user) = user.filter(|u| password_ok && !u.disabled) else {
        return Err(fail("wrong user name or password").await);
    };
    if let Some(code) = code.filter(|_| user.needs_totp()) {
        // Checked only after the password is right, so a wrong password cannot use up the
        // user's current code; a code is accepted once.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let ok = directory
            .verify_totp(user.name.as_str(), code, now)
            .await
            .unwrap_or(false);
        if !ok {
            return Err(fail("wrong or reused TOTP code").await);
        }
    }
    let caps = capabilities(state, &user);
    let name = user.name.as_str().to_owned();
    state.logins.succeeded(&name_key);
    state.logins.release(&addr_key);
    let Some((token, session)) = state.logins.create(&name, caps, user_stamp(&user)) else {
        return Err(ApiError::new(
            500,
            "internal",
            "no random source for the session",
        ));
    };
    audit(
        state,
        None,
        &format!("web:{name}@{peer}"),
        AuditAction::Other,
        format!("web login (view {}, control {})", caps.view, caps.control),
    )
    .await;
    tracing::info!(user = %name, peer = %peer, "web login");
    let secure = state.config.secure_cookies == Some(true);
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        cookie_name(secure),
        state.config.max_session.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    let mut res = Json(me_of(state, &name, caps, &session.csrf)).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// POST /ui/api/logout.
pub(crate) async fn logout(State(state): State<WebState>, viewer: WebUser) -> Response {
    state.logins.remove(&viewer.token);
    audit(
        &state,
        None,
        &viewer.actor(),
        AuditAction::Other,
        "web logout".into(),
    )
    .await;
    let secure = state.config.secure_cookies == Some(true);
    let cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        cookie_name(secure),
        if secure { "; Secure" } else { "" }
    );
    let mut res = Json(serde_json::json!({ "Result": "Success" })).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// GET /ui/api/me.
pub(crate) async fn me(State(state): State<WebState>, viewer: WebUser) -> Json<Me> {
    Json(me_of(
        &state,
        &viewer.user,
        viewer.caps,
        &viewer.session.csrf,
    ))
}
