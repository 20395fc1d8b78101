//! `psm up`'s RDP gateway: `psm-rdp-gateway` (built in its own workspace, because ironrdp and
//! russh cannot share a lockfile: DESIGN.md) run as a child process that speaks to this
//! node's control plane over loopback HTTP with an API key of its own process instance. The
//! child's log joins this process's log (each line prefixed `rdp:`); it is restarted if it
//! dies (after 1 s, doubling to 30 s while it keeps dying) and stopped with `psm up`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::config::{LiveSection, RdpSection};

/// The program's name.
const PROGRAM: &str = "psm-rdp-gateway";

/// Where `psm-rdp-gateway` is: `[rdp] binary`, `$PSM_RDP_GATEWAY`, beside this program, or on
/// PATH. `None` when it is nowhere.
pub fn find_binary(section: &RdpSection) -> Option<PathBuf> {
    if let Some(b) = &section.binary {
        return Some(b.clone());
    }
    if let Some(b) = std::env::var_os("PSM_RDP_GATEWAY") {
        return Some(PathBuf::from(b));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(PROGRAM)))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(PROGRAM))
                .find(|p| p.is_file())
        })
    })
}

/// The gateway's certificate and key: the configured pair, or a self-signed one created in
/// `DATA/rdp/` on first start. Returns the paths and whether they were created.
fn identity(section: &RdpSection, data: &Path) -> anyhow::Result<(PathBuf, PathBuf, bool)> {
    match (&section.tls_cert, &section.tls_key) {
        (Some(c), Some(k)) => return Ok((c.clone(), k.clone(), false)),
        (None, None) => {}
        _ => anyhow::bail!("rdp.tls_cert and rdp.tls_key go together"),
    }
    let dir = data.join("rdp");
    let (cert, key) = (dir.join("gateway.crt"), dir.join("gateway.key"));
    // Both are ours: one without the other is what an interrupted first start left.
    if cert.is_file() != key.is_file() {
        for leftover in [&cert, &key] {
            let _ = std::fs::remove_file(leftover);
        }
    }
    let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    let created = psm_proxy::tls::ensure_self_signed(&cert, &key, &names)
        .context("the RDP gateway's self-signed certificate")?;
    Ok((cert, key, created))
}

/// The API key the child presents: one issued at each start to its own process instance
/// (`DATA/rdp/api.key`; issue 17 M7: it acts as that instance only, and this works with
/// `[api] shared_role_keys = false`), or the shared gateway key when the instance name
/// cannot name a key file.
pub fn api_key_file(section: &RdpSection, data: &Path) -> anyhow::Result<PathBuf> {
    let keys = data.join("keys");
    if psm_server::auth::instance_name(&section.process_instance).is_err() {
        return Ok(keys.join("gateway.key"));
    }
    let dir = data.join("rdp");
    psm_core::files::create_private_dir_all(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("api.key");
    let key = psm_server::auth::issue_instance_key(
        &keys,
        psm_server::Role::Gateway,
        &section.process_instance,
    )?;
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("replacing {}", path.display())),
    }
    psm_server::auth::write_private(&path, key.expose_secret())?;
    Ok(path)
}

