//! The authorization endpoint's request rules (OAuth 2.1 §4.1.1, RFC 6749 §4.1.1 and §4.1.2,
//! RFC 7636 §4.3, RFC 8707 §2, RFC 9207 §2, OIDC Core §3.1.2.1).
//!
//! Two stages, because they fail differently (SECURITY S2): until the client and its redirect
//! URI are known good ([`resolve_redirect_uri`]), an error is shown to the user and never sent
//! anywhere; after that, [`AuthorizationRequest::parse`]'s errors go back to the client's
//! redirect URI ([`error_redirect`]) with `state` and `iss` (S10, S11).

use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;
use crate::pkce;
use crate::redirect_uri::{self, RedirectUri};
use crate::scope::Scopes;

/// The longest `nonce` accepted, in bytes.
pub const MAX_NONCE_LEN: usize = 512;

/// Why no redirect URI could be settled for an authorization request. These errors must be
/// shown to the user, never redirected; the display text is what the user reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriRefusal {
    /// The requested redirect URI matches none the client registered (SECURITY S1).
    #[error(
        "The redirect URI in this request is not registered for the application. You were not sent back to it."
    )]
    NotRegistered,
    /// No redirect URI was requested and the client registered more than one (RFC 6749
    /// §3.1.2.3).
    #[error(
        "The authorization request has no redirect_uri, and the application registered several."
    )]
    Ambiguous,
}

/// The redirect URI an authorization request will answer to: the requested one when it matches
/// a registered one ([`redirect_uri::matches`]: exactly, or with another port on loopback), or
/// the only registered one when none is requested.
pub fn resolve_redirect_uri(
    registered: &[RedirectUri],
    requested: Option<&str>,
) -> Result<RedirectUri, RedirectUriRefusal> {
    match requested {
        Some(requested) => {
            if !registered
                .iter()
                .any(|uri| redirect_uri::matches(uri.as_str(), requested))
            {
                return Err(RedirectUriRefusal::NotRegistered);
            }
            // Only a loopback port can differ from the registered URI; a port no URL can have
            // (above 65535) is not one to send the browser to.
            RedirectUri::parse(requested).map_err(|_| RedirectUriRefusal::NotRegistered)
        }
        None => match registered {
            [only] => Ok(only.clone()),
            _ => Err(RedirectUriRefusal::Ambiguous),
        },
    }
}

/// What the server decides an authorization request by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationPolicy {
    /// The scopes granted when a request names none.
    pub default_scope: Scopes,
    /// Every scope a grant may hold; a request naming others gets them dropped.
    pub scopes_supported: Scopes,
    /// Scopes never granted without the user's explicit approval, even to a client that skips
    /// the consent page (e.g. `mcp:admin`).
    pub consent_scopes: Scopes,
    /// The protected resource (RFC 8707) tokens are issued for when a request names none.
    pub resource: String,
    /// The other protected resources a request may name (each gets tokens bound to it alone).
    pub other_resources: Vec<String>,
    /// Whether confidential clients need PKCE too (public clients always do).
    pub require_pkce_for_confidential: bool,
}

/// `prompt` (OIDC Core §3.1.2.1). `select_account` is accepted and ignored: there is one
/// account per browser session.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Prompt {
    none: bool,
    login: bool,
    consent: bool,
}

