//! `psm-rdp-gateway`: the RDP gateway process. Users run
//! `xfreerdp /v:gateway:3390 /u:USER+TARGET /p:PSM-PASSWORD /sec:tls`; the gateway checks
//! them against the node's user directory, logs in to the target with the vaulted
//! credential, records the session into DATA/recordings, and reports it to the control
//! plane: the node in the data directory (DATA/psm.db, DATA/vault.key: the same layout as
//! `psm-gateway`), or a remote one over HTTPS with the gateway role's API key.
//!
//! ```text
//! psm-rdp-gateway --data ./psm-data --listen 0.0.0.0:3390 \
//!     --cert gw.crt --key gw.key [--web-listen 127.0.0.1:8390] [--live-listen 127.0.0.1:2224]
//! psm-rdp-gateway --data ./gw-data --control-plane https://cp.example:8443 \
//!     --api-key-file gateway.key [--ca-file cp-ca.pem] --cert gw.crt --key gw.key
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use psm_core::clock::SystemClock;
use psm_core::store::SqliteStore;
use psm_core::vault::{DirectoryPolicy, Keyring, MasterKey, PamSettings, Vault, VaultConfig};
use psm_core::{ControlPlane, Engine, EngineConfig, LocalControlPlane, ProcessInstance};
use psm_proxy::live::{LiveDeps, LiveServerConfig, LiveService};
use psm_proxy::{ControlPlaneTargets, SessionRegistry};
use psm_proxy_rdp::recorder::{DirRecordings, writer_config};
use psm_proxy_rdp::tls::ServerIdentity;
use psm_proxy_rdp::{RdpGateway, RdpGatewayConfig, RdpGatewayDeps};

