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
//! instead who is calling, as `X-MCPAuth-*` headers and a signed assertion ([`identity`]) and,
//! for an upstream configured with a [`Credential`], the user's own token at a connected
//! service (SECURITY V3), or — when the user has not connected it — an answer that asks them
//! to ([`elicitation`]).
//!
//! - [`credential`]: which connection's token goes in which header, and with which requests.
//! - [`elicitation`]: what each session's client declared, the `-32042` URL elicitation or the
//!   tool error with the link, and `notifications/elicitation/complete` on the GET stream.
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

use mcpauth::connections::ConnectionError;
use serde_json::Value;

use crate::credential::{Credential, Needs};
use crate::elicitation::Sessions;
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
    /// The user's token at a connected service, sent with the requests that run the
    /// upstream's code for them (`tools/call`, `resources/read`, `prompts/get`).
    pub credential: Option<Credential>,
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
            credential: None,
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
    /// The credential names a connection mcpauth was not configured with.
    #[error(
        "upstream url {0:?}: its credential names the connection {1:?}, which is not configured (add it to [[connections]])"
    )]
    UnknownConnection(String, String),
    /// The credential's header is also one of the upstream's fixed headers.
    #[error("upstream url {0:?}: the credential's header {1} is also among its fixed headers")]
    CredentialHeader(String, String),
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
    /// What each session's client declared, for an upstream with a credential.
    sessions: Arc<Sessions>,
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
        let sessions = Arc::new(Sessions::default());
        if let Some(credential) = &upstream.credential {
            if !auth
                .connections()
                .configured()
                .any(|c| c.id == credential.connection)
            {
                return Err(GatewayError::UnknownConnection(
                    upstream.url.clone(),
                    credential.connection.clone(),
                ));
            }
            if upstream
                .headers
                .iter()
                .any(|(n, _)| *n == credential.header)
            {
                return Err(GatewayError::CredentialHeader(
                    upstream.url.clone(),
                    credential.header.to_string(),
                ));
            }
            notify_completions(auth, &sessions);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                auth: auth.clone(),
                tool_scopes: Arc::new(upstream.tool_scopes.clone()),
                upstream,
                url,
                path,
                client,
                identities: Identities::default(),
                sessions,
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

/// A JSON-RPC message the gateway answers itself (200, JSON).
fn answer(message: &Value) -> Response {
    (StatusCode::OK, axum::Json(message)).into_response()
}

/// Sends `notifications/elicitation/complete` to the session an elicitation went to, when its
/// connect completes on this instance (a task for as long as the gateway lives).
fn notify_completions(auth: &McpAuth, sessions: &Arc<Sessions>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let mut completions = auth.connections().completions();
    let sessions = Arc::downgrade(sessions);
    runtime.spawn(async move {
        loop {
            match completions.recv().await {
                Ok(done) => {
                    let Some(sessions) = sessions.upgrade() else {
                        return;
                    };
                    if let Some(id) = &done.elicitation_id {
                        sessions.complete(id, &done.user_id);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// The client's `Mcp-Session-Id`, if it sent one.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(MCP_SESSION_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

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
        let client_session = session_id(&parts.headers);
        let mut declares_url = None;
        if let Some(credential) = &self.upstream.credential {
            // The client's own header of that name never passes: only the user's token may.
            outgoing.remove(&credential.header);
            if method == Method::POST {
                let needs = credential::needs(&body);
                if needs == Needs::Nothing {
                    declares_url = elicitation::initialize_declares_url(&body);
                } else {
                    match self
                        .credential_value(credential, &session, &needs, client_session.as_deref())
                        .await
                    {
                        Ok(Some(value)) => {
                            outgoing.insert(credential.header.clone(), value);
                        }
                        Ok(None) => {}
                        Err(response) => return response,
                    }
                }
            }
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
        if self.upstream.credential.is_some() {
            // Remember what the client declared, under the session the upstream gave it.
            if let Some(declared) = declares_url
                && let Some(id) = session_id(answer.headers())
            {
                self.sessions.remember(&id, session.subject(), declared);
            }
            if let Some(id) = &client_session {
                if method == Method::DELETE && answer.status().is_success() {
                    self.sessions.forget(id, session.subject());
                }
                if method == Method::GET
                    && answer.status() == StatusCode::OK
                    && let Some(own) = self.sessions.open_stream(id, session.subject())
                {
                    return respond_merged(answer, own);
                }
            }
        }
        let filter = (!list_ids.is_empty()).then(|| ListFilter {
            ids: Arc::new(list_ids),
            tool_scopes: self.tool_scopes.clone(),
            granted: Arc::new(session.scopes.clone()),
        });
        respond(answer, filter).await
    }

    /// The credential's header value for this call; `None` to forward without one (a batch
    /// from a user who has not connected); `Err` with the gateway's own answer otherwise: the
    /// URL elicitation, or the tool error with the link, when the user must (re)connect.
    async fn credential_value(
        &self,
        credential: &Credential,
        session: &McpSession,
        needs: &Needs,
        client_session: Option<&str>,
    ) -> Result<Option<HeaderValue>, Response> {
        let connections = self.auth.connections();
        let Some(user_id) = session.user_id.as_deref() else {
            // A machine's token (client_credentials) acts for no user: it has no connected
            // account to send, and a call that needs one is refused rather than sent bare.
            let Needs::Call(call) = needs else {
                return Ok(None);
            };
            return Err(answer(&serde_json::json!({
                "jsonrpc": "2.0",
                "id": call.id,
                "error": {
                    "code": -32603,
                    "message": "this call acts as a user at a connected service; a machine's token (client_credentials) has no connected accounts",
                },
            })));
        };
        let failure = match connections.token(user_id, &credential.connection).await {
            Ok(token) => {
                return match credential.value(&token.access_token) {
                    Some(value) => Ok(Some(value)),
                    None => {
                        tracing::warn!(connection = %credential.connection, "the connected service's token cannot be sent in a header");
                        Err(refusal(
                            StatusCode::BAD_GATEWAY,
                            "the connected service's token cannot be sent in a header",
                        ))
                    }
                };
            }
            Err(failure) => failure,
        };
        let Needs::Call(call) = needs else {
            return Ok(None);
        };
        let name = connections
            .configured()
            .find(|c| c.id == credential.connection)
            .map_or_else(|| credential.connection.clone(), |c| c.name.clone());
        let message = match failure {
            ConnectionError::NotConnected => {
                format!("This tool acts as you at {name}: connect your {name} account first.")
            }
            ConnectionError::ReconnectNeeded => {
                format!(
                    "{name} no longer accepts the connection to your account: connect it again."
                )
            }
            ConnectionError::UnknownConnection | ConnectionError::Unavailable(_) => {
                tracing::warn!(connection = %credential.connection, error = %failure, "no token for the connected service");
                return Err(answer(&serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": call.id,
                    "error": {
                        "code": -32603,
                        "message": format!("{name} cannot be reached right now; try again shortly."),
                    },
                })));
            }
        };
        let elicitation_id = mcpauth_core::secret::random_id();
        let url = match connections
            .connect_url(user_id, &credential.connection, &elicitation_id)
            .await
        {
            Ok(url) => url,
            Err(error) => {
                tracing::warn!(connection = %credential.connection, %error, "could not make a connect link");
                return Err(refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the gateway could not make a connect link; try again",
                ));
            }
        };
        let declared = client_session.is_some_and(|id| self.sessions.url_elicitation(id, user_id));
        let message = if declared {
            if let Some(id) = client_session {
                self.sessions.sent(&elicitation_id, id);
            }
            elicitation::url_elicitation_required(&call.id, &elicitation_id, &url, &message)
        } else if call.method == "tools/call" {
            elicitation::tool_error_with_link(&call.id, &url, &message)
        } else {
            elicitation::error_with_link(&call.id, &url, &message)
        };
        Err(answer(&message))
    }
}

/// The upstream's GET stream, with the gateway's own notifications put in between its events.
fn respond_merged(answer: reqwest::Response, own: tokio::sync::mpsc::Receiver<Bytes>) -> Response {
    let status = answer.status();
    let mut out_headers: HeaderMap = headers::client_response_headers(answer.headers());
    out_headers.remove(header::CONTENT_LENGTH);
    let body = Body::from_stream(elicitation::merge_sse(answer.bytes_stream(), own));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    response
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
