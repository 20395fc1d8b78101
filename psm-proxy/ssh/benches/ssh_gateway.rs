//! SSH gateway benchmarks, side by side with direct OpenSSH in the same run.
//!
//! ```text
//! cargo bench -p psm-proxy --bench ssh_gateway                 # everything
//! cargo bench -p psm-proxy --bench ssh_gateway -- throughput latency rate idle
//! PSM_BENCH_IDLE=10000 PSM_BENCH_GIB=1 cargo bench -p psm-proxy --bench ssh_gateway -- idle
//! ```
//!
//! Needs what the tests need (openssh-server, openssh-client, python3 with asyncssh) and root
//! (it creates the target account). Results go to stdout as Markdown table rows.
//!
//! The idle test (a minimal russh target, not sshd: see `idle`) reads more knobs, one at a
//! time, to find where an idle session's memory goes:
//!
//! - `PSM_BENCH_IDLE=N`: sessions to open (default 10,000; 5,000 per gateway process).
//! - `PSM_BENCH_HOLD=S`: seconds to hold them before measuring (default 45, past the
//!   gateway's 30 s authentication deadline, so a session cut off there is not counted).
//! - `PSM_BENCH_RECORD=0`: no recorder (no taps at all).
//! - `PSM_BENCH_PTY=0`: shells without a pty.
//! - `PSM_BENCH_HEARTBEAT_S=S`: the gateway's heartbeat interval (default 10 s).
//! - `PSM_BENCH_MASSIF=DIR`: run the gateways under `valgrind --tool=massif` and write a
//!   detailed heap snapshot of each to `DIR/gateway-N.massif` after the hold (read it with
//!   `ms_print`; use a few hundred sessions: valgrind is slow). RSS figures are then
//!   valgrind's, not the gateway's.
//!
//! Allocator settings reach the gateway processes through the environment, e.g.
//! `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Sshd, connect, free_port, keygen, median, pct, sh, ssh_args, wait_port};
use psm_core::clock::SystemClock;
use psm_core::directory::{AuthorizedKey, DirectoryAdmin, MemoryDirectory, NewUser};
use psm_core::store::SqliteStore;
use psm_core::{Engine, EngineConfig, ProcessInstance};
use psm_proxy::record::{RecorderConfig, RecorderFactory};
use psm_proxy::{
    HostKeyCheck, SessionRegistry, StaticTarget, StaticTargets, TargetCredential, TargetSecret,
};
use psm_proxy_ssh::{
    GatewayDeps, SshGateway, SshGatewayConfig, generate_host_key, host_key_public,
};
use russh::ChannelMsg;

const ACCOUNT: &str = "psmbench";

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Gw {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    user_key: PathBuf,
    known_hosts: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn start_gateway(
    target_port: u16,
    target_host_key: &str,
    secret: TargetSecret,
    listen: SocketAddr,
    max_sessions: usize,
) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let user_key = dir.path().join("user");
    keygen(&user_key);
    let directory = Arc::new(MemoryDirectory::new());
    directory
        .create_user(&NewUser {
            name: "bench".parse().unwrap(),
            keys: vec![
                AuthorizedKey::parse(
                    std::fs::read_to_string(dir.path().join("user.pub"))
                        .unwrap()
                        .trim(),
                )
                .unwrap(),
            ],
            roles: vec!["b".into()],
            ..NewUser::default()
        })
        .await
        .unwrap();
    directory.grant("b", "t").await.unwrap();
    let targets = StaticTargets::new();
    targets.insert(
        "t",
        StaticTarget {
            host: "127.0.0.1".into(),
            port: target_port,
            host_key: HostKeyCheck::Pinned(vec![target_host_key.to_owned()]),
            credential: TargetCredential {
                account: ACCOUNT.into(),
                secret,
            },
            lifetime: None,
        },
    );
    let store = SqliteStore::open(dir.path().join("psm.db")).await.unwrap();
    let engine = Engine::new(
        Arc::new(store),
        Arc::new(SystemClock),
        EngineConfig::default(),
    );
    let recorder = RecorderFactory::new(RecorderConfig::new(
        dir.path().join("recordings"),
        psm_recording::SigningKey::generate().unwrap(),
        "psm-bench",
    ));
    let host_key = generate_host_key();
    let (line, _) = host_key_public(&host_key);
    let mut config = SshGatewayConfig::new(listen, ProcessInstance::new("bench-gw").unwrap());
    config.host_keys.push(host_key);
    config.max_sessions = max_sessions;
    config.max_unauthenticated = 4096;
    // Every bench client connects from 127.0.0.1: no per-source limits.
    config.max_unauthenticated_per_source = 4096;
    config.source_connection_rate = 0;
    config.source_penalty = None;
    if let Some(s) = std::env::var("PSM_BENCH_HEARTBEAT_S")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.heartbeat_interval = Duration::from_secs(s);
    }
    let taps: Arc<dyn psm_proxy::TapFactory> =
        if std::env::var("PSM_BENCH_RECORD").as_deref() == Ok("0") {
            Arc::new(psm_proxy::NoTaps)
        } else {
            Arc::new(recorder)
        };
    let deps = GatewayDeps {
        control_plane: Arc::new(engine),
        directory,
        targets: Arc::new(targets),
        taps,
        registry: SessionRegistry::new(),
    };
    let gw = SshGateway::bind(config, deps).await.unwrap();
    let addr = gw.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        gw.run(async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let known_hosts = dir.path().join("known_hosts");
    let mut p = line.split_whitespace();
    std::fs::write(
        &known_hosts,
        format!(
            "[127.0.0.1]:{} {} {}\n",
            addr.port(),
            p.next().unwrap(),
            p.next().unwrap()
        ),
    )
    .unwrap();
    Gw {
        addr,
        dir,
        user_key,
        known_hosts,
        stop: Some(stop),
    }
}

