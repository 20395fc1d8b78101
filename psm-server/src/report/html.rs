//! The HTML rendering: one self-contained page (its style inline, no script), every value
//! escaped, so recorded commands cannot inject markup into the auditor's browser.

use std::fmt::Write as _;

use super::{Activity, RefusedSession, Report, UserSummary, duration_text};

/// Escapes text for HTML element content and attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The per-user line ("privileged access by user").
pub(super) fn user_line(u: &UserSummary) -> String {
    format!(
        "{} sessions; targets {}; {} connected; {} policy events; {} recordings not intact{}",
        u.sessions,
        u.targets.join(", "),
        duration_text(u.duration_secs),
        u.policy_events,
        u.recordings_not_intact,
        if u.roles.is_empty() {
            String::new()
        } else {
            format!("; roles {}", u.roles.join(", "))
        }
    )
}

fn table(out: &mut String, head: &[&str], rows: &[Vec<String>]) {
    out.push_str("<table><thead><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>\n");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", esc(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

fn activities(out: &mut String, title: &str, list: &[Activity]) {
    if list.is_empty() {
        return;
    }
    let _ = write!(out, "<h4>{}</h4>", esc(title));
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| vec![a.offset.clone(), a.text.clone()])
        .collect();
    table(out, &["at", "what"], &rows);
}

fn refusal_rows(list: &[RefusedSession]) -> Vec<Vec<String>> {
    list.iter()
        .map(|f| {
            vec![
                f.at.clone(),
                f.session.clone().unwrap_or_default(),
                f.actor.clone(),
                f.detail.clone(),
            ]
        })
        .collect()
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#111}\
table{border-collapse:collapse;margin:.5em 0 1em}\
td,th{border:1px solid #bbb;padding:2px 6px;text-align:left;vertical-align:top;font-size:90%}\
th{background:#eee}.intact{color:#060}.bad{color:#a00;font-weight:bold}\
code{font-size:90%}section.session{border-top:1px solid #888;margin-top:1em}";

/// The report as a page.
pub(super) fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        esc(&r.title),
        esc(&r.title)
    );
    for l in r.summary_lines() {
        let _ = writeln!(o, "<p>{}</p>", esc(&l));
    }
    o.push_str("<h2>Sessions</h2>\n");
    let rows: Vec<Vec<String>> = r
        .sessions
        .iter()
        .map(|s| {
            vec![
                s.start.clone(),
                s.user.clone(),
                s.target.clone(),
                s.protocol.clone(),
                s.client.clone().unwrap_or_default(),
                duration_text(s.duration_secs),
                s.checkout.clone().unwrap_or_default(),
                s.recording.status.as_str().to_owned(),
            ]
        })
        .collect();
    table(
        &mut o,
        &[
            "start",
            "user",
            "target",
            "protocol",
            "client",
            "duration",
            "checkout",
            "recording",
        ],
        &rows,
    );
    for s in &r.sessions {
        let _ = writeln!(
            o,
            "<section class=\"session\"><h3>{} &rarr; {} <small>session {}</small></h3>",
            esc(&s.user),
            esc(&s.target),
            esc(&s.id)
        );
        let class = if s.recording.status == super::RecordingVerdict::Intact {
            "intact"
        } else {
            "bad"
        };
        let _ = writeln!(
            o,
            "<p>{} to {} ({}), stage {}, from {}. Recording: <span class=\"{class}\">{}</span> \
             &mdash; {}</p>",
            esc(&s.start),
            esc(s.end.as_deref().unwrap_or("(open)")),
            esc(&duration_text(s.duration_secs)),
            esc(&s.stage),
            esc(s.client.as_deref().unwrap_or("(address not recorded)")),
            esc(s.recording.status.as_str()),
            esc(&s.recording.detail)
        );
        if let Some(h) = &s.recording.sha256 {
            let _ = writeln!(o, "<p>SHA-256 <code>{}</code></p>", esc(h));
        }
        if let Some(signer) = &s.recording.signer {
            let _ = writeln!(o, "<p>Signed by <code>{}</code></p>", esc(signer));
        }
        if let Some(t) = &s.terminated {
            let _ = writeln!(o, "<p class=\"bad\">Ended by request: {}</p>", esc(t));
        }
        activities(&mut o, "Commands and statements", &s.commands);
        activities(&mut o, "Policy events", &s.policy);
        activities(&mut o, "Transfers", &s.transfers);
        if !s.recording.gaps.is_empty() {
            o.push_str("<h4>Gaps</h4><ul>");
            for g in &s.recording.gaps {
                let _ = write!(o, "<li>{}</li>", esc(g));
            }
            o.push_str("</ul>\n");
        }
        if s.items_truncated {
            o.push_str("<p>(lists cut at the per-session limit)</p>\n");
        }
        o.push_str("</section>\n");
    }
    o.push_str("<h2>Privileged access by user</h2>\n");
    let rows: Vec<Vec<String>> = r
        .by_user
        .iter()
        .map(|u| vec![u.user.clone(), user_line(u)])
        .collect();
    table(&mut o, &["user", "activity"], &rows);
    o.push_str("<h2>Access refused outside access windows</h2>\n");
    table(
        &mut o,
        &["at", "session", "refused by", "detail"],
        &refusal_rows(&r.refusals),
    );
    o.push_str("<h2>Sessions ended by a closing access window</h2>\n");
    table(
        &mut o,
        &["at", "session", "by", "detail"],
        &refusal_rows(&r.window_closures),
    );
    o.push_str("<h2>Dormant accounts (no session in the period)</h2>\n");
    match &r.dormant_users {
        Some(users) if users.is_empty() => o.push_str("<p>None.</p>\n"),
        Some(users) => {
            let _ = writeln!(o, "<p>{}</p>", esc(&users.join(", ")));
        }
        None => o.push_str("<p>No user directory was available.</p>\n"),
    }
    o.push_str("<h2>Sessions without an intact recording, or with gaps</h2>\n");
    if r.recording_exceptions.is_empty() {
        o.push_str("<p>None.</p>\n");
    } else {
        o.push_str("<ul>");
        for e in &r.recording_exceptions {
            let _ = write!(o, "<li>{}</li>", esc(e));
        }
        o.push_str("</ul>\n");
    }
    o.push_str("<h2>Recordings cited</h2>\n");
    let rows: Vec<Vec<String>> = r
        .recordings
        .iter()
        .map(|c| vec![c.session.clone(), c.sha256.clone()])
        .collect();
    table(&mut o, &["session", "SHA-256 of the raw recording"], &rows);
    o.push_str("<h2>Notes</h2><ul>");
    for n in &r.notes {
        let _ = write!(o, "<li>{}</li>", esc(n));
    }
    o.push_str(
        "</ul>\n<p>This report is sealed: <code>psm report verify FILE</code> checks its \
         signature and, with the node's data directory, the recordings' hashes.</p>\n\
         </body></html>\n",
    );
    o
}
