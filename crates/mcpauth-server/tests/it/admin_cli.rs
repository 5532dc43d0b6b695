//! The administration commands of the `mcpauth` binary (SPEC §6): `user list|create|disable|
//! enable|delete`, `client list|create|disable|enable|delete`, `grant list|revoke` and
//! `audit list`, run as real processes against a SQLite file that a test server (the kit in
//! `common`) shares, so every change is checked where it matters: at sign-in, at the token
//! endpoint and on the bearer-protected session endpoint.

use std::path::PathBuf;
use std::time::Duration;

use crate::common::{
    PASSWORD, REDIRECT_URI, TestApp, after_revocation_check, mcpauth, pkce, spawn_app_on,
};
use mcpauth_core::secret::hash_token;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::timeout;

/// What a finished command left behind.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self, what: &str) -> Self {
        assert_eq!(
            self.code, 0,
            "{what} succeeds\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is JSON ({e}): {}", self.stdout))
    }

    /// Exit status 1 with an `error: …` line on stderr that contains `needle`.
    fn fails_with(&self, what: &str, needle: &str) {
        assert_eq!(
            self.code, 1,
            "{what}: exit status 1; stderr: {}",
            self.stderr
        );
        assert!(
            self.stderr.starts_with("error: "),
            "{what}: stderr starts with `error: `: {}",
            self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "{what}: stderr mentions {needle:?}: {}",
            self.stderr
        );
    }
}

/// A temporary directory with a database file in it, and `mcpauth` run against that file.
struct Cli {
    dir: tempfile::TempDir,
    db_path: PathBuf,
}

impl Cli {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("admin.db");
        Self { dir, db_path }
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.db_path.display())
    }

    /// `mcpauth ARGS --database-url …`, in the temporary directory, without any `MCPAUTH_*`
    /// variable of the test's environment.
    async fn run(&self, args: &[&str]) -> Run {
        let mut command = mcpauth(self.dir.path());
        command.args(args).args(["--database-url", &self.url()]);
        let output = timeout(Duration::from_secs(60), command.output())
            .await
            .expect("the command finishes")
            .expect("the command starts");
        Run {
            code: output.status.code().expect("exited, not killed"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn create_user(&self, email: &str) -> Run {
        self.run(&[
            "user",
            "create",
            "--email",
            email,
            "--password",
            PASSWORD,
            "--name",
            "Admin Test",
        ])
        .await
        .ok("user create")
    }

    async fn users(&self) -> Vec<Value> {
        let listed = self.run(&["user", "list", "--json"]).await.ok("user list");
        listed.json().as_array().unwrap().clone()
    }

    async fn clients(&self) -> Vec<Value> {
        let listed = self
            .run(&["client", "list", "--json"])
            .await
            .ok("client list");
        listed.json().as_array().unwrap().clone()
    }

    async fn audit_kinds(&self) -> Vec<String> {
        let listed = self
            .run(&["audit", "list", "--json"])
            .await
            .ok("audit list");
        listed
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    }
}

async fn sign_in(app: &TestApp, email: &str) -> StatusCode {
    app.http
        .post(app.url("/api/auth/sign-in/email"))
        .header("origin", &app.base)
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .status()
}

/// The value of a `  label:  value` line of the command's output.
fn field(stdout: &str, label: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("a {label} line in {stdout}"))
        .trim()
        .to_owned()
}

#[tokio::test]
async fn users_are_listed_disabled_enabled_and_deleted() {
    let cli = Cli::new();
    let created = cli.create_user("Alice@Example.com").await;
    assert!(
        created.stdout.contains("alice@example.com"),
        "{}",
        created.stdout
    );
    assert!(
        !created.stdout.contains(PASSWORD),
        "the password is not echoed"
    );

    let table = cli.run(&["user", "list"]).await.ok("user list");
    let mut lines = table.stdout.lines();
    let header = lines.next().unwrap();
    for column in ["ID", "EMAIL", "NAME", "STATUS", "CREATED (UTC)"] {
        assert!(header.contains(column), "{column} in {header}");
    }
    let row = lines.next().unwrap();
    assert!(row.contains("alice@example.com"), "{row}");
    assert!(row.contains("Admin Test"), "{row}");
    assert!(row.contains("enabled"), "{row}");
    assert_eq!(
        header.find("EMAIL"),
        row.find("alice@example.com"),
        "columns are aligned:\n{}",
        table.stdout
    );
    let created_at = row.split("  ").map(str::trim).last().unwrap();
    assert!(
        created_at.len() == 19 && created_at.as_bytes()[10] == b' ',
        "UTC YYYY-MM-DD HH:MM:SS: {created_at:?}"
    );

    let users = cli.users().await;
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["email"], "alice@example.com");
    assert_eq!(users[0]["name"], "Admin Test");
    assert_eq!(users[0]["disabled"], false);
    let id = users[0]["id"].as_str().unwrap().to_owned();

    let app = spawn_app_on(&cli.db_path, |_| {}).await;
    assert_eq!(sign_in(&app, "alice@example.com").await, StatusCode::OK);

    let disabled = cli
        .run(&["user", "disable", "alice@example.com"])
        .await
        .ok("user disable");
    assert!(disabled.stdout.contains("disabled"), "{}", disabled.stdout);
    assert_eq!(cli.users().await[0]["disabled"], true);
    assert_eq!(
        sign_in(&app, "alice@example.com").await,
        StatusCode::UNAUTHORIZED,
        "a disabled user cannot sign in"
    );
    let again = cli
        .run(&["user", "disable", &id])
        .await
        .ok("disabling twice");
    assert!(
        again.stdout.contains("already disabled"),
        "{}",
        again.stdout
    );

    cli.run(&["user", "enable", &id])
        .await
        .ok("user enable by id");
    assert_eq!(cli.users().await[0]["disabled"], false);
    assert_eq!(sign_in(&app, "alice@example.com").await, StatusCode::OK);

    cli.run(&["user", "delete", "alice@example.com"])
        .await
        .fails_with("delete without --yes", "--yes");
    assert_eq!(cli.users().await.len(), 1, "nothing deleted without --yes");

    let deleted = cli
        .run(&["user", "delete", "alice@example.com", "--yes"])
        .await
        .ok("user delete --yes");
    assert!(deleted.stdout.contains("deleted"), "{}", deleted.stdout);
    assert!(cli.users().await.is_empty());
    assert_eq!(
        sign_in(&app, "alice@example.com").await,
        StatusCode::UNAUTHORIZED
    );
    let empty = cli.run(&["user", "list"]).await.ok("empty user list");
    assert_eq!(empty.stdout.trim(), "no users");
    cli.run(&["user", "enable", "alice@example.com"])
        .await
        .fails_with("enabling a deleted user", "no user");
}

