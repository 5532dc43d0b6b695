//! The token endpoint's grant rules (OAuth 2.1 §4.1.3 and §4.3, RFC 6749 §4.1.3 and §6,
//! RFC 7636 §4.6, RFC 8707 §2.2).
//!
//! - The code exchange: a code is bound to its client, its redirect URI, its PKCE challenge and
//!   its resource, and expires (SECURITY S5, S6, S9) — [`CodeBinding::check`].
//! - The refresh: a token is bound to its client and its grant; a refresh may narrow the scope,
//!   never widen it, and keeps the grant's resource — [`RefreshBinding::check`],
//!   [`narrow_scope`], [`check_refresh_resource`]. A rotated token may be retried for the same
//!   answer only within the grace window (S12) — [`within_retry_window`]; what a rotated
//!   token gets after that window is the [`RefreshReusePolicy`].
//! - Which grants get a refresh token — [`RefreshTokenPolicy::issues_refresh_token`].

use crate::error::{ErrorCode, OAuthError};
use crate::model::GrantType;
use crate::pkce;
use crate::scope::Scopes;

/// The grant type of a token request: `authorization_code`, `refresh_token`,
/// `client_credentials` or the jwt-bearer grant, else `unsupported_grant_type` (whether the
/// last two are enabled is decided by the token endpoint).
pub fn requested_grant_type(raw: &str) -> Result<GrantType, OAuthError> {
    GrantType::parse(raw).ok_or_else(|| {
        OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!("grant_type {raw:?} is not supported; use authorization_code or refresh_token"),
        )
    })
}

/// What an authorization code was issued for, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeBinding<'a> {
    /// The client the code was issued to.
    pub client_id: &'a str,
    /// The redirect URI of the authorization request.
    pub redirect_uri: &'a str,
    /// The PKCE S256 challenge of the authorization request, if it had one.
    pub code_challenge: Option<&'a str>,
    /// The resource the tokens will be for.
    pub resource: &'a str,
    /// When the code expires, in seconds since the Unix epoch.
    pub expires_at: i64,
}

impl CodeBinding<'_> {
    /// Checks a token request for this code, made at `now` by the authenticated `client_id`
    /// with the request's `redirect_uri`, `code_verifier` and `resource` parameters: expiry,
    /// client, redirect URI, PKCE verifier, then resource. Every failure is `invalid_grant` but
    /// the resource's (`invalid_target`).
    pub fn check(
        &self,
        client_id: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        resource: &[&str],
        now: i64,
    ) -> Result<(), OAuthError> {
        if self.expires_at <= now {
            return Err(OAuthError::invalid_grant(
                "the authorization code has expired",
            ));
        }
        if self.client_id != client_id {
            return Err(OAuthError::invalid_grant(
                "the authorization code was issued to another client",
            ));
        }
        if redirect_uri.is_some_and(|uri| uri != self.redirect_uri) {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        match (self.code_challenge, code_verifier) {
            (Some(challenge), Some(verifier)) => {
                if !pkce::verify_s256(verifier, challenge) {
                    return Err(OAuthError::invalid_grant(
                        "code_verifier does not match the code_challenge",
                    ));
                }
            }
            (Some(_), None) => {
                return Err(OAuthError::invalid_grant("code_verifier is required"));
            }
            (None, Some(_)) => {
                return Err(OAuthError::invalid_grant(
                    "code_verifier was sent but the authorization request had no code_challenge",
                ));
            }
            (None, None) => {}
        }
        if resource.iter().any(|r| *r != self.resource) {
            return Err(OAuthError::invalid_target(
                "resource differs from the one the code was issued for",
            ));
        }
        Ok(())
    }
}

/// What a refresh token was issued for, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshBinding<'a> {
    /// The client the token was issued to.
    pub client_id: &'a str,
    /// Whether the token's family (grant) has been revoked.
    pub family_revoked: bool,
    /// When the token was exchanged for its successor, if it was.
    pub rotated_at: Option<i64>,
    /// When the token expires, in seconds since the Unix epoch.
    pub expires_at: i64,
    /// The absolute end of its grant, in seconds since the Unix epoch.
    pub family_expires_at: i64,
}

/// A refresh token that passed [`RefreshBinding::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshTokenState {
    /// Unused and unexpired: it may be rotated.
    Live,
    /// Already rotated at `rotated_at`: a retry within the grace window gets the same answer,
    /// any later use revokes the grant ([`within_retry_window`]).
    Rotated {
        /// When it was rotated, in seconds since the Unix epoch.
        rotated_at: i64,
    },
}

