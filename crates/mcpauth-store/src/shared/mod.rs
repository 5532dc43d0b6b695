//! What the backends share: the store type, the query plumbing, and (in `store` and `rows`)
//! every query and every row decoder, written once for both databases.
//!
//! The shared code never names a database. It builds a [`Query`] (SQL text with `$n`
//! placeholders plus dynamically typed [`Arg`]s) and runs it on a connection of the sealed
//! [`Conn`](sealed::Conn) trait: `execute`, `fetch_optional`, `fetch_all`, and `begin`/`commit`/
//! `rollback` for a write transaction. Rows come back as the backend's row type, decoded through
//! [`rows::DbRow`].
//!
//! A [`Store`](mcpauth_core::Store) operation is one closure over such a connection, handed to
//! the backend whole by [`SqlStore::read`] or [`SqlStore::write`] (the sealed
//! [`Exec`](sealed::Exec) trait): the operation's statements, its transaction and the decisions
//! between them all happen inside that one call. PostgreSQL (sqlx) runs the closure's future on
//! the caller's task with one pooled connection. SQLite (rusqlite) sends the closure to the
//! thread that owns a connection, where every statement completes at once, so the future is
//! driven to its end in a single poll: one hand-off per operation, however many statements it
//! has. The closure owns what it needs (the operation clones its arguments in), so that it can
//! outlive a caller that gives up waiting: a transaction, once started, always ends — committed
//! or rolled back — on the database side.
//!
//! Single statements have shortcuts ([`SqlStore::execute`], [`SqlStore::write_returning`],
//! [`SqlStore::fetch_optional`], [`SqlStore::fetch_all`]) that are such an operation of one
//! statement. What genuinely differs between the dialects — how a write transaction begins,
//! the embedded migrations, how connections are held — is all that the backend modules
//! implement.

pub(crate) mod rows;
pub(crate) mod store;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use mcpauth_core::{RedirectUri, Scopes, StoreError};
use sqlx::migrate::{MigrationType, Migrator};
use sqlx::{Database, Encode, Type};

/// A database that [`SqlStore`] can keep mcpauth's records in: [`sqlx::Postgres`]
/// ([`PgStore`](crate::PgStore)) or [`Sqlite`](crate::sqlite::Sqlite)
/// ([`SqliteStore`](crate::SqliteStore), on rusqlite).
///
/// The trait is sealed: its machinery is private to this crate.
pub trait Backend: sealed::Exec {}

impl<B: sealed::Exec> Backend for B {}

/// A boxed, sendable future: what an operation's closure returns.
pub(crate) type OpFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'c>>;

pub(crate) mod sealed {
    use super::*;

    /// The backend's half of the shared code: running an operation, a closure over one
    /// connection, as one unit.
    pub trait Exec: Sized + Send + Sync + 'static {
        /// What a store holds: pools, or the handles of the database threads.
        type Handle: Clone + Send + Sync + fmt::Debug + 'static;
        /// The connection an operation's closure gets.
        type Conn: Conn;

