//! Every error mcpauth answers with, turned into an HTTP response in one place:
//! OAuth JSON errors (RFC 6749 §5.2, RFC 7591 §3.2.2), the account API's Better Auth–shaped
//! errors, and HTML error pages for the browser.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use mcpauth_core::{ErrorCode, OAuthError};
use serde_json::json;

use crate::pages::views::ErrorPage;

/// An OAuth error answered directly as JSON, never cached.
#[derive(Debug)]
pub struct OAuthJson {
    pub error: OAuthError,
    /// The client tried HTTP Basic authentication: a 401 carries `WWW-Authenticate: Basic`.
    pub basic_challenge: bool,
    /// Overrides the status the error code implies (e.g. 413 for an oversized body).
    pub status: Option<StatusCode>,
}

impl From<OAuthError> for OAuthJson {
    fn from(error: OAuthError) -> Self {
        Self {
            error,
            basic_challenge: false,
            status: None,
        }
    }
}

impl From<mcpauth_core::StoreError> for OAuthJson {
    fn from(error: mcpauth_core::StoreError) -> Self {
        tracing::error!(%error, "storage failure");
        OAuthError::from(error).into()
    }
}

impl IntoResponse for OAuthJson {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or_else(|| {
            StatusCode::from_u16(self.error.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
        });
        let body = json!({
            "error": self.error.code.as_str(),
            "error_description": self.error.description,
        });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.basic_challenge && status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"mcpauth\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

/// An error of the account API, in Better Auth's shape: `{"code": "...", "message": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<OAuthError> for ApiError {
    fn from(error: OAuthError) -> Self {
        let status =
            StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let code = match error.code {
            ErrorCode::TooManyRequests => "TOO_MANY_REQUESTS",
            ErrorCode::TemporarilyUnavailable => "SERVICE_UNAVAILABLE",
            _ => "INVALID_REQUEST",
        };
        Self::new(status, code, error.description)
    }
}

impl From<mcpauth_core::StoreError> for ApiError {
    fn from(error: mcpauth_core::StoreError) -> Self {
        tracing::error!(%error, "storage failure");
        OAuthError::from(error).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(json!({ "code": self.code, "message": self.message })),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// An HTML error page for the browser; used where redirecting would be unsafe (an unknown
/// client or redirect URI, SECURITY S2) or where there is nowhere to redirect to.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub title: String,
    pub message: String,
}

impl PageError {
    pub fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            title: title.into(),
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "This request can't be completed",
            message,
        )
    }
}

impl From<mcpauth_core::StoreError> for PageError {
    fn from(error: mcpauth_core::StoreError) -> Self {
        tracing::error!(%error, "storage failure");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "The server could not reach its database. Try again in a moment.",
        )
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            title: &self.title,
            message: &self.message,
        };
        match page.render() {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(_) => (self.status, self.message).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_errors_are_json_with_no_store() {
        let response = OAuthJson::from(OAuthError::invalid_grant("nope")).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert!(!response.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn invalid_client_after_basic_carries_a_basic_challenge() {
        let response = OAuthJson {
            error: OAuthError::invalid_client("bad secret"),
            basic_challenge: true,
            status: None,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap_or_default();
        assert!(challenge.starts_with("Basic "));
    }

    #[test]
    fn explicit_status_wins() {
        let response = OAuthJson {
            error: OAuthError::invalid_request("too big"),
            basic_challenge: false,
            status: Some(StatusCode::PAYLOAD_TOO_LARGE),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
