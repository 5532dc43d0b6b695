//! The SQLite backend, on rusqlite (bundled SQLite): connecting, the database threads, the
//! embedded schema, and what SQLite does differently from PostgreSQL (write transactions begin
//! `IMMEDIATE`). The [`Store`](mcpauth_core::Store) operations themselves are shared with
//! PostgreSQL (see [`SqlStore`]).
//!
//! Every connection is owned by a thread of its own: one writer thread with the only
//! connection that writes, and [`DEFAULT_MAX_CONNECTIONS`] reader threads sharing one queue.
//! A store operation is sent to one of them as a single closure, runs there to its end (all
//! its statements, its whole transaction), and its result comes back through a oneshot
//! channel: one hand-off per operation instead of one per statement. Writers queue in process,
//! first come first served; a writer in another process (the admin CLI) is waited for on the
//! 5 s busy timeout. The writer commits the writes waiting at the same moment together (group
//! commit, see `run_group`).
//!
//! The schema is applied from the same embedded migration files as before, with the same
//! `_sqlx_migrations` bookkeeping sqlx keeps, so a database created by an older mcpauth (on
//! sqlx's SQLite driver) opens as it is, and the reverse.

mod conn;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mcpauth_core::StoreError;
use rusqlite::{Connection, OpenFlags};
use sqlx::migrate::{MigrationType, Migrator};

use crate::error::lite_err;
use crate::shared::{OpFuture, SqlStore, schema_sql, sealed};
pub use conn::{LiteConn, LiteRow};

/// The schema migrations, embedded from `migrations/sqlite/`.
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How many connections (and threads) [`SqliteStore::connect`] opens for reads (writes have
/// one more of their own).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;

/// The WAL is truncated back to this size after a checkpoint that emptied it (SQLite otherwise
/// leaves it at its high-water mark).
const JOURNAL_SIZE_LIMIT: i64 = 64 << 20;

/// The WAL is copied back into the database (a checkpoint, with an fsync) once it holds this
/// many pages (40 MiB at 4 KiB pages; SQLite's default is 1 000). A page changed by many
/// transactions between two checkpoints is copied once: with the default, checkpoints were a
/// fifth of the writer thread's time under a code-exchange load.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;

/// How long a connection waits for another writer's lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection: more than the store has distinct statements.
const STATEMENT_CACHE: usize = 128;

/// The table where sqlx (and this backend, compatibly) records applied migrations.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// The whole schema as SQL text, every migration in order (for `mcpauth generate`).
pub fn sqlite_schema_sql() -> String {
    schema_sql(&SQLITE_MIGRATOR)
}

/// The SQLite database as a [`Backend`](crate::Backend): the marker type of
/// [`SqliteStore`]. It has no values.
#[derive(Debug)]
pub enum Sqlite {}

/// mcpauth's storage in one SQLite database file.
pub type SqliteStore = SqlStore<Sqlite>;

/// Writes waiting together that the writer thread commits in one transaction, at most.
const GROUP_LIMIT: usize = 64;

/// A closure run on a database thread. It runs the operation and returns whether the operation
/// failed, and what answers its caller once its writes are committed (given the error of a
/// failed group `COMMIT`, if that is how it ended).
struct Job {
    /// Whether the writer may run it inside a group transaction (store operations may; a
    /// migration or maintenance closure that manages transactions itself may not).
    groupable: bool,
    run: RunJob,
}

/// Runs a job's operation: whether it failed, and what answers its caller.
type RunJob = Box<dyn FnOnce(&mut LiteConn) -> (bool, Answer) + Send>;

/// Answers a job's caller, given the error of the group `COMMIT` that held its writes, if any.
type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// The database threads of a store: where operations are sent.
#[derive(Clone)]
pub struct SqliteHandle(Arc<Threads>);

struct Threads {
    /// The writer's queue. In memory, reads go here too: there is only one connection.
    writer: Mutex<Option<Sender<Job>>>,
    /// The readers' shared queue (none for an in-memory database).
    readers: Mutex<Option<Sender<Job>>>,
    reader_count: u32,
    busy_readers: Arc<AtomicU32>,
    busy_writer: Arc<AtomicU32>,
    operations: Arc<AtomicU64>,
    joins: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for SqliteHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteHandle")
            .field("readers", &self.0.reader_count)
            .finish()
    }
}

