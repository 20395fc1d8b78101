//! Live control of a database session through the session layer, with real psql against a
//! throwaway SCRAM PostgreSQL cluster: pause holds the next statement (it does not reach the
//! target) until resume, lock refuses statements with an error psql shows until unlock, and
//! terminate closes the connection with the reason; the session is ended in the control
//! plane and its statements recorded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
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
use psm_proxy_db::{PostgresGateway, PostgresGatewayConfig, PostgresGatewayDeps};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const BIN: &str = "/usr/lib/postgresql/15/bin";
const VAULTED: &str = "Vaulted-live-pg-4411";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Cluster {
    port: u16,
    server: std::process::Child,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.server.id().to_string()])
            .status();
        let _ = self.server.wait();
    }
}

fn cluster(dir: &Path) -> Cluster {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("pw"), "pgadmin-pw\n").unwrap();
    assert!(
        Command::new("chown")
            .args(["-R", "nobody"])
            .arg(dir)
            .status()
            .unwrap()
            .success()
    );
    let nobody = |p: &str| {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
            &format!("{BIN}/{p}"),
        ]);
        c
    };
    let out = nobody("initdb")
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-U", "pgadmin", "--pwfile"])
        .arg(dir.join("pw"))
        .args([
            "-A",
            "scram-sha-256",
            "-N",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let port = free_port();
    let server = nobody("postgres")
        .arg("-D")
        .arg(dir.join("data"))
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-p",
            &port.to_string(),
            "-k",
        ])
        .arg(dir)
        .args(["-c", "fsync=off"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let c = Cluster { port, server };
    for _ in 0..300 {
        if Command::new("pg_isready")
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .unwrap()
            .success()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let sql = [
        format!("CREATE ROLE appuser LOGIN PASSWORD '{VAULTED}'"),
        "CREATE DATABASE app OWNER appuser".into(),
    ];
    for s in sql {
        assert!(admin(&c, "postgres", &s).status.success());
    }
    c
}

fn admin(c: &Cluster, db: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .env("PGPASSWORD", "pgadmin-pw")
        .args(["-X", "-At", "-h", "127.0.0.1", "-p", &c.port.to_string()])
        .args(["-U", "pgadmin", "-d", db, "-c", sql])
        .output()
        .unwrap()
}

fn count(c: &Cluster) -> String {
    let out = admin(c, "app", "SELECT count(*) FROM marks");
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
async fn pause_lock_and_terminate_act_on_a_psql_session() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pg = cluster(&d.join("cluster"));
    assert!(
        admin(
            &pg,
            "app",
            "CREATE TABLE marks (n int); ALTER TABLE marks OWNER TO appuser"
        )
        .status
        .success()
    );

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
    directory.grant("dba", "pgprod").await.unwrap();
    let targets = StaticTargets::new();
    targets.insert(
        "pgprod",
        StaticTarget {
            host: "127.0.0.1".into(),
            port: pg.port,
            host_key: HostKeyCheck::AcceptAny,
            credential: TargetCredential {
                account: "appuser".into(),
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
    let mut config = PostgresGatewayConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ProcessInstance::new("pg-test").unwrap(),
    );
    config.tls = Some(cert.config);
    config.heartbeat_interval = Duration::from_secs(1);
    let gateway = PostgresGateway::bind(
        config,
        PostgresGatewayDeps {
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

    // psql reading statements from a pipe, as a user typing them one by one.
    let mut psql = tokio::process::Command::new("psql")
        .env("PGPASSWORD", "alice-pw")
        .arg("-X")
        .arg(format!(
            "host=127.0.0.1 port={port} user=alice+pgprod dbname=app sslmode=require"
        ))
        .args(["-v", "ON_ERROR_STOP=0", "-At"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = psql.stdin.take().unwrap();
    let mut out = BufReader::new(psql.stdout.take().unwrap()).lines();
    let mut err = BufReader::new(psql.stderr.take().unwrap()).lines();

    stdin
        .write_all(b"SELECT 'first-' || current_user;\n")
        .await
        .unwrap();
    assert_eq!(out.next_line().await.unwrap().unwrap(), "first-appuser");
    let session = registry.list().pop().expect("the session is registered");
    let control = registry.get(session.id).unwrap().control().clone();
    assert_eq!(session.protocol, psm_core::Protocol::Postgres);

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
        count(&pg),
        "0",
        "a paused session's statement reached the target"
    );
    assert!(registry.resume(session.id));
    wait("the INSERT after resume", || count(&pg) == "1").await;

    // Lock: statements are refused with an error psql shows; unlock lets them through.
    assert!(control.lock_by("bob", "checking"));
    stdin
        .write_all(b"INSERT INTO marks VALUES (2);\n")
        .await
        .unwrap();
    let line = err.next_line().await.unwrap().unwrap();
    assert!(line.contains("locked by bob"), "{line}");
    assert_eq!(count(&pg), "1");
    assert!(control.unlock_by("bob"));
    stdin
        .write_all(b"INSERT INTO marks VALUES (3);\n")
        .await
        .unwrap();
    wait("the INSERT after unlock", || count(&pg) == "2").await;

    // Terminate: the connection is closed with the reason; the session ends everywhere.
    assert!(registry.terminate(session.id, "admin says bye"));
    wait("the session leaving the registry", || registry.is_empty()).await;
    stdin.write_all(b"SELECT 4;\n").await.unwrap();
    drop(stdin);
    let mut rest = String::new();
    while let Ok(Some(l)) = err.next_line().await {
        rest.push_str(&l);
        rest.push('\n');
    }
    assert!(
        rest.contains("admin says bye") || rest.contains("server closed the connection"),
        "{rest}"
    );
    let _ = psql.wait().await;
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
            .any(|t| t.starts_with("INSERT INTO marks VALUES (1);")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("INSERT INTO marks VALUES (2);") && t.contains("locked by bob")),
        "{texts:?}"
    );
    let _ = stop.send(());
    run.await.unwrap().unwrap();
}
