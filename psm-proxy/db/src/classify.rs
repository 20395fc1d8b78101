//! What a statement does, as `sqlparser` reads it: the classes a query policy names.
//!
//! Each statement of a query string gets one [`SqlClass`]; the policy judges the line
//! `sql:CLASS` for each (see [`SqlClass::policy_line`]) beside the statement's text, so a
//! rule `glob = "sql:delete-without-where"` catches `DELETE FROM orders` however it is
//! spelled, and a regex rule on the text catches the rest. A string `sqlparser` cannot
//! read is classed from its first keywords (its tokenizer), and [`SqlClass::Unparsed`] when
//! even that fails.

use sqlparser::ast::{CopyTarget, Statement};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

/// The longest statement text classified (bytes); longer ones are [`SqlClass::Unparsed`].
pub const MAX_CLASSIFIED: usize = 256 * 1024;

/// How deep `sqlparser` may recurse into nested expressions (its stack is bounded by it).
const RECURSION_LIMIT: usize = 64;

/// The class of one statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SqlClass {
    /// `SELECT`, `VALUES`, `WITH ... SELECT`, `SHOW`, `EXPLAIN`.
    Read,
    /// `INSERT`.
    Insert,
    /// `UPDATE ... WHERE`.
    Update,
    /// `UPDATE` without `WHERE`: every row.
    UpdateWithoutWhere,
    /// `DELETE ... WHERE`.
    Delete,
    /// `DELETE` without `WHERE`: every row.
    DeleteWithoutWhere,
    /// `DROP` of anything.
    Drop,
    /// `TRUNCATE`.
    Truncate,
    /// `GRANT`.
    Grant,
    /// `REVOKE`.
    Revoke,
    /// `ALTER SYSTEM`: the server's configuration.
    AlterSystem,
    /// `COPY ... TO PROGRAM` / `FROM PROGRAM`: a shell command on the database server.
    CopyProgram,
    /// MySQL's `LOAD DATA LOCAL INFILE` / `LOAD XML LOCAL`: the server reads a file from the
    /// client's machine.
    LoadLocalFile,
    /// Any other `COPY`.
    Copy,
    /// `CREATE`, `ALTER` (schema changes).
    Ddl,
    /// `BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`.
    Transaction,
    /// `SET`, `RESET` and other session settings.
    Session,
    /// Something else `sqlparser` read.
    Other,
    /// A statement neither the parser nor the keyword fallback could read.
    Unparsed,
}

impl SqlClass {
    /// Its name (`delete-without-where`).
    pub const fn as_str(self) -> &'static str {
        match self {
            SqlClass::Read => "read",
            SqlClass::Insert => "insert",
            SqlClass::Update => "update",
            SqlClass::UpdateWithoutWhere => "update-without-where",
            SqlClass::Delete => "delete",
            SqlClass::DeleteWithoutWhere => "delete-without-where",
            SqlClass::Drop => "drop",
            SqlClass::Truncate => "truncate",
            SqlClass::Grant => "grant",
            SqlClass::Revoke => "revoke",
            SqlClass::AlterSystem => "alter-system",
            SqlClass::CopyProgram => "copy-program",
            SqlClass::LoadLocalFile => "load-local-file",
            SqlClass::Copy => "copy",
            SqlClass::Ddl => "ddl",
            SqlClass::Transaction => "transaction",
            SqlClass::Session => "session",
            SqlClass::Other => "other",
            SqlClass::Unparsed => "unparsed",
        }
    }

    /// The line the policy judges for this class: `sql:` and the name.
    pub fn policy_line(self) -> String {
        format!("sql:{}", self.as_str())
    }
}

/// The built-in query rules (`[postgres] default_rules = true` adds them to the policy):
/// statements that destroy data or reach beyond the database wait for an administrator's
/// approval; grants raise an alert. They are policy rules like any other (`docs/policy.md`),
/// judged on the `sql:CLASS` lines.
pub const DEFAULT_RULES: &str = r#"
[[rule]]
name = "sql-drop"
glob = "sql:drop"
action = "require-approval"
message = "DROP needs an administrator's approval"

[[rule]]
name = "sql-truncate"
glob = "sql:truncate"
action = "require-approval"
message = "TRUNCATE needs an administrator's approval"

[[rule]]
name = "sql-delete-without-where"
glob = "sql:delete-without-where"
action = "require-approval"
message = "DELETE without WHERE needs an administrator's approval"

[[rule]]
name = "sql-update-without-where"
glob = "sql:update-without-where"
action = "require-approval"
message = "UPDATE without WHERE needs an administrator's approval"

[[rule]]
name = "sql-alter-system"
glob = "sql:alter-system"
action = "require-approval"
message = "ALTER SYSTEM needs an administrator's approval"

[[rule]]
name = "sql-copy-program"
glob = "sql:copy-program"
action = "require-approval"
message = "COPY ... PROGRAM runs a command on the database server"

