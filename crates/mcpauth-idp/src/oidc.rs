//! A generic OpenID Connect provider (Google, Microsoft Entra, Okta, Keycloak, another mcpauth,
//! …) from its issuer URL. `openidconnect` does the protocol: discovery (the document's
//! `issuer` must equal the configured one), the authorization URL with `state`, `nonce` and the
//! S256 PKCE challenge, the code exchange with the verifier, and the id_token's verification —
//! signature against the provider's JWKS (asymmetric algorithms only), `iss`, `aud` (and `azp`),
//! `exp`, `iat` and `nonce` (SECURITY S28).
//!
//! The discovered metadata (with the JWKS) is kept for an hour; when an id_token does not verify
//! with the keys kept, the metadata is fetched again once (at most once a minute), so a
//! provider's key rotation needs no restart. Discovery happens on first use, so mcpauth starts
//! even when the provider is down.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpauth_core::identity_provider::{
    AuthorizationStart, CodeExchange, IdentityProvider, IdentityProviderError, ProviderIdentity,
};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError,
    Scope, TokenResponse,
};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::ConfigError;
use crate::http::{Http, HttpOptions};

/// How long discovered metadata (and its JWKS) is used before it is fetched again.
const METADATA_LIFETIME: Duration = Duration::from_secs(3600);
/// The least time between two fetches forced by an id_token that did not verify.
const MIN_REFETCH: Duration = Duration::from_secs(60);

/// What an OpenID provider needs to be configured with.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The issuer URL, exactly as the provider's discovery document states it.
    pub issuer: String,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret; `None` for a public client (PKCE only).
    pub client_secret: Option<String>,
    /// Scopes to ask for; `openid` is always sent. Default `openid email profile`.
    pub scopes: Vec<String>,
    /// Timeouts.
    pub http: HttpOptions,
}

/// An OpenID provider.
pub struct OidcProvider {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: Option<ClientSecret>,
    scopes: Vec<String>,
    http: Http,
    metadata: Mutex<Option<(CoreProviderMetadata, Instant)>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id.as_str())
            .finish_non_exhaustive()
    }
}

/// The id_token signature algorithms accepted: every asymmetric one `openidconnect` verifies.
/// Never `none`, and no HMAC (which would make the client secret a signing key).
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

impl OidcProvider {
    /// A provider from its configuration; nothing is fetched yet.
    pub fn new(config: OidcConfig) -> Result<Self, ConfigError> {
        let issuer = IssuerUrl::new(config.issuer.trim_end_matches('/').to_owned())
            .map_err(|e| ConfigError(format!("issuer {:?}: {e}", config.issuer)))?;
        if config.client_id.is_empty() {
            return Err(ConfigError("client_id is empty".to_owned()));
        }
        let mut scopes = vec!["openid".to_owned()];
        let wanted = if config.scopes.is_empty() {
            vec!["email".to_owned(), "profile".to_owned()]
        } else {
            config.scopes
        };
        for scope in wanted {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        Ok(Self {
            issuer,
            client_id: ClientId::new(config.client_id),
            client_secret: config.client_secret.map(ClientSecret::new),
            scopes,
            http: Http::new(&config.http)?,
            metadata: Mutex::new(None),
        })
    }

    /// The provider's metadata: kept, or discovered when older than [`METADATA_LIFETIME`] or
    /// when `refresh` asks and the last fetch is older than [`MIN_REFETCH`].
    async fn metadata(&self, refresh: bool) -> Result<CoreProviderMetadata, IdentityProviderError> {
        let mut kept = self.metadata.lock().await;
        if let Some((metadata, fetched)) = kept.as_ref() {
            let age = fetched.elapsed();
            if age < METADATA_LIFETIME && !(refresh && age >= MIN_REFETCH) {
                return Ok(metadata.clone());
            }
        }
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| {
                IdentityProviderError::Unavailable(format!("OpenID discovery failed: {e}"))
            })?;
        *kept = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    fn client(
        &self,
        metadata: CoreProviderMetadata,
        redirect_uri: &str,
    ) -> Result<Client, IdentityProviderError> {
        // client_secret_basic unless the provider says it supports only client_secret_post.
        let post_only = metadata
            .token_endpoint_auth_methods_supported()
            .is_some_and(|methods| {
                let names: Vec<String> = methods
                    .iter()
                    .map(|m| {
                        serde_json::to_value(m)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default()
                    })
                    .collect();
                names.iter().any(|n| n == "client_secret_post")
                    && !names.iter().any(|n| n == "client_secret_basic")
            });
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| IdentityProviderError::Unavailable(format!("callback URL: {e}")))?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            self.client_id.clone(),
            self.client_secret.clone(),
        )
        .set_redirect_uri(redirect);
        Ok(if post_only {
            client.set_auth_type(AuthType::RequestBody)
        } else {
            client
        })
    }
}

type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

