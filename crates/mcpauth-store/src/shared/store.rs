//! [`Store`] for [`SqlStore`], once for every [`Backend`].
//!
//! Every operation is one closure handed to the backend ([`SqlStore::read`],
//! [`SqlStore::write`], or a single-statement shortcut such as [`SqlStore::execute`]): the
//! closure owns copies of the arguments it needs, runs its statements on one connection, in
//! autocommit mode or in a transaction it begins and commits itself. A multi-statement write
//! reads:
//!
//! ```text
//! async fn do_it(&self, thing: &Thing, now: i64) -> Result<(), StoreError> {
//!     let thing = thing.clone();            // the closure owns what it uses...
//!     self.write(move |tx| {
//!         Box::pin(async move {
//!             let thing = &thing;           // ...and the body borrows it as before
//!             tx.begin().await?;            // BEGIN IMMEDIATE on SQLite, BEGIN on PostgreSQL
//!             tx.execute(query("…").bind(&thing.id).bind(now)).await?;
//!             tx.commit().await             // left open (an error on the way): rolled back
//!         })
//!     })
//!     .await
//! }
//! ```
//!
//! On SQLite the whole closure runs on the writer thread in one go: one hand-off per operation,
//! not per statement. Reads that need several statements use [`SqlStore::read`] likewise. Every statement is written with `$n` placeholders
//! and SQL both dialects accept (`ON CONFLICT … DO UPDATE`, `RETURNING`, `excluded.`).
//!
//! The atomicity the trait promises comes from single conditional statements, which both
//! databases evaluate against the latest committed row:
//!
//! - SQLite takes the database's write lock before a writing statement reads anything, and
//!   write transactions begin `IMMEDIATE`, so writers queue on the busy timeout and never
//!   deadlock upgrading a read lock.
//! - PostgreSQL (READ COMMITTED) makes a conditional `UPDATE`/`DELETE` that meets a row locked
//!   by a concurrent transaction wait for it, then re-evaluate its `WHERE` on the committed
//!   version: the loser of a race finds `used_at`/`rotated_at` set (or the row gone) and
//!   changes nothing, and its next statement, on a fresh snapshot, sees what the winner
//!   committed. Unique-key races end in a unique violation (SQLSTATE 23505) for the loser,
//!   reported as [`StoreError::Conflict`] where the trait promises it; upserts
//!   (`ON CONFLICT … DO UPDATE`) never fail that way.

use async_trait::async_trait;
use mcpauth_core::model::{
    AccessToken, AccessTokenGrant, AuditCount, AuditEvent, AuditFilter, AuthorizationCode, Client,
    ClientDocument, ClientUsage, CodeRedemption, ConnectionRecord, ConnectionStatus, Consent,
    ConsoleCounts, GrantSummary, LinkedAccount, OutboxMail, RefreshToken, Reissue, Rotation,
    SealedTokens, Session, SigningKey, TokenFamily, Unlink, User,
};
use mcpauth_core::secret::random_id;
use mcpauth_core::{RedirectUri, Store, StoreError};

use super::rows::{
    self, DbRow, access_token_columns, audit_columns, client_columns, code_columns,
    connection_columns, consent_columns, family_columns_as_f, get, grant_columns,
    refresh_token_columns, session_columns, signing_key_columns, user_columns_as_u,
};
use super::{Backend, Conn, Query, SqlStore, query};

/// The key in `"mcpauthSetting"` that holds the server secret.
const SERVER_SECRET_KEY: &str = "server_secret";

/// `text` with LIKE's wildcards (`%`, `_`) and its escape character (`\`) escaped, so that a
/// pattern made from it matches them literally (used with `ESCAPE '\'`).
fn like_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Better Auth's provider id for email-and-password credentials.
const CREDENTIAL_PROVIDER: &str = "credential";

/// A list of strings as a JSON array.
fn json_array<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    serde_json::Value::from_iter(items).to_string()
}

/// The INSERT of a client, bound by [`insert_client`].
macro_rules! insert_client_sql {
    () => {
        r#"INSERT INTO "oauthApplication"
               (id, client_id, client_secret_hash, name, redirect_uris,
                token_endpoint_auth_method, grant_types, logo_uri, metadata, disabled,
                skip_consent, registered_dynamically, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $13, $12, $12)"#
    };
}

/// Registers a new client.
const INSERT_CLIENT: &str = insert_client_sql!();

/// Registers a client, or replaces everything but its creation time when the client id exists.
const UPSERT_CLIENT: &str = concat!(
    insert_client_sql!(),
    r#"
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
               registered_dynamically = excluded.registered_dynamically,
               updated_at = excluded.updated_at"#
);

/// Stores a client described by a metadata document: its metadata changes with the document,
/// while its creation time, `disabled` flag (an operator's decision) and secret (it has none)
/// stay.
const UPSERT_DOCUMENT_CLIENT: &str = concat!(
    insert_client_sql!(),
    r#"
           ON CONFLICT (client_id) DO UPDATE SET
               name = excluded.name,
               redirect_uris = excluded.redirect_uris,
               token_endpoint_auth_method = excluded.token_endpoint_auth_method,
               grant_types = excluded.grant_types,
               logo_uri = excluded.logo_uri,
               metadata = excluded.metadata,
               skip_consent = excluded.skip_consent,
               updated_at = excluded.updated_at"#
);

/// `client`, bound to `sql` ([`INSERT_CLIENT`] or [`UPSERT_CLIENT`]). Redirect URIs and grant
/// types are stored as JSON arrays of their strings.
fn insert_client<'a>(sql: &'static str, client: &'a Client) -> Query<'a> {
    query(sql)
        .bind(random_id())
        .bind(&client.client_id)
        .bind(&client.client_secret_hash)
        .bind(&client.name)
        .bind(json_array(
            client.redirect_uris.iter().map(RedirectUri::as_str),
        ))
        .bind(client.token_endpoint_auth_method.as_str())
        .bind(json_array(client.grant_types.iter().map(|g| g.as_str())))
        .bind(&client.logo_uri)
        .bind(client.metadata.to_string())
        .bind(client.disabled)
        .bind(client.skip_consent)
        .bind(client.created_at)
        .bind(client.registered_dynamically)
}

/// A new row of `"user"`; an address that already has one is a conflict.
fn insert_user(user: &User) -> Query<'_> {
    query(
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
    .on_unique_violation("email already registered")
}

/// A row of `"account"` linking an account to a user (no password).
fn insert_account<'a>(
    user_id: &'a str,
    provider_id: &'a str,
    account_id: &'a str,
    now: i64,
) -> Query<'a> {
    query(
        r#"INSERT INTO "account"
               (id, account_id, provider_id, user_id, password, created_at, updated_at)
           VALUES ($1, $2, $3, $4, NULL, $5, $5)"#,
    )
    .bind(random_id())
    .bind(account_id)
    .bind(provider_id)
    .bind(user_id)
    .bind(now)
    .on_unique_violation("account already linked")
}

fn insert_access_token(access: &AccessToken) -> Query<'_> {
    query(
        r#"INSERT INTO "oauthAccessToken"
               (id, token_hash, family_id, client_id, user_id, scopes, audience, expires_at,
                created_at, dpop_jkt)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"#,
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
    .bind(&access.dpop_jkt)
}

/// A new refresh token is of its family's head generation: 0 at the code exchange, the new
/// head after a rotation advanced it, the head for a tolerated reissue.
fn insert_refresh_token(refresh: &RefreshToken) -> Query<'_> {
    query(
        r#"INSERT INTO "oauthRefreshToken"
               (id, token_hash, family_id, client_id, user_id, scopes, resource, expires_at,
                created_at, rotated_at, retry_response, generation, dpop_jkt)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                   (SELECT generation FROM "oauthTokenFamily" WHERE id = $3), $12)"#,
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
    .bind(&refresh.dpop_jkt)
}

