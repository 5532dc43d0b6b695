//! The options an application configures mcpauth with (Better Auth's `mcp()` options, in Rust).

use std::sync::Arc;

use mcpauth_core::{Clock, SystemClock};
use serde::{Deserialize, Serialize};

pub use crate::cimd::CimdOptions;
pub use crate::rate_limit::RateLimitOptions;
pub use mcpauth_core::{RefreshReusePolicy, RefreshTokenPolicy};

/// A client registered by configuration rather than by dynamic registration (SPEC §3
/// `trusted_clients`): written to the store at start-up, replacing any earlier version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedClient {
    /// The client's identifier, as the client will send it.
    pub client_id: String,
    /// The secret of a confidential client; only its hash is stored. `None`: a public client.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// `client_secret_basic` (default with a secret) or `client_secret_post`.
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    /// Shown on the consent page. Empty for a client whose `client_id` is a metadata document
    /// URL (its name comes from its document).
    #[serde(default)]
    pub name: String,
    /// Where the client may be sent back to (the same rules as for registration). Empty for a
    /// client whose `client_id` is a metadata document URL: such an entry only pins the client
    /// as trusted, and its redirect URIs come from its document, fetched as for any other.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// An https logo shown on the consent page.
    #[serde(default)]
    pub logo_uri: Option<String>,
    /// Skip the consent page for this client (default true: it is trusted).
    #[serde(default = "default_true")]
    pub skip_consent: bool,
    /// This client's [`RefreshReusePolicy`]; default: the server's `refresh_reuse_policy`.
    #[serde(default)]
    pub refresh_reuse_policy: Option<RefreshReusePolicy>,
}

fn default_true() -> bool {
    true
}

/// Another MCP server this authorization server issues tokens for, besides
/// [`McpAuthOptions::resource`] (RFC 8707): a request naming it as `resource` gets tokens bound
/// to it alone, which [`crate::McpAuth::with_mcp_auth_for`] accepts and every other resource
/// refuses. It has its own metadata document (RFC 9728) at
/// `/.well-known/oauth-protected-resource{path}` and its own challenges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedResource {
    /// Canonical URI, e.g. `https://auth.example.com/mcp/notes`.
    pub resource: String,
    /// Human-readable name, for its metadata.
    pub name: String,
    /// Scopes every request needs (named in its 401 challenge).
    pub scopes: Vec<String>,
    /// Further scopes some of its operations need (tool scopes): grantable and advertised.
    pub extra_scopes: Vec<String>,
}

