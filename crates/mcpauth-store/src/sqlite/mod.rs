//! The SQLite backend: connecting, the embedded schema, and what SQLite does differently from
//! PostgreSQL (write transactions begin `IMMEDIATE`). The [`Store`](mcpauth_core::Store)
//! implementation itself is shared with PostgreSQL (see [`SqlStore`]).

use std::str::FromStr;
use std::time::Duration;

use mcpauth_core::StoreError;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Pool, SqlSafeStr, Sqlite, Transaction};

use crate::shared::{SqlStore, impl_exec_queries, schema_sql, sealed};

/// The schema migrations, embedded from `migrations/sqlite/`.
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How many connections [`SqliteStore::connect`] opens for reads (writes have one more of
/// their own).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;

/// The WAL is truncated back to this size after a checkpoint that emptied it (SQLite otherwise
/// leaves it at its high-water mark).
const JOURNAL_SIZE_LIMIT: &str = "67108864";

/// How long a connection waits for another writer's lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The whole schema as SQL text, every migration in order (for `mcpauth generate`).
pub fn sqlite_schema_sql() -> String {
    schema_sql(&SQLITE_MIGRATOR)
}

/// mcpauth's storage in one SQLite database file.
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
    /// Opens (creating it if missing) the database at `url` with a pool of
    /// [`DEFAULT_MAX_CONNECTIONS`] connections. See [`SqliteStore::connect_with`].
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        Self::connect_with(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Opens the database at `url` with at most `max_connections` pooled connections for reads
    /// and one more for writes: SQLite lets one connection write at a time, so writers queue
    /// for that connection in process instead of sleeping in SQLite's busy handler.
    ///
    /// Accepts `sqlite://path`, `sqlite:path` and either with sqlx's query parameters
    /// (`?mode=rwc|rw|ro|memory`, `cache`, `immutable`, `vfs`). The file is created if missing
    /// unless `mode=rw` or `mode=ro` asks otherwise. Connections use the WAL journal,
    /// `synchronous=NORMAL`, enforced foreign keys and a 5 s busy timeout.
    ///
    /// An in-memory database (`sqlite::memory:`, `mode=memory`) lives only as long as a
    /// connection to it, so it gets exactly one connection that is never recycled, whatever
    /// `max_connections` says.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<SqliteStore, StoreError> {
        let target = parse_url(url)?;
        let pool = if target.in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(target.options)
                .await
        } else {
            // The writer connects first: it creates the file and switches it to WAL, which the
            // readers then find. A local file does not go stale the way a network connection
            // does, so connections are not pinged before each use (a round trip to the
            // connection's worker thread per query).
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .connect_with(target.options.clone())
                .await
                .map_err(open_failed)?;
            let readers = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .test_before_acquire(false)
                .connect_with(target.options)
                .await
                .map_err(open_failed)?;
            tracing::debug!(readers = max_connections.max(1), "opened SQLite store");
            return Ok(SqlStore::from_pools(readers, writer));
        }
        .map_err(open_failed)?;
        tracing::debug!(in_memory = true, "opened SQLite store");
        Ok(SqlStore::from_pool(pool))
    }
}

/// Writes a consistent copy of the SQLite database at `url` to the new file `output`, while
/// servers keep using the database (`VACUUM INTO`: the copy is read in one read transaction, a
/// snapshot that concurrent writers in WAL mode neither block nor change). The copy is compact
/// and complete on its own (no `-wal` file), ready to be restored by copying it in place of
/// the database while no server runs. Fails if `output` exists or the database does not.
pub async fn backup_sqlite(url: &str, output: &std::path::Path) -> Result<(), StoreError> {
    let target = parse_url(url)?;
    if target.in_memory {
        return Err(StoreError::Database(
            "an in-memory database cannot be backed up".to_owned(),
        ));
    }
    if output.exists() {
        return Err(StoreError::Database(format!(
            "{} exists already; a backup never overwrites a file",
            output.display()
        )));
    }
    let output = output.to_str().ok_or_else(|| {
        StoreError::Database("the backup file's path is not valid UTF-8".to_owned())
    })?;
    let mut connection = target
        .options
        .create_if_missing(false)
        .connect()
        .await
        .map_err(open_failed)?;
    let copied = sqlx::query("VACUUM INTO ?")
        .bind(output)
        .execute(&mut connection)
        .await
        .map(|_| ())
        .map_err(crate::error::db_err);
    let _ = connection.close().await;
    copied
}

