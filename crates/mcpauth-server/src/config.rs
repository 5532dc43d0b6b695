//! Server configuration: defaults, then `mcpauth.toml` (or `--config FILE`), then `MCPAUTH_*`
//! environment variables, then command-line flags — each later source overriding the earlier.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use mcpauth::{
    McpAuthOptions, ProtectedResource, RateLimitOptions, RefreshReusePolicy, RefreshTokenPolicy,
    TrustedClient,
};
use mcpauth_gateway::Upstream;
use serde::{Deserialize, Serialize};

/// Every setting of `mcpauth serve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    pub bind: String,
    /// Public origin; default `http://localhost:<bound port>`.
    pub issuer: Option<String>,
    /// `sqlite://path`, or `postgres://…` for a database several instances can share.
    pub database_url: String,
    /// `[database]`: the connection pool.
    pub database: DatabaseSettings,
    /// `redis://…` (or `rediss://…`): rate-limit counters shared through Redis.
    pub redis_url: Option<String>,
    /// Prefix of every key mcpauth writes to Redis (separates deployments sharing one Redis).
    pub redis_key_prefix: String,
    pub base_path: String,
    /// Canonical URI of the MCP endpoint; default `{issuer}/api/mcp`.
    pub resource: Option<String>,
    pub resource_name: String,
    /// Secret for cookie signatures (≥ 32 characters); default: generated once, kept in the
    /// database.
    pub secret: Option<String>,
    pub login_page: String,
    pub consent_page: String,
    pub code_expires_in: i64,
    pub access_token_expires_in: i64,
    pub refresh_token_expires_in: i64,
    pub refresh_family_lifetime: i64,
    pub refresh_reuse_grace: i64,
    /// `tolerate_previous` (default) or `strict`.
    pub refresh_reuse_policy: RefreshReusePolicy,
    pub refresh_reuse_window: i64,
    /// `registered_grant` or `offline_access`.
    pub refresh_token_policy: String,
    pub session_expires_in: i64,
    pub default_scope: String,
    pub resource_scopes: Vec<String>,
    pub mcp_scopes: Vec<String>,
    /// Scopes never granted without the user's explicit approval (default `["mcp:admin"]`).
    pub consent_scopes: Vec<String>,
    /// Browser origins allowed to call the MCP endpoint besides the issuer's.
    pub mcp_allowed_origins: Vec<String>,
    pub require_pkce_for_confidential: bool,
    pub allow_dynamic_client_registration: bool,
    /// A password change on the account page also disconnects every app.
    pub revoke_grants_on_password_change: bool,
    /// Trust `X-Forwarded-For` / `Forwarded` for the client's address (only behind a proxy
    /// that sets them).
    pub trust_proxy: bool,
    /// RFC 7591 initial access token registration requests must carry; default none.
    pub initial_access_token: Option<String>,
    /// `[[trusted_clients]]`: clients registered by configuration.
    pub trusted_clients: Vec<TrustedClient>,
    /// Fields merged into the authorization server metadata.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// `ES256` (default) or `RS256`: the algorithm of new id_token signing keys.
    pub signing_algorithm: String,
    /// Encrypts signing keys at rest; default: the server secret.
    pub key_encryption_secret: Option<String>,
    /// Claims added to every id_token and userinfo answer.
    pub additional_user_info_claims: serde_json::Map<String, serde_json::Value>,
    pub rate_limits: RateLimitSettings,
    pub token_cache: TokenCacheSettings,
    pub cimd: CimdSettings,
    /// An existing MCP server to protect at the resource's path (`/api/mcp`) instead of the
    /// demo, e.g. `http://127.0.0.1:8080/mcp`. Also `--upstream` on `serve`.
    pub upstream: Option<String>,
    /// `[[upstreams]]`: MCP servers protected by the gateway, each its own resource.
    pub upstreams: Vec<UpstreamSettings>,
    /// `text` (default) or `json`: one JSON object a line on standard error.
    pub log_format: String,
    /// Address of the Prometheus `/metrics` listener; none (default) serves no metrics. Never
    /// the public listener: a separate port, for the monitoring network only.
    pub metrics_bind: Option<String>,
    /// Seconds a client has to send a request's headers before its connection is closed.
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send a request's body before the request fails with 408.
    pub body_read_timeout_secs: u64,
    /// Seconds in-flight requests get to finish after SIGTERM before the server exits anyway.
    pub shutdown_timeout_secs: u64,
    /// `required`, `optional` (default) or `off`: whether users must verify their address.
    pub email_verification: mcpauth::EmailVerification,
    /// `[email]`: mailed links.
    pub email: EmailSettings,
    /// `[smtp]`: the SMTP server password-reset and verification mail goes through; none: no
    /// mail (in development the links go to the log, see `email.log_links`).
    pub smtp: Option<SmtpSettings>,
    /// `[[identity_providers]]`: upstream sign-in ("Continue with …").
    pub identity_providers: Vec<IdentityProviderSettings>,
    /// Sign-in and sign-up with email and password; `false` leaves only the identity providers.
    pub password_login: bool,
    /// Email domains whose addresses may have an account (empty, with `allowed_emails` empty:
    /// anyone).
    pub allowed_email_domains: Vec<String>,
    /// Single addresses that may have an account.
    pub allowed_emails: Vec<String>,
}

