//! Real storage services for tests: moto's S3 server and Azurite, each started on a free
//! loopback port, waited for, and killed by PID when dropped. A missing peer fails loudly
//! with what to install.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{KeyInit, Mac};

use crate::config::{AzureConfig, S3Config, SecretString, Tuning};

/// Azurite's well-known development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development key (public, documented by Microsoft).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral loopback port");
    l.local_addr().expect("local address").port()
}

/// Sends one HTTP/1.1 request over a fresh connection; returns status and body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(String, String)],
) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {text:.100}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn wait_http(port: u16, what: &str, child: &mut Child, ready: impl Fn(u16) -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status} before answering on port {port}");
        }
        if let Ok((code, _)) = http(port, "GET", "/", &[])
            && ready(code)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not answer on 127.0.0.1:{port} within 60 s");
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// moto's S3 server (`pip install 'moto[server]'`).
#[derive(Debug)]
pub struct Moto {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Moto {
    /// Starts `moto_server` on a free loopback port and waits until it answers.
    pub fn start() -> Self {
        let port = free_port();
        let mut child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server ({e}): install it with `pip install 'moto[server]'`"
                )
            });
        wait_http(port, "moto_server", &mut child, |code| code < 500);
        Self { child, port }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (moto does not check signatures).
    pub fn create_bucket(&self, bucket: &str) {
        let (code, body) = http(self.port, "PUT", &format!("/{bucket}"), &[])
            .unwrap_or_else(|e| panic!("creating bucket {bucket}: {e}"));
        assert_eq!(code, 200, "creating bucket {bucket}: {body}");
    }

    /// A store config for `bucket` on this server (credentials `test`/`test`).
    pub fn config(&self, bucket: &str, tuning: Tuning) -> S3Config {
        self.config_at(&self.endpoint(), bucket, tuning)
    }

    /// A store config for `bucket` reached through `endpoint` (a proxy in front of moto).
    pub fn config_at(&self, endpoint: &str, bucket: &str, tuning: Tuning) -> S3Config {
        let mut c = S3Config::new(bucket);
        c.endpoint = Some(endpoint.to_owned());
        c.allow_http = true;
        c.access_key_id = Some("test".into());
        c.secret_access_key = Some(SecretString::from("test"));
        c.tuning = tuning;
        c
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// The workspace's root (where `node_modules/` is).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("psm-storage lives in the workspace")
        .to_owned()
}

/// Azurite's blob service (`npm ci` in the workspace root installs it from package.json).
#[derive(Debug)]
pub struct Azurite {
    child: Child,
    _dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Azurite {
    /// Starts `node_modules/.bin/azurite-blob` on a free loopback port with a fresh data
    /// directory, and waits until it answers (a 403 to an unsigned request).
    pub fn start() -> Self {
        let bin = workspace_root().join("node_modules/.bin/azurite-blob");
        assert!(
            bin.exists(),
            "{} is missing: run `npm ci` in the workspace root (package.json lists azurite)",
            bin.display()
        );
        let dir = tempfile::tempdir().expect("azurite data directory");
        let port = free_port();
        let mut child = Command::new(&bin)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--location",
            ])
            .arg(dir.path())
            .args(["--skipApiVersionCheck", "--disableTelemetry", "--silent"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({e}): is node installed?", bin.display()));
        wait_http(port, "azurite-blob", &mut child, |code| {
            code == 403 || code == 400
        });
        Self {
            child,
            _dir: dir,
            port,
        }
    }

    /// The path-style account URL, `http://127.0.0.1:PORT/devstoreaccount1`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.port)
    }

    /// Creates a container, signing the request with the development account's shared key.
    pub fn create_container(&self, container: &str) {
        let date = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            ))
            .expect("formatting a date");
        let version = "2021-08-06";
        let resource =
            format!("/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container");
        // VERB, then 11 standard headers (Content-Length is "0" → empty in this version),
        // then the canonicalized x-ms- headers and resource.
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n{resource}"
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(AZURITE_KEY)
            .expect("the dev key is base64");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC key");
        mac.update(to_sign.as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let headers = [
            ("x-ms-date".to_owned(), date),
            ("x-ms-version".to_owned(), version.to_owned()),
            (
                "Authorization".to_owned(),
                format!("SharedKey {AZURITE_ACCOUNT}:{sig}"),
            ),
        ];
        let path = format!("/{AZURITE_ACCOUNT}/{container}?restype=container");
        let (code, body) = http(self.port, "PUT", &path, &headers)
            .unwrap_or_else(|e| panic!("creating container {container}: {e}"));
        assert_eq!(code, 201, "creating container {container}: {body}");
    }

    /// A store config for `container` on this Azurite.
    pub fn config(&self, container: &str, tuning: Tuning) -> AzureConfig {
        let mut c = AzureConfig::new(AZURITE_ACCOUNT, container);
        c.endpoint = Some(self.endpoint());
        c.allow_http = true;
        c.access_key = Some(SecretString::from(AZURITE_KEY));
        c.tuning = tuning;
        c
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
