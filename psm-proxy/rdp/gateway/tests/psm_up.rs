//! `psm up` runs the RDP gateway: the real `psm up` (the main workspace's binary) finds this
//! workspace's `psm-rdp-gateway` through `$PSM_RDP_GATEWAY`, starts it as a supervised child
//! against its own control plane and says so. An operator adds the xrdp target (its
//! certificate pinned) and a user with the real `psm` CLI; FreeRDP (under Xvfb) logs in through
//! `psm up`'s RDP port as `alice+desk-01` with alice's PSM password; the control plane lists
//! the session Connected and receives its screenshot; once FreeRDP leaves, the node's encoder
//! and uploader carry it to Done-Uploaded, with its `.psmr`, transcript, video and contact
//! sheet in the store under the data directory. While it runs, the admin watches it in the
//! web UI (Chromium): the desktop in a canvas, Pause confirmed by the gateway (the user's
//! typing then reaches nothing), Join with control typing a command into the target's xterm,
//! each action a marker in the recording. A SIGKILLed gateway is started again by `psm up`;
//! SIGINT to `psm up` stops both. The target's password is in none of the outputs.
//!
//! `psm` is found through `PSM_BIN`, else in the main workspace's target directory
//! (`scripts/test` builds every binary before the RDP tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/common/mod.rs"]
mod common;

#[path = "../../../../psm-server/tests/browser/mod.rs"]
mod browser;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use psm_client::{Client, ClientConfig};
use psm_core::{Protocol, Stage};

const ROLE: &str = "desktop-ops";

/// `[recording]` for these tests' `psm up`: a 64 MiB floor instead of the 1 GiB default. They
/// run on shared CI disks whose free space other tenants move (0.9 % of 258 GB once), and a
/// node below its floor rightly stops encoding; the floor itself is tested elsewhere
/// (psm-proxy's `recording_limits`, psm-pipeline's `storage_faults`).
const RECORDING_SECTION: &str = "[recording]\nmin_free_mib = 64\n";

