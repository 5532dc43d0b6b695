//! The `mcpauth` binary (SPEC §6): `migrate`, `generate`, `user create`, `serve`, flags,
//! configuration file and `MCPAUTH_*` environment variables, and shutdown on SIGTERM.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;

use crate::common::{PASSWORD, mcpauth, redis_url};

/// Runs a command to completion (bounded, so a command that starts serving by mistake fails).
async fn run(command: &mut Command) -> Output {
    timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the command finishes")
        .expect("the command starts")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

async fn tables_of(path: &Path) -> Vec<String> {
    let pool = sqlx::SqlitePool::connect(&sqlite_url(path)).await.unwrap();
    let tables = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    tables
}

/// A running `mcpauth serve`: the child, its announced issuer and listening address.
struct Server {
    child: Child,
    issuer: String,
    address: String,
    /// What it printed up to the `Listening on:` line.
    banner: Vec<String>,
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl Server {
    /// Starts `serve` with these extra arguments and waits for its banner.
    async fn start(dir: &Path, args: &[&str]) -> Server {
        Self::start_with(mcpauth(dir).arg("serve").args(args)).await
    }

    async fn start_with(command: &mut Command) -> Server {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("serve starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut issuer = None;
        let mut banner = Vec::new();
        let address = loop {
            let line = timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("serve prints its banner")
                .unwrap()
                .unwrap_or_else(|| panic!("serve exited early: {banner:?}"));
            banner.push(line.clone());
            let line = line.trim();
            if let Some(value) = line.strip_prefix("Issuer:") {
                issuer = Some(value.trim().to_owned());
            }
            if let Some(value) = line.strip_prefix("Listening on:") {
                break value.trim().to_owned();
            }
        };
        Server {
            child,
            issuer: issuer.unwrap_or_else(|| panic!("an Issuer: line in {banner:?}")),
            address,
            banner,
            _stdout: lines,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// Sends SIGTERM and waits (a few seconds at most) for a clean exit.
    async fn terminate(mut self) {
        let pid = self.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {pid}");
        let exit = timeout(Duration::from_secs(5), self.child.wait())
            .await
            .expect("serve stops within 5 s of SIGTERM")
            .unwrap();
        assert!(exit.success(), "serve exits 0 on SIGTERM: {exit}");
    }
}

#[tokio::test]
async fn migrate_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("migrate.db");
    for attempt in 1..=2 {
        let output =
            run(mcpauth(dir.path()).args(["migrate", "--database-url", &sqlite_url(&db)])).await;
        assert!(
            output.status.success(),
            "migrate #{attempt}: {}",
            text(&output.stderr)
        );
    }
    let tables = tables_of(&db).await;
    for table in [
        "user",
        "session",
        "account",
        "verification",
        "oauthApplication",
        "oauthAccessToken",
        "oauthConsent",
    ] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }
}

#[tokio::test]
async fn generate_prints_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(mcpauth(dir.path()).arg("generate")).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let sql = text(&output.stdout);
    assert!(sql.contains("\"oauthApplication\""), "{sql}");
    assert!(sql.contains("CREATE TABLE"), "{sql}");

    let file = dir.path().join("schema.sql");
    let output = run(mcpauth(dir.path()).args([
        "generate",
        "--dialect",
        "sqlite",
        "--output",
        file.to_str().unwrap(),
    ]))
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), sql);
}

#[tokio::test]
async fn created_user_signs_in_on_the_served_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(&dir.path().join("serve.db"));
    let output = run(mcpauth(dir.path()).args([
        "user",
        "create",
        "--email",
        "cli@example.com",
        "--password",
        PASSWORD,
        "--name",
        "CLI User",
        "--database-url",
        &db,
    ]))
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        !text(&output.stdout).contains(PASSWORD),
        "the password is not echoed"
    );

    let server = Server::start(
        dir.path(),
        &["--bind", "127.0.0.1:0", "--database-url", &db],
    )
    .await;
    let http = reqwest::Client::new();
    let health = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await.unwrap(), "ok");

    let sign_in = |password: &'static str| {
        http.post(server.url("/api/auth/sign-in/email"))
            .header("origin", &server.issuer)
            .json(&json!({ "email": "cli@example.com", "password": password }))
            .send()
    };
    let response = sign_in(PASSWORD).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("set-cookie"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], "cli@example.com");
    assert_eq!(body["user"]["name"], "CLI User");
    let wrong = sign_in("not the password").await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    drop(http);
    server.terminate().await;
}

