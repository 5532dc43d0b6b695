//! Decoding rows into the [`mcpauth_core::model`] types, and the column lists that go with it.
//!
//! Every `SELECT` (or `RETURNING`) that feeds one of these functions names its columns through
//! the macros below (macros rather than constants so that `concat!` can build each query as a
//! `&'static str`), keeping each column list next to its decoder. Joined rows prefix the
//! user's columns with `u_` to keep names unique.
//!
//! The decoders are generic over [`DbRow`], so the same code reads SQLite and PostgreSQL rows:
//! text is `TEXT` on both, times are `INTEGER`/`BIGINT` (`i64`), and booleans are `INTEGER`
//! 0/1 on SQLite and `BOOLEAN` on PostgreSQL, both of which sqlx decodes as `bool`.

use mcpauth_core::StoreError;
use mcpauth_core::model::{
    AccessToken, AuditEvent, AuthorizationCode, Client, Consent, GrantSummary, RefreshToken,
    Session, SigningKey, TokenEndpointAuthMethod, TokenFamily, User,
};
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
     created_at"
    };
}
pub(crate) use client_columns;

pub(crate) fn client<R: DbRow>(row: &R) -> Result<Client, StoreError> {
    let redirect_uris: String = get(row, "redirect_uris")?;
    let grant_types: String = get(row, "grant_types")?;
    let metadata: String = get(row, "metadata")?;
    let method: String = get(row, "token_endpoint_auth_method")?;
    Ok(Client {
        client_id: get(row, "client_id")?,
        client_secret_hash: get(row, "client_secret_hash")?,
        name: get(row, "name")?,
        redirect_uris: serde_json::from_str(&redirect_uris)
            .map_err(|err| corrupt("client redirect_uris", err))?,
        token_endpoint_auth_method: TokenEndpointAuthMethod::parse(&method)
            .ok_or_else(|| corrupt("client token_endpoint_auth_method", &method))?,
        grant_types: serde_json::from_str(&grant_types)
            .map_err(|err| corrupt("client grant_types", err))?,
        logo_uri: get(row, "logo_uri")?,
        metadata: serde_json::from_str(&metadata).map_err(|err| corrupt("client metadata", err))?,
        disabled: get(row, "disabled")?,
        skip_consent: get(row, "skip_consent")?,
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
        scopes: get(row, "scopes")?,
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
        redirect_uri: get(row, "redirect_uri")?,
        scopes: get(row, "scopes")?,
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
        scopes: get(row, "scopes")?,
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
        scopes: get(row, "scopes")?,
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
        scopes: get(row, "f_scopes")?,
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
        scopes: get(row, "scopes")?,
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
