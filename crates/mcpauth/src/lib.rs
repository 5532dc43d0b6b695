//! mcpauth: an OAuth 2.1 authorization server for MCP clients, embedded in an axum application.
//!
//! Build an [`McpAuth`] from a [`mcpauth_core::Store`] and [`McpAuthOptions`], then
//! mount [`McpAuth::router`]: it serves discovery (RFC 8414, RFC 9728), dynamic client
//! registration (RFC 7591), the authorization and token endpoints, the Better Auth–compatible
//! account API and the built-in sign-in, sign-up and consent pages. The protocol rules
//! themselves (what a registration, an authorization request or a grant may contain) live in
//! `mcpauth-core`; this crate is HTTP around them.
//!
//! The handle and its services:
//! - `mcp_auth`: [`McpAuth`], built from the checked options, and the services below; fields
//!   private, reached through accessors.
//! - [`options`]: what can be configured, and every rule an option must meet (checked by
//!   `McpAuth::new`, so a library user gets the server's checks); the server's configuration
//!   file deserializes into these types. How durations and secrets are written
//!   (`option_formats`) is a leaf of its own, so the option types beside their services need
//!   not import `options` back.
//! - `password_accounts`: [`Accounts`], users with an email and an argon2id password
//!   (hashing in `passwords`).
//! - `keys`: [`SigningKeys`], id_token signing keys (generation, rotation, JWKS).
//! - [`rate_limit`]: the rate limits and where their counters live (this process, the
//!   database or Redis).
//! - `token_cache`: validated access tokens kept in memory, bounded by the revocation epoch.
//! - `web`: cookies, CSRF, same-origin checks, security headers and client addresses.
//! - [`email`]: the mail service of password reset and email verification: the [`Mailer`]
//!   seam (SMTP or the development log), single-use hashed tokens, the request queue and the
//!   outbox sender (stored mail, retries, leases). It does not depend on the `McpAuth` hub.
//! - `email_flows`: what a request about mail does (rate limits, completing a reset, following
//!   a verification link) and Better Auth's email endpoints (`email_flows::api`); their pages
//!   are in `pages::email`.
//!
//! Where a request becomes a response:
//! - `errors`: every error → response mapping (OAuth JSON, the account API's JSON, JSON-RPC
//!   with `WWW-Authenticate`, HTML pages) and the `NoStore` wrapper — the one place.
//! - `params`: request bodies, and which [`mcpauth_core::Params`] parser a `Content-Type` picks.
//! - `discovery`, `register`, `authorize`, `token`, `client_auth`, `revocation`, `oidc`: the
//!   OAuth and OpenID endpoints.
//! - `account_api`, `browser_session`: Better Auth's JSON account API (sign-up, sign-in,
//!   sign-out, get-session) and the browser's session and login-resume cookies.
//! - `pages`, `views`: the server-rendered HTML pages and their templates.
//! - `resources`: the protected resources tokens are issued for (the main MCP endpoint and
//!   [`ProtectedResource`]s), with their metadata URLs and scopes.
//! - `session`, `bearer`, `guard`: [`McpSession`] (a leaf), how a bearer token becomes one
//!   (`McpAuth::verify_bearer`, the challenges), and `with_mcp_auth`, the layer that protects an
//!   MCP endpoint (`with_mcp_auth_for`: another protected resource).
//! - [`identity_provider`]: sign-in through identity providers (OpenID Connect, GitHub): the
//!   flow (a configured provider, [`SignInProvider`], is an option) (state, nonce, PKCE, the callback),
//!   which carries out core's linking decision (`mcpauth_core::account_linking`). The
//!   [`IdentityProvider`] trait is core's seam (implemented in `mcpauth-idp`), re-exported here.
//!   "Upstream" always means an MCP server behind the gateway.
//! - `access_token_jwt`: RFC 9068 JWT access tokens ([`AccessTokenFormat`] per resource): their
//!   claims, and the check mcpauth's own guard makes before the stored row decides.
//! - `dpop`: DPoP proofs (RFC 9449 §4.3), their single-use `jti`s and the server nonces; used
//!   by `token` (binding) and `bearer` (a bound token's proof with `ath`).
//! - [`remote`]: [`remote::RemoteVerifier`], for MCP servers elsewhere that verify this
//!   server's JWT access tokens with its discovery document and JWKS alone.
//! - [`connections`]: connected accounts (the token vault): [`Connections`] hands a user's
//!   token at a configured service to the code acting for them (refreshed single-flight),
//!   makes connect URLs for MCP URL elicitations, and checks and rotates the vault keys; it
//!   does not depend on the `McpAuth` hub. `connection_pages`: the browser side (connect,
//!   the provider's callback, disconnect; SECURITY V2). `audit`: the security log's one
//!   choke point, a leaf.
//! - `console`: the operator's console at `{base_path}/admin` and its JSON API (SECURITY A1):
//!   who is an admin, the pages, the actions (each audited with the acting admin).
//! - The grants without a browser (issue 21, SECURITY E1–E3): `machine_options` (a leaf: the
//!   `[client_credentials]` and `[[trusted_issuers]]` settings), `assertion_keys` (a service:
//!   JWS checks, `private_key_jwt` clients' keys fetched under M3's rules, the trusted issuers
//!   and their keys), `client_assertion` (`private_key_jwt` authentication, from `client_auth`),
//!   `client_credentials` and `id_jag` (the decisions, minted by `token`).
//! - `router`: which path answers what.
//!
//! No two modules import each other, even through the hub: services (options, accounts, keys,
//! rate limits, the token cache, mail) never reach the request layer or `McpAuth`, and the
//! request layer never reaches back from a lower handler to a higher one
//! (`scripts/module-cycles.py`, run with the lints, keeps it so).

