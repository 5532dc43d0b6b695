//! Interoperability with the official Rust MCP SDK's client (`rmcp` with `client`,
//! `transport-streamable-http-client-reqwest` and `auth`): its OAuth machinery discovers this
//! server from the MCP URL, registers itself, builds the PKCE authorization URL and exchanges
//! the code; the browser step in between is done headlessly by a signed-in cookie-jar client.
//! Then rmcp's Streamable HTTP client calls the demo tools with the token, and steps up to
//! `mcp:admin` when `admin_echo` answers 403 `insufficient_scope`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use reqwest::{Client, StatusCode};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::auth::{AuthorizationCallback, OAuthState, default_oauth_http_client};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{
    AuthClient, AuthError, AuthorizationManager, AuthorizationRequest, OAuthHttpClient,
    OAuthHttpClientFuture, OAuthHttpRequest, StreamableHttpClientTransport,
};
use rmcp::{RoleClient, ServiceError, ServiceExt};
use serde_json::json;

/// Bounds every network step: a hang is a failure, not a stuck test run.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 30 s"))
}

/// The user's part of the flow, done by a signed-in "browser": open the authorization URL,
/// approve consent if asked, and return the URL the server finally redirects to.
async fn browser_step(app: &TestApp, browser: &Client, authorization_url: &str) -> String {
    let response = browser.get(authorization_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND, "{authorization_url}");
    let mut target = location(&response);
    if target.starts_with("/consent") {
        target = app.approve(browser, &target, true).await;
    }
    assert!(
        target.starts_with(REDIRECT_URI),
        "the flow ends at the client's redirect URI: {target}"
    );
    target
}