fn insert_audit(event: &AuditEvent) -> Query<'_> {
    query(concat!(
        r#"INSERT INTO "auditLog" ("#,
        audit_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(event.at)
    .bind(&event.kind)
    .bind(&event.user_id)
    .bind(&event.client_id)
    .bind(&event.ip)
    .bind(&event.detail)
}

/// Stores a user's password hash: their credential account, created or updated.
fn upsert_password<'a>(user_id: &'a str, password_hash: &'a str, now: i64) -> Query<'a> {
    query(
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
}

/// Records that tokens were just issued from a family (for "last used" on grants).
fn mark_family_used(family_id: &str, at: i64) -> Query<'_> {
    query(r#"UPDATE "oauthTokenFamily" SET last_used_at = $2 WHERE id = $1"#)
        .bind(family_id)
        .bind(at)
}

/// Marks a family revoked, keeping the first revocation time. Every access token and refresh
/// token of the family is checked against it on use, so this one row kills them all.
fn revoke_family(family_id: &str, now: i64) -> Query<'_> {
    query(
        r#"UPDATE "oauthTokenFamily" SET revoked_at = $2
           WHERE id = $1 AND revoked_at IS NULL"#,
    )
    .bind(family_id)
    .bind(now)
}

/// Announces that access tokens may have ended before their expiry (see
/// [`Store::revocation_epoch`]). Every revoking transaction runs it first, so that on PostgreSQL
/// they all take the counter's row lock before any other, in the same order.
fn bump_revocation_epoch<'a>() -> Query<'a> {
    query(r#"UPDATE "mcpauthRevocationEpoch" SET epoch = epoch + 1 WHERE id = 1"#)
}

/// Revokes a user's grants (all, or one client's) and forgets the matching consents, inside
/// `tx`, moving the revocation epoch; returns how many grants that had issued tokens were
/// revoked.
async fn revoke_grants_in<C: Conn>(
    tx: &mut C,
    user_id: &str,
    client_id: Option<&str>,
    now: i64,
) -> Result<u64, StoreError> {
    tx.execute(bump_revocation_epoch()).await?;
    let revoked = tx
        .execute(
            query(
                r#"UPDATE "oauthTokenFamily" SET revoked_at = $3
                       WHERE user_id = $1 AND ($2 IS NULL OR client_id = $2)
                         AND revoked_at IS NULL AND last_used_at IS NOT NULL"#,
            )
            .bind(user_id)
            .bind(client_id)
            .bind(now),
        )
        .await?;
    // Families of codes not yet exchanged die too, silently: their codes must not work.
    tx.execute(
        query(
            r#"UPDATE "oauthTokenFamily" SET revoked_at = $3
                   WHERE user_id = $1 AND ($2 IS NULL OR client_id = $2) AND revoked_at IS NULL"#,
        )
        .bind(user_id)
        .bind(client_id)
        .bind(now),
    )
    .await?;
    tx.execute(
        query(
            r#"DELETE FROM "oauthConsent"
                   WHERE user_id = $1 AND ($2 IS NULL OR client_id = $2)"#,
        )
        .bind(user_id)
        .bind(client_id),
    )
    .await?;
    Ok(revoked)
}

/// Runs one statement that may end tokens early, after moving the revocation epoch, in one
/// transaction; true when it changed exactly one row. `disable` and delete statements of users
/// and clients go through here (enabling moves no epoch: nothing ends early). `first` runs
/// before it, in the same transaction: the deletion of the access tokens of a user or client
/// being deleted (access token rows have no foreign keys to cascade along, migration 0014).
async fn revoking_change<B: Backend>(
    store: &SqlStore<B>,
    first: Option<Query<'_>>,
    change: Query<'_>,
    revokes: bool,
) -> Result<bool, StoreError> {
    let first = first.map(Query::into_owned);
    let change = change.into_owned();
    store
        .write(move |c| {
            Box::pin(async move {
                c.begin().await?;
                if revokes {
                    c.execute(bump_revocation_epoch()).await?;
                }
                if let Some(first) = first {
                    c.execute(first).await?;
                }
                let changed = c.execute(change).await?;
                c.commit().await?;
                Ok(changed == 1)
            })
        })
        .await
}

/// Stores newly issued tokens, in the caller's transaction, and marks their family used.
async fn store_tokens<C: Conn>(
    tx: &mut C,
    access: &AccessToken,
    refresh: Option<&RefreshToken>,
) -> Result<(), StoreError> {
    tx.execute(insert_access_token(access)).await?;
    if let Some(refresh) = refresh {
        tx.execute(insert_refresh_token(refresh)).await?;
    }
    tx.execute(mark_family_used(&access.family_id, access.created_at))
        .await?;
    Ok(())
}

/// Marks an unrotated refresh token rotated with `retry_response`, in the caller's
/// transaction; its family and generation when this call marked it, `None` when it was rotated
/// already (or is gone). The conditional UPDATE decides the single winner of concurrent calls
/// (and, on PostgreSQL, takes the row lock that makes the others wait for the winner's commit).
async fn spend_refresh_token<C: Conn>(
    tx: &mut C,
    old_hash: &str,
    now: i64,
    retry_response: &str,
) -> Result<Option<(String, i64)>, StoreError> {
    let row = tx
        .fetch_optional(
            query(
                r#"UPDATE "oauthRefreshToken" SET rotated_at = $2, retry_response = $3
                   WHERE token_hash = $1 AND rotated_at IS NULL
                   RETURNING family_id, generation"#,
            )
            .bind(old_hash)
            .bind(now)
            .bind(retry_response),
        )
        .await?;
    decode_optional(row, family_and_generation)
}

fn family_and_generation<R: DbRow>(row: &R) -> Result<(String, i64), StoreError> {
    Ok((get(row, "family_id")?, get(row, "generation")?))
}

/// When a refresh token was rotated and the answer sealed then, as committed; `None` when the
/// token is gone.
async fn earlier_rotation<C: Conn>(
    tx: &mut C,
    old_hash: &str,
) -> Result<Option<(Option<i64>, Option<String>)>, StoreError> {
    let row = tx
        .fetch_optional(
            query(
                r#"SELECT rotated_at, retry_response FROM "oauthRefreshToken"
                   WHERE token_hash = $1"#,
            )
            .bind(old_hash),
        )
        .await?;
    decode_optional(row, |row| {
        Ok((get(row, "rotated_at")?, get(row, "retry_response")?))
    })
}

/// Stores a verification value, replacing the one under the same identifier.
fn upsert_verification<'a>(
    identifier: &'a str,
    value: &'a str,
    expires_at: i64,
    now: i64,
) -> Query<'a> {
    query(
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
}

fn decode_optional<R: DbRow, T>(
    row: Option<R>,
    decode: impl FnOnce(&R) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    row.as_ref().map(decode).transpose()
}

fn decode_all<R: DbRow, T>(
    rows: Vec<R>,
    decode: impl Fn(&R) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(decode).collect()
}

/// The hot path, run on every protected request: one probe of the unique `token_hash` index,
/// then a primary-key or unique-key lookup per joined table.
pub(crate) const ACCESS_TOKEN_GRANT_SQL: &str = concat!(
    "SELECT ",
    access_token_columns!(),
    ", ",
    user_columns_as_u!(),
    r#", f.revoked_at AS family_revoked_at, c.disabled AS client_disabled
       FROM "oauthAccessToken" t
       JOIN "oauthTokenFamily" f ON f.id = t.family_id
       LEFT JOIN "user" u ON u.id = t.user_id
       JOIN "oauthApplication" c ON c.client_id = t.client_id
       WHERE t.token_hash = $1"#
);

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    async fn migrate(&self) -> Result<(), StoreError> {
        SqlStore::migrate(self).await
    }

    async fn server_secret(&self, candidate: &str) -> Result<String, StoreError> {
        self.execute(
            query(
                r#"INSERT INTO "mcpauthSetting" (key, value) VALUES ($1, $2)
                   ON CONFLICT (key) DO NOTHING"#,
            )
            .bind(SERVER_SECRET_KEY)
            .bind(candidate),
        )
        .await?;
        let row = self
            .fetch_optional(
                query(r#"SELECT value FROM "mcpauthSetting" WHERE key = $1"#)
                    .bind(SERVER_SECRET_KEY),
            )
            .await?
            .ok_or_else(|| StoreError::Database("the server secret vanished".to_owned()))?;
        get(&row, "value")
    }

    async fn create_user(&self, user: &User, password_hash: &str) -> Result<(), StoreError> {
        let user = user.clone();
        let password_hash = password_hash.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let user = &user;
                let password_hash = password_hash.as_str();
                tx.begin().await?;
                tx.execute(insert_user(user)).await?;
                tx.execute(
                    query(
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
                    .bind(user.updated_at),
                )
                .await?;
                tx.commit().await
            })
        })
        .await
    }

    async fn user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        let row = self
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    user_columns_as_u!(),
                    r#", a.password
                       FROM "user" u
                       LEFT JOIN "account" a ON a.user_id = u.id AND a.provider_id = $2
                       WHERE u.email = $1"#
                ))
                .bind(email)
                .bind(CREDENTIAL_PROVIDER),
            )
            .await?;
        decode_optional(row, |row| Ok((rows::user_u(row)?, get(row, "password")?)))
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row = self
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    user_columns_as_u!(),
                    r#" FROM "user" u WHERE u.id = $1"#
                ))
                .bind(id),
            )
            .await?;
        decode_optional(row, rows::user_u)
    }

    async fn user_by_account(
        &self,
        provider_id: &str,
        account_id: &str,
    ) -> Result<Option<User>, StoreError> {
        let row = self
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    user_columns_as_u!(),
                    r#" FROM "account" a JOIN "user" u ON u.id = a.user_id
                        WHERE a.provider_id = $1 AND a.account_id = $2"#
                ))
                .bind(provider_id)
                .bind(account_id),
            )
            .await?;
        decode_optional(row, rows::user_u)
    }

    async fn create_user_with_account(
        &self,
        user: &User,
        provider_id: &str,
        account_id: &str,
    ) -> Result<(), StoreError> {
        let user = user.clone();
        let provider_id = provider_id.to_owned();
        let account_id = account_id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let (user, provider_id, account_id) =
                    (&user, provider_id.as_str(), account_id.as_str());
                tx.begin().await?;
                tx.execute(insert_user(user)).await?;
                tx.execute(insert_account(
                    &user.id,
                    provider_id,
                    account_id,
                    user.created_at,
                ))
                .await?;
                tx.commit().await
            })
        })
        .await
    }

    async fn link_account(
        &self,
        user_id: &str,
        provider_id: &str,
        account_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.execute(insert_account(user_id, provider_id, account_id, now))
            .await?;
        Ok(())
    }

    async fn user_accounts(&self, user_id: &str) -> Result<Vec<LinkedAccount>, StoreError> {
        let rows = self
            .fetch_all(
                query(
                    r#"SELECT provider_id, account_id, created_at FROM "account"
                       WHERE user_id = $1 AND (provider_id <> $2 OR password IS NOT NULL)
                       ORDER BY created_at, id"#,
                )
                .bind(user_id)
                .bind(CREDENTIAL_PROVIDER),
            )
            .await?;
        decode_all(rows, |row| {
            Ok(LinkedAccount {
                provider_id: get(row, "provider_id")?,
                account_id: get(row, "account_id")?,
                created_at: get(row, "created_at")?,
            })
        })
    }

    async fn unlink_account(
        &self,
        user_id: &str,
        provider_id: &str,
        now: i64,
    ) -> Result<Unlink, StoreError> {
        let user_id = user_id.to_owned();
        let provider_id = provider_id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let (user_id, provider_id) = (user_id.as_str(), provider_id.as_str());
                tx.begin().await?;
                // Touching the user's row first locks it (PostgreSQL) or holds the write lock
                // (SQLite): a concurrent unlink for the same user waits, then counts what this one left.
                let users = tx
                    .execute(
                        query(r#"UPDATE "user" SET updated_at = $2 WHERE id = $1"#)
                            .bind(user_id)
                            .bind(now),
                    )
                    .await?;
                if users == 0 || provider_id == CREDENTIAL_PROVIDER {
                    tx.rollback().await?;
                    return Ok(Unlink::NotLinked);
                }
                let others = tx
                    .fetch_optional(
                        query(
                            r#"SELECT COUNT(*) AS n FROM "account"
                               WHERE user_id = $1 AND provider_id <> $2
                                 AND (provider_id <> $3 OR password IS NOT NULL)"#,
                        )
                        .bind(user_id)
                        .bind(provider_id)
                        .bind(CREDENTIAL_PROVIDER),
                    )
                    .await?;
                let others: i64 = match &others {
                    Some(row) => get(row, "n")?,
                    None => 0,
                };
                let linked = tx
                    .fetch_optional(
                        query(
                            r#"SELECT COUNT(*) AS n FROM "account"
                               WHERE user_id = $1 AND provider_id = $2"#,
                        )
                        .bind(user_id)
                        .bind(provider_id),
                    )
                    .await?;
                let linked: i64 = match &linked {
                    Some(row) => get(row, "n")?,
                    None => 0,
                };
                if linked == 0 {
                    tx.rollback().await?;
                    return Ok(Unlink::NotLinked);
                }
                if others == 0 {
                    tx.rollback().await?;
                    return Ok(Unlink::LastWayIn);
                }
                tx.execute(
                    query(r#"DELETE FROM "account" WHERE user_id = $1 AND provider_id = $2"#)
                        .bind(user_id)
                        .bind(provider_id),
                )
                .await?;
                tx.commit().await?;
                Ok(Unlink::Unlinked)
            })
        })
        .await
    }

    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        self.execute(
            query(
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
            .bind(&session.user_agent),
        )
        .await?;
        Ok(())
    }

    async fn session_by_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(Session, User)>, StoreError> {
        let row = self
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    session_columns!(),
                    ", ",
                    user_columns_as_u!(),
                    r#" FROM "session" s
                        JOIN "user" u ON u.id = s.user_id
                        WHERE s.token_hash = $1 AND s.expires_at > $2 AND NOT u.disabled"#
                ))
                .bind(token_hash)
                .bind(now),
            )
            .await?;
        decode_optional(row, |row| Ok((rows::session(row)?, rows::user_u(row)?)))
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.execute(query(r#"DELETE FROM "session" WHERE token_hash = $1"#).bind(token_hash))
            .await?;
        Ok(())
    }

    async fn create_client(&self, client: &Client) -> Result<(), StoreError> {
        self.execute(
            insert_client(INSERT_CLIENT, client)
                .on_unique_violation("client_id already registered"),
        )
        .await?;
        Ok(())
    }

    async fn save_client(&self, client: &Client) -> Result<(), StoreError> {
        // An existing client may change (its secret, its redirect URIs): announce it.
        let client = client.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let client = &client;
                tx.begin().await?;
                tx.execute(bump_revocation_epoch()).await?;
                tx.execute(insert_client(UPSERT_CLIENT, client)).await?;
                tx.commit().await
            })
        })
        .await
    }

    async fn client_by_id(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        let row = self
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    client_columns!(),
                    r#" FROM "oauthApplication" WHERE client_id = $1"#
                ))
                .bind(client_id),
            )
            .await?;
        decode_optional(row, rows::client)
    }

    async fn client_document(
        &self,
        client_id: &str,
    ) -> Result<Option<(Client, ClientDocument)>, StoreError> {
        let row = self
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    client_columns!(),
                    r#", d.etag AS etag, d.fetched_at AS fetched_at, d.expires_at AS expires_at
                       FROM "oauthApplication"
                       JOIN "oauthClientMetadataDocument" d USING (client_id)
                       WHERE client_id = $1"#
                ))
                .bind(client_id),
            )
            .await?;
        decode_optional(row, |row| {
            Ok((
                rows::client(row)?,
                ClientDocument {
                    client_id: get(row, "client_id")?,
                    etag: get(row, "etag")?,
                    fetched_at: get(row, "fetched_at")?,
                    expires_at: get(row, "expires_at")?,
                },
            ))
        })
    }

    async fn save_client_document(
        &self,
        client: &Client,
        document: &ClientDocument,
    ) -> Result<bool, StoreError> {
        let client = client.clone();
        let document = document.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let client = &client;
                let document = &document;
                tx.begin().await?;
                let before = tx
                    .fetch_optional(
                        query(r#"SELECT redirect_uris FROM "oauthApplication" WHERE client_id = $1"#)
                            .bind(&client.client_id),
                    )
                    .await?;
                let redirects = json_array(client.redirect_uris.iter().map(RedirectUri::as_str));
                let changed = match before {
                    Some(row) => get::<String, _>(&row, "redirect_uris")? != redirects,
                    None => false,
                };
                if changed {
                    tx.execute(bump_revocation_epoch()).await?;
                    tx.execute(
                        query(r#"DELETE FROM "oauthConsent" WHERE client_id = $1"#).bind(&client.client_id),
                    )
                    .await?;
                }
                tx.execute(insert_client(UPSERT_DOCUMENT_CLIENT, client))
                    .await?;
                tx.execute(
                    query(
                        r#"INSERT INTO "oauthClientMetadataDocument" (client_id, etag, fetched_at, expires_at)
                           VALUES ($1, $2, $3, $4)
                           ON CONFLICT (client_id) DO UPDATE
                           SET etag = excluded.etag,
                               fetched_at = excluded.fetched_at,
                               expires_at = excluded.expires_at"#,
                    )
                    .bind(&document.client_id)
                    .bind(&document.etag)
                    .bind(document.fetched_at)
                    .bind(document.expires_at),
                )
                .await?;
                tx.commit().await?;
                Ok(changed)
            })
        })
        .await
    }

    async fn consent(&self, user_id: &str, client_id: &str) -> Result<Option<Consent>, StoreError> {
        let row = self
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    consent_columns!(),
                    r#" FROM "oauthConsent" WHERE user_id = $1 AND client_id = $2"#
                ))
                .bind(user_id)
                .bind(client_id),
            )
            .await?;
        decode_optional(row, rows::consent)
    }

    async fn save_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        // A replaced consent keeps its original created_at: it records when the user first
        // approved the client.
        self.execute(
            query(
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
            .bind(consent.updated_at),
        )
        .await?;
        Ok(())
    }

    async fn put_verification_with_mail(
        &self,
        identifier: &str,
        value: &str,
        expires_at: i64,
        now: i64,
        mail: &OutboxMail,
    ) -> Result<(), StoreError> {
        let (identifier, value, mail) = (identifier.to_owned(), value.to_owned(), mail.clone());
        self.write(move |tx| {
            Box::pin(async move {
                tx.begin().await?;
                tx.execute(upsert_verification(&identifier, &value, expires_at, now))
                    .await?;
                tx.execute(
                    query(
                        r#"INSERT INTO "mcpauthMailOutbox"
                               (id, recipient, subject, body, link, expires_at, created_at,
                                attempts, next_attempt_at)
                           VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $7)"#,
                    )
                    .bind(&mail.id)
                    .bind(&mail.to)
                    .bind(&mail.subject)
                    .bind(&mail.text)
                    .bind(&mail.link)
                    .bind(mail.expires_at)
                    .bind(now),
                )
                .await?;
                tx.commit().await
            })
        })
        .await
    }

    async fn claim_mail(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<OutboxMail>, StoreError> {
        // One statement. The outer WHERE repeats the lease condition: on PostgreSQL (READ
        // COMMITTED) a claimer whose subquery picked a row that a concurrent claim is leasing
        // waits for that claim, then re-evaluates the outer condition on the committed row,
        // finds the lease and leaves the row alone; SQLite runs writers one at a time. So a
        // row goes to one claimer without `FOR UPDATE SKIP LOCKED` (which SQLite lacks); a
        // loser gets fewer rows, never a leased one.
        let rows = self
            .write(move |conn| {
                Box::pin(async move {
                    conn.fetch_all(
                        query(
                            r#"UPDATE "mcpauthMailOutbox"
                               SET claimed_until = $2, attempts = attempts + 1
                               WHERE id IN (
                                       SELECT id FROM "mcpauthMailOutbox"
                                       WHERE failed_at IS NULL AND next_attempt_at <= $1
                                         AND expires_at > $1
                                         AND (claimed_until IS NULL OR claimed_until <= $1)
                                       ORDER BY next_attempt_at, id
                                       LIMIT $3)
                                 AND failed_at IS NULL
                                 AND (claimed_until IS NULL OR claimed_until <= $1)
                               RETURNING id, recipient, subject, body, link, expires_at,
                                         created_at, attempts"#,
                        )
                        .bind(now)
                        .bind(lease_until)
                        .bind(i64::from(limit)),
                    )
                    .await
                })
            })
            .await?;
        decode_all(rows, |row| {
            let attempts: i64 = get(row, "attempts")?;
            Ok(OutboxMail {
                id: get(row, "id")?,
                to: get(row, "recipient")?,
                subject: get(row, "subject")?,
                text: get(row, "body")?,
                link: get(row, "link")?,
                expires_at: get(row, "expires_at")?,
                created_at: get(row, "created_at")?,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            })
        })
    }

    async fn mail_sent(&self, id: &str) -> Result<(), StoreError> {
        self.execute(query(r#"DELETE FROM "mcpauthMailOutbox" WHERE id = $1"#).bind(id))
            .await?;
        Ok(())
    }

    async fn mail_failed(
        &self,
        id: &str,
        now: i64,
        retry_at: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError> {
        let statement = match retry_at {
            Some(retry_at) => query(
                r#"UPDATE "mcpauthMailOutbox"
                   SET claimed_until = NULL, next_attempt_at = $2, last_error = $3
                   WHERE id = $1"#,
            )
            .bind(id)
            .bind(retry_at)
            .bind(error),
            None => query(
                r#"UPDATE "mcpauthMailOutbox"
                   SET claimed_until = NULL, failed_at = $2, last_error = $3
                   WHERE id = $1"#,
            )
            .bind(id)
            .bind(now)
            .bind(error),
        };
        self.execute(statement).await?;
        Ok(())
    }

    async fn drop_expired_mail(&self, now: i64) -> Result<u64, StoreError> {
        self.execute(
            query(
                r#"DELETE FROM "mcpauthMailOutbox"
                   WHERE expires_at <= $1 AND failed_at IS NULL
                     AND (claimed_until IS NULL OR claimed_until <= $1)"#,
            )
            .bind(now),
        )
        .await
    }

    async fn put_verification(
        &self,
        identifier: &str,
        value: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.execute(upsert_verification(identifier, value, expires_at, now))
            .await?;
        Ok(())
    }

    async fn peek_verification(
        &self,
        identifier: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let row = self
            .fetch_optional(
                query(
                    r#"SELECT value FROM "verification"
                       WHERE identifier = $1 AND expires_at > $2"#,
                )
                .bind(identifier)
                .bind(now),
            )
            .await?;
        decode_optional(row, |row| get(row, "value"))
    }

    async fn take_verification(
        &self,
        identifier: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        // Deleting unconditionally also clears an expired value; only the caller whose DELETE
        // removed the row sees it.
        let row = self
            .write_returning(
                query(
                    r#"DELETE FROM "verification" WHERE identifier = $1
                       RETURNING value, expires_at"#,
                )
                .bind(identifier),
            )
            .await?;
        let taken = decode_optional(row, |row| {
            Ok((get::<String, _>(row, "value")?, get(row, "expires_at")?))
        })?;
        Ok(
            taken
                .and_then(|(value, expires_at): (String, i64)| (expires_at > now).then_some(value)),
        )
    }

    async fn create_code(
        &self,
        code: &AuthorizationCode,
        family: &TokenFamily,
    ) -> Result<(), StoreError> {
        let code = code.clone();
        let family = family.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let code = &code;
                let family = &family;
                tx.begin().await?;
                tx.execute(
                    query(
                        r#"INSERT INTO "oauthTokenFamily"
                               (id, client_id, user_id, scopes, resource, created_at, expires_at,
                                revoked_at)
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
                    )
                    .bind(&family.id)
                    .bind(&family.client_id)
                    .bind(&family.user_id)
                    .bind(&family.scopes)
                    .bind(&family.resource)
                    .bind(family.created_at)
                    .bind(family.expires_at)
                    .bind(family.revoked_at),
                )
                .await?;
                tx.execute(
                    query(
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
                    .bind(code.created_at),
                )
                .await?;
                tx.commit().await
            })
        })
        .await
    }

    async fn consume_code(&self, code_hash: &str, now: i64) -> Result<CodeRedemption, StoreError> {
        let code_hash = code_hash.to_owned();
        let (redemption, revoked) = self
            .write(move |tx| {
                Box::pin(async move {
                    // One conditional statement: of concurrent callers exactly one sees
                    // used_at IS NULL.
                    let redeemed = tx
                        .fetch_optional(
                            query(concat!(
                                r#"UPDATE "oauthAuthorizationCode" SET used_at = $2
                                   WHERE code_hash = $1 AND used_at IS NULL
                                   RETURNING "#,
                                code_columns!()
                            ))
                            .bind(&code_hash)
                            .bind(now),
                        )
                        .await?;
                    if let Some(row) = redeemed {
                        let code = rows::code(&row)?;
                        return Ok((CodeRedemption::Redeemed(Box::new(code)), None));
                    }
                    let row = tx
                        .fetch_optional(
                            query(
                                r#"SELECT family_id FROM "oauthAuthorizationCode"
                                   WHERE code_hash = $1"#,
                            )
                            .bind(&code_hash),
                        )
                        .await?;
                    let Some(family_id) =
                        decode_optional(row, |row| get::<String, _>(row, "family_id"))?
                    else {
                        return Ok((CodeRedemption::Unknown, None));
                    };
                    // RFC 6749 §4.1.2: a code used twice revokes what it was exchanged for.
                    tx.begin().await?;
                    tx.execute(bump_revocation_epoch()).await?;
                    tx.execute(revoke_family(&family_id, now)).await?;
                    tx.commit().await?;
                    Ok((CodeRedemption::Replayed, Some(family_id)))
                })
            })
            .await?;
        if let Some(family_id) = revoked {
            tracing::warn!(family_id = %family_id, "authorization code replayed; token family revoked");
        }
        Ok(redemption)
    }

    async fn unused_code(&self, code_hash: &str) -> Result<Option<AuthorizationCode>, StoreError> {
        let row = self
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    code_columns!(),
                    r#" FROM "oauthAuthorizationCode" WHERE code_hash = $1 AND used_at IS NULL"#
                ))
                .bind(code_hash),
            )
            .await?;
        decode_optional(row, rows::code)
    }

    async fn unused_code_with_user(
        &self,
        code_hash: &str,
    ) -> Result<Option<(AuthorizationCode, User)>, StoreError> {
        let row = self
            .fetch_optional(
                query(concat!(
                    "SELECT k.*, ",
                    user_columns_as_u!(),
                    " FROM (SELECT ",
                    code_columns!(),
                    r#" FROM "oauthAuthorizationCode" WHERE code_hash = $1 AND used_at IS NULL) k
                        JOIN "user" u ON u.id = k.user_id"#
                ))
                .bind(code_hash),
            )
            .await?;
        decode_optional(row, |row| Ok((rows::code(row)?, rows::user_u(row)?)))
    }

    async fn redeem_code(
        &self,
        code_hash: &str,
        now: i64,
        access: &AccessToken,
        refresh: Option<&RefreshToken>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let code_hash = code_hash.to_owned();
        let access = access.clone();
        let refresh = refresh.cloned();
        let audit = audit.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let code_hash = code_hash.as_str();
                let access = &access;
                let refresh = refresh.as_ref();
                let audit = &audit;
                tx.begin().await?;
                // The conditional UPDATE decides the single winner (on PostgreSQL, concurrent
                // callers wait on its row lock and then find the code used).
                let redeemed = tx
                    .execute(
                        query(
                            r#"UPDATE "oauthAuthorizationCode" SET used_at = $2
                               WHERE code_hash = $1 AND used_at IS NULL"#,
                        )
                        .bind(code_hash)
                        .bind(now),
                    )
                    .await?;
                if redeemed == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                store_tokens(tx, access, refresh).await?;
                tx.execute(insert_audit(audit)).await?;
                tx.commit().await?;
                Ok(true)
            })
        })
        .await
    }

    async fn access_token(&self, token_hash: &str) -> Result<Option<AccessTokenGrant>, StoreError> {
        let row = self
            .fetch_optional(query(ACCESS_TOKEN_GRANT_SQL).bind(token_hash))
            .await?;
        decode_optional(row, |row| {
            let family_revoked_at: Option<i64> = get(row, "family_revoked_at")?;
            // A machine's token has no user (LEFT JOIN: the user columns are NULL).
            let user_id: Option<String> = get(row, "u_id")?;
            Ok(AccessTokenGrant {
                token: rows::access_token(row)?,
                user: user_id.map(|_| rows::user_u(row)).transpose()?,
                family_revoked: family_revoked_at.is_some(),
                client_disabled: get(row, "client_disabled")?,
            })
        })
    }

    async fn refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshToken, TokenFamily)>, StoreError> {
        let row = self
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    refresh_token_columns!(),
                    ", ",
                    family_columns_as_f!(),
                    r#" FROM "oauthRefreshToken" t
                        JOIN "oauthTokenFamily" f ON f.id = t.family_id
                        WHERE t.token_hash = $1"#
                ))
                .bind(token_hash),
            )
            .await?;
        decode_optional(row, |row| {
            Ok((rows::refresh_token(row)?, rows::family_f(row)?))
        })
    }

    async fn refresh_token_with_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(RefreshToken, TokenFamily, User)>, StoreError> {
        let row = self
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    refresh_token_columns!(),
                    ", ",
                    family_columns_as_f!(),
                    ", ",
                    user_columns_as_u!(),
                    r#" FROM "oauthRefreshToken" t
                        JOIN "oauthTokenFamily" f ON f.id = t.family_id
                        JOIN "user" u ON u.id = t.user_id
                        WHERE t.token_hash = $1"#
                ))
                .bind(token_hash),
            )
            .await?;
        decode_optional(row, |row| {
            Ok((
                rows::refresh_token(row)?,
                rows::family_f(row)?,
                rows::user_u(row)?,
            ))
        })
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        now: i64,
        retry_response: &str,
        access: &AccessToken,
        refresh: &RefreshToken,
        audit: &AuditEvent,
    ) -> Result<Rotation, StoreError> {
        let old_hash = old_hash.to_owned();
        let retry_response = retry_response.to_owned();
        let access = access.clone();
        let refresh = refresh.clone();
        let audit = audit.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let old_hash = old_hash.as_str();
                let retry_response = retry_response.as_str();
                let access = &access;
                let refresh = &refresh;
                let audit = &audit;
                tx.begin().await?;
                let Some((family_id, generation)) =
                    spend_refresh_token(tx, old_hash, now, retry_response).await?
                else {
                    // Lost the race (or the token was rotated long ago): report the winner's
                    // rotation and write nothing.
                    let earlier = earlier_rotation(tx, old_hash).await?;
                    tx.rollback().await?;
                    return match earlier {
                        Some((Some(rotated_at), retry_response)) => Ok(Rotation::AlreadyRotated {
                            rotated_at,
                            retry_response,
                        }),
                        // Unreachable: the UPDATE skips only rotated rows, and a rotation is never
                        // undone.
                        Some((None, _)) => Err(StoreError::Database(
                            "refresh token neither rotated nor rotatable".to_owned(),
                        )),
                        // Gone since the caller looked it up (its user, client or family was
                        // deleted).
                        None => Err(StoreError::Conflict(
                            "the refresh token no longer exists".to_owned(),
                        )),
                    };
                };
                // Advance the grant, if this token is still of its head generation. A sibling (a
                // tolerated reissue) that rotated first has moved the head on: then this token is
                // superseded and nothing is written. On PostgreSQL the family's row lock orders
                // concurrent advances; the loser re-reads the committed generation.
                let advanced = tx
                    .execute(
                        query(
                            r#"UPDATE "oauthTokenFamily"
                               SET generation = generation + 1, advanced_at = $3
                               WHERE id = $1 AND generation = $2"#,
                        )
                        .bind(&family_id)
                        .bind(generation)
                        .bind(now),
                    )
                    .await?;
                if advanced == 0 {
                    tx.rollback().await?;
                    return Ok(Rotation::Superseded);
                }
                store_tokens(tx, access, Some(refresh)).await?;
                tx.execute(insert_audit(audit)).await?;
                tx.commit().await?;
                Ok(Rotation::Rotated)
            })
        })
        .await
    }

    async fn reissue_refresh_token(
        &self,
        old_hash: &str,
        now: i64,
        window: i64,
        retry_response: Option<&str>,
        access: &AccessToken,
        refresh: &RefreshToken,
        audit: &AuditEvent,
    ) -> Result<Reissue, StoreError> {
        let old_hash = old_hash.to_owned();
        let retry_response = retry_response.map(str::to_owned);
        let access = access.clone();
        let refresh = refresh.clone();
        let audit = audit.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let old_hash = old_hash.as_str();
                let retry_response = retry_response.as_deref();
                let access = &access;
                let refresh = &refresh;
                let audit = &audit;
                tx.begin().await?;
                let token = match retry_response {
                    // Spend the superseded token, so that a retry gets this answer; of concurrent
                    // presentations one marks it and the others get its answer (or nothing).
                    Some(retry_response) => {
                        match spend_refresh_token(tx, old_hash, now, retry_response).await? {
                            Some(token) => Some(token),
                            None => {
                                let earlier = earlier_rotation(tx, old_hash).await?;
                                tx.rollback().await?;
                                return Ok(match earlier {
                                    Some((Some(rotated_at), retry_response)) => {
                                        Reissue::AlreadyRotated {
                                            rotated_at,
                                            retry_response,
                                        }
                                    }
                                    _ => Reissue::Refused,
                                });
                            }
                        }
                    }
                    None => {
                        let row = tx
                            .fetch_optional(
                                query(
                                    r#"SELECT family_id, generation FROM "oauthRefreshToken"
                                       WHERE token_hash = $1"#,
                                )
                                .bind(old_hash),
                            )
                            .await?;
                        decode_optional(row, family_and_generation)?
                    }
                };
                let Some((family_id, generation)) = token else {
                    tx.rollback().await?;
                    return Ok(Reissue::Refused);
                };
                // The decision, as one conditional write on the family's row: the token is exactly
                // one generation behind the head, the head advanced within the window, the grant is
                // alive. It does not advance the grant, so tolerated reuses never extend the
                // window.
                let tolerated = tx
                    .execute(
                        query(
                            r#"UPDATE "oauthTokenFamily" SET last_used_at = $3
                               WHERE id = $1 AND generation = $2 + 1
                                 AND advanced_at IS NOT NULL AND advanced_at >= $3 - $4
                                 AND revoked_at IS NULL AND expires_at > $3"#,
                        )
                        .bind(&family_id)
                        .bind(generation)
                        .bind(now)
                        .bind(window),
                    )
                    .await?;
                if tolerated == 0 {
                    tx.rollback().await?;
                    return Ok(Reissue::Refused);
                }
                store_tokens(tx, access, Some(refresh)).await?;
                tx.execute(insert_audit(audit)).await?;
                tx.commit().await?;
                Ok(Reissue::Reissued)
            })
        })
        .await
    }

    async fn revoke_family(&self, family_id: &str, now: i64) -> Result<(), StoreError> {
        let family_id = family_id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let family_id = family_id.as_str();
                tx.begin().await?;
                tx.execute(bump_revocation_epoch()).await?;
                tx.execute(revoke_family(family_id, now)).await?;
                tx.commit().await
            })
        })
        .await
    }

    async fn revocation_epoch(&self) -> Result<i64, StoreError> {
        let row = self
            .fetch_optional(query(
                r#"SELECT epoch FROM "mcpauthRevocationEpoch" WHERE id = 1"#,
            ))
            .await?
            .ok_or_else(|| StoreError::Database("the revocation epoch row is missing".into()))?;
        get(&row, "epoch")
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        const STATEMENTS: &[&str] = &[
            r#"DELETE FROM "session" WHERE expires_at <= $1"#,
            r#"DELETE FROM "verification" WHERE expires_at <= $1"#,
            r#"DELETE FROM "oauthAccessToken" WHERE expires_at <= $1"#,
            r#"DELETE FROM "oauthAuthorizationCode" WHERE expires_at <= $1 - 86400"#,
            r#"DELETE FROM "oauthTokenFamily" WHERE expires_at <= $1"#,
            r#"DELETE FROM "rateLimit" WHERE expires_at <= $1"#,
            r#"DELETE FROM "mcpauthOneTimeId" WHERE expires_at <= $1"#,
            // Mail given up or never sent, whose token no longer works anyway.
            r#"DELETE FROM "mcpauthMailOutbox" WHERE expires_at <= $1"#,
            // Self-registered clients a day old that never completed an authorization (no
            // family that issued tokens; SECURITY M5). A client with a grant stays.
            r#"DELETE FROM "oauthApplication"
               WHERE registered_dynamically AND created_at <= $1 - 86400
                 AND NOT EXISTS (
                     SELECT 1 FROM "oauthTokenFamily" f
                     WHERE f.client_id = "oauthApplication".client_id
                       AND f.last_used_at IS NOT NULL)"#,
        ];
        self.write(move |tx| {
            Box::pin(async move {
                tx.begin().await?;
                // Families deleted at their absolute end take their tokens with them, possibly
                // before the tokens' own expiry: announce it like a revocation.
                tx.execute(bump_revocation_epoch()).await?;
                let mut removed = 0;
                for &statement in STATEMENTS {
                    removed += tx.execute(query(statement).bind(now)).await?;
                }
                tx.commit().await?;
                Ok(removed)
            })
        })
        .await
    }

    async fn rate_limit_hit(
        &self,
        key: &str,
        window_start: i64,
        expires_at: i64,
    ) -> Result<u32, StoreError> {
        // One statement: the row is created or incremented under the row's (PostgreSQL) or the
        // database's (SQLite) write lock, so concurrent callers each see a distinct count.
        let row = self
            .write_returning(
                query(
                    r#"INSERT INTO "rateLimit" (key, window_start, count, expires_at)
                       VALUES ($1, $2, 1, $3)
                       ON CONFLICT (key, window_start) DO UPDATE SET count = "rateLimit".count + 1
                       RETURNING count"#,
                )
                .bind(key)
                .bind(window_start)
                .bind(expires_at),
            )
            .await?
            .ok_or_else(|| StoreError::Database("the rate-limit upsert returned no row".into()))?;
        let count: i64 = get(&row, "count")?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn use_once(&self, key: &str, expires_at: i64) -> Result<bool, StoreError> {
        // One statement: of concurrent inserts of one key, the unique key lets exactly one in;
        // the others do nothing and return no row.
        let row = self
            .write_returning(
                query(
                    r#"INSERT INTO "mcpauthOneTimeId" (key, expires_at) VALUES ($1, $2)
                       ON CONFLICT (key) DO NOTHING
                       RETURNING key"#,
                )
                .bind(key)
                .bind(expires_at),
            )
            .await?;
        Ok(row.is_some())
    }

    async fn rate_limit_count(&self, key: &str, window_start: i64) -> Result<u32, StoreError> {
        let row = self
            .fetch_optional(
                query(r#"SELECT count FROM "rateLimit" WHERE key = $1 AND window_start = $2"#)
                    .bind(key)
                    .bind(window_start),
            )
            .await?;
        let count: i64 = match row {
            Some(row) => get(&row, "count")?,
            None => 0,
        };
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = self
            .fetch_all(query(concat!(
                "SELECT ",
                user_columns_as_u!(),
                r#" FROM "user" u ORDER BY u.created_at, u.id"#
            )))
            .await?;
        decode_all(rows, rows::user_u)
    }

    async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        revoking_change(
            self,
            None,
            query(r#"UPDATE "user" SET disabled = $2, updated_at = $3 WHERE id = $1"#)
                .bind(user_id)
                .bind(disabled)
                .bind(now),
            disabled,
        )
        .await
    }

    async fn delete_user(&self, user_id: &str) -> Result<bool, StoreError> {
        revoking_change(
            self,
            Some(query(r#"DELETE FROM "oauthAccessToken" WHERE user_id = $1"#).bind(user_id)),
            query(r#"DELETE FROM "user" WHERE id = $1"#).bind(user_id),
            true,
        )
        .await
    }

    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.execute(upsert_password(user_id, password_hash, now))
            .await?;
        Ok(())
    }

    async fn user_sessions(&self, user_id: &str, now: i64) -> Result<Vec<Session>, StoreError> {
        let rows = self
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    session_columns!(),
                    r#" FROM "session" s WHERE s.user_id = $1 AND s.expires_at > $2
                        ORDER BY s.created_at DESC, s.id"#
                ))
                .bind(user_id)
                .bind(now),
            )
            .await?;
        decode_all(rows, rows::session)
    }

    async fn delete_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.execute(
            query(r#"DELETE FROM "session" WHERE user_id = $1 AND ($2 IS NULL OR id <> $2)"#)
                .bind(user_id)
                .bind(keep),
        )
        .await
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows = self
            .fetch_all(query(concat!(
                "SELECT ",
                client_columns!(),
                r#" FROM "oauthApplication" ORDER BY created_at, client_id"#
            )))
            .await?;
        decode_all(rows, rows::client)
    }

    async fn set_client_disabled(
        &self,
        client_id: &str,
        disabled: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        revoking_change(
            self,
            None,
            query(
                r#"UPDATE "oauthApplication" SET disabled = $2, updated_at = $3
                       WHERE client_id = $1"#,
            )
            .bind(client_id)
            .bind(disabled)
            .bind(now),
            disabled,
        )
        .await
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        revoking_change(
            self,
            Some(query(r#"DELETE FROM "oauthAccessToken" WHERE client_id = $1"#).bind(client_id)),
            query(r#"DELETE FROM "oauthApplication" WHERE client_id = $1"#).bind(client_id),
            true,
        )
        .await
    }

    async fn grants(
        &self,
        user_id: Option<&str>,
        client_id: Option<&str>,
        now: i64,
    ) -> Result<Vec<GrantSummary>, StoreError> {
        let rows = self
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    grant_columns!(),
                    r#" FROM "oauthTokenFamily" f
                        JOIN "user" u ON u.id = f.user_id
                        JOIN "oauthApplication" c ON c.client_id = f.client_id
                        WHERE f.revoked_at IS NULL AND f.last_used_at IS NOT NULL
                          AND f.expires_at > $3
                          AND ($1 IS NULL OR f.user_id = $1) AND ($2 IS NULL OR f.client_id = $2)
                        ORDER BY f.created_at DESC, f.id"#
                ))
                .bind(user_id)
                .bind(client_id)
                .bind(now),
            )
            .await?;
        decode_all(rows, rows::grant)
    }

    async fn revoke_grants(
        &self,
        user_id: &str,
        client_id: Option<&str>,
        now: i64,
    ) -> Result<u64, StoreError> {
        let user_id = user_id.to_owned();
        let client_id = client_id.map(str::to_owned);
        self.write(move |tx| {
            Box::pin(async move {
                tx.begin().await?;
                let revoked = revoke_grants_in(tx, &user_id, client_id.as_deref(), now).await?;
                tx.commit().await?;
                Ok(revoked)
            })
        })
        .await
    }

    async fn set_email_verified(&self, user_id: &str, now: i64) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                query(r#"UPDATE "user" SET email_verified = $2, updated_at = $3 WHERE id = $1"#)
                    .bind(user_id)
                    .bind(true)
                    .bind(now),
            )
            .await?;
        Ok(changed == 1)
    }

    async fn reset_password(
        &self,
        identifier: &str,
        password_hash: &str,
        now: i64,
        revoke_grants: bool,
        audit: &AuditEvent,
    ) -> Result<Option<String>, StoreError> {
        let identifier = identifier.to_owned();
        let password_hash = password_hash.to_owned();
        let audit = audit.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let (identifier, password_hash) = (identifier.as_str(), password_hash.as_str());
                tx.begin().await?;
                // Taken inside the transaction: a reset that fails leaves its link usable, and of
                // concurrent resets with one link only the one whose DELETE removed the row goes on.
                let row = tx
                    .fetch_optional(
                        query(
                            r#"DELETE FROM "verification" WHERE identifier = $1
                               RETURNING value, expires_at"#,
                        )
                        .bind(identifier),
                    )
                    .await?;
                let taken = decode_optional(row, |row| {
                    Ok((
                        get::<String, _>(row, "value")?,
                        get::<i64, _>(row, "expires_at")?,
                    ))
                })?;
                let Some(user_id) =
                    taken.and_then(|(value, expires_at)| (expires_at > now).then_some(value))
                else {
                    // An expired value is deleted all the same: it can never be used.
                    tx.commit().await?;
                    return Ok(None);
                };
                let updated = tx
                    .execute(
                        query(r#"UPDATE "user" SET email_verified = $2, updated_at = $3 WHERE id = $1"#)
                            .bind(&user_id)
                            .bind(true)
                            .bind(now),
                    )
                    .await?;
                if updated != 1 {
                    tx.commit().await?;
                    return Ok(None);
                }
                tx.execute(upsert_password(&user_id, password_hash, now))
                    .await?;
                tx.execute(query(r#"DELETE FROM "session" WHERE user_id = $1"#).bind(&user_id))
                    .await?;
                if revoke_grants {
                    revoke_grants_in(tx, &user_id, None, now).await?;
                }
                let mut audit = audit.clone();
                audit.user_id = Some(user_id.clone());
                tx.execute(insert_audit(&audit)).await?;
                tx.commit().await?;
                Ok(Some(user_id))
            })
        })
        .await
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        let rows = self
            .fetch_all(query(concat!(
                "SELECT ",
                signing_key_columns!(),
                r#" FROM "oauthSigningKey" ORDER BY CASE WHEN retired_at IS NULL THEN 0 ELSE 1 END, COALESCE(retired_at, created_at) DESC, created_at DESC, kid"#
            )))
            .await?;
        decode_all(rows, rows::signing_key)
    }

    async fn rotate_signing_key(&self, key: &SigningKey, now: i64) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let key = &key;
                tx.begin().await?;
                tx.execute(bump_revocation_epoch()).await?;
                tx.execute(
                    query(
                        r#"UPDATE "oauthSigningKey" SET retired_at = $1 WHERE retired_at IS NULL"#,
                    )
                    .bind(now),
                )
                .await?;
                tx.execute(
                    query(concat!(
                        r#"INSERT INTO "oauthSigningKey" ("#,
                        signing_key_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6)"
                    ))
                    .bind(&key.kid)
                    .bind(&key.algorithm)
                    .bind(&key.private_key_sealed)
                    .bind(&key.public_jwk)
                    .bind(key.created_at)
                    .bind(key.retired_at)
                    .on_unique_violation("a signing key with this kid exists"),
                )
                .await?;
                tx.commit().await
            })
        })
        .await
    }

    async fn prune_signing_keys(&self, retired_before: i64) -> Result<u64, StoreError> {
        self.execute(
            query(
                r#"DELETE FROM "oauthSigningKey"
                   WHERE retired_at IS NOT NULL AND retired_at < $1"#,
            )
            .bind(retired_before),
        )
        .await
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.execute(insert_audit(event)).await?;
        Ok(())
    }

    async fn audit_events(&self, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = self
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    audit_columns!(),
                    r#" FROM "auditLog" ORDER BY id DESC LIMIT $1"#
                ))
                .bind(i64::from(limit)),
            )
            .await?;
        decode_all(rows, rows::audit_event)
    }

    // Connected accounts (issue 19).

    async fn save_connection(
        &self,
        user_id: &str,
        connection_id: &str,
        tokens: &SealedTokens,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (user_id, connection_id) = (user_id.to_owned(), connection_id.to_owned());
        let (tokens, audit) = (tokens.clone(), audit.clone());
        self.write(move |tx| {
            Box::pin(async move {
                tx.begin().await?;
                tx.execute(
                    query(
                        r#"INSERT INTO "mcpauthConnection"
                               (user_id, connection_id, key_id, access_token_sealed,
                                refresh_token_sealed, token_type, expires_at, scopes, status,
                                generation, refresh_claimed_until, created_at, updated_at,
                                last_used_at)
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, NULL, $10, $10, NULL)
                           ON CONFLICT (user_id, connection_id) DO UPDATE SET
                               key_id = excluded.key_id,
                               access_token_sealed = excluded.access_token_sealed,
                               refresh_token_sealed = excluded.refresh_token_sealed,
                               token_type = excluded.token_type,
                               expires_at = excluded.expires_at,
                               scopes = excluded.scopes,
                               status = excluded.status,
                               generation = "mcpauthConnection".generation + 1,
                               refresh_claimed_until = NULL,
                               updated_at = excluded.updated_at"#,
                    )
                    .bind(&user_id)
                    .bind(&connection_id)
                    .bind(&tokens.key_id)
                    .bind(&tokens.access_token_sealed)
                    .bind(&tokens.refresh_token_sealed)
                    .bind(&tokens.token_type)
                    .bind(tokens.expires_at)
                    .bind(&tokens.scopes)
                    .bind(ConnectionStatus::Active.as_str())
                    .bind(now),
                )
                .await?;
                tx.execute(insert_audit(&audit)).await?;
                tx.commit().await
            })
        })
        .await
    }

    async fn connection(
        &self,
        user_id: &str,
        connection_id: &str,
    ) -> Result<Option<(ConnectionRecord, bool)>, StoreError> {
        let row = self
            .fetch_optional(
                query(concat!(
                    "SELECT ",
                    connection_columns!(),
                    r#", (SELECT disabled FROM "user" WHERE id = $1) AS user_disabled
                       FROM "mcpauthConnection" WHERE user_id = $1 AND connection_id = $2"#
                ))
                .bind(user_id)
                .bind(connection_id),
            )
            .await?;
        row.map(|row| Ok((rows::connection(&row)?, get(&row, "user_disabled")?)))
            .transpose()
    }

    async fn user_connections(&self, user_id: &str) -> Result<Vec<ConnectionRecord>, StoreError> {
        let rows = self
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    connection_columns!(),
                    r#" FROM "mcpauthConnection" WHERE user_id = $1 ORDER BY connection_id"#
                ))
                .bind(user_id),
            )
            .await?;
        decode_all(rows, rows::connection)
    }

    async fn all_connections(&self) -> Result<Vec<ConnectionRecord>, StoreError> {
        let rows = self
            .fetch_all(query(concat!(
                "SELECT ",
                connection_columns!(),
                r#" FROM "mcpauthConnection" ORDER BY user_id, connection_id"#
            )))
            .await?;
        decode_all(rows, rows::connection)
    }

    async fn connection_key_ids(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .fetch_all(query(
                r#"SELECT DISTINCT key_id FROM "mcpauthConnection" ORDER BY key_id"#,
            ))
            .await?;
        rows.iter().map(|row| get(row, "key_id")).collect()
    }

    async fn claim_connection_refresh(
        &self,
        user_id: &str,
        connection_id: &str,
        generation: i64,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        // One conditional statement: of concurrent claims, the first to update the row moves
        // `refresh_claimed_until` past `now`, and every other (waiting on the row lock, then
        // re-evaluating its WHERE on PostgreSQL; queued on the write lock on SQLite) finds it
        // claimed and changes nothing.
        let changed = self
            .execute(
                query(
                    r#"UPDATE "mcpauthConnection" SET refresh_claimed_until = $5
                       WHERE user_id = $1 AND connection_id = $2 AND generation = $3
                         AND status = 'active'
                         AND (refresh_claimed_until IS NULL OR refresh_claimed_until <= $4)"#,
                )
                .bind(user_id)
                .bind(connection_id)
                .bind(generation)
                .bind(now)
                .bind(until),
            )
            .await?;
        Ok(changed == 1)
    }

    async fn finish_connection_refresh(
        &self,
        user_id: &str,
        connection_id: &str,
        generation: i64,
        tokens: Option<&SealedTokens>,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let (user_id, connection_id) = (user_id.to_owned(), connection_id.to_owned());
        let (tokens, audit) = (tokens.cloned(), audit.clone());
        self.write(move |tx| {
            Box::pin(async move {
                tx.begin().await?;
                let changed = match &tokens {
                    Some(tokens) => {
                        tx.execute(
                            query(
                                r#"UPDATE "mcpauthConnection" SET
                                       key_id = $4, access_token_sealed = $5,
                                       refresh_token_sealed = $6, token_type = $7,
                                       expires_at = $8, scopes = $9, status = 'active',
                                       generation = generation + 1,
                                       refresh_claimed_until = NULL, updated_at = $10
                                   WHERE user_id = $1 AND connection_id = $2
                                     AND generation = $3"#,
                            )
                            .bind(&user_id)
                            .bind(&connection_id)
                            .bind(generation)
                            .bind(&tokens.key_id)
                            .bind(&tokens.access_token_sealed)
                            .bind(&tokens.refresh_token_sealed)
                            .bind(&tokens.token_type)
                            .bind(tokens.expires_at)
                            .bind(&tokens.scopes)
                            .bind(now),
                        )
                        .await?
                    }
                    None => {
                        tx.execute(
                            query(
                                r#"UPDATE "mcpauthConnection" SET
                                       status = 'reconnect', generation = generation + 1,
                                       refresh_claimed_until = NULL, updated_at = $4
                                   WHERE user_id = $1 AND connection_id = $2
                                     AND generation = $3"#,
                            )
                            .bind(&user_id)
                            .bind(&connection_id)
                            .bind(generation)
                            .bind(now),
                        )
                        .await?
                    }
                };
                if changed != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                tx.execute(insert_audit(&audit)).await?;
                tx.commit().await?;
                Ok(true)
            })
        })
        .await
    }

    async fn release_connection_refresh(
        &self,
        user_id: &str,
        connection_id: &str,
        generation: i64,
    ) -> Result<(), StoreError> {
        self.execute(
            query(
                r#"UPDATE "mcpauthConnection" SET refresh_claimed_until = NULL
                   WHERE user_id = $1 AND connection_id = $2 AND generation = $3"#,
            )
            .bind(user_id)
            .bind(connection_id)
            .bind(generation),
        )
        .await?;
        Ok(())
    }

    async fn touch_connection(
        &self,
        user_id: &str,
        connection_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.execute(
            query(
                r#"UPDATE "mcpauthConnection" SET last_used_at = $3
                   WHERE user_id = $1 AND connection_id = $2"#,
            )
            .bind(user_id)
            .bind(connection_id)
            .bind(now),
        )
        .await?;
        Ok(())
    }

    async fn reseal_connection(
        &self,
        user_id: &str,
        connection_id: &str,
        generation: i64,
        tokens: &SealedTokens,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                query(
                    r#"UPDATE "mcpauthConnection" SET
                           key_id = $4, access_token_sealed = $5, refresh_token_sealed = $6
                       WHERE user_id = $1 AND connection_id = $2 AND generation = $3"#,
                )
                .bind(user_id)
                .bind(connection_id)
                .bind(generation)
                .bind(&tokens.key_id)
                .bind(&tokens.access_token_sealed)
                .bind(&tokens.refresh_token_sealed),
            )
            .await?;
        Ok(changed == 1)
    }

    async fn delete_connection(
        &self,
        user_id: &str,
        connection_id: &str,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let (user_id, connection_id) = (user_id.to_owned(), connection_id.to_owned());
        let audit = audit.clone();
        self.write(move |tx| {
            Box::pin(async move {
                tx.begin().await?;
                let changed = tx
                    .execute(
                        query(
                            r#"DELETE FROM "mcpauthConnection"
                               WHERE user_id = $1 AND connection_id = $2"#,
                        )
                        .bind(&user_id)
                        .bind(&connection_id),
                    )
                    .await?;
                if changed != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                tx.execute(insert_audit(&audit)).await?;
                tx.commit().await?;
                Ok(true)
            })
        })
        .await
    }

    // ----- The console (SECURITY A1) -----------------------------------------------------------

    async fn set_admin(&self, user_id: &str, admin: bool, now: i64) -> Result<bool, StoreError> {
        let user_id = user_id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                tx.begin().await?;
                let exists = tx
                    .fetch_optional(query(r#"SELECT id FROM "user" WHERE id = $1"#).bind(&user_id))
                    .await?
                    .is_some();
                if exists {
                    let change = if admin {
                        query(
                            r#"INSERT INTO "mcpauthAdmin" (user_id, granted_at) VALUES ($1, $2)
                               ON CONFLICT (user_id) DO NOTHING"#,
                        )
                        .bind(&user_id)
                        .bind(now)
                    } else {
                        query(r#"DELETE FROM "mcpauthAdmin" WHERE user_id = $1"#).bind(&user_id)
                    };
                    tx.execute(change).await?;
                }
                tx.commit().await?;
                Ok(exists)
            })
        })
        .await
    }

    async fn is_admin(&self, user_id: &str) -> Result<bool, StoreError> {
        let row = self
            .fetch_optional(
                query(r#"SELECT user_id FROM "mcpauthAdmin" WHERE user_id = $1"#).bind(user_id),
            )
            .await?;
        Ok(row.is_some())
    }

    async fn search_users(
        &self,
        search: &str,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<User>, u64), StoreError> {
        // A parameter, never SQL text; LIKE's wildcards in it are escaped to match themselves.
        let pattern = format!("%{}%", like_escaped(&search.to_lowercase()));
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        self.read(move |c| {
            Box::pin(async move {
                let rows = c
                    .fetch_all(
                        query(concat!(
                            "SELECT ",
                            user_columns_as_u!(),
                            r#" FROM "user" u
                                WHERE lower(u.email) LIKE $1 ESCAPE '\'
                                   OR lower(u.name) LIKE $1 ESCAPE '\'
                                ORDER BY u.created_at, u.id LIMIT $2 OFFSET $3"#
                        ))
                        .bind(pattern.as_str())
                        .bind(i64::from(limit))
                        .bind(offset),
                    )
                    .await?;
                let users = decode_all(rows, rows::user_u)?;
                let total = c
                    .fetch_optional(
                        query(
                            r#"SELECT COUNT(*) AS n FROM "user" u
                               WHERE lower(u.email) LIKE $1 ESCAPE '\'
                                  OR lower(u.name) LIKE $1 ESCAPE '\'"#,
                        )
                        .bind(pattern.as_str()),
                    )
                    .await?;
                let total: i64 = match total {
                    Some(row) => get(&row, "n")?,
                    None => 0,
                };
                Ok((users, u64::try_from(total).unwrap_or(0)))
            })
        })
        .await
    }

    async fn search_audit(
        &self,
        filter: &AuditFilter,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        // `kind` matches exactly or as the family before a dot (`sign_in` → `sign_in.%`).
        let family = filter
            .kind
            .as_deref()
            .map(|kind| format!("{}.%", like_escaped(kind)));
        let rows = self
            .fetch_all(
                query(concat!(
                    "SELECT ",
                    audit_columns!(),
                    r#" FROM "auditLog"
                        WHERE ($1 IS NULL OR kind = $1 OR kind LIKE $2 ESCAPE '\')
                          AND ($3 IS NULL OR user_id = $3)
                          AND ($4 IS NULL OR client_id = $4)
                          AND ($5 IS NULL OR ip = $5)
                          AND ($6 IS NULL OR at >= $6)
                          AND ($7 IS NULL OR at < $7)
                        ORDER BY id DESC LIMIT $8 OFFSET $9"#
                ))
                .bind(filter.kind.as_deref())
                .bind(family.as_deref())
                .bind(filter.user_id.as_deref())
                .bind(filter.client_id.as_deref())
                .bind(filter.ip.as_deref())
                .bind(filter.since)
                .bind(filter.until)
                .bind(i64::from(limit))
                .bind(i64::try_from(offset).unwrap_or(i64::MAX)),
            )
            .await?;
        decode_all(rows, rows::audit_event)
    }

    async fn audit_histogram(
        &self,
        since: i64,
        bucket_seconds: i64,
        buckets: u32,
    ) -> Result<Vec<AuditCount>, StoreError> {
        let bucket_seconds = bucket_seconds.max(1);
        let until = since.saturating_add(bucket_seconds.saturating_mul(i64::from(buckets)));
        let rows = self
            .fetch_all(
                query(
                    r#"SELECT (at - $1) / $2 AS bucket, kind, COUNT(*) AS n FROM "auditLog"
                       WHERE at >= $1 AND at < $3 GROUP BY 1, 2 ORDER BY 1, 2"#,
                )
                .bind(since)
                .bind(bucket_seconds)
                .bind(until),
            )
            .await?;
        rows.iter()
            .map(|row| {
                let count: i64 = get(row, "n")?;
                Ok(AuditCount {
                    bucket: get(row, "bucket")?,
                    kind: get(row, "kind")?,
                    count: u64::try_from(count).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn console_counts(&self, now: i64) -> Result<ConsoleCounts, StoreError> {
        let row = self
            .fetch_optional(
                query(
                    r#"SELECT
                         (SELECT COUNT(*) FROM "user") AS users,
                         (SELECT COUNT(*) FROM "user" WHERE disabled = $1) AS disabled_users,
                         (SELECT COUNT(*) FROM "oauthTokenFamily" f
                            JOIN "user" u ON u.id = f.user_id
                            JOIN "oauthApplication" c ON c.client_id = f.client_id
                            WHERE f.revoked_at IS NULL AND f.last_used_at IS NOT NULL
                              AND f.expires_at > $2) AS live_grants,
                         (SELECT COUNT(*) FROM "mcpauthAdmin") AS stored_admins,
                         (SELECT COUNT(*) FROM "mcpauthConnection") AS connections,
                         (SELECT COUNT(*) FROM "mcpauthConnection" WHERE status = $3)
                           AS connections_reconnect"#,
                )
                .bind(true)
                .bind(now)
                .bind(ConnectionStatus::ReconnectNeeded.as_str()),
            )
            .await?;
        let Some(row) = row else {
            return Ok(ConsoleCounts::default());
        };
        let count = |name: &str| -> Result<u64, StoreError> {
            let n: i64 = get(&row, name)?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(ConsoleCounts {
            users: count("users")?,
            disabled_users: count("disabled_users")?,
            live_grants: count("live_grants")?,
            stored_admins: count("stored_admins")?,
            connections: count("connections")?,
            connections_reconnect: count("connections_reconnect")?,
        })
    }

    async fn client_usage(&self) -> Result<Vec<ClientUsage>, StoreError> {
        let rows = self
            .fetch_all(query(
                r#"SELECT client_id, MAX(last_used_at) AS last_used_at,
                          COUNT(DISTINCT user_id) AS users
                   FROM "oauthTokenFamily" WHERE last_used_at IS NOT NULL
                   GROUP BY client_id ORDER BY client_id"#,
            ))
            .await?;
        rows.iter()
            .map(|row| {
                let users: i64 = get(row, "users")?;
                Ok(ClientUsage {
                    client_id: get(row, "client_id")?,
                    last_used_at: get(row, "last_used_at")?,
                    users: u64::try_from(users).unwrap_or(0),
                })
            })
            .collect()
    }

    // --- Machine and enterprise clients (issue 21: client_credentials, ID-JAG) ---

    async fn issue_direct_grant(
        &self,
        access: &AccessToken,
        refresh: Option<&RefreshToken>,
        family_expires_at: i64,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let access = access.clone();
        let refresh = refresh.cloned();
        let audit = audit.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let access = &access;
                let refresh = refresh.as_ref();
                let audit = &audit;
                tx.begin().await?;
                tx.execute(
                    query(
                        r#"INSERT INTO "oauthTokenFamily"
                               (id, client_id, user_id, scopes, resource, created_at, expires_at,
                                revoked_at)
                           VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)"#,
                    )
                    .bind(&access.family_id)
                    .bind(&access.client_id)
                    .bind(&access.user_id)
                    .bind(&access.scopes)
                    .bind(&access.audience)
                    .bind(access.created_at)
                    .bind(family_expires_at),
                )
                .await?;
                store_tokens(tx, access, refresh).await?;
                tx.execute(insert_audit(audit)).await?;
                tx.commit().await
            })
        })
        .await
    }
}
