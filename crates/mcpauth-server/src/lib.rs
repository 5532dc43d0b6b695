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
//! - [`linger`]: lingering close, so that a client still sending a body the server refused
//!   without reading reads the answer instead of a reset.
//! - [`observability`]: request ids, request logs and metrics, `/metrics`, `/readyz`, log format.
//! - [`Application`]: a bound, ready-to-run server.

pub mod config;
pub mod demo;
pub mod linger;
pub mod observability;

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
use tower_http::timeout::RequestBodyTimeoutLayer;

use observability::{PoolUsage, ReadinessCheck};

pub use config::{
    ConnectionKindSetting, ConnectionSettings, CredentialSettings, DatabaseSettings, FlagOverrides,
    IdentityProviderSettings, ProviderKind, RateLimitBackendChoice, Settings, UpstreamSettings,
    VaultKeySetting,
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
    Ok(open_store_reporting(database_url, pool).await?.0)
}

/// SQLite's read connections when `max_connections` is not set: one per core, from 2 up to
/// [`mcpauth_store::DEFAULT_MAX_CONNECTIONS`]. Each is a thread of its own, and a read wakes one
/// of them: more reader threads than cores only added context switches (the code exchange spent
/// about 5% more CPU with 4 readers than with 2 on a 2-core machine).
fn sqlite_readers() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    u32::try_from(cores)
        .unwrap_or(u32::MAX)
        .clamp(2, mcpauth_store::DEFAULT_MAX_CONNECTIONS)
}

/// Like [`open_store_with`], also giving what reports the pools' connections (for metrics).
async fn open_store_reporting(
    database_url: &str,
    pool: &DatabaseSettings,
) -> anyhow::Result<(Arc<dyn Store>, PoolUsage)> {
    if pool.max_connections == Some(0) {
        anyhow::bail!("database.max_connections must be at least 1");
    }
    if database_url.starts_with("sqlite:") {
        let max_connections = pool.max_connections.unwrap_or_else(sqlite_readers);
        let store = SqliteStore::connect_with(database_url, max_connections)
            .await
            .with_context(|| format!("could not open {database_url}"))?;
        store
            .migrate()
            .await
            .context("could not migrate the database")?;
        let pools = store.clone();
        let usage: PoolUsage = Arc::new(move || {
            let usage = pools.connection_usage();
            let idle_readers = usage.readers.saturating_sub(usage.busy_readers);
            vec![
                ("read", usage.readers, idle_readers as usize),
                ("write", 1, usize::from(!usage.writer_busy)),
            ]
        });
        Ok((Arc::new(store), usage))
    } else if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        // The URL may hold a password: name only the database in errors.
        let store = PgStore::connect_with(database_url, pg_store_options(pool))
            .await
            .with_context(|| format!("could not open {}", redact_password(database_url)))?;
        store
            .migrate()
            .await
            .context("could not migrate the database")?;
        let pools = store.clone();
        let usage: PoolUsage =
            Arc::new(move || vec![("main", pools.pool().size(), pools.pool().num_idle())]);
        Ok((Arc::new(store), usage))
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
    /// The `/metrics` listener and its router, when `metrics_bind` is set.
    metrics: Option<(TcpListener, Router)>,
    /// The console's own listener and router, when `admin_bind` is set.
    console: Option<(TcpListener, Router)>,
    timeouts: Timeouts,
}

/// The connection timeouts of [`Settings`].
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header_read: Duration,
    shutdown: Duration,
}

