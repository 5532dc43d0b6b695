//! Dynamic client registration (RFC 7591) over HTTP: the rate limit, the body, and the answer.
//! What a registration may contain is decided by [`ClientRegistration::parse`] in
//! `mcpauth-core` (every accepted field is stored and echoed; unknown fields are ignored, §2,
//! a client-chosen `client_id` among them, SECURITY S22).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpauth_core::model::TokenEndpointAuthMethod;
use mcpauth_core::{ClientRegistration, ErrorCode, OAuthError, StoreError, secret};
use serde_json::Value;

use crate::McpAuth;
use crate::errors::{NoStore, OAuthJson};
use crate::params::{is_json, read_body};
use crate::rate_limit::Limit;

/// `POST {base}/mcp/register`.
pub async fn register_client(State(auth): State<McpAuth>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let ip = auth.site().client_ip(&parts.headers, &parts.extensions);
    if let Err(limited) = auth
        .limiter()
        .hit(Limit::RegisterPerIp, &ip, auth.now())
        .await
    {
        return limited.annotate(OAuthJson::from(limited.error()).into_response());
    }
    if let Some(expected) = &auth.options().initial_access_token
        && !carries_bearer(&parts.headers, expected)
    {
        let refused = OAuthJson::from(OAuthError::new(
            ErrorCode::InvalidToken,
            "registration needs this server's initial access token (Authorization: Bearer)",
        ));
        let mut response = refused.into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        return response;
    }
    match register(&auth, &parts.headers, body).await {
        Ok(body) => NoStore((StatusCode::CREATED, axum::Json(body))).into_response(),
        Err(error) => error.into_response(),
    }
}

/// True when the request carries `expected` as its bearer token (compared in constant time).
fn carries_bearer(headers: &HeaderMap, expected: &str) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .unwrap_or_default();
    secret::constant_time_eq(
        secret::hash_token(presented).as_bytes(),
        secret::hash_token(expected).as_bytes(),
    )
}

async fn register(auth: &McpAuth, headers: &HeaderMap, body: Body) -> Result<Value, OAuthJson> {
    if !auth.options().allow_dynamic_client_registration {
        return Err(OAuthJson {
            error: OAuthError::new(
                ErrorCode::AccessDenied,
                "dynamic client registration is disabled on this server",
            ),
            basic_challenge: false,
            status: Some(StatusCode::FORBIDDEN),
        });
    }
    if !is_json(headers) {
        return Err(OAuthError::invalid_request("the body must be application/json").into());
    }
    let bytes = read_body(body).await?;
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the body must be a JSON object",
        )
        .into());
    };
    let registration = ClientRegistration::parse(&request, auth.scopes_supported())?;
    crate::client_credentials::check_self_registered_grants(auth, &registration.grant_types)?;

    let now = auth.now();
    let client_id = secret::random_id();
    // A private_key_jwt client proves itself with its keys: it gets no secret.
    let client_secret = matches!(
        registration.token_endpoint_auth_method,
        TokenEndpointAuthMethod::ClientSecretBasic | TokenEndpointAuthMethod::ClientSecretPost
    )
    .then(secret::random_token);
    let mut echoed = registration.echo.clone();
    let mut client = registration.into_client(
        client_id.clone(),
        client_secret.as_deref().map(secret::hash_token),
        false,
        now,
    );
    client.registered_dynamically = true;
    match auth.store().create_client(&client).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(OAuthError::server_error().into());
        }
        Err(other) => return Err(other.into()),
    }
    echoed.insert("client_id".into(), Value::String(client_id));
    echoed.insert("client_id_issued_at".into(), Value::from(now));
    if let Some(client_secret) = client_secret {
        echoed.insert("client_secret".into(), Value::String(client_secret));
        echoed.insert("client_secret_expires_at".into(), Value::from(0));
    }
    Ok(Value::Object(echoed))
}
