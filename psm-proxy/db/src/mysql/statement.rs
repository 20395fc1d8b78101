//! Commands followed through the MySQL protocol for the recording: what the client asked
//! (`COM_QUERY`, `COM_STMT_PREPARE`/`COM_STMT_EXECUTE` with their parameters,
//! `COM_INIT_DB`) and what the target answered (OK with its affected rows, ERR, result sets
//! with their column names and rows), one [`DbStatement`] per statement.
//!
//! MySQL answers one command at a time, so the tracker follows one response: a
//! [`MysqlTracker::request`] says what the command is, [`MysqlTracker::forwarded`] starts
//! its response, each packet of it goes through [`MysqlTracker::response`] until it says
//! [`ResponseStep::Done`]. Packets are read with `mysql_common` (columns, OK, ERR, binary values).
//! The gateway offers no `DEPRECATE_EOF`, so result sets always end with EOF packets.

use std::collections::HashMap;
use std::time::Instant;

use mysql_common::constants::{ColumnFlags, ColumnType};
use mysql_common::io::ParseBuf;
use mysql_common::packets::Column;
use mysql_common::proto::MyDeserialize;
use mysql_common::value::{BinValue, Value, ValueDeserializer};
use psm_recording::{DbError, DbStatement};

use super::packet::{lenenc_int, parse_err};
use crate::statement::{
    Finished, MAX_PREPARED, MAX_RECORDED_PARAMETER, MAX_RECORDED_PARAMETERS, MAX_RECORDED_TEXT, cut,
};

/// `COM_QUIT`.
pub const COM_QUIT: u8 = 0x01;
/// `COM_INIT_DB`.
pub const COM_INIT_DB: u8 = 0x02;
/// `COM_QUERY`.
pub const COM_QUERY: u8 = 0x03;
/// `COM_FIELD_LIST`.
pub const COM_FIELD_LIST: u8 = 0x04;
/// `COM_STATISTICS`.
pub const COM_STATISTICS: u8 = 0x09;
/// `COM_PROCESS_INFO`.
pub const COM_PROCESS_INFO: u8 = 0x0a;
/// `COM_PROCESS_KILL`.
pub const COM_PROCESS_KILL: u8 = 0x0c;
/// `COM_DEBUG`.
pub const COM_DEBUG: u8 = 0x0d;
/// `COM_PING`.
pub const COM_PING: u8 = 0x0e;
/// `COM_STMT_PREPARE`.
pub const COM_STMT_PREPARE: u8 = 0x16;
/// `COM_STMT_EXECUTE`.
pub const COM_STMT_EXECUTE: u8 = 0x17;
/// `COM_STMT_SEND_LONG_DATA`.
pub const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
/// `COM_STMT_CLOSE`.
pub const COM_STMT_CLOSE: u8 = 0x19;
/// `COM_STMT_RESET`.
pub const COM_STMT_RESET: u8 = 0x1a;
/// `COM_SET_OPTION`.
pub const COM_SET_OPTION: u8 = 0x1b;
/// `COM_STMT_FETCH`.
pub const COM_STMT_FETCH: u8 = 0x1c;
/// `COM_RESET_CONNECTION`.
pub const COM_RESET_CONNECTION: u8 = 0x1f;

/// The MySQL error a refused statement or command gets (`ER_SPECIFIC_ACCESS_DENIED_ERROR`).
pub const REFUSED_ERROR: u16 = 1227;
/// Its SQLSTATE.
pub const REFUSED_STATE: &[u8; 5] = b"42000";

const MORE_RESULTS: u16 = 0x0008;
const CURSOR_EXISTS: u16 = 0x0040;
/// Most column names kept per result.
const MAX_RECORDED_COLUMNS: usize = 4096;

/// What a command from the client is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A statement text to judge before it goes on (`COM_QUERY`, `COM_STMT_PREPARE`).
    Statement(String),
    /// `COM_QUIT`: forward it and end.
    Quit,
    /// A command the gateway does not relay (`COM_CHANGE_USER` would log in as another
    /// account, replication commands), with why.
    Refuse(&'static str),
    /// Anything else: forwarded as is.
    Other,
}

/// Where a response stands after a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseStep {
    /// More packets of the response follow.
    More,
    /// The response is complete: the next packet is the client's.
    Done,
    /// The target asked for a local file (`LOAD DATA LOCAL`): the client's packets go on up
    /// to an empty one, then the target answers.
    LocalInfile,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    First,
    Columns(u64),
    ColumnsEof,
    Rows,
    UntilEof,
    Skip(u64),
}

