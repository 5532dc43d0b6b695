//! Decoding rows into the [`mcpauth_core::model`] types, and the column lists that go with it.
//!
//! Every `SELECT` (or `RETURNING`) that feeds one of these functions names its columns through
//! the macros below (macros rather than constants so that `concat!` can build each query as a
//! `&'static str`), keeping each column list next to its decoder. Joined rows prefix the
//! user's columns with `u_` to keep names unique.
//!
//! The decoders are generic over [`DbRow`], so the same code reads SQLite and PostgreSQL rows:
//! text is `TEXT` on both, times are `INTEGER`/`BIGINT` (`i64`), and booleans are `INTEGER`
//! 0/1 on SQLite (decoded by the SQLite backend's own row type) and `BOOLEAN` on PostgreSQL
//! (any sqlx row decodes through [`Column`]'s blanket implementation).
//!
//! Typed fields are parsed here, once, with core's parsers: scopes (`TEXT`, space-delimited)
//! with [`Scopes::parse`], redirect URIs (`TEXT`, or a JSON array of strings for a client's)
//! with [`RedirectUri::parse`], grant types (a JSON array of strings) with
//! [`GrantType::parse`]. A stored value that does not parse is a [`StoreError::Database`]
//! naming its table and column.

use mcpauth_core::model::{
    AccessToken, AuditEvent, AuthorizationCode, Client, Consent, GrantSummary, GrantType,
    RefreshToken, Session, SigningKey, TokenEndpointAuthMethod, TokenFamily, User,
};
use mcpauth_core::{RedirectUri, Scopes, StoreError};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::error::db_err;

/// A row whose column `name` decodes as a `T`.
pub trait Column<T> {
    /// The value of column `name`.
    fn column(&self, name: &str) -> Result<T, StoreError>;
}

impl<R, T> Column<T> for R
where
    R: Row,
    T: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    for<'n> &'n str: ColumnIndex<R>,
{
    fn column(&self, name: &str) -> Result<T, StoreError> {
        self.try_get(name).map_err(db_err)
    }
}

/// A row of either backend: every column type mcpauth stores decodes from it.
pub trait DbRow:
    Column<String> + Column<Option<String>> + Column<i64> + Column<Option<i64>> + Column<bool>
{
}

impl<R> DbRow for R where
    R: Column<String> + Column<Option<String>> + Column<i64> + Column<Option<i64>> + Column<bool>
{
}

/// The value of column `name` of `row`.
pub(crate) fn get<T, R: Column<T>>(row: &R, name: &str) -> Result<T, StoreError> {
    row.column(name)
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("corrupt stored {what}: {detail}"))
}

