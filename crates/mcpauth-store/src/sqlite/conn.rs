//! A rusqlite connection as the shared operations see it ([`LiteConn`]), and its rows
//! ([`LiteRow`]).
//!
//! Every statement runs synchronously, so the futures the shared code awaits are ready when
//! they are made; [`LiteConn::drive`] polls an operation's future once and it is done.

use std::future::{Future, ready};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use mcpauth_core::StoreError;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Statement};

use crate::error::lite_err;
use crate::shared::rows::Column;
use crate::shared::{Arg, OpFuture, Query, sealed};

/// A database thread's connection, lent to one operation at a time.
pub struct LiteConn {
    conn: Connection,
    /// Inside a group transaction (see `run_group`): an operation's transaction is a savepoint.
    group: bool,
    /// The operation's own transaction (a savepoint, in a group) is open.
    inner_open: bool,
}

impl LiteConn {
    pub(super) fn new(conn: Connection) -> LiteConn {
        LiteConn {
            conn,
            group: false,
            inner_open: false,
        }
    }

    /// Begins a group transaction.
    pub(super) fn start_group(&mut self) -> Result<(), StoreError> {
        self.run_batch("BEGIN IMMEDIATE")?;
        self.group = true;
        Ok(())
    }

    /// Whether the group transaction is still open (SQLite rolls a transaction back by itself
    /// after some errors, a full disk among them).
    pub(super) fn group_alive(&self) -> bool {
        self.group && !self.conn.is_autocommit()
    }

    /// Starts an operation of the group: a savepoint to roll back to if it fails.
    pub(super) fn start_member(&mut self) -> Result<(), StoreError> {
        self.inner_open = false;
        self.run_batch("SAVEPOINT member")
    }

    /// Ends an operation of the group: keeps its writes, or (it failed, or left its own
    /// transaction open) rolls them back.
    pub(super) fn end_member(&mut self, failed: bool) {
        if !self.group_alive() {
            return;
        }
        let undo = if failed || self.inner_open {
            "ROLLBACK TO member; RELEASE member"
        } else {
            "RELEASE member"
        };
        if let Err(err) = self.run_batch(undo) {
            tracing::warn!(error = %err, "ending a grouped SQLite write failed");
        }
        self.inner_open = false;
    }

    /// Commits the group transaction (or finds it rolled back already).
    pub(super) fn end_group(&mut self) -> Result<(), StoreError> {
        let alive = self.group_alive();
        self.group = false;
        let committed = if alive {
            self.run_batch("COMMIT")
        } else {
            Err(StoreError::Database(
                "the grouped SQLite transaction was rolled back".to_owned(),
            ))
        };
        self.end_transaction();
        committed
    }

    /// The rusqlite connection itself.
    pub(super) fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Runs an operation to its end. Its future completes in the first poll, since nothing it
    /// awaits ever waits; one that did not would be a bug, reported as an error.
    pub(super) fn drive<T, F>(&mut self, op: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut LiteConn) -> OpFuture<'c, T>,
    {
        let mut future = op(self);
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(result) => result,
            Poll::Pending => Err(StoreError::Database(
                "a SQLite operation waited for something, which it never should".to_owned(),
            )),
        }
    }

    /// Rolls back a transaction an operation left open (it failed inside it, or SQLite's own
    /// rollback after a failed COMMIT left nothing to do), so the next operation starts clean.
    pub(super) fn end_transaction(&mut self) {
        self.inner_open = false;
        if !self.conn.is_autocommit()
            && let Err(err) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(error = %err, "rolling back an unfinished SQLite transaction failed");
        }
    }

    /// Prepares (or takes from the cache) `query`'s statement, binds its arguments and runs
    /// `f` on it.
    fn with_statement<R>(
        &self,
        query: &Query<'_>,
        f: impl FnOnce(&mut Statement<'_>) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        let run = || {
            let mut statement = self.conn.prepare_cached(query.sql())?;
            bind(&mut statement, query.args())?;
            f(&mut statement)
        };
        run().map_err(|err| lite_err(err, query.on_unique()))
    }

    fn run_execute(&self, query: &Query<'_>) -> Result<u64, StoreError> {
        self.with_statement(query, |statement| {
            let mut rows = statement.raw_query();
            while rows.next()?.is_some() {}
            Ok(())
        })?;
        Ok(self.conn.changes())
    }

    fn run_fetch(&self, query: &Query<'_>) -> Result<Vec<LiteRow>, StoreError> {
        self.with_statement(query, |statement| {
            let names: Arc<[Box<str>]> = statement
                .column_names()
                .into_iter()
                .map(Box::from)
                .collect();
            let width = names.len();
            let mut out = Vec::new();
            let mut rows = statement.raw_query();
            while let Some(row) = rows.next()? {
                let mut values = Vec::with_capacity(width);
                for index in 0..width {
                    let value = row.get_ref(index)?;
                    let kind = value.data_type();
                    values.push(Value::try_from(value).map_err(|err| {
                        rusqlite::Error::FromSqlConversionFailure(index, kind, Box::new(err))
                    })?);
                }
                out.push(LiteRow {
                    names: names.clone(),
                    values,
                });
            }
            Ok(out)
        })
    }

    /// Runs transaction control (`BEGIN`, `SAVEPOINT`, `RELEASE`, `COMMIT`, ...). A single
    /// statement goes through the statement cache: every grouped write runs two or four of
    /// them, and parsing them each time was a measurable part of the writer's work.
    fn run_batch(&self, sql: &str) -> Result<(), StoreError> {
        let run = || {
            if sql.contains(';') {
                self.conn.execute_batch(sql)
            } else {
                self.conn.prepare_cached(sql)?.execute([]).map(drop)
            }
        };
        run().map_err(|err| lite_err(err, None))
    }
}