impl RefreshBinding<'_> {
    /// Checks a refresh token presented at `now` by the authenticated `client_id`: its client,
    /// its grant, whether it was rotated, then its expiry (a rotated token is answered by the
    /// retry rule, even after it expired).
    pub fn check(&self, client_id: &str, now: i64) -> Result<RefreshTokenState, OAuthError> {
        if self.client_id != client_id {
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        if self.family_revoked {
            return Err(OAuthError::invalid_grant("the grant has been revoked"));
        }
        if let Some(rotated_at) = self.rotated_at {
            return Ok(RefreshTokenState::Rotated { rotated_at });
        }
        if self.expires_at <= now || self.family_expires_at <= now {
            return Err(OAuthError::invalid_grant("the refresh token has expired"));
        }
        Ok(RefreshTokenState::Live)
    }
}

/// RFC 6749 §6: the scopes of a refreshed access token. A `scope` parameter may name fewer than
/// `granted`, never more; absent means all of them.
pub fn narrow_scope(granted: &Scopes, requested: Option<&str>) -> Result<Scopes, OAuthError> {
    let Some(raw) = requested else {
        return Ok(granted.clone());
    };
    let requested = Scopes::parse(raw)?;
    if requested.is_subset_of(granted) {
        Ok(requested)
    } else {
        Err(OAuthError::invalid_scope(
            "a refresh may narrow the scope, never widen it",
        ))
    }
}

/// RFC 8707 §2.2: a refresh may repeat the grant's resource, never name another.
pub fn check_refresh_resource(granted: &str, requested: &[&str]) -> Result<(), OAuthError> {
    if requested.iter().any(|r| *r != granted) {
        return Err(OAuthError::invalid_target(
            "resource differs from the one the grant was issued for",
        ));
    }
    Ok(())
}

/// True when a refresh token rotated at `rotated_at` may still be retried at `now` for the
/// answer its rotation gave (within `grace` seconds, inclusive).
pub fn within_retry_window(rotated_at: i64, now: i64, grace: i64) -> bool {
    now.saturating_sub(rotated_at) <= grace
}

/// What a refresh token presented again after its rotation gets, once the retry grace window
/// ([`within_retry_window`]) is over (SECURITY S12).
///
/// Every refresh token of a grant has a generation: the code exchange issues generation 0, and
/// a token issued in exchange for a generation-`g` token is of generation `g + 1`. The grant
/// records its head generation and when it last advanced (a rotation of a head-generation
/// token). The rules:
///
/// - A token of the head generation rotates: its successor is of the next generation, which
///   becomes the head.
/// - [`Self::ToleratePrevious`] (the default): a token of the generation just before the head
///   — rotated, or unrotated but left behind by a sibling's rotation — presented no later than
///   the window after the grant last advanced gets a fresh access token and a new refresh
///   token of the head generation (a sibling of the head; the head itself stays valid). This
///   does not advance the grant, so tolerated reuses never extend the window. Each such
///   presentation gets its own sibling (every parallel session needs one), except that a token
///   never rotated before is spent by the first: concurrent presentations of it get that
///   answer within the grace window. An older token, or one presented after the window,
///   revokes the grant.
/// - [`Self::Strict`]: any reuse revokes the grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshReusePolicy {
    /// Tolerate the immediately previous token within a bounded window after the grant last
    /// advanced (what parallel sessions of one client sharing a grant do).
    #[default]
    ToleratePrevious,
    /// Any reuse after the grace window revokes the grant.
    Strict,
}

impl RefreshReusePolicy {
    /// The policy named `raw` (`tolerate_previous` or `strict`).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "tolerate_previous" => Some(Self::ToleratePrevious),
            "strict" => Some(Self::Strict),
            _ => None,
        }
    }

    /// The window (seconds) in which the previous generation is tolerated under this policy,
    /// given the configured `window`; `None` under [`Self::Strict`].
    pub fn tolerance_window(self, window: i64) -> Option<i64> {
        match self {
            Self::ToleratePrevious => Some(window),
            Self::Strict => None,
        }
    }
}

/// Which grants get a refresh token (`registered_grant` or `offline_access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshTokenPolicy {
    /// Clients that registered the `refresh_token` grant or asked for `offline_access`.
    #[default]
    RegisteredGrant,
    /// Only clients that asked for `offline_access`.
    OfflineAccess,
}

