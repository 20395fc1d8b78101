//! Real peers for the RDP tests: xrdp + xorgxrdp as the target (with a local user whose
//! password only the vault knows), Xvfb + FreeRDP as the client. Every peer is started by
//! the test on a free port and stopped by PID. RDP tests take a machine-wide lock: xrdp
//! always talks to the one sesman on [::1]:3350.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use psm_core::clock::SystemClock;
use psm_core::directory::{MemoryDirectory, NewUser, PasswordHash, UserDirectory};
use psm_core::store::MemoryStore;
use psm_core::vault::{
    Credential, DirectoryPolicy, Keyring, MasterKey, MemoryVaultStore, PamSettings, Target, Vault,
    VaultConfig,
};
use psm_core::{ControlPlane, Engine, EngineConfig, LocalControlPlane, ProcessInstance, Protocol};
use psm_proxy::SessionRegistry;
use psm_proxy_rdp::recorder::{DirRecordings, writer_config};
use psm_proxy_rdp::tls::ServerIdentity;
use psm_proxy_rdp::{LiveRdpSession, RdpGatewayConfig, RdpGatewayDeps};

#[path = "../../../../test-support/ports.rs"]
mod ports;
#[allow(unused_imports)]
pub use ports::{free_port, wait_addr, wait_port};

/// The account on the target; its password is random per run and known only to the vault.
pub const TARGET_USER: &str = "psmrdp";
/// The PSM user and their PSM password.
pub const PSM_USER: &str = "alice";
/// Alice's PSM password.
pub const PSM_PASSWORD: &str = "alice-Psm-pw1";

pub fn require(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
        || Path::new(program).is_file();
    assert!(
        found,
        "{program} is missing: install the Debian package `{package}` (scripts/test does)"
    );
}

pub fn require_all() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    for (p, pkg) in [
        ("xrdp", "xrdp"),
        ("xrdp-sesman", "xrdp"),
        ("Xvfb", "xvfb"),
        ("xfreerdp", "freerdp2-x11"),
        ("xdotool", "xdotool"),
        ("xterm", "xterm"), // the target desktop (startwm.sh)
        ("import", "imagemagick"),
        ("compare", "imagemagick"),
        ("ffmpeg", "ffmpeg"),
        ("ffprobe", "ffmpeg"),
        ("openssl", "openssl"),
    ] {
        require(p, pkg);
    }
    assert!(
        Path::new("/usr/lib/xorg/modules/libxorgxrdp.so").exists()
            || Path::new("/usr/lib/xorg/modules/drivers/xrdpdev_drv.so").exists(),
        "xorgxrdp is missing: install the Debian package `xorgxrdp`"
    );
}

/// A binary of the main workspace (`psm`, `psm-controlplane`): `$PSM_MAIN_TARGET/debug/NAME`
/// (scripts/test.d/rdp sets it; default /var/tmp/psm-target), built by scripts/test before
/// the RDP tests run.
pub fn main_bin(name: &str) -> PathBuf {
    let target = std::env::var_os("PSM_MAIN_TARGET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/psm-target"));
    let path = target.join("debug").join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the main workspace's binaries first \
         (`cargo build --bins` at the repository root; scripts/test does)",
        path.display()
    );
    path
}

/// Polls `f` until it is true or `within` passes.
pub async fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the target's desktop is drawn and has settled (xterm draws ~3 s after the X
/// session starts): some bright pixel, and no change over 20 polls.
pub async fn wait_settled_desktop(screen: &psm_proxy_rdp::screen::DesktopScreen) {
    let mut last = 0;
    let mut stable = 0;
    eventually(
        "the target desktop to be drawn",
        Duration::from_secs(60),
        || {
            let g = screen.generation();
            let drawn = screen.snapshot().rgba.chunks(4).any(|p| p[0] > 0x80);
            if drawn && g == last {
                stable += 1;
            } else {
                stable = 0;
            }
            last = g;
            stable >= 20
        },
    )
    .await;
}

/// Adds alice (PSM password `PSM_PASSWORD`, role desktop-ops) and lets the role reach desk-01.
pub async fn add_psm_user(directory: &dyn UserDirectory) {
    directory
        .create_user(&NewUser {
            name: PSM_USER.parse().unwrap(),
            password: Some(PasswordHash::hash(PSM_PASSWORD).unwrap()),
            roles: vec!["desktop-ops".into()],
            ..NewUser::default()
        })
        .await
        .unwrap();
    directory.grant("desktop-ops", "desk-01").await.unwrap();
}

