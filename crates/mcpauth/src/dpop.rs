//! DPoP, sender-constrained tokens (RFC 9449): the proof a client sends in a `DPoP` header,
//! checked as §4.3 says, and the server nonces of §8.
//!
//! A proof is a JWT signed by a key the client holds, whose public half travels in its header:
//! `typ: dpop+jwt` (§4.2), an asymmetric `alg` (never `none`, never a MAC), a public `jwk` with
//! no private member; its claims name the request (`htm`, `htu` without query or fragment), when
//! it was made (`iat`, within [`IAT_WINDOW`]) and a `jti` that is accepted once, across every
//! instance on the store ([`Store::use_once`]). At a resource it also carries `ath`, the hash of
//! the access token (§7.1). A token bound to a key records its RFC 7638 thumbprint (`jkt`, §6).
//!
//! A leaf of the request layer: it knows the store and the site's signing secret, not `McpAuth`.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcpauth_core::{Store, StoreError};
use serde_json::Value;

use crate::web::Site;

/// The `alg`s a proof may be signed with (`dpop_signing_alg_values_supported`): asymmetric
/// only (§4.3 point 5).
pub(crate) const ALGORITHMS: &[&str] = &["ES256", "ES384", "RS256", "PS256", "EdDSA"];

/// How far a proof's `iat` may be from the server's clock, seconds (§4.3 point 11; §11.1).
pub(crate) const IAT_WINDOW: i64 = 60;

/// The longest proof read: a proof is a header, a few claims and one public key.
const MAX_PROOF: usize = 8 * 1024;

/// How long a server nonce is issued for, seconds; the previous one is still accepted.
const NONCE_PERIOD: i64 = 300;

/// Members only a private JWK has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a proof is refused.
#[derive(Debug)]
pub(crate) enum ProofError {
    /// The proof is malformed, signed wrongly, stale, replayed, or not for this request
    /// (`invalid_dpop_proof`).
    Invalid(&'static str),
    /// The server wants a nonce it issued (`use_dpop_nonce`, §8); the caller sends a fresh one.
    NonceRequired,
    /// The replay cache could not be asked.
    Store(StoreError),
}

/// What the proof must say about the request it came with.
pub(crate) struct Expected<'a> {
    /// `htm`: the request's method.
    pub method: &'a str,
    /// `htu`: the request's URL, as the server is reached from outside (query and fragment are
    /// ignored on both sides).
    pub url: &'a str,
    /// `ath`: the access token presented with the proof, at a resource.
    pub access_token: Option<&'a str>,
    /// The nonce the proof must carry, when nonces are in use.
    pub nonces: Option<&'a Nonces<'a>>,
}

/// The one `DPoP` header of a request, if any (§4.3 point 1: more than one is refused).
pub(crate) fn proof_header(headers: &HeaderMap) -> Result<Option<&str>, ProofError> {
    let mut values = headers.get_all("dpop").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ProofError::Invalid("more than one DPoP header"));
    }
    let value = value
        .to_str()
        .map_err(|_| ProofError::Invalid("malformed DPoP header"))?;
    if value.is_empty() || value.len() > MAX_PROOF {
        return Err(ProofError::Invalid("malformed DPoP header"));
    }
    Ok(Some(value))
}

/// `base64url(SHA-256(token))`: the `ath` of a proof sent with `token` (§4.2).
pub(crate) fn access_token_hash(token: &str) -> String {
    mcpauth_core::secret::sha256_b64url(token.as_bytes())
}

/// Checks `proof` against the request (§4.3) at time `now`, spending its `jti`; the
/// thumbprint of its key (`jkt`).
pub(crate) async fn check_proof(
    store: &dyn Store,
    now: i64,
    proof: &str,
    expected: &Expected<'_>,
) -> Result<String, ProofError> {
    let (jkt, jti, iat) = verify(proof, expected, now)?;
    if let Some(nonces) = expected.nonces {
        nonces.check(proof_nonce(proof).as_deref(), now)?;
    }
    // Spent last, so that a proof refused for another reason is not spent; kept until its iat
    // leaves the window, after which it is refused as stale anyway.
    let key = format!("dpop:{jkt}:{jti}");
    match store.use_once(&key, iat + IAT_WINDOW + 1).await {
        Ok(true) => Ok(jkt),
        Ok(false) => Err(ProofError::Invalid("the DPoP proof was used before")),
        Err(error) => Err(ProofError::Store(error)),
    }
}

