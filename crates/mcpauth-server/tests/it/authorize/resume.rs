//! Resuming a pending authorization request after sign-in, and stale requests that never hijack
//! a later login: the request waits in a cookie, is spent by the sign-in that completes it,
//! expires, and is abandoned by a plain visit to the sign-in page.

use super::*;
use reqwest::header::SET_COOKIE;

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
