//! [`Store`] for [`SqliteStore`].
//!
//! Single-statement operations run on the pool in autocommit mode; SQLite takes the write lock
//! for a writing statement before it reads anything, so these never deadlock. Multi-statement
//! writes run in [`SqliteStore::begin_write`] transactions (`BEGIN IMMEDIATE`). Queries are
//! written with `$n` placeholders and SQL that PostgreSQL accepts as well.

use async_trait::async_trait;
use mcpauth_core::model::{
    AccessToken, AccessTokenGrant, AuditEvent, AuthorizationCode, Client, CodeRedemption, Consent,
    GrantSummary, RefreshToken, Rotation, Session, SigningKey, TokenFamily, User,
};
use mcpauth_core::secret::random_id;
use mcpauth_core::{Store, StoreError};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqliteExecutor, Transaction};

use super::SqliteStore;
use super::rows::{
    self, access_token_columns, client_columns, code_columns, consent_columns, family_columns_as_f,
    refresh_token_columns, session_columns, user_columns_as_u,
};
use crate::error::{conflict_or_db, db_err};

/// The key in `"mcpauthSetting"` that holds the server secret.
const SERVER_SECRET_KEY: &str = "server_secret";

/// Better Auth's provider id for email-and-password credentials.
const CREDENTIAL_PROVIDER: &str = "credential";

/// A list of strings as a JSON array.
fn json_array(items: &[String]) -> String {
    serde_json::Value::from(items).to_string()
}

