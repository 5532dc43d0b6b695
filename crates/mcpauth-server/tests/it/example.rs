//! Runs the library's example, `crates/mcpauth/examples/protected_server.rs` (a user's own rmcp
//! server protected by mcpauth), as its own process and drives it over HTTP like an MCP client:
//! the 401 challenge, discovery, sign-up, dynamic registration, authorize + consent, the token
//! exchange, then `initialize` and `tools/call` with the bearer token.
//!
//! The example belongs to another package, so Cargo does not build it for this test: build it
//! first with `cargo build -p mcpauth --examples` (`scripts/test.sh` does, before the test
//! step). The binary is looked up next to this test's own target directory
//! (`target/debug/examples/protected_server`), or at `$PROTECTED_SERVER_BIN`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{PASSWORD, REDIRECT_URI, browser, client, location, pkce, query_of};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// `target/<profile>/examples/protected_server`, found from this test binary's path
/// (`target/<profile>/deps/it-<hash>`).
fn example_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PROTECTED_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir
        .join("examples")
        .join(format!("protected_server{}", std::env::consts::EXE_SUFFIX))
}

/// The running example and the origin it announced.
struct Example {
    base: String,
    _child: Child,
    _dir: tempfile::TempDir,
}

async fn start_example() -> Example {
    let binary = example_binary();
    assert!(
        binary.is_file(),
        "the example binary {} is missing: run `cargo build -p mcpauth --examples` first \
         (scripts/test.sh does), or set PROTECTED_SERVER_BIN",
        binary.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(&binary)
        .env("BIND", "127.0.0.1:0")
        .env_remove("ISSUER")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("example.db").display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("listening on ") {
                return url.trim().to_owned();
            }
        }
        panic!("the example exited without announcing where it listens");
    })
    .await
    .expect("the example announces `listening on …` within 30 s");
    // Keep draining stdout so the example never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Example {
        base,
        _child: child,
        _dir: dir,
    }
}

/// A JSON-RPC POST to the MCP endpoint, as Streamable HTTP clients send it.
async fn mcp_post(base: &str, token: Option<&str>, message: &Value) -> reqwest::Response {
    let mut request = client()
        .post(format!("{base}/api/mcp"))
        .header(ACCEPT, "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(message);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

fn initialize() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": { "name": "example-test", "version": "0" }
        }
    })
}

#[tokio::test]
async fn protected_server_example_completes_the_oauth_flow_and_serves_its_tool() {
    let example = start_example().await;
    let base = example.base.as_str();
    let http = client();

    // 1. Without a token: 401 with the challenge MCP clients discover from.
    let response = mcp_post(base, None, &initialize()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    let prm_url = format!("{base}/.well-known/oauth-protected-resource/api/mcp");
    assert!(
        challenge.starts_with(&format!("Bearer resource_metadata=\"{prm_url}\"")),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"mcp:tools\""), "{challenge}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32000);

    // 2. Discovery: the resource metadata names this server as the authorization server.
    let prm: Value = http
        .get(&prm_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prm["resource"], format!("{base}/api/mcp"));
    assert_eq!(prm["authorization_servers"], json!([base]));
    let metadata: Value = http
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], base);
    let endpoint = |name: &str| metadata[name].as_str().unwrap().to_owned();

    // 3. A user signs up (the browser keeps the session cookie).
    let browser = browser();
    let response = browser
        .post(format!("{base}/api/auth/sign-up/email"))
        .header("origin", base)
        .json(&json!({ "email": "ada@example.com", "password": PASSWORD, "name": "Ada" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let user: Value = response.json().await.unwrap();
    let user_id = user["user"]["id"].as_str().unwrap().to_owned();

    // 4. The MCP client registers itself.
    let response = http
        .post(endpoint("registration_endpoint"))
        .json(&json!({
            "client_name": "example test client",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let registered: Value = response.json().await.unwrap();
    let client_id = registered["client_id"].as_str().unwrap().to_owned();

    // 5. Authorize in the browser; consent through the JSON API.
    let (verifier, challenge) = pkce();
    let resource = format!("{base}/api/mcp");
    let authorize = reqwest::Url::parse_with_params(
        &endpoint("authorization_endpoint"),
        [
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "mcp:tools"),
            ("state", "example-state"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", &resource),
        ],
    )
    .unwrap();
    let response = browser.get(authorize).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let consent = location(&response);
    assert!(
        consent.starts_with("/consent?"),
        "asks for consent: {consent}"
    );
    let response = browser
        .post(format!("{base}/api/auth/oauth2/consent"))
        .header("origin", base)
        .json(&json!({ "accept": true, "consent_code": query_of(&consent)["consent_code"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let redirect: Value = response.json().await.unwrap();
    let callback = redirect["redirectURI"].as_str().unwrap();
    assert!(callback.starts_with(REDIRECT_URI), "{callback}");
    let callback = query_of(callback);
    assert_eq!(callback["state"], "example-state");
    assert_eq!(callback["iss"], base);

    // 6. The code becomes a bearer token.
    let response = http
        .post(endpoint("token_endpoint"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &callback["code"]),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
            ("resource", &resource),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    let access_token = tokens["access_token"].as_str().unwrap();

    // 7. The MCP endpoint answers with the token: initialize, then the tool.
    let response = mcp_post(base, Some(access_token), &initialize()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "stateless JSON responses"
    );
    let initialized: Value = response.json().await.unwrap();
    assert!(
        initialized["result"]["capabilities"]["tools"].is_object(),
        "{initialized}"
    );

    let call = json!({
        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": { "name": "greet", "arguments": { "name": "Grace" } }
    });
    let response = mcp_post(base, Some(access_token), &call).await;
    assert_eq!(response.status(), StatusCode::OK);
    let result: Value = response.json().await.unwrap();
    let text = result["result"]["content"][0]["text"].as_str().unwrap();
    assert_eq!(text, format!("Hello, Grace! (asked by user {user_id})"));

    // A forged token is refused with `invalid_token`, still pointing at the metadata.
    let response = mcp_post(base, Some("not-a-token"), &call).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains(&prm_url), "{challenge}");
}