/// How many of a store's connections exist and how many are busy (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionUsage {
    /// Read connections (0 for an in-memory database, whose one connection is the writer).
    pub readers: u32,
    /// Read connections running an operation now.
    pub busy_readers: u32,
    /// Whether the write connection is running an operation now.
    pub writer_busy: bool,
    /// Operations the connection threads have started since the store was opened: each
    /// [`Store`](mcpauth_core::Store) call is one, however many statements it runs.
    pub operations: u64,
}

impl SqlStore<Sqlite> {
    /// Opens (creating it if missing) the database at `url` with
    /// [`DEFAULT_MAX_CONNECTIONS`] read connections. See [`SqliteStore::connect_with`].
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        Self::connect_with(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Opens the database at `url` with `max_connections` read connections and one more for
    /// writes, each on a thread of its own: SQLite lets one connection write at a time, so
    /// writers queue for that connection in process instead of sleeping in SQLite's busy
    /// handler.
    ///
    /// Accepts `sqlite://path`, `sqlite:path` and either with query parameters, which go to
    /// SQLite as URI parameters (`?mode=rwc|rw|ro|memory`, `cache`, `immutable`, `vfs`). The
    /// file is created if missing unless `mode=rw` or `mode=ro` asks otherwise. Connections
    /// use the WAL journal (truncated back to 64 MiB after checkpoints), `synchronous=NORMAL`,
    /// enforced foreign keys and a 5 s busy timeout.
    ///
    /// An in-memory database (`sqlite::memory:`, `mode=memory`) lives only as long as a
    /// connection to it, so it gets exactly one connection, whatever `max_connections` says.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<SqliteStore, StoreError> {
        let target = parse_url(url)?;
        let readers = if target.in_memory {
            0
        } else {
            max_connections.max(1)
        };
        // The writer connects first: it creates the file and switches it to WAL, which the
        // readers then find.
        let connections = blocking(move || {
            let writer = open(&target, true)?;
            let readers = (0..readers)
                .map(|_| open(&target, true))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((writer, readers))
        })
        .await?;
        let (writer, readers) = connections;
        let handle = SqliteHandle::start(writer, readers)?;
        tracing::debug!(readers = handle.0.reader_count, "opened SQLite store");
        Ok(SqlStore { handle })
    }

    /// How many connections the store has and how many are busy.
    pub fn connection_usage(&self) -> ConnectionUsage {
        let threads = &self.handle.0;
        ConnectionUsage {
            readers: threads.reader_count,
            busy_readers: threads.busy_readers.load(Ordering::Relaxed),
            writer_busy: threads.busy_writer.load(Ordering::Relaxed) > 0,
            operations: threads.operations.load(Ordering::Relaxed),
        }
    }

    /// Runs `f` on the write connection (which sees every committed write), for maintenance
    /// and tests that look past the [`Store`](mcpauth_core::Store) trait.
    pub async fn with_connection<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.handle
            .call(true, move |conn| {
                f(conn.connection()).map_err(|err| lite_err(err, None))
            })
            .await
    }

    /// Runs `f` on a read connection (for tests of the connections' settings).
    pub async fn with_read_connection<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.handle
            .call(false, move |conn| {
                f(conn.connection()).map_err(|err| lite_err(err, None))
            })
            .await
    }

    /// Stops the database threads once the operations already queued have run, and closes
    /// their connections. Operations started afterwards fail.
    pub async fn close(&self) {
        let threads = Arc::clone(&self.handle.0);
        for queue in [&threads.writer, &threads.readers] {
            queue.lock().unwrap_or_else(PoisonError::into_inner).take();
        }
        let joins =
            std::mem::take(&mut *threads.joins.lock().unwrap_or_else(PoisonError::into_inner));
        let _ = tokio::task::spawn_blocking(move || {
            for join in joins {
                let _ = join.join();
            }
        })
        .await;
    }
}

