//! What the backends share: the store type, the query plumbing, and (in `store` and `rows`)
//! every query and every row decoder, written once for both databases.
//!
//! The shared code never names a database. It builds a [`Query`] (SQL text with `$n`
//! placeholders plus dynamically typed [`Arg`]s) and hands it to the backend through the sealed
//! [`Exec`](sealed::Exec) trait, which each backend implements in a few lines: bind the
//! arguments, run the statement, return sqlx rows. Rows are decoded through [`rows::DbRow`],
//! which any sqlx row that can decode text, integers and booleans implements. What genuinely
//! differs between the dialects — how a write transaction begins, the embedded migrations — is
//! all that the backend modules implement.

pub(crate) mod rows;
pub(crate) mod store;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;

use mcpauth_core::{RedirectUri, Scopes, StoreError};
use sqlx::migrate::{MigrationType, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Encode, Pool, Transaction, Type};

use crate::error::{db_err, store_err};

/// A database that [`SqlStore`] can keep mcpauth's records in: [`sqlx::Sqlite`]
/// ([`SqliteStore`](crate::SqliteStore)) or [`sqlx::Postgres`] ([`PgStore`](crate::PgStore)).
///
/// The trait is sealed: its machinery is private to this crate.
pub trait Backend: sealed::Exec {}

impl<DB: sealed::Exec> Backend for DB {}

pub(crate) mod sealed {
    use super::*;

    /// The backend's half of the shared code: running a [`Query`] on a connection.
    ///
    /// Implementations bind the arguments before the future starts, so the futures borrow only
    /// the connection.
    pub trait Exec: Database<Row: rows::DbRow> {
        /// Begins a transaction for a multi-statement write.
        fn begin_write(
            pool: &Pool<Self>,
        ) -> impl Future<Output = Result<Transaction<'static, Self>, sqlx::Error>> + Send + '_;

        /// Runs a statement; returns how many rows it changed.
        fn execute<'a>(
            conn: &'a mut Self::Connection,
            query: Query<'a>,
        ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a;

        /// Runs a query expected to return at most one row.
        fn fetch_optional<'a>(
            conn: &'a mut Self::Connection,
            query: Query<'a>,
        ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'a;

        /// Runs a query and collects every row.
        fn fetch_all<'a>(
            conn: &'a mut Self::Connection,
            query: Query<'a>,
        ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'a;

        /// Applies the dialect's embedded migrations.
        fn migrate(pool: &Pool<Self>) -> impl Future<Output = Result<(), StoreError>> + Send + '_;
    }
}

/// Implements [`sealed::Exec`]'s query methods for a concrete database. The bodies are the same
/// for every database; they are emitted per database rather than written as generic functions
/// because sqlx offers `rows_affected` only on each database's own result type.
macro_rules! impl_exec_queries {
    ($db:ty) => {
        fn execute<'a>(
            conn: &'a mut <$db as sqlx::Database>::Connection,
            query: $crate::shared::Query<'a>,
        ) -> impl std::future::Future<Output = Result<u64, sqlx::Error>> + Send + 'a {
            let query = query.into_sqlx::<$db>();
            async move { Ok(query.execute(conn).await?.rows_affected()) }
        }

        fn fetch_optional<'a>(
            conn: &'a mut <$db as sqlx::Database>::Connection,
            query: $crate::shared::Query<'a>,
        ) -> impl std::future::Future<
            Output = Result<Option<<$db as sqlx::Database>::Row>, sqlx::Error>,
        > + Send
        + 'a {
            let query = query.into_sqlx::<$db>();
            async move { query.fetch_optional(conn).await }
        }

        fn fetch_all<'a>(
            conn: &'a mut <$db as sqlx::Database>::Connection,
            query: $crate::shared::Query<'a>,
        ) -> impl std::future::Future<
            Output = Result<Vec<<$db as sqlx::Database>::Row>, sqlx::Error>,
        > + Send
        + 'a {
            let query = query.into_sqlx::<$db>();
            async move { query.fetch_all(conn).await }
        }
    };
}
pub(crate) use impl_exec_queries;

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

    /// Runs the query with `run`, reporting a failure as a [`StoreError`].
    async fn run<T, F>(self, run: impl FnOnce(Self) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, sqlx::Error>>,
    {
        let on_unique = self.on_unique;
        run(self).await.map_err(|err| store_err(err, on_unique))
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

/// A write transaction, rolled back if dropped before [`Tx::commit`].
pub(crate) struct Tx<DB: Database>(Transaction<'static, DB>);

impl<DB: Backend> Tx<DB> {
    pub(crate) async fn execute(&mut self, query: Query<'_>) -> Result<u64, StoreError> {
        query.run(|query| DB::execute(&mut self.0, query)).await
    }

    pub(crate) async fn fetch_optional(
        &mut self,
        query: Query<'_>,
    ) -> Result<Option<DB::Row>, StoreError> {
        query
            .run(|query| DB::fetch_optional(&mut self.0, query))
            .await
    }

    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        self.0.commit().await.map_err(db_err)
    }

    pub(crate) async fn rollback(self) -> Result<(), StoreError> {
        self.0.rollback().await.map_err(db_err)
    }
}

/// mcpauth's storage in an SQL database: [`SqliteStore`](crate::SqliteStore) or
/// [`PgStore`](crate::PgStore). Cloning is cheap and shares the connection pools.
///
/// Every [`Store`](mcpauth_core::Store) method is implemented once for both databases, with the
/// same SQL; see the crate documentation for how the concurrency promises are kept.
///
/// Reads and writes may use different pools: SQLite allows one writer at a time, so its store
/// gives writes a pool of their own with a single connection (writers then queue in process,
/// first come first served, instead of sleeping in SQLite's busy handler), and reads the rest.
/// PostgreSQL uses one pool for both.
pub struct SqlStore<DB: Database> {
    pub(crate) pool: Pool<DB>,
    pub(crate) writer: Pool<DB>,
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
            writer: self.writer.clone(),
        }
    }
}

