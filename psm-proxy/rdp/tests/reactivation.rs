//! A target that resizes its desktop in the middle of a session, with a Deactivation-
//! Reactivation Sequence ([MS-RDPBCGR] 1.3.1.3). The target here is ironrdp-server (its
//! display handler asks for a resize, and the server runs the sequence toward its client),
//! because the test's xrdp never starts one: it resizes a reattached desktop to the new
//! client instead (see `xrdp_reconnect`). The gateway's target side must run the sequence,
//! take the new size, and go on painting: before, such a target ended the session.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::num::{NonZeroU16, NonZeroUsize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use ironrdp::server::{
    BitmapUpdate, DesktopSize, DisplayUpdate, PixelFormat, RdpServer, RdpServerDisplay,
    RdpServerDisplayUpdates,
};
use psm_proxy::{Authorization, HostKeyCheck};
use psm_proxy_rdp::access::TargetLogin;
use psm_proxy_rdp::screen::DesktopScreen;
use psm_proxy_rdp::tls::ServerIdentity;
use psm_proxy_rdp::upstream::{self, TargetEnd};
use tokio::sync::{mpsc, oneshot};

fn fill(width: u16, height: u16, rgb: [u8; 3]) -> DisplayUpdate {
    let data: Vec<u8> = std::iter::repeat_n(
        [rgb[0], rgb[1], rgb[2], 255],
        usize::from(width) * usize::from(height),
    )
    .flatten()
    .collect();
    DisplayUpdate::Bitmap(BitmapUpdate {
        x: 0,
        y: 0,
        width: NonZeroU16::new(width).unwrap(),
        height: NonZeroU16::new(height).unwrap(),
        format: PixelFormat::RgbA32,
        data: data.into(),
        stride: NonZeroUsize::new(usize::from(width) * 4).unwrap(),
    })
}

/// 800x600 green, then a resize to 1024x768, then magenta (colours that read the same in
/// RGB and BGR order: ironrdp-server and ironrdp-session disagree on raw surface bits). The step survives the server's own
/// reactivation (which asks for the updates again).
struct Desk(Arc<AtomicU32>);

struct Script(Arc<AtomicU32>);

#[async_trait::async_trait]
impl RdpServerDisplay for Desk {
    async fn size(&mut self) -> DesktopSize {
        if self.0.load(Ordering::SeqCst) >= 2 {
            DesktopSize {
                width: 1024,
                height: 768,
            }
        } else {
            DesktopSize {
                width: 800,
                height: 600,
            }
        }
    }

    async fn updates(&mut self) -> anyhow::Result<Box<dyn RdpServerDisplayUpdates>> {
        Ok(Box::new(Script(self.0.clone())))
    }
}

#[async_trait::async_trait]
impl RdpServerDisplayUpdates for Script {
    async fn next_update(&mut self) -> anyhow::Result<Option<DisplayUpdate>> {
        match self.0.fetch_add(1, Ordering::SeqCst) + 1 {
            1 => Ok(Some(fill(800, 600, [0, 200, 0]))),
            2 => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                Ok(Some(DisplayUpdate::Resize(DesktopSize {
                    width: 1024,
                    height: 768,
                })))
            }
            3 => Ok(Some(fill(1024, 768, [200, 0, 200]))),
            _ => std::future::pending().await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_follows_a_target_that_resizes_its_desktop() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "target");
    let identity = ServerIdentity::from_pem_files(&cert, &key).unwrap();
    // Pinned: toward an unpinned target the gateway speaks NLA only, and this target
    // (ironrdp-server with TLS) offers TLS.
    let pin = identity.fingerprint.clone();
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // ironrdp-server's futures are not Send: it runs on a thread of its own.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            let mut server = RdpServer::builder()
                .with_addr(addr)
                .with_tls(identity.acceptor.clone())
                .with_no_input()
                .with_display_handler(Desk(Arc::new(AtomicU32::new(0))))
                .build();
            let _ = server.run().await;
        });
    });
    wait_addr(addr, Duration::from_secs(10));

    let auth = Authorization {
        target: "resizing".into(),
        host: "127.0.0.1".into(),
        port,
        host_key: HostKeyCheck::Pinned(vec![pin]),
        account: String::new(),
        checkout: None,
        expires: None,
    };
    let target = upstream::connect(
        &auth,
        &TargetLogin::new("someone", "anything"),
        800,
        600,
        psm_proxy_rdp::TargetSecurity::NlaOrTls,
        Duration::from_secs(20),
    )
    .await
    .expect("connect");
    assert_eq!((target.width, target.height), (800, 600));
    let screen = DesktopScreen::new(target.width, target.height);
    let (_input, input_rx) = mpsc::channel(16);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(target.run(screen.clone(), input_rx, async {
        let _ = stopped.await;
    }));

    let magenta_at_new_corner = || {
        screen.size() == (1024, 768) && {
            let shot = screen.snapshot();
            let at = ((767 * 1024 + 1023) * 4) as usize;
            shot.rgba.get(at..at + 3) == Some(&[200, 0, 200][..])
        }
    };
    let start = std::time::Instant::now();
    while !magenta_at_new_corner() {
        let shot = screen.snapshot();
        let at = (shot.rgba.len() / 2) & !3;
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the desktop is {:?}, its middle pixel {:?}, the target side {}",
            screen.size(),
            shot.rgba.get(at..at + 4),
            if task.is_finished() { "ended" } else { "runs" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !task.is_finished(),
        "the session goes on after the reactivation"
    );
    let _ = stop.send(());
    let end = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end, TargetEnd::Stopped);
}
