//! Identity providers for mcpauth: implementations of
//! [`mcpauth_core::identity_provider::IdentityProvider`] (the seam in core, next to `Store`;
//! re-exported as `mcpauth::IdentityProvider`), which the `mcpauth` binary builds from
//! `[[identity_providers]]`. This crate depends on `mcpauth-core` only, as the store does. The
//! rules around a provider are mcpauth's: the flow (state, nonce, PKCE) is the library's
//! (`mcpauth::identity_provider`), the linking decision and the allow-lists are core's
//! (`mcpauth_core::account_linking`, `mcpauth_core::sign_in_policy`); this crate only speaks
//! each provider's protocol.
//!
//! - [`oidc`]: any OpenID Connect provider, from its issuer URL (discovery, the code flow with
//!   PKCE and nonce, the id_token verified against the provider's JWKS by `openidconnect`,
//!   userinfo when the id_token carries no email).
//! - [`github`]: GitHub (OAuth 2 via `oauth2`, then its REST API for the user and the verified
//!   primary email), with overridable base URLs.
//! - `http`: the HTTP client both use: our reqwest through the crates' async-client hook, with
//!   timeouts, no redirects and a bounded response size.

mod http;

pub mod github;
pub mod oidc;

pub use github::{GitHubConfig, GitHubProvider};
pub use http::HttpOptions;
pub use oidc::{OidcConfig, OidcProvider};

/// Why a provider could not be set up from its configuration.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);