        /// Runs `op` on a connection for reads (`write == false`) or the one(s) for writes,
        /// and returns its result. A transaction `op` leaves open is rolled back.
        fn run<T, F>(
            handle: &Self::Handle,
            write: bool,
            op: F,
        ) -> impl Future<Output = Result<T, StoreError>> + Send + '_
        where
            T: Send + 'static,
            F: for<'c> FnOnce(&'c mut Self::Conn) -> OpFuture<'c, T> + Send + 'static;

        /// Applies the dialect's embedded migrations.
        fn migrate(
            handle: &Self::Handle,
        ) -> impl Future<Output = Result<(), StoreError>> + Send + '_;
    }

    /// A connection as the shared operations see it. Errors are already [`StoreError`]s (a
    /// unique violation is a `Conflict` where the query says so).
    pub trait Conn: Send {
        /// A result row, owned.
        type Row: rows::DbRow + Send + 'static;

        /// Runs a statement; returns how many rows it changed.
        fn execute<'a>(
            &'a mut self,
            query: Query<'a>,
        ) -> impl Future<Output = Result<u64, StoreError>> + Send + 'a;

        /// Runs a query expected to return at most one row.
        fn fetch_optional<'a>(
            &'a mut self,
            query: Query<'a>,
        ) -> impl Future<Output = Result<Option<Self::Row>, StoreError>> + Send + 'a;

        /// Runs a query and collects every row.
        fn fetch_all<'a>(
            &'a mut self,
            query: Query<'a>,
        ) -> impl Future<Output = Result<Vec<Self::Row>, StoreError>> + Send + 'a;

        /// Begins a transaction for a multi-statement write (SQLite: `BEGIN IMMEDIATE`).
        fn begin(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send + '_;

        /// Commits the transaction.
        fn commit(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send + '_;

        /// Rolls the transaction back.
        fn rollback(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send + '_;
    }
}

pub(crate) use sealed::Conn;

/// One argument of a [`Query`]: every value mcpauth stores is text, an integer or a boolean,
/// each possibly NULL (booleans never are).
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    /// `TEXT`.
    Text(Option<Cow<'a, str>>),
    /// `INTEGER` (SQLite) / `BIGINT` (PostgreSQL).
    Int(Option<i64>),
    /// `INTEGER` 0/1 (SQLite) / `BOOLEAN` (PostgreSQL).
    Bool(bool),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Arg::Text(Some(Cow::Borrowed(value)))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(value: &'a String) -> Self {
        Arg::Text(Some(Cow::Borrowed(value)))
    }
}

impl From<String> for Arg<'_> {
    fn from(value: String) -> Self {
        Arg::Text(Some(Cow::Owned(value)))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Arg::Text(value.map(Cow::Borrowed))
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(value: &'a Option<String>) -> Self {
        Arg::Text(value.as_deref().map(Cow::Borrowed))
    }
}

/// Stored space-delimited, as [`Scopes`] displays them.
impl From<&Scopes> for Arg<'_> {
    fn from(value: &Scopes) -> Self {
        Arg::Text(Some(Cow::Owned(value.to_string())))
    }
}

impl<'a> From<&'a RedirectUri> for Arg<'a> {
    fn from(value: &'a RedirectUri) -> Self {
        Arg::Text(Some(Cow::Borrowed(value.as_str())))
    }
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Arg::Int(Some(value))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(value: Option<i64>) -> Self {
        Arg::Int(value)
    }
}

impl From<bool> for Arg<'_> {
    fn from(value: bool) -> Self {
        Arg::Bool(value)
    }
}

/// A statement and its arguments, not yet tied to a database. The SQL uses `$n` placeholders,
/// which both SQLite and PostgreSQL accept.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    sql: &'static str,
    args: Vec<Arg<'a>>,
    on_unique: Option<&'static str>,
}

/// A [`Query`] for `sql`, to which arguments are added with [`Query::bind`].
pub(crate) fn query<'a>(sql: &'static str) -> Query<'a> {
    Query {
        sql,
        args: Vec::new(),
        on_unique: None,
    }
}

impl<'a> Query<'a> {
    /// Adds the next argument (`$1`, then `$2`, ...).
    pub(crate) fn bind(mut self, value: impl Into<Arg<'a>>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Reports a violated UNIQUE or PRIMARY KEY constraint as [`StoreError::Conflict`] with
    /// `what`, where the [`Store`](mcpauth_core::Store) trait promises a conflict; without it,
    /// such a violation is a [`StoreError::Database`] like any other failure.
    pub(crate) fn on_unique_violation(mut self, what: &'static str) -> Self {
        self.on_unique = Some(what);
        self
    }

    /// The statement's text.
    pub(crate) fn sql(&self) -> &'static str {
        self.sql
    }

    /// The arguments, `$1` first.
    pub(crate) fn args(&self) -> &[Arg<'a>] {
        &self.args
    }

