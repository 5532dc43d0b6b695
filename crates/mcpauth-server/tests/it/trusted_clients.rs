//! Clients registered by configuration (SPEC §3 `trusted_clients`).

use crate::common::*;
use mcpauth::TrustedClient;
use reqwest::StatusCode;

const SECRET: &str = "a-trusted-client-secret-of-enough-length";

fn trusted(skip_consent: bool) -> TrustedClient {
    TrustedClient {
        client_id: "internal-dashboard".into(),
        client_secret: Some(SECRET.into()),
        token_endpoint_auth_method: None,
        name: "Internal Dashboard".into(),
        redirect_uris: vec![REDIRECT_URI.into()],
        logo_uri: None,
        skip_consent,
        refresh_reuse_policy: None,
        ..Default::default()
    }
}

#[tokio::test]
async fn trusted_client_skips_consent_and_authenticates_with_its_secret() {
    let app = spawn_app_with(|s| s.auth.trusted_clients = vec![trusted(true)]).await;
    let browser = app.signed_in_browser().await;
    let (verifier, challenge) = pkce();
    let response = app
        .authorize(
            &browser,
            &TestApp::authorize_params("internal-dashboard", &challenge, "openid", "s"),
        )
        .await;
    let target = location(&response);
    assert!(
        target.starts_with(REDIRECT_URI),
        "no consent page: {target}"
    );
    let code = query_of(&target)["code"].clone();
    let exchange = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth("internal-dashboard", Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(exchange.status(), StatusCode::OK);
}

#[tokio::test]
async fn s03_trusted_client_without_skip_consent_still_asks() {
    let app = spawn_app_with(|s| s.auth.trusted_clients = vec![trusted(false)]).await;
    let browser = app.signed_in_browser().await;
    let (_, challenge) = pkce();
    let response = app
        .authorize(
            &browser,
            &TestApp::authorize_params("internal-dashboard", &challenge, "openid", "s"),
        )
        .await;
    let target = location(&response);
    assert!(target.starts_with("/consent?"));
    // SECURITY M7: the operator chose this name, so the page does not call it self-asserted.
    let (_, _, body) = get_page(&browser, &app.url(&target)).await;
    let page = html_unescape(&body);
    assert!(page.contains("Internal Dashboard"), "{page}");
    assert!(
        page.contains("Registered by the operator of this server"),
        "{page}"
    );
    assert!(!page.contains("self-asserted"), "{page}");
}

#[tokio::test]
async fn trusted_client_with_a_bad_redirect_uri_stops_start_up() {
    let mut bad = trusted(true);
    bad.redirect_uris = vec!["http://evil.test/cb".into()];
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings();
    settings.database_url = format!("sqlite://{}", dir.path().join("db").display());
    settings.auth.trusted_clients = vec![bad];
    let error = mcpauth_server::Application::build(&settings, None)
        .await
        .err()
        .expect("start-up is refused");
    assert!(error.to_string().contains("trusted_clients"), "{error}");
}
