//! The black-box tests of the `mcpauth` server, all in one test binary (`it`): each module is one
//! behaviour, `common` is the kit that starts the real server on port 0 with a fresh SQLite file
//! and a clock the test can move. Some modules run the real binary instead
//! (`env!("CARGO_BIN_EXE_mcpauth")`: `cli`, `admin_cli`, `two_instances`) or the library's
//! example (`example`, built by `cargo build -p mcpauth --examples`).
//!
//! Tests may assume a process of their own: cargo-nextest (the project's runner, see
//! `scripts/test.sh`) runs every test in its own process, so a test that reads the environment,
//! picks a `#[tokio::test]` flavour or spawns children is alone in it. Under plain `cargo test`
//! the tests of this binary share one process and run on parallel threads; none of them changes
//! the process environment or shares state through statics, so that works too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod account_api;
mod account_page;
mod admin_cli;
mod authorize;
mod backup;
mod cimd;
mod cli;
mod config_docs;
mod connections;
mod console;
mod discovery;
mod email;
mod example;
mod faults;
mod field_clients;
mod gateway;
mod identity_provider;
mod interop_rmcp;
mod lingering_close;
mod machine_clients;
mod mcp_endpoint;
mod oidc;
mod operations;
mod pages;
mod proxy;
mod rate_limits;
mod registration;
mod smoke;
mod storage;
mod token;
mod token_cache;
mod token_formats;
mod trusted_clients;
mod two_instances;