impl Prompt {
    /// Parses a space-delimited `prompt` value; `none` may not be combined with `login` or
    /// `consent`.
    pub fn parse(raw: Option<&str>) -> Result<Self, OAuthError> {
        let mut prompt = Self::default();
        for value in raw.unwrap_or_default().split_ascii_whitespace() {
            match value {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => {}
                other => {
                    return Err(OAuthError::invalid_request(format!(
                        "prompt value {other:?} is not supported"
                    )));
                }
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(OAuthError::invalid_request(
                "prompt=none cannot be combined with other values",
            ));
        }
        Ok(prompt)
    }

    /// `prompt=none`: no page may be shown; fail with [`login_required`] or
    /// [`consent_required`] instead.
    pub fn none(self) -> bool {
        self.none
    }

    /// `prompt=login`: the user must sign in again, whatever session they have.
    pub fn login(self) -> bool {
        self.login
    }

    /// `prompt=consent`: the user must be asked, whatever they approved before.
    pub fn consent(self) -> bool {
        self.consent
    }

    /// True when a session whose user authenticated at `auth_time` may answer the request at
    /// `now`: not when `prompt=login` asks for a new sign-in, nor when the sign-in is older than
    /// `max_age` seconds.
    pub fn session_is_fresh(self, max_age: Option<u32>, auth_time: i64, now: i64) -> bool {
        !self.login && max_age.is_none_or(|max| now.saturating_sub(auth_time) <= i64::from(max))
    }
}

/// The parameters of an authorization request, checked; the client and redirect URI are
/// checked before ([`resolve_redirect_uri`]), `state` is taken as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthorizationRequest {
    /// The PKCE S256 challenge; `None` only for a confidential client when the policy allows.
    pub code_challenge: Option<String>,
    /// The requested scopes, or the default scope when none were named.
    pub scopes: Scopes,
    /// The protected resource the tokens will be for.
    pub resource: String,
    /// `prompt`.
    pub prompt: Prompt,
    /// `max_age`, in seconds.
    pub max_age: Option<u32>,
    /// The OIDC `nonce`, to be repeated in the id_token.
    pub nonce: Option<String>,
}

impl AuthorizationRequest {
    /// Checks an authorization request's parameters, in this order (the first failure decides
    /// the error): `response_type`, `response_mode`, `request`/`request_uri`, PKCE, `scope`,
    /// `resource`, `prompt`, `max_age`, `nonce`.
    pub fn parse(
        params: &Params,
        policy: &AuthorizationPolicy,
        client_is_public: bool,
    ) -> Result<Self, OAuthError> {
        match params.get("response_type") {
            Some("code") => {}
            Some(other) => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    format!("response_type {other:?} is not supported; use code"),
                ));
            }
            None => return Err(OAuthError::invalid_request("response_type is required")),
        }
        if params
            .get("response_mode")
            .is_some_and(|mode| mode != "query")
        {
            return Err(OAuthError::invalid_request("response_mode must be query"));
        }
        if params.get("request").is_some() || params.get("request_uri").is_some() {
            return Err(OAuthError::invalid_request(
                "request objects are not supported",
            ));
        }
        let code_challenge = match params.get("code_challenge") {
            Some(challenge) => {
                pkce::validate_challenge(challenge, params.get("code_challenge_method"))?;
                Some(challenge.to_owned())
            }
            None if client_is_public || policy.require_pkce_for_confidential => {
                return Err(OAuthError::invalid_request(
                    "code_challenge is required (PKCE with S256)",
                ));
            }
            None => None,
        };
        let scopes = match params.get("scope") {
            Some(raw) => Scopes::parse(raw)?,
            None => Scopes::default(),
        };
        // Scopes this server does not know are dropped rather than failing the flow: clients
        // ask for whatever they found advertised anywhere (RFC 6749 §3.3 lets the server grant
        // less; the token response's `scope` says what was granted). Nothing known left: the
        // default scope.
        let scopes = scopes.only_in(&policy.scopes_supported);
        let scopes = if scopes.is_empty() {
            policy.default_scope.clone()
        } else {
            scopes
        };
        let resource = requested_resource(
            &policy.resource,
            &policy.other_resources,
            &params.all("resource"),
        )?;
        let prompt = Prompt::parse(params.get("prompt"))?;
        let max_age = params
            .get("max_age")
            .map(|raw| {
                raw.parse::<u32>().map_err(|_| {
                    OAuthError::invalid_request("max_age must be a non-negative integer")
                })
            })
            .transpose()?;
        let nonce = params.get("nonce").map(str::to_owned);
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE_LEN) {
            return Err(OAuthError::invalid_request("nonce is too long"));
        }
        Ok(Self {
            code_challenge,
            scopes,
            resource,
            prompt,
            max_age,
            nonce,
        })
    }

    /// True when this request names a scope the user must approve explicitly
    /// ([`AuthorizationPolicy::consent_scopes`]), whatever the client's standing.
    pub fn needs_explicit_consent(&self, policy: &AuthorizationPolicy) -> bool {
        self.scopes.intersects(&policy.consent_scopes)
    }

    /// True when a session whose user authenticated at `auth_time` may answer this request at
    /// `now` (see [`Prompt::session_is_fresh`]).
    pub fn session_is_fresh(&self, auth_time: i64, now: i64) -> bool {
        self.prompt.session_is_fresh(self.max_age, auth_time, now)
    }
}

