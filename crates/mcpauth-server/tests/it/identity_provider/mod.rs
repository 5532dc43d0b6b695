//! Sign-in through identity providers (`[[identity_providers]]`, SECURITY S28, S29):
//!
//! - `second_mcpauth`: another mcpauth, started in-process on its own host name, is the OpenID
//!   provider; a browser signs in there and completes an MCP authorization here;
//! - `refusals`: the refusals a real OP never provokes (foreign issuer or audience, wrong nonce,
//!   expiry, an unknown key), against `test_op`, a small OP written for the tests;
//! - `accounts`: linking, unlinking, allow-lists, required claims, disabled users;
//! - `contract`: the promises of the `IdentityProvider` trait, on each implementation;
//! - `github`: the GitHub preset against a local stand-in serving GitHub's documented shapes
//!   (GitHub itself cannot be reached from the test machines).

mod accounts;
mod contract;
mod github;
mod refusals;
mod second_mcpauth;
pub mod test_op;

use mcpauth_server::IdentityProviderSettings;
use reqwest::{Client, Response, StatusCode};

use crate::common::*;

/// Settings for an OpenID provider at `issuer` with the test OP's client credentials.
pub fn oidc_provider(id: &str, issuer: &str) -> IdentityProviderSettings {
    IdentityProviderSettings {
        id: id.to_owned(),
        kind: mcpauth_server::ProviderKind::Oidc,
        name: Some(format!("Provider {id}")),
        issuer: Some(issuer.to_owned()),
        client_id: Some(test_op::CLIENT_ID.to_owned()),
        client_secret: Some(test_op::CLIENT_SECRET.to_owned()),
        ..IdentityProviderSettings::default()
    }
}

/// What one trip through an provider ended with.
pub struct Trip {
    /// The callback URL the provider sent the browser to.
    pub callback: String,
    /// mcpauth's answer to it.
    pub response: Response,
}

impl Trip {
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }
}

/// Presses "Continue with {provider}" on `page` (the sign-in page's path and query) in
/// `browser`: returns the provider's authorization URL.
pub async fn press_provider_button(
    app: &TestApp,
    browser: &Client,
    page: &str,
    provider: &str,
) -> String {
    let (status, _, html) = get_page(browser, &app.url(page)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        html.contains(&format!("name=\"provider\" value=\"{provider}\"")),
        "the page offers {provider}"
    );
    let mut form = vec![
        (
            "csrf_token".to_owned(),
            input_value(&html, "csrf_token").unwrap(),
        ),
        ("provider".to_owned(), provider.to_owned()),
    ];
    if let Some(query) = input_value(&html, "authorize_query") {
        form.push(("authorize_query".to_owned(), query));
    }
    if let Some(path) = input_value(&html, "return_to") {
        form.push(("return_to".to_owned(), path));
    }
    let response = browser
        .post(app.url("/api/auth/sign-in/social"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "the start redirects"
    );
    location(&response)
}

/// Follows the provider's redirects from `authorization_url` until they lead back to `app`,
/// then GETs the callback in `browser`.
pub async fn through_provider(app: &TestApp, browser: &Client, authorization_url: &str) -> Trip {
    let mut url = authorization_url.to_owned();
    for _ in 0..5 {
        if url.starts_with(&app.base) {
            let response = browser.get(&url).send().await.unwrap();
            return Trip {
                callback: url,
                response,
            };
        }
        let response = browser.get(&url).send().await.unwrap();
        assert!(
            response.status().is_redirection(),
            "the provider redirects: {} {url}",
            response.status()
        );
        url = location(&response);
    }
    panic!("never came back from the provider");
}

/// A whole sign-in through `provider` from the plain sign-in page.
pub async fn sign_in_with(app: &TestApp, browser: &Client, provider: &str) -> Trip {
    let authorization_url = press_provider_button(app, browser, "/sign-in", provider).await;
    through_provider(app, browser, &authorization_url).await
}

/// Whether `browser` is signed in at `app`, and as whom (email).
pub async fn signed_in_as(app: &TestApp, browser: &Client) -> Option<String> {
    let body: serde_json::Value = browser
        .get(app.url("/api/auth/get-session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["user"]["email"].as_str().map(str::to_owned)
}

/// The kinds of the audit log, newest first.
pub async fn audit_kinds(app: &TestApp) -> Vec<String> {
    let db = app.db().await;
    sqlx::query_scalar(r#"SELECT kind FROM "auditLog" ORDER BY id DESC"#)
        .fetch_all(&db)
        .await
        .unwrap()
}
