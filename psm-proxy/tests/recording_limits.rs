//! Issue 17 L5 (recorder): a per-session recording quota ends the session with a reason the
//! user, the recording and the control plane see; a nearly full recordings disk locks a
//! running session and refuses new ones, rather than recording silently stopping.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use psm_core::live::LiveReportKind;
use psm_proxy::record::{Recorder, RecorderConfig, RecorderFactory, RecordingDiskGuard};
use psm_proxy::session::{ControlNote, SessionControl, SessionInfo};
use psm_proxy::tap::{
    ChannelInfo, ChannelRequest, ChannelType, DataEvent, Direction, EndReason, StreamKind, Tap,
    TapFactory, TermSize,
};
use psm_recording::{EventKind, ReadOptions, Reader, SigningKey};

fn info() -> SessionInfo {
    SessionInfo {
        id: psm_core::SessionId::new(),
        user: "alice".into(),
        target: "web-01".into(),
        target_account: "root".into(),
        protocol: psm_core::Protocol::Ssh,
        peer: None,
        started: psm_core::Timestamp::now_utc(),
    }
}

fn output(bytes: &[u8]) -> DataEvent<'_> {
    DataEvent {
        direction: Direction::ToUser,
        stream: StreamKind::Stdout,
        bytes,
        hidden: false,
    }
}

async fn shell(recorder: &Recorder) -> ChannelInfo {
    let channel = ChannelInfo::new(0, ChannelType::Session);
    recorder.channel_opened(&channel).await;
    let pty = ChannelRequest::Pty {
        term: "xterm".into(),
        size: TermSize { cols: 80, rows: 24 },
    };
    recorder.request(&channel, &pty).await;
    recorder.request(&channel, &ChannelRequest::Shell).await;
    channel
}

/// Every event of a finished recording, and its end reason.
fn read_back(path: &std::path::Path) -> (Vec<EventKind>, String) {
    let mut reader = Reader::open(path, ReadOptions::default()).unwrap();
    let events = reader.events().map(|e| e.unwrap().kind).collect();
    let reason = reader
        .ending()
        .map(|e| e.reason.clone())
        .unwrap_or_default();
    (events, reason)
}

fn markers(events: &[EventKind]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::Marker { label } => Some(label.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_session_over_its_quota_is_ended_with_the_reason_and_nothing_goes_unrecorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RecorderConfig::new(dir.path(), SigningKey::generate().unwrap(), "test");
    config.quota_bytes = Some(4096);
    let info = info();
    let recorder = Recorder::create(&config, &info).await.unwrap();
    let control = Arc::new(SessionControl::new());
    let mut notes = control.take_notes().unwrap();
    recorder.session_started(&info, &control).await;
    let channel = shell(&recorder).await;

    recorder.data(&channel, &output(&[b'a'; 1000])).await;
    assert_eq!(control.termination(), None, "under the quota");
    for _ in 0..4 {
        recorder.data(&channel, &output(&[b'b'; 1000])).await;
    }
    let reason = control.termination().expect("the quota ends the session");
    assert!(reason.contains("recording quota of 4096 bytes"), "{reason}");
    // The control plane hears it (the gateway forwards reports as LiveReport: audit rows).
    match notes.try_recv().unwrap() {
        ControlNote::Report {
            actor,
            kind: LiveReportKind::Terminated { reason: r },
        } => {
            assert_eq!(actor, "recorder");
            assert_eq!(r, reason);
        }
        _ => panic!("expected the termination report"),
    }
    // What comes before the session closes is still recorded.
    recorder.data(&channel, &output(b"late output")).await;
    recorder
        .session_ended(&info, &EndReason::Terminated(reason.clone()))
        .await;

    let (events, end) = read_back(&dir.path().join(format!("{}.psmr", info.id)));
    assert!(
        markers(&events)
            .iter()
            .any(|m| m.starts_with("recording quota reached")),
        "{:?}",
        markers(&events)
    );
    assert!(events.iter().any(|e| matches!(e,
        EventKind::Output { data, .. } if data.as_slice() == b"late output")));
    assert_eq!(end, format!("terminated: {reason}"));
}

#[tokio::test]
async fn a_nearly_full_disk_locks_a_running_session_and_refuses_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RecorderConfig::new(dir.path(), SigningKey::generate().unwrap(), "test");
    // No disk has this much free: the guard sees "nearly full" at once.
    let full = RecordingDiskGuard {
        min_free: psm_core::files::MinFreeSpace {
            bytes: u64::MAX,
            ratio: 0.0,
        },
        check_every: std::time::Duration::ZERO,
    };
    config.disk_guard = Some(full);

    // A new session is refused, saying why.
    let factory = RecorderFactory::new(config.clone());
    let Err(refused) = factory.taps(&info()).await else {
        panic!("a session on a nearly full disk is refused");
    };
    assert!(
        refused
            .to_string()
            .contains("recordings disk is nearly full"),
        "{refused}"
    );

    // A session already running (created before the disk filled) is locked, not left
    // unrecorded: its output is still recorded, and the lock says why.
    let info = info();
    let recorder = Recorder::create(&config, &info).await.unwrap();
    let control = Arc::new(SessionControl::new());
    recorder.session_started(&info, &control).await;
    let channel = shell(&recorder).await;
    assert!(control.is_locked(), "locked at the first event");
    let hold = control.hold();
    assert_eq!(hold.by, "recorder");
    assert!(
        hold.reason.contains("recordings disk is nearly full"),
        "{}",
        hold.reason
    );
    recorder.data(&channel, &output(b"still recorded")).await;
    recorder
        .session_ended(&info, &EndReason::UserDisconnected)
        .await;
    let (events, _) = read_back(&dir.path().join(format!("{}.psmr", info.id)));
    assert!(
        markers(&events)
            .iter()
            .any(|m| m.starts_with("locked by the recorder")),
        "{:?}",
        markers(&events)
    );
    assert!(events.iter().any(|e| matches!(e,
        EventKind::Output { data, .. } if data.as_slice() == b"still recorded")));
}

#[tokio::test]
async fn without_limits_nothing_is_locked_or_ended() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RecorderConfig::new(dir.path(), SigningKey::generate().unwrap(), "test");
    config.disk_guard = Some(RecordingDiskGuard {
        min_free: psm_core::files::MinFreeSpace {
            bytes: 0,
            ratio: 0.0,
        },
        check_every: std::time::Duration::ZERO,
    });
    let info = info();
    let recorder = Recorder::create(&config, &info).await.unwrap();
    let control = Arc::new(SessionControl::new());
    recorder.session_started(&info, &control).await;
    let channel = shell(&recorder).await;
    for _ in 0..8 {
        recorder.data(&channel, &output(&[b'x'; 4096])).await;
    }
    assert!(!control.is_locked());
    assert_eq!(control.termination(), None);
    assert!(recorder.recorded_bytes() >= 8 * 4096);
    recorder
        .session_ended(&info, &EndReason::UserDisconnected)
        .await;
}
