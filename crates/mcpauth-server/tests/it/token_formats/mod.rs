//! Token formats and sender-constrained tokens (SPEC §10; SECURITY T1–T3), black-box over
//! HTTP: RFC 9068 JWT access tokens at the main endpoint and at a gateway upstream (`jwt.rs`),
//! DPoP proofs at the token endpoint and at the resources (`dpop.rs`). The kit: a server whose
//! main resource and upstream `/mcp/a` issue JWTs (the echo server of the gateway tests behind
//! it), and a client's DPoP key that signs proofs.

mod dpop;
mod jwt;
mod remote;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use mcpauth_server::{Settings, UpstreamSettings};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use crate::common::*;
use crate::gateway::upstream;

pub const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}"#;

/// A server whose main resource and upstream `/mcp/a` issue JWT access tokens; `/mcp/b`
/// stays opaque.
pub struct Formats {
    pub app: TestApp,
    _upstream: upstream::Upstream,
}

pub async fn spawn_formats(configure: impl FnOnce(&mut Settings)) -> Formats {
    let upstream = upstream::spawn().await;
    let url = upstream.url.clone();
    let app = spawn_app_with(|settings| {
        settings.auth.access_token_format = mcpauth::AccessTokenFormat::Jwt;
        let a = UpstreamSettings {
            path: "/mcp/a".to_owned(),
            url: url.clone(),
            scopes: vec!["mcp:tools".to_owned()],
            access_token_format: Some(mcpauth::AccessTokenFormat::Jwt),
            ..UpstreamSettings::default()
        };
        let b = UpstreamSettings {
            path: "/mcp/b".to_owned(),
            url: url.clone(),
            scopes: vec!["mcp:tools".to_owned()],
            ..UpstreamSettings::default()
        };
        settings.upstreams = vec![a, b];
        configure(settings);
    })
    .await;
    Formats {
        app,
        _upstream: upstream,
    }
}

impl Formats {
    /// POSTs an MCP `initialize` to `path` with `authorization` (`Bearer …` / `DPoP …`).
    pub fn mcp(&self, path: &str, authorization: &str) -> RequestBuilder {
        self.app
            .http
            .post(self.app.url(path))
            .header("authorization", authorization)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .body(INITIALIZE)
    }
}

/// The claims of a JWT, unverified.
pub fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The header of a JWT, unverified.
pub fn header_of(jwt: &str) -> Value {
    let header = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

/// A client's DPoP key: an ES256 key pair made for the test.
pub struct DpopKey {
    encoding: EncodingKey,
    pub jwk: Value,
    pub jkt: String,
}

impl DpopKey {
    pub fn new() -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let pkcs8 = pair.to_pkcs8v1().unwrap();
        let encoding = EncodingKey::from_ec_der(pkcs8.as_ref());
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap();
        let jkt = jwk.thumbprint(ThumbprintHash::SHA256).unwrap();
        jwk.common.key_algorithm = None;
        jwk.common.public_key_use = None;
        let jwk = serde_json::to_value(&jwk).unwrap();
        Self { encoding, jwk, jkt }
    }

    /// A proof for `method url` made at `iat`, for `access_token` when given (its `ath`).
    pub fn proof(&self, method: &str, url: &str, iat: i64, access_token: Option<&str>) -> String {
        let mut claims = json!({
            "jti": URL_SAFE_NO_PAD.encode(mcpauth_core::secret::random_bytes::<16>()),
            "htm": method,
            "htu": url,
            "iat": iat,
        });
        if let Some(token) = access_token {
            claims["ath"] = Value::from(ath(token));
        }
        self.sign(&claims, self.jwk.clone())
    }

    /// `claims` signed with this key, the header carrying `jwk`.
    pub fn sign(&self, claims: &Value, jwk: Value) -> String {
        let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": jwk });
        sign_raw(&header, claims, |input| {
            jsonwebtoken::crypto::sign(input, &self.encoding, Algorithm::ES256).unwrap()
        })
    }
}

/// `header.claims.signature`, the signature made by `sign` over the signing input.
pub fn sign_raw(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> String) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{signature}")
}

/// `base64url(SHA-256(token))`.
pub fn ath(token: &str) -> String {
    use sha2::Digest;
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The whole flow for a fresh user and public client, the token request carrying a proof by
/// `key` (and asking for `resource` when given); the token response.
pub async fn dpop_flow(app: &TestApp, key: &DpopKey, resource: Option<&str>) -> (String, Value) {
    let browser = app.signed_in_browser().await;
    let client_id = app.register_public(REDIRECT_URI).await;
    let (verifier, challenge) = pkce();
    let code = app
        .code_for_resource(
            &browser,
            &client_id,
            &challenge,
            "openid mcp:tools",
            resource,
        )
        .await;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("client_id", client_id.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    if let Some(resource) = resource {
        form.push(("resource", resource));
    }
    let token_url = app.url("/api/auth/mcp/token");
    let response = app
        .http
        .post(&token_url)
        .header("dpop", key.proof("POST", &token_url, app.clock_now(), None))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    (client_id, response.json().await.unwrap())
}

impl TestApp {
    /// The server's clock, seconds since the Unix epoch.
    pub fn clock_now(&self) -> i64 {
        use mcpauth_core::Clock;
        self.clock.now()
    }
}

/// The body of a refused request as text, and asserts its status.
pub async fn refused(
    response: Response,
    status: StatusCode,
) -> (reqwest::header::HeaderMap, String) {
    let actual = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap();
    assert_eq!(actual, status, "{body}");
    (headers, body)
}
