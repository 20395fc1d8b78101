//! The MySQL/MariaDB gateway of a real `psm up`, with the real clients: the machine's
//! MariaDB (127.0.0.1:3306) with a dedicated `mysql_native_password` account whose password
//! only the vault knows, `psm targets add --protocol mysql`, then the `mariadb` client,
//! `mysqlslap` and PyMySQL (SQL prepared statements, and the binary COM_STMT_PREPARE /
//! COM_STMT_EXECUTE through its low-level calls) as `alice+mariaprod`, a `DROP TABLE` the
//! policy refuses while the session goes on, a packet claiming 16 MiB, and the recordings.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::{Up, text, wait_for};

/// The target account's password: only the vault and MariaDB know it.
const VAULTED: &str = "Vaulted-maria-Secret-4b2d";
const ALICE_PW: &str = "alice-psm-password-2";

/// A database and an account of its own on the machine's MariaDB, dropped when done.
struct Maria {
    name: String,
}

fn root(sql: &str) -> Output {
    Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e", sql])
        .output()
        .unwrap()
}

impl Maria {
    fn create() -> Self {
        let name = format!("psm_my_{}", std::process::id());
        let out = root(&format!(
            "DROP USER IF EXISTS '{name}'@'127.0.0.1'; DROP DATABASE IF EXISTS {name}; \
             CREATE DATABASE {name}; \
             CREATE USER '{name}'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('{VAULTED}'); \
             GRANT ALL ON {name}.* TO '{name}'@'127.0.0.1';"
        ));
        assert!(out.status.success(), "{}", text(&out));
        Self { name }
    }

    /// The account logging in to MariaDB directly with `password`.
    fn direct(&self, password: &str) -> Output {
        Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-P", "3306", "-u", &self.name])
            .arg(format!("-p{password}"))
            .args(["-e", "SELECT 1"])
            .output()
            .unwrap()
    }
}

impl Drop for Maria {
    fn drop(&mut self) {
        let name = &self.name;
        let _ = root(&format!(
            "DROP USER IF EXISTS '{name}'@'127.0.0.1'; DROP DATABASE IF EXISTS {name};"
        ));
    }
}

/// `mariadb` through the gateway as `alice+mariaprod`.
fn mariadb(up: &Up, password: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", &up.mysql_port.to_string()])
        .args(["-u", "alice+mariaprod", "--connect-timeout=20"])
        .arg(format!("-p{password}"))
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

/// Every session's uploaded text transcript, once `n` sessions are through the pipeline and
/// their transcripts hold every `expected` line.
fn transcripts(up: &Up, n: usize, expected: &[String]) -> Vec<(PathBuf, String)> {
    wait_for(180, || {
        let dir = up.data.join("store").join("sessions");
        let found: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let t = std::fs::read_to_string(e.path().join("transcript.txt")).ok()?;
                Some((e.path(), t))
            })
            .collect();
        let joined: String = found.iter().map(|(_, t)| t.as_str()).collect();
        (found.len() >= n && expected.iter().all(|e| joined.contains(e.as_str()))).then_some(found)
    })
    .unwrap_or_else(|| {
        panic!(
            "{n} sessions holding {expected:?} were not uploaded; log:\n{}",
            up.log.lock().unwrap()
        )
    })
}