/// Every check of §4.3 that needs no state: `(jkt, jti, iat)` of a good proof.
pub(crate) fn verify(
    proof: &str,
    expected: &Expected<'_>,
    now: i64,
) -> Result<(String, String, i64), ProofError> {
    let bad = ProofError::Invalid;
    let mut parts = proof.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the DPoP proof is not a JWT"));
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(bad("the DPoP proof's header is not JSON"))?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(bad("the DPoP proof's typ is not dpop+jwt"));
    }
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if !ALGORITHMS.contains(&alg) {
        return Err(bad(
            "the DPoP proof's alg is not an asymmetric algorithm supported here",
        ));
    }
    let algorithm: Algorithm = alg
        .parse()
        .map_err(|_| bad("the DPoP proof's alg is not supported"))?;
    let jwk_value = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(bad("the DPoP proof has no jwk"))?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk_value.contains_key(*m)) {
        return Err(bad("the DPoP proof's jwk contains a private key"));
    }
    let jwk: Jwk = serde_json::from_value(Value::Object(jwk_value.clone()))
        .map_err(|_| bad("the DPoP proof's jwk is not a public key"))?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| bad("the DPoP proof's jwk is not usable"))?;
    let mut validation = Validation::new(algorithm);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(proof, &key, &validation)
        .map_err(|_| bad("the DPoP proof's signature does not verify with its jwk"))?
        .claims;
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|jti| !jti.is_empty() && jti.len() <= 256)
        .ok_or(bad("the DPoP proof has no usable jti"))?;
    if claims.get("htm").and_then(Value::as_str) != Some(expected.method) {
        return Err(bad("the DPoP proof's htm is not this request's method"));
    }
    let htu = claims.get("htu").and_then(Value::as_str).unwrap_or("");
    if !same_target(htu, expected.url) {
        return Err(bad("the DPoP proof's htu is not this request's URL"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or(bad("the DPoP proof has no iat"))?;
    if (iat - now).abs() > IAT_WINDOW {
        return Err(bad("the DPoP proof's iat is outside the accepted window"));
    }
    if let Some(token) = expected.access_token {
        let ath = claims.get("ath").and_then(Value::as_str).unwrap_or("");
        if !constant_time_eq(ath.as_bytes(), access_token_hash(token).as_bytes()) {
            return Err(bad("the DPoP proof's ath does not match the access token"));
        }
    }
    let jkt = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| bad("the DPoP proof's jwk has no thumbprint"))?;
    Ok((jkt, jti.to_owned(), iat))
}

/// The `nonce` claim of a proof already verified.
fn proof_nonce(proof: &str) -> Option<String> {
    let claims = proof.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()?;
    claims.get("nonce")?.as_str().map(str::to_owned)
}

/// Two URLs name the same target when they are equal after parsing (scheme and host in lower
/// case, the default port dropped, the path normalised), ignoring query and fragment (§4.3
/// point 9).
fn same_target(htu: &str, expected: &str) -> bool {
    let strip = |raw: &str| {
        url::Url::parse(raw).ok().map(|mut url| {
            url.set_query(None);
            url.set_fragment(None);
            url
        })
    };
    matches!((strip(htu), strip(expected)), (Some(a), Some(b)) if a == b)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Server nonces (§8, §9): a nonce names a period of [`NONCE_PERIOD`] seconds, signed with the
/// server's secret, so every instance on the same secret issues and accepts the same ones
/// without storing them. The current and the previous period's nonces are accepted.
pub(crate) struct Nonces<'a> {
    site: &'a Site,
}

impl<'a> Nonces<'a> {
    pub(crate) fn new(site: &'a Site) -> Self {
        Self { site }
    }

    /// The nonce to send now (`DPoP-Nonce`).
    pub(crate) fn current(&self, now: i64) -> String {
        self.site
            .sign_value("dpop-nonce", &(now.div_euclid(NONCE_PERIOD)).to_string())
    }

    fn check(&self, presented: Option<&str>, now: i64) -> Result<(), ProofError> {
        let period = now.div_euclid(NONCE_PERIOD);
        let accepted = presented
            .and_then(|nonce| self.site.verify_value("dpop-nonce", nonce))
            .and_then(|payload| payload.parse::<i64>().ok())
            .is_some_and(|named| named == period || named == period - 1);
        if accepted {
            Ok(())
        } else {
            Err(ProofError::NonceRequired)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn htu_ignores_query_fragment_case_and_default_port() {
        assert!(same_target(
            "HTTPS://Server.Example:443/token?x=1#f",
            "https://server.example/token"
        ));
        assert!(!same_target(
            "https://server.example/token2",
            "https://server.example/token"
        ));
        assert!(!same_target("not a url", "https://server.example/token"));
    }

    #[test]
    fn ath_is_the_base64url_sha256_of_the_token() {
        // RFC 9449 §7.1's example.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }
}