#[tokio::test]
async fn serve_migrates_a_fresh_database_and_announces_its_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh.db");
    let server = Server::start(
        dir.path(),
        &[
            "--bind",
            "127.0.0.1:0",
            "--issuer",
            "https://auth.example.com",
            "--database-url",
            &sqlite_url(&db),
        ],
    )
    .await;
    assert_eq!(server.issuer, "https://auth.example.com");
    let banner = server.banner.join("\n");
    assert!(
        banner.contains("https://auth.example.com/api/mcp"),
        "the MCP endpoint is announced: {banner}"
    );
    assert!(
        banner.contains("https://auth.example.com/sign-up"),
        "the sign-up page is announced: {banner}"
    );
    let metadata: Value = reqwest::get(server.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], "https://auth.example.com");
    assert!(tables_of(&db).await.iter().any(|t| t == "oauthApplication"));
    server.terminate().await;
}

#[tokio::test]
async fn serve_help_lists_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(mcpauth(dir.path()).args(["serve", "--help"])).await;
    assert!(output.status.success());
    let help = text(&output.stdout);
    for flag in [
        "--bind",
        "--issuer",
        "--database-url",
        "--config",
        "--redis-url",
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
}

#[tokio::test]
async fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["migrate", "--help"],
        vec!["generate", "--help"],
        vec!["user", "--help"],
        vec!["user", "create", "--help"],
    ] {
        let output = run(mcpauth(dir.path()).args(&args)).await;
        assert!(output.status.success(), "{args:?}");
        assert!(!output.stdout.is_empty(), "{args:?}");
    }
    let output = run(mcpauth(dir.path()).args(["user", "create", "--help"])).await;
    let help = text(&output.stdout);
    for flag in ["--email", "--password", "--name"] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
}

#[tokio::test]
async fn serve_with_a_missing_config_file_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(mcpauth(dir.path()).args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--config",
        "/nonexistent.toml",
    ]))
    .await;
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("/nonexistent.toml"), "{stderr}");
    assert!(
        stderr.contains("does not exist") || stderr.contains("not found"),
        "{stderr}"
    );
}

#[tokio::test]
async fn config_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("from-config.db");
    let config = dir.path().join("custom.toml");
    std::fs::write(
        &config,
        format!(
            "bind = \"127.0.0.1:0\"\nissuer = \"https://config.example.com\"\ndatabase_url = \"{}\"\n",
            sqlite_url(&db)
        ),
    )
    .unwrap();
    let server = Server::start(dir.path(), &["--config", config.to_str().unwrap()]).await;
    assert_eq!(server.issuer, "https://config.example.com");
    assert!(db.exists(), "the database named in the file is used");
    server.terminate().await;
}

#[tokio::test]
async fn invalid_config_file_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "bind = \"127.0.0.1:0\"\nno_such_setting = 1\n").unwrap();
    let output =
        run(mcpauth(dir.path()).args(["serve", "--config", config.to_str().unwrap()])).await;
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("no_such_setting"), "{stderr}");
}

#[test]
fn refresh_reuse_policy_is_read_globally_and_per_client() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("policy.toml");
    std::fs::write(
        &config,
        "refresh_reuse_policy = \"strict\"\nrefresh_reuse_window = 120\n\
         [[trusted_clients]]\nclient_id = \"app\"\nname = \"App\"\n\
         redirect_uris = [\"https://app.example/cb\"]\nrefresh_reuse_policy = \"tolerate_previous\"\n",
    )
    .unwrap();
    let settings = mcpauth_server::Settings::load(Some(&config), Default::default()).unwrap();
    let options = settings.options("https://auth.example").unwrap();
    assert_eq!(
        options.refresh_reuse_policy,
        mcpauth::RefreshReusePolicy::Strict
    );
    assert_eq!(options.refresh_reuse_window, 120);
    assert_eq!(
        options.refresh_reuse_policy_of("app"),
        mcpauth::RefreshReusePolicy::ToleratePrevious
    );
    assert_eq!(
        options.refresh_reuse_policy_of("other"),
        mcpauth::RefreshReusePolicy::Strict
    );

    std::fs::write(&config, "refresh_reuse_policy = \"lenient\"\n").unwrap();
    let error = mcpauth_server::Settings::load(Some(&config), Default::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("lenient"), "{error}");
}