fn psm_bin() -> PathBuf {
    std::env::var_os("PSM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| main_bin("psm"))
}

fn client(url: &str, key_file: &Path) -> Client {
    let key = std::fs::read_to_string(key_file).unwrap();
    Client::new(ClientConfig::new(url).with_api_key(key.trim())).unwrap()
}

fn log_file(path: &Path) -> Stdio {
    Stdio::from(std::fs::File::create(path).unwrap())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `psm up`, interrupted (SIGINT, as Ctrl-C) when dropped; any gateway it left behind with
/// this data directory in its arguments is then killed by PID.
struct Up {
    child: Child,
    data: PathBuf,
}

impl Up {
    fn interrupt(&self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
    }

    /// Waits for it to exit.
    fn wait(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if start.elapsed() > within {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.interrupt();
            if self.wait(Duration::from_secs(20)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        for pid in gateway_pids(&self.data) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// The `psm-rdp-gateway` processes whose arguments name `data` (the ones this test's
/// `psm up` started), from /proc.
/// What tells why a session did not move through the pipeline: the data disk's free space
/// (the encoder stops below `[recording] min_free_*`), psm up's warnings and errors, then its
/// whole log.
fn pipeline_state(data: &Path, up_err: &Path) -> String {
    let log = read(up_err);
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    format!(
        "data disk: {:?}\npsm up's warnings and errors:\n{}\npsm up's log:\n{log}",
        psm_core::files::DiskSpace::of(data).map(|s| s.to_string()),
        warnings.join("\n")
    )
}

fn gateway_pids(data: &Path) -> Vec<u32> {
    let data = data.as_os_str().as_encoded_bytes();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let mut args = cmdline.split(|b| *b == 0);
        let program = args.next().unwrap_or_default();
        if program.ends_with(b"psm-rdp-gateway") && args.any(|a| a == data) {
            pids.push(pid);
        }
    }
    pids
}

/// Runs the `psm` CLI with `stdin`; returns stdout + stderr, asserting success.
fn psm(args: &[&str], data: &Path, stdin: &str) -> String {
    let mut child = Command::new(psm_bin())
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("PSM_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "psm {args:?}: {printed}");
    printed
}

/// The certificate's SHA-256 fingerprint as `psm targets add --host-key` takes it, read with
/// openssl as an operator would.
fn fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .trim()
        .split_once('=')
        .unwrap_or_else(|| panic!("openssl said: {text}"))
        .1;
    format!("sha256:{}", hex.replace(':', "").to_lowercase())
}

/// Every file under `dir` whose path contains `needle` and whose name satisfies `name`.
fn files(dir: &Path, needle: &str, name: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.to_string_lossy().contains(needle)
                && p.file_name().and_then(|n| n.to_str()).is_some_and(&name)
            {
                found.push(p);
            }
        }
    }
    found
}

fn accepts(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psm_up_runs_supervises_and_stops_the_rdp_gateway() {
    require_all();
    let psm_program = psm_bin();
    let _lock = MachineLock::take();
    let dir = tempfile::tempdir().unwrap();
    let target_password = target_account();
    let xrdp = Xrdp::start(dir.path());

    // psm up, on free loopback ports, with this workspace's gateway.
    let data = dir.path().join("data");
    let [api, ssh, live, rdp, rdp_web, rdp_live] = [(); 6].map(|()| free_port());
    let (up_out, up_err) = (dir.path().join("up.out"), dir.path().join("up.err"));
    // The operator's configuration: the session drive allowed, and a command policy whose
    // transfer rule keeps keys on the server.
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[rule]]\nname = \"no-key-export\"\non = \"transfer\"\nglob = \"PSM/*.key\"\n\
         direction = \"download\"\naction = \"lock\"\nmessage = \"keys stay on the server\"\n",
    )
    .unwrap();
    let config = dir.path().join("psm.toml");
    std::fs::write(
        &config,
        format!(
            "[rdp]\nallow_drive = true\n\n[policy]\nfile = \"{}\"\n\n{RECORDING_SECTION}",
            policy.display()
        ),
    )
    .unwrap();
    let child = Command::new(&psm_program)
        .arg("up")
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .args([
            "--api-listen",
            &format!("127.0.0.1:{api}"),
            "--ssh-listen",
            &format!("127.0.0.1:{ssh}"),
            "--live-listen",
            &format!("127.0.0.1:{live}"),
            "--rdp-listen",
            &format!("127.0.0.1:{rdp}"),
            "--rdp-web-listen",
            &format!("127.0.0.1:{rdp_web}"),
            "--rdp-live-listen",
            &format!("127.0.0.1:{rdp_live}"),
            "--watchdog-interval",
            "1",
            // The database gateways' default ports would be shared by tests running at once.
            "--no-postgres",
            "--no-mysql",
        ])
        .env("PSM_RDP_GATEWAY", env!("CARGO_BIN_EXE_psm-rdp-gateway"))
        .env("RUST_LOG", "info")
        .env_remove("PSM_CONFIG")
        .env_remove("PSM_DATA")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log_file(&up_out))
        .stderr(log_file(&up_err))
        .spawn()
        .unwrap();
    let mut up = Up {
        child,
        data: data.clone(),
    };
    let start = Instant::now();
    while !read(&up_out).contains("Press Ctrl-C") {
        assert!(
            matches!(up.child.try_wait(), Ok(None)),
            "psm up exited:\n{}\n{}",
            read(&up_out),
            read(&up_err)
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "psm up did not come up:\n{}\n{}",
            read(&up_out),
            read(&up_err)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let printed = read(&up_out);
    assert!(
        printed.contains(&format!("RDP gateway: 127.0.0.1:{rdp}"))
            && !printed.contains("not started"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("xfreerdp /v:127.0.0.1:{rdp} ")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("live:     127.0.0.1:{rdp_live} ")),
        "{printed}"
    );
    assert!(
        printed.contains("(1 rules; SSH sessions, RDP transfers)"),
        "{printed}"
    );
    let admin_password = printed
        .split("first admin: user admin, password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no first admin password in:\n{printed}"))
        .to_owned();
    assert!(data.join("rdp").join("gateway.crt").is_file());
    wait_addr(
        format!("127.0.0.1:{rdp}").parse().unwrap(),
        Duration::from_secs(30),
    );
    let first = gateway_pids(&data);
    assert_eq!(first.len(), 1, "one gateway child: {first:?}");

    // The operator adds alice and the target with the CLI, beside the running node.
    let said = psm(
        &["users", "add", PSM_USER, "--role", ROLE, "--password-stdin"],
        &data,
        PSM_PASSWORD,
    );
    let pin = fingerprint(&dir.path().join("xrdp.crt"));
    let said = said
        + &psm(
            &[
                "targets",
                "add",
                "desk-01",
                "--protocol",
                "rdp",
                "--host",
                "127.0.0.1",
                "--port",
                &xrdp.port.to_string(),
                "--user",
                TARGET_USER,
                "--password-stdin",
                "--host-key",
                &pin,
                "--grant",
                ROLE,
            ],
            &data,
            &target_password,
        );
    assert!(!said.contains(&target_password), "the CLI's output");

    // FreeRDP through psm up's RDP port, as alice, with her PSM password.
    let url = format!("http://127.0.0.1:{api}");
    let admin = client(&url, &data.join("keys").join("admin.key"));
    let display = Display::start();
    let freerdp_log = dir.path().join("xfreerdp.log");
    let mut freerdp = xfreerdp(
        &display,
        rdp,
        &format!("{PSM_USER}+desk-01"),
        PSM_PASSWORD,
        &["/sec:tls"],
        &freerdp_log,
    );
    let mut live_session = None;
    for _ in 0..600 {
        if let Some(s) = admin
            .live_sessions()
            .await
            .unwrap()
            .sessions
            .into_iter()
            .next()
        {
            live_session = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let live_session = live_session.unwrap_or_else(|| {
        panic!(
            "no live session in psm up's control plane; psm up's log:\n{}\nFreeRDP:\n{}",
            read(&up_err),
            read(&freerdp_log)
        )
    });
    assert_eq!(live_session.user, PSM_USER);
    assert_eq!(live_session.target, "desk-01");
    assert_eq!(live_session.protocol, Protocol::Rdp);
    assert_eq!(live_session.gateway.as_deref(), Some("rdp-gateway-1"));
    let id = live_session.session;
    let stage = |s: Vec<psm_client::wire::RecordingStatusEntry>| {
        s.into_iter().find(|e| e.session == id).unwrap()
    };
    assert_eq!(
        stage(admin.get_recording_process_status(&[id]).await.unwrap()).status,
        Stage::Connected
    );
    eventually("the FreeRDP window", Duration::from_secs(30), || {
        display.freerdp_window().is_some()
    })
    .await;
    // The target's desktop came through: the gateway pushed its first screenshot to psm up's
    // control plane (DATA/artifacts/SESSION/screenshots/).
    let id_text = id.to_string();
    eventually(
        "a screenshot in psm up's control plane",
        Duration::from_secs(30),
        || {
            files(&data.join("artifacts"), &id_text, |n| n.ends_with(".png"))
                .iter()
                .any(|p| std::fs::read(p).is_ok_and(|b| b.starts_with(b"\x89PNG\r\n\x1a\n")))
        },
    )
    .await;
    // Let the desktop draw into the recording for a while.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The admin watches it in the web UI, pauses it, and joins with control.
    let window = display.freerdp_window().unwrap();
    let proofs = format!("/tmp/psm-rdp-live-{}", std::process::id());
    let (held, typed) = (format!("{proofs}-held"), format!("{proofs}-admin"));
    for p in [&held, &typed] {
        let _ = std::fs::remove_file(p);
    }
    let shots = std::env::var_os("PSM_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("shots"));
    let mut b = browser::Browser::start(&shots);
    b.goto(&format!("{url}/ui/"));
    b.wait("!!document.querySelector('#password')");
    b.fill("#user", "admin");
    b.fill("#password", &admin_password);
    b.click("#login");
    b.wait("!!document.querySelector('#sessions-body tr[data-session].live')");
    b.goto(&format!("{url}/ui/session?id={id}&watch=1"));
    b.wait("window.psm.live && window.psm.live.connected");
    // The desktop arrives as tiles in a canvas of the session's size, and shows something.
    b.wait("window.psm.liveStats && window.psm.liveStats.width === 1024 && window.psm.liveStats.height === 768 && window.psm.liveStats.tiles > 0");
    let lit_pixels = "(() => { const c = document.querySelector('#live-desktop'); \
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; \
        for (let i = 0; i < d.length; i += 4) if (d[i] || d[i + 1] || d[i + 2]) n++; return n; })()";
    b.wait(&format!("{lit_pixels} > 5000"));
    b.shot("rdp-01-watch");

    // Pause, confirmed by the gateway through the live link: the user's typing is dropped.
    b.fill("#reason", "checking the desktop");
    b.click("#pause");
    b.wait("window.psm.lastControl && window.psm.lastControl.action === 'pause' && window.psm.lastControl.applied === true");
    display.type_line(&window, &format!("touch {held}"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.click("#resume");
    b.wait("window.psm.lastControl.action === 'resume' && window.psm.lastControl.applied === true");
    // A line typed while paused never reached the target (Enter then ends whatever part of
    // it an xterm may hold, so the next command starts clean).
    display.type_line(&window, "");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !Path::new(&held).exists(),
        "the user's input reached the target while paused"
    );

    // Join with control: the admin's keys reach the target's xterm.
    b.click("#join-control");
    b.wait("window.psm.live && window.psm.live.connected && window.psm.live.mode === 'control'");
    b.wait("window.psm.liveStats && window.psm.liveStats.tiles > 0");
    b.click("#live-desktop");
    b.type_line(&format!("touch {typed}"));
    eventually(
        "the admin's command ran on the target",
        Duration::from_secs(30),
        || Path::new(&typed).exists(),
    )
    .await;
    b.shot("rdp-02-join-control");

    // The policy's transfer rule on the session drive: the admin runs a script on the
    // target that writes a file no rule names and a key the rule keeps on the server.
    let (script, done) = (format!("{proofs}-drive.sh"), format!("{proofs}-drive-done"));
    let _ = std::fs::remove_file(&done);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nD=\"$HOME/thinclient_drives/PSM\"\n\
             for i in $(seq 1 120); do [ -d \"$D\" ] && break; sleep 0.5; done\n\
             echo fine > \"$D/fine.txt\"\necho secret > \"$D/leak.key\"\ntouch {done}\n"
        ),
    )
    .unwrap();
    assert!(
        Command::new("chmod")
            .args(["755", &script])
            .status()
            .unwrap()
            .success()
    );
    b.type_line(&format!("sh {script}"));
    eventually(
        "the drive script on the target",
        Duration::from_secs(90),
        || Path::new(&done).exists(),
    )
    .await;
    let folder = data.join("drives").join(id.to_string());
    eventually(
        "fine.txt on the gateway's session drive",
        Duration::from_secs(30),
        || std::fs::read(folder.join("fine.txt")).is_ok_and(|b| b == b"fine\n"),
    )
    .await;
    assert!(
        std::fs::read(folder.join("leak.key"))
            .unwrap_or_default()
            .is_empty(),
        "the key left the target"
    );
    // The rule's action: the session is locked, and the web UI says so.
    b.wait("!!document.querySelector('#flag-locked')");
    b.shot("rdp-03-locked-by-policy");
    for p in [&script, &done] {
        let _ = std::fs::remove_file(p);
    }
    let page = b.eval("document.documentElement.outerHTML");
    assert!(!page.as_str().unwrap().contains(&target_password));
    b.close();
    let _ = std::fs::remove_file(&typed);

    // The user leaves; the session ends and the node's encoder and uploader finish it.
    freerdp.stop();
    let start = Instant::now();
    let last = loop {
        let entry = stage(admin.get_recording_process_status(&[id]).await.unwrap());
        match entry.status {
            Stage::DoneUploaded => break entry,
            Stage::Failed => panic!("the session failed: {entry:?}\n{}", read(&up_err)),
            _ if start.elapsed() > Duration::from_secs(300) => panic!(
                "the session is still {:?} after 300 s: {entry:?}\n{}",
                entry.status,
                pipeline_state(&data, &up_err)
            ),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    eprintln!(
        "Done-Uploaded {:.1} s after FreeRDP left",
        start.elapsed().as_secs_f64()
    );
    assert!(admin.live_sessions().await.unwrap().sessions.is_empty());
    let recordings = files(&data, &id_text, |n| n.ends_with(".psmr"));
    assert!(
        !recordings.is_empty(),
        "no .psmr for {id} under {} ({last:?})",
        data.display()
    );
    for r in &recordings {
        let bytes = std::fs::read(r).unwrap();
        assert!(bytes.len() > 1000, "{}: {} bytes", r.display(), bytes.len());
        assert!(!String::from_utf8_lossy(&bytes).contains(&target_password));
    }
    // The encoder's exports for a graphical session, in the store beside it: the transcript,
    // a video of the target's screen and a contact sheet.
    let store = data.join("store");
    let export = |name: &str| {
        let found = files(&store, &id_text, |n| n == name);
        assert!(
            !found.is_empty(),
            "no {name} for {id} in {}: {:?}\npsm up's log:\n{}",
            store.display(),
            files(&store, &id_text, |_| true),
            read(&up_err)
        );
        found[0].clone()
    };
    let transcript = read(&export("transcript.txt"));
    assert!(
        transcript.contains("alice") && transcript.contains("desk-01"),
        "{transcript}"
    );
    // The live actions are in the recording.
    for marker in [
        "live: viewer admin joined (view)",
        "live: paused by web:admin@127.0.0.1 (reason: checking the desktop)",
        "live: resumed by web:admin@127.0.0.1",
        "live: viewer admin joined (control)",
        "live: admin is typing",
        "drive: writing of PSM/leak.key refused: keys stay on the server",
        "policy: rule no-key-export (lock) on download \"PSM/leak.key\": refused; session locked",
    ] {
        assert!(
            transcript.contains(marker),
            "no {marker:?} in:\n{transcript}"
        );
    }
    assert!(!transcript.contains(&target_password));
    let video = export("session.mp4");
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&video)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim(),
        "1024,768",
        "ffprobe {}: {}",
        video.display(),
        String::from_utf8_lossy(&probe.stderr)
    );
    let sheet = std::fs::read(export("contact-sheet.png")).unwrap();
    assert!(sheet.starts_with(b"\x89PNG\r\n\x1a\n"));

    // A gateway that dies is started again.
    let pid = first[0];
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    let start = Instant::now();
    let restarted = loop {
        let now = gateway_pids(&data);
        if now.len() == 1 && now[0] != pid && accepts(rdp) {
            break now[0];
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the gateway was not restarted within 10 s (processes {now:?}); psm up's log:\n{}",
            read(&up_err)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "gateway {pid} killed; {restarted} listening {:.1} s later",
        start.elapsed().as_secs_f64()
    );
    assert!(matches!(up.child.try_wait(), Ok(None)), "psm up is running");

    // Ctrl-C stops psm up and its gateway.
    up.interrupt();
    let status = up.wait(Duration::from_secs(30)).unwrap_or_else(|| {
        panic!("psm up did not stop within 30 s:\n{}", read(&up_err));
    });
    assert!(status.success(), "psm up: {status}\n{}", read(&up_err));
    assert!(read(&up_out).contains("PSM stopped."));
    assert!(
        gateway_pids(&data).is_empty(),
        "a gateway outlived psm up: {:?}",
        gateway_pids(&data)
    );
    assert!(!accepts(rdp), "the RDP port is closed");

    // The gateway's log joined psm up's, and the target's password is nowhere.
    let (out, err) = (read(&up_out), read(&up_err));
    assert!(err.contains("rdp: "), "the gateway's log lines:\n{err}");
    assert!(!out.contains(&target_password), "psm up's stdout");
    assert!(!err.contains(&target_password), "psm up's stderr");
    assert!(
        !read(&freerdp_log).contains(&target_password),
        "FreeRDP's output"
    );
    drop(xrdp);
}

/// `psm up` killed with SIGKILL (no chance to stop its child) leaves no RDP gateway running:
/// the child is started with `--exit-with-parent` and stops once it is orphaned.
#[test]
fn a_killed_psm_up_leaves_no_rdp_gateway_behind() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let [api, ssh, live, rdp, rdp_live] = [(); 5].map(|()| free_port());
    let out = dir.path().join("up.out");
    let child = Command::new(psm_bin())
        .args(["up", "--data"])
        .arg(&data)
        .args([
            "--api-listen",
            &format!("127.0.0.1:{api}"),
            "--ssh-listen",
            &format!("127.0.0.1:{ssh}"),
            "--live-listen",
            &format!("127.0.0.1:{live}"),
            "--rdp-listen",
            &format!("127.0.0.1:{rdp}"),
        ])
        .arg("--rdp-web-listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--rdp-live-listen")
        .arg(format!("127.0.0.1:{rdp_live}"))
        .args(["--no-postgres", "--no-mysql"])
        .env("PSM_RDP_GATEWAY", env!("CARGO_BIN_EXE_psm-rdp-gateway"))
        .env_remove("PSM_CONFIG")
        .env_remove("PSM_DATA")
        .stdin(Stdio::null())
        .stdout(log_file(&out))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut up = Up {
        child,
        data: data.clone(),
    };
    let start = Instant::now();
    while !(read(&out).contains("Press Ctrl-C") && accepts(rdp)) {
        assert!(matches!(up.child.try_wait(), Ok(None)), "{}", read(&out));
        assert!(start.elapsed() < Duration::from_secs(120), "{}", read(&out));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(gateway_pids(&data).len(), 1, "{}", read(&out));
    up.child.kill().unwrap();
    up.child.wait().unwrap();
    let start = Instant::now();
    while !gateway_pids(&data).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the RDP gateway outlived a killed psm up: {:?}",
            gateway_pids(&data)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!accepts(rdp), "the RDP port is still open");
}

/// Issue 21, item 1: what the user types and clicks in an RDP session through `psm up`
/// (FreeRDP into xrdp, typed with xdotool) is in the recording as text, under the default
/// `redact-passwords`: a line typed into the target's xterm, the shortcuts
/// `<Win+R>` and `<Ctrl+Alt+End>`, left and right clicks with their positions, the
/// keyboard layout FreeRDP announced; the line typed after the secure-attention shortcut
/// (an unlock screen's password) is redacted, and so is the target account's password
/// typed into a `read -s` prompt (which still reaches the target). `psm search` finds the
/// typed word and the shortcut and neither secret; the web UI's replay page lists the typed
/// line, the redaction and the clicks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psm_up_records_rdp_keys_shortcuts_and_clicks_and_redacts_passwords() {
    use psm_proxy_rdp::recorder::{KEYBOARD_CHANNEL, POINTER_CHANNEL};
    use psm_recording::{EventKind, ReadOptions, Reader};

    require_all();
    let psm_program = psm_bin();
    let _lock = MachineLock::take();
    let dir = tempfile::tempdir().unwrap();
    let target_password = target_account();
    let xrdp = Xrdp::start(dir.path());
    let data = dir.path().join("data");
    let [api, ssh, live, rdp, rdp_web, rdp_live] = [(); 6].map(|()| free_port());
    let (up_out, up_err) = (dir.path().join("up.out"), dir.path().join("up.err"));
    let config = dir.path().join("psm.toml");
    std::fs::write(&config, RECORDING_SECTION).unwrap();
    let child = Command::new(&psm_program)
        .arg("up")
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .args([
            "--api-listen",
            &format!("127.0.0.1:{api}"),
            "--ssh-listen",
            &format!("127.0.0.1:{ssh}"),
            "--live-listen",
            &format!("127.0.0.1:{live}"),
            "--rdp-listen",
            &format!("127.0.0.1:{rdp}"),
            "--rdp-web-listen",
            &format!("127.0.0.1:{rdp_web}"),
            "--rdp-live-listen",
            &format!("127.0.0.1:{rdp_live}"),
            "--watchdog-interval",
            "1",
            "--no-postgres",
            "--no-mysql",
        ])
        .env("PSM_RDP_GATEWAY", env!("CARGO_BIN_EXE_psm-rdp-gateway"))
        .env("RUST_LOG", "info")
        .env_remove("PSM_CONFIG")
        .env_remove("PSM_DATA")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log_file(&up_out))
        .stderr(log_file(&up_err))
        .spawn()
        .unwrap();
    let up = Up {
        child,
        data: data.clone(),
    };
    let start = Instant::now();
    while !read(&up_out).contains("Press Ctrl-C") {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "psm up did not come up:\n{}\n{}",
            read(&up_out),
            read(&up_err)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let admin_password = read(&up_out)
        .split("first admin: user admin, password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .expect("the first admin's password");
    wait_addr(
        format!("127.0.0.1:{rdp}").parse().unwrap(),
        Duration::from_secs(30),
    );
    psm(
        &["users", "add", PSM_USER, "--role", ROLE, "--password-stdin"],
        &data,
        PSM_PASSWORD,
    );
    let pin = fingerprint(&dir.path().join("xrdp.crt"));
    psm(
        &[
            "targets",
            "add",
            "desk-01",
            "--protocol",
            "rdp",
            "--host",
            "127.0.0.1",
            "--port",
            &xrdp.port.to_string(),
            "--user",
            TARGET_USER,
            "--password-stdin",
            "--host-key",
            &pin,
            "--grant",
            ROLE,
        ],
        &data,
        &target_password,
    );

    let url = format!("http://127.0.0.1:{api}");
    let admin = client(&url, &data.join("keys").join("admin.key"));
    let display = Display::start();
    let freerdp_log = dir.path().join("xfreerdp.log");
    let mut freerdp = xfreerdp(
        &display,
        rdp,
        &format!("{PSM_USER}+desk-01"),
        PSM_PASSWORD,
        &["/sec:tls"],
        &freerdp_log,
    );
    let mut id = None;
    for _ in 0..600 {
        if let Some(s) = admin.live_sessions().await.unwrap().sessions.first() {
            id = Some(s.session);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = id.unwrap_or_else(|| {
        panic!(
            "no live session; psm up's log:\n{}\nFreeRDP:\n{}",
            read(&up_err),
            read(&freerdp_log)
        )
    });
    eventually("the FreeRDP window", Duration::from_secs(30), || {
        display.freerdp_window().is_some()
    })
    .await;
    let window = display.freerdp_window().unwrap();
    // The target's xterm comes up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let xdotool = |args: &[&str]| {
        assert!(
            display
                .cmd("xdotool")
                .args(args)
                .status()
                .unwrap()
                .success(),
            "xdotool {args:?}"
        );
    };

    // A line the target runs (the proof that the keys reached it).
    let pid = std::process::id();
    let word = format!("psmword{pid}");
    let proof = format!("/tmp/psm-rdp-input-{pid}");
    let _ = std::fs::remove_file(&proof);
    display.type_line(&window, &format!("echo {word} > {proof}"));
    eventually(
        "the typed line ran on the target",
        Duration::from_secs(30),
        || std::fs::read_to_string(&proof).is_ok_and(|s| s.trim() == word),
    )
    .await;
    // Shortcuts: Win+R (a Run box, on Windows) and what is typed into it; after
    // Ctrl+Alt+End (the secure-attention shortcut RDP clients send) the line up to Return
    // is what an unlock screen takes: a password.
    xdotool(&["key", "super+r"]);
    let run = format!("echo runbox{pid}");
    display.type_line(&window, &run);
    xdotool(&["key", "ctrl+alt+End"]);
    let unlock = format!("Unlock{pid}x");
    xdotool(&["type", "--delay", "40", &unlock]);
    xdotool(&["key", "Return"]);
    // The target account's password typed into a password prompt on the target.
    let (length_proof, prompt) = (
        format!("{proof}-length"),
        format!("read -s PW; echo ${{#PW}} > {proof}-length"),
    );
    let _ = std::fs::remove_file(&length_proof);
    display.type_line(&window, &prompt);
    tokio::time::sleep(Duration::from_millis(500)).await;
    xdotool(&["type", "--delay", "40", &target_password]);
    xdotool(&["key", "Return"]);
    eventually(
        "the prompt took the password",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&length_proof)
                .is_ok_and(|s| s.trim() == target_password.len().to_string())
        },
    )
    .await;
    // Clicks: left, then right, at known places of the desktop (FreeRDP's window is at the
    // origin of its display, unscaled).
    xdotool(&["mousemove", "--window", &window, "300", "250", "click", "1"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    xdotool(&["mousemove", "--window", &window, "320", "260", "click", "3"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    freerdp.stop();

    let start = Instant::now();
    loop {
        let entry = admin
            .get_recording_process_status(&[id])
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.session == id)
            .unwrap();
        match entry.status {
            Stage::DoneUploaded => break,
            Stage::Failed => panic!("the session failed: {entry:?}\n{}", read(&up_err)),
            _ if start.elapsed() > Duration::from_secs(300) => panic!(
                "still {:?} after 300 s\n{}",
                entry.status,
                pipeline_state(&data, &up_err)
            ),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    let id_text = id.to_string();
    let recording = files(&data, &id_text, |n| n.ends_with(".psmr"))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no .psmr for {id} under {}", data.display()));

    // The recording's keyboard and pointer channels.
    let mut reader = Reader::open(&recording, ReadOptions::default()).unwrap();
    let header = reader.header().clone();
    let (mut typed, mut pointer, mut redacted, mut markers, mut everything) =
        (String::new(), String::new(), 0, Vec::new(), String::new());
    for ev in reader.events() {
        let ev = ev.unwrap();
        match &ev.kind {
            EventKind::Input { channel, data, .. } => {
                let text = String::from_utf8_lossy(data);
                if *channel == KEYBOARD_CHANNEL {
                    typed += &text;
                } else if *channel == POINTER_CHANNEL {
                    pointer += &text;
                }
                everything += &text;
            }
            EventKind::InputRedacted { channel } if *channel == KEYBOARD_CHANNEL => redacted += 1,
            EventKind::Marker { label } => {
                markers.push(label.clone());
                everything += label;
            }
            EventKind::Clipboard { data, .. } => everything += &String::from_utf8_lossy(data),
            _ => {}
        }
    }
    assert!(
        typed.contains(&format!("echo {word} > {proof}\r")),
        "keyboard channel: {typed:?}"
    );
    assert!(
        typed.contains(&format!("<Win+R>{run}\r")) && typed.contains("<Ctrl+Alt+End>"),
        "{typed:?}"
    );
    assert!(typed.contains(&prompt), "{typed:?}");
    assert!(
        pointer.contains("down left 300 250\n") && pointer.contains("down right 320 260\n"),
        "pointer channel: {pointer:?}"
    );
    // The unlock line: only that keys were pressed (one event per key, and the Return
    // after it is kept).
    assert!(redacted >= unlock.len(), "{redacted} redacted keys");
    assert!(typed.contains("<Ctrl+Alt+End>\r"), "{typed:?}");
    assert!(
        markers
            .iter()
            .any(|m| m == "keyboard: the target account's password was typed (not recorded)"),
        "{markers:?}"
    );
    for secret in [&unlock, &target_password] {
        assert!(!everything.contains(secret.as_str()), "{secret} recorded");
    }
    assert_eq!(
        header.metadata.get("keyboard_layout").map(String::as_str),
        Some("0x00000409 (US English)"),
        "{:?}",
        header.metadata
    );
    assert_eq!(
        header.metadata.get("keystrokes").map(String::as_str),
        Some("redact-passwords")
    );

    // `psm search` finds the typed word and the shortcut, and neither secret.
    let search = |pattern: &str| {
        let out = Command::new(psm_bin())
            .args(["search", pattern])
            .arg(&recording)
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let found = search(&word);
    assert!(found.contains(&word), "psm search {word}: {found}");
    let found = search("Win\\+R");
    assert!(found.contains(&format!("<Win+R>{run}")), "{found}");
    for secret in [&unlock, &target_password] {
        assert!(
            !search(secret).contains(secret.as_str()),
            "psm search found {secret}"
        );
    }

    // The replay page lists the typed line, the redaction and the clicks.
    let shots = std::env::var_os("PSM_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("shots"));
    let mut b = browser::Browser::start(&shots);
    b.goto(&format!("{url}/ui/"));
    b.wait("!!document.querySelector('#password')");
    b.fill("#user", "admin");
    b.fill("#password", &admin_password);
    b.click("#login");
    b.wait("!!document.querySelector('#sessions-body')");
    b.goto(&format!("{url}/ui/replay?id={id}"));
    b.wait("window.psm.replay && window.psm.replay.input && document.querySelectorAll('#commands li.input').length > 0");
    let listed = b.eval("document.querySelector('#commands').innerText");
    let listed = listed.as_str().unwrap_or_default().to_owned();
    for needle in [
        format!("echo {word} > {proof}⏎"),
        "<Win+R>".to_owned(),
        "keys typed (redacted)".to_owned(),
        "click left 300 250".to_owned(),
        "click right 320 260".to_owned(),
    ] {
        assert!(listed.contains(&needle), "no {needle:?} in:\n{listed}");
    }
    let marks = b.eval("document.querySelectorAll('#input-bar .mark.click').length");
    assert!(marks.as_u64().unwrap_or(0) >= 2, "{marks}");
    // A timeline entry seeks the video to its second.
    b.wait("window.psm.replay.ready === true");
    b.click("#commands li.input.click button");
    b.wait("window.psm.replay.seekedTo > 0");
    b.shot("rdp-input-timeline");
    let page = b.eval("document.documentElement.outerHTML");
    let page = page.as_str().unwrap_or_default();
    assert!(!page.contains(&target_password) && !page.contains(&unlock));
    b.close();
    let _ = std::fs::remove_file(&proof);
    let _ = std::fs::remove_file(&length_proof);
    drop(up);
    drop(xrdp);
}