[[rule]]
name = "sql-load-local-file"
glob = "sql:load-local-file"
action = "require-approval"
message = "LOAD DATA LOCAL reads a file from the client's machine"

[[rule]]
name = "sql-grant"
glob = "sql:grant"
action = "alert"

[[rule]]
name = "sql-revoke"
glob = "sql:revoke"
action = "alert"
"#;

/// [`DEFAULT_RULES`] as policy rules.
pub fn default_rules() -> Vec<psm_core::policy::RuleConfig> {
    psm_core::policy::PolicyConfig::from_toml(DEFAULT_RULES)
        .map(|c| c.rules)
        .unwrap_or_default()
}

/// Classes every statement of `sql` (a query string may hold several, `;`-separated).
///
/// ```
/// use psm_proxy_db::classify::{classify, SqlClass};
/// assert_eq!(classify("DELETE FROM orders"), vec![SqlClass::DeleteWithoutWhere]);
/// assert_eq!(classify("delete from orders where id = 1"), vec![SqlClass::Delete]);
/// assert_eq!(classify("select 1; drop table t"), vec![SqlClass::Read, SqlClass::Drop]);
/// assert_eq!(classify("ALTER SYSTEM SET work_mem = '1GB'"), vec![SqlClass::AlterSystem]);
/// assert_eq!(classify("COPY t TO PROGRAM 'sh -c id'"), vec![SqlClass::CopyProgram]);
/// ```
pub fn classify(sql: &str) -> Vec<SqlClass> {
    classify_in(sql, &PostgreSqlDialect {})
}

/// [`classify`] for MySQL and MariaDB statements (`sqlparser`'s MySQL dialect: backquoted
/// names, `LOAD DATA LOCAL INFILE`).
///
/// ```
/// use psm_proxy_db::classify::{classify_mysql, SqlClass};
/// assert_eq!(classify_mysql("DROP TABLE `t`"), vec![SqlClass::Drop]);
/// assert_eq!(classify_mysql("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t"),
///     vec![SqlClass::LoadLocalFile]);
/// ```
pub fn classify_mysql(sql: &str) -> Vec<SqlClass> {
    classify_in(sql, &MySqlDialect {})
}

fn classify_in(sql: &str, dialect: &dyn Dialect) -> Vec<SqlClass> {
    if sql.len() > MAX_CLASSIFIED {
        return vec![SqlClass::Unparsed];
    }
    let parsed = Parser::new(dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements());
    match parsed {
        Ok(statements) if !statements.is_empty() => statements.iter().map(class_of).collect(),
        Ok(_) => Vec::new(),
        Err(_) => by_keywords(sql, dialect),
    }
}

fn class_of(s: &Statement) -> SqlClass {
    match s {
        Statement::Query(_) | Statement::ShowVariable { .. } | Statement::Explain { .. } => {
            SqlClass::Read
        }
        Statement::Insert(_) => SqlClass::Insert,
        Statement::Update(u) if u.selection.is_none() => SqlClass::UpdateWithoutWhere,
        Statement::Update(_) => SqlClass::Update,
        Statement::Delete(d) if d.selection.is_none() => SqlClass::DeleteWithoutWhere,
        Statement::Delete(_) => SqlClass::Delete,
        Statement::Drop { .. } | Statement::DropFunction(_) => SqlClass::Drop,
        Statement::Truncate(_) => SqlClass::Truncate,
        Statement::Grant(_) => SqlClass::Grant,
        Statement::Revoke(_) => SqlClass::Revoke,
        Statement::Copy {
            target: CopyTarget::Program { .. },
            ..
        } => SqlClass::CopyProgram,
        Statement::Copy { .. } => SqlClass::Copy,
        Statement::LoadData { local: true, .. } => SqlClass::LoadLocalFile,
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => SqlClass::Transaction,
        Statement::Set(_) => SqlClass::Session,
        other => {
            let text = other.to_string();
            let head = text.trim_start().to_ascii_uppercase();
            if head.starts_with("CREATE") || head.starts_with("ALTER") {
                SqlClass::Ddl
            } else if head.starts_with("DROP") {
                SqlClass::Drop
            } else {
                SqlClass::Other
            }
        }
    }
}