#[tokio::test]
async fn database_url_environment_variable_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let from_env = dir.path().join("env.db");
    let output = run(mcpauth(dir.path())
        .arg("migrate")
        .env("MCPAUTH_DATABASE_URL", sqlite_url(&from_env)))
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        tables_of(&from_env)
            .await
            .iter()
            .any(|t| t == "oauthApplication")
    );

    // A flag beats the environment.
    let flagged = dir.path().join("flag.db");
    let ignored = dir.path().join("ignored.db");
    let output = run(mcpauth(dir.path())
        .args(["migrate", "--database-url", &sqlite_url(&flagged)])
        .env("MCPAUTH_DATABASE_URL", sqlite_url(&ignored)))
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(flagged.exists());
    assert!(!ignored.exists());
}

#[tokio::test]
async fn user_created_through_the_environment_database_signs_in() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(&dir.path().join("env-serve.db"));
    let output = run(mcpauth(dir.path())
        .args([
            "user",
            "create",
            "--email",
            "env@example.com",
            "--name",
            "Env",
        ])
        .env("MCPAUTH_DATABASE_URL", &db)
        .env("MCPAUTH_PASSWORD", PASSWORD))
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));

    let server = Server::start_with(
        mcpauth(dir.path())
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env("MCPAUTH_DATABASE_URL", &db),
    )
    .await;
    let response = reqwest::Client::new()
        .post(server.url("/api/auth/sign-in/email"))
        .header("origin", &server.issuer)
        .json(&json!({ "email": "env@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    server.terminate().await;
}

#[tokio::test]
async fn user_create_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(&dir.path().join("users.db"));
    let create = |email: &'static str, password: &'static str| {
        let mut command = mcpauth(dir.path());
        command.args([
            "user",
            "create",
            "--email",
            email,
            "--password",
            password,
            "--database-url",
            &db,
        ]);
        command
    };
    let output = run(&mut create("dup@example.com", PASSWORD)).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    for (what, email, password) in [
        ("duplicate email", "dup@example.com", PASSWORD),
        ("short password", "short@example.com", "short"),
        ("invalid email", "not-an-email", PASSWORD),
    ] {
        let output = run(&mut create(email, password)).await;
        assert!(!output.status.success(), "{what}");
        assert!(!output.stderr.is_empty(), "{what}: says why");
    }
}

#[tokio::test]
async fn unsupported_database_url_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(mcpauth(dir.path()).args(["migrate", "--database-url", "mysql://x/y"])).await;
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("sqlite"), "{stderr}");
}

impl Server {
    /// The next line `serve` prints after its banner (e.g. `Database:`, `Rate limits:`).
    async fn next_line(&mut self) -> String {
        timeout(Duration::from_secs(10), self._stdout.next_line())
            .await
            .expect("serve prints another line")
            .unwrap()
            .expect("serve is still running")
    }

    /// The `Rate limits:` line's value.
    async fn rate_limits(&mut self) -> String {
        loop {
            let line = self.next_line().await;
            if let Some(value) = line.trim().strip_prefix("Rate limits:") {
                return value.trim().to_owned();
            }
        }
    }
}

