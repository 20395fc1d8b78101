//! `psm-controlplane`: the reference `secureaccessgateway` service and the admin web UI over
//! every gateway's sessions (`/ui/`, docs/web.md). Argument parsing and assembly only: the
//! service is `psm_server`, the data-directory layout `psm_server::node`.
//!
//! ```text
//! psm-controlplane --listen 127.0.0.1:8080 --data /var/lib/psm
//! psm-controlplane --listen 0.0.0.0:8443 --data /var/lib/psm --database postgres://psm@db/psm \
//!     --tls-cert server.pem --tls-key server.key \
//!     --storage-mode AWS --storage-location s3://recordings/psm   # where uploaders store; replay reads it
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use psm_core::vault::{PamSettings, Secret};
use psm_server::node::{MasterKeySource, NodeOptions};
use psm_server::{Principal, Role, Server, ServerConfig, TlsSettings};

#[derive(Parser)]
#[command(
    name = "psm-controlplane",
    version,
    about = "PSM's secureaccessgateway control plane"
)]
struct Args {
    /// The configuration file `psm up` reads (docs/configuration.md): this program takes
    /// `data`, `[api]` (listen, TLS) and `[settings]` from it. Flags override it.
    #[arg(long, env = "PSM_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080). Anything but loopback needs TLS (or
    /// --insecure-http).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory: SQLite database, vault key, API keys (DIR/keys/ROLE.key), artifacts
    /// (default ./psm-data).
    #[arg(long, env = "PSM_DATA")]
    data: Option<PathBuf>,
    /// PostgreSQL URL (postgres://...) instead of SQLite in the data directory.
    #[arg(long, env = "PSM_DATABASE")]
    database: Option<String>,
    /// PostgreSQL schema to use (created if missing).
    #[arg(long)]
    schema: Option<String>,
    /// Vault master key file (default DIR/vault.key, generated on first start; refused if its
    /// group or others may read it). The key as text is taken from the environment variable
    /// PSM_MASTER_KEY only, which takes precedence over the file; never from the command line.
    #[arg(long)]
    master_key_file: Option<PathBuf>,
    /// A previous master key file (repeatable): credentials sealed under it are re-sealed
    /// under the current key at start.
    #[arg(long)]
    previous_master_key_file: Vec<PathBuf>,
    /// Server certificate chain (PEM); with --tls-key, serves HTTPS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA of accepted client certificates (mTLS).
    #[arg(long, requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// A client certificate and its role, ROLE=CERT.pem, or the process instance it alone
    /// may act as, ROLE:INSTANCE=CERT.pem (repeatable; needs --client-ca).
    #[arg(long, requires = "client_ca")]
    client_cert: Vec<String>,
    /// Refuse the shared gateway, encoder and uploader keys (DATA/keys/ROLE.key): accept
    /// only keys issued to one process instance (`psm keys issue`) and the admin key.
    #[arg(long)]
    no_shared_role_keys: bool,
    /// Most open sessions one user may have at once across every gateway (0: no cap;
    /// default `[api] max_sessions_per_user`).
    #[arg(long)]
    max_sessions_per_user: Option<u32>,
    /// Serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy only).
    #[arg(long)]
    insecure_http: bool,
    /// Seconds between watchdog / checkout-expiry sweeps.
    #[arg(long, default_value_t = 10)]
    sweep_interval: u64,
    /// Largest request body in bytes (larger: 413).
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    body_limit: usize,
    /// A reverse proxy whose X-Forwarded-For GetIP trusts (repeatable).
    #[arg(long)]
    trusted_proxy: Vec<IpAddr>,
    /// Seconds without Polling before the watchdog ends a Connected session.
    #[arg(long, default_value_t = 90)]
    connected_stale_after: u64,
    /// Seconds a worker's lease lasts without Polling.
    #[arg(long, default_value_t = 60)]
    lease_ttl: u64,
    /// PSMStorageMode: UNC, AWS or Azure.
    #[arg(long, default_value = "UNC")]
    storage_mode: String,
    /// PSMStorageLocation (extension): where uploaders store recordings for the mode, e.g.
    /// s3://bucket/prefix, az://account/container/prefix or a path (credentials stay with
    /// the uploaders).
    #[arg(long)]
    storage_location: Option<String>,
    /// PSMEncodingEnabled (default true).
    #[arg(long, action = clap::ArgAction::Set)]
    encoding_enabled: Option<bool>,
    /// PSMEncryptionKey: the recordings' recipient PUBLIC key, x25519:BASE64.
    #[arg(long)]
    encryption_key: Option<String>,
    /// PSMRecordKeyStrokes (default true).
    #[arg(long, action = clap::ArgAction::Set)]
    record_keystrokes: Option<bool>,
    /// Clipboard capture (default true).
    #[arg(long, action = clap::ArgAction::Set)]
    capture_clipboard: Option<bool>,
    /// Export formats encoders produce (repeatable).
    #[arg(long = "export-format")]
    export_formats: Vec<String>,
    /// SIEM streaming of the audit log (syslog/CEF, webhooks).
    #[command(flatten)]
    siem: siem::SiemArgs,
    /// Serve no admin web UI (`/ui/`), only the API.
    #[arg(long)]
    no_web: bool,
    /// The store the web UI replays uploaded recordings from: by default the one the
    /// uploaders write to (this control plane's PSMStorageLocation, else DATA/store);
    /// `--store` and the S3/Azure endpoint and credential flags as the uploader takes them.
    #[command(flatten)]
    store: pipeline::StoreArgs,
    /// Websocket base URL of a gateway's live listener (`ws://gw1:2223`) for the browser
    /// terminal and for sessions whose gateway advertised no live address of its own (each
    /// gateway with `[live]` advertises its own: Watch and Join go to the session's gateway).
    #[arg(long)]
    live_gateway: Option<String>,
    /// A host name the web UI answers to besides localhost and IP addresses (repeatable;
    /// adds to the configuration file's `[api] allowed_hosts`).
    #[arg(long)]
    allowed_host: Vec<String>,
    /// An origin accepted on the web UI's state-changing requests, e.g.
    /// `https://psm.example.com` behind a reverse proxy (repeatable).
    #[arg(long)]
    public_origin: Vec<String>,
}

