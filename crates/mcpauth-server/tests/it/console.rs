//! The operator's console and its API (SECURITY A1): every console URL answers anyone but an
//! admin exactly as an unknown path does (404); an admin's stale sign-in is sent to sign in
//! again and back; posts need this origin and the CSRF token (pages) or a JSON body (API); an
//! access token with `mcpauth:admin` works for the API, never advertised; every action is
//! audited with the acting admin; nothing secret is rendered; `admin_bind` keeps the console off
//! the public listener.

use std::sync::Arc;

use mcpauth_core::model::AuditFilter;
use mcpauth_core::{Clock, Store};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

const CONSOLE: &str = "/api/auth/admin";

async fn store_of(app: &TestApp) -> Arc<dyn Store> {
    mcpauth_server::open_store(&format!("sqlite://{}", app.db_path.display()))
        .await
        .unwrap()
}

async fn user_id(store: &Arc<dyn Store>, email: &str) -> String {
    store.user_by_email(email).await.unwrap().unwrap().0.id
}

/// A browser signed in (just now) as a fresh user made an admin in the store; and the email.
async fn admin_browser(app: &TestApp) -> (Client, String) {
    let browser = browser();
    let email = unique_email();
    assert_eq!(app.sign_up(&browser, &email).await.status(), StatusCode::OK);
    let store = store_of(app).await;
    let id = user_id(&store, &email).await;
    assert!(store.set_admin(&id, true, app.clock.now()).await.unwrap());
    (browser, email)
}

/// The fallback's answer to a path nothing serves: status, body and header names.
async fn unknown_path(app: &TestApp) -> (StatusCode, String, Vec<String>) {
    answer(client().get(app.url("/no-such-path")).send().await.unwrap()).await
}

async fn answer(response: reqwest::Response) -> (StatusCode, String, Vec<String>) {
    let status = response.status();
    let mut names: Vec<String> = response
        .headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k != "date")
        .collect();
    names.sort();
    (status, response.text().await.unwrap(), names)
}

/// Every console route, each with the method it answers and a wrong one.
fn routes(user: &str) -> Vec<(reqwest::Method, String)> {
    use reqwest::Method;
    let mut all = Vec::new();
    for path in [
        String::new(),
        "/users".into(),
        format!("/users/{user}"),
        "/clients".into(),
        "/grants".into(),
        "/audit".into(),
        "/audit/export?format=csv".into(),
        "/api/overview".into(),
        "/api/users".into(),
        format!("/api/users/{user}"),
        "/api/clients".into(),
        "/api/grants".into(),
        "/api/audit".into(),
        "/no-such-console-page".into(),
    ] {
        all.push((Method::GET, path.clone()));
        all.push((Method::POST, path));
    }
    for path in [
        format!("/users/{user}/disable"),
        format!("/users/{user}/delete"),
        "/clients/purge-unused".into(),
        "/grants/revoke".into(),
        format!("/api/users/{user}/disable"),
        "/api/clients/disable".into(),
        "/api/grants/revoke".into(),
    ] {
        all.push((Method::POST, path.clone()));
        all.push((Method::GET, path.clone()));
        all.push((Method::DELETE, path));
    }
    all
}

