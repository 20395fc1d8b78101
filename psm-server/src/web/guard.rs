//! What every web request passes: security headers on the answer, the same-origin check on
//! state-changing requests, and the [`WebUser`] extractor (session cookie, CSRF token).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use psm_core::{AuditAction, AuditRecord};

use super::WebState;
use super::logins::LoginSession;
use crate::error::ApiError;

/// The header a page sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-psm-csrf";

/// What a logged-in user may do in the UI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// See every session, replay and search recordings.
    pub view: bool,
    /// Pause, resume, lock, terminate and join sessions with control.
    pub control: bool,
    /// Open targets in the browser terminal.
    pub terminal: bool,
}

impl Capabilities {
    /// An administrator: everything.
    pub const fn admin() -> Self {
        Self {
            view: true,
            control: true,
            terminal: true,
        }
    }

    /// An auditor: sees, replays and searches.
    pub const fn auditor() -> Self {
        Self {
            view: true,
            control: false,
            terminal: true,
        }
    }

    /// Any other directory user: the browser terminal only.
    pub const fn user() -> Self {
        Self {
            view: false,
            control: false,
            terminal: true,
        }
    }
}

/// The cookie name: `__Host-` prefixed when it is `Secure` (browsers then refuse it from
/// any other host, path or insecure origin).
pub(crate) fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-psm_session"
    } else {
        "psm_session"
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The origins a state-changing request may come from.
fn origin_allowed(state: &WebState, headers: &HeaderMap) -> Result<(), String> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(format!(
            "cross-site request refused (Sec-Fetch-Site: {site})"
        ));
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Err("request refused: no Origin header (state-changing requests must come from the PSM page)".into());
    };
    let allowed = if state.config.public_origins.is_empty() {
        let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
            return Err("request refused: no Host header".into());
        };
        let scheme = if state.config.secure_cookies == Some(true) {
            "https"
        } else {
            "http"
        };
        origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"))
    } else {
        state
            .config
            .public_origins
            .iter()
            .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    };
    if allowed {
        Ok(())
    } else {
        let shown: String = origin.chars().take(100).collect();
        Err(format!("cross-origin request refused (Origin {shown:?})"))
    }
}

/// Records a refusal in the audit trail (best effort).
pub(crate) async fn audit(
    state: &WebState,
    session: Option<psm_core::SessionId>,
    actor: &str,
    action: AuditAction,
    detail: String,
) {
    let engine = state.app.cp.engine();
    let record = AuditRecord {
        at: engine.now(),
        session,
        actor: actor.chars().take(200).collect(),
        action,
        from_stage: None,
        to_stage: None,
        detail: detail.chars().take(1000).collect(),
    };
    if let Err(e) = engine.store().append_audit(&record).await {
        tracing::error!(error = %e, "could not audit a web UI event");
    }
}

/// The client's address: the peer's, or behind a trusted reverse proxy
/// ([`ServerConfig::trusted_proxies`](crate::ServerConfig::trusted_proxies)) the address the
/// proxy forwarded. Login lockouts, the audit trail and refusal counts use it.
pub(crate) fn client_ip(
    state: &WebState,
    headers: &HeaderMap,
    ext: &axum::http::Extensions,
) -> Option<std::net::IpAddr> {
    peer_of(ext).map(|p| {
        crate::routes::utility::client_ip(p.ip(), headers, &state.app.config.trusted_proxies)
    })
}

/// [`client_ip`] as text (`unknown` without a peer address).
pub(crate) fn client_of(
    state: &WebState,
    headers: &HeaderMap,
    ext: &axum::http::Extensions,
) -> String {
    client_ip(state, headers, ext).map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// Audits a refusal of a request nobody is logged in for: once per client and window,
/// then counted ([`crate::refusals`]).
async fn refuse_anonymous(
    state: &WebState,
    headers: &HeaderMap,
    ext: &axum::http::Extensions,
    detail: String,
) {
    let peer = client_of(state, headers, ext);
    match client_ip(state, headers, ext) {
        Some(ip) => {
            crate::refusals::refuse_unauthenticated(&state.app, ip, &format!("web@{peer}"), detail)
                .await;
        }
        None => audit(state, None, "web@unknown", AuditAction::Refused, detail).await,
    }
}

/// The host part of a `Host` header value (`name`, `name:port`, `1.2.3.4:80`, `[::1]:80`),
/// lower case, without a trailing dot.
fn host_name(value: &str) -> &str {
    let v = value.trim();
    let host = if let Some(rest) = v.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        v.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(v, |(h, _)| h)
    };
    host.trim_end_matches('.')
}

