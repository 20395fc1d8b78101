//! Live control of a MySQL session through the session layer, with the real `mariadb`
//! client against the machine's MariaDB (a dedicated account whose password only the test's
//! vault knows): pause holds the next statement (it does not reach the target) until resume,
//! lock refuses statements with an error the client shows until unlock, and terminate closes
//! the connection; the session is ended in the control plane and its statements recorded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use psm_core::clock::SystemClock;
use psm_core::directory::{DirectoryAdmin, MemoryDirectory, NewUser, PasswordHash};
use psm_core::store::MemoryStore;
use psm_core::{Engine, EngineConfig, ProcessInstance, Stage};
use psm_proxy::record::{RecorderConfig, RecorderFactory};
use psm_proxy::{
    HostKeyCheck, SessionRegistry, StaticTarget, StaticTargets, TargetCredential, TargetSecret,
};
use psm_proxy_db::mysql::{MysqlGateway, MysqlGatewayConfig, MysqlGatewayDeps};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const VAULTED: &str = "Vaulted-live-maria-5522";

fn root(sql: &str) -> std::process::Output {
    Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-u",
            "root",
            "-N",
            "-B",
            "-e",
            sql,
        ])
        .output()
        .unwrap()
}

/// The account and database of this test, dropped when done.
struct Maria(String);

impl Drop for Maria {
    fn drop(&mut self) {
        let n = &self.0;
        let _ = root(&format!(
            "DROP USER IF EXISTS '{n}'@'127.0.0.1'; DROP DATABASE IF EXISTS {n};"
        ));
    }
}

