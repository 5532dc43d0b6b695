//! Test kit: starts the real server (the same composition the binary runs) on port 0 with a
//! fresh SQLite file and a clock the test can move, and drives it over real HTTP.

pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpauth_core::ManualClock;
use mcpauth_server::{Application, Settings};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

pub use tls::TestTls;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    /// The issuer, e.g. `http://localhost:PORT`.
    pub base: String,
    pub clock: ManualClock,
    pub db_path: PathBuf,
    /// A client with no cookie jar and no redirects.
    pub http: Client,
    _dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Waits out the validated-token cache's revocation check interval (default settings): a
/// revocation made by another process — the admin CLI, another instance, or a store handle of
/// the test's own — has taken effect on a running server by the time this returns. (Revocations
/// made through the server itself take effect at once and need no wait.)
pub async fn after_revocation_check() {
    let interval = mcpauth::TokenCacheOptions::default().revocation_check_interval;
    tokio::time::sleep(interval + std::time::Duration::from_millis(5)).await;
}

/// Settings for a test server: port 0, a fresh database, no rate limits.
pub fn test_settings() -> Settings {
    let mut settings = Settings {
        bind: "127.0.0.1:0".into(),
        ..Settings::default()
    };
    settings.rate_limits.enabled = false;
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("mcpauth.db");
    let mut settings = test_settings();
    settings.database_url = format!("sqlite://{}", db_path.display());
    configure(&mut settings);
    let clock = ManualClock::new();
    let app = Application::build(&settings, Some(Arc::new(clock.clone())))
        .await
        .expect("the server builds");
    let base = app.issuer().to_owned();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        base,
        clock,
        db_path,
        http: client(),
        _dir: dir,
        shutdown: Some(tx),
    }
}

/// Like [`spawn_app_with`], and also returns the server's [`mcpauth::McpAuth`] handle (for
/// what only the library reaches, such as a user's connected-account token).
pub async fn spawn_app_with_auth(
    configure: impl FnOnce(&mut Settings),
) -> (TestApp, mcpauth::McpAuth) {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("mcpauth.db");
    let mut settings = test_settings();
    settings.database_url = format!("sqlite://{}", db_path.display());
    configure(&mut settings);
    let clock = ManualClock::new();
    let app = Application::build(&settings, Some(Arc::new(clock.clone())))
        .await
        .expect("the server builds");
    let base = app.issuer().to_owned();
    let auth = app.auth().clone();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let test_app = TestApp {
        base,
        clock,
        db_path,
        http: client(),
        _dir: dir,
        shutdown: Some(tx),
    };
    (test_app, auth)
}

/// A client that does not follow redirects and has no cookie jar.
pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A "browser": keeps cookies, does not follow redirects.
pub fn browser() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

/// A PKCE pair (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(mcpauth_core::secret::random_bytes::<32>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub fn location(response: &Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// An email address no other test uses.
pub fn unique_email() -> String {
    format!(
        "user-{}@example.com",
        mcpauth_core::secret::random_id().to_lowercase()
    )
}

/// A fresh account (signed up in a throwaway client, so no browser is signed in); returns its
/// email.
pub async fn existing_user(app: &TestApp) -> String {
    let email = unique_email();
    let response = app.sign_up(&client(), &email).await;
    assert_eq!(response.status(), StatusCode::OK);
    email
}

/// GETs a page in `browser`: status, headers and body.
pub async fn get_page(browser: &Client, url: &str) -> (StatusCode, HeaderMap, String) {
    let response = browser.get(url).send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// The `Set-Cookie` headers of a response.
pub fn set_cookies(response: &Response) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The query parameters of a URL (absolute or relative).
pub fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    let parsed = url::Url::parse(url)
        .or_else(|_| {
            url::Url::parse("http://relative.invalid")
                .unwrap()
                .join(url)
        })
        .unwrap();
    parsed.query_pairs().into_owned().collect()
}

pub const REDIRECT_URI: &str = "http://localhost:9999/callback";

/// The authorization endpoint's path.
pub const AUTHORIZE: &str = "/api/auth/mcp/authorize";

