//! The records mcpauth keeps. Times are whole seconds since the Unix epoch; secrets appear only
//! as their hashes (see [`crate::secret`]).

use serde::{Deserialize, Serialize};

/// A person who can sign in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    pub email_verified: bool,
    pub image: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub disabled: bool,
}

/// A browser sign-in, identified by the hash of its cookie value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub token_hash: String,
    pub user_id: String,
    pub expires_at: i64,
    pub created_at: i64,
    /// When the user last proved who they are (OIDC `auth_time`, `max_age`).
    pub auth_time: i64,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

/// How a client authenticates at the token endpoint (RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEndpointAuthMethod {
    None,
    ClientSecretBasic,
    ClientSecretPost,
}

impl TokenEndpointAuthMethod {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "none" => Some(Self::None),
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }
}

/// A registered OAuth client (`oauthApplication`).
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub client_id: String,
    /// SHA-256 of the secret, for confidential clients.
    pub client_secret_hash: Option<String>,
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    pub grant_types: Vec<String>,
    pub logo_uri: Option<String>,
    /// Every registration field as accepted, echoed back by the registration endpoint.
    pub metadata: serde_json::Value,
    pub disabled: bool,
    pub skip_consent: bool,
    pub created_at: i64,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.token_endpoint_auth_method == TokenEndpointAuthMethod::None
    }

    pub fn has_grant_type(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }
}

/// An authorization code (RFC 6749 §4.1.2), bound to everything the token request must repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub session_id: String,
    pub redirect_uri: String,
    pub scopes: String,
    pub code_challenge: Option<String>,
    pub resource: String,
    pub nonce: Option<String>,
    pub auth_time: i64,
    /// The token family the exchange will populate, so that a replay can revoke it.
    pub family_id: String,
    pub expires_at: i64,
    pub created_at: i64,
}

/// One grant: the chain of access and refresh tokens that descend from one authorization code.
/// Revoking the family kills every token in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFamily {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    pub scopes: String,
    pub resource: String,
    pub created_at: i64,
    /// The absolute end of the grant, however often it is refreshed.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// An issued access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub id: String,
    pub token_hash: String,
    pub family_id: String,
    pub client_id: String,
    pub user_id: String,
    pub scopes: String,
    pub audience: String,
    pub expires_at: i64,
    pub created_at: i64,
}

/// An issued refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub id: String,
    pub token_hash: String,
    pub family_id: String,
    pub client_id: String,
    pub user_id: String,
    pub scopes: String,
    pub resource: String,
    pub expires_at: i64,
    pub created_at: i64,
    /// When it was exchanged for its successor; a rotated token is dead except for the retry.
    pub rotated_at: Option<i64>,
    /// The successor's token response, sealed under this token (see [`crate::secret::seal`]).
    pub retry_response: Option<String>,
}

/// An access token as the resource server sees it, with what decides whether it still works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenGrant {
    pub token: AccessToken,
    pub user: User,
    pub family_revoked: bool,
    pub client_disabled: bool,
}

/// A user's standing approval of a client for a set of scopes (`oauthConsent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub user_id: String,
    pub client_id: String,
    pub scopes: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A validated authorization request waiting for the user's decision on the consent page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub user_id: String,
    pub session_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: String,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub resource: String,
    pub nonce: Option<String>,
    pub auth_time: i64,
}

/// What happened when a code was presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// First use: the code, now marked used.
    Redeemed(Box<AuthorizationCode>),
    /// The code had been used before; its token family has been revoked.
    Replayed,
    /// No such code.
    Unknown,
}

/// What happened when a refresh token was rotated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// This call rotated it; the successor tokens are stored.
    Rotated,
    /// Another call rotated it first.
    AlreadyRotated {
        rotated_at: i64,
        retry_response: Option<String>,
    },
}
