//! The text transcript and the command index on a realistic SSH session.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use psm_recording::*;

fn ssh_session() -> Vec<Event> {
    let mut v = Vec::new();
    let mut t = 0u64;
    let mut at = |dt: u64, kind: EventKind| {
        t += dt;
        v.push(Event::new(Micros(t), kind));
    };
    let sh = ChannelId(0);
    let out = |s: &str| EventKind::Output {
        channel: sh,
        stream: Stream::Stdout,
        data: s.as_bytes().to_vec(),
    };
    let key = |s: &str| EventKind::Input {
        channel: sh,
        data: s.as_bytes().to_vec(),
        echo_off: false,
    };
    at(
        0,
        EventKind::ChannelOpen {
            channel: sh,
            kind: ChannelKind::Shell {
                pty: Some(Pty {
                    term: "xterm".into(),
                    size: TermSize::new(80, 24),
                }),
            },
        },
    );
    at(1000, out("\x1b[01;32malice@web-01\x1b[00m:~$ "));
    // Typed key by key, echoed by the shell; a typo fixed with backspace; tab completion.
    for (k, echo) in [
        ("l", "l"),
        ("x", "x"),
        ("\x7f", "\x08\x1b[K"),
        ("s", "s"),
        (" ", " "),
        ("-", "-"),
        ("l", "l"),
        (" ", " "),
        ("/e", "/e"),
        ("\t", "tc/"),
    ] {
        at(100_000, key(k));
        at(2_000, out(echo));
    }
    at(100_000, key("\r"));
    at(
        2_000,
        out("\r\ntotal 0\r\n-rw-r--r-- 1 root root 0 hosts\r\n\x1b[01;32malice@web-01\x1b[00m:~$ "),
    );
    at(500_000, key("sudo -i\r"));
    at(2_000, out("sudo -i\r\n[sudo] password for alice: "));
    at(
        800_000,
        EventKind::Input {
            channel: sh,
            data: b"hunter2\r".to_vec(),
            echo_off: true,
        },
    );
    at(2_000, out("\r\nroot@web-01:~# "));
    at(300_000, key("vim /etc/hosts\r"));
    at(
        2_000,
        out("vim /etc/hosts\r\n\x1b[?1049h\x1b[H\x1b[2J127.0.0.1 localhost\r\n~\r\n"),
    );
    at(200_000, key(":wq\r"));
    at(2_000, out("\x1b[?1049lroot@web-01:~# "));
    at(
        1000,
        EventKind::Policy {
            action: PolicyAction::Blocked,
            rule: "no-rm-rf".into(),
            detail: "rm -rf /".into(),
        },
    );
    at(
        1000,
        EventKind::ChannelOpen {
            channel: ChannelId(1),
            kind: ChannelKind::Exec {
                command: "uname -a".into(),
                pty: None,
            },
        },
    );
    at(
        1000,
        EventKind::Output {
            channel: ChannelId(1),
            stream: Stream::Stdout,
            data: b"Linux web-01\n".to_vec(),
        },
    );
    at(
        1000,
        EventKind::ChannelClose {
            channel: ChannelId(1),
            exit_status: Some(0),
            exit_signal: None,
        },
    );
    at(
        1000,
        EventKind::ChannelOpen {
            channel: ChannelId(2),
            kind: ChannelKind::Subsystem {
                name: "sftp".into(),
            },
        },
    );
    at(
        1000,
        EventKind::FileTransfer(FileTransfer {
            channel: ChannelId(2),
            direction: TransferDirection::Upload,
            protocol: "sftp".into(),
            path: "/tmp/x.tar".into(),
            size: Some(10),
            blake3: None,
        }),
    );
    at(
        1000,
        EventKind::ChannelClose {
            channel: ChannelId(2),
            exit_status: None,
            exit_signal: None,
        },
    );
    v
}

fn reader() -> Reader<std::io::Cursor<Vec<u8>>> {
    let key = SigningKey::generate().unwrap();
    let (bytes, _) = write_all(
        &ssh_session(),
        &key,
        WriterConfig {
            input_policy: InputPolicy::RedactEchoOff,
            ..small_chunks()
        },
    );
    assert!(!bytes.windows(7).any(|w| w == b"hunter2"));
    Reader::from_bytes(bytes, ReadOptions::default()).unwrap()
}