/// The `scope` parameter of a URL, split.
fn scopes_of(url: &str) -> Vec<String> {
    query_of(url)
        .get("scope")
        .map(|s| s.split(' ').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// An rmcp client session over Streamable HTTP whose requests carry the manager's token.
async fn connect(
    app: &TestApp,
    auth: AuthClient<reqwest::Client>,
) -> RunningService<RoleClient, ()> {
    let transport = StreamableHttpClientTransport::with_client(
        auth,
        StreamableHttpClientTransportConfig::with_uri(app.resource()),
    );
    within("initialize", ().serve(transport))
        .await
        .expect("rmcp initializes with the token")
}

async fn call(
    client: &RunningService<RoleClient, ()>,
    tool: &'static str,
    message: &str,
) -> Result<CallToolResult, ServiceError> {
    let arguments = json!({ "message": message }).as_object().unwrap().clone();
    within(
        tool,
        client.call_tool(CallToolRequestParams::new(tool).with_arguments(arguments)),
    )
    .await
}

fn texts(result: &CallToolResult) -> Vec<String> {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

/// The reactive path every SDK client takes: connect, get 401 with the challenge, authorize
/// from it (discovery, DCR, PKCE, browser, code exchange), reconnect with the token, use the
/// tools — and step up to `mcp:admin` when `admin_echo` answers 403 `insufficient_scope`.
#[tokio::test]
async fn rmcp_client_full_oauth_flow() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;

    // 1. Without credentials, initialize fails and rmcp surfaces the server's 401 challenge.
    let anonymous = StreamableHttpClientTransport::from_uri(app.resource());
    let error = within("anonymous initialize", ().serve(anonymous))
        .await
        .expect_err("the MCP endpoint needs a token");
    assert!(error.is_authorization_required(), "{error:?}");
    let challenge = error
        .auth_challenge()
        .expect("a WWW-Authenticate challenge");
    assert_eq!(
        challenge,
        format!(
            "Bearer resource_metadata=\"{}\", scope=\"mcp:tools\"",
            app.url("/.well-known/oauth-protected-resource/api/mcp")
        )
    );

    // 2. rmcp's OAuth state machine: discovery from the challenge, dynamic registration and
    //    the PKCE authorization URL. Scopes come from the challenge (initial selection).
    let mut oauth = OAuthState::new(app.resource(), None).await.unwrap();
    let request = AuthorizationRequest::new(REDIRECT_URI)
        .with_client_name("rmcp interop test")
        .with_initial_scope_selection()
        .with_challenge(challenge);
    within("start_authorization", oauth.start_authorization(request))
        .await
        .expect("discovery and registration succeed");
    let authorization_url = oauth.get_authorization_url().await.unwrap();
    assert!(
        authorization_url.starts_with(&app.url("/api/auth/mcp/authorize?")),
        "{authorization_url}"
    );
    let params = query_of(&authorization_url);
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["redirect_uri"], REDIRECT_URI);
    assert_eq!(params["resource"], app.resource(), "RFC 8707 resource sent");
    assert_eq!(
        scopes_of(&authorization_url),
        ["mcp:tools", "offline_access"]
    );

    // 3. The browser step, then the code exchange (rmcp checks `state` and the RFC 9207 `iss`,
    //    which this server advertises and therefore must send).
    let callback = browser_step(&app, &browser, &authorization_url).await;
    let parsed = AuthorizationCallback::from_redirect_url(&callback).unwrap();
    assert_eq!(parsed.issuer.as_deref(), Some(app.base.as_str()));
    // Without `iss`, rmcp refuses the callback (and keeps the state for the real one).
    let error = oauth
        .handle_callback(&parsed.code, &parsed.csrf_token)
        .await
        .expect_err("rmcp requires the advertised iss");
    assert!(
        matches!(error, AuthError::AuthorizationServerMissingIssuer { .. }),
        "{error:?}"
    );
    within("code exchange", oauth.handle_callback_url(&callback))
        .await
        .expect("the code exchange succeeds");
    let (client_id, tokens) = oauth.get_credentials().await.unwrap();
    // (oauth2's `TokenResponse` accessors are not re-exported by rmcp: read the JSON form.)
    let tokens = serde_json::to_value(tokens.expect("tokens stored")).unwrap();
    assert_eq!(tokens["token_type"], "bearer", "{tokens}");
    assert!(
        tokens["refresh_token"].is_string(),
        "a refresh token for a client that registered the refresh_token grant: {tokens}"
    );
    let access_token = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.session_status(access_token).await, StatusCode::OK);

    // 4. Reconnect with the token and use the tools.
    let manager = oauth.into_authorization_manager().expect("authorized");
    let auth = AuthClient::new(reqwest::Client::default(), manager);
    let client = connect(&app, auth.clone()).await;
    let info = client.peer_info().expect("server info");
    assert_eq!(info.server_info.as_ref().unwrap().name, "mcpauth-demo");
    let tools = within("list_tools", client.list_all_tools()).await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(names, ["admin_echo", "echo", "whoami"]);

    let result = call(&client, "echo", "hello from rmcp").await.unwrap();
    let echoed = texts(&result);
    assert_eq!(echoed[0], "Tool echo: hello from rmcp");
    assert!(
        echoed[1].contains(&format!("through client {client_id}")),
        "{echoed:?}"
    );
    assert!(
        echoed[1].contains("with scopes mcp:tools offline_access"),
        "{echoed:?}"
    );

    // 5. `admin_echo` needs `mcp:admin`: 403 insufficient_scope, naming every scope needed.
    let error = call(&client, "admin_echo", "root?")
        .await
        .expect_err("admin_echo is refused without mcp:admin");
    let challenge = error
        .auth_challenge()
        .expect("the 403 challenge reaches the caller")
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"mcp:tools mcp:admin\""),
        "{challenge}"
    );
    let required = rmcp::transport::WWWAuthenticateParams::parse(
        &challenge,
        &reqwest::Url::parse(&app.resource()).unwrap(),
    )
    .scope
    .expect("the challenge names the scopes");

    // 6. Step-up with rmcp's own helper: re-authorize with the union of the granted and the
    //    challenged scopes, on the manager the running transport uses.
    let upgrade_url = within("request_scope_upgrade", async {
        auth.auth_manager
            .lock()
            .await
            .request_scope_upgrade(&required)
            .await
    })
    .await
    .expect("rmcp builds a step-up authorization URL");
    assert_eq!(
        scopes_of(&upgrade_url),
        ["mcp:tools", "offline_access", "mcp:admin"]
    );
    let callback = browser_step(&app, &browser, &upgrade_url).await;
    let parsed = AuthorizationCallback::from_redirect_url(&callback).unwrap();
    within("step-up code exchange", async {
        auth.auth_manager
            .lock()
            .await
            .exchange_code_for_token_with_issuer(
                &parsed.code,
                &parsed.csrf_token,
                parsed.issuer.as_deref(),
            )
            .await
    })
    .await
    .expect("the step-up code exchange succeeds");

    // 7. The same running client now passes: its transport reads the new token.
    let result = call(&client, "admin_echo", "root!").await.unwrap();
    let echoed = texts(&result);
    assert_eq!(echoed[0], "Tool admin_echo: root!");
    assert!(echoed[1].contains("mcp:admin"), "{echoed:?}");
    within("cancel", client.cancel()).await.unwrap();
}

