//! Verifying mcpauth's JWT access tokens (RFC 9068) on another machine: a Rust MCP server that
//! trusts a remote mcpauth without calling it on every request.
//!
//! [`RemoteVerifier::discover`] reads the authorization server's metadata (RFC 8414) and its
//! JWKS; [`RemoteVerifier::verify`] then checks a token locally: `typ: at+jwt`, an asymmetric
//! `alg` (ES256 or RS256, never `none` or an HMAC), a published `kid`, the signature, `iss`,
//! `aud` = this resource, `exp`. An unknown `kid` (the server rotated its keys) re-reads the
//! JWKS, at most once per [`RemoteVerifier::with_reread_interval`] (default 10 s), so that
//! tokens naming made-up keys cannot make every request fetch it.
//!
//! What a remote verifier cannot know: a revocation. A revoked grant's JWTs stay valid here
//! until they expire (`jwt_access_token_expires_in`, default 5 minutes); a server that must
//! notice sooner calls introspection (RFC 7662). A token bound to a DPoP key
//! ([`VerifiedToken::dpop_jkt`]) is only half-checked by [`RemoteVerifier::verify`]: use
//! [`RemoteVerifier::verify_with_proof`], which checks the proof too (its `jti`s kept in memory,
//! per process).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// Why a token is refused, or the verifier could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The authorization server's metadata or JWKS could not be read.
    #[error("cannot read the authorization server's keys: {0}")]
    Discovery(String),
    /// The token is not a valid access token for this resource.
    #[error("invalid access token: {0}")]
    Invalid(&'static str),
}

/// What a verified access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The user (`sub`).
    pub subject: String,
    /// The client it was issued to (`client_id`).
    pub client_id: String,
    /// Its scopes (`scope`).
    pub scopes: Vec<String>,
    /// The resource it is for (`aud`).
    pub audience: String,
    /// Its identifier (`jti`).
    pub jti: String,
    /// When it was issued and when it expires, seconds since the Unix epoch.
    pub issued_at: i64,
    /// See `issued_at`.
    pub expires_at: i64,
    /// When the user signed in, if the token says (`auth_time`).
    pub auth_time: Option<i64>,
    /// The thumbprint of the DPoP key it is bound to (`cnf.jkt`, RFC 9449 §6.1).
    pub dpop_jkt: Option<String>,
}

impl VerifiedToken {
    /// True when the token was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// The request a DPoP proof came with (RFC 9449 §7.1).
pub struct ProofRequest<'a> {
    /// The `DPoP` header's value.
    pub proof: &'a str,
    /// The request's method.
    pub method: &'a str,
    /// The request's URL as the client called it.
    pub url: &'a str,
}

/// Verifies the JWT access tokens of one remote mcpauth for one protected resource.
pub struct RemoteVerifier {
    issuer: String,
    resource: String,
    jwks_uri: String,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, Arc<(Algorithm, DecodingKey)>>>,
    read_at: tokio::sync::Mutex<Instant>,
    reread_interval: Duration,
    reads: std::sync::atomic::AtomicU64,
    seen_proofs: Mutex<HashMap<String, i64>>,
}

/// The most DPoP `jti`s kept in memory; older ones go first (they are refused as stale then).
const MAX_SEEN_PROOFS: usize = 100_000;

