//! The token endpoint (SPEC §5.4, §5.6; SECURITY S6, S8, S9, S12, S13, S16, S23, S27) and the
//! bearer checks of `/mcp/get-session`, black-box over HTTP.

use std::collections::BTreeSet;

use crate::common::*;
use mcpauth_core::Clock;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

const OTHER_REDIRECT_URI: &str = "http://localhost:9999/other-callback";

/// A code waiting to be exchanged, and what was used to get it.
struct Pending {
    client_id: String,
    code: String,
    verifier: String,
    browser: Client,
}

/// Registers a public client (with the refresh grant) and authorizes `scope` for a fresh user.
async fn pending_code(app: &TestApp, scope: &str) -> Pending {
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let (verifier, challenge) = pkce();
    let code = app.code_for(&browser, &client_id, &challenge, scope).await;
    Pending {
        client_id,
        code,
        verifier,
        browser,
    }
}

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

/// Exchanges a code for a public client.
async fn exchange(app: &TestApp, client_id: &str, code: &str, verifier: &str) -> Response {
    app.token(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("client_id", client_id),
        ("code_verifier", verifier),
    ])
    .await
}

/// Exchanges a pending code; asserts success and returns the token response.
async fn redeem(app: &TestApp, pending: &Pending) -> Value {
    let response = exchange(app, &pending.client_id, &pending.code, &pending.verifier).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// A refresh for a public client, with extra parameters.
async fn refresh(
    app: &TestApp,
    client_id: &str,
    refresh_token: &str,
    extra: &[(&str, &str)],
) -> Response {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", client_id),
    ];
    form.extend_from_slice(extra);
    app.token(&form).await
}

