//! The `mcpauth` server: configuration, storage selection and the composition of the
//! authorization server with liveness, tracing and graceful shutdown. `main.rs` only parses the
//! command line; tests build an [`Application`] on port 0.
//!
//! - [`config`]: settings from defaults, `mcpauth.toml`, `MCPAUTH_*` and flags.
//! - [`demo`]: the demo MCP server at `/api/mcp`, protected by `with_mcp_auth`.
//! - [`Application`]: a bound, ready-to-run server.

pub mod config;
pub mod demo;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use mcpauth::McpAuth;
use mcpauth_core::{Clock, Store};
use mcpauth_store::{PgStore, SqliteStore};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use config::{FlagOverrides, Settings};

/// Opens (and migrates) the database a URL names: `sqlite://…` / `sqlite:…` for SQLite,
/// `postgres://…` / `postgresql://…` for PostgreSQL (a pool of
/// [`mcpauth_store::postgres::DEFAULT_MAX_CONNECTIONS`] connections).
pub async fn open_store(database_url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if database_url.starts_with("sqlite:") {
        let store = SqliteStore::connect(database_url)
            .await
            .with_context(|| format!("could not open {database_url}"))?;
        store
            .migrate()
            .await
            .context("could not migrate the database")?;
        Ok(Arc::new(store))
    } else if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        // The URL may hold a password: name only the database in errors.
        let store = PgStore::connect(database_url)
            .await
            .with_context(|| format!("could not open {}", redact_password(database_url)))?;
        store
            .migrate()
            .await
            .context("could not migrate the database")?;
        Ok(Arc::new(store))
    } else {
        anyhow::bail!(
            "database_url must start with sqlite://, postgres:// or postgresql:// (got {:?})",
            redact_password(database_url)
        )
    }
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            if parsed.set_password(Some("***")).is_ok() {
                parsed.to_string()
            } else {
                "<database URL>".to_owned()
            }
        }
        Ok(_) => url.to_owned(),
        // Unparseable: it may still contain a password somewhere.
        Err(_) if url.contains('@') => "<database URL>".to_owned(),
        Err(_) => url.to_owned(),
    }
}

/// A server bound to its address and ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    auth: McpAuth,
    address: SocketAddr,
}

impl Application {
    /// Opens the database, binds the listener and builds the routes. With no configured issuer
    /// the issuer is `http://localhost:<bound port>`.
    pub async fn build(settings: &Settings, clock: Option<Arc<dyn Clock>>) -> anyhow::Result<Self> {
        let store = open_store(&settings.database_url).await?;
        let listener = TcpListener::bind(&settings.bind)
            .await
            .with_context(|| format!("could not listen on {}", settings.bind))?;
        let address = listener.local_addr()?;
        let issuer = settings
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://localhost:{}", address.port()));
        let mut options = settings.options(&issuer)?;
        if let Some(clock) = clock {
            options.clock = clock;
        }
        let auth = McpAuth::new(store, options).await?;
        let router = auth
            .router()
            .merge(demo::router(&auth))
            .route("/healthz", get(|| async { "ok" }))
            .layer(TraceLayer::new_for_http());
        Ok(Self {
            listener,
            router,
            auth,
            address,
        })
    }

    /// The bound address (useful with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn auth(&self) -> &McpAuth {
        &self.auth
    }

    pub fn issuer(&self) -> &str {
        &self.auth.options().issuer
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_password("postgres://alice:s3cret@db:5432/auth?sslmode=require"),
            "postgres://alice:***@db:5432/auth?sslmode=require"
        );
        assert_eq!(
            redact_password("postgresql://db/auth"),
            "postgresql://db/auth"
        );
        assert_eq!(
            redact_password("sqlite://mcpauth.db"),
            "sqlite://mcpauth.db"
        );
        assert_eq!(redact_password("not a url u:p@h"), "<database URL>");
    }

    #[tokio::test]
    async fn open_store_refuses_unknown_schemes_without_the_password() {
        let err = open_store("mysql://u:s3cret@db/auth")
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.contains("postgres://"), "{err}");
    }
}