#[derive(Debug)]
struct Prepared {
    text: String,
    class: String,
    params: u16,
    types: Vec<(ColumnType, ColumnFlags)>,
    long_data: Vec<u16>,
}

#[derive(Debug)]
struct Command {
    code: u8,
    phase: Phase,
    started: Instant,
    /// What the recording gets (`None`: a command not recorded).
    statement: Option<DbStatement>,
    /// A `COM_STMT_PREPARE`'s text and class, remembered once it is answered.
    preparing: Option<(String, String)>,
    /// A `COM_INIT_DB`'s database, current once it is answered.
    init_db: Option<String>,
}

/// Follows one connection's commands (see the module docs).
///
/// ```
/// use psm_proxy_db::mysql::statement::{MysqlTracker, Request, ResponseStep};
/// let mut t = MysqlTracker::new("app");
/// let q = b"\x03select 1";
/// assert_eq!(t.request(q), Request::Statement("select 1".into()));
/// t.forwarded(q, vec!["read"]);
/// // column count, one column, EOF, one row, EOF
/// for p in [&b"\x01"[..], b"\x03def\0\0\0\x011\0\x0c\x3f\0\x01\0\0\0\x08\x81\0\0\0\0",
///           b"\xfe\0\0\x02\0", b"\x011", b"\xfe\0\0\x02\0"] {
///     let _ = t.response(p);
/// }
/// let done = t.take_finished();
/// assert_eq!(done[0].statement.columns, vec!["1".to_owned()]);
/// assert_eq!(done[0].statement.rows_returned, 1);
/// ```
#[derive(Debug)]
pub struct MysqlTracker {
    database: String,
    prepared: HashMap<u32, Prepared>,
    current: Option<Command>,
    finished: Vec<Finished>,
}

impl MysqlTracker {
    /// A tracker for a connection to `database`.
    pub fn new(database: impl Into<String>) -> Self {
        Self {
            database: database.into(),
            prepared: HashMap::new(),
            current: None,
            finished: Vec::new(),
        }
    }

    /// The current database (after `COM_INIT_DB` or `USE`).
    pub fn database(&self) -> &str {
        &self.database
    }

    /// What a command (a logical packet's payload) asks, for the policy.
    pub fn request(&self, payload: &[u8]) -> Request {
        let Some((&code, rest)) = payload.split_first() else {
            return Request::Refuse("an empty command");
        };
        match code {
            COM_QUIT => Request::Quit,
            COM_QUERY | COM_STMT_PREPARE => Request::Statement(text(rest)),
            COM_INIT_DB
            | COM_FIELD_LIST
            | COM_STATISTICS
            | COM_PROCESS_INFO
            | COM_PROCESS_KILL
            | COM_DEBUG
            | COM_PING
            | COM_STMT_EXECUTE
            | COM_STMT_SEND_LONG_DATA
            | COM_STMT_CLOSE
            | COM_STMT_RESET
            | COM_SET_OPTION
            | COM_STMT_FETCH
            | COM_RESET_CONNECTION => Request::Other,
            0x11 => Request::Refuse("COM_CHANGE_USER (another account) is not relayed by PSM"),
            0x12 | 0x13 | 0x14 | 0x15 | 0x1e => {
                Request::Refuse("replication commands are not relayed by PSM")
            }
            _ => Request::Refuse("this command is not relayed by PSM"),
        }
    }

    /// Whether the command last forwarded is waiting for its response.
    pub fn expects_response(&self) -> bool {
        self.current.is_some()
    }

    /// A command goes on to the target; `classes` are the classes of the statement it
    /// carries, if any.
    pub fn forwarded(&mut self, payload: &[u8], classes: Vec<&'static str>) {
        let Some((&code, rest)) = payload.split_first() else {
            return;
        };
        let class = classes.join(",");
        let mut command = Command {
            code,
            phase: Phase::First,
            started: Instant::now(),
            statement: None,
            preparing: None,
            init_db: None,
        };
        match code {
            COM_QUIT | COM_STMT_SEND_LONG_DATA | COM_STMT_CLOSE => {
                self.no_response(code, rest);
                self.current = None;
                return;
            }
            COM_QUERY => {
                let mut s = self.statement(text(rest));
                s.class = class;
                command.statement = Some(s);
            }
            COM_STMT_PREPARE => command.preparing = Some((text(rest), class)),
            COM_INIT_DB => {
                let db = text(rest);
                let mut s = self.statement(format!("USE `{}`", db.replace('`', "``")));
                s.class = "session".into();
                command.statement = Some(s);
                command.init_db = Some(db);
            }
            COM_STMT_EXECUTE => command.statement = Some(self.execute(rest)),
            COM_STMT_FETCH => command.phase = Phase::Rows,
            COM_FIELD_LIST => command.phase = Phase::UntilEof,
            _ => {}
        }
        self.current = Some(command);
    }