impl sealed::Exec for Sqlite {
    /// Takes the database's write lock up front, so that two transactions never both hold a
    /// read lock and then deadlock upgrading it; a second writer waits on the busy timeout
    /// instead.
    ///
    /// A write whose COMMIT failed (a full disk: SQLite then rolls the transaction back by
    /// itself) leaves sqlx counting a transaction still open on that connection, and such a
    /// connection can never begin another: it is closed and a fresh one taken, so that writes
    /// work again once the cause is gone.
    async fn begin_write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        let mut connection = pool.acquire().await?;
        if connection.is_in_transaction() {
            tracing::warn!("replacing a SQLite connection left inside a failed transaction");
            connection.close_on_drop();
            drop(connection);
            connection = pool.acquire().await?;
        }
        Transaction::begin(connection, Some("BEGIN IMMEDIATE".into_sql_str())).await
    }

    impl_exec_queries!(Sqlite);

    async fn migrate(pool: &Pool<Sqlite>) -> Result<(), StoreError> {
        SQLITE_MIGRATOR
            .run(pool)
            .await
            .map_err(|err| StoreError::Database(format!("migration failed: {err}")))
    }
}

fn open_failed(err: sqlx::Error) -> StoreError {
    StoreError::Database(format!("cannot open the SQLite database: {err}"))
}

/// Parsed connection settings.
struct Target {
    options: SqliteConnectOptions,
    in_memory: bool,
}

fn parse_url(url: &str) -> Result<Target, StoreError> {
    // The URL is not echoed in errors: a mistyped setting could be another database's URL with
    // a password in it.
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| {
            StoreError::Database("a SQLite URL starts with sqlite:// or sqlite:".to_owned())
        })?;
    let (path, params) = match rest.split_once('?') {
        Some((path, params)) => (path, Some(params)),
        None => (rest, None),
    };
    let mode = params.and_then(|params| {
        params
            .split('&')
            .filter_map(|pair| pair.strip_prefix("mode="))
            .next_back()
    });
    let in_memory = path == ":memory:" || mode == Some("memory");
    if path.is_empty() && !in_memory {
        return Err(StoreError::Database(
            "the SQLite URL names no database file".to_owned(),
        ));
    }

    let mut options = SqliteConnectOptions::from_str(url)
        .map_err(|err| StoreError::Database(format!("invalid SQLite URL: {err}")))?
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
        .synchronous(SqliteSynchronous::Normal);
    if !in_memory {
        if mode != Some("ro") {
            options = options
                .journal_mode(SqliteJournalMode::Wal)
                .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT);
        }
        if !matches!(mode, Some("ro" | "rw")) {
            options = options.create_if_missing(true);
        }
    }
    Ok(Target { options, in_memory })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        assert!(!parse_url("sqlite://data/mcpauth.db").unwrap().in_memory);
        assert!(!parse_url("sqlite:mcpauth.db").unwrap().in_memory);
        assert!(
            !parse_url("sqlite:///abs/mcpauth.db?mode=rwc")
                .unwrap()
                .in_memory
        );
        assert!(parse_url("sqlite::memory:").unwrap().in_memory);
        assert!(parse_url("sqlite://?mode=memory").unwrap().in_memory);
        assert!(parse_url("sqlite://").is_err());
        assert!(parse_url("postgres://u:p@host/db").is_err());
        assert!(parse_url("sqlite://x.db?mode=bogus").is_err());
    }

    #[test]
    fn schema_sql_contains_every_table() {
        let sql = sqlite_schema_sql();
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
        ] {
            assert!(
                sql.contains(&format!("CREATE TABLE {table}")),
                "missing {table}"
            );
        }
        assert!(sql.starts_with("-- migration 0001: init\n"));
    }

    /// The access-token lookup probes the token_hash index and scans no table.
    #[tokio::test]
    async fn access_token_lookup_is_one_indexed_probe() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("plan.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            crate::shared::store::ACCESS_TOKEN_GRANT_SQL
        )))
        .bind("hash")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| sqlx::Row::get::<String, _>(row, "detail"))
        .collect();
        assert_eq!(plan.len(), 4, "{plan:?}");
        assert!(
            plan[0].contains("oauthAccessToken_token_hash_key"),
            "{plan:?}"
        );
        assert!(
            plan.iter().all(|step| step.starts_with("SEARCH ")),
            "{plan:?}"
        );
    }
}
