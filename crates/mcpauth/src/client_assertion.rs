//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OIDC Core §9) at the token,
//! revocation and introspection endpoints (the keys and the signature check are in
//! `assertion_keys`).
//!
//! A client assertion is accepted when (SECURITY E2): `client_assertion_type` is RFC 7523's; the
//! JWS uses an asymmetric algorithm and verifies against one of the keys the client registered
//! (`jwks`, or `jwks_uri` fetched by the same guarded fetcher as metadata documents, under
//! SECURITY M3's rules — public addresses only, no redirects, size and time limits); `iss` and
//! `sub` are the client's id; `aud` is this server's issuer or its token endpoint; `exp` is
//! present, not past and at most five minutes ahead; and its `jti` was never used before, on
//! any instance ([`mcpauth_core::Store::use_once`]). Every refusal is `invalid_client` naming
//! the rule.

use mcpauth_core::machine::{self, CLOCK_SKEW};
use mcpauth_core::model::Client;
use mcpauth_core::{OAuthError, Params};

use crate::McpAuth;
use crate::assertion_keys::{peek_claims, peek_header, string_claim, times, verify_signed};

/// Authenticates the client of a request that carries `client_assertion` (SECURITY E2).
pub(crate) async fn authenticate(auth: &McpAuth, params: &Params) -> Result<Client, OAuthError> {
    let refuse = |why: &str| OAuthError::invalid_client(format!("client assertion refused: {why}"));
    if params.get("client_assertion_type") != Some(machine::CLIENT_ASSERTION_TYPE) {
        return Err(refuse(&format!(
            "client_assertion_type must be {}",
            machine::CLIENT_ASSERTION_TYPE
        )));
    }
    let assertion = params
        .get("client_assertion")
        .ok_or_else(|| refuse("client_assertion is missing"))?;
    let header = peek_header(assertion).map_err(|why| refuse(&why))?;
    let unverified = peek_claims(assertion).map_err(|why| refuse(&why))?;
    let client_id = string_claim(&unverified, "sub")
        .ok_or_else(|| refuse("the assertion has no sub"))?
        .to_owned();
    if params.get("client_id").is_some_and(|id| id != client_id) {
        return Err(refuse("client_id differs from the assertion's sub"));
    }
    let client = auth
        .client(&client_id)
        .await?
        .filter(|c| !c.disabled)
        .ok_or_else(|| refuse("the client is unknown"))?;
    if !machine::uses_private_key_jwt(&client) {
        return Err(refuse(
            "this client does not authenticate with private_key_jwt",
        ));
    }
    let now = auth.now();
    let keys = auth
        .assertion_keys()
        .client_keys(&client, header.kid.as_deref(), now)
        .await
        .map_err(|why| refuse(&why))?;
    let verified = verify_signed(assertion, &keys).map_err(|why| refuse(&why))?;
    let claims = &verified.claims;
    if string_claim(claims, "iss") != Some(client_id.as_str()) {
        return Err(refuse("iss must be the client_id"));
    }
    if string_claim(claims, "sub") != Some(client_id.as_str()) {
        return Err(refuse("sub must be the client_id"));
    }
    let issuer = auth.options().issuer.as_str();
    let token_endpoint = auth.endpoint("/mcp/token");
    if !machine::audience_has(claims.get("aud"), &[issuer, &token_endpoint]) {
        return Err(refuse(
            "aud must be this server's issuer or its token endpoint",
        ));
    }
    let exp = machine::check_times(times(claims), now).map_err(refuse)?;
    let jti = string_claim(claims, "jti")
        .filter(|jti| jti.len() <= 256)
        .ok_or_else(|| refuse("the assertion has no jti"))?;
    let key = format!("client-assertion:{client_id}:{jti}");
    if !auth.store().use_once(&key, exp + CLOCK_SKEW).await? {
        return Err(refuse("the assertion was used before (jti replayed)"));
    }
    Ok(client)
}