#[tokio::test]
async fn a1_everyone_but_an_admin_gets_the_unknown_path_404_on_every_console_url() {
    let app = spawn_app().await;
    let expected = unknown_path(&app).await;
    assert_eq!(expected.0, StatusCode::NOT_FOUND);
    let (admin, _) = admin_browser(&app).await;
    let victim = existing_user(&app).await;
    let victim_id = user_id(&store_of(&app).await, &victim).await;

    // A token of an ordinary flow (no mcpauth:admin), and a non-admin's browser.
    let flow = app.full_flow("openid mcp:tools").await;
    let token = flow.tokens["access_token"].as_str().unwrap().to_owned();
    let non_admin = app.signed_in_browser().await;

    for (method, path) in routes(&victim_id) {
        let url = app.url(&format!("{CONSOLE}{path}"));
        let callers: [(&str, reqwest::RequestBuilder); 4] = [
            ("signed out", client().request(method.clone(), &url)),
            ("a non-admin", non_admin.request(method.clone(), &url)),
            (
                "a token without the scope",
                client().request(method.clone(), &url).bearer_auth(&token),
            ),
            (
                "a made-up token",
                client()
                    .request(method.clone(), &url)
                    .bearer_auth("not-a-token"),
            ),
        ];
        for (who, request) in callers {
            let got = answer(
                request
                    .header("origin", &app.base)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(got, expected, "{who}: {method} {path}");
        }
    }
    // The admin sees the pages.
    for path in [
        "",
        "/users",
        "/clients",
        "/grants",
        "/audit",
        "/api/overview",
    ] {
        let (status, headers, _) = get_page(&admin, &app.url(&format!("{CONSOLE}{path}"))).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
    }
    // The victim was not touched by all those posts.
    let store = store_of(&app).await;
    assert!(
        !store
            .user_by_id(&victim_id)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    let admin_actions = store
        .search_audit(
            &AuditFilter {
                kind: Some("admin".into()),
                ..AuditFilter::default()
            },
            0,
            100,
        )
        .await
        .unwrap();
    assert!(admin_actions.is_empty(), "{admin_actions:?}");
}

#[tokio::test]
async fn a1_configured_admins_need_a_verified_address() {
    let email = "ops@example.com";
    let app = spawn_app_with(|s| s.auth.admins = vec![email.to_owned()]).await;
    let browser = browser();
    assert_eq!(app.sign_up(&browser, email).await.status(), StatusCode::OK);
    let (status, _, _) = get_page(&browser, &app.url(CONSOLE)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "anyone could sign up with the address"
    );
    let store = store_of(&app).await;
    let id = user_id(&store, email).await;
    store
        .set_email_verified(&id, app.clock.now())
        .await
        .unwrap();
    let (status, _, html) = get_page(&browser, &app.url(CONSOLE)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Security events"), "{html}");
}

#[tokio::test]
async fn a1_a_stale_admin_session_signs_in_again_and_comes_back() {
    let app = spawn_app().await;
    let (admin, email) = admin_browser(&app).await;
    let non_admin = app.signed_in_browser().await;
    app.clock.advance(901);

    let page = format!("{CONSOLE}/users?q=example");
    let response = admin.get(app.url(&page)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let target = location(&response);
    assert!(
        target.starts_with("/sign-in?reauth=1&return_to="),
        "{target}"
    );
    assert_eq!(query_of(&target)["return_to"], page);
    // The API says so in JSON; a non-admin's stale session still gets the plain 404.
    let api = admin
        .get(app.url(&format!("{CONSOLE}/api/users")))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        api.json::<Value>().await.unwrap()["error"],
        "login_required"
    );
    let (status, _, _) = get_page(&non_admin, &app.url(&page)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The sign-in page shows its form though a session exists, and leads back.
    let (status, _, html) = get_page(&admin, &app.url(&target)).await;
    assert_eq!(status, StatusCode::OK, "the form, not a redirect");
    let csrf = input_value(&html, "csrf_token").unwrap();
    assert_eq!(input_value(&html, "return_to").unwrap(), page);
    let response = admin
        .post(app.url("/sign-in"))
        .header("origin", &app.base)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", email.as_str()),
            ("password", PASSWORD),
            ("return_to", page.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), page);
    let (status, _, _) = get_page(&admin, &app.url(&page)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a1_posts_need_this_origin_and_the_csrf_token() {
    let app = spawn_app().await;
    let (admin, _) = admin_browser(&app).await;
    let victim = existing_user(&app).await;
    let store = store_of(&app).await;
    let victim_id = user_id(&store, &victim).await;
    let (_, _, html) = get_page(&admin, &app.url(&format!("{CONSOLE}/users/{victim_id}"))).await;
    let csrf = input_value(&html, "csrf_token").unwrap();
    let action = app.url(&format!("{CONSOLE}/users/{victim_id}/disable"));

    let no_token = admin
        .post(&action)
        .header("origin", &app.base)
        .form(&[("x", "1")]);
    let wrong_token = admin
        .post(&action)
        .header("origin", &app.base)
        .form(&[("csrf_token", "forged")]);
    let cross_site = admin
        .post(&action)
        .header("origin", "https://evil.example")
        .form(&[("csrf_token", csrf.as_str())]);
    let cross_site_fetch = admin
        .post(&action)
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf_token", csrf.as_str())]);
    for (what, request) in [
        ("no token", no_token),
        ("a wrong token", wrong_token),
        ("another origin", cross_site),
        ("a cross-site fetch", cross_site_fetch),
    ] {
        assert_eq!(
            request.send().await.unwrap().status(),
            StatusCode::FORBIDDEN,
            "{what}"
        );
    }
    // The API, with the session cookie: a form body or another origin is refused.
    let api = app.url(&format!("{CONSOLE}/api/users/{victim_id}/disable"));
    let form = admin
        .post(&api)
        .header("origin", &app.base)
        .form(&[("a", "b")]);
    let other = admin
        .post(&api)
        .header("origin", "https://evil.example")
        .json(&json!({}));
    for request in [form, other] {
        assert_eq!(
            request.send().await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
    }
    assert!(
        !store
            .user_by_id(&victim_id)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );

    let response = admin
        .post(&action)
        .header("origin", &app.base)
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        store
            .user_by_id(&victim_id)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    // The notice it shows was signed by the server; a forged one is not shown.
    let (_, _, html) = get_page(&admin, &app.url(&location(&response))).await;
    assert!(html.contains("is disabled"), "{html}");
    let (_, _, html) = get_page(
        &admin,
        &app.url(&format!("{CONSOLE}/users?notice=Y2xpY2sgaGVyZQ.forged")),
    )
    .await;
    assert!(!html.contains("click here") && !html.contains("role=\"status\""));
}

/// The admin's entries in the audit log of `kind`.
async fn admin_entries(store: &Arc<dyn Store>, kind: &str) -> Vec<Value> {
    store
        .search_audit(
            &AuditFilter {
                kind: Some(kind.into()),
                ..AuditFilter::default()
            },
            0,
            50,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_str(&e.detail).unwrap())
        .collect()
}

#[tokio::test]
async fn a1_actions_work_through_the_api_and_are_audited_with_the_acting_admin() {
    let app = spawn_app().await;
    let (admin, admin_email) = admin_browser(&app).await;
    let store = store_of(&app).await;
    let flow = app.full_flow("openid offline_access").await;
    let token = flow.tokens["access_token"].as_str().unwrap();
    let grants: Value = admin
        .get(app.url(&format!("{CONSOLE}/api/grants?client={}", flow.client_id)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(grants["total"], 1);
    let grant = &grants["grants"][0];
    let user = grant["user_id"].as_str().unwrap().to_owned();
    assert_eq!(app.session_status(token).await, StatusCode::OK);

    let post = |path: String, body: Value| {
        admin
            .post(app.url(&format!("{CONSOLE}/api{path}")))
            .header("origin", &app.base)
            .json(&body)
            .send()
    };
    let revoked: Value = post(
        "/grants/revoke".into(),
        json!({ "grants": [{ "user_id": user, "client_id": flow.client_id }] }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(revoked["revoked"], 1);
    assert_eq!(
        app.session_status(token).await,
        StatusCode::UNAUTHORIZED,
        "the token died"
    );
    let entries = admin_entries(&store, "admin.grant.revoke").await;
    assert_eq!(entries[0]["admin"], admin_email.as_str());
    assert_eq!(entries[0]["via"], "session");

    // Disabling ends the user's browser session; deleting needs the typed email.
    let (status, _, _) = get_page(&flow.browser, &app.url("/account")).await;
    assert_eq!(status, StatusCode::OK);
    let response = post(format!("/users/{user}/disable"), json!({}))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _, _) = get_page(&flow.browser, &app.url("/account")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "signed out");
    let response = post(
        format!("/users/{user}/delete"),
        json!({ "confirm": "nope" }),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(store.user_by_id(&user).await.unwrap().is_some());
    let email = store.user_by_id(&user).await.unwrap().unwrap().email;
    let response = post(format!("/users/{user}/delete"), json!({ "confirm": email }))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(store.user_by_id(&user).await.unwrap().is_none());
    for kind in ["admin.user.disable", "admin.user.delete"] {
        let entries = admin_entries(&store, kind).await;
        assert_eq!(entries.len(), 1, "{kind}");
        assert_eq!(entries[0]["admin"], admin_email.as_str(), "{kind}");
    }
    // Unknown fields and unknown actions are refused cleanly.
    let response = post(format!("/users/{user}/disable"), json!({ "surprise": 1 }))
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "an unknown field"
    );
    let response = post(format!("/users/{user}/disable"), json!({}))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "the user is gone");
    let response = post(
        "/clients/disable".into(),
        json!({ "client_id": flow.client_id, "x": 1 }),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // The audit log filters and pages; the page size is bounded.
    let audit: Value = admin
        .get(app.url(&format!("{CONSOLE}/api/audit?kind=admin&limit=100000")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["limit"], 200);
    assert_eq!(audit["events"].as_array().unwrap().len(), 3);
    let bad = admin
        .get(app.url(&format!("{CONSOLE}/api/audit?from=yesterday")))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a1_an_admin_scoped_token_works_for_the_api_and_is_never_advertised() {
    let app = spawn_app().await;
    let metadata: Value = client()
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !metadata.to_string().contains("mcpauth:admin"),
        "{metadata}"
    );

    // The flow's user is not an admin yet: the scope alone opens nothing.
    let flow = app.full_flow("openid mcpauth:admin").await;
    assert!(
        flow.tokens["scope"]
            .as_str()
            .unwrap()
            .contains("mcpauth:admin"),
        "granted after consent: {}",
        flow.tokens
    );
    let token = flow.tokens["access_token"].as_str().unwrap();
    let users = || {
        client()
            .get(app.url(&format!("{CONSOLE}/api/users?q=example")))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(users().await.unwrap().status(), StatusCode::NOT_FOUND);
    let store = store_of(&app).await;
    let me: Value = client()
        .get(app.url("/api/auth/mcp/get-session"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = me["userId"].as_str().unwrap();
    store.set_admin(id, true, app.clock.now()).await.unwrap();
    let response = users().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(body["total"].as_u64().unwrap() >= 1);

    // A token needs no CSRF token: it is not ambient.
    let other = existing_user(&app).await;
    let other_id = user_id(&store, &other).await;
    let response = client()
        .post(app.url(&format!("{CONSOLE}/api/users/{other_id}/end-sessions")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let entries = admin_entries(&store, "admin.user.end_sessions").await;
    assert_eq!(entries[0]["via"], "token");
    assert_eq!(entries[0]["admin_id"], id);

    // Taken back, the token opens nothing again.
    store.set_admin(id, false, app.clock.now()).await.unwrap();
    assert_eq!(users().await.unwrap().status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a1_nothing_secret_is_rendered_and_input_is_escaped() {
    let app = spawn_app().await;
    let (admin, admin_email) = admin_browser(&app).await;
    let store = store_of(&app).await;
    let flow = app.full_flow("openid offline_access").await;
    let refresh = flow.tokens["refresh_token"].as_str().unwrap();
    let access = flow.tokens["access_token"].as_str().unwrap();
    // A confidential client with a secret, named with markup.
    let confidential = app
        .register(json!({
            "client_name": "<script>alert(1)</script>",
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .await;
    let secret = confidential["client_secret"].as_str().unwrap();
    let secret_hash = store
        .client_by_id(confidential["client_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap()
        .client_secret_hash
        .unwrap();
    let admin_id = user_id(&store, &admin_email).await;
    let flow_user = store
        .grants(None, Some(&flow.client_id), app.clock.now())
        .await
        .unwrap()[0]
        .user_id
        .clone();
    let mut seen = String::new();
    let mut html = String::new();
    for path in [
        String::new(),
        "/users?q=%3Cb%3E%27%25".into(),
        format!("/users/{flow_user}"),
        format!("/users/{admin_id}"),
        "/clients".into(),
        "/grants".into(),
        "/audit".into(),
        "/audit/export?format=json".into(),
        "/audit/export?format=csv".into(),
        "/api/clients".into(),
        format!("/api/users/{flow_user}"),
        "/api/audit".into(),
    ] {
        let (status, _, body) = get_page(&admin, &app.url(&format!("{CONSOLE}{path}"))).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        if !path.contains("api/") && !path.contains("export") {
            html.push_str(&body);
        }
        seen.push_str(&body);
    }
    for secret in [
        secret,
        secret_hash.as_str(),
        refresh,
        access,
        "$argon2",
        PASSWORD,
    ] {
        assert!(!seen.contains(secret), "{secret} was rendered");
    }
    // In the pages (the API's JSON and the exports carry the text as data).
    assert!(!html.contains("<script>alert(1)"), "markup is escaped");
    let shown = html
        .find("alert(1)")
        .map(|i| &html[i.saturating_sub(20)..i + 8]);
    assert!(
        shown.is_some_and(
            |text| text.contains("&#60;script&#62;") || text.contains("&lt;script&gt;")
        ),
        "shown, escaped: {shown:?}"
    );
    assert!(!html.contains("<b>'%"), "the search is escaped");
}

#[tokio::test]
async fn a1_admin_bind_keeps_the_console_off_the_public_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings();
    settings.database_url = format!("sqlite://{}", dir.path().join("mcpauth.db").display());
    settings.admin_bind = Some("127.0.0.1:0".into());
    let clock = mcpauth_core::ManualClock::new();
    let app = mcpauth_server::Application::build(&settings, Some(Arc::new(clock.clone())))
        .await
        .unwrap();
    let public = app.issuer().to_owned();
    let internal = format!("http://localhost:{}", app.console_address().unwrap().port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let store = mcpauth_server::open_store(&settings.database_url)
        .await
        .unwrap();
    // An admin's session from the public sign-in (cookies are per host, not per port).
    let admin = browser();
    let email = unique_email();
    let response = admin
        .post(format!("{public}/api/auth/sign-up/email"))
        .header("origin", &public)
        .json(&json!({ "email": email, "password": PASSWORD, "name": "Ops" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let id = user_id(&store, &email).await;
    store.set_admin(&id, true, clock.now()).await.unwrap();

    let (status, _, _) = get_page(&admin, &format!("{public}{CONSOLE}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not on the public listener");
    let (status, _, html) = get_page(&admin, &format!("{internal}{CONSOLE}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Overview"));
    let (status, _, _) = get_page(&admin, &format!("{internal}/api/auth/mcp/jwks")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "only the console on the internal listener"
    );
    let (status, _, _) = get_page(&client(), &format!("{internal}/sign-in")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "its sign-in page for re-authentication"
    );
    let _ = stop.send(());
}
