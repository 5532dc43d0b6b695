//! Bearer tokens for resource servers (SPEC §5.6): an access token presented as a bearer token
//! (RFC 6750 §2.1) becomes an [`McpSession`] after every check that decides whether it still
//! works, or a 401 carrying the challenge MCP clients discover from (RFC 9728 §5.1).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpauth_core::{StoreError, secret};

use crate::McpAuth;
use crate::access_token_jwt;
use crate::dpop;
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

/// The longest access token read: an opaque token is 43 characters, a JWT access token with
/// an RSA signature under 1 KiB.
const MAX_TOKEN: usize = 4096;

/// How an access token was presented (RFC 6750 §2.1, RFC 9449 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `Authorization: Bearer …`.
    Bearer,
    /// `Authorization: DPoP …`, with a proof in the `DPoP` header.
    Dpop,
}

/// The token in an `Authorization: Bearer …` header. The scheme is case-insensitive
/// (RFC 7235 §2.1); the token must have the b64token form of RFC 6750 §2.1.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, BearerError> {
    Ok(presented_token(headers)?
        .filter(|(scheme, _)| *scheme == Scheme::Bearer)
        .map(|(_, token)| token))
}

/// The token in an `Authorization: Bearer …` or `Authorization: DPoP …` header, and which.
pub(crate) fn presented_token(headers: &HeaderMap) -> Result<Option<(Scheme, &str)>, BearerError> {
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
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Ok(None);
    };
    let token = token.trim();
    let well_formed = !token.is_empty()
        && token.len() <= MAX_TOKEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
    if well_formed {
        Ok(Some((scheme, token)))
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

    /// Like [`Self::get_mcp_session`], saying why there is no session. A DPoP-bound token
    /// needs the request's method and URL to check its proof: see [`Self::verify_request`].
    pub async fn verify_bearer(&self, headers: &HeaderMap) -> Result<McpSession, BearerError> {
        self.verify_bearer_for(headers, &self.options().resource)
            .await
    }

    /// The session of the access token of `request` (its head) for the main resource: a
    /// bearer token, or a DPoP-bound token with its proof (RFC 9449 §7), checked against the
    /// request's method and URL (the issuer's origin and the request's path).
    pub async fn verify_request(&self, request: &Parts) -> Result<McpSession, BearerError> {
        self.verify_request_for(request, &self.options().resource)
            .await
    }

    /// Like [`Self::verify_request`], for the protected resource `resource`.
    pub async fn verify_request_for(
        &self,
        request: &Parts,
        resource: &str,
    ) -> Result<McpSession, BearerError> {
        let url = self.request_url(request);
        let target = Target {
            method: request.method.as_str(),
            url: &url,
        };
        let session = self
            .verify_presented(&request.headers, Some(&target))
            .await?;
        if session.audience != resource {
            return Err(BearerError::Invalid(
                "the access token was issued for another resource",
            ));
        }
        Ok(session)
    }

    /// The URL a request was made to, as seen from outside: the issuer's origin and the path
    /// the request came in with (before any nesting stripped a prefix).
    pub(crate) fn request_url(&self, request: &Parts) -> String {
        let uri = request
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or(&request.uri, |original| &original.0);
        format!("{}{}", self.site().origin(), uri.path())
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
        self.verify_presented(headers, None).await
    }

    /// Every check but the audience, for the token in `headers`; `target` is the request a
    /// DPoP proof must name (without it, a DPoP-bound token is refused).
    pub(crate) async fn verify_presented(
        &self,
        headers: &HeaderMap,
        target: Option<&Target<'_>>,
    ) -> Result<McpSession, BearerError> {
        let (scheme, token) = presented_token(headers)?.ok_or(BearerError::Missing)?;
        let session = self.session_of(token).await?;
        self.check_sender(&session, scheme, token, headers, target)
            .await?;
        Ok(session)
    }

    /// The session of `token`, from the token cache or, after every check, the store.
    async fn session_of(&self, token: &str) -> Result<McpSession, BearerError> {
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
        // A JWT must be an access token signed here before its row is looked up (SECURITY T1);
        // a cached session above was made from the very same string, checked then.
        if access_token_jwt::looks_like_jwt(token) {
            access_token_jwt::check(self.keys(), token, &self.options().issuer, now)
                .await
                .map_err(BearerError::Invalid)?;
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
            dpop_jkt: t.dpop_jkt.clone(),
            connections: crate::session::SessionConnections(Some(self.connections().clone())),
        };
        if let Some(stamp) = stamp {
            cache.insert(token_hash, session.clone(), stamp);
        }
        Ok(session)
    }

    /// A DPoP-bound token is used only with a proof by its key, for this request and this
    /// token (RFC 9449 §7.1, SECURITY T2); an unbound token only as a bearer token.
    async fn check_sender(
        &self,
        session: &McpSession,
        scheme: Scheme,
        token: &str,
        headers: &HeaderMap,
        target: Option<&Target<'_>>,
    ) -> Result<(), BearerError> {
        let Some(bound) = &session.dpop_jkt else {
            return match scheme {
                Scheme::Bearer => Ok(()),
                Scheme::Dpop => Err(BearerError::Invalid(
                    "the access token is not DPoP-bound: present it as a Bearer token",
                )),
            };
        };
        if scheme != Scheme::Dpop {
            return Err(BearerError::DpopBound);
        }
        let Some(target) = target else {
            return Err(BearerError::InvalidDpopProof(
                "a DPoP-bound token is not accepted here",
            ));
        };
        let proof = dpop::proof_header(headers)
            .map_err(|error| self.proof_refusal(error))?
            .ok_or(BearerError::InvalidDpopProof(
                "a DPoP-bound token needs a DPoP proof",
            ))?;
        let nonces = dpop::Nonces::new(self.site());
        let expected = dpop::Expected {
            method: target.method,
            url: target.url,
            access_token: Some(token),
            nonces: self.options().use_dpop_nonce.then_some(&nonces),
        };
        let jkt = dpop::check_proof(self.store().as_ref(), self.now(), proof, &expected)
            .await
            .map_err(|error| self.proof_refusal(error))?;
        if &jkt != bound {
            return Err(BearerError::InvalidDpopProof(
                "the DPoP proof is signed by another key than the token is bound to",
            ));
        }
        Ok(())
    }

    fn proof_refusal(&self, error: dpop::ProofError) -> BearerError {
        match error {
            dpop::ProofError::Invalid(why) => BearerError::InvalidDpopProof(why),
            dpop::ProofError::NonceRequired => {
                BearerError::DpopNonce(dpop::Nonces::new(self.site()).current(self.now()))
            }
            dpop::ProofError::Store(error) => BearerError::Unavailable(error),
        }
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

/// `GET {base}/mcp/get-session`: the session of a bearer token (or a DPoP-bound token with
/// its proof), never a refresh token.
pub async fn get_mcp_session(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    match auth.verify_request(&parts).await {
        Ok(session) => NoStore(axum::Json(session)).into_response(),
        Err(error) => auth.unauthorized(&error),
    }
}

/// The request a DPoP proof must name (`htm`, `htu`).
pub(crate) struct Target<'a> {
    pub method: &'a str,
    pub url: &'a str,
}