/// Whether the UI answers to `host` ([`WebConfig::allowed_hosts`](super::WebConfig::allowed_hosts)):
/// IP addresses (a rebinding page reaches the UI only through a name of its own),
/// `localhost`, the hosts of the public origins, and the names configured.
fn host_allowed(state: &WebState, host: &str) -> bool {
    let name = host_name(host);
    if name.is_empty() {
        return false;
    }
    if name.parse::<std::net::IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let config = &state.config;
    config
        .allowed_hosts
        .iter()
        .any(|h| h == "*" || host_name(h).eq_ignore_ascii_case(name))
        || config.public_origins.iter().any(|o| {
            let rest = o.split_once("://").map_or(o.as_str(), |(_, r)| r);
            let authority = rest.split('/').next().unwrap_or("");
            host_name(authority).eq_ignore_ascii_case(name)
        })
}

/// The peer address of a request, if known.
pub(crate) fn peer_of(ext: &axum::http::Extensions) -> Option<std::net::SocketAddr> {
    ext.get::<axum::extract::ConnectInfo<crate::state::PeerInfo>>()
        .map(|c| c.0.addr)
}

const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; media-src 'self'; font-src 'self' data:; \
    connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// The middleware on every web route: refuses cross-origin state-changing requests (and
/// cross-origin websocket handshakes), then sets the security headers on the answer.
pub(crate) async fn protect(State(state): State<WebState>, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/ui/api/");
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    if !host_allowed(&state, host) {
        let shown: String = host.chars().filter(|c| !c.is_control()).take(100).collect();
        let reason = format!(
            "request refused: the web UI does not answer to host {shown:?} (add it to the \
             web UI's allowed hosts)"
        );
        refuse_anonymous(
            &state,
            req.headers(),
            req.extensions(),
            format!("{} {}: {reason}", req.method(), req.uri().path()),
        )
        .await;
        return with_headers(
            ApiError::new(421, "unknown-host", reason).into_response(),
            &[],
            api,
        );
    }
    let websocket = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let must_check = !is_safe(req.method()) || websocket;
    if must_check && let Err(reason) = origin_allowed(&state, req.headers()) {
        let peer = client_of(&state, req.headers(), req.extensions());
        refuse_anonymous(
            &state,
            req.headers(),
            req.extensions(),
            format!("{} {}: {reason}", req.method(), req.uri().path()),
        )
        .await;
        tracing::warn!(peer = %peer, path = %req.uri().path(), reason = %reason, "web request refused");
        return with_headers(
            ApiError::new(403, "cross-origin", reason).into_response(),
            &[],
            api,
        );
    }
    let res = next.run(req).await;
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    // Pages may open websockets to the gateways (live view, browser terminal).
    let extra = if html {
        super::live::connect_sources(&state).await
    } else {
        Vec::new()
    };
    with_headers(res, &extra, api)
}

fn with_headers(mut res: Response, connect: &[String], api: bool) -> Response {
    let h = res.headers_mut();
    let csp = if connect.is_empty() {
        CSP.to_owned()
    } else {
        CSP.replace(
            "connect-src 'self'",
            &format!("connect-src 'self' {}", connect.join(" ")),
        )
    };
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    if api || !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// A logged-in user of the web UI, with the CSRF token checked on state-changing requests.
#[derive(Clone, Debug)]
pub struct WebUser {
    /// The directory user.
    pub user: String,
    /// What they may do.
    pub caps: Capabilities,
    pub(crate) session: LoginSession,
    pub(crate) token: String,
    /// Their address, for the audit trail.
    pub peer: String,
}

impl WebUser {
    /// The actor name for the audit trail: `web:USER@ADDRESS`.
    pub fn actor(&self) -> String {
        format!("web:{}@{}", self.user, self.peer)
    }

    /// Refuses (audited) unless the viewer may see every session.
    pub(crate) async fn require_view(&self, state: &WebState, what: &str) -> Result<(), ApiError> {
        if self.caps.view {
            return Ok(());
        }
        self.refuse(state, None, format!("{} may not {what}", self.user))
            .await
    }

    /// Refuses (audited) unless the viewer may control sessions.
    pub(crate) async fn require_control(
        &self,
        state: &WebState,
        session: Option<psm_core::SessionId>,
        what: &str,
    ) -> Result<(), ApiError> {
        if self.caps.control {
            return Ok(());
        }
        self.refuse(state, session, format!("{} may not {what}", self.user))
            .await
    }

    async fn refuse(
        &self,
        state: &WebState,
        session: Option<psm_core::SessionId>,
        reason: String,
    ) -> Result<(), ApiError> {
        audit(
            state,
            session,
            &self.actor(),
            AuditAction::Refused,
            reason.clone(),
        )
        .await;
        Err(ApiError::new(403, "forbidden", reason))
    }
}

impl FromRequestParts<WebState> for WebUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        let peer = client_of(state, &parts.headers, &parts.extensions);
        let name = cookie_name(state.config.secure_cookies == Some(true));
        let token = cookie(&parts.headers, name).map(str::to_owned);
        let session = token.as_deref().and_then(|t| state.logins.get(t));
        let (Some(token), Some(session)) = (token, session) else {
            if !is_safe(&parts.method) {
                refuse_anonymous(
                    state,
                    &parts.headers,
                    &parts.extensions,
                    format!("{} {}: not logged in", parts.method, parts.uri.path()),
                )
                .await;
            }
            return Err(ApiError::new(
                401,
                "unauthenticated",
                "log in first (the session is missing or expired)",
            )
            .into_response());
        };
        recheck(state, &token, &session, &peer).await?;
        if !is_safe(&parts.method) {
            let presented = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !session.csrf_matches(presented) {
                let reason = format!(
                    "{} {}: the CSRF token is missing or wrong",
                    parts.method,
                    parts.uri.path()
                );
                audit(
                    state,
                    None,
                    &format!("web:{}@{peer}", session.user),
                    AuditAction::Refused,
                    reason.clone(),
                )
                .await;
                return Err(ApiError::new(403, "csrf", reason).into_response());
            }
        }
        Ok(WebUser {
            user: session.user.clone(),
            caps: session.caps,
            session,
            token,
            peer,
        })
    }
}