#[test]
fn mariadb_mysqlslap_and_pymysql_through_psm_up_with_a_vaulted_password() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let maria = Maria::create();
    let db = maria.name.clone();
    // Credential injection is real: MariaDB refuses a wrong password for the account.
    let wrong = maria.direct("not-the-password");
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("1045"));
    assert!(maria.direct(VAULTED).status.success());

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
        format!("MySQL gateway: 127.0.0.1:{}", up.mysql_port),
        "targets add NAME --protocol mysql".to_owned(),
    ] {
        assert!(up.printed.contains(&line), "{line:?} in:\n{}", up.printed);
    }

    let add = up.psm_with_stdin(
        &[
            "targets",
            "add",
            "mariaprod",
            "--protocol",
            "mysql",
            "--host",
            "127.0.0.1",
            "--port",
            "3306",
            "--user",
            &db,
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

    // mariadb -e over TLS: MariaDB sees the vaulted account alice never saw.
    let out = mariadb(
        &up,
        ALICE_PW,
        &[
            "--ssl",
            &db,
            "-e",
            "CREATE TABLE accounts (id int PRIMARY KEY, owner varchar(40)); \
             INSERT INTO accounts VALUES (1, 'ann'), (2, 'bob'); \
             SELECT owner FROM accounts ORDER BY id; \
             SELECT current_user() AS who; \
             SHOW STATUS LIKE 'Ssl_cipher'",
        ],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout.contains("ann") && stdout.contains("bob"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains(&format!("{db}@127.0.0.1")),
        "{}",
        text(&out)
    );

    // A wrong PSM password, and no TLS, are refused before anything reaches the target.
    let wrong = mariadb(&up, "not-her-password", &["--ssl", "-e", "SELECT 1"], None);
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("Access denied for user 'alice'"),
        "{}",
        text(&wrong)
    );
    let plain = mariadb(&up, ALICE_PW, &["--skip-ssl", "-e", "SELECT 1"], None);
    assert!(!plain.status.success(), "{}", text(&plain));
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("requires TLS"),
        "{}",
        text(&plain)
    );

    // A script: the DROP is refused with an error the client shows, and the session goes
    // on (the same connection id before and after).
    let script = "SELECT count(*) AS before_drop, connection_id() AS c1 FROM accounts;\n\
                  DROP TABLE accounts;\n\
                  SELECT count(*) AS after_drop, connection_id() AS c2 FROM accounts;\n";
    let out = mariadb(&up, ALICE_PW, &["--ssl", "--force", &db], Some(script));
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        se.contains("ERROR 1227") && se.contains("PSM:") && se.contains("no-drop"),
        "{}",
        text(&out)
    );
    assert!(so.contains("after_drop"), "{}", text(&out));
    let ids: Vec<&str> = so
        .lines()
        .filter(|l| l.starts_with('2'))
        .filter_map(|l| l.split('\t').nth(1))
        .collect();
    assert_eq!(ids.len(), 2, "{}", text(&out));
    assert_eq!(ids[0], ids[1], "{}", text(&out));
    let check = root(&format!("SELECT count(*) FROM {db}.accounts"));
    assert!(
        String::from_utf8_lossy(&check.stdout).contains('2'),
        "{}",
        text(&check)
    );

    // mysqlslap: a short run on two connections (--no-drop: it would drop the schema).
    let slap = Command::new("mysqlslap")
        .args(["--ssl", "-h", "127.0.0.1", "-P", &up.mysql_port.to_string()])
        .args(["-u", "alice+mariaprod"])
        .arg(format!("-p{ALICE_PW}"))
        .arg(format!("--create-schema={db}"))
        .args([
            "--no-drop",
            "--concurrency=2",
            "--iterations=2",
            "--number-of-queries=100",
            "--query=SELECT owner FROM accounts WHERE id=1",
        ])
        .output()
        .unwrap();
    assert!(slap.status.success(), "{}", text(&slap));
    assert!(
        String::from_utf8_lossy(&slap.stdout).contains("Number of clients running queries: 2"),
        "{}",
        text(&slap)
    );

    // PyMySQL over TLS: SQL prepared statements, the binary protocol's COM_STMT_PREPARE and
    // COM_STMT_EXECUTE with a parameter, and a DROP refused as an OperationalError.
    let py = format!(
        r#"
import ssl, struct, pymysql
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
conn = pymysql.connect(host="127.0.0.1", port={port}, user="alice+mariaprod", password={pw:?},
                       database={db:?}, ssl=ctx)
cur = conn.cursor()
cur.execute("INSERT INTO accounts VALUES (%s, %s)", (3, "pymysql-carol"))
conn.commit()
cur.execute("PREPARE byid FROM 'SELECT owner FROM accounts WHERE id = ?'")
cur.execute("SET @id = 2")
cur.execute("EXECUTE byid USING @id")
assert cur.fetchall() == (("bob",),)
# The binary protocol, through PyMySQL's own packet layer.
conn._execute_command(0x16, "SELECT owner FROM accounts WHERE id = ?")
ok = conn._read_packet().get_all_data()
assert ok[0] == 0, ok
stmt, cols, params = struct.unpack("<IHH", ok[1:9])
for _ in range(params + 1 + cols + 1):
    conn._read_packet()
body = struct.pack("<IBI", stmt, 0, 1) + b"\x00\x01" + struct.pack("<BB", 8, 0) + struct.pack("<q", 3)
conn._execute_command(0x17, body)
packets, eofs = [], 0
while eofs < 2:
    p = conn._read_packet().get_all_data()
    packets.append(p)
    eofs += p[0] == 0xfe and len(p) < 9
assert any(b"pymysql-carol" in p for p in packets), packets
conn._execute_command(0x19, struct.pack("<I", stmt))
try:
    cur.execute("DROP TABLE accounts")
    raise SystemExit("the DROP went through")
except pymysql.err.OperationalError as e:
    print("refused:", e)
cur.execute("SELECT count(*) FROM accounts")
print("count", cur.fetchone()[0])
"#,
        port = up.mysql_port,
        pw = ALICE_PW,
        db = db,
    );
    let out = Command::new("python3").args(["-c", &py]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(
        so.contains("refused:") && so.contains("1227") && so.contains("no-drop"),
        "{}",
        text(&out)
    );
    assert!(so.contains("count 3"), "{}", text(&out));

    // A packet claiming 16 MiB during the login: a clear ERR, then the connection closes.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", up.mysql_port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut greeting = [0u8; 4];
    s.read_exact(&mut greeting).unwrap();
    let len = usize::from(greeting[0]) | usize::from(greeting[1]) << 8;
    let mut rest = vec![0u8; len];
    s.read_exact(&mut rest).unwrap();
    s.write_all(&[0xff, 0xff, 0xff, 0x01]).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.contains("16777215") && answer.contains("more than the limit"),
        "{answer:?}"
    );

    // Access windows that name networks see the client's address.
    up.check_network_windows("dba", "mariaprod", "mariadb", || {
        mariadb(
            &up,
            ALICE_PW,
            &["--ssl", "-e", "SELECT 'inside-the-window'"],
            None,
        )
    });

    // The recordings: every session is recorded, verifies, and holds its statements; the
    // vaulted password is in no export, no log line and nothing psm up printed.
    // Sessions: mariadb -e, the script, mysqlslap's (two clients, two iterations), PyMySQL.
    let expected = [
        format!("sql [{db}] CREATE TABLE accounts (id int PRIMARY KEY, owner varchar(40)) => OK"),
        format!(
            "sql [{db}] INSERT INTO accounts VALUES (1, 'ann'), (2, 'bob') => OK, 2 rows affected"
        ),
        "SELECT owner FROM accounts ORDER BY id => SELECT 2 (2 rows: owner)".to_owned(),
        "DROP TABLE accounts => ERROR 1227 (42000): statement refused by policy rule no-drop"
            .to_owned(),
        "SELECT owner FROM accounts WHERE id=1 => SELECT 1 (1 rows: owner)".to_owned(),
        "SELECT owner FROM accounts WHERE id = ? -- parameters: 3 => SELECT 1 (1 rows: owner)"
            .to_owned(),
        "EXECUTE byid USING @id => SELECT 1 (1 rows: owner)".to_owned(),
    ];
    let all = transcripts(&up, 7, &expected);
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
