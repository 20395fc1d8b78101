//! Assembly of the SSH gateway, shared by `psm up` and `psm-gateway`: files in the data
//! directory, the recorder, the access seam over the control plane, and the first admin.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use psm_core::directory::{ALL_TARGETS, NewUser, PasswordHash, UserDirectory};
use psm_core::vault::Vault;
use psm_core::{ControlPlane, ProcessInstance};
use psm_proxy::record::{RecorderConfig, RecorderFactory, load_or_create_signing_key};
use psm_proxy::{ControlPlaneTargets, SessionRegistry};
use psm_proxy_ssh::{
    GatewayDeps, SshGateway, SshGatewayConfig, host_key_public, load_or_create_host_key,
};

/// What the gateway is started with.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayOptions {
    /// Where users connect.
    pub listen: SocketAddr,
    /// This gateway's process instance.
    pub process_instance: String,
    /// The host key file (created on first start).
    pub host_key: Option<PathBuf>,
    /// Where raw recordings go (`DATA/recordings`).
    pub recordings: Option<PathBuf>,
    /// The recording signing key (created on first start).
    pub recording_key: Option<PathBuf>,
    /// How long a session's checkout lasts, in minutes.
    pub checkout_minutes: u64,
    /// known_hosts file for targets without a pinned key.
    pub known_hosts: Option<PathBuf>,
    /// Trust a target's key on first use (recorded in `known_hosts`).
    pub trust_on_first_use: bool,
    /// Allow `ssh -L`.
    pub allow_local_forwarding: bool,
    /// Allow `ssh -R`.
    pub allow_remote_forwarding: bool,
    /// Allow sftp (and default-mode scp).
    pub allow_sftp: bool,
    /// Most concurrent sessions.
    pub max_sessions: usize,
    /// Most connections not yet authenticated.
    pub max_unauthenticated: usize,
    /// Seconds between heartbeats (a terminate takes effect within one).
    pub heartbeat_secs: u64,
    /// Seconds a connection has to authenticate.
    pub auth_timeout_secs: u64,
    /// Text shown before login.
    pub banner: Option<String>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 2222)),
            process_instance: "gateway-1".into(),
            host_key: None,
            recordings: None,
            recording_key: None,
            checkout_minutes: 60,
            known_hosts: None,
            trust_on_first_use: false,
            allow_local_forwarding: true,
            allow_remote_forwarding: false,
            allow_sftp: true,
            max_sessions: 10_000,
            max_unauthenticated: 256,
            heartbeat_secs: 10,
            auth_timeout_secs: 30,
            banner: None,
        }
    }
}

/// A started gateway.
pub struct RunningGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its host key's SHA256 fingerprint.
    pub fingerprint: String,
    /// Whether the host key was created by this start.
    pub host_key_created: bool,
    /// Live sessions.
    #[allow(dead_code)]
    pub registry: SessionRegistry,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), psm_proxy::ProxyError>>,
}

impl RunningGateway {
    /// Ends every session cleanly and stops.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("gateway task")??;
        Ok(())
    }
}

/// Starts the gateway with files under `data` unless the options name others.
pub async fn start(
    opts: &GatewayOptions,
    data: &Path,
    control_plane: Arc<dyn ControlPlane>,
    directory: Arc<dyn UserDirectory>,
    vault: Option<Vault>,
) -> anyhow::Result<RunningGateway> {
    let host_key_path = opts
        .host_key
        .clone()
        .unwrap_or_else(|| data.join("gateway").join("ssh_host_ed25519_key"));
    let (host_key, host_key_created) = load_or_create_host_key(&host_key_path)?;
    let (_, fingerprint) = host_key_public(&host_key);
    let recordings = opts
        .recordings
        .clone()
        .unwrap_or_else(|| data.join("recordings"));
    let key_path = opts
        .recording_key
        .clone()
        .unwrap_or_else(|| data.join("keys").join("recording-signing.key"));
    let (signing, _) = load_or_create_signing_key(&key_path)?;
    let instance = ProcessInstance::new(opts.process_instance.clone())?;

    let mut targets = ControlPlaneTargets::new(
        control_plane.clone(),
        instance.clone(),
        Duration::from_secs(opts.checkout_minutes.max(1) * 60),
    );
    if let Some(kh) = &opts.known_hosts {
        targets = targets.with_known_hosts(kh.clone(), opts.trust_on_first_use);
    }
    if let Some(vault) = vault {
        targets = targets.with_catalog(move || {
            let vault = vault.clone();
            Box::pin(async move {
                vault
                    .targets()
                    .await
                    .map(|ts| ts.into_iter().map(|t| t.name).collect())
                    .unwrap_or_default()
            })
        });
    }

    let mut config = SshGatewayConfig::new(opts.listen, instance.clone());
    config.host_keys.push(host_key);
    config.allow_local_forwarding = opts.allow_local_forwarding;
    config.allow_remote_forwarding = opts.allow_remote_forwarding;
    config.allow_sftp = opts.allow_sftp;
    config.max_sessions = opts.max_sessions;
    config.max_unauthenticated = opts.max_unauthenticated;
    config.heartbeat_interval = Duration::from_secs(opts.heartbeat_secs.max(1));
    config.auth_timeout = Duration::from_secs(opts.auth_timeout_secs.max(1));
    config.banner = opts.banner.clone();

    let registry = SessionRegistry::new();
    let deps = GatewayDeps {
        control_plane,
        directory,
        targets: Arc::new(targets),
        taps: Arc::new(RecorderFactory::new(RecorderConfig::new(
            recordings,
            signing,
            format!("psm-gateway/{} {instance}", env!("CARGO_PKG_VERSION")),
        ))),
        registry: registry.clone(),
    };
    let gateway = SshGateway::bind(config, deps).await?;
    let addr = gateway.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(gateway.run(async move {
        let _ = stopped.await;
    }));
    Ok(RunningGateway {
        addr,
        fingerprint,
        host_key_created,
        registry,
        stop,
        task,
    })
}

/// On an empty directory, creates user `admin` (role `admin`, every target) with a random
/// password, returned once to print. Nothing when users exist.
pub async fn ensure_first_admin(directory: &dyn UserDirectory) -> anyhow::Result<Option<String>> {
    if !directory.users().await?.is_empty() {
        return Ok(None);
    }
    let password = uuid::Uuid::new_v4().simple().to_string();
    directory
        .create_user(&NewUser {
            name: "admin".parse()?,
            password: Some(PasswordHash::hash(&password)?),
            roles: vec!["admin".into()],
            ..NewUser::default()
        })
        .await?;
    directory.grant("admin", ALL_TARGETS).await?;
    Ok(Some(password))
}

/// The `ssh` command a user types, for messages.
pub fn ssh_line(addr: SocketAddr, user: &str) -> String {
    let host = if addr.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        addr.ip().to_string()
    };
    if addr.port() == 22 {
        format!("ssh {user}+TARGET@{host}")
    } else {
        format!("ssh -p {} {user}+TARGET@{host}", addr.port())
    }
}
