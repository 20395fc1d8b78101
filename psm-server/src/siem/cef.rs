//! Audit events in ArcSight Common Event Format (CEF:0), with the escaping the format
//! requires: in the header `\` and `|` are escaped and line breaks become spaces; in
//! extension values `\` and `=` are escaped and line breaks become `\n` / `\r`. Other
//! control characters become spaces everywhere, so one event is always one line.

use std::fmt::Write as _;

use psm_core::{AuditAction, AuditEvent};

/// The vendor and product fields of every message.
pub const DEVICE_VENDOR: &str = "PSM";
/// See [`DEVICE_VENDOR`].
pub const DEVICE_PRODUCT: &str = "PSM";
/// The longest `msg` value (characters); longer details are cut and end with `...`.
pub const MAX_DETAIL: usize = 2048;

/// The CEF severity (0 to 10) of an action.
pub fn severity(action: AuditAction) -> u8 {
    match action {
        AuditAction::Refused => 7,
        AuditAction::TerminateRequested => 6,
        AuditAction::Watchdog | AuditAction::AttemptFailed => 5,
        AuditAction::Requeued => 4,
        AuditAction::RecordingStatusUpdated => 2,
        _ => 3,
    }
}

/// A short human name for an action (the CEF `Name` field).
pub fn name(action: AuditAction) -> &'static str {
    match action {
        AuditAction::Opened => "Session opened",
        AuditAction::Ended => "Session ended",
        AuditAction::TerminateRequested => "Session termination requested",
        AuditAction::Claimed => "Session claimed by a worker",
        AuditAction::Completed => "Worker step completed",
        AuditAction::AttemptFailed => "Worker step failed",
        AuditAction::Watchdog => "Watchdog moved a silent session",
        AuditAction::Requeued => "Failed session requeued",
        AuditAction::RecordingStatusUpdated => "Recording status updated",
        AuditAction::Refused => "Request refused",
        _ => "PSM event",
    }
}

/// Appends `s` escaped for a CEF header field.
pub fn escape_header(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
}

/// Appends `s` escaped for a CEF extension value.
pub fn escape_value(s: &str, out: &mut String) {
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\r' if chars.peek() == Some(&'\n') => {
                chars.next();
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
}

fn ext(out: &mut String, key: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    if !out.ends_with('|') {
        out.push(' ');
    }
    out.push_str(key);
    out.push('=');
    escape_value(value, out);
}

/// The CEF line of one audit event. `host` is the `dvchost` field (this node's name).
///
/// ```
/// use psm_core::{AuditAction, AuditEvent, AuditRecord, Timestamp};
/// let event = AuditEvent { seq: 7, record: AuditRecord {
///     at: Timestamp::from_micros(1_700_000_000_000_000), session: None,
///     actor: "alice".into(), action: AuditAction::Refused, from_stage: None, to_stage: None,
///     detail: "path=/x | role a\\b\nnext".into(),
/// }};
/// let cef = psm_server::siem::cef_line(&event, "gw-1");
/// assert!(cef.starts_with("CEF:0|PSM|PSM|"));
/// assert!(cef.contains("|refused|Request refused|7|rt=1700000000000 externalId=7 act=refused suser=alice"));
/// assert!(cef.ends_with(r"msg=path\=/x | role a\\b\nnext dvchost=gw-1"));
/// ```
pub fn cef_line(event: &AuditEvent, host: &str) -> String {
    let r = &event.record;
    let mut out = String::with_capacity(256 + r.detail.len().min(MAX_DETAIL * 2));
    out.push_str("CEF:0|");
    escape_header(DEVICE_VENDOR, &mut out);
    out.push('|');
    escape_header(DEVICE_PRODUCT, &mut out);
    out.push('|');
    escape_header(env!("CARGO_PKG_VERSION"), &mut out);
    out.push('|');
    escape_header(r.action.as_str(), &mut out);
    out.push('|');
    escape_header(name(r.action), &mut out);
    let _ = write!(out, "|{}|", severity(r.action));

    ext(
        &mut out,
        "rt",
        &(r.at.as_micros().div_euclid(1000)).to_string(),
    );
    ext(&mut out, "externalId", &event.seq.to_string());
    ext(&mut out, "act", r.action.as_str());
    ext(&mut out, "suser", &r.actor);
    if let Some(s) = r.session {
        ext(&mut out, "cs1Label", "sessionId");
        ext(&mut out, "cs1", &s.to_string());
    }
    if let Some(s) = r.from_stage {
        ext(&mut out, "cs2Label", "fromStage");
        ext(&mut out, "cs2", s.as_str());
    }
    if let Some(s) = r.to_stage {
        ext(&mut out, "cs3Label", "toStage");
        ext(&mut out, "cs3", s.as_str());
    }
    ext(&mut out, "msg", &bounded(&r.detail));
    ext(&mut out, "dvchost", host);
    out
}

/// `s` cut to [`MAX_DETAIL`] characters.
pub(crate) fn bounded(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(MAX_DETAIL) {
        None => s.into(),
        Some((cut, _)) => format!("{}...", &s[..cut]).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(s: &str) -> String {
        let mut o = String::new();
        escape_header(s, &mut o);
        o
    }
    fn value(s: &str) -> String {
        let mut o = String::new();
        escape_value(s, &mut o);
        o
    }

    #[test]
    fn escaping() {
        assert_eq!(header(r"a|b\c=d"), r"a\|b\\c=d");
        assert_eq!(header("a\nb\rc"), "a b c");
        assert_eq!(value(r"a|b\c=d"), r"a|b\\c\=d");
        assert_eq!(value("a\r\nb\nc\rd\te"), r"a\nb\nc\rd e");
    }

    /// Undoes extension escaping, as a CEF parser does.
    fn unescape_value(s: &str) -> String {
        let mut out = String::new();
        let mut it = s.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                match it.next() {
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some(o) => out.push(o),
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    proptest! {
        #[test]
        fn values_round_trip_and_stay_one_line(s in "\\PC{0,64}|[=\\\\|\n\r a-z]{0,64}") {
            let v = value(&s);
            prop_assert!(!v.contains('\n') && !v.contains('\r'));
            // Every `=` in a value is escaped, so a parser never mistakes it for a key.
            let bare_eq = v.char_indices().any(|(i, c)| {
                c == '=' && v[..i].chars().rev().take_while(|&b| b == '\\').count() % 2 == 0
            });
            prop_assert!(!bare_eq);
            let expect: String = s.replace("\r\n", "\n").chars()
                .map(|c| if c.is_control() && c != '\n' && c != '\r' { ' ' } else { c })
                .collect();
            prop_assert_eq!(unescape_value(&v), expect);
        }

        #[test]
        fn headers_never_split(s in "\\PC{0,64}|[|\\\\\n a-z]{0,64}") {
            let h = header(&s);
            let bare_pipe = h.char_indices().any(|(i, c)| {
                c == '|' && h[..i].chars().rev().take_while(|&b| b == '\\').count() % 2 == 0
            });
            prop_assert!(!bare_pipe);
            prop_assert!(!h.contains('\n'));
        }
    }
}