async fn get_session(app: &TestApp, access_token: &str) -> Response {
    app.http
        .get(app.url("/api/auth/mcp/get-session"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
}

/// Asserts an OAuth JSON error (RFC 6749 §5.2) with this status and code; returns the
/// response headers.
async fn expect_error(
    response: Response,
    status: StatusCode,
    code: &str,
) -> reqwest::header::HeaderMap {
    let actual = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap();
    assert_eq!(actual, status, "status for {code}: {body}");
    let json: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON error: {body}"));
    assert_eq!(json["error"], code, "error code: {body}");
    if let Some(description) = json.get("error_description") {
        assert!(description.is_string(), "error_description is a string");
    }
    headers
}

fn scope_set(scope: &str) -> BTreeSet<String> {
    scope.split_whitespace().map(str::to_owned).collect()
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is a string in {value}"))
}

/// Registers a confidential client; returns its id and secret.
async fn register_confidential(app: &TestApp, method: &str) -> (String, String) {
    let client = app
        .register(json!({
            "client_name": "Confidential Client",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": method,
        }))
        .await;
    (
        str_of(&client, "client_id").to_owned(),
        str_of(&client, "client_secret").to_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// The code exchange response

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
    let app = spawn_app_with(|s| s.require_pkce_for_confidential = false).await;
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

// ---------------------------------------------------------------------------------------------
// Refresh rotation, reuse and scope

#[tokio::test]
async fn s12_retried_refresh_within_grace_gets_the_same_response() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let rt1 = str_of(&flow.tokens, "refresh_token");

    let first = refresh(&app, &flow.client_id, rt1, &[]).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(first.headers()[PRAGMA], "no-cache");
    let first_text = first.text().await.unwrap();
    let first_json: Value = serde_json::from_str(&first_text).unwrap();
    let rt2 = str_of(&first_json, "refresh_token");
    assert_ne!(rt2, rt1, "the refresh token rotates");
    assert_ne!(
        str_of(&first_json, "access_token"),
        str_of(&flow.tokens, "access_token")
    );

    app.clock.advance(10);
    let retry = refresh(&app, &flow.client_id, rt1, &[]).await;
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(retry.headers()[CACHE_CONTROL], "no-store");
    let retry_json: Value = retry.json().await.unwrap();
    assert_eq!(
        retry_json, first_json,
        "the retry gets the lost response again"
    );

    // The retry did not cost the client its grant.
    assert_eq!(
        app.session_status(str_of(&first_json, "access_token"))
            .await,
        StatusCode::OK
    );
    let next = refresh(&app, &flow.client_id, rt2, &[]).await;
    assert_eq!(next.status(), StatusCode::OK);
}

#[tokio::test]
async fn s12_refresh_reuse_after_grace_revokes_the_family() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let rt1 = str_of(&flow.tokens, "refresh_token");
    let first = refresh(&app, &flow.client_id, rt1, &[]).await;
    assert_eq!(first.status(), StatusCode::OK);
    let second: Value = first.json().await.unwrap();
    let rt2 = str_of(&second, "refresh_token");
    let at2 = str_of(&second, "access_token");
    assert_eq!(app.session_status(at2).await, StatusCode::OK);

    app.clock.advance(31);
    let reuse = refresh(&app, &flow.client_id, rt1, &[]).await;
    expect_error(reuse, StatusCode::BAD_REQUEST, "invalid_grant").await;

    assert_eq!(
        app.session_status(at2).await,
        StatusCode::UNAUTHORIZED,
        "the access token of the family is dead"
    );
    let with_rt2 = refresh(&app, &flow.client_id, rt2, &[]).await;
    expect_error(with_rt2, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn refresh_token_expires_after_its_lifetime() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    app.clock.advance(604_801);
    let response = refresh(
        &app,
        &flow.client_id,
        str_of(&flow.tokens, "refresh_token"),
        &[],
    )
    .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn refresh_family_has_an_absolute_lifetime() {
    let app = spawn_app_with(|s| s.refresh_family_lifetime = 1_000).await;
    let flow = app.full_flow("openid mcp:tools").await;
    app.clock.advance(500);
    let response = refresh(
        &app,
        &flow.client_id,
        str_of(&flow.tokens, "refresh_token"),
        &[],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let second: Value = response.json().await.unwrap();
    app.clock.advance(501);
    let response = refresh(&app, &flow.client_id, str_of(&second, "refresh_token"), &[]).await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn offline_access_policy_restricts_refresh_tokens() {
    let app = spawn_app_with(|s| s.refresh_token_policy = "offline_access".into()).await;
    let without = app.full_flow("openid mcp:tools").await;
    assert!(
        without.tokens.get("refresh_token").is_none(),
        "the refresh grant alone earns nothing under this policy: {}",
        without.tokens
    );
    let with = app.full_flow("openid mcp:tools offline_access").await;
    assert!(with.tokens["refresh_token"].is_string(), "{}", with.tokens);
}

#[tokio::test]
async fn s13_refresh_cannot_widen_scope() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let rt = str_of(&flow.tokens, "refresh_token");
    for wider in ["openid mcp:tools mcp:admin", "profile"] {
        let response = refresh(&app, &flow.client_id, rt, &[("scope", wider)]).await;
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_scope").await;
    }
    // A refused widening leaves the refresh token usable.
    let response = refresh(&app, &flow.client_id, rt, &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn s13_refresh_may_narrow_scope_and_keeps_the_grant() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let rt = str_of(&flow.tokens, "refresh_token");
    let narrowed = refresh(&app, &flow.client_id, rt, &[("scope", "mcp:tools")]).await;
    assert_eq!(narrowed.status(), StatusCode::OK);
    let narrowed: Value = narrowed.json().await.unwrap();
    assert_eq!(str_of(&narrowed, "scope"), "mcp:tools");
    let session = get_session(&app, str_of(&narrowed, "access_token")).await;
    assert_eq!(session.status(), StatusCode::OK);
    let session: Value = session.json().await.unwrap();
    assert_eq!(session["scopes"], json!(["mcp:tools"]));

    let full = refresh(
        &app,
        &flow.client_id,
        str_of(&narrowed, "refresh_token"),
        &[],
    )
    .await;
    assert_eq!(full.status(), StatusCode::OK);
    let full: Value = full.json().await.unwrap();
    assert_eq!(
        scope_set(str_of(&full, "scope")),
        scope_set("openid mcp:tools"),
        "the grant keeps its original scope"
    );
}

#[tokio::test]
async fn s13_refresh_for_another_resource_is_invalid_target() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let rt = str_of(&flow.tokens, "refresh_token");
    let response = refresh(
        &app,
        &flow.client_id,
        rt,
        &[("resource", "https://other.example/api/mcp")],
    )
    .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_target").await;
    let same = refresh(&app, &flow.client_id, rt, &[("resource", &app.resource())]).await;
    assert_eq!(same.status(), StatusCode::OK, "the same resource is fine");
}

#[tokio::test]
async fn refresh_token_of_another_client_is_invalid_grant() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let other = app.register_public(REDIRECT_URI).await;
    let response = refresh(&app, &other, str_of(&flow.tokens, "refresh_token"), &[]).await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_concurrent_refreshes_rotate_once() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let rt1 = str_of(&flow.tokens, "refresh_token").to_owned();
    let url = app.url("/api/auth/mcp/token");
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let http = app.http.clone();
        let url = url.clone();
        let client_id = flow.client_id.clone();
        let rt1 = rt1.clone();
        tasks.push(tokio::spawn(async move {
            let response = http
                .post(url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt1.as_str()),
                    ("client_id", client_id.as_str()),
                ])
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            (status, body)
        }));
    }
    let mut successes = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::OK => successes.push(body),
            StatusCode::BAD_REQUEST if body["error"] == "invalid_grant" => refused += 1,
            other => panic!("a concurrent refresh got {other}: {body}"),
        }
    }
    assert!(!successes.is_empty(), "at least one refresh succeeds");
    let distinct: BTreeSet<&str> = successes
        .iter()
        .map(|b| str_of(b, "refresh_token"))
        .collect();
    assert_eq!(
        distinct.len(),
        1,
        "exactly one new refresh token: {successes:?}"
    );
    for body in &successes {
        assert_eq!(body, &successes[0], "every success is the same response");
    }
    if refused == 0 {
        let rt2 = distinct.into_iter().next().unwrap();
        let next = refresh(&app, &flow.client_id, rt2, &[]).await;
        assert_eq!(next.status(), StatusCode::OK, "the winner's token works");
    }
}

