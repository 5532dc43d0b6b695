//! Client ID Metadata Documents (CIMD, draft-ietf-oauth-client-id-metadata-document; MCP
//! 2025-11-25): a `client_id` that is an https URL serving the client's metadata.
//!
//! The rules here are pure: which `client_id` is a document URL ([`is_document_url`]) and which
//! of those may be fetched ([`parse_document_url`]), what a fetched document must say to become
//! a client ([`validate_document`], by the registration rules of
//! [`ClientRegistration::parse`]), and how long a document may be kept
//! ([`cache_lifetime`]). Fetching it safely is the web crate's job.

use serde_json::Value;

use crate::client_registration::ClientRegistration;
use crate::model::{Client, TokenEndpointAuthMethod};
use crate::scope::Scopes;

/// The longest document URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// The largest document fetched by default, in bytes.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// The shortest time a document is kept by default, in seconds.
pub const DEFAULT_MIN_CACHE_SECONDS: i64 = 300;
/// The longest time a document is kept by default, in seconds.
pub const DEFAULT_MAX_CACHE_SECONDS: i64 = 86_400;

/// Why a metadata document URL, or the document behind it, was refused. The text says why,
/// for the error page or the `invalid_client` description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CimdError {
    /// The `client_id` is not a URL a document may be fetched from.
    #[error("the client_id is not a valid metadata document URL: {0}")]
    Url(String),
    /// The server's policy does not allow this document (disabled, host not allowed).
    #[error("client metadata documents from this address are not accepted: {0}")]
    Policy(String),
    /// The document could not be fetched.
    #[error("the client metadata document could not be fetched: {0}")]
    Fetch(String),
    /// The document was fetched but is not a valid client.
    #[error("the client metadata document is invalid: {0}")]
    Document(String),
}

/// True when `client_id` names a metadata document (an `https://` URL). Client ids mcpauth
/// generates never start with `https://`, so the two kinds cannot collide.
pub fn is_document_url(client_id: &str) -> bool {
    client_id
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// Checks that `raw` is a document URL that may be fetched: https, a host, a path other than
/// `/`, no dot segments, no fragment, no user information, and a query only when
/// `allow_query`. Returns the parsed URL (the `url` crate normalises the host, e.g. `127.1`
/// becomes `127.0.0.1`, so address checks see the address that would be connected to).
pub fn parse_document_url(raw: &str, allow_query: bool) -> Result<url::Url, CimdError> {
    let refuse = |why: &str| Err(CimdError::Url(why.to_owned()));
    if raw.len() > MAX_URL_LEN {
        return refuse("it is longer than 2048 bytes");
    }
    if !raw.starts_with("https://") {
        return refuse("it must start with https://");
    }
    if raw.contains('#') {
        return refuse("it must not contain a fragment");
    }
    let Ok(url) = url::Url::parse(raw) else {
        return refuse("it is not a URL");
    };
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("it must not contain user information");
    }
    if url.host().is_none() {
        return refuse("it must name a host");
    }
    if url.query().is_some() && !allow_query {
        return refuse("it must not contain a query");
    }
    let path_part = raw["https://".len()..]
        .find('/')
        .map_or("", |start| &raw["https://".len() + start..]);
    let path = path_part
        .split(['?'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if path
        .split('/')
        .any(|segment| matches!(segment, "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e."))
    {
        return refuse("it must not contain . or .. path segments");
    }
    if path.is_empty() || path == "/" {
        return refuse("it must have a path (e.g. https://app.example/oauth/client.json)");
    }
    Ok(url)
}

/// Checks a fetched document for the client `client_id` (its URL), by the rules of dynamic
/// registration plus those of CIMD: a JSON object whose `client_id` equals the URL exactly,
/// with `client_name` and `redirect_uris`, no secret, and `none` or `private_key_jwt` (with
/// `jwks` or `jwks_uri`, SECURITY E2) as its token endpoint authentication: a shared secret
/// cannot be published. A `scope` in the document is ignored: it only limits what the client
/// asks for.
pub fn validate_document(client_id: &str, body: &[u8]) -> Result<ClientRegistration, CimdError> {
    let invalid = |why: String| CimdError::Document(why);
    let Ok(Value::Object(mut document)) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid("it is not a JSON object".to_owned()));
    };
    match document.get("client_id") {
        Some(Value::String(id)) if id == client_id => {}
        Some(Value::String(id)) => {
            return Err(invalid(format!(
                "its client_id {id:?} differs from the URL it was fetched from"
            )));
        }
        _ => return Err(invalid("it has no client_id".to_owned())),
    }
    for secret in ["client_secret", "client_secret_expires_at"] {
        if document.contains_key(secret) {
            return Err(invalid(format!(
                "it contains {secret}; a metadata document cannot carry a shared secret"
            )));
        }
    }
    let method = match document.get("token_endpoint_auth_method") {
        None | Some(Value::Null) => TokenEndpointAuthMethod::None,
        Some(Value::String(method)) if method == "none" => TokenEndpointAuthMethod::None,
        Some(Value::String(method)) if method == "private_key_jwt" => {
            TokenEndpointAuthMethod::PrivateKeyJwt
        }
        Some(other) => {
            return Err(invalid(format!(
                "token_endpoint_auth_method {other} is not supported for metadata documents; use none or private_key_jwt"
            )));
        }
    };
    if !matches!(document.get("client_name"), Some(Value::String(name)) if !name.trim().is_empty())
    {
        return Err(invalid("it has no client_name".to_owned()));
    }
    document.remove("scope");
    document.insert(
        "token_endpoint_auth_method".into(),
        Value::from(method.as_str()),
    );
    ClientRegistration::parse(&document, &Scopes::default())
        .map_err(|error| invalid(error.description))
}