/// Binds `args` to `statement`'s parameters: `$n` is the n-th argument (SQLite numbers named
/// parameters in order of first appearance, which need not be `n`), any other the argument at
/// its position.
fn bind(statement: &mut Statement<'_>, args: &[Arg<'_>]) -> rusqlite::Result<()> {
    for index in 1..=statement.parameter_count() {
        let number = statement
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$').or_else(|| name.strip_prefix('?')))
            .and_then(|digits| digits.parse::<usize>().ok())
            .unwrap_or(index);
        let arg = number
            .checked_sub(1)
            .and_then(|at| args.get(at))
            .ok_or(rusqlite::Error::InvalidParameterCount(index, args.len()))?;
        match arg {
            Arg::Text(text) => statement.raw_bind_parameter(index, text.as_deref())?,
            Arg::Int(int) => statement.raw_bind_parameter(index, *int)?,
            Arg::Bool(flag) => statement.raw_bind_parameter(index, *flag)?,
        }
    }
    Ok(())
}

impl sealed::Conn for LiteConn {
    type Row = LiteRow;

    fn execute<'a>(
        &'a mut self,
        query: Query<'a>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + 'a {
        ready(self.run_execute(&query))
    }

    fn fetch_optional<'a>(
        &'a mut self,
        query: Query<'a>,
    ) -> impl Future<Output = Result<Option<LiteRow>, StoreError>> + Send + 'a {
        // Every row is stepped through, so that a `… RETURNING` statement has finished (and,
        // in autocommit mode, committed) when this returns.
        ready(self.run_fetch(&query).map(|rows| rows.into_iter().next()))
    }

    fn fetch_all<'a>(
        &'a mut self,
        query: Query<'a>,
    ) -> impl Future<Output = Result<Vec<LiteRow>, StoreError>> + Send + 'a {
        ready(self.run_fetch(&query))
    }

    /// Takes the database's write lock up front, so that two transactions never both hold a
    /// read lock and then deadlock upgrading it; a writer in another process waits on the busy
    /// timeout instead.
    fn begin(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send + '_ {
        let begun = if self.group {
            self.run_batch("SAVEPOINT tx")
        } else {
            self.run_batch("BEGIN IMMEDIATE")
        };
        self.inner_open = begun.is_ok();
        ready(begun)
    }

    /// A COMMIT that fails (a full disk) leaves SQLite to roll back by itself, or the
    /// transaction open; either way the operation ends in [`LiteConn::end_transaction`].
    fn commit(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send + '_ {
        self.inner_open = false;
        ready(self.run_batch(if self.group { "RELEASE tx" } else { "COMMIT" }))
    }

    fn rollback(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send + '_ {
        self.inner_open = false;
        ready(self.run_batch(if self.group {
            "ROLLBACK TO tx; RELEASE tx"
        } else {
            "ROLLBACK"
        }))
    }
}

/// A result row of the SQLite backend: the column names (shared by the rows of one query) and
/// the values, owned.
#[derive(Debug, Clone)]
pub struct LiteRow {
    names: Arc<[Box<str>]>,
    values: Vec<Value>,
}

impl LiteRow {
    fn value(&self, name: &str) -> Result<&Value, StoreError> {
        self.names
            .iter()
            .position(|candidate| &**candidate == name)
            .and_then(|at| self.values.get(at))
            .ok_or_else(|| StoreError::Database(format!("no column {name:?} in the result")))
    }
}

fn mismatch(name: &str, value: &Value, wanted: &str) -> StoreError {
    StoreError::Database(format!(
        "column {name:?} holds {:?}, not {wanted}",
        ValueRef::from(value).data_type()
    ))
}

impl Column<String> for LiteRow {
    fn column(&self, name: &str) -> Result<String, StoreError> {
        match self.value(name)? {
            Value::Text(text) => Ok(text.clone()),
            other => Err(mismatch(name, other, "text")),
        }
    }
}

impl Column<Option<String>> for LiteRow {
    fn column(&self, name: &str) -> Result<Option<String>, StoreError> {
        match self.value(name)? {
            Value::Null => Ok(None),
            Value::Text(text) => Ok(Some(text.clone())),
            other => Err(mismatch(name, other, "text")),
        }
    }
}

impl Column<i64> for LiteRow {
    fn column(&self, name: &str) -> Result<i64, StoreError> {
        match self.value(name)? {
            Value::Integer(int) => Ok(*int),
            other => Err(mismatch(name, other, "an integer")),
        }
    }
}

impl Column<Option<i64>> for LiteRow {
    fn column(&self, name: &str) -> Result<Option<i64>, StoreError> {
        match self.value(name)? {
            Value::Null => Ok(None),
            Value::Integer(int) => Ok(Some(*int)),
            other => Err(mismatch(name, other, "an integer")),
        }
    }
}

/// Stored as `INTEGER` 0/1.
impl Column<bool> for LiteRow {
    fn column(&self, name: &str) -> Result<bool, StoreError> {
        match self.value(name)? {
            Value::Integer(int) => Ok(*int != 0),
            other => Err(mismatch(name, other, "a boolean")),
        }
    }
}
