//! Server configuration: defaults, then `mcpauth.toml` (or `--config FILE`), then `MCPAUTH_*`
//! environment variables, then command-line flags — each later source overriding the earlier.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use mcpauth::{McpAuthOptions, RateLimitOptions, RefreshTokenPolicy, TrustedClient};
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
    /// `registered_grant` or `offline_access`.
    pub refresh_token_policy: String,
    pub session_expires_in: i64,
    pub default_scope: String,
    pub resource_scopes: Vec<String>,
    pub mcp_scopes: Vec<String>,
    /// Browser origins allowed to call the MCP endpoint besides the issuer's.
    pub mcp_allowed_origins: Vec<String>,
    pub require_pkce_for_confidential: bool,
    pub allow_dynamic_client_registration: bool,
    /// A password change on the account page also disconnects every app.
    pub revoke_grants_on_password_change: bool,
    /// Trust `X-Forwarded-For` / `Forwarded` for the client's address (only behind a proxy
    /// that sets them).
    pub trust_proxy: bool,
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
            refresh_token_policy: "registered_grant".into(),
            session_expires_in: d.session_expires_in,
            default_scope: d.default_scope,
            resource_scopes: d.resource_scopes,
            mcp_scopes: d.mcp_scopes,
            mcp_allowed_origins: d.mcp_allowed_origins,
            require_pkce_for_confidential: d.require_pkce_for_confidential,
            allow_dynamic_client_registration: d.allow_dynamic_client_registration,
            revoke_grants_on_password_change: d.revoke_grants_on_password_change,
            trusted_clients: Vec::new(),
            trust_proxy: false,
            metadata: serde_json::Map::new(),
            signing_algorithm: "ES256".into(),
            key_encryption_secret: None,
            additional_user_info_claims: serde_json::Map::new(),
            rate_limits: RateLimitSettings::default(),
            token_cache: TokenCacheSettings::default(),
            log_format: "text".into(),
            metrics_bind: None,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            shutdown_timeout_secs: 30,
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
        o.mcp_allowed_origins = self.mcp_allowed_origins.clone();
        o.require_pkce_for_confidential = self.require_pkce_for_confidential;
        o.allow_dynamic_client_registration = self.allow_dynamic_client_registration;
        o.revoke_grants_on_password_change = self.revoke_grants_on_password_change;
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
        let r = &self.rate_limits;
        o.rate_limits = if r.enabled {
            RateLimitOptions {
                window: r.window,
                sign_in_per_ip: r.sign_in_per_ip,
                sign_in_per_account: r.sign_in_per_account,
                sign_up_per_ip: r.sign_up_per_ip,
                register_per_ip: r.register_per_ip,
                token_per_ip: r.token_per_ip,
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
        Ok(o)
    }
}
