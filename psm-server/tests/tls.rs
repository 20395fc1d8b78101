//! TLS and mTLS with real certificates made by the `openssl` command: HTTPS with the
//! server's CA trusted by the client; a client certificate mapped to the gateway role
//! authenticates without an API key; an API key still works over TLS without a client
//! certificate; a client that does not trust the CA cannot connect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use psm_client::{Client, ClientConfig};
use psm_core::clock::SystemClock;
use psm_core::store::MemoryStore;
use psm_core::vault::{
    Keyring, MasterKey, MemoryVaultStore, PamSettings, Secret, Vault, VaultConfig,
};
use psm_core::{Engine, EngineConfig, LocalControlPlane};
use psm_server::auth::generate_key;
use psm_server::{ApiKeys, Principal, Role, Server, ServerConfig, TlsSettings};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command is needed for this test (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all P-256.
fn make_pki(dir: &Path) {
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=psm test CA",
        ],
        vec![
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
        vec![
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=gateway-7",
        ],
        vec![
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "client.pem",
            "-days",
            "2",
            "-extfile",
            "client.ext",
        ],
        vec![
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "client.key",
            "-out",
            "client.p8",
        ],
        vec![
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "server.key",
            "-out",
            "server.p8",
        ],
    ] {
        openssl(dir, &args);
    }
}

#[tokio::test]
async fn https_and_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let read = |n: &str| std::fs::read(dir.path().join(n)).unwrap();
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
    let admin_key = generate_key(Role::Admin).unwrap();
    let mut keys = ApiKeys::new();
    keys.add(Principal::shared("admin", Role::Admin), &admin_key);
    let mut principals = HashMap::new();
    for fp in psm_server::tls::pem_fingerprints(&read("client.pem")).unwrap() {
        principals.insert(fp, Principal::shared("gateway-7", Role::Gateway));
    }
    let tls = TlsSettings {
        cert_chain_pem: read("server.pem"),
        key_pem: Secret::new(read("server.p8")),
        client_ca_pem: Some(read("ca.pem")),
        client_principals: principals,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(
        cp,
        keys,
        dir.path().join("artifacts"),
        ServerConfig::default(),
    )
    .start(listener, Some(&tls))
    .unwrap();
    assert!(server.url().starts_with("https://"));

    // mTLS: the certificate is the credential; its role is gateway.
    let mut identity = read("client.pem");
    identity.extend_from_slice(&read("client.p8"));
    let mut c = ClientConfig::new(server.url());
    c.root_ca_pem = Some(read("ca.pem"));
    c.client_identity_pem = Some(Secret::new(identity));
    c.retries = 0;
    let gw = Client::new(c).unwrap();
    assert_eq!(gw.get_pam_settings().await.unwrap().storage_mode, "UNC");
    let e = gw.list_targets().await.unwrap_err();
    assert!(
        e.to_string()
            .contains("role gateway may not call ListTargets"),
        "{e}"
    );

    // An API key over TLS, no client certificate.
    let mut c = ClientConfig::new(server.url()).with_api_key(admin_key.expose_secret().clone());
    c.root_ca_pem = Some(read("ca.pem"));
    c.retries = 0;
    let admin = Client::new(c).unwrap();
    assert!(admin.list_targets().await.unwrap().is_empty());

    // Neither: 401. A client that does not trust the CA: no connection at all.
    let mut c = ClientConfig::new(server.url());
    c.root_ca_pem = Some(read("ca.pem"));
    c.retries = 0;
    let anonymous = Client::new(c).unwrap();
    let e = anonymous.get_pam_settings().await.unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
    let mut c = ClientConfig::new(server.url());
    c.retries = 0;
    let untrusting = Client::new(c).unwrap();
    assert!(matches!(
        untrusting.health().await,
        Err(psm_client::ClientError::Transport { .. })
    ));
    server.stop().await;
}
