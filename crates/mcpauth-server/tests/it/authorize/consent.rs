//! Consent (SECURITY S3): no code for an untrusted client without it, remembered per scope,
//! forced by `prompt=consent`, and a consent code that answers once, expires, and belongs to the
//! user it was shown to.

use super::*;

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