#[derive(Parser)]
#[command(name = "psm-rdp-gateway", version, about = "PSM RDP gateway")]
struct Args {
    /// The node's data directory (psm.db, vault.key, recordings, keys).
    #[arg(long, env = "PSM_DATA", default_value = "./psm-data")]
    data: PathBuf,
    /// Where native RDP clients connect.
    #[arg(long, default_value = "127.0.0.1:3390")]
    listen: SocketAddr,
    /// Where browsers connect (websocket); unset: no browser access.
    #[arg(long)]
    web_listen: Option<SocketAddr>,
    /// Where the live listener listens: the admin web UI's Watch and Join with control of
    /// this gateway's sessions (docs/live.md); unset: no live viewing. It is advertised to the
    /// control plane, which sends Pause, Lock and Terminate through the same link.
    #[arg(long)]
    live_listen: Option<SocketAddr>,
    /// The URL browsers reach the live listener at (`wss://gw.example.com:2224`); default
    /// `ws://` (`wss://` with `--live-cert`) and the listen address.
    #[arg(long, requires = "live_listen")]
    live_public_url: Option<String>,
    /// An origin allowed to open live sessions (the admin web UI's, e.g.
    /// `http://127.0.0.1:8080`); repeat for several.
    #[arg(long = "live-allowed-origin", requires = "live_listen")]
    live_allowed_origins: Vec<String>,
    /// A certificate chain (PEM) for `wss://` on the live listener; with `--live-key`.
    #[arg(long, requires_all = ["live_listen", "live_key"])]
    live_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "live_cert")]
    live_key: Option<PathBuf>,
    /// The gateway's TLS certificate (PEM).
    #[arg(long)]
    cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// This gateway's process instance name.
    #[arg(long, default_value = "rdp-gateway-1")]
    process_instance: String,
    /// Accept a target certificate when the vault has no pin for it; such a target is logged
    /// in to with NLA only (its certificate proves nothing, so the password never goes in a
    /// TLS-only login's Client Info PDU).
    #[arg(long)]
    allow_unpinned_targets: bool,
    /// How long each session's credential checkout lasts, in minutes.
    #[arg(long, default_value_t = 480)]
    checkout_minutes: u64,
    /// Between heartbeats, in seconds.
    #[arg(long, default_value_t = 10)]
    heartbeat_seconds: u64,
    /// With a remote control plane: seconds between the screenshots pushed to it
    /// (savescreenshot); 0: none (the recording keeps its own keyframes either way).
    #[arg(long, default_value_t = 30)]
    screenshot_seconds: u64,
    /// Let native clients copy and paste text to and from the target (bridged, size-limited
    /// and recorded; denied by default).
    #[arg(long)]
    allow_clipboard: bool,
    /// What of the keyboard each recording keeps: `redact-passwords` (keys as typed, except
    /// while a password is probably being typed: after Win+L or Ctrl+Alt+Del/End until
    /// Return), `record-all`, or `redact-all` (only that keys were pressed). Clicks are
    /// recorded either way, and the target account's password never is.
    #[arg(long, default_value = "redact-passwords", value_parser = psm_proxy_rdp::config::keystroke_policy)]
    keystrokes: psm_recording::InputPolicy,
    /// The largest clipboard text passed, in bytes (larger pastes are refused).
    #[arg(long, default_value_t = 1 << 20)]
    max_clipboard_bytes: usize,
    /// Give each session's target a drive held by the gateway (`DATA/drives/SESSION/`, shown
    /// as `PSM`): files placed there can be opened on the target, files written there stay;
    /// every file is recorded. Denied by default. The user's own drives are never relayed.
    #[arg(long)]
    allow_drive: bool,
    /// Give each session's target a printer held by the gateway (`PSM Printer`, for Windows
    /// targets): each print job is saved as `DATA/drives/SESSION/print-NNN.ps` and recorded.
    /// Denied by default.
    #[arg(long)]
    allow_printer: bool,
    /// The command-policy file (TOML, docs/policy.md): its transfer rules judge every file
    /// the target reads from or writes to the session drive (`PSM/...`), every print job,
    /// every file the browser page moves, and every clipboard paste (path `clipboard`),
    /// before a byte moves; live actions and alerts are reported as for SSH. A file that
    /// does not parse stops the start.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// The most bytes a target may write to its session drive (print jobs included), in MiB.
    #[arg(long, default_value_t = 1024)]
    drive_max_mib: u64,
    /// Stop (ending every session cleanly) when the process that started this one exits:
    /// `psm up` runs the gateway this way, so a `psm up` killed with SIGKILL leaves no
    /// gateway behind.
    #[arg(long)]
    exit_with_parent: bool,
    /// A remote control plane (`https://host:port`); unset: the node in the data directory.
    /// Users, targets and credentials then come from it (VerifyUser, GetCredential), and
    /// the data directory holds only recordings and the recording signing key.
    #[arg(long, env = "PSM_CONTROL_PLANE")]
    control_plane: Option<String>,
    /// The gateway role's API key file for the remote control plane (DATA/keys/gateway.key
    /// on the control plane's node).
    #[arg(long, requires = "control_plane")]
    api_key_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for the control plane, beside the system's roots.
    #[arg(long, requires = "control_plane")]
    ca_file: Option<PathBuf>,
    /// Allow `http://` to a non-loopback control plane (behind a TLS-terminating proxy only;
    /// plain HTTP to a loopback address is always allowed).
    #[arg(long, requires = "control_plane")]
    allow_plain_http: bool,
}

