//! OpenID Connect: id_tokens (OIDC Core §2, §3.1.3.6), the userinfo endpoint (§5.3) with the
//! standard claims of §5.1 by scope (§5.4), and the JWKS document.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;
use mcpauth_core::Scopes;
use mcpauth_core::model::User;
use serde_json::{Map, Value, json};

use crate::McpAuth;
use crate::errors::BearerError;
use crate::errors::NoStore;
use crate::keys::KeyError;

/// The claims of §5.1 that `scopes` allow, for `user`, plus the configured additional claims.
pub(crate) fn user_claims(auth: &McpAuth, user: &User, scopes: &Scopes) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::from(user.id.clone()));
    if scopes.contains("profile") {
        claims.insert("name".into(), Value::from(user.name.clone()));
        let mut parts = user.name.splitn(2, ' ');
        if let (Some(given), Some(family)) = (parts.next(), parts.next()) {
            claims.insert("given_name".into(), Value::from(given));
            claims.insert("family_name".into(), Value::from(family.trim()));
        }
        if let Some(picture) = &user.image {
            claims.insert("picture".into(), Value::from(picture.clone()));
        }
        claims.insert("updated_at".into(), Value::from(user.updated_at));
    }
    if scopes.contains("email") {
        claims.insert("email".into(), Value::from(user.email.clone()));
        claims.insert("email_verified".into(), Value::from(user.email_verified));
    }
    for (name, value) in &auth.options().additional_user_info_claims {
        claims.entry(name.clone()).or_insert_with(|| value.clone());
    }
    claims
}

/// What an id_token is about.
pub(crate) struct IdTokenRequest<'a> {
    pub user: &'a User,
    pub client_id: &'a str,
    pub scopes: &'a Scopes,
    pub auth_time: i64,
    pub nonce: Option<&'a str>,
}

/// A signed id_token, valid as long as the access token issued with it.
pub(crate) async fn id_token(
    auth: &McpAuth,
    request: IdTokenRequest<'_>,
) -> Result<String, KeyError> {
    let now = auth.now();
    let mut claims = user_claims(auth, request.user, request.scopes);
    claims.insert("iss".into(), Value::from(auth.options().issuer.clone()));
    claims.insert("aud".into(), Value::from(request.client_id));
    claims.insert("azp".into(), Value::from(request.client_id));
    claims.insert("iat".into(), Value::from(now));
    claims.insert(
        "exp".into(),
        Value::from(now + auth.options().access_token_expires_in),
    );
    claims.insert("auth_time".into(), Value::from(request.auth_time));
    if let Some(nonce) = request.nonce {
        claims.insert("nonce".into(), Value::from(nonce));
    }
    auth.sign_jwt(&claims).await
}

impl McpAuth {
    /// `claims` as a JWT signed with the current id_token key (`kid` in the header): anyone
    /// can verify it against the published JWKS. For assertions mcpauth makes to others, such
    /// as the identity a gateway passes to the server behind it; the caller sets `iss`, `aud`
    /// and a short `exp`.
    pub async fn sign_jwt(&self, claims: &Map<String, Value>) -> Result<String, KeyError> {
        self.sign_typed_jwt("JWT", claims).await
    }

    /// `claims` signed as by [`Self::sign_jwt`], with the header's `typ` set to `typ` (`at+jwt`
    /// for an RFC 9068 access token).
    pub(crate) async fn sign_typed_jwt(
        &self,
        typ: &str,
        claims: &Map<String, Value>,
    ) -> Result<String, KeyError> {
        let key = self.keys().current().await?;
        let mut header = Header::new(key.algorithm);
        header.kid = Some(key.kid.clone());
        header.typ = Some(typ.into());
        // The compact JWS, as jsonwebtoken::encode writes it, signed with the key pair parsed
        // when the key was loaded.
        let header = serde_json::to_vec(&header).map_err(|e| KeyError::Crypto(e.to_string()))?;
        let claims = serde_json::to_vec(claims).map_err(|e| KeyError::Crypto(e.to_string()))?;
        let mut jwt = String::with_capacity((header.len() + claims.len()) * 4 / 3 + 100);
        URL_SAFE_NO_PAD.encode_string(&header, &mut jwt);
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims, &mut jwt);
        let signature = key.sign(jwt.as_bytes())?;
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut jwt);
        Ok(jwt)
    }
}

/// `GET|POST {base}/mcp/userinfo`: the claims of the bearer token's user, by its scopes.
pub async fn userinfo(
    State(auth): State<McpAuth>,
    method: axum::http::Method,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    headers: HeaderMap,
) -> Response {
    let url = format!("{}{}", auth.site().origin(), uri.path());
    let target = crate::bearer::Target {
        method: method.as_str(),
        url: &url,
    };
    let session = match auth.verify_presented(&headers, Some(&target)).await {
        Ok(session) => session,
        Err(error) => return auth.unauthorized(&error),
    };
    if !session.has_scope("openid") {
        return auth.insufficient_scope(&["openid".to_owned()]);
    }
    // A machine's token has no user to describe.
    let Some(user_id) = session.user_id.as_deref() else {
        return auth.insufficient_scope(&["openid".to_owned()]);
    };
    let user = match auth.store().user_by_id(user_id).await {
        Ok(Some(user)) if !user.disabled => user,
        Ok(_) => {
            return auth.unauthorized(&BearerError::Invalid("the user no longer exists"));
        }
        Err(error) => return auth.unauthorized(&BearerError::Unavailable(error)),
    };
    let scopes = Scopes::from_tokens(session.scopes.iter().cloned());
    NoStore(axum::Json(Value::Object(user_claims(
        &auth, &user, &scopes,
    ))))
    .into_response()
}

/// `GET {base}/mcp/jwks`: the public signing keys.
pub async fn jwks(State(auth): State<McpAuth>) -> Response {
    match auth.jwks().await {
        Ok(document) => {
            let mut response = axum::Json(document).into_response();
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=60"),
            );
            response
        }
        Err(error) => {
            tracing::error!(%error, "could not publish the signing keys");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({
                    "error": "temporarily_unavailable",
                    "error_description": "the signing keys could not be read",
                })),
            )
                .into_response()
        }
    }
}
