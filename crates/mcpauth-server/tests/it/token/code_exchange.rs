//! The authorization code exchange (SPEC §5.4; SECURITY S6, S8, S9, S23): the token response,
//! the audience, PKCE downgrade, code replay and what a code is bound to.

use super::*;
use reqwest::header::{CACHE_CONTROL, PRAGMA};

const OTHER_REDIRECT_URI: &str = "http://localhost:9999/other-callback";

/// Another code for the same user and client (consent is remembered).
async fn another_code(app: &TestApp, pending: &Pending, scope: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let code = app
        .code_for(&pending.browser, &pending.client_id, &challenge, scope)
        .await;
    (code, verifier)
}

/// Follows `/authorize` with these parameters (approving consent) and returns the code.
async fn code_with(app: &TestApp, browser: &Client, params: &[(&str, &str)]) -> String {
    let response = app.authorize(browser, params).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let mut target = location(&response);
    if target.starts_with("/consent") {
        target = app.approve(browser, &target, true).await;
    }
    let query = query_of(&target);
    assert!(
        query.contains_key("code"),
        "the authorization succeeds: {target}"
    );
    query["code"].clone()
}

#[tokio::test]
async fn s23_code_exchange_response_is_complete_and_not_cacheable() {
    let app = spawn_app().await;
    let pending = pending_code(&app, "openid mcp:tools").await;
    let response = exchange(&app, &pending.client_id, &pending.code, &pending.verifier).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(response.headers()[PRAGMA], "no-cache");
    let tokens: Value = response.json().await.unwrap();
    assert!(!str_of(&tokens, "access_token").is_empty());
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(
        scope_set(str_of(&tokens, "scope")),
        scope_set("openid mcp:tools")
    );
    let refresh_token = str_of(&tokens, "refresh_token");
    assert!(!refresh_token.is_empty());
    assert_ne!(refresh_token, str_of(&tokens, "access_token"));
}