// ---------------------------------------------------------------------------------------------
// Grant types

#[tokio::test]
async fn s16_only_code_and_refresh_grants() {
    let app = spawn_app().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    for grant_type in [
        "password",
        "client_credentials",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ] {
        let response = app
            .token(&[
                ("grant_type", grant_type),
                ("client_id", &client_id),
                ("username", "someone@example.com"),
                ("password", PASSWORD),
            ])
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    }
    let response = app
        .token(&[("client_id", &client_id), ("code", "abc")])
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

// ---------------------------------------------------------------------------------------------
// Client authentication

/// A code for a confidential client, and its verifier.
async fn confidential_code(app: &TestApp, client_id: &str) -> (String, String) {
    let browser = app.signed_in_browser().await;
    let (verifier, challenge) = pkce();
    let code = app
        .code_for(&browser, client_id, &challenge, "openid mcp:tools")
        .await;
    (code, verifier)
}

fn code_form<'a>(code: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier),
    ]
}

#[tokio::test]
async fn client_secret_basic_authenticates_with_basic() {
    let app = spawn_app().await;
    let (client_id, secret) = register_confidential(&app, "client_secret_basic").await;
    let (code, verifier) = confidential_code(&app, &client_id).await;
    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&code_form(&code, &verifier))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");

    // Its refresh token needs the client's authentication too.
    let rt = str_of(&tokens, "refresh_token");
    let unauthenticated = refresh(&app, &client_id, rt, &[]).await;
    expect_error(unauthenticated, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let refreshed = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_basic_secret_is_invalid_client_with_basic_challenge() {
    let app = spawn_app().await;
    let (client_id, _secret) = register_confidential(&app, "client_secret_basic").await;
    let (code, verifier) = confidential_code(&app, &client_id).await;
    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth(&client_id, Some("not-the-secret"))
        .form(&code_form(&code, &verifier))
        .send()
        .await
        .unwrap();
    let headers = expect_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let challenge = headers[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.to_ascii_lowercase().starts_with("basic"),
        "challenge: {challenge}"
    );
}

#[tokio::test]
async fn malformed_basic_header_is_401() {
    let app = spawn_app().await;
    let (client_id, _secret) = register_confidential(&app, "client_secret_basic").await;
    let (code, verifier) = confidential_code(&app, &client_id).await;
    use base64::Engine;
    let no_colon = base64::engine::general_purpose::STANDARD.encode(client_id.as_bytes());
    for header in [
        "Basic !!!not-base64!!!".to_owned(),
        format!("Basic {no_colon}"),
        "Basic".to_owned(),
    ] {
        let response = app
            .http
            .post(app.url("/api/auth/mcp/token"))
            .header("authorization", &header)
            .form(&code_form(&code, &verifier))
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
}

#[tokio::test]
async fn secret_in_body_for_a_basic_client_is_invalid_client() {
    let app = spawn_app().await;
    let (client_id, secret) = register_confidential(&app, "client_secret_basic").await;
    let (code, verifier) = confidential_code(&app, &client_id).await;
    let mut form = code_form(&code, &verifier);
    form.push(("client_id", &client_id));
    form.push(("client_secret", &secret));
    let response = app.token(&form).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn client_secret_post_authenticates_with_body_secret() {
    let app = spawn_app().await;
    let (client_id, secret) = register_confidential(&app, "client_secret_post").await;
    let (code, verifier) = confidential_code(&app, &client_id).await;

    let mut wrong = code_form(&code, &verifier);
    wrong.push(("client_id", &client_id));
    wrong.push(("client_secret", "not-the-secret"));
    expect_error(
        app.token(&wrong).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;

    let mut form = code_form(&code, &verifier);
    form.push(("client_id", &client_id));
    form.push(("client_secret", &secret));
    let response = app.token(&form).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn public_client_presenting_a_secret_is_invalid_client() {
    let app = spawn_app().await;
    let pending = pending_code(&app, "mcp:tools").await;
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &pending.code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &pending.client_id),
            ("client_secret", "made-up"),
            ("code_verifier", &pending.verifier),
        ])
        .await;
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // The code survived the failed authentication.
    let tokens = redeem(&app, &pending).await;
    assert!(tokens.get("access_token").is_some());
}

#[tokio::test]
async fn unknown_client_is_invalid_client() {
    let app = spawn_app().await;
    let pending = pending_code(&app, "mcp:tools").await;
    let response = exchange(&app, "no-such-client", &pending.code, &pending.verifier).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;

    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth("no-such-client", Some("secret"))
        .form(&code_form(&pending.code, &pending.verifier))
        .send()
        .await
        .unwrap();
    let headers = expect_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert!(headers.contains_key(WWW_AUTHENTICATE));

    let missing = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &pending.code),
            ("code_verifier", &pending.verifier),
        ])
        .await;
    expect_error(missing, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn failed_client_authentication_does_not_consume_the_code() {
    let app = spawn_app().await;
    let (client_id, secret) = register_confidential(&app, "client_secret_basic").await;
    let (code, verifier) = confidential_code(&app, &client_id).await;

    let wrong = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth(&client_id, Some("not-the-secret"))
        .form(&code_form(&code, &verifier))
        .send()
        .await
        .unwrap();
    expect_error(wrong, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let mut in_body = code_form(&code, &verifier);
    in_body.push(("client_id", &client_id));
    expect_error(
        app.token(&in_body).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;

    let right = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&code_form(&code, &verifier))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK, "the code is still good");
}

// ---------------------------------------------------------------------------------------------
// Bad input

/// Asserts a 4xx with a JSON `error` string; never a 5xx.
async fn expect_client_error(response: Response, what: &str) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.text().await.unwrap();
    assert!(status.is_client_error(), "{what}: {status} {body}");
    let json: Value =
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: a JSON error, got {body}"));
    assert!(json["error"].is_string(), "{what}: error field in {body}");
    (status, json)
}