fn timed(mut c: Command) -> f64 {
    let t = Instant::now();
    let out = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64()
}

async fn throughput(sshd: &Sshd, gw: &Gw) {
    let gib: u64 = std::env::var("PSM_BENCH_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let bytes = gib << 30;
    let kh = sshd.known_hosts();
    let direct_key = sshd.dir.path().join("direct");
    let cat = format!("head -c {bytes} /dev/zero");
    let (mut d, mut g) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let mut c = Command::new("ssh");
        c.args(ssh_args(&kh, &direct_key, sshd.port))
            .arg(format!("{ACCOUNT}@127.0.0.1"))
            .arg(&cat);
        d.push(timed(c));
        let mut c = Command::new("ssh");
        c.args(ssh_args(&gw.known_hosts, &gw.user_key, gw.addr.port()))
            .arg("bench+t@127.0.0.1")
            .arg(&cat);
        g.push(timed(c));
    }
    let (d, g) = (median(d), median(g));
    let mbs = |s: f64| bytes as f64 / s / 1e6;
    println!(
        "| `ssh ... 'head -c {gib}G /dev/zero' > /dev/null` (median of 3) | {:.0} MB/s | {:.0} MB/s | {:.2}× |",
        mbs(d),
        mbs(g),
        d / g
    );

    // scp both ways (SFTP mode), a 512 MiB file in tmpfs.
    let src = format!("/dev/shm/psm-bench-{}.bin", std::process::id());
    assert!(
        sh(&format!(
            "head -c 512M /dev/urandom > {src} && chmod 644 {src}"
        ))
        .status
        .success()
    );
    let back = format!("{src}.back");
    let mut rows = Vec::new();
    for (label, upload) in [("download", false), ("upload", true)] {
        let (mut d, mut g) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            for via_gw in [false, true] {
                let mut c = Command::new("scp");
                let (args, login) = if via_gw {
                    (
                        ssh_args(&gw.known_hosts, &gw.user_key, gw.addr.port()),
                        "bench+t",
                    )
                } else {
                    (ssh_args(&kh, &direct_key, sshd.port), ACCOUNT)
                };
                // scp takes -P, not -p.
                let args: Vec<String> = args
                    .into_iter()
                    .map(|a| if a == "-p" { "-P".into() } else { a })
                    .collect();
                c.arg("-q").args(args);
                if upload {
                    c.arg(&src).arg(format!("{login}@127.0.0.1:/dev/null"));
                } else {
                    c.arg(format!("{login}@127.0.0.1:{src}")).arg(&back);
                }
                let t = timed(c);
                if via_gw {
                    g.push(t)
                } else {
                    d.push(t)
                }
                let _ = std::fs::remove_file(&back);
            }
        }
        let (d, g) = (median(d), median(g));
        let mbs = |s: f64| 512.0 * 1048576.0 / s / 1e6;
        rows.push(format!("| scp 512 MiB {label} (SFTP mode, tmpfs, median of 3) | {:.0} MB/s | {:.0} MB/s | {:.2}× |", mbs(d), mbs(g), d / g));
    }
    let _ = std::fs::remove_file(&src);
    for r in rows {
        println!("{r}");
    }
}

