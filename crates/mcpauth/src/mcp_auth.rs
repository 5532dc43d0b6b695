//! [`McpAuth`], the handle every request shares: the options as checked at start-up, the store,
//! and the services built from them (accounts, signing keys, cookies, rate limits, the
//! validated-token cache). Its fields are private; the endpoints reach them through the small
//! accessors below, and the admin CLI uses the services ([`Accounts`], [`SigningKeys`]) on a
//! store directly, without building a server.

use std::sync::Arc;

use mcpauth_core::client_registration::ConfiguredClient;
use mcpauth_core::model::{AuditEvent, Client};
use mcpauth_core::sign_in_policy::EmailAllowList;
use mcpauth_core::{AuthorizationPolicy, Scopes, Store, StoreError, cimd, secret};

use crate::cimd::{ClientDocuments, ClientLookupError, HttpFetcher};
use crate::email::{EmailService, EmailVerification};
use crate::keys::{KeyError, SigningKeys};
use crate::options::{CimdOptions, McpAuthOptions, TrustedClient};
use crate::password_accounts::{AccountError, Accounts};
use crate::rate_limit::{MemoryRateLimits, RateLimitBackend, RateLimiter, StoreRateLimits};
use crate::resources::Resource;
use crate::token_cache::{StampedMap, TokenCache};
use crate::web::Site;

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

fn invalid(option: &'static str, reason: impl Into<String>) -> BuildError {
    BuildError::InvalidOption {
        option,
        reason: reason.into(),
    }
}

/// A security-log entry at `at`: the one choke point every security event passes, counted (and
/// logged) when it is created — before a store method writes it in its transaction, so an
/// event whose write then fails is counted too (its request answers 503). `kind` is one of this
/// crate's fixed names, never client input, so the label set stays bounded.
pub(crate) fn security_event(
    at: i64,
    kind: &str,
    user_id: Option<&str>,
    client_id: Option<&str>,
    ip: Option<&str>,
    detail: serde_json::Value,
) -> AuditEvent {
    metrics::counter!("mcpauth_security_events_total", "kind" => kind.to_owned()).increment(1);
    tracing::info!(
        event = kind,
        user_id = user_id.unwrap_or_default(),
        client_id = client_id.unwrap_or_default(),
        "security event"
    );
    AuditEvent {
        at,
        kind: kind.to_owned(),
        user_id: user_id.map(str::to_owned),
        client_id: client_id.map(str::to_owned),
        ip: ip.map(str::to_owned),
        detail: detail.to_string(),
    }
}

/// The handle to an mcpauth authorization server: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct McpAuth {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    options: McpAuthOptions,
    /// The scopes, resource and PKCE rule authorization requests are decided by.
    authorization_policy: AuthorizationPolicy,
    /// The protected resources: the main one (`options.resource`) first, then the others.
    resources: Vec<Arc<Resource>>,
    site: Site,
    accounts: Accounts,
    keys: SigningKeys,
    limiter: RateLimiter,
    /// Access tokens that passed every check recently.
    token_cache: Arc<TokenCache>,
    /// Enabled clients by id, read under the token cache's stamp.
    clients: StampedMap<Client>,
    /// Clients whose `client_id` is a metadata document URL.
    documents: ClientDocuments,
    /// Password-reset and verification mail.
    email: EmailService,
    /// `allowed_email_domains` and `allowed_emails`.
    email_allow_list: EmailAllowList,
}

/// What the options say once checked: the issuer and resource as URLs, and the scopes.
struct Checked {
    issuer: url::Url,
    resource: url::Url,
    /// `options.resources`, parsed, in order.
    other_resources: Vec<url::Url>,
    scopes_supported: Scopes,
    default_scope: Scopes,
    consent_scopes: Scopes,
}

