//! Graphical sessions: an RDP-like recording whose frames the test draws is encoded by the
//! encoder worker into a video through the real `ffmpeg` and a contact sheet; `ffprobe`
//! checks the video's frame count and size, `ffmpeg` decodes frames back to compare colours,
//! and a second encoding gives byte-identical files.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::*;
use psm_core::{NewSession, Protocol as CoreProtocol, SessionId, Stage};
use psm_pipeline::manifest::Manifest;
use psm_pipeline::{Encoder, EncoderSettings, ExportKind, LocalLayout};
use psm_recording::export::encode_png;
use psm_recording::{
    BlockingWriter, EventKind, Header, Micros, Protocol, SigningKey, WriterConfig,
};

const W: u32 = 320;
const H: u32 = 240;

fn need(tool: &str) {
    let ok = Command::new(tool)
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{tool} is missing: install Debian's ffmpeg (apt-get install ffmpeg)"
    );
}

fn solid(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let px: Vec<u8> = (0..w * h)
        .flat_map(|_| [rgb[0], rgb[1], rgb[2], 255])
        .collect();
    encode_png(w, h, &px).unwrap()
}

fn frame(x: u32, y: u32, w: u32, h: u32, png: Vec<u8>) -> EventKind {
    EventKind::Frame {
        x,
        y,
        width: w,
        height: h,
        png,
    }
}

/// The colours the test paints, in order, each at 1 s intervals over the left half.
const COLOURS: [[u8; 3]; 4] = [[220, 30, 30], [30, 200, 30], [30, 30, 220], [230, 230, 40]];

/// Writes an RDP recording: a dark-grey keyframe at 0, then a coloured rectangle over the left
/// half at 1, 2, 3, 4 s, then `tail` (bad frames, for the damage test), ending at 5 s.
fn write_rdp(path: &Path, id: SessionId, tail: &[(Micros, EventKind)]) {
    let header = Header::new(id, Protocol::Rdp, "alice", "desk-01", "psm-pipeline-test");
    let config = WriterConfig {
        fsync: psm_recording::FsyncPolicy::Never,
        ..WriterConfig::default()
    };
    let mut w =
        BlockingWriter::create(path, header, SigningKey::generate().unwrap(), config).unwrap();
    w.record_at(Micros(0), &frame(0, 0, W, H, solid(W, H, [40, 40, 40])))
        .unwrap();
    for (i, c) in COLOURS.iter().enumerate() {
        let t = Micros((i as u64 + 1) * 1_000_000);
        w.record_at(t, &frame(0, 0, W / 2, H, solid(W / 2, H, *c)))
            .unwrap();
    }
    for (t, e) in tail {
        w.record_at(*t, e).unwrap();
    }
    w.finish_at(Micros(5_000_000), "user logged off").unwrap();
}

async fn rdp_session(
    engine: &psm_core::Engine,
    layout: &LocalLayout,
    tail: &[(Micros, EventKind)],
) -> SessionId {
    let gw = instance("rdp-gateway-test");
    let id = SessionId::new();
    engine
        .open_session(NewSession {
            id,
            user: "alice".into(),
            target: "desk-01".into(),
            protocol: CoreProtocol::Rdp,
            checkout_id: None,
            process_instance: gw.clone(),
        })
        .await
        .unwrap();
    std::fs::create_dir_all(layout.recordings_dir()).unwrap();
    write_rdp(&layout.raw_recording(id), id, tail);
    engine.end_session(id, &gw).await.unwrap();
    id
}

fn ffprobe(path: &Path) -> (u64, u32, u32, String) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,width,height,codec_name,r_frame_rate",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing in {text}"))
            .to_owned()
    };
    (
        field("nb_read_frames").parse().unwrap(),
        field("width").parse().unwrap(),
        field("height").parse().unwrap(),
        field("codec_name"),
    )
}