    /// A statement the policy refused (not sent to the target): recorded with the refusal.
    pub fn refused(&mut self, payload: &[u8], reason: &str, classes: Vec<&'static str>) {
        let mut s = self.statement(text(payload.get(1..).unwrap_or_default()));
        s.class = classes.join(",");
        s.error = Some(DbError {
            code: format!(
                "{REFUSED_ERROR} ({})",
                String::from_utf8_lossy(REFUSED_STATE)
            ),
            message: reason.to_owned(),
        });
        self.finished.push(Finished {
            statement: s,
            refused: true,
        });
    }

    /// A packet of the target's response (a logical packet's payload).
    pub fn response(&mut self, payload: &[u8]) -> ResponseStep {
        let Some(mut c) = self.current.take() else {
            return ResponseStep::Done;
        };
        let step = self.advance(&mut c, payload);
        if step == ResponseStep::Done {
            self.complete(c);
        } else {
            self.current = Some(c);
        }
        step
    }

    /// Statements finished since the last call, in order.
    pub fn take_finished(&mut self) -> Vec<Finished> {
        std::mem::take(&mut self.finished)
    }

    /// The statement in flight, finished as it stands (the connection closed).
    pub fn close(&mut self) -> Vec<Finished> {
        if let Some(c) = self.current.take() {
            self.complete(c);
        }
        self.take_finished()
    }

    fn advance(&mut self, c: &mut Command, p: &[u8]) -> ResponseStep {
        let first = p.first().copied();
        let is_eof = first == Some(0xfe) && p.len() < 9;
        let is_err = first == Some(0xff);
        if is_err && c.phase != Phase::Skip(0) {
            if let Some((code, state, message)) = parse_err(p) {
                let e = DbError {
                    code: format!("{code} ({state})"),
                    message,
                };
                match (&mut c.statement, &c.preparing) {
                    (Some(s), _) => s.error = Some(e),
                    (None, Some((text, class))) => {
                        let mut s = self.statement(text.clone());
                        s.class = class.clone();
                        s.error = Some(e);
                        c.statement = Some(s);
                        c.preparing = None;
                    }
                    _ => {}
                }
            }
            return ResponseStep::Done;
        }
        match c.phase {
            Phase::First => match first {
                Some(0x00) if c.code == COM_STMT_PREPARE && p.len() >= 12 => {
                    let id = u32::from_le_bytes([p[1], p[2], p[3], p[4]]);
                    let columns = u64::from(u16::from_le_bytes([p[5], p[6]]));
                    let params = u16::from_le_bytes([p[7], p[8]]);
                    if let Some((text, class)) = c.preparing.take()
                        && (self.prepared.len() < MAX_PREPARED || self.prepared.contains_key(&id))
                    {
                        self.prepared.insert(
                            id,
                            Prepared {
                                text,
                                class,
                                params,
                                types: Vec::new(),
                                long_data: Vec::new(),
                            },
                        );
                    }
                    let p = u64::from(params);
                    let rest = p + u64::from(p > 0) + columns + u64::from(columns > 0);
                    if rest == 0 {
                        ResponseStep::Done
                    } else {
                        c.phase = Phase::Skip(rest);
                        ResponseStep::More
                    }
                }
                Some(0x00) => {
                    let (rows, status) = ok_fields(p);
                    if let Some(s) = &mut c.statement {
                        s.rows = Some(s.rows.unwrap_or(0).saturating_add(rows));
                        s.tag.get_or_insert_with(|| "OK".into());
                    }
                    if status & MORE_RESULTS != 0 {
                        ResponseStep::More
                    } else {
                        ResponseStep::Done
                    }
                }
                Some(0xfb) if c.code == COM_QUERY => ResponseStep::LocalInfile,
                _ if is_eof => ResponseStep::Done,
                _ if matches!(c.code, COM_QUERY | COM_STMT_EXECUTE | COM_PROCESS_INFO) => {
                    match lenenc_int(p) {
                        Some((n, _)) if n > 0 => {
                            if let Some(s) = &mut c.statement {
                                s.tag = Some("SELECT".into());
                                s.columns.clear();
                            }
                            c.phase = Phase::Columns(n);
                            ResponseStep::More
                        }
                        _ => ResponseStep::Done,
                    }
                }
                _ => ResponseStep::Done,
            },
            Phase::Columns(left) => {
                if let Some(s) = &mut c.statement
                    && s.columns.len() < MAX_RECORDED_COLUMNS
                    && let Ok(col) = Column::deserialize((), &mut ParseBuf(p))
                {
                    s.columns.push(col.name_str().into_owned());
                }
                c.phase = if left <= 1 {
                    Phase::ColumnsEof
                } else {
                    Phase::Columns(left - 1)
                };
                ResponseStep::More
            }
            Phase::ColumnsEof => {
                if is_eof {
                    if eof_status(p) & CURSOR_EXISTS != 0 {
                        return ResponseStep::Done;
                    }
                    c.phase = Phase::Rows;
                    ResponseStep::More
                } else {
                    c.phase = Phase::Rows;
                    self.row(c);
                    ResponseStep::More
                }
            }
            Phase::Rows => {
                if is_eof {
                    if eof_status(p) & MORE_RESULTS != 0 {
                        c.phase = Phase::First;
                        ResponseStep::More
                    } else {
                        ResponseStep::Done
                    }
                } else {
                    self.row(c);
                    ResponseStep::More
                }
            }
            Phase::UntilEof => {
                if is_eof {
                    ResponseStep::Done
                } else {
                    ResponseStep::More
                }
            }
            Phase::Skip(left) => {
                if left <= 1 {
                    ResponseStep::Done
                } else {
                    c.phase = Phase::Skip(left - 1);
                    ResponseStep::More
                }
            }
        }
    }

