//! mcpauth: an OAuth 2.1 authorization server for MCP clients, embedded in an axum application.
//!
//! Build an [`McpAuth`] from a [`mcpauth_core::Store`] and [`McpAuthOptions`], then
//! mount [`McpAuth::router`]: it serves discovery (RFC 8414, RFC 9728), dynamic client
//! registration (RFC 7591), the authorization and token endpoints, the Better Auth–compatible
//! account API and the built-in sign-in, sign-up and consent pages.
//!
//! - [`options`]: what can be configured.
//! - `errors`: how protocol errors become HTTP responses (one place).
//! - `params`: request parameters from query strings, forms and JSON, with the duplicate and
//!   content-type rules of RFC 6749 §3.
//! - `discovery`, `register`, `authorize`, `token`: the OAuth endpoints.
//! - `account`: sign-up, sign-in, sign-out and sessions (cookie and bearer).
//! - `pages`: the server-rendered HTML pages.
//! - `keys`, `oidc`: id_token signing keys, id_tokens, userinfo and JWKS (OIDC Core).
//! - `revocation`: token revocation (RFC 7009) and introspection (RFC 7662).
//! - `guard`: `with_mcp_auth`, the layer that protects an MCP endpoint.
//! - [`rate_limit`]: the rate limits and where their counters live (this process, the
//!   database or Redis).
//! - `web`: cookies, CSRF, security headers and client addresses.

#![warn(missing_docs)]

mod account;
mod authorize;
mod discovery;
mod errors;
mod guard;
mod keys;
mod oidc;
pub mod options;
mod pages;
mod params;
mod passwords;
pub mod rate_limit;
mod register;
mod revocation;
mod router;
mod session;
mod token;
mod token_cache;
mod web;

use std::sync::Arc;

use mcpauth_core::{Scopes, Store, StoreError, secret};

pub use account::{AccountError, MAX_PASSWORD, MIN_PASSWORD};
pub use discovery::{oauth_discovery_metadata, oauth_protected_resource_metadata};
pub use guard::{McpAuthLayer, McpAuthService};
pub use keys::{KeyError, SigningAlgorithm};
pub use options::{McpAuthOptions, RateLimitOptions, RefreshTokenPolicy, TrustedClient};
#[cfg(feature = "redis")]
pub use rate_limit::RedisRateLimits;
pub use rate_limit::{
    MemoryRateLimits, RateLimitBackend, RateLimitStore, RateLimitStoreError, RateLimited,
    StoreRateLimits,
};
pub use router::cors;
pub use session::{BearerError, McpSession};
pub use token_cache::TokenCacheOptions;

/// Why [`McpAuth`] could not be built.
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

