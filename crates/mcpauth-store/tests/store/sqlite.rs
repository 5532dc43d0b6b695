//! SQLite-specific behaviour of [`SqliteStore`]: connection URLs and settings, the schema's
//! foreign keys and cascades, and several stores sharing one file. The backend-neutral
//! behaviour is in `contract`.

use std::path::Path;

use crate::support::{NOW, OWNED_TABLES, seed, user};
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
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(store.pool())
        .await
        .unwrap()
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

#[tokio::test]
async fn connection_settings() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&file_url(&dir.path().join("p.db")))
        .await
        .unwrap();
    let pool = store.pool();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(synchronous, 1, "NORMAL");
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(foreign_keys, 1);
    let busy_timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(busy_timeout, 5000);
    assert_eq!(pool.options().get_max_connections(), 4);
    // Writes have a connection of their own, with the same settings.
    let writer = store.writer_pool();
    assert_eq!(writer.options().get_max_connections(), 1);
    let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(writer)
        .await
        .unwrap();
    assert_eq!(journal_mode, "wal");
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(writer)
        .await
        .unwrap();
    assert_eq!(foreign_keys, 1);
    let size_limit: i64 = sqlx::query_scalar("PRAGMA journal_size_limit")
        .fetch_one(writer)
        .await
        .unwrap();
    assert_eq!(size_limit, 64 << 20);

    let small = SqliteStore::connect_with(&file_url(&dir.path().join("q.db")), 3)
        .await
        .unwrap();
    assert_eq!(small.pool().options().get_max_connections(), 3);
}

#[tokio::test]
async fn memory_database_is_one_connection() {
    let store = SqliteStore::connect_with("sqlite::memory:", 8)
        .await
        .unwrap();
    assert_eq!(store.pool().options().get_max_connections(), 1);
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

    sqlx::query(r#"DELETE FROM "user" WHERE id = 'u1'"#)
        .execute(store.pool())
        .await
        .unwrap();
    for table in OWNED_TABLES {
        assert_eq!(count(&store, table).await, 1, "{table}");
    }
    assert!(store.access_token("ah-u2").await.unwrap().is_some());
}

#[tokio::test]
async fn deleting_a_client_cascades() {
    let dir = tempfile::tempdir().unwrap();
    let store = migrated(&dir.path().join("c.db")).await;
    seed(&store, "u1", "c1").await;
    seed(&store, "u2", "c2").await;

    sqlx::query(r#"DELETE FROM "oauthApplication" WHERE client_id = 'c1'"#)
        .execute(store.pool())
        .await
        .unwrap();
    for table in [
        "oauthConsent",
        "oauthTokenFamily",
        "oauthAuthorizationCode",
        "oauthAccessToken",
        "oauthRefreshToken",
    ] {
        assert_eq!(count(&store, table).await, 1, "{table}");
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
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(first.pool())
        .await
        .unwrap();
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
        let pool = store.pool().clone();
        async move {
            sqlx::query_scalar::<_, String>(sql)
                .fetch_one(&pool)
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
        let pool = store.pool().clone();
        async move {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
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