/// `[[identity_providers]]`: one upstream identity provider.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityProviderSettings {
    /// In the callback URL (`{issuer}{base_path}/callback/{id}`) and the `account` table.
    pub id: String,
    /// `oidc` (default): any OpenID provider, from `issuer`; `github`: the GitHub preset.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// On the button: "Continue with {name}"; default the id (`GitHub` for GitHub).
    pub name: Option<String>,
    /// OpenID issuer URL (discovery at `{issuer}/.well-known/openid-configuration`).
    pub issuer: Option<String>,
    /// Client id at the provider; `${NAME}` reads the environment; default the environment
    /// variable `MCPAUTH_IDP_<ID>_CLIENT_ID`.
    pub client_id: Option<String>,
    /// Client secret; `${NAME}` reads the environment; default `MCPAUTH_IDP_<ID>_CLIENT_SECRET`.
    pub client_secret: Option<String>,
    /// OpenID scopes besides `openid`; default `["email", "profile"]`.
    pub scopes: Vec<String>,
    /// Treat the provider's emails as verified even without `email_verified` (see the README).
    pub trust_email: bool,
    /// A claim every identity must carry, e.g. `{ name = "groups", value = "mcp-users" }`.
    pub required_claim: Option<RequiredClaimSettings>,
    /// GitHub only: base URL of the web flow (GitHub Enterprise Server, or a test stand-in).
    pub web_url: Option<String>,
    /// GitHub only: base URL of the REST API.
    pub api_url: Option<String>,
}

/// `required_claim = { name = "…", value = "…" }`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequiredClaimSettings {
    pub name: String,
    pub value: String,
}

impl IdentityProviderSettings {
    /// A credential from the setting (with `${NAME}` read from the environment), else from
    /// `MCPAUTH_IDP_<ID>_<WHAT>`.
    fn credential(
        &self,
        configured: Option<&String>,
        what: &str,
    ) -> anyhow::Result<Option<String>> {
        if let Some(raw) = configured {
            return expand_env(raw).map(Some).map_err(|name| {
                anyhow::anyhow!(
                    "identity provider {:?}: {what} names the environment variable {name}, which is not set",
                    self.id
                )
            });
        }
        let var = format!(
            "MCPAUTH_IDP_{}_{what}",
            self.id.to_ascii_uppercase().replace('-', "_")
        );
        Ok(std::env::var(&var).ok().filter(|v| !v.is_empty()))
    }

