//! The records mcpauth keeps. Times are whole seconds since the Unix epoch; secrets appear only
//! as their hashes (see [`crate::secret`]). Scopes, redirect URIs and grant types are their
//! parsed types ([`Scopes`], [`RedirectUri`], [`GrantType`]): a store decodes them once, when it
//! reads a row, so the rest of the code never re-checks them.

use serde::{Deserialize, Serialize};

use crate::redirect_uri::RedirectUri;
use crate::scope::Scopes;

/// A person who can sign in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Opaque unique identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Email address, trimmed and lowercased; unique among users.
    pub email: String,
    /// Whether the user has proved they own the email address.
    pub email_verified: bool,
    /// URL of a profile picture, if any.
    pub image: Option<String>,
    /// When the user was created, in seconds since the Unix epoch.
    pub created_at: i64,
    /// When the record last changed, in seconds since the Unix epoch.
    pub updated_at: i64,
    /// A disabled user cannot sign in, and tokens issued to them stop working.
    pub disabled: bool,
}

/// A browser sign-in, identified by the hash of its cookie value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Opaque unique identifier.
    pub id: String,
    /// Hash of the session cookie value ([`crate::secret::hash_token`]); the cookie itself is
    /// never stored.
    pub token_hash: String,
    /// The signed-in user.
    pub user_id: String,
    /// When the session ends, in seconds since the Unix epoch.
    pub expires_at: i64,
    /// When the session began, in seconds since the Unix epoch.
    pub created_at: i64,
    /// When the user last proved who they are (OIDC `auth_time`, `max_age`).
    pub auth_time: i64,
    /// The IP address the user signed in from, if known.
    pub ip_address: Option<String>,
    /// The browser's `User-Agent` at sign-in, if sent.
    pub user_agent: Option<String>,
}

/// How a client authenticates at the token endpoint (RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEndpointAuthMethod {
    /// `none`: a public client, which does not authenticate (and must use PKCE).
    None,
    /// `client_secret_basic`: the secret in HTTP Basic authentication (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_secret_post`: the secret in the request body as `client_secret` (RFC 6749 §2.3.1).
    ClientSecretPost,
    /// `private_key_jwt`: a JWT signed with one of the client's registered keys, as
    /// `client_assertion` (RFC 7523 §2.2, OIDC Core §9). The client has no secret.
    PrivateKeyJwt,
}

impl TokenEndpointAuthMethod {
    /// The method with this RFC 7591 name, or nothing for a method mcpauth does not support.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "none" => Some(Self::None),
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            "private_key_jwt" => Some(Self::PrivateKeyJwt),
            _ => None,
        }
    }

    /// The method's RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// The grant type name of RFC 7523 §2.1.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A grant type a client may use at the token endpoint (RFC 7591 §2, RFC 6749 §4.1 and §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// `authorization_code` (RFC 6749 §4.1.3).
    AuthorizationCode,
    /// `refresh_token` (RFC 6749 §6).
    RefreshToken,
    /// `client_credentials` (RFC 6749 §4.4): a machine acting for itself, no user. Only for
    /// clients the operator allowed (SECURITY E1).
    ClientCredentials,
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1): an identity assertion
    /// (ID-JAG) from a trusted enterprise issuer redeemed for tokens (SECURITY E3).
    #[serde(rename = "urn:ietf:params:oauth:grant-type:jwt-bearer")]
    JwtBearer,
}

impl GrantType {
    /// The grant type with this RFC 7591 name, or nothing for one mcpauth does not support.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "authorization_code" => Some(Self::AuthorizationCode),
            "refresh_token" => Some(Self::RefreshToken),
            "client_credentials" => Some(Self::ClientCredentials),
            JWT_BEARER => Some(Self::JwtBearer),
            _ => None,
        }
    }

    /// The grant type's RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::JwtBearer => JWT_BEARER,
        }
    }
}

