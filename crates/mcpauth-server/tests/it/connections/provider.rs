//! A small OAuth 2.0 provider written for these tests, over real HTTP on port 0: an
//! authorization endpoint that approves at once, a token endpoint (authorization code with
//! PKCE S256, refresh tokens that rotate, HTTP Basic client authentication) and an RFC 7009
//! revocation endpoint. It counts refreshes, can be told to refuse them or to take its time,
//! and remembers every token it issued (for the tests that look for them where they must
//! not be).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "mcpauth-connections";
pub const CLIENT_SECRET: &str = "provider-side-secret-for-mcpauth";

#[derive(Default)]
pub struct ProviderState {
    /// code → (challenge, redirect_uri, scope)
    codes: Mutex<HashMap<String, (String, String, String)>>,
    live_refresh: Mutex<HashSet<String>>,
    /// Refresh grants answered with new tokens.
    pub refreshes: AtomicUsize,
    /// Refresh grants received, answered or not.
    pub refresh_requests: AtomicUsize,
    pub refuse_refresh: AtomicBool,
    /// Lifetime of issued access tokens, seconds.
    pub expires_in: AtomicI64,
    /// How long a refresh takes, milliseconds.
    pub refresh_delay_ms: AtomicU64,
    /// Tokens presented to the revocation endpoint.
    pub revoked: Mutex<Vec<String>>,
    /// Every access and refresh token issued.
    pub issued: Mutex<Vec<String>>,
}

pub struct TestProvider {
    pub base: String,
    pub state: Arc<ProviderState>,
}

impl TestProvider {
    pub async fn start() -> TestProvider {
        let state = Arc::new(ProviderState::default());
        state.expires_in.store(3600, Ordering::SeqCst);
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/revoke", post(revoke))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        // OpenID discovery, for `type = "oidc"`.
        let metadata = json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "revocation_endpoint": format!("{base}/revoke"),
        });
        let app = app.route(
            "/.well-known/openid-configuration",
            get(move || async move { Json(metadata) }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestProvider { base, state }
    }

    /// Every token it issued.
    pub fn issued(&self) -> Vec<String> {
        self.state.issued.lock().unwrap().clone()
    }

    pub fn revoked(&self) -> Vec<String> {
        self.state.revoked.lock().unwrap().clone()
    }
}

fn new_token(prefix: &str) -> String {
    format!("{prefix}{}", mcpauth_core::secret::random_token())
}

async fn authorize(
    State(state): State<Arc<ProviderState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let get = |name: &str| query.get(name).cloned().unwrap_or_default();
    if get("client_id") != CLIENT_ID
        || get("response_type") != "code"
        || get("code_challenge_method") != "S256"
        || get("code_challenge").is_empty()
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let code = new_token("code-");
    state.codes.lock().unwrap().insert(
        code.clone(),
        (get("code_challenge"), get("redirect_uri"), get("scope")),
    );
    let mut target = url::Url::parse(&get("redirect_uri")).unwrap();
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &get("state"));
    Redirect::to(target.as_str()).into_response()
}

fn error(code: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": code }))).into_response()
}

fn client_authenticated(headers: &HeaderMap) -> bool {
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    headers
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == expected.as_bytes())
}

fn issue(state: &ProviderState, scope: &str) -> Response {
    let access = new_token("at-");
    let refresh = new_token("rt-");
    state
        .issued
        .lock()
        .unwrap()
        .extend([access.clone(), refresh.clone()]);
    state.live_refresh.lock().unwrap().insert(refresh.clone());
    Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": state.expires_in.load(Ordering::SeqCst),
        "refresh_token": refresh,
        "scope": scope,
    }))
    .into_response()
}

async fn token(
    State(state): State<Arc<ProviderState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !client_authenticated(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    }
    let get = |name: &str| form.get(name).cloned().unwrap_or_default();
    match get("grant_type").as_str() {
        "authorization_code" => {
            let Some((challenge, redirect_uri, scope)) =
                state.codes.lock().unwrap().remove(&get("code"))
            else {
                return error("invalid_grant");
            };
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()));
            if computed != challenge || redirect_uri != get("redirect_uri") {
                return error("invalid_grant");
            }
            issue(&state, &scope)
        }
        "refresh_token" => {
            state.refresh_requests.fetch_add(1, Ordering::SeqCst);
            let delay = state.refresh_delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            }
            if state.refuse_refresh.load(Ordering::SeqCst) {
                return error("invalid_grant");
            }
            // Rotation: the old refresh token is spent.
            if !state
                .live_refresh
                .lock()
                .unwrap()
                .remove(&get("refresh_token"))
            {
                return error("invalid_grant");
            }
            state.refreshes.fetch_add(1, Ordering::SeqCst);
            issue(&state, "repo read:org")
        }
        _ => error("unsupported_grant_type"),
    }
}

async fn revoke(
    State(state): State<Arc<ProviderState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !client_authenticated(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let token = form.get("token").cloned().unwrap_or_default();
    state.live_refresh.lock().unwrap().remove(&token);
    state.revoked.lock().unwrap().push(token);
    StatusCode::OK.into_response()
}