    /// The provider these settings describe.
    pub fn provider(&self) -> anyhow::Result<mcpauth::SignInProvider> {
        let id = &self.id;
        let client_id = self
            .credential(self.client_id.as_ref(), "CLIENT_ID")?
            .ok_or_else(|| anyhow::anyhow!("identity provider {id:?} needs a client_id"))?;
        let client_secret = self.credential(self.client_secret.as_ref(), "CLIENT_SECRET")?;
        let (name, provider): (String, std::sync::Arc<dyn mcpauth::IdentityProvider>) =
            match self.kind.as_deref().unwrap_or("oidc") {
                "oidc" => {
                    let issuer = self.issuer.clone().ok_or_else(|| {
                        anyhow::anyhow!("identity provider {id:?} (oidc) needs an issuer")
                    })?;
                    let provider = mcpauth_idp::OidcProvider::new(mcpauth_idp::OidcConfig {
                        issuer,
                        client_id,
                        client_secret,
                        scopes: self.scopes.clone(),
                        http: mcpauth_idp::HttpOptions::default(),
                    })
                    .map_err(|e| anyhow::anyhow!("identity provider {id:?}: {e}"))?;
                    (id.clone(), std::sync::Arc::new(provider))
                }
                "github" => {
                    let secret = client_secret.ok_or_else(|| {
                        anyhow::anyhow!("identity provider {id:?} (github) needs a client_secret")
                    })?;
                    let mut config = mcpauth_idp::GitHubConfig::new(client_id, secret);
                    if let Some(web) = &self.web_url {
                        config.web_url = web.clone();
                    }
                    if let Some(api) = &self.api_url {
                        config.api_url = api.clone();
                    }
                    let provider = mcpauth_idp::GitHubProvider::new(config)
                        .map_err(|e| anyhow::anyhow!("identity provider {id:?}: {e}"))?;
                    ("GitHub".to_owned(), std::sync::Arc::new(provider))
                }
                other => anyhow::bail!(
                    "identity provider {id:?}: type must be oidc or github, not {other:?}"
                ),
            };
        Ok(mcpauth::SignInProvider {
            id: id.clone(),
            name: self.name.clone().unwrap_or(name),
            trust_email: self.trust_email,
            required_claim: self.required_claim.as_ref().map(|c| {
                mcpauth::identity_provider::RequiredClaim {
                    name: c.name.clone(),
                    value: c.value.clone(),
                }
            }),
            provider,
        })
    }
}

/// `[email]`: mailed links (password reset, verification).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailSettings {
    /// Seconds a mailed link works (1 to 3600).
    pub token_expires_in: i64,
    /// Without `[smtp]`, write the links to the log instead of mailing them. Default: on with
    /// a loopback issuer (development), off otherwise; `true` with another issuer refuses to
    /// start: never in production.
    pub log_links: Option<bool>,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            token_expires_in: mcpauth::EmailOptions::default().token_expires_in,
            log_links: None,
        }
    }
}

/// `[smtp]`: where mail goes out.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    /// Default by `tls`: 587 (`starttls`), 465 (`tls`), 25 (`none`).
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default), `tls` or `none` (a relay on this machine, or tests).
    #[serde(default)]
    pub tls: mcpauth::SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    /// Also `MCPAUTH_SMTP__PASSWORD`.
    #[serde(default)]
    pub password: Option<String>,
    /// The `From` address, e.g. `"Example <no-reply@example.com>"`.
    pub from: String,
    /// Seconds a connection or command may take.
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
    /// A PEM file of CA certificates trusted for the SMTP server, besides the system's (a
    /// private CA).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

fn default_smtp_timeout() -> u64 {
    10
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

/// Whether `issuer` is on this machine (`localhost`, `127.0.0.0/8`, `[::1]`): a development
/// server, where mailed links may go to the log.
pub fn is_loopback_issuer(issuer: &str) -> bool {
    match url::Url::parse(issuer)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `[[upstreams]]`: one MCP server behind the gateway.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamSettings {
    /// Public path, e.g. `/mcp/notes`; its resource is `{issuer}{path}`.
    pub path: String,
    /// The server's Streamable HTTP endpoint, e.g. `http://127.0.0.1:8080/mcp`.
    pub url: String,
    /// Its name, for its metadata; default: the path.
    pub name: Option<String>,
    /// Scopes every call needs; default `mcp_scopes`.
    pub scopes: Vec<String>,
    /// Tool name → further scopes calling it needs.
    pub tool_scopes: BTreeMap<String, Vec<String>>,
    /// Headers sent to the upstream, e.g. `{ "X-Api-Key" = "${NOTES_API_KEY}" }`: `${NAME}` is
    /// replaced by the environment variable `NAME` (which must be set).
    pub headers: BTreeMap<String, String>,
    /// Seconds the upstream may take to start answering; default 120.
    pub timeout_secs: Option<u64>,
    /// A PEM file of certificate authorities trusted for an `https://` upstream besides the
    /// system's (a private CA).
    pub ca_file: Option<std::path::PathBuf>,
}

/// `[cimd]`: clients identified by Client ID Metadata Documents.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CimdSettings {
    /// Accept `client_id`s that are https document URLs.
    pub enabled: bool,
    /// Hosts or `https://` URL prefixes whose documents are accepted; empty: any not denied.
    pub allowed: Vec<String>,
    /// Hosts or `https://` URL prefixes whose documents are refused.
    pub denied: Vec<String>,
    /// Accept document URLs with a query.
    pub allow_query: bool,
    /// Fetch from loopback addresses (tests and local development only).
    pub allow_loopback: bool,
    /// A PEM file of extra certificate authorities trusted when fetching.
    pub extra_ca_file: Option<std::path::PathBuf>,
    pub max_document_bytes: usize,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    pub min_cache_seconds: i64,
    pub max_cache_seconds: i64,
    pub per_host_concurrency: usize,
    pub per_host_per_minute: u32,
}

impl Default for CimdSettings {
    fn default() -> Self {
        let d = mcpauth::CimdOptions::default();
        Self {
            enabled: d.enabled,
            allowed: d.allowed,
            denied: d.denied,
            allow_query: d.allow_query,
            allow_loopback: d.allow_loopback,
            extra_ca_file: d.extra_ca_file,
            max_document_bytes: d.max_document_bytes,
            connect_timeout_ms: u64::try_from(d.connect_timeout.as_millis()).unwrap_or(u64::MAX),
            timeout_ms: u64::try_from(d.timeout.as_millis()).unwrap_or(u64::MAX),
            min_cache_seconds: d.min_cache_seconds,
            max_cache_seconds: d.max_cache_seconds,
            per_host_concurrency: d.per_host_concurrency,
            per_host_per_minute: d.per_host_per_minute,
        }
    }
}

/// `[token_cache]`: validated access tokens kept in memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenCacheSettings {
    /// The most tokens kept; 0 turns the cache off.
    pub capacity: usize,
    /// The longest, in milliseconds, that a revocation made by another instance or by an admin
    /// command can go unnoticed (this instance's own revocations take effect at once).
    pub revocation_check_ms: u64,
}

