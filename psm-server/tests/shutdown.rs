//! Graceful shutdown: a request already in flight when the server is told to stop still gets
//! its answer and its data is stored; new connections are refused afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Backend, Harness};
use psm_core::{NewSession, ProcessInstance, Protocol, SessionId};
use psm_server::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn in_flight_requests_finish() {
    let mut h = Harness::start(Backend::Sqlite).await;
    let id = SessionId::new();
    h.engine
        .open_session(NewSession {
            id,
            user: "u".into(),
            target: "t".into(),
            protocol: Protocol::Ssh,
            checkout_id: None,
            process_instance: ProcessInstance::new("g").unwrap(),
        })
        .await
        .unwrap();
    let body = format!(r#"{{"recording":"SGVsbG8gd29ybGQ=","session":"{id}"}}"#);
    let addr = h.url.trim_start_matches("http://").to_owned();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/services/v1/secureaccessgateway/savesessionrecording HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        h.keys[&Role::Gateway],
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    sock.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Stop while the request is half sent.
    let server = h.server.take().unwrap();
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    sock.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    sock.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#"{"Result":"Success"}"#), "{answer}");
    stopping.await.unwrap();
    let raw = std::fs::read(
        h.dir
            .path()
            .join("artifacts")
            .join(id.to_string())
            .join("recording.raw"),
    )
    .unwrap();
    assert_eq!(raw, b"Hello world");
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "no longer listening"
    );
    h.stop().await;
}
