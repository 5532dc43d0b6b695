//! The authorization endpoint over HTTP (SPEC §5.3): redirect URI matching, validation before
//! redirection, consent, PKCE, `iss`/`state` on every response, prompts, and resuming a pending
//! request after sign-in without letting a stale one hijack a later login.

use crate::common::*;
use reqwest::header::{CONTENT_TYPE, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

const AUTHORIZE: &str = "/api/auth/mcp/authorize";

/// Authorization parameters for `client_id` and `redirect_uri`, with a fresh S256 challenge.
fn params_for(client_id: &str, redirect_uri: &str) -> Vec<(String, String)> {
    let (_, challenge) = pkce();
    vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), client_id.into()),
        ("redirect_uri".into(), redirect_uri.into()),
        ("scope".into(), "openid mcp:tools".into()),
        ("state".into(), "st".into()),
        ("code_challenge".into(), challenge),
        ("code_challenge_method".into(), "S256".into()),
    ]
}

/// The same parameters with `name` set to `value` (or removed when `value` is `None`).
fn with(
    mut params: Vec<(String, String)>,
    name: &str,
    value: Option<&str>,
) -> Vec<(String, String)> {
    params.retain(|(k, _)| k != name);
    if let Some(value) = value {
        params.push((name.into(), value.into()));
    }
    params
}

async fn authorize(app: &TestApp, browser: &Client, params: &[(String, String)]) -> Response {
    let url = reqwest::Url::parse_with_params(&app.url(AUTHORIZE), params).unwrap();
    browser.get(url).send().await.unwrap()
}

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

/// A 302 to the client's redirect URI carrying `error`; returns the query.
fn error_redirect(
    response: &Response,
    redirect_uri: &str,
) -> std::collections::HashMap<String, String> {
    assert_eq!(response.status(), StatusCode::FOUND);
    let target = location(response);
    assert!(
        target.starts_with(&format!("{redirect_uri}?")),
        "goes back to the client: {target}"
    );
    let query = query_of(&target);
    assert!(query.contains_key("error"), "carries an error: {target}");
    assert!(!query.contains_key("code"), "carries no code: {target}");
    query
}

async fn issuer_of(app: &TestApp) -> (String, Value) {
    let metadata: Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (metadata["issuer"].as_str().unwrap().to_owned(), metadata)
}

/// A fresh user with an account and a browser that is NOT signed in; the email is returned.
async fn existing_user(app: &TestApp) -> String {
    let email = format!(
        "user-{}@example.com",
        mcpauth_core::secret::random_id().to_lowercase()
    );
    let response = app.sign_up(&client(), &email).await;
    assert_eq!(response.status(), StatusCode::OK);
    email
}

async fn json_sign_in(app: &TestApp, browser: &Client, email: &str) -> Value {
    let response = browser
        .post(app.url("/api/auth/sign-in/email"))
        .header("origin", &app.base)
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// An unauthenticated browser that has been sent to the login page by `/authorize`; returns
/// the browser, the client and the login redirect.
async fn pending_login(app: &TestApp) -> (Client, String, String) {
    let browser = browser();
    let client_id = app.register_public(REDIRECT_URI).await;
    let response = authorize(app, &browser, &params_for(&client_id, REDIRECT_URI)).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let target = location(&response);
    assert!(
        target.starts_with("/sign-in?"),
        "goes to the login page: {target}"
    );
    let cookies: Vec<&str> = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("mcpauth.authorize=") && c.contains("HttpOnly")),
        "remembers the request in a cookie: {cookies:?}"
    );
    (browser, client_id, target)
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

// ---------------------------------------------------------------------------------------------
// S3: consent.

#[tokio::test]
async fn s03_untrusted_client_gets_no_code_without_consent() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;

    let response = authorize(&app, &browser, &params_for(&client_id, REDIRECT_URI)).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let consent = location(&response);
    assert!(
        consent.starts_with("/consent?"),
        "goes to the consent page: {consent}"
    );
    let query = query_of(&consent);
    assert!(!query["consent_code"].is_empty());
    assert_eq!(query["client_id"], client_id);
    assert_eq!(query["scope"], "openid mcp:tools");
    assert!(!query.contains_key("code"), "no code before approval");

    let denied = app.approve(&browser, &consent, false).await;
    assert!(denied.starts_with(&format!("{REDIRECT_URI}?")), "{denied}");
    let query = query_of(&denied);
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], "st");
    assert_eq!(query["iss"], app.base);
    assert!(!query.contains_key("code"));
}

