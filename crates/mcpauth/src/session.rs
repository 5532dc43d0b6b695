//! The session of a resource server's caller (SPEC §5.6): who an access token acts for, as
//! [`McpSession`]. Nearly a leaf: it imports only `connections` (which reaches nothing of the
//! request layer), so the token cache and the guard can hold sessions without reaching the
//! hub. How a bearer token becomes one is in `bearer`.

use serde::Serialize;

use crate::connections::{ConnectionError, ConnectionToken, Connections};

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
    /// DPoP (RFC 9449 §6): the thumbprint of the key the token is bound to, whose proof came
    /// with the request. `None`: a bearer token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// The server's connected accounts, for [`McpSession::connection_token`].
    #[serde(skip)]
    pub(crate) connections: SessionConnections,
}

/// The connected accounts a session reaches; equal whatever they are, so sessions compare by
/// who is calling.
#[derive(Clone, Default)]
pub(crate) struct SessionConnections(pub(crate) Option<Connections>);

impl PartialEq for SessionConnections {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for SessionConnections {}

impl std::fmt::Debug for SessionConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionConnections")
    }
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

    /// The calling user's access token at the connected service `connection_id` (a
    /// `[[connections]]` id), refreshed first when it is about to expire (once, however many
    /// calls ask at the same moment). [`ConnectionError::NotConnected`] or
    /// [`ConnectionError::ReconnectNeeded`] when the user must connect it first: answer with
    /// a URL elicitation to [`Connections::connect_url`].
    pub async fn connection_token(
        &self,
        connection_id: &str,
    ) -> Result<ConnectionToken, ConnectionError> {
        match (&self.connections.0, self.user_id.as_deref()) {
            (Some(connections), Some(user_id)) => connections.token(user_id, connection_id).await,
            // A machine's token (client_credentials) has no user whose accounts it could use.
            (Some(_), None) => Err(ConnectionError::Unavailable(
                "a machine's token (client_credentials) acts for no user: it has no connected accounts"
                    .to_owned(),
            )),
            (None, _) => Err(ConnectionError::UnknownConnection),
        }
    }

    /// The session [`McpAuth::with_mcp_auth`](crate::McpAuth::with_mcp_auth) attached to a
    /// request.
    pub fn from_extensions(extensions: &axum::http::Extensions) -> Option<&McpSession> {
        extensions.get::<McpSession>()
    }
}
