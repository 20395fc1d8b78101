//! The admin web UI: sessions (stage, user, target, duration, live or ended), live view and
//! control, replay of recordings with asciinema-player, search across recordings, downloads
//! of exports, and the browser terminal. Served by psm-server under `/ui/`, its JSON API
//! under `/ui/api/`, its assets (built from npm packages by `scripts/build-web`, committed in
//! `psm-server/web-dist/`) embedded in the binary. `docs/web.md` describes it for users.
//!
//! Who may use it: users of the PSM directory ([`UserDirectory`]), by password and TOTP when
//! they have one. A user with one of [`WebConfig::admin_roles`] sees and controls every
//! session; one with [`WebConfig::auditor_roles`] sees, replays and searches but cannot
//! control; any other user reaches only the browser terminal.
//!
//! Security: a login gets a random 256-bit session cookie (`HttpOnly`, `SameSite=Strict`,
//! `Secure` and `__Host-` prefixed over TLS) kept server-side as a hash; every state-changing
//! request needs the session's CSRF token in `X-PSM-CSRF` **and** an `Origin` equal to the
//! server's own (or one of [`WebConfig::public_origins`]); every answer carries a
//! Content-Security-Policy that allows no inline script; the front end builds every element
//! with `textContent`, never HTML from data, so recorded output, search terms and session
//! fields cannot inject script. Logins, logouts, refusals and control actions are audited.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use psm_core::clock::SystemClock;
//! use psm_core::directory::{DirectoryAdmin, MemoryDirectory, NewUser, PasswordHash, UserDirectory};
//! use psm_core::store::MemoryStore;
//! use psm_core::vault::{Keyring, MasterKey, MemoryVaultStore, PamSettings, Vault, VaultConfig};
//! use psm_core::{Engine, EngineConfig, LocalControlPlane};
//! use psm_server::web::WebConfig;
//! use psm_server::{ApiKeys, Server, ServerConfig};
//!
//! let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock), EngineConfig::default());
//! let vault = Vault::new(Arc::new(MemoryVaultStore::new()), Keyring::new(MasterKey::generate()?),
//!     engine.clone(), VaultConfig::default());
//! let cp = LocalControlPlane::new(engine, vault, PamSettings::default());
//! let directory = Arc::new(MemoryDirectory::new());
//! directory.create_user(&NewUser { name: "admin".parse()?,
//!     password: Some(PasswordHash::hash("admin-password")?), roles: vec!["admin".into()],
//!     ..NewUser::default() }).await?;
//!
//! let data = tempfile::tempdir()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = Server::new(cp, ApiKeys::new(), data.path().join("artifacts"), ServerConfig::default())
//!     .with_directory(directory)
//!     .with_web(WebConfig::for_data_dir(data.path()))
//!     .start(listener, None)?;
//! // Browsers open http://127.0.0.1:PORT/ui/ and log in as admin.
//! let page = reqwest::get(format!("{}/ui/", server.url())).await?;
//! assert!(page.headers()["content-security-policy"].to_str()?.contains("script-src 'self'"));
//! server.stop().await;
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use psm_recording::RecipientSecret;
use psm_storage::RecordingStore;

use crate::state::AppState;

mod api;
mod assets;
mod guard;
mod input;
mod live;
mod login;
mod logins;
mod recordings;
mod reports;
mod search;

pub use guard::{CSRF_HEADER, Capabilities, WebUser};
pub use logins::LoginSessions;

/// Where the web UI lives.
pub const UI_PREFIX: &str = "/ui";

