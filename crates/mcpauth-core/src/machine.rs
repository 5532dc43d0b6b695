//! Rules of the grants without a browser (issue 21): `client_credentials` (RFC 6749 §4.4, MCP
//! ext-auth "OAuth Client Credentials"), JWT client assertions (`private_key_jwt`, RFC 7523
//! §2.2 and §3, OIDC Core §9) and identity assertion grants (ID-JAG,
//! draft-ietf-oauth-identity-assertion-authz-grant §4.3, MCP ext-auth "Enterprise-Managed
//! Authorization"). Pure functions: the signature checks and the store live in `mcpauth`.
//!
//! - Which client may use `client_credentials` — [`MachinePolicy::admits`] (SECURITY E1).
//! - Which scopes a machine gets — [`machine_scopes`]: an over-asked scope is **refused**
//!   (`invalid_scope`), never silently narrowed: a machine is configured once and must learn
//!   at once that its configuration asks for too much.
//! - Which scopes an ID-JAG gets — [`id_jag_scopes`]: the asserted scopes **narrowed** to the
//!   ones allowed (RFC 6749 §3.3: the response's `scope` says what was granted); refused only
//!   when nothing is left. The IdP's policy may name scopes of other servers.
//! - The time and audience rules every assertion obeys — [`check_times`], [`audience_has`].

use serde_json::Value;

use crate::error::{ErrorCode, OAuthError};
use crate::model::{Client, GrantType, TokenEndpointAuthMethod};
use crate::scope::Scopes;

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The JOSE `typ` of an identity assertion grant (ID-JAG §3, RFC 8725 §3.11).
pub const ID_JAG_TYPE: &str = "oauth-id-jag+jwt";

/// The signature algorithms accepted for assertions: asymmetric only (never `none`, never
/// HMAC, whose key would be a secret the server holds too).
pub const ASSERTION_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// The longest an assertion may live from now: a client assertion's or an ID-JAG's `exp` may be
/// at most this many seconds ahead (RFC 7523 §3 lets the server bound it; short-lived
/// assertions keep the replay cache small).
pub const MAX_ASSERTION_LIFETIME: i64 = 300;

/// Clock skew tolerated on `exp`, `iat` and `nbf`, in seconds.
pub const CLOCK_SKEW: i64 = 30;

/// Who may use `client_credentials`, as the operator configured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MachinePolicy {
    /// `client_credentials` is on at all (default off).
    pub enabled: bool,
    /// Dynamically registered (DCR) and metadata-document (CIMD) clients may use it too when
    /// they registered the grant (default off: only configured and CLI-created clients).
    pub allow_self_registered: bool,
}

impl MachinePolicy {
    /// Whether `client` may get a token for itself (SECURITY E1): the grant is on, the client
    /// registered it, is confidential, and was created by the operator (configuration or
    /// CLI) unless self-registered clients are allowed too. `is_document` says its id is a
    /// metadata document URL. The error is `unauthorized_client` naming the rule.
    pub fn admits(&self, client: &Client, is_document: bool) -> Result<(), OAuthError> {
        let refuse = |why: &str| OAuthError::new(ErrorCode::UnauthorizedClient, why);
        if !self.enabled {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "grant_type \"client_credentials\" is not enabled on this server",
            ));
        }
        if client.is_public() {
            return Err(refuse(
                "client_credentials needs a confidential client; a public client cannot use it",
            ));
        }
        if (client.registered_dynamically || is_document) && !self.allow_self_registered {
            return Err(refuse(
                "client_credentials is only for clients the operator created, not for dynamically registered or metadata-document clients",
            ));
        }
        if !client.has_grant_type(GrantType::ClientCredentials) {
            return Err(refuse(
                "this client is not allowed the client_credentials grant",
            ));
        }
        Ok(())
    }
}

/// The scopes a client registered (its `scope` metadata), if any.
pub fn registered_scopes(client: &Client) -> Option<Scopes> {
    client
        .metadata
        .get("scope")
        .and_then(Value::as_str)
        .and_then(|raw| Scopes::parse(raw).ok())
}

/// The resources a client may get tokens for (its `resources` metadata); empty: every
/// resource of the server.
pub fn registered_resources(client: &Client) -> Vec<String> {
    client
        .metadata
        .get("resources")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The scopes of a machine's token (SECURITY E1). `allowed` are the client's allowed scopes
/// (already limited to the server's, user scopes such as `openid` removed). No `scope`: all
/// of them. An asked scope outside them is refused, naming it.
pub fn machine_scopes(requested: Option<&str>, allowed: &Scopes) -> Result<Scopes, OAuthError> {
    let Some(raw) = requested else {
        if allowed.is_empty() {
            return Err(OAuthError::invalid_scope("this client is allowed no scope"));
        }
        return Ok(allowed.clone());
    };
    let requested = Scopes::parse(raw)?;
    let beyond: Vec<&str> = requested.not_in(allowed).collect();
    if !beyond.is_empty() {
        return Err(OAuthError::invalid_scope(format!(
            "scope beyond what this client is allowed: {}",
            beyond.join(" ")
        )));
    }
    Ok(requested)
}

/// The scopes an ID-JAG grants (SECURITY E3): the asserted `scope` (all of `allowed` when the
/// assertion names none), narrowed to `allowed`, and to the request's `scope` when sent.
/// Nothing left → `invalid_grant`.
pub fn id_jag_scopes(
    asserted: Option<&str>,
    requested: Option<&str>,
    allowed: &Scopes,
) -> Result<Scopes, OAuthError> {
    let asserted = match asserted {
        Some(raw) => Scopes::parse(raw)
            .map_err(|_| OAuthError::invalid_grant("the assertion's scope is malformed"))?,
        None => allowed.clone(),
    };
    let mut granted = asserted.only_in(allowed);
    if let Some(raw) = requested {
        granted = Scopes::parse(raw)?.only_in(&granted);
    }
    if granted.is_empty() {
        return Err(OAuthError::invalid_grant(
            "none of the asserted scopes is allowed for this issuer and server",
        ));
    }
    Ok(granted)
}

/// The JWT time claims of an assertion, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AssertionTimes {
    /// `exp` (required).
    pub exp: Option<i64>,
    /// `iat`.
    pub iat: Option<i64>,
    /// `nbf`.
    pub nbf: Option<i64>,
}

