//! The harness of psm-server's integration tests: a real server on a loopback port over a
//! LocalControlPlane whose clock the test drives, with one API key per role.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use psm_client::{Client, ClientConfig, HttpControlPlane};
use psm_core::clock::ManualClock;
use psm_core::store::{PostgresOptions, PostgresStore, SessionStore, SqliteStore};
use psm_core::vault::{
    Checkin, Checkout, CheckoutRequest, CheckoutStatus, Credential, Keyring, MasterKey,
    PamSettings, Target, Vault, VaultConfig, VaultStore,
};
use psm_core::{
    CheckoutId, Completion, CoreError, Engine, EngineConfig, HeartbeatReply, Lease, LiveLinkApi,
    LocalControlPlane, NewSession, PrivSession, ProcessInstance, RecordingStatus,
    RecordingStatusUpdate, SessionAdmin, SessionId, SessionLifecycle, Settings, Stage,
    TargetCredentials, Timestamp, WorkQueue,
};
use psm_server::auth::generate_key;
use psm_server::{ApiKeys, Principal, Role, RunningServer, Server, ServerConfig};

pub fn postgres_url() -> String {
    std::env::var("PSM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

type Stores = (
    Arc<dyn SessionStore>,
    Arc<dyn VaultStore>,
    Arc<dyn psm_core::directory::UserDirectory>,
    Option<PostgresStore>,
);

pub struct Harness {
    pub server: Option<RunningServer>,
    pub url: String,
    pub clock: ManualClock,
    pub engine: Engine,
    pub vault: Vault,
    pub vault_store: Arc<dyn VaultStore>,
    pub settings: PamSettings,
    pub keys: HashMap<Role, String>,
    pub dir: tempfile::TempDir,
    pub pg: Option<PostgresStore>,
    pub directory: Arc<dyn psm_core::directory::UserDirectory>,
}

pub fn settings() -> PamSettings {
    PamSettings::default()
}

impl Harness {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(
            backend,
            ServerConfig {
                sweep_interval: Duration::from_secs(3600),
                ..ServerConfig::default()
            },
        )
        .await
    }

    pub async fn start_with(backend: Backend, config: ServerConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (sessions, vault_store, directory, pg): Stores = match backend {
            Backend::Sqlite => {
                let s = SqliteStore::open(dir.path().join("psm.db")).await.unwrap();
                (Arc::new(s.clone()), Arc::new(s.clone()), Arc::new(s), None)
            }
            Backend::Postgres => {
                let url = postgres_url();
                let mut o = PostgresOptions::new(url.clone());
                o.schema = Some(format!("psm_srv_{}", uuid::Uuid::new_v4().simple()));
                o.max_connections = 8;
                let s = PostgresStore::connect(&o).await.unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is needed at {url} (set PSM_TEST_DATABASE_URL or start \
                             the local server: pg_ctlcluster --skip-systemctl-redirect \
                             $(ls /etc/postgresql) main start): {e}"
                    )
                });
                (
                    Arc::new(s.clone()),
                    Arc::new(s.clone()),
                    Arc::new(s.clone()),
                    Some(s),
                )
            }
        };
        let clock = ManualClock::new(Timestamp::from_micros(1_800_000_000_000_000));
        let engine = Engine::new(sessions, Arc::new(clock.clone()), EngineConfig::default());
        let vault = Vault::new(
            vault_store.clone(),
            Keyring::new(MasterKey::generate().unwrap()),
            engine.clone(),
            VaultConfig::default(),
        );
        let cp = LocalControlPlane::new(engine.clone(), vault.clone(), settings());
        let mut keys = HashMap::new();
        let mut api_keys = ApiKeys::new();
        for role in Role::ALL {
            let key = generate_key(role).unwrap();
            api_keys.add(Principal::shared(format!("{role}-test"), role), &key);
            keys.insert(role, key.expose_secret().clone());
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::new(cp, api_keys, dir.path().join("artifacts"), config)
            .with_directory(directory.clone())
            .start(listener, None)
            .unwrap();
        Harness {
            url: server.url(),
            server: Some(server),
            clock,
            engine,
            vault,
            vault_store,
            settings: settings(),
            keys,
            dir,
            pg,
            directory,
        }
    }

    pub fn client(&self, role: Role) -> Client {
        let mut c = ClientConfig::new(&self.url).with_api_key(self.keys[&role].clone());
        c.retries = 0;
        Client::new(c).unwrap()
    }

    pub fn cp(&self, role: Role) -> HttpControlPlane {
        HttpControlPlane::new(self.client(role))
    }

    pub fn router(&self) -> RoleRouter {
        RoleRouter {
            gateway: self.cp(Role::Gateway),
            encoder: self.cp(Role::Encoder),
            uploader: self.cp(Role::Uploader),
            admin: self.cp(Role::Admin),
        }
    }

    /// A raw request: (status, JSON answer).
    pub async fn raw(
        &self,
        role: Option<Role>,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let http = reqwest::Client::new();
        let mut req = http.request(method, format!("{}{}", self.url, path));
        if let Some(role) = role {
            req = req.bearer_auth(&self.keys[&role]);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, json)
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        if let Some(pg) = self.pg.take() {
            pg.drop_schema().await.unwrap();
        }
    }
}

