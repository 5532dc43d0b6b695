//! SQLite-specific behaviour of [`SqliteStore`]: connection URLs and settings, the schema's
//! foreign keys and cascades, and several stores sharing one file. The backend-neutral
//! behaviour is in `contract`.

use std::path::Path;

use crate::support::{CLIENT_TABLES, NOW, OWNED_TABLES, seed, user};
use mcpauth_core::model::Consent;
use mcpauth_core::{Store, StoreError};
use mcpauth_store::SqliteStore;

fn file_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// A migrated store on a new database file at `path`.
async fn migrated(path: &Path) -> SqliteStore {
    let store = SqliteStore::connect(&file_url(path)).await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn count(store: &SqliteStore, table: &'static str) -> i64 {
    let sql = format!(r#"SELECT COUNT(*) FROM "{table}""#);
    store
        .with_connection(move |conn| conn.query_row(&sql, [], |row| row.get(0)))
        .await
        .unwrap()
}

/// Runs `sql` on the store's write connection.
async fn run(store: &SqliteStore, sql: &'static str) {
    store
        .with_connection(move |conn| conn.execute_batch(sql))
        .await
        .unwrap();
}

#[tokio::test]
async fn url_forms_create_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (i, make) in [
        |p: &Path| format!("sqlite://{}", p.display()),
        |p: &Path| format!("sqlite:{}", p.display()),
        |p: &Path| format!("sqlite://{}?mode=rwc", p.display()),
    ]
    .iter()
    .enumerate()
    {
        let path = dir.path().join(format!("db{i}.sqlite"));
        assert!(!path.exists());
        let store = SqliteStore::connect(&make(&path)).await.unwrap();
        store.migrate().await.unwrap();
        assert!(path.exists(), "{}", make(&path));
        store.close().await;
    }
}

#[tokio::test]
async fn explicit_rw_mode_does_not_create() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    let url = format!("{}?mode=rw", file_url(&path));
    assert!(matches!(
        SqliteStore::connect(&url).await,
        Err(StoreError::Database(_))
    ));
    assert!(!path.exists());
}

#[tokio::test]
async fn rejects_non_sqlite_urls_without_echoing_them() {
    match SqliteStore::connect("postgres://user:hunter2@db/mcpauth").await {
        Err(StoreError::Database(msg)) => assert!(!msg.contains("hunter2"), "{msg}"),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// The settings of one connection: journal mode, synchronous, foreign keys, busy timeout (ms),
/// journal size limit, WAL pages between automatic checkpoints.
fn settings(
    conn: &mcpauth_store::rusqlite::Connection,
) -> mcpauth_store::rusqlite::Result<(String, i64, i64, i64, i64, i64)> {
    let one =
        |pragma: &str| conn.query_row(&format!("PRAGMA {pragma}"), [], |row| row.get::<_, i64>(0));
    Ok((
        conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?,
        one("synchronous")?,
        one("foreign_keys")?,
        one("busy_timeout")?,
        one("journal_size_limit")?,
        one("wal_autocheckpoint")?,
    ))
}

#[tokio::test]
async fn connection_settings() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&file_url(&dir.path().join("p.db")))
        .await
        .unwrap();
    let expected = ("wal".to_owned(), 1, 1, 5000, 64 << 20, 10_000);
    // Every reader (4 by default) and the writer have the same settings.
    assert_eq!(store.connection_usage().readers, 4);
    for _ in 0..8 {
        assert_eq!(
            store.with_read_connection(settings).await.unwrap(),
            expected
        );
    }
    assert_eq!(store.with_connection(settings).await.unwrap(), expected);

    let small = SqliteStore::connect_with(&file_url(&dir.path().join("q.db")), 3)
        .await
        .unwrap();
    assert_eq!(small.connection_usage().readers, 3);
}

#[tokio::test]
async fn memory_database_is_one_connection() {
    let store = SqliteStore::connect_with("sqlite::memory:", 8)
        .await
        .unwrap();
    assert_eq!(store.connection_usage().readers, 0);
    store.migrate().await.unwrap();
    store.create_user(&user("u1"), "h").await.unwrap();
    assert!(store.user_by_id("u1").await.unwrap().is_some());
}

