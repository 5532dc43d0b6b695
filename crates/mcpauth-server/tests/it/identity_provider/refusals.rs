//! SECURITY S28 against the test OP: an id_token from another issuer or for another audience,
//! with a wrong nonce, expired, or signed by a key the provider does not publish is refused;
//! `state` is single-use, bound to the browser that started the sign-in, and unknown states are
//! refused; the provider's `access_denied` ends on an error page. A refusal never leaves a
//! session or a user behind.

use reqwest::StatusCode;
use serde_json::json;

use super::test_op::{Tamper, TestOp};
use super::*;

async fn app_with_op() -> (TestApp, TestOp) {
    let op = TestOp::start().await;
    let issuer = op.issuer.clone();
    let app = spawn_app_with(|s| s.identity_providers = vec![oidc_provider("corp", &issuer)]).await;
    (app, op)
}

fn ada(op: &TestOp) {
    op.next_identity(
        "ada-1",
        json!({ "email": "ada@example.com", "email_verified": true, "name": "Ada" }),
    );
}

async fn user_count(app: &TestApp) -> i64 {
    sqlx::query_scalar(r#"SELECT COUNT(*) FROM "user""#)
        .fetch_one(&app.db().await)
        .await
        .unwrap()
}

/// A sign-in whose id_token is spoiled by `tamper`: refused with a page, nobody signed in,
/// nobody created.
async fn refused_with(tamper: Tamper) {
    let (app, op) = app_with_op().await;
    ada(&op);
    op.tamper(tamper);
    let browser = browser();
    let trip = sign_in_with(&app, &browser, "corp").await;
    assert_eq!(trip.status(), StatusCode::BAD_REQUEST);
    let page = trip.response.text().await.unwrap();
    assert!(page.contains("did not pass"), "{page}");
    assert_eq!(signed_in_as(&app, &browser).await, None);
    assert_eq!(user_count(&app).await, 0);
    assert!(
        audit_kinds(&app)
            .await
            .contains(&"upstream_sign_in.refused".to_owned())
    );
}

#[tokio::test]
async fn s28_a_good_id_token_signs_in_with_state_nonce_and_pkce() {
    let (app, op) = app_with_op().await;
    ada(&op);
    let browser = browser();
    let trip = sign_in_with(&app, &browser, "corp").await;
    assert_eq!(trip.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&trip.response), "/");
    assert_eq!(
        signed_in_as(&app, &browser).await.as_deref(),
        Some("ada@example.com")
    );
    // What went to the provider: state, nonce, an S256 challenge, our callback URL.
    let sent = op.last_authorize();
    assert_eq!(sent["code_challenge_method"], "S256");
    assert_eq!(sent["code_challenge"].len(), 43);
    assert!(sent["state"].len() >= 43 && sent["nonce"].len() >= 43);
    assert_ne!(sent["state"], sent["nonce"]);
    assert_eq!(
        sent["redirect_uri"],
        app.url("/api/auth/callback/corp"),
        "the callback URL to register"
    );
    assert!(sent["scope"].split(' ').any(|s| s == "openid"));
    assert!(
        audit_kinds(&app)
            .await
            .contains(&"upstream_sign_in".to_owned())
    );
}

#[tokio::test]
async fn s28_id_token_from_another_issuer_is_refused() {
    refused_with(Tamper {
        issuer: Some("https://evil.test".into()),
        ..Tamper::default()
    })
    .await;
}

#[tokio::test]
async fn s28_id_token_for_another_audience_is_refused() {
    refused_with(Tamper {
        audience: Some("some-other-client".into()),
        ..Tamper::default()
    })
    .await;
}

#[tokio::test]
async fn s28_wrong_nonce_is_refused() {
    refused_with(Tamper {
        nonce: Some("a-nonce-of-another-sign-in".into()),
        ..Tamper::default()
    })
    .await;
}

#[tokio::test]
async fn s28_expired_id_token_is_refused() {
    refused_with(Tamper {
        expires_in: Some(-600),
        ..Tamper::default()
    })
    .await;
}

#[tokio::test]
async fn s28_id_token_signed_by_an_unpublished_key_is_refused() {
    refused_with(Tamper {
        foreign_key: true,
        ..Tamper::default()
    })
    .await;
}

#[tokio::test]
async fn s28_replayed_state_is_refused() {
    let (app, op) = app_with_op().await;
    ada(&op);
    let browser = browser();
    let trip = sign_in_with(&app, &browser, "corp").await;
    assert_eq!(trip.status(), StatusCode::SEE_OTHER);
    // The same callback again, from the very browser that started it (so the binding cookie
    // matches): the state was spent.
    let again = browser.get(&trip.callback).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(again.text().await.unwrap().contains("already completed"));
}

