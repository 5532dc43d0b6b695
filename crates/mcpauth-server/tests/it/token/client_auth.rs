//! Client authentication at the token endpoint: `client_secret_basic`, `client_secret_post` and
//! public clients, `invalid_client` with its challenge, and a failed authentication that leaves
//! the code unspent.

use super::*;
use reqwest::header::WWW_AUTHENTICATE;

/// A code for a confidential client, and its verifier.
async fn confidential_code(app: &TestApp, client_id: &str) -> (String, String) {
    let browser = app.signed_in_browser().await;
    let (verifier, challenge) = pkce();
    let code = app
        .code_for(&browser, client_id, &challenge, "openid mcp:tools")
        .await;
    (code, verifier)
}

fn code_form<'a>(code: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier),
    ]
}

#[tokio::test]
async fn client_secret_basic_authenticates_with_basic() {
    let app = spawn_app().await;
    let (client_id, secret) = register_confidential(&app, "client_secret_basic").await;
    let (code, verifier) = confidential_code(&app, &client_id).await;
    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&code_form(&code, &verifier))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");

    // Its refresh token needs the client's authentication too.
    let rt = str_of(&tokens, "refresh_token");
    let unauthenticated = refresh(&app, &client_id, rt, &[]).await;
    expect_error(unauthenticated, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let refreshed = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_basic_secret_is_invalid_client_with_basic_challenge() {
    let app = spawn_app().await;
    let (client_id, _secret) = register_confidential(&app, "client_secret_basic").await;
    let (code, verifier) = confidential_code(&app, &client_id).await;
    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth(&client_id, Some("not-the-secret"))
        .form(&code_form(&code, &verifier))
        .send()
        .await
        .unwrap();
    let headers = expect_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let challenge = headers[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.to_ascii_lowercase().starts_with("basic"),
        "challenge: {challenge}"
    );
}

#[tokio::test]
async fn malformed_basic_header_is_401() {
    let app = spawn_app().await;
    let (client_id, _secret) = register_confidential(&app, "client_secret_basic").await;
    let (code, verifier) = confidential_code(&app, &client_id).await;
    use base64::Engine;
    let no_colon = base64::engine::general_purpose::STANDARD.encode(client_id.as_bytes());
    for header in [
        "Basic !!!not-base64!!!".to_owned(),
        format!("Basic {no_colon}"),
        "Basic".to_owned(),
    ] {
        let response = app
            .http
            .post(app.url("/api/auth/mcp/token"))
            .header("authorization", &header)
            .form(&code_form(&code, &verifier))
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
}

#[tokio::test]
async fn a_confidential_client_may_send_its_secret_either_way_but_must_send_it() {
    let app = spawn_app().await;
    for registered in ["client_secret_basic", "client_secret_post"] {
        let (client_id, secret) = register_confidential(&app, registered).await;
        // In the body, whichever method was registered.
        let (code, verifier) = confidential_code(&app, &client_id).await;
        let mut form = code_form(&code, &verifier);
        form.push(("client_id", &client_id));
        form.push(("client_secret", &secret));
        let response = app.token(&form).await;
        assert_eq!(response.status(), StatusCode::OK, "{registered}, body");
        // In Basic, whichever method was registered.
        let (code, verifier) = confidential_code(&app, &client_id).await;
        let response = app
            .http
            .post(app.url("/api/auth/mcp/token"))
            .basic_auth(&client_id, Some(&secret))
            .form(&code_form(&code, &verifier))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{registered}, Basic");
        // Never without it, nor with a wrong one: a client with a secret is not public.
        let (code, verifier) = confidential_code(&app, &client_id).await;
        let mut public = code_form(&code, &verifier);
        public.push(("client_id", &client_id));
        expect_error(
            app.token(&public).await,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        )
        .await;
        let mut wrong = public.clone();
        wrong.push(("client_secret", "not-the-secret"));
        expect_error(
            app.token(&wrong).await,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        )
        .await;
        // The failed attempts left the code unspent.
        form = code_form(&code, &verifier);
        form.push(("client_id", &client_id));
        form.push(("client_secret", &secret));
        assert_eq!(app.token(&form).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn client_secret_post_authenticates_with_body_secret() {
    let app = spawn_app().await;
    let (client_id, secret) = register_confidential(&app, "client_secret_post").await;
    let (code, verifier) = confidential_code(&app, &client_id).await;

    let mut wrong = code_form(&code, &verifier);
    wrong.push(("client_id", &client_id));
    wrong.push(("client_secret", "not-the-secret"));
    expect_error(
        app.token(&wrong).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;

    let mut form = code_form(&code, &verifier);
    form.push(("client_id", &client_id));
    form.push(("client_secret", &secret));
    let response = app.token(&form).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn public_client_presenting_a_secret_is_invalid_client() {
    let app = spawn_app().await;
    let pending = pending_code(&app, "mcp:tools").await;
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &pending.code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &pending.client_id),
            ("client_secret", "made-up"),
            ("code_verifier", &pending.verifier),
        ])
        .await;
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // The code survived the failed authentication.
    let tokens = redeem(&app, &pending).await;
    assert!(tokens.get("access_token").is_some());
}

#[tokio::test]
async fn unknown_client_is_invalid_client() {
    let app = spawn_app().await;
    let pending = pending_code(&app, "mcp:tools").await;
    let response = exchange(&app, "no-such-client", &pending.code, &pending.verifier).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;

    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth("no-such-client", Some("secret"))
        .form(&code_form(&pending.code, &pending.verifier))
        .send()
        .await
        .unwrap();
    let headers = expect_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert!(headers.contains_key(WWW_AUTHENTICATE));

    let missing = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &pending.code),
            ("code_verifier", &pending.verifier),
        ])
        .await;
    expect_error(missing, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn failed_client_authentication_does_not_consume_the_code() {
    let app = spawn_app().await;
    let (client_id, secret) = register_confidential(&app, "client_secret_basic").await;
    let (code, verifier) = confidential_code(&app, &client_id).await;

    let wrong = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth(&client_id, Some("not-the-secret"))
        .form(&code_form(&code, &verifier))
        .send()
        .await
        .unwrap();
    expect_error(wrong, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let mut in_body = code_form(&code, &verifier);
    in_body.push(("client_id", &client_id));
    expect_error(
        app.token(&in_body).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;

    let right = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth(&client_id, Some(&secret))
        .form(&code_form(&code, &verifier))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK, "the code is still good");
}
