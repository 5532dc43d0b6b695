//! The `mcpauth` server: configuration, storage selection (SQLite or PostgreSQL, with the
//! pool `[database]` asks for), the choice of where rate-limit counters live (memory, the
//! database or Redis) and the composition of the authorization server with liveness, tracing,
//! periodic purging of expired rows and graceful shutdown. `main.rs` only parses the command
//! line; tests build an [`Application`] on port 0.
//!
//! - [`config`]: settings from defaults, `mcpauth.toml`, `MCPAUTH_*` and flags.
//! - [`demo`]: the demo MCP server at `/api/mcp`, protected by `with_mcp_auth`, unless an
//!   upstream MCP server is protected there instead (`upstream`, `[[upstreams]]`: the gateway,
//!   crate `mcpauth-gateway`).
//! - [`Application`]: a bound, ready-to-run server.

pub mod config;
pub mod demo;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use mcpauth::{McpAuth, RateLimitBackend, RedisRateLimits};
use mcpauth_core::{Clock, Store};
use mcpauth_store::{PgStore, PgStoreOptions, SqliteStore};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use config::{
    DatabaseSettings, FlagOverrides, RateLimitBackendChoice, Settings, UpstreamSettings,
};

/// How often a running server deletes expired rows ([`Store::purge_expired`]): sessions,
/// tokens, codes and rate-limit windows that can no longer be used.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(600);

/// Opens (and migrates) the database a URL names: `sqlite://…` / `sqlite:…` for SQLite,
/// `postgres://…` / `postgresql://…` for PostgreSQL, with the default pool.
pub async fn open_store(database_url: &str) -> anyhow::Result<Arc<dyn Store>> {
    open_store_with(database_url, &DatabaseSettings::default()).await
}

