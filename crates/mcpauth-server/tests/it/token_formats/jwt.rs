//! RFC 9068 JWT access tokens (SECURITY T1): what they carry, that anyone can verify them with
//! the JWKS, that mcpauth's guard and the gateway accept them for their own resource only, and
//! that nothing else shaped like a JWT passes as one.

use super::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {value}"))
}

async fn jwks(app: &TestApp) -> JwkSet {
    app.http
        .get(app.url("/api/auth/mcp/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn introspect(app: &TestApp, token: &str) -> Value {
    let client = app
        .register(json!({
            "client_name": "Resource Server",
            "redirect_uris": ["https://rs.example.test/cb"],
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .await;
    app.http
        .post(app.url("/api/auth/mcp/introspect"))
        .basic_auth(
            text(&client, "client_id"),
            Some(text(&client, "client_secret")),
        )
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn t1_jwt_access_tokens_are_rfc9068_and_verify_with_the_jwks() {
    let formats = spawn_formats(|_| {}).await;
    let app = &formats.app;
    let flow = app.full_flow("openid mcp:tools").await;
    let access = text(&flow.tokens, "access_token");
    assert_eq!(flow.tokens["token_type"], "Bearer");
    assert_eq!(flow.tokens["expires_in"], 300, "the JWT lifetime");
    assert!(
        !text(&flow.tokens, "refresh_token").contains('.'),
        "refresh tokens stay opaque"
    );

    let header = header_of(access);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let kid = text(&header, "kid");
    let set = jwks(app).await;
    let jwk = set.find(kid).expect("the kid is published");
    let mut validation = Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[app.resource()]);
    validation.set_issuer(&[&app.base]);
    let claims =
        jsonwebtoken::decode::<Value>(access, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .expect("verifies with the JWKS")
            .claims;
    assert_eq!(claims["aud"], app.resource());
    assert_eq!(claims["client_id"], flow.client_id);
    assert_eq!(claims["scope"], "openid mcp:tools");
    assert!(claims["sub"].is_string() && claims["jti"].is_string());
    assert!(claims["auth_time"].is_i64());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    assert!(claims.get("cnf").is_none(), "a bearer token has no cnf");

    // mcpauth's guard accepts it, and introspection describes it as an opaque token.
    let response = formats
        .mcp("/api/mcp", &format!("Bearer {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.session_status(access).await, StatusCode::OK);
    let described = introspect(app, access).await;
    assert_eq!(described["active"], true);
    assert_eq!(described["aud"], app.resource());
    assert_eq!(described["sub"], claims["sub"]);
    assert_eq!(described["exp"], claims["exp"]);
}

#[tokio::test]
async fn t1_a_token_for_resource_a_is_refused_at_resource_b() {
    let formats = spawn_formats(|_| {}).await;
    let app = &formats.app;
    let for_a = app
        .full_flow_for("mcp:tools", Some(&app.url("/mcp/a")))
        .await;
    let for_a = text(&for_a.tokens, "access_token").to_owned();
    assert_eq!(claims_of(&for_a)["aud"], app.url("/mcp/a"));
    let at = |path: &'static str, token: String| {
        let request = formats.mcp(path, &format!("Bearer {token}"));
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(
        at("/mcp/a", for_a.clone()).await,
        StatusCode::OK,
        "the gateway accepts it"
    );
    assert_eq!(at("/mcp/b", for_a.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        at("/api/mcp", for_a.clone()).await,
        StatusCode::UNAUTHORIZED
    );

    let main = app.full_flow("mcp:tools").await;
    let main = text(&main.tokens, "access_token").to_owned();
    assert_eq!(at("/mcp/a", main.clone()).await, StatusCode::UNAUTHORIZED);

    // /mcp/b keeps opaque tokens.
    let for_b = app
        .full_flow_for("mcp:tools", Some(&app.url("/mcp/b")))
        .await;
    let for_b = text(&for_b.tokens, "access_token").to_owned();
    assert!(!for_b.contains('.'), "opaque: {for_b}");
    assert_eq!(at("/mcp/b", for_b).await, StatusCode::OK);
}

#[tokio::test]
async fn t1_an_id_token_alg_none_hs256_and_a_forged_claim_are_refused() {
    let formats = spawn_formats(|_| {}).await;
    let app = &formats.app;
    let flow = app.full_flow("openid mcp:tools").await;
    let access = text(&flow.tokens, "access_token");
    let id_token = text(&flow.tokens, "id_token");
    let claims = claims_of(access);
    let kid = text(&header_of(access), "kid").to_owned();

    let none = sign_raw(
        &json!({ "alg": "none", "typ": "at+jwt", "kid": kid }),
        &claims,
        |_| String::new(),
    );
    let hs256 = sign_raw(
        &json!({ "alg": "HS256", "typ": "at+jwt", "kid": kid }),
        &claims,
        |input| {
            let key = jsonwebtoken::EncodingKey::from_secret(kid.as_bytes());
            jsonwebtoken::crypto::sign(input, &key, jsonwebtoken::Algorithm::HS256).unwrap()
        },
    );
    // The real signature over other claims (another audience).
    let mut widened = claims.clone();
    widened["scope"] = Value::from("openid mcp:tools mcp:admin");
    let signature = access.rsplit('.').next().unwrap();
    let forged = format!(
        "{}.{}.{signature}",
        access.split('.').next().unwrap(),
        URL_SAFE_NO_PAD.encode(widened.to_string())
    );
    for (what, token) in [
        ("id_token", id_token.to_owned()),
        ("alg none", none),
        ("HS256", hs256),
        ("forged claims", forged),
    ] {
        let response = formats
            .mcp("/api/mcp", &format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token"),
            "{what}"
        );
        assert_eq!(
            app.session_status(&token).await,
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
    }
    assert_eq!(
        formats
            .mcp("/api/mcp", &format!("Bearer {access}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "the real one still works"
    );
}

#[tokio::test]
async fn t1_a_revoked_grants_jwt_is_refused_by_the_guard() {
    let formats = spawn_formats(|_| {}).await;
    let app = &formats.app;
    let flow = app.full_flow("mcp:tools").await;
    let access = text(&flow.tokens, "access_token");
    let refresh = text(&flow.tokens, "refresh_token");
    assert_eq!(
        app.session_status(access).await,
        StatusCode::OK,
        "cached now"
    );
    let revoked = app
        .http
        .post(app.url("/api/auth/mcp/revoke"))
        .form(&[("token", refresh), ("client_id", flow.client_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(app.session_status(access).await, StatusCode::UNAUTHORIZED);
    let response = formats
        .mcp("/api/mcp", &format!("Bearer {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(introspect(app, access).await, json!({ "active": false }));
}

#[tokio::test]
async fn t1_an_expired_jwt_is_refused() {
    let formats = spawn_formats(|settings| settings.auth.jwt_access_token_expires_in = 60).await;
    let app = &formats.app;
    let flow = app.full_flow("mcp:tools").await;
    let access = text(&flow.tokens, "access_token");
    assert_eq!(flow.tokens["expires_in"], 60);
    assert_eq!(app.session_status(access).await, StatusCode::OK);
    app.clock.advance(61);
    assert_eq!(app.session_status(access).await, StatusCode::UNAUTHORIZED);
}
