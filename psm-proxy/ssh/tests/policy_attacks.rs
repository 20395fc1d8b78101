//! Issue 17's command-policy attacks through OpenSSH, the gateway (with the policy tap) and
//! a real sshd: what a user sends with `ssh` is judged before it reaches the target's shell.
//! The "forbidden" command is a harmless `touch` of a flag file that a rule forbids (our
//! stand-in for `shutdown -h now`); each test checks the flag was not created. Each failed
//! before the fix: the compound line was allowed as a whole (H4), and input piped to a
//! shell run without a terminal was never judged (M1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use psm_core::directory::MemoryDirectory;
use psm_core::policy::Policy;
use psm_proxy::TapFactories;
use psm_proxy::policy_tap::{Enforcement, PolicyTapFactory};

const LIMIT: Duration = Duration::from_secs(30);

/// docs/policy.md's example on paths in `d` (see psm-proxy/tests/policy_attacks.rs).
fn docs_rules(d: &Path) -> String {
    let d = d.display();
    format!(
        r#"
[[rule]]
name = "tmp-cleanup"
glob = "rm -rf {d}/tmp/*"
action = "allow"

[[rule]]
name = "recursive-delete"
regex = '^rm\s+(-\w*[rR]\w*\s+|--recursive\s+)'
action = "require-approval"

[[rule]]
name = "no-flag"
glob = "touch {d}/psm-flag"
action = "terminate"
message = "stand-in for shutdown -h now"
"#
    )
}

/// A gateway whose sessions are judged by `docs_rules` on a fresh directory the target
/// account can write; approvals nobody gives are refused after a second.
async fn gateway(sshd: &Sshd) -> (Gateway, tempfile::TempDir, Arc<MemoryTap>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let policy = Policy::from_toml(&docs_rules(dir.path())).unwrap();
    let recorder = Arc::new(MemoryTap::default());
    let taps = TapFactories::new(vec![
        Arc::new(PolicyTapFactory::new(
            policy,
            Arc::new(MemoryDirectory::new()),
            Enforcement {
                approval_timeout: Some(Duration::from_secs(1)),
                ..Enforcement::default()
            },
        )),
        Arc::new(SharedTapFactory(recorder.clone())),
    ]);
    let gw = Gateway::start_with(
        sshd,
        Options {
            taps: Some(Arc::new(taps)),
            ..Options::default()
        },
    )
    .await;
    (gw, dir, recorder)
}

fn mkdir_all(p: &Path) {
    std::fs::create_dir_all(p).unwrap();
    let mut q = p.to_path_buf();
    while q.pop() && q.starts_with(std::env::temp_dir()) && q != std::env::temp_dir() {
        let _ = std::fs::set_permissions(&q, std::fs::Permissions::from_mode(0o777));
    }
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
}

/// H4: `ssh gw 'rm -rf /tmp/x; shutdown -h now'` was allowed by the allow on
/// `rm -rf /tmp/*`; `rm -rf /tmp/../etc` too.
#[tokio::test(flavor = "multi_thread")]
async fn h4_exec_of_a_compound_line_is_judged_per_command() {
    let sshd = Sshd::start();
    let (gw, dir, _) = gateway(&sshd).await;
    let d = dir.path();
    let flag = d.join("psm-flag");
    for sep in ["; ", " && ", " | ", "\n"] {
        mkdir_all(&d.join("tmp/x"));
        let cmd = format!("rm -rf {}/tmp/x{sep}touch {}", d.display(), flag.display());
        let out = run(gw.ssh("alice+t2", &[], &cmd), LIMIT).await;
        assert!(!flag.exists(), "{sep:?}: the forbidden command ran");
        assert!(
            d.join("tmp/x").exists(),
            "{sep:?}: nothing of the refused line ran"
        );
        assert!(
            text(&out.stderr).contains("no-flag") || !out.status.success(),
            "{sep:?}: {out:?}"
        );
    }
    // Allowed as a whole when each command is.
    mkdir_all(&d.join("tmp/x"));
    let cmd = format!("rm -rf {0}/tmp/x; rm -rf {0}/tmp/y", d.display());
    let out = run(gw.ssh("alice+t2", &[], &cmd), LIMIT).await;
    assert!(out.status.success(), "{out:?}");
    assert!(!d.join("tmp/x").exists());

    // `..` does not escape the allowed directory: approval needed, none given, refused.
    mkdir_all(&d.join("keep/inner"));
    mkdir_all(&d.join("tmp"));
    let cmd = format!("rm -rf {}/tmp/../keep", d.display());
    let out = run(gw.ssh("alice+t2", &[], &cmd), LIMIT).await;
    assert!(!out.status.success(), "{out:?}");
    assert!(d.join("keep/inner").exists(), "the refused delete ran");
    gw.stop().await;
}