/// Records every HTTP request rmcp's OAuth machinery makes (method, URL, body, status).
struct Recording<C> {
    inner: C,
    log: Arc<Mutex<Vec<String>>>,
}

impl<C: OAuthHttpClient> OAuthHttpClient for Recording<C> {
    fn execute(&self, request: OAuthHttpRequest) -> OAuthHttpClientFuture<'_> {
        let line = format!(
            "{} {} {}",
            request.request.method(),
            request.request.uri(),
            String::from_utf8_lossy(request.request.body())
        );
        Box::pin(async move {
            let response = self.inner.execute(request).await;
            let status = match &response {
                Ok(r) => r.status().as_u16().to_string(),
                Err(e) => format!("error: {e}"),
            };
            self.log.lock().unwrap().push(format!("{line} -> {status}"));
            response
        })
    }
}

/// What rmcp sends when left to its defaults (no challenge, no scopes chosen): where it looks
/// for metadata, what it registers, which scopes it asks for, and what the token request
/// carries. Documents the client for INTEROP.md and pins the parts the server relies on.
#[tokio::test]
async fn rmcp_client_defaults_discovery_registration_and_token_request() {
    let app = spawn_app().await;
    let browser = app.signed_in_browser().await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let http = Recording {
        inner: default_oauth_http_client().unwrap(),
        log: log.clone(),
    };
    let manager = AuthorizationManager::new_with_oauth_http_client(app.resource(), Arc::new(http))
        .await
        .unwrap();
    let mut oauth = OAuthState::Unauthorized(manager);
    within(
        "start_authorization",
        oauth.start_authorization(AuthorizationRequest::new(REDIRECT_URI)),
    )
    .await
    .expect("discovery and registration succeed");
    let authorization_url = oauth.get_authorization_url().await.unwrap();
    let callback = browser_step(&app, &browser, &authorization_url).await;
    within("code exchange", oauth.handle_callback_url(&callback))
        .await
        .expect("the code exchange succeeds");
    let log = log.lock().unwrap().clone();
    let log_text = log.join("\n");

    // Discovery: an unauthenticated GET of the MCP URL for the 401 challenge, then the
    // resource metadata it names (path-inserted), then the AS metadata at the issuer's root.
    let expected = [
        format!("GET {} ", app.resource()),
        format!(
            "GET {} ",
            app.url("/.well-known/oauth-protected-resource/api/mcp")
        ),
        format!(
            "GET {} ",
            app.url("/.well-known/oauth-authorization-server")
        ),
    ];
    for (i, (line, start)) in log.iter().zip(&expected).enumerate() {
        assert!(line.starts_with(start), "request {i}: {log_text}");
    }
    assert!(log[0].ends_with("-> 401"), "{log_text}");
    assert!(
        log[1].ends_with("-> 200") && log[2].ends_with("-> 200"),
        "{log_text}"
    );
    // Registration: a public, native client with both grants.
    let register = log
        .iter()
        .find(|l| l.starts_with(&format!("POST {}", app.url("/api/auth/mcp/register"))))
        .expect("rmcp registers dynamically");
    assert!(register.ends_with("-> 201"), "{register}");
    for field in [
        r#""token_endpoint_auth_method":"none""#,
        r#""grant_types":["authorization_code","refresh_token"]"#,
        r#""application_type":"native""#,
        r#""client_name":"MCP Client""#,
        r#""scope":"mcp:tools offline_access""#,
    ] {
        assert!(register.contains(field), "{field} in {register}");
    }
    // Left to itself, rmcp asks for every scope the resource metadata lists, plus
    // offline_access (which the AS metadata advertises).
    let mut scopes = scopes_of(&authorization_url);
    scopes.sort_unstable();
    assert_eq!(
        scopes,
        ["mcp:tools", "offline_access"],
        "{authorization_url}"
    );
    // Token request: form-encoded, PKCE verifier, redirect URI and the RFC 8707 resource.
    let token = log
        .iter()
        .find(|l| l.starts_with(&format!("POST {}", app.url("/api/auth/mcp/token"))))
        .expect("rmcp exchanges the code");
    assert!(token.ends_with("-> 200"), "{token}");
    for field in [
        "grant_type=authorization_code",
        "code_verifier=",
        "resource=http%3A%2F%2Flocalhost",
    ] {
        assert!(token.contains(field), "{field} in {token}");
    }
    eprintln!("rmcp OAuth requests:\n{log_text}");
}