/// Tokens from a completed flow.
pub struct Flow {
    pub client_id: String,
    pub browser: Client,
    pub tokens: Value,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn resource(&self) -> String {
        self.url("/api/mcp")
    }

    /// Signs a new user up through the JSON API in `browser` (which then holds the session).
    pub async fn sign_up(&self, browser: &Client, email: &str) -> Response {
        browser
            .post(self.url("/api/auth/sign-up/email"))
            .header("origin", &self.base)
            .json(&json!({ "email": email, "password": PASSWORD, "name": "Test User" }))
            .send()
            .await
            .unwrap()
    }

    /// A browser that is signed in as a fresh user.
    pub async fn signed_in_browser(&self) -> Client {
        let browser = browser();
        let response = self.sign_up(&browser, &unique_email()).await;
        assert_eq!(response.status(), StatusCode::OK, "sign-up works");
        browser
    }

    /// Registers a client; panics unless the server answers 201.
    pub async fn register(&self, body: Value) -> Value {
        let response = self
            .http
            .post(self.url("/api/auth/mcp/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    /// Registers a public client the way MCP SDK clients do.
    pub async fn register_public(&self, redirect_uri: &str) -> String {
        let client = self
            .register(json!({
                "client_name": "Test MCP Client",
                "redirect_uris": [redirect_uri],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }))
            .await;
        client["client_id"].as_str().unwrap().to_owned()
    }

    /// `GET /authorize` with these parameters in `browser`.
    pub async fn authorize(&self, browser: &Client, params: &[(&str, &str)]) -> Response {
        let url = reqwest::Url::parse_with_params(&self.url(AUTHORIZE), params).unwrap();
        browser.get(url).send().await.unwrap()
    }

    /// Standard authorization parameters for a public client.
    pub fn authorize_params<'a>(
        client_id: &'a str,
        challenge: &'a str,
        scope: &'a str,
        state: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT_URI),
            ("scope", scope),
            ("state", state),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ]
    }

