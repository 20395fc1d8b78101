//! The admin web UI in a real browser (Debian's Chromium driven by playwright-core) against
//! a real session: OpenSSH's `ssh` logs in through the PSM SSH gateway (psm-proxy) to a real
//! `sshd`; the admin logs in to the web UI, sees the session live, watches the user's typing
//! appear, pauses and resumes it, terminates it, replays it, searches for a command and opens
//! the replay at that second, and uses the browser terminal. Recorded output carrying
//! `<script>` and `<img onerror>` must never run. Screenshots of every step are kept under
//! `$CARGO_TARGET_DIR/psm-artifacts/screenshots/` (or `$PSM_ARTIFACTS/screenshots/`).
//!
//! Needs: chromium, openssh-server, openssh-client, sshpass (Debian), node and `npm ci`
//! (playwright-core). Runs as root (it creates the target account).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use psm_core::clock::SystemClock;
use psm_core::directory::{DirectoryAdmin, MemoryDirectory, NewUser, PasswordHash};
use psm_core::store::MemoryStore;
use psm_core::vault::{Keyring, MasterKey, MemoryVaultStore, PamSettings, Vault, VaultConfig};
use psm_core::{
    ControlPlane, Engine, EngineConfig, LocalControlPlane, ProcessInstance, SessionId,
    SessionLifecycle, Stage,
};
use psm_proxy::live::{LiveDeps, LiveLink, LiveServer, LiveServerConfig};
use psm_proxy::record::{RecorderConfig, RecorderFactory};
use psm_proxy::{HostKeyCheck, StaticTarget, StaticTargets, TargetCredential, TargetSecret};
use psm_proxy_ssh::{
    GatewayDeps, SshGateway, SshGatewayConfig, generate_host_key, host_key_public,
};
use psm_server::web::WebConfig;
use psm_server::{ApiKeys, Server, ServerConfig};
use serde_json::json;

mod browser;
mod web_support;

use browser::{Browser, PtyClient, WAIT, need};

#[path = "../../test-support/ports.rs"]
mod ports;
use ports::{free_port, wait_port};

const TARGET_USER: &str = "psmwebtest";
const ADMIN_PW: &str = "admin-Password-9";
const ALICE_PW: &str = "alice-Password-9";

fn screenshot_dir() -> PathBuf {
    let base = std::env::var_os("PSM_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .unwrap()
                .join("psm-artifacts")
        });
    base.join("screenshots").join("web")
}

fn target_password() -> &'static str {
    static PW: OnceLock<String> = OnceLock::new();
    PW.get_or_init(|| {
        need("useradd", "passwd");
        let pw = format!("Vault-{}", uuid::Uuid::new_v4().simple());
        let exists = Command::new("id")
            .arg(TARGET_USER)
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            let st = Command::new("useradd")
                .args(["-m", "-s", "/bin/bash", TARGET_USER])
                .status()
                .unwrap();
            assert!(
                st.success(),
                "useradd {TARGET_USER} failed (the test runs as root)"
            );
        }
        let mut child = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{TARGET_USER}:{pw}\n").as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "chpasswd failed");
        // A plain prompt that the command index reads back (`$ ` ends it).
        let home = PathBuf::from(format!("/home/{TARGET_USER}"));
        std::fs::write(home.join(".bashrc"), "PS1='\\u@web-01:\\w\\$ '\n").unwrap();
        pw
    })
}

/// A private sshd on a loopback port, stopped by PID on drop.
struct Sshd {
    _dir: tempfile::TempDir,
    port: u16,
    host_pub: String,
    child: Child,
}

