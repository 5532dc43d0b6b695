//! The gateway (`upstream`, `[[upstreams]]`): mcpauth in front of an MCP server it did not
//! write. Two upstreams at `/mcp/a` and `/mcp/b` (the echo server of `upstream.rs`), each its
//! own protected resource: no token passthrough (SECURITY M4), audience binding between them,
//! the signed identity assertion, per-tool policy on calls and on `tools/list` answers (JSON
//! and SSE), unbuffered streaming, session and resumption headers both ways, the 2026-07-28
//! header rules, and an upstream that is down or slow.

mod credential;
pub(crate) mod upstream;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::*;
use futures_util::StreamExt;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use mcpauth_server::UpstreamSettings;
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

const ADMIN_SCOPE: &str = "notes:admin";

struct Gateway {
    app: TestApp,
    upstream: upstream::Upstream,
}

fn upstream_at(path: &str, url: &str) -> UpstreamSettings {
    UpstreamSettings {
        path: path.to_owned(),
        url: url.to_owned(),
        name: Some(format!("upstream {path}")),
        scopes: vec!["mcp:tools".to_owned()],
        tool_scopes: BTreeMap::from([("admin_tool".to_owned(), vec![ADMIN_SCOPE.to_owned()])]),
        ..UpstreamSettings::default()
    }
}

/// The server with upstreams A and B (both the echo server), a down one and a hanging one.
async fn spawn_gateway() -> Gateway {
    let upstream = upstream::spawn().await;
    let url = upstream.url.clone();
    let down = upstream::closed_port_url().await;
    let hang = url.replace("/mcp", "/hang");
    let app = spawn_app_with(|settings| {
        let mut slow = upstream_at("/mcp/slow", &hang);
        slow.timeout_secs = Some(1);
        settings.upstreams = vec![
            upstream_at("/mcp/a", &url),
            upstream_at("/mcp/b", &url),
            upstream_at("/mcp/down", &down),
            slow,
        ];
    })
    .await;
    Gateway { app, upstream }
}

impl Gateway {
    fn resource(&self, path: &str) -> String {
        self.app.url(path)
    }

    /// A token for the resource at `path` with `scope`, through the whole flow.
    async fn token(&self, path: &str, scope: &str) -> String {
        let flow = self
            .app
            .full_flow_for(scope, Some(&self.resource(path)))
            .await;
        flow.tokens["access_token"].as_str().unwrap().to_owned()
    }

    /// `GET path` on mcpauth, as JSON.
    async fn get_json(&self, path: &str) -> Value {
        let response = self.app.http.get(self.app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json().await.unwrap()
    }

    fn post(&self, path: &str, token: &str, body: &Value) -> RequestBuilder {
        self.post_as(path, token, body, "2025-06-18")
    }

    /// A POST with the protocol version `version`.
    fn post_as(&self, path: &str, token: &str, body: &Value, version: &str) -> RequestBuilder {
        self.app
            .http
            .post(self.resource(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", version)
            .body(body.to_string())
    }
}

fn call(tool: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": { "name": tool, "arguments": {} },
    })
}

fn list() -> Value {
    json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/list" })
}

/// The headers the echo upstream received, from a `headers` tool call's answer.
async fn received_headers(response: Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["result"]["structuredContent"]["headers"].clone()
}

/// The JSON-RPC messages of an SSE body.
fn sse_messages(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            (!data.is_empty()).then(|| serde_json::from_str(&data.join("\n")).unwrap())
        })
        .collect()
}

