//! The authorization endpoint over HTTP (SPEC §5.3): redirect URI matching, validation before
//! redirection, consent, PKCE, `iss`/`state` on every response, prompts, and resuming a pending
//! request after sign-in without letting a stale one hijack a later login. One module per
//! behaviour, and the helpers they share (the request, its parameters, the error redirect, a
//! fresh user and a JSON sign-in).

mod consent;
mod issuer_and_state;
mod prompt;
mod resume;
mod validation;

use crate::common::*;
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

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