/// Reads the session's user again once [`WebConfig::directory_recheck`] has passed since
/// the last look: a user who was removed or disabled, or whose password, second factor or
/// roles changed, is logged out everywhere (every session of theirs ends).
///
/// [`WebConfig::directory_recheck`]: super::WebConfig::directory_recheck
async fn recheck(
    state: &WebState,
    token: &str,
    session: &LoginSession,
    peer: &str,
) -> Result<(), Response> {
    if session.checked.elapsed() < state.config.directory_recheck {
        return Ok(());
    }
    let Some(directory) = state.app.directory.as_ref() else {
        return Ok(());
    };
    let user = directory.user(&session.user).await.map_err(|e| {
        tracing::error!(error = %e, "reading the directory to check a web session");
        ApiError::new(
            503,
            "unavailable",
            "the user directory cannot be read; try again",
        )
        .into_response()
    })?;
    if still_the_same(state, user.as_ref(), &session.stamp, session.caps) {
        state.logins.checked(token);
        return Ok(());
    }
    end_changed_user(
        state,
        &session.user,
        &format!("web:{}@{peer}", session.user),
    )
    .await;
    Err(ApiError::new(
        401,
        "unauthenticated",
        "log in again (your account changed)",
    )
    .into_response())
}

/// Unknown API paths.
pub(crate) async fn api_not_found() -> ApiError {
    ApiError::new(404, "not-found", "no such web API endpoint")
}

/// Whether the directory's `user` is still the one a login session was opened for: present,
/// not disabled, same password, second factor and roles.
fn still_the_same(
    state: &WebState,
    user: Option<&psm_core::directory::DirectoryUser>,
    stamp: &[u8; 32],
    caps: Capabilities,
) -> bool {
    user.is_some_and(|u| {
        !u.disabled
            && super::login::user_stamp(u) == *stamp
            && super::login::capabilities(state, u) == caps
    })
}

/// Ends what a user removed, disabled or changed in the directory still holds: every web
/// session of theirs, and the live websockets they watch sessions through (the gateways are
/// told to close them, docs/threat-model.md M9). Audited.
async fn end_changed_user(state: &WebState, user: &str, actor: &str) {
    let ended = state.logins.end_user(user);
    let viewers = state.app.cp.live().disconnect_user(user, "directory");
    audit(
        state,
        None,
        actor,
        AuditAction::Other,
        format!(
            "web sessions of {user} ended ({ended}) and live viewers disconnected in \
             {viewers} session(s): the user was removed, disabled or changed"
        ),
    )
    .await;
    tracing::info!(user = %user, ended, viewers, "web sessions and live viewers ended after a directory change");
}

/// Reads the directory again, every [`WebConfig::directory_recheck`], for every user with a
/// web session, whether or not their browser asks for anything: a user removed, disabled or
/// changed meanwhile loses their sessions and live websockets within that time. Ends with
/// the web UI.
///
/// [`WebConfig::directory_recheck`]: super::WebConfig::directory_recheck
pub(crate) async fn recheck_every_user(
    app: crate::state::AppState,
    config: std::sync::Arc<super::WebConfig>,
    logins: super::logins::WeakLoginSessions,
    searches: std::sync::Arc<tokio::sync::Semaphore>,
) {
    let Some(directory) = app.directory.clone() else {
        return;
    };
    let every = config
        .directory_recheck
        .max(std::time::Duration::from_millis(200));
    loop {
        tokio::time::sleep(every).await;
        let Some(logins) = logins.upgrade() else {
            return;
        };
        let state = WebState {
            app: app.clone(),
            config: config.clone(),
            logins,
            searches: searches.clone(),
        };
        for (user, stamp, caps) in state.logins.users() {
            let found = match directory.user(&user).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the directory to check web sessions");
                    break;
                }
            };
            if !still_the_same(&state, found.as_ref(), &stamp, caps) {
                end_changed_user(&state, &user, "directory").await;
            }
        }
    }
}
