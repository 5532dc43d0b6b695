//! Dynamic client registration (RFC 7591; SPEC §5.2; SECURITY S4, S22, S23, S24) and the
//! redirect URIs real MCP clients register (INTEROP.md).

use crate::common::*;
use mcpauth_core::Clock;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

async fn post_register(app: &TestApp, body: &Value) -> Response {
    app.http
        .post(app.url("/api/auth/mcp/register"))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn post_raw(app: &TestApp, content_type: &str, body: impl Into<reqwest::Body>) -> Response {
    app.http
        .post(app.url("/api/auth/mcp/register"))
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Asserts a 400 with an RFC 7591 §3.2.2 error body whose code is one of `codes`.
async fn expect_registration_error(response: Response, codes: &[&str], what: &str) -> Value {
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    assert!(
        content_type.starts_with("application/json"),
        "{what}: JSON error, got {content_type:?}"
    );
    let json: Value =
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: JSON error, got {body}"));
    let code = json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: error is a string in {body}"));
    assert!(
        codes.contains(&code),
        "{what}: error {code:?} is not one of {codes:?}"
    );
    if let Some(description) = json.get("error_description") {
        assert!(
            description.is_string(),
            "{what}: error_description is a string"
        );
    }
    json
}

const REDIRECT_ERRORS: &[&str] = &["invalid_redirect_uri", "invalid_client_metadata"];
const METADATA_ERRORS: &[&str] = &["invalid_client_metadata"];

async fn client_rows(app: &TestApp) -> i64 {
    let pool = app.db().await;
    let count: i64 = sqlx::query_scalar(r#"SELECT COUNT(*) FROM "oauthApplication""#)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    count
}

fn full_registration() -> Value {
    json!({
        "redirect_uris": ["https://app.example.com/oauth/callback", "http://localhost:8080/cb"],
        "client_name": "Full Client",
        "token_endpoint_auth_method": "client_secret_post",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "openid mcp:tools",
        "logo_uri": "https://app.example.com/logo.png",
        "client_uri": "https://app.example.com/",
        "contacts": ["admin@example.com", "ops@example.com"],
        "tos_uri": "https://app.example.com/tos",
        "policy_uri": "https://app.example.com/privacy",
        "software_id": "4NRB1-0XZABZI9E6-5SM3R",
        "software_version": "2.1.0",
        "application_type": "web",
        "metadata": { "team": "blue", "nested": { "level": 1, "tags": ["a", "b"] } },
    })
}

#[tokio::test]
async fn s23_registration_echoes_every_accepted_field() {
    let app = spawn_app().await;
    let request = full_registration();
    let response = post_register(&app, &request).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    let client: Value = response.json().await.unwrap();
    for (field, value) in request.as_object().unwrap() {
        assert_eq!(&client[field], value, "{field} is echoed as sent");
    }
    assert!(!client["client_id"].as_str().unwrap().is_empty());
    assert_eq!(client["client_id_issued_at"], app.clock.now());
    let secret = client["client_secret"].as_str().unwrap();
    assert!(secret.len() >= 32, "a strong secret: {secret}");
    assert!(
        client["client_secret_expires_at"].is_u64(),
        "client_secret_expires_at is a number (0 = never)"
    );
}

#[tokio::test]
async fn registration_stores_every_accepted_field() {
    let app = spawn_app().await;
    let request = full_registration();
    let client = app.register(request.clone()).await;
    let client_id = client["client_id"].as_str().unwrap();
    let stored: Vec<StoredValue> = app
        .db_values()
        .await
        .into_iter()
        .filter(|v| v.table == "oauthApplication")
        .collect();
    assert!(
        stored.iter().any(|v| v.value == client_id),
        "the client is stored"
    );
    let all = stored
        .iter()
        .map(|v| v.value.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for value in [
        "Full Client",
        "client_secret_post",
        "refresh_token",
        "https://app.example.com/oauth/callback",
        "http://localhost:8080/cb",
        "https://app.example.com/logo.png",
        "https://app.example.com/tos",
        "https://app.example.com/privacy",
        "https://app.example.com/",
        "admin@example.com",
        "4NRB1-0XZABZI9E6-5SM3R",
        "2.1.0",
        "team",
        "blue",
        "openid mcp:tools",
    ] {
        assert!(all.contains(value), "{value:?} is stored: {all}");
    }
}

#[tokio::test]
async fn public_client_gets_no_secret() {
    let app = spawn_app().await;
    let response = post_register(
        &app,
        &json!({
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    let client: Value = response.json().await.unwrap();
    assert_eq!(client["token_endpoint_auth_method"], "none");
    assert_eq!(client["redirect_uris"], json!([REDIRECT_URI]));
    assert!(client.get("client_secret").is_none(), "{client}");
    assert!(client.get("client_secret_expires_at").is_none(), "{client}");
    assert!(client.get("client_name").is_none() || client["client_name"].is_string());
}

#[tokio::test]
async fn s04_dangerous_redirect_uris_are_refused() {
    let app = spawn_app().await;
    for uri in [
        "http://evil.test/cb",
        "http://localhost.evil.test/cb",
        "http://127.0.0.1.nip.io/cb",
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "https://app.example.com/cb#fragment",
        "https://app.example.com/cb#",
        "https://user:pass@app.example.com/cb",
        "/relative/callback",
        "",
    ] {
        let response = post_register(
            &app,
            &json!({ "redirect_uris": [uri], "token_endpoint_auth_method": "none" }),
        )
        .await;
        let error = expect_registration_error(response, &["invalid_redirect_uri"], uri).await;
        assert_eq!(error["error"], "invalid_redirect_uri", "{uri}");
    }
    // One bad URI among good ones fails the whole registration.
    let response = post_register(
        &app,
        &json!({
            "redirect_uris": ["https://app.example.com/cb", "http://evil.test/cb"],
            "token_endpoint_auth_method": "none",
        }),
    )
    .await;
    expect_registration_error(response, &["invalid_redirect_uri"], "mixed").await;
    assert_eq!(client_rows(&app).await, 0, "nothing was registered");
}

#[tokio::test]
async fn s22_client_chosen_id_and_secret_are_ignored() {
    let app = spawn_app().await;
    let public = app
        .register(json!({
            "client_id": "chosen-client-id",
            "client_secret": "chosen-client-secret",
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    assert_ne!(public["client_id"], "chosen-client-id");
    assert!(
        public.get("client_secret").is_none(),
        "a public client gets no secret, chosen or not: {public}"
    );

    let confidential = app
        .register(json!({
            "client_id": "chosen-client-id",
            "client_secret": "chosen-client-secret",
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .await;
    assert_ne!(confidential["client_id"], "chosen-client-id");
    assert_ne!(confidential["client_id"], public["client_id"]);
    assert_ne!(confidential["client_secret"], "chosen-client-secret");

    let stored = app.db_values().await;
    assert!(
        !stored
            .iter()
            .any(|v| v.value.contains("chosen-client-id")
                || v.value.contains("chosen-client-secret")),
        "the chosen values were not stored"
    );

    // The chosen secret does not authenticate the client.
    let response = app
        .http
        .post(app.url("/api/auth/mcp/token"))
        .basic_auth(
            confidential["client_id"].as_str().unwrap(),
            Some("chosen-client-secret"),
        )
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

async fn registers_as_sent(app: &TestApp, redirect_uris: &[&str], extra: Value) {
    let mut body = json!({
        "redirect_uris": redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    let response = post_register(app, &body).await;
    let status = response.status();
    let client: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{redirect_uris:?}: {client}");
    assert_eq!(
        client["redirect_uris"],
        json!(redirect_uris),
        "echoed exactly"
    );
}

#[tokio::test]
async fn cursor_registration_is_accepted() {
    let app = spawn_app().await;
    registers_as_sent(
        &app,
        &[
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "https://www.cursor.com/agents/mcp/oauth/callback",
            "http://localhost:8787/callback",
        ],
        json!({ "client_name": "Cursor" }),
    )
    .await;
}

#[tokio::test]
async fn vscode_registration_is_accepted_and_loopback_ports_vary() {
    let app = spawn_app().await;
    let uris = [
        "http://127.0.0.1/",
        "http://127.0.0.1:33418/",
        "https://vscode.dev/redirect",
    ];
    registers_as_sent(&app, &uris, json!({ "client_name": "Visual Studio Code" })).await;

    // VS Code listens on whatever port it gets: any port on the registered loopback URI works.
    let client = app
        .register(json!({ "redirect_uris": uris, "token_endpoint_auth_method": "none" }))
        .await;
    let browser = app.signed_in_browser().await;
    let (_, challenge) = pkce();
    let client_id = client["client_id"].as_str().unwrap();
    let response = app
        .authorize(
            &browser,
            &[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", "http://127.0.0.1:51234/"),
                ("scope", "mcp:tools"),
                ("state", "st"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert!(
        location(&response).starts_with("/consent"),
        "{}",
        location(&response)
    );
}

#[tokio::test]
async fn claude_registration_is_accepted() {
    let app = spawn_app().await;
    registers_as_sent(
        &app,
        &[
            "https://claude.ai/api/mcp/auth_callback",
            "https://claude.com/api/mcp/auth_callback",
        ],
        json!({ "client_name": "Claude" }),
    )
    .await;
}

#[tokio::test]
async fn other_mcp_clients_registrations_are_accepted() {
    let app = spawn_app().await;
    // Claude Code, MCP Inspector, Codex CLI, ChatGPT.
    registers_as_sent(&app, &["http://localhost:54321/callback"], json!({})).await;
    registers_as_sent(&app, &["http://localhost:6274/oauth/callback"], json!({})).await;
    registers_as_sent(&app, &["http://127.0.0.1:1455/callback/abc"], json!({})).await;
    registers_as_sent(&app, &["http://[::1]:8080/cb"], json!({})).await;
    registers_as_sent(
        &app,
        &["https://chatgpt.com/connector_platform_oauth_redirect"],
        json!({ "scope": "" }),
    )
    .await;
    // The Python SDK: a native application.
    registers_as_sent(
        &app,
        &["http://localhost:3030/callback"],
        json!({ "application_type": "native", "scope": "mcp:tools", "client_name": "python" }),
    )
    .await;
}

#[tokio::test]
async fn malformed_redirect_uris_are_refused() {
    let app = spawn_app().await;
    for (what, body) in [
        ("missing", json!({ "client_name": "x" })),
        ("null", json!({ "redirect_uris": null })),
        ("empty", json!({ "redirect_uris": [] })),
        (
            "string",
            json!({ "redirect_uris": "https://app.example.com/cb" }),
        ),
        (
            "object",
            json!({ "redirect_uris": { "a": "https://app.example.com/cb" } }),
        ),
        ("number items", json!({ "redirect_uris": [1, 2] })),
    ] {
        let response = post_register(&app, &body).await;
        expect_registration_error(response, REDIRECT_ERRORS, what).await;
    }
    assert_eq!(client_rows(&app).await, 0);
}

#[tokio::test]
async fn unsupported_metadata_is_invalid_client_metadata() {
    let app = spawn_app().await;
    let base = json!({ "redirect_uris": [REDIRECT_URI] });
    let cases = [
        (
            "client_credentials grant",
            "grant_types",
            json!(["authorization_code", "client_credentials"]),
        ),
        ("password grant", "grant_types", json!(["password"])),
        ("implicit grant", "grant_types", json!(["implicit"])),
        (
            "device grant",
            "grant_types",
            json!(["urn:ietf:params:oauth:grant-type:device_code"]),
        ),
        (
            "grant_types not a list",
            "grant_types",
            json!("authorization_code"),
        ),
        (
            "private_key_jwt",
            "token_endpoint_auth_method",
            json!("private_key_jwt"),
        ),
        (
            "unknown auth method",
            "token_endpoint_auth_method",
            json!("magic"),
        ),
        (
            "auth method not a string",
            "token_endpoint_auth_method",
            json!(["none"]),
        ),
        ("token response type", "response_types", json!(["token"])),
        ("javascript logo", "logo_uri", json!("javascript:alert(1)")),
        ("data client_uri", "client_uri", json!("data:text/html,hi")),
        ("metadata not an object", "metadata", json!("x")),
        (
            "application_type",
            "application_type",
            json!("browser-extension"),
        ),
        (
            "contacts not a list",
            "contacts",
            json!("admin@example.com"),
        ),
    ];
    for (what, field, value) in cases {
        let mut body = base.clone();
        body[field] = value;
        let response = post_register(&app, &body).await;
        expect_registration_error(response, METADATA_ERRORS, what).await;
    }
    assert_eq!(client_rows(&app).await, 0);
}

#[tokio::test]
async fn non_json_bodies_are_refused_with_rfc7591_errors() {
    let app = spawn_app().await;
    let valid = json!({ "redirect_uris": [REDIRECT_URI] }).to_string();
    let cases: Vec<(&str, &str, String)> = vec![
        ("invalid JSON", "application/json", "{not json".to_owned()),
        ("empty body", "application/json", String::new()),
        ("JSON array", "application/json", format!("[{valid}]")),
        ("JSON string", "application/json", "\"hello\"".to_owned()),
        ("JSON null", "application/json", "null".to_owned()),
        (
            "form body",
            "application/x-www-form-urlencoded",
            "redirect_uris=https%3A%2F%2Fapp.example.com%2Fcb".to_owned(),
        ),
        ("text/plain with JSON", "text/plain", valid.clone()),
    ];
    for (what, content_type, body) in cases {
        let response = post_raw(&app, content_type, body).await;
        expect_registration_error(
            response,
            &["invalid_client_metadata", "invalid_request"],
            what,
        )
        .await;
    }
    let response = app
        .http
        .post(app.url("/api/auth/mcp/register"))
        .body(valid)
        .send()
        .await
        .unwrap();
    expect_registration_error(
        response,
        &["invalid_client_metadata", "invalid_request"],
        "no content type",
    )
    .await;
    assert_eq!(client_rows(&app).await, 0);
}

#[tokio::test]
async fn oversized_registration_is_refused_without_5xx() {
    let app = spawn_app().await;
    let body = json!({
        "redirect_uris": [REDIRECT_URI],
        "client_name": "x".repeat(100 * 1024),
    });
    let response = post_register(&app, &body).await;
    let status = response.status();
    assert!(status.is_client_error(), "{status}");
    let json: Value = response.json().await.unwrap();
    assert!(json["error"].is_string());
}

#[tokio::test]
async fn s24_client_secret_is_stored_only_as_a_hash() {
    let app = spawn_app().await;
    let client = app
        .register(json!({
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .await;
    let client_id = client["client_id"].as_str().unwrap();
    let secret = client["client_secret"].as_str().unwrap();
    let pool = app.db().await;
    let hash: Option<String> = sqlx::query_scalar(
        r#"SELECT client_secret_hash FROM "oauthApplication" WHERE client_id = ?"#,
    )
    .bind(client_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    let hash = hash.expect("a confidential client has a stored secret hash");
    assert!(!hash.is_empty());
    assert_ne!(hash, secret);
    assert!(!hash.contains(secret));
    for stored in app.db_values().await {
        assert!(
            !stored.value.contains(secret),
            "the secret appears in {}.{}",
            stored.table,
            stored.column
        );
    }
}

/// SECURITY M5: with an initial access token configured (RFC 7591 §3), only requests carrying
/// it as a bearer token register; the others get 401 `invalid_token` and register nothing.
#[tokio::test]
async fn m05_initial_access_token_guards_registration() {
    const TOKEN: &str = "an-initial-access-token-of-enough-length";
    let app = spawn_app_with(|s| s.auth.initial_access_token = Some(TOKEN.into())).await;
    let body = json!({
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "none",
    });
    let post = |bearer: Option<&str>| {
        let mut request = app.http.post(app.url("/api/auth/mcp/register")).json(&body);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        request.send()
    };
    for bearer in [None, Some("wrong-token"), Some(&TOKEN[1..])] {
        let response = post(bearer).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bearer:?}");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "invalid_token");
    }
    let response = post(Some(TOKEN)).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let clients: i64 = sqlx::query_scalar(r#"SELECT COUNT(*) FROM "oauthApplication""#)
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert_eq!(clients, 1, "only the authorized request registered");
}
