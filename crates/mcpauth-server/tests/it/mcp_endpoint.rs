//! The protected MCP endpoint `/api/mcp`: the challenge clients discover from, scopes per tool,
//! audience binding, Origin validation, CORS, and stateless serving.

use crate::common::*;
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}"#;

fn call(tool: &str, arguments: Value) -> String {
    json!({
        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": { "name": tool, "arguments": arguments },
    })
    .to_string()
}

impl TestApp {
    async fn mcp(&self, token: Option<&str>, body: &str, origin: Option<&str>) -> Response {
        let mut request = self
            .http
            .post(self.resource())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send().await.unwrap()
    }
}

fn challenge(response: &Response) -> String {
    response.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned()
}

fn access_token(flow: &Flow) -> String {
    flow.tokens["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn m01_unauthenticated_call_gets_the_discovery_challenge() {
    let app = spawn_app().await;
    let response = app
        .mcp(None, INITIALIZE, Some("http://localhost:6274"))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let www = challenge(&response);
    assert_eq!(
        www,
        format!(
            "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/api/mcp\", scope=\"mcp:tools\"",
            app.base
        ),
        "one Bearer challenge with quoted values and no error when no token was sent"
    );
    // Readable cross-origin (the MCP Inspector runs in a browser).
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("www-authenticate"), "{exposed}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["error"]["code"], -32000);
    assert!(body["id"].is_null());

    // The advertised metadata URL answers, and names this resource.
    let prm: Value = app
        .http
        .get(format!(
            "{}/.well-known/oauth-protected-resource/api/mcp",
            app.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prm["resource"], app.resource());
}

#[tokio::test]
async fn m01_invalid_and_expired_tokens_get_401_invalid_token() {
    let app = spawn_app().await;
    let garbage = app.mcp(Some("not-a-real-token"), INITIALIZE, None).await;
    assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&garbage).contains("error=\"invalid_token\""));

    let flow = app.full_flow("mcp:tools").await;
    let token = access_token(&flow);
    assert_eq!(
        app.mcp(Some(&token), INITIALIZE, None).await.status(),
        StatusCode::OK
    );
    app.clock.advance(3601);
    let expired = app.mcp(Some(&token), INITIALIZE, None).await;
    // Expired is 401 (clients refresh on 401), never 403.
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&expired).contains("error=\"invalid_token\""));
}