/// A registered OAuth client (`oauthApplication`).
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// The client identifier (RFC 6749 §2.2); unique.
    pub client_id: String,
    /// SHA-256 of the secret, for confidential clients.
    pub client_secret_hash: Option<String>,
    /// `client_name` (RFC 7591 §2), shown to the user on the consent page.
    pub name: Option<String>,
    /// The registered redirect URIs, each valid for registration; an authorization request must
    /// name one of them exactly (RFC 8252 §7.3 allows any port on loopback).
    pub redirect_uris: Vec<RedirectUri>,
    /// How the client authenticates at the token endpoint.
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    /// The grant types the client may use (RFC 7591 §2).
    pub grant_types: Vec<GrantType>,
    /// `logo_uri` (RFC 7591 §2), if given.
    pub logo_uri: Option<String>,
    /// Every registration field as accepted, echoed back by the registration endpoint.
    pub metadata: serde_json::Value,
    /// A disabled client can neither obtain nor use tokens.
    pub disabled: bool,
    /// A trusted client whose authorization requests are not put to the user for consent.
    pub skip_consent: bool,
    /// Registered by the client itself (RFC 7591), not by an operator: purged after a day
    /// unless it completed an authorization (SECURITY M5).
    pub registered_dynamically: bool,
    /// When the client was registered, in seconds since the Unix epoch.
    pub created_at: i64,
}

impl Client {
    /// True for a public client, which has no secret (OAuth 2.1 §2.1).
    pub fn is_public(&self) -> bool {
        self.token_endpoint_auth_method == TokenEndpointAuthMethod::None
    }

    /// True when the client registered `grant_type`.
    pub fn has_grant_type(&self, grant_type: GrantType) -> bool {
        self.grant_types.contains(&grant_type)
    }
}

/// When a client metadata document (CIMD) was fetched and how long it may be used; the client
/// it describes is stored as an ordinary [`Client`] under its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDocument {
    /// The document's URL, which is the client id.
    pub client_id: String,
    /// The `ETag` it was served with, to revalidate it (`If-None-Match`).
    pub etag: Option<String>,
    /// When it was last fetched or revalidated, in seconds since the Unix epoch.
    pub fetched_at: i64,
    /// Until when it may be used without asking its server again.
    pub expires_at: i64,
}

/// An authorization code (RFC 6749 §4.1.2), bound to everything the token request must repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    /// Hash of the code ([`crate::secret::hash_token`]); the code itself is never stored.
    pub code_hash: String,
    /// The client the code was issued to.
    pub client_id: String,
    /// The user who authorized the request.
    pub user_id: String,
    /// The browser session the user authorized from.
    pub session_id: String,
    /// The redirect URI of the authorization request as requested (on loopback its port may
    /// differ from the registered one), which the token request must repeat (RFC 6749 §4.1.3).
    pub redirect_uri: RedirectUri,
    /// The granted scopes (RFC 6749 §3.3).
    pub scopes: Scopes,
    /// The PKCE S256 code challenge (RFC 7636 §4.2); absent only for a confidential client that
    /// sent none.
    pub code_challenge: Option<String>,
    /// The protected resource (RFC 8707 §2) the tokens will be issued for.
    pub resource: String,
    /// The OIDC `nonce` of the authorization request (OIDC Core §3.1.2.1), if sent.
    pub nonce: Option<String>,
    /// When the user last authenticated (OIDC `auth_time`), in seconds since the Unix epoch.
    pub auth_time: i64,
    /// The token family the exchange will populate, so that a replay can revoke it.
    pub family_id: String,
    /// When the code expires, in seconds since the Unix epoch.
    pub expires_at: i64,
    /// When the code was issued, in seconds since the Unix epoch.
    pub created_at: i64,
}

/// One grant: the chain of access and refresh tokens that descend from one authorization code.
/// Revoking the family kills every token in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFamily {
    /// Opaque unique identifier.
    pub id: String,
    /// The client the grant was made to.
    pub client_id: String,
    /// The user who made the grant.
    pub user_id: String,
    /// The granted scopes (RFC 6749 §3.3); a refresh cannot widen them.
    pub scopes: Scopes,
    /// The protected resource (RFC 8707 §2) every token of the family is for.
    pub resource: String,
    /// When the grant was made, in seconds since the Unix epoch.
    pub created_at: i64,
    /// The absolute end of the grant, however often it is refreshed.
    pub expires_at: i64,
    /// When the family was revoked, in seconds since the Unix epoch; every token of a revoked
    /// family is dead.
    pub revoked_at: Option<i64>,
}

