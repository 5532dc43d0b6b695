//! The browser-facing plumbing: cookies (plain and signed), CSRF tokens, the same-origin check
//! on credentialed posts (SECURITY S25), security headers for pages (S18, S23) and client
//! addresses (S21), which the rate limits count by.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpauth_core::secret;

pub const SESSION_COOKIE: &str = "mcpauth.session_token";
pub const CSRF_COOKIE: &str = "mcpauth.csrf";
pub const AUTHORIZE_COOKIE: &str = "mcpauth.authorize";

/// The value of a cookie sent by the browser.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// What the browser-facing checks need to know about this server: the key that signs cookies
/// and CSRF tokens, whether the issuer is https, its origin, and whether a proxy's
/// `X-Forwarded-For` is to be trusted.
pub(crate) struct Site {
    /// Key for cookie signatures and CSRF tokens.
    secret: Vec<u8>,
    /// True when the issuer is https: cookies get `Secure` and the `__Host-` prefix.
    secure_cookies: bool,
    /// `https://host[:port]` of the issuer, for Origin checks.
    origin: String,
    trust_proxy: bool,
}

impl Site {
    pub(crate) fn new(secret: &str, issuer: &url::Url, trust_proxy: bool) -> Self {
        Self {
            secret: secret.as_bytes().to_vec(),
            secure_cookies: issuer.scheme() == "https",
            origin: issuer.origin().ascii_serialization(),
            trust_proxy,
        }
    }

    /// `scheme://host[:port]` of the issuer.
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// The cookie's name as sent: `__Host-` prefixed when the issuer is https.
    pub(crate) fn cookie_name(&self, base: &str) -> String {
        if self.secure_cookies {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }

    pub(crate) fn read_cookie<'a>(&self, headers: &'a HeaderMap, base: &str) -> Option<&'a str> {
        cookie(headers, &self.cookie_name(base))
    }

    /// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, `Path=/`, and `Secure` on https.
    pub(crate) fn set_cookie(&self, base: &str, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        let line = format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
            self.cookie_name(base)
        );
        HeaderValue::from_str(&line).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    pub(crate) fn clear_cookie(&self, base: &str) -> HeaderValue {
        self.set_cookie(base, "", 0)
    }

    /// A value only this server can have made: `payload.signature`, bound to the cookie name.
    pub(crate) fn sign_value(&self, purpose: &str, payload: &str) -> String {
        let encoded = URL_SAFE_NO_PAD.encode(payload);
        let signature = secret::sign(&self.secret, format!("{purpose}:{encoded}").as_bytes());
        format!("{encoded}.{signature}")
    }

    /// The payload of a value made by [`Self::sign_value`] for the same purpose.
    pub(crate) fn verify_value(&self, purpose: &str, value: &str) -> Option<String> {
        let (encoded, signature) = value.split_once('.')?;
        if !secret::verify(
            &self.secret,
            format!("{purpose}:{encoded}").as_bytes(),
            signature,
        ) {
            return None;
        }
        String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()
    }

    /// The CSRF token for this browser, and the cookie to set when the browser has none yet.
    pub(crate) fn csrf_token(&self, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
        match self.read_cookie(headers, CSRF_COOKIE) {
            Some(existing) => (self.csrf_for(existing), None),
            None => {
                let fresh = secret::random_token();
                let set = self.set_cookie(CSRF_COOKIE, &fresh, 86_400);
                (self.csrf_for(&fresh), Some(set))
            }
        }
    }

    fn csrf_for(&self, cookie_value: &str) -> String {
        secret::sign(&self.secret, format!("csrf:{cookie_value}").as_bytes())
    }

    /// Checks a form post: same-origin by Fetch Metadata / Origin, and a CSRF token that
    /// matches this browser's CSRF cookie.
    pub(crate) fn form_post_allowed(&self, headers: &HeaderMap, token: Option<&str>) -> bool {
        let Some(cookie_value) = self.read_cookie(headers, CSRF_COOKIE) else {
            return false;
        };
        let Some(token) = token else {
            return false;
        };
        // Pages are served with `Referrer-Policy: no-referrer`, under which browsers send
        // `Origin: null` even on same-origin form posts; the CSRF token covers that case.
        self.request_site_allowed(headers, true)
            && secret::constant_time_eq(self.csrf_for(cookie_value).as_bytes(), token.as_bytes())
    }

    /// False when the browser says the request came from another site. For the JSON API,
    /// which has no CSRF token, an opaque (`null`) origin counts as another site.
    pub(crate) fn same_origin(&self, headers: &HeaderMap) -> bool {
        self.request_site_allowed(headers, false)
    }

    fn request_site_allowed(&self, headers: &HeaderMap, null_origin_ok: bool) -> bool {
        if let Some(site) = headers.get("sec-fetch-site") {
            // Fetch Metadata is the browser's own statement of where the request came from.
            return site == "same-origin" || site == "none";
        }
        match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            Some("null") => null_origin_ok,
            Some(origin) => origin == self.origin,
            None => true,
        }
    }

    /// The address the request came from: the TCP peer, or — only with `trust_proxy` — the
    /// address the proxy in front of us saw, which it appended last to `X-Forwarded-For` (or
    /// `Forwarded: for=`). Values a client put earlier in those headers are never used
    /// (SECURITY S21).
    pub(crate) fn client_ip(
        &self,
        headers: &HeaderMap,
        extensions: &axum::http::Extensions,
    ) -> String {
        if self.trust_proxy
            && let Some(ip) = forwarded_for(headers)
        {
            return ip.to_string();
        }
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string())
            .unwrap_or_else(|| "unknown".to_owned())
    }
}

/// Security headers for every HTML page and the authorization endpoint (SECURITY S18, S23).
pub async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    set_page_headers(response.headers_mut());
    response
}

/// The headers of [`page_headers`]: a strict CSP that forbids framing, no referrer, no
/// sniffing, and `no-store` unless the answer says otherwise.
pub(crate) fn set_page_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' https: data:; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// The last address in `X-Forwarded-For`, else the last `for=` of `Forwarded` (RFC 7239).
fn forwarded_for(headers: &HeaderMap) -> Option<std::net::IpAddr> {
    let last_of = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty())
            .map(str::to_owned)
    };
    if let Some(ip) = last_of("x-forwarded-for").and_then(|v| v.parse().ok()) {
        return Some(ip);
    }
    let forwarded = last_of("forwarded")?;
    let value = forwarded.split(';').map(str::trim).find_map(|pair| {
        pair.strip_prefix("for=")
            .or_else(|| pair.strip_prefix("For="))
    })?;
    let value = value.trim_matches('"');
    let host = match value.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => value.split(':').next()?,
    };
    host.parse().ok()
}