/// Like [`open_store`], with the pool settings of `[database]`.
pub async fn open_store_with(
    database_url: &str,
    pool: &DatabaseSettings,
) -> anyhow::Result<Arc<dyn Store>> {
    if pool.max_connections == Some(0) {
        anyhow::bail!("database.max_connections must be at least 1");
    }
    if database_url.starts_with("sqlite:") {
        let max_connections = pool
            .max_connections
            .unwrap_or(mcpauth_store::DEFAULT_MAX_CONNECTIONS);
        let store = SqliteStore::connect_with(database_url, max_connections)
            .await
            .with_context(|| format!("could not open {database_url}"))?;
        store
            .migrate()
            .await
            .context("could not migrate the database")?;
        Ok(Arc::new(store))
    } else if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        // The URL may hold a password: name only the database in errors.
        let store = PgStore::connect_with(database_url, pg_store_options(pool))
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

/// The PostgreSQL pool `[database]` asks for; unset values keep [`PgStoreOptions::default`].
fn pg_store_options(pool: &DatabaseSettings) -> PgStoreOptions {
    let defaults = PgStoreOptions::default();
    PgStoreOptions {
        max_connections: pool.max_connections.unwrap_or(defaults.max_connections),
        acquire_timeout: pool
            .acquire_timeout_secs
            .map_or(defaults.acquire_timeout, Duration::from_secs),
        search_path: None,
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
    rate_limits: String,
}

impl Application {
    /// Opens the database, binds the listener and builds the routes. With no configured issuer
    /// the issuer is `http://localhost:<bound port>`.
    pub async fn build(settings: &Settings, clock: Option<Arc<dyn Clock>>) -> anyhow::Result<Self> {
        let store = open_store_with(&settings.database_url, &settings.database).await?;
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
        let upstreams = settings.gateway_upstreams(&options)?;
        let (backend, rate_limits) = rate_limit_backend(settings).await?;
        options.rate_limit_backend = backend;
        let auth = McpAuth::new(store, options).await?;
        let mut router = auth.router();
        // An upstream at the main resource's path replaces the demo there.
        let main_taken = upstreams
            .iter()
            .any(|upstream| upstream.resource == auth.options().resource);
        if !main_taken {
            router = router.merge(demo::router(&auth));
        }
        for upstream in upstreams {
            let url = upstream.url.clone();
            let gateway = mcpauth_gateway::Gateway::new(&auth, upstream)
                .with_context(|| format!("could not set up the gateway to {url}"))?;
            router = router.merge(gateway.router());
        }
        let router = router
            .route("/healthz", get(|| async { "ok" }))
            .layer(TraceLayer::new_for_http());
        Ok(Self {
            listener,
            router,
            auth,
            address,
            rate_limits,
        })
    }

    /// Where this server keeps its rate-limit counters, for people: e.g. `database (shared)`.
    pub fn rate_limits(&self) -> &str {
        &self.rate_limits
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

    /// Serves until `shutdown` completes, then drains in-flight requests. Meanwhile, every
    /// [`PURGE_INTERVAL`], deletes what has expired from the store.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let purging = tokio::spawn(purge_periodically(self.auth.clone()));
        let served = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        purging.abort();
        served
    }
}

/// Deletes expired rows every [`PURGE_INTERVAL`] (the first time one interval after start).
/// Every instance does it; the deletes are idempotent, so instances sharing a database do not
/// get in each other's way.
async fn purge_periodically(auth: McpAuth) {
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + PURGE_INTERVAL, PURGE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match auth.store().purge_expired(auth.options().clock.now()).await {
            Ok(removed) => tracing::debug!(removed, "purged expired rows"),
            Err(error) => tracing::warn!(%error, "could not purge expired rows"),
        }
    }
}

/// The rate-limit backend the settings choose, and how to describe it.
async fn rate_limit_backend(settings: &Settings) -> anyhow::Result<(RateLimitBackend, String)> {
    let choice = settings.rate_limit_backend()?;
    if !settings.rate_limits.enabled {
        return Ok((RateLimitBackend::Memory, "off".to_owned()));
    }
    Ok(match choice {
        RateLimitBackendChoice::Memory => (
            RateLimitBackend::Memory,
            "memory (this instance only)".to_owned(),
        ),
        RateLimitBackendChoice::Database => (
            RateLimitBackend::Store,
            "database (shared by every instance on it)".to_owned(),
        ),
        RateLimitBackendChoice::Redis => {
            let url = settings.redis_url.as_deref().unwrap_or_default();
            let shown = redact_password(url);
            let redis = RedisRateLimits::new(url, settings.redis_key_prefix.clone())
                .with_context(|| format!("could not use Redis at {shown}"))?;
            // Unreachable now is not fatal: the limiter lets requests through (with a
            // warning) until Redis answers.
            if let Err(error) = redis.ping().await {
                tracing::warn!(
                    redis = %shown,
                    %error,
                    "Redis does not answer: rate limits are not enforced until it does"
                );
            }
            (
                RateLimitBackend::Custom(Arc::new(redis)),
                format!("redis at {shown} (shared by every instance on it)"),
            )
        }
    })
}

/// Completes on Ctrl-C or SIGTERM. The signal handlers are installed when this is called,
/// not when the future is first polled: call it before announcing that the server is ready, so
/// that a SIGTERM sent right after the announcement stops it cleanly.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (mut interrupt, mut terminate) = signals;
            let interrupt = async {
                match interrupt.as_mut() {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let terminate = async {
                match terminate.as_mut() {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = interrupt => {},
                () = terminate => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
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

    #[test]
    fn pool_settings_reach_the_postgres_pool() {
        assert_eq!(
            pg_store_options(&DatabaseSettings::default()),
            PgStoreOptions::default()
        );
        let options = pg_store_options(&DatabaseSettings {
            max_connections: Some(25),
            acquire_timeout_secs: Some(3),
        });
        assert_eq!(options.max_connections, 25);
        assert_eq!(options.acquire_timeout, Duration::from_secs(3));
        assert_eq!(options.search_path, None);
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
