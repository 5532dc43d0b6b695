//! Storage backends for mcpauth: implementations of [`mcpauth_core::Store`].
//!
//! [`sqlite`] is the SQLite backend's front door. [`SqliteStore`] owns a connection pool set
//! up for a small, busy authorization server: WAL journal, `synchronous=NORMAL`, enforced
//! foreign keys, a 5 s busy timeout, [`DEFAULT_MAX_CONNECTIONS`] connections (exactly one for
//! an in-memory database, which would otherwise be one database per connection), and write
//! transactions opened with `BEGIN IMMEDIATE` so concurrent writers queue on the busy timeout
//! instead of deadlocking on a lock upgrade. The schema is embedded from `migrations/sqlite/`
//! as [`SQLITE_MIGRATOR`]; [`sqlite_schema_sql`] returns the same SQL as text for
//! `mcpauth generate`.
//!
//! `sqlite::store` (private) implements every [`Store`](mcpauth_core::Store) method with the
//! atomicity the trait documents: a code is redeemed by one conditional `UPDATE … RETURNING`
//! (a replay revokes the code's token family), and a refresh token is rotated, together with
//! its successors and retry response, in one transaction whose conditional `UPDATE` decides
//! the single winner. It also holds the access-token lookup, the hot path: one probe of the
//! unique `token_hash` index joined by key to family, user and client.
//!
//! `sqlite::rows` (private) decodes rows into [`mcpauth_core::model`] types. Each decoder sits
//! next to a macro holding its column list, so queries can be assembled with `concat!` as
//! `&'static str`, and a change to a list is made beside the code that reads it.
//!
//! `error` (private) maps sqlx errors into [`mcpauth_core::StoreError`]: unique violations
//! become `Conflict` where the trait promises it, everything else `Database`, whose message is
//! for logs only.
//!
//! The schema uses Better Auth's table names (`"user"`, `"session"`, `"account"`,
//! `"verification"`, `"oauthApplication"`, `"oauthAccessToken"`, `"oauthConsent"`), always
//! double-quoted, plus mcpauth's own `"oauthAuthorizationCode"`, `"oauthTokenFamily"`,
//! `"oauthRefreshToken"` and `"mcpauthSetting"`. Columns are snake_case, times are integer Unix
//! seconds, booleans 0/1 and JSON is text. Queries use `$n` placeholders and portable SQL
//! (`ON CONFLICT … DO UPDATE`, `RETURNING`) so a PostgreSQL twin needs only type changes in the
//! schema; the behavioural contract every backend must pass lives in `tests/contract.rs`.

#![warn(missing_docs)]

mod error;
pub mod sqlite;

pub use sqlite::{DEFAULT_MAX_CONNECTIONS, SQLITE_MIGRATOR, SqliteStore, sqlite_schema_sql};