#[tokio::test]
async fn consent_is_remembered_and_asked_again_for_new_scopes() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;

    let first = authorize(&app, &browser, &params_for(&client_id, REDIRECT_URI)).await;
    let consent = location(&first);
    assert!(consent.starts_with("/consent?"));
    let target = app.approve(&browser, &consent, true).await;
    assert!(query_of(&target).contains_key("code"));

    // Same scopes: straight back to the client with a code.
    let second = authorize(&app, &browser, &params_for(&client_id, REDIRECT_URI)).await;
    assert_eq!(second.status(), StatusCode::FOUND);
    let target = location(&second);
    assert!(target.starts_with(&format!("{REDIRECT_URI}?")), "{target}");
    assert!(query_of(&target).contains_key("code"), "{target}");

    // A subset of the approved scopes needs no new consent either.
    let subset = authorize(
        &app,
        &browser,
        &with(
            params_for(&client_id, REDIRECT_URI),
            "scope",
            Some("openid"),
        ),
    )
    .await;
    assert!(query_of(&location(&subset)).contains_key("code"));

    // A new scope: consent again, naming the scopes asked for.
    let wider = authorize(
        &app,
        &browser,
        &with(
            params_for(&client_id, REDIRECT_URI),
            "scope",
            Some("openid mcp:tools mcp:admin"),
        ),
    )
    .await;
    let consent = location(&wider);
    assert!(
        consent.starts_with("/consent?"),
        "new scopes need consent: {consent}"
    );
    assert_eq!(query_of(&consent)["scope"], "openid mcp:tools mcp:admin");
    assert!(!query_of(&consent).contains_key("code"));
}

#[tokio::test]
async fn prompt_consent_forces_the_consent_page() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let first = authorize(&app, &browser, &params_for(&client_id, REDIRECT_URI)).await;
    app.approve(&browser, &location(&first), true).await;

    let forced = authorize(
        &app,
        &browser,
        &with(
            params_for(&client_id, REDIRECT_URI),
            "prompt",
            Some("consent"),
        ),
    )
    .await;
    assert_eq!(forced.status(), StatusCode::FOUND);
    let target = location(&forced);
    assert!(
        target.starts_with("/consent?"),
        "prompt=consent asks again: {target}"
    );
}

#[tokio::test]
async fn consent_api_answers_redirect_uri_once() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let response = authorize(&app, &browser, &params_for(&client_id, REDIRECT_URI)).await;
    let consent_code = query_of(&location(&response))["consent_code"].clone();

    let post = |accept: bool| {
        browser
            .post(app.url("/api/auth/oauth2/consent"))
            .header("origin", &app.base)
            .json(&json!({ "accept": accept, "consent_code": consent_code }))
            .send()
    };
    let first = post(true).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let body: Value = first.json().await.unwrap();
    let url = body["redirectURI"].as_str().unwrap();
    assert!(url.starts_with(&format!("{REDIRECT_URI}?")), "{url}");
    let query = query_of(url);
    assert!(query.contains_key("code"));
    assert_eq!(query["state"], "st");
    assert_eq!(query["iss"], app.base);

    let replay = post(true).await.unwrap();
    assert_eq!(
        replay.status(),
        StatusCode::BAD_REQUEST,
        "a consent code is single-use"
    );
    let body: Value = replay.json().await.unwrap();
    assert!(body.get("redirectURI").is_none(), "{body}");
}