/// The client a valid document describes (public, or `private_key_jwt`), stored under its URL.
pub fn document_client(
    client_id: &str,
    registration: ClientRegistration,
    skip_consent: bool,
    now: i64,
) -> Client {
    registration.into_client(client_id.to_owned(), None, skip_consent, now)
}

/// How long a fetched document may be kept, in seconds, from its `Cache-Control` header (RFC
/// 9111 §5.2.2): `max-age` within `[min, max]`; `no-store`, `no-cache` or no `max-age` keep it
/// for `min` (mcpauth needs the client for at least one authorization).
pub fn cache_lifetime(cache_control: Option<&str>, min: i64, max: i64) -> i64 {
    let mut max_age = None;
    for directive in cache_control.unwrap_or_default().split(',') {
        let directive = directive.trim().to_ascii_lowercase();
        if directive == "no-store" || directive == "no-cache" {
            return min;
        }
        if let Some(value) = directive.strip_prefix("max-age=") {
            max_age = value.trim_matches('"').parse::<i64>().ok();
        }
    }
    max_age.unwrap_or(min).clamp(min, max.max(min))
}

/// True when `ip` is an ordinary public unicast address: every RFC 6890 special-purpose range
/// is refused (unspecified, loopback, private, shared CGNAT, link-local, documentation,
/// benchmarking, IETF protocol assignments, 6to4/Teredo/NAT64 relays, multicast, reserved,
/// broadcast), and an IPv4-mapped or -compatible IPv6 address is judged by its IPv4 address.
pub fn is_public_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => is_public_ipv4(v4),
        std::net::IpAddr::V6(v6) => {
            let segments = v6.segments();
            if segments[..5] == [0; 5] && (segments[5] == 0xffff || segments[5] == 0) {
                // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
                let [a, b] = segments[6].to_be_bytes();
                let [c, d] = segments[7].to_be_bytes();
                return segments[5] == 0xffff
                    && is_public_ipv4(std::net::Ipv4Addr::new(a, b, c, d));
            }
            // Only global unicast (2000::/3) is public; within it, refuse the special blocks.
            (segments[0] & 0xe000) == 0x2000
                && segments[0] != 0x2002 // 6to4
                && !(segments[0] == 0x2001 && segments[1] < 0x0200) // 2001::/23 IETF, Teredo
                && !(segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
                && !(segments[0] == 0x3fff && segments[1] < 0x1000) // documentation 3fff::/20
        }
    }
}

fn is_public_ipv4(ip: std::net::Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 192 && b == 88 && c == 99)
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224)
}

