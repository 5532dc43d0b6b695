//! The baseline of the "cost of auth" benchmark: the demo MCP server of `mcpauth serve`
//! (crates/mcpauth-server/src/demo.rs) with everything the same except `with_mcp_auth`:
//! the same rmcp version and StreamableHttpServerConfig (stateless, JSON responses, no SSE
//! keep-alive, loopback allowed hosts), the same CORS layer as `mcpauth::cors()`, the same outer
//! `TraceLayer` and the same tracing filter as the server's `main.rs`.
//!
//! The tools answer the same shape: `echo` returns the echoed text plus a second text block
//! (where the real server says who called, this one says that nobody was authenticated).
//!
//!   mcp-baseline [--bind 127.0.0.1:0]
//!
//! Prints `Listening on: <addr>` on stdout once bound; stops on SIGTERM or Ctrl-C.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, Method, header};
use axum::routing::get;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use tower::ServiceBuilder;
use tower_http::cors::{Any, CorsLayer};
use tower_http::trace::TraceLayer;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EchoRequest {
    /// The text to send back.
    pub message: String,
}

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

const NOBODY: &str = "called without authentication (mcp-baseline: no with_mcp_auth layer)";

#[tool_router]
impl DemoServer {
    #[tool(description = "Echo a message back, with who called")]
    async fn echo(
        &self,
        Parameters(EchoRequest { message }): Parameters<EchoRequest>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![
            ContentBlock::text(format!("Tool echo: {message}")),
            ContentBlock::text(NOBODY.to_owned()),
        ]))
    }

    #[tool(description = "Who is calling: user, client, scopes and token expiry")]
    async fn whoami(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text(
            NOBODY.to_owned(),
        )]))
    }

    #[tool(description = "Echo a message back; needs the mcp:admin scope")]
    async fn admin_echo(
        &self,
        Parameters(EchoRequest { message }): Parameters<EchoRequest>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![
            ContentBlock::text(format!("Tool admin_echo: {message}")),
            ContentBlock::text(NOBODY.to_owned()),
        ]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mcpauth-demo", "0.1.0"))
            .with_instructions("A demo MCP server protected by mcpauth: echo, whoami, admin_echo.")
    }
}

/// A copy of `mcpauth::cors()` (crates/mcpauth/src/router.rs).
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("mcp-protocol-version"),
        ])
        .max_age(std::time::Duration::from_secs(86_400))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,rmcp=warn,tower_http=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let args: Vec<String> = std::env::args().collect();
    let bind = args
        .iter()
        .position(|a| a == "--bind")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    let address = listener.local_addr()?;

    // As demo.rs: loopback hosts plus the bound host:port.
    let hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
        format!("localhost:{}", address.port()),
        format!("127.0.0.1:{}", address.port()),
    ];
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_allowed_hosts(hosts);
    let service: StreamableHttpService<DemoServer, NeverSessionManager> =
        StreamableHttpService::new(
            || Ok(DemoServer::default()),
            Arc::new(NeverSessionManager::default()),
            config,
        );
    let guarded = ServiceBuilder::new().layer(cors()).service(service);
    let router = Router::new()
        .route_service("/api/mcp", guarded)
        .route("/healthz", get(|| async { "ok" }))
        .layer(TraceLayer::new_for_http());

    println!("mcp-baseline (demo MCP server without auth)");
    println!("  MCP endpoint:  http://{address}/api/mcp");
    println!("  Listening on:  {address}");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
}