fn count(db: &str) -> String {
    let out = root(&format!("SELECT count(*) FROM {db}.marks"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn wait(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..600 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_lock_and_terminate_act_on_a_mariadb_session() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = format!("psm_live_{}", std::process::id());
    let setup = root(&format!(
        "DROP USER IF EXISTS '{db}'@'127.0.0.1'; DROP DATABASE IF EXISTS {db}; \
         CREATE DATABASE {db}; CREATE TABLE {db}.marks (n int); \
         CREATE USER '{db}'@'127.0.0.1' IDENTIFIED BY '{VAULTED}'; \
         GRANT ALL ON {db}.* TO '{db}'@'127.0.0.1';"
    ));
    assert!(setup.status.success(), "{setup:?}");
    let _maria = Maria(db.clone());

    let directory = Arc::new(MemoryDirectory::new());
    directory
        .create_user(&NewUser {
            name: "alice".parse().unwrap(),
            password: Some(PasswordHash::hash("alice-pw").unwrap()),
            roles: vec!["dba".into()],
            ..NewUser::default()
        })
        .await
        .unwrap();
    directory.grant("dba", "mariaprod").await.unwrap();
    let targets = StaticTargets::new();
    targets.insert(
        "mariaprod",
        StaticTarget {
            host: "127.0.0.1".into(),
            port: 3306,
            host_key: HostKeyCheck::AcceptAny,
            credential: TargetCredential {
                account: db.clone(),
                secret: TargetSecret::Password(VAULTED.into()),
            },
            lifetime: None,
        },
    );
    let engine = Engine::new(
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
        EngineConfig::default(),
    );
    let recordings = d.join("recordings");
    let recorder = RecorderFactory::new(RecorderConfig::new(
        &recordings,
        psm_recording::SigningKey::generate().unwrap(),
        "test",
    ));
    let registry = SessionRegistry::new();
    let cert = psm_proxy_db::tls::load_or_create_certificate(
        &d.join("gw.crt"),
        &d.join("gw.key"),
        &["localhost".into()],
    )
    .unwrap();
    let mut config = MysqlGatewayConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ProcessInstance::new("my-test").unwrap(),
    );
    config.tls = Some(cert.config);
    config.heartbeat_interval = Duration::from_secs(1);
    let gateway = MysqlGateway::bind(
        config,
        MysqlGatewayDeps {
            control_plane: Arc::new(engine.clone()),
            directory,
            targets: Arc::new(targets),
            taps: Arc::new(recorder),
            registry: registry.clone(),
        },
    )
    .await
    .unwrap();
    let port = gateway.local_addr().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(gateway.run(async move {
        let _ = stopped.await;
    }));

    // mariadb reading statements from a pipe, as a user typing them one by one.
    let mut client = tokio::process::Command::new("mariadb")
        .args(["--ssl", "-h", "127.0.0.1", "-P", &port.to_string()])
        .args([
            "-u",
            "alice+mariaprod",
            "-palice-pw",
            "--force",
            "--unbuffered",
            "-N",
            "-B",
        ])
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let mut out = BufReader::new(client.stdout.take().unwrap()).lines();
    let mut err = BufReader::new(client.stderr.take().unwrap()).lines();

    stdin
        .write_all(b"SELECT concat('first-', current_user());\n")
        .await
        .unwrap();
    assert_eq!(
        out.next_line().await.unwrap().unwrap(),
        format!("first-{db}@127.0.0.1")
    );
    let session = registry.list().pop().expect("the session is registered");
    let control = registry.get(session.id).unwrap().control().clone();
    assert_eq!(session.protocol, psm_core::Protocol::Mysql);

    // Pause: the INSERT reaches the gateway but not the target until resumed.
    assert!(registry.pause(session.id));
    let before = control
        .counters
        .to_target
        .load(std::sync::atomic::Ordering::Relaxed);
    stdin
        .write_all(b"INSERT INTO marks VALUES (1);\n")
        .await
        .unwrap();
    wait("the INSERT reaching the gateway", || {
        control
            .counters
            .to_target
            .load(std::sync::atomic::Ordering::Relaxed)
            > before
    })
    .await;
    assert_eq!(
        count(&db),
        "0",
        "a paused session's statement reached the target"
    );
    assert!(registry.resume(session.id));
    wait("the INSERT after resume", || count(&db) == "1").await;

    // Lock: statements are refused with an error the client shows; unlock lets them through.
    assert!(control.lock_by("bob", "checking"));
    stdin
        .write_all(b"INSERT INTO marks VALUES (2);\n")
        .await
        .unwrap();
    // (--force echoes the failed statement between dashes before the error.)
    let mut line = String::new();
    while !line.contains("ERROR") {
        line = err.next_line().await.unwrap().unwrap();
    }
    assert!(
        line.contains("ERROR 1227") && line.contains("locked by bob"),
        "{line}"
    );
    assert_eq!(count(&db), "1");
    assert!(control.unlock_by("bob"));
    stdin
        .write_all(b"INSERT INTO marks VALUES (3);\n")
        .await
        .unwrap();
    wait("the INSERT after unlock", || count(&db) == "2").await;

    // Terminate: the connection is closed with the reason; the session ends everywhere.
    assert!(registry.terminate(session.id, "admin says bye"));
    wait("the session leaving the registry", || registry.is_empty()).await;
    drop(stdin);
    let _ = client.wait().await;
    let s = engine.session(session.id).await.unwrap();
    assert!(s.stage >= Stage::Ended, "{:?}", s.stage);

    // The recording holds the statements, the refused one with the lock's reason.
    let path = recordings.join(format!("{}.psmr", session.id));
    let mut reader =
        psm_recording::Reader::open(&path, psm_recording::ReadOptions::default()).unwrap();
    let mut texts = Vec::new();
    for e in reader.events() {
        if let psm_recording::EventKind::DbStatement(s) = e.unwrap().kind {
            texts.push(format!(
                "{} {}",
                s.text,
                s.error.map(|e| e.message).unwrap_or_default()
            ));
        }
    }
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("INSERT INTO marks VALUES (1)")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("INSERT INTO marks VALUES (2)") && t.contains("locked by bob")),
        "{texts:?}"
    );
    assert!(!texts.iter().any(|t| t.contains(VAULTED)));
    let _ = stop.send(());
    run.await.unwrap().unwrap();
}