/// The stored form of a client from configuration.
fn trusted_client(
    trusted: &options::TrustedClient,
    now: i64,
) -> Result<mcpauth_core::model::Client, BuildError> {
    use mcpauth_core::model::{Client, TokenEndpointAuthMethod};
    let invalid = |reason: String| BuildError::InvalidOption {
        option: "trusted_clients",
        reason: format!("client {:?}: {reason}", trusted.client_id),
    };
    if trusted.client_id.is_empty() || trusted.client_id.len() > 200 {
        return Err(invalid("client_id must be 1 to 200 characters".into()));
    }
    let redirect_uris = trusted
        .redirect_uris
        .iter()
        .map(|uri| {
            mcpauth_core::RedirectUri::parse(uri)
                .map(mcpauth_core::RedirectUri::into_string)
                .map_err(|e| invalid(e.description))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if redirect_uris.is_empty() {
        return Err(invalid("needs at least one redirect URI".into()));
    }
    let method = match (
        &trusted.client_secret,
        trusted.token_endpoint_auth_method.as_deref(),
    ) {
        (None, None | Some("none")) => TokenEndpointAuthMethod::None,
        (None, Some(_)) => return Err(invalid("a confidential client needs client_secret".into())),
        (Some(_), None) => TokenEndpointAuthMethod::ClientSecretBasic,
        (Some(_), Some(raw)) => match TokenEndpointAuthMethod::parse(raw) {
            Some(TokenEndpointAuthMethod::None) | None => {
                return Err(invalid(format!(
                    "token_endpoint_auth_method {raw:?} does not fit a client with a secret"
                )));
            }
            Some(method) => method,
        },
    };
    if trusted.client_secret.as_ref().is_some_and(|s| s.len() < 32) {
        return Err(invalid(
            "client_secret must be at least 32 characters".into(),
        ));
    }
    let grant_types = vec!["authorization_code".to_owned(), "refresh_token".to_owned()];
    Ok(Client {
        client_id: trusted.client_id.clone(),
        client_secret_hash: trusted.client_secret.as_deref().map(secret::hash_token),
        name: Some(trusted.name.clone()),
        metadata: serde_json::json!({
            "client_name": trusted.name,
            "redirect_uris": redirect_uris,
            "grant_types": grant_types,
            "token_endpoint_auth_method": method.as_str(),
        }),
        redirect_uris,
        token_endpoint_auth_method: method,
        grant_types,
        logo_uri: trusted.logo_uri.clone(),
        disabled: false,
        skip_consent: trusted.skip_consent,
        created_at: now,
    })
}

/// The handle to an mcpauth authorization server: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct McpAuth {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub options: McpAuthOptions,
    /// Key for cookie signatures and CSRF tokens.
    pub secret: Vec<u8>,
    /// The same secret as text (the default key-encryption secret).
    pub secret_text: String,
    /// Decoded id_token signing keys.
    pub keys: keys::KeyCache,
    /// Every scope this server grants.
    pub scopes_supported: Scopes,
    pub default_scope: Scopes,
    /// `https://host[:port]` of the issuer, for Origin checks.
    pub origin: String,
    /// True when the issuer is https: cookies get `Secure` and the `__Host-` prefix.
    pub secure_cookies: bool,
    /// Path of the protected resource, e.g. `/api/mcp`.
    pub resource_path: String,
    /// Where the resource's metadata lives (RFC 9728 §3.1, path-inserted).
    pub resource_metadata_url: String,
    pub limiter: rate_limit::RateLimiter,
    pub passwords: passwords::PasswordHasher,
    /// Access tokens that passed every check recently.
    pub token_cache: token_cache::TokenCache,
    /// Enabled clients by id, read under the token cache's stamp.
    pub clients: token_cache::StampedMap<mcpauth_core::model::Client>,
}

impl McpAuth {
    /// Builds the server. The store must already be migrated.
    pub async fn new(store: Arc<dyn Store>, options: McpAuthOptions) -> Result<Self, BuildError> {
        let issuer = url::Url::parse(&options.issuer).map_err(|e| BuildError::InvalidOption {
            option: "issuer",
            reason: e.to_string(),
        })?;
        if !matches!(issuer.scheme(), "http" | "https")
            || issuer.query().is_some()
            || issuer.fragment().is_some()
        {
            return Err(BuildError::InvalidOption {
                option: "issuer",
                reason: "must be an http(s) URL without query or fragment".into(),
            });
        }
        let resource =
            url::Url::parse(&options.resource).map_err(|e| BuildError::InvalidOption {
                option: "resource",
                reason: e.to_string(),
            })?;
        if !options.base_path.starts_with('/') || options.base_path.ends_with('/') {
            return Err(BuildError::InvalidOption {
                option: "base_path",
                reason: "must start with / and not end with /".into(),
            });
        }
        let default_scope =
            Scopes::parse(&options.default_scope).map_err(|e| BuildError::InvalidOption {
                option: "default_scope",
                reason: e.description,
            })?;
        let mut all = vec!["openid", "profile", "email", "offline_access"];
        all.extend(options.resource_scopes.iter().map(String::as_str));
        let scopes_supported = Scopes::from_tokens(all);
        if !default_scope.is_subset_of(&scopes_supported) {
            return Err(BuildError::InvalidOption {
                option: "default_scope",
                reason: "names a scope that is not supported".into(),
            });
        }
        let secret = match &options.secret {
            Some(secret) if secret.len() >= 32 => secret.clone(),
            Some(_) => {
                return Err(BuildError::InvalidOption {
                    option: "secret",
                    reason: "must be at least 32 characters".into(),
                });
            }
            None => store.server_secret(&secret::random_token()).await?,
        };
        for trusted in &options.trusted_clients {
            store
                .save_client(&trusted_client(trusted, options.clock.now())?)
                .await?;
        }
        let origin = issuer.origin().ascii_serialization();
        let inner = Inner {
            secure_cookies: issuer.scheme() == "https",
            resource_path: resource.path().trim_end_matches('/').to_owned(),
            resource_metadata_url: format!(
                "{}/.well-known/oauth-protected-resource{}",
                resource.origin().ascii_serialization(),
                resource.path().trim_end_matches('/')
            ),
            limiter: rate_limit::RateLimiter::new(
                options.rate_limits.clone(),
                match &options.rate_limit_backend {
                    RateLimitBackend::Memory => Arc::new(MemoryRateLimits::new()),
                    RateLimitBackend::Store => Arc::new(StoreRateLimits::new(store.clone())),
                    RateLimitBackend::Custom(backend) => backend.clone(),
                },
            ),
            passwords: passwords::PasswordHasher::new(),
            token_cache: token_cache::TokenCache::new(options.token_cache.clone()),
            clients: token_cache::StampedMap::new(options.token_cache.capacity),
            store,
            secret_text: secret.clone(),
            secret: secret.into_bytes(),
            keys: keys::KeyCache::default(),
            scopes_supported,
            default_scope,
            origin,
            options,
        };
        let auth = Self {
            inner: Arc::new(inner),
        };
        let warming = auth.clone();
        tokio::spawn(async move { warming.inner.passwords.warm_up().await });
        Ok(auth)
    }

    /// The options this server was built with.
    pub fn options(&self) -> &McpAuthOptions {
        &self.inner.options
    }

    /// The store this server keeps its data in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The router with every endpoint and page mcpauth serves. Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()` so rate limits see client addresses.
    pub fn router(&self) -> axum::Router {
        router::build(self.clone())
    }

    pub(crate) fn now(&self) -> i64 {
        self.inner.options.clock.now()
    }

    /// The client with this id, from memory when it was read since the revocation epoch last
    /// moved (disabled clients are never kept: enabling one does not move the epoch).
    pub(crate) async fn client(
        &self,
        client_id: &str,
    ) -> Result<Option<mcpauth_core::model::Client>, StoreError> {
        let store = self.inner.store.as_ref();
        let Some(stamp) = self.inner.token_cache.stamp_if_enabled(store).await? else {
            return store.client_by_id(client_id).await;
        };
        if let Some(client) = self.inner.clients.get(client_id, stamp) {
            return Ok(Some(client));
        }
        let found = store.client_by_id(client_id).await?;
        if let Some(client) = found.as_ref().filter(|c| !c.disabled) {
            self.inner
                .clients
                .insert(client_id.to_owned(), client.clone(), stamp);
        }
        Ok(found)
    }

    /// Forgets every access token validated so far, so the next request with each one asks
    /// the database again. mcpauth calls this itself after every revocation it makes; call it
    /// after revoking through the [`Store`] directly to make the change take effect at once
    /// (otherwise it takes effect within
    /// [`TokenCacheOptions::revocation_check_interval`]).
    pub fn forget_validated_tokens(&self) {
        self.inner.token_cache.revoked_here();
    }

    /// Appends to the security log; a failure to log is itself logged, never fatal.
    pub(crate) async fn audit(
        &self,
        kind: &str,
        user_id: Option<&str>,
        client_id: Option<&str>,
        ip: Option<&str>,
        detail: serde_json::Value,
    ) {
        let event = self.audit_event(kind, user_id, client_id, ip, detail);
        if let Err(error) = self.inner.store.append_audit(&event).await {
            tracing::warn!(%error, kind, "could not write the audit log");
        }
    }

    /// A security-log entry, for a store method that writes it together with the change it
    /// records.
    pub(crate) fn audit_event(
        &self,
        kind: &str,
        user_id: Option<&str>,
        client_id: Option<&str>,
        ip: Option<&str>,
        detail: serde_json::Value,
    ) -> mcpauth_core::model::AuditEvent {
        mcpauth_core::model::AuditEvent {
            at: self.now(),
            kind: kind.to_owned(),
            user_id: user_id.map(str::to_owned),
            client_id: client_id.map(str::to_owned),
            ip: ip.map(str::to_owned),
            detail: detail.to_string(),
        }
    }

    /// `{issuer}{base_path}{path}`: the absolute URL of an endpoint.
    pub(crate) fn endpoint(&self, path: &str) -> String {
        format!(
            "{}{}{}",
            self.inner.options.issuer, self.inner.options.base_path, path
        )
    }
}