/// An issued access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// Opaque unique identifier (not the token).
    pub id: String,
    /// Hash of the bearer token ([`crate::secret::hash_token`]); the token itself is never stored.
    pub token_hash: String,
    /// The token family (grant) the token belongs to.
    pub family_id: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The user the token acts for; `None` for a machine's token (`client_credentials`), whose
    /// subject is the client itself.
    pub user_id: Option<String>,
    /// The token's scopes (RFC 6749 §3.3); possibly narrower than the grant's.
    pub scopes: Scopes,
    /// The protected resource (RFC 8707 §2) the token is for; any other resource refuses it.
    pub audience: String,
    /// When the token expires, in seconds since the Unix epoch.
    pub expires_at: i64,
    /// When the token was issued, in seconds since the Unix epoch.
    pub created_at: i64,
    /// DPoP (RFC 9449 §6): the JWK SHA-256 thumbprint of the key the token is bound to; it is
    /// then usable only with a proof signed by that key. `None`: a bearer token.
    pub dpop_jkt: Option<String>,
}

/// An issued refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Opaque unique identifier (not the token).
    pub id: String,
    /// Hash of the refresh token ([`crate::secret::hash_token`]); the token itself is never
    /// stored.
    pub token_hash: String,
    /// The token family (grant) the token belongs to.
    pub family_id: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The user the token acts for.
    pub user_id: String,
    /// The grant's scopes (RFC 6749 §3.3); a refresh may ask for fewer, never more
    /// (RFC 6749 §6).
    pub scopes: Scopes,
    /// The protected resource (RFC 8707 §2) the tokens it refreshes to are for.
    pub resource: String,
    /// When the token expires, in seconds since the Unix epoch; never after its family's end.
    pub expires_at: i64,
    /// When the token was issued, in seconds since the Unix epoch.
    pub created_at: i64,
    /// When it was exchanged for its successor; a rotated token is dead except for the retry.
    pub rotated_at: Option<i64>,
    /// The successor's token response, sealed under this token (see [`crate::secret::seal`]).
    pub retry_response: Option<String>,
    /// DPoP (RFC 9449 §5): for a public client that proved a key, the JWK SHA-256 thumbprint
    /// of that key; the token then refreshes only with a proof signed by it (SECURITY T3).
    pub dpop_jkt: Option<String>,
}

/// An access token as the resource server sees it, with what decides whether it still works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenGrant {
    /// The access token.
    pub token: AccessToken,
    /// The user it acts for; `None` for a machine's token.
    pub user: Option<User>,
    /// Whether its token family has been revoked.
    pub family_revoked: bool,
    /// Whether its client has been disabled.
    pub client_disabled: bool,
}

/// A user's standing approval of a client for a set of scopes (`oauthConsent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The user who approved.
    pub user_id: String,
    /// The client approved.
    pub client_id: String,
    /// The approved scopes (RFC 6749 §3.3).
    pub scopes: Scopes,
    /// When consent was first given, in seconds since the Unix epoch.
    pub created_at: i64,
    /// When the consent last changed, in seconds since the Unix epoch.
    pub updated_at: i64,
}

/// A validated authorization request waiting for the user's decision on the consent page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    /// The signed-in user who must decide.
    pub user_id: String,
    /// The browser session the request came from.
    pub session_id: String,
    /// The requesting client.
    pub client_id: String,
    /// The redirect URI as requested, already matched against the client's registration (on
    /// loopback its port may differ from the registered one).
    pub redirect_uri: RedirectUri,
    /// The requested scopes (RFC 6749 §3.3).
    pub scopes: Scopes,
    /// The client's `state` (RFC 6749 §4.1.1), returned unchanged with the answer.
    pub state: Option<String>,
    /// The PKCE S256 code challenge (RFC 7636 §4.2); absent only for a confidential client that
    /// sent none.
    pub code_challenge: Option<String>,
    /// The protected resource (RFC 8707 §2) the tokens will be issued for.
    pub resource: String,
    /// The OIDC `nonce` of the authorization request (OIDC Core §3.1.2.1), if sent.
    pub nonce: Option<String>,
    /// When the user last authenticated (OIDC `auth_time`), in seconds since the Unix epoch.
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
        /// When the winning call rotated it, in seconds since the Unix epoch.
        rotated_at: i64,
        /// The successor's token response, sealed under this token (see
        /// [`crate::secret::seal`]), if it was stored.
        retry_response: Option<String>,
    },
    /// Unrotated, but not of its grant's head generation any more: a sibling issued under the
    /// tolerated-reuse rule ([`crate::RefreshReusePolicy`]) rotated first. Nothing was written.
    Superseded,
}