impl RefreshTokenPolicy {
    /// True when a code exchange for `scopes` gets a refresh token, for a client that did or
    /// did not register the `refresh_token` grant.
    pub fn issues_refresh_token(self, scopes: &Scopes, client_has_refresh_grant: bool) -> bool {
        scopes.contains("offline_access")
            || (self == Self::RegisteredGrant && client_has_refresh_grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::sha256_b64url;
    use proptest::prelude::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const RESOURCE: &str = "https://app.test/api/mcp";

    fn binding(code_challenge: Option<&str>) -> CodeBinding<'_> {
        CodeBinding {
            client_id: "client",
            redirect_uri: "https://a.test/cb",
            code_challenge,
            resource: RESOURCE,
            expires_at: 1000,
        }
    }

    fn grant_error(description: &str) -> Result<(), OAuthError> {
        Err(OAuthError::invalid_grant(description))
    }

    #[test]
    fn grant_types() {
        assert_eq!(
            requested_grant_type("authorization_code").ok(),
            Some(GrantType::AuthorizationCode)
        );
        assert_eq!(
            requested_grant_type("refresh_token").ok(),
            Some(GrantType::RefreshToken)
        );
        assert_eq!(
            requested_grant_type("password").err(),
            Some(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "grant_type \"password\" is not supported; use authorization_code or refresh_token"
            ))
        );
    }

    #[test]
    fn s09_a_code_works_for_its_own_request() {
        let code = binding(Some(CHALLENGE));
        assert!(code.check("client", None, Some(VERIFIER), &[], 999).is_ok());
        assert!(
            code.check(
                "client",
                Some("https://a.test/cb"),
                Some(VERIFIER),
                &[RESOURCE],
                999
            )
            .is_ok()
        );
        assert!(binding(None).check("client", None, None, &[], 999).is_ok());
    }

    #[test]
    fn s09_expired_codes_and_other_clients_are_refused() {
        let code = binding(Some(CHALLENGE));
        assert_eq!(
            code.check("client", None, Some(VERIFIER), &[], 1000),
            grant_error("the authorization code has expired")
        );
        assert_eq!(
            code.check("other", None, Some(VERIFIER), &[], 999),
            grant_error("the authorization code was issued to another client")
        );
    }

    #[test]
    fn s05_redirect_uri_must_repeat_the_requests() {
        assert_eq!(
            binding(Some(CHALLENGE)).check(
                "client",
                Some("https://a.test/cb2"),
                Some(VERIFIER),
                &[],
                999
            ),
            grant_error("redirect_uri differs from the authorization request's")
        );
    }

    #[test]
    fn s06_pkce_verifier_must_match() {
        let code = binding(Some(CHALLENGE));
        assert_eq!(
            code.check("client", None, Some(&"a".repeat(43)), &[], 999),
            grant_error("code_verifier does not match the code_challenge")
        );
        assert_eq!(
            code.check("client", None, None, &[], 999),
            grant_error("code_verifier is required")
        );
        assert_eq!(
            binding(None).check("client", None, Some(VERIFIER), &[], 999),
            grant_error(
                "code_verifier was sent but the authorization request had no code_challenge"
            )
        );
    }

    #[test]
    fn code_resource_must_be_the_codes() {
        assert_eq!(
            binding(Some(CHALLENGE)).check(
                "client",
                None,
                Some(VERIFIER),
                &[RESOURCE, "https://other.test/"],
                999
            ),
            Err(OAuthError::invalid_target(
                "resource differs from the one the code was issued for"
            ))
        );
    }

    #[test]
    fn code_checks_are_made_in_order() {
        // Expired and for another client, with a wrong verifier and resource: expiry decides.
        let code = binding(Some(CHALLENGE));
        assert_eq!(
            code.check("other", Some("x"), None, &["y"], 1000),
            grant_error("the authorization code has expired")
        );
        assert_eq!(
            code.check("client", Some("x"), None, &["y"], 999),
            grant_error("redirect_uri differs from the authorization request's")
        );
        assert_eq!(
            code.check("client", None, None, &["y"], 999),
            grant_error("code_verifier is required")
        );
    }