/// The scale-out settings: `[database]` pool settings, `redis_url` (`--redis-url`,
/// `MCPAUTH_REDIS_URL`) and `[rate_limits] backend`, from each source.
#[tokio::test]
async fn pool_and_rate_limit_backend_settings() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(&dir.path().join("scale.db"));

    // A pool of no connections is refused, from the environment as from a file.
    let output = run(mcpauth(dir.path())
        .args(["migrate", "--database-url", &db])
        .env("MCPAUTH_DATABASE__MAX_CONNECTIONS", "0"))
    .await;
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("database.max_connections must be at least 1"),
        "{stderr}"
    );

    // SQLite counts in memory unless told otherwise.
    let mut server = Server::start(
        dir.path(),
        &["--bind", "127.0.0.1:0", "--database-url", &db],
    )
    .await;
    assert_eq!(server.rate_limits().await, "memory (this instance only)");
    server.terminate().await;

    // mcpauth.toml: pool settings and the database backend.
    std::fs::write(
        dir.path().join("mcpauth.toml"),
        "[database]\nmax_connections = 2\nacquire_timeout_secs = 5\n\n\
         [rate_limits]\nbackend = \"database\"\n",
    )
    .unwrap();
    let mut server = Server::start(
        dir.path(),
        &["--bind", "127.0.0.1:0", "--database-url", &db],
    )
    .await;
    assert_eq!(
        server.rate_limits().await,
        "database (shared by every instance on it)"
    );
    server.terminate().await;
    std::fs::remove_file(dir.path().join("mcpauth.toml")).unwrap();

    // --redis-url on serve, and MCPAUTH_REDIS_URL, choose Redis.
    let redis = redis_url();
    let mut server = Server::start(
        dir.path(),
        &[
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            &db,
            "--redis-url",
            &redis,
        ],
    )
    .await;
    assert!(
        server
            .rate_limits()
            .await
            .starts_with(&format!("redis at {redis} (shared")),
    );
    server.terminate().await;
    let mut server = Server::start_with(
        mcpauth(dir.path())
            .args(["serve", "--bind", "127.0.0.1:0", "--database-url", &db])
            .env("MCPAUTH_REDIS_URL", "redis://:s3cret@127.0.0.1:6379/0"),
    )
    .await;
    let line = server.rate_limits().await;
    assert!(
        line.starts_with("redis at redis://:***@127.0.0.1:6379/0"),
        "{line}"
    );
    assert!(!line.contains("s3cret"), "{line}");
    server.terminate().await;

    // Redis chosen without a URL is a configuration error.
    let output = run(mcpauth(dir.path())
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url", &db])
        .env("MCPAUTH_RATE_LIMITS__BACKEND", "redis"))
    .await;
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("needs redis_url"),
        "{}",
        text(&output.stderr)
    );
}

/// Runs `mcpauth healthcheck` with `MCPAUTH_BIND=bind` (the container image sets it so).
async fn healthcheck(dir: &Path, bind: &str) -> Output {
    run(mcpauth(dir).arg("healthcheck").env("MCPAUTH_BIND", bind)).await
}

/// `mcpauth healthcheck`, the container image's HEALTHCHECK: exit 0 while the server its settings
/// name answers /healthz with 200 (asked on loopback when it binds 0.0.0.0); exit 1 with the
/// reason on any other status or when nothing listens.
#[tokio::test]
async fn healthcheck_asks_the_configured_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("health.db");
    let server = Server::start(
        dir.path(),
        &["--bind", "0.0.0.0:0", "--database-url", &sqlite_url(&db)],
    )
    .await;
    let port = server.address.rsplit(':').next().unwrap().to_owned();
    let bind = format!("0.0.0.0:{port}");
    let output = healthcheck(dir.path(), &bind).await;
    assert!(
        output.status.success(),
        "healthcheck against the live server on {bind}: {}",
        text(&output.stderr)
    );

    server.terminate().await;
    let output = healthcheck(dir.path(), &bind).await;
    assert!(
        !output.status.success(),
        "nothing listens on {bind} any more"
    );
    let stderr = text(&output.stderr);
    assert!(stderr.contains("could not connect"), "{stderr}");

    // Something that answers, but not 200: unhealthy.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bind = listener.local_addr().unwrap().to_string();
    let answer = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 1024];
        let read = socket.read(&mut request).await.unwrap();
        socket
            .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8_lossy(&request[..read]).into_owned()
    });
    let output = healthcheck(dir.path(), &bind).await;
    let request = answer.await.unwrap();
    assert!(
        request.starts_with("GET /healthz HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(!output.status.success(), "a 503 is not healthy");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("503"), "{stderr}");
}
