//! Server configuration: defaults, then `mcpauth.toml` (or `--config FILE`), then `MCPAUTH_*`
//! environment variables, then command-line flags — each later source overriding the earlier.
//!
//! The library's options are not declared again here: the keys they share with the library
//! deserialize straight into [`McpAuthOptions`] and its sub-structs (`[cimd]`, `[token_cache]`,
//! `[smtp]`, the limits of `[rate_limits]`, the `[email]` link lifetime), and their defaults and
//! rules are the library's. This file holds only what the binary alone has: where it listens
//! and keeps its data, logs and metrics, the gateway's upstreams, the identity providers with
//! their secrets, and the few keys that wrap library options (`enabled` and `backend` of
//! `[rate_limits]`, `email_verification`, `[email] log_links`, the optional `issuer` and
//! `resource`, known only once the port is bound).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use mcpauth::{McpAuthOptions, ProtectedResource, RateLimitOptions};
use mcpauth_gateway::Upstream;
use serde::{Deserialize, Serialize};

use crate::observability::LogFormat;

/// Every setting of `mcpauth serve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
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
    /// Canonical URI of the MCP endpoint; default `{issuer}/api/mcp`.
    pub resource: Option<String>,
    /// The library's options, read from the same top-level keys (`code_expires_in`,
    /// `trusted_clients`, `[cimd]`, …). Skipped here because [`Settings::load`] extracts them
    /// on their own, so that an error names the key it is about.
    #[serde(skip)]
    pub auth: McpAuthOptions,
    /// `[rate_limits]`: the library's limits, plus `enabled` and `backend`.
    pub rate_limits: RateLimitSettings,
    /// An existing MCP server to protect at the resource's path (`/api/mcp`) instead of the
    /// demo, e.g. `http://127.0.0.1:8080/mcp`. Also `--upstream` on `serve`.
    pub upstream: Option<String>,
    /// `[[upstreams]]`: MCP servers protected by the gateway, each its own resource.
    pub upstreams: Vec<UpstreamSettings>,
    /// `text` (default) or `json`: one JSON object a line on standard error.
    pub log_format: LogFormat,
    /// Address of the Prometheus `/metrics` listener; none (default) serves no metrics. Never
    /// the public listener: a separate port, for the monitoring network only.
    pub metrics_bind: Option<String>,
    /// Address of an internal listener that alone serves the console (`{base_path}/admin`,
    /// SECURITY A1) with its sign-in page; none (default): the console is on the main listener.
    pub admin_bind: Option<String>,
    /// Seconds a client has to send a request's headers before its connection is closed.
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send a request's body before the request fails with 408.
    pub body_read_timeout_secs: u64,
    /// Seconds in-flight requests get to finish after SIGTERM before the server exits anyway.
    pub shutdown_timeout_secs: u64,
    /// `required`, `optional` (default) or `off`: whether users must verify their address
    /// (the library's `email.verification`, spelt at the top level since the first release).
    pub email_verification: mcpauth::EmailVerification,
    /// `[email]`: mailed links.
    pub email: EmailSettings,
    /// `[smtp]`: the SMTP server password-reset and verification mail goes through; none: no
    /// mail (in development the links go to the log, see `email.log_links`).
    pub smtp: Option<mcpauth::SmtpOptions>,
    /// `[[identity_providers]]`: upstream sign-in ("Continue with …").
    pub identity_providers: Vec<IdentityProviderSettings>,
    /// `[[connections]]`: services users connect so that tools act as them there.
    pub connections: Vec<ConnectionSettings>,
    /// The vault keys that seal connected accounts' tokens (usually from the environment,
    /// `MCPAUTH_VAULT_KEY`): base64 32-byte keys, the current one first, then older ones
    /// still to be opened, separated by commas or new lines.
    pub vault_key: Option<VaultKeySetting>,
    /// A file holding the vault keys instead, one a line (the current one first).
    pub vault_key_file: Option<std::path::PathBuf>,
}

/// `vault_key`: its `Debug` never shows it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VaultKeySetting(pub String);