impl Default for TokenCacheSettings {
    fn default() -> Self {
        let d = mcpauth::TokenCacheOptions::default();
        Self {
            capacity: d.capacity,
            revocation_check_ms: u64::try_from(d.revocation_check_interval.as_millis())
                .unwrap_or(u64::MAX),
        }
    }
}

/// `[database]`: pool settings; unset values keep the store's defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Most connections this instance opens (default: 4 for SQLite reads, plus one connection
    /// for its writes; 10 for PostgreSQL).
    pub max_connections: Option<u32>,
    /// Seconds an operation waits for a free connection before failing (PostgreSQL; default
    /// 30). SQLite connections wait on the database's 5 s busy timeout instead.
    pub acquire_timeout_secs: Option<u64>,
}

/// Where rate-limit counters live (`[rate_limits] backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitBackendChoice {
    /// In the process: limits per instance.
    Memory,
    /// In the database: shared by every instance on it.
    Database,
    /// In Redis (`redis_url`): shared by every instance on it.
    Redis,
}

/// `[rate_limits]`: requests per window; 0 turns a limit off.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// `memory`, `database` or `redis`; default: `redis` when `redis_url` is set, else
    /// `database` on PostgreSQL and `memory` on SQLite.
    pub backend: Option<String>,
    pub enabled: bool,
    pub window: i64,
    pub sign_in_per_ip: u32,
    pub sign_in_per_account: u32,
    pub sign_up_per_ip: u32,
    pub register_per_ip: u32,
    pub token_per_ip: u32,
    /// Password-reset and verification mail requests per client address.
    pub email_per_ip: u32,
    /// Password-reset and verification mail requests per email address.
    pub email_per_address: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        let d = RateLimitOptions::default();
        Self {
            backend: None,
            enabled: true,
            window: d.window,
            sign_in_per_ip: d.sign_in_per_ip,
            sign_in_per_account: d.sign_in_per_account,
            sign_up_per_ip: d.sign_up_per_ip,
            register_per_ip: d.register_per_ip,
            token_per_ip: d.token_per_ip,
            email_per_ip: d.email_per_ip,
            email_per_address: d.email_per_address,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        let d = McpAuthOptions::new("http://localhost:3000");
        Self {
            bind: "127.0.0.1:3000".into(),
            issuer: None,
            database_url: "sqlite://mcpauth.db".into(),
            database: DatabaseSettings::default(),
            redis_url: None,
            redis_key_prefix: "mcpauth:".into(),
            base_path: d.base_path,
            resource: None,
            resource_name: d.resource_name,
            secret: None,
            login_page: d.login_page,
            consent_page: d.consent_page,
            code_expires_in: d.code_expires_in,
            access_token_expires_in: d.access_token_expires_in,
            refresh_token_expires_in: d.refresh_token_expires_in,
            refresh_family_lifetime: d.refresh_family_lifetime,
            refresh_reuse_grace: d.refresh_reuse_grace,
            refresh_reuse_policy: d.refresh_reuse_policy,
            refresh_reuse_window: d.refresh_reuse_window,
            refresh_token_policy: "registered_grant".into(),
            session_expires_in: d.session_expires_in,
            default_scope: d.default_scope,
            resource_scopes: d.resource_scopes,
            mcp_scopes: d.mcp_scopes,
            consent_scopes: d.consent_scopes,
            mcp_allowed_origins: d.mcp_allowed_origins,
            require_pkce_for_confidential: d.require_pkce_for_confidential,
            allow_dynamic_client_registration: d.allow_dynamic_client_registration,
            revoke_grants_on_password_change: d.revoke_grants_on_password_change,
            initial_access_token: None,
            trusted_clients: Vec::new(),
            trust_proxy: false,
            metadata: serde_json::Map::new(),
            signing_algorithm: "ES256".into(),
            key_encryption_secret: None,
            additional_user_info_claims: serde_json::Map::new(),
            rate_limits: RateLimitSettings::default(),
            token_cache: TokenCacheSettings::default(),
            cimd: CimdSettings::default(),
            upstream: None,
            upstreams: Vec::new(),
            log_format: "text".into(),
            metrics_bind: None,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            shutdown_timeout_secs: 30,
            email_verification: d.email.verification,
            email: EmailSettings::default(),
            smtp: None,
            identity_providers: Vec::new(),
            password_login: true,
            allowed_email_domains: Vec::new(),
            allowed_emails: Vec::new(),
        }
    }
}