#[tokio::test]
async fn tools_work_statelessly_and_know_the_caller() {
    let app = spawn_app().await;
    let flow = app.full_flow("mcp:tools").await;
    let token = access_token(&flow);

    let init = app.mcp(Some(&token), INITIALIZE, None).await;
    assert_eq!(init.status(), StatusCode::OK);
    assert!(
        init.headers().get("mcp-session-id").is_none(),
        "stateless: no session to pin to one instance"
    );
    let init: Value = init.json().await.unwrap();
    assert_eq!(init["result"]["serverInfo"]["name"], "mcpauth-demo");

    // No initialize on this "instance" first: every request stands alone.
    let echo = app
        .mcp(Some(&token), &call("echo", json!({"message": "hi"})), None)
        .await;
    assert_eq!(echo.status(), StatusCode::OK);
    let echo: Value = echo.json().await.unwrap();
    let content = &echo["result"]["content"];
    assert_eq!(content[0]["text"], "Tool echo: hi");
    assert!(
        content[1]["text"]
            .as_str()
            .unwrap()
            .contains(&flow.client_id),
        "the tool knows who called: {content}"
    );

    let whoami: Value = app
        .mcp(Some(&token), &call("whoami", json!({})), None)
        .await
        .json()
        .await
        .unwrap();
    let who: Value =
        serde_json::from_str(whoami["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(who["clientId"], flow.client_id.as_str());
    assert_eq!(who["audience"], app.resource());
    assert_eq!(who["scopes"], json!(["mcp:tools"]));
    assert!(who.get("refreshToken").is_none() && who.get("accessToken").is_none());
}

#[tokio::test]
async fn m02_insufficient_scope_names_every_scope_needed() {
    let app = spawn_app().await;
    let flow = app.full_flow("mcp:tools").await;
    let token = access_token(&flow);
    let response = app
        .mcp(
            Some(&token),
            &call("admin_echo", json!({"message": "x"})),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let www = challenge(&response);
    assert!(www.starts_with("Bearer "), "{www}");
    assert!(www.contains("error=\"insufficient_scope\""), "{www}");
    assert!(
        www.contains("scope=\"mcp:tools mcp:admin\""),
        "all scopes, not just the missing one (clients do not merge): {www}"
    );
    assert!(www.contains("resource_metadata=\""), "{www}");

    // With the scope, the same call works.
    let admin = app.full_flow("mcp:tools mcp:admin").await;
    let ok = app
        .mcp(
            Some(&access_token(&admin)),
            &call("admin_echo", json!({"message": "x"})),
            None,
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["result"]["content"][0]["text"], "Tool admin_echo: x");
}

/// Bodies the guard cannot read the tool from ask for every tool's scopes: a parser
/// differential (here a duplicated key, or an escaped method name) never lets a tool past its
/// scope.
#[tokio::test]
async fn m02_tool_scopes_cannot_be_dodged_by_odd_json() {
    let app = spawn_app().await;
    let token = access_token(&app.full_flow("mcp:tools").await);
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"admin_echo","arguments":{"message":"x"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"admin\u005fecho","arguments":{"message":"x"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/call","params":{"name":"admin_echo","arguments":{"message":"x"}}}"#,
    ] {
        let response = app.mcp(Some(&token), body, None).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{body}");
        assert!(challenge(&response).contains("mcp:admin"), "{body}");
    }
    // The plain call of a tool that needs no extra scope still works.
    let ok = app
        .mcp(Some(&token), &call("echo", json!({"message": "x"})), None)
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn m02_a_token_without_the_base_scope_is_refused_with_403() {
    let app = spawn_app().await;
    let flow = app.full_flow("openid profile").await;
    let response = app.mcp(Some(&access_token(&flow)), INITIALIZE, None).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(challenge(&response).contains("scope=\"mcp:tools\""));
}

#[tokio::test]
async fn m06_origin_is_validated() {
    let app = spawn_app_with(|s| {
        s.issuer = None;
    })
    .await;
    let flow = app.full_flow("mcp:tools").await;
    let token = access_token(&flow);
    let evil = app
        .mcp(Some(&token), INITIALIZE, Some("https://evil.test"))
        .await;
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    let rebinding = app
        .mcp(
            Some(&token),
            INITIALIZE,
            Some("http://attacker.localhost.evil.test"),
        )
        .await;
    assert_eq!(rebinding.status(), StatusCode::FORBIDDEN);
    // Refused even before authentication: no token needed to be refused.
    assert_eq!(
        app.mcp(None, INITIALIZE, Some("https://evil.test"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    // The issuer's own origin and (with a loopback issuer) local tools such as the Inspector.
    for origin in [app.base.as_str(), "http://localhost:6274"] {
        let ok = app.mcp(Some(&token), INITIALIZE, Some(origin)).await;
        assert_eq!(ok.status(), StatusCode::OK, "{origin}");
    }
    // No Origin at all (native clients) is fine.
    assert_eq!(
        app.mcp(Some(&token), INITIALIZE, None).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn m06_configured_origins_are_allowed() {
    let app = spawn_app_with(|s| {
        s.auth.mcp_allowed_origins = vec!["https://app.example.test".into()];
    })
    .await;
    let flow = app.full_flow("mcp:tools").await;
    let token = access_token(&flow);
    let ok = app
        .mcp(Some(&token), INITIALIZE, Some("https://app.example.test"))
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let other = app
        .mcp(
            Some(&token),
            INITIALIZE,
            Some("https://app.example.test:8443"),
        )
        .await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn s17_mcp_endpoint_answers_cors_preflight() {
    let app = spawn_app().await;
    let response = app
        .http
        .request(reqwest::Method::OPTIONS, app.resource())
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, mcp-protocol-version",
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert!(
        response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let allowed = response.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("mcp-protocol-version"));
}

#[tokio::test]
async fn s15_a_token_for_another_resource_is_refused() {
    let app = spawn_app().await;
    let flow = app.full_flow("mcp:tools").await;
    let token = access_token(&flow);
    // A second server on the same database protects a different resource: it must refuse a
    // token whose audience is the first one's, though the token is otherwise perfectly valid.
    let other = spawn_app_on(&app.db_path, |s| {
        s.resource = Some("https://other.example.test/api/mcp".into());
    })
    .await;
    let refused = other.mcp(Some(&token), INITIALIZE, None).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&refused).contains("error=\"invalid_token\""));
    assert_eq!(other.session_status(&token).await, StatusCode::UNAUTHORIZED);
    // The token still works where it belongs.
    assert_eq!(
        app.mcp(Some(&token), INITIALIZE, None).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn s15_multi_audience_and_look_alike_resources_are_refused() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let (_, challenge) = pkce();
    let ours = app.resource();
    let variants = [
        vec![ours.clone(), "https://evil.test/api/mcp".to_owned()],
        vec![format!("{ours}/")],
        vec![ours.to_uppercase()],
        vec![format!("{ours}?x=1")],
    ];
    for resources in variants {
        let mut params = TestApp::authorize_params(&client_id, &challenge, "mcp:tools", "s");
        for r in &resources {
            params.push(("resource", r));
        }
        let response = app.authorize(&browser, &params).await;
        let target = location(&response);
        assert_eq!(
            query_of(&target).get("error").map(String::as_str),
            Some("invalid_target"),
            "{resources:?} -> {target}"
        );
    }
}

/// A refused request whose body arrives after its headers (as many HTTP clients send it) must
/// not cost the client its keep-alive connection: clients send the discovery request that
/// follows a 401 on the same connection, and would see it drop.
#[tokio::test]
async fn a_refusal_keeps_the_connection_usable() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app().await;
    let port = app.base.rsplit(':').next().unwrap();
    let mut stream = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let body = call("echo", json!({ "message": "hi" }));
    let head = format!(
        "POST /api/mcp HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    // The server answers 401 from the headers alone; the body follows a moment later.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stream.write_all(body.as_bytes()).await.unwrap();
    let first = read_response(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 401"), "{first}");

    let next = format!(
        "GET /.well-known/oauth-protected-resource/api/mcp HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"
    );
    stream.write_all(next.as_bytes()).await.unwrap();
    let second = read_response(&mut stream).await;
    assert!(
        second.starts_with("HTTP/1.1 200"),
        "second request: {second:?}"
    );

    /// One response (head and Content-Length body); empty if the connection closed first.
    async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    return text;
                }
            }
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut chunk))
                    .await
                    .expect("the server answers")
                    .unwrap_or(0);
            if read == 0 {
                return text;
            }
            buf.extend_from_slice(&chunk[..read]);
        }
    }
}
