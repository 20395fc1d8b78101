//! The policy parser and compiler (TOML, regexes, globs) and the shell lexer that turns a
//! command line into the forms rules match: arbitrary text never panics, and a policy that
//! compiles judges arbitrary lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psm_core::policy::{
    Policy, PolicyConfig, SessionScope, TransferDirection, command_forms, command_units, continues,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = command_forms(&text);
    let units = command_units(&text);
    assert!(units.commands.len() <= psm_core::policy::MAX_COMMANDS);
    let _ = continues(&text);

    // As a whole policy.
    if let Ok(policy) = Policy::from_toml(&text) {
        let s = policy.for_session(&SessionScope::new("t", ["r"]));
        let _ = s.judge_command("rm -rf /");
        let _ = s.judge_output_line("x");
        let _ = s.judge_transfer("/etc/shadow", TransferDirection::Download);
    }

    // As the pattern of one rule (a glob and a regex) judged against itself.
    let quoted = toml_string(&text);
    for kind in ["glob", "regex"] {
        let doc = format!("[[rule]]\nname = \"f\"\n{kind} = {quoted}\naction = \"alert\"\n");
        let Ok(cfg) = PolicyConfig::from_toml(&doc) else {
            continue;
        };
        let policy = match Policy::new(&cfg) {
            Ok(p) => p,
            // Any glob must translate to a valid regex; a regex may be invalid.
            Err(e) if kind == "glob" => panic!("glob {text:?} did not compile: {e}"),
            Err(_) => continue,
        };
        let _ = policy
            .for_session(&SessionScope::default())
            .judge_command(&text);
    }
});

/// A TOML basic string holding `s`.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
