//! OAuth error codes (RFC 6749 §4.1.2.1 and §5.2, RFC 7591 §3.2.2, RFC 8707 §2, OIDC Core §3.1.2.6)
//! and the storage error every backend maps into.

use std::fmt;

/// An error code from the OAuth family of specifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// RFC 6749 §5.2: the request is missing a required parameter, repeats one, has an
    /// unsupported value, or is otherwise malformed.
    InvalidRequest,
    /// RFC 6749 §5.2: client authentication failed (unknown client, no authentication, or an
    /// unsupported method).
    InvalidClient,
    /// RFC 6749 §5.2: the grant is invalid, expired, revoked, or was issued to another client.
    InvalidGrant,
    /// RFC 6749 §5.2: the client is not authorized to use this grant type.
    UnauthorizedClient,
    /// RFC 6749 §5.2: the grant type is not supported by this server.
    UnsupportedGrantType,
    /// RFC 6749 §4.1.2.1: the response type is not supported by this server.
    UnsupportedResponseType,
    /// RFC 6749 §5.2: the requested scope is invalid, unknown, malformed, or exceeds the grant.
    InvalidScope,
    /// RFC 8707 §2: the resource is invalid, unknown, or one this server issues no tokens for.
    InvalidTarget,
    /// RFC 6749 §4.1.2.1: the user or the server denied the request.
    AccessDenied,
    /// OIDC Core §3.1.2.6: `prompt=none` was requested but the user must sign in.
    LoginRequired,
    /// OIDC Core §3.1.2.6: `prompt=none` was requested but the user must consent.
    ConsentRequired,
    /// RFC 7591 §3.2.2: a redirect URI in the registration request is not acceptable.
    InvalidRedirectUri,
    /// RFC 7591 §3.2.2: a client metadata field in the registration request is not acceptable.
    InvalidClientMetadata,
    /// RFC 6750 §3.1: the access token is expired, revoked, malformed, or for another resource.
    InvalidToken,
    /// RFC 6750 §3.1: the request needs a scope the access token does not carry.
    InsufficientScope,
    /// The caller exceeded a rate limit (HTTP 429, RFC 6585 §4); not a registered OAuth code.
    TooManyRequests,
    /// RFC 6749 §4.1.2.1: the server met an unexpected condition.
    ServerError,
    /// RFC 6749 §4.1.2.1: the server cannot handle the request for now (as when storage is down).
    TemporarilyUnavailable,
    /// RFC 9449 §5: the DPoP proof is missing where it is required, malformed, or not valid.
    InvalidDpopProof,
    /// RFC 9449 §8: the DPoP proof must carry the nonce the server sends in `DPoP-Nonce`.
    UseDpopNonce,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::TooManyRequests => "too_many_requests",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }

    /// The HTTP status an endpoint answers this error with when it answers directly.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidClient | Self::InvalidToken => 401,
            Self::InsufficientScope | Self::AccessDenied => 403,
            Self::TooManyRequests => 429,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error: a code and a human-readable description of what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    /// The error code, sent as `error`.
    pub code: ErrorCode,
    /// What was wrong, for humans; sent as `error_description` (RFC 6749 §5.2).
    pub description: String,
}

impl OAuthError {
    /// An error with `code` and `description`.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    /// An [`ErrorCode::InvalidRequest`] error.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// An [`ErrorCode::InvalidGrant`] error.
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    /// An [`ErrorCode::InvalidClient`] error.
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }

    /// An [`ErrorCode::InvalidScope`] error.
    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }

    /// An [`ErrorCode::InvalidTarget`] error.
    pub fn invalid_target(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidTarget, description)
    }

    /// An [`ErrorCode::ServerError`] error whose description reveals nothing about the failure.
    pub fn server_error() -> Self {
        Self::new(
            ErrorCode::ServerError,
            "the server could not complete the request",
        )
    }
}

/// What can go wrong in a storage backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (for example an email already registered).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database failed; the message is for logs, never for clients.
    #[error("database error: {0}")]
    Database(String),
}

impl From<StoreError> for OAuthError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => OAuthError::invalid_request(what),
            StoreError::Database(_) => OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the server's storage is unavailable; try again",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_rfc6749_statuses() {
        assert_eq!(ErrorCode::InvalidRequest.http_status(), 400);
        assert_eq!(ErrorCode::InvalidGrant.http_status(), 400);
        assert_eq!(ErrorCode::UnsupportedGrantType.http_status(), 400);
        assert_eq!(ErrorCode::InvalidScope.http_status(), 400);
        assert_eq!(ErrorCode::InvalidTarget.http_status(), 400);
        assert_eq!(ErrorCode::InvalidClient.http_status(), 401);
        assert_eq!(ErrorCode::InvalidToken.http_status(), 401);
        assert_eq!(ErrorCode::InsufficientScope.http_status(), 403);
        assert_eq!(ErrorCode::TooManyRequests.http_status(), 429);
        assert_eq!(
            ErrorCode::InvalidRedirectUri.as_str(),
            "invalid_redirect_uri"
        );
        assert_eq!(
            ErrorCode::InvalidClientMetadata.as_str(),
            "invalid_client_metadata"
        );
    }

    #[test]
    fn storage_failures_never_leak_details() {
        let conflict: OAuthError = StoreError::Conflict("email taken".into()).into();
        assert_eq!(conflict.code, ErrorCode::InvalidRequest);
        let down: OAuthError = StoreError::Database("disk I/O error at /var/lib/x".into()).into();
        assert_eq!(down.code, ErrorCode::TemporarilyUnavailable);
        assert!(!down.description.contains("/var/lib"));
    }
}