/// M1: `echo 'shutdown -h now' | ssh gw sh` and `ssh gw bash -s < script` reached the
/// shell unjudged. Now each command of the script is judged before it is forwarded,
/// `\`-newline continuations and open quotes joined.
#[tokio::test(flavor = "multi_thread")]
async fn m1_a_script_piped_to_a_shell_is_judged_line_by_line() {
    let sshd = Sshd::start();
    let (gw, dir, _) = gateway(&sshd).await;
    let d = dir.path().display().to_string();
    let flag = dir.path().join("psm-flag");
    let scripts = [
        (
            "sh",
            format!("echo one > {d}/one\ntouch {d}/psm-flag\necho two > {d}/two\n"),
        ),
        (
            "bash -s",
            format!("echo one > {d}/one\ntou\\\nch {d}/psm-flag\n"),
        ),
        (
            "sudo -n true 2>/dev/null; exec sh",
            format!("echo one > {d}/one\ntouch \\\n{d}/psm-flag\n"),
        ),
        (
            "bash",
            format!("echo one > {d}/one; echo 'a\nb' >/dev/null; touch {d}/psm-flag\n"),
        ),
    ];
    // A harmless script runs, continuations and all.
    let script = format!("echo one \\\n > {d}/one\necho 'two\n' > {d}/two\n");
    let out = run_with_stdin(gw.ssh("alice+t2", &[], "sh"), script.into_bytes(), LIMIT).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("one")).unwrap(),
        "one\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("two")).unwrap(),
        "two\n\n"
    );
    std::fs::remove_file(dir.path().join("two")).unwrap();
    for (remote, script) in scripts {
        let out = run_with_stdin(
            gw.ssh("alice+t2", &[], remote),
            script.clone().into_bytes(),
            LIMIT,
        )
        .await;
        assert!(
            !flag.exists(),
            "{remote:?} {script:?}: the forbidden command ran: {out:?}"
        );
        assert!(
            text(&out.stderr).contains("stand-in for shutdown -h now"),
            "{remote:?} {script:?}: {out:?}"
        );
        assert!(!dir.path().join("two").exists());
    }
    // A last line without a newline runs at end of input: it is judged when the input
    // ends, before the shell sees it. A forbidden one is refused (the rule terminates the
    // session, which may cut the shell before the lines before it ran).
    let script = format!("echo one > {d}/one\ntouch {d}/psm-flag");
    let out = run_with_stdin(gw.ssh("alice+t2", &[], "sh"), script.into_bytes(), LIMIT).await;
    assert!(!flag.exists(), "{out:?}");
    assert!(
        text(&out.stderr).contains("stand-in for shutdown -h now"),
        "{out:?}"
    );
    // A harmless one runs (`printf 'cmd' | ssh gw sh`, a script saved without a final
    // newline).
    let script = format!("echo one > {d}/one\necho three > {d}/three");
    let out = run_with_stdin(gw.ssh("alice+t2", &[], "sh"), script.into_bytes(), LIMIT).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("three")).unwrap(),
        "three\n",
        "{out:?}"
    );
    gw.stop().await;
}

