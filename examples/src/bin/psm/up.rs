//! `psm up`: the all-in-one node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use psm_server::node::NodeOptions;

use crate::config::ConfFile;
use psm_server::{Server, ServerConfig};

#[derive(clap::Args)]
pub struct UpArgs {
    /// The configuration file (docs/configuration.md; psm.example.toml is a commented
    /// example). Flags override it.
    #[arg(long, env = "PSM_CONFIG")]
    config: Option<PathBuf>,
    /// Where the database, keys and recordings live (default ./psm-data).
    #[arg(long, env = "PSM_DATA")]
    data: Option<PathBuf>,
    /// Seconds between watchdog (and checkout-expiry) sweeps.
    #[arg(long, default_value_t = 10)]
    watchdog_interval: u64,
    /// Where the control-plane API and the admin web UI listen (`[api] listen`, default
    /// 127.0.0.1:8080); plain HTTP needs a loopback address.
    #[arg(long)]
    api_listen: Option<SocketAddr>,
    /// Where the SSH gateway listens (`[ssh] listen`, default 0.0.0.0:2222; users run
    /// `ssh -p PORT USER+TARGET@HOST`).
    #[arg(long)]
    ssh_listen: Option<SocketAddr>,
    /// Where the live listener (watch, join, browser terminal) listens (`[live] listen`,
    /// default 127.0.0.1:2223).
    #[arg(long)]
    live_listen: Option<SocketAddr>,
    /// No live listener (`[live] enabled = false`).
    #[arg(long)]
    no_live: bool,
    /// The command-policy file (`[policy] file`; docs/policy.md).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Where the RDP gateway listens (`[rdp] listen`, default 0.0.0.0:3390).
    #[arg(long)]
    rdp_listen: Option<SocketAddr>,
    /// Where browsers open RDP sessions (`[rdp] web_listen`, default 127.0.0.1:8390).
    #[arg(long)]
    rdp_web_listen: Option<SocketAddr>,
    /// Where the RDP gateway's live listener listens: Watch and Join with control of RDP
    /// sessions (`[rdp] live_listen`, default 127.0.0.1:2224).
    #[arg(long)]
    rdp_live_listen: Option<SocketAddr>,
    /// No RDP gateway (`[rdp] enabled = false`).
    #[arg(long)]
    no_rdp: bool,
    /// Where the PostgreSQL gateway listens (`[postgres] listen`, default 127.0.0.1:15432;
    /// users run `psql "host=HOST port=PORT user=USER+TARGET sslmode=require"`).
    #[arg(long)]
    postgres_listen: Option<SocketAddr>,
    /// No PostgreSQL gateway (`[postgres] enabled = false`).
    #[arg(long)]
    no_postgres: bool,
    /// Where the MySQL/MariaDB gateway listens (`[mysql] listen`, default 127.0.0.1:13306;
    /// users run `mariadb --ssl -h HOST -P PORT -u USER+TARGET -p`).
    #[arg(long)]
    mysql_listen: Option<SocketAddr>,
    /// No MySQL gateway (`[mysql] enabled = false`).
    #[arg(long)]
    no_mysql: bool,
    /// Where the uploader stores finished recordings (default: DATA/store).
    #[command(flatten)]
    store: crate::pipeline::StoreArgs,
    /// SIEM streaming of the audit log (syslog/CEF, webhooks).
    #[command(flatten)]
    siem: crate::siem::SiemArgs,
}

