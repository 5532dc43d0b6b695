//! `with_mcp_auth`: the tower layer that protects an MCP endpoint (SPEC §5.1, §5.6; MCP
//! authorization spec; RFC 6750 §3; RFC 9728 §5.1).
//!
//! In order, for every request: an `Origin` that is not allowed is refused with 403 (DNS
//! rebinding, SECURITY M6); a missing or unusable bearer token gets 401 with the challenge MCP
//! clients discover from (M1); a token without the scopes the call needs gets 403
//! `insufficient_scope` naming every scope needed (M2) — for `tools/call`, the scopes of the
//! tool called. Otherwise the request goes on with its [`McpSession`](crate::McpSession) in the request
//! extensions, where handlers (and rmcp tools, through `Extension<http::request::Parts>`) find
//! it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::McpAuth;
use crate::errors::{self, JsonRpc};
use crate::resources::Resource;

/// The largest MCP request body the guard reads to find the tool being called.
const MAX_MCP_BODY: usize = 4 * 1024 * 1024;

/// The layer returned by [`McpAuth::with_mcp_auth`].
#[derive(Clone)]
pub struct McpAuthLayer {
    auth: McpAuth,
    /// The resource whose tokens it accepts, and whose challenges it sends.
    resource: Arc<Resource>,
    tool_scopes: Arc<HashMap<String, Vec<String>>>,
}

impl McpAuth {
    /// A tower layer that lets through only requests with a valid access token for this
    /// resource, carrying the scopes in `mcp_scopes` (and those of any tool named with
    /// [`McpAuthLayer::tool_scope`]). The Rust twin of Better Auth's `withMcpAuth`.
    pub fn with_mcp_auth(&self) -> McpAuthLayer {
        McpAuthLayer {
            auth: self.clone(),
            resource: self.main_resource().clone(),
            tool_scopes: Arc::new(HashMap::new()),
        }
    }

    /// Like [`Self::with_mcp_auth`], for the protected resource `resource`: the main one or
    /// one of [`McpAuthOptions::resources`](crate::McpAuthOptions::resources). Only tokens
    /// issued for it pass (RFC 8707), every request needs its `scopes`, and its challenges
    /// name its metadata. `None` when no such resource is configured.
    pub fn with_mcp_auth_for(&self, resource: &str) -> Option<McpAuthLayer> {
        Some(McpAuthLayer {
            auth: self.clone(),
            resource: self.resource(resource)?.clone(),
            tool_scopes: Arc::new(HashMap::new()),
        })
    }
}

impl McpAuthLayer {
    /// Requires `scopes` (besides the base `mcp_scopes`) to call the tool `tool`.
    pub fn tool_scope(mut self, tool: &str, scopes: &[&str]) -> Self {
        Arc::make_mut(&mut self.tool_scopes).insert(
            tool.to_owned(),
            scopes.iter().map(|s| (*s).to_owned()).collect(),
        );
        self
    }
}

impl<S> Layer<S> for McpAuthLayer {
    type Service = McpAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpAuthService {
            layer: self.clone(),
            inner,
        }
    }
}

/// The service [`McpAuthLayer`] wraps around an MCP endpoint.
#[derive(Clone)]
pub struct McpAuthService<S> {
    layer: McpAuthLayer,
    inner: S,
}

impl<S, B> Service<Request<B>> for McpAuthService<S>
where
    S: Service<Request<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let request = request.map(Body::new);
            match layer.admit(request).await {
                Ok(request) => Ok(inner.call(request).await.into_response()),
                Err(refusal) => Ok(refusal),
            }
        })
    }
}

impl McpAuthLayer {
    /// The request with its session attached, or the response that refuses it.
    async fn admit(&self, request: Request<Body>) -> Result<Request<Body>, Response> {
        let auth = &self.auth;
        if request.method() == Method::OPTIONS {
            return Ok(request);
        }
        if let Some(origin) = request.headers().get(header::ORIGIN)
            && !origin_allowed(auth, origin)
        {
            return Err(refuse_unread(
                JsonRpc::new(
                    StatusCode::FORBIDDEN,
                    "requests from this origin are not allowed",
                )
                .into_response(),
                request,
            )
            .await);
        }
        let resource = &self.resource;
        let (parts, body) = request.into_parts();
        let verified = auth.verify_request_for(&parts, &resource.uri).await;
        let request = Request::from_parts(parts, body);
        let session = match verified {
            Ok(session) => session,
            Err(error) => {
                let refusal =
                    errors::unauthorized(&error, &resource.metadata_url, &resource.scopes);
                return Err(refuse_unread(refusal, request).await);
            }
        };

        let mut needed: Vec<String> = resource.scopes.clone();
        let request = if self.tool_scopes.is_empty() || request.method() != Method::POST {
            request
        } else {
            let (parts, body) = request.into_parts();
            let bytes = axum::body::to_bytes(body, MAX_MCP_BODY)
                .await
                .map_err(|error| {
                    let (status, why) = crate::params::unreadable_body(&error);
                    JsonRpc::new(status, why).into_response()
                })?;
            let called = called_tools(&bytes);
            count_tool_calls(called.as_deref(), &self.tool_scopes);
            let scopes_of_tools: Vec<&String> = match called {
                Some(tools) => tools
                    .iter()
                    .filter_map(|tool| self.tool_scopes.get(tool))
                    .flatten()
                    .collect(),
                None => self.tool_scopes.values().flatten().collect(),
            };
            for scope in scopes_of_tools {
                if !needed.contains(scope) {
                    needed.push(scope.clone());
                }
            }
            Request::from_parts(parts, Body::from(bytes))
        };
        if needed.iter().any(|scope| !session.has_scope(scope)) {
            let refusal = errors::insufficient_scope(&resource.metadata_url, &needed);
            return Err(refuse_unread(refusal, request).await);
        }
        let mut request = request;
        request.extensions_mut().insert(session);
        Ok(request)
    }
}