#[async_trait::async_trait]
impl IdentityProvider for OidcProvider {
    async fn authorization_url(
        &self,
        start: &AuthorizationStart<'_>,
    ) -> Result<url::Url, IdentityProviderError> {
        let client = self.client(self.metadata(false).await?, start.redirect_uri)?;
        let state = start.state.to_owned();
        let nonce = start.nonce.to_owned();
        let verifier = PkceCodeVerifier::new(start.code_verifier.to_owned());
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier));
        for scope in self.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, _, _) = request.url();
        Ok(url)
    }

    async fn identity(
        &self,
        exchange: &CodeExchange<'_>,
    ) -> Result<ProviderIdentity, IdentityProviderError> {
        let metadata = self.metadata(false).await?;
        let userinfo_endpoint = metadata.userinfo_endpoint().map(|u| u.url().clone());
        let client = self.client(metadata, exchange.redirect_uri)?;
        let response = client
            .exchange_code(AuthorizationCode::new(exchange.code.to_owned()))
            .map_err(|e| IdentityProviderError::Unavailable(format!("no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(exchange.code_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|error| match error {
                RequestTokenError::ServerResponse(answer) => IdentityProviderError::Refused(
                    format!("the token endpoint refused the code: {answer}"),
                ),
                other => {
                    IdentityProviderError::Unavailable(format!("token request failed: {other}"))
                }
            })?;
        let id_token = response.id_token().ok_or_else(|| {
            IdentityProviderError::Refused("the token response has no id_token".to_owned())
        })?;
        let nonce = Nonce::new(exchange.nonce.to_owned());
        let verified = {
            let verifier = client.id_token_verifier().set_allowed_algs(ALLOWED_ALGS);
            id_token
                .claims(&verifier, &nonce)
                .map(|c| c.subject().to_string())
        };
        let subject = match verified {
            Ok(subject) => subject,
            Err(first) => {
                // Perhaps the provider rotated its keys: fetch them again, once, and retry.
                let fresh = self.client(self.metadata(true).await?, exchange.redirect_uri)?;
                let verifier = fresh.id_token_verifier().set_allowed_algs(ALLOWED_ALGS);
                id_token
                    .claims(&verifier, &nonce)
                    .map(|c| c.subject().to_string())
                    .map_err(|_| {
                        IdentityProviderError::Refused(format!(
                            "the id_token is not valid: {first}"
                        ))
                    })?
            }
        };
        // Verified above; read every claim (the typed claims drop what they do not name, such
        // as `groups`, which a required claim may need).
        let mut claims = jwt_payload(&id_token.to_string())?;
        if !claims.contains_key("email")
            && let Some(endpoint) = userinfo_endpoint
        {
            let info = self
                .userinfo(&endpoint, response.access_token().secret())
                .await?;
            // OpenID Connect Core §5.3.2: the userinfo `sub` must be the id_token's.
            if info.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
                return Err(IdentityProviderError::Refused(
                    "userinfo is for another subject".to_owned(),
                ));
            }
            for (name, value) in info {
                claims.entry(name).or_insert(value);
            }
        }
        Ok(identity_from_claims(subject, claims))
    }
}

impl OidcProvider {
    /// The userinfo document for an access token, as JSON (signed userinfo is not read).
    async fn userinfo(
        &self,
        endpoint: &url::Url,
        access_token: &str,
    ) -> Result<Map<String, Value>, IdentityProviderError> {
        let response = self
            .http
            .client()
            .get(endpoint.clone())
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                IdentityProviderError::Unavailable(format!("userinfo request failed: {e}"))
            })?;
        let response = crate::http::read_limited(response)
            .await
            .map_err(|e| IdentityProviderError::Unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(IdentityProviderError::Unavailable(format!(
                "userinfo answered {}",
                response.status()
            )));
        }
        serde_json::from_slice(response.body())
            .map_err(|e| IdentityProviderError::Unavailable(format!("userinfo is not JSON: {e}")))
    }
}

/// The payload of a compact JWS, as a JSON object (the signature is checked elsewhere).
fn jwt_payload(jwt: &str) -> Result<Map<String, Value>, IdentityProviderError> {
    let bad = || IdentityProviderError::Refused("the id_token could not be read".to_owned());
    let payload = jwt.split('.').nth(1).ok_or_else(bad)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

/// The identity in a set of OpenID claims. `email_verified` counts only when it is `true` (or
/// the string `"true"`, which some providers send).
pub(crate) fn identity_from_claims(
    subject: String,
    claims: Map<String, Value>,
) -> ProviderIdentity {
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let email_verified = match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    ProviderIdentity {
        subject,
        email: text("email"),
        email_verified,
        name: text("name").or_else(|| text("preferred_username")),
        picture: text("picture"),
        claims,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn email_verified_counts_only_when_true() {
        let claims = |v: Value| v.as_object().cloned().unwrap();
        let id = identity_from_claims(
            "s".into(),
            claims(json!({"email": "a@b.test", "email_verified": true, "name": "A"})),
        );
        assert!(id.email_verified);
        assert_eq!(id.name.as_deref(), Some("A"));
        assert!(
            identity_from_claims("s".into(), claims(json!({"email_verified": "true"})))
                .email_verified
        );
        assert!(
            !identity_from_claims("s".into(), claims(json!({"email_verified": "yes"})))
                .email_verified
        );
        assert!(
            !identity_from_claims("s".into(), claims(json!({"email": "a@b.test"}))).email_verified
        );
    }

    #[test]
    fn a_provider_needs_a_client_id_and_a_url() {
        let config = |issuer: &str, client: &str| OidcConfig {
            issuer: issuer.into(),
            client_id: client.into(),
            client_secret: None,
            scopes: vec![],
            http: HttpOptions::default(),
        };
        assert!(OidcProvider::new(config("not a url", "c")).is_err());
        assert!(OidcProvider::new(config("https://idp.test", "")).is_err());
        let ok = OidcProvider::new(config("https://idp.test/", "c")).unwrap();
        assert_eq!(ok.scopes, ["openid", "email", "profile"]);
    }
}