impl SqliteHandle {
    /// Starts a thread per connection.
    fn start(writer: Connection, readers: Vec<Connection>) -> Result<SqliteHandle, StoreError> {
        let busy_writer = Arc::new(AtomicU32::new(0));
        let busy_readers = Arc::new(AtomicU32::new(0));
        let operations = Arc::new(AtomicU64::new(0));
        let reader_count = u32::try_from(readers.len()).unwrap_or(u32::MAX);
        let mut joins = Vec::new();

        let (writer_tx, writer_rx) = channel::<Job>();
        let writer_rx = Arc::new(Mutex::new(writer_rx));
        joins.push(spawn(
            "mcpauth-sqlite-w",
            writer,
            writer_rx,
            busy_writer.clone(),
            operations.clone(),
            true,
        )?);

        let readers_tx = if readers.is_empty() {
            None
        } else {
            let (readers_tx, readers_rx) = channel::<Job>();
            let readers_rx = Arc::new(Mutex::new(readers_rx));
            for (n, reader) in readers.into_iter().enumerate() {
                let name = format!("mcpauth-sqlite-r{n}");
                joins.push(spawn(
                    &name,
                    reader,
                    readers_rx.clone(),
                    busy_readers.clone(),
                    operations.clone(),
                    false,
                )?);
            }
            Some(readers_tx)
        };
        Ok(SqliteHandle(Arc::new(Threads {
            writer: Mutex::new(Some(writer_tx)),
            readers: Mutex::new(readers_tx),
            reader_count,
            busy_readers,
            busy_writer,
            operations,
            joins: Mutex::new(joins),
        })))
    }

    /// Sends `job` to the writer (`write`) or to the readers (or, without readers, the
    /// writer).
    fn send(&self, write: bool, job: Job) -> Result<(), StoreError> {
        let threads = &self.0;
        let mut queue = if write {
            None
        } else {
            threads
                .readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        };
        if queue.is_none() {
            queue = threads
                .writer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
        }
        queue.ok_or_else(closed)?.send(job).map_err(|_| closed())
    }

    /// Runs `f` on a connection thread and waits for its result.
    async fn call<T, F>(&self, write: bool, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut LiteConn) -> Result<T, StoreError> + Send + 'static,
    {
        self.call_with(write, false, f).await
    }

    /// [`Self::call`], for a store operation: the writer may commit it together with other
    /// writes waiting at the same moment (see [`run_group`]).
    async fn call_grouped<T, F>(&self, write: bool, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut LiteConn) -> Result<T, StoreError> + Send + 'static,
    {
        self.call_with(write, true, f).await
    }

    async fn call_with<T, F>(&self, write: bool, groupable: bool, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut LiteConn) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let run = move |conn: &mut LiteConn| -> (bool, Answer) {
            // A panic inside the operation fails that operation only; the thread and its
            // connection stay (the transaction, if any, is rolled back).
            let result =
                std::panic::catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|_| {
                    Err(StoreError::Database(
                        "a SQLite operation panicked".to_owned(),
                    ))
                });
            let failed = result.is_err();
            let answer: Answer = Box::new(move |commit: Option<&StoreError>| {
                let _ = reply.send(match commit {
                    // A failed COMMIT is a database failure for every write of the group.
                    Some(err) => Err(StoreError::Database(match err {
                        StoreError::Database(text) | StoreError::Conflict(text) => text.clone(),
                    })),
                    None => result,
                });
            });
            (failed, answer)
        };
        self.send(
            write,
            Job {
                groupable,
                run: Box::new(run),
            },
        )?;
        answer.await.map_err(|_| closed())?
    }
}

fn closed() -> StoreError {
    StoreError::Database("the SQLite store is closed".to_owned())
}

/// Starts the thread that owns `conn` and runs the jobs of `queue` on it.
fn spawn(
    name: &str,
    conn: Connection,
    queue: Arc<Mutex<Receiver<Job>>>,
    busy: Arc<AtomicU32>,
    operations: Arc<AtomicU64>,
    group: bool,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let mut conn = LiteConn::new(conn);
            let mut pending = std::collections::VecDeque::new();
            loop {
                if pending.is_empty() {
                    // Readers share one queue: the one holding the lock waits for the next
                    // job. The writer takes every write waiting (see run_group).
                    let queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
                    match queue.recv() {
                        Ok(job) => pending.push_back(job),
                        Err(_) => break,
                    }
                    if group {
                        while pending.len() < GROUP_LIMIT {
                            match queue.try_recv() {
                                Ok(job) => pending.push_back(job),
                                Err(_) => break,
                            }
                        }
                    }
                }
                busy.fetch_add(1, Ordering::Relaxed);
                let mut batch = Vec::new();
                while let Some(job) = pending.pop_front() {
                    if !job.groupable && !batch.is_empty() {
                        pending.push_front(job);
                        break;
                    }
                    let alone = !job.groupable;
                    batch.push(job);
                    if alone {
                        break;
                    }
                }
                operations.fetch_add(batch.len() as u64, Ordering::Relaxed);
                run_group(&mut conn, batch);
                busy.fetch_sub(1, Ordering::Relaxed);
            }
        })
        .map_err(|err| StoreError::Database(format!("cannot start a SQLite thread: {err}")))
}