/// The RGB of pixel (x, y) of video frame `n`, decoded by ffmpeg.
fn pixel_of_frame(video: &Path, n: u64, x: u32, y: u32) -> [u8; 3] {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(video)
        .args([
            "-vf",
            &format!("select=eq(n\\,{n})"),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), (W * H * 3) as usize, "one decoded frame");
    let i = ((y * W + x) * 3) as usize;
    [out.stdout[i], out.stdout[i + 1], out.stdout[i + 2]]
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 24)
}

fn rdp_settings() -> EncoderSettings {
    EncoderSettings::default()
}

fn read_manifest(layout: &LocalLayout, id: SessionId) -> Manifest {
    Manifest::read(&layout.manifest(id), id).unwrap()
}

#[tokio::test]
async fn rdp_recording_becomes_a_video_and_a_contact_sheet() {
    need("ffmpeg");
    need("ffprobe");
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path().join("data"));
    layout.create().unwrap();
    let engine = memory_engine(engine_config());
    let id = rdp_session(&engine, &layout, &[]).await;
    let encoder = Arc::new(Encoder::new(
        engine.clone(),
        layout.clone(),
        rdp_settings(),
        worker("encoder-g"),
    ));
    let summary = encoder.clone().run_until_idle().await;
    assert_eq!(summary.completed, [id], "{summary:?}");
    let session = engine.session(id).await.unwrap();
    assert_eq!(session.stage, Stage::DoneEncoded);
    assert_eq!(
        session.failure_reason, None,
        "an intact recording has no note"
    );

    let m = read_manifest(&layout, id);
    let kinds: Vec<&str> = m.exports.iter().map(|f| f.kind.as_str()).collect();
    // Terminal exports do not apply to a graphical session; the text ones do.
    assert_eq!(kinds, ["transcript", "commands", "video", "contact-sheet"]);
    assert!(m.integrity.complete);

    let video: PathBuf = layout.exports_dir(id).join(ExportKind::Video.file_name());
    let (frames, width, height, codec) = ffprobe(&video);
    // 5 s at 5 frames per second, frame 0 at 0 s through frame 25 at 5 s.
    assert_eq!(frames, 26);
    assert_eq!((width, height), (W, H));
    assert_eq!(codec, "h264");
    // Frame 0 is the grey keyframe; at 1.0 s (frame 5) the red rectangle is up; the last
    // frame shows yellow on the left and grey on the right.
    assert!(close(pixel_of_frame(&video, 0, 10, 10), [40, 40, 40]));
    assert!(close(pixel_of_frame(&video, 4, 10, 10), [40, 40, 40]));
    assert!(close(pixel_of_frame(&video, 5, 10, 10), COLOURS[0]));
    assert!(close(pixel_of_frame(&video, 12, 10, 10), COLOURS[1]));
    assert!(close(pixel_of_frame(&video, 25, 10, 10), COLOURS[3]));
    assert!(close(pixel_of_frame(&video, 25, W - 10, 10), [40, 40, 40]));

    let sheet = layout
        .exports_dir(id)
        .join(ExportKind::ContactSheet.file_name());
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&sheet).unwrap(),
    ));
    let info = decoder.read_info().unwrap();
    // 12 thumbnails of 320 px in 4 columns, 4 px borders: 3 rows of 240 px.
    assert_eq!(
        (info.info().width, info.info().height),
        (4 + 4 * 324, 4 + 3 * 244)
    );

    // A second encoder retaking the session writes the very same bytes (ffmpeg bitexact).
    let before: Vec<(String, Vec<u8>)> = m
        .exports
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                std::fs::read(layout.exports_dir(id).join(&f.name)).unwrap(),
            )
        })
        .collect();
    encoder.encode(id).await.unwrap();
    for (name, bytes) in before {
        let again = std::fs::read(layout.exports_dir(id).join(&name)).unwrap();
        assert!(again == bytes, "{name} differs on a second encoding");
    }
    assert_eq!(read_manifest(&layout, id), m);
}