/// The host a document URL names, as shown to the user (the verified origin of the client).
pub fn document_host(client_id: &str) -> Option<String> {
    let url = url::Url::parse(client_id).ok()?;
    let host = url.host_str()?.to_owned();
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const URL: &str = "https://app.example/oauth/client.json";

    #[test]
    fn document_urls_are_https_urls() {
        assert!(is_document_url(URL));
        assert!(is_document_url("HTTPS://app.example/c"));
        assert!(!is_document_url("http://app.example/c"));
        assert!(!is_document_url("abc123"));
        assert!(!is_document_url("https:"));
    }

    #[test]
    fn m03_url_form_refusals() {
        for (raw, why) in [
            ("http://app.example/c.json", "https://"),
            ("https://app.example/c.json#x", "fragment"),
            ("https://user:pw@app.example/c.json", "user information"),
            ("https://user@app.example/c.json", "user information"),
            ("https://app.example/c.json?x=1", "query"),
            ("https://app.example/a/../c.json", ". or .."),
            ("https://app.example/a/./c.json", ". or .."),
            ("https://app.example/a/%2E%2E/c.json", ". or .."),
            ("https://app.example/", "path"),
            ("https://app.example", "path"),
            ("https://", "URL"),
        ] {
            let refused = parse_document_url(raw, false);
            assert!(
                matches!(&refused, Err(CimdError::Url(reason)) if reason.contains(why)),
                "{raw}: {refused:?}"
            );
        }
        assert!(parse_document_url("https://app.example/c.json?v=1", true).is_ok());
        assert!(parse_document_url(URL, false).is_ok());
    }

    #[test]
    fn odd_ipv4_spellings_are_normalised() {
        for raw in [
            "https://127.1/c",
            "https://2130706433/c",
            "https://0x7f.1/c",
            "https://0177.0.0.1/c",
        ] {
            let url = parse_document_url(raw, false);
            assert_eq!(
                url.ok().and_then(|u| u.host_str().map(str::to_owned)),
                Some("127.0.0.1".to_owned()),
                "{raw}"
            );
        }
    }

    fn document(extra: Value) -> Vec<u8> {
        let mut base = json!({
            "client_id": URL,
            "client_name": "Example",
            "redirect_uris": ["https://app.example/cb"],
        });
        if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
            base.extend(extra);
        }
        base.to_string().into_bytes()
    }

    #[test]
    fn a_valid_document_is_a_public_client() {
        let registration = validate_document(
            URL,
            &document(json!({"scope": "anything:else", "logo_uri": "https://app.example/l.png"})),
        );
        let Ok(registration) = registration else {
            unreachable!("refused: {registration:?}");
        };
        let client = document_client(URL, registration, false, 7);
        assert!(client.is_public());
        assert_eq!(client.client_id, URL);
        assert_eq!(client.name.as_deref(), Some("Example"));
        assert_eq!(
            client.logo_uri.as_deref(),
            Some("https://app.example/l.png")
        );
        assert!(!client.has_grant_type(crate::model::GrantType::RefreshToken));
        assert!(
            validate_document(
                URL,
                &document(json!({"token_endpoint_auth_method": "none", "redirect_uris": ["http://localhost/callback"]}))
            )
            .is_ok()
        );
    }

    #[test]
    fn m03_document_refusals() {
        for (body, why) in [
            (b"[1]".to_vec(), "JSON object"),
            (b"not json".to_vec(), "JSON object"),
            (
                document(json!({"client_id": "https://other.example/c.json"})),
                "differs",
            ),
            (document(json!({"client_id": null})), "no client_id"),
            (document(json!({"client_secret": "s"})), "client_secret"),
            (
                document(json!({"client_secret_expires_at": 0})),
                "client_secret_expires_at",
            ),
            (
                document(json!({"token_endpoint_auth_method": "client_secret_basic"})),
                "not supported",
            ),
            (
                document(json!({"token_endpoint_auth_method": "private_key_jwt"})),
                "jwks",
            ),
            (document(json!({"client_name": " "})), "client_name"),
            (document(json!({"redirect_uris": []})), "redirect_uris"),
            (
                document(json!({"redirect_uris": ["http://localhost:*/callback"]})),
                "wildcard",
            ),
            (
                document(json!({"redirect_uris": ["http://evil.example/cb"]})),
                "loopback",
            ),
        ] {
            let refused = validate_document(URL, &body);
            assert!(
                matches!(&refused, Err(CimdError::Document(reason)) if reason.contains(why)),
                "{why}: {refused:?}"
            );
        }
    }

    #[test]
    fn cache_lifetime_within_bounds() {
        assert_eq!(cache_lifetime(None, 300, 86_400), 300);
        assert_eq!(cache_lifetime(Some("max-age=3600"), 300, 86_400), 3600);
        assert_eq!(cache_lifetime(Some("public, max-age=10"), 300, 86_400), 300);
        assert_eq!(
            cache_lifetime(Some("max-age=99999999"), 300, 86_400),
            86_400
        );
        assert_eq!(
            cache_lifetime(Some("no-store, max-age=3600"), 300, 86_400),
            300
        );
        assert_eq!(cache_lifetime(Some("max-age=bogus"), 300, 86_400), 300);
    }

    #[test]
    fn m03_only_public_addresses() {
        for refused in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            let ip: std::net::IpAddr = refused
                .parse()
                .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
            assert!(!is_public_ip(ip), "{refused} must be refused");
        }
        for public in [
            "93.184.215.14",
            "8.8.8.8",
            "172.32.0.1",
            "::ffff:8.8.8.8",
            "2606:4700::1111",
            "2a00:1450::1",
        ] {
            let ip: std::net::IpAddr = public
                .parse()
                .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
            assert!(is_public_ip(ip), "{public} is public");
        }
    }

    #[test]
    fn hosts_and_redirect_changes() {
        assert_eq!(document_host(URL).as_deref(), Some("app.example"));
        assert_eq!(
            document_host("https://127.0.0.1:8443/c").as_deref(),
            Some("127.0.0.1:8443")
        );
    }
}
