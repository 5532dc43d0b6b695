//! Replays of what real MCP clients were seen doing in the field (INTEROP.md, "What real
//! clients were seen doing"): each is a way a textbook server logs real users out or fails
//! their setup. Refresh replays (SECURITY S12), registration as clients send it, scopes, the
//! ChatGPT authorization request, and the purge of clients that re-register (M5).

use crate::common::*;
use mcpauth_core::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn refresh(app: &TestApp, client_id: &str, refresh_token: &str) -> (StatusCode, Value) {
    let response = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
        ])
        .await;
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {value}"))
}

/// Claude Code: several sessions share one stored grant and refresh from stale in-memory
/// copies, each about when its access token expires. Every session stays signed in.
#[tokio::test]
async fn claude_code_parallel_sessions_refresh_from_stale_copies() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let id = flow.client_id.as_str();
    let shared = text(&flow.tokens, "refresh_token").to_owned();

    // Both sessions loaded the same grant; session A refreshes first.
    app.clock.advance(3590);
    let (status, a) = refresh(&app, id, &shared).await;
    assert_eq!(status, StatusCode::OK);
    // Session B, a minute later (past the 30 s retry grace), from its stale copy.
    app.clock.advance(60);
    let (status, b) = refresh(&app, id, &shared).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the sibling session stays signed in: {b}"
    );
    assert_ne!(text(&a, "refresh_token"), text(&b, "refresh_token"));

    // An hour later both refresh again, each from the token it holds.
    app.clock.advance(3540);
    let (status, a2) = refresh(&app, id, text(&a, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK, "{a2}");
    app.clock.advance(60);
    let (status, b2) = refresh(&app, id, text(&b, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK, "{b2}");
    for tokens in [&a2, &b2] {
        assert_eq!(
            app.session_status(text(tokens, "access_token")).await,
            StatusCode::OK
        );
    }

    // A copy two generations old is not a sibling session: the grant is revoked.
    let (status, error) = refresh(&app, id, &shared).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "invalid_grant");
    assert_eq!(
        app.session_status(text(&a2, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
}

/// Codex CLI: several processes presented one refresh token five times within a second, and
/// again 7 min 45 s later.
#[tokio::test]
async fn codex_presents_one_refresh_token_five_times_then_again_minutes_later() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let id = flow.client_id.as_str();
    let rt = text(&flow.tokens, "refresh_token");

    let five = tokio::join!(
        refresh(&app, id, rt),
        refresh(&app, id, rt),
        refresh(&app, id, rt),
        refresh(&app, id, rt),
        refresh(&app, id, rt),
    );
    let answers = [five.0, five.1, five.2, five.3, five.4];
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(
            body, &answers[0].1,
            "every presentation gets the one answer"
        );
    }
    let current = &answers[0].1;

    app.clock.advance(7 * 60 + 45);
    let (status, late) = refresh(&app, id, rt).await;
    assert_eq!(status, StatusCode::OK, "{late}");
    // The grant is alive: the rotation's tokens and the late answer's all work.
    assert_eq!(
        app.session_status(text(current, "access_token")).await,
        StatusCode::OK
    );
    let (status, next) = refresh(&app, id, text(current, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(
        app.session_status(text(&late, "access_token")).await,
        StatusCode::OK
    );
}

/// Claude Code and Claude's hosted connector register a new client on every connection:
/// clients that never completed an authorization are purged a day after registering; one
/// with a grant stays and keeps working (SECURITY M5).
#[tokio::test]
async fn m05_unused_registered_client_is_purged_a_used_one_stays() {
    let app = spawn_app().await;
    let unused = app.register_public(REDIRECT_URI).await;
    let used = app.full_flow("openid mcp:tools").await;
    let store = mcpauth_server::open_store(&format!("sqlite://{}", app.db_path.display()))
        .await
        .unwrap();

    app.clock.advance(86_399);
    store.purge_expired(app.clock.now()).await.unwrap();
    assert!(
        store.client_by_id(&unused).await.unwrap().is_some(),
        "kept for a day"
    );

    app.clock.advance(1);
    store.purge_expired(app.clock.now()).await.unwrap();
    assert!(
        store.client_by_id(&unused).await.unwrap().is_none(),
        "purged"
    );
    assert!(store.client_by_id(&used.client_id).await.unwrap().is_some());
    let (status, body) = refresh(&app, &used.client_id, text(&used.tokens, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The purged client is unknown now: Claude re-registers on `invalid_client`.
    let (_, challenge) = pkce();
    let response = app
        .authorize(
            &used.browser,
            &TestApp::authorize_params(&unused, &challenge, "openid", "s"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// Authorizes `client_id` in `browser` with PKCE, `redirect_uri` and the `extra` parameters,
/// approving consent when asked; the code and its verifier.
async fn authorize(
    app: &TestApp,
    browser: &reqwest::Client,
    client_id: &str,
    redirect_uri: &str,
    extra: &[(&str, &str)],
) -> (String, String) {
    let (verifier, challenge) = pkce();
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("state", "field-state"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(extra);
    let response = app.authorize(browser, &params).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let mut target = location(&response);
    if target.starts_with("/consent") {
        target = app.approve(browser, &target, true).await;
    }
    assert!(
        target.starts_with(redirect_uri),
        "back at the client: {target}"
    );
    (query_of(&target)["code"].clone(), verifier)
}

/// Exchanges a code for a public client; the token response.
async fn exchange(
    app: &TestApp,
    client_id: &str,
    redirect_uri: &str,
    code: &str,
    verifier: &str,
) -> Value {
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id),
            ("code_verifier", verifier),
            ("resource", &app.resource()),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn document(app: &TestApp, path: &str) -> Value {
    app.http
        .get(app.url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Claude's hosted connector registers from its backend asking `client_secret_post`, then
/// always sends the secret in the body (never Basic), with PKCE like a public client.
#[tokio::test]
async fn claude_registers_with_client_secret_post_and_sends_the_secret_in_the_body() {
    const CALLBACK: &str = "https://claude.ai/api/mcp/auth_callback";
    let app = spawn_app().await;
    let metadata = document(&app, "/.well-known/oauth-authorization-server").await;
    let registered = app
        .register(json!({
            "client_name": "Claude",
            "redirect_uris": [CALLBACK],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
            "scope": metadata["scopes_supported"].as_array().unwrap().iter()
                .map(|s| s.as_str().unwrap()).collect::<Vec<_>>().join(" "),
        }))
        .await;
    assert_eq!(
        registered["token_endpoint_auth_method"],
        "client_secret_post"
    );
    let client_id = text(&registered, "client_id");
    let secret = text(&registered, "client_secret");

    let browser = app.signed_in_browser().await;
    let resource = app.resource();
    let (code, verifier) = authorize(
        &app,
        &browser,
        client_id,
        CALLBACK,
        &[("scope", "mcp:tools"), ("resource", &resource)],
    )
    .await;
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("client_id", client_id),
            ("client_secret", secret),
            ("code_verifier", &verifier),
            ("resource", &resource),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    let rt = text(&tokens, "refresh_token");

    // Without its secret the client is refused, however public it behaves.
    let (status, error) = refresh(&app, client_id, rt).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error["error"], "invalid_client");
    let response = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", client_id),
            ("client_secret", secret),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// VS Code (and some Claude versions) ask for every scope the authorization server
/// advertises, plus whatever else they saw: they get the ordinary scopes, never a consent
/// scope by accident, and unknown scopes are dropped instead of failing the flow.
#[tokio::test]
async fn vscode_asks_for_every_advertised_scope() {
    const VSCODE: &str = "http://127.0.0.1:33418/";
    let app = spawn_app().await;
    let metadata = document(&app, "/.well-known/oauth-authorization-server").await;
    let advertised: Vec<&str> = metadata["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(advertised.contains(&"mcp:tools"));
    assert!(
        !advertised.contains(&"mcp:admin"),
        "consent scopes are not advertised"
    );
    let prm = document(&app, "/.well-known/oauth-protected-resource/api/mcp").await;
    assert_eq!(prm["scopes_supported"], json!(["mcp:tools"]));

    let client = app
        .register(json!({
            "client_name": "Visual Studio Code",
            "redirect_uris": ["http://127.0.0.1/", VSCODE, "https://vscode.dev/redirect"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let client_id = text(&client, "client_id");
    let browser = app.signed_in_browser().await;
    let everything = format!("{} vscode:unknown", advertised.join(" "));
    let (code, verifier) =
        authorize(&app, &browser, client_id, VSCODE, &[("scope", &everything)]).await;
    let tokens = exchange(&app, client_id, VSCODE, &code, &verifier).await;
    assert_eq!(tokens["scope"], advertised.join(" "), "what was granted");
    assert!(tokens["refresh_token"].is_string());
}

/// A client that skips consent (a trusted one) still gets the consent page for a consent
/// scope such as `mcp:admin`; ordinary scopes stay silent.
#[tokio::test]
async fn consent_scopes_are_never_granted_silently() {
    let app = spawn_app_with(|s| {
        s.auth.trusted_clients = vec![mcpauth::TrustedClient {
            client_id: "trusted-app".into(),
            client_secret: None,
            token_endpoint_auth_method: Some("none".into()),
            name: "Trusted App".into(),
            redirect_uris: vec![REDIRECT_URI.into()],
            logo_uri: None,
            skip_consent: true,
            refresh_reuse_policy: None,
            ..Default::default()
        }]
    })
    .await;
    let browser = app.signed_in_browser().await;
    let (_, challenge) = pkce();
    let silent = app
        .authorize(
            &browser,
            &TestApp::authorize_params("trusted-app", &challenge, "openid mcp:tools", "s"),
        )
        .await;
    assert!(location(&silent).starts_with(REDIRECT_URI));
    let admin = app
        .authorize(
            &browser,
            &TestApp::authorize_params("trusted-app", &challenge, "mcp:tools mcp:admin", "s"),
        )
        .await;
    let target = location(&admin);
    assert!(
        target.starts_with("/consent"),
        "the user is asked: {target}"
    );
    // Once approved, the stored consent is the explicit approval.
    let back = app.approve(&browser, &target, true).await;
    assert!(back.starts_with(REDIRECT_URI));
    let again = app
        .authorize(
            &browser,
            &TestApp::authorize_params("trusted-app", &challenge, "mcp:tools mcp:admin", "s"),
        )
        .await;
    assert!(location(&again).starts_with(REDIRECT_URI));
}

/// ChatGPT asks `openid email offline_access profile`, sends `resource` and `ui_locales` and
/// no `prompt`: it gets a refresh token because it registered the `refresh_token` grant, and
/// gets one without `offline_access` too.
#[tokio::test]
async fn chatgpt_authorize_request_gets_a_refresh_token() {
    const CALLBACK: &str = "https://chatgpt.com/connector_platform_oauth_redirect";
    let app = spawn_app().await;
    let client = app
        .register(json!({
            "client_name": "ChatGPT",
            "redirect_uris": [CALLBACK],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let client_id = text(&client, "client_id");
    let browser = app.signed_in_browser().await;
    let resource = app.resource();
    for scope in [
        "openid email offline_access profile",
        "openid email profile",
    ] {
        let (code, verifier) = authorize(
            &app,
            &browser,
            client_id,
            CALLBACK,
            &[
                ("scope", scope),
                ("resource", &resource),
                ("ui_locales", "en-US"),
            ],
        )
        .await;
        let tokens = exchange(&app, client_id, CALLBACK, &code, &verifier).await;
        assert_eq!(tokens["scope"], scope);
        assert!(tokens["refresh_token"].is_string(), "{scope}: {tokens}");
        assert!(tokens["id_token"].is_string());
    }
}

/// GitHub Copilot CLI registers without `scope` (and a port-less loopback redirect); Python
/// SDK clients send `application_type: native` with loopback redirects; unknown scopes in a
/// registration are dropped. Each registers, and the flow gets the default scope.
#[tokio::test]
async fn registrations_as_clients_send_them() {
    let app = spawn_app().await;
    let copilot = app
        .register(json!({
            "client_name": "GitHub Copilot CLI",
            "redirect_uris": ["http://127.0.0.1/"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    assert!(copilot.get("scope").is_none());
    let client_id = text(&copilot, "client_id");
    let browser = app.signed_in_browser().await;
    let port_redirect = "http://127.0.0.1:41234/";
    let (code, verifier) = authorize(&app, &browser, client_id, port_redirect, &[]).await;
    let tokens = exchange(&app, client_id, port_redirect, &code, &verifier).await;
    assert_eq!(tokens["scope"], "openid");

    let native = app
        .register(json!({
            "client_name": "Python SDK client",
            "application_type": "native",
            "redirect_uris": ["http://localhost:3030/callback", "http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            "scope": "mcp:tools files:read",
        }))
        .await;
    assert_eq!(native["application_type"], "native");
    assert_eq!(native["scope"], "mcp:tools", "unknown scopes are dropped");
}

/// The new options are checked when the server is built: a clear error, no server.
#[tokio::test]
async fn reuse_window_consent_scopes_and_initial_access_token_are_checked() {
    for (configure, expected) in [
        (
            (|s: &mut mcpauth_server::Settings| s.auth.refresh_reuse_window = 0) as fn(&mut _),
            "invalid option refresh_reuse_window: must be between 1 and 3600 seconds",
        ),
        (
            |s| s.auth.refresh_reuse_window = 3601,
            "invalid option refresh_reuse_window: must be between 1 and 3600 seconds",
        ),
        (
            |s| s.auth.consent_scopes = vec!["mcp:admin mcp:tools".into()],
            "invalid option consent_scopes: each entry must be one scope token",
        ),
        (
            |s| s.auth.initial_access_token = Some("short".into()),
            "invalid option initial_access_token: must be at least 32 characters",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = test_settings();
        settings.database_url = format!("sqlite://{}", dir.path().join("m.db").display());
        configure(&mut settings);
        let built = mcpauth_server::Application::build(&settings, None).await;
        let error = built.err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(error.contains(expected), "{error}");
    }
}

/// SECURITY S12 on PostgreSQL with two instances (one clock): sessions refreshing through
/// different instances are judged against the one committed head. Concurrent presentations
/// of the previous token, split between the instances, each get a sibling; the token two back
/// then revokes the grant for every instance.
#[tokio::test]
async fn s12_tolerated_reuse_across_two_instances_on_postgres() {
    let schema = PgSchema::create().await;
    let clock = mcpauth_core::ManualClock::new();
    let a = spawn_app_at(&schema.url(), &clock, |_| {}).await;
    let b = spawn_app_at(&schema.url(), &clock, |_| {}).await;
    let flow = a.full_flow("openid mcp:tools").await;
    let id = flow.client_id.as_str();
    let rt1 = text(&flow.tokens, "refresh_token").to_owned();
    let (status, second) = refresh(&a, id, &rt1).await;
    assert_eq!(status, StatusCode::OK);
    let rt2 = text(&second, "refresh_token").to_owned();
    clock.advance(5);
    let (status, third) = refresh(&b, id, &rt2).await;
    assert_eq!(status, StatusCode::OK);

    clock.advance(120);
    let (on_a, on_b) = tokio::join!(refresh(&a, id, &rt2), refresh(&b, id, &rt2));
    for (status, body) in [&on_a, &on_b] {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    assert_ne!(on_a.1["refresh_token"], on_b.1["refresh_token"]);
    // (Checked on A: each test instance has its own issuer, and the grant's audience is A's.)
    for tokens in [&third, &on_a.1, &on_b.1] {
        assert_eq!(
            a.session_status(text(tokens, "access_token")).await,
            StatusCode::OK,
            "the head and both siblings work"
        );
    }

    let (status, _) = refresh(&b, id, &rt1).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    after_revocation_check().await;
    for tokens in [&third, &on_a.1, &on_b.1] {
        assert_eq!(
            a.session_status(text(tokens, "access_token")).await,
            StatusCode::UNAUTHORIZED
        );
    }
}