/// Everything mcpauth can be configured with. `McpAuthOptions::new(issuer)` gives the defaults
/// of SPEC §3; change fields before building [`crate::McpAuth`].
#[derive(Clone)]
pub struct McpAuthOptions {
    /// The public origin, e.g. `https://app.example.com`; the `issuer` of every document.
    pub issuer: String,
    /// Where the OAuth and account endpoints are mounted (default `/api/auth`).
    pub base_path: String,
    /// Canonical URI of the protected MCP server (default `{issuer}/api/mcp`).
    pub resource: String,
    /// Human-readable name of the protected resource, for its metadata.
    pub resource_name: String,
    /// Other protected resources tokens may be issued for (e.g. the upstreams of a gateway).
    pub resources: Vec<ProtectedResource>,
    /// Where an unauthenticated authorization request sends the browser.
    pub login_page: String,
    /// Where consent is asked.
    pub consent_page: String,
    /// Authorization code lifetime, seconds.
    pub code_expires_in: i64,
    /// Access token lifetime, seconds.
    pub access_token_expires_in: i64,
    /// Refresh token lifetime (sliding, per token), seconds.
    pub refresh_token_expires_in: i64,
    /// Absolute lifetime of a grant however often it is refreshed, seconds.
    pub refresh_family_lifetime: i64,
    /// How long a rotated refresh token may be retried for the same answer, seconds.
    pub refresh_reuse_grace: i64,
    /// What a rotated refresh token presented again after `refresh_reuse_grace` gets (SECURITY
    /// S12); a trusted client may have its own ([`TrustedClient::refresh_reuse_policy`]).
    pub refresh_reuse_policy: RefreshReusePolicy,
    /// Under [`RefreshReusePolicy::ToleratePrevious`]: how long after a grant last advanced its
    /// previous refresh token is still tolerated, seconds (1 to 3600).
    pub refresh_reuse_window: i64,
    /// Which clients get refresh tokens.
    pub refresh_token_policy: RefreshTokenPolicy,
    /// Browser session lifetime, seconds.
    pub session_expires_in: i64,
    /// Scope used when a request names none.
    pub default_scope: String,
    /// Scopes of the protected resource (the MCP server), beyond the OpenID ones.
    pub resource_scopes: Vec<String>,
    /// Scopes an ordinary call to the MCP endpoint needs; named in its 401 challenge and the
    /// only resource scopes the protected resource metadata lists.
    pub mcp_scopes: Vec<String>,
    /// Scopes never granted without the user's explicit approval, even to a client that skips
    /// consent, and not advertised in the authorization server's `scopes_supported` (clients
    /// that ask for everything advertised would otherwise ask for them).
    pub consent_scopes: Vec<String>,
    /// Browser origins (besides the issuer's) allowed to call the MCP endpoint, e.g.
    /// `http://localhost:6274` for the MCP Inspector. With a loopback issuer every loopback
    /// origin is allowed.
    pub mcp_allowed_origins: Vec<String>,
    /// Require PKCE from confidential clients too (public clients always need it).
    pub require_pkce_for_confidential: bool,
    /// Whether clients may register themselves (RFC 7591).
    pub allow_dynamic_client_registration: bool,
    /// RFC 7591 §3 initial access token: when set (≥ 32 characters), a registration request
    /// must carry it as `Authorization: Bearer …`. For deployments whose clients are given
    /// the token out of band; clients that find the server by discovery alone cannot register.
    pub initial_access_token: Option<String>,
    /// Clients registered by configuration.
    pub trusted_clients: Vec<TrustedClient>,
    /// Trust `X-Forwarded-For` / `Forwarded` from a reverse proxy for the client's address
    /// (rate limits, the audit log). Off unless a proxy in front of mcpauth sets those headers;
    /// the issuer never comes from request headers either way.
    pub trust_proxy: bool,
    /// Fields merged last into the authorization server metadata document.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Secret for signing cookies and CSRF tokens. `None`: one is generated once and kept in
    /// the database, so that every instance on it agrees.
    pub secret: Option<String>,
    /// Limits on sign-in, sign-up, registration and token requests.
    pub rate_limits: RateLimitOptions,
    /// Where the rate-limit counters live: in this process (the default), in the store
    /// (shared by every instance on the database) or another backend such as Redis. A backend
    /// that fails lets requests through (see [`crate::rate_limit`]).
    pub rate_limit_backend: crate::rate_limit::RateLimitBackend,
    /// The source of time.
    pub clock: Arc<dyn Clock>,
    /// Algorithm of new id_token signing keys.
    pub signing_algorithm: crate::keys::SigningAlgorithm,
    /// Secret that encrypts signing keys at rest. `None`: the server secret is used, which
    /// lives in the same database unless `secret` is configured — set one of the two outside
    /// the database in production.
    pub key_encryption_secret: Option<String>,
    /// Claims added to every id_token and userinfo answer (e.g. `{"org": "acme"}`).
    pub additional_user_info_claims: serde_json::Map<String, serde_json::Value>,
    /// Whether changing the password on the account page also revokes every grant (the apps'
    /// tokens stop working and they must ask again). Other sessions always end. Default false.
    pub revoke_grants_on_password_change: bool,
    /// How validated access tokens are kept in memory, and how soon revocations made by other
    /// processes are noticed (see [`TokenCacheOptions`](crate::TokenCacheOptions)).
    pub token_cache: crate::TokenCacheOptions,
    /// Clients identified by metadata documents (CIMD): policy and fetch limits.
    pub cimd: crate::CimdOptions,
    /// Fetches metadata documents; `None`: [`crate::HttpFetcher`] built from `cimd`.
    pub cimd_fetcher: Option<Arc<dyn crate::ClientMetadataFetcher>>,
    /// Email verification and the lifetime of mailed links.
    pub email: crate::EmailOptions,
    /// Sends password-reset and verification mail; `None`: no mail (password reset by email
    /// is then unavailable, and `email.verification` may not be `Required`).
    pub mailer: Option<Arc<dyn crate::Mailer>>,
    /// identity providers offered on the sign-in page ("Continue with …").
    pub identity_providers: Vec<crate::identity_provider::SignInProvider>,
    /// Whether users may sign in and sign up with an email and password. With `false`, only
    /// the identity providers sign users in (at least one is then needed). Default true.
    pub password_login: bool,
    /// Email domains whose addresses may have an account (password sign-up and every
    /// sign-in; addresses must be verified). Empty, with `allowed_emails` empty too:
    /// anyone.
    pub allowed_email_domains: Vec<String>,
    /// Single addresses that may have an account, besides `allowed_email_domains`.
    pub allowed_emails: Vec<String>,
}

