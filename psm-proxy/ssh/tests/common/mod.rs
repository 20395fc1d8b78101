//! Test harness: a real OpenSSH sshd as the target, the gateway in-process over the
//! in-memory engine and directory, and helpers to run real clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use psm_core::CoreError;
use psm_core::clock::SystemClock;
use psm_core::directory::{
    AuthorizedKey, DirectoryAdmin, DirectoryLookup, DirectoryUser, Factor, MemoryDirectory,
    NewUser, PasswordHash, TotpSecret, UserDirectory, UserUpdate,
};
use psm_core::store::MemoryStore;
use psm_core::vault::Secret;
use psm_core::{Engine, EngineConfig, ProcessInstance, SessionLifecycle};
use psm_proxy::*;
use psm_proxy_ssh::{
    GatewayDeps, SshGateway, SshGatewayConfig, generate_host_key, host_key_public,
};

#[path = "../../../../test-support/ports.rs"]
mod ports;
#[allow(unused_imports)]
pub use ports::{free_port, wait_addr, wait_port};

pub const TARGET_USER: &str = "psmgwtest";

/// Fails with a message naming what to install when a peer program is missing.
pub fn need(program: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
        || Path::new(program).exists();
    assert!(
        found,
        "{program} is missing: install the Debian package {package}"
    );
}

/// The target account's password, one per test run.
///
/// nextest runs every test in a process of its own, and they all log in to the same OS
/// account: the first process of a run (`NEXTEST_RUN_ID`; under `cargo test`, the process)
/// sets a fresh random password under a file lock and leaves it in a file only root can read;
/// the others read it, so no test changes the password under another's feet.
pub fn target_password() -> &'static str {
    static PW: OnceLock<String> = OnceLock::new();
    PW.get_or_init(|| {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        need("useradd", "passwd");
        need("chpasswd", "passwd");
        let dir = std::env::temp_dir().join("psm-proxy-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let lock = std::fs::File::create(dir.join("account.lock")).unwrap();
        lock.lock().expect("locking the test account");
        let run =
            std::env::var("NEXTEST_RUN_ID").unwrap_or_else(|_| std::process::id().to_string());
        let pw_file = dir.join(format!("{TARGET_USER}-{run}.password"));
        if let Ok(pw) = std::fs::read_to_string(&pw_file) {
            return pw;
        }
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
                "useradd {TARGET_USER} failed (tests run as root)"
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
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&pw_file)
            .unwrap();
        f.write_all(pw.as_bytes()).unwrap();
        pw
    })
}

pub fn keygen(path: &Path) {
    need("ssh-keygen", "openssh-client");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "psm-test", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

/// A private OpenSSH sshd on a high loopback port, stopped (by PID) on drop.
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub host_pub: String,
    /// A key the target account accepts (for key-credential tests).
    pub account_key: PathBuf,
    child: Child,
}

impl Sshd {
    pub fn start() -> Self {
        need("/usr/sbin/sshd", "openssh-server");
        target_password();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host"));
        keygen(&d.join("account"));
        std::fs::copy(d.join("account.pub"), d.join("authorized_keys")).unwrap();
        let port = free_port();
        let cfg = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\nPidFile {d}/sshd.pid\n\
             PasswordAuthentication yes\nPubkeyAuthentication yes\nKbdInteractiveAuthentication no\n\
             UsePAM no\nSubsystem sftp internal-sftp\nAllowTcpForwarding yes\nStrictModes no\n\
             AuthorizedKeysFile {d}/authorized_keys\nMaxStartups 1000\nMaxSessions 1000\n\
             LogLevel INFO\nAcceptEnv PSM_*\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), cfg).unwrap();
        let t = Command::new("/usr/sbin/sshd")
            .arg("-t")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .output()
            .unwrap();
        assert!(
            t.status.success(),
            "sshd -t: {}",
            String::from_utf8_lossy(&t.stderr)
        );
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
            port,
            host_pub,
            account_key: d.join("account"),
            dir,
            child,
        }
    }

    /// A known_hosts file naming this sshd (for direct OpenSSH comparisons).
    pub fn known_hosts(&self) -> PathBuf {
        let p = self.dir.path().join("known_hosts");
        let mut parts = self.host_pub.split_whitespace();
        let line = format!(
            "[127.0.0.1]:{} {} {}\n",
            self.port,
            parts.next().unwrap(),
            parts.next().unwrap()
        );
        std::fs::write(&p, line).unwrap();
        p
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything a tap saw, as lines.
#[derive(Default)]
pub struct MemoryTap {
    pub events: Mutex<Vec<String>>,
    pub output: Mutex<Vec<u8>>,
    pub input: Mutex<Vec<u8>>,
}

impl MemoryTap {
    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
    pub fn output_text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }
    pub fn input_text(&self) -> String {
        String::from_utf8_lossy(&self.input.lock().unwrap()).into_owned()
    }
    fn push(&self, e: String) {
        self.events.lock().unwrap().push(e);
    }
}

