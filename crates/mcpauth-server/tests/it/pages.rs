//! The built-in HTML pages (SPEC §2, §5.3): sign-in, sign-up and consent forms with CSRF tokens,
//! 303 after credential posts (S19), framing and referrer protection (S18, S23), cross-site form
//! posts refused (S25), and CORS only where browsers call cross-origin (S17).

use crate::common::*;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Client, Response, StatusCode};

/// True when the response starts a session (sets a non-empty session cookie).
fn sets_session(response: &Response) -> bool {
    set_cookies(response).iter().any(|c| {
        c.starts_with("mcpauth.session_token=") && !c.starts_with("mcpauth.session_token=;")
    })
}

/// Registers a client and sends an anonymous browser to `/authorize`; returns the browser, the
/// client id and the login page it was sent to.
async fn sent_to_login(app: &TestApp) -> (Client, String, String) {
    let browser = browser();
    let client_id = app.register_public(REDIRECT_URI).await;
    let (_, challenge) = pkce();
    let response = app
        .authorize(
            &browser,
            &TestApp::authorize_params(&client_id, &challenge, "openid mcp:tools", "st"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let login = location(&response);
    assert!(login.starts_with("/sign-in?"), "{login}");
    (browser, client_id, login)
}

/// A signed-in browser sent to the consent page for a fresh client; returns it and the page's
/// path.
async fn at_consent(app: &TestApp, state: &str) -> (Client, String) {
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let (_, challenge) = pkce();
    let response = app
        .authorize(
            &browser,
            &TestApp::authorize_params(&client_id, &challenge, "openid mcp:tools", state),
        )
        .await;
    let consent = location(&response);
    assert!(consent.starts_with("/consent?"), "{consent}");
    (browser, consent)
}

fn assert_frame_protected(headers: &HeaderMap, what: &str) {
    let csp = headers
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"))
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert_eq!(
        headers.get("x-frame-options").map(|v| v.to_str().unwrap()),
        Some("DENY"),
        "{what}"
    );
}

// ---------------------------------------------------------------------------------------------
// Forms and S19.

#[tokio::test]
async fn s19_sign_in_form_resumes_authorization_with_303() {
    let app = spawn_app().await;
    let email = existing_user(&app).await;
    let (browser, client_id, login) = sent_to_login(&app).await;

    let (status, headers, html) = get_page(&browser, &app.url(&login)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        html_unescape(&html).contains("Test MCP Client"),
        "names the client"
    );
    let csrf = input_value(&html, "csrf_token").expect("a csrf_token field");
    let authorize_query = input_value(&html, "authorize_query").expect("an authorize_query field");
    assert!(
        !authorize_query.is_empty() && !authorize_query.contains('&'),
        "the form carries the request, signed and opaque"
    );

    let response = browser
        .post(app.url("/sign-in"))
        .header("origin", &app.base)
        .form(&[
            ("email", email.as_str()),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
            ("authorize_query", &authorize_query),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "303, never 307");
    assert!(sets_session(&response));
    let target = location(&response);
    assert!(target.starts_with("/consent?"), "{target}");
    assert_eq!(query_of(&target)["client_id"], client_id);
}

#[tokio::test]
async fn s19_sign_up_form_answers_303() {
    let app = spawn_app().await;
    let browser = browser();
    let (status, _, html) = get_page(&browser, &app.url("/sign-up")).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = input_value(&html, "csrf_token").expect("a csrf_token field");
    assert!(input_value(&html, "authorize_query").is_none());

    let response = browser
        .post(app.url("/sign-up"))
        .header("origin", &app.base)
        .form(&[
            ("name", "Form User"),
            ("email", "form-user@example.com"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
    assert!(sets_session(&response));

    let session: serde_json::Value = browser
        .get(app.url("/api/auth/get-session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["user"]["email"], "form-user@example.com");
    assert_eq!(session["user"]["name"], "Form User");
}

#[tokio::test]
async fn s19_sign_up_form_resumes_authorization_with_303() {
    let app = spawn_app().await;
    let (browser, client_id, login) = sent_to_login(&app).await;
    let query = login.trim_start_matches("/sign-in?");
    let (status, _, html) = get_page(&browser, &app.url(&format!("/sign-up?{query}"))).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = input_value(&html, "csrf_token").unwrap();
    let authorize_query = input_value(&html, "authorize_query").unwrap();
    assert!(!authorize_query.is_empty());

    let response = browser
        .post(app.url("/sign-up"))
        .header("origin", &app.base)
        .form(&[
            ("name", "New User"),
            ("email", "new-user@example.com"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
            ("authorize_query", &authorize_query),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let target = location(&response);
    assert!(target.starts_with("/consent?"), "{target}");
    assert_eq!(query_of(&target)["client_id"], client_id);
}

#[tokio::test]
async fn consent_page_describes_the_request_and_allow_answers_303_with_a_code() {
    let app = spawn_app().await;
    let (browser, consent) = at_consent(&app, "page-state").await;

    let (status, headers, html) = get_page(&browser, &app.url(&consent)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let text = html_unescape(&html);
    assert!(text.contains("Test MCP Client"), "shows the client name");
    assert!(text.contains("localhost:9999"), "shows the redirect host");
    assert!(text.contains("Confirm who you are"), "describes openid");
    assert!(
        text.contains("Use this server's MCP tools"),
        "describes mcp:tools"
    );
    let csrf = input_value(&html, "csrf_token").unwrap();
    let consent_code = input_value(&html, "consent_code").unwrap();
    assert_eq!(consent_code, query_of(&consent)["consent_code"]);

    let response = browser
        .post(app.url("/consent"))
        .header("origin", &app.base)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("consent_code", &consent_code),
            ("accept", "true"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let target = location(&response);
    assert!(target.starts_with(&format!("{REDIRECT_URI}?")), "{target}");
    let query = query_of(&target);
    assert!(query.contains_key("code"));
    assert_eq!(query["state"], "page-state");
    assert_eq!(query["iss"], app.base);
}

#[tokio::test]
async fn consent_page_deny_answers_303_with_access_denied() {
    let app = spawn_app().await;
    let (browser, consent) = at_consent(&app, "deny-state").await;
    let (_, _, html) = get_page(&browser, &app.url(&consent)).await;
    let csrf = input_value(&html, "csrf_token").unwrap();
    let consent_code = input_value(&html, "consent_code").unwrap();

    let response = browser
        .post(app.url("/consent"))
        .header("origin", &app.base)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("consent_code", &consent_code),
            ("accept", "false"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let target = location(&response);
    assert!(target.starts_with(&format!("{REDIRECT_URI}?")), "{target}");
    let query = query_of(&target);
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], "deny-state");
    assert!(!query.contains_key("code"));
}

#[tokio::test]
async fn wrong_credentials_rerender_the_sign_in_page_with_401() {
    let app = spawn_app().await;
    let email = existing_user(&app).await;
    let browser = browser();
    let (_, _, html) = get_page(&browser, &app.url("/sign-in")).await;
    let csrf = input_value(&html, "csrf_token").unwrap();

    let response = browser
        .post(app.url("/sign-in"))
        .header("origin", &app.base)
        .form(&[
            ("email", email.as_str()),
            ("password", "not the password"),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("location").is_none());
    assert!(
        !sets_session(&response),
        "no session: {:?}",
        set_cookies(&response)
    );
    let html = response.text().await.unwrap();
    assert!(html.contains("role=\"alert\""), "shows an error");
    assert!(html_unescape(&html).contains("invalid email or password"));
    assert!(
        input_value(&html, "csrf_token").is_some(),
        "the form can be sent again"
    );

    let session = browser
        .get(app.url("/api/auth/get-session"))
        .send()
        .await
        .unwrap();
    assert_eq!(session.text().await.unwrap(), "null");
}

#[tokio::test]
async fn stylesheet_is_served_as_css() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/assets/mcpauth.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css"),
        "{:?}",
        response.headers()[CONTENT_TYPE]
    );
    assert!(!response.text().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// S18, S23: headers on pages.

/// Every page S18 and S23 name: sign-in, sign-up, a real consent page, and the authorize error
/// page.
async fn page_headers(app: &TestApp) -> Vec<(&'static str, StatusCode, HeaderMap)> {
    let mut out = Vec::new();
    let browser = browser();
    for (what, path) in [("sign-in", "/sign-in"), ("sign-up", "/sign-up")] {
        let (status, headers, _) = get_page(&browser, &app.url(path)).await;
        out.push((what, status, headers));
    }
    let (browser, consent) = at_consent(app, "st").await;
    let (status, headers, _) = get_page(&browser, &app.url(&consent)).await;
    out.push(("consent", status, headers));
    let (status, headers, _) = get_page(
        &browser,
        &app.url(&format!(
            "{AUTHORIZE}?response_type=code&client_id=unknown&redirect_uri=https%3A%2F%2Fevil.test%2F"
        )),
    )
    .await;
    out.push(("authorize error", status, headers));
    out
}

#[tokio::test]
async fn s18_pages_refuse_framing() {
    let app = spawn_app().await;
    let pages = page_headers(&app).await;
    assert_eq!(pages.len(), 4);
    for (what, status, headers) in pages {
        let expected = if what == "authorize error" {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        assert_eq!(status, expected, "{what}");
        assert_frame_protected(&headers, what);
    }
}

#[tokio::test]
async fn s23_pages_send_no_referrer() {
    let app = spawn_app().await;
    for (what, _, headers) in page_headers(&app).await {
        assert_eq!(
            headers.get("referrer-policy").map(|v| v.to_str().unwrap()),
            Some("no-referrer"),
            "{what}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// S25: CSRF on form posts.

/// A browser that holds a CSRF cookie, and the token of the sign-in form.
async fn sign_in_form(app: &TestApp) -> (Client, String) {
    let browser = browser();
    let (_, _, html) = get_page(&browser, &app.url("/sign-in")).await;
    (browser, input_value(&html, "csrf_token").unwrap())
}

async fn post_sign_in(
    app: &TestApp,
    browser: &Client,
    email: &str,
    csrf: Option<&str>,
    extra_headers: &[(&str, &str)],
) -> Response {
    let mut form = vec![("email", email), ("password", PASSWORD)];
    if let Some(csrf) = csrf {
        form.push(("csrf_token", csrf));
    }
    let mut request = browser.post(app.url("/sign-in")).form(&form);
    for (name, value) in extra_headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn s25_form_post_without_csrf_token_is_refused() {
    let app = spawn_app().await;
    let email = existing_user(&app).await;
    let (browser, _) = sign_in_form(&app).await;
    let response = post_sign_in(&app, &browser, &email, None, &[("origin", &app.base)]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!sets_session(&response));

    // A forged token is no better.
    let response = post_sign_in(&app, &browser, &email, Some("forged"), &[]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!sets_session(&response));
}

#[tokio::test]
async fn s25_csrf_token_is_bound_to_the_browser() {
    let app = spawn_app().await;
    let email = existing_user(&app).await;
    let (_, someone_elses_token) = sign_in_form(&app).await;
    let (victim, _) = sign_in_form(&app).await;
    let response = post_sign_in(&app, &victim, &email, Some(&someone_elses_token), &[]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!sets_session(&response));

    // Without the page's cookie at all, a token means nothing.
    let response = post_sign_in(&app, &client(), &email, Some(&someone_elses_token), &[]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn s25_form_post_from_another_origin_is_refused() {
    let app = spawn_app().await;
    let email = existing_user(&app).await;
    let (browser, csrf) = sign_in_form(&app).await;
    let response = post_sign_in(
        &app,
        &browser,
        &email,
        Some(&csrf),
        &[("origin", "https://evil.test")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(!sets_session(&response));

    // The same post from this origin works: only the origin made the difference.
    let response = post_sign_in(
        &app,
        &browser,
        &email,
        Some(&csrf),
        &[("origin", &app.base)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(sets_session(&response));
}

#[tokio::test]
async fn s25_form_post_marked_cross_site_is_refused() {
    let app = spawn_app().await;
    let email = existing_user(&app).await;
    let (browser, csrf) = sign_in_form(&app).await;
    for site in ["cross-site", "same-site"] {
        let response = post_sign_in(
            &app,
            &browser,
            &email,
            Some(&csrf),
            &[("sec-fetch-site", site)],
        )
        .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{site}");
        assert!(!sets_session(&response), "{site}");
    }
    let response = post_sign_in(
        &app,
        &browser,
        &email,
        Some(&csrf),
        &[("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn s25_cross_site_consent_post_is_refused_and_grants_nothing() {
    let app = spawn_app().await;
    let (browser, consent) = at_consent(&app, "st").await;
    let (_, _, html) = get_page(&browser, &app.url(&consent)).await;
    let csrf = input_value(&html, "csrf_token").unwrap();
    let consent_code = input_value(&html, "consent_code").unwrap();

    let forged = browser
        .post(app.url("/consent"))
        .header("origin", "https://evil.test")
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("consent_code", &consent_code),
            ("accept", "true"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(forged.headers().get("location").is_none());

    let no_token = browser
        .post(app.url("/consent"))
        .form(&[("consent_code", consent_code.as_str()), ("accept", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);

    // The refused posts did not spend the request: the user can still decide.
    let target = app.approve(&browser, &consent, true).await;
    assert!(query_of(&target).contains_key("code"), "{target}");
}

// ---------------------------------------------------------------------------------------------
// S17: CORS only where browsers call cross-origin.

async fn preflight(app: &TestApp, path: &str, method: &str) -> Response {
    app.http
        .request(reqwest::Method::OPTIONS, app.url(path))
        .header("origin", "https://inspector.test")
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn s17_cors_preflight_on_metadata_register_and_token() {
    let app = spawn_app().await;
    for (path, method) in [
        ("/api/auth/mcp/token", "POST"),
        ("/api/auth/mcp/register", "POST"),
        ("/.well-known/oauth-authorization-server", "GET"),
        ("/.well-known/oauth-protected-resource", "GET"),
    ] {
        let response = preflight(&app, path, method).await;
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        let allowed = response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(
            matches!(allowed.as_deref(), Some("*" | "https://inspector.test")),
            "{path}: {allowed:?}"
        );
    }
}

#[tokio::test]
async fn s17_no_cors_on_authorize_login_and_consent() {
    let app = spawn_app().await;
    for path in [
        AUTHORIZE,
        "/sign-in",
        "/sign-up",
        "/consent",
        "/api/auth/sign-in/email",
        "/api/auth/sign-up/email",
        "/api/auth/oauth2/consent",
    ] {
        for method in ["GET", "POST"] {
            let response = preflight(&app, path, method).await;
            assert!(
                response
                    .headers()
                    .get("access-control-allow-origin")
                    .is_none(),
                "{path} {method}: {:?}",
                response.headers()
            );
            assert!(
                response
                    .headers()
                    .get("access-control-allow-credentials")
                    .is_none(),
                "{path} {method}"
            );
        }
        let response = app
            .http
            .get(app.url(path))
            .header("origin", "https://inspector.test")
            .send()
            .await
            .unwrap();
        assert!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "GET {path}: {:?}",
            response.headers()
        );
    }
}

#[tokio::test]
async fn pages_escape_client_names_and_reflected_parameters() {
    let app = spawn_app().await;
    let evil = "<script>alert(1)</script>";
    let client = app
        .register(serde_json::json!({
            "client_name": evil,
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let client_id = client["client_id"].as_str().unwrap();
    let (_, challenge) = pkce();
    let state = "\"><script>alert(2)</script>";
    let params = TestApp::authorize_params(client_id, &challenge, "openid", state);

    let anonymous = browser();
    let login = location(&app.authorize(&anonymous, &params).await);
    assert!(login.starts_with("/sign-in?"), "{login}");
    let (status, _, html) = get_page(&anonymous, &app.url(&login)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("<script"), "sign-in page: {html}");
    let carried = input_value(&html, "authorize_query").unwrap();
    assert!(
        carried
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "the carried request is opaque and needs no escaping: {carried}"
    );
    assert!(!carried.contains("script"));

    let signed_in = app.signed_in_browser().await;
    let consent = location(&app.authorize(&signed_in, &params).await);
    assert!(consent.starts_with("/consent?"), "{consent}");
    let (status, _, html) = get_page(&signed_in, &app.url(&consent)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("<script"), "consent page: {html}");
    assert!(
        html_unescape(&html).contains(evil),
        "the name is shown, as text"
    );
}

#[tokio::test]
async fn a_forged_authorize_query_in_the_sign_in_form_is_not_resumed() {
    let app = spawn_app().await;
    let email = existing_user(&app).await;
    let (browser, _, login) = sent_to_login(&app).await;
    let (_, _, html) = get_page(&browser, &app.url(&login)).await;
    let csrf = input_value(&html, "csrf_token").unwrap();
    // The raw query, as an attacker could write it into a form, is not a signed request.
    let raw_query = login.trim_start_matches("/sign-in?").to_owned();
    let response = browser
        .post(app.url("/sign-in"))
        .form(&[
            ("email", email.as_str()),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
            ("authorize_query", &raw_query),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
}
