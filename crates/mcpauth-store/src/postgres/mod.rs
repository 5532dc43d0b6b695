//! The PostgreSQL backend: connecting, the embedded schema, and what PostgreSQL does
//! differently from SQLite (write transactions are plain `BEGIN`: row locks taken by the
//! conditional statements serialise the races that matter). The
//! [`Store`](mcpauth_core::Store) implementation itself is shared with SQLite (see
//! [`SqlStore`]).
//!
//! Several mcpauth instances may share one database: [`PgStore::migrate`] holds sqlx's
//! advisory lock while it migrates, and every concurrency promise of the trait is kept by the
//! database across connections (see the crate documentation).

use std::str::FromStr;
use std::time::Duration;

use mcpauth_core::StoreError;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, Transaction};

use crate::error::{db_err, store_err};
use crate::shared::{OpFuture, Query, SqlStore, schema_sql, sealed};

/// The schema migrations, embedded from `migrations/postgres/`.
pub static PG_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The pool size [`PgStore::connect`] uses.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// How long [`PgStore::connect`]'s pool lets a caller wait for a free connection.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole schema as SQL text, every migration in order (for
/// `mcpauth generate --dialect postgres`).
pub fn pg_schema_sql() -> String {
    schema_sql(&PG_MIGRATOR)
}

/// mcpauth's storage in a PostgreSQL database, shareable by several instances.
pub type PgStore = SqlStore<Postgres>;

/// Pool settings for [`PgStore::connect_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgStoreOptions {
    /// The most connections the pool opens (at least 1).
    pub max_connections: u32,
    /// How long an operation waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// The schema search path every connection sets (`SET search_path`), e.g. `"mcpauth"`;
    /// `None` keeps the server's (or the URL's `options=-c search_path=…`). The schema must
    /// exist; the tables, and sqlx's `_sqlx_migrations`, are created in its first schema.
    pub search_path: Option<String>,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        PgStoreOptions {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            search_path: None,
        }
    }
}

impl SqlStore<Postgres> {
    /// Connects to the database at `url` with the default [`PgStoreOptions`]
    /// ([`DEFAULT_MAX_CONNECTIONS`] connections).
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        Self::connect_with(url, PgStoreOptions::default()).await
    }

    /// Connects to the database at `url`, opening one connection right away so that a wrong
    /// URL or an unreachable server fails here.
    ///
    /// Accepts `postgres://` and `postgresql://` URLs with sqlx's parameters (`sslmode`,
    /// `host`, `port`, `user`, `password`, `dbname`, `application_name`, `options`, and
    /// `options[name]=value`), e.g.
    /// `postgres://mcpauth@db.internal/mcpauth?options=-c%20search_path%3Dauth`. Connections
    /// identify themselves as `application_name=mcpauth` unless the URL names another.
    pub async fn connect_with(url: &str, options: PgStoreOptions) -> Result<PgStore, StoreError> {
        let connect = parse_url(url)?;
        let connect = match options.search_path.as_deref() {
            Some(path) => connect.options([("search_path", path)]),
            None => connect,
        };
        // sqlx retries a refused connection (a server still starting) until the acquire
        // timeout, then reports only the timeout: name the underlying failure as well.
        let pool = match PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
        {
            Ok(pool) => pool,
            Err(sqlx::Error::PoolTimedOut) => {
                let cause = match PgConnection::connect_with(&connect).await {
                    Ok(conn) => {
                        let _ = conn.close().await;
                        "the server is slow to accept connections".to_owned()
                    }
                    Err(err) => err.to_string(),
                };
                return Err(StoreError::Database(format!(
                    "cannot connect to the PostgreSQL database within {:?}: {cause}",
                    options.acquire_timeout
                )));
            }
            Err(err) => {
                return Err(StoreError::Database(format!(
                    "cannot connect to the PostgreSQL database: {err}"
                )));
            }
        };
        tracing::debug!("opened PostgreSQL store");
        Ok(SqlStore::from_pool(pool))
    }

    /// Wraps an existing pool. The caller is responsible for its connection settings.
    pub fn from_pool(pool: PgPool) -> Self {
        SqlStore { handle: pool }
    }

    /// The pool every operation uses, for health checks and maintenance.
    pub fn pool(&self) -> &PgPool {
        &self.handle
    }

    /// Closes every connection; pending operations finish first.
    pub async fn close(&self) {
        self.handle.close().await;
    }
}

