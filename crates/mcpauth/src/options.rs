//! The options an application configures mcpauth with (Better Auth's `mcp()` options, in Rust),
//! and the rules they must meet (`check_options`, run by [`crate::McpAuth::new`]).
//!
//! Every option is written here once: the server's `mcpauth.toml` deserializes into these
//! types (their field names are the configuration keys, `*_secs` / `*_ms` keys through
//! [`duration_secs`] / [`duration_ms`]), and only what a library user gives as code (the
//! clock, the mailer, fetchers, identity providers, the rate-limit backend) or the server
//! derives itself (issuer, resource) is left out of (de)serialization.

use std::sync::Arc;

use mcpauth_core::identity_provider::IdentityProvider;
use mcpauth_core::sign_in_policy::RequiredClaim;
use mcpauth_core::{Clock, Scopes, StoreError, SystemClock, protected_resource};
use serde::{Deserialize, Serialize};

// The types of the option tables live beside the service each configures; all are reachable
// from here, the one file that says what can be configured.
pub use crate::cimd::CimdOptions;
pub use crate::keys::SigningAlgorithm;
pub use crate::rate_limit::RateLimitOptions;
pub use crate::token_cache::TokenCacheOptions;
pub use crate::{EmailOptions, EmailVerification, SmtpOptions, SmtpTls};
pub use mcpauth_core::{RefreshReusePolicy, RefreshTokenPolicy};
// How options are written (durations, secrets in `Debug`): a leaf module, so that the types
// above can use it without importing this file back.
pub use crate::option_formats::{duration_ms, duration_secs, redacted};

