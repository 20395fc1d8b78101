//! Statements followed through the protocol: what the client asked (simple `Query`, or
//! `Parse`/`Bind`/`Execute`), what the target answered (`RowDescription`, `DataRow`,
//! `CommandComplete`, `ErrorResponse`, `ReadyForQuery`), paired in order into one
//! [`DbStatement`] per statement for the recording.
//!
//! The messages are decoded with `pgwire`. Responses come back in the order requests were
//! sent, so the tracker keeps the statements in flight in a queue: a `Query` is one entry
//! (finished by its `ReadyForQuery`), each `Execute` one (finished by its
//! `CommandComplete`, `EmptyQueryResponse`, `PortalSuspended` or `ErrorResponse`). A
//! statement the policy refused is sent on as text the target cannot parse, so the target
//! itself answers it with an error in the right place of the stream; the tracker swaps that
//! error for the gateway's ([`Backend::Replace`]).

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use pgwire::messages::extendedquery::{Bind, Close, Execute, Parse};
use pgwire::messages::response::ErrorResponse;
use pgwire::messages::simplequery::Query;
use pgwire::messages::{DecodeContext, Message, ProtocolVersion};
use psm_recording::{DbError, DbStatement};

use crate::wire::{Frame, error_fields};

/// The longest statement text kept in a recording (longer ones are cut, marked `...`).
pub const MAX_RECORDED_TEXT: usize = 1 << 20;
/// The longest parameter value kept (as text).
pub const MAX_RECORDED_PARAMETER: usize = 4096;
/// Most parameters kept per statement.
pub const MAX_RECORDED_PARAMETERS: usize = 256;
/// Most prepared statements and portals followed per connection; past it, new ones are
/// recorded without their text.
pub const MAX_PREPARED: usize = 10_000;
/// Most statements in flight followed; past it, the oldest are recorded unanswered.
pub const MAX_IN_FLIGHT: usize = 100_000;

/// The text sent to the target in place of a refused statement: it cannot parse, so the
/// target answers with an error exactly where the statement's answer belongs.
pub(crate) const REFUSED_TEXT: &str = "PSM_REFUSED_STATEMENT";

/// The SQLSTATE of a refusal (insufficient_privilege).
pub const REFUSED_CODE: &str = "42501";

/// What a message from the client is, for the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A statement text to judge before it goes on (`Query`, `Parse`).
    Statement(String),
    /// Anything else: forwarded as is.
    Other,
}

/// What to do with a message from the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Forward it.
    Forward,
    /// Forward these bytes instead (a refusal's error in place of the target's).
    Replace(Bytes),
}

#[derive(Debug)]
enum Kind {
    /// A simple `Query`: ends at `ReadyForQuery`.
    Simple,
    /// An `Execute`: ends at its completion message.
    Execute,
    /// A refused `Parse`: ends at the target's error, which is swapped for the refusal.
    RefusedParse,
}

#[derive(Debug)]
struct InFlight {
    kind: Kind,
    /// The `Sync` (or `Query`) batch it belongs to.
    batch: u64,
    started: Instant,
    statement: DbStatement,
    refusal: Option<String>,
    done: bool,
}

/// A bound portal: its prepared statement's name, text and parameters.
type Portal = (Option<String>, String, Vec<Option<String>>);

/// A statement finished, for the recording and the live view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// What the recording gets.
    pub statement: DbStatement,
    /// Whether the gateway refused it.
    pub refused: bool,
}

/// Follows one connection's statements (see the module docs).
///
/// ```
/// use bytes::{BufMut, BytesMut};
/// use psm_proxy_db::statement::{Request, StatementTracker};
/// use psm_proxy_db::wire::split_message;
/// let mut t = StatementTracker::new("app");
/// let mut q = BytesMut::new();
/// q.put_u8(b'Q'); q.put_i32(4 + 9); q.put_slice(b"select 1\0");
/// let f = split_message(&mut q, 1 << 20).unwrap().unwrap();
/// assert_eq!(t.request(&f), Request::Statement("select 1".into()));
/// t.forwarded(&f, Vec::new());
/// for reply in [&b"C\0\0\0\x0dSELECT 1\0"[..], b"Z\0\0\0\x05I"] {
///     let mut b = BytesMut::from(reply);
///     t.response(&split_message(&mut b, 1 << 20).unwrap().unwrap());
/// }
/// let done = t.take_finished();
/// assert_eq!(done[0].statement.tag.as_deref(), Some("SELECT 1"));
/// assert_eq!(done[0].statement.rows, Some(1));
/// ```
#[derive(Debug)]
pub struct StatementTracker {
    database: String,
    ctx: DecodeContext,
    prepared: HashMap<String, String>,
    portals: HashMap<String, Portal>,
    in_flight: VecDeque<InFlight>,
    batch_sent: u64,
    batch_done: u64,
    last_columns: Vec<String>,
    finished: Vec<Finished>,
}

