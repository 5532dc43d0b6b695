//! SECURITY S21: forwarded headers count only with `trust_proxy`, and never move the issuer.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::json;

async fn register_from(app: &TestApp, forwarded_for: &str) -> StatusCode {
    app.http
        .post(app.url("/api/auth/mcp/register"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({ "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none" }))
        .send()
        .await
        .unwrap()
        .status()
}

fn limited(s: &mut mcpauth_server::Settings) {
    s.rate_limits.enabled = true;
    s.rate_limits.limits.register_per_ip = 2;
}

#[tokio::test]
async fn s21_forwarded_for_is_ignored_without_trust_proxy() {
    let app = spawn_app_with(limited).await;
    assert_eq!(
        register_from(&app, "198.51.100.1").await,
        StatusCode::CREATED
    );
    assert_eq!(
        register_from(&app, "198.51.100.2").await,
        StatusCode::CREATED
    );
    // A client cannot escape the limit by claiming another address.
    assert_eq!(
        register_from(&app, "198.51.100.3").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn s21_with_trust_proxy_the_proxys_last_entry_counts() {
    let app = spawn_app_with(|s| {
        limited(s);
        s.auth.trust_proxy = true;
    })
    .await;
    // The proxy appends the address it saw; what the client wrote before it is not trusted.
    for _ in 0..2 {
        assert_eq!(
            register_from(&app, "203.0.113.9, 198.51.100.7").await,
            StatusCode::CREATED
        );
    }
    assert_eq!(
        register_from(&app, "203.0.113.10, 198.51.100.7").await,
        StatusCode::TOO_MANY_REQUESTS,
        "same real client, different spoofed prefix: same bucket"
    );
    assert_eq!(
        register_from(&app, "198.51.100.8").await,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn s21_the_issuer_never_follows_request_headers() {
    let app = spawn_app_with(|s| s.auth.trust_proxy = true).await;
    let meta: serde_json::Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .header("x-forwarded-host", "evil.test")
        .header("x-forwarded-proto", "https")
        .header("forwarded", "host=evil.test;proto=https")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], app.base);
    assert!(!meta.to_string().contains("evil.test"));
}