/// What happened when a superseded refresh token was presented for a tolerated reissue
/// ([`crate::Store::reissue_refresh_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reissue {
    /// The token was of the generation just before its grant's head, within the window: the
    /// new tokens are stored.
    Reissued,
    /// The caller expected the token unrotated, but another call rotated it first; nothing was
    /// written.
    AlreadyRotated {
        /// When the other call rotated it, in seconds since the Unix epoch.
        rotated_at: i64,
        /// The other call's token response, sealed under this token, if it was stored.
        retry_response: Option<String>,
    },
    /// Too old, too late, or the grant is revoked or over: nothing was written; the caller
    /// revokes the grant.
    Refused,
}

/// A key that signs id_tokens (OIDC Core §10.1). The private half is kept only sealed under the
/// operator's key-encryption secret; the public half is published at `jwks_uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// Key id (`kid`): the RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// JWS algorithm: `ES256` or `RS256`.
    pub algorithm: String,
    /// The PKCS#8 private key, encrypted and authenticated (never stored in the clear).
    pub private_key_sealed: String,
    /// The public key as a JSON Web Key (JSON text).
    pub public_jwk: String,
    /// When the key was made, in seconds since the Unix epoch.
    pub created_at: i64,
    /// When a newer key replaced it for signing; it stays published until tokens it signed
    /// have expired.
    pub retired_at: Option<i64>,
}

/// A grant as shown to its user or an operator: one client's live token family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSummary {
    /// The token family.
    pub family_id: String,
    /// The user who approved it.
    pub user_id: String,
    /// The user's email.
    pub user_email: String,
    /// The client it was granted to.
    pub client_id: String,
    /// The client's display name, if it registered one.
    pub client_name: Option<String>,
    /// The client's https logo, if any.
    pub logo_uri: Option<String>,
    /// Scopes granted (RFC 6749 §3.3).
    pub scopes: Scopes,
    /// When the user authorized it, in seconds since the Unix epoch.
    pub created_at: i64,
    /// When tokens were last issued from it (code exchange or refresh).
    pub last_used_at: i64,
    /// The grant's absolute end.
    pub expires_at: i64,
}

/// One entry of the append-only security log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// When it happened, in seconds since the Unix epoch.
    pub at: i64,
    /// What happened, e.g. `sign_in.success`, `token.revoke`, `refresh.reuse_detected`.
    pub kind: String,
    /// The user concerned, if any.
    pub user_id: Option<String>,
    /// The client concerned, if any.
    pub client_id: Option<String>,
    /// The address the request came from, if any.
    pub ip: Option<String>,
    /// Further details as JSON text (never a secret).
    pub detail: String,
}

/// One way a user signs in: a row of Better Auth's `account` table. `provider_id` is
/// `credential` for the email-and-password credential (`account_id` is then the user's id), or
/// the configured id of an identity provider (`account_id` is then the provider's
/// subject for the user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedAccount {
    /// `credential`, or an identity provider's id.
    pub provider_id: String,
    /// The user's identifier at that provider.
    pub account_id: String,
    /// When the account was linked, in seconds since the Unix epoch.
    pub created_at: i64,
}

/// What [`crate::Store::unlink_account`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlink {
    /// The provider's accounts were removed from the user.
    Unlinked,
    /// Nothing changed: it is the user's last way in.
    LastWayIn,
    /// Nothing changed: the user has no account at that provider.
    NotLinked,
}

/// A mail in the outbox ([`crate::Store::put_verification_with_mail`]): rendered and addressed,
/// waiting to be handed to the mail server. It carries a single-use token in its link, so it is
/// a secret like the token: deleted once sent, never logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMail {
    /// Random id of the row.
    pub id: String,
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body, with the link: sealed by the library (AEAD with the key-encryption
    /// secret), since the link carries a token the database otherwise keeps only hashed.
    pub text: String,
    /// The link in the body, sealed likewise.
    pub link: String,
    /// When the token in the link expires: the mail is not sent from then on.
    pub expires_at: i64,
    /// When it was queued.
    pub created_at: i64,
    /// How many times it was claimed for sending, this claim included (0 before the first).
    pub attempts: u32,
}

