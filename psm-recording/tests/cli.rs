//! The `psm` command line on real files: verify's verdicts and exit codes, import, export.
//! Needs the binary: `cargo build -p psm-examples --bin psm` (same target directory).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use psm_recording::*;

fn psm() -> PathBuf {
    // tests run from target/<profile>/deps/; the binary is in target/<profile>/.
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("psm");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p psm-examples --bin psm`",
        bin.display()
    );
    bin
}

fn run(args: &[&str]) -> Output {
    Command::new(psm())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

#[test]
fn verify_says_intact_truncated_tampered_or_untrusted_with_distinct_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let (bytes, _) = write_all(&sample_events(), &key, small_chunks());
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("ok.psmr"), &bytes).unwrap();
    let r = Reader::from_bytes(bytes.clone(), ReadOptions::default()).unwrap();
    let c = r.chunks()[2];
    std::fs::write(
        p("cut.psmr"),
        &bytes[..(c.offset + c.frame_len + 10) as usize],
    )
    .unwrap();
    let mut bad = bytes.clone();
    bad[(c.offset + c.frame_len / 2) as usize] ^= 1;
    std::fs::write(p("bad.psmr"), &bad).unwrap();
    std::fs::write(p("junk.psmr"), b"not a recording at all").unwrap();
    let pubkey = key.verifying_key().to_string();
    let other = SigningKey::generate().unwrap().verifying_key().to_string();
    let s = |n: &str| p(n).to_str().unwrap().to_owned();

    let o = run(&["verify", &s("ok.psmr"), "--key", &pubkey]);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "intact"));
    let o = run(&["verify", &s("cut.psmr"), "--key", &pubkey]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        stdout(&o),
        format!("truncated after chunk 2 at {}", c.t_end)
    );
    let o = run(&["verify", &s("bad.psmr")]);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        stdout(&o).starts_with("tampered at chunk 2"),
        "{}",
        stdout(&o)
    );
    let o = run(&["verify", &s("ok.psmr"), "--key", &other]);
    assert_eq!(o.status.code(), Some(5));
    assert!(stdout(&o).contains("untrusted"), "{}", stdout(&o));
    let o = run(&["verify", &s("junk.psmr")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a .psmr recording"));
}

#[test]
fn import_export_search_and_encryption_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let s = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    std::fs::write(
        s("in.cast"),
        "{\"version\": 2, \"width\": 80, \"height\": 24}\n[0.5, \"o\", \"$ \"]\n[1.0, \"i\", \"ls\\r\"]\n[1.1, \"o\", \"ls\\r\\nsecret.txt\\r\\n$ \"]\n",
    )
    .unwrap();
    let o = run(&[
        "recording-keygen",
        "--kind",
        "signing",
        "-o",
        &s("sign.key"),
    ]);
    assert!(o.status.success());
    let signer = stdout(&o);
    let o = run(&[
        "recording-keygen",
        "--kind",
        "recipient",
        "-o",
        &s("auditor.key"),
    ]);
    let recipient = stdout(&o);
    let o = run(&[
        "import",
        &s("in.cast"),
        "-o",
        &s("r.psmr"),
        "--key",
        &s("sign.key"),
        "--recipient",
        &recipient,
        "--user",
        "alice",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        !std::fs::read(s("r.psmr"))
            .unwrap()
            .windows(10)
            .any(|w| w == b"secret.txt")
    );

    let o = run(&["verify", &s("r.psmr"), "--key", &signer]);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "intact"));
    let o = run(&["export", "-f", "text", &s("r.psmr"), "-o", "-"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("encrypted"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(&[
        "export",
        "-f",
        "asciicast",
        &s("r.psmr"),
        "-o",
        &s("out.cast"),
        "--identity",
        &s("auditor.key"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::read_to_string(s("out.cast"))
            .unwrap()
            .contains("secret.txt")
    );
    let o = run(&[
        "search",
        "SECRET",
        &s("r.psmr"),
        "-i",
        "--identity",
        &s("auditor.key"),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("00:00:01.100 ch0 [output] secret.txt"),
        "{}",
        stdout(&o)
    );
    let o = run(&[
        "search",
        "nothing-like-this",
        &s("r.psmr"),
        "--identity",
        &s("auditor.key"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let o = run(&["info", &s("r.psmr")]);
    assert!(stdout(&o).contains("user         alice"), "{}", stdout(&o));
    assert!(stdout(&o).contains(&recipient));
    let o = run(&[
        "play",
        &s("r.psmr"),
        "--speed",
        "100",
        "--identity",
        &s("auditor.key"),
    ]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("secret.txt"));
}

#[test]
fn index_gives_an_intact_recording_its_seek_index_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let gateway = SigningKey::generate().unwrap();
    let config = WriterConfig {
        fsync: FsyncPolicy::Never,
        ..WriterConfig::default()
    };
    let (bytes, _) = write_all(&sample_session(400), &gateway, config);
    std::fs::write(s("r.psmr"), &bytes).unwrap();
    let cut = &bytes[..bytes.len() * 2 / 3];
    std::fs::write(s("cut.psmr"), cut).unwrap();
    let o = run(&["recording-keygen", "--kind", "signing", "-o", &s("idx.key")]);
    assert!(o.status.success());
    let index_signer = stdout(&o);

    let o = run(&["index", &s("r.psmr"), "--key", &s("idx.key")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).starts_with("indexed:"), "{}", stdout(&o));
    let indexed = std::fs::read(s("r.psmr")).unwrap();
    assert!(indexed.len() > bytes.len());
    assert_eq!(&indexed[..bytes.len()], &bytes[..]);
    let r = Reader::open(s("r.psmr"), ReadOptions::default()).unwrap();
    assert_eq!(r.seek_index().unwrap().signer.to_string(), index_signer);
    let o = run(&[
        "verify",
        &s("r.psmr"),
        "--key",
        &gateway.verifying_key().to_string(),
    ]);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "intact"));

    // Once: a second run leaves the file as it is.
    let o = run(&["index", &s("r.psmr"), "--key", &s("idx.key")]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("already indexed"), "{}", stdout(&o));
    assert_eq!(std::fs::read(s("r.psmr")).unwrap(), indexed);
    // Only intact recordings: a cut-off one is refused and left as it is.
    let o = run(&["index", &s("cut.psmr"), "--key", &s("idx.key")]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("only an intact recording"), "{err}");
    assert_eq!(std::fs::read(s("cut.psmr")).unwrap(), cut);
    let hidden: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[test]
fn export_makes_a_video_a_contact_sheet_and_frames_of_a_graphical_recording() {
    // Needs Debian's ffmpeg (scripts/test installs it).
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let s = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    // Six seconds of a 64x48 screen: a raw-pixels keyframe, then a PNG region and a
    // raw-pixels region, each a second apart.
    let mut palette = graphics::Palette::new();
    let mut events = Vec::new();
    for k in 0..6u64 {
        let c = [40 * k as u8, 200, 255 - 40 * k as u8, 255];
        let (w, h) = if k == 0 { (64, 48) } else { (16, 16) };
        let rgba: Vec<u8> = (0..w * h).flat_map(|_| c).collect();
        let kind = if k % 2 == 0 {
            EventKind::Pixels {
                x: 0,
                y: 0,
                width: w,
                height: h,
                indices: palette.indices(&rgba).unwrap(),
                palette: palette.rgb(),
            }
        } else {
            EventKind::Frame {
                x: 8 * k as u32,
                y: 8,
                width: w,
                height: h,
                png: graphics::encode_png(w, h, &rgba).unwrap(),
            }
        };
        events.push(Event::new(Micros(k * 1_000_000), kind));
    }
    let (bytes, _) = write_all(&events, &key, small_chunks());
    std::fs::write(s("rdp.psmr"), bytes).unwrap();

    let o = run(&["export", "-f", "video", &s("rdp.psmr"), "-o", &s("rdp.mp4")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=width,height,nb_read_frames"])
        .args(["-of", "csv=p=0", &s("rdp.mp4")])
        .output()
        .expect("ffprobe (Debian package ffmpeg)");
    let probe = String::from_utf8_lossy(&probe.stdout).trim().to_owned();
    let fields: Vec<u32> = probe.split(',').map(|f| f.parse().unwrap()).collect();
    assert_eq!(&fields[..2], &[64, 48], "{probe}");
    assert!(fields[2] >= 25, "5 fps over 5 s: {probe}");

    let o = run(&[
        "export",
        "-f",
        "sheet",
        &s("rdp.psmr"),
        "-o",
        &s("sheet.png"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::read(s("sheet.png"))
            .unwrap()
            .starts_with(b"\x89PNG")
    );

    let o = run(&["export", "-f", "frames", &s("rdp.psmr"), "-o", &s("frames")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listed: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(s("frames/frames.json")).unwrap()).unwrap();
    assert_eq!(listed.len(), 6);
    // The raw keyframe became a PNG of its own pixels.
    let png = std::fs::read(s("frames/frame-000000.png")).unwrap();
    let rgba = graphics::decode_png(&png, 64, 48).unwrap();
    assert_eq!(&rgba[..4], &[0, 200, 255, 255]);

    // A recording without pictures has no video to make: a clear error.
    let (bytes, _) = write_all(&sample_events(), &key, small_chunks());
    std::fs::write(s("ssh.psmr"), bytes).unwrap();
    let o = run(&["export", "-f", "video", &s("ssh.psmr"), "-o", &s("ssh.mp4")]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no screen"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