    fn row(&mut self, c: &mut Command) {
        if let Some(s) = &mut c.statement {
            s.rows_returned = s.rows_returned.saturating_add(1);
        }
    }

    fn complete(&mut self, c: Command) {
        let Some(mut s) = c.statement else {
            return;
        };
        s.duration_us = u64::try_from(c.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match s.tag.as_deref() {
            Some("SELECT") => {
                s.rows = Some(s.rows.unwrap_or(0).saturating_add(s.rows_returned));
                s.tag = Some(format!("SELECT {}", s.rows_returned));
            }
            Some("OK") => s.tag = Some(format!("OK, {} rows affected", s.rows.unwrap_or(0))),
            _ => {}
        }
        if let Some(db) = c.init_db
            && s.error.is_none()
        {
            self.database = db;
        }
        if s.error.is_none()
            && let Some(db) = use_statement(&s.text)
        {
            self.database = db;
        }
        self.finished.push(Finished {
            statement: s,
            refused: false,
        });
    }

    fn no_response(&mut self, code: u8, rest: &[u8]) {
        let id = rest
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        match (code, id) {
            (COM_STMT_CLOSE, Some(id)) => {
                self.prepared.remove(&id);
            }
            (COM_STMT_SEND_LONG_DATA, Some(id)) => {
                if let (Some(p), Some(b)) = (self.prepared.get_mut(&id), rest.get(4..6)) {
                    let param = u16::from_le_bytes([b[0], b[1]]);
                    if !p.long_data.contains(&param) && p.long_data.len() < 64 {
                        p.long_data.push(param);
                    }
                }
            }
            _ => {}
        }
    }

    fn statement(&self, text: String) -> DbStatement {
        DbStatement {
            database: self.database.clone(),
            text: cut(text, MAX_RECORDED_TEXT),
            ..DbStatement::default()
        }
    }

    /// A `COM_STMT_EXECUTE` (after its code): the prepared statement's text and class and
    /// the parameters, read with the types the client bound.
    fn execute(&mut self, rest: &[u8]) -> DbStatement {
        let Some(id) = rest
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        else {
            return self.statement(String::new());
        };
        let Some(prepared) = self.prepared.get(&id) else {
            let mut s = self.statement(String::new());
            s.prepared = Some(id.to_string());
            return s;
        };
        let mut s = self.statement(prepared.text.clone());
        s.class = prepared.class.clone();
        s.prepared = Some(id.to_string());
        let n = usize::from(prepared.params);
        let values = rest.get(9..).unwrap_or_default();
        if let Some(p) = self.prepared.get_mut(&id) {
            s.parameters = parameters(p, n, values);
            p.long_data.clear();
        }
        s
    }
}

/// The parameters of an execute: `values` is what follows the iteration count.
fn parameters(p: &mut Prepared, n: usize, values: &[u8]) -> Vec<Option<String>> {
    if n == 0 {
        return Vec::new();
    }
    let bitmap_len = n.div_ceil(8);
    let Some(bitmap) = values.get(..bitmap_len) else {
        return Vec::new();
    };
    let mut rest = values.get(bitmap_len..).unwrap_or_default();
    let Some((&bound, after)) = rest.split_first() else {
        return Vec::new();
    };
    rest = after;
    if bound == 1 {
        let Some(types) = rest.get(..n * 2) else {
            return Vec::new();
        };
        p.types = types
            .chunks_exact(2)
            .map(|t| {
                let ty = ColumnType::try_from(t[0]).unwrap_or(ColumnType::MYSQL_TYPE_STRING);
                let flags = if t[1] & 0x80 != 0 {
                    ColumnFlags::UNSIGNED_FLAG
                } else {
                    ColumnFlags::empty()
                };
                (ty, flags)
            })
            .collect();
        rest = &rest[n * 2..];
    }
    let mut buf = ParseBuf(rest);
    let mut out = Vec::new();
    for i in 0..n.min(MAX_RECORDED_PARAMETERS) {
        if bitmap[i / 8] & (1 << (i % 8)) != 0 {
            out.push(None);
            continue;
        }
        if p.long_data.iter().any(|l| usize::from(*l) == i) {
            out.push(Some("<long data>".into()));
            continue;
        }
        let Some(&ctx) = p.types.get(i) else {
            break;
        };
        match ValueDeserializer::<BinValue>::deserialize(ctx, &mut buf) {
            Ok(d) => out.push(Some(render(&d.0))),
            Err(_) => break,
        }
    }
    out
}

fn render(v: &Value) -> String {
    match v {
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => cut(s.to_owned(), MAX_RECORDED_PARAMETER),
            Err(_) => {
                let mut s = String::from("\\x");
                for byte in b.iter().take(MAX_RECORDED_PARAMETER / 2) {
                    s.push_str(&format!("{byte:02x}"));
                }
                s
            }
        },
        Value::NULL => "NULL".into(),
        other => other.as_sql(false).trim_matches('\'').to_owned(),
    }
}