/// A client registered by configuration rather than by dynamic registration (SPEC §3
/// `trusted_clients`): written to the store at start-up, replacing any earlier version. Its
/// `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The grant types (`authorization_code`, `refresh_token`, `client_credentials`,
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer`); empty: `authorization_code` and
    /// `refresh_token`. A machine needs no `redirect_uris`.
    #[serde(default)]
    pub grant_types: Vec<mcpauth_core::model::GrantType>,
    /// The scopes a machine (`client_credentials`) may be given; default the server's
    /// `mcp_scopes`.
    #[serde(default)]
    pub scope: Option<String>,
    /// The resources a machine may get tokens for; empty: every resource of the server.
    #[serde(default)]
    pub resources: Vec<String>,
    /// The public keys of a `private_key_jwt` client, as a URL (fetched under the CIMD rules,
    /// SECURITY M3)…
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// …or as a JSON Web Key Set.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
}

impl Default for TrustedClient {
    fn default() -> Self {
        Self {
            client_id: String::new(),
            client_secret: None,
            token_endpoint_auth_method: None,
            name: String::new(),
            redirect_uris: Vec::new(),
            logo_uri: None,
            skip_consent: true,
            refresh_reuse_policy: None,
            grant_types: Vec::new(),
            scope: None,
            resources: Vec::new(),
            jwks_uri: None,
            jwks: None,
        }
    }
}

fn default_true() -> bool {
    true
}

impl std::fmt::Debug for TrustedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &redacted(self.client_secret.as_deref()))
            .field(
                "token_endpoint_auth_method",
                &self.token_endpoint_auth_method,
            )
            .field("name", &self.name)
            .field("redirect_uris", &self.redirect_uris)
            .field("logo_uri", &self.logo_uri)
            .field("skip_consent", &self.skip_consent)
            .field("refresh_reuse_policy", &self.refresh_reuse_policy)
            .field("grant_types", &self.grant_types)
            .field("scope", &self.scope)
            .field("resources", &self.resources)
            .field("jwks_uri", &self.jwks_uri)
            .field("jwks", &self.jwks.is_some())
            .finish()
    }
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
fn valid_provider_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id != "credential"
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
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
    /// The form of its access tokens: opaque (the default) or RFC 9068 JWTs.
    pub access_token_format: crate::AccessTokenFormat,
}

/// Everything mcpauth can be configured with. `McpAuthOptions::new(issuer)` gives the defaults
/// of SPEC §3; change fields before building [`crate::McpAuth`].
///
/// Deserializing reads the keys of the server's configuration file; a missing key keeps its
/// default. Fields marked `serde(skip)` are not settings of that file: they are code (a clock,
/// a mailer), or the server computes them (`issuer`, `resource`, `rate_limits`, `email`: see
/// `mcpauth-server`'s `config.rs`), and they keep their defaults. Unknown keys are ignored
/// here, since the server reads its own keys from the same file; it refuses the keys neither
/// knows. The tables (`[cimd]`, `[token_cache]`) refuse unknown keys themselves.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default = "McpAuthOptions::unconfigured")]
pub struct McpAuthOptions {
    /// The public origin, e.g. `https://app.example.com`; the `issuer` of every document.
    #[serde(skip)]
    pub issuer: String,
    /// Where the OAuth and account endpoints are mounted (default `/api/auth`).
    pub base_path: String,
    /// Canonical URI of the protected MCP server (default `{issuer}/api/mcp`).
    #[serde(skip)]
    pub resource: String,
    /// Human-readable name of the protected resource, for its metadata.
    pub resource_name: String,
    /// Other protected resources tokens may be issued for (e.g. the upstreams of a gateway).
    #[serde(skip)]
    pub resources: Vec<ProtectedResource>,
    /// Where an unauthenticated authorization request sends the browser.
    pub login_page: String,
    /// Where consent is asked.
    pub consent_page: String,
    /// Authorization code lifetime, seconds.
    pub code_expires_in: i64,
    /// Access token lifetime, seconds.
    pub access_token_expires_in: i64,
    /// The form of the main resource's access tokens: `opaque` (the default) or `jwt`
    /// (RFC 9068, verifiable by anyone with the JWKS; see [`crate::AccessTokenFormat`]).
    pub access_token_format: crate::AccessTokenFormat,
    /// Lifetime of JWT access tokens, seconds (default 300), never more than
    /// `access_token_expires_in`: a resource server that verifies them on its own learns of a
    /// revocation only when they expire.
    pub jwt_access_token_expires_in: i64,
    /// DPoP (RFC 9449 §8): whether every DPoP proof must carry a nonce this server issued
    /// (sent in `DPoP-Nonce`). Default false.
    pub use_dpop_nonce: bool,
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
    /// Limits on sign-in, sign-up, registration and token requests. Skipped: the server's
    /// `[rate_limits]` table adds its own `enabled` and `backend` keys around these.
    #[serde(skip)]
    pub rate_limits: RateLimitOptions,
    /// Where the rate-limit counters live: in this process (the default), in the store
    /// (shared by every instance on the database) or another backend such as Redis. A backend
    /// that fails lets requests through (see [`crate::rate_limit`]).
    #[serde(skip)]
    pub rate_limit_backend: crate::rate_limit::RateLimitBackend,
    /// The source of time.
    #[serde(skip)]
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
    /// processes are noticed (see [`TokenCacheOptions`]).
    pub token_cache: crate::TokenCacheOptions,
    /// Clients identified by metadata documents (CIMD): policy and fetch limits.
    pub cimd: crate::CimdOptions,
    /// Fetches metadata documents; `None`: [`crate::HttpFetcher`] built from `cimd`.
    #[serde(skip)]
    pub cimd_fetcher: Option<Arc<dyn crate::ClientMetadataFetcher>>,
    /// Email verification and the lifetime of mailed links. Skipped: the server's file
    /// spells `verification` as the top-level `email_verification`, beside its `[email]`.
    #[serde(skip)]
    pub email: crate::EmailOptions,
    /// Sends password-reset and verification mail; `None`: no mail (password reset by email
    /// is then unavailable, and `email.verification` may not be `Required`).
    #[serde(skip)]
    pub mailer: Option<Arc<dyn crate::Mailer>>,
    /// identity providers offered on the sign-in page ("Continue with …").
    #[serde(skip)]
    pub identity_providers: Vec<SignInProvider>,
    /// Whether users may sign in and sign up with an email and password. With `false`, only
    /// the identity providers sign users in (at least one is then needed). Default true.
    pub password_login: bool,
    /// Email domains whose addresses may have an account (password sign-up and every
    /// sign-in; addresses must be verified). Empty, with `allowed_emails` empty too:
    /// anyone.
    pub allowed_email_domains: Vec<String>,
    /// Single addresses that may have an account, besides `allowed_email_domains`.
    pub allowed_emails: Vec<String>,
    /// Services users may connect their accounts to (the token vault; `[[connections]]`).
    #[serde(skip)]
    pub connections: Vec<crate::connections::ConnectionOptions>,
    /// The keys that seal connected accounts' tokens at rest, the current one first
    /// (SECURITY V1). Needed when `connections` is not empty or the database holds any.
    #[serde(skip)]
    pub vault_keys: Option<mcpauth_core::vault::Keyring>,
    /// The console (SECURITY A1): emails of the users who may use it at `{base_path}/admin`,
    /// besides those made admins with `mcpauth user admin`. A configured admin's address must
    /// be verified (else anyone signing up with it would be one).
    pub admins: Vec<String>,
    /// How recent a sign-in the console needs, seconds (default 900): an admin whose session
    /// began earlier signs in again.
    pub admin_reauth_secs: i64,
    /// Serve the console only from [`crate::McpAuth::console_router`] (an internal listener,
    /// the server's `admin_bind`), not from [`crate::McpAuth::router`].
    #[serde(skip)]
    pub console_apart: bool,
    /// `[client_credentials]`: machines getting tokens for themselves (SECURITY E1). Off by
    /// default.
    pub client_credentials: crate::machine_options::ClientCredentialsOptions,
    /// `[[trusted_issuers]]`: enterprise identity providers whose identity assertion grants
    /// (ID-JAG) are redeemed at the token endpoint (SECURITY E3). None by default.
    pub trusted_issuers: Vec<crate::machine_options::TrustedIssuer>,
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

    /// The defaults before an issuer is known: what deserializing starts from (the server
    /// sets the issuer and resource once it has bound its port).
    fn unconfigured() -> Self {
        Self::new("http://localhost:3000")
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
            access_token_format: crate::AccessTokenFormat::Opaque,
            jwt_access_token_expires_in: 300,
            use_dpop_nonce: false,
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
            connections: Vec::new(),
            vault_keys: None,
            admins: Vec::new(),
            admin_reauth_secs: 900,
            console_apart: false,
            client_credentials: crate::machine_options::ClientCredentialsOptions::default(),
            trusted_issuers: Vec::new(),
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
            .field("secret", &redacted(self.secret.as_deref()))
            .field(
                "initial_access_token",
                &redacted(self.initial_access_token.as_deref()),
            )
            .field("rate_limit_backend", &self.rate_limit_backend)
            .field("identity_providers", &self.identity_providers)
            .field("password_login", &self.password_login)
            .finish_non_exhaustive()
    }
}

