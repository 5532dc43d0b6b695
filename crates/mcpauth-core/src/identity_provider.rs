//! The identity-provider seam (SECURITY S28): what an identity provider (an OpenID provider,
//! GitHub, …) promises to mcpauth's sign-in flow, as [`Store`](crate::Store) is the seam to the
//! database. The flow around it — state, nonce and PKCE verifier kept server-side, the
//! callback, the linking decision ([`account_linking`](crate::account_linking)) — is the
//! same for every provider; an implementation only speaks its provider's protocol
//! (`mcpauth-idp` holds generic OpenID Connect and GitHub).

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
    /// [`RequiredClaim`](crate::sign_in_policy::RequiredClaim).
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
