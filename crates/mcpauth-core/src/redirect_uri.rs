//! Redirect URIs: which may be registered and how a requested one matches a registered one.
//!
//! Registration (RFC 7591 §2, OAuth 2.1 §2.3.1, RFC 8252 §7): `https://` with a host, `http://`
//! only on a loopback host (`localhost`, `127.0.0.1`, `[::1]`), or a private-use scheme such as
//! `cursor://` or `com.example.app:/cb`. Never a fragment, never userinfo, never a scheme that
//! executes or embeds content (`javascript:`, `data:`, `vbscript:`, `file:`, …).
//!
//! Matching (SECURITY S1): the requested URI must equal a registered one character for
//! character. The one relaxation is RFC 8252 §7.3: on a loopback `http` URI the port may differ,
//! because native apps listen on whatever port the OS gives them.

use crate::error::{ErrorCode, OAuthError};

const FORBIDDEN_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "vbscript",
    "file",
    "about",
    "blob",
    "filesystem",
];

const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

/// A redirect URI that may be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Validates a redirect URI offered at registration.
    pub fn parse(raw: &str) -> Result<Self, OAuthError> {
        let reject = |why: &str| {
            Err(OAuthError::new(
                ErrorCode::InvalidRedirectUri,
                format!("redirect URI {raw:?} {why}"),
            ))
        };
        if raw.is_empty() || raw.len() > 2048 {
            return reject("must be between 1 and 2048 characters");
        }
        if !raw.is_ascii() || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return reject(
                "must be ASCII without whitespace or control characters (percent-encode the rest)",
            );
        }
        if raw.contains('#') {
            return reject("must not contain a fragment");
        }
        if raw.contains('*') {
            // fastmcp writes `http://localhost:*/callback`: matching is exact, and a loopback
            // redirect already matches any port when it names none.
            return reject(
                "must not contain a wildcard (*): redirect URIs match exactly; a loopback one without a port matches any port",
            );
        }
        let Ok(url) = url::Url::parse(raw) else {
            return reject("is not an absolute URI");
        };
        let scheme = url.scheme();
        if FORBIDDEN_SCHEMES.contains(&scheme) {
            return reject("uses a scheme that is never allowed");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return reject("must not contain user information");
        }
        match scheme {
            "https" if url.host_str().is_none_or(str::is_empty) => reject("must name a host"),
            "http" if loopback_parts(raw).is_none() => reject(
                "uses http, which is allowed only on a loopback host (localhost, 127.0.0.1, [::1])",
            ),
            // https with a host, http on loopback, or a private-use scheme (RFC 8252 §7.1) such
            // as cursor://anysphere.cursor-mcp/…
            _ => Ok(Self(raw.to_owned())),
        }
    }

    /// The URI exactly as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URI exactly as registered, as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for RedirectUri {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for RedirectUri {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        RedirectUri::parse(&raw).map_err(|e| serde::de::Error::custom(e.description))
    }
}

/// True when `requested` may be used as the redirect URI of a client that registered
/// `registered`.
pub fn matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return !requested.contains('#');
    }
    match (loopback_parts(registered), loopback_parts(requested)) {
        (Some((host_a, rest_a)), Some((host_b, rest_b))) => {
            host_a == host_b && rest_a == rest_b && !rest_b.contains('#')
        }
        _ => false,
    }
}

/// Splits `http://<loopback host>[:port]<rest>` into the host and the rest, checking the port is
/// numeric; `None` for anything else.
fn loopback_parts(raw: &str) -> Option<(&str, &str)> {
    let after_scheme = raw.strip_prefix("http://")?;
    let authority_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let (authority, rest) = after_scheme.split_at(authority_end);
    let host = LOOPBACK_HOSTS.iter().find(|host| {
        authority.strip_prefix(**host).is_some_and(|port| {
            port.is_empty()
                || port.strip_prefix(':').is_some_and(|digits| {
                    !digits.is_empty()
                        && digits.len() <= 5
                        && digits.bytes().all(|b| b.is_ascii_digit())
                })
        })
    })?;
    Some((host, rest))
}

/// True when the redirect URI points at the local machine (for the consent page's wording).
pub fn is_loopback(raw: &str) -> bool {
    loopback_parts(raw).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn registration_accepts_what_mcp_clients_use() {
        for ok in [
            "https://claude.ai/api/mcp/auth_callback",
            "https://chatgpt.com/connector/oauth/abc",
            "http://localhost:6274/oauth/callback",
            "http://127.0.0.1/",
            "http://127.0.0.1:33418/",
            "http://[::1]:8080/cb",
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "com.example.app:/oauth2redirect",
            "https://vscode.dev/redirect",
        ] {
            assert!(RedirectUri::parse(ok).is_ok(), "{ok} should be accepted");
        }
    }

    #[test]
    fn registration_refuses_dangerous_uris() {
        for bad in [
            "http://evil.test/cb",
            "http://localhost.evil.test/cb",
            "http://127.0.0.1.nip.io/cb",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,hi",
            "vbscript:msgbox",
            "file:///etc/passwd",
            "https://a.test/cb#frag",
            "https://user:pw@a.test/cb",
            "/relative/path",
            "",
            "https://a.test/c b",
            "https://a.test/caf\u{e9}",
            "http://localhost:*/callback",
            "https://a.test/*",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn s01_exact_match_with_loopback_port_relaxation() {
        let registered = "https://a.test/cb";
        assert!(matches(registered, "https://a.test/cb"));
        for bad in [
            "https://a.test/cb/x",
            "https://a.test/cb?x=1",
            "https://A.test/cb",
            "https://a.test/cb/",
            "https://user@a.test/cb",
            "https://a.test/cb#f",
            "https://a.test:443/cb",
        ] {
            assert!(!matches(registered, bad), "{bad} must not match");
        }
        let loopback = "http://127.0.0.1/cb";
        assert!(matches(loopback, "http://127.0.0.1:5555/cb"));
        assert!(!matches(loopback, "http://127.0.0.1:5555/cb2"));
        assert!(!matches(loopback, "http://localhost:5555/cb"));
        assert!(!matches(loopback, "http://127.0.0.1:5555@evil.test/cb"));
        assert!(!matches(loopback, "http://127.0.0.1:/cb"));
        assert!(matches(
            "http://localhost:3000/callback",
            "http://localhost:49152/callback"
        ));
    }

    proptest! {
        #[test]
        fn any_port_on_loopback_matches(port in 1u16..) {
            let requested = format!("http://localhost:{port}/callback");
            prop_assert!(matches("http://localhost/callback", &requested));
            prop_assert!(matches("http://localhost:1/callback", &requested));
        }

        #[test]
        fn non_loopback_matches_only_itself(a in "https://[a-z]{1,8}\\.test/[a-z]{0,6}", b in "https://[a-z]{1,8}\\.test/[a-z]{0,6}") {
            prop_assert_eq!(matches(&a, &b), a == b);
        }
    }
}