    /// What a unique violation means, if the statement says (see
    /// [`Query::on_unique_violation`]).
    pub(crate) fn on_unique(&self) -> Option<&'static str> {
        self.on_unique
    }

    /// The same query owning its arguments, so that it can move to another thread.
    pub(crate) fn into_owned(self) -> Query<'static> {
        Query {
            sql: self.sql,
            args: self
                .args
                .into_iter()
                .map(|arg| match arg {
                    Arg::Text(text) => Arg::Text(text.map(|text| Cow::Owned(text.into_owned()))),
                    Arg::Int(int) => Arg::Int(int),
                    Arg::Bool(flag) => Arg::Bool(flag),
                })
                .collect(),
            on_unique: self.on_unique,
        }
    }

    /// The sqlx query for database `DB`, with every argument encoded.
    pub(crate) fn into_sqlx<DB>(self) -> sqlx::query::Query<'static, DB, DB::Arguments>
    where
        DB: Database,
        for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
        Option<i64>: for<'t> Encode<'t, DB> + Type<DB>,
        bool: for<'t> Encode<'t, DB> + Type<DB>,
    {
        let mut out = sqlx::query(self.sql);
        for arg in &self.args {
            out = match arg {
                Arg::Text(text) => out.bind(text.as_deref()),
                Arg::Int(int) => out.bind(*int),
                Arg::Bool(flag) => out.bind(*flag),
            };
        }
        out
    }
}

/// mcpauth's storage in a SQL database: [`SqliteStore`](crate::SqliteStore) or
/// [`PgStore`](crate::PgStore). Cloning is cheap and shares the connections.
///
/// Every [`Store`](mcpauth_core::Store) method is implemented once for both databases, with the
/// same SQL; see the crate documentation for how the concurrency promises are kept.
pub struct SqlStore<B: Backend> {
    pub(crate) handle: B::Handle,
}

impl<B: Backend> Clone for SqlStore<B> {
    fn clone(&self) -> Self {
        SqlStore {
            handle: self.handle.clone(),
        }
    }
}

impl<B: Backend> fmt::Debug for SqlStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("handle", &self.handle)
            .finish()
    }
}

impl<B: Backend> SqlStore<B> {
    /// Applies the embedded migrations that have not been applied yet; safe to call on every
    /// start and from several instances at once (same as
    /// [`Store::migrate`](mcpauth_core::Store::migrate)).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        B::migrate(&self.handle).await
    }

    /// Runs a reading operation: `op` gets a read connection, and may run several queries on
    /// it (each in autocommit mode unless it begins a transaction).
    pub(crate) async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut B::Conn) -> OpFuture<'c, T> + Send + 'static,
    {
        B::run(&self.handle, false, op).await
    }

    /// Runs a writing operation: `op` gets the write connection; a multi-statement write
    /// begins a transaction on it, and one it leaves open is rolled back.
    pub(crate) async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut B::Conn) -> OpFuture<'c, T> + Send + 'static,
    {
        B::run(&self.handle, true, op).await
    }

    /// Runs one writing statement in autocommit mode; returns how many rows it changed.
    pub(crate) async fn execute(&self, query: Query<'_>) -> Result<u64, StoreError> {
        let query = query.into_owned();
        self.write(move |conn| Box::pin(async move { conn.execute(query).await }))
            .await
    }

    /// Runs one writing statement that returns at most one row (`… RETURNING`), in
    /// autocommit mode.
    pub(crate) async fn write_returning(
        &self,
        query: Query<'_>,
    ) -> Result<Option<<B::Conn as Conn>::Row>, StoreError> {
        let query = query.into_owned();
        self.write(move |conn| Box::pin(async move { conn.fetch_optional(query).await }))
            .await
    }

    /// Runs one read query in autocommit mode; at most one row.
    pub(crate) async fn fetch_optional(
        &self,
        query: Query<'_>,
    ) -> Result<Option<<B::Conn as Conn>::Row>, StoreError> {
        let query = query.into_owned();
        self.read(move |conn| Box::pin(async move { conn.fetch_optional(query).await }))
            .await
    }

    /// Runs one read query in autocommit mode; every row.
    pub(crate) async fn fetch_all(
        &self,
        query: Query<'_>,
    ) -> Result<Vec<<B::Conn as Conn>::Row>, StoreError> {
        let query = query.into_owned();
        self.read(move |conn| Box::pin(async move { conn.fetch_all(query).await }))
            .await
    }
}

/// The whole schema of `migrator` as SQL text, every migration in order (for
/// `mcpauth generate`).
pub(crate) fn schema_sql(migrator: &Migrator) -> String {
    let mut out = String::new();
    for migration in migrator.iter() {
        if matches!(migration.migration_type, MigrationType::ReversibleDown) {
            continue;
        }
        out.push_str(&format!(
            "-- migration {:04}: {}\n",
            migration.version, migration.description
        ));
        out.push_str(migration.sql.as_str());
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
    }
    out
}