/// RFC 8707 §2: the resource the tokens will be for. Absent means the configured resource
/// (clients do not always send it); one of `others` may be named instead (every `resource`
/// parameter naming the same one); anything else is `invalid_target`.
pub fn requested_resource(
    configured: &str,
    others: &[String],
    requested: &[&str],
) -> Result<String, OAuthError> {
    let chosen = requested.first().copied().unwrap_or(configured);
    let known = chosen == configured || others.iter().any(|o| o == chosen);
    if known && requested.iter().all(|r| *r == chosen) {
        return Ok(chosen.to_owned());
    }
    if others.is_empty() {
        Err(OAuthError::invalid_target(format!(
            "this server issues tokens only for the resource {configured}"
        )))
    } else {
        Err(OAuthError::invalid_target(format!(
            "this server issues tokens only for the resources {configured} {}",
            others.join(" ")
        )))
    }
}

/// `login_required` (OIDC Core §3.1.2.6): `prompt=none`, and nobody is signed in.
pub fn login_required() -> OAuthError {
    OAuthError::new(ErrorCode::LoginRequired, "the user is not signed in")
}

/// `consent_required` (OIDC Core §3.1.2.6): `prompt=none`, and the user has not approved the
/// client for these scopes.
pub fn consent_required() -> OAuthError {
    OAuthError::new(
        ErrorCode::ConsentRequired,
        "the user has not approved this application",
    )
}

/// `access_denied` (RFC 6749 §4.1.2.1): the user said no on the consent page.
pub fn access_denied() -> OAuthError {
    OAuthError::new(ErrorCode::AccessDenied, "the user denied the request")
}

/// The request to resume after sign-in: the same parameters, without `prompt=login` (the user
/// has just signed in; asking again would loop).
pub fn resume_query(params: &Params) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, value) in params.pairs() {
        if key == "prompt" {
            let rest: Vec<&str> = value
                .split_ascii_whitespace()
                .filter(|p| *p != "login")
                .collect();
            if !rest.is_empty() {
                out.append_pair(key, &rest.join(" "));
            }
        } else {
            out.append_pair(key, value);
        }
    }
    out.finish()
}

/// Appends form-encoded query parameters to a URI that may already have a query.
pub fn append_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{encoded}")
}

/// The authorization response (RFC 6749 §4.1.2, RFC 9207 §2): the redirect URI with `code`,
/// `state` when the request had one, and `iss`.
pub fn code_redirect(redirect_uri: &str, code: &str, state: Option<&str>, issuer: &str) -> String {
    let mut pairs = vec![("code", code)];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", issuer));
    append_query(redirect_uri, &pairs)
}