/// Why [`McpAuth`](crate::McpAuth) could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An option has a value mcpauth cannot work with.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The store could not be read or written while starting.
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn invalid(option: &'static str, reason: impl Into<String>) -> BuildError {
    BuildError::InvalidOption {
        option,
        reason: reason.into(),
    }
}

/// The scope of an access token for the console's API (SECURITY A1): never advertised in
/// metadata, and granted only with the user's consent (as `consent_scopes`); the API checks
/// that the token's user is an admin at every call.
pub const ADMIN_SCOPE: &str = "mcpauth:admin";

/// What the options say once checked: the issuer and resource as URLs, and the scopes.
pub(crate) struct Checked {
    pub(crate) issuer: url::Url,
    pub(crate) resource: url::Url,
    /// `options.resources`, parsed, in order.
    pub(crate) other_resources: Vec<url::Url>,
    pub(crate) scopes_supported: Scopes,
    pub(crate) default_scope: Scopes,
    pub(crate) consent_scopes: Scopes,
}

/// Every rule an option must meet, so that a library user gets the same checks as the server.
pub(crate) fn check_options(options: &McpAuthOptions) -> Result<Checked, BuildError> {
    let issuer = url::Url::parse(&options.issuer).map_err(|e| invalid("issuer", e.to_string()))?;
    if !matches!(issuer.scheme(), "http" | "https")
        || issuer.query().is_some()
        || issuer.fragment().is_some()
    {
        return Err(invalid(
            "issuer",
            "must be an http(s) URL without query or fragment",
        ));
    }
    let resource =
        url::Url::parse(&options.resource).map_err(|e| invalid("resource", e.to_string()))?;
    if !options.base_path.starts_with('/') || options.base_path.ends_with('/') {
        return Err(invalid("base_path", "must start with / and not end with /"));
    }
    for (option, seconds) in [
        ("code_expires_in", options.code_expires_in),
        ("access_token_expires_in", options.access_token_expires_in),
        (
            "jwt_access_token_expires_in",
            options.jwt_access_token_expires_in,
        ),
        ("refresh_token_expires_in", options.refresh_token_expires_in),
        ("refresh_family_lifetime", options.refresh_family_lifetime),
        ("session_expires_in", options.session_expires_in),
    ] {
        if seconds <= 0 {
            return Err(invalid(option, "must be a positive number of seconds"));
        }
    }
    if options.refresh_reuse_grace < 0 {
        return Err(invalid(
            "refresh_reuse_grace",
            "must be zero or a positive number of seconds",
        ));
    }
    if !(1..=3600).contains(&options.refresh_reuse_window) {
        return Err(invalid(
            "refresh_reuse_window",
            "must be between 1 and 3600 seconds",
        ));
    }
    let default_scope = Scopes::parse(&options.default_scope)
        .map_err(|e| invalid("default_scope", e.description))?;
    let other_resources = check_other_resources(options, &resource)?;
    let mut all = vec!["openid", "profile", "email", "offline_access"];
    all.extend(options.resource_scopes.iter().map(String::as_str));
    for other in &options.resources {
        all.extend(
            other
                .scopes
                .iter()
                .chain(&other.extra_scopes)
                .map(String::as_str),
        );
    }
    // The console's scope: supported, never advertised, never granted without consent.
    all.push(ADMIN_SCOPE);
    let scopes_supported = Scopes::from_tokens(all);
    if !default_scope.is_subset_of(&scopes_supported) {
        return Err(invalid(
            "default_scope",
            "names a scope that is not supported",
        ));
    }
    if options
        .consent_scopes
        .iter()
        .any(|scope| Scopes::parse(scope).map_or(true, |one| one.iter().count() != 1))
    {
        return Err(invalid(
            "consent_scopes",
            "each entry must be one scope token",
        ));
    }
    let consent_scopes = Scopes::from_tokens(
        options
            .consent_scopes
            .iter()
            .map(String::as_str)
            .chain([ADMIN_SCOPE]),
    );
    if options.admin_reauth_secs <= 0 {
        return Err(invalid(
            "admin_reauth_secs",
            "must be a positive number of seconds",
        ));
    }
    if options
        .admins
        .iter()
        .any(|email| !email.contains('@') || email.trim() != email)
    {
        return Err(invalid("admins", "each entry must be an email address"));
    }
    if options
        .initial_access_token
        .as_ref()
        .is_some_and(|t| t.len() < 32)
    {
        return Err(invalid(
            "initial_access_token",
            "must be at least 32 characters",
        ));
    }
    let cimd = &options.cimd;
    if cimd.max_document_bytes == 0
        || cimd.connect_timeout.is_zero()
        || cimd.timeout.is_zero()
        || cimd.min_cache_seconds < 0
        || cimd.min_cache_seconds > cimd.max_cache_seconds
    {
        return Err(invalid(
            "cimd",
            "max_document_bytes and the timeouts must be positive, and 0 <= min_cache_seconds <= max_cache_seconds",
        ));
    }
    if !(1..=crate::email::MAX_TOKEN_LIFETIME).contains(&options.email.token_expires_in) {
        return Err(invalid(
            "email.token_expires_in",
            "must be between 1 and 3600 seconds",
        ));
    }
    if options.email.verification == EmailVerification::Required && options.mailer.is_none() {
        return Err(invalid(
            "email_verification",
            "\"required\" needs a way to send mail: configure SMTP",
        ));
    }
    if options.secret.as_ref().is_some_and(|s| s.len() < 32) {
        return Err(invalid("secret", "must be at least 32 characters"));
    }
    check_identity_providers(options)?;
    Ok(Checked {
        issuer,
        resource,
        other_resources,
        scopes_supported,
        default_scope,
        consent_scopes,
    })
}

