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

use std::sync::Arc;

pub(crate) use flow::{link_start, provider_callback, sign_in_start};
pub use mcpauth_core::identity_provider::{
    AuthorizationStart, CodeExchange, IdentityProvider, IdentityProviderError, ProviderIdentity,
};
pub use mcpauth_core::sign_in_policy::RequiredClaim;

/// A configured provider: its id (in the callback URL and the `account` table's
/// `providerId`), the name on its button, the operator's rules for it, and the implementation.
#[derive(Clone)]
pub struct SignInProvider {
    /// Lower-case letters, digits, `-` and `_`, at most 32; unique; not `credential`.
    pub id: String,
    /// Shown as "Continue with {name}".
    pub name: String,
    /// Treat the provider's email addresses as verified even when it does not say so (for
    /// providers such as Microsoft Entra that never send `email_verified`, when the operator
    /// knows the addresses are the organisation's). Default false: such users sign in by their
    /// subject, are never linked to an existing account by email, and do not pass an
    /// email allow-list.
    pub trust_email: bool,
    /// A claim every identity from this provider must carry (OpenID: from the id_token or
    /// userinfo).
    pub required_claim: Option<RequiredClaim>,
    /// The implementation.
    pub provider: Arc<dyn IdentityProvider>,
}

impl std::fmt::Debug for SignInProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInProvider")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("trust_email", &self.trust_email)
            .field("required_claim", &self.required_claim)
            .finish_non_exhaustive()
    }
}

/// Whether `id` may name a provider.
pub(crate) fn valid_provider_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id != "credential"
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
