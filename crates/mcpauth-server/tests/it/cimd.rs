//! Client ID Metadata Documents (SECURITY M3, M7): a real HTTPS document server on loopback,
//! with a certificate authority made for the test, and the server fetching from it with
//! `[cimd] allow_loopback` on (or off, to prove the refusals).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// What the document server answers for a path.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Sends half the body, waits this long, then the rest.
    pub stall: Option<Duration>,
}

impl Reply {
    pub fn json(body: &Value) -> Self {
        Self {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            stall: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// An HTTPS server on 127.0.0.1 with a certificate for `localhost` and `127.0.0.1` signed by a
/// throw-away CA (written to `ca_file`). It counts every TCP connection it accepts.
pub struct DocumentServer {
    pub port: u16,
    pub ca_file: PathBuf,
    pub connections: Arc<AtomicUsize>,
    /// Replies by path; a path without one gets 404.
    pub replies: Arc<Mutex<HashMap<String, Reply>>>,
    /// The `If-None-Match` header of every request, in order.
    pub if_none_match: Arc<Mutex<Vec<Option<String>>>>,
    _tls: TestTls,
}

impl DocumentServer {
    pub async fn start() -> Self {
        let tls = TestTls::new();
        let acceptor = tls.acceptor.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let replies: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let if_none_match: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let (count, table, seen) = (connections.clone(), replies.clone(), if_none_match.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (acceptor, table, seen) = (acceptor.clone(), table.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16384 {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request).to_string();
                    let path = text.split(' ').nth(1).unwrap_or("/").to_owned();
                    let etag = text
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("if-none-match: ")
                                .or_else(|| l.strip_prefix("If-None-Match: "))
                        })
                        .map(str::to_owned);
                    seen.lock().unwrap().push(etag.clone());
                    let reply = table.lock().unwrap().get(&path).cloned();
                    let mut reply = reply.unwrap_or(Reply {
                        status: 404,
                        headers: Vec::new(),
                        body: b"not found".to_vec(),
                        stall: None,
                    });
                    let current = reply
                        .headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("etag"))
                        .map(|(_, v)| v.clone());
                    if reply.status == 200 && etag.is_some() && etag == current {
                        reply.status = 304;
                        reply.body.clear();
                    }
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    for (name, value) in &reply.headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = tls.write_all(head.as_bytes()).await;
                    match reply.stall {
                        Some(stall) => {
                            let half = reply.body.len() / 2;
                            let _ = tls.write_all(&reply.body[..half]).await;
                            let _ = tls.flush().await;
                            tokio::time::sleep(stall).await;
                            let _ = tls.write_all(&reply.body[half..]).await;
                        }
                        None => {
                            let _ = tls.write_all(&reply.body).await;
                        }
                    }
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self {
            port,
            ca_file: tls.ca_file.clone(),
            connections,
            replies,
            if_none_match,
            _tls: tls,
        }
    }

    /// The document URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    pub fn serve(&self, path: &str, reply: Reply) {
        self.replies.lock().unwrap().insert(path.into(), reply);
    }

    /// Serves a valid document for `path` with these redirect URIs.
    pub fn serve_document(&self, path: &str, redirect_uris: &[&str]) -> String {
        let url = self.url(path);
        self.serve(path, Reply::json(&document(&url, redirect_uris)));
        url
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

pub fn document(client_id: &str, redirect_uris: &[&str]) -> Value {
    json!({
        "client_id": client_id,
        "client_name": "Document Client",
        "redirect_uris": redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        "logo_uri": "https://docs.example/logo.png",
    })
}

/// A server that may fetch from `docs` (loopback allowed, its CA trusted).
async fn app_for(
    docs: &DocumentServer,
    configure: impl FnOnce(&mut mcpauth_server::Settings),
) -> TestApp {
    let ca = docs.ca_file.clone();
    spawn_app_with(move |s| {
        s.auth.cimd.allow_loopback = true;
        s.auth.cimd.extra_ca_file = Some(ca);
        configure(s);
    })
    .await
}

async fn as_metadata(app: &TestApp) -> Value {
    let url = app.url("/.well-known/oauth-authorization-server");
    app.http
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The authorization request of `client_id` in a signed-in browser.
async fn authorize(app: &TestApp, browser: &reqwest::Client, client_id: &str) -> reqwest::Response {
    let (_, challenge) = pkce();
    app.authorize(
        browser,
        &TestApp::authorize_params(client_id, &challenge, "openid", "st"),
    )
    .await
}

/// Asserts an error page (never a redirect) whose text contains `why`.
async fn assert_error_page(response: reqwest::Response, why: &str) {
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
    let body = html_unescape(&response.text().await.unwrap());
    assert!(body.contains(why), "expected {why:?} in {body}");
}

#[tokio::test]
async fn m03_document_client_completes_the_flow() {
    let docs = DocumentServer::start().await;
    let client_id = docs.serve_document("/client.json", &[REDIRECT_URI]);
    let app = app_for(&docs, |_| {}).await;

    let metadata = as_metadata(&app).await;
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
    assert!(
        metadata["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("none"))
    );

    let browser = app.signed_in_browser().await;
    let (verifier, challenge) = pkce();
    let code = app
        .code_for(&browser, &client_id, &challenge, "openid mcp:tools")
        .await;
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.session_status(access).await, StatusCode::OK);

    // A shared secret is refused for this public client.
    let with_secret = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &client_id),
            ("client_secret", "guess"),
        ])
        .await;
    assert_eq!(with_secret.status(), StatusCode::UNAUTHORIZED);

    let revoked = app
        .http
        .post(app.url("/api/auth/mcp/revoke"))
        .form(&[("token", refresh), ("client_id", client_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(app.session_status(access).await, StatusCode::UNAUTHORIZED);
    // The document was fetched once: the store kept it for the later requests.
    assert_eq!(docs.connections(), 1);
}

#[tokio::test]
async fn m03_loopback_and_special_addresses_are_never_connected_to() {
    let docs = DocumentServer::start().await;
    docs.serve_document("/client.json", &[REDIRECT_URI]);
    // The loopback exception is off, the CA still trusted: only the address rule refuses.
    let ca = docs.ca_file.clone();
    let app = spawn_app_with(move |s| s.auth.cimd.extra_ca_file = Some(ca)).await;
    let browser = app.signed_in_browser().await;
    let port = docs.port;
    for client_id in [
        format!("https://localhost:{port}/client.json"),
        format!("https://127.1:{port}/client.json"),
        format!("https://2130706433:{port}/client.json"),
        format!("https://0x7f.1:{port}/client.json"),
        format!("https://[::ffff:127.0.0.1]:{port}/client.json"),
        format!("https://[::1]:{port}/client.json"),
        "https://169.254.169.254/latest/client.json".to_owned(),
    ] {
        let response = authorize(&app, &browser, &client_id).await;
        assert_error_page(response, "could not be fetched").await;
        let token = app
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", "x"),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", &client_id),
                ("code_verifier", "v"),
            ])
            .await;
        assert_eq!(token.status(), StatusCode::UNAUTHORIZED);
        let body: Value = token.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{client_id}");
    }
    assert_eq!(docs.connections(), 0, "no connection reached the listener");
}

#[tokio::test]
async fn m03_redirects_other_statuses_big_and_slow_bodies_are_refused() {
    let docs = DocumentServer::start().await;
    let app = app_for(&docs, |s| {
        s.auth.cimd.timeout = std::time::Duration::from_millis(1000)
    })
    .await;
    let browser = app.signed_in_browser().await;

    let moved = docs.url("/moved.json");
    let target = docs.serve_document("/target.json", &[REDIRECT_URI]);
    docs.serve(
        "/moved.json",
        Reply {
            status: 302,
            headers: vec![("Location".into(), target)],
            body: Vec::new(),
            stall: None,
        },
    );
    assert_error_page(
        authorize(&app, &browser, &moved).await,
        "redirects are not followed",
    )
    .await;

    let missing = docs.url("/missing.json");
    assert_error_page(
        authorize(&app, &browser, &missing).await,
        "only 200 is accepted",
    )
    .await;

    let big = docs.url("/big.json");
    let mut padded = document(&big, &[REDIRECT_URI]);
    padded["padding"] = json!("x".repeat(6 * 1024));
    docs.serve("/big.json", Reply::json(&padded));
    assert_error_page(
        authorize(&app, &browser, &big).await,
        "larger than 5120 bytes",
    )
    .await;

    let slow = docs.url("/slow.json");
    let mut reply = Reply::json(&document(&slow, &[REDIRECT_URI]));
    reply.stall = Some(Duration::from_secs(3));
    docs.serve("/slow.json", reply);
    let started = std::time::Instant::now();
    assert_error_page(authorize(&app, &browser, &slow).await, "took longer than").await;
    assert!(started.elapsed() < Duration::from_secs(3));

    let html = docs.url("/page.json");
    let mut reply = Reply::json(&document(&html, &[REDIRECT_URI]));
    reply.headers = vec![("Content-Type".into(), "text/html".into())];
    docs.serve("/page.json", reply);
    assert_error_page(
        authorize(&app, &browser, &html).await,
        "not application/json",
    )
    .await;
}

#[tokio::test]
async fn m03_invalid_documents_are_refused_and_never_cached() {
    let docs = DocumentServer::start().await;
    let app = app_for(&docs, |_| {}).await;
    let browser = app.signed_in_browser().await;
    let url = docs.url("/client.json");
    let cases = [
        (
            document("https://other.example/client.json", &[REDIRECT_URI]),
            "differs from the URL",
        ),
        (
            {
                let mut d = document(&url, &[REDIRECT_URI]);
                d["client_secret"] = json!("shared");
                d
            },
            "shared secret",
        ),
        (
            {
                let mut d = document(&url, &[REDIRECT_URI]);
                d["token_endpoint_auth_method"] = json!("client_secret_basic");
                d
            },
            "use none",
        ),
        (document(&url, &["http://localhost:*/callback"]), "wildcard"),
        (document(&url, &["http://evil.example/cb"]), "loopback"),
    ];
    for (body, why) in cases {
        docs.serve("/client.json", Reply::json(&body));
        assert_error_page(authorize(&app, &browser, &url).await, why).await;
    }
    // Nothing was kept: each request fetched again, and a fixed document works at once.
    assert_eq!(docs.connections(), 5);
    docs.serve_document("/client.json", &[REDIRECT_URI]);
    let response = authorize(&app, &browser, &url).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert!(location(&response).starts_with("/consent"));
}

#[tokio::test]
async fn m03_url_form_refusals() {
    let docs = DocumentServer::start().await;
    let app = app_for(&docs, |_| {}).await;
    let browser = app.signed_in_browser().await;
    let port = docs.port;
    for (client_id, why) in [
        (
            format!("https://localhost:{port}/a/../client.json"),
            ". or ..",
        ),
        (
            format!("https://localhost:{port}/client.json#x"),
            "fragment",
        ),
        (
            format!("https://user@localhost:{port}/client.json"),
            "user information",
        ),
        (format!("https://localhost:{port}/client.json?v=1"), "query"),
        (format!("https://localhost:{port}/"), "path"),
    ] {
        assert_error_page(authorize(&app, &browser, &client_id).await, why).await;
    }
    assert_eq!(docs.connections(), 0);
}

#[tokio::test]
async fn m03_per_host_fetch_limit() {
    let docs = DocumentServer::start().await;
    let app = app_for(&docs, |s| s.auth.cimd.per_host_per_minute = 2).await;
    let browser = app.signed_in_browser().await;
    let url = docs.url("/missing.json");
    for _ in 0..2 {
        assert_error_page(authorize(&app, &browser, &url).await, "only 200").await;
    }
    assert_error_page(authorize(&app, &browser, &url).await, "too many fetches").await;
    assert_eq!(docs.connections(), 2);
}

#[tokio::test]
async fn m03_cache_lifetime_and_etag_revalidation() {
    let docs = DocumentServer::start().await;
    let url = docs.url("/client.json");
    docs.serve(
        "/client.json",
        Reply::json(&document(&url, &[REDIRECT_URI]))
            .header("Cache-Control", "max-age=600")
            .header("ETag", "\"v1\""),
    );
    let app = app_for(&docs, |_| {}).await;
    let browser = app.signed_in_browser().await;
    assert_eq!(
        authorize(&app, &browser, &url).await.status(),
        StatusCode::FOUND
    );
    app.clock.advance(599);
    assert_eq!(
        authorize(&app, &browser, &url).await.status(),
        StatusCode::FOUND
    );
    assert_eq!(docs.connections(), 1, "fresh for max-age");
    app.clock.advance(2);
    assert_eq!(
        authorize(&app, &browser, &url).await.status(),
        StatusCode::FOUND
    );
    assert_eq!(docs.connections(), 2);
    assert_eq!(
        *docs.if_none_match.lock().unwrap(),
        vec![None, Some("\"v1\"".to_owned())],
        "revalidated with its ETag (answered 304)"
    );
}

#[tokio::test]
async fn m03_changed_redirect_uris_ask_for_consent_again() {
    let docs = DocumentServer::start().await;
    let url = docs.serve_document("/client.json", &[REDIRECT_URI]);
    let app = app_for(&docs, |_| {}).await;
    let browser = app.signed_in_browser().await;
    let (_, challenge) = pkce();
    app.code_for(&browser, &url, &challenge, "openid").await;
    let again = authorize(&app, &browser, &url).await;
    assert!(
        location(&again).starts_with(REDIRECT_URI),
        "consent remembered"
    );

    docs.serve_document(
        "/client.json",
        &[REDIRECT_URI, "https://new-home.example/callback"],
    );
    app.clock
        .advance(mcpauth_core::cimd::DEFAULT_MIN_CACHE_SECONDS + 1);
    let after = authorize(&app, &browser, &url).await;
    assert!(
        location(&after).starts_with("/consent"),
        "asked again: {}",
        location(&after)
    );
}

#[tokio::test]
async fn cimd_a_disabled_document_client_stays_disabled_after_a_refetch() {
    let docs = DocumentServer::start().await;
    let url = docs.serve_document("/client.json", &[REDIRECT_URI]);
    let app = app_for(&docs, |_| {}).await;
    let browser = app.signed_in_browser().await;
    assert_eq!(
        authorize(&app, &browser, &url).await.status(),
        StatusCode::FOUND
    );
    sqlx::query(r#"UPDATE "oauthApplication" SET disabled = 1 WHERE client_id = ?"#)
        .bind(&url)
        .execute(&app.db().await)
        .await
        .unwrap();
    app.clock
        .advance(mcpauth_core::cimd::DEFAULT_MIN_CACHE_SECONDS + 1);
    assert_error_page(authorize(&app, &browser, &url).await, "not registered").await;
    assert_eq!(docs.connections(), 2, "fetched again, still disabled");
}

#[tokio::test]
async fn m03_text_plain_and_portless_loopback_redirects_are_accepted() {
    let docs = DocumentServer::start().await;
    let url = docs.url("/raw/client.json");
    let mut reply = Reply::json(&document(&url, &["http://localhost/callback"]));
    reply.headers = vec![("Content-Type".into(), "text/plain; charset=utf-8".into())];
    docs.serve("/raw/client.json", reply);
    let app = app_for(&docs, |_| {}).await;
    let browser = app.signed_in_browser().await;
    // REDIRECT_URI is http://localhost:9999/callback: any port matches a port-less loopback one.
    let (_, challenge) = pkce();
    app.code_for(&browser, &url, &challenge, "openid").await;
}

#[tokio::test]
async fn cimd_policy_disabled_denied_and_allowed() {
    let docs = DocumentServer::start().await;
    let url = docs.serve_document("/client.json", &[REDIRECT_URI]);

    let off = app_for(&docs, |s| s.auth.cimd.enabled = false).await;
    let metadata = as_metadata(&off).await;
    assert_eq!(metadata["client_id_metadata_document_supported"], false);
    let browser = off.signed_in_browser().await;
    assert_error_page(authorize(&off, &browser, &url).await, "does not accept").await;

    let denied = app_for(&docs, |s| s.auth.cimd.denied = vec!["localhost".into()]).await;
    let browser = denied.signed_in_browser().await;
    assert_error_page(authorize(&denied, &browser, &url).await, "not accepted").await;

    let elsewhere = app_for(&docs, |s| s.auth.cimd.allowed = vec!["chatgpt.com".into()]).await;
    let browser = elsewhere.signed_in_browser().await;
    assert_error_page(authorize(&elsewhere, &browser, &url).await, "not accepted").await;

    let prefix = format!("https://localhost:{}/", docs.port);
    let allowed = app_for(&docs, |s| s.auth.cimd.allowed = vec![prefix]).await;
    let browser = allowed.signed_in_browser().await;
    assert_eq!(
        authorize(&allowed, &browser, &url).await.status(),
        StatusCode::FOUND
    );
    assert_eq!(docs.connections(), 1);
}

#[tokio::test]
async fn cimd_trusted_client_is_pinned_and_skips_consent() {
    let docs = DocumentServer::start().await;
    let url = docs.serve_document("/client.json", &[REDIRECT_URI]);
    let pinned = url.clone();
    let app = app_for(&docs, move |s| {
        s.auth.cimd.allowed = vec!["chatgpt.com".into()];
        s.auth.trusted_clients = vec![mcpauth::TrustedClient {
            client_id: pinned,
            client_secret: None,
            token_endpoint_auth_method: None,
            name: String::new(),
            redirect_uris: Vec::new(),
            logo_uri: None,
            skip_consent: true,
            refresh_reuse_policy: None,
            ..Default::default()
        }];
    })
    .await;
    let browser = app.signed_in_browser().await;
    let response = authorize(&app, &browser, &url).await;
    assert!(
        location(&response).starts_with(REDIRECT_URI),
        "{}",
        location(&response)
    );
}

#[tokio::test]
async fn cimd_trusted_entry_with_its_own_redirect_uris_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings();
    settings.database_url = format!("sqlite://{}", dir.path().join("db").display());
    settings.auth.trusted_clients = vec![mcpauth::TrustedClient {
        client_id: "https://chatgpt.com/oauth/client.json".into(),
        client_secret: None,
        token_endpoint_auth_method: None,
        name: String::new(),
        redirect_uris: vec!["https://evil.example/cb".into()],
        logo_uri: None,
        skip_consent: true,
        refresh_reuse_policy: None,
        ..Default::default()
    }];
    let refused = mcpauth_server::Application::build(&settings, None).await;
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("give only client_id"), "{message}");
}

