//! The PDF rendering, through printpdf: A4 landscape pages in the PDF standard fonts
//! (Helvetica for headings, Courier for the tables, so columns line up without font
//! metrics), page numbers in the footer, long values wrapped.

use printpdf::{
    BuiltinFont, Mm, Op, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions, Point, Pt, TextItem,
};

use super::{Report, ReportError, duration_text};

const PAGE_W: f32 = 297.0;
const PAGE_H: f32 = 210.0;
const MARGIN: f32 = 12.0;
const SIZE: f32 = 7.5;
/// Courier's advance is 0.6 em.
const COLS: usize = ((PAGE_W - 2.0 * MARGIN) / (SIZE * 0.6 * 25.4 / 72.0)) as usize;

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Title,
    Heading,
    Sub,
    Mono,
}

impl Style {
    fn font(self) -> (BuiltinFont, f32) {
        match self {
            Style::Title => (BuiltinFont::HelveticaBold, 16.0),
            Style::Heading => (BuiltinFont::HelveticaBold, 11.0),
            Style::Sub => (BuiltinFont::HelveticaBold, 8.5),
            Style::Mono => (BuiltinFont::Courier, SIZE),
        }
    }

    /// Space the line takes, in mm.
    fn height(self) -> f32 {
        let (_, size) = self.font();
        size * 1.35 * 25.4 / 72.0 + if self == Style::Heading { 2.0 } else { 0.0 }
    }
}

struct Lines(Vec<(Style, String)>);

impl Lines {
    fn push(&mut self, style: Style, text: impl Into<String>) {
        let text: String = text
            .into()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if style != Style::Mono {
            self.0.push((style, text));
            return;
        }
        // Wrap at the page width, continuation lines indented.
        let chars: Vec<char> = text.chars().collect();
        let mut first = true;
        let mut rest = &chars[..];
        loop {
            let width = if first { COLS } else { COLS - 4 };
            let (line, more) = rest.split_at(rest.len().min(width));
            let line: String = line.iter().collect();
            self.0
                .push((style, if first { line } else { format!("    {line}") }));
            first = false;
            rest = more;
            if rest.is_empty() {
                break;
            }
        }
    }

    /// A table with fixed column widths (the last column takes the rest, wrapped).
    fn table(&mut self, widths: &[usize], head: &[&str], rows: &[Vec<String>]) {
        let fmt = |cells: Vec<String>| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                match widths.get(i) {
                    Some(&w) if i + 1 < cells.len() => {
                        let c: String = c.chars().take(w).collect();
                        s.push_str(&format!("{c:<w$} "));
                    }
                    _ => s.push_str(c),
                }
            }
            s
        };
        self.push(
            Style::Mono,
            fmt(head.iter().map(|s| s.to_uppercase()).collect()),
        );
        for r in rows {
            self.push(Style::Mono, fmt(r.clone()));
        }
        if rows.is_empty() {
            self.push(Style::Mono, "(none)");
        }
    }
}

