//! The session of a resource server's caller (SPEC §5.6): who an access token acts for, as
//! [`McpSession`]. A leaf: it imports nothing of this crate, so the token cache and the guard
//! can hold sessions without reaching the hub. How a bearer token becomes one is in `bearer`.

use serde::Serialize;

/// Who is calling, as established from a valid access token. Never carries a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpSession {
    /// Identifier of the access token (not the token itself).
    pub token_id: String,
    /// The user the token acts for.
    pub user_id: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The scopes granted to the token.
    pub scopes: Vec<String>,
    /// The resource the token was issued for (RFC 8707).
    pub audience: String,
    /// When the token expires, in seconds since the Unix epoch.
    pub expires_at: i64,
    /// DPoP (RFC 9449 §6): the thumbprint of the key the token is bound to, whose proof came
    /// with the request. `None`: a bearer token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

impl McpSession {
    /// True when the token was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// The session [`McpAuth::with_mcp_auth`](crate::McpAuth::with_mcp_auth) attached to a
    /// request.
    pub fn from_extensions(extensions: &axum::http::Extensions) -> Option<&McpSession> {
        extensions.get::<McpSession>()
    }
}
