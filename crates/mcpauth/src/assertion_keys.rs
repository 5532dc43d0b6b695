//! The keys assertions are verified with (issue 21), a service that knows nothing of requests:
//! the JWS signature check ([`verify_signed`]: asymmetric algorithms only, the key named by
//! `kid`), the keys of `private_key_jwt` clients ([`AssertionKeys`]: their `jwks`, or their
//! `jwks_uri` fetched by the guarded metadata-document fetcher under SECURITY M3's rules) and
//! the trusted issuers of identity assertion grants with their keys ([`TrustedIssuers`]). Key
//! sets fetched from URLs are kept five minutes, and fetched again for an unknown `kid` at most
//! every 30 seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use mcpauth_core::cimd::CimdError;
use mcpauth_core::machine::AssertionTimes;
use mcpauth_core::model::Client;
use serde_json::{Map, Value};

use crate::cimd::{ClientMetadataFetcher, Fetched};
use crate::machine_options::{SubjectMapping, TrustedIssuer};
use crate::options::{BuildError, invalid};

/// The largest key set fetched from a trusted issuer, in bytes.
const MAX_JWKS_BYTES: usize = 64 * 1024;

/// The longest assertion read, in bytes.
pub(crate) const MAX_ASSERTION_BYTES: usize = 8192;

/// How long fetched keys are used before they are fetched again, seconds.
const KEYS_FRESH_FOR: i64 = 300;

/// A key set is fetched again for an unknown `kid` only when it is at least this old, seconds
/// (a client cannot make the server fetch on every request).
const REFETCH_AFTER: i64 = 30;

/// The most key sets kept in memory; past it the cache starts over.
const CAPACITY: usize = 1_000;

/// A JWT whose signature checked out, with its header and claims.
pub(crate) struct VerifiedJwt {
    pub(crate) header: Header,
    pub(crate) claims: Map<String, Value>,
}

/// True for the algorithms an assertion may use: asymmetric only.
fn accepted_algorithm(alg: Algorithm) -> bool {
    matches!(
        alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::EdDSA
    )
}

/// The header of a compact JWS, before anything is trusted.
pub(crate) fn peek_header(token: &str) -> Result<Header, String> {
    if token.len() > MAX_ASSERTION_BYTES {
        return Err("the assertion is too large".to_owned());
    }
    jsonwebtoken::decode_header(token).map_err(|_| "the assertion is not a signed JWT".to_owned())
}

/// The claims of a compact JWS, unverified: only to find whose keys verify it.
pub(crate) fn peek_claims(token: &str) -> Result<Map<String, Value>, String> {
    jsonwebtoken::dangerous::insecure_decode_claims::<Map<String, Value>>(token)
        .map_err(|_| "the assertion's claims are not a JSON object".to_owned())
}

/// Verifies `token`'s signature with one of `keys` (the one named by `kid`, else any), by an
/// asymmetric algorithm only; a key that states its own `alg` is used only with it. Claims are
/// not judged here (no `exp`, `aud` or `iss` rule): the caller checks them.
pub(crate) fn verify_signed(token: &str, keys: &JwkSet) -> Result<VerifiedJwt, String> {
    let header = peek_header(token)?;
    if !accepted_algorithm(header.alg) {
        return Err(format!(
            "the assertion's algorithm {:?} is not accepted; use an asymmetric one",
            header.alg
        ));
    }
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let candidates = keys.keys.iter().filter(|key| {
        header
            .kid
            .as_deref()
            .is_none_or(|kid| key.common.key_id.as_deref() == Some(kid))
    });
    let mut any = false;
    for key in candidates {
        any = true;
        if let Some(stated) = key.common.key_algorithm
            && format!("{stated:?}") != format!("{:?}", header.alg)
        {
            continue;
        }
        let Ok(decoding) = DecodingKey::from_jwk(key) else {
            continue;
        };
        if let Ok(data) = jsonwebtoken::decode::<Map<String, Value>>(token, &decoding, &validation)
        {
            return Ok(VerifiedJwt {
                header: data.header,
                claims: data.claims,
            });
        }
    }
    Err(if any {
        "the assertion's signature does not verify with the registered keys".to_owned()
    } else {
        "no registered key has the assertion's kid".to_owned()
    })
}

/// A string claim.
pub(crate) fn string_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The time claims of an assertion.
pub(crate) fn times(claims: &Map<String, Value>) -> AssertionTimes {
    let int = |name: &str| claims.get(name).and_then(Value::as_i64);
    AssertionTimes {
        exp: int("exp"),
        iat: int("iat"),
        nbf: int("nbf"),
    }
}