/// The text column `name` of `row` parsed by `parse`; a value that does not parse is corrupt
/// data, reported as `what` (the table and column).
fn parsed<R: DbRow, T>(
    row: &R,
    name: &str,
    what: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, StoreError> {
    let raw: String = get(row, name)?;
    parse(&raw).ok_or_else(|| corrupt(what, format_args!("{raw:?}")))
}

/// The JSON array of strings in text column `name` of `row`, each item parsed by `parse`.
fn parsed_list<R: DbRow, T>(
    row: &R,
    name: &str,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, StoreError> {
    let raw: String = get(row, name)?;
    let items: Vec<String> = serde_json::from_str(&raw).map_err(|err| corrupt(what, err))?;
    items
        .iter()
        .map(|item| parse(item).ok_or_else(|| corrupt(what, format_args!("{item:?}"))))
        .collect()
}

/// The scopes in column `name` (stored space-delimited, as [`Scopes`] displays them).
fn scopes<R: DbRow>(row: &R, name: &str, what: &str) -> Result<Scopes, StoreError> {
    parsed(row, name, what, |raw| Scopes::parse(raw).ok())
}

/// The redirect URI in column `name`.
fn redirect_uri<R: DbRow>(row: &R, name: &str, what: &str) -> Result<RedirectUri, StoreError> {
    parsed(row, name, what, |raw| RedirectUri::parse(raw).ok())
}

/// User columns aliased with a `u_` prefix, for joins (`u` is the user table's alias).
macro_rules! user_columns_as_u {
    () => {
        "u.id AS u_id, u.name AS u_name, u.email AS u_email, \
     u.email_verified AS u_email_verified, u.image AS u_image, u.created_at AS u_created_at, \
     u.updated_at AS u_updated_at, u.disabled AS u_disabled"
    };
}
pub(crate) use user_columns_as_u;

/// Decodes a user from columns aliased by `user_columns_as_u!`.
pub(crate) fn user_u<R: DbRow>(row: &R) -> Result<User, StoreError> {
    Ok(User {
        id: get(row, "u_id")?,
        name: get(row, "u_name")?,
        email: get(row, "u_email")?,
        email_verified: get(row, "u_email_verified")?,
        image: get(row, "u_image")?,
        created_at: get(row, "u_created_at")?,
        updated_at: get(row, "u_updated_at")?,
        disabled: get(row, "u_disabled")?,
    })
}

macro_rules! session_columns {
    () => {
        "s.id, s.token_hash, s.user_id, s.expires_at, \
     s.created_at, s.auth_time, s.ip_address, s.user_agent"
    };
}
pub(crate) use session_columns;

pub(crate) fn session<R: DbRow>(row: &R) -> Result<Session, StoreError> {
    Ok(Session {
        id: get(row, "id")?,
        token_hash: get(row, "token_hash")?,
        user_id: get(row, "user_id")?,
        expires_at: get(row, "expires_at")?,
        created_at: get(row, "created_at")?,
        auth_time: get(row, "auth_time")?,
        ip_address: get(row, "ip_address")?,
        user_agent: get(row, "user_agent")?,
    })
}

macro_rules! client_columns {
    () => {
        "client_id, client_secret_hash, name, redirect_uris, \
     token_endpoint_auth_method, grant_types, logo_uri, metadata, disabled, skip_consent, \
     registered_dynamically, created_at"
    };
}
pub(crate) use client_columns;

pub(crate) fn client<R: DbRow>(row: &R) -> Result<Client, StoreError> {
    let metadata: String = get(row, "metadata")?;
    Ok(Client {
        client_id: get(row, "client_id")?,
        client_secret_hash: get(row, "client_secret_hash")?,
        name: get(row, "name")?,
        redirect_uris: parsed_list(
            row,
            "redirect_uris",
            "oauthApplication.redirect_uris",
            |uri| RedirectUri::parse(uri).ok(),
        )?,
        token_endpoint_auth_method: parsed(
            row,
            "token_endpoint_auth_method",
            "oauthApplication.token_endpoint_auth_method",
            TokenEndpointAuthMethod::parse,
        )?,
        grant_types: parsed_list(
            row,
            "grant_types",
            "oauthApplication.grant_types",
            GrantType::parse,
        )?,
        logo_uri: get(row, "logo_uri")?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|err| corrupt("oauthApplication.metadata", err))?,
        disabled: get(row, "disabled")?,
        skip_consent: get(row, "skip_consent")?,
        registered_dynamically: get(row, "registered_dynamically")?,
        created_at: get(row, "created_at")?,
    })
}

macro_rules! consent_columns {
    () => {
        "user_id, client_id, scopes, created_at, updated_at"
    };
}
pub(crate) use consent_columns;

pub(crate) fn consent<R: DbRow>(row: &R) -> Result<Consent, StoreError> {
    Ok(Consent {
        user_id: get(row, "user_id")?,
        client_id: get(row, "client_id")?,
        scopes: scopes(row, "scopes", "oauthConsent.scopes")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

macro_rules! code_columns {
    () => {
        "code_hash, client_id, user_id, session_id, redirect_uri, \
     scopes, code_challenge, resource, nonce, auth_time, family_id, expires_at, created_at"
    };
}
pub(crate) use code_columns;

pub(crate) fn code<R: DbRow>(row: &R) -> Result<AuthorizationCode, StoreError> {
    Ok(AuthorizationCode {
        code_hash: get(row, "code_hash")?,
        client_id: get(row, "client_id")?,
        user_id: get(row, "user_id")?,
        session_id: get(row, "session_id")?,
        redirect_uri: redirect_uri(row, "redirect_uri", "oauthAuthorizationCode.redirect_uri")?,
        scopes: scopes(row, "scopes", "oauthAuthorizationCode.scopes")?,
        code_challenge: get(row, "code_challenge")?,
        resource: get(row, "resource")?,
        nonce: get(row, "nonce")?,
        auth_time: get(row, "auth_time")?,
        family_id: get(row, "family_id")?,
        expires_at: get(row, "expires_at")?,
        created_at: get(row, "created_at")?,
    })
}

macro_rules! access_token_columns {
    () => {
        "t.id, t.token_hash, t.family_id, t.client_id, \
     t.user_id, t.scopes, t.audience, t.expires_at, t.created_at"
    };
}
pub(crate) use access_token_columns;

pub(crate) fn access_token<R: DbRow>(row: &R) -> Result<AccessToken, StoreError> {
    Ok(AccessToken {
        id: get(row, "id")?,
        token_hash: get(row, "token_hash")?,
        family_id: get(row, "family_id")?,
        client_id: get(row, "client_id")?,
        user_id: get(row, "user_id")?,
        scopes: scopes(row, "scopes", "oauthAccessToken.scopes")?,
        audience: get(row, "audience")?,
        expires_at: get(row, "expires_at")?,
        created_at: get(row, "created_at")?,
    })
}

macro_rules! refresh_token_columns {
    () => {
        "t.id, t.token_hash, t.family_id, t.client_id, \
     t.user_id, t.scopes, t.resource, t.expires_at, t.created_at, t.rotated_at, t.retry_response"
    };
}
pub(crate) use refresh_token_columns;

pub(crate) fn refresh_token<R: DbRow>(row: &R) -> Result<RefreshToken, StoreError> {
    Ok(RefreshToken {
        id: get(row, "id")?,
        token_hash: get(row, "token_hash")?,
        family_id: get(row, "family_id")?,
        client_id: get(row, "client_id")?,
        user_id: get(row, "user_id")?,
        scopes: scopes(row, "scopes", "oauthRefreshToken.scopes")?,
        resource: get(row, "resource")?,
        expires_at: get(row, "expires_at")?,
        created_at: get(row, "created_at")?,
        rotated_at: get(row, "rotated_at")?,
        retry_response: get(row, "retry_response")?,
    })
}

/// Family columns aliased with an `f_` prefix (`f` is the family table's alias).
macro_rules! family_columns_as_f {
    () => {
        "f.id AS f_id, f.client_id AS f_client_id, \
     f.user_id AS f_user_id, f.scopes AS f_scopes, f.resource AS f_resource, \
     f.created_at AS f_created_at, f.expires_at AS f_expires_at, f.revoked_at AS f_revoked_at"
    };
}
pub(crate) use family_columns_as_f;

pub(crate) fn family_f<R: DbRow>(row: &R) -> Result<TokenFamily, StoreError> {
    Ok(TokenFamily {
        id: get(row, "f_id")?,
        client_id: get(row, "f_client_id")?,
        user_id: get(row, "f_user_id")?,
        scopes: scopes(row, "f_scopes", "oauthTokenFamily.scopes")?,
        resource: get(row, "f_resource")?,
        created_at: get(row, "f_created_at")?,
        expires_at: get(row, "f_expires_at")?,
        revoked_at: get(row, "f_revoked_at")?,
    })
}

macro_rules! grant_columns {
    () => {
        "f.id AS family_id, f.user_id, u.email AS user_email, f.client_id, \
     c.name AS client_name, c.logo_uri, f.scopes, f.created_at, f.last_used_at, f.expires_at"
    };
}
pub(crate) use grant_columns;

pub(crate) fn grant<R: DbRow>(row: &R) -> Result<GrantSummary, StoreError> {
    Ok(GrantSummary {
        family_id: get(row, "family_id")?,
        user_id: get(row, "user_id")?,
        user_email: get(row, "user_email")?,
        client_id: get(row, "client_id")?,
        client_name: get(row, "client_name")?,
        logo_uri: get(row, "logo_uri")?,
        scopes: scopes(row, "scopes", "oauthTokenFamily.scopes")?,
        created_at: get(row, "created_at")?,
        last_used_at: get(row, "last_used_at")?,
        expires_at: get(row, "expires_at")?,
    })
}

macro_rules! signing_key_columns {
    () => {
        "kid, algorithm, private_key_sealed, public_jwk, created_at, retired_at"
    };
}
pub(crate) use signing_key_columns;

pub(crate) fn signing_key<R: DbRow>(row: &R) -> Result<SigningKey, StoreError> {
    Ok(SigningKey {
        kid: get(row, "kid")?,
        algorithm: get(row, "algorithm")?,
        private_key_sealed: get(row, "private_key_sealed")?,
        public_jwk: get(row, "public_jwk")?,
        created_at: get(row, "created_at")?,
        retired_at: get(row, "retired_at")?,
    })
}

macro_rules! audit_columns {
    () => {
        "at, kind, user_id, client_id, ip, detail"
    };
}
pub(crate) use audit_columns;

pub(crate) fn audit_event<R: DbRow>(row: &R) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        at: get(row, "at")?,
        kind: get(row, "kind")?,
        user_id: get(row, "user_id")?,
        client_id: get(row, "client_id")?,
        ip: get(row, "ip")?,
        detail: get(row, "detail")?,
    })
}

// Connected accounts (issue 19).

macro_rules! connection_columns {
    () => {
        "user_id, connection_id, key_id, access_token_sealed, refresh_token_sealed, token_type, \
         expires_at, scopes, status, generation, refresh_claimed_until, created_at, updated_at, \
         last_used_at"
    };
}
pub(crate) use connection_columns;

pub(crate) fn connection<R: DbRow>(
    row: &R,
) -> Result<mcpauth_core::model::ConnectionRecord, StoreError> {
    let status: String = get(row, "status")?;
    Ok(mcpauth_core::model::ConnectionRecord {
        user_id: get(row, "user_id")?,
        connection_id: get(row, "connection_id")?,
        tokens: mcpauth_core::model::SealedTokens {
            key_id: get(row, "key_id")?,
            access_token_sealed: get(row, "access_token_sealed")?,
            refresh_token_sealed: get(row, "refresh_token_sealed")?,
            token_type: get(row, "token_type")?,
            expires_at: get(row, "expires_at")?,
            scopes: get(row, "scopes")?,
        },
        status: mcpauth_core::model::ConnectionStatus::parse(&status)
            .ok_or_else(|| StoreError::Database(format!("mcpauthConnection.status: {status:?}")))?,
        generation: get(row, "generation")?,
        refresh_claimed_until: get(row, "refresh_claimed_until")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        last_used_at: get(row, "last_used_at")?,
    })
}