async fn insert_access_token(
    executor: impl SqliteExecutor<'_>,
    access: &AccessToken,
) -> Result<(), StoreError> {
    sqlx::query(
        r#"INSERT INTO "oauthAccessToken"
               (id, token_hash, family_id, client_id, user_id, scopes, audience, expires_at,
                created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
    )
    .bind(&access.id)
    .bind(&access.token_hash)
    .bind(&access.family_id)
    .bind(&access.client_id)
    .bind(&access.user_id)
    .bind(&access.scopes)
    .bind(&access.audience)
    .bind(access.expires_at)
    .bind(access.created_at)
    .execute(executor)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn insert_refresh_token(
    executor: impl SqliteExecutor<'_>,
    refresh: &RefreshToken,
) -> Result<(), StoreError> {
    sqlx::query(
        r#"INSERT INTO "oauthRefreshToken"
               (id, token_hash, family_id, client_id, user_id, scopes, resource, expires_at,
                created_at, rotated_at, retry_response)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"#,
    )
    .bind(&refresh.id)
    .bind(&refresh.token_hash)
    .bind(&refresh.family_id)
    .bind(&refresh.client_id)
    .bind(&refresh.user_id)
    .bind(&refresh.scopes)
    .bind(&refresh.resource)
    .bind(refresh.expires_at)
    .bind(refresh.created_at)
    .bind(refresh.rotated_at)
    .bind(&refresh.retry_response)
    .execute(executor)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Records that tokens were just issued from a family (for "last used" on grants).
async fn mark_family_used(
    executor: impl SqliteExecutor<'_>,
    family_id: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(r#"UPDATE "oauthTokenFamily" SET last_used_at = $2 WHERE id = $1"#)
        .bind(family_id)
        .bind(at)
        .execute(executor)
        .await
        .map_err(db_err)?;
    Ok(())
}

async fn commit(tx: Transaction<'static, Sqlite>) -> Result<(), StoreError> {
    tx.commit().await.map_err(db_err)
}

fn decode_optional<T>(
    row: Option<SqliteRow>,
    decode: impl FnOnce(&SqliteRow) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    row.as_ref().map(decode).transpose()
}

/// The hot path, run on every protected request: one probe of the unique `token_hash` index,
/// then a primary-key or unique-key lookup per joined table.
pub(super) const ACCESS_TOKEN_GRANT_SQL: &str = concat!(
    "SELECT ",
    access_token_columns!(),
    ", ",
    user_columns_as_u!(),
    r#", f.revoked_at AS family_revoked_at, c.disabled AS client_disabled
       FROM "oauthAccessToken" t
       JOIN "oauthTokenFamily" f ON f.id = t.family_id
       JOIN "user" u ON u.id = t.user_id
       JOIN "oauthApplication" c ON c.client_id = t.client_id
       WHERE t.token_hash = $1"#
);

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        SqliteStore::migrate(self).await
    }

    async fn server_secret(&self, candidate: &str) -> Result<String, StoreError> {
        sqlx::query(
            r#"INSERT INTO "mcpauthSetting" (key, value) VALUES ($1, $2)
               ON CONFLICT (key) DO NOTHING"#,
        )
        .bind(SERVER_SECRET_KEY)
        .bind(candidate)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        sqlx::query_scalar(r#"SELECT value FROM "mcpauthSetting" WHERE key = $1"#)
            .bind(SERVER_SECRET_KEY)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn create_user(&self, user: &User, password_hash: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            r#"INSERT INTO "user"
                   (id, name, email, email_verified, image, created_at, updated_at, disabled)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
        )
        .bind(&user.id)
        .bind(&user.name)
        .bind(&user.email)
        .bind(user.email_verified)
        .bind(&user.image)
        .bind(user.created_at)
        .bind(user.updated_at)
        .bind(user.disabled)
        .execute(&mut *tx)
        .await
        .map_err(|err| conflict_or_db(err, "email already registered"))?;
        sqlx::query(
            r#"INSERT INTO "account"
                   (id, account_id, provider_id, user_id, password, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)"#,
        )
        .bind(random_id())
        .bind(&user.id)
        .bind(CREDENTIAL_PROVIDER)
        .bind(&user.id)
        .bind(password_hash)
        .bind(user.created_at)
        .bind(user.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        commit(tx).await
    }

    async fn user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns_as_u!(),
            r#", a.password
               FROM "user" u
               LEFT JOIN "account" a ON a.user_id = u.id AND a.provider_id = $2
               WHERE u.email = $1"#
        ))
        .bind(email)
        .bind(CREDENTIAL_PROVIDER)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        decode_optional(row, |row| {
            let password: Option<String> = row.try_get("password").map_err(db_err)?;
            Ok((rows::user_u(row)?, password))
        })
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns_as_u!(),
            r#" FROM "user" u WHERE u.id = $1"#
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        decode_optional(row, rows::user_u)
    }

    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO "session"
                   (id, token_hash, user_id, expires_at, created_at, updated_at, auth_time,
                    ip_address, user_agent)
               VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8)"#,
        )
        .bind(&session.id)
        .bind(&session.token_hash)
        .bind(&session.user_id)
        .bind(session.expires_at)
        .bind(session.created_at)
        .bind(session.auth_time)
        .bind(&session.ip_address)
        .bind(&session.user_agent)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn session_by_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(Session, User)>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            ", ",
            user_columns_as_u!(),
            r#" FROM "session" s
                JOIN "user" u ON u.id = s.user_id
                WHERE s.token_hash = $1 AND s.expires_at > $2 AND NOT u.disabled"#
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        decode_optional(row, |row| Ok((rows::session(row)?, rows::user_u(row)?)))
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query(r#"DELETE FROM "session" WHERE token_hash = $1"#)
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn create_client(&self, client: &Client) -> Result<(), StoreError> {
        let redirect_uris = json_array(&client.redirect_uris);
        let grant_types = json_array(&client.grant_types);
        let metadata = client.metadata.to_string();
        sqlx::query(
            r#"INSERT INTO "oauthApplication"
                   (id, client_id, client_secret_hash, name, redirect_uris,
                    token_endpoint_auth_method, grant_types, logo_uri, metadata, disabled,
                    skip_consent, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)"#,
        )
        .bind(random_id())
        .bind(&client.client_id)
        .bind(&client.client_secret_hash)
        .bind(&client.name)
        .bind(redirect_uris)
        .bind(client.token_endpoint_auth_method.as_str())
        .bind(grant_types)
        .bind(&client.logo_uri)
        .bind(metadata)
        .bind(client.disabled)
        .bind(client.skip_consent)
        .bind(client.created_at)
        .execute(&self.pool)
        .await
        .map_err(|err| conflict_or_db(err, "client_id already registered"))?;
        Ok(())
    }

    async fn save_client(&self, client: &Client) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO "oauthApplication"
                   (id, client_id, client_secret_hash, name, redirect_uris,
                    token_endpoint_auth_method, grant_types, logo_uri, metadata, disabled,
                    skip_consent, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
               ON CONFLICT (client_id) DO UPDATE SET
                   client_secret_hash = excluded.client_secret_hash,
                   name = excluded.name,
                   redirect_uris = excluded.redirect_uris,
                   token_endpoint_auth_method = excluded.token_endpoint_auth_method,
                   grant_types = excluded.grant_types,
                   logo_uri = excluded.logo_uri,
                   metadata = excluded.metadata,
                   disabled = excluded.disabled,
                   skip_consent = excluded.skip_consent,
                   updated_at = excluded.updated_at"#,
        )
        .bind(random_id())
        .bind(&client.client_id)
        .bind(&client.client_secret_hash)
        .bind(&client.name)
        .bind(json_array(&client.redirect_uris))
        .bind(client.token_endpoint_auth_method.as_str())
        .bind(json_array(&client.grant_types))
        .bind(&client.logo_uri)
        .bind(client.metadata.to_string())
        .bind(client.disabled)
        .bind(client.skip_consent)
        .bind(client.created_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn client_by_id(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            r#" FROM "oauthApplication" WHERE client_id = $1"#
        ))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        decode_optional(row, rows::client)
    }

    async fn consent(&self, user_id: &str, client_id: &str) -> Result<Option<Consent>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            consent_columns!(),
            r#" FROM "oauthConsent" WHERE user_id = $1 AND client_id = $2"#
        ))
        .bind(user_id)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        decode_optional(row, rows::consent)
    }

    async fn save_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        // A replaced consent keeps its original created_at: it records when the user first
        // approved the client.
        sqlx::query(
            r#"INSERT INTO "oauthConsent"
                   (id, user_id, client_id, scopes, consent_given, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (user_id, client_id) DO UPDATE
               SET scopes = excluded.scopes,
                   consent_given = excluded.consent_given,
                   updated_at = excluded.updated_at"#,
        )
        .bind(random_id())
        .bind(&consent.user_id)
        .bind(&consent.client_id)
        .bind(&consent.scopes)
        .bind(true)
        .bind(consent.created_at)
        .bind(consent.updated_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn put_verification(
        &self,
        identifier: &str,
        value: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO "verification"
                   (id, identifier, value, expires_at, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $5)
               ON CONFLICT (identifier) DO UPDATE
               SET value = excluded.value,
                   expires_at = excluded.expires_at,
                   updated_at = excluded.updated_at"#,
        )
        .bind(random_id())
        .bind(identifier)
        .bind(value)
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn peek_verification(
        &self,
        identifier: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(
            r#"SELECT value FROM "verification" WHERE identifier = $1 AND expires_at > $2"#,
        )
        .bind(identifier)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn take_verification(
        &self,
        identifier: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        // Deleting unconditionally also clears an expired value; only the caller whose DELETE
        // removed the row sees it.
        let row: Option<(String, i64)> = sqlx::query_as(
            r#"DELETE FROM "verification" WHERE identifier = $1 RETURNING value, expires_at"#,
        )
        .bind(identifier)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.and_then(|(value, expires_at)| (expires_at > now).then_some(value)))
    }

    async fn create_code(
        &self,
        code: &AuthorizationCode,
        family: &TokenFamily,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            r#"INSERT INTO "oauthTokenFamily"
                   (id, client_id, user_id, scopes, resource, created_at, expires_at, revoked_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
        )
        .bind(&family.id)
        .bind(&family.client_id)
        .bind(&family.user_id)
        .bind(&family.scopes)
        .bind(&family.resource)
        .bind(family.created_at)
        .bind(family.expires_at)
        .bind(family.revoked_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            r#"INSERT INTO "oauthAuthorizationCode"
                   (code_hash, client_id, user_id, session_id, redirect_uri, scopes,
                    code_challenge, resource, nonce, auth_time, family_id, expires_at,
                    created_at, used_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL)"#,
        )
        .bind(&code.code_hash)
        .bind(&code.client_id)
        .bind(&code.user_id)
        .bind(&code.session_id)
        .bind(&code.redirect_uri)
        .bind(&code.scopes)
        .bind(&code.code_challenge)
        .bind(&code.resource)
        .bind(&code.nonce)
        .bind(code.auth_time)
        .bind(&code.family_id)
        .bind(code.expires_at)
        .bind(code.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        commit(tx).await
    }

    async fn consume_code(&self, code_hash: &str, now: i64) -> Result<CodeRedemption, StoreError> {
        // One conditional statement: of concurrent callers exactly one sees used_at IS NULL.
        let redeemed = sqlx::query(concat!(
            r#"UPDATE "oauthAuthorizationCode" SET used_at = $2
               WHERE code_hash = $1 AND used_at IS NULL
               RETURNING "#,
            code_columns!()
        ))
        .bind(code_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        if let Some(row) = redeemed {
            return Ok(CodeRedemption::Redeemed(Box::new(rows::code(&row)?)));
        }

        let family_id: Option<String> = sqlx::query_scalar(
            r#"SELECT family_id FROM "oauthAuthorizationCode" WHERE code_hash = $1"#,
        )
        .bind(code_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(family_id) = family_id else {
            return Ok(CodeRedemption::Unknown);
        };
        // RFC 6749 §4.1.2: a code used twice revokes what it was exchanged for.
        revoke_family(&self.pool, &family_id, now).await?;
        tracing::warn!(family_id = %family_id, "authorization code replayed; token family revoked");
        Ok(CodeRedemption::Replayed)
    }

    async fn issue_tokens(
        &self,
        access: &AccessToken,
        refresh: Option<&RefreshToken>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_access_token(&mut *tx, access).await?;
        if let Some(refresh) = refresh {
            insert_refresh_token(&mut *tx, refresh).await?;
        }
        mark_family_used(&mut *tx, &access.family_id, access.created_at).await?;
        commit(tx).await
    }

    async fn access_token(&self, token_hash: &str) -> Result<Option<AccessTokenGrant>, StoreError> {
        let row = sqlx::query(ACCESS_TOKEN_GRANT_SQL)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        decode_optional(row, |row| {
            let family_revoked_at: Option<i64> =
                row.try_get("family_revoked_at").map_err(db_err)?;
            Ok(AccessTokenGrant {
                token: rows::access_token(row)?,
                user: rows::user_u(row)?,
                family_revoked: family_revoked_at.is_some(),
                client_disabled: row.try_get("client_disabled").map_err(db_err)?,
            })
        })
    }

    async fn refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshToken, TokenFamily)>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            refresh_token_columns!(),
            ", ",
            family_columns_as_f!(),
            r#" FROM "oauthRefreshToken" t
                JOIN "oauthTokenFamily" f ON f.id = t.family_id
                WHERE t.token_hash = $1"#
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        decode_optional(row, |row| {
            Ok((rows::refresh_token(row)?, rows::family_f(row)?))
        })
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        now: i64,
        retry_response: &str,
        access: &AccessToken,
        refresh: &RefreshToken,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.begin_write().await?;
        let rotated = sqlx::query(
            r#"UPDATE "oauthRefreshToken" SET rotated_at = $2, retry_response = $3
               WHERE token_hash = $1 AND rotated_at IS NULL"#,
        )
        .bind(old_hash)
        .bind(now)
        .bind(retry_response)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();

        if rotated == 0 {
            // Lost the race (or the token was rotated long ago): report the winner's rotation
            // and write nothing.
            let row: Option<(Option<i64>, Option<String>)> = sqlx::query_as(
                r#"SELECT rotated_at, retry_response FROM "oauthRefreshToken"
                   WHERE token_hash = $1"#,
            )
            .bind(old_hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.rollback().await.map_err(db_err)?;
            return match row {
                Some((Some(rotated_at), retry_response)) => Ok(Rotation::AlreadyRotated {
                    rotated_at,
                    retry_response,
                }),
                // Unreachable inside the transaction: the UPDATE only skips rotated rows.
                Some((None, _)) => Err(StoreError::Database(
                    "refresh token neither rotated nor rotatable".to_owned(),
                )),
                // Gone since the caller looked it up (its user, client or family was deleted).
                None => Err(StoreError::Conflict(
                    "the refresh token no longer exists".to_owned(),
                )),
            };
        }

        insert_access_token(&mut *tx, access).await?;
        insert_refresh_token(&mut *tx, refresh).await?;
        mark_family_used(&mut *tx, &access.family_id, access.created_at).await?;
        commit(tx).await?;
        Ok(Rotation::Rotated)
    }

    async fn revoke_family(&self, family_id: &str, now: i64) -> Result<(), StoreError> {
        revoke_family(&self.pool, family_id, now).await
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        const STATEMENTS: &[&str] = &[
            r#"DELETE FROM "session" WHERE expires_at <= $1"#,
            r#"DELETE FROM "verification" WHERE expires_at <= $1"#,
            r#"DELETE FROM "oauthAccessToken" WHERE expires_at <= $1"#,
            r#"DELETE FROM "oauthAuthorizationCode" WHERE expires_at <= $1 - 86400"#,
            r#"DELETE FROM "oauthTokenFamily" WHERE expires_at <= $1"#,
        ];
        let mut tx = self.begin_write().await?;
        let mut removed = 0;
        for &statement in STATEMENTS {
            removed += sqlx::query(statement)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
        }
        tx.commit().await.map_err(db_err)?;
        Ok(removed)
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns_as_u!(),
            r#" FROM "user" u ORDER BY u.created_at, u.id"#
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::user_u).collect()
    }

    async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(r#"UPDATE "user" SET disabled = $2, updated_at = $3 WHERE id = $1"#)
            .bind(user_id)
            .bind(disabled)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user(&self, user_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(r#"DELETE FROM "user" WHERE id = $1"#)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO "account"
                   (id, account_id, provider_id, user_id, password, created_at, updated_at)
               VALUES ($1, $2, $3, $2, $4, $5, $5)
               ON CONFLICT (provider_id, account_id) DO UPDATE SET
                   password = excluded.password, updated_at = excluded.updated_at"#,
        )
        .bind(random_id())
        .bind(user_id)
        .bind(CREDENTIAL_PROVIDER)
        .bind(password_hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn user_sessions(&self, user_id: &str, now: i64) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            r#" FROM "session" s WHERE s.user_id = $1 AND s.expires_at > $2
                ORDER BY s.created_at DESC, s.id"#
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::session).collect()
    }

    async fn delete_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let done =
            sqlx::query(r#"DELETE FROM "session" WHERE user_id = $1 AND ($2 IS NULL OR id <> $2)"#)
                .bind(user_id)
                .bind(keep)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            r#" FROM "oauthApplication" ORDER BY created_at, client_id"#
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::client).collect()
    }

    async fn set_client_disabled(
        &self,
        client_id: &str,
        disabled: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            r#"UPDATE "oauthApplication" SET disabled = $2, updated_at = $3 WHERE client_id = $1"#,
        )
        .bind(client_id)
        .bind(disabled)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(r#"DELETE FROM "oauthApplication" WHERE client_id = $1"#)
            .bind(client_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn grants(
        &self,
        user_id: Option<&str>,
        client_id: Option<&str>,
        now: i64,
    ) -> Result<Vec<GrantSummary>, StoreError> {
        let rows = sqlx::query(
            r#"SELECT f.id, f.user_id, u.email, f.client_id, c.name, c.logo_uri, f.scopes,
                      f.created_at, f.last_used_at, f.expires_at
               FROM "oauthTokenFamily" f
               JOIN "user" u ON u.id = f.user_id
               JOIN "oauthApplication" c ON c.client_id = f.client_id
               WHERE f.revoked_at IS NULL AND f.last_used_at IS NOT NULL AND f.expires_at > $3
                 AND ($1 IS NULL OR f.user_id = $1) AND ($2 IS NULL OR f.client_id = $2)
               ORDER BY f.created_at DESC, f.id"#,
        )
        .bind(user_id)
        .bind(client_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(GrantSummary {
                    family_id: row.try_get(0).map_err(db_err)?,
                    user_id: row.try_get(1).map_err(db_err)?,
                    user_email: row.try_get(2).map_err(db_err)?,
                    client_id: row.try_get(3).map_err(db_err)?,
                    client_name: row.try_get(4).map_err(db_err)?,
                    logo_uri: row.try_get(5).map_err(db_err)?,
                    scopes: row.try_get(6).map_err(db_err)?,
                    created_at: row.try_get(7).map_err(db_err)?,
                    last_used_at: row.try_get(8).map_err(db_err)?,
                    expires_at: row.try_get(9).map_err(db_err)?,
                })
            })
            .collect()
    }

    async fn revoke_grants(
        &self,
        user_id: &str,
        client_id: Option<&str>,
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let revoked = sqlx::query(
            r#"UPDATE "oauthTokenFamily" SET revoked_at = $3
               WHERE user_id = $1 AND ($2 IS NULL OR client_id = $2) AND revoked_at IS NULL
                 AND last_used_at IS NOT NULL"#,
        )
        .bind(user_id)
        .bind(client_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        // Families of codes not yet exchanged die too, silently: their codes must not work.
        sqlx::query(
            r#"UPDATE "oauthTokenFamily" SET revoked_at = $3
               WHERE user_id = $1 AND ($2 IS NULL OR client_id = $2) AND revoked_at IS NULL"#,
        )
        .bind(user_id)
        .bind(client_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            r#"DELETE FROM "oauthConsent" WHERE user_id = $1 AND ($2 IS NULL OR client_id = $2)"#,
        )
        .bind(user_id)
        .bind(client_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        commit(tx).await?;
        Ok(revoked)
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        let rows = sqlx::query(
            r#"SELECT kid, algorithm, private_key_sealed, public_jwk, created_at, retired_at
               FROM "oauthSigningKey" ORDER BY created_at DESC, kid"#,
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(SigningKey {
                    kid: row.try_get(0).map_err(db_err)?,
                    algorithm: row.try_get(1).map_err(db_err)?,
                    private_key_sealed: row.try_get(2).map_err(db_err)?,
                    public_jwk: row.try_get(3).map_err(db_err)?,
                    created_at: row.try_get(4).map_err(db_err)?,
                    retired_at: row.try_get(5).map_err(db_err)?,
                })
            })
            .collect()
    }

    async fn rotate_signing_key(&self, key: &SigningKey, now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(r#"UPDATE "oauthSigningKey" SET retired_at = $1 WHERE retired_at IS NULL"#)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            r#"INSERT INTO "oauthSigningKey"
                   (kid, algorithm, private_key_sealed, public_jwk, created_at, retired_at)
               VALUES ($1, $2, $3, $4, $5, $6)"#,
        )
        .bind(&key.kid)
        .bind(&key.algorithm)
        .bind(&key.private_key_sealed)
        .bind(&key.public_jwk)
        .bind(key.created_at)
        .bind(key.retired_at)
        .execute(&mut *tx)
        .await
        .map_err(|err| conflict_or_db(err, "a signing key with this kid exists"))?;
        commit(tx).await
    }

    async fn prune_signing_keys(&self, retired_before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            r#"DELETE FROM "oauthSigningKey" WHERE retired_at IS NOT NULL AND retired_at < $1"#,
        )
        .bind(retired_before)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO "auditLog" (at, kind, user_id, client_id, ip, detail)
               VALUES ($1, $2, $3, $4, $5, $6)"#,
        )
        .bind(event.at)
        .bind(&event.kind)
        .bind(&event.user_id)
        .bind(&event.client_id)
        .bind(&event.ip)
        .bind(&event.detail)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn audit_events(&self, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            r#"SELECT at, kind, user_id, client_id, ip, detail FROM "auditLog"
               ORDER BY id DESC LIMIT $1"#,
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(AuditEvent {
                    at: row.try_get(0).map_err(db_err)?,
                    kind: row.try_get(1).map_err(db_err)?,
                    user_id: row.try_get(2).map_err(db_err)?,
                    client_id: row.try_get(3).map_err(db_err)?,
                    ip: row.try_get(4).map_err(db_err)?,
                    detail: row.try_get(5).map_err(db_err)?,
                })
            })
            .collect()
    }
}

/// Marks a family revoked, keeping the first revocation time. Every access token and refresh
/// token of the family is checked against it on use, so this one row kills them all.
async fn revoke_family(
    executor: impl SqliteExecutor<'_>,
    family_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        r#"UPDATE "oauthTokenFamily" SET revoked_at = $2
           WHERE id = $1 AND revoked_at IS NULL"#,
    )
    .bind(family_id)
    .bind(now)
    .execute(executor)
    .await
    .map_err(db_err)?;
    Ok(())
}
