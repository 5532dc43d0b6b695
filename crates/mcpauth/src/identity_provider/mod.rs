//! Sign-in through identity providers (an OpenID provider, GitHub, …): the promises a
//! provider makes ([`IdentityProvider`]), how one is configured ([`SignInProvider`]), and the
//! flow around it (`flow`), which is mcpauth's own and the same for every provider:
//!
//! - `state`, `nonce` and the PKCE verifier are made here, kept server-side (the `verification`
//!   table, 10 minutes) under the hash of `state`, bound to the browser by a cookie whose hash
//!   the record keeps, and taken exactly once at the callback (SECURITY S28);
//! - the identity the provider vouches for is then checked against the operator's rules — a
//!   required claim, the email allow-lists — and mapped to a user: the account already linked,
//!   a new user, or (only when both sides assert a verified email) an existing user it links to
//!   (S29);
//! - the browser session is created by the same function as after a password sign-in, which
//!   keeps disabled users out, and an MCP authorization in progress resumes from there.
//!
//! Implementations (generic OpenID Connect, GitHub) live in the `mcpauth-idp` crate.

mod flow;

use std::sync::Arc;

pub(crate) use flow::{link_start, provider_callback, sign_in_start};
pub use mcpauth_core::sign_in_policy::RequiredClaim;

/// What the browser is sent to the provider with. The provider puts these into its
/// authorization request unchanged.
#[derive(Debug)]
pub struct AuthorizationStart<'a> {
    /// mcpauth's callback URL for this provider: `{issuer}{base_path}/callback/{id}`.
    pub redirect_uri: &'a str,
    /// The `state` parameter (random, single-use).
    pub state: &'a str,
    /// The OpenID `nonce` (random); providers without id_tokens ignore it.
    pub nonce: &'a str,
    /// The RFC 7636 code verifier (random, 43 characters) given back at [`CodeExchange`]:
    /// the request carries its S256 challenge (`code_challenge_method=S256`), never the
    /// verifier itself.
    pub code_verifier: &'a str,
}

/// What the provider needs to turn the callback's `code` into an identity.
#[derive(Debug)]
pub struct CodeExchange<'a> {
    /// The callback URL the authorization request named.
    pub redirect_uri: &'a str,
    /// The `code` from the callback.
    pub code: &'a str,
    /// The PKCE verifier of the authorization request's challenge.
    pub code_verifier: &'a str,
    /// The nonce the id_token must carry.
    pub nonce: &'a str,
}

/// Who the provider says signed in, after every check the provider's protocol requires.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderIdentity {
    /// The provider's stable identifier for the user (`sub`; GitHub's numeric id).
    pub subject: String,
    /// The email address, if the provider shared one.
    pub email: Option<String>,
    /// Whether the provider asserts that the address is verified (`email_verified: true`;
    /// GitHub's verified primary address). Absent means false.
    pub email_verified: bool,
    /// Display name.
    pub name: Option<String>,
    /// Profile picture URL.
    pub picture: Option<String>,
    /// Every claim (id_token and userinfo, or the provider's user document), for a
    /// [`RequiredClaim`].
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Why a provider gave no identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityProviderError {
    /// The provider's answer failed a check (signature, issuer, audience, expiry, nonce, …) or
    /// the provider refused the code: no sign-in.
    #[error("{0}")]
    Refused(String),
    /// The provider could not be reached or answered something unusable.
    #[error("{0}")]
    Unavailable(String),
}

/// An identity provider: the two steps of an authorization code flow. Implementations
/// must send `state`, the verifier's S256 challenge and (OpenID) the nonce in the authorization request,
/// and at the exchange must send the verifier, and verify everything their protocol lets them
/// verify before returning an identity — for OpenID Connect the id_token's signature against
/// the provider's JWKS, `iss`, `aud`, `exp` and `nonce` (SECURITY S28).
#[async_trait::async_trait]
pub trait IdentityProvider: Send + Sync + 'static {
    /// The URL of the provider's authorization endpoint to send the browser to.
    async fn authorization_url(
        &self,
        start: &AuthorizationStart<'_>,
    ) -> Result<url::Url, IdentityProviderError>;

    /// Redeems the code and returns the verified identity.
    async fn identity(
        &self,
        exchange: &CodeExchange<'_>,
    ) -> Result<ProviderIdentity, IdentityProviderError>;
}

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
