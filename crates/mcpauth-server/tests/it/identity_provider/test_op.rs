//! A small OpenID provider written for the tests, for the answers a real OP never gives: it
//! signs id_tokens (ES256, with `jsonwebtoken`) carrying whatever claims the test chooses — an
//! email verified or not, a group, and on request another issuer, another audience, a wrong
//! nonce, an expired token or a signature by a key it does not publish. It checks what a real OP
//! checks of the client: the registered client id and secret, the redirect URI and the PKCE
//! verifier against the S256 challenge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "downstream-mcpauth";
pub const CLIENT_SECRET: &str = "the-test-op-client-secret-long-enough";

/// How the next id_token is spoiled, if at all.
#[derive(Default, Clone)]
pub struct Tamper {
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub nonce: Option<String>,
    /// Seconds relative to now for `exp` (negative: already expired).
    pub expires_in: Option<i64>,
    /// Sign with a key the JWKS does not contain (same `kid`).
    pub foreign_key: bool,
}

#[derive(Default)]
struct OpState {
    /// `sub` and claims of the person who "signs in" next.
    subject: String,
    claims: Map<String, Value>,
    tamper: Tamper,
    /// Answer the next authorization request with this error instead of a code.
    deny: Option<String>,
    codes: HashMap<String, IssuedCode>,
    /// The query of the last authorization request.
    last_authorize: HashMap<String, String>,
}

struct IssuedCode {
    redirect_uri: String,
    challenge: String,
    nonce: String,
    subject: String,
    claims: Map<String, Value>,
    tamper: Tamper,
}

struct Shared {
    issuer: String,
    key: EncodingKey,
    foreign_key: EncodingKey,
    jwk: Value,
    state: Mutex<OpState>,
}

pub struct TestOp {
    pub issuer: String,
    shared: Arc<Shared>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

fn es256_key() -> (EncodingKey, Value) {
    let pair = rcgen::KeyPair::generate().unwrap();
    let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    let raw = pair.public_key_raw();
    assert_eq!(raw.len(), 65, "an uncompressed P-256 point");
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "k1",
        "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
    });
    (key, jwk)
}

impl TestOp {
    pub async fn start() -> TestOp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let (key, jwk) = es256_key();
        let (foreign_key, _) = es256_key();
        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            key,
            foreign_key,
            jwk,
            state: Mutex::new(OpState::default()),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        TestOp {
            issuer,
            shared,
            _shutdown: tx,
        }
    }

    /// The next sign-in is `subject` with these claims (email, email_verified, name, …).
    pub fn next_identity(&self, subject: &str, claims: Value) {
        let mut state = self.shared.state.lock().unwrap();
        state.subject = subject.to_owned();
        state.claims = claims.as_object().cloned().unwrap_or_default();
        state.tamper = Tamper::default();
        state.deny = None;
    }

    /// Spoils the next id_token.
    pub fn tamper(&self, tamper: Tamper) {
        self.shared.state.lock().unwrap().tamper = tamper;
    }

    /// The next authorization request is answered with `error`.
    pub fn deny(&self, error: &str) {
        self.shared.state.lock().unwrap().deny = Some(error.to_owned());
    }

    /// The query of the last authorization request.
    pub fn last_authorize(&self) -> HashMap<String, String> {
        self.shared.state.lock().unwrap().last_authorize.clone()
    }
}

async fn discovery(State(op): State<Arc<Shared>>) -> Response {
    let i = &op.issuer;
    axum::Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
    }))
    .into_response()
}

async fn jwks(State(op): State<Arc<Shared>>) -> Response {
    axum::Json(json!({ "keys": [op.jwk] })).into_response()
}

async fn authorize(
    State(op): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut state = op.state.lock().unwrap();
    state.last_authorize = query.clone();
    let (Some(redirect_uri), Some(st)) = (query.get("redirect_uri"), query.get("state")) else {
        return (StatusCode::BAD_REQUEST, "no redirect_uri or state").into_response();
    };
    if query.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || query.get("response_type").map(String::as_str) != Some("code")
        || query.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let target = url::Url::parse(redirect_uri).unwrap();
    if let Some(error) = state.deny.take() {
        let mut target = target;
        target
            .query_pairs_mut()
            .append_pair("error", &error)
            .append_pair("state", st);
        return Redirect::to(target.as_str()).into_response();
    }
    let code = mcpauth_core::secret::random_token();
    let issued = IssuedCode {
        redirect_uri: redirect_uri.clone(),
        challenge: query.get("code_challenge").cloned().unwrap_or_default(),
        nonce: query.get("nonce").cloned().unwrap_or_default(),
        subject: state.subject.clone(),
        claims: state.claims.clone(),
        tamper: state.tamper.clone(),
    };
    state.codes.insert(code.clone(), issued);
    let mut target = target;
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", st);
    Redirect::to(target.as_str()).into_response()
}

fn token_error(error: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": error })),
    )
        .into_response()
}

async fn token(
    State(op): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&expected)
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    }
    let Some(issued) = form
        .get("code")
        .and_then(|c| op.state.lock().unwrap().codes.remove(c))
    else {
        return token_error("invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if challenge != issued.challenge
        || form.get("redirect_uri") != Some(&issued.redirect_uri)
        || form.get("grant_type").map(String::as_str) != Some("authorization_code")
    {
        return token_error("invalid_grant");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let tamper = &issued.tamper;
    let mut claims = issued.claims.clone();
    let standard = json!({
        "iss": tamper.issuer.clone().unwrap_or_else(|| op.issuer.clone()),
        "sub": issued.subject,
        "aud": tamper.audience.clone().unwrap_or_else(|| CLIENT_ID.to_owned()),
        "iat": now,
        "exp": now + tamper.expires_in.unwrap_or(300),
        "nonce": tamper.nonce.clone().unwrap_or(issued.nonce),
    });
    for (name, value) in standard.as_object().unwrap() {
        claims.insert(name.clone(), value.clone());
    }
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".to_owned());
    let key = if tamper.foreign_key {
        &op.foreign_key
    } else {
        &op.key
    };
    let id_token = jsonwebtoken::encode(&header, &claims, key).unwrap();
    axum::Json(json!({
        "access_token": mcpauth_core::secret::random_token(),
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}
