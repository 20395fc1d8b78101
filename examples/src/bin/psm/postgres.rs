//! Assembly of the PostgreSQL gateway for `psm up` (docs/database.md): its certificate in
//! the data directory, targets over the control plane, the same recorder and command policy
//! as the SSH gateway, and the SSH gateway's registry, so the one live listener lists,
//! watches and controls database sessions too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use psm_core::directory::UserDirectory;
use psm_core::{ControlPlane, ProcessInstance, Protocol};
use psm_proxy::policy_tap::PolicyTapFactory;
use psm_proxy::record::{
    ControlPlaneRecipients, RecorderConfig, RecorderFactory, load_or_create_signing_key,
};
use psm_proxy::{ControlPlaneTargets, SessionRegistry, TapFactories, TapFactory};
use psm_proxy_db::tls::load_or_create_certificate;
use psm_proxy_db::{PostgresGateway, PostgresGatewayConfig, PostgresGatewayDeps};

use crate::config::{PolicySection, PostgresSection, RecordingSection};

/// A started PostgreSQL gateway.
pub struct RunningPostgres {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its certificate file.
    pub cert: PathBuf,
    /// The certificate's SHA-256.
    pub fingerprint: String,
    /// Whether this start created the certificate.
    pub cert_created: bool,
    /// How many query rules are enforced (`None`: none).
    pub rules: Option<usize>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), psm_proxy::ProxyError>>,
}

impl RunningPostgres {
    /// Ends every session cleanly and stops.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("PostgreSQL gateway task")??;
        Ok(())
    }
}

/// The command policy for database sessions: `[policy] file`'s rules, then the built-in
/// query rules when `[postgres] default_rules` is set.
pub(crate) fn policy(
    policy: &PolicySection,
    section: &PostgresSection,
) -> anyhow::Result<
    Option<(
        Arc<psm_core::policy::Policy>,
        psm_proxy::policy_tap::Enforcement,
    )>,
> {
    let loaded = policy.load()?;
    if !section.default_rules {
        return Ok(loaded);
    }
    let mut config = match &policy.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("policy.file: reading {}", path.display()))?;
            psm_core::policy::PolicyConfig::from_toml(&text)
                .with_context(|| format!("policy.file: {}", path.display()))?
        }
        None => psm_core::policy::PolicyConfig::default(),
    };
    config.rules.extend(psm_proxy_db::classify::default_rules());
    let compiled = psm_core::policy::Policy::new(&config).context("postgres.default_rules")?;
    let enforcement = loaded.map(|(_, e)| e).unwrap_or_default();
    Ok(Some((compiled, enforcement)))
}

/// Starts the gateway with files under `data` unless the section names others.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    section: &PostgresSection,
    policy_section: &PolicySection,
    recording: &RecordingSection,
    data: &Path,
    recordings: PathBuf,
    signing_key: &Path,
    control_plane: Arc<dyn ControlPlane>,
    directory: Arc<dyn UserDirectory>,
    registry: SessionRegistry,
    default_instance: &str,
) -> anyhow::Result<RunningPostgres> {
    let (cert, key) = match (&section.tls_cert, &section.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        (None, None) => (
            data.join("postgres").join("gateway.crt"),
            data.join("postgres").join("gateway.key"),
        ),
        _ => anyhow::bail!("postgres.tls_cert and postgres.tls_key go together"),
    };
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let identity =
        load_or_create_certificate(&cert, &key, &names).context("[postgres] certificate")?;
    let instance = ProcessInstance::new(if section.process_instance.is_empty() {
        default_instance.to_owned()
    } else {
        section.process_instance.clone()
    })?;
    let targets = ControlPlaneTargets::new(
        control_plane.clone(),
        instance.clone(),
        Duration::from_secs(section.checkout_minutes.max(1) * 60),
    )
    .for_protocol(Protocol::Postgres)
    // A database target's certificate is checked when the vault pins it (host_key);
    // otherwise `target_tls` decides, unverified, as libpq's sslmode=require.
    .with_unpinned_accepted(true);

    let mut config = PostgresGatewayConfig::new(section.listen, instance.clone());
    config.tls = Some(identity.config.clone());
    config.require_tls = section.require_tls;
    config.target_tls = section
        .target_tls
        .parse()
        .map_err(|e| anyhow::anyhow!("postgres.target_tls: {e}"))?;
    config.max_sessions = section.max_sessions;

    // The same recorder as the SSH gateway's: same directory, signing key and recipients.
    let (signing, _) = load_or_create_signing_key(signing_key)?;
    let mut recorder_config = RecorderConfig::new(
        recordings,
        signing,
        format!("psm-postgres/{} {instance}", env!("CARGO_PKG_VERSION")),
    );
    recorder_config.writer.recipients = recording.recipients()?;
    recording.apply_limits(&mut recorder_config)?;
    let recorder = RecorderFactory::new(recorder_config)
        .with_recipients(Arc::new(ControlPlaneRecipients::new(control_plane.clone())));
    let mut taps: Vec<Arc<dyn TapFactory>> = vec![Arc::new(recorder)];
    let policy = policy(policy_section, section)?;
    let rules = policy.as_ref().map(|(p, _)| p.len());
    if let Some((policy, enforcement)) = policy {
        taps.push(Arc::new(PolicyTapFactory::new(
            policy,
            directory.clone(),
            enforcement,
        )));
    }
    let deps = PostgresGatewayDeps {
        control_plane: control_plane.clone(),
        directory,
        targets: Arc::new(targets),
        taps: Arc::new(TapFactories::new(taps)),
        registry,
    };
    let gateway = PostgresGateway::bind(config, deps)
        .await
        .with_context(|| format!("binding {} ([postgres] listen)", section.listen))?;
    let addr = gateway.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(gateway.run(async move {
        let _ = stopped.await;
    }));
    Ok(RunningPostgres {
        addr,
        cert,
        fingerprint: identity.fingerprint,
        cert_created: identity.created,
        rules,
        stop,
        task,
    })
}