/// An interactive session (`ssh -tt`, a pty, the target account's login bash) fed, step
/// by step, each text once `$ ` (a prompt) has appeared since the step before; stdin stays
/// open until the session ends (the policy ends it) or `LIMIT` passes.
async fn pty_session(gw: &Gateway, steps: &[String]) -> std::process::Output {
    let steps: Vec<(&str, String)> = steps.iter().map(|s| ("$ ", s.clone())).collect();
    pty_session_until(gw, &steps).await
}

/// [`pty_session`] with the text to wait for before each step (`""`: none).
async fn pty_session_until(gw: &Gateway, steps: &[(&str, String)]) -> std::process::Output {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut ssh = gw.ssh("alice+t2", &["-tt"], "");
    // tmux needs a terminal type it knows; sshd passes it on with the pty request.
    ssh.env("TERM", "xterm");
    let mut cmd = tokio::process::Command::from(ssh);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf).await {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let err = tokio::spawn(async move {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b).await;
        b
    });
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + LIMIT;
    'steps: for (needle, step) in steps {
        let from = seen.len();
        while !text(&seen[from..]).contains(needle) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(chunk)) => seen.extend_from_slice(&chunk),
                _ => break 'steps,
            }
        }
        if stdin.write_all(step.as_bytes()).await.is_err() {
            break;
        }
        let _ = stdin.flush().await;
    }
    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(s) => s.unwrap(),
        Err(_) => {
            let _ = child.kill().await;
            child.wait().await.unwrap()
        }
    };
    drop(stdin);
    while let Ok(chunk) = rx.try_recv() {
        seen.extend_from_slice(&chunk);
    }
    std::process::Output {
        status,
        stdout: seen,
        stderr: err.await.unwrap(),
    }
}

/// H3 and M3 through OpenSSH and the gateway's policy tap (which holds each Enter until
/// its echo): a fake paste to `sh` and a command after 63 harmless ones are judged before
/// their Enter reaches the target; a history expansion and a line accepted by a rebound
/// key are judged as soon as the shell shows them (late: they ran, and the session ends).
#[tokio::test(flavor = "multi_thread")]
async fn h3_m3_attacks_in_a_pty_session_are_judged() {
    let sshd = Sshd::start();
    let (gw, dir, recorder) = gateway(&sshd).await;
    let d = dir.path().display().to_string();
    let flag = dir.path().join("psm-flag");
    let one = dir.path().join("one");

    // A fake paste to a shell that never asked for bracketed paste.
    let steps = [
        "exec sh\r".to_owned(),
        format!("echo one > {d}/one\r"),
        format!("\x1b[200~\rtouch {d}/psm-flag\r"),
    ];
    let out = pty_session(&gw, &steps).await;
    assert!(one.exists(), "the session did not run: {out:?}");
    // What reached the target (the recorder sits after the policy tap): the line's Enter
    // never did; ^C went in its place.
    let sent = recorder.input_text();
    assert!(enter_withheld(&sent), "{sent:?}");
    assert!(
        text(&out.stderr).contains("stand-in for shutdown -h now"),
        "{out:?}"
    );

    // A command after 63 harmless ones.
    std::fs::remove_file(&one).unwrap();
    let mut line: String = (1..=63).map(|i| format!(": {i}; ")).collect();
    line.push_str(&format!("touch {d}/psm-flag\r"));
    let before = recorder.input_text().len();
    let out = pty_session(&gw, &[format!("echo one > {d}/one\r"), line]).await;
    assert!(one.exists(), "the session did not run: {out:?}");
    let sent = recorder.input_text()[before..].to_owned();
    assert!(enter_withheld(&sent), "{sent:?}");
    assert!(
        text(&out.stderr).contains("stand-in for shutdown -h now"),
        "{out:?}"
    );

    // History expansion: `^echo ^` is flagged (alert by default) and goes on; the
    // expansion bash echoes is judged (late: it ran), and the session ends.
    let steps = [format!("echo touch {d}/psm-flag\r"), "^echo ^\r".to_owned()];
    let out = pty_session(&gw, &steps).await;
    assert!(
        text(&out.stderr).contains("stand-in for shutdown -h now"),
        "{out:?}"
    );
    // Late: whether bash got to run it before the session ended is a race.
    let _ = std::fs::remove_file(&flag);

    // A line accepted by C-t: detective (it runs), and the session ends.
    let steps = [
        "bind '\"\\C-t\": accept-line'\r".to_owned(),
        format!("touch {d}/psm-flag\x14"),
    ];
    let out = pty_session(&gw, &steps).await;
    assert!(
        text(&out.stderr).contains("stand-in for shutdown -h now"),
        "{out:?}"
    );
    gw.stop().await;
}

