//! What the database holds (SECURITY S24: only hashes of secrets) and that it is the only
//! state (SPEC §7: a restart loses no token, consent or client; instances share one database).

use crate::common::*;
use reqwest::header::SET_COOKIE;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

/// The value of a cookie set by `response`.
fn set_cookie_value(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, v)| k.ends_with(name) && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

fn str_of(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is a string in {value}"))
        .to_owned()
}

/// Authorizes `client_id` in `browser`, approving consent; returns (consent_code, code).
async fn authorize_with_consent(
    app: &TestApp,
    browser: &Client,
    client_id: &str,
    challenge: &str,
) -> (String, String) {
    let params = TestApp::authorize_params(client_id, challenge, "openid mcp:tools", "st");
    let response = app.authorize(browser, &params).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let consent = location(&response);
    assert!(consent.starts_with("/consent"), "{consent}");
    let consent_code = query_of(&consent)["consent_code"].clone();
    let target = app.approve(browser, &consent, true).await;
    (consent_code, query_of(&target)["code"].clone())
}

#[tokio::test]
async fn s24_no_secret_is_stored_in_the_clear() {
    let app = spawn_app().await;
    let mut secrets: Vec<(&str, String)> = vec![("password", PASSWORD.to_owned())];

    // A user signs up, then signs in again elsewhere: two session cookies.
    let browser = browser();
    let email = "storage@example.com";
    let signed_up = app.sign_up(&browser, email).await;
    assert_eq!(signed_up.status(), StatusCode::OK);
    secrets.push((
        "session cookie (sign-up)",
        set_cookie_value(&signed_up, "session_token").expect("a session cookie"),
    ));
    let signed_in = client()
        .post(app.url("/api/auth/sign-in/email"))
        .header("origin", &app.base)
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::OK);
    secrets.push((
        "session cookie (sign-in)",
        set_cookie_value(&signed_in, "session_token").expect("a session cookie"),
    ));

    // A public client: consent, code, exchange, refresh (and a retried refresh).
    let public_id = app.register_public(REDIRECT_URI).await;
    let (verifier, challenge) = pkce();
    let (consent_code, code) = authorize_with_consent(&app, &browser, &public_id, &challenge).await;
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &public_id),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let first: Value = response.json().await.unwrap();
    let rt1 = str_of(&first, "refresh_token");
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt1.as_str()),
        ("client_id", public_id.as_str()),
    ];
    let response = app.token(&refresh).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second: Value = response.json().await.unwrap();
    assert_eq!(app.token(&refresh).await.status(), StatusCode::OK, "retry");
    secrets.extend([
        ("PKCE verifier", verifier),
        ("consent_code", consent_code),
        ("code", code),
        ("access token 1", str_of(&first, "access_token")),
        ("refresh token 1", rt1.clone()),
        ("access token 2", str_of(&second, "access_token")),
        ("refresh token 2", str_of(&second, "refresh_token")),
    ]);

    // A confidential client: its secret, consent, code and tokens.
    let confidential = app
        .register(json!({
            "client_name": "Confidential",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .await;
    let confidential_id = str_of(&confidential, "client_id");
    let client_secret = str_of(&confidential, "client_secret");
    let (verifier, challenge) = pkce();
    let (consent_code, code) =
        authorize_with_consent(&app, &browser, &confidential_id, &challenge).await;
    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth(&confidential_id, Some(&client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let third: Value = response.json().await.unwrap();
    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth(&confidential_id, Some(&client_secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", str_of(&third, "refresh_token").as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let fourth: Value = response.json().await.unwrap();
    secrets.extend([
        ("client secret", client_secret),
        ("PKCE verifier (confidential)", verifier),
        ("consent_code (confidential)", consent_code),
        ("code (confidential)", code),
        ("access token 3", str_of(&third, "access_token")),
        ("refresh token 3", str_of(&third, "refresh_token")),
        ("access token 4", str_of(&fourth, "access_token")),
        ("refresh token 4", str_of(&fourth, "refresh_token")),
    ]);

    for (what, secret) in &secrets {
        assert!(secret.len() >= 20, "{what} is a real secret: {secret:?}");
    }

    // Every value of every table, as text or blob.
    let stored = app.db_values().await;
    let tables: std::collections::BTreeSet<&str> =
        stored.iter().map(|v| v.table.as_str()).collect();
    for table in ["user", "session", "oauthApplication", "oauthAccessToken"] {
        assert!(tables.contains(table), "{table} has rows: {tables:?}");
    }
    // The scan sees the data: identifiers that are not secret are there.
    for visible in [email, public_id.as_str(), confidential_id.as_str()] {
        assert!(
            stored.iter().any(|v| v.value.contains(visible)),
            "{visible} is in the database"
        );
    }
    for value in &stored {
        for (what, secret) in &secrets {
            assert!(
                !value.value.contains(secret.as_str()),
                "the {what} is stored in the clear in {}.{}",
                value.table,
                value.column
            );
        }
    }

    // And nowhere in the files either (free pages, the write-ahead log).
    let mut files = vec![app.db_path.clone()];
    for suffix in ["-wal", "-journal"] {
        let mut name = app.db_path.clone().into_os_string();
        name.push(suffix);
        files.push(name.into());
    }
    for file in files {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        for (what, secret) in &secrets {
            assert!(
                !bytes
                    .windows(secret.len())
                    .any(|window| window == secret.as_bytes()),
                "the {what} is in {}",
                file.display()
            );
        }
    }
}

#[tokio::test]
async fn restart_keeps_tokens_clients_sessions_and_consent() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let access = str_of(&flow.tokens, "access_token");
    let refresh_token = str_of(&flow.tokens, "refresh_token");
    let confidential = app
        .register(json!({
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .await;
    let base = app.base.clone();

    let app = app.restart(|_| {}).await;
    assert_eq!(app.base, base, "same issuer after the restart");

    assert_eq!(
        app.session_status(&access).await,
        StatusCode::OK,
        "the access token survives"
    );
    let refreshed = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
            ("client_id", &flow.client_id),
        ])
        .await;
    assert_eq!(
        refreshed.status(),
        StatusCode::OK,
        "the refresh token survives"
    );

    // The confidential client and its secret survive: authentication passes, the grant fails.
    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth(
            confidential["client_id"].as_str().unwrap(),
            Some(confidential["client_secret"].as_str().unwrap()),
        )
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "unknown"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "invalid_grant");

    // The browser session and the consent survive: the next authorization needs no prompt.
    let session = flow
        .browser
        .get(app.url("/api/auth/get-session"))
        .send()
        .await
        .unwrap();
    let session: Value = session.json().await.unwrap();
    assert!(session["user"]["id"].is_string(), "signed in: {session}");
    let (_, challenge) = pkce();
    let response = app
        .authorize(
            &flow.browser,
            &TestApp::authorize_params(&flow.client_id, &challenge, "openid mcp:tools", "st"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let target = location(&response);
    assert!(
        target.starts_with(REDIRECT_URI) && query_of(&target).contains_key("code"),
        "consent remembered: {target}"
    );
}

#[tokio::test]
async fn second_instance_on_the_same_database_accepts_tokens() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let access = str_of(&flow.tokens, "access_token");
    let resource = app.resource();
    let other = spawn_app_on(&app.db_path, |s| s.resource = Some(resource)).await;
    assert_ne!(other.base, app.base);
    assert_eq!(other.session_status(&access).await, StatusCode::OK);
    // A refresh on one instance rotates for both.
    let refresh_token = str_of(&flow.tokens, "refresh_token");
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("client_id", flow.client_id.as_str()),
    ];
    assert_eq!(other.token(&refresh).await.status(), StatusCode::OK);
    let retried: Value = app.token(&refresh).await.json().await.unwrap();
    assert!(
        retried.get("access_token").is_some(),
        "a retry within the grace window gets the same answer on the other instance: {retried}"
    );
}
