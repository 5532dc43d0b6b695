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
    /// The user the token acts for; `None` when the caller is a machine (a
    /// `client_credentials` token): the client acts for itself, and `client_id` is who calls.
    pub user_id: Option<String>,
    /// The client the token was issued to.
    pub client_id: String,
    /// The scopes granted to the token.
    pub scopes: Vec<String>,
    /// The resource the token was issued for (RFC 8707).
    pub audience: String,
    /// When the token expires, in seconds since the Unix epoch.
    pub expires_at: i64,
}

impl McpSession {
    /// True when the caller is a machine acting for itself (no user): see [`Self::user_id`].
    pub fn is_machine(&self) -> bool {
        self.user_id.is_none()
    }

    /// Who the token acts for: the user's id, or the client's for a machine (the `sub` of a
    /// `client_credentials` token, as the MCP client-credentials extension has it).
    pub fn subject(&self) -> &str {
        self.user_id.as_deref().unwrap_or(&self.client_id)
    }

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
