//! Command-policy hot path: what the tracker costs per byte of output, per keystroke and
//! per submitted command.
//!
//! `cargo bench -p psm-proxy --bench policy`. Output throughput is measured side by side
//! with the floor it cannot beat: the same bytes fed to psm-recording's `TerminalState` (the
//! emulator the tracker reads), as a ratio. Results go to docs/benchmarks.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use psm_core::policy::{Policy, PolicyConfig, RuleConfig, SessionScope, Subject};
use psm_proxy::tracker::{CommandTracker, Feed, TrackerConfig};
use psm_recording::{TermSize, TerminalState};

fn policy(command_rules: usize, output_rules: usize) -> psm_core::policy::SessionPolicy {
    let mut cfg = PolicyConfig::default();
    for i in 0..command_rules {
        cfg.rules.push(RuleConfig {
            name: format!("cmd-{i}"),
            on: Subject::Command,
            regex: Some(format!(r"^tool{i}\s+--danger(ous)?\b")),
            glob: None,
            case_insensitive: false,
            action: psm_core::policy::Action::Alert,
            targets: vec![],
            roles: vec![],
            direction: None,
            message: None,
        });
    }
    for i in 0..output_rules {
        cfg.rules.push(RuleConfig {
            name: format!("out-{i}"),
            on: Subject::Output,
            regex: Some(format!(r"SECRET-{i}-[0-9a-f]{{16}}")),
            glob: None,
            case_insensitive: false,
            action: psm_core::policy::Action::Alert,
            targets: vec![],
            roles: vec![],
            direction: None,
            message: None,
        });
    }
    Policy::new(&cfg)
        .expect("bench policy")
        .for_session(&SessionScope::new("bench", ["ops"]))
}

/// Typical terminal output: `ls -l`-like lines, some coloured.
fn output_text(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 200);
    let mut i = 0u64;
    while out.len() < bytes {
        i += 1;
        if i.is_multiple_of(4) {
            out.extend_from_slice(b"\x1b[01;34m");
        }
        out.extend_from_slice(
            format!(
                "-rw-r--r-- 1 alice staff {:>8} Nov 23 21:07 file-{i:06}.log",
                i * 37 % 99_991
            )
            .as_bytes(),
        );
        if i.is_multiple_of(4) {
            out.extend_from_slice(b"\x1b[0m");
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn best_of<F: FnMut() -> Duration>(runs: usize, mut f: F) -> Duration {
    (0..runs).map(|_| f()).min().unwrap_or_default()
}

fn main() {
    let size = 16 << 20;
    let text = output_text(size);
    let chunks: Vec<&[u8]> = text.chunks(16 * 1024).collect();
    let mb = text.len() as f64 / 1e6;

    let floor = best_of(3, || {
        let mut term = TerminalState::new(TermSize::new(80, 24)).expect("80x24");
        let start = Instant::now();
        for c in &chunks {
            term.feed(c);
        }
        black_box(term.cursor());
        start.elapsed()
    });
    println!(
        "output, the terminal emulator alone (floor): {:.1} MB/s",
        mb / floor.as_secs_f64()
    );
    for (label, s) in [
        ("tracker, no output rules", policy(50, 0)),
        ("tracker, 20 output rules", policy(50, 20)),
    ] {
        let t = best_of(3, || {
            let mut tr = CommandTracker::new(s.clone(), TrackerConfig::default());
            let mut out = Vec::new();
            let start = Instant::now();
            for c in &chunks {
                tr.output(c, &mut out);
            }
            black_box(&out);
            start.elapsed()
        });
        println!(
            "output, {label}: {:.1} MB/s ({:.2}x the floor's time)",
            mb / t.as_secs_f64(),
            t.as_secs_f64() / floor.as_secs_f64()
        );
    }

    // Keystrokes: one byte in, its echo out.
    let s = policy(200, 20);
    let keys = 200_000;
    let t = best_of(3, || {
        let mut tr = CommandTracker::new(s.clone(), TrackerConfig::default());
        let mut out = Vec::new();
        tr.output(b"alice@web-01:~$ ", &mut out);
        let start = Instant::now();
        for i in 0..keys {
            let b = [b'a' + (i % 26) as u8];
            if tr.input(&b, false, &mut out) != Feed::All {
                unreachable!("plain keys never wait");
            }
            tr.output(&b, &mut out);
            if i % 60 == 59 {
                // Ctrl-U keeps the line short, as a person's lines are.
                let _ = tr.input(b"\x15", false, &mut out);
                tr.output(b"\r\x1b[Kalice@web-01:~$ ", &mut out);
            }
        }
        black_box(&out);
        start.elapsed()
    });
    println!(
        "keystroke (input + echo), 200 command + 20 output rules: {:.0} ns/key",
        t.as_nanos() as f64 / keys as f64
    );

    // Submitted commands: a 40-character line typed, then Enter.
    let commands = 20_000;
    let line = b"tool17 --verbose --config /etc/tool.conf";
    let mut decisions = 0usize;
    let t = best_of(3, || {
        let mut tr = CommandTracker::new(s.clone(), TrackerConfig::default());
        let mut out = Vec::new();
        let mut judging = Duration::ZERO;
        for _ in 0..commands {
            tr.output(b"\r\nalice@web-01:~$ ", &mut out);
            let _ = tr.input(line, false, &mut out);
            tr.output(line, &mut out);
            let start = Instant::now();
            let _ = tr.input(b"\r", false, &mut out);
            judging += start.elapsed();
            decisions = out.len();
            out.clear();
        }
        judging
    });
    assert_eq!(decisions, 1, "each Enter is judged once");
    println!(
        "Enter to decision (200 command rules, 40-char line): {:.1} us/command",
        t.as_secs_f64() * 1e6 / commands as f64
    );
}
