//! Live viewing benchmarks (issue 8): how late a live viewer sees a byte, and whether 100
//! viewers slow the user down. A real OpenSSH `sshd` is the target; the SSH gateway (recording
//! on), its websocket listener (`/live/ID?ticket=…`) and the in-process control plane
//! (`LocalControlPlane`, which issues the JoinSession tickets) run in this process.
//!
//! ```text
//! cargo bench -p psm-proxy --bench live_viewers                     # both parts
//! cargo bench -p psm-proxy --bench live_viewers -- latency --lines 2000 --interval-ms 5
//! cargo bench -p psm-proxy --bench live_viewers -- fanout --viewers 100 --slow 50 --mib 256 --runs 3
//! ```
//!
//! Needs openssh-server, openssh-client and python3, and root (it creates the target account
//! `psmlive`). Results go to stdout as Markdown tables.
//!
//! **Latency.** The target runs a python3 loop in a pty that writes one line per interval,
//! `PSMLAT SEQ NS`, where NS is `time.monotonic_ns()` taken just before the `write(2)` to the
//! pty: the moment the byte leaves the target program. The user's SSH client (russh, in this
//! process) and the viewers (tokio-tungstenite over the real websocket path) read
//! CLOCK_MONOTONIC (`clock_gettime`, the same clock on the same host) when the chunk that
//! completes a line arrives, and record the difference. The user's figure is the path
//! target → sshd → gateway → client; the viewer's is target → sshd → gateway → fan-out →
//! websocket; their difference per line is what live viewing adds.
//!
//! **Fan-out.** OpenSSH `ssh -tt` through the gateway runs `read x; head -c SIZE /dev/zero`
//! (a pty: viewers follow the primary terminal channel only). The viewers join (each with a
//! fresh ticket) and receive their first screen; then the bench sends the newline and times
//! until `ssh` exits, counting the bytes `ssh` writes. Modes: no viewers, N reading viewers,
//! N viewers of which some never read, and those readers alone. The fan-out's viewers run in a child process of this
//! binary (`--role viewers`), so the CPU time of the gateway's process and of the viewer
//! clients are reported apart (`/proc/PID/stat`, during the transfer). Runs interleave the
//! modes; the median of each is reported.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Sshd, connect, keygen, load, median, pct, sh, ssh_args};
use futures::StreamExt;
use psm_core::clock::SystemClock;
use psm_core::directory::{AuthorizedKey, DirectoryAdmin, MemoryDirectory, NewUser};
use psm_core::live::{LiveMode, connection_url};
use psm_core::store::MemoryStore;
use psm_core::vault::{Keyring, MasterKey, MemoryVaultStore, PamSettings, Vault, VaultConfig};
use psm_core::{ControlPlane, Engine, EngineConfig, LocalControlPlane, ProcessInstance, SessionId};
use psm_proxy::live::{LiveDeps, LiveLink, LiveServer, LiveServerConfig};
use psm_proxy::record::{RecorderConfig, RecorderFactory};
use psm_proxy::{
    HostKeyCheck, SessionRegistry, StaticTarget, StaticTargets, TargetCredential, TargetSecret,
};
use psm_proxy_ssh::{
    GatewayDeps, SshGateway, SshGatewayConfig, generate_host_key, host_key_public,
};
use russh::ChannelMsg;
use tokio_tungstenite::tungstenite::Message;

const ACCOUNT: &str = "psmlive";
const WAIT: Duration = Duration::from_secs(30);

/// CLOCK_MONOTONIC in nanoseconds (python3's `time.monotonic_ns()` reads the same clock).
fn mono_ns() -> i64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec * 1_000_000_000 + t.tv_nsec
}

struct Opts {
    lines: usize,
    interval_ms: f64,
    viewers: usize,
    slow: usize,
    mib: u64,
    runs: usize,
    parts: Vec<String>,
}

