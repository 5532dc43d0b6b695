//! The OAuth 2.0 client side of a connection: the authorization request (RFC 6749 §4.1.1 with
//! PKCE S256, RFC 7636), the code exchange (§4.1.3), the refresh (§6) and the revocation
//! (RFC 7009; GitHub's `DELETE /applications/{client_id}/grant`). Provider URLs come from the
//! operator's configuration; answers are still bounded (timeouts, no redirects followed, at
//! most [`MAX_BODY`] bytes read). No token, nor a provider's answer body, is ever put into an
//! error message.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mcpauth_core::secret;
use serde::Deserialize;
use tokio::sync::OnceCell;

use super::options::{ConnectionKind, ConnectionOptions};

/// The most of an answer body read.
const MAX_BODY: usize = 256 * 1024;

const GITHUB_AUTHORIZE: &str = "https://github.com/login/oauth/authorize";
const GITHUB_TOKEN: &str = "https://github.com/login/oauth/access_token";

/// Where a provider's endpoints are.
#[derive(Debug, Clone)]
struct Endpoints {
    authorization: String,
    token: String,
    revocation: Option<String>,
}

/// Why the provider gave no tokens.
#[derive(Debug)]
pub(crate) enum ProviderError {
    /// The provider answered with an OAuth error (`invalid_grant`, …): the code or refresh
    /// token is not (or no longer) good. Carries the error code only.
    Refused(String),
    /// The provider could not be reached or answered something unusable.
    Unavailable(String),
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(code) => write!(f, "the provider refused: {code}"),
            Self::Unavailable(reason) => write!(f, "the provider is unavailable: {reason}"),
        }
    }
}

/// What a token endpoint answered (RFC 6749 §5.1). Its `Debug` shows no token.
#[derive(Deserialize)]
pub(crate) struct TokenAnswer {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) token_type: Option<String>,
    #[serde(default)]
    pub(crate) expires_in: Option<i64>,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
}

impl std::fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAnswer")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
}

#[derive(Deserialize)]
struct Discovery {
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    revocation_endpoint: Option<String>,
}

/// A configured connection and its HTTP client.
pub(crate) struct Provider {
    pub(crate) options: ConnectionOptions,
    http: reqwest::Client,
    endpoints: OnceCell<Endpoints>,
}

