//! SECURITY S29: which user an identity signs in as. A second provider links to an
//! existing user only when both sides assert a verified email (or the signed-in user links it
//! from the account page); unlinking never removes the last way in; the allow-lists and a
//! provider's required claim apply to every sign-in (and the lists to password
//! sign-up); a disabled user stays out whatever the provider says.

use reqwest::{Client, StatusCode};
use serde_json::json;

use super::test_op::TestOp;
use super::*;

async fn two_providers(configure: impl FnOnce(&mut mcpauth_server::Settings)) -> (TestApp, TestOp) {
    let op = TestOp::start().await;
    let issuer = op.issuer.clone();
    let app = spawn_app_with(|s| {
        s.identity_providers = vec![
            oidc_provider("alpha", &issuer),
            oidc_provider("beta", &issuer),
        ];
        configure(s);
    })
    .await;
    (app, op)
}

fn verified(email: &str) -> serde_json::Value {
    json!({ "email": email, "email_verified": true, "name": "Ada Lovelace" })
}

async fn providers_of(app: &TestApp, email: &str) -> Vec<String> {
    sqlx::query_scalar(
        r#"SELECT a.provider_id FROM "account" a JOIN "user" u ON u.id = a.user_id
           WHERE u.email = $1 ORDER BY a.created_at, a.provider_id"#,
    )
    .bind(email)
    .fetch_all(&app.db().await)
    .await
    .unwrap()
}