#[tokio::test]
async fn consent_code_of_another_user_is_refused() {
    let app = spawn_app().await;
    let owner = app.signed_in_browser().await;
    let other = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let response = authorize(&app, &owner, &params_for(&client_id, REDIRECT_URI)).await;
    let consent_code = query_of(&location(&response))["consent_code"].clone();

    let stolen = other
        .post(app.url("/api/auth/oauth2/consent"))
        .header("origin", &app.base)
        .json(&json!({ "accept": true, "consent_code": consent_code }))
        .send()
        .await
        .unwrap();
    assert!(stolen.status().is_client_error(), "{}", stolen.status());
    let body: Value = stolen.json().await.unwrap();
    assert!(
        body.get("redirectURI").is_none(),
        "no code for another user: {body}"
    );

    // Without any session the API refuses too.
    let anonymous = client()
        .post(app.url("/api/auth/oauth2/consent"))
        .header("origin", &app.base)
        .json(&json!({ "accept": true, "consent_code": consent_code }))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
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
// S10, S11: `iss` and `state`.

#[tokio::test]
async fn s10_iss_matches_the_metadata_issuer_on_success_and_error() {
    let app = spawn_app().await;
    let (issuer, metadata) = issuer_of(&app).await;
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        json!(true)
    );
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;

    let response = authorize(&app, &browser, &params_for(&client_id, REDIRECT_URI)).await;
    let success = app.approve(&browser, &location(&response), true).await;
    let query = query_of(&success);
    assert!(query.contains_key("code"));
    assert_eq!(query["iss"], issuer, "success");

    // Consent remembered: a direct code redirect carries it too.
    let response = authorize(&app, &browser, &params_for(&client_id, REDIRECT_URI)).await;
    let query = query_of(&location(&response));
    assert!(query.contains_key("code"));
    assert_eq!(query["iss"], issuer, "direct success");

    let response = authorize(
        &app,
        &browser,
        &with(params_for(&client_id, REDIRECT_URI), "scope", Some("nope")),
    )
    .await;
    assert_eq!(
        error_redirect(&response, REDIRECT_URI)["iss"],
        issuer,
        "error"
    );

    let response = authorize(
        &app,
        &browser,
        &with(
            params_for(&client_id, REDIRECT_URI),
            "prompt",
            Some("consent"),
        ),
    )
    .await;
    let denied = app.approve(&browser, &location(&response), false).await;
    assert_eq!(query_of(&denied)["iss"], issuer, "denial");
}

#[tokio::test]
async fn s11_state_is_returned_unchanged() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let state = "a b&c=d/é+%20?#x";

    let response = authorize(
        &app,
        &browser,
        &with(params_for(&client_id, REDIRECT_URI), "state", Some(state)),
    )
    .await;
    let success = app.approve(&browser, &location(&response), true).await;
    let query = query_of(&success);
    assert!(query.contains_key("code"), "{success}");
    assert_eq!(query["state"], state, "success: {success}");

    let response = authorize(
        &app,
        &browser,
        &with(
            with(params_for(&client_id, REDIRECT_URI), "state", Some(state)),
            "response_type",
            Some("token"),
        ),
    )
    .await;
    let query = error_redirect(&response, REDIRECT_URI);
    assert_eq!(query["state"], state, "error");

    let response = authorize(
        &app,
        &browser,
        &with(
            with(params_for(&client_id, REDIRECT_URI), "state", Some(state)),
            "prompt",
            Some("consent"),
        ),
    )
    .await;
    let denied = app.approve(&browser, &location(&response), false).await;
    assert_eq!(query_of(&denied)["state"], state, "denial: {denied}");
}

