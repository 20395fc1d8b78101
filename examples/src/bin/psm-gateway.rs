//! `psm-gateway`: one SSH gateway process. Users run `ssh USER+TARGET@gateway`; the gateway
//! authenticates them against the user directory, logs in to the target with the vaulted
//! credential, records every channel, and reports the session to the control plane (in this
//! process over the node's database, or remote over HTTP). See docs/ssh-gateway.md.
//!
//! ```text
//! psm-gateway --config /etc/psm/gateway.toml
//! psm-gateway --data ./psm-data --listen 0.0.0.0:2222
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use psm_core::ControlPlane;
use psm_core::directory::UserDirectory;
use psm_core::store::{PostgresOptions, PostgresStore, SqliteStore};

// The one configuration type: this program reads the gateway's sections of it.
#[allow(dead_code)]
#[path = "psm/config.rs"]
mod config;
#[path = "psm/gateway.rs"]
mod gateway;
#[path = "psm/remote.rs"]
mod remote;

use config::{ConfFile, DirectorySection};

#[derive(Parser)]
#[command(name = "psm-gateway", version, about = "PSM SSH gateway")]
struct Args {
    /// The configuration file (docs/configuration.md: the same file as `psm up`'s; this
    /// program reads [ssh], [live], [policy], [recording], [control_plane], [directory]).
    /// Flags override it.
    #[arg(long, env = "PSM_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// The node's data directory (host key, recordings, local control plane).
    #[arg(long, env = "PSM_DATA")]
    data: Option<PathBuf>,
    /// Where users connect.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// This gateway's process instance name.
    #[arg(long)]
    process_instance: Option<String>,
    /// Where the live listener (watch, join, browser terminal) listens (`[live] listen`).
    #[arg(long)]
    live_listen: Option<SocketAddr>,
    /// The command-policy file (`[policy] file`).
    #[arg(long)]
    policy: Option<PathBuf>,
}

async fn open_directory(
    cfg: &DirectorySection,
    data: &Path,
) -> anyhow::Result<Arc<dyn UserDirectory>> {
    let url = cfg
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", data.join("psm.db").display()));
    if let Some(path) = url.strip_prefix("sqlite:") {
        return Ok(Arc::new(
            SqliteStore::open(path)
                .await
                .with_context(|| format!("opening the user directory {path}"))?,
        ));
    }
    let mut options = PostgresOptions::new(url);
    options.schema = cfg.schema.clone();
    Ok(Arc::new(
        PostgresStore::connect(&options)
            .await
            .context("connecting to the user directory")?,
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut file = match &args.config {
        Some(path) => ConfFile::load(path)?,
        None => ConfFile::default(),
    };
    if let Some(l) = args.listen {
        file.ssh.listen = l;
    }
    if let Some(p) = args.process_instance {
        file.ssh.process_instance = p;
    }
    if let Some(l) = args.live_listen {
        file.live.listen = l;
    }
    if let Some(p) = args.policy {
        file.policy.file = Some(p);
    }
    let data = args
        .data
        .or(file.data.clone())
        .unwrap_or_else(|| PathBuf::from("./psm-data"));
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;

    let mut node = None;
    // With a remote control plane and no [directory] database, users are checked through the
    // control plane's directory (VerifyUser): the gateway holds no database credentials and
    // never sees a password hash or a TOTP secret.
    let mut remote_directory = None;
    let mut remote_client = None;
    let (control_plane, vault): (Arc<dyn ControlPlane>, _) = match &file.control_plane.url {
        Some(url) => {
            let mut config = psm_client::ClientConfig::new(url.clone());
            config.allow_plain_http = file.control_plane.allow_plain_http;
            if let Some(path) = &file.control_plane.api_key_file {
                let key = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                config = config.with_api_key(key.trim());
            }
            let client = psm_client::Client::new(config)?;
            if file.directory.database.is_none() {
                remote_directory = Some(psm_client::HttpDirectory::new(client.clone()));
            }
            remote_client = Some(client.clone());
            (Arc::new(psm_client::HttpControlPlane::new(client)), None)
        }
        None => {
            let mut options = psm_server::node::NodeOptions::new(&data);
            options.database = file.control_plane.database.clone();
            let n = psm_server::node::open(options)
                .await
                .with_context(|| format!("opening the node in {}", data.display()))?;
            let cp = n.control_plane.clone();
            let vault = cp.vault().clone();
            node = Some(n);
            (Arc::new(cp), Some(vault))
        }
    };
    let directory: Arc<dyn UserDirectory> = match remote_directory {
        // The control plane created its first administrator when it first started.
        Some(remote) => Arc::new(remote),
        None => {
            let directory = open_directory(&file.directory, &data).await?;
            if let Some(password) = gateway::ensure_first_admin(directory.as_ref()).await? {
                println!("First start: created user admin with password {password} (shown once).");
            }
            directory
        }
    };
    let extras = gateway::GatewayExtras {
        live: &file.live,
        web_origins: Vec::new(),
        policy: &file.policy,
        recording: &file.recording,
    };
    let running =
        gateway::start(&file.ssh, &extras, &data, control_plane, directory, vault).await?;
    if let Some(client) = &remote_client {
        // The control plane's web UI trusts only registered gateways' recordings (M12).
        remote::register_signer(
            client,
            &file.ssh.process_instance,
            psm_client::wire::SignerKind::Gateway,
            &running.recording_key,
        )
        .await?;
    }
    println!(
        "PSM SSH gateway on {} (host key {}{})",
        running.addr,
        running.fingerprint,
        if running.host_key_created {
            ", new"
        } else {
            ""
        }
    );
    println!("Connect with: {}", gateway::ssh_line(running.addr, "USER"));
    if let Some(url) = &running.live_url {
        println!("Live listener (watch, join, browser terminal): {url}");
    }
    if let Some(n) = running.policy_rules {
        println!("Command policy: {n} rules");
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    running.stop().await?;
    if let Some(n) = node {
        n.close().await;
    }
    Ok(())
}