fn opts() -> Opts {
    let mut o = Opts {
        lines: 2000,
        interval_ms: 5.0,
        viewers: 100,
        slow: 50,
        mib: 256,
        runs: 3,
        parts: Vec::new(),
    };
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(a) = args.next() {
        let mut val = || args.next().expect("a value after the flag");
        match a.as_str() {
            "--lines" => o.lines = val().parse().unwrap(),
            "--interval-ms" => o.interval_ms = val().parse().unwrap(),
            "--viewers" => o.viewers = val().parse().unwrap(),
            "--slow" => o.slow = val().parse().unwrap(),
            "--mib" => o.mib = val().parse().unwrap(),
            "--runs" => o.runs = val().parse().unwrap(),
            "latency" | "fanout" => o.parts.push(a),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(o.slow <= o.viewers, "--slow is at most --viewers");
    o
}

/// The gateway, its live listener and link, and the control plane, all in this process.
struct Stack {
    ssh: SocketAddr,
    live_url: String,
    cp: LocalControlPlane,
    registry: SessionRegistry,
    dir: tempfile::TempDir,
    user_key: PathBuf,
    known_hosts: PathBuf,
    link: LiveLink,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

async fn start_stack(sshd: &Sshd) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let user_key = dir.path().join("user");
    keygen(&user_key);
    let engine = Engine::new(
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
        EngineConfig::default(),
    );
    let vault = Vault::new(
        Arc::new(MemoryVaultStore::new()),
        Keyring::new(MasterKey::generate().unwrap()),
        engine.clone(),
        VaultConfig::default(),
    );
    let cp = LocalControlPlane::new(engine, vault, PamSettings::default());
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
            port: sshd.port,
            host_key: HostKeyCheck::Pinned(vec![sshd.host_pub.clone()]),
            credential: TargetCredential {
                account: ACCOUNT.into(),
                secret: TargetSecret::PrivateKey {
                    key: std::fs::read_to_string(sshd.key()).unwrap(),
                    passphrase: None,
                },
            },
            lifetime: None,
        },
    );
    let me = ProcessInstance::new("bench-live-gw").unwrap();
    let host_key = generate_host_key();
    let (line, _) = host_key_public(&host_key);
    let mut config = SshGatewayConfig::new("127.0.0.1:0".parse().unwrap(), me.clone());
    config.host_keys.push(host_key);
    let control_plane: Arc<dyn ControlPlane> = Arc::new(cp.clone());
    let gateway = SshGateway::bind(
        config,
        GatewayDeps {
            control_plane: control_plane.clone(),
            directory,
            targets: Arc::new(targets),
            taps: Arc::new(RecorderFactory::new(RecorderConfig::new(
                dir.path().join("recordings"),
                psm_recording::SigningKey::generate().unwrap(),
                "psm-bench",
            ))),
            registry: SessionRegistry::new(),
        },
    )
    .await
    .unwrap();
    let ssh = gateway.local_addr();
    let registry = gateway.registry();
    let live = LiveServer::bind(
        LiveServerConfig::new("127.0.0.1:0".parse().unwrap(), me.clone()),
        LiveDeps {
            control_plane: control_plane.clone(),
            registry: gateway.registry(),
            terminals: Some(gateway.connector()),
        },
    )
    .await
    .unwrap();
    let live_url = live.url();
    let link = LiveLink::start(
        control_plane,
        gateway.registry(),
        me,
        Some(live_url.clone()),
    );
    let (stop_live, live_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(live.run(async {
        let _ = live_stopped.await;
    }));
    let (stop_gw, gw_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gateway.run(async {
        let _ = gw_stopped.await;
    }));
    let known_hosts = dir.path().join("known_hosts");
    let mut p = line.split_whitespace();
    std::fs::write(
        &known_hosts,
        format!(
            "[127.0.0.1]:{} {} {}\n",
            ssh.port(),
            p.next().unwrap(),
            p.next().unwrap()
        ),
    )
    .unwrap();
    Stack {
        ssh,
        live_url,
        cp,
        registry,
        dir,
        user_key,
        known_hosts,
        link,
        stops: vec![stop_live, stop_gw],
    }
}

impl Stack {
    /// The one session the gateway runs, once it is live (Connected).
    async fn the_session(&self) -> SessionId {
        let t = Instant::now();
        loop {
            let list = self.registry.list();
            if let [one] = list.as_slice() {
                return one.id;
            }
            assert!(t.elapsed() < WAIT, "{} sessions on the gateway", list.len());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn no_sessions(&self) {
        let t = Instant::now();
        while !self.registry.is_empty() {
            assert!(t.elapsed() < WAIT, "a session did not end");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// JoinSession (what the control plane's endpoint calls) and the URL it answers.
    async fn join_url(&self, session: SessionId) -> String {
        let (ticket, _) = self
            .cp
            .join_session(session, LiveMode::View, "bench-admin", None)
            .await
            .unwrap();
        connection_url(
            &self.live_url,
            None,
            &format!("/live/{session}?ticket={}", ticket.as_str()),
        )
        .unwrap()
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects a viewer and reads until its first `screen` (the viewer is then attached).
async fn join(stack: &Stack, session: SessionId) -> Ws {
    join_url(stack.join_url(session).await).await
}

async fn join_url(url: String) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) if t.as_str().contains("\"type\":\"screen\"") => {
                return ws;
            }
            Some(Ok(_)) => continue,
            other => panic!("viewer before its screen: {other:?}"),
        }
    }
}

/// Splits complete `PSMLAT SEQ NS` lines out of `buf`; `now` is when the bytes arrived.
/// Returns true at `PSMDONE`.
fn take_lines(buf: &mut Vec<u8>, now: i64, out: &mut Vec<(usize, i64)>) -> bool {
    let mut done = false;
    while let Some(i) = buf.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = buf.drain(..=i).collect();
        let line = String::from_utf8_lossy(&line);
        let mut f = line.trim().split(' ');
        match f.next() {
            Some(w) if w.ends_with("PSMLAT") => {
                let seq = f.next().and_then(|v| v.parse().ok());
                let ns: Option<i64> = f.next().and_then(|v| v.parse().ok());
                if let (Some(seq), Some(ns)) = (seq, ns) {
                    out.push((seq, now - ns));
                }
            }
            Some(w) if w.ends_with("PSMDONE") => done = true,
            _ => {}
        }
    }
    done
}

/// A viewer that reads every frame and records each stamped line's delay.
async fn read_stamps(mut ws: Ws) -> Vec<(usize, i64)> {
    let (mut buf, mut out) = (Vec::new(), Vec::new());
    while let Some(m) = ws.next().await {
        let now = mono_ns();
        match m {
            Ok(Message::Binary(b)) => {
                buf.extend_from_slice(&b);
                if take_lines(&mut buf, now, &mut out) {
                    break;
                }
            }
            Ok(Message::Text(t)) if t.as_str().contains("\"type\":\"ended\"") => break,
            Ok(_) => {}
            Err(e) => panic!("viewer: {e}"),
        }
    }
    out
}

/// The target side: waits for a newline, then writes `n` stamped lines, one every `iv` ms.
const STAMPER: &str = r#"import os,sys,time
n=int(sys.argv[1]);iv=float(sys.argv[2])/1000
sys.stdin.readline()
t0=time.monotonic()
for i in range(n):
    d=t0+i*iv-time.monotonic()
    if d>0:time.sleep(d)
    os.write(1,b"PSMLAT %d %d\n"%(i,time.monotonic_ns()))
os.write(1,b"PSMDONE\n")
"#;

fn ms(ns: f64) -> f64 {
    ns / 1e6
}

async fn latency(stack: &Stack, o: &Opts, viewers: usize) {
    stack.no_sessions().await;
    let h = connect(stack.ssh.port(), "bench+t", &stack.user_key).await;
    let mut ch = h.channel_open_session().await.unwrap();
    ch.request_pty(true, "xterm", 160, 48, 0, 0, &[])
        .await
        .unwrap();
    ch.exec(
        true,
        format!("python3 -c '{STAMPER}' {} {}", o.lines, o.interval_ms),
    )
    .await
    .unwrap();
    let session = stack.the_session().await;
    let mut tasks = Vec::new();
    for _ in 0..viewers {
        let ws = join(stack, session).await;
        tasks.push(tokio::spawn(read_stamps(ws)));
    }
    ch.data(&b"\n"[..]).await.unwrap();
    let (mut buf, mut user) = (Vec::new(), Vec::new());
    loop {
        match tokio::time::timeout(WAIT, ch.wait()).await.unwrap() {
            Some(ChannelMsg::Data { data }) => {
                let now = mono_ns();
                buf.extend_from_slice(&data);
                if take_lines(&mut buf, now, &mut user) {
                    break;
                }
            }
            Some(ChannelMsg::ExitStatus { .. }) | None => break,
            Some(_) => {}
        }
    }
    let _ = ch.eof().await;
    let _ = h
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    assert_eq!(user.len(), o.lines, "the user saw every line");
    let by_seq: std::collections::HashMap<usize, i64> = user.iter().copied().collect();
    let mut u: Vec<f64> = user.iter().map(|&(_, d)| d as f64).collect();
    let (mut v, mut added, mut missing) = (Vec::new(), Vec::new(), 0usize);
    for lines in &seen {
        missing += o.lines - lines.len();
        for &(seq, d) in lines {
            v.push(d as f64);
            if let Some(&ud) = by_seq.get(&seq) {
                added.push((d - ud) as f64);
            }
        }
    }
    let row = |what: &str, s: &mut Vec<f64>| {
        let max = s.iter().copied().fold(f64::MIN, f64::max);
        println!(
            "| {what} | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
            s.len(),
            ms(pct(s, 0.5)),
            ms(pct(s, 0.99)),
            ms(max)
        );
    };
    let tag = format!("{viewers} viewer{}", if viewers == 1 { "" } else { "s" });
    row(
        &format!("{tag}: user's SSH client (target → client)"),
        &mut u,
    );
    row(&format!("{tag}: live viewer (target → websocket)"), &mut v);
    row(
        &format!("{tag}: added by live viewing (viewer − user, same line)"),
        &mut added,
    );
    if missing > 0 {
        println!(
            "| {tag}: lines viewers did not get as output (skipped ahead to a screen) | {missing} | | | |"
        );
    }
}

/// What a reading viewer got.
#[derive(Default)]
struct Got {
    bytes: u64,
    screens: u64,
}

async fn read_all(mut ws: Ws) -> Got {
    let mut g = Got::default();
    while let Some(m) = ws.next().await {
        match m {
            Ok(Message::Binary(b)) => g.bytes += b.len() as u64,
            Ok(Message::Text(t)) if t.as_str().contains("\"type\":\"screen\"") => g.screens += 1,
            Ok(Message::Text(t)) if t.as_str().contains("\"type\":\"ended\"") => break,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    g
}

/// CPU seconds (user + system) process `pid` has used (`self` for this one).
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// The viewers of a fan-out run, in their own process (`--role viewers`), so the CPU they
/// use is not the gateway's.
struct ViewerProcess {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl ViewerProcess {
    fn start() -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--role", "viewers"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn ask(&mut self, line: &str) -> String {
        use std::io::BufRead;
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        answer
    }

    fn cpu(&self) -> f64 {
        cpu_secs(&self.child.id().to_string())
    }
}

/// `--role viewers`: reads `R URL` (a viewer that reads everything) or `S URL` (one that
/// never reads after its first screen) lines, answers `ok` once each is attached; at `stop`,
/// drops the stalled ones, waits for the readers to see the session end and answers
/// `got BYTES SCREENS` (sums).
async fn role_viewers() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    let (mut reading, mut stalled) = (Vec::new(), Vec::new());
    while let Some(line) = lines.next_line().await.unwrap() {
        match line.split_once(' ') {
            Some(("R", url)) => reading.push(tokio::spawn(read_all(join_url(url.into()).await))),
            Some(("S", url)) => stalled.push(join_url(url.into()).await),
            _ => break,
        }
        out.write_all(b"ok\n").await.unwrap();
        out.flush().await.unwrap();
    }
    drop(stalled);
    let (mut bytes, mut screens) = (0u64, 0u64);
    for r in reading {
        let g = tokio::time::timeout(WAIT, r).await.unwrap().unwrap();
        bytes += g.bytes;
        screens += g.screens;
    }
    out.write_all(format!("got {bytes} {screens}\n").as_bytes())
        .await
        .unwrap();
    out.flush().await.unwrap();
}

/// One bulk run's figures.
struct Run {
    mbs: f64,
    gw_cpu: f64,
    viewer_cpu: f64,
    viewer_bytes: u64,
    screens: u64,
}

/// One bulk run through the gateway with `readers` reading viewers and `slow` that never
/// read.
async fn bulk(stack: &Stack, o: &Opts, readers: usize, slow: usize) -> Run {
    stack.no_sessions().await;
    let bytes = o.mib << 20;
    let mut c = Command::new("ssh");
    c.arg("-tt")
        .args(ssh_args(
            &stack.known_hosts,
            &stack.user_key,
            stack.ssh.port(),
        ))
        .arg("bench+t@127.0.0.1")
        .arg(format!("echo ready; read x; head -c {bytes} /dev/zero"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut err = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut out = child.stdout.take().unwrap();
    // "ready" means the pty exists: viewers joining now get their screen at once (one that
    // joins before the session has a terminal gets it with the first output).
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let counter = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u64;
        let mut ready = Some(ready_tx);
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => return n,
                Ok(k) => n += k as u64,
            }
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
        }
    });
    let session = stack.the_session().await;
    tokio::time::timeout(WAIT, ready_rx).await.unwrap().unwrap();
    let mut viewers = (readers + slow > 0).then(ViewerProcess::start);
    if let Some(v) = viewers.as_mut() {
        for i in 0..readers + slow {
            let url = stack.join_url(session).await;
            let kind = if i < readers { "R" } else { "S" };
            let answer = tokio::task::block_in_place(|| v.ask(&format!("{kind} {url}")));
            assert_eq!(answer.trim(), "ok");
        }
    }
    let mut stdin = child.stdin.take().unwrap();
    let (gw0, v0) = (cpu_secs("self"), viewers.as_ref().map_or(0.0, |v| v.cpu()));
    let t = Instant::now();
    stdin.write_all(b"\n").unwrap();
    stdin.flush().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let (gw1, v1) = (cpu_secs("self"), viewers.as_ref().map_or(0.0, |v| v.cpu()));
    drop(stdin);
    assert!(
        status.success(),
        "ssh: {status}: {}",
        errors.join().unwrap_or_default()
    );
    let got = counter.join().unwrap();
    assert!(got >= bytes, "the user got {got} of {bytes} bytes");
    let (mut viewer_bytes, mut screens) = (0, 0);
    if let Some(mut v) = viewers {
        let answer = tokio::task::block_in_place(|| v.ask("stop"));
        let f: Vec<u64> = answer
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        (viewer_bytes, screens) = (f[0], f[1]);
        let _ = v.child.wait();
    }
    Run {
        mbs: bytes as f64 / secs / 1e6,
        gw_cpu: gw1 - gw0,
        viewer_cpu: v1 - v0,
        viewer_bytes,
        screens,
    }
}

async fn fanout(stack: &Stack, o: &Opts) {
    let modes = [
        ("no viewers", 0, 0),
        ("reading viewers", o.viewers, 0),
        ("viewers, some never read", o.viewers - o.slow, o.slow),
        // The readers of the row above alone: what the ones that never read add.
        ("reading viewers, no stalled ones", o.viewers - o.slow, 0),
    ];
    let mut runs: Vec<Vec<Run>> = modes.iter().map(|_| Vec::new()).collect();
    for _ in 0..o.runs {
        for (i, &(_, readers, slow)) in modes.iter().enumerate() {
            runs[i].push(bulk(stack, o, readers, slow).await);
        }
    }
    let base = median(runs[0].iter().map(|r| r.mbs).collect());
    println!(
        "| mode (`ssh -tt … 'head -c {}M /dev/zero'` through the gateway, median of {}) | user's MB/s (runs) | vs no viewers | CPU s of the gateway process / of the viewer clients (median) | each reading viewer got (mean per run) |",
        o.mib, o.runs
    );
    println!("|---|---|---|---|---|");
    for (i, &(label, readers, slow)) in modes.iter().enumerate() {
        let r = &runs[i];
        let m = median(r.iter().map(|r| r.mbs).collect());
        let all: Vec<String> = r.iter().map(|r| format!("{:.0}", r.mbs)).collect();
        let per = (readers * o.runs).max(1) as f64;
        let got = if readers == 0 {
            "—".to_owned()
        } else {
            format!(
                "{:.1} MiB output, {:.1} screens",
                r.iter().map(|r| r.viewer_bytes).sum::<u64>() as f64 / per / 1048576.0,
                r.iter().map(|r| r.screens).sum::<u64>() as f64 / per
            )
        };
        let who = match (readers, slow) {
            (0, 0) => label.to_owned(),
            (r, 0) => format!("{r} {label}"),
            (r, s) => format!("{} {label} ({r} read, {s} never read)", r + s),
        };
        println!(
            "| {who} | {m:.1} ({}) | {:.3}× | {:.1} / {:.1} | {got} |",
            all.join(", "),
            m / base,
            median(r.iter().map(|r| r.gw_cpu).collect()),
            median(r.iter().map(|r| r.viewer_cpu).collect()),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--role") {
        assert_eq!(args.get(1).map(String::as_str), Some("viewers"));
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(role_viewers());
        return;
    }
    let o = opts();
    // PSM_BENCH_LOG=1: the gateway's log on stderr.
    if std::env::var_os("PSM_BENCH_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::stderr)
            .init();
    }
    let want = |p: &str| o.parts.is_empty() || o.parts.iter().any(|a| a == p);
    let model = String::from_utf8_lossy(&sh("lscpu | grep 'Model name'").stdout)
        .trim()
        .to_owned();
    println!(
        "Machine: {} cores, {model}; load before: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        load()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sshd = Sshd::start(ACCOUNT);
        let stack = start_stack(&sshd).await;
        if want("latency") {
            println!(
                "\n| delay from the target's write to arrival ({} lines, one every {} ms, pty) | lines | p50 | p99 | max |",
                o.lines, o.interval_ms
            );
            println!("|---|---|---|---|---|");
            latency(&stack, &o, 1).await;
            if o.viewers > 1 {
                latency(&stack, &o, o.viewers).await;
            }
        }
        if want("fanout") {
            println!();
            fanout(&stack, &o).await;
        }
        stack.link.stop().await;
        for s in stack.stops {
            let _ = s.send(());
        }
        let _ = &stack.dir;
    });
    println!("\nLoad after: {}", load());
}