impl std::fmt::Debug for VaultKeySetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `type` of a `[[connections]]` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionKindSetting {
    /// Any OAuth 2.0 provider, by `authorization_url`, `token_url` (and `revocation_url`).
    #[default]
    Oauth2,
    /// Any OpenID provider, from `issuer`.
    Oidc,
    /// GitHub.
    Github,
}

/// `[[connections]]`: one service users may connect. Its `Debug` never shows the secret.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionSettings {
    /// In URLs (`{issuer}{base_path}/connections/{id}/callback`) and `[[upstreams]]`.
    pub id: String,
    /// Shown on the account page; default the id (`GitHub` for GitHub).
    pub name: Option<String>,
    /// `oauth2` (default), `oidc` or `github`.
    #[serde(rename = "type")]
    pub kind: ConnectionKindSetting,
    /// Client id at the provider; `${NAME}` reads the environment.
    pub client_id: String,
    /// Client secret; `${NAME}` reads the environment.
    pub client_secret: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// `oauth2`: the authorization endpoint.
    pub authorization_url: Option<String>,
    /// `oauth2`: the token endpoint.
    pub token_url: Option<String>,
    /// `oauth2`: the RFC 7009 revocation endpoint, if any.
    pub revocation_url: Option<String>,
    /// `oidc`: the issuer (endpoints from its discovery document).
    pub issuer: Option<String>,
    /// Extra parameters of the authorization request, e.g.
    /// `{ access_type = "offline", prompt = "consent" }` for Google.
    pub authorization_params: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl ConnectionSettings {
    /// The library's form of this entry.
    pub fn connection(&self) -> anyhow::Result<mcpauth::ConnectionOptions> {
        let id = &self.id;
        let expand = |raw: &str, what: &str| {
            expand_env(raw).map_err(|name| {
                anyhow::anyhow!(
                    "connection {id:?}: {what} names the environment variable {name}, which is not set"
                )
            })
        };
        let need = |value: &Option<String>, what: &str| {
            value
                .clone()
                .ok_or_else(|| anyhow::anyhow!("connection {id:?} needs {what}"))
        };
        let (kind, default_name) = match self.kind {
            ConnectionKindSetting::Github => (mcpauth::ConnectionKind::Github, "GitHub".to_owned()),
            ConnectionKindSetting::Oidc => (
                mcpauth::ConnectionKind::Oidc {
                    issuer: need(&self.issuer, "an issuer")?,
                },
                id.clone(),
            ),
            ConnectionKindSetting::Oauth2 => (
                mcpauth::ConnectionKind::OAuth2 {
                    authorization_url: need(&self.authorization_url, "an authorization_url")?,
                    token_url: need(&self.token_url, "a token_url")?,
                    revocation_url: self.revocation_url.clone(),
                },
                id.clone(),
            ),
        };
        Ok(mcpauth::ConnectionOptions {
            id: id.clone(),
            name: self.name.clone().unwrap_or(default_name),
            kind,
            client_id: expand(&self.client_id, "client_id")?,
            client_secret: expand(&self.client_secret, "client_secret")?,
            scopes: self.scopes.clone(),
            authorization_params: self
                .authorization_params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }
}

/// `type` of an `[[identity_providers]]` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenID provider, from its `issuer` (the default).
    #[default]
    Oidc,
    /// The GitHub preset (OAuth 2 and its REST API).
    Github,
}

/// `[[identity_providers]]`: one upstream identity provider. Its `Debug` never shows the
/// client secret.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityProviderSettings {
    /// In the callback URL (`{issuer}{base_path}/callback/{id}`) and the `account` table.
    pub id: String,
    /// `oidc` (default): any OpenID provider, from `issuer`; `github`: the GitHub preset.
    #[serde(rename = "type")]
    pub kind: ProviderKind,
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

impl std::fmt::Debug for IdentityProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityProviderSettings")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &mcpauth::options::redacted(self.client_secret.as_deref()),
            )
            .field("scopes", &self.scopes)
            .field("trust_email", &self.trust_email)
            .field("required_claim", &self.required_claim)
            .field("web_url", &self.web_url)
            .field("api_url", &self.api_url)
            .finish()
    }
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
            match self.kind {
                ProviderKind::Oidc => {
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
                ProviderKind::Github => {
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailSettings {
    /// The library's keys of this table (`token_expires_in`, seconds a mailed link works),
    /// read by [`Settings::load`] from the same table.
    #[serde(skip)]
    pub links: mcpauth::EmailOptions,
    /// Without `[smtp]`, write the links to the log instead of mailing them. Default: on with
    /// a loopback issuer (development), off otherwise; `true` with another issuer refuses to
    /// start: never in production.
    pub log_links: Option<bool>,
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
    /// The form of the access tokens issued for it: `opaque` or `jwt` (RFC 9068); default
    /// opaque, or for the upstream at the main path the top-level `access_token_format`.
    pub access_token_format: Option<mcpauth::AccessTokenFormat>,
    /// The user's own token at a connected service, sent to this upstream (and no other):
    /// `credential = { connection = "github", header = "Authorization", format = "Bearer {token}" }`.
    pub credential: Option<CredentialSettings>,
}

/// `[[upstreams]] credential`: which connection's token goes to the upstream, and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSettings {
    /// The `[[connections]]` id whose token is sent.
    pub connection: String,
    /// The header it goes in; default `Authorization`.
    #[serde(default = "default_credential_header")]
    pub header: String,
    /// The header's value, `{token}` standing for the token; default `Bearer {token}`.
    #[serde(default = "default_credential_format")]
    pub format: String,
}

fn default_credential_header() -> String {
    "Authorization".to_owned()
}

fn default_credential_format() -> String {
    "Bearer {token}".to_owned()
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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
#[serde(default)]
pub struct RateLimitSettings {
    /// `memory`, `database` or `redis`; default: `redis` when `redis_url` is set, else
    /// `database` on PostgreSQL and `memory` on SQLite.
    pub backend: Option<RateLimitBackendChoice>,
    /// `false` turns every limit off.
    pub enabled: bool,
    /// The library's keys of this table (`window` and the limits, `sign_in_per_ip`, …),
    /// read by [`Settings::load`] from the same table.
    #[serde(skip)]
    pub limits: RateLimitOptions,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            backend: None,
            enabled: true,
            limits: RateLimitOptions::default(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:3000".into(),
            issuer: None,
            database_url: "sqlite://mcpauth.db".into(),
            database: DatabaseSettings::default(),
            redis_url: None,
            redis_key_prefix: "mcpauth:".into(),
            resource: None,
            auth: McpAuthOptions::new("http://localhost:3000"),
            rate_limits: RateLimitSettings::default(),
            upstream: None,
            upstreams: Vec::new(),
            log_format: LogFormat::Text,
            metrics_bind: None,
            admin_bind: None,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            shutdown_timeout_secs: 30,
            email_verification: mcpauth::EmailVerification::default(),
            email: EmailSettings::default(),
            smtp: None,
            identity_providers: Vec::new(),
            connections: Vec::new(),
            vault_key: None,
            vault_key_file: None,
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

/// The keys `values` serialize with: the names of a table's settings.
fn names(values: &[serde_json::Result<serde_json::Value>]) -> BTreeSet<String> {
    values
        .iter()
        .filter_map(|value| match value {
            Ok(serde_json::Value::Object(map)) => Some(map.keys().cloned()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The top-level setting names, as written in `mcpauth.toml`: the server's and the library's.
fn setting_names() -> BTreeSet<String> {
    let defaults = Settings::default();
    names(&[
        serde_json::to_value(&defaults),
        serde_json::to_value(&defaults.auth),
    ])
}

/// Where a value came from, for an error: ` in mcpauth.toml TOML file`.
fn source_of(metadata: Option<&figment::Metadata>) -> String {
    match metadata {
        Some(md) => match &md.source {
            Some(source) => format!(" in {source} {}", md.name),
            None => format!(" in {}", md.name),
        },
        None => String::new(),
    }
}

/// The keys given in a table.
type Keys = BTreeMap<String, serde::de::IgnoredAny>;

/// The keys given in the tables the server and the library share: each half reads its own
/// keys of them (the library's through [`LibraryTables`]), so neither can refuse the other's.
#[derive(Default, Deserialize)]
#[serde(default)]
struct SharedTableKeys {
    rate_limits: Keys,
    email: Keys,
}

/// The library's keys of the shared tables.
#[derive(Default, Deserialize)]
#[serde(default)]
struct LibraryTables {
    rate_limits: RateLimitOptions,
    email: mcpauth::EmailOptions,
}

/// Refuses a key of `table` (the top level when `None`) that is not in `known`: where a
/// misspelt key of the top level or a shared table is caught.
fn refuse_unknown_keys(
    figment: &Figment,
    table: Option<&str>,
    keys: &Keys,
    known: &BTreeSet<String>,
) -> anyhow::Result<()> {
    if let Some(unknown) = keys.keys().find(|key| !known.contains(*key)) {
        let key = table.map_or_else(|| unknown.clone(), |table| format!("{table}.{unknown}"));
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        anyhow::bail!(
            "invalid configuration: unknown setting {key:?}{}; the settings{} are {}",
            source_of(figment.find_metadata(&key)),
            table
                .map(|table| format!(" of [{table}]"))
                .unwrap_or_default(),
            one_of(&known)
        );
    }
    Ok(())
}

/// `a, b or c`.
fn one_of(words: &[&str]) -> String {
    match words {
        [] => "nothing".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// A figment error as one message; an unknown enum value reads as it always did here,
/// `key must be a or b, not "x"`.
fn describe(error: figment::Error) -> anyhow::Error {
    let messages: Vec<String> = error
        .into_iter()
        .map(|e| match &e.kind {
            figment::error::Kind::UnknownVariant(found, allowed) => {
                format!(
                    "{} must be {}, not {found:?}{}",
                    e.path.join("."),
                    one_of(allowed),
                    source_of(e.metadata.as_ref())
                )
            }
            _ => e.to_string(),
        })
        .collect();
    anyhow::anyhow!("invalid configuration: {}", messages.join("; "))
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
        let env_names = known.clone();
        let env = Env::prefixed("MCPAUTH_").split("__").filter(move |key| {
            let top = key.as_str().split('.').next().unwrap_or_default();
            env_names.iter().any(|name| name.eq_ignore_ascii_case(top))
        });
        let figment = figment.merge(env).merge(Serialized::defaults(flags));
        let top: Keys = figment.extract().map_err(describe)?;
        refuse_unknown_keys(&figment, None, &top, &known)?;
        let tables: SharedTableKeys = figment.extract().map_err(describe)?;
        refuse_unknown_keys(
            &figment,
            Some("rate_limits"),
            &tables.rate_limits,
            &names(&[
                serde_json::to_value(RateLimitSettings::default()),
                serde_json::to_value(RateLimitOptions::default()),
            ]),
        )?;
        refuse_unknown_keys(
            &figment,
            Some("email"),
            &tables.email,
            &names(&[
                serde_json::to_value(EmailSettings::default()),
                serde_json::to_value(mcpauth::EmailOptions::default()),
            ]),
        )?;
        // The halves are extracted apart (none refuses the others' keys), each with figment
        // naming the key of a bad value.
        let mut settings: Settings = figment.extract().map_err(describe)?;
        settings.auth = figment.extract().map_err(describe)?;
        let library: LibraryTables = figment.extract().map_err(describe)?;
        settings.rate_limits.limits = library.rate_limits;
        settings.email.links = library.email;
        Ok(settings)
    }

    /// Where the rate-limit counters live: `[rate_limits] backend` when set; otherwise Redis
    /// when `redis_url` is set, the database on PostgreSQL, and memory on SQLite.
    pub fn rate_limit_backend(&self) -> anyhow::Result<RateLimitBackendChoice> {
        let redis_url = self.redis_url.as_deref().filter(|url| !url.is_empty());
        match self.rate_limits.backend {
            Some(RateLimitBackendChoice::Redis) if redis_url.is_none() => {
                anyhow::bail!("rate_limits.backend = \"redis\" needs redis_url (or --redis-url)")
            }
            Some(choice) => Ok(choice),
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
                let mailer =
                    mcpauth::SmtpMailer::new(smtp).map_err(|e| anyhow::anyhow!("[smtp]: {e}"))?;
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

    /// The vault keys from `vault_key` (`MCPAUTH_VAULT_KEY`) or `vault_key_file`; none when
    /// neither is set. A key that does not parse, or a file that cannot be read, is an error.
    pub fn vault_keys(&self) -> anyhow::Result<Option<mcpauth_core::vault::Keyring>> {
        let text = match (&self.vault_key, &self.vault_key_file) {
            (Some(_), Some(_)) => {
                anyhow::bail!("vault_key (MCPAUTH_VAULT_KEY) and vault_key_file exclude each other")
            }
            (Some(key), None) => key.0.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("vault_key_file {}: {e}", path.display()))?,
            (None, None) => return Ok(None),
        };
        mcpauth_core::vault::Keyring::parse(&text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("vault key: {e}"))
    }

    /// The library options these settings describe, for an issuer: the library's own keys as
    /// read, completed by what only the server knows.
    pub fn options(&self, issuer: &str) -> anyhow::Result<McpAuthOptions> {
        let mut o = self.auth.clone();
        // As `McpAuthOptions::new` derives them.
        o.issuer = issuer.trim_end_matches('/').to_owned();
        o.resource = match &self.resource {
            Some(resource) => resource.clone(),
            None => format!("{}/api/mcp", o.issuer),
        };
        o.identity_providers = self
            .identity_providers
            .iter()
            .map(IdentityProviderSettings::provider)
            .collect::<anyhow::Result<_>>()?;
        o.connections = self
            .connections
            .iter()
            .map(ConnectionSettings::connection)
            .collect::<anyhow::Result<_>>()?;
        o.vault_keys = self.vault_keys()?;
        // A trusted issuer that maps subjects through linked accounts must be the same issuer
        // as the identity provider those accounts were linked by.
        for trusted in &o.trusted_issuers {
            let Some(provider) = &trusted.identity_provider else {
                continue;
            };
            let same_issuer = self
                .identity_providers
                .iter()
                .any(|p| &p.id == provider && p.issuer.as_deref() == Some(trusted.issuer.as_str()));
            if !same_issuer {
                anyhow::bail!(
                    "invalid configuration: trusted_issuers {:?}: identity_provider {provider:?} must name an [[identity_providers]] entry with the same issuer",
                    trusted.issuer
                );
            }
        }
        o.rate_limits = if self.rate_limits.enabled {
            self.rate_limits.limits.clone()
        } else {
            RateLimitOptions::disabled()
        };
        o.email = mcpauth::EmailOptions {
            verification: self.email_verification,
            ..self.email.links.clone()
        };
        o.mailer = self.mailer(issuer)?;
        o.console_apart = self.admin_bind.is_some();
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
                if let Some(format) = upstream.access_token_format {
                    o.access_token_format = format;
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
                    access_token_format: upstream.access_token_format.unwrap_or_default(),
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
            if let Some(credential) = &settings.credential {
                if !options
                    .connections
                    .iter()
                    .any(|c| c.id == credential.connection)
                {
                    anyhow::bail!(
                        "upstream {path}: credential.connection {:?} is not the id of any [[connections]] entry",
                        credential.connection
                    );
                }
                let parsed = mcpauth_gateway::credential::Credential::new(
                    &credential.connection,
                    &credential.header,
                    &credential.format,
                )
                .map_err(|e| anyhow::anyhow!("upstream {path}: credential: {e}"))?;
                if upstream
                    .headers
                    .iter()
                    .any(|(name, _)| *name == parsed.header)
                {
                    anyhow::bail!(
                        "upstream {path}: the credential's header {} is also set in its headers",
                        parsed.header
                    );
                }
                upstream.credential = Some(parsed);
            }
            upstreams.push(upstream);
        }
        Ok(upstreams)
    }
}

/// The path of a URL, without a trailing slash (`/api/mcp`).
fn path_of(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| mcpauth_core::protected_resource::locate(&u).path)
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
    fn v3_upstream_credentials_are_checked_at_start() {
        let with = |credential: CredentialSettings, headers: &[(&str, &str)]| {
            let settings = Settings {
                connections: vec![ConnectionSettings {
                    id: "github".into(),
                    kind: ConnectionKindSetting::Github,
                    client_id: "id".into(),
                    client_secret: "secret".into(),
                    ..ConnectionSettings::default()
                }],
                upstreams: vec![UpstreamSettings {
                    path: "/mcp/gh".into(),
                    url: "https://api.githubcopilot.com/mcp/".into(),
                    headers: headers
                        .iter()
                        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                        .collect(),
                    credential: Some(credential),
                    ..UpstreamSettings::default()
                }],
                ..Settings::default()
            };
            let options = settings.options("https://auth.example.com").unwrap();
            settings
                .gateway_upstreams(&options)
                .map(|u| format!("{:?}", u[0].credential))
                .map_err(|e| e.to_string())
        };
        let credential = |connection: &str, header: &str, format: &str| CredentialSettings {
            connection: connection.into(),
            header: header.into(),
            format: format.into(),
        };
        let ok = with(credential("github", "Authorization", "Bearer {token}"), &[]).unwrap();
        assert!(ok.contains("github"), "{ok}");
        let unknown = with(credential("gitlab", "Authorization", "Bearer {token}"), &[]);
        assert!(
            unknown
                .unwrap_err()
                .contains("\"gitlab\" is not the id of any [[connections]]")
        );
        let reserved = with(credential("github", "X-MCPAuth-User-Id", "{token}"), &[]);
        assert!(reserved.unwrap_err().contains("sets or drops itself"));
        let format = with(credential("github", "Authorization", "Bearer"), &[]);
        assert!(format.unwrap_err().contains("{token}"));
        let twice = with(
            credential("github", "X-Api-Key", "{token}"),
            &[("X-Api-Key", "shared")],
        );
        assert!(twice.unwrap_err().contains("also set in its headers"));
        // The defaults: Authorization, Bearer {token}.
        let defaults: CredentialSettings =
            figment::Figment::from(figment::providers::Toml::string("connection = \"github\""))
                .extract()
                .unwrap();
        assert_eq!(defaults.header, "Authorization");
        assert_eq!(defaults.format, "Bearer {token}");
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

    /// Keys that are not field names of the library's types (`*_ms`, `*_secs`), the tables the
    /// server and the library share, and the enums still read as they always were.
    // A runtime: `[smtp]` builds lettre's pool, which needs one.
    #[tokio::test]
    async fn library_keys_keep_their_configuration_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mcpauth.toml");
        std::fs::write(
            &file,
            r#"
refresh_token_policy = "offline_access"
signing_algorithm = "RS256"
log_format = "json"
email_verification = "off"

[token_cache]
capacity = 7
revocation_check_ms = 40

[cimd]
connect_timeout_ms = 1500
timeout_ms = 2500
per_host_per_minute = 3

[rate_limits]
backend = "database"
window = 90
sign_in_per_ip = 4

[email]
token_expires_in = 600
log_links = false

[smtp]
host = "smtp.example.com"
from = "Example <no-reply@example.com>"
password = "smtp-password-value"
timeout_secs = 4

[[trusted_clients]]
client_id = "app"
name = "App"
client_secret = "trusted-client-secret-value-0123456789"
redirect_uris = ["https://app.example/cb"]

[[identity_providers]]
id = "corp"
issuer = "https://idp.example.com"
client_id = "mcpauth"
client_secret = "idp-client-secret-value"
"#,
        )
        .unwrap();
        let settings = Settings::load(Some(&file), FlagOverrides::default()).unwrap();
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(
            settings.rate_limit_backend().unwrap(),
            RateLimitBackendChoice::Database
        );
        let smtp = settings.smtp.as_ref().unwrap();
        assert_eq!(smtp.timeout, Duration::from_secs(4));
        assert_eq!(smtp.tls, mcpauth::SmtpTls::Starttls);
        let debug = format!("{settings:?}");
        assert!(!debug.contains("smtp-password-value"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        for secret in ["trusted-client-secret-value", "idp-client-secret-value"] {
            assert!(!debug.contains(secret), "{debug}");
            assert!(!format!("{:?}", settings.auth.trusted_clients).contains(secret));
        }
        let options = settings.options("https://auth.example.com").unwrap();
        assert_eq!(
            options.refresh_token_policy,
            mcpauth::RefreshTokenPolicy::OfflineAccess
        );
        assert_eq!(options.signing_algorithm, mcpauth::SigningAlgorithm::Rs256);
        assert_eq!(options.token_cache.capacity, 7);
        assert_eq!(
            options.token_cache.revocation_check_interval,
            Duration::from_millis(40)
        );
        assert_eq!(options.cimd.connect_timeout, Duration::from_millis(1500));
        assert_eq!(options.cimd.timeout, Duration::from_millis(2500));
        assert_eq!(options.cimd.per_host_per_minute, 3);
        assert_eq!(options.cimd.max_document_bytes, 5120, "a default kept");
        assert_eq!(options.rate_limits.window, 90);
        assert_eq!(options.rate_limits.sign_in_per_ip, 4);
        assert_eq!(options.rate_limits.sign_up_per_ip, 10, "a default kept");
        assert_eq!(options.email.token_expires_in, 600);
        assert_eq!(options.email.verification, mcpauth::EmailVerification::Off);
        assert_eq!(options.issuer, "https://auth.example.com");
        assert_eq!(options.resource, "https://auth.example.com/api/mcp");

        std::fs::write(&file, "[rate_limits]\nenabled = false\n").unwrap();
        let settings = Settings::load(Some(&file), FlagOverrides::default()).unwrap();
        let options = settings.options("https://auth.example.com/").unwrap();
        assert_eq!(options.rate_limits, RateLimitOptions::disabled());
        assert_eq!(options.issuer, "https://auth.example.com");

        // A misspelt key or value is an error naming it, wherever it is.
        for (toml, expected) in [
            (
                "acess_token_expires_in = 5",
                "unknown setting \"acess_token_expires_in\"",
            ),
            (
                "[rate_limits]\nsign_in_per_ipp = 1",
                "unknown setting \"rate_limits.sign_in_per_ipp\"",
            ),
            (
                "[email]\nlog_link = true",
                "unknown setting \"email.log_link\"",
            ),
            ("[cimd]\ntimeout = 5", "timeout"),
            (
                "[smtp]\nhost = \"h\"\nfrom = \"f\"\ntimeout = 5",
                "timeout_secs",
            ),
            ("[rate_limits]\nwindow = \"x\"", "rate_limits.window"),
            (
                "refresh_token_policy = \"never\"",
                "refresh_token_policy must be registered_grant or offline_access, not \"never\"",
            ),
            (
                "signing_algorithm = \"HS256\"",
                "signing_algorithm must be ES256 or RS256",
            ),
            ("log_format = \"xml\"", "log_format must be text or json"),
            (
                "email_verification = \"maybe\"",
                "email_verification must be required, optional or off",
            ),
        ] {
            std::fs::write(&file, toml).unwrap();
            let error = Settings::load(Some(&file), FlagOverrides::default())
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{toml}: {error}");
        }
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
        let saml = dir.path().join("saml.toml");
        std::fs::write(
            &saml,
            "[[identity_providers]]\nid = \"corp\"\ntype = \"saml\"\n",
        )
        .unwrap();
        let unknown_type = Settings::load(Some(&saml), FlagOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(unknown_type.contains("type must be"), "{unknown_type}");
        assert!(
            broken(|p| p.client_secret = Some("${MCPAUTH_TEST_SURELY_UNSET}".into()))
                .contains("MCPAUTH_TEST_SURELY_UNSET")
        );
        assert!(broken(|p| p.client_id = None).contains("needs a client_id"));
    }
}
