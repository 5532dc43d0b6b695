//! Request bodies: how much of one mcpauth reads, and which parser its `Content-Type` picks for
//! [`Params`] (the RFC 6749 §3 parameter rules live in `mcpauth-core`).

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpauth_core::{OAuthError, Params};

use crate::McpAuth;
use crate::errors::{ApiError, OAuthJson};

/// The largest request body mcpauth reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Parses a form or JSON body into [`Params`], choosing by `Content-Type`.
pub fn params_from_body(
    headers: &HeaderMap,
    body: &[u8],
    repeatable: &[&str],
) -> Result<Params, OAuthError> {
    match body_kind(headers) {
        Some(BodyKind::Form) => Params::from_form(body, repeatable),
        Some(BodyKind::Json) => Params::from_json(body, repeatable),
        None => Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded or application/json",
        )),
    }
}

enum BodyKind {
    Form,
    Json,
}

fn body_kind(headers: &HeaderMap) -> Option<BodyKind> {
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => Some(BodyKind::Form),
        "application/json" => Some(BodyKind::Json),
        _ => None,
    }
}

/// True when the request says its body is JSON.
pub fn is_json(headers: &HeaderMap) -> bool {
    matches!(body_kind(headers), Some(BodyKind::Json))
}

/// Reads a request body of at most [`MAX_BODY_BYTES`].
pub async fn read_body(body: Body) -> Result<Bytes, OAuthJson> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|error| {
            let (status, why) = unreadable_body(&error);
            let description = match status {
                StatusCode::PAYLOAD_TOO_LARGE => {
                    format!("the request body is larger than {MAX_BODY_BYTES} bytes")
                }
                _ => why.to_owned(),
            };
            OAuthJson {
                error: OAuthError::invalid_request(description),
                basic_challenge: false,
                status: Some(status),
            }
        })
}

/// The status and reason for a request body that [`axum::body::to_bytes`] could not read: 413
/// over the size limit, 408 when the server's body read timeout cut it off, 400 otherwise (e.g.
/// the client broke the connection off).
pub fn unreadable_body(error: &axum::Error) -> (StatusCode, &'static str) {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.is::<http_body_util::LengthLimitError>() {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large",
            );
        }
        if current.is::<tower_http::timeout::TimeoutError>() {
            return (
                StatusCode::REQUEST_TIMEOUT,
                "the request body was not sent in time",
            );
        }
        cause = current.source();
    }
    (
        StatusCode::BAD_REQUEST,
        "the request body could not be read",
    )
}

/// The body of a Better Auth–style JSON (or form) API call, refused unless the request comes
/// from this origin (SECURITY S25): its headers, extensions and parameters.
pub(crate) async fn json_params(
    auth: &McpAuth,
    request: Request,
) -> Result<(HeaderMap, axum::http::Extensions, Params), Response> {
    let (parts, body) = request.into_parts();
    if !auth.site().same_origin(&parts.headers) {
        return Err(ApiError::cross_origin().into_response());
    }
    let bytes = read_body(body).await.map_err(IntoResponse::into_response)?;
    let params = params_from_body(&parts.headers, &bytes, &[])
        .map_err(|e| ApiError::from(e).into_response())?;
    Ok((parts.headers, parts.extensions, params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn form_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        h
    }

    #[test]
    fn bodies_by_content_type() {
        let p = params_from_body(&form_headers(), b"grant_type=x&code=%2Fy", &[]);
        assert_eq!(
            p.ok().and_then(|p| p.get("code").map(str::to_owned)),
            Some("/y".into())
        );
        let mut json = HeaderMap::new();
        json.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(params_from_body(&json, br#"{"accept":true,"n":1}"#, &[]).is_ok());
        assert!(params_from_body(&json, b"{not json", &[]).is_err());
        assert!(params_from_body(&json, b"[1]", &[]).is_err());
        assert!(params_from_body(&json, br#"{"a":{"b":1}}"#, &[]).is_err());
        assert!(params_from_body(&HeaderMap::new(), b"a=1", &[]).is_err());
    }
}
