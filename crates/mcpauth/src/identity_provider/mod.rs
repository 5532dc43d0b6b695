//! Sign-in through identity providers (an OpenID provider, GitHub, …): how one is configured
//! ([`SignInProvider`]) and the flow around it (`flow`), which is mcpauth's own and the same
//! for every provider. The promises a provider makes ([`IdentityProvider`]) are a seam of
//! `mcpauth-core` (`mcpauth_core::identity_provider`), re-exported here:
//!
//! - `state`, `nonce` and the PKCE verifier are made here, kept server-side (the `verification`
//!   table, 10 minutes) under the hash of `state`, bound to the browser by a cookie whose hash
//!   the record keeps, and taken exactly once at the callback (SECURITY S28);
//! - the identity the provider vouches for is then checked against the operator's rules — a
//!   required claim, the email allow-lists — and mapped to a user: the account already linked,
//!   a new user, or (only when both sides assert a verified email) an existing user it links to
//!   (S29). That decision is a pure function of core (`mcpauth_core::account_linking`); the
//!   flow fetches what it needs, calls it and carries out what it decides;
//! - the browser session is created by the same function as after a password sign-in, which
//!   keeps disabled users out, and an MCP authorization in progress resumes from there.
//!
//! Implementations (generic OpenID Connect, GitHub) live in the `mcpauth-idp` crate.

mod flow;

pub(crate) use flow::{link_start, provider_callback, sign_in_start};
pub use mcpauth_core::identity_provider::{
    AuthorizationStart, CodeExchange, IdentityProvider, IdentityProviderError, ProviderIdentity,
};
pub use mcpauth_core::sign_in_policy::RequiredClaim;
// The configured provider is an option (`McpAuthOptions::identity_providers`).
pub use crate::options::SignInProvider;