/// The forbidden line was typed and its Enter never went on: after `psm-flag` comes the
/// interrupt that replaces the Enter, or nothing at all when the rule's terminate closed the
/// channel before the interrupt was written (a race under load, and as safe).
fn enter_withheld(sent: &str) -> bool {
    let mut typed = sent.match_indices("psm-flag").peekable();
    typed.peek().is_some()
        && typed.all(|(at, word)| {
            let after = &sent[at + word.len()..];
            after.is_empty() || after.starts_with('\x03')
        })
}

/// M2: after `stty -echo`, a forbidden command ran first and was acted on afterwards
/// (judged late, from nothing on the screen). Now, when no echo comes, the certain
/// keystrokes are judged before the Enter goes on: the Enter never reaches the shell.
#[tokio::test(flavor = "multi_thread")]
async fn m2_a_command_typed_with_echo_off_is_judged_before_its_enter() {
    let sshd = Sshd::start();
    let (gw, dir, recorder) = gateway(&sshd).await;
    let d = dir.path().display().to_string();
    let flag = dir.path().join("psm-flag");
    let steps = [
        format!("echo one > {d}/one\r"),
        "stty -echo\r".to_owned(),
        format!("touch {d}/psm-flag\r"),
    ];
    let out = pty_session(&gw, &steps).await;
    assert!(
        dir.path().join("one").exists(),
        "the session did not run: {out:?}"
    );
    assert!(!flag.exists(), "the forbidden command ran: {out:?}");
    let sent = recorder.input_text();
    assert!(enter_withheld(&sent), "{sent:?}");
    assert!(
        text(&out.stderr).contains("stand-in for shutdown -h now"),
        "{out:?}"
    );
    gw.stop().await;
}

/// H2: `PS1='password: '` made every later line look like a password: never judged, its
/// keys redacted from the recording. Now the target's echo shows it is no password
/// prompt: the line is judged (and recorded) as any other, before its Enter.
#[tokio::test(flavor = "multi_thread")]
async fn h2_a_prompt_that_looks_like_a_password_prompt_hides_nothing() {
    let sshd = Sshd::start();
    let (gw, dir, recorder) = gateway(&sshd).await;
    let d = dir.path().display().to_string();
    let flag = dir.path().join("psm-flag");
    let steps = [
        ("$ ", format!("echo one > {d}/one\r")),
        ("$ ", "PS1='password: '\r".to_owned()),
        // The first key alone (hidden until the target echoes it), then the rest.
        ("password: ", "t".to_owned()),
        ("t", format!("ouch {d}/psm-flag\r")),
    ];
    let out = pty_session_until(&gw, &steps).await;
    assert!(
        dir.path().join("one").exists(),
        "the session did not run: {out:?}"
    );
    assert!(!flag.exists(), "the forbidden command ran: {out:?}");
    let sent = recorder.input_text();
    // Recorded in clear after the echo, and its Enter never went to the target (it is
    // replaced by ^C; when the terminate closes the channel first, the ^C is not recorded
    // either: seen once under CI load).
    assert!(
        sent.contains(&format!("ouch {d}/psm-flag")) && !sent.contains("psm-flag\r"),
        "{sent:?}"
    );
    assert!(
        text(&out.stderr).contains("stand-in for shutdown -h now"),
        "{out:?}"
    );

    // Typed ahead in one write (the echo comes after the keys reached the gateway): judged
    // all the same.
    let steps = [
        ("$ ", "PS1='password: '\r".to_owned()),
        ("password: ", format!("touch {d}/psm-flag\r")),
    ];
    let out = pty_session_until(&gw, &steps).await;
    assert!(!flag.exists(), "the forbidden command ran: {out:?}");
    assert!(
        text(&out.stderr).contains("stand-in for shutdown -h now"),
        "{out:?}"
    );
    gw.stop().await;
}

