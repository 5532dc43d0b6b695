//! The gateway with connected accounts: `[[upstreams]] credential` injects the user's token at
//! a connected service into the requests to that upstream alone (SECURITY V3); a user who has
//! not connected, or must reconnect, is asked to — a URL elicitation (`-32042`) for a client
//! that declared `elicitation.url` at `initialize`, a tool error with the link for any other
//! (MCP 2025-11-25) — and `notifications/elicitation/complete` reaches the session's open GET
//! stream when the connect completes. The service is a small OAuth 2.0 provider of this file
//! (authorization code, refresh tokens it can be told to refuse); the clock is the app's manual
//! clock, so expiry is exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response as AxumResponse};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use mcpauth_server::CredentialSettings;
use reqwest::Client;

use super::*;

const CONNECTION: &str = "svc";
/// Lifetime of the service's access tokens, seconds.
const TTL: i64 = 300;

/// The connected service's OAuth provider: every code and refresh answers new tokens
/// `svc-at-N` / `svc-rt-N`, unless told to refuse refreshes.
#[derive(Clone, Default)]
struct Service {
    issued: Arc<AtomicUsize>,
    refreshes: Arc<AtomicUsize>,
    refuse: Arc<AtomicBool>,
    url: String,
}

#[derive(serde::Deserialize)]
struct AuthorizeQuery {
    redirect_uri: String,
    state: String,
}

async fn authorize(Query(query): Query<AuthorizeQuery>) -> Redirect {
    Redirect::to(&format!(
        "{}?code=code-1&state={}",
        query.redirect_uri, query.state
    ))
}

async fn token(
    State(service): State<Service>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> AxumResponse {
    if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
        service.refreshes.fetch_add(1, Ordering::SeqCst);
        // Slow enough that parallel callers overlap.
        tokio::time::sleep(Duration::from_millis(100)).await;
        if service.refuse.load(Ordering::SeqCst) {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "invalid_grant" })),
            )
                .into_response();
        }
    }
    let n = service.issued.fetch_add(1, Ordering::SeqCst) + 1;
    Json(json!({
        "access_token": format!("svc-at-{n}"),
        "refresh_token": format!("svc-rt-{n}"),
        "token_type": "Bearer",
        "expires_in": TTL,
        "scope": "read",
    }))
    .into_response()
}

async fn spawn_service() -> Service {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service = Service {
        url: format!("http://{}", listener.local_addr().unwrap()),
        ..Service::default()
    };
    let app = Router::new()
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(service.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    service
}

/// The `[[connections]]` entry for `service`, as the configuration file says it.
fn connection(service: &Service) -> Value {
    json!({
        "id": CONNECTION,
        "name": "Service",
        "type": "oauth2",
        "authorization_url": format!("{}/authorize", service.url),
        "token_url": format!("{}/token", service.url),
        "client_id": "mcpauth",
        "client_secret": "service-secret",
        "scopes": ["read"],
    })
}

fn credential(header: &str, format: &str) -> Option<CredentialSettings> {
    Some(CredentialSettings {
        connection: CONNECTION.into(),
        header: header.into(),
        format: format.into(),
    })
}

/// The gateway with `/mcp/a` (credential in `Authorization`), `/mcp/c` (the same credential in
/// `X-Service-Token`) and `/mcp/b` (no credential), all the echo upstream.
async fn spawn_connected() -> (Gateway, Service) {
    let service = spawn_service().await;
    let upstream = upstream::spawn().await;
    let url = upstream.url.clone();
    let svc = service.clone();
    let app = spawn_app_with(|settings| {
        settings.connections = vec![serde_json::from_value(connection(&svc)).unwrap()];
        settings.vault_key = Some(
            serde_json::from_value(json!(mcpauth_core::vault::VaultKey::generate().1)).unwrap(),
        );
        let mut a = upstream_at("/mcp/a", &url);
        a.credential = credential("Authorization", "Bearer {token}");
        let mut c = upstream_at("/mcp/c", &url);
        c.credential = credential("X-Service-Token", "token={token}");
        settings.upstreams = vec![a, upstream_at("/mcp/b", &url), c];
    })
    .await;
    (Gateway { app, upstream }, service)
}

fn initialize(url_elicitation: bool) -> Value {
    let capabilities = if url_elicitation {
        json!({ "elicitation": { "url": {} } })
    } else {
        json!({ "elicitation": {} })
    };
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25", "capabilities": capabilities,
            "clientInfo": { "name": "test", "version": "1" },
        },
    })
}

/// A user signed in to mcpauth in `browser`, with a token for `/mcp/a`.
struct User {
    token: String,
    browser: Client,
}

async fn user(gateway: &Gateway) -> User {
    let flow = gateway
        .app
        .full_flow_for("mcp:tools", Some(&gateway.resource("/mcp/a")))
        .await;
    User {
        token: flow.tokens["access_token"].as_str().unwrap().to_owned(),
        browser: flow.browser,
    }
}

