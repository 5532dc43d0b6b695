//! Connected accounts (`[[connections]]`, the token vault; issue 19, SECURITY V1–V4), against
//! `provider`, a small OAuth 2.0 provider over real HTTP: connecting from the account page and
//! from an elicitation link, the vault at rest and at start, key rotation through the real
//! binary, single-flight refresh, refusals, disconnect with revocation, and where tokens must
//! never appear.

mod provider;

use std::sync::atomic::Ordering;

use mcpauth::{ConnectionError, McpAuth};
use mcpauth_server::{ConnectionKindSetting, ConnectionSettings, Settings, VaultKeySetting};
use reqwest::{Client, StatusCode};
use serde_json::Value;

use crate::common::*;
use provider::{CLIENT_ID, CLIENT_SECRET, TestProvider};

/// The connection's id in these tests.
const ID: &str = "acme";

fn new_key() -> String {
    mcpauth_core::vault::VaultKey::generate().1
}

/// `[[connections]]` for the test provider, and the vault key `key`.
fn configure(settings: &mut Settings, provider: &TestProvider, key: &str) {
    settings.connections = vec![ConnectionSettings {
        id: ID.to_owned(),
        name: Some("Acme".to_owned()),
        kind: ConnectionKindSetting::Oauth2,
        client_id: CLIENT_ID.to_owned(),
        client_secret: CLIENT_SECRET.to_owned(),
        scopes: vec!["repo".to_owned(), "read:org".to_owned()],
        authorization_url: Some(format!("{}/authorize", provider.base)),
        token_url: Some(format!("{}/token", provider.base)),
        revocation_url: Some(format!("{}/revoke", provider.base)),
        ..ConnectionSettings::default()
    }];
    settings.vault_key = Some(VaultKeySetting(key.to_owned()));
}