#[async_trait]
impl Tap for MemoryTap {
    async fn session_started(&self, info: &SessionInfo, _c: &Arc<SessionControl>) {
        self.push(format!(
            "start {} {} {}",
            info.user, info.target, info.target_account
        ));
    }
    async fn channel_opened(&self, ch: &ChannelInfo) {
        self.push(format!("open {} {:?}", ch.id, ch.kind));
    }
    async fn request(&self, ch: &ChannelInfo, r: &ChannelRequest) {
        self.push(format!("request {} {:?}", ch.id, r));
    }
    async fn data(&self, _ch: &ChannelInfo, e: &DataEvent<'_>) -> DataVerdict {
        if e.direction == Direction::ToUser {
            let mut o = self.output.lock().unwrap();
            if o.len() < 1 << 20 {
                o.extend_from_slice(e.bytes);
            }
        } else {
            let mut i = self.input.lock().unwrap();
            if i.len() < 1 << 20 {
                if e.hidden {
                    i.extend_from_slice(b"<hidden>");
                } else {
                    i.extend_from_slice(e.bytes);
                }
            }
        }
        DataVerdict::Forward
    }
    async fn file_transfer(&self, ch: &ChannelInfo, t: &TransferReport) {
        self.push(format!(
            "file {} {:?} {} {} {} {}",
            ch.id, t.direction, t.path, t.bytes, t.protocol, t.complete
        ));
    }
    async fn exit(&self, ch: &ChannelInfo, x: &ExitReport) {
        self.push(format!("exit {} {:?}", ch.id, x));
    }
    async fn channel_closed(&self, ch: &ChannelInfo) {
        self.push(format!("close {}", ch.id));
    }
    async fn session_ended(&self, _info: &SessionInfo, reason: &EndReason) {
        self.push(format!("end {reason:?}"));
    }
}

pub struct SharedTapFactory(pub Arc<MemoryTap>);

#[async_trait]
impl TapFactory for SharedTapFactory {
    async fn taps(&self, _info: &SessionInfo) -> Result<TapSet, ProxyError> {
        let mut t = TapSet::new();
        t.push(self.0.clone());
        Ok(t)
    }
}

/// A gateway in front of an sshd, with user `alice` (password, key) allowed to `t1`.
pub struct Gateway {
    pub addr: SocketAddr,
    pub engine: Engine,
    pub directory: Arc<MemoryDirectory>,
    pub targets: StaticTargets,
    pub tap: Arc<MemoryTap>,
    pub registry: SessionRegistry,
    pub dir: tempfile::TempDir,
    pub user_key: PathBuf,
    pub known_hosts: PathBuf,
    pub host_fingerprint: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub const ALICE_PW: &str = "alice-Secret-1";

pub struct Options {
    pub configure: Box<dyn FnOnce(&mut SshGatewayConfig) + Send>,
    pub control_plane: Option<Arc<dyn SessionLifecycle>>,
    pub targets: Option<Arc<dyn TargetAccess>>,
    pub taps: Option<Arc<dyn TapFactory>>,
    /// Serve the directory to the gateway as a remote one does (psm-client's
    /// `HttpDirectory`): records without the password hash or TOTP secret
    /// ([`Factor::Remote`]), verification by the directory.
    pub secrets_elsewhere: Option<Arc<SecretsElsewhere>>,
}

/// A directory whose records carry no secrets, like one read over HTTP: the gateway can
/// only authenticate by asking it. Counts the verifications it was asked for.
pub struct SecretsElsewhere {
    pub inner: Arc<MemoryDirectory>,
    pub password_checks: std::sync::atomic::AtomicUsize,
    pub totp_checks: std::sync::atomic::AtomicUsize,
}

impl SecretsElsewhere {
    pub fn new(inner: Arc<MemoryDirectory>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            password_checks: Default::default(),
            totp_checks: Default::default(),
        })
    }
}