/// The control plane and user directory: remote over HTTP (with the artifact endpoints),
/// or the node in DATA.
async fn control_plane(
    args: &Args,
) -> anyhow::Result<(
    Arc<dyn ControlPlane>,
    Arc<dyn psm_core::directory::UserDirectory>,
    Option<Arc<dyn psm_proxy_rdp::artifacts::ArtifactPush>>,
)> {
    if let Some(url) = &args.control_plane {
        let mut config = psm_client::ClientConfig::new(url.clone());
        config.allow_plain_http = args.allow_plain_http;
        if let Some(path) = &args.api_key_file {
            let key = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            config = config.with_api_key(key.trim());
        }
        if let Some(path) = &args.ca_file {
            config.root_ca_pem =
                Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
        }
        let client = psm_client::Client::new(config).context("the control plane's address")?;
        client
            .ready()
            .await
            .with_context(|| format!("the control plane at {url} is not ready"))?;
        return Ok((
            Arc::new(psm_client::HttpControlPlane::new(client.clone())),
            Arc::new(psm_client::HttpDirectory::new(client.clone())),
            Some(Arc::new(HttpArtifacts { client })),
        ));
    }
    let store = SqliteStore::open(args.data.join("psm.db"))
        .await
        .context("opening DATA/psm.db")?;
    let key_path = args.data.join("vault.key");
    // The vault's master key: refused if others may read it (issue 17 L7), as the node does.
    if let Ok(meta) = std::fs::metadata(&key_path)
        && psm_core::files::readable_by_others(&meta)
    {
        anyhow::bail!(
            "{} may be read by others: `chmod 600 {}` and start again",
            key_path.display(),
            key_path.display()
        );
    }
    let key_text = std::fs::read_to_string(&key_path).context(
        "reading DATA/vault.key (start the control plane once, or `psm up`, to create it)",
    )?;
    let master = MasterKey::parse(key_text.trim()).context("DATA/vault.key")?;
    // TOTP secrets are sealed with the vault's keyring: the directory needs it to check them.
    let store = store.with_totp_keyring(Keyring::new(master.clone()));
    let engine = Engine::new(
        Arc::new(store.clone()),
        Arc::new(SystemClock),
        EngineConfig::default(),
    );
    let directory: Arc<dyn psm_core::directory::UserDirectory> = Arc::new(store.clone());
    let vault = Vault::new(
        Arc::new(store.clone()),
        Keyring::new(master),
        engine.clone(),
        VaultConfig::default(),
    )
    .with_policy(Arc::new(DirectoryPolicy::new(directory.clone())));
    let cp: Arc<dyn ControlPlane> = Arc::new(LocalControlPlane::new(
        engine,
        vault,
        PamSettings::default(),
    ));
    Ok((cp, directory, None))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // ironrdp logs PDUs at debug/trace level; keep it at info so nothing sensitive is printed
    // unless an operator asks for it explicitly.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ironrdp=warn,ironrdp_server=warn,sspi=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("creating {}", args.data.display()))?;

    let (cp, directory, artifacts) = control_plane(&args).await?;

    let pi = ProcessInstance::new(args.process_instance)?;
    let mut config = RdpGatewayConfig::new(args.listen, pi.clone());
    config.heartbeat_interval = Duration::from_secs(args.heartbeat_seconds.max(1));
    config.screenshot_interval = Duration::from_secs(args.screenshot_seconds);
    config.channels.clipboard = args.allow_clipboard;
    config.recording.keystrokes = args.keystrokes;
    config.limits.max_clipboard_bytes = args.max_clipboard_bytes;
    if args.allow_drive || args.allow_printer {
        let mut drive = psm_proxy_rdp::drive::DriveConfig::new(args.data.join("drives"));
        drive.max_bytes = args.drive_max_mib.saturating_mul(1 << 20);
        config.channels.drives = args.allow_drive;
        config.channels.printers = args.allow_printer;
        config.drive = Some(drive);
    }
    let signing_path = args.data.join("keys").join("recording-signing.key");
    let (signing, _) = psm_proxy::record::load_or_create_signing_key(&signing_path)?;
    // The node's encoder encodes only recordings of registered gateways (M12): register this
    // key under the process instance, as the SSH gateway does.
    psm_recording::layout::LocalLayout::new(&args.data)
        .gateway_signers()
        .register(config.process_instance.as_str(), &signing.verifying_key())
        .with_context(|| {
            format!(
                "registering the recording key of gateway {}",
                config.process_instance
            )
        })?;
    // PSMEncryptionKey: recordings are encrypted for the control plane's recipient key. It is
    // read once at start (a changed key applies from the next start); a gateway that cannot
    // read it does not start, rather than record in clear text.
    let mut writer = writer_config(&config.recording);
    let settings = cp.pam_settings().await.context(
        "reading GetPAMSettings (PSMEncryptionKey) from the control plane; not starting rather \
         than recording unencrypted",
    )?;
    if let Some(key) = settings.encryption_key {
        writer
            .recipients
            .push(psm_recording::RecipientPublic::from_bytes(*key.as_bytes()));
        println!("recordings encrypted for PSMEncryptionKey {key}");
    }
    let recordings = DirRecordings::new(args.data.join("recordings"), signing, writer);
    let cp_live = cp.clone();
    let taps: Arc<dyn psm_proxy::TapFactory> = match &args.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the policy {}", path.display()))?;
            let policy = psm_core::policy::Policy::from_toml(&text)
                .with_context(|| format!("the policy {}", path.display()))?;
            println!(
                "command policy {} ({} rules; RDP drive, printer and clipboard transfers)",
                path.display(),
                policy.len()
            );
            Arc::new(psm_proxy::policy_tap::PolicyTapFactory::new(
                policy,
                directory.clone(),
                psm_proxy::policy_tap::Enforcement::default(),
            ))
        }
        None => Arc::new(psm_proxy::NoTaps),
    };
    let deps = RdpGatewayDeps {
        control_plane: cp.clone(),
        directory,
        targets: Arc::new(
            ControlPlaneTargets::new(
                cp,
                pi,
                Duration::from_secs(args.checkout_minutes.max(1) * 60),
            )
            .for_protocol(psm_core::Protocol::Rdp)
            .with_unpinned_accepted(args.allow_unpinned_targets),
        ),
        recordings: Arc::new(recordings),
        registry: SessionRegistry::new(),
        launch: psm_proxy_rdp::launch::LaunchTokens::new(),
        artifacts,
        taps,
    };
    let identity = ServerIdentity::from_pem_files(&args.cert, &args.key)?;
    println!("certificate sha256 {}", identity.fingerprint);
    if let Some(web) = args.web_listen {
        let mut web =
            psm_proxy_rdp::web::WebGateway::bind(web, config.clone(), deps.clone()).await?;
        // The page carries PSM passwords: HTTPS with the gateway's certificate anywhere but
        // on a loopback address (where a TLS-terminating proxy or the local user sits).
        let scheme = if web.local_addr().ip().is_loopback() {
            "http"
        } else {
            web = web.with_tls(identity.acceptor.clone());
            "https"
        };
        println!("browser access on {scheme}://{}/", web.local_addr());
        tokio::spawn(async move {
            if let Err(e) = web.run(std::future::pending()).await {
                tracing::error!(error = %e, "the browser gateway stopped");
            }
        });
    }
    let live = match args.live_listen {
        Some(listen) => {
            let mut live_config = LiveServerConfig::new(listen, config.process_instance.clone());
            live_config.allowed_origins = args.live_allowed_origins.clone();
            if let (Some(cert), Some(key)) = (&args.live_cert, &args.live_key) {
                let tls = ServerIdentity::from_pem_files(cert, key)?;
                live_config.tls = Some(tls.acceptor.config().clone());
            }
            let service = LiveService::start(
                live_config,
                LiveDeps {
                    control_plane: cp_live.clone(),
                    registry: deps.registry.clone(),
                    // The browser terminal is the SSH gateway's.
                    terminals: None,
                },
                args.live_public_url.clone(),
            )
            .await
            .context("starting the live listener (--live-listen)")?;
            println!("live listener on {}", service.url());
            Some(service)
        }
        None => None,
    };
    let gateway = RdpGateway::bind(config, identity, deps).await?;
    println!("PSM RDP gateway on {}", gateway.local_addr());
    let supervisor = args
        .exit_with_parent
        .then(rustix::process::getppid)
        .flatten();
    gateway
        .run(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = parent_gone(supervisor) => {
                    eprintln!("the supervising process is gone: stopping");
                }
            }
        })
        .await?;
    if let Some(live) = live {
        live.stop().await;
    }
    Ok(())
}

