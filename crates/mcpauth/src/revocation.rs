//! Token revocation (RFC 7009) and introspection (RFC 7662).
//!
//! Revoking either token of a grant revokes the whole grant (the token family): RFC 7009 §2.1
//! lets the server revoke the related tokens too, and a client that gives up one token of a
//! grant has no use for the rest. Only the client a token was issued to may revoke it.
//! Introspection needs a confidential client's credentials (a resource server's) and answers only
//! for access tokens: a refresh token is never described, let alone revealed (SECURITY S27).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use mcpauth_core::model::Client;
use mcpauth_core::{ErrorCode, OAuthError, secret};
use serde_json::{Value, json};

use crate::McpAuth;
use crate::client_auth::authenticate_client;
use crate::errors::{NoStore, OAuthJson};
use crate::params::{params_from_body, read_body};
use mcpauth_core::Params;

/// Reads the body and authenticates the client, as the token endpoint does.
async fn client_request(
    auth: &McpAuth,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Client, Params), OAuthJson> {
    let bytes = read_body(body).await?;
    let params = params_from_body(headers, &bytes, &[])?;
    let client = authenticate_client(auth, headers, &params).await?;
    Ok((client, params))
}

/// `POST {base}/mcp/revoke`.
pub async fn revoke(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let ip = auth.site().client_ip(&parts.headers, &parts.extensions);
    let result = async {
        let (client, params) = client_request(&auth, &parts.headers, body).await?;
        let token = params.require("token")?;
        if let Some(hint) = params.get("token_type_hint")
            && hint != "access_token"
            && hint != "refresh_token"
        {
            return Err(OAuthError::new(
                ErrorCode::InvalidRequest,
                format!("token_type_hint {hint:?} is not supported"),
            )
            .into());
        }
        let hash = secret::hash_token(token);
        let store = &auth.store();
        let found = match store.access_token(&hash).await? {
            Some(grant) => Some((
                grant.token.family_id,
                grant.token.client_id,
                grant.token.user_id,
            )),
            None => store
                .refresh_token(&hash)
                .await?
                .map(|(rt, _)| (rt.family_id, rt.client_id, Some(rt.user_id))),
        };
        // RFC 7009 §2.2: an unknown or already invalid token is answered with 200 as well.
        if let Some((family_id, owner, user_id)) = found {
            if owner != client.client_id {
                return Err(OAuthError::new(
                    ErrorCode::UnauthorizedClient,
                    "the token was not issued to this client",
                )
                .into());
            }
            let revoked = store.revoke_family(&family_id, auth.now()).await;
            auth.forget_validated_tokens();
            revoked?;
            auth.audit(
                "token.revoke",
                user_id.as_deref(),
                Some(&client.client_id),
                Some(&ip),
                json!({ "family_id": family_id }),
            )
            .await;
        }
        Ok::<_, OAuthJson>(())
    }
    .await;
    match result {
        Ok(()) => NoStore(axum::Json(json!({}))).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `POST {base}/mcp/introspect`.
pub async fn introspect(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let (client, params) = client_request(&auth, &parts.headers, body).await?;
        if client.is_public() {
            return Err(OAuthJson {
                basic_challenge: false,
                ..OAuthJson::from(OAuthError::invalid_client(
                    "introspection needs a confidential client's credentials",
                ))
            });
        }
        let token = params.require("token")?;
        let inactive = json!({ "active": false });
        let Some(grant) = auth
            .store()
            .access_token(&secret::hash_token(token))
            .await?
        else {
            return Ok(inactive);
        };
        let t = &grant.token;
        let active = t.expires_at > auth.now()
            && !grant.family_revoked
            && !grant.client_disabled
            && match (&t.user_id, &grant.user) {
                (None, _) => true,
                (Some(_), Some(user)) => !user.disabled,
                (Some(_), None) => false,
            };
        if !active {
            return Ok(inactive);
        }
        // A machine's token (client_credentials) has the client as its subject and no username.
        let mut answer = json!({
            "active": true,
            "scope": t.scopes,
            "client_id": t.client_id,
            "sub": t.user_id.as_deref().unwrap_or(&t.client_id),
            "aud": t.audience,
            "iss": auth.options().issuer,
            "exp": t.expires_at,
            "iat": t.created_at,
            "token_type": "Bearer",
        });
        if let Some(user) = &grant.user {
            answer["username"] = Value::from(user.email.clone());
        }
        // RFC 9449 §6.2: a bound token's key, so that the resource server can check the proof.
        if let Some(jkt) = &t.dpop_jkt {
            answer["token_type"] = Value::from("DPoP");
            answer["cnf"] = json!({ "jkt": jkt });
        }
        Ok::<Value, OAuthJson>(answer)
    }
    .await;
    match result {
        Ok(body) => NoStore(axum::Json(body)).into_response(),
        Err(error) => error.into_response(),
    }
}