/// The web UI's settings.
#[derive(Clone)]
pub struct WebConfig {
    /// Raw recordings written by gateways: `DIR/<session-id>.psmr` (`DATA/recordings`).
    pub recordings_dir: Option<PathBuf>,
    /// Exports written by encoders: `DIR/<session-id>/session.cast`, `transcript.txt`,
    /// `commands.json`, `manifest.json` (`DATA/exports`).
    pub exports_dir: Option<PathBuf>,
    /// The store finished recording sets were uploaded to (`sessions/<id>/...`), read when
    /// the local copies are gone.
    pub store: Option<Arc<dyn RecordingStore>>,
    /// The key that opens encrypted recordings, if they are encrypted.
    pub identity: Option<RecipientSecret>,
    /// Directory roles that make a user an administrator (see, control, replay, search).
    pub admin_roles: Vec<String>,
    /// Directory roles that make a user an auditor (see, replay, search; no control).
    pub auditor_roles: Vec<String>,
    /// Origins accepted on state-changing requests besides the server's own (`Host`), e.g.
    /// `https://psm.example.com` behind a reverse proxy. When set, **only** these are
    /// accepted.
    pub public_origins: Vec<String>,
    /// Mark the session cookie `Secure` (and name it `__Host-psm_session`). `None`: when the
    /// server is started with TLS.
    pub secure_cookies: Option<bool>,
    /// A login session ends after this long without a request.
    pub idle_timeout: Duration,
    /// A login session ends this long after the login, whatever happens.
    pub max_session: Duration,
    /// Failed logins per user name (and per client address) before further attempts are
    /// refused for [`lockout`](Self::lockout).
    pub max_failed_logins: u32,
    /// How long too many failed logins lock a name or address out.
    pub lockout: Duration,
    /// Most recordings one search reads (the newest first).
    pub search_sessions: usize,
    /// Largest recording the UI reads (replay, search), in bytes.
    pub max_recording_bytes: u64,
    /// Most recording bytes one search reads in all; past it the search stops and says
    /// where (narrow it by user, target or session, or go on from there).
    pub search_bytes: u64,
    /// Searches running at once; more are refused (503) until one ends.
    pub max_concurrent_searches: usize,
    /// How often the sessions page refreshes itself, in seconds (the page reads it).
    pub refresh_seconds: u32,
    /// The websocket base URL of the gateway's live listener (`ws://127.0.0.1:2223`,
    /// `docs/live.md`): where browser terminals connect, and where viewers connect when a
    /// session's gateway advertised no address of its own. `None`: no browser terminal.
    pub live_gateway: Option<String>,
    /// More origins the pages may open websockets to (added to the CSP's `connect-src`);
    /// gateways that run live sessions are added by themselves.
    pub connect_sources: Vec<String>,
    /// How long a control action (pause...) waits for its gateway to confirm it.
    pub control_wait: Duration,
    /// Host names the UI answers to (the `Host` header) besides `localhost`, IP addresses
    /// and the hosts of [`public_origins`](Self::public_origins); any other is refused, so
    /// a page on another site cannot reach the UI by pointing its own name at this address
    /// (DNS rebinding). `*` accepts every name.
    pub allowed_hosts: Vec<String>,
    /// How long a login session trusts its last look at the directory: after it, the next
    /// request reads the user again, and a user who was disabled, removed, or whose
    /// password, second factor or roles changed is logged out.
    pub directory_recheck: Duration,
    /// Most web logins checking a password at once (argon2 takes about 19 MiB each); more
    /// wait their turn.
    pub max_concurrent_logins: usize,
    /// The registered gateways' recording keys (`DATA/keys/signers/gateways`): a replayed
    /// recording signed by another key is shown as not trusted. `None`: not checked.
    pub gateway_signers: Option<psm_recording::keys::SignerRegistry>,
    /// The registered encoders' keys (`DATA/keys/signers/encoders`): an export is played or
    /// served only if the set's manifest is signed by one of them and lists the export's
    /// exact bytes (otherwise the player converts the `.psmr`). `None`: not checked.
    pub encoder_signers: Option<psm_recording::keys::SignerRegistry>,
    /// The data directory whose report key (`DATA/keys/report-signing.key`, created on
    /// first use) seals the compliance reports made here (docs/reports.md). `None`: the UI
    /// makes no reports.
    pub reports_data_dir: Option<PathBuf>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("recordings_dir", &self.recordings_dir)
            .field("exports_dir", &self.exports_dir)
            .field("store", &self.store.is_some())
            .field("identity", &self.identity.as_ref().map(|_| "***"))
            .field("admin_roles", &self.admin_roles)
            .field("auditor_roles", &self.auditor_roles)
            .field("public_origins", &self.public_origins)
            .field("secure_cookies", &self.secure_cookies)
            .field("live_gateway", &self.live_gateway)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish_non_exhaustive()
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            recordings_dir: None,
            exports_dir: None,
            store: None,
            identity: None,
            admin_roles: vec!["admin".into()],
            auditor_roles: vec!["auditor".into()],
            public_origins: Vec::new(),
            secure_cookies: None,
            idle_timeout: Duration::from_secs(30 * 60),
            max_session: Duration::from_secs(12 * 3600),
            max_failed_logins: 5,
            lockout: Duration::from_secs(5 * 60),
            search_sessions: 500,
            max_recording_bytes: 512 << 20,
            search_bytes: 2 << 30,
            max_concurrent_searches: 2,
            refresh_seconds: 3,
            live_gateway: None,
            connect_sources: Vec::new(),
            control_wait: Duration::from_secs(5),
            allowed_hosts: Vec::new(),
            directory_recheck: Duration::from_secs(5),
            max_concurrent_logins: std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            gateway_signers: None,
            encoder_signers: None,
            reports_data_dir: None,
        }
    }
}