#[tokio::test]
async fn deleting_a_user_cascades() {
    let dir = tempfile::tempdir().unwrap();
    let store = migrated(&dir.path().join("c.db")).await;
    seed(&store, "u1", "c1").await;
    seed(&store, "u2", "c2").await;
    for table in OWNED_TABLES {
        assert_eq!(count(&store, table).await, 2, "{table}");
    }

    // Through the store: every row of the user goes.
    assert!(store.delete_user("u1").await.unwrap());
    for table in OWNED_TABLES {
        assert_eq!(count(&store, table).await, 1, "{table}");
    }
    assert!(store.access_token("ah-u2").await.unwrap().is_some());

    // Behind the store's back: the foreign keys take all but the access token row, which has
    // none (migration 0014) and is dead at once: its lookup joins the family that went.
    run(&store, r#"DELETE FROM "user" WHERE id = 'u2'"#).await;
    assert!(store.access_token("ah-u2").await.unwrap().is_none());
    for table in OWNED_TABLES {
        let left = i64::from(table == "oauthAccessToken");
        assert_eq!(count(&store, table).await, left, "{table}");
    }
}

#[tokio::test]
async fn deleting_a_client_cascades() {
    let dir = tempfile::tempdir().unwrap();
    let store = migrated(&dir.path().join("c.db")).await;
    seed(&store, "u1", "c1").await;
    seed(&store, "u2", "c2").await;

    assert!(store.delete_client("c1").await.unwrap());
    for table in CLIENT_TABLES {
        assert_eq!(count(&store, table).await, 1, "{table}");
    }
    // Behind the store's back: as for a user (see deleting_a_user_cascades).
    run(
        &store,
        r#"DELETE FROM "oauthApplication" WHERE client_id = 'c2'"#,
    )
    .await;
    assert!(store.access_token("ah-u2").await.unwrap().is_none());
    for table in CLIENT_TABLES {
        let left = i64::from(table == "oauthAccessToken");
        assert_eq!(count(&store, table).await, left, "{table}");
    }
    // The user and their sign-in are not the client's.
    assert_eq!(count(&store, "user").await, 2);
    assert_eq!(count(&store, "session").await, 2);
}

#[tokio::test]
async fn foreign_keys_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let store = migrated(&dir.path().join("fk.db")).await;
    store.create_user(&user("u1"), "h").await.unwrap();
    let orphan = Consent {
        user_id: "u1".to_owned(),
        client_id: "no-such-client".to_owned(),
        scopes: crate::support::scopes("openid"),
        created_at: NOW,
        updated_at: NOW,
    };
    // SQLite's extended result code (SQLITE_CONSTRAINT_FOREIGNKEY) is in the message, for logs.
    match store.save_consent(&orphan).await {
        Err(StoreError::Database(msg)) => assert!(msg.contains("(code: 787)"), "{msg}"),
        other => panic!("expected a database error, got {other:?}"),
    }
}

#[tokio::test]
async fn stores_sharing_a_file_agree() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(&dir.path().join("shared.db"));
    let first = SqliteStore::connect(&url).await.unwrap();
    let second = SqliteStore::connect(&url).await.unwrap();
    first.migrate().await.unwrap();
    second.migrate().await.unwrap();
    let applied = count(&first, "_sqlx_migrations").await;
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count();
    assert_eq!(applied, files as i64, "each migration applied once");

    let (a, b) = tokio::join!(first.server_secret("aaa"), second.server_secret("bbb"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);
    assert_eq!(first.server_secret("ccc").await.unwrap(), a);
}

#[tokio::test]
async fn schema_sql_matches_the_migrations() {
    let sql = mcpauth_store::sqlite_schema_sql();
    assert!(sql.contains(include_str!("../../migrations/sqlite/0001_init.sql")));
}

