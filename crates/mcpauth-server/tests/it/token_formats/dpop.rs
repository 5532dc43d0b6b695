//! DPoP (RFC 9449; SECURITY T2, T3): proofs at the token endpoint bind the tokens; a bound
//! token works only with a fresh proof by its key, for the request it comes with; a public
//! client's bound refresh token refreshes only with its key. Storage is involved (the stored
//! binding, the single-use `jti`s): the tests that depend on it run on SQLite and PostgreSQL.

use super::*;

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {value}"))
}

fn challenges(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// POSTs to the MCP endpoint at `path` with a DPoP-bound `token` and `proof`.
async fn mcp_with(formats: &Formats, path: &str, token: &str, proof: Option<String>) -> Response {
    let mut request = formats.mcp(path, &format!("DPoP {token}"));
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn t2_a_proof_binds_the_tokens_and_the_bound_token_works_with_its_key() {
    let formats = spawn_formats(|_| {}).await;
    let app = &formats.app;
    let key = DpopKey::new();
    let (_, tokens) = dpop_flow(app, &key, None).await;
    assert_eq!(tokens["token_type"], "DPoP");
    let access = text(&tokens, "access_token");
    assert_eq!(claims_of(access)["cnf"]["jkt"], key.jkt.as_str());

    let resource = app.resource();
    let proof = key.proof("POST", &resource, app.clock_now(), Some(access));
    let response = mcp_with(&formats, "/api/mcp", access, Some(proof)).await;
    assert_eq!(response.status(), StatusCode::OK);

    // get-session is a resource too: GET, its own URL.
    let url = app.url("/api/auth/mcp/get-session");
    let session = app
        .http
        .get(&url)
        .header("authorization", format!("DPoP {access}"))
        .header(
            "dpop",
            key.proof("GET", &url, app.clock_now(), Some(access)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(session.status(), StatusCode::OK);
    let session: Value = session.json().await.unwrap();
    assert_eq!(session["dpopJkt"], key.jkt.as_str());

    // Through the gateway, for an upstream.
    let (_, for_a) = dpop_flow(app, &key, Some(&app.url("/mcp/a"))).await;
    let for_a = text(&for_a, "access_token");
    let proof = key.proof("POST", &app.url("/mcp/a"), app.clock_now(), Some(for_a));
    let response = mcp_with(&formats, "/mcp/a", for_a, Some(proof)).await;
    assert_eq!(response.status(), StatusCode::OK);

    // Bearer tokens keep working for clients that send no proof.
    let plain = app.full_flow("mcp:tools").await;
    let plain = text(&plain.tokens, "access_token");
    let response = formats
        .mcp("/api/mcp", &format!("Bearer {plain}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn t2_a_bound_token_stolen_without_its_key_is_refused() {
    let formats = spawn_formats(|_| {}).await;
    let app = &formats.app;
    let key = DpopKey::new();
    let thief = DpopKey::new();
    let (_, tokens) = dpop_flow(app, &key, None).await;
    let access = text(&tokens, "access_token");
    let resource = app.resource();
    let now = app.clock_now();

    // As a bearer token.
    let response = formats
        .mcp("/api/mcp", &format!("Bearer {access}"))
        .send()
        .await
        .unwrap();
    let (headers, _) = refused(response, StatusCode::UNAUTHORIZED).await;
    let www = challenges(&headers);
    assert!(
        www.contains("DPoP algs=") && www.contains("invalid_token"),
        "{www}"
    );
    assert!(www.contains("resource_metadata="), "{www}");
    assert_eq!(app.session_status(access).await, StatusCode::UNAUTHORIZED);

    // With the DPoP scheme and no proof, or a proof by another key.
    let response = mcp_with(&formats, "/api/mcp", access, None).await;
    let (headers, _) = refused(response, StatusCode::UNAUTHORIZED).await;
    assert!(challenges(&headers).contains("invalid_dpop_proof"));
    let response = mcp_with(
        &formats,
        "/api/mcp",
        access,
        Some(thief.proof("POST", &resource, now, Some(access))),
    )
    .await;
    let (headers, _) = refused(response, StatusCode::UNAUTHORIZED).await;
    assert!(challenges(&headers).contains("invalid_dpop_proof"));

    // The key's owner still can.
    let response = mcp_with(
        &formats,
        "/api/mcp",
        access,
        Some(key.proof("POST", &resource, now, Some(access))),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn t2_proofs_refused_at_the_resource() {
    let formats = spawn_formats(|_| {}).await;
    let app = &formats.app;
    let key = DpopKey::new();
    let (_, tokens) = dpop_flow(app, &key, None).await;
    let access = text(&tokens, "access_token");
    let resource = app.resource();
    let now = app.clock_now();

    let good = key.proof("POST", &resource, now, Some(access));
    assert_eq!(
        mcp_with(&formats, "/api/mcp", access, Some(good.clone()))
            .await
            .status(),
        StatusCode::OK
    );
    let cases = [
        ("replayed proof", good),
        (
            "wrong htu",
            key.proof("POST", &app.url("/mcp/a"), now, Some(access)),
        ),
        ("wrong htm", key.proof("GET", &resource, now, Some(access))),
        (
            "stale iat",
            key.proof("POST", &resource, now - 300, Some(access)),
        ),
        (
            "iat in the future",
            key.proof("POST", &resource, now + 300, Some(access)),
        ),
        ("no ath", key.proof("POST", &resource, now, None)),
        (
            "ath of another token",
            key.proof("POST", &resource, now, Some("another")),
        ),
    ];
    for (what, proof) in cases {
        let response = mcp_with(&formats, "/api/mcp", access, Some(proof)).await;
        let (headers, body) = refused(response, StatusCode::UNAUTHORIZED).await;
        assert!(
            challenges(&headers).contains("invalid_dpop_proof"),
            "{what}: {body}"
        );
    }
    // A query string does not change the target (htu is compared without it).
    let with_query = key.proof("POST", &format!("{resource}?x=1"), now, Some(access));
    assert_eq!(
        mcp_with(&formats, "/api/mcp", access, Some(with_query))
            .await
            .status(),
        StatusCode::OK
    );
}

/// The bad proofs of §4.3, each refused at the token endpoint without spending the code;
/// then a good one redeems it.
async fn t2_token_endpoint_refusals_on(app: &TestApp) {
    let key = DpopKey::new();
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let (verifier, challenge) = pkce();
    let code = app
        .code_for(&browser, &client_id, &challenge, "mcp:tools")
        .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("client_id", client_id.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let url = app.url("/api/auth/mcp/token");
    let now = app.clock_now();
    let claims = |iat: i64| json!({ "jti": mcpauth_core::secret::random_id(), "htm": "POST", "htu": url, "iat": iat });
    let mut private_jwk = key.jwk.clone();
    private_jwk["d"] = Value::from("AAAA");
    let symmetric = sign_raw(
        &json!({ "typ": "dpop+jwt", "alg": "HS256", "jwk": { "kty": "oct", "k": "c2VjcmV0" } }),
        &claims(now),
        |input| {
            let secret = jsonwebtoken::EncodingKey::from_secret(b"secret");
            jsonwebtoken::crypto::sign(input, &secret, jsonwebtoken::Algorithm::HS256).unwrap()
        },
    );
    let wrong_typ = sign_raw(
        &json!({ "typ": "JWT", "alg": "ES256", "jwk": key.jwk }),
        &claims(now),
        |_| String::new(),
    );
    let other = DpopKey::new();
    // Signed by `other`, naming `key`'s public key.
    let other_key = other.sign(&claims(now), key.jwk.clone());
    let replayed = key.proof("POST", &url, now, None);
    // Spend it at the token endpoint with an unknown code, then replay it.
    let spent = app
        .http
        .post(&url)
        .header("dpop", &replayed)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "unknown"),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", client_id.as_str()),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(spent.status(), StatusCode::BAD_REQUEST);
    let cases = [
        ("replayed proof", replayed),
        (
            "wrong htu",
            key.proof("POST", &app.url("/api/auth/mcp/register"), now, None),
        ),
        ("wrong htm", key.proof("GET", &url, now, None)),
        ("stale iat", key.proof("POST", &url, now - 120, None)),
        ("symmetric alg", symmetric),
        ("private key in jwk", key.sign(&claims(now), private_jwk)),
        ("typ not dpop+jwt", wrong_typ),
        ("signed by another key", other_key),
        ("not a JWT", "not-a-jwt".to_owned()),
    ];
    for (what, proof) in cases {
        let response = app
            .http
            .post(&url)
            .header("dpop", proof)
            .form(&form)
            .send()
            .await
            .unwrap();
        let (_, body) = refused(response, StatusCode::BAD_REQUEST).await;
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "invalid_dpop_proof", "{what}: {body}");
    }
    let response = app
        .http
        .post(&url)
        .header("dpop", key.proof("POST", &url, now, None))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the code was never spent"
    );
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
}

#[tokio::test]
async fn t2_proofs_refused_at_the_token_endpoint_sqlite() {
    let app = spawn_app().await;
    t2_token_endpoint_refusals_on(&app).await;
}

#[tokio::test]
async fn t2_proofs_refused_at_the_token_endpoint_postgres() {
    let schema = PgSchema::create().await;
    let app = spawn_app_at(&schema.url(), &mcpauth_core::ManualClock::new(), |_| {}).await;
    t2_token_endpoint_refusals_on(&app).await;
}

/// A proof spent at one instance is refused at another on the same database: the `jti` is
/// what is replayed (each instance here has its own issuer, so the replay names b's URL).
async fn t2_replay_across_instances(a: &TestApp, b: &TestApp) {
    let key = DpopKey::new();
    let client_id = a.register_public(REDIRECT_URI).await;
    let token_request = |app: &TestApp, proof: String| {
        let request = app
            .http
            .post(app.url("/api/auth/mcp/token"))
            .header("dpop", proof)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", "unknown"),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", client_id.as_str()),
                ("code_verifier", "v".repeat(43).as_str()),
            ]);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            (
                status,
                body["error"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    let proof = key.proof("POST", &a.url("/api/auth/mcp/token"), a.clock_now(), None);
    // The proof is good (the code is not): spent at a.
    let (status, error) = token_request(a, proof.clone()).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let mut claims = claims_of(&proof);
    claims["htu"] = Value::from(b.url("/api/auth/mcp/token"));
    let replay = key.sign(&claims, key.jwk.clone());
    let (status, error) = token_request(b, replay).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
    );
    let fresh = key.proof("POST", &b.url("/api/auth/mcp/token"), b.clock_now(), None);
    let (_, error) = token_request(b, fresh).await;
    assert_eq!(error, "invalid_grant", "a fresh proof passes at b");
}

#[tokio::test]
async fn t2_a_proof_is_used_once_across_instances_sqlite() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.db_path, |_| {}).await;
    t2_replay_across_instances(&a, &b).await;
}

#[tokio::test]
async fn t2_a_proof_is_used_once_across_instances_postgres() {
    let schema = PgSchema::create().await;
    let clock = mcpauth_core::ManualClock::new();
    let a = spawn_app_at(&schema.url(), &clock, |_| {}).await;
    let b = spawn_app_at(&schema.url(), &clock, |_| {}).await;
    t2_replay_across_instances(&a, &b).await;
}

#[tokio::test]
async fn t2_server_nonces_when_configured() {
    let formats = spawn_formats(|settings| settings.auth.use_dpop_nonce = true).await;
    let app = &formats.app;
    let key = DpopKey::new();
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let (verifier, challenge) = pkce();
    let code = app
        .code_for(&browser, &client_id, &challenge, "mcp:tools")
        .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("client_id", client_id.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let url = app.url("/api/auth/mcp/token");
    let now = app.clock_now();
    let response = app
        .http
        .post(&url)
        .header("dpop", key.proof("POST", &url, now, None))
        .form(&form)
        .send()
        .await
        .unwrap();
    let (headers, body) = refused(response, StatusCode::BAD_REQUEST).await;
    assert!(body.contains("use_dpop_nonce"), "{body}");
    let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();
    let with_nonce = |url: &str, htm: &str, ath: Option<&str>| {
        let mut claims = json!({
            "jti": mcpauth_core::secret::random_id(), "htm": htm, "htu": url, "iat": now,
            "nonce": nonce,
        });
        if let Some(token) = ath {
            claims["ath"] = Value::from(super::ath(token));
        }
        key.sign(&claims, key.jwk.clone())
    };
    let response = app
        .http
        .post(&url)
        .header("dpop", with_nonce(&url, "POST", None))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    let access = text(&tokens, "access_token");

    // At the resource: without the nonce, a use_dpop_nonce challenge; with it, through.
    let resource = app.resource();
    let response = mcp_with(
        &formats,
        "/api/mcp",
        access,
        Some(key.proof("POST", &resource, now, Some(access))),
    )
    .await;
    let (headers, _) = refused(response, StatusCode::UNAUTHORIZED).await;
    assert!(challenges(&headers).contains("use_dpop_nonce"));
    assert!(headers.contains_key("dpop-nonce"));
    let response = mcp_with(
        &formats,
        "/api/mcp",
        access,
        Some(with_nonce(&resource, "POST", Some(access))),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn t2_a_client_registered_with_dpop_bound_access_tokens_must_send_a_proof() {
    let app = spawn_app().await;
    let client = app
        .register(json!({
            "client_name": "DPoP client",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            "dpop_bound_access_tokens": true,
        }))
        .await;
    assert_eq!(client["dpop_bound_access_tokens"], true);
    let client_id = text(&client, "client_id");
    let browser = app.signed_in_browser().await;
    let (verifier, challenge) = pkce();
    let code = app
        .code_for(&browser, client_id, &challenge, "mcp:tools")
        .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("client_id", client_id),
        ("code_verifier", verifier.as_str()),
    ];
    let (_, body) = refused(app.token(&form).await, StatusCode::BAD_REQUEST).await;
    assert!(body.contains("invalid_dpop_proof"), "{body}");
    let key = DpopKey::new();
    let url = app.url("/api/auth/mcp/token");
    let response = app
        .http
        .post(&url)
        .header("dpop", key.proof("POST", &url, app.clock_now(), None))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let refused_registration = app
        .http
        .post(app.url("/api/auth/mcp/register"))
        .json(&json!({ "redirect_uris": [REDIRECT_URI], "dpop_bound_access_tokens": "yes" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused_registration.status(), StatusCode::BAD_REQUEST);
}

/// A public client's bound refresh token: refused without a proof and with another key's, the
/// family intact; the right key refreshes, and the new tokens are bound to it.
async fn t3_refresh_only_with_its_key_on(app: &TestApp) {
    let key = DpopKey::new();
    let thief = DpopKey::new();
    let (client_id, tokens) = dpop_flow(app, &key, None).await;
    let refresh_token = text(&tokens, "refresh_token").to_owned();
    let url = app.url("/api/auth/mcp/token");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("client_id", client_id.as_str()),
    ];
    let refresh = |proof: Option<String>| {
        let mut request = app.http.post(&url).form(&form);
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        async move { request.send().await.unwrap() }
    };
    for proof in [None, Some(thief.proof("POST", &url, app.clock_now(), None))] {
        let (_, body) = refused(refresh(proof).await, StatusCode::BAD_REQUEST).await;
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "invalid_grant", "{body}");
    }
    let access = text(&tokens, "access_token");
    assert_eq!(
        app.http
            .get(app.url("/api/auth/mcp/get-session"))
            .header("authorization", format!("DPoP {access}"))
            .header(
                "dpop",
                key.proof(
                    "GET",
                    &app.url("/api/auth/mcp/get-session"),
                    app.clock_now(),
                    Some(access)
                )
            )
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "the grant is intact"
    );
    let response = refresh(Some(key.proof("POST", &url, app.clock_now(), None))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let renewed: Value = response.json().await.unwrap();
    assert_eq!(renewed["token_type"], "DPoP");
    // The next refresh token is bound as well.
    let next = text(&renewed, "refresh_token");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", next),
        ("client_id", client_id.as_str()),
    ];
    let response = app
        .http
        .post(&url)
        .header("dpop", thief.proof("POST", &url, app.clock_now(), None))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn t3_a_bound_refresh_token_refreshes_only_with_its_key_sqlite() {
    let formats = spawn_formats(|_| {}).await;
    t3_refresh_only_with_its_key_on(&formats.app).await;
}

#[tokio::test]
async fn t3_a_bound_refresh_token_refreshes_only_with_its_key_postgres() {
    let schema = PgSchema::create().await;
    let app = spawn_app_at(&schema.url(), &mcpauth_core::ManualClock::new(), |_| {}).await;
    t3_refresh_only_with_its_key_on(&app).await;
}

#[tokio::test]
async fn t2_metadata_advertises_dpop_algorithms() {
    let app = spawn_app().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-protected-resource/api/mcp",
    ] {
        let doc: Value = app
            .http
            .get(app.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let algs = doc["dpop_signing_alg_values_supported"].as_array().unwrap();
        assert!(algs.iter().any(|a| a == "ES256"), "{path}");
        assert!(
            !algs.iter().any(|a| a.as_str().unwrap().starts_with("HS")),
            "{path}"
        );
    }
}