#[test]
fn command_index_finds_shell_exec_and_subsystem_commands() {
    let mut out = Vec::new();
    export::export_commands(&mut reader(), &mut out, |_, _| {}).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let cmds: Vec<(String, String, serde_json::Value)> = v["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["source"].as_str().unwrap().to_owned(),
                c["command"].as_str().unwrap().to_owned(),
                c["exit_status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        cmds,
        vec![
            (
                "shell".into(),
                "ls -l /etc/".into(),
                serde_json::Value::Null
            ),
            ("shell".into(), "sudo -i".into(), serde_json::Value::Null),
            (
                "shell".into(),
                "vim /etc/hosts".into(),
                serde_json::Value::Null
            ),
            ("exec".into(), "uname -a".into(), serde_json::json!(0)),
            ("subsystem".into(), "sftp".into(), serde_json::Value::Null),
        ],
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(v["commands"][0]["offset"], "00:00:01.121");
}

#[test]
fn transcript_shows_lines_notes_and_hides_passwords() {
    let mut out = Vec::new();
    export::export_text(&mut reader(), &mut out, |_, _| {}).unwrap();
    let text = String::from_utf8(out).unwrap();
    for want in [
        "alice@web-01:~$ ls -l /etc/",
        "-rw-r--r-- 1 root root 0 hosts",
        "-- channel 0: input hidden (echo off)",
        "[full-screen program from",
        "-- policy blocked: rule \"no-rm-rf\": rm -rf /",
        "-- channel 1 opened: exec \"uname -a\"",
        "ch1] Linux web-01",
        "-- channel 1 closed, exit status 0",
        "-- upload 10 bytes \"/tmp/x.tar\" over sftp",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert!(!text.contains("hunter2"));
    assert!(
        !text.contains("127.0.0.1 localhost"),
        "full-screen content leaked into the transcript"
    );
}

#[test]
fn search_finds_commands_output_and_events_with_offsets() {
    let re = regex::Regex::new("hosts|no-rm").unwrap();
    let hits = search::search(&mut reader(), &re, |_, _| {}).unwrap();
    let kinds: Vec<_> = hits.iter().map(|h| (h.kind, h.text.clone())).collect();
    assert!(
        kinds.contains(&(search::HitKind::Command, "vim /etc/hosts".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(
            search::HitKind::Output,
            "-rw-r--r-- 1 root root 0 hosts".into()
        )),
        "{kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .any(|(k, t)| *k == search::HitKind::Event && t.contains("no-rm-rf")),
        "{kinds:?}"
    );
    assert!(hits.windows(2).all(|w| w[0].time <= w[1].time));
}

#[test]
fn search_finds_database_statements_as_statements() {
    let statement = |t: u64, text: &str, tag: &str| {
        Event::new(
            Micros(t),
            EventKind::DbStatement(Box::new(DbStatement {
                database: "app".into(),
                text: text.into(),
                tag: Some(tag.into()),
                ..DbStatement::default()
            })),
        )
    };
    let events = [
        statement(1_000, "SELECT owner FROM accounts", "SELECT 2"),
        statement(2_000, "DROP TABLE accounts", "DROP TABLE"),
        Event::new(
            Micros(3_000),
            EventKind::Marker {
                label: "DROP TABLE reviewed".into(),
            },
        ),
    ];
    let key = SigningKey::generate().unwrap();
    let (bytes, _) = write_all(&events, &key, small_chunks());
    let mut reader = Reader::from_bytes(bytes, ReadOptions::default()).unwrap();
    let re = regex::Regex::new("DROP TABLE").unwrap();
    let hits = search::search(&mut reader, &re, |_, _| {}).unwrap();
    let kinds: Vec<_> = hits
        .iter()
        .map(|h| (h.time, h.kind, h.text.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                Micros(2_000),
                search::HitKind::Statement,
                "sql [app] DROP TABLE accounts => DROP TABLE"
            ),
            (
                Micros(3_000),
                search::HitKind::Event,
                "marker: DROP TABLE reviewed"
            ),
        ]
    );
    assert_eq!(search::HitKind::Statement.as_str(), "statement");
}

#[test]
fn frames_export_as_png_files() {
    let png = export::encode_png(2, 1, &[255, 0, 0, 255, 0, 255, 0, 255]).unwrap();
    let events = vec![
        Event::new(
            Micros(5),
            EventKind::Frame {
                x: 0,
                y: 0,
                width: 2,
                height: 1,
                png: png.clone(),
            },
        ),
        Event::new(
            Micros(9),
            EventKind::Frame {
                x: 1,
                y: 0,
                width: 1,
                height: 1,
                png: b"not a png".to_vec(),
            },
        ),
    ];
    let key = SigningKey::generate().unwrap();
    let (bytes, _) = write_all(&events, &key, small_chunks());
    let dir = tempfile::tempdir().unwrap();
    let mut r = Reader::from_bytes(bytes, ReadOptions::default()).unwrap();
    let s = export::export_frames(&mut r, dir.path(), |_, _| {}).unwrap();
    assert_eq!(s.items, 1);
    assert_eq!(s.gaps.len(), 1);
    assert_eq!(
        std::fs::read(dir.path().join("frame-000000.png")).unwrap(),
        png
    );
    let decoder = png::Decoder::new(std::io::Cursor::new(
        std::fs::read(dir.path().join("frame-000000.png")).unwrap(),
    ));
    let info = decoder.read_info().unwrap();
    assert_eq!((info.info().width, info.info().height), (2, 1));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("frames.json")).unwrap()).unwrap();
    assert_eq!(index[0]["time_us"], 5);
}

#[test]
fn player_starts_from_a_keyframe_and_respects_speed() {
    let key = SigningKey::generate().unwrap();
    let (bytes, _) = write_all(
        &sample_events(),
        &key,
        WriterConfig {
            keyframe_bytes: 256,
            ..small_chunks()
        },
    );
    let mut r = Reader::from_bytes(bytes, ReadOptions::default()).unwrap();
    let from = Micros(10_000_000);
    let steps: Vec<_> = play::Player::new(
        &mut r,
        play::PlayOptions {
            speed: 4.0,
            from,
            ..Default::default()
        },
    )
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap();
    // The first write rebuilds the screen at `from`: it shows lines output before then.
    let play::PlayStep::Write(t, init) = &steps[0] else {
        panic!("{:?}", steps[0])
    };
    assert_eq!(*t, from);
    let init = String::from_utf8_lossy(init);
    assert!(
        init.starts_with("\x1bc") && init.contains("line 27"),
        "{init}"
    );
    // Waits are a quarter of the recording's gaps.
    let waits: Vec<_> = steps
        .iter()
        .filter_map(|s| match s {
            play::PlayStep::Wait(d) => Some(*d),
            _ => None,
        })
        .collect();
    assert!(
        waits.contains(&std::time::Duration::from_micros(62_750)),
        "{waits:?}"
    );
}

/// An RDP recording's channels as the RDP gateway writes them: typed text on
/// `rdp-keyboard`, pointer moves and clicks on `rdp-pointer`.
#[test]
fn command_index_of_a_graphical_session_holds_typed_lines_never_pointer_moves() {
    let kb = ChannelId(1);
    let ptr = ChannelId(2);
    let open = |channel, name: &str| EventKind::ChannelOpen {
        channel,
        kind: ChannelKind::Other { name: name.into() },
    };
    let input = |channel, s: &str| EventKind::Input {
        channel,
        data: s.as_bytes().to_vec(),
        echo_off: false,
    };
    let kinds = [
        open(kb, "rdp-keyboard"),
        open(ptr, "rdp-pointer"),
        input(ptr, "move 640 512\n"),
        input(ptr, "move 200 200\n"),
        input(ptr, "down left 200 200\n"),
        input(ptr, "up left 200 200\n"),
        input(kb, "touch /tmp/proof\r"),
        input(ptr, "wheel -120 200 200\n"),
        input(kb, "<C-c>"),
        input(ptr, "move 10 10\n"),
        input(kb, "ls -l\r"),
    ];
    let events: Vec<Event> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, k)| Event::new(Micros(i as u64 * 1000), k))
        .collect();
    let key = SigningKey::generate().unwrap();
    let (bytes, _) = write_all(&events, &key, small_chunks());
    let mut r = Reader::from_bytes(bytes, ReadOptions::default()).unwrap();
    let mut out = Vec::new();
    export::export_commands(&mut r, &mut out, |_, _| {}).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let cmds: Vec<&str> = v["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    // The shortcut typed before `ls -l` stays on its line, as typed.
    assert_eq!(cmds, ["touch /tmp/proof", "<C-c>ls -l"], "{v}");
}
