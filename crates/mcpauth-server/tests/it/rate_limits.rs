//! Rate limits on every backend (SECURITY M5, S26): in memory, in the database (SQLite and
//! PostgreSQL) and in Redis. A burst of registrations gets 429 with `Retry-After`; with a
//! shared backend the per-account sign-in lock set off on one instance holds on another; a
//! backend that is down lets requests through.
//!
//! PostgreSQL is `MCPAUTH_TEST_POSTGRES_URL`, Redis `MCPAUTH_TEST_REDIS_URL` (see `common`);
//! these tests fail when either is down.

use crate::common::*;
use mcpauth_core::ManualClock;
use mcpauth_server::Settings;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};

/// Where a test's servers keep their data and their counters.
enum Backend {
    /// SQLite, counters in memory (the SQLite default).
    Memory,
    /// SQLite, counters in its `"rateLimit"` table (`rate_limits.backend = "database"`).
    SqliteDatabase,
    /// PostgreSQL, counters in its `"rateLimit"` table (the PostgreSQL default).
    Postgres,
    /// SQLite, counters in Redis (chosen by `redis_url` alone).
    Redis,
}

/// One database (and Redis prefix) that any number of instances can be started on.
struct Deployment {
    database_url: String,
    redis_prefix: Option<String>,
    backend: &'static str,
    clock: ManualClock,
    _schema: Option<PgSchema>,
    _dir: tempfile::TempDir,
}

impl Deployment {
    async fn new(backend: Backend) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}", dir.path().join("mcpauth.db").display());
        let (database_url, schema, redis_prefix, name) = match backend {
            Backend::Memory => (sqlite, None, None, "memory"),
            Backend::SqliteDatabase => (sqlite, None, None, "database"),
            Backend::Postgres => {
                let schema = PgSchema::create().await;
                (schema.url(), Some(schema), None, "database")
            }
            Backend::Redis => (sqlite, None, Some(redis_prefix().await), "redis"),
        };
        Deployment {
            database_url,
            redis_prefix,
            backend: name,
            clock: ManualClock::new(),
            _schema: schema,
            _dir: dir,
        }
    }

    /// Starts one more instance, with rate limits on and `limits` applied.
    async fn instance(&self, limits: impl FnOnce(&mut Settings)) -> TestApp {
        let backend = self.backend;
        let redis = self.redis_prefix.clone();
        spawn_app_at(&self.database_url, &self.clock, |s| {
            s.rate_limits.enabled = true;
            if backend == "database" {
                // Explicit for SQLite; PostgreSQL would choose it anyway.
                s.rate_limits.backend = Some(mcpauth_server::RateLimitBackendChoice::Database);
            }
            if let Some(prefix) = redis {
                s.redis_url = Some(redis_url());
                s.redis_key_prefix = prefix;
            }
            limits(s);
        })
        .await
    }
}

async fn register(app: &TestApp) -> reqwest::Response {
    app.http
        .post(app.url("/api/auth/mcp/register"))
        .json(&json!({ "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none" }))
        .send()
        .await
        .unwrap()
}

/// Three registrations a window are allowed; the fourth gets 429 with `Retry-After` and an
/// OAuth error; the next window starts afresh.
async fn registration_burst(backend: Backend) {
    let deployment = Deployment::new(backend).await;
    let app = deployment
        .instance(|s| s.rate_limits.limits.register_per_ip = 3)
        .await;
    for attempt in 1..=3 {
        assert_eq!(
            register(&app).await.status(),
            StatusCode::CREATED,
            "registration {attempt}"
        );
    }
    let limited = register(&app).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: i64 = limited.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");

    app.clock.advance(retry_after);
    assert_eq!(
        register(&app).await.status(),
        StatusCode::CREATED,
        "a new window"
    );
}

#[tokio::test]
async fn m05_registration_burst_gets_429_in_memory() {
    registration_burst(Backend::Memory).await;
}

#[tokio::test]
async fn m05_registration_burst_gets_429_in_the_sqlite_database() {
    registration_burst(Backend::SqliteDatabase).await;
}

#[tokio::test]
async fn m05_registration_burst_gets_429_in_postgres() {
    registration_burst(Backend::Postgres).await;
}

#[tokio::test]
async fn m05_registration_burst_gets_429_in_redis() {
    registration_burst(Backend::Redis).await;
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/auth/sign-in/email"))
        .header("origin", &app.base)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

fn account_limit(s: &mut Settings) {
    s.rate_limits.limits.sign_in_per_account = 3;
}

/// Two instances of one deployment: three failed sign-ins on A lock the account on B too,
/// even for the right password; B answers 429 with `Retry-After`. Another account is not
/// affected, and the lock ends with the window.
async fn sign_in_lock_is_shared(backend: Backend) {
    let deployment = Deployment::new(backend).await;
    let a = deployment.instance(account_limit).await;
    let b = deployment.instance(account_limit).await;
    let victim = format!("victim-{}@example.com", unique_name("v").to_lowercase());
    let bystander = format!("bystander-{}@example.com", unique_name("b").to_lowercase());
    assert_eq!(a.sign_up(&client(), &victim).await.status(), StatusCode::OK);
    assert_eq!(
        b.sign_up(&client(), &bystander).await.status(),
        StatusCode::OK
    );

    for attempt in 1..=3 {
        assert_eq!(
            sign_in(&a, &victim, &format!("guess {attempt}"))
                .await
                .status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt} on A"
        );
    }
    let on_b = sign_in(&b, &victim, PASSWORD).await;
    assert_eq!(
        on_b.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the lock set off on A holds on B, even for the right password"
    );
    let retry_after: i64 = on_b.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        sign_in(&a, &victim, PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        sign_in(&b, &bystander, PASSWORD).await.status(),
        StatusCode::OK,
        "another account is not locked"
    );

    deployment.clock.advance(retry_after);
    assert_eq!(
        sign_in(&b, &victim, PASSWORD).await.status(),
        StatusCode::OK,
        "the lock ends with the window"
    );
}