/// The signed-in user's id in `browser`.
async fn user_id(app: &TestApp, browser: &Client) -> String {
    let session: Value = browser
        .get(app.url("/api/auth/get-session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    session["user"]["id"].as_str().unwrap().to_owned()
}

async fn account_html(app: &TestApp, browser: &Client) -> String {
    let (status, _, html) = get_page(browser, &app.url("/account")).await;
    assert_eq!(status, StatusCode::OK);
    html
}

async fn post_form(
    app: &TestApp,
    browser: &Client,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    browser
        .post(app.url(path))
        .header("origin", &app.base)
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Presses "Connect Acme" on the account page and lets the provider approve: returns the
/// callback URL the provider sends the browser to (not yet opened).
async fn start_connect(app: &TestApp, browser: &Client) -> String {
    let csrf = input_value(&account_html(app, browser).await, "csrf_token").unwrap();
    let response = post_form(
        app,
        browser,
        "/account/connections/connect",
        &[("csrf_token", &csrf), ("connection", ID)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    approve_at_provider(&location(&response)).await
}

/// The provider's answer to its authorization URL: the callback URL.
async fn approve_at_provider(authorization_url: &str) -> String {
    let at_provider = client().get(authorization_url).send().await.unwrap();
    assert_eq!(
        at_provider.status(),
        StatusCode::SEE_OTHER,
        "{authorization_url}"
    );
    let callback = location(&at_provider);
    assert!(callback.contains(&format!("/api/auth/connections/{ID}/callback?")));
    callback
}

/// A full connect from the account page.
async fn connect(app: &TestApp, browser: &Client) {
    let callback = start_connect(app, browser).await;
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&done), "/account?done=connected");
}

async fn connection_rows(app: &TestApp) -> i64 {
    let pool = app.db().await;
    let count = sqlx::query_scalar(r#"SELECT COUNT(*) FROM "mcpauthConnection""#)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    count
}

async fn audit_kinds(app: &TestApp) -> Vec<String> {
    let pool = app.db().await;
    let kinds = sqlx::query_scalar(r#"SELECT kind FROM "auditLog" ORDER BY id"#)
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    kinds
}

/// An app with the test provider configured, a signed-in browser and its user's id.
async fn connected_app() -> (TestProvider, TestApp, McpAuth, Client, String, String) {
    let provider = TestProvider::start().await;
    let key = new_key();
    let (app, auth) = spawn_app_with_auth(|s| configure(s, &provider, &key)).await;
    let browser = app.signed_in_browser().await;
    let user = user_id(&app, &browser).await;
    connect(&app, &browser).await;
    (provider, app, auth, browser, user, key)
}

/// A connect from the account page: the account page then lists the service with its scopes;
/// the library hands out the provider's token; the database holds neither token (V1).
#[tokio::test]
async fn v1_connect_stores_only_sealed_tokens() {
    let (provider, app, auth, browser, user, _) = connected_app().await;
    let html = account_html(&app, &browser).await;
    assert!(html.contains("Connected services"), "{html}");
    assert!(html.contains("The service was connected") || html.contains("Disconnect"));
    assert!(html.contains("read:org"));
    assert!(html.contains("aria-label=\"Disconnect Acme\""));

    let token = auth.connections().token(&user, ID).await.unwrap();
    let issued = provider.issued();
    assert_eq!(issued.len(), 2, "one access and one refresh token");
    assert_eq!(token.access_token, issued[0]);
    assert_eq!(token.token_type, "Bearer");
    assert!(
        !format!("{token:?}").contains(&issued[0]),
        "Debug is redacted"
    );

    let dump = app.db_values().await;
    for secret in &issued {
        assert!(
            !dump.iter().any(|v| v.value.contains(secret.as_str())),
            "a token in the database"
        );
    }
    assert!(
        dump.iter()
            .any(|v| v.table == "mcpauthConnection" && v.column == "access_token_sealed")
    );
    assert!(
        audit_kinds(&app)
            .await
            .contains(&"connection.connected".to_owned())
    );
}

/// A start with a wrong key, or none, is refused with an error that says so, and resets
/// nothing: with the right key the connection still works (V1).
#[tokio::test]
async fn v1_wrong_or_missing_vault_key_stops_the_start() {
    let provider = TestProvider::start().await;
    let key = new_key();
    let (app, auth) = spawn_app_with_auth(|s| configure(s, &provider, &key)).await;
    let browser = app.signed_in_browser().await;
    let user = user_id(&app, &browser).await;
    connect(&app, &browser).await;
    drop(auth);

    let settings_with = |key: Option<String>| {
        let mut settings = test_settings();
        settings.database_url = format!("sqlite://{}", app.db_path.display());
        configure(&mut settings, &provider, "unused");
        settings.vault_key = key.map(VaultKeySetting);
        settings
    };
    let wrong = mcpauth_server::Application::build(&settings_with(Some(new_key())), None)
        .await
        .err()
        .expect("a wrong key is refused");
    let message = format!("{wrong:#}");
    assert!(message.contains("vault key"), "{message}");
    assert!(message.contains("wrong or missing"), "{message}");

    let missing = mcpauth_server::Application::build(&settings_with(None), None)
        .await
        .err()
        .expect("no key is refused");
    assert!(format!("{missing:#}").contains("vault key"), "{missing:#}");

    let mut no_connections = settings_with(None);
    no_connections.connections.clear();
    let still = mcpauth_server::Application::build(&no_connections, None)
        .await
        .err()
        .expect("stored tokens without a key are refused even with no connection configured");
    assert!(
        format!("{still:#}").contains("holds connected-account tokens"),
        "{still:#}"
    );

    assert_eq!(connection_rows(&app).await, 1, "nothing was reset");
    let right = mcpauth_server::Application::build(&settings_with(Some(key)), None)
        .await
        .expect("the right key starts");
    let token = right.auth().connections().token(&user, ID).await.unwrap();
    assert_eq!(token.access_token, provider.issued()[0]);
}

/// `mcpauth keys rotate-vault` (the real binary) re-seals every connection under the new key;
/// with only the new key configured, tokens still come out; `connection list` shows the
/// connection, `connection delete` revokes at the provider and deletes it (V1).
#[tokio::test]
async fn v1_rotate_vault_then_calls_still_work() {
    let (provider, app, auth, _browser, user, old_key) = connected_app().await;
    let email: String = {
        let pool = app.db().await;
        let email = sqlx::query_scalar(r#"SELECT email FROM "user" WHERE id = ?"#)
            .bind(&user)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        email
    };
    let old_id = mcpauth_core::vault::VaultKey::parse(&old_key)
        .unwrap()
        .id()
        .to_owned();
    let new_key = new_key();
    let new_id = mcpauth_core::vault::VaultKey::parse(&new_key)
        .unwrap()
        .id()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mcpauth.toml");
    std::fs::write(
        &config,
        format!(
            r#"database_url = "sqlite://{db}"

[[connections]]
id = "{ID}"
name = "Acme"
type = "oauth2"
client_id = "{CLIENT_ID}"
client_secret = "${{ACME_SECRET}}"
authorization_url = "{base}/authorize"
token_url = "{base}/token"
revocation_url = "{base}/revoke"
"#,
            db = app.db_path.display(),
            base = provider.base,
        ),
    )
    .unwrap();
    let run = |args: &'static [&'static str], keys: String| {
        let mut command = mcpauth(dir.path());
        command
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("MCPAUTH_VAULT_KEY", keys)
            .env("ACME_SECRET", CLIENT_SECRET);
        command
    };

    // The new key alone cannot open what the old one sealed: refused before anything changes.
    let refused = run(&["keys", "rotate-vault"], new_key.clone())
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("wrong or missing"));

    let rotated = run(
        &["keys", "rotate-vault", "--json"],
        format!("{new_key},{old_key}"),
    )
    .output()
    .await
    .unwrap();
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let out: Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_eq!(out["resealed"], 1);
    let pool = app.db().await;
    let ids: Vec<String> = sqlx::query_scalar(r#"SELECT key_id FROM "mcpauthConnection""#)
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(ids, std::slice::from_ref(&new_id));
    assert_ne!(ids[0], old_id);

    // A server with only the new key: the old connection works.
    drop(auth);
    let mut settings = test_settings();
    settings.database_url = format!("sqlite://{}", app.db_path.display());
    configure(&mut settings, &provider, &new_key);
    let restarted = mcpauth_server::Application::build(&settings, None)
        .await
        .expect("starts with the new key alone");
    let token = restarted
        .auth()
        .connections()
        .token(&user, ID)
        .await
        .unwrap();
    assert_eq!(token.access_token, provider.issued()[0]);

    let listed = run(
        &["connection", "list", "--json", "--email"],
        new_key.clone(),
    )
    .arg(&email)
    .output()
    .await
    .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let list: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(list[0]["connection"], ID);
    assert_eq!(list[0]["status"], "active");
    for secret in provider.issued() {
        assert!(!String::from_utf8_lossy(&listed.stdout).contains(&secret));
    }

    let deleted = run(
        &["connection", "delete", "--connection", ID, "--email"],
        new_key,
    )
    .arg(&email)
    .output()
    .await
    .unwrap();
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    assert_eq!(connection_rows(&app).await, 0);
    assert_eq!(
        provider.revoked(),
        [provider.issued()[1].clone()],
        "the refresh token is revoked"
    );
    assert_eq!(
        restarted.auth().connections().token(&user, ID).await,
        Err(ConnectionError::NotConnected)
    );
}

/// The provider's answer opened in another browser (even one signed in as the same user) is
/// refused, and takes the state with it: the right browser then gets nothing either; a
/// completed callback replayed is refused. Nothing is stored (V2).
#[tokio::test]
async fn v2_replayed_callback_and_foreign_browser_connect_nothing() {
    let provider = TestProvider::start().await;
    let key = new_key();
    let (app, auth) = spawn_app_with_auth(|s| configure(s, &provider, &key)).await;
    let email = unique_email();
    let browser = browser();
    app.sign_up(&browser, &email).await;
    let user = user_id(&app, &browser).await;

    let callback = start_connect(&app, &browser).await;
    // Another browser of the same user: its own session, not the cookie of this connect.
    let other = crate::common::browser();
    let signed_in = other
        .post(app.url("/api/auth/sign-in/email"))
        .header("origin", &app.base)
        .json(&serde_json::json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::OK);
    let foreign = other.get(&callback).send().await.unwrap();
    assert_eq!(foreign.status(), StatusCode::BAD_REQUEST);
    assert!(foreign.text().await.unwrap().contains("another browser"));
    let late = browser.get(&callback).send().await.unwrap();
    assert_eq!(
        late.status(),
        StatusCode::BAD_REQUEST,
        "the state was taken"
    );
    assert_eq!(connection_rows(&app).await, 0);

    // A browser signed out in between: refused too.
    let callback = start_connect(&app, &browser).await;
    let anonymous = client().get(&callback).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::BAD_REQUEST);
    assert_eq!(connection_rows(&app).await, 0);

    // A completed callback replayed.
    let callback = start_connect(&app, &browser).await;
    assert_eq!(
        browser.get(&callback).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    let replay = browser.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert!(auth.connections().token(&user, ID).await.is_ok());
    let refused = audit_kinds(&app)
        .await
        .iter()
        .filter(|k| *k == "connection.refused")
        .count();
    assert_eq!(refused, 4, "foreign browser, late, anonymous, replay");
}

/// An elicitation link made for user A, opened by user B: the page says it is for another
/// account, B's press connects nothing and spends the link; A's own link connects A, says
/// "return to your client" and announces the completion with its elicitation id (V2).
#[tokio::test]
async fn v2_connect_url_of_user_a_opened_by_user_b_connects_nothing() {
    let provider = TestProvider::start().await;
    let key = new_key();
    let (app, auth) = spawn_app_with_auth(|s| configure(s, &provider, &key)).await;
    let alice = app.signed_in_browser().await;
    let alice_id = user_id(&app, &alice).await;
    let bob = app.signed_in_browser().await;
    let bob_id = user_id(&app, &bob).await;
    let connections = auth.connections();
    let mut completions = connections.completions();

    assert_eq!(
        connections.connect_url(&alice_id, "nope", "el-0").await,
        Err(ConnectionError::UnknownConnection)
    );
    let link = connections
        .connect_url(&alice_id, ID, "el-1")
        .await
        .unwrap();
    assert!(link.starts_with(&format!(
        "{}/api/auth/connections/{ID}/connect?ticket=",
        app.base
    )));
    let (status, _, html) = get_page(&bob, &link).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("for another account"), "{html}");
    // Bob forges the press with his own CSRF token and Alice's ticket.
    let ticket = query_of(&link)["ticket"].clone();
    let csrf = input_value(&account_html(&app, &bob).await, "csrf_token").unwrap();
    let pressed = post_form(
        &app,
        &bob,
        &format!("/api/auth/connections/{ID}/connect"),
        &[("csrf_token", &csrf), ("ticket", &ticket)],
    )
    .await;
    assert_eq!(pressed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(connection_rows(&app).await, 0);
    // The link is spent: Alice cannot use it either.
    let (status, _, html) = get_page(&alice, &link).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("expired"), "{html}");

    // Opened without a session: off to sign in, and back.
    let anonymous = client().get(&link).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert!(location(&anonymous).starts_with("/sign-in?return_to=%2Fapi%2Fauth%2Fconnections"));

    // Alice's own link.
    let link = connections
        .connect_url(&alice_id, ID, "el-2")
        .await
        .unwrap();
    let (status, _, html) = get_page(&alice, &link).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Connect Acme"));
    let csrf = input_value(&html, "csrf_token").unwrap();
    let ticket = input_value(&html, "ticket").unwrap();
    let pressed = post_form(
        &app,
        &alice,
        &format!("/api/auth/connections/{ID}/connect"),
        &[("csrf_token", &csrf), ("ticket", &ticket)],
    )
    .await;
    assert_eq!(pressed.status(), StatusCode::SEE_OTHER);
    let callback = approve_at_provider(&location(&pressed)).await;
    let done = alice.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done.text().await.unwrap().contains("return to your client"));
    let completed = completions.try_recv().unwrap();
    assert_eq!(completed.user_id, alice_id);
    assert_eq!(completed.connection_id, ID);
    assert_eq!(completed.elicitation_id.as_deref(), Some("el-2"));
    assert!(connections.token(&alice_id, ID).await.is_ok());
    assert_eq!(
        connections.token(&bob_id, ID).await,
        Err(ConnectionError::NotConnected)
    );
}

/// Ten concurrent calls for a token about to expire: the provider sees one refresh, and every
/// caller gets the new token; a second instance on the same database shares the claim (V4).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn v4_ten_parallel_calls_refresh_once() {
    let (provider, app, auth, _browser, user, key) = connected_app().await;
    provider.state.refresh_delay_ms.store(200, Ordering::SeqCst);
    // Another instance on the same database and clock.
    let second = spawn_app_with_auth_on(&app, |s| configure(s, &provider, &key)).await;
    app.clock.advance(3600 - 30);
    second.clock.advance(3600 - 30);

    let mut calls = tokio::task::JoinSet::new();
    for i in 0..10 {
        let connections = if i % 2 == 0 {
            auth.connections().clone()
        } else {
            second.auth.connections().clone()
        };
        let user = user.clone();
        calls.spawn(async move { connections.token(&user, ID).await });
    }
    let mut tokens = Vec::new();
    while let Some(result) = calls.join_next().await {
        tokens.push(result.unwrap().unwrap().access_token);
    }
    assert_eq!(provider.state.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(provider.state.refresh_requests.load(Ordering::SeqCst), 1);
    let issued = provider.issued();
    assert_eq!(issued.len(), 4);
    assert!(
        tokens.iter().all(|t| *t == issued[2]),
        "everyone has the new token"
    );
    assert!(
        audit_kinds(&app)
            .await
            .contains(&"connection.refreshed".to_owned())
    );
    // Fresh again: no further refresh.
    auth.connections().token(&user, ID).await.unwrap();
    assert_eq!(provider.state.refreshes.load(Ordering::SeqCst), 1);
}

/// A refresh the provider refuses: `ReconnectNeeded` (for this and every later call, without
/// asking the provider again), audited, and "Reconnect needed" on the account page; connecting
/// again clears it (V4).
#[tokio::test]
async fn v4_refused_refresh_marks_the_connection_for_reconnect() {
    let (provider, app, auth, browser, user, _) = connected_app().await;
    provider.state.refuse_refresh.store(true, Ordering::SeqCst);
    app.clock.advance(3600);
    assert_eq!(
        auth.connections().token(&user, ID).await,
        Err(ConnectionError::ReconnectNeeded)
    );
    assert_eq!(
        auth.connections().token(&user, ID).await,
        Err(ConnectionError::ReconnectNeeded)
    );
    assert_eq!(provider.state.refresh_requests.load(Ordering::SeqCst), 1);
    assert!(
        audit_kinds(&app)
            .await
            .contains(&"connection.refresh_failed".to_owned())
    );
    let html = account_html(&app, &browser).await;
    assert!(html.contains("Reconnect needed"), "{html}");
    assert!(html.contains("Reconnect Acme"));

    provider.state.refuse_refresh.store(false, Ordering::SeqCst);
    connect(&app, &browser).await;
    let token = auth.connections().token(&user, ID).await.unwrap();
    assert_eq!(token.access_token, provider.issued()[2]);
}

/// Tokens never reach the log (at TRACE), the metrics or the audit log, through a connect,
/// uses, a refresh, a refused refresh and a disconnect (V3); disconnecting revokes at the
/// provider (RFC 7009) and deletes; a disabled user's connection is locked.
#[tokio::test]
async fn v3_tokens_never_in_logs_metrics_or_audit() {
    let logs = capture_logs();
    let metrics = mcpauth_server::observability::prometheus().unwrap();
    let (provider, app, auth, browser, user, _) = connected_app().await;
    let connections = auth.connections();
    connections.token(&user, ID).await.unwrap();
    app.clock.advance(3600);
    connections.token(&user, ID).await.unwrap();
    provider.state.refuse_refresh.store(true, Ordering::SeqCst);
    app.clock.advance(3600);
    assert_eq!(
        connections.token(&user, ID).await,
        Err(ConnectionError::ReconnectNeeded)
    );

    let csrf = input_value(&account_html(&app, &browser).await, "csrf_token").unwrap();
    let response = post_form(
        &app,
        &browser,
        "/account/connections/disconnect",
        &[("csrf_token", &csrf), ("connection", ID)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/account?done=disconnected");
    assert_eq!(connection_rows(&app).await, 0);
    let issued = provider.issued();
    assert_eq!(issued.len(), 4);
    assert_eq!(
        provider.revoked(),
        [issued[3].clone()],
        "the live refresh token"
    );

    let rendered = metrics.render();
    assert!(
        rendered.contains("mcpauth_connection_tokens_total"),
        "{rendered}"
    );
    assert!(rendered.contains("outcome=\"refreshed\""));
    assert!(rendered.contains("outcome=\"refresh_refused\""));
    let pool = app.db().await;
    let audit: Vec<String> = sqlx::query_scalar(r#"SELECT kind || ' ' || detail FROM "auditLog""#)
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    for kind in [
        "connection.connected",
        "connection.refreshed",
        "connection.refresh_failed",
        "connection.disconnected",
    ] {
        assert!(
            audit.iter().any(|a| a.starts_with(kind)),
            "{kind}: {audit:?}"
        );
    }
    let logged = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("connection.refreshed"),
        "the log was captured"
    );
    for secret in &issued {
        assert!(!logged.contains(secret.as_str()), "a token in the log");
        assert!(
            !rendered.contains(secret.as_str()),
            "a token in the metrics"
        );
        assert!(
            !audit.iter().any(|a| a.contains(secret.as_str())),
            "a token in the audit log"
        );
    }

    // Connected again, then the user is disabled: the connection is locked.
    provider.state.refuse_refresh.store(false, Ordering::SeqCst);
    connect(&app, &browser).await;
    assert!(connections.token(&user, ID).await.is_ok());
    let pool = app.db().await;
    sqlx::query(r#"UPDATE "user" SET disabled = 1 WHERE id = ?"#)
        .bind(&user)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(
        connections.token(&user, ID).await,
        Err(ConnectionError::NotConnected)
    );
}

/// A second in-process instance on `app`'s database file.
struct Second {
    clock: mcpauth_core::ManualClock,
    auth: McpAuth,
}

async fn spawn_app_with_auth_on(app: &TestApp, configure: impl FnOnce(&mut Settings)) -> Second {
    let mut settings = test_settings();
    settings.database_url = format!("sqlite://{}", app.db_path.display());
    configure(&mut settings);
    let clock = mcpauth_core::ManualClock::new();
    let built =
        mcpauth_server::Application::build(&settings, Some(std::sync::Arc::new(clock.clone())))
            .await
            .unwrap();
    Second {
        clock,
        auth: built.auth().clone(),
    }
}

/// Installs a TRACE-level subscriber writing into the returned buffer (this test's process
/// only: nextest runs each test alone).
fn capture_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Sink(buffer.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _ = tracing::subscriber::set_global_default(subscriber);
    buffer
}

/// A Rust MCP server behind `with_mcp_auth` gets the calling user's token with
/// `McpSession::connection_token`; another user, who has not connected, gets `NotConnected`.
#[tokio::test]
async fn library_session_connection_token() {
    use axum::routing::post;
    let provider = TestProvider::start().await;
    let key = new_key();
    let (app, auth) = spawn_app_with_auth(|s| configure(s, &provider, &key)).await;
    let flow = app.full_flow("openid mcp:tools").await;
    connect(&app, &flow.browser).await;
    let stranger = app.full_flow("openid mcp:tools").await;

    let server = axum::Router::new()
        .route(
            "/api/mcp",
            post(|session: mcpauth::McpSession| async move {
                match session.connection_token(ID).await {
                    Ok(token) => token.access_token,
                    Err(error) => format!("error: {error:?}"),
                }
            }),
        )
        .layer(auth.with_mcp_auth());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, server).await });
    let call = |token: String| async move {
        client()
            .post(format!("http://{address}/api/mcp"))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .send()
            .await
            .unwrap()
    };
    let mine = call(flow.tokens["access_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(mine.status(), StatusCode::OK);
    assert_eq!(mine.text().await.unwrap(), provider.issued()[0]);
    let theirs = call(stranger.tokens["access_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(theirs.text().await.unwrap(), "error: NotConnected");
}

/// An elicitation link opened in a browser that is not signed in: the sign-in page brings the
/// browser back to the link, which then offers the connect.
#[tokio::test]
async fn connect_link_survives_signing_in_first() {
    let provider = TestProvider::start().await;
    let key = new_key();
    let (app, auth) = spawn_app_with_auth(|s| configure(s, &provider, &key)).await;
    let email = existing_user(&app).await;
    let pool = app.db().await;
    let user: String = sqlx::query_scalar(r#"SELECT id FROM "user" WHERE email = ?"#)
        .bind(&email)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    let link = auth
        .connections()
        .connect_url(&user, ID, "el-9")
        .await
        .unwrap();
    let browser = browser();
    let first = browser.get(&link).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let sign_in = location(&first);
    let (status, _, html) = get_page(&browser, &app.url(&sign_in)).await;
    assert_eq!(status, StatusCode::OK);
    let return_to = input_value(&html, "return_to").unwrap();
    let csrf = input_value(&html, "csrf_token").unwrap();
    let signed_in = post_form(
        &app,
        &browser,
        "/sign-in",
        &[
            ("email", &email),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
            ("return_to", &return_to),
        ],
    )
    .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let back = location(&signed_in);
    assert_eq!(app.url(&back), link);
    let (status, _, html) = get_page(&browser, &link).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Connect Acme"));
}

/// `mcpauth serve` prints each connection's redirect URI; without a vault key it does not
/// start, and says why.
#[tokio::test]
async fn serve_prints_connection_redirect_uris() {
    let provider = TestProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mcpauth.toml");
    std::fs::write(
        &config,
        format!(
            r#"database_url = "sqlite://{db}"
bind = "127.0.0.1:0"

[[connections]]
id = "{ID}"
name = "Acme"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
authorization_url = "{base}/authorize"
token_url = "{base}/token"
"#,
            db = dir.path().join("serve.db").display(),
            base = provider.base,
        ),
    )
    .unwrap();
    let refused = mcpauth(dir.path())
        .args(["--config", config.to_str().unwrap(), "serve"])
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("no vault key"), "{stderr}");

    let mut command = mcpauth(dir.path());
    command
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("MCPAUTH_VAULT_KEY", new_key())
        .env("RUST_LOG", "warn");
    let server = ServeChild::start(&mut command).await;
    let port = server.address.rsplit(':').next().unwrap().to_owned();
    let expected = format!(
        "Connect:       Acme (redirect URI http://localhost:{port}/api/auth/connections/{ID}/callback)"
    );
    assert!(
        server.banner.iter().any(|line| line.trim() == expected),
        "{:?}",
        server.banner
    );
}

/// `type = "oidc"`: the endpoints come from the provider's discovery document, its
/// `revocation_endpoint` included (used on disconnect).
#[tokio::test]
async fn oidc_connection_reads_its_endpoints_from_discovery() {
    let provider = TestProvider::start().await;
    let key = new_key();
    let (app, auth) = spawn_app_with_auth(|s| {
        configure(s, &provider, &key);
        let connection = &mut s.connections[0];
        connection.kind = ConnectionKindSetting::Oidc;
        connection.issuer = Some(provider.base.clone());
        connection.authorization_url = None;
        connection.token_url = None;
        connection.revocation_url = None;
    })
    .await;
    let browser = app.signed_in_browser().await;
    let user = user_id(&app, &browser).await;
    connect(&app, &browser).await;
    let token = auth.connections().token(&user, ID).await.unwrap();
    assert_eq!(token.access_token, provider.issued()[0]);
    assert!(
        auth.connections()
            .disconnect(&user, ID, "test")
            .await
            .unwrap()
    );
    assert_eq!(provider.revoked(), [provider.issued()[1].clone()]);
}