/// Runs `jobs` and answers their callers. One job runs on its own, as it would anyway. Several
/// (writes that were waiting at the same moment) run in one transaction — **group commit** —
/// each inside a savepoint of its own: a job that fails is rolled back to its savepoint without
/// touching the others, and a transaction a job begins is a nested savepoint. Every caller is
/// answered only after the `COMMIT` that holds its writes; if that `COMMIT` fails, every job of
/// the group is told so (nothing of theirs was written). Pages several of the writes change
/// (table tails, the audit log, a family's or user's index entries) go to the WAL once, and
/// there is one commit instead of one per write.
fn run_group(conn: &mut LiteConn, jobs: Vec<Job>) {
    if jobs.len() == 1 || conn.start_group().is_err() {
        for job in jobs {
            let (_, answer) = (job.run)(conn);
            conn.end_transaction();
            answer(None);
        }
        return;
    }
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        if !conn.group_alive() || conn.start_member().is_err() {
            // The group transaction is gone (SQLite rolled it back after an error): the rest
            // run on their own.
            let (_, answer) = (job.run)(conn);
            conn.end_transaction();
            answer(None);
            continue;
        }
        let (failed, answer) = (job.run)(conn);
        conn.end_member(failed);
        answers.push(answer);
    }
    let committed = conn.end_group();
    for answer in answers {
        answer(committed.as_ref().err());
    }
}

impl sealed::Exec for Sqlite {
    type Handle = SqliteHandle;
    type Conn = LiteConn;

    /// Sends the operation to a database thread, which drives its future to the end in one
    /// poll: every statement of a [`LiteConn`] completes at once.
    async fn run<T, F>(handle: &SqliteHandle, write: bool, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut LiteConn) -> OpFuture<'c, T> + Send + 'static,
    {
        handle.call_grouped(write, move |conn| conn.drive(op)).await
    }

    async fn migrate(handle: &SqliteHandle) -> Result<(), StoreError> {
        handle
            .call(true, |conn| {
                migrate(conn.connection())
                    .map_err(|err| StoreError::Database(format!("migration failed: {err}")))
            })
            .await
    }
}

/// Applies the migrations not applied yet, recording each in `_sqlx_migrations` as sqlx does
/// (same table, same checksums), all in one `IMMEDIATE` transaction: of several processes
/// migrating at once, one applies and the others find everything applied.
fn migrate(conn: &Connection) -> Result<(), String> {
    let text = |err: rusqlite::Error| lite_err(err, None).to_string();
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
             version BIGINT PRIMARY KEY,
             description TEXT NOT NULL,
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
             success BOOLEAN NOT NULL,
             checksum BLOB NOT NULL,
             execution_time BIGINT NOT NULL
         );"
    ))
    .map_err(text)?;
    conn.execute_batch("BEGIN IMMEDIATE").map_err(text)?;
    let applied = (|| {
        let mut done = std::collections::HashMap::new();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT version, checksum, success FROM {MIGRATIONS_TABLE} ORDER BY version"
            ))
            .map_err(text)?;
        let mut rows = stmt.query([]).map_err(text)?;
        while let Some(row) = rows.next().map_err(text)? {
            let version: i64 = row.get(0).map_err(text)?;
            let checksum: Vec<u8> = row.get(1).map_err(text)?;
            let success: bool = row.get(2).map_err(text)?;
            if !success {
                return Err(format!(
                    "migration {version} is partially applied; fix and remove it from \
                     {MIGRATIONS_TABLE}"
                ));
            }
            done.insert(version, checksum);
        }
        drop(rows);
        drop(stmt);
        for migration in SQLITE_MIGRATOR.iter() {
            if matches!(migration.migration_type, MigrationType::ReversibleDown) {
                continue;
            }
            if let Some(checksum) = done.get(&migration.version) {
                if checksum.as_slice() != &*migration.checksum {
                    return Err(format!(
                        "migration {} was previously applied but has been modified",
                        migration.version
                    ));
                }
                continue;
            }
            let started = Instant::now();
            conn.execute_batch(migration.sql.as_str())
                .map_err(|err| format!("migration {}: {}", migration.version, text(err)))?;
            conn.execute(
                &format!(
                    "INSERT INTO {MIGRATIONS_TABLE}
                         (version, description, success, checksum, execution_time)
                     VALUES (?1, ?2, TRUE, ?3, ?4)"
                ),
                rusqlite::params![
                    migration.version,
                    &*migration.description,
                    &*migration.checksum,
                    i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX),
                ],
            )
            .map_err(text)?;
        }
        Ok(())
    })();
    match applied {
        Ok(()) => conn.execute_batch("COMMIT").map_err(text),
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(err)
        }
    }
}