impl RemoteVerifier {
    /// Reads `{issuer}/.well-known/oauth-authorization-server` and the JWKS it names, for tokens
    /// whose audience is `resource` (e.g. `https://auth.example.com/api/mcp`).
    pub async fn discover(issuer: &str, resource: &str) -> Result<Self, RemoteError> {
        let issuer = issuer.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RemoteError::Discovery(e.to_string()))?;
        let metadata: Value = fetch(
            &http,
            &format!("{issuer}/.well-known/oauth-authorization-server"),
        )
        .await?;
        if metadata.get("issuer").and_then(Value::as_str) != Some(issuer.as_str()) {
            return Err(RemoteError::Discovery(
                "the metadata names another issuer".into(),
            ));
        }
        let jwks_uri = metadata
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| RemoteError::Discovery("the metadata has no jwks_uri".into()))?
            .to_owned();
        let verifier = Self {
            issuer,
            resource: resource.to_owned(),
            jwks_uri,
            http,
            keys: RwLock::new(HashMap::new()),
            read_at: tokio::sync::Mutex::new(Instant::now()),
            reread_interval: Duration::from_secs(10),
            reads: std::sync::atomic::AtomicU64::new(0),
            seen_proofs: Mutex::new(HashMap::new()),
        };
        verifier.read_keys().await?;
        Ok(verifier)
    }

    /// The least time between two reads of the JWKS for an unknown `kid` (default 10 s).
    pub fn with_reread_interval(mut self, interval: Duration) -> Self {
        self.reread_interval = interval;
        self
    }

    /// How many times the JWKS was read (the first read included).
    pub fn jwks_reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn read_keys(&self) -> Result<(), RemoteError> {
        let set: JwkSet = fetch(&self.http, &self.jwks_uri).await?;
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Ok(key)) = (&jwk.common.key_id, DecodingKey::from_jwk(jwk)) else {
                continue;
            };
            let algorithm = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                _ => continue,
            };
            keys.insert(kid.clone(), Arc::new((algorithm, key)));
        }
        if let Ok(mut cached) = self.keys.write() {
            *cached = keys;
        }
        Ok(())
    }

    async fn key(&self, kid: &str) -> Result<Arc<(Algorithm, DecodingKey)>, RemoteError> {
        let cached = |kid: &str| self.keys.read().ok().and_then(|k| k.get(kid).cloned());
        if let Some(key) = cached(kid) {
            return Ok(key);
        }
        let mut read_at = self.read_at.lock().await;
        if let Some(key) = cached(kid) {
            return Ok(key);
        }
        if read_at.elapsed() >= self.reread_interval {
            *read_at = Instant::now();
            self.read_keys().await?;
        }
        cached(kid).ok_or(RemoteError::Invalid(
            "the token was not signed by a published key",
        ))
    }

    /// Checks a bearer access token (see the module documentation). A DPoP-bound token is
    /// refused here: it needs [`Self::verify_with_proof`].
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, RemoteError> {
        let verified = self.verify_signed(token).await?;
        if verified.dpop_jkt.is_some() {
            return Err(RemoteError::Invalid(
                "the token is DPoP-bound: verify it with its proof",
            ));
        }
        Ok(verified)
    }

    /// Checks an access token presented with the `DPoP` scheme and its proof (RFC 9449 §7.1):
    /// the token as [`Self::verify`] does, then the proof (§4.3, `ath` included), signed by the
    /// key the token is bound to, its `jti` not seen before by this verifier.
    pub async fn verify_with_proof(
        &self,
        token: &str,
        request: &ProofRequest<'_>,
    ) -> Result<VerifiedToken, RemoteError> {
        let verified = self.verify_signed(token).await?;
        let bound = verified
            .dpop_jkt
            .as_deref()
            .ok_or(RemoteError::Invalid("the token is not DPoP-bound"))?;
        let expected = crate::dpop::Expected {
            method: request.method,
            url: request.url,
            access_token: Some(token),
            nonces: None,
        };
        let now = unix_now();
        let (jkt, jti, iat) =
            crate::dpop::verify(request.proof, &expected, now).map_err(|error| match error {
                crate::dpop::ProofError::Invalid(why) => RemoteError::Invalid(why),
                _ => RemoteError::Invalid("the DPoP proof is not valid"),
            })?;
        if jkt != bound {
            return Err(RemoteError::Invalid(
                "the DPoP proof is signed by another key than the token is bound to",
            ));
        }
        let mut seen = self
            .seen_proofs
            .lock()
            .map_err(|_| RemoteError::Invalid("the replay cache is unusable"))?;
        if seen.len() >= MAX_SEEN_PROOFS {
            seen.retain(|_, until| *until > now);
        }
        if seen.len() >= MAX_SEEN_PROOFS {
            return Err(RemoteError::Invalid("too many DPoP proofs at once"));
        }
        let key = format!("{jkt}:{jti}");
        if seen.contains_key(&key) {
            return Err(RemoteError::Invalid("the DPoP proof was used before"));
        }
        seen.insert(key, iat + crate::dpop::IAT_WINDOW + 1);
        Ok(verified)
    }

    async fn verify_signed(&self, token: &str) -> Result<VerifiedToken, RemoteError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| RemoteError::Invalid("not a JWT"))?;
        let typ = header.typ.as_deref().unwrap_or("");
        if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
            return Err(RemoteError::Invalid(
                "not an access token (typ is not at+jwt)",
            ));
        }
        if !matches!(header.alg, Algorithm::ES256 | Algorithm::RS256) {
            return Err(RemoteError::Invalid("the alg is not ES256 or RS256"));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or(RemoteError::Invalid("the token names no key"))?;
        let key = self.key(kid).await?;
        if key.0 != header.alg {
            return Err(RemoteError::Invalid("the alg is not the key's"));
        }
        let mut validation = Validation::new(key.0);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.resource]);
        validation.set_required_spec_claims(&["iss", "aud", "exp", "sub"]);
        validation.leeway = 5;
        let claims = jsonwebtoken::decode::<Value>(token, &key.1, &validation)
            .map_err(|_| RemoteError::Invalid("signature, issuer, audience or expiry"))?
            .claims;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(VerifiedToken {
            subject: text("sub").unwrap_or_default(),
            client_id: text("client_id").ok_or(RemoteError::Invalid("no client_id"))?,
            scopes: text("scope")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            audience: self.resource.clone(),
            jti: text("jti").ok_or(RemoteError::Invalid("no jti"))?,
            issued_at: claims.get("iat").and_then(Value::as_i64).unwrap_or(0),
            expires_at: claims.get("exp").and_then(Value::as_i64).unwrap_or(0),
            auth_time: claims.get("auth_time").and_then(Value::as_i64),
            dpop_jkt: claims
                .get("cnf")
                .and_then(|cnf| cnf.get("jkt"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

async fn fetch<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, RemoteError> {
    let discovery = |e: reqwest::Error| RemoteError::Discovery(format!("{url}: {e}"));
    http.get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(discovery)?
        .json()
        .await
        .map_err(discovery)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