/// Every rule an option must meet, so that a library user gets the same checks as the server.
fn check_options(options: &McpAuthOptions) -> Result<Checked, BuildError> {
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
    let consent_scopes = Scopes::from_tokens(options.consent_scopes.iter().map(String::as_str));
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
        if !crate::identity_provider::valid_provider_id(&provider.id) {
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
    let mut paths = vec![main.path().trim_end_matches('/').to_owned()];
    let mut urls = Vec::new();
    for other in &options.resources {
        let url = url::Url::parse(&other.resource)
            .map_err(|e| invalid("resources", format!("{:?}: {e}", other.resource)))?;
        let path = url.path().trim_end_matches('/').to_owned();
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

/// The secret that signs cookies: the configured one, else the one generated once and kept in
/// the store (so that every instance on one database agrees).
pub async fn server_secret(
    store: &dyn Store,
    configured: Option<&str>,
) -> Result<String, StoreError> {
    match configured {
        Some(secret) => Ok(secret.to_owned()),
        None => store.server_secret(&secret::random_token()).await,
    }
}

/// The secret that seals signing keys at rest: `key_encryption_secret` when configured, else
/// the server secret ([`server_secret`]).
pub async fn key_encryption_secret(
    store: &dyn Store,
    key_encryption_secret: Option<&str>,
    secret: Option<&str>,
) -> Result<String, StoreError> {
    match key_encryption_secret {
        Some(configured) => Ok(configured.to_owned()),
        None => server_secret(store, secret).await,
    }
}

/// The stored form of a client from configuration.
fn trusted_client(trusted: &TrustedClient, now: i64) -> Result<Client, BuildError> {
    let configured = ConfiguredClient {
        client_id: &trusted.client_id,
        client_secret: trusted.client_secret.as_deref(),
        token_endpoint_auth_method: trusted.token_endpoint_auth_method.as_deref(),
        name: &trusted.name,
        redirect_uris: &trusted.redirect_uris,
        logo_uri: trusted.logo_uri.as_deref(),
    };
    let registration = configured
        .validate()
        .map_err(|error| BuildError::InvalidOption {
            option: "trusted_clients",
            reason: format!("client {:?}: {error}", trusted.client_id),
        })?;
    Ok(registration.into_client(
        trusted.client_id.clone(),
        trusted.client_secret.as_deref().map(secret::hash_token),
        trusted.skip_consent,
        now,
    ))
}

/// A `trusted_clients` entry whose `client_id` is a metadata document URL: it pins the client
/// (the document is still fetched for its name and redirect URIs). Returns the URL when the
/// entry skips consent.
fn pinned_document_client(
    trusted: &TrustedClient,
    options: &CimdOptions,
) -> Result<Option<String>, BuildError> {
    let refuse = |reason: String| BuildError::InvalidOption {
        option: "trusted_clients",
        reason: format!("client {:?}: {reason}", trusted.client_id),
    };
    cimd::parse_document_url(&trusted.client_id, options.allow_query)
        .map_err(|error| refuse(error.to_string()))?;
    if trusted.client_secret.is_some()
        || trusted.token_endpoint_auth_method.is_some()
        || !trusted.redirect_uris.is_empty()
        || !trusted.name.is_empty()
        || trusted.logo_uri.is_some()
    {
        return Err(refuse(
            "a client metadata document client takes its name, logo and redirect URIs from its document and has no secret: give only client_id (and skip_consent)".to_owned(),
        ));
    }
    Ok(trusted.skip_consent.then(|| trusted.client_id.clone()))
}

/// The fetcher of metadata documents built from the options.
fn http_fetcher(options: &CimdOptions) -> Result<HttpFetcher, BuildError> {
    let extra_roots = match &options.extra_ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| invalid("cimd.extra_ca_file", format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    HttpFetcher::new(options, extra_roots.as_deref()).map_err(|e| invalid("cimd", e))
}

impl McpAuth {
    /// Builds the server. The store must already be migrated.
    pub async fn new(store: Arc<dyn Store>, options: McpAuthOptions) -> Result<Self, BuildError> {
        let checked = check_options(&options)?;
        let secret = server_secret(store.as_ref(), options.secret.as_deref()).await?;
        let now = options.clock.now();
        let mut pinned = std::collections::HashSet::new();
        for trusted in &options.trusted_clients {
            if cimd::is_document_url(&trusted.client_id) {
                pinned.extend(pinned_document_client(trusted, &options.cimd)?);
            } else {
                store.save_client(&trusted_client(trusted, now)?).await?;
            }
        }
        let fetcher = match &options.cimd_fetcher {
            Some(fetcher) => fetcher.clone(),
            None => Arc::new(http_fetcher(&options.cimd)?),
        };
        if options.cimd.enabled && options.cimd.allow_loopback {
            tracing::warn!(
                "cimd.allow_loopback is on: client metadata documents may be fetched from this machine's loopback addresses. For tests and local development only; never in production"
            );
        }
        let token_cache = Arc::new(TokenCache::new(options.token_cache.clone()));
        let keys = SigningKeys::with_token_cache(
            store.clone(),
            options.clock.clone(),
            options.signing_algorithm,
            options
                .key_encryption_secret
                .clone()
                .unwrap_or_else(|| secret.clone()),
            options.access_token_expires_in,
            token_cache.clone(),
        );
        let mut resources = vec![Arc::new(Resource::main(
            &options.resource,
            &checked.resource,
            &options.resource_name,
            &options.mcp_scopes,
        ))];
        for (other, url) in options.resources.iter().zip(&checked.other_resources) {
            resources.push(Arc::new(Resource::other(other, url)));
        }
        let inner = Inner {
            resources,
            site: Site::new(&secret, &checked.issuer, options.trust_proxy),
            accounts: Accounts::new(store.clone(), options.clock.clone()),
            keys,
            limiter: RateLimiter::new(
                options.rate_limits.clone(),
                match &options.rate_limit_backend {
                    RateLimitBackend::Memory => Arc::new(MemoryRateLimits::new()),
                    RateLimitBackend::Store => Arc::new(StoreRateLimits::new(store.clone())),
                    RateLimitBackend::Custom(backend) => backend.clone(),
                },
            ),
            clients: StampedMap::new(options.token_cache.capacity),
            documents: ClientDocuments::new(
                store.clone(),
                options.clock.clone(),
                fetcher,
                options.cimd.clone(),
                pinned,
            ),
            email: EmailService::new(
                options.email.clone(),
                options.mailer.clone(),
                store.clone(),
                options.clock.clone(),
                format!("{}{}", options.issuer, options.base_path),
                security_event,
            ),
            token_cache,
            email_allow_list: EmailAllowList::new(
                &options.allowed_email_domains,
                &options.allowed_emails,
            ),
            store,
            authorization_policy: AuthorizationPolicy {
                default_scope: checked.default_scope,
                scopes_supported: checked.scopes_supported,
                consent_scopes: checked.consent_scopes,
                resource: options.resource.clone(),
                other_resources: options
                    .resources
                    .iter()
                    .map(|r| r.resource.clone())
                    .collect(),
                require_pkce_for_confidential: options.require_pkce_for_confidential,
            },
            options,
        };
        let auth = Self {
            inner: Arc::new(inner),
        };
        let warming = auth.clone();
        tokio::spawn(async move { warming.inner.accounts.warm_up().await });
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

    /// Creates a user with an email and password (what sign-up and `mcpauth user create` do).
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        name: Option<&str>,
    ) -> Result<mcpauth_core::model::User, AccountError> {
        if !self.inner.options.password_login {
            return Err(AccountError::PasswordLoginDisabled);
        }
        let allowed = mcpauth_core::Email::parse(email)
            .map(|address| self.inner.email_allow_list.allows(&address))
            .unwrap_or(true);
        if !allowed {
            return Err(AccountError::EmailNotAllowed);
        }
        self.inner.accounts.create_user(email, password, name).await
    }

    /// Makes a new id_token signing key with the configured algorithm, publishes it and retires
    /// the others (which stay in the JWKS until tokens they signed have expired). Returns its
    /// `kid`.
    pub async fn rotate_signing_key(&self) -> Result<String, KeyError> {
        self.inner.keys.rotate().await
    }

    /// The JSON Web Key Set: every key that is current or retired but still needed.
    pub async fn jwks(&self) -> Result<serde_json::Value, KeyError> {
        self.inner.keys.jwks().await
    }

    /// Forgets every access token validated so far, so the next request with each one asks
    /// the database again. mcpauth calls this itself after every revocation it makes; call it
    /// after revoking through the [`Store`] directly to make the change take effect at once
    /// (otherwise it takes effect within
    /// [`TokenCacheOptions::revocation_check_interval`](crate::TokenCacheOptions::revocation_check_interval)).
    pub fn forget_validated_tokens(&self) {
        self.inner.token_cache.revoked_here();
    }

    /// Where the protected resource's metadata lives (RFC 9728 §3.1), as named in every
    /// `WWW-Authenticate` challenge.
    pub fn protected_resource_metadata_url(&self) -> &str {
        &self.main_resource().metadata_url
    }

    pub(crate) fn now(&self) -> i64 {
        self.inner.options.clock.now()
    }

    /// The identity provider with this id.
    pub(crate) fn identity_provider(
        &self,
        id: &str,
    ) -> Option<&crate::identity_provider::SignInProvider> {
        self.inner
            .options
            .identity_providers
            .iter()
            .find(|p| p.id == id)
    }

    /// Who may have an account (`allowed_email_domains`, `allowed_emails`).
    pub(crate) fn email_allow_list(&self) -> &EmailAllowList {
        &self.inner.email_allow_list
    }

    pub(crate) fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    pub(crate) fn keys(&self) -> &SigningKeys {
        &self.inner.keys
    }

    pub(crate) fn site(&self) -> &Site {
        &self.inner.site
    }

    pub(crate) fn email(&self) -> &EmailService {
        &self.inner.email
    }

    pub(crate) fn limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    pub(crate) fn token_cache(&self) -> &TokenCache {
        &self.inner.token_cache
    }

    /// Every scope this server grants.
    pub(crate) fn scopes_supported(&self) -> &Scopes {
        &self.inner.authorization_policy.scopes_supported
    }

    pub(crate) fn authorization_policy(&self) -> &AuthorizationPolicy {
        &self.inner.authorization_policy
    }

    /// The main protected resource (`options.resource`).
    pub(crate) fn main_resource(&self) -> &Arc<Resource> {
        // `new` always puts the main resource first.
        &self.inner.resources[0]
    }

    /// Every protected resource, the main one first.
    pub(crate) fn resources(&self) -> &[Arc<Resource>] {
        &self.inner.resources
    }

    /// The protected resource whose canonical URI is `uri`.
    pub(crate) fn resource(&self, uri: &str) -> Option<&Arc<Resource>> {
        self.inner.resources.iter().find(|r| r.uri == uri)
    }

    /// The client with this id, from memory when it was read since the revocation epoch last
    /// moved (disabled clients are never kept: enabling one does not move the epoch).
    /// A `client_id` that is a metadata document URL is resolved through the document cache
    /// (fetching the document when needed), so every endpoint sees the same client.
    pub(crate) async fn client(
        &self,
        client_id: &str,
    ) -> Result<Option<Client>, ClientLookupError> {
        if cimd::is_document_url(client_id) {
            return self.inner.documents.client(client_id).await.map(Some);
        }
        Ok(self.registered_client(client_id).await?)
    }

    async fn registered_client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
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
    ) -> AuditEvent {
        security_event(self.now(), kind, user_id, client_id, ip, detail)
    }

    /// `{issuer}{base_path}{path}`: the absolute URL of an endpoint.
    pub(crate) fn endpoint(&self, path: &str) -> String {
        format!(
            "{}{}{}",
            self.inner.options.issuer, self.inner.options.base_path, path
        )
    }
}