/// A child killed by PID on drop.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
}

impl Proc {
    pub fn spawn(name: &'static str, cmd: &mut Command) -> Self {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self { child, name }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn stop(&mut self) {
        if self.running() {
            let _ = Command::new("kill").arg(self.pid().to_string()).status();
            let start = Instant::now();
            while self.running() && start.elapsed() < Duration::from_secs(3) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if self.running() {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A machine-wide lock (a directory created atomically, holding our PID).
pub struct MachineLock(PathBuf);

impl MachineLock {
    pub fn take() -> Self {
        let dir = PathBuf::from("/tmp/psm-rdp-tests.lock");
        let start = Instant::now();
        loop {
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    std::fs::write(dir.join("pid"), std::process::id().to_string()).unwrap();
                    return Self(dir);
                }
                Err(_) => {
                    let holder = std::fs::read_to_string(dir.join("pid")).unwrap_or_default();
                    let alive = holder
                        .trim()
                        .parse::<u32>()
                        .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
                    if !alive && start.elapsed() > Duration::from_secs(2) {
                        let _ = std::fs::remove_dir_all(&dir);
                        continue;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(600),
                        "RDP test lock held too long by {holder}"
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
}

impl Drop for MachineLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn random_password() -> String {
    let mut b = [0u8; 12];
    getrandom_fill(&mut b);
    format!("Tgt-{}", hex(&b))
}

fn getrandom_fill(b: &mut [u8]) {
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(b)
        .unwrap();
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Creates the target account with a new random password; returns the password.
pub fn target_account() -> String {
    if !Command::new("id")
        .arg(TARGET_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(
            Command::new("useradd")
                .args(["-m", "-s", "/bin/bash", TARGET_USER])
                .status()
                .unwrap()
                .success()
        );
    }
    let pw = random_password();
    let mut c = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    c.stdin
        .take()
        .unwrap()
        .write_all(format!("{TARGET_USER}:{pw}\n").as_bytes())
        .unwrap();
    assert!(c.wait().unwrap().success());
    let home = PathBuf::from(format!("/home/{TARGET_USER}"));
    let wm = home.join("startwm.sh");
    std::fs::write(
        &wm,
        "#!/bin/sh\nexec xterm -geometry 120x40+0+0 -fa Monospace -fs 11\n",
    )
    .unwrap();
    assert!(
        Command::new("chmod")
            .arg("755")
            .arg(&wm)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        Command::new("chown")
            .arg(TARGET_USER)
            .arg(&wm)
            .status()
            .unwrap()
            .success()
    );
    pw
}

pub fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg(format!("/CN={name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl could not make a certificate");
    (cert, key)
}

/// xrdp + sesman (sesman only if none is listening yet).
pub struct Xrdp {
    pub port: u16,
    pub dir: PathBuf,
    pub xrdp: Proc,
    pub sesman: Option<Proc>,
}

impl Xrdp {
    /// Its certificate's SHA-256 pin, read with openssl as an operator would.
    pub fn pin(&self) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(self.dir.join("xrdp.crt"))
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl x509");
        let text = String::from_utf8_lossy(&out.stdout);
        let hex = text.trim().split_once('=').unwrap().1;
        format!("sha256:{}", hex.replace(':', "").to_lowercase())
    }

    pub fn start(dir: &Path) -> Self {
        let (cert, key) = self_signed(dir, "xrdp");
        let port = free_port();
        let ini = std::fs::read_to_string("/etc/xrdp/xrdp.ini")
            .expect("/etc/xrdp/xrdp.ini (install xrdp)");
        let (globals, rest) = ini.split_once("[Logging]").expect("xrdp.ini has [Logging]");
        let globals = replace_first(globals, "port=", &format!("port=tcp://127.0.0.1:{port}"));
        let globals = replace_first(
            &globals,
            "certificate=",
            &format!("certificate={}", cert.display()),
        );
        let globals = replace_first(
            &globals,
            "key_file=",
            &format!("key_file={}", key.display()),
        );
        let rest = replace_first(
            rest,
            "LogFile=",
            &format!("LogFile={}", dir.join("xrdp.log").display()),
        );
        let rest = replace_first(&rest, "EnableSyslog=", "EnableSyslog=false");
        let cfg = dir.join("xrdp.ini");
        std::fs::write(&cfg, format!("{globals}[Logging]{rest}")).unwrap();
        let _ = Command::new("sh").arg("/usr/share/xrdp/socksetup").status();
        let sesman_up =
            TcpStream::connect_timeout(&"[::1]:3350".parse().unwrap(), Duration::from_millis(200))
                .is_ok();
        let sesman = (!sesman_up).then(|| {
            let s = std::fs::read_to_string("/etc/xrdp/sesman.ini").unwrap();
            let s = s
                .lines()
                .map(|l| {
                    if l.starts_with("LogFile=") {
                        format!("LogFile={}", dir.join("sesman.log").display())
                    } else if l.starts_with("EnableSyslog=") {
                        "EnableSyslog=false".into()
                    } else {
                        l.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let scfg = dir.join("sesman.ini");
            std::fs::write(&scfg, s).unwrap();
            let p = Proc::spawn(
                "xrdp-sesman",
                Command::new("xrdp-sesman")
                    .arg("-n")
                    .arg("-c")
                    .arg(&scfg)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            );
            wait_addr("[::1]:3350".parse().unwrap(), Duration::from_secs(10));
            p
        });
        let xrdp = Proc::spawn(
            "xrdp",
            Command::new("xrdp")
                .arg("-n")
                .arg("-c")
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_addr(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(10),
        );
        Self {
            port,
            dir: dir.to_owned(),
            xrdp,
            sesman,
        }
    }
}

impl Drop for Xrdp {
    fn drop(&mut self) {
        self.xrdp.stop();
        // Kill forked xrdp children of this instance (they keep the port's sessions).
        kill_children_of(self.xrdp.pid());
        // Session Xorg servers of the target user: stopped by PID from their lock files.
        for n in 10..40 {
            let lock = format!("/tmp/.X{n}-lock");
            if let Ok(pid) = std::fs::read_to_string(&lock) {
                let pid = pid.trim();
                let owner =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let uid = Command::new("id")
                    .args(["-u", TARGET_USER])
                    .output()
                    .ok()
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                    .unwrap_or_default();
                if owner.lines().any(|l| {
                    l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(uid.as_str())
                }) {
                    let _ = Command::new("kill").arg(pid).status();
                }
            }
        }
        if let Some(s) = &mut self.sesman {
            s.stop();
        }
    }
}

fn kill_children_of(pid: u32) {
    if let Ok(out) = Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
    {
        for c in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", c]).status();
        }
    }
}

fn replace_first(text: &str, key: &str, line: &str) -> String {
    let mut done = false;
    text.lines()
        .map(|l| {
            if !done && l.starts_with(key) {
                done = true;
                line.to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// An X display (Xvfb) for the client.
pub struct Display {
    pub num: u32,
    pub xvfb: Proc,
}

impl Display {
    pub fn start() -> Self {
        let num = (60..120)
            .find(|n| {
                !Path::new(&format!("/tmp/.X{n}-lock")).exists()
                    && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            })
            .expect("a free X display");
        let xvfb = Proc::spawn(
            "Xvfb",
            Command::new("Xvfb")
                .arg(format!(":{num}"))
                .args(["-screen", "0", "1280x1024x24", "-nolisten", "tcp"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let start = Instant::now();
        while !Path::new(&format!("/tmp/.X11-unix/X{num}")).exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "Xvfb :{num} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { num, xvfb }
    }

    pub fn env(&self) -> String {
        format!(":{}", self.num)
    }

    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("DISPLAY", self.env());
        c
    }

    /// The FreeRDP window id, once it is mapped.
    pub fn freerdp_window(&self) -> Option<String> {
        let out = self
            .cmd("xdotool")
            .args(["search", "--onlyvisible", "--class", "freerdp"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .last()
            .map(str::to_owned)
    }

    pub fn type_line(&self, window: &str, text: &str) {
        assert!(
            self.cmd("xdotool")
                .args(["mousemove", "--window", window, "200", "200"])
                .status()
                .unwrap()
                .success()
        );
        assert!(
            self.cmd("xdotool")
                .args(["type", "--delay", "40", text])
                .status()
                .unwrap()
                .success()
        );
        assert!(
            self.cmd("xdotool")
                .args(["key", "Return"])
                .status()
                .unwrap()
                .success()
        );
    }

    pub fn screenshot(&self, out: &Path) {
        assert!(
            self.cmd("import")
                .args(["-window", "root"])
                .arg(out)
                .status()
                .unwrap()
                .success()
        );
    }
}

pub fn xfreerdp(
    display: &Display,
    port: u16,
    user: &str,
    password: &str,
    extra: &[&str],
    log: &Path,
) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    Proc::spawn(
        "xfreerdp",
        display
            .cmd("xfreerdp")
            .arg(format!("/v:127.0.0.1:{port}"))
            .arg(format!("/u:{user}"))
            .arg(format!("/p:{password}"))
            .args([
                "/cert:ignore",
                "/size:1024x768",
                "-grab-keyboard",
                "/log-level:WARN",
            ])
            .args(extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log),
    )
}

/// A whole in-process control plane (engine, vault, directory) with the target and alice.
pub struct Plane {
    pub cp: Arc<LocalControlPlane>,
    pub directory: Arc<MemoryDirectory>,
    pub gateway_pi: ProcessInstance,
}

/// A plane whose vault holds desk-01 at `target_port`, unpinned (a target the tests never
/// reach: unpinned targets get NLA only, which xrdp does not speak).
pub async fn plane(target_port: u16, target_password: &str) -> Plane {
    plane_with(target_port, target_password, None).await
}

/// A plane whose vault holds `xrdp` as desk-01, its certificate pinned (as an operator
/// pins it with `psm targets add --host-key`): the gateway may then log in with TLS.
pub async fn plane_for(xrdp: &Xrdp, target_password: &str) -> Plane {
    plane_with(xrdp.port, target_password, Some(xrdp.pin())).await
}

async fn plane_with(target_port: u16, target_password: &str, pin: Option<String>) -> Plane {
    let engine = Engine::new(
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
        EngineConfig::default(),
    );
    let directory = Arc::new(MemoryDirectory::new());
    add_psm_user(directory.as_ref()).await;
    let vault = Vault::new(
        Arc::new(MemoryVaultStore::new()),
        Keyring::new(MasterKey::generate().unwrap()),
        engine.clone(),
        VaultConfig::default(),
    )
    .with_policy(Arc::new(DirectoryPolicy::new(directory.clone())));
    vault
        .put_target(
            Target {
                name: "desk-01".into(),
                host: "127.0.0.1".into(),
                port: target_port,
                protocol: Protocol::Rdp,
                host_key: pin,
            },
            "admin",
        )
        .await
        .unwrap();
    vault
        .set_credential(
            "desk-01",
            Credential::password(TARGET_USER, target_password),
            "admin",
        )
        .await
        .unwrap();
    Plane {
        cp: Arc::new(LocalControlPlane::new(
            engine,
            vault,
            PamSettings::default(),
        )),
        directory,
        gateway_pi: ProcessInstance::new("rdp-gw-test").unwrap(),
    }
}

impl Plane {
    /// RDP targets from this plane's vault; unpinned ones are accepted (xrdp's certificate
    /// is self-signed and new on every run).
    pub fn targets(&self) -> Arc<dyn psm_proxy::TargetAccess> {
        Arc::new(
            psm_proxy::ControlPlaneTargets::new(
                self.cp.clone(),
                self.gateway_pi.clone(),
                Duration::from_secs(3600),
            )
            .for_protocol(Protocol::Rdp)
            .with_unpinned_accepted(true),
        )
    }
}

pub struct Gateway {
    pub launch: psm_proxy_rdp::launch::LaunchTokens,
    pub addr: SocketAddr,
    pub registry: SessionRegistry,
    pub recordings: PathBuf,
    pub shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
    pub signer: psm_recording::VerifyingKey,
}

impl Gateway {
    /// FreeRDP on `display` logs in through the gateway as alice to desk-01 with `extra`
    /// options (its output in `log`); returns the client once its session is live, with
    /// the session's info and live handle.
    pub async fn native_session(
        &self,
        display: &Display,
        extra: &[&str],
        log: &Path,
    ) -> (Proc, psm_proxy::SessionInfo, LiveRdpSession) {
        let client = xfreerdp(
            display,
            self.addr.port(),
            &format!("{PSM_USER}+desk-01"),
            PSM_PASSWORD,
            extra,
            log,
        );
        eventually("the session to be live", Duration::from_secs(60), || {
            self.registry.len() == 1
        })
        .await;
        let info = self.registry.list().remove(0);
        let live = live_rdp(&self.registry, info.id);
        (client, info, live)
    }

    /// Stops `client`, waits for its session `id` to end, and returns the session's
    /// recording, checked intact (signed, complete).
    pub async fn end_session(&self, client: &mut Proc, id: psm_core::SessionId) -> PathBuf {
        client.stop();
        eventually("the session to end", Duration::from_secs(30), || {
            self.registry.is_empty()
        })
        .await;
        let path = self.recordings.join(format!("{id}.psmr"));
        let report =
            psm_recording::verify(&path, &psm_recording::VerifyOptions::trusting(self.signer))
                .unwrap();
        assert!(report.status.is_intact(), "{report:?}");
        path
    }
}

/// The live RDP session `id` in `registry` (a clone: its screen and control are shared).
pub fn live_rdp(registry: &SessionRegistry, id: psm_core::SessionId) -> LiveRdpSession {
    let session = registry.get(id).expect("the session is live");
    LiveRdpSession::of(session.as_ref())
        .expect("an RDP session")
        .clone()
}

pub async fn gateway(
    plane: &Plane,
    dir: &Path,
    tweak: impl FnOnce(&mut RdpGatewayConfig),
) -> Gateway {
    let (cert, key) = self_signed(dir, "gateway");
    let identity = ServerIdentity::from_pem_files(&cert, &key).unwrap();
    let mut config =
        RdpGatewayConfig::new("127.0.0.1:0".parse().unwrap(), plane.gateway_pi.clone());
    config.heartbeat_interval = Duration::from_millis(500);
    tweak(&mut config);
    let key = psm_recording::SigningKey::generate().unwrap();
    let signer = key.verifying_key();
    let recordings = dir.join("recordings");
    let cp: Arc<dyn ControlPlane> = plane.cp.clone();
    let deps = RdpGatewayDeps {
        control_plane: cp.clone(),
        directory: plane.directory.clone(),
        targets: plane.targets(),
        recordings: Arc::new(DirRecordings::new(
            &recordings,
            key,
            writer_config(&config.recording),
        )),
        registry: SessionRegistry::new(),
        launch: psm_proxy_rdp::launch::LaunchTokens::new(),
        artifacts: None,
        taps: Arc::new(psm_proxy::NoTaps),
    };
    let registry = deps.registry.clone();
    let launch = deps.launch.clone();
    let gw = psm_proxy_rdp::RdpGateway::bind(config, identity, deps)
        .await
        .unwrap();
    let addr = gw.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        gw.run(async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Gateway {
        launch,
        addr,
        registry,
        recordings,
        shutdown: Some(tx),
        task,
        signer,
    }
}

/// A screenshot of the target's own X display (the xorgxrdp server of `TARGET_USER`'s
/// session, read with its X authority): what is really on the target's screen, to check
/// the gateway's decoded screen against.
pub fn target_screenshot(out: &Path) {
    let ps = Command::new("pgrep")
        .args(["-u", TARGET_USER, "-a", "Xorg"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&ps.stdout);
    let display = listing
        .split_whitespace()
        .find(|w| w.starts_with(':') && w[1..].parse::<u32>().is_ok())
        .unwrap_or_else(|| panic!("no Xorg display of {TARGET_USER} in: {listing}"))
        .to_owned();
    let status = Command::new("import")
        .args(["-display", &display, "-window", "root"])
        .arg(out)
        .env("XAUTHORITY", format!("/home/{TARGET_USER}/.Xauthority"))
        .status()
        .unwrap();
    assert!(status.success(), "import -display {display} -window root");
}

/// Pixels that differ between two images (imagemagick `compare -metric AE`, 8 % fuzz).
pub fn ae_difference(a: &Path, b: &Path) -> u64 {
    let out = Command::new("compare")
        .args(["-metric", "AE", "-fuzz", "8%"])
        .arg(a)
        .arg(b)
        .arg("null:")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("compare said: {text}")) as u64
}

/// Checks that the gateway's decoded screen (`shot`) is the target's own display: the same
/// size, and within 0.05 % of its pixels (a bitmap decoded at the wrong stride shears text
/// and fails this, whatever a client then shows). Keeps both pictures in `dir`.
pub fn assert_screen_is_the_targets(dir: &Path, shot: &psm_proxy_rdp::screen::Region) {
    let truth = dir.join("target.png");
    target_screenshot(&truth);
    let decoded = dir.join("decoded.png");
    std::fs::write(
        &decoded,
        psm_recording::graphics::encode_png(
            shot.rect.width.into(),
            shot.rect.height.into(),
            &shot.rgba,
        )
        .unwrap(),
    )
    .unwrap();
    let size = Command::new("identify")
        .args(["-format", "%w %h"])
        .arg(&truth)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&size.stdout),
        format!("{} {}", shot.rect.width, shot.rect.height),
        "the target's desktop and the gateway's screen have one size"
    );
    let wrong = ae_difference(&truth, &decoded);
    assert!(
        wrong * 2000 < u64::from(shot.rect.width) * u64::from(shot.rect.height),
        "the gateway's screen differs from the target's own display in {wrong} pixels"
    );
}