impl Gateway {
    /// `initialize` at `path`, declaring URL elicitation or not; the session id.
    async fn initialize(&self, path: &str, token: &str, url_elicitation: bool) -> String {
        let response = self
            .post(path, token, &initialize(url_elicitation))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// A `tools/call` of `headers` in `session`; the JSON-RPC answer.
    async fn call_in(&self, path: &str, token: &str, session: Option<&str>) -> Value {
        let mut request = self.post(path, token, &call("headers"));
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }
}

/// The connect link of an answer: the URL elicitation's, or the one in a tool error's text.
fn link_of(answer: &Value) -> String {
    if let Some(url) = answer.pointer("/error/data/elicitations/0/url") {
        return url.as_str().unwrap().to_owned();
    }
    let text = answer["result"]["content"][0]["text"].as_str().unwrap();
    let start = text.find("http").unwrap();
    text[start..].split_whitespace().next().unwrap().to_owned()
}

/// The browser follows `link` and connects the service: the connect page's form, the
/// provider, the callback.
async fn connect(gateway: &Gateway, browser: &Client, link: &str) {
    let (status, _, html) = get_page(browser, link).await;
    assert_eq!(status, StatusCode::OK, "the connect page: {html}");
    let action = html_unescape(
        html.split("<form method=\"post\" action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a connect form"),
    );
    let mut form = vec![("csrf_token", input_value(&html, "csrf_token").unwrap())];
    if let Some(ticket) = input_value(&html, "ticket") {
        form.push(("ticket", ticket));
    }
    let response = browser
        .post(gateway.app.url(&action))
        .header("origin", &gateway.app.base)
        .form(&form)
        .send()
        .await
        .unwrap();
    let mut next = location(&response);
    // To the provider and back to mcpauth's callback.
    for _ in 0..4 {
        let response = browser.get(&next).send().await.unwrap();
        if response.status().is_redirection() {
            next = location(&response);
            if !next.starts_with("http") {
                next = gateway.app.url(&next);
            }
            continue;
        }
        let page = response.text().await.unwrap();
        assert!(page.contains("return to your client"), "{page}");
        return;
    }
    panic!("the connect flow did not end");
}

#[tokio::test]
async fn v3_the_token_goes_to_its_upstream_only_in_its_header() {
    let (gateway, _service) = spawn_connected().await;
    let user = user(&gateway).await;
    let answer = gateway.call_in("/mcp/a", &user.token, None).await;
    connect(&gateway, &user.browser, &link_of(&answer)).await;

    // The configured upstream gets it, in its header and format, whatever the client forged.
    let seen = received_headers(
        gateway
            .post("/mcp/a", &user.token, &call("headers"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["authorization"], "Bearer svc-at-1");
    // Another upstream never sees it, nor a client's header that looks like it.
    let token_b = gateway.token("/mcp/b", "mcp:tools").await;
    let seen_b = received_headers(
        gateway
            .post("/mcp/b", &token_b, &call("headers"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(!seen_b.to_string().contains("svc-"), "{seen_b}");
}

#[tokio::test]
async fn v3_a_client_cannot_forge_the_credential_header() {
    let (gateway, _service) = spawn_connected().await;
    let flow = gateway
        .app
        .full_flow_for("mcp:tools", Some(&gateway.resource("/mcp/c")))
        .await;
    let token = flow.tokens["access_token"].as_str().unwrap();
    // Not connected: tools/list passes without any credential, the client's own dropped.
    let response = gateway
        .post("/mcp/c", token, &list())
        .header("x-service-token", "token=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Connected: the upstream sees the user's token, never the forged one.
    let answer = gateway.call_in("/mcp/c", token, None).await;
    connect(&gateway, &flow.browser, &link_of(&answer)).await;
    let seen = received_headers(
        gateway
            .post("/mcp/c", token, &call("headers"))
            .header("x-service-token", "token=forged")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["x-service-token"], "token=svc-at-1");
    assert!(seen.get("authorization").is_none(), "{seen}");
}

#[tokio::test]
async fn not_connected_declared_client_gets_url_elicitation_others_a_tool_error() {
    let (gateway, _service) = spawn_connected().await;
    let user = user(&gateway).await;

    // Without a session (nothing declared): the tool error with the link.
    let answer = gateway.call_in("/mcp/a", &user.token, None).await;
    assert_eq!(answer["id"], 2);
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    let link = link_of(&answer);
    assert!(
        link.starts_with(
            &gateway
                .app
                .url(&format!("/api/auth/connections/{CONNECTION}/connect?"))
        ),
        "{link}"
    );

    // A session whose client declared only form elicitation: the same.
    let session = gateway.initialize("/mcp/a", &user.token, false).await;
    let answer = gateway.call_in("/mcp/a", &user.token, Some(&session)).await;
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(answer.get("error").is_none());

    // Declared `elicitation.url`: -32042 with one URL elicitation.
    let session = gateway.initialize("/mcp/a", &user.token, true).await;
    let answer = gateway.call_in("/mcp/a", &user.token, Some(&session)).await;
    assert_eq!(answer["id"], 2);
    assert_eq!(answer["error"]["code"], -32042, "{answer}");
    let elicitations = answer["error"]["data"]["elicitations"].as_array().unwrap();
    assert_eq!(elicitations.len(), 1);
    assert_eq!(elicitations[0]["mode"], "url");
    assert!(elicitations[0]["elicitationId"].as_str().unwrap().len() >= 16);
    assert!(
        elicitations[0]["message"]
            .as_str()
            .unwrap()
            .contains("Service")
    );

    // The same session id with another user's token: not theirs, so no URL elicitation.
    let other = gateway.token("/mcp/a", "mcp:tools").await;
    let answer = gateway.call_in("/mcp/a", &other, Some(&session)).await;
    assert_eq!(answer["result"]["isError"], true, "{answer}");

    // Requests that run nothing for the user pass without a connection.
    let listed = gateway
        .post("/mcp/a", &user.token, &list())
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    let listed: Value = listed.json().await.unwrap();
    assert!(listed["result"]["tools"].is_array(), "{listed}");
}

#[tokio::test]
async fn the_open_stream_is_told_when_the_connect_completes() {
    let (gateway, service) = spawn_connected().await;
    let user = user(&gateway).await;
    let session = gateway.initialize("/mcp/a", &user.token, true).await;
    let stream = gateway
        .app
        .http
        .get(gateway.resource("/mcp/a"))
        .bearer_auth(&user.token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("x-test-hold-open", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mut events = stream.bytes_stream();

    let answer = gateway.call_in("/mcp/a", &user.token, Some(&session)).await;
    let elicitation_id = answer["error"]["data"]["elicitations"][0]["elicitationId"]
        .as_str()
        .unwrap()
        .to_owned();
    connect(&gateway, &user.browser, &link_of(&answer)).await;
    assert_eq!(service.issued.load(Ordering::SeqCst), 1);

    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !text.contains("notifications/elicitation/complete") {
        let chunk = tokio::time::timeout_at(deadline.into(), events.next())
            .await
            .expect("the notification in time")
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let messages = sse_messages(&text);
    let complete = messages
        .iter()
        .find(|m| m["method"] == "notifications/elicitation/complete")
        .unwrap();
    assert_eq!(complete["params"]["elicitationId"], elicitation_id);
    // The upstream's own event came through whole.
    assert!(
        messages
            .iter()
            .any(|m| m["method"] == "notifications/message"),
        "{text}"
    );

    // And the retried call carries the token.
    let seen = received_headers(
        gateway
            .post("/mcp/a", &user.token, &call("headers"))
            .header("mcp-session-id", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["authorization"], "Bearer svc-at-1");
}

#[tokio::test]
async fn v4_ten_parallel_calls_refresh_once_and_a_refused_refresh_asks_to_reconnect() {
    let (gateway, service) = spawn_connected().await;
    let user = user(&gateway).await;
    let session = gateway.initialize("/mcp/a", &user.token, true).await;
    let answer = gateway.call_in("/mcp/a", &user.token, Some(&session)).await;
    connect(&gateway, &user.browser, &link_of(&answer)).await;

    // Within a minute of expiry: ten calls at once, one refresh, all with the new token.
    gateway.app.clock.advance(TTL - 30);
    let calls = (0..10).map(|_| {
        gateway
            .post("/mcp/a", &user.token, &call("headers"))
            .header("mcp-session-id", &session)
            .send()
    });
    for response in futures_util::future::join_all(calls).await {
        let seen = received_headers(response.unwrap()).await;
        assert_eq!(seen["authorization"], "Bearer svc-at-2");
    }
    assert_eq!(service.refreshes.load(Ordering::SeqCst), 1);

    // The provider refuses the next refresh: the call asks to connect again.
    service.refuse.store(true, Ordering::SeqCst);
    gateway.app.clock.advance(TTL - 30);
    let answer = gateway.call_in("/mcp/a", &user.token, Some(&session)).await;
    assert_eq!(answer["error"]["code"], -32042, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("again"),
        "{answer}"
    );
    assert_eq!(service.refreshes.load(Ordering::SeqCst), 2);
    // Reconnecting makes it work again.
    service.refuse.store(false, Ordering::SeqCst);
    connect(&gateway, &user.browser, &link_of(&answer)).await;
    let seen = received_headers(
        gateway
            .post("/mcp/a", &user.token, &call("headers"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["authorization"], "Bearer svc-at-3");
}

#[tokio::test]
async fn v1_v3_the_database_holds_no_token_after_a_connect_and_calls() {
    // (Logs and /metrics through a whole flow are checked by interop/connections.)
    let (gateway, _service) = spawn_connected().await;
    let user = user(&gateway).await;
    let answer = gateway.call_in("/mcp/a", &user.token, None).await;
    connect(&gateway, &user.browser, &link_of(&answer)).await;
    gateway.call_in("/mcp/a", &user.token, None).await;
    for stored in gateway.app.db_values().await {
        assert!(
            !stored.value.contains("svc-at-") && !stored.value.contains("svc-rt-"),
            "{}.{} holds a token",
            stored.table,
            stored.column
        );
    }
}