// Connected accounts (issue 19).

/// The tokens of a connected account as stored: sealed under the vault key `key_id`
/// ([`crate::vault::Keyring`]), never in the clear (SECURITY V1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedTokens {
    /// The id of the vault key both ciphertexts were sealed under.
    pub key_id: String,
    /// The provider's access token, sealed.
    pub access_token_sealed: String,
    /// The provider's refresh token, sealed, when it gave one.
    pub refresh_token_sealed: Option<String>,
    /// The access token's type (`Bearer`).
    pub token_type: String,
    /// When the access token expires (seconds since the Unix epoch); `None` when the provider
    /// did not say (GitHub's OAuth app tokens do not expire).
    pub expires_at: Option<i64>,
    /// The scopes the provider granted, space-separated.
    pub scopes: String,
}

/// Whether a connection's tokens can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// Usable (refreshed when needed).
    Active,
    /// The provider refused a refresh (or the token expired without a refresh token): the
    /// user must connect again.
    ReconnectNeeded,
}

impl ConnectionStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::ReconnectNeeded => "reconnect",
        }
    }

    /// Reads the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Self::Active),
            "reconnect" => Some(Self::ReconnectNeeded),
            _ => None,
        }
    }
}

/// A user's connection to a service (a `[[connections]]` entry): one per user and
/// connection id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// The mcpauth user.
    pub user_id: String,
    /// The configured connection's id (`github`).
    pub connection_id: String,
    /// The sealed tokens.
    pub tokens: SealedTokens,
    /// Usable or waiting for the user to connect again.
    pub status: ConnectionStatus,
    /// Grows with every change of the tokens or status: a refresh is claimed for the
    /// generation its caller saw, so a caller that saw an older one claims nothing
    /// (single-flight, SECURITY V4).
    pub generation: i64,
    /// While a refresh is claimed: until when (a claimer that dies frees it then).
    pub refresh_claimed_until: Option<i64>,
    /// When the user first connected.
    pub created_at: i64,
    /// When the tokens or status last changed.
    pub updated_at: i64,
    /// When a token of this connection was last handed to a tool (to the minute).
    pub last_used_at: Option<i64>,
}

// ----- The console (SECURITY A1) ------------------------------------------------------------

/// Which entries of the security log an operator asks for; every field given narrows the
/// selection (all of them: `AND`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// The kind exactly (`sign_in.failure`), or a family of kinds (`sign_in` matches
    /// `sign_in.success` and `sign_in.failure`).
    pub kind: Option<String>,
    /// The user concerned.
    pub user_id: Option<String>,
    /// The client concerned.
    pub client_id: Option<String>,
    /// The address the request came from, exactly.
    pub ip: Option<String>,
    /// Entries at or after this time (seconds since the Unix epoch).
    pub since: Option<i64>,
    /// Entries before this time.
    pub until: Option<i64>,
}

/// How many security-log entries of one kind fell in one time bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCount {
    /// The bucket's index from the start of the range asked for (0 is the oldest).
    pub bucket: i64,
    /// The entries' kind.
    pub kind: String,
    /// How many.
    pub count: u64,
}

/// What the console's overview counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsoleCounts {
    /// Every user.
    pub users: u64,
    /// Of them, the disabled ones.
    pub disabled_users: u64,
    /// Live grants, as [`crate::Store::grants`] lists them.
    pub live_grants: u64,
    /// Users made admins in the store (`mcpauth user admin`), not counting the configured ones.
    pub stored_admins: u64,
    /// Connected accounts (the token vault), every user's.
    pub connections: u64,
    /// Of them, those whose user must connect again.
    pub connections_reconnect: u64,
}

/// How a client has been used: when tokens last came from one of its grants, and for how many
/// users. A client that never had tokens issued has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUsage {
    /// The client.
    pub client_id: String,
    /// When tokens were last issued to it (code exchange or refresh).
    pub last_used_at: i64,
    /// How many distinct users it has had tokens for.
    pub users: u64,
}