#[tokio::test]
async fn no_refresh_token_without_refresh_grant_or_offline_access() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client = app
        .register(json!({
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let client_id = str_of(&client, "client_id");
    let (verifier, challenge) = pkce();
    let code = app
        .code_for(&browser, client_id, &challenge, "openid mcp:tools")
        .await;
    let response = exchange(&app, client_id, &code, &verifier).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    assert!(tokens.get("access_token").is_some());
    assert!(
        tokens.get("refresh_token").is_none(),
        "no refresh token was earned: {tokens}"
    );
}

#[tokio::test]
async fn refresh_token_when_offline_access_is_asked() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client = app
        .register(json!({
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let client_id = str_of(&client, "client_id");
    let (verifier, challenge) = pkce();
    let code = app
        .code_for(
            &browser,
            client_id,
            &challenge,
            "openid mcp:tools offline_access",
        )
        .await;
    let response = exchange(&app, client_id, &code, &verifier).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    let refresh_token = str_of(&tokens, "refresh_token");
    let refreshed = refresh(&app, client_id, refresh_token, &[]).await;
    assert_eq!(
        refreshed.status(),
        StatusCode::OK,
        "the refresh token works"
    );
}

#[tokio::test]
async fn token_endpoint_accepts_a_json_body() {
    let app = spawn_app().await;
    let pending = pending_code(&app, "openid mcp:tools").await;
    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .json(&json!({
            "grant_type": "authorization_code",
            "code": pending.code,
            "redirect_uri": REDIRECT_URI,
            "client_id": pending.client_id,
            "code_verifier": pending.verifier,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
}

#[tokio::test]
async fn resource_becomes_the_audience() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let resource = app.resource();
    let (verifier, challenge) = pkce();
    let mut params = TestApp::authorize_params(&client_id, &challenge, "mcp:tools", "st");
    params.push(("resource", &resource));
    let code = code_with(&app, &browser, &params).await;
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
            ("resource", &resource),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    let session = get_session(&app, str_of(&tokens, "access_token")).await;
    assert_eq!(session.status(), StatusCode::OK);
    let session: Value = session.json().await.unwrap();
    assert_eq!(session["audience"], resource.as_str());
}

#[tokio::test]
async fn audience_defaults_to_the_resource_when_none_is_sent() {
    let app = spawn_app().await;
    let flow = app.full_flow("mcp:tools").await;
    let session = get_session(&app, str_of(&flow.tokens, "access_token")).await;
    assert_eq!(session.status(), StatusCode::OK);
    let session: Value = session.json().await.unwrap();
    assert_eq!(session["audience"], app.resource().as_str());
}

#[tokio::test]
async fn s09_exchange_with_another_resource_is_invalid_target() {
    let app = spawn_app().await;
    let pending = pending_code(&app, "mcp:tools").await;
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &pending.code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &pending.client_id),
            ("code_verifier", &pending.verifier),
            ("resource", "https://other.example/api/mcp"),
        ])
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_target").await;
}

// ---------------------------------------------------------------------------------------------
// PKCE downgrade, code replay, code bindings

#[tokio::test]
async fn s06_verifier_without_stored_challenge_is_refused() {
    let app = spawn_app_with(|s| s.auth.require_pkce_for_confidential = false).await;
    let (client_id, secret) = register_confidential(&app, "client_secret_basic").await;
    let browser = app.signed_in_browser().await;
    let params = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid mcp:tools"),
        ("state", "st"),
    ];
    let code = code_with(&app, &browser, &params).await;
    let (verifier, _) = pkce();
    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // Without the verifier the same kind of code is fine: the refusal was the downgrade.
    let code = code_with(&app, &browser, &params).await;
    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn s08_code_replay_revokes_tokens() {
    let app = spawn_app().await;
    let pending = pending_code(&app, "openid mcp:tools").await;
    let first = redeem(&app, &pending).await;
    let access = str_of(&first, "access_token");
    let refresh_token = str_of(&first, "refresh_token");
    assert_eq!(app.session_status(access).await, StatusCode::OK);

    let replay = exchange(&app, &pending.client_id, &pending.code, &pending.verifier).await;
    expect_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;

    assert_eq!(
        app.session_status(access).await,
        StatusCode::UNAUTHORIZED,
        "the first access token is revoked"
    );
    let refreshed = refresh(&app, &pending.client_id, refresh_token, &[]).await;
    expect_error(refreshed, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn s08_code_replay_revokes_tokens_refreshed_from_it() {
    let app = spawn_app().await;
    let pending = pending_code(&app, "openid mcp:tools").await;
    let first = redeem(&app, &pending).await;
    let refreshed = refresh(
        &app,
        &pending.client_id,
        str_of(&first, "refresh_token"),
        &[],
    )
    .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let second: Value = refreshed.json().await.unwrap();

    let replay = exchange(&app, &pending.client_id, &pending.code, &pending.verifier).await;
    expect_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;

    assert_eq!(
        app.session_status(str_of(&second, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    let again = refresh(
        &app,
        &pending.client_id,
        str_of(&second, "refresh_token"),
        &[],
    )
    .await;
    expect_error(again, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn s08_replay_does_not_touch_other_grants() {
    let app = spawn_app().await;
    let pending = pending_code(&app, "openid mcp:tools").await;
    let (other_code, other_verifier) = another_code(&app, &pending, "openid mcp:tools").await;
    let other = exchange(&app, &pending.client_id, &other_code, &other_verifier).await;
    assert_eq!(other.status(), StatusCode::OK);
    let other: Value = other.json().await.unwrap();
    redeem(&app, &pending).await;
    let replay = exchange(&app, &pending.client_id, &pending.code, &pending.verifier).await;
    expect_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(
        app.session_status(str_of(&other, "access_token")).await,
        StatusCode::OK,
        "a grant from another code of the same user and client lives on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s08_concurrent_exchanges_of_one_code_succeed_at_most_once() {
    let app = spawn_app().await;
    let pending = pending_code(&app, "openid mcp:tools").await;
    let url = app.url("/api/auth/mcp/token");
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let http = app.http.clone();
        let url = url.clone();
        let form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", pending.code.clone()),
            ("redirect_uri", REDIRECT_URI.to_owned()),
            ("client_id", pending.client_id.clone()),
            ("code_verifier", pending.verifier.clone()),
        ];
        tasks.push(tokio::spawn(async move {
            let response = http.post(url).form(&form).send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            (status, body)
        }));
    }
    let mut successes = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::OK => successes += 1,
            StatusCode::BAD_REQUEST if body["error"] == "invalid_grant" => {}
            other => panic!("a concurrent exchange got {other}: {body}"),
        }
    }
    assert_eq!(successes, 1, "exactly one exchange wins");
}

#[tokio::test]
async fn s09_code_is_bound_to_the_client() {
    let app = spawn_app().await;
    let pending = pending_code(&app, "mcp:tools").await;
    let other_client = app.register_public(REDIRECT_URI).await;
    let response = exchange(&app, &other_client, &pending.code, &pending.verifier).await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn s09_code_is_bound_to_the_redirect_uri() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client = app
        .register(json!({
            "redirect_uris": [REDIRECT_URI, OTHER_REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let client_id = str_of(&client, "client_id");
    for other in [
        OTHER_REDIRECT_URI,
        "http://localhost:9998/callback",
        "http://localhost:9999/callback/",
    ] {
        let (verifier, challenge) = pkce();
        let code = app
            .code_for(&browser, client_id, &challenge, "mcp:tools")
            .await;
        let response = app
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", other),
                ("client_id", client_id),
                ("code_verifier", &verifier),
            ])
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
}

#[tokio::test]
async fn s09_wrong_verifier_is_invalid_grant() {
    let app = spawn_app().await;
    let pending = pending_code(&app, "mcp:tools").await;
    let (wrong, _) = pkce();
    let response = exchange(&app, &pending.client_id, &pending.code, &wrong).await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn s09_missing_verifier_is_invalid_grant() {
    let app = spawn_app().await;
    let pending = pending_code(&app, "mcp:tools").await;
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &pending.code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &pending.client_id),
        ])
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn s09_code_expires_after_ten_minutes() {
    let app = spawn_app().await;
    let pending = pending_code(&app, "mcp:tools").await;
    app.clock.advance(599);
    let fresh = exchange(&app, &pending.client_id, &pending.code, &pending.verifier).await;
    assert_eq!(
        fresh.status(),
        StatusCode::OK,
        "a 599 s old code still works"
    );

    let (code, verifier) = another_code(&app, &pending, "mcp:tools").await;
    app.clock.advance(601);
    let response = exchange(&app, &pending.client_id, &code, &verifier).await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}