/// The connection settings in `url`, which is never echoed in errors: it may hold a password.
fn parse_url(url: &str) -> Result<PgConnectOptions, StoreError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::Database(
            "a PostgreSQL URL starts with postgres:// or postgresql://".to_owned(),
        ));
    }
    let options = PgConnectOptions::from_str(url)
        .map_err(|err| StoreError::Database(format!("invalid PostgreSQL URL: {err}")))?;
    Ok(match options.get_application_name() {
        Some(_) => options,
        None => options.application_name("mcpauth"),
    })
}

impl sealed::Exec for Postgres {
    type Handle = PgPool;
    type Conn = PgConn;

    /// Runs the operation on the caller's task with one pooled connection, taken at its first
    /// statement. Reads and writes share the pool.
    async fn run<T, F>(pool: &PgPool, _write: bool, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConn) -> OpFuture<'c, T> + Send + 'static,
    {
        let mut conn = PgConn {
            pool: pool.clone(),
            idle: None,
            tx: None,
        };
        // Dropping a transaction still open (an error inside it) rolls it back.
        op(&mut conn).await
    }

    async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
        PG_MIGRATOR
            .run(pool)
            .await
            .map_err(|err| StoreError::Database(format!("migration failed: {err}")))
    }
}

/// A PostgreSQL operation's connection: taken from the pool at the first statement, and held
/// by a transaction between `begin` and `commit`.
pub struct PgConn {
    pool: PgPool,
    idle: Option<PoolConnection<Postgres>>,
    tx: Option<Transaction<'static, Postgres>>,
}

impl PgConn {
    /// The connection to run the next statement on.
    async fn connection(&mut self) -> Result<&mut PgConnection, StoreError> {
        if let Some(tx) = self.tx.as_mut() {
            return Ok(&mut **tx);
        }
        let idle = match self.idle.take() {
            Some(idle) => idle,
            None => self.pool.acquire().await.map_err(db_err)?,
        };
        Ok(&mut **self.idle.insert(idle))
    }

    /// The open transaction, or an error naming the misuse.
    fn open_transaction(&mut self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.tx
            .take()
            .ok_or_else(|| StoreError::Database("no transaction is open".to_owned()))
    }
}

impl sealed::Conn for PgConn {
    type Row = PgRow;

    fn execute<'a>(
        &'a mut self,
        query: Query<'a>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + 'a {
        let on_unique = query.on_unique();
        let query = query.into_sqlx::<Postgres>();
        async move {
            let conn = self.connection().await?;
            query
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
                .map_err(|err| store_err(err, on_unique))
        }
    }