/// H1: inside tmux (the alternate screen) no line was judged. Now a line at the inner
/// shell's prompt is judged as at any shell, before its Enter; where no prompt tells a
/// shell (`PS1='\\u-ready'`), a line a rule forbids is held for approval (`full_screen_command`,
/// default `require-approval`; nobody approves here, so it is refused).
#[tokio::test(flavor = "multi_thread")]
async fn h1_commands_inside_tmux_are_judged() {
    need("tmux", "tmux");
    let sshd = Sshd::start();
    let (gw, dir, recorder) = gateway(&sshd).await;
    let d = dir.path().display().to_string();
    let flag = dir.path().join("psm-flag");
    let server = format!("psm-test-{}", std::process::id());
    let tmux = format!("tmux -L {server} -f /dev/null");
    let steps = [
        ("$ ", format!("echo one > {d}/one\r")),
        ("$ ", format!("{tmux} new-session\r")),
        ("$ ", format!("echo two > {d}/two\r")),
        ("$ ", format!("touch {d}/psm-flag\r")),
    ];
    let out = pty_session_until(&gw, &steps).await;
    assert!(
        dir.path().join("two").exists(),
        "the shell inside tmux did not run: {out:?}"
    );
    assert!(
        !flag.exists(),
        "the forbidden command ran inside tmux: {out:?}"
    );
    let sent = recorder.input_text();
    assert!(enter_withheld(&sent), "{sent:?}");
    assert!(
        text(&out.stderr).contains("stand-in for shutdown -h now"),
        "{out:?}"
    );
    // The session ended; its tmux server did not.
    let _ = run(
        gw.ssh("alice+t2", &[], &format!("{tmux} kill-server")),
        LIMIT,
    )
    .await;

    // No prompt to tell a shell by: held for approval, refused, the session goes on.
    let before = recorder.input_text().len();
    let steps = [
        ("$ ", format!("{tmux} new-session\r")),
        // A prompt with none of `$ `, `# `, `% `, `> ` (the echo of this line does not hold
        // the prompt's text, so waiting for it waits for the prompt).
        ("$ ", "PS1='\\u-ready'\r".to_owned()),
        ("test-ready", format!("touch {d}/psm-flag\r")),
        ("", format!("echo three > {d}/three\r")),
        ("three", "exit\r".to_owned()),
        ("$ ", "exit\r".to_owned()),
    ];
    let out = pty_session_until(&gw, &steps).await;
    assert!(
        dir.path().join("three").exists(),
        "the session did not go on after the refusal: {out:?} {:?}",
        &recorder.input_text()[before..]
    );
    assert!(!flag.exists(), "the forbidden command ran: {out:?}");
    let sent = recorder.input_text()[before..].to_owned();
    assert!(!sent.contains("psm-flag\r"), "{sent:?}");
    let _ = run(
        gw.ssh("alice+t2", &[], &format!("{tmux} kill-server")),
        LIMIT,
    )
    .await;
    gw.stop().await;
}