impl Application {
    /// Opens the database, binds the listener and builds the routes. With no configured issuer
    /// the issuer is `http://localhost:<bound port>`.
    pub async fn build(settings: &Settings, clock: Option<Arc<dyn Clock>>) -> anyhow::Result<Self> {
        let (store, pools) =
            open_store_reporting(&settings.database_url, &settings.database).await?;
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
        let (backend, rate_limits, redis_check) = rate_limit_backend(settings).await?;
        options.rate_limit_backend = backend;
        let mailer_configured = options.mailer.is_some();
        let auth = McpAuth::new(store, options).await?;
        match (&settings.smtp, mailer_configured) {
            (Some(smtp), _) => tracing::info!(host = %smtp.host, "mail goes out through SMTP"),
            (None, true) => tracing::warn!(
                "DEVELOPMENT MODE: no [smtp] configured, so password-reset and verification links are WRITTEN TO THIS LOG instead of being mailed. Never run like this in production: configure [smtp]"
            ),
            (None, false) => tracing::info!(
                "no [smtp] configured: password reset by email and verification mail are unavailable (admins: `mcpauth user reset-password`)"
            ),
        }
        let ready = auth.clone();
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
            .route(
                "/readyz",
                get(move || observability::readiness(ready.clone(), redis_check.clone())),
            )
            .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(
                settings.body_read_timeout_secs,
            )))
            .layer(axum::middleware::from_fn(observability::track_requests));
        let metrics = match &settings.metrics_bind {
            Some(bind) => {
                let handle = observability::prometheus()?;
                let listener = TcpListener::bind(bind)
                    .await
                    .with_context(|| format!("could not listen on {bind} (metrics_bind)"))?;
                Some((listener, observability::metrics_router(handle, pools)))
            }
            None => None,
        };
        let console =
            match &settings.admin_bind {
                Some(bind) => {
                    let listener = TcpListener::bind(bind)
                        .await
                        .with_context(|| format!("could not listen on {bind} (admin_bind)"))?;
                    let router = auth.console_router().layer(RequestBodyTimeoutLayer::new(
                        Duration::from_secs(settings.body_read_timeout_secs),
                    ));
                    Some((listener, router))
                }
                None => None,
            };
        Ok(Self {
            listener,
            router,
            auth,
            address,
            rate_limits,
            metrics,
            console,
            timeouts: Timeouts {
                header_read: Duration::from_secs(settings.header_read_timeout_secs),
                shutdown: Duration::from_secs(settings.shutdown_timeout_secs),
            },
        })
    }

    /// The address of the `/metrics` listener, when `metrics_bind` is set.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The address of the console's listener, when `admin_bind` is set.
    pub fn console_address(&self) -> Option<SocketAddr> {
        self.console
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
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

    /// Serves until `shutdown` completes, then stops accepting connections and lets in-flight
    /// requests finish, for at most `shutdown_timeout_secs`. Meanwhile, every
    /// [`PURGE_INTERVAL`], deletes what has expired from the store.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let purging = tokio::spawn(purge_periodically(self.auth.clone()));
        let metrics = self.metrics.map(|(listener, router)| {
            tokio::spawn(async move {
                let served = axum::serve(listener, router).await;
                if let Err(error) = served {
                    tracing::error!(%error, "the metrics listener stopped");
                }
            })
        });
        let (console_stop, console_stopped) = tokio::sync::oneshot::channel::<()>();
        let console = self.console.map(|(listener, router)| {
            let timeouts = self.timeouts;
            tokio::spawn(async move {
                let stopped = async {
                    let _ = console_stopped.await;
                };
                if let Err(error) = serve(listener, router, timeouts, stopped).await {
                    tracing::error!(%error, "the console listener stopped");
                }
            })
        });
        let served = serve(self.listener, self.router, self.timeouts, shutdown).await;
        let _ = console_stop.send(());
        if let Some(console) = console {
            let _ = console.await;
        }
        purging.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        served
    }
}

