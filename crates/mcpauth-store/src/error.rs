//! Mapping sqlx errors into [`StoreError`].

use mcpauth_core::StoreError;

/// Any database failure, as a [`StoreError::Database`] whose message is for logs.
pub(crate) fn db_err(err: sqlx::Error) -> StoreError {
    StoreError::Database(err.to_string())
}

/// Whether the error is a violated UNIQUE or PRIMARY KEY constraint.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

/// A unique violation as [`StoreError::Conflict`] with `what`; anything else as `Database`.
pub(crate) fn conflict_or_db(err: sqlx::Error, what: &str) -> StoreError {
    if is_unique_violation(&err) {
        StoreError::Conflict(what.to_owned())
    } else {
        db_err(err)
    }
}