#[tokio::test]
async fn wrong_content_type_is_invalid_request() {
    let app = spawn_app().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .header(CONTENT_TYPE, "text/plain")
        .body(format!(
            "grant_type=authorization_code&code=abc&client_id={client_id}"
        ))
        .send()
        .await
        .unwrap();
    let (status, json) = expect_client_error(response, "text/plain").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"], "invalid_request");
}

#[tokio::test]
async fn invalid_json_is_invalid_request() {
    let app = spawn_app().await;
    for body in [
        "{not json",
        "[1,2]",
        "\"a string\"",
        r#"{"grant_type":{"x":1}}"#,
    ] {
        let response = app
            .http
            .post(app.url("/api/auth/mcp/token"))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, json) = expect_client_error(response, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(json["error"], "invalid_request", "{body}");
    }
}

#[tokio::test]
async fn repeated_parameter_is_invalid_request() {
    let app = spawn_app().await;
    let pending = pending_code(&app, "mcp:tools").await;
    let body = format!(
        "grant_type=authorization_code&code={code}&code=other&client_id={client}&code_verifier={verifier}",
        code = pending.code,
        client = pending.client_id,
        verifier = pending.verifier,
    );
    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, json) = expect_client_error(response, "repeated code").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"], "invalid_request");
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = spawn_app().await;
    let padding = "a".repeat(100 * 1024);
    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "abc"),
            ("padding", padding.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let (status, _) = expect_client_error(response, "100 KB body").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn missing_code_is_invalid_request() {
    let app = spawn_app().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let (verifier, _) = pkce();
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
        ])
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    let response = app
        .token(&[("grant_type", "refresh_token"), ("client_id", &client_id)])
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn malformed_token_requests_never_get_a_5xx() {
    let app = spawn_app().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let url = app.url("/api/auth/mcp/token");
    let cases: Vec<(&str, Option<&str>, Vec<u8>)> = vec![
        (
            "empty form",
            Some("application/x-www-form-urlencoded"),
            vec![],
        ),
        (
            "no content type",
            None,
            b"grant_type=refresh_token".to_vec(),
        ),
        (
            "invalid UTF-8",
            Some("application/x-www-form-urlencoded"),
            b"grant_type=\xff\xfe".to_vec(),
        ),
        (
            "unknown code",
            Some("application/x-www-form-urlencoded"),
            format!(
                "grant_type=authorization_code&code=nope&client_id={client_id}&code_verifier=x"
            )
            .into_bytes(),
        ),
        (
            "unknown refresh token",
            Some("application/x-www-form-urlencoded"),
            format!("grant_type=refresh_token&refresh_token=nope&client_id={client_id}")
                .into_bytes(),
        ),
        (
            "bad scope characters",
            Some("application/x-www-form-urlencoded"),
            format!(
                "grant_type=refresh_token&refresh_token=nope&client_id={client_id}&scope=%22%5C"
            )
            .into_bytes(),
        ),
        ("json null", Some("application/json"), b"null".to_vec()),
        (
            "json empty object",
            Some("application/json"),
            b"{}".to_vec(),
        ),
        (
            "json resource array",
            Some("application/json"),
            br#"{"grant_type":"refresh_token","resource":[1]}"#.to_vec(),
        ),
    ];
    for (what, content_type, body) in cases {
        let mut request = app.http.post(&url).body(body);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        expect_client_error(request.send().await.unwrap(), what).await;
    }
}

