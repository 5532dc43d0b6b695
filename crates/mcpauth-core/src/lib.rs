//! The protocol and domain rules of mcpauth, free of HTTP and SQL.
//!
//! - [`error`]: the OAuth 2.1 / RFC 6749 §5.2 and RFC 7591 §3.2.2 error vocabulary.
//! - [`secret`]: random tokens, their at-rest hashes, constant-time comparison, HMAC signing and
//!   the authenticated encryption used for the refresh-retry response.
//! - [`pkce`]: RFC 7636 code challenges (S256 only).
//! - [`redirect_uri`]: what may be registered (RFC 7591 + OAuth 2.1 §2.3.1) and how a requested
//!   redirect URI matches a registered one (exact, with any port on loopback, RFC 8252 §7.3).
//! - [`scope`]: RFC 6749 §3.3 scope strings as sets.
//! - [`model`]: users, sessions, clients, codes, token families and tokens as stored.
//! - [`store`]: the `Store` trait every backend implements.
//! - [`clock`]: the source of "now", replaceable in tests.

#![warn(missing_docs)]

pub mod clock;
pub mod error;
pub mod model;
pub mod pkce;
pub mod redirect_uri;
pub mod scope;
pub mod secret;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ErrorCode, OAuthError, StoreError};
pub use redirect_uri::RedirectUri;
pub use scope::Scopes;
pub use store::Store;
