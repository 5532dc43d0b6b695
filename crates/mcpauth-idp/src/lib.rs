//! identity providers for mcpauth: implementations of
//! [`mcpauth::IdentityProvider`], which the `mcpauth` binary builds from
//! `[[identity_providers]]`. The rules around them (state, nonce, PKCE, linking, allow-lists)
//! are the library's (`mcpauth::identity_provider`); this crate only speaks each provider's protocol.
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
