//! One connection to the journal's database, SQLite or PostgreSQL.
//!
//! The journal's statements are written once, in the SQL both databases
//! understand, with SQLite's numbered parameters (`?1`), and run on either
//! through [`Db`]: parameters are anything `rusqlite` can bind, and a
//! column is read as any type `rusqlite` can read, whichever database
//! answered. The few statements that differ pick their text with
//! [`Db::dialect`]. PostgreSQL gets `$1` for `?1`; its integer columns are
//! `BIGINT`, so every integer is an `i64` on both.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;

use bytes::BytesMut;
use rusqlite::types::{FromSql, ToSql, ToSqlOutput, ValueRef};
use tokio_postgres::types::{IsNull, ToSql as PgToSql, Type, to_sql_checked};

use super::postgres::Session;

/// Why a statement failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// A value that does not fit where it goes (the message says which).
    #[error("{0}")]
    Value(String),
    /// A statement that must return a row returned none.
    #[error("no row")]
    NoRow,
    /// A write of a group commit conflicted with another host's
    /// transaction; the group is rolled back to be tried again.
    #[error("conflicted with another host's transaction: {0}")]
    Conflict(String),
}

/// PostgreSQL's own message (with its SQLSTATE) rather than the driver's
/// "db error".
fn postgres_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl DbError {
    /// A failure PostgreSQL asks the client to retry: a deadlock between
    /// hosts or a serialization failure.
    pub fn is_transient(&self) -> bool {
        use tokio_postgres::error::SqlState;
        match self {
            DbError::Postgres(e) => e.code().is_some_and(|c| {
                *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
            }),
            DbError::Conflict(_) => true,
            _ => false,
        }
    }
}

pub type DbResult<T> = std::result::Result<T, DbError>;

/// Which SQL a statement is written in, where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A connection of either kind, borrowed for some statements.
#[derive(Clone, Copy)]
pub enum Db<'a> {
    Sqlite(&'a rusqlite::Connection),
    Postgres(&'a Session),
}

/// A row of a result, read column by column.
pub enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a tokio_postgres::Row),
}

impl Row<'_> {
    /// Column `i` as `T`.
    pub fn get<T: FromSql>(&self, i: usize) -> DbResult<T> {
        match self {
            Row::Sqlite(r) => Ok(r.get(i)?),
            Row::Postgres(r) => {
                let value = postgres_value(r, i)?;
                T::column_result(value)
                    .map_err(|e| DbError::Value(format!("column {}: {e}", r.columns()[i].name())))
            }
        }
    }
}

/// Column `i` of a PostgreSQL row as SQLite would have given it.
fn postgres_value(row: &tokio_postgres::Row, i: usize) -> DbResult<ValueRef<'_>> {
    fn or_null<T>(v: Option<T>, f: impl FnOnce(T) -> ValueRef<'static>) -> ValueRef<'static> {
        v.map_or(ValueRef::Null, f)
    }
    let ty = row.columns()[i].type_().clone();
    Ok(match ty {
        Type::INT8 => or_null(row.try_get(i)?, ValueRef::Integer),
        Type::INT4 => or_null(row.try_get::<_, Option<i32>>(i)?, |v| {
            ValueRef::Integer(v.into())
        }),
        Type::BOOL => or_null(row.try_get::<_, Option<bool>>(i)?, |v| {
            ValueRef::Integer(v.into())
        }),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row
            .try_get::<_, Option<&str>>(i)?
            .map_or(ValueRef::Null, |s| ValueRef::Text(s.as_bytes())),
        Type::BYTEA => row
            .try_get::<_, Option<&[u8]>>(i)?
            .map_or(ValueRef::Null, ValueRef::Blob),
        other => {
            return Err(DbError::Value(format!(
                "column {} has type {other}, which the journal does not read",
                row.columns()[i].name()
            )));
        }
    })
}

/// A parameter as bound by `rusqlite`, bound for PostgreSQL in the type
/// the statement wants.
#[derive(Debug)]
pub struct Param<'a>(ValueRef<'a>);

impl PgToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self.0 {
            ValueRef::Null => Ok(IsNull::Yes),
            ValueRef::Integer(i) => match *ty {
                Type::INT8 => PgToSql::to_sql(&i, ty, out),
                Type::INT4 => PgToSql::to_sql(&i32::try_from(i)?, ty, out),
                Type::BOOL => PgToSql::to_sql(&(i != 0), ty, out),
                _ => Err(format!("an integer where PostgreSQL wants {ty}").into()),
            },
            ValueRef::Real(f) => PgToSql::to_sql(&f, ty, out),
            ValueRef::Text(t) => PgToSql::to_sql(&std::str::from_utf8(t)?, ty, out),
            ValueRef::Blob(b) => PgToSql::to_sql(&b, ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<'a> Db<'a> {
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// `sqlite` or `postgres`, whichever this connection speaks.
    pub fn pick<'s>(&self, sqlite: &'s str, postgres: &'s str) -> &'s str {
        match self {
            Db::Sqlite(_) => sqlite,
            Db::Postgres(_) => postgres,
        }
    }

    /// Runs statements that take no parameters and return nothing.
    pub fn batch(&self, sql: &str) -> DbResult<()> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Postgres(s) => s.batch(sql),
        }
    }