/// Flags given on the command line; `None` leaves the setting to the other sources.
#[derive(Debug, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

/// The top-level setting names, as written in `mcpauth.toml`.
fn setting_names() -> Vec<String> {
    match serde_json::to_value(Settings::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

impl Settings {
    /// Loads the settings. `config` names a file that must exist; without it `mcpauth.toml`
    /// in the working directory is read if present.
    pub fn load(config: Option<&Path>, flags: FlagOverrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match config {
            Some(path) => {
                if !path.is_file() {
                    anyhow::bail!("configuration file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None => figment = figment.merge(Toml::file("mcpauth.toml")),
        }
        // Only variables naming a setting are read: others sharing the prefix (MCPAUTH_CONFIG,
        // a test harness's MCPAUTH_BIN) are not configuration errors.
        let known = setting_names();
        let env = Env::prefixed("MCPAUTH_").split("__").filter(move |key| {
            let top = key.as_str().split('.').next().unwrap_or_default();
            known.iter().any(|name| name.eq_ignore_ascii_case(top))
        });
        let settings: Settings = figment
            .merge(env)
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        Ok(settings)
    }

    /// Where the rate-limit counters live: `[rate_limits] backend` when set; otherwise Redis
    /// when `redis_url` is set, the database on PostgreSQL, and memory on SQLite.
    pub fn rate_limit_backend(&self) -> anyhow::Result<RateLimitBackendChoice> {
        let redis_url = self.redis_url.as_deref().filter(|url| !url.is_empty());
        match self.rate_limits.backend.as_deref() {
            Some("memory") => Ok(RateLimitBackendChoice::Memory),
            Some("database") => Ok(RateLimitBackendChoice::Database),
            Some("redis") if redis_url.is_some() => Ok(RateLimitBackendChoice::Redis),
            Some("redis") => {
                anyhow::bail!("rate_limits.backend = \"redis\" needs redis_url (or --redis-url)")
            }
            Some(other) => anyhow::bail!(
                "rate_limits.backend must be memory, database or redis, not {other:?}"
            ),
            None if redis_url.is_some() => Ok(RateLimitBackendChoice::Redis),
            None if self.database_url.starts_with("sqlite:") => Ok(RateLimitBackendChoice::Memory),
            None => Ok(RateLimitBackendChoice::Database),
        }
    }

    /// What sends mail: SMTP when `[smtp]` is set; the log in development (see
    /// [`EmailSettings::log_links`]); otherwise nothing.
    pub fn mailer(&self, issuer: &str) -> anyhow::Result<Option<Arc<dyn mcpauth::Mailer>>> {
        match (&self.smtp, self.email.log_links) {
            (Some(_), Some(true)) => {
                anyhow::bail!("email.log_links = true and [smtp] exclude each other")
            }
            (Some(smtp), _) => {
                let mailer = mcpauth::SmtpMailer::new(&mcpauth::SmtpOptions {
                    host: smtp.host.clone(),
                    port: smtp.port,
                    tls: smtp.tls,
                    username: smtp.username.clone(),
                    password: smtp.password.clone(),
                    from: smtp.from.clone(),
                    timeout: std::time::Duration::from_secs(smtp.timeout_secs),
                    ca_file: smtp.ca_file.clone(),
                })
                .map_err(|e| anyhow::anyhow!("[smtp]: {e}"))?;
                Ok(Some(Arc::new(mailer)))
            }
            (None, Some(true)) if !is_loopback_issuer(issuer) => anyhow::bail!(
                "email.log_links = true writes password-reset links to the log: only with a loopback issuer (development), not {issuer}"
            ),
            (None, Some(true) | None) if is_loopback_issuer(issuer) => {
                Ok(Some(Arc::new(mcpauth::LogMailer)))
            }
            (None, _) => Ok(None),
        }
    }

    /// The library options these settings describe, for an issuer.
    pub fn options(&self, issuer: &str) -> anyhow::Result<McpAuthOptions> {
        let mut o = McpAuthOptions::new(issuer);
        if let Some(resource) = &self.resource {
            o.resource = resource.clone();
        }
        o.base_path = self.base_path.clone();
        o.resource_name = self.resource_name.clone();
        o.secret = self.secret.clone();
        o.login_page = self.login_page.clone();
        o.consent_page = self.consent_page.clone();
        o.code_expires_in = self.code_expires_in;
        o.access_token_expires_in = self.access_token_expires_in;
        o.refresh_token_expires_in = self.refresh_token_expires_in;
        o.refresh_family_lifetime = self.refresh_family_lifetime;
        o.refresh_reuse_grace = self.refresh_reuse_grace;
        o.refresh_reuse_policy = self.refresh_reuse_policy;
        o.refresh_reuse_window = self.refresh_reuse_window;
        o.refresh_token_policy = match self.refresh_token_policy.as_str() {
            "registered_grant" => RefreshTokenPolicy::RegisteredGrant,
            "offline_access" => RefreshTokenPolicy::OfflineAccess,
            other => anyhow::bail!(
                "refresh_token_policy must be registered_grant or offline_access, not {other:?}"
            ),
        };
        o.session_expires_in = self.session_expires_in;
        o.default_scope = self.default_scope.clone();
        o.resource_scopes = self.resource_scopes.clone();
        o.mcp_scopes = self.mcp_scopes.clone();
        o.consent_scopes = self.consent_scopes.clone();
        o.mcp_allowed_origins = self.mcp_allowed_origins.clone();
        o.require_pkce_for_confidential = self.require_pkce_for_confidential;
        o.allow_dynamic_client_registration = self.allow_dynamic_client_registration;
        o.revoke_grants_on_password_change = self.revoke_grants_on_password_change;
        o.initial_access_token = self.initial_access_token.clone();
        o.trusted_clients = self.trusted_clients.clone();
        o.trust_proxy = self.trust_proxy;
        o.metadata = self.metadata.clone();
        o.signing_algorithm = mcpauth::SigningAlgorithm::parse(&self.signing_algorithm)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "signing_algorithm must be ES256 or RS256, not {:?}",
                    self.signing_algorithm
                )
            })?;
        o.key_encryption_secret = self.key_encryption_secret.clone();
        o.additional_user_info_claims = self.additional_user_info_claims.clone();
        o.identity_providers = self
            .identity_providers
            .iter()
            .map(IdentityProviderSettings::provider)
            .collect::<anyhow::Result<_>>()?;
        o.password_login = self.password_login;
        o.allowed_email_domains = self.allowed_email_domains.clone();
        o.allowed_emails = self.allowed_emails.clone();
        let r = &self.rate_limits;
        o.rate_limits = if r.enabled {
            RateLimitOptions {
                window: r.window,
                sign_in_per_ip: r.sign_in_per_ip,
                sign_in_per_account: r.sign_in_per_account,
                sign_up_per_ip: r.sign_up_per_ip,
                register_per_ip: r.register_per_ip,
                token_per_ip: r.token_per_ip,
                email_per_ip: r.email_per_ip,
                email_per_address: r.email_per_address,
            }
        } else {
            RateLimitOptions::disabled()
        };
        o.token_cache = mcpauth::TokenCacheOptions {
            capacity: self.token_cache.capacity,
            revocation_check_interval: std::time::Duration::from_millis(
                self.token_cache.revocation_check_ms,
            ),
        };
        let c = &self.cimd;
        o.cimd = mcpauth::CimdOptions {
            enabled: c.enabled,
            allowed: c.allowed.clone(),
            denied: c.denied.clone(),
            allow_query: c.allow_query,
            allow_loopback: c.allow_loopback,
            extra_ca_file: c.extra_ca_file.clone(),
            max_document_bytes: c.max_document_bytes,
            connect_timeout: std::time::Duration::from_millis(c.connect_timeout_ms),
            timeout: std::time::Duration::from_millis(c.timeout_ms),
            min_cache_seconds: c.min_cache_seconds,
            max_cache_seconds: c.max_cache_seconds,
            per_host_concurrency: c.per_host_concurrency,
            per_host_per_minute: c.per_host_per_minute,
        };
        o.email = mcpauth::EmailOptions {
            verification: self.email_verification,
            token_expires_in: self.email.token_expires_in,
        };
        o.mailer = self.mailer(issuer)?;
        let main_path = path_of(&o.resource);
        for upstream in self.all_upstreams(&main_path) {
            let scopes = if upstream.scopes.is_empty() {
                o.mcp_scopes.clone()
            } else {
                upstream.scopes.clone()
            };
            let extra: Vec<String> = upstream.tool_scopes.values().flatten().cloned().collect();
            if upstream.path == main_path {
                // It replaces the demo as the main resource.
                for scope in scopes.iter().chain(&extra) {
                    if !o.resource_scopes.contains(scope) {
                        o.resource_scopes.push(scope.clone());
                    }
                }
                o.mcp_scopes = scopes;
                if let Some(name) = &upstream.name {
                    o.resource_name = name.clone();
                }
            } else {
                o.resources.push(ProtectedResource {
                    resource: format!("{}{}", issuer.trim_end_matches('/'), upstream.path),
                    name: upstream
                        .name
                        .clone()
                        .unwrap_or_else(|| upstream.path.clone()),
                    scopes,
                    extra_scopes: extra,
                });
            }
        }
        Ok(o)
    }

    /// `upstream` (at `main_path`) and `[[upstreams]]`, in order.
    fn all_upstreams(&self, main_path: &str) -> Vec<UpstreamSettings> {
        let single = self.upstream.iter().map(|url| UpstreamSettings {
            path: main_path.to_owned(),
            url: url.clone(),
            ..UpstreamSettings::default()
        });
        single.chain(self.upstreams.iter().cloned()).collect()
    }

    /// The gateway's upstreams, for `options` built from these settings: each served as its
    /// resource, with its header values read from the environment.
    pub fn gateway_upstreams(&self, options: &McpAuthOptions) -> anyhow::Result<Vec<Upstream>> {
        let main_path = path_of(&options.resource);
        let mut upstreams = Vec::new();
        let mut paths: Vec<String> = Vec::new();
        for settings in self.all_upstreams(&main_path) {
            let path = &settings.path;
            if !path.starts_with('/') || path.ends_with('/') || path.contains(['?', '#']) {
                anyhow::bail!(
                    "upstream path {path:?} must start with / and not end with / (e.g. /mcp/notes)"
                );
            }
            if paths.contains(path) {
                anyhow::bail!("two upstreams have the path {path}");
            }
            paths.push(path.clone());
            let resource = if *path == main_path {
                options.resource.clone()
            } else {
                format!("{}{path}", options.issuer.trim_end_matches('/'))
            };
            let mut upstream = Upstream::new(settings.url.clone(), resource);
            upstream.tool_scopes = settings.tool_scopes.clone().into_iter().collect();
            if let Some(seconds) = settings.timeout_secs {
                upstream.response_timeout = Duration::from_secs(seconds);
            }
            if let Some(file) = &settings.ca_file {
                let pem = std::fs::read(file).map_err(|e| {
                    anyhow::anyhow!(
                        "upstream {path}: cannot read ca_file {}: {e}",
                        file.display()
                    )
                })?;
                upstream.extra_roots_pem = Some(pem);
            }
            for (name, raw) in &settings.headers {
                let value = expand_env(raw)
                    .map_err(|var| anyhow::anyhow!("upstream {path}: header {name} needs the environment variable {var}, which is not set"))?;
                let name = axum::http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    anyhow::anyhow!("upstream {path}: {name:?} is not a header name")
                })?;
                let value = axum::http::HeaderValue::from_str(&value).map_err(|_| {
                    anyhow::anyhow!(
                        "upstream {path}: the value of header {name} is not a valid header value"
                    )
                })?;
                upstream.headers.push((name, value));
            }
            upstreams.push(upstream);
        }
        Ok(upstreams)
    }
}

