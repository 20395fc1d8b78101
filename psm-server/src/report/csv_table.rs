//! The CSV rendering: one table, one row per fact, its kind in the first column (`summary`,
//! `session`, `command`, `policy`, `transfer`, `gap`, `refusal`, `window-closure`,
//! `dormant`, `note`), so a spreadsheet filters it by kind, user or target.

use super::{Report, duration_text};

const COLUMNS: [&str; 14] = [
    "kind",
    "session",
    "user",
    "target",
    "protocol",
    "client",
    "start",
    "end",
    "duration",
    "checkout",
    "recording",
    "recording_sha256",
    "offset",
    "detail",
];

fn row(w: &mut csv::Writer<Vec<u8>>, cells: [&str; 14]) {
    // Writing to a Vec cannot fail.
    let _ = w.write_record(cells);
}

/// The report as CSV.
pub(super) fn render(r: &Report) -> String {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    row(&mut w, COLUMNS);
    for l in r.summary_lines() {
        row(
            &mut w,
            [
                "summary", "", "", "", "", "", "", "", "", "", "", "", "", &l,
            ],
        );
    }
    for s in &r.sessions {
        let duration = duration_text(s.duration_secs);
        let base = |kind: &'static str, offset: &str, detail: &str| -> [String; 14] {
            [
                kind.to_owned(),
                s.id.clone(),
                s.user.clone(),
                s.target.clone(),
                s.protocol.clone(),
                s.client.clone().unwrap_or_default(),
                s.start.clone(),
                s.end.clone().unwrap_or_default(),
                duration.clone(),
                s.checkout.clone().unwrap_or_default(),
                s.recording.status.as_str().to_owned(),
                s.recording.sha256.clone().unwrap_or_default(),
                offset.to_owned(),
                detail.to_owned(),
            ]
        };
        let mut detail = s.recording.detail.clone();
        if let Some(t) = &s.terminated {
            detail.push_str(&format!("; ended by request: {t}"));
        }
        let _ = w.write_record(base("session", "", &detail));
        for (kind, list) in [
            ("command", &s.commands),
            ("policy", &s.policy),
            ("transfer", &s.transfers),
        ] {
            for a in list {
                let _ = w.write_record(base(kind, &a.offset, &a.text));
            }
        }
        for g in &s.recording.gaps {
            let _ = w.write_record(base("gap", "", g));
        }
    }
    for u in &r.by_user {
        let d = super::html::user_line(u);
        row(
            &mut w,
            [
                "by-user", "", &u.user, "", "", "", "", "", "", "", "", "", "", &d,
            ],
        );
    }
    for (kind, list) in [
        ("refusal", &r.refusals),
        ("window-closure", &r.window_closures),
    ] {
        for f in list {
            let sid = f.session.clone().unwrap_or_default();
            row(
                &mut w,
                [
                    kind, &sid, "", "", "", "", &f.at, "", "", "", "", "", "", &f.detail,
                ],
            );
        }
    }
    for u in r.dormant_users.iter().flatten() {
        row(
            &mut w,
            ["dormant", "", u, "", "", "", "", "", "", "", "", "", "", ""],
        );
    }
    for n in &r.notes {
        row(
            &mut w,
            ["note", "", "", "", "", "", "", "", "", "", "", "", "", n],
        );
    }
    String::from_utf8_lossy(&w.into_inner().unwrap_or_default()).into_owned()
}