/// Key sets fetched from URLs (clients' `jwks_uri`, trusted issuers' JWKS), by URL, with when
/// they were fetched.
#[derive(Default)]
pub(crate) struct KeyCache {
    sets: Mutex<HashMap<String, (i64, Arc<JwkSet>)>>,
}

impl KeyCache {
    /// The cached set for `url` when it is fresh and, given a `kid`, has it (or is too young
    /// to fetch again).
    fn fresh(&self, url: &str, kid: Option<&str>, now: i64) -> Option<Arc<JwkSet>> {
        let sets = self.sets.lock().ok()?;
        let (fetched_at, set) = sets.get(url)?;
        let age = now - fetched_at;
        if !(0..KEYS_FRESH_FOR).contains(&age) {
            return None;
        }
        let has_kid = kid.is_none_or(|kid| {
            set.keys
                .iter()
                .any(|k| k.common.key_id.as_deref() == Some(kid))
        });
        (has_kid || age < REFETCH_AFTER).then(|| set.clone())
    }

    fn keep(&self, url: &str, set: Arc<JwkSet>, now: i64) {
        if let Ok(mut sets) = self.sets.lock() {
            if sets.len() >= CAPACITY {
                sets.clear();
            }
            sets.insert(url.to_owned(), (now, set));
        }
    }

    /// The key set at `url`, from the cache or fetched with `fetch`.
    pub(crate) async fn get<F, Fut>(
        &self,
        url: &str,
        kid: Option<&str>,
        now: i64,
        fetch: F,
    ) -> Result<Arc<JwkSet>, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, String>>,
    {
        if let Some(set) = self.fresh(url, kid, now) {
            return Ok(set);
        }
        let body = fetch().await?;
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|_| "the key set is not a valid JSON Web Key Set".to_owned())?;
        let set = Arc::new(set);
        self.keep(url, set.clone(), now);
        Ok(set)
    }
}

/// The keys of `private_key_jwt` clients: the guarded fetcher for their `jwks_uri`, and the
/// sets it fetched.
pub(crate) struct AssertionKeys {
    fetcher: Arc<dyn ClientMetadataFetcher>,
    client_keys: KeyCache,
}

impl AssertionKeys {
    pub(crate) fn new(fetcher: Arc<dyn ClientMetadataFetcher>) -> Self {
        Self {
            fetcher,
            client_keys: KeyCache::default(),
        }
    }

    /// The keys `client` registered: its `jwks`, or the set at its `jwks_uri` (fetched under
    /// SECURITY M3's rules).
    pub(crate) async fn client_keys(
        &self,
        client: &Client,
        kid: Option<&str>,
        now: i64,
    ) -> Result<Arc<JwkSet>, String> {
        if let Some(jwks) = client.metadata.get("jwks") {
            return serde_json::from_value::<JwkSet>(jwks.clone())
                .map(Arc::new)
                .map_err(|_| "the client's jwks is not a usable JSON Web Key Set".to_owned());
        }
        let Some(uri) = client.metadata.get("jwks_uri").and_then(Value::as_str) else {
            return Err("the client registered no keys (jwks or jwks_uri)".to_owned());
        };
        let url = url::Url::parse(uri)
            .ok()
            .filter(|u| u.scheme() == "https")
            .ok_or_else(|| "the client's jwks_uri is not an https URL".to_owned())?;
        let fetcher = self.fetcher.clone();
        self.client_keys
            .get(uri, kid, now, || async move {
                match fetcher.fetch(&url, None).await {
                    Ok(Fetched::Document { body, .. }) => Ok(body),
                    Ok(Fetched::NotModified { .. }) => {
                        Err("the client's jwks_uri answered 304".to_owned())
                    }
                    Err(CimdError::Fetch(why) | CimdError::Document(why)) => {
                        Err(format!("the client's jwks_uri could not be fetched: {why}"))
                    }
                    Err(other) => Err(format!(
                        "the client's jwks_uri could not be fetched: {other}"
                    )),
                }
            })
            .await
    }
}

/// The checked form of the trusted issuers, with their key sources.
pub(crate) struct TrustedIssuers {
    issuers: Vec<(TrustedIssuer, KeySource)>,
    http: reqwest::Client,
    keys: KeyCache,
}

/// Where a trusted issuer's keys come from.
pub(crate) enum KeySource {
    Url(String),
    Set(Arc<JwkSet>),
}

