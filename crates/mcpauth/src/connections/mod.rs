//! Connected accounts (the token vault): users connect services (GitHub, any OAuth 2.0 or
//! OpenID provider) to their mcpauth account, and the tools behind mcpauth act as them there.
//!
//! - `options`: a `[[connections]]` entry ([`ConnectionOptions`]): the provider, the client
//!   mcpauth is at that provider, the scopes asked for.
//! - `provider`: the OAuth 2.0 client side of a connection — authorization URL with PKCE,
//!   code exchange, refresh (RFC 6749 §6), revocation (RFC 7009; GitHub's own API).
//! - `service`: [`Connections`], what the library, the gateway and the CLI use: a user's token
//!   for a connection, refreshed before expiry once across every instance (SECURITY V4); the
//!   connect URL for an MCP URL elicitation; the vault's start check and key rotation (V1).
//!
//! The browser side (connect, the provider's callback, disconnect) is `connection_pages`,
//! outside this module, since it needs the `McpAuth` hub.
//!
//! Tokens are sealed with the vault's keys ([`mcpauth_core::vault`]) before they reach the
//! store, and opened only to be handed to the code that asked for them: never logged, never
//! in a metric label or an audit entry (V3).

mod options;
mod provider;
mod service;

pub use options::{ConnectionKind, ConnectionOptions};
pub(crate) use provider::ProviderError;
pub(crate) use service::{ConnectTicket, ticket_key};
pub use service::{
    ConnectionCompleted, ConnectionError, ConnectionToken, ConnectionView, Connections, VaultError,
};
