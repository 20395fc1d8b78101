//! The harness of the web UI's tests: a real psm-server (control plane + web UI) on a
//! loopback port over an in-memory control plane and directory, a data directory with
//! recordings written by psm-recording, and a cookie-aware HTTP helper.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use psm_core::clock::SystemClock;
use psm_core::directory::{
    DirectoryAdmin, MemoryDirectory, NewUser, PasswordHash, TotpSecret, UserDirectory,
};
use psm_core::store::MemoryStore;
use psm_core::vault::{Keyring, MasterKey, MemoryVaultStore, PamSettings, Vault, VaultConfig};
use psm_core::{
    Engine, EngineConfig, LocalControlPlane, NewSession, ProcessInstance, Protocol, SessionId,
};
use psm_recording::{ChannelId, Header, RecordingWriter, SigningKey, TermSize, WriterConfig};
use psm_server::web::WebConfig;
use psm_server::{ApiKeys, RunningServer, Server, ServerConfig};

pub const ADMIN: (&str, &str) = ("admin", "admin-password-1");
pub const AUDITOR: (&str, &str) = ("audrey", "auditor-password-1");
pub const USER: (&str, &str) = ("ursula", "user-password-1");
pub const TOTP_ADMIN: (&str, &str) = ("tom", "tom-password-1");

pub struct Web {
    pub server: Option<RunningServer>,
    pub url: String,
    pub cp: LocalControlPlane,
    pub directory: Arc<MemoryDirectory>,
    pub data: tempfile::TempDir,
    pub totp: TotpSecret,
    pub http: reqwest::Client,
}

pub async fn start(tweak: impl FnOnce(&mut WebConfig)) -> Web {
    start_with(|_| {}, tweak, |d| d).await
}

/// As [`start`], with the server's settings tweaked too, and the directory the server reads
/// given by `wrap` (which receives the seeded in-memory directory).
pub async fn start_with(
    server: impl FnOnce(&mut ServerConfig),
    tweak: impl FnOnce(&mut WebConfig),
    wrap: impl FnOnce(Arc<dyn UserDirectory>) -> Arc<dyn UserDirectory>,
) -> Web {
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
    let totp = TotpSecret::generate();
    for (name, pw, role, totp) in [
        (ADMIN.0, ADMIN.1, "admin", None),
        (AUDITOR.0, AUDITOR.1, "auditor", None),
        (USER.0, USER.1, "ops", None),
        (TOTP_ADMIN.0, TOTP_ADMIN.1, "admin", Some(totp.clone())),
    ] {
        directory
            .create_user(&NewUser {
                name: name.parse().unwrap(),
                password: Some(PasswordHash::hash(pw).unwrap()),
                roles: vec![role.into()],
                totp,
                ..NewUser::default()
            })
            .await
            .unwrap();
    }
    directory.grant("admin", "*").await.unwrap();
    directory.grant("ops", "web-01").await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = WebConfig::for_data_dir(data.path());
    tweak(&mut config);
    let mut server_config = ServerConfig::default();
    server(&mut server_config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(
        cp.clone(),
        ApiKeys::new(),
        data.path().join("artifacts"),
        server_config,
    )
    .with_directory(wrap(directory.clone()))
    .with_web(config)
    .start(listener, None)
    .unwrap();
    let url = server.url();
    Web {
        server: Some(server),
        url,
        cp,
        directory,
        data,
        totp,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

/// A logged-in browser: its cookie and CSRF token.
#[derive(Clone, Debug)]
pub struct Login {
    pub cookie: String,
    pub csrf: String,
}

impl Web {
    pub fn recordings(&self) -> PathBuf {
        self.data.path().join("recordings")
    }

    pub fn exports(&self) -> PathBuf {
        self.data.path().join("exports")
    }

    /// POST with the page's headers (Origin = the server, JSON).
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.url))
            .header("origin", &self.url)
            .header("content-type", "application/json")
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.url))
    }

    pub async fn try_login(
        &self,
        user: &str,
        password: &str,
        totp: Option<&str>,
    ) -> reqwest::Response {
        let mut body = serde_json::json!({"user": user, "password": password});
        if let Some(code) = totp {
            body["totp"] = code.into();
        }
        self.post("/ui/api/login")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, user: &str, password: &str) -> Login {
        let res = self.try_login(user, password, None).await;
        assert_eq!(res.status(), 200, "login of {user}");
        let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
        let cookie = set.split(';').next().unwrap().to_owned();
        let me: serde_json::Value = res.json().await.unwrap();
        Login {
            cookie,
            csrf: me["csrf"].as_str().unwrap().to_owned(),
        }
    }

    /// A Connected session opened by gateway `gw-1`.
    pub async fn open_session(&self, user: &str, target: &str) -> SessionId {
        let id = SessionId::new();
        self.cp
            .engine()
            .open_session(NewSession {
                id,
                user: user.into(),
                target: target.into(),
                protocol: Protocol::Ssh,
                checkout_id: None,
                process_instance: ProcessInstance::new("gw-1").unwrap(),
            })
            .await
            .unwrap();
        id
    }

    /// Writes a recording of session `id`: a shell where `commands` are typed and each
    /// prints `output`.
    pub async fn record(
        &self,
        id: SessionId,
        user: &str,
        target: &str,
        steps: &[(&str, &str)],
    ) -> PathBuf {
        write_recording(&self.recordings(), id, user, target, steps).await
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }
}

pub async fn write_recording(
    dir: &Path,
    id: SessionId,
    user: &str,
    target: &str,
    steps: &[(&str, &str)],
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{id}.psmr"));
    let header = Header::new(id, psm_recording::Protocol::Ssh, user, target, "test")
        .with_terminal(TermSize::new(80, 24), "xterm-256color");
    // Signed by a registered gateway (DIR is DATA/recordings): the replay page trusts only
    // those.
    let signing = SigningKey::generate().unwrap();
    if let Some(data) = dir.parent() {
        psm_recording::layout::LocalLayout::new(data)
            .gateway_signers()
            .register("gw-test", &signing.verifying_key())
            .unwrap();
    }
    let w = RecordingWriter::create(&path, header, signing, WriterConfig::default())
        .await
        .unwrap();
    let prompt = format!("{user}@{target}:~$ ");
    w.output(ChannelId(0), prompt.as_bytes()).await.unwrap();
    for (command, output) in steps {
        for c in command.chars() {
            let s = c.to_string();
            w.input(ChannelId(0), s.as_bytes(), false).await.unwrap();
            w.output(ChannelId(0), s.as_bytes()).await.unwrap();
        }
        w.input(ChannelId(0), b"\r", false).await.unwrap();
        w.output(ChannelId(0), b"\r\n").await.unwrap();
        w.output(ChannelId(0), format!("{output}\r\n{prompt}").as_bytes())
            .await
            .unwrap();
    }
    w.finish("client disconnected").await.unwrap();
    path
}

/// A search people paste: over 300 characters and 400 bytes of spaces, both quotes, markup,
/// accents, CJK, an emoji and a letter whose lower case is longer than itself (İ).
pub fn long_query() -> String {
    let piece = r#"grep "naïve café" 'déjà vu' <b>東京 ☃</b> & İstanbul 🚀; "#;
    piece.repeat(6).trim_end().to_owned()
}

/// Percent-encodes everything but unreserved characters (for query strings).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
