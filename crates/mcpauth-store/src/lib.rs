//! Storage backends for mcpauth: implementations of [`mcpauth_core::Store`] on SQLite and
//! PostgreSQL.
//!
//! Both backends are one type, [`SqlStore`], over a sealed [`Backend`]: [`SqliteStore`] is
//! `SqlStore<Sqlite>` (on rusqlite) and [`PgStore`] is `SqlStore<Postgres>` (on sqlx). Every
//! [`Store`](mcpauth_core::Store) method — its SQL text and its row decoding — is written once
//! (`shared::store`, `shared::rows`, private) as one closure over a connection, and behaves
//! identically on both; the backend modules hold only what differs: connecting, running an
//! operation's closure, the embedded migrations, and how a write transaction begins.
//!
//! [`sqlite`] is the SQLite backend's front door. [`SqliteStore`] owns a thread per connection,
//! set up for a small, busy authorization server: WAL journal (truncated back to 64 MiB after
//! checkpoints, a checkpoint every 10 000 pages), `synchronous=NORMAL`, enforced foreign keys, a
//! 5 s busy timeout; [`DEFAULT_MAX_CONNECTIONS`] reader threads on one queue and one writer
//! thread, so that writers queue in process, first come first served, rather than in SQLite's
//! busy handler (exactly one connection in all for an in-memory database, which would otherwise
//! be one database per connection). An operation is sent to a thread whole and runs there to its
//! end: one hand-off per operation, however many statements it has. Write transactions open
//! with `BEGIN IMMEDIATE`, so a writer in another process (the admin CLI) waits on the busy
//! timeout instead of deadlocking on a lock upgrade. The schema is embedded from
//! `migrations/sqlite/` as [`SQLITE_MIGRATOR`] and applied with sqlx's own bookkeeping
//! (`_sqlx_migrations`), so databases made by earlier versions on sqlx's SQLite driver open
//! unchanged; [`sqlite_schema_sql`] returns the same SQL as text for `mcpauth generate`.
//!
//! [`postgres`] is the PostgreSQL backend's: [`PgStore::connect`] takes a `postgres://` or
//! `postgresql://` URL (sqlx's parameters, including `options=-c search_path=…`), and
//! [`PgStoreOptions`] sets the pool size, the acquire timeout and an optional `search_path`.
//! Several instances may share one database: migrations take an advisory lock, and every
//! concurrency promise of the trait holds across connections. The schema is embedded from
//! `migrations/postgres/` as [`PG_MIGRATOR`]; [`pg_schema_sql`] prints it.
//!
//! `shared::store` implements every [`Store`](mcpauth_core::Store) method with the atomicity
//! the trait documents: a code is consumed by one conditional `UPDATE … RETURNING` (a replay
//! revokes the code's token family) or redeemed with its tokens in one transaction whose
//! conditional `UPDATE` decides the single winner, a refresh token is rotated, together with its successors
//! and retry response, in one transaction whose conditional `UPDATE` decides the single winner,
//! a verification is taken by `DELETE … RETURNING`, and a rate-limit window is counted by one
//! `INSERT … ON CONFLICT … DO UPDATE … RETURNING`. It also holds the access-token lookup,
//! the hot path: one probe of the unique `token_hash` index joined by key to family, user and
//! client; and the revocation epoch, a counter every revoking transaction bumps first, which
//! lets servers keep validated tokens in memory without missing a revocation.
//!
//! `shared::rows` decodes rows of either database into [`mcpauth_core::model`] types, parsing
//! scopes, redirect URIs and grant types from the text they are stored as. Each
//! decoder sits next to a macro holding its column list, so queries can be assembled with
//! `concat!` as `&'static str`, and a change to a list is made beside the code that reads it.
//!
//! `error` (private) maps sqlx and rusqlite errors into [`mcpauth_core::StoreError`]: unique
//! violations (SQLite's constraint errors, PostgreSQL's SQLSTATE 23505) become `Conflict`
//! where the trait promises it (the statement says so with `Query::on_unique_violation`),
//! everything else
//! `Database`, whose message is for logs only; both keep the database's error code in their
//! text. The query helpers return `StoreError` already, so the queries simply use `?`.
//!
//! The schema uses Better Auth's table names (`"user"`, `"session"`, `"account"`,
//! `"verification"`, `"oauthApplication"`, `"oauthAccessToken"`, `"oauthConsent"`), always
//! double-quoted, plus mcpauth's own `"oauthAuthorizationCode"`, `"oauthTokenFamily"`,
//! `"oauthRefreshToken"`, `"oauthSigningKey"`, `"auditLog"`, `"rateLimit"` (rate-limit counters
//! shared by every instance) and `"mcpauthSetting"`. Columns are
//! snake_case and the same in both dialects: times are integer Unix seconds (`INTEGER` /
//! `BIGINT`), booleans `INTEGER` 0/1 / `BOOLEAN`, JSON is text, and PostgreSQL's text columns
//! use the `"C"` collation so comparisons and orderings are byte-wise, as in SQLite. The
//! behavioural contract both backends pass lives in `tests/store/contract.rs`, one module of
//! the crate's single integration-test binary.

#![warn(missing_docs)]

mod error;
pub mod postgres;
mod shared;
pub mod sqlite;

pub use postgres::{PG_MIGRATOR, PgStore, PgStoreOptions, pg_schema_sql};
/// The rusqlite crate the SQLite backend runs on (for [`SqliteStore::with_connection`]).
pub use rusqlite;
pub use shared::{Backend, SqlStore};
pub use sqlite::Sqlite;
pub use sqlite::{
    ConnectionUsage, DEFAULT_MAX_CONNECTIONS, SQLITE_MIGRATOR, SqliteStore, backup_sqlite,
    sqlite_schema_sql,
};
