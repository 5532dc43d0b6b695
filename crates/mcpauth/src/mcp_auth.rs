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
use crate::connections::Connections;
use crate::email::EmailService;
use crate::keys::{KeyError, SigningKeys};
use crate::options::{
    BuildError, CimdOptions, McpAuthOptions, TrustedClient, check_options, invalid,
};
use crate::password_accounts::{AccountError, Accounts};
use crate::rate_limit::{MemoryRateLimits, RateLimitBackend, RateLimiter, StoreRateLimits};
use crate::resources::Resource;
use crate::token_cache::{StampedMap, TokenCache};
use crate::web::Site;

pub(crate) use crate::audit::security_event;

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
    /// Connected accounts (the token vault).
    connections: Connections,
    /// Keys of `private_key_jwt` clients and trusted issuers (issue 21).
    assertion_keys: crate::assertion_keys::AssertionKeys,
    /// `[[trusted_issuers]]`, checked, with their key sources.
    trusted_issuers: crate::assertion_keys::TrustedIssuers,
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
        grant_types: &trusted.grant_types,
        scope: trusted.scope.as_deref(),
        resources: &trusted.resources,
        jwks_uri: trusted.jwks_uri.as_deref(),
        jwks: trusted.jwks.as_ref(),
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
        let provider_ids: Vec<&str> = options
            .identity_providers
            .iter()
            .map(|p| p.id.as_str())
            .collect();
        let trusted_issuers =
            crate::assertion_keys::TrustedIssuers::new(&options.trusted_issuers, &provider_ids)?;
        let assertion_keys = crate::assertion_keys::AssertionKeys::new(fetcher.clone());
        let token_cache = Arc::new(TokenCache::new(options.token_cache.clone()));
        // What seals secrets at rest: signing keys, and the links of mail waiting in the outbox.
        let key_encryption_secret = options
            .key_encryption_secret
            .clone()
            .unwrap_or_else(|| secret.clone());
        let keys = SigningKeys::with_token_cache(
            store.clone(),
            options.clock.clone(),
            options.signing_algorithm,
            key_encryption_secret.clone(),
            options.access_token_expires_in,
            token_cache.clone(),
        );
        let mut resources = vec![Arc::new(
            Resource::main(
                &options.resource,
                &checked.resource,
                &options.resource_name,
                &options.mcp_scopes,
            )
            .with_format(options.access_token_format),
        )];
        for (other, url) in options.resources.iter().zip(&checked.other_resources) {
            resources.push(Arc::new(Resource::other(other, url)));
        }
        let connections = Connections::new(
            store.clone(),
            options.clock.clone(),
            &options.connections,
            options.vault_keys.clone(),
            &format!("{}{}", options.issuer, options.base_path),
        )
        .map_err(|reason| invalid("connections", reason))?;
        // A missing or wrong vault key stops the start (SECURITY V1).
        connections
            .check_vault()
            .await
            .map_err(|error| match error {
                crate::connections::VaultError::Store(error) => BuildError::Store(error),
                other => invalid("vault", other.to_string()),
            })?;
        let inner = Inner {
            connections,
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
                Arc::from(key_encryption_secret),
            ),
            token_cache,
            email_allow_list: EmailAllowList::new(
                &options.allowed_email_domains,
                &options.allowed_emails,
            ),
            assertion_keys,
            trusted_issuers,
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

    /// Connected accounts: users' tokens at the services configured in
    /// [`McpAuthOptions::connections`].
    pub fn connections(&self) -> &Connections {
        &self.inner.connections
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
    pub(crate) fn identity_provider(&self, id: &str) -> Option<&crate::options::SignInProvider> {
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

    /// Keys of `private_key_jwt` clients and trusted issuers.
    pub(crate) fn assertion_keys(&self) -> &crate::assertion_keys::AssertionKeys {
        &self.inner.assertion_keys
    }

    /// The trusted issuers of identity assertion grants.
    pub(crate) fn trusted_issuers(&self) -> &crate::assertion_keys::TrustedIssuers {
        &self.inner.trusted_issuers
    }

    /// `{issuer}{base_path}{path}`: the absolute URL of an endpoint.
    pub(crate) fn endpoint(&self, path: &str) -> String {
        format!(
            "{}{}{}",
            self.inner.options.issuer, self.inner.options.base_path, path
        )
    }
}
