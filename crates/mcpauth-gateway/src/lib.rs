//! mcpauth-gateway: put mcpauth in front of any Streamable HTTP MCP server, in any language,
//! without changing it.
//!
//! A [`Gateway`] is a tower service that forwards MCP requests to one upstream server and
//! streams its answers back as they come (SSE events are never held back, except that a
//! `tools/list` answer is filtered event by event). It runs behind mcpauth's own guard,
//! [`McpAuth::with_mcp_auth_for`], which checks the token — issued for this upstream's
//! resource alone (RFC 8707) — its scopes and the scopes of the tool called; [`Gateway::router`]
//! puts the two together with CORS and the 2026-07-28 header checks.
//!
//! What the upstream gets (SECURITY M4): never the client's `Authorization` header or cookies;
//! instead who is calling, as `X-MCPAuth-*` headers and a signed assertion ([`identity`]).
//!
//! - [`identity`]: the identity headers and the signed assertion.
//! - [`tools`]: `tools/list` answers filtered to the tools the token may call.
//! - [`headers`]: which headers cross the gateway, each way; the `Mcp-Method` / `Mcp-Name`
//!   checks.

#![warn(missing_docs)]

pub mod credential;
pub mod elicitation;
pub mod headers;
pub mod identity;
pub mod tools;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use mcpauth::{JsonRpc, McpAuth, McpAuthLayer, McpSession};
use mcpauth_core::protected_resource;
use tower::{Service, ServiceBuilder};

use crate::identity::{Identities, IdentityError};
use crate::tools::{ListFilter, MAX_FILTERED_MESSAGE, ToolScopes};

/// The largest MCP request body the gateway forwards (as the guard reads).
pub const MAX_REQUEST_BODY: usize = 4 * 1024 * 1024;

/// One upstream MCP server and how it is protected.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Its Streamable HTTP endpoint, e.g. `http://127.0.0.1:8080/mcp`.
    pub url: String,
    /// The protected resource it is served as: mcpauth's main resource or one of
    /// [`McpAuthOptions::resources`](mcpauth::McpAuthOptions::resources). Clients reach it at
    /// this URI's path.
    pub resource: String,
    /// Tool name → scopes needed to call it (and to see it in `tools/list`).
    pub tool_scopes: ToolScopes,
    /// Headers added to every upstream request (an API key for the upstream, say).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// How long a TCP connection to the upstream may take.
    pub connect_timeout: Duration,
    /// How long the upstream may take to start its answer (status and headers). A streamed
    /// answer, once started, may last as long as the upstream keeps it open.
    pub response_timeout: Duration,
    /// PEM certificate authorities trusted for an `https://` upstream besides the system's
    /// (a private CA); none: the system's only.
    pub extra_roots_pem: Option<Vec<u8>>,
}

impl Upstream {
    /// `url` served as `resource`, with no tool scopes or extra headers, a 5 s connect timeout
    /// and a 120 s response timeout.
    pub fn new(url: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            resource: resource.into(),
            tool_scopes: ToolScopes::new(),
            headers: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(120),
            extra_roots_pem: None,
        }
    }
}

/// Why a [`Gateway`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The upstream URL is not an http(s) URL.
    #[error("upstream url {0:?} must be an absolute http:// or https:// URL")]
    Url(String),
    /// mcpauth was not configured with this resource.
    #[error("{0:?} is not a protected resource of this mcpauth (add it to the options' resources)")]
    UnknownResource(String),
    /// The extra certificate authorities are not a PEM bundle of certificates.
    #[error("upstream url {0:?}: its certificate authorities are not valid PEM certificates")]
    Roots(String),
    /// The HTTP client could not be built.
    #[error("could not build the upstream client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The proxy to one upstream MCP server: a tower service to run behind [`Gateway::guard`].
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    auth: McpAuth,
    upstream: Upstream,
    url: url::Url,
    /// The resource's path, where [`Gateway::router`] mounts it.
    path: String,
    client: reqwest::Client,
    identities: Identities,
    tool_scopes: Arc<ToolScopes>,
}

impl Gateway {
    /// The gateway to `upstream`, whose resource `auth` must know.
    pub fn new(auth: &McpAuth, upstream: Upstream) -> Result<Self, GatewayError> {
        let url = url::Url::parse(&upstream.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| GatewayError::Url(upstream.url.clone()))?;
        if auth.with_mcp_auth_for(&upstream.resource).is_none() {
            return Err(GatewayError::UnknownResource(upstream.resource.clone()));
        }
        let path = url::Url::parse(&upstream.resource)
            .map(|u| protected_resource::locate(&u).path)
            .map_err(|_| GatewayError::UnknownResource(upstream.resource.clone()))?;
        // An https upstream's certificate is verified (system roots plus any extra ones); no
        // option turns verification off.
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(upstream.connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(pem) = &upstream.extra_roots_pem {
            let roots = reqwest::Certificate::from_pem_bundle(pem)
                .ok()
                .filter(|roots| !roots.is_empty())
                .ok_or_else(|| GatewayError::Roots(upstream.url.clone()))?;
            builder = builder.tls_certs_merge(roots);
        }
        let client = builder.build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                auth: auth.clone(),
                tool_scopes: Arc::new(upstream.tool_scopes.clone()),
                upstream,
                url,
                path,
                client,
                identities: Identities::default(),
            }),
        })
    }

    /// The path clients call, e.g. `/mcp/notes`: the resource's.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// mcpauth's guard for this upstream: tokens for its resource only, its scopes, and its
    /// tool scopes on `tools/call`.
    pub fn guard(&self) -> McpAuthLayer {
        let auth = &self.inner.auth;
        let mut layer = auth
            .with_mcp_auth_for(&self.inner.upstream.resource)
            .unwrap_or_else(|| auth.with_mcp_auth());
        for (tool, scopes) in self.inner.tool_scopes.iter() {
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            layer = layer.tool_scope(tool, &scopes);
        }
        layer
    }

    /// The route at the resource's path: CORS outermost, then the `Mcp-Method` / `Mcp-Name`
    /// checks, then the guard, then the proxy.
    pub fn router(self) -> Router {
        let path = self.inner.path.clone();
        let service = ServiceBuilder::new()
            .layer(mcpauth::cors())
            .layer(headers::HeaderCheckLayer)
            .layer(self.guard())
            .service(self);
        Router::new().route_service(&path, service)
    }
}

