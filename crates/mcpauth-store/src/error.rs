//! Mapping database errors (sqlx's for PostgreSQL, rusqlite's for SQLite) into [`StoreError`].
//!
//! Both variants keep the database's error code (PostgreSQL's SQLSTATE, e.g. `23505`; SQLite's
//! extended result code, e.g. `2067`) in their text, so that logs show it.

use mcpauth_core::StoreError;

/// A failed database call as a [`StoreError`]: a violated UNIQUE or PRIMARY KEY constraint is
/// [`StoreError::Conflict`] with `on_unique` when the statement says what such a violation
/// means (see [`Query::on_unique_violation`](crate::shared::Query::on_unique_violation)),
/// anything else [`StoreError::Database`], whose message is for logs.
pub(crate) fn store_err(err: sqlx::Error, on_unique: Option<&str>) -> StoreError {
    let db = err.as_database_error();
    let code = db.and_then(|db| db.code()).map(|code| code.into_owned());
    match on_unique {
        Some(what) if db.is_some_and(|db| db.is_unique_violation()) => {
            StoreError::Conflict(with_code(what.to_owned(), code.as_deref()))
        }
        _ => StoreError::Database(with_code(err.to_string(), code.as_deref())),
    }
}

/// Any database failure, as a [`StoreError::Database`] whose message is for logs.
pub(crate) fn db_err(err: sqlx::Error) -> StoreError {
    store_err(err, None)
}

/// SQLite's extended result codes for a violated UNIQUE and PRIMARY KEY constraint.
const SQLITE_CONSTRAINT_UNIQUE: i32 = 2067;
const SQLITE_CONSTRAINT_PRIMARYKEY: i32 = 1555;

/// A failed SQLite call as a [`StoreError`], like [`store_err`]. The message shows SQLite's
/// extended result code as `(code: N)` before SQLite's own text.
pub(crate) fn lite_err(err: rusqlite::Error, on_unique: Option<&str>) -> StoreError {
    let Some(failure) = err.sqlite_error() else {
        return StoreError::Database(err.to_string());
    };
    let code = failure.extended_code;
    match on_unique {
        Some(what) if code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY => {
            StoreError::Conflict(format!("{what} (code {code})"))
        }
        _ => StoreError::Database(format!("(code: {code}) {err}")),
    }
}

/// `text`, followed by the database's error code unless the text already shows it (SQLite's
/// messages do).
fn with_code(text: String, code: Option<&str>) -> String {
    match code {
        Some(code) if !text.contains(code) => format!("{text} (code {code})"),
        _ => text,
    }
}
