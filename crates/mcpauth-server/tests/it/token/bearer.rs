//! The bearer checks of `/mcp/get-session` (SECURITY S27, M1): the session's shape, expired and
//! unknown access tokens, and the discovery challenge without a token.

use super::*;
use mcpauth_core::Clock;
use reqwest::header::{CACHE_CONTROL, WWW_AUTHENTICATE};

#[tokio::test]
async fn s27_get_session_shape_never_has_a_refresh_token() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let access = str_of(&flow.tokens, "access_token");
    let refresh_token = str_of(&flow.tokens, "refresh_token");
    let response = get_session(&app, access).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    let text = response.text().await.unwrap();
    assert!(!text.contains(refresh_token), "no refresh token: {text}");
    assert!(!text.contains(access), "no access token: {text}");
    let session: Value = serde_json::from_str(&text).unwrap();
    let keys: BTreeSet<&str> = session
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "tokenId",
            "userId",
            "clientId",
            "scopes",
            "audience",
            "expiresAt"
        ])
    );
    assert!(!str_of(&session, "tokenId").is_empty());
    assert!(!str_of(&session, "userId").is_empty());
    assert_eq!(session["clientId"], flow.client_id.as_str());
    let scopes: BTreeSet<String> = session["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(scopes, scope_set("openid mcp:tools"));
    assert_eq!(session["audience"], app.resource().as_str());
    assert_eq!(session["expiresAt"], app.clock.now() + 3600);
}

#[tokio::test]
async fn expired_access_token_is_401_invalid_token() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let access = str_of(&flow.tokens, "access_token");
    app.clock.advance(3599);
    assert_eq!(app.session_status(access).await, StatusCode::OK);
    app.clock.advance(2);
    let response = get_session(&app, access).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // The refresh token outlives the access token: the client refreshes instead of re-authorizing.
    let refreshed = refresh(
        &app,
        &flow.client_id,
        str_of(&flow.tokens, "refresh_token"),
        &[],
    )
    .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.unwrap();
    assert_eq!(
        app.session_status(str_of(&refreshed, "access_token")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_access_token_is_401_invalid_token() {
    let app = spawn_app().await;
    let response = get_session(&app, "bm90LWEtdG9rZW4").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

#[tokio::test]
async fn m1_missing_token_gets_the_discovery_challenge() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/api/auth/mcp/get-session"))
        .header("origin", "http://inspector.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned();
    let prm = app.url("/.well-known/oauth-protected-resource/api/mcp");
    assert!(
        challenge.starts_with("Bearer "),
        "one Bearer challenge: {challenge}"
    );
    assert!(
        challenge.contains(&format!("resource_metadata=\"{prm}\"")),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"mcp:tools\""), "{challenge}");
    assert!(
        !challenge.contains("error="),
        "no error without a token: {challenge}"
    );
    let exposed = response
        .headers()
        .get("access-control-expose-headers")
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .unwrap_or_default();
    assert!(
        exposed.contains("www-authenticate"),
        "readable cross-origin: {exposed:?}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["error"]["code"], -32000);
    assert!(body["error"]["message"].is_string());
    assert!(body["id"].is_null());
    assert!(body.as_object().unwrap().contains_key("id"));
}