#[tokio::test]
async fn error_redirect_without_state_has_no_state() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let response = authorize(
        &app,
        &browser,
        &with(
            with(params_for(&client_id, REDIRECT_URI), "state", None),
            "scope",
            Some("nope"),
        ),
    )
    .await;
    let query = error_redirect(&response, REDIRECT_URI);
    assert!(!query.contains_key("state"));
    assert_eq!(query["iss"], app.base);
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
async fn unknown_scope_is_invalid_scope() {
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

// ---------------------------------------------------------------------------------------------
// prompt and max_age.

#[tokio::test]
async fn prompt_none_without_session_is_login_required() {
    let app = spawn_app().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let response = authorize(
        &app,
        &browser(),
        &with(params_for(&client_id, REDIRECT_URI), "prompt", Some("none")),
    )
    .await;
    let query = error_redirect(&response, REDIRECT_URI);
    assert_eq!(query["error"], "login_required");
    assert_eq!(query["state"], "st");
    assert_eq!(query["iss"], app.base);
}

#[tokio::test]
async fn prompt_none_without_consent_is_consent_required() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let params = with(params_for(&client_id, REDIRECT_URI), "prompt", Some("none"));
    let response = authorize(&app, &browser, &params).await;
    let query = error_redirect(&response, REDIRECT_URI);
    assert_eq!(query["error"], "consent_required");

    // Once approved, prompt=none gets a code silently.
    let consent = authorize(&app, &browser, &params_for(&client_id, REDIRECT_URI)).await;
    app.approve(&browser, &location(&consent), true).await;
    let response = authorize(&app, &browser, &params).await;
    let target = location(&response);
    assert!(query_of(&target).contains_key("code"), "{target}");
}

#[tokio::test]
async fn prompt_login_with_a_session_goes_to_the_login_page() {
    let app = spawn_app().await;
    let email = existing_user(&app).await;
    let browser = browser();
    json_sign_in(&app, &browser, &email).await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let response = authorize(
        &app,
        &browser,
        &with(
            params_for(&client_id, REDIRECT_URI),
            "prompt",
            Some("login"),
        ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let target = location(&response);
    assert!(target.starts_with("/sign-in?"), "{target}");
    let query = query_of(&target);
    assert_eq!(query["client_id"], client_id);
    assert!(!query.contains_key("code"));
    assert_ne!(
        query.get("prompt").map(String::as_str),
        Some("login"),
        "the resumed request must not ask for login again"
    );

    // Signing in again continues the request instead of asking for a login once more.
    let body = json_sign_in(&app, &browser, &email).await;
    assert_eq!(body["redirect"], json!(true), "{body}");
    let url = body["url"].as_str().unwrap();
    assert!(url.starts_with("/consent?"), "{url}");
}

#[tokio::test]
async fn max_age_exceeded_goes_to_the_login_page() {
    let app = spawn_app().await;
    let email = existing_user(&app).await;
    let browser = browser();
    json_sign_in(&app, &browser, &email).await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let params = with(params_for(&client_id, REDIRECT_URI), "max_age", Some("60"));

    let fresh = authorize(&app, &browser, &params).await;
    assert!(
        location(&fresh).starts_with("/consent?"),
        "a fresh login is recent enough"
    );

    app.clock.advance(120);
    let stale = authorize(&app, &browser, &params).await;
    assert_eq!(stale.status(), StatusCode::FOUND);
    let target = location(&stale);
    assert!(target.starts_with("/sign-in?"), "{target}");
    assert_eq!(query_of(&target)["max_age"], "60");

    // A new login satisfies max_age and the request continues.
    let body = json_sign_in(&app, &browser, &email).await;
    assert_eq!(body["redirect"], json!(true), "{body}");
    assert!(
        body["url"].as_str().unwrap().starts_with("/consent?"),
        "{body}"
    );
}

// ---------------------------------------------------------------------------------------------
// Resuming after sign-in; stale requests never hijack a later login.

#[tokio::test]
async fn unauthenticated_authorize_resumes_after_json_sign_in() {
    let app = spawn_app().await;
    let email = existing_user(&app).await;
    let (browser, client_id, login) = pending_login(&app).await;
    let query = query_of(&login);
    assert_eq!(
        query["client_id"], client_id,
        "the login page gets the original query"
    );
    assert_eq!(query["redirect_uri"], REDIRECT_URI);
    assert_eq!(query["state"], "st");

    let body = json_sign_in(&app, &browser, &email).await;
    assert_eq!(body["redirect"], json!(true), "{body}");
    let url = body["url"].as_str().unwrap();
    assert!(url.starts_with("/consent?"), "{url}");
    assert_eq!(query_of(url)["client_id"], client_id);

    let target = app.approve(&browser, url, true).await;
    assert!(query_of(&target).contains_key("code"), "{target}");

    // The request was spent by that sign-in: signing in again later is an ordinary login.
    let again = json_sign_in(&app, &browser, &email).await;
    assert_eq!(again["redirect"], json!(false), "{again}");
    assert!(again.get("url").is_none(), "{again}");
}

#[tokio::test]
async fn json_sign_in_with_remembered_consent_goes_straight_to_the_client() {
    let app = spawn_app().await;
    let email = existing_user(&app).await;
    let (first, client_id, _) = pending_login(&app).await;
    let body = json_sign_in(&app, &first, &email).await;
    app.approve(&first, body["url"].as_str().unwrap(), true)
        .await;

    let second = browser();
    let response = authorize(&app, &second, &params_for(&client_id, REDIRECT_URI)).await;
    assert!(location(&response).starts_with("/sign-in?"));
    let body = json_sign_in(&app, &second, &email).await;
    assert_eq!(body["redirect"], json!(true), "{body}");
    let url = body["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{REDIRECT_URI}?")), "{url}");
    assert!(query_of(url).contains_key("code"));
}