#[tokio::test]
async fn s26_sign_in_lock_is_shared_through_postgres() {
    sign_in_lock_is_shared(Backend::Postgres).await;
}

#[tokio::test]
async fn s26_sign_in_lock_is_shared_through_redis() {
    sign_in_lock_is_shared(Backend::Redis).await;
}

#[tokio::test]
async fn s26_sign_in_lock_is_shared_through_the_sqlite_database() {
    sign_in_lock_is_shared(Backend::SqliteDatabase).await;
}

/// In memory (the SQLite default) each instance counts on its own: what the shared backends
/// are for.
#[tokio::test]
async fn s26_in_memory_limits_are_per_instance() {
    let deployment = Deployment::new(Backend::Memory).await;
    let a = deployment.instance(account_limit).await;
    let b = deployment.instance(account_limit).await;
    let victim = format!("victim-{}@example.com", unique_name("v").to_lowercase());
    a.sign_up(&client(), &victim).await;
    for _ in 1..=3 {
        sign_in(&a, &victim, "wrong guess").await;
    }
    assert_eq!(
        sign_in(&a, &victim, PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        sign_in(&b, &victim, PASSWORD).await.status(),
        StatusCode::OK
    );
}

/// A shared backend that is down does not take the server down: requests go through
/// uncounted (fail open), never a 5xx.
#[tokio::test]
async fn rate_limits_fail_open_when_redis_is_down() {
    // Nothing listens on port 1 of the loopback address.
    let app = spawn_app_with(|s| {
        s.rate_limits.enabled = true;
        s.rate_limits.limits.register_per_ip = 1;
        s.rate_limits.limits.sign_in_per_account = 1;
        s.redis_url = Some("redis://127.0.0.1:1".to_owned());
    })
    .await;
    for attempt in 1..=3 {
        assert_eq!(
            register(&app).await.status(),
            StatusCode::CREATED,
            "registration {attempt}"
        );
    }
    let email = format!("u-{}@example.com", unique_name("u").to_lowercase());
    assert_eq!(
        app.sign_up(&client(), &email).await.status(),
        StatusCode::OK
    );
    for _ in 1..=3 {
        assert_eq!(
            sign_in(&app, &email, "wrong").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        sign_in(&app, &email, PASSWORD).await.status(),
        StatusCode::OK
    );
}

/// The database backend also fails open: here its table is gone.
#[tokio::test]
async fn rate_limits_fail_open_when_the_database_table_fails() {
    let deployment = Deployment::new(Backend::Postgres).await;
    let app = deployment
        .instance(|s| s.rate_limits.limits.register_per_ip = 1)
        .await;
    assert_eq!(register(&app).await.status(), StatusCode::CREATED);
    assert_eq!(register(&app).await.status(), StatusCode::TOO_MANY_REQUESTS);
    {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::PgConnection::connect(&deployment.database_url)
            .await
            .unwrap();
        conn.execute(r#"DROP TABLE "rateLimit""#).await.unwrap();
        conn.close().await.unwrap();
    }
    for attempt in 1..=3 {
        assert_eq!(
            register(&app).await.status(),
            StatusCode::CREATED,
            "registration {attempt} without a counter table"
        );
    }
}

/// The backend each configuration chooses.
#[test]
fn the_backend_follows_the_settings() {
    use mcpauth_server::RateLimitBackendChoice as Choice;
    let choice = |configure: &dyn Fn(&mut Settings)| {
        let mut settings = Settings::default();
        configure(&mut settings);
        settings.rate_limit_backend()
    };
    assert_eq!(choice(&|_| {}).unwrap(), Choice::Memory, "SQLite");
    let pg = |s: &mut Settings| s.database_url = "postgres://db/auth".into();
    assert_eq!(choice(&pg).unwrap(), Choice::Database, "PostgreSQL");
    let redis = |s: &mut Settings| s.redis_url = Some("redis://cache".into());
    assert_eq!(choice(&redis).unwrap(), Choice::Redis);
    assert_eq!(
        choice(&|s| {
            pg(s);
            redis(s);
        })
        .unwrap(),
        Choice::Redis,
        "redis_url wins over the database"
    );
    assert_eq!(
        choice(&|s| {
            pg(s);
            s.rate_limits.backend = Some(Choice::Memory);
        })
        .unwrap(),
        Choice::Memory,
        "an explicit backend wins"
    );
    assert_eq!(
        choice(&|s| s.rate_limits.backend = Some(Choice::Database)).unwrap(),
        Choice::Database
    );
    let err = choice(&|s| s.rate_limits.backend = Some(Choice::Redis))
        .unwrap_err()
        .to_string();
    assert!(err.contains("redis_url"), "{err}");
    // An unknown backend is refused when the file is read.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mcpauth.toml");
    std::fs::write(&file, "[rate_limits]\nbackend = \"memcached\"\n").unwrap();
    let err = Settings::load(Some(&file), Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("memory, database or redis"), "{err}");
}
