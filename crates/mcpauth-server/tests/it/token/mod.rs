//! The token endpoint (SPEC §5.4, §5.6; SECURITY S6, S8, S9, S12, S13, S16, S23, S27) and the
//! bearer checks of `/mcp/get-session`, black-box over HTTP: one module per behaviour, and the
//! helpers they share (a pending code, the exchange, the refresh, the OAuth error check).

mod bearer;
mod client_auth;
mod code_exchange;
mod refresh;
mod request;

use std::collections::BTreeSet;

use crate::common::*;
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

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