fn lines(r: &Report) -> Lines {
    let mut l = Lines(Vec::new());
    l.push(Style::Title, r.title.clone());
    for s in r.summary_lines() {
        l.push(Style::Mono, s);
    }
    l.push(Style::Heading, "Sessions");
    let rows: Vec<Vec<String>> = r
        .sessions
        .iter()
        .map(|s| {
            vec![
                s.start.chars().take(19).collect(),
                s.user.clone(),
                s.target.clone(),
                s.protocol.clone(),
                s.client.clone().unwrap_or_else(|| "-".into()),
                duration_text(s.duration_secs),
                s.recording.status.as_str().to_owned(),
                s.checkout.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    l.table(
        &[19, 14, 22, 8, 22, 8, 10],
        &[
            "start (UTC)",
            "user",
            "target",
            "proto",
            "client",
            "duration",
            "recording",
            "checkout",
        ],
        &rows,
    );
    for s in &r.sessions {
        l.push(
            Style::Sub,
            format!("{} -> {}   session {}", s.user, s.target, s.id),
        );
        l.push(
            Style::Mono,
            format!(
                "{} to {} ({}), stage {}, from {}",
                s.start,
                s.end.as_deref().unwrap_or("(open)"),
                duration_text(s.duration_secs),
                s.stage,
                s.client.as_deref().unwrap_or("(address not recorded)")
            ),
        );
        l.push(
            Style::Mono,
            format!(
                "Recording: {} - {}",
                s.recording.status.as_str().to_uppercase(),
                s.recording.detail
            ),
        );
        if let Some(h) = &s.recording.sha256 {
            l.push(Style::Mono, format!("SHA-256 {h}"));
        }
        if let Some(t) = &s.terminated {
            l.push(Style::Mono, format!("Ended by request: {t}"));
        }
        for (title, list) in [
            ("command", &s.commands),
            ("policy", &s.policy),
            ("transfer", &s.transfers),
        ] {
            for a in list {
                l.push(
                    Style::Mono,
                    format!("  {} {:<8} {}", a.offset, title, a.text),
                );
            }
        }
        for g in &s.recording.gaps {
            l.push(Style::Mono, format!("  gap: {g}"));
        }
    }
    l.push(Style::Heading, "Privileged access by user");
    let rows: Vec<Vec<String>> = r
        .by_user
        .iter()
        .map(|u| vec![u.user.clone(), super::html::user_line(u)])
        .collect();
    l.table(&[16], &["user", "activity"], &rows);
    for (title, list) in [
        ("Access refused outside access windows", &r.refusals),
        (
            "Sessions ended by a closing access window",
            &r.window_closures,
        ),
    ] {
        l.push(Style::Heading, title);
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|f| vec![f.at.chars().take(19).collect(), f.detail.clone()])
            .collect();
        l.table(&[19], &["at (UTC)", "detail"], &rows);
    }
    l.push(
        Style::Heading,
        "Dormant accounts (no session in the period)",
    );
    match &r.dormant_users {
        Some(u) if u.is_empty() => l.push(Style::Mono, "(none)"),
        Some(u) => l.push(Style::Mono, u.join(", ")),
        None => l.push(Style::Mono, "No user directory was available."),
    }
    l.push(
        Style::Heading,
        "Sessions without an intact recording, or with gaps",
    );
    if r.recording_exceptions.is_empty() {
        l.push(Style::Mono, "(none)");
    }
    for e in &r.recording_exceptions {
        l.push(Style::Mono, e.clone());
    }
    l.push(
        Style::Heading,
        "Recordings cited (SHA-256 of the raw recording)",
    );
    let rows: Vec<Vec<String>> = r
        .recordings
        .iter()
        .map(|c| vec![c.session.clone(), c.sha256.clone()])
        .collect();
    l.table(&[36], &["session", "sha-256"], &rows);
    l.push(Style::Heading, "Notes");
    for n in &r.notes {
        l.push(Style::Mono, format!("- {n}"));
    }
    l.push(
        Style::Mono,
        "This report is sealed: `psm report verify FILE` checks its signature and, with the \
         node's data directory, the recordings' hashes.",
    );
    l
}

fn text_op(ops: &mut Vec<Op>, x: f32, y: f32, style: Style, text: String) {
    let (font, size) = style.font();
    ops.push(Op::StartTextSection);
    ops.push(Op::SetTextCursor {
        pos: Point::new(Mm(x), Mm(y)),
    });
    ops.push(Op::SetFont {
        font: PdfFontHandle::Builtin(font),
        size: Pt(size),
    });
    ops.push(Op::ShowText {
        items: vec![TextItem::Text(text)],
    });
    ops.push(Op::EndTextSection);
}

/// The report as PDF bytes.
pub(super) fn render(r: &Report) -> Result<Vec<u8>, ReportError> {
    let all = lines(r).0;
    let mut pages: Vec<Vec<Op>> = Vec::new();
    let mut ops = Vec::new();
    let mut y = PAGE_H - MARGIN;
    for (style, text) in all {
        let h = style.height();
        // A heading keeps at least three lines under it on its page.
        let need = if matches!(style, Style::Heading | Style::Sub) {
            h + 3.0 * Style::Mono.height()
        } else {
            h
        };
        if y - need < MARGIN + 6.0 {
            pages.push(std::mem::take(&mut ops));
            y = PAGE_H - MARGIN;
        }
        y -= h;
        text_op(&mut ops, MARGIN, y, style, text);
    }
    pages.push(ops);
    let n = pages.len();
    let title = r.title.clone();
    let pages: Vec<PdfPage> = pages
        .into_iter()
        .enumerate()
        .map(|(i, mut ops)| {
            text_op(
                &mut ops,
                MARGIN,
                MARGIN - 4.0,
                Style::Mono,
                format!(
                    "{title}, {} to {} - page {} of {n}",
                    r.query.from,
                    r.query.to,
                    i + 1
                ),
            );
            PdfPage::new(Mm(PAGE_W), Mm(PAGE_H), ops)
        })
        .collect();
    let mut warnings = Vec::new();
    let bytes = PdfDocument::new(&r.title)
        .with_pages(pages)
        .save(&PdfSaveOptions::default(), &mut warnings);
    if bytes.is_empty() {
        return Err(ReportError::Render("printpdf wrote nothing".into()));
    }
    Ok(bytes)
}