/// RFC 7523 §3 items 4–6, bounded: `exp` present and not past, at most
/// [`MAX_ASSERTION_LIFETIME`] ahead; `iat` and `nbf`, when present, not in the future. Returns
/// `exp`, until when the assertion's `jti` must be remembered. The error names the rule.
pub fn check_times(times: AssertionTimes, now: i64) -> Result<i64, &'static str> {
    let exp = times.exp.ok_or("the assertion has no exp")?;
    if exp + CLOCK_SKEW <= now {
        return Err("the assertion has expired (exp)");
    }
    if exp > now + MAX_ASSERTION_LIFETIME + CLOCK_SKEW {
        return Err("the assertion lives too long (exp more than 5 minutes ahead)");
    }
    if times.iat.is_some_and(|iat| iat > now + CLOCK_SKEW) {
        return Err("the assertion was issued in the future (iat)");
    }
    if times.nbf.is_some_and(|nbf| nbf > now + CLOCK_SKEW) {
        return Err("the assertion is not valid yet (nbf)");
    }
    Ok(exp)
}

/// True when the JWT `aud` claim (a string or an array of strings) names one of `accepted`.
pub fn audience_has(aud: Option<&Value>, accepted: &[&str]) -> bool {
    match aud {
        Some(Value::String(one)) => accepted.contains(&one.as_str()),
        Some(Value::Array(many)) => many
            .iter()
            .filter_map(Value::as_str)
            .any(|a| accepted.contains(&a)),
        _ => false,
    }
}

/// True when a client authenticates with `private_key_jwt`.
pub fn uses_private_key_jwt(client: &Client) -> bool {
    client.token_endpoint_auth_method == TokenEndpointAuthMethod::PrivateKeyJwt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(raw: &str) -> Scopes {
        Scopes::parse(raw).unwrap_or_default()
    }

    #[test]
    fn machine_scopes_refuse_what_is_not_allowed() {
        let allowed = scopes("mcp:tools read");
        assert_eq!(machine_scopes(None, &allowed).ok(), Some(allowed.clone()));
        assert_eq!(
            machine_scopes(Some("read"), &allowed).ok(),
            Some(scopes("read"))
        );
        let error = machine_scopes(Some("read admin"), &allowed).err();
        assert_eq!(
            error.as_ref().map(|e| e.code),
            Some(ErrorCode::InvalidScope)
        );
        assert!(error.is_some_and(|e| e.description.contains("admin")));
    }

    #[test]
    fn id_jag_scopes_narrow_and_refuse_only_when_nothing_is_left() {
        let allowed = scopes("mcp:tools read");
        assert_eq!(
            id_jag_scopes(Some("read admin"), None, &allowed).ok(),
            Some(scopes("read"))
        );
        assert_eq!(
            id_jag_scopes(None, None, &allowed).ok(),
            Some(allowed.clone())
        );
        assert_eq!(
            id_jag_scopes(Some("read mcp:tools"), Some("read"), &allowed).ok(),
            Some(scopes("read"))
        );
        let error = id_jag_scopes(Some("admin"), None, &allowed).err();
        assert_eq!(error.map(|e| e.code), Some(ErrorCode::InvalidGrant));
    }

    #[test]
    fn times_are_bounded() {
        let now = 1_000_000;
        let t = |exp, iat| AssertionTimes {
            exp,
            iat,
            nbf: None,
        };
        assert_eq!(check_times(t(Some(now + 60), Some(now)), now), Ok(now + 60));
        assert!(check_times(t(None, Some(now)), now).is_err());
        assert!(check_times(t(Some(now - 31), None), now).is_err());
        assert!(check_times(t(Some(now + 3600), None), now).is_err());
        assert!(check_times(t(Some(now + 60), Some(now + 120)), now).is_err());
    }

    #[test]
    fn audience_is_a_string_or_a_list() {
        let accepted = ["https://as.test", "https://as.test/mcp/token"];
        assert!(audience_has(
            Some(&Value::from("https://as.test")),
            &accepted
        ));
        assert!(audience_has(
            Some(&serde_json::json!(["x", "https://as.test/mcp/token"])),
            &accepted
        ));
        assert!(!audience_has(
            Some(&Value::from("https://other.test")),
            &accepted
        ));
        assert!(!audience_has(None, &accepted));
    }
}