fn tool_names(answer: &Value) -> Vec<String> {
    answer["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn m04_upstream_never_sees_the_clients_token_cookies_or_forged_identity() {
    let gateway = spawn_gateway().await;
    let token = gateway.token("/mcp/a", "mcp:tools").await;
    let response = gateway
        .post("/mcp/a", &token, &call("headers"))
        .header("cookie", "session=secret")
        .header("x-mcpauth-user-id", "forged-admin")
        .header("X-MCPAuth-Scopes", "everything")
        .header("x-mcpauth-assertion", "forged")
        .send()
        .await
        .unwrap();
    let seen = received_headers(response).await;
    assert!(seen.get("authorization").is_none(), "{seen}");
    assert!(seen.get("cookie").is_none(), "{seen}");
    let user_id = seen["x-mcpauth-user-id"].as_str().unwrap();
    assert_ne!(user_id, "forged-admin");
    assert!(!user_id.is_empty());
    assert_eq!(seen["x-mcpauth-scopes"], "mcp:tools");
    assert_eq!(seen["x-mcpauth-name"], "Test User");
    assert!(seen["x-mcpauth-email"].as_str().unwrap().contains('@'));
    assert!(seen["x-mcpauth-client-id"].as_str().is_some());
    assert_ne!(seen["x-mcpauth-assertion"], "forged");
}

#[tokio::test]
async fn m04_a_token_for_upstream_a_is_refused_at_upstream_b() {
    let gateway = spawn_gateway().await;
    let token = gateway.token("/mcp/a", "mcp:tools").await;
    let ok = gateway
        .post("/mcp/a", &token, &call("headers"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let refused = gateway
        .post("/mcp/b", &token, &call("headers"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let challenge = refused.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned();
    let expected = format!(
        "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp/b\", scope=\"mcp:tools\", error=\"invalid_token\"",
        gateway.app.base
    );
    assert!(challenge.starts_with(&expected), "{challenge}");
    // Nor at the main resource (the demo).
    let demo = gateway
        .app
        .http
        .post(gateway.app.resource())
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(call("echo").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(demo.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn each_upstream_is_its_own_protected_resource() {
    let gateway = spawn_gateway().await;
    let app = &gateway.app;
    let unauthenticated = app
        .http
        .post(gateway.resource("/mcp/a"))
        .header("content-type", "application/json")
        .body(call("headers").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        unauthenticated.headers()[WWW_AUTHENTICATE],
        format!(
            "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp/a\", scope=\"mcp:tools\"",
            app.base
        )
    );
    let metadata = gateway
        .get_json("/.well-known/oauth-protected-resource/mcp/a")
        .await;
    assert_eq!(metadata["resource"], gateway.resource("/mcp/a"));
    assert_eq!(metadata["authorization_servers"], json!([app.base]));
    assert_eq!(metadata["resource_name"], "upstream /mcp/a");
    // Only the scopes an ordinary call needs: a tool's extra scope is asked for by step-up.
    assert_eq!(metadata["scopes_supported"], json!(["mcp:tools"]));
    // The authorization server grants the upstreams' tool scopes, and refuses unknown resources.
    let as_metadata = gateway
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert!(
        as_metadata["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(ADMIN_SCOPE))
    );
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let (_, challenge) = pkce();
    let mut params = TestApp::authorize_params(&client_id, &challenge, "mcp:tools", "st");
    let unknown = app.url("/mcp/unknown");
    params.push(("resource", &unknown));
    let refused = app.authorize(&browser, &params).await;
    assert!(
        location(&refused).contains("error=invalid_target"),
        "{}",
        location(&refused)
    );
}

#[tokio::test]
async fn the_consent_page_names_the_upstream_the_tokens_will_be_for() {
    let gateway = spawn_gateway().await;
    let app = &gateway.app;
    let client_id = app.register_public(REDIRECT_URI).await;
    let browser = app.signed_in_browser().await;
    let (_, challenge) = pkce();
    let resource = gateway.resource("/mcp/b");
    let mut params = TestApp::authorize_params(&client_id, &challenge, "mcp:tools", "s");
    params.push(("resource", &resource));
    let target = location(&app.authorize(&browser, &params).await);
    assert!(target.starts_with("/consent?"), "{target}");
    let (_, _, body) = get_page(&browser, &app.url(&target)).await;
    let page = html_unescape(&body);
    assert!(
        page.contains(&format!(
            "For <strong>upstream /mcp/b</strong> at <span class=\"mono\">{resource}</span>"
        )),
        "{page}"
    );
}

#[tokio::test]
async fn the_identity_assertion_verifies_against_the_jwks_for_that_upstream_only() {
    let gateway = spawn_gateway().await;
    let app = &gateway.app;
    let token = gateway.token("/mcp/a", "mcp:tools").await;
    let response = gateway
        .post("/mcp/a", &token, &call("headers"))
        .send()
        .await
        .unwrap();
    let seen = received_headers(response).await;
    let assertion = seen["x-mcpauth-assertion"].as_str().unwrap();
    let header = decode_header(assertion).unwrap();
    let jwks: JwkSet =
        serde_json::from_value(gateway.get_json("/api/auth/mcp/jwks").await).unwrap();
    let key = DecodingKey::from_jwk(jwks.find(&header.kid.unwrap()).unwrap()).unwrap();
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[gateway.resource("/mcp/a")]);
    validation.set_issuer(&[app.base.as_str()]);
    let claims = decode::<Value>(assertion, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], seen["x-mcpauth-user-id"]);
    assert_eq!(claims["client_id"], seen["x-mcpauth-client-id"]);
    assert_eq!(claims["scope"], "mcp:tools");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!((1..=60).contains(&lifetime), "{lifetime}");
    // Another upstream's audience does not accept it.
    validation.set_audience(&[gateway.resource("/mcp/b")]);
    assert!(decode::<Value>(assertion, &key, &validation).is_err());
}

#[tokio::test]
async fn tool_calls_need_the_tools_scopes_and_lists_show_only_callable_tools() {
    let gateway = spawn_gateway().await;
    let token = gateway.token("/mcp/a", "mcp:tools").await;
    let refused = gateway
        .post("/mcp/a", &token, &call("admin_tool"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let challenge = refused.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.contains(&format!("scope=\"mcp:tools {ADMIN_SCOPE}\"")),
        "{challenge}"
    );
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );

    // A batch hiding the call is refused too.
    let batch = json!([list(), call("admin_tool")]);
    let refused = gateway.post("/mcp/a", &token, &batch).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let json_list: Value = gateway
        .post("/mcp/a", &token, &list())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tool_names(&json_list), ["headers", "slow"]);
    let sse_list = gateway
        .post("/mcp/a", &token, &list())
        .header("x-test-sse", "1")
        .send()
        .await
        .unwrap();
    assert!(
        sse_list.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let messages = sse_messages(&sse_list.text().await.unwrap());
    assert_eq!(messages.len(), 1);
    assert_eq!(tool_names(&messages[0]), ["headers", "slow"]);

    let admin = gateway
        .token("/mcp/a", &format!("mcp:tools {ADMIN_SCOPE}"))
        .await;
    let allowed = gateway
        .post("/mcp/a", &admin, &call("admin_tool"))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    let full: Value = gateway
        .post("/mcp/a", &admin, &list())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tool_names(&full), ["headers", "slow", "admin_tool"]);
}

#[tokio::test]
async fn streamed_answers_are_not_buffered() {
    let gateway = spawn_gateway().await;
    let token = gateway.token("/mcp/a", "mcp:tools").await;
    let started = Instant::now();
    let response = gateway
        .post("/mcp/a", &token, &call("slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(String::from_utf8_lossy(&first).contains("notifications/progress"));
    assert!(
        first_at < upstream::SLOW / 2,
        "the first event arrived after {first_at:?}, while the tool was still running"
    );
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert!(started.elapsed() >= upstream::SLOW);
    assert!(String::from_utf8_lossy(&rest).contains("\"done\""));
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_request() {
    let gateway = spawn_gateway().await;
    let token = gateway.token("/mcp/a", "mcp:tools").await;
    let response = gateway
        .post("/mcp/a", &token, &call("slow"))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("notifications/progress"));
    drop(body);
    let deadline = Instant::now() + upstream::SLOW + Duration::from_secs(3);
    while gateway
        .upstream
        .abandoned
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the upstream's answer was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn request_bodies_over_the_limit_are_refused() {
    let gateway = spawn_gateway().await;
    let token = gateway.token("/mcp/a", "mcp:tools").await;
    let huge = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": { "name": "headers", "arguments": { "pad": "x".repeat(5 * 1024 * 1024) } },
    });
    let response = gateway.post("/mcp/a", &token, &huge).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn session_and_resumption_headers_pass_both_ways() {
    let gateway = spawn_gateway().await;
    let token = gateway.token("/mcp/a", "mcp:tools").await;
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } },
    });
    let response = gateway
        .post("/mcp/a", &token, &initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["mcp-session-id"], "session-1");

    let stream = gateway
        .app
        .http
        .get(gateway.resource("/mcp/a"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", "session-1")
        .header("mcp-protocol-version", "2025-06-18")
        .header("last-event-id", "7")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let messages = sse_messages(&stream.text().await.unwrap());
    let seen = &messages[0]["params"]["data"];
    assert_eq!(seen["last-event-id"], "7");
    assert_eq!(seen["mcp-session-id"], "session-1");
    assert_eq!(seen["mcp-protocol-version"], "2025-06-18");
    assert!(seen.get("authorization").is_none());

    let ended: Value = gateway
        .app
        .http
        .delete(gateway.resource("/mcp/a"))
        .bearer_auth(&token)
        .header("mcp-session-id", "session-1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ended["ended"], "session-1");
}

#[tokio::test]
async fn mcp_method_and_name_headers_must_match_the_body_from_2026_07_28() {
    let gateway = spawn_gateway().await;
    let token = gateway.token("/mcp/a", "mcp:tools").await;
    let modern = |body: &Value, method: &str, name: &str| {
        gateway
            .post_as("/mcp/a", &token, body, "2026-07-28")
            .header("mcp-method", method)
            .header("mcp-name", name)
    };
    let ok = modern(&call("headers"), "tools/call", "headers")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    // Headers naming an allowed tool while the body calls the admin one.
    let mismatch = modern(&call("admin_tool"), "tools/call", "headers")
        .send()
        .await
        .unwrap();
    assert_eq!(mismatch.status(), StatusCode::BAD_REQUEST);
    let body: Value = mismatch.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32020);
    assert_eq!(body["id"], 2);
    // Older protocol versions are not held to the rule.
    let old = gateway
        .post("/mcp/a", &token, &call("headers"))
        .header("mcp-method", "tools/list")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_upstream_that_is_down_or_slow_gets_a_json_rpc_error_not_a_hang() {
    let gateway = spawn_gateway().await;
    let down_token = gateway.token("/mcp/down", "mcp:tools").await;
    let down = gateway
        .post("/mcp/down", &down_token, &call("headers"))
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), StatusCode::BAD_GATEWAY);
    let body: Value = down.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unreachable")
    );

    let slow_token = gateway.token("/mcp/slow", "mcp:tools").await;
    let started = Instant::now();
    let slow = gateway
        .post("/mcp/slow", &slow_token, &call("headers"))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(5));
    let body: Value = slow.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32000);
}

#[tokio::test]
async fn one_upstream_replaces_the_demo_at_api_mcp() {
    let upstream = upstream::spawn().await;
    let app = spawn_app_with(|settings| settings.upstream = Some(upstream.url)).await;
    let flow = app.full_flow("mcp:tools").await;
    let token = flow.tokens["access_token"].as_str().unwrap();
    let response = app
        .http
        .post(app.resource())
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(call("headers").to_string())
        .send()
        .await
        .unwrap();
    let seen = received_headers(response).await;
    assert!(seen.get("authorization").is_none());
    assert!(seen["x-mcpauth-user-id"].as_str().is_some());
}

#[tokio::test]
async fn an_https_upstream_is_verified_against_the_system_roots_and_its_ca_file() {
    let upstream = upstream::spawn().await;
    let tls = TestTls::new();
    let https = upstream::spawn_tls_front(&upstream, &tls).await;
    let app = spawn_app_with(|settings| {
        let mut trusted = upstream_at("/mcp/trusted", &https);
        trusted.ca_file = Some(tls.ca_file.clone());
        settings.upstreams = vec![trusted, upstream_at("/mcp/unknown-ca", &https)];
    })
    .await;
    let gateway = Gateway { app, upstream };

    let token = gateway.token("/mcp/trusted", "mcp:tools").await;
    let response = gateway
        .post("/mcp/trusted", &token, &call("headers"))
        .send()
        .await
        .unwrap();
    let seen = received_headers(response).await;
    assert!(seen.get("authorization").is_none());
    assert_eq!(
        seen["host"],
        https
            .trim_start_matches("https://")
            .trim_end_matches("/mcp")
    );

    // Same server, but its CA is not trusted for this upstream: the certificate is refused and
    // nothing reaches the upstream.
    let token = gateway.token("/mcp/unknown-ca", "mcp:tools").await;
    let refused = gateway
        .post("/mcp/unknown-ca", &token, &call("headers"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
}

#[tokio::test]
async fn an_upstream_ca_file_that_is_not_pem_certificates_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("ca.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let mut settings = test_settings();
    settings.database_url = format!("sqlite://{}", dir.path().join("db").display());
    let mut upstream = upstream_at("/mcp/a", "https://localhost:1/mcp");
    upstream.ca_file = Some(garbage);
    settings.upstreams = vec![upstream];
    let error = match mcpauth_server::Application::build(&settings, None).await {
        Ok(_) => panic!("a garbage ca_file must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("certificate"), "{error}");
}

/// An upstream that writes its answer's head and body apart (as uvicorn does, under the Python
/// SDK) is not slowed to Nagle's pace: the gateway forwards the head, then the body, on a
/// socket with `TCP_NODELAY`, so a keep-alive client is not left waiting for its own delayed
/// ACK (40 ms) before the body comes. Without it, the Python upstream's benchmark row ran at a
/// third of the direct rate (BENCHMARKS.md, the gateway row).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_writing_head_and_body_apart_is_not_held_back_by_nagle() {
    let url = upstream::spawn_split_writer().await;
    let app = spawn_app_with(|settings| {
        settings.upstreams = vec![upstream_at("/mcp/split", &url)];
    })
    .await;
    let token = app
        .full_flow_for("mcp:tools", Some(&app.url("/mcp/split")))
        .await
        .tokens["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // One keep-alive connection, request after request: the pattern in which the client's
    // kernel delays its ACKs.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let mut latencies = Vec::new();
    for _ in 0..30 {
        let started = Instant::now();
        let answer = http
            .post(app.url("/mcp/split"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .body(call("echo").to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.json::<Value>().await.unwrap()["id"], 2);
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    // 5 ms of the upstream's own pause plus the gateway's work: far below the 40 ms a delayed
    // ACK adds.
    assert!(
        median < Duration::from_millis(30),
        "median {median:?} of {latencies:?}"
    );
}

/// A machine (`client_credentials`, issue 21) through the gateway: the upstream gets
/// `X-MCPAuth-Client-Id` and no user header (a forged one is still stripped), and the signed
/// assertion's `sub` is the client.
#[tokio::test]
async fn e1_a_machine_reaches_the_upstream_as_its_client_with_no_user_headers() {
    const MACHINE: &str = "gateway-machine";
    const SECRET: &str = "a-gateway-machine-secret-long-enough-42";
    let upstream = upstream::spawn().await;
    let url = upstream.url.clone();
    let app = spawn_app_with(|settings| {
        settings.upstreams = vec![upstream_at("/mcp/a", &url)];
        settings.auth.client_credentials.enabled = true;
        settings.auth.trusted_clients = vec![mcpauth::TrustedClient {
            client_id: MACHINE.into(),
            client_secret: Some(SECRET.into()),
            name: "Gateway machine".into(),
            grant_types: vec![mcpauth_core::model::GrantType::ClientCredentials],
            scope: Some("mcp:tools".into()),
            ..Default::default()
        }];
    })
    .await;
    let gateway = Gateway { app, upstream };
    let issued: Value = gateway
        .app
        .http
        .post(gateway.app.url("/api/auth/mcp/token"))
        .basic_auth(MACHINE, Some(SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", &gateway.resource("/mcp/a")),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = issued["access_token"].as_str().expect("a token").to_owned();
    let response = gateway
        .post("/mcp/a", &token, &call("headers"))
        .header("x-mcpauth-user-id", "forged-admin")
        .header("x-mcpauth-email", "forged@example.com")
        .send()
        .await
        .unwrap();
    let seen = received_headers(response).await;
    assert_eq!(seen["x-mcpauth-client-id"], MACHINE, "{seen}");
    assert_eq!(seen["x-mcpauth-scopes"], "mcp:tools");
    for header in [
        "x-mcpauth-user-id",
        "x-mcpauth-email",
        "x-mcpauth-name",
        "authorization",
    ] {
        assert!(seen.get(header).is_none(), "no {header}: {seen}");
    }
    let assertion = seen["x-mcpauth-assertion"].as_str().unwrap();
    let header = decode_header(assertion).unwrap();
    let jwks: JwkSet =
        serde_json::from_value(gateway.get_json("/api/auth/mcp/jwks").await).unwrap();
    let key = DecodingKey::from_jwk(jwks.find(&header.kid.unwrap()).unwrap()).unwrap();
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[gateway.resource("/mcp/a")]);
    let claims = decode::<Value>(assertion, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], MACHINE);
    assert_eq!(claims["client_id"], MACHINE);
    assert!(claims.get("email").is_none(), "{claims}");
}