    /// Runs a statement; returns how many rows it changed.
    pub fn execute(&self, sql: &str, params: &[&dyn ToSql]) -> DbResult<usize> {
        match self {
            Db::Sqlite(c) => Ok(c.prepare_cached(sql)?.execute(params)?),
            Db::Postgres(s) => {
                let outputs = outputs(params)?;
                s.execute(sql, &bind(&outputs)?)
            }
        }
    }

    /// The first row of a query, read by `f`; [`DbError::NoRow`] if none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[&dyn ToSql],
        f: impl FnOnce(&Row) -> DbResult<T>,
    ) -> DbResult<T> {
        self.query_opt(sql, params, f)?.ok_or(DbError::NoRow)
    }

    /// The first row of a query, read by `f`, if there is one.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn ToSql],
        f: impl FnOnce(&Row) -> DbResult<T>,
    ) -> DbResult<Option<T>> {
        let mut f = Some(f);
        let mut found = None;
        self.query_each(sql, params, |row| {
            if let Some(f) = f.take() {
                found = Some(f(row)?);
            }
            Ok(false)
        })?;
        Ok(found)
    }

    /// Whether a query returns any row.
    pub fn exists(&self, sql: &str, params: &[&dyn ToSql]) -> DbResult<bool> {
        Ok(self.query_opt(sql, params, |_| Ok(()))?.is_some())
    }

    /// Every row of a query, each read by `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[&dyn ToSql],
        mut f: impl FnMut(&Row) -> DbResult<T>,
    ) -> DbResult<Vec<T>> {
        let mut rows = Vec::new();
        self.query_each(sql, params, |row| {
            rows.push(f(row)?);
            Ok(true)
        })?;
        Ok(rows)
    }

    /// Hands the rows of a query to `f` in order until it returns false.
    pub fn query_each(
        &self,
        sql: &str,
        params: &[&dyn ToSql],
        mut f: impl FnMut(&Row) -> DbResult<bool>,
    ) -> DbResult<()> {
        match self {
            Db::Sqlite(c) => {
                let mut statement = c.prepare_cached(sql)?;
                let mut rows = statement.query(params)?;
                while let Some(row) = rows.next()? {
                    if !f(&Row::Sqlite(row))? {
                        break;
                    }
                }
                Ok(())
            }
            Db::Postgres(s) => {
                let outputs = outputs(params)?;
                for row in s.query(sql, &bind(&outputs)?)? {
                    if !f(&Row::Postgres(&row))? {
                        break;
                    }
                }
                Ok(())
            }
        }
    }
}

fn outputs<'p>(params: &'p [&dyn ToSql]) -> DbResult<Vec<ToSqlOutput<'p>>> {
    Ok(params
        .iter()
        .map(|p| p.to_sql())
        .collect::<rusqlite::Result<_>>()?)
}

fn bind<'p>(outputs: &'p [ToSqlOutput<'p>]) -> DbResult<Vec<Param<'p>>> {
    outputs
        .iter()
        .map(|o| match o {
            ToSqlOutput::Borrowed(v) => Ok(Param(*v)),
            ToSqlOutput::Owned(v) => Ok(Param(v.into())),
            _ => Err(DbError::Value(
                "a parameter kind PostgreSQL cannot take".into(),
            )),
        })
        .collect()
}

/// `sql` with SQLite's `?N` parameters written as PostgreSQL's `$N`, and
/// without SQLite's index hints (`INDEXED BY name`), which PostgreSQL's
/// planner does without.
pub fn postgres_sql(sql: &str) -> String {
    let mut sql = sql.to_string();
    while let Some(at) = sql.find("INDEXED BY ") {
        let name_end = sql[at + 11..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(sql.len(), |n| at + 11 + n);
        sql.replace_range(at..name_end, "");
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '?' && !quoted && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// Prepared statements of one PostgreSQL session, by their SQLite text.
#[derive(Default)]
pub struct StatementCache(RefCell<HashMap<String, tokio_postgres::Statement>>);

impl StatementCache {
    pub fn get(&self, sql: &str) -> Option<tokio_postgres::Statement> {
        self.0.borrow().get(sql).cloned()
    }

    pub fn put(&self, sql: &str, statement: tokio_postgres::Statement) {
        self.0.borrow_mut().insert(sql.to_string(), statement);
    }
}

/// Parameters as PostgreSQL's driver takes them.
pub fn as_postgres<'p>(params: &'p [Param<'p>]) -> Vec<&'p (dyn PgToSql + Sync)> {
    params.iter().map(|p| p as _).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_become_dollars_outside_quotes() {
        assert_eq!(
            postgres_sql("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND d = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND d = $12"
        );
        assert_eq!(
            postgres_sql("SELECT a FROM t INDEXED BY t_by_b WHERE b = ?1"),
            "SELECT a FROM t  WHERE b = $1"
        );
    }
}
