//! JWT access tokens (RFC 9068), issued for a protected resource whose
//! `access_token_format` is `jwt`: `typ: at+jwt` (§2.1), the claims of §2.2 (`iss`, `sub`,
//! `aud` = the one resource, `client_id`, `scope`, `jti`, `iat`, `exp`, `auth_time` when known)
//! and, for a DPoP-bound token, `cnf.jkt` (RFC 9449 §6.1), signed with the published signing
//! keys. A resource server elsewhere verifies one with the JWKS alone
//! ([`crate::remote::RemoteVerifier`]).
//!
//! mcpauth keeps a row for a JWT as for an opaque token, keyed by the hash of the whole JWT:
//! revocation, introspection and the token cache treat both alike. Its own guard checks the
//! JWT's header and signature first ([`check`]), so that nothing but an access token it signed
//! reaches the database (SECURITY T1: an `id_token`, `alg: none`, an HMAC, another issuer).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::keys::SigningKeys;

/// The form of the access tokens issued for a protected resource
/// (`access_token_format = "opaque" | "jwt"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessTokenFormat {
    /// Random strings, meaningful only to mcpauth (its guard, introspection). The default.
    #[default]
    Opaque,
    /// RFC 9068 JWTs, which any resource server can verify with the JWKS.
    Jwt,
}

/// The `typ` of an RFC 9068 access token (§2.1; the `application/` prefix may be left out).
pub(crate) const TYP: &str = "at+jwt";

/// What a JWT access token says.
pub(crate) struct Claims<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub audience: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub jti: &'a str,
    pub issued_at: i64,
    pub expires_at: i64,
    pub auth_time: Option<i64>,
    pub dpop_jkt: Option<&'a str>,
}

impl Claims<'_> {
    /// The claim set of §2.2.
    pub(crate) fn to_map(&self) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("iss".into(), Value::from(self.issuer));
        claims.insert("sub".into(), Value::from(self.subject));
        claims.insert("aud".into(), Value::from(self.audience));
        claims.insert("client_id".into(), Value::from(self.client_id));
        claims.insert("scope".into(), Value::from(self.scope));
        claims.insert("jti".into(), Value::from(self.jti));
        claims.insert("iat".into(), Value::from(self.issued_at));
        claims.insert("exp".into(), Value::from(self.expires_at));
        if let Some(auth_time) = self.auth_time {
            claims.insert("auth_time".into(), Value::from(auth_time));
        }
        if let Some(jkt) = self.dpop_jkt {
            claims.insert("cnf".into(), serde_json::json!({ "jkt": jkt }));
        }
        claims
    }
}

/// True when `token` has the shape of a JWT (three base64url parts, a JSON header): the guard
/// then checks it as one before anything else.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
}

/// Checks a JWT presented as an access token to mcpauth's own guard: `typ: at+jwt`, an `alg`
/// of one of the published keys (never `none` or an HMAC), the `kid` of a published key, a
/// valid signature, this `issuer`, and not expired at `now`. The audience, revocation and the
/// rest are the stored row's (the caller looks it up next).
pub(crate) async fn check(
    keys: &SigningKeys,
    token: &str,
    issuer: &str,
    now: i64,
) -> Result<(), &'static str> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| "the access token is not a valid JWT")?;
    let typ = header.typ.as_deref().unwrap_or("");
    if !typ.eq_ignore_ascii_case(TYP) && !typ.eq_ignore_ascii_case("application/at+jwt") {
        return Err("the JWT is not an access token (typ is not at+jwt)");
    }
    let kid = header
        .kid
        .as_deref()
        .ok_or("the access token names no signing key")?;
    let key = keys
        .verifying_key(kid)
        .await
        .map_err(|_| "the signing keys could not be read")?
        .ok_or("the access token was not signed by a published key")?;
    if header.alg != key.algorithm {
        return Err("the access token's alg is not its key's");
    }
    let mut validation = jsonwebtoken::Validation::new(key.algorithm);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["iss", "exp", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(token, &key.key, &validation)
        .map_err(|_| "the access token's signature or issuer is not valid")?
        .claims;
    if claims.get("exp").and_then(Value::as_i64).unwrap_or(0) <= now {
        return Err("the access token has expired");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_written_in_lower_case() {
        let parsed: AccessTokenFormat = serde_json::from_str("\"jwt\"").unwrap_or_default();
        assert_eq!(parsed, AccessTokenFormat::Jwt);
        assert!(serde_json::from_str::<AccessTokenFormat>("\"JWT\"").is_err());
        assert!(looks_like_jwt("eyJhbGciOiJFUzI1NiJ9.e30.sig"));
        assert!(!looks_like_jwt("opaque-token"));
    }
}