/// Affected rows and status flags of an OK payload.
fn ok_fields(p: &[u8]) -> (u64, u16) {
    let Some((rows, rest)) = p.get(1..).and_then(lenenc_int) else {
        return (0, 0);
    };
    let status = lenenc_int(rest)
        .and_then(|(_, r)| r.get(..2))
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .unwrap_or(0);
    (rows, status)
}

fn eof_status(p: &[u8]) -> u16 {
    p.get(3..5)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .unwrap_or(0)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The database a `USE db` statement names.
fn use_statement(text: &str) -> Option<String> {
    let t = text.trim().trim_end_matches(';').trim();
    let head = t.get(..4)?;
    if !head.eq_ignore_ascii_case("use ") {
        return None;
    }
    let name = t[4..].trim();
    if name.is_empty() || name.contains(char::is_whitespace) && !name.starts_with('`') {
        return None;
    }
    Some(name.trim_matches('`').to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn column(name: &str) -> Vec<u8> {
        let mut p = vec![3];
        p.extend_from_slice(b"def");
        p.extend_from_slice(&[0, 0, 0]);
        p.push(name.len() as u8);
        p.extend_from_slice(name.as_bytes());
        p.push(0);
        p.extend_from_slice(&[0x0c, 0x3f, 0, 1, 0, 0, 0, 0xfd, 0, 0, 0, 0, 0]);
        p
    }

    const EOF: &[u8] = b"\xfe\0\0\x02\0";

    #[test]
    fn a_query_with_rows_and_an_update_with_affected_rows() {
        let mut t = MysqlTracker::new("app");
        t.forwarded(b"\x03select name from t", vec!["read"]);
        for p in [
            b"\x01".to_vec(),
            column("name"),
            EOF.to_vec(),
            b"\x03bob".to_vec(),
            b"\x05alice".to_vec(),
        ] {
            assert_eq!(t.response(&p), ResponseStep::More);
        }
        assert_eq!(t.response(EOF), ResponseStep::Done);
        t.forwarded(b"\x03update t set a = 1 where id = 2", vec!["update"]);
        assert_eq!(
            t.response(b"\x00\x03\x00\x02\x00\x00\x00"),
            ResponseStep::Done
        );
        t.forwarded(b"\x03select * from nope", vec!["read"]);
        assert_eq!(
            t.response(b"\xff\x7a\x04#42S02Table 'app.nope' doesn't exist"),
            ResponseStep::Done
        );
        let done = t.take_finished();
        assert_eq!(done.len(), 3);
        assert_eq!(done[0].statement.columns, vec!["name".to_owned()]);
        assert_eq!(
            (done[0].statement.rows_returned, done[0].statement.rows),
            (2, Some(2))
        );
        assert_eq!(done[1].statement.rows, Some(3));
        let e = done[2].statement.error.as_ref().unwrap();
        assert_eq!(e.code, "1146 (42S02)");
        assert!(e.message.contains("doesn't exist"));
    }

    #[test]
    fn a_prepared_statement_records_its_parameters() {
        let mut t = MysqlTracker::new("app");
        t.forwarded(
            b"\x16select v from t where id = ? and name = ?",
            vec!["read"],
        );
        // PREPARE_OK: id 7, 1 column, 2 params; then 2 param defs + EOF, 1 column + EOF.
        assert_eq!(
            t.response(b"\x00\x07\0\0\0\x01\0\x02\0\0\0\0"),
            ResponseStep::More
        );
        for p in [column("?"), column("?"), EOF.to_vec(), column("v")] {
            assert_eq!(t.response(&p), ResponseStep::More);
        }
        assert_eq!(t.response(EOF), ResponseStep::Done);
        // EXECUTE id 7, no cursor, iteration 1, bitmap 0, bound 1, LONGLONG + VAR_STRING.
        let mut exec = b"\x17\x07\0\0\0\0\x01\0\0\0\x00\x01\x08\x00\xfd\x00".to_vec();
        exec.extend_from_slice(&42u64.to_le_bytes());
        exec.extend_from_slice(b"\x03bob");
        t.forwarded(&exec, vec![]);
        for p in [
            b"\x01".to_vec(),
            column("v"),
            EOF.to_vec(),
            b"\x00\x00\x01x".to_vec(),
        ] {
            assert_eq!(t.response(&p), ResponseStep::More);
        }
        assert_eq!(t.response(EOF), ResponseStep::Done);
        let done = t.take_finished();
        assert_eq!(done.len(), 1);
        let s = &done[0].statement;
        assert_eq!(s.text, "select v from t where id = ? and name = ?");
        assert_eq!(s.prepared.as_deref(), Some("7"));
        assert_eq!(
            s.parameters,
            vec![Some("42".to_owned()), Some("bob".to_owned())]
        );
        assert_eq!(s.class, "read");
        assert_eq!(s.rows_returned, 1);
    }

    #[test]
    fn init_db_and_use_change_the_database() {
        let mut t = MysqlTracker::new("");
        t.forwarded(b"\x02shop", vec![]);
        assert_eq!(t.response(b"\x00\0\0\x02\0\0\0"), ResponseStep::Done);
        assert_eq!(t.database(), "shop");
        t.forwarded(b"\x03USE `other`", vec!["other"]);
        t.response(b"\x00\0\0\x02\0\0\0");
        assert_eq!(t.database(), "other");
        let done = t.take_finished();
        assert_eq!(done[0].statement.text, "USE `shop`");
        assert_eq!(done[1].statement.database, "shop");
    }

    #[test]
    fn change_user_and_replication_are_refused() {
        let t = MysqlTracker::new("");
        assert!(matches!(t.request(b"\x11root\0"), Request::Refuse(_)));
        assert!(matches!(t.request(b"\x12\0\0"), Request::Refuse(_)));
        assert!(matches!(t.request(b""), Request::Refuse(_)));
        assert_eq!(t.request(b"\x01"), Request::Quit);
    }

    proptest::proptest! {
        #[test]
        fn any_packets_never_panic(
            packets in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 0..40)
        ) {
            let mut t = MysqlTracker::new("db");
            for (i, p) in packets.iter().enumerate() {
                if i % 5 == 0 {
                    let _ = t.request(p);
                    t.forwarded(p, vec![]);
                } else {
                    let _ = t.response(p);
                }
            }
            let _ = t.close();
        }
    }
}