/// Classes each `;`-separated statement from its first keywords (what the parser does not
/// know: `ALTER SYSTEM`, PostgreSQL-only forms), read with `sqlparser`'s tokenizer so
/// comments and quoting are understood.
fn by_keywords(sql: &str, dialect: &dyn Dialect) -> Vec<SqlClass> {
    let Ok(tokens) = Tokenizer::new(dialect, sql).tokenize() else {
        return vec![SqlClass::Unparsed];
    };
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut has_where = false;
    let mut program = false;
    let mut finish = |words: &mut Vec<String>, has_where: &mut bool, program: &mut bool| {
        if !words.is_empty() {
            out.push(keyword_class(words, *has_where, *program));
        }
        words.clear();
        *has_where = false;
        *program = false;
    };
    for t in tokens {
        match t {
            Token::SemiColon => finish(&mut words, &mut has_where, &mut program),
            Token::Word(w) => {
                let up = w.value.to_ascii_uppercase();
                if up == "WHERE" {
                    has_where = true;
                }
                if up == "PROGRAM" {
                    program = true;
                }
                if words.len() < 3 {
                    words.push(up);
                }
            }
            Token::Whitespace(_) => {}
            _ => {
                if words.is_empty() {
                    words.push(String::new());
                }
            }
        }
    }
    finish(&mut words, &mut has_where, &mut program);
    out
}

fn keyword_class(words: &[String], has_where: bool, program: bool) -> SqlClass {
    let first = words.first().map(String::as_str).unwrap_or_default();
    let second = words.get(1).map(String::as_str).unwrap_or_default();
    match first {
        "SELECT" | "WITH" | "VALUES" | "SHOW" | "EXPLAIN" | "TABLE" => SqlClass::Read,
        "INSERT" => SqlClass::Insert,
        "UPDATE" if has_where => SqlClass::Update,
        "UPDATE" => SqlClass::UpdateWithoutWhere,
        "DELETE" if has_where => SqlClass::Delete,
        "DELETE" => SqlClass::DeleteWithoutWhere,
        "DROP" => SqlClass::Drop,
        "TRUNCATE" => SqlClass::Truncate,
        "GRANT" => SqlClass::Grant,
        "REVOKE" => SqlClass::Revoke,
        "ALTER" if second == "SYSTEM" => SqlClass::AlterSystem,
        "COPY" if program => SqlClass::CopyProgram,
        "LOAD" if words.iter().any(|w| w == "LOCAL") => SqlClass::LoadLocalFile,
        "COPY" => SqlClass::Copy,
        "CREATE" | "ALTER" | "COMMENT" | "REINDEX" | "CLUSTER" => SqlClass::Ddl,
        "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE"
        | "PREPARE" => SqlClass::Transaction,
        "SET" | "RESET" | "DISCARD" => SqlClass::Session,
        "" => SqlClass::Unparsed,
        _ => SqlClass::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_classes() {
        let c = |s: &str| classify(s);
        assert_eq!(c("DROP TABLE users"), vec![SqlClass::Drop]);
        assert_eq!(c("drop schema s cascade"), vec![SqlClass::Drop]);
        assert_eq!(c("TRUNCATE orders"), vec![SqlClass::Truncate]);
        assert_eq!(c("UPDATE t SET a = 1"), vec![SqlClass::UpdateWithoutWhere]);
        assert_eq!(
            c("UPDATE t SET a = 1 WHERE id = $1"),
            vec![SqlClass::Update]
        );
        assert_eq!(c("GRANT ALL ON t TO bob"), vec![SqlClass::Grant]);
        assert_eq!(
            c("COPY t FROM PROGRAM 'curl x'"),
            vec![SqlClass::CopyProgram]
        );
        assert_eq!(c("COPY t TO STDOUT"), vec![SqlClass::Copy]);
        assert_eq!(
            c("/* x */ alter system reset all"),
            vec![SqlClass::AlterSystem]
        );
        assert_eq!(
            c("BEGIN; COMMIT"),
            vec![SqlClass::Transaction, SqlClass::Transaction]
        );
        assert_eq!(c("CREATE TABLE t (id int)"), vec![SqlClass::Ddl]);
        assert!(c("").is_empty());
    }

    #[test]
    fn the_default_rules_parse_and_catch_their_classes() {
        let rules = default_rules();
        assert_eq!(rules.len(), 9);
        let cfg = psm_core::policy::PolicyConfig {
            rules,
            ..Default::default()
        };
        let policy = psm_core::policy::Policy::new(&cfg).expect("valid");
        let session = policy.for_session(&psm_core::policy::SessionScope::default());
        let judge = |sql: &str| {
            classify(sql)
                .iter()
                .map(|c| session.judge_command(&c.policy_line()).action)
                .max()
                .unwrap_or(psm_core::policy::Action::Allow)
        };
        use psm_core::policy::Action;
        assert_eq!(judge("DROP TABLE users"), Action::RequireApproval);
        assert_eq!(judge("delete from t"), Action::RequireApproval);
        assert_eq!(judge("delete from t where id = 1"), Action::Allow);
        assert_eq!(judge("GRANT SELECT ON t TO bob"), Action::Alert);
        assert_eq!(judge("select 1"), Action::Allow);
    }

    #[test]
    fn deep_nesting_and_huge_text_do_not_overflow() {
        let deep = format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000));
        let _ = classify(&deep);
        assert_eq!(
            classify(&"x".repeat(MAX_CLASSIFIED + 1)),
            vec![SqlClass::Unparsed]
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = classify(&s);
        }
    }
}
