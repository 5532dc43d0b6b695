//! Validation of the authorization request (SECURITY S1, S2, S5): the redirect URI matches
//! exactly, the server validates before it redirects (an error page when the client or its
//! redirect URI is unknown, an error redirect otherwise, even before login), PKCE S256 is
//! required, and unknown response types, scopes and resources are reported to the client.

use super::*;
use reqwest::header::CONTENT_TYPE;

/// `GET /authorize?<raw query>` exactly as written.
async fn authorize_raw(app: &TestApp, browser: &Client, query: &str) -> Response {
    browser
        .get(format!("{}?{query}", app.url(AUTHORIZE)))
        .send()
        .await
        .unwrap()
}

/// An error shown by the server itself: 400, HTML, and no redirect anywhere (S2).
async fn assert_error_page(response: Response, what: &str) {
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}: status");
    assert!(
        response.headers().get("location").is_none(),
        "{what}: no Location, got {:?}",
        response.headers().get("location")
    );
    let content_type = response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/html"),
        "{what}: {content_type}"
    );
    let body = response.text().await.unwrap();
    assert!(body.contains("<html") || body.contains("<!DOCTYPE") || body.contains("<!doctype"));
}

// ---------------------------------------------------------------------------------------------
// S1, S2: validate first, redirect second.

#[tokio::test]
async fn s01_redirect_uri_must_match_exactly() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public("https://a.test/cb").await;

    let exact = authorize(&app, &browser, &params_for(&client_id, "https://a.test/cb")).await;
    assert_eq!(
        exact.status(),
        StatusCode::FOUND,
        "the registered URI itself is accepted"
    );

    for bad in [
        "https://a.test/cb/x",
        "https://a.test/cb?x=1",
        "https://A.test/cb",
        "https://a.test/cb/",
        "https://u@a.test/cb",
        "https://a.test/cb#x",
        "https://a.test:443/cb",
        "https://a.test/%63b",
        "http://a.test/cb",
    ] {
        let response = authorize(&app, &browser, &params_for(&client_id, bad)).await;
        assert_error_page(response, bad).await;
    }
}

#[tokio::test]
async fn s01_loopback_redirect_uri_may_use_any_port() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public("http://127.0.0.1/cb").await;

    let requested = "http://127.0.0.1:5555/cb";
    let response = authorize(&app, &browser, &params_for(&client_id, requested)).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let consent = location(&response);
    assert!(consent.starts_with("/consent?"), "{consent}");
    let target = app.approve(&browser, &consent, true).await;
    assert!(
        target.starts_with(&format!("{requested}?")),
        "the redirect carries the requested port: {target}"
    );
    assert!(query_of(&target).contains_key("code"));

    for bad in [
        "http://127.0.0.1:5555/cb2",
        "http://127.0.0.1/cb2",
        "http://localhost:5555/cb",
        "http://127.0.0.1:5555@evil.test/cb",
    ] {
        let response = authorize(&app, &browser, &params_for(&client_id, bad)).await;
        assert_error_page(response, bad).await;
    }
}

#[tokio::test]
async fn s02_unknown_client_or_redirect_uri_shows_an_error_page() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;

    let unknown = authorize(&app, &browser, &params_for("no-such-client", REDIRECT_URI)).await;
    assert_error_page(unknown, "unknown client_id").await;

    let unregistered = authorize(
        &app,
        &browser,
        &params_for(&client_id, "https://evil.test/callback"),
    )
    .await;
    assert_error_page(unregistered, "unregistered redirect_uri").await;

    let missing = authorize(
        &app,
        &browser,
        &with(params_for(&client_id, REDIRECT_URI), "client_id", None),
    )
    .await;
    assert_error_page(missing, "missing client_id").await;

    // The same holds without a session: no login redirect for an unknown client either.
    let anonymous = authorize(&app, &client(), &params_for("no-such-client", REDIRECT_URI)).await;
    assert_error_page(anonymous, "unknown client_id, signed out").await;
}

#[tokio::test]
async fn repeated_parameters_get_an_error_page() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let mut params = params_for(&client_id, REDIRECT_URI);
    params.push(("state".into(), "other".into()));
    let response = authorize(&app, &browser, &params).await;
    assert_error_page(response, "repeated state").await;

    let mut params = params_for(&client_id, REDIRECT_URI);
    params.push(("client_id".into(), client_id.clone()));
    let response = authorize(&app, &browser, &params).await;
    assert_error_page(response, "repeated client_id").await;
}