impl<DB: Database> fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("database", &DB::NAME)
            .field("pool", &self.pool)
            .field("writer", &self.writer)
            .finish()
    }
}

impl<DB: Database> SqlStore<DB> {
    /// Wraps an existing pool, used for reads and writes alike. The caller is responsible for
    /// its connection settings (for SQLite, foreign keys must be on for the schema's cascades
    /// to work).
    pub fn from_pool(pool: Pool<DB>) -> Self {
        SqlStore {
            writer: pool.clone(),
            pool,
        }
    }

    /// Wraps a pool for reads and another for writes (see the type's documentation).
    pub fn from_pools(readers: Pool<DB>, writer: Pool<DB>) -> Self {
        SqlStore {
            pool: readers,
            writer,
        }
    }

    /// The pool reads use, for health checks and maintenance.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// The pool writes use (the same as [`Self::pool`] unless the store was opened with two).
    pub fn writer_pool(&self) -> &Pool<DB> {
        &self.writer
    }

    /// Closes every connection; pending operations finish first.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

impl<DB: Backend> SqlStore<DB> {
    /// Applies the embedded migrations that have not been applied yet; safe to call on every
    /// start and from several instances at once (same as
    /// [`Store::migrate`](mcpauth_core::Store::migrate)).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        DB::migrate(&self.writer).await
    }

    /// A transaction for a multi-statement write (see [`sealed::Exec::begin_write`]).
    pub(crate) async fn begin_write(&self) -> Result<Tx<DB>, StoreError> {
        DB::begin_write(&self.writer).await.map(Tx).map_err(db_err)
    }

    /// Runs one writing statement in autocommit mode; returns how many rows it changed.
    pub(crate) async fn execute(&self, query: Query<'_>) -> Result<u64, StoreError> {
        let mut conn = acquire(&self.writer).await?;
        query.run(|query| DB::execute(&mut conn, query)).await
    }

    /// Runs one writing statement that returns at most one row (`… RETURNING`), in
    /// autocommit mode.
    pub(crate) async fn write_returning(
        &self,
        query: Query<'_>,
    ) -> Result<Option<DB::Row>, StoreError> {
        let mut conn = acquire(&self.writer).await?;
        query
            .run(|query| DB::fetch_optional(&mut conn, query))
            .await
    }

    /// Runs one read query in autocommit mode; at most one row.
    pub(crate) async fn fetch_optional(
        &self,
        query: Query<'_>,
    ) -> Result<Option<DB::Row>, StoreError> {
        let mut conn = acquire(&self.pool).await?;
        query
            .run(|query| DB::fetch_optional(&mut conn, query))
            .await
    }

    /// Runs one read query in autocommit mode; every row.
    pub(crate) async fn fetch_all(&self, query: Query<'_>) -> Result<Vec<DB::Row>, StoreError> {
        let mut conn = acquire(&self.pool).await?;
        query.run(|query| DB::fetch_all(&mut conn, query)).await
    }
}

/// A connection from `pool`.
async fn acquire<DB: Database>(pool: &Pool<DB>) -> Result<PoolConnection<DB>, StoreError> {
    pool.acquire().await.map_err(db_err)
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
