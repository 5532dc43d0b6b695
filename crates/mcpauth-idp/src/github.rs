//! GitHub as an identity provider. GitHub is not an OpenID provider: the sign-in is OAuth 2
//! (via `oauth2`: `state`, the S256 PKCE challenge, the code exchange), and who signed in comes
//! from its REST API — `GET /user` for the stable numeric id (the subject), login, name and
//! avatar, `GET /user/emails` for the primary address and whether GitHub verified it.
//!
//! The base URLs can be changed (`web_url`, `api_url`) for GitHub Enterprise Server, and so that
//! tests can run against a local stand-in serving GitHub's documented shapes (GitHub itself
//! cannot be reached from the test machines).

use mcpauth_core::identity_provider::{
    AuthorizationStart, CodeExchange, IdentityProvider, IdentityProviderError, ProviderIdentity,
};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse,
    TokenUrl,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::ConfigError;
use crate::http::{Http, HttpOptions, read_limited};

/// What the GitHub preset needs.
#[derive(Debug, Clone)]
pub struct GitHubConfig {
    /// The OAuth app's client id.
    pub client_id: String,
    /// The OAuth app's client secret.
    pub client_secret: String,
    /// Where `/login/oauth/authorize` and `/login/oauth/access_token` live. Default
    /// `https://github.com`.
    pub web_url: String,
    /// Where the REST API lives (`/user`, `/user/emails`). Default `https://api.github.com`.
    pub api_url: String,
    /// Timeouts.
    pub http: HttpOptions,
}

impl GitHubConfig {
    /// github.com with these credentials.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            web_url: "https://github.com".to_owned(),
            api_url: "https://api.github.com".to_owned(),
            http: HttpOptions::default(),
        }
    }
}

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// GitHub (or GitHub Enterprise Server, or a stand-in with the same shapes).
pub struct GitHubProvider {
    client_id: ClientId,
    client_secret: ClientSecret,
    auth_url: AuthUrl,
    token_url: TokenUrl,
    api_url: String,
    http: Http,
}

impl std::fmt::Debug for GitHubProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubProvider")
            .field("client_id", &self.client_id.as_str())
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// `GET /user`.
#[derive(Deserialize)]
struct GitHubUser {
    id: u64,
    login: String,
    name: Option<String>,
    avatar_url: Option<String>,
}

/// One entry of `GET /user/emails`.
#[derive(Deserialize)]
struct GitHubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

impl GitHubProvider {
    /// The provider; nothing is fetched yet.
    pub fn new(config: GitHubConfig) -> Result<Self, ConfigError> {
        if config.client_id.is_empty() || config.client_secret.is_empty() {
            return Err(ConfigError(
                "GitHub needs a client_id and a client_secret".to_owned(),
            ));
        }
        let web = config.web_url.trim_end_matches('/');
        let url = |path: &str| format!("{web}{path}");
        Ok(Self {
            client_id: ClientId::new(config.client_id),
            client_secret: ClientSecret::new(config.client_secret),
            auth_url: AuthUrl::new(url("/login/oauth/authorize"))
                .map_err(|e| ConfigError(format!("web_url: {e}")))?,
            token_url: TokenUrl::new(url("/login/oauth/access_token"))
                .map_err(|e| ConfigError(format!("web_url: {e}")))?,
            api_url: {
                let api = config.api_url.trim_end_matches('/').to_owned();
                url::Url::parse(&api).map_err(|e| ConfigError(format!("api_url: {e}")))?;
                api
            },
            http: Http::new(&config.http)?,
        })
    }

    fn client(&self, redirect_uri: &str) -> Result<Client, IdentityProviderError> {
        Ok(BasicClient::new(self.client_id.clone())
            .set_client_secret(self.client_secret.clone())
            .set_auth_uri(self.auth_url.clone())
            .set_token_uri(self.token_url.clone())
            .set_redirect_uri(
                RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| {
                    IdentityProviderError::Unavailable(format!("callback URL: {e}"))
                })?,
            ))
    }

    /// An API document for the token.
    async fn api<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
    ) -> Result<(T, Value), IdentityProviderError> {
        let response = self
            .http
            .client()
            .get(format!("{}{path}", self.api_url))
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .send()
            .await
            .map_err(|e| IdentityProviderError::Unavailable(format!("GitHub API {path}: {e}")))?;
        let response = read_limited(response)
            .await
            .map_err(|e| IdentityProviderError::Unavailable(e.to_string()))?;
        if response.status() == http::StatusCode::UNAUTHORIZED {
            return Err(IdentityProviderError::Refused(format!(
                "GitHub API {path} refused the token"
            )));
        }
        if !response.status().is_success() {
            return Err(IdentityProviderError::Unavailable(format!(
                "GitHub API {path} answered {}",
                response.status()
            )));
        }
        let raw: Value = serde_json::from_slice(response.body())
            .map_err(|e| IdentityProviderError::Unavailable(format!("GitHub API {path}: {e}")))?;
        let typed = serde_json::from_value(raw.clone())
            .map_err(|e| IdentityProviderError::Unavailable(format!("GitHub API {path}: {e}")))?;
        Ok((typed, raw))
    }
}

#[async_trait::async_trait]
impl IdentityProvider for GitHubProvider {
    async fn authorization_url(
        &self,
        start: &AuthorizationStart<'_>,
    ) -> Result<url::Url, IdentityProviderError> {
        let state = start.state.to_owned();
        let verifier = PkceCodeVerifier::new(start.code_verifier.to_owned());
        let (url, _) = self
            .client(start.redirect_uri)?
            .authorize_url(move || CsrfToken::new(state))
            .add_scope(Scope::new("read:user".to_owned()))
            .add_scope(Scope::new("user:email".to_owned()))
            .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier))
            .url();
        Ok(url)
    }

    async fn identity(
        &self,
        exchange: &CodeExchange<'_>,
    ) -> Result<ProviderIdentity, IdentityProviderError> {
        let token = self
            .client(exchange.redirect_uri)?
            .exchange_code(AuthorizationCode::new(exchange.code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(exchange.code_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|error| match error {
                RequestTokenError::ServerResponse(answer) => {
                    IdentityProviderError::Refused(format!("GitHub refused the code: {answer}"))
                }
                // GitHub answers a bad code with 200 and `{"error": …}`, which is no token.
                RequestTokenError::Parse(_, body) => IdentityProviderError::Refused(format!(
                    "GitHub gave no token: {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                )),
                other => {
                    IdentityProviderError::Unavailable(format!("GitHub token request: {other}"))
                }
            })?;
        let access = token.access_token().secret();
        let (user, raw_user): (GitHubUser, Value) = self.api("/user", access).await?;
        let (emails, _): (Vec<GitHubEmail>, Value) = self.api("/user/emails", access).await?;
        let primary = emails.into_iter().find(|e| e.primary);
        let mut claims: Map<String, Value> = match raw_user {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        claims.insert("login".to_owned(), Value::String(user.login.clone()));
        Ok(ProviderIdentity {
            subject: user.id.to_string(),
            email_verified: primary.as_ref().is_some_and(|e| e.verified),
            email: primary.map(|e| e.email),
            name: user
                .name
                .filter(|n| !n.trim().is_empty())
                .or(Some(user.login)),
            picture: user.avatar_url,
            claims,
        })
    }
}