/// Scopes, redirect URIs and grant types are stored as the same text as ever, and a stored
/// value that does not parse is a database error naming its column, never a panic.
#[tokio::test]
async fn typed_columns_keep_their_text_and_refuse_corrupt_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = migrated(&dir.path().join("typed.db")).await;
    seed(&store, "u1", "c1").await;
    let text = |sql: &'static str| {
        let store = store.clone();
        async move {
            store
                .with_connection(move |conn| conn.query_row(sql, [], |row| row.get::<_, String>(0)))
                .await
                .unwrap()
        }
    };
    assert_eq!(
        text(r#"SELECT redirect_uris FROM "oauthApplication""#).await,
        r#"["http://127.0.0.1/cb"]"#
    );
    assert_eq!(
        text(r#"SELECT grant_types FROM "oauthApplication""#).await,
        r#"["authorization_code","refresh_token"]"#
    );
    assert_eq!(
        text(r#"SELECT redirect_uri FROM "oauthAuthorizationCode""#).await,
        "http://127.0.0.1/cb"
    );
    assert_eq!(text(r#"SELECT scopes FROM "oauthConsent""#).await, "openid");

    let corrupt = |sql: &'static str| {
        let store = store.clone();
        async move { run(&store, sql).await }
    };
    let database_error = |result: Result<(), StoreError>, column: &str| match result {
        Err(StoreError::Database(msg)) => assert!(msg.contains(column), "{msg}"),
        other => panic!("expected a database error naming {column}, got {other:?}"),
    };
    corrupt(r#"UPDATE "oauthConsent" SET scopes = 'open"id'"#).await;
    database_error(
        store.consent("u1", "c1").await.map(drop),
        "oauthConsent.scopes",
    );
    corrupt(r#"UPDATE "oauthAccessToken" SET scopes = 'a\b'"#).await;
    database_error(
        store.access_token("ah-u1").await.map(drop),
        "oauthAccessToken.scopes",
    );
    corrupt(r#"UPDATE "oauthApplication" SET redirect_uris = '["javascript:alert(1)"]'"#).await;
    database_error(
        store.client_by_id("c1").await.map(drop),
        "oauthApplication.redirect_uris",
    );
    corrupt(r#"UPDATE "oauthApplication" SET redirect_uris = '["http://127.0.0.1/cb"]', grant_types = '["implicit"]'"#).await;
    database_error(
        store.client_by_id("c1").await.map(drop),
        "oauthApplication.grant_types",
    );
    corrupt(r#"UPDATE "oauthAuthorizationCode" SET redirect_uri = 'not a uri', used_at = NULL"#)
        .await;
    database_error(
        store.unused_code("ch-u1").await.map(drop),
        "oauthAuthorizationCode.redirect_uri",
    );
}

/// A database created and migrated by sqlx's own SQLite driver (what mcpauth used before this
/// backend) opens and works as it is, and sqlx accepts the bookkeeping this backend writes:
/// both keep `_sqlx_migrations` the same way.
#[tokio::test]
async fn migrations_are_interchangeable_with_sqlx() {
    use sqlx::ConnectOptions;
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;

    let dir = tempfile::tempdir().unwrap();
    // Old → new: sqlx migrates, the store opens it, finds nothing to do, and works.
    let old = dir.path().join("old.db");
    let mut conn = SqliteConnectOptions::from_str(&file_url(&old))
        .unwrap()
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    mcpauth_store::SQLITE_MIGRATOR.run(&mut conn).await.unwrap();
    seed(&crate::sqlite::migrated_existing(&old).await, "u1", "c1").await;
    let store = crate::sqlite::migrated_existing(&old).await;
    assert!(store.access_token("ah-u1").await.unwrap().is_some());
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count();
    assert_eq!(count(&store, "_sqlx_migrations").await, files as i64);
    store.close().await;

    // New → old: the store migrates; sqlx validates the checksums and applies nothing.
    let new = dir.path().join("new.db");
    let store = migrated(&new).await;
    store.close().await;
    let mut conn = SqliteConnectOptions::from_str(&file_url(&new))
        .unwrap()
        .connect()
        .await
        .unwrap();
    mcpauth_store::SQLITE_MIGRATOR.run(&mut conn).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(applied, files as i64);

    // A migration changed after it was applied is refused, not re-run.
    let changed = dir.path().join("changed.db");
    let store = migrated(&changed).await;
    run(
        &store,
        "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 1",
    )
    .await;
    match store.migrate().await {
        Err(StoreError::Database(msg)) => assert!(msg.contains("modified"), "{msg}"),
        other => panic!("expected a refused migration, got {other:?}"),
    }
}

/// A store on an existing database file, migrated.
async fn migrated_existing(path: &Path) -> SqliteStore {
    let url = format!("{}?mode=rw", file_url(path));
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// An operation whose caller stops waiting still runs to its end on the database thread:
/// its transaction is either wholly there or not at all, and the store keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_operations_finish_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = migrated(&dir.path().join("abandon.db")).await;
    for n in 0..50 {
        let store = store.clone();
        let user = user(&format!("u{n}"));
        let call = tokio::spawn(async move { store.create_user(&user, "h").await });
        if n % 2 == 0 {
            call.abort();
        }
    }
    // Every user has exactly its credential account (both rows of one transaction, or neither).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let users = count(&store, "user").await;
    assert_eq!(count(&store, "account").await, users);
    assert!(users >= 25, "{users}");
    store.create_user(&user("last"), "h").await.unwrap();
}

/// Each `Store` call is one operation on the database threads — one hand-off — however many
/// statements it runs: the refresh grant's read, a rotation (six statements in a
/// transaction), a replayed code (three statements and a transaction), a lost redemption.
#[tokio::test]
async fn one_operation_per_store_call() {
    use mcpauth_core::model::{AccessToken, AuditEvent, CodeRedemption, RefreshToken, Rotation};

    let dir = tempfile::tempdir().unwrap();
    let store = migrated(&dir.path().join("ops.db")).await;
    seed(&store, "u1", "c1").await;
    let operations = || store.connection_usage().operations;
    let access = |id: &str| AccessToken {
        id: id.to_owned(),
        token_hash: format!("ah-{id}"),
        family_id: "f-u1".to_owned(),
        client_id: "c1".to_owned(),
        user_id: Some("u1".to_owned()),
        scopes: crate::support::scopes("openid"),
        audience: "https://mcp.example/".to_owned(),
        expires_at: NOW + 60,
        created_at: NOW,
        dpop_jkt: None,
    };
    let refresh = |id: &str| RefreshToken {
        id: id.to_owned(),
        token_hash: format!("rh-{id}"),
        family_id: "f-u1".to_owned(),
        client_id: "c1".to_owned(),
        user_id: "u1".to_owned(),
        scopes: crate::support::scopes("openid"),
        resource: "https://mcp.example/".to_owned(),
        expires_at: NOW + 600,
        created_at: NOW,
        rotated_at: None,
        retry_response: None,
        dpop_jkt: None,
    };
    let audit = AuditEvent {
        at: NOW,
        kind: "token.refresh".to_owned(),
        user_id: Some("u1".to_owned()),
        client_id: Some("c1".to_owned()),
        ip: None,
        detail: "{}".to_owned(),
    };

    let before = operations();
    assert!(
        store
            .refresh_token_with_user("rh-u1")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(operations(), before + 1);
    let rotated = store
        .rotate_refresh_token(
            "rh-u1",
            NOW + 1,
            "sealed",
            &access("a2"),
            &refresh("r2"),
            &audit,
        )
        .await
        .unwrap();
    assert_eq!(rotated, Rotation::Rotated);
    assert_eq!(operations(), before + 2);
    assert_eq!(
        store.consume_code("ch-u1", NOW + 2).await.unwrap(),
        CodeRedemption::Replayed
    );
    assert_eq!(operations(), before + 3);
    assert!(
        !store
            .redeem_code("ch-u1", NOW + 3, &access("a3"), None, &audit)
            .await
            .unwrap()
    );
    assert_eq!(operations(), before + 4);
}

/// Migration 0008 rebuilds the token tables (keyed by their hash): a database with tokens made
/// before it keeps every row and column, the tokens are found by their hash, a refresh token's
/// generation survives, a token hash is still unique, and deleting a user still cascades.
#[tokio::test]
async fn tokens_made_before_migration_8_survive_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("before8.db");
    let store = SqliteStore::connect(&file_url(&path)).await.unwrap();
    let older: Vec<(i64, String, Vec<u8>, String)> = mcpauth_store::SQLITE_MIGRATOR
        .iter()
        .filter(|m| {
            m.version < 8
                && !matches!(
                    m.migration_type,
                    sqlx::migrate::MigrationType::ReversibleDown
                )
        })
        .map(|m| {
            (
                m.version,
                m.description.to_string(),
                m.checksum.to_vec(),
                m.sql.as_str().to_owned(),
            )
        })
        .collect();
    assert!(older.len() >= 6);
    store
        .with_connection(move |conn| {
            conn.execute_batch(
                "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
                     installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL,
                     checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
            )?;
            for (version, description, checksum, sql) in older {
                conn.execute_batch(&sql)?;
                conn.execute(
                    "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                     VALUES (?1, ?2, TRUE, ?3, 0)",
                    rusqlite::params![version, description, checksum],
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();
    // Today's store writes the DPoP binding column (migration 11): give the old tables that
    // column, empty, for the seed. Migration 8's rebuild leaves it out; 11 adds it back, empty.
    run(
        &store,
        r#"ALTER TABLE "oauthAccessToken" ADD COLUMN dpop_jkt TEXT"#,
    )
    .await;
    run(
        &store,
        r#"ALTER TABLE "oauthRefreshToken" ADD COLUMN dpop_jkt TEXT"#,
    )
    .await;
    // Tokens written under the old schema (id as the primary key), one rotated refresh token.
    seed(&store, "u1", "c1").await;
    seed(&store, "u2", "c2").await;
    run(
        &store,
        r#"UPDATE "oauthRefreshToken" SET rotated_at = 5, retry_response = 'sealed', generation = 3
           WHERE token_hash = 'rh-u2'"#,
    )
    .await;
    let before: Vec<(String, String)> = rows_of(&store).await;

    store.migrate().await.unwrap();
    assert_eq!(rows_of(&store).await, before, "every row and column kept");
    let grant = store.access_token("ah-u1").await.unwrap().unwrap();
    assert_eq!(grant.token.id, "a-u1");
    let (refresh, family) = store.refresh_token("rh-u2").await.unwrap().unwrap();
    assert_eq!((refresh.id.as_str(), refresh.rotated_at), ("r-u2", Some(5)));
    assert_eq!(refresh.retry_response.as_deref(), Some("sealed"));
    assert_eq!(family.id, "f-u2");
    let generation: i64 = store
        .with_connection(|conn| {
            conn.query_row(
                r#"SELECT generation FROM "oauthRefreshToken" WHERE token_hash = 'rh-u2'"#,
                [],
                |row| row.get(0),
            )
        })
        .await
        .unwrap();
    assert_eq!(generation, 3);
    // The hash is still the unique key; the id is a plain column now.
    let duplicate = store
        .with_connection(|conn| {
            conn.execute_batch(
                r#"INSERT INTO "oauthAccessToken" (id, token_hash, family_id, client_id, user_id,
                       scopes, audience, expires_at, created_at)
                   VALUES ('a-other', 'ah-u1', 'f-u1', 'c1', 'u1', 'openid', 'x', 1, 1)"#,
            )
        })
        .await;
    assert!(duplicate.is_err(), "token_hash stays unique");
    // Foreign keys survive the rebuild: deleting a user takes their tokens with them.
    assert!(store.delete_user("u1").await.unwrap());
    assert!(store.access_token("ah-u1").await.unwrap().is_none());
    assert!(store.refresh_token("rh-u1").await.unwrap().is_none());
    assert!(store.access_token("ah-u2").await.unwrap().is_some());
    store.close().await;
}

/// Every token row as text, in order.
async fn rows_of(store: &SqliteStore) -> Vec<(String, String)> {
    store
        .with_connection(|conn| {
            let mut out = Vec::new();
            for (table, key) in [
                ("oauthAccessToken", "token_hash"),
                ("oauthRefreshToken", "token_hash"),
            ] {
                let sql = format!(r#"SELECT * FROM "{table}" ORDER BY {key}"#);
                let mut stmt = conn.prepare(&sql)?;
                let n = stmt.column_count();
                let names: Vec<String> = stmt
                    .column_names()
                    .iter()
                    .map(|c| (*c).to_owned())
                    .collect();
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    let mut cells = Vec::new();
                    for (i, name) in names.iter().enumerate().take(n) {
                        let value: rusqlite::types::Value = row.get(i)?;
                        cells.push(format!("{name}={value:?}"));
                    }
                    out.push((table.to_owned(), cells.join(",")));
                }
            }
            Ok(out)
        })
        .await
        .unwrap()
}
