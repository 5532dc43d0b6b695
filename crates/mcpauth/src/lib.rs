//! mcpauth: an OAuth 2.1 authorization server for MCP clients, embedded in an axum application.
//!
//! Build an [`McpAuth`] from a [`mcpauth_core::Store`] and [`McpAuthOptions`], then
//! mount [`McpAuth::router`]: it serves discovery (RFC 8414, RFC 9728), dynamic client
//! registration (RFC 7591), the authorization and token endpoints, the Better Auth–compatible
//! account API and the built-in sign-in, sign-up and consent pages.
//!
//! - [`options`]: what can be configured.
//! - `errors`: how protocol errors become HTTP responses (one place).
//! - `params`: request parameters from query strings, forms and JSON, with the duplicate and
//!   content-type rules of RFC 6749 §3.
//! - `discovery`, `register`, `authorize`, `token`: the OAuth endpoints.
//! - `account`: sign-up, sign-in, sign-out and sessions (cookie and bearer).
//! - `pages`: the server-rendered HTML pages.
//! - `keys`, `oidc`: id_token signing keys, id_tokens, userinfo and JWKS (OIDC Core).
//! - `revocation`: token revocation (RFC 7009) and introspection (RFC 7662).
//! - `guard`: `with_mcp_auth`, the layer that protects an MCP endpoint.
//! - [`rate_limit`]: the rate limits and where their counters live (this process, the
//!   database or Redis).
//! - `web`: cookies, CSRF, security headers and client addresses.

#![warn(missing_docs)]

mod account;
mod accounts;
mod authorize;
mod browser_session;
mod discovery;
mod errors;
mod guard;
mod keys;
mod mcp_auth;
mod oidc;
pub mod options;
mod pages;
mod params;
mod passwords;
pub mod rate_limit;
mod register;
mod revocation;
mod router;
mod session;
mod token;
mod token_cache;
mod views;
mod web;

pub use accounts::{AccountError, Accounts, MAX_PASSWORD, MIN_PASSWORD};
pub use discovery::{oauth_discovery_metadata, oauth_protected_resource_metadata};
pub use guard::{McpAuthLayer, McpAuthService};
pub use keys::{KeyError, SigningAlgorithm, SigningKeys};
pub use mcp_auth::{BuildError, McpAuth, key_encryption_secret, server_secret};
pub use options::{McpAuthOptions, RefreshTokenPolicy, TrustedClient};
#[cfg(feature = "redis")]
pub use rate_limit::RedisRateLimits;
pub use rate_limit::{
    MemoryRateLimits, RateLimitBackend, RateLimitOptions, RateLimitStore, RateLimitStoreError,
    RateLimited, StoreRateLimits,
};
pub use router::cors;
pub use errors::BearerError;
pub use session::McpSession;
pub use token_cache::TokenCacheOptions;
