//! A command's exit status and the signal that killed it reach the user's client through the
//! gateway every time, in RFC 4254's order, and the recording holds them (issue 24).
//!
//! The loss was a race (the client's CLOSE overtaking the target's `exit-status`), so one run
//! proves little: each client runs [`ROUNDS`] commands, several at a time, against the real
//! sshd target, with exit codes spread over 0–255 and some commands killed by a signal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use psm_core::Stage;
use psm_proxy::record::{RecorderConfig, RecorderFactory};
use psm_recording::{ChannelKind, EventKind, ReadOptions, Reader, SigningKey};

/// Commands per client.
const ROUNDS: usize = 200;
/// Clients running at once (more pressure on the race than one at a time).
const PARALLEL: usize = 6;
const LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Client {
    Plink,
    OpenSsh,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Ending {
    Status(u8),
    /// `kill -SIG $$`: the shell dies of the signal (named as SSH names it).
    Signal(&'static str),
}

impl Ending {
    /// Round `i` of a client: two rounds in twenty end by a signal, the rest exit with a code;
    /// 97 is odd, so the codes of 256 consecutive rounds are all of 0–255 (the two clients
    /// start 56 apart, which covers every code between them).
    fn of(client: Client, i: usize) -> Self {
        match i % 20 {
            7 => Ending::Signal("KILL"),
            17 => Ending::Signal("TERM"),
            _ => {
                let k = i + if client == Client::OpenSsh { 56 } else { 0 };
                Ending::Status(((k * 97) % 256) as u8)
            }
        }
    }

    fn shell(self) -> String {
        match self {
            Ending::Status(code) => format!("exit {code}"),
            Ending::Signal(sig) => format!("kill -{sig} $$"),
        }
    }
}

/// How to reach an SSH server with one client: fixed arguments before the command.
struct Way {
    program: &'static str,
    args: Vec<String>,
}

impl Way {
    fn command(&self, remote: &str) -> Command {
        let mut c = Command::new(self.program);
        c.args(&self.args).arg(remote);
        c
    }
}

fn to_ppk(key: &Path) -> PathBuf {
    need("puttygen", "putty-tools");
    let ppk = key.with_extension("ppk");
    let out = Command::new("puttygen")
        .arg(key)
        .args(["-O", "private", "-o"])
        .arg(&ppk)
        .output()
        .unwrap();
    assert!(out.status.success(), "puttygen: {}", text(&out.stderr));
    ppk
}

fn plink(ppk: &Path, hostkey: &str, port: u16, login: &str) -> Way {
    need("plink", "putty-tools");
    Way {
        program: "plink",
        args: vec![
            "-ssh".into(),
            "-batch".into(),
            "-i".into(),
            ppk.display().to_string(),
            "-hostkey".into(),
            hostkey.into(),
            "-P".into(),
            port.to_string(),
            format!("{login}@127.0.0.1"),
        ],
    }
}

fn openssh(key: &Path, known_hosts: &Path, port: u16, login: &str) -> Way {
    need("ssh", "openssh-client");
    Way {
        program: "ssh",
        args: vec![
            "-F".into(),
            "/dev/null".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-i".into(),
            key.display().to_string(),
            "-p".into(),
            port.to_string(),
            format!("{login}@127.0.0.1"),
        ],
    }
}

fn sshd_fingerprint(sshd: &Sshd) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(sshd.dir.path().join("host.pub"))
        .output()
        .unwrap();
    text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("ssh-keygen -l prints a fingerprint")
        .to_owned()
}

fn remote(client: Client, i: usize, ending: Ending) -> String {
    format!("echo MARK-{client:?}-{i}; {}", ending.shell())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_status_and_signal_reach_the_client_and_the_recording() {
    let sshd = Sshd::start();
    let rec_dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let factory = RecorderFactory::new(RecorderConfig::new(
        rec_dir.path(),
        key.clone(),
        "psm-gateway/test gw-test",
    ));
    let gw = Gateway::start_with(
        &sshd,
        Options {
            taps: Some(Arc::new(factory.clone())),
            ..Options::default()
        },
    )
    .await;

    let user_ppk = to_ppk(&gw.user_key);
    let through_gateway = HashMap::from([
        (
            Client::Plink,
            plink(&user_ppk, &gw.host_fingerprint, gw.addr.port(), "alice+t2"),
        ),
        (
            Client::OpenSsh,
            openssh(&gw.user_key, &gw.known_hosts, gw.addr.port(), "alice+t2"),
        ),
    ]);

    // What each client reports for a signal when it talks to sshd directly: the gateway must
    // make it report the same (OpenSSH exits 255, plink 128 and up).
    let account_ppk = to_ppk(&sshd.account_key);
    let direct = HashMap::from([
        (
            Client::Plink,
            plink(
                &account_ppk,
                &sshd_fingerprint(&sshd),
                sshd.port,
                TARGET_USER,
            ),
        ),
        (
            Client::OpenSsh,
            openssh(
                &sshd.account_key,
                &sshd.known_hosts(),
                sshd.port,
                TARGET_USER,
            ),
        ),
    ]);
    let mut reference = HashMap::new();
    for client in [Client::Plink, Client::OpenSsh] {
        for sig in ["KILL", "TERM"] {
            let ending = Ending::Signal(sig);
            let out = run(direct[&client].command(&remote(client, 0, ending)), LIMIT).await;
            let code = out.status.code().expect("the client exits");
            assert_ne!(code, 0, "{client:?} directly: {}", text(&out.stderr));
            reference.insert((client, ending), code);
        }
    }
    assert_eq!(reference[&(Client::OpenSsh, Ending::Signal("KILL"))], 255);

    let rounds: Vec<(Client, usize, Ending)> = (0..ROUNDS)
        .flat_map(|i| [Client::Plink, Client::OpenSsh].map(|c| (c, i, Ending::of(c, i))))
        .collect();
    let codes: std::collections::HashSet<u8> = rounds
        .iter()
        .filter_map(|(_, _, e)| match e {
            Ending::Status(c) => Some(*c),
            Ending::Signal(_) => None,
        })
        .collect();
    assert!(codes.contains(&0) && codes.contains(&1) && codes.contains(&255));

    let results: Vec<_> = futures::stream::iter(rounds.iter().copied())
        .map(|(client, i, ending)| {
            let cmd = through_gateway[&client].command(&remote(client, i, ending));
            async move { (client, i, ending, run(cmd, LIMIT).await) }
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;

    let mut wrong = Vec::new();
    for (client, i, ending, out) in &results {
        let want = match ending {
            Ending::Status(c) => i32::from(*c),
            Ending::Signal(_) => reference[&(*client, *ending)],
        };
        let stdout = text(&out.stdout);
        if out.status.code() != Some(want) || stdout.trim() != format!("MARK-{client:?}-{i}") {
            wrong.push(format!(
                "{client:?} round {i} ({ending:?}): exit {:?}, want {want}; stdout {stdout:?}; stderr {:?}",
                out.status.code(),
                text(&out.stderr)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} commands reported the wrong ending through the gateway:\n{}",
        wrong.len(),
        results.len(),
        wrong.join("\n")
    );

    // Every session ended (its recording sealed), then every exec channel's close holds its
    // exit status or signal.
    let mut sessions = Vec::new();
    for _ in 0..600 {
        sessions = gw.sessions().await;
        if sessions.len() == rounds.len() && sessions.iter().all(|s| s.stage != Stage::Connected) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.stop().await;
    assert_eq!(sessions.len(), rounds.len(), "one session per command");
    let expected: HashMap<String, Ending> = rounds
        .iter()
        .map(|(c, i, e)| (remote(*c, *i, *e), *e))
        .collect();
    let mut seen = HashMap::new();
    for s in &sessions {
        let mut reader = Reader::open(
            factory.path_of(s.id),
            ReadOptions {
                trusted_signers: vec![key.verifying_key()],
                full_scan: true,
                ..ReadOptions::default()
            },
        )
        .unwrap();
        let mut commands = HashMap::new();
        for e in reader.events() {
            match e.unwrap().kind {
                EventKind::ChannelOpen {
                    channel,
                    kind: ChannelKind::Exec { command, .. },
                } => {
                    commands.insert(channel, command);
                }
                EventKind::ChannelClose {
                    channel,
                    exit_status,
                    exit_signal,
                } => {
                    if let Some(command) = commands.remove(&channel) {
                        seen.insert(command, (exit_status, exit_signal));
                    }
                }
                _ => {}
            }
        }
        assert!(
            commands.is_empty(),
            "session {}: exec channels without a close: {commands:?}",
            s.id
        );
    }
    let mut unrecorded = Vec::new();
    for (command, ending) in &expected {
        let want = match ending {
            Ending::Status(c) => (Some(u32::from(*c)), None),
            Ending::Signal(sig) => (None, Some((*sig).to_owned())),
        };
        match seen.get(command) {
            Some(got) if *got == want => {}
            got => unrecorded.push(format!("{command:?}: recorded {got:?}, want {want:?}")),
        }
    }
    assert!(
        unrecorded.is_empty(),
        "{} of {} exec channels recorded the wrong ending:\n{}",
        unrecorded.len(),
        expected.len(),
        unrecorded.join("\n")
    );
}