/// Provider ids that can be a path segment and an `account` row's `providerId`, each once;
/// and some way to sign in.
fn check_identity_providers(options: &McpAuthOptions) -> Result<(), BuildError> {
    let mut seen = std::collections::HashSet::new();
    for provider in &options.identity_providers {
        if !valid_provider_id(&provider.id) {
            return Err(invalid(
                "identity_providers",
                format!(
                    "id {:?}: lower-case letters, digits, - and _ (at most 32), not \"credential\"",
                    provider.id
                ),
            ));
        }
        if !seen.insert(provider.id.as_str()) {
            return Err(invalid(
                "identity_providers",
                format!("id {:?} is used twice", provider.id),
            ));
        }
        if provider.name.trim().is_empty() {
            return Err(invalid(
                "identity_providers",
                format!("provider {:?} needs a name", provider.id),
            ));
        }
    }
    if !options.password_login && options.identity_providers.is_empty() {
        return Err(invalid(
            "password_login",
            "is false and no identity provider is configured: nobody could sign in",
        ));
    }
    Ok(())
}

/// `options.resources` as URLs: absolute http(s) URIs without fragment (RFC 8707 §2), each at
/// a path of its own (its metadata lives at a path derived from it), none the main resource.
fn check_other_resources(
    options: &McpAuthOptions,
    main: &url::Url,
) -> Result<Vec<url::Url>, BuildError> {
    let mut paths = vec![protected_resource::locate(main).path];
    let mut urls = Vec::new();
    for other in &options.resources {
        let url = url::Url::parse(&other.resource)
            .map_err(|e| invalid("resources", format!("{:?}: {e}", other.resource)))?;
        let path = protected_resource::locate(&url).path;
        if !matches!(url.scheme(), "http" | "https") || url.fragment().is_some() || path.is_empty()
        {
            return Err(invalid(
                "resources",
                format!(
                    "{:?} must be an http(s) URL with a path and no fragment",
                    other.resource
                ),
            ));
        }
        if paths.contains(&path) {
            return Err(invalid(
                "resources",
                format!("{:?}: another resource has the path {path}", other.resource),
            ));
        }
        let scopes: Vec<&str> = other
            .scopes
            .iter()
            .chain(&other.extra_scopes)
            .map(String::as_str)
            .collect();
        if scopes
            .iter()
            .any(|s| s.split_ascii_whitespace().count() != 1)
        {
            return Err(invalid("resources", "each scope must be one scope token"));
        }
        Scopes::parse(&scopes.join(" ")).map_err(|e| invalid("resources", e.description))?;
        paths.push(path);
        urls.push(url);
    }
    Ok(urls)
}
