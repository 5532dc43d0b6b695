//! The Better Auth–compatible account API (SPEC §2): sign-up, sign-in, sign-out and
//! get-session, their JSON shapes and errors, session cookies (S25) and password handling (S26).

use crate::common::*;
use reqwest::header::{RETRY_AFTER, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

const SIGN_UP: &str = "/api/auth/sign-up/email";
const SIGN_IN: &str = "/api/auth/sign-in/email";
const SIGN_OUT: &str = "/api/auth/sign-out";
const GET_SESSION: &str = "/api/auth/get-session";

async fn post_json(app: &TestApp, client: &Client, path: &str, body: Value) -> Response {
    client
        .post(app.url(path))
        .header("origin", &app.base)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn sign_in(app: &TestApp, client: &Client, email: &str, password: &str) -> Response {
    post_json(
        app,
        client,
        SIGN_IN,
        json!({ "email": email, "password": password }),
    )
    .await
}

/// The `Set-Cookie` line that sets the cookie `name`.
fn cookie_line(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|line| line.starts_with(&format!("{name}=")))
}

/// The attributes of a `Set-Cookie` line, lower-cased, without values.
fn attributes(line: &str) -> Vec<String> {
    line.split(';')
        .skip(1)
        .map(|a| a.split('=').next().unwrap().trim().to_ascii_lowercase())
        .collect()
}

fn attribute<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(';').skip(1).find_map(|a| {
        let (key, value) = a.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

async fn get_session(app: &TestApp, client: &Client) -> Value {
    let response = client.get(app.url(GET_SESSION)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn assert_client_error(response: Response, expected: StatusCode, what: &str) -> Value {
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, expected, "{what}: {body}");
    let body: Value =
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: not JSON: {body}"));
    assert!(body["code"].is_string(), "{what}: {body}");
    assert!(body["message"].is_string(), "{what}: {body}");
    body
}

// ---------------------------------------------------------------------------------------------
// Sign-up.

#[tokio::test]
async fn sign_up_returns_the_user_and_starts_a_session() {
    let app = spawn_app().await;
    let browser = browser();
    let response = post_json(
        &app,
        &browser,
        SIGN_UP,
        json!({ "email": "Ada@Example.com", "password": PASSWORD, "name": "Ada" }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(cookie_line(&response, "mcpauth.session_token").is_some());
    let body: Value = response.json().await.unwrap();
    let user = &body["user"];
    assert!(!user["id"].as_str().unwrap().is_empty(), "{body}");
    assert_eq!(user["email"], "ada@example.com", "emails are normalised");
    assert_eq!(user["name"], "Ada");
    assert_eq!(user["emailVerified"], json!(false));
    assert!(
        user.get("createdAt").is_some() && user.get("updatedAt").is_some(),
        "{body}"
    );
    assert!(user.get("password").is_none(), "never the password: {body}");
    let text = body.to_string();
    assert!(
        !text.contains(PASSWORD) && !text.contains("argon2"),
        "{text}"
    );

    let session = get_session(&app, &browser).await;
    assert_eq!(session["user"]["id"], user["id"]);
}

#[tokio::test]
async fn s25_session_cookie_is_http_only_and_same_site_lax() {
    let app = spawn_app().await;
    let response = app.sign_up(&client(), &unique_email()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let line = cookie_line(&response, "mcpauth.session_token").expect("a session cookie");
    let attrs = attributes(&line);
    assert!(attrs.contains(&"httponly".to_owned()), "{line}");
    assert_eq!(
        attribute(&line, "SameSite").map(str::to_ascii_lowercase),
        Some("lax".into()),
        "{line}"
    );
    assert_eq!(attribute(&line, "Path"), Some("/"), "{line}");
    assert!(
        !attrs.contains(&"secure".to_owned()),
        "no Secure on http: {line}"
    );
    let value = line
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("mcpauth.session_token=");
    assert!(value.len() >= 32, "an unguessable token: {line}");
}

#[tokio::test]
async fn s25_https_issuer_uses_host_prefixed_secure_cookies() {
    let issuer = "https://auth.example.test";
    let (app, address) = spawn_app_with_address(|s| s.issuer = Some(issuer.into())).await;
    assert_eq!(app.base, issuer);
    let response = client()
        .post(format!("http://{address}{SIGN_UP}"))
        .header("origin", issuer)
        .json(&json!({ "email": unique_email(), "password": PASSWORD, "name": "Secure" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        cookie_line(&response, "mcpauth.session_token").is_none(),
        "no unprefixed cookie on https"
    );
    let line = cookie_line(&response, "__Host-mcpauth.session_token").expect("a __Host- cookie");
    let attrs = attributes(&line);
    assert!(attrs.contains(&"secure".to_owned()), "{line}");
    assert!(attrs.contains(&"httponly".to_owned()), "{line}");
    assert_eq!(
        attribute(&line, "SameSite").map(str::to_ascii_lowercase),
        Some("lax".into()),
        "{line}"
    );
    // __Host- requires Path=/ and no Domain (RFC 6265bis §4.1.3.2).
    assert_eq!(attribute(&line, "Path"), Some("/"), "{line}");
    assert!(!attrs.contains(&"domain".to_owned()), "{line}");

    // The pages' CSRF cookie follows the same rule.
    let page = client()
        .get(format!("http://{address}/sign-in"))
        .send()
        .await
        .unwrap();
    let csrf = cookie_line(&page, "__Host-mcpauth.csrf").expect("a __Host- CSRF cookie");
    assert!(attributes(&csrf).contains(&"secure".to_owned()), "{csrf}");
}

#[tokio::test]
async fn duplicate_email_is_422_user_already_exists() {
    let app = spawn_app().await;
    let email = unique_email();
    assert_eq!(
        app.sign_up(&client(), &email).await.status(),
        StatusCode::OK
    );
    let again = post_json(
        &app,
        &client(),
        SIGN_UP,
        json!({ "email": email.to_uppercase(), "password": "another password", "name": "Twin" }),
    )
    .await;
    assert!(cookie_line(&again, "mcpauth.session_token").is_none());
    let body = assert_client_error(again, StatusCode::UNPROCESSABLE_ENTITY, "duplicate").await;
    assert_eq!(body["code"], "USER_ALREADY_EXISTS");

    // The original password still works; the second sign-up changed nothing.
    assert_eq!(
        sign_in(&app, &client(), &email, PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        sign_in(&app, &client(), &email, "another password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn invalid_sign_up_input_is_400() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({ "email": unique_email(), "password": "short", "name": "x" }),
            "PASSWORD_TOO_SHORT",
        ),
        (
            json!({ "email": "not-an-email", "password": PASSWORD, "name": "x" }),
            "INVALID_EMAIL",
        ),
        (
            json!({ "email": "a@b", "password": PASSWORD, "name": "x" }),
            "INVALID_EMAIL",
        ),
        (
            json!({ "email": "a b@example.com", "password": PASSWORD, "name": "x" }),
            "INVALID_EMAIL",
        ),
        (
            json!({ "email": unique_email(), "password": "x".repeat(500), "name": "x" }),
            "PASSWORD_TOO_LONG",
        ),
    ];
    for (body, code) in cases {
        let response = post_json(&app, &client(), SIGN_UP, body.clone()).await;
        assert!(
            cookie_line(&response, "mcpauth.session_token").is_none(),
            "{body}"
        );
        let error = assert_client_error(response, StatusCode::BAD_REQUEST, &body.to_string()).await;
        assert_eq!(error["code"], code, "{body}");
    }
    let db = app.db().await;
    let users: i64 = sqlx::query_scalar(r#"SELECT COUNT(*) FROM "user""#)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(users, 0, "nothing was created");
}

#[tokio::test]
async fn malformed_bodies_are_400_never_5xx() {
    let app = spawn_app().await;
    let http = client();
    for path in [SIGN_UP, SIGN_IN, "/api/auth/oauth2/consent"] {
        let cases: Vec<(&str, &str, Vec<u8>)> = vec![
            ("invalid JSON", "application/json", b"{\"email\": ".to_vec()),
            ("JSON array", "application/json", b"[1, 2]".to_vec()),
            ("JSON string", "application/json", b"\"hi\"".to_vec()),
            (
                "nested object",
                "application/json",
                br#"{"email":{"a":1},"password":"x"}"#.to_vec(),
            ),
            (
                "text/plain",
                "text/plain",
                br#"{"email":"a@b.test","password":"xxxxxxxx"}"#.to_vec(),
            ),
            ("no fields", "application/json", b"{}".to_vec()),
            (
                "invalid UTF-8 form",
                "application/x-www-form-urlencoded",
                b"email=\xff\xfe".to_vec(),
            ),
        ];
        for (what, content_type, body) in cases {
            let response = http
                .post(app.url(path))
                .header("origin", &app.base)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            assert!(!status.is_server_error(), "{path} {what}: {status}");
            if path == "/api/auth/oauth2/consent" {
                // The consent API asks for a session first.
                assert!(status.is_client_error(), "{path} {what}: {status}");
            } else {
                assert_client_error(response, StatusCode::BAD_REQUEST, &format!("{path} {what}"))
                    .await;
            }
        }
    }
    // No content type at all.
    let response = http
        .post(app.url(SIGN_UP))
        .body(r#"{"email":"a@b.test","password":"xxxxxxxx"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------------------------------------
// Sign-in, sessions, sign-out.

#[tokio::test]
async fn sign_in_returns_the_user_and_a_session() {
    let app = spawn_app().await;
    let email = unique_email();
    app.sign_up(&client(), &email).await;
    let browser = browser();
    let response = sign_in(&app, &browser, &email.to_uppercase(), PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(cookie_line(&response, "mcpauth.session_token").is_some());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["redirect"], json!(false));
    assert_eq!(body["user"]["email"], email);
    let session = get_session(&app, &browser).await;
    assert_eq!(session["user"]["email"], email);
}

#[tokio::test]
async fn s26_wrong_password_and_unknown_email_answer_alike() {
    let app = spawn_app().await;
    let email = unique_email();
    app.sign_up(&client(), &email).await;

    let wrong = sign_in(&app, &client(), &email, "wrong password!").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(cookie_line(&wrong, "mcpauth.session_token").is_none());
    let wrong_body = wrong.bytes().await.unwrap();

    let unknown = sign_in(&app, &client(), "nobody@example.com", "wrong password!").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert!(cookie_line(&unknown, "mcpauth.session_token").is_none());
    let unknown_body = unknown.bytes().await.unwrap();

    assert_eq!(
        wrong_body, unknown_body,
        "the answers must not tell which one exists"
    );
    let body: Value = serde_json::from_slice(&wrong_body).unwrap();
    assert_eq!(body["code"], "INVALID_EMAIL_OR_PASSWORD");

    // A malformed address is just another unknown one.
    let malformed = sign_in(&app, &client(), "not-an-email", "wrong password!").await;
    assert_eq!(malformed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(malformed.bytes().await.unwrap(), wrong_body);
}

#[tokio::test]
async fn get_session_answers_the_session_or_null() {
    let app = spawn_app().await;
    let anonymous = client().get(app.url(GET_SESSION)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::OK);
    assert_eq!(anonymous.text().await.unwrap(), "null");

    let browser = browser();
    let email = unique_email();
    let signed_up: Value = app.sign_up(&browser, &email).await.json().await.unwrap();
    let session = get_session(&app, &browser).await;
    assert_eq!(session["user"]["email"], email);
    assert_eq!(session["user"]["id"], signed_up["user"]["id"]);
    assert_eq!(session["session"]["userId"], signed_up["user"]["id"]);
    assert!(session["session"]["id"].is_string());
    assert!(
        session["session"]["expiresAt"].is_number() || session["session"]["expiresAt"].is_string()
    );
    assert!(
        !session.to_string().contains("token\":\""),
        "never the token: {session}"
    );

    // An unknown cookie is no session.
    let forged = client()
        .get(app.url(GET_SESSION))
        .header("cookie", "mcpauth.session_token=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.text().await.unwrap(), "null");
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let app = spawn_app().await;
    let browser = browser();
    let response = app.sign_up(&browser, &unique_email()).await;
    let line = cookie_line(&response, "mcpauth.session_token").unwrap();
    let old_cookie = line.split(';').next().unwrap().to_owned();

    let with_old = || {
        client()
            .get(app.url(GET_SESSION))
            .header("cookie", old_cookie.clone())
            .send()
    };
    let before: Value = with_old().await.unwrap().json().await.unwrap();
    assert!(
        before["user"].is_object(),
        "the captured cookie works: {before}"
    );

    let out = browser
        .post(app.url(SIGN_OUT))
        .header("origin", &app.base)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    let cleared = cookie_line(&out, "mcpauth.session_token").expect("the cookie is cleared");
    assert!(
        cleared.starts_with("mcpauth.session_token=;")
            || attribute(&cleared, "Max-Age") == Some("0"),
        "{cleared}"
    );

    assert_eq!(get_session(&app, &browser).await, Value::Null);
    let after = with_old().await.unwrap();
    assert_eq!(
        after.text().await.unwrap(),
        "null",
        "the old cookie no longer works"
    );
}

// ---------------------------------------------------------------------------------------------
// S26: password storage and brute force.

#[tokio::test]
async fn s26_passwords_are_stored_as_argon2id() {
    let app = spawn_app().await;
    app.sign_up(&client(), &unique_email()).await;
    app.sign_up(&client(), &unique_email()).await;
    let db = app.db().await;
    let hashes: Vec<String> = sqlx::query_scalar(r#"SELECT password FROM "account""#)
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(hashes.len(), 2);
    for hash in &hashes {
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains(PASSWORD), "{hash}");
    }
    assert_ne!(
        hashes[0], hashes[1],
        "salted: the same password hashes differently"
    );
}

async fn limited_app() -> TestApp {
    spawn_app_with(|s| {
        s.rate_limits.enabled = true;
        s.rate_limits.limits.sign_in_per_account = 3;
        s.rate_limits.limits.sign_in_per_ip = 100;
        s.rate_limits.limits.sign_up_per_ip = 100;
        s.rate_limits.limits.window = 60;
    })
    .await
}

#[tokio::test]
async fn s26_failed_sign_ins_per_account_are_rate_limited() {
    let app = limited_app().await;
    let victim = unique_email();
    let bystander = unique_email();
    app.sign_up(&client(), &victim).await;
    app.sign_up(&client(), &bystander).await;

    for attempt in 1..=3 {
        let response = sign_in(&app, &client(), &victim, &format!("guess {attempt}")).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    let limited = sign_in(&app, &client(), &victim, "guess 4").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: i64 = limited.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["code"], "TOO_MANY_REQUESTS");

    // Another account is not locked by the attack on this one.
    assert_eq!(
        sign_in(&app, &client(), &bystander, PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );

    // After the window, the account can sign in again.
    app.clock.advance(61);
    assert_eq!(
        sign_in(&app, &client(), &victim, PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn s26_account_limit_also_stops_the_right_password() {
    // Otherwise the limit only changes how wrong guesses are answered, and a guesser still
    // learns the password when it finally gets a 200.
    let app = limited_app().await;
    let victim = unique_email();
    app.sign_up(&client(), &victim).await;
    for attempt in 1..=4 {
        sign_in(&app, &client(), &victim, &format!("guess {attempt}")).await;
    }
    let response = sign_in(&app, &client(), &victim, PASSWORD).await;
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a locked account does not confirm a correct guess"
    );
    assert!(cookie_line(&response, "mcpauth.session_token").is_none());
}

// ---------------------------------------------------------------------------------------------
// S25: the JSON API refuses other sites.

#[tokio::test]
async fn s25_json_api_refuses_other_origins() {
    let app = spawn_app().await;
    let email = unique_email();
    let browser = browser();
    app.sign_up(&browser, &email).await;

    let posts = [
        (
            SIGN_UP,
            json!({ "email": unique_email(), "password": PASSWORD, "name": "x" }),
        ),
        (SIGN_IN, json!({ "email": email, "password": PASSWORD })),
        (SIGN_OUT, json!({})),
        (
            "/api/auth/oauth2/consent",
            json!({ "accept": true, "consent_code": "x" }),
        ),
    ];
    for (path, body) in &posts {
        for (header, value) in [
            ("origin", "https://evil.test"),
            ("sec-fetch-site", "cross-site"),
        ] {
            let response = browser
                .post(app.url(path))
                .header(header, value)
                .json(body)
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{path} with {header}: {value}"
            );
            assert!(
                cookie_line(&response, "mcpauth.session_token").is_none(),
                "{path}"
            );
        }
    }
    // The cross-site sign-out did not end the session.
    let session = get_session(&app, &browser).await;
    assert_eq!(session["user"]["email"], email);
    let users: i64 = sqlx::query_scalar(r#"SELECT COUNT(*) FROM "user""#)
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert_eq!(users, 1, "the cross-site sign-up created nobody");
}
