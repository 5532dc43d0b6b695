//! Which headers cross the gateway, each way, and the 2026-07-28 header rules.
//!
//! Towards the upstream: everything the client sent but the credentials (`Authorization`,
//! `Cookie`, `Proxy-Authorization`: SECURITY M4), the identity headers it may have forged
//! (`X-MCPAuth-*`, replaced by the gateway's own), `Origin` (checked here; the upstream's own
//! DNS-rebinding check would refuse a remote client's), `Accept-Encoding` (so that answers can be
//! read to be filtered) and the hop-by-hop headers of RFC 9110 §7.6.1. Towards the client:
//! everything but the hop-by-hop headers.
//!
//! From protocol version 2026-07-28 on (SEP-2243), a POST carries `Mcp-Method` (and
//! `Mcp-Name` for `tools/call`, `prompts/get`, `resources/read`) mirroring its body; the
//! gateway's policy reads the body, so a request whose headers say something else — which an
//! intermediary routing on them would treat differently — is refused first with
//! `HeaderMismatch` (-32020, HTTP 400).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tower::{Layer, Service};

use crate::MAX_REQUEST_BODY;
use crate::identity::PREFIX;

/// The JSON-RPC error code of a header that does not match the body (MCP 2026-07-28).
pub const HEADER_MISMATCH: i64 = -32020;

/// The first protocol version with the `Mcp-Method` / `Mcp-Name` rules.
pub const HEADERS_REQUIRED_FROM: &str = "2026-07-28";

const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded either way.
pub(crate) const HOP_BY_HOP: &[&str] = &[
    "connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "keep-alive",
    "proxy-connection",
];

/// Dropped on the way to the upstream, besides the hop-by-hop ones.
const NOT_UPSTREAM: &[&str] = &[
    "authorization",
    // A DPoP proof belongs with the client's token, which the upstream never sees (RFC 9449).
    "dpop",
    "cookie",
    "host",
    "origin",
    "content-length",
    "accept-encoding",
];

/// Headers named in `Connection` are hop-by-hop too.
fn connection_listed(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case(name.as_str()))
}

fn hop_by_hop(headers: &HeaderMap, name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str()) || connection_listed(headers, name)
}

/// The client's headers that the upstream may see.
pub fn upstream_request_headers(client: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(client.len());
    for (name, value) in client {
        let dropped = NOT_UPSTREAM.contains(&name.as_str())
            || name.as_str().starts_with(PREFIX)
            || hop_by_hop(client, name);
        if !dropped {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The upstream's answer headers that the client may see.
pub fn client_response_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        if !hop_by_hop(upstream, name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The layer that applies the 2026-07-28 header rules before the guard reads the body.
#[derive(Debug, Clone, Copy)]
pub struct HeaderCheckLayer;

impl<S> Layer<S> for HeaderCheckLayer {
    type Service = HeaderCheck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HeaderCheck { inner }
    }
}

/// See [`HeaderCheckLayer`].
#[derive(Debug, Clone)]
pub struct HeaderCheck<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for HeaderCheck<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            if !headers_required(&request) {
                return inner.call(request).await;
            }
            let (parts, body) = request.into_parts();
            let bytes = match axum::body::to_bytes(body, MAX_REQUEST_BODY).await {
                Ok(bytes) => bytes,
                Err(error) => {
                    let (status, why) = mcpauth::unreadable_body(&error);
                    return Ok(mcpauth::JsonRpc::new(status, why).into_response());
                }
            };
            if let Err(mismatch) = check_headers(&parts.headers, &bytes) {
                return Ok(mismatch.into_response());
            }
            inner
                .call(Request::from_parts(parts, Body::from(bytes)))
                .await
        })
    }
}

/// A POST whose protocol version has the header rules.
fn headers_required(request: &Request<Body>) -> bool {
    request.method() == Method::POST
        && request
            .headers()
            .get(MCP_PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok())
            // Versions are dates: they compare as strings.
            .is_some_and(|v| v >= HEADERS_REQUIRED_FROM)
}