fn without_secrets(mut u: DirectoryUser) -> DirectoryUser {
    if u.password.is_some() {
        u.password = Factor::Remote;
    }
    if u.totp.is_some() {
        u.totp = Factor::Remote;
    }
    u
}

#[async_trait]
impl DirectoryLookup for SecretsElsewhere {
    async fn user(&self, name: &str) -> Result<Option<DirectoryUser>, CoreError> {
        Ok(self.inner.user(name).await?.map(without_secrets))
    }
    async fn targets_of_roles(&self, roles: &[String]) -> Result<Vec<String>, CoreError> {
        self.inner.targets_of_roles(roles).await
    }
    async fn verify_password(
        &self,
        name: &str,
        password: &Secret<String>,
    ) -> Result<bool, CoreError> {
        self.password_checks
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.verify_password(name, password).await
    }
    async fn verify_totp(&self, name: &str, code: &str, now: u64) -> Result<bool, CoreError> {
        self.totp_checks
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.verify_totp(name, code, now).await
    }
}

#[async_trait]
impl DirectoryAdmin for SecretsElsewhere {
    async fn users(&self) -> Result<Vec<DirectoryUser>, CoreError> {
        Ok(self
            .inner
            .users()
            .await?
            .into_iter()
            .map(without_secrets)
            .collect())
    }
    async fn create_user(&self, user: &NewUser) -> Result<(), CoreError> {
        self.inner.create_user(user).await
    }
    async fn update_user(&self, name: &str, update: &UserUpdate) -> Result<(), CoreError> {
        self.inner.update_user(name, update).await
    }
    async fn delete_user(&self, name: &str) -> Result<bool, CoreError> {
        self.inner.delete_user(name).await
    }
    async fn add_key(&self, name: &str, key: &AuthorizedKey) -> Result<(), CoreError> {
        self.inner.add_key(name, key).await
    }
    async fn remove_key(&self, name: &str, key: &AuthorizedKey) -> Result<bool, CoreError> {
        self.inner.remove_key(name, key).await
    }
    async fn grant(&self, role: &str, target: &str) -> Result<(), CoreError> {
        self.inner.grant(role, target).await
    }
    async fn revoke(&self, role: &str, target: &str) -> Result<bool, CoreError> {
        self.inner.revoke(role, target).await
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            configure: Box::new(|_| {}),
            control_plane: None,
            targets: None,
            taps: None,
            secrets_elsewhere: None,
        }
    }
}

impl Gateway {
    pub async fn start(sshd: &Sshd) -> Self {
        Self::start_with(sshd, Options::default()).await
    }

