//! The PostgreSQL gateway of a real `psm up`, with the real clients: a throwaway PostgreSQL
//! 15 cluster with SCRAM-SHA-256 authentication (so the vaulted password is really what logs
//! in), `psm targets add --protocol postgres`, then `psql`, `pgbench` and psycopg with
//! server-side prepared statements as `alice+pgprod`, a `DROP TABLE` the policy refuses, a
//! startup packet claiming a gigabyte, and the recordings that come out.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Up, free_port, text, wait_for};

const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The target account's password: only the vault and the cluster know it.
const VAULTED: &str = "Vaulted-pg-Secret-7c1e";
const ALICE_PW: &str = "alice-psm-password-1";

/// A private PostgreSQL cluster (SCRAM-SHA-256 everywhere), run as `nobody`, stopped and
/// removed when dropped.
struct Cluster {
    dir: PathBuf,
    port: u16,
    server: std::process::Child,
}

impl Cluster {
    fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("pw"), "pgadmin-pw\n").unwrap();
        let chown = Command::new("chown")
            .args(["-R", "nobody"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(chown.success());
        let as_nobody = |program: &str| {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "--",
                &format!("{BIN}/{program}"),
            ]);
            c
        };
        let out = as_nobody("initdb")
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
        assert!(out.status.success(), "initdb: {}", text(&out));
        let port = free_port();
        let server = as_nobody("postgres")
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
            .arg("-k")
            .arg(dir)
            .args(["-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let ready = wait_for(30, || {
            Command::new("pg_isready")
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()
                .unwrap()
                .success()
                .then_some(())
        });
        assert!(ready.is_some(), "the cluster did not start");
        let c = Self {
            dir: dir.to_owned(),
            port,
            server,
        };
        let out = c.admin(&[
            &format!("CREATE ROLE appuser LOGIN PASSWORD '{VAULTED}'"),
            "CREATE DATABASE app OWNER appuser",
        ]);
        assert!(out.status.success(), "{}", text(&out));
        c
    }

    fn admin(&self, sql: &[&str]) -> Output {
        let mut cmd = Command::new("psql");
        cmd.env("PGPASSWORD", "pgadmin-pw").args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "pgadmin",
            "-d",
            "postgres",
        ]);
        for s in sql {
            cmd.args(["-c", s]);
        }
        cmd.output().unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.server.id().to_string()])
            .status();
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The libpq connection string for `alice+pgprod` through the gateway.
fn conninfo(up: &Up, sslmode: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user=alice+pgprod dbname=app sslmode={sslmode}",
        up.postgres_port
    )
}

fn psql(up: &Up, password: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new("psql")
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "20")
        .arg("-X")
        .arg(conninfo(up, "require"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Every session's uploaded text transcript, once the transcripts together hold every one
/// of `expected` (sessions end, are encoded and uploaded in their own time).
fn transcripts(up: &Up, expected: &[&str]) -> Vec<(PathBuf, String)> {
    let read = || -> Vec<(PathBuf, String)> {
        let dir = up.data.join("store").join("sessions");
        std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let t = std::fs::read_to_string(e.path().join("transcript.txt")).ok()?;
                Some((e.path(), t))
            })
            .collect()
    };
    let joined =
        |found: &[(PathBuf, String)]| -> String { found.iter().map(|(_, t)| t.as_str()).collect() };
    wait_for(120, || {
        let found = read();
        let text = joined(&found);
        expected.iter().all(|e| text.contains(e)).then_some(found)
    })
    .unwrap_or_else(|| {
        panic!(
            "the uploaded transcripts never held all of {expected:?}:\n{}\nlog:\n{}",
            joined(&read()),
            up.log.lock().unwrap()
        )
    })
}

