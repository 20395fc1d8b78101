//! `psm up`: the all-in-one node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use psm_server::node::NodeOptions;
use psm_server::{Server, ServerConfig};

#[derive(clap::Args)]
pub struct UpArgs {
    /// Where the database, keys and recordings live.
    #[arg(long, default_value = "./psm-data", env = "PSM_DATA")]
    data: PathBuf,
    /// Seconds between watchdog (and checkout-expiry) sweeps.
    #[arg(long, default_value_t = 10)]
    watchdog_interval: u64,
    /// Where the control-plane API (secureaccessgateway) listens; loopback only.
    #[arg(long, default_value = "127.0.0.1:8080")]
    api_listen: SocketAddr,
    /// Where the SSH gateway listens (users run `ssh -p PORT USER+TARGET@HOST`).
    #[arg(long, default_value = "0.0.0.0:2222")]
    ssh_listen: SocketAddr,
    /// Where the uploader stores finished recordings (default: DATA/store).
    #[command(flatten)]
    store: crate::pipeline::StoreArgs,
    /// SIEM streaming of the audit log (syslog/CEF, webhooks).
    #[command(flatten)]
    siem: crate::siem::SiemArgs,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let interval = Duration::from_secs(args.watchdog_interval.max(1));
    let data = args.data;
    anyhow::ensure!(
        args.api_listen.ip().is_loopback(),
        "psm up serves plain HTTP: --api-listen must be a loopback address (use psm-controlplane with TLS otherwise)"
    );
    let mut node = psm_server::node::open(NodeOptions::new(&data))
        .await
        .with_context(|| format!("opening the node in {}", data.display()))?;
    // The in-process control plane the services below share (a `dyn psm_core::ControlPlane`).
    let control_plane = node.control_plane.clone();

    let api_listener = tokio::net::TcpListener::bind(args.api_listen)
        .await
        .with_context(|| format!("binding {}", args.api_listen))?;
    // The store replay reads from is the one the uploader writes to (GetPAMSettings or --store).
    let pam = crate::pipeline::pam_settings(&control_plane).await?;
    let web_store = psm_storage::open(&args.store.config(&data, pam.as_ref())?)?;
    let api = Server::new(
        control_plane.clone(),
        std::mem::take(&mut node.keys),
        node.artifacts.clone(),
        ServerConfig {
            sweep_interval: interval,
            ..ServerConfig::default()
        },
    )
    .with_directory(node.directory.clone())
    // The admin web UI (docs/web.md) on the same listener: replay reads the local recordings
    // and, once uploaded, the store.
    .with_web(psm_server::web::WebConfig {
        store: Some(web_store),
        ..psm_server::web::WebConfig::for_data_dir(&data)
    })
    .start(api_listener, None)?;

    // SSH gateway: users, keys and roles live in the same SQLite file (docs/ssh-gateway.md).
    let directory: Arc<dyn psm_core::directory::UserDirectory> = Arc::new(
        psm_core::store::SqliteStore::open(data.join("psm.db"))
            .await
            .context("opening the user directory")?,
    );
    let first_admin = crate::gateway::ensure_first_admin(directory.as_ref()).await?;
    let ssh_options = crate::gateway::GatewayOptions {
        listen: args.ssh_listen,
        ..Default::default()
    };
    let vault = control_plane.vault().clone();
    let ssh = crate::gateway::start(
        &ssh_options,
        &data,
        Arc::new(control_plane.clone()),
        directory,
        Some(vault),
    )
    .await
    .context("starting the SSH gateway")?;

    // SIEM: the audit log streamed to syslog/CEF and webhooks (docs/siem.md).
    let siem = args
        .siem
        .start(control_plane.engine().store().clone(), &data)?;

    // Encoder and uploader: Ended -> Done-Encoded -> Done-Uploaded (docs/deployment.md).
    let workers =
        crate::pipeline::start_workers(Arc::new(control_plane.clone()), &data, &args.store)
            .await
            .context("starting the encoder and uploader")?;

    println!("PSM is up.");
    println!("  lifecycle engine + watchdog: {}", node.database);
    println!("  watchdog sweeps every {}s", interval.as_secs());
    println!(
        "  control-plane API: {} (API keys in {}/keys/ROLE.key)",
        api.url(),
        data.display()
    );
    println!(
        "  admin web UI: {}/ui/ (log in as a directory user with role admin)",
        api.url()
    );
    println!(
        "  SSH gateway: {} (host key {}{})",
        ssh.addr,
        ssh.fingerprint,
        if ssh.host_key_created { ", new" } else { "" }
    );
    println!(
        "    connect:  {}",
        crate::gateway::ssh_line(ssh.addr, "admin")
    );
    if let Some(password) = &first_admin {
        println!(
            "    first admin: user admin, password {password} (shown once; change it with `psm users passwd admin`)"
        );
    }
    println!(
        "    add a target: psm targets add NAME --host HOST --user ACCOUNT --password-stdin --scan"
    );
    println!("    recordings:   {}", data.join("recordings").display());
    println!(
        "  encoder + uploader: exports in {}, stored in {}",
        data.join("exports").display(),
        workers.store
    );
    if let Some((_, describe)) = &siem {
        println!("  SIEM: {describe}");
    }
    println!("Press Ctrl-C to stop.");

    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    ssh.stop().await.context("stopping the SSH gateway")?;
    workers.stop().await;
    if let Some((handle, _)) = siem {
        handle.shutdown().await;
    }
    api.stop().await;
    node.close().await;
    println!("PSM stopped.");
    Ok(())
}