/// A supervised RDP gateway.
pub struct RdpChild {
    /// Where native clients connect.
    pub listen: SocketAddr,
    /// Where browsers open sessions, if anywhere.
    pub web_listen: Option<SocketAddr>,
    /// Where its live listener listens (Watch and Join with control), if anywhere.
    pub live_listen: Option<SocketAddr>,
    /// The program that runs.
    pub binary: PathBuf,
    /// The certificate clients see, and whether this start created it.
    pub cert: PathBuf,
    /// Whether the certificate was created by this start.
    pub cert_created: bool,
    /// Whether the first start is listening (else it is still starting or failing: see the log).
    pub ready: bool,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RdpChild {
    /// Stops the child (SIGINT, then SIGKILL after 10 s) and the supervisor.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts `binary` against the control plane at `api` (loopback HTTP, with `api_key`: a key of
/// its own process instance from [`api_key_file`]) and supervises it.
pub async fn start(
    section: &RdpSection,
    live: Option<(&LiveSection, &[String])>,
    policy: Option<&Path>,
    binary: PathBuf,
    data: &Path,
    api: &str,
    api_key: &Path,
) -> anyhow::Result<RdpChild> {
    let (cert, key, cert_created) = identity(section, data)?;
    let mut args: Vec<std::ffi::OsString> = vec![
        "--data".into(),
        data.into(),
        "--listen".into(),
        section.listen.to_string().into(),
        "--cert".into(),
        cert.clone().into(),
        "--key".into(),
        key.into(),
        "--process-instance".into(),
        section.process_instance.clone().into(),
        "--control-plane".into(),
        api.into(),
        "--api-key-file".into(),
        api_key.into(),
        // A psm up killed with SIGKILL must not leave its gateway running.
        "--exit-with-parent".into(),
        "--keystrokes".into(),
        section.keystrokes.as_str().into(),
    ];
    if let Some(w) = section.web_listen {
        args.push("--web-listen".into());
        args.push(w.to_string().into());
    }
    // The command policy's transfer rules judge the drive's, printer's and clipboard's
    // transfers (docs/rdp.md, "Policy").
    if let Some(p) = policy {
        args.push("--policy".into());
        args.push(p.into());
    }
    // Watch and Join with control from the admin web UI: the same origins and certificate
    // as the SSH gateway's live listener.
    let live_listen = live.and(section.live_listen);
    if let (Some(listen), Some((live, web_origins))) = (live_listen, live) {
        args.push("--live-listen".into());
        args.push(listen.to_string().into());
        if let Some(url) = &section.live_public_url {
            args.push("--live-public-url".into());
            args.push(url.into());
        }
        for origin in live.allowed_origins.iter().chain(web_origins) {
            args.push("--live-allowed-origin".into());
            args.push(origin.into());
        }
        if let (Some(cert), Some(key)) = (&live.tls_cert, &live.tls_key) {
            args.extend([
                "--live-cert".into(),
                cert.into(),
                "--live-key".into(),
                key.into(),
            ]);
        }
    }
    for (on, flag) in [
        (section.allow_unpinned_targets, "--allow-unpinned-targets"),
        (section.allow_clipboard, "--allow-clipboard"),
        (section.allow_drive, "--allow-drive"),
        (section.allow_printer, "--allow-printer"),
    ] {
        if on {
            args.push(flag.into());
        }
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let first = spawn(&binary, &args).with_context(|| format!("starting {}", binary.display()))?;
    let task = tokio::spawn(supervise(binary.clone(), args, first, stopped));
    // Ready when it listens (a fresh build's first start loads in well under a second).
    let listen = section.listen;
    let probe = if listen.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], listen.port()))
    } else {
        listen
    };
    let mut ready = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(probe).await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(RdpChild {
        listen,
        web_listen: section.web_listen,
        live_listen,
        binary,
        cert,
        cert_created,
        ready,
        stop,
        task,
    })
}

fn spawn(binary: &Path, args: &[std::ffi::OsString]) -> std::io::Result<Child> {
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    // One log stream: the child's lines, prefixed, on this process's stderr.
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(BufReader::new(out)));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(BufReader::new(err)));
    }
    Ok(child)
}

async fn forward(reader: impl tokio::io::AsyncBufRead + Unpin) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("rdp: {line}");
    }
}

async fn supervise(
    binary: PathBuf,
    args: Vec<std::ffi::OsString>,
    mut child: Child,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let exited = tokio::select! {
            status = child.wait() => Some(status),
            _ = stopped.wait_for(|s| *s) => None,
        };
        let Some(status) = exited else {
            interrupt(&mut child).await;
            return;
        };
        if *stopped.borrow() {
            return;
        }
        match status {
            Ok(s) => tracing::error!(status = %s, "the RDP gateway exited; restarting"),
            Err(e) => tracing::error!(error = %e, "the RDP gateway is lost; restarting"),
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
        // A failed start leaves the exited child in place: its wait() answers at once, so
        // the loop comes back here after the next backoff.
        match spawn(&binary, &args) {
            Ok(c) => child = c,
            Err(e) => tracing::error!(error = %e, binary = %binary.display(),
                "cannot start the RDP gateway"),
        }
    }
}

/// SIGINT (the gateway ends its sessions cleanly on it), then SIGKILL after 10 s.
async fn interrupt(child: &mut Child) {
    if let Some(pid) = child.id()
        && let Some(pid) = rustix::process::Pid::from_raw(pid as i32)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}