/// Resolves once this process's parent is no longer `parent` (it died and this process was
/// handed to init or a subreaper); never when `parent` is `None`.
async fn parent_gone(parent: Option<rustix::process::Pid>) {
    let Some(parent) = parent else {
        return std::future::pending().await;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if rustix::process::getppid() != Some(parent) {
            return;
        }
    }
}

/// The control plane's `savescreenshot` and `saveclipboard` endpoints (gateway role): where a
/// remote gateway pushes screenshots and clipboard text beside the recording.
struct HttpArtifacts {
    client: psm_client::Client,
}

fn failed(what: &str, e: psm_client::ClientError) -> psm_proxy_rdp::RdpError {
    psm_proxy_rdp::RdpError::Session(format!("{what}: {e}"))
}

#[async_trait::async_trait]
impl psm_proxy_rdp::artifacts::ArtifactPush for HttpArtifacts {
    async fn screenshot(
        &self,
        session: psm_core::SessionId,
        png: Vec<u8>,
    ) -> Result<(), psm_proxy_rdp::RdpError> {
        use base64::Engine as _;
        let image = format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(png)
        );
        self.client
            .save_screenshot(session, image)
            .await
            .map(|_| ())
            .map_err(|e| failed("savescreenshot", e))
    }

    async fn clipboard(
        &self,
        session: psm_core::SessionId,
        text: String,
    ) -> Result<(), psm_proxy_rdp::RdpError> {
        self.client
            .save_clipboard(session, text)
            .await
            .map(|_| ())
            .map_err(|e| failed("saveclipboard", e))
    }
}
