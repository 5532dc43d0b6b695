//! What the token endpoint accepts (SECURITY S16): only the code and refresh grants, and bad
//! input (content types, malformed or repeated parameters, oversized bodies) answered with a 4xx
//! OAuth error, never a 5xx.

use super::*;
use reqwest::header::CONTENT_TYPE;

#[tokio::test]
async fn s16_only_code_and_refresh_grants() {
    let app = spawn_app().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    for grant_type in [
        "password",
        "client_credentials",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ] {
        let response = app
            .token(&[
                ("grant_type", grant_type),
                ("client_id", &client_id),
                ("username", "someone@example.com"),
                ("password", PASSWORD),
            ])
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    }
    let response = app
        .token(&[("client_id", &client_id), ("code", "abc")])
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

/// Asserts a 4xx with a JSON `error` string; never a 5xx.
async fn expect_client_error(response: Response, what: &str) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.text().await.unwrap();
    assert!(status.is_client_error(), "{what}: {status} {body}");
    let json: Value =
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: a JSON error, got {body}"));
    assert!(json["error"].is_string(), "{what}: error field in {body}");
    (status, json)
}

#[tokio::test]
async fn wrong_content_type_is_invalid_request() {
    let app = spawn_app().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .header(CONTENT_TYPE, "text/plain")
        .body(format!(
            "grant_type=authorization_code&code=abc&client_id={client_id}"
        ))
        .send()
        .await
        .unwrap();
    let (status, json) = expect_client_error(response, "text/plain").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"], "invalid_request");
}

#[tokio::test]
async fn invalid_json_is_invalid_request() {
    let app = spawn_app().await;
    for body in [
        "{not json",
        "[1,2]",
        "\"a string\"",
        r#"{"grant_type":{"x":1}}"#,
    ] {
        let response = app
            .http
            .post(app.url("/api/auth/mcp/token"))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, json) = expect_client_error(response, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(json["error"], "invalid_request", "{body}");
    }
}

#[tokio::test]
async fn repeated_parameter_is_invalid_request() {
    let app = spawn_app().await;
    let pending = pending_code(&app, "mcp:tools").await;
    let body = format!(
        "grant_type=authorization_code&code={code}&code=other&client_id={client}&code_verifier={verifier}",
        code = pending.code,
        client = pending.client_id,
        verifier = pending.verifier,
    );
    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, json) = expect_client_error(response, "repeated code").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"], "invalid_request");
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = spawn_app().await;
    let padding = "a".repeat(100 * 1024);
    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "abc"),
            ("padding", padding.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let (status, _) = expect_client_error(response, "100 KB body").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn missing_code_is_invalid_request() {
    let app = spawn_app().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let (verifier, _) = pkce();
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
        ])
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    let response = app
        .token(&[("grant_type", "refresh_token"), ("client_id", &client_id)])
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn malformed_token_requests_never_get_a_5xx() {
    let app = spawn_app().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let url = app.url("/api/auth/mcp/token");
    let cases: Vec<(&str, Option<&str>, Vec<u8>)> = vec![
        (
            "empty form",
            Some("application/x-www-form-urlencoded"),
            vec![],
        ),
        (
            "no content type",
            None,
            b"grant_type=refresh_token".to_vec(),
        ),
        (
            "invalid UTF-8",
            Some("application/x-www-form-urlencoded"),
            b"grant_type=\xff\xfe".to_vec(),
        ),
        (
            "unknown code",
            Some("application/x-www-form-urlencoded"),
            format!(
                "grant_type=authorization_code&code=nope&client_id={client_id}&code_verifier=x"
            )
            .into_bytes(),
        ),
        (
            "unknown refresh token",
            Some("application/x-www-form-urlencoded"),
            format!("grant_type=refresh_token&refresh_token=nope&client_id={client_id}")
                .into_bytes(),
        ),
        (
            "bad scope characters",
            Some("application/x-www-form-urlencoded"),
            format!(
                "grant_type=refresh_token&refresh_token=nope&client_id={client_id}&scope=%22%5C"
            )
            .into_bytes(),
        ),
        ("json null", Some("application/json"), b"null".to_vec()),
        (
            "json empty object",
            Some("application/json"),
            b"{}".to_vec(),
        ),
        (
            "json resource array",
            Some("application/json"),
            br#"{"grant_type":"refresh_token","resource":[1]}"#.to_vec(),
        ),
    ];
    for (what, content_type, body) in cases {
        let mut request = app.http.post(&url).body(body);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        expect_client_error(request.send().await.unwrap(), what).await;
    }
}
