//! Assembly of the database gateways for `psm up` (docs/database.md), PostgreSQL and
//! MySQL/MariaDB alike: a certificate in the data directory, targets over the control plane,
//! the same recorder and command policy as the SSH gateway, and the SSH gateway's registry,
//! so the one live listener lists, watches and controls database sessions too.

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
use psm_proxy_db::mysql::MysqlGateway;
use psm_proxy_db::tls::load_or_create_certificate;
use psm_proxy_db::{PostgresGateway, PostgresGatewayConfig, PostgresGatewayDeps};

use crate::config::{DbSection, PolicySection, RecordingSection};

/// Which database gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    /// PostgreSQL (`[postgres]`).
    Postgres,
    /// MySQL and MariaDB (`[mysql]`).
    Mysql,
}

impl DbKind {
    /// Its name for people: `PostgreSQL`, `MySQL`.
    pub fn name(self) -> &'static str {
        match self {
            DbKind::Postgres => "PostgreSQL",
            DbKind::Mysql => "MySQL",
        }
    }

    /// Its section of psm.toml, its folder in the data directory and its `--protocol`.
    pub fn key(self) -> &'static str {
        match self {
            DbKind::Postgres => "postgres",
            DbKind::Mysql => "mysql",
        }
    }

    /// Where it listens unless `listen` says otherwise.
    pub fn default_listen(self) -> SocketAddr {
        match self {
            DbKind::Postgres => SocketAddr::from(([127, 0, 0, 1], 15432)),
            DbKind::Mysql => SocketAddr::from(([127, 0, 0, 1], 13306)),
        }
    }

    fn protocol(self) -> Protocol {
        match self {
            DbKind::Postgres => Protocol::Postgres,
            DbKind::Mysql => Protocol::Mysql,
        }
    }

    /// The server's usual port, for the `targets add` hint.
    fn server_port(self) -> u16 {
        match self {
            DbKind::Postgres => 5432,
            DbKind::Mysql => 3306,
        }
    }

    /// How a user's client connects through the gateway at `host:port`.
    fn connect_hint(self, host: &str, port: u16) -> String {
        match self {
            DbKind::Postgres => format!(
                "psql \"host={host} port={port} user=admin+TARGET dbname=DATABASE sslmode=require\""
            ),
            DbKind::Mysql => format!("mariadb --ssl -h {host} -P {port} -u admin+TARGET -p"),
        }
    }
}

/// A started database gateway.
pub struct RunningDb {
    /// Which one.
    pub kind: DbKind,
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

impl RunningDb {
    /// Ends every session cleanly and stops.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task
            .await
            .with_context(|| format!("{} gateway task", self.kind.name()))??;
        Ok(())
    }

    /// What `psm up` prints of it (`psm`: how to run the CLI).
    pub fn describe(&self, psm: &str) -> String {
        let kind = self.kind;
        let host = if self.addr.ip().is_unspecified() {
            "localhost".to_owned()
        } else {
            self.addr.ip().to_string()
        };
        let rules = match self.rules {
            Some(n) => format!("{n} rules"),
            None => format!(
                "none (set [policy] file, or [{}] default_rules = true)",
                kind.key()
            ),
        };
        format!(
            "  {} gateway: {} (certificate {}, {}{})\n    connect:  {}\n    add a target: {psm} \
             targets add NAME --protocol {} --host HOST --port {} --user ACCOUNT \
             --password-stdin\n    query policy: {rules}",
            kind.name(),
            self.addr,
            self.cert.display(),
            self.fingerprint,
            if self.cert_created {
                ", new, self-signed"
            } else {
                ""
            },
            kind.connect_hint(&host, self.addr.port()),
            kind.key(),
            kind.server_port(),
        )
    }
}

/// The command policy for database sessions: `[policy] file`'s rules, then the built-in
/// query rules when the section's `default_rules` is set.
pub(crate) fn policy(
    policy: &PolicySection,
    default_rules: bool,
) -> anyhow::Result<Option<crate::config::LoadedPolicy>> {
    if default_rules {
        policy.load_with(psm_proxy_db::classify::default_rules())
    } else {
        policy.load()
    }
}

/// Starts the `kind` gateway with files under `data` unless the section names others.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    kind: DbKind,
    section: &DbSection,
    policy_section: &PolicySection,
    recording: &RecordingSection,
    data: &Path,
    recordings: PathBuf,
    signing_key: &Path,
    control_plane: Arc<dyn ControlPlane>,
    directory: Arc<dyn UserDirectory>,
    registry: SessionRegistry,
    default_instance: &str,
) -> anyhow::Result<RunningDb> {
    let key_name = kind.key();
    let (cert, key) = match (&section.tls_cert, &section.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        (None, None) => (
            data.join(key_name).join("gateway.crt"),
            data.join(key_name).join("gateway.key"),
        ),
        _ => anyhow::bail!("{key_name}.tls_cert and {key_name}.tls_key go together"),
    };
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let identity = load_or_create_certificate(&cert, &key, &names)
        .with_context(|| format!("[{key_name}] certificate"))?;
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
    .for_protocol(kind.protocol())
    // A database target's certificate is checked when the vault pins it (host_key);
    // otherwise `target_tls` decides, unverified, as libpq's sslmode=require.
    .with_unpinned_accepted(true);

    let listen = section.listen_or(kind.default_listen());
    let mut config = PostgresGatewayConfig::new(listen, instance.clone());
    config.tls = Some(identity.config.clone());
    config.require_tls = section.require_tls;
    config.target_tls = section
        .target_tls
        .parse()
        .map_err(|e| anyhow::anyhow!("{key_name}.target_tls: {e}"))?;
    config.max_sessions = section.max_sessions;

    // The same recorder as the SSH gateway's: same directory, signing key and recipients.
    let (signing, _) = load_or_create_signing_key(signing_key)?;
    let mut recorder_config = RecorderConfig::new(
        recordings,
        signing,
        format!("psm-{key_name}/{} {instance}", env!("CARGO_PKG_VERSION")),
    );
    recorder_config.writer.recipients = recording.recipients()?;
    recording.apply_limits(&mut recorder_config)?;
    let recorder = RecorderFactory::new(recorder_config)
        .with_recipients(Arc::new(ControlPlaneRecipients::new(control_plane.clone())));
    let mut taps: Vec<Arc<dyn TapFactory>> = vec![Arc::new(recorder)];
    let policy = policy(policy_section, section.default_rules)?;
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
    let bound = || format!("binding {listen} ([{key_name}] listen)");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let (addr, task) = match kind {
        DbKind::Postgres => {
            let gateway = PostgresGateway::bind(config, deps)
                .await
                .with_context(bound)?;
            (gateway.local_addr(), tokio::spawn(gateway.run(shutdown)))
        }
        DbKind::Mysql => {
            let gateway = MysqlGateway::bind(config, deps).await.with_context(bound)?;
            (gateway.local_addr(), tokio::spawn(gateway.run(shutdown)))
        }
    };
    Ok(RunningDb {
        kind,
        addr,
        cert,
        fingerprint: identity.fingerprint,
        cert_created: identity.created,
        rules,
        stop,
        task,
    })
}