impl McpAuthOptions {
    /// The refresh-reuse policy of `client_id`: its own when it is a trusted client that sets
    /// one, else the server's.
    pub fn refresh_reuse_policy_of(&self, client_id: &str) -> RefreshReusePolicy {
        self.trusted_clients
            .iter()
            .find(|trusted| trusted.client_id == client_id)
            .and_then(|trusted| trusted.refresh_reuse_policy)
            .unwrap_or(self.refresh_reuse_policy)
    }

    /// The defaults, for the given public origin.
    pub fn new(issuer: impl Into<String>) -> Self {
        let issuer = issuer.into().trim_end_matches('/').to_owned();
        Self {
            resource: format!("{issuer}/api/mcp"),
            issuer,
            base_path: "/api/auth".to_owned(),
            resource_name: "mcpauth MCP server".to_owned(),
            resources: Vec::new(),
            login_page: "/sign-in".to_owned(),
            consent_page: "/consent".to_owned(),
            code_expires_in: 600,
            access_token_expires_in: 3600,
            refresh_token_expires_in: 604_800,
            refresh_family_lifetime: 90 * 86_400,
            refresh_reuse_grace: 30,
            refresh_reuse_policy: RefreshReusePolicy::ToleratePrevious,
            refresh_reuse_window: 600,
            refresh_token_policy: RefreshTokenPolicy::RegisteredGrant,
            session_expires_in: 7 * 86_400,
            default_scope: "openid".to_owned(),
            resource_scopes: vec!["mcp:tools".to_owned(), "mcp:admin".to_owned()],
            mcp_scopes: vec!["mcp:tools".to_owned()],
            consent_scopes: vec!["mcp:admin".to_owned()],
            mcp_allowed_origins: Vec::new(),
            require_pkce_for_confidential: true,
            allow_dynamic_client_registration: true,
            initial_access_token: None,
            trusted_clients: Vec::new(),
            trust_proxy: false,
            metadata: serde_json::Map::new(),
            secret: None,
            rate_limits: RateLimitOptions::default(),
            rate_limit_backend: crate::rate_limit::RateLimitBackend::Memory,
            clock: Arc::new(SystemClock),
            signing_algorithm: crate::keys::SigningAlgorithm::Es256,
            key_encryption_secret: None,
            additional_user_info_claims: serde_json::Map::new(),
            revoke_grants_on_password_change: false,
            token_cache: crate::TokenCacheOptions::default(),
            cimd: crate::CimdOptions::default(),
            cimd_fetcher: None,
            email: crate::EmailOptions::default(),
            mailer: None,
            identity_providers: Vec::new(),
            password_login: true,
            allowed_email_domains: Vec::new(),
            allowed_emails: Vec::new(),
        }
    }
}

impl std::fmt::Debug for McpAuthOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpAuthOptions")
            .field("issuer", &self.issuer)
            .field("base_path", &self.base_path)
            .field("resource", &self.resource)
            .field("login_page", &self.login_page)
            .field("consent_page", &self.consent_page)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field(
                "initial_access_token",
                &self.initial_access_token.as_ref().map(|_| "<redacted>"),
            )
            .field("rate_limit_backend", &self.rate_limit_backend)
            .field("identity_providers", &self.identity_providers)
            .field("password_login", &self.password_login)
            .finish_non_exhaustive()
    }
}