impl Service<Request<Body>> for Gateway {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(inner.forward(request).await) })
    }
}

fn refusal(status: StatusCode, message: &str) -> Response {
    JsonRpc::new(status, message).into_response()
}

impl Inner {
    async fn forward(&self, request: Request<Body>) -> Response {
        let Some(session) = McpSession::from_extensions(request.extensions()).cloned() else {
            // Only reachable when mounted without the guard: refuse rather than forward.
            return refusal(StatusCode::UNAUTHORIZED, "authorization required");
        };
        let method = request.method().clone();
        if ![Method::GET, Method::POST, Method::DELETE].contains(&method) {
            let mut response = refusal(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
            return response;
        }
        let (parts, body) = request.into_parts();
        let body = if method == Method::POST {
            match axum::body::to_bytes(body, MAX_REQUEST_BODY).await {
                Ok(bytes) => bytes,
                Err(error) => {
                    let (status, why) = mcpauth::unreadable_body(&error);
                    return refusal(status, why);
                }
            }
        } else {
            Bytes::new()
        };
        let list_ids = if method == Method::POST && !self.tool_scopes.is_empty() {
            tools::list_request_ids(&body)
        } else {
            Vec::new()
        };
        let identity = match self
            .identities
            .headers(&self.auth, &self.upstream.resource, &session)
            .await
        {
            Ok(identity) => identity,
            Err(IdentityError::NoUser) => {
                return refusal(
                    StatusCode::UNAUTHORIZED,
                    "the token's user no longer exists",
                );
            }
            Err(error) => {
                tracing::error!(%error, "could not establish the caller's identity");
                return refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the gateway could not establish who is calling; try again",
                );
            }
        };
        let mut outgoing = headers::upstream_request_headers(&parts.headers);
        for (name, value) in identity.iter().chain(&self.upstream.headers) {
            outgoing.insert(name.clone(), value.clone());
        }
        let mut upstream_request = self
            .client
            .request(method.clone(), self.url.clone())
            .headers(outgoing);
        if method == Method::POST {
            upstream_request = upstream_request.body(body);
        }
        let answer =
            match tokio::time::timeout(self.upstream.response_timeout, upstream_request.send())
                .await
            {
                Ok(Ok(answer)) => answer,
                Ok(Err(error)) => return upstream_failed(&error),
                Err(_) => {
                    return refusal(
                        StatusCode::GATEWAY_TIMEOUT,
                        "the upstream MCP server did not answer in time",
                    );
                }
            };
        let filter = (!list_ids.is_empty()).then(|| ListFilter {
            ids: Arc::new(list_ids),
            tool_scopes: self.tool_scopes.clone(),
            granted: Arc::new(session.scopes.clone()),
        });
        respond(answer, filter).await
    }
}

/// The client's answer to the upstream's `answer`: its status and headers (hop-by-hop ones
/// dropped) and its body as it streams in; a `tools/list` answer through `filter`.
async fn respond(answer: reqwest::Response, filter: Option<ListFilter>) -> Response {
    let status = answer.status();
    let mut out_headers: HeaderMap = headers::client_response_headers(answer.headers());
    let content_type = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = match filter {
        Some(filter) if content_type.starts_with("text/event-stream") => {
            out_headers.remove(header::CONTENT_LENGTH);
            Body::from_stream(filter.filter_sse(answer.bytes_stream()))
        }
        Some(filter) if content_type.starts_with("application/json") => {
            out_headers.remove(header::CONTENT_LENGTH);
            match read_bounded(answer).await {
                Ok(bytes) => Body::from(filter.filter_json(bytes)),
                Err(response) => return response,
            }
        }
        _ => Body::from_stream(answer.bytes_stream()),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    response
}

/// A whole answer body, up to [`MAX_FILTERED_MESSAGE`].
async fn read_bounded(answer: reqwest::Response) -> Result<Bytes, Response> {
    let mut stream = answer.bytes_stream();
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| upstream_failed(&e))?;
        if body.len() + chunk.len() > MAX_FILTERED_MESSAGE {
            return Err(refusal(
                StatusCode::BAD_GATEWAY,
                "the upstream MCP server's answer is too large",
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// 502 (or 504 for a timeout) for an upstream that could not be reached or failed mid-answer.
fn upstream_failed(error: &reqwest::Error) -> Response {
    tracing::warn!(%error, "the upstream MCP server failed");
    if error.is_timeout() {
        refusal(
            StatusCode::GATEWAY_TIMEOUT,
            "the upstream MCP server did not answer in time",
        )
    } else if error.is_connect() {
        refusal(
            StatusCode::BAD_GATEWAY,
            "the upstream MCP server is unreachable",
        )
    } else {
        refusal(
            StatusCode::BAD_GATEWAY,
            "the upstream MCP server failed to answer",
        )
    }
}
