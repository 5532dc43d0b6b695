//! Bearer tokens for resource servers (SPEC §5.6): an access token presented as a bearer token
//! (RFC 6750 §2.1) becomes an [`McpSession`] after every check that decides whether it still
//! works, or a 401 carrying the challenge MCP clients discover from (RFC 9728 §5.1).

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpauth_core::{StoreError, secret};

use crate::McpAuth;
use crate::errors::{self, BearerError, JsonRpc, NoStore};
use crate::session::McpSession;

/// Extracts the [`McpSession`] in a handler behind [`McpAuth::with_mcp_auth`].
impl<S: Send + Sync> FromRequestParts<S> for McpSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<McpSession>()
            .cloned()
            .ok_or_else(|| {
                JsonRpc::new(StatusCode::UNAUTHORIZED, "authorization required").into_response()
            })
    }
}

/// The token in an `Authorization: Bearer …` header. The scheme is case-insensitive
/// (RFC 7235 §2.1); the token must have the b64token form of RFC 6750 §2.1.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, BearerError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BearerError::Invalid("more than one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| BearerError::Invalid("malformed Authorization header"))?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = token.trim();
    let well_formed = !token.is_empty()
        && token.len() <= 512
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
    if well_formed {
        Ok(Some(token))
    } else {
        Err(BearerError::Invalid("malformed bearer token"))
    }
}

impl McpAuth {
    /// The session of the bearer token in `headers`, after checking it is known, unexpired,
    /// unrevoked, issued for this server's resource (exact match), its client enabled and its
    /// user (a machine's token has none) present and enabled. The Rust twin of Better Auth's `auth.api.getMcpSession`.
    pub async fn get_mcp_session(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<McpSession>, StoreError> {
        match self.verify_bearer(headers).await {
            Ok(session) => Ok(Some(session)),
            Err(BearerError::Unavailable(e)) => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// Like [`Self::get_mcp_session`], saying why there is no session.
    pub async fn verify_bearer(&self, headers: &HeaderMap) -> Result<McpSession, BearerError> {
        self.verify_bearer_for(headers, &self.options().resource)
            .await
    }

    /// Like [`Self::verify_bearer`], for the protected resource `resource` (the main one or
    /// one of [`McpAuthOptions::resources`](crate::McpAuthOptions::resources)): a token issued
    /// for any other resource is refused (RFC 8707).
    pub async fn verify_bearer_for(
        &self,
        headers: &HeaderMap,
        resource: &str,
    ) -> Result<McpSession, BearerError> {
        let session = self.verify_bearer_any_audience(headers).await?;
        if session.audience != resource {
            return Err(BearerError::Invalid(
                "the access token was issued for another resource",
            ));
        }
        Ok(session)
    }

    /// The checks of [`Self::verify_bearer`] except the audience: for the authorization
    /// server's own endpoints (userinfo), which accept every token it issued.
    pub(crate) async fn verify_bearer_any_audience(
        &self,
        headers: &HeaderMap,
    ) -> Result<McpSession, BearerError> {
        let token = bearer_token(headers)?.ok_or(BearerError::Missing)?;
        let token_hash = secret::hash_token(token);
        let now = self.now();
        let cache = self.token_cache();
        let stamp = cache
            .stamp_if_enabled(self.store().as_ref())
            .await
            .map_err(BearerError::Unavailable)?;
        if let Some(session) = stamp.and_then(|stamp| cache.get(&token_hash, stamp, now)) {
            return Ok(session);
        }
        let grant = self
            .store()
            .access_token(&token_hash)
            .await
            .map_err(BearerError::Unavailable)?
            .ok_or(BearerError::Invalid("the access token is not recognised"))?;
        let t = &grant.token;
        if t.expires_at <= now {
            return Err(BearerError::Invalid("the access token has expired"));
        }
        if grant.family_revoked {
            return Err(BearerError::Invalid("the access token has been revoked"));
        }
        // A user's token needs its user present and enabled; a machine's has none.
        let user_gone = match (&t.user_id, &grant.user) {
            (None, _) => false,
            (Some(_), Some(user)) => user.disabled,
            (Some(_), None) => true,
        };
        if grant.client_disabled || user_gone {
            return Err(BearerError::Invalid(
                "the access token's grant is no longer valid",
            ));
        }
        let session = McpSession {
            token_id: t.id.clone(),
            user_id: t.user_id.clone(),
            client_id: t.client_id.clone(),
            scopes: t.scopes.iter().map(str::to_owned).collect(),
            audience: t.audience.clone(),
            expires_at: t.expires_at,
        };
        if let Some(stamp) = stamp {
            cache.insert(token_hash, session.clone(), stamp);
        }
        Ok(session)
    }

    /// The `WWW-Authenticate` challenge of SPEC §5.1.
    pub fn bearer_challenge(&self, error: Option<(&str, &str)>, scopes: &[String]) -> String {
        errors::bearer_challenge(self.protected_resource_metadata_url(), error, scopes)
    }

    /// The answer to a request without a usable bearer token: 401 (503 when the database is
    /// down) with the challenge and a JSON-RPC error body.
    pub fn unauthorized(&self, error: &BearerError) -> Response {
        errors::unauthorized(
            error,
            self.protected_resource_metadata_url(),
            &self.options().mcp_scopes,
        )
    }

    /// 403 `insufficient_scope` naming every scope the operation needs (SECURITY M2).
    pub fn insufficient_scope(&self, needed: &[String]) -> Response {
        errors::insufficient_scope(self.protected_resource_metadata_url(), needed)
    }
}

/// `GET {base}/mcp/get-session`: the session of a bearer token, never a refresh token.
pub async fn get_mcp_session(State(auth): State<McpAuth>, headers: HeaderMap) -> Response {
    match auth.verify_bearer(&headers).await {
        Ok(session) => NoStore(axum::Json(session)).into_response(),
        Err(error) => auth.unauthorized(&error),
    }
}