/// A ControlPlane that sends each call with the API key of the role that makes it in a
/// real deployment (the conformance suite plays every process at once).
pub struct RoleRouter {
    pub gateway: HttpControlPlane,
    pub encoder: HttpControlPlane,
    pub uploader: HttpControlPlane,
    pub admin: HttpControlPlane,
}

impl RoleRouter {
    fn worker(&self, stage: Stage) -> &HttpControlPlane {
        match stage {
            Stage::Uploading | Stage::DoneUploaded => &self.uploader,
            _ => &self.encoder,
        }
    }
}

#[async_trait]
impl SessionLifecycle for RoleRouter {
    async fn open_session(&self, new: NewSession) -> Result<PrivSession, CoreError> {
        self.gateway.open_session(new).await
    }
    async fn heartbeat(
        &self,
        session: SessionId,
        by: &ProcessInstance,
    ) -> Result<HeartbeatReply, CoreError> {
        self.gateway.heartbeat(session, by).await
    }
    async fn update_session(&self, session: SessionId) -> Result<(), CoreError> {
        self.gateway.update_session(session).await
    }
    async fn end_session(&self, session: SessionId, by: &ProcessInstance) -> Result<(), CoreError> {
        self.gateway.end_session(session, by).await
    }
}

#[async_trait]
impl TargetCredentials for RoleRouter {
    async fn target(&self, name: &str) -> Result<Target, CoreError> {
        self.gateway.target(name).await
    }
    async fn get_credential(
        &self,
        session: SessionId,
        by: &ProcessInstance,
    ) -> Result<Credential, CoreError> {
        self.gateway.get_credential(session, by).await
    }
    async fn checkout(&self, request: CheckoutRequest, actor: &str) -> Result<Checkout, CoreError> {
        self.gateway.checkout(request, actor).await
    }
    async fn checkout_status(&self, checkout: &CheckoutId) -> Result<CheckoutStatus, CoreError> {
        self.gateway.checkout_status(checkout).await
    }
    async fn checkin(&self, checkout: &CheckoutId, actor: &str) -> Result<Checkin, CoreError> {
        self.gateway.checkin(checkout, actor).await
    }
}

#[async_trait]
impl WorkQueue for RoleRouter {
    async fn claim_for_encoding(
        &self,
        by: &ProcessInstance,
        limit: u32,
    ) -> Result<Vec<Lease>, CoreError> {
        self.encoder.claim_for_encoding(by, limit).await
    }
    async fn claim_for_upload(
        &self,
        by: &ProcessInstance,
        limit: u32,
    ) -> Result<Vec<Lease>, CoreError> {
        self.uploader.claim_for_upload(by, limit).await
    }
    async fn renew(&self, lease: &Lease) -> Result<Lease, CoreError> {
        self.worker(lease.stage).renew(lease).await
    }
    async fn complete(&self, lease: &Lease, completion: Completion) -> Result<(), CoreError> {
        self.worker(lease.stage).complete(lease, completion).await
    }
    async fn fail(&self, lease: &Lease, reason: &str) -> Result<(), CoreError> {
        self.worker(lease.stage).fail(lease, reason).await
    }
    async fn recording_status(
        &self,
        sessions: &[SessionId],
    ) -> Result<Vec<RecordingStatus>, CoreError> {
        self.admin.recording_status(sessions).await
    }
    async fn update_recording_status(
        &self,
        update: RecordingStatusUpdate,
    ) -> Result<(), CoreError> {
        self.worker(update.status)
            .update_recording_status(update)
            .await
    }
}

#[async_trait]
impl Settings for RoleRouter {
    async fn pam_settings(&self) -> Result<PamSettings, CoreError> {
        self.encoder.pam_settings().await
    }
}

#[async_trait]
impl LiveLinkApi for RoleRouter {
    async fn redeem_live_ticket(
        &self,
        ticket: &psm_core::live::LiveTicket,
        by: &ProcessInstance,
    ) -> Result<psm_core::live::TicketGrant, CoreError> {
        self.gateway.redeem_live_ticket(ticket, by).await
    }
    async fn live_commands(
        &self,
        by: &ProcessInstance,
        wait: std::time::Duration,
        live_url: Option<&str>,
    ) -> Result<Vec<psm_core::live::LiveCommand>, CoreError> {
        self.gateway.live_commands(by, wait, live_url).await
    }
    async fn live_report(
        &self,
        by: &ProcessInstance,
        reports: &[psm_core::live::LiveReport],
    ) -> Result<(), CoreError> {
        self.gateway.live_report(by, reports).await
    }
}

#[async_trait]
impl SessionAdmin for RoleRouter {
    async fn request_termination(
        &self,
        session: SessionId,
        actor: &str,
        reason: &str,
    ) -> Result<(), CoreError> {
        self.admin.request_termination(session, actor, reason).await
    }
}

/// A 2x2 RGB PNG.
pub fn tiny_png() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, 2, 2);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[0u8; 12]).unwrap();
    }
    out
}