impl Sshd {
    fn start() -> Self {
        need("/usr/sbin/sshd", "openssh-server");
        need("ssh-keygen", "openssh-client");
        target_password();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(d.join("host"))
            .status()
            .unwrap();
        assert!(st.success());
        let port = free_port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\nPidFile {d}/sshd.pid\n\
                 PasswordAuthentication yes\nPubkeyAuthentication yes\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nStrictModes no\nLogLevel INFO\n",
                d = d.display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        wait_port(port);
        let host_pub = std::fs::read_to_string(d.join("host.pub"))
            .unwrap()
            .trim()
            .to_owned();
        Self {
            _dir: dir,
            port,
            host_pub,
            child,
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser, driven step by step through web_browser.cjs.
/// A real OpenSSH client session through the gateway, in a 100x30 terminal.
fn ssh_client(gateway_port: u16, known_hosts: &Path) -> PtyClient {
    need("sshpass", "sshpass");
    PtyClient::start(
        100,
        30,
        "sshpass",
        &[
            "-p".to_owned(),
            ALICE_PW.to_owned(),
            "ssh".to_owned(),
            "-F".to_owned(),
            "/dev/null".to_owned(),
            "-o".to_owned(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "-o".to_owned(),
            "StrictHostKeyChecking=yes".to_owned(),
            "-o".to_owned(),
            "PreferredAuthentications=password".to_owned(),
            "-o".to_owned(),
            "PubkeyAuthentication=no".to_owned(),
            "-o".to_owned(),
            "ConnectTimeout=30".to_owned(),
            "-p".to_owned(),
            gateway_port.to_string(),
            "alice+web-01@127.0.0.1".to_owned(),
        ],
    )
}

async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < WAIT {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_watches_controls_replays_and_searches_a_real_session_in_chromium() {
    let sshd = Sshd::start();
    let data = tempfile::tempdir().unwrap();

    // Control plane, directory, the user's target.
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
    let cp = LocalControlPlane::new(engine.clone(), vault, PamSettings::default());
    let directory = Arc::new(MemoryDirectory::new());
    for (name, pw, role) in [("admin", ADMIN_PW, "admin"), ("alice", ALICE_PW, "ops")] {
        directory
            .create_user(&NewUser {
                name: name.parse().unwrap(),
                password: Some(PasswordHash::hash(pw).unwrap()),
                roles: vec![role.into()],
                ..NewUser::default()
            })
            .await
            .unwrap();
    }
    directory.grant("admin", "*").await.unwrap();
    directory.grant("ops", "web-01").await.unwrap();
    let targets = StaticTargets::new();
    targets.insert(
        "web-01",
        StaticTarget {
            host: "127.0.0.1".into(),
            port: sshd.port,
            host_key: HostKeyCheck::Pinned(vec![sshd.host_pub.clone()]),
            credential: TargetCredential {
                account: TARGET_USER.into(),
                secret: TargetSecret::Password(target_password().into()),
            },
            lifetime: None,
        },
    );
    // The web UI lists targets from the vault (the gateway here uses StaticTargets).
    cp.vault()
        .put_target(
            psm_core::vault::Target {
                name: "web-01".into(),
                host: "127.0.0.1".into(),
                port: sshd.port,
                protocol: psm_core::Protocol::Ssh,
                host_key: None,
            },
            "test",
        )
        .await
        .unwrap();

    // The web server's port first: the gateway's live listener allows its origin.
    let web_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web_url = format!("http://{}", web_listener.local_addr().unwrap());

    // The SSH gateway, recording into DATA/recordings, and its live listener and link.
    let me = ProcessInstance::new("gw-web").unwrap();
    let mut config = SshGatewayConfig::new("127.0.0.1:0".parse().unwrap(), me.clone());
    let host_key = generate_host_key();
    let (host_line, _) = host_key_public(&host_key);
    config.host_keys.push(host_key);
    config.heartbeat_interval = Duration::from_secs(1);
    let control_plane: Arc<dyn ControlPlane> = Arc::new(cp.clone());
    // The gateway's recording key, registered as psm up registers its gateway's: the replay
    // page trusts recordings of registered gateways only.
    let signing = psm_recording::SigningKey::generate().unwrap();
    psm_recording::layout::LocalLayout::new(data.path())
        .gateway_signers()
        .register("gw-web", &signing.verifying_key())
        .unwrap();
    let gateway = SshGateway::bind(
        config,
        GatewayDeps {
            control_plane: control_plane.clone(),
            directory: directory.clone(),
            targets: Arc::new(targets),
            taps: Arc::new(RecorderFactory::new(RecorderConfig::new(
                data.path().join("recordings"),
                signing,
                "web-browser-test",
            ))),
            registry: psm_proxy::SessionRegistry::new(),
        },
    )
    .await
    .unwrap();
    let gw_addr = gateway.local_addr();
    let mut live_config = LiveServerConfig::new("127.0.0.1:0".parse().unwrap(), me.clone());
    live_config.allowed_origins.push(web_url.clone());
    let live = LiveServer::bind(
        live_config,
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
        control_plane.clone(),
        gateway.registry(),
        me.clone(),
        Some(live_url.clone()),
    );
    let (stop_live, live_stopped) = tokio::sync::oneshot::channel::<()>();
    let live_task = tokio::spawn(live.run(async {
        let _ = live_stopped.await;
    }));
    let (stop_gw, gw_stopped) = tokio::sync::oneshot::channel::<()>();
    let gw_task = tokio::spawn(gateway.run(async {
        let _ = gw_stopped.await;
    }));

    // The web UI.
    let mut web = WebConfig::for_data_dir(data.path());
    web.live_gateway = Some(live_url.clone());
    web.refresh_seconds = 1;
    let server = Server::new(
        cp.clone(),
        ApiKeys::new(),
        data.path().join("artifacts"),
        ServerConfig::default(),
    )
    .with_directory(directory.clone())
    .with_web(web)
    .start(web_listener, None)
    .unwrap();

    let known_hosts = data.path().join("known_hosts");
    let mut parts = host_line.split_whitespace();
    std::fs::write(
        &known_hosts,
        format!(
            "[127.0.0.1]:{} {} {}\n",
            gw_addr.port(),
            parts.next().unwrap(),
            parts.next().unwrap()
        ),
    )
    .unwrap();

    let shots = screenshot_dir();
    let _ = std::fs::remove_dir_all(&shots);
    println!("screenshots go to {}", shots.display());
    let mut b = tokio::task::block_in_place(|| Browser::start(&shots));

    // 1. Log in.
    tokio::task::block_in_place(|| {
        b.goto(&format!("{web_url}/ui/"));
        b.wait("location.pathname === '/ui/login' && !!document.querySelector('#user')");
        b.shot("01-login");
        b.fill("#user", "admin");
        b.fill("#password", "wrong password");
        b.click("#login");
        b.wait("document.querySelector('#login-error').textContent.includes('wrong user name')");
        b.fill("#password", ADMIN_PW);
        b.click("#login");
        b.wait("!!document.querySelector('#sessions-body')");
    });

    // 2. Alice logs in with OpenSSH through the gateway; the session shows up live.
    let mut ssh = ssh_client(gw_addr.port(), &known_hosts);
    tokio::task::block_in_place(|| ssh.wait_output("$ "));
    let id: SessionId = {
        let start = Instant::now();
        loop {
            let live = cp.live_sessions().await.unwrap();
            if let Some((s, _)) = live.first() {
                break s.id;
            }
            assert!(start.elapsed() < WAIT, "the session never became Connected");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::task::block_in_place(|| {
        b.wait(&format!(
            "!!document.querySelector('tr[data-session=\"{id}\"].live')"
        ));
        b.shot("02-sessions-live");

        // 3. Watch it: the user's typing appears in the live view.
        b.goto(&format!("{web_url}/ui/session?id={id}&watch=1"));
        b.wait("window.psm.live && window.psm.live.connected");
        ssh.type_line("echo typed-by-alice-$((6*7))");
        ssh.wait_output("typed-by-alice-42");
        b.wait("window.psm.liveText && window.psm.liveText().includes('typed-by-alice-42')");
        // Recorded output that looks like markup is shown as text and never runs.
        ssh.type_line(
            "echo '<script>window.__pwned=1</script>' '<img src=x onerror=\"window.__pwned=2\">'",
        );
        b.wait("window.psm.liveText().includes('<img src=x onerror=')");
        b.shot("03-live-typing");
    });

    // 4. Pause: the user is told, their input is held.
    tokio::task::block_in_place(|| {
        b.fill("#reason", "checking this");
        b.click("#pause");
        b.wait("window.psm.lastControl && window.psm.lastControl.action === 'pause' && window.psm.lastControl.applied === true");
        ssh.wait_output("session paused by web:admin@");
        b.wait("!!document.querySelector('#flag-paused')");
        ssh.type_line("echo held-while-paused-$((100+1))");
    });
    // The held line must not reach the target while paused.
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| {
        let text = b.eval("window.psm.liveText()");
        assert!(
            !text.as_str().unwrap().contains("held-while-paused-101"),
            "input reached the target while paused:\n{text}"
        );
        b.shot("04-paused");

        // 5. Resume: the held input flows.
        b.click("#resume");
        b.wait(
            "window.psm.lastControl.action === 'resume' && window.psm.lastControl.applied === true",
        );
        b.wait("window.psm.liveText().includes('held-while-paused-101')");
        ssh.wait_output("held-while-paused-101");
        b.wait("!document.querySelector('#flag-paused')");
        b.shot("05-resumed");
        ssh.type_line("uname -s");
        b.wait("window.psm.liveText().includes('Linux')");

        // 6. Terminate with a reason the user sees.
        b.fill("#reason", "end of the browser test");
        b.click("#terminate");
        b.wait("window.psm.lastControl && window.psm.lastControl.action === 'terminate'");
        ssh.wait_output("end of the browser test");
    });
    tokio::task::block_in_place(|| ssh.wait_exit());
    wait_until("the session to end", || {
        let cp = cp.clone();
        async move { cp.engine().session(id).await.unwrap().stage != Stage::Connected }
    })
    .await;
    tokio::task::block_in_place(|| {
        b.wait("window.psm.live && !!window.psm.live.closed");
        b.shot("06-terminated");

        // 7. Replay, seek through the command list.
        b.goto(&format!("{web_url}/ui/replay?id={id}"));
        b.wait("window.psm.replay && window.psm.replay.ready && document.querySelectorAll('#commands .jump').length > 0");
        let commands = b.eval(
            "Array.from(document.querySelectorAll('#commands code')).map((c) => c.textContent)",
        );
        let commands: Vec<String> = serde_json::from_value(commands).unwrap();
        assert!(
            commands.iter().any(|c| c == "echo typed-by-alice-$((6*7))"),
            "{commands:?}"
        );
        assert!(commands.iter().any(|c| c == "uname -s"), "{commands:?}");
        b.step(json!({"op": "eval", "js": "window.psm.replay.player.play()"}));
        b.wait("window.psm.replay.currentTime() > 0");
        // The integrity check is said in words, not as Rust's debug text.
        b.wait("!!document.querySelector('#integrity')");
        let integrity = b.eval("document.querySelector('#integrity').textContent");
        assert!(
            integrity
                .as_str()
                .unwrap()
                .starts_with("Signed and complete: header and signed trailer verified"),
            "{integrity}"
        );
        b.shot("07-replay");
        b.click("#commands li:nth-child(3) .jump");
        b.wait("window.psm.replay.seekedTo > 0");
        b.shot("08-replay-seek");

        // 8. Search for the command; the hit opens the replay at its second.
        b.goto(&format!("{web_url}/ui/search?q=uname%20-s&kind=command"));
        b.wait("window.psm.search && window.psm.search.sessions.length > 0");
        b.shot("09-search");
        let t = b
            .eval("window.psm.search.sessions[0].hits[0].time")
            .as_f64()
            .unwrap();
        assert!(t > 0.0, "the hit has its second");
        b.click(".hit-link");
        b.wait(
            "location.pathname === '/ui/replay' && window.psm.replay && window.psm.replay.ready",
        );
        let start = b
            .eval("Number(new URLSearchParams(location.search).get('t'))")
            .as_f64()
            .unwrap();
        assert!(
            (start - t).abs() < 0.001,
            "opened at {start}, the hit was at {t}"
        );
        b.shot("10-replay-from-search");

        // 9. Search terms and results that look like markup stay text.
        b.goto(&format!(
            "{web_url}/ui/search?q={}",
            web_support::urlencode("<img src=x onerror=\"window.__pwned=2\">")
        ));
        b.wait("window.psm.search && window.psm.search.sessions.length > 0");
        let imgs = b.eval("document.querySelectorAll('main img').length");
        assert_eq!(imgs, 0, "no element was made from recorded text");
        let marks = b.eval(
            "Array.from(document.querySelectorAll('#results mark')).map((m) => m.textContent)",
        );
        assert!(marks.to_string().contains("<img src=x onerror="), "{marks}");
        b.shot("11-search-markup-is-text");

        // 10. The browser terminal (the seed's main flow): pick the target, get a shell.
        b.goto(&format!("{web_url}/ui/terminal"));
        b.wait("!!document.querySelector('button.target[data-target=\"web-01\"]')");
        b.click("button.target[data-target=\"web-01\"]");
        b.wait("window.psm.terminal && window.psm.terminal.connected");
        b.wait("window.psm.terminalText().includes('$ ')");
        b.step(json!({"op": "type", "text": "echo from-the-browser-$((2*21))"}));
        b.step(json!({"op": "press", "key": "Enter"}));
        b.wait("window.psm.terminalText().includes('from-the-browser-42')");
        b.shot("12-browser-terminal");
    });
    let browser_session = tokio::task::block_in_place(|| {
        b.eval("window.psm.terminal.session")
            .as_str()
            .map(str::to_owned)
    });
    tokio::task::block_in_place(|| {
        b.step(json!({"op": "type", "text": "exit"}));
        b.step(json!({"op": "press", "key": "Enter"}));
        b.wait("!!window.psm.terminal.closed");
    });

    // 11. `ssh -tt` from a script: a pty is forced but the client has no terminal, so it
    // asks for 0 × 0 cells. The recording opens the terminal at 80 × 24 (it used to record
    // 1 × 1, which replayed as a grey block).
    let before: Vec<SessionId> = cp
        .engine()
        .list(&Default::default())
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    let out = tokio::task::block_in_place(|| {
        let mut child = Command::new("sshpass")
            .args(["-p", ALICE_PW, "ssh", "-tt", "-F", "/dev/null"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args(["-o", "StrictHostKeyChecking=yes"])
            .args(["-o", "PreferredAuthentications=password"])
            .args(["-o", "PubkeyAuthentication=no", "-o", "ConnectTimeout=30"])
            .args(["-p", &gw_addr.port().to_string(), "alice+web-01@127.0.0.1"])
            .arg("echo scripted-$((3*5))")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < WAIT, "ssh -tt did not finish");
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    });
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains("scripted-15"),
        "ssh -tt: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scripted = cp
        .engine()
        .list(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .find(|s| !before.contains(&s.id))
        .expect("the ssh -tt session")
        .id;
    wait_until("the ssh -tt session to end", || {
        let cp = cp.clone();
        async move { cp.engine().session(scripted).await.unwrap().stage != Stage::Connected }
    })
    .await;
    tokio::task::block_in_place(|| {
        let header = b.eval(&format!(
            "fetch('/ui/api/recordings/{scripted}/cast').then((r) => r.text()).then((t) => JSON.parse(t.split('\\n')[0]))"
        ));
        assert_eq!(
            (header["width"].clone(), header["height"].clone()),
            (json!(80), json!(24)),
            "the replay of ssh -tt: {header}"
        );
        b.goto(&format!("{web_url}/ui/replay?id={scripted}"));
        b.wait("window.psm.replay && window.psm.replay.ready");
        b.shot("12b-replay-ssh-tt");
        b.goto(&format!("{web_url}/ui/sessions"));
        b.wait("document.querySelectorAll('#sessions-body tr[data-session]').length >= 2");
        b.shot("13-sessions-after");
        b.close();
    });
    if let Some(bs) = browser_session {
        let s = cp.engine().session(bs.parse().unwrap()).await.unwrap();
        assert_eq!(
            s.user, "admin",
            "the browser terminal runs as the logged-in user"
        );
        assert_eq!(s.target, "web-01");
    }

    // What the admin did is in the session's audit trail, with the admin as actor.
    let trail = cp.engine().audit_trail(id).await.unwrap();
    let details: Vec<String> = trail
        .iter()
        .map(|e| format!("{} {}", e.record.actor, e.record.detail))
        .collect();
    for needle in [
        "paused by web:admin@",
        "resumed by web:admin@",
        "web: terminate requested",
    ] {
        assert!(
            details.iter().any(|d| d.contains(needle)),
            "{needle} missing from {details:#?}"
        );
    }

    let _ = stop_gw.send(());
    let _ = tokio::time::timeout(WAIT, gw_task).await;
    let _ = stop_live.send(());
    let _ = tokio::time::timeout(WAIT, live_task).await;
    link.stop().await;
    server.stop().await;
    println!("screenshots: {}", shots.display());
}

/// An RDP session's recording, encoded by the real encoder (psm-pipeline driving Debian's
/// ffmpeg) into `session.mp4` and `contact-sheet.png`, replays in Chromium's own video
/// player: the replay page shows the video with its full duration, seeks it (the server
/// answers byte ranges), opens it at `t=`, shows the contact sheet, and the frame on screen
/// at a second is the colour the recording painted at that second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdp_session_replays_as_a_seekable_video_in_chromium() {
    use psm_recording::{BlockingWriter, EventKind, Header, Micros, WriterConfig};
    need("ffmpeg", "ffmpeg (Debian)");
    // The web UI's test harness: a real psm-server over an in-memory control plane, with an
    // admin, serving the data directory the encoder writes into.
    let web = web_support::start(|_| {}).await;
    let cp = web.cp.clone();
    let engine = cp.engine().clone();

    // The session and its recording: a dark desktop whose left half turns red, green, blue
    // and yellow at 1, 2, 3 and 4 s; it ends at 6 s.
    const W: u32 = 320;
    const H: u32 = 240;
    let colours: [[u8; 3]; 4] = [[220, 30, 30], [30, 200, 30], [30, 30, 220], [230, 230, 40]];
    let solid = |w: u32, h: u32, c: [u8; 3]| {
        let px: Vec<u8> = (0..w * h).flat_map(|_| [c[0], c[1], c[2], 255]).collect();
        psm_recording::export::encode_png(w, h, &px).unwrap()
    };
    let frame = |w: u32, c: [u8; 3]| EventKind::Frame {
        x: 0,
        y: 0,
        width: w,
        height: H,
        png: solid(w, H, c),
    };
    let gw = ProcessInstance::new("rdp-gw-web").unwrap();
    let id = SessionId::new();
    cp.open_session(psm_core::NewSession {
        id,
        user: "alice".into(),
        target: "desk-01".into(),
        protocol: psm_core::Protocol::Rdp,
        checkout_id: None,
        process_instance: gw.clone(),
    })
    .await
    .unwrap();
    let layout = psm_pipeline::LocalLayout::new(web.data.path());
    layout.create().unwrap();
    let signing = psm_recording::SigningKey::generate().unwrap();
    layout
        .gateway_signers()
        .register("rdp-gw", &signing.verifying_key())
        .unwrap();
    let mut w = BlockingWriter::create(
        layout.raw_recording(id),
        Header::new(
            id,
            psm_recording::Protocol::Rdp,
            "alice",
            "desk-01",
            "web-browser-test",
        ),
        signing,
        WriterConfig::default(),
    )
    .unwrap();
    // As the RDP gateway records: raw palette pixels (the keyframe, blue), with PNG stills
    // where a region has too many colours (here: red, green and yellow).
    let mut palette = psm_recording::graphics::Palette::new();
    let mut pixels = |w: u32, c: [u8; 3]| {
        let px: Vec<u8> = (0..w * H).flat_map(|_| [c[0], c[1], c[2], 255]).collect();
        EventKind::Pixels {
            x: 0,
            y: 0,
            width: w,
            height: H,
            indices: palette.indices(&px).unwrap(),
            palette: palette.rgb(),
        }
    };
    w.record_at(Micros(0), &pixels(W, [40, 40, 40])).unwrap();
    for (i, c) in colours.iter().enumerate() {
        let event = if i == 2 {
            pixels(W / 2, *c)
        } else {
            frame(W / 2, *c)
        };
        w.record_at(Micros((i as u64 + 1) * 1_000_000), &event)
            .unwrap();
    }
    w.finish_at(Micros(6_000_000), "user logged off").unwrap();
    cp.end_session(id, &gw).await.unwrap();
    // The encoder signs its manifest with its key, registered as psm up registers its
    // encoder's: the replay page plays only exports a registered encoder's manifest lists.
    let encoder_key = psm_recording::SigningKey::generate().unwrap();
    layout
        .encoder_signers()
        .register("encoder-web", &encoder_key.verifying_key())
        .unwrap();
    let settings = psm_pipeline::EncoderSettings {
        index_key: Some(encoder_key),
        ..psm_pipeline::EncoderSettings::default()
    };
    let encoder = Arc::new(psm_pipeline::Encoder::new(
        Arc::new(cp.clone()),
        layout.clone(),
        settings,
        psm_pipeline::WorkerConfig::new(ProcessInstance::new("encoder-web").unwrap()),
    ));
    let summary = encoder.run_until_idle().await;
    assert_eq!(summary.completed, [id], "{summary:?}");
    assert!(layout.exports_dir(id).join("session.mp4").is_file());
    assert_eq!(engine.session(id).await.unwrap().stage, Stage::DoneEncoded);

    let web_url = web.url.clone();

    let shots = screenshot_dir().with_file_name("screenshots-rdp");
    let _ = std::fs::remove_dir_all(&shots);
    let mut b = tokio::task::block_in_place(|| Browser::start(&shots));
    tokio::task::block_in_place(|| {
        b.goto(&format!("{web_url}/ui/"));
        b.wait("location.pathname === '/ui/login' && !!document.querySelector('#user')");
        b.fill("#user", web_support::ADMIN.0);
        b.fill("#password", web_support::ADMIN.1);
        b.click("#login");
        b.wait("!!document.querySelector('#sessions-body')");

        b.goto(&format!("{web_url}/ui/replay?id={id}"));
        b.wait("window.psm.replay && (window.psm.replay.ready || window.psm.replay.error)");
        let error = b.eval("window.psm.replay.error || ''");
        assert_eq!(error, json!(""), "the replay page: {error}");
        let duration = b.eval("window.psm.replay.video.duration");
        assert!(
            (duration.as_f64().unwrap() - 6.0).abs() < 0.6,
            "video duration {duration}"
        );
        b.wait("document.querySelector('#contact-sheet') && document.querySelector('#contact-sheet').naturalWidth > 0");
        b.wait("window.psm.replay.index && document.querySelectorAll('#index .chunk').length > 0");
        b.shot("rdp-01-replay");
        // A graphical session has no command list to filter.
        assert_eq!(
            b.eval("!!document.querySelector('#command-filter')"),
            json!(false)
        );

        // Seek to 3.5 s: the left half is blue there (painted at 3 s), the right half dark.
        b.step(json!({"op": "eval", "js": "window.psm.replay.seek(3.5)"}));
        b.wait("Math.abs((window.psm.replay.seekedAt || 0) - 3.5) < 0.3");
        let pixel = |b: &mut Browser, x: u32| -> Vec<u8> {
            let v = b.eval(&format!(
                "(() => {{ const v = window.psm.replay.video; const c = document.createElement('canvas'); \
                 c.width = v.videoWidth; c.height = v.videoHeight; const g = c.getContext('2d'); \
                 g.drawImage(v, 0, 0); return Array.from(g.getImageData({x}, 120, 1, 1).data); }})()"
            ));
            serde_json::from_value(v).unwrap()
        };
        let near = |p: &[u8], c: [u8; 3]| p.iter().zip(c).all(|(a, b)| a.abs_diff(b) <= 40);
        let left = pixel(&mut b, 40);
        assert!(near(&left, colours[2]), "left half at 3.5 s: {left:?}");
        let right = pixel(&mut b, 280);
        assert!(near(&right, [40, 40, 40]), "right half at 3.5 s: {right:?}");
        b.shot("rdp-02-seek");

        // Opened at a second from a link (as search results do).
        b.goto(&format!("{web_url}/ui/replay?id={id}&t=1.5"));
        b.wait("window.psm.replay && window.psm.replay.ready && Math.abs((window.psm.replay.seekedAt || 0) - 1.5) < 0.3");
        let left = pixel(&mut b, 40);
        assert!(near(&left, colours[0]), "left half at 1.5 s: {left:?}");
        b.shot("rdp-03-open-at");
    });
    tokio::task::block_in_place(|| b.close());
    web.stop().await;
}

/// Logs the admin of the web_support harness in.
fn log_in(b: &mut Browser, web_url: &str) {
    b.goto(&format!("{web_url}/ui/"));
    b.wait("location.pathname === '/ui/login' && !!document.querySelector('#user')");
    b.fill("#user", web_support::ADMIN.0);
    b.fill("#password", web_support::ADMIN.1);
    b.click("#login");
    b.wait("!!document.querySelector('#sessions-body')");
}

/// The text of the session page's details row `name`.
fn info_row(b: &mut Browser, name: &str) -> String {
    let v = b.eval(&format!(
        "(() => {{ const dt = Array.from(document.querySelectorAll('#session-info dt')).find((d) => d.textContent === {name:?}); \
         return dt ? dt.nextElementSibling.textContent : null; }})()"
    ));
    v.as_str()
        .unwrap_or_else(|| panic!("no {name} row: {v}"))
        .to_owned()
}

/// A session page opened while the session is live, with a command queued for a gateway
/// that never confirms it: once the session ends, the live controls go and so does the
/// "queued … not confirmed yet" note. Once the encoder owns the session, the page still
/// names the gateway that ran it, and the encoder as its current owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_page_drops_live_controls_once_the_session_ends_in_chromium() {
    let web = web_support::start(|c| {
        c.refresh_seconds = 1;
        c.control_wait = Duration::from_millis(500);
    })
    .await;
    let engine = web.cp.engine().clone();
    // Opened by gateway gw-1, which is not running: nothing confirms commands.
    let id = web.open_session("alice", "web-01").await;
    let gw = ProcessInstance::new("gw-1").unwrap();
    let web_url = web.url.clone();
    let shots = screenshot_dir().with_file_name("screenshots-session-page");
    let _ = std::fs::remove_dir_all(&shots);
    let mut b = tokio::task::block_in_place(|| Browser::start(&shots));
    tokio::task::block_in_place(|| {
        log_in(&mut b, &web_url);
        b.goto(&format!("{web_url}/ui/session?id={id}"));
        b.wait(
            "!!document.querySelector('#controls') && !document.querySelector('#controls').hidden",
        );
        b.fill("#reason", "checking this");
        b.click("#pause");
        b.wait("window.psm.lastControl && window.psm.lastControl.action === 'pause'");
        assert_eq!(b.eval("window.psm.lastControl.applied"), json!(false));
        b.wait("document.querySelector('#control-message').textContent.includes('has not confirmed it yet')");
        b.shot("session-01-live-queued");
    });
    engine.end_session(id, &gw).await.unwrap();
    tokio::task::block_in_place(|| {
        // The page refreshes itself (every second here) and sees the session ended.
        b.wait("window.psm.session && window.psm.session.live === false");
        b.wait("document.querySelector('#controls').hidden");
        let message = b.eval("document.querySelector('#control-message').textContent");
        assert_eq!(message, json!(""), "the queued note stayed");
        assert_eq!(
            b.eval("document.querySelector('#live-section').hidden"),
            json!(true)
        );
        assert_eq!(
            b.eval("!!document.querySelector('#controls button:not([hidden])') && document.querySelector('#controls').offsetParent !== null"),
            json!(false),
            "a live control is still visible"
        );
        b.shot("session-02-ended");
    });
    let encoder = ProcessInstance::new("encoder-7").unwrap();
    assert_eq!(
        engine.claim_for_encoding(&encoder, 10).await.unwrap().len(),
        1
    );
    tokio::task::block_in_place(|| {
        b.goto(&format!("{web_url}/ui/session?id={id}"));
        b.wait("window.psm.session && window.psm.session.stage === 'Encoding'");
        assert_eq!(info_row(&mut b, "Gateway"), "gw-1");
        assert_eq!(info_row(&mut b, "Current owner"), "encoder-7 (Encoding)");
        assert_eq!(
            b.eval("!!document.querySelector('#controls')"),
            json!(false)
        );
        b.shot("session-03-encoding");
        b.close();
    });
    web.stop().await;
}

/// A long query typed into the search box (spaces, quotes, markup, accents, CJK, an emoji;
/// over 300 characters) is searched whole, found, kept whole in the box and the URL, and
/// visible: the box takes the row's width.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_box_keeps_a_long_query_whole_in_chromium() {
    let web = web_support::start(|_| {}).await;
    let needle = web_support::long_query();
    let id = web.open_session("alice", "web-01").await;
    web.record(
        id,
        "alice",
        "web-01",
        &[("cat notes.txt", &needle), ("uname -s", "Linux")],
    )
    .await;
    let web_url = web.url.clone();
    let shots = screenshot_dir().with_file_name("screenshots-search");
    let _ = std::fs::remove_dir_all(&shots);
    let mut b = tokio::task::block_in_place(|| Browser::start(&shots));
    tokio::task::block_in_place(|| {
        log_in(&mut b, &web_url);
        b.goto(&format!("{web_url}/ui/search"));
        b.wait("!!document.querySelector('#q')");
        b.click("#q");
        // Typed as a user types (and pastes: characters off the keyboard are inserted as
        // text), so the browser applies whatever limits the box has.
        b.step(json!({"op": "type", "text": needle, "timeout": 120000}));
        let typed = b.eval("document.querySelector('#q').value");
        assert_eq!(typed, json!(needle), "the search box cut the query");
        b.step(json!({"op": "press", "key": "Enter"}));
        b.wait("window.psm.search && window.psm.search.sessions.length > 0");
        assert_eq!(b.eval("window.psm.search.query"), json!(needle));
        assert_eq!(
            b.eval("new URLSearchParams(location.search).get('q')"),
            json!(needle)
        );
        let marks = b.eval(
            "Array.from(document.querySelectorAll('#results mark')).map((m) => m.textContent)",
        );
        assert!(
            marks
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m == &json!(needle)),
            "no hit marks the whole query: {marks}"
        );
        // The box shows a good part of the query, not 20 characters of it.
        let width = b.eval("document.querySelector('#q').getBoundingClientRect().width");
        assert!(
            width.as_f64().unwrap() > 400.0,
            "the search box is {width} px wide"
        );
        b.shot("search-01-long-query");

        // Opened from its URL (a bookmark, the back button): the same query, whole.
        let url = b.eval("location.href");
        b.goto(url.as_str().unwrap());
        b.wait("window.psm.search && window.psm.search.sessions.length > 0 && window.psm.search.query.length > 0");
        assert_eq!(b.eval("document.querySelector('#q').value"), json!(needle));
        assert_eq!(b.eval("window.psm.search.query"), json!(needle));
        b.shot("search-02-from-url");
        b.close();
    });
    web.stop().await;
}
