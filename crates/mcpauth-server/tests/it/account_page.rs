//! The account page (SPEC §2 `/account`): connected apps revocable at once and the other
//! revocation events of SECURITY S14 (sign-out everywhere, password change, client disabled,
//! user deleted), framing protection (S18), CSRF on every form (S25) and `return_to` on sign-in
//! and sign-out accepting only same-origin paths (S20).

use crate::common::*;
use mcpauth_core::{Clock, Store};
use reqwest::header::HeaderMap;
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

const NEW_PASSWORD: &str = "a brand new passphrase";

/// The account page of a signed-in browser (200), as HTML.
async fn account_html(app: &TestApp, browser: &Client) -> String {
    let (status, _, html) = get_page(browser, &app.url("/account")).await;
    assert_eq!(status, StatusCode::OK, "the account page shows");
    html
}

/// The CSRF token of the account page.
async fn account_csrf(app: &TestApp, browser: &Client) -> String {
    input_value(&account_html(app, browser).await, "csrf_token").expect("a csrf_token field")
}

/// Posts a form from this origin.
async fn post_form(app: &TestApp, browser: &Client, path: &str, form: &[(&str, &str)]) -> Response {
    browser
        .post(app.url(path))
        .header("origin", &app.base)
        .form(form)
        .send()
        .await
        .unwrap()
}

/// The signed-in user of `browser`, from the account API (`null` when signed out).
async fn session_of(app: &TestApp, browser: &Client) -> Value {
    browser
        .get(app.url("/api/auth/get-session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A new browser signed in as `email` through the account API.
async fn sign_in(app: &TestApp, email: &str, password: &str) -> (StatusCode, Client) {
    let browser = browser();
    let status = browser
        .post(app.url("/api/auth/sign-in/email"))
        .header("origin", &app.base)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
        .status();
    (status, browser)
}

/// Where a flow's refresh token gets: the token endpoint's status and `error`.
async fn refresh(app: &TestApp, flow: &Flow) -> (StatusCode, Value) {
    let refresh_token = flow.tokens["refresh_token"]
        .as_str()
        .expect("the flow got a refresh token");
    let response = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &flow.client_id),
        ])
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (status, body["error"].clone())
}

fn access_token(flow: &Flow) -> &str {
    flow.tokens["access_token"].as_str().unwrap()
}

async fn assert_tokens_dead(app: &TestApp, flow: &Flow) {
    assert_eq!(
        app.session_status(access_token(flow)).await,
        StatusCode::UNAUTHORIZED,
        "the access token stopped working"
    );
    assert_eq!(
        refresh(app, flow).await,
        (StatusCode::BAD_REQUEST, json!("invalid_grant")),
        "the refresh token stopped working"
    );
}

/// The store behind the server, opened a second time on its database file.
async fn store_of(app: &TestApp) -> std::sync::Arc<dyn Store> {
    mcpauth_server::open_store(&format!("sqlite://{}", app.db_path.display()))
        .await
        .unwrap()
}