    fn refresh(rotated_at: Option<i64>, family_revoked: bool) -> RefreshBinding<'static> {
        RefreshBinding {
            client_id: "client",
            family_revoked,
            rotated_at,
            expires_at: 1000,
            family_expires_at: 2000,
        }
    }

    #[test]
    fn s12_refresh_token_bindings() {
        assert_eq!(
            refresh(None, false).check("client", 999),
            Ok(RefreshTokenState::Live)
        );
        assert_eq!(
            refresh(None, false).check("other", 999),
            Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client"
            ))
        );
        assert_eq!(
            refresh(Some(5), true).check("client", 999),
            Err(OAuthError::invalid_grant("the grant has been revoked"))
        );
        assert_eq!(
            refresh(None, false).check("client", 1000),
            Err(OAuthError::invalid_grant("the refresh token has expired"))
        );
        let family_ended = RefreshBinding {
            expires_at: 3000,
            ..refresh(None, false)
        };
        assert_eq!(
            family_ended.check("client", 2000),
            Err(OAuthError::invalid_grant("the refresh token has expired"))
        );
        // A rotated token is answered by the retry rule, expired or not.
        assert_eq!(
            refresh(Some(900), false).check("client", 5000),
            Ok(RefreshTokenState::Rotated { rotated_at: 900 })
        );
    }

    #[test]
    fn s12_retry_window_is_inclusive() {
        assert!(within_retry_window(100, 100, 30));
        assert!(within_retry_window(100, 130, 30));
        assert!(!within_retry_window(100, 131, 30));
        assert!(!within_retry_window(100, 101, 0));
    }

    #[test]
    fn refresh_may_narrow_never_widen() {
        let granted = Scopes::from_tokens(["openid", "mcp:tools"]);
        assert_eq!(narrow_scope(&granted, None).ok(), Some(granted.clone()));
        assert_eq!(
            narrow_scope(&granted, Some("mcp:tools"))
                .map(|s| s.to_string())
                .ok(),
            Some("mcp:tools".to_owned())
        );
        assert_eq!(
            narrow_scope(&granted, Some("mcp:tools mcp:admin")).err(),
            Some(OAuthError::invalid_scope(
                "a refresh may narrow the scope, never widen it"
            ))
        );
        assert_eq!(
            narrow_scope(&granted, Some("a\\b")).err().map(|e| e.code),
            Some(ErrorCode::InvalidScope)
        );
    }

    #[test]
    fn refresh_resource_must_be_the_grants() {
        assert!(check_refresh_resource(RESOURCE, &[]).is_ok());
        assert!(check_refresh_resource(RESOURCE, &[RESOURCE]).is_ok());
        assert_eq!(
            check_refresh_resource(RESOURCE, &["https://other.test/"]),
            Err(OAuthError::invalid_target(
                "resource differs from the one the grant was issued for"
            ))
        );
    }

    #[test]
    fn who_gets_a_refresh_token() {
        let plain = Scopes::from_tokens(["openid"]);
        let offline = Scopes::from_tokens(["openid", "offline_access"]);
        let registered = RefreshTokenPolicy::RegisteredGrant;
        let strict = RefreshTokenPolicy::OfflineAccess;
        assert_eq!(RefreshTokenPolicy::default(), registered);
        assert!(registered.issues_refresh_token(&plain, true));
        assert!(!registered.issues_refresh_token(&plain, false));
        assert!(registered.issues_refresh_token(&offline, false));
        assert!(!strict.issues_refresh_token(&plain, true));
        assert!(strict.issues_refresh_token(&offline, false));
    }

    #[test]
    fn s12_reuse_policies() {
        assert_eq!(
            RefreshReusePolicy::default(),
            RefreshReusePolicy::ToleratePrevious
        );
        assert_eq!(
            RefreshReusePolicy::parse("strict"),
            Some(RefreshReusePolicy::Strict)
        );
        assert_eq!(
            RefreshReusePolicy::parse("tolerate_previous"),
            Some(RefreshReusePolicy::ToleratePrevious)
        );
        assert_eq!(RefreshReusePolicy::parse("lenient"), None);
        assert_eq!(
            RefreshReusePolicy::ToleratePrevious.tolerance_window(600),
            Some(600)
        );
        assert_eq!(RefreshReusePolicy::Strict.tolerance_window(600), None);
    }

    proptest! {
        #[test]
        fn s06_only_the_matching_verifier_redeems(v in "[A-Za-z0-9._~-]{43,128}", w in "[A-Za-z0-9._~-]{43,128}") {
            let challenge = sha256_b64url(v.as_bytes());
            let code = CodeBinding { code_challenge: Some(&challenge), ..binding(None) };
            prop_assert!(code.check("client", None, Some(&v), &[], 0).is_ok());
            prop_assert_eq!(code.check("client", None, Some(&w), &[], 0).is_ok(), v == w);
        }
    }
}