/// The accept loop: each connection served by hyper with a header read timeout (a client that
/// trickles or never finishes its headers loses its connection instead of holding it), the
/// client's address in `ConnectInfo`, `TCP_NODELAY`, and a lingering close ([`linger`]: a refused body is
/// drained, within bounds, so its client reads the answer). When `shutdown` completes the
/// listener closes (new connections are refused), open connections finish the requests they
/// have and close, and after `timeouts.shutdown` whatever is left is dropped.
async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // An answer often leaves in two writes: a streamed body after its head, as when the
        // gateway forwards an upstream that writes them apart (uvicorn does). With Nagle's
        // algorithm on, the second write waits for the client's ACK of the first, which a
        // keep-alive client delays by 40 ms.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let service = tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        );
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(linger::LingeringClose::new(stream)),
                hyper_util::service::TowerToHyperService::new(service),
            )
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(timeouts.shutdown, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout = ?timeouts.shutdown,
            "connections still open after the shutdown timeout: closing them"
        );
    }
    Ok(())
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

/// The rate-limit backend the settings choose, how to describe it, and (for Redis) the
/// readiness check of the backend.
async fn rate_limit_backend(
    settings: &Settings,
) -> anyhow::Result<(RateLimitBackend, String, Option<ReadinessCheck>)> {
    let choice = settings.rate_limit_backend()?;
    if !settings.rate_limits.enabled {
        return Ok((RateLimitBackend::Memory, "off".to_owned(), None));
    }
    Ok(match choice {
        RateLimitBackendChoice::Memory => (
            RateLimitBackend::Memory,
            "memory (this instance only)".to_owned(),
            None,
        ),
        RateLimitBackendChoice::Database => (
            RateLimitBackend::Store,
            "database (shared by every instance on it)".to_owned(),
            None,
        ),
        RateLimitBackendChoice::Redis => {
            let url = settings.redis_url.as_deref().unwrap_or_default();
            let shown = redact_password(url);
            let redis = Arc::new(
                RedisRateLimits::new(url, settings.redis_key_prefix.clone())
                    .with_context(|| format!("could not use Redis at {shown}"))?,
            );
            // Unreachable now is not fatal: the limiter lets requests through (with a
            // warning) until Redis answers.
            if let Err(error) = redis.ping().await {
                tracing::warn!(
                    redis = %shown,
                    %error,
                    "Redis does not answer: rate limits are not enforced until it does"
                );
            }
            let pinged = redis.clone();
            let check: ReadinessCheck = Arc::new(move || {
                let redis = pinged.clone();
                Box::pin(async move {
                    redis
                        .ping()
                        .await
                        .map_err(|error| format!("redis: {error}"))
                })
            });
            (
                RateLimitBackend::Custom(redis),
                format!("redis at {shown} (shared by every instance on it)"),
                Some(check),
            )
        }
    })
}

/// `mcpauth healthcheck`: GETs `/healthz` from the server listening on `bind` (on loopback
/// when `bind` is 0.0.0.0 or `[::]`) over plain HTTP/1.1, each step bounded by `timeout`; Ok
/// on a 200. For container health checks: the image has no curl.
pub fn health_check(bind: &str, timeout: Duration) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpStream, ToSocketAddrs};

    let mut address = bind
        .to_socket_addrs()
        .with_context(|| format!("bind address {bind} does not resolve"))?
        .next()
        .with_context(|| format!("bind address {bind} does not resolve"))?;
    anyhow::ensure!(
        address.port() != 0,
        "bind {bind} has no fixed port to check"
    );
    if address.ip().is_unspecified() {
        address.set_ip(match address.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let url = format!("http://{address}/healthz");
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .with_context(|| format!("could not connect to {address}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // One write: `write!` on a bare stream sends each piece of the format on its own, and a
    // server that answers after the first piece and closes would make the next one fail.
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    stream
        .take(1024)
        .read_to_end(&mut head)
        .with_context(|| format!("no answer from {url}"))?;
    let head = String::from_utf8_lossy(&head);
    let status_line = head.lines().next().unwrap_or_default();
    match status_line.split(' ').nth(1) {
        Some("200") => Ok(()),
        _ => anyhow::bail!("{url} answered {status_line:?}"),
    }
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