/// Writes a consistent copy of the SQLite database at `url` to the new file `output`, while
/// servers keep using the database (`VACUUM INTO`: the copy is read in one read transaction, a
/// snapshot that concurrent writers in WAL mode neither block nor change). The copy is compact
/// and complete on its own (no `-wal` file), ready to be restored by copying it in place of
/// the database while no server runs. Fails if `output` exists or the database does not.
pub async fn backup_sqlite(url: &str, output: &Path) -> Result<(), StoreError> {
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
    let output = output
        .to_str()
        .ok_or_else(|| {
            StoreError::Database("the backup file's path is not valid UTF-8".to_owned())
        })?
        .to_owned();
    blocking(move || {
        let conn = open(&target, false)?;
        let copied = conn
            .execute("VACUUM INTO ?1", [&output])
            .map(drop)
            .map_err(|err| lite_err(err, None));
        let _ = conn.close();
        copied
    })
    .await
}

/// Runs blocking work (opening files) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|err| StoreError::Database(format!("a SQLite task failed: {err}")))?
}

/// Opens a connection to `target` with the store's settings; `create` lets a missing file be
/// created (unless the URL's mode forbids it).
fn open(target: &Target, create: bool) -> Result<Connection, StoreError> {
    let failed = |err: rusqlite::Error| {
        StoreError::Database(format!("cannot open the SQLite database: {err}"))
    };
    let conn = if target.in_memory {
        Connection::open_in_memory().map_err(failed)?
    } else {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        Connection::open_with_flags(&target.uri, flags).map_err(failed)?
    };
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(BUSY_TIMEOUT).map_err(failed)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(failed)?;
    if !target.in_memory && target.mode.as_deref() != Some("ro") {
        // Returns the mode as a row; pragma_update_and_check reads it.
        conn.pragma_update_and_check(None, "journal_mode", "wal", |_| Ok(()))
            .map_err(failed)?;
        conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
            .map_err(failed)?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
            .map_err(failed)?;
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(failed)?;
    // The savepoints of grouped writes keep their undo records in memory, not in temp files.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(failed)?;
    Ok(conn)
}

/// Parsed connection settings.
struct Target {
    /// A `file:` URI for SQLite (the path percent-encoded, the URL's parameters as they were).
    uri: String,
    mode: Option<String>,
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
    if let Some(mode) = mode
        && !matches!(mode, "ro" | "rw" | "rwc" | "memory")
    {
        return Err(StoreError::Database(
            "invalid SQLite URL: mode is one of ro, rw, rwc, memory".to_owned(),
        ));
    }
    let in_memory = path == ":memory:" || mode == Some("memory");
    if path.is_empty() && !in_memory {
        return Err(StoreError::Database(
            "the SQLite URL names no database file".to_owned(),
        ));
    }
    let mut uri = String::from("file:");
    for ch in path.chars() {
        match ch {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            _ => uri.push(ch),
        }
    }
    if let Some(params) = params {
        uri.push('?');
        uri.push_str(params);
    }
    Ok(Target {
        uri,
        mode: mode.map(str::to_owned),
        in_memory,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        assert!(!parse_url("sqlite://data/mcpauth.db").unwrap().in_memory);
        assert_eq!(
            parse_url("sqlite://data/mcpauth.db").unwrap().uri,
            "file:data/mcpauth.db"
        );
        assert!(!parse_url("sqlite:mcpauth.db").unwrap().in_memory);
        let abs = parse_url("sqlite:///abs/mcp%auth#1.db?mode=rwc").unwrap();
        assert!(!abs.in_memory);
        assert_eq!(abs.uri, "file:/abs/mcp%25auth%231.db?mode=rwc");
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
        let plan: Vec<String> = store
            .with_connection(|conn| {
                let mut stmt = conn.prepare(&format!(
                    "EXPLAIN QUERY PLAN {}",
                    crate::shared::store::ACCESS_TOKEN_GRANT_SQL
                ))?;
                let rows = stmt.query_map(["hash"], |row| row.get::<_, String>("detail"))?;
                rows.collect()
            })
            .await
            .unwrap();
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