/// The path of a URL, without a trailing slash (`/api/mcp`).
fn path_of(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

/// `raw` with every `${NAME}` replaced by the environment variable `NAME`; `Err(NAME)` for one
/// that is not set.
fn expand_env(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        out.push_str(&std::env::var(name).map_err(|_| name.to_owned())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_values_read_the_environment() {
        let path = std::env::var("PATH").unwrap();
        assert_eq!(expand_env("plain").unwrap(), "plain");
        assert_eq!(expand_env("a ${PATH} b").unwrap(), format!("a {path} b"));
        assert_eq!(
            expand_env("${MCPAUTH_TEST_SURELY_UNSET_VARIABLE}").unwrap_err(),
            "MCPAUTH_TEST_SURELY_UNSET_VARIABLE"
        );
        assert_eq!(expand_env("${unterminated").unwrap(), "${unterminated");
    }

    #[test]
    fn upstreams_become_protected_resources() {
        let settings = Settings {
            upstream: Some("http://127.0.0.1:8080/mcp".into()),
            upstreams: vec![UpstreamSettings {
                path: "/mcp/notes".into(),
                url: "http://127.0.0.1:9090/mcp".into(),
                tool_scopes: BTreeMap::from([("wipe".into(), vec!["notes:admin".into()])]),
                ..UpstreamSettings::default()
            }],
            ..Settings::default()
        };
        let options = settings.options("https://auth.example.com").unwrap();
        assert_eq!(options.resources.len(), 1);
        let notes = &options.resources[0];
        assert_eq!(notes.resource, "https://auth.example.com/mcp/notes");
        assert_eq!(notes.scopes, ["mcp:tools"]);
        assert_eq!(notes.extra_scopes, ["notes:admin"]);
        let upstreams = settings.gateway_upstreams(&options).unwrap();
        assert_eq!(upstreams[0].resource, "https://auth.example.com/api/mcp");
        assert_eq!(upstreams[1].resource, "https://auth.example.com/mcp/notes");

        let mut twice = settings.clone();
        twice.upstreams[0].path = "/api/mcp".into();
        assert!(twice.gateway_upstreams(&options).is_err());
        let mut relative = settings;
        relative.upstreams[0].path = "mcp/notes/".into();
        assert!(relative.gateway_upstreams(&options).is_err());
    }

    #[test]
    fn identity_providers_from_mcpauth_toml() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mcpauth.toml");
        std::fs::write(
            &file,
            r#"
password_login = false
allowed_email_domains = ["example.com"]

[[identity_providers]]
id = "corp"
name = "Corp SSO"
issuer = "https://idp.example.com/"
client_id = "mcpauth"
client_secret = "${PATH}"
trust_email = true
required_claim = { name = "groups", value = "mcp" }

[[identity_providers]]
id = "github"
type = "github"
client_id = "Ov23li"
client_secret = "secret"
"#,
        )
        .unwrap();
        let settings = Settings::load(Some(&file), FlagOverrides::default()).unwrap();
        let options = settings.options("https://auth.example.com").unwrap();
        assert!(!options.password_login);
        assert_eq!(options.allowed_email_domains, ["example.com"]);
        let corp = &options.identity_providers[0];
        assert_eq!((corp.id.as_str(), corp.name.as_str()), ("corp", "Corp SSO"));
        assert!(corp.trust_email);
        assert_eq!(corp.required_claim.as_ref().unwrap().value, "mcp");
        assert_eq!(options.identity_providers[1].name, "GitHub");

        // What is missing or misspelt is an error at start, naming the provider.
        let broken = |edit: fn(&mut IdentityProviderSettings)| {
            let mut settings = settings.clone();
            edit(&mut settings.identity_providers[0]);
            settings
                .options("https://auth.example.com")
                .unwrap_err()
                .to_string()
        };
        assert!(broken(|p| p.issuer = None).contains("needs an issuer"));
        assert!(broken(|p| p.kind = Some("saml".into())).contains("type must be"));
        assert!(
            broken(|p| p.client_secret = Some("${MCPAUTH_TEST_SURELY_UNSET}".into()))
                .contains("MCPAUTH_TEST_SURELY_UNSET")
        );
        assert!(broken(|p| p.client_id = None).contains("needs a client_id"));
    }
}