#[tokio::test]
async fn errors_before_login_go_to_the_client_not_the_login_page() {
    let app = spawn_app().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let response = authorize(
        &app,
        &browser(),
        &with(
            params_for(&client_id, REDIRECT_URI),
            "code_challenge_method",
            Some("plain"),
        ),
    )
    .await;
    let query = error_redirect(&response, REDIRECT_URI);
    assert_eq!(query["error"], "invalid_request");
}

#[tokio::test]
async fn raw_query_with_missing_client_id_value_is_an_error_page() {
    let app = spawn_app().await;
    let response = authorize_raw(
        &app,
        &browser(),
        "response_type=code&client_id=&redirect_uri=http%3A%2F%2Flocalhost%3A9999%2Fcallback",
    )
    .await;
    assert_error_page(response, "empty client_id").await;
}

// ---------------------------------------------------------------------------------------------
// S5: PKCE.

#[tokio::test]
async fn s05_pkce_s256_is_required() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let base = params_for(&client_id, REDIRECT_URI);

    let cases = [
        (
            "missing code_challenge",
            with(base.clone(), "code_challenge", None),
        ),
        (
            "plain",
            with(base.clone(), "code_challenge_method", Some("plain")),
        ),
        (
            "missing method",
            with(base.clone(), "code_challenge_method", None),
        ),
        (
            "plain with a verifier-like challenge",
            with(
                with(base.clone(), "code_challenge_method", Some("plain")),
                "code_challenge",
                Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            ),
        ),
    ];
    for (what, params) in cases {
        let response = authorize(&app, &browser, &params).await;
        let query = error_redirect(&response, REDIRECT_URI);
        assert_eq!(query["error"], "invalid_request", "{what}");
        assert_eq!(query["state"], "st", "{what}");
    }
}

// ---------------------------------------------------------------------------------------------
// Other request errors.

#[tokio::test]
async fn unsupported_response_type_is_reported_to_the_client() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    for response_type in ["token", "code token", "id_token"] {
        let response = authorize(
            &app,
            &browser,
            &with(
                params_for(&client_id, REDIRECT_URI),
                "response_type",
                Some(response_type),
            ),
        )
        .await;
        let query = error_redirect(&response, REDIRECT_URI);
        assert_eq!(
            query["error"], "unsupported_response_type",
            "{response_type}"
        );
        assert!(!query["error_description"].is_empty());
    }
}

#[tokio::test]
async fn unknown_scopes_are_dropped_malformed_ones_refused() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let response = authorize(
        &app,
        &browser,
        &with(
            params_for(&client_id, REDIRECT_URI),
            "scope",
            Some("openid mcp:everything"),
        ),
    )
    .await;
    let consent = location(&response);
    assert!(consent.starts_with("/consent"), "{consent}");
    assert_eq!(
        query_of(&consent)["scope"],
        "openid",
        "only known scopes are asked"
    );

    let response = authorize(
        &app,
        &browser,
        &with(params_for(&client_id, REDIRECT_URI), "scope", Some("a\\b")),
    )
    .await;
    let query = error_redirect(&response, REDIRECT_URI);
    assert_eq!(query["error"], "invalid_scope");
    assert_eq!(query["state"], "st");
}

#[tokio::test]
async fn empty_scope_grants_the_default_scope() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let (verifier, challenge) = pkce();
    let params = with(
        with(params_for(&client_id, REDIRECT_URI), "scope", Some("")),
        "code_challenge",
        Some(challenge.as_str()),
    );
    let response = authorize(&app, &browser, &params).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let consent = location(&response);
    assert_eq!(query_of(&consent)["scope"], "openid", "{consent}");
    let target = app.approve(&browser, &consent, true).await;
    let code = query_of(&target)["code"].clone();
    let tokens = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(tokens.status(), StatusCode::OK);
    let tokens: Value = tokens.json().await.unwrap();
    assert_eq!(tokens["scope"], "openid");
}

#[tokio::test]
async fn unknown_resource_is_invalid_target() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;

    let ours = authorize(
        &app,
        &browser,
        &with(
            params_for(&client_id, REDIRECT_URI),
            "resource",
            Some(app.resource().as_str()),
        ),
    )
    .await;
    assert!(
        location(&ours).starts_with("/consent?"),
        "our own resource is fine"
    );

    for other in [
        "https://evil.test/api/mcp".to_owned(),
        format!("{}/", app.resource()),
    ] {
        let response = authorize(
            &app,
            &browser,
            &with(
                params_for(&client_id, REDIRECT_URI),
                "resource",
                Some(other.as_str()),
            ),
        )
        .await;
        let query = error_redirect(&response, REDIRECT_URI);
        assert_eq!(query["error"], "invalid_target", "{other}");
    }
}