async fn echo_latencies(port: u16, user: &str, key: &Path, n: usize) -> Vec<f64> {
    let h = connect(port, user, key).await;
    let mut ch = h.channel_open_session().await.unwrap();
    ch.exec(true, "cat").await.unwrap();
    let mut lat = Vec::with_capacity(n);
    for i in 0..n + 200 {
        let t = Instant::now();
        ch.data(&b"k"[..]).await.unwrap();
        loop {
            match ch.wait().await {
                Some(ChannelMsg::Data { data }) if !data.is_empty() => break,
                Some(_) => continue,
                None => panic!("channel closed"),
            }
        }
        if i >= 200 {
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let _ = ch.eof().await;
    lat
}

async fn latency(sshd: &Sshd, gw: &Gw) {
    let n = 3000;
    let mut d = echo_latencies(sshd.port, ACCOUNT, &sshd.dir.path().join("direct"), n).await;
    let mut g = echo_latencies(gw.addr.port(), "bench+t", &gw.user_key, n).await;
    let (d50, d99, g50, g99) = (
        pct(&mut d, 0.5),
        pct(&mut d, 0.99),
        pct(&mut g, 0.5),
        pct(&mut g, 0.99),
    );
    println!(
        "| keystroke echo round trip p50 ({n} keystrokes, `cat` on the target) | {d50:.0} µs | {g50:.0} µs | +{:.0} µs |",
        g50 - d50
    );
    println!(
        "| keystroke echo round trip p99 | {d99:.0} µs | {g99:.0} µs | +{:.0} µs |",
        g99 - d99
    );
}

async fn one_session(port: u16, user: String, key: PathBuf) {
    let h = connect(port, &user, &key).await;
    let mut ch = h.channel_open_session().await.unwrap();
    ch.exec(true, "true").await.unwrap();
    while let Some(m) = ch.wait().await {
        if let ChannelMsg::ExitStatus { .. } = m {
            break;
        }
    }
    let _ = h
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
}

async fn rate_of(port: u16, user: &str, key: &Path, total: usize, concurrency: usize) -> f64 {
    let t = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::new();
    for _ in 0..total {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (user, key) = (user.to_owned(), key.to_owned());
        tasks.push(tokio::spawn(async move {
            one_session(port, user, key).await;
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    total as f64 / t.elapsed().as_secs_f64()
}

async fn rate(sshd: &Sshd, gw: &Gw) {
    let (total, conc) = (300, 8);
    let d = rate_of(
        sshd.port,
        ACCOUNT,
        &sshd.dir.path().join("direct"),
        total,
        conc,
    )
    .await;
    let g = rate_of(gw.addr.port(), "bench+t", &gw.user_key, total, conc).await;
    println!(
        "| new sessions/s (connect, key auth, exec `true`, exit; {total} sessions, {conc} at a time) | {d:.0} /s | {g:.0} /s | {:.2}× |",
        g / d
    );
}

// ---------------------------------------------------------------------------------------
// Idle sessions: a minimal russh target (sshd forks a process per session, too heavy for
// 10,000), gateways in their own processes, asyncssh drivers.

#[derive(Clone)]
struct IdleTarget;
impl russh::server::Server for IdleTarget {
    type Handler = IdleTarget;
    fn new_client(&mut self, _: Option<SocketAddr>) -> IdleTarget {
        IdleTarget
    }
}
impl russh::server::Handler for IdleTarget {
    type Error = russh::Error;
    async fn auth_password(
        &mut self,
        _u: &str,
        _p: &str,
    ) -> Result<russh::server::Auth, Self::Error> {
        Ok(russh::server::Auth::Accept)
    }
    async fn channel_open_session(
        &mut self,
        channel: russh::Channel<russh::server::Msg>,
        reply: russh::server::ChannelOpenHandle,
        _s: &mut russh::server::Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        // Keep the channel (idle) until the client closes it.
        tokio::spawn(async move {
            let mut channel = channel;
            while channel.wait().await.is_some() {}
        });
        Ok(())
    }
    async fn pty_request(
        &mut self,
        channel: russh::ChannelId,
        _t: &str,
        _c: u32,
        _r: u32,
        _pw: u32,
        _ph: u32,
        _m: &[(russh::Pty, u32)],
        session: &mut russh::server::Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }
    async fn shell_request(
        &mut self,
        channel: russh::ChannelId,
        session: &mut russh::server::Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        session.data(channel, bytes::Bytes::from_static(b"$ "))?;
        Ok(())
    }
}

async fn role_target(port: u16) {
    let key = generate_host_key();
    let (line, _) = host_key_public(&key);
    std::fs::write(std::env::var("PSM_BENCH_HOSTKEY_OUT").unwrap(), line).unwrap();
    let config = Arc::new(russh::server::Config {
        keys: vec![key],
        inactivity_timeout: None,
        auth_rejection_time: Duration::ZERO,
        ..russh::server::Config::default()
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    use russh::server::Server;
    IdleTarget.run_on_socket(config, &listener).await.unwrap();
}

async fn role_gateway(port: u16, target_port: u16) {
    let target_key =
        std::fs::read_to_string(std::env::var("PSM_BENCH_HOSTKEY_OUT").unwrap()).unwrap();
    let gw = start_gateway(
        target_port,
        target_key.trim(),
        TargetSecret::Password("x".into()),
        SocketAddr::from(([127, 0, 0, 1], port)),
        20_000,
    )
    .await;
    // Hand the driver what it needs, then idle until killed.
    println!("{} {}", gw.user_key.display(), gw.known_hosts.display());
    std::mem::forget(gw);
    std::future::pending::<()>().await;
}

fn spawn_self(args: &[String], envs: &[(&str, String)]) -> std::process::Child {
    spawn_self_in(&[], args, envs)
}

/// Runs this binary in another role, under `wrapper` (a command and its arguments) if any.
fn spawn_self_in(
    wrapper: &[String],
    args: &[String],
    envs: &[(&str, String)],
) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    let mut c = match wrapper.split_first() {
        Some((cmd, rest)) => {
            let mut c = Command::new(cmd);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::inherit());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

fn idle() {
    let total: usize = std::env::var("PSM_BENCH_IDLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // The hard limit on open files here is 20,000 per process, and a gateway session holds
    // three (user socket, target socket, recording file): 5,000 sessions per gateway process.
    let per_shard = 5_000usize;
    let massif = std::env::var_os("PSM_BENCH_MASSIF").map(PathBuf::from);
    let shards = total.div_ceil(per_shard);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/idle_driver.py");
    let mut children = Vec::new();
    let mut gateways = Vec::new();
    let mut drivers = Vec::new();
    let t0 = Instant::now();
    for s in 0..shards {
        let n = per_shard.min(total - s * per_shard);
        let hk = std::env::temp_dir().join(format!("psm-bench-hk-{}-{s}", std::process::id()));
        let tport = free_port();
        let target = spawn_self(
            &["--role".into(), "target".into(), tport.to_string()],
            &[("PSM_BENCH_HOSTKEY_OUT", hk.display().to_string())],
        );
        wait_port(tport);
        let gport = free_port();
        // Under massif the gateway's heap is profiled; a snapshot is taken after the hold.
        let wrapper: Vec<String> = massif
            .as_ref()
            .map(|_| {
                [
                    "valgrind",
                    "--tool=massif",
                    "--threshold=0.05",
                    "--massif-out-file=/dev/null",
                ]
                .map(String::from)
                .to_vec()
            })
            .unwrap_or_default();
        let mut gw = spawn_self_in(
            &wrapper,
            &[
                "--role".into(),
                "gateway".into(),
                gport.to_string(),
                tport.to_string(),
            ],
            &[("PSM_BENCH_HOSTKEY_OUT", hk.display().to_string())],
        );
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(gw.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let mut parts = line.split_whitespace();
        let (key, kh) = (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        );
        let before = rss_kib(gw.id());
        let mut driver = Command::new("python3");
        driver
            .args([script, &gport.to_string(), &kh, &key, &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if std::env::var("PSM_BENCH_PTY").as_deref() == Ok("0") {
            driver.arg("nopty");
        }
        let driver = driver.spawn().unwrap();
        gateways.push((gw.id(), before, n));
        children.push(target);
        children.push(gw);
        drivers.push(driver);
    }
    // Each driver prints "OPEN n seconds" once all its sessions are established, then
    // answers "COUNT" with "ALIVE n".
    use std::io::{BufRead, Write};
    let mut outs: Vec<_> = drivers
        .iter_mut()
        .map(|d| std::io::BufReader::new(d.stdout.take().unwrap()))
        .collect();
    let field = |line: &str| -> usize {
        line.split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mut opened = 0usize;
    for out in &mut outs {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        opened += field(&line);
    }
    let setup = t0.elapsed().as_secs_f64();
    // Hold past the authentication deadline (30 s) and a few heartbeat rounds, so the
    // sessions measured are the ones that stay.
    let hold: u64 = std::env::var("PSM_BENCH_HOLD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(45);
    std::thread::sleep(Duration::from_secs(hold));
    let (mut delta_kib, mut base_kib) = (0u64, 0u64);
    for (pid, before, _) in &gateways {
        delta_kib += rss_kib(*pid).saturating_sub(*before);
        base_kib += *before;
    }
    if let Some(dir) = &massif {
        std::fs::create_dir_all(dir).unwrap();
        for (i, (pid, _, _)) in gateways.iter().enumerate() {
            let file = dir.join(format!("gateway-{i}.massif"));
            let ok = Command::new("vgdb")
                .arg(format!("--pid={pid}"))
                .arg("detailed_snapshot")
                .arg(&file)
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            eprintln!(
                "massif snapshot of gateway {pid}: {} ({})",
                file.display(),
                if ok { "written" } else { "vgdb failed" }
            );
        }
    }
    let mut alive = 0usize;
    for (d, out) in drivers.iter_mut().zip(&mut outs) {
        let stdin = d.stdin.as_mut().unwrap();
        stdin.write_all(b"COUNT\n").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        alive += field(&line);
    }
    let pty = std::env::var("PSM_BENCH_PTY").as_deref() != Ok("0");
    let recorded = std::env::var("PSM_BENCH_RECORD").as_deref() != Ok("0");
    println!(
        "| idle sessions held (shell{}, {}, heartbeating; {shards} gateway process(es)) | n/a | {alive} of {total} still open after {hold} s ({opened} opened) | {:.1} KiB RSS each (gateway RSS {} MiB → {} MiB) |",
        if pty { " with pty" } else { " without pty" },
        if recorded { "recorded" } else { "not recorded" },
        delta_kib as f64 / alive.max(1) as f64,
        base_kib / 1024,
        (base_kib + delta_kib) / 1024
    );
    println!(
        "| time to open them all (asyncssh drivers, {shards} in parallel) | n/a | {setup:.0} s | {:.0} sessions/s |",
        opened as f64 / setup
    );
    for mut d in drivers {
        let _ = d.kill();
        let _ = d.wait();
    }
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--role") {
        let rt = tokio::runtime::Runtime::new().unwrap();
        match args[1].as_str() {
            "target" => rt.block_on(role_target(args[2].parse().unwrap())),
            "gateway" => rt.block_on(role_gateway(
                args[2].parse().unwrap(),
                args[3].parse().unwrap(),
            )),
            r => panic!("unknown role {r}"),
        }
        return;
    }
    let all = args.is_empty();
    let want = |p: &str| all || args.iter().any(|a| a == p);
    let model = String::from_utf8_lossy(&sh("lscpu | grep 'Model name'").stdout)
        .trim()
        .to_owned();
    println!(
        "Machine: {} cores, {model}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "| measure | direct OpenSSH | through the PSM gateway (recording on) | ratio / added |"
    );
    println!("|---|---|---|---|");
    if want("throughput") || want("latency") || want("rate") {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let sshd = Sshd::start(ACCOUNT);
            let direct_key = sshd.dir.path().join("direct");
            let secret = TargetSecret::PrivateKey {
                key: std::fs::read_to_string(&direct_key).unwrap(),
                passphrase: None,
            };
            let gw = start_gateway(
                sshd.port,
                &sshd.host_pub,
                secret,
                "127.0.0.1:0".parse().unwrap(),
                10_000,
            )
            .await;
            if want("throughput") {
                throughput(&sshd, &gw).await;
            }
            if want("latency") {
                latency(&sshd, &gw).await;
            }
            if want("rate") {
                rate(&sshd, &gw).await;
            }
            let mut gw = gw;
            let _ = gw.stop.take().map(|s| s.send(()));
            let _ = &gw.dir;
        });
    }
    if want("idle") {
        idle();
    }
}
