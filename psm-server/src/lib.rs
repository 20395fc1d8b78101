//! # psm-server
//!
//! The reference `secureaccessgateway` HTTP service (axum) over psm-core's
//! [`LocalControlPlane`](psm_core::LocalControlPlane): every endpoint of the contract plus
//! PSM's extensions, the watchdog and checkout-expiry sweep running inside on an interval,
//! API-key (and mTLS) authentication with a role per caller, every refusal audited, errors
//! in the contract's shape, an OpenAPI document generated from the code at
//! `/api/openapi.json`, `/healthz` and `/readyz`, a body limit answered 413, TLS by rustls,
//! and graceful shutdown.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use psm_core::clock::SystemClock;
//! use psm_core::store::MemoryStore;
//! use psm_core::vault::{Keyring, MasterKey, MemoryVaultStore, PamSettings, Secret, Vault, VaultConfig};
//! use psm_core::{Engine, EngineConfig, LocalControlPlane};
//! use psm_server::auth::{ApiKeys, Principal, Role};
//! use psm_server::{Server, ServerConfig};
//!
//! let engine = Engine::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock), EngineConfig::default());
//! let vault = Vault::new(Arc::new(MemoryVaultStore::new()), Keyring::new(MasterKey::generate()?),
//!     engine.clone(), VaultConfig::default());
//! let cp = LocalControlPlane::new(engine, vault, PamSettings::default());
//! let mut keys = ApiKeys::new();
//! keys.add(Principal::shared("gw", Role::Gateway), &Secret::new("gateway-key-0123456789".into()));
//!
//! let dir = tempfile::tempdir()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = Server::new(cp, keys, dir.path().join("artifacts"), ServerConfig::default())
//!     .start(listener, None)?;
//!
//! let client = psm_client::Client::new(psm_client::ClientConfig::new(server.url())
//!     .with_api_key("gateway-key-0123456789"))?;
//! assert_eq!(client.get_pam_settings().await?.storage_mode, "UNC");
//! server.stop().await;
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use psm_client::wire::path;
use psm_core::LocalControlPlane;
use tokio::sync::watch;

pub mod artifacts;
pub mod auth;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod node;
pub mod openapi;
pub mod refusals;
pub mod report;
pub mod routes;
mod serve;
pub mod siem;
pub mod state;
pub mod tls;
pub mod web;

pub use auth::{ApiKeys, Principal, Role};
pub use error::{ApiError, ServerError};
pub use state::{AppState, PeerInfo, ServerConfig};
pub use tls::TlsSettings;

use routes::{claim, directory, save, session, utility, vault};

