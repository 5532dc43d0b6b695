//! Client authentication at the token, revocation and introspection endpoints (RFC 6749
//! §2.3.1): HTTP Basic (each part form-encoded) or `client_secret` in the body, or none for a
//! public client; secrets compared in constant time against their stored hash. A
//! confidential client may send its secret either way, whichever method it registered (the
//! RFC allows both; Claude's connector registers `client_secret_post` and Codex switches to
//! Basic once it has a secret), but must send it: a client with a secret never passes as
//! public. A failure after Basic carries a `Basic` challenge (RFC 6749 §5.2). A
//! `client_assertion` (`private_key_jwt`) is checked by [`crate::client_assertion`].

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mcpauth_core::model::{Client, TokenEndpointAuthMethod};
use mcpauth_core::{OAuthError, Params, secret};

use crate::McpAuth;
use crate::errors::OAuthJson;

/// The enabled client a request to a client-authenticated endpoint comes from.
pub(crate) async fn authenticate_client(
    auth: &McpAuth,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Client, OAuthJson> {
    let basic = basic_credentials(headers);
    let used_basic = basic.is_some();
    check_client(auth, basic, params)
        .await
        .map_err(|error| OAuthJson {
            basic_challenge: used_basic,
            ..OAuthJson::from(error)
        })
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: each part form-encoded).
/// `Some(Err)` when the header is there but malformed.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), OAuthError>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let malformed =
        || OAuthError::invalid_client("the Authorization header is not valid HTTP Basic");
    let parse = || -> Result<(String, String), OAuthError> {
        let value = value.to_str().map_err(|_| malformed())?;
        let (scheme, encoded) = value.split_once(' ').ok_or_else(malformed)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(OAuthError::invalid_client(
                "only HTTP Basic client authentication is accepted in the Authorization header",
            ));
        }
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
        let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
        let unescape = |s: &str| {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Ok((unescape(id), unescape(secret)))
    };
    Some(parse())
}

async fn check_client(
    auth: &McpAuth,
    basic: Option<Result<(String, String), OAuthError>>,
    params: &Params,
) -> Result<Client, OAuthError> {
    let basic = basic.transpose()?;
    let body_secret = params.get("client_secret");
    // private_key_jwt (RFC 7523 §2.2): the assertion is the whole of the authentication.
    if params.get("client_assertion").is_some() || params.get("client_assertion_type").is_some() {
        if basic.is_some() || body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not a client assertion and a secret together",
            ));
        }
        return crate::client_assertion::authenticate(auth, params).await;
    }
    let (client_id, presented, method) = match basic {
        Some((id, secret)) => {
            if body_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method, not Basic and client_secret together",
                ));
            }
            if params.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::invalid_client(
                    "client_id in the body differs from the Basic credentials",
                ));
            }
            (id, Some(secret), TokenEndpointAuthMethod::ClientSecretBasic)
        }
        None => {
            let id = params.get("client_id").ok_or_else(|| {
                OAuthError::invalid_client("client authentication is required (client_id missing)")
            })?;
            let method = if body_secret.is_some() {
                TokenEndpointAuthMethod::ClientSecretPost
            } else {
                TokenEndpointAuthMethod::None
            };
            (id.to_owned(), body_secret.map(str::to_owned), method)
        }
    };
    let unknown = || OAuthError::invalid_client("client authentication failed");
    let client = auth
        .client(&client_id)
        .await?
        .filter(|c| !c.disabled)
        .ok_or_else(unknown)?;
    // Public stays public and confidential stays confidential; between Basic and the body
    // either will do.
    if client.is_public() != (method == TokenEndpointAuthMethod::None) {
        return Err(OAuthError::invalid_client(format!(
            "this client authenticates with {}",
            client.token_endpoint_auth_method.as_str()
        )));
    }
    if let Some(presented) = presented {
        let stored = client.client_secret_hash.as_deref().unwrap_or_default();
        if !secret::constant_time_eq(secret::hash_token(&presented).as_bytes(), stored.as_bytes()) {
            return Err(unknown());
        }
    }
    Ok(client)
}
