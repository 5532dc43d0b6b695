//! The store's integration tests, as one test binary:
//!
//! - [`contract`]: the behaviour every [`Store`](mcpauth_core::Store) backend must have, run
//!   against SQLite (a file, and in memory) and PostgreSQL.
//! - [`contract_accounts`]: the part of the contract about linked accounts.
//! - [`contract_console`]: the part of the contract the console reads (SECURITY A1).
//! - [`contract_outbox`]: the part of the contract about the mail outbox.
//! - [`contract_connections`]: the part of the contract about connected accounts.
//! - [`sqlite`]: what is particular to the SQLite backend.
//! - [`postgres`]: what is particular to the PostgreSQL backend.
//! - [`support`]: a PostgreSQL schema per test, and fixtures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod contract;
mod contract_accounts;
mod contract_connections;
mod contract_console;
mod contract_outbox;
mod postgres;
mod sqlite;
mod support;