/// The router with every endpoint, the auth layer and the body limit.
pub fn router(state: AppState) -> Router {
    let doc = Arc::new(openapi::document());
    let api = Router::new()
        .route(path::UPDATE_SESSION, post(session::update_session))
        .route(path::END_SESSION, post(session::end_session))
        .route(path::POLLING, post(session::polling))
        .route(path::OPEN_SESSION, post(session::open_session))
        .route(path::TERMINATE_SESSION, post(session::terminate_session))
        .route(path::JOIN_SESSION, post(routes::live::join_session))
        .route(path::ENCODER_CLAIM, post(claim::encoder_claim))
        .route(path::UPLODER_CLAIM, post(claim::uploder_claim))
        .route(
            path::GET_RECORDING_STATUS,
            post(claim::get_recording_process_status),
        )
        .route(
            path::UPDATE_RECORDING_STATUS,
            put(claim::update_recording_process_status),
        )
        .route(path::FAIL_RECORDING, post(claim::fail_recording_process))
        .route(path::SAVE_CLIPBOARD, post(save::save_clipboard))
        .route(path::SAVE_SCREENSHOT, post(save::save_screenshot))
        .route(path::SAVE_RECORDING, post(save::save_session_recording))
        .route(path::SAVE_KEYSTROKES, post(save::save_key_strokes))
        .route(path::CHECKIN, post(vault::checkin))
        .route(
            path::GET_REMAINING_MINUTES,
            post(vault::get_remaining_minutes),
        )
        .route(path::GET_CREDENTIAL, post(vault::get_credential))
        .route(path::GET_PAM_SETTINGS, get(vault::get_pam_settings))
        .route(path::CHECKOUT, post(vault::checkout))
        .route(path::GET_TARGET, post(vault::get_target))
        .route(path::LIST_TARGETS, get(vault::list_targets))
        .route(path::PUT_TARGET, put(vault::put_target))
        .route(path::DELETE_TARGET, post(vault::delete_target))
        .route(path::SET_CREDENTIAL, put(vault::set_credential))
        .route(path::GET_USER, post(directory::get_user))
        .route(path::LIST_USERS, get(directory::list_users))
        .route(path::CREATE_USER, post(directory::create_user))
        .route(path::UPDATE_USER, post(directory::update_user))
        .route(path::DELETE_USER, post(directory::delete_user))
        .route(path::ADD_USER_KEY, post(directory::add_user_key))
        .route(path::REMOVE_USER_KEY, post(directory::remove_user_key))
        .route(path::GRANT_ROLE, post(directory::grant_role))
        .route(path::REVOKE_ROLE, post(directory::revoke_role))
        .route(path::TARGETS_OF_ROLES, post(directory::targets_of_roles))
        .route(path::VERIFY_USER, post(directory::verify_user))
        .route(
            path::REGISTER_SIGNER,
            post(routes::signers::register_signer),
        )
        .route(path::GET_USER_PLATFORM, get(utility::get_user_platform))
        .route(path::GET_IP, get(utility::get_ip))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authorize,
        ));
    Router::new()
        .merge(api)
        .merge(routes::live::router(state.clone()))
        .route(path::HEALTH, get(utility::health))
        .route(path::READY, get(utility::ready))
        .route(
            path::OPENAPI,
            get(move || {
                let doc = doc.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .fallback(utility::not_found)
        .method_not_allowed_fallback(utility::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .with_state(state)
}

/// A configured server, ready to start on a listener.
pub struct Server {
    state: AppState,
    web: Option<web::WebConfig>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("state", &self.state)
            .finish()
    }
}

impl Server {
    /// A server over `cp`, accepting `keys`, writing the save endpoints' data under
    /// `artifacts`.
    pub fn new(
        cp: LocalControlPlane,
        keys: ApiKeys,
        artifacts: impl Into<PathBuf>,
        config: ServerConfig,
    ) -> Self {
        Self::with_sink(
            cp,
            keys,
            Arc::new(artifacts::LocalArtifacts::new(artifacts)),
            config,
        )
    }

    /// As [`new`](Self::new), with another artifact sink.
    pub fn with_sink(
        cp: LocalControlPlane,
        keys: ApiKeys,
        sink: Arc<dyn artifacts::ArtifactSink>,
        config: ServerConfig,
    ) -> Self {
        Self {
            state: AppState {
                cp,
                keys: Arc::new(keys),
                artifacts: sink,
                directory: None,
                logins: psm_core::directory::LoginThrottle::default(),
                refusals: refusals::RefusalLog::new(config.refusal_window),
                credential_refusals: refusals::CredentialRefusals::new(
                    config.refusal_window,
                    config.credential_refusal_limit,
                ),
                config: Arc::new(config),
            },
            web: None,
        }
    }

    /// Serves `directory` through the directory extension endpoints (GetUser...), so remote
    /// gateways authenticate users against it.
    pub fn with_directory(
        mut self,
        directory: Arc<dyn psm_core::directory::UserDirectory>,
    ) -> Self {
        self.state.directory = Some(directory);
        self
    }

    /// Also serves the admin web UI under `/ui/` ([`web`]); it logs users in against the
    /// directory given to [`with_directory`](Self::with_directory).
    pub fn with_web(mut self, config: web::WebConfig) -> Self {
        self.web = Some(config);
        self
    }

    /// The router (for embedding in a larger axum application).
    pub fn router(&self) -> Router {
        let app = router(self.state.clone());
        match &self.web {
            Some(w) => app.merge(web::router(self.state.clone(), w.clone(), false)),
            None => app,
        }
    }

    /// Starts serving on `listener` (TLS when `tls` is given) and the sweeper beside it.
    pub fn start(
        self,
        listener: tokio::net::TcpListener,
        tls: Option<&TlsSettings>,
    ) -> Result<RunningServer, ServerError> {
        let addr = listener.local_addr().map_err(|e| ServerError::Io {
            what: "reading the listen address".into(),
            source: e,
        })?;
        // An instance with a certificate of its own is no longer a shared key's to act as.
        for p in tls.iter().flat_map(|t| t.client_principals.values()) {
            if let Some(instance) = &p.instance {
                self.state.keys.bind_certificate(instance.clone());
            }
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let sweeper = tokio::spawn(
            self.state
                .cp
                .clone()
                .run_sweeper(self.state.config.sweep_interval, stop_rx.clone()),
        );
        let summaries = tokio::spawn(refusals::run_summaries(self.state.clone(), stop_rx.clone()));
        let mut app = router(self.state.clone());
        if let Some(w) = self.web.clone() {
            app = app.merge(web::router(self.state.clone(), w, tls.is_some()));
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let config = self.state.config.clone();
        let serve = match tls {
            Some(settings) => {
                let listener = tls::TlsListener::new(listener, settings)?;
                tokio::spawn(serve::serve(listener, app, config, |p| p, stop_rx))
            }
            None => tokio::spawn(serve::serve(
                listener,
                app,
                config,
                |addr| PeerInfo {
                    addr,
                    cert_principal: None,
                },
                stop_rx,
            )),
        };
        tracing::info!(%addr, scheme, "control plane listening");
        Ok(RunningServer {
            addr,
            scheme,
            stop: stop_tx,
            serve,
            sweeper,
            summaries,
            grace: self.state.config.shutdown_grace,
        })
    }
}

/// A server that is running.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    scheme: &'static str,
    stop: watch::Sender<bool>,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
    sweeper: tokio::task::JoinHandle<()>,
    summaries: tokio::task::JoinHandle<()>,
    grace: std::time::Duration,
}

impl RunningServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its root URL, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Stops accepting, lets requests in flight finish (up to the configured grace), and
    /// stops the sweeper.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let serve = self.serve;
        if tokio::time::timeout(self.grace, serve).await.is_err() {
            tracing::warn!("requests still in flight after the shutdown grace; dropped");
        }
        let _ = self.sweeper.await;
        let _ = self.summaries.await;
    }

    /// Waits until the server ends by itself (an I/O error) or is stopped.
    pub async fn wait(&mut self) -> std::io::Result<()> {
        match (&mut self.serve).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}