#![warn(missing_docs)]

mod access_token_jwt;
mod account_api;
mod assertion_keys;
mod audit;
mod authorize;
mod bearer;
mod browser_session;
pub mod cimd;
mod client_assertion;
mod client_auth;
mod client_credentials;
mod connection_pages;
pub mod connections;
mod console;
mod discovery;
mod dpop;
pub mod email;
mod email_flows;
mod errors;
mod guard;
mod id_jag;
pub mod identity_provider;
mod keys;
mod machine_options;
mod mcp_auth;
mod oidc;
mod option_formats;
pub mod options;
mod pages;
mod params;
mod password_accounts;
mod passwords;
pub mod rate_limit;
mod register;
pub mod remote;
mod resources;
mod revocation;
mod router;
mod session;
mod token;
mod token_cache;
mod views;
mod web;

pub use access_token_jwt::AccessTokenFormat;
pub use cimd::{CimdOptions, ClientMetadataFetcher, HttpFetcher};
pub use connections::{
    ConnectionCompleted, ConnectionError, ConnectionKind, ConnectionOptions, ConnectionToken,
    Connections,
};
pub use discovery::{oauth_discovery_metadata, oauth_protected_resource_metadata};
pub use email::{
    EmailOptions, EmailVerification, LogMailer, MailError, Mailer, OutgoingMail, SmtpMailer,
    SmtpOptions, SmtpTls,
};
pub use errors::{BearerError, JsonRpc};
pub use guard::{McpAuthLayer, McpAuthService};
pub use identity_provider::{IdentityProvider, IdentityProviderError, ProviderIdentity};
pub use keys::{KeyError, SigningAlgorithm, SigningKeys};
pub use machine_options::{ClientCredentialsOptions, SubjectMapping, TrustedIssuer};
pub use mcp_auth::{McpAuth, key_encryption_secret, server_secret};
pub use options::{
    ADMIN_SCOPE, BuildError, McpAuthOptions, ProtectedResource, RefreshReusePolicy,
    RefreshTokenPolicy, SignInProvider, TrustedClient,
};
pub use params::unreadable_body;
pub use password_accounts::{AccountError, Accounts, MAX_PASSWORD, MIN_PASSWORD};
#[cfg(feature = "redis")]
pub use rate_limit::RedisRateLimits;
pub use rate_limit::{
    MemoryRateLimits, RateLimitBackend, RateLimitOptions, RateLimitStore, RateLimitStoreError,
    RateLimited, StoreRateLimits,
};
pub use router::cors;
pub use session::McpSession;
pub use token_cache::TokenCacheOptions;

/// The parsers that read untrusted input, reachable for the fuzz targets in `fuzz/`. Not part
/// of the API: thin wrappers that change nothing about how the server uses them.
#[doc(hidden)]
pub mod fuzzing {
    use axum::http::HeaderMap;

    /// The bearer token of an `Authorization` header (`bearer.rs`).
    pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
        crate::bearer::bearer_token(headers).ok().flatten()
    }

    /// A cookie's value from the `Cookie` headers (`web.rs`).
    pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
        crate::web::cookie(headers, name)
    }

    /// The payload of a signed cookie value (the login resume cookie's format), checked with
    /// `secret`.
    pub fn verify_signed_value(secret: &str, purpose: &str, value: &str) -> Option<String> {
        let issuer = url::Url::parse("https://issuer.test").ok()?;
        crate::web::Site::new(secret, &issuer, false).verify_value(purpose, value)
    }

    /// The tools a JSON-RPC body calls, as the MCP guard reads them (`guard.rs`).
    pub fn called_tools(body: &[u8]) -> Option<Vec<String>> {
        crate::guard::called_tools(body)
    }

    /// A token or revocation request body, parsed by its `Content-Type` (`params.rs`).
    pub fn params_from_body(
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<mcpauth_core::Params, mcpauth_core::OAuthError> {
        crate::params::params_from_body(headers, body, &["resource"])
    }
}
