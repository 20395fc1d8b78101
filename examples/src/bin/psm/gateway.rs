//! Assembly of the SSH gateway, shared by `psm up` and `psm-gateway`: files in the data
//! directory, the recorder (encrypted as the control plane says), the command policy, the
//! access seam over the control plane, the live listener and link, and the first admin.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use psm_core::directory::{ALL_TARGETS, NewUser, PasswordHash, UserDirectory};
use psm_core::vault::Vault;
use psm_core::{ControlPlane, ProcessInstance};
use psm_proxy::live::{LiveDeps, LiveServerConfig, LiveService};
use psm_proxy::policy_tap::PolicyTapFactory;
use psm_proxy::record::{
    ControlPlaneRecipients, RecorderConfig, RecorderFactory, load_or_create_signing_key,
};
use psm_proxy::{TapFactories, TapFactory};

use crate::config::{LiveSection, PolicySection, RecordingSection, SshSection};
use psm_proxy::{ControlPlaneTargets, SessionRegistry};
use psm_proxy_ssh::{
    GatewayDeps, SshGateway, SshGatewayConfig, host_key_public, load_or_create_host_key,
};

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
    /// The live listener's URL (what the control plane hands viewers), if it runs.
    pub live_url: Option<String>,
    /// How many command-policy rules are enforced (`None`: no policy file).
    pub policy_rules: Option<usize>,
    /// The public half of the key its recordings are signed with (registered in the node's
    /// registry; a remote control plane's is the caller's to register).
    #[allow(dead_code)]
    pub recording_key: psm_recording::VerifyingKey,
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

/// What a gateway runs beside SSH itself: the sections of the configuration file shared
/// with the other gateways.
pub struct GatewayExtras<'a> {
    /// `[live]`.
    pub live: &'a LiveSection,
    /// Origins allowed on the live listener besides `[live] allowed_origins` (`psm up`'s
    /// own web UI).
    pub web_origins: Vec<String>,
    /// `[policy]`.
    pub policy: &'a PolicySection,
    /// `[recording]`.
    pub recording: &'a RecordingSection,
}

/// Starts the gateway with files under `data` unless the options name others.
pub async fn start(
    opts: &SshSection,
    extras: &GatewayExtras<'_>,
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
    let recording_key = signing.verifying_key();
    let instance = ProcessInstance::new(opts.process_instance.clone())?;
    // The node's encoder encodes only recordings of registered gateways (M12); another
    // node's control plane and encoders need this public key copied to their registry.
    psm_recording::layout::LocalLayout::new(data)
        .gateway_signers()
        .register(instance.as_str(), &signing.verifying_key())
        .with_context(|| format!("registering the recording key of gateway {instance}"))?;

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
    config.forward_destinations = opts
        .forward_destinations
        .iter()
        .map(|d| d.parse())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("[ssh] forward_destinations: {e}"))?;
    config.max_unauthenticated_per_source = opts.max_unauthenticated_per_source;
    config.source_connection_rate = opts.source_connection_rate;
    config.source_connection_burst = opts.source_connection_burst;
    config.source_penalty =
        (opts.source_penalty_secs > 0).then(|| Duration::from_secs(opts.source_penalty_secs));
    config.source_penalty_after = opts.source_penalty_after;
    config.heartbeat_interval = Duration::from_secs(opts.heartbeat_secs.max(1));
    config.heartbeat_policy = psm_proxy::HeartbeatPolicy {
        max_missed: opts.heartbeat_max_missed.max(1),
        action: match opts.heartbeat_unreachable.as_str() {
            "lock" => psm_proxy::UnreachableAction::Lock,
            "terminate" => psm_proxy::UnreachableAction::Terminate,
            "continue" => psm_proxy::UnreachableAction::Continue,
            other => anyhow::bail!(
                "[ssh] heartbeat_unreachable: {other:?} is not lock, terminate or continue"
            ),
        },
    };
    config.auth_timeout = Duration::from_secs(opts.auth_timeout_secs.max(1));
    config.banner = opts.banner.clone();

    // The taps every session gets: the recorder (encrypted for the control plane's
    // PSMEncryptionKey and `[recording] recipients`), then the command policy if a file is set.
    let mut recorder_config = RecorderConfig::new(
        recordings,
        signing,
        format!("psm-gateway/{} {instance}", env!("CARGO_PKG_VERSION")),
    );
    recorder_config.writer.recipients = extras.recording.recipients()?;
    extras.recording.apply_limits(&mut recorder_config)?;
    let recorder = RecorderFactory::new(recorder_config)
        .with_recipients(Arc::new(ControlPlaneRecipients::new(control_plane.clone())));
    let mut taps: Vec<Arc<dyn TapFactory>> = vec![Arc::new(recorder)];
    let policy = extras.policy.load()?;
    let policy_rules = policy.as_ref().map(|(p, _)| p.len());
    if let Some((policy, enforcement)) = policy {
        taps.push(Arc::new(PolicyTapFactory::new(
            policy,
            directory.clone(),
            enforcement,
        )));
    }

    let registry = SessionRegistry::new();
    let deps = GatewayDeps {
        control_plane: control_plane.clone(),
        directory,
        targets: Arc::new(targets),
        taps: Arc::new(TapFactories::new(taps)),
        registry: registry.clone(),
    };
    let gateway = SshGateway::bind(config, deps).await?;
    let addr = gateway.local_addr();

    // The live listener (watch, join, control, browser terminal) and the link that carries
    // the control plane's commands to this gateway's sessions (docs/live.md).
    let live = if extras.live.enabled {
        let mut live_config = LiveServerConfig::new(extras.live.listen, instance.clone());
        live_config.allowed_origins = extras.live.allowed_origins.clone();
        live_config
            .allowed_origins
            .extend(extras.web_origins.iter().cloned());
        if let (Some(cert), Some(key)) = (&extras.live.tls_cert, &extras.live.tls_key) {
            live_config.tls = Some(crate::config::tls_server_config(cert, key, "live")?);
        } else if extras.live.tls_cert.is_some() || extras.live.tls_key.is_some() {
            anyhow::bail!("live.tls_cert and live.tls_key go together");
        }
        let service = LiveService::start(
            live_config,
            LiveDeps {
                control_plane: control_plane.clone(),
                registry: registry.clone(),
                terminals: Some(gateway.connector()),
            },
            extras.live.public_url.clone(),
        )
        .await
        .context("starting the live listener ([live] listen)")?;
        Some(service)
    } else {
        None
    };

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let live_url = live.as_ref().map(|l| l.url().to_owned());
    let task = tokio::spawn(async move {
        let result = gateway
            .run(async move {
                let _ = stopped.await;
            })
            .await;
        if let Some(live) = live {
            live.stop().await;
        }
        result
    });
    Ok(RunningGateway {
        addr,
        fingerprint,
        host_key_created,
        registry,
        live_url,
        policy_rules,
        recording_key,
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
