//! Against the real `asciinema` CLI (pip install asciinema==2.4.0): it must `cat` and `play`
//! our asciicast exports, and its own recordings must import and export back unchanged.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use psm_recording::export::{AsciicastOptions, export_asciicast};
use psm_recording::import::{ImportMeta, import_asciicast};
use psm_recording::*;

fn asciinema() -> &'static str {
    let ok = Command::new("asciinema")
        .arg("--version")
        .output()
        .map(|o| o.status.success());
    assert!(
        matches!(ok, Ok(true)),
        "the asciinema CLI is required: pip install asciinema==2.4.0"
    );
    "asciinema"
}

fn run(args: &[&str], dir: &Path) -> (bool, Vec<u8>) {
    let out = Command::new(asciinema())
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .env("TERM", "xterm")
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "asciinema {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (out.status.success(), out.stdout)
}

fn export_to(bytes: Vec<u8>, path: &Path) {
    let mut r = Reader::from_bytes(bytes, ReadOptions::default()).unwrap();
    let f = std::fs::File::create(path).unwrap();
    export_asciicast(&mut r, f, &AsciicastOptions::default(), |_, _| {}).unwrap();
}

fn import_file(path: &Path, key: &SigningKey) -> Vec<u8> {
    let sink = MemorySink::new();
    let f = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    import_asciicast(
        f,
        Box::new(sink.clone()),
        key.clone(),
        small_chunks(),
        ImportMeta::default(),
        |_| {},
    )
    .unwrap();
    sink.bytes()
}

#[test]
fn asciinema_cats_and_plays_our_export() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let (bytes, _) = write_all(&sample_events(), &key, small_chunks());
    let cast = dir.path().join("out.cast");
    export_to(bytes, &cast);

    let (ok, out) = run(&["cat", "out.cast"], dir.path());
    assert!(ok, "asciinema cat failed");
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("line 0") && text.contains("line 59"),
        "{text}"
    );
    assert!(text.contains("\x1b[1;32muser@host\x1b[0m:~$ "));

    let (ok, out) = run(&["play", "-s", "1000", "out.cast"], dir.path());
    assert!(ok, "asciinema play -s 1000 failed");
    assert!(String::from_utf8_lossy(&out).contains("line 59"));
    let (ok, out) = run(&["play", "-i", "0.01", "out.cast"], dir.path());
    assert!(ok, "asciinema play -i 0.01 failed");
    assert!(String::from_utf8_lossy(&out).contains("line 59"));
}

#[test]
fn a_real_asciinema_recording_imports_and_exports_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let script = "printf 'hello \\033[1;31mred\\033[0m\\n'\nfor i in 1 2 3; do echo \"line $i é€\"; sleep 0.05; done\nprintf 'no newline'\n";
    std::fs::write(dir.path().join("s.sh"), script).unwrap();
    let (ok, _) = run(
        &["rec", "-q", "--overwrite", "-c", "bash s.sh", "in.cast"],
        dir.path(),
    );
    assert!(ok, "asciinema rec failed");
    let original = std::fs::read_to_string(dir.path().join("in.cast")).unwrap();
    assert!(original.contains("line 3"), "{original}");

    let key = SigningKey::generate().unwrap();
    let bytes = import_file(&dir.path().join("in.cast"), &key);
    let report = verify_reader(
        std::io::Cursor::new(bytes.clone()),
        &VerifyOptions::trusting(key.verifying_key()),
    )
    .unwrap();
    assert!(report.is_trusted_and_intact(), "{}", report.status);
    let r = Reader::from_bytes(bytes.clone(), ReadOptions::default()).unwrap();
    assert_eq!(r.header().terminal, Some(TermSize::new(80, 24)));

    export_to(bytes, &dir.path().join("out.cast"));
    let exported = std::fs::read_to_string(dir.path().join("out.cast")).unwrap();
    // Every event line comes back byte for byte (the header line is ours).
    let events = |s: &str| {
        s.lines()
            .skip(1)
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(events(&exported), events(&original));

    let (_, a) = run(&["cat", "in.cast"], dir.path());
    let (ok, b) = run(&["cat", "out.cast"], dir.path());
    assert!(ok);
    assert_eq!(
        a, b,
        "asciinema cat differs between the original and our export"
    );
}

#[test]
fn a_truncated_recording_exports_what_is_intact_and_marks_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let (bytes, _) = write_all(&sample_events(), &key, small_chunks());
    let cut = bytes.len() * 2 / 3;
    let mut r = Reader::from_bytes(bytes[..cut].to_vec(), ReadOptions::default()).unwrap();
    assert!(
        r.integrity()
            .to_string()
            .starts_with("truncated after chunk")
    );
    let path = dir.path().join("cut.cast");
    let summary = export_asciicast(
        &mut r,
        std::fs::File::create(&path).unwrap(),
        &AsciicastOptions::default(),
        |_, _| {},
    )
    .unwrap();
    assert_eq!(summary.gaps.len(), 1);
    let text = std::fs::read_to_string(&path).unwrap();
    let last = text.lines().last().unwrap();
    assert!(
        last.contains("\"m\"") && last.contains("truncated after chunk"),
        "{last}"
    );
    let (ok, out) = run(&["cat", "cut.cast"], dir.path());
    assert!(ok, "asciinema cat refused a cast with a gap marker");
    assert!(String::from_utf8_lossy(&out).contains("line 0"));
    let (ok, _) = run(&["play", "-s", "1000", "cut.cast"], dir.path());
    assert!(ok, "asciinema play refused a cast with a gap marker");
}

#[test]
fn exports_are_deterministic() {
    let key = SigningKey::generate().unwrap();
    let (bytes, _) = write_all(&sample_events(), &key, small_chunks());
    let export_all = |full_scan: bool| {
        let mut outs = Vec::new();
        let mut r = Reader::from_bytes(
            bytes.clone(),
            ReadOptions {
                full_scan,
                ..Default::default()
            },
        )
        .unwrap();
        let mut a = Vec::new();
        export_asciicast(
            &mut r,
            &mut a,
            &AsciicastOptions {
                include_input: true,
                ..Default::default()
            },
            |_, _| {},
        )
        .unwrap();
        outs.push(a);
        let mut t = Vec::new();
        export::export_text(&mut r, &mut t, |_, _| {}).unwrap();
        outs.push(t);
        let mut c = Vec::new();
        export::export_commands(&mut r, &mut c, |_, _| {}).unwrap();
        outs.push(c);
        outs
    };
    let a = export_all(false);
    let b = export_all(true);
    assert_eq!(a, b);
    assert_eq!(export_all(false), a);
}