impl TrustedIssuers {
    /// Checks `[[trusted_issuers]]` and reads the key files. `providers` are the ids of the
    /// configured identity providers.
    pub(crate) fn new(
        configured: &[TrustedIssuer],
        providers: &[&str],
    ) -> Result<Self, BuildError> {
        let refuse = |issuer: &TrustedIssuer, why: &str| {
            invalid(
                "trusted_issuers",
                format!("issuer {:?}: {why}", issuer.issuer),
            )
        };
        let mut issuers = Vec::with_capacity(configured.len());
        for issuer in configured {
            let id_ok = (1..=32).contains(&issuer.id.len())
                && issuer.id.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                })
                && issuer.id != "credential";
            if !id_ok {
                return Err(refuse(
                    issuer,
                    "id must be 1 to 32 lower-case letters, digits, - or _",
                ));
            }
            if url::Url::parse(&issuer.issuer).is_err() {
                return Err(refuse(issuer, "issuer must be a URL"));
            }
            if issuer.client_ids.is_empty() {
                return Err(refuse(issuer, "client_ids must name at least one client"));
            }
            match (issuer.subject, &issuer.identity_provider) {
                (SubjectMapping::Linked, Some(provider))
                    if providers.contains(&provider.as_str()) => {}
                (SubjectMapping::Linked, _) => {
                    return Err(refuse(
                        issuer,
                        "subject = \"linked\" needs identity_provider naming an [[identity_providers]] entry",
                    ));
                }
                (SubjectMapping::Email, Some(_)) => {
                    return Err(refuse(
                        issuer,
                        "identity_provider is only for subject = \"linked\"",
                    ));
                }
                (SubjectMapping::Email, None) => {}
            }
            let source = match (&issuer.jwks_uri, &issuer.jwks_file) {
                (Some(uri), None) => {
                    let parsed = url::Url::parse(uri)
                        .map_err(|_| refuse(issuer, "jwks_uri must be a URL"))?;
                    let loopback = matches!(parsed.host(), Some(url::Host::Domain("localhost")))
                        || matches!(parsed.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
                        || matches!(parsed.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
                    if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
                        return Err(refuse(
                            issuer,
                            "jwks_uri must be https (http only on loopback)",
                        ));
                    }
                    KeySource::Url(uri.clone())
                }
                (None, Some(path)) => {
                    let text = std::fs::read(path).map_err(|e| {
                        refuse(
                            issuer,
                            &format!("jwks_file {} cannot be read: {e}", path.display()),
                        )
                    })?;
                    let set: JwkSet = serde_json::from_slice(&text)
                        .map_err(|_| refuse(issuer, "jwks_file is not a JSON Web Key Set"))?;
                    KeySource::Set(Arc::new(set))
                }
                _ => return Err(refuse(issuer, "give exactly one of jwks_uri and jwks_file")),
            };
            if configured
                .iter()
                .filter(|other| other.issuer == issuer.issuer || other.id == issuer.id)
                .count()
                > 1
            {
                return Err(refuse(issuer, "issuer and id must be unique"));
            }
            issuers.push((issuer.clone(), source));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .user_agent(concat!("mcpauth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid("trusted_issuers", e.to_string()))?;
        Ok(Self {
            issuers,
            http,
            keys: KeyCache::default(),
        })
    }

    /// The trusted issuer whose identifier is `iss`.
    pub(crate) fn find(&self, iss: &str) -> Option<&(TrustedIssuer, KeySource)> {
        self.issuers.iter().find(|(issuer, _)| issuer.issuer == iss)
    }

    /// True when no issuer is trusted (the jwt-bearer grant is off).
    pub(crate) fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// The keys of a trusted issuer: its key file's, or the set at its `jwks_uri`.
    pub(crate) async fn keys(
        &self,
        source: &KeySource,
        kid: Option<&str>,
        now: i64,
    ) -> Result<Arc<JwkSet>, String> {
        let url = match source {
            KeySource::Set(set) => return Ok(set.clone()),
            KeySource::Url(url) => url,
        };
        let http = self.http.clone();
        let target = url.clone();
        self.keys
            .get(url, kid, now, || async move {
                let fail = |why: String| format!("the issuer's keys could not be fetched: {why}");
                let mut response = http
                    .get(&target)
                    .header(reqwest::header::ACCEPT, "application/json")
                    .send()
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                if response.status() != reqwest::StatusCode::OK {
                    return Err(fail(format!("it answered {}", response.status())));
                }
                let mut body = Vec::new();
                while let Some(chunk) = response.chunk().await.map_err(|e| fail(e.to_string()))? {
                    if body.len() + chunk.len() > MAX_JWKS_BYTES {
                        return Err(fail("the key set is too large".to_owned()));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body)
            })
            .await
    }
}
