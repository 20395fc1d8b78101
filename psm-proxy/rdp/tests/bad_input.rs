//! Bad clients against the gateway (no target needed: none of them gets that far): garbage
//! instead of RDP, a client that drops in the middle of the handshake, one that never
//! speaks, a TLS handshake abandoned half-way. Each gets its connection closed, opens no
//! session, and leaves the gateway serving the next client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use ironrdp::pdu::nego::{ConnectionRequest, NegoRequestData, RequestFlags, SecurityProtocol};
use ironrdp::pdu::x224::X224;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

fn connection_request() -> Vec<u8> {
    let cr = X224(ConnectionRequest {
        nego_data: Some(NegoRequestData::cookie("alice+desk-01".into())),
        flags: RequestFlags::empty(),
        protocol: SecurityProtocol::SSL,
    });
    ironrdp::core::encode_vec(&cr).unwrap()
}

/// Reads until the gateway closes the connection (or 30 s pass: then the test fails).
async fn closed_by_gateway(s: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let r = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(r.is_ok(), "the gateway kept a bad connection open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_are_dropped_and_open_no_session() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let plane = plane(free_port(), "unused-target-password").await;
    let gw = gateway(&plane, dir.path(), |c| {
        c.limits.handshake_timeout = Duration::from_secs(2);
    })
    .await;

    // 1. Garbage instead of an X.224 connection request.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    // The gateway may close before the second write lands: a failed write is fine.
    let _ = s
        .write_all(&[0x03, 0x00, 0xff, 0xff, 0xde, 0xad, 0xbe, 0xef])
        .await;
    let _ = s.write_all(&[0x41; 512]).await;
    closed_by_gateway(&mut s).await;

    // 2. A TPKT that claims 65535 bytes for a connection request: refused at once.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let _ = s.write_all(&[0x03, 0x00, 0xff, 0xff, 0x00]).await;
    closed_by_gateway(&mut s).await;

    // 3. A valid connection request, then the client drops before TLS.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(&connection_request()).await.unwrap();
    let mut confirm = [0u8; 19];
    s.read_exact(&mut confirm).await.unwrap();
    assert_eq!(confirm[0], 0x03, "an X.224 connection confirm");
    drop(s);

    // 4. A valid request, then garbage where the TLS ClientHello should be.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(&connection_request()).await.unwrap();
    s.read_exact(&mut confirm).await.unwrap();
    let _ = s.write_all(b"this is not TLS at all\r\n\r\n").await;
    closed_by_gateway(&mut s).await;

    // 5. Connects and never speaks: the handshake deadline closes it.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    closed_by_gateway(&mut s).await;

    // The gateway still answers, and nothing was opened anywhere.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(&connection_request()).await.unwrap();
    s.read_exact(&mut confirm).await.unwrap();
    drop(s);
    assert!(gw.registry.is_empty());
    let sessions = plane
        .cp
        .engine()
        .store()
        .list(&Default::default())
        .await
        .unwrap();
    assert!(sessions.is_empty(), "{sessions:?}");
}

/// A client that opens connections and never finishes their handshake fills only the
/// handshake places (`Limits::max_handshakes`): the next connection is closed at once, and
/// once the stalled ones are gone the gateway answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let plane = plane(free_port(), "unused-target-password").await;
    let gw = gateway(&plane, dir.path(), |c| {
        // Long enough that the stalled connections are still there when the next one comes.
        c.limits.handshake_timeout = Duration::from_secs(120);
        c.limits.max_handshakes = 2;
    })
    .await;

    // Two connections that say nothing hold both places; each is accepted (its TCP
    // handshake and a connection request would be answered: the first one proves it).
    let mut first = TcpStream::connect(gw.addr).await.unwrap();
    first.write_all(&connection_request()).await.unwrap();
    let mut confirm = [0u8; 19];
    first.read_exact(&mut confirm).await.unwrap();
    assert_eq!(confirm[0], 0x03, "an X.224 connection confirm");
    let second = TcpStream::connect(gw.addr).await.unwrap();

    // The third is closed without an answer, although it asks properly.
    let mut third = TcpStream::connect(gw.addr).await.unwrap();
    let _ = third.write_all(&connection_request()).await;
    closed_by_gateway(&mut third).await;

    // The stalled ones go; their places come back.
    drop((first, second));
    let mut answered = false;
    for _ in 0..100 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        let _ = s.write_all(&connection_request()).await;
        if tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut confirm))
            .await
            .is_ok_and(|r| r.is_ok())
        {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        answered,
        "the gateway never answered again after the stalled connections went"
    );
    assert!(gw.registry.is_empty());
}