    pub async fn start_with(sshd: &Sshd, opts: Options) -> Self {
        if let Ok(filter) = std::env::var("PSM_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let dir = tempfile::tempdir().unwrap();
        let user_key = dir.path().join("alice");
        keygen(&user_key);
        let directory = opts
            .secrets_elsewhere
            .as_ref()
            .map_or_else(|| Arc::new(MemoryDirectory::new()), |s| s.inner.clone());
        let served: Arc<dyn UserDirectory> = match &opts.secrets_elsewhere {
            Some(s) => s.clone(),
            None => directory.clone(),
        };
        let pubkey = std::fs::read_to_string(dir.path().join("alice.pub")).unwrap();
        directory
            .create_user(&NewUser {
                name: "alice".parse().unwrap(),
                password: Some(PasswordHash::hash(ALICE_PW).unwrap()),
                keys: vec![AuthorizedKey::parse(pubkey.trim()).unwrap()],
                totp: None,
                roles: vec!["ops".into()],
            })
            .await
            .unwrap();
        directory.grant("ops", "t1").await.unwrap();
        directory.grant("ops", "t2").await.unwrap();
        directory.grant("ops", "down").await.unwrap();
        let targets = StaticTargets::new();
        targets.insert(
            "t1",
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
        targets.insert(
            "t2",
            StaticTarget {
                host: "127.0.0.1".into(),
                port: sshd.port,
                host_key: HostKeyCheck::Pinned(vec![sshd.host_pub.clone()]),
                credential: TargetCredential {
                    account: TARGET_USER.into(),
                    secret: TargetSecret::PrivateKey {
                        key: std::fs::read_to_string(&sshd.account_key).unwrap(),
                        passphrase: None,
                    },
                },
                lifetime: None,
            },
        );
        targets.insert(
            "down",
            StaticTarget {
                host: "127.0.0.1".into(),
                port: free_port(),
                host_key: HostKeyCheck::Pinned(vec![sshd.host_pub.clone()]),
                credential: TargetCredential {
                    account: TARGET_USER.into(),
                    secret: TargetSecret::Password(target_password().into()),
                },
                lifetime: None,
            },
        );
        let engine = Engine::new(
            Arc::new(MemoryStore::new()),
            Arc::new(SystemClock),
            EngineConfig::default(),
        );
        let tap = Arc::new(MemoryTap::default());
        let registry = SessionRegistry::new();
        let host_key = generate_host_key();
        let (host_line, host_fingerprint) = host_key_public(&host_key);
        let mut config = SshGatewayConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            ProcessInstance::new("gw-test").unwrap(),
        );
        config.host_keys.push(host_key);
        config.heartbeat_interval = Duration::from_secs(1);
        (opts.configure)(&mut config);
        let deps = GatewayDeps {
            control_plane: opts
                .control_plane
                .unwrap_or_else(|| Arc::new(engine.clone())),
            directory: served,
            targets: opts.targets.unwrap_or_else(|| Arc::new(targets.clone())),
            taps: opts
                .taps
                .unwrap_or_else(|| Arc::new(SharedTapFactory(tap.clone()))),
            registry: registry.clone(),
        };
        let gw = SshGateway::bind(config, deps).await.unwrap();
        let addr = gw.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            gw.run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let known_hosts = dir.path().join("known_hosts");
        let mut parts = host_line.split_whitespace();
        std::fs::write(
            &known_hosts,
            format!(
                "[127.0.0.1]:{} {} {}\n",
                addr.port(),
                parts.next().unwrap(),
                parts.next().unwrap()
            ),
        )
        .unwrap();
        Self {
            addr,
            engine,
            directory,
            targets,
            tap,
            registry,
            dir,
            user_key,
            known_hosts,
            host_fingerprint,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// OpenSSH client options: never touch ~/.ssh, pin the gateway's key.
    pub fn ssh_opts(&self) -> Vec<String> {
        vec![
            "-F".into(),
            "/dev/null".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "ConnectTimeout=20".into(),
        ]
    }

    /// `ssh` with alice's key, batch mode.
    pub fn ssh(&self, login: &str, extra: &[&str], remote: &str) -> Command {
        need("ssh", "openssh-client");
        let mut c = Command::new("ssh");
        c.args(self.ssh_opts())
            .args(["-o", "BatchMode=yes", "-i"])
            .arg(&self.user_key)
            .args(["-p", &self.addr.port().to_string()])
            .args(extra)
            .arg(format!("{login}@127.0.0.1"));
        if !remote.is_empty() {
            c.arg(remote);
        }
        c
    }

    /// `ssh` through `sshpass` with `password`, password authentication only.
    pub fn ssh_password(
        &self,
        password: &str,
        login: &str,
        extra: &[&str],
        remote: &str,
    ) -> Command {
        need("sshpass", "sshpass");
        let mut c = Command::new("sshpass");
        c.args(["-p", password, "ssh"])
            .args(self.ssh_opts())
            .args([
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "PubkeyAuthentication=no",
            ])
            .args(extra)
            .args(["-p", &self.addr.port().to_string()])
            .arg(format!("{login}@127.0.0.1"));
        if !remote.is_empty() {
            c.arg(remote);
        }
        c
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
        }
    }

    /// Sessions in the control plane, newest first.
    pub async fn sessions(&self) -> Vec<psm_core::PrivSession> {
        self.engine.list(&Default::default()).await.unwrap()
    }
}

/// Runs a command off the async threads, with a time limit, returning its output.
pub async fn run(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null());
    run_with_stdin(cmd, Vec::new(), limit).await
}

pub async fn run_with_stdin(cmd: Command, input: Vec<u8>, limit: Duration) -> Output {
    let shown = format!("{cmd:?}");
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if !input.is_empty() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{shown}: {e}"));
    if !input.is_empty() {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
    }
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(o) => o.unwrap(),
        Err(_) => panic!("{shown} did not finish within {limit:?}"),
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn sha256_file(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    text(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

pub fn totp_for_alice() -> TotpSecret {
    TotpSecret::generate()
}