#[test]
fn psql_pgbench_and_psycopg_through_psm_up_with_a_vaulted_scram_password() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cluster = Cluster::start(&d.join("cluster"));

    // A policy that holds DROP for an approval nobody gives in time (1 s): refused.
    let policy = d.join("policy.toml");
    std::fs::write(
        &policy,
        "[[rule]]\nname = \"no-drop\"\nglob = \"sql:drop\"\naction = \"require-approval\"\n\
         message = \"DROP needs a second pair of eyes\"\n",
    )
    .unwrap();
    let config = d.join("psm.toml");
    std::fs::write(
        &config,
        format!(
            "[policy]\nfile = {:?}\napproval_timeout_secs = 1\n",
            policy.display().to_string()
        ),
    )
    .unwrap();
    let up = Up::start(d, &["--config", config.to_str().unwrap()]);
    for line in [
        format!("PostgreSQL gateway: 127.0.0.1:{}", up.postgres_port),
        "targets add NAME --protocol postgres".to_owned(),
        "query policy: 1 rules".to_owned(),
    ] {
        assert!(up.printed.contains(&line), "{line:?} in:\n{}", up.printed);
    }

    // psm targets add --protocol postgres, psm users add
    let port = cluster.port.to_string();
    let add = up.psm_with_stdin(
        &[
            "targets",
            "add",
            "pgprod",
            "--protocol",
            "postgres",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--user",
            "appuser",
            "--password-stdin",
            "--grant",
            "dba",
        ],
        VAULTED,
    );
    assert!(add.status.success(), "{}", text(&add));
    let user = up.psm_with_stdin(
        &["users", "add", "alice", "--role", "dba", "--password-stdin"],
        ALICE_PW,
    );
    assert!(user.status.success(), "{}", text(&user));

    // psql -c: the target logs in with the vaulted SCRAM password alice never saw.
    let out = psql(
        &up,
        ALICE_PW,
        &[
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "CREATE TABLE accounts (id int PRIMARY KEY, owner text)",
            "-c",
            "INSERT INTO accounts VALUES (1, 'ann'), (2, 'bob')",
            "-c",
            "SELECT owner FROM accounts ORDER BY id",
            "-c",
            "SELECT current_user",
        ],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout.contains("INSERT 0 2"), "{}", text(&out));
    assert!(
        stdout.contains("ann") && stdout.contains("bob"),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("appuser"), "{}", text(&out));

    // A wrong PSM password, and no TLS, are refused before anything reaches the target.
    let wrong = psql(&up, "not-her-password", &["-c", "SELECT 1"], None);
    assert_eq!(wrong.status.code(), Some(2), "{}", text(&wrong));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("password authentication failed"),
        "{}",
        text(&wrong)
    );
    let plain = Command::new("psql")
        .env("PGPASSWORD", ALICE_PW)
        .args(["-X", &conninfo(&up, "disable"), "-c", "SELECT 1"])
        .output()
        .unwrap();
    assert!(!plain.status.success(), "{}", text(&plain));
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("requires TLS"),
        "{}",
        text(&plain)
    );

    // An interactive-style script: the DROP is refused with an error psql shows, and the
    // session goes on (the next statement runs in the same connection).
    let script = "SELECT count(*) AS before FROM accounts;\n\
                  DROP TABLE accounts;\n\
                  SELECT count(*) AS after FROM accounts;\n\
                  SELECT pg_backend_pid() = pg_backend_pid() AS same_session;\n";
    let out = psql(&up, ALICE_PW, &["-v", "ON_ERROR_STOP=0"], Some(script));
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        se.contains("PSM:") && se.contains("no-drop"),
        "{}",
        text(&out)
    );
    assert!(
        so.contains("after") && so.contains("same_session"),
        "{}",
        text(&out)
    );
    let check = Command::new("psql")
        .env("PGPASSWORD", "pgadmin-pw")
        .args([
            "-X",
            "-At",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "pgadmin",
            "-d",
            "app",
        ])
        .args(["-c", "SELECT count(*) FROM accounts"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "2",
        "{}",
        text(&check)
    );

    // pgbench: initialise, then a few TPC-B-like transactions on two connections.
    let pgbench = |args: &[&str]| {
        Command::new("pgbench")
            .env("PGPASSWORD", ALICE_PW)
            .args(args)
            .arg(conninfo(&up, "require"))
            .output()
            .unwrap()
    };
    // (Without its DROP step: the policy refuses DROP.)
    let init = pgbench(&["-i", "-I", "tgvp", "-s", "1", "-q"]);
    assert!(init.status.success(), "{}", text(&init));
    let run = pgbench(&["-t", "25", "-c", "2", "-j", "2"]);
    assert!(run.status.success(), "{}", text(&run));
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        report.contains("number of transactions actually processed: 50/50"),
        "{}",
        text(&run)
    );

    // psycopg 3 with server-side prepared statements (Parse/Bind/Execute, named).
    let py = format!(
        r#"
import psycopg
with psycopg.connect({conninfo:?}, password={pw:?}, prepare_threshold=0) as conn:
    assert conn.pgconn.used_password
    for i in range(3):
        row = conn.execute("SELECT owner FROM accounts WHERE id = %s", (2,), prepare=True).fetchone()
        assert row[0] == "bob", row
    conn.execute("INSERT INTO accounts VALUES (%s, %s)", (3, "psycopg-carol"))
    try:
        conn.execute("DROP TABLE accounts")
        raise SystemExit("the DROP went through")
    except psycopg.errors.InsufficientPrivilege as e:
        print("refused:", e)
    conn.rollback()
    print("count", conn.execute("SELECT count(*) FROM accounts").fetchone()[0])
"#,
        conninfo = conninfo(&up, "require"),
        pw = ALICE_PW,
    );
    let out = Command::new("python3").args(["-c", &py]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(
        so.contains("refused:") && so.contains("no-drop"),
        "{}",
        text(&out)
    );

    // A startup packet claiming 1 GB: a clear error, then the connection is closed.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", up.postgres_port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    s.write_all(&0x4000_0000u32.to_be_bytes()).unwrap();
    s.write_all(&[0, 3, 0, 0]).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with('E'), "{answer:?}");
    assert!(
        answer.contains("invalid startup packet") && answer.contains("1073741824"),
        "{answer:?}"
    );

    // Access windows that name networks see psql's address.
    up.check_network_windows("dba", "pgprod", "psql", || {
        psql(&up, ALICE_PW, &["-c", "SELECT 'inside-the-window'"], None)
    });

    // The recordings: every session is recorded, verifies, and holds its statements; the
    // vaulted password is in no export, no log line and nothing psm up printed.
    let expected = [
        "sql [app] CREATE TABLE accounts (id int PRIMARY KEY, owner text) => CREATE TABLE",
        "INSERT INTO accounts VALUES (1, 'ann'), (2, 'bob') => INSERT 0 2",
        "SELECT owner FROM accounts ORDER BY id => SELECT 2 (2 rows: owner)",
        "DROP TABLE accounts; => ERROR 42501",
        "DROP TABLE accounts => ERROR 42501: statement refused by policy rule no-drop",
        // psycopg binds integers in binary: recorded as hex.
        "SELECT owner FROM accounts WHERE id = $1 -- parameters: \\x0002 => SELECT 1 (1 rows: owner)",
        "UPDATE pgbench_accounts",
        "INSERT INTO accounts VALUES ($1, $2) -- parameters: \\x0003, psycopg-carol => INSERT 0 1",
    ];
    let all = transcripts(&up, &expected);
    for (session, _) in &all {
        let verify = Command::new(common::psm())
            .arg("verify")
            .arg(session.join("recording.psmr"))
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&verify.stdout).contains("intact"),
            "{}",
            text(&verify)
        );
    }
    // `psm search` finds statements as statements, with their outcome.
    let search = Command::new(common::psm())
        .args(["search", "DROP TABLE accounts"])
        .args(
            all.iter()
                .map(|(session, _)| session.join("recording.psmr")),
        )
        .output()
        .unwrap();
    let found = String::from_utf8_lossy(&search.stdout);
    assert!(
        search.status.success()
            && found.contains("[statement] sql [app] DROP TABLE accounts => ERROR 42501"),
        "{}",
        text(&search)
    );
    let mut leaked = Vec::new();
    for (session, _) in &all {
        for e in std::fs::read_dir(session).unwrap().flatten() {
            let bytes = std::fs::read(e.path()).unwrap();
            if String::from_utf8_lossy(&bytes).contains(VAULTED) {
                leaked.push(e.path());
            }
        }
    }
    assert!(leaked.is_empty(), "the vaulted password is in {leaked:?}");
    assert!(!up.log.lock().unwrap().contains(VAULTED));
    assert!(!up.printed.contains(VAULTED));
    assert!(up.stop(), "psm up did not stop cleanly on SIGINT");
}