impl WebConfig {
    /// The layout of a data directory (`docs/deployment.md`): raw recordings in
    /// `DATA/recordings`, exports in `DATA/exports`, the registered gateways' and encoders'
    /// keys in `DATA/keys/signers/`.
    pub fn for_data_dir(data: &Path) -> Self {
        let layout = psm_recording::layout::LocalLayout::new(data);
        Self {
            recordings_dir: Some(data.join("recordings")),
            exports_dir: Some(data.join("exports")),
            gateway_signers: Some(layout.gateway_signers()),
            encoder_signers: Some(layout.encoder_signers()),
            reports_data_dir: Some(data.to_owned()),
            ..Self::default()
        }
    }
}

/// The web UI's shared state.
#[derive(Clone)]
pub(crate) struct WebState {
    pub(crate) app: AppState,
    pub(crate) config: Arc<WebConfig>,
    pub(crate) logins: LoginSessions,
    /// Permits of the searches running now ([`WebConfig::max_concurrent_searches`]).
    pub(crate) searches: Arc<tokio::sync::Semaphore>,
}

/// The web UI's router (`/`, `/ui/...`), to merge into the server's.
pub fn router(app: AppState, mut config: WebConfig, tls: bool) -> Router {
    if config.secure_cookies.is_none() {
        config.secure_cookies = Some(tls);
    }
    let logins = LoginSessions::new(&config);
    let searches = Arc::new(tokio::sync::Semaphore::new(
        config.max_concurrent_searches.max(1),
    ));
    let state = WebState {
        app,
        config: Arc::new(config),
        logins,
        searches,
    };
    // Directory changes reach users who send nothing too (their live websockets).
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(guard::recheck_every_user(
            state.app.clone(),
            state.config.clone(),
            state.logins.downgrade(),
            state.searches.clone(),
        ));
    }
    let api = Router::new()
        .route("/login", post(login::login))
        .route("/logout", post(login::logout))
        .route("/me", get(login::me))
        .route("/sessions", get(api::list_sessions))
        .route("/sessions/{id}", get(api::session_detail))
        .route("/sessions/{id}/terminate", post(api::terminate))
        .route("/sessions/{id}/control", post(api::control))
        .route("/sessions/{id}/join", post(api::join))
        .route("/recordings/{id}/cast", get(recordings::cast))
        .route("/recordings/{id}/commands", get(recordings::commands))
        .route("/recordings/{id}/index", get(recordings::index))
        .route("/recordings/{id}/input", get(input::input))
        .route("/recordings/{id}/screen", get(recordings::screen))
        .route("/recordings/{id}/files", get(recordings::files))
        .route("/recordings/{id}/files/{name}", get(recordings::download))
        .route("/recordings/{id}/media/{name}", get(recordings::media))
        .route("/search", get(search::search))
        .route("/report", get(reports::report))
        .route("/targets", get(api::targets))
        .route("/terminal", post(api::terminal))
        .fallback(guard::api_not_found);
    Router::new()
        .nest(&format!("{UI_PREFIX}/api"), api)
        .route("/", get(assets::root_redirect))
        .route(UI_PREFIX, get(assets::root_redirect))
        .route(&format!("{UI_PREFIX}/"), get(assets::index_page))
        .route(&format!("{UI_PREFIX}/{{page}}"), get(assets::page))
        .route(&format!("{UI_PREFIX}/assets/{{name}}"), get(assets::asset))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::protect,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(state)
}