// ---------------------------------------------------------------------------------------------
// get-session and the bearer challenge

#[tokio::test]
async fn s27_get_session_shape_never_has_a_refresh_token() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let access = str_of(&flow.tokens, "access_token");
    let refresh_token = str_of(&flow.tokens, "refresh_token");
    let response = get_session(&app, access).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    let text = response.text().await.unwrap();
    assert!(!text.contains(refresh_token), "no refresh token: {text}");
    assert!(!text.contains(access), "no access token: {text}");
    let session: Value = serde_json::from_str(&text).unwrap();
    let keys: BTreeSet<&str> = session
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "tokenId",
            "userId",
            "clientId",
            "scopes",
            "audience",
            "expiresAt"
        ])
    );
    assert!(!str_of(&session, "tokenId").is_empty());
    assert!(!str_of(&session, "userId").is_empty());
    assert_eq!(session["clientId"], flow.client_id.as_str());
    let scopes: BTreeSet<String> = session["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(scopes, scope_set("openid mcp:tools"));
    assert_eq!(session["audience"], app.resource().as_str());
    assert_eq!(session["expiresAt"], app.clock.now() + 3600);
}

#[tokio::test]
async fn expired_access_token_is_401_invalid_token() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let access = str_of(&flow.tokens, "access_token");
    app.clock.advance(3599);
    assert_eq!(app.session_status(access).await, StatusCode::OK);
    app.clock.advance(2);
    let response = get_session(&app, access).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // The refresh token outlives the access token: the client refreshes instead of re-authorizing.
    let refreshed = refresh(
        &app,
        &flow.client_id,
        str_of(&flow.tokens, "refresh_token"),
        &[],
    )
    .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.unwrap();
    assert_eq!(
        app.session_status(str_of(&refreshed, "access_token")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_access_token_is_401_invalid_token() {
    let app = spawn_app().await;
    let response = get_session(&app, "bm90LWEtdG9rZW4").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

#[tokio::test]
async fn m1_missing_token_gets_the_discovery_challenge() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/api/auth/mcp/get-session"))
        .header("origin", "http://inspector.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned();
    let prm = app.url("/.well-known/oauth-protected-resource/api/mcp");
    assert!(
        challenge.starts_with("Bearer "),
        "one Bearer challenge: {challenge}"
    );
    assert!(
        challenge.contains(&format!("resource_metadata=\"{prm}\"")),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"mcp:tools\""), "{challenge}");
    assert!(
        !challenge.contains("error="),
        "no error without a token: {challenge}"
    );
    let exposed = response
        .headers()
        .get("access-control-expose-headers")
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .unwrap_or_default();
    assert!(
        exposed.contains("www-authenticate"),
        "readable cross-origin: {exposed:?}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["error"]["code"], -32000);
    assert!(body["error"]["message"].is_string());
    assert!(body["id"].is_null());
    assert!(body.as_object().unwrap().contains_key("id"));
}