#[tokio::test]
async fn stale_pending_request_expires() {
    let app = spawn_app().await;
    let email = existing_user(&app).await;
    let (browser, _, _) = pending_login(&app).await;
    app.clock.advance(11 * 60);
    let body = json_sign_in(&app, &browser, &email).await;
    assert_eq!(body["redirect"], json!(false), "{body}");
    assert!(body.get("url").is_none(), "{body}");
}

#[tokio::test]
async fn plain_sign_in_page_abandons_the_pending_request() {
    let app = spawn_app().await;
    let email = existing_user(&app).await;
    let (browser, _, _) = pending_login(&app).await;
    let page = browser.get(app.url("/sign-in")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let body = json_sign_in(&app, &browser, &email).await;
    assert_eq!(body["redirect"], json!(false), "{body}");
    assert!(body.get("url").is_none(), "{body}");
}

#[tokio::test]
async fn html_sign_in_without_authorize_query_goes_home() {
    let app = spawn_app().await;
    let email = existing_user(&app).await;
    let (browser, _, login) = pending_login(&app).await;
    // The login page for the pending request gives the CSRF token and keeps the request.
    let page = browser.get(app.url(&login)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = input_value(&page.text().await.unwrap(), "csrf_token").unwrap();

    let response = browser
        .post(app.url("/sign-in"))
        .header("origin", &app.base)
        .form(&[
            ("email", email.as_str()),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");

    // And the pending request is spent: a later JSON sign-in is an ordinary one.
    let body = json_sign_in(&app, &browser, &email).await;
    assert_eq!(body["redirect"], json!(false), "{body}");
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

#[tokio::test]
async fn consent_code_expires() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let response = authorize(&app, &browser, &params_for(&client_id, REDIRECT_URI)).await;
    let consent_code = query_of(&location(&response))["consent_code"].clone();
    app.clock.advance(11 * 60);
    let late = browser
        .post(app.url("/api/auth/oauth2/consent"))
        .header("origin", &app.base)
        .json(&json!({ "accept": true, "consent_code": consent_code }))
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
    let body: Value = late.json().await.unwrap();
    assert!(body.get("redirectURI").is_none(), "{body}");
}

#[tokio::test]
async fn another_users_attempt_does_not_spend_the_consent_code() {
    // A refused request has no effect: someone who learns a consent code (from a log or a
    // shared screen) cannot cancel the owner's pending approval by posting it first.
    let app = spawn_app().await;
    let owner = app.signed_in_browser().await;
    let other = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let response = authorize(&app, &owner, &params_for(&client_id, REDIRECT_URI)).await;
    let consent = location(&response);
    let consent_code = query_of(&consent)["consent_code"].clone();

    let stolen = other
        .post(app.url("/api/auth/oauth2/consent"))
        .header("origin", &app.base)
        .json(&json!({ "accept": false, "consent_code": consent_code }))
        .send()
        .await
        .unwrap();
    assert!(stolen.status().is_client_error(), "{}", stolen.status());

    let response = owner
        .post(app.url("/api/auth/oauth2/consent"))
        .header("origin", &app.base)
        .json(&json!({ "accept": true, "consent_code": consent_code }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "the owner can still decide: {body}");
}