impl Provider {
    pub(crate) fn new(options: ConnectionOptions) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("mcpauth/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            options,
            http,
            endpoints: OnceCell::new(),
        }
    }

    fn is_github(&self) -> bool {
        self.options.kind == ConnectionKind::Github
    }

    async fn endpoints(&self) -> Result<&Endpoints, ProviderError> {
        self.endpoints
            .get_or_try_init(|| async {
                match &self.options.kind {
                    ConnectionKind::Github => Ok(Endpoints {
                        authorization: GITHUB_AUTHORIZE.to_owned(),
                        token: GITHUB_TOKEN.to_owned(),
                        revocation: None,
                    }),
                    ConnectionKind::OAuth2 {
                        authorization_url,
                        token_url,
                        revocation_url,
                    } => Ok(Endpoints {
                        authorization: authorization_url.clone(),
                        token: token_url.clone(),
                        revocation: revocation_url.clone(),
                    }),
                    ConnectionKind::Oidc { issuer } => self.discover(issuer).await,
                }
            })
            .await
    }

    async fn discover(&self, issuer: &str) -> Result<Endpoints, ProviderError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let response = self
            .http
            .get(&url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("discovery: {e}")))?;
        if !response.status().is_success() {
            return Err(ProviderError::Unavailable(format!(
                "discovery answered {}",
                response.status()
            )));
        }
        let body = read_limited(response).await?;
        let found: Discovery = serde_json::from_slice(&body)
            .map_err(|_| ProviderError::Unavailable("unreadable discovery document".into()))?;
        Ok(Endpoints {
            authorization: found.authorization_endpoint,
            token: found.token_endpoint,
            revocation: found.revocation_endpoint,
        })
    }

    /// The provider's authorization URL for a connect with this `state` and PKCE verifier.
    pub(crate) async fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        verifier: &str,
    ) -> Result<String, ProviderError> {
        let endpoints = self.endpoints().await?;
        let mut url = url::Url::parse(&endpoints.authorization)
            .map_err(|_| ProviderError::Unavailable("bad authorization endpoint".into()))?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.options.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("state", state)
                .append_pair(
                    "code_challenge",
                    &secret::sha256_b64url(verifier.as_bytes()),
                )
                .append_pair("code_challenge_method", "S256");
            if !self.options.scopes.is_empty() {
                query.append_pair("scope", &self.options.scopes.join(" "));
            }
            for (name, value) in &self.options.authorization_params {
                query.append_pair(name, value);
            }
        }
        Ok(url.to_string())
    }

    /// Redeems an authorization code.
    pub(crate) async fn exchange_code(
        &self,
        redirect_uri: &str,
        code: &str,
        verifier: &str,
    ) -> Result<TokenAnswer, ProviderError> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .await
    }

    /// Uses a refresh token.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> Result<TokenAnswer, ProviderError> {
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    fn basic_auth(&self) -> String {
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!(
            "Basic {}",
            STANDARD.encode(format!(
                "{}:{}",
                encode(&self.options.client_id),
                encode(&self.options.client_secret)
            ))
        )
    }

    async fn token_request(&self, params: &[(&str, &str)]) -> Result<TokenAnswer, ProviderError> {
        let endpoints = self.endpoints().await?;
        let mut form: Vec<(&str, &str)> = params.to_vec();
        let mut request = self
            .http
            .post(&endpoints.token)
            .header("accept", "application/json");
        if self.is_github() {
            // GitHub reads the client's credentials from the form.
            form.push(("client_id", &self.options.client_id));
            form.push(("client_secret", &self.options.client_secret));
        } else {
            request = request.header("authorization", self.basic_auth());
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("token endpoint: {e}")))?;
        let status = response.status();
        let body = read_limited(response).await?;
        // GitHub answers errors with 200 and an `error` member.
        if let Ok(error) = serde_json::from_slice::<ErrorAnswer>(&body) {
            let code: String = error
                .error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(match code.as_str() {
                "invalid_grant"
                | "bad_verification_code"
                | "bad_refresh_token"
                | "unauthorized_client"
                | "access_denied" => ProviderError::Refused(code),
                _ => ProviderError::Unavailable(format!("token endpoint error {code}")),
            });
        }
        if !status.is_success() {
            return Err(ProviderError::Unavailable(format!(
                "token endpoint answered {status}"
            )));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|_| ProviderError::Unavailable("unreadable token answer".into()))?;
        if answer.access_token.is_empty() {
            return Err(ProviderError::Unavailable("no access token".into()));
        }
        Ok(answer)
    }

    /// Revokes a connection's grant at the provider where it can be: RFC 7009 at its
    /// revocation endpoint (the refresh token, which ends the grant, else the access token),
    /// or GitHub's grant deletion. `Ok(false)` when the provider has no way to revoke.
    pub(crate) async fn revoke(
        &self,
        access_token: &str,
        refresh_token: Option<&str>,
    ) -> Result<bool, ProviderError> {
        if self.is_github() {
            let url = format!(
                "https://api.github.com/applications/{}/grant",
                self.options.client_id
            );
            let response = self
                .http
                .delete(url)
                .header("authorization", self.basic_auth())
                .header("accept", "application/vnd.github+json")
                .json(&serde_json::json!({ "access_token": access_token }))
                .send()
                .await
                .map_err(|e| ProviderError::Unavailable(format!("revocation: {e}")))?;
            // 404: the grant is already gone.
            return match response.status().as_u16() {
                204 | 404 => Ok(true),
                other => Err(ProviderError::Unavailable(format!(
                    "revocation answered {other}"
                ))),
            };
        }
        let endpoints = self.endpoints().await?;
        let Some(revocation) = &endpoints.revocation else {
            return Ok(false);
        };
        let (token, hint) = match refresh_token {
            Some(refresh) => (refresh, "refresh_token"),
            None => (access_token, "access_token"),
        };
        let response = self
            .http
            .post(revocation)
            .header("authorization", self.basic_auth())
            .form(&[("token", token), ("token_type_hint", hint)])
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("revocation: {e}")))?;
        // RFC 7009 §2.2: 200 also for a token that was invalid already.
        if response.status().is_success() {
            Ok(true)
        } else {
            Err(ProviderError::Unavailable(format!(
                "revocation answered {}",
                response.status()
            )))
        }
    }
}

/// Reads at most [`MAX_BODY`] bytes of an answer.
async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, ProviderError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ProviderError::Unavailable(format!("reading the answer: {e}")))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ProviderError::Unavailable("the answer is too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
