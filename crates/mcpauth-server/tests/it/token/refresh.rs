//! The refresh grant (SPEC §5.6; SECURITY S12, S13): rotation, a retried refresh within the
//! grace period, reuse after it under each `refresh_reuse_policy` (both sides of every
//! boundary), lifetimes, and scope and resource on refresh.

use super::*;
use mcpauth::RefreshReusePolicy;
use reqwest::header::{CACHE_CONTROL, PRAGMA};

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

/// Refreshes with `token`; asserts success and returns the response.
async fn refreshed(app: &TestApp, client_id: &str, token: &str) -> Value {
    let response = refresh(app, client_id, token, &[]).await;
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "refresh works: {body}");
    serde_json::from_str(&body).unwrap()
}

/// A grant refreshed twice (RT1 → RT2 → RT3), at the manual clock's times 0 and 10.
struct Chain {
    client_id: String,
    rt: [String; 3],
    at: [String; 3],
}

async fn chain(app: &TestApp) -> Chain {
    let flow = app.full_flow("openid mcp:tools").await;
    let second = refreshed(app, &flow.client_id, str_of(&flow.tokens, "refresh_token")).await;
    app.clock.advance(10);
    let third = refreshed(app, &flow.client_id, str_of(&second, "refresh_token")).await;
    let owned = |v: &Value, k: &str| str_of(v, k).to_owned();
    Chain {
        rt: [
            owned(&flow.tokens, "refresh_token"),
            owned(&second, "refresh_token"),
            owned(&third, "refresh_token"),
        ],
        at: [
            owned(&flow.tokens, "access_token"),
            owned(&second, "access_token"),
            owned(&third, "access_token"),
        ],
        client_id: flow.client_id,
    }
}

/// Every kind in the audit log, oldest first.
async fn audit_kinds(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(r#"SELECT kind FROM "auditLog" ORDER BY id"#)
        .fetch_all(&app.db().await)
        .await
        .unwrap()
}

/// Asserts that the whole family is dead: every access token, and the head refresh token.
async fn assert_family_dead(app: &TestApp, chain: &Chain, also: &[&str]) {
    for at in chain
        .at
        .iter()
        .map(String::as_str)
        .chain(also.iter().copied())
    {
        assert_eq!(app.session_status(at).await, StatusCode::UNAUTHORIZED);
    }
    let head = refresh(app, &chain.client_id, &chain.rt[2], &[]).await;
    expect_error(head, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn s12_previous_token_inside_the_window_gets_tokens_of_the_same_family() {
    let app = spawn_app().await;
    let chain = chain(&app).await;
    // Past the 30 s grace, inside the 600 s window (counted from RT2's rotation, at 10).
    app.clock.advance(60);
    let tolerated = refreshed(&app, &chain.client_id, &chain.rt[1]).await;
    let sibling = str_of(&tolerated, "refresh_token");
    assert!(![&chain.rt[0], &chain.rt[1], &chain.rt[2]].contains(&&sibling.to_owned()));
    assert_eq!(tolerated["scope"], "openid mcp:tools");
    assert!(
        audit_kinds(&app)
            .await
            .contains(&"refresh.reuse_tolerated".to_owned())
    );

    // The family is alive: the head and its access token still work, and so do the new ones.
    assert_eq!(app.session_status(&chain.at[2]).await, StatusCode::OK);
    assert_eq!(
        app.session_status(str_of(&tolerated, "access_token")).await,
        StatusCode::OK
    );
    let from_sibling = refreshed(&app, &chain.client_id, sibling).await;
    // The sibling advanced the grant: the old head is now the previous token, tolerated too.
    app.clock.advance(45);
    refreshed(&app, &chain.client_id, &chain.rt[2]).await;
    assert_eq!(
        app.session_status(str_of(&from_sibling, "access_token"))
            .await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn s12_token_two_back_revokes_the_family() {
    let app = spawn_app().await;
    let chain = chain(&app).await;
    app.clock.advance(60);
    let reuse = refresh(&app, &chain.client_id, &chain.rt[0], &[]).await;
    expect_error(reuse, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_family_dead(&app, &chain, &[]).await;
    assert!(
        audit_kinds(&app)
            .await
            .contains(&"refresh.reuse_detected".to_owned())
    );
    // The previous token is dead with the family.
    let previous = refresh(&app, &chain.client_id, &chain.rt[1], &[]).await;
    expect_error(previous, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn s12_previous_token_after_the_window_revokes_the_family() {
    let app = spawn_app_with(|s| s.auth.refresh_reuse_window = 300).await;
    let chain = chain(&app).await;
    // RT2 was rotated at 10: the window ends at 310 inclusive.
    app.clock.advance(300);
    let last_second = refreshed(&app, &chain.client_id, &chain.rt[1]).await;
    let sibling_at = str_of(&last_second, "access_token").to_owned();
    // A tolerated reuse does not extend the window.
    app.clock.advance(1);
    let late = refresh(&app, &chain.client_id, &chain.rt[1], &[]).await;
    expect_error(late, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_family_dead(&app, &chain, &[&sibling_at]).await;
    let sibling = refresh(
        &app,
        &chain.client_id,
        str_of(&last_second, "refresh_token"),
        &[],
    )
    .await;
    expect_error(sibling, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn s12_strict_policy_revokes_on_reuse_after_the_grace() {
    let app = spawn_app_with(|s| s.auth.refresh_reuse_policy = RefreshReusePolicy::Strict).await;
    let chain = chain(&app).await;
    // RT2 was rotated at 10: at 40 (30 s, inclusive) a retry gets the same answer.
    app.clock.advance(30);
    let retry = refreshed(&app, &chain.client_id, &chain.rt[1]).await;
    assert_eq!(str_of(&retry, "refresh_token"), chain.rt[2]);
    assert_eq!(str_of(&retry, "access_token"), chain.at[2]);
    app.clock.advance(1);
    let reuse = refresh(&app, &chain.client_id, &chain.rt[1], &[]).await;
    expect_error(reuse, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_family_dead(&app, &chain, &[]).await;
    assert!(
        !audit_kinds(&app)
            .await
            .contains(&"refresh.reuse_tolerated".to_owned())
    );
}

#[tokio::test]
async fn s12_a_trusted_client_may_be_strict_under_a_tolerant_server() {
    let app = spawn_app_with(|s| {
        s.auth.trusted_clients = vec![mcpauth::TrustedClient {
            client_id: "strict-app".into(),
            client_secret: None,
            token_endpoint_auth_method: Some("none".into()),
            name: "Strict App".into(),
            redirect_uris: vec![REDIRECT_URI.into()],
            logo_uri: None,
            skip_consent: true,
            refresh_reuse_policy: Some(RefreshReusePolicy::Strict),
            ..Default::default()
        }]
    })
    .await;
    let browser = app.signed_in_browser().await;
    let (verifier, challenge) = pkce();
    let code = app
        .code_for(&browser, "strict-app", &challenge, "openid mcp:tools")
        .await;
    let tokens: Value = exchange(&app, "strict-app", &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let rt1 = str_of(&tokens, "refresh_token");
    let second = refreshed(&app, "strict-app", rt1).await;
    app.clock.advance(31);
    let reuse = refresh(&app, "strict-app", rt1, &[]).await;
    expect_error(reuse, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(
        app.session_status(str_of(&second, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
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
    let app = spawn_app_with(|s| s.auth.refresh_family_lifetime = 1_000).await;
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
    let app = spawn_app_with(|s| {
        s.auth.refresh_token_policy = mcpauth::RefreshTokenPolicy::OfflineAccess
    })
    .await;
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
