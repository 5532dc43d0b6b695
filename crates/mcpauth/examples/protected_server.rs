//! Your own MCP server (one `greet` tool, built with rmcp) protected by mcpauth, which is also
//! the OAuth authorization server its clients sign in with. `cargo run -p mcpauth --example
//! protected_server`, then point an MCP client at `http://localhost:3000/api/mcp`.
//!
//! Environment: `BIND` (default `127.0.0.1:3000`), `ISSUER` (default `http://localhost:<port>`),
//! `DATABASE_URL` (default `sqlite::memory:`; e.g. `sqlite://mcpauth.db` to keep accounts).

use std::{env, net::SocketAddr, sync::Arc};

use axum::http::request::Parts;
use mcpauth::{McpAuth, McpAuthOptions, McpSession};
use mcpauth_store::SqliteStore;
use rmcp::handler::server::{router::tool::ToolRouter, tool::Extension, wrapper::Parameters};
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::never::NeverSessionManager,
};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use tower::Layer;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct GreetRequest {
    /// Who to greet.
    name: String,
}

#[derive(Clone)]
struct Greeter {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Greeter {
    #[tool(description = "Greet someone, saying which signed-in user asked")]
    async fn greet(
        &self,
        Parameters(GreetRequest { name }): Parameters<GreetRequest>,
        Extension(parts): Extension<Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        // `with_mcp_auth` put the caller's session in the request; rmcp hands us the parts.
        let caller = McpSession::from_extensions(&parts.extensions)
            .ok_or_else(|| ErrorData::internal_error("no session", None))?;
        // A machine (client_credentials) has no user: its subject is the client.
        let text = match &caller.user_id {
            Some(user_id) => format!("Hello, {name}! (asked by user {user_id})"),
            None => format!("Hello, {name}! (asked by machine {})", caller.client_id),
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Greeter {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let var = |name: &str, default: &str| env::var(name).unwrap_or_else(|_| default.to_owned());
    let listener = tokio::net::TcpListener::bind(var("BIND", "127.0.0.1:3000")).await?;
    let port = listener.local_addr()?.port();
    let issuer = var("ISSUER", &format!("http://localhost:{port}"));

    // Storage (migrated on every start: idempotent), then the authorization server.
    let store = SqliteStore::connect(&var("DATABASE_URL", "sqlite::memory:")).await?;
    store.migrate().await?;
    let auth = McpAuth::new(Arc::new(store), McpAuthOptions::new(&issuer)).await?;

    // The MCP endpoint: stateless rmcp (any instance can answer any request) that accepts the
    // issuer's host, behind CORS and `with_mcp_auth` (401 + challenge without a valid token).
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_allowed_hosts(url::Url::parse(&issuer)?.host_str());
    // Build the tool router once (schemas, name checks) and hand each request a clone.
    let greeter = Greeter {
        tool_router: Greeter::tool_router(),
    };
    let greeter = move || Ok(greeter.clone());
    let mcp = StreamableHttpService::new(greeter, Arc::new(NeverSessionManager::default()), config);
    let mcp = mcpauth::cors().layer(auth.with_mcp_auth().layer(mcp));

    // Discovery, registration, authorize, token, sign-in and consent pages, plus `/api/mcp`;
    // served with connect info so that mcpauth's rate limits see client addresses.
    let app = auth.router().route_service("/api/mcp", mcp);
    println!("listening on http://localhost:{port}");
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}
