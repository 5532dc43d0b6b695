//! Another mcpauth as the identity provider OpenID provider (it is one: discovery, ES256 id_tokens,
//! JWKS). It runs in-process on `127.0.0.1` while the server under test is `localhost`, so the
//! test browser keeps their cookies apart. The downstream is registered there as a trusted
//! client whose redirect URI is the downstream's callback.

use mcpauth::TrustedClient;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;

/// The identity-provider mcpauth, with the downstream registered as a client.
async fn idp_mcpauth() -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    spawn_app_with(|s| {
        s.bind = format!("127.0.0.1:{port}");
        s.issuer = Some(format!("http://127.0.0.1:{port}"));
        s.auth.trusted_clients = vec![TrustedClient {
            client_id: test_op::CLIENT_ID.into(),
            client_secret: Some(test_op::CLIENT_SECRET.into()),
            token_endpoint_auth_method: None,
            name: "Downstream mcpauth".into(),
            // Any port on loopback (RFC 8252 §7.3): the downstream's port is not known yet.
            redirect_uris: vec!["http://localhost/api/auth/callback/corp".into()],
            logo_uri: None,
            skip_consent: true,
            refresh_reuse_policy: None,
            ..Default::default()
        }];
    })
    .await
}

#[tokio::test]
async fn s28_sign_in_through_another_mcpauth_resumes_the_mcp_authorization() {
    let idp = idp_mcpauth().await;
    let app = spawn_app_with(|s| {
        s.identity_providers = vec![oidc_provider("corp", &idp.base)];
    })
    .await;
    let browser = browser();
    // The person has an account at the identity provider and is signed in there.
    let email = unique_email();
    assert_eq!(idp.sign_up(&browser, &email).await.status(), StatusCode::OK);

    // An MCP client starts an authorization here; the browser has no session.
    let client_id = app.register_public(REDIRECT_URI).await;
    let (verifier, challenge) = pkce();
    let response = app
        .authorize(
            &browser,
            &TestApp::authorize_params(&client_id, &challenge, "openid mcp:tools", "st-1"),
        )
        .await;
    let sign_in_page = location(&response);
    assert!(sign_in_page.starts_with("/sign-in?"), "{sign_in_page}");

    // "Continue with Provider corp", the round trip, the callback.
    let authorization_url = press_provider_button(&app, &browser, &sign_in_page, "corp").await;
    assert!(authorization_url.starts_with(&idp.url("/api/auth/mcp/authorize?")));
    let trip = through_provider(&app, &browser, &authorization_url).await;
    assert_eq!(trip.status(), StatusCode::SEE_OTHER);

    // The authorization resumes as after a password sign-in: consent (an untrusted client),
    // then the code at the client, then tokens.
    let consent = location(&trip.response);
    assert!(consent.starts_with("/consent?"), "{consent}");
    let target = app.approve(&browser, &consent, true).await;
    assert!(target.starts_with(REDIRECT_URI), "{target}");
    let query = query_of(&target);
    assert_eq!(query["state"], "st-1");
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &query["code"]),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(
        app.session_status(tokens["access_token"].as_str().unwrap())
            .await,
        StatusCode::OK
    );

    // The user exists here now, created from the identity and linked to it.
    assert_eq!(
        signed_in_as(&app, &browser).await.as_deref(),
        Some(email.as_str())
    );
    let db = app.db().await;
    let (provider, verified): (String, bool) = sqlx::query_as(
        r#"SELECT a.provider_id, u.email_verified FROM "account" a JOIN "user" u ON u.id = a.user_id
           WHERE u.email = $1"#,
    )
    .bind(&email)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(provider, "corp");
    // The identity provider's users signed up with a password: it says `email_verified: false`.
    assert!(!verified);

    // A second sign-in finds the same user by the subject.
    let other_browser = browser_signed_in_at_idp(&idp, &email).await;
    let trip = sign_in_with(&app, &other_browser, "corp").await;
    assert_eq!(trip.status(), StatusCode::SEE_OTHER);
    let users: i64 = sqlx::query_scalar(r#"SELECT COUNT(*) FROM "user""#)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(users, 1);
}

/// A browser signed in at `identity_provider` as the existing user `email`.
async fn browser_signed_in_at_idp(idp: &TestApp, email: &str) -> reqwest::Client {
    let browser = browser();
    let response = browser
        .post(idp.url("/api/auth/sign-in/email"))
        .header("origin", &idp.base)
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    browser
}

#[tokio::test]
async fn s29_an_unverified_provider_email_does_not_take_over_a_local_account() {
    let idp = idp_mcpauth().await;
    let app = spawn_app_with(|s| {
        s.identity_providers = vec![oidc_provider("corp", &idp.base)];
    })
    .await;
    // The same address has a password account here and (unverified) at the idp.
    let email = unique_email();
    assert_eq!(
        app.sign_up(&client(), &email).await.status(),
        StatusCode::OK
    );
    let browser = browser();
    assert_eq!(idp.sign_up(&browser, &email).await.status(), StatusCode::OK);

    let trip = sign_in_with(&app, &browser, "corp").await;
    assert_eq!(trip.status(), StatusCode::CONFLICT);
    let page = trip.response.text().await.unwrap();
    assert!(page.contains("link"), "says how to link instead: {page}");
    assert_eq!(signed_in_as(&app, &browser).await, None);
    let links: i64 =
        sqlx::query_scalar(r#"SELECT COUNT(*) FROM "account" WHERE provider_id = 'corp'"#)
            .fetch_one(&app.db().await)
            .await
            .unwrap();
    assert_eq!(links, 0);
}