/// The error response (RFC 6749 §4.1.2.1, RFC 9207 §2): the redirect URI with `error`,
/// `error_description`, `state` when the request had one, and `iss`.
pub fn error_redirect(
    redirect_uri: &str,
    error: &OAuthError,
    state: Option<&str>,
    issuer: &str,
) -> String {
    let mut pairs = vec![
        ("error", error.code.as_str()),
        ("error_description", error.description.as_str()),
    ];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", issuer));
    append_query(redirect_uri, &pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // RFC 7636 Appendix B.
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const RESOURCE: &str = "https://app.test/api/mcp";

    fn uris(raw: &[&str]) -> Vec<RedirectUri> {
        raw.iter()
            .filter_map(|uri| RedirectUri::parse(uri).ok())
            .collect()
    }

    fn policy() -> AuthorizationPolicy {
        AuthorizationPolicy {
            default_scope: Scopes::from_tokens(["openid"]),
            scopes_supported: Scopes::from_tokens(["openid", "profile", "mcp:tools", "mcp:admin"]),
            consent_scopes: Scopes::from_tokens(["mcp:admin"]),
            resource: RESOURCE.to_owned(),
            other_resources: Vec::new(),
            require_pkce_for_confidential: true,
        }
    }

    fn params(query: &str) -> Params {
        Params::from_query(Some(query), &["resource"]).unwrap_or_default()
    }

    fn valid(extra: &str) -> String {
        format!("response_type=code&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}")
    }

    fn parse(query: &str) -> Result<AuthorizationRequest, OAuthError> {
        AuthorizationRequest::parse(&params(query), &policy(), true)
    }

    fn refusal(query: &str) -> (ErrorCode, String) {
        match parse(query) {
            Ok(request) => (ErrorCode::ServerError, format!("accepted: {request:?}")),
            Err(error) => (error.code, error.description),
        }
    }

    fn invalid_request(description: &str) -> (ErrorCode, String) {
        (ErrorCode::InvalidRequest, description.to_owned())
    }

    #[test]
    fn s01_redirect_uri_must_be_registered() {
        let registered = uris(&["https://a.test/cb", "http://127.0.0.1/cb"]);
        assert_eq!(
            resolve_redirect_uri(&registered, Some("https://a.test/cb")).ok(),
            RedirectUri::parse("https://a.test/cb").ok()
        );
        assert_eq!(
            resolve_redirect_uri(&registered, Some("http://127.0.0.1:5555/cb"))
                .ok()
                .map(RedirectUri::into_string),
            Some("http://127.0.0.1:5555/cb".to_owned())
        );
        for bad in [
            "https://a.test/cb2",
            "https://evil.test/cb",
            "http://127.0.0.1:99999/cb",
        ] {
            assert_eq!(
                resolve_redirect_uri(&registered, Some(bad)),
                Err(RedirectUriRefusal::NotRegistered),
                "{bad}"
            );
        }
    }

    #[test]
    fn absent_redirect_uri_needs_a_single_registered_one() {
        let one = uris(&["https://a.test/cb"]);
        assert_eq!(
            resolve_redirect_uri(&one, None).ok(),
            RedirectUri::parse("https://a.test/cb").ok()
        );
        let two = uris(&["https://a.test/cb", "https://a.test/other"]);
        assert_eq!(
            resolve_redirect_uri(&two, None),
            Err(RedirectUriRefusal::Ambiguous)
        );
        assert_eq!(
            RedirectUriRefusal::Ambiguous.to_string(),
            "The authorization request has no redirect_uri, and the application registered several."
        );
    }

    #[test]
    fn a_valid_request_gets_defaults() {
        let request = parse(&valid(""));
        assert!(request.is_ok(), "{request:?}");
        let Ok(request) = request else {
            return;
        };
        assert_eq!(request.code_challenge.as_deref(), Some(CHALLENGE));
        assert_eq!(request.scopes.to_string(), "openid");
        assert_eq!(request.resource, RESOURCE);
        assert_eq!(request.prompt, Prompt::default());
        assert_eq!(request.max_age, None);
        assert_eq!(request.nonce, None);

        let full = parse(&valid(&format!(
            "&scope=profile+mcp:tools&resource={RESOURCE}&prompt=consent&max_age=60&nonce=n"
        )));
        assert!(
            full.is_ok_and(|r| r.scopes.to_string() == "profile mcp:tools"
                && r.prompt.consent()
                && r.max_age == Some(60)
                && r.nonce.as_deref() == Some("n"))
        );
        assert!(parse(&valid("&scope=")).is_ok_and(|r| r.scopes.to_string() == "openid"));
        assert!(parse(&valid("&response_mode=query")).is_ok());
    }

    #[test]
    fn response_type_and_mode_refusals() {
        assert_eq!(refusal(""), invalid_request("response_type is required"));
        assert_eq!(
            refusal("response_type=token"),
            (
                ErrorCode::UnsupportedResponseType,
                "response_type \"token\" is not supported; use code".to_owned()
            )
        );
        for (extra, description) in [
            ("&response_mode=fragment", "response_mode must be query"),
            ("&request=eyJ", "request objects are not supported"),
            ("&request_uri=urn:x", "request objects are not supported"),
        ] {
            assert_eq!(
                refusal(&valid(extra)),
                invalid_request(description),
                "{extra}"
            );
        }
    }

    #[test]
    fn s03_pkce_refusals() {
        let required = invalid_request("code_challenge is required (PKCE with S256)");
        assert_eq!(refusal("response_type=code"), required);
        let confidential = |policy: &AuthorizationPolicy| {
            AuthorizationRequest::parse(&params("response_type=code"), policy, false)
        };
        assert!(confidential(&policy()).is_err());
        let relaxed = AuthorizationPolicy {
            require_pkce_for_confidential: false,
            ..policy()
        };
        assert!(confidential(&relaxed).is_ok_and(|r| r.code_challenge.is_none()));
        assert_eq!(
            refusal(&format!(
                "response_type=code&code_challenge={CHALLENGE}&code_challenge_method=plain"
            )),
            invalid_request("code_challenge_method \"plain\" is not supported; use S256")
        );
        assert_eq!(
            refusal(&format!("response_type=code&code_challenge={CHALLENGE}")),
            invalid_request("code_challenge_method is required and must be S256")
        );
    }

    #[test]
    fn unknown_scopes_are_dropped_and_consent_scopes_flagged() {
        let granted = |query: &str| parse(&valid(query)).map(|r| r.scopes.to_string());
        assert_eq!(
            granted("&scope=openid+admin+mcp:tools").ok().as_deref(),
            Some("openid mcp:tools")
        );
        // Nothing known left: the default scope.
        assert_eq!(
            granted("&scope=admin+files:read").ok().as_deref(),
            Some("openid")
        );
        let admin = parse(&valid("&scope=mcp:tools+mcp:admin"));
        assert!(admin.is_ok_and(|r| r.needs_explicit_consent(&policy())));
        let ordinary = parse(&valid("&scope=openid+mcp:tools"));
        assert!(ordinary.is_ok_and(|r| !r.needs_explicit_consent(&policy())));
    }

    #[test]
    fn scope_and_resource_refusals() {
        // A malformed scope string is still an error.
        assert_eq!(refusal(&valid("&scope=a%5Cb")).0, ErrorCode::InvalidScope);
        assert_eq!(
            refusal(&valid("&resource=https://other.test/")),
            (
                ErrorCode::InvalidTarget,
                format!("this server issues tokens only for the resource {RESOURCE}")
            )
        );
        assert_eq!(
            refusal(&valid(&format!(
                "&resource={RESOURCE}&resource=https://other.test/"
            )))
            .0,
            ErrorCode::InvalidTarget
        );
        assert!(parse(&valid(&format!("&resource={RESOURCE}&resource={RESOURCE}"))).is_ok());
    }

    /// With other resources configured, a request names one of them (never two at once) and
    /// gets tokens for it alone; absent still means the configured one.
    #[test]
    fn other_resources_may_be_named_one_at_a_time() {
        let other = "https://mcp.example.test/mcp/notes".to_owned();
        let others = std::slice::from_ref(&other);
        assert_eq!(
            requested_resource(RESOURCE, others, &[]),
            Ok(RESOURCE.to_owned())
        );
        assert_eq!(
            requested_resource(RESOURCE, others, &[&other, &other]),
            Ok(other.clone())
        );
        assert_eq!(
            requested_resource(RESOURCE, others, &[RESOURCE]),
            Ok(RESOURCE.to_owned())
        );
        for refused in [
            vec![other.as_str(), RESOURCE],
            vec!["https://other.test/"],
            vec!["https://mcp.example.test/mcp/notes/"],
        ] {
            let code = requested_resource(RESOURCE, others, &refused).map_err(|e| e.code);
            assert_eq!(code, Err(ErrorCode::InvalidTarget), "{refused:?}");
        }
    }

    #[test]
    fn prompt_max_age_and_nonce_refusals() {
        for (extra, description) in [
            ("&prompt=create", "prompt value \"create\" is not supported"),
            (
                "&prompt=none+login",
                "prompt=none cannot be combined with other values",
            ),
            (
                "&prompt=none+consent",
                "prompt=none cannot be combined with other values",
            ),
        ] {
            assert_eq!(
                refusal(&valid(extra)),
                invalid_request(description),
                "{extra}"
            );
        }
        assert!(parse(&valid("&prompt=select_account+login")).is_ok_and(|r| r.prompt.login()));
        assert!(parse(&valid("&prompt=none")).is_ok_and(|r| r.prompt.none()));
        for bad in ["-1", "1.5", "x", "4294967296"] {
            assert_eq!(
                refusal(&valid(&format!("&max_age={bad}"))),
                invalid_request("max_age must be a non-negative integer")
            );
        }
        assert!(parse(&valid(&format!("&nonce={}", "n".repeat(512)))).is_ok());
        assert_eq!(
            refusal(&valid(&format!("&nonce={}", "n".repeat(513)))),
            invalid_request("nonce is too long")
        );
    }

    #[test]
    fn checks_are_made_in_order() {
        // Several faults: the earliest check decides the error.
        assert_eq!(
            refusal("response_type=token&response_mode=fragment").0,
            ErrorCode::UnsupportedResponseType
        );
        assert_eq!(
            refusal("response_type=code&scope=admin&prompt=bogus"),
            invalid_request("code_challenge is required (PKCE with S256)")
        );
        assert_eq!(
            refusal(&valid("&scope=a%5Cb&resource=https://other.test/")).0,
            ErrorCode::InvalidScope
        );
        assert_eq!(
            refusal(&valid("&resource=https://other.test/&prompt=bogus")).0,
            ErrorCode::InvalidTarget
        );
        assert_eq!(
            refusal(&valid("&prompt=bogus&max_age=x")),
            invalid_request("prompt value \"bogus\" is not supported")
        );
    }

    #[test]
    fn fresh_sessions() {
        let plain = Prompt::default();
        assert!(plain.session_is_fresh(None, 0, 1_000_000));
        assert!(plain.session_is_fresh(Some(60), 1000, 1060));
        assert!(!plain.session_is_fresh(Some(60), 1000, 1061));
        assert!(plain.session_is_fresh(Some(0), 1000, 1000));
        let login = Prompt::parse(Some("login")).unwrap_or_default();
        assert!(!login.session_is_fresh(None, 1000, 1000));
        let request = parse(&valid("&max_age=10"));
        assert!(
            request.is_ok_and(|r| r.session_is_fresh(100, 110) && !r.session_is_fresh(100, 111))
        );
    }

    #[test]
    fn resume_query_drops_only_prompt_login() {
        assert_eq!(
            resume_query(&params("client_id=c&prompt=login&state=a+b")),
            "client_id=c&state=a+b"
        );
        assert_eq!(
            resume_query(&params("prompt=login+consent&resource=r1&resource=r2")),
            "prompt=consent&resource=r1&resource=r2"
        );
        assert_eq!(resume_query(&params("prompt=none")), "prompt=none");
    }

    #[test]
    fn s10_s11_redirects_carry_state_and_issuer() {
        assert_eq!(
            append_query("https://a.test/cb", &[("a", "1 2"), ("b", "&")]),
            "https://a.test/cb?a=1+2&b=%26"
        );
        assert_eq!(
            append_query("https://a.test/cb?x=1", &[("a", "1")]),
            "https://a.test/cb?x=1&a=1"
        );
        assert_eq!(
            code_redirect("https://a.test/cb", "c0de", Some("s t"), "https://as.test"),
            "https://a.test/cb?code=c0de&state=s+t&iss=https%3A%2F%2Fas.test"
        );
        assert_eq!(
            code_redirect("https://a.test/cb", "c0de", None, "https://as.test"),
            "https://a.test/cb?code=c0de&iss=https%3A%2F%2Fas.test"
        );
        assert_eq!(
            error_redirect(
                "https://a.test/cb",
                &access_denied(),
                Some("s"),
                "https://as.test"
            ),
            "https://a.test/cb?error=access_denied&error_description=the+user+denied+the+request&state=s&iss=https%3A%2F%2Fas.test"
        );
        assert_eq!(login_required().code, ErrorCode::LoginRequired);
        assert_eq!(consent_required().code, ErrorCode::ConsentRequired);
    }

    proptest! {
        #[test]
        fn resume_query_round_trips_without_prompt(state in "[ -~]{1,20}", client in "[a-z0-9]{1,12}") {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("client_id", &client)
                .append_pair("state", &state)
                .append_pair("prompt", "login")
                .finish();
            let resumed = params(&resume_query(&params(&query)));
            prop_assert_eq!(resumed.get("client_id"), Some(client.as_str()));
            prop_assert_eq!(resumed.get("state"), Some(state.as_str()));
            prop_assert_eq!(resumed.get("prompt"), None);
        }
    }
}
