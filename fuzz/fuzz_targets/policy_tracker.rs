//! The command tracker (line reconstruction from keystrokes and an emulated screen) over
//! arbitrary input and output: never panics, stays bounded. The first bytes choose the
//! terminal size, the chunking and the echo-wait mode.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use psm_core::policy::{Policy, SessionPolicy, SessionScope};
use psm_proxy::tracker::{CommandTracker, Feed, TrackerConfig};

fn session() -> &'static SessionPolicy {
    static S: OnceLock<SessionPolicy> = OnceLock::new();
    S.get_or_init(|| {
        let policy = Policy::from_toml(
            r#"
            unechoed_input = "alert"
            [[rule]]
            name = "wipe"
            glob = "rm -rf /*"
            action = "terminate"
            [[rule]]
            name = "out"
            on = "output"
            regex = "(?i)private key"
            action = "alert"
            "#,
        )
        .expect("the fuzz policy compiles");
        policy.for_session(&SessionScope::new("fuzz", ["fuzz"]))
    })
}

fuzz_target!(|data: &[u8]| {
    let [cols, rows, chunk, flags, rest @ ..] = data else {
        return;
    };
    let mut t = CommandTracker::new(
        session().clone(),
        TrackerConfig {
            cols: u16::from(*cols),
            rows: u16::from(*rows),
            max_line: 64 + usize::from(*flags) * 8,
            wait_for_echo: flags & 1 == 1,
        },
    );
    let mut out = Vec::new();
    let size = usize::from(*chunk % 32) + 1;
    for (i, piece) in rest.chunks(size).enumerate() {
        match i % 3 {
            0 => t.output(piece, &mut out),
            1 | 2 => {
                let mut bytes = piece;
                loop {
                    match t.input(bytes, i % 3 == 2 && flags & 2 == 2, &mut out) {
                        Feed::All => break,
                        Feed::WaitForEcho { consumed } => {
                            assert!(consumed < bytes.len());
                            let _ = t.echo_ready();
                            t.echo_timeout();
                            bytes = &bytes[consumed..];
                        }
                    }
                }
            }
            _ => unreachable!(),
        }
        if i % 97 == 0 {
            t.resize(u16::from(*rows), u16::from(*cols));
        }
        out.clear();
    }
    t.finish(&mut out);
});
