//! The demo MCP server behind `/api/mcp`: an rmcp Streamable HTTP service, stateless (every
//! request stands alone, so any instance can answer it), protected by `with_mcp_auth`.
//!
//! Tools: `echo` and `whoami` (scope `mcp:tools`), and `admin_echo`, which also needs
//! `mcp:admin` — the step-up demonstration.

use std::sync::Arc;

use axum::Router;
use axum::http::request::Parts;
use mcpauth::{McpAuth, McpSession};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use tower::ServiceBuilder;

/// Arguments of `echo` and `admin_echo`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EchoRequest {
    /// The text to send back.
    pub message: String,
}

/// The demo tools.
#[derive(Debug, Clone)]
pub struct DemoServer {
    tool_router: ToolRouter<Self>,
}

impl Default for DemoServer {
    fn default() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }
}

fn caller(parts: &Parts) -> Result<&McpSession, ErrorData> {
    McpSession::from_extensions(&parts.extensions)
        .ok_or_else(|| ErrorData::internal_error("no authenticated session", None))
}

fn who(session: &McpSession) -> String {
    match &session.user_id {
        Some(user_id) => format!(
            "called by user {} through client {} with scopes {}",
            user_id,
            session.client_id,
            session.scopes.join(" ")
        ),
        None => format!(
            "called by machine client {} (no user) with scopes {}",
            session.client_id,
            session.scopes.join(" ")
        ),
    }
}

/// What an echo tool answers: the message, and who called.
fn echoed(tool: &str, message: &str, session: &McpSession) -> Result<CallToolResult, ErrorData> {
    Ok(CallToolResult::success(vec![
        ContentBlock::text(format!("Tool {tool}: {message}")),
        ContentBlock::text(who(session)),
    ]))
}

#[tool_router]
impl DemoServer {
    #[tool(description = "Echo a message back, with who called")]
    async fn echo(
        &self,
        Parameters(EchoRequest { message }): Parameters<EchoRequest>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        echoed("echo", &message, caller(&parts)?)
    }

    #[tool(description = "Who is calling: user, client, scopes and token expiry")]
    async fn whoami(
        &self,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let session = caller(&parts)?;
        let body = serde_json::to_string(session)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(CallToolResult::success(vec![ContentBlock::text(body)]))
    }

    #[tool(description = "Echo a message back; needs the mcp:admin scope")]
    async fn admin_echo(
        &self,
        Parameters(EchoRequest { message }): Parameters<EchoRequest>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        echoed("admin_echo", &message, caller(&parts)?)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "mcpauth-demo",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("A demo MCP server protected by mcpauth: echo, whoami, admin_echo.")
    }
}

/// The hosts rmcp accepts in `Host`: the issuer's and the resource's, plus loopback.
fn allowed_hosts(auth: &McpAuth) -> Vec<String> {
    let options = auth.options();
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for raw in [&options.issuer, &options.resource] {
        if let Ok(url) = url::Url::parse(raw)
            && let Some(host) = url.host_str()
        {
            hosts.push(host.to_owned());
            if let Some(port) = url.port() {
                hosts.push(format!("{host}:{port}"));
            }
        }
    }
    hosts.dedup();
    hosts
}

/// The `/api/mcp` route (at the resource's path): CORS outermost, then `with_mcp_auth`, then
/// the stateless rmcp service.
pub fn router(auth: &McpAuth) -> Router {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_allowed_hosts(allowed_hosts(auth));
    // The tool router (tool schemas, name validation) is built once; every request gets a
    // clone instead of building it again.
    let demo = DemoServer::default();
    let service: StreamableHttpService<DemoServer, NeverSessionManager> =
        StreamableHttpService::new(
            move || Ok(demo.clone()),
            Arc::new(NeverSessionManager::default()),
            config,
        );
    let path = url::Url::parse(&auth.options().resource)
        .map(|u| mcpauth_core::protected_resource::locate(&u).path)
        .unwrap_or_else(|_| "/api/mcp".to_owned());
    let guarded = ServiceBuilder::new()
        .layer(mcpauth::cors())
        .layer(
            // echo and whoami need only the base scopes; naming them lets the call metrics
            // count them by name (unnamed tools are counted as `other`).
            auth.with_mcp_auth()
                .tool_scope("echo", &[])
                .tool_scope("whoami", &[])
                .tool_scope("admin_echo", &["mcp:admin"]),
        )
        .service(service);
    Router::new().route_service(&path, guarded)
}