    /// Approves a consent redirect through the JSON API; returns the final redirect URL.
    pub async fn approve(&self, browser: &Client, consent_location: &str, accept: bool) -> String {
        let consent_code = query_of(consent_location)["consent_code"].clone();
        let response = browser
            .post(self.url("/api/auth/oauth2/consent"))
            .header("origin", &self.base)
            .json(&json!({ "accept": accept, "consent_code": consent_code }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["redirectURI"].as_str().unwrap().to_owned()
    }

    /// Authorizes (approving consent when asked) and returns the code.
    pub async fn code_for(
        &self,
        browser: &Client,
        client_id: &str,
        challenge: &str,
        scope: &str,
    ) -> String {
        self.code_for_resource(browser, client_id, challenge, scope, None)
            .await
    }

    /// [`Self::code_for`], naming `resource` (RFC 8707) when given.
    pub async fn code_for_resource(
        &self,
        browser: &Client,
        client_id: &str,
        challenge: &str,
        scope: &str,
        resource: Option<&str>,
    ) -> String {
        let mut params = Self::authorize_params(client_id, challenge, scope, "st");
        if let Some(resource) = resource {
            params.push(("resource", resource));
        }
        let response = self.authorize(browser, &params).await;
        assert_eq!(response.status(), StatusCode::FOUND);
        let mut target = location(&response);
        if target.starts_with("/consent") {
            target = self.approve(browser, &target, true).await;
        }
        assert!(
            target.starts_with(REDIRECT_URI),
            "ends at the client: {target}"
        );
        query_of(&target)["code"].clone()
    }

    /// POSTs a form to the token endpoint.
    pub async fn token(&self, form: &[(&str, &str)]) -> Response {
        self.http
            .post(self.url("/api/auth/mcp/token"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// The whole flow for a fresh user and public client, ending with tokens.
    pub async fn full_flow(&self, scope: &str) -> Flow {
        self.full_flow_for(scope, None).await
    }

    /// [`Self::full_flow`], for `resource` (RFC 8707) when given: named to the authorization
    /// and the token endpoints.
    pub async fn full_flow_for(&self, scope: &str, resource: Option<&str>) -> Flow {
        let browser = self.signed_in_browser().await;
        let client_id = self.register_public(REDIRECT_URI).await;
        let (verifier, challenge) = pkce();
        let code = self
            .code_for_resource(&browser, &client_id, &challenge, scope, resource)
            .await;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
        ];
        if let Some(resource) = resource {
            form.push(("resource", resource));
        }
        let response = self.token(&form).await;
        assert_eq!(response.status(), StatusCode::OK);
        Flow {
            client_id,
            browser,
            tokens: response.json().await.unwrap(),
        }
    }

    /// `GET /api/auth/mcp/get-session` with a bearer token; the status.
    pub async fn session_status(&self, access_token: &str) -> StatusCode {
        self.http
            .get(self.url("/api/auth/mcp/get-session"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// A read-only connection to the server's database.
    pub async fn db(&self) -> sqlx::SqlitePool {
        sqlx::SqlitePool::connect(&format!("sqlite://{}", self.db_path.display()))
            .await
            .unwrap()
    }
}

/// Undoes the HTML escaping of a page's text and attribute values (`&amp;`, `&#x27;`, …).
pub fn html_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let decoded = rest.find(';').and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            }?;
            Some((c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The (unescaped) value of the `<input … name="NAME" … value="…">` of an HTML page, if any.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\"");
    html.split('<')
        .filter(|tag| tag.starts_with("input") && tag.contains(&needle))
        .find_map(|tag| {
            let start = tag.find("value=\"")? + "value=\"".len();
            let len = tag[start..].find('"')?;
            Some(html_unescape(&tag[start..start + len]))
        })
}

/// Builds an [`Application`] from `settings` with `clock` and runs it in the background;
/// returns its issuer and the sender that stops it.
async fn launch(
    settings: &Settings,
    clock: &ManualClock,
) -> anyhow::Result<(String, oneshot::Sender<()>)> {
    let app = Application::build(settings, Some(Arc::new(clock.clone()))).await?;
    let base = app.issuer().to_owned();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    Ok((base, tx))
}

/// Starts a server on the database at `database_url` (SQLite or PostgreSQL), reading time from
/// `clock`, with the test settings changed by `configure`. Several of these on one database (and
/// one clock, so that they agree on rate-limit windows) are instances of one deployment.
pub async fn spawn_app_at(
    database_url: &str,
    clock: &ManualClock,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = test_settings();
    settings.database_url = database_url.to_owned();
    configure(&mut settings);
    let (base, tx) = launch(&settings, clock).await.expect("the server builds");
    let db_path = database_url
        .strip_prefix("sqlite://")
        .map(PathBuf::from)
        .unwrap_or_default();
    TestApp {
        base,
        clock: clock.clone(),
        db_path,
        http: client(),
        _dir: tempfile::tempdir().unwrap(),
        shutdown: Some(tx),
    }
}

/// Starts another server on an existing database file (a second instance sharing it), with
/// its own port and clock and the test settings changed by `configure`.
pub async fn spawn_app_on(
    db_path: &std::path::Path,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = test_settings();
    settings.database_url = format!("sqlite://{}", db_path.display());
    configure(&mut settings);
    let clock = ManualClock::new();
    let (base, tx) = launch(&settings, &clock).await.expect("the server builds");
    TestApp {
        base,
        clock,
        db_path: db_path.to_owned(),
        http: client(),
        // The database lives elsewhere; this directory only satisfies the struct.
        _dir: tempfile::tempdir().unwrap(),
        shutdown: Some(tx),
    }
}

impl TestApp {
    /// Stops this server and starts a new one on the same port, database file and clock, with
    /// the test settings changed by `configure`: a restart, as clients see it.
    pub async fn restart(mut self, configure: impl Fn(&mut Settings)) -> TestApp {
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        let db_path = self.db_path.clone();
        let clock = self.clock.clone();
        let port = url::Url::parse(&self.base).unwrap().port().unwrap();
        drop(self);
        let mut settings = test_settings();
        settings.database_url = format!("sqlite://{}", db_path.display());
        settings.bind = format!("127.0.0.1:{port}");
        configure(&mut settings);
        // The old server lets go of its port asynchronously, once it has seen the shutdown.
        let mut attempts = 0;
        let (base, tx) = loop {
            match launch(&settings, &clock).await {
                Ok(started) => break started,
                Err(_) if attempts < 200 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(error) => panic!("the restarted server does not start: {error:#}"),
            }
        };
        TestApp {
            base,
            clock,
            db_path,
            http: client(),
            _dir: dir,
            shutdown: Some(tx),
        }
    }
}

/// Like [`spawn_app_with`], and also returns the address the server listens on: the only way
/// to reach it when the configured issuer (e.g. `https://…`) is not where it listens.
pub async fn spawn_app_with_address(
    configure: impl FnOnce(&mut Settings),
) -> (TestApp, std::net::SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("mcpauth.db");
    let mut settings = test_settings();
    settings.database_url = format!("sqlite://{}", db_path.display());
    configure(&mut settings);
    let clock = ManualClock::new();
    let app = Application::build(&settings, Some(Arc::new(clock.clone())))
        .await
        .expect("the server builds");
    let base = app.issuer().to_owned();
    let address = app.address();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let test_app = TestApp {
        base,
        clock,
        db_path,
        http: client(),
        _dir: dir,
        shutdown: Some(tx),
    };
    (test_app, address)
}

/// One stored value: its table, its column, and the value as text (blobs decoded lossily).
#[derive(Debug, Clone)]
pub struct StoredValue {
    pub table: String,
    pub column: String,
    pub value: String,
}

impl TestApp {
    /// Every non-NULL value of every column of every table in the server's database.
    pub async fn db_values(&self) -> Vec<StoredValue> {
        let pool = self.db().await;
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&pool)
                .await
                .unwrap();
        let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
        let mut out = Vec::new();
        for table in tables {
            let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
                .bind(&table)
                .fetch_all(&pool)
                .await
                .unwrap();
            for column in columns {
                // Names come from the schema itself, quoted.
                let sql = format!(
                    "SELECT CAST({} AS BLOB) FROM {}",
                    quote(&column),
                    quote(&table)
                );
                let values: Vec<Option<Vec<u8>>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                out.extend(values.into_iter().flatten().map(|bytes| StoredValue {
                    table: table.clone(),
                    column: column.clone(),
                    value: String::from_utf8_lossy(&bytes).into_owned(),
                }));
            }
        }
        pool.close().await;
        out
    }
}

// ---- PostgreSQL and Redis -------------------------------------------------------------------
// The server the PostgreSQL tests use is `MCPAUTH_TEST_POSTGRES_URL` (default
// postgres://postgres@127.0.0.1:5432/test), the Redis `MCPAUTH_TEST_REDIS_URL` (default
// redis://127.0.0.1:6379). A server that is down fails the test: CI starts both, and a test of
// shared state that passes without them proves nothing.

/// `MCPAUTH_TEST_POSTGRES_URL`, or the local test server.
pub fn postgres_url() -> String {
    std::env::var("MCPAUTH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// `MCPAUTH_TEST_REDIS_URL`, or the local test Redis.
pub fn redis_url() -> String {
    std::env::var("MCPAUTH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A name no other test (in this or another process) uses.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A Redis key prefix of this test's own, after checking that Redis answers.
pub async fn redis_prefix() -> String {
    let url = redis_url();
    let redis = mcpauth::RedisRateLimits::new(&url, "unused:").unwrap();
    if let Err(error) = redis.ping().await {
        panic!(
            "Redis at {url} does not answer ({error}): start it, or point MCPAUTH_TEST_REDIS_URL \
             at one the tests may write to"
        );
    }
    format!("{}:", unique_name("mcpauth-test"))
}

/// A PostgreSQL schema made for one test, dropped with everything in it when this value is
/// dropped. Servers reach it through [`PgSchema::url`].
pub struct PgSchema {
    pub name: String,
}

impl PgSchema {
    pub async fn create() -> PgSchema {
        use sqlx::{Connection, Executor};
        let url = postgres_url();
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "PostgreSQL at {url} is unreachable ({err}): start it, or point \
                     MCPAUTH_TEST_POSTGRES_URL at a server the tests may create schemas in"
                )
            });
        let name = unique_name("test");
        conn.execute(sqlx::AssertSqlSafe(format!(r#"CREATE SCHEMA "{name}""#)))
            .await
            .unwrap();
        conn.close().await.unwrap();
        PgSchema { name }
    }

    /// The database URL whose connections work in this schema (`options=-c search_path=…`).
    pub fn url(&self) -> String {
        let url = postgres_url();
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}options=-c%20search_path%3D{}", self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop cannot await: drop the schema from a thread with a runtime of its own.
        let sql = format!(r#"DROP SCHEMA IF EXISTS "{}" CASCADE"#, self.name);
        let dropped = std::thread::spawn(move || {
            use sqlx::{Connection, Executor};
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&postgres_url()).await?;
                // A server of the test may still hold connections; wait for them, not forever.
                conn.execute("SET lock_timeout = '30s'").await?;
                conn.execute(sqlx::AssertSqlSafe(sql)).await?;
                conn.close().await
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}: {dropped:?}", self.name);
        }
    }
}

/// `mcpauth` (the binary under test) run in `dir`, without any `MCPAUTH_*` variable of the
/// test's environment.
pub fn mcpauth(dir: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcpauth"));
    command.current_dir(dir).kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MCPAUTH_") {
            command.env_remove(key);
        }
    }
    command
}

impl TestApp {
    /// A handle on a server this test did not start in-process (a `mcpauth serve` child at
    /// `base`): the request helpers work on it; its clock is not the server's.
    pub fn external(base: &str) -> TestApp {
        TestApp {
            base: base.to_owned(),
            clock: ManualClock::new(),
            db_path: PathBuf::new(),
            http: client(),
            _dir: tempfile::tempdir().unwrap(),
            shutdown: None,
        }
    }
}

/// A running `mcpauth serve` child with its banner read: its listening address and, when
/// `metrics_bind` is set, its metrics address.
pub struct ServeChild {
    pub child: tokio::process::Child,
    pub address: String,
    pub metrics: Option<String>,
    /// What it printed up to the end of its banner.
    pub banner: Vec<String>,
    /// The rest of its standard output.
    pub stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl ServeChild {
    /// Spawns `command` (a `mcpauth serve` with stdout piped by this function) and waits for
    /// the banner through its `Rate limits:` line (or for its JSON event).
    pub async fn start(command: &mut tokio::process::Command) -> ServeChild {
        use tokio::io::AsyncBufReadExt;
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("mcpauth serve starts");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut address, mut metrics, mut banner) = (None, None, Vec::new());
        loop {
            let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("serve prints its banner: {banner:?}"))
                .unwrap()
                .unwrap_or_else(|| panic!("serve exited early: {banner:?}"));
            banner.push(line.clone());
            // With `log_format = "json"` the banner is one JSON event.
            if let Ok(event) = serde_json::from_str::<Value>(&line) {
                address = event["listening_on"].as_str().map(str::to_owned);
                metrics = event["metrics"].as_str().map(str::to_owned);
                break;
            }
            let line = line.trim();
            if let Some(value) = line.strip_prefix("Listening on:") {
                address = Some(value.trim().to_owned());
            }
            if let Some(value) = line.strip_prefix("Metrics:") {
                metrics = Some(value.trim().to_owned());
            }
            if line.starts_with("Rate limits:") {
                break;
            }
        }
        ServeChild {
            child,
            address: address.unwrap_or_else(|| panic!("no address in {banner:?}")),
            metrics,
            banner,
            stdout: lines,
        }
    }

    /// Sends SIGTERM and waits (at most 10 s) for the process to exit.
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        self.terminate();
        tokio::time::timeout(std::time::Duration::from_secs(10), self.child.wait())
            .await
            .expect("serve stops")
            .unwrap()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {pid}");
    }
}
