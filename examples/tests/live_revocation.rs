//! Issue 17 M9 with the real binaries: a user who watches a live SSH session from `psm up`'s
//! web UI loses that websocket, not only their web session, within seconds of being removed
//! from the directory (`psm users remove`), whether or not their browser asks for anything;
//! the watched session goes on.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{SshTarget, Up, psm, text, wait_for};
use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Logs in to the web UI: the session cookie and the CSRF token its pages send back.
fn login(port: u16, user: &str, password: &str) -> (String, String) {
    let body = serde_json::json!({ "user": user, "password": password }).to_string();
    let (code, head, body) = common::web_request(port, "POST", "/ui/api/login", "", &body);
    assert_eq!(code, 200, "{head}\n{body}");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie:")
                .then(|| l["set-cookie:".len()..].trim().to_owned())
        })
        .and_then(|c| c.split(';').next().map(str::to_owned))
        .expect("a session cookie");
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    (
        cookie,
        me["csrf"].as_str().expect("a CSRF token").to_owned(),
    )
}

#[test]
fn a_removed_user_loses_the_live_websocket_they_watch_through() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = SshTarget::start(d, "psmrevoke");
    let up = Up::start(d, &[]);
    up.add_ssh_target("web-01", &target, "ops");
    let key = d.join("alice");
    common::keygen(&key);
    up.add_user_with_key("alice", "ops", &key);
    // A second administrator, who will watch.
    up.add_user_with_password("watcher", "admin", "watcher-password-31");
    let (cookie, csrf) = login(up.api_port, "watcher", "watcher-password-31");

    // Alice works on the target for a while, in a terminal.
    let mut ssh = up.ssh_command(
        d,
        &key,
        "alice+web-01",
        "for i in $(seq 1 15); do echo tick-$i; sleep 1; done",
        true,
    );
    let alice = std::thread::spawn(move || ssh.output().unwrap());
    let get = |path: &str| common::web_request(up.api_port, "GET", path, &cookie, "");
    let session = wait_for(30, || {
        let (code, _, body) = get("/ui/api/sessions");
        assert_eq!(code, 200, "{body}");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        list["sessions"].as_array().and_then(|all| {
            all.iter()
                .find(|s| s["stage"] == "Connected")
                .and_then(|s| s["id"].as_str().map(str::to_owned))
        })
    })
    .expect("alice's session is live");

    // The watcher joins it from the web UI, as the Watch button does (again while the
    // gateway has not registered the session as live yet).
    let origin = format!("http://127.0.0.1:{}", up.api_port);
    let ticket_url = || {
        let (code, head, body) = common::http_request(
            up.api_port,
            "POST",
            &format!("/ui/api/sessions/{session}/join"),
            &[
                ("Origin", origin.as_str()),
                ("Content-Type", "application/json"),
                ("Cookie", cookie.as_str()),
                ("x-psm-csrf", csrf.as_str()),
            ],
            r#"{"mode":"view"}"#,
        );
        assert_eq!(code, 200, "{head}\n{body}");
        let ticket: serde_json::Value = serde_json::from_str(&body).unwrap();
        ticket["url"].as_str().unwrap().to_owned()
    };

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (frame, after) = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut ws, mut seen) = loop {
            let url = ticket_url();
            let mut request = url.as_str().into_client_request().unwrap();
            request
                .headers_mut()
                .insert("Origin", origin.parse().unwrap());
            let (mut ws, _) = tokio_tungstenite::connect_async(request)
                .await
                .expect("the live listener takes the ticket");
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => break (ws, t.as_str().to_owned()),
                Ok(Some(Ok(Message::Close(Some(f))))) if u16::from(f.code) == 4404 => {
                    assert!(Instant::now() < deadline, "the session never became live");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                other => panic!("joining failed: {other:?}"),
            }
        };
        // Watching: the stream flows.
        let started = Instant::now();
        while !seen.contains("tick-") && started.elapsed() < Duration::from_secs(15) {
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => seen.push_str(&String::from_utf8_lossy(&b)),
                Ok(Some(Ok(Message::Text(t)))) => seen.push_str(t.as_str()),
                Ok(Some(Ok(Message::Close(f)))) => panic!("closed while watching: {f:?}; {seen}"),
                Ok(Some(Ok(_))) => {}
                other => panic!(
                    "the viewer stopped before seeing output: {other:?}; seen {seen:?}; log:\n{}",
                    up.log.lock().unwrap()
                ),
            }
        }
        assert!(seen.contains("tick-"), "{seen}");

        // The watcher is removed from the directory, on the command line; their browser
        // sends nothing more.
        let out = Command::new(psm())
            .args(["users", "remove", "watcher", "--data"])
            .arg(&up.data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let removed = Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return (Some(frame), removed.elapsed()),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => panic!("the websocket failed instead of closing: {e}"),
                Ok(None) => return (None, removed.elapsed()),
                Err(_) => panic!("the removed user's websocket is still open after 20 s"),
            }
        }
    });
    let frame = frame.flatten().expect("a close frame with a reason");
    assert_eq!(u16::from(frame.code), 4401, "{frame:?}");
    assert!(frame.reason.contains("account changed"), "{frame:?}");
    assert!(after < Duration::from_secs(15), "closed after {after:?}");

    // Their web session is gone too; alice's session was not touched.
    let (code, _, _) = get("/ui/api/sessions");
    assert_eq!(code, 401);
    let out = alice.join().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("tick-15"),
        "{}",
        text(&out)
    );
    assert!(up.stop());
}