    fn fetch_optional<'a>(
        &'a mut self,
        query: Query<'a>,
    ) -> impl Future<Output = Result<Option<PgRow>, StoreError>> + Send + 'a {
        let on_unique = query.on_unique();
        let query = query.into_sqlx::<Postgres>();
        async move {
            let conn = self.connection().await?;
            query
                .fetch_optional(conn)
                .await
                .map_err(|err| store_err(err, on_unique))
        }
    }

    fn fetch_all<'a>(
        &'a mut self,
        query: Query<'a>,
    ) -> impl Future<Output = Result<Vec<PgRow>, StoreError>> + Send + 'a {
        let on_unique = query.on_unique();
        let query = query.into_sqlx::<Postgres>();
        async move {
            let conn = self.connection().await?;
            query
                .fetch_all(conn)
                .await
                .map_err(|err| store_err(err, on_unique))
        }
    }

    /// A plain `BEGIN` (READ COMMITTED): the conditional statements inside take the row locks
    /// that serialise the races the trait cares about.
    async fn begin(&mut self) -> Result<(), StoreError> {
        if self.tx.is_some() {
            return Err(StoreError::Database(
                "a transaction is open already".to_owned(),
            ));
        }
        let idle = match self.idle.take() {
            Some(idle) => idle,
            None => self.pool.acquire().await.map_err(db_err)?,
        };
        self.tx = Some(Transaction::begin(idle, None).await.map_err(db_err)?);
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), StoreError> {
        self.open_transaction()?.commit().await.map_err(db_err)
    }

    async fn rollback(&mut self) -> Result<(), StoreError> {
        self.open_transaction()?.rollback().await.map_err(db_err)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        let options = parse_url("postgres://alice:secret@db.example:6543/auth").unwrap();
        assert_eq!(options.get_host(), "db.example");
        assert_eq!(options.get_port(), 6543);
        assert_eq!(options.get_username(), "alice");
        assert_eq!(options.get_database(), Some("auth"));
        assert_eq!(options.get_application_name(), Some("mcpauth"));

        let options = parse_url("postgresql://localhost/auth?application_name=other").unwrap();
        assert_eq!(options.get_database(), Some("auth"));
        assert_eq!(options.get_application_name(), Some("other"));

        let options =
            parse_url("postgres://localhost/auth?options=-c%20search_path%3Dmcpauth").unwrap();
        assert_eq!(options.get_options(), Some("-c search_path=mcpauth"));
        let options = parse_url("postgres://localhost/auth?options[search_path]=mcpauth").unwrap();
        assert_eq!(options.get_options(), Some("-c search_path=mcpauth"));

        for bad in [
            "sqlite://mcpauth.db",
            "mysql://u:p@host/db",
            "postgres:/nohost",
            "",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        match parse_url("postgres://u:hunter2@[::1/db") {
            Err(StoreError::Database(msg)) => assert!(!msg.contains("hunter2"), "{msg}"),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn schema_sql_contains_every_table() {
        let sql = pg_schema_sql();
        for table in [
            "\"user\"",
            "\"session\"",
            "\"account\"",
            "\"verification\"",
            "\"oauthApplication\"",
            "\"oauthConsent\"",
            "\"oauthTokenFamily\"",
            "\"oauthAuthorizationCode\"",
            "\"oauthAccessToken\"",
            "\"oauthRefreshToken\"",
            "\"mcpauthSetting\"",
            "\"rateLimit\"",
            "\"oauthSigningKey\"",
            "\"auditLog\"",
        ] {
            assert!(
                sql.contains(&format!("CREATE TABLE {table}")),
                "missing {table}"
            );
        }
        assert!(sql.starts_with("-- migration 0001: init\n"));
    }

    /// The access-token lookup can probe the `token_hash` index, on a server at
    /// `MCPAUTH_TEST_POSTGRES_URL` (the planner picks the index once the table is big enough to
    /// make a sequential scan dearer; forbidding sequential scans shows the index is usable).
    #[tokio::test]
    async fn access_token_lookup_is_one_indexed_probe() {
        use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

        let url = std::env::var("MCPAUTH_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let schema = format!("test_plan_{}_{nanos}", std::process::id());
        let mut admin = PgConnection::connect(&url)
            .await
            .unwrap_or_else(|err| panic!("PostgreSQL at {url} is unreachable: {err}"));
        admin
            .execute(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .await
            .unwrap();

        let plan = async {
            let store = PgStore::connect_with(
                &url,
                PgStoreOptions {
                    max_connections: 1,
                    search_path: Some(schema.clone()),
                    ..PgStoreOptions::default()
                },
            )
            .await?;
            store.migrate().await?;
            let mut conn = store.pool().acquire().await.map_err(crate::error::db_err)?;
            conn.execute("SET enable_seqscan = off")
                .await
                .map_err(crate::error::db_err)?;
            let plan: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
                "EXPLAIN {}",
                crate::shared::store::ACCESS_TOKEN_GRANT_SQL
            )))
            .bind("hash")
            .fetch_all(&mut *conn)
            .await
            .map_err(crate::error::db_err)?;
            drop(conn);
            store.close().await;
            Ok::<_, StoreError>(plan.join("\n"))
        }
        .await;
        admin
            .execute(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .await
            .unwrap();

        let plan = plan.unwrap();
        assert!(plan.contains("oauthAccessToken_token_hash_key"), "{plan}");
        // Every other table is reached by its primary or unique key.
        for index in [
            "oauthTokenFamily_pkey",
            "user_pkey",
            "oauthApplication_client_id_key",
        ] {
            assert!(plan.contains(index), "{index}: {plan}");
        }
        assert!(!plan.contains("Seq Scan"), "{plan}");
    }
}
