//! OpenID Connect (id_token, userinfo, JWKS, key rotation), revocation (RFC 7009) and
//! introspection (RFC 7662, SECURITY S27).

use std::sync::Arc;

use crate::common::*;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use mcpauth::{McpAuth, McpAuthOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};

impl TestApp {
    async fn jwks(&self) -> JwkSet {
        let response = self
            .http
            .get(self.url("/api/auth/mcp/jwks"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// Verifies an id_token against the published keys, as a relying party would.
    async fn verify_id_token(&self, id_token: &str, client_id: &str) -> Value {
        let header = decode_header(id_token).unwrap();
        let kid = header.kid.clone().expect("the id_token names its key");
        let jwks = self.jwks().await;
        let jwk = jwks.find(&kid).expect("the key is published");
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[client_id]);
        validation.set_issuer(&[self.base.as_str()]);
        // The test clock may run ahead of the real one.
        validation.validate_exp = false;
        decode::<Value>(id_token, &key, &validation).unwrap().claims
    }

    /// A handle on the same database, as `mcpauth keys rotate` would have.
    async fn operator(&self) -> McpAuth {
        let store = mcpauth_server::open_store(&format!("sqlite://{}", self.db_path.display()))
            .await
            .unwrap();
        let mut options = McpAuthOptions::new(self.base.clone());
        options.clock = Arc::new(self.clock.clone());
        McpAuth::new(store, options).await.unwrap()
    }

    async fn confidential_client(&self) -> (String, String) {
        let client = self
            .register(json!({
                "client_name": "Resource Server",
                "redirect_uris": ["https://rs.example.test/cb"],
                "token_endpoint_auth_method": "client_secret_basic",
            }))
            .await;
        (
            client["client_id"].as_str().unwrap().to_owned(),
            client["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    async fn post_as(
        &self,
        path: &str,
        client: &(String, String),
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .basic_auth(&client.0, Some(&client.1))
            .form(form)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn id_token_is_signed_with_a_published_key_and_carries_the_claims() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let (verifier, challenge) = pkce();
    let mut params = TestApp::authorize_params(&client_id, &challenge, "openid profile email", "s");
    params.push(("nonce", "n-0S6_WzA2Mj"));
    let response = app.authorize(&browser, &params).await;
    let target = app.approve(&browser, &location(&response), true).await;
    let code = query_of(&target)["code"].clone();
    let tokens: Value = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
        ])
        .await
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().expect("openid → id_token");
    let claims = app.verify_id_token(id_token, &client_id).await;
    assert_eq!(claims["iss"], app.base);
    assert_eq!(claims["aud"], client_id);
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["name"], "Test User");
    assert_eq!(claims["given_name"], "Test");
    assert_eq!(claims["family_name"], "User");
    assert!(claims["email"].as_str().unwrap().ends_with("@example.com"));
    assert_eq!(claims["email_verified"], false);
    let auth_time = claims["auth_time"].as_i64().unwrap();
    let iat = claims["iat"].as_i64().unwrap();
    assert!(
        auth_time <= iat && iat - auth_time < 60,
        "auth_time in seconds"
    );
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 3600);

    // The discovery document names the algorithm actually used.
    let meta: Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alg = decode_header(id_token).unwrap().alg;
    assert_eq!(
        meta["id_token_signing_alg_values_supported"],
        json!([format!("{alg:?}")])
    );
    assert_eq!(meta["jwks_uri"], app.url("/api/auth/mcp/jwks"));
    assert_eq!(meta["userinfo_endpoint"], app.url("/api/auth/mcp/userinfo"));
}

#[tokio::test]
async fn no_id_token_without_openid_and_claims_follow_scopes() {
    let app = spawn_app().await;
    let flow = app.full_flow("mcp:tools").await;
    assert!(flow.tokens.get("id_token").is_none());

    let flow = app.full_flow("openid").await;
    let id_token = flow.tokens["id_token"].as_str().unwrap();
    let claims = app.verify_id_token(id_token, &flow.client_id).await;
    assert!(claims.get("email").is_none() && claims.get("name").is_none());
    assert!(claims.get("nonce").is_none());
}

#[tokio::test]
async fn rs256_keys_work_too() {
    let app = spawn_app_with(|s| s.auth.signing_algorithm = mcpauth::SigningAlgorithm::Rs256).await;
    let flow = app.full_flow("openid email").await;
    let id_token = flow.tokens["id_token"].as_str().unwrap();
    assert_eq!(
        decode_header(id_token).unwrap().alg,
        jsonwebtoken::Algorithm::RS256
    );
    let claims = app.verify_id_token(id_token, &flow.client_id).await;
    assert!(claims["email"].is_string());
}

#[tokio::test]
async fn key_rotation_publishes_the_new_key_and_keeps_the_old() {
    let app = spawn_app().await;
    let first = app.full_flow("openid").await;
    let old_token = first.tokens["id_token"].as_str().unwrap().to_owned();
    let old_kid = decode_header(&old_token).unwrap().kid.unwrap();

    let new_kid = app.operator().await.rotate_signing_key().await.unwrap();
    assert_ne!(new_kid, old_kid);
    // Rotated by another handle on the database, as `mcpauth keys rotate` would.
    after_revocation_check().await;
    let jwks = app.jwks().await;
    assert!(jwks.find(&old_kid).is_some(), "old key still published");
    assert!(jwks.find(&new_kid).is_some(), "new key published at once");
    // A token signed before the rotation still verifies.
    app.verify_id_token(&old_token, &first.client_id).await;
    // New tokens carry the new key.
    let second = app.full_flow("openid").await;
    let new_token = second.tokens["id_token"].as_str().unwrap();
    assert_eq!(decode_header(new_token).unwrap().kid.unwrap(), new_kid);
    app.verify_id_token(new_token, &second.client_id).await;
}

#[tokio::test]
async fn signing_keys_are_encrypted_at_rest() {
    let app = spawn_app().await;
    app.full_flow("openid").await;
    let rows: Vec<(String, String)> =
        sqlx::query_as(r#"SELECT private_key_sealed, public_jwk FROM "oauthSigningKey""#)
            .fetch_all(&app.db().await)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    let (sealed, public) = &rows[0];
    assert!(
        !sealed.contains("PRIVATE KEY") && !sealed.starts_with("MI"),
        "no PKCS#8 in the clear"
    );
    let jwk: Value = serde_json::from_str(public).unwrap();
    assert!(
        jwk.get("d").is_none(),
        "the published JWK has no private part"
    );
}

#[tokio::test]
async fn userinfo_answers_get_and_post_by_scope() {
    let app = spawn_app_with(|s| {
        s.auth.additional_user_info_claims =
            serde_json::from_value(json!({ "org": "acme" })).unwrap();
    })
    .await;
    let flow = app.full_flow("openid email").await;
    let token = flow.tokens["access_token"].as_str().unwrap();
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let response = app
            .http
            .request(method.clone(), app.url("/api/auth/mcp/userinfo"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{method}");
        let claims: Value = response.json().await.unwrap();
        assert!(claims["sub"].is_string());
        assert!(claims["email"].is_string());
        assert!(claims.get("name").is_none(), "no profile scope");
        assert_eq!(claims["org"], "acme");
    }
    let none = app
        .http
        .get(app.url("/api/auth/mcp/userinfo"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let no_openid = app.full_flow("mcp:tools").await;
    let refused = app
        .http
        .get(app.url("/api/auth/mcp/userinfo"))
        .bearer_auth(no_openid.tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn revoking_an_access_token_or_a_refresh_token_ends_the_grant() {
    let app = spawn_app().await;
    for hint in ["access_token", "refresh_token"] {
        let flow = app.full_flow("openid mcp:tools").await;
        let access = flow.tokens["access_token"].as_str().unwrap();
        let refresh = flow.tokens["refresh_token"].as_str().unwrap();
        let token = if hint == "access_token" {
            access
        } else {
            refresh
        };
        let response = app
            .http
            .post(app.url("/api/auth/mcp/revoke"))
            .form(&[
                ("token", token),
                ("token_type_hint", hint),
                ("client_id", &flow.client_id),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{hint}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(
            app.session_status(access).await,
            StatusCode::UNAUTHORIZED,
            "{hint}"
        );
        let again = app
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", &flow.client_id),
            ])
            .await;
        assert_eq!(
            again.status(),
            StatusCode::BAD_REQUEST,
            "{hint}: the refresh token died too"
        );
    }
}

#[tokio::test]
async fn only_the_owning_client_may_revoke_and_unknown_tokens_are_fine() {
    let app = spawn_app().await;
    let flow = app.full_flow("mcp:tools").await;
    let access = flow.tokens["access_token"].as_str().unwrap();
    let other = app.register_public(REDIRECT_URI).await;
    let refused = app
        .http
        .post(app.url("/api/auth/mcp/revoke"))
        .form(&[("token", access), ("client_id", other.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
    assert_eq!(
        app.session_status(access).await,
        StatusCode::OK,
        "still alive"
    );

    let unknown = app
        .http
        .post(app.url("/api/auth/mcp/revoke"))
        .form(&[
            ("token", "no-such-token"),
            ("client_id", flow.client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::OK, "RFC 7009 §2.2");
    let anonymous = app
        .http
        .post(app.url("/api/auth/mcp/revoke"))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn s27_introspection_needs_client_authentication_and_never_describes_refresh_tokens() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid mcp:tools").await;
    let access = flow.tokens["access_token"].as_str().unwrap();
    let refresh = flow.tokens["refresh_token"].as_str().unwrap();
    let rs = app.confidential_client().await;

    let response = app
        .post_as("/api/auth/mcp/introspect", &rs, &[("token", access)])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], flow.client_id);
    assert_eq!(body["scope"], "openid mcp:tools");
    assert_eq!(body["aud"], app.resource());
    assert_eq!(body["iss"], app.base);
    assert!(!body.to_string().contains(refresh));

    let about_refresh: Value = app
        .post_as("/api/auth/mcp/introspect", &rs, &[("token", refresh)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(about_refresh, json!({ "active": false }));

    // A public client (no secret) and an anonymous caller may not introspect.
    let public = app
        .http
        .post(app.url("/api/auth/mcp/introspect"))
        .form(&[("token", access), ("client_id", flow.client_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), StatusCode::UNAUTHORIZED);
    let anonymous = app
        .http
        .post(app.url("/api/auth/mcp/introspect"))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let wrong_secret = app
        .post_as(
            "/api/auth/mcp/introspect",
            &(rs.0.clone(), "wrong".into()),
            &[("token", access)],
        )
        .await;
    assert_eq!(wrong_secret.status(), StatusCode::UNAUTHORIZED);

    // After revocation the token is inactive.
    app.http
        .post(app.url("/api/auth/mcp/revoke"))
        .form(&[("token", access), ("client_id", flow.client_id.as_str())])
        .send()
        .await
        .unwrap();
    let after: Value = app
        .post_as("/api/auth/mcp/introspect", &rs, &[("token", access)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after, json!({ "active": false }));
}

#[tokio::test]
async fn security_events_reach_the_audit_log() {
    let app =
        spawn_app_with(|s| s.auth.refresh_reuse_policy = mcpauth::RefreshReusePolicy::Strict).await;
    let flow = app.full_flow("openid").await;
    let refresh = flow.tokens["refresh_token"].as_str().unwrap();
    app.token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("client_id", &flow.client_id),
    ])
    .await;
    app.clock.advance(31);
    app.token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("client_id", &flow.client_id),
    ])
    .await;
    let kinds: Vec<String> = sqlx::query_scalar(r#"SELECT kind FROM "auditLog" ORDER BY id"#)
        .fetch_all(&app.db().await)
        .await
        .unwrap();
    for expected in [
        "consent.granted",
        "token.issue",
        "token.refresh",
        "refresh.reuse_detected",
    ] {
        assert!(
            kinds.iter().any(|k| k == expected),
            "{expected} in {kinds:?}"
        );
    }
    let tampering = sqlx::query(r#"DELETE FROM "auditLog""#)
        .execute(&app.db().await)
        .await;
    assert!(tampering.is_err(), "the audit log is append-only");
}