impl StatementTracker {
    /// A tracker for a connection to `database`.
    pub fn new(database: impl Into<String>) -> Self {
        let mut ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
        ctx.awaiting_frontend_ssl = false;
        ctx.awaiting_frontend_startup = false;
        Self {
            database: database.into(),
            ctx,
            prepared: HashMap::new(),
            portals: HashMap::new(),
            in_flight: VecDeque::new(),
            batch_sent: 0,
            batch_done: 0,
            last_columns: Vec::new(),
            finished: Vec::new(),
        }
    }

    /// Statements in flight (sent, not answered yet).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// What a client message asks, for the policy: a statement text to judge, or nothing.
    pub fn request(&self, frame: &Frame) -> Request {
        match frame.tag {
            b'Q' => match decode::<Query>(frame, &self.ctx) {
                Some(q) => Request::Statement(q.query),
                None => Request::Other,
            },
            b'P' => match decode::<Parse>(frame, &self.ctx) {
                Some(p) => Request::Statement(p.query),
                None => Request::Other,
            },
            _ => Request::Other,
        }
    }

    /// A client message goes on to the target as it is; `classes` are the classes of the
    /// statement it carries, if any.
    pub fn forwarded(&mut self, frame: &Frame, classes: Vec<&'static str>) {
        let class = classes.join(",");
        match frame.tag {
            b'Q' => {
                if let Some(q) = decode::<Query>(frame, &self.ctx) {
                    let mut s = self.statement(q.query);
                    s.class = class;
                    self.push(Kind::Simple, s, None);
                }
                self.batch_sent += 1;
            }
            b'P' => {
                if let Some(p) = decode::<Parse>(frame, &self.ctx) {
                    self.remember_prepared(p.name.unwrap_or_default(), p.query);
                }
            }
            b'B' => {
                if let Some(b) = decode::<Bind>(frame, &self.ctx) {
                    let name = b.statement_name.clone().unwrap_or_default();
                    let text = self.prepared.get(&name).cloned().unwrap_or_default();
                    let params = render_parameters(&b);
                    let portal = b.portal_name.unwrap_or_default();
                    if self.portals.len() < MAX_PREPARED || self.portals.contains_key(&portal) {
                        self.portals
                            .insert(portal, (b.statement_name, text, params));
                    }
                }
            }
            b'E' => {
                if let Some(e) = decode::<Execute>(frame, &self.ctx) {
                    let portal = e.name.unwrap_or_default();
                    let (prepared, text, parameters) =
                        self.portals.get(&portal).cloned().unwrap_or_default();
                    let mut s = self.statement(text);
                    s.prepared = prepared.filter(|n| !n.is_empty());
                    s.parameters = parameters;
                    s.class = crate::classify::classify(&s.text)
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(",");
                    self.push(Kind::Execute, s, None);
                }
            }
            b'C' => {
                if let Some(c) = decode::<Close>(frame, &self.ctx) {
                    let name = c.name.unwrap_or_default();
                    match c.target_type {
                        b'S' => {
                            self.prepared.remove(&name);
                        }
                        _ => {
                            self.portals.remove(&name);
                        }
                    }
                }
            }
            b'S' => self.batch_sent += 1,
            _ => {}
        }
    }

    /// A client message that carried a statement the policy refused: returns the message to
    /// send to the target instead (the same kind of message with text the target cannot
    /// parse), and remembers to answer with `reason`.
    pub fn refused(&mut self, frame: &Frame, reason: &str, classes: Vec<&'static str>) -> Bytes {
        let class = classes.join(",");
        let mut out = BytesMut::new();
        match frame.tag {
            b'Q' => {
                let text = decode::<Query>(frame, &self.ctx)
                    .map(|q| q.query)
                    .unwrap_or_default();
                let mut s = self.statement(text);
                s.class = class;
                self.push(Kind::Simple, s, Some(reason.to_owned()));
                self.batch_sent += 1;
                let _ = Query::new(REFUSED_TEXT.to_owned()).encode(&mut out);
            }
            _ => {
                let (name, text) = decode::<Parse>(frame, &self.ctx)
                    .map(|p| (p.name, p.query))
                    .unwrap_or_default();
                let mut s = self.statement(text);
                s.class = class;
                s.prepared = name.clone().filter(|n| !n.is_empty());
                self.push(Kind::RefusedParse, s, Some(reason.to_owned()));
                let _ = Parse::new(name, REFUSED_TEXT.to_owned(), Vec::new()).encode(&mut out);
            }
        }
        out.freeze()
    }