#[tokio::test]
async fn bad_frames_are_skipped_and_noted_on_the_session() {
    need("ffmpeg");
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path().join("data"));
    layout.create().unwrap();
    let engine = memory_engine(engine_config());
    let id = rdp_session(
        &engine,
        &layout,
        &[
            // Not a PNG; a PNG whose size disagrees with its event; a huge claimed screen.
            (Micros(4_200_000), frame(0, 0, 10, 10, b"garbage".to_vec())),
            (
                Micros(4_400_000),
                frame(5, 5, 20, 20, solid(4, 4, [1, 2, 3])),
            ),
            (Micros(4_600_000), frame(0, 0, 100_000, 100_000, Vec::new())),
        ],
    )
    .await;
    let encoder = Arc::new(Encoder::new(
        engine.clone(),
        layout.clone(),
        rdp_settings(),
        worker("encoder-g2"),
    ));
    let summary = encoder.run_until_idle().await;
    assert_eq!(summary.completed, [id], "{summary:?}");
    let m = read_manifest(&layout, id);
    assert!(!m.integrity.complete);
    assert_eq!(
        m.integrity
            .gaps
            .iter()
            .filter(|g| g.reason.starts_with("frame skipped"))
            .count(),
        3,
        "{:?}",
        m.integrity.gaps
    );
    // The video was still made, and the problem is in the session's status.
    let (frames, ..) = ffprobe(&layout.exports_dir(id).join("session.mp4"));
    assert_eq!(frames, 26);
    let status = engine.recording_status(&[id]).await.unwrap();
    assert_eq!(status[0].stage, Stage::DoneEncoded);
    let note = status[0].failure_reason.as_deref().unwrap_or_default();
    assert!(
        note.starts_with("recording damaged: encoded what is intact; 3 gaps"),
        "{note}"
    );
}

#[tokio::test]
async fn a_missing_ffmpeg_fails_the_attempt_with_the_package_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path().join("data"));
    layout.create().unwrap();
    let engine = memory_engine(engine_config());
    let id = rdp_session(&engine, &layout, &[]).await;
    let mut settings = rdp_settings();
    settings.video.ffmpeg = dir.path().join("no-such-ffmpeg");
    let encoder = Encoder::new(engine.clone(), layout.clone(), settings, worker("e3"));
    let e = encoder.encode(id).await.unwrap_err();
    assert!(e.to_string().contains("apt-get install ffmpeg"), "{e}");
    // Nothing half-written is left to be uploaded, and the raw recording is kept.
    assert!(!layout.manifest(id).exists());
    assert!(!layout.exports_dir(id).join("session.mp4").exists());
    assert!(
        std::fs::read_dir(layout.exports_dir(id))
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
    );
    assert!(layout.raw_recording(id).exists());
}

#[tokio::test]
async fn a_graphical_session_without_a_screen_gets_no_video() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LocalLayout::new(dir.path().join("data"));
    layout.create().unwrap();
    let engine = memory_engine(engine_config());
    let gw = instance("rdp-gateway-test");
    let id = SessionId::new();
    engine
        .open_session(NewSession {
            id,
            user: "alice".into(),
            target: "desk-01".into(),
            protocol: CoreProtocol::Rdp,
            checkout_id: None,
            process_instance: gw.clone(),
        })
        .await
        .unwrap();
    let header = Header::new(id, Protocol::Rdp, "alice", "desk-01", "t");
    let w = BlockingWriter::create(
        layout.raw_recording(id),
        header,
        SigningKey::generate().unwrap(),
        WriterConfig::default(),
    )
    .unwrap();
    w.finish("target refused the login").unwrap();
    engine.end_session(id, &gw).await.unwrap();
    let encoder = Arc::new(Encoder::new(
        engine.clone(),
        layout.clone(),
        rdp_settings(),
        worker("e4"),
    ));
    assert_eq!(encoder.run_until_idle().await.completed, [id]);
    let m = read_manifest(&layout, id);
    assert!(
        m.exports
            .iter()
            .all(|f| f.kind != "video" && f.kind != "contact-sheet")
    );
    assert_eq!(engine.session(id).await.unwrap().failure_reason, None);
}