// The uploader's store flags, so replay reads what the uploaders wrote.
#[path = "psm/pipeline.rs"]
mod pipeline;

#[path = "psm/siem.rs"]
mod siem;

// The one configuration type: this program reads data, [api] and [settings] of it.
#[allow(dead_code)]
#[path = "psm/config.rs"]
mod config;

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = Args::parse();
    let file = match &args.config {
        Some(path) => config::ConfFile::load(path)?,
        None => config::ConfFile::default(),
    };
    let data = args
        .data
        .clone()
        .or(file.data.clone())
        .unwrap_or_else(|| PathBuf::from("./psm-data"));
    let listen = args.listen.unwrap_or(file.api.listen);
    if args.tls_cert.is_none() && args.tls_key.is_none() {
        args.tls_cert = file.api.tls_cert.clone();
        args.tls_key = file.api.tls_key.clone();
    }
    if args.tls_cert.is_none() && !listen.ip().is_loopback() && !args.insecure_http {
        bail!(
            "{listen} is not a loopback address: serve TLS (--tls-cert/--tls-key) or pass \
             --insecure-http behind a TLS-terminating proxy"
        );
    }
    // The file's [settings] over the defaults, then the flags over both.
    let mut settings = file.settings.apply(PamSettings::default())?;
    settings.storage_mode = args.storage_mode.parse()?;
    if args.storage_location.is_some() {
        settings.storage_location = args.storage_location.clone();
    }
    if let Some(key) = &args.encryption_key {
        settings.encryption_key = Some(config::recipient_key(key, "--encryption-key")?);
    }
    if let Some(v) = args.encoding_enabled {
        settings.encoding_enabled = v;
    }
    if let Some(v) = args.record_keystrokes {
        settings.record_keystrokes = v;
    }
    if let Some(v) = args.capture_clipboard {
        settings.capture_clipboard = v;
    }
    if !args.export_formats.is_empty() {
        settings.export_formats = args.export_formats.clone();
    }
    let mut options = NodeOptions::new(&data);
    options.database = args.database.clone();
    options.schema = args.schema.clone();
    // The key as text comes from the environment only (PSM_MASTER_KEY): never on the command
    // line, where every user of the machine can read it (ps, /proc/PID/cmdline).
    let master_key_text = std::env::var("PSM_MASTER_KEY")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .map(Secret::new);
    options.master_key = match (master_key_text, &args.master_key_file) {
        (Some(text), _) => Some(MasterKeySource::Text(text)),
        (None, Some(path)) => Some(MasterKeySource::File(path.clone())),
        (None, None) => None,
    };
    options.previous_master_keys = args
        .previous_master_key_file
        .iter()
        .cloned()
        .map(MasterKeySource::File)
        .collect();
    options.engine.connected_stale_after = Duration::from_secs(args.connected_stale_after.max(1));
    options.engine.lease_ttl = Duration::from_secs(args.lease_ttl.max(1));
    options.engine.max_sessions_per_user = args
        .max_sessions_per_user
        .unwrap_or(file.api.max_sessions_per_user);
    options.engine.windows = file.access.windows()?;
    options.shared_role_keys = file.api.shared_role_keys && !args.no_shared_role_keys;
    let options_shared = options.shared_role_keys;
    options.settings = settings;
    let mut node = psm_server::node::open(options).await?;
    for path in &node.generated_keys {
        println!("generated API key {}", path.display());
    }
    if node.resealed > 0 {
        println!(
            "re-sealed {} credentials under the current master key",
            node.resealed
        );
    }

    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let mut client_principals = std::collections::HashMap::new();
            for spec in &args.client_cert {
                let (who, path) = spec
                    .split_once('=')
                    .context("--client-cert takes ROLE=CERT.pem or ROLE:INSTANCE=CERT.pem")?;
                let principal = match who.split_once(':') {
                    Some((role, instance)) => Principal::of_instance(
                        role.parse()?,
                        psm_server::auth::instance_name(instance)?,
                    ),
                    None => {
                        let role: Role = who.parse()?;
                        Principal::shared(format!("{role}-cert"), role)
                    }
                };
                for fp in psm_server::tls::pem_fingerprints(&read(&PathBuf::from(path))?)? {
                    client_principals.insert(fp, principal.clone());
                }
            }
            Some(TlsSettings {
                cert_chain_pem: read(cert)?,
                key_pem: Secret::new(read(key)?),
                client_ca_pem: args.client_ca.as_ref().map(read).transpose()?,
                client_principals,
            })
        }
        _ => None,
    };
    let config = ServerConfig {
        body_limit: args.body_limit,
        sweep_interval: Duration::from_secs(args.sweep_interval.max(1)),
        trusted_proxies: args.trusted_proxy.clone(),
        // Gateways and encoders on other nodes register their keys here (RegisterSigner),
        // in the registries this control plane's web UI trusts.
        signers_data_dir: Some(data.clone()),
        ..ServerConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let mut server = Server::new(
        node.control_plane.clone(),
        std::mem::take(&mut node.keys),
        node.artifacts.clone(),
        config,
    )
    .with_directory(node.directory.clone());
    // The admin web UI (docs/web.md) over every gateway's sessions: replay reads the store
    // the uploaders write to (the PSMStorageLocation this control plane hands them, or
    // --store), and the local directories of a shared data directory if there are any;
    // Watch and Join go to the live websocket each session's gateway advertised.
    let web_store = if args.no_web {
        None
    } else {
        let settings = node.control_plane.settings().clone();
        let store = psm_storage::open(&args.store.config(&data, Some(&settings))?)
            .context("opening the store the web UI replays from")?;
        let describe = store.describe();
        server = server.with_web(psm_server::web::WebConfig {
            store: Some(store),
            live_gateway: args.live_gateway.clone(),
            allowed_hosts: file
                .api
                .allowed_hosts
                .iter()
                .chain(&args.allowed_host)
                .cloned()
                .collect(),
            public_origins: args.public_origin.clone(),
            ..psm_server::web::WebConfig::for_data_dir(&data)
        });
        Some(describe)
    };
    let server = server.start(listener, tls.as_ref())?;
    println!("psm-controlplane listening on {}", server.url());
    if let Some(store) = &web_store {
        println!("  web UI: {}/ui/ (replay from {store})", server.url());
    }
    println!("  database: {}", node.database);
    println!(
        "  API keys: {}/keys/ROLE.key{}; per-instance keys: psm keys issue ROLE NAME",
        data.display(),
        if options_shared { "" } else { " (admin only)" }
    );
    let siem = args
        .siem
        .start(node.control_plane.engine().store().clone(), &data)?;
    if let Some((_, describe)) = &siem {
        println!("  SIEM: {describe}");
    }

    tokio::select! {
        r = tokio::signal::ctrl_c() => { r.context("waiting for Ctrl-C")?; }
        _ = terminate() => {}
    }
    println!("stopping");
    if let Some((handle, _)) = siem {
        handle.shutdown().await;
    }
    server.stop().await;
    node.close().await;
    Ok(())
}

#[cfg(unix)]
async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending().await
}