/// Posts a form of the account page (with its CSRF token) in `browser`.
async fn account_form(
    app: &TestApp,
    browser: &Client,
    action: &str,
    provider: &str,
) -> reqwest::Response {
    let (status, _, html) = get_page(browser, &app.url("/account")).await;
    assert_eq!(status, StatusCode::OK);
    browser
        .post(app.url(action))
        .form(&[
            (
                "csrf_token",
                input_value(&html, "csrf_token").unwrap().as_str(),
            ),
            ("provider", provider),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn s29_verified_emails_on_both_sides_link_a_second_provider() {
    let (app, op) = two_providers(|_| {}).await;
    op.next_identity("ada-alpha", verified("ada@example.com"));
    let first = browser();
    assert_eq!(
        sign_in_with(&app, &first, "alpha").await.status(),
        StatusCode::SEE_OTHER
    );
    let verified_flag: bool =
        sqlx::query_scalar(r#"SELECT email_verified FROM "user" WHERE email = 'ada@example.com'"#)
            .fetch_one(&app.db().await)
            .await
            .unwrap();
    assert!(verified_flag, "created verified: the provider said so");

    op.next_identity("ada-beta", verified("ADA@example.com"));
    let second = browser();
    assert_eq!(
        sign_in_with(&app, &second, "beta").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        signed_in_as(&app, &second).await.as_deref(),
        Some("ada@example.com")
    );
    assert_eq!(
        providers_of(&app, "ada@example.com").await,
        ["alpha", "beta"]
    );
    assert!(
        audit_kinds(&app)
            .await
            .contains(&"account_linked".to_owned())
    );

    // The account page lists both ways in, each removable.
    let (_, _, html) = get_page(&second, &app.url("/account")).await;
    assert!(html.contains("Sign-in methods"));
    assert!(html.contains("Provider alpha") && html.contains("Provider beta"));
    assert_eq!(html.matches("action=\"/account/unlink").count(), 2);
}

#[tokio::test]
async fn s29_unverified_email_does_not_link() {
    let (app, op) = two_providers(|_| {}).await;
    op.next_identity("ada-alpha", verified("ada@example.com"));
    assert_eq!(
        sign_in_with(&app, &browser(), "alpha").await.status(),
        StatusCode::SEE_OTHER
    );

    // The second provider does not say the address is verified: no link, no session.
    for claims in [
        json!({ "email": "ada@example.com", "email_verified": false }),
        json!({ "email": "ada@example.com" }),
    ] {
        op.next_identity("mallory-beta", claims);
        let browser = browser();
        let trip = sign_in_with(&app, &browser, "beta").await;
        assert_eq!(trip.status(), StatusCode::CONFLICT);
        assert_eq!(signed_in_as(&app, &browser).await, None);
    }
    assert_eq!(providers_of(&app, "ada@example.com").await, ["alpha"]);

    // Nor does a local password account whose address was never verified get linked, however
    // verified the provider says it is.
    let email = unique_email();
    assert_eq!(
        app.sign_up(&client(), &email).await.status(),
        StatusCode::OK
    );
    op.next_identity("someone-alpha", verified(&email));
    let trip = sign_in_with(&app, &browser(), "alpha").await;
    assert_eq!(trip.status(), StatusCode::CONFLICT);
    assert_eq!(providers_of(&app, &email).await, ["credential"]);
}

#[tokio::test]
async fn s29_trust_email_counts_a_provider_without_email_verified_as_verified() {
    let (app, op) = two_providers(|s| s.identity_providers[1].trust_email = true).await;
    op.next_identity("ada-alpha", verified("ada@example.com"));
    assert_eq!(
        sign_in_with(&app, &browser(), "alpha").await.status(),
        StatusCode::SEE_OTHER
    );
    // Like Microsoft Entra: an email, no email_verified.
    op.next_identity("ada-entra", json!({ "email": "ada@example.com" }));
    assert_eq!(
        sign_in_with(&app, &browser(), "beta").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        providers_of(&app, "ada@example.com").await,
        ["alpha", "beta"]
    );
}

#[tokio::test]
async fn s29_domain_outside_the_allow_list_is_refused() {
    let (app, op) = two_providers(|s| {
        s.auth.allowed_email_domains = vec!["example.com".into()];
        s.auth.allowed_emails = vec!["guest@partner.test".into()];
    })
    .await;
    for (claims, allowed) in [
        (verified("eve@evil.test"), false),
        (
            json!({ "email": "bob@example.com", "email_verified": false }),
            false,
        ),
        (json!({ "name": "No Email" }), false),
        (verified("bob@example.com"), true),
        (verified("guest@partner.test"), true),
        (verified("other@partner.test"), false),
    ] {
        op.next_identity(&mcpauth_core::secret::random_id(), claims.clone());
        let browser = browser();
        let trip = sign_in_with(&app, &browser, "alpha").await;
        if allowed {
            assert_eq!(trip.status(), StatusCode::SEE_OTHER, "{claims}");
            assert!(signed_in_as(&app, &browser).await.is_some());
        } else {
            assert_eq!(trip.status(), StatusCode::FORBIDDEN, "{claims}");
            assert!(trip.response.text().await.unwrap().contains("not allowed"));
            assert_eq!(signed_in_as(&app, &browser).await, None);
        }
    }
    // Password sign-up obeys the same lists.
    let refused = app.sign_up(&client(), "eve@evil.test").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "EMAIL_NOT_ALLOWED");
    assert_eq!(
        app.sign_up(&client(), "carol@example.com").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn s29_required_claim_is_enforced() {
    let (app, op) = two_providers(|s| {
        s.identity_providers[0].required_claim =
            Some(mcpauth_server::config::RequiredClaimSettings {
                name: "groups".into(),
                value: "mcp-users".into(),
            });
    })
    .await;
    op.next_identity(
        "outsider",
        json!({ "email": "out@example.com", "email_verified": true, "groups": ["staff"] }),
    );
    let trip = sign_in_with(&app, &browser(), "alpha").await;
    assert_eq!(trip.status(), StatusCode::FORBIDDEN);
    op.next_identity(
        "insider",
        json!({ "email": "in@example.com", "email_verified": true, "groups": ["staff", "mcp-users"] }),
    );
    let trip = sign_in_with(&app, &browser(), "alpha").await;
    assert_eq!(trip.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn s29_a_disabled_user_stays_out() {
    let (app, op) = two_providers(|_| {}).await;
    op.next_identity("ada-alpha", verified("ada@example.com"));
    assert_eq!(
        sign_in_with(&app, &browser(), "alpha").await.status(),
        StatusCode::SEE_OTHER
    );
    sqlx::query(r#"UPDATE "user" SET disabled = 1 WHERE email = 'ada@example.com'"#)
        .execute(&app.db().await)
        .await
        .unwrap();
    op.next_identity("ada-alpha", verified("ada@example.com"));
    let browser = browser();
    let trip = sign_in_with(&app, &browser, "alpha").await;
    assert_eq!(trip.status(), StatusCode::FORBIDDEN);
    assert!(trip.response.text().await.unwrap().contains("disabled"));
    assert_eq!(signed_in_as(&app, &browser).await, None);
    // Nor does another provider with the same verified address get linked to them.
    op.next_identity("ada-beta", verified("ada@example.com"));
    let trip = sign_in_with(&app, &browser, "beta").await;
    assert_eq!(trip.status(), StatusCode::FORBIDDEN);
    assert_eq!(signed_in_as(&app, &browser).await, None);
    assert_eq!(providers_of(&app, "ada@example.com").await, ["alpha"]);
}

#[tokio::test]
async fn s29_unlinking_the_last_method_is_refused_and_linking_from_the_account_page_works() {
    let (app, op) = two_providers(|_| {}).await;
    op.next_identity("ada-alpha", verified("ada@example.com"));
    let browser = browser();
    assert_eq!(
        sign_in_with(&app, &browser, "alpha").await.status(),
        StatusCode::SEE_OTHER
    );

    // The only way in: no Unlink button, and a forged post is refused.
    let (_, _, html) = get_page(&browser, &app.url("/account")).await;
    assert!(!html.contains("action=\"/account/unlink"));
    assert!(html.contains("Link Provider beta"));
    assert!(!html.contains("Change password"), "no password to change");
    let refused = account_form(&app, &browser, "/account/unlink", "alpha").await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("only way to sign in")
    );
    assert_eq!(providers_of(&app, "ada@example.com").await, ["alpha"]);

    // Linking beta from the account page: whatever address beta has, unverified even.
    op.next_identity("ada-at-beta", json!({ "email": "a.l@elsewhere.test" }));
    let response = account_form(&app, &browser, "/account/link", "beta").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let trip = through_provider(&app, &browser, &location(&response)).await;
    assert_eq!(trip.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&trip.response), "/account?done=linked");
    assert_eq!(
        providers_of(&app, "ada@example.com").await,
        ["alpha", "beta"]
    );

    // Now alpha can go, and then beta is the last one.
    let response = account_form(&app, &browser, "/account/unlink", "alpha").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        audit_kinds(&app)
            .await
            .contains(&"account_unlinked".to_owned())
    );
    assert_eq!(providers_of(&app, "ada@example.com").await, ["beta"]);
    let refused = account_form(&app, &browser, "/account/unlink", "beta").await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);

    // beta's account signs in as Ada from now on.
    op.next_identity("ada-at-beta", json!({ "email": "a.l@elsewhere.test" }));
    let other = crate::common::browser();
    assert_eq!(
        sign_in_with(&app, &other, "beta").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        signed_in_as(&app, &other).await.as_deref(),
        Some("ada@example.com")
    );
}

#[tokio::test]
async fn s29_a_provider_account_linked_to_someone_else_is_not_linked_again() {
    let (app, op) = two_providers(|_| {}).await;
    op.next_identity("bob-beta", verified("bob@example.com"));
    assert_eq!(
        sign_in_with(&app, &browser(), "beta").await.status(),
        StatusCode::SEE_OTHER
    );
    let ada = app.signed_in_browser().await;
    op.next_identity("bob-beta", verified("bob@example.com"));
    let response = account_form(&app, &ada, "/account/link", "beta").await;
    let trip = through_provider(&app, &ada, &location(&response)).await;
    assert_eq!(trip.status(), StatusCode::CONFLICT);
    assert_eq!(providers_of(&app, "bob@example.com").await, ["beta"]);
}

#[tokio::test]
async fn password_login_false_leaves_only_the_providers() {
    let (app, op) = two_providers(|s| s.auth.password_login = false).await;
    let browser = browser();
    let (status, _, html) = get_page(&browser, &app.url("/sign-in")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("type=\"password\""));
    assert!(!html.contains("/sign-up"));
    assert!(html.contains("Continue with Provider alpha"));
    // The password endpoints refuse, even for an account that has a password.
    let refused = app.sign_up(&client(), &unique_email()).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let refused = client()
        .post(app.url("/api/auth/sign-in/email"))
        .header("origin", &app.base)
        .json(&json!({ "email": "a@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let sign_up = browser.get(app.url("/sign-up")).send().await.unwrap();
    assert_eq!(location(&sign_up), "/sign-in");
    // No password reset either: there are no passwords to sign in with.
    let reset = client()
        .post(app.url("/api/auth/request-password-reset"))
        .header("origin", &app.base)
        .json(&json!({ "email": "a@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::BAD_REQUEST);
    assert!(reset.text().await.unwrap().contains("EMAIL_NOT_AVAILABLE"));
    let (_, _, forgot) = get_page(&browser, &app.url("/forgot-password")).await;
    assert!(!forgot.contains("type=\"email\""), "{forgot}");
    // The providers still work.
    op.next_identity("ada-alpha", verified("ada@example.com"));
    assert_eq!(
        sign_in_with(&app, &browser, "alpha").await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn identity_provider_options_are_checked_at_start() {
    let build = |configure: fn(&mut mcpauth_server::Settings)| async move {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = test_settings();
        settings.database_url = format!("sqlite://{}", dir.path().join("db").display());
        configure(&mut settings);
        mcpauth_server::Application::build(&settings, None)
            .await
            .err()
            .map(|e| format!("{e:#}"))
    };
    let nobody = build(|s| s.auth.password_login = false).await.unwrap();
    assert!(nobody.contains("nobody could sign in"), "{nobody}");
    let twice = build(|s| {
        s.identity_providers = vec![
            oidc_provider("corp", "https://idp.test"),
            oidc_provider("corp", "https://other.test"),
        ]
    })
    .await
    .unwrap();
    assert!(twice.contains("used twice"), "{twice}");
    for id in ["credential", "Corp", "a/b", ""] {
        let error = build(match id {
            "credential" => {
                |s| s.identity_providers = vec![oidc_provider("credential", "https://idp.test")]
            }
            "Corp" => |s| s.identity_providers = vec![oidc_provider("Corp", "https://idp.test")],
            "a/b" => |s| s.identity_providers = vec![oidc_provider("a/b", "https://idp.test")],
            _ => |s| s.identity_providers = vec![oidc_provider("", "https://idp.test")],
        })
        .await;
        assert!(error.is_some(), "id {id:?} is refused");
    }
    // A provider that is not reachable does not stop the server from starting.
    assert_eq!(
        build(|s| s.identity_providers = vec![oidc_provider("corp", "https://idp.invalid")]).await,
        None
    );
}
