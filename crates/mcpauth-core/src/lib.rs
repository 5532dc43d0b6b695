//! The protocol and domain rules of mcpauth, free of HTTP and SQL.
//!
//! - [`error`]: the OAuth 2.1 / RFC 6749 §5.2 and RFC 7591 §3.2.2 error vocabulary.
//! - [`params`]: RFC 6749 §3 request parameters from a query string, a form body or a JSON
//!   object (no empty values, no repeats).
//! - [`client_registration`]: RFC 7591 client metadata — one set of limits for dynamically
//!   registered, configured and operator-created clients.
//! - [`cimd`]: Client ID Metadata Documents: which `client_id` is a document URL, what a
//!   fetched document must say, how long it is kept.
//! - [`authorization_request`]: the authorization endpoint's rules (OAuth 2.1 §4.1.1, RFC 7636,
//!   RFC 8707, RFC 9207, OIDC `prompt`/`max_age`/`nonce`): which redirect URI, which scopes and
//!   resource, and the redirects that carry the answer.
//! - [`grant`]: the token endpoint's rules: what binds a code (RFC 6749 §4.1.3, RFC 7636 §4.6)
//!   and a refresh token (RFC 6749 §6), the retry window, who gets a refresh token.
//! - [`machine`]: the grants without a browser (issue 21): who may use `client_credentials`
//!   and with which scopes, and the time, audience and scope rules of JWT client assertions
//!   (`private_key_jwt`) and identity assertion grants (ID-JAG) (SECURITY E1–E3).
//! - [`account_fields`]: email, password and display-name rules for user accounts.
//! - [`sign_in_policy`]: who may have an account: email allow-lists and an identity provider's
//!   required claim (SECURITY S29).
//! - [`account_linking`]: the linking decision (SECURITY S29): which user a sign-in through an
//!   identity provider becomes (sign in, create, link by verified email, link from the account
//!   page) or why it is refused, as one pure function of what the flow knows.
//! - [`identity_provider`]: the `IdentityProvider` seam (SECURITY S28) — what a provider
//!   (OpenID Connect, GitHub, in `mcpauth-idp`) promises the sign-in flow, as `Store` is the
//!   database's.
//! - [`return_to`]: where a page or an API may send the browser back to (`return_to`,
//!   `callbackURL`, `redirectTo`; SECURITY S20): one rule, same-origin targets only.
//! - [`protected_resource`]: where a protected resource is served and where its metadata
//!   lives (RFC 9728 §3.1).
//! - [`secret`]: random tokens, their at-rest hashes, constant-time comparison, HMAC signing and
//!   the authenticated encryption used for the refresh-retry response.
//! - [`pkce`]: RFC 7636 code challenges (S256 only).
//! - [`redirect_uri`]: what may be registered (RFC 7591 + OAuth 2.1 §2.3.1) and how a requested
//!   redirect URI matches a registered one (exact, with any port on loopback, RFC 8252 §7.3).
//! - [`scope`]: RFC 6749 §3.3 scope strings as sets.
//! - [`model`]: users, sessions, clients, codes, token families and tokens as stored.
//! - [`store`]: the `Store` trait every backend implements.
//! - [`clock`]: the source of "now", replaceable in tests, and UTC calendar times for people.
//! - [`vault`]: the keys that seal connected accounts' tokens at rest (SECURITY V1): key ids
//!   beside each ciphertext, several keys for rotation.

#![warn(missing_docs)]

pub mod account_fields;
pub mod account_linking;
pub mod authorization_request;
pub mod cimd;
pub mod client_registration;
pub mod clock;
pub mod error;
pub mod grant;
pub mod identity_provider;
pub mod machine;
pub mod model;
pub mod params;
pub mod pkce;
pub mod protected_resource;
pub mod redirect_uri;
pub mod return_to;
pub mod scope;
pub mod secret;
pub mod sign_in_policy;
pub mod store;
pub mod vault;

pub use account_fields::{AccountFieldError, DisplayName, Email, Password};
pub use authorization_request::{AuthorizationPolicy, AuthorizationRequest, Prompt};
pub use client_registration::ClientRegistration;
pub use clock::{Clock, ManualClock, SystemClock, UtcDateTime};
pub use error::{ErrorCode, OAuthError, StoreError};
pub use grant::{RefreshReusePolicy, RefreshTokenPolicy};
pub use identity_provider::{IdentityProvider, IdentityProviderError, ProviderIdentity};
pub use params::Params;
pub use redirect_uri::RedirectUri;
pub use scope::Scopes;
pub use store::Store;