/// `Ok` when `Mcp-Method` and `Mcp-Name` say what the body says; the refusal otherwise.
pub fn check_headers(headers: &HeaderMap, body: &[u8]) -> Result<(), HeaderMismatch> {
    let Ok(message) = serde_json::from_slice::<Value>(body) else {
        // Not one JSON value: the upstream answers with its parse error.
        return Ok(());
    };
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let refuse = |message: String| {
        Err(HeaderMismatch {
            id: id.clone(),
            message,
        })
    };
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        // A response or a batch: nothing to mirror.
        return Ok(());
    };
    match header_text(headers, &MCP_METHOD) {
        None => return refuse("the Mcp-Method header is required".into()),
        Some(sent) if sent != method => {
            return refuse(format!(
                "the Mcp-Method header ({sent}) does not match the body's method ({method})"
            ));
        }
        Some(_) => {}
    }
    let name = match method {
        "tools/call" | "prompts/get" => message.pointer("/params/name"),
        "resources/read" => message.pointer("/params/uri"),
        _ => None,
    }
    .and_then(Value::as_str);
    let sent = header_text(headers, &MCP_NAME);
    match (name, sent) {
        (Some(_), None) => refuse("the Mcp-Name header is required".into()),
        (Some(name), Some(sent)) if sent != name => refuse(format!(
            "the Mcp-Name header ({sent}) does not match the body's name ({name})"
        )),
        _ => Ok(()),
    }
}

/// The header's value: `None` when absent, or when not text (which matches no body).
fn header_text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let value = headers.get(name)?;
    Some(value.to_str().unwrap_or("\u{fffd}"))
}

/// A request whose `Mcp-*` headers do not say what its body says: 400 with the JSON-RPC error
/// `HeaderMismatch`, answering the request's id.
#[derive(Debug)]
pub struct HeaderMismatch {
    id: Value,
    message: String,
}

impl IntoResponse for HeaderMismatch {
    fn into_response(self) -> Response {
        let body = json!({
            "jsonrpc": "2.0",
            "id": self.id,
            "error": { "code": HEADER_MISMATCH, "message": self.message },
        });
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn credentials_and_forged_identity_never_go_upstream() {
        let client = headers(&[
            ("authorization", "Bearer secret"),
            ("dpop", "eyJ.proof.sig"),
            ("cookie", "session=1"),
            ("x-mcpauth-user-id", "admin"),
            ("X-MCPAuth-Assertion", "forged"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("origin", "https://claude.ai"),
            ("mcp-session-id", "abc"),
            ("mcp-protocol-version", "2025-06-18"),
            ("last-event-id", "7"),
            ("accept", "application/json, text/event-stream"),
            ("content-type", "application/json"),
        ]);
        let out = upstream_request_headers(&client);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            [
                "mcp-session-id",
                "mcp-protocol-version",
                "last-event-id",
                "accept",
                "content-type"
            ]
        );
    }

    fn status(result: Result<(), HeaderMismatch>) -> Option<StatusCode> {
        result.err().map(|r| r.into_response().status())
    }

    #[test]
    fn mcp_method_and_name_must_mirror_the_body() {
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
        let ok = headers(&[("mcp-method", "tools/call"), ("mcp-name", "echo")]);
        assert!(check_headers(&ok, call).is_ok());
        for bad in [
            headers(&[]),
            headers(&[("mcp-method", "tools/call")]),
            headers(&[("mcp-method", "tools/list"), ("mcp-name", "echo")]),
            headers(&[("mcp-method", "tools/call"), ("mcp-name", "admin")]),
        ] {
            assert_eq!(
                status(check_headers(&bad, call)),
                Some(StatusCode::BAD_REQUEST)
            );
        }
        let list = br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
        assert!(check_headers(&headers(&[("mcp-method", "tools/list")]), list).is_ok());
        let read =
            br#"{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///a"}}"#;
        let sent = headers(&[("mcp-method", "resources/read"), ("mcp-name", "file:///b")]);
        assert_eq!(
            status(check_headers(&sent, read)),
            Some(StatusCode::BAD_REQUEST)
        );
    }
}