impl UpArgs {
    /// The file's sections with the flags applied over them.
    fn conf(&self) -> anyhow::Result<ConfFile> {
        let mut conf = match &self.config {
            Some(path) => ConfFile::load(path)?,
            None => ConfFile::default(),
        };
        if let Some(d) = &self.data {
            conf.data = Some(d.clone());
        }
        if let Some(l) = self.api_listen {
            conf.api.listen = l;
        }
        if let Some(l) = self.ssh_listen {
            conf.ssh.listen = l;
        }
        if let Some(l) = self.live_listen {
            conf.live.listen = l;
        }
        if self.no_live {
            conf.live.enabled = false;
        }
        if let Some(p) = &self.policy {
            conf.policy.file = Some(p.clone());
        }
        if let Some(l) = self.rdp_listen {
            conf.rdp.listen = l;
        }
        if let Some(l) = self.rdp_web_listen {
            conf.rdp.web_listen = Some(l);
        }
        if let Some(l) = self.rdp_live_listen {
            conf.rdp.live_listen = Some(l);
        }
        if self.no_rdp {
            conf.rdp.enabled = false;
        }
        if let Some(l) = self.postgres_listen {
            conf.postgres.listen = Some(l);
        }
        if self.no_postgres {
            conf.postgres.enabled = false;
        }
        if let Some(l) = self.mysql_listen {
            conf.mysql.listen = Some(l);
        }
        if self.no_mysql {
            conf.mysql.enabled = false;
        }
        Ok(conf)
    }
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let interval = Duration::from_secs(args.watchdog_interval.max(1));
    let conf = args.conf()?;
    let data = conf
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from("./psm-data"));
    let api_tls = match (&conf.api.tls_cert, &conf.api.tls_key) {
        (Some(cert), Some(key)) => Some(psm_server::TlsSettings {
            cert_chain_pem: std::fs::read(cert)
                .with_context(|| format!("api.tls_cert: reading {}", cert.display()))?,
            key_pem: psm_core::vault::Secret::new(
                std::fs::read(key)
                    .with_context(|| format!("api.tls_key: reading {}", key.display()))?,
            ),
            client_ca_pem: None,
            client_principals: Default::default(),
        }),
        (None, None) => None,
        _ => anyhow::bail!("api.tls_cert and api.tls_key go together"),
    };
    anyhow::ensure!(
        api_tls.is_some() || conf.api.listen.ip().is_loopback(),
        "{} is not a loopback address: give [api] tls_cert and tls_key to serve HTTPS (or use \
         psm-controlplane)",
        conf.api.listen
    );
    let mut options = NodeOptions::new(&data);
    options.settings = conf.settings.apply(options.settings)?;
    options.shared_role_keys = conf.api.shared_role_keys;
    options.engine.max_sessions_per_user = conf.api.max_sessions_per_user;
    options.engine.windows = conf.access.windows()?;
    let encrypted_for = options.settings.encryption_key.clone();
    let policy_file = conf.policy.file.clone();
    // The RDP gateway's own API key is issued before the control plane reads its keys: issued
    // later, it waits for the next re-read and the gateway's first start is refused.
    let rdp_api_key = if conf.rdp.enabled {
        Some(crate::rdp::api_key_file(&conf.rdp, &data)?)
    } else {
        None
    };
    let mut node = psm_server::node::open(options)
        .await
        .with_context(|| format!("opening the node in {}", data.display()))?;
    // The in-process control plane the services below share (a `dyn psm_core::ControlPlane`).
    let control_plane = node.control_plane.clone();

    let api_listener = tokio::net::TcpListener::bind(conf.api.listen)
        .await
        .with_context(|| format!("binding {} ([api] listen)", conf.api.listen))?;
    let api_addr = api_listener.local_addr()?;
    let api_base = format!(
        "{}://{}",
        if api_tls.is_some() { "https" } else { "http" },
        if api_addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], api_addr.port()))
        } else {
            api_addr
        }
    );

    // SSH gateway: users, keys and roles live in the same SQLite file (docs/ssh-gateway.md);
    // with it the live listener and link (docs/live.md), the policy and the recorder.
    let directory: Arc<dyn psm_core::directory::UserDirectory> = node.directory.clone();
    let first_admin = crate::gateway::ensure_first_admin(directory.as_ref()).await?;
    let vault = control_plane.vault().clone();
    let web_origins = vec![
        api_base.clone(),
        format!("http://localhost:{}", api_addr.port()),
    ];
    let extras = crate::gateway::GatewayExtras {
        live: &conf.live,
        web_origins: web_origins.clone(),
        policy: &conf.policy,
        recording: &conf.recording,
    };
    let ssh = crate::gateway::start(
        &conf.ssh,
        &extras,
        &data,
        Arc::new(control_plane.clone()),
        directory,
        Some(vault),
    )
    .await
    .context("starting the SSH gateway")?;

    // The database gateways: sessions in the SSH gateway's registry, so the live listener
    // lists, watches and controls them too (docs/database.md).
    let mut databases = Vec::new();
    for (kind, section) in [
        (crate::db::DbKind::Postgres, &conf.postgres),
        (crate::db::DbKind::Mysql, &conf.mysql),
    ] {
        if !section.enabled {
            continue;
        }
        let running = crate::db::start(
            kind,
            section,
            &conf.policy,
            &conf.recording,
            &data,
            conf.ssh
                .recordings
                .clone()
                .unwrap_or_else(|| data.join("recordings")),
            &conf
                .ssh
                .recording_key
                .clone()
                .unwrap_or_else(|| data.join("keys").join("recording-signing.key")),
            Arc::new(control_plane.clone()),
            node.directory.clone(),
            ssh.registry.clone(),
            &conf.ssh.process_instance,
        )
        .await
        .with_context(|| format!("starting the {} gateway", kind.name()))?;
        databases.push(running);
    }

    // The store replay reads from is the one the uploader writes to (GetPAMSettings or --store).
    let pam = crate::pipeline::pam_settings(Some(&control_plane)).await?;
    let web_store = psm_storage::open(&args.store.config(&data, pam.as_ref())?)?;
    let api = Server::new(
        control_plane.clone(),
        std::mem::take(&mut node.keys),
        node.artifacts.clone(),
        ServerConfig {
            sweep_interval: interval,
            trusted_proxies: conf.api.trusted_proxies.clone(),
            signers_data_dir: Some(data.clone()),
            ..ServerConfig::default()
        },
    )
    .with_directory(node.directory.clone())
    // The admin web UI (docs/web.md) on the same listener: replay reads the local recordings
    // and, once uploaded, the store; Watch, Join and the browser terminal go to the live
    // listener.
    .with_web(psm_server::web::WebConfig {
        store: Some(web_store),
        live_gateway: ssh.live_url.clone(),
        allowed_hosts: conf.api.allowed_hosts.clone(),
        ..psm_server::web::WebConfig::for_data_dir(&data)
    })
    .start(api_listener, api_tls.as_ref())?;

    // RDP gateway: its own program (its own workspace), supervised (docs/rdp.md).
    let rdp = if conf.rdp.enabled {
        match (crate::rdp::find_binary(&conf.rdp), rdp_api_key) {
            (Some(binary), Some(api_key)) => {
                let live = conf
                    .live
                    .enabled
                    .then_some((&conf.live, web_origins.as_slice()));
                let policy = conf.policy.file.as_deref();
                Some(Ok(crate::rdp::start(
                    &conf.rdp, live, policy, binary, &data, &api_base, &api_key,
                )
                .await
                .context("starting the RDP gateway")?))
            }
            _ => Some(Err(())),
        }
    } else {
        None
    };

    // SIEM: the audit log streamed to syslog/CEF and webhooks (docs/siem.md).
    let siem = args
        .siem
        .start(control_plane.engine().store().clone(), &data)?;

    // Encoder and uploader: Ended -> Done-Encoded -> Done-Uploaded (docs/deployment.md).
    let workers = crate::pipeline::start_workers(
        Arc::new(control_plane.clone()),
        &data,
        &args.store,
        conf.recording.min_free(),
    )
    .await
    .context("starting the encoder and uploader")?;

    let psm = psm_command();
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
            "    first admin: user admin, password {password} (shown once; change it with `{psm} users passwd admin`)"
        );
    }
    println!(
        "    add a target: {psm} targets add NAME --host HOST --user ACCOUNT --password-stdin --scan"
    );
    println!("    recordings:   {}", data.join("recordings").display());
    match &ssh.live_url {
        Some(url) => println!(
            "  live listener: {url} (Watch, Join and the browser terminal in the web UI: {}/ui/terminal)",
            api.url()
        ),
        None => println!("  live listener: off ([live] enabled = false)"),
    }
    match (ssh.policy_rules, &policy_file) {
        (Some(n), Some(path)) => println!(
            "  command policy: {} ({n} rules; SSH sessions, RDP transfers)",
            path.display()
        ),
        _ => println!("  command policy: none (set [policy] file or --policy FILE)"),
    }
    match &encrypted_for {
        Some(key) => println!(
            "  recordings encrypted for {key} (replay with `{psm} play --identity SECRET-KEY-FILE`)"
        ),
        None => println!("  recordings: signed, not encrypted ([settings] encryption_key)"),
    }
    match &rdp {
        Some(Ok(child)) => {
            let host = if child.listen.ip().is_unspecified() {
                "localhost".to_owned()
            } else {
                child.listen.ip().to_string()
            };
            println!(
                "  RDP gateway: {}{} ({}; certificate {}{})",
                child.listen,
                if child.ready {
                    ""
                } else {
                    " (still starting: see the log)"
                },
                child.binary.display(),
                child.cert.display(),
                if child.cert_created {
                    ", new, self-signed"
                } else {
                    ""
                }
            );
            println!(
                "    connect:  xfreerdp /v:{host}:{} /u:admin+TARGET /p:PASSWORD /sec:tls /cert:ignore",
                child.listen.port()
            );
            if let Some(w) = child.web_listen {
                // HTTPS with the gateway's certificate off loopback (docs/rdp.md).
                let scheme = if w.ip().is_loopback() {
                    "http"
                } else {
                    "https"
                };
                println!("    browser:  {scheme}://{w}/");
            }
            if let Some(l) = child.live_listen {
                println!("    live:     {l} (Watch and Join with control in the web UI)");
            }
            println!(
                "    add a target: {psm} targets add NAME --protocol rdp --host HOST --user ACCOUNT --password-stdin"
            );
        }
        Some(Err(())) => println!(
            "  RDP gateway: not started: psm-rdp-gateway was not found (scripts/up builds it; or \
             set PSM_RDP_GATEWAY or [rdp] binary)"
        ),
        None => println!("  RDP gateway: off ([rdp] enabled = false)"),
    }
    for (kind, section) in [
        (crate::db::DbKind::Postgres, &conf.postgres),
        (crate::db::DbKind::Mysql, &conf.mysql),
    ] {
        match databases.iter().find(|d| d.kind == kind) {
            Some(db) => println!("{}", db.describe(&psm)),
            None if !section.enabled => println!(
                "  {} gateway: off ([{}] enabled = false)",
                kind.name(),
                kind.key()
            ),
            None => {}
        }
    }
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
    if let Some(Ok(child)) = rdp {
        child.stop().await;
    }
    for db in databases {
        let name = db.kind.name();
        db.stop()
            .await
            .with_context(|| format!("stopping the {name} gateway"))?;
    }
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

/// How to run `psm` in the messages: `psm` when it is on PATH, else the cargo command.
fn psm_command() -> String {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join("psm").is_file()));
    if on_path {
        "psm".into()
    } else {
        "cargo run --release --bin psm --".into()
    }
}