#[tokio::test]
async fn s28_state_from_another_browser_is_refused() {
    let (app, op) = app_with_op().await;
    ada(&op);
    // The victim's browser starts; the attacker's browser delivers the callback (login CSRF
    // the other way round: a callback with someone else's code and state).
    let starter = browser();
    let authorization_url = press_provider_button(&app, &starter, "/sign-in", "corp").await;
    let response = starter.get(&authorization_url).send().await.unwrap();
    let callback = location(&response);
    assert!(callback.starts_with(&app.url("/api/auth/callback/corp")));
    let other = browser();
    let answer = other.get(&callback).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    assert!(answer.text().await.unwrap().contains("another browser"));
    assert_eq!(signed_in_as(&app, &other).await, None);
    // And the state is spent for the starter too.
    let late = starter.get(&callback).send().await.unwrap();
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
    assert_eq!(signed_in_as(&app, &starter).await, None);
}

#[tokio::test]
async fn s28_unknown_or_missing_state_is_refused() {
    let (app, _op) = app_with_op().await;
    let browser = browser();
    for query in ["?code=x&state=never-issued", "?code=x", ""] {
        let response = browser
            .get(app.url(&format!("/api/auth/callback/corp{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let headers = response.headers().clone();
        assert_eq!(headers["x-frame-options"], "DENY", "an ordinary page");
    }
    let unknown = browser
        .get(app.url("/api/auth/callback/nope?code=x&state=y"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert_eq!(signed_in_as(&app, &browser).await, None);
}

#[tokio::test]
async fn s28_access_denied_at_the_provider_ends_on_an_error_page() {
    let (app, op) = app_with_op().await;
    op.deny("access_denied");
    let browser = browser();
    let trip = sign_in_with(&app, &browser, "corp").await;
    assert_eq!(trip.status(), StatusCode::FORBIDDEN);
    let page = trip.response.text().await.unwrap();
    assert!(page.contains("Sign-in cancelled"), "{page}");
    assert_eq!(signed_in_as(&app, &browser).await, None);

    // Any other error from the provider: 400, its code shown, nothing else.
    op.deny("temporarily_unavailable");
    let trip = sign_in_with(&app, &browser, "corp").await;
    assert_eq!(trip.status(), StatusCode::BAD_REQUEST);
    assert!(
        trip.response
            .text()
            .await
            .unwrap()
            .contains("temporarily_unavailable")
    );
}

#[tokio::test]
async fn s28_a_provider_that_is_down_gives_a_clear_page() {
    // A provider nobody listens at: the button leads to a 502 page, not a hang or a panic.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    drop(listener);
    let app = spawn_app_with(|s| s.identity_providers = vec![oidc_provider("corp", &issuer)]).await;
    let browser = browser();
    let (_, _, html) = get_page(&browser, &app.url("/sign-in")).await;
    let response = browser
        .post(app.url("/api/auth/sign-in/social"))
        .form(&[
            (
                "csrf_token",
                input_value(&html, "csrf_token").unwrap().as_str(),
            ),
            ("provider", "corp"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(response.text().await.unwrap().contains("not answering"));
}

#[tokio::test]
async fn s25_the_start_is_a_csrf_protected_form() {
    let (app, _op) = app_with_op().await;
    let browser = browser();
    let _ = get_page(&browser, &app.url("/sign-in")).await;
    let response = browser
        .post(app.url("/api/auth/sign-in/social"))
        .form(&[("provider", "corp")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // The JSON form (Better Auth's shape) refuses other sites.
    let response = browser
        .post(app.url("/api/auth/sign-in/social"))
        .header("origin", "https://evil.test")
        .json(&json!({ "provider": "corp" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = browser
        .post(app.url("/api/auth/sign-in/social"))
        .header("origin", &app.base)
        .json(&json!({ "provider": "corp", "callbackURL": "/account" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["redirect"], true);
    assert!(
        body["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/authorize?", _op.issuer))
    );
}

/// The callback counts against `sign_in_per_ip` like the start: past the limit it answers 429
/// with `Retry-After` and signs nobody in, before taking the state — so the same answer from
/// the provider still works once the window has passed.
#[tokio::test]
async fn s26_s28_the_callback_is_rate_limited_like_the_start() {
    let op = TestOp::start().await;
    let issuer = op.issuer.clone();
    let app = spawn_app_with(|s| {
        s.identity_providers = vec![oidc_provider("corp", &issuer)];
        s.rate_limits.enabled = true;
        s.rate_limits.limits.sign_in_per_ip = 4;
    })
    .await;
    ada(&op);
    let browser = browser();
    // The start: one request of the four.
    let mut url = press_provider_button(&app, &browser, "/sign-in", "corp").await;
    while !url.starts_with(&app.base) {
        let response = browser.get(&url).send().await.unwrap();
        assert!(response.status().is_redirection(), "{url}");
        url = location(&response);
    }
    // Three callbacks with a state nobody issued use up the rest.
    for _ in 0..3 {
        let response = browser
            .get(app.url("/api/auth/callback/corp?code=x&state=never-issued"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    let limited = browser.get(&url).send().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    assert!(limited.text().await.unwrap().contains("Too many"));
    assert_eq!(signed_in_as(&app, &browser).await, None);

    app.clock.advance(61);
    let later = browser.get(&url).send().await.unwrap();
    assert_eq!(
        later.status(),
        StatusCode::SEE_OTHER,
        "the state was not spent"
    );
    assert_eq!(
        signed_in_as(&app, &browser).await.as_deref(),
        Some("ada@example.com")
    );
}
