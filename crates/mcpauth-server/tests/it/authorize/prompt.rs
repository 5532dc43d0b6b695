//! `prompt` and `max_age` (OpenID Connect Core §3.1.2.1): `prompt=none` answers
//! `login_required` or `consent_required` instead of showing a page, `prompt=login` and an
//! exceeded `max_age` send a signed-in user to the login page again.

use super::*;

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