fn assert_page_headers(headers: &HeaderMap, what: &str) {
    let csp = headers
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"))
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert_eq!(headers["x-frame-options"], "DENY", "{what}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(headers["cache-control"], "no-store", "{what}");
    assert!(
        !headers.contains_key("access-control-allow-origin"),
        "{what}: no CORS"
    );
}

// ---------------------------------------------------------------------------------------------
// The page.

#[tokio::test]
async fn account_page_needs_a_session_and_sign_in_returns_to_it() {
    let app = spawn_app().await;
    let browser = browser();
    let response = browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/sign-in?return_to=/account");

    let email = "returning@example.com";
    assert_eq!(app.sign_up(&client(), email).await.status(), StatusCode::OK);
    let (status, _, html) = get_page(&browser, &app.url("/sign-in?return_to=/account")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(input_value(&html, "return_to").as_deref(), Some("/account"));
    let csrf = input_value(&html, "csrf_token").unwrap();

    // A wrong password first: the page keeps where to go.
    let response = post_form(
        &app,
        &browser,
        "/sign-in",
        &[
            ("email", email),
            ("password", "not the password"),
            ("csrf_token", &csrf),
            ("return_to", "/account"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let html = response.text().await.unwrap();
    assert_eq!(input_value(&html, "return_to").as_deref(), Some("/account"));

    let response = post_form(
        &app,
        &browser,
        "/sign-in",
        &[
            ("email", email),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
            ("return_to", "/account"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/account");
    let html = html_unescape(&account_html(&app, &browser).await);
    assert!(html.contains(email), "shows who is signed in");
    assert!(html.contains("Test User"), "and their name");

    // Signed in already: /sign-in goes straight on.
    let response = browser
        .get(app.url("/sign-in?return_to=/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/account");
}

#[tokio::test]
async fn account_page_lists_connected_apps_and_sessions() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools offline_access").await;
    let html = html_unescape(&account_html(&app, &flow.browser).await);
    assert!(html.contains("Test MCP Client"), "names the app");
    assert!(html.contains(&flow.client_id), "and its client id");
    assert!(
        html.contains("Use this server's MCP tools"),
        "scopes in words"
    );
    assert!(html.contains("Confirm who you are"));
    assert_eq!(
        input_value(&html, "client_id").as_deref(),
        Some(flow.client_id.as_str()),
        "a Revoke form for it"
    );
    // Times as UTC dates, the same instant as the server's clock.
    let date = utc_date(app.clock.now());
    assert!(html.contains(&date), "authorized at {date}: {html}");
    assert!(html.contains("You are signed in only in this browser."));

    // A second session elsewhere is counted, and can be ended from here.
    let email = session_of(&app, &flow.browser).await["user"]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, other) = sign_in(&app, &email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let html = account_html(&app, &flow.browser).await;
    assert!(html.contains("1 other session"), "{html}");
    let csrf = input_value(&html, "csrf_token").unwrap();
    let response = post_form(
        &app,
        &flow.browser,
        "/account/sessions/revoke-others",
        &[("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).starts_with("/account"));
    assert_eq!(session_of(&app, &other).await, Value::Null, "ended");
    assert_ne!(
        session_of(&app, &flow.browser).await,
        Value::Null,
        "this one lives"
    );
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK,
        "ending sessions leaves the apps connected"
    );
}

/// `2026-11-26` for a Unix time: the date part of what the page shows.
fn utc_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[tokio::test]
async fn account_page_without_apps_says_so() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let html = account_html(&app, &browser).await;
    assert!(html.contains("No apps can use your account"), "{html}");
    assert!(input_value(&html, "client_id").is_none());
}

// ---------------------------------------------------------------------------------------------
// S14: revocation events.

#[tokio::test]
async fn s14_revoking_an_app_on_the_account_page_kills_its_tokens() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK
    );

    let html = account_html(&app, &flow.browser).await;
    assert!(html_unescape(&html).contains("Test MCP Client"));
    let csrf = input_value(&html, "csrf_token").unwrap();
    let response = post_form(
        &app,
        &flow.browser,
        "/account/revoke",
        &[("csrf_token", &csrf), ("client_id", &flow.client_id)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "303, never 307");
    assert_eq!(location(&response), "/account?done=revoked");

    assert_tokens_dead(&app, &flow).await;
    let (status, _, html) = get_page(&flow.browser, &app.url(&location(&response))).await;
    assert_eq!(status, StatusCode::OK);
    let html = html_unescape(&html);
    assert!(
        html.contains("The app was disconnected"),
        "says what happened"
    );
    assert!(!html.contains("Test MCP Client"), "the app is gone");
    let events = store_of(&app).await.audit_events(50).await.unwrap();
    assert!(
        events.iter().any(|e| e.kind == "account.grant.revoke"
            && e.client_id.as_deref() == Some(flow.client_id.as_str())),
        "the security log records it"
    );

    // The app must ask again: its next authorization shows the consent page.
    let (_, challenge) = pkce();
    let response = app
        .authorize(
            &flow.browser,
            &TestApp::authorize_params(&flow.client_id, &challenge, "openid mcp:tools", "st"),
        )
        .await;
    assert!(location(&response).starts_with("/consent?"));
}

#[tokio::test]
async fn s14_revoking_one_app_leaves_the_others() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    // A second app for the same user.
    let other_client = app.register_public(REDIRECT_URI).await;
    let (verifier, challenge) = pkce();
    let code = app
        .code_for(&flow.browser, &other_client, &challenge, "openid")
        .await;
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &other_client),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let other: Value = response.json().await.unwrap();

    let csrf = account_csrf(&app, &flow.browser).await;
    let response = post_form(
        &app,
        &flow.browser,
        "/account/revoke",
        &[("csrf_token", &csrf), ("client_id", &other_client)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.session_status(other["access_token"].as_str().unwrap())
            .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK,
        "the other app keeps working"
    );
}

#[tokio::test]
async fn s14_password_change_ends_other_sessions() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let email = session_of(&app, &flow.browser).await["user"]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, other) = sign_in(&app, &email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK);

    let csrf = account_csrf(&app, &flow.browser).await;
    let response = post_form(
        &app,
        &flow.browser,
        "/account/password",
        &[
            ("csrf_token", &csrf),
            ("current_password", PASSWORD),
            ("new_password", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/account?done=password");

    assert_eq!(session_of(&app, &other).await, Value::Null, "ended");
    let (status, _, html) = get_page(&flow.browser, &app.url(&location(&response))).await;
    assert_eq!(status, StatusCode::OK, "this session lives on");
    assert!(html_unescape(&html).contains("Your password was changed."));
    assert_eq!(
        sign_in(&app, &email, PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(sign_in(&app, &email, NEW_PASSWORD).await.0, StatusCode::OK);
    // By default the apps stay connected.
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn s14_password_change_revokes_grants_when_configured() {
    let app = spawn_app_with(|s| s.auth.revoke_grants_on_password_change = true).await;
    let flow = app.full_flow("openid mcp:tools").await;
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK
    );
    let html = account_html(&app, &flow.browser).await;
    assert!(
        html.contains("every connected app disconnected"),
        "the form says so"
    );
    let csrf = input_value(&html, "csrf_token").unwrap();
    let response = post_form(
        &app,
        &flow.browser,
        "/account/password",
        &[
            ("csrf_token", &csrf),
            ("current_password", PASSWORD),
            ("new_password", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_tokens_dead(&app, &flow).await;
}

#[tokio::test]
async fn password_change_refusals_show_the_page_with_the_reason() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let email = session_of(&app, &flow.browser).await["user"]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, other) = sign_in(&app, &email, PASSWORD).await;
    let csrf = account_csrf(&app, &flow.browser).await;

    let response = post_form(
        &app,
        &flow.browser,
        "/account/password",
        &[
            ("csrf_token", &csrf),
            ("current_password", "not my password"),
            ("new_password", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_page_headers(response.headers(), "wrong current password");
    let html = html_unescape(&response.text().await.unwrap());
    assert!(
        html.contains("Your current password is not correct."),
        "{html}"
    );
    assert!(
        html.contains("Test MCP Client"),
        "the rest of the page shows too"
    );

    let response = post_form(
        &app,
        &flow.browser,
        "/account/password",
        &[
            ("csrf_token", &csrf),
            ("current_password", PASSWORD),
            ("new_password", "short"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.unwrap();
    assert!(html.contains("at least 8 characters"), "{html}");

    // Nothing changed.
    assert_ne!(session_of(&app, &other).await, Value::Null);
    assert_eq!(sign_in(&app, &email, PASSWORD).await.0, StatusCode::OK);
}

#[tokio::test]
async fn s14_sign_out_everywhere_kills_tokens() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let email = session_of(&app, &flow.browser).await["user"]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, other) = sign_in(&app, &email, PASSWORD).await;
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK
    );

    let csrf = account_csrf(&app, &flow.browser).await;
    let response = post_form(
        &app,
        &flow.browser,
        "/account/sessions/revoke-all",
        &[("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/sign-in");
    assert!(
        set_cookies(&response)
            .iter()
            .any(|c| c.starts_with("mcpauth.session_token=;")),
        "the session cookie is cleared"
    );

    assert_eq!(session_of(&app, &flow.browser).await, Value::Null);
    assert_eq!(session_of(&app, &other).await, Value::Null);
    assert_tokens_dead(&app, &flow).await;
    let response = flow.browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // The password still works: signing out everywhere is not a lock-out.
    assert_eq!(sign_in(&app, &email, PASSWORD).await.0, StatusCode::OK);
}

#[tokio::test]
async fn s14_disabled_client_tokens_stop_working() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK
    );
    let store = store_of(&app).await;
    assert!(
        store
            .set_client_disabled(&flow.client_id, true, app.clock.now())
            .await
            .unwrap()
    );
    // Disabled by another handle on the database, as the admin CLI would.
    after_revocation_check().await;
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = refresh(&app, &flow).await;
    assert!(status.is_client_error(), "no refresh for a disabled client");
}

#[tokio::test]
async fn s14_deleted_user_tokens_stop_working() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK
    );
    let user_id = session_of(&app, &flow.browser).await["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let store = store_of(&app).await;
    assert!(store.delete_user(&user_id).await.unwrap());
    // Deleted by another handle on the database, as the admin CLI would.
    after_revocation_check().await;
    assert_tokens_dead(&app, &flow).await;
    let response = flow.browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "no session either"
    );
}

// ---------------------------------------------------------------------------------------------
// S18, S25.

#[tokio::test]
async fn s18_account_page_cannot_be_framed() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let (status, headers, _) = get_page(&browser, &app.url("/account")).await;
    assert_eq!(status, StatusCode::OK);
    assert_page_headers(&headers, "GET /account");

    let (status, headers, _) = get_page(&client(), &app.url("/account")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_page_headers(&headers, "GET /account signed out");

    let csrf = account_csrf(&app, &browser).await;
    let response = post_form(
        &app,
        &browser,
        "/account/sessions/revoke-others",
        &[("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_page_headers(response.headers(), "POST /account/sessions/revoke-others");
}

#[tokio::test]
async fn s25_account_forms_need_csrf() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let email = session_of(&app, &flow.browser).await["user"]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, other) = sign_in(&app, &email, PASSWORD).await;
    let csrf = account_csrf(&app, &flow.browser).await;
    let forms: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "/account/revoke",
            vec![("client_id", flow.client_id.as_str())],
        ),
        ("/account/sessions/revoke-others", vec![]),
        ("/account/sessions/revoke-all", vec![]),
        (
            "/account/password",
            vec![
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        ),
    ];
    for (path, fields) in &forms {
        // No token, a wrong token, and the right token from another site.
        let cases: [(&str, Option<&str>, Option<&str>); 3] = [
            ("no token", None, None),
            ("wrong token", Some("forged"), None),
            ("cross-site", Some(csrf.as_str()), Some("cross-site")),
        ];
        for (what, token, site) in cases {
            let mut form = fields.clone();
            if let Some(token) = token {
                form.push(("csrf_token", token));
            }
            let mut request = flow.browser.post(app.url(path)).form(&form);
            request = match site {
                Some(site) => request
                    .header("sec-fetch-site", site)
                    .header("origin", "https://evil.test"),
                None => request.header("origin", &app.base),
            };
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{path}, {what}: refused"
            );
            assert_page_headers(response.headers(), path);
        }
    }
    // Nothing happened.
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK
    );
    assert_ne!(session_of(&app, &flow.browser).await, Value::Null);
    assert_ne!(session_of(&app, &other).await, Value::Null);
    assert_eq!(sign_in(&app, &email, PASSWORD).await.0, StatusCode::OK);

    // Without a session a (valid) post goes to sign-in, and changes nothing.
    let anonymous = browser();
    let (_, _, html) = get_page(&anonymous, &app.url("/sign-in")).await;
    let csrf = input_value(&html, "csrf_token").unwrap();
    let response = post_form(
        &app,
        &anonymous,
        "/account/revoke",
        &[("csrf_token", &csrf), ("client_id", &flow.client_id)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/sign-in?return_to=/account");
    assert_eq!(
        app.session_status(access_token(&flow)).await,
        StatusCode::OK
    );
}

// ---------------------------------------------------------------------------------------------
// S20: no open redirector.

const HOSTILE: [&str; 10] = [
    "//evil.test",
    "https://evil.test",
    "/\\evil.test",
    "/%5Cevil.test",
    "/%5cevil.test",
    "\\\\evil.test",
    "javascript:alert(1)",
    "/%2F/evil.test",
    "/\t/evil.test",
    "http:/evil.test",
];

#[tokio::test]
async fn s20_return_to_only_accepts_same_origin_paths() {
    let app = spawn_app().await;
    let email = "s20@example.com";
    assert_eq!(app.sign_up(&client(), email).await.status(), StatusCode::OK);

    for hostile in HOSTILE {
        // The sign-in page does not carry it.
        let anonymous = browser();
        let url = reqwest::Url::parse_with_params(&app.url("/sign-in"), [("return_to", hostile)])
            .unwrap();
        let (status, _, html) = get_page(&anonymous, url.as_str()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(input_value(&html, "return_to"), None, "{hostile:?}");

        // The sign-in form ignores it.
        let csrf = input_value(&html, "csrf_token").unwrap();
        let response = post_form(
            &app,
            &anonymous,
            "/sign-in",
            &[
                ("email", email),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
                ("return_to", hostile),
            ],
        )
        .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{hostile:?}");
        assert_eq!(location(&response), "/", "{hostile:?}");

        // Signed in, /sign-in ignores it.
        let response = anonymous.get(url.as_str()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{hostile:?}");
        assert_eq!(location(&response), "/", "{hostile:?}");

        // Sign-out ignores it.
        let response = post_form(
            &app,
            &anonymous,
            "/sign-out",
            &[("csrf_token", &csrf), ("return_to", hostile)],
        )
        .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{hostile:?}");
        assert_eq!(location(&response), "/sign-in", "{hostile:?}");
    }

    // Written straight into the query: `%5C` decodes to a backslash, `%2F` to a slash.
    let browser = app.signed_in_browser().await;
    for raw in [
        "/%5Cevil.test",
        "%2F%2Fevil.test",
        "/%2F%2Fevil.test",
        "%5C%5Cevil.test",
        "https%3A%2F%2Fevil.test",
        "/%255Cevil.test",
        "/%09/evil.test",
    ] {
        let response = browser
            .get(app.url(&format!("/sign-in?return_to={raw}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{raw}");
        assert_eq!(location(&response), "/", "{raw}");
    }

    // Same-origin paths are followed.
    for path in ["/account", "/account?done=revoked", "/"] {
        let url =
            reqwest::Url::parse_with_params(&app.url("/sign-in"), [("return_to", path)]).unwrap();
        let response = browser.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), path);
    }
    let csrf = account_csrf(&app, &browser).await;
    let response = post_form(
        &app,
        &browser,
        "/sign-out",
        &[
            ("csrf_token", &csrf),
            ("return_to", "/sign-in?return_to=/account"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/sign-in?return_to=/account");
    assert_eq!(session_of(&app, &browser).await, Value::Null);
}