/// The consent page of a fresh authorization request by `client_id`.
async fn consent_page(app: &TestApp, client_id: &str) -> String {
    let browser = app.signed_in_browser().await;
    let response = authorize(app, &browser, client_id).await;
    let target = location(&response);
    assert!(target.starts_with("/consent"), "{target}");
    let (status, _, body) = get_page(&browser, &app.url(&target)).await;
    assert_eq!(status, StatusCode::OK);
    html_unescape(&body)
}

#[tokio::test]
async fn m07_consent_shows_the_verified_host_of_a_document_client() {
    let docs = DocumentServer::start().await;
    let url = docs.serve_document("/client.json", &[REDIRECT_URI, "https://app.example/cb"]);
    let app = app_for(&docs, |_| {}).await;
    let page = consent_page(&app, &url).await;
    assert!(page.contains("Document Client"));
    assert!(page.contains(&format!(
        "fetched from <strong class=\"mono\">localhost:{}</strong>",
        docs.port
    )));
    assert!(page.contains("https://docs.example/logo.png"));
    assert!(!page.contains("self-asserted"));
    assert!(
        !page.contains("local app, not a website"),
        "one redirect is a website"
    );
    assert!(
        page.contains("You will be sent back to <strong class=\"mono\">localhost:9999</strong>")
    );
}

#[tokio::test]
async fn m07_consent_says_a_registered_name_is_self_asserted() {
    let app = spawn_app().await;
    let client_id = app.register_public("https://app.example/cb").await;
    let browser = app.signed_in_browser().await;
    let (_, challenge) = pkce();
    let mut params = TestApp::authorize_params(&client_id, &challenge, "openid", "s");
    params.retain(|(k, _)| *k != "redirect_uri");
    let target = location(&app.authorize(&browser, &params).await);
    let (_, _, body) = get_page(&browser, &app.url(&target)).await;
    let page = html_unescape(&body);
    assert!(
        page.contains("“Test MCP Client” is self-asserted"),
        "{page}"
    );
    assert!(!page.contains("fetched from"));
    assert!(page.contains("You will be sent back to <strong class=\"mono\">app.example</strong>"));
}

#[tokio::test]
async fn m07_consent_warns_when_every_redirect_is_on_loopback() {
    let docs = DocumentServer::start().await;
    let url = docs.serve_document("/client.json", &[REDIRECT_URI, "http://127.0.0.1/cb"]);
    let app = app_for(&docs, |_| {}).await;
    let page = consent_page(&app, &url).await;
    assert!(
        page.contains("This is a local app, not a website"),
        "{page}"
    );
}