    /// A message from the target: follows the statement it answers.
    pub fn response(&mut self, frame: &Frame) -> Backend {
        let mut verdict = Backend::Forward;
        match frame.tag {
            b'T' => {
                let columns = row_description(frame.body());
                if let Some(head) = self.head()
                    && head.statement.columns.is_empty()
                {
                    head.statement.columns = columns.clone();
                }
                self.last_columns = columns;
            }
            b'D' => {
                if let Some(head) = self.head() {
                    head.statement.rows_returned = head.statement.rows_returned.saturating_add(1);
                }
            }
            b'C' => {
                let tag = cstring(frame.body());
                if let Some(head) = self.head() {
                    head.statement.rows = head.statement.rows.map_or(rows_of(&tag), |r| {
                        Some(r.saturating_add(rows_of(&tag).unwrap_or(0)))
                    });
                    head.statement.tag = Some(tag);
                    if !matches!(head.kind, Kind::Simple) {
                        self.finish_head();
                    }
                }
            }
            b'I' | b's' => {
                if let Some(head) = self.head()
                    && !matches!(head.kind, Kind::Simple)
                {
                    self.finish_head();
                }
            }
            b'E' => {
                let fields = error_fields(frame.body());
                let field = |c: u8| {
                    fields
                        .iter()
                        .find(|(k, _)| *k == c)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                if let Some(head) = self.head() {
                    match head.refusal.clone() {
                        Some(reason) => {
                            head.statement.error = Some(DbError {
                                code: REFUSED_CODE.to_owned(),
                                message: reason.clone(),
                            });
                            verdict = Backend::Replace(refusal_error(&reason));
                        }
                        None => {
                            if head.statement.error.is_none() {
                                head.statement.error = Some(DbError {
                                    code: field(b'C'),
                                    message: field(b'M'),
                                });
                            }
                        }
                    }
                    if !matches!(head.kind, Kind::Simple) {
                        self.finish_head();
                    }
                }
            }
            b'Z' => {
                let batch = self.batch_done;
                while let Some(first) = self.in_flight.front() {
                    if first.batch > batch {
                        break;
                    }
                    if let Some(f) = self.in_flight.pop_front()
                        && (f.done || matches!(f.kind, Kind::Simple))
                    {
                        self.emit(f);
                    }
                }
                self.batch_done = batch.saturating_add(1);
            }
            _ => {}
        }
        verdict
    }

    /// Statements finished since the last call, in order.
    pub fn take_finished(&mut self) -> Vec<Finished> {
        std::mem::take(&mut self.finished)
    }

    /// Every statement still in flight, finished as it stands (the connection closed).
    pub fn close(&mut self) -> Vec<Finished> {
        while let Some(f) = self.in_flight.pop_front() {
            self.emit(f);
        }
        self.take_finished()
    }

    fn statement(&self, text: String) -> DbStatement {
        DbStatement {
            database: self.database.clone(),
            text: cut(text, MAX_RECORDED_TEXT),
            ..DbStatement::default()
        }
    }

    fn remember_prepared(&mut self, name: String, text: String) {
        if self.prepared.len() < MAX_PREPARED || self.prepared.contains_key(&name) {
            self.prepared.insert(name, cut(text, MAX_RECORDED_TEXT));
        }
    }

    fn push(&mut self, kind: Kind, statement: DbStatement, refusal: Option<String>) {
        if self.in_flight.len() >= MAX_IN_FLIGHT
            && let Some(old) = self.in_flight.pop_front()
        {
            self.emit(old);
        }
        self.in_flight.push_back(InFlight {
            kind,
            batch: self.batch_sent,
            started: Instant::now(),
            statement,
            refusal,
            done: false,
        });
    }

    /// The oldest statement not yet answered.
    fn head(&mut self) -> Option<&mut InFlight> {
        self.in_flight.iter_mut().find(|f| !f.done)
    }

    fn finish_head(&mut self) {
        // Finished statements at the front are emitted at once; one behind an unanswered
        // statement waits (it cannot be: answers come in order).
        if let Some(h) = self.in_flight.iter_mut().find(|f| !f.done) {
            h.done = true;
            h.statement.duration_us = duration_us(h.started);
        }
        while self.in_flight.front().is_some_and(|f| f.done) {
            if let Some(f) = self.in_flight.pop_front() {
                self.emit(f);
            }
        }
    }

    fn emit(&mut self, mut f: InFlight) {
        if f.statement.duration_us == 0 {
            f.statement.duration_us = duration_us(f.started);
        }
        if f.statement.columns.is_empty()
            && f.statement.rows_returned > 0
            && matches!(f.kind, Kind::Execute)
        {
            f.statement.columns = self.last_columns.clone();
        }
        if let Some(reason) = &f.refusal
            && f.statement.error.is_none()
        {
            f.statement.error = Some(DbError {
                code: REFUSED_CODE.to_owned(),
                message: reason.clone(),
            });
        }
        self.finished.push(Finished {
            refused: f.refusal.is_some(),
            statement: f.statement,
        });
    }
}

fn duration_us(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

fn decode<M: Message>(frame: &Frame, ctx: &DecodeContext) -> Option<M> {
    crate::wire::decode(&frame.bytes, ctx)
}

/// The ErrorResponse a client gets for a refused statement.
pub fn refusal_error(reason: &str) -> Bytes {
    let mut out = BytesMut::new();
    let e = ErrorResponse::new(vec![
        (b'S', "ERROR".to_owned()),
        (b'V', "ERROR".to_owned()),
        (b'C', REFUSED_CODE.to_owned()),
        (b'M', format!("PSM: {reason}")),
    ]);
    if e.encode(&mut out).is_err() {
        out.clear();
    }
    out.freeze()
}

/// Parameters as text: text-format ones as UTF-8, binary ones as `\x` and hex.
fn render_parameters(b: &Bind) -> Vec<Option<String>> {
    let formats = &b.parameter_format_codes;
    b.parameters
        .iter()
        .take(MAX_RECORDED_PARAMETERS)
        .enumerate()
        .map(|(i, p)| {
            let binary = match formats.len() {
                0 => false,
                1 => formats[0] == 1,
                _ => formats.get(i).is_some_and(|f| *f == 1),
            };
            p.as_ref().map(|v| {
                if binary {
                    let mut s = String::from("\\x");
                    for byte in v.iter().take(MAX_RECORDED_PARAMETER / 2) {
                        s.push_str(&format!("{byte:02x}"));
                    }
                    s
                } else {
                    cut(
                        String::from_utf8_lossy(v).into_owned(),
                        MAX_RECORDED_PARAMETER,
                    )
                }
            })
        })
        .collect()
}

/// The column names of a RowDescription body (read bounded: at most what the body holds).
fn row_description(body: &[u8]) -> Vec<String> {
    let Some(count) = body.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut rest = body.get(2..).unwrap_or_default();
    for _ in 0..count {
        let Some(end) = rest.iter().position(|b| *b == 0) else {
            break;
        };
        out.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        // name, NUL, then 18 bytes of table oid, column, type oid, size, modifier, format.
        rest = rest.get(end + 1 + 18..).unwrap_or_default();
    }
    out
}

fn cstring(body: &[u8]) -> String {
    let end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
    String::from_utf8_lossy(&body[..end]).into_owned()
}

/// Rows a command tag counts (`INSERT 0 5`, `UPDATE 3`, `SELECT 2`, `COPY 10`).
pub fn rows_of(tag: &str) -> Option<u64> {
    let mut words = tag.split_ascii_whitespace();
    let verb = words.next()?;
    let counted = matches!(
        verb,
        "INSERT" | "UPDATE" | "DELETE" | "SELECT" | "MOVE" | "FETCH" | "COPY" | "MERGE"
    );
    if !counted {
        return None;
    }
    tag.rsplit(' ').next()?.parse().ok()
}

pub(crate) fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

/// Builds a message of `tag` with `body` (tests, fuzzing).
pub fn message(tag: u8, body: &[u8]) -> Frame {
    let mut b = BytesMut::with_capacity(body.len() + 5);
    b.put_u8(tag);
    b.put_i32(i32::try_from(body.len() + 4).unwrap_or(i32::MAX));
    b.put_slice(body);
    Frame {
        tag,
        bytes: b.freeze(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn encode(m: impl Message) -> Frame {
        let mut b = BytesMut::new();
        m.encode(&mut b).unwrap();
        let mut b2 = b.clone();
        crate::wire::split_message(&mut b2, 1 << 20)
            .unwrap()
            .unwrap()
    }

    fn row_desc(names: &[&str]) -> Frame {
        let mut body = BytesMut::new();
        body.put_u16(names.len() as u16);
        for n in names {
            body.put_slice(n.as_bytes());
            body.put_u8(0);
            body.put_slice(&[0u8; 18]);
        }
        message(b'T', &body)
    }

    #[test]
    fn extended_protocol_with_parameters() {
        let mut t = StatementTracker::new("app");
        let parse = encode(Parse::new(
            Some("s1".into()),
            "select name from t where id = $1".into(),
            vec![],
        ));
        assert_eq!(
            t.request(&parse),
            Request::Statement("select name from t where id = $1".into())
        );
        t.forwarded(&parse, vec!["read"]);
        let bind = encode(Bind::new(
            None,
            Some("s1".into()),
            vec![],
            vec![Some(Bytes::from_static(b"42"))],
            vec![],
        ));
        t.forwarded(&bind, vec![]);
        t.forwarded(&encode(Execute::new(None, 0)), vec![]);
        t.forwarded(&message(b'S', b""), vec![]);
        for f in [
            message(b'1', b""),
            message(b'2', b""),
            row_desc(&["name"]),
            message(b'D', b"\0\x01\0\0\0\x01x"),
            message(b'C', b"SELECT 1\0"),
            message(b'Z', b"I"),
        ] {
            assert_eq!(t.response(&f), Backend::Forward);
        }
        let done = t.take_finished();
        assert_eq!(done.len(), 1);
        let s = &done[0].statement;
        assert_eq!(s.text, "select name from t where id = $1");
        assert_eq!(s.prepared.as_deref(), Some("s1"));
        assert_eq!(s.parameters, vec![Some("42".to_owned())]);
        assert_eq!(s.columns, vec!["name".to_owned()]);
        assert_eq!((s.rows_returned, s.rows), (1, Some(1)));
        assert_eq!(s.database, "app");
    }

    #[test]
    fn a_refused_query_gets_the_gateways_error_in_place_of_the_targets() {
        let mut t = StatementTracker::new("app");
        let q = encode(Query::new("drop table users".into()));
        let sent = t.refused(&q, "refused by policy rule no-drop", vec!["drop"]);
        assert!(!sent.windows(4).any(|w| w == b"drop"));
        let err = message(b'E', b"SERROR\0C42601\0Msyntax error\0\0");
        let Backend::Replace(bytes) = t.response(&err) else {
            panic!("not replaced")
        };
        assert!(String::from_utf8_lossy(&bytes).contains("no-drop"));
        assert_eq!(t.response(&message(b'Z', b"I")), Backend::Forward);
        let done = t.take_finished();
        assert!(done[0].refused);
        assert_eq!(done[0].statement.error.as_ref().unwrap().code, REFUSED_CODE);
        assert_eq!(done[0].statement.text, "drop table users");
    }

    #[test]
    fn an_error_in_a_pipeline_drops_the_skipped_statements() {
        let mut t = StatementTracker::new("app");
        for text in ["select 1/0", "select 2"] {
            t.forwarded(&encode(Parse::new(None, text.into(), vec![])), vec![]);
            t.forwarded(
                &encode(Bind::new(None, None, vec![], vec![], vec![])),
                vec![],
            );
            t.forwarded(&encode(Execute::new(None, 0)), vec![]);
        }
        t.forwarded(&message(b'S', b""), vec![]);
        t.response(&message(b'E', b"SERROR\0C22012\0Mdivision by zero\0\0"));
        t.response(&message(b'Z', b"E"));
        let done = t.take_finished();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].statement.error.as_ref().unwrap().code, "22012");
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn tags_count_rows() {
        assert_eq!(rows_of("INSERT 0 5"), Some(5));
        assert_eq!(rows_of("UPDATE 3"), Some(3));
        assert_eq!(rows_of("CREATE TABLE"), None);
        assert_eq!(rows_of(""), None);
    }

    proptest::proptest! {
        #[test]
        fn any_messages_in_any_order_never_panic(
            msgs in proptest::collection::vec(
                (proptest::sample::select(b"QPBECSTDZIsEX".to_vec()), proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)),
                0..40)
        ) {
            let mut t = StatementTracker::new("db");
            for (i, (tag, body)) in msgs.iter().enumerate() {
                let f = message(*tag, body);
                if i % 2 == 0 {
                    let _ = t.request(&f);
                    if i % 3 == 0 && matches!(tag, b'Q' | b'P') {
                        let _ = t.refused(&f, "no", vec![]);
                    } else {
                        t.forwarded(&f, vec![]);
                    }
                } else {
                    let _ = t.response(&f);
                }
            }
            let _ = t.close();
        }
    }
}