/// `response`, for a request refused before its body was read. The body is read (and dropped)
/// first, up to the size the endpoint accepts: otherwise the HTTP/1 connection ends after the
/// response whenever the body had not fully arrived yet, and a client that already sent its next
/// request on it (the discovery that follows a 401) sees the connection drop. A larger body
/// ends the connection, and the response says so.
async fn refuse_unread(mut response: Response, request: Request<Body>) -> Response {
    if axum::body::to_bytes(request.into_body(), MAX_MCP_BODY)
        .await
        .is_err()
    {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The tools a JSON-RPC message (or batch) calls: `Some(names)`, or `None` when the body is
/// not a message this parser can read — the caller then asks for every tool's scopes (fails
/// closed), so that no body another parser would read differently (a duplicated key, say) can
/// slip a tool past its scope.
pub(crate) fn called_tools(body: &[u8]) -> Option<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Message<'a> {
        #[serde(borrow, default)]
        method: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        params: Option<Params<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Params<'a> {
        #[serde(borrow, default)]
        name: Option<Cow<'a, str>>,
    }
    fn tool(message: Message<'_>) -> Option<String> {
        if message.method.as_deref() != Some("tools/call") {
            return None;
        }
        message.params.and_then(|p| p.name).map(Cow::into_owned)
    }
    let batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if batch {
        let messages: Vec<Message<'_>> = serde_json::from_slice(body).ok()?;
        Some(messages.into_iter().filter_map(tool).collect())
    } else {
        let message: Message<'_> = serde_json::from_slice(body).ok()?;
        Some(tool(message).into_iter().collect())
    }
}

/// Counts the tools a request calls (`mcpauth_mcp_calls_total{tool}`). Tool names come from the
/// client: only tools this layer knows are named, any other is `other`, so that no client can
/// grow the label set (and the exporter's memory) without bound.
fn count_tool_calls(called: Option<&[String]>, known: &HashMap<String, Vec<String>>) {
    for tool in called.unwrap_or_default() {
        let label = if known.contains_key(tool) {
            tool.clone()
        } else {
            "other".to_owned()
        };
        metrics::counter!("mcpauth_mcp_calls_total", "tool" => label).increment(1);
    }
}

/// True when a browser on `origin` may call the MCP endpoint: the configured origins, the
/// issuer's own, and — when the issuer itself is on loopback — any loopback origin.
fn origin_allowed(auth: &McpAuth, origin: &HeaderValue) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let ours = auth.site().origin();
    if origin == ours
        || auth
            .options()
            .mcp_allowed_origins
            .iter()
            .any(|o| o == origin)
    {
        return true;
    }
    is_loopback_origin(ours) && is_loopback_origin(origin)
}

fn is_loopback_origin(origin: &str) -> bool {
    url::Url::parse(origin).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_called_tools_in_single_and_batch_messages() {
        let single =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_echo"}}"#;
        assert_eq!(called_tools(single).unwrap(), ["admin_echo"]);
        let batch =
            br#" [{"method":"tools/list"},{"method":"tools/call","params":{"name":"echo"}}]"#;
        assert_eq!(called_tools(batch).unwrap(), ["echo"]);
        let escaped = br#"{"method":"tools\/call","params":{"name":"admin\u005fecho","arguments":{"a":[1,{"b":null}]}}}"#;
        assert_eq!(called_tools(escaped).unwrap(), ["admin_echo"]);
        assert!(
            called_tools(br#"{"method":"tools/list","params":{}}"#)
                .unwrap()
                .is_empty()
        );
        assert!(
            called_tools(br#"{"method":"initialize","id":1}"#)
                .unwrap()
                .is_empty()
        );
    }

    /// What this parser cannot read is `None`, for which the guard asks every tool's scopes.
    #[test]
    fn unreadable_bodies_fail_closed() {
        for body in [
            &b"not json"[..],
            br#"{"method":"tools/call","params":{"name":"echo","name":"admin_echo"}}"#,
            br#"{"method":"tools/call","method":"tools/list"}"#,
            br#"{"method":5,"params":{"name":"admin_echo"}}"#,
            br#"[{"method":"tools/call","params":{"name":"echo"}}, 5]"#,
            br#"{"method":"tools/call","params":{"name":"echo"}} trailing"#,
        ] {
            assert!(
                called_tools(body).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn loopback_origins() {
        assert!(is_loopback_origin("http://localhost:6274"));
        assert!(is_loopback_origin("http://127.0.0.1"));
        assert!(!is_loopback_origin("http://localhost.evil.test"));
        assert!(!is_loopback_origin("null"));
    }
}
