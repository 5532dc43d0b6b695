//! PostgreSQL-specific behaviour of [`PgStore`]: connection URLs and pool settings, migrations
//! (repeated and concurrent), the schema's likeness to SQLite's, foreign keys and cascades, the
//! append-only audit log, and the hot path's index. Every test works in a schema of its own on
//! `MCPAUTH_TEST_POSTGRES_URL` (see `support`) and fails when the server is unreachable. The
//! backend-neutral behaviour is in `contract`.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::{CLIENT_TABLES, NOW, OWNED_TABLES, PgSchema, postgres_url, seed, user};
use mcpauth_core::model::{AuditEvent, Consent};
use mcpauth_core::{Store, StoreError};
use mcpauth_store::{PgStore, PgStoreOptions, SqliteStore};
use sqlx::{AssertSqlSafe, Row};

async fn count(store: &PgStore, table: &'static str) -> i64 {
    let sql = format!(r#"SELECT COUNT(*) FROM "{table}""#);
    sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// The tables in `schema`.
async fn tables_in(store: &PgStore, schema: &str) -> BTreeSet<String> {
    sqlx::query_scalar::<_, String>(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(schema)
    .fetch_all(store.pool())
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// `url` with `?` or `&` and `param` appended.
fn with_param(url: &str, param: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{param}")
}

#[tokio::test]
async fn url_forms() {
    let url = postgres_url();
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .expect("MCPAUTH_TEST_POSTGRES_URL starts with postgres:// or postgresql://");

    // Both schemes, and the search path given in the URL (both of sqlx's spellings).
    for (i, make) in [
        |rest: &str, schema: &str| {
            with_param(
                &format!("postgres://{rest}"),
                &format!("options=-c%20search_path%3D{schema}"),
            )
        },
        |rest: &str, schema: &str| {
            with_param(
                &format!("postgresql://{rest}"),
                &format!("options[search_path]={schema}"),
            )
        },
    ]
    .iter()
    .enumerate()
    {
        let schema = PgSchema::create().await;
        let url = make(rest, schema.name());
        let store = PgStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let tables = tables_in(&store, schema.name()).await;
        assert!(tables.contains("oauthAccessToken"), "form {i}: {tables:?}");
        assert!(tables.contains("_sqlx_migrations"), "form {i}: {tables:?}");
        store.create_user(&user("u1"), "h").await.unwrap();
        assert!(store.user_by_id("u1").await.unwrap().is_some());
        let application: String = sqlx::query_scalar("SHOW application_name")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(application, "mcpauth");
        store.close().await;
    }

    // A plain URL with the search path in the options.
    let schema = PgSchema::create().await;
    let store = schema.migrated_store().await;
    let search_path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(search_path, schema.name());
    assert!(tables_in(&store, schema.name()).await.contains("user"));
}

#[tokio::test]
async fn rejects_other_urls_without_echoing_them() {
    for url in [
        "sqlite://mcpauth.db",
        "mysql://user:hunter2@db/mcpauth",
        "user:hunter2@db/mcpauth",
    ] {
        match PgStore::connect(url).await {
            Err(StoreError::Database(msg)) => assert!(!msg.contains("hunter2"), "{msg}"),
            other => panic!("expected an error for {url}, got {other:?}"),
        }
    }
    // And SQLite refuses PostgreSQL URLs.
    assert!(SqliteStore::connect(&postgres_url()).await.is_err());
}

#[tokio::test]
async fn unreachable_server_fails_at_connect() {
    let options = PgStoreOptions {
        acquire_timeout: Duration::from_secs(1),
        ..PgStoreOptions::default()
    };
    // Port 1 on loopback: nothing listens there (sqlx keeps retrying a refused connection
    // until the acquire timeout, in case the server is starting).
    match PgStore::connect_with("postgres://mcpauth:hunter2@127.0.0.1:1/mcpauth", options).await {
        Err(StoreError::Database(msg)) => {
            assert!(msg.starts_with("cannot connect"), "{msg}");
            assert!(msg.contains("refused"), "names the cause: {msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn pool_settings() {
    let schema = PgSchema::create().await;
    let store = PgStore::connect(&with_param(
        &postgres_url(),
        &format!("options[search_path]={}", schema.name()),
    ))
    .await
    .unwrap();
    let options = store.pool().options();
    assert_eq!(options.get_max_connections(), 10);
    assert_eq!(options.get_acquire_timeout(), Duration::from_secs(30));

    let small = PgStore::connect_with(
        &postgres_url(),
        PgStoreOptions {
            max_connections: 3,
            acquire_timeout: Duration::from_secs(2),
            search_path: Some(schema.name().to_owned()),
        },
    )
    .await
    .unwrap();
    assert_eq!(small.pool().options().get_max_connections(), 3);
    assert_eq!(
        small.pool().options().get_acquire_timeout(),
        Duration::from_secs(2)
    );
}

#[tokio::test]
async fn migrate_twice_and_concurrently() {
    let schema = PgSchema::create().await;
    let first = schema.store().await;
    let second = schema.store().await;
    // Two instances starting at once: sqlx's advisory lock serialises them.
    let (a, b) = tokio::join!(first.migrate(), second.migrate());
    a.unwrap();
    b.unwrap();
    first.migrate().await.unwrap();
    Store::migrate(&second).await.unwrap();

    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(first.pool())
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count();
    assert_eq!(applied, files as i64, "each migration applied once");

    // Both instances see the same data.
    let (a, b) = tokio::join!(first.server_secret("aaa"), second.server_secret("bbb"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);
    assert_eq!(first.server_secret("ccc").await.unwrap(), a);
}

#[tokio::test]
async fn schema_sql_matches_the_migrations() {
    let sql = mcpauth_store::pg_schema_sql();
    assert!(sql.contains(include_str!("../../migrations/postgres/0001_init.sql")));
    assert!(sql.contains(include_str!(
        "../../migrations/postgres/0002_operations.sql"
    )));
    assert!(sql.contains(include_str!(
        "../../migrations/postgres/0003_rate_limits.sql"
    )));
    assert!(
        sql.find("-- migration 0001: init").unwrap()
            < sql.find("-- migration 0002: operations").unwrap()
    );
    assert!(
        sql.find("-- migration 0002: operations").unwrap()
            < sql.find("-- migration 0003: rate limits").unwrap()
    );

    // The generated text alone builds the schema (what `mcpauth generate` users run by hand).
    let schema = PgSchema::create().await;
    let store = schema.store().await;
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(store.pool())
        .await
        .unwrap();
    seed(&store, "u1", "c1").await;
}

/// Each schema's shape, in terms both dialects share: columns (with their type class,
/// nullability and primary-key position), indexes (with their columns and uniqueness),
/// foreign keys and triggers.
#[derive(Debug, Default, PartialEq, Eq)]
struct Shape {
    columns: BTreeSet<(String, String, &'static str, bool, i64)>,
    indexes: BTreeSet<(String, String, Vec<String>, bool)>,
    foreign_keys: BTreeSet<(String, String, String, String, String)>,
    triggers: BTreeSet<(String, String)>,
}

async fn sqlite_shape() -> Shape {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    // Read the schema with sqlx's driver, a second reader of the file.
    let pool = &sqlx::SqlitePool::connect(&url).await.unwrap();
    let mut shape = Shape::default();
    for row in sqlx::query(
        r#"SELECT m.name AS t, c.name AS c, c.type AS ty, c."notnull" AS nn, c.pk AS pk
           FROM sqlite_master m JOIN pragma_table_info(m.name) c
           WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations'"#,
    )
    .fetch_all(pool)
    .await
    .unwrap()
    {
        let ty: String = row.get("ty");
        let class = match ty.as_str() {
            "TEXT" => "text",
            "INTEGER" => "integer",
            other => panic!("unexpected SQLite type {other}"),
        };
        let pk: i64 = row.get("pk");
        // SQLite reports INTEGER PRIMARY KEY columns as nullable; they are not.
        let not_null: bool = row.get::<i64, _>("nn") == 1 || pk > 0;
        shape
            .columns
            .insert((row.get("t"), row.get("c"), class, not_null, pk));
    }
    for row in sqlx::query(
        r#"SELECT m.name AS i, m.tbl_name AS t, il."unique" AS u,
                  (SELECT group_concat(name, ',') FROM
                      (SELECT ii.name FROM pragma_index_info(m.name) ii ORDER BY ii.seqno)) AS cols
           FROM sqlite_master m JOIN pragma_index_list(m.tbl_name) il ON il.name = m.name
           WHERE m.type = 'index' AND m.tbl_name <> '_sqlx_migrations'"#,
    )
    .fetch_all(pool)
    .await
    .unwrap()
    {
        let mut name: String = row.get("i");
        let table: String = row.get("t");
        let columns: String = row.get("cols");
        if name.starts_with("sqlite_autoindex_") {
            // An unnamed index behind a UNIQUE constraint or a TEXT primary key: PostgreSQL
            // names these after the constraint.
            name = if table == "oauthApplication" && columns == "client_id" {
                "oauthApplication_client_id_key".to_owned()
            } else {
                format!("{table}_pkey")
            };
        }
        let unique: i64 = row.get("u");
        shape.indexes.insert((
            name,
            table,
            columns.split(',').map(str::to_owned).collect(),
            unique == 1,
        ));
    }
    // An INTEGER PRIMARY KEY is the rowid: the table is its own index, where PostgreSQL has
    // a primary-key index.
    let rowid_keys: Vec<(String, String)> = shape
        .columns
        .iter()
        .filter(|(table, _, class, _, pk)| {
            *class == "integer"
                && *pk == 1
                && !shape
                    .columns
                    .iter()
                    .any(|(t, _, _, _, p)| t == table && *p > 1)
        })
        .map(|(table, column, ..)| (table.clone(), column.clone()))
        .collect();
    for (table, column) in rowid_keys {
        shape
            .indexes
            .insert((format!("{table}_pkey"), table, vec![column], true));
    }
    for row in sqlx::query(
        r#"SELECT m.name AS t, f."from" AS c, f."table" AS rt, f."to" AS rc, f.on_delete AS d
           FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f
           WHERE m.type = 'table'"#,
    )
    .fetch_all(pool)
    .await
    .unwrap()
    {
        shape.foreign_keys.insert((
            row.get("t"),
            row.get("c"),
            row.get("rt"),
            row.get("rc"),
            row.get("d"),
        ));
    }
    for row in sqlx::query("SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'")
        .fetch_all(pool)
        .await
        .unwrap()
    {
        shape
            .triggers
            .insert((row.get("name"), row.get("tbl_name")));
    }
    shape
}

async fn pg_shape(store: &PgStore, schema: &str) -> Shape {
    let pool = store.pool();
    let mut shape = Shape::default();
    for row in sqlx::query(
        r#"SELECT c.table_name::text AS t, c.column_name::text AS c, c.data_type::text AS ty,
                  c.is_nullable::text AS nullable, c.collation_name::text AS collation,
                  COALESCE((SELECT k.ordinal_position::bigint
                            FROM information_schema.table_constraints tc
                            JOIN information_schema.key_column_usage k
                              ON k.constraint_name = tc.constraint_name
                             AND k.table_schema = tc.table_schema
                            WHERE tc.constraint_type = 'PRIMARY KEY'
                              AND tc.table_schema = c.table_schema
                              AND tc.table_name = c.table_name
                              AND k.column_name = c.column_name), 0) AS pk
           FROM information_schema.columns c
           WHERE c.table_schema = $1 AND c.table_name <> '_sqlx_migrations'"#,
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap()
    {
        let table: String = row.get("t");
        let column: String = row.get("c");
        let ty: String = row.get("ty");
        let class = match ty.as_str() {
            "text" => {
                let collation: Option<String> = row.get("collation");
                assert_eq!(collation.as_deref(), Some("C"), "{table}.{column}");
                "text"
            }
            "bigint" | "boolean" => "integer",
            other => panic!("unexpected PostgreSQL type {other} of {table}.{column}"),
        };
        let nullable: String = row.get("nullable");
        shape
            .columns
            .insert((table, column, class, nullable == "NO", row.get("pk")));
    }
    for row in sqlx::query(
        r#"SELECT i.relname::text AS i, t.relname::text AS t, x.indisunique AS u,
                  array_agg(a.attname::text ORDER BY k.ord) AS cols
           FROM pg_index x
           JOIN pg_class i ON i.oid = x.indexrelid
           JOIN pg_class t ON t.oid = x.indrelid
           JOIN pg_namespace n ON n.oid = t.relnamespace
           CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
           WHERE n.nspname = $1 AND t.relname <> '_sqlx_migrations'
           GROUP BY i.relname, t.relname, x.indisunique"#,
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap()
    {
        shape
            .indexes
            .insert((row.get("i"), row.get("t"), row.get("cols"), row.get("u")));
    }
    for row in sqlx::query(
        r#"SELECT t.relname::text AS t, a.attname::text AS c, rt.relname::text AS rt,
                  ra.attname::text AS rc,
                  CASE con.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'a' THEN 'NO ACTION'
                       ELSE con.confdeltype::text END AS d
           FROM pg_constraint con
           JOIN pg_class t ON t.oid = con.conrelid
           JOIN pg_namespace n ON n.oid = t.relnamespace
           JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
           JOIN pg_class rt ON rt.oid = con.confrelid
           JOIN pg_attribute ra ON ra.attrelid = con.confrelid AND ra.attnum = con.confkey[1]
           WHERE con.contype = 'f' AND n.nspname = $1"#,
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap()
    {
        shape.foreign_keys.insert((
            row.get("t"),
            row.get("c"),
            row.get("rt"),
            row.get("rc"),
            row.get("d"),
        ));
    }
    for row in sqlx::query(
        r#"SELECT DISTINCT trigger_name::text AS name, event_object_table::text AS t
           FROM information_schema.triggers WHERE trigger_schema = $1"#,
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap()
    {
        shape.triggers.insert((row.get("name"), row.get("t")));
    }
    // information_schema.triggers lists no TRUNCATE triggers.
    let truncate: Vec<String> = sqlx::query_scalar(
        r#"SELECT tg.tgname::text FROM pg_trigger tg
           JOIN pg_class t ON t.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = t.relnamespace
           WHERE n.nspname = $1 AND NOT tg.tgisinternal AND (tg.tgtype & 32) <> 0"#,
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(truncate, ["auditLog_no_truncate"]);
    shape
}

/// The two dialects' migrations build the same tables, columns, keys, indexes and triggers
/// (PostgreSQL adds only a TRUNCATE guard, which SQLite has no need for).
#[tokio::test]
async fn schema_has_the_same_shape_as_sqlite() {
    let schema = PgSchema::create().await;
    let store = schema.migrated_store().await;
    let pg = pg_shape(&store, schema.name()).await;
    let sqlite = sqlite_shape().await;
    assert!(!sqlite.columns.is_empty() && !sqlite.indexes.is_empty());
    assert_eq!(pg.columns, sqlite.columns);
    assert_eq!(pg.indexes, sqlite.indexes);
    assert_eq!(pg.foreign_keys, sqlite.foreign_keys);
    assert_eq!(pg.triggers, sqlite.triggers);

    // Flags are BOOLEAN, and only flags.
    let booleans: BTreeSet<String> = sqlx::query_scalar(
        r#"SELECT table_name::text || '.' || column_name::text FROM information_schema.columns
           WHERE table_schema = $1 AND data_type = 'boolean'
             AND table_name <> '_sqlx_migrations'"#,
    )
    .bind(schema.name())
    .fetch_all(store.pool())
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(
        booleans,
        [
            "oauthApplication.disabled",
            "oauthApplication.registered_dynamically",
            "oauthApplication.skip_consent",
            "oauthConsent.consent_given",
            "user.disabled",
            "user.email_verified",
        ]
        .map(str::to_owned)
        .into()
    );
}

#[tokio::test]
async fn deleting_a_user_cascades() {
    let schema = PgSchema::create().await;
    let store = schema.migrated_store().await;
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
    sqlx::query(r#"DELETE FROM "user" WHERE id = 'u2'"#)
        .execute(store.pool())
        .await
        .unwrap();
    assert!(store.access_token("ah-u2").await.unwrap().is_none());
    for table in OWNED_TABLES {
        let left = i64::from(table == "oauthAccessToken");
        assert_eq!(count(&store, table).await, left, "{table}");
    }
}

#[tokio::test]
async fn deleting_a_client_cascades() {
    let schema = PgSchema::create().await;
    let store = schema.migrated_store().await;
    seed(&store, "u1", "c1").await;
    seed(&store, "u2", "c2").await;

    assert!(store.delete_client("c1").await.unwrap());
    for table in CLIENT_TABLES {
        assert_eq!(count(&store, table).await, 1, "{table}");
    }
    // Behind the store's back: as for a user (see deleting_a_user_cascades).
    sqlx::query(r#"DELETE FROM "oauthApplication" WHERE client_id = 'c2'"#)
        .execute(store.pool())
        .await
        .unwrap();
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
    let schema = PgSchema::create().await;
    let store = schema.migrated_store().await;
    store.create_user(&user("u1"), "h").await.unwrap();
    let orphan = Consent {
        user_id: "u1".to_owned(),
        client_id: "no-such-client".to_owned(),
        scopes: crate::support::scopes("openid"),
        created_at: NOW,
        updated_at: NOW,
    };
    // A foreign-key violation is not a conflict; its SQLSTATE is in the message, for logs.
    match store.save_consent(&orphan).await {
        Err(StoreError::Database(msg)) => assert!(msg.ends_with(" (code 23503)"), "{msg}"),
        other => panic!("expected a database error, got {other:?}"),
    }
}

#[tokio::test]
async fn audit_log_is_append_only() {
    let schema = PgSchema::create().await;
    let store = schema.migrated_store().await;
    for i in 0..2 {
        store
            .append_audit(&AuditEvent {
                at: NOW + i,
                kind: format!("event.{i}"),
                user_id: None,
                client_id: None,
                ip: None,
                detail: "{}".to_owned(),
            })
            .await
            .unwrap();
    }
    for statement in [
        r#"UPDATE "auditLog" SET kind = 'forged'"#,
        r#"DELETE FROM "auditLog""#,
        r#"DELETE FROM "auditLog" WHERE kind = 'event.0'"#,
        r#"TRUNCATE "auditLog""#,
        // Ids come from the log itself.
        r#"INSERT INTO "auditLog" (id, at, kind, detail) VALUES (1000, 0, 'forged', '{}')"#,
    ] {
        let err = sqlx::query(statement)
            .execute(store.pool())
            .await
            .expect_err(statement);
        assert!(err.as_database_error().is_some(), "{statement}: {err}");
    }
    let err = sqlx::query(r#"DELETE FROM "auditLog""#)
        .execute(store.pool())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("the audit log is append-only"),
        "{err}"
    );
    let kinds: Vec<String> = store
        .audit_events(10)
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.kind)
        .collect();
    assert_eq!(kinds, ["event.1", "event.0"]);
}

/// Text sorts byte-wise, as in SQLite, whatever the database's collation: ties on
/// `created_at` order by id the same way on both backends.
#[tokio::test]
async fn text_orders_bytewise() {
    let schema = PgSchema::create().await;
    let store = schema.migrated_store().await;
    for id in ["b", "B", "a", "_", "A"] {
        let mut u = user(id);
        u.email = format!("{}@example.com", id.as_bytes()[0]);
        store.create_user(&u, "h").await.unwrap();
    }
    let ids: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(ids, ["A", "B", "_", "a", "b"]);
}

/// Two instances (two pools on one database) count the same rate-limit windows: concurrent
/// hits through either are all counted, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_are_shared_by_instances() {
    let schema = PgSchema::create().await;
    let a = schema.migrated_store().await;
    let b = schema.store().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move {
            store
                .rate_limit_hit("register:192.0.2.7", NOW, NOW + 60)
                .await
        });
    }
    let mut counts = Vec::new();
    while let Some(result) = tasks.join_next().await {
        counts.push(result.unwrap().unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=40).collect::<Vec<u32>>());
    assert_eq!(
        b.rate_limit_count("register:192.0.2.7", NOW).await.unwrap(),
        40
    );
    assert_eq!(
        count(&a, "rateLimit").await,
        1,
        "one row per key and window"
    );
}

/// `sslmode=require` connects over TLS (sqlx's rustls support is compiled in), as managed
/// PostgreSQL services demand. The test server must accept TLS: Debian's default cluster does,
/// with its self-signed "snakeoil" certificate, which `require` (encryption without
/// certificate verification, as in libpq) accepts.
#[tokio::test]
async fn sslmode_require_encrypts_the_connection() {
    let schema = PgSchema::create().await;
    let url = with_param(&postgres_url(), "sslmode=require");
    let store = PgStore::connect_with(&url, schema.options())
        .await
        .unwrap_or_else(|err| {
            panic!(
                "sslmode=require failed ({err}); the test server must have ssl = on \
                 (Debian's clusters do by default)"
            )
        });
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(encrypted, "the connection is encrypted");
    store.migrate().await.unwrap();
    seed(&store, "u1", "c1").await;

    let plain = PgStore::connect_with(
        &with_param(&postgres_url(), "sslmode=disable"),
        schema.options(),
    )
    .await
    .unwrap();
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(plain.pool())
            .await
            .unwrap();
    assert!(!encrypted, "sslmode=disable stays plain");
}

/// Two instances (two pools on one database) claim a connection's refresh: of forty
/// concurrent claims through either, exactly one succeeds (SECURITY V4, single-flight across
/// instances).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn v4_refresh_claims_are_single_flight_across_instances() {
    use mcpauth_core::model::SealedTokens;
    let schema = PgSchema::create().await;
    let a = schema.migrated_store().await;
    let b = schema.store().await;
    a.create_user(&user("u1"), "h").await.unwrap();
    let tokens = SealedTokens {
        key_id: "k1".to_owned(),
        access_token_sealed: "sealed".to_owned(),
        refresh_token_sealed: Some("sealed-refresh".to_owned()),
        token_type: "Bearer".to_owned(),
        expires_at: Some(NOW + 10),
        scopes: String::new(),
    };
    let audit = AuditEvent {
        at: NOW,
        kind: "connection.connected".to_owned(),
        user_id: Some("u1".to_owned()),
        client_id: None,
        ip: None,
        detail: "{}".to_owned(),
    };
    a.save_connection("u1", "github", &tokens, NOW, &audit)
        .await
        .unwrap();
    let (record, _) = b.connection("u1", "github").await.unwrap().unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let generation = record.generation;
        tasks.spawn(async move {
            store
                .claim_connection_refresh("u1", "github", generation, NOW + 1, NOW + 31)
                .await
        });
    }
    let mut won = 0;
    while let Some(result) = tasks.join_next().await {
        won += usize::from(result.unwrap().unwrap());
    }
    assert_eq!(won, 1);
}