#[tokio::test]
async fn client_secret_is_shown_once_stored_hashed_and_authenticates() {
    let cli = Cli::new();
    let created = cli
        .run(&[
            "client",
            "create",
            "--name",
            "CLI App",
            "--redirect-uri",
            REDIRECT_URI,
            "--redirect-uri",
            "https://app.example.com/callback",
        ])
        .await
        .ok("client create");
    let client_id = field(&created.stdout, "client_id:");
    let secret = field(&created.stdout, "client_secret:");
    assert_eq!(secret.len(), 43, "a 256-bit secret: {secret}");
    assert!(
        created.stderr.contains("shown only this once"),
        "a warning that the secret is shown once: {}",
        created.stderr
    );

    let clients = cli.clients().await;
    assert_eq!(clients.len(), 1);
    let client = &clients[0];
    assert_eq!(client["client_id"], client_id.as_str());
    assert_eq!(client["name"], "CLI App");
    assert_eq!(client["type"], "confidential");
    assert_eq!(client["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(
        client["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(
        client["redirect_uris"],
        json!([REDIRECT_URI, "https://app.example.com/callback"])
    );
    assert_eq!(client["disabled"], false);
    assert_eq!(client["skip_consent"], false);
    assert_eq!(
        client["registered_dynamically"], false,
        "an operator's client is never purged"
    );
    for listing in [
        cli.run(&["client", "list", "--json"]).await.ok("list"),
        cli.run(&["client", "list"]).await.ok("list"),
    ] {
        assert!(listing.stdout.contains(&client_id));
        assert!(
            !listing.stdout.contains(&secret),
            "the secret is not listed"
        );
        assert!(
            !listing.stdout.contains(&hash_token(&secret)),
            "nor its hash"
        );
    }

    // The database holds only the hash, and the audit log neither.
    let app = spawn_app_on(&cli.db_path, |_| {}).await;
    let values = app.db_values().await;
    assert!(
        values.iter().all(|v| !v.value.contains(&secret)),
        "the secret is stored nowhere"
    );
    assert!(
        values
            .iter()
            .any(|v| v.table == "oauthApplication" && v.value == hash_token(&secret)),
        "its hash is stored"
    );

    // The client authenticates at the token endpoint with the secret, and not without it.
    let browser = app.signed_in_browser().await;
    let token = |secret: String, code: String, verifier: String| {
        app.http
            .post(app.url("/api/auth/mcp/token"))
            .basic_auth(&client_id, Some(secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
    };
    let (verifier, challenge) = pkce();
    let code = app
        .code_for(&browser, &client_id, &challenge, "mcp:tools")
        .await;
    let wrong = token("not-the-secret".into(), code.clone(), verifier.clone())
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = token(secret.clone(), code, verifier).await.unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    let tokens: Value = right.json().await.unwrap();
    let access_token = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.session_status(&access_token).await, StatusCode::OK);

    // Disabled, its tokens stop working; enabled, they work again.
    cli.run(&["client", "disable", &client_id])
        .await
        .ok("client disable");
    assert_eq!(cli.clients().await[0]["disabled"], true);
    after_revocation_check().await;
    assert_eq!(
        app.session_status(&access_token).await,
        StatusCode::UNAUTHORIZED
    );
    cli.run(&["client", "enable", &client_id])
        .await
        .ok("client enable");
    assert_eq!(cli.clients().await[0]["disabled"], false);
    assert_eq!(app.session_status(&access_token).await, StatusCode::OK);

    // Deleting needs --yes, and takes the tokens with it.
    cli.run(&["client", "delete", &client_id])
        .await
        .fails_with("delete without --yes", "--yes");
    assert_eq!(cli.clients().await.len(), 1);
    cli.run(&["client", "delete", &client_id, "--yes"])
        .await
        .ok("client delete --yes");
    assert!(cli.clients().await.is_empty());
    after_revocation_check().await;
    assert_eq!(
        app.session_status(&access_token).await,
        StatusCode::UNAUTHORIZED
    );

    let kinds = cli.audit_kinds().await;
    for kind in [
        "admin.client.create",
        "admin.client.disable",
        "admin.client.enable",
        "admin.client.delete",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    let audit = cli.run(&["audit", "list", "--json"]).await.ok("audit");
    assert!(
        !audit.stdout.contains(&secret),
        "no secret in the audit log"
    );
}

#[tokio::test]
async fn public_clients_and_redirect_uri_rules() {
    let cli = Cli::new();
    let created = cli
        .run(&[
            "client",
            "create",
            "--name",
            "Desktop",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--redirect-uri",
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "--public",
            "--skip-consent",
            "--json",
        ])
        .await
        .ok("public client create");
    let client = created.json();
    assert_eq!(client["type"], "public");
    assert_eq!(client["token_endpoint_auth_method"], "none");
    assert_eq!(client["skip_consent"], true);
    assert!(client.get("client_secret").is_none(), "{client}");
    assert!(!created.stderr.contains("warning"), "{}", created.stderr);

    let confidential = cli
        .run(&[
            "client",
            "create",
            "--name",
            "Scripted",
            "--redirect-uri",
            "https://app.example.com/cb",
            "--json",
        ])
        .await
        .ok("confidential client create --json");
    let secret = confidential.json()["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(secret.len(), 43);

    let table = cli.run(&["client", "list"]).await.ok("client list");
    assert!(table.stdout.contains("public"), "{}", table.stdout);
    assert!(table.stdout.contains("confidential"), "{}", table.stdout);
    assert!(!table.stdout.contains(&secret));

    for (what, uri) in [
        ("http on a public host", "http://app.example.com/callback"),
        ("a fragment", "https://app.example.com/cb#x"),
        ("javascript:", "javascript:alert(1)"),
        ("a relative URI", "/callback"),
        ("user information", "https://user:pw@app.example.com/cb"),
    ] {
        cli.run(&["client", "create", "--name", "Bad", "--redirect-uri", uri])
            .await
            .fails_with(what, "redirect URI");
    }
    let blank = cli
        .run(&[
            "client",
            "create",
            "--name",
            "  ",
            "--redirect-uri",
            REDIRECT_URI,
        ])
        .await;
    blank.fails_with("a blank name", "--name");
    assert_eq!(cli.clients().await.len(), 2, "no invalid client was stored");

    let missing = cli.run(&["client", "create", "--name", "No URI"]).await;
    assert_eq!(missing.code, 2, "a usage error: {}", missing.stderr);
    assert!(
        missing.stderr.contains("--redirect-uri"),
        "{}",
        missing.stderr
    );
}

#[tokio::test]
async fn grants_are_listed_and_revoked() {
    let cli = Cli::new();
    let app = spawn_app_on(&cli.db_path, |_| {}).await;
    let flow = app.full_flow("openid mcp:tools").await;
    let access_token = flow.tokens["access_token"].as_str().unwrap().to_owned();
    let refresh_token = flow.tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(app.session_status(&access_token).await, StatusCode::OK);

    let listed = cli.run(&["grant", "list", "--json"]).await.ok("grant list");
    let grants = listed.json().as_array().unwrap().clone();
    assert_eq!(grants.len(), 1, "{grants:?}");
    let grant = &grants[0];
    assert_eq!(grant["client_id"], flow.client_id.as_str());
    assert_eq!(grant["client_name"], "Test MCP Client");
    assert_eq!(grant["scope"], "openid mcp:tools");
    let email = grant["user_email"].as_str().unwrap().to_owned();
    assert!(grant["expires_at"].as_i64() > grant["created_at"].as_i64());

    let table = cli.run(&["grant", "list"]).await.ok("grant list table");
    let header = table.stdout.lines().next().unwrap();
    for column in [
        "USER",
        "CLIENT ID",
        "CLIENT NAME",
        "SCOPES",
        "CREATED (UTC)",
        "LAST USED (UTC)",
        "EXPIRES (UTC)",
    ] {
        assert!(header.contains(column), "{column} in {header}");
    }
    for value in [
        email.as_str(),
        &flow.client_id,
        "Test MCP Client",
        "mcp:tools",
    ] {
        assert!(table.stdout.contains(value), "{value} in {}", table.stdout);
    }

    // Filters, by user (email or id) and by client.
    let user_id = grant["user_id"].as_str().unwrap();
    for args in [
        vec!["grant", "list", "--json", "--user", &email],
        vec!["grant", "list", "--json", "--user", user_id],
        vec!["grant", "list", "--json", "--client", &flow.client_id],
    ] {
        let run = cli.run(&args).await.ok("filtered grant list");
        assert_eq!(run.json().as_array().unwrap().len(), 1, "{args:?}");
    }
    let other = app.register_public(REDIRECT_URI).await;
    let none = cli
        .run(&["grant", "list", "--json", "--client", &other])
        .await
        .ok("grants of another client");
    assert_eq!(none.json(), json!([]));

    let revoked = cli
        .run(&[
            "grant",
            "revoke",
            "--user",
            &email,
            "--client",
            &flow.client_id,
        ])
        .await
        .ok("grant revoke");
    assert!(
        revoked.stdout.starts_with("revoked 1 grant "),
        "says how many: {}",
        revoked.stdout
    );
    after_revocation_check().await;
    assert_eq!(
        app.session_status(&access_token).await,
        StatusCode::UNAUTHORIZED,
        "the access token is refused (within the revocation check interval)"
    );
    let refresh = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
            ("client_id", &flow.client_id),
        ])
        .await;
    assert_eq!(
        refresh.status(),
        StatusCode::BAD_REQUEST,
        "and the refresh token"
    );
    let after = cli.run(&["grant", "list"]).await.ok("grant list");
    assert_eq!(after.stdout.trim(), "no grants");
    let again = cli
        .run(&["grant", "revoke", "--user", &email])
        .await
        .ok("revoking again");
    assert!(
        again.stdout.starts_with("revoked 0 grants"),
        "{}",
        again.stdout
    );

    let audit = cli.run(&["audit", "list", "--json"]).await.ok("audit");
    let events = audit.json();
    let event = &events[1];
    assert_eq!(event["kind"], "admin.grant.revoke");
    assert_eq!(event["user_id"], user_id);
    assert_eq!(event["client_id"], flow.client_id.as_str());
    assert_eq!(event["detail"]["revoked"], 1);
}

#[tokio::test]
async fn audit_list_shows_admin_events_newest_first() {
    let cli = Cli::new();
    let empty = cli.run(&["audit", "list"]).await.ok("empty audit list");
    assert_eq!(empty.stdout.trim(), "no audit events");

    cli.create_user("bob@example.com").await;
    cli.run(&["user", "disable", "bob@example.com"])
        .await
        .ok("disable");
    cli.run(&["user", "enable", "bob@example.com"])
        .await
        .ok("enable");
    let created = cli
        .run(&[
            "client",
            "create",
            "--name",
            "Audited",
            "--redirect-uri",
            REDIRECT_URI,
        ])
        .await
        .ok("client create");
    let secret = field(&created.stdout, "client_secret:");
    cli.run(&["grant", "revoke", "--user", "bob@example.com"])
        .await
        .ok("grant revoke");
    cli.run(&["user", "delete", "bob@example.com", "--yes"])
        .await
        .ok("delete");

    assert_eq!(
        cli.audit_kinds().await,
        [
            "admin.user.delete",
            "admin.grant.revoke",
            "admin.client.create",
            "admin.user.enable",
            "admin.user.disable",
            "admin.user.create",
        ]
    );
    let limited = cli
        .run(&["audit", "list", "--limit", "2", "--json"])
        .await
        .ok("audit list --limit");
    let events = limited.json();
    assert_eq!(events.as_array().unwrap().len(), 2);
    assert_eq!(events[0]["detail"]["email"], "bob@example.com");
    assert!(events[0]["at"].as_i64().unwrap() > 1_600_000_000);

    let table = cli.run(&["audit", "list"]).await.ok("audit table");
    let header = table.stdout.lines().next().unwrap();
    for column in ["TIME (UTC)", "KIND", "USER", "CLIENT", "DETAIL"] {
        assert!(header.contains(column), "{column} in {header}");
    }
    assert!(table.stdout.contains("admin.client.create"));
    assert!(
        !table.stdout.contains(&secret),
        "no secret in the audit log"
    );
    assert!(
        !table.stdout.contains(PASSWORD),
        "no password in the audit log"
    );

    let zero = cli.run(&["audit", "list", "--limit", "0"]).await;
    assert_eq!(zero.code, 2, "a usage error: {}", zero.stderr);
}

#[tokio::test]
async fn unknown_users_and_clients_fail_clearly() {
    let cli = Cli::new();
    cli.create_user("known@example.com").await;
    for args in [
        vec!["user", "disable", "ghost@example.com"],
        vec!["user", "enable", "ghost@example.com"],
        vec!["user", "delete", "ghost@example.com"],
        vec!["user", "disable", "no-such-id"],
        vec!["grant", "list", "--user", "ghost@example.com"],
        vec!["grant", "revoke", "--user", "ghost@example.com"],
    ] {
        cli.run(&args).await.fails_with(&args.join(" "), "no user");
    }
    for args in [
        vec!["client", "disable", "no-such-client"],
        vec!["client", "enable", "no-such-client"],
        vec!["client", "delete", "no-such-client", "--yes"],
        vec!["grant", "list", "--client", "no-such-client"],
        vec![
            "grant",
            "revoke",
            "--user",
            "known@example.com",
            "--client",
            "no-such-client",
        ],
    ] {
        cli.run(&args)
            .await
            .fails_with(&args.join(" "), "no client");
    }
    // Nothing failed half-way: the user is untouched and nothing was audited but its creation.
    assert_eq!(cli.users().await[0]["disabled"], false);
    assert_eq!(cli.audit_kinds().await, ["admin.user.create"]);

    let usage = cli.run(&["grant", "revoke"]).await;
    assert_eq!(usage.code, 2, "a usage error: {}", usage.stderr);
    assert!(usage.stderr.contains("--user"), "{}", usage.stderr);
}

#[tokio::test]
async fn every_admin_command_has_help() {
    let cli = Cli::new();
    for args in [
        vec!["user", "--help"],
        vec!["user", "list", "--help"],
        vec!["user", "disable", "--help"],
        vec!["user", "enable", "--help"],
        vec!["user", "delete", "--help"],
        vec!["user", "admin", "--help"],
        vec!["client", "--help"],
        vec!["client", "list", "--help"],
        vec!["client", "create", "--help"],
        vec!["client", "disable", "--help"],
        vec!["client", "enable", "--help"],
        vec!["client", "delete", "--help"],
        vec!["grant", "--help"],
        vec!["grant", "list", "--help"],
        vec!["grant", "revoke", "--help"],
        vec!["audit", "--help"],
        vec!["audit", "list", "--help"],
    ] {
        let run = cli.run(&args).await.ok(&args.join(" "));
        assert!(run.stdout.contains("Usage: mcpauth"), "{args:?}");
    }
    let top = cli.run(&["--help"]).await.ok("--help");
    for command in ["user", "client", "grant", "audit"] {
        assert!(
            top.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(command)),
            "{command} in {}",
            top.stdout
        );
    }
    let create = cli.run(&["client", "create", "--help"]).await;
    for flag in [
        "--name",
        "--redirect-uri",
        "--public",
        "--skip-consent",
        "--json",
    ] {
        assert!(create.stdout.contains(flag), "{flag} in {}", create.stdout);
    }
}

#[tokio::test]
async fn keys_rotate_publishes_a_new_key_and_keeps_the_old_one() {
    let cli = Cli::new();
    let empty = cli.run(&["keys", "list"]).await.ok("keys list");
    assert!(empty.stdout.contains("no signing keys"), "{}", empty.stdout);
    let first = cli
        .run(&["keys", "rotate", "--json"])
        .await
        .ok("keys rotate");
    let first_kid = first.json()["kid"].as_str().unwrap().to_owned();
    let second = cli.run(&["keys", "rotate"]).await.ok("keys rotate again");
    assert!(
        second.stdout.starts_with("new signing key "),
        "{}",
        second.stdout
    );

    let keys = cli
        .run(&["keys", "list", "--json"])
        .await
        .ok("keys list --json");
    let keys = keys.json();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["status"], "current");
    assert_ne!(keys[0]["kid"], first_kid.as_str());
    assert_eq!(keys[1]["kid"], first_kid.as_str());
    assert_eq!(keys[1]["status"], "retired");
    assert!(
        !keys[0].to_string().contains("sealed"),
        "no private material listed"
    );

    // A running server on the same database publishes both, and signs with the new one.
    let app = spawn_app_on(&cli.db_path, |_| {}).await;
    let jwks: Value = app
        .http
        .get(app.url("/api/auth/mcp/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(published.contains(&first_kid.as_str()));
    assert!(published.contains(&keys[0]["kid"].as_str().unwrap()));
    assert!(
        cli.audit_kinds()
            .await
            .iter()
            .any(|k| k == "admin.keys.rotate")
    );
}

/// `user admin` makes a user an admin of the console (SECURITY A1) and `--revoke` takes it
/// back; both are audited; an unknown user fails clearly.
#[tokio::test]
async fn a1_user_admin_grants_and_revokes_the_console() {
    let cli = Cli::new();
    cli.create_user("ops@example.com").await;
    let granted = cli
        .run(&["user", "admin", "--email", "ops@example.com"])
        .await
        .ok("user admin");
    assert!(
        granted.stdout.contains("is now an admin"),
        "{}",
        granted.stdout
    );
    let store = mcpauth_server::open_store(&cli.url()).await.unwrap();
    let id = store
        .user_by_email("ops@example.com")
        .await
        .unwrap()
        .unwrap()
        .0
        .id;
    assert!(store.is_admin(&id).await.unwrap());
    let revoked = cli
        .run(&["user", "admin", "--email", "ops@example.com", "--revoke"])
        .await
        .ok("user admin --revoke");
    assert!(
        revoked.stdout.contains("is no longer an admin"),
        "{}",
        revoked.stdout
    );
    assert!(!store.is_admin(&id).await.unwrap());
    let kinds = cli.audit_kinds().await;
    assert!(
        kinds.contains(&"admin.user.admin_grant".to_owned()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"admin.user.admin_revoke".to_owned()),
        "{kinds:?}"
    );
    cli.run(&["user", "admin", "--email", "nobody@example.com"])
        .await
        .fails_with("an unknown user", "no user with email");
}
